//! The audit trail at one million records, for BENCHMARKS.md. Run with `cargo bench --bench audit`.
//!
//! 1. A server is initialised and stopped; one million records are appended to its log through
//!    the store (20 tenants, 50,000 people, a year of SCIM changes, sign-ins and admin changes,
//!    chained as the server chains them), in commits of 5,000.
//! 2. The index is rebuilt from the log (what `portcullis audit reindex` runs).
//! 3. Disk bytes per record: the database and the index.
//! 4. The server is started on the data: one person's history (all of it, and last quarter's)
//!    over HTTP, latency percentiles; a tenant's failures; a free-text query.
//! 5. Records ingested while the server takes SCIM load (POST /Users at concurrency 8), and how
//!    far the index falls behind the log meanwhile.
//! 6. `POST /api/v1/audit/verify` over the million records, and a tenant's JSON Lines export.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use portcullis::{
    audit::{WriterSettings, index},
    ids::TenantId,
    store::{
        Store, StoreError,
        audit::{self, Actor, AuditRecord},
        journal::Subject,
    },
};
use serde_json::{Value, json};
use time::OffsetDateTime;

mod support;

use support::{ADMIN_KEY, Server, drive, expect_status, send, tenant, user};

const RECORDS: u64 = 1_000_000;
const TENANTS: u64 = 20;
const PEOPLE: u64 = 50_000;
const COMMIT: u64 = 5_000;

fn main() {
    let data = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start_in(data.path());
    let tenants = runtime.block_on(create_tenants(&server));
    server.stop();

    let store = Store::open(data.path(), 64 << 20).unwrap();
    let started = Instant::now();
    runtime.block_on(generate(&store, &tenants));
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "appended {RECORDS} records in {seconds:.1} s = {:.0}/s (commits of {COMMIT})",
        RECORDS as f64 / seconds
    );

    let started = Instant::now();
    let settings = WriterSettings { memory_bytes: 32 << 20, threads: 1 };
    let indexed = index::rebuild(&index::dir_in(data.path()), settings, &store).unwrap();
    println!("reindex: {indexed} records in {:.1} s", started.elapsed().as_secs_f64());
    store.shutdown();
    drop(store);

    let db = std::fs::metadata(data.path().join("portcullis.redb")).unwrap().len();
    let idx = dir_size(&index::dir_in(data.path()));
    println!(
        "disk: database {:.0} MB ({:.0} B/record, the whole instance), index {:.0} MB ({:.0} B/record)",
        db as f64 / 1e6,
        db as f64 / RECORDS as f64,
        idx as f64 / 1e6,
        idx as f64 / RECORDS as f64
    );

    let server = Server::start_in(data.path());
    runtime.block_on(queries(&server, &tenants));
    runtime.block_on(ingest_under_load(&server));
    runtime.block_on(verify_and_export(&server, &tenants));
    server.stop();
}

async fn create_tenants(server: &Server) -> Vec<TenantId> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..TENANTS {
        let body = json!({ "slug": format!("tenant{n}"), "display_name": format!("Tenant {n}") });
        let url = format!("{}/api/v1/tenants", server.base);
        let created = send(client.post(url).bearer_auth(ADMIN_KEY).json(&body), 201).await;
        ids.push(created["id"].as_str().unwrap().parse().unwrap());
    }
    ids
}

