//! A MediaFire web API emulator served over real HTTP on loopback.
//!
//! The emulator owns a fake MediaFire account: a folder tree, content stored by SHA-256, session
//! and action tokens, resumable upload sessions and direct download links. It speaks the wire
//! format of `/work/shared/mediafire-api.md` (cookie flavour, API 1.5) and nothing else; it shares
//! no code with `crate::mediafire`, so a misreading of the spec on one side cannot hide behind the
//! other. It models the API surface of Appendix A, not MediaFire's web pages.
//!
//! Tests start it with [`start`] on `127.0.0.1:0`; `mediafire-dav emulator` runs it standalone
//! ([`run`]) and `serve --demo` runs it in-process.
//!
//! # Surface
//!
//! - `POST /application/get_session_token.php`: cookie → session token (gzip on request).
//! - `/api/1.5/user/*`, `folder/*`, `file/*`, `upload/*`, `device/get_status`,
//!   `system/get_limits` (any `/api/<version>/` prefix and the unversioned `/api/` are accepted).
//! - `/dl/<token>/<quickkey>/<name>`: the download host (GET, HEAD, single Range).
//! - `/convkey/...`: a tiny image for thumbnails.
//! - `/__emulator/*`: admin endpoints (stats, faults, seeding, token expiry), loopback only.
//!
//! # Choices where the spec is silent (each one a flag where the spec says unknown)
//!
//! - A bad or missing cookie on the token endpoint answers error **107** ("The Credentials you
//!   entered are invalid") with the configured error status, or 403 when that is 200.
//! - The root folder is reported as folderkey `myfiles` (as in the recorded `folder/get_info`);
//!   empty, absent and `myfiles` all mean the root. `trash` lists the trash can.
//! - Files and folders have separate name spaces (a file and a folder may share a name), as
//!   `upload/check.file_exists` only looks at files. Names are compared case-sensitively unless
//!   `--case-insensitive-names`.
//! - Collisions: uploads follow `action_on_duplicate`, defaulting to `--duplicate-action` (skip);
//!   `folder/create` defaults to `--folder-duplicate-action` (keep); `keep` renames to the
//!   observed pattern `name(N).ext`. `file/update` / `folder/update` renames onto a taken name
//!   fail with 143 / 144 (or rename with `--rename-collision rename`). Moves and copies rename
//!   the moved item and report it in `new_names`, an array of the new names (or fail with 143 /
//!   144 with `--move-collision error`).
//! - Extension changes on rename are allowed unless `--forbid-extension-change` (then 106).
//! - Keys are random `[0-9a-z]`: folderkeys 13 characters, quickkeys 15, upload keys 11.
//!   Session tokens are 144 hex characters, action tokens 160.
//! - A folder key given as `quick_key` answers 111 (as recorded), an unknown quickkey 110.
//! - `file/get_links` gives a file in the trash an entry with only `quickkey` and a plain-string
//!   `error` (the recorded shape), inside a successful envelope.
//! - Uploads larger than `--max-upload-size` are refused up front with 282 (check and units).
//! - With `--rotate-cookie`, every token request gets `Set-Cookie: ukey=<new value>`; a request
//!   cookie is valid while it contains a value that is current or in its grace period.
//! - `/application/logout.php` forgets the given session token.
//! - Action tokens are accepted on `upload/*` only; elsewhere they answer 105.
//! - `renew_session_token` on a token older than 300 s (`--renew-same-token-secs`) mints a new
//!   token (the old one stays valid until its own expiry) or, with `--renew-mode extend`,
//!   extends the same string; a younger token is extended and returned unchanged.
//! - A finished upload that failed polls as status `99` with a non-empty `fileerror` and an empty
//!   `quickkey`; an unknown key polls as `doupload.result` `-80`, a malformed one as `-20`.
//! - `x-filename` is taken verbatim (raw UTF-8) unless `--decode-filename-header`.
//! - `created` is US Central time (UTC − 5 h, as in every capture); `created_utc` is UTC.
//! - Trash: `delete` moves an item to the trash (it vanishes from listings, `get_info` still
//!   answers with `delete_date`); a second delete answers 209 / 210; other changes to trashed
//!   items answer 211; `purge` removes for good. Content stays in the blob store after a purge,
//!   so `upload/check` still says `hash_exists` and `upload/instant` works.
//! - Storage use counts every file not purged (the trash included).
//! - Upload sessions are keyed by (folder, name, hash, size): `upload/check` opens one (with
//!   `resumable=yes`) and reports its bitmap on every later check until the file is complete;
//!   a unit request's own `action_on_duplicate` / `quick_key` override the check's. Sessions
//!   still receiving units never expire; finished ones answer polls for an hour. Unit requests
//!   for a session that already has every unit are answered with its state, not stored again.
//! - `path` on upload calls is resolved below `folder_key`, creating missing folders (also on
//!   `upload/check`, which then returns their `folder_key`).
//! - Content is kept after the last file using it is purged (never garbage-collected).
//! - Uploads finishing during an asynchronous operation are not refused with 208.
//! - Multipart `upload/simple` bodies are streamed: the fields before the file part (up to
//!   1 MiB) are read, the file part goes to the store; `session_token` may be one of the fields.
//!
//! # Faults
//!
//! See [`Faults`]: transient failures at a rate (`error100`, `html403`, `drop`, `mixed`), a
//! per-second rate limit (163), asynchronous move/copy/delete/purge (208 meanwhile), periodic
//! token expiry, a poll delay, the N-th unit request failing or answering 304, latency,
//! `file/get_links` entries that carry only an `error`, and downloads cut mid-body. They apply
//! to `/api/` calls (and, for the last one, the download host), never to admin endpoints.
//!
//! # Stats
//!
//! `GET /__emulator/stats` and [`EmulatorHandle::stats`] return `api_calls` (per
//! `category/action`, rejected calls included), `total_api_calls`, `upload_unit_bytes`,
//! `upload_simple_bytes`, `download_bytes`, `downloads`, `errors` (per error code sent),
//! `faults_injected` (per switch: `error100`, `html403`, `drop`, `rate_limit`,
//! `unit_hash_mismatch`, `link_error`, `download_cut`), `files` and `folders` (items not in the
//! trash; the root is not counted).
//!
//! # Layout
//!
//! - `server`: accept loop, routing, parameters, envelope, token endpoint.
//! - `api`: one function per action for `user/*`, `folder/*`, `file/*`, `device/*`, `system/*`.
//! - `upload`: the upload protocol (sessions, units, bitmap, poll).
//! - `download`: the download host; `admin`: `/__emulator/*`.
//! - `state`: the shared emulator, tokens, links, persistence; `tree`: folders and files.
//! - `store`: content by SHA-256 and unit data, in memory or on disk.
//! - `faults`: the switches; `multipart`: form bodies.

