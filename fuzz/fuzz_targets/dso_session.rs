//! Scripts of operations against a DSO `ClientSession` and `ServerSession` on a fake clock.
//!
//! The input is read as a byte-driven program: a few bytes choose the two configurations
//! (extreme values included) and the mode, then each step is one operation: feed arbitrary
//! or assembled messages to `receive`, advance the clock and `poll`, or call the
//! application operations (subscribe, unsubscribe, keepalive, reconfirm, close, accept,
//! reject, cancel, push, set_timeouts, retry_delay, note_activity).
//!
//! * Independent mode: each session gets its messages from the script.
//! * Paired mode: the client's messages are queued to the server and the server's to the
//!   client, delivered when the script says so, optionally corrupted first.
//!
//! Checked after every step (besides "never panics"):
//! * an `Abort` or `Close` is the last action of its batch, the session then reports
//!   closed, and afterwards returns no actions and refuses every application operation;
//! * after the server sent a Retry Delay it sends nothing more (RFC 8490 §6.6.1);
//! * every `Send` decodes with `dso::decode` and is something that role may send at that
//!   point: no unidirectional message before establishment (§5.1), MESSAGE IDs of requests
//!   not in use (§5.4.1, checked against a shadow model), keepalive intervals ≥ 10 s
//!   (§6.5.2), PUSH only for subscribed names and ≤ 16,382 bytes (RFC 8765 §6.3.1);
//! * delivered PUSH changes match an active subscription; no duplicate subscriptions;
//! * after `poll(now)`, `next_deadline()` is later than `now` unless the session is closed;
//! * paired and uncorrupted: no session aborts except for timers and the one race the
//!   RFCs leave open (a cancellation crossing an UNSUBSCRIBE).
#![no_main]

use std::collections::{HashSet, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dso::{
    AbortReason, Action, ClientConfig, ClientSession, DsoMessage, Event, Keepalive,
    MAX_PUSH_MESSAGE_LEN, MessageKind, NameCompression, PushChange, Rcode, ServerConfig,
    ServerSession, SessionError, Subscribe, Tlv, decode,
};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut script = Script { data };
    let start = Instant::now();
    let client_config = client_config(&mut script);
    let server_config = server_config(&mut script);
    let mut world = World {
        start,
        now: start,
        client: ClientUnderTest::new(client_config, start),
        server: ServerUnderTest::new(server_config, start),
        to_server: VecDeque::new(),
        to_client: VecDeque::new(),
        paired: script.byte() & 1 == 1,
        corrupted: false,
    };
    let mut steps = 0;
    while !script.is_empty() && steps < 2_000 {
        world.step(&mut script);
        steps += 1;
    }
});

/// `DSO_FUZZ_TRACE=1` prints every step and every non-empty batch of actions, to read the
/// script of a crash: `DSO_FUZZ_TRACE=1 cargo fuzz run -O dso_session <artifact>`.
fn tracing() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("DSO_FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!($($arg)*);
        }
    };
}

// ---- reading the script ---------------------------------------------------------------

struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0 once the script is exhausted.
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&first, rest)) => {
                self.data = rest;
                first
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let len = len.min(self.data.len());
        let (taken, rest) = self.data.split_at(len);
        self.data = rest;
        taken.to_vec()
    }

    /// Fewer than `limit` bytes, the count read first.
    fn short_bytes(&mut self, limit: u8) -> Vec<u8> {
        let len = self.byte() % limit;
        self.bytes(usize::from(len))
    }

    fn pick<T: Clone>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()].clone()
    }
}

fn millis(script: &mut Script<'_>) -> u32 {
    match script.byte() % 13 {
        0 => 0,
        1 => 1,
        2 => 5_000,
        3 => 9_999,
        4 => 10_000,
        5 => 15_000,
        6 => 20_000,
        7 => 60_000,
        8 => 3_600_000,
        9 => Keepalive::INFINITE - 1,
        10 => Keepalive::INFINITE,
        11 => u32::from(script.u16()),
        _ => script.u32(),
    }
}

fn duration(script: &mut Script<'_>) -> Duration {
    match script.byte() % 6 {
        0 => Duration::from_secs(5),
        1 => Duration::ZERO,
        2 => Duration::from_secs(30),
        3 => Duration::MAX,
        4 => Duration::from_millis(u64::from(script.u32())),
        _ => Duration::from_secs(u64::from(script.u32()) << 16),
    }
}

