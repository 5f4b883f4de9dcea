//! The dnstap source: receives a server's dnstap over Frame Streams
//! ([`crate::dnstap::receiver`]), classifies every frame ([`crate::dnstap::classify`]),
//! and drives the traffic conditions `query-rate-high`, `query-rate-rising` and
//! `extended-error` ([`crate::dnstap::traffic`]).
//!
//! ```text
//! server ─Frame Streams─▶ connection tasks ─batches (≤ max-buffer bytes)─▶ collector task
//!                          (drop + count when over)                          │ every second
//!                                                                            ▼
//!                                               conditions ─▶ engine,  counts ─▶ metrics
//! ```
//!
//! One collector task per source owns all the counting, so nothing is shared per frame.
//! It evaluates the conditions once a second, on the complete seconds, and sends the
//! engine only changes (certain evidence: the band of each condition is its hysteresis,
//! the server's `hold` applies on top). Rates are counted by arrival time, not by the
//! timestamps in the frames, so a server with a wrong clock is counted right.
//!
//! The query rate counts queries the server received (see [`crate::dnstap::classify`]), or
//! with `count = "responses"` the responses it sent, never both.
//!
//! Metrics (labels `server`, plus `rcode` or `code`): `dns_oops_dnstap_frames_total`,
//! `dns_oops_dnstap_dropped_frames_total`, `dns_oops_dnstap_malformed_frames_total`,
//! `dns_oops_dnstap_queries_total`, `dns_oops_dnstap_responses_total`,
//! `dns_oops_dnstap_extended_errors_total`, `dns_oops_dnstap_query_rate` (queries per
//! second over the `query-rate-high` window, else the last second),
//! `dns_oops_dnstap_connections`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::config::{CountWhat, DnstapConfig, ServerConfig};
use crate::dnstap::classify::{Class, classify};
use crate::dnstap::dns::{DnsView, rcode_name};
use crate::dnstap::fstrm::{DEFAULT_MAX_DATA_LEN, Decoded, Frame, decode_frame};
use crate::dnstap::receiver::{Receiver, ReceiverSettings, ReceiverStats};
use crate::dnstap::traffic::{Traffic, TrafficRules};
use crate::health::Health;
use crate::http::metrics::Metrics;
use crate::signal::{Evidence, Observation};

/// The source name in signals.
pub const SOURCE: &str = "dnstap";

/// What a dnstap source needs.
#[derive(Debug, Clone)]
pub struct DnstapSettings {
    pub server: String,
    pub receiver: ReceiverSettings,
    pub count: CountWhat,
    pub rules: TrafficRules,
}

impl DnstapSettings {
    /// The settings of a configured dnstap source of `server`.
    pub fn new(config: &DnstapConfig, server: &ServerConfig) -> DnstapSettings {
        DnstapSettings {
            server: server.name.clone(),
            receiver: ReceiverSettings {
                listen: config.listen.clone(),
                max_connections: config.max_connections,
                max_buffer: config.max_buffer,
                max_frame: DEFAULT_MAX_DATA_LEN,
                socket_mode: config.socket_mode,
            },
            count: config.count,
            rules: config.rules(server),
        }
    }
}

/// What the collector has counted since the start.
#[derive(Debug, Clone)]
pub struct Counts {
    pub frames: u64,
    pub queries: u64,
    pub responses: u64,
    pub malformed: u64,
    /// Responses by full RCODE (12 bits).
    pub by_rcode: Box<[u64; 4096]>,
    /// Responses by Extended DNS Error info-code.
    pub by_ede: BTreeMap<u16, u64>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            frames: 0,
            queries: 0,
            responses: 0,
            malformed: 0,
            by_rcode: Box::new([0; 4096]),
            by_ede: BTreeMap::new(),
        }
    }
}

/// Classifies frames and counts them into the traffic conditions; one per source.
#[derive(Debug)]
pub struct Collector {
    pub traffic: Traffic,
    pub counts: Counts,
    count: CountWhat,
}

impl Collector {
    pub fn new(rules: TrafficRules, count: CountWhat) -> Collector {
        Collector {
            traffic: Traffic::new(rules),
            counts: Counts::default(),
            count,
        }
    }

