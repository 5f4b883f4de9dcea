//! A private D-Bus bus run by a real `dbus-daemon`, and `dbus-monitor` as a listener that
//! is independent of dns-oops' own D-Bus code.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::require;

/// A private bus with the session-bus policy (anyone may own any name).
pub struct Bus {
    child: Child,
    pub address: String,
    socket: PathBuf,
}

impl Bus {
    /// Listens on `dir/bus`.
    pub fn start(dir: &Path) -> Bus {
        let socket = dir.join("bus");
        let _ = std::fs::remove_file(&socket);
        let mut child = Command::new(require("dbus-daemon", "dbus-daemon"))
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address=unix:path={}", socket.display()))
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
            socket,
        }
    }

    /// A bus like Debian's system bus (nobody may own a name or call a method unless a
    /// policy allows it) with the policy files `include` added, listening on `dir/bus`.
    pub fn start_system_like(dir: &Path, include: &[&Path]) -> Bus {
        let socket = dir.join("bus");
        let _ = std::fs::remove_file(&socket);
        let includes: String = include
            .iter()
            .map(|path| format!("  <include>{}</include>\n", path.display()))
            .collect();
        let config = dir.join("system-like.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
{includes}</busconfig>
"#,
                socket = socket.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(require("dbus-daemon", "dbus-daemon"))
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            !line.trim().is_empty(),
            "dbus-daemon refused {}",
            config.display()
        );
        Bus {
            child,
            address: line.trim().to_string(),
            socket,
        }
    }

    /// Stops the bus (every connection on it breaks).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One D-Bus signal as `dbus-monitor` printed it.
#[derive(Debug, Clone, PartialEq)]
pub struct BusSignal {
    pub member: String,
    /// The `uint64` arguments at the top level, in order.
    pub numbers: Vec<u64>,
    /// The `string` arguments at the top level, in order.
    pub strings: Vec<String>,
}

/// `dbus-monitor` watching the signals of one interface whose signals carry
/// `strings_per_signal` top-level strings: a signal is complete at its last string (the
/// monitor's output says nothing more until the next message).
pub struct Monitor {
    child: Child,
    signals: mpsc::Receiver<BusSignal>,
    pub seen: Vec<BusSignal>,
}

impl Monitor {
    pub fn start(address: &str, interface: &str, strings_per_signal: usize) -> Monitor {
        let mut child = Command::new(require("dbus-monitor", "dbus-bin"))
            .arg("--address")
            .arg(address)
            .arg(format!("type='signal',interface='{interface}'"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dbus-monitor");
        let stdout = child.stdout.take().unwrap();
        // The monitor's own NameAcquired and NameLost come through too; they are left out.
        let wanted = format!("interface={interface}; member=");
        let (tx, signals) = mpsc::channel();
        std::thread::spawn(move || {
            let mut current: Option<BusSignal> = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !line.starts_with(' ') {
                    if let Some(done) = current.take()
                        && tx.send(done).is_err()
                    {
                        return;
                    }
                    if line.starts_with("signal ") && line.contains(&wanted) {
                        let member = line.rsplit("member=").next().unwrap_or("").to_string();
                        current = Some(BusSignal {
                            member,
                            numbers: Vec::new(),
                            strings: Vec::new(),
                        });
                    }
                    continue;
                }
                let Some(signal) = current.as_mut() else {
                    continue;
                };
                // Top-level arguments are indented by three spaces.
                let Some(value) = line.strip_prefix("   ") else {
                    continue;
                };
                if value.starts_with(' ') {
                    continue;
                }
                if let Some(n) = value.strip_prefix("uint64 ") {
                    signal.numbers.push(n.trim().parse().unwrap());
                } else if let Some(s) = value.strip_prefix("string ") {
                    signal.strings.push(unquote(s));
                    if signal.strings.len() == strings_per_signal {
                        let done = current.take().unwrap();
                        if tx.send(done).is_err() {
                            return;
                        }
                    }
                }
            }
            if let Some(done) = current.take() {
                let _ = tx.send(done);
            }
        });
        Monitor {
            child,
            signals,
            seen: Vec::new(),
        }
    }

    /// Waits until a signal matching `pred` has been seen (now or before).
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&BusSignal) -> bool) {
        if self.seen.iter().any(&pred) {
            return;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.signals.recv_timeout(left) {
                Ok(signal) => {
                    let hit = pred(&signal);
                    self.seen.push(signal);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "dbus-monitor saw no {what} within {timeout:?}: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Collects what arrives until nothing has for `quiet`.
    pub fn drain(&mut self, quiet: Duration) {
        while let Ok(signal) = self.signals.recv_timeout(quiet) {
            self.seen.push(signal);
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a `dbus-monitor`/`dbus-send` string value: `"a.test."` → `a.test.`.
pub fn unquote(text: &str) -> String {
    let text = text.trim();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
        .to_string()
}

/// Calls a method with `dbus-send --print-reply` and returns its output.
pub fn call(address: &str, destination: &str, path: &str, method: &str, args: &[&str]) -> String {
    let output = Command::new(require("dbus-send", "dbus-bin"))
        .arg(format!("--bus={address}"))
        .arg(format!("--dest={destination}"))
        .args(["--print-reply", "--reply-timeout=5000", path, method])
        .args(args)
        .output()
        .expect("run dbus-send");
    assert!(
        output.status.success(),
        "dbus-send {method} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
