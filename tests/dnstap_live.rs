//! The dnstap source against real servers under real load: knotd (`mod-dnstap`, unix
//! socket), unbound (dnstap over TCP), nsd and named (unix sockets) stream their traffic to
//! dns-oops while `dnsperf` drives a known query rate at them. The rate dns-oops reports is
//! within 10 % of what dnsperf achieved, `query-rate-high` is met while the load lasts and
//! cleared after (and with knotd, `query-rate-rising` at the step from idle to the load,
//! cleared once the load is steady); an unbound validating a zone against a trust anchor the zone does not
//! match answers with Extended DNS Error 6 (DNSSEC Bogus), which raises `extended-error`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Knot, free_port, require};
use dns_oops::condition::ConditionId;
use dns_oops::signal::SignalState;

/// The load: queries per second, for this long.
const RATE: u32 = 2000;
const LOAD: Duration = Duration::from_secs(6);
/// `query-rate-high` threshold: half the load.
const THRESHOLD: u32 = 1000;
const SIGNAL_WAIT: Duration = Duration::from_secs(15);

/// A server process started by a test, killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(name: &'static str, dir: &Path, command: &mut Command) -> Server {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Server { name, child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dns-oops watching `server` at `address`, with a dnstap source on `listen`.
fn start_daemon(
    dir: &Path,
    server: &str,
    address: SocketAddr,
    zones: &[&str],
    listen: &str,
    extra: &str,
) -> (Daemon, SocketAddr) {
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let zones: Vec<String> = zones.iter().map(|z| format!("\"{z}\"")).collect();
    let config = format!(
        r#"node = "it"
[journal]
path = "{dir}/journal.sqlite"
[http]
listen = "{http}"
[[server]]
name = "{server}"
address = "{address}"
zones = [{zones}]
[[source]]
type = "dnstap"
server = "{server}"
listen = "{listen}"
socket-mode = "0666"
{extra}
[[channel]]
type = "log"
"#,
        dir = dir.display(),
        zones = zones.join(", "),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::start(&path);
    wait_until("the HTTP API answers", Duration::from_secs(10), || {
        TcpStream::connect(http).is_ok()
    });
    (daemon, http)
}

fn rate_rule() -> String {
    format!("[source.query-rate-high]\nthreshold = {THRESHOLD}\nwindow = \"3s\"\n")
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /metrics`.
fn metrics(http: SocketAddr) -> String {
    let mut stream = TcpStream::connect(http).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// The value of the series starting with `series` (name and labels), if present.
fn metric(http: SocketAddr, series: &str) -> Option<f64> {
    metrics(http).lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

/// What dnsperf reports.
#[derive(Debug)]
struct Dnsperf {
    sent: u64,
    completed: u64,
    qps: f64,
}

fn dnsperf(dir: &Path, port: u16, qname: &str, rate: u32, length: Duration) -> Child {
    let input = dir.join("queries.txt");
    std::fs::write(&input, format!("{qname} A\n")).unwrap();
    Command::new(require("dnsperf", "dnsperf"))
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(&input)
        .args(["-l", &length.as_secs().to_string(), "-Q", &rate.to_string()])
        .args(["-c", "2", "-t", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dnsperf")
}

fn dnsperf_result(child: Child) -> Dnsperf {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dnsperf failed: {text}");
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` in dnsperf's output:\n{text}"))
    };
    Dnsperf {
        sent: field("Queries sent:") as u64,
        completed: field("Queries completed:") as u64,
        qps: field("Queries per second:"),
    }
}

