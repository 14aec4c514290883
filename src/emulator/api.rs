//! The API actions other than uploads: `user/*`, `folder/*`, `file/*`, `device/get_status`,
//! `system/get_limits`, each a function named after its action that turns request parameters
//! into the fields of a success envelope (or an [`ApiError`]).
//!
//! Shapes follow §3 of the spec and the recorded fixtures: every number is a string except
//! `error` and `new_device_revision`, flags are `"yes"`/`"no"`. Mutations run on a copy of the
//! tree that replaces the real one only when the whole call succeeded, so a comma list either
//! applies completely or not at all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::state::{
    Emulator, File, Folder, MAX_DEPTH, RENEW_SAME_TOKEN_MS, ROOT, State, TRASH, Token, TokenKind,
    Tree, changes_extension, is_valid_name, lock, now_ms, placed_name, random_hex,
};
use super::{DuplicateAction, RenewMode};

/// Fields of a success envelope (without `action`, `result`, `current_api_version`).
pub(crate) type Fields = Map<String, Value>;

/// An API error: the `error` code and `message` of an error envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub code: u32,
    pub message: String,
}

impl ApiError {
    /// The error with MediaFire's own message for `code` (§2.5).
    pub fn new(code: u32) -> Self {
        ApiError {
            code,
            message: message_for(code).to_string(),
        }
    }
}

/// MediaFire's message texts (§2.5).
pub(crate) fn message_for(code: u32) -> &'static str {
    match code {
        100 => "Internal server error",
        104 => "The Session Token is missing",
        105 => "The supplied Session Token is expired or invalid",
        106 => "You cannot change the file extension by changing the file name",
        107 => "The Credentials you entered are invalid",
        110 => "Unknown or Invalid QuickKey",
        111 => "Quick Key is missing",
        112 => "Unknown or invalid FolderKey",
        113 => "Folder Key is missing",
        114 => "Access denied",
        115 => "Cannot move/copy a Folder to itself or to one of its Sub-Folders",
        117 => "Folder Name is missing",
        118 => "The File Name specified is invalid",
        128 => "Required parameters for this request are missing",
        129 => "One or more parameters for this request are invalid",
        143 => "This file already exists",
        144 => "This folder already exists",
        162 => "The file(s)/folder(s) you upload/copy exceed your total storage limit",
        163 => "You have reached the limit accessing the API. Please try again later.",
        167 => "Maximum depth of folder reached",
        175 => "The Upload Key specified is invalid",
        185 => "The specified Folder Name is invalid",
        207 => "Total number of files copied cannot exceed MAX_OBJECTS",
        208 => "Another Asynchronous Operation is in progress. Please Retry later.",
        209 => "This folder has already been deleted",
        210 => "This file has already been deleted",
        211 => "Items in the Trash Can cannot be modified",
        242 => "The folder trying to be deleted has over 1000 files",
        253 => "Unknown or invalid API method",
        259 => "Folder path not found",
        260 => "File path not found",
        264 => "Hash is missing",
        265 => "Unknown or invalid Hash",
        282 => "File too big",
        304 => {
            "The SHA256 hash of the chunk (x-unit-hash) does not match the SHA256 hash of the \
             payload received by the server"
        }
        _ => "Error",
    }
}

/// Request parameters from the query string and the form body; empty values count as absent
/// (§2.1: clients send `filter=`, `parent_key=`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Params {
    map: HashMap<String, String>,
}

impl Params {
    pub fn insert(&mut self, key: String, value: String) {
        if value.is_empty() {
            self.map.remove(&key);
        } else {
            self.map.insert(key, value);
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// A comma list parameter (`quick_key=a,b`).
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A number parameter; absent → `default`; not a number → 129.
    pub fn number(&self, key: &str, default: u64) -> Result<u64, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ApiError::new(129)),
        }
    }

    /// `action_on_duplicate`; absent → `default`; unknown → 129.
    pub fn duplicate_action(&self, default: DuplicateAction) -> Result<DuplicateAction, ApiError> {
        match self.get("action_on_duplicate") {
            None => Ok(default),
            Some("skip") => Ok(DuplicateAction::Skip),
            Some("keep") => Ok(DuplicateAction::Keep),
            Some("replace") => Ok(DuplicateAction::Replace),
            Some(_) => Err(ApiError::new(129)),
        }
    }
}

/// Which credential authorised a call.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub token: Option<String>,
}

fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `created` is US Central local time, five hours behind `created_utc` in every capture.
fn created_local(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms - 5 * 3600 * 1000)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn created_utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn created_pair(ms: i64) -> (String, String) {
    (created_local(ms), created_utc(ms))
}

fn enc(name: &str) -> String {
    utf8_percent_encode(name, NON_ALPHANUMERIC).to_string()
}

fn permissions() -> Value {
    json!({"value": "2", "explicit": "0", "read": "1", "write": "1"})
}

