//! [`Freshness`]: a secondary's zone judged from outside by the timers in its SOA
//! (RFC 1035 §3.3.13), the way the secondary itself must follow them.
//!
//! "From outside" means from what anyone may ask the server and its primaries, nothing
//! more: each poll asks the watched server for the zone's SOA with the EDNS EXPIRE option
//! (RFC 7314) and, when primaries are configured, asks them for their serial. From that:
//!
//! * **the last successful refresh** — when the server answers EXPIRE (Knot, BIND), it is
//!   `now − (SOA expire − EXPIRE)`: the server's own clock, exact even for refreshes that
//!   happened between polls. Without EXPIRE it is the last poll at which the server's
//!   serial was at least the highest serial a primary answered (RFC 1982 arithmetic). A
//!   zone never seen current counts from the first poll that saw its SOA.
//! * **`zone-refresh-failed`** (tries before met = `tries`): the secondary tries a refresh
//!   `refresh` seconds after the last success and again every `retry` seconds. A try counts
//!   as failed once it is `grace` overdue without a newer success. The tries are also
//!   counted from the first poll that saw the server's serial lag a primary's, so a
//!   secondary that keeps refreshing from a stale source is caught. The argument
//!   `error` says why (the primaries' errors, the lag, or the server's silence).
//! * **`zone-expiring`** (period before expiry, 0 = at expiry): met from `expire − period`
//!   after the last successful refresh; argument `expires-at`.
//!
//! When the server does not answer, the judgement goes on from what was last known: a
//! secondary that cannot be asked is not therefore fresh. A zone for which neither EXPIRE
//! nor a primary's serial is available (a primary server without `primaries`) cannot be
//! judged, and nothing is said about it.
//!
//! Times are milliseconds since the Unix epoch; the state machine is pure, so tests run it
//! on a fake clock.

use super::wire::Soa;

/// What one poll saw of the watched server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSoa {
    /// An authoritative answer with the zone's SOA, and the EXPIRE option if it was there.
    Answer { soa: Soa, expire: Option<u32> },
    /// No usable answer, and why.
    Failed(String),
}

/// One poll: the server's answer and each primary's serial or error, named by address.
#[derive(Debug, Clone)]
pub struct Poll {
    pub now_ms: i64,
    pub server: ServerSoa,
    pub primaries: Vec<(String, Result<u32, String>)>,
}

/// What the conditions are after a poll or at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// `Some((tries, error))` when `zone-refresh-failed` is met.
    pub refresh_failed: Option<(u32, String)>,
    /// When the zone expires, if known.
    pub expires_at_ms: Option<i64>,
    /// Whether `zone-expiring` is met.
    pub expiring: bool,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Freshness {
    tries: u32,
    period_ms: i64,
    grace_ms: i64,
    timers: Option<Soa>,
    last_refresh_ms: Option<i64>,
    lagging_since_ms: Option<i64>,
    /// Whether anything (EXPIRE or a primary's serial) can tell when the zone was current.
    judgeable: bool,
    last_error: String,
}

impl Freshness {
    /// `tries` ≥ 1; `period_ms` before expiry for `zone-expiring`; `grace_ms` for a try to
    /// complete before it counts as failed.
    pub fn new(tries: u32, period_ms: i64, grace_ms: i64) -> Freshness {
        Freshness {
            tries: tries.max(1),
            period_ms,
            grace_ms,
            timers: None,
            last_refresh_ms: None,
            lagging_since_ms: None,
            judgeable: false,
            last_error: String::new(),
        }
    }

