//! kill -9 of dns-oops while its channels are delivering, then a new start: every signal in
//! the journal reaches every channel whose filter lets it through, checked by `seq` at each
//! receiver — log (stdout), exec (a slow hook), webhook (an HTTP receiver here), mqtt (a real
//! mosquitto, read with `mosquitto_sub`), dbus (a private `dbus-daemon`, read with
//! `dbus-monitor`) and notify (a UDP responder here that reads the SOA serial each NOTIFY
//! carries).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bus::{Bus, Monitor};
use common::{Daemon, LabProcess, free_port, require};
use dns_oops::condition::ConditionId;
use dns_oops::signal::Signal;

const WAIT: Duration = Duration::from_secs(60);

type Seqs = Arc<Mutex<BTreeSet<u64>>>;

/// An HTTP receiver that takes 50 ms to answer each POST with 200 and records its `seq`.
fn start_webhook_receiver(port: u16, seen: Seqs) {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |body: bytes::Bytes| {
                    let seen = seen.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let signal: Signal = serde_json::from_slice(&body).unwrap();
                        seen.lock().unwrap().insert(signal.seq);
                        axum::http::StatusCode::OK
                    }
                }),
            );
            ready_tx.send(()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    ready.recv_timeout(WAIT).unwrap();
}

/// A NOTIFY target that acknowledges every NOTIFY and records the SOA serial it carries.
fn start_notify_receiver(seen: Seqs) -> u16 {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::RData;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok((len, from)) = socket.recv_from(&mut buffer) {
            let Ok(request) = Message::from_vec(&buffer[..len]) else {
                continue;
            };
            for record in &request.answers {
                if let RData::SOA(soa) = &record.data {
                    seen.lock().unwrap().insert(u64::from(soa.serial));
                }
            }
            let mut answer = Message::new(
                request.metadata.id,
                MessageType::Response,
                request.metadata.op_code,
            );
            answer.metadata.authoritative = true;
            answer.add_queries(request.queries.clone());
            let _ = socket.send_to(&answer.to_vec().unwrap(), from);
        }
    });
    port
}

/// mosquitto on a free port, and `mosquitto_sub` recording the `seq` of every payload.
struct Mqtt {
    port: u16,
    broker: Child,
    subscriber: Child,
}

impl Mqtt {
    fn start(dir: &Path, seen: Seqs) -> Mqtt {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n\
                 log_dest none\nlistener {port} 127.0.0.1\n"
            ),
        )
        .unwrap();
        let broker = Command::new(require("mosquitto", "mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut subscriber = Command::new(require("mosquitto_sub", "mosquitto-clients"))
            .args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "dns-oops/it/lab/#", "-q", "1", "-F", "%p"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = subscriber.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // An empty payload clears a retained topic.
                if let Ok(signal) = serde_json::from_str::<Signal>(&line) {
                    seen.lock().unwrap().insert(signal.seq);
                }
            }
        });
        // The subscription is in place before anything is published.
        std::thread::sleep(Duration::from_millis(300));
        Mqtt {
            port,
            broker,
            subscriber,
        }
    }
}

