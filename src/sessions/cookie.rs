//! Browser cookies: reading one from a request and writing the `Set-Cookie` of ours.
//!
//! Our cookies are HttpOnly, `SameSite=Lax` (sent on the top-level navigation that brings the
//! browser back from the app or an IdP, never on a cross-site subrequest) and, when the public URL
//! is HTTPS, Secure with the `__Host-` prefix, which pins them to this host and path `/`.

use axum::http::{HeaderMap, HeaderValue, header};
use time::Duration;

/// The session cookie's name for a server reached over HTTPS (`secure`) or plain HTTP.
pub fn session_name(secure: bool) -> &'static str {
    if secure { "__Host-portcullis_session" } else { "portcullis_session" }
}

/// The login-flow cookie: binds the sign-in forms to the browser that opened them.
pub fn browser_name(secure: bool) -> &'static str {
    if secure { "__Host-portcullis_browser" } else { "portcullis_browser" }
}

/// The admin dashboard's session cookie (operators and setup links).
pub fn admin_name(secure: bool) -> &'static str {
    if secure { "__Host-portcullis_admin" } else { "portcullis_admin" }
}

/// The value of the cookie `name`, if the request carries exactly one.
pub fn read<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value);
    let first = found.next()?;
    // Two cookies of one name (one planted for a parent domain, say): trust neither.
    found.next().is_none().then_some(first)
}

/// A `Set-Cookie` value for one of our cookies; `max_age` None makes it last the browser session.
pub fn set(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> Option<HeaderValue> {
    set_with(name, value, max_age, secure, "Lax")
}

/// A `Set-Cookie` value for a cookie that no other site may ever make the browser send: the
/// dashboard's, which nothing reaches by a link from elsewhere.
pub fn set_strict(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> Option<HeaderValue> {
    set_with(name, value, max_age, secure, "Strict")
}

fn set_with(
    name: &str,
    value: &str,
    max_age: Option<Duration>,
    secure: bool,
    same_site: &str,
) -> Option<HeaderValue> {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={}", age.whole_seconds().max(0)));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).ok()
}

/// A `Set-Cookie` value that deletes one of our cookies.
pub fn clear(name: &str, secure: bool) -> Option<HeaderValue> {
    set(name, "", Some(Duration::ZERO), secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn reads_one_cookie_among_many_and_refuses_duplicates() {
        let h = headers(&["a=1; portcullis_session=abc.def", "b=2"]);
        assert_eq!(read(&h, "portcullis_session"), Some("abc.def"));
        assert_eq!(read(&h, "b"), Some("2"));
        assert_eq!(read(&h, "missing"), None);
        let twice = headers(&["portcullis_session=x", "portcullis_session=y"]);
        assert_eq!(read(&twice, "portcullis_session"), None);
    }

    #[test]
    fn secure_cookies_carry_the_host_prefix_and_the_secure_flag() {
        let value = set(session_name(true), "v", Some(Duration::hours(1)), true).unwrap();
        assert_eq!(
            value.to_str().unwrap(),
            "__Host-portcullis_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600; Secure"
        );
        let plain = set(session_name(false), "v", None, false).unwrap();
        assert_eq!(plain.to_str().unwrap(), "portcullis_session=v; Path=/; HttpOnly; SameSite=Lax");
        assert!(clear("x", false).unwrap().to_str().unwrap().contains("Max-Age=0"));
    }
}