/// A year of one instance's trail: each step picks a tenant and a person and something that
/// happened to them.
async fn generate(store: &Store, tenants: &[TenantId]) {
    let start = OffsetDateTime::now_utc() - time::Duration::days(365);
    let step = time::Duration::seconds(365 * 86_400 / RECORDS as i64);
    let token = Actor { kind: "scim_token".into(), id: "okta".into(), label: Some("Okta".into()) };
    let admin = Actor { kind: "admin_key".into(), id: "ops".into(), label: None };
    for batch in 0..RECORDS / COMMIT {
        let records: Vec<AuditRecord> = (batch * COMMIT..(batch + 1) * COMMIT)
            .map(|n| {
                let person = (n * 7_919) % PEOPLE;
                let tenant = tenants[(person % TENANTS) as usize];
                let name = format!("person{person}@tenant{}.example", person % TENANTS);
                let target = Subject { kind: "user".into(), id: format!("user-{person}"), label: Some(name) };
                let at = start + step * n as i32;
                let (actor, action, detail) = match n % 10 {
                    0..=3 => {
                        (token.clone(), "scim.user.update", json!({ "changed": ["title", "department"] }))
                    }
                    4 | 5 => (
                        token.clone(),
                        "scim.group.member_add",
                        json!({ "group": { "display_name": "Engineering" } }),
                    ),
                    6 | 7 => (
                        Actor { kind: "idp".into(), id: "saml:okta".into(), label: None },
                        "sso.saml.login",
                        json!({ "session": n, "amr": ["pwd", "mfa"] }),
                    ),
                    8 => (admin.clone(), "admin.session.revoke_user", json!({ "ended": 2 })),
                    _ => (token.clone(), "scim.user.create", json!({ "active": true })),
                };
                let record = AuditRecord::new(Some(tenant), actor, action, Some(target), detail, at, None);
                if n % 47 == 3 { record.refused("signature_invalid") } else { record }
            })
            .collect();
        let records = Arc::new(records);
        store
            .write(move |tx| {
                for record in records.iter() {
                    audit::append(tx, record.clone())?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

fn percentiles(label: &str, mut latencies: Vec<Duration>, found: usize) {
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3
    };
    println!(
        "{label}: {} queries, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms ({:.0} records per answer)",
        latencies.len(),
        pct(0.5),
        pct(0.95),
        pct(0.99),
        found as f64 / latencies.len() as f64
    );
}

/// Times `queries` one after another (a compliance officer's clicks, not a load test).
async fn timed(client: &reqwest::Client, server: &Server, label: &str, queries: Vec<String>) {
    let mut latencies = Vec::new();
    let mut found = 0;
    for query in queries {
        let url = format!("{}/api/v1/audit/search?{query}", server.base);
        let started = Instant::now();
        let page = send(client.get(url).bearer_auth(ADMIN_KEY), 200).await;
        latencies.push(started.elapsed());
        found += page["items"].as_array().unwrap().len();
    }
    percentiles(label, latencies, found);
}

async fn queries(server: &Server, tenants: &[TenantId]) {
    let client = reqwest::Client::new();
    let people: Vec<u64> = (0..300).map(|n| (n * 163) % PEOPLE).collect();
    let tenant_of = |person: u64| tenants[(person % TENANTS) as usize];
    let quarter_start = (OffsetDateTime::now_utc() - time::Duration::days(120))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let quarter_end = (OffsetDateTime::now_utc() - time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let history =
        people.iter().map(|p| format!("tenant={}&user=user-{p}&limit=100", tenant_of(*p))).collect();
    timed(&client, server, "one person's history (all of it)", history).await;
    let quarter = people
        .iter()
        .map(|p| {
            format!(
                "tenant={}&user=user-{p}&since={quarter_start}&until={quarter_end}&limit=100",
                tenant_of(*p)
            )
        })
        .collect();
    timed(&client, server, "one person's last quarter", quarter).await;
    let by_name = people
        .iter()
        .map(|p| format!("tenant={}&user=person{p}@tenant{}.example&limit=100", tenant_of(*p), p % TENANTS))
        .collect();
    timed(&client, server, "one person's history by user name", by_name).await;
    let failures = tenants.iter().map(|t| format!("tenant={t}&outcome=failure&limit=100")).collect();
    timed(&client, server, "a tenant's failures, newest 100", failures).await;
    let text = (0..100).map(|n| format!("q=person{}&limit=50", n * 97)).collect();
    timed(&client, server, "free text", text).await;
}

/// Records per second the log takes while SCIM load runs, and the index's lag meanwhile.
async fn ingest_under_load(server: &Server) {
    let client = reqwest::Client::new();
    let status_url = format!("{}/api/v1/audit/status", server.base);
    let status = |client: reqwest::Client, url: String| async move {
        send(client.get(url).bearer_auth(ADMIN_KEY), 200).await
    };
    let before = status(client.clone(), status_url.clone()).await["last_seq"].as_u64().unwrap();
    let (base, token) = tenant(&client, server, "load").await;
    let (running, worst_lag) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(0)));
    let sampler = {
        let (running, worst_lag, client, url) =
            (running.clone(), worst_lag.clone(), client.clone(), status_url.clone());
        tokio::spawn(async move {
            while running.load(Ordering::SeqCst) {
                let lag = status(client.clone(), url.clone()).await["index_lag"].as_u64().unwrap();
                worst_lag.fetch_max(lag, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let (c, b, t) = (client.clone(), base.clone(), token.clone());
    drive("POST /Users during the audit ingest", 8, 20_000, move |n| {
        let request =
            c.post(format!("{b}/Users")).bearer_auth(&t).json(&user(&format!("load{n}@load.example")));
        async move {
            expect_status(request, 201).await;
        }
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    running.store(false, Ordering::SeqCst);
    sampler.await.unwrap();
    let after = status(client.clone(), status_url.clone()).await;
    let appended = after["last_seq"].as_u64().unwrap() - before;
    println!(
        "audit records appended under SCIM load: {appended} in {seconds:.1} s = {:.0}/s; worst index lag {} records",
        appended as f64 / seconds,
        worst_lag.load(Ordering::SeqCst)
    );
    let caught_up = Instant::now();
    loop {
        if status(client.clone(), status_url.clone()).await["index_lag"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("index caught up {:.2} s after the load ended", caught_up.elapsed().as_secs_f64());
}

async fn verify_and_export(server: &Server, tenants: &[TenantId]) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let report: Value =
        send(client.post(format!("{}/api/v1/audit/verify", server.base)).bearer_auth(ADMIN_KEY), 200).await;
    println!(
        "verify: {} records, intact {}, in {:.1} s",
        report["records"],
        report["intact"],
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let url = format!("{}/api/v1/audit/export?tenant={}", server.base, tenants[0]);
    let body = expect_status(client.get(url).bearer_auth(ADMIN_KEY), 200).await;
    let lines = body.iter().filter(|b| **b == b'\n').count();
    println!(
        "export of one tenant (JSON Lines): {lines} records, {:.0} MB in {:.1} s",
        body.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
}
