//! Channels carry signals out of the daemon.
//!
//! Every channel reads the journal from its own delivery cursor, so it sees every signal
//! once, in order, also across restarts (at least once: a signal delivered just before a
//! kill -9, whose cursor was not yet written, is delivered again). A channel that is new to
//! a journal starts with the signals that follow its first start, not with the history.
//!
//! * [`log`] writes signal JSON lines to stdout or a file;
//! * [`exec`] runs a command per signal (design.md §3, "Exec");
//! * [`mqtt`] publishes to an MQTT broker (design.md §3, "MQTT"), with its own delivery loop:
//!   it keeps several publishes in flight and moves its cursor on the broker's PUBACKs;
//! * [`webhook`] POSTs HMAC-signed signal JSON to an HTTP(S) receiver, with its own loop:
//!   it tries one signal until a `2xx`, with backoff, and never skips.
//! * [`dbus`] emits signals on a D-Bus bus and serves the current state to late listeners
//!   (docs/dbus-interface.md), with its own loop that reconnects to the bus.
//! * [`notify`] sends DNS NOTIFY (RFC 1996) to targets, optionally TSIG-signed, and can
//!   serve the signals zone for them to transfer, with its own loop: one NOTIFY covers every
//!   signal before it, so its cursor follows the targets' answers.

pub mod dbus;
pub mod exec;
pub mod log;
pub mod mqtt;
pub mod notify;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{ChannelConfig, SignalFilter};
use crate::health::{Health, HealthState};
use crate::http::metrics::Metrics;
use crate::journal::{Journal, JournalError};
use crate::signal::Signal;

/// How many signals a channel reads from the journal at a time.
const BATCH: usize = 256;

/// Why a channel could not deliver a signal.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("cannot write to {target}: {source}")]
    Write {
        target: String,
        source: std::io::Error,
    },
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    Timeout { command: String, timeout: Duration },
    #[error("channel `{0}` serves the current state and does not read the journal")]
    NotJournal(String),
    #[error("`{command}` failed: {status}")]
    Failed { command: String, status: String },
    #[error("channel `{channel}`: cannot set up its HTTP client: {error}")]
    Http { channel: String, error: String },
    #[error(transparent)]
    Tls(#[from] crate::push::tls::TlsError),
    #[error("channel `{channel}`: {message}")]
    Setup { channel: String, message: String },
}

/// One configured channel, ready to deliver.
pub enum Channel {
    Log(log::LogChannel),
    Exec(exec::ExecChannel),
    Mqtt(Box<mqtt::MqttChannel>),
    Webhook(Box<webhook::WebhookChannel>),
    Dbus(Box<dbus::DbusChannel>),
    Notify(Box<notify::NotifyChannel>),
}

