//! First start, restarts and crashes.

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;

use crate::server::{ADMIN_KEY, Server};

#[test]
fn what_was_acknowledged_survives_kill_9() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &["acme.com"]);
    let renamed: Value = server
        .patch("/api/v1/tenants/acme", serde_json::json!({ "display_name": "Acme Renamed" }))
        .json()
        .unwrap();
    for i in 0..20 {
        server.create_tenant(&format!("bulk-{i}"), &[]);
    }
    let before = without_urls(server.get("/api/v1/tenants?limit=200").json().unwrap());

    let data = server.kill9();
    let server = Server::start_with(data, &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)]);
    // The restarted server listens on another port, so the URLs it derives differ.
    let after = without_urls(server.get("/api/v1/tenants?limit=200").json().unwrap());
    assert_eq!(after, before);
    let acme: Value =
        server.get(&format!("/api/v1/tenants/{}", tenant["id"].as_str().unwrap())).json().unwrap();
    assert_eq!(acme["display_name"], renamed["display_name"]);
    // The indexes came back with the records: the slug and the domain are still held.
    assert_eq!(
        server.post("/api/v1/tenants", serde_json::json!({ "slug": "acme", "display_name": "x" })).status(),
        409
    );
    assert_eq!(
        server
            .post(
                "/api/v1/tenants",
                serde_json::json!({ "slug": "other", "display_name": "x", "domains": ["acme.com"] })
            )
            .status(),
        409
    );
}

fn without_urls(mut page: Value) -> Value {
    for tenant in page["items"].as_array_mut().unwrap() {
        tenant.as_object_mut().unwrap().remove("urls");
    }
    page
}

#[test]
fn the_first_start_prints_a_generated_admin_key_once() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::start_with(Arc::clone(&data), &[]);
    let stdout = server.stdout();
    let key = stdout
        .split_whitespace()
        .find(|word| word.starts_with("pcak_"))
        .unwrap_or_else(|| panic!("no key printed:\n{stdout}"))
        .to_owned();
    let works = |server: &Server| {
        server.anonymous(Method::GET, "/api/v1/tenants").bearer_auth(&key).send().unwrap().status()
    };
    assert_eq!(works(&server), 200);
    assert!(!server.stderr().contains(&key), "the key must not reach the log");

    // Stored only as a digest: the database file does not contain it.
    let database = std::fs::read(data.path().join("portcullis.redb")).unwrap();
    assert!(!database.windows(key.len()).any(|w| w == key.as_bytes()));

    // The instance keys were created, and stay the same across a restart.
    let data = server.kill9();
    let server = Server::start_with(data, &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)]);
    assert!(!server.stdout().contains("pcak_"), "a second start prints no key");
    assert_eq!(works(&server), 200);
    // The bootstrap key only applies to a new database.
    assert_eq!(server.get("/api/v1/tenants").status(), 401);
}

#[test]
fn a_bootstrap_key_is_the_first_admin_key() {
    let server = Server::start();
    assert_eq!(server.get("/api/v1/tenants").status(), 200);
    assert!(!server.stdout().contains(ADMIN_KEY));
    assert!(!server.stdout().contains("pcak_"));
}

#[test]
fn a_hangup_without_built_in_tls_changes_nothing() {
    // `systemctl reload` sends SIGHUP, whose default action would end the process.
    let server = Server::start();
    server.send_signal("HUP");
    let logged = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        server.stderr().contains("SIGHUP: nothing to reload")
    });
    assert!(logged, "{}", server.stderr());
    assert_eq!(server.get("/readyz").status(), 200);
}

#[test]
fn a_data_directory_is_used_by_one_server_at_a_time() {
    let server = Server::start();
    let stderr = crate::server::serve_refused("127.0.0.1:0", server.data_dir());
    assert!(stderr.contains("another process"), "{stderr}");
    assert_eq!(server.get("/api/v1/tenants").status(), 200);
}