/// Drives the load at `port` while `daemon` listens to the server's dnstap, and checks
/// the rate, `query-rate-high` met under the load and cleared after it.
fn check_rate(
    name: &str,
    daemon: &mut Daemon,
    http: SocketAddr,
    dir: &Path,
    port: u16,
    qname: &str,
) {
    let connections = format!("dns_oops_dnstap_connections{{server=\"{name}\"}}");
    wait_until(
        &format!("{name} connects to the dnstap socket"),
        Duration::from_secs(15),
        || metric(http, &connections).is_some_and(|n| n >= 1.0),
    );
    let queries_series = format!("dns_oops_dnstap_queries_total{{server=\"{name}\"}}");
    let before = metric(http, &queries_series).unwrap_or(0.0);
    let started = Instant::now();
    let load = dnsperf(dir, port, qname, RATE, LOAD);
    let (_, met) = daemon.wait_for("query-rate-high met", SIGNAL_WAIT, |s| {
        s.condition == ConditionId::QueryRateHigh && s.state == SignalState::Met
    });
    assert_eq!(met.server, name);
    assert_eq!(met.source, "dnstap");
    // Sample the rate in the load's steady part: the 3 s window then holds whole seconds
    // from 1.5 s into the load on.
    let middle = started + LOAD / 2 + Duration::from_millis(1500);
    std::thread::sleep(middle.saturating_duration_since(Instant::now()));
    let rate_series = format!("dns_oops_dnstap_query_rate{{server=\"{name}\"}}");
    let sampled = metric(http, &rate_series).expect("query rate metric");
    let perf = dnsperf_result(load);
    let (_, cleared) = daemon.wait_for("query-rate-high cleared", SIGNAL_WAIT, |s| {
        s.condition == ConditionId::QueryRateHigh && s.state == SignalState::Cleared
    });
    assert!(
        cleared.args["qps"].as_f64().unwrap() < f64::from(THRESHOLD) * 0.9,
        "{cleared:?}"
    );
    // Every query dnsperf sent reaches dns-oops within a second or two of its answer.
    let mut counted = 0.0;
    wait_until("the query count settles", Duration::from_secs(5), || {
        counted = metric(http, &queries_series).unwrap_or(0.0) - before;
        counted >= perf.sent as f64 * 0.9
    });
    let relative = |a: f64, b: f64| (a - b).abs() / b;
    eprintln!(
        "{name}: dnsperf sent {} completed {} at {:.1} qps; dns-oops counted {counted} queries, rate {sampled:.1} qps mid-load, met at {}",
        perf.sent, perf.completed, perf.qps, met.args["qps"]
    );
    assert!(
        relative(counted, perf.sent as f64) <= 0.10,
        "{name}: dns-oops counted {counted} queries, dnsperf sent {}",
        perf.sent
    );
    assert!(
        relative(sampled, perf.qps) <= 0.10,
        "{name}: dns-oops saw {sampled} qps mid-load, dnsperf achieved {} qps",
        perf.qps
    );
    let dropped = format!("dns_oops_dnstap_dropped_frames_total{{server=\"{name}\"}}");
    assert_eq!(metric(http, &dropped), Some(0.0), "{name}: frames dropped");
}