    /// Takes in a poll and judges at its time; `None` when the zone cannot be judged (yet).
    pub fn observe(&mut self, poll: &Poll) -> Option<Judgement> {
        let now = poll.now_ms;
        let best_primary = poll
            .primaries
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().copied())
            .reduce(|a, b| if serial_lt(a, b) { b } else { a });
        let primary_errors: Vec<String> = poll
            .primaries
            .iter()
            .filter_map(|(at, r)| r.as_ref().err().map(|e| format!("primary {at}: {e}")))
            .collect();
        match &poll.server {
            ServerSoa::Answer { soa, expire } => {
                self.timers = Some(*soa);
                if let Some(remaining) = expire {
                    let since = i64::from(soa.expire.saturating_sub(*remaining)) * 1000;
                    self.last_refresh_ms = Some(now - since);
                    self.judgeable = true;
                }
                match best_primary {
                    Some(primary) if serial_lt(soa.serial, primary) => {
                        self.lagging_since_ms.get_or_insert(now);
                        self.judgeable = true;
                        self.last_error =
                            format!("serial {} lags the primary's {primary}", soa.serial);
                    }
                    Some(_) => {
                        self.lagging_since_ms = None;
                        self.judgeable = true;
                        if expire.is_none() {
                            self.last_refresh_ms = Some(now);
                        }
                        self.last_error = primary_errors.join("; ");
                    }
                    None if !poll.primaries.is_empty() => {
                        self.judgeable = true;
                        self.last_error = primary_errors.join("; ");
                    }
                    None => self.last_error.clear(),
                }
                self.last_refresh_ms.get_or_insert(now);
            }
            ServerSoa::Failed(error) => {
                self.last_error = format!("server: {error}");
            }
        }
        self.judge(now)
    }

    /// The conditions at `now_ms` from what is known.
    pub fn judge(&self, now_ms: i64) -> Option<Judgement> {
        if !self.judgeable {
            return None;
        }
        let timers = self.timers?;
        let last = self.last_refresh_ms?;
        let mut tries = self.failed_tries(&timers, last, now_ms);
        if let Some(since) = self.lagging_since_ms {
            tries = tries.max(self.failed_tries(&timers, since, now_ms));
        }
        let expires_at_ms = last.saturating_add(i64::from(timers.expire) * 1000);
        let refresh_failed = (tries >= self.tries).then(|| {
            let error = if self.last_error.is_empty() {
                format!(
                    "no successful refresh for {} s (SOA refresh {} s, retry {} s)",
                    (now_ms - last) / 1000,
                    timers.refresh,
                    timers.retry
                )
            } else {
                self.last_error.clone()
            };
            (tries, error)
        });
        Some(Judgement {
            refresh_failed,
            expires_at_ms: Some(expires_at_ms),
            expiring: now_ms >= expires_at_ms.saturating_sub(self.period_ms),
        })
    }

    /// The refresh tries failed by `now` since a success at `since`.
    fn failed_tries(&self, timers: &Soa, since: i64, now: i64) -> u32 {
        let first = since
            .saturating_add(i64::from(timers.refresh) * 1000)
            .saturating_add(self.grace_ms);
        if now < first {
            return 0;
        }
        let retry = i64::from(timers.retry.max(1)) * 1000;
        let more = (now - first) / retry;
        u32::try_from(1 + more).unwrap_or(u32::MAX)
    }

    /// The next moment the judgement can change without a poll: the next failed try or the
    /// start of the expiring period.
    pub fn next_change_ms(&self, now_ms: i64) -> Option<i64> {
        let timers = self.timers?;
        let last = self.last_refresh_ms?;
        let expiring_from = last
            .saturating_add(i64::from(timers.expire) * 1000)
            .saturating_sub(self.period_ms);
        let first = last
            .saturating_add(i64::from(timers.refresh) * 1000)
            .saturating_add(self.grace_ms);
        let retry = i64::from(timers.retry.max(1)) * 1000;
        let next_try = if now_ms < first {
            first
        } else {
            first.saturating_add(((now_ms - first) / retry + 1).saturating_mul(retry))
        };
        [expiring_from, next_try]
            .into_iter()
            .filter(|&t| t > now_ms)
            .min()
    }
}

