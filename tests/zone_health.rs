//! The `zone-health` source against real knotd: a secondary whose primary stops and comes
//! back, a zone Knot signs with signatures of seconds, a zone signed by `ldns-signzone` with
//! one expired signature, and transfers that fail (refused, a wrong TSIG secret, a
//! malformed RRSIG, a connection cut in the middle). Every signed zone is generated here.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dns_oops::condition::ConditionId;
use dns_oops::signal::{Signal, SignalState};

use common::{Daemon, Knot, free_port, require};

/// A TSIG secret (base64) known to knotd and dns-oops in the tests that use TSIG.
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
const WRONG_SECRET: &str = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItMTI=";

/// The start of a dns-oops config: journal in `dir`, no HTTP, signals on stdout.
fn config_head(dir: &Path) -> String {
    format!(
        "node = \"it\"\n[journal]\npath = \"{}/journal.sqlite\"\n[http]\nlisten = \"off\"\n\
         [[channel]]\ntype = \"log\"\n",
        dir.display()
    )
}

/// A knotd config: `sections` (key, acl, remote, policy) before the template, then `zones`.
fn knot_config(dir: &Path, port: u16, sections: &str, zones: &str) -> String {
    format!(
        "server:\n    rundir: \"{d}/run\"\n    pidfile: \"{d}/knotd.pid\"\n    listen: 127.0.0.1@{port}\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}/db\"\n\
         {sections}\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n\
         zone:\n{zones}",
        d = dir.display()
    )
}

fn knot_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("knotd.log")).unwrap_or_default()
}

