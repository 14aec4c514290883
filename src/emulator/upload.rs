//! The upload protocol (§4): `upload/check`, `upload/instant`, `upload/simple`,
//! `upload/resumable` and `upload/poll_upload`.
//!
//! 1. `upload/check` finds or opens an upload session for (folder, name, hash, size) and reports
//!    the server-chosen unit size and the bitmap of units already received.
//! 2. `upload/resumable` stores one unit per request after checking its length and SHA-256
//!    (304 on mismatch); units may come in any order, again, or in a later call.
//! 3. When the last unit lands the units are concatenated into a blob (streamed), the whole-file
//!    hash is verified (`fileerror` 7), and after the poll delay the file is created according
//!    to `action_on_duplicate`.
//! 4. `upload/poll_upload` reports 17 while units are missing, 18/19/4/5/6 during the delay,
//!    then 99 with the quickkey (or a `fileerror`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::DuplicateAction;
use super::api::{ApiError, Fields, Params, created_pair};
use super::state::{Emulator, State, is_valid_name, lock, now_ms, random_key};
use super::store::{PutError, Stored, is_sha256_hex};

const MIB: u64 = 1024 * 1024;

/// The unit size for a file of `size` bytes: the official table of §4.4
/// (< 4 MiB → one 4 MiB unit; then 1 MiB, doubling every ×4 of file size, up to 64 MiB).
pub(crate) fn unit_size_for(size: u64) -> u64 {
    let mut threshold = 4 * MIB;
    let mut k = 0u32;
    while k < 7 && size >= threshold {
        k += 1;
        threshold = threshold.saturating_mul(4);
    }
    if k == 0 { 4 * MIB } else { MIB << (k - 1) }
}

/// Number of units for `size` bytes; a zero-byte file still has one (empty) unit.
pub(crate) fn units_for(size: u64, unit_size: u64) -> u64 {
    size.div_ceil(unit_size).max(1)
}

/// Length of unit `id` (every unit is `unit_size` except the last).
pub(crate) fn unit_len(size: u64, unit_size: u64, id: u64) -> u64 {
    let start = id * unit_size;
    size.saturating_sub(start).min(unit_size)
}

/// The bitmap words (§4.4): bit `u % 16` (LSB first) of word `u / 16` is set when unit `u` was
/// received.
pub(crate) fn bitmap_words(received: &[bool]) -> Vec<u16> {
    let mut words = vec![0u16; received.len().div_ceil(16)];
    for (u, _) in received.iter().enumerate().filter(|(_, r)| **r) {
        words[u / 16] |= 1 << (u % 16);
    }
    words
}

fn bitmap_json(received: &[bool]) -> Value {
    let words = bitmap_words(received);
    json!({
        "count": words.len().to_string(),
        "words": words.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
    })
}

/// Where an upload session stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Phase {
    /// Units are still missing.
    Receiving,
    /// All units are in; they are being concatenated.
    Assembling,
    /// Content verified; the file appears at `ready_ms`.
    Verifying {
        since_ms: i64,
        ready_ms: i64,
        blob: String,
    },
    Done {
        quickkey: String,
        filename: String,
        revision: u64,
        created_ms: i64,
    },
    Failed {
        fileerror: u32,
    },
}

/// One upload: what is being uploaded where, and what has arrived.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UploadSession {
    pub key: String,
    pub folder: String,
    pub filename: String,
    pub hash: String,
    pub size: u64,
    pub unit_size: u64,
    pub received: Vec<bool>,
    pub action: DuplicateAction,
    /// `quick_key`: the file this upload updates.
    pub target: Option<String>,
    pub phase: Phase,
    pub updated_ms: i64,
}

impl UploadSession {
    fn is_open(&self) -> bool {
        matches!(
            self.phase,
            Phase::Receiving | Phase::Assembling | Phase::Verifying { .. }
        )
    }

    fn all_received(&self) -> bool {
        self.received.iter().all(|r| *r)
    }

    fn resumable_json(&self) -> Value {
        json!({
            "all_units_ready": if self.all_received() { "yes" } else { "no" },
            "number_of_units": self.received.len().to_string(),
            "unit_size": self.unit_size.to_string(),
            "bitmap": bitmap_json(&self.received),
            "upload_key": self.key,
        })
    }
}

fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => Fields::new(),
    }
}

/// The destination folder of an upload: `folder_key` (root if empty) plus an optional relative
/// `path` whose missing folders are created. 112 unknown, 211 in the trash.
fn destination(emu: &Emulator, p: &Params) -> Result<String, ApiError> {
    let mut state = lock(&emu.state);
    let State { tree, rng, .. } = &mut *state;
    let base = tree.folder_key(p.get("folder_key"))?;
    if tree.folder_in_trash(&base) {
        return Err(ApiError::new(211));
    }
    match p.get("path") {
        None => Ok(base),
        Some(path) => match tree.folder_by_path(&base, path) {
            Some(k) => Ok(k),
            None => {
                let k = tree.mkdir_p(&base, path, rng, now_ms());
                drop(state);
                emu.mark_dirty();
                Ok(k)
            }
        },
    }
}

/// Finished upload sessions answer polls for this long, then are forgotten.
const FINISHED_SESSION_MS: i64 = 3600 * 1000;

/// Forgets finished sessions older than [`FINISHED_SESSION_MS`]. Sessions still receiving units
/// are kept: a client may resume them at any time (their units stay in the store).
fn prune_finished(state: &mut State, now: i64) {
    state.uploads.retain(|_, s| {
        !matches!(s.phase, Phase::Done { .. } | Phase::Failed { .. })
            || now - s.updated_ms < FINISHED_SESSION_MS
    });
}

/// Picks up uploads a restart interrupted: an assembling upload is assembled again, a verifying
/// one completes after the rest of its delay.
pub(crate) fn resume_pending(emu: &Arc<Emulator>) {
    let pending: Vec<(String, Phase)> = lock(&emu.state)
        .uploads
        .values()
        .filter(|s| matches!(s.phase, Phase::Assembling | Phase::Verifying { .. }))
        .map(|s| (s.key.clone(), s.phase.clone()))
        .collect();
    for (key, phase) in pending {
        match phase {
            Phase::Assembling => {
                let emu = emu.clone();
                tokio::spawn(async move { assemble_and_verify(&emu, &key).await });
            }
            verifying => set_phase(emu, &key, verifying),
        }
    }
}

/// Finds the open session for this file or opens one.
fn session_for(
    state: &mut State,
    folder: &str,
    filename: &str,
    hash: &str,
    size: u64,
    action: DuplicateAction,
    target: Option<String>,
) -> String {
    if let Some(s) = state.uploads.values().find(|s| {
        s.is_open()
            && s.folder == folder
            && s.filename == filename
            && s.hash == hash
            && s.size == size
    }) {
        return s.key.clone();
    }
    prune_finished(state, now_ms());
    let key = loop {
        let k = random_key(&mut state.rng, 11);
        if !state.uploads.contains_key(&k) {
            break k;
        }
    };
    let unit_size = unit_size_for(size);
    state.uploads.insert(
        key.clone(),
        UploadSession {
            key: key.clone(),
            folder: folder.to_string(),
            filename: filename.to_string(),
            hash: hash.to_string(),
            size,
            unit_size,
            received: vec![false; units_for(size, unit_size) as usize],
            action,
            target,
            phase: Phase::Receiving,
            updated_ms: now_ms(),
        },
    );
    key
}

fn parse_hash(v: Option<&str>) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(h) if is_sha256_hex(h) => Ok(Some(h.to_ascii_lowercase())),
        Some(_) => Err(ApiError::new(129)),
    }
}

fn upload_urls(emu: &Emulator) -> Value {
    let base = &emu.base_url;
    json!({
        "simple": format!("{base}/api/1.5/upload/simple.php"),
        "simple_fallback": format!("{base}/api/upload/simple.php"),
        "resumable": format!("{base}/api/1.5/upload/resumable.php"),
        "resumable_fallback": format!("{base}/api/upload/resumable.php"),
    })
}

