//! The `frr` driver: FRR's bgpd through `vtysh`, with `network` statements under
//! `router bgp <asn>`.
//!
//! ```text
//! announce  configure terminal / router bgp 65003 / address-family ipv4 unicast /
//!           network 192.0.2.53/32                               (one vtysh run per prefix)
//! prepend   route-map dns-oops-prepend-2 permit 10 / set as-path prepend 65003 65003 /
//!           … / network 192.0.2.53/32 route-map dns-oops-prepend-2
//! withdraw  … / no network 192.0.2.53/32     ("% Can't find static route specified": absent)
//! state     show bgp ipv4 unicast 192.0.2.53/32 json     (the path with "sourced": true;
//!           its AS path holds only the prepends)
//! ```
//!
//! A `vtysh` run fails when it exits non-zero or writes anything on stderr (vtysh can exit
//! 0 and still complain). `network` replaces the route-map of an existing statement, so
//! changing the prepending is make-before-break. The route-maps `dns-oops-prepend-<N>` are
//! (re)defined by the driver before use.
//!
//! **Import check:** with `bgp network import-check` (FRR's default since 7.4) a `network`
//! is only announced while the prefix is in the RIB (an address on `lo`, or a blackhole
//! static route through zebra). After every announce the driver reads the route back, and
//! reports a `network` that bgpd holds but does not announce, naming the setting: write
//! `no bgp network import-check` under `router bgp`, or give the prefix a route.
//!
//! **bgpd restarts:** dns-oops keeps a connection to bgpd's vty socket (`bgpd.vty` in the
//! vty socket directory) open and idle; bgpd closes it when it stops, [`Driver::lost`]
//! resolves, and the controller reconnects and re-applies the intended state — the
//! `network` statements added at run time are not in bgpd's config file (never `write
//! memory` them: a bgpd that starts alone must announce nothing).
//!
//! **dns-oops dies** (kill -9, crash): bgpd keeps the `network` statements, so the prefixes
//! stay announced while nothing watches the server. The service unit removes them after
//! an abnormal end (`ExecStopPost=`, `etc/examples/frr/dns-oops-frr.conf`), and at start
//! dns-oops withdraws what its journal does not say is announced.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use super::driver::{Driver, DriverError};
use super::machine::RouteState;
use crate::config::{AnycastConfig, FrrDriverConfig};

/// Most bytes of vtysh output read; more is an error (one prefix's JSON is small).
const MAX_OUTPUT: usize = 1024 * 1024;

/// How long a connection attempt keeps trying bgpd's vty socket.
const SOCKET_WAIT: std::time::Duration = std::time::Duration::from_millis(400);

/// How often, and how far apart, an announce that bgpd does not show yet is read again.
const READ_BACK_TRIES: usize = 5;
const READ_BACK_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// What `no network` answers for a prefix that is not configured.
const NOT_CONFIGURED: &str = "Can't find static route specified";

/// The route-map that prepends `count` times.
pub fn prepend_route_map(count: u8) -> String {
    format!("dns-oops-prepend-{count}")
}

/// The vtysh commands that make bgpd announce `prefix` with `prepend` prepends of `asn`, or
/// withdraw it (`None`).
pub fn network_commands(asn: u32, prefix: &str, prepend: Option<u8>) -> Vec<String> {
    let family = family(prefix);
    let mut commands = vec!["configure terminal".to_string()];
    let network = match prepend {
        None => format!("no network {prefix}"),
        Some(0) => format!("network {prefix}"),
        Some(count) => {
            let map = prepend_route_map(count);
            let path = vec![asn.to_string(); usize::from(count)].join(" ");
            commands.push(format!("route-map {map} permit 10"));
            commands.push(format!("set as-path prepend {path}"));
            commands.push("exit".into());
            format!("network {prefix} route-map {map}")
        }
    };
    commands.push(format!("router bgp {asn}"));
    commands.push(format!("address-family {family} unicast"));
    commands.push(network);
    commands.push("end".into());
    commands
}

/// The JSON documents of one vtysh run with several `show … json` commands, in order;
/// exactly `expected` of them.
pub fn json_documents(text: &str, expected: usize) -> Result<Vec<serde_json::Value>, String> {
    let mut documents = Vec::new();
    for document in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        documents.push(document.map_err(|e| format!("cannot read bgpd's JSON: {e}"))?);
        if documents.len() > expected {
            break;
        }
    }
    if documents.len() != expected {
        return Err(format!(
            "bgpd answered {} JSON documents to {expected} commands",
            documents.len()
        ));
    }
    Ok(documents)
}

