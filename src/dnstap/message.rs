//! dnstap messages: hand-written prost structs for `Dnstap`, `Message` and `Policy`, with
//! the field numbers, types and enum values of the dnstap schema (proto2), and
//! [`decode`] for one data frame's payload.
//!
//! Byte fields are [`Bytes`]: decoded from a `Bytes` buffer they share it instead of
//! copying. Required proto2 fields are plain fields (missing ones decode as 0; prost does
//! not enforce `required`); enums are `i32` with the typed enums below for their values.
//! The DNS payloads are read with [`super::dns::DnsView`].
//!
//! Not implemented: validation that required fields were present; the `extra` field is
//! kept but never interpreted.

use bytes::Bytes;

/// A `Dnstap` frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub identity: Option<Bytes>,
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub version: Option<Bytes>,
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub extra: Option<Bytes>,
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
    /// [`DnstapType`].
    #[prost(enumeration = "DnstapType", required, tag = "15")]
    pub r#type: i32,
}

/// `Dnstap.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DnstapType {
    Message = 1,
}

/// A `Message`: one DNS query or response seen by the server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// [`MessageType`].
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub r#type: i32,
    /// [`SocketFamily`].
    #[prost(enumeration = "SocketFamily", optional, tag = "2")]
    pub socket_family: Option<i32>,
    /// [`SocketProtocol`].
    #[prost(enumeration = "SocketProtocol", optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    /// The initiator's address (4 or 16 bytes).
    #[prost(bytes = "bytes", optional, tag = "4")]
    pub query_address: Option<Bytes>,
    /// The responder's address.
    #[prost(bytes = "bytes", optional, tag = "5")]
    pub response_address: Option<Bytes>,
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    /// The query in DNS wire format.
    #[prost(bytes = "bytes", optional, tag = "10")]
    pub query_message: Option<Bytes>,
    /// The zone (bailiwick) in DNS wire format.
    #[prost(bytes = "bytes", optional, tag = "11")]
    pub query_zone: Option<Bytes>,
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    /// The response in DNS wire format.
    #[prost(bytes = "bytes", optional, tag = "14")]
    pub response_message: Option<Bytes>,
    #[prost(message, optional, tag = "15")]
    pub policy: Option<Policy>,
    /// [`HttpProtocol`].
    #[prost(enumeration = "HttpProtocol", optional, tag = "16")]
    pub http_protocol: Option<i32>,
}

/// A `Policy`: what a response policy did to the message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Policy {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub rule: Option<Bytes>,
    /// [`PolicyAction`].
    #[prost(enumeration = "PolicyAction", optional, tag = "3")]
    pub action: Option<i32>,
    /// [`PolicyMatch`].
    #[prost(enumeration = "PolicyMatch", optional, tag = "4")]
    pub r#match: Option<i32>,
    #[prost(bytes = "bytes", optional, tag = "5")]
    pub value: Option<Bytes>,
}

/// `Message.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    AuthQuery = 1,
    AuthResponse = 2,
    ResolverQuery = 3,
    ResolverResponse = 4,
    ClientQuery = 5,
    ClientResponse = 6,
    ForwarderQuery = 7,
    ForwarderResponse = 8,
    StubQuery = 9,
    StubResponse = 10,
    ToolQuery = 11,
    ToolResponse = 12,
    UpdateQuery = 13,
    UpdateResponse = 14,
}

impl MessageType {
    /// The schema's name, e.g. `AUTH_QUERY`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AuthQuery => "AUTH_QUERY",
            Self::AuthResponse => "AUTH_RESPONSE",
            Self::ResolverQuery => "RESOLVER_QUERY",
            Self::ResolverResponse => "RESOLVER_RESPONSE",
            Self::ClientQuery => "CLIENT_QUERY",
            Self::ClientResponse => "CLIENT_RESPONSE",
            Self::ForwarderQuery => "FORWARDER_QUERY",
            Self::ForwarderResponse => "FORWARDER_RESPONSE",
            Self::StubQuery => "STUB_QUERY",
            Self::StubResponse => "STUB_RESPONSE",
            Self::ToolQuery => "TOOL_QUERY",
            Self::ToolResponse => "TOOL_RESPONSE",
            Self::UpdateQuery => "UPDATE_QUERY",
            Self::UpdateResponse => "UPDATE_RESPONSE",
        }
    }

    /// Queries have odd values, responses even ones.
    pub fn is_query(self) -> bool {
        (self as i32) % 2 == 1
    }
}

