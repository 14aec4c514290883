//! The HTTP front door: accepts connections, answers `/healthz` and
//! `/metrics`, enforces Basic auth, hands everything else to the WebDAV
//! adapter, and writes one log line per request.
//!
//! Shutdown is graceful: on the signal the listener closes, and requests in
//! flight (an upload committing to MediaFire, say) get [`DRAIN_TIMEOUT`] to
//! finish before the process exits.

pub mod auth;
pub mod metrics;
pub mod proxy;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use self::auth::{Authenticator, Verdict};
use self::metrics::{Exposition, HttpMetrics};
use self::proxy::{Destination, PublicUrl};
use crate::dav::MfDav;
use crate::mediafire::Client;

/// How long in-flight requests may run on after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Everything a request needs, shared by all connections.
pub struct App {
    pub dav: MfDav,
    /// The MediaFire client, for its statistics (absent in adapter-only tests).
    pub client: Option<Client>,
    /// `None` means authentication is turned off.
    pub auth: Option<Authenticator>,
    pub metrics: HttpMetrics,
    /// The URL clients reach the server by, behind a reverse proxy.
    pub public_url: Option<PublicUrl>,
}

impl App {
    async fn handle(self: Arc<Self>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = loggable_path(req.uri().path());
        let response = self.route(peer, req).await;
        let status = response.status();
        self.metrics
            .record_request(method.as_str(), status.as_u16());
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        // Paths are the client's own names; they are not secrets.
        if status.is_server_error() {
            warn!(%peer, %method, path = %path, status = status.as_u16(), elapsed_ms, "request");
        } else {
            info!(%peer, %method, path = %path, status = status.as_u16(), elapsed_ms, "request");
        }
        response
    }

    async fn route(&self, peer: SocketAddr, mut req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        if path == "/healthz" && (req.method() == Method::GET || req.method() == Method::HEAD) {
            return text(StatusCode::OK, "ok\n");
        }
        if let Some(auth) = &self.auth {
            let header = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            match auth.check(peer.ip(), header) {
                Verdict::Allowed => {}
                Verdict::Denied => {
                    if header.is_some() {
                        self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
                        debug!(%peer, "authentication failed");
                    }
                    let mut resp = text(StatusCode::UNAUTHORIZED, "authentication required\n");
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(
                            "Basic realm=\"mediafire-dav\", charset=\"UTF-8\"",
                        ),
                    );
                    return resp;
                }
                Verdict::Throttled { retry_after } => {
                    self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(%peer, "too many failed logins; throttling this address");
                    let mut resp = text(StatusCode::TOO_MANY_REQUESTS, "too many failed logins\n");
                    resp.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from(retry_after.as_secs() + 1),
                    );
                    return resp;
                }
            }
        }
        if path == "/metrics" && req.method() == Method::GET {
            let mut resp = text(StatusCode::OK, self.render_metrics());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return resp;
        }
        if let Some(resp) = self.rewrite_destination(&mut req) {
            return resp;
        }
        self.dav_request(req).await
    }

    /// Reduces a `Destination` on the public URL to its path (see
    /// `proxy.rs`); `Some` is the 502 for one on another server.
    fn rewrite_destination(&self, req: &mut Request<Incoming>) -> Option<Response<Body>> {
        let public = self.public_url.as_ref()?;
        let value = req.headers().get("destination")?.to_str().ok()?;
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        match public.destination(value, host) {
            Destination::Keep => None,
            Destination::Path(path) => {
                debug!(destination = %value, %path, "destination on the public URL");
                let path = HeaderValue::from_str(&path).ok()?;
                req.headers_mut().insert("destination", path);
                None
            }
            Destination::Foreign => {
                debug!(destination = %value, "destination on another server");
                Some(text(
                    StatusCode::BAD_GATEWAY,
                    "the destination is on another server\n",
                ))
            }
        }
    }

    async fn dav_request(&self, req: Request<Incoming>) -> Response<Body> {
        let bytes_in = self.metrics_counter_in();
        // Set when the client's body breaks off or is malformed: dav-server
        // answers that with 502, which would blame MediaFire.
        let body_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failed = body_failed.clone();
        let req = req.map(move |body| {
            body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                frame
            })
            .map_err(move |e| {
                failed.store(true, Ordering::Relaxed);
                e
            })
        });
        let resp = self.dav.handle(req).await;
        if body_failed.load(Ordering::Relaxed) && resp.status().is_server_error() {
            info!(
                status = resp.status().as_u16(),
                "request body was cut off or malformed; answering 400"
            );
            return text(
                StatusCode::BAD_REQUEST,
                "the request body was cut off or malformed\n",
            );
        }
        let bytes_out = self.metrics_counter_out();
        resp.map(move |body| {
            body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                frame
            })
            .boxed_unsync()
        })
    }

    fn metrics_counter_in(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.metrics.bytes_in_handle()
    }

    fn metrics_counter_out(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.metrics.bytes_out_handle()
    }

    fn render_metrics(&self) -> String {
        let mut out = Exposition::default();
        self.metrics.render(&mut out);
        metrics::render_dav(&self.dav.stats(), &mut out);
        if let Some(client) = &self.client {
            metrics::render_client(&client.stats(), &mut out);
        }
        out.finish()
    }
}

/// The request path as the log line shows it: cut after [`LOGGED_PATH_MAX`]
/// bytes (at a character boundary), so a hostile 60 KB path cannot make a
/// 60 KB log line.
fn loggable_path(path: &str) -> String {
    if path.len() <= LOGGED_PATH_MAX {
        return path.to_string();
    }
    let mut end = LOGGED_PATH_MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &path[..end], path.len())
}

/// Longest request path written whole into the request log line.
const LOGGED_PATH_MAX: usize = 512;

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let body: String = body.into();
    let mut resp = Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and similar: back off, keep serving.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.handle(peer, req).await) }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    info!("shutting down; waiting for requests in flight");
    tokio::select! {
        () = graceful.shutdown() => info!("all connections closed"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => warn!("gave up waiting for open connections"),
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_cut_in_the_log() {
        assert_eq!(loggable_path("/a/b.txt"), "/a/b.txt");
        let long = format!("/{}", "é".repeat(400));
        let shown = loggable_path(&long);
        assert!(shown.len() < LOGGED_PATH_MAX + 32, "{}", shown.len());
        assert!(
            shown.ends_with(&format!("…({} bytes)", long.len())),
            "{shown}"
        );
    }
}
