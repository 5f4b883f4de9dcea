//! `dns-oops dnstap-read` on the four real captures in `tests/fixtures/dnstap/` (knotd,
//! nsd, named, unbound): the counts their README lists, in JSON and in text, and the
//! errors for a truncated and a garbage file.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dnstap")
        .join(name)
}

fn dnstap_read(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .arg("dnstap-read")
        .args(args)
        .output()
        .expect("run dns-oops")
}

fn summary(name: &str) -> Value {
    let path = fixture(name);
    let out = dnstap_read(&[path.as_os_str(), "--json".as_ref()]);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn check(name: &str, frames: u64, by_type: Value, by_rcode: Value, by_ede: Value) -> Value {
    let s = summary(name);
    assert_eq!(s["frames"], frames, "{name}");
    assert_eq!(s["control_frames"], 2, "{name}");
    assert_eq!(s["data_frames"], frames - 2, "{name}");
    assert_eq!(s["by_type"], by_type, "{name}");
    assert_eq!(s["by_rcode"], by_rcode, "{name}");
    assert_eq!(s["by_ede"], by_ede, "{name}");
    assert_eq!(s["malformed_frames"], 0, "{name}");
    assert_eq!(s["malformed_dns"], 0, "{name}");
    let per_second = s["per_second"].as_array().expect("per_second");
    let total: u64 = per_second
        .iter()
        .map(|b| b["queries"].as_u64().unwrap() + b["responses"].as_u64().unwrap())
        .sum();
    assert_eq!(total, frames - 2, "{name}: every message has a time");
    s
}

#[test]
fn knot_capture() {
    let s = check(
        "knot.fstrm",
        26,
        json!({"AUTH_QUERY": 12, "AUTH_RESPONSE": 12}),
        json!({"NOERROR": 7, "NXDOMAIN": 2, "REFUSED": 3}),
        json!({}),
    );
    // 2026-11-22 08:05:12 to 08:05:29 UTC.
    let seconds = s["per_second"].as_array().unwrap();
    assert_eq!(seconds.first().unwrap()["time"], 1_795_334_712);
    assert!(seconds.last().unwrap()["time"].as_u64().unwrap() <= 1_795_334_729);
}

#[test]
fn nsd_capture() {
    check(
        "nsd.fstrm",
        8,
        json!({"AUTH_QUERY": 3, "AUTH_RESPONSE": 3}),
        json!({"NOERROR": 2, "NXDOMAIN": 1}),
        json!({}),
    );
}

#[test]
fn bind_capture() {
    check(
        "bind.fstrm",
        6,
        json!({"AUTH_QUERY": 2, "CLIENT_RESPONSE": 2}),
        json!({"NOERROR": 1, "REFUSED": 1}),
        json!({}),
    );
}

#[test]
fn unbound_capture_has_one_ede() {
    // Client side REFUSED 3, NXDOMAIN 2, SERVFAIL 4; resolver side NOERROR 7, NXDOMAIN 3.
    check(
        "unbound.fstrm",
        59,
        json!({"CLIENT_QUERY": 19, "CLIENT_RESPONSE": 9, "RESOLVER_QUERY": 19,
               "RESOLVER_RESPONSE": 10}),
        json!({"NOERROR": 7, "NXDOMAIN": 5, "REFUSED": 3, "SERVFAIL": 4}),
        json!({"6": 1}),
    );
}

#[test]
fn text_summary() {
    let path = fixture("unbound.fstrm");
    let out = dnstap_read(&[path.as_os_str()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("frames: 59 (57 data, 2 control)"), "{text}");
    assert!(text.contains("6 (DNSSEC Bogus)"), "{text}");
    assert!(text.contains("2026-11-22 08:09:07"), "{text}");
}

#[test]
fn errors_name_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let knot = std::fs::read(fixture("knot.fstrm")).unwrap();
    let cut = dir.path().join("cut.fstrm");
    std::fs::write(&cut, &knot[..knot.len() - 20]).unwrap();
    let out = dnstap_read(&[cut.as_os_str(), "--json".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: byte ", cut.display())),
        "{stderr}"
    );
    assert!(stderr.contains("truncated"), "{stderr}");
    // The frames before the cut are still summarised.
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(s["data_frames"].as_u64().unwrap() >= 22);

    let garbage = dir.path().join("garbage.fstrm");
    std::fs::write(&garbage, b"\xff\xff\xff\xffnot a capture").unwrap();
    let out = dnstap_read(&[garbage.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: byte 0: data frame", garbage.display())),
        "{stderr}"
    );

    let missing = dir.path().join("missing.fstrm");
    let out = dnstap_read(&[missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.fstrm"));
}
