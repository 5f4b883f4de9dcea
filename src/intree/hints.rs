//! The hints file: one domain's in-domain name servers, their addresses and its trust
//! anchors, in TOML.
//!
//! ```toml
//! domain = "example.test."
//!
//! [[nameserver]]
//! name = "ns1.example.test."
//! addresses = ["192.0.2.53", "2001:db8::53"]
//!
//! [[trust-anchor]]
//! ds = "12345 13 2 0123…"          # or: dnskey = "257 3 13 base64…"
//! ```
//!
//! The draft defines no file format; this one holds exactly what it says a resolver needs
//! (§2.1: "the names and IP addresses of authoritative name servers for a specific domain",
//! "in combination with a trust-anchor"). Reading refuses what the draft forbids: a domain
//! without an in-domain name server, and hints without a trust anchor. Every problem is
//! reported with its line and column.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// Why the draft forbids hints without an in-domain name server (§2.1).
pub const NO_IN_DOMAIN_REASON: &str = "in-tree hints MUST NOT be used for a domain without an \
     in-domain name server: the resiliency properties cannot be achieved as there are external \
     name dependencies (draft-kolkman-in-tree-hints §2.1)";

/// The largest hints file read, in bytes.
pub const MAX_HINTS_FILE: u64 = 1 << 20;
/// At most this many name servers, addresses per server, and trust anchors.
const MAX_ITEMS: usize = 64;

/// One domain's in-tree hints, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hints {
    /// Lowercase, absolute (with the trailing dot), never the root.
    pub domain: String,
    /// Each name once, in file order.
    pub nameservers: Vec<NameServer>,
    /// At least one.
    pub trust_anchors: Vec<TrustAnchor>,
}

/// A name server of the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameServer {
    /// Lowercase, absolute.
    pub name: String,
    /// Each once; never empty for an in-domain name server.
    pub addresses: Vec<IpAddr>,
}

/// A trust anchor of the domain, as a DS or a DNSKEY record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustAnchor {
    Ds(DsData),
    Dnskey(DnskeyData),
}

/// DS record data (RFC 4034 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsData {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: Vec<u8>,
}

/// DNSKEY record data (RFC 4034 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnskeyData {
    pub flags: u16,
    pub protocol: u8,
    pub algorithm: u8,
    pub public_key: Vec<u8>,
}

impl Hints {
    /// Whether `name` is the domain or below it: an in-domain name (RFC 9499).
    pub fn is_in_domain(&self, name: &str) -> bool {
        is_at_or_below(name, &self.domain)
    }

    /// The name servers whose names are in the domain.
    pub fn in_domain_nameservers(&self) -> impl Iterator<Item = &NameServer> {
        self.nameservers
            .iter()
            .filter(|ns| self.is_in_domain(&ns.name))
    }

    /// Every address of every name server, each once.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for ns in &self.nameservers {
            for address in &ns.addresses {
                if !out.contains(address) {
                    out.push(*address);
                }
            }
        }
        out
    }

    /// The hints as a hints file that reads back to the same hints.
    pub fn to_toml(&self) -> String {
        let mut out = format!("domain = \"{}\"\n", self.domain);
        for ns in &self.nameservers {
            let addresses: Vec<String> = ns.addresses.iter().map(|a| format!("\"{a}\"")).collect();
            out.push_str(&format!(
                "\n[[nameserver]]\nname = \"{}\"\naddresses = [{}]\n",
                ns.name,
                addresses.join(", ")
            ));
        }
        for anchor in &self.trust_anchors {
            let (key, value) = match anchor {
                TrustAnchor::Ds(ds) => ("ds", ds.to_string()),
                TrustAnchor::Dnskey(key) => ("dnskey", key.to_string()),
            };
            out.push_str(&format!("\n[[trust-anchor]]\n{key} = \"{value}\"\n"));
        }
        out
    }
}

/// Whether `name` equals `zone` or is below it; both lowercase and absolute.
pub fn is_at_or_below(name: &str, zone: &str) -> bool {
    zone == "."
        || name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

impl fmt::Display for DsData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.key_tag,
            self.algorithm,
            self.digest_type,
            hex_encode(&self.digest)
        )
    }
}

