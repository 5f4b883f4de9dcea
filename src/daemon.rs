//! `dns-oops run`: wires sources, engine, journal, channels and the HTTP API together.
//!
//! ```text
//! sources ──mpsc──▶ engine step ──▶ journal.record (one transaction) ──watch(seq)──▶ channels, SSE
//! ```
//!
//! One task owns the engine. Each observation is one engine step; the signals and state
//! changes of a step are written to the journal in one transaction before anyone hears of
//! them, so what a channel delivers is always in the journal. The anycast controllers
//! ([`crate::anycast`]) are handed the met conditions after each recorded step, and
//! withdraw what they must when the daemon stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::anycast::Anycast;
use crate::channels::{self, Channel, ChannelError};
use crate::config::{ChannelConfig, Config, SourceConfig};
use crate::drain::{Control, DrainError, DrainReport, DrainWait};
use crate::engine::{Engine, Moment, ServerModel};
use crate::http::metrics::Metrics;
use crate::http::{self, HttpState};
use crate::journal::{Journal, JournalError};
use crate::push::server::Hub;
use crate::push::{PushChannel, PushError};
use crate::signal::{Observation, Signal};
use crate::sources::knot_dbus::{KnotDbusSettings, run_knot_dbus};
use crate::sources::notify_in::{NotifyInSettings, run_notify_in};
use crate::sources::probe::{ProbeSettings, run_probe};
use crate::sources::process::{ProcessSettings, run_process_watch};

/// How many observations may wait for the engine before sources are slowed down.
const OBSERVATION_QUEUE: usize = 4096;
/// How many operator commands (`drain`, `undrain`) may wait for the engine.
const CONTROL_QUEUE: usize = 16;
/// How often old signals are pruned from the journal.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("journal {path}: {source}")]
    Journal { path: String, source: JournalError },
    #[error("cannot listen for HTTP on {addr}: {source} (set [http] listen to a free address)")]
    HttpBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("channel `{name}`: {source}")]
    Channel { name: String, source: ChannelError },
    #[error("channel `{name}`: {source}")]
    Push { name: String, source: PushError },
}

