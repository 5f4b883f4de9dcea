//! BIRD, read by the tests through its control socket with a client of their own,
//! independent of the driver under test.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
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
