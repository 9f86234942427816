//! The shared state and the router that mounts every feature.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::Uri,
    middleware,
    response::{IntoResponse, Response},
};
use tower_http::{catch_panic::CatchPanicLayer, set_header::SetResponseHeaderLayer};

use crate::{
    admin,
    audit::{self, AuditIndex},
    clock::SharedClock,
    config::Config,
    directory,
    events::{self, EventsRuntime},
    http::{ApiError, client_ip, health, middleware as mw},
    metrics::{self, Metrics},
    oidc_rp::{self, OidcRuntime},
    provider::{self, ProviderRuntime, keys::KeyRing},
    saml,
    scim::{self, ScimRuntime},
    sessions,
    signin::{self, SignInRuntime},
    store::Store,
    tenants::{
        self,
        dns::{DnsSettings, DomainVerifier},
    },
};

/// What every handler can reach: one reference count to clone (axum clones the state for every
/// extractor of every request), the fields behind it.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

pub struct Shared {
    pub store: Store,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    /// The base URL this server is reached at, without a trailing slash.
    pub public_url: Arc<str>,
    /// SCIM tokens' rate-limit buckets and last-use bookkeeping.
    pub scim: Arc<ScimRuntime>,
    /// The token signing keys in force.
    pub keys: Arc<KeyRing>,
    pub provider: Arc<ProviderRuntime>,
    /// SAML connections' parsed keys and certificates.
    pub saml: Arc<saml::SamlRuntime>,
    /// Upstream OpenID Providers' documents and keys, and the key that opens client secrets.
    pub oidc: Arc<OidcRuntime>,
    pub signin: Arc<SignInRuntime>,
    /// Domain verification's DNS client, or why there is none.
    pub dns: Arc<Result<DomainVerifier, String>>,
    /// The audit log's search index.
    pub audit: Arc<AuditIndex>,
    /// Webhook delivery: the URL policy, the client, the dispatcher's wake-up.
    pub events: Arc<EventsRuntime>,
    /// How many refusals of unauthenticated callers each source address may still record.
    pub refusal_budget: audit::refusals::RefusalBudget,
    /// The Prometheus registry (`/metrics`).
    pub metrics: Arc<Metrics>,
    draining: AtomicBool,
}

/// What a start loads or opens before serving, from the store and the settings.
pub struct Loaded {
    pub keys: KeyRing,
    pub signin: SignInRuntime,
    pub oidc: OidcRuntime,
    pub audit: Arc<AuditIndex>,
    pub events: Arc<EventsRuntime>,
}

impl AppState {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        clock: SharedClock,
        public_url: String,
        loaded: Loaded,
    ) -> Self {
        let Loaded { keys, signin, oidc, audit, events } = loaded;
        let scim = Arc::new(ScimRuntime::new(config.scim_rate_limit, config.scim_rate_burst));
        let dns = Arc::new(dns_verifier(&config));
        let metrics = Arc::new(Metrics::new(store.clone(), Arc::clone(&audit), Arc::clone(&clock)));
        let shared = Shared {
            store,
            config,
            clock,
            public_url: public_url.into(),
            scim,
            keys: Arc::new(keys),
            provider: Arc::new(ProviderRuntime::default()),
            saml: Arc::new(saml::SamlRuntime::default()),
            oidc: Arc::new(oidc),
            signin: Arc::new(signin),
            dns,
            audit,
            events,
            refusal_budget: audit::refusals::RefusalBudget::default(),
            metrics,
            draining: AtomicBool::new(false),
        };
        Self { shared: Arc::new(shared) }
    }

    /// Cookies are Secure (and `__Host-` prefixed) when browsers reach us over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending new work.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

fn dns_verifier(config: &Config) -> Result<DomainVerifier, String> {
    let settings = DnsSettings { resolvers: config.dns_resolvers.clone(), ..DnsSettings::default() };
    DomainVerifier::new(&settings).map_err(|err| {
        tracing::warn!(%err, "domain verification through DNS is unavailable (setting dns_resolvers)");
        format!("domain verification through DNS is unavailable: {err} (setting dns_resolvers)")
    })
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(admin::router(state.clone()))
        .merge(audit::router(state.clone()))
        .merge(audit::tenant_router(state.clone()))
        .merge(tenants::router(state.clone()))
        .merge(scim::admin_router(state.clone()))
        .merge(provider::clients::router(state.clone()))
        .merge(provider::rotation::router(state.clone()))
        .merge(sessions::router(state.clone()))
        .merge(signin::admin_router(state.clone()))
        .merge(saml::admin_router(state.clone()))
        .merge(oidc_rp::admin_router(state.clone()))
        .merge(directory::access::routes::router(state.clone()))
        .merge(directory::browse::router(state.clone()))
        .merge(events::router(state.clone()));
    let mut app = Router::new()
        .merge(health::router())
        .merge(provider::router())
        .merge(signin::router())
        .merge(saml::router())
        .merge(oidc_rp::router())
        .merge(admin::dashboard_router())
        .merge(metrics::router(state.clone()))
        .nest("/api/v1", api)
        .nest("/scim/v2/{tenant}", scim::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // Layers run outside-in in the reverse of the order they are added here: the request id
    // wraps everything (so even a panic's 500 carries one), then the security headers (so they
    // are on every response, errors included), then panic isolation, then the time and size
    // limits closest to the handlers.
    app = app
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.config.request_timeout, mw::time_limit))
        .layer(CatchPanicLayer::custom(|_| -> Response {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        // Outside the panic guard and the time limit, so that their 500s and 503s are counted.
        .layer(middleware::from_fn_with_state(Arc::clone(&state.metrics), mw::measure));
    for (name, value) in mw::security_headers() {
        app = app.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    if state.config.tls_files().is_some() {
        // Serving HTTPS itself, nothing else adds HSTS: browsers must never try plain HTTP here.
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        ));
    }
    // The client's address is resolved first of all (from a trusted proxy's X-Forwarded-For),
    // so the request id's audit origin and every handler see the same one.
    let trusted = Arc::new(client_ip::TrustedProxies::new(state.config.trusted_proxies.clone()));
    app.layer(middleware::from_fn(mw::request_id))
        .layer(middleware::from_fn_with_state(trusted, client_ip::resolve))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("nothing is served at {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
