//! Requests refused before dav-server or MediaFire see them, each with a
//! 4xx whose body names the rule that was broken.
//!
//! - A path or `Destination` deeper than MediaFire nests folders: 414.
//!   Nothing can exist there, and resolving it folder by folder recursed
//!   once per segment (a 4096-segment path overflowed the stack and aborted
//!   the whole process).
//! - A `Destination` with `.` or `..` segments, literal or `%2e`-encoded:
//!   400. dav-server clamps `..` at the root, so `/%2e%2e/x` silently meant
//!   `/x`, while the same dots in the request path answer 403.
//! - A new name MediaFire rejects (PUT, MKCOL, LOCK target; COPY and MOVE
//!   `Destination`): 400. MediaFire would refuse it anyway (error 118/185,
//!   which becomes an unexplained 403), after the body was spooled and
//!   hashed. The rules are those of the spec §6.1: 1–255 characters, no
//!   `/`, `\` or control characters, not `.` or `..`. The Windows set
//!   `:*?"<>|` is an unverified guess there, so it is not refused.
//!
//! - An `If`, `If-Match` or `If-None-Match` header that dav-server 0.11's
//!   parser would panic on (`If: <` or `If: ["x]` run its scanner off the
//!   end; an entity tag of a lone `"` slices backwards): 400. Found by the
//!   property test `tests/gateway/fuzz.rs`.
//! - An XML body (PROPFIND, PROPPATCH, LOCK) nested deeper than
//!   [`MAX_XML_DEPTH`]: 400. dav-server parses it recursively, and a
//!   5000-deep body of 55 KB (under its 64 KiB limit) overflowed the stack.
//!   Such bodies are read here (at most 64 KiB, like dav-server: 413 beyond)
//!   and handed on from memory.
//!
//! Not here: authentication, read-only mode (`MfDav::handle`), and anything
//! that needs the remote.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use dav_server::body::Body;
use http::{Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use percent_encoding::percent_decode_str;
use tracing::debug;

/// MediaFire's `folder_depth_limit` (`system/get_limits`, spec §3.16).
pub(crate) const MAX_FOLDER_DEPTH: usize = 130;
/// Segments a path may have below the prefix: the folders plus a name.
const MAX_PATH_SEGMENTS: usize = MAX_FOLDER_DEPTH + 1;
/// Longest name MediaFire stores (spec §6.1), in characters.
pub(crate) const MAX_NAME_CHARS: usize = 255;

/// Deepest element nesting accepted in an XML request body. WebDAV bodies
/// nest about six deep; dead property values get the rest.
pub(crate) const MAX_XML_DEPTH: usize = 100;
/// The most of an XML body dav-server reads (it answers 413 beyond).
const MAX_XML_BODY: usize = 64 * 1024;

/// The request body handed to dav-server: the client's stream, or an XML
/// body already read here. (Not a boxed body: that would lose `Sync`, and
/// `handle` holds the request across awaits.)
pub(crate) enum ReqBody<B> {
    Stream(Pin<Box<B>>),
    Buffered(Option<Bytes>),
}

impl<B> http_body::Body for ReqBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ReqBody::Stream(b) => b
                .as_mut()
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(std::io::Error::other))),
            ReqBody::Buffered(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Stream(b) => b.is_end_stream(),
            ReqBody::Buffered(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Stream(b) => b.size_hint(),
            ReqBody::Buffered(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// Reads the XML body of a PROPFIND, PROPPATCH or LOCK and checks its
/// nesting; other requests pass with their body untouched.
pub(crate) async fn xml_body<B>(req: Request<B>) -> Result<Request<ReqBody<B>>, Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !matches!(req.method().as_str(), "PROPFIND" | "PROPPATCH" | "LOCK") {
        return Ok(req.map(|b| ReqBody::Stream(Box::pin(b))));
    }
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_XML_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("an XML request body may have at most {MAX_XML_BODY} bytes"),
            ));
        }
        Err(e) => {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            ));
        }
    };
    let depth = xml_depth(&bytes);
    if depth > MAX_XML_DEPTH {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            format!("the XML body nests {depth} deep; at most {MAX_XML_DEPTH} is accepted"),
        ));
    }
    Ok(Request::from_parts(parts, ReqBody::Buffered(Some(bytes))))
}