/// A running daemon's parts that the caller may want (the demo prints the HTTP address).
pub struct Running {
    pub http_addr: Option<SocketAddr>,
    /// The address each push channel listens on, by channel name.
    pub push_addrs: Vec<(String, SocketAddr)>,
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(Running),
) -> Result<(), DaemonError> {
    let journal_path = config.journal.path.display().to_string();
    let journal_err = |source| DaemonError::Journal {
        path: journal_path.clone(),
        source,
    };
    let journal = Arc::new(Journal::open(&config.journal.path).map_err(journal_err)?);
    match journal.node().map_err(journal_err)? {
        Some(node) if node != config.node => tracing::warn!(
            "journal {journal_path} belongs to node `{node}`, now running as `{}`; its state is used as is",
            config.node
        ),
        Some(_) => {}
        None => journal.set_node(&config.node).map_err(journal_err)?,
    }
    let metrics = Arc::new(Metrics::new());
    let health = crate::health::Board::new();
    let last_seq = journal.last_seq().map_err(journal_err)?;
    let mut engine = Engine::new(&config.node, server_models(&config), last_seq);
    let restored = journal.current().map_err(journal_err)?;
    let restored_count = restored.len();
    let now = Moment::now();
    let signals = engine.restore(restored, now);
    let anycast = Anycast::start(&config, journal.clone(), metrics.clone(), &engine.current())
        .map_err(journal_err)?;
    let (latest_tx, latest_rx) = watch::channel(last_seq);
    let mut step = Step {
        journal: &journal,
        metrics: &metrics,
        latest: &latest_tx,
        hubs: Vec::new(),
        anycast: &anycast,
    };
    step.record(&mut engine, signals).map_err(journal_err)?;
    tracing::info!(
        node = config.node,
        seq = last_seq,
        restored = restored_count,
        "journal {journal_path} opened"
    );

    let mut tasks = JoinSet::new();
    let (control_tx, mut control_rx) = mpsc::channel::<Control>(CONTROL_QUEUE);
    let http_addr = match config.http.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::HttpBind { addr, source })?;
            let addr = listener.local_addr().unwrap_or(addr);
            let state = HttpState {
                journal: journal.clone(),
                latest_seq: latest_rx.clone(),
                metrics: metrics.clone(),
                health: health.clone(),
                node: config.node.clone(),
                control: Some(control_tx.clone()),
            };
            let mut closed = latest_rx.clone();
            tasks.spawn(async move {
                let until_closed = async move { while closed.changed().await.is_ok() {} };
                if let Err(e) = http::serve(listener, state, until_closed).await {
                    tracing::error!("HTTP server: {e}");
                }
            });
            tracing::info!("HTTP API on http://{addr}/");
            Some(addr)
        }
        None => None,
    };

    let mut push_addrs = Vec::new();
    for channel_config in &config.channels {
        if let ChannelConfig::Push(push) = channel_config {
            let serial = journal.last_seq().map_err(journal_err)? as u32;
            let channel = PushChannel::start(
                push,
                &config.node,
                &engine.current(),
                serial,
                metrics.clone(),
            )
            .await
            .map_err(|source| DaemonError::Push {
                name: push.name.clone(),
                source,
            })?;
            tracing::info!(
                channel = push.name,
                "DNS Push for {} on {} (TLS)",
                channel.apex,
                channel.addr
            );
            health.channel(&push.name, "push").connected(format!(
                "serving {} on {} (TLS)",
                channel.apex, channel.addr
            ));
            push_addrs.push((push.name.clone(), channel.addr));
            step.hubs.push(channel.hub.clone());
            tasks.spawn(channel.serve());
            continue;
        }
        let channel =
            Channel::open(channel_config)
                .await
                .map_err(|source| DaemonError::Channel {
                    name: channel_config.name().to_string(),
                    source,
                })?;
        let (journal, latest, metrics) = (journal.clone(), latest_rx.clone(), metrics.clone());
        let channel_health = health.channel(channel_config.name(), channel_config.kind());
        tasks.spawn(async move {
            let name = channel.name().to_string();
            let stopped = channel_health.clone();
            if let Err(e) =
                channels::run_channel(channel, journal, latest, metrics, channel_health).await
            {
                stopped.gone(format!("stopped: {e}"));
                tracing::error!(channel = name, "channel stopped: {e}");
            }
        });
    }

    let (obs_tx, mut obs_rx) = mpsc::channel::<Observation>(OBSERVATION_QUEUE);
    let mut sources = JoinSet::new();
    for source in &config.sources {
        spawn_source(
            &config,
            source,
            obs_tx.clone(),
            &metrics,
            &health,
            &mut sources,
        );
    }
    drop(obs_tx);
    started(Running {
        http_addr,
        push_addrs,
    });

    let retention = config.journal.retention;
    let max_signals = config.journal.max_signals;
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    let mut sources_open = true;
    tokio::pin!(shutdown);
    loop {
        let deadline = engine.next_deadline();
        let hold_ends = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            obs = obs_rx.recv(), if sources_open => {
                let Some(obs) = obs else {
                    // Every source ended (or none is configured): keep serving the API,
                    // its commands and reports, and the channels until shutdown.
                    sources_open = false;
                    continue;
                };
                match engine.observe(obs, Moment::now()) {
                    Ok(signals) => step.record(&mut engine, signals).map_err(journal_err)?,
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            Some(control) = control_rx.recv() => {
                let signals = control_step(&config, &mut engine, &anycast, control, &mut tasks);
                step.record(&mut engine, signals).map_err(journal_err)?;
            }
            () = hold_ends => {
                let signals = engine.tick(Moment::now());
                step.record(&mut engine, signals).map_err(journal_err)?;
            }
            _ = prune.tick() => {
                let cutoff = chrono::Utc::now()
                    - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
                match journal.prune(cutoff, max_signals) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("pruned {n} signals older than the retention"),
                    Err(e) => tracing::warn!("pruning the journal: {e}"),
                }
            }
        }
    }
    sources.abort_all();
    for hub in &step.hubs {
        hub.shut_down();
    }
    anycast.shut_down().await;
    drop(latest_tx);
    // Let channels finish what is in the journal; they end when `latest` closes.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tracing::warn!(
            "channels did not finish within 5 s; they continue from the journal at the next start"
        );
    }
    Ok(())
}

