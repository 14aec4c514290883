//! The session manager: the only owner of the browser cookie, the session
//! token and the upload action token.
//!
//! MediaFire sells no API keys any more, so a browser cookie buys a session
//! token at `/application/get_session_token.php` (spec §1.2). The token lives
//! about ten minutes; `user/renew_session_token` extends it and may hand back
//! a new string (spec §1.4). This module
//! - keeps cookie + token in `session.json` (mode 0600, written atomically)
//!   so a restart needs neither a new cookie nor a new token;
//! - renews in a background task before `renew_after`; the task holds only a
//!   weak reference and stops when the last `Client` clone drops;
//! - recovers from 104/105 single-flight: however many calls fail with the
//!   same token, one renewal runs (and, if renewing fails, one cookie login);
//! - merges `Set-Cookie` rotations into the cookie instead of replacing it;
//! - caches the upload action token (`user/get_action_token`, spec §1.5).
//!
//! Secrets never leave this module except as request parameters/headers:
//! nothing here logs them, and `Debug` prints none.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::mediafire::client::{Client, Inner};

/// MediaFire's session token lifetime as observed (spec §1.4); a saved token
/// older than this is not worth a renewal attempt.
pub const TOKEN_TTL: Duration = Duration::from_secs(10 * 60);

/// Upload action token lifespan we ask for, in minutes (spec §1.5: 1–1440).
pub const ACTION_TOKEN_LIFESPAN_MIN: u64 = 1440;

/// After the cookie was refused, calls fail at once for this long instead of
/// asking MediaFire again (every WebDAV request would otherwise cost three
/// doomed API calls). `login()` always asks.
pub const DEAD_COOKIE_COOLDOWN: Duration = Duration::from_secs(30);

/// Refresh the action token this long before its lifespan ends.
const ACTION_TOKEN_MARGIN: Duration = Duration::from_secs(60 * 60);

const STATE_FILE: &str = "session.json";

/// Which token a call carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// The session token (every `/api/1.5/*` call except uploads).
    Session,
    /// The cached `type=upload` action token (`upload/*`).
    Upload,
}

/// A token handed to one call, with the generation it belongs to, so a
/// failure can tell whether somebody already replaced it.
#[derive(Clone)]
pub struct Tok {
    pub value: String,
    pub generation: u64,
}

/// What `session.json` holds. Only this module reads or writes it.
#[derive(Default, Serialize, Deserialize)]
struct SavedState {
    /// The cookie as last merged (with `Set-Cookie` rotations).
    #[serde(default)]
    cookie: Option<String>,
    /// SHA-256 of the cookie as configured, to notice a new `--cookie`.
    #[serde(default)]
    cookie_origin: Option<String>,
    #[serde(default)]
    session_token: Option<String>,
    /// UNIX seconds when the token was obtained or last renewed.
    #[serde(default)]
    token_issued: Option<u64>,
}

struct State {
    cookie: Option<String>,
    cookie_origin: Option<String>,
    token: Option<String>,
    issued: Option<SystemTime>,
    generation: u64,
}

struct ActionToken {
    value: String,
    fetched: SystemTime,
    generation: u64,
}

