//! The WebDAV adapter: dav-server's `DavFileSystem` over a
//! [`Remote`], and [`MfDav::handle`], which serves one
//! request.
//!
//! `handle` does what dav-server cannot do from inside a filesystem:
//! - refuses every mutating method with 403 when `read_only` (the server
//!   forbids it; dav-server's method filter would say 405, "this resource
//!   never supports that method");
//! - gives a PROPFIND without `Depth` the `Depth: 1` meaning (dav-server
//!   0.11 would list the children only, and nothing on a file);
//! - lists the folder of a Depth-1 PROPFIND or an HTML index *before*
//!   dav-server starts its answer, because dav-server swallows `read_dir`
//!   errors and would show an empty folder (the cache makes the second
//!   listing free);
//! - opens the download of a plain GET before dav-server sends a 200, so a
//!   MediaFire failure is a status and not a cut-off body;
//! - turns the 500 dav-server makes of `FsError::GeneralFailure` into the
//!   502/503 the error kind asks for (see `error.rs`);
//! - takes a PUT's `X-OC-Mtime` as the file's modification time, and drops
//!   `sabredav-partialupdate` from the `DAV` header;
//! - reads the modification time a PROPPATCH sets (Windows'
//!   `Win32LastModifiedTime`, ownCloud's `lastmodified`; see `mtime.rs`);
//! - answers GET on a folder with its own HTML listing (`index.rs`);
//! - answers 400, not dav-server's 502, when the request body breaks off.
//!
//! Not here: authentication, `/healthz` and metrics (the server does them),
//! and any knowledge of MediaFire's URLs or tokens (the `Remote` hides them).
//! Partial updates (PATCH, PUT with Content-Range) are refused: MediaFire
//! has no way to change part of a file.

mod cache;
mod error;
mod file;
mod fs;
mod guard;
mod index;
#[doc(hidden)]
pub mod memory;
mod meta;
mod mtime;
mod overlay;
mod props;
mod spool;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::body::Body;
use dav_server::davpath::DavPath;
use dav_server::memls::MemLs;
use dav_server::{DavHandler, DavMethod, DavMethodSet};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tracing::{debug, info, warn};
use unicode_normalization::UnicodeNormalization;

use crate::remote::Remote;

use self::cache::Node;
use self::error::{Failure, status_for};
use self::fs::{Found, MfFs, Prefetch, Shared, rel_str};

/// Settings of the WebDAV adapter.
#[derive(Clone, Debug)]
pub struct DavConfig {
    /// Where dead properties and the overlay are persisted (JSON, atomic
    /// writes). Default: `./state`.
    pub state_dir: PathBuf,
    /// Where PUT bodies are spooled. Default: the system temp directory.
    pub spool_dir: PathBuf,
    /// How long a folder listing is trusted before revalidation. Default 30 s.
    pub cache_ttl: Duration,
    /// Refuse every mutating method with 403. Default false.
    pub read_only: bool,
    /// Keep Finder's `._*` and `.DS_Store` files locally instead of
    /// uploading them. Default true.
    pub local_apple_files: bool,
    /// URL prefix the server is mounted under (`""` = the root).
    pub prefix: String,
}

impl Default for DavConfig {
    fn default() -> Self {
        DavConfig {
            state_dir: PathBuf::from("state"),
            spool_dir: std::env::temp_dir(),
            cache_ttl: Duration::from_secs(30),
            read_only: false,
            local_apple_files: true,
            prefix: String::new(),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DavStats {
    /// Folder lookups answered from the cache (fresh or revalidated).
    pub cache_hits: u64,
    /// Folder listings fetched from the remote.
    pub cache_misses: u64,
    pub uploads_in_flight: u64,
    /// Request body bytes received by PUT.
    pub bytes_in: u64,
    /// File bytes sent by GET.
    pub bytes_out: u64,
}

/// The WebDAV service over one remote. Cheap to clone.
#[derive(Clone)]
pub struct MfDav {
    shared: Arc<Shared>,
    handler: DavHandler,
}

/// The most a GET asks of a file per read. Reads hand over slices of the
/// chunks the download already holds (never copied, never merged), so this
/// only keeps dav-server's default (16 KiB) from splitting each chunk into
/// several body frames.
const GET_CHUNK: usize = 256 * 1024;

/// Methods that change something; refused with 403 when read-only.
fn is_mutating(method: &Method) -> bool {
    matches!(
        method.as_str(),
        "PUT" | "PATCH" | "DELETE" | "MKCOL" | "COPY" | "MOVE" | "PROPPATCH" | "LOCK" | "UNLOCK"
    )
}

/// NFC form of a name or path segment.
pub(crate) fn nfc(s: &str) -> String {
    s.nfc().collect()
}

fn plain(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::from(format!("{status}\n")));
    *resp.status_mut() = status;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("30"));
    }
    resp
}

