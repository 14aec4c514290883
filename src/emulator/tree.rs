//! The folder tree of the emulated account: folders and files keyed by folderkey / quickkey,
//! name rules, collision renames, and the tree operations the API actions are built from.
//!
//! Operations here check nothing the caller must check (names, trash, collisions): the API
//! actions validate first, then call them. Every change bumps the device revision and the
//! revision of the folders whose content changed. Each folder keeps the key sets of its
//! children; they are rebuilt on load, not saved.

use std::collections::{BTreeSet, HashMap};

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Collision;
use super::api::ApiError;
use super::state::random_key;

/// The root folder's key as reported on the wire (`folder/get_info` recorded `"myfiles"`).
pub(crate) const ROOT: &str = "myfiles";
/// The moniker for the trash can.
pub(crate) const TRASH: &str = "trash";
/// Longest accepted name, in characters (§6.1).
pub(crate) const MAX_NAME_CHARS: usize = 255;
/// Deepest folder nesting (`system/get_limits` `folder_depth_limit`).
pub(crate) const MAX_DEPTH: usize = 130;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Folder {
    pub key: String,
    pub name: String,
    /// `None` for the root only.
    pub parent: Option<String>,
    pub created_ms: i64,
    pub revision: u64,
    pub description: String,
    pub privacy: String,
    /// When it was moved to the trash, if it was.
    pub deleted_ms: Option<i64>,
    #[serde(skip)]
    pub child_folders: BTreeSet<String>,
    #[serde(skip)]
    pub child_files: BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct File {
    pub key: String,
    pub name: String,
    pub parent: String,
    pub hash: String,
    pub size: u64,
    pub created_ms: i64,
    pub revision: u64,
    pub description: String,
    pub privacy: String,
    pub deleted_ms: Option<i64>,
    pub downloads: u64,
}

/// The folder tree. Items in the trash stay here with `deleted_ms` set until purged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Tree {
    pub device_revision: u64,
    pub folders: HashMap<String, Folder>,
    pub files: HashMap<String, File>,
    #[serde(skip)]
    pub case_insensitive: bool,
    /// (parent, normalised name) → key of the file not in the trash with that name.
    #[serde(skip)]
    file_names: HashMap<(String, String), String>,
    /// The same for folders.
    #[serde(skip)]
    folder_names: HashMap<(String, String), String>,
}

/// Whether `name` is acceptable for a file or folder (§6.1): 1–255 characters, no `/`, `\` or
/// control characters, not `.` or `..`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// `name(N).ext`: the pattern observed for auto-renamed duplicates (`test4(14).jpg`, §6.2).
pub(crate) fn numbered_name(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name}({n})"),
    }
}

fn extension(name: &str) -> Option<&str> {
    name.rfind('.').filter(|&d| d > 0).map(|d| &name[d + 1..])
}

/// Whether renaming `old` to `new` changes the extension (error 106 when forbidden).
pub(crate) fn changes_extension(old: &str, new: &str) -> bool {
    extension(old).map(str::to_lowercase) != extension(new).map(str::to_lowercase)
}

impl Tree {
    pub fn new(now: i64) -> Self {
        let mut folders = HashMap::new();
        folders.insert(
            ROOT.to_string(),
            Folder {
                key: ROOT.to_string(),
                name: ROOT.to_string(),
                parent: None,
                created_ms: now,
                revision: 1,
                description: String::new(),
                privacy: "private".to_string(),
                deleted_ms: None,
                child_folders: BTreeSet::new(),
                child_files: BTreeSet::new(),
            },
        );
        Tree {
            device_revision: 1,
            folders,
            files: HashMap::new(),
            case_insensitive: false,
            file_names: HashMap::new(),
            folder_names: HashMap::new(),
        }
    }

