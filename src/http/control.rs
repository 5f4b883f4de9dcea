//! `POST /api/v1/drain` and `POST /api/v1/undrain`: the operator's commands, handed to the
//! task that owns the engine (see [`crate::drain`]); `POST /api/v1/verified`: a zone
//! verifier's report (see [`crate::nsd_verify`]), handed to the same task.
//!
//! The body is JSON (`Content-Type: application/json`, which a web page cannot send to
//! another origin without the browser asking first): `{"server": "knot", "reason":
//! "maintenance", "wait_ms": 60000}`. The answer is a [`DrainReport`]; 404 for an unknown
//! server, 504 when the BGP daemons did not confirm the withdraws within `wait_ms`, 503
//! when the daemon has no engine to ask (shutting down).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::AppState;
use super::api::ErrorBody;
use crate::drain::{
    Control, DEFAULT_REASON, DEFAULT_WAIT, DrainError, DrainReport, DrainRequest, MAX_WAIT,
};
use crate::engine::ObservationError;
use crate::nsd_verify::{VerifiedAnswer, VerifiedReport};

/// `POST /api/v1/drain`.
pub(crate) async fn drain(
    State(app): State<AppState>,
    body: Result<Json<DrainRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let wait = request
        .wait_ms
        .map_or(DEFAULT_WAIT, Duration::from_millis)
        .min(MAX_WAIT);
    let reason = request
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REASON.to_string());
    ask(&app, |reply| Control::Drain {
        server: request.server,
        reason,
        wait,
        reply,
    })
    .await
}

/// `POST /api/v1/undrain`.
pub(crate) async fn undrain(
    State(app): State<AppState>,
    body: Result<Json<DrainRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    ask(&app, |reply| Control::Undrain {
        server: request.server,
        reply,
    })
    .await
}

async fn ask(
    app: &AppState,
    control: impl FnOnce(oneshot::Sender<Result<DrainReport, DrainError>>) -> Control,
) -> Response {
    let Some(sender) = &app.http.control else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server takes no commands".into(),
        );
    };
    let (reply, answer) = oneshot::channel();
    if sender.send(control(reply)).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            DrainError::ShuttingDown.to_string(),
        );
    }
    match answer.await {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(e)) => {
            let status = match e {
                DrainError::UnknownServer { .. } => StatusCode::NOT_FOUND,
                DrainError::NotWithdrawn { .. } => StatusCode::GATEWAY_TIMEOUT,
                DrainError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, e.to_string())
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            DrainError::ShuttingDown.to_string(),
        ),
    }
}

/// `POST /api/v1/verified`: a zone verifier's verdict on a new version of a zone
/// (`dns-oops nsd-verify`), turned into observations from source `nsd-verify` (see
/// [`VerifiedReport::observations`]). Answers the signals it caused; 400 for a report that
/// does not parse, 404 for an unknown server.
pub(crate) async fn verified(
    State(app): State<AppState>,
    body: Result<Json<VerifiedReport>, JsonRejection>,
) -> Response {
    let report = match body {
        Ok(Json(report)) => report,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let observations = match report.observations() {
        Ok(observations) => observations,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some(sender) = &app.http.control else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server takes no reports".into(),
        );
    };
    let (reply, answer) = oneshot::channel();
    let control = Control::Observe {
        observations,
        reply,
    };
    if sender.send(control).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            DrainError::ShuttingDown.to_string(),
        );
    }
    match answer.await {
        Ok(Ok(signals)) => Json(VerifiedAnswer { signals }).into_response(),
        Ok(Err(ObservationError::UnknownServer(server))) => error(
            StatusCode::NOT_FOUND,
            format!("no server `{server}` in the configuration of this dns-oops"),
        ),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            DrainError::ShuttingDown.to_string(),
        ),
    }
}

fn error(status: StatusCode, error: String) -> Response {
    if status.is_server_error() {
        tracing::warn!("HTTP API: {error}");
    }
    (status, Json(ErrorBody { error })).into_response()
}
