//! `[[source]] type = "zone-health"`: zone freshness and DNSSEC signature expiry judged
//! from outside the server (see [`crate::sources::zone_health`]), and the checks of its
//! table.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::Errors;
use super::document::Positions;
use super::file::{normalize_zone, parse_address};
use super::model::ServerConfig;
use super::notify_in::TsigKey;

/// `type = "zone-health"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ZoneHealthConfig {
    pub server: String,
    /// Lowercase with a trailing dot, each one of the server's zones. Default (`None`):
    /// all the server's zones.
    #[serde(default)]
    pub zones: Option<Vec<String>>,
    /// The primaries the server refreshes from, asked for their serial at every poll.
    #[serde(default)]
    pub primaries: Vec<PrimaryAddress>,
    /// How often the server (and the primaries) are asked for the zones' SOA.
    #[serde(
        default = "default_interval",
        deserialize_with = "super::file::duration"
    )]
    pub interval: Duration,
    /// How long a SOA query, a transfer's connection, or each of its messages may take.
    #[serde(
        default = "default_timeout",
        deserialize_with = "super::file::duration"
    )]
    pub timeout: Duration,
    /// How long a whole zone transfer may take.
    #[serde(
        default = "default_transfer_timeout",
        deserialize_with = "super::file::duration"
    )]
    pub transfer_timeout: Duration,
    /// `zone-refresh-failed` is met after this many failed refresh tries.
    #[serde(default = "default_refresh_tries")]
    pub refresh_tries: u32,
    /// `zone-expiring` is met this long before the zone expires (0: at expiry).
    #[serde(default, deserialize_with = "super::file::duration")]
    pub expiring_period: Duration,
    /// Whether the zones are transferred and their signatures checked.
    #[serde(default = "default_signatures")]
    pub signatures: bool,
    /// `signatures-expiring` is met when a signature expires within this period.
    #[serde(
        default = "default_signatures_period",
        deserialize_with = "super::file::duration"
    )]
    pub signatures_period: Duration,
    /// Signs the zone transfer requests.
    #[serde(default)]
    pub tsig_key: Option<TsigKey>,
}

/// A primary's address as `IP:port`, `[IPv6]:port` or `IP@port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryAddress(pub SocketAddr);

impl<'de> Deserialize<'de> for PrimaryAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsing inside the visitor places an error at the item of the array.
        struct AddressVisitor;
        impl serde::de::Visitor<'_> for AddressVisitor {
            type Value = PrimaryAddress;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address and port such as \"192.0.2.1:53\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<PrimaryAddress, E> {
                parse_address(text).map(PrimaryAddress).ok_or_else(|| {
                    E::custom(format!(
                        "invalid primary address `{text}`; write an IP address and port, e.g. \"192.0.2.1:53\" or \"192.0.2.1@53\""
                    ))
                })
            }
        }
        d.deserialize_str(AddressVisitor)
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_transfer_timeout() -> Duration {
    Duration::from_secs(600)
}

fn default_refresh_tries() -> u32 {
    1
}

fn default_signatures() -> bool {
    true
}

fn default_signatures_period() -> Duration {
    Duration::from_secs(2 * 86_400)
}

/// Checks the values of the table and normalises its zones.
pub(super) fn check(
    config: &mut ZoneHealthConfig,
    server: Option<&ServerConfig>,
    at: &Positions,
    errors: &mut Errors,
) {
    for (key, duration) in [
        ("interval", config.interval),
        ("timeout", config.timeout),
        ("transfer-timeout", config.transfer_timeout),
    ] {
        if duration.is_zero() {
            errors.at(at.value_span(key), format!("`{key}` must be more than 0"));
        }
    }
    if config.refresh_tries == 0 {
        errors.at(
            at.value_span("refresh-tries"),
            "`refresh-tries` must be at least 1".into(),
        );
    }
    for (index, primary) in config.primaries.iter().enumerate() {
        if config.primaries[..index].contains(primary) {
            errors.at(
                at.item_span("primaries", index),
                format!("primary `{}` is listed twice", primary.0),
            );
        }
    }
    if let Some(zones) = &mut config.zones {
        let mut normalized = Vec::new();
        for (index, zone) in zones.iter().enumerate() {
            let span = at.item_span("zones", index);
            match normalize_zone(zone) {
                Err(e) => errors.at(span, e),
                Ok(z) if normalized.contains(&z) => {
                    errors.at(span, format!("zone `{z}` is listed twice"));
                }
                Ok(z) => {
                    if let Some(server) = server
                        && !server.zones.contains(&z)
                    {
                        errors.at(
                            span,
                            format!(
                                "zone `{z}` is not one of server `{}`'s zones; add it to the server's `zones` first",
                                server.name
                            ),
                        );
                    }
                    normalized.push(z);
                }
            }
        }
        *zones = normalized;
    }
}
