//! The MediaFire web API client: session, transport, uploads, downloads.
//!
//! It speaks the cookie + session-token flavour of MediaFire's API 1.5 as
//! `/work/shared/mediafire-api.md` specifies it, and knows nothing of WebDAV:
//! the adapter sees it only through [`crate::remote::Remote`].
//!
//! # Layout
//!
//! - [`client`]: [`Client`] and [`ClientConfig`]; one method per API action
//!   and the shared transport (limiter → token → HTTP → envelope).
//! - [`types`]: serde wire types and the lenient string/number deserializers.
//! - [`envelope`]: the one function turning any reply into `Result<T, Error>`.
//! - [`codes`]: MediaFire error codes → [`ErrorKind`](crate::error::ErrorKind).
//! - [`retry`]: the only place that retries (backoff, jitter, idempotency).
//! - [`limiter`]: global calls-per-second bucket and in-flight cap.
//! - [`session`]: the only owner of cookie and tokens; renewal; state file.
//! - [`upload`]: check → instant | resumable units → poll.
//! - [`download`]: direct-link cache and ranged streaming GETs.
//! - [`remote_impl`]: `impl Remote for Client`; local name checks.
//! - [`stats`]: counters for `/metrics`.

pub mod client;
pub mod codes;
pub mod download;
pub mod envelope;
pub mod limiter;
pub mod remote_impl;
pub mod retry;
pub mod session;
pub mod stats;
pub mod types;
pub mod upload;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use client::{Client, ClientConfig, ContentType, scrub_url};
pub use remote_impl::{file_info, folder_info};
pub use stats::{ApiCallCount, ClientStats};

/// Parses MediaFire's `created_utc` (`2021-09-28T06:10:15Z`, or any
/// RFC 3339 time). `None` otherwise: the local-time `created` field is
/// never passed here.
pub fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let secs = chrono::DateTime::parse_from_rfc3339(s).ok()?.timestamp();
    if secs >= 0 {
        Some(UNIX_EPOCH + Duration::from_secs(secs as u64))
    } else {
        None
    }
}
