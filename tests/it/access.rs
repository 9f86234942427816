//! Roles, tiers and programs: a tenant's access policy through the admin API, applied live to
//! SCIM changes and to the groups an IdP claims at sign-in, and carried to the app in tokens.

use openidconnect::{OAuth2TokenResponse, TokenResponse};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    oidc::{self, Op},
    provider::{self, App, Browser, callback_params, http, tenant_with_password_user},
    saml::{self, Idp, audit, claims_of},
    scim::{ENTERPRISE, PATCH_OP, Scim, ok},
    server::{ADMIN_KEY, Server, expect_error},
};

const PASSWORD: &str = "correct horse battery staple";

fn policy() -> Value {
    json!({
        "roles": [
            { "name": "sales-rep", "description": "Works the pipeline" },
            { "name": "engineer" },
            { "name": "viewer", "description": "Reads everything, changes nothing" },
        ],
        "tiers": [{ "name": "standard" }, { "name": "enterprise" }],
        "programs": [{ "name": "beta" }, { "name": "quota-tools" }],
        "rules": [
            {
                "id": "sales", "description": "The sales team",
                "when": { "group": "Sales" },
                "grant": { "roles": ["sales-rep"], "tier": "standard", "programs": ["quota-tools"] },
            },
            {
                "id": "engineering",
                "when": { "any": [
                    { "group": "Engineering" },
                    { "attribute": { "name": "department", "eq": "engineering" } },
                ]},
                "grant": { "roles": ["engineer"], "tier": "enterprise", "programs": ["beta"] },
            },
        ],
        "default": { "roles": ["viewer"] },
    })
}

fn policy_path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/access-policy")
}