#[test]
fn knotd_over_a_unix_socket() {
    require("dnsperf", "dnsperf");
    assert!(
        knot_has_dnstap(),
        "knotd's dnstap module is missing: install the Debian package `knot-module-dnstap`"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut knot = Knot::new(&dir.join("knot"), &["example.test"]);
    let socket = dir.join("knot-tap.sock");
    let (mut daemon, http) = start_daemon(
        dir,
        "knot",
        knot.addr(),
        &["example.test."],
        &format!("unix:{}", socket.display()),
        &format!(
            "{}[source.query-rate-rising]\nthreshold = 300\nwindow = \"3s\"\n",
            rate_rule()
        ),
    );
    // Add mod-dnstap to the helper's config.
    let conf_path = knot.dir.join("knot.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let conf = conf.replace(
        "template:\n  - id: default\n",
        &format!(
            "mod-dnstap:\n  - id: tap\n    sink: unix:{}\n    log-queries: on\n    log-responses: on\n\
             template:\n  - id: default\n    global-module: mod-dnstap/tap\n",
            socket.display()
        ),
    );
    std::fs::write(&conf_path, conf).unwrap();
    knot.start();
    // A few queries first, so the rise window has history from before the load.
    let kdig = require("kdig", "knot-dnsutils");
    wait_until("knotd answers", Duration::from_secs(10), || {
        Command::new(&kdig)
            .args(["@127.0.0.1", "-p", &knot.port.to_string(), "+short"])
            .args(["www.example.test", "A"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("192.0.2.1"))
    });
    std::thread::sleep(Duration::from_secs(4));
    check_rate(
        "knot",
        &mut daemon,
        http,
        dir,
        knot.port,
        "www.example.test",
    );
    // The step from idle to 2000 qps is a rise of well over 300 qps per second; the
    // steady load is none.
    daemon.drain(Duration::from_millis(500));
    let rising: Vec<_> = daemon
        .seen
        .iter()
        .filter(|s| s.condition == ConditionId::QueryRateRising)
        .collect();
    assert!(
        rising.len() >= 2
            && rising[0].state == SignalState::Met
            && rising[0].args["slope"].as_f64().unwrap() >= 300.0
            && rising[1].state == SignalState::Cleared,
        "{rising:?}"
    );
}

#[test]
fn nsd_over_a_unix_socket() {
    let nsd = require("nsd", "nsd");
    require("dnsperf", "dnsperf");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let socket = dir.join("nsd-tap.sock");
    let (mut daemon, http) = start_daemon(
        dir,
        "nsd",
        SocketAddr::from(([127, 0, 0, 1], port)),
        &["example.test."],
        &format!("unix:{}", socket.display()),
        &rate_rule(),
    );
    write_zone(dir, "example.test");
    let d = dir.display();
    std::fs::write(
        dir.join("nsd.conf"),
        format!(
            "server:\n    ip-address: 127.0.0.1@{port}\n    username: \"\"\n    zonesdir: \"{d}\"\n    database: \"\"\n\
             \x20   pidfile: \"{d}/nsd.pid\"\n    xfrdfile: \"{d}/xfrd.state\"\n    zonelistfile: \"{d}/zone.list\"\n\
             \x20   server-count: 1\n    verbosity: 1\n    rrl-ratelimit: 0\n\
             remote-control:\n    control-enable: no\n\
             dnstap:\n    dnstap-enable: yes\n    dnstap-socket-path: \"{s}\"\n\
             \x20   dnstap-log-auth-query-messages: yes\n    dnstap-log-auth-response-messages: yes\n\
             zone:\n    name: example.test\n    zonefile: example.test.zone\n",
            s = socket.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        "nsd",
        dir,
        Command::new(nsd)
            .arg("-d")
            .arg("-c")
            .arg(dir.join("nsd.conf")),
    );
    check_rate(
        server.name,
        &mut daemon,
        http,
        dir,
        port,
        "www.example.test",
    );
}

#[test]
fn named_over_a_unix_socket() {
    let named = require("named", "bind9");
    require("dnsperf", "dnsperf");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let socket = dir.join("bind-tap.sock");
    let (mut daemon, http) = start_daemon(
        dir,
        "named",
        SocketAddr::from(([127, 0, 0, 1], port)),
        &["example.test."],
        &format!("unix:{}", socket.display()),
        &rate_rule(),
    );
    write_zone(dir, "example.test");
    let d = dir.display();
    std::fs::write(
        dir.join("named.conf"),
        format!(
            "options {{\n directory \"{d}\"; pid-file \"{d}/named.pid\";\n\
             listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n\
             recursion no; allow-query {{ 127.0.0.1; }};\n\
             dnstap {{ auth; client; }}; dnstap-output unix \"{s}\"; dnstap-identity \"bind-test\";\n\
             notify no;\n}};\ncontrols {{ }};\n\
             zone \"example.test\" {{ type primary; file \"example.test.zone\"; }};\n",
            s = socket.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        "named",
        dir,
        Command::new(named)
            .args(["-g", "-n", "1", "-c"])
            .arg(dir.join("named.conf")),
    );
    check_rate(
        server.name,
        &mut daemon,
        http,
        dir,
        port,
        "www.example.test",
    );
}

/// Whether Knot's `mod-dnstap` is installed (`/usr/lib/<triplet>/knot/modules-*/dnstap.so`).
fn knot_has_dnstap() -> bool {
    let Ok(lib) = std::fs::read_dir("/usr/lib") else {
        return false;
    };
    lib.flatten().any(|triplet| {
        std::fs::read_dir(triplet.path().join("knot")).is_ok_and(|dirs| {
            dirs.flatten()
                .any(|modules| modules.path().join("dnstap.so").exists())
        })
    })
}

fn write_zone(dir: &Path, zone: &str) {
    std::fs::write(
        dir.join(format!("{zone}.zone")),
        format!(
            "$ORIGIN {zone}.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n\
             @ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\n"
        ),
    )
    .unwrap();
}

/// An unbound resolving `example.test.` and `bogus.test.` from a knotd; the trust anchor
/// of `bogus.test.` matches no key (the zone is not even signed), so its answers are
/// DNSSEC-bogus.
fn unbound(dir: &Path, knot: &Knot, port: u16, dnstap: SocketAddr) -> Server {
    let unbound = require("unbound", "unbound");
    let d = dir.display();
    let k = knot.port;
    std::fs::write(
        dir.join("unbound.conf"),
        format!(
            "server:\n    interface: 127.0.0.1@{port}\n    port: {port}\n    username: \"\"\n    chroot: \"\"\n\
             \x20   directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    logfile: \"\"\n    use-syslog: no\n\
             \x20   do-daemonize: no\n    num-threads: 1\n    access-control: 127.0.0.0/8 allow\n    ede: yes\n\
             \x20   module-config: \"validator iterator\"\n    do-not-query-localhost: no\n\
             \x20   local-zone: \"test.\" nodefault\n    qname-minimisation: no\n\
             \x20   trust-anchor: \"bogus.test. DS 11111 13 2 {zeros}\"\n\
             stub-zone:\n    name: \"example.test.\"\n    stub-addr: 127.0.0.1@{k}\n\
             stub-zone:\n    name: \"bogus.test.\"\n    stub-addr: 127.0.0.1@{k}\n\
             dnstap:\n    dnstap-enable: yes\n    dnstap-ip: {ip}@{dp}\n    dnstap-tls: no\n\
             \x20   dnstap-log-client-query-messages: yes\n    dnstap-log-client-response-messages: yes\n\
             \x20   dnstap-log-resolver-query-messages: yes\n    dnstap-log-resolver-response-messages: yes\n",
            zeros = "0".repeat(64),
            ip = dnstap.ip(),
            dp = dnstap.port(),
        ),
    )
    .unwrap();
    Server::start(
        "unbound",
        dir,
        Command::new(unbound)
            .arg("-d")
            .arg("-c")
            .arg(dir.join("unbound.conf")),
    )
}

#[test]
fn unbound_over_tcp() {
    require("dnsperf", "dnsperf");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut knot = Knot::new(&dir.join("knot"), &["example.test", "bogus.test"]);
    knot.start();
    let port = free_port();
    let tap = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (mut daemon, http) = start_daemon(
        dir,
        "unbound",
        SocketAddr::from(([127, 0, 0, 1], port)),
        &[],
        &tap.to_string(),
        &rate_rule(),
    );
    let server = unbound(dir, &knot, port, tap);
    check_rate(
        server.name,
        &mut daemon,
        http,
        dir,
        port,
        "www.example.test",
    );
}

#[test]
fn unbound_bogus_answers_raise_extended_error() {
    let kdig = require("kdig", "knot-dnsutils");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut knot = Knot::new(&dir.join("knot"), &["example.test", "bogus.test"]);
    knot.start();
    let port = free_port();
    let tap = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let rule = "[source.extended-error]\ncodes = [6]\nrate = 0.5\nwindow = \"2s\"\n";
    let (mut daemon, http) = start_daemon(
        dir,
        "unbound",
        SocketAddr::from(([127, 0, 0, 1], port)),
        &["example.test.", "bogus.test."],
        &tap.to_string(),
        rule,
    );
    let server = unbound(dir, &knot, port, tap);
    let connections = "dns_oops_dnstap_connections{server=\"unbound\"}";
    wait_until("unbound connects", Duration::from_secs(15), || {
        metric(http, connections).is_some_and(|n| n >= 1.0)
    });
    let query = |name: &str| {
        let out = Command::new(&kdig)
            .args(["@127.0.0.1", "-p", &port.to_string(), "+edns", "+timeout=2"])
            .args([name, "A"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // A good answer carries no EDE and raises nothing.
    assert!(query("www.example.test").contains("NOERROR"));
    let answer = query("www.bogus.test");
    assert!(answer.contains("SERVFAIL"), "{answer}\n{}", server.log());
    // Cached bogus answers carry EDE 6; several a second for a few seconds.
    let until = Instant::now() + Duration::from_secs(3);
    let mut bogus = 0u32;
    while Instant::now() < until {
        if query("www.bogus.test").contains("EDE: 6") {
            bogus += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(bogus > 5, "only {bogus} answers with EDE 6");
    let (_, met) = daemon.wait_for("extended-error met", SIGNAL_WAIT, |s| {
        s.condition == ConditionId::ExtendedError && s.state == SignalState::Met
    });
    assert_eq!(met.server, "unbound");
    assert_eq!(met.subject.as_deref(), Some("bogus.test."));
    assert_eq!(met.args["code"], 6);
    assert_eq!(met.args["text"], "DNSSEC Bogus");
    assert!(met.args["count"].as_u64().unwrap() >= 1, "{met:?}");
    let ede = "dns_oops_dnstap_extended_errors_total{server=\"unbound\",code=\"6\"}";
    wait_until("every EDE 6 answer counted", Duration::from_secs(5), || {
        metric(http, ede).unwrap_or(0.0) >= f64::from(bogus)
    });
    // Quiet: it clears once the window holds no more bogus answers.
    let (_, cleared) = daemon.wait_for("extended-error cleared", SIGNAL_WAIT, |s| {
        s.condition == ConditionId::ExtendedError && s.state == SignalState::Cleared
    });
    assert_eq!(cleared.subject.as_deref(), Some("bogus.test."));
    assert!(
        !daemon
            .seen
            .iter()
            .any(|s| s.condition == ConditionId::ExtendedError
                && s.subject.as_deref() == Some("example.test.")),
        "good answers raised extended-error"
    );
}