fn client_config(script: &mut Script<'_>) -> ClientConfig {
    if script.byte() & 1 == 0 {
        return ClientConfig::default();
    }
    ClientConfig {
        requested: Keepalive {
            inactivity_timeout_ms: millis(script),
            keepalive_interval_ms: millis(script),
        },
        establishment_timeout: duration(script),
    }
}

fn server_config(script: &mut Script<'_>) -> ServerConfig {
    if script.byte() & 1 == 0 {
        return ServerConfig::default();
    }
    ServerConfig {
        max_inactivity_timeout_ms: millis(script),
        max_keepalive_interval_ms: millis(script),
        retry_delay_grace: duration(script),
        compression: if script.byte() & 1 == 0 {
            NameCompression::Compressed
        } else {
            NameCompression::Uncompressed
        },
    }
}

const NAMES: [&str; 8] = [
    "a.example.",
    "A.EXAMPLE.",
    "b.example.",
    "_ipp._tcp.example.com.",
    "printer._ipp._tcp.example.com.",
    ".",
    "x.a.example.",
    "a.example",
];

fn name(script: &mut Script<'_>) -> Name {
    Name::from_ascii(script.pick(&NAMES)).expect("valid name")
}

fn record_type(script: &mut Script<'_>) -> RecordType {
    match script.byte() % 10 {
        0 => RecordType::A,
        1 => RecordType::AAAA,
        2 => RecordType::PTR,
        3 => RecordType::TXT,
        4 => RecordType::SRV,
        5 => RecordType::ANY,
        6 => RecordType::CNAME,
        7 => RecordType::ZERO,
        8 => RecordType::from(script.u16()),
        _ => RecordType::A,
    }
}

fn class(script: &mut Script<'_>) -> DNSClass {
    match script.byte() % 6 {
        0 | 1 => DNSClass::IN,
        2 => DNSClass::CH,
        3 => DNSClass::ANY,
        4 => DNSClass::NONE,
        _ => DNSClass::from(script.u16()),
    }
}

fn rdata(script: &mut Script<'_>) -> RData {
    match script.byte() % 7 {
        0 => RData::A(A::new(192, 0, 2, script.byte())),
        1 => RData::AAAA(AAAA::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            u16::from(script.byte()),
        )),
        2 => RData::PTR(PTR(name(script))),
        3 => {
            let len = usize::from(script.byte());
            RData::TXT(TXT::new(vec!["t".repeat(len)]))
        }
        4 => RData::SRV(SRV::new(0, 0, script.u16(), name(script))),
        5 => RData::CNAME(CNAME(name(script))),
        _ => RData::A(A::new(198, 51, 100, 1)),
    }
}

fn subscribe(script: &mut Script<'_>) -> Subscribe {
    Subscribe {
        name: name(script),
        rtype: record_type(script),
        class: class(script),
    }
}

fn change(script: &mut Script<'_>) -> PushChange {
    match script.byte() % 7 {
        0 | 1 => PushChange::Add {
            name: name(script),
            class: class(script),
            ttl: match script.byte() % 4 {
                0 => 0,
                1 => 60,
                2 => PushChange::MAX_ADD_TTL,
                _ => script.u32() & PushChange::MAX_ADD_TTL,
            },
            rdata: rdata(script),
        },
        2 => PushChange::Remove {
            name: name(script),
            class: class(script),
            rdata: rdata(script),
        },
        3 => PushChange::RemoveRrset {
            name: name(script),
            rtype: record_type(script),
            class: class(script),
        },
        4 => PushChange::RemoveAllTypes {
            name: name(script),
            class: class(script),
        },
        5 => PushChange::RemoveName { name: name(script) },
        _ => PushChange::Ignored {
            name: name(script),
            rtype: record_type(script),
            class: class(script),
            ttl: 0x8000_0000 + script.u32() % 0x7fff_fffe,
            rdata: script.short_bytes(8),
        },
    }
}

/// One to eight changes; sometimes repeated to many kilobytes, so PUSH messages split.
fn changes(script: &mut Script<'_>) -> Vec<PushChange> {
    let count = 1 + usize::from(script.byte() % 8);
    let some: Vec<PushChange> = (0..count).map(|_| change(script)).collect();
    let repeat = match script.byte() % 8 {
        0 => 40,
        1 => 300,
        _ => 1,
    };
    some.iter()
        .cycle()
        .take(some.len() * repeat)
        .cloned()
        .collect()
}