fn put_policy(
    server: &Server,
    tenant: &str,
    body: &Value,
    if_match: Option<&str>,
) -> reqwest::blocking::Response {
    let mut request = server.admin(Method::PUT, &policy_path(tenant)).json(body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().unwrap()
}

/// The roles, tier and programs a token or userinfo carries.
fn granted(claims: &Value) -> Value {
    json!({ "roles": claims["roles"], "tier": claims.get("tier"), "programs": claims["programs"] })
}

fn members_patch(op: &str, user: &str) -> Value {
    let operation = match op {
        "add" => json!({ "op": "add", "path": "members", "value": [{ "value": user }] }),
        _ => json!({ "op": "remove", "path": format!("members[value eq \"{user}\"]") }),
    };
    json!({ "schemas": [PATCH_OP], "Operations": [operation] })
}

#[test]
fn moving_an_employee_from_sales_to_engineering_in_the_idp_changes_their_next_tokens_with_the_rule_behind_each()
 {
    let server = Server::start();
    let (tenant, ada) = tenant_with_password_user(&server, PASSWORD);
    let saved = put_policy(&server, &tenant, &policy(), None);
    assert_eq!(saved.headers()["etag"], "\"1\"");
    let saved = ok(saved, 200);
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["reevaluated"], json!({ "evaluated": 1, "changed": 1 }), "Ada gets the default");
    assert_eq!(saved["unknown_groups"], json!(["engineering", "sales"]), "no group is provisioned yet");
    let scim = Scim::of_tenant(&server, &ok(server.get(&format!("/api/v1/tenants/{tenant}")), 200));
    let sales = scim.create_group("Sales", &[&ada]);
    let engineering = scim.create_group("Engineering", &[]);

    let app = App::register(&server, json!({}));
    let pending = app.authorize(&["email", "profile", "offline_access"]);
    let mut browser = Browser::new();
    let back = provider::sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let params = callback_params(back.location.as_deref().unwrap());
    let tokens = app.exchange(&params["code"], pending.verifier);
    let sales_rep = json!({ "roles": ["sales-rep"], "tier": "standard", "programs": ["quota-tools"] });
    assert_eq!(granted(&claims_of(&tokens.id_token().unwrap().to_string())), sales_rep);
    assert_eq!(granted(&claims_of(tokens.access_token().secret())), sales_rep);
    let info: Value = reqwest::blocking::Client::new()
        .get(server.url("/oauth2/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(granted(&info), sales_rep);

    // Okta moves Ada: out of Sales, into Engineering, one PATCH each.
    let id = |group: &Value| format!("/Groups/{}", group["id"].as_str().unwrap());
    assert_eq!(scim.patch(&id(&sales), members_patch("remove", &ada)).status(), 204);
    assert_eq!(scim.patch(&id(&engineering), members_patch("add", &ada)).status(), 204);

    // The app's next refresh carries the change, without a new login.
    let refreshed =
        app.rp.exchange_refresh_token(tokens.refresh_token().unwrap()).unwrap().request(&http).unwrap();
    let engineer = json!({ "roles": ["engineer"], "tier": "enterprise", "programs": ["beta"] });
    assert_eq!(granted(&claims_of(&refreshed.id_token().unwrap().to_string())), engineer);
    assert_eq!(granted(&claims_of(refreshed.access_token().secret())), engineer);

    // Each step is audited, by the SCIM token, with the rule that gave each role, tier and program.
    let changes = audit(&server, "scim.user.roles_change");
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[0]["detail"]["cause"]["kind"], "group.created");
    assert_eq!(changes[1]["detail"]["after"], json!({ "roles": ["viewer"], "tier": null, "programs": [] }));
    assert_eq!(changes[1]["detail"]["cause"]["group"]["display_name"], "Sales");
    let last = &changes[2];
    assert_eq!(last["actor"]["kind"], "scim_token");
    assert_eq!(last["target"]["id"], ada.as_str());
    assert_eq!(last["detail"]["before"], json!({ "roles": ["viewer"], "tier": null, "programs": [] }));
    assert_eq!(last["detail"]["after"], engineer);
    assert_eq!(
        last["detail"]["granted_by"],
        json!({ "roles": { "engineer": ["engineering"] }, "tier": "engineering", "programs": { "beta": ["engineering"] } })
    );
    assert_eq!(last["detail"]["cause"]["kind"], "group.members_changed");
    assert_eq!(last["detail"]["cause"]["group"]["display_name"], "Engineering");

    // The department says Engineering too: leaving the group then changes nothing.
    let department = json!({ "schemas": [PATCH_OP], "Operations": [
        { "op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Engineering" },
    ] });
    assert_eq!(scim.patch(&format!("/Users/{ada}"), department).status(), 200);
    assert_eq!(scim.patch(&id(&engineering), members_patch("remove", &ada)).status(), 204);
    assert_eq!(audit(&server, "scim.user.roles_change").len(), 3, "no change, no record");
    let access = ok(server.get(&format!("/api/v1/tenants/{tenant}/users/{ada}/access")), 200);
    assert_eq!(granted(&access), engineer);
    assert_eq!(access["groups"], json!([]));
    assert_eq!(access["policy_version"], 1);
}

#[test]
fn a_policy_that_cannot_be_evaluated_is_refused_and_changes_nothing() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &[]);
    let tenant = tenant["id"].as_str().unwrap();
    let cases = [
        (
            json!({ "rules": [{ "id": "a", "when": { "group": "x" }, "grant": { "roles": ["owner"] } }] }),
            "rules[0].grant.roles[0]",
        ),
        (
            json!({ "roles": [{ "name": "a" }], "rules": [{ "id": "a", "when": { "attribute": { "name": "shoeSize", "eq": "9" } }, "grant": { "roles": ["a"] } }] }),
            "rules[0].when.attribute.name",
        ),
        (
            json!({ "roles": [{ "name": "a" }], "rules": [{ "id": "a", "when": { "any": [] }, "grant": { "roles": ["a"] } }] }),
            "rules[0].when.any",
        ),
        (json!({ "tiers": [{ "name": "gold" }, { "name": "GOLD" }] }), "tiers[1].name"),
    ];
    for (body, field) in cases {
        let refused = expect_error(put_policy(&server, tenant, &body, None), 400, "invalid_value");
        assert_eq!(refused["field"], field, "{refused}");
    }
    let garbled = json!({ "rules": [{ "id": "a", "when": { "member_of": "x" } }] });
    let refused = expect_error(put_policy(&server, tenant, &garbled, None), 400, "malformed_request");
    assert!(refused["message"].as_str().unwrap().contains("rules[0].when"), "{refused}");
    let unchanged = ok(server.get(&policy_path(tenant)), 200);
    assert_eq!((unchanged["version"].as_u64(), unchanged["rules"].clone()), (Some(0), json!([])));
    assert!(audit(&server, "admin.access_policy.update").is_empty());
}

