//! The local overlay: files this server shows but MediaFire does not hold.
//!
//! Three kinds land here:
//! - zero-byte files (MediaFire cannot store an empty file, yet Windows and
//!   RaiDrive PUT 0 bytes before the real content);
//! - lock-null resources (LOCK on an unmapped URL, RFC 4918 §7.3);
//! - with `local_apple_files`, Finder's `._*` AppleDouble files and
//!   `.DS_Store`, which would otherwise litter the MediaFire account.
//!
//! The index lives in `state_dir/overlay.json` (atomic writes); contents of
//! non-empty entries are blobs in `state_dir/overlay/`. Paths use the same
//! NFC form as the cache. The overlay never talks to MediaFire.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::Result;

use super::cache::{is_within, rebase, split};
use super::meta::MfMeta;
use super::props::{read_json, write_json_atomic};

/// One local file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LocalEntry {
    pub(crate) size: u64,
    /// Unix seconds.
    pub(crate) created: u64,
    /// Unix seconds.
    pub(crate) modified: u64,
    /// Lowercase hex SHA-256, empty for empty files.
    pub(crate) sha256: String,
    /// Blob file name under `state_dir/overlay/`, `None` for empty files.
    pub(crate) blob: Option<String>,
}

impl LocalEntry {
    pub(crate) fn meta(&self) -> MfMeta {
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        MfMeta::local(self.size, t(self.created), t(self.modified), &self.sha256)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Removes blobs the index does not name (a crash between writing a blob
/// and saving the index).
fn sweep_orphans(blobs: &Path, map: &BTreeMap<String, LocalEntry>) {
    let named: std::collections::HashSet<&str> =
        map.values().filter_map(|e| e.blob.as_deref()).collect();
    let Ok(entries) = std::fs::read_dir(blobs) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !named.contains(name.to_string_lossy().as_ref()) {
            warn!(blob = %name.to_string_lossy(), "overlay: removing orphaned blob");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub(crate) struct Overlay {
    index: PathBuf,
    blobs: PathBuf,
    map: Mutex<BTreeMap<String, LocalEntry>>,
}

impl Overlay {
    pub(crate) fn open(state_dir: &Path) -> Result<Overlay> {
        let blobs = state_dir.join("overlay");
        std::fs::create_dir_all(&blobs)?;
        let index = state_dir.join("overlay.json");
        let map: BTreeMap<String, LocalEntry> = read_json(&index)?;
        sweep_orphans(&blobs, &map);
        Ok(Overlay {
            index,
            blobs,
            map: Mutex::new(map),
        })
    }

    fn save(&self, map: &BTreeMap<String, LocalEntry>) {
        if let Err(e) = write_json_atomic(&self.index, map) {
            warn!(error = %e, "overlay: saving index failed");
        }
    }

    fn drop_blob(&self, entry: &LocalEntry) {
        if let Some(blob) = &entry.blob
            && let Err(e) = std::fs::remove_file(self.blobs.join(blob))
        {
            warn!(blob, error = %e, "overlay: removing blob failed");
        }
    }

    pub(crate) fn get(&self, path: &str) -> Option<LocalEntry> {
        self.map.lock().unwrap().get(path).cloned()
    }

    fn insert(&self, path: &str, entry: LocalEntry) {
        let mut map = self.map.lock().unwrap();
        if let Some(old) = map.insert(path.to_string(), entry) {
            self.drop_blob(&old);
        }
        self.save(&map);
    }

    /// Sets the modification time a client gave an entry (a PROPPATCH of
    /// its Windows times); false when there is no such entry.
    pub(crate) fn set_modified(&self, path: &str, modified: SystemTime) -> bool {
        let mut map = self.map.lock().unwrap();
        let Some(entry) = map.get_mut(path) else {
            return false;
        };
        entry.modified = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.save(&map);
        true
    }

    /// Records an empty file (zero-byte PUT, lock-null resource).
    pub(crate) fn put_empty(&self, path: &str) -> LocalEntry {
        let created = self.get(path).map_or_else(now_secs, |e| e.created);
        let entry = LocalEntry {
            size: 0,
            created,
            modified: now_secs(),
            sha256: String::new(),
            blob: None,
        };
        self.insert(path, entry.clone());
        entry
    }

    /// Stores the content of a spool file as a local entry.
    pub(crate) fn put_file(
        &self,
        path: &str,
        spool: &Path,
        size: u64,
        sha256: &str,
    ) -> Result<LocalEntry> {
        let blob = format!("{:016x}", rand::random::<u64>());
        std::fs::copy(spool, self.blobs.join(&blob))?;
        let created = self.get(path).map_or_else(now_secs, |e| e.created);
        let entry = LocalEntry {
            size,
            created,
            modified: now_secs(),
            sha256: sha256.to_string(),
            blob: Some(blob),
        };
        self.insert(path, entry.clone());
        Ok(entry)
    }

    /// Opens the content of an entry; `None` for an empty entry.
    pub(crate) fn open_blob(&self, entry: &LocalEntry) -> Result<Option<std::fs::File>> {
        match &entry.blob {
            Some(blob) => Ok(Some(std::fs::File::open(self.blobs.join(blob))?)),
            None => Ok(None),
        }
    }

    /// The whole content of an entry (tests only; readers stream).
    #[cfg(test)]
    fn read(&self, entry: &LocalEntry) -> Result<Vec<u8>> {
        match &entry.blob {
            Some(blob) => Ok(std::fs::read(self.blobs.join(blob))?),
            None => Ok(Vec::new()),
        }
    }

    /// Removes one entry; true when there was one.
    pub(crate) fn remove(&self, path: &str) -> bool {
        let mut map = self.map.lock().unwrap();
        match map.remove(path) {
            Some(old) => {
                self.drop_blob(&old);
                self.save(&map);
                true
            }
            None => false,
        }
    }

    /// Removes every entry at or below `path`.
    pub(crate) fn remove_subtree(&self, path: &str) {
        let mut map = self.map.lock().unwrap();
        let doomed: Vec<String> = map.keys().filter(|k| is_within(k, path)).cloned().collect();
        for k in &doomed {
            if let Some(old) = map.remove(k) {
                self.drop_blob(&old);
            }
        }
        if !doomed.is_empty() {
            self.save(&map);
        }
    }

    /// Entries directly inside the folder at `dir`, as (name, entry).
    pub(crate) fn children(&self, dir: &str) -> Vec<(String, LocalEntry)> {
        let map = self.map.lock().unwrap();
        map.iter()
            .filter(|(k, _)| {
                let (parent, _) = split(k);
                parent == dir
            })
            .map(|(k, v)| (split(k).1.to_string(), v.clone()))
            .collect()
    }

    /// Moves `from` and everything below it to `to`.
    pub(crate) fn rename(&self, from: &str, to: &str) {
        let mut map = self.map.lock().unwrap();
        let moved: Vec<String> = map.keys().filter(|k| is_within(k, from)).cloned().collect();
        if moved.is_empty() {
            return;
        }
        for old in moved {
            if let Some(v) = map.remove(&old)
                && let Some(prev) = map.insert(rebase(&old, from, to), v)
            {
                self.drop_blob(&prev);
            }
        }
        self.save(&map);
    }

    /// Copies the single entry `from` to `to`; false when `from` is not local.
    pub(crate) fn copy(&self, from: &str, to: &str) -> Result<bool> {
        let Some(src) = self.get(from) else {
            return Ok(false);
        };
        let blob = match &src.blob {
            Some(b) => {
                let new = format!("{:016x}", rand::random::<u64>());
                std::fs::copy(self.blobs.join(b), self.blobs.join(&new))?;
                Some(new)
            }
            None => None,
        };
        let now = now_secs();
        let entry = LocalEntry {
            created: now,
            modified: now,
            blob,
            ..src
        };
        self.insert(to, entry);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_persist_move_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::write(&spool, b"fork").unwrap();
        let ov = Overlay::open(dir.path()).unwrap();
        ov.put_empty("a/empty");
        ov.put_file("a/._x", &spool, 4, "00").unwrap();
        ov.put_empty("top");
        drop(ov);

        let ov = Overlay::open(dir.path()).unwrap();
        let mut names: Vec<String> = ov.children("a").into_iter().map(|(n, _)| n).collect();
        names.sort();
        assert_eq!(names, ["._x", "empty"]);
        assert_eq!(ov.children("").len(), 1);
        ov.rename("a", "b");
        let e = ov.get("b/._x").unwrap();
        assert_eq!(&ov.read(&e).unwrap()[..], b"fork");
        ov.remove_subtree("b");
        assert!(ov.get("b/empty").is_none());
        assert_eq!(
            std::fs::read_dir(dir.path().join("overlay"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn orphaned_blobs_are_swept_on_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(Overlay::open(dir.path()).unwrap());
        std::fs::write(dir.path().join("overlay").join("deadbeef"), b"x").unwrap();
        drop(Overlay::open(dir.path()).unwrap());
        assert_eq!(
            std::fs::read_dir(dir.path().join("overlay"))
                .unwrap()
                .count(),
            0
        );
    }
}
