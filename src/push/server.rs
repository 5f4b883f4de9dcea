//! The push channel's server: one TLS listener, one task per session, one [`Hub`] that
//! every engine step goes through.
//!
//! ```text
//! engine step ──Hub::apply──▶ SignalsZone (write lock) ──broadcast(Arc<changes>)──▶ sessions
//!                                                                      │
//! client ──TLS──▶ frames ──▶ dso::ServerSession ──actions──▶ frames ──TLS──▶ client
//! ```
//!
//! * The hub never waits for a session: changes go into a broadcast ring of `queue`
//!   entries. A session that falls further behind than that (its client does not read)
//!   is sent Retry Delay and dropped; a write that cannot finish within a few seconds
//!   aborts the session. Others are not slowed.
//! * A SUBSCRIBE is answered under the zone's read lock, after the session has caught up
//!   with every change already broadcast, so the initial answer and the following PUSH
//!   messages fit together without gaps or repeats.
//! * Ordinary DNS queries on the same connection are answered from the zone.
//! * Fatal protocol errors abort only their session, with a TCP RST (RFC 8490 §5.3).
//! * On shutdown every session is sent Retry Delay (RFC 8490 §6.6.1).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use dso::{Action, Event, PushChange, Rcode, ServerConfig, ServerSession, Subscribe};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::tls::{ServerTls, certificate_names_match};
use super::zone::{PUSH_SERVICE, SignalsZone};
use crate::config::PushAllow;
use crate::http::metrics::Metrics;
use crate::signal::{Signal, StateChange};

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may take before the session is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the Retry Delay to a lagging session may take to write.
const LAGGING_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Retry Delay for a session dropped because it fell behind.
const LAGGING_RETRY: Duration = Duration::from_secs(10);
/// Retry Delay sent to every session when the daemon stops.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(5);
/// Retry Delay with a refused SUBSCRIBE (RFC 8765 §6.2.2 recommends five minutes).
const REFUSED_RETRY: Duration = Duration::from_secs(300);
/// The kernel send buffer of a session's socket.
const SEND_BUFFER: usize = 64 * 1024;
/// At most this many waiting updates are written to a session at once.
const COALESCE_UPDATES: usize = 256;
/// Largest DNS message on a stream.
const MAX_FRAME: usize = 2 + u16::MAX as usize;

/// What flows to the sessions: the PUSH changes of one engine step.
type Update = Arc<EncodedUpdate>;

/// The changes of one engine step grouped by owner name and type, each group encoded once
/// as PUSH messages, so that fan-out to many sessions copies bytes instead of encoding.
pub struct EncodedUpdate {
    groups: Vec<Group>,
}

struct Group {
    name: Name,
    rtype: RecordType,
    /// PUSH messages (without length prefix) carrying the group's changes.
    messages: Vec<Vec<u8>>,
}

impl EncodedUpdate {
    fn new(changes: Vec<PushChange>) -> EncodedUpdate {
        let mut grouped: Vec<(Name, RecordType, Vec<PushChange>)> = Vec::new();
        for change in changes {
            let key = change_key(&change);
            match grouped
                .iter_mut()
                .find(|(name, rtype, _)| *name == key.0 && *rtype == key.1)
            {
                Some((_, _, list)) => list.push(change),
                None => grouped.push((key.0, key.1, vec![change])),
            }
        }
        let groups = grouped
            .into_iter()
            .filter_map(|(name, rtype, changes)| {
                match dso::encode_push(&changes, dso::NameCompression::Compressed) {
                    Ok(messages) => Some(Group {
                        name,
                        rtype,
                        messages,
                    }),
                    Err(e) => {
                        tracing::error!("cannot encode PUSH for {name} {rtype}: {e}");
                        None
                    }
                }
            })
            .collect();
        EncodedUpdate { groups }
    }
}

/// The owner name and type a change of the signals zone is about.
fn change_key(change: &PushChange) -> (Name, RecordType) {
    let rtype = match change {
        PushChange::Add { rdata, .. } | PushChange::Remove { rdata, .. } => rdata.record_type(),
        PushChange::RemoveRrset { rtype, .. } | PushChange::Ignored { rtype, .. } => *rtype,
        PushChange::RemoveAllTypes { .. } | PushChange::RemoveName { .. } => RecordType::ANY,
    };
    (change.name().clone(), rtype)
}

/// Shared by the engine side and every session of one push channel.
pub struct Hub {
    zone: RwLock<SignalsZone>,
    updates: broadcast::Sender<Update>,
    shutdown: watch::Sender<bool>,
    sessions: AtomicUsize,
}

