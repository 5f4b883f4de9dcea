//! Every channel side by side, measured by one harness on one machine: one dns-oops daemon
//! configured with all seven channels at once, one signal generator, one real receiver per
//! channel.
//!
//! | channel | receiver |
//! |---|---|
//! | `log` | this process reading the log file as it grows |
//! | `exec` | the hook itself: bash appending `$OOPS_SEQ $EPOCHREALTIME` to a file |
//! | `mqtt` | `mosquitto` (Debian `mosquitto`) and `mosquitto_sub` (Debian `mosquitto-clients`), QoS 1, persistent session |
//! | `webhook` | an HTTP receiver in this process |
//! | `dbus` | a private `dbus-daemon` and `dbus-monitor` (Debian `dbus-daemon`, `dbus-bin`) |
//! | `notify` | a NOTIFY target in this process that answers and then transfers the signals zone (AXFR) from the channel's `serve` listener, as a secondary does |
//! | `push` | a DNS Push (RFC 8765) subscriber in this process, over TLS, subscribed to the `zone-updated` name |
//!
//! The generator: a lab DNS server in this process serving `ZONES` zones; a signal is a new
//! serial of one zone followed by a NOTIFY (over TCP) to dns-oops' `notify-in` source, which
//! confirms it with a SOA query and journals `zone-updated`. Every channel carries the
//! signal's journal time (`time`, or `since=` in the signals zone); **latency is receipt
//! minus journal time**, on the same clock. The journal itself is read back through
//! `/api/v1/signals` and is the list of what was sent.
//!
//! Three phases:
//!
//! 1. **Latency**: `SIGNALS` signals one at a time; the next is made when every receiver has
//!    the previous one (or after 10 s), so nothing queues. p50 and p99 per channel.
//! 2. **Throughput**: a burst of `BURST` signals (rounds of one new serial for each of the
//!    `ZONES` zones, as fast as the source journals them). Signals/s = burst size / (receipt
//!    of the burst's last signal − journal time of its first). The generator's own rate is
//!    printed as the `journal` row: no channel can beat it.
//! 3. **Receiver restart**: every receiver is stopped, `RESTART` signals are made (two new
//!    serials for each of `RESTART`/2 zones, so a channel that carries state instead of events
//!    shows what it folds), then `DOWN_SECS` later every receiver is started again. Counted:
//!    how many of those signals each receiver has once nothing new arrives for 10 s (at most
//!    `RESTART_WAIT` seconds), and how long after the restart the last one came. For `dbus`,
//!    the signals a late listener gets back from `GetSignalsAfter` are counted too.
//!
//! ```sh
//! cargo bench --bench channel_compare
//! SIGNALS=200 BURST=500 ZONES=100 RESTART=40 cargo bench --bench channel_compare   # a quick look
//! ```
//!
//! Prints a Markdown table with the command and the machine, and appends it to
//! `benches/RESULTS.md`.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::bus::Bus;
use common::{free_port, require};
use dns_oops::condition::ConditionId;
use dns_oops::lab::LabServer;
use dns_oops::signal::Signal;
use hickory_proto::op::{Message, MessageType, Metadata, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// The channels, in the order of the table.
const CHANNELS: [&str; 7] = ["log", "exec", "mqtt", "webhook", "dbus", "notify", "push"];
/// The node's signals zone.
const APEX: &str = "bench.oops.internal.";
/// The name holding the lab server's `zone-updated` records in the signals zone.
const UPDATED_NAME: &str = "zone-updated.lab.bench.oops.internal.";
/// The longest wait for one signal in the latency phase.
const SIGNAL_WAIT: Duration = Duration::from_secs(10);
/// How long the restart phase waits with no new arrival before it counts.
const QUIET: Duration = Duration::from_secs(10);
const DBUS_NAME: &str = "org.dnsoops.Signals1";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn zone(i: usize) -> String {
    format!("z{i}.bench.")
}

// ---------------------------------------------------------------------------------------
// What the receivers saw

/// How a receiver names a signal: by `seq`, or (signals zone) by subject and serial.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Seq(u64),
    Zone(String, u64),
}

#[derive(Default)]
struct Book {
    /// The first receipt of each signal, µs since the epoch.
    first: HashMap<Key, i64>,
    duplicates: u64,
}

