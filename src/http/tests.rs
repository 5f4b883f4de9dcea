//! The HTTP server and its clients, end to end on loopback with an in-memory journal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::api::{ErrorBody, StatusReport};
use super::client::{self, ClientError};
use super::metrics::{CONTENT_TYPE, Metrics};
use super::{HttpState, serve};
use crate::condition::ConditionId;
use crate::journal::Journal;
use crate::signal::{Args, CurrentCondition, Signal, SignalState, StateChange};

/// How long any one step of a test may take.
const STEP: Duration = Duration::from_secs(10);

/// A running server and the daemon's side of it: the journal and the `latest_seq` sender.
struct TestServer {
    base: String,
    addr: SocketAddr,
    journal: Arc<Journal>,
    latest: watch::Sender<u64>,
    metrics: Arc<Metrics>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn start() -> TestServer {
        let journal = Arc::new(Journal::open_in_memory().unwrap());
        TestServer::start_on("127.0.0.1:0".parse().unwrap(), journal).await
    }

    async fn start_on(addr: SocketAddr, journal: Arc<Journal>) -> TestServer {
        // The tests' reqwest clients need the process-wide rustls provider.
        crate::push::tls::install_provider();
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (latest, latest_seq) = watch::channel(journal.last_seq().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let metrics = Arc::new(Metrics::new());
        let state = HttpState {
            journal: journal.clone(),
            latest_seq,
            metrics: metrics.clone(),
            health: crate::health::Board::new(),
            node: "ams1".into(),
            control: None,
        };
        let task = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        TestServer {
            base: format!("http://{addr}"),
            addr,
            journal,
            latest,
            metrics,
            stop,
            task,
        }
    }

    /// Writes signals with the next seqs, as the daemon does, and returns them.
    fn record(&self, count: u64, changes: &[StateChange]) -> Vec<Signal> {
        let first = self.journal.last_seq().unwrap() + 1;
        let signals: Vec<Signal> = (first..first + count).map(signal).collect();
        self.journal.record(&signals, changes).unwrap();
        for signal in &signals {
            self.metrics.signal(signal);
        }
        self.metrics.set_current(&self.journal.current().unwrap());
        self.latest.send_replace(first + count - 1);
        signals
    }

    /// Shuts the server down the way the daemon does and waits until it has stopped.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(STEP, self.task)
            .await
            .expect("the server stops with a stream open")
            .unwrap()
            .unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Now, to the microsecond that signal JSON keeps.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn signal(seq: u64) -> Signal {
    Signal {
        seq,
        time: now(),
        node: "ams1".into(),
        server: "knot".into(),
        condition: ConditionId::ZoneUpdated,
        subject: Some("example.net.".into()),
        state: SignalState::Event,
        args: Args::from([("serial".to_string(), seq.into())]),
        source: "probe".into(),
    }
}

fn zone_ready(seq: u64) -> CurrentCondition {
    CurrentCondition {
        server: "knot".into(),
        condition: ConditionId::ZoneReady,
        subject: Some("example.net.".into()),
        since: now(),
        args: Args::from([("serial".to_string(), 2026112201u32.into())]),
        source: "probe".into(),
        seq,
    }
}

async fn get(url: &str) -> reqwest::Response {
    tokio::time::timeout(STEP, reqwest::get(url))
        .await
        .unwrap()
        .unwrap()
}

async fn bad_request(url: &str) -> String {
    let response = get(url).await;
    assert_eq!(response.status(), 400, "{url}");
    response.json::<ErrorBody>().await.unwrap().error
}

/// Reads an event stream until `needle` shows up; returns everything read.
async fn read_until(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    needle: &str,
) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        let chunk = tokio::time::timeout(STEP, body.next())
            .await
            .unwrap_or_else(|_| panic!("no `{needle}` in {text:?}"))
            .unwrap_or_else(|| panic!("stream ended without `{needle}`: {text:?}"))
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text
}

#[tokio::test]
async fn conditions_are_the_current_state() {
    let server = TestServer::start().await;
    let met = zone_ready(1);
    server.record(2, &[StateChange::Upsert(met.clone())]);

    let response = get(&server.url("/api/v1/conditions")).await;
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["node"], "ams1");
    assert_eq!(json["seq"], 2);
    assert_eq!(json["conditions"][0]["condition"], "zone-ready");
    let report: StatusReport = serde_json::from_value(json).unwrap();
    assert_eq!(report.conditions, vec![met]);