/// MIME type and MediaFire `filetype` from a name's extension.
pub(crate) fn mime_of(name: &str) -> (&'static str, &'static str) {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "md" | "log" | "csv" => ("text/plain", "document"),
        "pdf" => ("application/pdf", "document"),
        "doc" | "docx" | "odt" => ("application/msword", "document"),
        "jpg" | "jpeg" => ("image/jpeg", "image"),
        "png" => ("image/png", "image"),
        "gif" => ("image/gif", "image"),
        "mp3" => ("audio/mpeg", "audio"),
        "mp4" | "m4v" => ("video/mp4", "video"),
        "zip" => ("application/zip", "archive"),
        "7z" => ("application/x-7z-compressed", "archive"),
        "json" => ("application/json", "data"),
        "html" | "htm" => ("text/html", "document"),
        _ => ("application/octet-stream", "other"),
    }
}

/// A file as `folder/get_content` lists it (and `file/get_info` with `extra`).
pub(crate) fn file_json(emu: &Emulator, tree: &Tree, f: &File, extra: bool) -> Value {
    let (created, created_utc) = created_pair(f.created_ms);
    let (mimetype, filetype) = mime_of(&f.name);
    let base = &emu.base_url;
    let mut v = json!({
        "quickkey": f.key,
        "hash": f.hash,
        "filename": f.name,
        "description": f.description,
        "size": f.size.to_string(),
        "privacy": f.privacy,
        "created": created,
        "password_protected": "no",
        "mimetype": mimetype,
        "filetype": filetype,
        "view": "0",
        "edit": "0",
        "revision": f.revision.to_string(),
        "flag": "0",
        "permissions": permissions(),
        "downloads": f.downloads.to_string(),
        "views": "0",
        "links": {
            "view": format!("{base}/view/{}/{}/file", f.key, enc(&f.name)),
            "normal_download": format!("{base}/file/{}/{}/file", f.key, enc(&f.name)),
        },
        "created_utc": created_utc,
    });
    if extra {
        v["parent_folderkey"] = json!(f.parent);
        v["owner_name"] = json!("Demo User");
        v["ready"] = json!("yes");
    }
    if let Some(d) = f
        .deleted_ms
        .or_else(|| tree.folders.get(&f.parent).and_then(|p| p.deleted_ms))
    {
        v["delete_date"] = json!(created_local(d));
    }
    v
}

/// A folder as `folder/get_content` lists it (and `folder/get_info` with `extra`).
pub(crate) fn folder_json(tree: &Tree, f: &Folder, details: bool, extra: bool) -> Value {
    let (created, created_utc) = created_pair(f.created_ms);
    let live_files = f
        .child_files
        .iter()
        .filter_map(|k| tree.files.get(k))
        .filter(|x| x.deleted_ms.is_none())
        .count();
    let live_folders = f
        .child_folders
        .iter()
        .filter_map(|k| tree.folders.get(k))
        .filter(|x| x.deleted_ms.is_none())
        .count();
    let mut v = json!({
        "folderkey": f.key,
        "name": f.name,
        "description": f.description,
        "tags": "",
        "privacy": f.privacy,
        "created": created,
        "revision": f.revision.to_string(),
        "flag": "0",
        "permissions": permissions(),
        "file_count": live_files.to_string(),
        "folder_count": live_folders.to_string(),
        "dropbox_enabled": "no",
        "created_utc": created_utc,
    });
    if details {
        let (files, folders) = tree.folder_totals(&f.key);
        v["total_files"] = json!(files.to_string());
        v["total_folders"] = json!(folders.to_string());
        v["total_size"] = json!(tree.folder_bytes(&f.key).to_string());
    }
    if extra {
        v["owner_name"] = json!("Demo User");
        v["avatar"] = json!("");
        v["size"] = json!(tree.folder_bytes(&f.key).to_string());
        if let Some(p) = &f.parent {
            v["parent_folderkey"] = json!(p);
        }
    }
    if let Some(d) = f.deleted_ms {
        v["delete_date"] = json!(created_local(d));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// tokens

/// Checks a token for a call; `allow_action` for `upload/*`. 104 when missing, 105 when unknown
/// or expired (or an action token outside `upload/*`).
pub(crate) fn check_token(
    emu: &Emulator,
    token: Option<&str>,
    allow_action: bool,
) -> Result<TokenKind, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::new(104));
    };
    let now = now_ms();
    let boundary = {
        let faults = lock(&emu.faults);
        let at = Instant::now();
        faults
            .periodic_expiry_boundary(at)
            .map(|b| now - at.duration_since(b).as_millis() as i64)
    };
    let mut state = lock(&emu.state);
    let Some(t) = state.tokens.get(token) else {
        return Err(ApiError::new(105));
    };
    let expired = now >= t.expires_ms || boundary.is_some_and(|b| t.renewed_ms < b);
    if expired {
        state.tokens.remove(token);
        return Err(ApiError::new(105));
    }
    if t.kind == TokenKind::Action && !allow_action {
        return Err(ApiError::new(105));
    }
    Ok(t.kind)
}

