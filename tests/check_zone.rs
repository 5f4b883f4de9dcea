//! `dns-oops check-zone` on zones signed for real: by `ldns-signzone` with chosen
//! inception and expiration times, and by knotd's automatic signing with signature
//! lifetimes of seconds. Every signed zone is generated here; none is committed.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use common::require;

const DAY: i64 = 86_400;

/// The zone every ldns test signs: apex, hosts, a TXT with a quoted string, and a
/// delegation with glue (unsigned by design).
const ZONE: &str = r#"$ORIGIN example.test.
$TTL 300
@       IN SOA ns1 hostmaster ( 2024010101 3600 600
                                86400 300 )
@       IN NS   ns1
ns1     IN A    127.0.0.1
www     IN A    192.0.2.1
www     IN AAAA 2001:db8::1
mail    IN MX   10 www
txt     IN TXT  "hello; world" "a\"b"
sub     IN NS   ns.sub
ns.sub  IN A    192.0.2.9
"#;

fn now() -> i64 {
    Utc::now().timestamp()
}

fn rfc3339(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A scratch directory with a KSK and a ZSK made by `ldns-keygen`.
struct Signer {
    dir: tempfile::TempDir,
    keys: Vec<String>,
}

impl Signer {
    fn new() -> Signer {
        let keygen = require("ldns-keygen", "ldnsutils");
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Vec::new();
        for ksk in [true, false] {
            let mut command = Command::new(&keygen);
            command
                .current_dir(dir.path())
                .args(["-a", "ECDSAP256SHA256"]);
            if ksk {
                command.arg("-k");
            }
            let out = command.arg("example.test").output().unwrap();
            assert!(out.status.success(), "ldns-keygen: {out:?}");
            keys.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
        }
        std::fs::write(dir.path().join("example.test.zone"), ZONE).unwrap();
        Signer { dir, keys }
    }

    /// Signs [`ZONE`] with the given inception and expiration (seconds since the epoch)
    /// into `name`.
    fn sign(&self, name: &str, inception: i64, expiration: i64) -> PathBuf {
        let out = self.dir.path().join(name);
        let status = Command::new(require("ldns-signzone", "ldnsutils"))
            .current_dir(self.dir.path())
            .args([
                "-i",
                &inception.to_string(),
                "-e",
                &expiration.to_string(),
                "-f",
            ])
            .arg(&out)
            .arg("example.test.zone")
            .args(&self.keys)
            .status()
            .unwrap();
        assert!(status.success(), "ldns-signzone failed");
        out
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Replaces, in zone file `main`, the RRSIG covering `owner`/`covered` with the one from
/// `donor` (the same zone signed with other times): a zone that is signed for real in
/// which one RRset's signature has its own validity period.
fn splice(main: &Path, donor: &Path, owner: &str, covered: &str, into: &Path) {
    let is_target = |line: &str| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 4 && fields[0] == owner && fields[3] == "RRSIG" && fields[4] == covered
    };
    let donor_text = std::fs::read_to_string(donor).unwrap();
    let replacement = donor_text
        .lines()
        .find(|l| is_target(l))
        .unwrap_or_else(|| panic!("no RRSIG {owner} {covered} in the donor"));
    let mut replaced = 0;
    let text: String = std::fs::read_to_string(main)
        .unwrap()
        .lines()
        .map(|line| {
            if is_target(line) {
                replaced += 1;
                format!("{replacement}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_eq!(replaced, 1, "RRSIG {owner} {covered} in the main zone");
    std::fs::write(into, text).unwrap();
}

/// RRsets (owner, type; RRSIG excluded) and RRSIGs of a signed zone written one record
/// per line with absolute owners, TTLs and an optional `IN` (ldns and Knot both do),
/// counted independently of dns-oops.
fn count_by_hand(text: &str) -> (u64, u64) {
    let mut rrsets = HashSet::new();
    let mut signatures = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 || fields[0].starts_with(';') {
            continue;
        }
        let rtype = if fields[2] == "IN" {
            fields[3]
        } else {
            fields[2]
        };
        if rtype == "RRSIG" {
            signatures += 1;
        } else {
            rrsets.insert((fields[0].to_ascii_lowercase(), rtype));
        }
    }
    (rrsets.len() as u64, signatures)
}

/// Runs `dns-oops check-zone ARGS`, returning the exit code and stdout.
fn check_zone(args: &[&str], stdin: Option<&[u8]>) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .arg("check-zone")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

/// `check-zone --json FILE ARGS`: exit code and the parsed report.
fn check_json(file: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, stdout) = check_zone(&all, None);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (code, report)
}

#[test]
fn ldns_zone_valid_for_weeks_is_ok() {
    let signer = Signer::new();
    let now = now();
    let expiration = now + 30 * DAY;
    let zone = signer.sign("ok.signed", now - 3_600, expiration);
    let (code, report) = check_json(&zone, &["--window", "7d"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["state"], "OK");
    let (rrsets, signatures) = count_by_hand(&std::fs::read_to_string(&zone).unwrap());
    assert_eq!(report["rrsets"], rrsets, "{report:#}");
    assert_eq!(report["signatures"], signatures);
    // Apex SOA NS DNSKEY NSEC; ns1 A NSEC; www A AAAA NSEC; mail MX NSEC; txt TXT NSEC;
    // sub NS NSEC; the glue A.
    assert_eq!(rrsets, 16);
    assert_eq!(report["earliest_expiration"], rfc3339(expiration));
    assert_eq!(report["expired_total"], 0);
    assert_eq!(report["not_yet_valid_total"], 0);
}

#[test]
fn ldns_zone_with_one_rrset_expiring_within_the_window_names_it() {
    let signer = Signer::new();
    let now = now();
    let main = signer.sign("main.signed", now - 3_600, now + 30 * DAY);
    let soon = now + 2 * DAY;
    let donor = signer.sign("donor.signed", now - 3_600, soon);
    let zone = signer.path("expiring.signed");
    splice(&main, &donor, "www.example.test.", "AAAA", &zone);

    // The fixture is a real signed zone: ldns validates it.
    let verify = Command::new(require("ldns-verify-zone", "ldnsutils"))
        .arg(&zone)
        .output()
        .unwrap();
    assert!(verify.status.success(), "ldns-verify-zone: {verify:?}");

    let (code, report) = check_json(&zone, &["--window", "7d"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["state"], "WARNING");
    let first = &report["earliest"][0];
    assert_eq!(first["owner"], "www.example.test.");
    assert_eq!(first["type"], "AAAA");
    assert_eq!(first["expiration"], rfc3339(soon));
    assert_eq!(report["earliest"][1]["expiration"], rfc3339(now + 30 * DAY));

    // The default window (1 day) is shorter than two days: OK.
    let (code, stdout) = check_zone(&[zone.to_str().unwrap()], None);
    assert_eq!(code, 0, "{stdout}");

    // What an operator reads: the status line first, then the signatures.
    let (code, stdout) = check_zone(&["--window", "3d", zone.to_str().unwrap()], None);
    assert_eq!(code, 1, "{stdout}");
    let mut lines = stdout.lines();
    let status = lines.next().unwrap();
    assert!(
        status.starts_with("DNS-OOPS WARNING - ")
            && status.contains("a signature expires within 3d")
            && status.contains(&format!("earliest expiry {}", rfc3339(soon)))
            && status.contains("www.example.test. AAAA"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "www.example.test. AAAA  expires {} (in 1d 23h",
            rfc3339(soon)
        )) || stdout.contains(&format!(
            "www.example.test. AAAA  expires {} (in 2d",
            rfc3339(soon)
        )),
        "{stdout}"
    );
}

#[test]
fn ldns_zone_with_one_expired_signature_is_critical_naming_it() {
    let signer = Signer::new();
    let now = now();
    let main = signer.sign("main.signed", now - 3_600, now + 30 * DAY);
    let expired = now - DAY;
    let donor = signer.sign("donor.signed", now - 30 * DAY, expired);
    let zone = signer.path("one-expired.signed");
    splice(&main, &donor, "mail.example.test.", "MX", &zone);

    // ldns agrees that the zone is broken.
    let verify = Command::new(require("ldns-verify-zone", "ldnsutils"))
        .arg(&zone)
        .output()
        .unwrap();
    assert!(!verify.status.success(), "ldns-verify-zone accepted it");

    let (code, report) = check_json(&zone, &[]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["state"], "CRITICAL");
    assert_eq!(report["expired_total"], 1);
    let sig = &report["expired"][0];
    assert_eq!(sig["owner"], "mail.example.test.");
    assert_eq!(sig["type"], "MX");
    assert_eq!(sig["expiration"], rfc3339(expired));

    let (code, stdout) = check_zone(&[zone.to_str().unwrap()], None);
    assert_eq!(code, 2);
    assert!(
        stdout.starts_with("DNS-OOPS CRITICAL - ") && stdout.contains("1 signature expired"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "mail.example.test. MX  expired {} (1d ago)",
            rfc3339(expired)
        )),
        "{stdout}"
    );
}

#[test]
fn ldns_zone_signed_in_the_past_is_all_expired() {
    let signer = Signer::new();
    let now = now();
    let zone = signer.sign("past.signed", now - 30 * DAY, now - DAY);
    let (code, report) = check_json(&zone, &["--show", "2"]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["expired_total"], report["signatures"]);
    assert_eq!(report["expired"].as_array().unwrap().len(), 2);
    assert_eq!(report["earliest"].as_array().unwrap().len(), 0);
    assert_eq!(report["earliest_expiration"], Value::Null);
}

#[test]
fn ldns_zone_not_yet_valid_is_critical() {
    let signer = Signer::new();
    let now = now();
    let inception = now + DAY;
    let zone = signer.sign("future.signed", inception, now + 30 * DAY);
    let (code, report) = check_json(&zone, &[]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["not_yet_valid_total"], report["signatures"]);
    assert_eq!(report["expired_total"], 0);
    assert_eq!(report["not_yet_valid"][0]["inception"], rfc3339(inception));
    let (_, stdout) = check_zone(&[zone.to_str().unwrap()], None);
    assert!(stdout.contains("signatures not yet valid"), "{stdout}");
    assert!(
        stdout.contains(&format!("valid from {}", rfc3339(inception))),
        "{stdout}"
    );
}

#[test]
fn unsigned_missing_and_malformed_zones_are_unknown() {
    let signer = Signer::new();
    let unsigned = signer.path("example.test.zone");
    let (code, stdout) = check_zone(&[unsigned.to_str().unwrap()], None);
    assert_eq!(code, 3, "{stdout}");
    assert!(
        stdout.starts_with("DNS-OOPS UNKNOWN - ") && stdout.contains("not signed"),
        "{stdout}"
    );

    let missing = signer.path("missing.zone");
    let (code, stdout) = check_zone(&[missing.to_str().unwrap()], None);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("cannot open"), "{stdout}");

    // A real signed zone with one signature's expiration mangled on line 6.
    let now = now();
    let zone = signer.sign("good.signed", now - 3_600, now + 30 * DAY);
    let text = std::fs::read_to_string(&zone).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let line = lines
        .iter()
        .position(|l| l.contains("\tRRSIG\t"))
        .expect("an RRSIG line");
    let mut fields: Vec<String> = lines[line].split('\t').map(str::to_string).collect();
    let mut rdata: Vec<&str> = fields[4].split(' ').collect();
    rdata[4] = "2026-13-01";
    fields[4] = rdata.join(" ");
    lines[line] = fields.join("\t");
    let broken = signer.path("broken.signed");
    std::fs::write(&broken, lines.join("\n")).unwrap();
    let (code, stdout) = check_zone(&[broken.to_str().unwrap()], None);
    assert_eq!(code, 3, "{stdout}");
    let location = format!("{}:{}: ", broken.display(), line + 1);
    assert!(
        stdout.contains(&location)
            && stdout.contains("RRSIG has an invalid expiration: `2026-13-01`"),
        "expected `{location}`…: {stdout}"
    );
    let (code, report) = check_json(&broken, &[]);
    assert_eq!(code, 3);
    assert_eq!(report["state"], "UNKNOWN");
    assert!(report["error"].as_str().unwrap().contains(&location));
}

/// knotd signing a zone with 30-second signatures (re-signed 10 seconds before they
/// expire) and writing the signed zone back to its file.
#[test]
fn knot_signed_zone_with_short_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let mut knot = common::Knot::new(dir.path(), &["example.test"]);
    let d = dir.path().display();
    let config = format!(
        "server:\n    rundir: \"{d}/run\"\n    pidfile: \"{d}/knotd.pid\"\n    listen: 127.0.0.1@{port}\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}/db\"\n\
         policy:\n  - id: short\n    algorithm: ecdsap256sha256\n    rrsig-lifetime: 30\n    \
         rrsig-refresh: 10\n    rrsig-pre-refresh: 1\n    propagation-delay: 0\n    \
         zsk-lifetime: 0\n    ksk-lifetime: 0\n\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    file: \"%s.zone\"\n    \
         zonefile-sync: 0\n    zonefile-load: difference-no-serial\n    journal-content: all\n\
         zone:\n  - domain: example.test\n    dnssec-signing: on\n    dnssec-policy: short\n",
        port = knot.port
    );
    std::fs::write(dir.path().join("knot.conf"), config).unwrap();
    // TTLs of one second keep Knot's refresh-versus-TTL check happy.
    let zone_file = dir.path().join("zones/example.test.zone");
    std::fs::write(
        &zone_file,
        ZONE.replace("$TTL 300", "$TTL 1")
            .replace("86400 300 )", "86400 1 )"),
    )
    .unwrap();
    knot.start();

    // Knot signs at load and writes the signed zone to the file.
    let signed_serial = |text: &str| -> Option<u64> {
        if !text.contains("\tRRSIG\t") {
            return None;
        }
        let soa = text.lines().find(|l| l.contains("\tSOA\t"))?;
        soa.split_whitespace().nth(5)?.parse().ok()
    };
    let wait_for = |what: &str, pred: &dyn Fn(u64) -> bool| -> u64 {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let text = std::fs::read_to_string(&zone_file).unwrap_or_default();
            if let Some(serial) = signed_serial(&text).filter(|s| pred(*s)) {
                return serial;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: knotd log:\n{}",
                std::fs::read_to_string(dir.path().join("knotd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let first_serial = wait_for("knotd never wrote a signed zone", &|_| true);
    // A copy, so that Knot re-signing 20 s later does not change what is judged below.
    let snapshot = dir.path().join("snapshot.zone");
    std::fs::copy(&zone_file, &snapshot).unwrap();

    let (code, report) = check_json(&snapshot, &["--window", "1h"]);
    assert_eq!(code, 1, "30-second signatures expire within 1h: {report:#}");
    let signatures = report["signatures"].as_u64().unwrap();
    assert!(signatures >= 10, "{report:#}");
    let (rrsets, by_hand) = count_by_hand(&std::fs::read_to_string(&snapshot).unwrap());
    assert_eq!(report["rrsets"], rrsets, "{report:#}");
    assert_eq!(signatures, by_hand);
    let earliest: DateTime<Utc> = report["earliest_expiration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let e1 = earliest.timestamp();
    let left = e1 - now();
    assert!((-5..=31).contains(&left), "expires in {left}s: {report:#}");

    // Judged at fixed moments around that expiry, the same file is OK, WARNING, CRITICAL.
    let at = |t: i64| rfc3339(t);
    let (code, _) = check_json(&snapshot, &["--now", &at(e1 - 60), "--window", "30s"]);
    assert_eq!(code, 0);
    let (code, _) = check_json(&snapshot, &["--now", &at(e1 - 60), "--window", "2m"]);
    assert_eq!(code, 1);
    let (code, report) = check_json(&snapshot, &["--now", &at(e1 + 1)]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["expired_total"], signatures);

    // Knot re-signs 10 s before expiry: the new file's signatures outlive the old ones.
    wait_for("knotd never re-signed the zone", &|serial| {
        serial != first_serial
    });
    let (code, report) = check_json(&zone_file, &["--now", &at(e1 + 1), "--window", "1s"]);
    assert_eq!(code, 0, "after re-signing: {report:#}");

    // `knotc zone-read` output, once its `[zone] ` prefix is cut, reads the same.
    let out = Command::new(require("knotc", "knot"))
        .arg("-c")
        .arg(dir.path().join("knot.conf"))
        .args(["zone-read", "example.test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "knotc zone-read: {out:?}");
    let records: String = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("[example.test.] ").unwrap_or(l)))
        .collect();
    let (code, stdout) = check_zone(&["--json", "-"], Some(records.as_bytes()));
    let from_knotc: Value = serde_json::from_str(&stdout).unwrap();
    assert!(code == 0 || code == 1, "{stdout}");
    assert_eq!(from_knotc["signatures"], signatures);
    assert_eq!(from_knotc["rrsets"], rrsets);
}