impl Hub {
    pub fn new(zone: SignalsZone, queue: usize) -> Arc<Hub> {
        let (updates, _) = broadcast::channel(queue.max(1));
        let (shutdown, _) = watch::channel(false);
        Arc::new(Hub {
            zone: RwLock::new(zone),
            updates,
            shutdown,
            sessions: AtomicUsize::new(0),
        })
    }

    /// Applies one engine step to the zone and tells the sessions. Never waits for them.
    pub fn apply(&self, signals: &[Signal], changes: &[StateChange]) {
        let mut zone = self.zone.write().unwrap_or_else(|p| p.into_inner());
        let push = zone.apply(signals, changes);
        if !push.is_empty() && self.updates.receiver_count() > 0 {
            let _ = self.updates.send(Arc::new(EncodedUpdate::new(push)));
        }
    }

    /// Asks every session to go away (Retry Delay) and the listener to stop.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    fn read_zone(&self) -> std::sync::RwLockReadGuard<'_, SignalsZone> {
        self.zone.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Settings of the sessions of one listener.
#[derive(Clone)]
pub struct SessionSettings {
    pub channel: String,
    pub metrics: Arc<Metrics>,
    pub dso: ServerConfig,
    pub max_sessions: usize,
    /// Empty: no ACL.
    pub allow: Vec<PushAllow>,
}

/// Accepts connections until the hub is shut down.
pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    tls: Arc<ServerTls>,
    settings: Arc<SessionSettings>,
) {
    let mut shutdown = hub.shutdown.subscribe();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    loop {
        let hangup_received = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(()) = hangup_received => match tls.reload() {
                Ok(()) => tracing::info!(
                    channel = settings.channel,
                    "SIGHUP: reloaded {} and {}",
                    tls.files().cert.display(),
                    tls.files().key.display()
                ),
                Err(e) => tracing::error!(
                    channel = settings.channel,
                    "SIGHUP: {e}; the previous certificate stays in use"
                ),
            },
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(channel = settings.channel, "accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if hub.sessions() >= settings.max_sessions {
                    if refused_logged.elapsed() > Duration::from_secs(10) {
                        tracing::warn!(
                            channel = settings.channel,
                            "{} sessions open (max-sessions): refusing new connections",
                            hub.sessions()
                        );
                        refused_logged = Instant::now();
                    }
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                // A stalled subscriber holds at most this much in the kernel; beyond it its
                // writes wait, it falls behind and is dropped.
                let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
                let acceptor = TlsAcceptor::from(tls.current());
                let (hub, settings) = (hub.clone(), settings.clone());
                tokio::spawn(async move {
                    hub.sessions.fetch_add(1, Ordering::Relaxed);
                    settings.metrics.push_session(&settings.channel, 1);
                    run_session(stream, peer, acceptor, &hub, &settings).await;
                    settings.metrics.push_session(&settings.channel, -1);
                    hub.sessions.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
}

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Keep going.
    Open,
    /// close_notify and FIN.
    Close,
    /// RST.
    Abort,
}

async fn run_session(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    hub: &Hub,
    settings: &SessionSettings,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(channel = settings.channel, %peer, "TLS handshake: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(channel = settings.channel, %peer, "TLS handshake timed out");
            return;
        }
    };
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first().cloned());
    let access = Access::new(&settings.allow, identity.as_ref());
    let mut session = Session {
        hub,
        settings,
        peer,
        access,
        dso: ServerSession::new(settings.dso, Instant::now()),
        updates: None,
        out: Vec::new(),
        fatal: None,
    };
    let ending = session.run(tls).await;
    tracing::debug!(channel = settings.channel, %peer, ?ending, "session ended");
}

/// What a client may see.
enum Access {
    Everything,
    /// The names of every `allow` rule its certificate matches.
    Only(Vec<PushAllow>),
}

impl Access {
    fn new(rules: &[PushAllow], identity: Option<&CertificateDer<'_>>) -> Access {
        if rules.is_empty() {
            return Access::Everything;
        }
        let matching = identity
            .map(|cert| {
                rules
                    .iter()
                    .filter(|rule| certificate_names_match(cert, &rule.client))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Access::Only(matching)
    }

    /// Whether the client may read `name`. The zone's infrastructure (apex, the service
    /// name and the host) is open to every client that passed TLS.
    fn allows(&self, name: &Name, zone: &SignalsZone) -> bool {
        match self {
            Access::Everything => true,
            Access::Only(rules) => {
                let name = name.to_lowercase();
                if is_infrastructure(&name, zone) {
                    return true;
                }
                let text = name.to_ascii();
                rules.iter().any(|rule| rule.covers(&text))
            }
        }
    }
}

fn is_infrastructure(name: &Name, zone: &SignalsZone) -> bool {
    let apex = zone.apex();
    if name == apex {
        return true;
    }
    let service = Name::from_ascii(PUSH_SERVICE)
        .ok()
        .and_then(|s| s.append_domain(apex).ok());
    service.is_some_and(|s| name.zone_of(&s))
}

struct Session<'a> {
    hub: &'a Hub,
    settings: &'a SessionSettings,
    peer: SocketAddr,
    access: Access,
    dso: ServerSession,
    /// Subscribed to the hub's changes since the first accepted SUBSCRIBE.
    updates: Option<broadcast::Receiver<Update>>,
    /// Framed messages waiting to be written.
    out: Vec<u8>,
    /// A fatal error found outside the session machine (in a non-DSO message).
    fatal: Option<&'static str>,
}

impl Session<'_> {
    /// Reads and writes happen one after the other on the one stream: the read future of
    /// `select!` is dropped (TLS keeps what it had read) before anything is written.
    async fn run(&mut self, mut stream: TlsStream<TcpStream>) -> Ending {
        let mut input = BytesMut::with_capacity(512);
        let mut shutdown = self.hub.shutdown.subscribe();
        // Made once: every session waits on it, and a fan-out wakes every session.
        let shutdown_requested = shutdown.changed();
        tokio::pin!(shutdown_requested);
        let mut shutting_down = false;
        let mut write_timeout = WRITE_TIMEOUT;
        // The session machine's timer, armed lazily: activity moves its deadline later at
        // every message, so the sleep is only moved earlier; when it fires too early,
        // `poll` finds nothing due and it is armed again for the current deadline.
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let ending = loop {
            if let Some(at) = self.dso.next_deadline()
                && armed.is_none_or(|armed| at < armed)
            {
                timer.as_mut().reset(at.into());
                armed = Some(at);
            }
            let update = async {
                match self.updates.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let mut actions = VecDeque::new();
            tokio::select! {
                biased;
                _ = &mut shutdown_requested, if !shutting_down => {
                    shutting_down = true;
                    let now = Instant::now();
                    match self.dso.retry_delay(SHUTDOWN_RETRY, Rcode::NOERROR, now) {
                        Ok(sent) => actions.extend(sent),
                        Err(_) => actions.push_back(Action::Close),
                    }
                }
                read = stream.read_buf(&mut input) => match read {
                    Ok(0) | Err(_) => break Ending::Close,
                    Ok(_) => match self.frames(&mut input) {
                        Ok(received) => actions.extend(received),
                        Err(()) => break Ending::Abort,
                    },
                },
                update = update => match update.and_then(|first| self.deliver_waiting(&first)) {
                    Ok(()) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            channel = self.settings.channel,
                            peer = %self.peer,
                            "subscriber fell {missed} updates behind (queue): sending Retry Delay and dropping it"
                        );
                        self.updates = None;
                        write_timeout = LAGGING_WRITE_TIMEOUT;
                        self.settings.metrics.push_dropped(&self.settings.channel, "lagging");
                        match self.dso.retry_delay(LAGGING_RETRY, Rcode::SERVFAIL, Instant::now()) {
                            Ok(sent) => actions.extend(sent),
                            Err(_) => actions.push_back(Action::Abort(dso::AbortReason::NoFreeMessageId)),
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => self.updates = None,
                },
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    actions.extend(self.dso.poll(Instant::now()));
                }
            }
            let ending = self.carry_out(actions);
            if !self.out.is_empty() {
                let write = async {
                    stream.write_all(&self.out).await?;
                    stream.flush().await
                };
                match tokio::time::timeout(write_timeout, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break Ending::Abort,
                    Err(_) => {
                        tracing::info!(
                            channel = self.settings.channel,
                            peer = %self.peer,
                            "client did not read for {write_timeout:?}: aborting the session"
                        );
                        self.settings
                            .metrics
                            .push_dropped(&self.settings.channel, "write-timeout");
                        break Ending::Abort;
                    }
                }
                self.out.clear();
                if self.out.capacity() > 64 * 1024 {
                    self.out = Vec::new();
                }
            }
            if input.is_empty() && input.capacity() > 4096 {
                input = BytesMut::with_capacity(512);
            }
            if ending != Ending::Open {
                break ending;
            }
        };
        match ending {
            Ending::Abort => {
                let _ = stream.get_ref().0.set_zero_linger();
            }
            Ending::Close | Ending::Open => {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
            }
        }
        ending
    }

    /// Queues the PUSH messages of `first` and of the updates already waiting behind it
    /// (up to [`COALESCE_UPDATES`]), so that a burst of engine steps becomes one write.
    /// A session found lagging gets none of them: it is sent Retry Delay instead.
    fn deliver_waiting(
        &mut self,
        first: &EncodedUpdate,
    ) -> Result<(), broadcast::error::RecvError> {
        let start = self.out.len();
        let mut sent = self.deliver_into_out(first);
        if let Some(rx) = self.updates.as_mut() {
            let mut taken = 1;
            while taken < COALESCE_UPDATES {
                match rx.try_recv() {
                    Ok(next) => {
                        taken += 1;
                        sent |= Self::frame_matching(&self.dso, &next, &mut self.out);
                    }
                    Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                        self.out.truncate(start);
                        return Err(broadcast::error::RecvError::Lagged(missed));
                    }
                    Err(_) => break,
                }
            }
        }
        if sent {
            self.dso.note_activity(Instant::now());
        }
        Ok(())
    }

    /// Appends the matching PUSH messages of `update` to the output; whether there were any.
    fn deliver_into_out(&mut self, update: &EncodedUpdate) -> bool {
        Self::frame_matching(&self.dso, update, &mut self.out)
    }

    /// The PUSH messages of `update` that match a subscription of this session (RFC 8765
    /// §6.3.1: only changes that match an active subscription are sent, each once), framed
    /// into `out`, copied from the update's single encoding.
    fn frame_matching(dso: &ServerSession, update: &EncodedUpdate, out: &mut Vec<u8>) -> bool {
        let mut sent = false;
        for group in update.groups.iter().filter(|g| wants(dso, g)) {
            for message in &group.messages {
                frame_into(out, message);
                sent = true;
            }
        }
        sent
    }

    /// [`Session::frame_matching`] as actions, for a SUBSCRIBE's catching up.
    fn deliver(&mut self, update: &EncodedUpdate, now: Instant) -> Vec<Action> {
        let mut sent = Vec::new();
        for group in update.groups.iter().filter(|g| wants(&self.dso, g)) {
            sent.extend(group.messages.iter().cloned().map(Action::Send));
        }
        if !sent.is_empty() {
            self.dso.note_activity(now);
        }
        sent
    }

    /// Takes every complete message out of `input` and hands it to the session machine.
    fn frames(&mut self, input: &mut BytesMut) -> Result<VecDeque<Action>, ()> {
        let mut actions = VecDeque::new();
        while input.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
            if input.len() < 2 + len {
                input.reserve(2 + len - input.len());
                break;
            }
            input.advance(2);
            let message = input.split_to(len);
            actions.extend(self.dso.receive(&message, Instant::now()));
            if self.dso.is_closed() {
                break;
            }
        }
        debug_assert!(input.capacity() <= MAX_FRAME.max(4096) * 2);
        Ok(actions)
    }

    /// Carries out the session machine's actions, answering what it delivers.
    fn carry_out(&mut self, mut actions: VecDeque<Action>) -> Ending {
        let mut ending = Ending::Open;
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Send(message) => self.queue(&message),
                Action::Deliver(event) => {
                    actions.extend(self.handle(event));
                    if let Some(reason) = self.fatal {
                        tracing::debug!(
                            channel = self.settings.channel,
                            peer = %self.peer,
                            "aborting session: {reason}"
                        );
                        self.out.clear();
                        return Ending::Abort;
                    }
                }
                Action::Close => ending = Ending::Close,
                Action::Abort(reason) => {
                    tracing::debug!(
                        channel = self.settings.channel,
                        peer = %self.peer,
                        "aborting session: {reason}"
                    );
                    // Nothing more is written to an aborted session.
                    self.out.clear();
                    return Ending::Abort;
                }
            }
        }
        ending
    }

    fn queue(&mut self, message: &[u8]) {
        frame_into(&mut self.out, message);
    }

    fn handle(&mut self, event: Event) -> Vec<Action> {
        let now = Instant::now();
        match event {
            Event::SubscribeRequest { id, subscribe } => self.subscribe(id, subscribe, now),
            Event::NonDso(query) => {
                if self.dso.is_established() && has_tcp_keepalive_option(&query) {
                    self.fatal =
                        Some("edns-tcp-keepalive option on a DSO session (RFC 8490 §7.1.2)");
                    return Vec::new();
                }
                self.dso.note_activity(now);
                self.answer(&query)
                    .map(|bytes| vec![Action::Send(bytes)])
                    .unwrap_or_default()
            }
            Event::Reconfirm(record) => {
                // Our records are authoritative: nothing to re-check.
                tracing::debug!(
                    channel = self.settings.channel,
                    peer = %self.peer,
                    "RECONFIRM of {} ignored",
                    record.name
                );
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn subscribe(&mut self, id: u16, subscribe: Subscribe, now: Instant) -> Vec<Action> {
        let hub = self.hub;
        let zone = hub.read_zone();
        let refusal = if !zone.contains(&subscribe.name)
            || !matches!(subscribe.class, DNSClass::IN | DNSClass::ANY)
        {
            Some(Rcode::NOTAUTH)
        } else if !self.access.allows(&subscribe.name, &zone) {
            Some(Rcode::REFUSED)
        } else {
            None
        };
        if let Some(rcode) = refusal {
            tracing::debug!(
                channel = self.settings.channel,
                peer = %self.peer,
                "SUBSCRIBE {} {} refused: {rcode:?}",
                subscribe.name,
                subscribe.rtype
            );
            return self
                .dso
                .reject_subscribe(id, rcode, Some(REFUSED_RETRY), now)
                .unwrap_or_default();
        }
        let mut actions = Vec::new();
        // Catch up with what was broadcast before this point, so the snapshot below is
        // followed by exactly the changes made after it.
        if self.updates.is_none() {
            self.updates = Some(hub.updates.subscribe());
        }
        while let Some(next) = self.updates.as_mut().map(|rx| rx.try_recv()) {
            match next {
                Ok(update) => actions.extend(self.deliver(&update, now)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.updates = None;
                    return self
                        .dso
                        .retry_delay(LAGGING_RETRY, Rcode::SERVFAIL, now)
                        .unwrap_or_default();
                }
                Err(_) => break,
            }
        }
        let snapshot = zone.snapshot(&subscribe);
        drop(zone);
        match self.dso.accept_subscribe(id, now) {
            Ok(sent) => actions.extend(sent),
            Err(_) => return actions,
        }
        if !snapshot.is_empty() {
            actions.extend(self.dso.push(&snapshot, now).unwrap_or_default());
        }
        actions
    }

    /// Answers an ordinary DNS message from the zone.
    fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let query = match Message::from_vec(query) {
            Ok(q) => q,
            Err(_) => return format_error(query),
        };
        let zone = self.hub.read_zone();
        let mut response = zone.answer(&query)?;
        let denied = query
            .queries
            .first()
            .is_some_and(|q| zone.contains(&q.name) && !self.access.allows(&q.name, &zone));
        if denied {
            response.answers.clear();
            response.authorities.clear();
            response.metadata.authoritative = false;
            response.metadata.response_code = ResponseCode::Refused;
        }
        response.to_vec().ok()
    }
}

/// Whether a subscription of the session covers the owner name and type of `group`.
fn wants(dso: &ServerSession, group: &Group) -> bool {
    dso.subscriptions().any(|(_, s)| {
        (s.rtype == RecordType::ANY || s.rtype == group.rtype)
            && matches!(s.class, DNSClass::IN | DNSClass::ANY)
            && s.name == group.name
    })
}

/// Appends `message` to `out` with its two-octet length (RFC 1035 §4.2.2).
fn frame_into(out: &mut Vec<u8>, message: &[u8]) {
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&message[..usize::from(len).min(message.len())]);
}

/// Whether a DNS message carries the edns-tcp-keepalive EDNS(0) option (RFC 7828).
fn has_tcp_keepalive_option(message: &[u8]) -> bool {
    Message::from_vec(message).is_ok_and(|m| {
        m.edns.as_ref().is_some_and(|edns| {
            edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Keepalive)
                .is_some()
        })
    })
}

/// FORMERR for a query that does not parse but has a readable header.
fn format_error(message: &[u8]) -> Option<Vec<u8>> {
    if message.len() < 12 || message[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([message[0], message[1]]);
    let op_code = hickory_proto::op::OpCode::from_u8((message[2] >> 3) & 0x0f);
    Message::error_msg(id, op_code, ResponseCode::FormErr)
        .to_vec()
        .ok()
}
