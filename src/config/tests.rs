use std::path::Path;
use std::time::Duration;

use super::*;
use crate::condition::ConditionId;
use crate::signal::SignalState;

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

[[server]]
name = "nsd"
address = "[::1]:53"

[[source]]
type = "probe"
server = "knot"
interval = "1s"
timeout = "500ms"
rise = 1
fall = 3
zones = ["B.TEST"]

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

[[channel]]
type = "exec"
command = ["/bin/true"]

[check]
critical-when = "server-crashed(knot)"
"#;

fn problems(text: &str) -> Vec<ConfigProblem> {
    match parse(text, Path::new("t.toml")) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(e) => e.problems().to_vec(),
    }
}

/// The first problem of `text`, as (line, column, message).
fn problem(text: &str) -> (usize, usize, String) {
    let p = problems(text);
    (p[0].line, p[0].column, p[0].message.clone())
}

/// Line and column of the first `needle` in `text`, offset by `skip` bytes.
fn position(text: &str, needle: &str, skip: usize) -> (usize, usize) {
    let offset = text.find(needle).unwrap_or_else(|| panic!("no `{needle}`"));
    line_column(text, offset + skip)
}

/// Asserts that the first problem of `text` is at `needle` (plus `skip` bytes) and says
/// `expected`.
fn assert_problem(text: &str, needle: &str, skip: usize, expected: &str) {
    let (line, column, message) = problem(text);
    assert_eq!(
        (line, column),
        position(text, needle, skip),
        "{message}\n{text}"
    );
    assert!(
        message.contains(expected),
        "expected `{expected}` in: {message}"
    );
}

