//! The `bird` driver: BIRD 2 or 3 through its control socket, spoken natively.
//!
//! The pattern is "one `protocol static` per policy, switched with `enable`/`disable`":
//! the operator's `bird.conf` defines the static protocols (with `disabled;`, so that a
//! BIRD that starts alone announces nothing) and exports them to its BGP peers; dns-oops
//! enables them to announce and disables them to withdraw. While prepending, the policy's
//! `prepend-protocols` (whose export filter prepends) are enabled instead of its
//! `protocols`, make-before-break.
//!
//! The socket protocol (`nest/cli.c`, `doc/reply_codes`): one command per line; each
//! reply line is a 4-digit code and `-` (more follows) or a space (the last line), or a
//! continuation starting with a space; `+` lines are spontaneous output. Codes 0xxx are
//! success, 8xxx and 9xxx errors. BIRD 2 and BIRD 3 answer the commands used here alike.
//!
//! One connection is kept open: BIRD closes it when it stops, which is how a restart is
//! noticed (then the controller reconnects and re-applies). If dns-oops dies, BIRD keeps
//! the protocols as they were last switched: see `crate::anycast` for what that means.
//!
//! Not implemented: the other established pattern, a generated include file and
//! `configure`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::driver::{Driver, DriverError};
use super::machine::RouteState;
use crate::config::{AnycastConfig, BirdDriverConfig};

/// Longest reply line read; longer lines are an error (BIRD's own limit is far lower).
const MAX_LINE: usize = 64 * 1024;

/// One line of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyLine {
    /// `DDDD-text` (more follows) or `DDDD text` (`last`).
    Coded { code: u16, last: bool, text: String },
    /// ` text`: continues the previous code.
    Continuation(String),
    /// `+text`: spontaneous output, not part of a reply.
    Spontaneous(String),
}

impl ReplyLine {
    /// Parses one line, without its line end.
    pub fn parse(line: &str) -> Result<ReplyLine, String> {
        if let Some(text) = line.strip_prefix('+') {
            return Ok(ReplyLine::Spontaneous(text.to_string()));
        }
        if let Some(text) = line.strip_prefix(' ') {
            return Ok(ReplyLine::Continuation(text.to_string()));
        }
        let bytes = line.as_bytes();
        if bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) {
            let code = line[..4]
                .parse()
                .map_err(|_| format!("bad reply code in `{line}`"))?;
            let last = match bytes[4] {
                b' ' => true,
                b'-' => false,
                _ => return Err(format!("bad reply line `{line}`")),
            };
            return Ok(ReplyLine::Coded {
                code,
                last,
                text: line[5..].to_string(),
            });
        }
        // `0000` alone: some versions trim the trailing space of an empty last line.
        if bytes.len() == 4 && bytes.iter().all(u8::is_ascii_digit) {
            let code = line
                .parse()
                .map_err(|_| format!("bad reply code in `{line}`"))?;
            return Ok(ReplyLine::Coded {
                code,
                last: true,
                text: String::new(),
            });
        }
        Err(format!("bad reply line `{line}`"))
    }
}

/// A complete reply: every coded and continuation line, the last one's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// (code, text); continuations carry the code before them.
    pub lines: Vec<(u16, String)>,
    pub code: u16,
}

impl Reply {
    pub fn is_error(&self) -> bool {
        self.code >= 8000
    }

