//! The HTTP side: a hyper 1 accept loop on loopback, routing, request parameters (query,
//! urlencoded and multipart forms), the JSON envelope, the token endpoint, the download host and
//! the admin endpoints.
//!
//! Every `/api/` request goes through one pipeline: count it → rate limit (163) → injected
//! transient failure → parameters → token check (104/105) → the action → envelope.

use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::api::{self, ApiError, Caller, Fields, Params};
use super::faults::{Faults, Injected};
use super::state::{Emulator, lock, now_ms};
use super::upload;

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Largest form body accepted on ordinary API calls.
const FORM_LIMIT: usize = 1024 * 1024;
/// Largest multipart `upload/simple` body (multipart is parsed in memory; raw bodies stream).
const MULTIPART_UPLOAD_LIMIT: usize = 64 * 1024 * 1024;
const API_VERSION: &str = "1.5";

/// The running accept loop.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, asks open connections to finish, waits (bounded) for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

pub(crate) fn spawn(emu: Arc<Emulator>, listener: TcpListener) -> Running {
    emu.spawn_saver();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(emu, listener, rx));
    Running { stop, task }
}

/// Resolves when a stop was requested; never when the sender is gone (dropping the handle does
/// not stop the server).
async fn stopped(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn accept_loop(emu: Arc<Emulator>, listener: TcpListener, rx: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    conns.spawn(serve_connection(emu.clone(), stream, remote, rx.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "emulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stopped(rx.clone()) => break,
        }
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn serve_connection(
    emu: Arc<Emulator>,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    rx: watch::Receiver<bool>,
) {
    let svc = service_fn(move |req| handle(emu.clone(), req, remote));
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::trace!(error = %e, "emulator: connection ended");
            }
        }
        _ = stopped(rx) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
        }
    }
}

/// The error that makes hyper close the connection without an answer (fault `drop`).
fn dropped() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "fault injection: connection dropped",
    )
}

