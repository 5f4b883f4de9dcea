//! The Frame Streams receiver: listens on unix sockets and TCP for DNS servers that stream
//! dnstap, and hands the frames on in [`Batch`]es without ever making a server wait.
//!
//! ```text
//! server ──READY(dnstap)──▶ receiver        (bidirectional: fstrm's socket writers)
//!        ◀──ACCEPT(dnstap)─
//!        ──START──────────▶
//!        ──data frames────▶  batches ──▶ the consumer (classification, conditions)
//!        ──STOP───────────▶
//!        ◀──FINISH────────
//! ```
//!
//! A stream that begins with START instead of READY is unidirectional (a file replayed
//! into the socket) and is read the same way, without replies. The content type must be
//! `protobuf:dnstap.Dnstap` (a READY without it is answered with an ACCEPT that names
//! none, and the connection is closed). Unknown control frames after START are skipped.
//!
//! **Backpressure policy.** Each connection has its own task that reads the socket as
//! fast as the kernel delivers and only walks the frame boundaries; the frames of each
//! read go to the consumer as one [`Batch`] (a shared slice of the read buffer, no copy).
//! The bytes handed on and not yet consumed are capped at `max_buffer` for all
//! connections together: a batch that would go over it is **dropped and its data frames
//! counted** in [`ReceiverStats::dropped`], and the reader goes on reading. So a slow
//! consumer costs frames, never memory beyond the cap, and never stalls a server's writer.
//! Connections beyond `max_connections` are closed at once and counted.
//!
//! Not implemented: TLS listeners; the content-type negotiation of anything but dnstap.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, mpsc};

use super::fstrm::{CONTENT_TYPE_DNSTAP, Control, ControlType, Decoded, Frame, decode_frame};

/// Where a receiver listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
            Listen::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// How a receiver listens and what it may hold.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    pub listen: Vec<Listen>,
    /// Concurrent connections, over all listeners.
    pub max_connections: usize,
    /// Bytes of frames handed on and not yet consumed, over all connections.
    pub max_buffer: usize,
    /// Largest data frame accepted; a longer one ends its connection.
    pub max_frame: usize,
    /// Permissions of the unix sockets (e.g. `0o660`).
    pub socket_mode: u32,
}

/// Counters of a receiver, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Open connections.
    pub connections: AtomicU64,
    /// Connections accepted since the start.
    pub accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: AtomicU64,
    /// Data frames read from sockets.
    pub frames: AtomicU64,
    /// Data frames dropped because the consumer was `max_buffer` behind.
    pub dropped: AtomicU64,
    /// Connections ended by a Frame Streams protocol error.
    pub protocol_errors: AtomicU64,
    /// Bytes handed on and not yet consumed ([`Batch`] gives them back when dropped).
    in_flight: AtomicUsize,
}

/// Whole frames from one read of one connection: data frames and maybe control frames,
/// each with its length prefix, ready for [`decode_frame`].
#[derive(Debug)]
pub struct Batch {
    pub frames: Bytes,
    /// Data frames in `frames`.
    pub data_frames: usize,
    stats: Arc<ReceiverStats>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.stats
            .in_flight
            .fetch_sub(self.frames.len(), Ordering::Relaxed);
    }
}

/// Why a receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: Listen,
        source: std::io::Error,
    },
    #[error("{path}: exists and is not a socket; refusing to replace it")]
    NotASocket { path: String },
}

/// A bound receiver; [`Receiver::run`] accepts connections.
pub struct Receiver {
    settings: ReceiverSettings,
    unix: Vec<(PathBuf, UnixListener)>,
    tcp: Vec<TcpListener>,
    pub stats: Arc<ReceiverStats>,
}