    let status = client::status(&format!("{}/", server.base)).await.unwrap();
    assert_eq!(status, report);
    assert!(
        status.render().contains("zone-ready"),
        "{}",
        status.render()
    );
    server.stop().await;
}

#[tokio::test]
async fn signals_page_through_the_journal() {
    let server = TestServer::start().await;
    let written = server.record(25, &[]);

    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page: Vec<Signal> =
            get(&server.url(&format!("/api/v1/signals?after={after}&limit=10")))
                .await
                .json()
                .await
                .unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 10);
        after = last.seq;
        read.extend(page);
    }
    assert_eq!(read, written);
    let all: Vec<Signal> = get(&server.url("/api/v1/signals"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 25);

    let beyond: Vec<Signal> = get(&server.url(&format!("/api/v1/signals?after={}", u64::MAX)))
        .await
        .json()
        .await
        .unwrap();
    assert!(beyond.is_empty());
    let error = bad_request(&server.url("/api/v1/signals?after=abc")).await;
    assert!(
        error.contains("`after`") && error.contains("`abc`"),
        "{error}"
    );
    let error = bad_request(&server.url("/api/v1/signals?limit=10001")).await;
    assert!(error.contains("`limit`"), "{error}");
    bad_request(&server.url("/api/v1/signals?limit=0")).await;
    let error = bad_request(&server.url("/api/v1/signals?afer=1")).await;
    assert!(error.contains("unknown parameter `afer`"), "{error}");
    bad_request(&server.url("/api/v1/signals?after=1&after=2")).await;
    server.stop().await;
}

