//! The `frr` driver end to end with real daemons on loopback (Debian packages `knot`, `frr`
//! and `bird2`): knotd ← dns-oops → vtysh → FRR bgpd (AS 65003, 127.0.0.4 and ::1; run
//! without zebra, `-Z`, with its vty socket in the test's directory) ⇄ eBGP ⇄ BIRD "peer"
//! (AS 65000, 127.0.0.1 and ::1), whose routing tables the test reads through BIRD's
//! control socket. IPv6 has a session of its own over ::1.
//!
//! Asserted: an IPv4 and an IPv6 route appear at the peer once knotd has every zone ready;
//! they are gone from the peer within 1 s of kill -9 of knotd; after a restart of bgpd,
//! dns-oops configures the `network`s again within 1 s of bgpd's return; a kill -9 and a
//! start of dns-oops leave the route at the peer; SIGTERM withdraws; the shipped
//! `ExecStopPost` withdraws after an abnormal end of dns-oops only; while `prepend-when`
//! holds the AS path at the peer is longer by `prepend`; `dns-oops drain` returns when the
//! route has left the peer.
//!
//! The peer runs with `graceful restart off`: bgpd announces the graceful-restart
//! capability, and a GR-aware BIRD would keep its routes as stale while bgpd restarts.

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

/// The BGP peer: BIRD, AS 65000 on 127.0.0.1 and ::1, connecting to bgpd.
fn start_peer(dir: &Path, port: u16, bgpd_port: u16) -> BirdPeer {
    BirdPeer::start(
        dir,
        &format!(
            r#"router id 127.0.0.1;
protocol device {{}}
protocol bgp frr {{
  local 127.0.0.1 port {port} as 65000;
  neighbor 127.0.0.4 port {bgpd_port} as 65003;
  multihop; strict bind on; graceful restart off;
  connect delay time 0; connect retry time 1; error wait time 1,2;
  ipv4 {{ import all; export none; }};
}}
protocol bgp frr6 {{
  local ::1 port {port} as 65000;
  neighbor ::1 port {bgpd_port} as 65003;
  multihop; strict bind on; graceful restart off;
  connect delay time 0; connect retry time 1; error wait time 1,2;
  ipv6 {{ import all; export none; }};
}}
"#
        ),
    )
}

/// FRR's bgpd in the foreground, without zebra: BGP on 127.0.0.4 and ::1 port `port`
/// (passive towards the peer), its vty socket in `dir`.
struct Bgpd {
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// bgpd's config.
const BGPD_CONF: &str = r#"frr defaults traditional
hostname oops-frr
!
router bgp 65003
 bgp router-id 127.0.0.4
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 127.0.0.1 remote-as 65000
 neighbor 127.0.0.1 passive
 neighbor 127.0.0.1 ebgp-multihop 2
 neighbor ::1 remote-as 65000
 neighbor ::1 passive
 neighbor ::1 ebgp-multihop 2
 !
 address-family ipv4 unicast
  no neighbor ::1 activate
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor ::1 activate
 exit-address-family
!
"#;

impl Bgpd {
    fn new(dir: &Path, port: u16) -> Bgpd {
        let config = dir.join("bgpd.conf");
        std::fs::write(&config, BGPD_CONF).unwrap();
        Bgpd {
            dir: dir.to_path_buf(),
            config,
            port,
            child: None,
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("bgpd.log"))
            .unwrap();
        let child = Command::new(require_frr("bgpd"))
            .arg("-Z")
            .arg("-S")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-l")
            .arg("127.0.0.4")
            .arg("-l")
            .arg("::1")
            .arg("-f")
            .arg(&self.config)
            .arg("--vty_socket")
            .arg(&self.dir)
            .arg("-i")
            .arg(self.dir.join("bgpd.pid"))
            .arg("-P")
            .arg("0")
            .arg("--log")
            .arg("stdout")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start bgpd");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            common::signal(child.id(), 15);
            let _ = child.wait();
        }
    }