/// `upload/check` (§4.3).
pub(crate) fn upload_check(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let filename = p.get("filename").ok_or(ApiError::new(128))?.to_string();
    if !is_valid_name(&filename) {
        return Err(ApiError::new(118));
    }
    let hash = parse_hash(p.get("hash"))?;
    let size = match p.get("size") {
        None => None,
        Some(_) => Some(p.number("size", 0)?),
    };
    let resumable = p.get("resumable") == Some("yes");
    let action = p.duplicate_action(emu.config.duplicate_action)?;
    let folder = destination(emu, p)?;
    if size.is_some_and(|s| s > emu.config.max_upload_size) {
        return Err(ApiError::new(282));
    }
    // MediaFire stores no empty files, so the empty content is never "known"
    let hash_exists = hash
        .as_deref()
        .is_some_and(|h| emu.store.blob_size(h).is_some_and(|s| s > 0));

    let mut state = lock(&emu.state);
    let tree = &state.tree;
    let used = tree.used_bytes();
    let limit = emu.config.storage_limit;
    let in_account = hash
        .as_deref()
        .is_some_and(|h| tree.files.values().any(|f| f.hash == h));
    // the folder may have been purged since `destination` looked it up
    let Some(dest) = tree.folders.get(&folder) else {
        return Err(ApiError::new(112));
    };
    let in_folder = hash.as_deref().is_some_and(|h| {
        dest.child_files
            .iter()
            .filter_map(|k| tree.files.get(k))
            .any(|f| f.deleted_ms.is_none() && f.hash == h)
    });
    let existing = tree.live_child_file(&folder, &filename);
    let mut out = json!({
        "hash_exists": yn(hash_exists),
        "in_account": yn(in_account),
        "in_folder": yn(in_folder),
        "file_exists": yn(existing.is_some()),
        "available_space": limit.saturating_sub(used).to_string(),
        "used_storage_size": used.to_string(),
        "storage_limit": limit.to_string(),
        "storage_limit_exceeded": yn(used > limit),
        "upload_url": upload_urls(emu),
    });
    if let Some(k) = &existing {
        let f = &tree.files[k];
        out["duplicate_quickkey"] = json!(k);
        out["different_hash"] = json!(yn(hash.as_deref() != Some(f.hash.as_str())));
    }
    if p.get("path").is_some() {
        out["folder_key"] = json!(folder);
    }
    if let (true, Some(hash), Some(size)) = (resumable, hash, size) {
        let target = p.get("quick_key").map(String::from);
        let key = session_for(&mut state, &folder, &filename, &hash, size, action, target);
        out["resumable_upload"] = state.uploads[&key].resumable_json();
    }
    drop(state);
    emu.mark_dirty();
    Ok(fields(out))
}

