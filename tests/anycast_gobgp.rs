//! The `gobgp` driver end to end with real daemons on loopback (Debian packages `knot`,
//! `gobgpd` and `bird2`): knotd ← dns-oops → gRPC → gobgpd (AS 65002, 127.0.0.3 and ::1) ⇄
//! eBGP ⇄ BIRD "peer" (AS 65000, 127.0.0.1 and ::1), whose routing tables the test reads
//! through BIRD's control socket. IPv6 has a session of its own over ::1 (over the IPv4
//! session gobgpd would send an IPv4 next hop, which BIRD ignores). gobgpd's own table is
//! read with the `gobgp` CLI.
//!
//! Asserted: an IPv4 and an IPv6 route appear at the peer once knotd has every zone ready;
//! they are gone from the peer within 1 s of kill -9 of knotd; after a restart of gobgpd,
//! dns-oops adds the paths again within 1 s of gobgpd's return; a kill -9 and a start of
//! dns-oops leave the route at the peer and the path in gobgpd untouched; SIGTERM
//! withdraws; the shipped `ExecStopPost` withdraws after an abnormal end of dns-oops only;
//! while `prepend-when` holds the AS path at the peer is longer by `prepend`; `dns-oops
//! drain` returns when the route has left the peer.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::bird::{BirdPeer, Watch, until};
use common::{Daemon, Knot, free_port, require};
use dns_oops::condition::ConditionId;
use dns_oops::signal::SignalState;

const ZONES: [&str; 3] = ["a.test", "b.test", "c.test"];
const V4: &str = "192.0.2.53/32";
const V6: &str = "2001:db8::53/128";
const LONG: Duration = Duration::from_secs(20);

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The BGP peer: BIRD, AS 65000 on 127.0.0.1, connecting to gobgpd.
fn start_peer(dir: &Path, port: u16, gobgp_port: u16) -> BirdPeer {
    BirdPeer::start(
        dir,
        &format!(
            r#"router id 127.0.0.1;
protocol device {{}}
protocol bgp gobgp {{
  local 127.0.0.1 port {port} as 65000;
  neighbor 127.0.0.3 port {gobgp_port} as 65002;
  multihop; strict bind on;
  connect delay time 0; connect retry time 1; error wait time 1,2;
  ipv4 {{ import all; export none; }};
}}
protocol bgp gobgp6 {{
  local ::1 port {port} as 65000;
  neighbor ::1 port {gobgp_port} as 65002;
  multihop; strict bind on;
  connect delay time 0; connect retry time 1; error wait time 1,2;
  ipv6 {{ import all; export none; }};
}}
"#
        ),
    )
}

/// gobgpd in the foreground: BGP on 127.0.0.3:`port` (passive towards the peer), gRPC on
/// 127.0.0.1:`api`.
struct Gobgpd {
    dir: PathBuf,
    config: PathBuf,
    api: u16,
    child: Option<Child>,
}

