//! Talking to a server about one zone: the SOA with the server's remaining expire time
//! ([`soa_check`], UDP with TCP after a truncated answer) and a zone transfer scanned as it
//! streams in ([`transfer`], AXFR over TCP, TSIG-signed when a key is given).
//!
//! A transfer reads one message at a time into one buffer (at most 64 KiB): memory does not
//! grow with the zone. Each message must arrive within `timeout` of the previous one, and
//! the whole transfer within `transfer_timeout`.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name as WireName, RecordType, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout as within};

use super::axfr::{AxfrError, AxfrReader, AxfrSummary, TsigChain};
use super::name::Name;
use super::scan::SignatureScan;
use super::wire::{Header, SoaAnswer, WireError, read_soa_answer, soa_query};

/// Why a query or a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{what} {address}: {source}")]
    Io {
        what: &'static str,
        address: SocketAddr,
        source: io::Error,
    },
    #[error("no answer from {address} within {after:?}")]
    Timeout {
        address: SocketAddr,
        after: Duration,
    },
    #[error(
        "the connection to {address} closed after {messages} messages, before the transfer was complete"
    )]
    Closed { address: SocketAddr, messages: u64 },
    #[error("unreadable answer from {address}: {error}")]
    Wire {
        address: SocketAddr,
        error: WireError,
    },
    #[error("transfer from {address}: {error}")]
    Axfr {
        address: SocketAddr,
        error: AxfrError,
    },
    #[error("cannot build the query: {0}")]
    Query(String),
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Asks `address` for `zone`'s SOA with the EDNS EXPIRE option; the answer as it came,
/// whatever its RCODE.
pub async fn soa_check(
    address: SocketAddr,
    zone: &Name,
    timeout: Duration,
) -> Result<SoaAnswer, TransferError> {
    let io = |what| {
        move |source| TransferError::Io {
            what,
            address,
            source,
        }
    };
    let id: u16 = rand_id();
    let query = soa_query(id, zone);
    let bind: SocketAddr = if address.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("a valid wildcard address");
    let socket = UdpSocket::bind(bind).await.map_err(io("bind for"))?;
    socket.connect(address).await.map_err(io("connect to"))?;
    socket.send(&query).await.map_err(io("send to"))?;
    let deadline = Instant::now() + timeout;
    let mut buffer = vec![0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let len = match within(left, socket.recv(&mut buffer)).await {
            Err(_) => {
                return Err(TransferError::Timeout {
                    address,
                    after: timeout,
                });
            }
            Ok(result) => result.map_err(io("receive from"))?,
        };
        let answer = &buffer[..len];
        // Something else on the socket (a late or forged datagram) is skipped.
        match Header::read(answer) {
            Ok(h) if h.id == id && h.response => {
                if h.truncated {
                    return soa_check_tcp(address, zone, id, &query, timeout).await;
                }
                return read_soa_answer(answer, zone)
                    .map_err(|error| TransferError::Wire { address, error });
            }
            _ => continue,
        }
    }
}

async fn soa_check_tcp(
    address: SocketAddr,
    zone: &Name,
    id: u16,
    query: &[u8],
    timeout: Duration,
) -> Result<SoaAnswer, TransferError> {
    let exchange = async {
        let io = |what| {
            move |source| TransferError::Io {
                what,
                address,
                source,
            }
        };
        let mut stream = TcpStream::connect(address)
            .await
            .map_err(io("connect to"))?;
        send_tcp(&mut stream, query).await.map_err(io("send to"))?;
        let mut buffer = Vec::new();
        loop {
            if !read_tcp(&mut stream, &mut buffer)
                .await
                .map_err(io("receive from"))?
            {
                return Err(TransferError::Closed {
                    address,
                    messages: 0,
                });
            }
            if Header::read(&buffer).is_ok_and(|h| h.id == id && h.response) {
                return read_soa_answer(&buffer, zone)
                    .map_err(|error| TransferError::Wire { address, error });
            }
        }
    };
    within(timeout, exchange)
        .await
        .unwrap_or(Err(TransferError::Timeout {
            address,
            after: timeout,
        }))
}

