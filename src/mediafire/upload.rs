//! The upload engine: a spooled, hashed file becomes a MediaFire file.
//!
//! The protocol (spec §4.3–4.8), one step per function below:
//! 1. `upload/check` (resumable=yes) with name, size, SHA-256 and folder.
//! 2. If MediaFire already holds this content (`hash_exists`), `upload/instant`
//!    creates the entry with no bytes; if that fails for a reason other than
//!    credentials, quota, name or conflict, fall through to 3.
//! 3. Otherwise send the units the server's bitmap lacks, with the server's
//!    `unit_size`, up to `upload_parallelism` at once, each read from the
//!    spool with a positioned read (memory: parallelism × unit size) and sent
//!    with its own SHA-256. A transient failure resends that unit only. A
//!    pass that does not end in `all_units_ready` asks `upload/check` again
//!    and sends what is still missing (bounded).
//! 4. Poll `upload/poll_upload` until status 99 (or 98) brings the quickkey;
//!    a `fileerror` or negative `result` ends the upload with its error.
//!
//! The upload never reports success before the file has its quickkey, and it
//! refuses a spool shorter than the declared size before sending anything.
//!
//! `action_on_duplicate`: `replace` (with `quick_key`) when the caller
//! replaces a file; otherwise `skip`, so a stale caller view can never
//! produce a renamed duplicate (`keep`) nor destroy a file it did not know
//! about (`replace`); a clash surfaces as `AlreadyExists` instead.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::mediafire::client::{Client, Payload};
use crate::mediafire::codes;
use crate::mediafire::retry::Idempotency;
use crate::mediafire::session::TokenKind;
use crate::mediafire::types::*;
use crate::remote::{FileInfo, UploadRequest};

/// Passes of "send missing units, then re-check" before giving up.
const MAX_UNIT_PASSES: u32 = 3;

/// The longest pause between `upload/poll_upload` calls, as a multiple of
/// the first one. The first pause is `retry_base_delay` (250 ms by default,
/// so polls go 0.25, 0.5, 1, 2, 4, 5, 5 … s).
const POLL_MAX_FACTOR: u32 = 20;

/// The official unit-size table (spec §4.4), used only when `upload/check`
/// gives no `unit_size`: 4 MiB below 4 MiB, then 1 MiB doubling every ×4.
pub fn default_unit_size(size: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let mut k = 0;
    let mut threshold = 4 * MIB;
    while k < 7 && size >= threshold {
        k += 1;
        threshold = threshold.saturating_mul(4);
    }
    if k == 0 { 4 * MIB } else { MIB << (k - 1) }
}

/// True when unit `u` is marked received in `words` (bit `u % 16` of word `u / 16`).
pub fn unit_is_present(words: &[u64], u: u64) -> bool {
    words
        .get((u / 16) as usize)
        .is_some_and(|w| (w >> (u % 16)) & 1 == 1)
}

/// How the file splits into units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitLayout {
    pub unit_size: u64,
    pub count: u64,
}

impl UnitLayout {
    /// The server's layout, checked against the file size.
    pub fn from_server(size: u64, rs: Option<&ResumableState>) -> Result<UnitLayout> {
        let unit_size = rs
            .map(|r| r.unit_size)
            .filter(|u| *u > 0)
            .unwrap_or_else(|| default_unit_size(size));
        let expected = size.div_ceil(unit_size);
        let count = rs
            .map(|r| r.number_of_units)
            .filter(|n| *n > 0)
            .unwrap_or(expected);
        if count != expected {
            return Err(Error::new(
                ErrorKind::Permanent,
                "server unit layout does not match the file size",
            )
            .with_action("upload/check")
            .with_context("unit_size", unit_size)
            .with_context("number_of_units", count)
            .with_context("size", size));
        }
        Ok(UnitLayout { unit_size, count })
    }

    /// Byte range `(offset, len)` of unit `u`.
    pub fn span(&self, size: u64, u: u64) -> (u64, u64) {
        let offset = u * self.unit_size;
        (offset, self.unit_size.min(size - offset))
    }

