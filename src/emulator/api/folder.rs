//! `folder/*` (§3.1–3.7): listing, info, create, rename, move, copy, trash and purge.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{
    ApiError, Fields, Params, created_pair, fields, file_json, folder_arg, folder_json,
    live_destination, mutate,
};
use crate::emulator::DuplicateAction;
use crate::emulator::state::{
    Emulator, File, Folder, MAX_DEPTH, ROOT, TRASH, Tree, is_valid_name, lock, placed_name,
};

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

/// The parameters of one `folder/get_content` call.
struct ListingQuery {
    files: bool,
    chunk: u64,
    chunk_size: u64,
    order_by: &'static str,
    descending: bool,
    details: bool,
}

impl ListingQuery {
    /// `content_type` is required (128); bad values of the others answer 129.
    fn parse(p: &Params) -> Result<Self, ApiError> {
        let files = match p.get("content_type") {
            None => return Err(ApiError::new(128)),
            Some("files") => true,
            Some("folders") => false,
            Some(_) => return Err(ApiError::new(129)),
        };
        let chunk = p.number("chunk", 1)?;
        let chunk_size = p.number("chunk_size", 100)?;
        if chunk == 0 || !(1..=1000).contains(&chunk_size) {
            return Err(ApiError::new(129));
        }
        // `time` (what AL/OL send for "time") is not a documented value (§7.4)
        let order_by = match p.get("order_by") {
            None | Some("name") => "name",
            Some("created") => "created",
            Some("size") => "size",
            Some("downloads") => "downloads",
            Some(_) => return Err(ApiError::new(129)),
        };
        let descending = match p.get("order_direction") {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(ApiError::new(129)),
        };
        Ok(ListingQuery {
            files,
            chunk,
            chunk_size,
            order_by,
            descending,
            details: p.get("details") == Some("yes"),
        })
    }

    fn content_type(&self) -> &'static str {
        if self.files { "files" } else { "folders" }
    }
}

/// What a listing is sorted by; JSON is rendered only for the requested chunk.
struct Row<'a> {
    name: String,
    size: u64,
    created: i64,
    downloads: u64,
    key: &'a str,
}

/// The entries of a folder (or of the trash can) of one content type, unsorted.
fn listing_rows<'a>(tree: &'a Tree, key: &str, files: bool) -> Vec<Row<'a>> {
    let trash = key == TRASH;
    if files {
        let in_listing = |f: &&File| f.deleted_ms.is_some() == trash;
        let all: Vec<&File> = match tree.folders.get(key) {
            Some(dir) if !trash => dir
                .child_files
                .iter()
                .filter_map(|k| tree.files.get(k))
                .filter(in_listing)
                .collect(),
            _ => tree.files.values().filter(in_listing).collect(),
        };
        return all
            .into_iter()
            .map(|f| Row {
                name: f.name.to_lowercase(),
                size: f.size,
                created: f.created_ms,
                downloads: f.downloads,
                key: &f.key,
            })
            .collect();
    }
    let in_listing = |f: &&Folder| f.deleted_ms.is_some() == trash;
    let all: Vec<&Folder> = match tree.folders.get(key) {
        Some(dir) if !trash => dir
            .child_folders
            .iter()
            .filter_map(|k| tree.folders.get(k))
            .filter(in_listing)
            .collect(),
        _ => tree.folders.values().filter(in_listing).collect(),
    };
    all.into_iter()
        .map(|f| Row {
            name: f.name.to_lowercase(),
            size: 0,
            created: f.created_ms,
            downloads: 0,
            key: &f.key,
        })
        .collect()
}

/// Sorts by the requested field, then by name, then by key (a stable order across chunks).
fn sort_rows(rows: &mut [Row], q: &ListingQuery) {
    rows.sort_by(|a, b| {
        let primary = match q.order_by {
            "created" => a.created.cmp(&b.created),
            "size" => a.size.cmp(&b.size),
            "downloads" => a.downloads.cmp(&b.downloads),
            _ => std::cmp::Ordering::Equal,
        };
        primary
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.key.cmp(b.key))
    });
    if q.descending {
        rows.reverse();
    }
}

/// `folder/get_content` (§3.1): one content type per call, `chunk` from 1, `chunk_size` up to
/// 1000, an empty array (and `more_chunks:"no"`) past the end. `folder_key=trash` lists the
/// trash can.
pub(crate) fn folder_get_content(emu: &Emulator, p: &Params) -> Result<Fields, ApiError> {
    let q = ListingQuery::parse(p)?;
    let state = lock(&emu.state);
    let tree = &state.tree;
    let key = match p.get("folder_key") {
        Some(TRASH) => TRASH.to_string(),
        _ => folder_arg(tree, p, "folder_key", "folder_path")?,
    };

    let mut rows = listing_rows(tree, &key, q.files);
    sort_rows(&mut rows, &q);
    let start = ((q.chunk - 1) * q.chunk_size) as usize;
    let page: Vec<Value> = rows
        .iter()
        .skip(start)
        .take(q.chunk_size as usize)
        .filter_map(|row| match q.files {
            true => Some(file_json(emu, tree, tree.files.get(row.key)?, false)),
            false => Some(folder_json(
                tree,
                tree.folders.get(row.key)?,
                q.details,
                false,
            )),
        })
        .collect();

    let more = rows.len() > start + q.chunk_size as usize;
    let revision = tree
        .folders
        .get(&key)
        .map_or(tree.device_revision, |f| f.revision);
    let mut content = json!({
        "chunk_size": q.chunk_size.to_string(),
        "content_type": q.content_type(),
        "chunk_number": q.chunk.to_string(),
        "folderkey": key,
        "more_chunks": if more { "yes" } else { "no" },
        "revision": revision.to_string(),
    });
    content[q.content_type()] = Value::Array(page);
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
    mutate(emu, false, false, move |tree, rng, now| {
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
    mutate(emu, false, false, move |tree, _rng, _now| {
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
    mutate(emu, true, srcs.len() > 1, move |tree, _rng, _now| {
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
    mutate(emu, true, srcs.len() > 1, move |tree, rng, now| {
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
    mutate(
        emu,
        true,
        p.list("folder_key").len() > 1,
        move |tree, _rng, now| {
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
        },
    )
}

/// `folder/purge` (§3.7): gone for good, from the trash or not.
pub(crate) fn folder_purge(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    mutate(
        emu,
        true,
        p.list("folder_key").len() > 1,
        move |tree, _rng, _now| {
            for key in folder_targets(tree, &params)? {
                if key == ROOT {
                    return Err(ApiError::new(114));
                }
                tree.purge_folder(&key);
            }
            Ok(Fields::new())
        },
    )
}