/// Transfers `zone` from `address` by AXFR and feeds it to `scan`. `timeout` bounds the
/// connection and the wait for each message, `transfer_timeout` the whole transfer.
pub async fn transfer(
    address: SocketAddr,
    zone: &Name,
    key: Option<&TSigner>,
    scan: SignatureScan,
    timeout: Duration,
    transfer_timeout: Duration,
) -> Result<AxfrSummary, TransferError> {
    let id = rand_id();
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    let name = WireName::from_ascii(zone.to_string())
        .map_err(|e| TransferError::Query(format!("zone {zone}: {e}")))?;
    message.add_query(Query::query(name, RecordType::AXFR));
    let now = now_seconds();
    let chain = match key {
        Some(key) => {
            let (record, _) = key
                .sign_message(&message, now)
                .map_err(|e| TransferError::Query(format!("signing with the TSIG key: {e}")))?;
            let request_mac = record.data.mac.clone();
            message.set_signature(record);
            Some(
                TsigChain::new(key.clone(), request_mac, now)
                    .map_err(|error| TransferError::Axfr { address, error })?,
            )
        }
        None => None,
    };
    let query = message
        .to_vec()
        .map_err(|e| TransferError::Query(e.to_string()))?;
    let reader = AxfrReader::new(zone.clone(), id, scan, chain);
    let run = stream_transfer(address, &query, reader, timeout);
    within(transfer_timeout, run)
        .await
        .unwrap_or(Err(TransferError::Timeout {
            address,
            after: transfer_timeout,
        }))
}

async fn stream_transfer(
    address: SocketAddr,
    query: &[u8],
    mut reader: AxfrReader,
    timeout: Duration,
) -> Result<AxfrSummary, TransferError> {
    let io = |what| {
        move |source| TransferError::Io {
            what,
            address,
            source,
        }
    };
    let timed_out = || TransferError::Timeout {
        address,
        after: timeout,
    };
    let mut stream = within(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| timed_out())?
        .map_err(io("connect to"))?;
    let _ = stream.set_nodelay(true);
    send_tcp(&mut stream, query).await.map_err(io("send to"))?;
    let mut stream = BufReader::with_capacity(1 << 17, stream);
    let mut buffer = Vec::with_capacity(65535);
    let mut messages = 0;
    loop {
        let more = match within(timeout, read_tcp(&mut stream, &mut buffer))
            .await
            .map_err(|_| timed_out())?
        {
            Ok(more) => more,
            // Cut inside a message.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(io("receive from")(e)),
        };
        if !more {
            return Err(TransferError::Closed { address, messages });
        }
        messages += 1;
        let done = reader
            .message(&buffer)
            .map_err(|error| TransferError::Axfr { address, error })?;
        if done {
            return reader
                .finish()
                .map_err(|error| TransferError::Axfr { address, error });
        }
    }
}

async fn send_tcp(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let mut framed = Vec::with_capacity(2 + message.len());
    framed.extend_from_slice(&(message.len() as u16).to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

/// Reads one length-prefixed message into `buffer`; `false` on a clean end of stream
/// before its length.
async fn read_tcp<R: AsyncReadExt + Unpin>(
    stream: &mut R,
    buffer: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut length = [0u8; 2];
    match stream.read_exact(&mut length).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    buffer.resize(usize::from(u16::from_be_bytes(length)), 0);
    stream.read_exact(buffer).await?;
    Ok(true)
}

/// A query ID that is hard to guess.
fn rand_id() -> u16 {
    let mut bytes = [0u8; 2];
    let rng = ring::rand::SystemRandom::new();
    let _ = ring::rand::SecureRandom::fill(&rng, &mut bytes);
    u16::from_be_bytes(bytes)
}