#[test]
fn concurrent_editors_are_told_apart_by_the_version_and_every_save_is_audited() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &[]);
    let tenant = tenant["id"].as_str().unwrap();
    assert_eq!(put_policy(&server, tenant, &policy(), Some("\"0\"")).status(), 200);
    let stale = put_policy(&server, tenant, &json!({}), Some("\"0\""));
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let shown = server.get(&policy_path(tenant));
    assert_eq!(shown.headers()["etag"], "\"1\"");
    assert_eq!(ok(shown, 200)["rules"][0]["id"], "sales", "the stale save changed nothing");
    let second = ok(put_policy(&server, tenant, &json!({}), Some("W/\"1\"")), 200);
    assert_eq!(second["version"], 2);
    let saves = audit(&server, "admin.access_policy.update");
    assert_eq!(saves.len(), 2);
    assert_eq!(saves[1]["detail"]["before"]["rules"][0]["id"], "sales");
    assert_eq!(saves[1]["detail"]["after"]["rules"], json!([]));
    assert_eq!(saves[1]["actor"]["kind"], "admin_key");
}

#[test]
fn a_dry_run_shows_what_a_rule_set_would_change_for_the_tenant_or_one_user_and_saves_nothing() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &[]);
    let scim = Scim::of_tenant(&server, &tenant);
    let tenant = tenant["id"].as_str().unwrap();
    let bob = ok(scim.post("/Users", crate::scim::user("bob@acme.test")), 201);
    let mut carol = crate::scim::user("carol@acme.test");
    carol[ENTERPRISE] = json!({ "department": "Engineering" });
    let carol = ok(scim.post("/Users", carol), 201);
    scim.create_user("dave@acme.test");
    scim.create_group("Sales", &[bob["id"].as_str().unwrap()]);
    assert_eq!(put_policy(&server, tenant, &json!({}), None).status(), 200);

    let mut candidate = policy();
    candidate["rules"][0]["when"] = json!({ "any_group": ["Sales", "Sales EMEA"] });
    let run = ok(server.post(&format!("{}/dry-run", policy_path(tenant)), candidate.clone()), 200);
    assert_eq!((run["users_evaluated"].as_u64(), run["users_changed"].as_u64()), (Some(3), Some(3)));
    assert_eq!(run["summary"]["roles"]["sales-rep"], json!({ "gained": 1, "lost": 0 }));
    assert_eq!(run["summary"]["roles"]["viewer"], json!({ "gained": 1, "lost": 0 }));
    assert_eq!(run["summary"]["tiers"]["enterprise"], json!({ "gained": 1, "lost": 0 }));
    assert_eq!(run["unknown_groups"], json!(["engineering", "sales emea"]));
    let carols = run["changes"].as_array().unwrap().iter().find(|c| c["user"]["id"] == carol["id"]).unwrap();
    assert_eq!(carols["after"]["roles"], json!(["engineer"]));
    assert_eq!(carols["granted_by"]["roles"]["engineer"], json!(["engineering"]));

    let limited =
        ok(server.post(&format!("{}/dry-run?limit=1", policy_path(tenant)), candidate.clone()), 200);
    assert_eq!(
        (limited["changes"].as_array().unwrap().len(), limited["truncated"].as_bool()),
        (1, Some(true))
    );
    let one = ok(
        server.post(&format!("{}/dry-run?user=bob@acme.test", policy_path(tenant)), candidate.clone()),
        200,
    );
    assert_eq!(one["users_evaluated"], 1);
    assert_eq!(one["changes"][0]["user"]["id"], bob["id"]);
    assert_eq!(one["changes"][0]["before"]["roles"], json!([]));
    assert_eq!(one["changes"][0]["after"]["roles"], json!(["sales-rep"]));
    expect_error(
        server.post(&format!("{}/dry-run?user=nobody", policy_path(tenant)), candidate),
        404,
        "not_found",
    );
    let invalid = json!({ "default": { "roles": ["ghost"] } });
    let refused =
        expect_error(server.post(&format!("{}/dry-run", policy_path(tenant)), invalid), 400, "invalid_value");
    assert_eq!(refused["field"], "default.roles[0]");

    assert_eq!(ok(server.get(&policy_path(tenant)), 200)["version"], 1, "a dry run saves nothing");
    let bobs = ok(
        server.get(&format!("/api/v1/tenants/{tenant}/users/{}/access", bob["id"].as_str().unwrap())),
        200,
    );
    assert_eq!(bobs["roles"], json!([]));
}

