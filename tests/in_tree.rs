//! In-tree hints against a small DNS tree on loopback: a root-like parent (knotd serving
//! `.`) delegating `example.test.` to a knotd that serves it signed, with an in-domain
//! name server; unbound configured by `dns-oops in-tree render`; the `in-tree` source in
//! the daemon; and the four resolvers' own configuration checkers.
//!
//! Debian packages: knot, knot-dnsutils (kdig), unbound, bind9-utils (named-checkconf),
//! knot-resolver (kresd), pdns-recursor.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, brief, require};
use dns_oops::condition::ConditionId;
use dns_oops::signal::SignalState;

const LONG: Duration = Duration::from_secs(20);

/// Loopback addresses of this test process's tree: `127.A.B.1` for the parent,
/// `127.A.B.53` for the domain's server, `127.A.B.54` for a second one. Unbound follows
/// referrals to port 53 only, so the servers listen on port 53 of their own addresses.
fn tree_ip(last: u8, salt: u32) -> Ipv4Addr {
    let n = std::process::id().wrapping_mul(7).wrapping_add(salt * 13);
    Ipv4Addr::new(127, 100 + (n % 150) as u8, ((n / 150) % 250) as u8, last)
}

/// A knotd serving zones from files in a scratch directory, on `ip` port 53.
struct Auth {
    dir: PathBuf,
    ip: Ipv4Addr,
    child: Option<Child>,
}

impl Auth {
    /// `zones`: `(name, signed)`; the zone files are written by the caller.
    fn new(dir: &Path, ip: Ipv4Addr, zones: &[(&str, bool)]) -> Auth {
        require("knotd", "knot");
        for sub in ["zones", "run", "db"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut zone_section = String::new();
        for (zone, signed) in zones {
            let file = if *zone == "." {
                "root"
            } else {
                zone.trim_end_matches('.')
            };
            zone_section.push_str(&format!(
                "  - domain: \"{zone}\"\n    file: \"{file}.zone\"\n"
            ));
            if *signed {
                zone_section.push_str("    dnssec-signing: on\n");
            }
        }
        let config = format!(
            "server:\n    rundir: \"{d}/run\"\n    pidfile: \"{d}/knotd.pid\"\n    listen: {ip}@53\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: \"{d}/db\"\n\
             template:\n  - id: default\n    storage: \"{d}/zones\"\n    zonefile-sync: -1\n    \
             zonefile-load: difference-no-serial\n    journal-content: all\n\
             zone:\n{zone_section}",
            d = dir.display()
        );
        std::fs::write(dir.join("knot.conf"), config).unwrap();
        Auth {
            dir: dir.to_path_buf(),
            ip,
            child: None,
        }
    }

    fn write_zone(&self, zone: &str, text: &str) {
        let file = if zone == "." {
            "root"
        } else {
            zone.trim_end_matches('.')
        };
        std::fs::write(self.dir.join("zones").join(format!("{file}.zone")), text).unwrap();
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("knotd.log")).unwrap();
        let child = Command::new(require("knotd", "knot"))
            .arg("-c")
            .arg(self.dir.join("knot.conf"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start knotd");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            common::signal(child.id(), 15);
            let _ = child.wait();
        }
    }

    fn reload(&self, zone: &str) {
        let status = Command::new(require("knotc", "knot"))
            .arg("-c")
            .arg(self.dir.join("knot.conf"))
            .args(["zone-reload", zone])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "knotc zone-reload {zone}");
    }
}

