//! The values of a `[[source]] type = "notify-in"` table that need parsers of their own —
//! address prefixes for `allow`, and TSIG keys with a base64 secret — and the checks of the
//! table as a whole.
//!
//! A NOTIFY listener must authenticate what it acts on (design.md §6: "NOTIFY-in requires
//! TSIG or an address ACL"), so a table that would accept NOTIFY from any address without
//! TSIG is refused, as is one that could accept nothing at all.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::Name;
use serde::{Deserialize, Deserializer};

use super::Errors;
use super::document::Positions;
use super::file::parse_address;
use super::model::{NotifyInConfig, ServerConfig};

/// An IP prefix such as `192.0.2.0/24` or `2001:db8::/32`; a bare address is the prefix of
/// that one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPrefix {
    /// With every bit past `length` clear.
    network: IpAddr,
    length: u8,
}

impl AddressPrefix {
    /// Whether `address` is inside the prefix; IPv4-mapped IPv6 addresses
    /// (`::ffff:192.0.2.1`) count as the IPv4 address they carry.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                u32::from(address) & v4_mask(self.length) == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                u128::from(address) & v6_mask(self.length) == u128::from(network)
            }
            _ => false,
        }
    }

    /// Whether the prefix holds every address of its family (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.length == 0
    }

    /// The default of `allow`: loopback only.
    pub fn loopback() -> Vec<AddressPrefix> {
        vec![
            AddressPrefix {
                network: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                length: 8,
            },
            AddressPrefix {
                network: IpAddr::V6(Ipv6Addr::LOCALHOST),
                length: 128,
            },
        ]
    }
}

fn v4_mask(length: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0)
}

fn v6_mask(length: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(length)).unwrap_or(0)
}

impl FromStr for AddressPrefix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "invalid address prefix `{text}`; write e.g. \"192.0.2.0/24\", \"2001:db8::/32\" or one address"
            )
        };
        let (address, length) = match text.split_once('/') {
            Some((address, length)) => (address, Some(length)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| invalid())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let length = match length {
            None => max,
            Some(digits) => {
                let canonical = digits.bytes().all(|b| b.is_ascii_digit())
                    && (digits == "0" || !digits.starts_with('0'));
                match digits.parse::<u8>() {
                    Ok(length) if canonical && length <= max => length,
                    _ => return Err(invalid()),
                }
            }
        };
        let network = match address {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & v4_mask(length))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & v6_mask(length))),
        };
        if network != address {
            return Err(format!(
                "address prefix `{text}` has bits set past its length; write `{network}/{length}`"
            ));
        }
        Ok(AddressPrefix { network, length })
    }
}

impl fmt::Display for AddressPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.length)
    }
}

impl<'de> Deserialize<'de> for AddressPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsing inside the visitor lets the TOML deserialiser place an error at the item
        // of the array rather than at the whole array.
        struct PrefixVisitor;
        impl serde::de::Visitor<'_> for PrefixVisitor {
            type Value = AddressPrefix;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address prefix such as \"192.0.2.0/24\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<AddressPrefix, E> {
                text.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(PrefixVisitor)
    }
}

/// The default `min-interval`.
pub(super) fn default_min_interval() -> Duration {
    Duration::from_secs(1)
}

/// `listen`: an address and port as `IP:port`, `[IPv6]:port` or `IP@port`.
pub(super) fn listen_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_address(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid listen address `{text}`; write an IP address and port, e.g. \"127.0.0.1:5399\" or \"[::1]:5399\""
        ))
    })
}

/// A TSIG key: `{ name = "notify-key.", algorithm = "hmac-sha256", secret = "<base64>" }`.
/// Its `Debug` form leaves the secret out, so that it never reaches a log.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigKey {
    /// Lowercase, with a trailing dot.
    #[serde(deserialize_with = "key_name")]
    pub name: String,
    pub algorithm: TsigHmac,
    #[serde(deserialize_with = "base64_secret")]
    pub secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &format_args!("({} octets)", self.secret.len()))
            .finish()
    }
}

/// The TSIG algorithms supported: the HMAC-SHA2 family of RFC 8945 that is not truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigHmac {
    Sha256,
    Sha384,
    Sha512,
}

impl TsigHmac {
    /// The algorithm's name as written in config files and in TSIG records.
    pub fn as_str(self) -> &'static str {
        match self {
            TsigHmac::Sha256 => "hmac-sha256",
            TsigHmac::Sha384 => "hmac-sha384",
            TsigHmac::Sha512 => "hmac-sha512",
        }
    }
}

