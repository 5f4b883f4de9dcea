//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::{Duration, Instant};

use dso::{AbortReason, Action, ClientSession, DsoMessage, Event, ServerSession, decode};
use hickory_proto::rr::rdata::PTR;
use hickory_proto::rr::{Name, RData};

/// Parses whitespace-separated hex bytes; `#` starts a comment running to the end of the line.
pub fn hex(text: &str) -> Vec<u8> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect()
}

/// Strips and checks the two-byte TCP length prefix of a test vector.
pub fn unframe(framed: &[u8]) -> Vec<u8> {
    let (prefix, message) = framed.split_at(2);
    assert_eq!(
        usize::from(u16::from_be_bytes([prefix[0], prefix[1]])),
        message.len(),
        "length prefix of the test vector"
    );
    message.to_vec()
}

pub fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("valid name")
}

pub fn ptr(target: &str) -> RData {
    RData::PTR(PTR(name(target)))
}

/// The test vectors of shared/reference/dso-push.md, framed (length prefix included).
pub mod reference {
    pub const KEEPALIVE_REQUEST: &str = "
        00 18 00 2a 30 00 00 00 00 00 00 00 00 00 00 01 00 08 00 00 3a 98 00 00
        3a 98";
    pub const KEEPALIVE_RESPONSE: &str = "
        00 18 00 2a b0 00 00 00 00 00 00 00 00 00 00 01 00 08 00 00 3a 98 00 00
        3a 98";
    pub const SUBSCRIBE: &str = "
        00 2b 12 34 30 00 00 00 00 00 00 00 00 00 00 40 00 1b 04 5f 69 70 70 04
        5f 74 63 70 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 0c 00 01";
    pub const SUBSCRIBE_RESPONSE: &str = "
        00 0c 12 34 b0 00 00 00 00 00 00 00 00 00";
    pub const SUBSCRIBE_SERVFAIL_RETRY: &str = "
        00 14 12 34 b0 02 00 00 00 00 00 00 00 00 00 02 00 04 00 04 93 e0";
    pub const PUSH_ADD: &str = "
        00 50 00 00 30 00 00 00 00 00 00 00 00 00 00 41 00 40 04 5f 69 70 70 04
        5f 74 63 70 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 0c 00 01 00 00 0e
        10 00 1f 07 70 72 69 6e 74 65 72 04 5f 69 70 70 04 5f 74 63 70 07 65 78
        61 6d 70 6c 65 03 63 6f 6d 00";
    pub const PUSH_REMOVES: &str = "
        00 71 00 00 30 00 00 00 00 00 00 00 00 00 00 41 00 61 04 5f 69 70 70 04
        5f 74 63 70 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 0c 00 01 ff ff ff
        ff 00 1f 07 70 72 69 6e 74 65 72 04 5f 69 70 70 04 5f 74 63 70 07 65 78
        61 6d 70 6c 65 03 63 6f 6d 00 04 5f 69 70 70 04 5f 74 63 70 07 65 78 61
        6d 70 6c 65 03 63 6f 6d 00 00 0c 00 01 ff ff ff fe 00 00";
    pub const UNSUBSCRIBE: &str = "
        00 12 00 00 30 00 00 00 00 00 00 00 00 00 00 42 00 02 12 34";
    pub const RECONFIRM: &str = "
        00 4a 00 00 30 00 00 00 00 00 00 00 00 00 00 43 00 3a 04 5f 69 70 70 04
        5f 74 63 70 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 0c 00 01 07 70 72
        69 6e 74 65 72 04 5f 69 70 70 04 5f 74 63 70 07 65 78 61 6d 70 6c 65 03
        63 6f 6d 00";
    pub const RETRY_DELAY: &str = "
        00 14 00 00 30 00 00 00 00 00 00 00 00 00 00 02 00 04 00 00 13 88";

    pub const ALL: [&str; 10] = [
        KEEPALIVE_REQUEST,
        KEEPALIVE_RESPONSE,
        SUBSCRIBE,
        SUBSCRIBE_RESPONSE,
        SUBSCRIBE_SERVFAIL_RETRY,
        PUSH_ADD,
        PUSH_REMOVES,
        UNSUBSCRIBE,
        RECONFIRM,
        RETRY_DELAY,
    ];
}

/// A fake clock: instants relative to a fixed start.
pub struct Clock(Instant);

impl Clock {
    pub fn new() -> Self {
        Self(Instant::now())
    }

    pub fn at(&self, secs: f64) -> Instant {
        self.0 + Duration::from_secs_f64(secs)
    }
}

pub fn sends(actions: &[Action]) -> Vec<Vec<u8>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

pub fn sent_messages(actions: &[Action]) -> Vec<DsoMessage> {
    sends(actions)
        .iter()
        .map(|b| decode(b).expect("we only send valid messages"))
        .collect()
}

pub fn events(actions: &[Action]) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

pub fn abort_reason(actions: &[Action]) -> &AbortReason {
    match actions {
        [Action::Abort(reason)] => reason,
        other => panic!("expected a single Abort, got {other:?}"),
    }
}

pub fn to_server(server: &mut ServerSession, actions: &[Action], now: Instant) -> Vec<Action> {
    sends(actions)
        .iter()
        .flat_map(|b| server.receive(b, now))
        .collect()
}

pub fn to_client(client: &mut ClientSession, actions: &[Action], now: Instant) -> Vec<Action> {
    sends(actions)
        .iter()
        .flat_map(|b| client.receive(b, now))
        .collect()
}