/// Cookie, session token and upload token, with their refresh locks.
pub struct Session {
    path: PathBuf,
    state: Mutex<State>,
    refresh: tokio::sync::Mutex<()>,
    upload: Mutex<Option<ActionToken>>,
    upload_refresh: tokio::sync::Mutex<()>,
    upload_generation: AtomicU64,
    /// Wakes the renewal task when a token appears.
    changed: Arc<Notify>,
    dead_cookie_logged: AtomicBool,
    /// When the cookie was last refused; cleared by a new token.
    dead_since: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Loads `session.json` from `state_dir` (creating the directory, mode
    /// 0700). A configured cookie different from the one the state was built
    /// from replaces it and drops the saved token.
    pub fn load(state_dir: &Path, configured_cookie: Option<&str>) -> Result<Session> {
        create_private_dir(state_dir)?;
        let path = state_dir.join(STATE_FILE);
        let saved = read_state(&path)?;

        let mut state = State {
            cookie: saved.cookie,
            cookie_origin: saved.cookie_origin,
            token: saved.session_token.filter(|t| !t.is_empty()),
            issued: saved
                .token_issued
                .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            generation: 1,
        };
        if let Some(cookie) = configured_cookie.map(str::trim).filter(|c| !c.is_empty()) {
            let origin = sha256_hex(cookie);
            if state.cookie_origin.as_deref() != Some(origin.as_str()) {
                debug!("configured cookie differs from the saved session, starting afresh");
                state.cookie = Some(cookie.to_string());
                state.cookie_origin = Some(origin);
                state.token = None;
                state.issued = None;
            }
        }

        let session = Session {
            path,
            state: Mutex::new(state),
            refresh: tokio::sync::Mutex::new(()),
            upload: Mutex::new(None),
            upload_refresh: tokio::sync::Mutex::new(()),
            upload_generation: AtomicU64::new(1),
            changed: Arc::new(Notify::new()),
            dead_cookie_logged: AtomicBool::new(false),
            dead_since: Mutex::new(None),
        };
        session.persist()?;
        Ok(session)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cookie to send to the API host, if any.
    pub fn cookie(&self) -> Option<String> {
        self.lock().cookie.clone()
    }

    /// True when a session token is held (it may still be expired).
    pub fn has_token(&self) -> bool {
        self.lock().token.is_some()
    }

    fn current(&self) -> (Option<String>, u64) {
        let s = self.lock();
        (s.token.clone(), s.generation)
    }

    /// The token for a call of `kind`, obtaining one first if none is held.
    ///
    /// Boxed because fetching an upload token is itself an API call that
    /// asks for a (session) token: the future would otherwise contain itself.
    pub fn token<'a>(
        &'a self,
        client: &'a Client,
        kind: TokenKind,
    ) -> Pin<Box<dyn Future<Output = Result<Tok>> + Send + 'a>> {
        Box::pin(async move {
            match kind {
                TokenKind::Session => self.session_token(client).await,
                TokenKind::Upload => self.upload_token(client).await,
            }
        })
    }

    async fn session_token(&self, client: &Client) -> Result<Tok> {
        if let (Some(value), generation) = self.current() {
            return Ok(Tok { value, generation });
        }
        let (_, generation) = self.current();
        self.recover(client, TokenKind::Session, generation).await?;
        match self.current() {
            (Some(value), generation) => Ok(Tok { value, generation }),
            (None, _) => Err(Error::new(ErrorKind::Auth, "no session token after login")),
        }
    }

    async fn upload_token(&self, client: &Client) -> Result<Tok> {
        if let Some(t) = self.fresh_upload_token() {
            return Ok(t);
        }
        let _guard = self.upload_refresh.lock().await;
        if let Some(t) = self.fresh_upload_token() {
            return Ok(t);
        }
        let value = client
            .user_get_action_token("upload", ACTION_TOKEN_LIFESPAN_MIN)
            .await?;
        let generation = self.upload_generation.fetch_add(1, Ordering::SeqCst) + 1;
        *self.upload.lock().unwrap_or_else(|p| p.into_inner()) = Some(ActionToken {
            value: value.clone(),
            fetched: SystemTime::now(),
            generation,
        });
        client
            .inner
            .stats
            .action_tokens
            .fetch_add(1, Ordering::Relaxed);
        debug!("obtained an upload action token");
        Ok(Tok { value, generation })
    }

    fn fresh_upload_token(&self) -> Option<Tok> {
        let guard = self.upload.lock().unwrap_or_else(|p| p.into_inner());
        let t = guard.as_ref()?;
        let lifespan = Duration::from_secs(ACTION_TOKEN_LIFESPAN_MIN * 60);
        let age = t.fetched.elapsed().unwrap_or(Duration::MAX);
        (age + ACTION_TOKEN_MARGIN < lifespan).then(|| Tok {
            value: t.value.clone(),
            generation: t.generation,
        })
    }