fn tlv(script: &mut Script<'_>, ids: &[u16]) -> Tlv {
    match script.byte() % 10 {
        0 => Tlv::Keepalive(Keepalive {
            inactivity_timeout_ms: millis(script),
            keepalive_interval_ms: millis(script),
        }),
        1 => Tlv::RetryDelay {
            delay_ms: millis(script),
        },
        2 => Tlv::EncryptionPadding(script.short_bytes(16)),
        3 => Tlv::Subscribe(subscribe(script)),
        4 | 5 => Tlv::Push(changes(script)),
        6 => Tlv::Unsubscribe {
            subscribe_id: message_id(script, ids),
        },
        7 => Tlv::LegacyUnsubscribe(subscribe(script)),
        8 => Tlv::Reconfirm(dso::Reconfirm {
            name: name(script),
            class: class(script),
            rdata: rdata(script),
        }),
        _ => Tlv::Unknown {
            tlv_type: script.pick(&[0x0000, 0x0004, 0x0044, 0xf800, 0xffff]),
            data: script.short_bytes(8),
        },
    }
}

fn message_id(script: &mut Script<'_>, ids: &[u16]) -> u16 {
    match script.byte() % 4 {
        0 | 1 if !ids.is_empty() => script.pick(ids),
        2 => 0,
        _ => script.u16(),
    }
}

/// The wire form of one TLV, taken from a message the encoder accepts (uncompressed, so
/// it can be moved to another offset).
fn tlv_bytes(tlv: &Tlv) -> Option<Vec<u8>> {
    [
        DsoMessage::unidirectional(tlv.clone()),
        DsoMessage::response(1, Rcode::NOERROR).with_additional(tlv.clone()),
    ]
    .iter()
    .find_map(|m| m.encode_with(NameCompression::Uncompressed).ok())
    .map(|bytes| bytes[12..].to_vec())
}

/// A DSO message assembled from a header and TLVs in any combination, valid or not, then
/// perhaps mutated.
fn assembled_message(script: &mut Script<'_>, ids: &[u16]) -> Vec<u8> {
    let flags = script.byte();
    let response = flags & 1 == 1;
    let id = message_id(script, ids);
    let mut bytes = id.to_be_bytes().to_vec();
    // Z bits are sometimes set: receivers must ignore them (RFC 8490 §5.4.1).
    let z_high = if flags & 2 == 2 { flags >> 5 } else { 0 };
    bytes.push(u8::from(response) << 7 | 6 << 3 | z_high);
    let rcode = script.byte();
    bytes.push(if flags & 4 == 4 { rcode } else { rcode & 0x0f });
    bytes.extend([0; 8]);
    for _ in 0..script.byte() % 4 {
        if let Some(tlv) = tlv_bytes(&tlv(script, ids)) {
            bytes.extend(tlv);
        }
    }
    mutate(script, &mut bytes);
    bytes
}

/// Zero to three byte-level changes: overwrite, flip, truncate, insert, delete.
fn mutate(script: &mut Script<'_>, bytes: &mut Vec<u8>) {
    for _ in 0..script.byte() % 4 {
        let at = usize::from(script.u16()) % (bytes.len() + 1);
        match script.byte() % 5 {
            0 if at < bytes.len() => bytes[at] = script.byte(),
            1 if at < bytes.len() => bytes[at] ^= 1 << (script.byte() % 8),
            2 => bytes.truncate(at),
            3 => bytes.insert(at, script.byte()),
            4 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
}

fn raw_message(script: &mut Script<'_>) -> Vec<u8> {
    let len = usize::from(script.byte());
    script.bytes(len)
}

// ---- checks shared by both roles -------------------------------------------------------

/// Whether the batch ends the session; asserts that nothing follows the end.
fn check_batch(actions: &[Action], ended_before: bool, closed_now: bool, who: &str) -> bool {
    if ended_before {
        assert!(
            actions.is_empty(),
            "{who}: actions after the end: {actions:?}"
        );
        assert!(closed_now, "{who}: reopened");
        return true;
    }
    let ends: Vec<usize> = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, Action::Abort(_) | Action::Close))
        .map(|(i, _)| i)
        .collect();
    match ends[..] {
        [] => {
            assert!(
                !closed_now,
                "{who}: closed without Abort or Close: {actions:?}"
            );
            false
        }
        [at] => {
            assert_eq!(
                at,
                actions.len() - 1,
                "{who}: actions after the end: {actions:?}"
            );
            assert!(closed_now, "{who}: Abort/Close but not closed: {actions:?}");
            true
        }
        _ => panic!("{who}: ended twice: {actions:?}"),
    }
}

