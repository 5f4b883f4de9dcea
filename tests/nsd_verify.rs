//! `dns-oops nsd-verify` as NSD's `verifier:`: a real NSD secondary runs the dns-oops binary
//! for each zone version it receives from a real NSD primary, and the running daemon signals
//! what the verifier reported. Zones are signed here with ldns-signzone.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dns_oops::signal::{Signal, SignalState};

use common::{Daemon, free_port, require};

const ZONE: &str = "example.test.";
const PLAIN: &str = "plain.test.";

/// A program in the background, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nsd(dir: &Path) -> Running {
    let log = std::fs::File::create(dir.join("nsd.out")).unwrap();
    let conf = dir.join("nsd.conf");
    Running(
        Command::new(require("nsd", "nsd"))
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nsd"),
    )
}

fn server_head(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "server:\n    ip-address: 127.0.0.1@{port}\n    username: \"\"\n    zonesdir: \"{d}\"\n\
         \x20   database: \"\"\n    pidfile: \"{d}/nsd.pid\"\n    xfrdfile: \"{d}/xfrd.state\"\n\
         \x20   zonelistfile: \"{d}/zone.list\"\n    logfile: \"{d}/nsd.log\"\n    verbosity: 2\n\
         remote-control:\n    control-enable: yes\n    control-interface: {d}/nsd.ctl\n"
    )
}

/// The zone text of `example.test.` (or `plain.test.`) with `serial`.
fn zone_text(origin: &str, serial: u32) -> String {
    format!(
        "$ORIGIN {origin}\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 3600 600 86400 300\n\
         @ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\n"
    )
}

struct Signer {
    dir: PathBuf,
    keys: Vec<String>,
}

impl Signer {
    fn new(dir: &Path) -> Signer {
        let dir = dir.join("signing");
        std::fs::create_dir_all(&dir).unwrap();
        let mut keys = Vec::new();
        for ksk in [true, false] {
            let mut command = Command::new(require("ldns-keygen", "ldnsutils"));
            command.current_dir(&dir).args(["-a", "ECDSAP256SHA256"]);
            if ksk {
                command.arg("-k");
            }
            let out = command.arg("example.test").output().unwrap();
            assert!(out.status.success(), "{out:?}");
            keys.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
        }
        Signer { dir, keys }
    }

    /// `example.test.` with `serial`, signed with signatures expiring `lifetime` from now.
    fn sign(&self, serial: u32, lifetime: Duration) -> String {
        let now = Utc::now().timestamp();
        let stamp = |t: i64| {
            DateTime::<Utc>::from_timestamp(t, 0)
                .unwrap()
                .format("%Y%m%d%H%M%S")
                .to_string()
        };
        std::fs::write(self.dir.join("example.test.zone"), zone_text(ZONE, serial)).unwrap();
        let status = Command::new(require("ldns-signzone", "ldnsutils"))
            .current_dir(&self.dir)
            .args(["-i", &stamp(now - 3600), "-e"])
            .arg(stamp(now + lifetime.as_secs() as i64))
            .args(["-f", "signed.zone", "example.test.zone"])
            .args(&self.keys)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(self.dir.join("signed.zone")).unwrap()
    }
}

