//! DNS Push Notifications (RFC 8765) over DSO (RFC 8490) on TLS: the `push` channel that
//! serves the signals zone, and the `subscribe` client.
//!
//! * [`zone`] — the signals zone of design.md §3 and how engine steps change it;
//! * [`server`] — the TLS listener, the per-session tasks and the fan-out [`server::Hub`];
//! * [`tls`] — certificates, client authentication, SIGHUP reload, the client's trust;
//! * [`client`] — `dns-oops subscribe`: discovery, a session, reconnection.
//!
//! The protocol itself (messages, session rules, timers) is the `dso` crate; this module
//! does the I/O around it.

pub mod client;
pub mod server;
pub mod tls;
pub mod zone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dso::ServerConfig;
use hickory_proto::rr::Name;

use crate::config::PushChannelConfig;
use crate::http::metrics::Metrics;
use crate::signal::CurrentCondition;
use server::{Hub, SessionSettings};
use tls::{ServerFiles, ServerTls, TlsError};
use zone::{SignalsZone, ZoneSettings};

/// Why a push channel could not start.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("`{name}` is not a usable DNS name: {message}")]
    Name { name: String, message: String },
}

/// A push channel that is listening.
pub struct PushChannel {
    pub hub: Arc<Hub>,
    pub addr: SocketAddr,
    pub apex: Name,
    serve: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl PushChannel {
    /// Loads the certificate, binds the listener and builds the zone from `current` (what
    /// is met now) with SOA serial `serial`.
    pub async fn start(
        config: &PushChannelConfig,
        node: &str,
        current: &[CurrentCondition],
        serial: u32,
        metrics: Arc<Metrics>,
    ) -> Result<PushChannel, PushError> {
        let tls = Arc::new(ServerTls::load(ServerFiles {
            cert: config.cert.clone(),
            key: config.key.clone(),
            client_ca: config.client_ca.clone(),
        })?);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| PushError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(config.listen);
        let name = |text: String| {
            Name::from_ascii(&text).map_err(|e| PushError::Name {
                name: text.clone(),
                message: e.to_string(),
            })
        };
        let apex = name(format!("{node}.{}", config.signals_zone))?;
        let host = match &config.host {
            Some(host) => name(host.clone())?,
            None => name(format!("push.{apex}"))?,
        };
        let addresses = if addr.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![addr.ip()]
        };
        let ttl = u32::try_from(config.ttl.as_secs()).unwrap_or(dso::PushChange::MAX_ADD_TTL);
        let zone = SignalsZone::new(
            ZoneSettings {
                apex: apex.clone(),
                host,
                port: addr.port(),
                addresses,
                ttl: ttl.min(dso::PushChange::MAX_ADD_TTL),
            },
            current,
            serial,
        );
        let hub = Hub::new(zone, config.queue);
        let settings = Arc::new(SessionSettings {
            channel: config.name.clone(),
            metrics,
            dso: ServerConfig {
                max_keepalive_interval_ms: duration_ms(config.keepalive),
                ..ServerConfig::default()
            },
            max_sessions: config.max_sessions,
            allow: config.allow.clone(),
        });
        let serve = Box::pin(server::serve(listener, hub.clone(), tls, settings));
        Ok(PushChannel {
            hub,
            addr,
            apex,
            serve,
        })
    }

    /// Serves sessions until the hub is shut down.
    pub async fn serve(self) {
        self.serve.await
    }
}

fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX - 1)
}
