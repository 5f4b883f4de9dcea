//! One policy's route state and its hold-down: pure, driven with explicit instants.
//!
//! ```text
//!   wanted (from the policy)  ──▶  intended (what dns-oops announces; journal)  ──▶  daemon
//!                          hold-down                                       driver, when it differs
//! ```
//!
//! A change that makes the node *less* attractive — a withdraw, or more prepending — is
//! applied at once: a broken node must leave the anycast set now. A change that makes it
//! *more* attractive — an announce, or less prepending — waits until `hold-down` has passed
//! since the last change, so a flapping condition withdraws at once but comes back at most
//! once per hold-down. If the wish turns back while waiting, nothing happens.
//!
//! **Dampening** (optional, after RFC 2439): every time the conditions turn from "announce"
//! to "withdraw" (not a drain, not a shutdown; also while suppressed) a penalty of 1 is added
//! that halves every `half-life`. When the penalty reaches `suppress`, the route stays
//! withdrawn — announces wait — until it has decayed below `reuse`; the penalty is capped so
//! that no suppression lasts longer than `max-suppress`. A node whose server keeps crashing
//! is kept out of the anycast set instead of pulling traffic in and dropping it at every
//! restart. The penalty lives in memory: a restart of dns-oops forgives it.
//!
//! What the daemon has is tracked apart ([`PolicyMachine::in_daemon`]): unknown after a
//! (re)connection until the driver reports it, so a BGP daemon that restarted is re-told
//! the intended state, and a dns-oops that restarted finds the route already there and
//! sends nothing.

use std::fmt;
use std::time::{Duration, Instant};

/// What is announced for a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteState {
    Withdrawn,
    /// With this many AS-path prepends (0: none).
    Announced {
        prepend: u8,
    },
}

impl RouteState {
    /// Higher is more attractive to the rest of the network.
    fn attraction(self) -> u16 {
        match self {
            RouteState::Withdrawn => 0,
            RouteState::Announced { prepend } => 256 - u16::from(prepend),
        }
    }
}

impl fmt::Display for RouteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteState::Withdrawn => f.write_str("withdrawn"),
            RouteState::Announced { prepend: 0 } => f.write_str("announced"),
            RouteState::Announced { prepend } => write!(f, "announced with {prepend} prepends"),
        }
    }
}

/// Route flap dampening settings; penalties count withdraws (1 each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dampening {
    /// The penalty halves every `half_life`.
    pub half_life: Duration,
    /// Suppressed from this penalty on.
    pub suppress: f64,
    /// Announced again once the penalty is below this.
    pub reuse: f64,
    /// The longest suppression.
    pub max_suppress: Duration,
}

impl Dampening {
    /// The penalty that decays to `reuse` in exactly `max_suppress`.
    fn ceiling(&self) -> f64 {
        self.reuse * 2f64.powf(self.max_suppress.as_secs_f64() / self.half_life.as_secs_f64())
    }
}

/// A penalty and when it was last brought up to date.
#[derive(Debug, Clone, Copy)]
struct Penalty {
    value: f64,
    at: Instant,
}

/// One policy's intended state, its hold-down, and what its daemon has.
#[derive(Debug, Clone)]
pub struct PolicyMachine {
    hold_down: Duration,
    intended: RouteState,
    /// When `intended` last changed in this run; `None`: not in this run.
    changed_at: Option<Instant>,
    /// What the daemon has, as far as known.
    pub in_daemon: Option<RouteState>,
    dampening: Option<Dampening>,
    penalty: Option<Penalty>,
    suppressed: bool,
    /// The policy's last wish (what `want` was last asked).
    wish: RouteState,
}

impl PolicyMachine {
    /// Starts from what the journal says was announced (withdrawn when it says nothing).
    pub fn new(hold_down: Duration, intended: RouteState) -> PolicyMachine {
        PolicyMachine {
            hold_down,
            intended,
            changed_at: None,
            in_daemon: None,
            dampening: None,
            penalty: None,
            suppressed: false,
            wish: intended,
        }
    }

    /// The same, with route flap dampening.
    pub fn with_dampening(mut self, dampening: Option<Dampening>) -> PolicyMachine {
        self.dampening = dampening;
        self
    }

    /// The penalty at `now`, decayed.
    fn penalty_at(&self, now: Instant) -> f64 {
        match (self.penalty, self.dampening) {
            (Some(p), Some(d)) => {
                let elapsed = now.saturating_duration_since(p.at).as_secs_f64();
                p.value * 0.5f64.powf(elapsed / d.half_life.as_secs_f64())
            }
            _ => 0.0,
        }
    }

