//! The audit trail: what the features record, searched through the index (filters, cursor),
//! exported and checked by an independent reader, verified by hash chain (and tampering found),
//! rebuilt from the log, and complete after a kill -9 in the middle of a write burst.

use std::{
    collections::{BTreeSet, HashSet},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    provider::{self, App, Browser, callback_params, tenant_with_password_user},
    scim::{PATCH_OP, Scim, ok, scim_error, user},
    server::{ADMIN_KEY, Server, command, expect_error},
};

/// What a restart needs to keep using the same admin key.
const KEY: &[(&str, &str)] = &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)];

/// Waits until the index has caught up with the log.
fn wait_indexed(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = ok(server.get("/api/v1/audit/status"), 200);
        if status["index_lag"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the index stayed behind: {status}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn search(server: &Server, query: &str) -> Value {
    wait_indexed(server);
    ok(server.get(&format!("/api/v1/audit/search?{query}")), 200)
}

/// The target labels of every record `query` finds, following the cursor to the last page.
fn targets_of_every_page(server: &Server, query: &str) -> Vec<String> {
    let (mut labels, mut next) = (Vec::new(), query.to_owned());
    loop {
        let page = search(server, &next);
        let items = page["items"].as_array().unwrap();
        labels.extend(items.iter().map(|r| r["target"]["label"].as_str().unwrap().to_owned()));
        match page["next_before"].as_u64() {
            Some(before) => next = format!("{query}&before={before}"),
            None => return labels,
        }
    }
}

fn actions(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap().to_owned()).collect()
}

/// A tenant provisioned by "Okta": Ada and Grace, the Engineering group with Ada, then Ada
/// moved out of it and deactivated, and one refused request.
fn provisioned(server: &Server) -> (Scim, Value, String) {
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let scim = Scim::of_tenant(server, &tenant);
    let ada = scim.create_user("ada@acme.test");
    scim.create_user("grace@acme.test");
    let ada_id = ada["id"].as_str().unwrap().to_owned();
    let group = scim.create_group("Engineering", &[&ada_id]);
    let group_path = format!("/Groups/{}", group["id"].as_str().unwrap());
    let remove = json!([{ "op": "remove", "path": format!("members[value eq \"{ada_id}\"]") }]);
    ok(scim.patch(&group_path, json!({ "schemas": [PATCH_OP], "Operations": remove })), 204);
    let deactivate =
        json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "value": { "active": false } }] });
    let as_okta = scim
        .request(Method::PATCH, &format!("/Users/{ada_id}"))
        .header("user-agent", "Okta SCIM Client 1.0.0");
    ok(as_okta.json(&deactivate).send().unwrap(), 200);
    scim_error(scim.post("/Users", user("ada@acme.test")), 409, Some("uniqueness"));
    (scim, tenant, ada_id)
}

