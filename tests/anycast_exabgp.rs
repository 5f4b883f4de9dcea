//! The `exabgp` driver end to end with real daemons on loopback (Debian packages `knot`,
//! `exabgp` and `bird2`): knotd ← dns-oops, run by ExaBGP as its API process → ExaBGP
//! (AS 65001, 127.0.0.2) ⇄ eBGP ⇄ BIRD "peer" (AS 65000, 127.0.0.1), whose routing table
//! the test reads through BIRD's control socket.
//!
//! Asserted: the route appears at the peer once knotd has every zone ready; it is gone from
//! the peer within 1 s of kill -9 of knotd (five rounds); a kill -9 of dns-oops leaves the
//! route at the peer and ExaBGP's respawned dns-oops withdraws it at the next failure; while
//! `prepend-when` holds, the AS path at the peer is longer; `dns-oops drain` returns only
//! when the route has left the peer; when ExaBGP stops, dns-oops stops with it, and when
//! ExaBGP comes back the route is back at the peer within 1 s of the session.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bird::{BirdPeer, until};
use common::{Knot, free_port, require};

const ZONES: [&str; 3] = ["a.test", "b.test", "c.test"];
const PREFIX: &str = "192.0.2.53/32";
const LONG: Duration = Duration::from_secs(15);

/// Like [`until`], false on timeout.
fn until_or_timeout(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The BGP peer: BIRD, passive, AS 65000 on 127.0.0.1.
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

/// ExaBGP in the foreground, running dns-oops as its API process.
struct Exabgp {
    child: Option<Child>,
    log: PathBuf,
}

impl Exabgp {
    fn start(dir: &Path, port: u16, dns_oops_config: &Path) -> Exabgp {
        let exabgp = require("exabgp", "exabgp");
        let config = dir.join("exabgp.conf");
        std::fs::write(
            &config,
            format!(
                r#"process oops {{
  run {bin} run --config {cfg};
  encoder text;
}}
neighbor 127.0.0.1 {{
  router-id 127.0.0.2;
  local-address 127.0.0.2;
  local-as 65001;
  peer-as 65000;
  api {{ processes [ oops ]; }}
}}
"#,
                bin = env!("CARGO_BIN_EXE_dns-oops"),
                cfg = dns_oops_config.display(),
            ),
        )
        .unwrap();
        let log = dir.join("exabgp.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(exabgp)
            .arg(&config)
            .env("exabgp.tcp.port", port.to_string())
            .env("exabgp.api.cli", "false")
            .env("exabgp.daemon.daemonize", "false")
            // ExaBGP started as root drops to `exabgp.daemon.user` after starting its processes:
            // a respawned dns-oops would run as `exabgp` and not reach the 0700 scratch dir.
            .env("exabgp.daemon.user", "root")
            .env("exabgp.log.destination", "stdout")
            .env("DNS_OOPS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start exabgp");
        Exabgp {
            child: Some(child),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The API processes ExaBGP runs (its direct children).
    fn children(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let tasks = format!("/proc/{}/task", self.pid());
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        out
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            common::signal(child.id(), 15);
            let _ = child.wait();
        }
    }
}

impl Drop for Exabgp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- ExaBGP and dns-oops log ---\n{log}");
        }
    }
}

