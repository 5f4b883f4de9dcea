//! ExaBGP's own healthcheck versus dns-oops, on one scenario in one run: a knotd on
//! loopback, one ExaBGP (AS 65001, 127.0.0.2) running two API processes — ExaBGP's
//! `healthcheck` (Debian `exabgp`, its default timing: interval 5 s, fast-interval 1 s, rise
//! 3, fall 3, timeout 5 s; `--withdraw-on-down`, without which a failed check only raises the
//! MED and the route never leaves the peer) checking knotd with `kdig … SOA`, and `dns-oops
//! run` with the settings of `etc/examples/anycast-bird.toml` (SOA probe every 1 s, rise 1,
//! fall 1; the process source on knotd's pid file; hold-down 5 s) driving ExaBGP through the
//! `exabgp` driver — each announcing its own prefix to a BIRD peer (AS 65000, 127.0.0.1),
//! whose table is read every 2 ms through its control socket.
//!
//! Measured per round: kill -9 of knotd → each prefix gone from the peer's table; start of
//! knotd → each prefix back in it. Rounds: `ROUNDS` (default 5).
//!
//! ```sh
//! cargo bench --bench anycast_healthcheck            # prints a Markdown section
//! ROUNDS=10 cargo bench --bench anycast_healthcheck
//! ```
//!
//! Needs Debian `knot`, `knot-dnsutils` (kdig), `exabgp`, `bird2` (scripts/test installs them).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bird::{BirdClient, BirdPeer};
use common::{Knot, free_port, require};

const ZONES: [&str; 3] = ["a.test", "b.test", "c.test"];
/// Announced by dns-oops.
const OOPS: &str = "192.0.2.53/32";
/// Announced by ExaBGP's healthcheck.
const HEALTHCHECK: &str = "192.0.2.60/32";
/// Longest wait for one route change (the healthcheck needs up to ~20 s).
const LONG: Duration = Duration::from_secs(60);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let port = free_port();
    let peer = start_peer(dir, port);
    let mut knot = Knot::new(&dir.join("knot"), &ZONES);
    knot.start();
    let config = dns_oops_config(dir, &knot);
    let mut exabgp = start_exabgp(dir, port, &knot, &config);
    let mut at_peer = connect(&dir.join("peer.ctl"));
    wait(LONG, "eBGP session", || at_peer.established("exa"));
    wait(LONG, "both routes at the peer", || {
        at_peer.has_route(OOPS) && at_peer.has_route(HEALTHCHECK)
    });
    // Let the healthcheck settle into its slow interval, as it would be in service.
    std::thread::sleep(Duration::from_secs(6));

    let mut withdraw = (Vec::new(), Vec::new());
    let mut announce = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let killed = knot.kill9();
        let (oops, check) = both(&mut at_peer, killed, false);
        eprintln!(
            "round {round}: kill -9 → gone: dns-oops {}, healthcheck {}",
            secs(oops),
            secs(check)
        );
        withdraw.0.push(oops);
        withdraw.1.push(check);
        knot.reap();
        std::thread::sleep(Duration::from_secs(2));
        let started = Instant::now();
        knot.start();
        let (oops, check) = both(&mut at_peer, started, true);
        eprintln!(
            "round {round}: knotd start → back: dns-oops {}, healthcheck {}",
            secs(oops),
            secs(check)
        );
        announce.0.push(oops);
        announce.1.push(check);
        std::thread::sleep(Duration::from_secs(6));
    }
    let _ = exabgp.kill();
    let _ = exabgp.wait();
    drop(peer);

    let machine = support::machine();
    println!("## anycast_healthcheck — ExaBGP healthcheck vs dns-oops, {rounds} rounds\n");
    println!(
        "`ROUNDS={rounds} cargo bench --bench anycast_healthcheck` on {machine}, {}, {}, {}, {}.\n",
        support::version("knotd", &["-V"]),
        support::version("exabgp", &["--version"]),
        support::version("bird", &["--version"]),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    println!(
        "Same knotd, same ExaBGP, same BIRD peer; time until the prefix leaves / enters the peer's table."
    );
    println!();
    println!(
        "| event | healthcheck median | healthcheck max | dns-oops median | dns-oops max | ratio (healthcheck / dns-oops, median) |"
    );
    println!("|---|---|---|---|---|---|");
    for (event, (oops, check)) in [
        ("kill -9 knotd → route gone", &mut withdraw),
        ("knotd start → route back", &mut announce),
    ] {
        oops.sort();
        check.sort();
        let (om, cm) = (oops[oops.len() / 2], check[check.len() / 2]);
        println!(
            "| {event} | {} | {} | {} | {} | {:.0} |",
            secs(cm),
            secs(*check.last().unwrap()),
            secs(om),
            secs(*oops.last().unwrap()),
            cm.as_secs_f64() / om.as_secs_f64().max(1e-6)
        );
    }
}