    /// Whether announces are suppressed at `now` (the penalty is still at or above
    /// `reuse` after having reached `suppress`).
    pub fn suppressed(&mut self, now: Instant) -> bool {
        if self.suppressed
            && let Some(d) = self.dampening
            && self.penalty_at(now) < d.reuse
        {
            self.suppressed = false;
        }
        self.suppressed
    }

    /// Counts a flap: the conditions withdrew an announced route.
    fn flap(&mut self, now: Instant) {
        let Some(d) = self.dampening else { return };
        let value = (self.penalty_at(now) + 1.0).min(d.ceiling());
        self.penalty = Some(Penalty { value, at: now });
        if value >= d.suppress {
            self.suppressed = true;
        }
    }

    /// When a suppressed route may be announced again.
    fn reuse_at(&self) -> Option<Instant> {
        let (Some(p), Some(d)) = (self.penalty, self.dampening) else {
            return None;
        };
        if !self.suppressed || p.value < d.reuse {
            return None;
        }
        let halvings = (p.value / d.reuse).log2();
        Some(p.at + d.half_life.mul_f64(halvings) + Duration::from_millis(1))
    }

    pub fn intended(&self) -> RouteState {
        self.intended
    }

    /// Takes the policy's wish into account; returns the new intended state when it
    /// changes now. A wish held back by the hold-down is asked again at
    /// [`PolicyMachine::deadline`].
    ///
    /// `flap` says whether a withdraw counts toward dampening (the conditions caused it,
    /// not a drain or a shutdown).
    pub fn want(&mut self, wanted: RouteState, now: Instant, flap: bool) -> Option<RouteState> {
        // Flaps are counted on the wish, as RFC 2439 counts them on the route received: a
        // route that keeps flapping while suppressed stays suppressed longer.
        let before = std::mem::replace(&mut self.wish, wanted);
        if flap && wanted == RouteState::Withdrawn && before != RouteState::Withdrawn {
            self.flap(now);
        }
        if wanted == self.intended {
            return None;
        }
        let worse = wanted.attraction() < self.intended.attraction();
        let held = self.changed_at.is_some_and(|at| now < at + self.hold_down);
        if !worse && (held || (self.intended == RouteState::Withdrawn && self.suppressed(now))) {
            return None;
        }
        self.intended = wanted;
        self.changed_at = Some(now);
        Some(wanted)
    }

    /// When a held-back wish for `wanted` may be applied.
    pub fn deadline(&self, wanted: RouteState) -> Option<Instant> {
        if wanted == self.intended {
            return None;
        }
        let hold = self.changed_at.map(|at| at + self.hold_down);
        let reuse = (self.intended == RouteState::Withdrawn)
            .then(|| self.reuse_at())
            .flatten();
        hold.max(reuse)
    }

