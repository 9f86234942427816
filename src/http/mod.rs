//! What every feature's HTTP face shares: the admin API's error type and its mapping to
//! responses, extractors that turn rejections into that error, bearer-token parsing, and the
//! middleware stack (request ids, security headers, limits).

pub mod auth;
pub mod client_ip;
pub mod error;
pub mod extract;
pub mod health;
pub mod middleware;
pub mod outbound;
pub mod tls;

pub use error::ApiError;
pub use extract::{ApiJson, ApiQuery, present};
