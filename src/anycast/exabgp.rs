//! The `exabgp` driver: dns-oops as an ExaBGP API `process`, speaking the text API.
//!
//! ExaBGP starts dns-oops (`process oops { run /usr/bin/dns-oops run -c …; encoder text; }`,
//! see `etc/examples/exabgp/exabgp.conf`). dns-oops writes one command per line on its
//! **stdout** and reads ExaBGP's acks (`done` or `error`, `exabgp.api.ack`, on by default)
//! on its **stdin**; its log goes to stderr. Commands (ExaBGP 4.2/5.0 syntax):
//!
//! ```text
//! announce route 192.0.2.53/32 next-hop self
//! announce route 192.0.2.53/32 next-hop self as-path [ 65001 65001 65001 ]   (prepend = 2)
//! withdraw route 192.0.2.53/32 next-hop self
//! ```
//!
//! An explicit `as-path` is sent as given (ExaBGP 4.2 does not add its `local-as` to it,
//! measured against BIRD), so `prepend = N` writes the driver's `local-as` N + 1 times:
//! the peer sees the same path as from a plain announcement, N times longer.
//!
//! Why a process and not ExaBGP's named pipes: the process is ExaBGP's established
//! pattern, needs no pipes to create and no permissions to get right, and its lifecycle
//! answers the failure cases (below) without a supervisor of our own. The price: stdout
//! is the API (nothing else may write there), and dns-oops lives and dies with ExaBGP.
//!
//! * **ExaBGP stops or restarts:** it writes `shutdown …` and closes our stdin; dns-oops
//!   then terminates itself (SIGTERM, so the journal is closed cleanly). ExaBGP's BGP
//!   sessions close with it, so its routes leave the peers. When ExaBGP starts again it
//!   starts a new dns-oops, which applies the intended state from the journal: ExaBGP
//!   cannot be asked what it has, so [`Driver::reported`] says "unknown" and everything
//!   intended is sent once at start.
//! * **dns-oops dies** (kill -9, crash): ExaBGP 4.2 keeps the routes it was told and
//!   withdraws nothing; with `exabgp.api.respawn` (the default) it starts dns-oops again,
//!   which re-applies the intended state and withdraws within a probe interval if the
//!   server is unwell. After 5 deaths ExaBGP gives up and terminates, which closes its
//!   sessions: fail-safe.
//! * **An ack does not come** within `timeout`: the driver reports ExaBGP unreachable;
//!   the controller backs off and re-applies the intended state.

use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::driver::{Driver, DriverError};
use super::machine::RouteState;
use crate::config::{AnycastConfig, ExabgpDriverConfig};

/// Longest line read from ExaBGP.
const MAX_LINE: usize = 64 * 1024;

/// Drives ExaBGP through a line writer (our stdout) and the lines ExaBGP sends back.
pub struct ExabgpDriver {
    config: ExabgpDriverConfig,
    out: Box<dyn AsyncWrite + Send + Unpin>,
    lines: mpsc::Receiver<String>,
    /// ExaBGP closed its side (EOF or `shutdown`): nothing more can be sent.
    closed: bool,
}

impl ExabgpDriver {
    /// Over dns-oops' own stdin and stdout, the way ExaBGP runs its API processes. When
    /// ExaBGP closes stdin, dns-oops terminates (SIGTERM to itself): ExaBGP starts a new
    /// one when it starts again.
    pub fn stdio(config: ExabgpDriverConfig) -> ExabgpDriver {
        let (tx, rx) = mpsc::channel(64);
        // A thread of its own, not tokio's stdin: tokio reads stdin on its blocking pool,
        // which the runtime waits for at exit — while ExaBGP, having sent `shutdown`,
        // waits for us to exit before it closes our stdin.
        let spawned = std::thread::Builder::new()
            .name("exabgp-stdin".into())
            .spawn(move || {
                use std::io::BufRead;
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    let shutdown = line.trim().starts_with("shutdown");
                    if tx.blocking_send(line).is_err() || shutdown {
                        break;
                    }
                }
                tracing::warn!("ExaBGP closed the API (it stops): terminating");
                // SAFETY: kill(2) on our own pid with a valid signal number.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGTERM);
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the thread reading ExaBGP's acks: {e}");
        }
        ExabgpDriver::new(config, Box::new(tokio::io::stdout()), rx)
    }