fn yn(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `upload/instant` (§4.6): a new entry for content the server already has; synchronous.
pub(crate) fn upload_instant(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let filename = p.get("filename").ok_or(ApiError::new(128))?.to_string();
    if !is_valid_name(&filename) {
        return Err(ApiError::new(118));
    }
    let hash = parse_hash(p.get("hash"))?.ok_or(ApiError::new(128))?;
    let size = match p.get("size") {
        None => return Err(ApiError::new(128)),
        Some(_) => p.number("size", 0)?,
    };
    match emu.store.blob_size(&hash) {
        None | Some(0) => return Err(ApiError::new(265)),
        Some(s) if s != size => return Err(ApiError::new(129)),
        Some(_) => {}
    }
    let action = p.duplicate_action(emu.config.duplicate_action)?;
    let folder = destination(emu, p)?;
    let target = p.get("quick_key").map(String::from);

    let now = now_ms();
    let mut state = lock(&emu.state);
    if let Some(t) = &target
        && !state.tree.files.contains_key(t)
    {
        return Err(ApiError::new(110));
    }
    let replaced = target
        .as_ref()
        .map(|t| state.tree.files[t].size)
        .unwrap_or(0);
    if state.tree.used_bytes() - replaced.min(state.tree.used_bytes()) + size
        > emu.config.storage_limit
    {
        return Err(ApiError::new(162));
    }
    let placed = place_file(
        &mut state, &folder, &filename, &hash, size, action, target, now,
    )
    .map_err(|fileerror| match fileerror {
        13 => ApiError::new(143),
        _ => ApiError::new(100),
    })?;
    let rev = state.tree.device_revision;
    let folder_rev = state
        .tree
        .folders
        .get(&folder)
        .map(|f| f.revision)
        .unwrap_or(rev);
    drop(state);
    emu.mark_dirty();
    let epoch = (now / 1000).to_string();
    Ok(fields(json!({
        "quickkey": placed.0,
        "filename": placed.1,
        "device_revision": rev,
        "new_device_revision": rev,
        "newrevision": {"revision": rev.to_string(), "epoch": epoch},
        "newfolderrevision": {"revision": folder_rev.to_string(), "epoch": epoch},
    })))
}

/// Creates or replaces the file an upload produces. Returns (quickkey, name) or a `fileerror`.
#[allow(clippy::too_many_arguments)]
fn place_file(
    state: &mut State,
    folder: &str,
    filename: &str,
    hash: &str,
    size: u64,
    action: DuplicateAction,
    target: Option<String>,
    now: i64,
) -> Result<(String, String), u32> {
    let State { tree, rng, .. } = state;
    if !tree.folders.contains_key(folder) || tree.folder_in_trash(folder) {
        return Err(14);
    }
    if let Some(t) = target {
        return match tree.files.get(&t) {
            Some(f) if f.deleted_ms.is_none() => {
                let name = f.name.clone();
                tree.replace_content(&t, hash, size);
                Ok((t, name))
            }
            _ => Err(6),
        };
    }
    match (tree.live_child_file(folder, filename), action) {
        (Some(_), DuplicateAction::Skip) => Err(13),
        (Some(existing), DuplicateAction::Replace) => {
            tree.replace_content(&existing, hash, size);
            Ok((existing, filename.to_string()))
        }
        (Some(_), DuplicateAction::Keep) => {
            let name = tree.free_name(folder, filename, true);
            let k = tree.create_file(folder, &name, hash, size, rng, now);
            Ok((k, name))
        }
        (None, _) => {
            let k = tree.create_file(folder, filename, hash, size, rng, now);
            Ok((k, filename.to_string()))
        }
    }
}

/// Headers of an upload data request.
struct UploadHeaders {
    filename: String,
    size: Option<u64>,
    hash: Option<String>,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .filter(|v| !v.is_empty())
}

fn upload_headers(emu: &Emulator, h: &HeaderMap, p: &Params) -> Result<UploadHeaders, ApiError> {
    let raw = header(h, "x-filename")
        .or_else(|| p.get("filename").map(String::from))
        .ok_or(ApiError::new(128))?;
    let filename = if emu.config.decode_filename_header {
        percent_encoding::percent_decode_str(&raw)
            .decode_utf8()
            .map_err(|_| ApiError::new(118))?
            .to_string()
    } else {
        raw
    };
    if !is_valid_name(&filename) {
        return Err(ApiError::new(118));
    }
    let size = match header(h, "x-filesize") {
        None => None,
        Some(v) => Some(v.parse().map_err(|_| ApiError::new(129))?),
    };
    let hash = parse_hash(header(h, "x-filehash").as_deref())?;
    Ok(UploadHeaders {
        filename,
        size,
        hash,
    })
}

/// `upload/resumable` (§4.5): one unit per request, parameters in the query string, unit
/// metadata in `x-*` headers, the unit bytes as the body.
pub(crate) async fn upload_resumable<B>(
    emu: &Arc<Emulator>,
    p: &Params,
    h: &HeaderMap,
    body: B,
) -> Result<Fields, ApiError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let uh = upload_headers(emu, h, p)?;
    let (Some(size), Some(hash)) = (uh.size, uh.hash.clone()) else {
        return Err(ApiError::new(128));
    };
    if size > emu.config.max_upload_size {
        return Err(ApiError::new(282));
    }
    let (unit_id, unit_size, unit_hash) = unit_headers(h)?;
    let folder = destination(emu, p)?;

    // 1. find the session and check the unit against it
    let key = {
        let mut state = lock(&emu.state);
        let action = p.duplicate_action(emu.config.duplicate_action)?;
        let target = p.get("quick_key").map(String::from);
        let key = session_for(&mut state, &folder, &uh.filename, &hash, size, action, None);
        let Some(s) = state.uploads.get_mut(&key) else {
            return Err(ApiError::new(175));
        };
        // the unit request's own parameters win over those the check opened the session with
        if p.get("action_on_duplicate").is_some() {
            s.action = action;
        }
        if target.is_some() {
            s.target = target;
        }
        if unit_id >= s.received.len() as u64 || unit_size != unit_len(size, s.unit_size, unit_id) {
            return Err(ApiError::new(129));
        }
        if !matches!(s.phase, Phase::Receiving) {
            // everything is in already: nothing to store, report the state
            return Ok(resumable_answer(s));
        }
        key
    };

    // 2. stream the body into the store, then check its length and hash
    let expected = Stored {
        hash: unit_hash,
        size: unit_size,
    };
    let stored = match emu
        .store
        .put_unit(&key, unit_id, body, unit_size, &expected)
        .await
    {
        Ok(s) => s,
        Err(PutError::TooLong) => return Err(ApiError::new(129)),
        Err(PutError::Io(e)) => {
            tracing::debug!(error = %e, "emulator: unit body failed");
            return Err(ApiError::new(100));
        }
    };
    lock(&emu.stats).upload_unit_bytes += stored.size;
    if stored.size != unit_size {
        return Err(ApiError::new(129));
    }
    if stored.hash != expected.hash {
        return Err(ApiError::new(304));
    }

    // 3. record it; the request that completes the set assembles the file
    let (answer, assemble) = {
        let mut state = lock(&emu.state);
        let Some(s) = state.uploads.get_mut(&key) else {
            return Err(ApiError::new(175));
        };
        s.received[unit_id as usize] = true;
        s.updated_ms = now_ms();
        let assemble = matches!(s.phase, Phase::Receiving) && s.all_received();
        if assemble {
            s.phase = Phase::Assembling;
        }
        (resumable_answer(s), assemble)
    };
    emu.mark_dirty();
    if assemble {
        assemble_and_verify(emu, &key).await;
    }
    Ok(answer)
}