/// What `show bgp <family> unicast <prefix> json` says of the locally sourced path:
/// `Some(prepend)` (the length of its AS path) or `None` when there is none.
pub fn sourced_prepend(value: &serde_json::Value) -> Option<u8> {
    let paths = value.get("paths").and_then(|p| p.as_array())?;
    for path in paths {
        let sourced = path.get("sourced").and_then(|s| s.as_bool()) == Some(true);
        let valid = path.get("valid").and_then(|s| s.as_bool()) != Some(false);
        if !sourced || !valid {
            continue;
        }
        let length = path
            .get("aspath")
            .and_then(|a| a.get("length"))
            .and_then(|l| l.as_u64())
            .unwrap_or(0);
        return Some(u8::try_from(length).unwrap_or(u8::MAX));
    }
    None
}

/// The `frr` driver.
pub struct FrrDriver {
    config: FrrDriverConfig,
    /// The idle connection to bgpd's vty socket whose end tells that bgpd stopped.
    watch: Option<UnixStream>,
    /// `router bgp <asn>`: configured, or asked from bgpd at the first connection.
    asn: Option<u32>,
}

impl FrrDriver {
    pub fn new(config: FrrDriverConfig) -> FrrDriver {
        let asn = config.asn;
        FrrDriver {
            config,
            watch: None,
            asn,
        }
    }

    fn bgpd_socket(&self) -> PathBuf {
        self.config.vty_dir().join("bgpd.vty")
    }

    /// Runs vtysh with `commands` (one `-c` each); its stdout, or why it failed.
    async fn vtysh(&mut self, commands: &[String]) -> Result<String, VtyshFailure> {
        let mut command = tokio::process::Command::new(&self.config.vtysh);
        if let Some(dir) = &self.config.vty_socket {
            command.arg("--vty_socket").arg(dir);
        }
        for c in commands {
            command.arg("-c").arg(c);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let vtysh = self.config.vtysh.display().to_string();
        let mut child = command
            .spawn()
            .map_err(|e| VtyshFailure::Unreachable(format!("cannot run {vtysh}: {e}")))?;
        let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(VtyshFailure::Unreachable(format!("{vtysh}: no pipes")));
        };
        let run = async {
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            let mut out = (&mut out).take(MAX_OUTPUT as u64 + 1);
            let mut err = (&mut err).take(MAX_OUTPUT as u64 + 1);
            let (a, b) = tokio::join!(out.read_to_end(&mut stdout), err.read_to_end(&mut stderr));
            a?;
            b?;
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((status, stdout, stderr))
        };
        let (status, stdout, stderr) = match tokio::time::timeout(self.config.timeout, run).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(VtyshFailure::Unreachable(format!("{vtysh}: {e}"))),
            Err(_) => {
                self.watch = None;
                return Err(VtyshFailure::Unreachable(format!(
                    "{vtysh} did not finish within {:?}",
                    self.config.timeout
                )));
            }
        };
        if stdout.len() > MAX_OUTPUT {
            return Err(VtyshFailure::Failed(format!(
                "{vtysh} wrote more than {MAX_OUTPUT} bytes"
            )));
        }
        let stdout = String::from_utf8_lossy(&stdout).trim().to_string();
        let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        // bgpd stopped, or is stopping: not a refusal.
        let gone = [
            "failed to connect",
            "is not running",
            "error reading from bgpd",
        ];
        if gone
            .iter()
            .any(|g| stderr.contains(g) || stdout.contains(g))
        {
            return Err(VtyshFailure::Unreachable(format!(
                "{vtysh}: {}",
                stderr.replace('\n', "; ")
            )));
        }
        if !status.success() || !stderr.is_empty() {
            let said = [stdout.as_str(), stderr.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(VtyshFailure::Failed(format!(
                "`{}` ({status}): {said}",
                commands.join(" / ")
            )));
        }
        Ok(stdout)
    }

    fn asn(&self) -> Result<u32, DriverError> {
        self.asn
            .ok_or_else(|| DriverError::Unreachable("bgpd's AS is not known yet".into()))
    }

    /// What bgpd announces of each of `prefixes`, from one vtysh run.
    async fn show(&mut self, prefixes: &[String]) -> Result<Vec<Option<u8>>, DriverError> {
        let commands: Vec<String> = prefixes
            .iter()
            .map(|p| format!("show bgp {} unicast {p} json", family(p)))
            .collect();
        let json = self
            .vtysh(&commands)
            .await
            .map_err(VtyshFailure::into_error)?;
        let documents = json_documents(&json, prefixes.len()).map_err(DriverError::Refused)?;
        Ok(documents.iter().map(sourced_prepend).collect())
    }