    /// Units not marked in `bitmap`.
    pub fn missing(&self, bitmap: Option<&Bitmap>) -> Vec<u64> {
        let words = bitmap.map(|b| b.words.as_slice()).unwrap_or(&[]);
        (0..self.count)
            .filter(|u| !unit_is_present(words, *u))
            .collect()
    }
}

/// The per-upload facts every unit needs.
struct Job<'a> {
    req: &'a UploadRequest,
    file: Arc<std::fs::File>,
    sent: AtomicU64,
    /// Next progress percentage to log; above 100 when not logging
    /// (single-unit uploads get only the completion line).
    next_report: AtomicU64,
    started: Instant,
}

impl Client {
    /// `upload/check` (spec §4.3), with the upload action token.
    pub async fn upload_check(
        &self,
        folder_key: &str,
        filename: &str,
        size: u64,
        sha256: &str,
    ) -> Result<UploadCheckResponse> {
        let params = vec![
            ("filename", filename.to_string()),
            ("size", size.to_string()),
            ("hash", sha256.to_string()),
            ("folder_key", folder_key.to_string()),
            ("resumable", "yes".to_string()),
        ];
        self.call_upload(
            "upload/check",
            Payload::Form(params),
            Idempotency::Idempotent,
        )
        .await
    }

    /// `upload/instant` (spec §4.6): creates the file from content MediaFire
    /// already has. Not idempotent; an ambiguous failure is re-checked with
    /// `upload/check` before any resend.
    pub async fn upload_instant(
        &self,
        folder_key: &str,
        filename: &str,
        size: u64,
        sha256: &str,
        replace: Option<&str>,
    ) -> Result<UploadInstantResponse> {
        let mut params = vec![
            ("filename", filename.to_string()),
            ("size", size.to_string()),
            ("hash", sha256.to_string()),
            ("folder_key", folder_key.to_string()),
        ];
        push_duplicate_params(&mut params, replace);
        let payload = Payload::Form(params);
        self.inner
            .retry
            .run_checked(
                "upload/instant",
                Idempotency::NotIdempotent,
                || self.call_once("upload/instant", TokenKind::Upload, payload.clone()),
                || async {
                    let c = self
                        .upload_check(folder_key, filename, size, sha256)
                        .await?;
                    Ok(same_file_present(&c).map(|qk| UploadInstantResponse {
                        quickkey: qk,
                        filename: filename.to_string(),
                        device_revision: None,
                        new_device_revision: None,
                        newrevision: None,
                    }))
                },
            )
            .await
    }

    /// `upload/resumable` (spec §4.5): one unit, bytes in the body, the
    /// rest in the query and `x-*` headers. Resending a unit is harmless.
    pub async fn upload_resumable(
        &self,
        unit: &UnitHeaders,
        body: Bytes,
    ) -> Result<UploadUnitResponse> {
        let mut query = vec![("folder_key", unit.folder_key.clone())];
        push_duplicate_params(&mut query, unit.replace.as_deref());
        let headers = vec![
            ("x-filename", unit.filename.clone()),
            ("x-filesize", unit.filesize.to_string()),
            ("x-filehash", unit.filehash.clone()),
            ("x-unit-id", unit.unit_id.to_string()),
            ("x-unit-size", body.len().to_string()),
            ("x-unit-hash", unit.unit_hash.clone()),
        ];
        // Allow a slow uplink: at least ~64 KiB/s on top of the call timeout.
        let timeout =
            self.config().request_timeout + Duration::from_secs(body.len() as u64 / 65_536);
        let payload = Payload::Data {
            query,
            headers,
            body,
            timeout,
        };
        let r: UploadUnitResponse = self
            .call_upload("upload/resumable", payload, Idempotency::Idempotent)
            .await?;
        if r.doupload.result != 0 {
            return Err(doupload_error("upload/resumable", r.doupload.result)
                .with_context("unit", unit.unit_id));
        }
        Ok(r)
    }

    /// `upload/poll_upload` (spec §4.7): the state of an upload key.
    pub async fn upload_poll_upload(&self, key: &str) -> Result<PollState> {
        let params = vec![("key", key.to_string())];
        let r: PollUploadResponse = self
            .call_upload(
                "upload/poll_upload",
                Payload::Form(params),
                Idempotency::Idempotent,
            )
            .await?;
        Ok(r.doupload)
    }

