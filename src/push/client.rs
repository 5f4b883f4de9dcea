//! `dns-oops subscribe NAME [TYPE]`: a DNS Push client for any RFC 8765 server.
//!
//! 1. Where to connect: `--server HOST:PORT`, or discovery (RFC 8765 §6.1): an SOA query
//!    for the name finds its zone (walking up while the name has at least two labels),
//!    then the `_dns-push-tls._tcp.<zone>` SRV records give the servers, tried in
//!    priority order and by weight.
//! 2. TLS, verified against `--ca FILE` or the system's roots (`--insecure` only when
//!    asked), optionally with a client certificate.
//! 3. A DSO session that opens with the SUBSCRIBE; keepalives as the server dictates.
//! 4. Every change is printed as it arrives, readably or as JSON lines (`--json`).
//! 5. When the connection ends, it reconnects with backoff (1 s doubling to 60 s, or the
//!    server's Retry Delay) and subscribes again, saying so on stderr; the records that
//!    follow a resubscription are the complete current set.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use dso::{Action, ClientConfig, ClientSession, Event, PushChange, Rcode};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;

use super::tls::{ClientTlsOptions, client_config};
use super::zone::PUSH_SERVICE;

/// `dns-oops subscribe` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SubscribeArgs {
    /// The name to subscribe to, e.g. zone-ready.knot.ams1.oops.internal.
    pub name: String,
    /// The record type, e.g. TXT, SRV, A; ANY for every type.
    #[arg(default_value = "ANY")]
    pub rtype: String,
    /// Connect to this server (HOST:PORT) instead of discovering it through the DNS.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// Trust only this CA (PEM) for the server's certificate; default: the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Accept any server certificate. The session is encrypted but not authenticated.
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
    /// Client certificate (PEM), for servers that require one.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// The name to verify the server certificate against; default: the host connected to.
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
    /// The DNS resolver used for discovery; default: the first nameserver of /etc/resolv.conf.
    #[arg(long, value_name = "IP[:PORT]")]
    pub resolver: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit after this many changes (for scripts).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// Where a session goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub addr: SocketAddr,
}

/// Why one connection ended.
enum Ended {
    /// Reconnect after at least this long.
    Retry {
        delay: Option<Duration>,
        why: String,
    },
    /// Stop with this exit code.
    Exit(ExitCode),
}

/// Runs `dns-oops subscribe`.
pub async fn run(args: &SubscribeArgs) -> ExitCode {
    let rtype = match RecordType::from_str(&args.rtype.to_ascii_uppercase()) {
        Ok(t) => t,
        Err(_) => return usage(&format!("unknown record type `{}`", args.rtype)),
    };
    let name = match Name::from_str(&args.name) {
        Ok(mut n) => {
            n.set_fqdn(true);
            n
        }
        Err(e) => return usage(&format!("`{}` is not a domain name: {e}", args.name)),
    };
    let tls = match client_config(&ClientTlsOptions {
        ca: args.ca.clone(),
        insecure: args.insecure,
        identity: args.cert.clone().zip(args.key.clone()),
    }) {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string()),
    };
    let mut printer = Printer {
        name: name.clone(),
        rtype,
        json: args.json,
        remaining: args.count,
        subscribed_before: false,
    };
    let connection = Connection {
        tls,
        tls_name: args.tls_name.clone(),
    };
    let wanted = [(name.clone(), rtype)];
    follow(|| targets(args, &name), &wanted, &connection, &mut printer).await
}

/// How to reach servers: the TLS client configuration and the name to check.
pub struct Connection {
    pub tls: Arc<rustls::ClientConfig>,
    /// Checked against the certificate instead of the host connected to.
    pub tls_name: Option<String>,
}

/// What a session reports to.
pub trait Sink {
    /// Every subscription of the session was accepted.
    fn subscribed(&mut self, target_host: &str, target: SocketAddr);
    /// Whether a subscription succeeded on an earlier connection.
    fn subscribed_before(&self) -> bool;
    /// The changes of one PUSH message; false to stop.
    fn changes(&mut self, changes: &[PushChange]) -> bool;
}

