//! The `control` source against real servers on loopback: knotd's control socket spoken
//! natively, nsd and unbound over their control sockets, named through rndc; and
//! secondaries of a primary that goes away (a short SOA expire), where the server shows it:
//! refresh failed, then expiring.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Knot, brief, free_port};
use dns_oops::signal::{Signal, SignalState};

/// A knotd config: `zones` is the `zone:` section, `extra` goes before it.
fn knot_conf(knot: &Knot, extra: &str, zones: &str) {
    let d = knot.dir.display();
    let text = format!(
        "server:\n    rundir: \"{d}/run\"\n    pidfile: \"{d}/knotd.pid\"\n    listen: 127.0.0.1@{port}\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}/db\"\n\
         {extra}\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n\
         zone:\n{zones}",
        port = knot.port
    );
    std::fs::write(knot.dir.join("knot.conf"), text).unwrap();
}

fn socket(knot: &Knot) -> PathBuf {
    knot.dir.join("run").join("knot.sock")
}

/// A config watching server `name` at `knot` through the control source only.
fn config(dir: &Path, name: &str, knot: &Knot, zones: &[&str], extra: &str) -> PathBuf {
    let zones: Vec<String> = zones.iter().map(|z| format!("\"{z}\"")).collect();
    let text = format!(
        r#"node = "it"
[journal]
path = "{dir}/state/journal.sqlite"
[http]
listen = "127.0.0.1:{http}"
[[server]]
name = "{name}"
address = "{addr}"
zones = [{zones}]
[[source]]
type = "control"
server = "{name}"
protocol = "knot"
socket = "{socket}"
interval = "300ms"
timeout = "2s"
{extra}
[[channel]]
type = "log"
"#,
        dir = dir.display(),
        http = free_port(),
        addr = knot.addr(),
        zones = zones.join(", "),
        socket = socket(knot).display(),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn is(s: &Signal, condition: &str, subject: Option<&str>, state: SignalState) -> bool {
    s.condition.as_str() == condition
        && s.subject.as_deref() == subject
        && s.state == state
        && s.source == "control"
}

#[test]
fn knot_primary_zones_ready_with_serial_and_a_stop_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut knot = Knot::new(&tmp.path().join("knot"), &["a.test", "b.test"]);
    knot.write_zone("b.test", 2026113001);
    let path = config(
        tmp.path(),
        "knot",
        &knot,
        &["a.test.", "b.test.", "c.test."],
        "",
    );

    // Started before knotd: a missing socket is the source's health, not a condition.
    let mut daemon = Daemon::start(&path);
    let early = daemon.drain(Duration::from_millis(1500));
    assert!(
        early.iter().all(|s| s.source != "control"),
        "signals before knotd runs: {:?}",
        early.iter().map(brief).collect::<Vec<_>>()
    );

    knot.start();
    let (started, _) = daemon.wait_for("server-running", Duration::from_secs(10), |s| {
        is(s, "server-running", None, SignalState::Met)
    });
    let (_, ready) = daemon.wait_for("zone-ready b.test.", Duration::from_secs(5), |s| {
        is(s, "zone-ready", Some("b.test."), SignalState::Met)
    });
    assert_eq!(ready.args["serial"], 2026113001u64);
    assert!(
        daemon.seen.iter().any(
            |s| is(s, "zone-ready", Some("a.test."), SignalState::Met) && s.args["serial"] == 1
        ),
        "a.test. ready with serial 1: {:?}",
        daemon.seen.iter().map(brief).collect::<Vec<_>>()
    );
    let settled = daemon.drain(Duration::from_millis(1000));
    assert!(
        !settled.iter().chain(daemon.seen.iter()).any(|s| is(
            s,
            "zone-ready",
            Some("c.test."),
            SignalState::Met
        )),
        "c.test. is not served by knotd"
    );

    // A reload with a new serial: the next poll reports it, and the engine calls it an
    // update.
    knot.write_zone("a.test", 7);
    knot.knotc(&["zone-reload", "a.test"]);
    let (_, updated) = daemon.wait_for("zone-updated a.test.", Duration::from_secs(5), |s| {
        s.condition.as_str() == "zone-updated" && s.subject.as_deref() == Some("a.test.")
    });
    assert_eq!(updated.args["serial"], 7);
    assert_eq!(updated.args["previous-serial"], 1);

    // knotd stops and removes its socket: the server is no longer running.
    knot.knotc(&["stop"]);
    let (gone, cleared) = daemon.wait_for("server-running cleared", Duration::from_secs(5), |s| {
        is(s, "server-running", None, SignalState::Cleared)
    });
    assert!(gone > started);
    println!("server-running cleared: {}", cleared.to_json_line());
    knot.reap();
}

#[test]
fn knot_secondary_refresh_fails_then_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let mut primary = Knot::new(&tmp.path().join("primary"), &[]);
    knot_conf(
        &primary,
        "acl:\n  - id: xfr\n    address: 127.0.0.1\n    action: transfer\n",
        "  - domain: s.test\n    acl: xfr\n",
    );
    // Refresh 3 s, retry 4 s, expire 20 s.
    std::fs::write(
        primary.dir.join("zones/s.test.zone"),
        "$ORIGIN s.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 42 3 4 20 300\n\
         @ IN NS ns1\nns1 IN A 127.0.0.1\n",
    )
    .unwrap();
    primary.start();

    let mut secondary = Knot::new(&tmp.path().join("secondary"), &[]);
    knot_conf(
        &secondary,
        &format!(
            "remote:\n  - id: primary\n    address: 127.0.0.1@{}\n",
            primary.port
        ),
        "  - domain: s.test\n    master: primary\n",
    );
    let path = config(
        tmp.path(),
        "sec",
        &secondary,
        &["s.test."],
        "expiring-period = \"10s\"",
    );
    wait_for_serial(&primary, "s.test", 42);
    secondary.start();
    let mut daemon = Daemon::start(&path);
    let (loaded, ready) = daemon.wait_for("zone-ready s.test.", Duration::from_secs(10), |s| {
        is(s, "zone-ready", Some("s.test."), SignalState::Met)
    });
    assert_eq!(ready.args["serial"], 42);

    // The primary goes away; knotd's next refresh try fails.
    let gone = primary.kill9();
    primary.reap();
    let (failed_at, failed) =
        daemon.wait_for("zone-refresh-failed", Duration::from_secs(15), |s| {
            is(s, "zone-refresh-failed", Some("s.test."), SignalState::Met)
        });
    assert!(failed.args["tries"].as_u64().unwrap() >= 1);
    let (expiring_at, expiring) = daemon.wait_for("zone-expiring", Duration::from_secs(20), |s| {
        is(s, "zone-expiring", Some("s.test."), SignalState::Met)
    });
    assert!(expiring_at > failed_at);
    let remaining = expiring.args["remaining"].as_u64().unwrap();
    assert!(remaining <= 10, "remaining {remaining}");
    assert!(expiring.args["expires-at"].is_string());
    // The expiry is knotd's own timer: 20 s after the last transfer.
    let expiry_after_load = expiring_at.duration_since(loaded).as_secs_f64() + remaining as f64;
    assert!(
        (17.0..=23.0).contains(&expiry_after_load),
        "expiry {expiry_after_load:.1} s after the load"
    );

    // At expiry knotd empties the zone.
    let (expired_at, _) = daemon.wait_for("zone-ready cleared", Duration::from_secs(20), |s| {
        is(s, "zone-ready", Some("s.test."), SignalState::Cleared)
    });
    println!(
        "refresh-failed {:.1} s after the primary died, expiring {:.1} s, expired {:.1} s",
        failed_at.duration_since(gone).as_secs_f64(),
        expiring_at.duration_since(gone).as_secs_f64(),
        expired_at.duration_since(gone).as_secs_f64()
    );
}