    /// Announces every prefix (`network` is idempotent, so one run does them all), then
    /// reads them back: a `network` that bgpd holds without announcing it is the import
    /// check.
    async fn announce(&mut self, prefixes: &[String], prepend: u8) -> Result<(), DriverError> {
        let asn = self.asn()?;
        let mut commands = Vec::new();
        for prefix in prefixes {
            commands.extend(network_commands(asn, prefix, Some(prepend)));
        }
        // Read back in the same run: vtysh prints nothing for the accepted config lines.
        commands.extend(
            prefixes
                .iter()
                .map(|p| format!("show bgp {} unicast {p} json", family(p))),
        );
        let json = self
            .vtysh(&commands)
            .await
            .map_err(VtyshFailure::into_error)?;
        let mut announced: Vec<Option<u8>> = json_documents(&json, prefixes.len())
            .map_err(DriverError::Refused)?
            .iter()
            .map(sourced_prepend)
            .collect();
        // With the import check, bgpd validates the path when zebra answers: give it a
        // moment before calling it refused.
        for _ in 0..READ_BACK_TRIES {
            if announced.iter().all(|a| *a == Some(prepend)) {
                break;
            }
            tokio::time::sleep(READ_BACK_WAIT).await;
            announced = self.show(prefixes).await?;
        }
        if let Some((prefix, _)) = prefixes
            .iter()
            .zip(&announced)
            .find(|(_, a)| **a != Some(prepend))
        {
            return Err(DriverError::Refused(format!(
                "bgpd took `network {prefix}` under `router bgp {asn}` but does not announce it: \
                 with `bgp network import-check` (FRR's default) the prefix must be in the RIB; \
                 write `no bgp network import-check` under `router bgp {asn}`, or route the prefix \
                 (e.g. a blackhole static route)"
            )));
        }
        Ok(())
    }

    /// Withdraws every prefix in one run; vtysh stops at the first error, so when one of
    /// them was not configured, one run per prefix.
    async fn withdraw(&mut self, prefixes: &[String]) -> Result<(), DriverError> {
        let asn = self.asn()?;
        let mut commands = Vec::new();
        for prefix in prefixes {
            commands.extend(network_commands(asn, prefix, None));
        }
        match self.vtysh(&commands).await {
            Ok(_) => return Ok(()),
            Err(VtyshFailure::Failed(e)) if e.contains(NOT_CONFIGURED) => {}
            Err(e) => return Err(e.into_error()),
        }
        for prefix in prefixes {
            match self.vtysh(&network_commands(asn, prefix, None)).await {
                Ok(_) => {}
                Err(VtyshFailure::Failed(e)) if e.contains(NOT_CONFIGURED) => {}
                Err(e) => return Err(e.into_error()),
            }
        }
        Ok(())
    }
}

fn family(prefix: &str) -> &'static str {
    if prefix.contains(':') { "ipv6" } else { "ipv4" }
}

/// How a vtysh run failed.
#[derive(Debug)]
enum VtyshFailure {
    /// bgpd (or vtysh) cannot be reached.
    Unreachable(String),
    /// vtysh ran and complained.
    Failed(String),
}

impl VtyshFailure {
    fn into_error(self) -> DriverError {
        match self {
            VtyshFailure::Unreachable(e) => DriverError::Unreachable(e),
            VtyshFailure::Failed(e) => DriverError::Refused(format!("vtysh refused {e}")),
        }
    }
}

impl Driver for FrrDriver {
    async fn connect(&mut self) -> Result<(), DriverError> {
        self.watch = None;
        let socket = self.bgpd_socket();
        // While bgpd is away, keep trying here a little (every 10 ms), so that a bgpd
        // that comes back is seen at once, not at the controller's next retry.
        let give_up = tokio::time::Instant::now() + SOCKET_WAIT;
        let stream = loop {
            let attempt = tokio::time::timeout(self.config.timeout, UnixStream::connect(&socket));
            let why = match attempt.await {
                Ok(Ok(stream)) => break stream,
                Ok(Err(e)) => format!("cannot connect to bgpd at {}: {e}", socket.display()),
                Err(_) => format!("bgpd at {} does not accept connections", socket.display()),
            };
            if tokio::time::Instant::now() >= give_up {
                return Err(DriverError::Unreachable(why));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        // Asked once: bgpd's AS does not change without a new `router bgp`, which would
        // need a new config for dns-oops anyway.
        if self.asn.is_none() {
            let json = self
                .vtysh(&["show bgp detail json".to_string()])
                .await
                .map_err(VtyshFailure::into_error)?;
            let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
                DriverError::Unreachable(format!("cannot read `show bgp detail json`: {e}"))
            })?;
            match value.get("localAS").and_then(|a| a.as_u64()) {
                Some(asn) => self.asn = u32::try_from(asn).ok(),
                None => {
                    return Err(DriverError::Unreachable(
                        "bgpd has no `router bgp` yet (no localAS in `show bgp detail json`)"
                            .into(),
                    ));
                }
            }
        }
        tracing::info!(
            driver = self.config.name,
            "connected to bgpd at {} (router bgp {})",
            socket.display(),
            self.asn.unwrap_or_default()
        );
        self.watch = Some(stream);
        Ok(())
    }

