//! DNS Push at scale, side by side with mosquitto (MQTT over TLS) in the same run.
//!
//! 1. Fan-out: `SUBSCRIBERS` TLS sessions (default 10,000) subscribe to one name of the
//!    signals zone; `ROUNDS` times the watched server's serial is bumped, which makes a
//!    `zone-updated` event whose TXT record carries the event time (`since=`). Each session
//!    notes when the PUSH arrives; the delivery latency is arrival minus event time.
//!    Arrival is the kernel's receive stamp of the bytes on the subscriber's socket
//!    (`SO_TIMESTAMPNS`), so the clients' own TLS work, queued on the client CPU, does not
//!    count against the server; the time after the client's TLS read is reported as well.
//!    Then the same number of MQTT subscribers over TLS on a local mosquitto receive one
//!    QoS 1 message per round whose payload is its publish time.
//! 2. Idle sessions: `IDLE` (default 50,000) TLS sessions, each with one subscription, held
//!    open; the daemon's resident memory before and after gives the memory per session.
//!
//! ```sh
//! cargo bench --bench push_fanout
//! SUBSCRIBERS=2000 IDLE=5000 ROUNDS=5 cargo bench --bench push_fanout   # a quick look
//! IDLE=0 RESULTS=0 cargo bench --bench push_fanout   # fan-out only, not written to RESULTS.md
//! ```
//!
//! Needs the Debian package `mosquitto`. Clients run in this process on the same machine;
//! they connect from 127.0.0.1–127.0.0.16 so that 50,000 connections fit the ephemeral
//! ports. Prints a Markdown table and appends it, with the command and the machine, to
//! `benches/RESULTS.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use common::{free_port, require, rss_kib};

/// Delivery latencies in ms by round: at the subscriber's socket, and after its TLS.
type Latencies = Arc<Mutex<Vec<Vec<(f64, f64)>>>>;

/// What the subscribers of one run report into.
#[derive(Clone)]
struct Tally {
    /// Delivery latencies in ms, by round.
    latencies: Latencies,
    /// Sessions whose subscription was answered.
    subscribed: Arc<AtomicUsize>,
    /// Deliveries recorded.
    received: Arc<AtomicUsize>,
    /// Bounds the handshakes in flight.
    gate: Arc<Semaphore>,
}

impl Tally {
    fn new(rounds: usize, gate: &Arc<Semaphore>) -> Tally {
        Tally {
            latencies: Arc::new(Mutex::new(vec![Vec::new(); rounds])),
            subscribed: Arc::new(AtomicUsize::new(0)),
            received: Arc::new(AtomicUsize::new(0)),
            gate: gate.clone(),
        }
    }

