//! Bad peers for every network channel at once — an MQTT broker that refuses the password, a
//! webhook receiver answering 500, one that never answers, one nobody listens on, and a
//! NOTIFY target that never answers — with 20,000 signals waiting in the journal: each
//! channel shows the problem in `/api/v1/conditions` and `/metrics` (state, reason, how far
//! behind), logs it once per change of state rather than once per try, retries with
//! backoff (a bounded number of tries), holds no more memory than its bounded batch, and
//! catches up when its peer is fixed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{free_port, http_get, require, rss_kib};
use dns_oops::condition::ConditionId;
use dns_oops::http::api::StatusReport;
use dns_oops::journal::Journal;
use dns_oops::signal::{Args, Signal, SignalState};

const WAIT: Duration = Duration::from_secs(30);
const SIGNALS: u64 = 20_000;
const WRONG_PASSWORD: &str = "not-the-pw-9876";

/// What the HTTP receiver does with a request.
const ANSWER_500: u8 = 0;
const HANG: u8 = 1;
const ANSWER_200: u8 = 2;

/// A webhook receiver on a thread: counts requests, answers as `mode` says.
struct Receiver {
    port: u16,
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicUsize>,
    delivered: Arc<AtomicUsize>,
}

impl Receiver {
    fn start(mode: u8) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Receiver {
            port,
            mode: Arc::new(AtomicU8::new(mode)),
            requests: Arc::default(),
            delivered: Arc::default(),
        };
        let (mode, requests, delivered) = (
            receiver.mode.clone(),
            receiver.requests.clone(),
            receiver.delivered.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (mode, requests, delivered) =
                    (mode.clone(), requests.clone(), delivered.clone());
                std::thread::spawn(move || serve(stream, &mode, &requests, &delivered));
            }
        });
        receiver
    }
}

/// Answers the requests of one connection (keep-alive) until it closes.
fn serve(stream: TcpStream, mode: &AtomicU8, requests: &AtomicUsize, delivered: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(value) = header.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let status = match mode.load(Ordering::SeqCst) {
            ANSWER_500 => "500 Internal Server Error",
            HANG => {
                // Never answer; the channel's timeout ends the request.
                std::thread::sleep(Duration::from_secs(3600));
                return;
            }
            _ => {
                delivered.fetch_add(1, Ordering::SeqCst);
                "200 OK"
            }
        };
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// mosquitto on loopback that wants a user name and password.
fn broker(dir: &Path) -> (Running, u16) {
    let passwd = dir.join("passwd");
    let status = Command::new(require("mosquitto_passwd", "mosquitto"))
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["dns-oops", "the-right-one"])
        .status()
        .unwrap();
    assert!(status.success());
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nper_listener_settings false\nallow_anonymous false\npassword_file {}\n\
             persistence false\nlog_dest stderr\nlistener {port} 127.0.0.1\n",
            passwd.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("mosquitto.log")).unwrap();
    let child = Command::new(require("mosquitto", "mosquitto"))
        .arg("-c")
        .arg(&conf)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let running = Running {
        child,
        log: dir.join("mosquitto.log"),
    };
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen: {}",
            std::fs::read_to_string(&running.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (running, port)
}

/// A child process killed when dropped, and where its log goes.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn report(http: u16) -> StatusReport {
    serde_json::from_str(&http_get(http, "/api/v1/conditions")).unwrap()
}

/// Waits until `/api/v1/conditions` satisfies `done`; returns the report.
fn wait_report(http: u16, what: &str, done: impl Fn(&StatusReport) -> bool) -> StatusReport {
    let deadline = Instant::now() + WAIT;
    loop {
        let report = report(http);
        if done(&report) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "{what}; the report:\n{}",
            report.to_json()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn channel<'a>(report: &'a StatusReport, name: &str) -> &'a dns_oops::health::ChannelHealth {
    report
        .channels
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no channel {name} in {}", report.to_json()))
}

