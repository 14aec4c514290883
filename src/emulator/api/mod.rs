//! The API actions other than uploads, one function per action named after it (`user/*` in
//! `user`, `folder/*` in `folder`, `file/*` in `file`, `device/get_status` and
//! `system/get_limits` in `system`), each turning request parameters into the fields of a
//! success envelope or an [`ApiError`].
//!
//! This file holds what they share: the error and parameter types, the JSON shapes of files and
//! folders, and [`mutate`], the one way a call changes the tree. Shapes follow §3 of the spec
//! and the recorded fixtures: every number is a string except `error` and
//! `new_device_revision`, flags are `"yes"`/`"no"`.

mod file;
mod folder;
mod system;
mod user;

pub(crate) use file::*;
pub(crate) use folder::*;
pub(crate) use system::*;
pub(crate) use user::*;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::DuplicateAction;
use super::state::{Emulator, File, Folder, ROOT, State, Tree, lock, now_ms};

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

/// Everything but RFC 3986 unreserved characters is escaped in link paths.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn enc(name: &str) -> String {
    utf8_percent_encode(name, PATH_SEGMENT).to_string()
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

/// Runs a mutation. With several targets (`multi`) it works on a copy of the tree that replaces
/// the real one only on success, so a comma list applies completely or not at all.
/// With the `async_ops` fault and `asyncable`, the call answers at once with
/// `asynchronous:"yes"` and the change lands after `async_ms` (other mutations meanwhile: 208).
fn mutate<F>(emu: &Arc<Emulator>, asyncable: bool, multi: bool, op: F) -> Result<Fields, ApiError>
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
    let deferred = asyncable && async_ops;
    if !deferred && !multi {
        // one target: every check comes before the first change, so no copy is needed
        let State { tree, rng, .. } = &mut *state;
        let mut out = op(tree, rng, now)?;
        out.insert("new_device_revision".into(), json!(tree.device_revision));
        out.insert("asynchronous".into(), json!("no"));
        drop(state);
        emu.mark_dirty();
        return Ok(out);
    }
    let mut tree = state.tree.clone();
    let rng_before = state.rng.clone();
    let mut rng = state.rng.clone();
    let mut out = op(&mut tree, &mut rng, now)?;
    out.insert("new_device_revision".into(), json!(tree.device_revision));
    if deferred {
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