    /// `sent`, `at_socket` and `read` in µs since the epoch.
    fn record(&self, round: usize, sent: i64, at_socket: i64, read: i64) {
        let ms = |t: i64| (t - sent) as f64 / 1000.0;
        if let Some(slot) = self.latencies.lock().unwrap().get_mut(round) {
            slot.push((ms(at_socket), ms(read)));
            self.received.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Lets this process and its children hold as many sockets as allowed: up to 1,048,576,
/// or the hard limit where raising it is not permitted (no CAP_SYS_RESOURCE). Returns the
/// limit in force.
fn raise_open_files() -> u64 {
    let wanted = libc::rlimit {
        rlim_cur: 1_048_576,
        rlim_max: 1_048_576,
    };
    // SAFETY: getrlimit/setrlimit read and write structs we own.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
            return wanted.rlim_cur;
        }
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

/// With two CPUs or more, the servers (dns-oops, mosquitto, the lab) run on CPU 0 and
/// the clients of this process on the others, so that the clients' work does not count
/// against the servers' latency. `PIN=0` turns it off.
fn pinning() -> bool {
    static PINNING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PINNING.get_or_init(|| std::env::var("PIN").map_or(true, |v| v != "0") && machine_cpus() >= 2)
}

/// The machine's CPUs, counted before this process pins itself.
fn machine_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A command for a server process, on CPU 0 when pinning.
fn server_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if pinning() {
        let mut command = Command::new(require("taskset", "util-linux"));
        command.args(["-c", "0"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Moves this process (the clients) off CPU 0.
fn pin_clients() {
    if !pinning() {
        return;
    }
    let cpus = machine_cpus();
    // SAFETY: a zeroed cpu_set_t filled with CPU_SET and passed with its own size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 1..cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPU time (user + system, all threads) a process has used so far, in ms.
fn cpu_ms(pid: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) * 1000.0 / ticks)
        })
        .unwrap_or(f64::NAN)
}

/// A client's TCP stream that keeps the kernel's receive time of the bytes it last read
/// (`SO_TIMESTAMPNS`): the moment the server's data reached the subscriber's socket,
/// before this process got round to decrypting and parsing it. All subscribers of a run
/// share the client CPUs, so the time after decryption also counts the queue of other
/// subscribers' TLS work in this process; both are reported.
struct Stamped {
    tcp: TcpStream,
    /// Microseconds since the epoch; 0 until something was read.
    last_rx: i64,
}

impl Stamped {
    fn new(tcp: TcpStream) -> std::io::Result<Stamped> {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt on a socket we own, with a c_int option value and its size.
        let rc = unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Stamped { tcp, last_rx: 0 })
    }

    /// One `recvmsg`: the bytes read and the receive time of the last segment among them.
    fn receive(fd: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<i64>)> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 16];
        // SAFETY: msghdr zeroed, then pointed at the iovec and control buffer above, which
        // outlive the call; the cmsg macros walk only within msg_controllen.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            let n = libc::recvmsg(fd, &mut msg, 0);
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut stamp = None;
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    stamp = Some(ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000);
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            Ok((n as usize, stamp))
        }
    }
}