/// Waits until each prefix is gone (`present` false) or back (`present` true); the time
/// since `since` for dns-oops's and the healthcheck's.
fn both(peer: &mut BirdClient, since: Instant, present: bool) -> (Duration, Duration) {
    let (mut oops, mut check) = (None, None);
    let deadline = since + LONG;
    while (oops.is_none() || check.is_none()) && Instant::now() < deadline {
        let now = Instant::now();
        if oops.is_none() && peer.has_route(OOPS) == present {
            oops = Some(now - since);
        }
        if check.is_none() && peer.has_route(HEALTHCHECK) == present {
            check = Some(now - since);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (
        oops.unwrap_or_else(|| panic!("dns-oops's route did not change within {LONG:?}")),
        check.unwrap_or_else(|| panic!("the healthcheck's route did not change within {LONG:?}")),
    )
}

fn wait(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn connect(socket: &Path) -> BirdClient {
    let deadline = Instant::now() + LONG;
    loop {
        match BirdClient::connect(socket) {
            Ok(client) => return client,
            Err(e) if Instant::now() > deadline => panic!("BIRD control socket: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn start_peer(dir: &Path, port: u16) -> BirdPeer {
    BirdPeer::start(
        dir,
        &format!(
            r#"router id 127.0.0.1;
protocol device {{}}
protocol bgp exa {{
  local 127.0.0.1 port {port} as 65000;
  neighbor 127.0.0.2 as 65001;
  passive on; multihop; strict bind on;
  error wait time 1,2;
  ipv4 {{ import all; export none; }};
}}
"#
        ),
    )
}

/// dns-oops as in etc/examples/anycast-bird.toml, with the exabgp driver.
fn dns_oops_config(dir: &Path, knot: &Knot) -> std::path::PathBuf {
    let text = format!(
        r#"node = "bench"
[journal]
path = "{dir}/state/journal.sqlite"
[[server]]
name = "knot"
address = "{addr}"
zones = ["a.test.", "b.test.", "c.test."]
[[source]]
type = "probe"
server = "knot"
interval = "1s"
timeout = "500ms"
rise = 1
fall = 1
[[source]]
type = "process"
server = "knot"
pid-file = "{pid}"
[[channel]]
type = "log"
path = "{dir}/signals.log"
[[driver]]
type = "exabgp"
[[anycast]]
name = "dns"
prefixes = ["{OOPS}"]
announce-when = "server-running(knot) and all-zones-ready(knot)"
hold-down = "5s"
"#,
        dir = dir.display(),
        addr = knot.addr(),
        pid = knot.pid_file().display(),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_exabgp(dir: &Path, port: u16, knot: &Knot, config: &Path) -> Child {
    let kdig = require("kdig", "knot-dnsutils");
    let addr = knot.addr();
    let exabgp_conf = dir.join("exabgp.conf");
    std::fs::write(
        &exabgp_conf,
        format!(
            r#"process oops {{
  run {bin} run --config {config};
  encoder text;
}}
process healthcheck {{
  run /usr/bin/python3 -m exabgp healthcheck --no-syslog --name knot --ip {HEALTHCHECK} --no-ip-setup --withdraw-on-down --cmd "{kdig} +time=1 +retry=0 @{ip} -p {port} a.test SOA";
  encoder text;
}}
neighbor 127.0.0.1 {{
  router-id 127.0.0.2;
  local-address 127.0.0.2;
  local-as 65001;
  peer-as 65000;
  api {{ processes [ oops, healthcheck ]; }}
}}
"#,
            bin = env!("CARGO_BIN_EXE_dns-oops"),
            config = config.display(),
            kdig = kdig.display(),
            ip = addr.ip(),
            port = addr.port(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("exabgp.log")).unwrap();
    Command::new(require("exabgp", "exabgp"))
        .arg(&exabgp_conf)
        .env("exabgp.tcp.port", port.to_string())
        .env("exabgp.api.cli", "false")
        .env("exabgp.daemon.daemonize", "false")
        .env("exabgp.daemon.user", "root")
        .env("exabgp.log.destination", "stdout")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start exabgp")
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}
