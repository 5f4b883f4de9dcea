//! From text to what the file says, keeping every position.
//!
//! serde's internally tagged enums (`#[serde(tag = "type")]`) buffer their content and lose
//! the positions of errors inside it. So the document is parsed into a spanned tree
//! ([`DeTable`]) first; `[[source]]`, `[[channel]]` and `[[driver]]` are taken out of the root,
//! the rest is deserialised as [`FileConfig`], and each of their tables is dispatched on its
//! `type` and deserialised on its own. Spans stay relative to the whole document.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::Errors;
use super::file::{ChannelFile, FileConfig};
use super::model::{DriverConfig, SourceConfig};

/// How to deserialise a `[[source]]` or `[[channel]]` of one `type`.
type Dispatch<T> = (
    &'static str,
    fn(Spanned<DeValue<'_>>, &mut Errors) -> Option<T>,
);

/// The `type`s of `[[source]]`.
const SOURCE_TYPES: &[Dispatch<SourceConfig>] = &[
    ("probe", |v, e| deserialize(v, e).map(SourceConfig::Probe)),
    ("process", |v, e| {
        deserialize(v, e).map(SourceConfig::Process)
    }),
    ("notify-in", |v, e| {
        deserialize(v, e).map(SourceConfig::NotifyIn)
    }),
    ("knot-dbus", |v, e| {
        deserialize(v, e).map(SourceConfig::KnotDbus)
    }),
    ("dnstap", |v, e| deserialize(v, e).map(SourceConfig::Dnstap)),
    ("zone-health", |v, e| {
        deserialize(v, e).map(SourceConfig::ZoneHealth)
    }),
    ("in-tree", |v, e| {
        deserialize(v, e).map(SourceConfig::InTree)
    }),
    ("control", |v, e| {
        deserialize(v, e).map(SourceConfig::Control)
    }),
];

/// The `type`s of `[[channel]]`.
const CHANNEL_TYPES: &[Dispatch<ChannelFile>] = &[
    ("log", |v, e| deserialize(v, e).map(ChannelFile::Log)),
    ("exec", |v, e| deserialize(v, e).map(ChannelFile::Exec)),
    ("push", |v, e| deserialize(v, e).map(ChannelFile::Push)),
    ("mqtt", |v, e| deserialize(v, e).map(ChannelFile::Mqtt)),
    ("webhook", |v, e| {
        deserialize(v, e).map(ChannelFile::Webhook)
    }),
    ("dbus", |v, e| deserialize(v, e).map(ChannelFile::Dbus)),
    ("notify", |v, e| deserialize(v, e).map(ChannelFile::Notify)),
];

/// The `type`s of `[[driver]]`.
const DRIVER_TYPES: &[Dispatch<DriverConfig>] = &[
    ("bird", |v, e| deserialize(v, e).map(DriverConfig::Bird)),
    ("exabgp", |v, e| deserialize(v, e).map(DriverConfig::Exabgp)),
    ("gobgp", |v, e| deserialize(v, e).map(DriverConfig::Gobgp)),
    ("frr", |v, e| deserialize(v, e).map(DriverConfig::Frr)),
];

/// The whole file, deserialised but not yet validated.
pub(super) struct Document<'i> {
    pub file: FileConfig,
    pub sources: Vec<Entry<'i, SourceConfig>>,
    pub channels: Vec<Entry<'i, ChannelFile>>,
    pub drivers: Vec<Entry<'i, DriverConfig>>,
}

/// One `[[source]]` or `[[channel]]`, deserialised, with the positions of what it says.
pub(super) struct Entry<'i, T> {
    pub value: T,
    pub positions: Positions<'i>,
}

/// Where the values of one table are written.
pub(super) struct Positions<'i> {
    /// The table (its `[[…]]` header).
    pub span: Range<usize>,
    /// The table as written, without `type`.
    table: DeTable<'i>,
}

impl Positions<'_> {
    /// Where `key`'s value is written; the table itself when the key is absent.
    pub fn value_span(&self, key: &str) -> Range<usize> {
        self.table
            .get(key)
            .map(|v| v.span())
            .unwrap_or_else(|| self.span.clone())
    }

    /// Where item `index` of the array `key` is written; the key's value if it is not an
    /// array.
    pub fn item_span(&self, key: &str, index: usize) -> Range<usize> {
        match self.table.get(key).map(|v| v.get_ref()) {
            Some(DeValue::Array(items)) => items
                .get(index)
                .map(|item| item.span())
                .unwrap_or_else(|| self.value_span(key)),
            _ => self.value_span(key),
        }
    }
}

/// Parses and deserialises; `None` when something could not be deserialised (the reasons
/// are in `errors`).
pub(super) fn read<'i>(text: &'i str, errors: &mut Errors) -> Option<Document<'i>> {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            errors.toml(e);
        }
        return None;
    }
    let root_span = root.span();
    let mut root = root.into_inner();
    let sources = take_array(&mut root, "source", errors);
    let channels = take_array(&mut root, "channel", errors);
    let drivers = take_array(&mut root, "driver", errors);
    let file: Option<FileConfig> =
        deserialize(Spanned::new(root_span, DeValue::Table(root)), errors);

    let sources = sources
        .into_iter()
        .filter_map(|entry| tagged(entry, SOURCE_TYPES, errors))
        .collect();
    let channels = channels
        .into_iter()
        .filter_map(|entry| tagged(entry, CHANNEL_TYPES, errors))
        .collect();
    let drivers = drivers
        .into_iter()
        .filter_map(|entry| tagged(entry, DRIVER_TYPES, errors))
        .collect();
    Some(Document {
        file: file?,
        sources,
        channels,
        drivers,
    })
}

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
    types: &[Dispatch<T>],
    errors: &mut Errors,
) -> Option<Entry<'i, T>> {
    let span = entry.span();
    let DeValue::Table(mut table) = entry.into_inner() else {
        errors.at(span, "expected a table".into());
        return None;
    };
    let known = types
        .iter()
        .map(|(name, _)| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(kind) = table.remove("type") else {
        errors.at(span, format!("missing `type`; expected one of {known}"));
        return None;
    };
    let kind_span = kind.span();
    let DeValue::String(kind) = kind.into_inner() else {
        errors.at(
            kind_span,
            format!("`type` must be a string, one of {known}"),
        );
        return None;
    };
    let Some((_, build)) = types.iter().find(|(name, _)| *name == kind) else {
        errors.at(
            kind_span,
            format!("unknown type `{kind}`; expected one of {known}"),
        );
        return None;
    };
    let value = build(
        Spanned::new(span.clone(), DeValue::Table(table.clone())),
        errors,
    )?;
    Some(Entry {
        value,
        positions: Positions { span, table },
    })
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