impl tokio::io::AsyncRead for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            std::task::ready!(this.tcp.poll_read_ready(cx))?;
            let fd = this.tcp.as_raw_fd();
            let unfilled = buf.initialize_unfilled();
            match this.tcp.try_io(tokio::io::Interest::READABLE, || {
                Stamped::receive(fd, unfilled)
            }) {
                Ok((n, stamp)) => {
                    if let Some(stamp) = stamp {
                        this.last_rx = stamp;
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl tokio::io::AsyncWrite for Stamped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

type ClientStream = TlsStream<Stamped>;

/// When the bytes of the message just read reached the socket (µs since the epoch).
fn received_at(stream: &ClientStream) -> i64 {
    stream.get_ref().0.last_rx
}

/// Opens TCP from one of 16 loopback source addresses, then TLS.
async fn connect_tls(
    index: usize,
    port: u16,
    connector: &TlsConnector,
) -> std::io::Result<ClientStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((
        Ipv4Addr::new(127, 0, 0, 1 + (index % 16) as u8),
        0,
    )))?;
    let tcp = socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    tcp.set_nodelay(true)?;
    connector
        .connect(
            ServerName::try_from("localhost").unwrap(),
            Stamped::new(tcp)?,
        )
        .await
}

// ---------------------------------------------------------------------------------------
// DNS Push subscribers

/// A DNS Push subscriber: subscribes, then records the latency of each `zone-updated`
/// record added, by round (the serial).
async fn push_subscriber(
    index: usize,
    port: u16,
    connector: TlsConnector,
    name: String,
    tally: Tally,
) {
    let mut permit = Some(tally.gate.clone().acquire_owned().await.unwrap());
    let mut stream = match connect_tls(index, port, &connector).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("push subscriber {index}: {e}");
            return;
        }
    };
    let subscribe = dso::DsoMessage::request(
        1,
        dso::Tlv::Subscribe(dso::Subscribe {
            name: hickory_proto::rr::Name::from_ascii(&name).unwrap(),
            rtype: hickory_proto::rr::RecordType::TXT,
            class: hickory_proto::rr::DNSClass::IN,
        }),
    )
    .encode()
    .unwrap();
    let mut framed = (subscribe.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&subscribe);
    if stream.write_all(&framed).await.is_err() {
        return;
    }
    let mut first = true;
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut message = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut message).await.is_err() {
            return;
        }
        let arrived = now_micros();
        let at_socket = received_at(&stream);
        let Ok(message) = dso::decode(&message) else {
            return;
        };
        if first {
            first = false;
            tally.subscribed.fetch_add(1, Ordering::Relaxed);
            // Handshakes in flight are bounded; an established session frees its place.
            permit.take();
        }
        for tlv in message.tlvs() {
            let dso::Tlv::Push(changes) = tlv else {
                continue;
            };
            for change in changes {
                let dso::PushChange::Add { rdata, .. } = change else {
                    continue;
                };
                let hickory_proto::rr::RData::TXT(txt) = rdata else {
                    continue;
                };
                let field = |key: &str| {
                    txt.txt_data.iter().find_map(|s| {
                        std::str::from_utf8(s)
                            .ok()?
                            .strip_prefix(key)
                            .map(String::from)
                    })
                };
                let (Some(since), Some(serial)) = (field("since="), field("serial=")) else {
                    continue;
                };
                let Ok(since) = chrono::DateTime::parse_from_rfc3339(&since) else {
                    continue;
                };
                let Ok(round) = serial.parse::<usize>() else {
                    continue;
                };
                tally.record(round, since.timestamp_micros(), at_socket, arrived);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A minimal MQTT 3.1.1 client (CONNECT, SUBSCRIBE, PUBLISH QoS 1, PUBACK).

fn mqtt_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn mqtt_packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn mqtt_connect(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    mqtt_string(&mut body, "MQTT");
    body.extend_from_slice(&[4, 0x02]); // level 3.1.1, clean session
    body.extend_from_slice(&600u16.to_be_bytes()); // keep alive
    mqtt_string(&mut body, client_id);
    mqtt_packet(0x10, &body)
}

/// Reads one MQTT packet: its first byte and its body.
async fn mqtt_read<S: AsyncReadExt + Unpin>(stream: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let kind = stream.read_u8().await?;
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let byte = stream.read_u8().await?;
        len |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 || shift > 21 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok((kind, body))
}

async fn mqtt_open(
    index: usize,
    port: u16,
    connector: &TlsConnector,
    client_id: &str,
) -> std::io::Result<ClientStream> {
    let mut stream = connect_tls(index, port, connector).await?;
    stream.write_all(&mqtt_connect(client_id)).await?;
    let (kind, body) = mqtt_read(&mut stream).await?;
    if kind != 0x20 || body.get(1) != Some(&0) {
        return Err(std::io::Error::other(format!("CONNACK {kind:#x} {body:?}")));
    }
    Ok(stream)
}

#[allow(clippy::too_many_arguments)]
async fn mqtt_subscriber(index: usize, port: u16, connector: TlsConnector, tally: Tally) {
    let mut permit = Some(tally.gate.clone().acquire_owned().await.unwrap());
    let mut stream = match mqtt_open(index, port, &connector, &format!("sub-{index}")).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mqtt subscriber {index}: {e}");
            return;
        }
    };
    let mut body = 1u16.to_be_bytes().to_vec();
    mqtt_string(&mut body, "bench/signal");
    body.push(1);
    if stream.write_all(&mqtt_packet(0x82, &body)).await.is_err() {
        return;
    }
    loop {
        let Ok((kind, body)) = mqtt_read(&mut stream).await else {
            return;
        };
        let arrived = now_micros();
        let at_socket = received_at(&stream);
        match kind >> 4 {
            9 => {
                tally.subscribed.fetch_add(1, Ordering::Relaxed);
                permit.take();
            }
            3 => {
                let qos = (kind >> 1) & 3;
                if body.len() < 2 {
                    return;
                }
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let mut at = 2 + topic_len;
                if qos > 0 {
                    let id = &body[at..at + 2];
                    at += 2;
                    let ack = mqtt_packet(0x40, id);
                    if stream.write_all(&ack).await.is_err() {
                        return;
                    }
                }
                let payload = String::from_utf8_lossy(&body[at..]).to_string();
                let Some((round, sent)) = payload.split_once(' ') else {
                    continue;
                };
                let (Ok(round), Ok(sent)) = (round.parse::<usize>(), sent.parse::<i64>()) else {
                    continue;
                };
                tally.record(round, sent, at_socket, arrived);
            }
            _ => {}
        }
    }
}

