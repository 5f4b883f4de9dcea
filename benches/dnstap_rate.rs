//! dnstap frames decoded and classified per second on one core, from a Frame Streams
//! socket, side by side with the Go `dnstap` reader (quiet text output, one line per
//! frame) and `fstrm_capture` writing to `/dev/null` (the raw floor: framing only), all fed
//! the same generated stream over a unix socket in the same run.
//!
//! ```text
//! cargo bench --bench dnstap_rate                    # 2,000,000 frames, 3 rounds
//! DNSTAP_BENCH_FRAMES=5000000 DNSTAP_BENCH_ROUNDS=5 cargo bench --bench dnstap_rate
//! ```
//!
//! The writer is a thread of this process that does the bidirectional handshake (READY,
//! ACCEPT) and then writes the stream (START, frames, STOP) in 1 MiB writes, as fast as the
//! reader takes it: `fstrm_replay` itself tops out near 200,000 frames/s, below every
//! reader here. dns-oops runs in this process on a current-thread runtime (one core): the
//! receiver's connection task and the collector that classifies every frame (message type,
//! RCODE, Extended DNS Errors with the question name of the responses that carry one) and
//! counts it into the traffic conditions. Its time ends when the last frame is counted;
//! the Go reader's when it has printed its last line; `fstrm_capture`'s when it has
//! answered STOP with FINISH. Needs the Debian packages `fstrm-bin` and
//! `golang-github-dnstap-golang-dnstap-cli`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dns_oops::config::CountWhat;
use dns_oops::dnstap::fstrm::{CONTENT_TYPE_DNSTAP, Control, ControlType};
use dns_oops::dnstap::message::{Dnstap, Message};
use dns_oops::dnstap::receiver::{Listen, Receiver, ReceiverSettings};
use dns_oops::dnstap::traffic::{EdeRule, RateRule, TrafficRules};
use dns_oops::sources::dnstap::Collector;
use prost::Message as _;

/// For the command lines of the other readers.
const CONTENT_TYPE: &str = "protobuf:dnstap.Dnstap";

