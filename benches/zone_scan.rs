//! AXFR + signature scan of a large, really signed zone, side by side with `kdig axfr` of
//! the same zone into `/dev/null`, in the same run.
//!
//! 1. A zone of `NAMES` hosts (default 500,000), one A record each, is signed by
//!    `ldns-signzone` (ECDSA P-256, NSEC): every host has an A and an NSEC RRset, so the
//!    zone has over 2 × `NAMES` RRsets (≥ 1,000,000 by default) and as many signatures.
//!    The signed zone is cached under the target directory
//!    (`$CARGO_TARGET_DIR` or `target/`, in `zone-scan-bench/`) and regenerated when it is
//!    more than 300 days old (its signatures are valid for a year).
//! 2. A local knotd serves it. `ROUNDS` times (default 3), alternately: `kdig axfr` with its
//!    output to `/dev/null`, and dns-oops' [`transfer`] feeding a [`SignatureScan`] (one
//!    thread). Wall time, CPU time and peak resident memory of each are measured — kdig's
//!    from `wait4`, ours from `getrusage` and the process's `VmHWM`, reset before each run.
//!
//! ```sh
//! CARGO_TARGET_DIR=/path/to/target cargo bench --bench zone_scan
//! NAMES=50000 ROUNDS=2 cargo bench --bench zone_scan     # a quick look
//! ```
//!
//! Needs the Debian packages `knot`, `knot-dnsutils` and `ldnsutils`. Prints a Markdown
//! table and appends it, with the command and the machine, to `benches/RESULTS.md`.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use dns_oops::zone::name::Name;
use dns_oops::zone::scan::SignatureScan;
use dns_oops::zone::transfer::transfer;

const ZONE: &str = "bench.test";

fn require(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    panic!("`{program}` is not installed: install the Debian package `{package}`");
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("zone-scan-bench")
}

