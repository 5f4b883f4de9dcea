//! The push channel end to end: `dns-oops run` serving the signals zone over DNS Push on
//! TLS, `dns-oops subscribe` and raw TLS sessions as clients, a real knotd or the lab
//! server as the watched DNS server.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::{Daemon, Knot, LabProcess, free_port};
use dns_oops::condition::ConditionId::*;
use dns_oops::push::tls::{ClientTlsOptions, client_config};
use dns_oops::signal::SignalState;
use dso::{DsoMessage, Tlv};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// The `[[channel]]` table of a push channel on `port`, plus `extra` lines.
fn push_channel(pki: &Pki, port: u16, extra: &str) -> String {
    format!(
        r#"[[channel]]
type = "push"
listen = "127.0.0.1:{port}"
cert = "{dir}/server.pem"
key = "{dir}/server.key"
{extra}
"#,
        dir = pki.dir().display()
    )
}

/// Writes a daemon config: node `it`, the lab server on `lab_port` serving `zones`, probed
/// every `interval`, a log channel and the push channel table `push`. Returns the address
/// of its HTTP API.
fn lab_daemon_config(
    path: &Path,
    zones: &[String],
    lab_port: u16,
    interval: &str,
    push: &str,
) -> SocketAddr {
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = path.parent().unwrap().display();
    let zones = zones.join(", ");
    let text = format!(
        r#"node = "it"
[journal]
path = "{dir}/journal.sqlite"
[http]
listen = "{http}"
[[server]]
name = "lab"
address = "127.0.0.1:{lab_port}"
zones = [{zones}]
[[source]]
type = "probe"
server = "lab"
interval = "{interval}"
timeout = "1s"
rise = 1
fall = 1
[[channel]]
type = "log"
{push}"#
    );
    std::fs::write(path, text).unwrap();
    http
}