impl fmt::Display for DnskeyData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.flags,
            self.protocol,
            self.algorithm,
            base64_encode(&self.public_key)
        )
    }
}

impl DnskeyData {
    /// The record data in wire form.
    pub fn rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.public_key.len());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.push(self.protocol);
        out.push(self.algorithm);
        out.extend_from_slice(&self.public_key);
        out
    }

    /// The key tag (RFC 4034 Appendix B).
    pub fn key_tag(&self) -> u16 {
        let mut sum: u32 = 0;
        for (i, byte) in self.rdata().iter().enumerate() {
            sum += if i % 2 == 0 {
                u32::from(*byte) << 8
            } else {
                u32::from(*byte)
            };
        }
        sum += (sum >> 16) & 0xffff;
        (sum & 0xffff) as u16
    }

    /// The DS of this key at `owner` with `digest_type` (1 SHA-1, 2 SHA-256, 4 SHA-384);
    /// `None` for other digest types.
    pub fn ds(&self, owner: &str, digest_type: u8) -> Option<DsData> {
        let algorithm = match digest_type {
            1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            2 => &ring::digest::SHA256,
            4 => &ring::digest::SHA384,
            _ => return None,
        };
        let mut input = name_wire(owner);
        input.extend_from_slice(&self.rdata());
        Some(DsData {
            key_tag: self.key_tag(),
            algorithm: self.algorithm,
            digest_type,
            digest: ring::digest::digest(algorithm, &input).as_ref().to_vec(),
        })
    }

    /// Whether `ds` is a DS of this key at `owner`.
    pub fn matches(&self, owner: &str, ds: &DsData) -> bool {
        ds.algorithm == self.algorithm
            && ds.key_tag == self.key_tag()
            && self.ds(owner, ds.digest_type).is_some_and(|own| own == *ds)
    }

    /// Parses record data in wire form.
    pub fn from_rdata(rdata: &[u8]) -> Option<DnskeyData> {
        if rdata.len() < 5 {
            return None;
        }
        Some(DnskeyData {
            flags: u16::from_be_bytes([rdata[0], rdata[1]]),
            protocol: rdata[2],
            algorithm: rdata[3],
            public_key: rdata[4..].to_vec(),
        })
    }
}

impl DsData {
    /// Parses record data in wire form.
    pub fn from_rdata(rdata: &[u8]) -> Option<DsData> {
        if rdata.len() < 5 {
            return None;
        }
        Some(DsData {
            key_tag: u16::from_be_bytes([rdata[0], rdata[1]]),
            algorithm: rdata[2],
            digest_type: rdata[3],
            digest: rdata[4..].to_vec(),
        })
    }
}

impl TrustAnchor {
    /// Whether the anchor designates `key` of `owner`.
    pub fn designates(&self, owner: &str, key: &DnskeyData) -> bool {
        match self {
            TrustAnchor::Ds(ds) => key.matches(owner, ds),
            TrustAnchor::Dnskey(own) => own == key,
        }
    }

    /// `DS 12345 13 2` or `DNSKEY 257 3 13 (tag 12345)`, for messages.
    pub fn describe(&self) -> String {
        match self {
            TrustAnchor::Ds(ds) => format!("DS {} {} {}", ds.key_tag, ds.algorithm, ds.digest_type),
            TrustAnchor::Dnskey(key) => format!(
                "DNSKEY {} {} {} (key tag {})",
                key.flags,
                key.protocol,
                key.algorithm,
                key.key_tag()
            ),
        }
    }

    /// As a DS with SHA-256 (a DNSKEY anchor is digested), for resolvers that take DS only.
    pub fn as_ds(&self, owner: &str) -> DsData {
        match self {
            TrustAnchor::Ds(ds) => ds.clone(),
            TrustAnchor::Dnskey(key) => key.ds(owner, 2).expect("SHA-256 is supported"),
        }
    }
}

/// Uncompressed wire form of a lowercase absolute name made of plain labels.
pub fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.to_ascii_lowercase().as_bytes());
    }
    out.push(0);
    out
}