/// `x-unit-id`, `x-unit-size` and `x-unit-hash` (128 when missing, 129 when malformed).
fn unit_headers(h: &HeaderMap) -> Result<(u64, u64, String), ApiError> {
    let number = |name: &str| -> Result<u64, ApiError> {
        header(h, name)
            .ok_or(ApiError::new(128))?
            .parse()
            .map_err(|_| ApiError::new(129))
    };
    let hash = parse_hash(header(h, "x-unit-hash").as_deref())?.ok_or(ApiError::new(128))?;
    Ok((number("x-unit-id")?, number("x-unit-size")?, hash))
}

fn resumable_answer(s: &UploadSession) -> Fields {
    fields(json!({
        "doupload": {"result": "0", "key": s.key},
        "resumable_upload": s.resumable_json(),
    }))
}

/// Concatenates the units, verifies the whole-file hash and size, and schedules completion.
async fn assemble_and_verify(emu: &Arc<Emulator>, key: &str) {
    let (n, hash, size) = {
        let state = lock(&emu.state);
        let Some(s) = state.uploads.get(key) else {
            return;
        };
        (s.received.len() as u64, s.hash.clone(), s.size)
    };
    let result = emu.store.assemble(key, n).await;
    emu.store.remove_units(key).await;
    let phase = match result {
        Err(e) => {
            tracing::warn!(error = %e, "emulator: assembling upload failed");
            Phase::Failed { fileerror: 6 }
        }
        Ok(blob) if blob.hash != hash || blob.size != size => Phase::Failed { fileerror: 7 },
        Ok(blob) => verifying(emu, blob.hash),
    };
    set_phase(emu, key, phase);
}

fn verifying(emu: &Arc<Emulator>, blob: String) -> Phase {
    let delay = lock(&emu.faults).faults.poll_delay_ms as i64;
    let now = now_ms();
    Phase::Verifying {
        since_ms: now,
        ready_ms: now + delay,
        blob,
    }
}

/// Sets a session's phase; a verifying session completes now or after the poll delay.
fn set_phase(emu: &Arc<Emulator>, key: &str, phase: Phase) {
    let wait = match &phase {
        Phase::Verifying { ready_ms, .. } => Some((*ready_ms - now_ms()).max(0) as u64),
        _ => None,
    };
    if let Some(s) = lock(&emu.state).uploads.get_mut(key) {
        s.phase = phase;
        s.updated_ms = now_ms();
    }
    emu.mark_dirty();
    match wait {
        Some(0) => finish_if_due(emu, key),
        Some(ms) => {
            let emu = emu.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                finish_if_due(&emu, &key);
            });
        }
        None => {}
    }
}