    /// Called after a call carrying generation `failed` got 104/105. Runs one
    /// renewal for all callers that saw the same generation; callers that
    /// arrive after it simply pick up the new token.
    pub async fn recover(&self, client: &Client, kind: TokenKind, failed: u64) -> Result<()> {
        if kind == TokenKind::Upload {
            let _guard = self.upload_refresh.lock().await;
            let mut up = self.upload.lock().unwrap_or_else(|p| p.into_inner());
            if up.as_ref().is_some_and(|t| t.generation == failed) {
                *up = None;
            }
            return Ok(());
        }

        let _guard = self.refresh.lock().await;
        let (token, generation) = self.current();
        if generation != failed && token.is_some() {
            return Ok(());
        }
        if self.recently_dead() {
            return Err(Error::new(
                ErrorKind::Auth,
                "the MediaFire cookie was refused moments ago",
            )
            .with_context("hint", "refresh MEDIAFIRE_COOKIE / --cookie"));
        }
        self.refresh_locked(client, token).await
    }

    fn recently_dead(&self) -> bool {
        let dead = self.dead_since.lock().unwrap_or_else(|p| p.into_inner());
        dead.is_some_and(|t| t.elapsed() < DEAD_COOKIE_COOLDOWN)
    }

    /// Renews before MediaFire's expiry; skipped when someone else renewed
    /// within `renew_after` already.
    pub async fn renew_proactively(&self, client: &Client, renew_after: Duration) -> Result<()> {
        let _guard = self.refresh.lock().await;
        let (token, _) = self.current();
        if token.is_none() || self.age() < renew_after {
            return Ok(());
        }
        self.refresh_locked(client, token).await
    }

    /// `login()`: makes sure the held token works now, renewing or logging in
    /// with the cookie as needed.
    pub async fn ensure_valid(&self, client: &Client) -> Result<()> {
        let _guard = self.refresh.lock().await;
        let (token, _) = self.current();
        self.refresh_locked(client, token).await
    }

    /// Renew `token` if it may still be alive, else (or if renewing fails)
    /// buy a new one with the cookie. Caller holds `self.refresh`.
    async fn refresh_locked(&self, client: &Client, token: Option<String>) -> Result<()> {
        if let Some(old) = token.filter(|_| self.age() < TOKEN_TTL) {
            match client.renew_with(&old).await {
                Ok(new) => {
                    client.inner.stats.renewals.fetch_add(1, Ordering::Relaxed);
                    if new != old {
                        debug!("renewal returned a new session token");
                    }
                    return self.adopt(new);
                }
                Err(e) => {
                    debug!(error = %e, "renewing the session token failed, logging in with the cookie")
                }
            }
        }
        let Some(cookie) = self.cookie() else {
            return Err(self.dead_cookie(Error::new(
                ErrorKind::Auth,
                "no session: no cookie configured and no usable saved session",
            )));
        };
        match client.application_get_session_token(&cookie).await {
            Ok(new) => {
                client
                    .inner
                    .stats
                    .token_fetches
                    .fetch_add(1, Ordering::Relaxed);
                self.dead_cookie_logged.store(false, Ordering::Relaxed);
                info!("obtained a MediaFire session token from the cookie");
                self.adopt(new)
            }
            Err(e) if e.kind() == ErrorKind::Auth => Err(self.dead_cookie(e)),
            Err(e) => Err(e),
        }
    }

    /// Logs the dead-cookie line once and returns the error with a hint.
    fn dead_cookie(&self, e: Error) -> Error {
        *self.dead_since.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(std::time::Instant::now());
        if !self.dead_cookie_logged.swap(true, Ordering::Relaxed) {
            error!(
                "the MediaFire session cannot be renewed: log in to mediafire.com in a browser \
                 and copy the cookie again into MEDIAFIRE_COOKIE or --cookie ({e})"
            );
        }
        e.with_context("hint", "refresh MEDIAFIRE_COOKIE / --cookie")
    }

    fn adopt(&self, token: String) -> Result<()> {
        if token.is_empty() {
            return Err(Error::new(
                ErrorKind::Auth,
                "MediaFire returned an empty session token",
            ));
        }
        {
            let mut s = self.lock();
            s.token = Some(token);
            s.issued = Some(SystemTime::now());
            s.generation += 1;
        }
        *self.dead_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.changed.notify_waiters();
        self.persist()
    }

