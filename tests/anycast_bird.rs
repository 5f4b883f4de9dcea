//! The anycast controller end to end with real daemons on loopback (Debian packages `knot`
//! and `bird2`): knotd ← dns-oops (probe + process sources) → BIRD "driven" (static
//! protocols switched over its control socket) ⇄ eBGP ⇄ BIRD "peer", whose routing table
//! the test reads through the peer's own control socket.
//!
//! Asserted: the route appears at the peer once knotd has every zone ready; it is gone from
//! the peer within 1 s of kill -9 of knotd; after a restart of the driven BIRD, dns-oops
//! re-enables the route within 1 s of BIRD's return; a kill -9 and a SIGTERM restart of
//! dns-oops leave a policy with `on-shutdown = "keep"` announced throughout, while the
//! default policy is withdrawn on SIGTERM and comes back at the next start; `dns-oops
//! drain` returns only when the route has left the peer, the drain holds across a restart
//! of dns-oops, and `undrain` brings the route back.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::bird::{BirdClient, Watch, until};
use common::{Daemon, Knot, free_port, require};
use dns_oops::condition::ConditionId;
use dns_oops::signal::SignalState;

const ZONES: [&str; 3] = ["a.test", "b.test", "c.test"];
const KEPT: &str = "192.0.2.53/32";
const STRICT: &str = "192.0.2.54/32";
const LONG: Duration = Duration::from_secs(20);