#[test]
fn groups_an_oidc_provider_claims_at_sign_in_give_roles_and_the_next_sign_in_replaces_them() {
    let claims = json!({
        "email": "ada@acme.test", "email_verified": true, "preferred_username": "ada@acme.test",
        "groups": ["Sales"],
    });
    let op = Op::start(json!({ "accounts": { "ada@acme.test": claims.clone() } }));
    let server = Server::start();
    let sso = oidc::Sso::set_up(
        &server,
        &op,
        json!({ "scopes": ["openid", "email", "profile", "groups"] }),
        json!({}),
    );
    assert_eq!(put_policy(&server, &sso.tenant, &policy(), None).status(), 200);

    let first = oidc::sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
    assert_eq!(first.claims["roles"], json!(["sales-rep"]), "{}", first.claims);
    let changed = audit(&server, "sso.user.roles_change");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["actor"]["id"], format!("oidc:{}", sso.connection["id"].as_str().unwrap()));
    assert_eq!(changed[0]["detail"]["cause"]["kind"], "sign_in");

    let mut moved = claims;
    moved["groups"] = json!(["Engineering"]);
    op.control("accounts", json!({ "id": "ada@acme.test", "claims": moved }));
    let second = oidc::sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
    assert_eq!(second.claims["roles"], json!(["engineer"]));
    assert_eq!(second.claims["tier"], "enterprise");
    let access = ok(server.get(&format!("/api/v1/tenants/{}/users/{}/access", sso.tenant, sso.user)), 200);
    assert_eq!(access["sign_in_claims"]["groups"], json!(["Engineering"]));
}

#[test]
fn groups_and_attributes_a_saml_assertion_carries_feed_the_same_rules() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = saml::Sso::set_up(&server, &idp, json!({}));
    assert_eq!(put_policy(&server, &sso.tenant, &policy(), None).status(), 200);
    let attributes = ["--attr", "groups=Sales", "--attr", "groups=Marketing"];
    let signed_in =
        saml::sign_in(&server, &idp, &sso, "ada@acme.test", "ada@acme.test", &attributes).unwrap();
    assert_eq!(
        granted(&signed_in.claims),
        json!({ "roles": ["sales-rep"], "tier": "standard", "programs": ["quota-tools"] })
    );
    let by_department = ["--attr", "department=Engineering"];
    let signed_in =
        saml::sign_in(&server, &idp, &sso, "ada@acme.test", "ada@acme.test", &by_department).unwrap();
    assert_eq!(signed_in.claims["roles"], json!(["engineer"]), "the department claim, with no groups now");
}

#[test]
fn roles_an_acknowledged_change_gave_survive_a_kill_9() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &[]);
    let scim = Scim::of_tenant(&server, &tenant);
    let tenant = tenant["id"].as_str().unwrap().to_owned();
    assert_eq!(put_policy(&server, &tenant, &policy(), None).status(), 200);
    let ada = scim.create_user("ada@acme.test")["id"].as_str().unwrap().to_owned();
    scim.create_group("Sales", &[&ada]);

    let server = Server::start_with(server.kill9(), &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)]);
    let access = ok(server.get(&format!("/api/v1/tenants/{tenant}/users/{ada}/access")), 200);
    assert_eq!(
        granted(&access),
        json!({ "roles": ["sales-rep"], "tier": "standard", "programs": ["quota-tools"] })
    );
    assert_eq!(ok(server.get(&policy_path(&tenant)), 200)["version"], 1);
}