/// Every receiver's receipts.
#[derive(Clone, Default)]
struct Tally(Arc<Mutex<BTreeMap<&'static str, Book>>>);

impl Tally {
    fn record(&self, channel: &'static str, key: Key, at: i64) {
        let mut books = self.0.lock().unwrap();
        let book = books.entry(channel).or_default();
        let seq = matches!(key, Key::Seq(_));
        match book.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(at);
            }
            // A zone transfer or a new subscription repeats the state: not a duplicate.
            std::collections::hash_map::Entry::Occupied(_) if seq => book.duplicates += 1,
            std::collections::hash_map::Entry::Occupied(_) => {}
        }
    }

    fn count(&self, channel: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .get(channel)
            .map_or(0, |b| b.first.len())
    }

    fn counts(&self) -> Vec<usize> {
        CHANNELS.iter().map(|c| self.count(c)).collect()
    }

    /// When `channel` first had the journal signal `signal`, if it did.
    fn receipt(&self, channel: &str, signal: &Journalled) -> Option<i64> {
        let books = self.0.lock().unwrap();
        let book = books.get(channel)?;
        book.first
            .get(&Key::Seq(signal.seq))
            .or_else(|| {
                book.first
                    .get(&Key::Zone(signal.subject.clone(), signal.serial))
            })
            .copied()
    }

    fn duplicates(&self, channel: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(channel)
            .map_or(0, |b| b.duplicates)
    }
}

// ---------------------------------------------------------------------------------------
// The generator: the lab server, NOTIFY to notify-in, and the journal through the API

/// A `zone-updated` signal as the journal has it.
#[derive(Debug, Clone)]
struct Journalled {
    seq: u64,
    time: i64,
    subject: String,
    serial: u64,
}

struct Generator {
    lab: LabServer,
    serials: Vec<u32>,
    notify_in: u16,
    http: u16,
    /// The journal's zone-updated signals read so far, and the last seq read.
    journal: Vec<Journalled>,
    read_through: u64,
}