/// Keeps subscriptions to `wanted` alive: connects to the first target that works,
/// reconnects with backoff (or after the server's Retry Delay) when a session ends, and
/// says so on stderr. Returns only to exit.
pub async fn follow<F, Fut>(
    mut targets: F,
    wanted: &[(Name, RecordType)],
    connection: &Connection,
    sink: &mut dyn Sink,
) -> ExitCode
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<Target>, String>>,
{
    let mut backoff = Duration::from_secs(1);
    let mut first = true;
    loop {
        let targets = match targets().await {
            Ok(t) => t,
            Err(e) if first => {
                eprintln!("dns-oops: {e}");
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("dns-oops: {e}; trying again in {}s", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        let mut last_why = String::new();
        let mut delay = None;
        for target in &targets {
            let started = Instant::now();
            match session(target, wanted, connection, sink).await {
                Ended::Exit(code) => return code,
                Ended::Retry { delay: d, why } => {
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff = Duration::from_secs(1);
                    }
                    last_why = format!("{} ({}): {why}", target.host, target.addr);
                    delay = d;
                    if d.is_some() {
                        break;
                    }
                }
            }
        }
        first = false;
        let wait = delay.unwrap_or(backoff).max(Duration::from_millis(100));
        eprintln!(
            "dns-oops: {last_why}; reconnecting in {}",
            humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
        );
        tokio::time::sleep(wait).await;
        if delay.is_none() {
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("dns-oops subscribe: {message}");
    ExitCode::from(2)
}

/// One connection: connect, subscribe, print, until it ends.
async fn session(
    target: &Target,
    wanted: &[(Name, RecordType)],
    connection: &Connection,
    sink: &mut dyn Sink,
) -> Ended {
    let retry = |why: String| Ended::Retry { delay: None, why };
    let tcp = match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(target.addr))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return retry(format!("cannot connect: {e}")),
        Err(_) => return retry("connection timed out".into()),
    };
    let _ = tcp.set_nodelay(true);
    let tls_name = connection
        .tls_name
        .clone()
        .unwrap_or_else(|| target.host.clone());
    let server_name = match ServerName::try_from(tls_name.trim_end_matches('.').to_string()) {
        Ok(n) => n,
        Err(e) => {
            return Ended::Exit(usage(&format!(
                "`{tls_name}` cannot be checked against a certificate: {e}"
            )));
        }
    };
    let connector = TlsConnector::from(connection.tls.clone());
    let mut stream =
        match tokio::time::timeout(Duration::from_secs(10), connector.connect(server_name, tcp))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return retry(format!("TLS: {e}")),
            Err(_) => return retry("TLS handshake timed out".into()),
        };
    let now = Instant::now();
    let mut dso = ClientSession::new(ClientConfig::default(), now);
    let mut ids = Vec::new();
    let mut actions = Vec::new();
    for (name, rtype) in wanted {
        match dso.subscribe(name.clone(), *rtype, DNSClass::IN, now) {
            Ok((id, sent)) => {
                ids.push(id);
                actions.extend(sent);
            }
            Err(e) => return Ended::Exit(usage(&e.to_string())),
        }
    }
    let mut pending = ids.clone();
    let mut out = Vec::new();
    let mut ending = carry_out(actions, &mut out, sink, &mut pending, target);
    let mut input = BytesMut::with_capacity(4096);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        if !out.is_empty() {
            if let Err(e) = write(&mut stream, &out).await {
                return retry(format!("write: {e}"));
            }
            out.clear();
        }
        if let Some(ended) = ending.take() {
            if matches!(ended, Ended::Exit(_)) {
                let _ = stream.shutdown().await;
            }
            return ended;
        }
        let deadline = dso.next_deadline();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let actions = tokio::select! {
            _ = &mut interrupted => {
                let actions = dso.close();
                let mut sink = Vec::new();
                for action in actions {
                    if let Action::Send(bytes) = action {
                        frame(&mut sink, &bytes);
                    }
                }
                let _ = write(&mut stream, &sink).await;
                let _ = stream.shutdown().await;
                return Ended::Exit(ExitCode::SUCCESS);
            }
            read = stream.read_buf(&mut input) => match read {
                Ok(0) => return retry("the server closed the connection".into()),
                Err(e) => return retry(format!("read: {e}")),
                Ok(_) => {
                    let mut actions = Vec::new();
                    while input.len() >= 2 {
                        let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
                        if input.len() < 2 + len {
                            break;
                        }
                        input.advance(2);
                        let message = input.split_to(len);
                        actions.extend(dso.receive(&message, Instant::now()));
                    }
                    actions
                }
            },
            () = timer => dso.poll(Instant::now()),
        };
        ending = carry_out(actions, &mut out, sink, &mut pending, target);
    }
}

