//! Filters, paging, sorting and `.search`, over HTTP.

use serde_json::{Value, json};

use super::{ENTERPRISE, Scim, USER_SCHEMA, id, ok, scim_error, urlencode};
use crate::server::Server;

/// Five users with varied attributes.
fn population(scim: &Scim) {
    let people = [
        ("ada@acme.test", "Ada", "Employee", "work", "R&D", true),
        ("bob@acme.test", "Bob", "Contractor", "work", "Sales", true),
        ("carol@globex.test", "Carol", "Employee", "home", "R&D", false),
        ("dave@acme.test", "Dave", "Employee", "work", "Sales", true),
        ("Eve@Acme.test", "Eve", "Intern", "work", "R&D", true),
    ];
    for (user_name, given, user_type, email_type, department, active) in people {
        ok(
            scim.post(
                "/Users",
                json!({"schemas": [USER_SCHEMA, ENTERPRISE], "userName": user_name, "externalId": format!("ext-{given}"),
                    "name": {"givenName": given, "familyName": "Test"}, "userType": user_type, "active": active,
                    "emails": [{"value": user_name, "type": email_type, "primary": true}],
                    ENTERPRISE: {"department": department}}),
            ),
            201,
        );
    }
}

fn names(scim: &Scim, filter: &str) -> Vec<String> {
    let mut found: Vec<String> =
        scim.search("Users", filter).iter().map(|u| u["userName"].as_str().unwrap().to_lowercase()).collect();
    found.sort();
    found
}

#[test]
fn the_filter_grammar_works_end_to_end() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    population(&scim);
    let cases: &[(&str, &[&str])] = &[
        ("userName eq \"ADA@acme.test\"", &["ada@acme.test"]),
        ("userName Eq \"eve@acme.test\"", &["eve@acme.test"]),
        ("externalId eq \"ext-Bob\"", &["bob@acme.test"]),
        ("externalId eq \"EXT-BOB\"", &[]),
        ("userName co \"globex\"", &["carol@globex.test"]),
        ("userName sw \"d\"", &["dave@acme.test"]),
        ("userName ew \"ACME.TEST\"", &["ada@acme.test", "bob@acme.test", "dave@acme.test", "eve@acme.test"]),
        ("userType ne \"Employee\"", &["bob@acme.test", "eve@acme.test"]),
        ("title pr", &[]),
        ("name.givenName pr and active eq false", &["carol@globex.test"]),
        (
            "userType eq \"Employee\" and (emails.type eq \"home\" or name.givenName eq \"dave\")",
            &["carol@globex.test", "dave@acme.test"],
        ),
        ("not (userType eq \"Employee\")", &["bob@acme.test", "eve@acme.test"]),
        (
            "emails[type eq \"work\" and value co \"@acme.test\"]",
            &["ada@acme.test", "bob@acme.test", "dave@acme.test", "eve@acme.test"],
        ),
        ("emails[type eq \"work\"] and userType eq \"Intern\"", &["eve@acme.test"]),
        ("emails.value eq \"carol@globex.test\"", &["carol@globex.test"]),
        (&format!("{ENTERPRISE}:department eq \"Sales\"")[..], &["bob@acme.test", "dave@acme.test"]),
        ("urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"bob@acme.test\"", &["bob@acme.test"]),
        ("meta.created gt \"2000-01-01T00:00:00Z\" and userName sw \"a\"", &["ada@acme.test"]),
        ("meta.lastModified lt \"2000-01-01T00:00:00Z\"", &[]),
        (
            "userName eq \"ada@acme.test\" or userName eq \"bob@acme.test\"",
            &["ada@acme.test", "bob@acme.test"],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(names(&scim, filter), *expected, "{filter}");
    }
}

#[test]
fn bad_filters_are_invalid_filter_errors() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    for filter in [
        "userName eq",
        "userName xx \"a\"",
        "(userName eq \"a\"",
        "emails[type eq \"work\"",
        "active gt true",
        "userName eq \"a\" and",
        &"(".repeat(200),
    ] {
        let response = scim.get(&format!("/Users?filter={}", urlencode(filter)));
        scim_error(response, 400, Some("invalidFilter"));
    }
}

