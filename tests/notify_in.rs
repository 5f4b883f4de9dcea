//! The notify-in source against real servers that send NOTIFY: knotd (Debian package
//! `knot`; NOTIFY over TCP, unsigned and TSIG-signed), nsd (package `nsd`; NOTIFY over
//! UDP) and named (package `bind9`; NOTIFY over UDP, unsigned and TSIG-signed). dns-oops
//! runs with the notify-in source only, no probe, so every zone signal comes from a NOTIFY
//! and the SOA query that confirms it. Refused NOTIFYs are counted in
//! `dns_oops_notify_in_requests_total`, read from `/metrics`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Knot, brief, free_port, require};
use dns_oops::condition::ConditionId::*;
use dns_oops::signal::{Signal, SignalState};

const LONG: Duration = Duration::from_secs(15);
/// A TSIG secret in base64, as `keymgr -t` prints one.
const SECRET: &str = "cGFzc3dvcmQgZm9yIE5PVElGWSB0byBkbnMtb29wcyE=";
const OTHER_SECRET: &str = "c29tZSBvdGhlciBzZWNyZXQsIG5vdCB0aGUgc2FtZQ==";

/// Writes the dns-oops config: one server with zone `a.test`, the notify-in source on
/// `notify_port`, and the log channel.
fn oops_config(dir: &Path, server: SocketAddr, notify_port: u16, secret: Option<&str>) -> PathBuf {
    oops_config_with(dir, server, notify_port, secret, "", None)
}