/// Carries out the session machine's actions; `pending` holds the MESSAGE IDs of the
/// subscriptions not yet accepted.
fn carry_out(
    actions: Vec<Action>,
    out: &mut Vec<u8>,
    sink: &mut dyn Sink,
    pending: &mut Vec<u16>,
    target: &Target,
) -> Option<Ended> {
    let resubscribing = sink.subscribed_before();
    let mut ending = None;
    for action in actions {
        match action {
            Action::Send(bytes) => frame(out, &bytes),
            Action::Close => {
                ending.get_or_insert(Ended::Retry {
                    delay: None,
                    why: "the session was closed".into(),
                });
            }
            Action::Abort(reason) => {
                return Some(Ended::Retry {
                    delay: None,
                    why: format!("session aborted: {reason}"),
                });
            }
            Action::Deliver(event) => match event {
                Event::Subscribed { id } => {
                    pending.retain(|&p| p != id);
                    if pending.is_empty() {
                        sink.subscribed(&target.host, target.addr);
                    }
                }
                Event::SubscribeFailed {
                    rcode, retry_delay, ..
                } => {
                    let why = format!("SUBSCRIBE refused: {}", rcode_name(rcode));
                    if matches!(rcode, Rcode::NOTAUTH | Rcode::REFUSED | Rcode::FORMERR)
                        && !resubscribing
                    {
                        eprintln!(
                            "dns-oops subscribe: {} ({}): {why}",
                            target.host, target.addr
                        );
                        return Some(Ended::Exit(ExitCode::from(1)));
                    }
                    ending = Some(Ended::Retry {
                        delay: retry_delay,
                        why,
                    });
                }
                Event::SubscriptionCancelled {
                    rcode, retry_delay, ..
                } => {
                    ending = Some(Ended::Retry {
                        delay: retry_delay,
                        why: format!(
                            "the server cancelled the subscription: {}",
                            rcode_name(rcode)
                        ),
                    });
                }
                Event::RetryDelay { rcode, delay } => {
                    ending = Some(Ended::Retry {
                        delay: Some(delay),
                        why: format!("the server sent Retry Delay ({})", rcode_name(rcode)),
                    });
                }
                Event::DsoNotSupported { rcode } => {
                    eprintln!(
                        "dns-oops subscribe: {} ({}) does not support DNS Push: {}",
                        target.host,
                        target.addr,
                        rcode_name(rcode)
                    );
                    return Some(Ended::Exit(ExitCode::from(1)));
                }
                Event::Push(changes) if !sink.changes(&changes) => {
                    return Some(Ended::Exit(ExitCode::SUCCESS));
                }
                _ => {}
            },
        }
    }
    ending
}

fn frame(out: &mut Vec<u8>, message: &[u8]) {
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&message[..usize::from(len)]);
}

async fn write<S: AsyncWriteExt + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

