//! `GET /api/v1/instance`: what this Portcullis is (version, public URL, schema) and its
//! effective settings, secrets masked: the dashboard's settings page, and a support request's
//! first question.

use axum::extract::State;
use serde_json::{Value, json};

use crate::{app::AppState, config, http::ApiJson, store::SCHEMA_VERSION};

pub async fn show(State(state): State<AppState>) -> ApiJson<Value> {
    let settings: Vec<Value> = config::effective(&state.config)
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    ApiJson(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "public_url": &*state.public_url,
        "schema_version": SCHEMA_VERSION,
        "scim_base_url_template": format!("{}/scim/v2/{{tenant_id}}", state.public_url),
        "settings": settings,
    }))
}