impl Drop for Mqtt {
    fn drop(&mut self) {
        for child in [&mut self.subscriber, &mut self.broker] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Ports {
    lab: u16,
    hook: u16,
    mqtt: u16,
    notify: u16,
    serve: u16,
}

fn write_config(dir: &Path, ports: &Ports, bus: &str) -> PathBuf {
    let path = dir.join("dns-oops.toml");
    std::fs::write(
        &path,
        format!(
            r#"node = "it"
[journal]
path = "{d}/journal.sqlite"
[http]
listen = "off"
[[server]]
name = "lab"
address = "127.0.0.1:{lab}"
zones = ["a.test.", "b.test."]
[[source]]
type = "probe"
server = "lab"
interval = "200ms"
timeout = "200ms"
rise = 1
fall = 1
[[channel]]
type = "log"
[[channel]]
type = "exec"
command = ["sh", "-c", "sleep 0.1; echo $OOPS_SEQ >> {d}/exec.seqs"]
[[channel]]
type = "webhook"
url = "http://127.0.0.1:{hook}/hook"
secret = "crash"
max-backoff = "1s"
conditions = ["zone-updated"]
[[channel]]
type = "mqtt"
broker = "127.0.0.1:{mqtt}"
[[channel]]
type = "dbus"
bus = "{bus}"
conditions = ["zone-ready", "zone-updated"]
[[channel]]
type = "notify"
targets = ["127.0.0.1:{notify}"]
serve = "127.0.0.1:{serve}"
conditions = ["zone-updated"]
"#,
            d = dir.display(),
            lab = ports.lab,
            hook = ports.hook,
            mqtt = ports.mqtt,
            notify = ports.notify,
            serve = ports.serve,
        ),
    )
    .unwrap();
    path
}

/// Serves `rounds` new serials, alternating the zones, waiting for each `zone-updated`.
fn updates(lab: &mut LabProcess, daemon: &mut Daemon, serials: std::ops::Range<u32>) {
    for serial in serials {
        let zone = if serial % 2 == 0 {
            "a.test."
        } else {
            "b.test."
        };
        lab.say(&format!("zone {zone} {serial}\n"));
        daemon.wait_for(&format!("zone-updated {zone} {serial}"), WAIT, |s| {
            s.condition == ConditionId::ZoneUpdated
                && s.args.get("serial").and_then(|v| v.as_u64()) == Some(u64::from(serial))
        });
    }
}

fn exec_seqs(dir: &Path) -> BTreeSet<u64> {
    std::fs::read_to_string(dir.join("exec.seqs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn kill_9_during_delivery_loses_nothing_on_any_channel() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let address = bus.address.split(",guid=").next().unwrap().to_string();
    let mut monitor = Monitor::start(&bus.address, "org.dnsoops.Signals1", 6);
    let (webhook, mqtt_seen, notified) = (Seqs::default(), Seqs::default(), Seqs::default());
    let hook = free_port();
    start_webhook_receiver(hook, webhook.clone());
    let mqtt = Mqtt::start(dir.path(), mqtt_seen.clone());
    let notify = start_notify_receiver(notified.clone());
    let mut lab = LabProcess::start(dir.path());
    lab.say("zone a.test. 1\nzone b.test. 1\n");
    let ports = Ports {
        lab: lab.port,
        hook,
        mqtt: mqtt.port,
        notify,
        serve: free_port(),
    };
    let config = write_config(dir.path(), &ports, &address);

    let mut daemon = Daemon::start(&config);
    daemon.wait_for("all-zones-ready", WAIT, |s| {
        s.condition == ConditionId::AllZonesReady
    });
    updates(&mut lab, &mut daemon, 2..14);
    // The exec hook takes 100 ms a signal, the webhook 50 ms: both are behind now.
    let behind = exec_seqs(dir.path()).len();
    let recorded = daemon.seen.last().unwrap().seq as usize;
    assert!(
        behind < recorded,
        "exec delivered {behind} of {recorded} before the kill"
    );
    daemon.kill9();
    let mut seen_by_log: BTreeSet<u64> = daemon.seen.iter().map(|s| s.seq).collect();

    let mut daemon = Daemon::start(&config);
    updates(&mut lab, &mut daemon, 14..18);
    seen_by_log.extend(daemon.seen.iter().map(|s| s.seq));
    let last = daemon.seen.last().unwrap().seq;

    // Wait until the slowest receiver has the last signal, then stop and read the journal.
    let deadline = Instant::now() + WAIT;
    while !exec_seqs(dir.path()).contains(&last) {
        assert!(Instant::now() < deadline, "exec never got seq {last}");
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.drain(Duration::from_millis(500));
    seen_by_log.extend(daemon.seen.iter().map(|s| s.seq));
    monitor.drain(Duration::from_millis(500));
    daemon.terminate();

    let journal = dns_oops::journal::Journal::open(&dir.path().join("journal.sqlite")).unwrap();
    let signals = journal.signals_after(0, 100_000).unwrap();
    assert_eq!(signals.last().unwrap().seq, last);
    let matching = |conditions: &[ConditionId]| -> BTreeSet<u64> {
        signals
            .iter()
            .filter(|s| conditions.is_empty() || conditions.contains(&s.condition))
            .map(|s| s.seq)
            .collect()
    };
    let all = matching(&[]);
    assert_eq!(all, (1..=last).collect(), "the journal has every seq");
    assert_eq!(seen_by_log, all, "log");
    assert_eq!(exec_seqs(dir.path()), all, "exec");
    assert_eq!(
        *webhook.lock().unwrap(),
        matching(&[ConditionId::ZoneUpdated]),
        "webhook"
    );
    assert_eq!(*mqtt_seen.lock().unwrap(), all, "mqtt");
    let dbus: BTreeSet<u64> = monitor.seen.iter().map(|s| s.numbers[0]).collect();
    assert_eq!(
        dbus,
        matching(&[ConditionId::ZoneReady, ConditionId::ZoneUpdated]),
        "dbus"
    );
    // A NOTIFY covers every signal before it: the last one carries a serial at or past the
    // last zone-updated.
    let last_update = *matching(&[ConditionId::ZoneUpdated]).last().unwrap();
    let newest = notified.lock().unwrap().last().copied().unwrap_or(0);
    assert!(
        newest >= last_update,
        "notify: newest serial {newest}, last zone-updated {last_update}"
    );
}