#[test]
fn paging_sorting_and_counting() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    population(&scim);
    let page = scim.fetch("/Users?startIndex=2&count=2");
    assert_eq!(
        (page["totalResults"].as_u64(), page["startIndex"].as_u64(), page["itemsPerPage"].as_u64()),
        (Some(5), Some(2), Some(2))
    );
    assert_eq!(page["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
    let all = scim.fetch("/Users");
    let ids: Vec<Value> = all["Resources"].as_array().unwrap().iter().map(|u| u["id"].clone()).collect();
    let paged: Vec<Value> = page["Resources"].as_array().unwrap().iter().map(|u| u["id"].clone()).collect();
    assert_eq!(paged, ids[1..3]);
    let count_only = scim.fetch("/Users?count=0");
    assert_eq!(
        (count_only["totalResults"].as_u64(), count_only["Resources"].as_array().map(Vec::len)),
        (Some(5), Some(0))
    );
    let beyond = scim.fetch("/Users?startIndex=10");
    assert_eq!(beyond["itemsPerPage"], 0);

    let sorted = scim.fetch(
        "/Users?sortBy=name.givenName&sortOrder=descending&filter=userType%20eq%20%22Employee%22&count=2",
    );
    let given: Vec<&str> = sorted["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"]["givenName"].as_str().unwrap())
        .collect();
    assert_eq!((sorted["totalResults"].as_u64(), given), (Some(3), vec!["Dave", "Carol"]));
    let by_name = scim.fetch("/Users?sortBy=userName");
    let names: Vec<&str> =
        by_name["Resources"].as_array().unwrap().iter().map(|u| u["userName"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["ada@acme.test", "bob@acme.test", "carol@globex.test", "dave@acme.test", "Eve@Acme.test"]
    );
}

#[test]
fn search_by_post_takes_the_same_query() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    population(&scim);
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userType eq \"Employee\"",
        "attributes": ["userName"], "sortBy": "userName", "startIndex": 1, "count": 10});
    let found = ok(scim.post("/Users/.search", body), 200);
    assert_eq!(found["totalResults"], 3);
    let first = &found["Resources"][0];
    assert_eq!(first["userName"], "ada@acme.test");
    assert!(first.get("name").is_none());
    scim_error(scim.post("/Users/.search", json!({"filter": "userName pr"})), 400, Some("invalidSyntax"));
}

#[test]
fn groups_filter_by_name_external_id_and_member() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let ada = id(&scim.create_user("ada@acme.test"));
    let staff = scim.create_group("Staff", &[&ada]);
    scim.create_group("Admins", &[]);
    let found = scim.search("Groups", "displayName eq \"staff\"");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], staff["id"]);
    // Entra ID checks a membership this way.
    let filter = format!("id eq \"{}\" and members.value eq \"{ada}\"", id(&staff));
    let found =
        ok(scim.get(&format!("/Groups?excludedAttributes=members&filter={}", urlencode(&filter))), 200);
    assert_eq!(found["totalResults"], 1);
    assert!(found["Resources"][0].get("members").is_none());
    assert_eq!(scim.search("Groups", &format!("members.value eq \"{ada}\"")).len(), 1);
    assert_eq!(scim.search("Groups", "displayName sw \"A\"").len(), 1);
}

#[test]
fn the_root_search_pages_users_then_groups_as_one_list() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    for i in 0..3 {
        scim.create_user(&format!("u{i}@acme.test"));
    }
    scim.create_group("  Eng  ", &[]);
    scim.create_group("Ops", &[]);
    let search = |start: u64, count: u64| {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": start, "count": count});
        let page = ok(scim.post("/.search", body), 200);
        let kinds: Vec<String> = page["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["meta"]["resourceType"].as_str().unwrap().to_owned())
            .collect();
        (page["totalResults"].as_u64().unwrap(), kinds)
    };
    assert_eq!(
        search(1, 10),
        (5, vec!["User".into(), "User".into(), "User".into(), "Group".into(), "Group".into()])
    );
    assert_eq!(search(3, 2), (5, vec!["User".into(), "Group".into()]));
    assert_eq!(search(5, 2), (5, vec!["Group".into()]));
    // A group name is stored trimmed, so the lookup Entra ID makes before creating one finds it.
    let found = scim.search("Groups", "displayName eq \"Eng\"");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["displayName"], "Eng");
}
