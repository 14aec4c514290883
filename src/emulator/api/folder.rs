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
    // sort light rows first; JSON is built for the requested page only
    struct Row<'a> {
        name: String,
        size: u64,
        created: i64,
        downloads: u64,
        key: &'a str,
    }
    let mut entries: Vec<Row> = if content_type == "files" {
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
            .map(|f| Row {
                name: f.name.to_lowercase(),
                size: f.size,
                created: f.created_ms,
                downloads: f.downloads,
                key: &f.key,
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
            .map(|f| Row {
                name: f.name.to_lowercase(),
                size: 0,
                created: f.created_ms,
                downloads: 0,
                key: &f.key,
            })
            .collect()
    };
    entries.sort_by(|a, b| {
        let primary = match order_by {
            "created" => a.created.cmp(&b.created),
            "size" => a.size.cmp(&b.size),
            "downloads" => a.downloads.cmp(&b.downloads),
            _ => std::cmp::Ordering::Equal,
        };
        primary
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.key.cmp(b.key))
    });
    if descending {
        entries.reverse();
    }
    let start = ((chunk - 1) * chunk_size) as usize;
    let page: Vec<Value> = entries
        .iter()
        .skip(start)
        .take(chunk_size as usize)
        .filter_map(|row| {
            if content_type == "files" {
                tree.files
                    .get(row.key)
                    .map(|f| file_json(emu, tree, f, false))
            } else {
                let f = tree.folders.get(row.key)?;
                Some(folder_json(tree, f, details, false))
            }
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
