//! Requests Portcullis makes to other servers (an IdP's discovery document, keys, token and
//! userinfo endpoints): only to HTTPS addresses (or HTTP on this machine, for a test IdP),
//! bounded in time and size, never following a redirect.

use std::time::Duration;

use url::Url;

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An address of an IdP's: HTTPS, or HTTP to this machine (a test IdP). Anything over plain HTTP
/// could be anybody's.
pub fn check_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.len() > 2000 {
        return Err(format!("`{value}` is too long"));
    }
    let url = Url::parse(value).map_err(|_| format!("`{value}` is not an absolute URL"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(value.to_owned()),
        "http" if loopback => Ok(value.to_owned()),
        _ => Err(format!("`{value}` must use https")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{0}")]
    Refused(String),
    #[error("cannot reach {host}: {message}")]
    Unreachable { host: String, message: String },
    #[error("the answer from {0} is larger than 1 MiB")]
    TooLarge(String),
}

/// The HTTP client of the openidconnect crate's requests (`AsyncHttpClient` through `execute`).
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
}

impl Outbound {
    pub fn new() -> Result<Self, OutboundError> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| OutboundError::Refused(err.to_string()))?;
        Ok(Self { client })
    }

    /// Sends `request` and reads the whole answer (at most 1 MiB).
    pub async fn execute(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, OutboundError> {
        let url = check_url(&request.uri().to_string()).map_err(OutboundError::Refused)?;
        let host = request.uri().host().unwrap_or_default().to_owned();
        let unreachable = |err: reqwest::Error| OutboundError::Unreachable {
            host: host.clone(),
            message: err.without_url().to_string(),
        };
        let (parts, body) = request.into_parts();
        let mut response = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(unreachable)?;
        let mut builder = http::Response::builder().status(response.status());
        if let Some(headers) = builder.headers_mut() {
            headers.extend(response.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY_BYTES {
                return Err(OutboundError::TooLarge(host));
            }
        }
        builder.body(body).map_err(|err| OutboundError::Refused(err.to_string()))
    }

    /// GETs a JSON document.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, OutboundError> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|err| OutboundError::Refused(err.to_string()))?;
        let response = self.execute(request).await?;
        if !response.status().is_success() {
            return Err(OutboundError::Refused(format!("{url} answered {}", response.status().as_u16())));
        }
        serde_json::from_slice(response.body())
            .map_err(|err| OutboundError::Refused(format!("{url} did not answer JSON: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_this_machine_is_reached() {
        assert!(check_url("https://idp.example.com/metadata").is_ok());
        assert!(check_url("http://127.0.0.1:8080/metadata").is_ok());
        assert!(check_url("http://idp.example.com/metadata").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
    }
}
