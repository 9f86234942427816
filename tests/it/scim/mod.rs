//! The SCIM server over HTTP: what Okta, Entra ID and any RFC 7644 client see.

mod clients;
mod conformance;
mod filters;
mod groups;
mod tokens;
mod users;

use reqwest::{
    Method,
    blocking::{Client, RequestBuilder, Response},
};
use serde_json::{Value, json};

use crate::server::Server;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A tenant's SCIM endpoint and one of its tokens.
pub struct Scim {
    pub tenant_id: String,
    pub base: String,
    pub token: String,
    client: Client,
}

impl Scim {
    /// Creates a tenant with a SCIM token on `server`.
    pub fn new(server: &Server, slug: &str) -> Scim {
        Scim::of_tenant(server, &server.create_tenant(slug, &[]))
    }

    /// A SCIM token for a tenant that exists (its admin API view).
    pub fn of_tenant(server: &Server, tenant: &Value) -> Scim {
        let tenant_id = tenant["id"].as_str().unwrap().to_owned();
        let base = tenant["urls"]["scim_base_url"].as_str().unwrap().to_owned();
        let token = issue_token(server, &tenant_id, "okta");
        Scim { tenant_id, base, token, client: Client::new() }
    }

    /// The same tenant and token on `server` (the same data directory, restarted on another port).
    pub fn on(&self, server: &Server) -> Scim {
        Scim { base: server.url(&format!("/scim/v2/{}", self.tenant_id)), ..self.with_token(&self.token) }
    }

    pub fn with_token(&self, token: &str) -> Scim {
        Scim {
            tenant_id: self.tenant_id.clone(),
            base: self.base.clone(),
            token: token.into(),
            client: Client::new(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.header("content-type", "application/scim+json").body(body.to_string());
        }
        request.send().unwrap()
    }

    pub fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Response {
        self.send(Method::POST, path, Some(body))
    }

    pub fn put(&self, path: &str, body: Value) -> Response {
        self.send(Method::PUT, path, Some(body))
    }

    pub fn patch(&self, path: &str, body: Value) -> Response {
        self.send(Method::PATCH, path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path, None)
    }

    /// GETs a resource expecting 200; returns its JSON.
    pub fn fetch(&self, path: &str) -> Value {
        ok(self.get(path), 200)
    }

    /// Creates a user expecting 201; returns it.
    pub fn create_user(&self, user_name: &str) -> Value {
        ok(self.post("/Users", user(user_name)), 201)
    }

    pub fn create_group(&self, name: &str, members: &[&str]) -> Value {
        let members: Vec<Value> = members.iter().map(|id| json!({ "value": id })).collect();
        ok(
            self.post(
                "/Groups",
                json!({ "schemas": [GROUP_SCHEMA], "displayName": name, "members": members }),
            ),
            201,
        )
    }

    /// The resources a filter finds.
    pub fn search(&self, resource: &str, filter: &str) -> Vec<Value> {
        let url = format!("/{resource}?filter={}", urlencode(filter));
        let list = ok(self.get(&url), 200);
        list["Resources"].as_array().cloned().unwrap_or_default()
    }
}

/// Creates a SCIM token through the admin API.
pub fn issue_token(server: &Server, tenant: &str, name: &str) -> String {
    let response = server.post(&format!("/api/v1/tenants/{tenant}/scim-tokens"), json!({ "name": name }));
    assert_eq!(response.status(), 201);
    response.json::<Value>().unwrap()["token"].as_str().unwrap().to_owned()
}

/// A User as Okta creates it.
pub fn user(user_name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": { "givenName": "Ada", "familyName": "Lovelace" },
        "emails": [{ "primary": true, "value": user_name, "type": "work" }],
        "displayName": "Ada Lovelace",
        "active": true,
    })
}

pub fn patch_op(operations: Value) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": operations })
}

/// Asserts the status and returns the JSON body (Null for an empty one).
pub fn ok(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body = response.text().unwrap();
    assert_eq!(actual, status, "body: {body}");
    if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap() }
}

/// Asserts a SCIM error: its status, its scimType (None: absent), its shape and content type.
pub fn scim_error(response: Response, status: u16, scim_type: Option<&str>) -> Value {
    let actual = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().unwrap();
    assert_eq!(actual, status, "body: {body}");
    assert_eq!(content_type.as_deref(), Some("application/scim+json"), "body: {body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{body}");
    assert_eq!(value["status"], status.to_string(), "{body}");
    assert_eq!(value["scimType"].as_str(), scim_type, "{body}");
    assert!(value["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    value
}

pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub fn id(resource: &Value) -> String {
    resource["id"].as_str().unwrap().to_owned()
}
