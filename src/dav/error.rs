//! The one place where a [`crate::error::Error`] becomes a dav-server
//! [`FsError`], and where the HTTP status that `FsError` cannot express is
//! remembered for the request wrapper.
//!
//! dav-server has no `FsError` for "upstream unavailable": `GeneralFailure`
//! always becomes 500. So the table below also names an override status
//! (502/503) for the kinds that mean "MediaFire is unwell"; `fs.rs` stores it
//! in the request's [`Failure`] slot and `MfDav::handle` rewrites a 500 into
//! it. Every conversion logs the rich error once: `debug!` for NotFound
//! (clients probe missing names all the time), `warn!` otherwise.

use std::sync::{Arc, Mutex};

use dav_server::fs::FsError;
use http::StatusCode;
use tracing::{debug, warn};

use crate::error::{Error, ErrorKind};

/// How one error kind reaches the client.
///
/// | kind          | FsError             | status |
/// |---------------|---------------------|--------|
/// | NotFound      | NotFound            | 404 (409 for a missing parent on PUT/MKCOL) |
/// | AlreadyExists | Exists              | 405 / 409 / 412 per method |
/// | Forbidden     | Forbidden           | 403 |
/// | InvalidName   | Forbidden           | 403: the name is the problem, retrying as is cannot help |
/// | QuotaExceeded | InsufficientStorage | 507 |
/// | Local         | InsufficientStorage | 507: spool or state disk trouble, usually a full disk |
/// | Auth          | GeneralFailure      | 503 (dead credentials: the operator must act) |
/// | RateLimited   | GeneralFailure      | 503 with `Retry-After` |
/// | Transient     | GeneralFailure      | 502, or 504 when the cause is a timeout |
/// | Permanent     | GeneralFailure      | 502 (MediaFire refused; not our bug) |
/// | Cancelled     | GeneralFailure      | 503 |
pub(crate) fn to_fs_error(e: &Error) -> FsError {
    let fs = match e.kind() {
        ErrorKind::NotFound => FsError::NotFound,
        ErrorKind::AlreadyExists => FsError::Exists,
        ErrorKind::Forbidden | ErrorKind::InvalidName => FsError::Forbidden,
        ErrorKind::QuotaExceeded | ErrorKind::Local => FsError::InsufficientStorage,
        _ => FsError::GeneralFailure,
    };
    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists) {
        // Clients probe missing names and MKCOL existing ones all day long.
        debug!(error = %e, fs_error = ?fs, "fs: refused");
    } else {
        warn!(error = %e, fs_error = ?fs, "remote call failed");
    }
    fs
}

/// The status `handle` answers instead of the 500 dav-server makes of
/// `GeneralFailure`; `None` when the `FsError` already says it.
pub(crate) fn override_status(e: &Error) -> Option<StatusCode> {
    match e.kind() {
        ErrorKind::Auth | ErrorKind::RateLimited | ErrorKind::Cancelled => {
            Some(StatusCode::SERVICE_UNAVAILABLE)
        }
        ErrorKind::Transient if is_timeout(e) => Some(StatusCode::GATEWAY_TIMEOUT),
        ErrorKind::Transient | ErrorKind::Permanent => Some(StatusCode::BAD_GATEWAY),
        _ => None,
    }
}

/// Whether a failure was MediaFire not answering in time: an I/O or reqwest
/// timeout anywhere in the source chain. The seam has no `Timeout` kind, so
/// this is the one place that looks inside.
fn is_timeout(e: &Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if let Some(r) = c.downcast_ref::<reqwest::Error>()
            && r.is_timeout()
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The status for a failure answered directly by `handle` (pre-listing).
pub(crate) fn status_for(e: &Error) -> StatusCode {
    match e.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::Forbidden | ErrorKind::InvalidName => StatusCode::FORBIDDEN,
        ErrorKind::QuotaExceeded | ErrorKind::Local => StatusCode::INSUFFICIENT_STORAGE,
        _ => override_status(e).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// Per-request slot: the status `handle` should answer if dav-server turns
/// our error into a plain 500. Shared by the request's `MfFs` and `MfFile`s.
#[derive(Clone, Debug, Default)]
pub(crate) struct Failure(Arc<Mutex<Option<StatusCode>>>);

impl Failure {
    /// Converts `e`, remembering the override status if its kind has one.
    pub(crate) fn convert(&self, e: &Error) -> FsError {
        if let Some(status) = override_status(e) {
            self.set(status);
        }
        to_fs_error(e)
    }

    pub(crate) fn set(&self, status: StatusCode) {
        *self.0.lock().unwrap() = Some(status);
    }

    pub(crate) fn get(&self) -> Option<StatusCode> {
        *self.0.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_maps_each_kind() {
        let fs = |k| to_fs_error(&Error::new(k, "x"));
        assert_eq!(fs(ErrorKind::NotFound), FsError::NotFound);
        assert_eq!(fs(ErrorKind::AlreadyExists), FsError::Exists);
        assert_eq!(fs(ErrorKind::InvalidName), FsError::Forbidden);
        assert_eq!(fs(ErrorKind::QuotaExceeded), FsError::InsufficientStorage);
        assert_eq!(fs(ErrorKind::Auth), FsError::GeneralFailure);
        let over = |k| override_status(&Error::new(k, "x"));
        assert_eq!(over(ErrorKind::Auth), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(over(ErrorKind::Transient), Some(StatusCode::BAD_GATEWAY));
        assert_eq!(over(ErrorKind::NotFound), None);
        let timeout = Error::new(ErrorKind::Transient, "x")
            .with_source(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(override_status(&timeout), Some(StatusCode::GATEWAY_TIMEOUT));
    }

    #[test]
    fn failure_slot_remembers_override() {
        let f = Failure::default();
        assert_eq!(
            f.convert(&Error::new(ErrorKind::NotFound, "x")),
            FsError::NotFound
        );
        assert_eq!(f.get(), None);
        f.convert(&Error::new(ErrorKind::RateLimited, "x"));
        assert_eq!(f.get(), Some(StatusCode::SERVICE_UNAVAILABLE));
    }
}
