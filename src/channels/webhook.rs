//! The `webhook` channel: each signal POSTed to an HTTP(S) receiver, signed with
//! HMAC-SHA256.
//!
//! The request body is the signal JSON, exactly the line the log channel writes (without the
//! newline), with `Content-Type: application/json` and three headers:
//!
//! * `X-Oops-Seq`: the signal's `seq`;
//! * `X-Oops-Timestamp`: when this request was made, in Unix seconds;
//! * `X-Oops-Signature`: `sha256=` and the lower-case hex HMAC-SHA256, keyed with the
//!   channel's `secret`, of the timestamp, a `.`, and the body as sent:
//!   `HMAC-SHA256(secret, "<X-Oops-Timestamp>.<body>")`.
//!
//! A receiver verifies a request by computing the same HMAC over the header and the raw body
//! bytes (before any JSON parsing), comparing it in constant time, and refusing timestamps
//! too far from its own clock (say five minutes), which bounds replays. Every try of a signal
//! is signed anew with its own timestamp.
//!
//! Delivery is at least once and in order. The channel reads the journal from its cursor and
//! posts one signal at a time; a `2xx` answer delivers it and moves the cursor. Anything else
//! — another status (`3xx` included: redirects are not followed), no answer within `timeout`,
//! a refused connection, a TLS failure — is logged and counted, and the same signal is tried
//! again after a backoff: 100 ms doubling up to `max-backoff` (default 60 s), each wait drawn
//! at random between half and all of the step, so that many nodes do not come back in step.
//! Nothing is skipped. A receiver may therefore see a signal twice (for example, when its
//! `2xx` was lost, or dns-oops was killed before it wrote its cursor); `X-Oops-Seq` (the same
//! as the body's `seq`) tells the copies apart.
//!
//! A `4xx` is retried like the rest (`410 Gone` included): skipping would break "never lose a
//! signal", and a receiver that refuses for good — a wrong secret, a wrong path — shows as
//! one warning per backoff step and a growing lag until it is fixed.
//!
//! An `https` url is checked against `ca` when set, otherwise against the system's roots.
//!
//! When the daemon stops while a signal is failing, the channel stops at once; the signal and
//! those after it are delivered after the next start.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::watch;

use super::{BATCH, ChannelError, start_cursor};
use crate::config::{SignalFilter, WebhookChannelConfig, WebhookSecret};
use crate::health::{Health, HealthState};
use crate::http::metrics::Metrics;
use crate::journal::{Journal, JournalError};
use crate::push::tls::{ClientTlsOptions, client_config, install_provider};
use crate::signal::Signal;

const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// A `webhook` channel, ready to post.
pub struct WebhookChannel {
    config: WebhookChannelConfig,
    client: reqwest::Client,
    key: hmac::Key,
    headers: HeaderMap,
}

impl WebhookChannel {
    /// Reads the secret file and the CA; connects only when it posts.
    pub fn open(config: &WebhookChannelConfig) -> Result<WebhookChannel, ChannelError> {
        let secret = match &config.secret {
            WebhookSecret::Inline(secret) => secret.expose().as_bytes().to_vec(),
            WebhookSecret::File(path) => {
                let mut bytes = std::fs::read(path).map_err(|source| ChannelError::Open {
                    path: path.display().to_string(),
                    source,
                })?;
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                if bytes.is_empty() {
                    return Err(ChannelError::Open {
                        path: path.display().to_string(),
                        source: std::io::Error::other("the secret file is empty"),
                    });
                }
                bytes
            }
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            // Validated with the config.
            if let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) {
                value.set_sensitive(true);
                headers.append(name, value);
            }
        }
        install_provider();
        let mut client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dns-oops/", env!("CARGO_PKG_VERSION")));
        if reqwest::Url::parse(&config.url).is_ok_and(|url| url.scheme() == "https") {
            let tls = client_config(&ClientTlsOptions {
                ca: config.ca.clone(),
                insecure: false,
                identity: None,
            })?;
            client = client.tls_backend_preconfigured(rustls::ClientConfig::clone(&tls));
        }
        let client = client.build().map_err(|e| ChannelError::Http {
            channel: config.name.clone(),
            error: e.to_string(),
        })?;
        Ok(WebhookChannel {
            config: config.clone(),
            client,
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            headers,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn filter(&self) -> &SignalFilter {
        &self.config.filter
    }

    /// Delivers journal signals until `latest` is closed and everything is delivered, or
    /// until it is closed while a signal keeps failing.
    pub async fn run(
        self,
        journal: Arc<Journal>,
        mut latest: watch::Receiver<u64>,
        metrics: Arc<Metrics>,
        health: Health,
    ) -> Result<(), JournalError> {
        let name = self.config.name.clone();
        let mut cursor = start_cursor(&journal, &name)?;
        loop {
            let batch = journal.signals_after(cursor, BATCH)?;
            if batch.is_empty() {
                if latest.changed().await.is_err() {
                    return Ok(());
                }
                continue;
            }
            for signal in &batch {
                if self.config.filter.matches(signal)
                    && !self.deliver(signal, &mut latest, &metrics, &health).await
                {
                    tracing::info!(
                        channel = name,
                        "shutting down with the receiver failing; the signals after seq {cursor} are delivered at the next start"
                    );
                    return Ok(());
                }
                cursor = signal.seq;
                journal.set_cursor(&name, cursor)?;
                metrics.channel_delivered(&name, cursor);
            }
        }
    }

    /// Posts `signal` until a `2xx`; `false` when `latest` closed first.
    async fn deliver(
        &self,
        signal: &Signal,
        latest: &mut watch::Receiver<u64>,
        metrics: &Metrics,
        health: &Health,
    ) -> bool {
        let body = signal.to_json_line();
        let mut step = MIN_BACKOFF;
        loop {
            let (reached, error) = match self.post(signal.seq, &body).await {
                Ok(()) => {
                    if health.state() != HealthState::Connected {
                        health.connected(format!("{} took signal {}", self.url(), signal.seq));
                    }
                    return true;
                }
                Err(error) => error,
            };
            metrics.channel_error(&self.config.name);
            let wait = jittered(step);
            let detail = format!(
                "{}: signal {}: {error}; trying again in {:?}",
                self.url(),
                signal.seq,
                wait
            );
            if reached {
                health.stalled(detail);
            } else {
                health.gone(detail);
            }
            tracing::warn!(
                channel = self.config.name,
                seq = signal.seq,
                "webhook: {error}; trying again in {wait:?}"
            );
            let closed = async { while latest.changed().await.is_ok() {} };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = closed => return false,
            }
            step = (step * 2).min(self.config.max_backoff);
        }
    }

    /// The receiver's URL without user information or query (which may hold secrets).
    fn url(&self) -> String {
        match reqwest::Url::parse(&self.config.url) {
            Ok(mut url) => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.set_query(None);
                url.to_string()
            }
            Err(_) => "the receiver".to_string(),
        }
    }

