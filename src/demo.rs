//! `dns-oops demo`: a self-contained lab on loopback that needs nothing installed.
//!
//! The demo starts the small authoritative server of [`crate::lab`] as a child process
//! named `lab` (a real process, so that it can really be killed), runs the daemon in-process
//! as node `demo` with a probe and a process source watching it, and plays a scenario that
//! makes every condition of the spine happen within the first minute: zones load, a serial
//! is bumped, a zone disappears and returns, the server is killed with SIGKILL and comes
//! back, and is stopped gracefully and comes back. It prints each signal as it arrives
//! (read from the daemon's own HTTP API, like `dns-oops watch`). At the start it says which
//! sources it hears the lab through, and where the snippets that wire Knot DNS, NSD, BIND and
//! Unbound to dns-oops are ([`WIRING`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};

use crate::condition::ConditionId;
use crate::signal::{Signal, SignalState};

/// Prints a line for the person watching; exits quietly if they closed the pipe.
macro_rules! say {
    ($($arg:tt)*) => {
        crate::cli::emit(&format!("{}\n", format_args!($($arg)*)))
    };
}

const ZONES: [&str; 3] = ["example.com.", "example.net.", "example.org."];
const FIRST_SERIAL: u32 = 2026112201;

/// Entry point of the hidden `demo --lab-server ADDR PID_FILE`: the lab DNS server process.
pub async fn lab_server_main(addr: &str, pid_file: &str) -> ExitCode {
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lab: bad address {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match crate::lab::run_lab_process(addr, Path::new(pid_file), &[]).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The lab DNS server child process and its command pipe.
struct Lab {
    addr: SocketAddr,
    pid_file: PathBuf,
    child: Child,
    commands: ChildStdin,
    zones: Vec<(String, u32)>,
}

impl Lab {
    async fn start(
        addr: SocketAddr,
        pid_file: &Path,
        zones: Vec<(String, u32)>,
    ) -> std::io::Result<Lab> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("demo")
            .arg("--lab-server")
            .arg(addr.to_string())
            .arg(pid_file)
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let commands = child.stdin.take().expect("stdin is piped");
        let mut lab = Lab {
            addr,
            pid_file: pid_file.to_path_buf(),
            child,
            commands,
            zones: Vec::new(),
        };
        for (zone, serial) in zones {
            lab.set_zone(&zone, serial).await?;
        }
        Ok(lab)
    }

    async fn command(&mut self, line: &str) -> std::io::Result<()> {
        self.commands
            .write_all(format!("{line}\n").as_bytes())
            .await?;
        self.commands.flush().await
    }

    async fn set_zone(&mut self, zone: &str, serial: u32) -> std::io::Result<()> {
        self.zones.retain(|(z, _)| z != zone);
        self.zones.push((zone.to_string(), serial));
        self.command(&format!("zone {zone} {serial}")).await
    }

    async fn remove_zone(&mut self, zone: &str) -> std::io::Result<()> {
        self.zones.retain(|(z, _)| z != zone);
        self.command(&format!("remove {zone}")).await
    }

    async fn kill(&mut self) -> std::io::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await.map(drop)
    }

    async fn stop(&mut self) -> std::io::Result<()> {
        self.command("stop").await?;
        self.child.wait().await.map(drop)
    }

    async fn restart(&mut self) -> std::io::Result<()> {
        let zones = std::mem::take(&mut self.zones);
        *self = Lab::start(self.addr, &self.pid_file, zones).await?;
        Ok(())
    }
}

/// Signals seen by the printer, so the scenario can report timings.
type Seen = Arc<Mutex<Vec<Signal>>>;

/// Runs the demo.
pub async fn run(http: SocketAddr, push: SocketAddr, once: bool, speed: f64) -> ExitCode {
    match run_inner(http, push, once, speed).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dns-oops demo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the demo config is invalid (a bug): {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error("the daemon did not start")]
    NotStarted,
}