/// `SocketFamily`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketFamily {
    Inet = 1,
    Inet6 = 2,
}

/// `SocketProtocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketProtocol {
    Udp = 1,
    Tcp = 2,
    Dot = 3,
    Doh = 4,
    DnsCryptUdp = 5,
    DnsCryptTcp = 6,
    Doq = 7,
}

/// `HttpProtocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum HttpProtocol {
    Http1 = 1,
    Http2 = 2,
    Http3 = 3,
}

/// `Policy.Action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyAction {
    Nxdomain = 1,
    Nodata = 2,
    Pass = 3,
    Drop = 4,
    Truncate = 5,
    LocalData = 6,
}

/// `Policy.Match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyMatch {
    Qname = 1,
    ClientIp = 2,
    ResponseIp = 3,
    NsName = 4,
    NsIp = 5,
}

/// Decodes one data frame's payload. Pass a [`Bytes`] to share it, or a `&[u8]` to copy.
pub fn decode(payload: impl bytes::Buf) -> Result<Dnstap, prost::DecodeError> {
    prost::Message::decode(payload)
}

impl Message {
    /// The message type, `None` for a value this schema does not know.
    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::try_from(self.r#type).ok()
    }

    /// The seconds of the time the message belongs to: the query time for queries, the
    /// response time for responses, falling back to the other one.
    pub fn time_sec(&self) -> Option<u64> {
        let query_first = self.message_type().is_none_or(MessageType::is_query);
        if query_first {
            self.query_time_sec.or(self.response_time_sec)
        } else {
            self.response_time_sec.or(self.query_time_sec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn round_trip_and_zero_copy() {
        let frame = Dnstap {
            identity: Some(Bytes::from_static(b"knot-test")),
            version: None,
            extra: None,
            r#type: DnstapType::Message as i32,
            message: Some(Message {
                r#type: MessageType::AuthResponse as i32,
                socket_family: Some(SocketFamily::Inet as i32),
                socket_protocol: Some(SocketProtocol::Udp as i32),
                response_time_sec: Some(1_795_000_000),
                response_time_nsec: Some(123),
                response_message: Some(Bytes::from_static(b"\x12\x34\x81\x80")),
                ..Default::default()
            }),
        };
        let encoded = Bytes::from(frame.encode_to_vec());
        let decoded = decode(encoded.clone()).unwrap();
        assert_eq!(decoded, frame);
        let response = decoded.message.as_ref().unwrap().response_message.as_ref();
        let inside = response.unwrap().as_ptr() as usize - encoded.as_ptr() as usize;
        assert!(inside < encoded.len(), "response_message was copied");
        let message = decoded.message.unwrap();
        assert_eq!(message.message_type(), Some(MessageType::AuthResponse));
        assert_eq!(message.time_sec(), Some(1_795_000_000));
    }

    #[test]
    fn wire_layout_matches_the_schema() {
        // Hand-assembled: type=MESSAGE (field 15 varint), message { type=CLIENT_QUERY,
        // query_time_sec=5, query_time_nsec=7 as fixed32 }.
        let wire = [
            0x78, 0x01, // 15: varint 1
            0x72, 0x09, // 14: 9 bytes
            0x08, 0x05, // 1: CLIENT_QUERY
            0x40, 0x05, // 8: 5
            0x4D, 0x07, 0x00, 0x00, 0x00, // 9: fixed32 7
        ];
        let frame = decode(&wire[..]).unwrap();
        assert_eq!(frame.r#type, 1);
        let message = frame.message.unwrap();
        assert_eq!(message.message_type(), Some(MessageType::ClientQuery));
        assert_eq!(
            (message.query_time_sec, message.query_time_nsec),
            (Some(5), Some(7))
        );
        assert!(MessageType::ClientQuery.is_query() && !MessageType::ClientResponse.is_query());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&[0x72, 0x10, 0x08][..]).is_err());
        assert!(decode(&[0xFF; 12][..]).is_err());
        // Unknown message type values decode and are reported as unknown.
        let frame = decode(&[0x78, 0x01, 0x72, 0x02, 0x08, 0x63][..]).unwrap();
        assert_eq!(frame.message.unwrap().message_type(), None);
    }
}