/// Mints a session token (144 hex characters, as in the docs' examples).
pub(crate) fn mint_session_token(emu: &Emulator) -> String {
    let now = now_ms();
    let mut state = lock(&emu.state);
    let token = random_hex(&mut state.rng, 144);
    state.tokens.insert(
        token.clone(),
        Token {
            kind: TokenKind::Session,
            renewed_ms: now,
            expires_ms: now + emu.config.token_ttl as i64 * 1000,
        },
    );
    drop(state);
    emu.mark_dirty();
    token
}

/// `user/renew_session_token` (§1.4): younger than 5 minutes → the same token, extended;
/// older → a new token or the same one extended, per `--renew-mode`.
pub(crate) fn user_renew_session_token(
    emu: &Emulator,
    caller: &Caller,
) -> Result<Fields, ApiError> {
    let token = caller.token.clone().unwrap_or_default();
    let now = now_ms();
    let ttl = emu.config.token_ttl as i64 * 1000;
    let mut state = lock(&emu.state);
    let Some(t) = state.tokens.get_mut(&token) else {
        return Err(ApiError::new(105));
    };
    let young = now - t.renewed_ms < RENEW_SAME_TOKEN_MS;
    let result = if young || emu.config.renew_mode == RenewMode::Extend {
        t.expires_ms = now + ttl;
        if !young {
            t.renewed_ms = now;
        }
        token
    } else {
        let fresh = random_hex(&mut state.rng, 144);
        state.tokens.insert(
            fresh.clone(),
            Token {
                kind: TokenKind::Session,
                renewed_ms: now,
                expires_ms: now + ttl,
            },
        );
        fresh
    };
    drop(state);
    emu.mark_dirty();
    Ok(fields(json!({"session_token": result})))
}

/// `user/get_action_token` (§1.5): `type=upload|image`, `lifespan` minutes 1–1440.
pub(crate) fn user_get_action_token(emu: &Emulator, p: &Params) -> Result<Fields, ApiError> {
    match p.get("type") {
        None => return Err(ApiError::new(128)),
        Some("upload") | Some("image") => {}
        Some(_) => return Err(ApiError::new(129)),
    }
    let lifespan = p.number("lifespan", 15)?;
    if !(1..=1440).contains(&lifespan) {
        return Err(ApiError::new(129));
    }
    let now = now_ms();
    let mut state = lock(&emu.state);
    let token = random_hex(&mut state.rng, 160);
    state.tokens.insert(
        token.clone(),
        Token {
            kind: TokenKind::Action,
            renewed_ms: now,
            expires_ms: now + lifespan as i64 * 60_000,
        },
    );
    drop(state);
    emu.mark_dirty();
    Ok(fields(json!({"action_token": token})))
}

/// `user/destroy_action_token`: an unknown token answers 100, as the 1.1 docs say.
pub(crate) fn user_destroy_action_token(emu: &Emulator, p: &Params) -> Result<Fields, ApiError> {
    let Some(token) = p.get("action_token") else {
        return Err(ApiError::new(128));
    };
    let mut state = lock(&emu.state);
    match state.tokens.get(token) {
        Some(t) if t.kind == TokenKind::Action => {
            state.tokens.remove(token);
            drop(state);
            emu.mark_dirty();
            Ok(Fields::new())
        }
        _ => Err(ApiError::new(100)),
    }
}

/// `user/get_info` (§3.14): account and quota.
pub(crate) fn user_get_info(emu: &Emulator) -> Result<Fields, ApiError> {
    let used = lock(&emu.state).tree.used_bytes();
    let limit = emu.config.storage_limit;
    Ok(fields(json!({"user_info": {
        "ekey": "0123456789abcdef0123456789abcdef",
        "email": "demo@example.com",
        "first_name": "Demo",
        "last_name": "User",
        "display_name": "Demo User",
        "gender": "Prefer not to answer",
        "birth_date": "",
        "location": "",
        "website": "",
        "premium": "yes",
        "bandwidth": "1073741823360",
        "created": "2020-01-01",
        "validated": "yes",
        "tos_accepted": "1.5",
        "used_storage_size": used.to_string(),
        "base_storage": limit.to_string(),
        "bonus_storage": "0",
        "storage_limit": limit.to_string(),
        "storage_limit_exceeded": if used > limit { "yes" } else { "no" },
        "options": "0",
        "max_upload_size": emu.config.max_upload_size.to_string(),
        "max_instant_upload_size": emu.config.max_upload_size.to_string(),
        "one_time_key_request_max_count": "100",
        "facebook": {"linked": "no"},
        "gmail": {"linked": "no"},
        "twitter": {"linked": "no"},
    }})))
}

// ---------------------------------------------------------------------------------------------
// device / system

