//! Resolver configuration that applies hints: the domain's name server addresses as a
//! stub (the resolver asks them directly, without the parent's delegation) and the trust
//! anchors, which take precedence over a parental DS (§2.1).
//!
//! | resolver | stub | trust anchor |
//! |---|---|---|
//! | unbound | `stub-zone` with `stub-addr` and `stub-prime: yes` (the NS set is refreshed from the domain's servers) | `trust-anchor:` |
//! | BIND | `zone … { type static-stub; server-addresses … }` | `trust-anchors { … static-ds / static-key }` |
//! | Knot Resolver 5 | `policy.FORWARD` on the domain's suffix (`STUB` would skip DNSSEC validation; the servers answer their own zone with RD set) | `trust_anchors.add()` |
//! | PowerDNS Recursor 4 | `forward-zones` (RD clear, as to an authoritative server) | `addTA()` in the Lua config (`lua-config-file`), DS only: a DNSKEY anchor is rendered as its SHA-256 DS |
//!
//! Each renderer takes every hints file at once: one resolver, several domains.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::hints::{Hints, TrustAnchor, is_at_or_below};

/// The resolvers configuration can be rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    Unbound,
    Bind,
    KnotResolver,
    PdnsRecursor,
}

impl Resolver {
    pub const ALL: [Resolver; 4] = [
        Resolver::Unbound,
        Resolver::Bind,
        Resolver::KnotResolver,
        Resolver::PdnsRecursor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolver::Unbound => "unbound",
            Resolver::Bind => "bind",
            Resolver::KnotResolver => "knot-resolver",
            Resolver::PdnsRecursor => "pdns-recursor",
        }
    }
}

impl fmt::Display for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resolver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Resolver::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown resolver `{s}`; expected unbound, bind, knot-resolver or pdns-recursor"
                )
            })
    }
}

/// What a render produces: the main configuration text and, for PowerDNS Recursor, the
/// Lua configuration the main text names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub main: String,
    /// The text of the Lua file the main text names (`lua-config-file`).
    pub lua: Option<String>,
}

/// Renders `hints` for `resolver`. `lua_path` is where the PowerDNS Recursor's Lua
/// configuration will be (it is named in the main text); other resolvers ignore it.
pub fn render(resolver: Resolver, hints: &[Hints], lua_path: &str) -> Rendered {
    match resolver {
        Resolver::Unbound => Rendered {
            main: unbound(hints),
            lua: None,
        },
        Resolver::Bind => Rendered {
            main: bind(hints),
            lua: None,
        },
        Resolver::KnotResolver => Rendered {
            main: knot_resolver(hints),
            lua: None,
        },
        Resolver::PdnsRecursor => {
            let (main, lua) = pdns_recursor(hints, lua_path);
            Rendered {
                main,
                lua: Some(lua),
            }
        }
    }
}

const HEADER: &str =
    "in-tree hints (draft-kolkman-in-tree-hints), rendered by dns-oops in-tree render";

/// Domains unbound answers locally by default (RFC 6761 and others) that a hinted domain
/// may be under; the default local zone is switched off so that the stub is used.
const UNBOUND_DEFAULT_LOCAL: &[&str] = &["test.", "invalid.", "onion.", "home.arpa.", "local."];