    /// One try: `Ok` on a `2xx`, otherwise whether the receiver was reached (it answered,
    /// or the request went out and no answer came) and what went wrong, in words (never
    /// the secret).
    async fn post(&self, seq: u64, body: &str) -> Result<(), (bool, String)> {
        let timestamp = chrono::Utc::now().timestamp().max(0) as u64;
        let response = self
            .client
            .post(&self.config.url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("X-Oops-Seq", seq)
            .header("X-Oops-Timestamp", timestamp)
            .header(
                "X-Oops-Signature",
                signature(&self.key, timestamp, body.as_bytes()),
            )
            .body(body.to_string())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err((true, format!("the receiver answered {}", response.status()))),
            Err(e) if e.is_timeout() => Err((
                true,
                format!("no answer within {:?} (`timeout`)", self.config.timeout),
            )),
            Err(e) => Err((false, describe(&e.without_url()))),
        }
    }
}

/// `sha256=<hex HMAC-SHA256(key, "<timestamp>.<body>")>`, the `X-Oops-Signature` header.
pub fn signature(key: &hmac::Key, timestamp: u64, body: &[u8]) -> String {
    let mut context = hmac::Context::with_key(key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in tag.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// A wait between half and all of `step`, drawn at random.
fn jittered(step: Duration) -> Duration {
    let mut bytes = [0u8; 4];
    let fraction = match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    step / 2 + step.div_f64(2.0).mul_f64(fraction)
}

/// An error with its causes, e.g. "error sending request: client error (Connect): tcp
/// connect error: Connection refused (os error 111)".
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_signature_covers_timestamp_dot_body() {
        // Computed independently: HMAC-SHA256("it is a secret", "1764460800.<body>").
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"it is a secret");
        let body = br#"{"seq":1042,"state":"met"}"#;
        assert_eq!(
            signature(&key, 1_764_460_800, body),
            "sha256=053614db480e38080bee0e17fa5e8373c2508a662f7dac423287481e918a4426"
        );
        assert_ne!(
            signature(&key, 1_764_460_801, body),
            signature(&key, 1_764_460_800, body)
        );
    }

    /// Reads one HTTP/1.1 request: its head (lower-cased) and body; `None` at the end.
    async fn read_request(
        stream: &mut (impl tokio::io::AsyncRead + Unpin),
    ) -> Option<(String, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let mut data = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            data.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = data[end..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Some((head, body))
    }

    fn header<'a>(head: &'a str, name: &str) -> &'a str {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn posts_over_https_to_a_pinned_ca_and_tries_again_after_a_failure() {
        use crate::condition::ConditionId;
        use crate::config::Secret;
        use crate::push::tls::{ServerFiles, ServerTls, ensure_self_signed};
        use crate::signal::{Args, SignalState};
        use tokio::io::AsyncWriteExt;

        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ensure_self_signed(dir.path(), &["localhost"]).unwrap();
        let tls = ServerTls::load(ServerFiles {
            cert: cert.clone(),
            key,
            client_ca: None,
        })
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut count = 0;
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    continue;
                };
                while let Some((head, body)) = read_request(&mut stream).await {
                    count += 1;
                    let status = if count == 1 { 503 } else { 204 };
                    seen_tx.send((head, body, status)).unwrap();
                    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
        });

        let journal = Arc::new(Journal::open_in_memory().unwrap());
        let signals: Vec<Signal> = (1..=2)
            .map(|seq| Signal {
                seq,
                time: chrono::Utc::now(),
                node: "lab".into(),
                server: "knot".into(),
                condition: ConditionId::ZoneReady,
                subject: Some("a.test.".into()),
                state: SignalState::Met,
                args: Args::new(),
                source: "probe".into(),
            })
            .collect();
        journal.record(&signals, &[]).unwrap();
        journal.set_cursor("hook", 0).unwrap();
        let config = WebhookChannelConfig {
            name: "hook".into(),
            url: format!("https://localhost:{port}/in"),
            secret: WebhookSecret::Inline(Secret::new("k".into())),
            timeout: Duration::from_secs(5),
            ca: Some(cert),
            headers: vec![("X-Site".into(), Secret::new("ams".into()))],
            max_backoff: Duration::from_secs(1),
            filter: SignalFilter::default(),
        };
        let channel = WebhookChannel::open(&config).unwrap();
        let (latest_tx, latest) = watch::channel(2);
        let board = crate::health::Board::new();
        let health = board.channel("hook", "webhook");
        let run = tokio::spawn(channel.run(
            journal.clone(),
            latest,
            Arc::new(Metrics::new()),
            health.clone(),
        ));

        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let mut tried = Vec::new();
        for _ in 0..3 {
            let (head, body, status) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
                .await
                .expect("requests arrive")
                .unwrap();
            assert!(head.starts_with("post /in http/1.1"), "{head}");
            assert_eq!(header(&head, "content-type"), "application/json");
            assert_eq!(header(&head, "x-site"), "ams");
            let seq: u64 = header(&head, "x-oops-seq").parse().unwrap();
            assert_eq!(body, signals[seq as usize - 1].to_json_line().as_bytes());
            let timestamp: u64 = header(&head, "x-oops-timestamp").parse().unwrap();
            assert_eq!(
                header(&head, "x-oops-signature"),
                signature(&key, timestamp, &body)
            );
            tried.push((seq, status));
            if tried.len() == 1 {
                // The 503 is answered before the channel reads it; give it a moment.
                for _ in 0..100 {
                    if health.state() == HealthState::Stalled {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(health.state(), HealthState::Stalled);
                let detail = &board.channels()[0].detail;
                assert!(detail.contains("503"), "{detail}");
                assert!(
                    !detail.contains("ams"),
                    "no header value in health: {detail}"
                );
            }
        }
        assert_eq!(tried, [(1, 503), (1, 204), (2, 204)]);
        drop(latest_tx);
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the channel ends when the daemon stops")
            .unwrap()
            .unwrap();
        assert_eq!(journal.cursor("hook").unwrap(), Some(2));
    }

    #[tokio::test]
    async fn a_stop_while_failing_leaves_the_cursor_before_the_signal() {
        let journal = Arc::new(Journal::open_in_memory().unwrap());
        let signal = Signal {
            seq: 1,
            time: chrono::Utc::now(),
            node: "lab".into(),
            server: "knot".into(),
            condition: crate::condition::ConditionId::ServerRunning,
            subject: None,
            state: crate::signal::SignalState::Met,
            args: crate::signal::Args::new(),
            source: "probe".into(),
        };
        journal.record(&[signal], &[]).unwrap();
        journal.set_cursor("hook", 0).unwrap();
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = WebhookChannelConfig {
            name: "hook".into(),
            url: format!("http://127.0.0.1:{port}/"),
            secret: WebhookSecret::Inline(crate::config::Secret::new("k".into())),
            timeout: Duration::from_secs(1),
            ca: None,
            headers: Vec::new(),
            max_backoff: Duration::from_secs(60),
            filter: SignalFilter::default(),
        };
        let channel = WebhookChannel::open(&config).unwrap();
        let (latest_tx, latest) = watch::channel(1);
        let health = crate::health::Board::new().channel("hook", "webhook");
        let run = tokio::spawn(channel.run(
            journal.clone(),
            latest,
            Arc::new(Metrics::new()),
            health.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(health.state(), HealthState::Gone, "nothing listens there");
        drop(latest_tx);
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("a failing channel stops at once")
            .unwrap()
            .unwrap();
        assert_eq!(journal.cursor("hook").unwrap(), Some(0));
    }

    #[test]
    fn waits_are_between_half_and_all_of_the_step() {
        for _ in 0..100 {
            let wait = jittered(Duration::from_secs(8));
            assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(8));
        }
    }
}