fn main() {
    let frames: usize = env_number("DNSTAP_BENCH_FRAMES", 2_000_000);
    let rounds: usize = env_number("DNSTAP_BENCH_ROUNDS", 3);
    let capture = require("fstrm_capture", "fstrm-bin");
    let go_dnstap = require("dnstap", "golang-github-dnstap-golang-dnstap-cli");
    let dir = tempfile::tempdir().unwrap();
    let stream = Arc::new(generate(frames));
    println!(
        "stream: {frames} frames, {:.1} MB, {} rounds; CPU: {}, {} cores",
        stream.len() as f64 / 1e6,
        rounds,
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut results: Vec<(&str, Vec<Duration>)> = vec![
        ("dns-oops (1 core)", Vec::new()),
        ("Go dnstap -q", Vec::new()),
        ("fstrm_capture -w /dev/null", Vec::new()),
    ];
    for round in 0..rounds {
        let socket = dir.path().join(format!("ours-{round}.sock"));
        results[0].1.push(ours(&socket, &stream, frames));
        let socket = dir.path().join(format!("go-{round}.sock"));
        results[1].1.push(go(&socket, &stream, &go_dnstap, frames));
        let socket = dir.path().join(format!("capture-{round}.sock"));
        results[2].1.push(floor(&socket, &stream, &capture));
    }
    println!();
    println!("| reader | median time | frames/s (median) | best frames/s | vs dns-oops |");
    println!("|---|---|---|---|---|");
    let ours_median = median(&results[0].1);
    for (name, times) in &results {
        let m = median(times);
        let best = times.iter().min().copied().unwrap_or(m);
        println!(
            "| {name} | {:.3} s | {:.0} | {:.0} | {:.2}× |",
            m.as_secs_f64(),
            frames as f64 / m.as_secs_f64(),
            frames as f64 / best.as_secs_f64(),
            m.as_secs_f64() / ours_median.as_secs_f64()
        );
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn require(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    panic!("`{program}` is not installed: install the Debian package `{package}`");
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// CPU time (user and system) of the calling thread.
fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_THREAD is Linux's.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// A DNS message for `www.example.test A`: the query, or the answer with an OPT record
/// that carries Extended DNS Error 6 when `ede` is set.
fn dns_message(id: u16, response: bool, ede: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(96);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(if response {
        &[0x84, 0x00]
    } else {
        &[0x00, 0x00]
    });
    let answers: u16 = u16::from(response && !ede);
    for count in [1, answers, 0, 1] {
        m.extend_from_slice(&count.to_be_bytes());
    }
    for label in ["www", "example", "test"] {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    if answers == 1 {
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
    }
    if ede {
        // SERVFAIL.
        m[3] |= 2;
    }
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    if ede {
        m.extend_from_slice(&[0, 6, 0, 15, 0, 2, 0, 6]);
    } else {
        m.extend_from_slice(&[0, 0]);
    }
    m
}

/// A Frame Streams stream of `frames` dnstap frames, half queries and half their
/// responses (one in a hundred with EDE 6), as Knot writes them: START, frames, STOP.
fn generate(frames: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames * 160);
    Control {
        kind: ControlType::Start,
        content_types: vec![CONTENT_TYPE_DNSTAP],
    }
    .encode(&mut out);
    let mut frame = Vec::with_capacity(256);
    for i in 0..frames {
        let response = i % 2 == 1;
        let ede = response && i % 200 == 1;
        let wire = Bytes::from(dns_message(i as u16, response, ede));
        let message = Message {
            r#type: if response { 2 } else { 1 },
            socket_family: Some(1),
            socket_protocol: Some(1),
            query_address: Some(Bytes::from_static(&[127, 0, 0, 1])),
            response_address: Some(Bytes::from_static(&[127, 0, 0, 1])),
            query_port: Some(40000 + (i % 20000) as u32),
            response_port: Some(53),
            query_time_sec: Some(1_795_334_712 + (i / 100_000) as u64),
            query_time_nsec: Some((i % 1_000_000_000) as u32),
            query_message: (!response).then(|| wire.clone()),
            response_time_sec: response.then_some(1_795_334_712 + (i / 100_000) as u64),
            response_time_nsec: response.then_some((i % 1_000_000_000) as u32),
            response_message: response.then_some(wire),
            ..Default::default()
        };
        let dnstap = Dnstap {
            identity: Some(Bytes::from_static(b"bench")),
            version: Some(Bytes::from_static(b"dns-oops bench")),
            extra: None,
            message: Some(message),
            r#type: 1,
        };
        frame.clear();
        dnstap.encode(&mut frame).unwrap();
        out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        out.extend_from_slice(&frame);
    }
    Control {
        kind: ControlType::Stop,
        content_types: Vec::new(),
    }
    .encode(&mut out);
    out
}

/// Writes the stream into `socket` as fast as the kernel takes it, on a thread of its
/// own: READY, waits for ACCEPT, then the file (START, frames, STOP) in 1 MiB writes, then
/// waits for FINISH. Its handle returns when FINISH has come.
fn feed(socket: &Path, stream: Arc<Vec<u8>>) -> std::thread::JoinHandle<()> {
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        let mut conn = std::os::unix::net::UnixStream::connect(&socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
        let mut ready = Vec::new();
        Control {
            kind: ControlType::Ready,
            content_types: vec![CONTENT_TYPE_DNSTAP],
        }
        .encode(&mut ready);
        conn.write_all(&ready).unwrap();
        expect_control(&mut conn, 1);
        for chunk in stream.chunks(1 << 20) {
            conn.write_all(chunk).unwrap();
        }
        expect_control(&mut conn, 5);
    })
}

/// Reads one control frame and checks its type (1 ACCEPT, 5 FINISH).
fn expect_control(conn: &mut std::os::unix::net::UnixStream, kind: u32) {
    let mut head = [0u8; 8];
    conn.read_exact(&mut head).unwrap();
    assert_eq!(&head[..4], &[0, 0, 0, 0], "a control frame");
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).unwrap();
    assert_eq!(
        u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
        kind
    );
}

fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The listener may create the path just before it listens.
    std::thread::sleep(Duration::from_millis(100));
}

/// dns-oops' receiver and collector on a current-thread runtime.
fn ours(socket: &Path, stream: &Arc<Vec<u8>>, frames: usize) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let receiver = Receiver::bind(ReceiverSettings {
            listen: vec![Listen::Unix(socket.to_path_buf())],
            max_connections: 4,
            max_buffer: 64 * 1024 * 1024,
            max_frame: 256 * 1024,
            socket_mode: 0o600,
        })
        .await
        .unwrap();
        let stats = receiver.stats.clone();
        let (tx, mut batches) = tokio::sync::mpsc::unbounded_channel();
        let receiving = tokio::spawn(receiver.run(tx));
        let mut collector = Collector::new(
            TrafficRules {
                query_rate_high: Some(RateRule {
                    threshold: 1e9,
                    window: 10,
                    clear_below: 9e8,
                }),
                query_rate_rising: Some(RateRule {
                    threshold: 1e9,
                    window: 10,
                    clear_below: 9e8,
                }),
                extended_error: Some(EdeRule {
                    codes: Vec::new(),
                    rate: 1e9,
                    window: 10,
                    clear_below: 9e8,
                }),
                zones: vec!["example.test.".into()],
            },
            CountWhat::Queries,
        );
        let start = Instant::now();
        let cpu_start = thread_cpu();
        let writer = feed(socket, stream.clone());
        let done = |counted: u64| {
            counted + stats.dropped.load(std::sync::atomic::Ordering::Relaxed) >= frames as u64
        };
        while !done(collector.counts.frames) {
            let batch = batches.recv().await.expect("the receiver runs");
            collector.add(&batch.frames, start.elapsed().as_secs());
        }
        let elapsed = start.elapsed();
        let cpu = thread_cpu() - cpu_start;
        let dropped = stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
        let _ = collector.traffic.evaluate(start.elapsed().as_secs() + 1);
        writer.join().unwrap();
        receiving.abort();
        assert_eq!(collector.counts.malformed, 0);
        eprintln!(
            "dns-oops: {} frames ({} queries, {} responses, {} EDE) in {:.3} s, {:.3} s CPU of its one thread ({:.0} frames per CPU second), {dropped} dropped",
            collector.counts.frames,
            collector.counts.queries,
            collector.counts.responses,
            collector.counts.by_ede.values().sum::<u64>(),
            elapsed.as_secs_f64(),
            cpu.as_secs_f64(),
            frames as f64 / cpu.as_secs_f64(),
        );
        elapsed
    })
}