impl Receiver {
    /// Binds every listener. A stale unix socket at the path is replaced; any other file
    /// there is an error.
    pub async fn bind(settings: ReceiverSettings) -> Result<Receiver, ReceiverError> {
        let mut unix = Vec::new();
        let mut tcp = Vec::new();
        for listen in &settings.listen {
            let bind_err = |source| ReceiverError::Bind {
                listen: listen.clone(),
                source,
            };
            match listen {
                Listen::Unix(path) => {
                    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
                    if let Ok(meta) = std::fs::symlink_metadata(path) {
                        if !meta.file_type().is_socket() {
                            return Err(ReceiverError::NotASocket {
                                path: path.display().to_string(),
                            });
                        }
                        std::fs::remove_file(path).map_err(bind_err)?;
                    }
                    let listener = UnixListener::bind(path).map_err(bind_err)?;
                    std::fs::set_permissions(
                        path,
                        std::fs::Permissions::from_mode(settings.socket_mode),
                    )
                    .map_err(bind_err)?;
                    unix.push((path.clone(), listener));
                }
                Listen::Tcp(addr) => tcp.push(TcpListener::bind(addr).await.map_err(bind_err)?),
            }
        }
        Ok(Receiver {
            settings,
            unix,
            tcp,
            stats: Arc::default(),
        })
    }

    /// The TCP addresses actually bound (port 0 resolved).
    pub fn tcp_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Accepts connections until every `tx` receiver is gone; each connection's batches
    /// go to `tx`.
    pub async fn run(self, tx: mpsc::UnboundedSender<Batch>) {
        let limit = Arc::new(Semaphore::new(self.settings.max_connections));
        let mut accepting = tokio::task::JoinSet::new();
        let shared = Shared {
            tx,
            stats: self.stats.clone(),
            limit,
            max_buffer: self.settings.max_buffer,
            max_frame: self.settings.max_frame,
        };
        for (path, listener) in self.unix {
            let shared = shared.clone();
            accepting.spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => shared.serve(stream, format!("unix:{}", path.display())),
                        Err(e) => accept_error(&e).await,
                    }
                }
            });
        }
        for listener in self.tcp {
            let shared = shared.clone();
            accepting.spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nodelay(true);
                            shared.serve(stream, peer.to_string());
                        }
                        Err(e) => accept_error(&e).await,
                    }
                }
            });
        }
        shared.tx.closed().await;
        accepting.abort_all();
    }
}