/// Waits until `knot` has loaded `zone` with `serial`.
fn wait_for_serial(knot: &Knot, zone: &str, serial: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = Command::new(common::require("knotc", "knot"))
            .arg("-c")
            .arg(knot.dir.join("knot.conf"))
            .args(["zone-status", zone])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&format!("serial: {serial}")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("knotd did not load {zone}");
}

/// A server process killed when the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(program: &str, package: &str, args: &[&str], dir: &Path) -> Running {
    let log = std::fs::File::create(dir.join(format!("{program}.log"))).unwrap();
    Running(
        Command::new(common::require(program, package))
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}")),
    )
}

/// The dns-oops config for a server at `port` heard through the control source.
fn text_config(
    dir: &Path,
    name: &str,
    protocol: &str,
    socket: &Path,
    port: u16,
    zones: &[&str],
) -> PathBuf {
    let zones: Vec<String> = zones.iter().map(|z| format!("\"{z}\"")).collect();
    let text = format!(
        r#"node = "it"
[journal]
path = "{dir}/state/journal.sqlite"
[http]
listen = "127.0.0.1:{http}"
[[server]]
name = "{name}"
address = "127.0.0.1:{port}"
zones = [{zones}]
[[source]]
type = "control"
server = "{name}"
protocol = "{protocol}"
socket = "{socket}"
interval = "300ms"
timeout = "2s"
[[channel]]
type = "log"
"#,
        dir = dir.display(),
        http = free_port(),
        zones = zones.join(", "),
        socket = socket.display(),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn nsd_zonestatus_primary_ready_and_secondary_refresh_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let port = free_port();
    let dead = free_port();
    std::fs::write(
        d.join("example.test.zone"),
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 5 3600 600 86400 300\n\
         @ IN NS ns1\nns1 IN A 127.0.0.1\n",
    )
    .unwrap();
    let dir = d.display();
    std::fs::write(
        d.join("nsd.conf"),
        format!(
            "server:\n    ip-address: 127.0.0.1@{port}\n    username: \"\"\n    zonesdir: \"{dir}\"\n\
             \x20   database: \"\"\n    pidfile: \"{dir}/nsd.pid\"\n    xfrdfile: \"{dir}/xfrd.state\"\n\
             \x20   zonelistfile: \"{dir}/zone.list\"\n    logfile: \"{dir}/nsd.log\"\n\
             remote-control:\n    control-enable: yes\n    control-interface: {dir}/nsd.ctl\n\
             zone:\n    name: example.test\n    zonefile: example.test.zone\n\
             zone:\n    name: sec.test\n    request-xfr: 127.0.0.1@{dead} NOKEY\n"
        ),
    )
    .unwrap();
    let conf = d.join("nsd.conf");
    let _nsd = start("nsd", "nsd", &["-d", "-c", conf.to_str().unwrap()], d);
    let path = text_config(
        d,
        "nsd",
        "nsd",
        &d.join("nsd.ctl"),
        port,
        &["example.test.", "sec.test."],
    );
    let mut daemon = Daemon::start(&path);
    daemon.wait_for("server-running", Duration::from_secs(10), |s| {
        is(s, "server-running", None, SignalState::Met)
    });
    daemon.wait_for("zone-ready example.test.", Duration::from_secs(5), |s| {
        is(s, "zone-ready", Some("example.test."), SignalState::Met)
    });
    // NSD's first round of tries to the dead primary fails at once; it then waits.
    daemon.wait_for(
        "zone-refresh-failed sec.test.",
        Duration::from_secs(20),
        |s| {
            is(
                s,
                "zone-refresh-failed",
                Some("sec.test."),
                SignalState::Met,
            )
        },
    );
    assert!(
        !daemon
            .seen
            .iter()
            .any(|s| is(s, "zone-ready", Some("sec.test."), SignalState::Met)),
        "sec.test. never transferred"
    );
}

#[test]
fn unbound_status_is_server_running() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let port = free_port();
    let dir = d.display();
    std::fs::write(
        d.join("unbound.conf"),
        format!(
            "server:\n    interface: 127.0.0.1@{port}\n    port: {port}\n    username: \"\"\n    chroot: \"\"\n\
             \x20   directory: \"{dir}\"\n    pidfile: \"{dir}/unbound.pid\"\n    logfile: \"\"\n\
             \x20   use-syslog: no\n    do-daemonize: no\n    module-config: \"iterator\"\n\
             remote-control:\n    control-enable: yes\n    control-interface: {dir}/unbound.ctl\n"
        ),
    )
    .unwrap();
    let conf = d.join("unbound.conf");
    let mut unbound = start(
        "unbound",
        "unbound",
        &["-d", "-c", conf.to_str().unwrap()],
        d,
    );
    let path = text_config(d, "unbound", "unbound", &d.join("unbound.ctl"), port, &[]);
    let mut daemon = Daemon::start(&path);
    let (_, running) = daemon.wait_for("server-running", Duration::from_secs(10), |s| {
        is(s, "server-running", None, SignalState::Met)
    });
    assert!(running.args["version"].as_str().unwrap().starts_with('1'));
    // Unbound removes its socket when it stops: the server is no longer running.
    common::signal(unbound.0.id(), 15);
    let _ = unbound.0.wait();
    daemon.wait_for("server-running cleared", Duration::from_secs(10), |s| {
        is(s, "server-running", None, SignalState::Cleared)
    });
}

