//! The signals zone over plain DNS, for the targets of a notify channel to transfer: queries
//! over UDP and TCP, AXFR over TCP, and IXFR answered with a full transfer (RFC 1995 §4
//! allows it) over TCP, or with the SOA alone over UDP.
//!
//! The zone is the push channel's ([`SignalsZone`]): SOA and NS at the apex, the NS host
//! `ns.<apex>` with the listener's address, and one TXT record per met condition and subject
//! (and per last event). The `_dns-push-tls._tcp` SRV record is left out: this listener is
//! not a DNS Push server.
//!
//! Who may ask is decided by source address (`allow`, loopback by default); others get
//! REFUSED. Transfers are not TSIG-signed. At most [`MAX_TCP_CONNECTIONS`] TCP connections
//! are served at once, each closed after [`TCP_IDLE`] without a request.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::config::AddressPrefix;
use crate::push::zone::SignalsZone;

/// Most TCP connections served at once; more are closed at once.
pub const MAX_TCP_CONNECTIONS: usize = 32;
/// A TCP connection without a request for this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Transfer messages stay under this size (estimated).
const MAX_TRANSFER_MESSAGE: usize = 16_000;
/// UDP answers larger than this are cut to the header and question with TC set.
const MAX_UDP_ANSWER: usize = 1232;
/// UDP answers to requests without EDNS stay under this size.
const MAX_PLAIN_UDP_ANSWER: usize = 512;

/// The zone as last built, and the names it has records at.
pub struct ServedZone {
    pub zone: SignalsZone,
    /// Every owner name of the zone except the apex, for transfers.
    pub names: BTreeSet<Name>,
}

/// The zone the listener serves; replaced whole when the journal moves.
pub type SharedZone = Arc<RwLock<Arc<ServedZone>>>;