mod admin;
mod api;
mod download;
mod faults;
mod multipart;
mod server;
mod state;
mod store;
mod tree;
mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use faults::{FailMode, Faults};

/// How an item whose name is taken in the destination is handled.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateAction {
    /// Do nothing: uploads fail with `fileerror` 13, `folder/create` returns the existing folder.
    Skip,
    /// Keep both: the new item is renamed `name(N).ext`.
    Keep,
    /// Replace: uploads become a new revision of the existing quickkey.
    Replace,
}

/// What a rename, move or copy does when the target name is taken.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Collision {
    /// Fail with 143 (file) / 144 (folder).
    Error,
    /// Rename the item to `name(N).ext` (reported in `new_names` for moves).
    Rename,
}

/// What `user/renew_session_token` does with a token older than five minutes (§1.4).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenewMode {
    /// Return a new token string.
    New,
    /// Extend the same token string.
    Extend,
}

/// Settings of the emulator; every field is a `mediafire-dav emulator` flag.
#[derive(clap::Args, Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to listen on (loopback only is sensible). Default `127.0.0.1:0` (any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// The browser cookie the token endpoint accepts: a request cookie is valid if its `Cookie`
    /// header contains this value. Default `demo-cookie`.
    #[arg(long, env = "MEDIAFIRE_EMULATOR_COOKIE", default_value = "demo-cookie")]
    pub cookie: String,

    /// Answer every token request with a `Set-Cookie` that rotates one cookie value (`ukey`);
    /// the previous value stays valid for `--cookie-grace-secs`.
    #[arg(long)]
    pub rotate_cookie: bool,

    /// How long a rotated-away cookie value stays valid, in seconds. Default 300.
    #[arg(long, default_value_t = 300)]
    pub cookie_grace_secs: u64,

    /// Keep content and metadata in this directory (reloaded on start); without it everything
    /// lives in memory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Session token lifetime in seconds from issue or renewal. Default 600.
    #[arg(long, default_value_t = 600)]
    pub token_ttl: u64,

    /// What renewing a token older than 300 s does: `new` (mint a new string) or `extend`.
    #[arg(long, value_enum, default_value_t = RenewMode::New)]
    pub renew_mode: RenewMode,

    /// Age in seconds below which `renew_session_token` returns the same token unchanged
    /// (§1.4: five minutes). Default 300.
    #[arg(long, default_value_t = 300)]
    pub renew_same_token_secs: u64,

    /// Lifetime of a direct download link in seconds; afterwards it answers 403. Default 3600.
    #[arg(long, default_value_t = 3600)]
    pub link_ttl: u64,

    /// Answer direct links with a 302 to a second download URL (exercises HEAD/302 handling).
    #[arg(long)]
    pub download_redirect: bool,

    /// `action_on_duplicate` for uploads when the request omits it. Default `skip`.
    #[arg(long, value_enum, default_value_t = DuplicateAction::Skip)]
    pub duplicate_action: DuplicateAction,

    /// `action_on_duplicate` for `folder/create` when the request omits it. Default `keep`.
    #[arg(long, value_enum, default_value_t = DuplicateAction::Keep)]
    pub folder_duplicate_action: DuplicateAction,

    /// Rename (`file/update`, `folder/update`) onto a taken name: `error` (143/144) or `rename`.
    #[arg(long, value_enum, default_value_t = Collision::Error)]
    pub rename_collision: Collision,

    /// Move or copy onto a taken name: `rename` (reported in `new_names`) or `error`.
    #[arg(long, value_enum, default_value_t = Collision::Rename)]
    pub move_collision: Collision,

    /// Reject renames that change a file's extension with error 106.
    #[arg(long)]
    pub forbid_extension_change: bool,

    /// Compare names case-insensitively when looking for collisions.
    #[arg(long)]
    pub case_insensitive_names: bool,

    /// Percent-decode the `x-filename` upload header (default: take it verbatim).
    #[arg(long)]
    pub decode_filename_header: bool,

    /// HTTP status of API error envelopes (200, 400, 403, 500, ...). Default 400.
    #[arg(long, default_value_t = 400)]
    pub error_status: u16,

    /// Account storage limit in bytes. Default 10 GiB.
    #[arg(long, default_value_t = 10_737_418_240)]
    pub storage_limit: u64,

    /// Largest accepted upload in bytes (larger → `fileerror` 1). Default 20 GiB.
    #[arg(long, default_value_t = 21_474_836_480)]
    pub max_upload_size: u64,

    /// Seed for the random generator (keys, tokens, fault decisions); random when absent.
    #[arg(long)]
    pub seed: Option<u64>,

    #[command(flatten)]
    pub faults: Faults,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cookie: "demo-cookie".to_string(),
            rotate_cookie: false,
            cookie_grace_secs: 300,
            data_dir: None,
            token_ttl: 600,
            renew_mode: RenewMode::New,
            renew_same_token_secs: 300,
            link_ttl: 3600,
            download_redirect: false,
            duplicate_action: DuplicateAction::Skip,
            folder_duplicate_action: DuplicateAction::Keep,
            rename_collision: Collision::Error,
            move_collision: Collision::Rename,
            forbid_extension_change: false,
            case_insensitive_names: false,
            decode_filename_header: false,
            error_status: 400,
            storage_limit: 10_737_418_240,
            max_upload_size: 21_474_836_480,
            seed: None,
            faults: Faults::default(),
        }
    }
}

