//! [`Client`]: one method per MediaFire API action, plus the transport they
//! share (limiter → token → HTTP → envelope).
//!
//! Each public method is named after its action (`folder_get_content` is
//! `folder/get_content`), builds its parameters, sends them through
//! [`Client::call`] and maps the wire type it gets back. Methods never sleep
//! or loop: retries live in `retry.rs`, renewals in `session.rs`, and the one
//! renew-then-resend on 104/105 in [`Client::call_once`]. Spec references are
//! to `/work/shared/mediafire-api.md`.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use reqwest::header::{ACCEPT, ACCEPT_LANGUAGE, COOKIE, ORIGIN, REFERER, SET_COOKIE};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace};

use crate::error::{Error, ErrorKind, Result};
use crate::mediafire::codes;
use crate::mediafire::download::CachedLink;
use crate::mediafire::envelope;
use crate::mediafire::limiter::{Class, Limiter};
use crate::mediafire::retry::{Idempotency, RetryPolicy};
use crate::mediafire::session::{self, Session, TokenKind};
use crate::mediafire::stats::{ClientStats, Stats};
use crate::mediafire::types::*;

/// Items per `folder/get_content` chunk; 1000 is the documented maximum (spec §3.1).
pub const CHUNK_SIZE: u32 = 1000;

const APP_ORIGIN: &str = "https://app.mediafire.com";
const APP_REFERER: &str = "https://app.mediafire.com/";
const WWW_ORIGIN: &str = "https://www.mediafire.com";
const WWW_REFERER: &str = "https://www.mediafire.com/";

/// Everything the client needs; `Default` gives the production values.
#[derive(Clone)]
pub struct ClientConfig {
    /// MediaFire root: token endpoint `{api_base}/application/get_session_token.php`,
    /// calls `{api_base}/api/1.5/<category>/<action>.php`.
    /// Default `https://www.mediafire.com`.
    pub api_base: String,
    /// Browser cookie (secret). `None`: use the saved state file only.
    pub cookie: Option<String>,
    /// Directory of `session.json` (mode 0600).
    pub state_dir: PathBuf,
    /// Global API calls per second (token bucket rate). Default 10.
    pub calls_per_second: f64,
    /// Token bucket size. Default 20.
    pub burst: u32,
    /// API calls in flight at most. Default 8.
    pub max_concurrent_calls: usize,
    /// Resumable units in flight per upload. Default 3.
    pub upload_parallelism: usize,
    /// Timeout of one API call. Default 60 s.
    pub request_timeout: Duration,
    /// Time budget for `upload/poll_upload` verification. Default 10 min.
    pub poll_timeout: Duration,
    /// Renew the session token when it is this old. Default 8 min
    /// (MediaFire expires it after about 10).
    pub renew_after: Duration,
    /// Retries of a temporary failure. Default 5.
    pub max_retries: u32,
    /// First backoff delay; doubles per retry, with jitter. Default 250 ms.
    pub retry_base_delay: Duration,
    /// User-Agent for every request. Default: a desktop Chrome string.
    pub user_agent: String,
    /// How long a direct download link is reused. Default 30 min.
    pub link_ttl: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            api_base: "https://www.mediafire.com".into(),
            cookie: None,
            state_dir: PathBuf::from("."),
            calls_per_second: 10.0,
            burst: 20,
            max_concurrent_calls: 8,
            upload_parallelism: 3,
            request_timeout: Duration::from_secs(60),
            poll_timeout: Duration::from_secs(600),
            renew_after: Duration::from_secs(8 * 60),
            max_retries: 5,
            retry_base_delay: Duration::from_millis(250),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                         Chrome/142.0.0.0 Safari/537.36"
                .into(),
            link_ttl: Duration::from_secs(30 * 60),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("api_base", &self.api_base)
            .field("cookie", &self.cookie.as_ref().map(|_| "<redacted>"))
            .field("state_dir", &self.state_dir)
            .field("calls_per_second", &self.calls_per_second)
            .field("burst", &self.burst)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("upload_parallelism", &self.upload_parallelism)
            .field("request_timeout", &self.request_timeout)
            .field("poll_timeout", &self.poll_timeout)
            .field("renew_after", &self.renew_after)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("link_ttl", &self.link_ttl)
            .finish_non_exhaustive()
    }
}