    /// Counts the whole frames in `frames` (as a [`crate::dnstap::receiver::Batch`] holds
    /// them) as arrived in `second`.
    pub fn add(&mut self, frames: &[u8], second: u64) {
        let mut at = 0;
        let mut counted = 0u64;
        let count_responses = self.count == CountWhat::Responses;
        while let Ok(Decoded::Frame(frame, len)) = decode_frame(&frames[at..], usize::MAX) {
            at += len;
            let Frame::Data(payload) = frame else {
                continue;
            };
            self.counts.frames += 1;
            match classify(payload) {
                Class::Query => {
                    self.counts.queries += 1;
                    counted += u64::from(!count_responses);
                }
                Class::Response(facts) => {
                    self.counts.responses += 1;
                    counted += u64::from(count_responses);
                    self.counts.by_rcode[usize::from(facts.rcode & 0xfff)] += 1;
                    for &code in facts.ede_codes() {
                        *self.counts.by_ede.entry(code).or_insert(0) += 1;
                        self.extended_error(facts.wire, code, second);
                    }
                }
                Class::Other => {}
                Class::Malformed => self.counts.malformed += 1,
            }
        }
        if counted > 0 {
            self.traffic.queries(second, counted);
        }
    }

    fn extended_error(&mut self, wire: &[u8], code: u16, second: u64) {
        let watched = self
            .traffic
            .rules()
            .extended_error
            .as_ref()
            .is_some_and(|rule| rule.watches(code));
        if !watched {
            return;
        }
        let name = DnsView::parse(wire)
            .ok()
            .and_then(|view| view.question().ok().flatten())
            .map_or_else(|| ".".to_string(), |q| q.name);
        self.traffic.extended_error(second, &name, code);
    }
}