impl<'de> Deserialize<'de> for TsigHmac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        [TsigHmac::Sha256, TsigHmac::Sha384, TsigHmac::Sha512]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(text.trim_end_matches('.')))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unsupported TSIG algorithm `{text}`; use \"hmac-sha256\", \"hmac-sha384\" or \"hmac-sha512\""
                ))
            })
    }
}

/// A key name: a domain name, kept lowercase with a trailing dot.
fn key_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    let name = Name::from_ascii(&text)
        .ok()
        .filter(|name| !name.is_root())
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid TSIG key name `{text}`; write a domain name such as \"notify-key.\""
            ))
        })?;
    let mut name = name.to_lowercase().to_ascii();
    if !name.ends_with('.') {
        name.push('.');
    }
    Ok(name)
}

/// A secret in base64 (RFC 4648, with padding), as `keymgr -t` and `tsig-keygen` print it.
fn base64_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    match decode_base64(&text) {
        Some(secret) if !secret.is_empty() => Ok(secret),
        Some(_) => Err(serde::de::Error::custom("the TSIG secret cannot be empty")),
        None => Err(serde::de::Error::custom(
            "the TSIG secret is not base64; copy it as `keymgr -t` or `tsig-keygen` print it",
        )),
    }
}

/// Decodes base64 with the standard alphabet and `=` padding; `None` when it is not that.
pub(super) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        Some(u32::from(v))
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.chunks(4);
    let last = chunks.len().saturating_sub(1);
    for (index, chunk) in chunks.enumerate() {
        let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && index != last) {
            return None;
        }
        let mut group = 0u32;
        for &c in &chunk[..4 - padding] {
            group = (group << 6) | value(c)?;
        }
        group <<= 6 * padding as u32;
        let decoded = group.to_be_bytes();
        // Bits that padding drops must be zero, so that each secret has one spelling.
        let keep = 3 - padding;
        if decoded[1 + keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&decoded[1..1 + keep]);
    }
    Some(out)
}

