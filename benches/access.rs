//! Live re-evaluation of roles, tiers and programs over real HTTP against the release server in
//! its own process, for BENCHMARKS.md. Every change is durable before its response, with the
//! re-evaluated users' access, events and audit records in the same commit.
//!
//! A tenant of 20,000 users; "Sales" (10,000 members) is named by a rule, "Marketing" (10,000
//! others) by none.
//! 1. Saving the policy: every user evaluated, in one commit.
//! 2. PATCH adding one member to the 10,000-member Sales group: only that user is evaluated.
//! 3. The same on Marketing, which no rule names: nobody is evaluated.
//! 4. Renaming Sales (a name the rules read): its 10,000 members are evaluated and rewritten,
//!    nobody else. Renaming Marketing: nobody.
//! 5. An Okta-style move (PATCH out of Sales, PATCH into Engineering): the time until the app's
//!    next token carries the new role.
//! 6. POST /Users at concurrency 8 with and without a policy.
//!
//! Each group change's audit record says how many users were evaluated and changed; the figures
//! printed come from there. Run with `cargo bench --bench access`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

mod support;

use support::{ADMIN_KEY, Server, drive, send, tenant};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn policy() -> Value {
    json!({
        "roles": [{ "name": "sales-rep" }, { "name": "engineer" }, { "name": "viewer" }],
        "tiers": [{ "name": "standard" }, { "name": "enterprise" }],
        "programs": [{ "name": "beta" }],
        "rules": [
            { "id": "sales", "when": { "group": "Sales" }, "grant": { "roles": ["sales-rep"], "tier": "standard" } },
            { "id": "engineering", "when": { "any": [
                { "group": "Engineering" },
                { "attribute": { "name": "department", "eq": "Engineering" } },
            ] }, "grant": { "roles": ["engineer"], "tier": "enterprise", "programs": ["beta"] } },
            { "id": "no-contractors", "when": { "all": [{ "group": "Contractors" }, { "not": { "group": "Sales" } }] }, "grant": {}, "final": true },
        ],
        "default": { "roles": ["viewer"] },
    })
}

struct Org {
    client: reqwest::Client,
    api: String,
    base: String,
    token: String,
    tenant: String,
}

impl Org {
    async fn create_users(&self, label: &str, total: usize, prefix: &'static str) {
        support::create_users(&self.client, &self.base, &self.token, label, total, prefix).await;
    }

    async fn user_ids(&self, total: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(total);
        for page in 0..total.div_ceil(1000) {
            let url = format!("{}/Users?startIndex={}&count=1000&attributes=id", self.base, page * 1000 + 1);
            let list = send(self.client.get(url).bearer_auth(&self.token), 200).await;
            ids.extend(
                list["Resources"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()),
            );
        }
        ids
    }

    async fn create_group(&self, name: &str, members: &[String]) -> String {
        let members: Vec<Value> = members.iter().map(|id| json!({ "value": id })).collect();
        let body = json!({ "schemas": [GROUP], "displayName": name, "members": members });
        let url = format!("{}/Groups?excludedAttributes=members", self.base);
        let created = send(self.client.post(url).bearer_auth(&self.token).json(&body), 201).await;
        created["id"].as_str().unwrap().to_owned()
    }

    async fn patch_group(&self, group: &str, operation: Value) {
        let body = json!({ "schemas": [PATCH_OP], "Operations": [operation] });
        let url = format!("{}/Groups/{group}", self.base);
        send(self.client.patch(url).bearer_auth(&self.token).json(&body), 204).await;
    }

    async fn put_policy(&self, body: &Value) -> Value {
        let url = format!("{}/api/v1/tenants/{}/access-policy", self.api, self.tenant);
        send(self.client.put(url).bearer_auth(ADMIN_KEY).json(body), 200).await
    }

    /// The audit records of `action` after `cursor`, and the new cursor.
    async fn audit_since(&self, cursor: u64, action: &str) -> (Vec<Value>, u64) {
        let (mut items, mut cursor) = (Vec::new(), cursor);
        loop {
            let url = format!("{}/api/v1/audit?action={action}&after={cursor}&limit=500", self.api);
            let page = send(self.client.get(url).bearer_auth(ADMIN_KEY), 200).await;
            let next = page["next_after"].as_u64().unwrap();
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            if next == cursor {
                return (items, cursor);
            }
            cursor = next;
        }
    }