/// A MediaFire client; cheap to clone, all clones share one session.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: ClientConfig,
    pub api_base: String,
    pub http: reqwest::Client,
    pub session: Session,
    pub limiter: Limiter,
    pub retry: RetryPolicy,
    pub links: DashMap<String, CachedLink>,
    pub stats: Stats,
    /// Consecutive 163/261 answers, for the global pause length.
    rate_strikes: AtomicU32,
    shutdown: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stops the renewal task as soon as the last clone is gone.
        self.shutdown.cancel();
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_base", &self.inner.api_base)
            .finish_non_exhaustive()
    }
}

/// `content_type` of `folder/get_content`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    Folders,
    Files,
}

impl ContentType {
    fn as_str(self) -> &'static str {
        match self {
            ContentType::Folders => "folders",
            ContentType::Files => "files",
        }
    }
}

/// How a request carries its parameters.
#[derive(Clone)]
pub(crate) enum Payload {
    /// POST `application/x-www-form-urlencoded` (every call but data uploads).
    Form(Vec<(&'static str, String)>),
    /// POST raw bytes, parameters in the query, `x-*` headers (spec §4.5).
    Data {
        query: Vec<(&'static str, String)>,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
        timeout: Duration,
    },
}

impl Client {
    /// Loads the saved session (if any) and starts the renewal task; makes
    /// no network call yet.
    pub async fn new(config: ClientConfig) -> Result<Client> {
        let api_base = validate(&config)?;
        let session = Session::load(&config.state_dir, config.cookie.as_deref())?;
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(Duration::from_secs(20).min(config.request_timeout))
            // A stalled download host must not hang a reader forever.
            .read_timeout(config.request_timeout)
            .build()
            .map_err(|e| Error::new(ErrorKind::Local, "building the HTTP client").with_source(e))?;

        let changed = session.changed();
        let shutdown = CancellationToken::new();
        let inner = Arc::new(Inner {
            limiter: Limiter::new(
                config.calls_per_second,
                config.burst,
                config.max_concurrent_calls,
            ),
            retry: RetryPolicy {
                max_retries: config.max_retries,
                base_delay: config.retry_base_delay,
                max_delay: (config.retry_base_delay * 64).min(Duration::from_secs(30)),
                retries: Default::default(),
            },
            api_base,
            http,
            session,
            links: DashMap::new(),
            stats: Stats::default(),
            rate_strikes: AtomicU32::new(0),
            shutdown: shutdown.clone(),
            config,
        });
        session::spawn_renewal(Arc::downgrade(&inner), shutdown, changed);
        debug!(api_base = %inner.api_base, "mediafire client ready");
        Ok(Client { inner })
    }

    /// Makes sure a working session exists now: renews the saved token or
    /// buys a new one with the cookie. An `Auth` error names the credential.
    pub async fn login(&self) -> Result<()> {
        self.inner.session.ensure_valid(self).await
    }

    /// A snapshot of the counters (API calls, renewals, bytes).
    pub fn stats(&self) -> ClientStats {
        let mut s = self.inner.stats.snapshot();
        s.retries = self.inner.retry.retries.load(Ordering::Relaxed);
        s
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    // ---- transport -------------------------------------------------------

    /// Sends `params` to `action` with the session token, retrying per `idem`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        action: &'static str,
        params: Vec<(&'static str, String)>,
        idem: Idempotency,
    ) -> Result<T> {
        let payload = Payload::Form(params);
        self.inner
            .retry
            .run(action, idem, || {
                self.call_once(action, TokenKind::Session, payload.clone())
            })
            .await
    }

    /// One logical send: token, request, and — once — renew and resend when
    /// MediaFire says the token is missing or expired (104/105).
    pub(crate) async fn call_once<T: DeserializeOwned>(
        &self,
        action: &'static str,
        kind: TokenKind,
        payload: Payload,
    ) -> Result<T> {
        let mut renewed = false;
        loop {
            let tok = self.inner.session.token(self, kind).await?;
            match self.send(action, Some(&tok.value), payload.clone()).await {
                Err(e) if !renewed && e.code().is_some_and(codes::is_session_expired) => {
                    debug!(action, code = e.code(), "token rejected, renewing once");
                    renewed = true;
                    self.inner
                        .session
                        .recover(self, kind, tok.generation)
                        .await?;
                }
                other => return other,
            }
        }
    }

    /// The raw send: limiter permit, HTTP, cookie rotation, envelope.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        action: &'static str,
        token: Option<&str>,
        payload: Payload,
    ) -> Result<T> {
        let (upload_bytes, class) = match &payload {
            Payload::Data { body, .. } => (body.len() as u64, Class::Transfer),
            Payload::Form(_) => (0, Class::Call),
        };
        let req = self.build_request(action, token, payload);

        let permit = self.inner.limiter.acquire(class).await;
        let started = std::time::Instant::now();
        let reply = self.exchange(action, req).await;
        drop(permit);

        let result = reply.and_then(|(status, body)| {
            let ms = started.elapsed().as_millis() as u64;
            trace!(action, status, ms, "api reply");
            envelope::decode::<T>(action, status, &body)
        });
        self.after_reply(action, &result);
        if result.is_ok() && upload_bytes > 0 {
            let up = &self.inner.stats.bytes_up;
            up.fetch_add(upload_bytes, Ordering::Relaxed);
        }
        result
    }

    /// The POST for `action`: a form, or raw bytes with query and `x-*`
    /// headers; `response_format=json` and the token always go along.
    fn build_request(
        &self,
        action: &str,
        token: Option<&str>,
        payload: Payload,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}/api/1.5/{action}.php", self.inner.api_base);
        let common = |mut p: Vec<(&'static str, String)>| {
            p.push(("response_format", "json".into()));
            if let Some(t) = token {
                p.push(("session_token", t.to_string()));
            }
            p
        };
        let req = match payload {
            Payload::Form(params) => self
                .inner
                .http
                .post(&url)
                .form(&common(params))
                .timeout(self.inner.config.request_timeout),
            Payload::Data {
                query,
                headers,
                body,
                timeout,
            } => {
                let mut r = self
                    .inner
                    .http
                    .post(&url)
                    .query(&common(query))
                    .timeout(timeout);
                for (k, v) in headers {
                    r = r.header(k, v);
                }
                r.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body)
            }
        };
        self.browser_headers(req, APP_ORIGIN, APP_REFERER)
    }

    /// Common headers: the web app's Origin/Referer and the cookie.
    fn browser_headers(
        &self,
        req: reqwest::RequestBuilder,
        origin: &str,
        referer: &str,
    ) -> reqwest::RequestBuilder {
        let req = req
            .header(ACCEPT, "*/*")
            .header(ACCEPT_LANGUAGE, "en-US,en;q=0.9")
            .header(ORIGIN, origin)
            .header(REFERER, referer);
        match self.inner.session.cookie() {
            Some(c) if !c.is_empty() => req.header(COOKIE, c),
            _ => req,
        }
    }

    /// Sends and reads the whole reply, merging any `Set-Cookie`.
    async fn exchange(
        &self,
        action: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Bytes)> {
        let resp = req.send().await.map_err(|e| transport_error(action, e))?;
        let status = resp.status().as_u16();
        let cookies: Vec<&str> = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !cookies.is_empty()
            && let Err(e) = self.inner.session.merge_set_cookies(cookies.into_iter())
        {
            // The rotated cookie is in memory; only the restart copy is stale.
            tracing::warn!(error = %e, "could not save the rotated cookie");
        }
        if matches!(status, 429 | 503)
            && let Some(secs) = retry_after(resp.headers())
        {
            debug!(
                action,
                secs, "server asked to retry later, pausing all calls"
            );
            self.inner.limiter.pause(Duration::from_secs(secs));
        }
        let body = resp.bytes().await.map_err(|e| transport_error(action, e))?;
        Ok((status, body))
    }

    /// Counts the outcome and backs everyone off on 163/261.
    fn after_reply<T>(&self, action: &'static str, result: &Result<T>) {
        self.inner.stats.record(action, result);
        match result {
            Err(e) if e.kind() == ErrorKind::RateLimited => {
                // Calls refused together (one burst in flight) are one
                // strike: a refusal that arrives while a pause is already in
                // force was sent before it and must not lengthen it.
                if self.inner.limiter.is_paused() {
                    debug!(action, "rate limited while already pausing");
                    return;
                }
                let strikes = self
                    .inner
                    .rate_strikes
                    .fetch_add(1, Ordering::Relaxed)
                    .min(6);
                let pause = (self.inner.config.retry_base_delay * 4 * (1 << strikes))
                    .min(Duration::from_secs(60));
                debug!(
                    action,
                    pause_ms = pause.as_millis() as u64,
                    "rate limited, pausing all calls"
                );
                self.inner.limiter.pause(pause);
            }
            Ok(_) => self.inner.rate_strikes.store(0, Ordering::Relaxed),
            Err(_) => {}
        }
    }

    // ---- session ---------------------------------------------------------

    /// `POST /application/get_session_token.php`: the browser cookie buys a
    /// session token (spec §1.2). Only the session manager calls this.
    pub(crate) async fn application_get_session_token(&self, cookie: &str) -> Result<String> {
        const ACTION: &str = "application/get_session_token";
        let url = format!("{}/application/get_session_token.php", self.inner.api_base);
        let r: SessionTokenResponse = self
            .inner
            .retry
            .run(ACTION, Idempotency::Idempotent, || async {
                let req = self
                    .inner
                    .http
                    .post(&url)
                    .header(reqwest::header::CONTENT_LENGTH, "0")
                    .header(ACCEPT, "*/*")
                    .header(ACCEPT_LANGUAGE, "en-US,en;q=0.9")
                    .header(ORIGIN, WWW_ORIGIN)
                    .header(REFERER, WWW_REFERER)
                    .header("Sec-Fetch-Dest", "empty")
                    .header("Sec-Fetch-Mode", "cors")
                    .header("Sec-Fetch-Site", "same-site")
                    .header(
                        COOKIE,
                        self.inner
                            .session
                            .cookie()
                            .unwrap_or_else(|| cookie.to_string()),
                    )
                    .timeout(self.inner.config.request_timeout);
                let permit = self.inner.limiter.acquire(Class::Call).await;
                let reply = self.exchange(ACTION, req).await;
                drop(permit);
                let result = reply.and_then(|(status, body)| token_reply(status, &body));
                self.after_reply(ACTION, &result);
                result
            })
            .await?;
        Ok(r.session_token)
    }

    /// `user/renew_session_token`: extends the session by ten minutes and may
    /// return a new token string, which replaces the old one (spec §1.4, §3.15).
    pub async fn user_renew_session_token(&self) -> Result<()> {
        let tok = self.inner.session.token(self, TokenKind::Session).await?;
        self.inner
            .session
            .recover(self, TokenKind::Session, tok.generation)
            .await
    }

    /// The renewal itself, with an explicit token; no 105 recovery (a 105
    /// here means: log in with the cookie instead).
    pub(crate) async fn renew_with(&self, token: &str) -> Result<String> {
        const ACTION: &str = "user/renew_session_token";
        let r: SessionTokenResponse = self
            .inner
            .retry
            .run(ACTION, Idempotency::Idempotent, || {
                self.send(ACTION, Some(token), Payload::Form(Vec::new()))
            })
            .await?;
        if r.session_token.is_empty() {
            return Err(
                Error::new(ErrorKind::Auth, "renewal returned no token").with_action(ACTION)
            );
        }
        Ok(r.session_token)
    }

    /// `user/get_action_token`: a long-lived token for `upload/*` (spec §1.5).
    pub async fn user_get_action_token(&self, kind: &str, lifespan_min: u64) -> Result<String> {
        let params = vec![
            ("type", kind.to_string()),
            ("lifespan", lifespan_min.to_string()),
        ];
        let r: ActionTokenResponse = self
            .call("user/get_action_token", params, Idempotency::Idempotent)
            .await?;
        if r.action_token.is_empty() {
            return Err(
                Error::new(ErrorKind::Permanent, "no action token in the reply")
                    .with_action("user/get_action_token"),
            );
        }
        Ok(r.action_token)
    }

    // ---- account ---------------------------------------------------------

    /// `user/get_info`: account, display name, storage use (spec §3.14).
    pub async fn user_get_info(&self) -> Result<UserInfo> {
        let r: UserInfoResponse = self
            .call("user/get_info", Vec::new(), Idempotency::Idempotent)
            .await?;
        Ok(r.user_info)
    }

    /// `device/get_status`: device revision and async-job flag (spec §2.4).
    pub async fn device_get_status(&self) -> Result<DeviceStatusResponse> {
        self.call("device/get_status", Vec::new(), Idempotency::Idempotent)
            .await
    }

    /// `device/get_changes`: what changed since `revision` (spec §3.16).
    pub async fn device_get_changes(&self, revision: u64) -> Result<DeviceChangesResponse> {
        let params = vec![("revision", revision.to_string())];
        self.call("device/get_changes", params, Idempotency::Idempotent)
            .await
    }

    /// `system/get_limits`: service-wide limits (spec §3.16).
    pub async fn system_get_limits(&self) -> Result<SystemLimits> {
        let r: SystemLimitsResponse = self
            .call("system/get_limits", Vec::new(), Idempotency::Idempotent)
            .await?;
        Ok(r.limits)
    }

    // ---- folders ---------------------------------------------------------

    /// `folder/get_content`: one chunk (1-based) of one content type (spec §3.1).
    pub async fn folder_get_content(
        &self,
        folder_key: &str,
        content_type: ContentType,
        chunk: u64,
    ) -> Result<FolderContent> {
        let params = vec![
            ("folder_key", folder_key.to_string()),
            ("content_type", content_type.as_str().to_string()),
            ("chunk", chunk.to_string()),
            ("chunk_size", CHUNK_SIZE.to_string()),
            ("order_by", "name".to_string()),
            ("order_direction", "asc".to_string()),
        ];
        let r: FolderContentResponse = self
            .call("folder/get_content", params, Idempotency::Idempotent)
            .await
            .map_err(|e| e.with_context("folder_key", display_key(folder_key)))?;
        Ok(r.folder_content)
    }

    /// `folder/get_info` for one folder (spec §3.2).
    pub async fn folder_get_info(&self, folder_key: &str) -> Result<FolderEntry> {
        let params = vec![("folder_key", folder_key.to_string())];
        let r: FolderInfoResponse = self
            .call("folder/get_info", params, Idempotency::Idempotent)
            .await
            .map_err(|e| e.with_context("folder_key", display_key(folder_key)))?;
        Ok(r.folder_info)
    }

    /// `folder/create` with `action_on_duplicate=skip` (spec §3.3). Not
    /// idempotent: resent only when MediaFire provably did not act;
    /// `Remote::create_folder` adds the re-list that makes a resend safe.
    pub async fn folder_create(
        &self,
        parent_key: &str,
        name: &str,
    ) -> Result<FolderCreateResponse> {
        self.inner
            .retry
            .run("folder/create", Idempotency::NotIdempotent, || {
                self.folder_create_once(parent_key, name)
            })
            .await
    }

    /// One `folder/create` send (with the 105 renewal), no retries.
    pub(crate) async fn folder_create_once(
        &self,
        parent_key: &str,
        name: &str,
    ) -> Result<FolderCreateResponse> {
        let params = vec![
            ("parent_key", parent_key.to_string()),
            ("foldername", name.to_string()),
            // `skip` never makes a renamed duplicate (`keep` would).
            ("action_on_duplicate", "skip".to_string()),
        ];
        self.call_once("folder/create", TokenKind::Session, Payload::Form(params))
            .await
            .map_err(|e| {
                e.with_context("parent_key", display_key(parent_key))
                    .with_context("name", name)
            })
    }

    /// `folder/update` with a new `foldername` (spec §3.4).
    pub async fn folder_update(
        &self,
        folder_key: &str,
        foldername: &str,
    ) -> Result<MutationResponse> {
        let params = vec![
            ("folder_key", folder_key.to_string()),
            ("foldername", foldername.to_string()),
        ];
        let done = || async {
            let f = self.folder_get_info(folder_key).await.ok()?;
            (f.name == foldername).then_some(())
        };
        self.rename_call("folder/update", params, done)
            .await
            .map_err(|e| e.with_context("folder_key", folder_key))
    }

    /// `folder/move` of one folder into `dst` (spec §3.5).
    pub async fn folder_move(&self, folder_key: &str, dst: &str) -> Result<MutationResponse> {
        let params = vec![
            ("folder_key_src", folder_key.to_string()),
            ("folder_key_dst", dst.to_string()),
        ];
        self.call("folder/move", params, Idempotency::Idempotent)
            .await
            .map_err(|e| {
                e.with_context("folder_key", folder_key)
                    .with_context("dst", display_key(dst))
            })
    }

    /// `folder/delete`: to the trash, not purge (spec §3.7). An "already
    /// deleted" (209) after our own failed first attempt counts as success:
    /// MediaFire is known to answer 100 to deletes that did happen.
    pub async fn folder_delete(&self, folder_key: &str) -> Result<MutationResponse> {
        let params = vec![("folder_key", folder_key.to_string())];
        self.delete_call("folder/delete", params, 209)
            .await
            .map_err(|e| e.with_context("folder_key", folder_key))
    }

    // ---- files -----------------------------------------------------------

    /// `file/get_info` for one file (spec §3.8).
    pub async fn file_get_info(&self, quickkey: &str) -> Result<FileEntry> {
        let params = vec![("quick_key", quickkey.to_string())];
        let r: FileInfoResponse = self
            .call("file/get_info", params, Idempotency::Idempotent)
            .await
            .map_err(|e| e.with_context("quickkey", quickkey))?;
        Ok(r.file_info)
    }

    /// `file/get_links` with `link_type=direct_download` (spec §3.9). The
    /// entries are returned as sent; callers must check each entry's error.
    pub async fn file_get_links(&self, quickkey: &str) -> Result<Vec<LinkEntry>> {
        let params = vec![
            ("quick_key", quickkey.to_string()),
            ("link_type", "direct_download".to_string()),
        ];
        let r: LinksResponse = self
            .call("file/get_links", params, Idempotency::Idempotent)
            .await
            .map_err(|e| e.with_context("quickkey", quickkey))?;
        Ok(r.links)
    }

    /// `file/update` with a new `filename` (spec §3.10).
    pub async fn file_update(&self, quickkey: &str, filename: &str) -> Result<MutationResponse> {
        let params = vec![
            ("quick_key", quickkey.to_string()),
            ("filename", filename.to_string()),
        ];
        let done = || async {
            let f = self.file_get_info(quickkey).await.ok()?;
            (f.filename == filename).then_some(())
        };
        let r = self
            .rename_call("file/update", params, done)
            .await
            .map_err(|e| e.with_context("quickkey", quickkey));
        self.forget_link(quickkey);
        r
    }

    /// `file/move` into `folder_key` (spec §3.11).
    pub async fn file_move(&self, quickkey: &str, folder_key: &str) -> Result<MutationResponse> {
        let params = vec![
            ("quick_key", quickkey.to_string()),
            ("folder_key", folder_key.to_string()),
        ];
        let r = self
            .call("file/move", params, Idempotency::Idempotent)
            .await
            .map_err(|e| {
                e.with_context("quickkey", quickkey)
                    .with_context("dst", display_key(folder_key))
            });
        self.forget_link(quickkey);
        r
    }

    /// `file/copy` into `folder_key` (spec §3.12), sent once. Not
    /// idempotent: a resend could make a second copy, so the retry, which
    /// first re-lists the destination, lives in `Remote::copy_file`.
    pub async fn file_copy(&self, quickkey: &str, folder_key: &str) -> Result<FileCopyResponse> {
        let payload = Payload::Form(vec![
            ("quick_key", quickkey.to_string()),
            ("folder_key", folder_key.to_string()),
        ]);
        self.call_once("file/copy", TokenKind::Session, payload)
            .await
    }

    /// `file/delete`: to the trash (spec §3.13); 210 after our own failed
    /// first attempt counts as success, as for folders.
    pub async fn file_delete(&self, quickkey: &str) -> Result<MutationResponse> {
        let params = vec![("quick_key", quickkey.to_string())];
        let r = self
            .delete_call("file/delete", params, 210)
            .await
            .map_err(|e| e.with_context("quickkey", quickkey));
        self.forget_link(quickkey);
        r
    }

    /// A rename, resent after temporary failures. If a resend is refused as
    /// "name taken" (143/144), `done` checks whether the name taken is the
    /// item's own, renamed by the attempt whose reply was lost.
    async fn rename_call<D, DFut>(
        &self,
        action: &'static str,
        params: Vec<(&'static str, String)>,
        done: D,
    ) -> Result<MutationResponse>
    where
        D: Fn() -> DFut,
        DFut: Future<Output = Option<()>>,
    {
        let attempts = AtomicU32::new(0);
        let payload = Payload::Form(params);
        self.inner
            .retry
            .run(action, Idempotency::Idempotent, || async {
                let first = attempts.fetch_add(1, Ordering::SeqCst) == 0;
                match self
                    .call_once(action, TokenKind::Session, payload.clone())
                    .await
                {
                    Err(e) if !first && e.kind() == ErrorKind::AlreadyExists => {
                        match done().await {
                            Some(()) => {
                                debug!(action, "renamed by an earlier attempt");
                                Ok(MutationResponse::default())
                            }
                            None => Err(e),
                        }
                    }
                    other => other,
                }
            })
            .await
    }

    async fn delete_call(
        &self,
        action: &'static str,
        params: Vec<(&'static str, String)>,
        already_deleted: u32,
    ) -> Result<MutationResponse> {
        let attempts = AtomicU32::new(0);
        let payload = Payload::Form(params);
        self.inner
            .retry
            .run(action, Idempotency::Idempotent, || async {
                let first = attempts.fetch_add(1, Ordering::SeqCst) == 0;
                match self
                    .call_once(action, TokenKind::Session, payload.clone())
                    .await
                {
                    Err(e) if !first && e.code() == Some(already_deleted) => {
                        debug!(action, "already deleted by an earlier attempt");
                        Ok(MutationResponse::default())
                    }
                    other => other,
                }
            })
            .await
    }

    /// Waits (bounded) until `device/get_status` says no async job runs, after
    /// a mutation answered `asynchronous:"yes"` (spec §2.4). The mutation was
    /// accepted either way, so a failure here is logged, never returned.
    pub(crate) async fn wait_for_async_jobs(&self, action: &'static str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut delay = self.config().retry_base_delay.max(Duration::from_millis(1));
        loop {
            match self.device_get_status().await {
                Ok(s) if !s.async_jobs_in_progress => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(action, error = %e, "cannot tell whether the asynchronous job finished");
                    return;
                }
            }
            if tokio::time::Instant::now() + delay > deadline {
                tracing::warn!(
                    action,
                    "asynchronous job still running after 60 s, continuing"
                );
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(4));
        }
    }
}

/// The token endpoint reply: an envelope, or a bare `{"response":{"session_token"}}`.
/// A refusal that is not a challenge page means the cookie is dead.
fn token_reply(status: u16, body: &[u8]) -> Result<SessionTokenResponse> {
    const ACTION: &str = "application/get_session_token";
    match envelope::decode::<SessionTokenResponse>(ACTION, status, body) {
        Ok(r) if !r.session_token.is_empty() => Ok(r),
        Ok(_) => Err(
            Error::new(ErrorKind::Auth, "the cookie bought no session token")
                .with_action(ACTION)
                .with_context("http_status", status),
        ),
        Err(e)
            if e.is_temporary() && (envelope::looks_html(body) || !matches!(status, 401 | 403)) =>
        {
            Err(e)
        }
        Err(e) => {
            let refused = Error::new(ErrorKind::Auth, "MediaFire refused the cookie")
                .with_action(ACTION)
                .with_context("http_status", status);
            let refused = match e.code() {
                Some(code) => refused.with_code(code),
                None => refused,
            };
            Err(refused.with_source(e))
        }
    }
}

/// A `Retry-After` in seconds (capped at two minutes); dates are ignored.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(|s| s.min(120))
}

/// A transport failure: always transient; the URL (which may carry a token)
/// is stripped from the source.
pub(crate) fn transport_error(action: &'static str, e: reqwest::Error) -> Error {
    let what = if e.is_timeout() {
        "request timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Error::new(ErrorKind::Transient, what)
        .with_action(action)
        .with_source(e.without_url())
}

/// `key` for error context: the root shows as `myfiles`.
pub(crate) fn display_key(key: &str) -> &str {
    if key.is_empty() { "myfiles" } else { key }
}

/// `url` with the value of any `session_token` parameter replaced by `***`.
pub fn scrub_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "<unparsable url>".into();
    };
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "session_token" {
                "***".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if pairs.is_empty() {
        return u.to_string();
    }
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string().replace("%2A%2A%2A", "***")
}

fn validate(config: &ClientConfig) -> Result<String> {
    let base = config.api_base.trim_end_matches('/').to_string();
    let bad = |what: &'static str| Error::new(ErrorKind::Permanent, what);
    match url::Url::parse(&base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => {
            return Err(
                bad("config: api_base must be an http(s) URL").with_context("api_base", &base)
            );
        }
    }
    if !config.calls_per_second.is_finite() || config.calls_per_second < 0.0 {
        return Err(bad("config: calls_per_second must be a number ≥ 0"));
    }
    if config.request_timeout.is_zero() {
        return Err(bad("config: request_timeout must be positive"));
    }
    if config.renew_after.is_zero() {
        return Err(bad("config: renew_after must be positive (default 8 min)"));
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_the_token_only() {
        let s = scrub_url(
            "https://h/api/1.5/upload/resumable.php?folder_key=abc&session_token=SECRET&x=1",
        );
        assert!(!s.contains("SECRET"));
        assert!(
            s.contains("session_token=***") && s.contains("folder_key=abc"),
            "{s}"
        );
    }

    #[tokio::test]
    async fn transport_errors_carry_no_url() {
        // A port of our own that nobody listens on any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url =
            format!("http://127.0.0.1:{port}/api/1.5/upload/resumable.php?session_token=SECRET");
        let e = reqwest::Client::new().post(url).send().await.unwrap_err();
        let e = transport_error("upload/resumable", e);
        assert!(e.is_temporary());
        let shown = format!("{e} {e:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("session_token"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn refusals_of_one_burst_pause_once_not_once_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(ClientConfig {
            api_base: "http://127.0.0.1:9".into(),
            state_dir: dir.path().to_path_buf(),
            ..Default::default()
        })
        .await
        .unwrap();
        let refused: Result<()> =
            Err(Error::new(ErrorKind::RateLimited, "slow down").with_code(163));
        // Eight calls in flight, all refused by the same burst.
        for _ in 0..8 {
            client.after_reply("folder/get_content", &refused);
        }
        assert_eq!(client.inner.rate_strikes.load(Ordering::Relaxed), 1);
        assert!(client.inner.limiter.is_paused());
    }

    #[test]
    fn debug_never_prints_the_cookie() {
        let c = ClientConfig {
            cookie: Some("ukey=SECRET".into()),
            ..Default::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("SECRET") && d.contains("redacted"));
    }

    #[test]
    fn token_endpoint_refusals() {
        let html = b"<html><title>Just a moment...</title></html>";
        assert_eq!(
            token_reply(403, html).unwrap_err().kind(),
            ErrorKind::Transient
        );
        assert_eq!(token_reply(403, b"").unwrap_err().kind(), ErrorKind::Auth);
        let e107 = br#"{"response":{"result":"Error","error":107,"message":"The Credentials you entered are invalid"}}"#;
        let e = token_reply(200, e107).unwrap_err();
        assert_eq!((e.kind(), e.code()), (ErrorKind::Auth, Some(107)));
        assert_eq!(
            token_reply(200, br#"{"response":{"result":"Success"}}"#)
                .unwrap_err()
                .kind(),
            ErrorKind::Auth
        );
        assert_eq!(
            token_reply(500, b"").unwrap_err().kind(),
            ErrorKind::Transient
        );
    }
}
