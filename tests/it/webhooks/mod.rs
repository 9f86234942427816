//! Webhooks and the events feed: deliveries verified by the Standard Webhooks reference library,
//! retries after 500s and timeouts, per-resource order, failure and replay, pausing, a kill -9 in
//! the middle of a backlog, the feed's cursor and filters, and the URL allow list.

mod receiver;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    provider::{self, App, Browser, tenant_with_password_user},
    scim::{PATCH_OP, Scim, ok},
    server::{ADMIN_KEY, Server, expect_error},
};
use receiver::{Receiver, Reply, verify};

/// Fast retries, a short timeout, and the loopback receiver allowed.
const FAST: &[(&str, &str)] = &[
    ("PORTCULLIS_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1"),
    ("PORTCULLIS_WEBHOOK_RETRY_INITIAL_MS", "200"),
    ("PORTCULLIS_WEBHOOK_RETRY_MAX_SECS", "1"),
    ("PORTCULLIS_WEBHOOK_TIMEOUT_SECS", "1"),
];

fn server(more: &[(&str, &str)]) -> Server {
    let mut settings = FAST.to_vec();
    settings.extend_from_slice(more);
    Server::start_with_settings(&settings)
}

/// Creates an endpoint; returns its id and signing secret.
fn endpoint(server: &Server, receiver: &Receiver, settings: Value) -> (String, String) {
    let mut body = json!({ "url": receiver.url, "description": "the app" });
    body.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
    let created = ok(server.post("/api/v1/webhooks", body), 201);
    (created["id"].as_str().unwrap().to_owned(), created["secret"].as_str().unwrap().to_owned())
}

fn deactivate(scim: &Scim, id: &str) {
    let body =
        json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "value": { "active": false } }] });
    ok(scim.patch(&format!("/Users/{id}"), body), 200);
}

fn rename(scim: &Scim, id: &str, display_name: &str) {
    let body = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "displayName", "value": display_name }] });
    ok(scim.patch(&format!("/Users/{id}"), body), 200);
}

fn id_of(user: &Value) -> String {
    user["id"].as_str().unwrap().to_owned()
}

/// The endpoint's delivery of one event, with its attempts.
fn delivery(server: &Server, endpoint: &str, event: &str) -> Value {
    ok(server.get(&format!("/api/v1/webhooks/{endpoint}/deliveries/{event}")), 200)
}

