//! Wires the layers together for `serve`: MediaFire client (or the in-process
//! emulator for `--demo`) → WebDAV adapter → HTTP front door.
//!
//! Tests build the very same [`App`] through [`build`], so what they exercise
//! is what users run.

use std::sync::Arc;

use anyhow::Context;
use tracing::{error, info, warn};

use crate::config::{Credentials, Settings};
use crate::dav::{DavConfig, MfDav};
use crate::emulator::{self, EmulatorConfig, EmulatorHandle};
use crate::error::ErrorKind;
use crate::mediafire::{Client, ClientConfig};
use crate::server::App;
use crate::server::auth::Authenticator;

/// A built application plus what must live as long as it does.
pub struct Built {
    pub app: Arc<App>,
    pub settings: Settings,
    /// The in-process emulator of `--demo`.
    pub emulator: Option<EmulatorHandle>,
    /// The throw-away state directory of `--demo` (removed on drop).
    _demo_state: Option<tempfile::TempDir>,
}

/// The credentials `--demo` uses when none are configured.
pub const DEMO_USER: &str = "demo";
pub const DEMO_PASS: &str = "demo";

/// Builds the application described by `settings`.
pub async fn build(mut settings: Settings) -> anyhow::Result<Built> {
    let mut emulator = None;
    let mut demo_state = None;
    if settings.demo {
        let handle = emulator::start(EmulatorConfig::default())
            .await
            .context("demo: starting the built-in MediaFire emulator")?;
        seed_demo(&handle);
        settings.api_base = handle.base_url();
        settings.cookie = Some(EmulatorConfig::default().cookie);
        if settings.credentials.is_none() {
            settings.credentials = Some(Credentials {
                user: DEMO_USER.into(),
                pass: DEMO_PASS.into(),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("mediafire-dav-demo-")
            .tempdir()?;
        settings.state_dir = dir.path().join("state");
        settings.spool_dir = dir.path().join("spool");
        demo_state = Some(dir);
        emulator = Some(handle);
    }
    create_private_dir(&settings.state_dir)?;
    create_private_dir(&settings.spool_dir)?;

    let client = Client::new(client_config(&settings))
        .await
        .map_err(|e| anyhow::anyhow!("mediafire: {e}"))?;
    match client.login().await {
        Ok(()) => info!(api_base = %settings.api_base, "mediafire session ready"),
        Err(e) if e.kind() == ErrorKind::Auth => error!(
            "mediafire login failed: {e} (refresh the cookie: --cookie or MEDIAFIRE_COOKIE); \
             serving anyway, requests will answer 503 until it works"
        ),
        Err(e) => warn!("mediafire login failed for now: {e}; will retry on demand"),
    }

    let dav = MfDav::new(Arc::new(client.clone()), dav_config(&settings))?;
    let auth = settings
        .credentials
        .as_ref()
        .map(Authenticator::new)
        .transpose()?;
    let app = Arc::new(App {
        dav,
        client: Some(client),
        auth,
        metrics: Default::default(),
        public_url: settings.public_url.clone(),
    });
    Ok(Built {
        app,
        settings,
        emulator,
        _demo_state: demo_state,
    })
}

/// The MediaFire client settings that `serve` and `check` share.
pub fn client_config(settings: &Settings) -> ClientConfig {
    ClientConfig {
        api_base: settings.api_base.clone(),
        cookie: settings.cookie.clone(),
        state_dir: settings.state_dir.clone(),
        calls_per_second: settings.calls_per_second,
        burst: settings.burst,
        max_concurrent_calls: settings.max_concurrent_calls,
        upload_parallelism: settings.upload_parallelism,
        ..ClientConfig::default()
    }
}

fn dav_config(settings: &Settings) -> DavConfig {
    DavConfig {
        state_dir: settings.state_dir.clone(),
        spool_dir: settings.spool_dir.clone(),
        cache_ttl: settings.cache_ttl,
        read_only: settings.read_only,
        local_apple_files: settings.local_apple_files,
        prefix: settings.prefix.clone(),
    }
}

/// Creates `dir` (and parents) readable by the owner only: it holds the
/// MediaFire session.
pub fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// A few files and folders so a newcomer has something to look at.
fn seed_demo(emulator: &EmulatorHandle) {
    emulator.seed_file(
        "/README.txt",
        b"Welcome to mediafire-dav.\n\nThis is a demo account served by the built-in MediaFire \
          emulator. Everything you store here lives in memory and is gone when the server \
          stops.\n",
    );
    emulator.seed_folder("/Documents");
    emulator.seed_file(
        "/Documents/notes.md",
        b"# Notes\n\n- try `rclone lsl` on this remote\n",
    );
    emulator.seed_folder("/Photos/2026");
    let pixels: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    emulator.seed_file("/Photos/2026/sample.bin", &pixels);
    emulator.seed_file(
        "/Music & Sounds/caf\u{e9} #1.txt",
        "names with spaces, & and # work\n".as_bytes(),
    );
}
