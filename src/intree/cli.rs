//! `dns-oops in-tree check|render|init`.
//!
//! * `check HINTS…` — the hints against the live DNS, one line per domain, exit codes of a
//!   monitoring plugin (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; the worst of all files).
//! * `render --for RESOLVER HINTS…` — resolver configuration on stdout or `--output`.
//! * `init DOMAIN --server ADDR` — a hints file from what the domain's servers publish:
//!   the NS set, the addresses of the in-domain name servers, and a SHA-256 DS of each
//!   key-signing key.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use hickory_proto::rr::RecordType;

use super::check::{CheckSettings, check};
use super::dns;
use super::hints::{self, DnskeyData, Hints, NameServer, TrustAnchor};
use super::render::{Resolver, render};

/// Exit code for unreadable input.
const EXIT_UNKNOWN: u8 = 3;

#[derive(Debug, Args)]
pub struct InTreeArgs {
    #[command(subcommand)]
    command: InTreeCommand,
}

#[derive(Debug, Subcommand)]
enum InTreeCommand {
    /// Check hints files against the live DNS: the parent's delegation (NS, glue, DS), the
    /// domain's own NS set, addresses and DNSKEYs, and the `_in-tree` TXT commitment. Exits
    /// 0 (OK), 1 (WARNING: commitment expiring), 2 (CRITICAL: mismatch, or commitment
    /// missing or expired) or 3 (UNKNOWN).
    Check(CheckArgs),
    /// Write the resolver configuration that applies the hints.
    Render(RenderArgs),
    /// Build a hints file for DOMAIN from what its servers publish.
    Init(InitArgs),
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// The parent zone's servers (IP or IP:PORT, repeatable); default: found through the
    /// resolver.
    #[arg(long, value_parser = parse_server, value_delimiter = ',')]
    parent: Vec<SocketAddr>,
    /// A recursive resolver for finding the parent's servers; default: /etc/resolv.conf.
    #[arg(long, value_parser = parse_server)]
    resolver: Option<SocketAddr>,
    /// How long each query waits.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Hints files (TOML).
    #[arg(required = true)]
    hints: Vec<PathBuf>,
    #[command(flatten)]
    at: ServerArgs,
    /// Warn when the commitment expires within this period.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    period: Duration,
    /// Judge the commitment as if it were this time (RFC 3339), instead of now.
    #[arg(long, hide = true, value_parser = parse_now)]
    now: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
struct RenderArgs {
    /// The resolver: unbound, bind, knot-resolver or pdns-recursor.
    #[arg(long = "for", value_name = "RESOLVER")]
    resolver: Resolver,
    /// Hints files (TOML).
    #[arg(required = true)]
    hints: Vec<PathBuf>,
    /// Write here instead of stdout. For pdns-recursor, the Lua configuration goes next to
    /// it, with `.lua` appended.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// For pdns-recursor without --output: where the Lua configuration (trust anchors) will
    /// be; it is printed after the recursor.conf lines.
    #[arg(long, default_value = "/etc/powerdns/in-tree.lua")]
    lua_config: PathBuf,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The domain.
    domain: String,
    /// A server of the domain to ask (IP or IP:PORT).
    #[arg(long, value_parser = parse_server)]
    server: SocketAddr,
    /// How long each query waits.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Write here instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

fn parse_server(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("`{text}`: write IP or IP:PORT"))
}

fn parse_now(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string())
}

pub async fn run(args: InTreeArgs) -> ExitCode {
    match args.command {
        InTreeCommand::Check(args) => run_check(args).await,
        InTreeCommand::Render(args) => run_render(args),
        InTreeCommand::Init(args) => run_init(args).await,
    }
}