#[test]
fn named_through_rndc_zone_ready_with_serial() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dir = d.display();
    let (port, control) = (free_port(), free_port());
    common::require("rndc", "bind9-utils");
    std::fs::write(
        d.join("example.test.zone"),
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 9 3600 600 86400 300\n\
         @ IN NS ns1\nns1 IN A 127.0.0.1\n",
    )
    .unwrap();
    let key = "key \"rndc-key\" { algorithm hmac-sha256; secret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\"; };\n";
    std::fs::write(d.join("rndc.key"), key).unwrap();
    std::fs::write(
        d.join("named.conf"),
        format!(
            "include \"{dir}/rndc.key\";\n\
             options {{ directory \"{dir}\"; pid-file \"{dir}/named.pid\"; listen-on port {port} {{ 127.0.0.1; }};\n\
             \x20 listen-on-v6 {{ none; }}; recursion no; }};\n\
             controls {{ inet 127.0.0.1 port {control} allow {{ 127.0.0.1; }} keys {{ \"rndc-key\"; }}; }};\n\
             zone \"example.test\" {{ type primary; file \"example.test.zone\"; }};\n"
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("rndc.conf"),
        format!(
            "include \"{dir}/rndc.key\";\n\
             options {{ default-key \"rndc-key\"; default-server 127.0.0.1; default-port {control}; }};\n"
        ),
    )
    .unwrap();
    let conf = d.join("named.conf");
    let mut named = start("named", "bind9", &["-g", "-c", conf.to_str().unwrap()], d);
    let text = format!(
        r#"node = "it"
[journal]
path = "{dir}/state/journal.sqlite"
[http]
listen = "127.0.0.1:{http}"
[[server]]
name = "bind"
address = "127.0.0.1:{port}"
zones = ["example.test.", "missing.test."]
[[source]]
type = "control"
server = "bind"
protocol = "rndc"
command = ["rndc", "-c", "{dir}/rndc.conf"]
interval = "300ms"
timeout = "5s"
[[channel]]
type = "log"
"#,
        http = free_port(),
    );
    let path = d.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    let mut daemon = Daemon::start(&path);
    daemon.wait_for("server-running", Duration::from_secs(20), |s| {
        is(s, "server-running", None, SignalState::Met)
    });
    let (_, ready) = daemon.wait_for("zone-ready", Duration::from_secs(10), |s| {
        is(s, "zone-ready", Some("example.test."), SignalState::Met)
    });
    assert_eq!(ready.args["serial"], 9);
    // named goes away: rndc's connection is refused.
    common::signal(named.0.id(), 9);
    let _ = named.0.wait();
    daemon.wait_for("server-running cleared", Duration::from_secs(10), |s| {
        is(s, "server-running", None, SignalState::Cleared)
    });
    assert!(!daemon.seen.iter().any(|s| is(
        s,
        "zone-ready",
        Some("missing.test."),
        SignalState::Met
    )));
}

