//! The `process` source: watches the DNS server's process and reports its exit at once.
//!
//! The process is found through its pid file (read again whenever it is gone, so a
//! restarted server is followed) or a fixed pid, and watched through a pidfd (Linux ≥ 5.3),
//! which becomes readable the moment the process exits: no polling, so a `kill -9` is an
//! observation within a millisecond or so.
//!
//! How an exit is told apart:
//!
//! * the pid file is still there with the same pid: the server did not clean up, it
//!   crashed or was killed → `server-crashed` met;
//! * the pid file is gone or names another process (knotd, nsd, named and unbound remove
//!   it when they stop cleanly) → `server-stopping` met, with `reason` "process exited and
//!   removed its pid file";
//! * a pid file whose process does not exist (at start, or a rewritten one) is a crash that
//!   happened while nobody watched → `server-crashed` met;
//! * with a fixed `pid` and no pid file nothing tells a stop from a crash: an exit is
//!   reported as `server-crashed`, and the source ends (there is no next process to watch).
//!
//! Nothing is sent when a live process is found: the probe's `server-running` clears a
//! crash or stop in the engine.
//!
//! A pid file is watched once per version (its pid, inode and modification time): after an
//! exit has been reported, the file left behind is not watched again even if its pid comes
//! back to life as another process (pid reuse), until the file is written anew. A pid file
//! that names a live process when the source starts is trusted: its process may have
//! reused the pid of a server that died unwatched, which cannot be told from here.
//!
//! The exit status is reported (`exit-status` argument, e.g. `signal 9 (SIGKILL)` or
//! `exit 1`) when it can be read: `/proc/<pid>/stat` holds it while the exited process is a
//! zombie its parent has not reaped yet. A server started by systemd is reaped at once, so
//! it is often absent there.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::condition::ConditionId;
use crate::health::Health;
use crate::signal::{Evidence, Observation};

/// The source name in signals.
pub const SOURCE: &str = "process";
/// How often a missing, unreadable or already reported pid file is read again.
const PID_FILE_POLL: Duration = Duration::from_millis(100);
/// How long to wait before trying again when a pidfd cannot be opened or waited on.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);
/// The `reason` argument of a clean stop.
const STOP_REASON: &str = "process exited and removed its pid file";

/// What the process source watches. With both set, the pid file wins.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    pub server: String,
    pub pid_file: Option<PathBuf>,
    pub pid: Option<u32>,
}

/// Watches until `tx` closes (or, with a fixed pid, until that process has exited). Its
/// health is `connected` while it watches a process or waits for a pid file (a missing
/// pid file is a stopped server, which it sees), `stalled` while the pid file holds no
/// process id or the process cannot be watched, `gone` when it cannot watch at all.
pub async fn run_process_watch(
    settings: ProcessSettings,
    tx: mpsc::Sender<Observation>,
    health: Health,
) {
    let watch = async {
        match (&settings.pid_file, settings.pid) {
            (Some(path), _) => watch_pid_file(&settings.server, path, &tx, &health).await,
            (None, Some(pid)) => watch_pid(&settings.server, pid, &tx, &health).await,
            (None, None) => tracing::error!(
                server = settings.server,
                "the process source has neither a pid file nor a pid to watch"
            ),
        }
    };
    tokio::select! {
        _ = tx.closed() => {}
        _ = watch => {}
    }
}

/// One version of a pid file: the pid it names, and which write of the file that was.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PidFileVersion {
    pid: u32,
    inode: u64,
    modified: Option<SystemTime>,
}

/// What a pid file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PidFile {
    Missing,
    Garbage,
    Pid(PidFileVersion),
}

fn read_pid_file(path: &Path) -> PidFile {
    let (Ok(metadata), Ok(text)) = (std::fs::metadata(path), std::fs::read_to_string(path)) else {
        return PidFile::Missing;
    };
    match parse_pid(&text) {
        Some(pid) => PidFile::Pid(PidFileVersion {
            pid,
            inode: metadata.ino(),
            modified: metadata.modified().ok(),
        }),
        None => PidFile::Garbage,
    }
}

/// A pid file's text as a process id: one positive number, whitespace around it allowed.
fn parse_pid(text: &str) -> Option<u32> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|&pid| pid > 0 && i32::try_from(pid).is_ok())
}

