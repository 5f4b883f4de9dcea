//! The traffic conditions of one server, from counts per second: `query-rate-high`,
//! `query-rate-rising` and `extended-error`. Pure: the caller feeds counts for the
//! current second and calls [`Traffic::evaluate`] once a second has ended, with the number
//! of that second; no clock, no I/O, so tests drive it with plain numbers.
//!
//! * `query-rate-high` — the mean query rate over the last `window` seconds is at least
//!   `threshold` queries per second. Argument `qps` (rounded to 0.1).
//! * `query-rate-rising` — the slope of the least-squares line through the per-second query
//!   counts of the last `window` seconds is at least `threshold` queries per second per
//!   second. Argument `slope`.
//! * `extended-error` — per zone (the longest configured zone the response's question name
//!   falls under, `.` when none does): some watched info-code was carried by responses at
//!   a mean rate of at least `rate` per second over the last `window` seconds. Arguments of
//!   the code with the most responses in the window: `code`, `text` (its RFC 8914 registry
//!   name), `count` (responses with it in the window); and `codes`, every watched code over
//!   the rate, comma-separated.
//!
//! Hysteresis: a met condition clears only once its value falls below `clear-below`
//! (by default 90 % of the threshold), so a rate that hovers at the threshold does not
//! flap; the server's `hold` applies on top, in the engine. A window is evaluated only
//! once it is full: seconds before the first frame of the stream are not history, so a
//! collector that starts while the server is busy sees no false rise.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::condition::ConditionId;
use crate::dnstap::dns::ede_name;
use crate::signal::Args;

/// `query-rate-high` or `query-rate-rising`: a threshold over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRule {
    pub threshold: f64,
    /// Seconds, at least 1 (2 for a slope).
    pub window: u32,
    /// A met condition clears below this value.
    pub clear_below: f64,
}

/// `extended-error`: which info-codes, at what rate.
#[derive(Debug, Clone, PartialEq)]
pub struct EdeRule {
    /// Empty: every code.
    pub codes: Vec<u16>,
    /// Responses per second, per code and zone.
    pub rate: f64,
    pub window: u32,
    pub clear_below: f64,
}

impl EdeRule {
    pub fn watches(&self, code: u16) -> bool {
        self.codes.is_empty() || self.codes.contains(&code)
    }
}

/// The rules of one dnstap source; `None` disables a condition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrafficRules {
    pub query_rate_high: Option<RateRule>,
    pub query_rate_rising: Option<RateRule>,
    pub extended_error: Option<EdeRule>,
    /// Zones EDE responses are attributed to (lowercase, trailing dot).
    pub zones: Vec<String>,
}

/// A condition that changed, for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficChange {
    pub condition: ConditionId,
    pub subject: Option<String>,
    pub met: bool,
    pub args: Args,
}

/// Counts of one second.
#[derive(Debug, Clone, Default)]
struct Second {
    queries: u64,
    /// (zone index or `None` for `.`, info-code) → responses.
    ede: BTreeMap<(Option<usize>, u16), u64>,
}

/// The state of one server's traffic conditions.
#[derive(Debug)]
pub struct Traffic {
    rules: TrafficRules,
    /// Completed seconds, newest last, at most the longest window.
    history: VecDeque<Second>,
    /// The second counts are being added to.
    current: Second,
    /// The number of the current second; `None` before the first count.
    current_second: Option<u64>,
    /// Seconds of history since the first count.
    seen: u64,
    rate_high: bool,
    rising: bool,
    /// Zones (index, `None` = `.`) for which `extended-error` is met.
    ede_met: BTreeSet<Option<usize>>,
}

impl Traffic {
    pub fn new(rules: TrafficRules) -> Traffic {
        Traffic {
            rules,
            history: VecDeque::new(),
            current: Second::default(),
            current_second: None,
            seen: 0,
            rate_high: false,
            rising: false,
            ede_met: BTreeSet::new(),
        }
    }

    pub fn rules(&self) -> &TrafficRules {
        &self.rules
    }