    async fn call_upload<T: serde::de::DeserializeOwned>(
        &self,
        action: &'static str,
        payload: Payload,
        idem: Idempotency,
    ) -> Result<T> {
        self.inner
            .retry
            .run(action, idem, || {
                self.call_once(action, TokenKind::Upload, payload.clone())
            })
            .await
    }

    /// Uploads a spooled file; see the module docs for the steps.
    pub(crate) async fn upload_file(&self, req: &UploadRequest) -> Result<FileInfo> {
        check_request(req)?;
        let size = req.source.size;
        let started = Instant::now();

        let check = self
            .upload_check(&req.folder_key, &req.name, size, &req.source.sha256)
            .await?;
        if let Some(done) = self.already_there(req, &check).await? {
            return Ok(done);
        }
        check_space(req, &check)?;

        if check.hash_exists {
            match self.instant(req).await {
                Ok(info) => return Ok(self.finished(req, info, started)),
                Err(e) if is_final_for_instant(&e) => return Err(e),
                Err(e) => {
                    warn!(name = %req.name, error = %e, "instant upload failed, sending the bytes")
                }
            }
        }

        let key = self.send_units(req, check, started).await?;
        let info = self.poll(req, &key).await?;
        Ok(self.finished(req, info, started))
    }

    /// Step 1 outcome "already uploaded": a same-name file with this content.
    async fn already_there(
        &self,
        req: &UploadRequest,
        c: &UploadCheckResponse,
    ) -> Result<Option<FileInfo>> {
        if let Some(qk) = same_file_present(c)
            && req.replace.as_deref().is_none_or(|r| r == qk)
        {
            debug!(name = %req.name, quickkey = %qk, "identical file already present, nothing to send");
            let f = self.file_get_info(&qk).await?;
            return Ok(Some(file_info(f, req)));
        }
        if c.file_exists && req.replace.is_none() {
            let mut e = Error::new(
                ErrorKind::AlreadyExists,
                "a different file with this name exists",
            )
            .with_action("upload/check")
            .with_context("name", &req.name);
            if let Some(qk) = &c.duplicate_quickkey {
                e = e.with_context("quickkey", qk);
            }
            return Err(e);
        }
        Ok(None)
    }

    /// Step 2: `upload/instant`.
    async fn instant(&self, req: &UploadRequest) -> Result<FileInfo> {
        let r = self
            .upload_instant(
                &req.folder_key,
                &req.name,
                req.source.size,
                &req.source.sha256,
                req.replace.as_deref(),
            )
            .await?;
        if r.quickkey.is_empty() {
            return Err(
                Error::new(ErrorKind::Permanent, "instant upload returned no quickkey")
                    .with_action("upload/instant"),
            );
        }
        Ok(FileInfo {
            quickkey: r.quickkey,
            name: if r.filename.is_empty() {
                req.name.clone()
            } else {
                r.filename
            },
            size: req.source.size,
            hash: req.source.sha256.clone(),
            created: SystemTime::now(),
            revision: r.newrevision.map(|n| n.revision).unwrap_or(0),
        })
    }

