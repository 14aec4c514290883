//! `multipart/form-data` bodies (§2.1: API calls accept multipart forms; `upload/simple` may
//! carry the file as a part named `file` or `Filedata`).
//!
//! Two readers: [`parse`] for small form bodies held in memory, and [`first_file_part`] that
//! reads the fields before the first file part and then hands the file's bytes on as a
//! streaming body, so a large multipart upload is never held whole in memory.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header;
use http_body::{Body, Frame};
use http_body_util::BodyExt;

use super::store::PutError;

/// One part of a form held in memory.
pub(crate) struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Bytes,
}

/// The `boundary` of a `multipart/form-data` content type.
pub(crate) fn boundary(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return None;
    }
    ct.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `name` / `filename` from a part's `Content-Disposition` header.
fn disposition(headers: &str, key: &str) -> Option<String> {
    let line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
    line.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Parses a whole multipart body held in memory.
pub(crate) fn parse(body: &Bytes, boundary: &str) -> Vec<Part> {
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
            if let Some(name) = disposition(&headers, "name") {
                parts.push(Part {
                    name,
                    filename: disposition(&headers, "filename"),
                    data: body.slice(start + split + 4..start + len),
                });
            }
        }
        pos = start + len + next_delim.len();
    }
    parts
}

/// The fields before the first file part, and that part's content as a streaming body.
pub(crate) struct FilePart<B> {
    pub fields: Vec<(String, String)>,
    pub filename: Option<String>,
    pub body: PartBody<B>,
}

/// Whether a part is the file: it has a filename, or the conventional field name.
fn is_file_part(name: &str, filename: &Option<String>) -> bool {
    filename.is_some() || matches!(name, "file" | "Filedata")
}

/// Reads more of `body` into `buf`; false at the end of the body.
async fn fill<B>(body: &mut B, buf: &mut BytesMut, limit: usize) -> Result<bool, PutError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    loop {
        match body.frame().await {
            None => return Ok(false),
            Some(Err(e)) => {
                return Err(PutError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("reading multipart body: {e}"),
                )));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return Err(PutError::TooLong);
                    }
                    buf.extend_from_slice(&data);
                    return Ok(true);
                }
            }
        }
    }
}

/// Reads until `needle` is in `buf` (returns its position); `None` when the body ended first.
async fn fill_until<B>(
    body: &mut B,
    buf: &mut BytesMut,
    needle: &[u8],
    limit: usize,
) -> Result<Option<usize>, PutError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    loop {
        if let Some(pos) = find(buf, needle) {
            return Ok(Some(pos));
        }
        if !fill(body, buf, limit).await? {
            return Ok(None);
        }
    }
}

/// Reads the parts before the first file part (at most `limit` bytes of them) and returns the
/// file part as a body that streams until the closing delimiter. `None` when there is no file
/// part.
pub(crate) async fn first_file_part<B>(
    mut body: B,
    boundary: &str,
    limit: usize,
) -> Result<Option<FilePart<B>>, PutError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let open = format!("--{boundary}").into_bytes();
    let delim = format!("\r\n--{boundary}").into_bytes();
    let mut buf = BytesMut::new();
    let mut fields = Vec::new();
    let Some(first) = fill_until(&mut body, &mut buf, &open, limit).await? else {
        return Ok(None);
    };
    let _ = buf.split_to(first + open.len());
    loop {
        // after a delimiter: `--` ends the body, otherwise CRLF and the part's headers
        while buf.len() < 2 {
            if !fill(&mut body, &mut buf, limit).await? {
                return Ok(None);
            }
        }
        if buf.starts_with(b"--") {
            return Ok(None);
        }
        if buf.starts_with(b"\r\n") {
            let _ = buf.split_to(2);
        }
        let Some(end) = fill_until(&mut body, &mut buf, b"\r\n\r\n", limit).await? else {
            return Ok(None);
        };
        let headers = String::from_utf8_lossy(&buf.split_to(end)).to_string();
        let _ = buf.split_to(4);
        let name = disposition(&headers, "name").unwrap_or_default();
        let filename = disposition(&headers, "filename");
        if is_file_part(&name, &filename) {
            return Ok(Some(FilePart {
                fields,
                filename,
                body: PartBody {
                    inner: body,
                    buf,
                    delim,
                    done: false,
                },
            }));
        }
        let Some(len) = fill_until(&mut body, &mut buf, &delim, limit).await? else {
            return Ok(None);
        };
        let value = buf.split_to(len);
        let _ = buf.split_to(delim.len());
        fields.push((name, String::from_utf8_lossy(&value).to_string()));
    }
}

/// The content of one multipart part, streamed: everything up to the next delimiter. A body
/// that ends before the delimiter is an error (a truncated upload must not be stored).
pub(crate) struct PartBody<B> {
    inner: B,
    buf: BytesMut,
    delim: Vec<u8>,
    done: bool,
}

impl<B> Body for PartBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(pos) = find(&this.buf, &this.delim) {
                this.done = true;
                let data = this.buf.split_to(pos).freeze();
                if data.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            // keep a tail that could be the start of a delimiter split across chunks
            let keep = this.delim.len() - 1;
            if this.buf.len() > keep {
                let n = this.buf.len() - keep;
                return Poll::Ready(Some(Ok(Frame::data(this.buf.split_to(n).freeze()))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.buf.extend_from_slice(&data);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("reading multipart body: {e}"),
                    ))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "multipart body ended inside the file part",
                    ))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use http_body_util::StreamBody;

    use super::*;

    const BODY: &[u8] =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"session_token\"\r\n\r\nabc\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
Content-Type: text/plain\r\n\r\nhello\r\n--Xy world\r\n--XyZ--\r\n";

    #[test]
    fn parse_splits_fields_and_files() {
        let parts = parse(&Bytes::from_static(BODY), "XyZ");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "session_token");
        assert_eq!(&parts[0].data[..], b"abc");
        assert_eq!(parts[1].filename.as_deref(), Some("a.txt"));
        assert_eq!(&parts[1].data[..], b"hello\r\n--Xy world");
    }

    /// The body cut into chunks of `n` bytes, as a network would deliver it.
    fn chunked(
        data: &'static [u8],
        n: usize,
    ) -> impl Body<Data = Bytes, Error = io::Error> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, io::Error>> = data
            .chunks(n)
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(stream::iter(frames))
    }

    #[tokio::test]
    async fn streaming_reader_finds_the_file_whatever_the_chunking() {
        for n in [1, 2, 3, 7, 16, 1000] {
            let part = first_file_part(chunked(BODY, n), "XyZ", 4096)
                .await
                .unwrap()
                .expect("a file part");
            assert_eq!(
                part.fields,
                vec![("session_token".to_string(), "abc".to_string())]
            );
            assert_eq!(part.filename.as_deref(), Some("a.txt"));
            let data = part.body.collect().await.unwrap().to_bytes();
            assert_eq!(&data[..], b"hello\r\n--Xy world", "chunk size {n}");
        }
    }

    #[tokio::test]
    async fn truncated_file_part_is_an_error() {
        let cut = &BODY[..BODY.len() - 20];
        let part = first_file_part(chunked(cut, 5), "XyZ", 4096)
            .await
            .unwrap()
            .expect("a file part");
        assert!(part.body.collect().await.is_err());
    }

    #[tokio::test]
    async fn no_file_part_is_none() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B--\r\n";
        assert!(
            first_file_part(chunked(body, 4), "B", 4096)
                .await
                .unwrap()
                .is_none()
        );
    }
}