fn wait_for(server: &Server, what: &str, done: impl Fn(&Server) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done(server) {
        assert!(std::time::Instant::now() < deadline, "waited a minute for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn deliveries_are_signed_as_the_standard_webhooks_library_verifies() {
    let server = server(&[]);
    let receiver = Receiver::start();
    let (endpoint_id, secret) = endpoint(&server, &receiver, json!({}));
    assert!(secret.starts_with("whsec_"));
    let shown = ok(server.get(&format!("/api/v1/webhooks/{endpoint_id}")), 200);
    assert!(shown.get("secret").is_none() && !shown.to_string().contains(&secret[6..]), "shown once");

    let scim = Scim::new(&server, "acme");
    let ada = id_of(&scim.create_user("ada@acme.test"));
    rename(&scim, &ada, "Ada King");
    deactivate(&scim, &ada);
    let delivered = receiver.wait_delivered(3);
    let kinds: Vec<&str> = delivered.iter().map(|r| r.kind()).collect();
    assert_eq!(kinds, ["user.created", "user.updated", "user.deactivated"], "one resource, in order");

    let requests: Vec<Value> = delivered.iter().map(|r| r.as_verifiable()).collect();
    assert_eq!(verify(&secret, &requests), ["ok", "ok", "ok"]);
    let mut tampered = requests[2].clone();
    tampered["body"] = json!(requests[2]["body"].as_str().unwrap().replace("false", "true"));
    let mut replayed_elsewhere = requests[0].clone();
    replayed_elsewhere["headers"]["webhook-id"] = requests[1]["headers"]["webhook-id"].clone();
    let verdicts = verify(&secret, &[tampered, replayed_elsewhere]);
    assert!(verdicts.iter().all(|v| v.starts_with("refused")), "{verdicts:?}");
    let other = ok(server.post("/api/v1/webhooks", json!({ "url": receiver.url })), 201);
    assert!(verify(other["secret"].as_str().unwrap(), &requests[..1])[0].starts_with("refused"));

    // The body: the event as the feed serves it, the resource after the change.
    let deactivated = &delivered[2].payload;
    assert_eq!(deactivated["id"].as_str().unwrap(), delivered[2].id, "webhook-id is the event id");
    assert_eq!(deactivated["tenant_id"], json!(scim.tenant_id));
    assert_eq!(deactivated["subject"]["id"], json!(ada));
    assert_eq!(deactivated["data"]["user"]["active"], json!(false));
    assert_eq!(delivered[1].payload["data"]["user"]["display_name"], "Ada King");
    assert_eq!(
        delivered[1].payload["data"]["previous"],
        json!({ "display_name": "Ada Lovelace" }),
        "the value before"
    );
    let fed = ok(server.get(&format!("/api/v1/events/{}", delivered[2].id)), 200);
    assert_eq!(&fed, deactivated);

    // The endpoint's log shows each delivery and what the receiver answered.
    let shown = delivery(&server, &endpoint_id, &delivered[2].id);
    assert_eq!(shown["state"], "delivered");
    assert_eq!(shown["attempts"][0]["status"], 204);
    let audit = server.audit("admin.webhook.endpoint.create");
    assert_eq!(audit.len(), 2);
    assert!(!audit[0].to_string().contains(&secret[6..]), "no secret in the trail");
}

#[test]
fn deactivating_a_signed_in_user_announces_the_deactivation_and_the_ended_session() {
    let server = server(&[]);
    let receiver = Receiver::start();
    let (tenant, ada) = tenant_with_password_user(&server, "correct horse battery staple");
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&["email"]);
    let back = provider::sign_in(
        &server,
        &mut Browser::new(),
        &pending.url,
        "ada@acme.test",
        "correct horse battery staple",
    );
    assert!(back.location.is_some(), "signed in");
    let (_, secret) =
        endpoint(&server, &receiver, json!({ "event_types": ["user.deactivated", "session.*"] }));

    let scim = Scim::of_tenant(&server, &ok(server.get(&format!("/api/v1/tenants/{tenant}")), 200));
    deactivate(&scim, &ada);
    let delivered = receiver.wait_delivered(2);
    let mut kinds: Vec<&str> = delivered.iter().map(|r| r.kind()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["session.revoked", "user.deactivated"]);
    let session = delivered.iter().find(|r| r.kind() == "session.revoked").unwrap();
    assert_eq!(session.payload["data"]["session"]["user"], json!(ada));
    assert_eq!(session.payload["data"]["session"]["reason"], "user_deactivated");
    let requests: Vec<Value> = delivered.iter().map(|r| r.as_verifiable()).collect();
    assert_eq!(verify(&secret, &requests), ["ok", "ok"]);
}

#[test]
fn an_operator_checks_a_receiver_with_a_signed_test_event() {
    let server = server(&[]);
    let receiver = Receiver::start();
    let (endpoint_id, secret) = endpoint(&server, &receiver, json!({}));
    let test = |id: &str| ok(server.post(&format!("/api/v1/webhooks/{id}/test"), json!({})), 200);

    let passed = test(&endpoint_id);
    assert_eq!((passed["delivered"].clone(), passed["attempt"]["status"].clone()), (json!(true), json!(204)));
    let received = receiver.wait_delivered(1);
    assert_eq!(received[0].kind(), "webhook.test");
    assert_eq!(verify(&secret, &[received[0].as_verifiable()]), ["ok"]);
    let feed = ok(server.get("/api/v1/events"), 200);
    assert!(feed["items"].as_array().unwrap().is_empty(), "a test is not an event of the feed");

    receiver.answer(|_, _| Reply::Status(500));
    let refused = test(&endpoint_id);
    assert_eq!(
        (refused["delivered"].clone(), refused["attempt"]["status"].clone()),
        (json!(false), json!(500))
    );
    let closed = ok(server.post("/api/v1/webhooks", json!({ "url": "http://127.0.0.1:9/hook" })), 201);
    let unreachable = test(closed["id"].as_str().unwrap());
    assert_eq!(unreachable["delivered"], false);
    assert!(unreachable["attempt"]["error"].as_str().unwrap().starts_with("cannot connect"), "{unreachable}");
    assert_eq!(server.audit("admin.webhook.endpoint.test").len(), 3);
}

#[test]
fn a_rotated_secret_signs_beside_the_new_one_for_the_overlap() {
    let server = server(&[]);
    let receiver = Receiver::start();
    let (endpoint_id, old) = endpoint(&server, &receiver, json!({}));
    let rotated = ok(
        server.post(&format!("/api/v1/webhooks/{endpoint_id}/secret"), json!({ "overlap_hours": 1 })),
        200,
    );
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(rotated["secrets"].as_array().unwrap().len(), 2);

    let scim = Scim::new(&server, "acme");
    scim.create_user("ada@acme.test");
    let first = receiver.wait_delivered(1);
    assert_eq!(first[0].signature.split(' ').count(), 2);
    let request = [first[0].as_verifiable()];
    assert_eq!((verify(&old, &request), verify(&new, &request)), (vec!["ok".into()], vec!["ok".into()]));

    // No overlap: the replaced secret stops signing at once.
    let newest = ok(
        server.post(&format!("/api/v1/webhooks/{endpoint_id}/secret"), json!({ "overlap_hours": 0 })),
        200,
    );
    let newest = newest["secret"].as_str().unwrap().to_owned();
    scim.create_user("bob@acme.test");
    let second = [receiver.wait_delivered(2)[1].as_verifiable()];
    assert_eq!(verify(&newest, &second), ["ok"]);
    assert!(verify(&new, &second)[0].starts_with("refused"));
    assert_eq!(server.audit("admin.webhook.endpoint.secret_rotate").len(), 2);
}

#[test]
fn failures_and_timeouts_are_retried_and_each_resource_stays_in_order() {
    let server = server(&[]);
    let receiver = Receiver::start();
    // Ada's first event fails twice with 500 and once with a timeout; Bob's go through at once.
    receiver.answer(|event, attempt| {
        let ada_created = event["type"] == "user.created" && event["subject"]["label"] == "ada@acme.test";
        match (ada_created, attempt) {
            (true, 1 | 2) => Reply::Status(500),
            (true, 3) => Reply::Hang,
            _ => Reply::Status(200),
        }
    });
    let (endpoint_id, _) = endpoint(&server, &receiver, json!({ "event_types": ["user.*"] }));
    let scim = Scim::new(&server, "acme");
    let ada = id_of(&scim.create_user("ada@acme.test"));
    rename(&scim, &ada, "Ada L.");
    let bob = id_of(&scim.create_user("bob@acme.test"));
    rename(&scim, &bob, "Bob B.");
    let delivered = receiver.wait_delivered(4);

    let order = |user: &str| -> Vec<String> {
        delivered.iter().filter(|r| r.payload["subject"]["id"] == user).map(|r| r.kind().to_owned()).collect()
    };
    assert_eq!(order(&ada), ["user.created", "user.updated"]);
    assert_eq!(order(&bob), ["user.created", "user.updated"]);
    let position = |user: &str, kind: &str| {
        delivered.iter().position(|r| r.payload["subject"]["id"] == user && r.kind() == kind).unwrap()
    };
    assert!(position(&bob, "user.updated") < position(&ada, "user.created"), "Bob did not wait for Ada");

    let received = receiver.received();
    let ada_created: Vec<_> =
        received.iter().filter(|r| r.id == delivered[position(&ada, "user.created")].id).collect();
    assert_eq!(ada_created.len(), 4, "three failures, then the delivery");
    assert!(ada_created.iter().all(|r| r.body == ada_created[0].body), "the same event every time");
    let log = delivery(&server, &endpoint_id, &ada_created[0].id);
    let attempts = log["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    assert_eq!((attempts[0]["status"].clone(), attempts[1]["status"].clone()), (json!(500), json!(500)));
    assert_eq!(attempts[2]["error"], "timed out");
    assert_eq!((log["state"].clone(), attempts[3]["status"].clone()), (json!("delivered"), json!(200)));
}

#[test]
fn a_delivery_failing_past_the_retry_window_is_marked_failed_and_replayed_with_its_id() {
    let server = server(&[("PORTCULLIS_WEBHOOK_RETRY_WINDOW_SECS", "1")]);
    let receiver = Receiver::start();
    receiver.answer(|_, _| Reply::Status(503));
    let (endpoint_id, secret) = endpoint(&server, &receiver, json!({}));
    let scim = Scim::new(&server, "acme");
    let ada = id_of(&scim.create_user("ada@acme.test"));
    deactivate(&scim, &ada);

    let failed_page = |server: &Server| {
        ok(server.get(&format!("/api/v1/webhooks/{endpoint_id}/deliveries?state=failed")), 200)
    };
    wait_for(&server, "both deliveries to fail", |server| {
        failed_page(server)["items"].as_array().unwrap().len() == 2
    });
    let failed = failed_page(&server);
    let event = failed["items"][1]["event_id"].as_str().unwrap().to_owned();
    assert_eq!(failed["items"][1]["type"], "user.created", "newest first");
    assert!(failed["items"][1]["attempt_count"].as_u64().unwrap() >= 2);

    receiver.answer(|_, _| Reply::Status(200));
    let replayed =
        ok(server.post(&format!("/api/v1/webhooks/{endpoint_id}/deliveries/{event}/replay"), json!({})), 202);
    assert_eq!(replayed["state"], "pending");
    let delivered = receiver.wait_delivered(1);
    assert_eq!(delivered[0].id, event, "a replay keeps the event's id");
    assert_eq!(verify(&secret, &[delivered[0].as_verifiable()]), ["ok"]);
    let log = delivery(&server, &endpoint_id, &event);
    assert_eq!(
        (log["state"].clone(), log["attempts"].as_array().unwrap().last().unwrap()["replay"].clone()),
        (json!("delivered"), json!(true))
    );

    let bulk = ok(server.post(&format!("/api/v1/webhooks/{endpoint_id}/replay-failed"), json!({})), 202);
    assert_eq!(bulk["replayed"], 1);
    let both = receiver.wait_delivered(2);
    assert_eq!(both[1].kind(), "user.deactivated");
    assert_eq!(server.audit("admin.webhook.delivery.replay").len(), 1);
    expect_error(
        server.post(&format!("/api/v1/webhooks/{endpoint_id}/deliveries/999999/replay"), json!({})),
        404,
        "not_found",
    );
}

#[test]
fn an_endpoint_failing_for_long_is_paused_and_catches_up_in_order_when_resumed() {
    let server = server(&[("PORTCULLIS_WEBHOOK_PAUSE_AFTER_SECS", "1")]);
    let receiver = Receiver::start();
    receiver.answer(|_, _| Reply::Status(500));
    let (endpoint_id, _) = endpoint(&server, &receiver, json!({}));
    let scim = Scim::new(&server, "acme");
    let ada = id_of(&scim.create_user("ada@acme.test"));
    let show = |server: &Server| ok(server.get(&format!("/api/v1/webhooks/{endpoint_id}")), 200);
    wait_for(&server, "the endpoint to pause", |server| show(server)["status"] == "paused");
    let paused = show(&server);
    assert!(paused["consecutive_failures"].as_u64().unwrap() >= 5);
    assert!(paused["paused_reason"].as_str().unwrap().contains("failed attempts"));
    assert_eq!(server.audit("webhook.endpoint.paused").len(), 1);

    // While paused, events queue up and nothing is attempted.
    let attempts_before = receiver.received().len();
    rename(&scim, &ada, "Ada L.");
    deactivate(&scim, &ada);
    wait_for(&server, "the backlog to grow", |server| show(server)["backlog"] == 3);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.received().len(), attempts_before, "no attempt while paused");

    receiver.answer(|_, _| Reply::Status(200));
    let resumed =
        ok(server.patch(&format!("/api/v1/webhooks/{endpoint_id}"), json!({ "status": "active" })), 200);
    assert_eq!(
        (resumed["status"].clone(), resumed["consecutive_failures"].clone()),
        (json!("active"), json!(0))
    );
    let kinds: Vec<String> = receiver.wait_delivered(3).iter().map(|r| r.kind().to_owned()).collect();
    assert_eq!(kinds, ["user.created", "user.updated", "user.deactivated"]);
    wait_for(&server, "the backlog to drain", |server| show(server)["backlog"] == 0);
}

#[test]
fn a_kill_in_the_middle_of_a_backlog_loses_nothing_and_repeats_only_with_the_same_id() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = vec![("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)];
    settings.extend_from_slice(FAST);
    let server = Server::start_with(data.clone(), &settings);
    let receiver = Receiver::start();
    // The receiver takes 30 deliveries, then fails until the server has been killed and restarted.
    let (answered, back) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let script = (Arc::clone(&answered), Arc::clone(&back));
    receiver.answer(move |_, _| {
        if script.0.fetch_add(1, Ordering::SeqCst) < 30 || script.1.load(Ordering::SeqCst) {
            Reply::Status(200)
        } else {
            Reply::Status(500)
        }
    });
    let (_, secret) = endpoint(&server, &receiver, json!({ "event_types": ["user.created"] }));
    let scim = Scim::new(&server, "acme");
    const USERS: usize = 150;
    for n in 0..USERS {
        scim.create_user(&format!("user{n}@acme.test"));
    }
    receiver.wait_until("the receiver's outage", |received| received.len() >= 40);
    let data = server.kill9();
    back.store(true, Ordering::SeqCst);

    let server = Server::start_with(data, &settings);
    let delivered = receiver.wait_delivered(USERS);
    let mut bodies: HashMap<&str, &str> = HashMap::new();
    let received = receiver.received();
    for request in received.iter().filter(|r| r.delivered()) {
        let seen = *bodies.entry(request.id.as_str()).or_insert(&request.body);
        assert_eq!(seen, request.body, "a repeated delivery carries the same event");
    }
    // Every event of the feed arrived, and nothing else did.
    let feed = ok(server.get("/api/v1/events?type=user.created&limit=500"), 200);
    let mut fed: Vec<&str> =
        feed["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut arrived: Vec<&str> = bodies.keys().copied().collect();
    fed.sort_unstable();
    arrived.sort_unstable();
    assert_eq!((fed.len(), arrived), (USERS, fed));
    let sample: Vec<Value> = delivered.iter().take(5).map(|r| r.as_verifiable()).collect();
    assert!(verify(&secret, &sample).iter().all(|v| v == "ok"));
}

/// What an app keeps of the directory, built only from webhooks, each event applied once by id.
fn replica(delivered: &[receiver::Received]) -> BTreeMap<String, (String, String, bool)> {
    let (mut users, mut applied) = (BTreeMap::new(), HashSet::new());
    for event in delivered.iter().filter(|r| applied.insert(r.id.clone())) {
        let user = &event.payload["data"]["user"];
        let id = user["id"].as_str().unwrap().to_owned();
        if event.kind() == "user.deleted" {
            users.remove(&id);
        } else {
            let fields =
                (user["user_name"].to_string(), user["display_name"].to_string(), user["active"] == true);
            users.insert(id, fields);
        }
    }
    users
}

/// The directory as SCIM serves it, in the replica's shape.
fn directory(scim: &Scim) -> BTreeMap<String, (String, String, bool)> {
    let list = scim.fetch("/Users?count=1000");
    let users = list["Resources"].as_array().unwrap().iter();
    users
        .map(|u| {
            let fields = (u["userName"].to_string(), u["displayName"].to_string(), u["active"] == true);
            (u["id"].as_str().unwrap().to_owned(), fields)
        })
        .collect()
}

#[test]
fn an_app_applying_webhooks_by_id_stays_in_sync_through_failures_and_restarts_of_either_side() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = vec![("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)];
    settings.extend_from_slice(FAST);
    let server = Server::start_with(data.clone(), &settings);
    let receiver = Receiver::start();
    // About a third of the attempts fail (the same ones on every run), and the app can be down.
    let down = Arc::new(AtomicBool::new(false));
    let outage = Arc::clone(&down);
    receiver.answer(move |event, attempt| {
        let mut hash = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(event["id"].as_str(), attempt), &mut hash);
        let flaky = std::hash::Hasher::finish(&hash) % 3 == 0;
        if outage.load(Ordering::SeqCst) || flaky { Reply::Status(503) } else { Reply::Status(200) }
    });
    endpoint(&server, &receiver, json!({ "event_types": ["user.*"] }));
    let scim = Scim::new(&server, "acme");
    let ids: Vec<String> = (0..30).map(|n| id_of(&scim.create_user(&format!("u{n}@acme.test")))).collect();
    for id in &ids[..15] {
        rename(&scim, id, &format!("renamed {id}"));
    }
    for id in &ids[10..20] {
        deactivate(&scim, id);
    }

    // The app goes down, then Portcullis is killed with deliveries in every state.
    down.store(true, Ordering::SeqCst);
    let server = Server::start_with(server.kill9(), &settings);
    let scim = scim.on(&server);
    for id in &ids[10..15] {
        let body = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "value": { "active": true } }] });
        ok(scim.patch(&format!("/Users/{id}"), body), 200);
    }
    for id in &ids[25..] {
        assert_eq!(scim.delete(&format!("/Users/{id}")).status(), 204);
    }
    for id in &ids[..5] {
        rename(&scim, id, &format!("renamed again {id}"));
    }
    down.store(false, Ordering::SeqCst);

    let expected = directory(&scim);
    assert_eq!(expected.len(), 25);
    receiver.wait_until("the app to be in sync", |received| {
        let delivered: Vec<_> = received.iter().filter(|r| r.delivered()).cloned().collect();
        replica(&delivered) == expected
    });
    let received = receiver.received();
    let refused = received.iter().filter(|r| !r.delivered()).count();
    assert!(
        refused * 5 > received.len(),
        "a good part of the attempts failed: {refused} of {}",
        received.len()
    );
    drop(server);
}