#[test]
fn one_employees_history_comes_back_newest_first_with_who_what_and_from_where() {
    let server = Server::start();
    let (_scim, tenant, ada) = provisioned(&server);
    let tenant_id = tenant["id"].as_str().unwrap();

    let history = search(&server, "tenant=acme&user=ada@acme.test");
    assert_eq!(
        actions(&history),
        ["scim.user.update", "scim.group.member_remove", "scim.group.member_add", "scim.user.create",]
            .map(String::from),
        "{history:#}"
    );
    let items = history["items"].as_array().unwrap();
    let seqs: Vec<u64> = items.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
    for record in items {
        assert_eq!(record["tenant"], tenant_id);
        assert_eq!(record["actor"]["kind"], "scim_token");
        assert_eq!(record["outcome"], "success");
        assert_eq!(record["source_ip"], "127.0.0.1");
        assert!(record["request_id"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(record["hash"].as_str().unwrap().len(), 64);
    }
    assert_eq!(items[1]["detail"]["group"]["display_name"], "Engineering");
    assert_eq!(items[0]["target"]["id"], ada.as_str());
    assert_eq!(items[0]["user_agent"], "Okta SCIM Client 1.0.0");
    // The same history by her id.
    assert_eq!(actions(&search(&server, &format!("user={ada}"))), actions(&history));

    // The refused duplicate is recorded with the check that refused it.
    let refused = search(&server, "tenant=acme&outcome=failure");
    let record = &refused["items"][0];
    assert_eq!(record["action"], "scim.user.create");
    assert_eq!(record["reason"], "uniqueness");
    assert_eq!(record["actor"]["kind"], "scim_token");
    assert_eq!(record["detail"]["status"], 409);

    // A request with a wrong token is recorded against the tenant, by nobody in particular.
    let stranger = Scim::of_tenant(&server, &tenant).with_token("pcst_not-a-real-token");
    scim_error(stranger.get("/Users"), 401, None);
    let anonymous = search(&server, "tenant=acme&actor=anonymous");
    assert_eq!(anonymous["items"][0]["action"], "scim.user.read");
    assert_eq!(anonymous["items"][0]["reason"], "401");

    // And nothing of it was removed.
    let verified: Value =
        ok(server.admin(Method::POST, "/api/v1/audit/verify?tenant=acme").send().unwrap(), 200);
    assert_eq!(verified["intact"], true, "{verified:#}");
}

#[test]
fn sign_ins_tokens_and_ended_sessions_are_in_the_persons_history() {
    let server = Server::start();
    let password = "correct horse battery staple";
    let (tenant, ada) = tenant_with_password_user(&server, password);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&["email"]);
    let refused =
        provider::sign_in(&server, &mut Browser::new(), &pending.url, "ada@acme.test", "not her password");
    assert!(refused.location.is_none(), "no way back to the app");
    let pending = app.authorize(&["email"]);
    let back = provider::sign_in(&server, &mut Browser::new(), &pending.url, "ada@acme.test", password);
    let params = callback_params(back.location.as_deref().unwrap());
    let tokens = app.exchange(&params["code"], pending.verifier);
    let access = openidconnect::OAuth2TokenResponse::access_token(&tokens).secret().clone();
    assert_eq!(app.call(&server, "/oauth2/revoke", &[("token", access.as_str())]).status(), 200);
    ok(server.delete(&format!("/api/v1/tenants/{tenant}/users/{ada}/sessions")), 200);

    let history = search(&server, &format!("tenant={tenant}&user=ada@acme.test"));
    let actions = actions(&history);
    let position = |action: &str| {
        actions.iter().position(|a| a == action).unwrap_or_else(|| panic!("no {action} in {actions:?}"))
    };
    assert!(position("admin.session.revoke_user") < position("oauth.token.revoked"));
    assert!(position("oauth.token.revoked") < position("oauth.token.issued"));
    assert!(position("oauth.token.issued") < position("signin.authorize"));
    assert!(position("signin.authorize") < position("signin.password.failed"));
    let record = |action: &str| history["items"][position(action)].clone();
    let failed = record("signin.password.failed");
    assert_eq!((&failed["outcome"], &failed["reason"]), (&json!("failure"), &json!("wrong_password")));
    assert_eq!(failed["source_ip"], "127.0.0.1");
    assert_eq!(record("signin.authorize")["actor"]["kind"], "user");
    assert_eq!(record("oauth.token.issued")["actor"]["id"], app.client_id.as_str());
    assert_eq!(record("admin.session.revoke_user")["detail"]["ended"], 1);
    let revoked = record("oauth.token.revoked");
    assert_eq!(
        (&revoked["actor"]["kind"], &revoked["detail"]["token_type"]),
        (&json!("oauth_client"), &json!("access_token"))
    );
    assert!(!history.to_string().contains(&access), "no token in the trail");
}

#[test]
fn search_filters_and_pages_with_a_cursor() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let scim = Scim::of_tenant(&server, &tenant);
    for n in 0..25 {
        scim.create_user(&format!("user{n:02}@acme.test"));
    }
    let seen = targets_of_every_page(&server, "tenant=acme&action=scim.user.create&limit=10");
    let expected: Vec<String> = (0..25).rev().map(|n| format!("user{n:02}@acme.test")).collect();
    assert_eq!(seen, expected, "every record once, newest first");

    // A dotted prefix finds the whole family; free text finds words in the details.
    assert_eq!(
        search(&server, "tenant=acme&action=scim.user&limit=500")["items"].as_array().unwrap().len(),
        25
    );
    assert!(
        search(&server, "tenant=acme&action=scim.use")["items"].as_array().unwrap().is_empty(),
        "whole words only"
    );
    let found = search(&server, "q=user07");
    assert!(actions(&found).iter().all(|a| a.starts_with("scim.user.")), "{found:#}");
    assert!(!found["items"].as_array().unwrap().is_empty());
    // Time ranges: everything is after an hour ago, nothing before it.
    let hour_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(
        !search(&server, &format!("tenant=acme&since={hour_ago}"))["items"].as_array().unwrap().is_empty()
    );
    assert!(
        search(&server, &format!("tenant=acme&until={hour_ago}"))["items"].as_array().unwrap().is_empty()
    );
    // The operator's own changes, by actor kind.
    assert!(actions(&search(&server, "actor=admin_key")).contains(&"admin.scim_token.create".to_owned()));

    // Bad filters are refused in the API's error format.
    let refused = |query: &str, status: u16, code: &str| {
        expect_error(server.get(&format!("/api/v1/audit/search?{query}")), status, code)
    };
    assert_eq!(refused("outcome=maybe", 400, "invalid_value")["field"], "outcome");
    assert_eq!(refused("since=yesterday", 400, "invalid_value")["field"], "since");
    assert_eq!(refused("q=%22unclosed", 400, "invalid_value")["field"], "q");
    assert_eq!(refused("limit=0", 400, "invalid_value")["field"], "limit");
    assert_eq!(refused(&format!("q={}", "a".repeat(501)), 400, "invalid_value")["field"], "q");
    refused("colour=blue", 400, "malformed_request");
    refused("tenant=nobody", 404, "not_found");
    expect_error(
        server.anonymous(Method::GET, "/api/v1/audit/search").send().unwrap(),
        401,
        "unauthenticated",
    );
}