fn rcode_name(rcode: Rcode) -> String {
    let name = match rcode {
        Rcode::NOERROR => "NOERROR",
        Rcode::FORMERR => "FORMERR",
        Rcode::SERVFAIL => "SERVFAIL",
        Rcode::NXDOMAIN => "NXDOMAIN",
        Rcode::NOTIMP => "NOTIMP",
        Rcode::REFUSED => "REFUSED",
        Rcode::NOTAUTH => "NOTAUTH",
        Rcode::DSOTYPENI => "DSOTYPENI",
        other => return format!("RCODE {}", other.value()),
    };
    name.to_string()
}

/// Prints changes and status lines.
struct Printer {
    name: Name,
    rtype: RecordType,
    json: bool,
    remaining: Option<u64>,
    /// A subscription succeeded on an earlier connection.
    subscribed_before: bool,
}

impl Sink for Printer {
    fn subscribed(&mut self, host: &str, addr: SocketAddr) {
        let verb = if self.subscribed_before {
            "resubscribed"
        } else {
            "subscribed"
        };
        self.status(verb, host, addr);
        self.subscribed_before = true;
    }

    fn subscribed_before(&self) -> bool {
        self.subscribed_before
    }

    fn changes(&mut self, changes: &[PushChange]) -> bool {
        changes.iter().all(|change| self.print_change(change))
    }
}

impl Printer {
    fn status(&self, verb: &str, host: &str, addr: SocketAddr) {
        let (name, rtype) = (&self.name, self.rtype);
        if self.json {
            let line = json!({
                "op": verb,
                "name": name.to_ascii(),
                "type": rtype.to_string(),
                "server": addr.to_string(),
            });
            crate::cli::emit(&format!("{line}\n"));
        } else {
            eprintln!(
                "{verb} to {} {rtype} at {host} ({addr}){}",
                name.to_ascii(),
                if verb == "resubscribed" {
                    "; what follows is the complete current set"
                } else {
                    ""
                }
            );
        }
    }

    /// Prints one change; false once `--count` changes have been printed.
    fn print_change(&mut self, change: &PushChange) -> bool {
        let time = crate::signal::format_time(&chrono::Utc::now());
        let line = if self.json {
            format!("{}\n", change_json(change, &time))
        } else {
            format!("{}\n", change_text(change))
        };
        crate::cli::emit(&line);
        match self.remaining.as_mut() {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n > 0
            }
            None => true,
        }
    }
}

