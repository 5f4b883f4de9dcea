//! The `dbus` channel: signals emitted on a D-Bus bus, and the current state on request, so a
//! listener that starts late can resynchronise (docs/dbus-interface.md is the contract).
//!
//! The channel owns a well-known name (default `org.dnsoops.Signals1`) and serves object
//! [`OBJECT_PATH`] with interface [`INTERFACE`] (version 1; an incompatible change gets a
//! new interface name, `…Signals2`):
//!
//! * signals `Met`, `Cleared` and `Event`, one per journal signal the filter lets through, in
//!   `seq` order, each carrying `(t seq, s time, s node, s server, s condition, s subject,
//!   a{sv} args, s source)`; `subject` is `-` for server-level conditions;
//! * method `GetConditions() → (t seq, a(ssssa{sv}st))`: every condition met now (that the
//!   filter lets through) as `(server, condition, subject, since, args, source, seq)`, and
//!   the journal's `seq` they are as of. A listener subscribes first, then calls it, and
//!   ignores signals whose `seq` is not above the one returned;
//! * method `GetSignalsAfter(t after, u limit) → (t through, a(tsssssa{sv}ss))`: of the
//!   journal's signals after `after` (at most `limit`, at most [`MAX_SIGNALS_PER_CALL`]),
//!   those the filter lets through, each as `(seq, time, node, server, condition, subject,
//!   args, source, state)`, and `through`, the `seq` of the last one looked at (the next
//!   call's `after`), so a listener that was away can also replay the events it missed
//!   while the journal keeps them.
//!
//! `org.freedesktop.DBus.Introspectable` and `org.freedesktop.DBus.Peer` are answered too;
//! anything else gets `org.freedesktop.DBus.Error.UnknownMethod` (or `UnknownObject`).
//!
//! Delivery reads the journal from the channel's cursor, like every channel; the cursor
//! moves past a signal once the bus daemon has taken it. D-Bus itself keeps no signal for a
//! listener that is not there; the cursor only guarantees that nothing is skipped while the
//! bus is unreachable: the connection is retried (1 s doubling to 30 s, logged and counted
//! in `dns_oops_channel_errors_total`) and emission resumes where it stopped, and a
//! dns-oops killed mid-way emits again what it had not recorded as emitted (at least once;
//! `seq` tells duplicates apart).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use zbus::Variant as Value;
use zbus::fdo::{RequestNameFlags, RequestNameReply};
use zbus::message::Type as MessageType;
use zbus::{Connection, Message, MessageStream};

use super::{BATCH, start_cursor};
use crate::config::{DbusBus, DbusChannelConfig, SignalFilter};
use crate::health::Health;
use crate::http::metrics::Metrics;
use crate::journal::{Journal, JournalError};
use crate::signal::{Args, CurrentCondition, Signal, SignalState};

/// The object every signal is emitted from and every method is served on.
pub const OBJECT_PATH: &str = "/org/dnsoops/Signals1";
/// The interface, version 1.
pub const INTERFACE: &str = "org.dnsoops.Signals1";
/// `GetSignalsAfter` returns at most this many signals per call.
pub const MAX_SIGNALS_PER_CALL: u32 = 1000;
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The introspection data of [`OBJECT_PATH`]; docs/dbus-interface.md shows the same text.
pub const INTROSPECTION: &str = r#"<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node name="/org/dnsoops/Signals1">
  <interface name="org.dnsoops.Signals1">
    <method name="GetConditions">
      <arg name="seq" type="t" direction="out"/>
      <arg name="conditions" type="a(ssssa{sv}st)" direction="out"/>
    </method>
    <method name="GetSignalsAfter">
      <arg name="after" type="t" direction="in"/>
      <arg name="limit" type="u" direction="in"/>
      <arg name="through" type="t" direction="out"/>
      <arg name="signals" type="a(tsssssa{sv}ss)" direction="out"/>
    </method>
    <signal name="Met">
      <arg name="seq" type="t"/>
      <arg name="time" type="s"/>
      <arg name="node" type="s"/>
      <arg name="server" type="s"/>
      <arg name="condition" type="s"/>
      <arg name="subject" type="s"/>
      <arg name="args" type="a{sv}"/>
      <arg name="source" type="s"/>
    </signal>
    <signal name="Cleared">
      <arg name="seq" type="t"/>
      <arg name="time" type="s"/>
      <arg name="node" type="s"/>
      <arg name="server" type="s"/>
      <arg name="condition" type="s"/>
      <arg name="subject" type="s"/>
      <arg name="args" type="a{sv}"/>
      <arg name="source" type="s"/>
    </signal>
    <signal name="Event">
      <arg name="seq" type="t"/>
      <arg name="time" type="s"/>
      <arg name="node" type="s"/>
      <arg name="server" type="s"/>
      <arg name="condition" type="s"/>
      <arg name="subject" type="s"/>
      <arg name="args" type="a{sv}"/>
      <arg name="source" type="s"/>
    </signal>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
  </interface>
