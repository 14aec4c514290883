//! Downloads: direct links from `file/get_links`, cached per quickkey, and
//! one ranged GET per read, streamed.
//!
//! A direct link (`https://downloadNNNN.mediafire.com/<token>/<qk>/<name>`,
//! spec §5) is reused for `link_ttl`; its real lifetime is unknown. When the
//! download host refuses it (403/404/410) the link is dropped, fetched again
//! once, and the GET retried. The cookie and session token never go to the
//! download host, and its URLs never reach an error message (they carry a
//! token of their own).

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use tokio::time::Instant;
use tracing::debug;

use crate::error::{Error, ErrorKind, Result};
use crate::mediafire::client::Client;
use crate::mediafire::retry::Idempotency;
use crate::remote::{ByteStream, Download};

const ACTION: &str = "download";

/// Direct links kept at most (about 200 bytes each).
pub const MAX_CACHED_LINKS: usize = 10_000;

/// A direct link and when it was fetched.
pub(crate) struct CachedLink {
    url: String,
    fetched: Instant,
}

impl Client {
    /// Drops the cached direct link of `quickkey`; called by every mutation
    /// of that file (rename, move, delete, replace).
    pub fn forget_link(&self, quickkey: &str) {
        self.inner.links.remove(quickkey);
    }