    /// Step 3: send missing units until the server has them all; returns the
    /// upload key to poll.
    async fn send_units(
        &self,
        req: &UploadRequest,
        mut check: UploadCheckResponse,
        started: Instant,
    ) -> Result<String> {
        let file = std::fs::File::open(&req.source.path)
            .map_err(|e| Error::new(ErrorKind::Local, "opening the spool file").with_source(e))?;
        let job = Job {
            req,
            file: Arc::new(file),
            sent: AtomicU64::new(0),
            // A file sent as one unit logs no progress (see report_progress);
            // the unit size is the server's, so it is not guessed here.
            next_report: AtomicU64::new(10),
            started,
        };
        let mut last_key: Option<String> = None;

        // Each round reads the server's view; the last one only checks.
        for pass in 1..=MAX_UNIT_PASSES + 1 {
            let rs = check.resumable_upload.clone();
            let layout = UnitLayout::from_server(req.source.size, rs.as_ref())?;
            let server_key = rs.as_ref().and_then(|r| r.upload_key.clone());
            if rs.as_ref().is_some_and(|r| r.all_units_ready) {
                return last_key.or(server_key).ok_or_else(|| {
                    Error::new(ErrorKind::Permanent, "all units present but no upload key")
                        .with_action("upload/check")
                });
            }
            if pass > MAX_UNIT_PASSES {
                break;
            }
            let missing = layout.missing(rs.as_ref().and_then(|r| r.bitmap.as_ref()));
            debug!(name = %req.name, pass, missing = missing.len(), units = layout.count, "sending units");

            let (key, ready) = self.send_pass(&job, layout, &missing).await?;
            last_key = key.or(last_key).or(server_key);
            if ready && let Some(k) = last_key {
                return Ok(k);
            }
            check = self
                .upload_check(
                    &req.folder_key,
                    &req.name,
                    req.source.size,
                    &req.source.sha256,
                )
                .await?;
        }
        Err(Error::new(
            ErrorKind::Transient,
            "units still missing after several passes",
        )
        .with_action("upload/resumable")
        .with_context("name", &req.name)
        .set_persistent())
    }

    /// One pass over `missing` units, `upload_parallelism` at a time.
    /// Returns the upload key seen and whether the server said all are in.
    async fn send_pass(
        &self,
        job: &Job<'_>,
        layout: UnitLayout,
        missing: &[u64],
    ) -> Result<(Option<String>, bool)> {
        let key: Mutex<Option<String>> = Mutex::new(None);
        // The key of the answer that completed the set wins: a unit resent
        // after its first answer was lost can arrive once the upload is
        // complete and open a new, never-finishing session with a key of
        // its own (polling that one waited out the whole poll timeout).
        let ready_key: Mutex<Option<String>> = Mutex::new(None);
        let ready = AtomicBool::new(false);
        let parallel = self.config().upload_parallelism.max(1);
        futures_util::stream::iter(missing.iter().copied())
            .map(|u| self.send_unit(job, layout, u))
            .buffer_unordered(parallel)
            .try_for_each(|r| {
                let complete = r
                    .resumable_upload
                    .as_ref()
                    .is_some_and(|s| s.all_units_ready);
                if !r.doupload.key.is_empty() {
                    let slot = if complete { &ready_key } else { &key };
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.doupload.key.clone());
                }
                if complete {
                    ready.store(true, Ordering::Relaxed);
                }
                futures_util::future::ready(Ok(()))
            })
            .await?;
        let key = key.into_inner().unwrap_or_else(|p| p.into_inner());
        let ready_key = ready_key.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok((ready_key.or(key), ready.load(Ordering::Relaxed)))
    }

    /// Reads, hashes and sends unit `u`.
    async fn send_unit(
        &self,
        job: &Job<'_>,
        layout: UnitLayout,
        u: u64,
    ) -> Result<UploadUnitResponse> {
        let size = job.req.source.size;
        let (offset, len) = layout.span(size, u);
        let (body, unit_hash) = read_unit(Arc::clone(&job.file), offset, len).await?;
        debug!(name = %job.req.name, unit = u + 1, units = layout.count, bytes = len, "uploading unit");

        let headers = UnitHeaders {
            folder_key: job.req.folder_key.clone(),
            filename: job.req.name.clone(),
            filesize: size,
            filehash: job.req.source.sha256.clone(),
            unit_id: u,
            unit_hash,
            replace: job.req.replace.clone(),
        };
        let r = self.upload_resumable(&headers, body).await?;
        self.report_progress(job, len);
        Ok(r)
    }

    /// Logs progress at every 10 % of a multi-unit upload (a file sent as
    /// one unit has only its completion line).
    fn report_progress(&self, job: &Job<'_>, len: u64) {
        if len >= job.req.source.size {
            return;
        }
        let size = job.req.source.size.max(1);
        let sent = job.sent.fetch_add(len, Ordering::Relaxed) + len;
        let pct = sent.saturating_mul(100) / size;
        let next = job.next_report.load(Ordering::Relaxed);
        if pct >= next
            && job
                .next_report
                .compare_exchange(
                    next,
                    (pct / 10 + 1) * 10,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let secs = job.started.elapsed().as_secs_f64().max(0.001);
            info!(name = %job.req.name, percent = pct.min(100), sent, size, mib_per_s = format!("{:.2}", sent as f64 / secs / 1_048_576.0), "upload progress");
        }
    }

    /// Step 4: poll until the file has its quickkey.
    async fn poll(&self, req: &UploadRequest, key: &str) -> Result<FileInfo> {
        let deadline = Instant::now() + self.config().poll_timeout;
        let first = self.config().retry_base_delay.max(Duration::from_millis(1));
        let mut delay = first;
        loop {
            let st = self.upload_poll_upload(key).await?;
            match poll_outcome(&st) {
                Ok(true) => return Ok(poll_file_info(st, req)),
                Ok(false) => {}
                Err(e) if st.result < 0 => return self.landed_anyway(req, e).await,
                Err(e) => return Err(e.with_context("name", &req.name)),
            }
            debug!(name = %req.name, status = st.status, description = %st.description, "upload not verified yet");
            if Instant::now() + delay > deadline {
                return Err(Error::new(
                    ErrorKind::Transient,
                    "upload verification did not finish in time",
                )
                .with_action("upload/poll_upload")
                .with_context("name", &req.name)
                .with_context("last_status", st.status)
                .set_persistent());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(first * POLL_MAX_FACTOR);
        }
    }

    /// The poll refused the upload key (negative `doupload.result`), yet
    /// every unit was delivered and MediaFire may have made the file all
    /// the same: if `upload/check` now shows this name with this content
    /// (in the file being replaced, if any), that is the result; otherwise
    /// `refused` is.
    async fn landed_anyway(&self, req: &UploadRequest, refused: Error) -> Result<FileInfo> {
        let refused = refused.with_context("name", &req.name);
        let check = self
            .upload_check(
                &req.folder_key,
                &req.name,
                req.source.size,
                &req.source.sha256,
            )
            .await;
        let qk = match check {
            Ok(c) => same_file_present(&c),
            Err(e) => {
                debug!(name = %req.name, error = %e, "re-check after a refused poll failed");
                None
            }
        };
        match qk {
            Some(qk) if req.replace.as_deref().is_none_or(|r| r == qk) => {
                warn!(name = %req.name, quickkey = %qk, error = %refused, "poll refused the upload key, but the file is complete");
                Ok(file_info(self.file_get_info(&qk).await?, req))
            }
            _ => Err(refused),
        }
    }

    fn finished(&self, req: &UploadRequest, info: FileInfo, started: Instant) -> FileInfo {
        if let Some(old) = &req.replace {
            self.forget_link(old);
        }
        self.forget_link(&info.quickkey);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        info!(
            name = %info.name, quickkey = %info.quickkey, size = info.size,
            secs = format!("{secs:.1}"),
            mib_per_s = format!("{:.2}", info.size as f64 / secs / 1_048_576.0),
            "upload complete"
        );
        info
    }
}