/// Turns a verified upload into a file once its delay has passed (idempotent).
fn finish_if_due(emu: &Emulator, key: &str) {
    let now = now_ms();
    let mut state = lock(&emu.state);
    let Some(s) = state.uploads.get(key).cloned() else {
        return;
    };
    let Phase::Verifying { ready_ms, blob, .. } = &s.phase else {
        return;
    };
    if now < *ready_ms {
        return;
    }
    let phase = if s.size == 0 {
        Phase::Failed { fileerror: 2 }
    } else if s.size > emu.config.max_upload_size {
        Phase::Failed { fileerror: 1 }
    } else {
        let used = state.tree.used_bytes();
        let replaced = state
            .tree
            .live_child_file(&s.folder, &s.filename)
            .map_or(0, |k| {
                if s.action == DuplicateAction::Replace {
                    state.tree.files[&k].size
                } else {
                    0
                }
            });
        if used.saturating_sub(replaced) + s.size > emu.config.storage_limit {
            Phase::Failed { fileerror: 15 }
        } else {
            let target = s.target.clone();
            match place_file(
                &mut state,
                &s.folder,
                &s.filename,
                blob,
                s.size,
                s.action,
                target,
                now,
            ) {
                Ok((quickkey, filename)) => {
                    let f = &state.tree.files[&quickkey];
                    Phase::Done {
                        revision: f.revision,
                        created_ms: f.created_ms,
                        quickkey,
                        filename,
                    }
                }
                Err(fileerror) => Phase::Failed { fileerror },
            }
        }
    };
    if let Some(s) = state.uploads.get_mut(key) {
        s.phase = phase;
        s.updated_ms = now;
    }
    drop(state);
    emu.mark_dirty();
}

/// `upload/simple` (§4.6): the whole file as the body (raw, or a multipart part handed in by
/// the server); completes through `poll_upload` like a resumable upload.
pub(crate) async fn upload_simple<B>(
    emu: &Arc<Emulator>,
    p: &Params,
    h: &HeaderMap,
    body: B,
    part_filename: Option<String>,
) -> Result<Fields, ApiError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut params = p.clone();
    if let Some(n) = part_filename
        && h.get("x-filename").is_none()
    {
        params.insert("filename".into(), n);
    }
    let uh = upload_headers(emu, h, &params)?;
    let action = params.duplicate_action(emu.config.duplicate_action)?;
    let folder = destination(emu, &params)?;
    let stored = match emu
        .store
        .put_blob_body(body, emu.config.max_upload_size + 1)
        .await
    {
        Ok(s) => s,
        Err(PutError::TooLong) => return Err(ApiError::new(282)),
        Err(PutError::Io(e)) => {
            tracing::debug!(error = %e, "emulator: simple upload body failed");
            return Err(ApiError::new(100));
        }
    };
    lock(&emu.stats).upload_simple_bytes += stored.size;
    let declared_ok = uh.size.is_none_or(|s| s == stored.size)
        && uh.hash.as_deref().is_none_or(|x| x == stored.hash);
    let key = {
        let mut state = lock(&emu.state);
        prune_finished(&mut state, now_ms());
        let key = loop {
            let k = random_key(&mut state.rng, 11);
            if !state.uploads.contains_key(&k) {
                break k;
            }
        };
        state.uploads.insert(
            key.clone(),
            UploadSession {
                key: key.clone(),
                folder,
                filename: uh.filename,
                hash: stored.hash.clone(),
                size: stored.size,
                unit_size: unit_size_for(stored.size),
                received: vec![true],
                action,
                target: params.get("quick_key").map(String::from),
                phase: Phase::Assembling,
                updated_ms: now_ms(),
            },
        );
        key
    };
    let phase = if declared_ok {
        verifying(emu, stored.hash)
    } else {
        Phase::Failed { fileerror: 7 }
    };
    set_phase(emu, &key, phase);
    Ok(fields(json!({
        "doupload": {"result": "0", "key": key},
        "server": "live",
    })))
}

