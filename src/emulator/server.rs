//! The HTTP side: a hyper 1 accept loop on loopback, routing, request parameters (query,
//! urlencoded and multipart forms), the JSON envelope and the token endpoint. The download host
//! lives in `download`, the admin endpoints in `admin`.
//!
//! Every `/api/` request goes through one pipeline: count it → rate limit (163) → injected
//! transient failure → parameters → token check (104/105) → the action → envelope.

use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::api::{self, ApiError, Caller, Fields, Params};
use super::faults::Injected;
use super::multipart;
use super::state::{Emulator, lock, now_ms};
use super::upload;
use super::{admin, download};

pub(super) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Largest form body accepted on ordinary API calls.
pub(super) const FORM_LIMIT: usize = 1024 * 1024;
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
        return Ok(admin::admin(&emu, req, remote).await);
    }
    if path.starts_with("/application/") {
        return Ok(application(&emu, req).await);
    }
    if path.starts_with("/api/") {
        return api_call(&emu, req).await;
    }
    if path.starts_with("/dl/") || path.starts_with("/dlh/") {
        return Ok(download::download(&emu, &req).await);
    }
    if path.starts_with("/convkey/") {
        return Ok(download::thumbnail());
    }
    Ok(text(StatusCode::NOT_FOUND, "text/plain", "not found\n"))
}

// ---------------------------------------------------------------------------------------------
// bodies and envelopes

pub(super) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

pub(super) fn text(status: StatusCode, content_type: &str, body: &str) -> Response<Body> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    r
}

pub(super) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
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
        Injected::UnitHash304 => {
            emu.count_fault("unit_hash_mismatch");
            Ok(api_error(emu, action, &ApiError::new(304)))
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

pub(super) fn query_params(req_query: Option<&str>, params: &mut Params) {
    if let Some(q) = req_query
        && let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(q)
    {
        for (k, v) in pairs {
            params.insert(k, v);
        }
    }
}

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

pub(super) async fn read_limited(body: Incoming, limit: usize) -> Option<Bytes> {
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
        if let Some(b) = multipart::boundary(h) {
            for part in multipart::parse(body, &b) {
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
    // held until this function returns (or the connection drops)
    let _unit_in_flight = (action == "upload/resumable").then(|| emu.unit_started());

    // faults first: a rate-limited or failing server never looks at the request
    let unit_id = (action == "upload/resumable")
        .then(|| {
            req.headers()
                .get("x-unit-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        })
        .flatten();
    if let Some(answer) = injected_fault(emu, &action, unit_id).await {
        return answer;
    }
    if !is_known(&action) {
        return Ok(api_error(emu, &action, &ApiError::new(253)));
    }

    // upload data endpoints carry the file as the body; other POSTs may carry a form
    let (parts, body) = req.into_parts();
    let mut params = Params::default();
    query_params(parts.uri.query(), &mut params);
    let data_upload = matches!(action.as_str(), "upload/simple" | "upload/resumable");
    let body = if data_upload || parts.method != Method::POST {
        Some(body)
    } else {
        let Some(bytes) = read_limited(body, FORM_LIMIT).await else {
            return Ok(api_error(emu, &action, &ApiError::new(129)));
        };
        form_params(&parts.headers, &bytes, &mut params);
        None
    };

    let caller = match authorize(emu, &action, &params, &parts.headers) {
        Ok(c) => c,
        Err(e) => return Ok(api_error(emu, &action, &e)),
    };
    let result = match (action.as_str(), body) {
        ("upload/resumable", Some(b)) => {
            let delay = lock(&emu.faults).faults.unit_delay_ms;
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            upload::upload_resumable(emu, &params, &parts.headers, b).await
        }
        ("upload/simple", Some(b)) => simple_upload(emu, &params, &parts.headers, b).await,
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

/// The fault switches' answer to this call, if they decide to answer it: latency first, then
/// the rate limit (163), the unit-request switches, the random failure rate.
async fn injected_fault(
    emu: &Emulator,
    action: &str,
    unit_id: Option<u64>,
) -> Option<Result<Response<Body>, io::Error>> {
    let latency = lock(&emu.faults).faults.latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let fault = {
        let mut faults = lock(&emu.faults);
        let mut rng = lock(&emu.fault_rng);
        if faults.over_rate_limit(Instant::now()) {
            let code = faults.faults.rate_limit_code;
            drop(faults);
            emu.count_fault("rate_limit");
            return Some(Ok(api_error(emu, action, &ApiError::new(code))));
        }
        let unit = if action == "upload/resumable" {
            faults.unit_request_fails(&mut rng, unit_id)
        } else {
            None
        };
        unit.or_else(|| faults.random_failure(&mut rng))
    };
    fault.map(|kind| injected(emu, action, kind))
}

/// The token check (§1.4): 104 without a token, 105 for an unknown or expired one. Action
/// tokens count on `upload/*` only; `upload/poll_upload` and `system/get_limits` need none, nor
/// do reads of public items (§6.11).
fn authorize(
    emu: &Emulator,
    action: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let token = params.get("session_token").map(String::from);
    let optional = matches!(action, "upload/poll_upload" | "system/get_limits");
    // a multipart upload/simple may carry its token as a form field before the file part;
    // `simple_upload` checks it there
    let deferred =
        action == "upload/simple" && token.is_none() && multipart::boundary(headers).is_some();
    // §6.11: public folders and files can be read without any token
    let public = token.is_none() && api::is_public_read(emu, action, params);
    if !deferred && !public && (token.is_some() || !optional) {
        api::check_token(emu, token.as_deref(), action.starts_with("upload/"))?;
    }
    Ok(Caller { token })
}

/// `upload/simple` with a raw body, or with a multipart body whose file part is streamed.
async fn simple_upload(
    emu: &Arc<Emulator>,
    params: &Params,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Fields, ApiError> {
    let Some(boundary) = multipart::boundary(headers) else {
        return upload::upload_simple(emu, params, headers, body, None).await;
    };
    let part = match multipart::first_file_part(body, &boundary, FORM_LIMIT).await {
        Ok(Some(part)) => part,
        Ok(None) => return Err(ApiError::new(128)),
        Err(_) => return Err(ApiError::new(129)),
    };
    let mut params = params.clone();
    for (k, v) in part.fields {
        params.insert(k, v);
    }
    // the token may have come in the query (checked already) or as a field (checked here)
    api::check_token(emu, params.get("session_token"), true)?;
    upload::upload_simple(emu, &params, headers, part.body, part.filename).await
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
}
