//! The command line: `dns-oops <subcommand>`.
//!
//! Exit codes: 0 success; 1 a runtime failure; 2 a configuration error (`run`,
//! `check-config`); `check` uses the monitoring-plugin codes 0/1/2/3.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

/// Default config file of `run`, `check-config` and `check`.
pub const DEFAULT_CONFIG: &str = "/etc/dns-oops/dns-oops.toml";
/// Default HTTP API address of `status` and `watch` (the daemon's default listen address).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8054";

/// Exit code for configuration errors.
const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "dns-oops",
    version,
    about = "DNS Out Of Protocol Signalling: turns what happens inside DNS servers into signals",
    long_about = "dns-oops watches DNS servers (SOA probes, the server process, …), turns what it \
                  sees into conditions such as server-running, zone-ready, all-zones-ready, \
                  zone-updated and server-crashed, journals every change as a signal, and \
                  delivers the signals through channels (JSON log lines, commands) and an HTTP \
                  API.\n\nStart with `dns-oops demo`: a self-contained lab on loopback."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// The configuration file.
        #[arg(short, long, env = "DNS_OOPS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a configuration file without starting anything; exit 2 when it is invalid.
    CheckConfig {
        /// The configuration file.
        #[arg(short, long, env = "DNS_OOPS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Run a self-contained lab on loopback: a small authoritative server `lab` with example
    /// zones, the daemon watching it as node `demo`, and a scripted scenario that makes the
    /// conditions happen within the first minute.
    Demo {
        /// HTTP API address of the demo daemon (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8054")]
        http: std::net::SocketAddr,
        /// DNS Push (TLS) address of the demo daemon (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8853")]
        push: std::net::SocketAddr,
        /// Stop after the scenario has run once instead of running until Ctrl-C.
        #[arg(long)]
        once: bool,
        /// Run the scenario this many times faster (for a quick look; 1 = real time).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Internal: run as the demo's lab DNS server process.
        #[arg(long, hide = true, num_args = 2, value_names = ["ADDR", "PID_FILE"])]
        lab_server: Option<Vec<String>>,
    },
    /// Show the conditions that are met now, from a running daemon's HTTP API.
    Status {
        /// Base URL of the daemon's HTTP API.
        #[arg(long, env = "DNS_OOPS_URL", default_value = DEFAULT_URL)]
        url: String,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stream signals from a running daemon as JSON lines, reconnecting when it restarts.
    ///
    /// With --push HOST:PORT, follows the node's signals zone over DNS Push (TLS) instead:
    /// the conditions of --servers as they become met or cleared, and events.
    Watch {
        /// Base URL of the daemon's HTTP API.
        #[arg(long, env = "DNS_OOPS_URL", default_value = DEFAULT_URL)]
        url: String,
        /// Start after this signal number (default: only new signals).
        #[arg(long, conflicts_with = "push")]
        after: Option<u64>,
        /// Use the daemon's DNS Push channel at HOST:PORT instead of its HTTP API.
        #[arg(long, value_name = "HOST:PORT", requires_all = ["zone", "servers"])]
        push: Option<String>,
        /// With --push: the node's signals zone, e.g. ams1.oops.internal.
        #[arg(long, requires = "push")]
        zone: Option<String>,
        /// With --push: the DNS servers whose conditions to follow.
        #[arg(long, value_delimiter = ',', requires = "push")]
        servers: Vec<String>,
        /// With --push: trust only this CA (PEM); default: the system's roots.
        #[arg(long, value_name = "FILE", requires = "push")]
        ca: Option<PathBuf>,
        /// With --push: accept any server certificate.
        #[arg(long, requires = "push", conflicts_with = "ca")]
        insecure: bool,
        /// With --push: the name to check the certificate against.
        #[arg(long, value_name = "NAME", requires = "push")]
        tls_name: Option<String>,
    },
    /// Subscribe to a name with DNS Push (RFC 8765) and print every change as it happens:
    /// any RFC 8765 server, found through the DNS (SOA, then _dns-push-tls._tcp SRV) or
    /// given with --server. Reconnects and resubscribes when the connection ends.
    Subscribe(crate::push::client::SubscribeArgs),
    /// Probe once, evaluate [check] critical-when / warning-when, print one line and exit
    /// 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN) for Nagios/Icinga-style monitoring.
    Check {
        /// The configuration file.
        #[arg(short, long, env = "DNS_OOPS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Take a server out of anycast service before maintenance: raise `server-stopping`
    /// for it (with --reason), withdraw every [[anycast]] policy that names it, wait until
    /// the BGP daemon has confirmed each withdraw and the policies' `drain-grace` has
    /// passed, then return. The drain holds (across restarts) until `dns-oops undrain`.
    /// Meant for ExecStop= of the DNS server's unit (etc/examples/systemd/).
    ///
    /// Exit 0 when withdrawn; 1 when the daemon cannot be reached, does not know the
    /// server, or the BGP daemon did not confirm within --timeout (the drain stays).
    Drain {
        /// The [[server]] to drain, by name.
        server: String,
        /// Why, for the `reason` argument of server-stopping (default: "drain").
        #[arg(long)]
        reason: Option<String>,
        /// How long to wait for the BGP daemons to confirm the withdraws (the grace comes
        /// on top).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Base URL of the daemon's HTTP API.
        #[arg(long, env = "DNS_OOPS_URL", default_value = DEFAULT_URL)]
        url: String,
    },
    /// End a drain: clear the server's `server-stopping`; its anycast policies announce
    /// again as soon as they hold (after their hold-down).
    Undrain {
        /// The [[server]] to put back, by name.
        server: String,
        /// Base URL of the daemon's HTTP API.
        #[arg(long, env = "DNS_OOPS_URL", default_value = DEFAULT_URL)]
        url: String,
    },
    CheckZone(crate::zone::check_zone::CheckZoneArgs),
    /// Summarise a dnstap capture (a Frame Streams file): frames, messages by type,
    /// responses by RCODE and Extended DNS Error, queries and responses per second.
    DnstapRead(crate::dnstap::read::DnstapReadArgs),
    /// In-tree hints (draft-kolkman-in-tree-hints): check them against the live DNS, render
    /// resolver configuration, or build a hints file from a domain's servers.
    InTree(crate::intree::cli::InTreeArgs),
    NsdVerify(crate::nsd_verify::NsdVerifyArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo and the clients print for people; the daemon's own log is for operators.
    let quiet = !matches!(cli.command, Command::Run { .. });
    init_tracing(if quiet { "warn" } else { "info" });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dns-oops: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run { config } => match load(&config) {
            Ok(config) => run_daemon(config).await,
            Err(code) => code,
        },
        Command::CheckConfig { config } => match load(&config) {
            Ok(config) => {
                println!("{}: OK — {}", config.path.display(), config.summary());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Demo {
            http,
            push,
            once,
            speed,
            lab_server,
        } => match lab_server {
            Some(args) => crate::demo::lab_server_main(&args[0], &args[1]).await,
            None => crate::demo::run(http, push, once, speed).await,
        },
        Command::Subscribe(args) => crate::push::client::run(&args).await,
        Command::Status { url, json } => match crate::http::client::status(&url).await {
            Ok(report) => {
                if json {
                    emit(&format!("{}\n", report.to_json()));
                } else {
                    emit(&report.render());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dns-oops status: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Watch {
            push: Some(push),
            zone,
            servers,
            ca,
            insecure,
            tls_name,
            ..
        } => {
            let options = crate::push::tls::ClientTlsOptions {
                ca,
                insecure,
                identity: None,
            };
            match crate::push::tls::client_config(&options) {
                Ok(tls) => {
                    let connection = crate::push::client::Connection { tls, tls_name };
                    let zone = zone.unwrap_or_default();
                    crate::push::client::watch(&push, &zone, &servers, connection).await
                }
                Err(e) => {
                    eprintln!("dns-oops watch: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Watch { url, after, .. } => {
            let print =
                |signal: &crate::signal::Signal| emit(&format!("{}\n", signal.to_json_line()));
            match crate::http::client::watch(&url, after, print).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dns-oops watch: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Drain {
            server,
            reason,
            timeout,
            url,
        } => match crate::http::client::drain(&url, &server, reason.as_deref(), timeout).await {
            Ok(report) => {
                let policies = if report.policies.is_empty() {
                    "no anycast policy names it".to_string()
                } else {
                    format!(
                        "withdrawn: {} (confirmed after {} ms, then {} ms of grace)",
                        report.policies.join(", "),
                        report.withdrawn_after_ms.unwrap_or(0),
                        report.grace_ms
                    )
                };
                emit(&format!("{server}: drained; {policies}\n"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dns-oops drain: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Undrain { server, url } => {
            match crate::http::client::undrain(&url, &server).await {
                Ok(report) => {
                    let policies = if report.policies.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; {} announce again when they hold",
                            report.policies.join(", ")
                        )
                    };
                    emit(&format!("{server}: undrained{policies}\n"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("dns-oops undrain: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { config } => crate::check::run(&config).await,
        Command::CheckZone(args) => crate::zone::check_zone::run(&args),
        Command::DnstapRead(args) => crate::dnstap::read::run(&args),
        Command::InTree(args) => crate::intree::cli::run(args).await,
        Command::NsdVerify(args) => crate::nsd_verify::run(&args).await,
    }
}

/// Writes to stdout; when the reader went away (`dns-oops watch | head`), exits quietly
/// instead of failing.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// Loads a config file, printing every error as `file:line:column: message`.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

async fn run_daemon(config: Config) -> ExitCode {
    match crate::daemon::run(config, shutdown_signal(), |_| {}).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dns-oops: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop dns-oops with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Logs to stderr; `DNS_OOPS_LOG` (e.g. `debug`) overrides the default level.
fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("DNS_OOPS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
