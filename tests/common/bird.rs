//! BIRD, read by the tests through its control socket with a client of their own,
//! independent of the driver under test.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A minimal client of BIRD's control socket.
pub struct BirdClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl BirdClient {
    pub fn connect(path: &Path) -> std::io::Result<BirdClient> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut client = BirdClient {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        client.reply()?;
        Ok(client)
    }

    /// The reply's text, one line per line, codes included.
    pub fn command(&mut self, command: &str) -> String {
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .unwrap();
        self.reply().unwrap()
    }

    fn reply(&mut self) -> std::io::Result<String> {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            out.push_str(&line);
            let b = line.as_bytes();
            if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ' {
                return Ok(out);
            }
        }
    }

    /// Whether the table has a route for exactly `prefix`.
    pub fn has_route(&mut self, prefix: &str) -> bool {
        let reply = self.command(&format!("show route for {prefix}"));
        // Absent: `8001 Network not found`; the command itself is not echoed.
        !reply.starts_with("8001") && reply.contains(prefix)
    }

    /// Whether a protocol is up.
    pub fn protocol_up(&mut self, protocol: &str) -> bool {
        let reply = self.command(&format!("show protocols \"{protocol}\""));
        reply.lines().any(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some(&format!("1002-{protocol}")) && f.nth(2) == Some("up")
        })
    }

    /// Whether a BGP protocol is Established.
    pub fn established(&mut self, protocol: &str) -> bool {
        self.command(&format!("show protocols \"{protocol}\""))
            .contains("Established")
    }

    /// The AS path of `prefix`, e.g. `65001 65001 65001`.
    pub fn as_path(&mut self, prefix: &str) -> Option<String> {
        let reply = self.command(&format!("show route for {prefix} all"));
        reply.lines().find_map(|l| {
            l.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-')
                .trim()
                .strip_prefix("BGP.as_path:")
                .map(|p| p.trim().to_string())
        })
    }
}

/// Polls `what` every 2 ms until it holds; returns when it first did.
pub fn until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A BIRD in the foreground as the BGP peer whose table a test reads: its config, control
/// socket (`peer.ctl`), pid file and log in `dir`. Killed when dropped.
pub struct BirdPeer {
    child: std::process::Child,
    pub socket: PathBuf,
}

impl BirdPeer {
    pub fn start(dir: &Path, config: &str) -> BirdPeer {
        let path = dir.join("peer.conf");
        std::fs::write(&path, config).unwrap();
        let socket = dir.join("peer.ctl");
        let log = std::fs::File::create(dir.join("peer.log")).unwrap();
        let child = Command::new(super::require("bird", "bird2"))
            .arg("-c")
            .arg(&path)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(dir.join("peer.pid"))
            .arg("-f")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start bird");
        let peer = BirdPeer { child, socket };
        until("BIRD control socket", Duration::from_secs(20), || {
            BirdClient::connect(&peer.socket).is_ok()
        });
        peer
    }

    pub fn client(&self) -> BirdClient {
        BirdClient::connect(&self.socket).unwrap()
    }
}

impl Drop for BirdPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Watches a peer's table for `prefix` in a thread until stopped, every 2 ms.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Watch {
    pub fn start(socket: PathBuf, prefix: &'static str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut client = BirdClient::connect(&socket).unwrap();
            let mut missing = 0;
            while !flag.load(Ordering::Relaxed) {
                if !client.has_route(prefix) {
                    missing += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            missing
        });
        Watch { stop, thread }
    }

    /// How many polls found the route missing.
    pub fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