/// A knotd primary for `s.test` (serial 42; refresh 3 s, retry 4 s, expire 20 s) that
/// lets anyone on loopback transfer it, started and loaded.
fn short_expiry_primary(dir: &Path) -> Knot {
    let mut primary = Knot::new(dir, &[]);
    knot_conf(
        &primary,
        "acl:\n  - id: xfr\n    address: 127.0.0.1\n    action: transfer\n",
        "  - domain: s.test\n    acl: xfr\n",
    );
    std::fs::write(
        primary.dir.join("zones/s.test.zone"),
        "$ORIGIN s.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 42 3 4 20 300\n\
         @ IN NS ns1\nns1 IN A 127.0.0.1\n",
    )
    .unwrap();
    primary.start();
    wait_for_serial(&primary, "s.test", 42);
    primary
}

#[test]
fn nsd_secondary_expires_when_its_primary_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut primary = short_expiry_primary(&d.join("primary"));
    let port = free_port();
    let dir = d.display();
    // NSD's lower bounds on the SOA timers are set low, so the SOA's own count.
    std::fs::write(
        d.join("nsd.conf"),
        format!(
            "server:\n    ip-address: 127.0.0.1@{port}\n    username: \"\"\n    zonesdir: \"{dir}\"\n\
             \x20   database: \"\"\n    pidfile: \"{dir}/nsd.pid\"\n    xfrdfile: \"{dir}/xfrd.state\"\n\
             \x20   zonelistfile: \"{dir}/zone.list\"\n    logfile: \"{dir}/nsd.log\"\n\
             remote-control:\n    control-enable: yes\n    control-interface: {dir}/nsd.ctl\n\
             zone:\n    name: s.test\n    request-xfr: 127.0.0.1@{primary} NOKEY\n\
             \x20   min-refresh-time: 1\n    min-retry-time: 1\n    min-expire-time: 1\n",
            primary = primary.port,
        ),
    )
    .unwrap();
    let conf = d.join("nsd.conf");
    let _nsd = start("nsd", "nsd", &["-d", "-c", conf.to_str().unwrap()], d);
    let path = text_config(d, "nsd", "nsd", &d.join("nsd.ctl"), port, &["s.test."]);
    let mut daemon = Daemon::start(&path);
    let (loaded, ready) = daemon.wait_for("zone-ready s.test.", Duration::from_secs(15), |s| {
        is(s, "zone-ready", Some("s.test."), SignalState::Met)
    });
    assert_eq!(ready.args["serial"], 42);

    let gone = primary.kill9();
    primary.reap();
    let (failed_at, _) = daemon.wait_for(
        "zone-refresh-failed s.test.",
        Duration::from_secs(20),
        |s| is(s, "zone-refresh-failed", Some("s.test."), SignalState::Met),
    );
    // NSD shows no expiry timer: zone-expiring comes when the zone has expired, 20 s after
    // the last transfer, and the zone is no longer ready.
    let (expired_at, expiring) =
        daemon.wait_for("zone-expiring s.test.", Duration::from_secs(30), |s| {
            is(s, "zone-expiring", Some("s.test."), SignalState::Met)
        });
    assert_eq!(expiring.args["remaining"], 0);
    assert!(expired_at > failed_at);
    let after_load = expired_at.duration_since(loaded).as_secs_f64();
    assert!(
        (18.0..=26.0).contains(&after_load),
        "expired {after_load:.1} s after the load"
    );
    // The same poll says the zone is no longer ready.
    let cleared = daemon.drain(Duration::from_millis(1000));
    assert!(
        daemon.seen.iter().chain(&cleared).any(|s| is(
            s,
            "zone-ready",
            Some("s.test."),
            SignalState::Cleared
        )),
        "zone-ready s.test. cleared at expiry: {:?}",
        daemon.seen.iter().map(brief).collect::<Vec<_>>()
    );
    println!(
        "nsd: refresh-failed {:.1} s after the primary died, expired {:.1} s after, {after_load:.1} s after the load",
        failed_at.duration_since(gone).as_secs_f64(),
        expired_at.duration_since(gone).as_secs_f64(),
    );
}