    fn longest_window(&self) -> usize {
        let r = &self.rules;
        [
            r.query_rate_high.as_ref().map(|x| x.window),
            r.query_rate_rising.as_ref().map(|x| x.window),
            r.extended_error.as_ref().map(|x| x.window),
            Some(1),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(1) as usize
    }

    /// Moves the current second forward to `second`, closing the seconds in between
    /// (empty ones count as zero).
    fn advance(&mut self, second: u64) {
        let Some(current) = self.current_second else {
            self.current_second = Some(second);
            return;
        };
        if second <= current {
            return;
        }
        let keep = self.longest_window();
        let gap = (second - current).min(keep as u64 + 1);
        for i in 0..gap {
            let closed = if i == 0 {
                std::mem::take(&mut self.current)
            } else {
                Second::default()
            };
            self.history.push_back(closed);
            self.seen += 1;
            while self.history.len() > keep {
                self.history.pop_front();
            }
        }
        if second - current > gap {
            self.seen += second - current - gap;
        }
        self.current_second = Some(second);
    }

    /// Counts `n` queries in `second`.
    pub fn queries(&mut self, second: u64, n: u64) {
        self.advance(second);
        self.current.queries += n;
    }

    /// Counts a response with info-code `code` for the zone `name` falls under.
    pub fn extended_error(&mut self, second: u64, name: &str, code: u16) {
        let Some(rule) = &self.rules.extended_error else {
            return;
        };
        if !rule.watches(code) {
            return;
        }
        let zone = self.zone_of(name);
        self.advance(second);
        *self.current.ede.entry((zone, code)).or_insert(0) += 1;
    }

    /// The longest configured zone `name` (lowercase, trailing dot) is in or equal to.
    fn zone_of(&self, name: &str) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, zone) in self.rules.zones.iter().enumerate() {
            let inside = name == zone
                || zone == "."
                || (name.len() > zone.len()
                    && name.ends_with(zone.as_str())
                    && name.as_bytes()[name.len() - zone.len() - 1] == b'.');
            if inside && best.is_none_or(|b| self.rules.zones[b].len() < zone.len()) {
                best = Some(i);
            }
        }
        best
    }

    fn zone_name(&self, zone: Option<usize>) -> String {
        zone.map_or_else(|| ".".to_string(), |i| self.rules.zones[i].clone())
    }

    /// The last `window` complete seconds, oldest first, if that many were seen.
    fn window(&self, window: u32) -> Option<impl Iterator<Item = &Second>> {
        let window = window as usize;
        if self.seen < window as u64 || self.history.len() < window {
            return None;
        }
        Some(self.history.iter().skip(self.history.len() - window))
    }

    /// The mean query rate over `window` complete seconds.
    pub fn query_rate(&self, window: u32) -> Option<f64> {
        let total: u64 = self.window(window)?.map(|s| s.queries).sum();
        Some(total as f64 / f64::from(window))
    }

    /// The least-squares slope of the query counts over `window` complete seconds, in
    /// queries per second per second.
    pub fn query_slope(&self, window: u32) -> Option<f64> {
        if window < 2 {
            return None;
        }
        let counts: Vec<f64> = self.window(window)?.map(|s| s.queries as f64).collect();
        let n = counts.len() as f64;
        let mean_x = (n - 1.0) / 2.0;
        let mean_y = counts.iter().sum::<f64>() / n;
        let (mut num, mut den) = (0.0, 0.0);
        for (x, y) in counts.iter().enumerate() {
            let dx = x as f64 - mean_x;
            num += dx * (y - mean_y);
            den += dx * dx;
        }
        Some(num / den)
    }

    /// Closes every second before `second` and evaluates the conditions on the complete
    /// seconds; returns the conditions that changed.
    pub fn evaluate(&mut self, second: u64) -> Vec<TrafficChange> {
        if self.current_second.is_none() {
            return Vec::new();
        }
        self.advance(second);
        let mut changes = Vec::new();
        if let Some(rule) = self.rules.query_rate_high.clone()
            && let Some(qps) = self.query_rate(rule.window)
            && let Some(met) = band(self.rate_high, qps, &rule)
        {
            self.rate_high = met;
            changes.push(TrafficChange {
                condition: ConditionId::QueryRateHigh,
                subject: None,
                met,
                args: Args::from([("qps".to_string(), round1(qps).into())]),
            });
        }
        if let Some(rule) = self.rules.query_rate_rising.clone()
            && let Some(slope) = self.query_slope(rule.window)
            && let Some(met) = band(self.rising, slope, &rule)
        {
            self.rising = met;
            changes.push(TrafficChange {
                condition: ConditionId::QueryRateRising,
                subject: None,
                met,
                args: Args::from([("slope".to_string(), round1(slope).into())]),
            });
        }
        if let Some(rule) = self.rules.extended_error.clone() {
            self.evaluate_ede(&rule, &mut changes);
        }
        changes
    }

    fn evaluate_ede(&mut self, rule: &EdeRule, changes: &mut Vec<TrafficChange>) {
        let Some(window) = self.window(rule.window) else {
            return;
        };
        let mut counts: BTreeMap<(Option<usize>, u16), u64> = BTreeMap::new();
        for second in window {
            for (key, n) in &second.ede {
                *counts.entry(*key).or_insert(0) += n;
            }
        }
        let seconds = f64::from(rule.window);
        let mut zones: BTreeSet<Option<usize>> = counts.keys().map(|(z, _)| *z).collect();
        zones.extend(self.ede_met.iter().copied());
        for zone in zones {
            let met_now = self.ede_met.contains(&zone);
            let limit = if met_now { rule.clear_below } else { rule.rate };
            let mut over: Vec<(u16, u64)> = counts
                .iter()
                .filter(|((z, _), n)| *z == zone && **n as f64 / seconds >= limit)
                .map(|((_, code), n)| (*code, *n))
                .collect();
            let met = !over.is_empty();
            if met == met_now {
                continue;
            }
            let mut args = Args::new();
            if met {
                self.ede_met.insert(zone);
                over.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let (code, count) = over[0];
                args.insert("code".into(), code.into());
                args.insert("text".into(), ede_name(code).unwrap_or("Unassigned").into());
                args.insert("count".into(), count.into());
                let mut codes: Vec<u16> = over.iter().map(|(c, _)| *c).collect();
                codes.sort_unstable();
                let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
                args.insert("codes".into(), codes.join(",").into());
            } else {
                self.ede_met.remove(&zone);
            }
            changes.push(TrafficChange {
                condition: ConditionId::ExtendedError,
                subject: Some(self.zone_name(zone)),
                met,
                args,
            });
        }
    }
}

