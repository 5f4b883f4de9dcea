//! The HTTP side of dns-oops: the daemon's API and the clients behind `status` and `watch`.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the [`dashboard`]: current conditions and live signals, one self-contained page |
//! | `GET /metrics` | Prometheus [`metrics`] as OpenMetrics text |
//! | `GET /api/v1/conditions` | the met level conditions, see [`api::StatusReport`] |
//! | `GET /api/v1/signals?after=SEQ&limit=N` | a page of signals from the journal, see [`api`] |
//! | `GET /api/v1/signals/stream?after=SEQ` | signals as server-sent events, see [`sse`] |
//! | `POST /api/v1/drain`, `POST /api/v1/undrain` | take a server out of anycast service and back, see [`crate::drain`] |
//! | `POST /api/v1/verified` | a zone verifier's verdict on a new zone version, see [`crate::nsd_verify`] |
//!
//! The API has no authentication: the daemon binds it to loopback unless `[http] listen`
//! says otherwise. Requests whose `Host` is a name other than `localhost` are refused (421),
//! so a web page that rebinds its own name to 127.0.0.1 cannot read the API from a browser. Everything is read from the journal, so what the API shows is what the
//! channels deliver. Errors are JSON objects `{"error": "…"}` with a 4xx or 5xx status.

pub mod api;
pub mod client;
mod control;
pub mod dashboard;
pub mod metrics;
pub mod sse;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::journal::Journal;
use metrics::Metrics;

/// What the HTTP server reads from.
#[derive(Clone)]
pub struct HttpState {
    pub journal: Arc<Journal>,
    /// The `seq` of the newest signal in the journal; changes after each write. When its
    /// sender is dropped, event streams send what is left and end.
    pub latest_seq: watch::Receiver<u64>,
    pub metrics: Arc<Metrics>,
    /// Every source's and channel's health.
    pub health: Arc<crate::health::Board>,
    /// The node name, as in signals.
    pub node: String,
    /// Where `drain`/`undrain` requests go: the task that owns the engine. `None`: the API
    /// answers them with 503.
    pub control: Option<tokio::sync::mpsc::Sender<crate::drain::Control>>,
}

/// The state every handler gets: the caller's [`HttpState`] and whether the server is
/// shutting down (event streams end then, so that the graceful shutdown can finish).
#[derive(Clone)]
pub(crate) struct AppState {
    http: HttpState,
    stopping: watch::Receiver<bool>,
}

/// Serves the API on `listener` until `shutdown` resolves, then ends open event streams
/// and waits for the responses in flight.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping_tx, stopping) = watch::channel(false);
    let app = router(AppState {
        http: state,
        stopping,
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping_tx.send_replace(true);
        })
        .await
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/metrics", get(serve_metrics))
        .route("/api/v1/conditions", get(api::conditions))
        .route("/api/v1/signals", get(api::signals))
        .route("/api/v1/signals/stream", get(sse::stream))
        .route("/api/v1/drain", post(control::drain))
        .route("/api/v1/undrain", post(control::undrain))
        .route("/api/v1/verified", post(control::verified))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(check_host))
        .with_state(state)
}

/// Refuses requests addressed to a DNS name other than `localhost` (DNS rebinding).
async fn check_host(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{fffd}").to_string());
    match host {
        Some(host) if !host_is_local_or_literal(&host) => (
            axum::http::StatusCode::MISDIRECTED_REQUEST,
            axum::Json(api::ErrorBody {
                error: format!(
                    "Host `{host}` is not an IP address or localhost; dns-oops answers only requests addressed to its IP address"
                ),
            }),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

/// `127.0.0.1`, `127.0.0.1:8054`, `[::1]:8054`, `localhost`, `localhost:8054`.
fn host_is_local_or_literal(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

async fn serve_metrics(State(app): State<AppState>) -> Result<impl IntoResponse, api::ApiError> {
    let metrics = &app.http.metrics;
    let seq = *app.http.latest_seq.borrow();
    metrics.set_journal_seq(seq);
    let health = app.http.health.clone();
    let channels = api::read_journal(&app.http.journal, move |journal| {
        api::channels_with_lag(&health, journal, seq)
    })
    .await?;
    metrics.set_health(&app.http.health.sources(), &channels);
    Ok((
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics.encode(),
    ))
}