#[test]
fn one_record_by_id_or_sequence() {
    let server = Server::start();
    provisioned(&server);
    let newest = &search(&server, "limit=1")["items"][0];
    let by_id: Value =
        ok(server.get(&format!("/api/v1/audit/records/{}", newest["id"].as_str().unwrap())), 200);
    let by_seq: Value = ok(server.get(&format!("/api/v1/audit/records/{}", newest["seq"])), 200);
    assert_eq!(&by_id, newest);
    assert_eq!(by_seq, by_id);
    expect_error(server.get("/api/v1/audit/records/999999"), 404, "not_found");
    expect_error(server.get("/api/v1/audit/records/0190aaaa-0000-7000-8000-000000000000"), 404, "not_found");
}

/// An independent reader of the export: Python's hashlib and json recompute every record's hash
/// from the line it was exported as, and follow each tenant's chain from line to line.
const VERIFY_EXPORT: &str = r#"
import hashlib, json, sys
last = {}
count = 0
for line in sys.stdin:
    record = json.loads(line)
    claimed = record.pop("hash")
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == claimed, record["seq"]
    chain = record["tenant"] or "instance"
    if chain in last:
        assert record["prev_hash"] == last[chain], ("broken chain at", record["seq"])
    last[chain] = claimed
    count += 1
print(count)
"#;