/// The bound sockets of the listener.
pub struct TransferListener {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl TransferListener {
    /// Binds UDP and TCP on `addr`.
    pub fn bind(addr: SocketAddr) -> io::Result<TransferListener> {
        let udp = std::net::UdpSocket::bind(addr)?;
        udp.set_nonblocking(true)?;
        let addr = udp.local_addr()?;
        let tcp = std::net::TcpListener::bind(addr)?;
        tcp.set_nonblocking(true)?;
        Ok(TransferListener {
            udp: UdpSocket::from_std(udp)?,
            tcp: TcpListener::from_std(tcp)?,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Serves until the task is dropped.
    pub async fn serve(self, zone: SharedZone, allow: Arc<Vec<AddressPrefix>>) {
        let udp = serve_udp(self.udp, zone.clone(), allow.clone());
        let tcp = serve_tcp(self.tcp, zone, allow);
        tokio::join!(udp, tcp);
    }
}

async fn serve_udp(socket: UdpSocket, zone: SharedZone, allow: Arc<Vec<AddressPrefix>>) {
    let mut buffer = vec![0u8; 65535];
    loop {
        let (len, from) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!("signals zone (UDP): {e}");
                continue;
            }
        };
        let current = current(&zone);
        if let Some(reply) = respond(&current, &buffer[..len], from.ip(), &allow, false)
            .into_iter()
            .next()
        {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: SharedZone, allow: Arc<Vec<AddressPrefix>>) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (zone, allow) = (zone.clone(), allow.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = serve_connection(stream, from.ip(), &zone, &allow).await;
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    from: IpAddr,
    zone: &SharedZone,
    allow: &[AddressPrefix],
) -> io::Result<()> {
    loop {
        let mut length = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut request))
            .await
            .is_err()
        {
            return Ok(());
        }
        let current = current(zone);
        for reply in respond(&current, &request, from, allow, true) {
            let Ok(length) = u16::try_from(reply.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(reply.len() + 2);
            framed.extend_from_slice(&length.to_be_bytes());
            framed.extend_from_slice(&reply);
            tokio::time::timeout(TCP_IDLE, stream.write_all(&framed))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        }
    }
}

fn current(zone: &SharedZone) -> Arc<ServedZone> {
    zone.read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// The answers to one request (none, one, or the messages of a transfer). Never panics,
/// whatever the bytes.
pub fn respond(
    served: &ServedZone,
    request: &[u8],
    from: IpAddr,
    allow: &[AddressPrefix],
    tcp: bool,
) -> Vec<Vec<u8>> {
    let Ok(query) = Message::from_vec(request) else {
        return formerr(request).into_iter().collect();
    };
    if query.metadata.message_type != MessageType::Query {
        return Vec::new();
    }
    let zone = &served.zone;
    if !allow.iter().any(|prefix| prefix.contains(from)) {
        return encode(bare_answer(&query, ResponseCode::Refused))
            .into_iter()
            .collect();
    }
    let transfer = match query.queries.as_slice() {
        [q] if query.metadata.op_code == OpCode::Query => {
            matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
                .then(|| (q.query_type(), q.name().to_lowercase()))
        }
        _ => None,
    };
    if let Some((kind, name)) = transfer {
        if name != *zone.apex() {
            return encode(bare_answer(&query, ResponseCode::NotAuth))
                .into_iter()
                .collect();
        }
        if !tcp {
            if kind == RecordType::AXFR {
                return encode(bare_answer(&query, ResponseCode::Refused))
                    .into_iter()
                    .collect();
            }
            let mut answer = bare_answer(&query, ResponseCode::NoError);
            answer.metadata.authoritative = true;
            answer.add_answers(zone.records(zone.apex(), RecordType::SOA));
            return encode(answer).into_iter().collect();
        }
        return transfer_messages(served, &query);
    }
    let Some(mut answer) = zone.answer(&query) else {
        return Vec::new();
    };
    let before = answer.answers.len();
    answer
        .answers
        .retain(|r| r.record_type() != RecordType::SRV);
    if before > 0 && answer.answers.is_empty() {
        answer.add_authority(soa(zone));
    }
    if query.edns.is_some() {
        answer.set_edns(Edns::new());
    }
    let Some(bytes) = encode(answer.clone()) else {
        return Vec::new();
    };
    let limit = match (tcp, query.edns.is_some()) {
        (true, _) => usize::MAX,
        (false, true) => MAX_UDP_ANSWER,
        (false, false) => MAX_PLAIN_UDP_ANSWER,
    };
    if bytes.len() <= limit {
        return vec![bytes];
    }
    let mut cut = bare_answer(&query, answer.metadata.response_code);
    cut.metadata.authoritative = true;
    cut.metadata.truncation = true;
    encode(cut).into_iter().collect()
}

/// The messages of a full transfer: SOA, every other record, SOA.
fn transfer_messages(served: &ServedZone, query: &Message) -> Vec<Vec<u8>> {
    let zone = &served.zone;
    let soa = soa(zone);
    let mut records = vec![soa.clone()];
    records.extend(
        zone.records(zone.apex(), RecordType::ANY)
            .into_iter()
            .filter(|r| r.record_type() != RecordType::SOA),
    );
    for name in &served.names {
        records.extend(
            zone.records(name, RecordType::ANY)
                .into_iter()
                .filter(|r| r.record_type() != RecordType::SRV),
        );
    }
    records.push(soa);
    let mut messages = Vec::new();
    let mut message = transfer_message(query);
    let mut size = 0;
    for record in records {
        let record_size = estimated_size(&record);
        if size + record_size > MAX_TRANSFER_MESSAGE && !message.answers.is_empty() {
            messages.extend(encode(std::mem::replace(
                &mut message,
                transfer_message(query),
            )));
            size = 0;
        }
        size += record_size;
        message.add_answer(record);
    }
    messages.extend(encode(message));
    messages
}

fn transfer_message(query: &Message) -> Message {
    let mut message = bare_answer(query, ResponseCode::NoError);
    message.metadata.authoritative = true;
    message
}

fn soa(zone: &SignalsZone) -> Record {
    zone.records(zone.apex(), RecordType::SOA)
        .into_iter()
        .next()
        .expect("the apex always has a SOA record")
}

fn estimated_size(record: &Record) -> usize {
    let rdata = match &record.data {
        RData::TXT(txt) => txt.txt_data.iter().map(|s| s.len() + 1).sum(),
        _ => 256,
    };
    record.name.len() + 12 + rdata
}

/// An answer echoing the question, with `rcode` and nothing else.
fn bare_answer(query: &Message, rcode: ResponseCode) -> Message {
    let mut answer = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    answer.metadata = Metadata::response_from_request(&query.metadata);
    answer.metadata.response_code = rcode;
    answer.add_queries(query.queries.clone());
    answer
}

/// FORMERR for a request whose header reads as a query but whose body does not parse.
fn formerr(request: &[u8]) -> Option<Vec<u8>> {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let header = hickory_proto::op::Header::read(&mut BinDecoder::new(request)).ok()?;
    if header.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut answer = Message::new(
        header.metadata.id,
        MessageType::Response,
        header.metadata.op_code,
    );
    answer.metadata.response_code = ResponseCode::FormErr;
    encode(answer)
}

fn encode(message: Message) -> Option<Vec<u8>> {
    message.to_vec().ok()
}
