//! The pages a person sees while signing in, served by the binary: plain HTML with one
//! stylesheet, no scripts, every value escaped. Error pages say what went wrong and what to do,
//! never which check failed.

use axum::{
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// The stylesheet, served at `/assets/portcullis.css`.
pub const STYLESHEET: &str = include_str!("portcullis.css");

/// No scripts at all; styles from this origin only; never framed (clickjacking).
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title` is plain text, `body` is HTML built with `escape`d values.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} · Sign in</title><link rel=\"stylesheet\" href=\"/assets/portcullis.css\"></head>\
         <body><main class=\"card\"><h1>{title}</h1>{body}</main></body></html>",
        title = escape(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    response
}

pub fn error(status: StatusCode, title: &str, message: &str) -> Response {
    page(status, title, &format!("<p class=\"error\" role=\"alert\">{}</p>", escape(message)))
}

/// A refused single sign-on: the check's sentence, and the check's code and the request id an
/// IT admin can look up in the audit trail.
pub fn sso_refused(status: StatusCode, message: &str, code: &str, request_id: &str) -> Response {
    let body = format!(
        "<p>{message}</p><p class=\"detail\">Check: <code>{code}</code> · Request: <code>{request}</code></p>\
         <p>Try signing in again from the start. If this keeps happening, give these details to your IT administrator.</p>",
        message = escape(message),
        code = escape(code),
        request = escape(request_id),
    );
    page(status, "Single sign-on failed", &body)
}

/// The outcome of an admin's connection test (`result` has `ok`): what the IdP sent and who
/// would have signed in, or why nobody would.
pub fn connection_test(title: &str, result: &serde_json::Value) -> Response {
    let pretty = serde_json::to_string_pretty(result).unwrap_or_default();
    let verdict = if result["ok"] == serde_json::Value::Bool(true) {
        "The identity provider's answer passed every check."
    } else {
        "The identity provider's answer is valid, but this person could not sign in:"
    };
    let body = format!("<p>{verdict}</p><pre>{}</pre><p>No session was created.</p>", escape(&pretty));
    page(StatusCode::OK, title, &body)
}

pub fn expired_request() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "Sign-in links are valid for 30 minutes and once only. Go back to the application and sign in again.",
    )
}

pub fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        "Something went wrong on our side. Wait a moment, then try again.",
    )
}

/// A form body that cannot be read as the form it claims to be.
pub fn unreadable_form() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "Something went wrong",
        "The form could not be read. Go back and try again.",
    )
}

/// A form that did not come from the page we served to this browser (CSRF, or cookies off).
pub fn forged_form() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "Please try again",
        "This form could not be accepted. Make sure cookies are allowed for this site, then start again from the application.",
    )
}

/// An `<input type="hidden">`.
pub fn hidden(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value))
}

/// A message shown above a form, announced to screen readers.
pub fn alert(message: Option<&str>) -> String {
    message
        .map(|m| format!("<p class=\"error\" role=\"alert\" id=\"form-error\">{}</p>", escape(m)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(
            hidden("n", "\"><script>"),
            "<input type=\"hidden\" name=\"n\" value=\"&quot;&gt;&lt;script&gt;\">"
        );
    }
}