/// What a unit upload sends besides its bytes.
#[derive(Clone, Debug)]
pub struct UnitHeaders {
    pub folder_key: String,
    pub filename: String,
    pub filesize: u64,
    pub filehash: String,
    pub unit_id: u64,
    pub unit_hash: String,
    /// Quickkey of the file being replaced.
    pub replace: Option<String>,
}

fn push_duplicate_params(params: &mut Vec<(&'static str, String)>, replace: Option<&str>) {
    match replace {
        Some(qk) => {
            params.push(("action_on_duplicate", "replace".to_string()));
            params.push(("quick_key", qk.to_string()));
        }
        None => params.push(("action_on_duplicate", "skip".to_string())),
    }
}

/// The quickkey of a same-name file with identical content, per `upload/check`.
/// Without `different_hash` (old replies) the content counts as identical
/// only when the hash is also in the target folder.
fn same_file_present(c: &UploadCheckResponse) -> Option<String> {
    let same = match c.different_hash {
        Some(differs) => !differs,
        None => c.in_folder,
    };
    if c.file_exists && same {
        c.duplicate_quickkey.clone()
    } else {
        None
    }
}

/// Local checks before any network call: size, name, spool length.
fn check_request(req: &UploadRequest) -> Result<()> {
    let size = req.source.size;
    if size == 0 {
        return Err(
            Error::new(ErrorKind::Permanent, "MediaFire cannot store empty files")
                .with_context("name", &req.name),
        );
    }
    crate::mediafire::remote_impl::check_name("upload/check", &req.name)?;
    // The name travels in the `x-filename` header, whose leading and trailing
    // spaces every HTTP server strips: "a " would be stored as "a".
    if req.name.starts_with(' ') || req.name.ends_with(' ') {
        return Err(Error::new(
            ErrorKind::InvalidName,
            "a file name that starts or ends with a space cannot be uploaded",
        )
        .with_action("upload/check")
        .with_context("name", req.name.escape_debug()));
    }
    if req.source.sha256.len() != 64 || !req.source.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::new(
            ErrorKind::Permanent,
            "upload needs the SHA-256 of the file as 64 hex digits",
        ));
    }
    let actual = std::fs::metadata(&req.source.path)
        .map_err(|e| Error::new(ErrorKind::Local, "reading the spool file").with_source(e))?
        .len();
    if actual < size {
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "spool file is short");
        return Err(Error::new(
            ErrorKind::Local,
            "spool file is shorter than the declared size, not uploading",
        )
        .with_context("name", &req.name)
        .with_context("declared", size)
        .with_context("actual", actual)
        .with_source(eof));
    }
    Ok(())
}