    /// `vtysh --vty_socket <dir> -c …`: (success, stdout).
    fn vtysh(&self, commands: &[&str]) -> (bool, String) {
        let mut command = Command::new(require("vtysh", "frr"));
        command.arg("--vty_socket").arg(&self.dir);
        for c in commands {
            command.arg("-c").arg(c);
        }
        let out = command.output().unwrap();
        (
            out.status.success() && out.stderr.is_empty(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Whether bgpd answers and has read its config.
    fn ready(&self) -> bool {
        let (ok, out) = self.vtysh(&["show bgp detail json"]);
        ok && out.contains("\"localAS\": 65003")
    }

    /// Whether bgpd announces `prefix` from a `network` statement.
    fn sources(&self, prefix: &str) -> bool {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let (ok, out) = self.vtysh(&[&format!("show bgp {family} unicast {prefix} json")]);
        ok && out.contains("\"sourced\":true")
    }
}

impl Drop for Bgpd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An FRR daemon, in /usr/lib/frr (not on PATH).
fn require_frr(daemon: &str) -> PathBuf {
    let path = Path::new("/usr/lib/frr").join(daemon);
    assert!(
        path.exists(),
        "`{}` is not installed: install the Debian package `frr` \
         (scripts/test installs every package the tests need)",
        path.display()
    );
    path
}

/// BIRD peer and bgpd, both up, the sessions established.
fn bgp(dir: &Path) -> (BirdPeer, Bgpd) {
    let (bgpd_port, peer_port) = (free_port(), free_port());
    let mut bgpd = Bgpd::new(dir, bgpd_port);
    let started = Instant::now();
    bgpd.start();
    until("bgpd ready", LONG, || bgpd.ready());
    eprintln!("bgpd start → vtysh answers: {}", ms(started.elapsed()));
    let peer = start_peer(dir, peer_port, bgpd_port);
    let mut at_peer = peer.client();
    until("eBGP sessions established", LONG, || {
        at_peer.established("frr") && at_peer.established("frr6")
    });
    (peer, bgpd)
}

fn dns_oops_config(dir: &Path, knot: &Knot, http: u16, policy: &str) -> PathBuf {
    let text = format!(
        r#"{head}[[channel]]
type = "log"
[[driver]]
type = "frr"
vty-socket = "{dir}"
{policy}"#,
        head = common::knot_config_head(dir, knot, http, true),
        dir = dir.display(),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `ExecStopPost=` line of the shipped systemd drop-in, for bgpd's vty sockets in `dir`.
fn exec_stop_post(dir: &Path) -> String {
    let dropin = include_str!("../etc/examples/frr/dns-oops-frr.conf");
    let line = dropin
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStopPost="))
        .find(|l| !l.is_empty())
        .expect("an ExecStopPost= line");
    line.replace(
        "/usr/bin/vtysh",
        &format!("/usr/bin/vtysh --vty_socket {}", dir.display()),
    )
}

/// Runs the drop-in's command as systemd would (`/bin/sh -c`, `$SERVICE_RESULT` set).
fn run_stop_post(command: &str, result: &str) {
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

/// bgpd's path for `prefix` as JSON, without `lastUpdate`: that time was seen to move by a
/// second between two reads of a path nobody touched (dns-oops's log showed nothing sent).
/// A path that is re-configured gets a new `version`, which stays compared.
fn path_state(bgpd: &Bgpd, prefix: &str) -> String {
    let json = bgpd
        .vtysh(&[&format!("show bgp ipv4 unicast {prefix} json")])
        .1;
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in json.lines() {
        if line.trim_start().starts_with("\"lastUpdate\"") {
            skipping = !line.trim_end().ends_with("},");
            continue;
        }
        if skipping {
            skipping = !line.trim_start().starts_with('}');
            continue;
        }
        kept.push(line);
    }
    kept.join("\n")
}

#[test]
fn frr_announces_withdraws_and_recovers_at_a_real_peer() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (peer, mut bgpd) = bgp(dir);
    let mut at_peer = peer.client();
    assert!(!at_peer.has_route(V4), "announced before dns-oops runs");

    let mut knot = Knot::new(&dir.join("knot"), &ZONES);
    knot.start();
    let http = free_port();
    let config = dns_oops_config(
        dir,
        &knot,
        http,
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
    assert_eq!(at_peer.as_path(V4).as_deref(), Some("65003"));
    let attributes = at_peer.command(&format!("show route for {V4} all"));
    assert!(attributes.contains("BGP.origin: IGP"), "{attributes}");

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

    // Restart of bgpd: the `network`s added at run time are gone with it; dns-oops adds
    // them again within 1 s of its return.
    bgpd.stop();
    until("route gone from the peer while bgpd is down", LONG, || {
        !at_peer.has_route(V4)
    });
    std::thread::sleep(Duration::from_millis(300));
    bgpd.start();
    let returned = until("bgpd back", LONG, || bgpd.ready());
    let added = until(
        "networks configured again in the restarted bgpd",
        LONG,
        || bgpd.sources(V4) && bgpd.sources(V6),
    );
    let took = added.saturating_duration_since(returned);
    eprintln!(
        "bgpd back → networks configured again by dns-oops: {}",
        ms(took)
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let back = until(
        "route back at the peer after the bgpd restart",
        LONG,
        || at_peer.has_route(V4) && at_peer.has_route(V6),
    );
    eprintln!(
        "bgpd back → route at the peer again (BGP session included): {}",
        ms(back.saturating_duration_since(returned))
    );

    // kill -9 of dns-oops and a start: nothing withdrawn, nothing re-configured.
    let before = path_state(&bgpd, V4);
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
        path_state(&bgpd, V4),
        before,
        "the network was re-configured during a restart of dns-oops"
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
    let command = exec_stop_post(dir);
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

    // A `network` left in bgpd (added by hand here) while knotd is down: the next start
    // reads it from bgpd and withdraws it.
    bgpd.vtysh(&[
        "configure terminal",
        "router bgp 65003",
        "address-family ipv4 unicast",
        &format!("network {V4}"),
    ]);
    until("stale route at the peer", LONG, || at_peer.has_route(V4));
    knot.kill9();
    knot.reap();
    let mut daemon = Daemon::start(&config);
    until("stale network withdrawn at start", LONG, || {
        !at_peer.has_route(V4)
    });
    daemon.terminate();
    bgpd.stop();
}

#[test]
fn frr_prepends_while_prepend_when_holds_and_drain_withdraws() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (peer, mut bgpd) = bgp(dir);
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
        at_peer.as_path(V4).as_deref() == Some("65003 65003 65003")
            && at_peer.as_path(V6).as_deref() == Some("65003 65003 65003")
    });

    // c.test loads: every zone is ready, the path is back to one AS, with no withdraw
    // in between (the route-map of the `network` is replaced).
    let watch = Watch::start(peer.socket.clone(), V4);
    knot.write_zone("c.test", 2);
    knot.knotc(&["zone-reload", "c.test"]);
    daemon.wait_for("all-zones-ready met", LONG, |s| {
        s.condition == ConditionId::AllZonesReady && s.state == SignalState::Met
    });
    until("plain routes at the peer", LONG, || {
        at_peer.as_path(V4).as_deref() == Some("65003")
            && at_peer.as_path(V6).as_deref() == Some("65003")
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
    bgpd.stop();
}
