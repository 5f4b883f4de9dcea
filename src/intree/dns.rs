//! One DNS query to one server: UDP with EDNS (1232-octet buffer), again over TCP when the
//! answer is truncated, each try bounded by a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// UDP tries before a server counts as not answering.
const UDP_TRIES: usize = 2;
/// The EDNS buffer size offered (the DNS flag day 2020 value).
const EDNS_BUFFER: u16 = 1232;

/// Why a query got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rtype} {name} to {server}: {reason}")]
pub struct QueryError {
    pub server: SocketAddr,
    pub name: String,
    pub rtype: RecordType,
    pub reason: String,
}

/// Asks `server` for `name`/`rtype`; `recursion` sets RD. Any rcode is returned as an
/// answer; only transport failures and undecodable answers are errors.
pub async fn query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    recursion: bool,
    timeout: Duration,
) -> Result<Message, QueryError> {
    let fail = |reason: String| QueryError {
        server,
        name: name.to_string(),
        rtype,
        reason,
    };
    let qname = Name::from_ascii(name).map_err(|e| fail(e.to_string()))?;
    let id: u16 = rand_id();
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = recursion;
    message.add_query(Query::query(qname.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_BUFFER);
    message.set_edns(edns);
    let bytes = message.to_vec().map_err(|e| fail(e.to_string()))?;

    let local: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| fail(e.to_string()))?;
    socket
        .connect(server)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut buf = vec![0u8; 65535];
    let mut answer = None;
    let mut last_error = "no answer".to_string();
    'tries: for _ in 0..UDP_TRIES {
        socket.send(&bytes).await.map_err(|e| fail(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => {
                    last_error = format!("no answer within {timeout:?}");
                    continue 'tries;
                }
                Ok(Err(e)) => {
                    last_error = e.to_string();
                    continue 'tries;
                }
                Ok(Ok(n)) => {
                    if let Ok(m) = Message::from_vec(&buf[..n])
                        && answers(&m, id, &qname, rtype)
                    {
                        answer = Some(m);
                        break 'tries;
                    }
                }
            }
        }
    }
    let answer = answer.ok_or_else(|| fail(last_error))?;
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    let over_tcp = async {
        let mut tcp = TcpStream::connect(server)
            .await
            .map_err(|e| e.to_string())?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(&bytes);
        tcp.write_all(&framed).await.map_err(|e| e.to_string())?;
        let len = tcp.read_u16().await.map_err(|e| e.to_string())?;
        let mut body = vec![0u8; usize::from(len)];
        tcp.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        let m = Message::from_vec(&body).map_err(|e| e.to_string())?;
        if answers(&m, id, &qname, rtype) {
            Ok(m)
        } else {
            Err("the TCP answer does not match the query".to_string())
        }
    };
    match tokio::time::timeout(timeout, over_tcp).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(fail(format!("over TCP: {e}"))),
        Err(_) => Err(fail(format!("over TCP: no answer within {timeout:?}"))),
    }
}

fn answers(m: &Message, id: u16, qname: &Name, rtype: RecordType) -> bool {
    m.metadata.id == id
        && m.metadata.message_type == MessageType::Response
        && m.queries.len() == 1
        && m.queries[0].name().eq_case(qname)
        && m.queries[0].query_type() == rtype
}

fn rand_id() -> u16 {
    let mut bytes = [0u8; 2];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return (nanos ^ (nanos >> 16)) as u16;
    }
    u16::from_be_bytes(bytes)
}

/// Whether the rcode is NOERROR.
pub fn is_noerror(m: &Message) -> bool {
    m.metadata.response_code == ResponseCode::NoError
}

/// The owner of a record, lowercase and absolute.
pub fn owner(record: &Record) -> String {
    let text = record.name.to_lowercase().to_ascii();
    if text.ends_with('.') {
        text
    } else {
        format!("{text}.")
    }
}

/// NS targets among `records` owned by `zone`, lowercase, sorted, each once.
pub fn ns_names<'a>(records: impl Iterator<Item = &'a Record>, zone: &str) -> Vec<String> {
    let mut out: Vec<String> = records
        .filter(|r| owner(r) == zone)
        .filter_map(|r| match &r.data {
            RData::NS(ns) => {
                let text = ns.0.to_lowercase().to_ascii();
                Some(if text.ends_with('.') {
                    text
                } else {
                    format!("{text}.")
                })
            }
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A and AAAA addresses among `records` owned by `name`, sorted, each once.
pub fn addresses<'a>(
    records: impl Iterator<Item = &'a Record>,
    name: &str,
) -> Vec<std::net::IpAddr> {
    let mut out: Vec<std::net::IpAddr> = records
        .filter(|r| owner(r) == name)
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(std::net::IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The record data in wire form of the records of `rtype` owned by `name`.
pub fn rdatas<'a>(
    records: impl Iterator<Item = &'a Record>,
    name: &str,
    rtype: RecordType,
) -> Vec<Vec<u8>> {
    records
        .filter(|r| r.record_type() == rtype && owner(r) == name)
        .filter_map(|r| r.data.to_bytes().ok())
        .collect()
}

/// The text of each TXT record owned by `name`: its strings concatenated (lossy UTF-8).
pub fn txt_texts<'a>(records: impl Iterator<Item = &'a Record>, name: &str) -> Vec<String> {
    records
        .filter(|r| owner(r) == name)
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}