#[test]
fn the_feed_pages_with_a_cursor_and_filters_by_type_and_tenant() {
    let server = server(&[]);
    let acme = Scim::new(&server, "acme");
    let globex = Scim::new(&server, "globex");
    for n in 0..4 {
        let user = acme.create_user(&format!("a{n}@acme.test"));
        deactivate(&acme, &id_of(&user));
    }
    globex.create_group("Engineering", &[]);

    let (mut all, mut after) = (Vec::new(), 0);
    loop {
        let page = ok(server.get(&format!("/api/v1/events?limit=3&after={after}")), 200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        all.extend(items.iter().cloned());
        after = page["next_after"].as_u64().unwrap();
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(all.len(), 9);
    let sequences: Vec<u64> = all.iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "oldest first, each once");

    let deactivated = ok(server.get("/api/v1/events?type=user.deactivated&tenant=acme"), 200);
    assert_eq!(deactivated["items"].as_array().unwrap().len(), 4);
    let globex_only = ok(server.get(&format!("/api/v1/events?tenant={}", globex.tenant_id)), 200);
    let kinds: Vec<&str> =
        globex_only["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["group.created"]);
    let families = ok(server.get("/api/v1/events?type=group.*,user.created"), 200);
    assert_eq!(families["items"].as_array().unwrap().len(), 5);
    let by_seq = ok(server.get(&format!("/api/v1/events/{}", sequences[0])), 200);
    assert_eq!(by_seq, all[0]);

    expect_error(server.get("/api/v1/events?type=user.signed_in"), 400, "invalid_value");
    expect_error(server.get("/api/v1/events?tenant=nobody"), 400, "invalid_value");
    expect_error(server.get("/api/v1/events?after=-1"), 400, "malformed_request");
    expect_error(server.get("/api/v1/events/0193a0b4-0000-7000-8000-000000000000"), 404, "not_found");
    let anonymous = server.anonymous(reqwest::Method::GET, "/api/v1/events").send().unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[test]
fn an_events_key_reads_the_feed_and_nothing_else() {
    let server = server(&[]);
    Scim::new(&server, "acme").create_user("ada@acme.test");
    let created =
        ok(server.post("/api/v1/admin-keys", json!({ "name": "the app", "scope": "events:read" })), 201);
    assert_eq!(created["scope"], "events:read");
    let key = created["key"].as_str().unwrap().to_owned();
    let with_key = |method: reqwest::Method, path: &str| {
        server
            .anonymous(method, path)
            .bearer_auth(&key)
            .json(&json!({ "url": "https://hooks.example.com/" }))
            .send()
            .unwrap()
    };

    let feed = ok(with_key(reqwest::Method::GET, "/api/v1/events?type=user.*"), 200);
    assert_eq!(feed["items"][0]["type"], "user.created");
    let first = feed["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(with_key(reqwest::Method::GET, &format!("/api/v1/events/{first}")).status(), 200);
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/tenants"),
        (reqwest::Method::GET, "/api/v1/webhooks"),
        (reqwest::Method::POST, "/api/v1/webhooks"),
        (reqwest::Method::GET, "/api/v1/admin-keys"),
        (reqwest::Method::GET, "/api/v1/audit/search"),
    ] {
        expect_error(with_key(method, path), 403, "insufficient_scope");
    }
    assert!(
        ok(server.get("/api/v1/webhooks"), 200)["items"].as_array().unwrap().is_empty(),
        "nothing was made"
    );

    // It is no admin key: the last full key still cannot be revoked.
    let keys = ok(server.get("/api/v1/admin-keys"), 200);
    let full = keys["items"].as_array().unwrap().iter().find(|k| k["scope"] == "admin").unwrap().clone();
    expect_error(
        server.delete(&format!("/api/v1/admin-keys/{}", full["id"].as_str().unwrap())),
        409,
        "last_admin_key",
    );
    assert_eq!(
        server.delete(&format!("/api/v1/admin-keys/{}", created["id"].as_str().unwrap())).status(),
        204
    );
    expect_error(with_key(reqwest::Method::GET, "/api/v1/events"), 401, "invalid_token");
}

#[test]
fn endpoints_reach_only_the_urls_the_operator_allowed() {
    let open = Server::start();
    for (url, why) in [
        ("http://hooks.example.com/", "must use https"),
        ("https://169.254.169.254/latest/meta-data/", "internal address"),
        ("https://127.0.0.1:9/hook", "internal address"),
        ("https://localhost/hook", "internal address"),
        ("https://[::ffff:10.0.0.1]/", "internal address"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
    ] {
        let error = expect_error(open.post("/api/v1/webhooks", json!({ "url": url })), 400, "invalid_value");
        assert_eq!(error["field"], "url");
        assert!(error["message"].as_str().unwrap().contains(why), "{url}: {error}");
    }
    assert_eq!(open.post("/api/v1/webhooks", json!({ "url": "https://hooks.example.com/p" })).status(), 201);

    let listed =
        Server::start_with_settings(&[("PORTCULLIS_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1,*.corp.example")]);
    assert_eq!(listed.post("/api/v1/webhooks", json!({ "url": "http://127.0.0.1:9/hook" })).status(), 201);
    assert_eq!(
        listed.post("/api/v1/webhooks", json!({ "url": "https://hooks.corp.example/" })).status(),
        201
    );
    let refused = expect_error(
        listed.post("/api/v1/webhooks", json!({ "url": "https://hooks.example.com/" })),
        400,
        "invalid_value",
    );
    assert!(refused["message"].as_str().unwrap().contains("webhook_allowed_hosts"));
    assert_eq!(
        ok(listed.get("/api/v1/webhooks"), 200)["items"].as_array().unwrap().len(),
        2,
        "refusals change nothing"
    );
}

#[test]
fn bad_endpoint_settings_are_refused_and_change_nothing() {
    let server = server(&[]);
    let receiver = Receiver::start();
    let (endpoint_id, _) = endpoint(&server, &receiver, json!({}));
    let path = format!("/api/v1/webhooks/{endpoint_id}");
    expect_error(server.post("/api/v1/webhooks", json!({})), 400, "invalid_value");
    let unknown = expect_error(
        server.post("/api/v1/webhooks", json!({ "url": receiver.url, "event_types": ["user.signed_in"] })),
        400,
        "invalid_value",
    );
    assert_eq!(unknown["field"], "event_types");
    expect_error(
        server.post("/api/v1/webhooks", json!({ "url": receiver.url, "event_types": [] })),
        400,
        "invalid_value",
    );
    expect_error(
        server.post("/api/v1/webhooks", json!({ "url": receiver.url, "tenants": ["nobody"] })),
        400,
        "invalid_value",
    );
    expect_error(
        server.post("/api/v1/webhooks", json!({ "url": receiver.url, "colour": "red" })),
        400,
        "malformed_request",
    );
    expect_error(server.patch(&path, json!({ "status": "deleted" })), 400, "malformed_request");
    expect_error(
        server.post(&format!("{path}/secret"), json!({ "overlap_hours": 1000 })),
        400,
        "invalid_value",
    );
    expect_error(server.get(&format!("{path}/deliveries?state=lost")), 400, "malformed_request");
    expect_error(server.get("/api/v1/webhooks/not-an-id"), 404, "not_found");
    expect_error(server.get(&format!("{path}/deliveries/123")), 404, "not_found");
    let unchanged = ok(server.get(&path), 200);
    assert_eq!((unchanged["event_types"].clone(), unchanged["tenants"].clone()), (json!(["*"]), json!([])));
    assert_eq!(ok(server.get("/api/v1/webhooks"), 200)["items"].as_array().unwrap().len(), 1);

    // A tenant filter names tenants by slug or id; deleting forgets the endpoint and its log.
    let acme = server.create_tenant("acme", &[]);
    let narrowed = ok(server.patch(&path, json!({ "tenants": ["acme"], "event_types": ["group.*"] })), 200);
    assert_eq!(narrowed["tenants"], json!([acme["id"]]));
    assert_eq!(server.delete(&path).status(), 204);
    expect_error(server.get(&path), 404, "not_found");
    assert_eq!(server.audit("admin.webhook.endpoint.delete").len(), 1);
}
