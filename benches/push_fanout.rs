//! DNS Push at scale, side by side with mosquitto (MQTT over TLS) in the same run.
//!
//! 1. Fan-out: `SUBSCRIBERS` TLS sessions (default 10,000) subscribe to one name of the
//!    signals zone; `ROUNDS` times the watched server's serial is bumped, which makes a
//!    `zone-updated` event whose TXT record carries the event time (`since=`). Each session
//!    notes when the PUSH arrives; the delivery latency is arrival minus event time.
//!    Then the same number of MQTT subscribers over TLS on a local mosquitto receive one
//!    QoS 1 message per round whose payload is its publish time.
//! 2. Idle sessions: `IDLE` (default 50,000) TLS sessions, each with one subscription, held
//!    open; the daemon's resident memory before and after gives the memory per session.
//!
//! ```sh
//! cargo bench --bench push_fanout
//! SUBSCRIBERS=2000 IDLE=5000 ROUNDS=5 cargo bench --bench push_fanout   # a quick look
//! ```
//!
//! Needs the Debian package `mosquitto`. Clients run in this process on the same machine;
//! they connect from 127.0.0.1–127.0.0.16 so that 50,000 connections fit the ephemeral
//! ports. Prints a Markdown table and appends it, with the command and the machine, to
//! `benches/RESULTS.md`.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

type Latencies = Arc<Mutex<Vec<Vec<f64>>>>;

/// What the subscribers of one run report into.
#[derive(Clone)]
struct Tally {
    /// Delivery latencies in ms, by round.
    latencies: Latencies,
    /// Sessions whose subscription was answered.
    subscribed: Arc<AtomicUsize>,
    /// Deliveries recorded.
    received: Arc<AtomicUsize>,
    /// Bounds the handshakes in flight.
    gate: Arc<Semaphore>,
}

impl Tally {
    fn new(rounds: usize, gate: &Arc<Semaphore>) -> Tally {
        Tally {
            latencies: Arc::new(Mutex::new(vec![Vec::new(); rounds])),
            subscribed: Arc::new(AtomicUsize::new(0)),
            received: Arc::new(AtomicUsize::new(0)),
            gate: gate.clone(),
        }
    }