/// `device/get_status` (§2.4).
pub(crate) fn device_get_status(emu: &Emulator) -> Result<Fields, ApiError> {
    let state = lock(&emu.state);
    let busy = state.async_until.is_some_and(|t| Instant::now() < t);
    Ok(fields(json!({
        "device_revision": state.tree.device_revision.to_string(),
        "async_jobs_in_progress": if busy { "yes" } else { "no" },
    })))
}

/// `system/get_limits` (§3.16, recorded values).
pub(crate) fn system_get_limits() -> Result<Fields, ApiError> {
    Ok(fields(json!({"limits": {
        "max_objects": "6000",
        "max_keys": "500",
        "max_image_size": "26214400",
        "zip_max_filesize": "314572800",
        "zip_max_total_filesize": "2147483647",
        "folder_content_chunk_size": "100",
        "folder_depth_limit": MAX_DEPTH.to_string(),
        "limit_search_results": "100",
        "daily_shares_limit": "100",
        "device_changes_list_limit": "500",
        "total_folder_items_limit": "100",
    }})))
}

// ---------------------------------------------------------------------------------------------
// mutations

/// Runs a mutation. It works on a copy of the tree that replaces the real one only on success.
/// With the `async_ops` fault and `asyncable`, the call answers at once with
/// `asynchronous:"yes"` and the change lands after `async_ms` (other mutations meanwhile: 208).
fn mutate<F>(emu: &Arc<Emulator>, asyncable: bool, op: F) -> Result<Fields, ApiError>
where
    F: Fn(&mut Tree, &mut StdRng, i64) -> Result<Fields, ApiError> + Send + 'static,
{
    let (async_ops, async_ms) = {
        let f = lock(&emu.faults);
        (f.faults.async_ops, f.faults.async_ms)
    };
    let now = now_ms();
    let mut state = lock(&emu.state);
    if state.async_until.is_some_and(|t| Instant::now() < t) {
        return Err(ApiError::new(208));
    }
    let mut tree = state.tree.clone();
    let rng_before = state.rng.clone();
    let mut rng = state.rng.clone();
    let mut out = op(&mut tree, &mut rng, now)?;
    out.insert("new_device_revision".into(), json!(tree.device_revision));
    if asyncable && async_ops {
        // the trial above computed the answer; the same op with the same random state replays
        // it on the real tree later, so the keys in the answer are the keys that appear
        state.rng = rng;
        state.async_until = Some(Instant::now() + Duration::from_millis(async_ms));
        drop(state);
        let emu = emu.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(async_ms)).await;
            let mut state = lock(&emu.state);
            let State { tree, .. } = &mut *state;
            let mut replay_rng = rng_before;
            let mut copy = tree.clone();
            match op(&mut copy, &mut replay_rng, now) {
                Ok(_) => *tree = copy,
                Err(e) => tracing::debug!(code = e.code, "emulator: async operation failed late"),
            }
            state.async_until = None;
            drop(state);
            emu.mark_dirty();
        });
        out.insert("asynchronous".into(), json!("yes"));
        return Ok(out);
    }
    state.tree = tree;
    state.rng = rng;
    drop(state);
    emu.mark_dirty();
    out.insert("asynchronous".into(), json!("no"));
    Ok(out)
}

/// A live folder to put things into: 112 unknown, 211 in the trash.
fn live_destination(tree: &Tree, key: Option<&str>) -> Result<String, ApiError> {
    let k = tree.folder_key(key)?;
    if tree.folder_in_trash(&k) {
        return Err(ApiError::new(211));
    }
    Ok(k)
}

/// A folder argument that may be the root given by path (`folder_path`, `parent_path`).
fn folder_arg(tree: &Tree, p: &Params, key: &str, path: &str) -> Result<String, ApiError> {
    match (p.get(key), p.get(path)) {
        (None, Some(path)) => tree.folder_by_path(ROOT, path).ok_or(ApiError::new(259)),
        (k, _) => tree.folder_key(k),
    }
}

// ---------------------------------------------------------------------------------------------
// folder/*