/// Refuses early when `upload/check` says the account is full. A replace
/// frees the old content, which `available_space` does not count, so only
/// MediaFire can tell whether it fits (poll `fileerror` 15 if not).
fn check_space(req: &UploadRequest, c: &UploadCheckResponse) -> Result<()> {
    let too_big = !c.hash_exists
        && req.replace.is_none()
        && c.available_space.is_some_and(|a| a < req.source.size);
    let full = c.storage_limit_exceeded || too_big;
    if full {
        return Err(
            Error::new(ErrorKind::QuotaExceeded, "not enough storage space left")
                .with_action("upload/check")
                .with_context("name", &req.name)
                .with_context("size", req.source.size),
        );
    }
    Ok(())
}

/// Instant failures that sending the bytes would not cure.
fn is_final_for_instant(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Auth
            | ErrorKind::QuotaExceeded
            | ErrorKind::AlreadyExists
            | ErrorKind::InvalidName
    )
}

/// Reads `len` bytes at `offset` and hashes them, off the async threads.
async fn read_unit(file: Arc<std::fs::File>, offset: u64, len: u64) -> Result<(Bytes, String)> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        read_exact_at(&file, &mut buf, offset).map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "spool file ended before the declared size, not sending"
            } else {
                "reading the spool file"
            };
            Error::new(ErrorKind::Local, what)
                .with_context("offset", offset)
                .with_source(e)
        })?;
        let hash = hex::encode(Sha256::digest(&buf));
        Ok((Bytes::from(buf), hash))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Local, "unit reader task failed").with_source(e))?
}

/// Fills `buf` from `offset` without moving a shared file cursor, so units
/// can be read in parallel from one handle.
#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// `Ok(true)` when the poll says done (with a quickkey), `Ok(false)` to keep
/// polling, `Err` for a failed upload.
pub fn poll_outcome(st: &PollState) -> Result<bool> {
    if st.result < 0 {
        let (kind, msg) = codes::classify_upload_result(st.result);
        return Err(Error::new(kind, msg)
            .with_action("upload/poll_upload")
            .with_context("result", st.result));
    }
    let fileerror = st.fileerror.trim();
    if !fileerror.is_empty() && fileerror != "0" {
        let code = fileerror.parse::<u32>().unwrap_or(0);
        let (kind, msg) = codes::classify_fileerror(code);
        return Err(Error::new(kind, msg)
            .with_action("upload/poll_upload")
            .with_context("fileerror", fileerror));
    }
    let has_key = st.quickkey.as_deref().is_some_and(|q| !q.is_empty());
    match st.status {
        99 | 98 if has_key => Ok(true),
        99 => Err(
            Error::new(ErrorKind::Permanent, "upload finished without a quickkey")
                .with_action("upload/poll_upload"),
        ),
        _ => Ok(false),
    }
}

