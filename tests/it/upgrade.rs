//! Upgrades: a database written by an earlier release starts on this build, is migrated once, and
//! keeps everything it held. The databases are fixtures made by the old builds themselves
//! (`scripts/make-upgrade-fixture`; `tests/fixtures/upgrade/README.md` names the commits):
//! schema 3 is the release before this one, schema 1 the oldest (every migration runs).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Read,
    path::Path,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use openidconnect::{
    ClientId, ClientSecret, IssuerUrl, RedirectUrl, TokenResponse,
    core::{CoreClient, CoreProviderMetadata},
};
use reqwest::{Method, blocking::Client};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    provider::{App, Browser, callback_params, http},
    saml::claims_of,
    scim::{ENTERPRISE, PATCH_OP, USER_SCHEMA, ok, scim_error},
    server::{Server, command},
};

/// The schema this build writes.
const CURRENT_SCHEMA: u64 = portcullis::store::SCHEMA_VERSION;
const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");

/// A fixture's files in a fresh data directory, and what fixture.json says about them.
struct Fixture {
    data: Arc<TempDir>,
    about: Value,
}

fn fixture_dir(schema: u64) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/upgrade/schema-{schema}"))
}

fn unpack(schema: u64) -> Fixture {
    let dir = fixture_dir(schema);
    let about: Value = serde_json::from_slice(&fs::read(dir.join("fixture.json")).unwrap()).unwrap();
    assert_eq!(about["schema"], schema);
    let data = Arc::new(tempfile::tempdir().unwrap());
    let mut database = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(dir.join("portcullis.redb.gz")).unwrap())
        .read_to_end(&mut database)
        .unwrap();
    fs::write(data.path().join("portcullis.redb"), database).unwrap();
    if about["secret_key"] == true {
        let key = data.path().join("secret.key");
        fs::copy(dir.join("secret.key"), &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    Fixture { data, about }
}

/// Starts this build on the fixture's data, as an operator with the fixture's own admin key
/// (no bootstrap key: the database has its keys).
fn start(fixture: &Fixture) -> Server {
    // Events older than the retention period are forgotten at start; the fixture's are as old as
    // the fixture, so keep them for as long as the setting allows.
    let mut server =
        Server::start_with(fixture.data.clone(), &[("PORTCULLIS_EVENTS_RETENTION_DAYS", "3650")]);
    server.admin_key = text(&fixture.about["admin_key"]);
    server
}

fn stop(mut server: Server) {
    server.send_sigterm();
    assert!(server.wait_exit().success(), "{}", server.stderr());
}

/// The server's log up to its "listening" line: what the start did, migrations included. The
/// log and the line come through the same pipe, in order, so once the line is there all that
/// came before it is too.
fn start_log(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = server.stderr();
        if let Some(at) = log.find(" listening") {
            return log[..at].to_owned();
        }
        assert!(Instant::now() < deadline, "no listening line in the log: {log}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn migrations_run(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|line| line.contains("migrating the database schema"))
        .map(|line| line.rsplit("to=").next().unwrap().trim().parse().unwrap())
        .collect()
}

fn stored_schema(data: &Path) -> u64 {
    use redb::ReadableDatabase;
    let db = redb::Database::open(data.join("portcullis.redb")).unwrap();
    let tx = db.begin_read().unwrap();
    tx.open_table(META).unwrap().get("schema_version").unwrap().unwrap().value()
}

/// Each table of a database file: its name, how many entries it has and how many bytes they take.
fn contents(file: &Path) -> Vec<(String, u64, u64)> {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let db = redb::Database::open(file).unwrap();
    let tx = db.begin_read().unwrap();
    let mut tables: Vec<(String, u64, u64)> = tx
        .list_tables()
        .unwrap()
        .map(|handle| {
            let name = handle.name().to_owned();
            let table = tx.open_untyped_table(handle).unwrap();
            (name, table.len().unwrap(), table.stats().unwrap().stored_bytes())
        })
        .collect();
    tables.sort();
    tables
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("not a string: {value}")).to_owned()
}

fn scim(
    server: &Server,
    tenant: &Value,
    token: &str,
    method: Method,
    path: &str,
) -> reqwest::blocking::RequestBuilder {
    let url = server.url(&format!("/scim/v2/{}{path}", text(&tenant["id"])));
    Client::new().request(method, url).bearer_auth(token)
}

fn scim_get(server: &Server, tenant: &Value, path: &str) -> Value {
    ok(scim(server, tenant, &text(&tenant["scim_token"]), Method::GET, path).send().unwrap(), 200)
}

fn ids(values: &Value) -> BTreeSet<String> {
    values.as_array().unwrap().iter().map(text).collect()
}

fn wait_indexed(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = ok(server.get("/api/v1/audit/status"), 200);
        if status["index_lag"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the index stayed behind: {status}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Every record of the plain audit listing, oldest first.
fn audit_log(server: &Server) -> Vec<Value> {
    let (mut records, mut after) = (Vec::new(), 0);
    loop {
        let page = ok(server.get(&format!("/api/v1/audit?after={after}&limit=500")), 200);
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            return records;
        }
        records.extend(items.iter().cloned());
        after = page["next_after"].as_u64().unwrap();
    }
}

/// Every event of the feed, oldest first.
fn feed(server: &Server) -> Vec<Value> {
    let (mut events, mut after) = (Vec::new(), 0);
    loop {
        let page = ok(server.get(&format!("/api/v1/events?after={after}&limit=500")), 200);
        events.extend(page["items"].as_array().unwrap().iter().cloned());
        after = page["next_after"].as_u64().unwrap();
        if page["has_more"] != true {
            return events;
        }
    }
}

// --- what an upgraded instance must still show ---

fn assert_admin_keys(server: &Server, about: &Value) {
    // The fixture's bootstrap key is the server's admin key here: it worked if this answers.
    let listed = ok(server.get("/api/v1/admin-keys"), 200);
    let listed: BTreeSet<String> =
        listed["items"].as_array().unwrap().iter().map(|k| text(&k["id"])).collect();
    for key in about["admin_keys"].as_array().unwrap() {
        assert!(listed.contains(&text(&key["id"])), "{key} is listed");
        let with_it =
            Client::new().get(server.url("/api/v1/tenants")).bearer_auth(text(&key["key"])).send().unwrap();
        let expected = if key["revoked"] == true { 401 } else { 200 };
        assert_eq!(
            with_it.status(),
            expected,
            "a key made before the upgrade works unless it was revoked: {key}"
        );
    }
    assert_eq!(
        listed.len(),
        about["admin_keys"].as_array().unwrap().len() + 1,
        "no key was added: {listed:?}"
    );
    let stranger = Client::new()
        .get(server.url("/api/v1/tenants"))
        .bearer_auth("upgrade-test-not-a-key-0123456789abcdef")
        .send()
        .unwrap();
    assert_eq!(stranger.status(), 401);
}

fn assert_tenant(server: &Server, tenant: &Value) {
    let id = text(&tenant["id"]);
    let shown = ok(server.get(&format!("/api/v1/tenants/{}", text(&tenant["slug"]))), 200);
    assert_eq!(shown["id"], tenant["id"]);
    let domains: BTreeMap<String, String> = shown["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (text(&d["domain"]), text(&d["status"])))
        .collect();
    let verified = ids(&tenant["verified_domains"]);
    let expected: BTreeMap<String, String> = ids(&tenant["domains"])
        .into_iter()
        .map(|d| {
            let status = if verified.contains(&d) { "verified" } else { "unverified" };
            (d, status.to_owned())
        })
        .collect();
    assert_eq!(domains, expected, "{shown:#}");

    // SCIM, with the token the IdP was given before the upgrade.
    let users = tenant["users"].as_array().unwrap();
    let listed = scim_get(server, tenant, "/Users?count=200");
    assert_eq!(listed["totalResults"], users.len(), "{listed:#}");
    for user in users {
        let shown = scim_get(server, tenant, &format!("/Users/{}", text(&user["id"])));
        assert_eq!(shown["userName"], user["userName"], "{shown:#}");
        assert_eq!(shown["active"], user["active"], "{shown:#}");
        if !user["externalId"].is_null() {
            assert_eq!(shown["externalId"], user["externalId"], "{shown:#}");
        }
        let emails: BTreeSet<String> =
            shown["emails"].as_array().unwrap().iter().map(|e| text(&e["value"])).collect();
        assert_eq!(emails, ids(&user["emails"]), "{shown:#}");
        if user["userName"] == "ada@acme.test" {
            // The script gives Ada a title and enterprise attributes.
            assert_eq!(shown["title"], "Analyst", "{shown:#}");
            assert_eq!(shown[ENTERPRISE]["employeeNumber"], "1815", "{shown:#}");
            assert_eq!(shown[ENTERPRISE]["department"], "engineering", "{shown:#}");
        }
    }
    for gone in tenant["deleted_users"].as_array().unwrap() {
        let response = scim(
            server,
            tenant,
            &text(&tenant["scim_token"]),
            Method::GET,
            &format!("/Users/{}", text(gone)),
        )
        .send()
        .unwrap();
        scim_error(response, 404, None);
    }
    let groups = tenant["groups"].as_array().unwrap();
    assert_eq!(scim_get(server, tenant, "/Groups?count=200")["totalResults"], groups.len());
    for group in groups {
        let shown = scim_get(server, tenant, &format!("/Groups/{}", text(&group["id"])));
        assert_eq!(shown["displayName"], group["displayName"], "{shown:#}");
        let members: BTreeSet<String> = shown["members"]
            .as_array()
            .map(|m| m.iter().map(|m| text(&m["value"])).collect())
            .unwrap_or_default();
        assert_eq!(members, ids(&group["members"]), "{shown:#}");
    }
    let revoked =
        scim(server, tenant, &text(&tenant["revoked_scim_token"]), Method::GET, "/Users").send().unwrap();
    scim_error(revoked, 401, None);

    // The operators' view of the same directory: counts, flags and memberships from the indexes.
    let browsed = ok(server.get(&format!("/api/v1/tenants/{id}/users?limit=200")), 200);
    assert_eq!(browsed["total"], users.len());
    let active = browsed["items"].as_array().unwrap().iter().filter(|u| u["active"] == true).count();
    assert_eq!(active, users.iter().filter(|u| u["active"] == true).count());
    for user in users {
        let detail = ok(server.get(&format!("/api/v1/tenants/{id}/users/{}", text(&user["id"]))), 200);
        let in_groups: BTreeSet<String> =
            detail["groups"].as_array().unwrap().iter().map(|g| text(&g["id"])).collect();
        let expected: BTreeSet<String> = groups
            .iter()
            .filter(|g| ids(&g["members"]).contains(&text(&user["id"])))
            .map(|g| text(&g["id"]))
            .collect();
        assert_eq!(in_groups, expected, "{detail:#}");
    }
    let browsed = ok(server.get(&format!("/api/v1/tenants/{id}/groups?limit=200")), 200);
    assert_eq!(browsed["total"], groups.len());

    for connection in tenant["saml_connections"].as_array().into_iter().flatten() {
        let connection_id = text(&connection["id"]);
        let shown = ok(server.get(&format!("/api/v1/tenants/{id}/saml-connections/{connection_id}")), 200);
        assert_eq!(shown["name"], connection["name"]);
        let metadata =
            server.anonymous(Method::GET, &format!("/sso/saml/{connection_id}/metadata")).send().unwrap();
        assert_eq!(metadata.status(), 200);
        assert!(metadata.text().unwrap().contains("EntityDescriptor"));
    }
    for connection in tenant["oidc_connections"].as_array().into_iter().flatten() {
        let shown = ok(
            server.get(&format!("/api/v1/tenants/{id}/oidc-connections/{}", text(&connection["id"]))),
            200,
        );
        assert_eq!(shown["issuer"], connection["issuer"]);
        assert_eq!(shown["client_secret_set"], true);
    }
    if let Some(version) = tenant.get("access_policy_version") {
        let policy = ok(server.get(&format!("/api/v1/tenants/{id}/access-policy")), 200);
        assert_eq!(&policy["version"], version, "{policy:#}");
    }
}

/// The trail verifies, the records written before the upgrade are there unchanged, and the
/// index rebuilt from the log finds them.
fn assert_audit(server: &Server, about: &Value) {
    let verified = ok(server.admin(Method::POST, "/api/v1/audit/verify").send().unwrap(), 200);
    assert_eq!(verified["intact"], true, "{verified:#}");
    let log = audit_log(server);
    assert_eq!(verified["records"], log.len(), "{verified:#}");
    if let Some(before) = about.get("audit") {
        let before = before["records"].as_array().unwrap();
        assert!(log.len() >= before.len());
        for (old, now) in before.iter().zip(&log) {
            for field in ["seq", "id", "action", "hash"] {
                assert_eq!(old[field], now[field], "{field} of {old} is now {now}");
            }
        }
    }
    wait_indexed(server);
    for tenant in about["tenants"].as_array().unwrap() {
        for user in tenant["users"].as_array().unwrap() {
            let query = format!("/api/v1/audit/search?user={}&limit=500", text(&user["id"]));
            let found = ok(server.get(&query), 200);
            let actions: Vec<&str> =
                found["items"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
            assert!(!actions.is_empty(), "the history of {user} is searchable");
        }
    }
}

/// The outbox written before event ids were indexed (schema 4) is a feed whose every event is
/// found by its id, with the lifecycle the fixture went through.
fn assert_events(server: &Server, about: &Value) -> Vec<Value> {
    let events = feed(server);
    assert!(!events.is_empty());
    let seqs: Vec<u64> = events.iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for event in &events {
        let found = ok(server.get(&format!("/api/v1/events/{}", text(&event["id"]))), 200);
        assert_eq!(&found, event);
    }
    let happened = |kind: &str, subject: &Value| {
        events.iter().any(|e| e["type"] == kind && e["subject"]["id"] == *subject)
    };
    for tenant in about["tenants"].as_array().unwrap() {
        for user in tenant["users"].as_array().unwrap() {
            assert!(happened("user.created", &user["id"]), "user.created of {user}");
            if user["active"] == false {
                assert!(happened("user.deactivated", &user["id"]), "user.deactivated of {user}");
            }
        }
        for gone in tenant["deleted_users"].as_array().unwrap() {
            assert!(happened("user.deleted", gone), "user.deleted of {gone}");
        }
        for group in tenant["groups"].as_array().unwrap() {
            assert!(happened("group.created", &group["id"]), "group.created of {group}");
        }
    }
    events
}

/// The app registered before the upgrade signs a password user in with the password chosen
/// before it: the client secret, the password hash, the routing of the address and the token
/// signing keys all survived.
fn sign_in_with_old_client(server: &Server, client: &Value, email: &str, password: &str) -> Value {
    let metadata = CoreProviderMetadata::discover(&IssuerUrl::new(server.url("")).unwrap(), &http).unwrap();
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(text(&client["client_id"])),
        Some(ClientSecret::new(text(&client["client_secret"]))),
    )
    .set_redirect_uri(RedirectUrl::new(text(&client["redirect_uri"])).unwrap());
    let app = App { client_id: text(&client["client_id"]), secret: text(&client["client_secret"]), rp };
    sign_in(server, &app, email, password)
}

fn sign_in(server: &Server, app: &App, email: &str, password: &str) -> Value {
    let pending = app.authorize(&["email", "profile"]);
    let mut browser = Browser::new();
    let first = browser.get(&pending.url);
    let login = browser.follow(server, first);
    let mut page = browser.submit(server, &login, &[("email", email)]);
    assert_eq!(page.status, 200, "{}", page.body);
    // A tenant with SSO beside passwords offers both: the SAML connection made before the
    // upgrade is on offer, and the person chooses the password.
    if page.body.contains("name=\"method\" value=\"password\"") {
        assert!(page.body.contains("/sso/saml/"), "{}", page.body);
        page = browser.submit(server, &page, &[]);
        assert_eq!(page.status, 200, "{}", page.body);
    }
    let back = browser.submit(server, &page, &[("password", password)]);
    let location = back.location.unwrap_or_else(|| panic!("{email} was not signed in: {}", back.body));
    let params = callback_params(&location);
    let tokens = app.exchange(&params["code"], pending.verifier);
    claims_of(&tokens.id_token().unwrap().to_string())
}

/// Sets a user's password through a link the operator issues now.
fn choose_password(server: &Server, tenant: &str, user: &str, password: &str) {
    let issued =
        ok(server.post(&format!("/api/v1/tenants/{tenant}/users/{user}/password-link"), json!({})), 200);
    let mut browser = Browser::new();
    let form = browser.get(issued["password_link"].as_str().unwrap());
    assert_eq!(form.status, 200, "{}", form.body);
    let done = browser.submit(server, &form, &[("password", password), ("confirm", password)]);
    assert!(done.body.contains("Your password is set"), "{}", done.body);
}

fn assert_sign_in(server: &Server, about: &Value) {
    let tenants = about["tenants"].as_array().unwrap();
    if let Some(client) = about["oauth_clients"].get(0) {
        for tenant in tenants {
            for user in tenant["users"].as_array().unwrap().iter().filter(|u| u["password"].is_string()) {
                let (email, password) = (text(&user["userName"]), text(&user["password"]));
                let claims = sign_in_with_old_client(server, client, &email, &password);
                assert_eq!(claims["sub"], user["id"], "{claims:#}");
                let engineer = tenant["groups"].as_array().unwrap().iter().any(|g| {
                    g["displayName"] == "Engineering" && ids(&g["members"]).contains(&text(&user["id"]))
                });
                if tenant.get("access_policy_version").is_some() && engineer {
                    assert_eq!(
                        claims["roles"],
                        json!(["engineer"]),
                        "the policy saved before the upgrade applies"
                    );
                }
            }
        }
    }
    // A person whose address is at a domain no tenant owns is found through the index of
    // sign-in emails, which schema 2 filled from the users already there.
    let globex = &tenants[1];
    let frank =
        globex["users"].as_array().unwrap().iter().find(|u| u["userName"] == "frank@freemail.test").unwrap();
    let password = "a brand new password after the upgrade";
    choose_password(server, &text(&globex["id"]), &text(&frank["id"]), password);
    let app = App::register(server, json!({}));
    let claims = sign_in(server, &app, "frank@freemail.test", password);
    assert_eq!(claims["sub"], frank["id"], "{claims:#}");
}

/// A user provisioned after the upgrade: created, audited and announced like any other.
fn provision_after_upgrade(server: &Server, about: &Value) -> String {
    let acme = &about["tenants"][0];
    let body = json!({
        "schemas": [USER_SCHEMA],
        "userName": "new.hire@acme.test",
        "name": { "givenName": "New", "familyName": "Hire" },
        "emails": [{ "value": "new.hire@acme.test", "type": "work", "primary": true }],
        "active": true,
    });
    let created = scim(server, acme, &text(&acme["scim_token"]), Method::POST, "/Users")
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .unwrap();
    let created = ok(created, 201);
    let id = text(&created["id"]);
    // And an old group takes the new member.
    let engineering =
        acme["groups"].as_array().unwrap().iter().find(|g| g["displayName"] == "Engineering").unwrap();
    let patch = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": id }] }] });
    let patched = scim(
        server,
        acme,
        &text(&acme["scim_token"]),
        Method::PATCH,
        &format!("/Groups/{}", text(&engineering["id"])),
    )
    .header("content-type", "application/scim+json")
    .body(patch.to_string())
    .send()
    .unwrap();
    assert!(patched.status().is_success(), "{}", patched.text().unwrap());

    wait_indexed(server);
    let audited = ok(server.get(&format!("/api/v1/audit/search?user={id}&action=scim.user.create")), 200);
    assert_eq!(audited["items"].as_array().unwrap().len(), 1, "{audited:#}");
    let events = feed(server);
    assert!(events.iter().any(|e| e["type"] == "user.created" && e["subject"]["id"] == id.as_str()));
    let verified = ok(server.admin(Method::POST, "/api/v1/audit/verify").send().unwrap(), 200);
    assert_eq!(verified["intact"], true, "{verified:#}");
    id
}

fn upgrade(schema: u64) {
    let fixture = unpack(schema);
    let about = &fixture.about;
    let file = fixture.data.path().join("portcullis.redb");
    // What the migrations fill is not in the old file: what the test sees is their work.
    let old_tables = contents(&file);
    let had = |name: &str| old_tables.iter().any(|(table, ..)| table == name);
    assert_eq!(had("sign_in_emails"), schema >= 2);
    assert_eq!(had("audit_chain_heads"), schema >= 3);
    assert!(!had("event_ids"));
    let server = start(&fixture);
    let expected: Vec<u64> = (schema + 1..=CURRENT_SCHEMA).collect();
    assert_eq!(migrations_run(&start_log(&server)), expected, "each migration once, in order");
    assert_eq!(ok(server.get("/api/v1/instance"), 200)["schema_version"], CURRENT_SCHEMA);

    assert_admin_keys(&server, about);
    for tenant in about["tenants"].as_array().unwrap() {
        assert_tenant(&server, tenant);
    }
    if let Some(kids) = about.get("signing_keys") {
        let jwks = ok(server.anonymous(Method::GET, "/oauth2/jwks").send().unwrap(), 200);
        let published: BTreeSet<String> =
            jwks["keys"].as_array().unwrap().iter().map(|k| text(&k["kid"])).collect();
        assert!(ids(kids).is_subset(&published), "the old signing keys are still published: {jwks:#}");
    }
    assert_audit(&server, about);
    let events_before = assert_events(&server, about);
    assert_sign_in(&server, about);
    let new_user = provision_after_upgrade(&server, about);
    stop(server);
    assert_eq!(stored_schema(fixture.data.path()), CURRENT_SCHEMA);

    // A second start finds the current schema: nothing to migrate, nothing lost.
    let server = start(&fixture);
    assert_eq!(migrations_run(&start_log(&server)), Vec::<u64>::new());
    let acme = &about["tenants"][0];
    assert_eq!(scim_get(&server, acme, &format!("/Users/{new_user}"))["userName"], "new.hire@acme.test");
    let events_after = feed(&server);
    assert_eq!(events_after[..events_before.len()], events_before[..]);
    let verified = ok(server.admin(Method::POST, "/api/v1/audit/verify").send().unwrap(), 200);
    assert_eq!(verified["intact"], true, "{verified:#}");
    stop(server);
    assert_eq!(stored_schema(fixture.data.path()), CURRENT_SCHEMA);
    let tables = contents(&file);
    let entries = |name: &str| tables.iter().find(|(table, ..)| table == name).map(|(_, len, _)| *len);
    assert_eq!(entries("event_ids"), entries("event_outbox"), "every event has its id indexed");
}

#[test]
fn a_database_of_the_previous_release_schema_3_upgrades_with_everything_in_it() {
    upgrade(3);
}

#[test]
fn a_database_of_the_first_release_schema_1_goes_through_every_migration() {
    upgrade(1);
}

#[test]
fn a_database_from_a_newer_build_is_refused_at_start_and_left_as_it_was() {
    let fixture = unpack(3);
    let file = fixture.data.path().join("portcullis.redb");
    {
        let db = redb::Database::open(&file).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert("schema_version", CURRENT_SCHEMA + 1).unwrap();
        tx.commit().unwrap();
    }
    let before = contents(&file);
    assert!(!before.iter().any(|(name, ..)| name == "event_ids"), "schema 3 has no event id index");
    let output = command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_DATA_DIR", fixture.data.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "the database was written by a newer Portcullis (schema {}, this build knows up to {CURRENT_SCHEMA})",
        CURRENT_SCHEMA + 1
    );
    assert!(said.contains(&expected), "{said}");
    // redb rewrites its own header and allocator state when a database is opened and closed, so
    // the bytes are not compared: every table, its entry count and its stored bytes are.
    assert_eq!(contents(&file), before, "the refused database holds what it held");
    assert_eq!(stored_schema(fixture.data.path()), CURRENT_SCHEMA + 1);
}