async fn accept_error(e: &std::io::Error) {
    tracing::warn!("dnstap: accepting a connection: {e}");
    // Out of descriptors or similar: do not spin.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

#[derive(Clone)]
struct Shared {
    tx: mpsc::UnboundedSender<Batch>,
    stats: Arc<ReceiverStats>,
    limit: Arc<Semaphore>,
    max_buffer: usize,
    max_frame: usize,
}

impl Shared {
    fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(&self, stream: S, peer: String) {
        let Ok(permit) = self.limit.clone().try_acquire_owned() else {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("dnstap: refusing {peer}: all connections in use");
            return;
        };
        let shared = self.clone();
        tokio::spawn(async move {
            shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
            shared.stats.connections.fetch_add(1, Ordering::Relaxed);
            match shared.connection(stream).await {
                Ok(()) => tracing::debug!("dnstap: {peer} finished"),
                Err(e) => {
                    if matches!(e, ConnectionError::Protocol { .. }) {
                        shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::warn!("dnstap: {peer}: {e}");
                }
            }
            shared.stats.connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }

    async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
    ) -> Result<(), ConnectionError> {
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        let mut offset = 0u64;
        // The handshake: READY → ACCEPT → START, or a bare START.
        let bidirectional = match next_control(&mut stream, &mut buf, &mut offset).await? {
            Some(c) if c.kind == ControlType::Ready => {
                let dnstap = c.content_types.is_empty()
                    || c.content_types
                        .iter()
                        .any(|t| t.as_slice() == CONTENT_TYPE_DNSTAP);
                let mut reply = Vec::new();
                Control {
                    kind: ControlType::Accept,
                    content_types: if dnstap {
                        vec![CONTENT_TYPE_DNSTAP]
                    } else {
                        Vec::new()
                    },
                }
                .encode(&mut reply);
                stream.write_all(&reply).await?;
                if !dnstap {
                    return Err(ConnectionError::protocol(
                        offset,
                        "READY does not offer protobuf:dnstap.Dnstap",
                    ));
                }
                match next_control(&mut stream, &mut buf, &mut offset).await? {
                    Some(c) if c.kind == ControlType::Start => check_start(&c.borrowed(), offset)?,
                    Some(_) => {
                        return Err(ConnectionError::protocol(
                            offset,
                            "expected START after ACCEPT",
                        ));
                    }
                    None => return Ok(()),
                }
                true
            }
            Some(c) if c.kind == ControlType::Start => {
                check_start(&c.borrowed(), offset)?;
                false
            }
            Some(_) => {
                return Err(ConnectionError::protocol(offset, "expected READY or START"));
            }
            None => return Ok(()),
        };
        // Data: walk frame boundaries, hand on whole frames.
        loop {
            let mut at = 0;
            let mut data_frames = 0;
            let mut stopped = false;
            loop {
                match decode_frame(&buf[at..], self.max_frame) {
                    Ok(Decoded::Frame(Frame::Data(_), len)) => {
                        data_frames += 1;
                        at += len;
                    }
                    Ok(Decoded::Frame(Frame::Control(c), len)) => {
                        at += len;
                        if c.kind == ControlType::Stop {
                            stopped = true;
                            break;
                        }
                    }
                    Ok(Decoded::Incomplete(needed)) => {
                        buf.reserve(needed.saturating_sub(buf.len() - at));
                        break;
                    }
                    Err(e) => {
                        return Err(ConnectionError::protocol(
                            offset + at as u64,
                            &e.to_string(),
                        ));
                    }
                }
            }
            if at > 0 {
                offset += at as u64;
                let frames = buf.split_to(at).freeze();
                if !self.hand_on(frames, data_frames) {
                    // The consumer is gone: the source is shutting down.
                    return Ok(());
                }
            }
            if stopped {
                if bidirectional {
                    let mut reply = Vec::new();
                    Control {
                        kind: ControlType::Finish,
                        content_types: Vec::new(),
                    }
                    .encode(&mut reply);
                    stream.write_all(&reply).await?;
                    stream.flush().await?;
                }
                return Ok(());
            }
            if buf.capacity() - buf.len() < READ_SIZE / 4 {
                buf.reserve(READ_SIZE);
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err(ConnectionError::protocol(
                        offset,
                        "connection closed inside a frame",
                    ))
                };
            }
        }
    }

    /// Sends a batch on, or drops it when the consumer is `max_buffer` behind; `false`
    /// when the consumer is gone.
    fn hand_on(&self, frames: Bytes, data_frames: usize) -> bool {
        let stats = &self.stats;
        stats
            .frames
            .fetch_add(data_frames as u64, Ordering::Relaxed);
        let len = frames.len();
        let before = stats.in_flight.fetch_add(len, Ordering::Relaxed);
        let batch = Batch {
            frames,
            data_frames,
            stats: stats.clone(),
        };
        if before + len > self.max_buffer {
            stats
                .dropped
                .fetch_add(data_frames as u64, Ordering::Relaxed);
            drop(batch);
            return !self.tx.is_closed();
        }
        self.tx.send(batch).is_ok()
    }
}

/// How much is read at a time.
const READ_SIZE: usize = 256 * 1024;

fn check_start(start: &Control<'_>, offset: u64) -> Result<(), ConnectionError> {
    match start.content_types.first() {
        None => Ok(()),
        Some(t) if *t == CONTENT_TYPE_DNSTAP => Ok(()),
        Some(t) => Err(ConnectionError::protocol(
            offset,
            &format!(
                "START names content type `{}`, not protobuf:dnstap.Dnstap",
                String::from_utf8_lossy(t)
            ),
        )),
    }
}

/// Reads the next frame, which must be a control frame; `None` when the peer closes
/// before it. Consumes it from `buf`.
async fn next_control<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    offset: &mut u64,
) -> Result<Option<OwnedControl>, ConnectionError> {
    loop {
        match decode_frame(buf, 0) {
            Ok(Decoded::Frame(Frame::Control(c), len)) => {
                let owned = OwnedControl {
                    kind: c.kind,
                    content_types: c.content_types.iter().map(|t| t.to_vec()).collect(),
                };
                let _ = buf.split_to(len);
                *offset += len as u64;
                return Ok(Some(owned));
            }
            Ok(Decoded::Frame(Frame::Data(_), _)) | Err(_) => {
                return Err(ConnectionError::protocol(
                    *offset,
                    "expected a control frame (READY or START)",
                ));
            }
            Ok(Decoded::Incomplete(_)) => {
                if stream.read_buf(buf).await? == 0 {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(ConnectionError::protocol(
                            *offset,
                            "connection closed inside a control frame",
                        ))
                    };
                }
            }
        }
    }
}