/// RDATA in presentation format; TXT strings quoted, one per string.
fn presentation(rdata: &RData) -> String {
    match rdata {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| {
                let mut quoted = String::from("\"");
                for &b in s.iter() {
                    match b {
                        b'"' | b'\\' => {
                            quoted.push('\\');
                            quoted.push(char::from(b));
                        }
                        0x20..=0x7e => quoted.push(char::from(b)),
                        _ => quoted.push_str(&format!("\\{b:03}")),
                    }
                }
                quoted.push('"');
                quoted
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn change_text(change: &PushChange) -> String {
    match change {
        PushChange::Add {
            name,
            class,
            ttl,
            rdata,
        } => {
            let (rtype, rdata) = (rdata.record_type(), presentation(rdata));
            format!("+ {name} {ttl} {class} {rtype} {rdata}")
        }
        PushChange::Remove { name, class, rdata } => {
            let (rtype, rdata) = (rdata.record_type(), presentation(rdata));
            format!("- {name} {class} {rtype} {rdata}")
        }
        PushChange::RemoveRrset { name, rtype, class } => format!("- {name} {class} {rtype} (all)"),
        PushChange::RemoveAllTypes { name, class } => format!("- {name} {class} (all types)"),
        PushChange::RemoveName { name } => format!("- {name} (everything)"),
        PushChange::Ignored {
            name, rtype, ttl, ..
        } => {
            format!("? {name} {rtype} with TTL {ttl:#x}, ignored")
        }
    }
}

fn change_json(change: &PushChange, time: &str) -> serde_json::Value {
    let txt = |rdata: &RData| match rdata {
        RData::TXT(txt) => Some(
            txt.txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    match change {
        PushChange::Add {
            name,
            class,
            ttl,
            rdata,
        } => json!({
            "time": time, "op": "add", "name": name.to_ascii(), "class": class.to_string(),
            "type": rdata.record_type().to_string(), "ttl": ttl, "rdata": presentation(rdata),
            "txt": txt(rdata),
        }),
        PushChange::Remove { name, class, rdata } => json!({
            "time": time, "op": "remove", "name": name.to_ascii(), "class": class.to_string(),
            "type": rdata.record_type().to_string(), "rdata": presentation(rdata),
            "txt": txt(rdata),
        }),
        PushChange::RemoveRrset { name, rtype, class } => json!({
            "time": time, "op": "remove-rrset", "name": name.to_ascii(),
            "class": class.to_string(), "type": rtype.to_string(),
        }),
        PushChange::RemoveAllTypes { name, class } => json!({
            "time": time, "op": "remove-all-types", "name": name.to_ascii(), "class": class.to_string(),
        }),
        PushChange::RemoveName { name } => json!({
            "time": time, "op": "remove-name", "name": name.to_ascii(),
        }),
        PushChange::Ignored {
            name, rtype, ttl, ..
        } => json!({
            "time": time, "op": "ignored", "name": name.to_ascii(), "type": rtype.to_string(), "ttl": ttl,
        }),
    }
}

/// `dns-oops watch --push HOST:PORT`: follows every condition of the named DNS servers
/// in a node's signals zone over DNS Push and prints them as signal-like JSON lines
/// (`time`, `node`, `server`, `condition`, `subject`, `state`, `since`, `args`).
pub async fn watch(push: &str, zone: &str, servers: &[String], connection: Connection) -> ExitCode {
    let apex = match Name::from_str(zone) {
        Ok(mut n) => {
            n.set_fqdn(true);
            n.to_lowercase()
        }
        Err(e) => return usage(&format!("--zone `{zone}` is not a domain name: {e}")),
    };
    if servers.is_empty() {
        return usage("name the DNS servers to watch with --servers knot[,nsd…]");
    }
    let mut wanted = Vec::new();
    for server in servers {
        for condition in crate::condition::ConditionId::ALL {
            let name = Name::from_ascii(format!("{}.{server}", condition.as_str()))
                .and_then(|n| n.append_domain(&apex));
            match name {
                Ok(name) => wanted.push((name, RecordType::TXT)),
                Err(e) => return usage(&format!("server `{server}`: {e}")),
            }
        }
    }
    let node = apex
        .iter()
        .next()
        .map(|label| String::from_utf8_lossy(label).into_owned())
        .unwrap_or_default();
    let mut sink = SignalPrinter {
        apex,
        node,
        subscribed_before: false,
    };
    follow(|| server_target_list(push), &wanted, &connection, &mut sink).await
}

async fn server_target_list(push: &str) -> Result<Vec<Target>, String> {
    server_target(push).await.map(|t| vec![t])
}

/// Turns PUSH changes of a signals zone back into signal-like lines.
struct SignalPrinter {
    apex: Name,
    node: String,
    subscribed_before: bool,
}

impl Sink for SignalPrinter {
    fn subscribed(&mut self, host: &str, addr: SocketAddr) {
        let verb = if self.subscribed_before {
            "resubscribed; conditions met now follow"
        } else {
            "subscribed"
        };
        eprintln!(
            "{verb} to the signals zone {} at {host} ({addr})",
            self.apex
        );
        self.subscribed_before = true;
    }

    fn subscribed_before(&self) -> bool {
        self.subscribed_before
    }

    fn changes(&mut self, changes: &[PushChange]) -> bool {
        let lines: Vec<serde_json::Value> = changes
            .iter()
            .filter_map(|change| signal_line(&self.apex, &self.node, change))
            .collect();
        // A record replaced in one message (new arguments) is not a clear and a met.
        let key = |l: &serde_json::Value| {
            (
                l["condition"].clone(),
                l["server"].clone(),
                l["subject"].clone(),
            )
        };
        for line in &lines {
            let replaced = line["state"] == "cleared"
                && lines
                    .iter()
                    .any(|other| other["state"] == "met" && key(other) == key(line));
            if !replaced {
                crate::cli::emit(&format!("{line}\n"));
            }
        }
        true
    }
}

/// The signal a change of the signals zone stands for, if it stands for one.
fn signal_line(apex: &Name, node: &str, change: &PushChange) -> Option<serde_json::Value> {
    let (name, rdata, added) = match change {
        PushChange::Add { name, rdata, .. } => (name, rdata, true),
        PushChange::Remove { name, rdata, .. } => (name, rdata, false),
        _ => return None,
    };
    let RData::TXT(txt) = rdata else { return None };
    let name = name.to_lowercase();
    if !apex.zone_of(&name) || name.num_labels() != apex.num_labels() + 2 {
        return None;
    }
    let mut labels = name.iter().map(|l| String::from_utf8_lossy(l).into_owned());
    let condition: crate::condition::ConditionId = labels.next()?.parse().ok()?;
    let server = labels.next()?;
    let state = match (added, condition.is_level()) {
        (true, true) => "met",
        (false, true) => "cleared",
        (true, false) => "event",
        // An event's record is replaced by the next one: nothing happened.
        (false, false) => return None,
    };
    let mut subject = None;
    let mut since = None;
    let mut args = serde_json::Map::new();
    for string in &txt.txt_data {
        let text = String::from_utf8_lossy(string);
        let Some((key, value)) = text.split_once('=') else {
            continue;
        };
        match key {
            "subject" if value != "-" => subject = Some(value.to_string()),
            "subject" => {}
            "since" => since = Some(value.to_string()),
            _ => {
                let value = value
                    .parse::<i64>()
                    .map(serde_json::Value::from)
                    .unwrap_or_else(|_| serde_json::Value::from(value));
                args.insert(key.to_string(), value);
            }
        }
    }
    let mut line = json!({
        "time": crate::signal::format_time(&chrono::Utc::now()),
        "node": node,
        "server": server,
        "condition": condition.as_str(),
        "state": state,
        "since": since,
        "args": args,
        "source": "push",
    });
    if let Some(subject) = subject {
        line["subject"] = json!(subject);
    }
    Some(line)
}

/// The servers to try, in order.
async fn targets(args: &SubscribeArgs, name: &Name) -> Result<Vec<Target>, String> {
    if let Some(server) = &args.server {
        return server_target(server).await.map(|t| vec![t]);
    }
    let resolver = resolver(args.resolver.as_deref())?;
    let zone = find_zone(resolver, name).await?;
    let service = Name::from_ascii(PUSH_SERVICE)
        .and_then(|s| s.append_domain(&zone))
        .map_err(|e| e.to_string())?;
    let answer = query(resolver, &service, RecordType::SRV).await?;
    let mut srvs: Vec<(u16, u16, u16, Name)> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some((srv.priority, srv.weight, srv.port, srv.target.clone())),
            _ => None,
        })
        .collect();
    if srvs.is_empty() {
        return Err(format!(
            "zone {zone} advertises no DNS Push server: no SRV records at {service} (use --server HOST:PORT)"
        ));
    }
    order_srv(&mut srvs);
    let mut targets = Vec::new();
    for (_, _, port, host) in srvs {
        for rtype in [RecordType::AAAA, RecordType::A] {
            if let Ok(answer) = query(resolver, &host, rtype).await {
                for record in &answer.answers {
                    let ip: Option<IpAddr> = match &record.data {
                        RData::A(a) => Some(a.0.into()),
                        RData::AAAA(aaaa) => Some(aaaa.0.into()),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        targets.push(Target {
                            host: host.to_ascii(),
                            addr: SocketAddr::new(ip, port),
                        });
                    }
                }
            }
        }
    }
    if targets.is_empty() {
        return Err(format!("no address for the DNS Push servers of {zone}"));
    }
    Ok(targets)
}

/// RFC 2782 order: by priority; within one priority, a weighted random order.
fn order_srv(srvs: &mut [(u16, u16, u16, Name)]) {
    srvs.sort_by_key(|s| s.0);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(7)
        | 1;
    let mut start = 0;
    while start < srvs.len() {
        let priority = srvs[start].0;
        let end = start + srvs[start..].iter().take_while(|s| s.0 == priority).count();
        for i in start..end {
            let total: u64 = srvs[i..end].iter().map(|s| u64::from(s.1) + 1).sum();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut pick = seed % total;
            let mut chosen = i;
            for (j, s) in srvs[i..end].iter().enumerate() {
                let w = u64::from(s.1) + 1;
                if pick < w {
                    chosen = i + j;
                    break;
                }
                pick -= w;
            }
            srvs.swap(i, chosen);
        }
        start = end;
    }
}

pub async fn server_target(server: &str) -> Result<Target, String> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok(Target {
            host: addr.ip().to_string(),
            addr,
        });
    }
    let (host, port) = server.rsplit_once(':').ok_or_else(|| {
        format!("--server `{server}`: write HOST:PORT, e.g. push.example.net:853")
    })?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("--server `{server}`: `{port}` is not a port"))?;
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("--server `{server}`: {e}"))?
        .next()
        .ok_or_else(|| format!("--server `{server}`: no address for {host}"))?;
    Ok(Target {
        host: host.to_string(),
        addr,
    })
}