#[test]
fn a_full_config_parses_with_values_and_defaults() {
    let c = parse(FULL, Path::new("t.toml")).unwrap();
    assert_eq!(c.node, "ams1");
    assert_eq!(c.path, Path::new("t.toml"));
    assert_eq!(c.journal.path, Path::new("/tmp/j.sqlite"));
    assert_eq!(c.journal.retention, Duration::from_secs(7 * 86400));
    assert_eq!(c.journal.max_signals, Some(100000));
    assert_eq!(c.http.listen, Some("127.0.0.1:9000".parse().unwrap()));
    let knot = c.server("knot").unwrap();
    assert_eq!(knot.address, "127.0.0.1:5301".parse().unwrap());
    assert_eq!(knot.zones, ["a.test.", "b.test."]);
    assert_eq!(knot.hold, Duration::from_secs(2));
    let nsd = c.server("nsd").unwrap();
    assert_eq!(nsd.address, "[::1]:53".parse().unwrap());
    assert!(nsd.zones.is_empty());
    assert_eq!(nsd.hold, Duration::ZERO);
    assert!(c.server("bind").is_none());
    match &c.sources[0] {
        SourceConfig::Probe(p) => {
            assert_eq!(p.server, "knot");
            assert_eq!(
                (p.interval, p.timeout, p.rise, p.fall),
                (Duration::from_secs(1), Duration::from_millis(500), 1, 3)
            );
            assert_eq!(p.zones.as_deref(), Some(&["b.test.".to_string()][..]));
        }
        other => panic!("{other:?}"),
    }
    match &c.sources[1] {
        SourceConfig::Process(p) => {
            assert_eq!(p.pid_file.as_deref(), Some(Path::new("/run/knot/knot.pid")));
            assert_eq!(p.pid, None);
        }
        other => panic!("{other:?}"),
    }
    match &c.channels[0] {
        ChannelConfig::Log(l) => {
            assert_eq!(l.name, "log");
            assert_eq!(l.path, None);
            assert!(l.filter.conditions.is_empty() && l.filter.servers.is_empty());
        }
        other => panic!("{other:?}"),
    }
    match &c.channels[1] {
        ChannelConfig::Exec(e) => {
            assert_eq!(e.name, "hook");
            assert_eq!(e.command, ["/usr/local/bin/hook", "--verbose"]);
            assert_eq!(e.timeout, Duration::from_secs(3));
            assert_eq!(
                e.filter.conditions,
                [ConditionId::ServerCrashed, ConditionId::ZoneUpdated]
            );
            assert_eq!(e.filter.servers, ["knot"]);
        }
        other => panic!("{other:?}"),
    }
    match &c.channels[2] {
        ChannelConfig::Exec(e) => {
            assert_eq!(e.name, "exec-2");
            assert_eq!(e.timeout, Duration::from_secs(10));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.check.critical_when.to_string(), "server-crashed(knot)");
    assert_eq!(
        c.check.warning_when.to_string(),
        "not all-zones-ready(knot)"
    );
}

#[test]
fn a_minimal_config_gets_the_defaults() {
    let c = parse(
        "[[server]]\nname = \"k\"\naddress = \"127.0.0.1:53\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(c.http.listen, Some(DEFAULT_HTTP.parse().unwrap()));
    assert_eq!(c.journal.path, Path::new(DEFAULT_JOURNAL));
    assert_eq!(c.journal.retention, Duration::from_secs(30 * 86400));
    assert_eq!(c.journal.max_signals, None);
    assert!(!c.node.is_empty());
    assert!(c.sources.is_empty() && c.channels.is_empty());
    assert_eq!(
        c.check.critical_when.to_string(),
        "not server-running(k) or server-crashed(k)"
    );
    assert_eq!(c.check.warning_when.to_string(), "false");
}

#[test]
fn default_check_policies_cover_every_server() {
    let c = parse(
        &FULL.replace("critical-when = \"server-crashed(knot)\"", ""),
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(
        c.check.critical_when.to_string(),
        "not server-running(knot) or server-crashed(knot) or not server-running(nsd) or server-crashed(nsd)"
    );
    // nsd has no zones, so no all-zones-ready for it.
    assert_eq!(
        c.check.warning_when.to_string(),
        "not all-zones-ready(knot)"
    );
}

#[test]
fn the_summary_says_what_is_set_up() {
    let c = parse(FULL, Path::new("t.toml")).unwrap();
    assert_eq!(
        c.summary(),
        "node ams1: 2 servers (knot at 127.0.0.1:5301, 2 zones; nsd at [::1]:53, 0 zones), \
         2 sources, 3 channels, journal /tmp/j.sqlite, http 127.0.0.1:9000"
    );
}

#[test]
fn errors_render_as_file_line_column_message() {
    let text = FULL.replace("rise = 1", "rize = 1");
    let e = parse(&text, Path::new("etc/x.toml")).unwrap_err();
    let (line, column) = position(&text, "rize", 0);
    let rendered = e.to_string();
    assert!(
        rendered.starts_with(&format!(
            "etc/x.toml:{line}:{column}: unknown field `rize`, expected one of `server`, `interval`"
        )),
        "{rendered}"
    );
    assert_eq!((line, column), (27, 1));
}

#[test]
fn an_unreadable_file_is_an_io_error() {
    let e = load(Path::new("/nonexistent/dns-oops.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }), "{e:?}");
    assert!(e.problems().is_empty());
    assert!(
        e.to_string()
            .starts_with("/nonexistent/dns-oops.toml: cannot read:"),
        "{e}"
    );
}

#[test]
fn typo_in_a_key_points_at_the_key() {
    let text = FULL.replace("rise = 1", "rize = 1");
    assert_problem(&text, "rize", 0, "unknown field `rize`, expected one of");
    let text = FULL.replace("retention", "retension");
    assert_problem(&text, "retension", 0, "unknown field `retension`");
    let text = FULL.replace("max-signals", "max_signals");
    assert_problem(&text, "max_signals", 0, "expected one of");
    let text = FULL.replace("pid-file", "pidfile");
    assert_problem(&text, "pidfile", 0, "unknown field `pidfile`");
    let text = FULL.replace("name = \"hook\"", "nam = \"hook\"");
    assert_problem(&text, "nam =", 0, "unknown field `nam`");
    let text = FULL.replace("[http]", "[htp]");
    assert_problem(&text, "htp", 0, "unknown field `htp`");
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = FULL.replace("rise = 1", "rise = \"x\"");
    assert_problem(
        &text,
        "rise = ",
        7,
        "`rise`: invalid type: string \"x\", expected u32",
    );
    let text = FULL.replace("max-signals = 100000", "max-signals = \"many\"");
    assert_problem(&text, "\"many\"", 0, "`max-signals`: invalid type");
    let text = FULL.replace("\"7d\"", "\"7 weeks ago\"");
    assert_problem(&text, "\"7 weeks", 0, "invalid duration `7 weeks ago`");
    let text = FULL.replace("interval = \"1s\"", "interval = 1");
    assert_problem(
        &text,
        "interval = ",
        11,
        "`interval`: invalid type: integer",
    );
    let text = FULL.replace("127.0.0.1@5301", "localhost:53");
    assert_problem(&text, "\"localhost", 0, "invalid address `localhost:53`");
    let text = FULL.replace("\"zone-updated\"]", "\"zone-update\"]");
    assert_problem(
        &text,
        "\"zone-update\"",
        0,
        "unknown condition `zone-update`; did you mean `zone-updated`?",
    );
    let text = FULL.replace("\"zone-updated\"]", "\"bogus\"]");
    assert_problem(
        &text,
        "\"bogus\"",
        0,
        "unknown condition `bogus`; known: server-running",
    );
}

#[test]
fn addresses_are_written_three_ways() {
    for (written, expected) in [
        ("127.0.0.1:5301", "127.0.0.1:5301"),
        ("127.0.0.1@5301", "127.0.0.1:5301"),
        ("[::1]:53", "[::1]:53"),
        ("::1@53", "[::1]:53"),
    ] {
        let c = parse(
            &format!("[[server]]\nname = \"k\"\naddress = \"{written}\"\n"),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.servers[0].address, expected.parse().unwrap(), "{written}");
    }
    let text = FULL.replace("127.0.0.1@5301", "127.0.0.1");
    assert_problem(&text, "\"127.0.0.1\"", 0, "invalid address");
}

#[test]
fn duplicate_server_name_points_at_the_second_and_names_the_first() {
    let text = FULL.replace("name = \"nsd\"", "name = \"knot\"");
    let (line, column, message) = problem(&text);
    assert_eq!((line, column), (19, 8), "{message}");
    assert!(
        message.contains("duplicate server name `knot`: already defined on line 13"),
        "{message}"
    );
}

#[test]
fn server_and_node_names_are_labels() {
    let text = FULL.replace("name = \"nsd\"", "name = \"NSD 1\"");
    assert_problem(&text, "\"NSD 1\"", 0, "server name `NSD 1` must be");
    let text = FULL.replace("node = \"ams1\"", "node = \"ams1.example\"");
    assert_problem(&text, "\"ams1.example\"", 0, "node `ams1.example` must be");
}

#[test]
fn no_server_is_an_error() {
    let (line, column, message) = problem("node = \"x\"\n");
    assert_eq!((line, column), (1, 1));
    assert!(message.contains("no [[server]] configured"), "{message}");
}

#[test]
fn unknown_servers_are_reported_where_they_are_named() {
    let text = FULL.replace(
        "server = \"knot\"\ntype = \"process\"",
        "server = \"bind\"\ntype = \"process\"",
    );
    assert_problem(
        &text,
        "\"bind\"",
        0,
        "unknown server `bind`; configured servers: `knot`, `nsd`",
    );
    let text = FULL.replace("servers = [\"knot\"]", "servers = [\"knot\", \"bind\"]");
    assert_problem(&text, "\"bind\"", 0, "unknown server `bind`");
}

#[test]
fn source_types_are_checked() {
    let text = FULL.replace("type = \"probe\"", "type = \"prob\"");
    assert_problem(
        &text,
        "\"prob\"",
        0,
        "unknown type `prob`; expected one of `probe`, `process`",
    );
    let text = FULL.replace("type = \"log\"", "type = \"syslog\"");
    assert_problem(&text, "\"syslog\"", 0, "expected one of `log`, `exec`");
    let text = FULL.replace("type = \"log\"", "path = \"-\"");
    let (line, column, message) = problem(&text);
    assert_eq!((line, column), (36, 1), "{message}");
    assert!(message.contains("missing `type`; expected one of `log`, `exec`"));
    let text = FULL.replace("type = \"probe\"", "type = 1");
    assert_problem(&text, "type = 1", 7, "`type` must be a string");
    let text = "[[server]]\nname = \"k\"\naddress = \"127.0.0.1:53\"\n[source]\ntype = \"probe\"\n";
    assert_problem(
        text,
        "[source]",
        0,
        "`source` must be an array of tables: write `[[source]]`",
    );
}

#[test]
fn probe_values_are_checked_where_written() {
    let text = FULL.replace("interval = \"1s\"", "interval = \"0s\"");
    assert_problem(&text, "\"0s\"", 0, "`interval` must be more than 0");
    let text = FULL.replace("fall = 3", "fall = 0");
    assert_problem(&text, "fall = 0", 7, "`fall` must be at least 1");
    let text = FULL.replace("[\"B.TEST\"]", "[\"b.test\", \"c.test\"]");
    assert_problem(
        &text,
        "\"c.test\"",
        0,
        "zone `c.test.` is not one of server `knot`'s zones",
    );
    let text = FULL.replace("[\"B.TEST\"]", "[\"b.test\", \"B.test.\"]");
    assert_problem(&text, "\"B.test.\"", 0, "zone `b.test.` is listed twice");
}

#[test]
fn process_sources_need_one_pid() {
    let text = FULL.replace(
        "pid-file = \"/run/knot/knot.pid\"",
        "pid-file = \"/run/knot/knot.pid\"\npid = 7",
    );
    assert_problem(&text, "pid = 7", 6, "one of `pid-file` and `pid`, not both");
    let text = FULL.replace("pid-file = \"/run/knot/knot.pid\"", "");
    let (line, _, message) = problem(&text);
    assert_eq!(line, 31, "{message}");
    assert!(message.contains("needs `pid-file`"), "{message}");
    let text = FULL.replace("pid-file = \"/run/knot/knot.pid\"", "pid = 0");
    assert_problem(&text, "pid = 0", 6, "more than 0");
}

#[test]
fn a_server_has_one_source_of_each_type() {
    let text = FULL.replace(
        "[[channel]]\ntype = \"log\"",
        "[[source]]\ntype = \"probe\"\nserver = \"knot\"\n\n[[channel]]\ntype = \"log\"",
    );
    let (line, column, message) = problem(&text);
    assert_eq!((line, column), (38, 10), "{message}");
    assert!(
        message.contains("server `knot` already has a `probe` source, on line 22"),
        "{message}"
    );
    // Another server's probe is fine.
    let text = FULL.replace(
        "[[channel]]\ntype = \"log\"",
        "[[source]]\ntype = \"probe\"\nserver = \"nsd\"\n\n[[channel]]\ntype = \"log\"",
    );
    parse(&text, Path::new("t.toml")).unwrap();
}

#[test]
fn channel_names_are_unique() {
    let text = FULL.replace("name = \"hook\"", "name = \"log\"");
    let (line, column, message) = problem(&text);
    assert_eq!((line, column), (41, 8), "{message}");
    assert!(
        message.contains("duplicate channel name `log`: already used on line 36"),
        "{message}"
    );
    // Two log channels without names clash on the default.
    let text = FULL.replace(
        "[[channel]]\ntype = \"log\"",
        "[[channel]]\ntype = \"log\"\n\n[[channel]]\ntype = \"log\"\npath = \"/tmp/x\"",
    );
    let (line, column, message) = problem(&text);
    assert_eq!((line, column), (39, 1), "{message}");
    assert!(
        message.contains("`log` (the default name of a log channel)"),
        "{message}"
    );
    let text = FULL.replace("name = \"hook\"", "name = \"\"");
    assert_problem(&text, "name = \"\"", 7, "a channel name cannot be empty");
}

#[test]
fn exec_channels_need_a_command() {
    let text = FULL.replace("command = [\"/bin/true\"]", "command = []");
    assert_problem(&text, "[]", 0, "`command` must name a program");
    let text = FULL.replace("command = [\"/bin/true\"]", "command = [\"\", \"x\"]");
    assert_problem(
        &text,
        "\"\", \"x\"",
        0,
        "the program in `command` cannot be empty",
    );
    let text = FULL.replace("command = [\"/bin/true\"]", "");
    assert!(
        problems(&text)[0]
            .message
            .contains("missing field `command`")
    );
    let text = FULL.replace("timeout = \"3s\"", "timeout = \"0ms\"");
    assert_problem(&text, "\"0ms\"", 0, "`timeout` must be more than 0");
}

#[test]
fn log_channel_path_dash_is_stdout() {
    let c = parse(
        &FULL.replace("type = \"log\"", "type = \"log\"\npath = \"-\""),
        Path::new("t.toml"),
    )
    .unwrap();
    assert!(matches!(&c.channels[0], ChannelConfig::Log(l) if l.path.is_none()));
    let c = parse(
        &FULL.replace(
            "type = \"log\"",
            "type = \"log\"\npath = \"/var/log/s.jsonl\"",
        ),
        Path::new("t.toml"),
    )
    .unwrap();
    assert!(
        matches!(&c.channels[0], ChannelConfig::Log(l) if l.path.as_deref() == Some(Path::new("/var/log/s.jsonl")))
    );
}

#[test]
fn http_can_be_turned_off() {
    let c = parse(
        &FULL.replace("\"127.0.0.1:9000\"", "\"off\""),
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(c.http.listen, None);
    assert!(c.summary().ends_with("http off"), "{}", c.summary());
    let text = FULL.replace("\"127.0.0.1:9000\"", "\"no\"");
    assert_problem(&text, "\"no\"", 0, "invalid listen address `no`");
}

#[test]
fn policy_errors_point_into_the_expression() {
    let text = FULL.replace(
        "\"server-crashed(knot)\"",
        "\"server-crashed(knot) and zone-redy(knot)\"",
    );
    let (line, column, message) = problem(&text);
    // `critical-when = "` is 17 characters; `server-crashed(knot) and ` 25 more.
    assert_eq!((line, column), (52, 43), "{message}");
    assert!(
        message
            .contains("invalid policy: unknown condition `zone-redy`; did you mean `zone-ready`?"),
        "{message}"
    );
    let text = FULL.replace(
        "server-crashed(knot)\"",
        "server-crashed(knot) or zone-ready(bind)\"",
    );
    assert_problem(&text, "bind)", 0, "invalid policy: unknown server `bind`");
    let text = FULL.replace("server-crashed(knot)\"", "server-crashed(knot) or\"");
    assert_problem(&text, "or\"", 2, "found the end of the expression");
    let text = FULL.replace("\"server-crashed(knot)\"", "\"\"");
    assert_problem(&text, "\"\"", 1, "empty expression");
    let text = FULL.replace(
        "[check]\n",
        "[check]\nwarning-when = \"zone-updated(knot)\"\n",
    );
    assert_problem(&text, "zone-updated(knot)", 0, "is an event");
}

#[test]
fn policy_errors_in_other_kinds_of_string() {
    // Literal strings: no escapes, one-character delimiter.
    let text = FULL.replace("\"server-crashed(knot)\"", "'server-crashed(knt)'");
    assert_problem(&text, "knt", 0, "unknown server `knt`");
    // Multi-line strings: the newline after the delimiter is not part of the value.
    let text = FULL.replace(
        "\"server-crashed(knot)\"",
        "\"\"\"\nserver-crashed(knot)\n  or server-running(knt)\"\"\"",
    );
    assert_problem(&text, "knt", 0, "unknown server `knt`");
    // With escapes the columns inside do not map: the value itself, and the column within.
    let text = FULL.replace("\"server-crashed(knot)\"", "\"server-crashed(\\u006bnt)\"");
    let (line, column, message) = problem(&text);
    assert_eq!((line, column), position(&text, "\"server-crashed(\\u", 0));
    assert!(
        message.contains("invalid policy at column 16 of the expression: unknown server `knt`"),
        "{message}"
    );
}

#[test]
fn zone_names_are_normalised_and_checked() {
    let c = parse(
        &FULL
            .replace(
                "[\"A.test\", \"b.test.\"]",
                "[\"Example.NET\", \".\", \"b.test.\"]",
            )
            .replace("[\"B.TEST\"]", "[\"example.net\"]"),
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(c.servers[0].zones, ["example.net.", ".", "b.test."]);
    let text = FULL.replace("\"A.test\"", "\"a..test\"");
    assert_problem(&text, "\"a..test\"", 0, "zone `a..test` has an empty label");
    let text = FULL.replace("\"A.test\"", "\"a test\"");
    assert_problem(&text, "\"a test\"", 0, "contains ` `");
    let text = FULL.replace("\"A.test\"", "\"\"");
    assert_problem(&text, "\"\", \"b", 0, "cannot be empty");
    let text = FULL.replace("\"A.test\"", "\"B.Test\"");
    assert_problem(
        &text,
        "\"b.test.\"",
        0,
        "zone `b.test.` is listed twice for server `knot`",
    );
    let long = "a".repeat(64);
    let text = FULL.replace("\"A.test\"", &format!("\"{long}.test\""));
    assert_problem(&text, &format!("\"{long}"), 0, "longer than 63");
}

#[test]
fn several_problems_are_reported_together_in_file_order() {
    let text = FULL
        .replace("type = \"log\"", "type = \"logg\"")
        .replace("rise = 1", "rize = 1")
        .replace("name = \"nsd\"", "name = \"NSD\"");
    let found = problems(&text);
    let lines: Vec<usize> = found.iter().map(|p| p.line).collect();
    assert_eq!(lines, [19, 27, 37], "{found:?}");
}

#[test]
fn syntax_errors_have_positions() {
    let (line, _, _) = problem("node = \"x\"\n[[server]\n");
    assert_eq!(line, 2);
    let (line, column, message) = problem("node = \"x\"\nnode = \"y\"\n");
    assert_eq!((line, column), (2, 1), "{message}");
    assert!(message.contains("duplicate key"), "{message}");
}

#[test]
fn signal_filters_match_conditions_and_servers() {
    use crate::signal::{Args, Signal};
    let signal = |server: &str, condition| Signal {
        seq: 1,
        time: chrono::Utc::now(),
        node: "n".into(),
        server: server.into(),
        condition,
        subject: None,
        state: SignalState::Met,
        args: Args::new(),
        source: "probe".into(),
    };
    let all = SignalFilter::default();
    assert!(all.matches(&signal("knot", ConditionId::ServerRunning)));
    let some = SignalFilter {
        conditions: vec![ConditionId::ServerCrashed],
        servers: vec!["knot".into()],
        ..SignalFilter::default()
    };
    assert!(some.matches(&signal("knot", ConditionId::ServerCrashed)));
    assert!(!some.matches(&signal("nsd", ConditionId::ServerCrashed)));
    assert!(!some.matches(&signal("knot", ConditionId::ServerRunning)));

    let zone = |subject: Option<&str>, state| Signal {
        subject: subject.map(str::to_string),
        state,
        ..signal("knot", ConditionId::ZoneReady)
    };
    let below = SignalFilter {
        subjects: vec!["*.example.".into(), "a.test.".into()],
        states: vec![SignalState::Met, SignalState::Event],
        ..SignalFilter::default()
    };
    assert!(below.matches(&zone(Some("shop.example."), SignalState::Met)));
    assert!(below.matches(&zone(Some("Deep.Shop.EXAMPLE."), SignalState::Event)));
    assert!(below.matches(&zone(Some("A.test."), SignalState::Met)));
    assert!(
        !below.matches(&zone(Some("example."), SignalState::Met)),
        "not the zone itself"
    );
    assert!(!below.matches(&zone(Some("badexample."), SignalState::Met)));
    assert!(!below.matches(&zone(Some("b.test."), SignalState::Met)));
    assert!(!below.matches(&zone(Some("shop.example."), SignalState::Cleared)));
    assert!(
        !below.matches(&zone(None, SignalState::Met)),
        "server-level signals have no subject"
    );
}

#[test]
fn channel_filters_for_subjects_and_states_are_checked() {
    let head = "node = \"n\"\n[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:53\"\nzones = [\"a.test.\"]\n";
    let config = parse(
        &format!(
            "{head}[[channel]]\ntype = \"log\"\nsubjects = [\"A.Test\", \"*.example.com\"]\nstates = [\"met\", \"cleared\"]\n"
        ),
        Path::new("f.toml"),
    )
    .unwrap();
    let filter = config.channels[0].filter();
    assert_eq!(filter.subjects, ["a.test.", "*.example.com."]);
    assert_eq!(filter.states, [SignalState::Met, SignalState::Cleared]);

    let e = parse(
        &format!(
            "{head}[[channel]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\nstates = [\"met\", \"gone\"]\nsubjects = [\"a..b\"]\n"
        ),
        Path::new("f.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("f.toml:10:18: unknown state `gone` in `states`; a signal's state is `met`, `cleared` or `event`"),
        "{e}"
    );
    assert!(
        e.contains("f.toml:11:13: `subjects`: zone `a..b` has an empty label"),
        "{e}"
    );
}

#[test]
fn shipped_configs_parse() {
    for (name, text) in [
        ("etc/dns-oops.toml", include_str!("../../etc/dns-oops.toml")),
        (
            "etc/examples/knot-probe.toml",
            include_str!("../../etc/examples/knot-probe.toml"),
        ),
        (
            "etc/examples/webhook.toml",
            include_str!("../../etc/examples/webhook.toml"),
        ),
    ] {
        if let Err(e) = parse(text, Path::new(name)) {
            panic!("{e}");
        }
    }
}

#[test]
fn the_knot_probe_example_is_the_lab() {
    let c = parse(
        include_str!("../../etc/examples/knot-probe.toml"),
        Path::new("knot-probe.toml"),
    )
    .unwrap();
    assert_eq!(c.node, "lab");
    assert_eq!(
        c.journal.path,
        Path::new("/tmp/dns-oops-lab/state/journal.sqlite")
    );
    assert_eq!(c.http.listen, Some("127.0.0.1:8054".parse().unwrap()));
    let [server] = &c.servers[..] else {
        panic!("{:?}", c.servers)
    };
    assert_eq!(server.name, "knot");
    assert_eq!(server.address, "127.0.0.1:5301".parse().unwrap());
    assert_eq!(server.zones, ["a.test.", "b.test.", "c.test."]);
    let [SourceConfig::Probe(probe), SourceConfig::Process(process)] = &c.sources[..] else {
        panic!("{:?}", c.sources)
    };
    assert_eq!(probe.server, "knot");
    assert_eq!(probe.interval, Duration::from_secs(1));
    assert_eq!(probe.timeout, Duration::from_millis(500));
    assert_eq!((probe.rise, probe.fall), (1, 1));
    assert_eq!(probe.zones, None);
    assert_eq!(
        process.pid_file.as_deref(),
        Some(Path::new("/tmp/dns-oops-lab/knotd.pid"))
    );
    let [ChannelConfig::Log(log)] = &c.channels[..] else {
        panic!("{:?}", c.channels)
    };
    assert_eq!(log.path, None);
    assert!(log.filter.conditions.is_empty() && log.filter.servers.is_empty());
}

#[test]
fn line_columns_count_characters() {
    assert_eq!(line_column("ab\ncé\nx", 7), (3, 1));
    assert_eq!(line_column("ab\ncé", 6), (2, 3));
    assert_eq!(line_column("ab\ncé", 5), (2, 2));
    assert_eq!(line_column("ab", 99), (1, 3));
}