    /// Rebuilds the child key sets from the parent links (after loading).
    pub fn rebuild_children(&mut self) {
        self.file_names.clear();
        self.folder_names.clear();
        let keys: Vec<String> = self.files.keys().cloned().collect();
        for k in keys {
            self.index_file(&k);
        }
        let keys: Vec<String> = self.folders.keys().cloned().collect();
        for k in keys {
            self.index_folder(&k);
        }
        for f in self.folders.values_mut() {
            f.child_folders.clear();
            f.child_files.clear();
        }
        let pairs: Vec<(String, String)> = self
            .folders
            .values()
            .filter_map(|f| f.parent.clone().map(|p| (p, f.key.clone())))
            .collect();
        for (p, k) in pairs {
            if let Some(parent) = self.folders.get_mut(&p) {
                parent.child_folders.insert(k);
            }
        }
        let pairs: Vec<(String, String)> = self
            .files
            .values()
            .map(|f| (f.parent.clone(), f.key.clone()))
            .collect();
        for (p, k) in pairs {
            if let Some(parent) = self.folders.get_mut(&p) {
                parent.child_files.insert(k);
            }
        }
    }

    /// Files and folders not in the trash (the root not counted).
    pub fn live_counts(&self) -> (u64, u64) {
        let files = self
            .files
            .values()
            .filter(|f| !self.file_in_trash(f))
            .count() as u64;
        let folders = self
            .folders
            .keys()
            .filter(|k| k.as_str() != ROOT && !self.folder_in_trash(k))
            .count() as u64;
        (files, folders)
    }