impl Gobgpd {
    fn new(dir: &Path, port: u16, api: u16, peer_port: u16) -> Gobgpd {
        let config = dir.join("gobgpd.toml");
        std::fs::write(
            &config,
            format!(
                r#"[global.config]
  as = 65002
  router-id = "127.0.0.3"
  port = {port}
  local-address-list = ["127.0.0.3", "::1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.1"
    peer-as = 65000
  [neighbors.transport.config]
    local-address = "127.0.0.3"
    remote-port = {peer_port}
    passive-mode = true
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 2
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "::1"
    peer-as = 65000
  [neighbors.transport.config]
    local-address = "::1"
    remote-port = {peer_port}
    passive-mode = true
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 2
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#
            ),
        )
        .unwrap();
        let check = Command::new(require("gobgpd", "gobgpd"))
            .arg("-f")
            .arg(&config)
            .arg("-d")
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "gobgpd -d refused {}: {}",
            config.display(),
            String::from_utf8_lossy(&check.stdout)
        );
        Gobgpd {
            dir: dir.to_path_buf(),
            config,
            api,
            child: None,
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("gobgpd.log"))
            .unwrap();
        let child = Command::new(require("gobgpd", "gobgpd"))
            .arg("-f")
            .arg(&self.config)
            .arg("-p")
            .arg(format!("--api-hosts=127.0.0.1:{}", self.api))
            .arg("--pprof-disable")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start gobgpd");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            common::signal(child.id(), 15);
            let _ = child.wait();
        }
    }

    /// `gobgp -u 127.0.0.1 -p <api> <args>`: (success, stdout).
    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(require("gobgp", "gobgpd"))
            .arg("-u")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.api.to_string())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Whether gobgpd answers and has loaded its config (its global AS is set).
    fn ready(&self) -> bool {
        let (ok, out) = self.cli(&["global"]);
        ok && out.contains("65002")
    }

    /// gobgpd's global table of `family` as JSON text (`gobgp global rib -j`).
    fn rib(&self, family: &str) -> String {
        self.cli(&["global", "rib", "-a", family, "-j"]).1
    }
}

impl Drop for Gobgpd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// BIRD peer, gobgpd, both up, the session established.
fn bgp(dir: &Path) -> (BirdPeer, Gobgpd) {
    let (gobgp_port, peer_port, api) = (free_port(), free_port(), free_port());
    let mut gobgpd = Gobgpd::new(dir, gobgp_port, api, peer_port);
    gobgpd.start();
    until("gobgpd ready", LONG, || gobgpd.ready());
    let peer = start_peer(dir, peer_port, gobgp_port);
    let mut at_peer = peer.client();
    until("eBGP sessions established", LONG, || {
        at_peer.established("gobgp") && at_peer.established("gobgp6")
    });
    (peer, gobgpd)
}