fn unbound(all: &[Hints]) -> String {
    let mut out = format!("# {HEADER}\nserver:\n");
    let loopback = all
        .iter()
        .flat_map(|h| h.addresses())
        .any(|ip| ip.is_loopback());
    if loopback {
        out.push_str(
            "    # the hinted servers are on loopback addresses\n    do-not-query-localhost: no\n",
        );
    }
    let mut local: Vec<&str> = Vec::new();
    for hints in all {
        if let Some(zone) = UNBOUND_DEFAULT_LOCAL
            .iter()
            .find(|z| is_at_or_below(&hints.domain, z))
            && !local.contains(zone)
        {
            local.push(zone);
            out.push_str(&format!(
                "    # {} is under {zone}, which unbound answers locally by default\n    local-zone: \"{zone}\" nodefault\n",
                hints.domain
            ));
        }
        for anchor in &hints.trust_anchors {
            out.push_str(&format!(
                "    trust-anchor: \"{} {}\"\n",
                hints.domain,
                anchor_record(anchor)
            ));
        }
    }
    for hints in all {
        out.push_str(&format!(
            "stub-zone:\n    name: \"{}\"\n    stub-prime: yes\n",
            hints.domain
        ));
        for ip in hints.addresses() {
            out.push_str(&format!("    stub-addr: {ip}\n"));
        }
    }
    out
}

/// `DS 1 2 3 HEX` or `DNSKEY 257 3 13 BASE64`.
fn anchor_record(anchor: &TrustAnchor) -> String {
    match anchor {
        TrustAnchor::Ds(ds) => format!("DS {ds}"),
        TrustAnchor::Dnskey(key) => format!("DNSKEY {key}"),
    }
}

fn bind(all: &[Hints]) -> String {
    let mut out = format!("// {HEADER}\n");
    out.push_str("trust-anchors {\n");
    for hints in all {
        for anchor in &hints.trust_anchors {
            let line = match anchor {
                TrustAnchor::Ds(ds) => format!(
                    "    {} static-ds {} {} {} \"{}\";\n",
                    hints.domain,
                    ds.key_tag,
                    ds.algorithm,
                    ds.digest_type,
                    super::hints::hex_encode(&ds.digest)
                ),
                TrustAnchor::Dnskey(key) => format!(
                    "    {} static-key {} {} {} \"{}\";\n",
                    hints.domain,
                    key.flags,
                    key.protocol,
                    key.algorithm,
                    super::hints::base64_encode(&key.public_key)
                ),
            };
            out.push_str(&line);
        }
    }
    out.push_str("};\n");
    for hints in all {
        let addresses: Vec<String> = hints
            .addresses()
            .iter()
            .map(|ip| format!("{ip}; "))
            .collect();
        out.push_str(&format!(
            "zone \"{}\" {{\n    type static-stub;\n    server-addresses {{ {}}};\n}};\n",
            hints.domain,
            addresses.concat()
        ));
    }
    out
}

fn knot_resolver(all: &[Hints]) -> String {
    let mut out = format!("-- {HEADER}\n");
    for hints in all {
        let targets: Vec<String> = hints
            .addresses()
            .iter()
            .map(|ip| format!("'{}'", lua_address(ip)))
            .collect();
        out.push_str(&format!(
            "policy.add(policy.suffix(policy.FORWARD({{{}}}), {{todname('{}')}}))\n",
            targets.join(", "),
            hints.domain
        ));
        for anchor in &hints.trust_anchors {
            out.push_str(&format!(
                "trust_anchors.add('{} {}')\n",
                hints.domain,
                anchor_record(anchor)
            ));
        }
    }
    out
}

fn lua_address(ip: &IpAddr) -> String {
    ip.to_string()
}

fn pdns_recursor(all: &[Hints], lua_path: &str) -> (String, String) {
    let mut main = format!("# {HEADER}\n");
    let zones: Vec<String> = all
        .iter()
        .map(|hints| {
            let addresses: Vec<String> = hints.addresses().iter().map(pdns_address).collect();
            format!(
                "{}={}",
                hints.domain.trim_end_matches('.'),
                addresses.join(";")
            )
        })
        .collect();
    main.push_str(&format!("forward-zones={}\n", zones.join(",")));
    main.push_str(&format!("lua-config-file={lua_path}\n"));
    let mut lua = format!("-- {HEADER}\n");
    for hints in all {
        for anchor in &hints.trust_anchors {
            let ds = anchor.as_ds(&hints.domain);
            lua.push_str(&format!("addTA('{}', '{ds}')\n", hints.domain));
        }
    }
    (main, lua)
}

