//! What the controller needs from a BGP daemon driver.

use std::future::Future;

use super::machine::RouteState;
use crate::config::AnycastConfig;

/// Why a driver could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The daemon cannot be reached (down, restarting, socket missing): retried with
    /// backoff, and the intended state is applied again when it is back.
    #[error("{0}")]
    Unreachable(String),
    /// The daemon refused a command (e.g. no such protocol in its config): logged; the
    /// command is sent again after the next reconnection or change.
    #[error("{0}")]
    Refused(String),
}

/// A BGP daemon the anycast controller drives. One driver serves many policies.
pub trait Driver: Send {
    /// (Re)connects; after `Ok` the daemon takes commands.
    fn connect(&mut self) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// What the daemon has for `policy` now, when it can tell.
    fn reported(
        &mut self,
        policy: &AnycastConfig,
    ) -> impl Future<Output = Result<Option<RouteState>, DriverError>> + Send;

    /// Makes the daemon announce `policy`'s prefixes as `to` says.
    fn apply(
        &mut self,
        policy: &AnycastConfig,
        to: RouteState,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Resolves when the connection to the daemon is lost (the daemon stopped or
    /// restarted). Must be cancel safe: it is raced against everything else.
    fn lost(&mut self) -> impl Future<Output = DriverError> + Send;
}