/// One problem in a hints file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintsProblem {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// Why a hints file was refused.
#[derive(Debug, thiserror::Error)]
pub enum HintsError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_HINTS_FILE} bytes")]
    TooLarge { path: String },
    /// Displayed as one `file:line:column: message` line per problem.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: String,
        /// In the order of their positions; never empty.
        problems: Vec<HintsProblem>,
    },
}

impl HintsError {
    /// The problems found; empty for I/O errors.
    pub fn problems(&self) -> &[HintsProblem] {
        match self {
            HintsError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render_problems(path: &str, problems: &[HintsProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{path}:{}:{}: {}", p.line, p.column, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates a hints file.
pub fn load(path: &Path) -> Result<Hints, HintsError> {
    let display = path.display().to_string();
    let io = |source| HintsError::Io {
        path: display.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_HINTS_FILE {
        return Err(HintsError::TooLarge { path: display });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse(&text, &display)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HintsFile {
    domain: Spanned<String>,
    #[serde(default)]
    nameserver: Vec<Spanned<NameServerFile>>,
    #[serde(default)]
    trust_anchor: Vec<Spanned<TrustAnchorFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct NameServerFile {
    name: Spanned<String>,
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TrustAnchorFile {
    #[serde(default)]
    ds: Option<Spanned<String>>,
    #[serde(default)]
    dnskey: Option<Spanned<String>>,
}

/// Validates hints text; `path` is used in messages.
pub fn parse(text: &str, path: &str) -> Result<Hints, HintsError> {
    let mut problems = Problems {
        text,
        list: Vec::new(),
    };
    let hints = match toml::from_str::<HintsFile>(text) {
        Ok(file) => Some(validate(file, &mut problems)),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            problems.at(span, e.message().trim().to_string());
            None
        }
    };
    match hints {
        Some(hints) if problems.list.is_empty() => Ok(hints),
        _ => {
            let mut list = problems.list;
            list.sort_by_key(|p| (p.line, p.column));
            Err(HintsError::Invalid {
                path: path.to_string(),
                problems: list,
            })
        }
    }
}

struct Problems<'a> {
    text: &'a str,
    list: Vec<HintsProblem>,
}

impl Problems<'_> {
    fn at(&mut self, span: Range<usize>, message: String) {
        let (line, column) = line_column(self.text, span.start);
        self.list.push(HintsProblem {
            line,
            column,
            message,
        });
    }
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

fn validate(file: HintsFile, problems: &mut Problems) -> Hints {
    let domain_span = file.domain.span();
    let domain = match normalize_name(file.domain.get_ref()) {
        Ok(name) if name == "." => {
            problems.at(
                domain_span.clone(),
                "`domain` cannot be the root: that is what root hints are for".into(),
            );
            name
        }
        Ok(name) => name,
        Err(e) => {
            problems.at(domain_span.clone(), format!("`domain`: {e}"));
            String::new()
        }
    };
    let mut nameservers: Vec<NameServer> = Vec::new();
    if file.nameserver.is_empty() {
        problems.at(
            domain_span.clone(),
            "no [[nameserver]]: add the domain's name servers with `name` and `addresses`".into(),
        );
    }
    if file.nameserver.len() > MAX_ITEMS {
        problems.at(
            file.nameserver[MAX_ITEMS].span(),
            format!("more than {MAX_ITEMS} name servers"),
        );
    }
    for entry in file.nameserver.iter().take(MAX_ITEMS) {
        let ns = entry.get_ref();
        let name = match normalize_name(ns.name.get_ref()) {
            Ok(name) => name,
            Err(e) => {
                problems.at(ns.name.span(), format!("name server `name`: {e}"));
                continue;
            }
        };
        if nameservers.iter().any(|other| other.name == name) {
            problems.at(
                ns.name.span(),
                format!("name server `{name}` is listed twice"),
            );
            continue;
        }
        let mut addresses: Vec<IpAddr> = Vec::new();
        if ns.addresses.len() > MAX_ITEMS {
            problems.at(
                ns.addresses[MAX_ITEMS].span(),
                format!("more than {MAX_ITEMS} addresses"),
            );
        }
        for address in ns.addresses.iter().take(MAX_ITEMS) {
            match address.get_ref().trim().parse::<IpAddr>() {
                Ok(ip) if addresses.contains(&ip) => problems.at(
                    address.span(),
                    format!("address {ip} is listed twice for `{name}`"),
                ),
                Ok(ip) => addresses.push(ip),
                Err(_) => problems.at(
                    address.span(),
                    format!(
                        "`{}` is not an IP address; write e.g. \"192.0.2.53\" or \"2001:db8::53\"",
                        address.get_ref()
                    ),
                ),
            }
        }
        let in_domain = !domain.is_empty() && is_at_or_below(&name, &domain);
        if in_domain && addresses.is_empty() && ns.addresses.is_empty() {
            problems.at(
                entry.span(),
                format!(
                    "in-domain name server `{name}` needs `addresses`: a resolver cannot look them up when the parent is unreachable"
                ),
            );
        }
        nameservers.push(NameServer { name, addresses });
    }
    if !domain.is_empty()
        && !file.nameserver.is_empty()
        && !nameservers
            .iter()
            .any(|ns| is_at_or_below(&ns.name, &domain))
        && nameservers.len() == file.nameserver.len().min(MAX_ITEMS)
    {
        problems.at(
            domain_span.clone(),
            format!("no name server of `{domain}` is in the domain: {NO_IN_DOMAIN_REASON}"),
        );
    }
    let mut trust_anchors = Vec::new();
    if file.trust_anchor.is_empty() {
        problems.at(
            domain_span,
            "no [[trust-anchor]]: in-tree hints MUST only be used in combination with a trust \
             anchor (draft-kolkman-in-tree-hints §2.1); add `ds = \"…\"` or `dnskey = \"…\"`"
                .into(),
        );
    }
    if file.trust_anchor.len() > MAX_ITEMS {
        problems.at(
            file.trust_anchor[MAX_ITEMS].span(),
            format!("more than {MAX_ITEMS} trust anchors"),
        );
    }
    for entry in file.trust_anchor.iter().take(MAX_ITEMS) {
        let anchor = entry.get_ref();
        let parsed = match (&anchor.ds, &anchor.dnskey) {
            (Some(_), Some(dnskey)) => {
                problems.at(
                    dnskey.span(),
                    "set one of `ds` and `dnskey` in a [[trust-anchor]], not both".into(),
                );
                continue;
            }
            (None, None) => {
                problems.at(
                    entry.span(),
                    "a [[trust-anchor]] needs `ds = \"KEYTAG ALG DIGESTTYPE HEX\"` or `dnskey = \"FLAGS 3 ALG BASE64\"`".into(),
                );
                continue;
            }
            (Some(ds), None) => parse_ds(ds.get_ref())
                .map(TrustAnchor::Ds)
                .map_err(|e| (ds.span(), e)),
            (None, Some(key)) => parse_dnskey(key.get_ref())
                .map(TrustAnchor::Dnskey)
                .map_err(|e| (key.span(), e)),
        };
        match parsed {
            Ok(anchor) if trust_anchors.contains(&anchor) => {
                problems.at(entry.span(), "this trust anchor is listed twice".into());
            }
            Ok(anchor) => trust_anchors.push(anchor),
            Err((span, e)) => problems.at(span, e),
        }
    }
    Hints {
        domain,
        nameservers,
        trust_anchors,
    }
}

/// Lowercase, absolute form of a host or domain name made of letters, digits, `-` and `_`.
pub fn normalize_name(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed == "." {
        return Ok(".".into());
    }
    let bare = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if bare.is_empty() {
        return Err("empty name".into());
    }
    if bare.len() > 253 {
        return Err(format!("`{trimmed}` is longer than 253 characters"));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(format!("`{trimmed}` has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("`{trimmed}` has a label longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "`{trimmed}` contains `{c}`; names are letters, digits, `-` and `_`"
            ));
        }
    }
    Ok(format!("{}.", bare.to_ascii_lowercase()))
}

/// Parses `KEYTAG ALGORITHM DIGESTTYPE HEX…` (the digest may be split by spaces).
pub fn parse_ds(text: &str) -> Result<DsData, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() < 4 {
        return Err(format!(
            "`ds` must be \"KEYTAG ALGORITHM DIGESTTYPE DIGEST\", e.g. \"12345 13 2 4F3A…\"; got `{text}`"
        ));
    }
    let key_tag = fields[0]
        .parse::<u16>()
        .map_err(|_| format!("DS key tag `{}` is not a number up to 65535", fields[0]))?;
    let algorithm = fields[1]
        .parse::<u8>()
        .map_err(|_| format!("DS algorithm `{}` is not a number up to 255", fields[1]))?;
    let digest_type = fields[2]
        .parse::<u8>()
        .map_err(|_| format!("DS digest type `{}` is not a number up to 255", fields[2]))?;
    let hex: String = fields[3..].concat();
    let digest = hex_decode(&hex).ok_or_else(|| format!("DS digest `{hex}` is not hexadecimal"))?;
    let expected = match digest_type {
        1 => 20,
        2 => 32,
        4 => 48,
        other => {
            return Err(format!(
                "DS digest type {other} is not supported; use 2 (SHA-256), 4 (SHA-384) or 1 (SHA-1)"
            ));
        }
    };
    if digest.len() != expected {
        return Err(format!(
            "a digest of type {digest_type} has {expected} octets ({} hex digits), this one {}",
            expected * 2,
            digest.len()
        ));
    }
    Ok(DsData {
        key_tag,
        algorithm,
        digest_type,
        digest,
    })
}

/// Parses `FLAGS PROTOCOL ALGORITHM BASE64…` (the key may be split by spaces).
pub fn parse_dnskey(text: &str) -> Result<DnskeyData, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() < 4 {
        return Err(format!(
            "`dnskey` must be \"FLAGS PROTOCOL ALGORITHM PUBLICKEY\", e.g. \"257 3 13 mdsswUyr…\"; got `{text}`"
        ));
    }
    let flags = fields[0]
        .parse::<u16>()
        .map_err(|_| format!("DNSKEY flags `{}` is not a number up to 65535", fields[0]))?;
    if flags & 0x0100 == 0 {
        return Err(format!(
            "DNSKEY flags {flags} lack the Zone Key bit (256): not a zone key"
        ));
    }
    let protocol = fields[1]
        .parse::<u8>()
        .map_err(|_| format!("DNSKEY protocol `{}` is not a number", fields[1]))?;
    if protocol != 3 {
        return Err(format!("DNSKEY protocol must be 3, not {protocol}"));
    }
    let algorithm = fields[2]
        .parse::<u8>()
        .map_err(|_| format!("DNSKEY algorithm `{}` is not a number up to 255", fields[2]))?;
    let encoded: String = fields[3..].concat();
    let public_key = base64_decode(&encoded)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| format!("DNSKEY public key `{encoded}` is not base64"))?;
    Ok(DnskeyData {
        flags,
        protocol,
        algorithm,
        public_key,
    })
}

/// Uppercase hexadecimal.
pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let last = index == bytes.len() / 4 - 1;
        let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut n: u32 = 0;
        for &c in &chunk[..4 - padding] {
            let value = BASE64.iter().position(|&b| b == c)? as u32;
            n = (n << 6) | value;
        }
        n <<= 6 * padding as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"domain = "Example.Test"

[[nameserver]]
name = "ns1.example.test."
addresses = ["127.0.0.2", "::1"]

[[nameserver]]
name = "ns.elsewhere.example."

[[trust-anchor]]
ds = "2371 13 2 C7A5 4B1F0D4AB5B4BBCEE24575EF63B1E01B1C8DE65D7B8CE1E5BB7B7C9C7E1E"
"#;

    fn problems(text: &str) -> Vec<(usize, usize, String)> {
        match parse(text, "h.toml") {
            Ok(h) => panic!("accepted: {h:?}"),
            Err(e) => e
                .problems()
                .iter()
                .map(|p| (p.line, p.column, p.message.clone()))
                .collect(),
        }
    }

    #[test]
    fn reads_a_complete_file() {
        let hints = parse(GOOD, "h.toml").unwrap();
        assert_eq!(hints.domain, "example.test.");
        assert_eq!(hints.nameservers.len(), 2);
        assert_eq!(hints.in_domain_nameservers().count(), 1);
        assert_eq!(hints.addresses().len(), 2);
        let TrustAnchor::Ds(ds) = &hints.trust_anchors[0] else {
            panic!()
        };
        assert_eq!((ds.key_tag, ds.algorithm, ds.digest_type), (2371, 13, 2));
        assert_eq!(ds.digest.len(), 32);
        // Written back, it reads the same.
        assert_eq!(parse(&hints.to_toml(), "again").unwrap(), hints);
    }

    #[test]
    fn toml_syntax_errors_have_positions() {
        let p = problems("domain = \"example.test.\"\n[[nameserver]\n");
        assert_eq!(p[0].0, 2, "{p:?}");
    }

    #[test]
    fn unknown_keys_are_refused_where_written() {
        let text = GOOD.replace("addresses = [", "adresses = [");
        let p = problems(&text);
        assert_eq!((p[0].0, p[0].1), (5, 1), "{p:?}");
        assert!(p[0].2.contains("adresses"), "{p:?}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let text = GOOD.replace("\"::1\"", "\"::1::\"");
        let p = problems(&text);
        assert_eq!((p[0].0, p[0].1), (5, 27), "{p:?}");
        assert!(p[0].2.contains("not an IP address"), "{p:?}");
        let text = GOOD.replace("2371 13 2 C7A5", "2371 13 2 C7A");
        let p = problems(&text);
        assert_eq!((p[0].0, p[0].1), (11, 6), "{p:?}");
    }

    #[test]
    fn no_in_domain_name_server_is_refused_with_the_drafts_reason() {
        let text = "domain = \"example.test.\"\n[[nameserver]]\nname = \"ns.other.example.\"\n\
                    [[trust-anchor]]\nds = \"1 13 2 C7A54B1F0D4AB5B4BBCEE24575EF63B1E01B1C8DE65D7B8CE1E5BB7B7C9C7E1E\"\n";
        let p = problems(text);
        assert_eq!((p[0].0, p[0].1), (1, 10), "{p:?}");
        assert!(p[0].2.contains("external name dependencies"), "{p:?}");
    }

    #[test]
    fn in_domain_name_servers_need_addresses_and_a_trust_anchor_is_required() {
        let text = "domain = \"example.test.\"\n[[nameserver]]\nname = \"ns1.example.test.\"\n";
        let p = problems(text);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|x| x.2.contains("trust anchor")), "{p:?}");
        assert!(p.iter().any(|x| x.2.contains("needs `addresses`")), "{p:?}");
    }

    #[test]
    fn dnskey_anchors_digest_to_their_ds() {
        // RFC 4034 §5.4: the DNSKEY and DS of dskey.example.com.
        let key = parse_dnskey(
            "256 3 5 AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/ 2pHm822aJ5iI9BMzNXxeYCmZ\
             DRD99WYwYqUSdjMmmAphXdvxegXd/ M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9Xzc nOf+EPbtG9DMBmADjFDc2w/rljwvFw==",
        )
        .unwrap();
        assert_eq!(key.key_tag(), 60485);
        let ds = parse_ds("60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118").unwrap();
        assert!(key.matches("dskey.example.com.", &ds));
        assert!(!key.matches("other.example.com.", &ds));
        assert_eq!(base64_encode(&key.public_key).len() % 4, 0);
        assert_eq!(
            base64_decode(&base64_encode(&key.public_key)).unwrap(),
            key.public_key
        );
    }

    #[test]
    fn base64_round_trips_every_length() {
        for n in 0..10u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
        }
        assert!(base64_decode("A===").is_none());
        assert!(base64_decode("AA=A").is_none());
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            normalize_name("NS1.Example.test").unwrap(),
            "ns1.example.test."
        );
        assert!(normalize_name("a..b").is_err());
        assert!(normalize_name("a b").is_err());
        assert!(is_at_or_below("ns1.example.test.", "example.test."));
        assert!(is_at_or_below("example.test.", "example.test."));
        assert!(!is_at_or_below("badexample.test.", "example.test."));
    }
}