fn sends(actions: &[Action]) -> impl Iterator<Item = &Vec<u8>> {
    actions.iter().filter_map(|a| match a {
        Action::Send(bytes) => Some(bytes),
        _ => None,
    })
}

fn events(actions: &[Action]) -> impl Iterator<Item = &Event> {
    actions.iter().filter_map(|a| match a {
        Action::Deliver(e) => Some(e),
        _ => None,
    })
}

fn abort_reason(actions: &[Action]) -> Option<&AbortReason> {
    actions.iter().find_map(|a| match a {
        Action::Abort(reason) => Some(reason),
        _ => None,
    })
}

fn decode_sent(bytes: &[u8], who: &str) -> DsoMessage {
    let message = decode(bytes).unwrap_or_else(|e| panic!("{who} sent {bytes:02x?}: {e}"));
    assert_eq!(bytes[2] & 0x07, 0, "{who}: Z bits set");
    assert_eq!(bytes[3] & 0xf0, 0, "{who}: Z bits set");
    message
}

fn assert_no_duplicates<'s>(subscriptions: impl Iterator<Item = (u16, &'s Subscribe)>, who: &str) {
    let mut seen = HashSet::new();
    for (id, sub) in subscriptions {
        assert_ne!(id, 0, "{who}: subscription with MESSAGE ID 0");
        let key = (sub.name.to_lowercase(), sub.rtype, sub.class);
        assert!(seen.insert(key), "{who}: duplicate subscription {sub:?}");
    }
}

fn names_match(a: &Name, b: &Name) -> bool {
    let mut a = a.to_lowercase();
    let mut b = b.to_lowercase();
    a.set_fqdn(true);
    b.set_fqdn(true);
    a == b
}

/// Aborts that a correct peer can cause: timers (the script decides when messages are
/// delivered and clocks advance).
fn timer_abort(reason: &AbortReason) -> bool {
    matches!(
        reason,
        AbortReason::NoResponse { .. }
            | AbortReason::Inactive { .. }
            | AbortReason::KeepaliveMissed { .. }
            | AbortReason::RetryDelayIgnored { .. }
    )
}

// ---- the client ------------------------------------------------------------------------

struct ClientUnderTest {
    session: ClientSession,
    ended: bool,
    /// Shadow model of MESSAGE IDs in use (RFC 8490 §5.4.1): requests awaiting a response…
    outstanding: HashSet<u16>,
    /// …and accepted subscriptions not yet cancelled.
    active: HashSet<u16>,
    /// IDs worth reusing in scripted messages.
    seen_ids: Vec<u16>,
}

impl ClientUnderTest {
    fn new(config: ClientConfig, now: Instant) -> Self {
        Self {
            session: ClientSession::new(config, now),
            ended: false,
            outstanding: HashSet::new(),
            active: HashSet::new(),
            seen_ids: Vec::new(),
        }
    }

