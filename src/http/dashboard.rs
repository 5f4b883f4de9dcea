//! `GET /`: a small dashboard of current conditions and live signals.
//!
//! One self-contained page (`dashboard.html`, no external assets) that reads
//! `/api/v1/conditions`, then follows `/api/v1/signals/stream` with `EventSource` from the
//! `seq` it got, reloading the conditions after each signal. It puts every value from the
//! daemon into the page as text, never as markup: signal arguments can carry text from the
//! network (Extended DNS Error texts, zone names).

use axum::response::Html;

const PAGE: &str = include_str!("dashboard.html");

/// `GET /`.
pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}