    /// Runs a group change and prints its time and what its audit record says it evaluated.
    async fn timed_group_change(&self, label: &str, cursor: &mut u64, group: &str, operation: Value) {
        let started = Instant::now();
        self.patch_group(group, operation).await;
        let took = started.elapsed();
        let (records, next) = self.audit_since(*cursor, "scim.group.update").await;
        *cursor = next;
        // A change that cannot alter anyone's access evaluates nobody and notes nothing.
        let access = &records.last().unwrap()["detail"]["access"];
        let access = if access.is_null() { "none".to_owned() } else { access.to_string() };
        println!("{label}: {:.3} s; users evaluated/changed: {access}", took.as_secs_f64());
    }
}

fn add_member(member: &str) -> Value {
    json!({ "op": "add", "path": "members", "value": [{ "value": member }] })
}

/// Adds `members` to `group` one PATCH at a time, sequentially, and prints the latencies.
async fn add_one_by_one(org: &Arc<Org>, label: &str, group: &str, members: Vec<String>) {
    let (org, group, members) = (Arc::clone(org), group.to_owned(), Arc::new(members));
    let total = members.len();
    drive(label, 1, total, move |n| {
        let (org, group, member) = (Arc::clone(&org), group.clone(), members[n].clone());
        async move { org.patch_group(&group, add_member(&member)).await }
    })
    .await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let server = Server::start();
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let (base, token) = tenant(&client, &server, "access").await;
        let tenant_id = base.rsplit('/').next().unwrap().to_owned();
        let org = Org { client, api: server.base.clone(), base, token, tenant: tenant_id };

        org.create_users("POST /Users, no policy", 20_000, "a").await;
        let ids = Arc::new(org.user_ids(20_000).await);
        let sales = org.create_group("Sales", &ids[..10_000]).await;
        let marketing = org.create_group("Marketing", &ids[10_000..]).await;
        let engineering = org.create_group("Engineering", &[]).await;
        let (_, mut cursor) = org.audit_since(0, "scim.group.update").await;

        let started = Instant::now();
        let saved = org.put_policy(&policy()).await;
        println!(
            "PUT access-policy over 20,000 users: {:.3} s; {}",
            started.elapsed().as_secs_f64(),
            saved["reevaluated"]
        );
        let started = Instant::now();
        let again = org.put_policy(&policy()).await;
        println!(
            "PUT the same policy again: {:.3} s; {}",
            started.elapsed().as_secs_f64(),
            again["reevaluated"]
        );

        org.timed_group_change(
            "PATCH add one member to Sales (10,000 members, named by a rule)",
            &mut cursor,
            &sales,
            add_member(&ids[10_000]),
        )
        .await;
        let o = Arc::new(org);
        let named = "PATCH add one member to Sales (10,000+ members, named by a rule)";
        add_one_by_one(&o, named, &sales, ids[10_001..10_301].to_vec()).await;
        let unnamed = "PATCH add one member to Marketing (10,000+ members, named by no rule)";
        add_one_by_one(&o, unnamed, &marketing, ids[..300].to_vec()).await;
        let (_, skipped) = o.audit_since(cursor, "scim.group.update").await;
        cursor = skipped;

        let rename = |name: &str| json!({ "op": "replace", "path": "displayName", "value": name });
        o.timed_group_change(
            "rename Sales (10,301 members) to a name no rule reads",
            &mut cursor,
            &sales,
            rename("Sales (old)"),
        )
        .await;
        o.timed_group_change("rename it back to Sales", &mut cursor, &sales, rename("Sales")).await;
        o.timed_group_change(
            "rename Marketing (10,300 members), named by no rule",
            &mut cursor,
            &marketing,
            rename("Marketing 2"),
        )
        .await;

        // Okta moves a person: out of Sales, into Engineering. The change is in their next token.
        let (org2, s2, e2, i2) = (Arc::clone(&o), sales.clone(), engineering.clone(), Arc::clone(&ids));
        drive(
            "Okta-style move: PATCH out of Sales, PATCH into Engineering (both durable)",
            1,
            200,
            move |n| {
                let (org, sales, engineering, member) =
                    (Arc::clone(&org2), s2.clone(), e2.clone(), i2[n].clone());
                async move {
                    let remove = json!({ "op": "remove", "path": format!("members[value eq \"{member}\"]") });
                    org.patch_group(&sales, remove).await;
                    org.patch_group(&engineering, add_member(&member)).await;
                }
            },
        )
        .await;

        o.create_users("POST /Users, with the policy (each new user evaluated)", 5_000, "p").await;
        let (plain_base, plain_token) = tenant(&o.client, &server, "plain").await;
        let plain = Org {
            client: o.client.clone(),
            api: server.base.clone(),
            tenant: plain_base.rsplit('/').next().unwrap().to_owned(),
            base: plain_base,
            token: plain_token,
        };
        plain.create_users("POST /Users, no policy (another tenant)", 5_000, "q").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        println!("server memory: {:.1} MB RSS", server.rss_mb());
    });
}