    /// Checks a batch of actions and returns the messages to deliver to the server.
    fn check(&mut self, actions: &[Action], received: Option<&DsoMessage>) -> Vec<Vec<u8>> {
        if !actions.is_empty() {
            trace!("  client: {actions:?}");
        }
        self.ended = check_batch(actions, self.ended, self.session.is_closed(), "client");
        if let Some(DsoMessage {
            id, response: true, ..
        }) = received
            && !self.ended
        {
            // The response resolved a request, or cancelled an accepted subscription.
            self.outstanding.remove(id);
            self.active.remove(id);
        }
        let established = self.session.is_established();
        let mut out = Vec::new();
        for bytes in sends(actions) {
            let message = decode_sent(bytes, "client");
            match message.kind() {
                MessageKind::Request => {
                    assert!(
                        matches!(message.primary, Some(Tlv::Keepalive(_) | Tlv::Subscribe(_))),
                        "client request {message:?}"
                    );
                    assert!(
                        !self.outstanding.contains(&message.id)
                            && !self.active.contains(&message.id),
                        "client reused MESSAGE ID {} still in use",
                        message.id
                    );
                    self.outstanding.insert(message.id);
                    self.seen_ids.push(message.id);
                }
                MessageKind::Unidirectional => {
                    assert!(established, "client unidirectional before establishment");
                    assert!(
                        matches!(
                            message.primary,
                            Some(Tlv::Unsubscribe { .. } | Tlv::Reconfirm(_))
                        ),
                        "client unidirectional {message:?}"
                    );
                }
                MessageKind::Response => {
                    assert!(
                        message.rcode == Rcode::DSOTYPENI || message.rcode == Rcode::FORMERR,
                        "client response {message:?}"
                    );
                    assert!(
                        message
                            .tlvs()
                            .all(|t| matches!(t, Tlv::EncryptionPadding(_))),
                        "client response {message:?}"
                    );
                }
            }
            out.push(bytes.clone());
        }
        for event in events(actions) {
            match event {
                Event::Subscribed { id } => {
                    assert!(self.session.subscription(*id).is_some());
                    self.active.insert(*id);
                }
                Event::SubscriptionCancelled { id, rcode, .. } => {
                    assert_ne!(*rcode, Rcode::NOERROR);
                    self.active.remove(id);
                }
                Event::Established => assert!(self.session.is_established()),
                Event::Push(changes) => {
                    assert!(!changes.is_empty());
                    for change in changes {
                        assert!(!matches!(change, PushChange::Ignored { .. }));
                        assert!(
                            self.session
                                .subscriptions()
                                .any(|(_, s)| names_match(&s.name, change.name())),
                            "client delivered an unsubscribed change {change:?}"
                        );
                    }
                }
                Event::TimeoutsChanged(ka) => {
                    assert!(ka.keepalive_interval_ms >= Keepalive::MIN_KEEPALIVE_INTERVAL_MS)
                }
                Event::SubscribeRequest { .. }
                | Event::Unsubscribed { .. }
                | Event::Reconfirm(_) => {
                    panic!("server event at the client: {event:?}")
                }
                _ => {}
            }
        }
        if !self.ended {
            let ids: HashSet<u16> = self.session.subscriptions().map(|(id, _)| id).collect();
            assert_eq!(
                ids, self.active,
                "client subscriptions differ from the shadow model"
            );
        }
        assert_no_duplicates(self.session.subscriptions(), "client");
        out
    }

    /// An application operation: refused once the session has ended.
    fn operation(
        &mut self,
        result: Result<Vec<Action>, SessionError>,
    ) -> Result<Vec<Vec<u8>>, SessionError> {
        if self.ended {
            assert!(
                matches!(result, Err(SessionError::Closed)),
                "client after end: {result:?}"
            );
        }
        let actions = result?;
        Ok(self.check(&actions, None))
    }

    fn receive(&mut self, bytes: &[u8], now: Instant) -> (Vec<Vec<u8>>, Vec<Action>) {
        let actions = self.session.receive(bytes, now);
        let received = decode(bytes).ok();
        (self.check(&actions, received.as_ref()), actions)
    }

    fn poll(&mut self, now: Instant) -> (Vec<Vec<u8>>, Vec<Action>) {
        let actions = self.session.poll(now);
        let out = self.check(&actions, None);
        if !self.session.is_closed()
            && let Some(deadline) = self.session.next_deadline()
        {
            assert!(deadline > now, "client deadline in the past after poll");
        }
        (out, actions)
    }

    fn run(&mut self, op: u8, script: &mut Script<'_>, now: Instant) -> Vec<Vec<u8>> {
        let result = match op % 6 {
            0 => {
                let sub = subscribe(script);
                self.session
                    .subscribe(sub.name, sub.rtype, sub.class, now)
                    .map(|(id, actions)| {
                        assert_ne!(id, 0);
                        actions
                    })
            }
            1 => {
                let mut ids: Vec<u16> = self
                    .active
                    .iter()
                    .chain(&self.outstanding)
                    .copied()
                    .collect();
                ids.sort_unstable();
                let id = message_id(script, &ids);
                let was_active = self.active.contains(&id);
                let result = self.session.unsubscribe(id, now);
                if result.is_ok() && was_active {
                    // The ID is free again at once (RFC 8765 §6.4.1).
                    self.active.remove(&id);
                }
                result
            }
            2 => self.session.keepalive(now),
            3 => self
                .session
                .reconfirm(name(script), class(script), rdata(script), now),
            4 => {
                // Closing twice is harmless: the second call does nothing.
                let was_closed = self.session.is_closed();
                let actions = self.session.close();
                assert!(self.session.is_closed());
                assert_eq!(actions.is_empty(), was_closed, "close: {actions:?}");
                return self.check(&actions, None);
            }
            _ => {
                self.session.note_activity(now);
                return Vec::new();
            }
        };
        self.operation(result).unwrap_or_default()
    }
}

