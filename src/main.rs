//! The `mediafire-dav` command: parse, set up logging, run the chosen
//! subcommand. Everything else lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mediafire_dav::config::{ServeArgs, Settings};
use mediafire_dav::emulator::EmulatorConfig;
use mediafire_dav::{app, cli, server};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "A WebDAV server that mounts a MediaFire account")]
struct Cli {
    /// Log filter, e.g. `info` or `mediafire_dav=debug` (also RUST_LOG).
    #[arg(long, global = true, env = "MEDIAFIRE_DAV_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a MediaFire account over WebDAV.
    Serve(ServeArgs),
    /// Run the MediaFire API emulator.
    Emulator(EmulatorConfig),
    /// Log in, print the account and its quota, and exit.
    Check(cli::CheckArgs),
    /// Exit 0 if the server at --url answers its health check (for Docker).
    Healthcheck(cli::HealthcheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Emulator(config) => mediafire_dav::emulator::run(config).await,
            Command::Check(args) => cli::check(args).await,
            Command::Healthcheck(args) => cli::healthcheck(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    tracing::debug!(?settings, "configuration");
    let built = app::build(settings).await?;
    let listener = tokio::net::TcpListener::bind(built.settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", built.settings.listen))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}{}/", built.settings.prefix);
    tracing::info!(%url, "serving WebDAV");
    // One machine-readable line on stdout (logs go to stderr), so scripts and
    // tests that ask for port 0 learn the address.
    println!("mediafire-dav: serving WebDAV at {url}");
    if built.settings.demo {
        let creds = built
            .settings
            .credentials
            .as_ref()
            .expect("demo always has credentials");
        println!(
            "  demo account (built-in emulator): user {}, password {}",
            creds.user, creds.pass
        );
        println!(
            "  try: rclone lsl :webdav: --webdav-url {url} --webdav-user {} --webdav-pass $(rclone obscure {})",
            creds.user, creds.pass
        );
    }
    server::serve(listener, built.app.clone(), server::shutdown_signal()).await
}
