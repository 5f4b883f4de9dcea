//! The `knot-dbus` source against a real knotd (Debian package `knot`, built with D-Bus)
//! on a private bus run by a real `dbus-daemon` (package `dbus`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Knot, require};
use dns_oops::condition::ConditionId::*;
use dns_oops::signal::SignalState;

const WAIT: Duration = Duration::from_secs(15);

/// A private bus; knotd may own any name on it (session-bus policy).
struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    fn start(dir: &Path) -> Bus {
        let program = require("dbus-daemon", "dbus");
        let mut child = Command::new(program)
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address=unix:path={}/bus", dir.display()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Bus {
            child,
            address: line.trim().to_string(),
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A knotd with D-Bus events on, on `bus`.
fn knot_on_bus(dir: &Path, bus: &Bus) -> Knot {
    let mut knot = Knot::new(dir, &["a.test", "b.test"]);
    let conf = dir.join("knot.conf");
    let text = std::fs::read_to_string(&conf).unwrap().replacen(
        "server:\n",
        "server:\n    dbus-event: [ running, zone-updated ]\n    dbus-init-delay: 0\n",
        1,
    );
    std::fs::write(&conf, text).unwrap();
    knot.env
        .push(("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.address.clone()));
    knot
}

fn config(dir: &Path, knot: &Knot, bus: &Bus) -> std::path::PathBuf {
    let path = dir.join("dns-oops.toml");
    std::fs::write(
        &path,
        format!(
            r#"node = "it"
[journal]
path = "{dir}/journal.sqlite"
[http]
listen = "off"
[[server]]
name = "knot"
address = "{addr}"
zones = ["a.test.", "b.test."]
[[source]]
type = "knot-dbus"
server = "knot"
bus = "{bus}"
[[channel]]
type = "log"
"#,
            dir = dir.display(),
            addr = knot.addr(),
            bus = bus.address,
        ),
    )
    .unwrap();
    path
}

#[test]
fn knot_signals_become_conditions_and_a_lost_name_is_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let mut knot = knot_on_bus(dir.path(), &bus);
    let mut daemon = Daemon::start(&config(dir.path(), &knot, &bus));
    std::thread::sleep(Duration::from_millis(500));

    knot.start();
    let (_, ready) = daemon.wait_for("zone-ready a.test.", WAIT, |s| {
        s.condition == ZoneReady && s.subject.as_deref() == Some("a.test.")
    });
    assert_eq!(ready.source, "knot-dbus");
    assert_eq!(ready.args["serial"], 1);
    daemon.wait_for("server-running from `started`", WAIT, |s| {
        s.condition == ServerRunning && s.state == SignalState::Met
    });

    knot.write_zone("a.test", 2);
    knot.knotc(&["zone-reload", "a.test"]);
    let (_, updated) =
        daemon.wait_for("zone-updated a.test.", WAIT, |s| s.condition == ZoneUpdated);
    assert_eq!(updated.args["serial"], 2);

    let killed = knot.kill9();
    let (seen, crashed) = daemon.wait_for("server-crashed", WAIT, |s| s.condition == ServerCrashed);
    let took = seen.duration_since(killed);
    eprintln!("kill -9 of knotd → server-crashed from the lost bus name: {took:?}");
    assert_eq!(crashed.source, "knot-dbus");
    assert!(
        took < Duration::from_millis(100),
        "server-crashed took {took:?}"
    );
    knot.reap();

    // A clean stop is not a crash.
    knot.start();
    daemon.wait_for("server-running again", WAIT, |s| {
        s.condition == ServerRunning && s.state == SignalState::Met
    });
    knot.knotc(&["stop"]);
    daemon.wait_for("server-stopping", WAIT, |s| {
        s.condition == ServerStopping && s.state == SignalState::Met
    });
    let after_stop = daemon.drain(Duration::from_secs(1));
    assert!(
        !after_stop
            .iter()
            .any(|s| s.condition == ServerCrashed && s.state == SignalState::Met),
        "a clean stop was reported as a crash: {after_stop:?}"
    );
}

#[test]
fn a_late_start_resynchronises_without_waiting_for_signals() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let mut knot = knot_on_bus(dir.path(), &bus);
    knot.start();
    // Wait until knotd has its zones and is on the bus.
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(dir.path().join("knotd.log"))
        .unwrap_or_default()
        .contains("server started")
    {
        assert!(Instant::now() < deadline, "knotd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut daemon = Daemon::start(&config(dir.path(), &knot, &bus));
    for zone in ["a.test.", "b.test."] {
        daemon.wait_for(&format!("zone-ready {zone} from the resync"), WAIT, |s| {
            s.condition == ZoneReady
                && s.subject.as_deref() == Some(zone)
                && s.source == "knot-dbus"
        });
    }
    daemon.wait_for("all-zones-ready", WAIT, |s| s.condition == AllZonesReady);
}

/// The resync asks knotd's control socket, not the zones' SOA: the server's DNS address is
/// one nothing answers on, and the zones are still ready with knotd's serials at once.
#[test]
fn a_late_start_resynchronises_from_the_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let mut knot = knot_on_bus(dir.path(), &bus);
    knot.write_zone("b.test", 2026113007);
    knot.start();
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(dir.path().join("knotd.log"))
        .unwrap_or_default()
        .contains("server started")
    {
        assert!(Instant::now() < deadline, "knotd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let silent = format!("127.0.0.1:{}", common::free_port());
    let text = std::fs::read_to_string(config(dir.path(), &knot, &bus))
        .unwrap()
        .replace(&knot.addr().to_string(), &silent)
        .replace(
            "type = \"knot-dbus\"\n",
            &format!(
                "type = \"knot-dbus\"\ncontrol-socket = \"{}\"\n",
                knot.dir.join("run/knot.sock").display()
            ),
        );
    let path = dir.path().join("dns-oops-control.toml");
    std::fs::write(&path, text).unwrap();
    let started = Instant::now();
    let mut daemon = Daemon::start(&path);
    for (zone, serial) in [("a.test.", 1u64), ("b.test.", 2026113007)] {
        let (_, ready) = daemon.wait_for(&format!("zone-ready {zone} from knotd"), WAIT, |s| {
            s.condition == ZoneReady && s.subject.as_deref() == Some(zone)
        });
        assert_eq!(ready.source, "knot-dbus");
        assert_eq!(ready.args["serial"], serial, "{zone}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the resync took {:?}",
        started.elapsed()
    );
}