    fn record(&self, round: usize, latency_ms: f64) {
        if let Some(slot) = self.latencies.lock().unwrap().get_mut(round) {
            slot.push(latency_ms);
            self.received.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn require(program: &str, package: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("`{program}` is missing: install the Debian package `{package}`"))
}

fn free_port() -> u16 {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    drop(udp);
    port
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Lets this process and its children hold as many sockets as allowed: up to 1,048,576,
/// or the hard limit where raising it is not permitted (no CAP_SYS_RESOURCE). Returns the
/// limit in force.
fn raise_open_files() -> u64 {
    let wanted = libc::rlimit {
        rlim_cur: 1_048_576,
        rlim_max: 1_048_576,
    };
    // SAFETY: getrlimit/setrlimit read and write structs we own.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
            return wanted.rlim_cur;
        }
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

/// With two CPUs or more, the servers (dns-oops, mosquitto, the lab) run on CPU 0 and
/// the clients of this process on the others, so that the clients' work does not count
/// against the servers' latency. `PIN=0` turns it off.
fn pinning() -> bool {
    static PINNING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PINNING.get_or_init(|| std::env::var("PIN").map_or(true, |v| v != "0") && machine_cpus() >= 2)
}

/// The machine's CPUs, counted before this process pins itself.
fn machine_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A command for a server process, on CPU 0 when pinning.
fn server_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if pinning() {
        let mut command = Command::new(require("taskset", "util-linux"));
        command.args(["-c", "0"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Moves this process (the clients) off CPU 0.
fn pin_clients() {
    if !pinning() {
        return;
    }
    let cpus = machine_cpus();
    // SAFETY: a zeroed cpu_set_t filled with CPU_SET and passed with its own size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 1..cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A CA and a server certificate for localhost/127.0.0.1, as PEM files in `dir`.
fn certificates(dir: &Path) -> PathBuf {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    dir.join("ca.pem")
}

/// Opens TCP from one of 16 loopback source addresses, then TLS.
async fn connect_tls(
    index: usize,
    port: u16,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((
        Ipv4Addr::new(127, 0, 0, 1 + (index % 16) as u8),
        0,
    )))?;
    let tcp = socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    tcp.set_nodelay(true)?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

// ---------------------------------------------------------------------------------------
// DNS Push subscribers

/// A DNS Push subscriber: subscribes, then records the latency of each `zone-updated`
/// record added, by round (the serial).
async fn push_subscriber(
    index: usize,
    port: u16,
    connector: TlsConnector,
    name: String,
    tally: Tally,
) {
    let mut permit = Some(tally.gate.clone().acquire_owned().await.unwrap());
    let mut stream = match connect_tls(index, port, &connector).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("push subscriber {index}: {e}");
            return;
        }
    };
    let subscribe = dso::DsoMessage::request(
        1,
        dso::Tlv::Subscribe(dso::Subscribe {
            name: hickory_proto::rr::Name::from_ascii(&name).unwrap(),
            rtype: hickory_proto::rr::RecordType::TXT,
            class: hickory_proto::rr::DNSClass::IN,
        }),
    )
    .encode()
    .unwrap();
    let mut framed = (subscribe.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&subscribe);
    if stream.write_all(&framed).await.is_err() {
        return;
    }
    let mut first = true;
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut message = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut message).await.is_err() {
            return;
        }
        let arrived = now_micros();
        let Ok(message) = dso::decode(&message) else {
            return;
        };
        if first {
            first = false;
            tally.subscribed.fetch_add(1, Ordering::Relaxed);
            // Handshakes in flight are bounded; an established session frees its place.
            permit.take();
        }
        for tlv in message.tlvs() {
            let dso::Tlv::Push(changes) = tlv else {
                continue;
            };
            for change in changes {
                let dso::PushChange::Add { rdata, .. } = change else {
                    continue;
                };
                let hickory_proto::rr::RData::TXT(txt) = rdata else {
                    continue;
                };
                let field = |key: &str| {
                    txt.txt_data.iter().find_map(|s| {
                        std::str::from_utf8(s)
                            .ok()?
                            .strip_prefix(key)
                            .map(String::from)
                    })
                };
                let (Some(since), Some(serial)) = (field("since="), field("serial=")) else {
                    continue;
                };
                let Ok(since) = chrono::DateTime::parse_from_rfc3339(&since) else {
                    continue;
                };
                let Ok(round) = serial.parse::<usize>() else {
                    continue;
                };
                let latency_ms = (arrived - since.timestamp_micros()) as f64 / 1000.0;
                tally.record(round, latency_ms);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A minimal MQTT 3.1.1 client (CONNECT, SUBSCRIBE, PUBLISH QoS 1, PUBACK).

fn mqtt_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn mqtt_packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn mqtt_connect(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    mqtt_string(&mut body, "MQTT");
    body.extend_from_slice(&[4, 0x02]); // level 3.1.1, clean session
    body.extend_from_slice(&600u16.to_be_bytes()); // keep alive
    mqtt_string(&mut body, client_id);
    mqtt_packet(0x10, &body)
}

/// Reads one MQTT packet: its first byte and its body.
async fn mqtt_read<S: AsyncReadExt + Unpin>(stream: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let kind = stream.read_u8().await?;
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let byte = stream.read_u8().await?;
        len |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 || shift > 21 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok((kind, body))
}

async fn mqtt_open(
    index: usize,
    port: u16,
    connector: &TlsConnector,
    client_id: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut stream = connect_tls(index, port, connector).await?;
    stream.write_all(&mqtt_connect(client_id)).await?;
    let (kind, body) = mqtt_read(&mut stream).await?;
    if kind != 0x20 || body.get(1) != Some(&0) {
        return Err(std::io::Error::other(format!("CONNACK {kind:#x} {body:?}")));
    }
    Ok(stream)
}

#[allow(clippy::too_many_arguments)]
async fn mqtt_subscriber(index: usize, port: u16, connector: TlsConnector, tally: Tally) {
    let mut permit = Some(tally.gate.clone().acquire_owned().await.unwrap());
    let mut stream = match mqtt_open(index, port, &connector, &format!("sub-{index}")).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mqtt subscriber {index}: {e}");
            return;
        }
    };
    let mut body = 1u16.to_be_bytes().to_vec();
    mqtt_string(&mut body, "bench/signal");
    body.push(1);
    if stream.write_all(&mqtt_packet(0x82, &body)).await.is_err() {
        return;
    }
    loop {
        let Ok((kind, body)) = mqtt_read(&mut stream).await else {
            return;
        };
        let arrived = now_micros();
        match kind >> 4 {
            9 => {
                tally.subscribed.fetch_add(1, Ordering::Relaxed);
                permit.take();
            }
            3 => {
                let qos = (kind >> 1) & 3;
                if body.len() < 2 {
                    return;
                }
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let mut at = 2 + topic_len;
                if qos > 0 {
                    let id = &body[at..at + 2];
                    at += 2;
                    let ack = mqtt_packet(0x40, id);
                    if stream.write_all(&ack).await.is_err() {
                        return;
                    }
                }
                let payload = String::from_utf8_lossy(&body[at..]).to_string();
                let Some((round, sent)) = payload.split_once(' ') else {
                    continue;
                };
                let (Ok(round), Ok(sent)) = (round.parse::<usize>(), sent.parse::<i64>()) else {
                    continue;
                };
                tally.record(round, (arrived - sent) as f64 / 1000.0);
            }
            _ => {}
        }
    }
}

async fn mqtt_publish(stream: &mut TlsStream<TcpStream>, round: usize) {
    let mut body = Vec::new();
    mqtt_string(&mut body, "bench/signal");
    body.extend_from_slice(&(round as u16 + 1).to_be_bytes());
    body.extend_from_slice(format!("{round} {}", now_micros()).as_bytes());
    stream.write_all(&mqtt_packet(0x32, &body)).await.unwrap();
    // PUBACK
    let _ = mqtt_read(stream).await;
}

// ---------------------------------------------------------------------------------------

struct Row {
    tool: &'static str,
    sessions: usize,
    delivered: usize,
    expected: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summarise(tool: &'static str, sessions: usize, rounds: usize, latencies: &Latencies) -> Row {
    let mut all: Vec<f64> = latencies
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .copied()
        .collect();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Row {
        tool,
        sessions,
        delivered: all.len(),
        expected: sessions * rounds,
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        max: all.last().copied().unwrap_or(f64::NAN),
    }
}

async fn wait_until(what: &str, count: &AtomicUsize, target: usize, timeout: Duration) {
    let started = Instant::now();
    let mut last_report = Instant::now();
    while count.load(Ordering::Relaxed) < target {
        if started.elapsed() > timeout {
            eprintln!(
                "{what}: only {} of {target} after {timeout:?}",
                count.load(Ordering::Relaxed)
            );
            return;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("{what}: {} of {target}", count.load(Ordering::Relaxed));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Lab {
    child: Child,
    commands: ChildStdin,
}

impl Lab {
    fn bump(&mut self, serial: usize) {
        writeln!(self.commands, "zone bench.test. {serial}").unwrap();
        self.commands.flush().unwrap();
    }
}

fn main() {
    let open_files = raise_open_files() as usize;
    let subscribers = env_or("SUBSCRIBERS", 10_000);
    let asked_idle = env_or("IDLE", 50_000);
    // The daemon needs a descriptor per session: stay under the limit it inherits.
    let idle = asked_idle.min(open_files.saturating_sub(500));
    if idle < asked_idle {
        eprintln!(
            "open files are limited to {open_files} here (no CAP_SYS_RESOURCE to raise it): holding {idle} idle sessions instead of {asked_idle}"
        );
    }
    let rounds = env_or("ROUNDS", 10);
    let mosquitto = require("mosquitto", "mosquitto");
    dns_oops::push::tls::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path());
    let tls = dns_oops::push::tls::client_config(&dns_oops::push::tls::ClientTlsOptions {
        ca: Some(ca.clone()),
        ..Default::default()
    })
    .unwrap();
    let connector = TlsConnector::from(tls);

    // The watched server: the demo's lab server, told to bump a serial on stdin.
    let lab_port = free_port();
    let mut lab_child = server_command(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["demo", "--lab-server", &format!("127.0.0.1:{lab_port}")])
        .arg(dir.path().join("lab.pid"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let commands = lab_child.stdin.take().unwrap();
    let mut lab = Lab {
        child: lab_child,
        commands,
    };
    lab.bump(1);
    let push_port = free_port();
    let config = dir.path().join("dns-oops.toml");
    std::fs::write(
        &config,
        format!(
            r#"node = "bench"
[journal]
path = "{dir}/journal.sqlite"
[http]
listen = "off"
[[server]]
name = "lab"
address = "127.0.0.1:{lab_port}"
zones = ["bench.test."]
[[source]]
type = "probe"
server = "lab"
interval = "100ms"
rise = 1
fall = 1
[[channel]]
type = "push"
listen = "127.0.0.1:{push_port}"
cert = "{dir}/server.pem"
key = "{dir}/server.key"
max-sessions = 1000000
"#,
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let mut daemon = server_command(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["run", "--config"])
        .arg(&config)
        .env("DNS_OOPS_LOG", "warn")
        .spawn()
        .unwrap();
    let daemon_pid = daemon.id();

    let mqtt_port = free_port();
    let mosquitto_conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &mosquitto_conf,
        format!(
            "listener {mqtt_port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\n\
             cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nlog_type error\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    // Its log of clients that go away without DISCONNECT is noise here.
    let mut broker = server_command(&mosquitto)
        .arg("-c")
        .arg(&mosquitto_conf)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    pin_clients();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let gate = Arc::new(Semaphore::new(256));

        // --- DNS Push fan-out
        let tally = Tally::new(rounds + 2, &gate);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..subscribers {
            tasks.spawn(push_subscriber(
                i,
                push_port,
                connector.clone(),
                "zone-updated.lab.bench.oops.internal.".into(),
                tally.clone(),
            ));
        }
        // A subscription with no records yet gets no initial PUSH: count the responses.
        wait_until(
            "push sessions",
            &tally.subscribed,
            subscribers,
            Duration::from_secs(300),
        )
        .await;
        for round in 2..rounds + 2 {
            lab.bump(round);
            let target = subscribers * (round - 1);
            wait_until(
                "push deliveries",
                &tally.received,
                target,
                Duration::from_secs(30),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        rows.push(summarise(
            "dns-oops push (DNS Push over TLS)",
            subscribers,
            rounds,
            &tally.latencies,
        ));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}

        // --- mosquitto fan-out
        let tally = Tally::new(rounds + 2, &gate);
        for i in 0..subscribers {
            tasks.spawn(mqtt_subscriber(
                i,
                mqtt_port,
                connector.clone(),
                tally.clone(),
            ));
        }
        wait_until(
            "mqtt sessions",
            &tally.subscribed,
            subscribers,
            Duration::from_secs(300),
        )
        .await;
        let mut publisher = mqtt_open(99, mqtt_port, &connector, "publisher")
            .await
            .unwrap();
        for round in 2..rounds + 2 {
            mqtt_publish(&mut publisher, round).await;
            let target = subscribers * (round - 1);
            wait_until(
                "mqtt deliveries",
                &tally.received,
                target,
                Duration::from_secs(30),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        rows.push(summarise(
            "mosquitto (MQTT 3.1.1 over TLS, QoS 1)",
            subscribers,
            rounds,
            &tally.latencies,
        ));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}

        // --- idle DNS Push sessions and memory
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = rss_kib(daemon_pid);
        let idle_tally = Tally::new(0, &gate);
        for i in 0..idle {
            tasks.spawn(push_subscriber(
                i,
                push_port,
                connector.clone(),
                "server-running.lab.bench.oops.internal.".into(),
                idle_tally.clone(),
            ));
        }
        wait_until(
            "idle sessions",
            &idle_tally.subscribed,
            idle,
            Duration::from_secs(600),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let held = idle_tally.subscribed.load(Ordering::Relaxed);
        let after = rss_kib(daemon_pid);
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        (rows, held, before, after)
    });
    let (rows, held, before, after) = rows;
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = lab.child.kill();
    let _ = lab.child.wait();

    let per_session = (after.saturating_sub(before)) as f64 / held.max(1) as f64;
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let broker_version = Command::new(&mosquitto)
        .arg("-h")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    let mut table = format!(
        "\n## push_fanout — {subscribers} subscribers, {rounds} changes; {idle} idle sessions\n\n\
         `SUBSCRIBERS={subscribers} IDLE={asked_idle} ROUNDS={rounds} cargo bench --bench push_fanout` on {cpu_model} \
         ({} CPUs, Linux {}), {broker_version}, clients in the same process{}, {}.\n\n\
         | tool | subscribers | delivered | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|\n",
        machine_cpus(),
        kernel.trim(),
        if pinning() {
            " (servers pinned to CPU 0, clients on the other CPUs)"
        } else {
            ""
        },
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {}/{} | {:.1} | {:.1} | {:.1} |\n",
            r.tool, r.sessions, r.delivered, r.expected, r.p50, r.p99, r.max
        ));
    }
    if let [ours, peer] = rows.as_slice() {
        table.push_str(&format!(
            "\np99 ratio dns-oops / mosquitto: {:.2} (target: dns-oops p99 ≤ 100 ms)\n",
            ours.p99 / peer.p99
        ));
    }
    if idle < asked_idle {
        table.push_str(&format!(
            "\n{asked_idle} idle sessions were asked for; RLIMIT_NOFILE is {open_files} on this machine and cannot be raised, so {idle} were opened.\n"
        ));
    }
    table.push_str(&format!(
        "\nIdle DNS Push sessions held: {held} of {idle}; daemon RSS {before} KiB before, {after} KiB after: \
         {per_session:.1} KiB per session (target ≤ 16 KiB).\n"
    ));
    print!("{table}");
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .unwrap()
        .write_all(table.as_bytes())
        .unwrap();
}