    /// Over any writer and the lines read from ExaBGP (see [`read_lines`]).
    pub fn new(
        config: ExabgpDriverConfig,
        out: Box<dyn AsyncWrite + Send + Unpin>,
        lines: mpsc::Receiver<String>,
    ) -> ExabgpDriver {
        ExabgpDriver {
            config,
            out,
            lines,
            closed: false,
        }
    }

    fn gone(&mut self, why: &str) -> DriverError {
        self.closed = true;
        DriverError::Unreachable(format!("ExaBGP is gone: {why}"))
    }

    /// Sends one command and waits for its ack.
    async fn command(&mut self, command: &str) -> Result<(), DriverError> {
        if self.closed {
            return Err(self.gone("the API stream is closed"));
        }
        tracing::debug!(driver = self.config.name, "→ ExaBGP: {command}");
        let written = async {
            self.out
                .write_all(format!("{command}\n").as_bytes())
                .await?;
            self.out.flush().await
        };
        match tokio::time::timeout(self.config.timeout, written).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.gone(&format!("cannot write a command: {e}"))),
            Err(_) => {
                return Err(DriverError::Unreachable(format!(
                    "ExaBGP does not read commands (waited {:?})",
                    self.config.timeout
                )));
            }
        }
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Err(_) => {
                    return Err(DriverError::Unreachable(format!(
                        "ExaBGP did not ack `{command}` within {:?} (is `exabgp.api.ack` off?)",
                        self.config.timeout
                    )));
                }
                Ok(None) => return Err(self.gone("it closed the API stream")),
                Ok(Some(line)) => line,
            };
            match line.trim() {
                "done" => return Ok(()),
                "error" => {
                    return Err(DriverError::Refused(format!(
                        "ExaBGP answered `error` to `{command}`"
                    )));
                }
                l if l.starts_with("shutdown") => return Err(self.gone(l)),
                other => {
                    tracing::debug!(driver = self.config.name, "ExaBGP said `{other}`, ignored")
                }
            }
        }
    }
}

/// The command that gives `prefix` the state `to`.
pub fn route_command(
    config: &ExabgpDriverConfig,
    prefix: &impl std::fmt::Display,
    to: RouteState,
) -> String {
    match to {
        RouteState::Withdrawn => format!("withdraw route {prefix} next-hop {}", config.next_hop),
        RouteState::Announced { prepend: 0 } => {
            format!("announce route {prefix} next-hop {}", config.next_hop)
        }
        RouteState::Announced { prepend } => {
            let asn = config.local_as.map(|a| a.to_string()).unwrap_or_default();
            let path = vec![asn.as_str(); usize::from(prepend) + 1].join(" ");
            format!(
                "announce route {prefix} next-hop {} as-path [ {path} ]",
                config.next_hop
            )
        }
    }
}

/// Reads lines until EOF or an over-long line, handing them to `tx`.
pub async fn read_lines(input: impl tokio::io::AsyncRead + Unpin, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(input);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) => return,
            Ok(_) if line.len() > MAX_LINE => {
                tracing::error!("ExaBGP sent a line longer than {MAX_LINE} bytes");
                return;
            }
            Ok(_) => {
                if tx.send(line.trim_end().to_string()).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!("cannot read from ExaBGP: {e}");
                return;
            }
        }
    }
}

impl Driver for ExabgpDriver {
    async fn connect(&mut self) -> Result<(), DriverError> {
        if self.closed {
            return Err(self.gone("the API stream is closed"));
        }
        // Acks left over from a command that timed out belong to nobody.
        while let Ok(stale) = self.lines.try_recv() {
            tracing::debug!(
                driver = self.config.name,
                "stale line from ExaBGP: `{stale}`"
            );
        }
        Ok(())
    }

    async fn reported(
        &mut self,
        _policy: &AnycastConfig,
    ) -> Result<Option<RouteState>, DriverError> {
        // ExaBGP 4.2's text API has no reliable per-route query: unknown, so the intended
        // state is sent once after every (re)start.
        Ok(None)
    }