/// The serial `server` answers for `zone`.
fn served_serial(port: u16, zone: &str) -> Option<u32> {
    let out = Command::new(require("kdig", "knot-dnsutils"))
        .arg(format!("@127.0.0.1:{port}"))
        .args([zone, "SOA", "+short", "+time=1", "+retry=0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Waits until the server at `port` serves `serial` for `zone`: NSD switches to a version
/// after its verifier has exited, so shortly after dns-oops heard of it.
fn wait_served(port: u16, zone: &str, serial: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_serial(port, zone) != Some(serial) {
        assert!(
            Instant::now() < deadline,
            "NSD does not serve {zone} serial {serial}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is(s: &Signal, condition: &str, zone: &str, state: SignalState) -> bool {
    s.condition.as_str() == condition
        && s.subject.as_deref() == Some(zone)
        && s.state == state
        && s.source == "nsd-verify"
}

/// The first signal matching `pred`, among those seen already or those still to come.
fn seen_or_wait(
    daemon: &mut Daemon,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Signal) -> bool,
) -> Signal {
    if let Some(s) = daemon.seen.iter().find(|s| pred(s)) {
        return s.clone();
    }
    daemon.wait_for(what, timeout, pred).1
}

fn nsd_control(dir: &Path, args: &[&str]) {
    let out = Command::new(require("nsd-control", "nsd"))
        .arg("-c")
        .arg(dir.join("nsd.conf"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "nsd-control {args:?}: {out:?}");
}

/// Serves `example.test.` (fed to the verifier, signatures checked) and `plain.test.` (not
/// fed: the verifier asks NSD's verify port) from a primary NSD to a secondary NSD whose
/// verifier is dns-oops; checks every signal against what NSD serves.
#[test]
fn nsd_secondary_verifier_reports_loads_updates_and_rejections() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (primary_dir, secondary_dir) = (d.join("primary"), d.join("secondary"));
    std::fs::create_dir_all(&primary_dir).unwrap();
    std::fs::create_dir_all(&secondary_dir).unwrap();
    let (primary_port, secondary_port, verify_port, http) =
        (free_port(), free_port(), free_port(), free_port());
    let signer = Signer::new(d);
    let week = Duration::from_secs(7 * 86400);
    let write_primary = |name: &str, text: &str| {
        std::fs::write(primary_dir.join(format!("{name}.zone")), text).unwrap();
    };
    write_primary("example.test", &signer.sign(2026113001, week));
    write_primary("plain.test", &zone_text(PLAIN, 1));

    std::fs::write(
        primary_dir.join("nsd.conf"),
        format!(
            "{head}zone:\n    name: example.test\n    zonefile: example.test.zone\n\
             \x20   provide-xfr: 127.0.0.1 NOKEY\n    notify: 127.0.0.1@{secondary_port} NOKEY\n\
             zone:\n    name: plain.test\n    zonefile: plain.test.zone\n\
             \x20   provide-xfr: 127.0.0.1 NOKEY\n    notify: 127.0.0.1@{secondary_port} NOKEY\n",
            head = server_head(&primary_dir, primary_port),
        ),
    )
    .unwrap();
    let verifier = format!(
        "{bin} nsd-verify --server nsd --api http://127.0.0.1:{http}",
        bin = env!("CARGO_BIN_EXE_dns-oops")
    );
    std::fs::write(
        secondary_dir.join("nsd.conf"),
        format!(
            "{head}verify:\n    enable: yes\n    port: {verify_port}\n    ip-address: 127.0.0.1\n\
             \x20   verify-zones: yes\n    verifier-timeout: 30\n\
             zone:\n    name: example.test\n    request-xfr: AXFR 127.0.0.1@{primary_port} NOKEY\n\
             \x20   allow-notify: 127.0.0.1 NOKEY\n\
             \x20   verifier: {verifier} --reject-on expiring-signatures=1h\n\
             \x20   verifier-feed-zone: yes\n\
             zone:\n    name: plain.test\n    request-xfr: AXFR 127.0.0.1@{primary_port} NOKEY\n\
             \x20   allow-notify: 127.0.0.1 NOKEY\n    verifier: {verifier}\n\
             \x20   verifier-feed-zone: no\n",
            head = server_head(&secondary_dir, secondary_port),
        ),
    )
    .unwrap();

    // dns-oops knows the secondary only through its verifier: no other source.
    let config = d.join("dns-oops.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"it\"\n[journal]\npath = \"{d}/state/journal.sqlite\"\n[http]\n\
             listen = \"127.0.0.1:{http}\"\n[[server]]\nname = \"nsd\"\n\
             address = \"127.0.0.1:{secondary_port}\"\nzones = [\"{ZONE}\", \"{PLAIN}\"]\n\
             [[channel]]\ntype = \"log\"\n",
            d = d.display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);
    // The daemon's API is up once it answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "dns-oops HTTP API not up");
        std::thread::sleep(Duration::from_millis(50));
    }

    let _primary = start_nsd(&primary_dir);
    let _secondary = start_nsd(&secondary_dir);

    // 1. First transfer of each zone: verified, accepted, ready with the serial.
    let wait = Duration::from_secs(30);
    let ready = seen_or_wait(&mut daemon, "zone-ready example.test.", wait, |s| {
        is(s, "zone-ready", ZONE, SignalState::Met)
    });
    assert_eq!(ready.args["serial"], 2026113001);
    let plain = seen_or_wait(&mut daemon, "zone-ready plain.test.", wait, |s| {
        is(s, "zone-ready", PLAIN, SignalState::Met)
    });
    assert_eq!(plain.args["serial"], 1);
    seen_or_wait(&mut daemon, "all-zones-ready", wait, |s| {
        s.condition.as_str() == "all-zones-ready" && s.state == SignalState::Met
    });
    let verified = daemon
        .seen
        .iter()
        .find(|s| is(s, "external-verify", ZONE, SignalState::Event))
        .expect("external-verify for example.test.")
        .clone();
    assert_eq!(verified.args["verdict"], "accept");
    assert_eq!(verified.args["serial"], 2026113001);
    wait_served(secondary_port, ZONE, 2026113001);
    // A server dns-oops does not know: the daemon refuses the report (404), NSD still
    // gets an accept, and the warning says why.
    let (code, _, stderr) = verify_by_hand(
        &zone_text(ZONE, 5),
        &[
            "--server",
            "nope",
            "--api",
            &format!("http://127.0.0.1:{http}"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no server `nope`"), "{stderr}");

    // 2. A new serial on the primary: the verifier accepts it, dns-oops signals the update.
    write_primary("example.test", &signer.sign(2026113002, week));
    write_primary("plain.test", &zone_text(PLAIN, 2));
    let reloaded = Instant::now();
    nsd_control(&primary_dir, &["reload"]);
    let updated = seen_or_wait(&mut daemon, "zone-updated example.test.", wait, |s| {
        is(s, "zone-updated", ZONE, SignalState::Event)
    });
    assert_eq!(updated.args["serial"], 2026113002);
    assert_eq!(updated.args["previous-serial"], 2026113001);
    eprintln!(
        "primary reload → zone-updated example.test. from the verifier: {:?}",
        reloaded.elapsed()
    );
    let updated = seen_or_wait(&mut daemon, "zone-updated plain.test.", wait, |s| {
        is(s, "zone-updated", PLAIN, SignalState::Event)
    });
    assert_eq!(updated.args["serial"], 2);
    assert_eq!(updated.args["previous-serial"], 1);

    // 3. Signatures that expire within the hour: rejected; NSD keeps the old version and
    //    dns-oops says why.
    write_primary(
        "example.test",
        &signer.sign(2026113003, Duration::from_secs(1800)),
    );
    nsd_control(&primary_dir, &["reload", "example.test"]);
    let (_, failed) = daemon.wait_for("zone-refresh-failed example.test.", wait, |s| {
        is(s, "zone-refresh-failed", ZONE, SignalState::Met)
    });
    assert_eq!(failed.args["serial"], 2026113003);
    let error = failed.args["error"].as_str().unwrap();
    assert!(error.contains("expires at"), "{error}");
    let expiring = seen_or_wait(
        &mut daemon,
        "signatures-expiring example.test.",
        wait,
        |s| is(s, "signatures-expiring", ZONE, SignalState::Met),
    );
    let expires_at: DateTime<Utc> = expiring.args["expires-at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = expires_at - Utc::now();
    assert!(
        left > chrono::Duration::minutes(25) && left <= chrono::Duration::minutes(30),
        "{left}"
    );
    assert!(expiring.args.contains_key("owner") && expiring.args.contains_key("type"));
    let rejected = daemon
        .seen
        .iter()
        .rev()
        .find(|s| is(s, "external-verify", ZONE, SignalState::Event))
        .unwrap()
        .clone();
    assert_eq!(rejected.args["verdict"], "reject");
    assert_eq!(rejected.args["serial"], 2026113003);
    // NSD applies the verdict after the verifier exits: wait for the log line that says
    // it discarded the version, then ask.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(secondary_dir.join("nsd.log"))
        .unwrap()
        .contains("continuing with old database")
    {
        assert!(Instant::now() < deadline, "NSD did not discard the version");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served_serial(secondary_port, ZONE), Some(2026113002));
    assert!(
        !daemon
            .seen
            .iter()
            .any(|s| s.condition.as_str() == "zone-updated" && s.args["serial"] == 2026113003),
        "a rejected version is no update"
    );
    assert!(
        !daemon
            .seen
            .iter()
            .any(|s| is(s, "zone-ready", ZONE, SignalState::Cleared)),
        "the old version is still served"
    );
    let log = std::fs::read_to_string(secondary_dir.join("nsd.log")).unwrap();
    let reason = log
        .lines()
        .find(|l| l.contains("dns-oops nsd-verify: example.test. serial 2026113003 rejected:"))
        .unwrap_or_else(|| panic!("NSD logged no reason:\n{log}"));
    assert!(reason.contains("expires at"), "{reason}");

    // 4. Re-signed properly: accepted, and both conditions clear.
    write_primary("example.test", &signer.sign(2026113004, week));
    nsd_control(&primary_dir, &["reload", "example.test"]);
    let (_, updated) = daemon.wait_for("zone-updated 2026113004", wait, |s| {
        is(s, "zone-updated", ZONE, SignalState::Event)
    });
    assert_eq!(updated.args["serial"], 2026113004);
    assert_eq!(updated.args["previous-serial"], 2026113002);
    let rest = daemon.drain(Duration::from_millis(500));
    let cleared = |condition: &str| {
        daemon
            .seen
            .iter()
            .chain(&rest)
            .any(|s| is(s, condition, ZONE, SignalState::Cleared))
    };
    assert!(cleared("zone-refresh-failed"));
    assert!(cleared("signatures-expiring"));
    wait_served(secondary_port, ZONE, 2026113004);
    for s in &daemon.seen {
        eprintln!("{}", s.to_json_line());
    }
}

/// Runs `dns-oops nsd-verify` by hand with NSD's environment and `feed` on stdin.
fn verify_by_hand(feed: &str, args: &[&str]) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .arg("nsd-verify")
        .args(args)
        .env("VERIFY_ZONE", "example.test")
        .env("VERIFY_ZONE_ON_STDIN", "yes")
        .env("VERIFY_IP_ADDRESS", "127.0.0.1")
        .env("VERIFY_PORT", "9")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(feed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// With dns-oops down, the verifier accepts (and says so on stderr) unless told otherwise;
/// a check failure still rejects; a missing variable is named.
#[test]
fn daemon_unreachable_accepts_by_default() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let feed = zone_text(ZONE, 7);
    let (code, _, stderr) = verify_by_hand(&feed, &["--server", "nsd", "--api", &closed]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("example.test. serial 7 not reported to dns-oops (accepted anyway)"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (code, _, stderr) = verify_by_hand(
        &feed,
        &["--server", "nsd", "--api", &closed, "--reject-unreported"],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("rejected"), "{stderr}");

    let tmp = tempfile::tempdir().unwrap();
    let signer = Signer::new(tmp.path());
    let short = signer.sign(8, Duration::from_secs(600));
    let (code, _, stderr) = verify_by_hand(
        &short,
        &[
            "--server",
            "nsd",
            "--api",
            &closed,
            "--reject-on",
            "expiring-signatures=1h",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("dns-oops nsd-verify: example.test. serial 8 rejected: the signature of"),
        "{last}"
    );
    let (code, _, stderr) = verify_by_hand(
        &short,
        &[
            "--server",
            "nsd",
            "--api",
            &closed,
            "--reject-on",
            "expiring-signatures=1h",
            "--accept-always",
        ],
    );
    assert_eq!(code, 0, "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["nsd-verify", "--server", "nsd"])
        .env_remove("VERIFY_ZONE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VERIFY_ZONE is not set"));
}
