//! Throughput of the paths the foundation owns, for BENCHMARKS.md.
//!
//! 1. Durable writes through the group-commit writer at several concurrencies.
//! 2. The admin API over HTTP on loopback: tenant creation and lookup at concurrency 8.
//!
//! Every write is durable (fsynced) before it is acknowledged. Run with
//! `cargo bench --bench hot_paths`; the machine is shared, so read the figures as rough.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use portcullis::{
    clock::SystemClock,
    config::Config,
    ids::TenantId,
    store::{
        Store,
        tenants::{self, TenantRecord, TenantStatus},
    },
};

const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef0123456789";

fn tenant(n: usize) -> TenantRecord {
    let now = time::OffsetDateTime::now_utc();
    TenantRecord {
        id: TenantId::generate(),
        slug: format!("t{n}-{}", TenantId::generate()),
        display_name: format!("Tenant {n}"),
        status: TenantStatus::Active,
        seat_limit: None,
        deleted_user_retention_days: None,
        session_policy: Default::default(),
        require_sso: false,
        google_hosted_domains: Vec::new(),
        created_at: now,
        updated_at: now,
    }
}

/// Runs `op(0..total)` from `concurrency` tasks and prints the rate.
async fn drive<F, Fut>(label: &str, concurrency: usize, total: usize, op: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (op, next) = (Arc::new(op), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, next) = (Arc::clone(&op), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    op(n).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{label}, concurrency {concurrency:>2}: {total} in {seconds:.2} s = {:>7.0}/s",
        total as f64 / seconds
    );
}

async fn store_writes(concurrency: usize, total: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 64 << 20).unwrap();
    let writer = store.clone();
    drive("store write (tenant + slug index)", concurrency, total, move |n| {
        let (store, record) = (writer.clone(), tenant(n));
        async move {
            store
                .write(move |tx| {
                    tenants::claim_slug(tx, &record.slug, record.id)?;
                    tenants::put(tx, &record)
                })
                .await
                .unwrap();
        }
    })
    .await;
    store.shutdown();
}

async fn http(total: usize) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let settings = Config {
        data_dir: dir.path().to_owned(),
        bootstrap_admin_key: Some(test_secret()),
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portcullis::run(settings, Arc::new(SystemClock), listener, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{base}/readyz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (c, b) = (client.clone(), base.clone());
    drive("HTTP POST /api/v1/tenants", 8, total, move |n| {
        let body = serde_json::json!({
            "slug": format!("tenant-{n}"), "display_name": "Bench", "domains": [format!("d{n}.example")]
        });
        let request = c.post(format!("{b}/api/v1/tenants")).bearer_auth(ADMIN_KEY).json(&body);
        async move { expect_success(request).await }
    })
    .await;
    let (c, b) = (client.clone(), base.clone());
    drive("HTTP GET /api/v1/tenants/{slug}", 8, total, move |n| {
        let request = c.get(format!("{b}/api/v1/tenants/tenant-{}", n % 1000)).bearer_auth(ADMIN_KEY);
        async move { expect_success(request).await }
    })
    .await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

async fn expect_success(request: reqwest::RequestBuilder) {
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

fn test_secret() -> portcullis::config::Secret {
    let sources = portcullis::config::Sources {
        env: vec![("PORTCULLIS_BOOTSTRAP_ADMIN_KEY".into(), ADMIN_KEY.into())],
        ..Default::default()
    };
    portcullis::config::load(&sources).unwrap().config.bootstrap_admin_key.unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        for (concurrency, total) in [(1, 300), (8, 3000), (64, 20000)] {
            store_writes(concurrency, total).await;
        }
        http(5000).await;
    });
}