</node>
"#;

/// A signal's body: `(seq, time, node, server, condition, subject, args, source)`.
type SignalBody<'a> = (
    u64,
    String,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    HashMap<&'a str, Value<'a>>,
    &'a str,
);

/// One row of `GetConditions`: `(server, condition, subject, since, args, source, seq)`.
type ConditionRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    String,
    HashMap<&'a str, Value<'a>>,
    &'a str,
    u64,
);

/// One row of `GetSignalsAfter`: a signal body and its state.
type SignalRow<'a> = (
    u64,
    String,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    HashMap<&'a str, Value<'a>>,
    &'a str,
    &'a str,
);

/// A configured D-Bus channel.
pub struct DbusChannel {
    config: DbusChannelConfig,
}

/// Why delivery stopped.
enum Stop {
    /// The daemon is shutting down.
    Closed,
    /// The bus connection failed; try again.
    Bus(zbus::Error),
    Journal(JournalError),
}

impl DbusChannel {
    pub fn new(config: &DbusChannelConfig) -> DbusChannel {
        DbusChannel {
            config: config.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn filter(&self) -> &SignalFilter {
        &self.config.filter
    }

    /// Emits journal signals until `latest` is closed and everything is emitted, or until it
    /// is closed while the bus is unreachable.
    pub async fn run(
        self,
        journal: Arc<Journal>,
        mut latest: watch::Receiver<u64>,
        metrics: Arc<Metrics>,
        health: Health,
    ) -> Result<(), JournalError> {
        let name = self.config.name.clone();
        let mut cursor = start_cursor(&journal, &name)?;
        let mut backoff = Duration::from_secs(1);
        loop {
            let error = match self.connect().await {
                Ok(connection) => {
                    tracing::info!(
                        channel = name,
                        bus_name = self.config.bus_name,
                        "dbus: on the bus, emitting from seq {}",
                        cursor + 1
                    );
                    backoff = Duration::from_secs(1);
                    health.connected(format!("on the bus as {}", self.config.bus_name));
                    let calls = tokio::spawn(answer_calls(
                        connection.clone(),
                        journal.clone(),
                        self.config.filter.clone(),
                    ));
                    let stop = self
                        .emit(&connection, &journal, &mut cursor, &mut latest, &metrics)
                        .await;
                    calls.abort();
                    match stop {
                        Stop::Closed => return Ok(()),
                        Stop::Journal(e) => return Err(e),
                        Stop::Bus(e) => e,
                    }
                }
                Err(e) => e,
            };
            metrics.channel_error(&name);
            let detail = format!("{error}; connecting again in {backoff:?}");
            if matches!(error, zbus::Error::NameTaken) {
                health.stalled(detail);
            } else {
                health.gone(detail);
            }
            tracing::warn!(
                channel = name,
                "dbus: {error}; signals after seq {cursor} wait, connecting again in {backoff:?}"
            );
            let closed = async { while latest.changed().await.is_ok() {} };
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = closed => {
                    tracing::info!(
                        channel = name,
                        "shutting down without the bus; the signals after seq {cursor} are emitted at the next start"
                    );
                    return Ok(());
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Connects and takes the well-known name.
    async fn connect(&self) -> zbus::Result<Connection> {
        let connection = match &self.config.bus {
            DbusBus::System => Connection::system().await?,
            DbusBus::Session => Connection::session().await?,
            DbusBus::Address(address) => {
                zbus::connection::Builder::address(address.as_str())
                    .build()
                    .await?
            }
        };
        let reply = connection
            .request_name_with_flags(
                self.config.bus_name.as_str(),
                RequestNameFlags::DO_NOT_QUEUE,
            )
            .await?;
        match reply {
            RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => Ok(connection),
            RequestNameReply::Exists | RequestNameReply::InQueue => Err(zbus::Error::NameTaken),
        }
    }

    /// Emits from `cursor` on until the connection fails or `latest` closes with nothing
    /// left to emit.
    async fn emit(
        &self,
        connection: &Connection,
        journal: &Journal,
        cursor: &mut u64,
        latest: &mut watch::Receiver<u64>,
        metrics: &Metrics,
    ) -> Stop {
        let name = &self.config.name;
        loop {
            let batch = match journal.signals_after(*cursor, BATCH) {
                Ok(batch) => batch,
                Err(e) => return Stop::Journal(e),
            };
            if batch.is_empty() {
                tokio::select! {
                    changed = latest.changed() => if changed.is_err() {
                        return Stop::Closed;
                    },
                    () = connection.closed() => {
                        return Stop::Bus(zbus::Error::Failure("the bus connection closed".into()));
                    }
                }
                continue;
            }
            for signal in &batch {
                if self.config.filter.matches(signal) {
                    let member = match signal.state {
                        SignalState::Met => "Met",
                        SignalState::Cleared => "Cleared",
                        SignalState::Event => "Event",
                    };
                    let sent = connection
                        .emit_signal(
                            None::<&str>,
                            OBJECT_PATH,
                            INTERFACE,
                            member,
                            &signal_body(signal),
                        )
                        .await;
                    if let Err(e) = sent {
                        return Stop::Bus(e);
                    }
                }
                *cursor = signal.seq;
                if let Err(e) = journal.set_cursor(name, *cursor) {
                    return Stop::Journal(e);
                }
                metrics.channel_delivered(name, *cursor);
            }
        }
    }
}

/// Answers method calls on `connection` until it closes.
async fn answer_calls(connection: Connection, journal: Arc<Journal>, filter: SignalFilter) {
    // Every message the connection receives; zbus drops the oldest past its queue length,
    // so a flood of calls cannot grow memory.
    let mut messages = MessageStream::from(&connection);
    while let Some(message) = messages.next().await {
        let Ok(call) = message else {
            continue;
        };
        if call.message_type() != MessageType::MethodCall {
            continue;
        }
        if let Err(e) = answer(&connection, &call, &journal, &filter).await {
            tracing::warn!("dbus: cannot answer a method call: {e}");
        }
    }
}

/// Answers one method call.
async fn answer(
    connection: &Connection,
    call: &Message,
    journal: &Journal,
    filter: &SignalFilter,
) -> zbus::Result<()> {
    let header = call.header();
    let path = header.path().map(|p| p.as_str()).unwrap_or_default();
    let interface = header.interface().map(|i| i.as_str());
    let member = header.member().map(|m| m.as_str()).unwrap_or_default();
    if path != OBJECT_PATH {
        let text = format!("no object at {path}; dns-oops serves {OBJECT_PATH}");
        return connection
            .reply_error(&header, "org.freedesktop.DBus.Error.UnknownObject", &text)
            .await;
    }
    match (interface, member) {
        (Some(INTERFACE) | None, "GetConditions") => {
            let (seq, current) = match journal.current_with_seq() {
                Ok(state) => state,
                Err(e) => return reply_failed(connection, &header, &e.to_string()).await,
            };
            let rows: Vec<ConditionRow> = current
                .iter()
                .filter(|c| {
                    (filter.conditions.is_empty() || filter.conditions.contains(&c.condition))
                        && (filter.servers.is_empty() || filter.servers.contains(&c.server))
                })
                .map(condition_row)
                .collect();
            connection.reply(&header, &(seq, rows)).await
        }
        (Some(INTERFACE) | None, "GetSignalsAfter") => {
            let Ok((after, limit)) = call.body().deserialize::<(u64, u32)>() else {
                return connection
                    .reply_error(
                        &header,
                        "org.freedesktop.DBus.Error.InvalidArgs",
                        &"GetSignalsAfter takes (t after, u limit)",
                    )
                    .await;
            };
            let limit = limit.min(MAX_SIGNALS_PER_CALL) as usize;
            let signals = match journal.signals_after(after, limit) {
                Ok(signals) => signals,
                Err(e) => return reply_failed(connection, &header, &e.to_string()).await,
            };
            let through = signals.last().map_or(after, |s| s.seq);
            let rows: Vec<SignalRow> = signals
                .iter()
                .filter(|s| filter.matches(s))
                .map(|s| {
                    let (seq, time, node, server, condition, subject, args, source) =
                        signal_body(s);
                    let state = s.state.as_str();
                    (
                        seq, time, node, server, condition, subject, args, source, state,
                    )
                })
                .collect();
            connection.reply(&header, &(through, rows)).await
        }
        (Some("org.freedesktop.DBus.Introspectable"), "Introspect") => {
            connection.reply(&header, &INTROSPECTION).await
        }
        (Some("org.freedesktop.DBus.Peer"), "Ping") => connection.reply(&header, &()).await,
        _ => {
            let text = format!(
                "no method {}.{member} at {OBJECT_PATH}",
                interface.unwrap_or("?")
            );
            connection
                .reply_error(&header, "org.freedesktop.DBus.Error.UnknownMethod", &text)
                .await
        }
    }
}

async fn reply_failed(
    connection: &Connection,
    header: &zbus::message::Header<'_>,
    text: &str,
) -> zbus::Result<()> {
    connection
        .reply_error(header, "org.freedesktop.DBus.Error.Failed", &text)
        .await
}

/// A signal as the body of `Met`, `Cleared` or `Event`.
fn signal_body(signal: &Signal) -> SignalBody<'_> {
    (
        signal.seq,
        crate::signal::format_time(&signal.time),
        &signal.node,
        &signal.server,
        signal.condition.as_str(),
        signal.subject_or_dash(),
        args_dict(&signal.args),
        &signal.source,
    )
}

fn condition_row(c: &CurrentCondition) -> ConditionRow<'_> {
    (
        &c.server,
        c.condition.as_str(),
        c.subject.as_deref().unwrap_or("-"),
        crate::signal::format_time(&c.since),
        args_dict(&c.args),
        &c.source,
        c.seq,
    )
}

/// Arguments as `a{sv}`: integers as `x` (or `t` above `i64`), other numbers as `d`,
/// booleans as `b`, strings as `s`, anything else as its JSON text in an `s`.
fn args_dict(args: &Args) -> HashMap<&str, Value<'_>> {
    args.iter()
        .map(|(name, value)| {
            let value = match value {
                serde_json::Value::String(s) => Value::from(s.as_str()),
                serde_json::Value::Bool(b) => Value::Bool(*b),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => Value::I64(i),
                    (None, Some(u)) => Value::U64(u),
                    _ => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
                },
                other => Value::from(other.to_string()),
            };
            (name.as_str(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::{DynamicType, Type};

    #[test]
    fn bodies_have_the_documented_signatures() {
        let signal = Signal {
            seq: 7,
            time: chrono::Utc::now(),
            node: "lab".into(),
            server: "knot".into(),
            condition: crate::condition::ConditionId::ZoneReady,
            subject: Some("a.test.".into()),
            state: SignalState::Met,
            args: Args::from([
                ("serial".to_string(), 2026112201u32.into()),
                ("text".to_string(), "x".into()),
            ]),
            source: "probe".into(),
        };
        assert_eq!(
            DynamicType::signature(&signal_body(&signal)).to_string(),
            "(tsssssa{sv}s)"
        );
        assert_eq!(
            <(u64, Vec<ConditionRow>)>::SIGNATURE.to_string(),
            "(ta(ssssa{sv}st))"
        );
        assert_eq!(
            <(u64, Vec<SignalRow>)>::SIGNATURE.to_string(),
            "(ta(tsssssa{sv}ss))"
        );
        let args = args_dict(&signal.args);
        assert_eq!(args["serial"], Value::I64(2026112201));
        assert_eq!(args["text"], Value::from("x"));
    }

    #[test]
    fn the_documented_interface_is_the_served_one() {
        let doc = include_str!("../../docs/dbus-interface.md");
        assert!(
            doc.contains(INTROSPECTION),
            "docs/dbus-interface.md must show the introspection data of src/channels/dbus.rs"
        );
    }
}