/// The channel's state; `absent` while the daemon has not started it yet.
fn state(report: &StatusReport, name: &str) -> &'static str {
    report
        .channels
        .iter()
        .find(|c| c.name == name)
        .map_or("absent", |c| c.state.as_str())
}

#[test]
fn bad_peers_show_in_health_and_logs_with_retries_and_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // Killed when dropped, also when an assertion fails.
    let (_mosquitto, mqtt_port) = broker(dir.path());
    let failing = Receiver::start(ANSWER_500);
    let hanging = Receiver::start(HANG);
    let nobody = free_port();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();

    // The journal already holds 20,000 signals none of the channels has delivered.
    let journal_path = dir.path().join("journal.sqlite");
    {
        let journal = Journal::open(&journal_path).unwrap();
        journal.set_node("it").unwrap();
        let signals: Vec<Signal> = (1..=SIGNALS)
            .map(|seq| Signal {
                seq,
                time: chrono::Utc::now(),
                node: "it".into(),
                server: "lab".into(),
                condition: ConditionId::ZoneUpdated,
                subject: Some(format!("z{}.test.", seq % 10)),
                state: SignalState::Event,
                args: Args::from([("serial".to_string(), seq.into())]),
                source: "probe".into(),
            })
            .collect();
        for chunk in signals.chunks(2000) {
            journal.record(chunk, &[]).unwrap();
        }
        for name in ["broker", "hook-500", "hook-hang", "hook-down", "notify"] {
            journal.set_cursor(name, 0).unwrap();
        }
    }

    let http = free_port();
    let config = dir.path().join("dns-oops.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"it\"\n[journal]\npath = \"{journal}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [[server]]\nname = \"lab\"\naddress = \"127.0.0.1:{nobody}\"\nzones = [\"z0.test.\"]\n\
             [[channel]]\ntype = \"mqtt\"\nname = \"broker\"\nbroker = \"127.0.0.1:{mqtt_port}\"\n\
             username = \"dns-oops\"\npassword = \"{WRONG_PASSWORD}\"\n\
             [[channel]]\ntype = \"webhook\"\nname = \"hook-500\"\nurl = \"http://127.0.0.1:{p500}/in\"\n\
             secret = \"s\"\ntimeout = \"500ms\"\nmax-backoff = \"1s\"\n\
             [[channel]]\ntype = \"webhook\"\nname = \"hook-hang\"\nurl = \"http://127.0.0.1:{phang}/in\"\n\
             secret = \"s\"\ntimeout = \"500ms\"\nmax-backoff = \"1s\"\n\
             [[channel]]\ntype = \"webhook\"\nname = \"hook-down\"\nurl = \"http://127.0.0.1:{nobody}/in\"\n\
             secret = \"s\"\ntimeout = \"500ms\"\nmax-backoff = \"1s\"\n\
             [[channel]]\ntype = \"notify\"\nname = \"notify\"\nzone = \"it.oops.internal.\"\n\
             targets = [\"127.0.0.1:{silent_port}\"]\ntimeout = \"200ms\"\nretries = 2\n",
            journal = journal_path.display(),
            p500 = failing.port,
            phang = hanging.port,
        ),
    )
    .unwrap();
    let log = dir.path().join("dns-oops.log");
    let child = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("DNS_OOPS_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let daemon = Running { child, log };
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "dns-oops did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Every channel says what is wrong, in its own words, and how far behind it is.
    let started = Instant::now();
    let bad = wait_report(http, "every channel shows its problem", |r| {
        state(r, "broker") == "stalled"
            && state(r, "hook-500") == "stalled"
            && state(r, "hook-hang") == "stalled"
            && state(r, "hook-down") == "gone"
            && state(r, "notify") == "gone"
    });
    let detail = |name: &str| channel(&bad, name).detail.clone();
    assert!(
        detail("broker").contains("NotAuthorized"),
        "{}",
        bad.to_json()
    );
    assert!(detail("hook-500").contains("500"), "{}", detail("hook-500"));
    assert!(
        detail("hook-hang").contains("no answer within 500ms"),
        "{}",
        detail("hook-hang")
    );
    assert!(
        detail("hook-down").contains("refused"),
        "{}",
        detail("hook-down")
    );
    assert!(
        detail("notify").contains(&format!("127.0.0.1:{silent_port}")),
        "{}",
        detail("notify")
    );
    for name in ["broker", "hook-500", "hook-hang", "hook-down"] {
        let c = channel(&bad, name);
        assert_eq!(c.kind, if name == "broker" { "mqtt" } else { "webhook" });
        assert_eq!(c.delivered_seq, Some(0), "{name}");
        assert_eq!(c.behind, SIGNALS, "{name}");
        assert!(c.oldest_undelivered.is_some(), "{name}");
    }
    let text = bad.to_json();
    assert!(
        !text.contains(WRONG_PASSWORD),
        "the password is shown: {text}"
    );

    let metrics = http_get(http, "/metrics");
    for line in [
        "dns_oops_channel_state{channel=\"hook-500\",state=\"stalled\"} 1",
        "dns_oops_channel_state{channel=\"hook-500\",state=\"connected\"} 0",
        "dns_oops_channel_state{channel=\"notify\",state=\"gone\"} 1",
        &format!("dns_oops_channel_behind_signals{{channel=\"hook-down\"}} {SIGNALS}"),
    ] {
        assert!(metrics.contains(line), "no `{line}` in\n{metrics}");
    }
    assert!(
        metrics.contains("dns_oops_channel_oldest_undelivered_seconds{channel=\"broker\"}"),
        "{metrics}"
    );

    // Keep failing for a while: tries back off (max-backoff 1 s), memory stays flat once
    // every channel has read its first batch and tried its peer a few times.
    std::thread::sleep(Duration::from_secs(3));
    let rss_early = rss_kib(daemon.child.id());
    std::thread::sleep(Duration::from_secs(8));
    let elapsed = started.elapsed().as_secs_f64();
    let tries = failing.requests.load(Ordering::SeqCst);
    assert!(
        (3..=(elapsed as usize * 2 + 6)).contains(&tries),
        "{tries} tries in {elapsed:.1} s against a receiver answering 500 (backoff up to 1 s, \
         jittered down to half)"
    );
    let rss_late = rss_kib(daemon.child.id());
    assert!(
        rss_late < rss_early + 4 * 1024,
        "memory grew from {rss_early} KiB to {rss_late} KiB while every channel failed"
    );

    // Logged once per change of state, not once per try.
    let logged = std::fs::read_to_string(&daemon.log).unwrap();
    let became = |name: &str, state: &str| {
        logged
            .lines()
            .filter(|l| l.contains(&format!("channel `{name}` is {state}:")))
            .count()
    };
    assert_eq!(became("hook-500", "stalled"), 1, "{logged}");
    assert_eq!(became("hook-down", "gone"), 1, "{logged}");
    // A slow CONNACK on a loaded machine may show as `gone` in between, hence at most two.
    assert!((1..=2).contains(&became("broker", "stalled")), "{logged}");
    assert!(
        logged.matches("trying again").count() >= 3,
        "every try is still logged as a warning:\n{logged}"
    );
    assert!(!logged.contains(WRONG_PASSWORD), "the password is logged");

    // The receiver is fixed: the channel catches up and says so.
    failing.mode.store(ANSWER_200, Ordering::SeqCst);
    let fixed = wait_report(http, "hook-500 delivers everything", |r| {
        state(r, "hook-500") == "connected" && channel(r, "hook-500").behind == 0
    });
    let c = channel(&fixed, "hook-500");
    assert_eq!(c.delivered_seq, Some(SIGNALS));
    assert_eq!(c.oldest_undelivered, None);
    assert_eq!(
        failing.delivered.load(Ordering::SeqCst) as u64,
        SIGNALS,
        "every signal once"
    );
    let logged = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        logged.contains("channel `hook-500` is connected again after"),
        "{logged}"
    );
}