    fn age(&self) -> Duration {
        let s = self.lock();
        s.issued
            .and_then(|i| i.elapsed().ok())
            .unwrap_or(Duration::MAX)
    }

    /// Merges `Set-Cookie` values into the cookie: same name replaces, other
    /// names stay, an expired/empty value removes. Persists on change.
    pub fn merge_set_cookies<'a>(&self, headers: impl Iterator<Item = &'a str>) -> Result<()> {
        let changed = {
            let mut s = self.lock();
            let before = s.cookie.clone().unwrap_or_default();
            let after = headers.fold(before.clone(), |c, h| merge_cookie(&c, h));
            if after != before {
                s.cookie = Some(after);
                true
            } else {
                false
            }
        };
        if changed {
            debug!("MediaFire rotated a cookie value, saving it");
            self.persist()?;
        }
        Ok(())
    }

    /// Writes `session.json` atomically (temp file + rename), mode 0600.
    fn persist(&self) -> Result<()> {
        let saved = {
            let s = self.lock();
            SavedState {
                cookie: s.cookie.clone(),
                cookie_origin: s.cookie_origin.clone(),
                session_token: s.token.clone(),
                token_issued: s
                    .issued
                    .and_then(|i| i.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
            }
        };
        let json = serde_json::to_vec_pretty(&saved)
            .map_err(|e| Error::new(ErrorKind::Local, "encoding session state").with_source(e))?;
        write_private_atomically(&self.path, &json).map_err(|e| {
            Error::new(ErrorKind::Local, "writing session state")
                .with_context("path", self.path.display())
                .with_source(e)
        })
    }

    /// When the next proactive renewal is due, if a token is held.
    fn renewal_due(&self, renew_after: Duration) -> Option<Duration> {
        let s = self.lock();
        s.token.as_ref()?;
        let age = s
            .issued
            .and_then(|i| i.elapsed().ok())
            .unwrap_or(Duration::MAX);
        Some(renew_after.saturating_sub(age))
    }
}

/// Starts the background renewal task. It keeps only a weak reference, so it
/// never keeps the client alive; `shutdown` fires when the last clone drops.
pub(crate) fn spawn_renewal(inner: Weak<Inner>, shutdown: CancellationToken, changed: Arc<Notify>) {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            // Read the schedule with a short-lived strong reference; never
            // sleep while holding one.
            let (wait, renew_after) = match inner.upgrade() {
                None => break,
                Some(i) => {
                    let renew_after = i.config.renew_after;
                    let wait = i.session.renewal_due(renew_after);
                    (wait, renew_after)
                }
            };
            let wait = match (wait, failures) {
                (None, _) => None,
                (Some(w), 0) => Some(w),
                // After a failed attempt, try again soon, not in 8 minutes.
                (Some(_), n) => Some((renew_after / 8).min(Duration::from_secs(30)) * n.min(4)),
            };
            let notified = changed.notified();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = notified => continue,
                _ = async {
                    match wait {
                        Some(w) => tokio::time::sleep(w).await,
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
            let Some(i) = inner.upgrade() else { break };
            let client = Client { inner: i };
            match client
                .inner
                .session
                .renew_proactively(&client, renew_after)
                .await
            {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    // A dead cookie was already reported once, loudly.
                    if e.kind() == ErrorKind::Auth {
                        debug!(error = %e, failures, "background session renewal failed");
                    } else {
                        warn!(error = %e, failures, "background session renewal failed");
                    }
                }
            }
        }
        debug!("session renewal task stopped");
    });
}

impl Session {
    /// The notifier the renewal task waits on.
    pub fn changed(&self) -> Arc<Notify> {
        Arc::clone(&self.changed)
    }
}