/// `GET /metrics` from a daemon's HTTP API.
fn metrics(http: SocketAddr) -> String {
    let mut stream = TcpStream::connect(http).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// `dns-oops subscribe … --json`, its lines read on a thread.
struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Subscriber {
    fn start(name: &str, port: u16, args: &[&str]) -> Subscriber {
        let server = format!("127.0.0.1:{port}");
        let mut all = vec!["subscribe", name, "TXT", "--json", "--server", &server];
        all.extend_from_slice(args);
        Subscriber::run(&all)
    }

    /// `dns-oops <args>`, whose stdout is JSON lines.
    fn run(args: &[&str]) -> Subscriber {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("subscribe printed a line that is not JSON ({e}): {line}")
                });
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Subscriber {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(value) => {
                    self.seen.push(value.clone());
                    if pred(&value) {
                        return value;
                    }
                }
                Err(_) => panic!(
                    "subscriber: no `{what}` within {timeout:?}; seen:\n{}",
                    self.seen
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_change(value: &Value, op: &str, txt_first: &str) -> bool {
    value["op"] == op && value["txt"][0] == txt_first
}

#[test]
fn subscribe_sees_knot_load_a_zone_and_die() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let mut knot = Knot::new(dir.path(), &["a.test"]);
    let push_port = free_port();
    let config = dir.path().join("dns-oops.toml");
    std::fs::write(
        &config,
        format!(
            r#"node = "it"
[journal]
path = "{dir}/journal.sqlite"
[http]
listen = "off"
[[server]]
name = "knot"
address = "{addr}"
zones = ["a.test."]
[[source]]
type = "probe"
server = "knot"
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 1
[[source]]
type = "process"
server = "knot"
pid-file = "{pid}"
[[channel]]
type = "log"
{push}"#,
            dir = dir.path().display(),
            addr = knot.addr(),
            pid = knot.pid_file().display(),
            push = push_channel(&pki, push_port, ""),
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);
    let ca = pki.ca();
    let mut subscriber = Subscriber::start(
        "zone-ready.knot.it.oops.internal.",
        push_port,
        &["--ca", ca.to_str().unwrap()],
    );
    subscriber.wait_for("subscribed", WAIT, |v| v["op"] == "subscribed");
    // `watch` over DNS Push reads the same zone back as signals.
    let push = format!("127.0.0.1:{push_port}");
    let mut watch = Subscriber::run(&[
        "watch",
        "--push",
        &push,
        "--zone",
        "it.oops.internal.",
        "--servers",
        "knot",
        "--ca",
        ca.to_str().unwrap(),
    ]);

    knot.start();
    daemon.wait_for("zone-ready a.test. met", WAIT, |s| {
        s.condition == ZoneReady && s.state == SignalState::Met
    });
    let added = subscriber.wait_for("add of a.test.", WAIT, |v| {
        is_change(v, "add", "subject=a.test.")
    });
    assert_eq!(added["type"], "TXT");
    assert_eq!(added["name"], "zone-ready.knot.it.oops.internal.");
    assert!(
        added["txt"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "serial=1"),
        "the record carries the serial: {added}"
    );

    let ready = watch.wait_for("watch: zone-ready met", WAIT, |v| {
        v["condition"] == "zone-ready" && v["state"] == "met"
    });
    assert_eq!(ready["subject"], "a.test.");
    assert_eq!(ready["args"]["serial"], 1);

    knot.kill9();
    daemon.wait_for("server-crashed", WAIT, |s| s.condition == ServerCrashed);
    subscriber.wait_for("remove of a.test.", WAIT, |v| {
        is_change(v, "remove", "subject=a.test.")
    });
    watch.wait_for("watch: server-crashed met", WAIT, |v| {
        v["condition"] == "server-crashed" && v["state"] == "met"
    });
    watch.wait_for("watch: zone-ready cleared", WAIT, |v| {
        v["condition"] == "zone-ready" && v["state"] == "cleared"
    });
}

/// A blocking TLS connection speaking length-prefixed DNS messages.
struct RawSession {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl RawSession {
    fn connect(port: u16, options: &ClientTlsOptions) -> std::io::Result<RawSession> {
        let tcp = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
        Self::over(tcp, options)
    }

    /// A session whose socket has a receive buffer of `bytes`, set before connecting so
    /// that the window stays that small.
    fn connect_with_receive_buffer(
        port: u16,
        options: &ClientTlsOptions,
        bytes: libc::c_int,
    ) -> std::io::Result<RawSession> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket calls on a descriptor this function owns until it is handed
        // to TcpStream, with arguments of the sizes the kernel expects.
        let tcp = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket()");
            let rc = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "setsockopt SO_RCVBUF");
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
                },
                sin_zero: [0; 8],
            };
            let rc = libc::connect(
                fd,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "connect()");
            TcpStream::from_raw_fd(fd)
        };
        Self::over(tcp, options)
    }

    fn over(tcp: TcpStream, options: &ClientTlsOptions) -> std::io::Result<RawSession> {
        let config: Arc<rustls::ClientConfig> = client_config(options).unwrap();
        let server_name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connection = rustls::ClientConnection::new(config, server_name).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut session = RawSession {
            tls: rustls::StreamOwned::new(connection, tcp),
        };
        session.tls.flush()?;
        while session.tls.conn.is_handshaking() {
            session.tls.conn.complete_io(&mut session.tls.sock)?;
        }
        Ok(session)
    }

    fn send(&mut self, message: &[u8]) -> std::io::Result<()> {
        let mut framed = (message.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(message);
        self.tls.write_all(&framed)?;
        self.tls.flush()
    }

    fn receive(&mut self) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 2];
        self.tls.read_exact(&mut len)?;
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.tls.read_exact(&mut message)?;
        Ok(message)
    }

    fn subscribe(&mut self, id: u16, name: &str) -> std::io::Result<()> {
        let subscribe = Tlv::Subscribe(dso::Subscribe {
            name: Name::from_ascii(name).unwrap(),
            rtype: RecordType::TXT,
            class: DNSClass::IN,
        });
        self.send(&DsoMessage::request(id, subscribe).encode().unwrap())
    }

    /// The RCODE of the response to request `id`, skipping PUSH messages.
    fn rcode_of(&mut self, id: u16) -> std::io::Result<u8> {
        loop {
            let message = dso::decode(&self.receive()?).expect("the server sends valid DSO");
            if message.id == id {
                return Ok(message.rcode.value());
            }
        }
    }
}

