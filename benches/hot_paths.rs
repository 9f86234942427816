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
        created_at: now,
        updated_at: now,
    }
}

async fn store_writes(concurrency: usize, total: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 64 << 20).unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, next) = (store.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let record = tenant(0);
                    store
                        .write(move |tx| {
                            tenants::claim_slug(tx, &record.slug, record.id)?;
                            tenants::put(tx, &record)
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "store write (tenant + slug index), concurrency {concurrency:>3}: {total} in {:.2} s = {:>7.0} writes/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
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
    // Wait until it answers.
    for _ in 0..200 {
        if client.get(format!("{base}/readyz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let concurrency = 8;
    let run = |label: &'static str, make: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>| {
        let next = Arc::new(AtomicUsize::new(0));
        async move {
            let started = Instant::now();
            let workers: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (next, make) = (Arc::clone(&next), Arc::clone(&make));
                    tokio::spawn(async move {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= total {
                                break;
                            }
                            let response = make(n).send().await.unwrap();
                            assert!(response.status().is_success(), "{}", response.status());
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await.unwrap();
            }
            let elapsed = started.elapsed();
            println!(
                "{label}, concurrency {concurrency}: {total} in {:.2} s = {:>7.0} requests/s",
                elapsed.as_secs_f64(),
                total as f64 / elapsed.as_secs_f64()
            );
        }
    };
    let (c, b) = (client.clone(), base.clone());
    run(
        "HTTP POST /api/v1/tenants",
        Arc::new(move |n| {
            c.post(format!("{b}/api/v1/tenants"))
                .bearer_auth(ADMIN_KEY)
                .json(&serde_json::json!({ "slug": format!("tenant-{n}"), "display_name": "Bench", "domains": [format!("d{n}.example")] }))
        }),
    )
    .await;
    let (c, b) = (client.clone(), base.clone());
    run(
        "HTTP GET /api/v1/tenants/{slug}",
        Arc::new(move |n| c.get(format!("{b}/api/v1/tenants/tenant-{}", n % 1000)).bearer_auth(ADMIN_KEY)),
    )
    .await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
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