    /// Every live item as `{path, kind, size, hash}` (folders: kind `folder`, no size or hash),
    /// sorted by path; two items sharing a name in one folder appear twice.
    pub fn live_items(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT.to_string(), String::new())];
        while let Some((key, path)) = stack.pop() {
            let Some(folder) = self.folders.get(&key) else {
                continue;
            };
            for f in folder.child_files.iter().filter_map(|k| self.files.get(k)) {
                if f.deleted_ms.is_none() {
                    out.push(json!({
                        "path": format!("{path}/{}", f.name),
                        "kind": "file",
                        "size": f.size,
                        "hash": f.hash,
                    }));
                }
            }
            for sub in folder
                .child_folders
                .iter()
                .filter_map(|k| self.folders.get(k))
            {
                if sub.deleted_ms.is_none() {
                    let sub_path = format!("{path}/{}", sub.name);
                    out.push(json!({"path": sub_path, "kind": "folder"}));
                    stack.push((sub.key.clone(), sub_path));
                }
            }
        }
        out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        out
    }

    /// Bytes used by every file not purged.
    pub fn used_bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    /// Counts a mutation and returns the new device revision.
    pub fn bump(&mut self) -> u64 {
        self.device_revision += 1;
        self.device_revision
    }

    /// Marks a folder's content as changed at the current device revision.
    pub fn touch(&mut self, folder: &str) {
        let rev = self.device_revision;
        if let Some(f) = self.folders.get_mut(folder) {
            f.revision = rev;
        }
    }

    #[cfg(test)]
    fn names_equal(&self, a: &str, b: &str) -> bool {
        if self.case_insensitive {
            a.to_lowercase() == b.to_lowercase()
        } else {
            a == b
        }
    }

    /// Maps a wire folder key (empty/absent/`myfiles` = root) to a stored key.
    pub fn folder_key(&self, key: Option<&str>) -> Result<String, ApiError> {
        match key {
            None | Some("") | Some(ROOT) => Ok(ROOT.to_string()),
            Some(k) if self.folders.contains_key(k) => Ok(k.to_string()),
            Some(_) => Err(ApiError::new(112)),
        }
    }

    /// Resolves a slash path ("/a/b") below `from` to a live folder.
    pub fn folder_by_path(&self, from: &str, path: &str) -> Option<String> {
        let mut cur = from.to_string();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = self.live_child_folder(&cur, part)?;
        }
        Some(cur)
    }

    /// Resolves a slash path ("/a/b.txt") to a live file.
    pub fn file_by_path(&self, path: &str) -> Option<String> {
        let path = path.trim_end_matches('/');
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = self.folder_by_path(ROOT, dir)?;
        self.live_child_file(&parent, name)
    }

    pub fn folder_in_trash(&self, key: &str) -> bool {
        let mut cur = Some(key.to_string());
        while let Some(k) = cur {
            match self.folders.get(&k) {
                Some(f) if f.deleted_ms.is_some() => return true,
                Some(f) => cur = f.parent.clone(),
                None => return false,
            }
        }
        false
    }

    pub fn file_in_trash(&self, file: &File) -> bool {
        file.deleted_ms.is_some() || self.folder_in_trash(&file.parent)
    }

    fn name_key(&self, parent: &str, name: &str) -> (String, String) {
        let name = if self.case_insensitive {
            name.to_lowercase()
        } else {
            name.to_string()
        };
        (parent.to_string(), name)
    }

    /// Adds a file to the name index (unless it is in the trash).
    fn index_file(&mut self, key: &str) {
        let Some(f) = self.files.get(key) else { return };
        if f.deleted_ms.is_none() {
            let k = self.name_key(&f.parent, &f.name);
            self.file_names.insert(k, key.to_string());
        }
    }

    fn unindex_file(&mut self, key: &str) {
        let Some(f) = self.files.get(key) else { return };
        let k = self.name_key(&f.parent, &f.name);
        if self.file_names.get(&k).is_some_and(|v| v == key) {
            self.file_names.remove(&k);
        }
    }

    fn index_folder(&mut self, key: &str) {
        let Some(f) = self.folders.get(key) else {
            return;
        };
        if let (None, Some(parent)) = (f.deleted_ms, &f.parent) {
            let k = self.name_key(parent, &f.name);
            self.folder_names.insert(k, key.to_string());
        }
    }

    fn unindex_folder(&mut self, key: &str) {
        let Some(f) = self.folders.get(key) else {
            return;
        };
        let Some(parent) = &f.parent else { return };
        let k = self.name_key(parent, &f.name);
        if self.folder_names.get(&k).is_some_and(|v| v == key) {
            self.folder_names.remove(&k);
        }
    }

    /// The folder named `name` in `parent`, not itself in the trash.
    pub fn live_child_folder(&self, parent: &str, name: &str) -> Option<String> {
        self.folder_names.get(&self.name_key(parent, name)).cloned()
    }

    /// The file named `name` in `parent`, not itself in the trash.
    pub fn live_child_file(&self, parent: &str, name: &str) -> Option<String> {
        self.file_names.get(&self.name_key(parent, name)).cloned()
    }

    /// The same lookup by walking the children (the index's reference, for tests).
    #[cfg(test)]
    fn scan_child_folder(&self, parent: &str, name: &str) -> Option<String> {
        let p = self.folders.get(parent)?;
        p.child_folders
            .iter()
            .filter_map(|k| self.folders.get(k))
            .find(|f| f.deleted_ms.is_none() && self.names_equal(&f.name, name))
            .map(|f| f.key.clone())
    }

    #[cfg(test)]
    fn scan_child_file(&self, parent: &str, name: &str) -> Option<String> {
        let p = self.folders.get(parent)?;
        p.child_files
            .iter()
            .filter_map(|k| self.files.get(k))
            .find(|f| f.deleted_ms.is_none() && self.names_equal(&f.name, name))
            .map(|f| f.key.clone())
    }

    /// The first `name(N).ext` not taken in `parent` (among files or folders).
    pub fn free_name(&self, parent: &str, name: &str, is_file: bool) -> String {
        let taken = |n: &str| {
            if is_file {
                self.live_child_file(parent, n).is_some()
            } else {
                self.live_child_folder(parent, n).is_some()
            }
        };
        if !taken(name) {
            return name.to_string();
        }
        (1..)
            .map(|n| numbered_name(name, n))
            .find(|candidate| !taken(candidate))
            .unwrap_or_else(|| name.to_string())
    }

    /// Depth of a folder (root = 0).
    pub fn depth(&self, key: &str) -> usize {
        let mut depth = 0;
        let mut cur = self.folders.get(key).and_then(|f| f.parent.clone());
        while let Some(k) = cur {
            depth += 1;
            cur = self.folders.get(&k).and_then(|f| f.parent.clone());
        }
        depth
    }

    /// Levels of folders below `key` (0 for a folder without subfolders).
    pub fn height(&self, key: &str) -> usize {
        self.folders.get(key).map_or(0, |f| {
            f.child_folders
                .iter()
                .map(|k| 1 + self.height(k))
                .max()
                .unwrap_or(0)
        })
    }

    /// Whether `key` is `ancestor` or lies below it.
    pub fn is_within(&self, key: &str, ancestor: &str) -> bool {
        let mut cur = Some(key.to_string());
        while let Some(k) = cur {
            if k == ancestor {
                return true;
            }
            cur = self.folders.get(&k).and_then(|f| f.parent.clone());
        }
        false
    }

    fn new_folder_key(&self, rng: &mut StdRng) -> String {
        loop {
            let k = random_key(rng, 13);
            if !self.folders.contains_key(&k) {
                return k;
            }
        }
    }

    pub fn new_quickkey(&self, rng: &mut StdRng) -> String {
        loop {
            let k = random_key(rng, 15);
            if !self.files.contains_key(&k) {
                return k;
            }
        }
    }

    /// Adds a folder (no checks: the caller validated name and parent).
    pub fn create_folder(
        &mut self,
        parent: &str,
        name: &str,
        rng: &mut StdRng,
        now: i64,
    ) -> String {
        let key = self.new_folder_key(rng);
        let rev = self.bump();
        self.folders.insert(
            key.clone(),
            Folder {
                key: key.clone(),
                name: name.to_string(),
                parent: Some(parent.to_string()),
                created_ms: now,
                revision: rev,
                description: String::new(),
                privacy: "private".to_string(),
                deleted_ms: None,
                child_folders: BTreeSet::new(),
                child_files: BTreeSet::new(),
            },
        );
        if let Some(p) = self.folders.get_mut(parent) {
            p.child_folders.insert(key.clone());
        }
        self.index_folder(&key);
        self.touch(parent);
        key
    }

    /// Adds a file (no checks: the caller validated name and parent).
    pub fn create_file(
        &mut self,
        parent: &str,
        name: &str,
        hash: &str,
        size: u64,
        rng: &mut StdRng,
        now: i64,
    ) -> String {
        let key = self.new_quickkey(rng);
        let rev = self.bump();
        self.files.insert(
            key.clone(),
            File {
                key: key.clone(),
                name: name.to_string(),
                parent: parent.to_string(),
                hash: hash.to_string(),
                size,
                created_ms: now,
                revision: rev,
                description: String::new(),
                privacy: "private".to_string(),
                deleted_ms: None,
                downloads: 0,
            },
        );
        if let Some(p) = self.folders.get_mut(parent) {
            p.child_files.insert(key.clone());
        }
        self.index_file(&key);
        self.touch(parent);
        key
    }

    /// A new revision of an existing file: same quickkey, new content.
    pub fn replace_content(&mut self, key: &str, hash: &str, size: u64) {
        let rev = self.bump();
        let parent = match self.files.get_mut(key) {
            Some(f) => {
                f.hash = hash.to_string();
                f.size = size;
                f.revision = rev;
                f.parent.clone()
            }
            None => return,
        };
        self.touch(&parent);
    }

    /// Creates missing folders of `path` below `from` (no name checks beyond skipping invalid
    /// components); returns the last folder's key.
    pub fn mkdir_p(&mut self, from: &str, path: &str, rng: &mut StdRng, now: i64) -> String {
        let mut cur = from.to_string();
        for part in path
            .split('/')
            .filter(|p| !p.is_empty() && is_valid_name(p))
        {
            cur = match self.live_child_folder(&cur, part) {
                Some(k) => k,
                None => self.create_folder(&cur, part, rng, now),
            };
        }
        cur
    }

    pub fn rename_folder(&mut self, key: &str, name: &str) {
        self.bump();
        self.unindex_folder(key);
        let parent = match self.folders.get_mut(key) {
            Some(f) => {
                f.name = name.to_string();
                f.parent.clone()
            }
            None => return,
        };
        self.index_folder(key);
        self.touch(key);
        if let Some(p) = parent {
            self.touch(&p);
        }
    }

    pub fn rename_file(&mut self, key: &str, name: &str) {
        let rev = self.bump();
        self.unindex_file(key);
        let parent = match self.files.get_mut(key) {
            Some(f) => {
                f.name = name.to_string();
                f.revision = rev;
                f.parent.clone()
            }
            None => return,
        };
        self.index_file(key);
        self.touch(&parent);
    }

    pub fn move_folder(&mut self, key: &str, dst: &str, name: &str) {
        self.bump();
        self.unindex_folder(key);
        let old_parent = match self.folders.get_mut(key) {
            Some(f) => {
                f.name = name.to_string();
                f.parent.replace(dst.to_string())
            }
            None => return,
        };
        if let Some(op) = &old_parent {
            if let Some(p) = self.folders.get_mut(op) {
                p.child_folders.remove(key);
            }
            self.touch(op);
        }
        if let Some(p) = self.folders.get_mut(dst) {
            p.child_folders.insert(key.to_string());
        }
        self.index_folder(key);
        self.touch(dst);
        self.touch(key);
    }

    pub fn move_file(&mut self, key: &str, dst: &str, name: &str) {
        let rev = self.bump();
        self.unindex_file(key);
        let old_parent = match self.files.get_mut(key) {
            Some(f) => {
                f.name = name.to_string();
                f.revision = rev;
                std::mem::replace(&mut f.parent, dst.to_string())
            }
            None => return,
        };
        if let Some(p) = self.folders.get_mut(&old_parent) {
            p.child_files.remove(key);
        }
        self.touch(&old_parent);
        if let Some(p) = self.folders.get_mut(dst) {
            p.child_files.insert(key.to_string());
        }
        self.index_file(key);
        self.touch(dst);
    }

    /// Copies a folder and everything live below it into `dst` as `name`; returns the new key.
    pub fn copy_folder(
        &mut self,
        key: &str,
        dst: &str,
        name: &str,
        rng: &mut StdRng,
        now: i64,
    ) -> String {
        let new_key = self.create_folder(dst, name, rng, now);
        let (sub_folders, sub_files) = match self.folders.get(key) {
            Some(f) => (f.child_folders.clone(), f.child_files.clone()),
            None => return new_key,
        };
        for fk in sub_files {
            let Some(f) = self.files.get(&fk).cloned() else {
                continue;
            };
            if f.deleted_ms.is_none() {
                self.create_file(&new_key, &f.name, &f.hash, f.size, rng, now);
            }
        }
        for sk in sub_folders {
            let Some(sub) = self.folders.get(&sk).cloned() else {
                continue;
            };
            if sub.deleted_ms.is_none() {
                self.copy_folder(&sk, &new_key, &sub.name, rng, now);
            }
        }
        new_key
    }

    /// Bytes of live files below a folder.
    pub fn folder_bytes(&self, key: &str) -> u64 {
        let Some(f) = self.folders.get(key) else {
            return 0;
        };
        let files: u64 = f
            .child_files
            .iter()
            .filter_map(|k| self.files.get(k))
            .filter(|f| f.deleted_ms.is_none())
            .map(|f| f.size)
            .sum();
        let sub: u64 = f
            .child_folders
            .iter()
            .filter(|k| self.folders.get(*k).is_some_and(|s| s.deleted_ms.is_none()))
            .map(|k| self.folder_bytes(k))
            .sum();
        files + sub
    }

    /// (files, folders) live below a folder, recursively.
    pub fn folder_totals(&self, key: &str) -> (u64, u64) {
        let Some(f) = self.folders.get(key) else {
            return (0, 0);
        };
        let mut files = f
            .child_files
            .iter()
            .filter_map(|k| self.files.get(k))
            .filter(|f| f.deleted_ms.is_none())
            .count() as u64;
        let mut folders = 0;
        for k in &f.child_folders {
            if self.folders.get(k).is_some_and(|s| s.deleted_ms.is_none()) {
                let (a, b) = self.folder_totals(k);
                files += a;
                folders += b + 1;
            }
        }
        (files, folders)
    }

    pub fn trash_folder(&mut self, key: &str, now: i64) {
        self.bump();
        self.unindex_folder(key);
        let parent = match self.folders.get_mut(key) {
            Some(f) => {
                f.deleted_ms = Some(now);
                f.parent.clone()
            }
            None => return,
        };
        if let Some(p) = parent {
            self.touch(&p);
        }
    }

    pub fn trash_file(&mut self, key: &str, now: i64) {
        self.bump();
        self.unindex_file(key);
        let parent = match self.files.get_mut(key) {
            Some(f) => {
                f.deleted_ms = Some(now);
                f.parent.clone()
            }
            None => return,
        };
        self.touch(&parent);
    }

    /// Removes a folder and everything below it for good.
    pub fn purge_folder(&mut self, key: &str) {
        self.bump();
        let Some(parent) = self.folders.get(key).map(|f| f.parent.clone()) else {
            return;
        };
        self.purge_subtree(key);
        if let Some(p) = &parent {
            if let Some(parent) = self.folders.get_mut(p) {
                parent.child_folders.remove(key);
            }
            self.touch(p);
        }
    }

    /// Removes a folder and everything below it, leaving its parent's list
    /// of children alone.
    fn purge_subtree(&mut self, key: &str) {
        self.unindex_folder(key);
        let Some(f) = self.folders.remove(key) else {
            return;
        };
        for fk in &f.child_files {
            self.unindex_file(fk);
            self.files.remove(fk);
        }
        for sk in &f.child_folders {
            self.purge_subtree(sk);
        }
    }

    pub fn purge_file(&mut self, key: &str) {
        self.bump();
        self.unindex_file(key);
        let Some(f) = self.files.remove(key) else {
            return;
        };
        if let Some(p) = self.folders.get_mut(&f.parent) {
            p.child_files.remove(key);
        }
        self.touch(&f.parent);
    }
}

