//! Serving behind a reverse proxy: the public base URL clients use, and the
//! `Destination` header of MOVE and COPY, which names it.
//!
//! A client that reaches the server as `https://files.example.com/dav/`
//! sends `Destination: https://files.example.com/dav/new-name`, while the
//! request itself arrives as `http://127.0.0.1:8080/dav/...`. With
//! `--public-url https://files.example.com/dav`, a Destination on that
//! origin and under that path, or on the origin the request came to (its
//! `Host`), is reduced to its path before dav-server sees it; one on any
//! other origin is answered 502 (RFC 4918 §9.8.5: the destination is on
//! another server). Without a public URL every origin is taken at its path,
//! which is what dav-server does.
//!
//! The proxy must pass the path through unchanged: the server's own prefix
//! is the public URL's path (`config.rs` enforces it), so the hrefs in its
//! answers are right for the client.

use anyhow::bail;
use url::Url;

/// The base URL clients use, split into origin and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, lowercase, default port left out.
    origin: String,
    /// The path without a trailing slash (`""` for the root).
    path: String,
}

/// What to do with a request's `Destination` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Destination {
    /// Leave it as it is.
    Keep,
    /// Replace it with this absolute path (still percent-encoded).
    Path(String),
    /// It names another server: answer 502.
    Foreign,
}

/// `scheme://host[:port]` of `url`, as `Url` normalises it.
fn origin_of(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{}://{}:{port}", url.scheme(), host),
        None => format!("{}://{}", url.scheme(), host),
    })
}

/// Whether `path` is `base` or below it (segment-wise).
fn path_within(path: &str, base: &str) -> bool {
    base.is_empty()
        || path == base
        || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
}

impl PublicUrl {
    /// Parses and checks `--public-url`: http(s), a host, nothing after the path.
    pub fn parse(text: &str) -> anyhow::Result<PublicUrl> {
        let url = match Url::parse(text.trim()) {
            Ok(u) => u,
            Err(e) => bail!("config: `public_url` is not a URL ({e}): {text}"),
        };
        if url.scheme() != "http" && url.scheme() != "https" {
            bail!("config: `public_url` must be an http:// or https:// URL: {text}");
        }
        if !url.username().is_empty() || url.password().is_some() {
            bail!("config: `public_url` must not carry credentials");
        }
        if url.query().is_some() || url.fragment().is_some() {
            bail!("config: `public_url` must not have a query or fragment: {text}");
        }
        let Some(origin) = origin_of(&url) else {
            bail!("config: `public_url` has no host: {text}");
        };
        let path = url.path().trim_end_matches('/').to_string();
        Ok(PublicUrl { origin, path })
    }

    /// The path part, percent-decoded, without a trailing slash: the prefix
    /// the server must serve under.
    pub fn prefix(&self) -> String {
        percent_encoding::percent_decode_str(&self.path)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// The URL itself, with a trailing slash (for log lines and hints).
    pub fn as_base(&self) -> String {
        format!("{}{}/", self.origin, self.path)
    }

    /// Decides about one `Destination` value; `host` is the request's
    /// `Host` header (the origin a client reached directly).
    pub fn destination(&self, value: &str, host: Option<&str>) -> Destination {
        let value = value.trim();
        if value.starts_with('/') {
            return Destination::Keep;
        }
        let Ok(url) = Url::parse(value) else {
            // dav-server answers 400 for what it cannot read.
            return Destination::Keep;
        };
        let Some(origin) = origin_of(&url) else {
            return Destination::Foreign;
        };
        let public = origin == self.origin && path_within(url.path(), &self.path);
        let authority = origin.split_once("://").map_or("", |(_, a)| a);
        let direct = host.is_some_and(|h| authority.eq_ignore_ascii_case(h.trim()));
        if public || direct {
            Destination::Path(url.path().to_string())
        } else {
            Destination::Foreign
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises_and_refuses_odd_urls() {
        let p = PublicUrl::parse("HTTPS://Files.Example.com:443/dav/").unwrap();
        assert_eq!(p.origin, "https://files.example.com");
        assert_eq!(p.path, "/dav");
        assert_eq!(p.prefix(), "/dav");
        assert_eq!(p.as_base(), "https://files.example.com/dav/");
        let root = PublicUrl::parse("http://example.com:8443").unwrap();
        assert_eq!(root.origin, "http://example.com:8443");
        assert_eq!(root.path, "");
        assert_eq!(
            PublicUrl::parse("https://h/my%20files").unwrap().prefix(),
            "/my files"
        );
        for bad in [
            "ftp://h/x",
            "not a url",
            "https://u:p@h/",
            "https://h/?q=1",
            "https://h/#f",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations_on_the_public_or_direct_origin_become_paths() {
        let p = PublicUrl::parse("https://files.example.com/dav").unwrap();
        let path = |s: &str| Destination::Path(s.to_string());
        assert_eq!(
            p.destination("https://files.example.com/dav/a%20b.txt", None),
            path("/dav/a%20b.txt")
        );
        assert_eq!(
            p.destination("https://FILES.example.com:443/dav/x", None),
            path("/dav/x")
        );
        assert_eq!(p.destination("/dav/x", None), Destination::Keep);
        // Reached directly, without the proxy.
        assert_eq!(
            p.destination("http://127.0.0.1:8080/dav/x", Some("127.0.0.1:8080")),
            path("/dav/x")
        );
        // Another server, another scheme, or outside the public path.
        assert_eq!(
            p.destination("https://evil.example.net/dav/x", Some("127.0.0.1:8080")),
            Destination::Foreign
        );
        assert_eq!(
            p.destination("http://files.example.com/dav/x", None),
            Destination::Foreign
        );
        assert_eq!(
            p.destination("https://files.example.com/davx/y", None),
            Destination::Foreign
        );
    }
}
