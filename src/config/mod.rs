//! The configuration: a TOML file, validated completely before anything starts.
//!
//! Unknown keys are refused, and every problem is reported with the file, line and column
//! and what was expected, as many at once as can be found:
//!
//! ```text
//! dns-oops.toml:23:1: unknown field `rize`, expected one of `server`, `interval`, …
//! dns-oops.toml:41:22: invalid policy: unknown condition `server-runing`; did you mean `server-running`?
//! ```
//!
//! Reading goes in two steps: [`document`] turns the text into what the file says
//! ([`file`]), keeping the position of every value, and [`validate`] checks it as a whole
//! (names unique, references to servers that exist, policies that parse) and fills in the
//! defaults, giving the [`Config`] the daemon uses ([`model`]).

mod anycast;
mod dbus;
mod dnstap;
mod document;
mod file;
mod model;
mod mqtt;
mod notify_in;
mod notify_out;
mod validate;
mod webhook;
mod zone_health;

use std::ops::Range;
use std::path::Path;

pub use model::*;

/// One problem in a config file, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Displayed as one `file:line:column: message` line per problem.
    #[error("{}", render(path, problems))]
    Invalid {
        path: String,
        /// In the order of their positions; never empty.
        problems: Vec<ConfigProblem>,
    },
}

fn render(path: &str, problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{path}:{}:{}: {}", p.line, p.column, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The problems found, for tests and tools; empty for [`ConfigError::Io`].
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config text; `path` is used in messages and kept in [`Config::path`].
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut errors = Errors {
        text,
        problems: Vec::new(),
    };
    let config = document::read(text, &mut errors)
        .and_then(|document| validate::validate(document, path, &mut errors));
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => {
            if errors.is_empty() {
                errors.at(0..0, "invalid configuration".into());
            }
            let mut problems = errors.problems;
            problems.sort_by_key(|p| (p.line, p.column));
            Err(ConfigError::Invalid {
                path: path.display().to_string(),
                problems,
            })
        }
    }
}

/// Collects problems, turning byte spans into lines and columns.
struct Errors<'a> {
    text: &'a str,
    problems: Vec<ConfigProblem>,
}

impl Errors<'_> {
    fn at(&mut self, span: Range<usize>, message: String) {
        let (line, column) = line_column(self.text, span.start);
        self.problems.push(ConfigProblem {
            line,
            column,
            message,
        });
    }

    fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The 1-based line a span starts on.
    fn line_of(&self, span: &Range<usize>) -> usize {
        line_column(self.text, span.start).0
    }

    fn toml(&mut self, e: toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim();
        let message = match key_before(self.text, span.start) {
            Some(key) => format!("`{key}`: {message}"),
            None => message.to_string(),
        };
        self.at(span, message);
    }
}

/// The key of a `key = value` line when `offset` is where its value starts, so that
/// "invalid type" errors say which key they are about.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?;
    let line = &before[before.rfind('\n').map(|i| i + 1).unwrap_or(0)..];
    let key = line.trim_end().strip_suffix('=')?.trim();
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    bare.then_some(key)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

impl Config {
    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// One line about what the config sets up, for `check-config`:
    /// `node lab: 1 server (knot at 127.0.0.1:5301, 3 zones), 2 sources, 1 channel, …`.
    pub fn summary(&self) -> String {
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| {
                format!(
                    "{} at {}, {}",
                    s.name,
                    s.address,
                    plural(s.zones.len(), "zone")
                )
            })
            .collect();
        let anycast = if self.anycast.is_empty() {
            String::new()
        } else {
            let policies: Vec<String> = self
                .anycast
                .iter()
                .map(|p| format!("{} via {}", p.name, p.driver))
                .collect();
            let n = self.anycast.len();
            let word = if n == 1 { "policy" } else { "policies" };
            format!(", {n} anycast {word} ({})", policies.join("; "))
        };
        format!(
            "node {}: {} ({}), {}, {}, journal {}, http {}{anycast}",
            self.node,
            plural(self.servers.len(), "server"),
            servers.join("; "),
            plural(self.sources.len(), "source"),
            plural(self.channels.len(), "channel"),
            self.journal.path.display(),
            self.http
                .listen
                .map(|a| a.to_string())
                .unwrap_or_else(|| "off".into()),
        )
    }
}

/// `1 zone`, `3 zones`.
fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests;
