use std::path::Path;
use std::time::Duration;

use super::*;
use crate::condition::ConditionId;

const FULL: &str = r#"
node = "ams1"

[journal]
path = "/tmp/j.sqlite"
retention = "7d"
max-signals = 100000

[http]
listen = "127.0.0.1:9000"

[[server]]
name = "knot"
address = "127.0.0.1@5301"
zones = ["A.test", "b.test."]
hold = "2s"

[[source]]
type = "probe"
server = "knot"
interval = "1s"
timeout = "500ms"
rise = 1
fall = 3

[[source]]
server = "knot"
type = "process"
pid-file = "/run/knot/knot.pid"

[[channel]]
type = "log"

[[channel]]
type = "exec"
name = "hook"
command = ["/usr/local/bin/hook", "--verbose"]
timeout = "3s"
conditions = ["server-crashed", "zone-updated"]
servers = ["knot"]

[check]
critical-when = "server-crashed(knot)"
"#;

fn problems(text: &str) -> Vec<ConfigProblem> {
    match parse(text, Path::new("t.toml")) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(e) => e.problems().to_vec(),
    }
}

/// The single problem of `text`, as (line, column, message).
fn problem(text: &str) -> (usize, usize, String) {
    let p = problems(text);
    assert!(!p.is_empty());
    (p[0].line, p[0].column, p[0].message.clone())
}

