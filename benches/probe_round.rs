//! Probe cost: SOA-probing many zones on one local knotd, side by side with dnsperf sending
//! the same queries with the same number in flight.
//!
//! Target (design): 100,000 zones probed per minute using at most 10 % of a core.
//!
//! ```sh
//! cargo bench --bench probe_round                  # 20,000 zones, 5 rounds
//! ZONES=100000 ROUNDS=3 cargo bench --bench probe_round
//! ```
//!
//! Needs the Debian packages `knot` and `dnsperf`. Prints a Markdown table and appends it,
//! with the command and the machine, to `benches/RESULTS.md`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dns_oops::sources::probe::{ProbeOutcome, ProbeSettings, probe_once};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn require(program: &str, package: &str) {
    let found = ["/usr/sbin", "/usr/bin"]
        .iter()
        .any(|d| Path::new(d).join(program).exists());
    assert!(
        found,
        "`{program}` is missing: install the Debian package `{package}`"
    );
}

/// CPU seconds (user + system) of this process or of its waited-for children.
fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn free_port() -> u16 {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.local_addr().unwrap().port()
}

struct Measure {
    tool: String,
    wall: Duration,
    cpu: f64,
    answered: usize,
}

impl Measure {
    fn row(&self, zones: usize) -> String {
        let per_100k = self.cpu * 100_000.0 / zones as f64;
        format!(
            "| {} | {} | {:.3} | {:.3} | {:.0} | {:.2} % |",
            self.tool,
            self.answered,
            self.wall.as_secs_f64(),
            self.cpu,
            zones as f64 / self.wall.as_secs_f64(),
            per_100k / 60.0 * 100.0
        )
    }
}

fn main() {
    require("knotd", "knot");
    require("dnsperf", "dnsperf");
    let zones = env_or("ZONES", 20_000);
    let rounds = env_or("ROUNDS", 5);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let names: Vec<String> = (0..zones).map(|i| format!("z{i}.bench.")).collect();

    std::fs::create_dir_all(dir.path().join("zones")).unwrap();
    let mut conf = format!(
        "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    background-workers: 1\n\
         database:\n    storage: \"{d}\"\n\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    file: \"bench.zone\"\n    zonefile-sync: -1\n    journal-content: none\n\
         zone:\n",
        d = dir.path().display()
    );
    for name in &names {
        conf.push_str(&format!("  - domain: {name}\n"));
    }
    std::fs::write(dir.path().join("knot.conf"), conf).unwrap();
    // One zone file for every zone: relative owner names take each zone's origin.
    std::fs::write(
        dir.path().join("zones/bench.zone"),
        "$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.1\n",
    )
    .unwrap();
    let mut knotd = Command::new("knotd")
        .arg("-c")
        .arg(dir.path().join("knot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let settings = ProbeSettings {
        server: "knot".into(),
        address,
        zones: names.clone(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(2),
        rise: 1,
        fall: 1,
    };
    eprintln!("waiting for knotd to load {zones} zones …");
    let started = Instant::now();
    loop {
        let last = ProbeSettings {
            zones: vec![names[zones - 1].clone()],
            ..settings.clone()
        };
        let round = runtime.block_on(probe_once(&last));
        if matches!(round.zones[0].1, ProbeOutcome::Ready { .. }) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "knotd did not load the zones"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("loaded in {:.1} s", started.elapsed().as_secs_f64());

    let mut results = Vec::new();
    for round in 1..=rounds {
        let cpu0 = cpu_seconds(libc::RUSAGE_SELF);
        let t0 = Instant::now();
        let probe = runtime.block_on(probe_once(&settings));
        let wall = t0.elapsed();
        let cpu = cpu_seconds(libc::RUSAGE_SELF) - cpu0;
        let answered = probe
            .zones
            .iter()
            .filter(|(_, o)| matches!(o, ProbeOutcome::Ready { .. }))
            .count();
        results.push(Measure {
            tool: format!("dns-oops probe round {round}"),
            wall,
            cpu,
            answered,
        });

        let queries = dir.path().join("queries");
        let mut file = std::fs::File::create(&queries).unwrap();
        for name in &names {
            writeln!(file, "{name} SOA").unwrap();
        }
        drop(file);
        let cpu0 = cpu_seconds(libc::RUSAGE_CHILDREN);
        let t0 = Instant::now();
        let out = Command::new("dnsperf")
            .args([
                "-s",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-n",
                "1",
                "-c",
                "1",
                "-T",
                "1",
                "-q",
            ])
            .arg(dns_oops::sources::probe::MAX_IN_FLIGHT.to_string())
            .arg("-d")
            .arg(&queries)
            .output()
            .unwrap();
        let wall = t0.elapsed();
        let cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0;
        let text = String::from_utf8_lossy(&out.stdout);
        let answered = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Queries completed:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        results.push(Measure {
            tool: format!("dnsperf round {round}"),
            wall,
            cpu,
            answered,
        });
    }
    let _ = knotd.kill();
    let _ = knotd.wait();

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
    let mut table = String::new();
    table.push_str(&format!(
        "\n## probe_round — {} zones, {} in flight\n\n`ZONES={zones} ROUNDS={rounds} cargo bench --bench probe_round` on {} ({} CPUs, Linux {}), knotd {} with 1 UDP worker, {}.\n\n",
        zones,
        dns_oops::sources::probe::MAX_IN_FLIGHT,
        cpu_model,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        kernel.trim(),
        knot_version(),
        chrono::Utc::now().format("%Y-%m-%d"),
    ));
    table.push_str("| tool | answered | wall s | CPU s | zones/s | core share at 100k zones/min |\n|---|---|---|---|---|---|\n");
    for m in &results {
        table.push_str(&m.row(zones));
        table.push('\n');
    }
    let ours: f64 = results
        .iter()
        .filter(|m| m.tool.starts_with("dns-oops"))
        .map(|m| m.cpu)
        .sum();
    let peer: f64 = results
        .iter()
        .filter(|m| m.tool.starts_with("dnsperf"))
        .map(|m| m.cpu)
        .sum();
    table.push_str(&format!(
        "\nCPU ratio dns-oops / dnsperf over all rounds: {:.2}\n",
        ours / peer.max(1e-9)
    ));
    print!("{table}");
    let results_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results_file)
        .unwrap();
    file.write_all(table.as_bytes()).unwrap();
}

fn knot_version() -> String {
    Command::new("knotd")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .replace("knotd (Knot DNS), version ", "")
        })
        .unwrap_or_default()
}
