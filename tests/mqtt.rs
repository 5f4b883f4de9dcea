//! The mqtt channel end to end: `dns-oops run` publishing to a real mosquitto on loopback,
//! checked with `mosquitto_sub`; the demo's lab server as the watched DNS server.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::{Daemon, LabProcess, free_port, require};
use dns_oops::condition::ConditionId;
use dns_oops::journal::Journal;
use dns_oops::signal::{Args, Signal, SignalState};

const WAIT: Duration = Duration::from_secs(15);

/// A mosquitto broker on a loopback port, with a config of its own.
struct Mosquitto {
    port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Writes the config: one listener, and `extra` lines (TLS, `persistence true`,
    /// `allow_anonymous false`); by default anonymous clients and no persistence.
    fn new(dir: &Path, extra: &str) -> Mosquitto {
        require("mosquitto", "mosquitto");
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let persistence = if extra.contains("persistence true") {
            format!("persistence_location {}/\n", dir.display())
        } else {
            "persistence false\n".into()
        };
        let anonymous = if extra.contains("allow_anonymous") {
            ""
        } else {
            "allow_anonymous true\n"
        };
        std::fs::write(
            &conf,
            format!(
                "user root\nper_listener_settings false\n{anonymous}{persistence}\
                 max_queued_messages 100000\nlog_dest stderr\nlistener {port} 127.0.0.1\n{extra}\n"
            ),
        )
        .unwrap();
        Mosquitto {
            port,
            conf,
            log: dir.join("mosquitto.log"),
            child: None,
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(require("mosquitto", "mosquitto"))
            .arg("-c")
            .arg(&self.conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}: {}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it with `signal` (9: everything in memory is lost; 15: a persistent broker
    /// saves its database first).
    fn stop(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            common::signal(child.id(), signal);
            child.wait().unwrap();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message as `mosquitto_sub -F '%r %t %p'` prints it.
#[derive(Debug, Clone)]
struct Message {
    retained: bool,
    topic: String,
    payload: String,
}

impl Message {
    fn signal(&self) -> Signal {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not a signal ({e}): {}", self.topic, self.payload))
    }
}

/// A running `mosquitto_sub` on `dns-oops/#`, QoS 1, MQTT 5.
struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<Message>,
    seen: Vec<Message>,
}

impl Subscriber {
    fn start(port: u16, extra: &[&str]) -> Subscriber {
        let mut child = Command::new(require("mosquitto_sub", "mosquitto-clients"))
            .args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "dns-oops/#", "-q", "1", "-F", "%r %t %p"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start mosquitto_sub");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.splitn(3, ' ');
                let message = Message {
                    retained: parts.next() == Some("1"),
                    topic: parts.next().unwrap_or_default().to_string(),
                    payload: parts.next().unwrap_or_default().to_string(),
                };
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        Subscriber {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first message, seen before or arriving now, that matches `pred`.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        if let Some(message) = self.seen.iter().find(|m| pred(m)) {
            return message.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(message) => {
                    self.seen.push(message.clone());
                    if pred(&message) {
                        return message;
                    }
                }
                Err(_) => panic!(
                    "no MQTT message `{what}` within {WAIT:?}; seen:\n{}",
                    self.seen
                        .iter()
                        .map(|m| format!("{} {} {}", m.retained, m.topic, m.payload))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The retained messages under `dns-oops/#` now: topic → payload.
fn retained(port: u16, extra: &[&str]) -> BTreeMap<String, String> {
    let output = Command::new(require("mosquitto_sub", "mosquitto-clients"))
        .args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-t",
            "dns-oops/#",
            "--retained-only",
            "-W",
            "1",
            "-F",
            "%t %p",
        ])
        .args(extra)
        .stderr(Stdio::null())
        .output()
        .expect("run mosquitto_sub");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (topic, payload) = line.split_once(' ').unwrap_or((line, ""));
            (topic.to_string(), payload.to_string())
        })
        .collect()
}

/// The lab DNS server, serving `zones` (name, serial).
fn lab(dir: &Path, zones: &[(&str, u32)]) -> LabProcess {
    let mut lab = LabProcess::start(dir);
    for (zone, serial) in zones {
        lab.say(&format!("zone {zone} {serial}\n"));
    }
    lab
}

/// A daemon config: node `it`, server `lab` at `lab_port` with `zones` (probed every 200
/// ms when `probe`), a log channel and the `mqtt` table.
fn write_config(dir: &Path, lab_port: u16, zones: &[&str], probe: bool, mqtt: &str) -> PathBuf {
    let zones = zones
        .iter()
        .map(|z| format!("\"{z}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let probe = if probe {
        "[[source]]\ntype = \"probe\"\nserver = \"lab\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n"
    } else {
        ""
    };
    let path = dir.join("dns-oops.toml");
    std::fs::write(
        &path,
        format!(
            "node = \"it\"\n[journal]\npath = \"{d}/journal.sqlite\"\n[http]\nlisten = \"off\"\n\
             [[server]]\nname = \"lab\"\naddress = \"127.0.0.1:{lab_port}\"\nzones = [{zones}]\n\
             {probe}[[channel]]\ntype = \"log\"\n[[channel]]\ntype = \"mqtt\"\n{mqtt}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    path
}

fn is_json(message: &Message, topic: &str, state: &str) -> bool {
    message.topic == topic
        && serde_json::from_str::<serde_json::Value>(&message.payload)
            .is_ok_and(|v| v["state"] == state)
}

/// Polls the retained messages until `pred` holds.
fn wait_retained(
    port: u16,
    what: &str,
    pred: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = retained(port, &[]);
        if pred(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "retained state never became {what}: {now:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn topics_retained_state_last_will_and_a_broker_that_lost_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::new(dir.path(), "");
    broker.start();
    let mut live = Subscriber::start(broker.port, &[]);
    let mut lab = lab(dir.path(), &[("a.test.", 10), ("b.test.", 20)]);
    let config = write_config(
        dir.path(),
        lab.port,
        &["a.test.", "b.test."],
        true,
        &format!("broker = \"127.0.0.1:{}\"\nkeepalive = \"5s\"", broker.port),
    );
    let mut daemon = Daemon::start(&config);

    live.wait_for("status online", |m| {
        m.topic == "dns-oops/it/status" && m.payload == "online"
    });
    let ready = live.wait_for("zone-ready a.test met", |m| {
        is_json(m, "dns-oops/it/lab/zone-ready/a.test", "met")
    });
    let signal = ready.signal();
    assert_eq!(
        (signal.node.as_str(), signal.server.as_str()),
        ("it", "lab")
    );
    assert_eq!(signal.condition, ConditionId::ZoneReady);
    assert_eq!(signal.subject.as_deref(), Some("a.test."));
    assert_eq!(signal.args["serial"], 10);
    // The payload is the signal's JSON line, exactly as the log channel writes it.
    let (_, logged) = daemon.wait_for("the same signal on stdout", WAIT, |s| s.seq == signal.seq);
    assert_eq!(ready.payload, logged.to_json_line());
    live.wait_for("all-zones-ready met", |m| {
        is_json(m, "dns-oops/it/lab/all-zones-ready/-", "met")
    });
    live.wait_for("server-running met", |m| {
        is_json(m, "dns-oops/it/lab/server-running/-", "met")
    });

    // An event: not retained.
    lab.say("zone a.test. 11\n");
    let updated = live.wait_for("zone-updated a.test", |m| {
        is_json(m, "dns-oops/it/lab/zone-updated/a.test", "event")
    });
    assert_eq!(updated.signal().args["serial"], 11);

    // A level condition clears: the cleared signal, then the retained state is cleared.
    lab.say("remove b.test.\n");
    live.wait_for("zone-ready b.test cleared", |m| {
        is_json(m, "dns-oops/it/lab/zone-ready/b.test", "cleared")
    });
    live.wait_for("zone-ready b.test retained state cleared", |m| {
        m.topic == "dns-oops/it/lab/zone-ready/b.test" && m.payload.is_empty()
    });
    live.wait_for("all-zones-ready cleared", |m| {
        m.topic == "dns-oops/it/lab/all-zones-ready/-" && m.payload.is_empty()
    });
    let state = retained(broker.port, &[]);
    let topics: Vec<&str> = state.keys().map(String::as_str).collect();
    assert_eq!(
        topics,
        [
            "dns-oops/it/lab/server-running/-",
            "dns-oops/it/lab/zone-ready/a.test",
            "dns-oops/it/status",
        ],
        "{state:#?}"
    );
    assert_eq!(state["dns-oops/it/status"], "online");
    let kept: Signal = serde_json::from_str(&state["dns-oops/it/lab/zone-ready/a.test"]).unwrap();
    assert_eq!(kept.state, SignalState::Met);

    // The broker restarts with nothing: dns-oops finds it does not know the client and
    // publishes the retained state of what is met again.
    broker.stop(9);
    drop(live);
    broker.start();
    let state = wait_retained(broker.port, "republished", |state| state.len() == 3);
    let topics: Vec<&str> = state.keys().map(String::as_str).collect();
    assert_eq!(
        topics,
        [
            "dns-oops/it/lab/server-running/-",
            "dns-oops/it/lab/zone-ready/a.test",
            "dns-oops/it/status",
        ]
    );
    let again: Signal = serde_json::from_str(&state["dns-oops/it/lab/zone-ready/a.test"]).unwrap();
    assert_eq!(again.seq, kept.seq, "the met signal, republished");
    assert_eq!(
        again.args["serial"], 11,
        "with the arguments as they are now"
    );

    // kill -9: the broker publishes the last will.
    let mut live = Subscriber::start(broker.port, &[]);
    live.wait_for("status online (retained)", |m| {
        m.topic == "dns-oops/it/status" && m.payload == "online"
    });
    daemon.kill9();
    live.wait_for("status offline (last will)", |m| {
        m.topic == "dns-oops/it/status" && m.payload == "offline"
    });
    assert_eq!(retained(broker.port, &[])["dns-oops/it/status"], "offline");
}

#[test]
fn tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.client("dns-oops", "dns-oops.test");
    let (sub_cert, sub_key) = pki.client("subscriber", "subscriber.test");
    let d = pki.dir().display();
    let mut broker = Mosquitto::new(
        dir.path(),
        &format!(
            "cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true"
        ),
    );
    broker.start();
    let ca = pki.ca();
    let tls_args = [
        "--cafile",
        ca.to_str().unwrap(),
        "--cert",
        sub_cert.to_str().unwrap(),
        "--key",
        sub_key.to_str().unwrap(),
    ];
    let mut live = Subscriber::start(broker.port, &tls_args);
    let lab = lab(dir.path(), &[("a.test.", 7)]);
    let config = write_config(
        dir.path(),
        lab.port,
        &["a.test."],
        true,
        &format!(
            "broker = \"127.0.0.1:{}\"\nprefix = \"dns-oops\"\ntls = true\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"",
            broker.port,
            pki.ca().display(),
            cert.display(),
            key.display()
        ),
    );
    let _daemon = Daemon::start(&config);
    live.wait_for("status online over TLS", |m| {
        m.topic == "dns-oops/it/status" && m.payload == "online"
    });
    let ready = live.wait_for("zone-ready over TLS", |m| {
        is_json(m, "dns-oops/it/lab/zone-ready/a.test", "met")
    });
    assert_eq!(ready.signal().args["serial"], 7);

    // Without a client certificate the broker refuses the TLS session: nothing arrives.
    let other = tempfile::tempdir().unwrap();
    let lab_port = lab.port;
    let config = write_config(
        other.path(),
        lab_port,
        &["a.test."],
        true,
        &format!(
            "broker = \"127.0.0.1:{}\"\nprefix = \"dns-oops\"\nclient-id = \"anonymous\"\ntls = true\nca = \"{}\"",
            broker.port,
            pki.ca().display()
        ),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("node = \"it\"", "node = \"nocert\"");
    std::fs::write(&config, text).unwrap();
    let _refused = Daemon::start(&config);
    std::thread::sleep(Duration::from_secs(2));
    let state = retained(broker.port, &tls_args);
    assert!(
        !state.keys().any(|t| t.starts_with("dns-oops/nocert/")),
        "a client without a certificate got through: {state:#?}"
    );
}

/// 10,000 signals in the journal, delivered while the broker restarts in the middle: every
/// one arrives, and per topic in `seq` order.
#[test]
fn a_broker_restart_in_a_burst_of_ten_thousand_signals_loses_nothing() {
    burst(Interruption::BrokerRestart);
}

/// The same burst, with dns-oops killed (-9) in the middle and started again: it resumes
/// from the last acknowledged signal.
#[test]
fn kill_9_of_dns_oops_in_a_burst_loses_nothing() {
    burst(Interruption::DaemonKill9);
}

#[derive(Debug, Clone, Copy)]
enum Interruption {
    BrokerRestart,
    DaemonKill9,
}

fn burst(interruption: Interruption) {
    const BURST: u64 = 10_000;
    const TOPICS: u64 = 10;
    let dir = tempfile::tempdir().unwrap();
    // A broker that keeps its sessions and queued messages across a clean restart, so the
    // subscriber misses nothing that reached the broker.
    let mut broker = Mosquitto::new(dir.path(), "persistence true");
    broker.start();
    let sub_args = ["-c", "-i", "burst-checker", "-x", "3600"];
    let live = Subscriber::start(broker.port, &sub_args);
    std::thread::sleep(Duration::from_millis(300));

    // The burst: zone-updated events for ten zones, written to the journal dns-oops will
    // open, with the channel's cursor before the first.
    let zones: Vec<String> = (0..TOPICS).map(|i| format!("z{i}.test.")).collect();
    {
        let journal = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
        journal.set_node("it").unwrap();
        let signals: Vec<Signal> = (1..=BURST)
            .map(|seq| Signal {
                seq,
                time: chrono::Utc::now(),
                node: "it".into(),
                server: "lab".into(),
                condition: ConditionId::ZoneUpdated,
                subject: Some(zones[(seq % TOPICS) as usize].clone()),
                state: SignalState::Event,
                args: Args::from([("serial".to_string(), seq.into())]),
                source: "probe".into(),
            })
            .collect();
        for chunk in signals.chunks(1000) {
            journal.record(chunk, &[]).unwrap();
        }
        journal.set_cursor("mqtt", 0).unwrap();
    }
    let zone_refs: Vec<&str> = zones.iter().map(String::as_str).collect();
    let config = write_config(
        dir.path(),
        free_port(),
        &zone_refs,
        false,
        &format!("broker = \"127.0.0.1:{}\"", broker.port),
    );
    let started = Instant::now();
    let mut daemon = Daemon::start(&config);

    let mut seqs_by_topic: HashMap<String, Vec<u64>> = HashMap::new();
    let mut count = 0;
    let record = |message: &Message, by_topic: &mut HashMap<String, Vec<u64>>| {
        if message.topic.contains("/zone-updated/") {
            by_topic
                .entry(message.topic.clone())
                .or_default()
                .push(message.signal().seq);
            return true;
        }
        false
    };
    while count < 2_500 {
        let message = live
            .lines
            .recv_timeout(WAIT)
            .expect("the burst starts arriving");
        if record(&message, &mut seqs_by_topic) {
            count += 1;
        }
    }
    // Restart the broker in the middle of the burst.
    let restarted_at = Instant::now();
    match interruption {
        Interruption::BrokerRestart => {
            broker.stop(15);
            broker.start();
        }
        Interruption::DaemonKill9 => {
            daemon.kill9();
            daemon = Daemon::start(&config);
        }
    }
    let highest_before = seqs_by_topic.values().flatten().max().copied().unwrap();

    let mut distinct: std::collections::HashSet<u64> =
        seqs_by_topic.values().flatten().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (distinct.len() as u64) < BURST {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match live.lines.recv_timeout(left) {
            Ok(message) => message,
            Err(_) => panic!(
                "{} of {BURST} signals arrived; missing e.g. {:?}",
                distinct.len(),
                (1..=BURST).find(|s| !distinct.contains(s))
            ),
        };
        if record(&message, &mut seqs_by_topic) {
            distinct.insert(message.signal().seq);
        }
    }
    let elapsed = started.elapsed();
    assert!(
        highest_before < BURST,
        "the burst was over before the {interruption:?}; nothing was tested"
    );
    let mut duplicates = 0;
    for (topic, seqs) in &seqs_by_topic {
        let mut first_seen = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &seq in seqs {
            if seen.insert(seq) {
                first_seen.push(seq);
            } else {
                duplicates += 1;
            }
        }
        assert!(
            first_seen.windows(2).all(|w| w[0] < w[1]),
            "{topic}: out of order: {first_seen:?}"
        );
        assert_eq!(first_seen.len() as u64, BURST / TOPICS, "{topic}");
    }
    eprintln!(
        "burst of {BURST}: all delivered in {elapsed:?}, {interruption:?} after seq {highest_before} \
         ({:?} before the end), {duplicates} duplicates",
        restarted_at.elapsed()
    );
    drop(daemon);
}

#[test]
fn username_and_password_from_a_file_and_a_refused_password() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let status = Command::new(require("mosquitto_passwd", "mosquitto"))
        .arg("-c")
        .arg("-b")
        .arg(&passwd)
        .args(["dns-oops", "s3cret-horse"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut broker = Mosquitto::new(
        dir.path(),
        &format!("allow_anonymous false\npassword_file {}", passwd.display()),
    );
    broker.start();
    let credentials = ["-u", "dns-oops", "-P", "s3cret-horse"];
    let mut live = Subscriber::start(broker.port, &credentials);

    // A wrong password: a clear error in the log, retried, and never the password itself.
    let wrong = dir.path().join("wrong");
    std::fs::create_dir(&wrong).unwrap();
    let config = write_config(
        &wrong,
        free_port(),
        &["a.test."],
        false,
        &format!(
            "broker = \"127.0.0.1:{}\"\nusername = \"dns-oops\"\npassword = \"not-the-pw-1234\"",
            broker.port
        ),
    );
    let mut refused = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("DNS_OOPS_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = refused.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + WAIT;
    while log
        .iter()
        .filter(|l: &&String| l.contains("refused the connection"))
        .count()
        < 2
    {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => log.push(line),
            Err(_) => panic!("no refusal logged twice:\n{}", log.join("\n")),
        }
    }
    let _ = refused.kill();
    let _ = refused.wait();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push(line);
    }
    let text = log.join("\n");
    assert!(text.contains("NotAuthorized"), "{text}");
    assert!(
        !text.contains("not-the-pw-1234"),
        "the password was logged:\n{text}"
    );

    // The right password, from a file.
    let right = dir.path().join("right");
    std::fs::create_dir(&right).unwrap();
    std::fs::write(right.join("mqtt.password"), "s3cret-horse\n").unwrap();
    let config = write_config(
        &right,
        free_port(),
        &["a.test."],
        false,
        &format!(
            "broker = \"127.0.0.1:{}\"\nusername = \"dns-oops\"\npassword-file = \"{}/mqtt.password\"",
            broker.port,
            right.display()
        ),
    );
    let mut daemon = Daemon::start(&config);
    live.wait_for("status online with a password", |m| {
        m.topic == "dns-oops/it/status" && m.payload == "online"
    });

    // A clean shutdown leaves the status `offline` too.
    let status = daemon.terminate();
    assert!(status.success(), "dns-oops exited with {status}");
    live.wait_for("status offline after SIGTERM", |m| {
        m.topic == "dns-oops/it/status" && m.payload == "offline"
    });
}