/// IPv6 addresses in brackets, as PowerDNS writes them with ports.
fn pdns_address(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intree::hints::parse;

    fn example() -> Hints {
        parse(
            r#"domain = "example.test."
[[nameserver]]
name = "ns1.example.test."
addresses = ["127.0.0.2", "2001:db8::53"]
[[nameserver]]
name = "ns2.example.test."
addresses = ["127.0.0.2"]
[[trust-anchor]]
ds = "2371 13 2 C7A54B1F0D4AB5B4BBCEE24575EF63B1E01B1C8DE65D7B8CE1E5BB7B7C9C7E1E"
[[trust-anchor]]
dnskey = "257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="
"#,
            "h",
        )
        .unwrap()
    }

    #[test]
    fn unbound_stub_and_anchors() {
        let text = render(Resolver::Unbound, &[example()], "").main;
        assert!(text.contains("local-zone: \"test.\" nodefault\n"), "{text}");
        assert!(text.contains("do-not-query-localhost: no\n"), "{text}");
        assert!(
            text.contains("trust-anchor: \"example.test. DS 2371 13 2 C7A54B1F"),
            "{text}"
        );
        assert!(
            text.contains("trust-anchor: \"example.test. DNSKEY 257 3 13 mdsswUyr"),
            "{text}"
        );
        assert!(
            text.contains("stub-zone:\n    name: \"example.test.\"\n    stub-prime: yes\n    stub-addr: 127.0.0.2\n    stub-addr: 2001:db8::53\n"),
            "{text}"
        );
        assert_eq!(text.matches("stub-addr").count(), 2, "each address once");
    }

    #[test]
    fn bind_static_stub_and_trust_anchors() {
        let text = render(Resolver::Bind, &[example()], "").main;
        assert!(
            text.contains("example.test. static-ds 2371 13 2 \"C7A54B1F"),
            "{text}"
        );
        assert!(
            text.contains("example.test. static-key 257 3 13 \"mdsswUyr"),
            "{text}"
        );
        assert!(
            text.contains("zone \"example.test.\" {\n    type static-stub;\n    server-addresses { 127.0.0.2; 2001:db8::53; };\n};\n"),
            "{text}"
        );
    }

    #[test]
    fn knot_resolver_policy_and_anchors() {
        let text = render(Resolver::KnotResolver, &[example()], "").main;
        assert!(
            text.contains("policy.add(policy.suffix(policy.FORWARD({'127.0.0.2', '2001:db8::53'}), {todname('example.test.')}))\n"),
            "{text}"
        );
        assert!(
            text.contains("trust_anchors.add('example.test. DS 2371 13 2 C7A5"),
            "{text}"
        );
    }

    #[test]
    fn pdns_recursor_forward_zones_and_ds_anchors() {
        let rendered = render(
            Resolver::PdnsRecursor,
            &[example()],
            "/etc/powerdns/in-tree.lua",
        );
        assert!(
            rendered
                .main
                .contains("forward-zones=example.test=127.0.0.2;[2001:db8::53]\n"),
            "{}",
            rendered.main
        );
        assert!(
            rendered
                .main
                .contains("lua-config-file=/etc/powerdns/in-tree.lua\n")
        );
        let lua = rendered.lua.unwrap();
        assert!(
            lua.contains("addTA('example.test.', '2371 13 2 C7A5"),
            "{lua}"
        );
        // The DNSKEY anchor becomes its SHA-256 DS.
        assert_eq!(lua.matches("addTA(").count(), 2, "{lua}");
        assert!(lua.lines().nth(2).unwrap().contains(" 13 2 "), "{lua}");
    }

    #[test]
    fn resolver_names_parse() {
        for r in Resolver::ALL {
            assert_eq!(r.as_str().parse::<Resolver>().unwrap(), r);
        }
        assert!("named".parse::<Resolver>().is_err());
    }
}
