//! The dbus channel end to end: `dns-oops run` on a private bus run by a real `dbus-daemon`,
//! with `dbus-monitor` as the listener and `dbus-send` as the late listener (package
//! `dbus-bin`), both independent of dns-oops' D-Bus code; the demo's lab server as the
//! watched DNS server.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::bus::{Bus, BusSignal, Monitor, call, unquote};
use common::{Daemon, LabProcess};
use dns_oops::condition::ConditionId;
use dns_oops::signal::{Signal, SignalState};

const WAIT: Duration = Duration::from_secs(20);
const NAME: &str = "org.dnsoops.Signals1";
const PATH: &str = "/org/dnsoops/Signals1";

fn write_config(dir: &Path, lab_port: u16, bus: &str) -> PathBuf {
    let path = dir.join("dns-oops.toml");
    std::fs::write(
        &path,
        format!(
            "node = \"it\"\n[journal]\npath = \"{d}/journal.sqlite\"\n[http]\nlisten = \"off\"\n\
             [[server]]\nname = \"lab\"\naddress = \"127.0.0.1:{lab_port}\"\nzones = [\"a.test.\", \"b.test.\"]\n\
             [[source]]\ntype = \"probe\"\nserver = \"lab\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n\
             [[channel]]\ntype = \"log\"\n\
             [[channel]]\ntype = \"dbus\"\nbus = \"{bus}\"\n",
            d = dir.display(),
        ),
    )
    .unwrap();
    path
}

/// What a D-Bus signal must be for a journal signal: member, seq, the string arguments.
fn expected(signal: &Signal) -> BusSignal {
    let member = match signal.state {
        SignalState::Met => "Met",
        SignalState::Cleared => "Cleared",
        SignalState::Event => "Event",
    };
    BusSignal {
        member: member.into(),
        numbers: vec![signal.seq],
        strings: vec![
            dns_oops::signal::format_time(&signal.time),
            signal.node.clone(),
            signal.server.clone(),
            signal.condition.to_string(),
            signal.subject_or_dash().to_string(),
            signal.source.clone(),
        ],
    }
}

/// The structs of a `dbus-send --print-reply` answer: the strings and numbers directly in
/// each struct, in order.
fn structs(reply: &str) -> Vec<(Vec<String>, Vec<u64>)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<String>, Vec<u64>)> = None;
    for line in reply.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if text == "struct {" {
            open = Some((indent + 3, Vec::new(), Vec::new()));
            continue;
        }
        let Some((inner, strings, numbers)) = open.as_mut() else {
            continue;
        };
        if text == "}" && indent + 3 == *inner {
            let (_, strings, numbers) = open.take().unwrap();
            out.push((strings, numbers));
        } else if indent == *inner {
            if let Some(s) = text.strip_prefix("string ") {
                strings.push(unquote(s));
            } else if let Some(n) = text.strip_prefix("uint64 ") {
                numbers.push(n.parse().unwrap());
            }
        }
    }
    out
}

/// The first top-level `uint64` of a reply.
fn first_number(reply: &str) -> u64 {
    reply
        .lines()
        .find_map(|l| l.strip_prefix("   uint64 "))
        .expect("a uint64 in the reply")
        .parse()
        .unwrap()
}