async fn watch_pid_file(
    server: &str,
    path: &Path,
    tx: &mpsc::Sender<Observation>,
    health: &Health,
) {
    let mut warned_garbage = false;
    // The version of the pid file whose exit was reported last.
    let mut reported: Option<PidFileVersion> = None;
    loop {
        let version = match read_pid_file(path) {
            PidFile::Pid(version) if reported.as_ref() != Some(&version) => version,
            PidFile::Garbage => {
                health.stalled(format!("pid file {} holds no process id", path.display()));
                if !warned_garbage {
                    tracing::warn!(
                        server,
                        "pid file {} does not hold a process id; waiting for one",
                        path.display()
                    );
                    warned_garbage = true;
                }
                tokio::time::sleep(PID_FILE_POLL).await;
                continue;
            }
            PidFile::Pid(_) | PidFile::Missing => {
                health.connected(format!(
                    "waiting for a new process in pid file {}",
                    path.display()
                ));
                warned_garbage = false;
                tokio::time::sleep(PID_FILE_POLL).await;
                continue;
            }
        };
        warned_garbage = false;
        let pid = version.pid;
        let exit_status = match open_pidfd(pid) {
            Ok(pidfd) => {
                tracing::debug!(server, pid, "watching the server process");
                health.connected(format!("watching process {pid} ({})", path.display()));
                if let Err(e) = wait_for_exit(pidfd).await {
                    health.stalled(format!("cannot wait for process {pid} to exit: {e}"));
                    tracing::warn!(server, pid, "cannot wait for the process to exit: {e}");
                    tokio::time::sleep(RETRY_AFTER_ERROR).await;
                    continue;
                }
                zombie_exit_status(pid)
            }
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                tracing::info!(
                    server,
                    pid,
                    "pid file {} names no running process: the server died unwatched",
                    path.display()
                );
                None
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                health.gone("cannot watch processes: pidfd_open needs Linux 5.3");
                tracing::error!(server, "cannot watch processes: pidfd_open needs Linux 5.3");
                return;
            }
            Err(e) => {
                health.stalled(format!("cannot watch process {pid}: {e}"));
                tracing::warn!(server, pid, "cannot watch the process: {e}");
                tokio::time::sleep(RETRY_AFTER_ERROR).await;
                continue;
            }
        };
        let cleaned_up = !matches!(read_pid_file(path), PidFile::Pid(now) if now.pid == pid);
        reported = Some(version);
        let observation = if cleaned_up {
            Observation::new(
                SOURCE,
                server,
                ConditionId::ServerStopping,
                None,
                Evidence::Assert { met: true },
            )
            .arg("reason", STOP_REASON)
        } else {
            crashed(server)
        };
        if tx
            .send(with_exit_status(observation, exit_status))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Watches the one process `pid` and reports its exit as a crash.
async fn watch_pid(server: &str, pid: u32, tx: &mpsc::Sender<Observation>, health: &Health) {
    let exit_status = match open_pidfd(pid) {
        Ok(pidfd) => {
            health.connected(format!("watching process {pid}"));
            match wait_for_exit(pidfd).await {
                Ok(()) => zombie_exit_status(pid),
                Err(e) => {
                    health.gone(format!("cannot wait for process {pid} to exit: {e}"));
                    tracing::error!(server, pid, "cannot wait for the process to exit: {e}");
                    return;
                }
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => None,
        Err(e) => {
            health.gone(format!("cannot watch process {pid}: {e}"));
            tracing::error!(server, pid, "cannot watch the process: {e}");
            return;
        }
    };
    health.gone(format!("process {pid} has exited; nothing left to watch"));
    // The source ends either way.
    let _ = tx
        .send(with_exit_status(crashed(server), exit_status))
        .await;
}

fn crashed(server: &str) -> Observation {
    Observation::new(
        SOURCE,
        server,
        ConditionId::ServerCrashed,
        None,
        Evidence::Assert { met: true },
    )
}

fn with_exit_status(observation: Observation, exit_status: Option<String>) -> Observation {
    match exit_status {
        Some(status) => observation.arg("exit-status", status),
        None => observation,
    }
}

fn open_pidfd(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd =
        i32::try_from(fd).map_err(|_| io::Error::other("pidfd_open returned no descriptor"))?;
    // SAFETY: the descriptor was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until the pidfd's process exits (the pidfd becomes readable).
async fn wait_for_exit(pidfd: OwnedFd) -> io::Result<()> {
    // SAFETY: an OwnedFd is a valid open descriptor, it stays open and unchanged while the
    // AsyncFd owns it, and its `as_raw_fd` always returns that descriptor.
    let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    // Readiness is not cleared: the pidfd is dropped right after.
    let _exited = pidfd.readable().await?;
    Ok(())
}

/// The exit status of `pid` if it is a zombie (exited, not yet reaped), in words.
fn zombie_exit_status(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    exit_status_from_stat(&stat)
}

/// The exit status in a `/proc/<pid>/stat` line, when the process is a zombie: field 52,
/// `exit_code`, a waitpid status.
fn exit_status_from_stat(stat: &str) -> Option<String> {
    // Field 2, the command name, is in parentheses and may contain spaces and parentheses
    // itself: the fields after it start after the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3, the state.
    if fields.first() != Some(&"Z") {
        return None;
    }
    let status: i32 = fields.get(52 - 3)?.parse().ok()?;
    Some(describe_wait_status(status))
}

/// A waitpid status in words: `exit 1`, `signal 9 (SIGKILL)`,
/// `signal 11 (SIGSEGV), core dumped`.
pub fn describe_wait_status(status: i32) -> String {
    if !libc::WIFSIGNALED(status) {
        return format!("exit {}", libc::WEXITSTATUS(status));
    }
    let signal = libc::WTERMSIG(status);
    let mut text = match signal_name(signal) {
        Some(name) => format!("signal {signal} ({name})"),
        None => format!("signal {signal}"),
    };
    if libc::WCOREDUMP(status) {
        text.push_str(", core dumped");
    }
    text
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    fn settings(path: &Path) -> ProcessSettings {
        ProcessSettings {
            server: "knot".into(),
            pid_file: Some(path.to_path_buf()),
            pid: None,
        }
    }

    async fn next(rx: &mut mpsc::Receiver<Observation>, within: Duration) -> Option<Observation> {
        tokio::time::timeout(within, rx.recv()).await.ok().flatten()
    }

    fn sleeper() -> Child {
        Command::new("sleep").arg("30").spawn().unwrap()
    }

    fn kill(child: &Child, signal: i32) {
        // SAFETY: sending a signal to our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    }

    #[tokio::test]
    async fn kill_9_is_a_crash_seen_at_once_with_the_signal() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("server.pid");
        let mut child = sleeper();
        std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(run_process_watch(
            settings(&pid_file),
            tx,
            crate::health::Health::detached("process", "knot"),
        ));
        // Let the watcher find the process.
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill(&child, libc::SIGKILL);
        let obs = next(&mut rx, Duration::from_secs(2))
            .await
            .expect("an observation");
        assert_eq!(obs.condition, ConditionId::ServerCrashed);
        assert_eq!(obs.evidence, Evidence::Assert { met: true });
        assert_eq!(obs.source, "process");
        assert_eq!(obs.args["exit-status"], "signal 9 (SIGKILL)");
        // The latency (< 100 ms) is asserted end to end in tests/knot_spine.rs.
        child.wait().unwrap();
        // The pid file left behind is not reported twice.
        assert!(next(&mut rx, Duration::from_millis(400)).await.is_none());
    }

    #[tokio::test]
    async fn a_clean_stop_removes_the_pid_file_and_is_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("server.pid");
        let script = format!(
            "trap 'rm -f {p}; exit 0' TERM; echo $$ > {p}; while :; do sleep 0.05; done",
            p = pid_file.display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(run_process_watch(
            settings(&pid_file),
            tx,
            crate::health::Health::detached("process", "knot"),
        ));
        tokio::time::sleep(Duration::from_millis(400)).await;
        kill(&child, libc::SIGTERM);
        let obs = next(&mut rx, Duration::from_secs(2))
            .await
            .expect("an observation");
        assert_eq!(obs.condition, ConditionId::ServerStopping);
        assert_eq!(obs.evidence, Evidence::Assert { met: true });
        assert_eq!(obs.args["reason"], STOP_REASON);
        assert_eq!(obs.args["exit-status"], "exit 0");
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn a_removed_pid_file_makes_even_a_kill_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("server.pid");
        let mut child = sleeper();
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(run_process_watch(
            settings(&pid_file),
            tx,
            crate::health::Health::detached("process", "knot"),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::remove_file(&pid_file).unwrap();
        kill(&child, libc::SIGKILL);
        let obs = next(&mut rx, Duration::from_secs(2))
            .await
            .expect("an observation");
        assert_eq!(obs.condition, ConditionId::ServerStopping);
        assert_eq!(obs.args["exit-status"], "signal 9 (SIGKILL)");
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn a_stale_pid_file_at_start_is_a_crash_and_a_new_process_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("server.pid");
        let mut gone = Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        std::fs::write(&pid_file, gone_pid.to_string()).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(run_process_watch(
            settings(&pid_file),
            tx,
            crate::health::Health::detached("process", "knot"),
        ));
        let obs = next(&mut rx, Duration::from_secs(2))
            .await
            .expect("an observation");
        assert_eq!(obs.condition, ConditionId::ServerCrashed);
        assert!(!obs.args.contains_key("exit-status"));
        // A restarted server writes a new pid: it is watched, and finding it says nothing.
        let mut child = sleeper();
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        assert!(next(&mut rx, Duration::from_millis(300)).await.is_none());
        child.kill().unwrap();
        let obs = next(&mut rx, Duration::from_secs(2))
            .await
            .expect("an observation");
        assert_eq!(obs.condition, ConditionId::ServerCrashed);
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn garbage_or_missing_pid_files_are_waited_out() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("server.pid");
        std::fs::write(&pid_file, "not a pid\n").unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(run_process_watch(
            settings(&pid_file),
            tx,
            crate::health::Health::detached("process", "knot"),
        ));
        assert!(next(&mut rx, Duration::from_millis(400)).await.is_none());
        std::fs::remove_file(&pid_file).unwrap();
        assert!(next(&mut rx, Duration::from_millis(300)).await.is_none());
        for garbage in ["-5", "0", "4294967295", "", "12 13", "\u{0}\u{ff}"] {
            std::fs::write(&pid_file, garbage).unwrap();
            assert!(next(&mut rx, Duration::from_millis(150)).await.is_none());
        }
    }

    #[tokio::test]
    async fn a_fixed_pid_is_watched_once_and_its_exit_is_a_crash() {
        let mut child = sleeper();
        let (tx, mut rx) = mpsc::channel(8);
        let settings = ProcessSettings {
            server: "knot".into(),
            pid_file: None,
            pid: Some(child.id()),
        };
        let task = tokio::spawn(run_process_watch(
            settings,
            tx,
            crate::health::Health::detached("process", "knot"),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        kill(&child, libc::SIGTERM);
        let obs = next(&mut rx, Duration::from_secs(2))
            .await
            .expect("an observation");
        assert_eq!(obs.condition, ConditionId::ServerCrashed);
        assert!(
            obs.args["exit-status"]
                .as_str()
                .unwrap()
                .starts_with("signal 15 (SIGTERM)"),
            "{:?}",
            obs.args
        );
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the source ends")
            .unwrap();
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn the_watch_ends_when_the_engine_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("server.pid");
        let mut child = sleeper();
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(run_process_watch(
            settings(&pid_file),
            tx,
            crate::health::Health::detached("process", "knot"),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the source ends while the process still runs")
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn exit_status_from_a_zombie_stat_line() {
        // 52 fields; the command name holds spaces and parentheses.
        let mut fields: Vec<String> = (4..=52).map(|n| n.to_string()).collect();
        fields[52 - 4] = "9".into();
        let line = |state: &str| format!("4242 (evil) (na me) {state} {}\n", fields.join(" "));
        assert_eq!(
            exit_status_from_stat(&line("Z")).as_deref(),
            Some("signal 9 (SIGKILL)")
        );
        assert_eq!(exit_status_from_stat(&line("S")), None);
        assert_eq!(exit_status_from_stat("4242 (x) Z 1 2"), None);
        assert_eq!(exit_status_from_stat("garbage"), None);
    }

    #[test]
    fn wait_statuses_in_words() {
        assert_eq!(describe_wait_status(9), "signal 9 (SIGKILL)");
        assert_eq!(
            describe_wait_status(11 | 0x80),
            "signal 11 (SIGSEGV), core dumped"
        );
        assert_eq!(describe_wait_status(1 << 8), "exit 1");
        assert_eq!(describe_wait_status(0), "exit 0");
        assert_eq!(describe_wait_status(40), "signal 40");
    }

    #[test]
    fn pids_parse_defensively() {
        assert_eq!(parse_pid("123\n"), Some(123));
        assert_eq!(parse_pid("  77  "), Some(77));
        for bad in ["", "0", "-1", "1.5", "2147483648", "12 13", "pid"] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }
}
