//! The download host: `/dl/<token>/<quickkey>/<name>` as handed out by `file/get_links`
//! (§5), plus `/dlh/...` (the target of the optional 302 hop) and `/convkey/...` thumbnails.
//!
//! GET and HEAD with a single byte range, content streamed from the store. Download requests
//! are not API calls: they count in `downloads` and `download_bytes` only.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;

use super::api;
use super::server::{Body, full, text};
use super::state::{Emulator, File, lock, now_ms};
use super::store::ByteStream;

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
pub(super) async fn download(emu: &Arc<Emulator>, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
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
    let file = match resolve_link(emu, token, qk) {
        Ok(f) => f,
        Err((status, title)) => return link_page(status, title),
    };
    if emu.config.download_redirect && !path.starts_with("/dlh/") {
        return redirect(emu, &segs[1..].join("/"));
    }

    let (status, start, len) = match parse_range(req.headers().get(header::RANGE), file.size) {
        Err(()) => return not_satisfiable(file.size),
        Ok(None) => (StatusCode::OK, 0, file.size),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
    };
    let body = if req.method() == Method::HEAD {
        full(Bytes::new())
    } else {
        match content(emu, &file, start, len).await {
            Ok(body) => body,
            Err(page) => return page,
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    content_headers(&mut r, &file, start, len);
    r
}

/// The live file a link points to: 403 for an unknown or expired link, 404 when the file is
/// gone or in the trash.
fn resolve_link(emu: &Emulator, token: &str, qk: &str) -> Result<File, (StatusCode, &'static str)> {
    let state = lock(&emu.state);
    match state.links.get(token) {
        Some(l) if l.quickkey == qk && l.expires_ms > now_ms() => {}
        _ => return Err((StatusCode::FORBIDDEN, "403 Forbidden")),
    }
    match state.tree.files.get(qk) {
        Some(f) if !state.tree.file_in_trash(f) => Ok(f.clone()),
        _ => Err((StatusCode::NOT_FOUND, "File Not Found")),
    }
}

/// The optional hop (§5: OL sends HEAD without following redirects and uses `Location`).
fn redirect(emu: &Emulator, rest: &str) -> Response<Body> {
    let mut r = link_page(StatusCode::FOUND, "Found");
    if let Ok(v) = HeaderValue::from_str(&format!("{}/dlh/{rest}", emu.base_url)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn not_satisfiable(size: u64) -> Response<Body> {
    let mut r = link_page(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable");
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// The streamed body of a GET, counted in the stats (and cut short by the fault switch).
async fn content(
    emu: &Arc<Emulator>,
    file: &File,
    start: u64,
    len: u64,
) -> Result<Body, Response<Body>> {
    let stream = match emu.store.open(&file.hash, start, len).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, quickkey = %file.key, "emulator: content missing");
            return Err(link_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ));
        }
    };
    lock(&emu.stats).downloads += 1;
    if let Some(f) = lock(&emu.state).tree.files.get_mut(&file.key) {
        f.downloads += 1;
    }
    let cut = lock(&emu.faults).faults.download_cut_after_bytes;
    let stream = if cut > 0 && cut < len {
        emu.count_fault("download_cut");
        cut_after(stream, cut)
    } else {
        stream
    };
    let counter = emu.clone();
    let counted = stream.inspect(move |chunk| {
        if let Ok(c) = chunk {
            lock(&counter.stats).download_bytes += c.len() as u64;
        }
    });
    Ok(BodyExt::boxed_unsync(StreamBody::new(
        counted.map(|r| r.map(Frame::data)),
    )))
}

fn content_headers(r: &mut Response<Body>, file: &File, start: u64, len: u64) {
    let partial = r.status() == StatusCode::PARTIAL_CONTENT;
    let (mime, _) = api::mime_of(&file.name);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", file.hash)) {
        h.insert(header::ETAG, v);
    }
    if partial {
        let range = format!("bytes {start}-{}/{}", start + len - 1, file.size);
        if let Ok(v) = HeaderValue::from_str(&range) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    let disposition = format!("attachment; filename*=UTF-8''{}", api::enc(&file.name));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
}

/// Passes `limit` bytes of `stream`, then fails it, so hyper drops the connection mid-body
/// (fault `download_cut_after_bytes`).
fn cut_after(stream: ByteStream, limit: u64) -> ByteStream {
    let head = stream.scan(0u64, move |sent, item| {
        let out = match item {
            Ok(_) if *sent >= limit => None,
            Ok(chunk) => {
                let room = (limit - *sent).min(chunk.len() as u64) as usize;
                *sent += room as u64;
                Some(Ok(chunk.slice(..room)))
            }
            Err(e) => Some(Err(e)),
        };
        std::future::ready(out)
    });
    // pause first so hyper flushes what was sent: the client must see a body cut short, not a
    // connection that closed before the headers
    let fail = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "fault injection: download cut",
        ))
    });
    Box::pin(head.chain(fail))
}

/// A 1×1 GIF for `/convkey/...` thumbnails.
pub(super) fn thumbnail() -> Response<Body> {
    const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\
\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let mut r = Response::new(full(Bytes::from_static(GIF)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