#[test]
fn a_subscriber_that_stops_reading_does_not_delay_the_others() {
    const ZONES: usize = 300;
    const ROUNDS: u32 = 12;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let mut lab = LabProcess::start(dir.path());
    let lab_port = lab.port;
    let bump = |lab: &mut LabProcess, serial: u32| {
        let text: String = (0..ZONES)
            .map(|i| format!("zone z{i}.test. {serial}\n"))
            .collect();
        lab.say(&text);
    };
    bump(&mut lab, 1);
    let zones: Vec<String> = (0..ZONES).map(|i| format!("\"z{i}.test.\"")).collect();
    let push_port = free_port();
    let config = dir.path().join("dns-oops.toml");
    let http = lab_daemon_config(
        &config,
        &zones,
        lab_port,
        "300ms",
        &push_channel(&pki, push_port, "queue = 256"),
    );
    let mut daemon = Daemon::start(&config);
    daemon.wait_for("all-zones-ready", WAIT, |s| s.condition == AllZonesReady);

    let options = ClientTlsOptions {
        ca: Some(pki.ca()),
        ..Default::default()
    };
    // The slow one subscribes, reads its answer, then never reads again, with a tiny
    // receive buffer so that its backlog stays at the server.
    let mut slow = RawSession::connect_with_receive_buffer(push_port, &options, 4096).unwrap();
    slow.subscribe(1, "zone-ready.lab.it.oops.internal.")
        .unwrap();
    assert_eq!(slow.rcode_of(1).unwrap(), 0);

    let ca = pki.ca();
    let mut fast = Subscriber::start(
        "zone-ready.lab.it.oops.internal.",
        push_port,
        &["--ca", ca.to_str().unwrap()],
    );
    fast.wait_for("subscribed", WAIT, |v| v["op"] == "subscribed");
    let mut worst = Duration::ZERO;
    for round in 2..=ROUNDS {
        let bumped = Instant::now();
        bump(&mut lab, round);
        let last = format!("z{}.test.", ZONES - 1);
        fast.wait_for(&format!("{last} serial {round}"), WAIT, |v| {
            v["op"] == "add"
                && v["txt"][0] == format!("subject={last}")
                && v["txt"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| *s == format!("serial={round}"))
        });
        worst = worst.max(bumped.elapsed());
    }
    // Probing 300 zones every 300 ms: a change is seen within a few rounds at most.
    assert!(
        worst < Duration::from_secs(5),
        "the reading subscriber waited {worst:?} for a change"
    );

    // The slow one was sent Retry Delay and dropped, or aborted when its writes stalled:
    // reading what is left ends in EOF or a reset, not in endless data.
    slow.tls
        .sock
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let ended = loop {
        match slow.receive() {
            Ok(message) => {
                if let Ok(m) = dso::decode(&message)
                    && m.tlvs().any(|t| matches!(t, Tlv::RetryDelay { .. }))
                {
                    break "Retry Delay";
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!(
                    "the slow subscriber is still connected after {:?}",
                    started.elapsed()
                )
            }
            Err(_) => break "connection ended",
        }
    };
    eprintln!("slow subscriber: {ended}; reading subscriber's worst delay {worst:?}");
    let text = metrics(http);
    assert!(
        text.lines()
            .any(|l| l.starts_with("dns_oops_push_dropped_total{")),
        "the drop is counted in /metrics:\n{text}"
    );
    drop(lab);
}

#[test]
fn client_certificates_and_name_acls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let monitor = pki.client("monitor", "monitor.example.net");
    let stranger = pki.client("stranger", "stranger.example.net");
    let push_port = free_port();
    let lab_port = free_port();
    let config = dir.path().join("dns-oops.toml");
    let extra = format!(
        r#"client-ca = "{ca}"
[[channel.allow]]
client = "monitor.example.net"
names = ["*.lab.it.oops.internal."]"#,
        ca = pki.ca().display()
    );
    lab_daemon_config(
        &config,
        &[],
        lab_port,
        "1s",
        &push_channel(&pki, push_port, &extra),
    );
    let _daemon = Daemon::start(&config);
    wait_for_listener(push_port);

    // No client certificate: the handshake (or the first read after it) fails.
    let anonymous = ClientTlsOptions {
        ca: Some(pki.ca()),
        ..Default::default()
    };
    let refused = RawSession::connect(push_port, &anonymous).and_then(|mut s| {
        s.subscribe(1, "server-running.lab.it.oops.internal.")?;
        s.rcode_of(1)
    });
    assert!(
        refused.is_err(),
        "a client without a certificate got an answer: {refused:?}"
    );

    // A certificate from another CA is refused as well.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::new(other_dir.path());
    let forged = other.client("monitor", "monitor.example.net");
    let refused = RawSession::connect(
        push_port,
        &ClientTlsOptions {
            ca: Some(pki.ca()),
            insecure: false,
            identity: Some(forged),
        },
    )
    .and_then(|mut s| {
        s.subscribe(1, "server-running.lab.it.oops.internal.")?;
        s.rcode_of(1)
    });
    assert!(
        refused.is_err(),
        "a certificate of another CA got an answer: {refused:?}"
    );

    // The monitor may subscribe to the lab server's names, not to others.
    let mut session = RawSession::connect(
        push_port,
        &ClientTlsOptions {
            ca: Some(pki.ca()),
            insecure: false,
            identity: Some(monitor),
        },
    )
    .unwrap();
    session
        .subscribe(1, "server-running.lab.it.oops.internal.")
        .unwrap();
    assert_eq!(
        session.rcode_of(1).unwrap(),
        0,
        "NOERROR for an allowed name"
    );
    session
        .subscribe(2, "server-running.other.it.oops.internal.")
        .unwrap();
    assert_eq!(
        session.rcode_of(2).unwrap(),
        5,
        "REFUSED for a name outside the ACL"
    );
    session.subscribe(3, "example.net.").unwrap();
    assert_eq!(session.rcode_of(3).unwrap(), 9, "NOTAUTH outside the zone");

    // A valid certificate that no rule names sees only the zone's infrastructure.
    let mut session = RawSession::connect(
        push_port,
        &ClientTlsOptions {
            ca: Some(pki.ca()),
            insecure: false,
            identity: Some(stranger),
        },
    )
    .unwrap();
    session
        .subscribe(1, "server-running.lab.it.oops.internal.")
        .unwrap();
    assert_eq!(session.rcode_of(1).unwrap(), 5);
}

