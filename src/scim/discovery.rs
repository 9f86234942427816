//! The discovery endpoints (RFC 7644 §4): what this service provider supports, its schemas and
//! resource types. Truthful: no bulk, no password change; filters, sorting, PATCH and ETags yes.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::get,
};
use serde_json::{Value, json};

use super::{ScimClient, ScimError, list, respond, schema};
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type_by_id))
        .route("/Bulk", axum::routing::post(bulk))
}

async fn service_provider_config(State(state): State<AppState>, client: ScimClient) -> Response {
    let base = client.base_url(&state.public_url);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": list::MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A SCIM token of the tenant, created in the Portcullis admin API, sent as `Authorization: Bearer <token>`",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") },
    });
    respond(StatusCode::OK, &body, None, None)
}

async fn schemas(State(state): State<AppState>, client: ScimClient) -> Response {
    let base = client.base_url(&state.public_url);
    let items: Vec<Value> = schema::SCHEMAS.iter().map(|s| s.to_json(&base)).collect();
    respond(StatusCode::OK, &list::list_response(items.len(), 1, items), None, None)
}

async fn schema_by_id(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    let found = schema::SCHEMAS.iter().find(|s| s.id.eq_ignore_ascii_case(&id));
    let found = found.ok_or_else(|| ScimError::not_found(format!("no schema `{id}`")))?;
    Ok(respond(StatusCode::OK, &found.to_json(&client.base_url(&state.public_url)), None, None))
}

async fn resource_types(State(state): State<AppState>, client: ScimClient) -> Response {
    let base = client.base_url(&state.public_url);
    let items: Vec<Value> = schema::RESOURCE_TYPES.iter().map(|r| r.to_json(&base)).collect();
    respond(StatusCode::OK, &list::list_response(items.len(), 1, items), None, None)
}

async fn resource_type_by_id(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    let found = schema::RESOURCE_TYPES.iter().find(|r| r.id.eq_ignore_ascii_case(&id));
    let found = found.ok_or_else(|| ScimError::not_found(format!("no resource type `{id}`")))?;
    Ok(respond(StatusCode::OK, &found.to_json(&client.base_url(&state.public_url)), None, None))
}

async fn bulk(_client: ScimClient) -> ScimError {
    ScimError::not_implemented("bulk operations are not supported (see /ServiceProviderConfig)")
}
