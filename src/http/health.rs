//! `/healthz` (the process is up) and `/readyz` (it can serve: the store answers and it is not
//! shutting down). Neither needs credentials or says more than that.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::json;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.clone();
    let store_ok = tokio::task::spawn_blocking(move || store.is_healthy()).await.unwrap_or(false);
    if state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "shutting_down" })))
    } else if !store_ok {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "store_unavailable" })))
    } else {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    }
}