/// `folder/get_info` (§3.2): one key → `folder_info`, several → `folder_infos`.
pub(crate) fn folder_get_info(emu: &Emulator, p: &Params) -> Result<Fields, ApiError> {
    let state = lock(&emu.state);
    let tree = &state.tree;
    let details = matches!(p.get("details"), Some("yes"));
    let keys = p.list("folder_key");
    if keys.len() > 1 {
        let infos = keys
            .iter()
            .map(|k| {
                let key = tree.folder_key(Some(k))?;
                Ok(folder_json(tree, &tree.folders[&key], details, true))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        return Ok(fields(json!({"folder_infos": infos})));
    }
    let key = folder_arg(tree, p, "folder_key", "folder_path")?;
    Ok(fields(
        json!({"folder_info": folder_json(tree, &tree.folders[&key], details, true)}),
    ))
}

/// `folder/get_content` (§3.1): one content type per call, `chunk` from 1, `chunk_size` up to
/// 1000, an empty array (and `more_chunks:"no"`) past the end. `folder_key=trash` lists the
/// trash can.
pub(crate) fn folder_get_content(emu: &Emulator, p: &Params) -> Result<Fields, ApiError> {
    let content_type = match p.get("content_type") {
        None => return Err(ApiError::new(128)),
        Some(t @ ("files" | "folders")) => t.to_string(),
        Some(_) => return Err(ApiError::new(129)),
    };
    let chunk = p.number("chunk", 1)?;
    let chunk_size = p.number("chunk_size", 100)?;
    if chunk == 0 || !(1..=1000).contains(&chunk_size) {
        return Err(ApiError::new(129));
    }
    let order_by = p.get("order_by").unwrap_or("name");
    if !matches!(order_by, "name" | "created" | "size" | "downloads") {
        return Err(ApiError::new(129));
    }
    let descending = match p.get("order_direction") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::new(129)),
    };
    let details = matches!(p.get("details"), Some("yes"));

    let state = lock(&emu.state);
    let tree = &state.tree;
    let trash = p.get("folder_key") == Some(TRASH);
    let key = if trash {
        TRASH.to_string()
    } else {
        folder_arg(tree, p, "folder_key", "folder_path")?
    };
    // Sort keys only; the JSON is built for the requested chunk alone, so
    // paging through a folder of N entries costs O(N log N) per chunk, not
    // N JSON objects per chunk.
    enum Item<'a> {
        File(&'a File),
        Folder(&'a Folder),
    }
    let mut entries: Vec<(String, u64, i64, u64, &str, Item)> = if content_type == "files" {
        let files: Vec<&File> = if trash {
            tree.files
                .values()
                .filter(|f| f.deleted_ms.is_some())
                .collect()
        } else {
            tree.folders[&key]
                .child_files
                .iter()
                .filter_map(|k| tree.files.get(k))
                .filter(|f| f.deleted_ms.is_none())
                .collect()
        };
        files
            .into_iter()
            .map(|f| {
                let name = f.name.to_lowercase();
                (
                    name,
                    f.size,
                    f.created_ms,
                    f.downloads,
                    f.key.as_str(),
                    Item::File(f),
                )
            })
            .collect()
    } else {
        let folders: Vec<&Folder> = if trash {
            tree.folders
                .values()
                .filter(|f| f.deleted_ms.is_some())
                .collect()
        } else {
            tree.folders[&key]
                .child_folders
                .iter()
                .filter_map(|k| tree.folders.get(k))
                .filter(|f| f.deleted_ms.is_none())
                .collect()
        };
        folders
            .into_iter()
            .map(|f| {
                let name = f.name.to_lowercase();
                (name, 0, f.created_ms, 0, f.key.as_str(), Item::Folder(f))
            })
            .collect()
    };
    entries.sort_by(|a, b| {
        let primary = match order_by {
            "created" => a.2.cmp(&b.2),
            "size" => a.1.cmp(&b.1),
            "downloads" => a.3.cmp(&b.3),
            _ => std::cmp::Ordering::Equal,
        };
        primary
            .then_with(|| a.0.cmp(&b.0))
            .then_with(|| a.4.cmp(b.4))
    });
    if descending {
        entries.reverse();
    }
    let start = ((chunk - 1) * chunk_size) as usize;
    let page: Vec<Value> = entries
        .iter()
        .skip(start)
        .take(chunk_size as usize)
        .map(|e| match e.5 {
            Item::File(f) => file_json(emu, tree, f, false),
            Item::Folder(f) => folder_json(tree, f, details, false),
        })
        .collect();
    let more = entries.len() > start + chunk_size as usize;
    let revision = tree
        .folders
        .get(&key)
        .map(|f| f.revision)
        .unwrap_or(tree.device_revision);
    let mut content = json!({
        "chunk_size": chunk_size.to_string(),
        "content_type": content_type,
        "chunk_number": chunk.to_string(),
        "folderkey": key,
        "more_chunks": if more { "yes" } else { "no" },
        "revision": revision.to_string(),
    });
    content[content_type.as_str()] = Value::Array(page);
    Ok(fields(
        json!({"folder_content": content, "asynchronous": "no"}),
    ))
}

/// `folder/create` (§3.3). `action_on_duplicate`: skip/replace return the existing folder, keep
/// makes `name(N)`; the default is `--folder-duplicate-action`.
pub(crate) fn folder_create(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let name = p.get("foldername").ok_or(ApiError::new(117))?.to_string();
    if !is_valid_name(&name) {
        return Err(ApiError::new(185));
    }
    let dup = p.duplicate_action(emu.config.folder_duplicate_action)?;
    let params = p.clone();
    mutate(emu, false, move |tree, rng, now| {
        let parent = folder_arg(tree, &params, "parent_key", "parent_path")?;
        if tree.folder_in_trash(&parent) {
            return Err(ApiError::new(211));
        }
        if tree.depth(&parent) + 1 > MAX_DEPTH {
            return Err(ApiError::new(167));
        }
        let key = match (tree.live_child_folder(&parent, &name), dup) {
            (Some(existing), DuplicateAction::Skip | DuplicateAction::Replace) => existing,
            (Some(_), DuplicateAction::Keep) => {
                let free = tree.free_name(&parent, &name, false);
                tree.create_folder(&parent, &free, rng, now)
            }
            (None, _) => tree.create_folder(&parent, &name, rng, now),
        };
        let f = &tree.folders[&key];
        let (created, created_utc) = created_pair(f.created_ms);
        Ok(fields(json!({
            "folder_key": key,
            "folderkey": key,
            "upload_key": &key[..key.len().min(11)],
            "parent_folderkey": parent,
            "name": f.name,
            "description": f.description,
            "created": created,
            "created_utc": created_utc,
            "privacy": f.privacy,
            "file_count": "0",
            "folder_count": "0",
            "revision": f.revision.to_string(),
            "dropbox_enabled": "no",
            "flag": "0",
        })))
    })
}

/// `folder/update` (§3.4): rename and metadata.
pub(crate) fn folder_update(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    let policy = emu.config.rename_collision;
    mutate(emu, false, move |tree, _rng, _now| {
        let key = match (params.get("folder_key"), params.get("folder_path")) {
            (None, None) => return Err(ApiError::new(113)),
            _ => folder_arg(tree, &params, "folder_key", "folder_path")?,
        };
        if key == ROOT {
            return Err(ApiError::new(114));
        }
        if tree.folder_in_trash(&key) {
            return Err(ApiError::new(211));
        }
        let privacy = match params.get("privacy") {
            None => None,
            Some(v @ ("public" | "private")) => Some(v.to_string()),
            Some(_) => return Err(ApiError::new(129)),
        };
        if let Some(name) = params.get("foldername") {
            if !is_valid_name(name) {
                return Err(ApiError::new(185));
            }
            let parent = tree.folders[&key].parent.clone().unwrap_or_default();
            let placed = placed_name(tree, &parent, name, false, policy, Some(&key))?;
            tree.rename_folder(&key, &placed);
        }
        let desc = params.get("description").map(String::from);
        if privacy.is_some() || desc.is_some() {
            tree.bump();
            let f = tree.folders.get_mut(&key).ok_or(ApiError::new(112))?;
            if let Some(v) = privacy {
                f.privacy = v;
            }
            if let Some(d) = desc {
                f.description = d;
            }
            tree.touch(&key);
        }
        Ok(Fields::new())
    })
}

/// `folder/move` (§3.5): `folder_key_src` (comma list) into `folder_key_dst` (root if empty).
pub(crate) fn folder_move(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let srcs = p.list("folder_key_src");
    if srcs.is_empty() {
        return Err(ApiError::new(113));
    }
    let dst = p.get("folder_key_dst").map(String::from);
    let policy = emu.config.move_collision;
    mutate(emu, true, move |tree, _rng, _now| {
        let dst = live_destination(tree, dst.as_deref())?;
        let mut new_names = Vec::new();
        for src in &srcs {
            let src = tree.folder_key(Some(src))?;
            if src == ROOT {
                return Err(ApiError::new(114));
            }
            if tree.folder_in_trash(&src) {
                return Err(ApiError::new(211));
            }
            if tree.is_within(&dst, &src) {
                return Err(ApiError::new(115));
            }
            let name = tree.folders[&src].name.clone();
            let placed = placed_name(tree, &dst, &name, false, policy, Some(&src))?;
            if placed != name {
                new_names.push(placed.clone());
            }
            tree.move_folder(&src, &dst, &placed);
        }
        Ok(fields(json!({"new_names": new_names})))
    })
}

/// `folder/copy` (§3.6): recursive; answers `new_folderkeys`.
pub(crate) fn folder_copy(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let srcs = p.list("folder_key_src");
    if srcs.is_empty() {
        return Err(ApiError::new(113));
    }
    let dst = p.get("folder_key_dst").map(String::from);
    let policy = emu.config.move_collision;
    let limit = emu.config.storage_limit;
    mutate(emu, true, move |tree, rng, now| {
        let dst = live_destination(tree, dst.as_deref())?;
        let mut new_keys = Vec::new();
        for src in &srcs {
            let src = tree.folder_key(Some(src))?;
            if tree.folder_in_trash(&src) {
                return Err(ApiError::new(211));
            }
            if tree.is_within(&dst, &src) {
                return Err(ApiError::new(115));
            }
            let (files, folders) = tree.folder_totals(&src);
            if files + folders > 6000 {
                return Err(ApiError::new(207));
            }
            if tree.used_bytes() + tree.folder_bytes(&src) > limit {
                return Err(ApiError::new(162));
            }
            let name = tree.folders[&src].name.clone();
            let placed = placed_name(tree, &dst, &name, false, policy, None)?;
            new_keys.push(tree.copy_folder(&src, &dst, &placed, rng, now));
        }
        Ok(fields(json!({
            "new_folderkeys": new_keys,
            "skipped_count": "0",
            "other_count": "0",
        })))
    })
}

fn folder_targets(tree: &Tree, p: &Params) -> Result<Vec<String>, ApiError> {
    let keys = p.list("folder_key");
    if keys.is_empty() {
        return match p.get("folder_path") {
            Some(path) => Ok(vec![
                tree.folder_by_path(ROOT, path).ok_or(ApiError::new(259))?,
            ]),
            None => Err(ApiError::new(113)),
        };
    }
    keys.iter().map(|k| tree.folder_key(Some(k))).collect()
}

/// `folder/delete` (§3.7): into the trash; 209 when already there; 242 over 1000 files.
pub(crate) fn folder_delete(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    mutate(emu, true, move |tree, _rng, now| {
        for key in folder_targets(tree, &params)? {
            if key == ROOT {
                return Err(ApiError::new(114));
            }
            if tree.folder_in_trash(&key) {
                return Err(ApiError::new(209));
            }
            if tree.folder_totals(&key).0 > 1000 {
                return Err(ApiError::new(242));
            }
            tree.trash_folder(&key, now);
        }
        Ok(Fields::new())
    })
}

/// `folder/purge` (§3.7): gone for good, from the trash or not.
pub(crate) fn folder_purge(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    mutate(emu, true, move |tree, _rng, _now| {
        for key in folder_targets(tree, &params)? {
            if key == ROOT {
                return Err(ApiError::new(114));
            }
            tree.purge_folder(&key);
        }
        Ok(Fields::new())
    })
}

// ---------------------------------------------------------------------------------------------
// file/*

/// A quickkey argument: 111 when it names a folder (recorded quirk, read-first #5), 110 when
/// unknown.
fn file_key(tree: &Tree, key: &str) -> Result<String, ApiError> {
    if tree.files.contains_key(key) {
        Ok(key.to_string())
    } else if tree.folders.contains_key(key) {
        Err(ApiError::new(111))
    } else {
        Err(ApiError::new(110))
    }
}

fn file_targets(tree: &Tree, p: &Params) -> Result<Vec<String>, ApiError> {
    let keys = p.list("quick_key");
    if keys.is_empty() {
        return match p.get("file_path") {
            Some(path) => Ok(vec![tree.file_by_path(path).ok_or(ApiError::new(260))?]),
            None => Err(ApiError::new(111)),
        };
    }
    if keys.len() > 500 {
        return Err(ApiError::new(129));
    }
    keys.iter().map(|k| file_key(tree, k)).collect()
}

/// `file/get_info` (§3.8): one key → `file_info`, several → `file_infos`.
pub(crate) fn file_get_info(emu: &Emulator, p: &Params) -> Result<Fields, ApiError> {
    let state = lock(&emu.state);
    let tree = &state.tree;
    let keys = file_targets(tree, p)?;
    let mut infos: Vec<Value> = keys
        .iter()
        .map(|k| file_json(emu, tree, &tree.files[k], true))
        .collect();
    if infos.len() == 1 {
        return Ok(fields(json!({"file_info": infos.remove(0)})));
    }
    Ok(fields(json!({"file_infos": infos})))
}

const LINK_TYPES: &[&str] = &[
    "view",
    "edit",
    "listen",
    "watch",
    "streaming",
    "normal_download",
    "direct_download",
    "one_time_download",
];

/// `file/get_links` (§3.9, §5): direct links point at this emulator's download host and expire
/// after `--link-ttl`. A file in the trash gets an entry with only `quickkey` and a plain-string
/// `error`, as recorded (read-first #4).
pub(crate) fn file_get_links(emu: &Emulator, p: &Params) -> Result<Fields, ApiError> {
    let types: Vec<String> = match p.list("link_type") {
        t if t.is_empty() => vec![
            "view".into(),
            "normal_download".into(),
            "direct_download".into(),
        ],
        t => t,
    };
    if types.iter().any(|t| !LINK_TYPES.contains(&t.as_str())) {
        return Err(ApiError::new(129));
    }
    let now = now_ms();
    let base = &emu.base_url;
    let mut state = lock(&emu.state);
    state.links.retain(|_, l| l.expires_ms > now);
    let keys = file_targets(&state.tree, p)?;
    let mut links = Vec::new();
    for key in keys {
        let f = state.tree.files[&key].clone();
        if state.tree.file_in_trash(&f) {
            links.push(json!({"quickkey": key, "error": "User lacks permissions"}));
            continue;
        }
        let mut entry = json!({"quickkey": key});
        for t in &types {
            match t.as_str() {
                "direct_download" => {
                    let token = random_hex(&mut state.rng, 32);
                    state.links.insert(
                        token.clone(),
                        super::state::Link {
                            quickkey: key.clone(),
                            expires_ms: now + emu.config.link_ttl as i64 * 1000,
                        },
                    );
                    entry["direct_download"] =
                        json!(format!("{base}/dl/{token}/{key}/{}", enc(&f.name)));
                }
                "view" => entry["view"] = json!(format!("{base}/view/{key}/{}/file", enc(&f.name))),
                "normal_download" => {
                    entry["normal_download"] =
                        json!(format!("{base}/file/{key}/{}/file", enc(&f.name)))
                }
                other => {
                    entry[format!("{other}_error_message")] =
                        json!("This link type is not available for this file")
                }
            }
        }
        links.push(entry);
    }
    drop(state);
    let used_mb = lock(&emu.stats).download_bytes / (1024 * 1024);
    let free_mb = (50u64 * 1024).saturating_sub(used_mb);
    Ok(fields(json!({
        "links": links,
        "direct_download_free_bandwidth": free_mb.to_string(),
        "one_time_key_request_count": "0",
        "one_time_key_request_max_count": "100",
    })))
}

/// `file/update` (§3.10): rename and metadata.
pub(crate) fn file_update(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    let policy = emu.config.rename_collision;
    let forbid_ext = emu.config.forbid_extension_change;
    mutate(emu, false, move |tree, _rng, _now| {
        let keys = file_targets(tree, &params)?;
        let [key] = keys.as_slice() else {
            return Err(ApiError::new(129));
        };
        let f = tree.files[key].clone();
        if tree.file_in_trash(&f) {
            return Err(ApiError::new(211));
        }
        let privacy = match params.get("privacy") {
            None => None,
            Some(v @ ("public" | "private")) => Some(v.to_string()),
            Some(_) => return Err(ApiError::new(129)),
        };
        if let Some(name) = params.get("filename") {
            if !is_valid_name(name) {
                return Err(ApiError::new(118));
            }
            if forbid_ext && changes_extension(&f.name, name) {
                return Err(ApiError::new(106));
            }
            let placed = placed_name(tree, &f.parent, name, true, policy, Some(key))?;
            tree.rename_file(key, &placed);
        }
        let desc = params.get("description").map(String::from);
        if privacy.is_some() || desc.is_some() {
            let rev = tree.bump();
            let f = tree.files.get_mut(key).ok_or(ApiError::new(110))?;
            f.revision = rev;
            if let Some(v) = privacy {
                f.privacy = v;
            }
            if let Some(d) = desc {
                f.description = d;
            }
            let parent = f.parent.clone();
            tree.touch(&parent);
        }
        Ok(Fields::new())
    })
}

/// `file/move` (§3.11): `quick_key` (comma list) into `folder_key` (root if empty).
pub(crate) fn file_move(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    let policy = emu.config.move_collision;
    mutate(emu, true, move |tree, _rng, _now| {
        let keys = file_targets(tree, &params)?;
        let dst = live_destination(tree, params.get("folder_key"))?;
        let mut new_names = Vec::new();
        for key in keys {
            let f = tree.files[&key].clone();
            if tree.file_in_trash(&f) {
                return Err(ApiError::new(211));
            }
            let placed = placed_name(tree, &dst, &f.name, true, policy, Some(&key))?;
            if placed != f.name {
                new_names.push(placed.clone());
            }
            tree.move_file(&key, &dst, &placed);
        }
        Ok(fields(json!({"new_names": new_names})))
    })
}

/// `file/copy` (§3.12): answers `new_quickkeys`; 162 past the storage limit.
pub(crate) fn file_copy(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    let policy = emu.config.move_collision;
    let limit = emu.config.storage_limit;
    mutate(emu, true, move |tree, rng, now| {
        let keys = file_targets(tree, &params)?;
        let dst = live_destination(tree, params.get("folder_key"))?;
        let mut new_keys = Vec::new();
        for key in keys {
            let f = tree.files[&key].clone();
            if tree.file_in_trash(&f) {
                return Err(ApiError::new(211));
            }
            if tree.used_bytes() + f.size > limit {
                return Err(ApiError::new(162));
            }
            let placed = placed_name(tree, &dst, &f.name, true, policy, None)?;
            new_keys.push(tree.create_file(&dst, &placed, &f.hash, f.size, rng, now));
        }
        Ok(fields(json!({
            "new_quickkeys": new_keys,
            "skipped_count": "0",
            "other_count": "0",
        })))
    })
}

/// `file/delete` (§3.13): into the trash; 210 when already there.
pub(crate) fn file_delete(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    mutate(emu, true, move |tree, _rng, now| {
        for key in file_targets(tree, &params)? {
            if tree.file_in_trash(&tree.files[&key]) {
                return Err(ApiError::new(210));
            }
            tree.trash_file(&key, now);
        }
        Ok(Fields::new())
    })
}

/// `file/purge` (§3.13): gone for good.
pub(crate) fn file_purge(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    mutate(emu, true, move |tree, _rng, _now| {
        for key in file_targets(tree, &params)? {
            tree.purge_file(&key);
        }
        Ok(Fields::new())
    })
}