    async fn reported(
        &mut self,
        policy: &AnycastConfig,
    ) -> Result<Option<RouteState>, DriverError> {
        let prefixes: Vec<String> = policy.prefixes.iter().map(|p| p.to_string()).collect();
        let states = self.show(&prefixes).await?;
        Ok(match states.as_slice() {
            [first, rest @ ..] if rest.iter().all(|s| s == first) => Some(match first {
                None => RouteState::Withdrawn,
                Some(prepend) => RouteState::Announced { prepend: *prepend },
            }),
            _ => None,
        })
    }

    async fn apply(&mut self, policy: &AnycastConfig, to: RouteState) -> Result<(), DriverError> {
        let prefixes: Vec<String> = policy.prefixes.iter().map(|p| p.to_string()).collect();
        match to {
            RouteState::Withdrawn => self.withdraw(&prefixes).await,
            RouteState::Announced { prepend } => self.announce(&prefixes, prepend).await,
        }
    }

    async fn lost(&mut self) -> DriverError {
        let socket = self.bgpd_socket();
        match self.watch.as_mut() {
            Some(stream) => {
                let mut scratch = [0u8; 512];
                let why = loop {
                    match stream.read(&mut scratch).await {
                        Ok(0) => break "bgpd closed its vty socket".to_string(),
                        Ok(_) => {}
                        Err(e) => break format!("bgpd's vty socket: {e}"),
                    }
                };
                self.watch = None;
                DriverError::Unreachable(format!("{why} ({})", socket.display()))
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_announce_prepend_and_withdraw() {
        assert_eq!(
            network_commands(65003, "192.0.2.53/32", Some(0)),
            [
                "configure terminal",
                "router bgp 65003",
                "address-family ipv4 unicast",
                "network 192.0.2.53/32",
                "end"
            ]
        );
        assert_eq!(
            network_commands(65003, "2001:db8::53/128", Some(2)),
            [
                "configure terminal",
                "route-map dns-oops-prepend-2 permit 10",
                "set as-path prepend 65003 65003",
                "exit",
                "router bgp 65003",
                "address-family ipv6 unicast",
                "network 2001:db8::53/128 route-map dns-oops-prepend-2",
                "end"
            ]
        );
        assert_eq!(
            network_commands(65003, "192.0.2.53/32", None)[3],
            "no network 192.0.2.53/32"
        );
    }

    #[test]
    fn the_sourced_path_says_what_is_announced() {
        // As FRR 8.4 answers `show bgp ipv4 unicast 192.0.2.53/32 json` (trimmed).
        let prepended = r#"{"prefix":"192.0.2.53/32","paths":[
            {"aspath":{"string":"65000","segments":[],"length":1},"valid":true,"peer":{"peerId":"127.0.0.1"}},
            {"aspath":{"string":"65003 65003","length":2},"origin":"IGP","valid":true,
             "sourced":true,"local":true}]}"#;
        let one = |text: &str| sourced_prepend(&json_documents(text, 1).unwrap()[0]);
        assert_eq!(one(prepended), Some(2));
        let plain = r#"{"prefix":"192.0.2.53/32","paths":[{"aspath":{"string":"Local",
            "segments":[],"length":0},"valid":true,"sourced":true,"local":true}]}"#;
        assert_eq!(one(plain), Some(0));
        assert_eq!(one("{\n}"), None);
        let learned = r#"{"paths":[{"aspath":{"length":1},"valid":true}]}"#;
        assert_eq!(one(learned), None);
        assert!(json_documents("% Unknown command", 1).is_err());
        // Several `show … json` in one run: one document each, in order.
        let two = json_documents(&format!("{plain}\n{{\n}}\n"), 2).unwrap();
        assert_eq!(
            two.iter().map(sourced_prepend).collect::<Vec<_>>(),
            [Some(0), None]
        );
        assert!(json_documents(plain, 2).is_err());
        assert!(json_documents(&format!("{plain}{plain}{plain}"), 2).is_err());
    }
}