/// [`oops_config`] with `extra` lines in the source's table and HTTP on `http`.
fn oops_config_with(
    dir: &Path,
    server: SocketAddr,
    notify_port: u16,
    secret: Option<&str>,
    extra: &str,
    http: Option<u16>,
) -> PathBuf {
    let http = match http {
        Some(port) => format!("127.0.0.1:{port}"),
        None => "off".to_string(),
    };
    let key = match secret {
        Some(secret) => format!(
            "tsig-key = {{ name = \"notify-key\", algorithm = \"hmac-sha256\", secret = \"{secret}\" }}\n"
        ),
        None => String::new(),
    };
    let text = format!(
        r#"node = "it"
[journal]
path = "{dir}/state/journal.sqlite"
[http]
listen = "{http}"
[[server]]
name = "knot"
address = "{server}"
zones = ["a.test."]
[[source]]
type = "notify-in"
server = "knot"
listen = "127.0.0.1:{notify_port}"
min-interval = "100ms"
{key}{extra}[[channel]]
type = "log"
"#,
        dir = dir.display(),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts dns-oops and waits until its NOTIFY listener takes TCP connections.
fn start_daemon(config: &Path, notify_port: u16) -> Daemon {
    let daemon = Daemon::start(config);
    let deadline = Instant::now() + LONG;
    while TcpStream::connect(("127.0.0.1", notify_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "dns-oops does not listen for NOTIFY on port {notify_port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

/// A knotd for zone `a.test` (serial 1) that notifies `127.0.0.1@notify_port`, signing
/// with `secret` when given.
fn knot_notifying(dir: &Path, notify_port: u16, secret: Option<&str>) -> Knot {
    let knot = Knot::new(dir, &["a.test"]);
    let (key, remote_key) = match secret {
        Some(secret) => (
            format!("key:\n  - id: notify-key\n    algorithm: hmac-sha256\n    secret: {secret}\n"),
            "    key: notify-key\n",
        ),
        None => (String::new(), ""),
    };
    let config = format!(
        "server:\n    rundir: \"{d}/run\"\n    pidfile: \"{d}/knotd.pid\"\n    listen: 127.0.0.1@{port}\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}/db\"\n\
         {key}\
         remote:\n  - id: dns-oops\n    address: 127.0.0.1@{notify_port}\n{remote_key}\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n\
         zone:\n  - domain: a.test\n    notify: dns-oops\n",
        d = dir.display(),
        port = knot.port,
    );
    std::fs::write(dir.join("knot.conf"), config).unwrap();
    knot
}

/// Runs knotc until it succeeds (knotd may still be starting).
fn knotc_retry(knot: &Knot, args: &[&str]) {
    let deadline = Instant::now() + LONG;
    loop {
        let status = Command::new(require("knotc", "knot"))
            .arg("-c")
            .arg(knot.dir.join("knot.conf"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if status.success() {
            return;
        }
        assert!(Instant::now() < deadline, "knotc {args:?} keeps failing");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a line of knotd's log contains both `first` and `second`; returns the log.
fn wait_knot_log(knot: &Knot, first: &str, second: &str) -> String {
    let deadline = Instant::now() + LONG;
    loop {
        let log = std::fs::read_to_string(knot.dir.join("knotd.log")).unwrap();
        if log.lines().any(|l| l.contains(first) && l.contains(second)) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no line with `{first}` and `{second}` in knotd's log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is(s: &Signal, condition: dns_oops::condition::ConditionId, state: SignalState) -> bool {
    s.condition == condition && s.state == state
}

/// Waits for `zone-ready a.test.` met with `serial`, from notify-in.
fn wait_ready(daemon: &mut Daemon, serial: u32) {
    let (_, ready) = daemon.wait_for("zone-ready a.test. met", LONG, |s| {
        is(s, ZoneReady, SignalState::Met)
    });
    assert_eq!(ready.subject.as_deref(), Some("a.test."));
    assert_eq!(ready.args["serial"], serial);
    assert_eq!(ready.source, "notify-in");
}

/// Waits for `zone-updated a.test.` from `previous` to `serial`, from notify-in.
fn wait_updated(daemon: &mut Daemon, previous: u32, serial: u32) {
    let (_, updated) = daemon.wait_for("zone-updated a.test.", LONG, |s| {
        is(s, ZoneUpdated, SignalState::Event)
    });
    assert_eq!(updated.subject.as_deref(), Some("a.test."));
    assert_eq!(updated.args["serial"], serial);
    assert_eq!(updated.args["previous-serial"], previous);
    assert_eq!(updated.source, "notify-in");
}

/// Every signal seen so far came from notify-in or was derived from its observations.
fn assert_only_notify_in(daemon: &Daemon) {
    for s in &daemon.seen {
        assert!(
            s.source == "notify-in" || s.source == "engine",
            "a signal not from notify-in: {}",
            s.to_json_line()
        );
        assert_ne!(s.condition, ServerRunning, "no probe, so no server-running");
    }
}

#[test]
fn knot_notify_over_tcp_becomes_zone_updated() {
    let dir = tempfile::tempdir().unwrap();
    let notify_port = free_port();
    let mut knot = knot_notifying(dir.path(), notify_port, None);
    let config = oops_config(dir.path(), knot.addr(), notify_port, None);
    let mut daemon = start_daemon(&config, notify_port);
    knot.start();

    knotc_retry(&knot, &["zone-notify", "a.test"]);
    wait_ready(&mut daemon, 1);

    knot.write_zone("a.test", 2);
    knot.knotc(&["zone-reload", "a.test"]);
    wait_updated(&mut daemon, 1, 2);

    knot.write_zone("a.test", 3);
    knot.knotc(&["zone-reload", "a.test"]);
    wait_updated(&mut daemon, 2, 3);
    assert_only_notify_in(&daemon);
}

#[test]
fn knot_tsig_signed_notify_becomes_zone_updated() {
    let dir = tempfile::tempdir().unwrap();
    let notify_port = free_port();
    let mut knot = knot_notifying(dir.path(), notify_port, Some(SECRET));
    let config = oops_config(dir.path(), knot.addr(), notify_port, Some(SECRET));
    let mut daemon = start_daemon(&config, notify_port);
    knot.start();

    knotc_retry(&knot, &["zone-notify", "a.test"]);
    wait_ready(&mut daemon, 1);
    knot.write_zone("a.test", 2);
    knot.knotc(&["zone-reload", "a.test"]);
    wait_updated(&mut daemon, 1, 2);
    assert_only_notify_in(&daemon);
    // Knot checks the signature of our answers: it logs each NOTIFY done, none failed.
    let log = wait_knot_log(&knot, "notify, outgoing, remote 127.0.0.1@", "serial 2");
    assert!(!log.contains("failed"), "knotd refused our answers:\n{log}");
}

#[test]
fn knot_notify_signed_with_another_key_is_not_acted_on() {
    let dir = tempfile::tempdir().unwrap();
    let notify_port = free_port();
    let mut knot = knot_notifying(dir.path(), notify_port, Some(OTHER_SECRET));
    let http = free_port();
    let config = oops_config_with(
        dir.path(),
        knot.addr(),
        notify_port,
        Some(SECRET),
        "",
        Some(http),
    );
    let mut daemon = start_daemon(&config, notify_port);
    knot.start();

    knotc_retry(&knot, &["zone-notify", "a.test"]);
    knot.write_zone("a.test", 2);
    knot.knotc(&["zone-reload", "a.test"]);
    let seen = daemon.drain(Duration::from_secs(3));
    assert!(
        seen.is_empty(),
        "a NOTIFY with a bad signature was acted on: {:?}",
        seen.iter().map(brief).collect::<Vec<_>>()
    );
    // Knot hears why: NOTAUTH with TSIG error BADSIG.
    wait_knot_log(
        &knot,
        "notify, outgoing",
        "server responded with error 'BADSIG'",
    );
    assert!(wait_counted(http, "tsig-bad-signature", 1) >= 1);
    assert_eq!(counted(http, "accepted"), Some(0));
}

/// A real nsd serving `a.test` and notifying `127.0.0.1@notify_port` over UDP.
struct Nsd {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Nsd {
    fn new(dir: &Path, notify_port: u16) -> Nsd {
        require("nsd", "nsd");
        require("nsd-control", "nsd");
        let port = free_port();
        let d = dir.display();
        let config = format!(
            "server:\n    ip-address: 127.0.0.1@{port}\n    username: \"\"\n    zonesdir: \"{d}\"\n\
             \x20   database: \"\"\n    pidfile: \"{d}/nsd.pid\"\n    xfrdfile: \"{d}/xfrd.state\"\n\
             \x20   zonelistfile: \"{d}/zone.list\"\n    logfile: \"{d}/nsd.log\"\n    verbosity: 2\n\
             remote-control:\n    control-enable: yes\n    control-interface: {d}/nsd.ctl\n\
             zone:\n    name: a.test\n    zonefile: a.test.zone\n    notify: 127.0.0.1@{notify_port} NOKEY\n"
        );
        std::fs::write(dir.join("nsd.conf"), config).unwrap();
        let nsd = Nsd {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        nsd.write_zone(1);
        nsd
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn write_zone(&self, serial: u32) {
        let text = format!(
            "$ORIGIN a.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 3600 600 86400 300\n\
             @ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\n"
        );
        std::fs::write(self.dir.join("a.test.zone"), text).unwrap();
    }

    fn start(&mut self) {
        let child = Command::new(require("nsd", "nsd"))
            .arg("-d")
            .arg("-c")
            .arg(self.dir.join("nsd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nsd");
        self.child = Some(child);
    }

    /// Runs nsd-control until it succeeds (nsd may still be starting).
    fn control(&self, args: &[&str]) {
        let deadline = Instant::now() + LONG;
        loop {
            let status = Command::new(require("nsd-control", "nsd"))
                .arg("-c")
                .arg(self.dir.join("nsd.conf"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nsd-control {args:?} keeps failing"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM to the parent stops its children too.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

#[test]
fn nsd_notify_over_udp_becomes_zone_updated() {
    let dir = tempfile::tempdir().unwrap();
    let notify_port = free_port();
    let mut nsd = Nsd::new(dir.path(), notify_port);
    let config = oops_config(dir.path(), nsd.addr(), notify_port, None);
    let mut daemon = start_daemon(&config, notify_port);
    nsd.start();

    nsd.control(&["notify", "a.test"]);
    wait_ready(&mut daemon, 1);

    nsd.write_zone(2);
    nsd.control(&["reload", "a.test"]);
    wait_updated(&mut daemon, 1, 2);
    assert_only_notify_in(&daemon);
}

/// `dns_oops_notify_in_requests_total` for `outcome` from `/metrics` (0 when the series is
/// not there yet); `None` while the daemon's HTTP server does not answer.
fn counted(http: u16, outcome: &str) -> Option<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", http)).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    if !text.starts_with("HTTP/1.") || !text.contains("# EOF") {
        return None;
    }
    let series = format!("outcome=\"{outcome}\"");
    let value = text
        .lines()
        .filter(|l| l.starts_with("dns_oops_notify_in_requests_total{") && l.contains(&series))
        .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()))
        .next();
    match value {
        Some(value) => Some(value.unwrap_or_else(|| panic!("a bad {series} line in:\n{text}"))),
        None => Some(0),
    }
}

/// Waits until [`counted`] is at least `least`; returns it.
fn wait_counted(http: u16, outcome: &str, least: u64) -> u64 {
    let deadline = Instant::now() + LONG;
    loop {
        let value = counted(http, outcome);
        if let Some(value) = value.filter(|v| *v >= least) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "dns_oops_notify_in_requests_total with outcome {outcome} is {value:?}, not at least {least}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real named (BIND 9) serving `a.test` as a primary and notifying
/// `127.0.0.1 port notify_port` over UDP (`notify explicit` + `also-notify`), signing with
/// `secret` when given; driven with rndc.
struct Named {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Named {
    fn new(dir: &Path, notify_port: u16, secret: Option<&str>) -> Named {
        require("named", "bind9");
        require("rndc", "bind9-utils");
        let (port, control) = (free_port(), free_port());
        let d = dir.display();
        let (key, notify_key) = match secret {
            Some(secret) => (
                format!("key \"notify-key\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n"),
                " key \"notify-key\"",
            ),
            None => (String::new(), ""),
        };
        let rndc_key = "key \"rndc-key\" { algorithm hmac-sha256; \
                        secret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\"; };\n";
        let config = format!(
            "{rndc_key}{key}\
             options {{ directory \"{d}\"; pid-file \"{d}/named.pid\";\n\
             \x20 listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no;\n\
             \x20 notify explicit; notify-delay 0;\n\
             \x20 also-notify {{ 127.0.0.1 port {notify_port}{notify_key}; }}; }};\n\
             controls {{ inet 127.0.0.1 port {control} allow {{ 127.0.0.1; }} keys {{ \"rndc-key\"; }}; }};\n\
             zone \"a.test\" {{ type primary; file \"a.test.zone\"; }};\n"
        );
        std::fs::write(dir.join("named.conf"), config).unwrap();
        let rndc = format!(
            "{rndc_key}options {{ default-key \"rndc-key\"; default-server 127.0.0.1; default-port {control}; }};\n"
        );
        std::fs::write(dir.join("rndc.conf"), rndc).unwrap();
        let named = Named {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        named.write_zone(1);
        named
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn write_zone(&self, serial: u32) {
        let text = format!(
            "$ORIGIN a.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 3600 600 86400 300\n\
             @ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.{serial}\n"
        );
        std::fs::write(self.dir.join("a.test.zone"), text).unwrap();
    }

    /// Starts named in the foreground (`-g`: logs to stderr, kept in `named.log`), at debug
    /// level 3, where it logs the answer to each NOTIFY it sends.
    fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("named.log")).unwrap();
        let child = Command::new(require("named", "bind9"))
            .args(["-g", "-d", "3"])
            .arg("-c")
            .arg(self.dir.join("named.conf"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start named");
        self.child = Some(child);
    }

    /// Runs rndc until it succeeds (named may still be starting).
    fn rndc(&self, args: &[&str]) {
        let deadline = Instant::now() + LONG;
        loop {
            let status = Command::new(require("rndc", "bind9-utils"))
                .arg("-c")
                .arg(self.dir.join("rndc.conf"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "rndc {args:?} keeps failing");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a line of named's log contains every one of `words`; returns the log.
    fn wait_log(&self, words: &[&str]) -> String {
        let deadline = Instant::now() + LONG;
        loop {
            let log = std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default();
            if log.lines().any(|l| words.iter().all(|w| l.contains(w))) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {words:?} in named's log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

#[test]
fn named_notify_over_udp_becomes_zone_updated() {
    named_notify_is_accepted(None);
}

#[test]
fn named_tsig_signed_notify_becomes_zone_updated() {
    named_notify_is_accepted(Some(SECRET));
}

/// named notifies (signed with `secret`, when given, as dns-oops expects): the zone is
/// ready at serial 1, then updated to 2, the NOTIFYs are counted as accepted, and named
/// reads our answers as NOERROR (and checks their signatures).
fn named_notify_is_accepted(secret: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let notify_port = free_port();
    let mut named = Named::new(dir.path(), notify_port, secret);
    let http = free_port();
    let config = oops_config_with(
        dir.path(),
        named.addr(),
        notify_port,
        secret,
        "",
        Some(http),
    );
    let mut daemon = start_daemon(&config, notify_port);
    named.start();

    named.rndc(&["notify", "a.test"]);
    wait_ready(&mut daemon, 1);
    named.write_zone(2);
    named.rndc(&["reload", "a.test"]);
    wait_updated(&mut daemon, 1, 2);
    assert_only_notify_in(&daemon);
    wait_counted(http, "accepted", 2);
    let from_us = format!("notify response from 127.0.0.1#{notify_port}: NOERROR");
    let log = named.wait_log(&["a.test/IN", &from_us]);
    assert!(
        !log.contains(&format!("notify to 127.0.0.1#{notify_port} failed")),
        "named refused our answers:\n{log}"
    );
}

#[test]
fn named_notify_signed_with_another_key_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let notify_port = free_port();
    let mut named = Named::new(dir.path(), notify_port, Some(OTHER_SECRET));
    let http = free_port();
    let config = oops_config_with(
        dir.path(),
        named.addr(),
        notify_port,
        Some(SECRET),
        "",
        Some(http),
    );
    let mut daemon = start_daemon(&config, notify_port);
    named.start();

    named.rndc(&["notify", "a.test"]);
    wait_counted(http, "tsig-bad-signature", 1);
    named.write_zone(2);
    named.rndc(&["reload", "a.test"]);
    wait_counted(http, "tsig-bad-signature", 2);
    let seen = daemon.drain(Duration::from_secs(2));
    assert!(
        seen.is_empty(),
        "a NOTIFY with a bad signature was acted on: {:?}",
        seen.iter().map(brief).collect::<Vec<_>>()
    );
    // named hears NOTAUTH with a TSIG error (BADSIG, unsigned, as RFC 8945 wants).
    let to_us = format!("notify to 127.0.0.1#{notify_port} failed: tsig indicates error");
    named.wait_log(&["a.test/IN", &to_us]);
    assert_eq!(counted(http, "accepted"), Some(0));
}

#[test]
fn named_notify_from_outside_the_acl_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let notify_port = free_port();
    let mut named = Named::new(dir.path(), notify_port, None);
    let http = free_port();
    // named sends from 127.0.0.1, which this ACL leaves out.
    let allow = "allow = [\"192.0.2.0/24\", \"::1\"]\n";
    let config = oops_config_with(
        dir.path(),
        named.addr(),
        notify_port,
        None,
        allow,
        Some(http),
    );
    let mut daemon = start_daemon(&config, notify_port);
    named.start();

    named.rndc(&["notify", "a.test"]);
    wait_counted(http, "not-allowed", 1);
    named.write_zone(2);
    named.rndc(&["reload", "a.test"]);
    wait_counted(http, "not-allowed", 2);
    let seen = daemon.drain(Duration::from_secs(2));
    assert!(
        seen.is_empty(),
        "a NOTIFY from outside the ACL was acted on: {:?}",
        seen.iter().map(brief).collect::<Vec<_>>()
    );
    let from_us = format!("notify response from 127.0.0.1#{notify_port}: REFUSED");
    named.wait_log(&["a.test/IN", &from_us]);
    assert_eq!(counted(http, "accepted"), Some(0));
}