impl MfDav {
    pub fn new(remote: Arc<dyn Remote>, mut config: DavConfig) -> anyhow::Result<MfDav> {
        debug!(?config, "dav: starting adapter");
        config.prefix = config.prefix.trim_end_matches('/').to_string();
        let prefix = config.prefix.clone();
        let shared = Arc::new(Shared::new(remote, config)?);
        let methods = if shared.config.read_only {
            // Only for the `Allow` header: `handle` answers 403 before this.
            DavMethodSet::WEBDAV_RO
        } else {
            let mut all = DavMethodSet::all();
            all.remove(DavMethod::Patch);
            all
        };
        let handler = DavHandler::builder()
            .strip_prefix(prefix)
            .locksystem(MemLs::new())
            .methods(methods)
            .autoindex(true)
            .read_buf_size(GET_CHUNK)
            .build_handler();
        Ok(MfDav { shared, handler })
    }

    /// Serve one WebDAV request (auth, /healthz and metrics are done by the caller).
    pub async fn handle<B>(&self, req: http::Request<B>) -> http::Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if self.shared.config.read_only && is_mutating(req.method()) {
            debug!(method = %req.method(), "dav: refused, read-only");
            return plain(StatusCode::FORBIDDEN);
        }
        if let Some(resp) = guard::refuse(&req, &self.shared.config.prefix) {
            return resp;
        }
        let mut req = match guard::xml_body(req).await {
            Ok(req) => req,
            Err(resp) => return resp,
        };
        if req.method().as_str() == "PROPFIND"
            && let Some(resp) = self.before_propfind(&mut req).await
        {
            return resp;
        }
        if req.method().as_str() == "PROPPATCH" {
            return self.proppatch(req).await;
        }
        let prefetch = Prefetch::default();
        if req.method() == Method::GET
            && let Some(resp) = self.before_get(&req, &prefetch).await
        {
            return resp;
        }
        self.dispatch(req, prefetch).await
    }

    /// Hands a request to dav-server over a fresh per-request filesystem,
    /// then rewrites the answer (see [`finish`]).
    async fn dispatch<B>(&self, req: Request<B>, prefetch: Prefetch) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let mtime = oc_mtime(&req);
        let failure = Failure::default();
        let fs = MfFs {
            shared: self.shared.clone(),
            failure: failure.clone(),
            prefetch,
            mtime,
            delete_root: (req.method() == Method::DELETE)
                .then(|| self.rel_of(&req))
                .flatten(),
        };
        let config = dav_server::DavConfig::new().filesystem(Box::new(fs));
        // dav-server answers 502 when the request body fails; that failure
        // is the client's (gone, or fewer bytes than announced), not ours.
        let broken = Arc::new(AtomicBool::new(false));
        let seen = broken.clone();
        let req = req.map(move |body| {
            body.map_err(move |e| {
                seen.store(true, Ordering::Relaxed);
                e
            })
        });
        let resp = self.handler.handle_with(config, req).await;
        finish(
            resp,
            &failure,
            mtime.is_some(),
            broken.load(Ordering::Relaxed),
        )
    }

    /// PROPPATCH, read whole (dav-server buffers it anyway) so that a
    /// modification time in it can be kept: dav-server answers 200 for the
    /// `Win32*` properties without storing them, and 403 for ownCloud's
    /// `{DAV:}lastmodified` unless it is moved aside first (see `mtime.rs`).
    async fn proppatch<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = req.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_PROPPATCH_BODY);
        let bytes = match limited.collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                debug!(error = %e, "dav: PROPPATCH body unreadable or too large");
                let too_large = e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                return plain(if too_large {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                });
            }
        };
        let (bytes, dav_time) = match mtime::rewrite_lastmodified(&bytes) {
            Some((moved, t)) => (bytes::Bytes::from(moved), Some(t)),
            None => (bytes, None),
        };
        let set = mtime::proppatch_mtime(&bytes).or(dav_time);
        let req = Request::from_parts(parts, http_body_util::Full::new(bytes));
        let rel = self.rel_of(&req);
        let resp = self.dispatch(req, Prefetch::default()).await;
        let (Some(time), Some(rel)) = (set, rel) else {
            return resp;
        };
        if resp.status() != StatusCode::MULTI_STATUS {
            return resp;
        }
        // Keep the time only when every property in the answer succeeded.
        let (parts, body) = resp.into_parts();
        let body = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                warn!(error = %e, "dav: PROPPATCH answer unreadable");
                return plain(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        if all_props_ok(&body)
            && let Err(e) = self.shared.set_mtime(&rel, time).await
        {
            debug!(path = %rel, error = %e, "dav: PROPPATCH time not kept");
        }
        let body = match dav_time {
            // Name the property as the client did.
            Some(_) => {
                bytes::Bytes::from(String::from_utf8_lossy(&body).replace(mtime::MTIME_NS, "DAV:"))
            }
            None => body,
        };
        Response::from_parts(parts, Body::from(body))
    }

    /// Applies the Depth default and pre-lists the folder; `Some` is the
    /// answer when the listing failed.
    async fn before_propfind<B>(&self, req: &mut Request<B>) -> Option<Response<Body>> {
        let depth = match req.headers().get("depth") {
            Some(v) => v.to_str().unwrap_or("").trim().to_ascii_lowercase(),
            None => {
                req.headers_mut()
                    .insert("depth", HeaderValue::from_static("1"));
                "1".to_string()
            }
        };
        if depth != "1" {
            return None;
        }
        let rel = self.rel_of(req)?;
        self.prelist_answer(&rel).await
    }

    /// Lists the folder at `rel`; `Some` is the error answer when that fails.
    async fn prelist_answer(&self, rel: &str) -> Option<Response<Body>> {
        match self.shared.prelist(rel).await {
            Ok(()) => None,
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => None,
            Err(e) => Some(self.failed(rel, &e)),
        }
    }

    /// The answer for a remote failure met before dav-server ran.
    fn failed(&self, rel: &str, e: &crate::error::Error) -> Response<Body> {
        warn!(path = %rel, error = %e, "dav: remote failure before the request could be served");
        plain(status_for(e))
    }

    /// Opens the download of a GET before dav-server commits to a 200, so
    /// that a MediaFire failure is a 502/503; `Some` is that answer.
    /// Conditional GETs are left lazy: they may not need the body at all.
    async fn before_get<B>(&self, req: &Request<B>, prefetch: &Prefetch) -> Option<Response<Body>> {
        const CONDITIONAL: [&str; 5] = [
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
            "if-range",
        ];
        let rel = self.rel_of(req)?;
        let found = self.shared.find(&rel).await;
        if let Ok(Some(Found::Root | Found::Remote(Node::Folder(_)))) = &found {
            // dav-server redirects `/folder` to `/folder/`.
            if !req.uri().path().ends_with('/') {
                return None;
            }
            return Some(self.index(&rel).await);
        }
        if CONDITIONAL.iter().any(|h| req.headers().contains_key(*h)) {
            return None;
        }
        let f = match found {
            Ok(Some(Found::Remote(Node::File(f)))) => f,
            Ok(_) => return None,
            Err(e) => return Some(self.failed(&rel, &e)),
        };
        let offset = req
            .headers()
            .get(http::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map_or(Some(0), |r| range_start(r, f.size))?;
        if offset >= f.size {
            return None;
        }
        match self.shared.remote.download(&f.quickkey, offset, None).await {
            Ok(dl) => {
                prefetch.put(&f.quickkey, offset, dl.body);
                None
            }
            Err(e) => {
                use crate::error::ErrorKind;
                if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Forbidden) {
                    // Gone (or trashed: MediaFire then refuses the link with
                    // "User lacks permissions") since we listed it: the
                    // listing is stale. A fresh one decides between 404 and 403.
                    self.shared.cache.forget(cache::split(&rel).0);
                    if e.kind() == ErrorKind::Forbidden
                        && matches!(self.shared.find(&rel).await, Ok(None))
                    {
                        debug!(path = %rel, "dav: file gone upstream since it was listed");
                        return Some(plain(StatusCode::NOT_FOUND));
                    }
                }
                Some(self.failed(&rel, &e))
            }
        }
    }

    /// The HTML listing of the folder at `rel` (see `index.rs`); a failed
    /// listing is an error status, never an empty page.
    async fn index(&self, rel: &str) -> Response<Body> {
        match self.shared.read_dir(rel).await {
            Ok(entries) => {
                let page = index::render(&self.shared.config.prefix, rel, entries);
                let mut resp = Response::new(Body::from(page));
                let headers = resp.headers_mut();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                headers.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
                resp
            }
            Err(e) => self.failed(rel, &e),
        }
    }

    /// The relative NFC path a request names, `None` when it is outside the
    /// prefix or not UTF-8 (dav-server answers those itself).
    fn rel_of<B>(&self, req: &Request<B>) -> Option<String> {
        let mut path = DavPath::new(req.uri().path()).ok()?;
        path.set_prefix(&self.shared.config.prefix).ok()?;
        Some(rel_str(std::str::from_utf8(path.as_bytes()).ok()?))
    }

    /// Cache hits/misses, uploads in flight, bytes in/out.
    pub fn stats(&self) -> DavStats {
        let c = &self.shared.counters;
        DavStats {
            cache_hits: self.shared.cache.hits.load(Ordering::Relaxed),
            cache_misses: self.shared.cache.misses.load(Ordering::Relaxed),
            uploads_in_flight: c.uploads_in_flight.load(Ordering::Relaxed).max(0) as u64,
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// Rewrites dav-server's answer: the status our error kind asks for, the
/// `DAV` header without partial updates, the `X-OC-Mtime` acknowledgement.
fn finish(
    mut resp: Response<Body>,
    failure: &Failure,
    took_mtime: bool,
    body_broke: bool,
) -> Response<Body> {
    if resp.status() == StatusCode::INTERNAL_SERVER_ERROR
        && let Some(status) = failure.get()
    {
        *resp.status_mut() = status;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
    }
    // Only the statuses dav-server makes of a body error: a 507 (full spool
    // disk) or 503 stays what it is.
    let from_body = matches!(
        resp.status(),
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT | StatusCode::INTERNAL_SERVER_ERROR
    );
    if body_broke && from_body {
        info!(
            "dav: request body broke off (client gone or body shorter than announced), nothing stored"
        );
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        resp.headers_mut().remove(http::header::RETRY_AFTER);
    }
    if let Some(dav) = resp.headers().get("dav").and_then(|v| v.to_str().ok()) {
        let tokens: Vec<&str> = dav
            .split(',')
            .map(str::trim)
            .filter(|t| *t != "sabredav-partialupdate")
            .collect();
        if let Ok(v) = HeaderValue::from_str(&tokens.join(", ")) {
            resp.headers_mut().insert("dav", v);
        }
    }
    if took_mtime && resp.status().is_success() {
        // ownCloud's convention, which rclone and others look for.
        resp.headers_mut()
            .insert("x-oc-mtime", HeaderValue::from_static("accepted"));
    }
    resp
}

/// The modification time a PUT asks for in `X-OC-Mtime` (Unix seconds,
/// as ownCloud clients and rclone send it).
fn oc_mtime<B>(req: &Request<B>) -> Option<SystemTime> {
    if req.method() != Method::PUT {
        return None;
    }
    let v = req.headers().get("x-oc-mtime")?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| UNIX_EPOCH + Duration::from_secs(secs as u64))
}

/// Largest PROPPATCH body read (dav-server refuses more than this too).
const MAX_PROPPATCH_BODY: usize = 64 * 1024;

/// Whether every `status` line of a multistatus answer is a 2xx.
fn all_props_ok(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let mut seen = false;
    for chunk in text.split("HTTP/1.1 ").skip(1) {
        seen = true;
        if !chunk.starts_with('2') {
            return false;
        }
    }
    seen
}

/// Where the first range of a `Range: bytes=...` header starts; `None`
/// when the header is not one we understand (then nothing is prefetched).
fn range_start(header: &str, size: u64) -> Option<u64> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (start, end) = first.split_once('-')?;
    if start.is_empty() {
        let suffix: u64 = end.trim().parse().ok()?;
        Some(size.saturating_sub(suffix))
    } else {
        start.trim().parse().ok()
    }
}

#[cfg(test)]
mod tests;