// ---- the server ------------------------------------------------------------------------

struct ServerUnderTest {
    session: ServerSession,
    ended: bool,
    /// A Retry Delay was sent: nothing more may be (RFC 8490 §6.6.1).
    draining: bool,
    /// SUBSCRIBE requests delivered and not yet answered.
    unanswered: Vec<u16>,
    /// IDs of subscriptions the server cancelled (for the cancellation/UNSUBSCRIBE race).
    cancelled: HashSet<u16>,
    seen_ids: Vec<u16>,
}

impl ServerUnderTest {
    fn new(config: ServerConfig, now: Instant) -> Self {
        Self {
            session: ServerSession::new(config, now),
            ended: false,
            draining: false,
            unanswered: Vec::new(),
            cancelled: HashSet::new(),
            seen_ids: Vec::new(),
        }
    }

    fn check(&mut self, actions: &[Action]) -> Vec<Vec<u8>> {
        if !actions.is_empty() {
            trace!("  server: {actions:?}");
        }
        self.ended = check_batch(actions, self.ended, self.session.is_closed(), "server");
        assert!(
            !actions.contains(&Action::Close),
            "the server never closes gracefully"
        );
        if self.draining {
            assert!(
                sends(actions).next().is_none(),
                "server sent after Retry Delay: {actions:?}"
            );
        }
        let established = self.session.is_established();
        let mut out = Vec::new();
        for bytes in sends(actions) {
            let message = decode_sent(bytes, "server");
            assert!(
                message
                    .additional
                    .iter()
                    .all(|t| matches!(t, Tlv::EncryptionPadding(_) | Tlv::RetryDelay { .. })),
                "server additional TLVs {message:?}"
            );
            match (message.kind(), &message.primary) {
                (MessageKind::Response, Some(Tlv::Keepalive(ka))) => {
                    assert_eq!(message.rcode, Rcode::NOERROR);
                    assert!(ka.keepalive_interval_ms >= Keepalive::MIN_KEEPALIVE_INTERVAL_MS);
                }
                (MessageKind::Response, None) => {}
                (MessageKind::Unidirectional, Some(primary)) => {
                    assert!(established, "server unidirectional before establishment");
                    match primary {
                        Tlv::Keepalive(ka) => assert!(
                            ka.keepalive_interval_ms >= Keepalive::MIN_KEEPALIVE_INTERVAL_MS
                        ),
                        Tlv::RetryDelay { .. } => self.draining = true,
                        Tlv::Push(changes) => {
                            assert!(bytes.len() <= MAX_PUSH_MESSAGE_LEN);
                            for change in changes {
                                assert!(
                                    self.session
                                        .subscriptions()
                                        .any(|(_, s)| names_match(&s.name, change.name())),
                                    "server pushed an unsubscribed change {change:?}"
                                );
                            }
                        }
                        other => panic!("server unidirectional {other:?}"),
                    }
                }
                _ => panic!("server sent {message:?}"),
            }
            out.push(bytes.clone());
        }
        for event in events(actions) {
            match event {
                Event::SubscribeRequest { id, .. } => {
                    self.unanswered.push(*id);
                    self.seen_ids.push(*id);
                }
                Event::Unsubscribed { id } => {
                    assert!(self.session.subscription(*id).is_none());
                }
                Event::Reconfirm(_) | Event::NonDso(_) => {}
                other => panic!("client event at the server: {other:?}"),
            }
        }
        assert_no_duplicates(self.session.subscriptions(), "server");
        out
    }

    fn operation(
        &mut self,
        result: Result<Vec<Action>, SessionError>,
    ) -> Result<Vec<Vec<u8>>, SessionError> {
        if self.ended {
            assert!(
                matches!(result, Err(SessionError::Closed)),
                "server after end: {result:?}"
            );
        } else if self.draining {
            assert!(
                matches!(result, Err(SessionError::ShuttingDown)),
                "server after Retry Delay: {result:?}"
            );
        }
        let actions = result?;
        Ok(self.check(&actions))
    }