/// `a < b` in serial-number arithmetic (RFC 1982); values exactly 2³¹ apart are unordered
/// and count as not less.
pub fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn soa(serial: u32) -> Soa {
        Soa {
            serial,
            refresh: 10,
            retry: 5,
            expire: 100,
            minimum: 1,
        }
    }

    fn poll(now_s: i64, server: ServerSoa, primaries: &[Result<u32, &str>]) -> Poll {
        Poll {
            now_ms: now_s * S,
            server,
            primaries: primaries
                .iter()
                .map(|r| ("192.0.2.1:53".to_string(), r.map_err(str::to_string)))
                .collect(),
        }
    }

    fn answer(serial: u32, expire: Option<u32>) -> ServerSoa {
        ServerSoa::Answer {
            soa: soa(serial),
            expire,
        }
    }

    #[test]
    fn serial_arithmetic() {
        assert!(serial_lt(1, 2));
        assert!(!serial_lt(2, 1));
        assert!(serial_lt(u32::MAX, 0), "wraps");
        assert!(!serial_lt(5, 5));
        assert!(!serial_lt(0, 1 << 31), "undefined counts as not less");
    }

    #[test]
    fn expire_option_drives_both_conditions() {
        let mut f = Freshness::new(2, 30 * S, S);
        // Refreshed 2 s before the first poll.
        let j = f.observe(&poll(1000, answer(1, Some(98)), &[])).unwrap();
        assert_eq!(j.refresh_failed, None);
        assert!(!j.expiring);
        assert_eq!(j.expires_at_ms, Some(1098 * S));
        // First try due at 998 + 10 + 1 s, the second 5 s later: met at 1014.
        assert_eq!(f.judge(1013 * S).unwrap().refresh_failed, None);
        let (tries, error) = f.judge(1014 * S).unwrap().refresh_failed.unwrap();
        assert_eq!(tries, 2);
        assert!(error.contains("no successful refresh"), "{error}");
        assert!(!f.judge(1067 * S).unwrap().expiring);
        assert!(f.judge(1068 * S).unwrap().expiring);
        assert_eq!(f.next_change_ms(1060 * S), Some(1064 * S), "the next try");
        assert_eq!(
            f.next_change_ms(1066 * S),
            Some(1068 * S),
            "the expiring period"
        );
        // The server refreshed again: everything clears.
        let j = f.observe(&poll(1070, answer(1, Some(100)), &[])).unwrap();
        assert_eq!(j.refresh_failed, None);
        assert!(!j.expiring);
    }

    #[test]
    fn primaries_without_expire() {
        let mut f = Freshness::new(1, 0, 0);
        assert!(f.observe(&poll(0, answer(3, None), &[Ok(3)])).is_some());
        // The primary cannot be reached: the server's copy ages.
        let j = f
            .observe(&poll(9, answer(3, None), &[Err("timed out")]))
            .unwrap();
        assert_eq!(j.refresh_failed, None);
        let j = f
            .observe(&poll(10, answer(3, None), &[Err("timed out")]))
            .unwrap();
        let (_, error) = j.refresh_failed.unwrap();
        assert!(error.contains("timed out"), "{error}");
        assert!(
            f.judge(100 * S).unwrap().expiring,
            "at expiry with period 0"
        );
        assert!(!f.judge(99 * S).unwrap().expiring);
        // Current again.
        let j = f.observe(&poll(101, answer(4, None), &[Ok(4)])).unwrap();
        assert_eq!(j.refresh_failed, None);
        assert!(!j.expiring);
    }

    #[test]
    fn a_lagging_serial_fails_even_with_a_fresh_expire() {
        let mut f = Freshness::new(1, 0, 0);
        f.observe(&poll(0, answer(3, Some(100)), &[Ok(4)]));
        let j = f
            .observe(&poll(10, answer(3, Some(100)), &[Ok(4)]))
            .unwrap();
        let (_, error) = j.refresh_failed.unwrap();
        assert!(error.contains("lags"), "{error}");
        assert!(!j.expiring);
    }

    #[test]
    fn silence_of_the_server_does_not_make_it_fresh() {
        let mut f = Freshness::new(1, 10 * S, 0);
        f.observe(&poll(0, answer(1, Some(100)), &[]));
        let j = f
            .observe(&poll(95, ServerSoa::Failed("SERVFAIL".into()), &[]))
            .unwrap();
        assert!(j.expiring);
        assert!(j.refresh_failed.unwrap().1.contains("SERVFAIL"));
    }

    #[test]
    fn nothing_to_judge_by() {
        let mut f = Freshness::new(1, 0, 0);
        assert_eq!(f.observe(&poll(0, answer(1, None), &[])), None);
        assert_eq!(f.judge(1_000_000 * S), None);
        let mut f = Freshness::new(1, 0, 0);
        assert_eq!(
            f.observe(&poll(0, ServerSoa::Failed("x".into()), &[Ok(1)])),
            None
        );
    }
}