/// Writes one engine step to the journal and tells the channels.
struct Step<'a> {
    journal: &'a Journal,
    metrics: &'a Metrics,
    latest: &'a watch::Sender<u64>,
    /// Push channels see each step as it is recorded, state changes included.
    hubs: Vec<Arc<Hub>>,
    /// The anycast controllers hear of every change to the met conditions.
    anycast: &'a Anycast,
}

impl Step<'_> {
    fn record(&mut self, engine: &mut Engine, signals: Vec<Signal>) -> Result<(), JournalError> {
        let changes = engine.take_changes();
        if signals.is_empty() && changes.is_empty() {
            return Ok(());
        }
        self.journal.record(&signals, &changes)?;
        for signal in &signals {
            tracing::debug!(seq = signal.seq, "{}", signal.to_json_line());
            self.metrics.signal(signal);
        }
        let current = engine.current();
        self.metrics.set_current(&current);
        self.anycast.apply(&current);
        for hub in &self.hubs {
            hub.apply(&signals, &changes);
        }
        if let Some(last) = signals.last() {
            self.latest.send_replace(last.seq);
        }
        Ok(())
    }
}

/// Applies an operator's command to the engine; a drain's wait for the BGP daemons runs
/// in its own task and answers when done. Returns the signals to record.
fn control_step(
    config: &Config,
    engine: &mut Engine,
    anycast: &Anycast,
    control: Control,
    tasks: &mut JoinSet<()>,
) -> Vec<Signal> {
    let now = Moment::now();
    let unknown = |server: String| DrainError::UnknownServer {
        server,
        known: config
            .servers
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", "),
    };
    match control {
        Control::Drain {
            server,
            reason,
            wait,
            reply,
        } => match engine.drain(&server, &reason, now) {
            Ok(signals) => {
                tracing::info!(
                    server,
                    reason,
                    "drained: withdrawing the policies that name it"
                );
                let waiting = DrainWait::new(anycast, &server, &reason);
                tasks.spawn(async move {
                    let _ = reply.send(waiting.run(wait).await);
                });
                signals
            }
            Err(_) => {
                let _ = reply.send(Err(unknown(server)));
                Vec::new()
            }
        },
        Control::Undrain { server, reply } => {
            let was_drained = engine.is_drained(&server);
            match engine.undrain(&server, now) {
                Ok(signals) => {
                    if was_drained {
                        tracing::info!(server, "undrained");
                    }
                    let _ = reply.send(Ok(DrainReport {
                        policies: anycast
                            .dependents(&server)
                            .iter()
                            .map(|p| p.name.clone())
                            .collect(),
                        server,
                        drained: false,
                        reason: None,
                        withdrawn_after_ms: None,
                        grace_ms: 0,
                    }));
                    signals
                }
                Err(_) => {
                    let _ = reply.send(Err(unknown(server)));
                    Vec::new()
                }
            }
        }
        Control::Observe {
            observations,
            reply,
        } => {
            let mut signals = Vec::new();
            for observation in observations {
                match engine.observe(observation, now) {
                    Ok(more) => signals.extend(more),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return signals;
                    }
                }
            }
            let _ = reply.send(Ok(signals.clone()));
            signals
        }
    }
}