    fn receive(&mut self, bytes: &[u8], now: Instant) -> (Vec<Vec<u8>>, Vec<Action>) {
        let actions = self.session.receive(bytes, now);
        if self.draining {
            assert!(
                actions.is_empty(),
                "server answered after Retry Delay: {actions:?}"
            );
        }
        (self.check(&actions), actions)
    }

    fn poll(&mut self, now: Instant) -> (Vec<Vec<u8>>, Vec<Action>) {
        let actions = self.session.poll(now);
        let out = self.check(&actions);
        if !self.session.is_closed()
            && let Some(deadline) = self.session.next_deadline()
        {
            assert!(deadline > now, "server deadline in the past after poll");
        }
        (out, actions)
    }

    fn rcode(script: &mut Script<'_>) -> Rcode {
        Rcode::new(script.byte() % 16).unwrap_or(Rcode::SERVFAIL)
    }

    fn retry(script: &mut Script<'_>) -> Option<Duration> {
        match script.byte() % 3 {
            0 => None,
            1 => Some(Duration::from_millis(u64::from(millis(script)))),
            _ => Some(duration(script)),
        }
    }

    fn pick_unanswered(&mut self, script: &mut Script<'_>) -> u16 {
        if self.unanswered.is_empty() || script.byte() % 8 == 0 {
            return script.u16();
        }
        let at = usize::from(script.byte()) % self.unanswered.len();
        self.unanswered.swap_remove(at)
    }

    fn run(&mut self, op: u8, script: &mut Script<'_>, now: Instant) -> Vec<Vec<u8>> {
        let result = match op % 8 {
            0 | 1 => {
                let id = self.pick_unanswered(script);
                self.session.accept_subscribe(id, now)
            }
            2 => {
                let id = self.pick_unanswered(script);
                let (rcode, retry) = (Self::rcode(script), Self::retry(script));
                self.session.reject_subscribe(id, rcode, retry, now)
            }
            3 => {
                let ids: Vec<u16> = self.session.subscriptions().map(|(id, _)| id).collect();
                let id = message_id(script, &ids);
                let (rcode, retry) = (Self::rcode(script), Self::retry(script));
                let result = self.session.cancel_subscription(id, rcode, retry, now);
                if result.is_ok() {
                    self.cancelled.insert(id);
                }
                result
            }
            4 => self.session.push(&changes(script), now),
            5 => {
                let timeouts = Keepalive {
                    inactivity_timeout_ms: millis(script),
                    keepalive_interval_ms: millis(script),
                };
                self.session.set_timeouts(timeouts, now)
            }
            6 => {
                let (delay, rcode) = (duration(script), Self::rcode(script));
                self.session.retry_delay(delay, rcode, now)
            }
            _ => {
                self.session.note_activity(now);
                return Vec::new();
            }
        };
        self.operation(result).unwrap_or_default()
    }
}

// ---- the world: clock, sessions, and the wire between them -----------------------------

struct World {
    start: Instant,
    now: Instant,
    client: ClientUnderTest,
    server: ServerUnderTest,
    to_server: VecDeque<Vec<u8>>,
    to_client: VecDeque<Vec<u8>>,
    paired: bool,
    /// A message was corrupted or dropped: the peers may now abort each other.
    corrupted: bool,
}

impl World {
    fn step(&mut self, script: &mut Script<'_>) {
        let op = script.byte();
        trace!("step {op} at {:?}", self.now - self.start);
        match op % 10 {
            0 => self.advance(script),
            1 => {
                let (out, actions) = self.client.poll(self.now);
                self.check_client_aborts(&actions);
                self.to_server.extend(out);
            }
            2 => {
                let (out, actions) = self.server.poll(self.now);
                self.check_server_aborts(&actions);
                self.to_client.extend(out);
            }
            3 | 4 if self.paired => self.deliver_to_server(script),
            5 | 6 if self.paired => self.deliver_to_client(script),
            3 => {
                let bytes = if op & 0x80 == 0 {
                    raw_message(script)
                } else {
                    assembled_message(script, &self.server.seen_ids)
                };
                let (_, _) = self.server.receive(&bytes, self.now);
            }
            4 | 5 => {
                let bytes = if op & 0x80 == 0 {
                    raw_message(script)
                } else {
                    assembled_message(script, &self.client.seen_ids)
                };
                let (_, _) = self.client.receive(&bytes, self.now);
            }
            6 => {
                // A well-formed answer to the client's latest request.
                let Some(&id) = self.client.seen_ids.last() else {
                    return;
                };
                let mut response = DsoMessage::response(id, ServerUnderTest::rcode(script));
                if script.byte() & 1 == 1 {
                    response.primary = Some(Tlv::Keepalive(Keepalive {
                        inactivity_timeout_ms: millis(script),
                        keepalive_interval_ms: millis(script),
                    }));
                }
                if let Ok(bytes) = response.encode() {
                    self.client.receive(&bytes, self.now);
                }
            }
            7 => {
                let out = self.client.run(script.byte(), script, self.now);
                self.to_server.extend(out);
            }
            _ => {
                let out = self.server.run(script.byte(), script, self.now);
                self.to_client.extend(out);
            }
        }
        if !self.paired {
            self.to_server.clear();
            self.to_client.clear();
        }
    }

