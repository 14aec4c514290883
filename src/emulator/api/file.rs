//! `file/*` (§3.8–3.13): info, links, rename, move, copy, trash and purge.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{ApiError, Fields, Params, enc, fields, file_json, live_destination, mutate};
use crate::emulator::state::{
    Emulator, Tree, changes_extension, is_valid_name, lock, now_ms, placed_name, random_hex,
};

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
    let broken = {
        let faults = lock(&emu.faults);
        faults.link_errors(&mut lock(&emu.fault_rng), keys.len())
    };
    let mut links = Vec::new();
    for (key, broken) in keys.into_iter().zip(broken) {
        let f = state.tree.files[&key].clone();
        if broken {
            emu.count_fault("link_error");
        }
        if broken || state.tree.file_in_trash(&f) {
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
                        crate::emulator::state::Link {
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
    mutate(emu, false, false, move |tree, _rng, _now| {
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
    mutate(
        emu,
        true,
        p.list("quick_key").len() > 1,
        move |tree, _rng, _now| {
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
        },
    )
}

/// `file/copy` (§3.12): answers `new_quickkeys`; 162 past the storage limit.
pub(crate) fn file_copy(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    let policy = emu.config.move_collision;
    let limit = emu.config.storage_limit;
    mutate(
        emu,
        true,
        p.list("quick_key").len() > 1,
        move |tree, rng, now| {
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
        },
    )
}

/// `file/delete` (§3.13): into the trash; 210 when already there.
pub(crate) fn file_delete(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    mutate(
        emu,
        true,
        p.list("quick_key").len() > 1,
        move |tree, _rng, now| {
            for key in file_targets(tree, &params)? {
                if tree.file_in_trash(&tree.files[&key]) {
                    return Err(ApiError::new(210));
                }
                tree.trash_file(&key, now);
            }
            Ok(Fields::new())
        },
    )
}

/// `file/purge` (§3.13): gone for good.
pub(crate) fn file_purge(emu: &Arc<Emulator>, p: &Params) -> Result<Fields, ApiError> {
    let params = p.clone();
    mutate(
        emu,
        true,
        p.list("quick_key").len() > 1,
        move |tree, _rng, _now| {
            for key in file_targets(tree, &params)? {
                tree.purge_file(&key);
            }
            Ok(Fields::new())
        },
    )
}