fn server_models(config: &Config) -> Vec<ServerModel> {
    config
        .servers
        .iter()
        .map(|s| ServerModel {
            name: s.name.clone(),
            zones: s.zones.clone(),
            hold: s.hold,
        })
        .collect()
}

fn spawn_source(
    config: &Config,
    source: &SourceConfig,
    tx: mpsc::Sender<Observation>,
    metrics: &Arc<Metrics>,
    board: &Arc<crate::health::Board>,
    tasks: &mut JoinSet<()>,
) {
    let health = board.source(source.kind(), source.server());
    match source {
        SourceConfig::Control(control) => {
            let server = config
                .server(&control.server)
                .expect("config validation guarantees every source names a configured server");
            let settings = crate::sources::control::ControlSettings::new(control, server);
            tasks.spawn(crate::sources::control::run_control(
                settings,
                tx,
                metrics.clone(),
                health,
            ));
        }
        SourceConfig::InTree(in_tree) => {
            tasks.spawn(crate::intree::source::run_in_tree(
                in_tree.clone(),
                tx,
                health,
            ));
        }
        SourceConfig::Dnstap(dnstap) => {
            let server = config
                .server(&dnstap.server)
                .expect("config validation guarantees every source names a configured server");
            let settings = crate::sources::dnstap::DnstapSettings::new(dnstap, server);
            tasks.spawn(crate::sources::dnstap::run_dnstap(
                settings,
                tx,
                metrics.clone(),
                health,
            ));
        }
        SourceConfig::Probe(probe) => {
            let settings = probe_settings(config, probe);
            tasks.spawn(run_probe(settings, tx, health));
        }
        SourceConfig::Process(process) => {
            let settings = ProcessSettings {
                server: process.server.clone(),
                pid_file: process.pid_file.clone(),
                pid: process.pid,
            };
            tasks.spawn(run_process_watch(settings, tx, health));
        }
        SourceConfig::KnotDbus(dbus) => {
            let server = config
                .server(&dbus.server)
                .expect("config validation guarantees every source names a configured server");
            let settings = KnotDbusSettings {
                server: server.name.clone(),
                server_address: server.address,
                zones: server.zones.clone(),
                bus: dbus.bus.clone(),
                control_socket: dbus.control_socket.clone(),
                timeout: dbus.timeout,
            };
            tasks.spawn(run_knot_dbus(settings, tx, health));
        }
        SourceConfig::NotifyIn(notify) => {
            let server = config
                .server(&notify.server)
                .expect("config validation guarantees every source names a configured server");
            let settings = NotifyInSettings {
                server: server.name.clone(),
                server_address: server.address,
                zones: server.zones.clone(),
                listen: notify.listen,
                allow: notify.allow.clone(),
                tsig_key: notify.tsig_key.clone(),
                require_tsig: notify.requires_tsig(),
                min_interval: notify.min_interval,
                timeout: notify.timeout,
            };
            tasks.spawn(run_notify_in(settings, tx, metrics.clone(), health));
        }
        SourceConfig::ZoneHealth(zone_health) => {
            let server = config
                .server(&zone_health.server)
                .expect("config validation guarantees every source names a configured server");
            let settings =
                crate::sources::zone_health::ZoneHealthSettings::new(zone_health, server);
            tasks.spawn(crate::sources::zone_health::run_zone_health(
                settings, tx, health,
            ));
        }
    }
}

/// The probe settings of a configured probe source.
pub fn probe_settings(config: &Config, probe: &crate::config::ProbeConfig) -> ProbeSettings {
    let server = config
        .server(&probe.server)
        .expect("config validation guarantees every source names a configured server");
    ProbeSettings {
        server: server.name.clone(),
        address: server.address,
        zones: probe.zones.clone().unwrap_or_else(|| server.zones.clone()),
        interval: probe.interval,
        timeout: probe.timeout,
        rise: probe.rise,
        fall: probe.fall,
    }
}
