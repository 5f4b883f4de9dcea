//! The webhook channel end to end: `dns-oops run` posting to an HTTP receiver in this test,
//! which checks every signature and is down for part of the run (not listening, then
//! answering 500, then hanging past the channel's timeout, then answering 200); the demo's
//! lab server as the watched DNS server. Then dns-oops is killed with kill -9 and started
//! again: the channel resumes from its cursor.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use common::{Daemon, LabProcess, free_port};
use dns_oops::condition::ConditionId;
use dns_oops::signal::{Signal, SignalState};
use ring::hmac;

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "a webhook secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Request {
    at: Instant,
    seq: u64,
    /// The signature is right, the body is the signal with the header's `seq`, and the
    /// content type is JSON.
    valid: bool,
    /// What the receiver did: 200, 500, or 0 for "never answered".
    answer: u16,
}

/// What the receiver does next, and what it saw.
#[derive(Default)]
struct Book {
    /// Requests still to answer 500.
    fail: usize,
    /// Requests still to leave without an answer, after the failures.
    hang: usize,
    requests: Vec<Request>,
}

type Shared = Arc<Mutex<Book>>;

/// Checks a request independently of the channel's code: HMAC-SHA256 of
/// `"<timestamp>.<body>"`, hex, after `sha256=`.
fn verify(headers: &HeaderMap, body: &[u8]) -> (u64, bool) {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let seq: u64 = text("x-oops-seq").parse().unwrap_or(0);
    let timestamp = text("x-oops-timestamp");
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut message = timestamp.clone().into_bytes();
    message.push(b'.');
    message.extend_from_slice(body);
    let signature = text("x-oops-signature");
    let tag = signature
        .strip_prefix("sha256=")
        .and_then(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .unwrap_or_default();
    let signed = hmac::verify(&key, &message, &tag).is_ok();
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 60);
    let body_seq = serde_json::from_slice::<Signal>(body).map(|s| s.seq).ok();
    let json = text("content-type") == "application/json";
    (seq, signed && fresh && body_seq == Some(seq) && json)
}