    async fn apply(&mut self, policy: &AnycastConfig, to: RouteState) -> Result<(), DriverError> {
        for prefix in &policy.prefixes {
            let command = route_command(&self.config, prefix, to);
            self.command(&command).await?;
        }
        Ok(())
    }

    async fn lost(&mut self) -> DriverError {
        if self.closed {
            return DriverError::Unreachable("ExaBGP is gone".into());
        }
        loop {
            match self.lines.recv().await {
                None => return self.gone("it closed the API stream"),
                Some(line) if line.trim().starts_with("shutdown") => {
                    return self.gone(line.trim());
                }
                Some(line) => {
                    tracing::debug!(driver = self.config.name, "ExaBGP said `{line}`, ignored")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// For tests: a driver whose "stdout" is `out` and whose "stdin" is `input`.
    fn over(
        config: ExabgpDriverConfig,
        out: impl AsyncWrite + Send + Unpin + 'static,
        input: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    ) -> ExabgpDriver {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(read_lines(input, tx));
        ExabgpDriver::new(config, Box::new(out), rx)
    }

    fn config(local_as: Option<u32>) -> ExabgpDriverConfig {
        ExabgpDriverConfig {
            name: "exabgp".into(),
            next_hop: "self".into(),
            local_as,
            timeout: Duration::from_millis(300),
        }
    }

    #[test]
    fn commands_use_the_4_2_syntax() {
        let c = config(Some(65001));
        assert_eq!(
            route_command(&c, &"192.0.2.53/32", RouteState::Announced { prepend: 0 }),
            "announce route 192.0.2.53/32 next-hop self"
        );
        assert_eq!(
            route_command(&c, &"192.0.2.53/32", RouteState::Announced { prepend: 2 }),
            "announce route 192.0.2.53/32 next-hop self as-path [ 65001 65001 65001 ]"
        );
        assert_eq!(
            route_command(&c, &"2001:db8::53/128", RouteState::Withdrawn),
            "withdraw route 2001:db8::53/128 next-hop self"
        );
    }

    fn policy() -> AnycastConfig {
        let text = "[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:53\"\nzones = [\"a.test.\"]\n[[driver]]\ntype = \"exabgp\"\n[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\", \"192.0.2.54/32\"]\nannounce-when = \"true\"\n";
        crate::config::parse(text, std::path::Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .anycast
            .remove(0)
    }

    #[tokio::test]
    async fn acks_errors_timeouts_and_shutdown() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let (their_read, mut their_write) = tokio::io::split(theirs);
        let (our_read, our_write) = tokio::io::split(ours);
        let mut driver = over(config(None), our_write, our_read);
        let mut commands = BufReader::new(their_read);
        driver.connect().await.unwrap();
        let p = policy();

        // done, done: both prefixes announced.
        their_write.write_all(b"done\ndone\n").await.unwrap();
        driver
            .apply(&p, RouteState::Announced { prepend: 0 })
            .await
            .unwrap();
        let mut line = String::new();
        commands.read_line(&mut line).await.unwrap();
        assert_eq!(line, "announce route 192.0.2.53/32 next-hop self\n");
        line.clear();
        commands.read_line(&mut line).await.unwrap();
        assert_eq!(line, "announce route 192.0.2.54/32 next-hop self\n");

        // error: refused.
        their_write.write_all(b"error\n").await.unwrap();
        let e = driver.apply(&p, RouteState::Withdrawn).await.unwrap_err();
        assert!(matches!(e, DriverError::Refused(_)), "{e}");

        // No ack: unreachable, and a late ack is dropped at the next connect.
        let e = driver.apply(&p, RouteState::Withdrawn).await.unwrap_err();
        assert!(matches!(e, DriverError::Unreachable(_)), "{e}");
        their_write.write_all(b"done\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        driver.connect().await.unwrap();

        // shutdown, then EOF: lost, and connecting fails from then on.
        their_write.write_all(b"shutdown 1 2\n").await.unwrap();
        let e = driver.lost().await;
        assert!(e.to_string().contains("shutdown"), "{e}");
        assert!(driver.connect().await.is_err());
        let mut rest = Vec::new();
        drop(their_write);
        let _ =
            tokio::time::timeout(Duration::from_millis(50), commands.read_to_end(&mut rest)).await;
    }
}
