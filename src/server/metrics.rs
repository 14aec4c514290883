//! Prometheus `/metrics`: the server's own request counters, plus a small
//! writer for the text exposition format that the other layers' statistics
//! are rendered through.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::dav::DavStats;
use crate::mediafire::ClientStats;

/// Counters owned by the HTTP layer.
#[derive(Default)]
pub struct HttpMetrics {
    requests: DashMap<(String, u16), AtomicU64>,
    bytes_in: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
    pub auth_failures: AtomicU64,
}

/// The methods counted under their own name; anything else is `OTHER`, so
/// that a client (even one that fails to log in) cannot grow the series
/// without bound by inventing methods.
const KNOWN_METHODS: [&str; 15] = [
    "GET",
    "HEAD",
    "PUT",
    "POST",
    "DELETE",
    "OPTIONS",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
];

impl HttpMetrics {
    pub fn record_request(&self, method: &str, status: u16) {
        let method = KNOWN_METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("OTHER");
        self.requests
            .entry((method.to_string(), status))
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A counter to add request body bytes to.
    pub fn bytes_in_handle(&self) -> Arc<AtomicU64> {
        self.bytes_in.clone()
    }

    /// A counter to add response body bytes to.
    pub fn bytes_out_handle(&self) -> Arc<AtomicU64> {
        self.bytes_out.clone()
    }

    pub fn render(&self, out: &mut Exposition) {
        out.family(
            "mediafire_dav_http_requests_total",
            "counter",
            "WebDAV requests by method and status.",
        );
        let mut rows: Vec<_> = self
            .requests
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for ((method, status), n) in rows {
            out.sample(
                &[("method", &method), ("status", &status.to_string())],
                n as f64,
            );
        }
        out.counter(
            "mediafire_dav_http_bytes_in_total",
            "Request body bytes received.",
            self.bytes_in.load(Ordering::Relaxed),
        );
        out.counter(
            "mediafire_dav_http_bytes_out_total",
            "Response body bytes sent.",
            self.bytes_out.load(Ordering::Relaxed),
        );
        out.counter(
            "mediafire_dav_auth_failures_total",
            "Requests refused for bad or missing credentials.",
            self.auth_failures.load(Ordering::Relaxed),
        );
    }
}

/// The WebDAV adapter's counters.
pub fn render_dav(stats: &DavStats, out: &mut Exposition) {
    out.counter(
        "mediafire_dav_cache_hits_total",
        "Folder lookups answered from the cache.",
        stats.cache_hits,
    );
    out.counter(
        "mediafire_dav_cache_misses_total",
        "Folder listings fetched from MediaFire.",
        stats.cache_misses,
    );
    out.gauge(
        "mediafire_dav_uploads_in_flight",
        "Uploads to MediaFire in progress (PUT bodies already spooled, being committed).",
        stats.uploads_in_flight as f64,
    );
    out.counter(
        "mediafire_dav_file_bytes_in_total",
        "File bytes received by PUT.",
        stats.bytes_in,
    );
    out.counter(
        "mediafire_dav_file_bytes_out_total",
        "File bytes sent by GET.",
        stats.bytes_out,
    );
}

/// The MediaFire client's counters.
pub fn render_client(stats: &ClientStats, out: &mut Exposition) {
    out.family(
        "mediafire_api_calls_total",
        "counter",
        "MediaFire API calls by action and outcome.",
    );
    for call in &stats.api_calls {
        out.sample(
            &[("action", &call.action), ("outcome", &call.outcome)],
            call.count as f64,
        );
    }
    out.counter(
        "mediafire_session_renewals_total",
        "Session tokens renewed.",
        stats.renewals,
    );
    out.counter(
        "mediafire_session_logins_total",
        "Session tokens bought with the cookie.",
        stats.token_fetches,
    );
    out.counter(
        "mediafire_action_tokens_total",
        "Upload action tokens fetched.",
        stats.action_tokens,
    );
    out.counter(
        "mediafire_upload_bytes_total",
        "Bytes uploaded to MediaFire.",
        stats.bytes_up,
    );
    out.counter(
        "mediafire_download_bytes_total",
        "Bytes downloaded from MediaFire.",
        stats.bytes_down,
    );
    out.counter(
        "mediafire_link_refreshes_total",
        "Direct links fetched again after a refusal.",
        stats.link_refreshes,
    );
}

/// Builds a text exposition (format 0.0.4): a `# HELP`/`# TYPE` header per
/// family followed by its samples.
#[derive(Default)]
pub struct Exposition {
    text: String,
    family: String,
}

impl Exposition {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self.family = name.to_string();
    }

    /// A sample of the current family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(&self.family);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(&[], value as f64);
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(&[], value);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_escaped_labels() {
        let m = HttpMetrics::default();
        m.record_request("PUT", 201);
        m.record_request("PUT", 201);
        m.record_request("GET", 404);
        let mut out = Exposition::default();
        m.render(&mut out);
        out.family("x_total", "counter", "odd \"label\"");
        out.sample(&[("path", "a\"b\\c\nd")], 1.0);
        let text = out.finish();
        assert!(
            text.contains("mediafire_dav_http_requests_total{method=\"PUT\",status=\"201\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mediafire_dav_http_requests_total{method=\"GET\",status=\"404\"} 1\n")
        );
        assert!(
            text.contains("x_total{path=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE mediafire_dav_http_bytes_in_total counter\n"));
    }

    #[test]
    fn invented_methods_share_one_series() {
        let m = HttpMetrics::default();
        for i in 0..100 {
            m.record_request(&format!("X{i}"), 401);
        }
        m.record_request("MKCOL", 201);
        assert_eq!(m.requests.len(), 2);
        let mut out = Exposition::default();
        m.render(&mut out);
        let text = out.finish();
        assert!(
            text.contains(
                "mediafire_dav_http_requests_total{method=\"OTHER\",status=\"401\"} 100\n"
            ),
            "{text}"
        );
    }
}
