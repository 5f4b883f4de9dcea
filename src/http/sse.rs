//! `GET /api/v1/signals/stream`: signals as server-sent events.
//!
//! Each signal is one event, its `seq` the event id:
//!
//! ```text
//! id: 1042
//! event: signal
//! data: {"seq":1042,"time":"2026-11-22T08:00:00.123456Z","node":"ams1",…}
//!
//! ```
//!
//! Where the stream starts: after the `seq` in the `Last-Event-ID` header (what a
//! reconnecting `EventSource` sends), else after the `after` query parameter, else at the
//! journal's last signal, so that only new signals follow. The stream first catches up
//! from the journal, then follows each new write. A comment line is sent every 15 s so that
//! idle connections stay open and clients notice dead ones.
//!
//! When the daemon stops, the stream sends the signals that are left, then
//! `event: shutdown` (data `dns-oops is stopping`), and ends. A start beyond the journal's
//! last signal (a journal that was replaced) is answered with 400.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::watch;

use super::AppState;
use super::api::{ApiError, QueryParameters, parse_seq, read_journal};
use crate::journal::Journal;
use crate::signal::Signal;

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How many signals are read from the journal at a time.
const BATCH: usize = 256;
/// The name of the header a reconnecting client sends the last event id in.
const LAST_EVENT_ID: &str = "last-event-id";

/// `GET /api/v1/signals/stream?after=SEQ`.
pub(crate) async fn stream(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let parameters = QueryParameters::parse(query, &["after"])?;
    let last_event_id = headers
        .get(LAST_EVENT_ID)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .filter(|text| !text.trim().is_empty())
        .map(|text| parse_seq("Last-Event-ID", &text))
        .transpose()?;
    let requested = last_event_id.or(parameters.after()?);
    let last = read_journal(&app.http.journal, Journal::last_seq).await?;
    let after = match requested {
        Some(after) if after > last => return Err(ApiError::AfterTheEnd { after, last }),
        Some(after) => after,
        None => last,
    };
    let follower = SignalFollower {
        journal: app.http.journal.clone(),
        latest: app.http.latest_seq.clone(),
        stopping: app.stopping.clone(),
        after,
        pending: VecDeque::new(),
        phase: Phase::Following,
    };
    let events = futures_util::stream::unfold(follower, |mut follower| async move {
        let event = follower.next_event().await?;
        Some((Ok(event), follower))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Reads the journal after a `seq`, waking up whenever the daemon writes.
struct SignalFollower {
    journal: Arc<Journal>,
    latest: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    /// The last `seq` read from the journal.
    after: u64,
    /// Signals read but not yet sent.
    pending: VecDeque<Signal>,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sending what the journal holds, then waiting for the next write.
    Following,
    /// The daemon or the server stops: sending what is left, then `shutdown`.
    Stopping,
    /// `shutdown` was sent, or the journal could not be read.
    Ended,
}

impl SignalFollower {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(signal) = self.pending.pop_front() {
                return Some(signal_event(&signal));
            }
            if self.phase == Phase::Ended {
                return None;
            }
            let after = self.after;
            match read_journal(&self.journal, move |journal| {
                journal.signals_after(after, BATCH)
            })
            .await
            {
                Ok(batch) if !batch.is_empty() => {
                    self.after = batch.last().map_or(after, |signal| signal.seq);
                    self.pending.extend(batch);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    // The client reconnects with the last id it saw and tries again.
                    tracing::warn!("event stream ends after seq {after}: {e}");
                    self.phase = Phase::Ended;
                    return None;
                }
            }
            if self.phase == Phase::Stopping {
                self.phase = Phase::Ended;
                return Some(
                    Event::default()
                        .event("shutdown")
                        .data("dns-oops is stopping"),
                );
            }
            tokio::select! {
                changed = self.latest.changed() => {
                    if changed.is_err() {
                        self.phase = Phase::Stopping;
                    }
                }
                _ = self.stopping.wait_for(|stopping| *stopping) => self.phase = Phase::Stopping,
            }
        }
    }
}

fn signal_event(signal: &Signal) -> Event {
    Event::default()
        .id(signal.seq.to_string())
        .event("signal")
        .data(signal.to_json_line())
}