async fn mqtt_publish(stream: &mut ClientStream, round: usize) {
    let mut body = Vec::new();
    mqtt_string(&mut body, "bench/signal");
    body.extend_from_slice(&(round as u16 + 1).to_be_bytes());
    body.extend_from_slice(format!("{round} {}", now_micros()).as_bytes());
    stream.write_all(&mqtt_packet(0x32, &body)).await.unwrap();
    // PUBACK
    let _ = mqtt_read(stream).await;
}

// ---------------------------------------------------------------------------------------

struct Row {
    tool: &'static str,
    sessions: usize,
    delivered: usize,
    expected: usize,
    p50: f64,
    p99: f64,
    max: f64,
    /// The same after the subscriber's TLS.
    read_p50: f64,
    read_p99: f64,
    /// The server's CPU time per change (ms), measured over the rounds.
    cpu_per_change: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summarise(
    tool: &'static str,
    sessions: usize,
    rounds: usize,
    latencies: &Latencies,
    cpu_ms: f64,
) -> Row {
    let sorted = |pick: fn(&(f64, f64)) -> f64| {
        let mut all: Vec<f64> = latencies
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(pick)
            .collect();
        all.sort_by(|a, b| a.partial_cmp(b).unwrap());
        all
    };
    let all = sorted(|l| l.0);
    let read = sorted(|l| l.1);
    Row {
        tool,
        sessions,
        delivered: all.len(),
        expected: sessions * rounds,
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        max: all.last().copied().unwrap_or(f64::NAN),
        read_p50: percentile(&read, 50.0),
        read_p99: percentile(&read, 99.0),
        cpu_per_change: cpu_ms / rounds.max(1) as f64,
    }
}

async fn wait_until(what: &str, count: &AtomicUsize, target: usize, timeout: Duration) {
    let started = Instant::now();
    let mut last_report = Instant::now();
    while count.load(Ordering::Relaxed) < target {
        if started.elapsed() > timeout {
            eprintln!(
                "{what}: only {} of {target} after {timeout:?}",
                count.load(Ordering::Relaxed)
            );
            return;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("{what}: {} of {target}", count.load(Ordering::Relaxed));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Lab {
    child: Child,
    commands: ChildStdin,
}

impl Lab {
    fn bump(&mut self, serial: usize) {
        writeln!(self.commands, "zone bench.test. {serial}").unwrap();
        self.commands.flush().unwrap();
    }
}

fn main() {
    let open_files = raise_open_files() as usize;
    let subscribers = env_or("SUBSCRIBERS", 10_000);
    let asked_idle = env_or("IDLE", 50_000);
    // The daemon needs a descriptor per session: stay under the limit it inherits.
    let idle = asked_idle.min(open_files.saturating_sub(500));
    if idle < asked_idle {
        eprintln!(
            "open files are limited to {open_files} here (no CAP_SYS_RESOURCE to raise it): holding {idle} idle sessions instead of {asked_idle}"
        );
    }
    let rounds = env_or("ROUNDS", 10);
    let mosquitto = require("mosquitto", "mosquitto");
    dns_oops::push::tls::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = common::pki::Pki::new(dir.path()).ca();
    let tls = dns_oops::push::tls::client_config(&dns_oops::push::tls::ClientTlsOptions {
        ca: Some(ca.clone()),
        ..Default::default()
    })
    .unwrap();
    let connector = TlsConnector::from(tls);

    // The watched server: the demo's lab server, told to bump a serial on stdin.
    let lab_port = free_port();
    // `DNS_OOPS_BIN` runs another build of the daemon under the same clients (before/after).
    let daemon_bin =
        std::env::var_os("DNS_OOPS_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_dns-oops").into());
    let mut lab_child = server_command(&daemon_bin)
        .args(["demo", "--lab-server", &format!("127.0.0.1:{lab_port}")])
        .arg(dir.path().join("lab.pid"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let commands = lab_child.stdin.take().unwrap();
    let mut lab = Lab {
        child: lab_child,
        commands,
    };
    lab.bump(1);
    let push_port = free_port();
    let config = dir.path().join("dns-oops.toml");
    std::fs::write(
        &config,
        format!(
            r#"node = "bench"
[journal]
path = "{dir}/journal.sqlite"
[http]
listen = "off"
[[server]]
name = "lab"
address = "127.0.0.1:{lab_port}"
zones = ["bench.test."]
[[source]]
type = "probe"
server = "lab"
interval = "100ms"
rise = 1
fall = 1
[[channel]]
type = "push"
listen = "127.0.0.1:{push_port}"
cert = "{dir}/server.pem"
key = "{dir}/server.key"
max-sessions = 1000000
"#,
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let mut daemon = server_command(&daemon_bin)
        .args(["run", "--config"])
        .arg(&config)
        .env("DNS_OOPS_LOG", "warn")
        .spawn()
        .unwrap();
    let daemon_pid = daemon.id();

    let mqtt_port = free_port();
    let mosquitto_conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &mosquitto_conf,
        format!(
            "listener {mqtt_port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\n\
             cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nlog_type error\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    // Its log of clients that go away without DISCONNECT is noise here.
    let mut broker = server_command(&mosquitto)
        .arg("-c")
        .arg(&mosquitto_conf)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker_pid = broker.id();

    pin_clients();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let gate = Arc::new(Semaphore::new(256));

        // --- DNS Push fan-out
        let tally = Tally::new(rounds + 2, &gate);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..subscribers {
            tasks.spawn(push_subscriber(
                i,
                push_port,
                connector.clone(),
                "zone-updated.lab.bench.oops.internal.".into(),
                tally.clone(),
            ));
        }
        // A subscription with no records yet gets no initial PUSH: count the responses.
        wait_until(
            "push sessions",
            &tally.subscribed,
            subscribers,
            Duration::from_secs(300),
        )
        .await;
        eprintln!("push sessions subscribed: fan-out rounds begin");
        let cpu_before = cpu_ms(daemon_pid);
        for round in 2..rounds + 2 {
            lab.bump(round);
            let target = subscribers * (round - 1);
            wait_until(
                "push deliveries",
                &tally.received,
                target,
                Duration::from_secs(30),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        rows.push(summarise(
            "dns-oops push (DNS Push over TLS)",
            subscribers,
            rounds,
            &tally.latencies,
            cpu_ms(daemon_pid) - cpu_before,
        ));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}

        // --- mosquitto fan-out
        let tally = Tally::new(rounds + 2, &gate);
        for i in 0..subscribers {
            tasks.spawn(mqtt_subscriber(
                i,
                mqtt_port,
                connector.clone(),
                tally.clone(),
            ));
        }
        wait_until(
            "mqtt sessions",
            &tally.subscribed,
            subscribers,
            Duration::from_secs(300),
        )
        .await;
        let mut publisher = mqtt_open(99, mqtt_port, &connector, "publisher")
            .await
            .unwrap();
        let cpu_before = cpu_ms(broker_pid);
        for round in 2..rounds + 2 {
            mqtt_publish(&mut publisher, round).await;
            let target = subscribers * (round - 1);
            wait_until(
                "mqtt deliveries",
                &tally.received,
                target,
                Duration::from_secs(30),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        rows.push(summarise(
            "mosquitto (MQTT 3.1.1 over TLS, QoS 1)",
            subscribers,
            rounds,
            &tally.latencies,
            cpu_ms(broker_pid) - cpu_before,
        ));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}

        // --- idle DNS Push sessions and memory
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = rss_kib(daemon_pid);
        let idle_tally = Tally::new(0, &gate);
        for i in 0..idle {
            tasks.spawn(push_subscriber(
                i,
                push_port,
                connector.clone(),
                "server-running.lab.bench.oops.internal.".into(),
                idle_tally.clone(),
            ));
        }
        wait_until(
            "idle sessions",
            &idle_tally.subscribed,
            idle,
            Duration::from_secs(600),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let held = idle_tally.subscribed.load(Ordering::Relaxed);
        let after = rss_kib(daemon_pid);
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        (rows, held, before, after)
    });
    let (rows, held, before, after) = rows;
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = lab.child.kill();
    let _ = lab.child.wait();

    let per_session = (after.saturating_sub(before)) as f64 / held.max(1) as f64;
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let broker_version = Command::new(&mosquitto)
        .arg("-h")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    let mut table = format!(
        "\n## push_fanout — {subscribers} subscribers, {rounds} changes; {idle} idle sessions\n\n\
         `SUBSCRIBERS={subscribers} IDLE={asked_idle} ROUNDS={rounds} cargo bench --bench push_fanout` on {cpu_model} \
         ({} CPUs, Linux {}), {broker_version}, clients in the same process{}, {}.\n\n\
         Latency from the event (dns-oops: the engine's event time in the record; mosquitto: the \
         publisher's clock in the payload) to the kernel's receive stamp on the subscriber's socket; \
         the last column is the same after the subscriber's TLS read, which waits for the other \
         subscribers' decryption on the client CPU.\n\n\
         Server CPU is the server process's user + system time over the rounds, per change.\n\n\
         | tool | subscribers | delivered | p50 ms | p99 ms | max ms | after client TLS p50 / p99 ms | server CPU ms per change |\n\
         |---|---|---|---|---|---|---|---|\n",
        machine_cpus(),
        kernel.trim(),
        if pinning() {
            " (servers pinned to CPU 0, clients on the other CPUs)"
        } else {
            ""
        },
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {}/{} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {:.0} |\n",
            r.tool,
            r.sessions,
            r.delivered,
            r.expected,
            r.p50,
            r.p99,
            r.max,
            r.read_p50,
            r.read_p99,
            r.cpu_per_change
        ));
    }
    if let [ours, peer] = rows.as_slice() {
        table.push_str(&format!(
            "\np99 ratio dns-oops / mosquitto: {:.2} at the socket, {:.2} after client TLS (target: dns-oops p99 ≤ 100 ms)\n",
            ours.p99 / peer.p99,
            ours.read_p99 / peer.read_p99
        ));
    }
    if idle < asked_idle {
        table.push_str(&format!(
            "\n{asked_idle} idle sessions were asked for; RLIMIT_NOFILE is {open_files} on this machine and cannot be raised, so {idle} were opened.\n"
        ));
    }
    if idle > 0 {
        table.push_str(&format!(
            "\nIdle DNS Push sessions held: {held} of {idle}; daemon RSS {before} KiB before, {after} KiB after: \
             {per_session:.1} KiB per session (target ≤ 16 KiB).\n"
        ));
    }
    print!("{table}");
    if std::env::var("RESULTS").is_ok_and(|v| v == "0") {
        return;
    }
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .unwrap()
        .write_all(table.as_bytes())
        .unwrap();
}