async fn hook(State(book): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let (seq, valid) = verify(&headers, &body);
    let answer = {
        let mut book = book.lock().unwrap();
        let answer = if book.fail > 0 {
            book.fail -= 1;
            500
        } else if book.hang > 0 {
            book.hang -= 1;
            0
        } else {
            200
        };
        book.requests.push(Request {
            at: Instant::now(),
            seq,
            valid,
            answer,
        });
        answer
    };
    if answer == 0 {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(answer).unwrap()
}

/// Starts listening on `port`, on a thread of its own, for the rest of the test.
fn start_receiver(port: u16, book: Shared) {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind the receiver");
            let app = axum::Router::new()
                .route("/hook", axum::routing::post(hook))
                .with_state(book);
            ready_tx.send(()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    ready.recv_timeout(WAIT).expect("the receiver listens");
}

fn write_config(dir: &Path, lab_port: u16, hook_port: u16) -> PathBuf {
    let secret = dir.join("webhook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let path = dir.join("dns-oops.toml");
    std::fs::write(
        &path,
        format!(
            "node = \"it\"\n[journal]\npath = \"{d}/journal.sqlite\"\n[http]\nlisten = \"off\"\n\
             [[server]]\nname = \"lab\"\naddress = \"127.0.0.1:{lab_port}\"\nzones = [\"a.test.\", \"b.test.\"]\n\
             [[source]]\ntype = \"probe\"\nserver = \"lab\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n\
             [[channel]]\ntype = \"log\"\n\
             [[channel]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\
             secret-file = \"{secret}\"\ntimeout = \"500ms\"\nmax-backoff = \"1s\"\n\
             headers = {{ X-Site = \"it\" }}\n",
            d = dir.display(),
            secret = secret.display(),
        ),
    )
    .unwrap();
    path
}

/// Serves a new serial and waits for the daemon's `zone-updated` of it.
fn update(lab: &mut LabProcess, daemon: &mut Daemon, zone: &str, serial: u32) {
    lab.say(&format!("zone {zone} {serial}\n"));
    daemon.wait_for(&format!("zone-updated {zone} {serial}"), WAIT, |s| {
        s.condition == ConditionId::ZoneUpdated
            && s.subject.as_deref() == Some(zone)
            && s.args.get("serial").and_then(|v| v.as_u64()) == Some(u64::from(serial))
    });
}

#[test]
fn every_signal_arrives_signed_in_order_through_a_flaky_receiver_and_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = LabProcess::start(dir.path());
    lab.say("zone a.test. 1\nzone b.test. 1\n");
    let hook_port = free_port();
    let config = write_config(dir.path(), lab.port, hook_port);
    let mut daemon = Daemon::start(&config);
    daemon.wait_for("zone-ready b.test.", WAIT, |s| {
        s.condition == ConditionId::ZoneReady
            && s.subject.as_deref() == Some("b.test.")
            && s.state == SignalState::Met
    });

    // The receiver is not listening: connections are refused.
    update(&mut lab, &mut daemon, "a.test.", 2);
    update(&mut lab, &mut daemon, "a.test.", 3);
    std::thread::sleep(Duration::from_millis(1500));

    // It comes up answering 500 three times, then leaves two requests unanswered.
    let book = Shared::default();
    {
        let mut book = book.lock().unwrap();
        book.fail = 3;
        book.hang = 2;
    }
    start_receiver(hook_port, book.clone());
    update(&mut lab, &mut daemon, "b.test.", 2);
    update(&mut lab, &mut daemon, "b.test.", 3);
    update(&mut lab, &mut daemon, "a.test.", 4);
    daemon.drain(Duration::from_secs(1));

    let mut expected: Vec<u64> = daemon.seen.iter().map(|s| s.seq).collect();
    expected.sort_unstable();
    assert_eq!(
        expected,
        (1..=expected.len() as u64).collect::<Vec<_>>(),
        "the log channel saw every seq"
    );
    let last = *expected.last().unwrap();
    let deadline = Instant::now() + WAIT;
    let requests = loop {
        let requests = book.lock().unwrap().requests.clone();
        if requests.iter().any(|r| r.seq == last && r.answer == 200) {
            break requests;
        }
        assert!(
            Instant::now() < deadline,
            "seq {last} never delivered; requests: {requests:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    assert!(
        requests.iter().all(|r| r.valid),
        "bad signatures: {requests:#?}"
    );
    let tried: Vec<u64> = requests.iter().map(|r| r.seq).collect();
    assert!(
        tried.windows(2).all(|w| w[0] <= w[1]),
        "tried out of order: {tried:?}"
    );
    let mut delivered: Vec<u64> = requests
        .iter()
        .filter(|r| r.answer == 200)
        .map(|r| r.seq)
        .collect();
    delivered.dedup();
    assert_eq!(
        delivered, expected,
        "every seq exactly once after de-duplication"
    );
    // The first request after the receiver came up was for the first signal: nothing was
    // skipped while it was down.
    assert_eq!(requests[0].seq, 1);
    assert_eq!(requests.iter().filter(|r| r.answer == 500).count(), 3);

    // A hung request is timed out (500 ms) and its signal tried again.
    let hung: Vec<usize> = (0..requests.len())
        .filter(|&i| requests[i].answer == 0)
        .collect();
    assert_eq!(hung.len(), 2);
    for i in hung {
        let next = &requests[i + 1];
        assert_eq!(next.seq, requests[i].seq, "the hung signal is tried again");
        let gap = next.at - requests[i].at;
        assert!(
            gap >= Duration::from_millis(450),
            "tried again after {gap:?}, before the timeout"
        );
    }

    // kill -9 and a new start: the channel resumes from its cursor, nothing is lost.
    daemon.kill9();
    let mut daemon = Daemon::start(&config);
    update(&mut lab, &mut daemon, "b.test.", 4);
    update(&mut lab, &mut daemon, "a.test.", 5);
    daemon.drain(Duration::from_secs(1));
    let last = daemon.seen.iter().map(|s| s.seq).max().unwrap();
    assert!(last > *expected.last().unwrap());
    let deadline = Instant::now() + WAIT;
    let requests = loop {
        let requests = book.lock().unwrap().requests.clone();
        if requests.iter().any(|r| r.seq == last && r.answer == 200) {
            break requests;
        }
        assert!(
            Instant::now() < deadline,
            "seq {last} never delivered after the restart; requests: {requests:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(requests.iter().all(|r| r.valid));
    let mut delivered: Vec<u64> = requests
        .iter()
        .filter(|r| r.answer == 200)
        .map(|r| r.seq)
        .collect();
    delivered.dedup();
    assert_eq!(
        delivered,
        (1..=last).collect::<Vec<_>>(),
        "every seq exactly once after de-duplication, across the kill -9"
    );
    daemon.terminate();
}
