//! The daemon's Prometheus metrics, served as OpenMetrics text at `GET /metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `dns_oops_signals_total` | counter | `server`, `condition`, `state` |
//! | `dns_oops_conditions_met` | gauge: subjects for which the condition is met | `server`, `condition` |
//! | `dns_oops_probe_duration_seconds` | histogram | `server` |
//! | `dns_oops_probes_total` | counter | `server`, `outcome` |
//! | `dns_oops_journal_seq` | gauge: the last signal's `seq` | – |
//! | `dns_oops_channel_delivered_seq` | gauge: the last `seq` a channel delivered | `channel` |
//! | `dns_oops_channel_errors_total` | counter | `channel` |
//! | `dns_oops_channel_state` | gauge: 1 for the channel's current [health](crate::health) state, 0 for the others | `channel`, `state` |
//! | `dns_oops_channel_behind_signals` | gauge: signals in the journal after the channel's cursor | `channel` |
//! | `dns_oops_channel_oldest_undelivered_seconds` | gauge: age of the oldest signal not yet delivered (0 when none) | `channel` |
//! | `dns_oops_source_state` | gauge: 1 for the source's current [health](crate::health) state, 0 for the others | `source` (its type, `<type>-N` for the N-th of a type for one server), `server`, `state` |
//! | `dns_oops_anycast_driver_up` | gauge: 1 while the BGP daemon is reachable | `driver` |
//! | `dns_oops_anycast_announced` | gauge: 1 while the policy's prefixes are to be announced | `policy` |
//! | `dns_oops_push_sessions` | gauge: DNS Push sessions open | `channel` |
//! | `dns_oops_push_dropped_total` | counter: sessions dropped for not reading | `channel`, `reason` (`lagging`, `write-timeout`) |
//! | `dns_oops_notify_unanswered_total` | counter: NOTIFYs given up on after every retry went unanswered | `channel`, `target` |
//! | `dns_oops_dnstap_*` | dnstap frames, drops, queries, responses by RCODE, EDE by code, query rate, connections | `server` (see [`crate::sources::dnstap`]) |
//! | `dns_oops_notify_in_requests_total` | counter: NOTIFYs received, by outcome (`accepted`, `not-allowed`, `tsig-bad-signature`, …) | `server`, `outcome` (see [`crate::sources::notify_in`]) |
//! | `dns_oops_control_polls`, `dns_oops_control_up` | control-channel polls by outcome; whether the last one was answered | `server`, `outcome` (see [`crate::sources::control`]) |
//!
//! A `(server, condition)` pair that was met once stays in `dns_oops_conditions_met` with
//! the value 0 after it clears, so that alerts on it see a 0 rather than no series.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::health::{ChannelHealth, HealthState, SourceHealth};
use crate::signal::{CurrentCondition, Signal};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    server: String,
    condition: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ConditionLabels {
    server: String,
    condition: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    server: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelStateLabels {
    channel: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceStateLabels {
    source: String,
    server: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    channel: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotifyTargetLabels {
    channel: String,
    target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriverLabels {
    driver: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

fn probe_duration_histogram() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The metrics registry and every metric in it; shared as `Arc<Metrics>`, updated through
/// `&self`.
pub struct Metrics {
    registry: Registry,
    signals: Family<SignalLabels, Counter>,
    conditions_met: Family<ConditionLabels, Gauge>,
    /// The `(server, condition)` pairs `conditions_met` has a series for.
    conditions_seen: Mutex<BTreeSet<ConditionLabels>>,
    probe_duration: Family<ServerLabels, Histogram, fn() -> Histogram>,
    probes: Family<ProbeLabels, Counter>,
    journal_seq: Gauge,
    channel_delivered_seq: Family<ChannelLabels, Gauge>,
    channel_errors: Family<ChannelLabels, Counter>,
    channel_state: Family<ChannelStateLabels, Gauge>,
    channel_behind: Family<ChannelLabels, Gauge>,
    channel_oldest: Family<ChannelLabels, Gauge<f64, AtomicU64>>,
    source_state: Family<SourceStateLabels, Gauge>,
    anycast_driver_up: Family<DriverLabels, Gauge>,
    anycast_announced: Family<PolicyLabels, Gauge>,
    push_sessions: Family<ChannelLabels, Gauge>,
    push_dropped: Family<DropLabels, Counter>,
    notify_unanswered: Family<NotifyTargetLabels, Counter>,
    /// The dnstap sources' counters (their list is in [`crate::sources::dnstap`]).
    pub dnstap: crate::sources::dnstap::DnstapMetrics,
    /// The control sources' poll outcomes (see [`crate::sources::control`]).
    pub control: crate::sources::control::ControlMetrics,
    /// The notify-in sources' requests by outcome.
    pub notify_in: crate::sources::notify_in::NotifyInMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let signals = Family::<SignalLabels, Counter>::default();
        registry.register("dns_oops_signals", "Signals emitted", signals.clone());
        let conditions_met = Family::<ConditionLabels, Gauge>::default();
        registry.register(
            "dns_oops_conditions_met",
            "Subjects for which a level condition is met now",
            conditions_met.clone(),
        );
        let probe_duration: Family<ServerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(probe_duration_histogram);
        registry.register_with_unit(
            "dns_oops_probe_duration",
            "Time from sending a probe query to its answer or timeout",
            Unit::Seconds,
            probe_duration.clone(),
        );
        let probes = Family::<ProbeLabels, Counter>::default();
        registry.register(
            "dns_oops_probes",
            "Probe queries sent, by outcome",
            probes.clone(),
        );
        let journal_seq = Gauge::default();
        registry.register(
            "dns_oops_journal_seq",
            "The seq of the last signal in the journal",
            journal_seq.clone(),
        );
        let channel_delivered_seq = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "dns_oops_channel_delivered_seq",
            "The seq of the last signal a channel delivered",
            channel_delivered_seq.clone(),
        );
        let channel_errors = Family::<ChannelLabels, Counter>::default();
        registry.register(
            "dns_oops_channel_errors",
            "Failed deliveries, by channel",
            channel_errors.clone(),
        );
        let anycast_driver_up = Family::<DriverLabels, Gauge>::default();
        registry.register(
            "dns_oops_anycast_driver_up",
            "Whether an anycast driver reaches its BGP daemon",
            anycast_driver_up.clone(),
        );
        let anycast_announced = Family::<PolicyLabels, Gauge>::default();
        registry.register(
            "dns_oops_anycast_announced",
            "Whether an anycast policy's prefixes are to be announced",
            anycast_announced.clone(),
        );
        let channel_state = Family::<ChannelStateLabels, Gauge>::default();
        registry.register(
            "dns_oops_channel_state",
            "1 for the channel's current health state (starting, connected, stalled, gone)",
            channel_state.clone(),
        );
        let channel_behind = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "dns_oops_channel_behind_signals",
            "Signals in the journal the channel has not delivered yet",
            channel_behind.clone(),
        );
        let channel_oldest = Family::<ChannelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "dns_oops_channel_oldest_undelivered",
            "Age of the oldest signal the channel has not delivered yet (0 when none)",
            Unit::Seconds,
            channel_oldest.clone(),
        );
        let source_state = Family::<SourceStateLabels, Gauge>::default();
        registry.register(
            "dns_oops_source_state",
            "1 for the source's current health state (starting, connected, stalled, gone)",
            source_state.clone(),
        );
        let push_sessions = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "dns_oops_push_sessions",
            "DNS Push sessions open",
            push_sessions.clone(),
        );
        let dnstap = crate::sources::dnstap::DnstapMetrics::register(&mut registry);
        let control = crate::sources::control::ControlMetrics::register(&mut registry);
        let notify_in = crate::sources::notify_in::NotifyInMetrics::register(&mut registry);
        let push_dropped = Family::<DropLabels, Counter>::default();
        registry.register(
            "dns_oops_push_dropped",
            "DNS Push sessions dropped for not reading, by reason",
            push_dropped.clone(),
        );
        let notify_unanswered = Family::<NotifyTargetLabels, Counter>::default();
        registry.register(
            "dns_oops_notify_unanswered",
            "NOTIFYs given up on after every retry went unanswered, by target",
            notify_unanswered.clone(),
        );
        Metrics {
            registry,
            signals,
            conditions_met,
            conditions_seen: Mutex::default(),
            probe_duration,
            probes,
            journal_seq,
            channel_delivered_seq,
            channel_errors,
            channel_state,
            channel_behind,
            channel_oldest,
            source_state,
            anycast_driver_up,
            anycast_announced,
            push_sessions,
            push_dropped,
            notify_unanswered,
            dnstap,
            control,
            notify_in,
        }
    }

    /// Sets the health metrics from a snapshot of the health board.
    pub fn set_health(&self, sources: &[SourceHealth], channels: &[ChannelHealth]) {
        let now = chrono::Utc::now();
        for source in sources {
            for state in HealthState::ALL {
                self.source_state
                    .get_or_create(&SourceStateLabels {
                        source: source.name.clone(),
                        server: source.server.clone(),
                        state: state.as_str().to_string(),
                    })
                    .set(i64::from(source.state == state));
            }
        }
        for channel in channels {
            for state in HealthState::ALL {
                self.channel_state
                    .get_or_create(&ChannelStateLabels {
                        channel: channel.name.clone(),
                        state: state.as_str().to_string(),
                    })
                    .set(i64::from(channel.state == state));
            }
            let labels = channel_labels(&channel.name);
            self.channel_behind
                .get_or_create(&labels)
                .set(gauge_value(channel.behind));
            let age = channel
                .oldest_undelivered
                .map(|t| (now - t).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6)
                .unwrap_or(0.0)
                .max(0.0);
            self.channel_oldest.get_or_create(&labels).set(age);
        }
    }

    /// Sets `dns_oops_anycast_driver_up`.
    pub fn anycast_driver_up(&self, driver: &str, up: bool) {
        self.anycast_driver_up
            .get_or_create(&DriverLabels {
                driver: driver.to_string(),
            })
            .set(i64::from(up));
    }

    /// Sets `dns_oops_anycast_announced`.
    pub fn anycast_announced(&self, policy: &str, announced: bool) {
        self.anycast_announced
            .get_or_create(&PolicyLabels {
                policy: policy.to_string(),
            })
            .set(i64::from(announced));
    }

    /// Counts a signal and moves `dns_oops_journal_seq` to it.
    pub fn signal(&self, signal: &Signal) {
        self.signals
            .get_or_create(&SignalLabels {
                server: signal.server.clone(),
                condition: signal.condition.as_str().to_string(),
                state: signal.state.as_str().to_string(),
            })
            .inc();
        self.set_journal_seq(signal.seq);
    }

    /// Sets `dns_oops_journal_seq`.
    pub fn set_journal_seq(&self, seq: u64) {
        self.journal_seq.set(gauge_value(seq));
    }

    /// Recomputes `dns_oops_conditions_met` from the complete current state.
    pub fn set_current(&self, current: &[CurrentCondition]) {
        let mut counts = BTreeMap::<ConditionLabels, i64>::new();
        for condition in current {
            let labels = ConditionLabels {
                server: condition.server.clone(),
                condition: condition.condition.as_str().to_string(),
            };
            *counts.entry(labels).or_default() += 1;
        }
        let mut seen = self
            .conditions_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for labels in seen.iter().filter(|labels| !counts.contains_key(*labels)) {
            self.conditions_met.get_or_create(labels).set(0);
        }
        for (labels, count) in counts {
            self.conditions_met.get_or_create(&labels).set(count);
            seen.insert(labels);
        }
    }

    /// Records one probe: its outcome (`answered`, `timeout`, …) and how long it took.
    pub fn probe(&self, server: &str, outcome: &str, seconds: f64) {
        let server_labels = ServerLabels {
            server: server.to_string(),
        };
        self.probe_duration
            .get_or_create(&server_labels)
            .observe(seconds);
        self.probes
            .get_or_create(&ProbeLabels {
                server: server.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Records that a channel has delivered every signal up to `seq`.
    pub fn channel_delivered(&self, channel: &str, seq: u64) {
        self.channel_delivered_seq
            .get_or_create(&channel_labels(channel))
            .set(gauge_value(seq));
    }

    /// Counts a failed delivery.
    pub fn channel_error(&self, channel: &str) {
        self.channel_errors
            .get_or_create(&channel_labels(channel))
            .inc();
    }

    /// Counts a DNS Push session opening (`+1`) or closing (`-1`).
    pub fn push_session(&self, channel: &str, delta: i64) {
        self.push_sessions
            .get_or_create(&channel_labels(channel))
            .inc_by(delta);
    }

    /// Counts a DNS Push session dropped because its client did not read.
    pub fn push_dropped(&self, channel: &str, reason: &str) {
        self.push_dropped
            .get_or_create(&DropLabels {
                channel: channel.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a NOTIFY that `target` left unanswered through every retry.
    pub fn notify_unanswered(&self, channel: &str, target: &str) {
        self.notify_unanswered
            .get_or_create(&NotifyTargetLabels {
                channel: channel.to_string(),
                target: target.to_string(),
            })
            .inc();
    }

    /// Every metric as OpenMetrics text (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

fn channel_labels(channel: &str) -> ChannelLabels {
    ChannelLabels {
        channel: channel.to_string(),
    }
}

/// A `seq` as a gauge value; no journal reaches `i64::MAX`.
fn gauge_value(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::ConditionId;
    use crate::signal::{Args, SignalState};

    fn current(server: &str, condition: ConditionId, subject: &str) -> CurrentCondition {
        CurrentCondition {
            server: server.into(),
            condition,
            subject: Some(subject.into()),
            since: chrono::Utc::now(),
            args: Args::new(),
            source: "probe".into(),
            seq: 1,
        }
    }

    #[test]
    fn text_has_every_metric() {
        let metrics = Metrics::new();
        metrics.signal(&Signal {
            seq: 42,
            time: chrono::Utc::now(),
            node: "ams1".into(),
            server: "knot".into(),
            condition: ConditionId::ZoneReady,
            subject: Some("example.net.".into()),
            state: SignalState::Met,
            args: Args::new(),
            source: "probe".into(),
        });
        metrics.probe("knot", "answered", 0.002);
        metrics.channel_delivered("log", 42);
        metrics.channel_error("log");
        let text = metrics.encode();
        for line in [
            r#"dns_oops_signals_total{server="knot",condition="zone-ready",state="met"} 1"#,
            r#"dns_oops_probes_total{server="knot",outcome="answered"} 1"#,
            r#"dns_oops_probe_duration_seconds_count{server="knot"} 1"#,
            "dns_oops_journal_seq 42",
            r#"dns_oops_channel_delivered_seq{channel="log"} 42"#,
            r#"dns_oops_channel_errors_total{channel="log"} 1"#,
            "# EOF",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
    }

    #[test]
    fn met_counts_drop_to_zero_when_cleared() {
        let metrics = Metrics::new();
        metrics.set_current(&[
            current("knot", ConditionId::ZoneReady, "a."),
            current("knot", ConditionId::ZoneReady, "b."),
            current("nsd", ConditionId::ZoneReady, "a."),
        ]);
        let text = metrics.encode();
        assert!(
            text.contains(r#"dns_oops_conditions_met{server="knot",condition="zone-ready"} 2"#),
            "{text}"
        );
        metrics.set_current(&[current("knot", ConditionId::ZoneReady, "b.")]);
        let text = metrics.encode();
        assert!(
            text.contains(r#"dns_oops_conditions_met{server="knot",condition="zone-ready"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dns_oops_conditions_met{server="nsd",condition="zone-ready"} 0"#),
            "{text}"
        );
    }
}