async fn handle(
    emu: Arc<Emulator>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Response<Body>, io::Error> {
    let path = req.uri().path().to_string();
    tracing::trace!(method = %req.method(), path = %path, "emulator: request");
    if path.starts_with("/__emulator/") {
        return Ok(admin(&emu, req, remote).await);
    }
    if path.starts_with("/application/") {
        return Ok(application(&emu, req).await);
    }
    if path.starts_with("/api/") {
        return api_call(&emu, req).await;
    }
    if path.starts_with("/dl/") || path.starts_with("/dlh/") {
        return Ok(download(&emu, &req).await);
    }
    if path.starts_with("/convkey/") {
        return Ok(thumbnail());
    }
    Ok(text(StatusCode::NOT_FOUND, "text/plain", "not found\n"))
}

// ---------------------------------------------------------------------------------------------
// bodies and envelopes

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn text(status: StatusCode, content_type: &str, body: &str) -> Response<Body> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    r
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn success_body(action: &str, mut fields: Fields) -> Value {
    fields.insert("action".into(), json!(action));
    fields.insert("result".into(), json!("Success"));
    fields.insert("current_api_version".into(), json!(API_VERSION));
    json!({ "response": fields })
}

fn error_body(action: &str, e: &ApiError) -> Value {
    json!({"response": {
        "action": action,
        "message": e.message,
        "error": e.code,
        "result": "Error",
        "current_api_version": API_VERSION,
    }})
}

fn error_status(emu: &Emulator) -> StatusCode {
    StatusCode::from_u16(emu.config.error_status).unwrap_or(StatusCode::BAD_REQUEST)
}

fn api_error(emu: &Emulator, action: &str, e: &ApiError) -> Response<Body> {
    emu.count_error(e.code);
    tracing::debug!(action, code = e.code, "emulator: api error");
    json_response(error_status(emu), &error_body(action, e))
}

fn envelope(emu: &Emulator, action: &str, result: Result<Fields, ApiError>) -> Response<Body> {
    match result {
        Ok(f) => json_response(StatusCode::OK, &success_body(action, f)),
        Err(e) => api_error(emu, action, &e),
    }
}

const CHALLENGE_PAGE: &str = "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...\
</title><meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"></head><body>\
<div class=\"main-wrapper\" role=\"main\"><div class=\"main-content\"><h1>www.mediafire.com</h1>\
<h2>Checking if the site connection is secure</h2><noscript>Enable JavaScript and cookies to \
continue</noscript></div></div></body></html>";

/// Applies an injected transient failure.
fn injected(emu: &Emulator, action: &str, kind: Injected) -> Result<Response<Body>, io::Error> {
    match kind {
        Injected::Error100 => {
            emu.count_fault("error100");
            emu.count_error(100);
            Ok(json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &error_body(action, &ApiError::new(100)),
            ))
        }
        Injected::Html403 => {
            emu.count_fault("html403");
            let mut r = text(
                StatusCode::FORBIDDEN,
                "text/html; charset=UTF-8",
                CHALLENGE_PAGE,
            );
            r.headers_mut()
                .insert("cf-mitigated", HeaderValue::from_static("challenge"));
            Ok(r)
        }
        Injected::Drop => {
            emu.count_fault("drop");
            Err(dropped())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// parameters

/// `category/action` from `/api/1.5/folder/get_content.php` (version segment optional).
fn action_of(path: &str) -> String {
    let rest = path.trim_start_matches("/api/");
    let mut segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segs
        .first()
        .is_some_and(|s| s.starts_with(|c: char| c.is_ascii_digit()))
    {
        segs.remove(0);
    }
    segs.join("/").trim_end_matches(".php").to_string()
}

fn query_params(req_query: Option<&str>, params: &mut Params) {
    if let Some(q) = req_query {
        if let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(q) {
            for (k, v) in pairs {
                params.insert(k, v);
            }
        }
    }
}

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn boundary_of(content_type_header: &HeaderMap) -> Option<String> {
    let ct = content_type_header
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    ct.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// One part of a multipart form.
pub(crate) struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Bytes,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn disposition_value(headers: &str, key: &str) -> Option<String> {
    let line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
    line.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Parses a `multipart/form-data` body held in memory.
pub(crate) fn parse_multipart(body: &Bytes, boundary: &str) -> Vec<Part> {
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let Some(first) = find(body, delim.as_bytes()) else {
        return parts;
    };
    let mut pos = first + delim.len();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") || rest.len() < 2 {
            break;
        }
        let start = pos + if rest.starts_with(b"\r\n") { 2 } else { 0 };
        let Some(len) = find(&body[start..], next_delim.as_bytes()) else {
            break;
        };
        let part = &body[start..start + len];
        if let Some(split) = find(part, b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&part[..split]).to_string();
            if let Some(name) = disposition_value(&headers, "name") {
                parts.push(Part {
                    name,
                    filename: disposition_value(&headers, "filename"),
                    data: body.slice(start + split + 4..start + len),
                });
            }
        }
        pos = start + len + next_delim.len();
    }
    parts
}

async fn read_limited(body: Incoming, limit: usize) -> Option<Bytes> {
    Limited::new(body, limit)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// Adds form fields of an urlencoded or multipart body to `params`.
fn form_params(h: &HeaderMap, body: &Bytes, params: &mut Params) {
    let ct = content_type(h);
    if ct.starts_with("multipart/form-data") {
        if let Some(b) = boundary_of(h) {
            for part in parse_multipart(body, &b) {
                if part.filename.is_none() {
                    params.insert(part.name, String::from_utf8_lossy(&part.data).to_string());
                }
            }
        }
    } else if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        for (k, v) in pairs {
            params.insert(k, v);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /api/

fn is_known(action: &str) -> bool {
    matches!(
        action,
        "user/get_info"
            | "user/renew_session_token"
            | "user/get_action_token"
            | "user/destroy_action_token"
            | "folder/get_content"
            | "folder/get_info"
            | "folder/create"
            | "folder/update"
            | "folder/move"
            | "folder/copy"
            | "folder/delete"
            | "folder/purge"
            | "file/get_info"
            | "file/get_links"
            | "file/update"
            | "file/move"
            | "file/copy"
            | "file/delete"
            | "file/purge"
            | "upload/check"
            | "upload/instant"
            | "upload/simple"
            | "upload/resumable"
            | "upload/poll_upload"
            | "device/get_status"
            | "system/get_limits"
    )
}

async fn api_call(
    emu: &Arc<Emulator>,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let action = action_of(req.uri().path());
    emu.count_api_call(&action);

    // faults first: a rate-limited or failing server never looks at the request
    let fault = {
        let mut faults = lock(&emu.faults);
        let mut rng = lock(&emu.fault_rng);
        if faults.over_rate_limit(Instant::now()) {
            drop(faults);
            emu.count_fault("rate_limit");
            return Ok(api_error(emu, &action, &ApiError::new(163)));
        }
        let unit = if action == "upload/resumable" {
            faults.unit_request_fails(&mut rng)
        } else {
            None
        };
        unit.or_else(|| faults.random_failure(&mut rng))
    };
    if let Some(kind) = fault {
        return injected(emu, &action, kind);
    }
    if !is_known(&action) {
        return Ok(api_error(emu, &action, &ApiError::new(253)));
    }

    let (parts, body) = req.into_parts();
    let mut params = Params::default();
    query_params(parts.uri.query(), &mut params);
    let data_upload = matches!(action.as_str(), "upload/simple" | "upload/resumable");
    let mut body = Some(body);
    if !data_upload && parts.method == Method::POST {
        if let Some(b) = body.take() {
            let Some(bytes) = read_limited(b, FORM_LIMIT).await else {
                return Ok(api_error(emu, &action, &ApiError::new(129)));
            };
            form_params(&parts.headers, &bytes, &mut params);
        }
    }

    let optional_token = matches!(action.as_str(), "upload/poll_upload" | "system/get_limits");
    let allow_action = action.starts_with("upload/");
    let token = params.get("session_token").map(String::from);
    if token.is_some() || !optional_token {
        if let Err(e) = api::check_token(emu, token.as_deref(), allow_action) {
            return Ok(api_error(emu, &action, &e));
        }
    }
    let caller = Caller { token };

    let result = match action.as_str() {
        "upload/resumable" => match body.take() {
            Some(b) => upload::upload_resumable(emu, &params, &parts.headers, b).await,
            None => Err(ApiError::new(100)),
        },
        "upload/simple" => match body.take() {
            Some(b) => simple_upload(emu, &params, &parts.headers, b).await,
            None => Err(ApiError::new(100)),
        },
        _ => dispatch(emu, &action, &params, &caller),
    };
    let lost = {
        let faults = lock(&emu.faults);
        let mut rng = lock(&emu.fault_rng);
        faults.answer_lost(&mut rng)
    };
    if lost {
        emu.count_fault("lost_answer");
        tracing::debug!(
            action,
            "emulator: fault: answer lost after the call was carried out"
        );
        return Err(dropped());
    }
    Ok(envelope(emu, &action, result))
}

async fn simple_upload(
    emu: &Arc<Emulator>,
    params: &Params,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Fields, ApiError> {
    if !content_type(headers).starts_with("multipart/form-data") {
        return upload::upload_simple(emu, params, headers, body, None).await;
    }
    let boundary = boundary_of(headers).ok_or(ApiError::new(129))?;
    let bytes = read_limited(body, MULTIPART_UPLOAD_LIMIT)
        .await
        .ok_or(ApiError::new(129))?;
    let mut params = params.clone();
    let mut file = None;
    for part in parse_multipart(&bytes, &boundary) {
        if part.filename.is_some() || matches!(part.name.as_str(), "file" | "Filedata") {
            if file.is_none() {
                file = Some((part.filename, part.data));
            }
        } else {
            params.insert(part.name, String::from_utf8_lossy(&part.data).to_string());
        }
    }
    let (name, data) = file.ok_or(ApiError::new(128))?;
    upload::upload_simple(emu, &params, headers, Full::new(data), name).await
}

fn dispatch(
    emu: &Arc<Emulator>,
    action: &str,
    p: &Params,
    caller: &Caller,
) -> Result<Fields, ApiError> {
    match action {
        "user/get_info" => api::user_get_info(emu),
        "user/renew_session_token" => api::user_renew_session_token(emu, caller),
        "user/get_action_token" => api::user_get_action_token(emu, p),
        "user/destroy_action_token" => api::user_destroy_action_token(emu, p),
        "folder/get_content" => api::folder_get_content(emu, p),
        "folder/get_info" => api::folder_get_info(emu, p),
        "folder/create" => api::folder_create(emu, p),
        "folder/update" => api::folder_update(emu, p),
        "folder/move" => api::folder_move(emu, p),
        "folder/copy" => api::folder_copy(emu, p),
        "folder/delete" => api::folder_delete(emu, p),
        "folder/purge" => api::folder_purge(emu, p),
        "file/get_info" => api::file_get_info(emu, p),
        "file/get_links" => api::file_get_links(emu, p),
        "file/update" => api::file_update(emu, p),
        "file/move" => api::file_move(emu, p),
        "file/copy" => api::file_copy(emu, p),
        "file/delete" => api::file_delete(emu, p),
        "file/purge" => api::file_purge(emu, p),
        "upload/check" => upload::upload_check(emu, p),
        "upload/instant" => upload::upload_instant(emu, p),
        "upload/poll_upload" => upload::upload_poll_upload(emu, p),
        "device/get_status" => api::device_get_status(emu),
        "system/get_limits" => api::system_get_limits(),
        _ => Err(ApiError::new(253)),
    }
}

// ---------------------------------------------------------------------------------------------
// /application/

fn cookie_header(h: &HeaderMap) -> String {
    h.get_all(header::COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)?;
    enc.finish()
}

/// `/application/get_session_token.php` (§1.2) and `/application/logout.php`.
async fn application(emu: &Arc<Emulator>, req: Request<Incoming>) -> Response<Body> {
    let name = req
        .uri()
        .path()
        .trim_start_matches("/application/")
        .trim_end_matches(".php")
        .to_string();
    let action = format!("application/{name}");
    emu.count_api_call(&action);
    match name.as_str() {
        "get_session_token" => session_token(emu, req).await,
        "logout" => {
            let (parts, body) = req.into_parts();
            let mut params = Params::default();
            query_params(parts.uri.query(), &mut params);
            if let Some(b) = read_limited(body, FORM_LIMIT).await {
                form_params(&parts.headers, &b, &mut params);
            }
            if let Some(t) = params.get("session_token") {
                lock(&emu.state).tokens.remove(t);
                emu.mark_dirty();
            }
            envelope(emu, "user/logout", Ok(Fields::new()))
        }
        _ => api_error(emu, &action, &ApiError::new(253)),
    }
}

async fn session_token(emu: &Arc<Emulator>, req: Request<Incoming>) -> Response<Body> {
    const ACTION: &str = "user/get_session_token";
    let headers = req.headers().clone();
    // the body (empty or `response_format=json`) carries nothing we need
    let _ = read_limited(req.into_body(), FORM_LIMIT).await;
    let now = now_ms();
    if !emu.cookie_valid(&cookie_header(&headers), now) {
        emu.count_error(107);
        let status = match error_status(emu) {
            StatusCode::OK => StatusCode::FORBIDDEN,
            s => s,
        };
        return json_response(status, &error_body(ACTION, &ApiError::new(107)));
    }
    let token = api::mint_session_token(emu);
    let mut fields = Fields::new();
    fields.insert("session_token".into(), json!(token));
    fields.insert("ekey".into(), json!("0123456789abcdef0123456789abcdef"));
    fields.insert("pkey".into(), json!("a0b1c2d3e4"));
    let body = success_body(ACTION, fields).to_string();
    let wants_gzip = headers.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("gzip")
    });
    let mut resp = match wants_gzip.then(|| gzip(body.as_bytes())) {
        Some(Ok(z)) => {
            let mut r = Response::new(full(z));
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        _ => Response::new(full(body)),
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if emu.config.rotate_cookie {
        let fresh = emu.rotate_cookie(now);
        let cookie = format!("ukey={fresh}; Path=/; Max-Age=31536000; HttpOnly");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// download host

fn link_page(status: StatusCode, title: &str) -> Response<Body> {
    let html = format!(
        "<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
    );
    text(status, "text/html; charset=UTF-8", &html)
}

/// A single byte range, resolved against the size; `Err(())` when unsatisfiable.
/// Multiple ranges or malformed headers yield `Ok(None)`: the whole body is sent.
fn parse_range(h: Option<&HeaderValue>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = h.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = spec.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(());
        }
        return Ok(Some((size.saturating_sub(n), size - 1)));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(size.saturating_sub(1)),
            _ => return Ok(None),
        }
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// `/dl/<token>/<quickkey>/<name>` (and `/dlh/...`, the redirect target): GET/HEAD with single
/// ranges, streamed from the store. Expired or unknown links answer 403, as MediaFire's hosts do
/// for a stale link.
async fn download(emu: &Arc<Emulator>, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let is_hop = path.starts_with("/dlh/");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (Some(token), Some(qk)) = (segs.get(1), segs.get(2)) else {
        return link_page(StatusCode::NOT_FOUND, "Not Found");
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = link_page(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let now = now_ms();
    let file = {
        let state = lock(&emu.state);
        match state.links.get(*token) {
            Some(l) if l.quickkey == *qk && l.expires_ms > now => {}
            _ => return link_page(StatusCode::FORBIDDEN, "403 Forbidden"),
        }
        match state.tree.files.get(*qk) {
            Some(f) if !state.tree.file_in_trash(f) => f.clone(),
            _ => return link_page(StatusCode::NOT_FOUND, "File Not Found"),
        }
    };
    if emu.config.download_redirect && !is_hop {
        let rest = segs[1..].join("/");
        let mut r = link_page(StatusCode::FOUND, "Found");
        if let Ok(v) = HeaderValue::from_str(&format!("{}/dlh/{rest}", emu.base_url)) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    let size = file.size;
    let (status, start, len) = match parse_range(req.headers().get(header::RANGE), size) {
        Err(()) => {
            let mut r = link_page(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
    };
    let body = if req.method() == Method::HEAD {
        full(Bytes::new())
    } else {
        let stream = match emu.store.open(&file.hash, start, len).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, quickkey = %file.key, "emulator: content missing");
                return link_page(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
        };
        {
            lock(&emu.stats).downloads += 1;
            if let Some(f) = lock(&emu.state).tree.files.get_mut(&file.key) {
                f.downloads += 1;
            }
        }
        let counter = emu.clone();
        let counted = stream.inspect(move |chunk| {
            if let Ok(c) = chunk {
                lock(&counter.stats).download_bytes += c.len() as u64;
            }
        });
        BodyExt::boxed_unsync(StreamBody::new(counted.map(|r| r.map(Frame::data))))
    };
    let (mime, _) = api::mime_of(&file.name);
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", file.hash)) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + len - 1;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    let disposition = format!(
        "attachment; filename*=UTF-8''{}",
        percent_encoding::utf8_percent_encode(&file.name, percent_encoding::NON_ALPHANUMERIC)
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// A 1×1 GIF for `/convkey/...` thumbnails.
fn thumbnail() -> Response<Body> {
    const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\
\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let mut r = Response::new(full(Bytes::from_static(GIF)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    r
}

// ---------------------------------------------------------------------------------------------
// /__emulator/

async fn admin(emu: &Arc<Emulator>, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
    if !remote.ip().is_loopback() {
        return text(
            StatusCode::FORBIDDEN,
            "text/plain",
            "admin endpoints are loopback only\n",
        );
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let query = req.uri().query().map(String::from);
    let ok = || json_response(StatusCode::OK, &json!({"ok": true}));
    match (method, path.as_str()) {
        (Method::GET, "/__emulator/stats") => json_response(StatusCode::OK, &emu.stats_json()),
        (Method::GET, "/__emulator/tree") => json_response(StatusCode::OK, &emu.tree_json()),
        (Method::POST, "/__emulator/stats/reset") => {
            emu.reset_stats();
            ok()
        }
        (Method::GET, "/__emulator/faults") => {
            let f = lock(&emu.faults).faults.clone();
            json_response(
                StatusCode::OK,
                &serde_json::to_value(f).unwrap_or(Value::Null),
            )
        }
        (Method::POST, "/__emulator/faults") => {
            let Some(body) = read_limited(req.into_body(), FORM_LIMIT).await else {
                return text(StatusCode::BAD_REQUEST, "text/plain", "body too large\n");
            };
            match serde_json::from_slice::<Faults>(&body) {
                Ok(f) => {
                    emu.set_faults(f.clone());
                    json_response(
                        StatusCode::OK,
                        &serde_json::to_value(f).unwrap_or(Value::Null),
                    )
                }
                Err(e) => text(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    &format!("faults: invalid JSON ({e})\n"),
                ),
            }
        }
        (Method::POST, "/__emulator/expire-tokens") => {
            emu.expire_all_tokens();
            ok()
        }
        (Method::POST, "/__emulator/seed") => {
            let mut params = Params::default();
            query_params(query.as_deref(), &mut params);
            let Some(path) = params.get("path").map(String::from) else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "seed: `path` is required\n",
                );
            };
            let body = match Limited::new(req.into_body(), usize::MAX).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        &format!("seed: {e}\n"),
                    );
                }
            };
            if path.ends_with('/') {
                let key = emu.seed_folder(&path);
                json_response(StatusCode::OK, &json!({"folderkey": key}))
            } else {
                let key = emu.seed_file(&path, &body);
                json_response(StatusCode::OK, &json!({"quickkey": key}))
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "unknown admin endpoint\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_come_from_the_path() {
        assert_eq!(
            action_of("/api/1.5/folder/get_content.php"),
            "folder/get_content"
        );
        assert_eq!(
            action_of("/api/folder/get_content.php"),
            "folder/get_content"
        );
        assert_eq!(action_of("/api/1.4/user/get_info.php"), "user/get_info");
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_range(Some(&v("bytes=0-9")), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some(&v("bytes=90-")), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some(&v("bytes=-10")), 100), Ok(Some((90, 99))));
        assert_eq!(
            parse_range(Some(&v("bytes=50-500")), 100),
            Ok(Some((50, 99)))
        );
        assert_eq!(parse_range(Some(&v("bytes=100-")), 100), Err(()));
        assert_eq!(parse_range(Some(&v("bytes=0-1,5-6")), 100), Ok(None));
        assert_eq!(parse_range(Some(&v("items=0-1")), 100), Ok(None));
        assert_eq!(parse_range(None, 100), Ok(None));
    }

    #[test]
    fn multipart_fields_and_files_are_split() {
        let body = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"session_token\"\r\n\r\nabc\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
Content-Type: text/plain\r\n\r\nhello\r\nworld\r\n--XyZ--\r\n",
        );
        let parts = parse_multipart(&body, "XyZ");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "session_token");
        assert_eq!(&parts[0].data[..], b"abc");
        assert_eq!(parts[1].filename.as_deref(), Some("a.txt"));
        assert_eq!(&parts[1].data[..], b"hello\r\nworld");
    }
}