/// A running emulator. Dropping the handle leaves the server running; [`shutdown`] stops it.
///
/// [`shutdown`]: EmulatorHandle::shutdown
pub struct EmulatorHandle {
    emu: Arc<state::Emulator>,
    addr: SocketAddr,
    server: server::Running,
}

impl EmulatorConfig {
    /// Checks the values that flags cannot check by type.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(200..=599).contains(&self.error_status) {
            anyhow::bail!(
                "emulator: --error-status {} is not an HTTP status (200-599)",
                self.error_status
            );
        }
        self.faults
            .validate()
            .map_err(|e| anyhow::anyhow!("emulator: faults: {e}"))
    }
}

/// Binds the listener, loads the data directory if any, and serves in a background task.
pub async fn start(config: EmulatorConfig) -> anyhow::Result<EmulatorHandle> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("emulator: binding {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    let emu = Arc::new(state::Emulator::open(config, base_url).await?);
    upload::resume_pending(&emu);
    let server = server::spawn(emu.clone(), listener);
    tracing::debug!(%addr, "emulator started");
    Ok(EmulatorHandle { emu, addr, server })
}

/// Runs the emulator until ctrl-c or SIGTERM (the `mediafire-dav emulator` command).
pub async fn run(config: EmulatorConfig) -> anyhow::Result<()> {
    let handle = start(config).await?;
    tracing::info!(url = %handle.base_url(), "mediafire emulator listening");
    shutdown_signal().await;
    tracing::info!("mediafire emulator shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
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
        _ = ctrl_c => {}
        _ = term => {}
    }
}

