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

/// One policy's intended state, its hold-down, and what its daemon has.
#[derive(Debug, Clone)]
pub struct PolicyMachine {
    hold_down: Duration,
    intended: RouteState,
    /// When `intended` last changed in this run; `None`: not in this run.
    changed_at: Option<Instant>,
    /// What the daemon has, as far as known.
    pub in_daemon: Option<RouteState>,
}

impl PolicyMachine {
    /// Starts from what the journal says was announced (withdrawn when it says nothing).
    pub fn new(hold_down: Duration, intended: RouteState) -> PolicyMachine {
        PolicyMachine {
            hold_down,
            intended,
            changed_at: None,
            in_daemon: None,
        }
    }

    pub fn intended(&self) -> RouteState {
        self.intended
    }

    /// Takes the policy's wish into account; returns the new intended state when it
    /// changes now. A wish held back by the hold-down is asked again at
    /// [`PolicyMachine::deadline`].
    pub fn want(&mut self, wanted: RouteState, now: Instant) -> Option<RouteState> {
        if wanted == self.intended {
            return None;
        }
        let worse = wanted.attraction() < self.intended.attraction();
        let held = self.changed_at.is_some_and(|at| now < at + self.hold_down);
        if !worse && held {
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
        self.changed_at.map(|at| at + self.hold_down)
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
        assert_eq!(m.want(ANNOUNCED, t0), Some(ANNOUNCED));
        assert_eq!(m.to_send(), Some(ANNOUNCED));
        m.in_daemon = Some(ANNOUNCED);
        assert_eq!(m.to_send(), None);
        assert_eq!(m.want(ANNOUNCED, t0), None);
    }

    #[test]
    fn withdraw_is_at_once_and_announce_waits_for_the_hold_down() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(HOLD, RouteState::Withdrawn);
        m.want(ANNOUNCED, t0);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            m.want(RouteState::Withdrawn, t1),
            Some(RouteState::Withdrawn)
        );
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(m.want(ANNOUNCED, t2), None);
        assert_eq!(m.deadline(ANNOUNCED), Some(t1 + HOLD));
        assert_eq!(m.want(ANNOUNCED, t1 + HOLD), Some(ANNOUNCED));
    }

    #[test]
    fn more_prepending_is_at_once_less_waits() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(HOLD, ANNOUNCED);
        assert_eq!(m.want(PREPENDED, t0), Some(PREPENDED));
        assert_eq!(m.want(ANNOUNCED, t0 + Duration::from_secs(1)), None);
        assert_eq!(m.want(ANNOUNCED, t0 + HOLD), Some(ANNOUNCED));
    }

    #[test]
    fn a_wish_that_turns_back_while_held_changes_nothing() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(HOLD, ANNOUNCED);
        m.want(RouteState::Withdrawn, t0);
        assert_eq!(m.want(ANNOUNCED, t0 + Duration::from_secs(1)), None);
        assert_eq!(m.deadline(RouteState::Withdrawn), None);
        assert_eq!(m.intended(), RouteState::Withdrawn);
    }

    #[test]
    fn a_daemon_that_lost_the_route_is_told_again_without_hold_down() {
        let t0 = Instant::now();
        let mut m = PolicyMachine::new(HOLD, RouteState::Withdrawn);
        m.want(ANNOUNCED, t0);
        m.in_daemon = Some(ANNOUNCED);
        // The daemon restarted: its state is read again on reconnection.
        m.in_daemon = Some(RouteState::Withdrawn);
        assert_eq!(m.to_send(), Some(ANNOUNCED));
    }
}
