//! Prometheus metrics at `/metrics`: one registry in the app state (`Shared::metrics`), the
//! prometheus-client crate's metric types and OpenMetrics encoding.
//!
//! What happens on a request is counted as it happens: requests and their latency (the request
//! middleware, `observe_request`), SCIM operations (from the same observation: the route template
//! says which operation it was), sign-ins by method and outcome (where each sign-in ends). What
//! the store knows is read when Prometheus scrapes (`live`): the webhook and back-channel logout
//! backlogs, the audit index's lag, the writer's batches and the sessions revoked, which are
//! counted in the transaction that revokes them and only once it has committed
//! (`WriteTx::tally`).
//!
//! Every label value comes from a fixed set (`labels`): no tenant, user or path is ever one, so
//! the number of series is bounded whatever clients send.

mod format;
pub mod labels;
mod live;
mod routes;

use std::{sync::Arc, time::Duration};

use axum::{extract::MatchedPath, http::StatusCode};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

pub use format::Format;
pub use labels::Route;
pub use routes::router;

use crate::{audit::AuditIndex, clock::SharedClock, provider::FinishFailure, store::Store};

/// Latency buckets (seconds): a cached read answers in well under a millisecond, a sign-in with
/// argon2 or xmlsec in tens of milliseconds, an export or a slow IdP in seconds.
const LATENCY_BUCKETS: [f64; 15] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How a person signed in: the `method` label of the sign-in families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Saml,
    Oidc,
    Google,
    Password,
}