#[test]
fn a_full_config_parses_with_values_and_defaults() {
    let c = parse(FULL, Path::new("t.toml")).unwrap();
    assert_eq!(c.node, "ams1");
    assert_eq!(c.journal.retention, Duration::from_secs(7 * 86400));
    assert_eq!(c.journal.max_signals, Some(100000));
    assert_eq!(c.http.listen, Some("127.0.0.1:9000".parse().unwrap()));
    let s = &c.servers[0];
    assert_eq!(s.address, "127.0.0.1:5301".parse().unwrap());
    assert_eq!(s.zones, ["a.test.", "b.test."]);
    assert_eq!(s.hold, Duration::from_secs(2));
    match &c.sources[0] {
        SourceConfig::Probe(p) => {
            assert_eq!(
                (p.interval, p.timeout, p.rise, p.fall),
                (Duration::from_secs(1), Duration::from_millis(500), 1, 3)
            );
            assert_eq!(p.zones, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&c.sources[1], SourceConfig::Process(p) if p.pid_file.is_some()));
    assert_eq!(c.channels[0].name(), "log-1");
    match &c.channels[1] {
        ChannelConfig::Exec(e) => {
            assert_eq!(e.name, "hook");
            assert_eq!(e.command, ["/usr/local/bin/hook", "--verbose"]);
            assert_eq!(
                e.filter.conditions,
                [ConditionId::ServerCrashed, ConditionId::ZoneUpdated]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.check.critical_when.to_string(), "server-crashed(knot)");
    assert_eq!(
        c.check.warning_when.to_string(),
        "not all-zones-ready(knot)"
    );
    assert!(c.summary().contains("node ams1"), "{}", c.summary());
}

#[test]
fn defaults() {
    let c = parse(
        "[[server]]\nname = \"k\"\naddress = \"127.0.0.1:53\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(c.http.listen, Some(DEFAULT_HTTP.parse().unwrap()));
    assert_eq!(c.journal.path, Path::new(DEFAULT_JOURNAL));
    assert_eq!(c.journal.retention, Duration::from_secs(30 * 86400));
    assert!(!c.node.is_empty());
    assert_eq!(
        c.check.critical_when.to_string(),
        "not server-running(k) or server-crashed(k)"
    );
    assert_eq!(c.check.warning_when.to_string(), "false");
}

#[test]
fn typo_in_a_key_points_at_the_key() {
    let text = FULL.replace("rise = 1", "rize = 1");
    let (line, col, msg) = problem(&text);
    assert_eq!((line, col), (23, 1), "{msg}");
    assert!(msg.contains("unknown field `rize`"), "{msg}");
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = FULL.replace("rise = 1", "rise = \"x\"");
    let (line, col, msg) = problem(&text);
    assert_eq!((line, col), (23, 8), "{msg}");
    assert!(msg.contains("u32"), "{msg}");
}

#[test]
fn errors_in_top_level_tables_have_positions() {
    let (line, col, msg) = problem(&FULL.replace("retention", "retension"));
    assert_eq!((line, col), (6, 1), "{msg}");
    let (line, col, msg) = problem(&FULL.replace("\"7d\"", "\"7 weeks ago\""));
    assert_eq!((line, col), (6, 13), "{msg}");
    assert!(msg.contains("invalid duration"), "{msg}");
    let (line, col, msg) = problem(&FULL.replace("127.0.0.1@5301", "localhost:53"));
    assert_eq!((line, col), (14, 11), "{msg}");
    assert!(msg.contains("invalid address"), "{msg}");
}

#[test]
fn duplicate_server_name_names_the_first() {
    let text = FULL.replace(
        "[[source]]\ntype = \"probe\"",
        "[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:53\"\n\n[[source]]\ntype = \"probe\"",
    );
    let (line, col, msg) = problem(&text);
    assert_eq!((line, col), (19, 8), "{msg}");
    assert!(msg.contains("already defined on line 13"), "{msg}");
}

#[test]
fn unknown_server_and_unknown_type() {
    let (line, _, msg) = problem(&FULL.replace(
        "server = \"knot\"\ntype = \"process\"",
        "server = \"nsd\"\ntype = \"process\"",
    ));
    assert_eq!(line, 26, "{msg}");
    assert!(
        msg.contains("unknown server `nsd`") && msg.contains("`knot`"),
        "{msg}"
    );
    let (line, col, msg) = problem(&FULL.replace("type = \"probe\"", "type = \"prob\""));
    assert_eq!((line, col), (19, 8), "{msg}");
    assert!(msg.contains("`probe`, `process`"), "{msg}");
    let (line, _, msg) = problem(&FULL.replace("type = \"log\"", "path = \"-\""));
    assert_eq!(line, 31, "{msg}");
    assert!(msg.contains("missing `type`"), "{msg}");
}

#[test]
fn bad_policy_points_into_the_expression() {
    let text = FULL.replace(
        "\"server-crashed(knot)\"",
        "\"server-crashed(knot) and zone-redy(knot)\"",
    );
    let (line, col, msg) = problem(&text);
    // `critical-when = "` is 17 characters; `server-crashed(knot) and ` 25 more.
    assert_eq!((line, col), (43, 43), "{msg}");
    assert!(msg.contains("did you mean `zone-ready`"), "{msg}");
    let (_, _, msg) = problem(&FULL.replace("server-crashed(knot)\"", "server-crashed(nsd)\""));
    assert!(msg.contains("unknown server `nsd`"), "{msg}");
}

#[test]
fn zone_names_are_checked() {
    let (_, _, msg) = problem(&FULL.replace("\"A.test\"", "\"a..test\""));
    assert!(msg.contains("empty label"), "{msg}");
    let (_, _, msg) = problem(&FULL.replace("\"A.test\"", "\"b.test\""));
    assert!(msg.contains("listed twice"), "{msg}");
}

#[test]
fn several_problems_are_reported_together() {
    let text = FULL
        .replace("rise = 1", "rize = 1")
        .replace("type = \"log\"", "type = \"logg\"");
    assert_eq!(problems(&text).len(), 2);
}

#[test]
fn syntax_errors_have_positions() {
    let (line, _, _) = problem("node = \"x\"\n[[server]\n");
    assert_eq!(line, 2);
}

#[test]
fn shipped_configs_parse() {
    for (name, text) in [
        ("etc/dns-oops.toml", include_str!("../../etc/dns-oops.toml")),
        (
            "etc/examples/knot-probe.toml",
            include_str!("../../etc/examples/knot-probe.toml"),
        ),
    ] {
        if let Err(e) = parse(text, Path::new(name)) {
            panic!("{e}");
        }
    }
}

#[test]
fn line_columns_count_characters() {
    assert_eq!(line_column("ab\ncé\nx", 7), (3, 1));
    assert_eq!(line_column("ab\ncé", 6), (2, 3));
    assert_eq!(line_column("ab", 99), (1, 3));
}