/// What a rename/move/copy should call the item in `parent`, per the collision policy.
pub(crate) fn placed_name(
    tree: &Tree,
    parent: &str,
    name: &str,
    is_file: bool,
    policy: Collision,
    skip_key: Option<&str>,
) -> Result<String, ApiError> {
    let taken_by = if is_file {
        tree.live_child_file(parent, name)
    } else {
        tree.live_child_folder(parent, name)
    };
    match taken_by {
        None => Ok(name.to_string()),
        Some(k) if Some(k.as_str()) == skip_key => Ok(name.to_string()),
        Some(_) => match policy {
            Collision::Error => Err(ApiError::new(if is_file { 143 } else { 144 })),
            Collision::Rename => Ok(tree.free_name(parent, name, is_file)),
        },
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(is_valid_name("a.txt"));
        assert!(is_valid_name(&"x".repeat(255)));
        assert!(!is_valid_name(&"x".repeat(256)));
        for bad in ["", "a/b", "a\\b", "a\nb", "\u{7f}", ".", ".."] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn numbered_names_follow_observed_pattern() {
        assert_eq!(numbered_name("test4.jpg", 14), "test4(14).jpg");
        assert_eq!(numbered_name("folder", 1), "folder(1)");
        assert_eq!(numbered_name(".hidden", 2), ".hidden(2)");
        assert!(changes_extension("a.txt", "a.md"));
        assert!(!changes_extension("a.TXT", "b.txt"));
        assert!(changes_extension("a.txt", "a.txt.old"));
    }

    #[test]
    fn tree_copy_trash_and_purge() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut t = Tree::new(0);
        let a = t.mkdir_p(ROOT, "/a/b", &mut rng, 0);
        let f = t.create_file(&a, "x.txt", &"0".repeat(64), 5, &mut rng, 0);
        let top = t.folder_by_path(ROOT, "/a").unwrap();
        let copy = t.copy_folder(&top, ROOT, "a(1)", &mut rng, 0);
        assert_eq!(t.folder_totals(&copy), (1, 1));
        assert_eq!(t.live_counts(), (2, 4));
        t.trash_folder(&top, 1);
        assert!(t.file_in_trash(t.files.get(&f).unwrap()));
        assert_eq!(t.live_counts(), (1, 2));
        t.purge_folder(&top);
        assert!(!t.files.contains_key(&f));
        assert_eq!(t.free_name(ROOT, "a(1)", false), "a(1)(1)");
        assert_eq!(t.free_name(ROOT, "a", false), "a");
    }
    /// Checks the name index against a walk of the children for every name in use.
    fn assert_index_consistent(t: &Tree) {
        let mut names: Vec<String> = t.files.values().map(|f| f.name.clone()).collect();
        names.extend(t.folders.values().map(|f| f.name.clone()));
        for parent in t.folders.keys() {
            for name in &names {
                assert_eq!(
                    t.live_child_file(parent, name),
                    t.scan_child_file(parent, name)
                );
                assert_eq!(
                    t.live_child_folder(parent, name),
                    t.scan_child_folder(parent, name)
                );
            }
        }
    }

    #[test]
    fn name_index_follows_every_change() {
        for case_insensitive in [false, true] {
            let mut rng = StdRng::seed_from_u64(11);
            let mut t = Tree::new(0);
            t.case_insensitive = case_insensitive;
            let names = ["a", "B", "b", "c.txt", "C.TXT"];
            for step in 0..400 {
                let folders: Vec<String> = t.folders.keys().cloned().collect();
                let files: Vec<String> = t.files.keys().cloned().collect();
                let dir = folders[rng.random_range(0..folders.len())].clone();
                let name = names[rng.random_range(0..names.len())];
                match rng.random_range(0..8) {
                    0 => {
                        let n = t.free_name(&dir, name, false);
                        t.create_folder(&dir, &n, &mut rng, step);
                    }
                    1 | 2 => {
                        let n = t.free_name(&dir, name, true);
                        t.create_file(&dir, &n, "h", 1, &mut rng, step);
                    }
                    3 if !files.is_empty() => {
                        let k = &files[rng.random_range(0..files.len())];
                        let n = t.free_name(&dir, name, true);
                        t.move_file(k, &dir, &n);
                    }
                    4 if !files.is_empty() => {
                        let k = &files[rng.random_range(0..files.len())];
                        let parent = t.files[k].parent.clone();
                        let n = t.free_name(&parent, name, true);
                        t.rename_file(k, &n);
                    }
                    5 if !files.is_empty() => {
                        t.trash_file(&files[rng.random_range(0..files.len())], step);
                    }
                    6 if dir != ROOT => {
                        if rng.random_bool(0.5) {
                            t.trash_folder(&dir, step);
                        } else {
                            t.purge_folder(&dir);
                        }
                    }
                    7 if dir != ROOT => {
                        let parent = t.folders[&dir].parent.clone().unwrap_or_default();
                        let n = t.free_name(&parent, name, false);
                        t.rename_folder(&dir, &n);
                    }
                    _ => {}
                }
                assert_index_consistent(&t);
            }
            // a reload rebuilds the same index
            let mut reloaded: Tree =
                serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            reloaded.case_insensitive = case_insensitive;
            reloaded.rebuild_children();
            assert_eq!(reloaded.file_names, t.file_names);
            assert_eq!(reloaded.folder_names, t.folder_names);
        }
    }

    #[test]
    fn live_items_list_paths_and_skip_the_trash() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut t = Tree::new(0);
        let b = t.mkdir_p(ROOT, "/a/b", &mut rng, 0);
        let hash = "1".repeat(64);
        t.create_file(&b, "x.txt", &hash, 5, &mut rng, 0);
        let gone = t.create_file(ROOT, "gone.txt", &hash, 5, &mut rng, 0);
        t.trash_file(&gone, 1);
        let items = t.live_items();
        let paths: Vec<&str> = items.iter().map(|i| i["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["/a", "/a/b", "/a/b/x.txt"]);
        assert_eq!(items[2]["size"], 5);
        assert_eq!(items[2]["hash"], hash.as_str());
        assert_eq!(items[0]["kind"], "folder");
    }
}