fn dns_oops_config(dir: &Path, knot: &Knot, http: u16, api: u16, policy: &str) -> PathBuf {
    let text = format!(
        r#"{head}[[channel]]
type = "log"
[[driver]]
type = "gobgp"
api = "127.0.0.1:{api}"
communities = ["65002:53"]
timeout = "1s"
{policy}"#,
        head = common::knot_config_head(dir, knot, http, true),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `ExecStopPost=` line of the shipped systemd drop-in, with the example's API address
/// replaced by `api`.
fn exec_stop_post(api: u16) -> String {
    let dropin = include_str!("../etc/examples/gobgp/dns-oops-gobgp.conf");
    let line = dropin
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStopPost="))
        .find(|l| !l.is_empty())
        .expect("an ExecStopPost= line");
    line.replace("-p 50051", &format!("-p {api}"))
}

/// Runs the drop-in's command as systemd would (`/bin/sh -c`, `$SERVICE_RESULT` set).
fn run_stop_post(command: &str, result: &str) {
    // systemd passes the line to its own parser; the example runs `/bin/sh -c '…'`.
    let script = command
        .strip_prefix("/bin/sh -c '")
        .and_then(|s| s.strip_suffix('\''))
        .expect("ExecStopPost=/bin/sh -c '…'");
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .env("SERVICE_RESULT", result)
        .status()
        .unwrap();
    assert!(status.success(), "ExecStopPost failed with {result}");
}

#[test]
fn gobgp_announces_withdraws_and_recovers_at_a_real_peer() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (peer, mut gobgpd) = bgp(dir);
    let mut at_peer = peer.client();
    assert!(!at_peer.has_route(V4), "announced before dns-oops runs");

    let mut knot = Knot::new(&dir.join("knot"), &ZONES);
    knot.start();
    let http = free_port();
    let config = dns_oops_config(
        dir,
        &knot,
        http,
        gobgpd.api,
        &format!(
            r#"[[anycast]]
name = "dns"
prefixes = ["{V4}", "{V6}"]
announce-when = "server-running(knot) and all-zones-ready(knot)"
hold-down = "1s"
"#
        ),
    );
    let mut daemon = Daemon::start(&config);
    let (_, ready) = daemon.wait_for("all-zones-ready met", LONG, |s| {
        s.condition == ConditionId::AllZonesReady && s.state == SignalState::Met
    });
    until("IPv4 route at the peer", LONG, || at_peer.has_route(V4));
    let appeared = chrono::Utc::now();
    until("IPv6 route at the peer", LONG, || at_peer.has_route(V6));
    eprintln!(
        "all-zones-ready signal → route at the peer: at most {}",
        ms((appeared - ready.time).to_std().unwrap_or_default())
    );
    let attributes = at_peer.command(&format!("show route for {V4} all"));
    assert!(
        attributes.contains("BGP.community: (65002,53)") && attributes.contains("BGP.origin: IGP"),
        "{attributes}"
    );
    assert_eq!(at_peer.as_path(V4).as_deref(), Some("65002"));

    // kill -9 of knotd: both routes leave the peer within 1 s; knotd comes back, so do they.
    let mut times = Vec::new();
    for _ in 0..3 {
        let killed = knot.kill9();
        let gone = until("routes gone from the peer after kill -9", LONG, || {
            !at_peer.has_route(V4) && !at_peer.has_route(V6)
        });
        let took = gone - killed;
        eprintln!("kill -9 knotd → routes gone from the peer: {}", ms(took));
        assert!(took < Duration::from_secs(1), "took {took:?}");
        times.push(took);
        knot.reap();
        knot.start();
        until("route back at the peer after knotd restart", LONG, || {
            at_peer.has_route(V4) && at_peer.has_route(V6)
        });
    }
    times.sort();
    eprintln!(
        "kill -9 knotd → routes gone from the peer, 3 rounds: median {}, max {}",
        ms(times[1]),
        ms(times[2])
    );

    // Restart of gobgpd: it forgets the paths; dns-oops adds them again within 1 s.
    gobgpd.stop();
    until(
        "route gone from the peer while gobgpd is down",
        LONG,
        || !at_peer.has_route(V4),
    );
    std::thread::sleep(Duration::from_millis(300));
    gobgpd.start();
    let returned = until("gobgpd back", LONG, || gobgpd.ready());
    let added = until("paths added again to the restarted gobgpd", LONG, || {
        gobgpd.rib("ipv4").contains(V4) && gobgpd.rib("ipv6").contains(V6)
    });
    let took = added.saturating_duration_since(returned);
    eprintln!("gobgpd back → paths added again by dns-oops: {}", ms(took));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let back = until(
        "route back at the peer after the gobgpd restart",
        LONG,
        || at_peer.has_route(V4) && at_peer.has_route(V6),
    );
    eprintln!(
        "gobgpd back → route at the peer again (BGP session included): {}",
        ms(back.saturating_duration_since(returned))
    );

    // kill -9 of dns-oops and a start: nothing withdrawn, nothing added again (the path's
    // age in gobgpd stays).
    let before = gobgpd.rib("ipv4");
    let watch = Watch::start(peer.socket.clone(), V4);
    daemon.kill9();
    let mut daemon = Daemon::start(&config);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        watch.finish(),
        0,
        "the route left the peer during a restart"
    );
    assert_eq!(
        gobgpd.rib("ipv4"),
        before,
        "the path was replaced during a restart of dns-oops"
    );
    assert!(at_peer.has_route(V6));

    // SIGTERM: on-shutdown = "withdraw" (the default).
    daemon.terminate();
    until("withdrawn on shutdown", LONG, || {
        !at_peer.has_route(V4) && !at_peer.has_route(V6)
    });

    // Death of dns-oops: the shipped ExecStopPost withdraws, but only after an abnormal end.
    let mut daemon = Daemon::start(&config);
    until("route back after the start", LONG, || {
        at_peer.has_route(V4) && at_peer.has_route(V6)
    });
    daemon.kill9();
    let command = exec_stop_post(gobgpd.api);
    run_stop_post(&command, "success");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        at_peer.has_route(V4),
        "ExecStopPost withdrew after a clean stop"
    );
    let died = Instant::now();
    run_stop_post(&command, "signal");
    let gone = until("withdrawn by ExecStopPost", LONG, || {
        !at_peer.has_route(V4) && !at_peer.has_route(V6)
    });
    eprintln!(
        "dns-oops killed → ExecStopPost → routes gone from the peer: {}",
        ms(gone - died)
    );

    // A path left in gobgpd (added by hand here) while knotd is down: the next start
    // reads it from gobgpd and withdraws it.
    gobgpd.cli(&["global", "rib", "add", V4, "-a", "ipv4", "origin", "igp"]);
    until("stale path at the peer", LONG, || at_peer.has_route(V4));
    knot.kill9();
    knot.reap();
    let mut daemon = Daemon::start(&config);
    until("stale path withdrawn at start", LONG, || {
        !at_peer.has_route(V4)
    });
    daemon.terminate();
    gobgpd.stop();
}