    /// The last line's text, or the whole reply when that is empty.
    pub fn message(&self) -> String {
        match self.lines.last() {
            Some((_, text)) if !text.trim().is_empty() => text.trim().to_string(),
            _ => self
                .lines
                .iter()
                .map(|(_, t)| t.trim())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// A connection to BIRD's control socket.
pub struct BirdConnection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// BIRD's greeting, e.g. `BIRD 2.0.12 ready.`
    pub greeting: String,
}

impl BirdConnection {
    /// Connects and reads the greeting.
    pub async fn connect(path: &std::path::Path) -> std::io::Result<BirdConnection> {
        let stream = UnixStream::connect(path).await?;
        let (reader, writer) = stream.into_split();
        let mut connection = BirdConnection {
            reader: BufReader::new(reader),
            writer,
            greeting: String::new(),
        };
        let hello = connection.read_reply().await?;
        if hello.is_error() {
            return Err(std::io::Error::other(format!(
                "BIRD refused the connection: {}",
                hello.message()
            )));
        }
        connection.greeting = hello.message();
        Ok(connection)
    }

    /// Sends one command and reads its reply.
    pub async fn command(&mut self, command: &str) -> std::io::Result<Reply> {
        if command.contains('\n') {
            return Err(std::io::Error::other("a BIRD command is one line"));
        }
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut lines = Vec::new();
        let mut last_code = 0;
        loop {
            let mut raw = Vec::new();
            let n = (&mut self.reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut raw)
                .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if raw.last() != Some(&b'\n') {
                return Err(std::io::Error::other("BIRD sent an over-long reply line"));
            }
            let text = String::from_utf8_lossy(&raw);
            let line = text.trim_end_matches(['\n', '\r']);
            match ReplyLine::parse(line).map_err(std::io::Error::other)? {
                ReplyLine::Spontaneous(_) => {}
                ReplyLine::Continuation(text) => lines.push((last_code, text)),
                ReplyLine::Coded { code, last, text } => {
                    lines.push((code, text));
                    last_code = code;
                    if last {
                        return Ok(Reply {
                            lines,
                            code: last_code,
                        });
                    }
                }
            }
        }
    }

    /// Resolves when BIRD closes the connection; spontaneous output is read and dropped.
    /// Cancel safe: only whole reads of the buffer happen.
    async fn closed(&mut self) -> std::io::Error {
        let mut scratch = [0u8; 512];
        loop {
            match self.reader.read(&mut scratch).await {
                Ok(0) => return std::io::ErrorKind::UnexpectedEof.into(),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    }
}

/// Whether a protocol in a `show protocols` reply is enabled (its state is not `down`).
pub fn protocol_enabled(reply: &Reply, protocol: &str) -> Option<bool> {
    reply.lines.iter().find_map(|(code, text)| {
        let mut fields = text.split_whitespace();
        if *code != 1002 || fields.next() != Some(protocol) {
            return None;
        }
        // Name, protocol, table, state, since, info.
        let state = fields.nth(2)?;
        Some(!state.eq_ignore_ascii_case("down"))
    })
}

/// The `bird` driver.
pub struct BirdDriver {
    config: BirdDriverConfig,
    connection: Option<BirdConnection>,
}

impl BirdDriver {
    pub fn new(config: BirdDriverConfig) -> BirdDriver {
        BirdDriver {
            config,
            connection: None,
        }
    }

    fn socket(&self) -> &PathBuf {
        &self.config.socket
    }

    /// Sends a command with the configured timeout; a failure drops the connection.
    async fn command(&mut self, command: &str) -> Result<Reply, DriverError> {
        let timeout: Duration = self.config.timeout;
        let socket = self.config.socket.display().to_string();
        let Some(connection) = self.connection.as_mut() else {
            return Err(DriverError::Unreachable(format!(
                "BIRD at {socket}: not connected"
            )));
        };
        match tokio::time::timeout(timeout, connection.command(command)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.connection = None;
                Err(DriverError::Unreachable(format!(
                    "BIRD at {socket}: `{command}`: {e}"
                )))
            }
            Err(_) => {
                self.connection = None;
                Err(DriverError::Unreachable(format!(
                    "BIRD at {socket}: no answer to `{command}` within {timeout:?}"
                )))
            }
        }
    }

    /// `enable` or `disable` one static protocol.
    async fn switch(&mut self, protocol: &str, on: bool) -> Result<(), DriverError> {
        let verb = if on { "enable" } else { "disable" };
        let reply = self.command(&format!("{verb} \"{protocol}\"")).await?;
        if reply.is_error() {
            return Err(refused(&self.config, protocol, verb, &reply));
        }
        tracing::debug!(
            driver = self.config.name,
            "{verb} {protocol}: {}",
            reply.lines.first().map(|(_, t)| t.as_str()).unwrap_or("")
        );
        Ok(())
    }

    async fn switch_all(&mut self, protocols: &[String], on: bool) -> Result<(), DriverError> {
        for protocol in protocols {
            self.switch(protocol, on).await?;
        }
        Ok(())
    }

    /// Whether every protocol of the list is enabled; `None` if they disagree.
    async fn all_enabled(&mut self, protocols: &[String]) -> Result<Option<bool>, DriverError> {
        let mut states = Vec::new();
        for protocol in protocols {
            let reply = self
                .command(&format!("show protocols \"{protocol}\""))
                .await?;
            if reply.is_error() {
                return Err(refused(&self.config, protocol, "show protocols", &reply));
            }
            states.push(protocol_enabled(&reply, protocol));
        }
        Ok(match states.as_slice() {
            [Some(first), rest @ ..] if rest.iter().all(|s| *s == Some(*first)) => Some(*first),
            _ => None,
        })
    }
}

fn refused(config: &BirdDriverConfig, protocol: &str, verb: &str, reply: &Reply) -> DriverError {
    let hint = if reply.code == 8003 {
        format!(
            "; define `protocol static {protocol} {{ disabled; … }}` in the bird.conf of {}",
            config.socket.display()
        )
    } else {
        String::new()
    };
    DriverError::Refused(format!(
        "BIRD refused `{verb} \"{protocol}\"`: {} {}{hint}",
        reply.code,
        reply.message()
    ))
}

impl Driver for BirdDriver {
    async fn connect(&mut self) -> Result<(), DriverError> {
        let connecting = BirdConnection::connect(self.socket());
        match tokio::time::timeout(self.config.timeout, connecting).await {
            Ok(Ok(connection)) => {
                tracing::info!(
                    driver = self.config.name,
                    "connected to {} ({})",
                    self.config.socket.display(),
                    connection.greeting
                );
                self.connection = Some(connection);
                Ok(())
            }
            Ok(Err(e)) => Err(DriverError::Unreachable(format!(
                "cannot connect to BIRD at {}: {e}",
                self.config.socket.display()
            ))),
            Err(_) => Err(DriverError::Unreachable(format!(
                "BIRD at {} did not greet within {:?}",
                self.config.socket.display(),
                self.config.timeout
            ))),
        }
    }

    async fn reported(
        &mut self,
        policy: &AnycastConfig,
    ) -> Result<Option<RouteState>, DriverError> {
        let plain = self.all_enabled(&policy.protocols).await?;
        if policy.prepend_when.is_none() {
            return Ok(plain.map(|on| {
                if on {
                    RouteState::Announced { prepend: 0 }
                } else {
                    RouteState::Withdrawn
                }
            }));
        }
        let prepended = self.all_enabled(&policy.prepend_protocols).await?;
        Ok(match (plain, prepended) {
            (Some(false), Some(false)) => Some(RouteState::Withdrawn),
            (Some(true), Some(false)) => Some(RouteState::Announced { prepend: 0 }),
            (Some(false), Some(true)) => Some(RouteState::Announced {
                prepend: policy.prepend,
            }),
            _ => None,
        })
    }

    async fn apply(&mut self, policy: &AnycastConfig, to: RouteState) -> Result<(), DriverError> {
        let prepending = policy.prepend_when.is_some();
        match to {
            RouteState::Withdrawn => {
                self.switch_all(&policy.protocols, false).await?;
                if prepending {
                    self.switch_all(&policy.prepend_protocols, false).await?;
                }
            }
            RouteState::Announced { prepend: 0 } => {
                self.switch_all(&policy.protocols, true).await?;
                if prepending {
                    self.switch_all(&policy.prepend_protocols, false).await?;
                }
            }
            RouteState::Announced { .. } => {
                self.switch_all(&policy.prepend_protocols, true).await?;
                self.switch_all(&policy.protocols, false).await?;
            }
        }
        Ok(())
    }

    async fn lost(&mut self) -> DriverError {
        match self.connection.as_mut() {
            Some(connection) => {
                let e = connection.closed().await;
                self.connection = None;
                DriverError::Unreachable(format!(
                    "BIRD at {} closed the connection: {e}",
                    self.config.socket.display()
                ))
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_parse() {
        assert_eq!(
            ReplyLine::parse("0001 BIRD 2.0.12 ready."),
            Ok(ReplyLine::Coded {
                code: 1,
                last: true,
                text: "BIRD 2.0.12 ready.".into()
            })
        );
        assert_eq!(
            ReplyLine::parse("0009-oops_dns: disabled"),
            Ok(ReplyLine::Coded {
                code: 9,
                last: false,
                text: "oops_dns: disabled".into()
            })
        );
        assert_eq!(
            ReplyLine::parse(" Hostname is x"),
            Ok(ReplyLine::Continuation("Hostname is x".into()))
        );
        assert_eq!(
            ReplyLine::parse("+spontaneous"),
            Ok(ReplyLine::Spontaneous("spontaneous".into()))
        );
        assert_eq!(
            ReplyLine::parse("0000"),
            Ok(ReplyLine::Coded {
                code: 0,
                last: true,
                text: String::new()
            })
        );
        assert!(ReplyLine::parse("hello").is_err());
        assert!(ReplyLine::parse("12x4 x").is_err());
        assert!(ReplyLine::parse("0000*x").is_err());
        assert!(ReplyLine::parse("").is_err());
    }

    fn reply(lines: &[(u16, &str)]) -> Reply {
        Reply {
            lines: lines.iter().map(|(c, t)| (*c, t.to_string())).collect(),
            code: lines.last().map(|(c, _)| *c).unwrap_or(0),
        }
    }

    #[test]
    fn show_protocols_says_whether_enabled() {
        // As BIRD 2.0.12 answers `show protocols "oops_dns"`.
        let down = reply(&[
            (
                2002,
                "Name       Proto      Table      State  Since         Info",
            ),
            (
                1002,
                "oops_dns   Static     master4    down   00:08:04.949  ",
            ),
            (0, ""),
        ]);
        let up = reply(&[
            (
                2002,
                "Name       Proto      Table      State  Since         Info",
            ),
            (
                1002,
                "oops_dns   Static     master4    up     2026-11-30 00:08:05  ",
            ),
            (0, ""),
        ]);
        assert_eq!(protocol_enabled(&down, "oops_dns"), Some(false));
        assert_eq!(protocol_enabled(&up, "oops_dns"), Some(true));
        assert_eq!(protocol_enabled(&up, "oops"), None);
    }

    #[test]
    fn errors_are_codes_from_8000() {
        let nothing = reply(&[(8003, "No protocols match")]);
        assert!(nothing.is_error());
        assert_eq!(nothing.message(), "No protocols match");
        assert!(!reply(&[(11, "oops_dns: enabled"), (0, "")]).is_error());
        assert_eq!(
            reply(&[(11, "oops_dns: enabled"), (0, "")]).message(),
            "oops_dns: enabled"
        );
    }

    /// A fake BIRD on a socket pair: the greeting, then canned answers.
    #[tokio::test]
    async fn a_connection_reads_multi_line_replies_and_notices_the_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.ctl");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(b"0001 BIRD 3.1.0 ready.\n").await.unwrap();
            let mut buf = vec![0u8; 256];
            let n = stream.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"enable \"oops_dns\"\n");
            stream
                .write_all(b"+spontaneous\n0011-oops_dns: enabled\n more\n0000 \n")
                .await
                .unwrap();
        });
        let mut connection = BirdConnection::connect(&path).await.unwrap();
        assert_eq!(connection.greeting, "BIRD 3.1.0 ready.");
        let reply = connection.command("enable \"oops_dns\"").await.unwrap();
        assert_eq!(reply.code, 0);
        assert_eq!(
            reply.lines,
            vec![
                (11, "oops_dns: enabled".to_string()),
                (11, "more".to_string()),
                (0, String::new())
            ]
        );
        server.await.unwrap();
        let e = connection.closed().await;
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