fn resolver(written: Option<&str>) -> Result<SocketAddr, String> {
    let parse = |text: &str| -> Option<SocketAddr> {
        text.parse::<SocketAddr>().ok().or_else(|| {
            text.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
    };
    if let Some(text) = written {
        return parse(text).ok_or_else(|| format!("--resolver `{text}`: write IP or IP:PORT"));
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| format!("cannot read /etc/resolv.conf ({e}); use --resolver or --server"))?;
    conf.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .find_map(|rest| parse(rest.trim()))
        .ok_or_else(|| "no nameserver in /etc/resolv.conf; use --resolver or --server".into())
}

/// The zone `name` is in, by the SOA walk of RFC 8765 §6.1.
async fn find_zone(resolver: SocketAddr, name: &Name) -> Result<Name, String> {
    let mut current = name.clone();
    loop {
        let answer = query(resolver, &current, RecordType::SOA).await?;
        let soa_owner = answer
            .answers
            .iter()
            .chain(answer.authorities.iter())
            .find(|r| r.record_type() == RecordType::SOA)
            .map(|r| r.name.clone());
        if let Some(zone) = soa_owner {
            return Ok(zone);
        }
        if current.num_labels() < 2 {
            return Err(format!("no SOA found for {name} or its parents"));
        }
        current = current.base_name();
    }
}

/// One query to the resolver over UDP, again over TCP when truncated.
async fn query(resolver: SocketAddr, name: &Name, rtype: RecordType) -> Result<Message, String> {
    let id = (Instant::now().elapsed().subsec_nanos() & 0xffff) as u16 ^ 0x5a5a;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), rtype));
    let bytes = message.to_vec().map_err(|e| e.to_string())?;
    let fail = |e: &dyn std::fmt::Display| format!("{rtype} query for {name} to {resolver}: {e}");
    let bind: SocketAddr = if resolver.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(bind).await.map_err(|e| fail(&e))?;
    socket.connect(resolver).await.map_err(|e| fail(&e))?;
    let mut buf = vec![0u8; 4096];
    let mut answer = None;
    for _ in 0..3 {
        socket.send(&bytes).await.map_err(|e| fail(&e))?;
        match tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await {
            Ok(Ok(n)) => match Message::from_vec(&buf[..n]) {
                Ok(m) if m.metadata.id == id => {
                    answer = Some(m);
                    break;
                }
                _ => continue,
            },
            Ok(Err(e)) => return Err(fail(&e)),
            Err(_) => continue,
        }
    }
    let mut answer = answer.ok_or_else(|| fail(&"no answer"))?;
    if answer.metadata.truncation {
        let mut tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(resolver))
            .await
            .map_err(|_| fail(&"TCP connect timed out"))?
            .map_err(|e| fail(&e))?;
        let mut framed = Vec::new();
        frame(&mut framed, &bytes);
        tcp.write_all(&framed).await.map_err(|e| fail(&e))?;
        let len = tcp.read_u16().await.map_err(|e| fail(&e))?;
        let mut body = vec![0u8; usize::from(len)];
        tcp.read_exact(&mut body).await.map_err(|e| fail(&e))?;
        answer = Message::from_vec(&body).map_err(|e| fail(&e))?;
    }
    match answer.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer),
        other => Err(fail(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_order_respects_priority() {
        let n = |s: &str| Name::from_ascii(s).unwrap();
        let mut srvs = vec![
            (20, 0, 1, n("c.")),
            (10, 5, 2, n("a.")),
            (10, 0, 3, n("b.")),
            (30, 1, 4, n("d.")),
        ];
        order_srv(&mut srvs);
        let priorities: Vec<u16> = srvs.iter().map(|s| s.0).collect();
        assert_eq!(priorities, vec![10, 10, 20, 30]);
    }

    #[test]
    fn signals_zone_changes_read_back_as_signals() {
        let apex = Name::from_ascii("demo.oops.internal.").unwrap();
        let txt = |strings: &[&str]| {
            RData::TXT(hickory_proto::rr::rdata::TXT::new(
                strings.iter().map(|s| s.to_string()).collect(),
            ))
        };
        let name = Name::from_ascii("zone-ready.lab.demo.oops.internal.").unwrap();
        let rdata = txt(&[
            "subject=example.com.",
            "since=2026-11-22T08:00:00Z",
            "serial=7",
        ]);
        let add = PushChange::Add {
            name: name.clone(),
            class: DNSClass::IN,
            ttl: 60,
            rdata: rdata.clone(),
        };
        let line = signal_line(&apex, "demo", &add).unwrap();
        assert_eq!(line["condition"], "zone-ready");
        assert_eq!(line["server"], "lab");
        assert_eq!(line["subject"], "example.com.");
        assert_eq!(line["state"], "met");
        assert_eq!(line["args"]["serial"], 7);
        let remove = PushChange::Remove {
            name,
            class: DNSClass::IN,
            rdata,
        };
        assert_eq!(
            signal_line(&apex, "demo", &remove).unwrap()["state"],
            "cleared"
        );
        // An event's record being replaced is not a signal.
        let event = Name::from_ascii("zone-updated.lab.demo.oops.internal.").unwrap();
        let replaced = PushChange::Remove {
            name: event,
            class: DNSClass::IN,
            rdata: txt(&["subject=-"]),
        };
        assert!(signal_line(&apex, "demo", &replaced).is_none());
    }

    #[test]
    fn changes_print_readably() {
        let name = Name::from_ascii("zone-ready.lab.demo.oops.internal.").unwrap();
        let rdata = RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![
            "subject=example.com.".into(),
        ]));
        let add = PushChange::Add {
            name: name.clone(),
            class: DNSClass::IN,
            ttl: 60,
            rdata: rdata.clone(),
        };
        assert_eq!(
            change_text(&add),
            "+ zone-ready.lab.demo.oops.internal. 60 IN TXT \"subject=example.com.\""
        );
        let json = change_json(
            &PushChange::Remove {
                name,
                class: DNSClass::IN,
                rdata,
            },
            "t",
        );
        assert_eq!(json["op"], "remove");
        assert_eq!(json["txt"][0], "subject=example.com.");
    }
}