#[test]
fn named_secondary_expiring_with_its_own_timer() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut primary = short_expiry_primary(&d.join("primary"));
    let dir = d.display();
    let (port, control) = (free_port(), free_port());
    common::require("rndc", "bind9-utils");
    let key = "key \"rndc-key\" { algorithm hmac-sha256; secret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\"; };\n";
    std::fs::write(d.join("rndc.key"), key).unwrap();
    // named's lower bounds on refresh and retry (300 s and 500 s) are set low, so the SOA's
    // own timers count.
    std::fs::write(
        d.join("named.conf"),
        format!(
            "include \"{dir}/rndc.key\";\n\
             options {{ directory \"{dir}\"; pid-file \"{dir}/named.pid\"; listen-on port {port} {{ 127.0.0.1; }};\n\
             \x20 listen-on-v6 {{ none; }}; recursion no; notify no; }};\n\
             controls {{ inet 127.0.0.1 port {control} allow {{ 127.0.0.1; }} keys {{ \"rndc-key\"; }}; }};\n\
             zone \"s.test\" {{ type secondary; primaries {{ 127.0.0.1 port {primary}; }};\n\
             \x20 min-refresh-time 1; min-retry-time 1; }};\n",
            primary = primary.port,
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("rndc.conf"),
        format!(
            "include \"{dir}/rndc.key\";\n\
             options {{ default-key \"rndc-key\"; default-server 127.0.0.1; default-port {control}; }};\n"
        ),
    )
    .unwrap();
    let conf = d.join("named.conf");
    let _named = start("named", "bind9", &["-g", "-c", conf.to_str().unwrap()], d);
    let text = format!(
        r#"node = "it"
[journal]
path = "{dir}/state/journal.sqlite"
[http]
listen = "127.0.0.1:{http}"
[[server]]
name = "bind"
address = "127.0.0.1:{port}"
zones = ["s.test."]
[[source]]
type = "control"
server = "bind"
protocol = "rndc"
command = ["rndc", "-c", "{dir}/rndc.conf"]
interval = "300ms"
timeout = "5s"
expiring-period = "10s"
[[channel]]
type = "log"
"#,
        http = free_port(),
    );
    let path = d.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    let mut daemon = Daemon::start(&path);
    let (loaded, ready) = daemon.wait_for("zone-ready s.test.", Duration::from_secs(20), |s| {
        is(s, "zone-ready", Some("s.test."), SignalState::Met)
    });
    assert_eq!(ready.args["serial"], 42);
    assert!(
        !daemon
            .seen
            .iter()
            .any(|s| is(s, "zone-expiring", Some("s.test."), SignalState::Met)),
        "expiry is 20 s away, not within the 10 s expiring-period"
    );

    let gone = primary.kill9();
    primary.reap();
    let (expiring_at, expiring) =
        daemon.wait_for("zone-expiring s.test.", Duration::from_secs(25), |s| {
            is(s, "zone-expiring", Some("s.test."), SignalState::Met)
        });
    let remaining = expiring.args["remaining"].as_u64().unwrap();
    assert!(remaining <= 10, "remaining {remaining}");
    assert!(expiring.args["expires-at"].is_string());
    // The expiry is named's own timer: 20 s after the last transfer or refresh.
    let expiry_after_load = expiring_at.duration_since(loaded).as_secs_f64() + remaining as f64;
    assert!(
        (17.0..=27.0).contains(&expiry_after_load),
        "expiry {expiry_after_load:.1} s after the load"
    );
    let (expired_at, _) = daemon.wait_for("zone-ready cleared", Duration::from_secs(20), |s| {
        is(s, "zone-ready", Some("s.test."), SignalState::Cleared)
    });
    println!(
        "named: expiring {:.1} s after the primary died (remaining {remaining} s), expired {:.1} s after",
        expiring_at.duration_since(gone).as_secs_f64(),
        expired_at.duration_since(gone).as_secs_f64(),
    );
}
