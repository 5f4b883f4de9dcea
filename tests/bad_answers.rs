//! A server that answers badly: the daemon keeps running and reports what it sees.
//! The server is the demo's lab server, run as its own process and told to misbehave.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Daemon, brief, free_port};
use dns_oops::condition::ConditionId::*;
use dns_oops::signal::SignalState;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn garbage_truncated_and_non_authoritative_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let pid_file = dir.path().join("lab.pid");
    let mut lab = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["demo", "--lab-server", &format!("127.0.0.1:{port}")])
        .arg(&pid_file)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut commands = lab.stdin.take().unwrap();
    let mut say = |line: &str| writeln!(commands, "{line}").unwrap();
    say("zone a.test. 10");

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
name = "lab"
address = "127.0.0.1:{port}"
zones = ["a.test."]
[[source]]
type = "probe"
server = "lab"
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 2
[[channel]]
type = "log"
"#,
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);
    daemon.wait_for("all-zones-ready met", WAIT, |s| {
        s.condition == AllZonesReady && s.state == SignalState::Met
    });

    // Not authoritative: the zone is not ready, the server still runs.
    say("behaviour not-authoritative");
    let (_, s) = daemon.wait_for("zone-ready cleared", WAIT, |s| s.condition == ZoneReady);
    assert_eq!(brief(&s), "zone-ready a.test. cleared");
    assert_eq!(s.args["error"], "not authoritative");

    // Truncated over UDP: the probe asks again over TCP and the zone is ready.
    say("behaviour truncate");
    let (_, s) = daemon.wait_for("zone-ready met", WAIT, |s| s.condition == ZoneReady);
    assert_eq!(brief(&s), "zone-ready a.test. met");
    assert_eq!(s.args["serial"], 10);

    // Garbage: no valid answer, so after `fall` rounds the server counts as not running.
    say("behaviour garbage");
    let (_, s) = daemon.wait_for("server-running cleared", WAIT, |s| {
        s.condition == ServerRunning
    });
    assert_eq!(s.state, SignalState::Cleared);
    assert_eq!(s.args["error"], "timeout");
    daemon.wait_for("server-crashed met", WAIT, |s| {
        s.condition == ServerCrashed && s.state == SignalState::Met
    });

    // Back to normal: everything recovers, and the daemon never stopped.
    say("behaviour normal");
    daemon.wait_for("all-zones-ready met", WAIT, |s| {
        s.condition == AllZonesReady && s.state == SignalState::Met
    });
    say("stop");
    lab.wait().unwrap();
    let status = daemon.terminate();
    assert!(status.success(), "dns-oops exited with {status}");
}