/// A control frame that outlives the read buffer.
struct OwnedControl {
    kind: ControlType,
    content_types: Vec<Vec<u8>>,
}

impl OwnedControl {
    fn borrowed(&self) -> Control<'_> {
        Control {
            kind: self.kind,
            content_types: self.content_types.iter().map(Vec::as_slice).collect(),
        }
    }
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("Frame Streams protocol error at stream byte {offset}: {message}")]
    Protocol { offset: u64, message: String },
}

impl ConnectionError {
    fn protocol(offset: u64, message: &str) -> Self {
        ConnectionError::Protocol {
            offset,
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::net::{TcpStream, UnixStream};

    fn control(kind: ControlType, content_types: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        Control {
            kind,
            content_types: content_types.to_vec(),
        }
        .encode(&mut out);
        out
    }

    fn data(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    fn settings(listen: Listen, max_buffer: usize, max_connections: usize) -> ReceiverSettings {
        ReceiverSettings {
            listen: vec![listen],
            max_connections,
            max_buffer,
            max_frame: 1024,
            socket_mode: 0o600,
        }
    }

    async fn read_control<S: AsyncRead + Unpin>(stream: &mut S) -> Option<OwnedControl> {
        let mut buf = BytesMut::new();
        let mut offset = 0;
        tokio::time::timeout(
            Duration::from_secs(5),
            next_control(stream, &mut buf, &mut offset),
        )
        .await
        .expect("a reply in time")
        .ok()
        .flatten()
    }

    /// Sums the data frames of batches until `n` arrived.
    async fn collect(rx: &mut mpsc::UnboundedReceiver<Batch>, n: usize) -> usize {
        let mut seen = 0;
        while seen < n {
            let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("batches in time")
                .expect("the receiver runs");
            seen += batch.data_frames;
        }
        seen
    }

    #[tokio::test]
    async fn bidirectional_handshake_data_and_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tap.sock");
        let receiver = Receiver::bind(settings(Listen::Unix(path.clone()), 1 << 20, 4))
            .await
            .unwrap();
        let stats = receiver.stats.clone();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(receiver.run(tx));
        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream
            .write_all(&control(
                ControlType::Ready,
                &[b"other:type", CONTENT_TYPE_DNSTAP],
            ))
            .await
            .unwrap();
        let accept = read_control(&mut stream).await.unwrap();
        assert_eq!(accept.kind, ControlType::Accept);
        assert_eq!(accept.content_types, vec![CONTENT_TYPE_DNSTAP.to_vec()]);
        let mut bytes = control(ControlType::Start, &[CONTENT_TYPE_DNSTAP]);
        for i in 0..3u8 {
            bytes.extend(data(&[i; 10]));
        }
        // An unknown control frame after START is skipped.
        bytes.extend(control(ControlType::Unknown(99), &[]));
        bytes.extend(control(ControlType::Stop, &[]));
        stream.write_all(&bytes).await.unwrap();
        let finish = read_control(&mut stream).await.unwrap();
        assert_eq!(finish.kind, ControlType::Finish);
        assert_eq!(collect(&mut rx, 3).await, 3);
        assert_eq!(stats.frames.load(Ordering::Relaxed), 3);
        assert_eq!(stats.protocol_errors.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn unidirectional_over_tcp_and_wrong_content_types() {
        let receiver = Receiver::bind(settings(
            Listen::Tcp("127.0.0.1:0".parse().unwrap()),
            1 << 20,
            4,
        ))
        .await
        .unwrap();
        let addr = receiver.tcp_addrs()[0];
        let stats = receiver.stats.clone();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(receiver.run(tx));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut bytes = control(ControlType::Start, &[]);
        bytes.extend(data(b"frame"));
        stream.write_all(&bytes).await.unwrap();
        drop(stream);
        assert_eq!(collect(&mut rx, 1).await, 1);

        // READY without dnstap: an empty ACCEPT, then the connection is closed.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&control(ControlType::Ready, &[b"protobuf:other"]))
            .await
            .unwrap();
        let accept = read_control(&mut stream).await.unwrap();
        assert_eq!(accept.kind, ControlType::Accept);
        assert!(accept.content_types.is_empty());
        assert!(read_control(&mut stream).await.is_none(), "closed");

        // START with another content type, and garbage: protocol errors, no panic.
        for bytes in [
            control(ControlType::Start, &[b"protobuf:other"]),
            vec![0xff; 64],
            [control(ControlType::Start, &[]), data(&[0; 2000])].concat(),
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(&bytes).await.unwrap();
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
                .await
                .expect("closed in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(stats.protocol_errors.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn a_consumer_that_does_not_keep_up_costs_frames_not_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tap.sock");
        let budget = 64 * 1024;
        let receiver = Receiver::bind(settings(Listen::Unix(path.clone()), budget, 4))
            .await
            .unwrap();
        let stats = receiver.stats.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(receiver.run(tx));
        // Nobody consumes `rx`: every batch stays in flight.
        let mut stream = UnixStream::connect(&path).await.unwrap();
        let frames = 20_000;
        let mut bytes = control(ControlType::Start, &[]);
        for _ in 0..frames {
            bytes.extend(data(&[7; 100]));
        }
        bytes.extend(control(ControlType::Stop, &[]));
        // The writer is never blocked: 2 MB go through although nothing is consumed.
        tokio::time::timeout(Duration::from_secs(10), stream.write_all(&bytes))
            .await
            .expect("the writer never waits for the consumer")
            .unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        assert_eq!(stats.frames.load(Ordering::Relaxed), frames);
        let dropped = stats.dropped.load(Ordering::Relaxed);
        assert!(dropped > frames / 2, "dropped {dropped}");
        assert!(stats.in_flight.load(Ordering::Relaxed) <= budget);
        drop(rx);
    }

    #[tokio::test]
    async fn many_producers_at_once_and_a_connection_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tap.sock");
        let receiver = Receiver::bind(settings(Listen::Unix(path.clone()), 64 << 20, 8))
            .await
            .unwrap();
        let stats = receiver.stats.clone();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(receiver.run(tx));
        let mut open = Vec::new();
        for _ in 0..8 {
            let mut stream = UnixStream::connect(&path).await.unwrap();
            stream
                .write_all(&control(ControlType::Start, &[]))
                .await
                .unwrap();
            open.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The ninth is closed at once.
        let mut ninth = UnixStream::connect(&path).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), ninth.read_to_end(&mut rest))
            .await
            .expect("refused at once")
            .unwrap();
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
        let writers: Vec<_> = open
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                tokio::spawn(async move {
                    for _ in 0..100 {
                        let mut chunk = Vec::new();
                        for _ in 0..10 {
                            chunk.extend(data(&[i as u8; 50]));
                        }
                        stream.write_all(&chunk).await.unwrap();
                    }
                    stream
                        .write_all(&control(ControlType::Stop, &[]))
                        .await
                        .unwrap();
                })
            })
            .collect();
        assert_eq!(collect(&mut rx, 8000).await, 8000);
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
    }
}