    fn advance(&mut self, script: &mut Script<'_>) {
        let deadline = |d: Option<Instant>| d.map(|d| d.saturating_duration_since(self.now));
        let step = match script.byte() % 12 {
            0 => Some(Duration::from_millis(1)),
            1 => Some(Duration::from_millis(999)),
            2 => Some(Duration::from_secs(5)),
            3 => Some(Duration::from_secs(10)),
            4 => Some(Duration::from_secs(15)),
            5 => Some(Duration::from_secs(30)),
            6 => Some(Duration::from_millis(u64::from(script.u16()))),
            7 => Some(Duration::from_millis(u64::from(script.u32()))),
            8 => deadline(self.client.session.next_deadline()),
            9 => deadline(self.server.session.next_deadline()),
            10 => deadline(self.client.session.next_deadline())
                .map(|d| d.saturating_sub(Duration::from_millis(1))),
            _ => Some(Duration::ZERO),
        };
        // Deadlines far in the future (infinite timeouts) are not worth the jump.
        if let Some(step) = step.filter(|s| *s <= Duration::from_secs(1 << 40)) {
            self.now += step;
        }
    }

    fn deliver_to_server(&mut self, script: &mut Script<'_>) {
        let count = 1 + usize::from(script.byte() % 4);
        for _ in 0..count {
            let Some(mut bytes) = self.to_server.pop_front() else {
                return;
            };
            if self.corrupt(script, &mut bytes) {
                continue;
            }
            let (out, actions) = self.server.receive(&bytes, self.now);
            self.check_server_aborts(&actions);
            self.to_client.extend(out);
        }
    }

    fn deliver_to_client(&mut self, script: &mut Script<'_>) {
        let count = 1 + usize::from(script.byte() % 4);
        for _ in 0..count {
            let Some(mut bytes) = self.to_client.pop_front() else {
                return;
            };
            if self.corrupt(script, &mut bytes) {
                continue;
            }
            let (out, actions) = self.client.receive(&bytes, self.now);
            self.check_client_aborts(&actions);
            self.to_server.extend(out);
        }
    }

    /// Sometimes corrupts a message in flight; returns whether it was dropped instead.
    fn corrupt(&mut self, script: &mut Script<'_>, bytes: &mut Vec<u8>) -> bool {
        match script.byte() % 16 {
            0 => {
                self.corrupted = true;
                true
            }
            1 => {
                let before = bytes.clone();
                mutate(script, bytes);
                self.corrupted |= *bytes != before;
                false
            }
            _ => false,
        }
    }

    /// Between two correct peers the only aborts are timer ones, and the client's abort on
    /// a cancellation that crossed its own UNSUBSCRIBE (RFC 8490 §5.5.2 makes a response
    /// to no outstanding operation fatal; RFC 8490 §5.6 and RFC 8765 §6.4 allow the race).
    fn check_client_aborts(&self, actions: &[Action]) {
        if let Some(reason) = abort_reason(actions)
            && self.paired
            && !self.corrupted
        {
            let race = matches!(reason, AbortReason::UnknownResponseId { id } if self.server.cancelled.contains(id));
            assert!(
                timer_abort(reason) || race,
                "client aborted a correct server: {reason}"
            );
        }
    }

    fn check_server_aborts(&self, actions: &[Action]) {
        if let Some(reason) = abort_reason(actions)
            && self.paired
            && !self.corrupted
        {
            assert!(
                timer_abort(reason),
                "server aborted a correct client: {reason}"
            );
        }
    }
}
