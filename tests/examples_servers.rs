//! The shipped wiring examples, run as shipped: each real server (knotd, nsd, named,
//! unbound, from their Debian packages) with its config from `etc/examples/servers/`, and
//! `dns-oops run` with the matching `etc/examples/<server>.toml`. The files are changed only
//! by plain string substitution: the lab directory `/tmp/dns-oops-lab` becomes a scratch
//! directory and the lab's fixed ports become free ones. Each test then asserts the signals
//! the examples' comments promise, so the examples cannot rot.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::bus::Bus;
use common::{brief, free_port, require};
use dns_oops::condition::ConditionId::{self, *};
use dns_oops::signal::{Signal, SignalState};

const LAB: &str = "/tmp/dns-oops-lab";
const WAIT: Duration = Duration::from_secs(20);
const ZONES: [&str; 3] = ["a.test.", "b.test.", "c.test."];

/// A shipped file, as text.
fn shipped(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("etc/examples")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The substitutions of one test: paths first (longest first), then whole port numbers.
struct Rewrite {
    paths: Vec<(String, String)>,
    ports: Vec<(u16, u16)>,
}

impl Rewrite {
    fn new(dir: &Path, ports: &[u16]) -> Rewrite {
        Rewrite {
            paths: vec![(LAB.to_string(), dir.display().to_string())],
            ports: ports.iter().map(|&p| (p, free_port())).collect(),
        }
    }

    /// The free port that replaces the lab's `port`.
    fn port(&self, port: u16) -> u16 {
        self.ports
            .iter()
            .find(|(from, _)| *from == port)
            .unwrap_or_else(|| panic!("port {port} is not rewritten"))
            .1
    }

    fn apply(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (from, to) in &self.paths {
            text = text.replace(from.as_str(), to);
        }
        for (from, to) in &self.ports {
            text = replace_number(&text, &from.to_string(), &to.to_string());
        }
        assert!(
            !text.contains(LAB),
            "a lab path was left unrewritten:\n{text}"
        );
        text
    }

    /// Writes the shipped file `relative`, rewritten, to `to`.
    fn write(&self, relative: &str, to: &Path) -> PathBuf {
        let text = self.apply(&shipped(relative));
        std::fs::write(to, text).unwrap();
        to.to_path_buf()
    }
}

/// Replaces `from` where it stands as a whole number (no digit right before or after).
fn replace_number(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit()) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// The quick start's zone files, serial `serial`, in `dir/zones`.
fn write_zone(dir: &Path, zone: &str, serial: u32) {
    let name = zone.trim_end_matches('.');
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(
        dir.join("zones").join(format!("{name}.zone")),
        format!(
            "$ORIGIN {name}.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 86400 300\n\
             @ NS ns1\nns1 A 127.0.0.1\n"
        ),
    )
    .unwrap();
}

/// `dns-oops run` with a rewritten example: signal lines from stdout, log lines from stderr
/// (with notify-in's per-NOTIFY debug lines).
struct Oops {
    child: Child,
    signals: mpsc::Receiver<(Instant, Signal)>,
    log: Arc<Mutex<Vec<String>>>,
    seen: Vec<Signal>,
}

impl Oops {
    fn start(config: &Path, env: &[(&str, &str)]) -> Oops {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("DNS_OOPS_LOG", "info,dns_oops::sources::notify_in=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dns-oops");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, signals) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let signal: Signal = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not a signal ({e}): {line}"));
                if tx.send((Instant::now(), signal)).is_err() {
                    break;
                }
            }
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("dns-oops: {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Oops {
            child,
            signals,
            log,
            seen: Vec::new(),
        }
    }

    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Signal) -> bool,
    ) -> (Instant, Signal) {
        if let Some(found) = self.seen.iter().find(|s| pred(s)) {
            return (Instant::now(), found.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.signals.recv_timeout(left) {
                Ok((at, signal)) => {
                    self.seen.push(signal.clone());
                    if pred(&signal) {
                        return (at, signal);
                    }
                }
                Err(_) => panic!(
                    "no signal `{what}` within {timeout:?}; seen:\n{}",
                    self.seen.iter().map(brief).collect::<Vec<_>>().join("\n")
                ),
            }
        }
    }

    /// Waits for a condition met (for `subject` when given).
    fn met(&mut self, condition: ConditionId, subject: Option<&str>) -> Signal {
        let what = format!("{condition} {} met", subject.unwrap_or("-"));
        self.wait_for(&what, WAIT, |s| {
            s.condition == condition
                && s.state == SignalState::Met
                && s.subject.as_deref() == subject
        })
        .1
    }

    /// Waits for `zone-updated` of `zone` to `serial`.
    fn updated(&mut self, zone: &str, serial: u32) -> (Instant, Signal) {
        self.wait_for(&format!("zone-updated {zone} {serial}"), WAIT, |s| {
            s.condition == ZoneUpdated
                && s.subject.as_deref() == Some(zone)
                && s.args["serial"] == serial
        })
    }

    fn log_has(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Oops {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server process, killed at the end of the test.
struct Server {
    child: Option<Child>,
    name: &'static str,
    log: PathBuf,
}

impl Server {
    fn start(
        program: &'static str,
        package: &str,
        args: &[&str],
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Server {
        let log = dir.join(format!("{program}.out"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(require(program, package))
            .args(args)
            .envs(env.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        Server {
            child: Some(child),
            name: program,
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` and waits for the process to end; returns when it was sent.
    fn signal_and_wait(&mut self, signal: i32) -> Instant {
        let at = Instant::now();
        common::signal(self.pid(), signal);
        let _ = self.child.take().unwrap().wait();
        at
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first: nsd's parent takes its children down with it.
            common::signal(child.id(), 15);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("{} did not stop on SIGTERM", self.name);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `path` exists (a socket or pid file the other side creates).
fn wait_path(path: &Path) {
    let deadline = Instant::now() + WAIT;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
fn wait_tcp(port: u16) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `count` SOA queries for `zone` over UDP to 127.0.0.1:`port`, each waiting for its
/// answer; returns how many were answered.
fn query(port: u16, zone: &str, count: u16) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answered = 0;
    for id in 0..count {
        let mut packet = id.to_be_bytes().to_vec();
        // RD clear, one question.
        packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in zone.trim_end_matches('.').split('.') {
            packet.push(label.len() as u8);
            packet.extend_from_slice(label.as_bytes());
        }
        packet.extend_from_slice(&[0, 0, 6, 0, 1]);
        socket.send_to(&packet, ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 1500];
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && n >= 2
            && buf[..2] == id.to_be_bytes()
        {
            answered += 1;
        }
    }
    answered
}

/// The sum of the metric `name` for server `server` on dns-oops' /metrics.
fn metric(http: u16, name: &str, server: &str) -> f64 {
    let mut stream = TcpStream::connect(("127.0.0.1", http)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let label = format!("server=\"{server}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until dnstap has told dns-oops of at least `at_least` queries to `server`.
fn wait_dnstap_queries(http: u16, server: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = metric(http, "dns_oops_dnstap_queries_total", server);
        if seen >= at_least {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "dnstap counted {seen} queries to {server}, expected at least {at_least}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the control source's last poll of `server` was answered.
fn wait_control_up(http: u16, server: &str) {
    let deadline = Instant::now() + WAIT;
    while metric(http, "dns_oops_control_up", server) != 1.0 {
        assert!(
            Instant::now() < deadline,
            "the control source never reached {server}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every zone ready with serial 1, and all-zones-ready.
fn zones_ready(oops: &mut Oops) {
    for zone in ZONES {
        let ready = oops.met(ZoneReady, Some(zone));
        assert_eq!(ready.args["serial"], 1, "{}", ready.to_json_line());
    }
    oops.met(AllZonesReady, None);
}

/// How many NOTIFYs for `zone` dns-oops has accepted so far (its debug log lines).
/// Writes serial 2 of a.test., runs `reload` (the server's own tool), and checks that
/// dns-oops says zone-updated 1 → 2 and accepted a new NOTIFY for it.
fn reload_is_zone_updated(oops: &mut Oops, d: &Path, mut reload: Command, what: &str) {
    let notified = notifies_accepted(oops, "a.test.");
    write_zone(d, "a.test.", 2);
    let changed = Instant::now();
    let status = reload.stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "{what} failed");
    let (at, updated) = oops.updated("a.test.", 2);
    assert_eq!(updated.args["previous-serial"], 1);
    println!(
        "{what} → zone-updated in {:?} (from {})",
        at.duration_since(changed),
        updated.source
    );
    assert_notify_accepted(oops, "a.test.", notified);
}

/// The server's control channel answers dns-oops (`dns_oops_control_up`), and `count`
/// queries for `zone` to the server's DNS port `dns_port` (as shipped) reach dns-oops
/// through dnstap.
fn control_and_dnstap_see(lab: &Rewrite, server: &str, dns_port: u16, zone: &str, count: u16) {
    wait_control_up(lab.port(8054), server);
    assert_eq!(query(lab.port(dns_port), zone, count), count);
    let counted = wait_dnstap_queries(lab.port(8054), server, f64::from(count));
    println!("dnstap: {counted} queries counted");
}

fn notifies_accepted(oops: &Oops, zone: &str) -> usize {
    let zone = format!("zone=\"{zone}\"");
    oops.log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("NOTIFY accepted") && l.contains(&zone))
        .count()
}

/// A NOTIFY for `zone` beyond the first `before` was accepted (its TSIG checked), and none
/// was refused.
fn assert_notify_accepted(oops: &Oops, zone: &str, before: usize) {
    let deadline = Instant::now() + WAIT;
    while notifies_accepted(oops, zone) <= before {
        assert!(
            Instant::now() < deadline,
            "no NOTIFY for {zone} accepted after the change"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !oops.log_has("NOTIFY refused"),
        "a NOTIFY from the shipped server config was refused"
    );
}

fn sources(oops: &Oops) -> Vec<String> {
    let mut all: Vec<String> = oops.seen.iter().map(|s| s.source.clone()).collect();
    all.sort();
    all.dedup();
    all
}

#[test]
fn knot_wired_as_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for sub in ["run", "db", "state"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    for zone in ZONES {
        write_zone(d, zone, 1);
    }
    let lab = Rewrite::new(d, &[5301, 5391, 8054]);
    let conf = lab.write("servers/knot.conf", &d.join("knot.conf"));
    let config = lab.write("knot.toml", &d.join("knot.toml"));
    // The short form, heard by a second dns-oops with its own journal and HTTP port.
    let mut short = Rewrite::new(d, &[5301, 8054]);
    short.ports[0].1 = lab.port(5301);
    short.paths.insert(
        0,
        (
            format!("{LAB}/state"),
            d.join("state-dbus").display().to_string(),
        ),
    );
    let short_config = short.write("knot-dbus.toml", &d.join("knot-dbus.toml"));
    for path in [&config, &short_config] {
        let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
            .args(["check-config", "--config"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let check = Command::new(require("knotc", "knot"))
        .arg("-c")
        .arg(&conf)
        .arg("conf-check")
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    let bus = Bus::start(d);
    let env = [("DBUS_SYSTEM_BUS_ADDRESS", bus.address.as_str())];
    let mut oops = Oops::start(&config, &env);
    let mut short_oops = Oops::start(&short_config, &env);
    wait_tcp(lab.port(5391));
    wait_path(&d.join("knot-dnstap.sock"));
    let started = Instant::now();
    let mut knot = Server::start("knotd", "knot", &["-c", conf.to_str().unwrap()], d, &env);

    let running = oops.met(ServerRunning, None);
    zones_ready(&mut oops);
    println!(
        "knotd started → every zone ready in {:?}; server-running from {}",
        started.elapsed(),
        running.source
    );
    // The short example hears the same through D-Bus and the control socket.
    short_oops.met(ServerRunning, None);
    zones_ready(&mut short_oops);

    control_and_dnstap_see(&lab, "knot", 5301, "a.test.", 50);

    // A zone change: D-Bus, NOTIFY and the control socket all hear it.
    let notified = notifies_accepted(&oops, "a.test.");
    write_zone(d, "a.test.", 2);
    let changed = Instant::now();
    let knotc = |args: &[&str]| {
        let status = Command::new(require("knotc", "knot"))
            .arg("-c")
            .arg(&conf)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "knotc {args:?}");
    };
    knotc(&["zone-reload", "a.test"]);
    let (at, updated) = oops.updated("a.test.", 2);
    assert_eq!(updated.args["previous-serial"], 1);
    println!(
        "zone-reload → zone-updated in {:?} (from {})",
        at.duration_since(changed),
        updated.source
    );
    let (_, short_updated) = short_oops.updated("a.test.", 2);
    assert!(
        ["knot-dbus", "control"].contains(&short_updated.source.as_str()),
        "{}",
        short_updated.to_json_line()
    );
    // knotd's NOTIFY, signed with the shipped key, was accepted, and knotd took the signed
    // answer.
    assert_notify_accepted(&oops, "a.test.", notified);
    let deadline = Instant::now() + WAIT;
    while !knot
        .output()
        .lines()
        .any(|l| l.contains("notify, outgoing") && l.contains("serial 2") && !l.contains("failed"))
    {
        assert!(
            Instant::now() < deadline,
            "knotd did not log its NOTIFY as done:\n{}",
            knot.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !knot.output().contains("failed"),
        "knotd logged a failure:\n{}",
        knot.output()
    );

    // kill -9: the lost bus name and the pid file left behind both say crash.
    let killed = knot.signal_and_wait(9);
    let (at, crashed) = oops.wait_for("server-crashed", WAIT, |s| {
        s.condition == ServerCrashed && s.state == SignalState::Met
    });
    println!(
        "kill -9 → server-crashed in {:?} (from {})",
        at.duration_since(killed),
        crashed.source
    );
    let (_, short_crashed) = short_oops.wait_for("server-crashed", WAIT, |s| {
        s.condition == ServerCrashed && s.state == SignalState::Met
    });
    assert_eq!(short_crashed.source, "knot-dbus");
    println!("sources heard: {:?}", sources(&oops));
}

#[test]
fn nsd_wired_as_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for sub in ["nsd", "state"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    for zone in ZONES {
        write_zone(d, zone, 1);
    }
    let lab = Rewrite::new(d, &[5302, 5392, 5347, 8054]);
    let conf = lab.write("servers/nsd.conf", &d.join("nsd.conf"));
    let config = lab.write("nsd.toml", &d.join("nsd.toml"));
    let check = Command::new(require("nsd-checkconf", "nsd"))
        .arg(&conf)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    let mut oops = Oops::start(&config, &[]);
    wait_tcp(lab.port(5392));
    wait_path(&d.join("nsd/dnstap.sock"));
    let started = Instant::now();
    // `verifier: dns-oops nsd-verify …` finds this build of dns-oops on the PATH.
    let bin = Path::new(env!("CARGO_BIN_EXE_dns-oops")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut nsd = Server::start(
        "nsd",
        "nsd",
        &["-d", "-c", conf.to_str().unwrap()],
        d,
        &[("PATH", path.as_str())],
    );

    let running = oops.met(ServerRunning, None);
    zones_ready(&mut oops);
    println!(
        "nsd started → every zone ready in {:?}; server-running from {}",
        started.elapsed(),
        running.source
    );

    control_and_dnstap_see(&lab, "nsd", 5302, "b.test.", 50);

    let mut reload = Command::new(require("nsd-control", "nsd"));
    reload.arg("-c").arg(&conf).args(["reload", "a.test"]);
    reload_is_zone_updated(&mut oops, d, reload, "nsd-control reload");

    // A clean stop: nsd removes its pid file and its control socket.
    let stopped = nsd.signal_and_wait(15);
    let (at, cleared) = oops.wait_for("server-running cleared", WAIT, |s| {
        s.condition == ServerRunning && s.state == SignalState::Cleared
    });
    println!(
        "SIGTERM → server-running cleared in {:?} (from {})",
        at.duration_since(stopped),
        cleared.source
    );
    assert!(
        !oops
            .seen
            .iter()
            .any(|s| s.condition == ServerCrashed && s.state == SignalState::Met),
        "a clean stop of nsd was reported as a crash"
    );
    println!("sources heard: {:?}", sources(&oops));
}

#[test]
fn bind_wired_as_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for sub in ["bind", "state"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    for zone in ZONES {
        write_zone(d, zone, 1);
    }
    require("rndc", "bind9-utils");
    let lab = Rewrite::new(d, &[5303, 5393, 9533, 8054]);
    let conf = lab.write("servers/named.conf", &d.join("named.conf"));
    let rndc_conf = lab.write("servers/rndc.conf", &d.join("bind/rndc.conf"));
    let config = lab.write("bind.toml", &d.join("bind.toml"));
    let check = Command::new(require("named-checkconf", "bind9-utils"))
        .arg(&conf)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    let mut oops = Oops::start(&config, &[]);
    wait_tcp(lab.port(5393));
    wait_path(&d.join("bind/dnstap.sock"));
    let started = Instant::now();
    let mut named = Server::start(
        "named",
        "bind9",
        &["-g", "-c", conf.to_str().unwrap()],
        d,
        &[],
    );

    let running = oops.met(ServerRunning, None);
    zones_ready(&mut oops);
    println!(
        "named started → every zone ready in {:?}; server-running from {}",
        started.elapsed(),
        running.source
    );

    control_and_dnstap_see(&lab, "bind", 5303, "c.test.", 50);

    let mut reload = Command::new(require("rndc", "bind9-utils"));
    reload.arg("-c").arg(&rndc_conf).args(["reload", "a.test"]);
    reload_is_zone_updated(&mut oops, d, reload, "rndc reload");

    let killed = named.signal_and_wait(9);
    let (at, crashed) = oops.wait_for("server-crashed", WAIT, |s| {
        s.condition == ServerCrashed && s.state == SignalState::Met
    });
    assert_eq!(crashed.source, "process");
    println!(
        "kill -9 → server-crashed in {:?}",
        at.duration_since(killed)
    );
    println!("sources heard: {:?}", sources(&oops));
}

#[test]
fn unbound_wired_as_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for sub in ["unbound", "state"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    // 5301 is the lab's knotd, which the resolver asks; none runs here, so its answers are
    // SERVFAIL, which dnstap reports all the same.
    let lab = Rewrite::new(d, &[5304, 5301, 8054]);
    let conf = lab.write("servers/unbound.conf", &d.join("unbound.conf"));
    let config = lab.write("unbound.toml", &d.join("unbound.toml"));
    let check = Command::new(require("unbound-checkconf", "unbound"))
        .arg(&conf)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    let mut oops = Oops::start(&config, &[]);
    wait_path(&d.join("unbound/dnstap.sock"));
    let started = Instant::now();
    let mut unbound = Server::start(
        "unbound",
        "unbound",
        &["-d", "-c", conf.to_str().unwrap()],
        d,
        &[],
    );
    let running = oops.met(ServerRunning, None);
    println!(
        "unbound started → server-running in {:?} (from {})",
        started.elapsed(),
        running.source
    );
    control_and_dnstap_see(&lab, "unbound", 5304, "a.test.", 20);

    let killed = unbound.signal_and_wait(9);
    let (at, crashed) = oops.wait_for("server-crashed", WAIT, |s| {
        s.condition == ServerCrashed && s.state == SignalState::Met
    });
    assert_eq!(crashed.source, "process");
    println!(
        "kill -9 → server-crashed in {:?}",
        at.duration_since(killed)
    );
}