/// A BIRD in the foreground, with its own control socket.
struct Bird {
    name: &'static str,
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Bird {
    fn new(dir: &Path, name: &'static str, config: String) -> Bird {
        require("bird", "bird2");
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, config).unwrap();
        let check = Command::new(require("bird", "bird2"))
            .arg("-p")
            .arg("-c")
            .arg(&path)
            .status()
            .unwrap();
        assert!(check.success(), "bird -p refused {}", path.display());
        Bird {
            name,
            dir: dir.to_path_buf(),
            config: path,
            child: None,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join(format!("{}.ctl", self.name))
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", self.name)))
            .unwrap();
        let child = Command::new(require("bird", "bird2"))
            .arg("-c")
            .arg(&self.config)
            .arg("-s")
            .arg(self.socket())
            .arg("-P")
            .arg(self.dir.join(format!("{}.pid", self.name)))
            .arg("-f")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start bird");
        self.child = Some(child);
    }

    /// Waits until the control socket answers; returns when it first did.
    fn wait_ready(&self) -> Instant {
        let deadline = Instant::now() + LONG;
        loop {
            if let Ok(connection) = BirdClient::connect(&self.socket()) {
                drop(connection);
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "{} did not start", self.name);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            common::signal(child.id(), 15);
            let _ = child.wait();
        }
    }

    fn client(&self) -> BirdClient {
        BirdClient::connect(&self.socket()).expect("connect to bird")
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn driven_config(dir: &Path, port: u16, peer_port: u16) -> String {
    format!(
        r#"router id 127.0.0.1;
log "{dir}/driven.bird.log" all;
protocol device {{}}
protocol static oops_dns {{ disabled; ipv4; route {KEPT} blackhole; }}
protocol static oops_dns_strict {{ disabled; ipv4; route {STRICT} blackhole; }}
protocol bgp peer {{
  local 127.0.0.1 port {port} as 65000;
  neighbor 127.0.0.2 port {peer_port} as 65001;
  multihop; strict bind on;
  connect delay time 0; connect retry time 1; error wait time 1,2;
  ipv4 {{ import none; export where proto ~ "oops_*"; }};
}}
"#,
        dir = dir.display()
    )
}

fn peer_config(port: u16, driven_port: u16) -> String {
    format!(
        r#"router id 127.0.0.2;
protocol device {{}}
protocol bgp driven {{
  local 127.0.0.2 port {port} as 65001;
  neighbor 127.0.0.1 port {driven_port} as 65000;
  passive on; multihop; strict bind on;
  error wait time 1,2;
  ipv4 {{ import all; export none; }};
}}
"#
    )
}

/// The `/metrics` line of `series` (e.g. `dns_oops_anycast_driver_up{driver="bird"}`).
fn metric(http: u16, series: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut stream, &mut body).ok()?;
    body.lines()
        .find(|l| l.starts_with(series))
        .map(str::to_string)
}

fn dns_oops_config(dir: &Path, knot: &Knot, socket: &Path, http: u16) -> PathBuf {
    let text = format!(
        r#"{head}[[channel]]
type = "log"
[[driver]]
type = "bird"
socket = "{socket}"
[[anycast]]
name = "dns"
prefixes = ["{KEPT}"]
announce-when = "server-running(knot) and all-zones-ready(knot)"
hold-down = "1s"
on-shutdown = "keep"
[[anycast]]
name = "dns-strict"
prefixes = ["{STRICT}"]
announce-when = "server-running(knot) and all-zones-ready(knot)"
hold-down = "1s"
"#,
        head = common::knot_config_head(dir, knot, http, true),
        socket = socket.display(),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[test]
fn bird_announces_withdraws_and_recovers_at_a_real_peer() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (driven_port, peer_port) = (free_port(), free_port());
    let mut peer = Bird::new(dir, "peer", peer_config(peer_port, driven_port));
    let mut driven = Bird::new(dir, "driven", driven_config(dir, driven_port, peer_port));
    peer.start();
    peer.wait_ready();
    driven.start();
    driven.wait_ready();
    let mut at_peer = peer.client();
    until("eBGP session established", LONG, || {
        at_peer.established("driven")
    });
    assert!(!at_peer.has_route(KEPT), "announced before dns-oops runs");

    let knot_dir = dir.join("knot");
    let mut knot = Knot::new(&knot_dir, &ZONES);
    knot.start();
    let http = free_port();
    let config = dns_oops_config(dir, &knot, &driven.socket(), http);
    let mut daemon = Daemon::start(&config);
    let (_, ready) = daemon.wait_for("all-zones-ready met", LONG, |s| {
        s.condition == ConditionId::AllZonesReady && s.state == SignalState::Met
    });
    until("route at the peer", LONG, || at_peer.has_route(KEPT));
    let appeared = chrono::Utc::now();
    until("strict route at the peer", LONG, || {
        at_peer.has_route(STRICT)
    });
    eprintln!(
        "all-zones-ready signal → route at the peer: at most {}",
        ms((appeared - ready.time).to_std().unwrap_or_default())
    );

    // kill -9 of knotd: the route leaves the peer within 1 s; then knotd comes back and
    // the route with it (after the 1 s hold-down). Five rounds.
    let mut times = Vec::new();
    for _ in 0..5 {
        let killed = knot.kill9();
        let gone = until("route gone from the peer after kill -9", LONG, || {
            !at_peer.has_route(KEPT)
        });
        let took = gone - killed;
        eprintln!("kill -9 knotd → route gone from the peer: {}", ms(took));
        assert!(took < Duration::from_secs(1), "took {took:?}");
        times.push(took);
        knot.reap();
        knot.start();
        until("route back at the peer after knotd restart", LONG, || {
            at_peer.has_route(KEPT)
        });
    }
    times.sort();
    eprintln!(
        "kill -9 knotd → route gone from the peer, 5 rounds: median {}, max {}",
        ms(times[2]),
        ms(times[4])
    );

    // Restart of the driven BIRD: dns-oops re-enables the route within 1 s of its return.
    driven.stop();
    until("route gone from the peer while BIRD is down", LONG, || {
        !at_peer.has_route(KEPT)
    });
    let up = r#"dns_oops_anycast_driver_up{driver="bird"}"#;
    until("driver reported down in /metrics", LONG, || {
        metric(http, up).is_some_and(|l| l.ends_with(" 0"))
    });
    std::thread::sleep(Duration::from_millis(300));
    driven.start();
    let returned = driven.wait_ready();
    let mut at_driven = driven.client();
    let enabled = until("oops_dns re-enabled in the restarted BIRD", LONG, || {
        at_driven.protocol_up("oops_dns")
    });
    let reapplied = enabled.saturating_duration_since(returned);
    eprintln!(
        "BIRD back → route re-enabled by dns-oops: {}",
        ms(reapplied)
    );
    assert!(reapplied < Duration::from_secs(1), "took {reapplied:?}");
    let back_at_peer = until(
        "route back at the peer after the BIRD restart",
        LONG,
        || at_peer.has_route(KEPT),
    );
    eprintln!(
        "BIRD back → route at the peer again (BGP session included): {}",
        ms(back_at_peer.saturating_duration_since(returned))
    );
    until("driver reported up in /metrics", LONG, || {
        metric(http, up).is_some_and(|l| l.ends_with(" 1"))
    });
    assert_eq!(
        metric(http, r#"dns_oops_anycast_announced{policy="dns"}"#).as_deref(),
        Some(r#"dns_oops_anycast_announced{policy="dns"} 1"#)
    );
    until("strict route back at the peer", LONG, || {
        at_peer.has_route(STRICT)
    });

    // kill -9 of dns-oops and a start: nothing is withdrawn, nothing re-announced.
    let since_before = at_driven.command("show protocols \"oops_dns\"");
    let watch = Watch::start(peer.socket(), KEPT);
    daemon.kill9();
    let mut daemon = Daemon::start(&config);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        watch.finish(),
        0,
        "the route left the peer during a restart"
    );
    assert_eq!(
        at_driven.command("show protocols \"oops_dns\""),
        since_before,
        "the static protocol was switched during a restart of dns-oops"
    );
    assert!(at_peer.has_route(STRICT));

    // SIGTERM: the default policy withdraws, the `keep` one stays.
    let watch = Watch::start(peer.socket(), KEPT);
    daemon.terminate();
    until("strict route withdrawn on shutdown", LONG, || {
        !at_peer.has_route(STRICT)
    });
    let mut daemon = Daemon::start(&config);
    until("strict route back after the start", LONG, || {
        at_peer.has_route(STRICT)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(watch.finish(), 0, "the kept route left the peer");
    assert_eq!(
        at_driven.command("show protocols \"oops_dns\""),
        since_before,
        "the kept static protocol was switched"
    );
    daemon.terminate();
    drop(daemon);
    driven.stop();
    peer.stop();
}

/// The AS path of `prefix` in the table, e.g. `65000 65000 65000`.
fn as_path(client: &mut BirdClient, prefix: &str) -> Option<String> {
    let reply = client.command(&format!("show route for {prefix} all"));
    reply.lines().find_map(|l| {
        l.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-')
            .trim()
            .strip_prefix("BGP.as_path:")
            .map(|p| p.trim().to_string())
    })
}

#[test]
fn prepend_when_lengthens_the_as_path_at_the_peer() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (driven_port, peer_port) = (free_port(), free_port());
    let mut peer = Bird::new(dir, "peer", peer_config(peer_port, driven_port));
    let driven_conf = format!(
        r#"router id 127.0.0.1;
protocol device {{}}
protocol static oops_dns {{ disabled; ipv4; route {KEPT} blackhole; }}
protocol static oops_dns_prepend {{
  disabled; ipv4;
  route {KEPT} blackhole {{ bgp_path.prepend(65000); bgp_path.prepend(65000); }};
}}
protocol bgp peer {{
  local 127.0.0.1 port {driven_port} as 65000;
  neighbor 127.0.0.2 port {peer_port} as 65001;
  multihop; strict bind on;
  connect delay time 0; connect retry time 1; error wait time 1,2;
  ipv4 {{ import none; export where proto ~ "oops_*"; }};
}}
"#
    );
    let mut driven = Bird::new(dir, "driven", driven_conf);
    peer.start();
    peer.wait_ready();
    driven.start();
    driven.wait_ready();
    let mut at_peer = peer.client();
    until("eBGP session established", LONG, || {
        at_peer.established("driven")
    });

    // c.test cannot be loaded: knot runs, but not every zone is ready.
    let mut knot = Knot::new(&dir.join("knot"), &ZONES);
    std::fs::write(knot.dir.join("zones/c.test.zone"), "this is not a zone\n").unwrap();
    knot.start();
    let http = free_port();
    let config = dir.join("dns-oops.toml");
    std::fs::write(
        &config,
        format!(
            r#"{head_noproc}[[channel]]
type = "log"
[[driver]]
type = "bird"
socket = "{socket}"
[[anycast]]
name = "dns"
prefixes = ["{KEPT}"]
announce-when = "server-running(knot) and zone-ready(knot, a.test)"
prepend-when = "not all-zones-ready(knot)"
prepend = 2
hold-down = "0s"
"#,
            head_noproc = common::knot_config_head(dir, &knot, http, false),
            socket = driven.socket().display(),
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);
    until("prepended route at the peer", LONG, || {
        as_path(&mut at_peer, KEPT).as_deref() == Some("65000 65000 65000")
    });
    let mut at_driven = driven.client();
    assert!(at_driven.protocol_up("oops_dns_prepend"));
    assert!(!at_driven.protocol_up("oops_dns"));

    // c.test loads: every zone is ready, the path is back to one AS.
    knot.write_zone("c.test", 2);
    knot.knotc(&["zone-reload", "c.test"]);
    daemon.wait_for("all-zones-ready met", LONG, |s| {
        s.condition == ConditionId::AllZonesReady && s.state == SignalState::Met
    });
    until("plain route at the peer", LONG, || {
        as_path(&mut at_peer, KEPT).as_deref() == Some("65000")
    });
    assert!(at_driven.protocol_up("oops_dns"));
    assert!(!at_driven.protocol_up("oops_dns_prepend"));
    daemon.terminate();
    until("withdrawn on shutdown", LONG, || !at_peer.has_route(KEPT));
    driven.stop();
    peer.stop();
}

#[test]
fn drain_withdraws_at_the_peer_before_it_returns_and_holds_until_undrain() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (driven_port, peer_port) = (free_port(), free_port());
    let mut peer = Bird::new(dir, "peer", peer_config(peer_port, driven_port));
    let mut driven = Bird::new(dir, "driven", driven_config(dir, driven_port, peer_port));
    peer.start();
    peer.wait_ready();
    driven.start();
    driven.wait_ready();
    let mut at_peer = peer.client();
    until("eBGP session established", LONG, || {
        at_peer.established("driven")
    });
    let mut knot = Knot::new(&dir.join("knot"), &ZONES);
    knot.start();
    let http = free_port();
    let config = dir.join("dns-oops.toml");
    std::fs::write(
        &config,
        format!(
            r#"{head}[[channel]]
type = "log"
[[driver]]
type = "bird"
socket = "{socket}"
[[anycast]]
name = "dns"
prefixes = ["{KEPT}"]
announce-when = "server-running(knot) and all-zones-ready(knot)"
hold-down = "0s"
drain-grace = "1s"
"#,
            head = common::knot_config_head(dir, &knot, http, true),
            socket = driven.socket().display(),
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);
    until("route at the peer", LONG, || at_peer.has_route(KEPT));

    // drain returns after the withdraw is confirmed and the grace has passed: the route
    // is gone from the peer at that moment, not some time later.
    let started = Instant::now();
    let (ok, out, err) = common::dns_oops_cli(http, &["drain", "knot", "--reason", "maintenance"]);
    let took = started.elapsed();
    assert!(ok, "drain failed: {err}");
    assert!(
        !at_peer.has_route(KEPT),
        "drain returned while the peer still had the route"
    );
    assert!(
        took >= Duration::from_secs(1),
        "returned before the grace: {took:?}"
    );
    assert!(out.starts_with("knot: drained; withdrawn: dns"), "{out}");
    eprintln!("dns-oops drain knot: {} ({})", ms(took), out.trim());
    let (_, drained) = daemon.wait_for("server-stopping met", LONG, |s| {
        s.condition == ConditionId::ServerStopping && s.state == SignalState::Met
    });
    assert_eq!(drained.source, "drain");
    assert_eq!(drained.args["reason"], "maintenance");
    // The server still runs: the drain withdrew the route, not the server.
    let (_, status, _) = common::dns_oops_cli(http, &["status", "--json"]);
    assert!(status.contains("\"server-running\""), "{status}");

    // A restart of dns-oops keeps the drain: the route stays away.
    daemon.kill9();
    let mut daemon = Daemon::start(&config);
    until("the restarted API answers", LONG, || {
        common::dns_oops_cli(http, &["status"]).0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!at_peer.has_route(KEPT), "a restart undid the drain");

    // undrain: the route comes back.
    let (ok, out, err) = common::dns_oops_cli(http, &["undrain", "knot"]);
    assert!(ok, "undrain failed: {err}");
    assert!(out.contains("knot: undrained"), "{out}");
    until("route back at the peer after undrain", LONG, || {
        at_peer.has_route(KEPT)
    });

    // Mistakes are explained.
    let (ok, _, err) = common::dns_oops_cli(http, &["drain", "nsd"]);
    assert!(!ok);
    assert!(
        err.contains("no server `nsd`") && err.contains("`knot`"),
        "{err}"
    );
    daemon.terminate();
    let (ok, _, err) = common::dns_oops_cli(http, &["drain", "knot"]);
    assert!(!ok);
    assert!(err.contains("cannot reach dns-oops"), "{err}");
    driven.stop();
    peer.stop();
}
