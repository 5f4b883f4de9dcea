//! `dns-oops check-config` and `run` on bad input: a clear `file:line:column` error and
//! exit code 2, nothing started.

use std::process::Command;

const GOOD: &str = r#"node = "lab"
[journal]
path = "/nonexistent-dir-never-created/journal.sqlite"
[[server]]
name = "knot"
address = "127.0.0.1:5301"
zones = ["a.test.", "b.test."]
[[source]]
type = "probe"
server = "knot"
interval = "1s"
[check]
critical-when = "not server-running(knot)"
"#;

fn check_config(text: &str) -> (i32, String, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path,
        dir,
    )
}

/// Asserts exit code 2 and an error at `line:column` containing `needle`.
fn assert_error(text: &str, line: usize, column: usize, needle: &str) {
    let (code, _, stderr, path, _dir) = check_config(text);
    assert_eq!(code, 2, "exit code; stderr: {stderr}");
    let location = format!("{}:{line}:{column}:", path.display());
    assert!(
        stderr.contains(&location),
        "expected `{location}` in: {stderr}"
    );
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
}

#[test]
fn a_good_config_passes_and_starts_nothing() {
    let (code, stdout, stderr, _, _dir) = check_config(GOOD);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(
        !std::path::Path::new("/nonexistent-dir-never-created").exists(),
        "check-config must not create the journal"
    );
}

#[test]
fn typo_in_a_key() {
    let text = GOOD.replace("interval = \"1s\"", "intervall = \"1s\"");
    assert_error(&text, 11, 1, "intervall");
}

#[test]
fn wrong_type() {
    let text = GOOD.replace("interval = \"1s\"", "interval = \"1s\"\nrise = \"two\"");
    assert_error(&text, 12, 8, "rise");
}

#[test]
fn duplicate_server_name() {
    let text = GOOD.replace(
        "[[source]]",
        "[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:5302\"\n[[source]]",
    );
    assert_error(&text, 9, 8, "knot");
}

#[test]
fn invalid_policy_expression() {
    let text = GOOD.replace("not server-running(knot)", "not server-runing(knot)");
    // The value starts at column 17; the bad name at offset 4 inside it, after the quote.
    assert_error(&text, 13, 22, "server-runing");
}

#[test]
fn run_refuses_a_bad_config_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, GOOD.replace("zones", "zonez")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:7:1:", path.display())),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(["check-config", "--config", "/nonexistent/dns-oops.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/dns-oops.toml"), "{stderr}");
}

/// The dns-oops configs shipped in `etc/examples/`; every other `.toml` there is named in
/// `NOT_CONFIGS`, so a new example cannot be left unchecked.
const EXAMPLES: &[&str] = &[
    "anycast-bird.toml",
    "anycast-exabgp.toml",
    "anycast-frr.toml",
    "anycast-gobgp.toml",
    "bind.toml",
    "dbus.toml",
    "dnstap.toml",
    "knot-dbus.toml",
    "knot-probe.toml",
    "knot.toml",
    "mqtt.toml",
    "notify.toml",
    "nsd.toml",
    "unbound.toml",
    "webhook.toml",
    "zone-health.toml",
];
/// `.toml` files in `etc/examples/` that are not dns-oops configs.
const NOT_CONFIGS: &[&str] = &["in-tree-example.test.toml"];

#[test]
fn every_shipped_example_passes_check_config() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/examples");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml") && !NOT_CONFIGS.contains(&name.as_str()))
        .collect();
    found.sort();
    assert_eq!(found, EXAMPLES, "etc/examples/*.toml and EXAMPLES differ");
    for name in EXAMPLES {
        let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
            .args(["check-config", "--config"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