/// The Go dnstap reader, printing one quiet line per frame; done when all lines are out.
fn go(socket: &Path, stream: &Arc<Vec<u8>>, go_dnstap: &Path, frames: usize) -> Duration {
    let mut reader = Command::new(go_dnstap)
        .arg("-u")
        .arg(socket)
        .arg("-q")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnstap");
    wait_for_socket(socket);
    let stdout = reader.stdout.take().unwrap();
    let start = Instant::now();
    let writer = feed(socket, stream.clone());
    let mut lines = 0;
    let mut input = BufReader::with_capacity(1 << 20, stdout);
    let mut line = Vec::new();
    while lines < frames {
        line.clear();
        if input.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        lines += 1;
    }
    let elapsed = start.elapsed();
    writer.join().unwrap();
    let _ = reader.kill();
    let _ = reader.wait();
    eprintln!("Go dnstap: {lines} lines in {:.3} s", elapsed.as_secs_f64());
    assert_eq!(
        lines, frames,
        "the Go reader printed fewer lines than frames"
    );
    elapsed
}

/// `fstrm_capture -w /dev/null`: done when it has answered STOP with FINISH.
fn floor(socket: &Path, stream: &Arc<Vec<u8>>, capture: &Path) -> Duration {
    let mut reader = Command::new(capture)
        .args(["-t", CONTENT_TYPE, "-u"])
        .arg(socket)
        .args(["-w", "/dev/null"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fstrm_capture");
    wait_for_socket(socket);
    let start = Instant::now();
    feed(socket, stream.clone()).join().unwrap();
    let elapsed = start.elapsed();
    let _ = reader.kill();
    let _ = reader.wait();
    eprintln!("fstrm_capture: {:.3} s", elapsed.as_secs_f64());
    elapsed
}