/// `cookie` with one `Set-Cookie` header applied.
pub fn merge_cookie(cookie: &str, set_cookie: &str) -> String {
    let mut parts = set_cookie.split(';');
    let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
        return cookie.to_string();
    };
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() {
        return cookie.to_string();
    }
    let removed = value.is_empty()
        || value.eq_ignore_ascii_case("deleted")
        || parts.any(|a| is_expiry_attribute(a.trim()));

    let mut pairs: Vec<(String, String)> = cookie
        .split(';')
        .filter_map(|p| {
            let (n, v) = p.split_once('=')?;
            Some((n.trim().to_string(), v.trim().to_string()))
        })
        .filter(|(n, _)| !n.is_empty())
        .collect();
    match (pairs.iter().position(|(n, _)| n == name), removed) {
        (Some(i), true) => {
            pairs.remove(i);
        }
        (Some(i), false) => pairs[i].1 = value.to_string(),
        (None, false) => pairs.push((name.to_string(), value.to_string())),
        (None, true) => {}
    }
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `Max-Age=0` (or negative), or an `Expires` date in the past: the server
/// deletes the cookie.
fn is_expiry_attribute(attr: &str) -> bool {
    let Some((name, value)) = attr.split_once('=') else {
        return false;
    };
    let value = value.trim();
    if name.trim().eq_ignore_ascii_case("max-age") {
        return value.parse::<i64>().is_ok_and(|n| n <= 0);
    }
    if name.trim().eq_ignore_ascii_case("expires") {
        // RFC 1123 dates, also in the old dashed form "01-Jan-1970".
        let date = value.replace('-', " ");
        return chrono::DateTime::parse_from_rfc2822(&date)
            .is_ok_and(|d| d.timestamp() <= chrono::Utc::now().timestamp());
    }
    false
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn read_state(path: &Path) -> Result<SavedState> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(s) => Ok(s),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "session state is unreadable, ignoring it");
                Ok(SavedState::default())
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SavedState::default()),
        Err(e) => Err(Error::new(ErrorKind::Local, "reading session state")
            .with_context("path", path.display())
            .with_source(e)),
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| {
        Error::new(ErrorKind::Local, "creating the state directory")
            .with_context("path", dir.display())
            .with_source(e)
    })
}

fn write_private_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".session-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_merge_replaces_keeps_and_removes() {
        let c = "ukey=a; skey=b; user=c";
        assert_eq!(
            merge_cookie(c, "skey=NEW; Path=/; HttpOnly"),
            "ukey=a; skey=NEW; user=c"
        );
        assert_eq!(
            merge_cookie(c, "extra=1; Secure"),
            "ukey=a; skey=b; user=c; extra=1"
        );
        assert_eq!(merge_cookie(c, "user=; Max-Age=0"), "ukey=a; skey=b");
        assert_eq!(merge_cookie(c, "user=x; max-age=0"), "ukey=a; skey=b");
        let past = "user=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/";
        assert_eq!(merge_cookie(c, past), "ukey=a; skey=b");
        let dashed = "user=x; expires=Thu, 01-Jan-1970 00:00:01 GMT";
        assert_eq!(merge_cookie(c, dashed), "ukey=a; skey=b");
        let future = "user=y; Expires=Fri, 01 Jan 2100 00:00:00 GMT";
        assert_eq!(merge_cookie(c, future), "ukey=a; skey=b; user=y");
        assert_eq!(merge_cookie(c, "garbage"), c);
    }

    #[test]
    fn state_file_is_private_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let s = Session::load(dir.path(), Some("a=1")).unwrap();
        s.adopt("tok".into()).unwrap();
        s.merge_set_cookies(["b=2"].into_iter()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(STATE_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Same configured cookie: the rotated cookie and the token are kept.
        let s = Session::load(dir.path(), Some("a=1")).unwrap();
        assert_eq!(s.cookie().as_deref(), Some("a=1; b=2"));
        assert!(s.has_token());
        // No cookie configured: the saved state is used as is.
        let s = Session::load(dir.path(), None).unwrap();
        assert!(s.has_token());
        // A different cookie: start afresh.
        let s = Session::load(dir.path(), Some("a=9")).unwrap();
        assert_eq!(s.cookie().as_deref(), Some("a=9"));
        assert!(!s.has_token());
    }
}