    /// The direct download URL of `quickkey`, cached while younger than
    /// `link_ttl`. A per-entry error in the reply is an error here.
    pub(crate) async fn direct_link(&self, quickkey: &str) -> Result<String> {
        if let Some(l) = self.inner.links.get(quickkey)
            && l.fetched.elapsed() < self.config().link_ttl
        {
            return Ok(l.url.clone());
        }
        let links = self.file_get_links(quickkey).await?;
        let url = pick_direct_link(quickkey, &links)?;
        self.prune_links();
        self.inner.links.insert(
            quickkey.to_string(),
            CachedLink {
                url: url.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(url)
    }

    /// Keeps the link cache bounded: past [`MAX_CACHED_LINKS`] entries the
    /// expired ones go, and if that is not enough, all of them.
    fn prune_links(&self) {
        let links = &self.inner.links;
        if links.len() < MAX_CACHED_LINKS {
            return;
        }
        let ttl = self.config().link_ttl;
        links.retain(|_, l| l.fetched.elapsed() < ttl);
        if links.len() >= MAX_CACHED_LINKS {
            links.clear();
        }
    }

    /// Opens `quickkey` at `offset` for `len` bytes (to the end when `None`).
    pub(crate) async fn open_download(
        &self,
        quickkey: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<Download> {
        let mut refreshed = false;
        loop {
            let url = self.direct_link(quickkey).await?;
            let opened = self
                .inner
                .retry
                .run(ACTION, Idempotency::Idempotent, || {
                    self.get_range(&url, offset, len)
                })
                .await;
            match opened {
                Err(e) if !refreshed && is_stale_link(&e) => {
                    debug!(quickkey, error = %e, "download host refused the link, fetching a fresh one");
                    self.forget_link(quickkey);
                    self.inner
                        .stats
                        .link_refreshes
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    refreshed = true;
                }
                Err(e) => return Err(e.with_context("quickkey", quickkey)),
                Ok(resp) => return self.shape(resp, offset, len),
            }
        }
    }

    /// One GET with a `Range` header; statuses other than 200/206/416 are errors.
    async fn get_range(
        &self,
        url: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<reqwest::Response> {
        let mut req = self
            .inner
            .http
            .get(url)
            .header(reqwest::header::ACCEPT_ENCODING, "identity");
        match (offset, len) {
            (0, None) => {}
            (o, None) => req = req.header(RANGE, format!("bytes={o}-")),
            // A zero-length read still opens the file, to learn its size.
            (o, Some(n)) => req = req.header(RANGE, format!("bytes={o}-{}", o + n.max(1) - 1)),
        }
        let resp = req
            .send()
            .await
            .map_err(|e| crate::mediafire::client::transport_error(ACTION, e))?;
        let status = resp.status();
        if matches!(
            status,
            StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE
        ) {
            return Ok(resp);
        }
        let kind = match status.as_u16() {
            403 => ErrorKind::Forbidden,
            404 | 410 => ErrorKind::NotFound,
            429 => ErrorKind::RateLimited,
            408 | 500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        };
        Err(Error::new(kind, "download host refused the request")
            .with_action(ACTION)
            .with_context("http_status", status.as_u16()))
    }

    /// Turns the response into a [`Download`] starting exactly at `offset`.
    fn shape(&self, resp: reqwest::Response, offset: u64, len: Option<u64>) -> Result<Download> {
        let status = resp.status();
        let range = resp
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);
        let length = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());

        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            // Reading at or past the end: an empty body, not an error.
            let total = range.and_then(|r| r.total).unwrap_or(offset);
            return Ok(Download {
                body: Box::pin(futures_util::stream::empty()),
                total_size: total,
            });
        }
        let (skip, total) = if status == StatusCode::PARTIAL_CONTENT {
            let Some(r) = range else {
                return Err(
                    Error::new(ErrorKind::Transient, "206 without Content-Range")
                        .with_action(ACTION),
                );
            };
            if r.start != Some(offset) {
                return Err(
                    Error::new(ErrorKind::Transient, "download host sent another range")
                        .with_action(ACTION)
                        .with_context("offset", offset),
                );
            }
            let total = r.total.or(r.end.map(|e| e + 1)).unwrap_or(offset);
            (0, total)
        } else {
            // 200: the host ignored Range; skip to the offset ourselves.
            (offset, length.unwrap_or(0))
        };
        let available = total.saturating_sub(offset);
        let want = len.map_or(available, |n| n.min(available));
        let body = limit_stream(self.clone(), resp.bytes_stream(), skip, want);
        Ok(Download {
            body,
            total_size: total,
        })
    }
}

/// The direct link of `quickkey` in a `file/get_links` reply, or the
/// per-entry error it carries (spec "Read first" §4).
pub fn pick_direct_link(
    quickkey: &str,
    links: &[crate::mediafire::types::LinkEntry],
) -> Result<String> {
    let entry = links
        .iter()
        .find(|l| l.quickkey == quickkey)
        .or_else(|| (links.len() == 1).then(|| &links[0]));
    let Some(entry) = entry else {
        return Err(
            Error::new(ErrorKind::NotFound, "no link entry for this file")
                .with_action("file/get_links")
                .with_context("quickkey", quickkey),
        );
    };
    if let Some(msg) = &entry.error {
        let kind = if msg.to_ascii_lowercase().contains("permission") {
            ErrorKind::Forbidden
        } else {
            ErrorKind::Permanent
        };
        return Err(Error::new(kind, format!("link refused: {msg}"))
            .with_action("file/get_links")
            .with_context("quickkey", quickkey));
    }
    if let Some(code) = entry.direct_download_error {
        let (kind, _) = crate::mediafire::codes::classify(code as u32);
        let msg = entry
            .direct_download_error_message
            .clone()
            .unwrap_or_default();
        return Err(Error::new(kind, format!("direct link refused: {msg}"))
            .with_action("file/get_links")
            .with_code(code as u32)
            .with_context("quickkey", quickkey));
    }
    match &entry.direct_download {
        Some(url) => Ok(upgrade_mediafire_link(url)),
        None => Err(
            Error::new(ErrorKind::Forbidden, "no direct download link offered")
                .with_action("file/get_links")
                .with_context("quickkey", quickkey),
        ),
    }
}

/// Old responses hand out `http://` links to MediaFire's download hosts;
/// fetch those over HTTPS. Links to any other host (the emulator on loopback)
/// are used as given.
fn upgrade_mediafire_link(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u)
            if u.scheme() == "http"
                && u.host_str()
                    .is_some_and(|h| h == "mediafire.com" || h.ends_with(".mediafire.com")) =>
        {
            url.replacen("http://", "https://", 1)
        }
        _ => url.to_string(),
    }
}

fn is_stale_link(e: &Error) -> bool {
    matches!(e.context("http_status"), Some("403" | "404" | "410"))
}

/// A parsed `Content-Range: bytes a-b/total` (or `bytes */total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub total: Option<u64>,
}

/// Parses a `Content-Range` header value; `None` when it is not in bytes.
pub fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let total = total.trim().parse::<u64>().ok();
    let (start, end) = match span.trim().split_once('-') {
        Some((a, b)) => (a.trim().parse().ok(), b.trim().parse().ok()),
        None => (None, None),
    };
    Some(ContentRange { start, end, total })
}