/// Runs a dnstap source until the engine's channel closes.
pub async fn run_dnstap(
    settings: DnstapSettings,
    tx: mpsc::Sender<Observation>,
    metrics: Arc<Metrics>,
    health: Health,
) {
    let server = settings.server.clone();
    let receiver = match Receiver::bind(settings.receiver.clone()).await {
        Ok(r) => r,
        Err(e) => {
            health.gone(format!("not started: {e}"));
            tracing::error!(server, "dnstap source not started: {e}");
            return;
        }
    };
    let listening: Vec<String> = settings
        .receiver
        .listen
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(server, "dnstap: listening on {}", listening.join(", "));
    let stats = receiver.stats.clone();
    let reporter_stats = stats.clone();
    let (batch_tx, mut batches) = mpsc::unbounded_channel();
    let receiving = tokio::spawn(receiver.run(batch_tx));
    let mut collector = Collector::new(settings.rules, settings.count);
    let mut reporter = Reporter::new(&server, metrics, reporter_stats);
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            batch = batches.recv() => {
                let Some(batch) = batch else { break };
                collector.add(&batch.frames, start.elapsed().as_secs());
            }
            _ = tick.tick() => {
                // Health: whether the server is connected to the socket; without a
                // connection no traffic condition can be seen.
                match stats.connections.load(std::sync::atomic::Ordering::Relaxed) {
                    0 => health.gone(format!(
                        "no dnstap connection from the server on {}",
                        listening.join(", ")
                    )),
                    n => health.connected(format!(
                        "{n} dnstap connection{} on {}",
                        if n == 1 { "" } else { "s" },
                        listening.join(", ")
                    )),
                }
                let second = start.elapsed().as_secs();
                let changes = collector.traffic.evaluate(second);
                reporter.report(&collector);
                for change in changes {
                    let mut observation = Observation::new(
                        SOURCE,
                        &server,
                        change.condition,
                        change.subject.as_deref(),
                        Evidence::Assert { met: change.met },
                    );
                    observation.args = change.args;
                    if tx.send(observation).await.is_err() {
                        receiving.abort();
                        return;
                    }
                }
            }
        }
    }
    receiving.abort();
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RcodeLabels {
    server: String,
    rcode: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdeLabels {
    server: String,
    code: String,
}

/// The dnstap sources' metrics, registered with the daemon's [`Metrics`].
#[derive(Debug, Default)]
pub struct DnstapMetrics {
    frames: Family<ServerLabels, Counter>,
    dropped: Family<ServerLabels, Counter>,
    malformed: Family<ServerLabels, Counter>,
    queries: Family<ServerLabels, Counter>,
    responses: Family<RcodeLabels, Counter>,
    extended_errors: Family<EdeLabels, Counter>,
    query_rate: Family<ServerLabels, Gauge<f64, AtomicU64>>,
    connections: Family<ServerLabels, Gauge>,
}

impl DnstapMetrics {
    pub fn register(registry: &mut Registry) -> DnstapMetrics {
        let m = DnstapMetrics::default();
        registry.register(
            "dns_oops_dnstap_frames",
            "dnstap data frames received",
            m.frames.clone(),
        );
        registry.register(
            "dns_oops_dnstap_dropped_frames",
            "dnstap data frames dropped because classification fell max-buffer behind",
            m.dropped.clone(),
        );
        registry.register(
            "dns_oops_dnstap_malformed_frames",
            "dnstap data frames that could not be read",
            m.malformed.clone(),
        );
        registry.register(
            "dns_oops_dnstap_queries",
            "Queries the server received, from dnstap",
            m.queries.clone(),
        );
        registry.register(
            "dns_oops_dnstap_responses",
            "Responses the server sent, by RCODE, from dnstap",
            m.responses.clone(),
        );
        registry.register(
            "dns_oops_dnstap_extended_errors",
            "Responses carrying an Extended DNS Error, by info-code, from dnstap",
            m.extended_errors.clone(),
        );
        registry.register(
            "dns_oops_dnstap_query_rate",
            "Queries per second over the query-rate-high window (else the last second)",
            m.query_rate.clone(),
        );
        registry.register(
            "dns_oops_dnstap_connections",
            "Frame Streams connections open",
            m.connections.clone(),
        );
        m
    }
}

/// Moves a collector's counts into the metrics, once a second.
struct Reporter {
    server: ServerLabels,
    metrics: Arc<Metrics>,
    stats: Arc<ReceiverStats>,
    reported: Counts,
    reported_frames: u64,
    reported_dropped: u64,
}

impl Reporter {
    fn new(server: &str, metrics: Arc<Metrics>, stats: Arc<ReceiverStats>) -> Reporter {
        Reporter {
            server: ServerLabels {
                server: server.to_string(),
            },
            metrics,
            stats,
            reported: Counts::default(),
            reported_frames: 0,
            reported_dropped: 0,
        }
    }

    fn report(&mut self, collector: &Collector) {
        let m = &self.metrics.dnstap;
        let counts = &collector.counts;
        let frames = self.stats.frames.load(Ordering::Relaxed);
        let dropped = self.stats.dropped.load(Ordering::Relaxed);
        m.frames
            .get_or_create(&self.server)
            .inc_by(frames - self.reported_frames);
        m.dropped
            .get_or_create(&self.server)
            .inc_by(dropped - self.reported_dropped);
        if dropped > self.reported_dropped {
            tracing::warn!(
                server = self.server.server,
                "dnstap: dropped {} frames: classification is more than max-buffer behind",
                dropped - self.reported_dropped
            );
        }
        self.reported_frames = frames;
        self.reported_dropped = dropped;
        m.malformed
            .get_or_create(&self.server)
            .inc_by(counts.malformed - self.reported.malformed);
        m.queries
            .get_or_create(&self.server)
            .inc_by(counts.queries - self.reported.queries);
        for (rcode, (now, before)) in counts
            .by_rcode
            .iter()
            .zip(self.reported.by_rcode.iter())
            .enumerate()
        {
            if now > before {
                m.responses
                    .get_or_create(&RcodeLabels {
                        server: self.server.server.clone(),
                        rcode: rcode_name(rcode as u16),
                    })
                    .inc_by(now - before);
            }
        }
        for (code, now) in &counts.by_ede {
            let before = self.reported.by_ede.get(code).copied().unwrap_or(0);
            if *now > before {
                m.extended_errors
                    .get_or_create(&EdeLabels {
                        server: self.server.server.clone(),
                        code: code.to_string(),
                    })
                    .inc_by(now - before);
            }
        }
        self.reported = counts.clone();
        let window = collector
            .traffic
            .rules()
            .query_rate_high
            .as_ref()
            .map_or(1, |r| r.window);
        if let Some(qps) = collector.traffic.query_rate(window) {
            m.query_rate.get_or_create(&self.server).set(qps);
        }
        m.connections
            .get_or_create(&self.server)
            .set(self.stats.connections.load(Ordering::Relaxed) as i64);
    }
}