impl EmulatorHandle {
    /// The socket address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: what `serve --api-base` gets.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The same JSON as `GET /__emulator/stats`.
    pub fn stats(&self) -> serde_json::Value {
        self.emu.stats_json()
    }

    /// Zeroes every counter of [`stats`](Self::stats).
    pub fn reset_stats(&self) {
        self.emu.reset_stats();
    }

    /// Creates the folders of `path` ("/a/b") that are missing; returns the folderkey of the
    /// last one (`myfiles` for "/").
    pub fn seed_folder(&self, path: &str) -> String {
        self.emu.seed_folder(path)
    }

    /// Stores `content` at `path` ("/a/b.txt"), creating parents and replacing a file of the
    /// same name; returns its quickkey. Seeding bypasses upload rules (even empty files).
    pub fn seed_file(&self, path: &str, content: &[u8]) -> String {
        self.emu.seed_file(path, content)
    }

    /// Expires every session and action token now (the next call with one answers 105).
    pub fn expire_all_tokens(&self) {
        self.emu.expire_all_tokens();
    }

    /// Replaces the fault switches.
    pub fn set_faults(&self, faults: Faults) {
        self.emu.set_faults(faults);
    }

    /// Stops accepting, lets open requests finish (briefly), and flushes the data directory.
    pub async fn shutdown(self) {
        self.server.stop().await;
        self.emu.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;

    #[test]
    fn default_matches_flag_defaults() {
        let cmd = EmulatorConfig::augment_args(clap::Command::new("emulator"));
        let m = cmd
            .try_get_matches_from(["emulator", "--cookie", "demo-cookie"])
            .unwrap();
        let parsed = EmulatorConfig::from_arg_matches(&m).unwrap();
        let default = EmulatorConfig::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
    }
}