/// Checks a notify-in table as a whole. `server` is the server it names, when that exists.
pub(super) fn check(
    notify: &NotifyInConfig,
    server: Option<&ServerConfig>,
    at: &Positions,
    errors: &mut Errors,
) {
    if notify.require_tsig == Some(true) && notify.tsig_key.is_none() {
        errors.at(
            at.value_span("require-tsig"),
            "`require-tsig = true` needs a `tsig-key`".into(),
        );
    }
    if notify.allow.is_empty() {
        errors.at(
            at.value_span("allow"),
            "`allow` is empty, so every NOTIFY would be refused: list the addresses the server sends NOTIFY from".into(),
        );
    }
    if let Some(index) = notify.allow.iter().position(AddressPrefix::is_everything)
        && !notify.requires_tsig()
    {
        errors.at(
            at.item_span("allow", index),
            "NOTIFY from any address must be signed: set `tsig-key` (with `require-tsig` true), or narrow `allow`".into(),
        );
    }
    if notify.timeout.is_zero() {
        errors.at(
            at.value_span("timeout"),
            "`timeout` must be more than 0".into(),
        );
    }
    if let Some(server) = server
        && server.zones.is_empty()
    {
        errors.at(
            at.value_span("server"),
            format!(
                "server `{}` has no `zones`: a notify-in source accepts NOTIFY only for the server's zones",
                server.name
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigProblem, SourceConfig, line_column, parse};
    use super::*;

    const SERVER: &str = r#"
[[server]]
name = "knot"
address = "127.0.0.1:5300"
zones = ["a.test"]
"#;

    fn notify_in(table: &str) -> Result<NotifyInConfig, Vec<ConfigProblem>> {
        let text = format!("{SERVER}[[source]]\ntype = \"notify-in\"\n{table}");
        match parse(&text, Path::new("t.toml")) {
            Ok(Config { sources, .. }) => match &sources[..] {
                [SourceConfig::NotifyIn(notify)] => Ok(notify.clone()),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.problems().to_vec()),
        }
    }

    /// Asserts that the table's first problem is at `needle` and says `expected`.
    fn assert_problem(table: &str, needle: &str, expected: &str) {
        let problems = notify_in(table).expect_err("the table is refused");
        let text = format!("{SERVER}[[source]]\ntype = \"notify-in\"\n{table}");
        let at = text.find(needle).unwrap_or_else(|| panic!("no `{needle}`"));
        let p = &problems[0];
        assert_eq!((p.line, p.column), line_column(&text, at), "{problems:?}");
        assert!(
            p.message.contains(expected),
            "`{expected}` not in {problems:?}"
        );
    }

    #[test]
    fn a_full_notify_in_table_parses() {
        let notify = notify_in(
            r#"server = "knot"
listen = "[::1]:5399"
allow = ["192.0.2.0/24", "::1"]
tsig-key = { name = "Notify-Key", algorithm = "hmac-sha512", secret = "c2VjcmV0IQ==" }
min-interval = "250ms"
timeout = "2s"
"#,
        )
        .unwrap();
        assert_eq!(notify.listen, "[::1]:5399".parse().unwrap());
        let allow: Vec<String> = notify.allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["192.0.2.0/24", "::1/128"]);
        let key = notify.tsig_key.as_ref().unwrap();
        assert_eq!(key.name, "notify-key.");
        assert_eq!(key.algorithm, TsigHmac::Sha512);
        assert_eq!(key.secret, b"secret!");
        assert!(
            notify.requires_tsig(),
            "required by default when a key is set"
        );
        assert_eq!(notify.min_interval, Duration::from_millis(250));
        assert_eq!(notify.timeout, Duration::from_secs(2));
    }

    #[test]
    fn a_minimal_notify_in_table_gets_the_defaults() {
        let notify = notify_in("server = \"knot\"\nlisten = \"127.0.0.1@5399\"\n").unwrap();
        assert_eq!(notify.listen, "127.0.0.1:5399".parse().unwrap());
        assert_eq!(notify.allow, AddressPrefix::loopback());
        assert!(notify.tsig_key.is_none());
        assert!(!notify.requires_tsig());
        assert_eq!(notify.min_interval, Duration::from_secs(1));
        assert_eq!(notify.timeout, Duration::from_secs(1));
        let optional = notify_in(
            "server = \"knot\"\nlisten = \"127.0.0.1:5399\"\nrequire-tsig = false\n\
             tsig-key = { name = \"k.\", algorithm = \"hmac-sha256\", secret = \"AAAA\" }\n",
        )
        .unwrap();
        assert!(!optional.requires_tsig());
    }

    #[test]
    fn notify_in_values_are_checked_where_written() {
        let base = "server = \"knot\"\n";
        assert_problem(
            &format!("{base}listen = \"5399\"\n"),
            "\"5399\"",
            "invalid listen address `5399`",
        );
        assert_problem(base, "[[source]]", "missing field `listen`");
        let listen = format!("{base}listen = \"127.0.0.1:5399\"\n");
        assert_problem(
            &format!("{listen}allow = [\"127.0.0.1/32\", \"10.1.2.3/8\"]\n"),
            "\"10.1.2.3/8\"",
            "write `10.0.0.0/8`",
        );
        assert_problem(
            &format!(
                "{listen}tsig-key = {{ name = \"k.\", algorithm = \"hmac-md5\", secret = \"AAAA\" }}\n"
            ),
            "\"hmac-md5\"",
            "unsupported TSIG algorithm `hmac-md5`",
        );
        assert_problem(
            &format!(
                "{listen}tsig-key = {{ name = \"k.\", algorithm = \"hmac-sha256\", secret = \"not base64\" }}\n"
            ),
            "\"not base64\"",
            "the TSIG secret is not base64",
        );
        assert_problem(
            &format!(
                "{listen}tsig-key = {{ name = \"k.\", algorithm = \"hmac-sha256\", secret = \"AAAA\", file = \"x\" }}\n"
            ),
            "file",
            "unknown field `file`",
        );
        assert_problem(
            &format!("{listen}require-tsig = true\n"),
            "true",
            "`require-tsig = true` needs a `tsig-key`",
        );
        assert_problem(&format!("{listen}allow = []\n"), "[]", "`allow` is empty");
        assert_problem(
            &format!("{listen}allow = [\"::1\", \"0.0.0.0/0\"]\n"),
            "\"0.0.0.0/0\"",
            "NOTIFY from any address must be signed",
        );
        assert_problem(
            &format!("{listen}timeout = \"0s\"\n"),
            "\"0s\"",
            "`timeout` must be more than 0",
        );
        assert_problem(
            "server = \"nsd\"\nlisten = \"127.0.0.1:5399\"\n",
            "\"nsd\"",
            "unknown server `nsd`",
        );
    }

    #[test]
    fn any_address_is_fine_when_tsig_is_required() {
        let notify = notify_in(
            "server = \"knot\"\nlisten = \"[::]:5399\"\nallow = [\"0.0.0.0/0\", \"::/0\"]\n\
             tsig-key = { name = \"k.\", algorithm = \"hmac-sha256\", secret = \"AAAA\" }\n",
        )
        .unwrap();
        assert!(notify.allow.iter().all(AddressPrefix::is_everything));
    }

    #[test]
    fn the_commented_example_parses_when_uncommented() {
        let shipped = include_str!("../../etc/dns-oops.toml");
        let start = shipped
            .find("# [[source]]\n# type = \"notify-in\"")
            .expect("the example has a notify-in section");
        let example: String = shipped[start..]
            .lines()
            .take_while(|line| !line.is_empty())
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.starts_with("[[")
                    || line.split_once(" = ").is_some_and(|(key, _)| {
                        key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                    })
            })
            .map(|line| format!("{}\n", line.replace("<base64>", "c2VjcmV0IQ==")))
            .collect();
        assert!(example.contains("tsig-key = "), "{example}");
        let text = format!("{shipped}\n{example}");
        let config = parse(&text, Path::new("dns-oops.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            config
                .sources
                .iter()
                .any(|s| matches!(s, SourceConfig::NotifyIn(n) if n.requires_tsig()))
        );
    }

    #[test]
    fn a_server_without_zones_cannot_have_a_notify_in_source() {
        let text = "[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:53\"\n\
                    [[source]]\ntype = \"notify-in\"\nserver = \"knot\"\nlisten = \"127.0.0.1:5399\"\n";
        let problems = parse(text, Path::new("t.toml"))
            .unwrap_err()
            .problems()
            .to_vec();
        assert!(
            problems[0].message.contains("server `knot` has no `zones`"),
            "{problems:?}"
        );
    }

    fn prefix(text: &str) -> AddressPrefix {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn prefixes_contain_their_addresses() {
        let net = prefix("192.0.2.0/24");
        assert!(net.contains("192.0.2.77".parse().unwrap()));
        assert!(!net.contains("192.0.3.1".parse().unwrap()));
        assert!(net.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let host = prefix("::1");
        assert_eq!(host.to_string(), "::1/128");
        assert!(host.contains("::1".parse().unwrap()));
        assert!(!host.contains("::2".parse().unwrap()));
        let v6 = prefix("2001:db8::/32");
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let all = prefix("0.0.0.0/0");
        assert!(all.is_everything());
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let loopback = AddressPrefix::loopback();
        assert!(
            loopback
                .iter()
                .any(|p| p.contains("127.0.0.1".parse().unwrap()))
        );
        assert!(loopback.iter().any(|p| p.contains("::1".parse().unwrap())));
        assert!(
            !loopback
                .iter()
                .any(|p| p.contains("10.0.0.1".parse().unwrap()))
        );
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for text in [
            "192.0.2.0/33",
            "::/129",
            "192.0.2.0/",
            "192.0.2.0/+8",
            "192.0.2.0/08",
            "example.net",
            "",
            "192.0.2.0/24/1",
        ] {
            assert!(
                text.parse::<AddressPrefix>().is_err(),
                "{text} was accepted"
            );
        }
        let e = "192.0.2.1/24".parse::<AddressPrefix>().unwrap_err();
        assert!(e.contains("write `192.0.2.0/24`"), "{e}");
    }

    #[test]
    fn base64_decodes_strictly() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("+/8=").unwrap(), [0xfb, 0xff]);
        for bad in [
            "Zg", "Zg=", "Zg===", "Z===", "Zh==", "Zm9=", "Zg==Zg==", "Zm9v\n", "Zm 9",
        ] {
            assert!(decode_base64(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_key_does_not_show_its_secret() {
        let key = TsigKey {
            name: "k.".into(),
            algorithm: TsigHmac::Sha256,
            secret: b"very secret".to_vec(),
        };
        let debug = format!("{key:?}");
        assert!(!debug.contains("very"), "{debug}");
        assert!(debug.contains("11 octets"), "{debug}");
    }
}
