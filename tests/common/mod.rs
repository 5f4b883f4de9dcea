//! Test harness: real programs on loopback, and the dns-oops binary reading its signal
//! lines from stdout.
#![allow(dead_code)] // each test file uses a part of the harness

pub mod bird;
pub mod bus;
pub mod pki;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dns_oops::signal::Signal;

/// Finds a program or fails the test naming the Debian package that has it.
pub fn require(program: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "`{program}` is not installed: install the Debian package `{package}` \
         (scripts/test installs every package the tests need)"
    );
}

/// A loopback port free for both UDP and TCP right now, and not handed out before in this
/// test process (ports are only reserved once a server binds them).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port");
}

/// A real knotd serving zones from a scratch directory.
pub struct Knot {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    zones: Vec<String>,
    /// Extra environment for knotd (e.g. `DBUS_SYSTEM_BUS_ADDRESS`).
    pub env: Vec<(String, String)>,
}

impl Knot {
    /// Writes a config and zone files (serial 1 each); call [`Knot::start`] to run it.
    pub fn new(dir: &Path, zones: &[&str]) -> Knot {
        require("knotd", "knot");
        require("knotc", "knot");
        let port = free_port();
        for sub in ["zones", "run", "db"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut zone_section = String::new();
        for zone in zones {
            zone_section.push_str(&format!("  - domain: {zone}\n"));
        }
        let config = format!(
            "server:\n    rundir: \"{d}/run\"\n    pidfile: \"{d}/knotd.pid\"\n    listen: 127.0.0.1@{port}\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: \"{d}/db\"\n\
             template:\n  - id: default\n    storage: \"{d}/zones\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n\
             zone:\n{zone_section}",
            d = dir.display()
        );
        std::fs::write(dir.join("knot.conf"), config).unwrap();
        let knot = Knot {
            dir: dir.to_path_buf(),
            port,
            child: None,
            zones: zones.iter().map(|z| z.to_string()).collect(),
            env: Vec::new(),
        };
        for zone in zones {
            knot.write_zone(zone, 1);
        }
        knot
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("knotd.pid")
    }

    pub fn write_zone(&self, zone: &str, serial: u32) {
        let text = format!(
            "$ORIGIN {zone}.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 3600 600 86400 300\n\
             @ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\n"
        );
        std::fs::write(self.dir.join("zones").join(format!("{zone}.zone")), text).unwrap();
    }

    pub fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("knotd.log")).unwrap();
        let child = Command::new(require("knotd", "knot"))
            .arg("-c")
            .arg(self.dir.join("knot.conf"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start knotd");
        self.child = Some(child);
    }

    /// Runs `knotc` against this knotd.
    pub fn knotc(&self, args: &[&str]) {
        let status = Command::new(require("knotc", "knot"))
            .arg("-c")
            .arg(self.dir.join("knot.conf"))
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "knotc {args:?} failed");
    }

    /// Sends SIGKILL and returns the moment it was sent; the child stays unreaped until
    /// [`Knot::reap`], like a server whose parent has not looked yet.
    pub fn kill9(&mut self) -> Instant {
        let pid = self.child.as_ref().expect("knotd runs").id();
        let at = Instant::now();
        unsafe_kill(pid, 9);
        at
    }

    pub fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to `pid` (with kill(1): no unsafe code in tests).
pub fn signal(pid: u32, signal: i32) {
    unsafe_kill(pid, signal);
}

fn unsafe_kill(pid: u32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

impl Drop for Knot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The demo's lab DNS server as a process of its own on a free port, told what to serve
/// on its stdin (`zone NAME SERIAL`, `remove NAME`, `behaviour B`).
pub struct LabProcess {
    pub port: u16,
    child: Child,
    commands: std::process::ChildStdin,
}

impl LabProcess {
    pub fn start(dir: &Path) -> LabProcess {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
            .args(["demo", "--lab-server", &format!("127.0.0.1:{port}")])
            .arg(dir.join("lab.pid"))
            .stdin(Stdio::piped())
            .spawn()
            .expect("start the lab server");
        let commands = child.stdin.take().unwrap();
        LabProcess {
            port,
            child,
            commands,
        }
    }

    /// Sends command lines (each ending in a newline).
    pub fn say(&mut self, lines: &str) {
        use std::io::Write;
        self.commands.write_all(lines.as_bytes()).unwrap();
        self.commands.flush().unwrap();
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The start of a config that watches `knot` as node `it`: the journal under `dir/state`,
/// HTTP on `http`, a probe every 250 ms with rise and fall 1, and, with `process`, the
/// process source on knotd's pid file. Tests append their channels and the rest.
pub fn knot_config_head(dir: &Path, knot: &Knot, http: u16, process: bool) -> String {
    let zones: Vec<String> = knot.zones.iter().map(|z| format!("\"{z}.\"")).collect();
    let mut text = format!(
        r#"node = "it"
[journal]
path = "{dir}/state/journal.sqlite"
[http]
listen = "127.0.0.1:{http}"
[[server]]
name = "knot"
address = "{addr}"
zones = [{zones}]
[[source]]
type = "probe"
server = "knot"
interval = "250ms"
timeout = "200ms"
rise = 1
fall = 1
"#,
        dir = dir.display(),
        addr = knot.addr(),
        zones = zones.join(", "),
    );
    if process {
        text.push_str(&format!(
            "[[source]]\ntype = \"process\"\nserver = \"knot\"\npid-file = \"{}\"\n",
            knot.pid_file().display()
        ));
    }
    text
}

/// A dns-oops daemon whose log channel writes signal lines to stdout.
pub struct Daemon {
    child: Child,
    lines: mpsc::Receiver<(Instant, Signal)>,
    pub seen: Vec<Signal>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("DNS_OOPS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dns-oops");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let signal: Signal = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not a signal ({e}): {line}"));
                if tx.send((Instant::now(), signal)).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the next signal matching `pred`, returning it and when it arrived.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Signal) -> bool,
    ) -> (Instant, Signal) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, signal)) => {
                    self.seen.push(signal.clone());
                    if pred(&signal) {
                        return (at, signal);
                    }
                }
                Err(_) => panic!(
                    "no signal `{what}` within {timeout:?}; seen so far:\n{}",
                    self.seen
                        .iter()
                        .map(|s| s.to_json_line())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }

    /// Collects every signal that arrives within `quiet` of the previous one.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Signal> {
        let mut out = Vec::new();
        while let Ok((_, signal)) = self.lines.recv_timeout(quiet) {
            self.seen.push(signal.clone());
            out.push(signal);
        }
        out
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), 15);
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `condition subject state` of a signal.
pub fn brief(s: &Signal) -> String {
    format!("{} {} {}", s.condition, s.subject_or_dash(), s.state)
}

/// Runs `dns-oops <args> --url <the daemon's HTTP API>`: (exit success, stdout, stderr).
pub fn dns_oops_cli(http: u16, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(args)
        .arg("--url")
        .arg(format!("http://127.0.0.1:{http}"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `GET path` from the daemon's HTTP API on `http`, waiting up to 20 s for it to listen;
/// the body of a 200 answer (anything else fails the test).
pub fn http_get(http: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", http)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("dns-oops does not listen on {http}: {e}"),
        }
    };
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}

/// The resident memory of process `pid` in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