#[test]
fn signals_arrive_in_order_and_a_late_listener_gets_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut bus = Bus::start(dir.path());
    let mut lab = LabProcess::start(dir.path());
    lab.say("zone a.test. 1\nzone b.test. 1\n");
    let mut monitor = Monitor::start(&bus.address, NAME, 6);
    // Without the bus's guid, so that the channel accepts the bus started again below.
    let address = bus.address.split(",guid=").next().unwrap().to_string();
    let config = write_config(dir.path(), lab.port, &address);
    let mut daemon = Daemon::start(&config);
    daemon.wait_for("zone-ready b.test.", WAIT, |s| {
        s.condition == ConditionId::ZoneReady && s.subject.as_deref() == Some("b.test.")
    });
    lab.say("zone a.test. 2\n");
    daemon.wait_for("zone-updated a.test.", WAIT, |s| {
        s.condition == ConditionId::ZoneUpdated
    });
    lab.say("remove b.test.\n");
    daemon.wait_for("zone-ready b.test. cleared", WAIT, |s| {
        s.condition == ConditionId::ZoneReady && s.state == SignalState::Cleared
    });
    daemon.drain(Duration::from_millis(500));
    let last = daemon.seen.last().unwrap().seq;
    monitor.wait_for("the last signal", WAIT, |s| s.numbers == [last]);
    monitor.drain(Duration::from_millis(300));

    // Every signal, in order, once, with the member of its state and its fields.
    let want: Vec<BusSignal> = daemon.seen.iter().map(expected).collect();
    assert_eq!(monitor.seen, want);
    // The arguments travel as a{sv}: the serial of zone-updated as an int64.
    assert!(want.iter().any(|s| s.member == "Event"));
    assert!(want.iter().any(|s| s.member == "Cleared"));

    // A listener that starts now gets the current state from the method.
    let mut met: BTreeMap<(String, String), u64> = BTreeMap::new();
    for s in &daemon.seen {
        let key = (s.condition.to_string(), s.subject_or_dash().to_string());
        match s.state {
            SignalState::Met => {
                met.insert(key, s.seq);
            }
            SignalState::Cleared => {
                met.remove(&key);
            }
            SignalState::Event => {}
        }
    }
    let reply = call(
        &bus.address,
        NAME,
        PATH,
        "org.dnsoops.Signals1.GetConditions",
        &[],
    );
    assert_eq!(first_number(&reply), last, "{reply}");
    let got: BTreeMap<(String, String), u64> = structs(&reply)
        .into_iter()
        .map(|(strings, numbers)| {
            assert_eq!(strings[0], "lab", "{reply}");
            ((strings[1].clone(), strings[2].clone()), numbers[0])
        })
        .collect();
    assert_eq!(got, met, "{reply}");
    assert!(got.contains_key(&("zone-ready".into(), "a.test.".into())));
    assert!(!got.contains_key(&("zone-ready".into(), "b.test.".into())));
    assert!(
        reply.contains("int64 2"),
        "zone-ready a.test. has serial 2 now: {reply}"
    );

    // …and the signals it missed from the other method.
    let reply = call(
        &bus.address,
        NAME,
        PATH,
        "org.dnsoops.Signals1.GetSignalsAfter",
        &["uint64:0", "uint32:1000"],
    );
    assert_eq!(first_number(&reply), last, "{reply}");
    let replayed: Vec<(u64, String)> = structs(&reply)
        .into_iter()
        .map(|(strings, numbers)| (numbers[0], strings.last().unwrap().clone()))
        .collect();
    let journal: Vec<(u64, String)> = daemon
        .seen
        .iter()
        .map(|s| (s.seq, s.state.to_string()))
        .collect();
    assert_eq!(replayed, journal);

    let xml = call(
        &bus.address,
        NAME,
        PATH,
        "org.freedesktop.DBus.Introspectable.Introspect",
        &[],
    );
    assert!(
        xml.contains("<interface name=\"org.dnsoops.Signals1\">"),
        "{xml}"
    );

    // The bus goes away; signals recorded meanwhile are emitted, in order, on the new bus.
    drop(monitor);
    bus.stop();
    lab.say("zone a.test. 3\n");
    daemon.wait_for("zone-updated a.test. 3", WAIT, |s| {
        s.condition == ConditionId::ZoneUpdated
            && s.args.get("serial").and_then(|v| v.as_u64()) == Some(3)
    });
    lab.say("zone b.test. 5\n");
    daemon.wait_for("zone-ready b.test. again", WAIT, |s| {
        s.condition == ConditionId::ZoneReady
            && s.subject.as_deref() == Some("b.test.")
            && s.state == SignalState::Met
    });
    daemon.drain(Duration::from_millis(300));
    let bus = Bus::start(dir.path());
    let mut monitor = Monitor::start(&bus.address, NAME, 6);
    let missed: Vec<BusSignal> = daemon
        .seen
        .iter()
        .filter(|s| s.seq > last)
        .map(expected)
        .collect();
    let newest = missed.last().unwrap().numbers[0];
    monitor.wait_for("the signals recorded while the bus was down", WAIT, |s| {
        s.numbers == [newest]
    });
    monitor.drain(Duration::from_millis(300));
    assert_eq!(monitor.seen, missed);
    daemon.terminate();
}

#[test]
fn the_shipped_bus_policy_lets_dns_oops_own_its_name_on_a_system_bus() {
    let dir = tempfile::tempdir().unwrap();
    let policy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/dbus-1/system.d/org.dnsoops.Signals1.conf");
    let mut lab = LabProcess::start(dir.path());
    lab.say("zone a.test. 1\nzone b.test. 1\n");

    // Without the policy, the name cannot be owned: no answer from it.
    let bare = Bus::start_system_like(dir.path(), &[]);
    let address = bare.address.split(",guid=").next().unwrap().to_string();
    let config = write_config(dir.path(), lab.port, &address);
    let mut daemon = Daemon::start(&config);
    daemon.wait_for("zone-ready b.test.", WAIT, |s| {
        s.condition == ConditionId::ZoneReady && s.subject.as_deref() == Some("b.test.")
    });
    let refused = std::process::Command::new(common::require("dbus-send", "dbus-bin"))
        .arg(format!("--bus={}", bare.address))
        .args([
            "--dest=org.dnsoops.Signals1",
            "--print-reply",
            "--reply-timeout=2000",
        ])
        .args([PATH, "org.dnsoops.Signals1.GetConditions"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    daemon.terminate();
    drop(bare);

    // With it, dns-oops owns the name and anyone may call its methods.
    let bus = Bus::start_system_like(dir.path(), &[&policy]);
    let mut daemon = Daemon::start(&config);
    let deadline = std::time::Instant::now() + WAIT;
    let reply = loop {
        let output = std::process::Command::new(common::require("dbus-send", "dbus-bin"))
            .arg(format!("--bus={}", bus.address))
            .args([
                "--dest=org.dnsoops.Signals1",
                "--print-reply",
                "--reply-timeout=2000",
            ])
            .args([PATH, "org.dnsoops.Signals1.GetConditions"])
            .output()
            .unwrap();
        if output.status.success() {
            break String::from_utf8(output.stdout).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer on a bus with the policy: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(reply.contains("string \"zone-ready\""), "{reply}");
    daemon.drain(Duration::from_millis(100));
    daemon.terminate();
}
