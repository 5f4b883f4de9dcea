//! How long a change inside the server takes to become a journalled signal delivered to an
//! `exec` hook, by two in-server sources:
//!
//! * **knot-dbus**: knotd (Debian `knot`, `dbus-event: [ running, zone-updated ]`) on a
//!   private `dbus-daemon`; the zone is changed with `knotc zone-reload`. Start: the moment
//!   a `dbus-monitor` on the same bus received knotd's `zone_updated` signal (its `time=`).
//! * **notify-in**: the harness sends a NOTIFY (UDP) for the zone to dns-oops's listener,
//!   which confirms it with a SOA query to knotd. Start: the moment before the NOTIFY is
//!   sent.
//!
//! End: the hook's own clock (`$EPOCHREALTIME` in bash) when it runs for the `zone-updated`
//! signal with that serial. The hook's process start is included, as an operator's hook
//! would pay it. Updates are one at a time: the next starts when the hook has run.
//!
//! ```sh
//! cargo bench --bench source_latency                 # 1000 updates per source
//! UPDATES=200 cargo bench --bench source_latency
//! ```
//!
//! Needs Debian `knot`, `dbus` (dbus-daemon, dbus-monitor) — scripts/test installs them.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Knot, free_port, require};

/// The longest wait for one update to reach the hook.
const WAIT: Duration = Duration::from_secs(10);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let updates: u32 = std::env::var("UPDATES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (mut bus, address) = start_bus(dir);
    let mut knot = Knot::new(&dir.join("knot"), &["a.test"]);
    let conf = knot.dir.join("knot.conf");
    let text = std::fs::read_to_string(&conf).unwrap().replacen(
        "server:\n",
        "server:\n    dbus-event: [ running, zone-updated ]\n    dbus-init-delay: 0\n",
        1,
    );
    std::fs::write(&conf, text).unwrap();
    knot.env
        .push(("DBUS_SYSTEM_BUS_ADDRESS".into(), address.clone()));
    let monitor = DbusMonitor::start(&address);
    knot.start();
    let notify_port = free_port();
    let hook_log = dir.join("hook.log");
    let config = dns_oops_config(dir, &knot, &address, notify_port, &hook_log);
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dns-oops.log")).unwrap())
        .spawn()
        .unwrap();
    let mut hook = HookLog::new(hook_log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new("knotc")
        .arg("-c")
        .arg(&conf)
        .arg("status")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "knotd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Warm-up, not measured: the first serial of each server is zone-ready, later ones
    // are zone-updated (the hook runs for both).
    let mut serial = 1u32;
    serial += 1;
    knot.write_zone("a.test", serial);
    knot.knotc(&["zone-reload", "a.test"]);
    hook.wait_for("knot", serial, Duration::from_secs(30));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_notify(&socket, notify_port, 0);
    hook.wait_for("knot-notify", serial, Duration::from_secs(30));
    monitor.drain();

    let mut dbus = Vec::new();
    let mut notify = Vec::new();
    let started = Instant::now();
    for i in 0..updates {
        serial += 1;
        knot.write_zone("a.test", serial);
        knot.knotc(&["zone-reload", "a.test"]);
        let signalled = monitor.serial(serial);
        let delivered = hook.wait_for("knot", serial, WAIT);
        dbus.push(delivered - signalled);
        // The same serial through a NOTIFY: dns-oops confirms it with a SOA query.
        let sent = now();
        send_notify(&socket, notify_port, i as u16);
        let delivered = hook.wait_for("knot-notify", serial, WAIT);
        notify.push(delivered - sent);
        if (i + 1) % 100 == 0 {
            eprintln!(
                "{} updates in {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    drop(knot);
    let _ = bus.kill();
    let _ = bus.wait();

    println!("## source_latency — server change → journal → exec hook, {updates} updates each\n");
    println!(
        "`UPDATES={updates} cargo bench --bench source_latency` on {}, {}, {}.\n",
        support::machine(),
        support::version("knotd", &["-V"]),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    println!("| path | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (path, mut times) in [
        (
            "knotd `zone_updated` on D-Bus → knot-dbus → exec hook",
            dbus,
        ),
        (
            "NOTIFY → notify-in (+ SOA query to knotd) → exec hook",
            notify,
        ),
    ] {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "| {path} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            at(0.5) * 1e3,
            at(0.9) * 1e3,
            at(0.99) * 1e3,
            times[times.len() - 1] * 1e3
        );
    }
}

/// Seconds since the epoch, as the hook's `$EPOCHREALTIME`.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn start_bus(dir: &Path) -> (Child, String) {
    let mut child = Command::new(require("dbus-daemon", "dbus"))
        .args(["--session", "--nofork", "--print-address=1"])
        .arg(format!("--address=unix:path={}/bus", dir.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_string())
}

/// `dbus-monitor` on the bus, reporting (serial, time) of each `zone_updated`.
struct DbusMonitor {
    child: Child,
    seen: mpsc::Receiver<(u32, f64)>,
}

impl DbusMonitor {
    fn start(address: &str) -> DbusMonitor {
        let mut child = Command::new(require("dbus-monitor", "dbus"))
            .args(["--address", address])
            .arg("type='signal',interface='cz.nic.knotd.events',member='zone_updated'")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            // signal time=1764469200.123456 sender=… member=zone_updated
            //    string "a.test."
            //    uint32 5
            let mut time = None;
            for line in out.lines().map_while(Result::ok) {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("signal time=") {
                    time = rest.split_whitespace().next().and_then(|t| t.parse().ok());
                } else if let (Some(serial), Some(at)) = (line.strip_prefix("uint32 "), time) {
                    if let Ok(serial) = serial.parse() {
                        let _ = tx.send((serial, at));
                    }
                    time = None;
                }
            }
        });
        DbusMonitor { child, seen }
    }

    /// When the `zone_updated` signal for `serial` was seen.
    fn serial(&self, serial: u32) -> f64 {
        loop {
            let (seen, at) = self
                .seen
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no zone_updated for serial {serial} on the bus"));
            if seen == serial {
                return at;
            }
        }
    }

    fn drain(&self) {
        while self.seen.try_recv().is_ok() {}
    }
}

impl Drop for DbusMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hook's lines: `<server> <serial> <EPOCHREALTIME>`.
struct HookLog {
    path: PathBuf,
    read: usize,
}

impl HookLog {
    fn new(path: PathBuf) -> HookLog {
        HookLog { path, read: 0 }
    }

    /// Waits for the hook's line for `server` and `serial`; its time.
    fn wait_for(&mut self, server: &str, serial: u32, timeout: Duration) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            // Only whole lines.
            let end = text.rfind('\n').map_or(0, |i| i + 1);
            for line in text[self.read.min(end)..end].lines() {
                let mut fields = line.split_whitespace();
                let (Some(s), Some(n), Some(t)) = (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                if s == server && n.parse() == Ok(serial) {
                    self.read = end;
                    return t.parse().expect("EPOCHREALTIME");
                }
            }
            self.read = end;
            assert!(
                Instant::now() < deadline,
                "the hook did not run for {server} serial {serial} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A NOTIFY (RFC 1996) for a.test. SOA, as a primary sends it.
fn send_notify(socket: &UdpSocket, port: u16, id: u16) {
    let mut message = Vec::with_capacity(32);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&[0x24, 0x00]); // opcode NOTIFY, AA
    message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    message.extend_from_slice(b"\x01a\x04test\x00");
    message.extend_from_slice(&[0, 6, 0, 1]); // SOA IN
    socket.send_to(&message, ("127.0.0.1", port)).unwrap();
}

fn dns_oops_config(
    dir: &Path,
    knot: &Knot,
    bus: &str,
    notify_port: u16,
    hook_log: &Path,
) -> PathBuf {
    let text = format!(
        r#"node = "bench"
[journal]
path = "{dir}/journal.sqlite"
[http]
listen = "off"
[[server]]
name = "knot"
address = "{addr}"
zones = ["a.test."]
[[server]]
name = "knot-notify"
address = "{addr}"
zones = ["a.test."]
[[source]]
type = "knot-dbus"
server = "knot"
bus = "{bus}"
[[source]]
type = "notify-in"
server = "knot-notify"
listen = "127.0.0.1:{notify_port}"
min-interval = "0s"
[[channel]]
type = "exec"
name = "hook"
command = ["/bin/bash", "-c", "echo \"$OOPS_SERVER $OOPS_ARG_SERIAL $EPOCHREALTIME\" >> {hook}"]
conditions = ["zone-ready", "zone-updated"]
"#,
        dir = dir.display(),
        addr = knot.addr(),
        hook = hook_log.display(),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}