/// Waits until `knot` answers the SOA of every zone (knotd binds before it loads zones).
fn wait_loaded(knot: &Knot, zones: &[&str]) {
    let kdig = require("kdig", "knot-dnsutils");
    let deadline = Instant::now() + Duration::from_secs(15);
    for zone in zones {
        loop {
            let out = Command::new(&kdig)
                .arg(format!("@{}", knot.addr().ip()))
                .args([
                    "-p",
                    &knot.port.to_string(),
                    zone,
                    "SOA",
                    "+short",
                    "+time=1",
                ])
                .output()
                .unwrap();
            if out.status.success() && !out.stdout.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "knotd never served {zone}:\n{}",
                knot_log(&knot.dir)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn is(s: &Signal, condition: ConditionId, subject: &str, state: SignalState) -> bool {
    s.condition == condition && s.subject.as_deref() == Some(subject) && s.state == state
}

fn arg(s: &Signal, name: &str) -> String {
    match &s.args[name] {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn time_arg(s: &Signal, name: &str) -> i64 {
    arg(s, name)
        .parse::<DateTime<Utc>>()
        .unwrap_or_else(|e| panic!("{name} of {}: {e}", s.to_json_line()))
        .timestamp()
}

/// A knotd secondary of a knotd primary, with SOA refresh 2 s, retry 2 s, expire 30 s.
/// Stopping the primary raises `zone-refresh-failed` after two failed tries, then
/// `zone-expiring` 20 s before expiry; restarting it clears both.
#[test]
fn secondary_refresh_failure_then_expiry_then_recovery() {
    let base = tempfile::tempdir().unwrap();
    let (pdir, sdir) = (base.path().join("primary"), base.path().join("secondary"));
    let mut primary = Knot::new(&pdir, &["example.test"]);
    let mut secondary = Knot::new(&sdir, &["example.test"]);
    std::fs::write(
        pdir.join("knot.conf"),
        knot_config(
            &pdir,
            primary.port,
            "acl:\n  - id: xfr\n    address: 127.0.0.1\n    action: transfer\n",
            "  - domain: example.test\n    acl: xfr\n",
        ),
    )
    .unwrap();
    std::fs::write(
        pdir.join("zones/example.test.zone"),
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 7 2 2 30 300\n\
         @ IN NS ns1\nns1 IN A 127.0.0.1\n",
    )
    .unwrap();
    std::fs::remove_file(sdir.join("zones/example.test.zone")).unwrap();
    std::fs::write(
        sdir.join("knot.conf"),
        knot_config(
            &sdir,
            secondary.port,
            &format!(
                "remote:\n  - id: primary\n    address: 127.0.0.1@{}\n",
                primary.port
            ),
            "  - domain: example.test\n    master: primary\n    refresh-min-interval: 2\n    \
             retry-min-interval: 2\n    expire-min-interval: 3\n",
        ),
    )
    .unwrap();
    primary.start();
    wait_loaded(&primary, &["example.test"]);
    secondary.start();
    wait_loaded(&secondary, &["example.test"]);

    let dir = base.path();
    let config = format!(
        "{head}[[server]]\nname = \"knot\"\naddress = \"{s}\"\nzones = [\"example.test.\"]\n\
         [[source]]\ntype = \"zone-health\"\nserver = \"knot\"\nprimaries = [\"{p}\"]\n\
         interval = \"500ms\"\ntimeout = \"500ms\"\nrefresh-tries = 2\nexpiring-period = \"20s\"\n\
         signatures = false\n",
        head = config_head(dir),
        s = secondary.addr(),
        p = primary.addr(),
    );
    std::fs::write(dir.join("dns-oops.toml"), &config).unwrap();
    let mut daemon = Daemon::start(&dir.join("dns-oops.toml"));
    // While the primary runs, the secondary refreshes every 2 s: nothing is met.
    let quiet = daemon.drain(Duration::from_secs(5));
    assert!(
        quiet.iter().all(|s| s.state != SignalState::Met),
        "met while the primary runs: {quiet:?}\nsecondary log:\n{}",
        knot_log(&sdir)
    );

    let stopped = Instant::now();
    primary.kill9();
    primary.reap();
    let zone = "example.test.";
    let (at, failed) = daemon.wait_for("zone-refresh-failed met", Duration::from_secs(15), |s| {
        is(s, ConditionId::ZoneRefreshFailed, zone, SignalState::Met)
    });
    let after = at - stopped;
    // Two tries of 2 s each after the last refresh, which was at most 2 s before the stop.
    assert!(
        after <= Duration::from_secs(8),
        "refresh-failed after {after:?}"
    );
    assert!(
        arg(&failed, "tries").parse::<u32>().unwrap() >= 2,
        "{failed:?}"
    );
    assert!(
        arg(&failed, "error").contains(&format!("primary {}", primary.addr())),
        "{failed:?}"
    );
    assert_eq!(failed.source, "zone-health");

    let (_, expiring) = daemon.wait_for("zone-expiring met", Duration::from_secs(20), |s| {
        is(s, ConditionId::ZoneExpiring, zone, SignalState::Met)
    });
    // Met 20 s before expiry (30 s after the last refresh), to within a poll.
    let left = time_arg(&expiring, "expires-at") - Utc::now().timestamp();
    assert!(
        (17..=21).contains(&left),
        "expires in {left} s: {expiring:?}"
    );
    assert!(
        !daemon
            .seen
            .iter()
            .any(|s| s.state == SignalState::Cleared && s.subject.as_deref() == Some(zone)),
        "nothing clears while the primary is down: {:?}",
        daemon.seen
    );

    primary.start();
    let mut cleared = Vec::new();
    while cleared.len() < 2 {
        let (_, s) = daemon.wait_for(
            "both cleared after the restart",
            Duration::from_secs(15),
            |s| {
                (s.condition == ConditionId::ZoneRefreshFailed
                    || s.condition == ConditionId::ZoneExpiring)
                    && s.state == SignalState::Cleared
            },
        );
        if !cleared.contains(&s.condition) {
            cleared.push(s.condition);
        }
    }
}

/// knotd signs a zone with 40-second signatures and re-signs them 20 s before they expire;
/// with a 30-second period `signatures-expiring` is met about 10 s after each signing and
/// clears when Knot re-signs. The transfers are TSIG-signed.
#[test]
fn knot_signed_zone_raises_and_clears_signatures_expiring() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut knot = Knot::new(d, &["example.test"]);
    let sections = format!(
        "key:\n  - id: xfr-key.\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
         acl:\n  - id: xfr\n    address: 127.0.0.1\n    key: xfr-key.\n    action: transfer\n\
         policy:\n  - id: short\n    algorithm: ecdsap256sha256\n    rrsig-lifetime: 40\n    \
         rrsig-refresh: 20\n    rrsig-pre-refresh: 1\n    propagation-delay: 0\n    \
         zsk-lifetime: 0\n    ksk-lifetime: 0\n"
    );
    std::fs::write(
        d.join("knot.conf"),
        knot_config(
            d,
            knot.port,
            &sections,
            "  - domain: example.test\n    acl: xfr\n    dnssec-signing: on\n    dnssec-policy: short\n",
        ),
    )
    .unwrap();
    // TTLs of one second keep Knot's check of the signature lifetime against TTLs happy.
    std::fs::write(
        d.join("zones/example.test.zone"),
        "$ORIGIN example.test.\n$TTL 1\n@ IN SOA ns1 hostmaster 1 3600 600 86400 1\n\
         @ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\nwww IN AAAA 2001:db8::1\n",
    )
    .unwrap();
    knot.start();
    wait_loaded(&knot, &["example.test"]);

    let config = format!(
        "{head}[[server]]\nname = \"knot\"\naddress = \"{a}\"\nzones = [\"example.test.\"]\n\
         [[source]]\ntype = \"zone-health\"\nserver = \"knot\"\ninterval = \"1s\"\n\
         signatures-period = \"30s\"\n\
         tsig-key = {{ name = \"xfr-key.\", algorithm = \"hmac-sha256\", secret = \"{SECRET}\" }}\n",
        head = config_head(d),
        a = knot.addr(),
    );
    std::fs::write(d.join("dns-oops.toml"), &config).unwrap();
    let mut daemon = Daemon::start(&d.join("dns-oops.toml"));
    let zone = "example.test.";
    let (_, met) = daemon.wait_for("signatures-expiring met", Duration::from_secs(45), |s| {
        is(s, ConditionId::SignaturesExpiring, zone, SignalState::Met)
    });
    assert!(
        !met.args.contains_key("error"),
        "{met:?}\nknotd log:\n{}",
        knot_log(d)
    );
    let left = time_arg(&met, "expires-at") - Utc::now().timestamp();
    assert!((0..=31).contains(&left), "expires in {left} s: {met:?}");
    assert!(
        arg(&met, "signatures").parse::<u32>().unwrap() >= 4,
        "{met:?}"
    );
    assert!(arg(&met, "owner").ends_with("example.test."), "{met:?}");
    assert!(!arg(&met, "type").is_empty());

    let (_, cleared) = daemon.wait_for(
        "signatures-expiring cleared after Knot re-signs",
        Duration::from_secs(30),
        |s| {
            is(
                s,
                ConditionId::SignaturesExpiring,
                zone,
                SignalState::Cleared,
            )
        },
    );
    assert_eq!(cleared.source, "zone-health");
    // It was Knot re-signing: the signatures never ran out.
    assert!(Utc::now().timestamp() <= time_arg(&met, "expires-at") + 2);
}

/// Signs `zone_text` with ldns-signzone between `inception` and `expiration` (seconds).
fn ldns_sign(dir: &Path, keys: &[String], name: &str, inception: i64, expiration: i64) -> String {
    let stamp = |t: i64| {
        DateTime::<Utc>::from_timestamp(t, 0)
            .unwrap()
            .format("%Y%m%d%H%M%S")
            .to_string()
    };
    let status = Command::new(require("ldns-signzone", "ldnsutils"))
        .current_dir(dir)
        .args([
            "-i",
            &stamp(inception),
            "-e",
            &stamp(expiration),
            "-f",
            name,
        ])
        .arg("example.test.zone")
        .args(keys)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// One RRSIG of a zone signed by ldns-signzone with an expiration in the past, the rest
/// valid for a month: reported with its exact owner and type.
#[test]
fn ldns_signed_zone_with_an_expired_signature() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let signing = d.join("signing");
    std::fs::create_dir_all(&signing).unwrap();
    let zone_text = "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 5 3600 600 86400 300\n\
                     @ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\nmail IN MX 10 www\n";
    std::fs::write(signing.join("example.test.zone"), zone_text).unwrap();
    let mut keys = Vec::new();
    for ksk in [true, false] {
        let mut command = Command::new(require("ldns-keygen", "ldnsutils"));
        command
            .current_dir(&signing)
            .args(["-a", "ECDSAP256SHA256"]);
        if ksk {
            command.arg("-k");
        }
        let out = command.arg("example.test").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        keys.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
    }
    let now = Utc::now().timestamp();
    let valid = ldns_sign(&signing, &keys, "valid.zone", now - 86400, now + 30 * 86400);
    let expired_at = now - 3600;
    let expired = ldns_sign(&signing, &keys, "expired.zone", now - 86400, expired_at);
    // The valid zone, with the signature of `www A` taken from the expired one.
    let www_a_rrsig = |text: &str| -> String {
        text.lines()
            .find(|l| l.starts_with("www.example.test.") && l.contains("RRSIG\tA "))
            .unwrap_or_else(|| panic!("no RRSIG of www A in\n{text}"))
            .to_string()
    };
    let spliced = valid.replace(&www_a_rrsig(&valid), &www_a_rrsig(&expired));
    assert_ne!(spliced, valid);

    let mut knot = Knot::new(d, &["example.test"]);
    std::fs::write(
        d.join("knot.conf"),
        knot_config(
            d,
            knot.port,
            "acl:\n  - id: xfr\n    address: 127.0.0.1\n    action: transfer\n",
            "  - domain: example.test\n    acl: xfr\n",
        ),
    )
    .unwrap();
    std::fs::write(d.join("zones/example.test.zone"), &spliced).unwrap();
    knot.start();
    wait_loaded(&knot, &["example.test"]);
    let config = format!(
        "{head}[[server]]\nname = \"knot\"\naddress = \"{a}\"\nzones = [\"example.test.\"]\n\
         [[source]]\ntype = \"zone-health\"\nserver = \"knot\"\ninterval = \"1s\"\n",
        head = config_head(d),
        a = knot.addr(),
    );
    std::fs::write(d.join("dns-oops.toml"), &config).unwrap();
    let mut daemon = Daemon::start(&d.join("dns-oops.toml"));
    let (_, met) = daemon.wait_for("signatures-expiring met", Duration::from_secs(20), |s| {
        is(
            s,
            ConditionId::SignaturesExpiring,
            "example.test.",
            SignalState::Met,
        )
    });
    assert_eq!(
        arg(&met, "owner"),
        "www.example.test.",
        "{met:?}\n{}",
        knot_log(d)
    );
    assert_eq!(arg(&met, "type"), "A", "{met:?}");
    assert_eq!(time_arg(&met, "expires-at"), expired_at, "{met:?}");
    assert_eq!(arg(&met, "expired"), "1", "{met:?}");
    let signatures: u64 = arg(&met, "signatures").parse().unwrap();
    let in_file = spliced.lines().filter(|l| l.contains("\tRRSIG\t")).count() as u64;
    assert_eq!(signatures, in_file, "every signature is checked");
}

/// Forwards one connection at a time to `upstream`, closing it after `limit` octets of
/// the answer.
fn cutting_proxy(upstream: std::net::SocketAddr, limit: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(upstream) else {
                continue;
            };
            let mut to_server = client.try_clone().unwrap();
            let mut from_client = server.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut to_server, &mut from_client);
            });
            let mut sent = 0;
            let mut buffer = [0u8; 4096];
            while sent < limit {
                let Ok(n) = server.read(&mut buffer) else {
                    break;
                };
                if n == 0 {
                    break;
                }
                let n = n.min(limit - sent);
                if client.write_all(&buffer[..n]).is_err() {
                    break;
                }
                sent += n;
            }
            let _ = client.shutdown(std::net::Shutdown::Both);
            let _ = server.shutdown(std::net::Shutdown::Both);
        }
    });
    addr
}