/// Skips `skip` bytes, then yields `want` bytes; a body that ends early is
/// an error, never a silently short file.
fn limit_stream(
    client: Client,
    inner: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    skip: u64,
    want: u64,
) -> ByteStream {
    let window = Window {
        skip,
        left: want,
        done: want == 0,
    };
    Box::pin(futures_util::stream::unfold(
        (Box::pin(inner), window, client),
        |(mut inner, mut w, client)| async move {
            let item = w.next(&mut inner).await?;
            if let Ok(chunk) = &item {
                let down = &client.inner.stats.bytes_down;
                down.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Some((item, (inner, w, client)))
        },
    ))
}

/// Which part of an upstream body the reader wants.
struct Window {
    skip: u64,
    left: u64,
    /// Set once the window is full or an error was yielded.
    done: bool,
}

impl Window {
    /// The next piece of the window, `None` when complete.
    async fn next<S>(&mut self, inner: &mut std::pin::Pin<Box<S>>) -> Option<Result<Bytes>>
    where
        S: Stream<Item = reqwest::Result<Bytes>>,
    {
        while !self.done {
            let mut chunk = match inner.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    return Some(self.fail(crate::mediafire::client::transport_error(ACTION, e)));
                }
                None => {
                    let e = Error::new(ErrorKind::Transient, "download ended early")
                        .with_action(ACTION)
                        .with_context("missing_bytes", self.left);
                    return Some(self.fail(e));
                }
            };
            let skipped = self.skip.min(chunk.len() as u64);
            let _ = chunk.split_to(skipped as usize);
            self.skip -= skipped;
            chunk.truncate(self.left.min(chunk.len() as u64) as usize);
            self.left -= chunk.len() as u64;
            self.done = self.left == 0;
            if !chunk.is_empty() {
                return Some(Ok(chunk));
            }
        }
        None
    }

    fn fail(&mut self, e: Error) -> Result<Bytes> {
        self.done = true;
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mediafire_links_are_upgraded_to_https() {
        assert_eq!(
            upgrade_mediafire_link("http://download1507.mediafire.com/t/qk/a.7z"),
            "https://download1507.mediafire.com/t/qk/a.7z"
        );
        assert_eq!(
            upgrade_mediafire_link("http://127.0.0.1:9100/dl/t/qk/a.md"),
            "http://127.0.0.1:9100/dl/t/qk/a.md"
        );
        assert_eq!(
            upgrade_mediafire_link("http://evilmediafire.com/x"),
            "http://evilmediafire.com/x"
        );
    }
    use crate::mediafire::types::LinkEntry;

    #[tokio::test]
    async fn window_skips_limits_and_reports_short_bodies() {
        let body = |parts: &[&'static [u8]]| {
            Box::pin(futures_util::stream::iter(
                parts
                    .iter()
                    .map(|p| Ok(Bytes::from_static(p)))
                    .collect::<Vec<_>>(),
            ))
        };
        let mut w = Window {
            skip: 3,
            left: 4,
            done: false,
        };
        let mut inner = body(&[b"ab", b"cdef", b"ghij"]);
        let mut got = Vec::new();
        while let Some(c) = w.next(&mut inner).await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(got, b"defg");

        let mut w = Window {
            skip: 0,
            left: 10,
            done: false,
        };
        let mut inner = body(&[b"abc"]);
        assert_eq!(&w.next(&mut inner).await.unwrap().unwrap()[..], b"abc");
        let e = w.next(&mut inner).await.unwrap().unwrap_err();
        assert_eq!(e.context("missing_bytes"), Some("7"));
        assert!(w.next(&mut inner).await.is_none(), "nothing after an error");
    }

    #[test]
    fn content_range_forms() {
        let r = parse_content_range("bytes 10-19/100").unwrap();
        assert_eq!((r.start, r.end, r.total), (Some(10), Some(19), Some(100)));
        let r = parse_content_range("bytes */100").unwrap();
        assert_eq!((r.start, r.total), (None, Some(100)));
        assert!(parse_content_range("items 1-2/3").is_none());
    }

    #[test]
    fn per_entry_link_errors_are_errors() {
        let e = LinkEntry {
            quickkey: "q".into(),
            direct_download: None,
            normal_download: None,
            error: Some("User lacks permissions".into()),
            direct_download_error: None,
            direct_download_error_message: None,
        };
        assert_eq!(
            pick_direct_link("q", &[e]).unwrap_err().kind(),
            ErrorKind::Forbidden
        );
    }
}
