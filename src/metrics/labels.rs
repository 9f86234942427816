//! Label values, each from a fixed set: whatever a client sends (a made-up method, a path no
//! route serves, a tenant's name) cannot make a new series.

use axum::{extract::MatchedPath, http::Method};
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// The `route` label of paths no route serves.
pub const UNMATCHED: &str = "unmatched";
/// Where the SCIM router is nested (`app::router`).
const SCIM_PREFIX: &str = "/scim/v2/{tenant}";

/// The request's method; methods outside HTTP's own are `other`.
pub fn method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The route template that served a request (`/scim/v2/{tenant}/Users/{id}`), never the path:
/// ids and tenants stay out of the labels. Holds axum's `MatchedPath`, whose clone is a
/// reference count, so labelling a request allocates nothing.
#[derive(Debug, Clone)]
pub struct Route(Option<MatchedPath>);

impl Route {
    pub fn new(matched: Option<MatchedPath>) -> Self {
        // A nested router's fallback is matched by a catch-all axum adds under the prefix: that
        // is not a route either.
        Self(matched.filter(|m| !m.as_str().contains("{*__private__")))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref().map_or(UNMATCHED, MatchedPath::as_str)
    }

    /// The template, when a route matched.
    pub fn matched(&self) -> Option<&str> {
        self.0.as_ref().map(MatchedPath::as_str)
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// The SCIM resource and operation a request to `route` is, if it is one.
pub fn scim_operation(method: &str, route: &str) -> Option<(&'static str, &'static str)> {
    let path = route.strip_prefix(SCIM_PREFIX)?;
    let (resource, rest) = if let Some(rest) = path.strip_prefix("/Users") {
        ("User", rest)
    } else if let Some(rest) = path.strip_prefix("/Groups") {
        ("Group", rest)
    } else {
        return match (method, path) {
            ("POST", "/.search") => Some(("all", "search")),
            ("POST", "/Bulk") => Some(("Bulk", "bulk")),
            ("GET", "/ServiceProviderConfig" | "/Schemas" | "/Schemas/{id}")
            | ("GET", "/ResourceTypes" | "/ResourceTypes/{id}") => Some(("discovery", "get")),
            _ => None,
        };
    };
    let operation = match (method, rest) {
        ("POST", "") => "create",
        ("GET", "") => "list",
        ("POST", "/.search") => "search",
        ("GET", "/{id}") => "get",
        ("PUT", "/{id}") => "replace",
        ("PATCH", "/{id}") => "patch",
        ("DELETE", "/{id}") => "delete",
        _ => return None,
    };
    Some((resource, operation))
}

/// A SCIM operation's outcome from its status: the refusals an operator acts on (a token that no
/// longer works, a client over its rate) apart from other client errors.
pub fn scim_outcome(status: u16) -> &'static str {
    match status {
        401 => "unauthenticated",
        429 => "rate_limited",
        ..=399 => "success",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, routing::get};

    use super::*;

    #[test]
    fn methods_outside_http_share_one_label() {
        assert_eq!(method(&Method::PATCH), "PATCH");
        assert_eq!(method(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method(&Method::from_bytes(b"X-RANDOM-1234").unwrap()), "other");
    }

    #[test]
    fn scim_requests_are_named_by_resource_and_operation() {
        let op = |method, route| scim_operation(method, route);
        assert_eq!(op("POST", "/scim/v2/{tenant}/Users"), Some(("User", "create")));
        assert_eq!(op("GET", "/scim/v2/{tenant}/Users"), Some(("User", "list")));
        assert_eq!(op("POST", "/scim/v2/{tenant}/Users/.search"), Some(("User", "search")));
        assert_eq!(op("GET", "/scim/v2/{tenant}/Users/{id}"), Some(("User", "get")));
        assert_eq!(op("PUT", "/scim/v2/{tenant}/Users/{id}"), Some(("User", "replace")));
        assert_eq!(op("PATCH", "/scim/v2/{tenant}/Groups/{id}"), Some(("Group", "patch")));
        assert_eq!(op("DELETE", "/scim/v2/{tenant}/Groups/{id}"), Some(("Group", "delete")));
        assert_eq!(op("POST", "/scim/v2/{tenant}/.search"), Some(("all", "search")));
        assert_eq!(op("POST", "/scim/v2/{tenant}/Bulk"), Some(("Bulk", "bulk")));
        assert_eq!(op("GET", "/scim/v2/{tenant}/Schemas/{id}"), Some(("discovery", "get")));
        assert_eq!(op("DELETE", "/scim/v2/{tenant}/Users"), None, "not an operation (405)");
        assert_eq!(op("GET", "/scim/v2/{tenant}/Usersx"), None);
        assert_eq!(op("GET", "/api/v1/tenants/{tenant}/users"), None);
        assert_eq!(op("GET", UNMATCHED), None);
    }

    #[test]
    fn scim_outcomes_set_apart_what_an_operator_acts_on() {
        let outcomes: Vec<&str> = [200, 201, 204, 304, 400, 401, 404, 409, 412, 429, 500, 503]
            .into_iter()
            .map(scim_outcome)
            .collect();
        assert_eq!(
            outcomes,
            [
                "success",
                "success",
                "success",
                "success",
                "client_error",
                "unauthenticated",
                "client_error",
                "client_error",
                "client_error",
                "rate_limited",
                "server_error",
                "server_error"
            ]
        );
    }

    /// What `Route` sees in the app's own nesting: the template of the route, `unmatched` for the
    /// top-level fallback and for a nested router's fallback alike.
    #[tokio::test]
    async fn routes_are_labelled_by_their_template_and_unmatched_paths_by_one_value() {
        use std::sync::{Arc, Mutex};

        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = {
            let seen = Arc::clone(&seen);
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let seen = Arc::clone(&seen);
                async move {
                    let route = Route::new(request.extensions().get::<MatchedPath>().cloned());
                    seen.lock().unwrap().push(route.as_str().to_owned());
                    next.run(request).await
                }
            }
        };
        let nested =
            Router::new().route("/Users/{id}", get(|| async { "user" })).fallback(|| async { "none" });
        let app = Router::new()
            .route("/api/v1/tenants/{tenant}", get(|| async { "tenant" }))
            .nest("/scim/v2/{tenant}", nested)
            .fallback(|| async { "nothing" })
            .layer(axum::middleware::from_fn(record));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        for path in [
            "/api/v1/tenants/acme",
            "/scim/v2/acme/Users/123",
            "/scim/v2/acme/Nope/1",
            "/no/such/path",
            "/api/v1/tenants/acme/extra",
        ] {
            client.get(format!("{base}{path}")).send().await.unwrap();
        }
        assert_eq!(
            *seen.lock().unwrap(),
            ["/api/v1/tenants/{tenant}", "/scim/v2/{tenant}/Users/{id}", UNMATCHED, UNMATCHED, UNMATCHED]
        );
    }
}