impl Generator {
    /// Gives each zone in `zones` a new serial, makes sure the lab serves it, and sends the
    /// NOTIFYs; returns when dns-oops has answered them all.
    fn bump(&mut self, zones: &[usize]) {
        for &i in zones {
            self.serials[i] += 1;
            self.lab.set_zone(&zone(i), self.serials[i]).unwrap();
        }
        let mut stream = TcpStream::connect(("127.0.0.1", self.notify_in)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut out = Vec::with_capacity(zones.len() * 40);
        for (n, &i) in zones.iter().enumerate() {
            let message = notify_message(n as u16, &zone(i));
            out.extend_from_slice(&(message.len() as u16).to_be_bytes());
            out.extend_from_slice(&message);
        }
        stream.write_all(&out).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        for _ in zones {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).expect("notify-in answers");
            let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut answer).unwrap();
        }
    }

    /// Reads the journal's new signals; the zone-updated ones are kept.
    fn read_journal(&mut self) -> usize {
        let mut added = 0;
        for _ in 0..1000 {
            let page = api_signals(self.http, self.read_through);
            let Some(last) = page.last() else { break };
            self.read_through = last.seq;
            for signal in &page {
                if signal.condition != ConditionId::ZoneUpdated {
                    continue;
                }
                self.journal.push(Journalled {
                    seq: signal.seq,
                    time: signal.time.timestamp_micros(),
                    subject: signal.subject.clone().unwrap_or_default(),
                    serial: signal
                        .args
                        .get("serial")
                        .and_then(|v| v.as_u64())
                        .unwrap_or(0),
                });
                added += 1;
            }
        }
        added
    }

    /// Waits until the journal holds `count` zone-updated signals in all.
    fn wait_journal(&mut self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.journal.len() < count {
            if self.read_journal() == 0 {
                assert!(
                    Instant::now() < deadline,
                    "the journal has {} zone-updated signals, not {count}",
                    self.journal.len()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// A NOTIFY for `zone` SOA, as a primary sends it.
fn notify_message(id: u16, zone: &str) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    let mut question = Query::query(Name::from_ascii(zone).unwrap(), RecordType::SOA);
    question.set_query_class(DNSClass::IN);
    message.add_query(question);
    message.to_vec().unwrap()
}

/// `GET /api/v1/signals?after=…` (HTTP/1.0: one plain body).
fn api_signals(port: u16, after: u64) -> Vec<Signal> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /api/v1/signals?after={after}&limit=10000 HTTP/1.0\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    let mut text = Vec::new();
    stream.read_to_end(&mut text).unwrap();
    let start = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(text.len(), |p| p + 4);
    serde_json::from_slice(&text[start..]).unwrap_or_else(|e| {
        panic!(
            "/api/v1/signals: {e}: {}",
            String::from_utf8_lossy(&text[..text.len().min(500)])
        )
    })
}

// ---------------------------------------------------------------------------------------
// Receivers

/// Follows a file as it grows, handing each complete line to `line`, until `stop`; does
/// nothing while `paused`.
fn tail(
    path: PathBuf,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    mut line: impl FnMut(&str) + Send + 'static,
) {
    std::thread::spawn(move || {
        let mut file = loop {
            if let Ok(file) = std::fs::File::open(&path) {
                break file;
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut pending = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        while !stop.load(Ordering::Relaxed) {
            if paused.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let n = file.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            pending.extend_from_slice(&chunk[..n]);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&pending[..end]).into_owned();
                pending.drain(..=end);
                line(&text);
            }
        }
    });
}

/// `mosquitto_sub` with a persistent session: stopping it leaves the session, and its
/// queued messages, at the broker.
struct MqttSubscriber {
    child: Child,
}

impl MqttSubscriber {
    fn start(port: u16, tally: &Tally) -> MqttSubscriber {
        let mut child = Command::new(require("mosquitto_sub", "mosquitto-clients"))
            .args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "dns-oops/#", "-q", "1", "-c", "-i", "bench-sub"])
            .args(["-x", "3600", "-F", "%p"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub");
        let stdout = child.stdout.take().unwrap();
        let tally = tally.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let at = now_micros();
                // Retained state and the status topic are not signals of this run.
                if let Ok(signal) = serde_json::from_str::<Signal>(&line)
                    && signal.condition == ConditionId::ZoneUpdated
                {
                    tally.record("mqtt", Key::Seq(signal.seq), at);
                }
            }
        });
        MqttSubscriber { child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dbus-monitor` on the channel's interface; a signal's receipt is the monitor's own
/// `time=` for it.
struct DbusListener {
    child: Child,
}

impl DbusListener {
    fn start(address: &str, tally: &Tally) -> DbusListener {
        let mut child = Command::new(require("dbus-monitor", "dbus-bin"))
            .args(["--address", address])
            .arg(format!("type='signal',interface='{DBUS_NAME}'"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-monitor");
        let stdout = child.stdout.take().unwrap();
        let tally = tally.clone();
        let wanted = format!("interface={DBUS_NAME}; member=Event");
        std::thread::spawn(move || {
            // signal time=1764469200.123456 sender=… interface=…; member=Event
            //    uint64 42
            let mut open: Option<i64> = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !line.starts_with(' ') {
                    open = (line.starts_with("signal ") && line.contains(&wanted)).then(|| {
                        line.strip_prefix("signal time=")
                            .and_then(|rest| rest.split_whitespace().next())
                            .and_then(|t| t.parse::<f64>().ok())
                            .map_or_else(now_micros, |t| (t * 1e6) as i64)
                    });
                    continue;
                }
                if let (Some(at), Some(seq)) = (open, line.strip_prefix("   uint64 ")) {
                    if let Ok(seq) = seq.trim().parse() {
                        tally.record("dbus", Key::Seq(seq), at);
                    }
                    open = None;
                }
            }
        });
        DbusListener { child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The signals a listener that starts late gets back from `GetSignalsAfter(after)`.
fn dbus_replay(address: &str, after: u64) -> Vec<u64> {
    let output = Command::new(require("dbus-send", "dbus-bin"))
        .arg(format!("--bus={address}"))
        .args(["--print-reply", "--reply-timeout=5000"])
        .arg(format!("--dest={DBUS_NAME}"))
        .arg("/org/dnsoops/Signals1")
        .arg(format!("{DBUS_NAME}.GetSignalsAfter"))
        .arg(format!("uint64:{after}"))
        .arg("uint32:1000")
        .output()
        .expect("run dbus-send");
    if !output.status.success() {
        eprintln!(
            "dbus-send GetSignalsAfter: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // The first uint64 is `through`; each struct's uint64 is a seq.
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("uint64 ")?.parse().ok())
        .skip(1)
        .collect()
}

/// The webhook receiver: an HTTP server on a thread and runtime of its own, so that
/// stopping it closes every connection.
struct WebhookReceiver {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebhookReceiver {
    fn start(port: u16, tally: &Tally) -> WebhookReceiver {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let tally = tally.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind the webhook receiver");
                let app = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(
                        move |headers: axum::http::HeaderMap, _body: bytes::Bytes| {
                            let tally = tally.clone();
                            async move {
                                let at = now_micros();
                                let seq = headers
                                    .get("x-oops-seq")
                                    .and_then(|v| v.to_str().ok())
                                    .and_then(|v| v.parse().ok());
                                if let Some(seq) = seq {
                                    tally.record("webhook", Key::Seq(seq), at);
                                }
                                axum::http::StatusCode::OK
                            }
                        },
                    ),
                );
                ready_tx.send(()).unwrap();
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task.
            drop(runtime);
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("the webhook receiver listens");
        WebhookReceiver {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `zone-updated` records of a TXT RRset: (subject, serial).
fn updated_keys(txt: &hickory_proto::rr::rdata::TXT) -> Option<(String, u64)> {
    let field = |key: &str| {
        txt.txt_data.iter().find_map(|s| {
            std::str::from_utf8(s)
                .ok()?
                .strip_prefix(key)
                .map(String::from)
        })
    };
    Some((field("subject=")?, field("serial=")?.parse().ok()?))
}

/// The NOTIFY target: answers each NOTIFY, then transfers the signals zone from `serve`
/// (one transfer at a time; NOTIFYs during one make one more). It also transfers once when
/// it starts, as a secondary does.
fn notify_target(
    runtime: &tokio::runtime::Runtime,
    port: u16,
    serve: u16,
    tally: &Tally,
) -> tokio::task::JoinHandle<()> {
    let tally = tally.clone();
    runtime.spawn(async move {
        let socket = tokio::net::UdpSocket::bind(("127.0.0.1", port))
            .await
            .expect("bind the NOTIFY target");
        let wake = Arc::new(tokio::sync::Notify::new());
        wake.notify_one();
        let transfers = {
            let wake = wake.clone();
            tokio::spawn(async move {
                loop {
                    wake.notified().await;
                    if let Err(e) = transfer_signals_zone(serve, &tally).await {
                        eprintln!("notify target: transfer: {e}");
                    }
                }
            })
        };
        // The transfer task ends with this one.
        struct AbortOnDrop(tokio::task::JoinHandle<()>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _transfers = AbortOnDrop(transfers);
        let mut buffer = vec![0u8; 65535];
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buffer).await else {
                continue;
            };
            let Ok(request) = Message::from_vec(&buffer[..len]) else {
                continue;
            };
            if request.metadata.op_code != OpCode::Notify {
                continue;
            }
            let mut answer =
                Message::new(request.metadata.id, MessageType::Response, OpCode::Notify);
            answer.metadata = Metadata::response_from_request(&request.metadata);
            answer.metadata.authoritative = true;
            answer.add_queries(request.queries.clone());
            if let Ok(bytes) = answer.to_vec() {
                let _ = socket.send_to(&bytes, from).await;
            }
            wake.notify_one();
        }
    })
}

/// One AXFR of the signals zone; every `zone-updated` record in it is received at the end
/// of the transfer.
async fn transfer_signals_zone(serve: u16, tally: &Tally) -> std::io::Result<()> {
    let mut query = Message::new(0x5151, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(
        Name::from_ascii(APEX).unwrap(),
        RecordType::AXFR,
    ));
    let query = query.to_vec().map_err(std::io::Error::other)?;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", serve)).await?;
    stream.set_nodelay(true)?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed).await?;
    let updated = Name::from_ascii(UPDATED_NAME).unwrap();
    let mut keys = Vec::new();
    let mut soas = 0;
    // Bounded: a zone of a million records is far beyond this run.
    for _ in 0..100_000 {
        let len = stream.read_u16().await?;
        let mut message = vec![0u8; usize::from(len)];
        stream.read_exact(&mut message).await?;
        let message = Message::from_vec(&message).map_err(std::io::Error::other)?;
        for record in &message.answers {
            match &record.data {
                RData::SOA(_) => soas += 1,
                RData::TXT(txt) if record.name == updated => {
                    keys.extend(updated_keys(txt));
                }
                _ => {}
            }
        }
        if soas >= 2 {
            let at = now_micros();
            for (subject, serial) in keys {
                tally.record("notify", Key::Zone(subject, serial), at);
            }
            return Ok(());
        }
    }
    Err(std::io::Error::other("the transfer did not end"))
}

/// The DNS Push subscriber: one TLS session subscribed to the `zone-updated` name,
/// reconnecting (after 100 ms) if the session ends.
fn push_subscriber(
    runtime: &tokio::runtime::Runtime,
    port: u16,
    connector: TlsConnector,
    tally: &Tally,
) -> tokio::task::JoinHandle<()> {
    let tally = tally.clone();
    runtime.spawn(async move {
        loop {
            if let Err(e) = push_session(port, &connector, &tally).await {
                eprintln!("push subscriber: {e}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn push_session(port: u16, connector: &TlsConnector, tally: &Tally) -> std::io::Result<()> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let mut stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let subscribe = dso::DsoMessage::request(
        1,
        dso::Tlv::Subscribe(dso::Subscribe {
            name: Name::from_ascii(UPDATED_NAME).unwrap(),
            rtype: RecordType::TXT,
            class: DNSClass::IN,
        }),
    )
    .encode()
    .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let mut framed = (subscribe.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&subscribe);
    stream.write_all(&framed).await?;
    loop {
        let len = stream.read_u16().await?;
        let mut message = vec![0u8; usize::from(len)];
        stream.read_exact(&mut message).await?;
        let at = now_micros();
        let message = dso::decode(&message).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        for tlv in message.tlvs() {
            let dso::Tlv::Push(changes) = tlv else {
                continue;
            };
            for change in changes {
                if let dso::PushChange::Add {
                    rdata: RData::TXT(txt),
                    ..
                } = change
                    && let Some((subject, serial)) = updated_keys(txt)
                {
                    tally.record("push", Key::Zone(subject, serial), at);
                }
            }
        }
    }
}

fn start_mosquitto(dir: &Path, port: u16) -> Child {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n\
             log_type error\nlistener {port} 127.0.0.1\n"
        ),
    )
    .unwrap();
    let child = Command::new(require("mosquitto", "mosquitto"))
        .arg("-c")
        .arg(&conf)
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

struct Ports {
    http: u16,
    notify_in: u16,
    mqtt: u16,
    webhook: u16,
    target: u16,
    serve: u16,
    push: u16,
}

fn write_config(dir: &Path, lab: SocketAddr, zones: usize, bus: &str, p: &Ports) -> PathBuf {
    let zone_list = (0..zones)
        .map(|i| format!("\"{}\"", zone(i)))
        .collect::<Vec<_>>()
        .join(", ");
    let d = dir.display();
    let text = format!(
        r#"node = "bench"
[journal]
path = "{d}/journal.sqlite"
[http]
listen = "127.0.0.1:{http}"
[[server]]
name = "lab"
address = "{lab}"
zones = [{zone_list}]
[[source]]
type = "notify-in"
server = "lab"
listen = "127.0.0.1:{notify_in}"
min-interval = "0s"
[[channel]]
type = "log"
path = "{d}/signals.log"
conditions = ["zone-updated"]
[[channel]]
type = "exec"
name = "hook"
command = ["/bin/bash", "-c", "echo \"$OOPS_SEQ $EPOCHREALTIME\" >> {d}/exec/hook.log"]
conditions = ["zone-updated"]
[[channel]]
type = "mqtt"
broker = "127.0.0.1:{mqtt}"
conditions = ["zone-updated"]
[[channel]]
type = "webhook"
url = "http://127.0.0.1:{webhook}/hook"
secret = "a bench secret"
conditions = ["zone-updated"]
[[channel]]
type = "dbus"
bus = "{bus}"
conditions = ["zone-updated"]
[[channel]]
type = "notify"
targets = ["127.0.0.1:{target}"]
serve = "127.0.0.1:{serve}"
conditions = ["zone-updated"]
[[channel]]
type = "push"
listen = "127.0.0.1:{push}"
cert = "{d}/server.pem"
key = "{d}/server.key"
"#,
        http = p.http,
        notify_in = p.notify_in,
        mqtt = p.mqtt,
        webhook = p.webhook,
        target = p.target,
        serve = p.serve,
        push = p.push,
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------------------
// Results

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(value: f64) -> String {
    if value.is_nan() {
        "—".into()
    } else if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

#[derive(Default)]
struct Row {
    latency_delivered: usize,
    p50: f64,
    p99: f64,
    burst_delivered: usize,
    rate: Option<f64>,
    restart_delivered: usize,
    restart_after: Option<f64>,
    note: String,
    duplicates: u64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let signals = env_or("SIGNALS", 1000);
    let burst = env_or("BURST", 1000);
    let zones = env_or("ZONES", 100).max(2);
    let restart = env_or("RESTART", 100).clamp(2, zones * 2) / 2 * 2;
    let down = Duration::from_secs(env_or("DOWN_SECS", 3) as u64);
    let restart_wait = Duration::from_secs(env_or("RESTART_WAIT", 120) as u64);
    let burst_rounds = burst.div_ceil(zones);

    let load_before = load_average();
    dns_oops::push::tls::install_provider();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("exec")).unwrap();
    let ca = common::pki::Pki::new(dir).ca();
    let connector = TlsConnector::from(
        dns_oops::push::tls::client_config(&dns_oops::push::tls::ClientTlsOptions {
            ca: Some(ca),
            ..Default::default()
        })
        .unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tally = Tally::default();

    // The watched server.
    let lab = runtime
        .block_on(LabServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
        .unwrap();
    for i in 0..zones {
        lab.set_zone(&zone(i), 1).unwrap();
    }
    let ports = Ports {
        http: free_port(),
        notify_in: free_port(),
        mqtt: free_port(),
        webhook: free_port(),
        target: free_port(),
        serve: free_port(),
        push: free_port(),
    };

    // The peers and receivers.
    let mut bus = Bus::start(dir);
    let bus_address = bus.address.split(",guid=").next().unwrap().to_string();
    let mut broker = start_mosquitto(dir, ports.mqtt);
    let mut mqtt = MqttSubscriber::start(ports.mqtt, &tally);
    let mut dbus = DbusListener::start(&bus.address, &tally);
    let mut webhook = WebhookReceiver::start(ports.webhook, &tally);
    let stop_tails = Arc::new(AtomicBool::new(false));
    let log_paused = Arc::new(AtomicBool::new(false));
    {
        let log_tally = tally.clone();
        tail(
            dir.join("signals.log"),
            stop_tails.clone(),
            log_paused.clone(),
            move |line| {
                let at = now_micros();
                if let Ok(signal) = serde_json::from_str::<Signal>(line) {
                    log_tally.record("log", Key::Seq(signal.seq), at);
                }
            },
        );
        let exec_tally = tally.clone();
        tail(
            dir.join("exec/hook.log"),
            stop_tails.clone(),
            Arc::new(AtomicBool::new(false)),
            move |line| {
                let mut fields = line.split_whitespace();
                if let (Some(Ok(seq)), Some(Ok(at))) = (
                    fields.next().map(str::parse::<u64>),
                    fields.next().map(str::parse::<f64>),
                ) {
                    exec_tally.record("exec", Key::Seq(seq), (at * 1e6) as i64);
                }
            },
        );
    }

    let config = write_config(dir, lab.local_addr(), zones, &bus_address, &ports);
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["run", "--config"])
        .arg(&config)
        .env("DNS_OOPS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dns-oops.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", ports.http)).is_err()
        || TcpStream::connect(("127.0.0.1", ports.push)).is_err()
    {
        assert!(
            Instant::now() < deadline,
            "dns-oops did not start: {}",
            std::fs::read_to_string(dir.join("dns-oops.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut target = notify_target(&runtime, ports.target, ports.serve, &tally);
    let mut push = push_subscriber(&runtime, ports.push, connector.clone(), &tally);

    let mut generator = Generator {
        lab,
        serials: vec![1; zones],
        notify_in: ports.notify_in,
        http: ports.http,
        journal: Vec::new(),
        read_through: 0,
    };
    // Every zone becomes ready (zone-ready, which no receiver counts), then one update
    // that every receiver must get before anything is measured.
    let all: Vec<usize> = (0..zones).collect();
    generator.serials.iter_mut().for_each(|s| *s = 0);
    generator.bump(&all);
    std::thread::sleep(Duration::from_millis(500));
    generator.bump(&[0]);
    generator.wait_journal(1, Duration::from_secs(30));
    let warm = wait_counts(&tally, &[1; 7], Duration::from_secs(30));
    if warm.iter().any(|&c| c < 1) {
        eprintln!("warm-up: some receivers got nothing: {warm:?}");
    }
    eprintln!("warm-up done; {signals} signals one at a time");

    // 1. Latency
    let latency_from = generator.journal.len();
    let started = Instant::now();
    for i in 0..signals {
        let before = tally.counts();
        generator.bump(&[(i + 1) % zones]);
        let want: Vec<usize> = before.iter().map(|c| c + 1).collect();
        wait_counts(&tally, &want, SIGNAL_WAIT);
        if (i + 1) % 100 == 0 {
            eprintln!(
                "{} signals in {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    generator.wait_journal(latency_from + signals, Duration::from_secs(30));
    let latency_set = generator.journal[latency_from..].to_vec();

    // 2. Throughput
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("burst of {burst} signals");
    let burst_from = generator.journal.len();
    let mut made = 0;
    for _ in 0..burst_rounds {
        let round: Vec<usize> = (0..zones.min(burst - made)).collect();
        made += round.len();
        generator.bump(&round);
        generator.wait_journal(burst_from + made, Duration::from_secs(60));
    }
    let burst_set = generator.journal[burst_from..].to_vec();
    let last = burst_set.last().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    while CHANNELS.iter().any(|c| tally.receipt(c, &last).is_none()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));

    // 3. Receiver restart
    eprintln!("receivers down; {restart} signals");
    let before_seq = generator.journal.last().unwrap().seq;
    log_paused.store(true, Ordering::Relaxed);
    std::fs::rename(dir.join("exec"), dir.join("exec-down")).unwrap();
    mqtt.stop();
    webhook.stop();
    dbus.stop();
    target.abort();
    push.abort();
    runtime.block_on(async {
        let _ = (&mut target).await;
        let _ = (&mut push).await;
    });
    let restart_from = generator.journal.len();
    let restart_zones: Vec<usize> = (0..restart / 2).collect();
    for n in 1..=2 {
        generator.bump(&restart_zones);
        generator.wait_journal(
            restart_from + n * restart_zones.len(),
            Duration::from_secs(60),
        );
    }
    let restart_set = generator.journal[restart_from..].to_vec();
    std::thread::sleep(down);
    let restarted = now_micros();
    let restarted_at = Instant::now();
    log_paused.store(false, Ordering::Relaxed);
    std::fs::rename(dir.join("exec-down"), dir.join("exec")).unwrap();
    mqtt = MqttSubscriber::start(ports.mqtt, &tally);
    webhook = WebhookReceiver::start(ports.webhook, &tally);
    dbus = DbusListener::start(&bus.address, &tally);
    target = notify_target(&runtime, ports.target, ports.serve, &tally);
    push = push_subscriber(&runtime, ports.push, connector.clone(), &tally);
    let missed = |c: &str| {
        restart_set
            .iter()
            .filter(|s| tally.receipt(c, s).is_some())
            .count()
    };
    let mut last_change = Instant::now();
    let mut seen: Vec<usize> = CHANNELS.iter().map(|c| missed(c)).collect();
    while restarted_at.elapsed() < restart_wait
        && last_change.elapsed() < QUIET
        && seen.iter().any(|&n| n < restart_set.len())
    {
        std::thread::sleep(Duration::from_millis(50));
        let now: Vec<usize> = CHANNELS.iter().map(|c| missed(c)).collect();
        if now != seen {
            seen = now;
            last_change = Instant::now();
        }
    }
    let replayed = dbus_replay(&bus.address, before_seq);
    let replayed = restart_set
        .iter()
        .filter(|s| replayed.contains(&s.seq))
        .count();

    // Stop everything.
    stop_tails.store(true, Ordering::Relaxed);
    target.abort();
    push.abort();
    mqtt.stop();
    webhook.stop();
    dbus.stop();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = broker.kill();
    let _ = broker.wait();
    bus.stop();
    generator.lab.shutdown();

    // Results
    let journal_rate = rate(&burst_set, burst_set.last().map(|s| s.time));
    let mut rows = Vec::new();
    for channel in CHANNELS {
        let mut row = Row::default();
        let mut latencies: Vec<f64> = latency_set
            .iter()
            .filter_map(|s| Some((tally.receipt(channel, s)? - s.time) as f64 / 1000.0))
            .collect();
        latencies.sort_by(f64::total_cmp);
        row.latency_delivered = latencies.len();
        row.p50 = percentile(&latencies, 50.0);
        row.p99 = percentile(&latencies, 99.0);
        row.burst_delivered = burst_set
            .iter()
            .filter(|s| tally.receipt(channel, s).is_some())
            .count();
        row.rate = rate(&burst_set, tally.receipt(channel, &last));
        let got: Vec<i64> = restart_set
            .iter()
            .filter_map(|s| tally.receipt(channel, s))
            .collect();
        row.restart_delivered = got.len();
        row.restart_after = got
            .iter()
            .max()
            .map(|&t| (t - restarted).max(0) as f64 / 1e6);
        row.duplicates = tally.duplicates(channel);
        if channel == "dbus" {
            row.note = format!("; {replayed} via `GetSignalsAfter`");
        }
        rows.push(row);
    }

    let date = chrono::Utc::now().format("%Y-%m-%d");
    let mut out = format!(
        "\n## channel_compare — every channel, one daemon, one generator\n\n\
         `SIGNALS={signals} BURST={burst} ZONES={zones} RESTART={restart} DOWN_SECS={} cargo bench --bench channel_compare` \
         on {}, {}, {}, {}, {date}; load average {load_before} before the run, {} after.\n\n\
         Latency: journal time of the signal → receipt, {signals} signals one at a time. \
         Throughput: burst of {} signals, size / (receipt of the last − journal time of the first); \
         the generator journalled them at {} signals/s. \
         Restart: receiver stopped, {} signals ({} zones × 2 serials), started {} s later.\n\n\
         | channel | latency p50 ms | p99 ms | delivered | burst signals/s | burst delivered | after restart: received | last one after |\n\
         |---|---|---|---|---|---|---|---|\n",
        down.as_secs(),
        support::machine(),
        support::version("mosquitto", &["-h"]),
        support::version("dbus-daemon", &["--version"]),
        support::version("bash", &["--version"]),
        load_average(),
        burst_set.len(),
        journal_rate.map_or("—".into(), |r| format!("{r:.0}")),
        restart_set.len(),
        restart / 2,
        down.as_secs(),
    );
    for (channel, row) in CHANNELS.iter().zip(&rows) {
        out.push_str(&format!(
            "| {channel} | {} | {} | {}/{} | {} | {}/{} | {}/{}{} | {} |\n",
            ms(row.p50),
            ms(row.p99),
            row.latency_delivered,
            latency_set.len(),
            row.rate.map_or("—".into(), |r| format!("{r:.0}")),
            row.burst_delivered,
            burst_set.len(),
            row.restart_delivered,
            restart_set.len(),
            row.note,
            row.restart_after
                .map_or("—".into(), |s| format!("{s:.2} s")),
        ));
    }
    let duplicates: Vec<String> = CHANNELS
        .iter()
        .zip(&rows)
        .filter(|(_, r)| r.duplicates > 0)
        .map(|(c, r)| format!("{c} {}", r.duplicates))
        .collect();
    out.push_str(&format!(
        "\nDuplicates seen by the receivers: {}.\n",
        if duplicates.is_empty() {
            "none".to_string()
        } else {
            duplicates.join(", ")
        }
    ));
    print!("{out}");
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .unwrap()
        .write_all(out.as_bytes())
        .unwrap();
}

/// The 1-minute load average, a hint of how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

/// Signals/s: the set's size over (`end` − journal time of its first).
fn rate(set: &[Journalled], end: Option<i64>) -> Option<f64> {
    let first = set.first()?.time;
    let seconds = (end? - first) as f64 / 1e6;
    (seconds > 0.0).then(|| set.len() as f64 / seconds)
}

/// Waits until every channel's count is at least `want` (in [`CHANNELS`] order), or
/// `timeout`; the counts then.
fn wait_counts(tally: &Tally, want: &[usize], timeout: Duration) -> Vec<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let counts = tally.counts();
        if counts.iter().zip(want).all(|(c, w)| c >= w) || Instant::now() >= deadline {
            return counts;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}
