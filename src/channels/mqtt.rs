//! The `mqtt` channel: signals published to an MQTT broker over MQTT 5, or 3.1.1 (design.md
//! §3, "MQTT").
//!
//! * Topic `<prefix>/<node>/<server>/<condition>/<subject>`: the subject without its
//!   trailing dot (`.` for the root zone), `-` for server-level conditions. QoS 1.
//! * `met`: the signal JSON, retained. `cleared`: the signal JSON (not retained), then an
//!   empty retained message that clears the topic's retained state. `event`: the signal
//!   JSON, not retained. JSON payloads carry content type `application/json`.
//! * `<prefix>/<node>/status`: `online`, retained, published on every connection; the last
//!   will is `offline`, retained, so a dns-oops that dies (or loses its connection) is shown
//!   `offline`. A clean shutdown publishes `offline` itself.
//!
//! Delivery reads the journal from the channel's cursor, like every channel, but keeps
//! several publishes in flight: the cursor moves past a signal only when the broker has
//! acknowledged (PUBACK) every message of it and of every signal before it. When the
//! connection fails, the session is dropped and a new one starts after a backoff (0.1 s
//! doubling to 30 s) from the cursor, so what was not acknowledged is published again, in
//! order: at least once, with duplicates possible around a reconnection (the `seq` tells
//! them apart).
//!
//! The session is persistent (clean start off, a session expiry of one day), so the
//! CONNACK's "session present" flag says whether the broker still knows this client. When
//! it does not — first contact, or a broker restarted without persistence, which lost the
//! retained messages too — the retained state of every condition met now (the journal's
//! current state, as far as the filter lets it through) is published again before the
//! journal is replayed; conditions whose `met` signal is still to be replayed are left to
//! the replay, so per topic the order of `seq` holds. A republished message is the `met`
//! signal with the arguments as they are now.
//!
//! MQTT 5 first; a broker that answers an MQTT 5 CONNECT with "unsupported protocol
//! version", with a CONNACK in the older format, or by closing the connection, is asked
//! again at once with MQTT 3.1.1,
//! which the channel keeps using until a 3.1.1 connection is refused the same way. In 3.1.1
//! the messages carry no content type and a refused publish cannot be told from an accepted
//! one; the session is persistent (clean session off), with the same "session present"
//! logic.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, LastWill, Packet, PubAckReason, PublishProperties,
};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions, StateError};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::{mpsc, watch};

use super::{ChannelError, start_cursor};
use crate::config::{MqttChannelConfig, MqttPassword, SignalFilter};
use crate::health::Health;
use crate::http::metrics::Metrics;
use crate::journal::{Journal, JournalError};
use crate::push::tls::{ClientTlsOptions, client_config};
use crate::signal::{CurrentCondition, Signal, SignalState};

/// Signals read from the journal but not yet acknowledged, at most.
const WINDOW: usize = 1024;
/// Requests waiting for the MQTT event loop, at most.
const REQUESTS: usize = 64;
/// How long the broker keeps the session after a disconnection (seconds).
const SESSION_EXPIRY: u32 = 86_400;
/// How long a TCP (and TLS) connection and its CONNACK may take (seconds).
const CONNECT_TIMEOUT: u64 = 5;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a clean shutdown waits for the broker to acknowledge `offline`.
const GOODBYE: Duration = Duration::from_secs(2);

/// An `mqtt` channel, ready to connect.
pub struct MqttChannel {
    config: MqttChannelConfig,
    options: MqttOptions,
    /// The same settings for MQTT 3.1.1.
    options_311: rumqttc::MqttOptions,
}