/// A refused transfer, a wrong TSIG secret, a malformed RRSIG and a transfer cut in the
/// middle each raise `signatures-expiring` with an `error` saying so; none clears it.
#[test]
fn failed_transfers_are_never_all_fine() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zones = ["refused.test", "tsig.test", "malformed.test", "big.test"];
    let mut knot = Knot::new(d, &zones);
    let sections = format!(
        "key:\n  - id: xfr-key.\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
         acl:\n  - id: xfr\n    address: 127.0.0.1\n    action: transfer\n\
         \x20 - id: xfr-tsig\n    address: 127.0.0.1\n    key: xfr-key.\n    action: transfer\n"
    );
    std::fs::write(
        d.join("knot.conf"),
        knot_config(
            d,
            knot.port,
            &sections,
            "  - domain: refused.test\n  - domain: tsig.test\n    acl: xfr-tsig\n\
             \x20 - domain: malformed.test\n    acl: xfr\n  - domain: big.test\n    acl: xfr\n",
        ),
    )
    .unwrap();
    let signed = |zone: &str, extra: &str| {
        let now = Utc::now().timestamp();
        let t = |s: i64| {
            DateTime::<Utc>::from_timestamp(s, 0)
                .unwrap()
                .format("%Y%m%d%H%M%S")
                .to_string()
        };
        format!(
            "$ORIGIN {zone}.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n\
             @ IN NS ns1\nns1 IN A 127.0.0.1\n\
             @ IN RRSIG SOA 13 2 300 {e} {i} 12345 {zone}. AAAA\n{extra}",
            e = t(now + 30 * 86400),
            i = t(now - 86400),
        )
    };
    // An RRSIG whose RDATA ends after the signer: no signature at all.
    let malformed =
        "www IN A 192.0.2.1\nwww IN TYPE46 \\# 19 0001 0d 03 0000012c 6a000000 69000000 3039 00\n";
    std::fs::write(
        d.join("zones/malformed.test.zone"),
        signed("malformed.test", malformed),
    )
    .unwrap();
    let mut many = String::new();
    for i in 0..6000 {
        many.push_str(&format!("host{i} IN A 192.0.2.{}\n", i % 250));
    }
    std::fs::write(d.join("zones/big.test.zone"), signed("big.test", &many)).unwrap();
    for zone in ["refused.test", "tsig.test"] {
        std::fs::write(d.join(format!("zones/{zone}.zone")), signed(zone, "")).unwrap();
    }
    knot.start();
    wait_loaded(&knot, &zones);
    let proxy = cutting_proxy(knot.addr(), 30_000);

    let source = |server: &str, zones: &str, extra: &str| {
        format!(
            "[[server]]\nname = \"{server}\"\naddress = \"{{addr}}\"\nzones = [{zones}]\n\
             [[source]]\ntype = \"zone-health\"\nserver = \"{server}\"\ninterval = \"1s\"\n\
             timeout = \"1s\"\n{extra}"
        )
    };
    let config = format!(
        "{head}{direct}{tsig}{cut}",
        head = config_head(d),
        direct = source("knot", "\"refused.test.\", \"malformed.test.\"", "")
            .replace("{addr}", &knot.addr().to_string()),
        tsig = source(
            "knot-tsig",
            "\"tsig.test.\"",
            &format!(
                "tsig-key = {{ name = \"xfr-key.\", algorithm = \"hmac-sha256\", secret = \"{WRONG_SECRET}\" }}\n"
            )
        )
        .replace("{addr}", &knot.addr().to_string()),
        cut = source("cut", "\"big.test.\"", "").replace("{addr}", &proxy.to_string()),
    );
    std::fs::write(d.join("dns-oops.toml"), &config).unwrap();
    let mut daemon = Daemon::start(&d.join("dns-oops.toml"));
    let expect = [
        // Knot 3.2 answers a transfer its ACL denies with NOTAUTH.
        ("refused.test.", "the server answered NOTAUTH"),
        ("tsig.test.", "BADSIG"),
        ("malformed.test.", "malformed RRSIG at www.malformed.test."),
        ("big.test.", "before the transfer was complete"),
    ];
    let mut errors = std::collections::HashMap::new();
    while errors.len() < expect.len() {
        let (_, s) = daemon.wait_for(
            "signatures-expiring met for every broken zone",
            Duration::from_secs(20),
            |s| s.condition == ConditionId::SignaturesExpiring && s.state == SignalState::Met,
        );
        errors.insert(s.subject.clone().unwrap(), arg(&s, "error"));
    }
    for (zone, words) in expect {
        let error = &errors[zone];
        assert!(error.contains(words), "{zone}: {error}\n{}", knot_log(d));
    }
    // Trying again changes nothing: no clear.
    let later = daemon.drain(Duration::from_secs(3));
    assert!(
        later.iter().all(|s| s.state != SignalState::Cleared),
        "{later:?}"
    );
}

/// Bad values of the table are placed at their line and column.
#[test]
fn check_config_places_zone_health_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns-oops.toml");
    let port = free_port();
    std::fs::write(
        &path,
        format!(
            "[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:{port}\"\nzones = [\"a.test.\"]\n\
             [[source]]\ntype = \"zone-health\"\nserver = \"knot\"\nrefresh-tries = 0\n\
             zones = [\"b.test\"]\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(":8:17"), "refresh-tries at line 8: {text}");
    assert!(
        text.contains("`refresh-tries` must be at least 1"),
        "{text}"
    );
    assert!(text.contains(":9:10"), "the zone at line 9: {text}");
    assert!(text.contains("not one of server `knot`'s zones"), "{text}");

    std::fs::write(
        &path,
        format!(
            "[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:{port}\"\nzones = [\"a.test.\"]\n\
             [[source]]\ntype = \"zone-health\"\nserver = \"knot\"\nprimaries = [\"127.0.0.1:53\", \"primary\"]\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(":8:30"), "{text}");
    assert!(text.contains("invalid primary address `primary`"), "{text}");
}
