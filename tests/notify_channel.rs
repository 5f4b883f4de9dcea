//! The notify channel end to end: `dns-oops run` serves its signals zone and sends
//! TSIG-signed NOTIFY to a real knotd secondary (package `knot`), which transfers the zone
//! from dns-oops and is checked with `kdig` (package `knot-dnsutils`); a second target never
//! answers. The demo's lab server is the watched DNS server.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Knot, LabProcess, free_port, require};
use dns_oops::condition::ConditionId;
use dns_oops::signal::SignalState;

const WAIT: Duration = Duration::from_secs(20);
const ZONE: &str = "it.oops.internal.";
/// base64 of 32 octets, as `keymgr -t` prints it.
const SECRET: &str = "ZG5zLW9vcHMgbm90aWZ5IGNoYW5uZWwgdGVzdCBrZXk=";

fn write_config(dir: &Path, lab: u16, http: u16, serve: u16, knot: u16, silent: u16) -> PathBuf {
    let path = dir.join("dns-oops.toml");
    std::fs::write(
        &path,
        format!(
            "node = \"it\"\n[journal]\npath = \"{d}/journal.sqlite\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [[server]]\nname = \"lab\"\naddress = \"127.0.0.1:{lab}\"\nzones = [\"a.test.\", \"b.test.\"]\n\
             [[source]]\ntype = \"probe\"\nserver = \"lab\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n\
             [[channel]]\ntype = \"log\"\n\
             [[channel]]\ntype = \"notify\"\ntargets = [\"127.0.0.1:{knot}\", \"127.0.0.1:{silent}\"]\n\
             serve = \"127.0.0.1:{serve}\"\ntimeout = \"300ms\"\nretries = 1\nmax-backoff = \"1s\"\n\
             tsig-key = {{ name = \"oops-key.\", algorithm = \"hmac-sha256\", secret = \"{SECRET}\" }}\n",
            d = dir.display(),
        ),
    )
    .unwrap();
    path
}

/// A knotd secondary of the signals zone: it transfers from dns-oops (unsigned, from
/// loopback) and accepts NOTIFY only when signed with the key.
fn secondary(dir: &Path, serve: u16) -> Knot {
    let knot = Knot::new(dir, &[]);
    let config = format!(
        "server:\n    rundir: \"{d}/run\"\n    pidfile: \"{d}/knotd.pid\"\n    listen: 127.0.0.1@{port}\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}/db\"\n\
         key:\n  - id: oops-key.\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
         remote:\n  - id: oops\n    address: 127.0.0.1@{serve}\n\
         acl:\n  - id: notify-from-oops\n    address: 127.0.0.1\n    key: oops-key.\n    action: notify\n\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    zonefile-sync: -1\n    zonefile-load: none\n\
         zone:\n  - domain: {ZONE}\n    master: oops\n    acl: notify-from-oops\n",
        d = dir.display(),
        port = knot.port,
    );
    std::fs::write(dir.join("knot.conf"), config).unwrap();
    knot
}