#[tokio::test]
async fn stream_sends_signals_recorded_after_connecting() {
    let server = TestServer::start().await;
    server.record(3, &[]);
    let response = get(&server.url("/api/v1/signals/stream")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();

    let new = server.record(1, &[]);
    let text = read_until(&mut body, "\n\n").await;
    assert_eq!(
        text,
        format!("id: 4\nevent: signal\ndata: {}\n\n", new[0].to_json_line())
    );

    // A graceful stop ends the stream with `shutdown`, and the server returns.
    let stopping = tokio::spawn(server.stop());
    read_until(&mut body, "event: shutdown\n").await;
    stopping.await.unwrap();
}

#[tokio::test]
async fn stream_resumes_after_last_event_id() {
    let server = TestServer::start().await;
    server.record(5, &[]);
    let client = reqwest::Client::new();
    let response = client
        .get(server.url("/api/v1/signals/stream?after=1"))
        .header("Last-Event-ID", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let text = read_until(&mut body, "id: 5\n").await;
    assert!(text.starts_with("id: 4\n"), "{text}");

    let response = get(&server.url("/api/v1/signals/stream?after=2")).await;
    let text = read_until(&mut response.bytes_stream(), "id: 5\n").await;
    assert!(text.starts_with("id: 3\n"), "{text}");

    let error = bad_request(&server.url("/api/v1/signals/stream?after=abc")).await;
    assert!(error.contains("`after`"), "{error}");
    let error = bad_request(&server.url("/api/v1/signals/stream?after=9")).await;
    assert!(error.contains("last seq is 5"), "{error}");
    let response = client
        .get(server.url("/api/v1/signals/stream"))
        .header("Last-Event-ID", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn metrics_dashboard_and_unknown_paths() {
    let server = TestServer::start().await;
    server.record(7, &[StateChange::Upsert(zone_ready(1))]);
    server.metrics.probe("knot", "answered", 0.001);
    server.metrics.channel_delivered("log", 7);
    server.metrics.channel_error("log");
    let response = get(&server.url("/metrics")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
    let text = response.text().await.unwrap();
    for name in [
        "dns_oops_signals",
        "dns_oops_conditions_met",
        "dns_oops_probe_duration_seconds",
        "dns_oops_probes",
        "dns_oops_channel_delivered_seq",
        "dns_oops_channel_errors",
        "dns_oops_journal_seq 7",
    ] {
        assert!(text.contains(name), "no {name} in\n{text}");
    }

    let response = get(&server.url("/")).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains("EventSource") && !page.contains("src=\"http"),
        "{page}"
    );

    let response = get(&server.url("/api/v2/nothing")).await;
    assert_eq!(response.status(), 404);
    let error = response.json::<ErrorBody>().await.unwrap().error;
    assert!(error.contains("/api/v2/nothing"), "{error}");
    server.stop().await;
}

async fn receive(rx: &mut mpsc::UnboundedReceiver<Signal>, count: usize) -> Vec<Signal> {
    let mut received = Vec::new();
    for _ in 0..count {
        received.push(
            tokio::time::timeout(STEP, rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    received
}

#[tokio::test]
async fn watch_follows_the_daemon_across_a_restart() {
    let server = TestServer::start().await;
    let journal = server.journal.clone();
    let mut expected = server.record(2, &[]);

    let (tx, mut rx) = mpsc::unbounded_channel::<Signal>();
    let base = server.base.clone();
    let watcher = tokio::spawn(async move {
        client::watch(&base, Some(0), |s| tx.send(s.clone()).unwrap()).await
    });
    let mut received = receive(&mut rx, 2).await;
    expected.extend(server.record(1, &[]));
    received.extend(receive(&mut rx, 1).await);

    // The daemon restarts on the same address; signals written meanwhile are not lost.
    let addr = server.addr;
    server.stop().await;
    let first = journal.last_seq().unwrap() + 1;
    let while_down: Vec<Signal> = (first..first + 2).map(signal).collect();
    journal.record(&while_down, &[]).unwrap();
    expected.extend(while_down);
    let server = TestServer::start_on(addr, journal).await;
    received.extend(receive(&mut rx, 2).await);
    expected.extend(server.record(1, &[]));
    received.extend(receive(&mut rx, 1).await);

    assert_eq!(received, expected);
    assert!(rx.try_recv().is_err(), "a signal was delivered twice");
    watcher.abort();
    server.stop().await;
}

#[tokio::test]
async fn watch_without_after_starts_with_new_signals() {
    let server = TestServer::start().await;
    server.record(3, &[]);
    let (tx, mut rx) = mpsc::unbounded_channel::<Signal>();
    let base = server.base.clone();
    let watcher =
        tokio::spawn(
            async move { client::watch(&base, None, |s| tx.send(s.clone()).unwrap()).await },
        );
    // Keep writing until the watcher is connected and sees one; it never sees 1..=3.
    let first = loop {
        server.record(1, &[]);
        if let Ok(Some(signal)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
        {
            break signal;
        }
    };
    assert!(first.seq > 3, "{first:?}");
    watcher.abort();
    server.stop().await;
}

#[tokio::test]
async fn clients_say_what_to_do_when_the_daemon_is_not_there() {
    let free = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let base = format!("http://{free}");
    let err = client::status(&base).await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "cannot reach dns-oops at {base}: connection refused"
        )) && text.contains("is `dns-oops run` running, and is [http] listen set to this address?"),
        "{text}"
    );
    let err = client::watch(&base, Some(0), |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");

    let server = TestServer::start().await;
    let err = client::watch(&server.base, Some(99), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("last seq is 0"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn requests_for_other_host_names_are_refused() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let url = server.url("/api/v1/conditions");
    for (host, allowed) in [
        ("evil.example", false),
        ("evil.example:8054", false),
        ("localhost:8054", true),
        ("127.0.0.1:8054", true),
        ("[::1]:8054", true),
    ] {
        let response = client.get(&url).header("host", host).send().await.unwrap();
        assert_eq!(
            response.status().is_success(),
            allowed,
            "{host}: {}",
            response.status()
        );
        if !allowed {
            assert_eq!(response.status(), reqwest::StatusCode::MISDIRECTED_REQUEST);
        }
    }
    server.stop().await;
}

#[test]
fn host_literals() {
    for host in ["::1", "[::1]", "127.0.0.1", "LOCALHOST:1"] {
        assert!(super::host_is_local_or_literal(host), "{host}");
    }
    for host in ["example.com", "127.0.0.1.nip.io:80", "localhost.evil"] {
        assert!(!super::host_is_local_or_literal(host), "{host}");
    }
}
