//! The `process` source: watches the DNS server's process and reports its exit at once.
//!
//! The process is found through its pid file (re-read whenever it is gone, so a restarted
//! server is followed) or a fixed pid, and watched through a pidfd (Linux ≥ 5.3), which
//! becomes readable the moment the process exits — no polling.
//!
//! How an exit is told apart:
//!
//! * the pid file is still there with the same pid: the server did not clean up, it
//!   crashed or was killed → `server-crashed` met;
//! * the pid file is gone (knotd, nsd, named and unbound remove it when they stop cleanly)
//!   → `server-stopping` met, reason "process exited and removed its pid file";
//! * at start, a pid file whose process does not exist is a crash that happened while
//!   nobody watched;
//! * with a fixed `pid` there is no pid file to tell: an exit is reported as a crash, and
//!   the source ends (there is no next process to watch).
//!
//! The exit status is reported (`exit-status` argument) when it can be read: while the
//! exited process is a zombie its parent has not yet reaped, `/proc/<pid>/stat` holds it.
//! A server started by systemd is reaped at once, so it is usually absent there.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::condition::ConditionId;
use crate::signal::{Evidence, Observation};

/// The source name in signals.
pub const SOURCE: &str = "process";
/// How often a missing pid file is looked for again.
const PID_FILE_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct ProcessSettings {
    pub server: String,
    pub pid_file: Option<PathBuf>,
    pub pid: Option<u32>,
}

/// What a pid file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PidFile {
    Missing,
    Garbage,
    Pid(u32),
}

fn read_pid_file(path: &Path) -> PidFile {
    match std::fs::read_to_string(path) {
        Err(_) => PidFile::Missing,
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(pid) if pid > 0 && pid <= i32::MAX as u32 => PidFile::Pid(pid),
            _ => PidFile::Garbage,
        },
    }
}

/// Watches until `tx` closes (or, with a fixed pid, until that process has exited).
pub async fn run_process_watch(settings: ProcessSettings, tx: mpsc::Sender<Observation>) {
    match (&settings.pid_file, settings.pid) {
        (Some(path), _) => watch_pid_file(&settings.server, path, &tx).await,
        (None, Some(pid)) => {
            let exit = match open_pidfd(pid) {
                Ok(fd) => wait_exit(fd, pid).await,
                Err(_) => None,
            };
            let obs = Observation::new(
                SOURCE,
                &settings.server,
                ConditionId::ServerCrashed,
                None,
                Evidence::Assert { met: true },
            );
            let obs = match exit {
                Some(status) => obs.arg("exit-status", status),
                None => obs,
            };
            let _ = tx.send(obs).await;
        }
        (None, None) => tracing::error!(
            server = settings.server,
            "process source without pid-file or pid"
        ),
    }
}