    /// The state to send to the daemon, when it does not have it (or is not known to).
    pub fn to_send(&self) -> Option<RouteState> {
        (self.in_daemon != Some(self.intended)).then_some(self.intended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANNOUNCED: RouteState = RouteState::Announced { prepend: 0 };
    const PREPENDED: RouteState = RouteState::Announced { prepend: 3 };
    const HOLD: Duration = Duration::from_secs(5);

    #[test]
    fn the_first_change_is_at_once() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(HOLD, RouteState::Withdrawn);
        assert_eq!(m.to_send(), Some(RouteState::Withdrawn));
        assert_eq!(m.want(ANNOUNCED, t0, true), Some(ANNOUNCED));
        assert_eq!(m.to_send(), Some(ANNOUNCED));
        m.in_daemon = Some(ANNOUNCED);
        assert_eq!(m.to_send(), None);
        assert_eq!(m.want(ANNOUNCED, t0, true), None);
    }

    #[test]
    fn withdraw_is_at_once_and_announce_waits_for_the_hold_down() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(HOLD, RouteState::Withdrawn);
        m.want(ANNOUNCED, t0, true);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            m.want(RouteState::Withdrawn, t1, true),
            Some(RouteState::Withdrawn)
        );
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(m.want(ANNOUNCED, t2, true), None);
        assert_eq!(m.deadline(ANNOUNCED), Some(t1 + HOLD));
        assert_eq!(m.want(ANNOUNCED, t1 + HOLD, true), Some(ANNOUNCED));
    }

    #[test]
    fn more_prepending_is_at_once_less_waits() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(HOLD, ANNOUNCED);
        assert_eq!(m.want(PREPENDED, t0, true), Some(PREPENDED));
        assert_eq!(m.want(ANNOUNCED, t0 + Duration::from_secs(1), true), None);
        assert_eq!(m.want(ANNOUNCED, t0 + HOLD, true), Some(ANNOUNCED));
    }

    #[test]
    fn a_wish_that_turns_back_while_held_changes_nothing() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(HOLD, ANNOUNCED);
        m.want(RouteState::Withdrawn, t0, true);
        assert_eq!(m.want(ANNOUNCED, t0 + Duration::from_secs(1), true), None);
        assert_eq!(m.deadline(RouteState::Withdrawn), None);
        assert_eq!(m.intended(), RouteState::Withdrawn);
    }

    #[test]
    fn a_daemon_that_lost_the_route_is_told_again_without_hold_down() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(HOLD, RouteState::Withdrawn);
        m.want(ANNOUNCED, t0, true);
        m.in_daemon = Some(ANNOUNCED);
        // The daemon restarted: its state is read again on reconnection.
        m.in_daemon = Some(RouteState::Withdrawn);
        assert_eq!(m.to_send(), Some(ANNOUNCED));
    }

    const DAMPENING: Dampening = Dampening {
        half_life: Duration::from_secs(60),
        suppress: 1.5,
        reuse: 0.75,
        max_suppress: Duration::from_secs(300),
    };

    #[test]
    fn dampening_suppresses_a_flapping_route_until_the_penalty_decays() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut m = PolicyMachine::new(Duration::ZERO, ANNOUNCED).with_dampening(Some(DAMPENING));
        // First flap: penalty 1, the route comes back at once.
        assert_eq!(
            m.want(RouteState::Withdrawn, at(0), true),
            Some(RouteState::Withdrawn)
        );
        assert_eq!(m.want(ANNOUNCED, at(1), true), Some(ANNOUNCED));
        // Second flap a second later: 1 + 0.98, suppressed.
        m.want(RouteState::Withdrawn, at(2), true);
        assert!(m.suppressed(at(2)));
        assert_eq!(m.want(ANNOUNCED, at(3), true), None);
        // The penalty (≈1.98 at 2 s) decays below 0.75 after log2(1.98/0.75) ≈ 1.4 half-lives.
        let reuse = m.deadline(ANNOUNCED).unwrap();
        let waited = reuse - at(2);
        assert!(
            waited > Duration::from_secs(80) && waited < Duration::from_secs(90),
            "{waited:?}"
        );
        assert_eq!(
            m.want(ANNOUNCED, reuse - Duration::from_secs(1), true),
            None
        );
        assert_eq!(m.want(ANNOUNCED, reuse, true), Some(ANNOUNCED));
        // A withdraw that is not a flap (drain, shutdown) costs nothing.
        let mut m = PolicyMachine::new(Duration::ZERO, ANNOUNCED).with_dampening(Some(DAMPENING));
        for s in 0..5 {
            m.want(RouteState::Withdrawn, at(2 * s), false);
            assert_eq!(m.want(ANNOUNCED, at(2 * s + 1), true), Some(ANNOUNCED));
        }
    }

    #[test]
    fn dampening_never_suppresses_longer_than_max_suppress() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(Duration::ZERO, ANNOUNCED).with_dampening(Some(DAMPENING));
        // A hundred flaps in a row: the penalty is capped.
        for i in 0..100u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 10);
            m.want(RouteState::Withdrawn, now, true);
            m.want(ANNOUNCED, now + Duration::from_millis(5), true);
        }
        let last = t0 + Duration::from_millis(990);
        assert_eq!(m.intended(), RouteState::Withdrawn);
        let reuse = m.deadline(ANNOUNCED).unwrap();
        assert!(reuse - last <= DAMPENING.max_suppress + Duration::from_millis(10));
        assert!(reuse - last >= DAMPENING.max_suppress - Duration::from_secs(1));
        // Without dampening nothing is ever suppressed.
        let mut m = PolicyMachine::new(Duration::ZERO, ANNOUNCED);
        for i in 0..10u64 {
            let now = t0 + Duration::from_secs(i);
            m.want(RouteState::Withdrawn, now, true);
            assert_eq!(m.want(ANNOUNCED, now, true), Some(ANNOUNCED));
        }
    }
}
