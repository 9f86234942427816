//! `GET /metrics`: the exposition, for an admin API key or a `metrics:read` key (`AdminAuth`
//! checks the scope on the original path, as for every admin route). Scrapes are not audited:
//! one every 15 s would drown the trail. Refused ones answer as the admin API refuses, in its
//! JSON error format.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    middleware::from_extractor_with_state,
    response::{IntoResponse, Response},
    routing::get,
};

use super::Format;
use crate::{admin::AdminAuth, app::AppState, http::ApiError};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new().route("/metrics", get(scrape)).route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(&headers);
    match state.metrics.encode(format) {
        Ok(body) => {
            let mut response = body.into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
            response
        }
        Err(_) => ApiError::Internal("the metrics could not be encoded".into()).into_response(),
    }
}