/// `kdig +short` of `name`/`rtype` at the secondary.
fn kdig(knot: &Knot, name: &str, rtype: &str) -> String {
    let output = Command::new(require("kdig", "knot-dnsutils"))
        .arg("@127.0.0.1")
        .args([
            "-p",
            &knot.port.to_string(),
            "+short",
            "+timeout=1",
            name,
            rtype,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The secondary's SOA serial of the signals zone, if it has the zone.
fn serial(knot: &Knot) -> Option<u64> {
    kdig(knot, ZONE, "SOA")
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
}

fn wait_for_serial(knot: &Knot, want: u64) -> Duration {
    let started = Instant::now();
    while serial(knot) != Some(want) {
        assert!(
            started.elapsed() < WAIT,
            "the secondary has serial {:?}, not {want}; its log:\n{}",
            serial(knot),
            std::fs::read_to_string(knot.dir.join("knotd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// Sends an unsigned NOTIFY for the zone to the secondary and returns its answer's RCODE.
fn unsigned_notify_rcode(port: u16) -> Option<u8> {
    let mut request = vec![0x12, 0x34, 0x24, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ZONE.trim_end_matches('.').split('.') {
        request.push(label.len() as u8);
        request.extend_from_slice(label.as_bytes());
    }
    request.extend_from_slice(&[0, 0, 6, 0, 1]);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.send_to(&request, ("127.0.0.1", port)).unwrap();
    let mut answer = [0u8; 512];
    let len = socket.recv(&mut answer).ok()?;
    (len >= 12 && answer[..2] == [0x12, 0x34]).then_some(answer[3] & 0x0f)
}

fn metrics(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn a_knot_secondary_refreshes_on_signed_notify_and_a_silent_target_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let knot_dir = dir.path().join("knot");
    std::fs::create_dir_all(&knot_dir).unwrap();
    let mut lab = LabProcess::start(dir.path());
    lab.say("zone a.test. 1\nzone b.test. 1\n");
    let (http, serve) = (free_port(), free_port());
    // A target that takes NOTIFY and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let mut knot = secondary(&knot_dir, serve);
    let config = write_config(dir.path(), lab.port, http, serve, knot.port, silent_port);
    let mut daemon = Daemon::start(&config);
    daemon.wait_for("zone-ready b.test.", WAIT, |s| {
        s.condition == ConditionId::ZoneReady && s.subject.as_deref() == Some("b.test.")
    });
    daemon.drain(Duration::from_millis(300));

    // The secondary starts, transfers the zone, and has the journal's seq as serial.
    knot.start();
    let last = daemon.seen.last().unwrap().seq;
    wait_for_serial(&knot, last);
    let txt = kdig(&knot, "zone-ready.lab.it.oops.internal.", "TXT");
    assert!(txt.contains("\"subject=a.test.\""), "{txt}");
    assert!(txt.contains("\"subject=b.test.\""), "{txt}");

    // A change: the NOTIFY makes the secondary refresh at once (its SOA refresh is an hour).
    for (round, serial_of_a) in [(1, 2), (2, 3)] {
        lab.say(&format!("zone a.test. {serial_of_a}\n"));
        daemon.wait_for("zone-updated a.test.", WAIT, |s| {
            s.condition == ConditionId::ZoneUpdated
                && s.args.get("serial").and_then(|v| v.as_u64()) == Some(serial_of_a)
        });
        daemon.drain(Duration::from_millis(200));
        let last = daemon.seen.last().unwrap().seq;
        let took = wait_for_serial(&knot, last);
        assert!(took < Duration::from_secs(5), "round {round}: {took:?}");
        let txt = kdig(&knot, "zone-updated.lab.it.oops.internal.", "TXT");
        assert!(txt.contains(&format!("\"serial={serial_of_a}\"")), "{txt}");
    }
    lab.say("remove b.test.\n");
    daemon.wait_for("zone-ready b.test. cleared", WAIT, |s| {
        s.condition == ConditionId::ZoneReady && s.state == SignalState::Cleared
    });
    daemon.drain(Duration::from_millis(200));
    wait_for_serial(&knot, daemon.seen.last().unwrap().seq);
    let txt = kdig(&knot, "zone-ready.lab.it.oops.internal.", "TXT");
    assert!(!txt.contains("b.test."), "{txt}");

    // Knot took the NOTIFYs…
    let log = std::fs::read_to_string(knot_dir.join("knotd.log")).unwrap();
    assert!(log.contains("notify, incoming"), "{log}");
    assert!(!log.contains("denied"), "{log}");
    // …and its ACL takes only signed ones: an unsigned NOTIFY is refused.
    assert_eq!(unsigned_notify_rcode(knot.port), Some(9), "NOTAUTH");

    // The silent target got each change twice (retries = 1) and is counted as unanswered.
    let deadline = Instant::now() + WAIT;
    let target = format!("target=\"127.0.0.1:{silent_port}\"");
    loop {
        let text = metrics(http);
        let unanswered = text
            .lines()
            .find(|l| l.starts_with("dns_oops_notify_unanswered_total") && l.contains(&target))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if unanswered >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "not counted:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    silent.set_nonblocking(true).unwrap();
    let mut requests = 0;
    let mut buffer = [0u8; 1024];
    while silent.recv_from(&mut buffer).is_ok() {
        requests += 1;
    }
    assert!(requests >= 2, "the silent target got {requests} NOTIFYs");
    daemon.terminate();
}