fn poll_file_info(st: PollState, req: &UploadRequest) -> FileInfo {
    FileInfo {
        quickkey: st.quickkey.unwrap_or_default(),
        name: st
            .filename
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| req.name.clone()),
        size: st.size.filter(|s| *s > 0).unwrap_or(req.source.size),
        hash: st
            .hash
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| req.source.sha256.clone()),
        created: st
            .created_utc
            .as_deref()
            .and_then(crate::mediafire::parse_utc)
            .unwrap_or_else(SystemTime::now),
        revision: st.revision,
    }
}

fn file_info(f: FileEntry, req: &UploadRequest) -> FileInfo {
    FileInfo {
        quickkey: f.quickkey,
        name: if f.filename.is_empty() {
            req.name.clone()
        } else {
            f.filename
        },
        size: f.size,
        hash: f.hash,
        created: f
            .created_utc
            .as_deref()
            .and_then(crate::mediafire::parse_utc)
            .unwrap_or(SystemTime::UNIX_EPOCH),
        revision: f.revision,
    }
}

fn doupload_error(action: &'static str, result: i64) -> Error {
    if result < 0 {
        let (kind, msg) = codes::classify_upload_result(result);
        return Error::new(kind, msg)
            .with_action(action)
            .with_context("result", result);
    }
    let (kind, retry) = codes::classify(result as u32);
    let e = Error::new(kind, "unit rejected")
        .with_action(action)
        .with_code(result as u32);
    match retry {
        crate::error::Retry::Temporary => e.set_temporary(),
        _ => e.set_permanent(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_table_matches_spec() {
        const MIB: u64 = 1 << 20;
        assert_eq!(default_unit_size(1), 4 * MIB);
        assert_eq!(default_unit_size(4 * MIB - 1), 4 * MIB);
        assert_eq!(default_unit_size(4 * MIB), MIB);
        assert_eq!(default_unit_size(16 * MIB), 2 * MIB);
        assert_eq!(default_unit_size(64 * MIB), 4 * MIB);
        assert_eq!(default_unit_size(1 << 30), 16 * MIB);
        assert_eq!(default_unit_size(16 << 30), 64 * MIB);
        assert_eq!(default_unit_size(u64::MAX), 64 * MIB);
    }

    #[test]
    fn bitmap_bits() {
        // 5 units all received: words ["31"].
        assert!((0..5).all(|u| unit_is_present(&[31], u)));
        assert!(!unit_is_present(&[31], 5));
        assert!(unit_is_present(&[0, 1], 16));
        assert!(!unit_is_present(&[], 0));
        let l = UnitLayout {
            unit_size: 10,
            count: 20,
        };
        let b = Bitmap {
            count: 2,
            words: vec![0b101, 0b1],
        };
        let m = l.missing(Some(&b));
        assert!(!m.contains(&0) && m.contains(&1) && !m.contains(&2) && !m.contains(&16));
        assert_eq!(m.len(), 17);
    }

    #[test]
    fn layout_must_cover_the_file() {
        let rs = ResumableState {
            number_of_units: 3,
            unit_size: 10,
            ..Default::default()
        };
        assert_eq!(
            UnitLayout::from_server(25, Some(&rs)).unwrap().span(25, 2),
            (20, 5)
        );
        assert!(UnitLayout::from_server(35, Some(&rs)).is_err());
    }

    #[test]
    fn poll_statuses() {
        let mut st = PollState {
            status: 17,
            ..Default::default()
        };
        assert!(!poll_outcome(&st).unwrap());
        st.status = 99;
        assert!(
            poll_outcome(&st).is_err(),
            "99 without a quickkey is never success"
        );
        st.quickkey = Some("abc".into());
        assert!(poll_outcome(&st).unwrap());
        st.fileerror = "13".into();
        assert_eq!(
            poll_outcome(&st).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        let st = PollState {
            result: -80,
            ..Default::default()
        };
        assert_eq!(poll_outcome(&st).unwrap_err().kind(), ErrorKind::Transient);
    }
}