impl Auth {
    /// Waits until the server answers for `zone` with authority.
    fn wait_serving(&self, zone: &str) {
        let deadline = Instant::now() + LONG;
        while Instant::now() < deadline {
            let out = Command::new(require("kdig", "knot-dnsutils"))
                .args([&format!("@{}", self.ip), zone, "SOA", "+norec", "+time=1"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains("NOERROR") && text.contains(" aa") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{} never served {zone}", self.ip);
    }
}

impl Drop for Auth {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs dns-oops; returns the exit code, stdout and stderr.
fn oops(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(args)
        .output()
        .expect("run dns-oops");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn rfc3339_in(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The tree: parent `.` on `127.A.B.1`, `example.test.` signed on `127.A.B.53`, and
/// `outside.test.` (whose only name server is outside it) on the same server.
struct Tree {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    parent: Auth,
    child: Auth,
    hints: PathBuf,
    serial: u32,
}

impl Tree {
    fn start(salt: u32, commitment: &str) -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let parent_ip = tree_ip(1, salt);
        let child_ip = tree_ip(53, salt);
        let mut tree = Tree {
            _dir: tmp,
            dir: dir.clone(),
            parent: Auth::new(&dir.join("parent"), parent_ip, &[(".", false)]),
            child: Auth::new(
                &dir.join("child"),
                child_ip,
                &[("example.test.", true), ("outside.test.", false)],
            ),
            hints: dir.join("example.test.toml"),
            serial: 1,
        };
        tree.write_child(commitment);
        tree.child.write_zone(
            "outside.test.",
            "$ORIGIN outside.test.\n$TTL 300\n@ SOA ns1.example.test. h 1 3600 600 86400 300\n\
             @ NS ns1.example.test.\nwww A 192.0.2.2\n",
        );
        tree.child.start();
        // The domain's keys, and its hints, from what its server publishes.
        let deadline = Instant::now() + LONG;
        loop {
            let (code, _, stderr) = oops(&[
                "in-tree",
                "init",
                "example.test",
                "--server",
                &child_ip.to_string(),
                "-o",
                tree.hints.to_str().unwrap(),
            ]);
            if code == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "in-tree init never succeeded: {stderr}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        tree.write_parent(&["ns1.example.test."]);
        tree.parent.start();
        tree.wait_for_parent();
        tree
    }

    fn hints_text(&self) -> String {
        std::fs::read_to_string(&self.hints).unwrap()
    }

    /// The DS lines for the parent, from the hints `init` wrote.
    fn ds_records(&self) -> String {
        self.hints_text()
            .lines()
            .filter_map(|l| l.strip_prefix("ds = \""))
            .map(|ds| format!("example.test. DS {}\n", ds.trim_end_matches('"')))
            .collect()
    }

    fn write_parent(&self, ns: &[&str]) {
        let mut text = format!(
            "$ORIGIN .\n$TTL 300\n. SOA ns.root.test. h {serial} 3600 600 86400 300\n\
             . NS ns.root.test.\nns.root.test. A {parent}\n",
            serial = self.serial,
            parent = self.parent.ip
        );
        for name in ns {
            text.push_str(&format!("example.test. NS {name}\n"));
            if name.ends_with("example.test.") {
                text.push_str(&format!("{name} A {}\n", self.child.ip));
            }
        }
        text.push_str(&self.ds_records());
        self.parent.write_zone(".", &text);
    }

    fn write_child(&self, commitment: &str) {
        let text = format!(
            "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 86400 300\n\
             @ NS ns1\nns1 A {ip}\nwww A 192.0.2.1\n_in-tree TXT \"{commitment}\"\n",
            serial = self.serial,
            ip = self.child.ip
        );
        self.child.write_zone("example.test.", &text);
    }

    fn wait_for_parent(&self) {
        let deadline = Instant::now() + LONG;
        while Instant::now() < deadline {
            let out = Command::new(require("kdig", "knot-dnsutils"))
                .args([
                    &format!("@{}", self.parent.ip),
                    "example.test.",
                    "NS",
                    "+norec",
                ])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("ns1.example.test.") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the parent never served the delegation");
    }

    fn check(&self, extra: &[&str]) -> (i32, String) {
        let parent = self.parent.ip.to_string();
        let mut args = vec![
            "in-tree",
            "check",
            self.hints.to_str().unwrap(),
            "--parent",
            &parent,
            "--timeout",
            "500ms",
        ];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = oops(&args);
        (code, format!("{stdout}{stderr}"))
    }
}

/// An unbound on 127.0.0.1 whose root is the tree's parent, with `include` files.
struct Unbound {
    port: u16,
    child: Child,
}

impl Unbound {
    fn start(dir: &Path, parent: Ipv4Addr, includes: &[&Path]) -> Unbound {
        let unbound = require("unbound", "unbound");
        std::fs::create_dir_all(dir).unwrap();
        let port = common::free_port();
        let mut text = format!(
            "server:\n    interface: 127.0.0.1@{port}\n    port: {port}\n    username: \"\"\n    chroot: \"\"\n\
             \x20   directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    logfile: \"\"\n    use-syslog: no\n\
             \x20   do-daemonize: no\n    access-control: 127.0.0.0/8 allow\n    do-not-query-localhost: no\n\
             \x20   local-zone: \"test.\" nodefault\n    module-config: \"validator iterator\"\n\
             stub-zone:\n    name: \".\"\n    stub-addr: {parent}\n",
            d = dir.display()
        );
        for include in includes {
            text.push_str(&format!("include: \"{}\"\n", include.display()));
        }
        let config = dir.join("unbound.conf");
        std::fs::write(&config, text).unwrap();
        let check = Command::new(require("unbound-checkconf", "unbound"))
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "unbound-checkconf: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.join("unbound.log")).unwrap();
        let child = Command::new(unbound)
            .args(["-d", "-c"])
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let u = Unbound { port, child };
        let deadline = Instant::now() + LONG;
        while Instant::now() < deadline {
            if !u.dig("version.server", "CH").is_empty() {
                return u;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("unbound did not start");
    }

    /// kdig's output for `name` (with the AD flag requested).
    fn dig(&self, name: &str, class: &str) -> String {
        let out = Command::new(require("kdig", "knot-dnsutils"))
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                name,
                "A",
                "-c",
                class,
                "+adflag",
                "+time=3",
                "+retry=0",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn unbound_resolves_with_the_hints_while_the_parent_is_down_and_not_without() {
    let mut tree = Tree::start(1, &rfc3339_in(365));
    let rendered = tree.dir.join("in-tree.unbound.conf");
    let (code, _, stderr) = oops(&[
        "in-tree",
        "render",
        "--for",
        "unbound",
        tree.hints.to_str().unwrap(),
        "-o",
        rendered.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");

    // With the parent up, both resolve: the tree works.
    {
        let plain = Unbound::start(&tree.dir.join("u0"), tree.parent.ip, &[]);
        let answer = plain.dig("www.example.test.", "IN");
        assert!(answer.contains("192.0.2.1"), "{answer}");
        // The parent's servers found through a resolver (SOA walk, NS, addresses).
        let resolver = format!("127.0.0.1:{}", plain.port);
        let (code, stdout, stderr) = oops(&[
            "in-tree",
            "check",
            tree.hints.to_str().unwrap(),
            "--resolver",
            &resolver,
        ]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(
            stdout.starts_with("IN-TREE OK example.test.: commitment until "),
            "{stdout}"
        );
    }
    tree.parent.stop();

    let plain = Unbound::start(&tree.dir.join("u1"), tree.parent.ip, &[]);
    let answer = plain.dig("www.example.test.", "IN");
    // Unbound answers SERVFAIL once it gives up on the parent, or nothing within kdig's
    // wait: either way, no address.
    assert!(
        !answer.contains("192.0.2.1")
            && (answer.contains("SERVFAIL") || !answer.contains("NOERROR")),
        "without hints and without the parent there is no answer: {answer}"
    );

    let hinted = Unbound::start(&tree.dir.join("u2"), tree.parent.ip, &[&rendered]);
    let answer = hinted.dig("www.example.test.", "IN");
    assert!(answer.contains("192.0.2.1"), "with the hints: {answer}");
    assert!(
        answer.contains(" ad"),
        "validated with the hints' trust anchor (AD set): {answer}"
    );
}

#[test]
fn a_changed_ns_set_at_the_parent_raises_in_tree_mismatch() {
    let mut tree = Tree::start(2, &rfc3339_in(365));
    let (code, out) = tree.check(&[]);
    assert_eq!(code, 0, "a consistent tree is OK: {out}");

    let dir = tree.dir.clone();
    let http = common::free_port();
    let config = dir.join("dns-oops.toml");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(
        &config,
        format!(
            r#"node = "it"
[journal]
path = "{d}/state/journal.sqlite"
[http]
listen = "127.0.0.1:{http}"
[[server]]
name = "unbound"
address = "127.0.0.1:53"
[[source]]
type = "in-tree"
server = "unbound"
hints = ["{hints}"]
interval = "300ms"
timeout = "500ms"
parent = ["{parent}"]
[[channel]]
type = "log"
"#,
            d = dir.display(),
            hints = tree.hints.display(),
            parent = tree.parent.ip,
        ),
    )
    .unwrap();
    let (code, out, err) = oops(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let mut daemon = Daemon::start(&config);
    // Nothing is met while the hints agree with the tree.
    let quiet = daemon.drain(Duration::from_secs(2));
    assert!(
        quiet.is_empty(),
        "{:?}",
        quiet.iter().map(brief).collect::<Vec<_>>()
    );

    tree.serial += 1;
    tree.write_parent(&["ns1.example.test.", "ns.elsewhere.example."]);
    tree.parent.reload(".");
    let (_, signal) = daemon.wait_for("in-tree-mismatch met", LONG, |s| {
        s.condition == ConditionId::InTreeMismatch && s.state == SignalState::Met
    });
    assert_eq!(signal.subject.as_deref(), Some("example.test."));
    assert_eq!(signal.server, "unbound");
    assert_eq!(signal.source, "in-tree");
    let differs = signal.args["differs"].as_str().unwrap();
    assert!(
        differs.contains("parent's delegation") && differs.contains("ns.elsewhere.example."),
        "{differs}"
    );
    let (code, out) = tree.check(&[]);
    assert_eq!(code, 2, "CRITICAL: {out}");
    assert!(out.contains("IN-TREE CRITICAL example.test.:"), "{out}");

    // Back as the hints say: cleared.
    tree.serial += 1;
    tree.write_parent(&["ns1.example.test."]);
    tree.parent.reload(".");
    daemon.wait_for("in-tree-mismatch cleared", LONG, |s| {
        s.condition == ConditionId::InTreeMismatch && s.state == SignalState::Cleared
    });

    // A trust anchor the domain does not publish is a mismatch too.
    let text = tree.hints_text();
    let digest_end = text
        .find("ds = \"")
        .map(|i| i + text[i..].find("\"\n").unwrap())
        .unwrap();
    let last = &text[digest_end - 1..digest_end];
    let flipped = if last == "0" { "1" } else { "0" };
    let wrong = format!(
        "{}{flipped}{}",
        &text[..digest_end - 1],
        &text[digest_end..]
    );
    let bad = dir.join("wrong-anchor.toml");
    std::fs::write(&bad, &wrong).unwrap();
    let parent = tree.parent.ip.to_string();
    let (code, stdout, _) = oops(&[
        "in-tree",
        "check",
        bad.to_str().unwrap(),
        "--parent",
        &parent,
    ]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("matches the trust anchor"), "{stdout}");
    assert!(stdout.contains("the parent's DS set"), "{stdout}");
}

#[test]
fn a_commitment_expiring_within_the_period_raises_in_tree_commitment_expiring() {
    let soon = rfc3339_in(5);
    let mut tree = Tree::start(3, &soon);
    let (code, out) = tree.check(&["--period", "30d"]);
    assert_eq!(code, 1, "WARNING: {out}");
    assert!(out.contains(&format!("commitment expires {soon}")), "{out}");
    let (code, out) = tree.check(&["--period", "2d"]);
    assert_eq!(code, 0, "outside a shorter period: {out}");

    let dir = tree.dir.clone();
    let config = dir.join("dns-oops.toml");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(
        &config,
        format!(
            r#"node = "it"
[journal]
path = "{d}/state/journal.sqlite"
[http]
listen = "off"
[[server]]
name = "unbound"
address = "127.0.0.1:53"
[[source]]
type = "in-tree"
server = "unbound"
hints = ["{hints}"]
interval = "300ms"
timeout = "500ms"
commitment-period = "30d"
parent = ["{parent}"]
[[channel]]
type = "log"
"#,
            d = dir.display(),
            hints = tree.hints.display(),
            parent = tree.parent.ip,
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);
    let (_, signal) = daemon.wait_for("in-tree-commitment-expiring met", LONG, |s| {
        s.condition == ConditionId::InTreeCommitmentExpiring && s.state == SignalState::Met
    });
    assert_eq!(signal.subject.as_deref(), Some("example.test."));
    assert_eq!(signal.args["expires-at"], soon.as_str());

    // The domain owner renews: cleared.
    tree.serial += 1;
    tree.write_child(&rfc3339_in(90));
    tree.child.reload("example.test.");
    daemon.wait_for("in-tree-commitment-expiring cleared", LONG, |s| {
        s.condition == ConditionId::InTreeCommitmentExpiring && s.state == SignalState::Cleared
    });
    assert!(
        !daemon
            .seen
            .iter()
            .any(|s| s.condition == ConditionId::InTreeMismatch),
        "{:?}",
        daemon.seen.iter().map(brief).collect::<Vec<_>>()
    );
    tree.parent.stop();
}

#[test]
fn a_domain_without_an_in_domain_name_server_is_rejected_with_the_drafts_reason() {
    let tree = Tree::start(4, &rfc3339_in(365));
    let (code, _, stderr) = oops(&[
        "in-tree",
        "init",
        "outside.test",
        "--server",
        &tree.child.ip.to_string(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("outside.test. has no in-domain name server (ns1.example.test.)")
            && stderr.contains("external name dependencies"),
        "{stderr}"
    );

    // The same in a hints file: refused with its position.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/in-tree/no-in-domain.toml");
    let (code, _, stderr) = oops(&[
        "in-tree",
        "render",
        "--for",
        "unbound",
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr
            .contains("no-in-domain.toml:2:10: no name server of `outside.test.` is in the domain")
            && stderr.contains("external name dependencies"),
        "{stderr}"
    );
}

#[test]
fn bad_hints_files_get_errors_with_line_and_column() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/in-tree");
    let bad = fixtures.join("bad.toml");
    let (code, _, stderr) = oops(&["in-tree", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 3, "{stderr}");
    let expected = [
        "bad.toml:6:28: `192.0.2.300` is not an IP address; write e.g. \"192.0.2.53\" or \"2001:db8::53\"",
        "bad.toml:9:6: DS digest type 3 is not supported; use 2 (SHA-256), 4 (SHA-384) or 1 (SHA-1)",
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(line.ends_with(want), "{line} should end with {want}");
    }
    // check-config reads the hints files of an in-tree source.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("dns-oops.toml");
    std::fs::write(
        &config,
        format!(
            "[[server]]\nname = \"unbound\"\naddress = \"127.0.0.1:53\"\n\
             [[source]]\ntype = \"in-tree\"\nserver = \"unbound\"\nhints = [\"{}\"]\n\
             [[channel]]\ntype = \"log\"\n",
            bad.display()
        ),
    )
    .unwrap();
    let (code, _, stderr) = oops(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(
        stderr.lines().all(|l| l.contains("dns-oops.toml:7:9: "))
            && stderr.contains("dns-oops.toml:7:9: ")
            && stderr.contains("bad.toml:6:28: `192.0.2.300`"),
        "{stderr}"
    );

    let bad_key = fixtures.join("bad-key.toml");
    let (code, _, stderr) = oops(&[
        "in-tree",
        "render",
        "--for",
        "bind",
        bad_key.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("bad-key.toml:5:1: unknown field `adresses`"),
        "{stderr}"
    );
}

/// §2.2: a name server inside a delegated zone counts only when that zone has an in-domain
/// name server of its own. `deep.test.` is served on `.53` (and on `.54`); `ns1.sub.deep.test.`
/// lies in `sub.deep.test.`, which `.53` delegates.
#[test]
fn name_servers_in_delegated_zones_need_in_domain_name_servers_recursively() {
    let tmp = tempfile::tempdir().unwrap();
    let (upper_ip, lower_ip) = (tree_ip(53, 5), tree_ip(54, 5));
    let hints = tmp.path().join("deep.test.toml");
    std::fs::write(
        &hints,
        format!(
            "domain = \"deep.test.\"\n[[nameserver]]\nname = \"ns0.deep.test.\"\naddresses = [\"{upper_ip}\"]\n\
             [[nameserver]]\nname = \"ns1.sub.deep.test.\"\naddresses = [\"{lower_ip}\"]\n\
             [[trust-anchor]]\nds = \"1 13 2 C7A54B1F0D4AB5B4BBCEE24575EF63B1E01B1C8DE65D7B8CE1E5BB7B7C9C7E1E\"\n"
        ),
    )
    .unwrap();
    let deep = |sub_ns: &str| {
        format!(
            "$ORIGIN deep.test.\n$TTL 300\n@ SOA ns0 h 1 3600 600 86400 300\n@ NS ns0\n@ NS ns1.sub\n\
             ns0 A {upper_ip}\nsub NS {sub_ns}\nns1.sub A {lower_ip}\n"
        )
    };
    let check = || {
        let (_, stdout, stderr) = oops(&[
            "in-tree",
            "check",
            hints.to_str().unwrap(),
            "--parent",
            "127.0.0.1:9",
            "--timeout",
            "300ms",
        ]);
        format!("{stdout}{stderr}")
    };

    // sub.deep.test. is served only by a name server outside it.
    let mut upper = Auth::new(
        &tmp.path().join("upper"),
        upper_ip,
        &[("deep.test.", false)],
    );
    upper.write_zone("deep.test.", &deep("ns.elsewhere.example."));
    upper.start();
    let mut lower = Auth::new(
        &tmp.path().join("lower"),
        lower_ip,
        &[("deep.test.", false), ("sub.deep.test.", false)],
    );
    lower.write_zone("deep.test.", &deep("ns1.sub.deep.test."));
    lower.write_zone(
        "sub.deep.test.",
        &format!(
            "$ORIGIN sub.deep.test.\n$TTL 300\n@ SOA ns1 h 1 3600 600 86400 300\n@ NS ns1\nns1 A {lower_ip}\n"
        ),
    );
    lower.start();
    upper.wait_serving("deep.test.");
    lower.wait_serving("sub.deep.test.");
    let out = check();
    assert!(
        out.contains("name server ns1.sub.deep.test. is in the delegated zone sub.deep.test., whose name servers (ns.elsewhere.example.) are all outside it")
            && out.contains("external name dependencies"),
        "{out}"
    );

    // With an in-domain name server (and glue) for sub.deep.test., the referral is followed.
    upper.write_zone("deep.test.", &deep("ns1.sub.deep.test."));
    upper.reload("deep.test.");
    let deadline = Instant::now() + LONG;
    let out = loop {
        let out = check();
        if !out.contains("outside it") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!out.contains("outside it"), "{out}");
    assert!(!out.contains("ns1.sub.deep.test. has addresses"), "{out}");
    assert!(!out.contains("NS set at"), "{out}");
}

/// The shipped example, rendered for each resolver, passes that resolver's own checker.
#[test]
fn rendered_configurations_pass_each_resolvers_checker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/examples/in-tree-example.test.toml");
    let render = |resolver: &str, out: &Path| {
        let (code, _, stderr) = oops(&[
            "in-tree",
            "render",
            "--for",
            resolver,
            example.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "render --for {resolver}: {stderr}");
        std::fs::read_to_string(out).unwrap()
    };
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };

    // unbound: a complete config that includes the rendered file.
    let unbound = dir.join("in-tree.unbound.conf");
    render("unbound", &unbound);
    let main = dir.join("unbound.conf");
    std::fs::write(
        &main,
        format!(
            "server:\n    username: \"\"\n    chroot: \"\"\n    directory: \"{}\"\ninclude: \"{}\"\n",
            dir.display(),
            unbound.display()
        ),
    )
    .unwrap();
    let (ok, out) = run(Command::new(require("unbound-checkconf", "unbound")).arg(&main));
    assert!(ok, "unbound-checkconf: {out}");

    // BIND: the rendered file is a complete named.conf.
    let bind = dir.join("in-tree.named.conf");
    let text = render("bind", &bind);
    assert!(text.contains("static-stub"));
    let (ok, out) = run(Command::new(require("named-checkconf", "bind9-utils")).arg(&bind));
    assert!(ok, "named-checkconf: {out}");
    std::fs::write(&bind, text.replace("static-ds", "static-dz")).unwrap();
    let (ok, _) = run(Command::new(require("named-checkconf", "bind9-utils")).arg(&bind));
    assert!(!ok, "named-checkconf refuses a broken file");

    // Knot Resolver: kresd loads a config that runs the rendered file, then quits; a Lua
    // or API error in it ends kresd with a failure.
    let kresd_conf = dir.join("in-tree.kresd.conf");
    let text = render("knot-resolver", &kresd_conf);
    let kresd_check = |rendered: &Path| {
        let port = common::free_port();
        let wrapper = dir.join("kresd-check.conf");
        std::fs::write(
            &wrapper,
            format!(
                "net.listen('127.0.0.1', {port}, {{ kind = 'dns' }})\ndofile('{}')\nquit()\n",
                rendered.display()
            ),
        )
        .unwrap();
        let rundir = dir.join("kresd-run");
        std::fs::create_dir_all(&rundir).unwrap();
        let mut cmd = Command::new(require("kresd", "knot-resolver"));
        cmd.arg("-n")
            .arg("-c")
            .arg(&wrapper)
            .arg(&rundir)
            .stdin(Stdio::null());
        run(&mut cmd)
    };
    let (ok, out) = kresd_check(&kresd_conf);
    assert!(ok, "kresd: {out}");
    std::fs::write(
        &kresd_conf,
        text.replace("trust_anchors.add(", "trust_anchors.ad("),
    )
    .unwrap();
    let (ok, _) = kresd_check(&kresd_conf);
    assert!(!ok, "kresd fails on a broken file");

    // PowerDNS Recursor: --config=check on a recursor.conf made of the rendered lines.
    let pdns_dir = dir.join("pdns");
    std::fs::create_dir_all(&pdns_dir).unwrap();
    let recursor_conf = pdns_dir.join("recursor.conf");
    let text = render("pdns-recursor", &recursor_conf);
    assert!(text.contains("forward-zones=example.test="));
    let lua = std::fs::read_to_string(pdns_dir.join("recursor.conf.lua")).unwrap();
    assert!(lua.contains("addTA('example.test.', '"));
    let pdns_check = || {
        let mut cmd = Command::new(require("pdns_recursor", "pdns-recursor"));
        cmd.arg(format!("--config-dir={}", pdns_dir.display()))
            .arg("--config=check");
        run(&mut cmd)
    };
    let (ok, out) = pdns_check();
    assert!(ok, "pdns_recursor --config=check: {out}");
    std::fs::write(
        &recursor_conf,
        text.replace("forward-zones=", "forward-zonez="),
    )
    .unwrap();
    let (ok, _) = pdns_check();
    assert!(!ok, "pdns_recursor --config=check refuses a broken file");
    std::fs::write(&recursor_conf, &text).unwrap();

    // --config=check does not read the Lua file with the trust anchors: start the recursor
    // on it, and ask it for its trust anchors.
    let port = common::free_port();
    let start_pdns = || {
        Command::new(require("pdns_recursor", "pdns-recursor"))
            .arg(format!("--config-dir={}", pdns_dir.display()))
            .arg(format!("--socket-dir={}", pdns_dir.display()))
            .args([
                "--local-address=127.0.0.1",
                &format!("--local-port={port}"),
                "--daemon=no",
                "--security-poll-suffix=",
                "--disable-syslog=yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut pdns = start_pdns();
    let deadline = Instant::now() + LONG;
    let anchors = loop {
        if let Some(status) = pdns.try_wait().unwrap() {
            panic!("pdns_recursor exited ({status}) on the rendered configuration");
        }
        let out = Command::new(require("rec_control", "pdns-recursor"))
            .arg(format!("--socket-dir={}", pdns_dir.display()))
            .arg("get-tas")
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "rec_control get-tas never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = pdns.kill();
    let _ = pdns.wait();
    assert!(
        anchors.contains("\nexample.test\n\t\t55648 13 2 810ba27c1865ab9d"),
        "{anchors}"
    );
    let lua_path = pdns_dir.join("recursor.conf.lua");
    std::fs::write(&lua_path, lua.replace("addTA(", "addTX(")).unwrap();
    let mut pdns = start_pdns();
    let status = pdns.wait().unwrap();
    assert!(!status.success(), "pdns_recursor refuses a broken Lua file");
}