fn load_all(paths: &[PathBuf]) -> Result<Vec<Hints>, ExitCode> {
    let mut all = Vec::new();
    let mut failed = false;
    for path in paths {
        match hints::load(path) {
            Ok(h) => all.push(h),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(ExitCode::from(EXIT_UNKNOWN))
    } else {
        Ok(all)
    }
}

async fn run_check(args: CheckArgs) -> ExitCode {
    let all = match load_all(&args.hints) {
        Ok(all) => all,
        Err(code) => return code,
    };
    let settings = CheckSettings {
        parent: (!args.at.parent.is_empty()).then(|| args.at.parent.clone()),
        resolver: args.at.resolver,
        timeout: args.at.timeout,
        commitment_period: args.period,
    };
    let now = args.now.unwrap_or_else(Utc::now);
    let mut worst = 0u8;
    let mut text = String::new();
    for hints in &all {
        let report = check(hints, &settings, now).await;
        let code = report.exit_code();
        // CRITICAL outranks UNKNOWN; otherwise the higher number wins.
        worst = match (worst, code) {
            (2, _) | (_, 2) => 2,
            (a, b) => a.max(b),
        };
        text.push_str(&report.summary());
        text.push('\n');
    }
    crate::cli::emit(&text);
    ExitCode::from(worst)
}

fn run_render(args: RenderArgs) -> ExitCode {
    let all = match load_all(&args.hints) {
        Ok(all) => all,
        Err(code) => return code,
    };
    let lua_path = match &args.output {
        Some(out) => {
            let mut p = out.clone().into_os_string();
            p.push(".lua");
            PathBuf::from(p)
        }
        None => args.lua_config.clone(),
    };
    let rendered = render(args.resolver, &all, &lua_path.display().to_string());
    match &args.output {
        None => {
            let mut text = rendered.main;
            if let Some(lua) = rendered.lua {
                text.push_str(&format!("\n-- {}:\n{lua}", lua_path.display()));
            }
            crate::cli::emit(&text);
            ExitCode::SUCCESS
        }
        Some(out) => {
            let mut writes = vec![(out.clone(), rendered.main)];
            if let Some(lua) = rendered.lua {
                writes.push((lua_path, lua));
            }
            for (path, text) in writes {
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("dns-oops in-tree render: {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
    }
}

async fn run_init(args: InitArgs) -> ExitCode {
    match init(&args.domain, args.server, args.timeout).await {
        Ok(hints) => {
            let text = hints.to_toml();
            // What init writes must read back: the same rules as any hints file.
            if let Err(e) = hints::parse(&text, &args.domain) {
                eprintln!("dns-oops in-tree init: {e}");
                return ExitCode::from(2);
            }
            match &args.output {
                None => crate::cli::emit(&text),
                Some(path) => {
                    if let Err(e) = std::fs::write(path, text) {
                        eprintln!("dns-oops in-tree init: {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dns-oops in-tree init: {e}");
            ExitCode::from(2)
        }
    }
}

/// Hints for `domain` from what `server` publishes.
pub async fn init(domain: &str, server: SocketAddr, timeout: Duration) -> Result<Hints, String> {
    let domain = hints::normalize_name(domain).map_err(|e| format!("`{domain}`: {e}"))?;
    let m = dns::query(server, &domain, RecordType::NS, false, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if !m.metadata.authoritative {
        return Err(format!("{server} is not authoritative for {domain}"));
    }
    let names = dns::ns_names(m.answers.iter(), &domain);
    if names.is_empty() {
        return Err(format!("{server} has no NS set for {domain}"));
    }
    if !names.iter().any(|n| hints::is_at_or_below(n, &domain)) {
        return Err(format!(
            "{domain} has no in-domain name server ({}): {}",
            names.join(" "),
            hints::NO_IN_DOMAIN_REASON
        ));
    }
    let mut nameservers = Vec::new();
    for name in names {
        let mut addresses = Vec::new();
        if hints::is_at_or_below(&name, &domain) {
            for rtype in [RecordType::A, RecordType::AAAA] {
                let m = dns::query(server, &name, rtype, false, timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                addresses.extend(dns::addresses(m.answers.iter(), &name));
                addresses.extend(dns::addresses(m.additionals.iter(), &name));
            }
            addresses.sort();
            addresses.dedup();
        }
        nameservers.push(NameServer { name, addresses });
    }
    let m = dns::query(server, &domain, RecordType::DNSKEY, false, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let keys: Vec<DnskeyData> = dns::rdatas(m.answers.iter(), &domain, RecordType::DNSKEY)
        .iter()
        .filter_map(|r| DnskeyData::from_rdata(r))
        .collect();
    // Key-signing keys (SEP set, not revoked); a zone with one combined key has it as SEP too.
    let trust_anchors: Vec<TrustAnchor> = keys
        .iter()
        .filter(|k| k.flags & 0x0001 != 0 && k.flags & 0x0080 == 0)
        .filter_map(|k| k.ds(&domain, 2))
        .map(TrustAnchor::Ds)
        .collect();
    if trust_anchors.is_empty() {
        return Err(format!(
            "{domain} publishes no key-signing DNSKEY: in-tree hints MUST only be used with a trust anchor"
        ));
    }
    Ok(Hints {
        domain,
        nameservers,
        trust_anchors,
    })
}