fn python(script: &str, input: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn exports_stream_every_record_and_an_independent_reader_verifies_them() {
    let server = Server::start();
    provisioned(&server);
    let other = server.create_tenant("globex", &["globex.test"]);
    Scim::of_tenant(&server, &other).create_user("hank@globex.test");

    let all = server.get("/api/v1/audit/export");
    assert_eq!(all.status(), 200);
    assert_eq!(all.headers()["content-type"], "application/x-ndjson");
    let all = all.bytes().unwrap();
    let status: Value = ok(server.get("/api/v1/audit/status"), 200);
    assert_eq!(python(VERIFY_EXPORT, &all), status["last_seq"].to_string(), "every record, each verified");

    let acme = server.get("/api/v1/audit/export?tenant=acme").bytes().unwrap();
    let lines: Vec<Value> =
        String::from_utf8(acme.to_vec()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().all(|r| r["tenant"] == lines[0]["tenant"]));
    python(VERIFY_EXPORT, &acme);

    let csv = server.get("/api/v1/audit/export?tenant=acme&format=csv");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let rows = python(
        "import csv, sys\nrows = list(csv.DictReader(sys.stdin))\nassert all(len(r['hash']) == 64 for r in rows)\nprint(len(rows))",
        &csv.bytes().unwrap(),
    );
    assert_eq!(rows, (lines.len() + 1).to_string(), "and the record of the CSV export itself");

    // Who took a copy of the trail is part of the trail.
    let exports = search(&server, "action=admin.audit.export");
    assert_eq!(actions(&exports).len(), 3, "{exports:#}");
    assert_eq!(exports["items"][0]["detail"]["format"], "csv");
    assert_eq!(exports["items"][0]["tenant"], lines[0]["tenant"]);

    let future = "2999-01-01T00:00:00Z";
    assert!(server.get(&format!("/api/v1/audit/export?since={future}")).bytes().unwrap().is_empty());
    expect_error(server.get("/api/v1/audit/export?format=xml"), 400, "invalid_value");
}

fn run_cli(server_data: &std::path::Path, args: &[&str]) -> std::process::Output {
    command().args(args).arg("--data-dir").arg(server_data).output().unwrap()
}

#[test]
fn verify_finds_a_record_edited_or_removed_behind_the_servers_back() {
    let server = Server::start();
    provisioned(&server);
    let data = server.data();
    let mut server = server;
    server.send_sigterm();
    assert!(server.wait_exit().success());
    drop(server);

    let clean = run_cli(data.path(), &["audit", "verify"]);
    let said = String::from_utf8_lossy(&clean.stdout).into_owned();
    assert!(clean.status.success(), "{said}");
    assert!(said.contains("The audit log verifies"), "{said}");

    // Someone with the database file rewrites a name in the record of Grace's creation.
    let file = data.path().join("portcullis.redb");
    const LOG: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit_log");
    {
        use redb::ReadableTable;
        let db = redb::Database::open(&file).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut log = tx.open_table(LOG).unwrap();
            let (seq, edited) = log
                .iter()
                .unwrap()
                .map(|entry| entry.unwrap())
                .find_map(|(key, value)| {
                    let bytes = value.value().to_vec();
                    let at = bytes.windows(15).position(|w| w == b"grace@acme.test")?;
                    let mut edited = bytes.clone();
                    edited[at..at + 15].copy_from_slice(b"mallory@acme.te");
                    Some((key.value(), edited))
                })
                .unwrap();
            log.insert(seq, edited.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let tampered = run_cli(data.path(), &["audit", "verify"]);
    let said = String::from_utf8_lossy(&tampered.stdout).into_owned();
    assert_eq!(tampered.status.code(), Some(1), "{said}");
    assert!(said.contains("BROKEN"), "{said}");
    assert!(
        said.contains("does not follow the record before it") || said.contains("does not end at its head"),
        "{said}"
    );
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("does not verify"));

    // The server says so too.
    let server = Server::start_with(data, KEY);
    let report: Value = ok(server.admin(Method::POST, "/api/v1/audit/verify").send().unwrap(), 200);
    assert_eq!(report["intact"], false, "{report:#}");
}

fn queries(server: &Server) -> Vec<Value> {
    [
        "tenant=acme",
        "user=ada@acme.test&tenant=acme",
        "outcome=failure",
        "q=engineering",
        "action=admin",
        "limit=3",
    ]
    .iter()
    .map(|q| search(server, q))
    .map(|mut page| {
        page.as_object_mut().unwrap().remove("indexed_through");
        page
    })
    .collect()
}

#[test]
fn the_index_is_derived_rebuilt_by_reindex_and_by_a_start_without_it() {
    let server = Server::start();
    provisioned(&server);
    let live = queries(&server);
    let data = server.data();
    let mut server = server;
    server.send_sigterm();
    assert!(server.wait_exit().success());
    drop(server);

    let reindexed = run_cli(data.path(), &["audit", "reindex"]);
    assert!(reindexed.status.success(), "{}", String::from_utf8_lossy(&reindexed.stderr));
    assert!(String::from_utf8_lossy(&reindexed.stdout).starts_with("Indexed "));
    let server = Server::start_with(Arc::clone(&data), KEY);
    assert_eq!(queries(&server), live, "the rebuilt index answers as the live one did");
    let mut server = server;
    server.send_sigterm();
    assert!(server.wait_exit().success());
    drop(server);

    std::fs::remove_dir_all(data.path().join("audit")).unwrap();
    let server = Server::start_with(data, KEY);
    assert_eq!(queries(&server), live, "a start without the index builds it");

    // A running server rebuilds on request, and records who asked.
    let asked = server.admin(Method::POST, "/api/v1/audit/reindex").send().unwrap();
    assert_eq!(asked.status(), 202);
    let rebuilt = queries(&server);
    assert!(server.stderr().contains("rebuilding the audit index from the log"));
    assert_eq!(rebuilt[..4], live[..4], "the tenant's records, as before");
    let operators = rebuilt[4]["items"].as_array().unwrap();
    assert_eq!(operators[0]["action"], "admin.audit.reindex", "the newest operator action");
    assert_eq!(operators[1..], live[4]["items"].as_array().unwrap()[..]);
}

#[test]
fn a_kill_during_a_write_burst_loses_no_acknowledged_record_and_the_index_catches_up() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let scim = Arc::new(Scim::of_tenant(&server, &tenant));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (scim, acknowledged) = (Arc::clone(&scim), Arc::clone(&acknowledged));
            thread::spawn(move || {
                for n in 0.. {
                    let name = format!("w{w}-{n}@acme.test");
                    match scim.request(Method::POST, "/Users").json(&user(&name)).send() {
                        Ok(response) if response.status() == 201 => {
                            acknowledged.lock().unwrap().insert(name);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(1500));
    let data = server.kill9();
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 20, "the burst got going: {}", acknowledged.len());

    let server = Server::start_with(data, KEY);
    let recorded: HashSet<String> =
        targets_of_every_page(&server, "tenant=acme&action=scim.user.create&outcome=success&limit=500")
            .into_iter()
            .collect();
    let missing: Vec<&String> = acknowledged.iter().filter(|name| !recorded.contains(*name)).collect();
    assert!(missing.is_empty(), "acknowledged but not in the trail: {missing:?}");
    let verified: Value = ok(server.admin(Method::POST, "/api/v1/audit/verify").send().unwrap(), 200);
    assert_eq!(verified["intact"], true, "{verified:#}");
}

#[test]
fn retention_is_set_per_tenant_checked_and_audited() {
    let server = Server::start();
    server.create_tenant("acme", &["acme.test"]);
    let path = "/api/v1/tenants/acme/audit-retention";
    assert_eq!(ok(server.get(path), 200)["days"], Value::Null);
    let set = |body: Value| server.admin(Method::PUT, path).json(&body).send().unwrap();
    assert_eq!(ok(set(json!({ "days": 365 })), 200)["days"], 365);
    assert_eq!(ok(server.get(path), 200)["days"], 365);
    assert_eq!(expect_error(set(json!({ "days": 0 })), 400, "invalid_value")["field"], "days");
    expect_error(set(json!({ "weeks": 3 })), 400, "malformed_request");
    let changes = search(&server, "action=admin.audit_retention.update");
    assert_eq!(
        changes["items"][0]["detail"],
        json!({ "before": { "days": null }, "after": { "days": 365 } })
    );
    // Fresh records are inside any retention period: nothing went.
    assert!(search(&server, "action=audit.retention.prune")["items"].as_array().unwrap().is_empty());
}

#[test]
fn the_first_start_records_the_keys_it_made_without_them() {
    let server = Server::start();
    let made = server.audit("instance_keys.create");
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["actor"], json!({ "kind": "system", "id": "init", "label": null }));
    let purposes: BTreeSet<&str> = made[0]["detail"]["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(purposes, BTreeSet::from(["link_signing", "token_signing"]));
    assert!(!made[0].to_string().contains("PRIVATE KEY"));
}

#[test]
fn a_flood_of_unauthenticated_refusals_is_counted_not_stored() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let stranger = Scim::of_tenant(&server, &tenant).with_token("pcst_not-a-real-token");
    for _ in 0..250 {
        scim_error(stranger.get("/Users"), 401, None);
    }
    // Long enough for the address's budget to allow one more record, which reports the drops.
    thread::sleep(Duration::from_millis(1100));
    scim_error(stranger.get("/Users"), 401, None);

    let page = search(&server, "tenant=acme&actor=anonymous&limit=500");
    let records = page["items"].as_array().unwrap();
    assert!(records.len() < 251, "not every refusal was stored: {}", records.len());
    let dropped: u64 = records.iter().filter_map(|r| r["detail"]["suppressed_before"].as_u64()).sum();
    assert!(dropped > 0);
    assert_eq!(records.len() as u64 + dropped, 251, "every refusal is stored or counted");
}
