//! Prometheus `/metrics`: the server's own request counters, plus a small
//! writer for the text exposition format that the other layers' statistics
//! are rendered through.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

/// Counters owned by the HTTP layer.
#[derive(Default)]
pub struct HttpMetrics {
    requests: DashMap<(String, u16), AtomicU64>,
    bytes_in: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
    pub auth_failures: AtomicU64,
}

impl HttpMetrics {
    pub fn record_request(&self, method: &str, status: u16) {
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
        out.family("mediafire_dav_http_requests_total", "counter", "WebDAV requests by method and status.");
        let mut rows: Vec<_> = self
            .requests
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for ((method, status), n) in rows {
            out.sample(&[("method", &method), ("status", &status.to_string())], n as f64);
        }
        out.counter("mediafire_dav_http_bytes_in_total", "Request body bytes received.", self.bytes_in.load(Ordering::Relaxed));
        out.counter("mediafire_dav_http_bytes_out_total", "Response body bytes sent.", self.bytes_out.load(Ordering::Relaxed));
        out.counter("mediafire_dav_auth_failures_total", "Requests refused for bad or missing credentials.", self.auth_failures.load(Ordering::Relaxed));
    }
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
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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
        assert!(text.contains("mediafire_dav_http_requests_total{method=\"PUT\",status=\"201\"} 2\n"), "{text}");
        assert!(text.contains("mediafire_dav_http_requests_total{method=\"GET\",status=\"404\"} 1\n"));
        assert!(text.contains("x_total{path=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE mediafire_dav_http_bytes_in_total counter\n"));
    }
}