async fn watch_pid_file(server: &str, path: &Path, tx: &mpsc::Sender<Observation>) {
    let mut warned_garbage = false;
    // The pid whose exit has been reported: its file may stay behind after a crash.
    let mut reported: Option<u32> = None;
    loop {
        if tx.is_closed() {
            return;
        }
        let pid = match read_pid_file(path) {
            PidFile::Pid(pid) if Some(pid) != reported => pid,
            PidFile::Garbage => {
                if !warned_garbage {
                    tracing::warn!(
                        server,
                        "pid file {} does not hold a process id; waiting",
                        path.display()
                    );
                    warned_garbage = true;
                }
                tokio::time::sleep(PID_FILE_POLL).await;
                continue;
            }
            _ => {
                tokio::time::sleep(PID_FILE_POLL).await;
                continue;
            }
        };
        warned_garbage = false;
        let exit_status = match open_pidfd(pid) {
            Ok(fd) => {
                tracing::debug!(server, pid, "watching the server process");
                wait_exit(fd, pid).await
            }
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                tracing::info!(
                    server,
                    pid,
                    "pid file {} names no running process",
                    path.display()
                );
                None
            }
            Err(e) => {
                tracing::warn!(server, pid, "cannot watch the process: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        reported = Some(pid);
        let obs = if read_pid_file(path) == PidFile::Pid(pid) {
            Observation::new(
                SOURCE,
                server,
                ConditionId::ServerCrashed,
                None,
                Evidence::Assert { met: true },
            )
        } else {
            Observation::new(
                SOURCE,
                server,
                ConditionId::ServerStopping,
                None,
                Evidence::Assert { met: true },
            )
            .arg("reason", "process exited and removed its pid file")
        };
        let obs = match exit_status {
            Some(status) => obs.arg("exit-status", status),
            None => obs,
        };
        if tx.send(obs).await.is_err() {
            return;
        }
    }
}

fn open_pidfd(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until the process exits; returns its exit status when it can still be read.
async fn wait_exit(fd: OwnedFd, pid: u32) -> Option<String> {
    let raw = fd.as_raw_fd();
    // SAFETY: the OwnedFd is a valid pidfd and stays open, unchanged, while registered.
    match unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
        Ok(async_fd) => {
            let _ = async_fd.readable().await;
        }
        Err(e) => {
            // Cannot register the pidfd: fall back to polling for the process.
            tracing::warn!(
                pid,
                fd = raw,
                "cannot wait on the pidfd ({e}); polling instead"
            );
            while std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    zombie_exit_status(pid)
}

fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|state| *state == "Z"))
}

/// Fields of `/proc/<pid>/stat` after the command name (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The exit status of a zombie, from field 52 (`exit_code`) of `/proc/<pid>/stat`.
fn zombie_exit_status(pid: u32) -> Option<String> {
    let fields = stat_fields(pid)?;
    if fields.first()? != "Z" {
        return None;
    }
    // Field 52 overall; the fields here start at field 3.
    let status: i32 = fields.get(52 - 3)?.parse().ok()?;
    Some(describe_wait_status(status))
}

/// A waitpid status in words: `exit 1`, `signal 9 (SIGKILL)`.
pub fn describe_wait_status(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        match signal_name(signal) {
            Some(name) => format!("signal {signal} ({name})"),
            None => format!("signal {signal}"),
        }
    } else {
        format!("exit {}", libc::WEXITSTATUS(status))
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::Instant;

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

    #[tokio::test]
    async fn kill_9_is_a_crash_seen_at_once_with_the_signal() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("server.pid");
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(run_process_watch(settings(&pid_file), tx));
        // Let the watcher find the process.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed = Instant::now();
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let obs = next(&mut rx, Duration::from_secs(2))
            .await
            .expect("an observation");
        let latency = killed.elapsed();
        assert_eq!(obs.condition, ConditionId::ServerCrashed);
        assert_eq!(obs.evidence, Evidence::Assert { met: true });
        assert_eq!(obs.args["exit-status"], "signal 9 (SIGKILL)");
        assert!(latency < Duration::from_millis(100), "{latency:?}");
        child.wait().unwrap();
        // The stale pid file is not reported twice.
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
        tokio::spawn(run_process_watch(settings(&pid_file), tx));
        tokio::time::sleep(Duration::from_millis(400)).await;
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let obs = next(&mut rx, Duration::from_secs(2))
            .await
            .expect("an observation");
        assert_eq!(obs.condition, ConditionId::ServerStopping);
        assert_eq!(
            obs.args["reason"],
            "process exited and removed its pid file"
        );
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
        tokio::spawn(run_process_watch(settings(&pid_file), tx));
        let obs = next(&mut rx, Duration::from_secs(2))
            .await
            .expect("an observation");
        assert_eq!(obs.condition, ConditionId::ServerCrashed);
        // A restarted server writes a new pid: it is watched.
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
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
        tokio::spawn(run_process_watch(settings(&pid_file), tx));
        assert!(next(&mut rx, Duration::from_millis(400)).await.is_none());
        std::fs::remove_file(&pid_file).unwrap();
        assert!(next(&mut rx, Duration::from_millis(300)).await.is_none());
        std::fs::write(&pid_file, "-5").unwrap();
        assert!(next(&mut rx, Duration::from_millis(300)).await.is_none());
    }

    #[test]
    fn wait_statuses_in_words() {
        assert_eq!(describe_wait_status(9), "signal 9 (SIGKILL)");
        assert_eq!(describe_wait_status(11 | 0x80), "signal 11 (SIGSEGV)");
        assert_eq!(describe_wait_status(1 << 8), "exit 1");
        assert_eq!(describe_wait_status(0), "exit 0");
    }
}