/// `upload/poll_upload` (§4.7).
pub(crate) fn upload_poll_upload(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let key = p.get("key").ok_or(ApiError::new(129))?;
    let well_formed = key.len() == 11 && key.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Ok(fields(
            json!({"doupload": {"result": "-20", "description": "Invalid Upload Key"}}),
        ));
    }
    finish_if_due(emu, key);
    let state = lock(&emu.state);
    let Some(s) = state.uploads.get(key) else {
        return Ok(fields(
            json!({"doupload": {"result": "-80", "description": "Upload Key not found"}}),
        ));
    };
    let now = now_ms();
    let (status, description) = match &s.phase {
        Phase::Receiving => ("17", "Upload is in progress"),
        Phase::Assembling => ("18", "Waiting for assembly"),
        Phase::Verifying {
            since_ms, ready_ms, ..
        } => {
            let span = (ready_ms - since_ms).max(1);
            match ((now - since_ms).max(0) * 5 / span).min(4) {
                0 => ("18", "Waiting for assembly"),
                1 => ("19", "Assembling file"),
                2 => ("4", "Upload completed"),
                3 => ("5", "Waiting for verification"),
                _ => ("6", "Verifying file"),
            }
        }
        Phase::Done { .. } | Phase::Failed { .. } => ("99", "No more requests for this key"),
    };
    let mut doupload = json!({
        "result": "0",
        "status": status,
        "description": description,
        "fileerror": "",
        "quickkey": "",
        "hash": "",
        "filename": "",
        "size": "",
        "created": "",
        "created_utc": "",
        "revision": "",
    });
    match &s.phase {
        Phase::Done {
            quickkey,
            filename,
            revision,
            created_ms,
        } => {
            let (created, created_utc) = created_pair(*created_ms);
            doupload["quickkey"] = json!(quickkey);
            doupload["hash"] = json!(s.hash);
            doupload["filename"] = json!(filename);
            doupload["size"] = json!(s.size.to_string());
            doupload["created"] = json!(created);
            doupload["created_utc"] = json!(created_utc);
            doupload["revision"] = json!(revision.to_string());
        }
        Phase::Failed { fileerror } => doupload["fileerror"] = json!(fileerror.to_string()),
        _ => {}
    }
    let mut out = json!({"doupload": doupload});
    if matches!(s.phase, Phase::Receiving) {
        out["resumable_upload"] = s.resumable_json();
    }
    Ok(fields(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_size_table_matches_spec() {
        let cases = [
            (0, 4 * MIB),
            (4 * MIB - 1, 4 * MIB),
            (4 * MIB, MIB),
            (16 * MIB - 1, MIB),
            (16 * MIB, 2 * MIB),
            (64 * MIB - 1, 2 * MIB),
            (64 * MIB, 4 * MIB),
            (256 * MIB, 8 * MIB),
            (1024 * MIB, 16 * MIB),
            (4096 * MIB, 32 * MIB),
            (16384 * MIB - 1, 32 * MIB),
            (16384 * MIB, 64 * MIB),
            (1 << 50, 64 * MIB),
        ];
        for (size, unit) in cases {
            assert_eq!(unit_size_for(size), unit, "size {size}");
        }
    }

    #[test]
    fn units_and_last_unit_length() {
        assert_eq!(units_for(0, 4 * MIB), 1);
        assert_eq!(units_for(5 * MIB, MIB), 5);
        assert_eq!(units_for(5 * MIB + 1, MIB), 6);
        assert_eq!(unit_len(5 * MIB + 1, MIB, 5), 1);
        assert_eq!(unit_len(5 * MIB + 1, MIB, 4), MIB);
        assert_eq!(unit_len(0, 4 * MIB, 0), 0);
    }

    #[test]
    fn bitmap_is_lsb_first_sixteen_bits_per_word() {
        assert_eq!(bitmap_words(&[true; 5]), vec![31]);
        assert_eq!(bitmap_words(&[false, true, false]), vec![2]);
        let mut r = vec![false; 21];
        r[0] = true;
        r[16] = true;
        r[20] = true;
        assert_eq!(bitmap_words(&r), vec![1, 0b10001]);
        assert_eq!(bitmap_words(&[true; 16]), vec![65535]);
        let j = bitmap_json(&[true, true, false]);
        assert_eq!(j, json!({"count": "1", "words": ["3"]}));
    }
}