/// The deepest element nesting of an XML document, by a forgiving scan:
/// comments, CDATA, declarations and processing instructions are skipped,
/// quoted attribute values may hold `>`. Malformed input gives some number;
/// the parser after us refuses it.
pub(crate) fn xml_depth(xml: &[u8]) -> usize {
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    let find = |from: usize, pat: &[u8]| {
        xml[from.min(xml.len())..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map_or(xml.len(), |p| from + p + pat.len())
    };
    while i < xml.len() {
        if xml[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &xml[i..];
        if rest.starts_with(b"<!--") {
            i = find(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = find(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = find(i + 2, b"?>");
        } else if rest.starts_with(b"<!") {
            i = find(i + 2, b">");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = find(i + 2, b">");
        } else {
            // a start tag: find its end outside quotes
            let mut j = i + 1;
            let mut quote = None;
            while j < xml.len() {
                match (quote, xml[j]) {
                    (None, b'"' | b'\'') => quote = Some(xml[j]),
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            let self_closing = j > i + 1 && xml.get(j - 1) == Some(&b'/');
            if !self_closing {
                depth += 1;
                max = max.max(depth);
            }
            i = j + 1;
        }
    }
    max
}

/// The answer for a request that breaks one of the rules above, `None` when
/// it may go on.
pub(crate) fn refuse<B>(req: &Request<B>, prefix: &str) -> Option<Response<Body>> {
    let allowed = MAX_PATH_SEGMENTS + segments(prefix).len();
    let path = req.uri().path();
    let dest = req
        .headers()
        .get("destination")
        .map(|d| destination_path(&String::from_utf8_lossy(d.as_bytes())));
    let deepest = segments(path)
        .len()
        .max(dest.as_deref().map_or(0, |d| segments(d).len()));
    if deepest > allowed {
        return Some(refused(
            StatusCode::URI_TOO_LONG,
            format!(
                "the path is {deepest} levels deep; MediaFire nests folders at most \
                 {MAX_FOLDER_DEPTH} deep"
            ),
        ));
    }
    if let Some(dest) = &dest
        && segments(dest)
            .iter()
            .any(|s| matches!(decoded(s).as_deref(), Some(".") | Some("..")))
    {
        return Some(refused(
            StatusCode::BAD_REQUEST,
            "the Destination must not contain `.` or `..` segments".to_string(),
        ));
    }
    if let Some(header) = panicking_condition(req.headers()) {
        return Some(refused(
            StatusCode::BAD_REQUEST,
            format!("the {header} header is malformed"),
        ));
    }
    let new_name = match req.method().as_str() {
        "PUT" | "MKCOL" | "LOCK" => segments(path).last().copied(),
        "COPY" | "MOVE" => dest.as_deref().and_then(|d| segments(d).last().copied()),
        _ => None,
    };
    // A name that is not UTF-8 is dav-server's to refuse.
    let name = new_name.and_then(decoded)?;
    let broken = name_rule_broken(&name)?;
    Some(refused(
        StatusCode::BAD_REQUEST,
        format!(
            "MediaFire does not accept the name {:?}: {broken}",
            name.escape_debug().to_string()
        ),
    ))
}

/// The name of a conditional header dav-server 0.11 would panic on.
fn panicking_condition(headers: &http::HeaderMap) -> Option<&'static str> {
    for name in ["if-match", "if-none-match"] {
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else { continue };
            if text.split(',').any(|t| matches!(t.trim(), "\"" | "W/\"")) {
                return Some(if name == "if-match" {
                    "If-Match"
                } else {
                    "If-None-Match"
                });
            }
        }
    }
    headers
        .get_all("if")
        .iter()
        .any(|v| if_scan_overruns(v.as_bytes()))
        .then_some("If")
}

/// Whether dav-server's tokenizer of the `If` header would index past the
/// end: a `<...>` or `[...]` token (quotes may hide the closer) that is
/// still open when the value ends, before any whitespace.
fn if_scan_overruns(value: &[u8]) -> bool {
    let special = |c: u8| b"<>()[]".contains(&c);
    let space = |c: u8| b" \t\r\n".contains(&c);
    let mut i = 0;
    while i < value.len() {
        let c = value[i];
        if space(c) || c == b'(' || c == b')' {
            i += 1;
        } else if c == b'<' || c == b'[' {
            let close = if c == b'<' { b'>' } else { b']' };
            let mut j = i + 1;
            let mut quote = false;
            loop {
                let Some(&b) = value.get(j) else { return true };
                if !quote && b == close {
                    break;
                }
                if space(b) {
                    // dav-server stops here with an error, not a panic
                    return false;
                }
                if b == b'"' {
                    quote = !quote;
                }
                j += 1;
            }
            i = j + 1;
        } else if value[i..].starts_with(b"Not") {
            i += 3;
        } else {
            // a word: up to whitespace, a special character or a control
            let start = i;
            while i < value.len() && !space(value[i]) && !special(value[i]) && value[i] >= 32 {
                i += 1;
            }
            if i == start {
                return false;
            }
        }
    }
    false
}

/// Which MediaFire naming rule `name` breaks, `None` when it is fine.
pub(crate) fn name_rule_broken(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Some("a name must not be empty, `.` or `..`");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Some("a name has at most 255 characters");
    }
    if name.contains('\\') || name.contains('/') {
        return Some("a name must not contain `/` or `\\`");
    }
    if name.chars().any(char::is_control) {
        return Some("a name must not contain control characters");
    }
    None
}

/// The path of a `Destination` header, absolute URL or absolute path.
fn destination_path(dest: &str) -> String {
    let dest = dest.trim();
    match dest.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".to_string(),
        },
        None => dest.to_string(),
    }
}

/// The non-empty `/`-separated segments of a raw path, query and fragment
/// cut off.
fn segments(path: &str) -> Vec<&str> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// A percent-decoded segment, `None` when it is not UTF-8.
fn decoded(segment: &str) -> Option<String> {
    percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn refused(status: StatusCode, why: String) -> Response<Body> {
    debug!(status = status.as_u16(), reason = %why, "dav: request refused");
    let mut resp = Response::new(Body::from(format!("{status}: {why}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    fn req(method: &str, path: &str, dest: Option<&str>) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(d) = dest {
            b = b.header("Destination", d);
        }
        b.body(()).unwrap()
    }

    fn status(method: &str, path: &str, dest: Option<&str>) -> Option<u16> {
        refuse(&req(method, path, dest), "").map(|r| r.status().as_u16())
    }

    #[test]
    fn xml_depth_counts_elements_only() {
        let doc = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "<<<">]>
            <D:propfind xmlns:D="DAV:"><!-- <a><b><c> --><D:prop a=">" b='<x>'>
            <D:getetag/><![CDATA[<<<<]]></D:prop></D:propfind>"#;
        assert_eq!(xml_depth(doc), 2);
        let deep = "<a>".repeat(500) + &"</a>".repeat(500);
        assert_eq!(xml_depth(deep.as_bytes()), 500);
        assert_eq!(xml_depth(b"<a><b/><c></c></a>"), 2);
        // malformed: some small number, no panic
        assert!(xml_depth(b"<<<<") <= 4);
        assert_eq!(xml_depth(b""), 0);
    }

    #[tokio::test]
    async fn deep_or_large_xml_bodies_are_refused() {
        let req = |method: &str, body: String| {
            Request::builder()
                .method(method)
                .uri("/x")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        let deep = "<a>".repeat(200) + &"</a>".repeat(200);
        let status = |r: Result<Request<ReqBody<Full<Bytes>>>, Response<Body>>| {
            r.err().map(|resp| resp.status().as_u16())
        };
        assert_eq!(
            status(xml_body(req("PROPPATCH", deep.clone())).await),
            Some(400)
        );
        assert_eq!(status(xml_body(req("PUT", deep)).await), None);
        let big = "<a>".to_string() + &" ".repeat(70_000) + "</a>";
        assert_eq!(status(xml_body(req("LOCK", big)).await), Some(413));
        let Ok(ok) = xml_body(req("PROPFIND", "<a><b/></a>".into())).await else {
            panic!("a shallow PROPFIND body is refused");
        };
        let bytes = ok.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"<a><b/></a>");
    }

    #[test]
    fn conditions_dav_server_would_panic_on_are_refused() {
        let with = |name: &str, value: &str| {
            Request::builder()
                .method("PUT")
                .uri("/f.txt")
                .header(name, value)
                .body(())
                .unwrap()
        };
        for bad in ["<", "(<a:b", "([\"x]", "[\"x\"", "(<x> [", "<a\"b>c\""] {
            let r = refuse(&with("If", bad), "");
            assert_eq!(r.map(|r| r.status().as_u16()), Some(400), "If: {bad}");
        }
        for fine in [
            "(<opaquelocktoken:abc>)",
            "<http://h/a> ([\"etag\"])",
            "(Not <DAV:no-lock>)",
            "garbage (((",
            "<a b>",
            "",
        ] {
            assert!(refuse(&with("If", fine), "").is_none(), "If: {fine}");
        }
        for bad in ["\"", "\"a\", \"", " W/\" "] {
            assert!(
                refuse(&with("If-Match", bad), "").is_some(),
                "If-Match: {bad}"
            );
            assert!(refuse(&with("If-None-Match", bad), "").is_some());
        }
        assert!(refuse(&with("If-Match", "\"a\", W/\"b\", *"), "").is_none());
    }

    #[test]
    fn names_follow_the_spec_rules() {
        assert_eq!(name_rule_broken("a.txt"), None);
        assert_eq!(name_rule_broken("café: <ok>?"), None);
        assert_eq!(name_rule_broken(&"x".repeat(255)), None);
        for bad in ["", ".", "..", "a\\b", "a\u{1}b", "tab\there"] {
            assert!(name_rule_broken(bad).is_some(), "{bad:?}");
        }
        assert!(name_rule_broken(&"é".repeat(256)).is_some());
    }

    #[test]
    fn new_names_are_checked_on_the_methods_that_make_them() {
        assert_eq!(status("PUT", "/d/a%5Cb.txt", None), Some(400));
        assert_eq!(status("MKCOL", "/d/a%01b/", None), Some(400));
        assert_eq!(status("GET", "/d/a%5Cb.txt", None), None);
        assert_eq!(status("PUT", "/d/ok.txt", None), None);
        assert_eq!(
            status("MOVE", "/d/ok.txt", Some("http://h/d/a%5Cb.txt")),
            Some(400)
        );
        assert_eq!(status("MOVE", "/d/ok.txt", Some("http://h/d/b.txt")), None);
        // not UTF-8: left to dav-server
        assert_eq!(status("PUT", "/d/%ff.txt", None), None);
    }

    #[test]
    fn destination_dot_segments_are_refused() {
        for d in [
            "http://h/../x",
            "http://h/%2e%2e/x",
            "/a/%2E/x",
            "http://h/a/./b",
        ] {
            assert_eq!(status("MOVE", "/f", Some(d)), Some(400), "{d}");
        }
        assert_eq!(status("COPY", "/f", Some("http://h/a..b/c")), None);
    }

    #[test]
    fn paths_deeper_than_mediafire_allows_are_414() {
        let deep = format!("/{}", "a/".repeat(MAX_PATH_SEGMENTS + 1));
        let ok = format!("/{}", "a/".repeat(MAX_PATH_SEGMENTS));
        assert_eq!(status("GET", &deep, None), Some(414));
        assert_eq!(status("GET", &ok, None), None);
        assert_eq!(
            status("MOVE", "/f", Some(&format!("http://h{deep}"))),
            Some(414)
        );
        let with_prefix = refuse(&req("GET", &format!("/dav{ok}"), None), "/dav");
        assert!(with_prefix.is_none());
    }
}