fn wait_for_listener(port: u16) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The push channel against a client written from the RFCs alone
/// (`tests/independent/dso_client.py`, Python standard library): valid sessions, error
/// answers and every fatal case a client can provoke, each fatal one checked to abort only
/// its own session.
#[test]
fn an_independent_client_finds_the_server_conformant() {
    let python = common::require("python3", "python3");
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let lab = LabProcess::start(dir.path());
    let lab_port = lab.port;
    let push_port = free_port();
    let config = dir.path().join("dns-oops.toml");
    lab_daemon_config(
        &config,
        &[],
        lab_port,
        "200ms",
        &push_channel(&pki, push_port, ""),
    );
    let mut daemon = Daemon::start(&config);
    daemon.wait_for("server-running", WAIT, |s| s.condition == ServerRunning);
    let output = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/independent/dso_client.py"
        ))
        .args([
            "conformance",
            "--json",
            "--host",
            "127.0.0.1",
            "--tls-name",
            "localhost",
        ])
        .args(["--port", &push_port.to_string()])
        .arg("--ca")
        .arg(pki.ca())
        .args([
            "--zone",
            "it.oops.internal.",
            "--name",
            "server-running.lab.it.oops.internal.",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let checks: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let failed: Vec<&Value> = checks.iter().filter(|c| c["passed"] != true).collect();
    assert!(
        failed.is_empty() && output.status.success(),
        "{} of {} checks failed:\n{}\nstderr: {}",
        failed.len(),
        checks.len(),
        failed
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(checks.len() >= 30, "only {} checks ran", checks.len());
    drop(lab);
}

/// SIGHUP reloads the certificate for new sessions; SIGTERM sends every session Retry
/// Delay (RFC 8490 §6.6.1) before the daemon exits.
#[test]
fn sighup_reloads_the_certificate_and_shutdown_sends_retry_delay() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let push_port = free_port();
    let lab_port = free_port();
    let config = dir.path().join("dns-oops.toml");
    lab_daemon_config(
        &config,
        &[],
        lab_port,
        "1s",
        &push_channel(&pki, push_port, ""),
    );
    let mut daemon = Daemon::start(&config);
    wait_for_listener(push_port);
    let trusting = |ca: PathBuf| ClientTlsOptions {
        ca: Some(ca),
        ..Default::default()
    };
    let mut before = RawSession::connect(push_port, &trusting(pki.ca())).unwrap();
    before
        .subscribe(1, "server-running.lab.it.oops.internal.")
        .unwrap();
    assert_eq!(before.rcode_of(1).unwrap(), 0);

    // A new CA and certificate in place of the old files, then SIGHUP.
    let new_dir = tempfile::tempdir().unwrap();
    let renewed = Pki::new(new_dir.path());
    for file in ["server.pem", "server.key"] {
        std::fs::copy(new_dir.path().join(file), dir.path().join(file)).unwrap();
    }
    common::signal(daemon.pid(), libc::SIGHUP);
    let deadline = Instant::now() + WAIT;
    let mut after = loop {
        match RawSession::connect(push_port, &trusting(renewed.ca())) {
            Ok(session) => break session,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the new certificate is not served: {e}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert!(
        RawSession::connect(push_port, &trusting(pki.ca())).is_err(),
        "new sessions still get the old certificate"
    );
    after
        .subscribe(1, "server-running.lab.it.oops.internal.")
        .unwrap();
    assert_eq!(after.rcode_of(1).unwrap(), 0);

    // Both sessions, old certificate and new, are told to go away when the daemon stops.
    let stopping = std::thread::spawn(move || daemon.terminate());
    for session in [&mut before, &mut after] {
        let retry_delay = loop {
            let message = dso::decode(&session.receive().expect("a Retry Delay before the end"))
                .expect("valid DSO");
            if let Some(Tlv::RetryDelay { delay_ms }) = message.primary {
                break delay_ms;
            }
        };
        assert!(retry_delay > 0);
    }
    assert!(stopping.join().unwrap().success());
}

/// `dns-oops subscribe` without `--server`: the SOA walk finds the zone, its
/// `_dns-push-tls._tcp` SRV the server (RFC 8765 §6.1). A real knotd serves the delegation
/// data here, as a parent zone or a resolver would.
#[test]
fn subscribe_discovers_the_server_through_soa_and_srv() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let lab_port = free_port();
    let push_port = free_port();
    let mut knot = Knot::new(dir.path(), &["it.oops.internal"]);
    std::fs::write(
        dir.path().join("zones/it.oops.internal.zone"),
        format!(
            "$ORIGIN it.oops.internal.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n\
             @ NS ns1\nns1 A 127.0.0.1\n\
             _dns-push-tls._tcp SRV 10 0 9 nowhere\n\
             _dns-push-tls._tcp SRV 0 5 {push_port} push\npush A 127.0.0.1\n"
        ),
    )
    .unwrap();
    knot.start();
    let config = dir.path().join("dns-oops.toml");
    lab_daemon_config(
        &config,
        &[],
        lab_port,
        "1s",
        &push_channel(&pki, push_port, ""),
    );
    let _daemon = Daemon::start(&config);
    wait_for_listener(push_port);
    let resolver = knot.addr().to_string();
    let ca = pki.ca();
    let mut subscriber = Subscriber::run(&[
        "subscribe",
        "server-running.lab.it.oops.internal.",
        "TXT",
        "--json",
        "--resolver",
        &resolver,
        "--tls-name",
        "localhost",
        "--ca",
        ca.to_str().unwrap(),
    ]);
    let subscribed = subscriber.wait_for("subscribed", WAIT, |v| v["op"] == "subscribed");
    assert_eq!(
        subscribed["server"],
        format!("127.0.0.1:{push_port}"),
        "the priority-0 SRV record is tried first"
    );
}
