//! The JSON API: `GET /api/v1/conditions` and `GET /api/v1/signals`.
//!
//! * `/api/v1/conditions` answers a [`StatusReport`]: the node, the `seq` of the last
//!   signal, every met level condition as of that signal, and the [`health`](crate::health)
//!   of every source and channel (channels with how far they are behind the journal).
//! * `/api/v1/signals?after=SEQ&limit=N` answers a JSON array of up to `N` signals
//!   (default 1000, at most 10000) with a `seq` greater than `SEQ` (default 0), oldest first.
//!   Page through the journal by passing the last `seq` of one page as `after` of the next;
//!   an empty array means there is nothing newer. Old signals may have been pruned, so the
//!   first `seq` is not always `after + 1`.
//!
//! Unknown or malformed query parameters are answered with 400 and `{"error": "…"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::health::{Board, ChannelHealth, SourceHealth};
use crate::journal::{Journal, JournalError};
use crate::signal::{CurrentCondition, Signal};

/// How many signals `/api/v1/signals` answers without a `limit`.
pub const DEFAULT_SIGNALS_LIMIT: usize = 1000;
/// The largest `limit` `/api/v1/signals` accepts.
pub const MAX_SIGNALS_LIMIT: usize = 10_000;

/// The body of `GET /api/v1/conditions`; what `dns-oops status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub node: String,
    /// The `seq` of the last signal in the journal (0 when there is none).
    pub seq: u64,
    /// The met level conditions, by server, condition and subject.
    pub conditions: Vec<CurrentCondition>,
    /// Whether each source can see its server, apart from the conditions.
    #[serde(default)]
    pub sources: Vec<SourceHealth>,
    /// Whether each channel reaches its peer, and how far it is behind the journal.
    #[serde(default)]
    pub channels: Vec<ChannelHealth>,
}

impl StatusReport {
    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a status report always serialises")
    }
}

/// Why the API answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("`{name}` must be {expected}, not `{value}`")]
    BadParameter {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown parameter `{name}`; this endpoint takes {known}")]
    UnknownParameter { name: String, known: String },
    #[error("parameter `{name}` is given more than once")]
    RepeatedParameter { name: String },
    #[error("{0}")]
    BadQuery(#[from] QueryRejection),
    #[error(
        "there is no signal {after} yet: the journal's last seq is {last} (was the journal \
         replaced? start again without `after` or Last-Event-ID)"
    )]
    AfterTheEnd { after: u64, last: u64 },
    #[error(
        "no such page: {path}; there are / (dashboard), /metrics, /api/v1/conditions, \
         /api/v1/signals, /api/v1/signals/stream, and POST /api/v1/drain and /api/v1/undrain"
    )]
    NotFound { path: String },
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("the journal reader stopped: {0}")]
    JournalReader(#[from] tokio::task::JoinError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadParameter { .. }
            | ApiError::UnknownParameter { .. }
            | ApiError::RepeatedParameter { .. }
            | ApiError::BadQuery(_)
            | ApiError::AfterTheEnd { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Journal(_) | ApiError::JournalReader(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!("HTTP API: {self}");
        }
        (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response()
    }
}

/// The query parameters of one request, checked against the names an endpoint takes.
pub(crate) struct QueryParameters(HashMap<String, String>);

impl QueryParameters {
    /// Accepts each of `known` at most once and nothing else.
    pub(crate) fn parse(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        known: &'static [&'static str],
    ) -> Result<QueryParameters, ApiError> {
        let Query(pairs) = query?;
        let mut parameters = HashMap::new();
        for (name, value) in pairs {
            if !known.contains(&name.as_str()) {
                let known = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>();
                return Err(ApiError::UnknownParameter {
                    name,
                    known: known.join(", "),
                });
            }
            if parameters.contains_key(&name) {
                return Err(ApiError::RepeatedParameter { name });
            }
            parameters.insert(name, value);
        }
        Ok(QueryParameters(parameters))
    }

    /// The `after` parameter, a signal number.
    pub(crate) fn after(&self) -> Result<Option<u64>, ApiError> {
        self.0
            .get("after")
            .map(|value| parse_seq("after", value))
            .transpose()
    }

    fn limit(&self) -> Result<usize, ApiError> {
        let Some(value) = self.0.get("limit") else {
            return Ok(DEFAULT_SIGNALS_LIMIT);
        };
        match value.parse::<usize>() {
            Ok(limit) if (1..=MAX_SIGNALS_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(ApiError::BadParameter {
                name: "limit",
                value: value.clone(),
                expected: "a number from 1 to 10000",
            }),
        }
    }
}

/// Parses a signal number given as `name`.
pub(crate) fn parse_seq(name: &'static str, value: &str) -> Result<u64, ApiError> {
    value.trim().parse().map_err(|_| ApiError::BadParameter {
        name,
        value: value.to_string(),
        expected: "a signal number (a whole number, 0 or more)",
    })
}

/// Runs a journal read on a blocking thread.
pub(crate) async fn read_journal<T: Send + 'static>(
    journal: &Arc<Journal>,
    read: impl FnOnce(&Journal) -> Result<T, JournalError> + Send + 'static,
) -> Result<T, ApiError> {
    let journal = journal.clone();
    Ok(tokio::task::spawn_blocking(move || read(&journal)).await??)
}

/// `GET /api/v1/conditions`.
pub(crate) async fn conditions(
    State(app): State<AppState>,
) -> Result<Json<StatusReport>, ApiError> {
    let health = app.http.health.clone();
    let (seq, conditions, channels) = read_journal(&app.http.journal, move |journal| {
        let (seq, conditions) = journal.current_with_seq()?;
        let channels = channels_with_lag(&health, journal, seq)?;
        Ok((seq, conditions, channels))
    })
    .await?;
    Ok(Json(StatusReport {
        node: app.http.node.clone(),
        seq,
        conditions,
        sources: app.http.health.sources(),
        channels,
    }))
}

/// Every channel's health with its lag behind `last_seq`.
pub(crate) fn channels_with_lag(
    health: &Board,
    journal: &Journal,
    last_seq: u64,
) -> Result<Vec<ChannelHealth>, JournalError> {
    health
        .channels()
        .into_iter()
        .map(|channel| channel.with_lag(journal, last_seq))
        .collect()
}

/// `GET /api/v1/signals?after=SEQ&limit=N`.
pub(crate) async fn signals(
    State(app): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Vec<Signal>>, ApiError> {
    let parameters = QueryParameters::parse(query, &["after", "limit"])?;
    let after = parameters.after()?.unwrap_or(0);
    let limit = parameters.limit()?;
    let signals = read_journal(&app.http.journal, move |journal| {
        journal.signals_after(after, limit)
    })
    .await?;
    Ok(Json(signals))
}

/// Every path without a route.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound {
        path: uri.path().to_string(),
    }
}