/// The new state of a level condition with a band, or `None` when it stays.
fn band(met: bool, value: f64, rule: &RateRule) -> Option<bool> {
    match met {
        false if value >= rule.threshold => Some(true),
        true if value < rule.clear_below => Some(false),
        _ => None,
    }
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(threshold: f64, window: u32) -> Option<RateRule> {
        Some(RateRule {
            threshold,
            window,
            clear_below: threshold * 0.9,
        })
    }

    fn feed(t: &mut Traffic, from: u64, per_second: &[u64]) -> Vec<(u64, TrafficChange)> {
        let mut out = Vec::new();
        for (i, n) in per_second.iter().enumerate() {
            let second = from + i as u64;
            out.extend(t.evaluate(second).into_iter().map(|c| (second, c)));
            t.queries(second, *n);
        }
        out
    }

    #[test]
    fn rate_high_meets_over_the_threshold_and_clears_below_the_band() {
        let mut t = Traffic::new(TrafficRules {
            query_rate_high: rate(100.0, 2),
            ..Default::default()
        });
        let changes = feed(&mut t, 1000, &[50, 50, 140, 160, 95, 95, 85, 85, 85]);
        let brief: Vec<(u64, bool, f64)> = changes
            .iter()
            .map(|(s, c)| (*s, c.met, c.args["qps"].as_f64().unwrap()))
            .collect();
        // 1004: mean of 140 and 160; 95 stays met (the band reaches down to 90), and so
        // does the mean of 95 and 85; 85 clears.
        assert_eq!(brief, vec![(1004, true, 150.0), (1008, false, 85.0)]);
    }

    #[test]
    fn no_verdict_before_the_window_is_full_and_gaps_are_zero() {
        let mut t = Traffic::new(TrafficRules {
            query_rate_high: rate(10.0, 3),
            ..Default::default()
        });
        t.queries(5, 100);
        assert!(t.evaluate(6).is_empty(), "one second of three");
        assert!(t.evaluate(7).is_empty(), "two seconds of three");
        let changes = t.evaluate(8);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].met);
        // Silence for a long while: the gap counts as zero queries.
        let changes = t.evaluate(100);
        assert_eq!(changes.len(), 1);
        assert!(!changes[0].met);
        assert_eq!(t.query_rate(3), Some(0.0));
    }

    #[test]
    fn slope_is_queries_per_second_per_second() {
        let mut t = Traffic::new(TrafficRules {
            query_rate_rising: rate(40.0, 4),
            ..Default::default()
        });
        let changes = feed(&mut t, 0, &[100, 150, 200, 250, 250, 250, 250, 250]);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].0, 4);
        assert_eq!(changes[0].1.args["slope"], 50.0);
        assert!(changes[1].1.met.eq(&false));
        assert_eq!(t.query_slope(4), Some(0.0));
    }

    #[test]
    fn extended_errors_per_zone_with_the_dominant_code() {
        let mut t = Traffic::new(TrafficRules {
            extended_error: Some(EdeRule {
                codes: vec![6, 22],
                rate: 1.0,
                window: 2,
                clear_below: 0.5,
            }),
            zones: vec!["example.test.".into(), "sub.example.test.".into()],
            ..Default::default()
        });
        for _ in 0..3 {
            t.extended_error(10, "www.sub.example.test.", 6);
            t.extended_error(10, "other.test.", 22);
            t.extended_error(10, "www.example.test.", 18); // not watched
        }
        t.extended_error(11, "x.sub.example.test.", 22);
        t.extended_error(11, "x.sub.example.test.", 6);
        let mut changes = t.evaluate(12);
        changes.sort_by(|a, b| a.subject.cmp(&b.subject));
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].subject.as_deref(), Some("."));
        assert_eq!(changes[0].args["code"], 22);
        assert_eq!(changes[1].subject.as_deref(), Some("sub.example.test."));
        assert_eq!(changes[1].args["code"], 6);
        assert_eq!(changes[1].args["text"], "DNSSEC Bogus");
        assert_eq!(changes[1].args["count"], 4);
        assert_eq!(changes[1].args["codes"], "6");
        // The root zone had nothing in second 11: it clears first; the sub-zone's code 6 is
        // still at 0.5 per second, inside the band, and clears a second later.
        let changes = t.evaluate(13);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            (changes[0].subject.as_deref(), changes[0].met),
            (Some("."), false)
        );
        let changes = t.evaluate(14);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            (changes[0].subject.as_deref(), changes[0].met),
            (Some("sub.example.test."), false)
        );
    }
}
