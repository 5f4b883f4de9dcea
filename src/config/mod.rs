//! The configuration: a TOML file, validated completely before anything starts.
//!
//! Unknown keys are refused, and every error names the file, line and column and what was
//! expected: `dns-oops.toml:12:1: unknown field `rize`, expected one of …`.
//!
//! Sources and channels are tagged tables (`[[source]] type = "probe"`). serde's
//! internally tagged enums would lose the positions of errors inside them, so the
//! document is parsed into a spanned tree first ([`toml::de::DeTable`]), each
//! `[[source]]`/`[[channel]]` table is dispatched on its `type`, and each is deserialised
//! on its own, keeping positions relative to the whole file.

mod model;

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use model::*;

/// One problem in a config file, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub line: usize,
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
    #[error("{}", render(path, problems))]
    Invalid {
        path: String,
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
    /// The problems found, for tests and tools.
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
    let config = parse_into(text, path, &mut errors);
    match config {
        Some(config) if errors.problems.is_empty() => Ok(config),
        _ => {
            if errors.problems.is_empty() {
                errors.at(0..0, "invalid configuration".into());
            }
            Err(ConfigError::Invalid {
                path: path.display().to_string(),
                problems: errors.problems,
            })
        }
    }
}

/// Collects problems, turning byte spans into lines and columns.
pub(crate) struct Errors<'a> {
    text: &'a str,
    problems: Vec<ConfigProblem>,
}

impl Errors<'_> {
    pub(crate) fn at(&mut self, span: Range<usize>, message: String) {
        let (line, column) = line_column(self.text, span.start);
        self.problems.push(ConfigProblem {
            line,
            column,
            message,
        });
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
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

fn parse_into(text: &str, path: &Path, errors: &mut Errors) -> Option<Config> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            errors.toml(e);
            return None;
        }
    };
    let root_span = root.span();
    let mut root = root.into_inner();
    let sources = take_array(&mut root, "source", errors);
    let channels = take_array(&mut root, "channel", errors);
    let file: Option<FileConfig> =
        deserialize(Spanned::new(root_span, DeValue::Table(root)), errors);

    let sources = sources
        .into_iter()
        .filter_map(|entry| {
            tagged(
                entry,
                SOURCE_TYPES,
                errors,
                |kind, value, errors| match kind {
                    "probe" => deserialize(value, errors).map(SourceConfig::Probe),
                    "process" => deserialize(value, errors).map(SourceConfig::Process),
                    _ => None,
                },
            )
        })
        .collect();
    let channels = channels
        .into_iter()
        .filter_map(|entry| {
            tagged(
                entry,
                CHANNEL_TYPES,
                errors,
                |kind, value, errors| match kind {
                    "log" => deserialize(value, errors).map(ChannelConfig::Log),
                    "exec" => deserialize(value, errors).map(ChannelConfig::Exec),
                    _ => None,
                },
            )
        })
        .collect();
    let file = file?;
    model::build(file, sources, channels, path.to_path_buf(), errors)
}

const SOURCE_TYPES: &[&str] = &["probe", "process"];
const CHANNEL_TYPES: &[&str] = &["log", "exec"];

/// Takes `[[key]]` out of the root table as a list of spanned tables.
fn take_array<'i>(
    root: &mut DeTable<'i>,
    key: &str,
    errors: &mut Errors,
) -> Vec<Spanned<DeValue<'i>>> {
    let Some(value) = root.remove(key) else {
        return Vec::new();
    };
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items.iter().cloned().collect(),
        _ => {
            errors.at(
                span,
                format!("`{key}` must be an array of tables: write `[[{key}]]`"),
            );
            Vec::new()
        }
    }
}

/// Dispatches one `[[source]]`/`[[channel]]` table on its `type`.
fn tagged<'i, T>(
    entry: Spanned<DeValue<'i>>,
    types: &[&str],
    errors: &mut Errors,
    build: impl FnOnce(&str, Spanned<DeValue<'i>>, &mut Errors) -> Option<T>,
) -> Option<Spanned<T>> {
    let span = entry.span();
    let DeValue::Table(mut table) = entry.into_inner() else {
        errors.at(span, "expected a table".into());
        return None;
    };
    let known = types
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(kind) = table.remove("type") else {
        errors.at(span, format!("missing `type`; expected one of {known}"));
        return None;
    };
    let kind_span = kind.span();
    let kind = match kind.into_inner() {
        DeValue::String(s) => s.to_string(),
        _ => {
            errors.at(
                kind_span,
                format!("`type` must be a string, one of {known}"),
            );
            return None;
        }
    };
    if !types.contains(&kind.as_str()) {
        errors.at(
            kind_span,
            format!("unknown type `{kind}`; expected one of {known}"),
        );
        return None;
    }
    let value = build(
        &kind,
        Spanned::new(span.clone(), DeValue::Table(table)),
        errors,
    )?;
    Some(Spanned::new(span, value))
}

fn deserialize<T: serde::de::DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    errors: &mut Errors,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.toml(e);
            None
        }
    }
}

impl Config {
    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// One line about what the config sets up, for `check-config`.
    pub fn summary(&self) -> String {
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{} at {}, {} zones", s.name, s.address, s.zones.len()))
            .collect();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        format!(
            "node {}: {} ({}), {}, {}, journal {}, http {}",
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

#[cfg(test)]
mod tests;
