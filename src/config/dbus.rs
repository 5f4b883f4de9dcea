//! The `[[channel]] type = "dbus"` table: what it says ([`DbusChannelFile`]), its checks,
//! and the validated [`DbusChannelConfig`].
//!
//! `bus` is `"system"` (the default), `"session"`, or a D-Bus address such as
//! `"unix:path=/run/dbus/system_bus_socket"`. `bus-name` is the well-known name the channel
//! owns, by default `org.dnsoops.Signals1`; a second dns-oops on the same bus needs another
//! (e.g. `org.dnsoops.Signals1.ams2`).

use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::Errors;
use super::model::SignalFilter;

/// The well-known name the channel owns unless `bus-name` says otherwise.
pub const DEFAULT_DBUS_NAME: &str = "org.dnsoops.Signals1";

/// `type = "dbus"` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct DbusChannelFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub bus: Option<Spanned<String>>,
    #[serde(default)]
    pub bus_name: Option<Spanned<String>>,
    #[serde(default)]
    pub conditions: Vec<Spanned<String>>,
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<Spanned<String>>,
    #[serde(default)]
    pub states: Vec<Spanned<String>>,
}

/// Which bus the channel connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbusBus {
    /// The system bus (`DBUS_SYSTEM_BUS_ADDRESS` when set).
    System,
    /// The session bus (`DBUS_SESSION_BUS_ADDRESS`).
    Session,
    /// An explicit D-Bus address.
    Address(String),
}

/// `type = "dbus"`: signals emitted on a D-Bus bus, the current state on request.
#[derive(Debug, Clone)]
pub struct DbusChannelConfig {
    /// Default `dbus`.
    pub name: String,
    pub bus: DbusBus,
    /// The well-known name owned on the bus.
    pub bus_name: String,
    pub filter: SignalFilter,
}

/// Checks a `type = "dbus"` table; `filter` is the channel's
/// filter, already checked.
pub(super) fn check(
    file: DbusChannelFile,
    filter: SignalFilter,
    errors: &mut Errors,
) -> DbusChannelConfig {
    let bus = match &file.bus {
        None => DbusBus::System,
        Some(written) => match written.get_ref().trim() {
            "system" => DbusBus::System,
            "session" => DbusBus::Session,
            address => {
                if let Err(e) = zbus::Address::from_str(address) {
                    errors.at(
                        written.span(),
                        format!(
                            "`bus` is \"system\", \"session\" or a D-Bus address such as \"unix:path=/run/dbus/system_bus_socket\"; `{address}` is none of them: {e}"
                        ),
                    );
                }
                DbusBus::Address(address.to_string())
            }
        },
    };
    let bus_name = match &file.bus_name {
        None => DEFAULT_DBUS_NAME.to_string(),
        Some(written) => {
            let text = written.get_ref();
            if let Err(e) = zbus::names::WellKnownName::try_from(text.as_str()) {
                errors.at(
                    written.span(),
                    format!(
                        "`bus-name` `{text}` is not a well-known D-Bus name ({e}); write e.g. \"{DEFAULT_DBUS_NAME}\""
                    ),
                );
            }
            text.clone()
        }
    };
    DbusChannelConfig {
        name: file.name.unwrap_or_else(|| "dbus".into()),
        bus,
        bus_name,
        filter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChannelConfig, ConfigError, parse};

    const BASE: &str = "node = \"lab\"\n[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:53\"\nzones = [\"a.test.\"]\n[[channel]]\ntype = \"dbus\"\n";

    fn dbus(table: &str) -> Result<DbusChannelConfig, ConfigError> {
        let config = parse(&format!("{BASE}{table}"), std::path::Path::new("t.toml"))?;
        match config.channels.into_iter().next() {
            Some(ChannelConfig::Dbus(c)) => Ok(c),
            other => panic!("not a dbus channel: {other:?}"),
        }
    }

    fn problems(table: &str) -> Vec<String> {
        match dbus(table) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(ConfigError::Invalid { problems, .. }) => problems
                .into_iter()
                .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
                .collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_and_a_full_table() {
        let c = dbus("").unwrap();
        assert_eq!(c.name, "dbus");
        assert_eq!(c.bus, DbusBus::System);
        assert_eq!(c.bus_name, DEFAULT_DBUS_NAME);
        let c = dbus(
            "name = \"bus\"\nbus = \"unix:path=/tmp/bus\"\nbus-name = \"org.dnsoops.Signals1.ams2\"\nconditions = [\"zone-ready\"]\nservers = [\"knot\"]\n",
        )
        .unwrap();
        assert_eq!(c.name, "bus");
        assert_eq!(c.bus, DbusBus::Address("unix:path=/tmp/bus".into()));
        assert_eq!(c.bus_name, "org.dnsoops.Signals1.ams2");
        assert_eq!(c.filter.servers, ["knot"]);
        assert_eq!(dbus("bus = \"session\"\n").unwrap().bus, DbusBus::Session);
    }

    #[test]
    fn problems_point_at_what_is_wrong() {
        let found = problems("bus = \"nowhere\"\nbus-name = \"signals\"\n");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("8:7: `bus` is \"system\", \"session\" or a D-Bus address"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("9:12: `bus-name` `signals` is not a well-known D-Bus name"),
            "{found:?}"
        );
        assert_eq!(
            problems("topic = \"x\"\n"),
            [
                "8:1: unknown field `topic`, expected one of `name`, `bus`, `bus-name`, `conditions`, `servers`, `subjects`, `states`"
            ]
        );
    }
}