#[test]
fn gobgp_prepends_while_prepend_when_holds_and_drain_withdraws() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (peer, mut gobgpd) = bgp(dir);
    let mut at_peer = peer.client();

    // c.test cannot be loaded: knot runs, but not every zone is ready.
    let mut knot = Knot::new(&dir.join("knot"), &ZONES);
    std::fs::write(knot.dir.join("zones/c.test.zone"), "this is not a zone\n").unwrap();
    knot.start();
    let http = free_port();
    let config = dns_oops_config(
        dir,
        &knot,
        http,
        gobgpd.api,
        &format!(
            r#"[[anycast]]
name = "dns"
prefixes = ["{V4}", "{V6}"]
announce-when = "server-running(knot) and zone-ready(knot, a.test)"
prepend-when = "not all-zones-ready(knot)"
prepend = 2
hold-down = "0s"
drain-grace = "1s"
"#
        ),
    );
    let mut daemon = Daemon::start(&config);
    until("prepended routes at the peer", LONG, || {
        at_peer.as_path(V4).as_deref() == Some("65002 65002 65002")
            && at_peer.as_path(V6).as_deref() == Some("65002 65002 65002")
    });

    // c.test loads: every zone is ready, the path is back to one AS, with no withdraw
    // in between (the path is replaced).
    let watch = Watch::start(peer.socket.clone(), V4);
    knot.write_zone("c.test", 2);
    knot.knotc(&["zone-reload", "c.test"]);
    daemon.wait_for("all-zones-ready met", LONG, |s| {
        s.condition == ConditionId::AllZonesReady && s.state == SignalState::Met
    });
    until("plain routes at the peer", LONG, || {
        at_peer.as_path(V4).as_deref() == Some("65002")
            && at_peer.as_path(V6).as_deref() == Some("65002")
    });
    assert_eq!(watch.finish(), 0, "the route left the peer while re-pathed");

    // drain returns once the withdraw is done and the grace has passed.
    let started = Instant::now();
    let (ok, out, err) = common::dns_oops_cli(http, &["drain", "knot", "--reason", "maintenance"]);
    let took = started.elapsed();
    assert!(ok, "drain failed: {err}");
    assert!(
        !at_peer.has_route(V4) && !at_peer.has_route(V6),
        "drain returned while the peer still had the route"
    );
    assert!(
        took >= Duration::from_secs(1),
        "returned before the grace: {took:?}"
    );
    eprintln!("dns-oops drain knot: {} ({})", ms(took), out.trim());
    let (ok, _, err) = common::dns_oops_cli(http, &["undrain", "knot"]);
    assert!(ok, "undrain failed: {err}");
    until("route back at the peer after undrain", LONG, || {
        at_peer.has_route(V4)
    });
    daemon.terminate();
    gobgpd.stop();
}