/// The signed zone file for `names` hosts and the number of RRSIG records in it, made
/// with ldns-signzone unless a fresh enough copy is cached.
fn signed_zone(names: usize) -> (PathBuf, u64) {
    let dir = cache_dir().join(format!("names-{names}"));
    let signed = dir.join("signed.zone");
    let fresh = std::fs::metadata(&signed)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < Duration::from_secs(300 * 86_400));
    if !fresh {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let started = Instant::now();
        let unsigned = dir.join(format!("{ZONE}.zone"));
        let mut out = BufWriter::new(std::fs::File::create(&unsigned).unwrap());
        writeln!(
            out,
            "$ORIGIN {ZONE}.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 600 864000 300\n\
             @ IN NS ns1\nns1 IN A 127.0.0.1"
        )
        .unwrap();
        for i in 0..names {
            writeln!(
                out,
                "h{i} IN A 10.{}.{}.{}",
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            )
            .unwrap();
        }
        out.flush().unwrap();
        drop(out);
        let mut keys = Vec::new();
        for ksk in [true, false] {
            let mut command = Command::new(require("ldns-keygen", "ldnsutils"));
            command.current_dir(&dir).args(["-a", "ECDSAP256SHA256"]);
            if ksk {
                command.arg("-k");
            }
            let out = command.arg(ZONE).output().unwrap();
            assert!(out.status.success(), "ldns-keygen: {out:?}");
            keys.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
        }
        let expiration = chrono::Utc::now() + chrono::Duration::days(365);
        let status = Command::new(require("ldns-signzone", "ldnsutils"))
            .current_dir(&dir)
            .args(["-e", &expiration.format("%Y%m%d%H%M%S").to_string()])
            .arg("-f")
            .arg(&signed)
            .arg(&unsigned)
            .args(&keys)
            .status()
            .unwrap();
        assert!(status.success(), "ldns-signzone failed");
        eprintln!(
            "signed {names} hosts with ldns-signzone in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    // Counted line by line: a bench process that held the whole file would make the
    // forked kdig look as large (its peak resident size counts the pages shared before exec).
    let file = std::io::BufReader::new(std::fs::File::open(&signed).unwrap());
    let rrsigs = std::io::BufRead::lines(file)
        .map(|l| l.unwrap())
        .filter(|l| l.contains("\tRRSIG\t"))
        .count() as u64;
    (signed, rrsigs)
}

/// A knotd serving the signed zone on a free loopback port.
struct Knot {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Knot {
    fn start(zone_file: &Path) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["run", "db"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "server:\n    rundir: \"{d}/run\"\n    listen: 127.0.0.1@{port}\n\
             \x20   tcp-io-timeout: 60000\n    tcp-idle-timeout: 60\n\
             log:\n  - target: stderr\n    any: warning\n\
             database:\n    storage: \"{d}/db\"\n\
             acl:\n  - id: xfr\n    address: 127.0.0.1\n    action: transfer\n\
             zone:\n  - domain: {ZONE}\n    file: \"{zone}\"\n    zonefile-sync: -1\n    \
             journal-content: none\n    acl: xfr\n",
            d = d.display(),
            zone = zone_file.display(),
        );
        std::fs::write(d.join("knot.conf"), config).unwrap();
        let child = Command::new(require("knotd", "knot"))
            .arg("-c")
            .arg(d.join("knot.conf"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let knot = Knot {
            child,
            port,
            _dir: dir,
        };
        // Wait until the zone is served. (Knot's default TCP I/O timeout, 500 ms, would
        // cut a transfer to a client that a busy machine leaves unscheduled a moment.)
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let out = Command::new(require("kdig", "knot-dnsutils"))
                .args(["@127.0.0.1", "-p", &port.to_string(), ZONE, "SOA", "+short"])
                .output()
                .unwrap();
            if out.status.success() && !out.stdout.is_empty() {
                return knot;
            }
            assert!(Instant::now() < deadline, "knotd did not load the zone");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Run {
    tool: &'static str,
    round: usize,
    wall: f64,
    cpu: f64,
    peak_kib: u64,
    rrsets: Option<u64>,
    signatures: Option<u64>,
}

fn cpu_seconds(usage: &libc::rusage) -> f64 {
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// `kdig axfr` into /dev/null, measured with wait4.
fn kdig_round(port: u16, round: usize) -> Run {
    let started = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below
    let child = Command::new(require("kdig", "knot-dnsutils"))
        .args(["@127.0.0.1", "-p", &port.to_string(), ZONE, "AXFR"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage filled by wait4 for our own child.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let pid = libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage);
        assert_eq!(pid, child.id() as libc::pid_t, "wait4");
        usage
    };
    let wall = started.elapsed().as_secs_f64();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "kdig failed"
    );
    Run {
        tool: "kdig axfr > /dev/null",
        round,
        wall,
        cpu: cpu_seconds(&usage),
        peak_kib: usage.ru_maxrss as u64,
        rrsets: None,
        signatures: None,
    }
}

fn self_usage() -> libc::rusage {
    // SAFETY: a zeroed rusage filled by getrusage.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// dns-oops' transfer and scan, on this thread.
fn dns_oops_round(runtime: &tokio::runtime::Runtime, port: u16, round: usize) -> Run {
    // Writing 5 to clear_refs resets the peak resident size (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let zone = Name::parse(format!("{ZONE}.").as_bytes(), None).unwrap();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let before = self_usage();
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp();
    let summary = runtime
        .block_on(transfer(
            address,
            &zone,
            None,
            SignatureScan::new(now, 5),
            Duration::from_secs(10),
            Duration::from_secs(600),
        ))
        .expect("transfer");
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&self_usage()) - cpu_seconds(&before);
    Run {
        tool: "dns-oops AXFR + scan",
        round,
        wall,
        cpu,
        peak_kib: vm_hwm_kib(),
        rrsets: Some(summary.scan.rrsets()),
        signatures: Some(summary.scan.signatures()),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let names = env_number("NAMES", 500_000);
    let rounds = env_number("ROUNDS", 3).max(1);
    let (zone_file, rrsigs) = signed_zone(names);
    let knot = Knot::start(&zone_file);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runs = Vec::new();
    for round in 1..=rounds {
        runs.push(kdig_round(knot.port, round));
        let ours = dns_oops_round(&runtime, knot.port, round);
        assert_eq!(
            ours.signatures,
            Some(rrsigs),
            "every RRSIG of the file is scanned"
        );
        runs.push(ours);
    }
    drop(knot);

    let rrsets = runs.iter().find_map(|r| r.rrsets).unwrap_or(0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let knot_version = Command::new(require("knotd", "knot"))
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut table = format!(
        "\n## zone_scan — {rrsets} RRsets, {rrsigs} signatures ({names} hosts, ldns-signzone ECDSA P-256, NSEC)\n\n\
         `NAMES={names} ROUNDS={rounds} cargo bench --bench zone_scan` (release) on {cpu_model} ({cpus} CPUs, Linux {kernel}), {knot_version} serving from its zone file, {}.\n\n\
         | tool | round | wall s | CPU s | peak RSS MiB | RRsets | signatures |\n|---|---|---|---|---|---|---|\n",
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    for r in &runs {
        table.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.1} | {} | {} |\n",
            r.tool,
            r.round,
            r.wall,
            r.cpu,
            r.peak_kib as f64 / 1024.0,
            r.rrsets.map_or("–".into(), |n| n.to_string()),
            r.signatures.map_or("–".into(), |n| n.to_string()),
        ));
    }
    let wall = |tool: &str| {
        median(
            runs.iter()
                .filter(|r| r.tool == tool)
                .map(|r| r.wall)
                .collect(),
        )
    };
    let ours = wall("dns-oops AXFR + scan");
    let peer = wall("kdig axfr > /dev/null");
    table.push_str(&format!(
        "\nMedian wall time: dns-oops {ours:.3} s, kdig {peer:.3} s; ratio dns-oops / kdig: {:.2} (target ≤ 1.2).\n",
        ours / peer
    ));
    print!("{table}");
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .unwrap()
        .write_all(table.as_bytes())
        .unwrap();
}