async fn run_inner(
    http: SocketAddr,
    push: SocketAddr,
    once: bool,
    speed: f64,
) -> Result<(), DemoError> {
    let dir = std::env::temp_dir().join(format!("dns-oops-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pid_file = dir.join("lab.pid");
    let lab_addr = free_udp_tcp_port()?;
    let (cert, key) =
        crate::push::tls::ensure_self_signed(&dir, &["localhost", "127.0.0.1", "::1"])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    let config_text = demo_config(
        lab_addr,
        &pid_file,
        &dir.join("journal.sqlite"),
        http,
        &PushFiles {
            listen: push,
            cert: &cert,
            key: &key,
        },
    );
    let config_path = dir.join("dns-oops.toml");
    std::fs::write(&config_path, &config_text)?;
    let config = crate::config::parse(&config_text, &config_path)?;

    say!("dns-oops demo — everything runs on loopback and stops with Ctrl-C.");
    say!(
        "  lab DNS server : {lab_addr} (a child process), zones {}",
        ZONES.join(" ")
    );
    say!(
        "  daemon         : node `demo`, config {}",
        config_path.display()
    );
    say_wiring(&config);
    say!("");

    let mut lab = Lab::start(
        lab_addr,
        &pid_file,
        vec![
            (ZONES[0].into(), FIRST_SERIAL),
            (ZONES[1].into(), FIRST_SERIAL),
        ],
    )
    .await?;

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(crate::daemon::run(
        config,
        async move {
            tokio::select! {
                _ = stop_rx => {}
                () = crate::cli::shutdown_signal() => {}
            }
        },
        move |running| {
            let push = running.push_addrs.first().map(|(_, addr)| *addr);
            let _ = started_tx.send(running.http_addr.zip(push));
        },
    ));
    let Ok(Some((http_addr, push_addr))) = started_rx.await else {
        return match daemon.await {
            Ok(Err(e)) => Err(e.into()),
            _ => Err(DemoError::NotStarted),
        };
    };
    let url = format!("http://{http_addr}");
    say!("  HTTP API       : {url}/ (dashboard), {url}/api/v1/conditions");
    say!(
        "  DNS Push (TLS) : {push_addr}, zone demo.oops.internal., self-signed certificate {}",
        cert.display()
    );
    say!("  try, in another terminal:");
    say!(
        "    dns-oops subscribe zone-ready.lab.demo.oops.internal. TXT --server {push_addr} --ca {}",
        cert.display()
    );
    say!("");

    let seen: Seen = Arc::default();
    let printer_seen = seen.clone();
    let printer_url = url.clone();
    let printer = tokio::spawn(async move {
        let print = move |signal: &Signal| {
            say!("    {}", describe(signal));
            printer_seen
                .lock()
                .expect("printer lock")
                .push(signal.clone());
        };
        if let Err(e) = crate::http::client::watch(&printer_url, Some(0), print).await {
            eprintln!("demo: watching signals: {e}");
        }
    });

    let scenario = async {
        let pause = |secs: f64| tokio::time::sleep(Duration::from_secs_f64(secs / speed.max(0.01)));
        step("The lab server starts with two of its three zones; the probe finds them.");
        pause(5.0).await;
        step("example.org. is loaded: every zone is ready now.");
        lab.set_zone(ZONES[2], FIRST_SERIAL).await?;
        pause(5.0).await;
        step("example.net. gets a new serial.");
        lab.set_zone(ZONES[1], FIRST_SERIAL + 1).await?;
        pause(5.0).await;
        step("example.com. disappears from the server …");
        lab.remove_zone(ZONES[0]).await?;
        pause(4.0).await;
        step("… and comes back.");
        lab.set_zone(ZONES[0], FIRST_SERIAL).await?;
        pause(5.0).await;
        step("kill -9 of the lab server: the process source sees it at once.");
        let killed_at = chrono::Utc::now();
        lab.kill().await?;
        pause(4.0).await;
        report_crash_latency(&seen, killed_at);
        step("The lab server is started again.");
        lab.restart().await?;
        pause(5.0).await;
        step("A graceful stop (the server removes its pid file): a stop, not a crash.");
        lab.stop().await?;
        pause(4.0).await;
        step("The lab server is started again.");
        lab.restart().await?;
        pause(5.0).await;
        Ok::<(), std::io::Error>(())
    };
    tokio::select! {
        result = scenario => result?,
        () = crate::cli::shutdown_signal() => {
            let _ = stop_tx.send(());
            let _ = daemon.await;
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
    }

    say!("");
    say!("The scenario is done. Try, in another terminal:");
    say!("  cargo run --release -- status --url {url}");
    say!("  cargo run --release -- watch --url {url} --after 0");
    say!("  curl -s {url}/api/v1/conditions");
    say!("  curl -s {url}/metrics | grep dns_oops_");
    say!(
        "  kill -9 $(cat {})   # crash the lab server yourself",
        pid_file.display()
    );
    say!("  open {url}/ in a browser for the dashboard");
    say!("With a real DNS server (README, \"Wiring your DNS server\"), e.g. Knot DNS:");
    say!(
        "  dns-oops run --config etc/examples/knot.toml & knotd -c etc/examples/servers/knot.conf"
    );
    if once {
        printer.abort();
        let _ = stop_tx.send(());
    } else {
        say!("The lab keeps running; Ctrl-C stops everything.");
    }
    match daemon.await {
        Ok(result) => result?,
        Err(e) => eprintln!("demo: daemon task: {e}"),
    }
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// How a real DNS server is wired to dns-oops: the server-side snippet in
/// `etc/examples/servers/`, the dns-oops config in `etc/examples/`, and what it hears.
pub const WIRING: [(&str, &str, &str, &str); 4] = [
    (
        "Knot DNS",
        "etc/examples/servers/knot.conf",
        "etc/examples/knot.toml",
        "D-Bus, control socket, NOTIFY, dnstap, pid file",
    ),
    (
        "NSD",
        "etc/examples/servers/nsd.conf",
        "etc/examples/nsd.toml",
        "control socket, NOTIFY, dnstap, pid file",
    ),
    (
        "BIND",
        "etc/examples/servers/named.conf",
        "etc/examples/bind.toml",
        "rndc, NOTIFY, dnstap, pid file",
    ),
    (
        "Unbound",
        "etc/examples/servers/unbound.conf",
        "etc/examples/unbound.toml",
        "control socket, dnstap, pid file",
    ),
];

/// What the demo hears its lab server through, read from its own config, and where the
/// wiring of real servers is.
fn say_wiring(config: &crate::config::Config) {
    let sources: Vec<String> = config
        .sources
        .iter()
        .map(|source| match source {
            crate::config::SourceConfig::Probe(p) => format!(
                "probe (SOA every {:?}: server-running, zone-ready, zone-updated)",
                p.interval
            ),
            crate::config::SourceConfig::Process(_) => {
                "process (pid file: server-crashed, server-stopping)".to_string()
            }
            other => other.kind().to_string(),
        })
        .collect();
    say!("  sources        : {}", sources.join(" + "));
    say!("  real servers   : each wired with a snippet for the server and a config for dns-oops");
    say!("                   (README, \"Wiring your DNS server\"):");
    for (server, snippet, toml, hears) in WIRING {
        say!("                   {server:<8} {snippet:<33} + {toml:<25} {hears}");
    }
}

fn step(text: &str) {
    say!("  ▶ {text}");
}

fn report_crash_latency(seen: &Seen, killed_at: chrono::DateTime<chrono::Utc>) {
    let seen = seen.lock().expect("printer lock");
    let crash = seen.iter().find(|s| {
        s.condition == ConditionId::ServerCrashed
            && s.state == SignalState::Met
            && s.time >= killed_at
    });
    match crash {
        Some(s) => {
            let ms = (s.time - killed_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            say!("    (server-crashed was signalled {ms:.1} ms after the kill)");
        }
        None => say!("    (no server-crashed signal seen yet)"),
    }
}

/// One line per signal for people: `#12 08:00:03.123 zone-ready example.org. met serial=… (probe)`.
pub fn describe(signal: &Signal) -> String {
    let args: Vec<String> = signal
        .args
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    let subject = signal
        .subject
        .as_deref()
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    format!(
        "#{:<4} {} {:<16} {}{}{}{} ({})",
        signal.seq,
        signal.time.format("%H:%M:%S%.3f"),
        signal.condition,
        signal.state,
        subject,
        if args.is_empty() { "" } else { " " },
        args.join(" "),
        signal.source
    )
}

/// A loopback port that is free for both UDP and TCP right now.
fn free_udp_tcp_port() -> std::io::Result<SocketAddr> {
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let addr = udp.local_addr()?;
        if std::net::TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free loopback port for the lab server",
    ))
}

/// The demo's push channel: where it listens and its certificate.
struct PushFiles<'a> {
    listen: SocketAddr,
    cert: &'a Path,
    key: &'a Path,
}

fn demo_config(
    lab: SocketAddr,
    pid_file: &Path,
    journal: &Path,
    http: SocketAddr,
    push: &PushFiles,
) -> String {
    let zones: Vec<String> = ZONES.iter().map(|z| format!("\"{z}\"")).collect();
    format!(
        r#"# The demo's configuration, written by `dns-oops demo`.
node = "demo"

[journal]
path = "{journal}"

[http]
listen = "{http}"

[[server]]
name = "lab"
address = "{lab}"
zones = [{zones}]

[[source]]
type = "probe"
server = "lab"
interval = "1s"
timeout = "300ms"
rise = 1
fall = 1

[[source]]
type = "process"
server = "lab"
pid-file = "{pid_file}"

[[channel]]
type = "push"
listen = "{push_listen}"
cert = "{cert}"
key = "{key}"
"#,
        push_listen = push.listen,
        cert = push.cert.display(),
        key = push.key.display(),
        journal = journal.display(),
        pid_file = pid_file.display(),
        zones = zones.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        let text = demo_config(
            "127.0.0.1:5399".parse().unwrap(),
            Path::new("/tmp/x/lab.pid"),
            Path::new("/tmp/x/journal.sqlite"),
            "127.0.0.1:0".parse().unwrap(),
            &PushFiles {
                listen: "127.0.0.1:0".parse().unwrap(),
                cert: Path::new("/tmp/x/cert.pem"),
                key: Path::new("/tmp/x/key.pem"),
            },
        );
        let config = crate::config::parse(&text, Path::new("demo.toml")).unwrap();
        assert_eq!(config.node, "demo");
        assert_eq!(config.servers[0].zones.len(), 3);
    }

    #[test]
    fn the_wiring_it_prints_is_shipped() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (server, snippet, toml, _) in WIRING {
            assert!(root.join(snippet).is_file(), "{server}: {snippet}");
            let path = root.join(toml);
            let text = std::fs::read_to_string(&path).unwrap();
            crate::config::parse(&text, &path).unwrap_or_else(|e| panic!("{toml}: {e}"));
        }
    }
}