impl SignInMethod {
    const ALL: [SignInMethod; 4] = [Self::Saml, Self::Oidc, Self::Google, Self::Password];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Saml => "saml",
            Self::Oidc => "oidc",
            Self::Google => "google",
            Self::Password => "password",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Route,
    code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: Route,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ScimLabels {
    resource: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignInLabels {
    method: &'static str,
    /// `success`, `refused` (a check said no), `error` (the server could not finish).
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusalLabels {
    method: &'static str,
    /// The refusal's stable code (the audit record's reason).
    reason: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: LatencyFamily,
    scim_operations: Family<ScimLabels, Counter>,
    sign_ins: Family<SignInLabels, Counter>,
    sign_in_refusals: Family<RefusalLabels, Counter>,
}

impl Metrics {
    /// The registry, its families, and the scrape-time readings of `store` and `audit`.
    pub fn new(store: Store, audit: Arc<AuditIndex>, clock: SharedClock) -> Self {
        let started = clock.now().unix_timestamp();
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_duration: LatencyFamily = Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        let scim_operations = Family::<ScimLabels, Counter>::default();
        let sign_ins = Family::<SignInLabels, Counter>::default();
        let sign_in_refusals = Family::<RefusalLabels, Counter>::default();
        // Every method and outcome from 0, so that a rate is there before the first sign-in.
        for method in SignInMethod::ALL {
            for outcome in ["success", "refused", "error"] {
                let _ = sign_ins.get_or_create(&SignInLabels { method: method.as_str(), outcome });
            }
        }

        let mut registry = Registry::default();
        // The standard process metric, unprefixed as every client library names it.
        let start_time = Gauge::<i64>::default();
        start_time.set(started);
        registry.register_with_unit(
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Unit::Seconds,
            start_time,
        );
        let ours = registry.sub_registry_with_prefix("portcullis");
        let build = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        build.get_or_create(&[("version", env!("CARGO_PKG_VERSION"))]).set(1);
        ours.register("build_info", "The running version, as a label; always 1", build);
        ours.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status code",
            http_requests.clone(),
        );
        ours.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response's headers, by method and route template",
            Unit::Seconds,
            http_duration.clone(),
        );
        ours.register(
            "scim_operations",
            "SCIM operations answered, by resource, operation and outcome",
            scim_operations.clone(),
        );
        ours.register(
            "signins",
            "Sign-ins that ended, by method and outcome (success, refused, error)",
            sign_ins.clone(),
        );
        ours.register(
            "signin_refusals",
            "Refused sign-ins by method and the refusal's code (the audit record's reason)",
            sign_in_refusals.clone(),
        );
        ours.register_collector(Box::new(live::Live { store, audit, clock }));
        Self { registry, http_requests, http_duration, scim_operations, sign_ins, sign_in_refusals }
    }

    /// Counts and times one answered request. On every request's path: a hash lookup of each
    /// label set under a read lock (label sets exist after a route's first request; building one
    /// copies a reference count, nothing is allocated), a counter's atomic increment and a
    /// histogram observation (a short, uncontended lock); SCIM requests add one lookup and
    /// increment.
    pub fn observe_request(
        &self,
        method: &'static str,
        matched: Option<MatchedPath>,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let route = Route::new(matched);
        let code = status.as_u16();
        if let Some((resource, operation)) = route.matched().and_then(|r| labels::scim_operation(method, r)) {
            let outcome = labels::scim_outcome(code);
            self.scim_operations.get_or_create(&ScimLabels { resource, operation, outcome }).inc();
        }
        self.http_requests.get_or_create(&RequestLabels { method, route: route.clone(), code }).inc();
        self.http_duration.get_or_create(&RouteLabels { method, route }).observe(elapsed.as_secs_f64());
    }

    pub fn signed_in(&self, method: SignInMethod) {
        self.sign_ins.get_or_create(&SignInLabels { method: method.as_str(), outcome: "success" }).inc();
    }

    /// A sign-in a check refused, with the refusal's stable code.
    pub fn sign_in_refused(&self, method: SignInMethod, reason: &'static str) {
        let method = method.as_str();
        self.sign_ins.get_or_create(&SignInLabels { method, outcome: "refused" }).inc();
        self.sign_in_refusals.get_or_create(&RefusalLabels { method, reason }).inc();
    }

    /// A sign-in the server could not finish (the store failed).
    pub fn sign_in_failed(&self, method: SignInMethod) {
        self.sign_ins.get_or_create(&SignInLabels { method: method.as_str(), outcome: "error" }).inc();
    }

    /// Counts how `provider::finish_stored_after` ended a sign-in. A refusal by the caller's own
    /// prelude is not counted here: the caller counts it with its own code when it answers it.
    pub fn sign_in_finished<T, E>(&self, method: SignInMethod, finished: &Result<T, FinishFailure<E>>) {
        use crate::provider::FinishError;
        match finished {
            Ok(_) => self.signed_in(method),
            Err(FinishFailure { error: FinishError::Refused(_), .. }) => {}
            Err(FinishFailure { error: FinishError::AccessDenied, .. }) => {
                self.sign_in_refused(method, "access_denied")
            }
            Err(FinishFailure { error: FinishError::RequestGone, .. }) => {
                self.sign_in_refused(method, "request_gone")
            }
            Err(FinishFailure { error: FinishError::Store(_), .. }) => self.sign_in_failed(method),
        }
    }

    /// The exposition in `format`.
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut body = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut body, &self.registry)?;
        Ok(match format {
            Format::OpenMetrics => body,
            Format::Text => format::to_text(&body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    pub(super) fn metrics() -> (tempfile::TempDir, tempfile::TempDir, Metrics) {
        let (dir, store) = testing::store();
        let index_dir = tempfile::tempdir().unwrap();
        let settings = crate::audit::WriterSettings { memory_bytes: 15 << 20, threads: 1 };
        let (index, indexer) = crate::audit::index::start(index_dir.path(), settings, store.clone()).unwrap();
        indexer.stop();
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        (dir, index_dir, Metrics::new(store, index, clock))
    }

    #[test]
    fn a_request_is_counted_by_template_and_a_scim_one_also_as_its_operation() {
        let (_d, _i, metrics) = metrics();
        metrics.observe_request("POST", None, StatusCode::NOT_FOUND, Duration::from_micros(300));
        let body = metrics.encode(Format::OpenMetrics).unwrap();
        assert!(
            body.contains(r#"portcullis_http_requests_total{method="POST",route="unmatched",code="404"} 1"#),
            "{body}"
        );
        assert!(body.contains(r#"portcullis_http_request_duration_seconds_bucket{le="0.0005",method="POST",route="unmatched"} 1"#), "{body}");
        assert!(!body.contains("portcullis_scim_operations_total{"), "no SCIM operation yet");
    }
}