impl Channel {
    /// Builds a channel from its configuration (opens files, nothing else).
    pub async fn open(config: &ChannelConfig) -> Result<Channel, ChannelError> {
        Ok(match config {
            ChannelConfig::Log(c) => Channel::Log(log::LogChannel::open(c).await?),
            ChannelConfig::Exec(c) => Channel::Exec(exec::ExecChannel::new(c)),
            ChannelConfig::Push(c) => return Err(ChannelError::NotJournal(c.name.clone())),
            ChannelConfig::Mqtt(c) => Channel::Mqtt(Box::new(mqtt::MqttChannel::open(c)?)),
            ChannelConfig::Webhook(c) => {
                Channel::Webhook(Box::new(webhook::WebhookChannel::open(c)?))
            }
            ChannelConfig::Dbus(c) => Channel::Dbus(Box::new(dbus::DbusChannel::new(c))),
            ChannelConfig::Notify(c) => Channel::Notify(Box::new(notify::NotifyChannel::open(c)?)),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Channel::Log(c) => c.name(),
            Channel::Exec(c) => c.name(),
            Channel::Mqtt(c) => c.name(),
            Channel::Webhook(c) => c.name(),
            Channel::Dbus(c) => c.name(),
            Channel::Notify(c) => c.name(),
        }
    }

    fn filter(&self) -> &SignalFilter {
        match self {
            Channel::Log(c) => c.filter(),
            Channel::Exec(c) => c.filter(),
            Channel::Mqtt(c) => c.filter(),
            Channel::Webhook(c) => c.filter(),
            Channel::Dbus(c) => c.filter(),
            Channel::Notify(c) => c.filter(),
        }
    }

    async fn deliver(&mut self, signal: &Signal) -> Result<(), ChannelError> {
        match self {
            Channel::Log(c) => c.deliver(signal).await,
            Channel::Exec(c) => c.deliver(signal).await,
            Channel::Mqtt(_) | Channel::Webhook(_) | Channel::Dbus(_) | Channel::Notify(_) => {
                unreachable!("the mqtt, webhook, dbus and notify channels run their own loops")
            }
        }
    }

    /// Whether a failed delivery is tried again (the peer may come back) or given up
    /// (a command that failed has had its run).
    fn retries(&self) -> bool {
        matches!(self, Channel::Log(_))
    }
}

/// Delivers journal signals to one channel until `latest` is closed, following the journal's
/// newest `seq` through `latest`.
pub async fn run_channel(
    channel: Channel,
    journal: Arc<Journal>,
    mut latest: watch::Receiver<u64>,
    metrics: Arc<Metrics>,
    health: Health,
) -> Result<(), JournalError> {
    let mut channel = match channel {
        Channel::Mqtt(mqtt) => return mqtt.run(journal, latest, metrics, health).await,
        Channel::Webhook(webhook) => return webhook.run(journal, latest, metrics, health).await,
        Channel::Dbus(dbus) => return dbus.run(journal, latest, metrics, health).await,
        Channel::Notify(notify) => return notify.run(journal, latest, metrics, health).await,
        other => other,
    };
    let name = channel.name().to_string();
    let mut cursor = start_cursor(&journal, &name)?;
    health.connected(match &channel {
        Channel::Log(c) => format!("writing to {}", c.target()),
        _ => "ready".to_string(),
    });
    loop {
        let batch = journal.signals_after(cursor, BATCH)?;
        if batch.is_empty() {
            if latest.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        for signal in &batch {
            if channel.filter().matches(signal) {
                deliver_with_retry(&mut channel, signal, &metrics, &health).await;
            }
            cursor = signal.seq;
            journal.set_cursor(&name, cursor)?;
            metrics.channel_delivered(&name, cursor);
        }
    }
}

/// The channel's delivery cursor; a channel new to the journal starts at its last `seq`.
fn start_cursor(journal: &Journal, name: &str) -> Result<u64, JournalError> {
    match journal.cursor(name)? {
        Some(seq) => Ok(seq),
        None => {
            let start = journal.last_seq()?;
            journal.set_cursor(name, start)?;
            Ok(start)
        }
    }
}

async fn deliver_with_retry(
    channel: &mut Channel,
    signal: &Signal,
    metrics: &Metrics,
    health: &Health,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match channel.deliver(signal).await {
            Ok(()) => {
                if health.state() != HealthState::Connected {
                    health.connected(format!("delivered signal {}", signal.seq));
                }
                return;
            }
            Err(e) => {
                metrics.channel_error(channel.name());
                if !channel.retries() {
                    // A command that failed has had its run; the next signal runs it
                    // again, and a success makes the channel connected again.
                    health.stalled(format!("signal {}: {e}", signal.seq));
                    tracing::warn!(channel = channel.name(), seq = signal.seq, "{e}");
                    return;
                }
                health.gone(format!("signal {}: {e}", signal.seq));
                tracing::warn!(
                    channel = channel.name(),
                    seq = signal.seq,
                    "{e}; trying again in {backoff:?}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
