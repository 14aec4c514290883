//! The WebDAV adapter over the in-memory remote, on 127.0.0.1:PORT, for
//! litmus and manual tests: `cargo run --example dav_mem -- 8099 [STATE_DIR]`.
//! `DAV_MEM_PREFIX=/dav` serves under a URL prefix.
//! No auth, no metrics: only `MfDav::handle` behind a bare hyper server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mediafire_dav::dav::memory::MemoryRemote;
use mediafire_dav::dav::{DavConfig, MfDav};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map_or(Ok(8099), |p| p.parse())?;
    let state = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => tempfile::tempdir()?.keep(),
    };
    let config = DavConfig {
        state_dir: state.clone(),
        prefix: std::env::var("DAV_MEM_PREFIX").unwrap_or_default(),
        ..DavConfig::default()
    };
    let dav = MfDav::new(Arc::new(MemoryRemote::new()), config)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr).await?;
    eprintln!(
        "dav_mem: serving on http://{addr}/ (state in {})",
        state.display()
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let dav = dav.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                let dav = dav.clone();
                async move { Ok::<_, Infallible>(dav.handle(req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