impl MqttChannel {
    /// Reads the password file and the TLS files; connects only in [`MqttChannel::run`].
    pub fn open(config: &MqttChannelConfig) -> Result<MqttChannel, ChannelError> {
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options
            .set_keep_alive(config.keepalive)
            .set_clean_start(false)
            .set_session_expiry_interval(Some(SESSION_EXPIRY))
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_last_will(LastWill::new(
                config.status_topic(),
                "offline",
                QoS::AtLeastOnce,
                true,
                None,
            ));
        let mut options_311 =
            rumqttc::MqttOptions::new(&config.client_id, &config.host, config.port);
        options_311
            .set_keep_alive(config.keepalive)
            .set_clean_session(false)
            .set_last_will(rumqttc::LastWill::new(
                config.status_topic(),
                "offline",
                rumqttc::QoS::AtLeastOnce,
                true,
            ));
        if let Some(username) = &config.username {
            let password = match &config.password {
                None => String::new(),
                Some(MqttPassword::Inline(secret)) => secret.expose().to_string(),
                Some(MqttPassword::File(path)) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| ChannelError::Open {
                            path: path.display().to_string(),
                            source,
                        })?;
                    let text = text.strip_suffix('\n').unwrap_or(&text);
                    text.strip_suffix('\r').unwrap_or(text).to_string()
                }
            };
            options.set_credentials(username, password.clone());
            options_311.set_credentials(username, password);
        }
        if let Some(tls) = &config.tls {
            let client = client_config(&ClientTlsOptions {
                ca: tls.ca.clone(),
                insecure: false,
                identity: tls.identity.clone(),
            })?;
            let transport = Transport::tls_with_config(TlsConfiguration::Rustls(client));
            options.set_transport(transport.clone());
            options_311.set_transport(transport);
        }
        Ok(MqttChannel {
            config: config.clone(),
            options,
            options_311,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn filter(&self) -> &SignalFilter {
        &self.config.filter
    }

    /// Delivers journal signals until `latest` is closed and everything is delivered (or
    /// the broker is unreachable at that moment), connecting again whenever the connection
    /// is lost.
    pub async fn run(
        self,
        journal: Arc<Journal>,
        mut latest: watch::Receiver<u64>,
        metrics: Arc<Metrics>,
        health: Health,
    ) -> Result<(), JournalError> {
        let name = self.config.name.clone();
        let mut cursor = start_cursor(&journal, &name)?;
        let mut backoff = MIN_BACKOFF;
        let mut protocol = Protocol::V5;
        loop {
            let lost = match self
                .session(
                    protocol,
                    &journal,
                    &mut latest,
                    &metrics,
                    &health,
                    &mut cursor,
                )
                .await?
            {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::Lost {
                    error,
                    connected,
                    wrong_protocol,
                    refused,
                } => {
                    if connected {
                        backoff = MIN_BACKOFF;
                    }
                    if wrong_protocol {
                        protocol = protocol.other();
                        tracing::info!(
                            channel = name,
                            "broker {}:{}: {error}; trying {protocol}",
                            self.config.host,
                            self.config.port
                        );
                        if protocol == Protocol::V311 {
                            continue;
                        }
                    }
                    let detail = format!(
                        "broker {}:{}: {error}; connecting again in {backoff:?}",
                        self.config.host, self.config.port
                    );
                    if refused {
                        health.stalled(detail);
                    } else {
                        health.gone(detail);
                    }
                    error
                }
            };
            metrics.channel_error(&name);
            tracing::warn!(
                channel = name,
                "broker {}:{}: {lost}; connecting again in {backoff:?}",
                self.config.host,
                self.config.port
            );
            let closed = async { while latest.changed().await.is_ok() {} };
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = closed => {
                    tracing::info!(
                        channel = name,
                        "shutting down with the broker unreachable; the signals after seq {cursor} are delivered at the next start"
                    );
                    return Ok(());
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection to the broker, from its CONNACK until it fails or the daemon stops.
    async fn session(
        &self,
        protocol: Protocol,
        journal: &Journal,
        latest: &mut watch::Receiver<u64>,
        metrics: &Metrics,
        health: &Health,
        cursor: &mut u64,
    ) -> Result<SessionEnd, JournalError> {
        let name = self.config.name.as_str();
        let (client, mut events, pump) = match protocol {
            Protocol::V5 => Client::connect_5(self.options.clone()),
            Protocol::V311 => Client::connect_311(self.options_311.clone()),
        };
        let session_present = loop {
            match events.recv().await {
                Some(Ok(Happening::ConnAck { session_present })) => break session_present,
                Some(Ok(_)) => {}
                Some(Err(failure)) => return Ok(failure.ended(false)),
                None => return Ok(Failure::stopped().ended(false)),
            }
        };
        tracing::info!(
            channel = name,
            session_present,
            "connected to MQTT broker {}:{} with {protocol} as `{}`",
            self.config.host,
            self.config.port,
            self.config.client_id
        );
        health.connected(format!(
            "connected to broker {}:{} with {protocol}",
            self.config.host, self.config.port
        ));
        let mut flight = Flight::new(*cursor);
        flight.outbox.push_back(Message {
            topic: self.config.status_topic(),
            payload: Bytes::from_static(b"online"),
            retain: true,
            json: false,
            token: Token::Other,
        });
        if !session_present {
            let current = journal.current()?;
            let count = flight.republish(&self.config, current, *cursor);
            tracing::info!(
                channel = name,
                "the broker did not know this client: republished the retained state of {count} met conditions"
            );
        }
        let mut closed = false;
        loop {
            flight.read(journal, &self.config)?;
            flight.send(&client);
            if flight.advance(cursor) {
                journal.set_cursor(name, *cursor)?;
                metrics.channel_delivered(name, *cursor);
            }
            if closed && flight.is_idle() {
                self.goodbye(&client, &mut events).await;
                drop(pump);
                return Ok(SessionEnd::Shutdown);
            }
            tokio::select! {
                event = events.recv() => match event {
                    Some(Ok(event)) => flight.handle(event, name, metrics),
                    Some(Err(failure)) => return Ok(failure.ended(true)),
                    None => return Ok(Failure::stopped().ended(true)),
                },
                changed = latest.changed(), if flight.exhausted && !closed => {
                    // Closed: read once more, then finish what is in flight.
                    closed = changed.is_err();
                    flight.exhausted = false;
                }
            }
        }
    }

    /// Publishes `offline` (a clean disconnection does not trigger the last will) and
    /// disconnects, waiting at most [`GOODBYE`] for the broker.
    async fn goodbye(&self, client: &Client, events: &mut Happenings) {
        let offline = Message {
            topic: self.config.status_topic(),
            payload: Bytes::from_static(b"offline"),
            retain: true,
            json: false,
            token: Token::Other,
        };
        if !client.try_publish(&offline) {
            return;
        }
        let acked = async {
            while let Some(Ok(event)) = events.recv().await {
                if let Happening::Acked { .. } = event {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(GOODBYE, acked).await;
        client.try_disconnect();
        let sent = async {
            while let Some(Ok(event)) = events.recv().await {
                if let Happening::Disconnected = event {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(GOODBYE, sent).await;
    }
}

/// How a session ended.
enum SessionEnd {
    /// `latest` closed and everything read was acknowledged.
    Shutdown,
    Lost {
        error: String,
        /// Whether the broker had accepted the connection.
        connected: bool,
        /// Whether the broker refused the protocol version.
        wrong_protocol: bool,
        /// Whether the broker answered and refused the connection (authentication,
        /// authorisation), rather than being unreachable.
        refused: bool,
    },
}

/// The MQTT version a session speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    V5,
    V311,
}

impl Protocol {
    fn other(self) -> Protocol {
        match self {
            Protocol::V5 => Protocol::V311,
            Protocol::V311 => Protocol::V5,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::V5 => "MQTT 5",
            Protocol::V311 => "MQTT 3.1.1",
        })
    }
}

/// What the event loop of either version reports, as far as delivery cares.
#[derive(Debug)]
enum Happening {
    ConnAck {
        session_present: bool,
    },
    /// A publish went out with this packet id.
    Published(u16),
    /// The broker acknowledged a publish; `refused` says why it did not take it (MQTT 5).
    Acked {
        pkid: u16,
        refused: Option<String>,
    },
    /// Our DISCONNECT went out.
    Disconnected,
    Other,
}

/// Why a connection ended.
#[derive(Debug)]
struct Failure {
    error: String,
    /// The broker does not speak the version asked for.
    wrong_protocol: bool,
    /// The broker answered the CONNECT with a refusal.
    refused: bool,
}

impl Failure {
    fn stopped() -> Failure {
        Failure {
            error: "the MQTT event loop stopped".into(),
            wrong_protocol: false,
            refused: false,
        }
    }

    fn ended(self, connected: bool) -> SessionEnd {
        SessionEnd::Lost {
            refused: self.refused,
            error: self.error,
            connected,
            wrong_protocol: self.wrong_protocol && !connected,
        }
    }
}

type Happenings = mpsc::UnboundedReceiver<Result<Happening, Failure>>;

/// The client of either version.
enum Client {
    V5(AsyncClient),
    V311(rumqttc::AsyncClient),
}

impl Client {
    /// Starts an MQTT 5 event loop on a task of its own, so that it is never cancelled in
    /// the middle of a packet; it stops at the first error (this channel, not rumqttc,
    /// reconnects).
    fn connect_5(options: MqttOptions) -> (Client, Happenings, AbortOnDrop) {
        let (client, mut event_loop) = AsyncClient::new(options, REQUESTS);
        let (tx, rx) = mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            loop {
                let event = event_loop.poll().await;
                let failed = event.is_err();
                let happening = event.map(happening_5).map_err(|e| Failure {
                    wrong_protocol: refuses_5(&e),
                    refused: matches!(e, ConnectionError::ConnectionRefused(_)),
                    error: describe(&e),
                });
                if tx.send(happening).is_err() || failed {
                    break;
                }
            }
        });
        (Client::V5(client), rx, AbortOnDrop(pump))
    }

    /// The same with MQTT 3.1.1.
    fn connect_311(options: rumqttc::MqttOptions) -> (Client, Happenings, AbortOnDrop) {
        let (client, mut event_loop) = rumqttc::AsyncClient::new(options, REQUESTS);
        let (tx, rx) = mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            loop {
                let event = event_loop.poll().await;
                let failed = event.is_err();
                let happening = event.map(happening_311).map_err(|e| match e {
                    rumqttc::ConnectionError::ConnectionRefused(code) => Failure {
                        wrong_protocol: code == rumqttc::ConnectReturnCode::RefusedProtocolVersion,
                        refused: true,
                        error: format!("the broker refused the connection: {code:?}"),
                    },
                    other => Failure {
                        wrong_protocol: false,
                        refused: false,
                        error: other.to_string(),
                    },
                });
                if tx.send(happening).is_err() || failed {
                    break;
                }
            }
        });
        (Client::V311(client), rx, AbortOnDrop(pump))
    }

    /// Hands a message to the event loop; false when its queue is full.
    fn try_publish(&self, message: &Message) -> bool {
        match self {
            Client::V5(client) => {
                let properties = PublishProperties {
                    payload_format_indicator: message.json.then_some(1),
                    content_type: message.json.then(|| "application/json".to_string()),
                    ..PublishProperties::default()
                };
                client
                    .try_publish_with_properties(
                        message.topic.clone(),
                        QoS::AtLeastOnce,
                        message.retain,
                        message.payload.clone(),
                        properties,
                    )
                    .is_ok()
            }
            Client::V311(client) => client
                .try_publish(
                    message.topic.clone(),
                    rumqttc::QoS::AtLeastOnce,
                    message.retain,
                    message.payload.clone(),
                )
                .is_ok(),
        }
    }

    /// Asks for a clean disconnection (no last will).
    fn try_disconnect(&self) {
        // A full queue only means the connection ends without DISCONNECT.
        let _ = match self {
            Client::V5(client) => client.try_disconnect().is_ok(),
            Client::V311(client) => client.try_disconnect().is_ok(),
        };
    }
}

fn happening_5(event: Event) -> Happening {
    match event {
        Event::Incoming(Packet::ConnAck(ack)) => Happening::ConnAck {
            session_present: ack.session_present,
        },
        Event::Incoming(Packet::PubAck(ack)) => Happening::Acked {
            pkid: ack.pkid,
            refused: (!matches!(
                ack.reason,
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers
            ))
            .then(|| format!("{:?}", ack.reason)),
        },
        Event::Outgoing(Outgoing::Publish(pkid)) => Happening::Published(pkid),
        Event::Outgoing(Outgoing::Disconnect) => Happening::Disconnected,
        _ => Happening::Other,
    }
}

fn happening_311(event: rumqttc::Event) -> Happening {
    match event {
        rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)) => Happening::ConnAck {
            session_present: ack.session_present,
        },
        rumqttc::Event::Incoming(rumqttc::Packet::PubAck(ack)) => Happening::Acked {
            pkid: ack.pkid,
            refused: None,
        },
        rumqttc::Event::Outgoing(Outgoing::Publish(pkid)) => Happening::Published(pkid),
        rumqttc::Event::Outgoing(Outgoing::Disconnect) => Happening::Disconnected,
        _ => Happening::Other,
    }
}

/// Whether an MQTT 5 connection may have failed because the broker does not speak MQTT 5:
/// it says so, answers in a form MQTT 5 cannot read (a 3.1.1 CONNACK), or closes the
/// connection without answering (as 3.1.1 allows). Only asked before a CONNACK.
fn refuses_5(error: &ConnectionError) -> bool {
    matches!(
        error,
        ConnectionError::ConnectionRefused(ConnectReturnCode::UnsupportedProtocolVersion)
            | ConnectionError::NotConnAck(_)
            | ConnectionError::MqttState(
                StateError::Deserialization(_) | StateError::ConnectionAborted
            )
    )
}

/// What a published message stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    /// One of the messages of the journal signal with this `seq`.
    Signal(u64),
    /// The status, or republished state: not tracked by the cursor.
    Other,
}

struct Message {
    topic: String,
    payload: Bytes,
    retain: bool,
    /// Whether the payload is signal JSON.
    json: bool,
    token: Token,
}

/// A signal read from the journal whose messages are not all acknowledged yet.
struct Pending {
    seq: u64,
    acks_left: u32,
}

/// The publishes of one session, from the journal to the broker's acknowledgements.
struct Flight {
    /// The last `seq` read from the journal.
    read: u64,
    /// Whether the journal had nothing after `read` when last asked.
    exhausted: bool,
    /// Messages not yet handed to the MQTT client, in order.
    outbox: VecDeque<Message>,
    /// Signals read, in `seq` order, until acknowledged.
    pending: VecDeque<Pending>,
    /// Messages handed to the client, in order, until the event loop names their packet id.
    handed: VecDeque<Token>,
    /// Messages sent, by packet id, until acknowledged.
    sent: HashMap<u16, Token>,
}

impl Flight {
    fn new(cursor: u64) -> Flight {
        Flight {
            read: cursor,
            exhausted: false,
            outbox: VecDeque::new(),
            pending: VecDeque::new(),
            handed: VecDeque::new(),
            sent: HashMap::new(),
        }
    }

    /// Queues the retained state of the conditions met now whose `met` signal is at or
    /// before `cursor` (later ones come with the replay); returns how many.
    fn republish(
        &mut self,
        config: &MqttChannelConfig,
        current: Vec<CurrentCondition>,
        cursor: u64,
    ) -> usize {
        let mut count = 0;
        for condition in current {
            if condition.seq > cursor {
                continue;
            }
            let signal = Signal {
                seq: condition.seq,
                time: condition.since,
                node: config.node.clone(),
                server: condition.server,
                condition: condition.condition,
                subject: condition.subject,
                state: SignalState::Met,
                args: condition.args,
                source: condition.source,
            };
            if !config.filter.matches(&signal) {
                continue;
            }
            self.outbox.push_back(Message {
                topic: topic(&config.prefix, &signal),
                payload: Bytes::from(signal.to_json_line()),
                retain: true,
                json: true,
                token: Token::Other,
            });
            count += 1;
        }
        count
    }

    /// Reads more signals when the window has room.
    fn read(&mut self, journal: &Journal, config: &MqttChannelConfig) -> Result<(), JournalError> {
        while !self.exhausted && self.pending.len() < WINDOW && self.outbox.len() < REQUESTS {
            let batch = journal.signals_after(self.read, WINDOW - self.pending.len())?;
            if batch.is_empty() {
                self.exhausted = true;
            }
            for signal in batch {
                self.read = signal.seq;
                let messages = if config.filter.matches(&signal) {
                    messages(&config.prefix, &signal)
                } else {
                    Vec::new()
                };
                self.pending.push_back(Pending {
                    seq: signal.seq,
                    acks_left: messages.len() as u32,
                });
                self.outbox.extend(messages);
            }
        }
        Ok(())
    }

    /// Hands queued messages to the client until its queue is full.
    fn send(&mut self, client: &Client) {
        while let Some(message) = self.outbox.front() {
            if !client.try_publish(message) {
                return;
            }
            self.handed.push_back(message.token);
            self.outbox.pop_front();
        }
    }

    fn handle(&mut self, event: Happening, channel: &str, metrics: &Metrics) {
        match event {
            Happening::Published(pkid) => {
                if let Some(token) = self.handed.pop_front() {
                    self.sent.insert(pkid, token);
                }
            }
            Happening::Acked { pkid, refused } => {
                let Some(token) = self.sent.remove(&pkid) else {
                    return;
                };
                if let Some(reason) = refused {
                    // Publishing again would be refused again: log it and go on.
                    metrics.channel_error(channel);
                    tracing::warn!(
                        channel,
                        "the broker refused a message{}: {reason}",
                        match token {
                            Token::Signal(seq) => format!(" of signal {seq}"),
                            Token::Other => String::new(),
                        },
                    );
                }
                if let Token::Signal(seq) = token
                    && let Some(pending) = self.pending.iter_mut().find(|p| p.seq == seq)
                {
                    pending.acks_left = pending.acks_left.saturating_sub(1);
                }
            }
            _ => {}
        }
    }

    /// Moves `cursor` past the acknowledged signals at the front; whether it moved.
    fn advance(&mut self, cursor: &mut u64) -> bool {
        let mut moved = false;
        while let Some(front) = self.pending.front()
            && front.acks_left == 0
        {
            *cursor = front.seq;
            self.pending.pop_front();
            moved = true;
        }
        moved
    }

    /// Nothing left to read, send or wait for.
    fn is_idle(&self) -> bool {
        self.exhausted
            && self.pending.is_empty()
            && self.outbox.is_empty()
            && self.handed.is_empty()
    }
}

/// The messages of one signal.
fn messages(prefix: &str, signal: &Signal) -> Vec<Message> {
    let topic = topic(prefix, signal);
    let json = Message {
        topic: topic.clone(),
        payload: Bytes::from(signal.to_json_line()),
        retain: signal.state == SignalState::Met,
        json: true,
        token: Token::Signal(signal.seq),
    };
    match signal.state {
        SignalState::Met | SignalState::Event => vec![json],
        SignalState::Cleared => vec![
            json,
            Message {
                topic,
                payload: Bytes::new(),
                retain: true,
                json: false,
                token: Token::Signal(signal.seq),
            },
        ],
    }
}

/// `<prefix>/<node>/<server>/<condition>/<subject>`.
pub fn topic(prefix: &str, signal: &Signal) -> String {
    let subject = match signal.subject.as_deref() {
        None => "-",
        Some(".") => ".",
        Some(zone) => zone.strip_suffix('.').unwrap_or(zone),
    };
    format!(
        "{prefix}/{}/{}/{}/{subject}",
        signal.node, signal.server, signal.condition
    )
}

/// A connection error in words an operator can act on.
fn describe(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: {code:?}")
        }
        ConnectionError::Timeout(_) => {
            format!("no CONNACK within {CONNECT_TIMEOUT} s")
        }
        other => other.to_string(),
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::ConditionId;
    use crate::signal::Args;

    fn signal(
        seq: u64,
        condition: ConditionId,
        subject: Option<&str>,
        state: SignalState,
    ) -> Signal {
        Signal {
            seq,
            time: chrono::Utc::now(),
            node: "lab".into(),
            server: "knot".into(),
            condition,
            subject: subject.map(str::to_string),
            state,
            args: Args::new(),
            source: "probe".into(),
        }
    }

    #[test]
    fn topics_name_node_server_condition_and_subject() {
        let zone = signal(1, ConditionId::ZoneReady, Some("a.test."), SignalState::Met);
        assert_eq!(
            topic("dns-oops", &zone),
            "dns-oops/lab/knot/zone-ready/a.test"
        );
        let server = signal(2, ConditionId::ServerRunning, None, SignalState::Met);
        assert_eq!(topic("x/y", &server), "x/y/lab/knot/server-running/-");
        let root = signal(3, ConditionId::ZoneReady, Some("."), SignalState::Met);
        assert_eq!(topic("p", &root), "p/lab/knot/zone-ready/.");
    }

    #[test]
    fn met_is_retained_cleared_clears_events_are_not_retained() {
        let shape = |state| {
            messages(
                "p",
                &signal(7, ConditionId::ZoneReady, Some("a.test."), state),
            )
            .iter()
            .map(|m| (m.retain, m.payload.is_empty(), m.token))
            .collect::<Vec<_>>()
        };
        assert_eq!(shape(SignalState::Met), [(true, false, Token::Signal(7))]);
        assert_eq!(
            shape(SignalState::Cleared),
            [
                (false, false, Token::Signal(7)),
                (true, true, Token::Signal(7))
            ]
        );
        assert_eq!(
            shape(SignalState::Event),
            [(false, false, Token::Signal(7))]
        );
    }

    /// Reads one MQTT packet: its first byte and its body; `None` at the end.
    async fn read_packet(stream: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let kind = stream.read_u8().await.ok()?;
        let (mut length, mut shift) = (0usize, 0);
        loop {
            let byte = stream.read_u8().await.ok()?;
            length |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.ok()?;
        Some((kind, body))
    }

    /// A broker that knows only MQTT 3.1.1: it answers an MQTT 5 CONNECT with the 3.1.1
    /// "unacceptable protocol version", and acknowledges 3.1.1 publishes. (A fake: mosquitto
    /// speaks both versions and cannot be told to refuse MQTT 5.)
    async fn broker_311(
        listener: tokio::net::TcpListener,
        levels: mpsc::UnboundedSender<u8>,
        topics: mpsc::UnboundedSender<String>,
    ) {
        use tokio::io::AsyncWriteExt;
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let Some((0x10, connect)) = read_packet(&mut stream).await else {
                continue;
            };
            // Protocol name (length 4, "MQTT"), then the level.
            let level = connect[6];
            levels.send(level).unwrap();
            if level != 4 {
                stream.write_all(&[0x20, 0x02, 0x00, 0x01]).await.unwrap();
                continue;
            }
            stream.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
            while let Some((kind, body)) = read_packet(&mut stream).await {
                match kind >> 4 {
                    3 => {
                        let length = usize::from(u16::from_be_bytes([body[0], body[1]]));
                        let topic = String::from_utf8(body[2..2 + length].to_vec()).unwrap();
                        assert_eq!((kind >> 1) & 3, 1, "QoS 1");
                        let pkid = &body[2 + length..4 + length];
                        stream
                            .write_all(&[0x40, 0x02, pkid[0], pkid[1]])
                            .await
                            .unwrap();
                        topics.send(topic).unwrap();
                    }
                    12 => stream.write_all(&[0xd0, 0x00]).await.unwrap(),
                    _ => {}
                }
            }
        }
    }

    #[tokio::test]
    async fn a_broker_without_mqtt_5_is_spoken_to_in_3_1_1() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (levels_tx, mut levels) = mpsc::unbounded_channel();
        let (topics_tx, mut topics) = mpsc::unbounded_channel();
        tokio::spawn(broker_311(listener, levels_tx, topics_tx));

        let journal = Arc::new(Journal::open_in_memory().unwrap());
        let signals: Vec<Signal> = (1..=3)
            .map(|seq| {
                signal(
                    seq,
                    ConditionId::ZoneUpdated,
                    Some(&format!("z{seq}.test.")),
                    SignalState::Event,
                )
            })
            .collect();
        journal.record(&signals, &[]).unwrap();
        journal.set_cursor("mqtt", 0).unwrap();
        let config = MqttChannelConfig {
            name: "mqtt".into(),
            node: "lab".into(),
            host: "127.0.0.1".into(),
            port,
            prefix: "dns-oops".into(),
            client_id: "fallback-test".into(),
            username: None,
            password: None,
            tls: None,
            keepalive: Duration::from_secs(30),
            filter: SignalFilter::default(),
        };
        let channel = MqttChannel::open(&config).unwrap();
        let (latest_tx, latest) = watch::channel(3);
        let run = tokio::spawn(channel.run(
            journal.clone(),
            latest,
            Arc::new(Metrics::new()),
            crate::health::Board::new().channel("mqtt", "mqtt"),
        ));

        let mut seen = Vec::new();
        while seen.len() < 4 {
            let topic = tokio::time::timeout(Duration::from_secs(10), topics.recv())
                .await
                .expect("publishes arrive")
                .unwrap();
            seen.push(topic);
        }
        assert_eq!(
            seen,
            [
                "dns-oops/lab/status",
                "dns-oops/lab/knot/zone-updated/z1.test",
                "dns-oops/lab/knot/zone-updated/z2.test",
                "dns-oops/lab/knot/zone-updated/z3.test",
            ]
        );
        assert_eq!(
            (levels.recv().await, levels.recv().await),
            (Some(5), Some(4))
        );
        drop(latest_tx);
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the channel ends when the daemon stops")
            .unwrap()
            .unwrap();
        assert_eq!(journal.cursor("mqtt").unwrap(), Some(3));
        assert_eq!(topics.recv().await.as_deref(), Some("dns-oops/lab/status"));
    }

    #[test]
    fn the_cursor_moves_only_over_acknowledged_signals() {
        let mut flight = Flight::new(10);
        for (seq, acks) in [(11, 1), (12, 2), (13, 0), (14, 1)] {
            flight.pending.push_back(Pending {
                seq,
                acks_left: acks,
            });
        }
        let mut cursor = 10;
        assert!(!flight.advance(&mut cursor));
        flight.pending[1].acks_left = 1;
        flight.pending[0].acks_left = 0;
        assert!(flight.advance(&mut cursor));
        assert_eq!(cursor, 11);
        flight.pending[0].acks_left = 0;
        assert!(flight.advance(&mut cursor));
        assert_eq!(cursor, 13, "a filtered-out signal needs no acknowledgement");
        assert_eq!(flight.pending.len(), 1);
    }
}
