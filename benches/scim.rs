//! SCIM hot paths over real HTTP against the release server in its own process, for
//! BENCHMARKS.md (targets in the team's TARGETS.md). Every write is durable before its response.
//!
//! 1. Provision a 500-user organisation: 500 sequential POST /Users, then one POST /Groups with
//!    all 500 as members.
//! 2. POST /Users at concurrency 8.
//! 3. GET /Users?filter=userName eq "…" at concurrency 8 among 10,000+ users (rate and median).
//! 4. Deactivation by PATCH: the response returns after the commit that revoked the sessions.
//! 5. Server memory (RSS) idle, and after 100,000 users.
//!
//! Run with `cargo bench --bench scim`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

mod support;

use support::{Server, create_users, drive, expect_status, send, tenant, user};

async fn provision_organisation(client: &reqwest::Client, server: &Server) {
    let (base, token) = tenant(client, server, "org500").await;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(500);
    for n in 0..500 {
        let request = client
            .post(format!("{base}/Users"))
            .bearer_auth(&token)
            .json(&user(&format!("p{n}@org.example")));
        ids.push(send(request, 201).await["id"].as_str().unwrap().to_owned());
    }
    let users_done = started.elapsed();
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone", "members": members});
    send(client.post(format!("{base}/Groups")).bearer_auth(&token).json(&group), 201).await;
    println!(
        "provision 500 users one by one, then a group of all 500: {:.3} s (users {:.3} s, group {:.3} s)",
        started.elapsed().as_secs_f64(),
        users_done.as_secs_f64(),
        (started.elapsed() - users_done).as_secs_f64()
    );
}

/// A group of 9,500 members created in one POST, then 500 single-member PATCHes growing it to
/// 10,000: each writes one membership, not the group.
async fn large_group(client: &reqwest::Client, base: &str, token: &str, ids: &Arc<Vec<String>>) {
    let members: Vec<Value> = ids[..9_500].iter().map(|id| json!({"value": id})).collect();
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Large", "members": members});
    let started = Instant::now();
    let request =
        client.post(format!("{base}/Groups?excludedAttributes=members")).bearer_auth(token).json(&group);
    let created = send(request, 201).await;
    println!("POST /Groups with 9,500 members: {:.3} s", started.elapsed().as_secs_f64());
    let group_url = format!("{base}/Groups/{}", created["id"].as_str().unwrap());
    let (c, t, ids) = (client.clone(), token.to_owned(), Arc::clone(ids));
    drive("PATCH add one member to a group of 9,500+", 1, 500, move |n| {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": ids[9_500 + n]}]}]});
        let request = c.patch(&group_url).bearer_auth(&t).json(&body);
        async move {
            send(request, 204).await;
        }
    })
    .await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let server = Server::start();
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("server memory idle: {:.1} MB RSS", server.rss_mb());

        provision_organisation(&client, &server).await;

        let (base, token) = tenant(&client, &server, "load").await;
        create_users(&client, &base, &token, "POST /Users", 10_000, "u").await;

        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        drive("GET /Users?filter=userName eq (10,000 users)", 8, 20_000, move |n| {
            let filter = format!("userName eq \"u{}@load.example\"", (n * 7919) % 10_000);
            let request = c.get(format!("{b}/Users")).query(&[("filter", filter)]).bearer_auth(&t);
            async move {
                let body = expect_status(request, 200).await;
                assert!(body.windows(16).any(|w| w == b"\"totalResults\":1"));
            }
        })
        .await;

        let mut ids: Vec<String> = Vec::with_capacity(10_000);
        for page in 0..10 {
            let url = format!("{base}/Users?startIndex={}&count=1000&attributes=id", page * 1000 + 1);
            let list = send(client.get(url).bearer_auth(&token), 200).await;
            ids.extend(
                list["Resources"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()),
            );
        }
        let ids = Arc::new(ids);
        large_group(&client, &base, &token, &ids).await;
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        drive("PATCH deactivate (sessions revoked in the same commit)", 1, 500, move |n| {
            let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": false}}]});
            let request = c.patch(format!("{b}/Users/{}", ids[n])).bearer_auth(&t).json(&body);
            async move {
                expect_status(request, 200).await;
            }
        })
        .await;

        create_users(&client, &base, &token, "POST /Users up to 100,000 users", 89_500, "m").await;
        println!("server memory after 100,000 users: {:.1} MB RSS", server.rss_mb());
    });
}