/// The config and the daemon's HTTP port.
fn dns_oops_config(dir: &Path, knot: &Knot, policy_extra: &str) -> (PathBuf, u16) {
    let http = free_port();
    let text = format!(
        r#"{head}[[channel]]
type = "log"
path = "{dir}/signals.log"
[[driver]]
type = "exabgp"
local-as = 65001
timeout = "2s"
[[anycast]]
name = "dns"
prefixes = ["{PREFIX}"]
hold-down = "1s"
{policy_extra}
"#,
        head = common::knot_config_head(dir, knot, http, true),
        dir = dir.display(),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    (path, http)
}

#[test]
fn exabgp_announces_and_withdraws_at_a_real_peer() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let port = free_port();
    let peer = start_peer(dir, port);
    let mut at_peer = peer.client();

    let mut knot = Knot::new(&dir.join("knot"), &ZONES);
    knot.start();
    let (config, http) = dns_oops_config(
        dir,
        &knot,
        r#"announce-when = "server-running(knot) and all-zones-ready(knot)"
drain-grace = "500ms""#,
    );
    let started = Instant::now();
    let mut exabgp = Exabgp::start(dir, port, &config);
    until("eBGP session established", LONG, || {
        at_peer.established("exa")
    });
    let appeared = until("route at the peer", LONG, || at_peer.has_route(PREFIX));
    eprintln!(
        "ExaBGP start → route at the peer: {}",
        ms(appeared - started)
    );
    assert_eq!(at_peer.as_path(PREFIX).as_deref(), Some("65001"));

    let mut times = Vec::new();
    for _ in 0..5 {
        let killed = knot.kill9();
        let gone = until("route gone from the peer after kill -9", LONG, || {
            !at_peer.has_route(PREFIX)
        });
        let took = gone - killed;
        eprintln!("kill -9 knotd → route gone from the peer: {}", ms(took));
        assert!(took < Duration::from_secs(1), "took {took:?}");
        times.push(took);
        knot.reap();
        knot.start();
        until("route back at the peer after knotd restart", LONG, || {
            at_peer.has_route(PREFIX)
        });
    }
    times.sort();
    eprintln!(
        "kill -9 knotd → route gone from the peer, 5 rounds: median {}, max {}",
        ms(times[2]),
        ms(times[4])
    );

    // drain: the route has left the peer when the command returns; undrain brings it back.
    let drain = |command: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
            .args([
                command,
                "knot",
                "--url",
                &format!("http://127.0.0.1:{http}"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let started = Instant::now();
    drain("drain");
    assert!(
        !at_peer.has_route(PREFIX),
        "drain returned while the peer still had the route"
    );
    eprintln!(
        "dns-oops drain knot (grace 500 ms): {}",
        ms(started.elapsed())
    );
    drain("undrain");
    until("route back at the peer after undrain", LONG, || {
        at_peer.has_route(PREFIX)
    });

    // kill -9 of dns-oops: ExaBGP keeps the route and respawns dns-oops, which re-applies.
    let children = exabgp.children();
    assert_eq!(
        children.len(),
        1,
        "ExaBGP runs one API process: {children:?}"
    );
    common::signal(children[0], 9);
    let respawned = until("dns-oops respawned by ExaBGP", LONG, || {
        exabgp.children().iter().any(|c| *c != children[0])
    });
    // The new dns-oops sends the journal's state again; the route never leaves the peer.
    let watch_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < watch_until {
        assert!(
            at_peer.has_route(PREFIX),
            "route left the peer after a respawn"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = knot.kill9();
    let gone = until("route withdrawn by the respawned dns-oops", LONG, || {
        !at_peer.has_route(PREFIX)
    });
    eprintln!(
        "respawned dns-oops: kill -9 knotd → route gone: {} ({} after the respawn)",
        ms(gone - killed),
        ms(gone - respawned)
    );
    knot.reap();

    knot.start();
    until("route back at the peer after knotd restart", LONG, || {
        at_peer.has_route(PREFIX)
    });

    // ExaBGP stops: dns-oops stops with it.
    let child = exabgp.children()[0];
    exabgp.stop();
    until("dns-oops gone with ExaBGP", LONG, || {
        !Path::new(&format!("/proc/{child}")).exists()
            || std::fs::read_to_string(format!("/proc/{child}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    until("route gone from the peer with ExaBGP", LONG, || {
        !at_peer.has_route(PREFIX)
    });

    // ExaBGP comes back: the dns-oops it starts sends the journal's state at once.
    let mut exabgp = Exabgp::start(dir, port, &config);
    let established = until("eBGP session re-established", LONG, || {
        at_peer.established("exa")
    });
    let back = until(
        "route back at the peer after the ExaBGP restart",
        LONG,
        || at_peer.has_route(PREFIX),
    );
    let took = back.saturating_duration_since(established);
    eprintln!("ExaBGP back (session up) → route at the peer: {}", ms(took));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    exabgp.stop();
}

#[test]
fn exabgp_prepends_while_prepend_when_holds() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let port = free_port();
    let peer = start_peer(dir, port);
    let mut at_peer = peer.client();

    // c.test cannot be loaded: knot runs, but not every zone is ready.
    let mut knot = Knot::new(&dir.join("knot"), &ZONES);
    std::fs::write(knot.dir.join("zones/c.test.zone"), "this is not a zone\n").unwrap();
    knot.start();
    let (config, _) = dns_oops_config(
        dir,
        &knot,
        r#"announce-when = "server-running(knot) and zone-ready(knot, a.test)"
prepend-when = "not all-zones-ready(knot)"
prepend = 2"#,
    );
    let mut exabgp = Exabgp::start(dir, port, &config);
    let mut seen = None;
    let found = until_or_timeout(LONG, || {
        seen = at_peer.as_path(PREFIX);
        seen.as_deref() == Some("65001 65001 65001")
    });
    assert!(found, "prepended route at the peer: AS path {seen:?}");
    knot.write_zone("c.test", 2);
    knot.knotc(&["zone-reload", "c.test"]);
    until("plain route at the peer", LONG, || {
        at_peer.as_path(PREFIX).as_deref() == Some("65001")
    });
    exabgp.stop();
    until("route gone with ExaBGP", LONG, || {
        !at_peer.has_route(PREFIX)
    });
}
