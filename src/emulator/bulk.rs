//! Seeding many entries into one folder at once, for big-folder tests and
//! benchmarks.
//!
//! [`EmulatorHandle::seed_file`] looks for a same-named file by scanning the
//! folder, so seeding N entries one by one costs O(N²): half an hour for a
//! 30,000-entry folder in a debug build. [`EmulatorHandle::seed_files`] and
//! [`EmulatorHandle::seed_folders`] build a name index once per call and do
//! exactly what the single-entry calls do, in O(N).

use std::collections::HashMap;

use super::EmulatorHandle;
use super::state::{ROOT, State, Tree, is_valid_name, lock, now_ms};

/// A name as the tree compares it (case-folded with `--case-insensitive-names`).
fn folded(tree: &Tree, name: &str) -> String {
    if tree.case_insensitive {
        name.to_lowercase()
    } else {
        name.to_string()
    }
}

impl EmulatorHandle {
    /// Stores every `(name, content)` in the folder `dir` ("/a/b", created
    /// when missing) as [`seed_file`](Self::seed_file) would, one after the
    /// other: a name already taken by a file gets the new content. Returns
    /// the quickkeys in order (an empty string where storing failed).
    pub fn seed_files<'a>(
        &self,
        dir: &str,
        files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Vec<String> {
        let emu = &self.emu;
        let stored: Vec<_> = files
            .into_iter()
            .map(|(name, content)| {
                let name = if name.is_empty() { "unnamed" } else { name };
                let blob = emu.store.put_blob_bytes(content);
                if let Err(e) = &blob {
                    tracing::error!(error = %e, name, "emulator: seeding content failed");
                }
                (name, blob.ok())
            })
            .collect();
        let keys = {
            let mut state = lock(&emu.state);
            let State { tree, rng, .. } = &mut *state;
            let now = now_ms();
            let parent = tree.mkdir_p(ROOT, dir, rng, now);
            let mut index: HashMap<String, String> = tree.folders[&parent]
                .child_files
                .iter()
                .filter_map(|k| tree.files.get(k))
                .filter(|f| f.deleted_ms.is_none())
                .map(|f| (folded(tree, &f.name), f.key.clone()))
                .collect();
            stored
                .into_iter()
                .map(|(name, blob)| {
                    let Some(blob) = blob else {
                        return String::new();
                    };
                    let name_key = folded(tree, name);
                    match index.get(&name_key) {
                        Some(existing) => {
                            tree.replace_content(existing, &blob.hash, blob.size);
                            existing.clone()
                        }
                        None => {
                            let key =
                                tree.create_file(&parent, name, &blob.hash, blob.size, rng, now);
                            index.insert(name_key, key.clone());
                            key
                        }
                    }
                })
                .collect()
        };
        emu.mark_dirty();
        keys
    }

    /// Creates every folder `name` missing in the folder `dir` ("/a/b",
    /// created when missing) as [`seed_folder`](Self::seed_folder) would.
    /// Returns the folderkeys in order (an empty string for a name MediaFire
    /// would refuse).
    pub fn seed_folders<'a>(
        &self,
        dir: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        let emu = &self.emu;
        let keys = {
            let mut state = lock(&emu.state);
            let State { tree, rng, .. } = &mut *state;
            let now = now_ms();
            let parent = tree.mkdir_p(ROOT, dir, rng, now);
            let mut index: HashMap<String, String> = tree.folders[&parent]
                .child_folders
                .iter()
                .filter_map(|k| tree.folders.get(k))
                .filter(|f| f.deleted_ms.is_none())
                .map(|f| (folded(tree, &f.name), f.key.clone()))
                .collect();
            names
                .into_iter()
                .map(|name| {
                    if !is_valid_name(name) {
                        return String::new();
                    }
                    let name_key = folded(tree, name);
                    if let Some(existing) = index.get(&name_key) {
                        return existing.clone();
                    }
                    let key = tree.create_folder(&parent, name, rng, now);
                    index.insert(name_key, key.clone());
                    key
                })
                .collect()
        };
        emu.mark_dirty();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EmulatorConfig, start};

    #[tokio::test]
    async fn bulk_seeding_matches_one_by_one_seeding() {
        let emu = start(EmulatorConfig::default()).await.unwrap();
        let single = emu.seed_file("/d/a.txt", b"one");
        let contents = [b"uno".as_slice(), b"b", b"c"];
        let keys = emu.seed_files(
            "/d",
            [
                ("a.txt", contents[0]),
                ("b.txt", contents[1]),
                ("b.txt", contents[2]),
            ],
        );
        assert_eq!(keys[0], single, "a taken name keeps its quickkey");
        assert_eq!(keys[1], keys[2], "a repeated name is one file");
        assert!(!keys[1].is_empty());
        let folder = emu.seed_folder("/d/sub");
        let keys = emu.seed_folders("/d", ["sub", "other", "other", "bad/name"]);
        assert_eq!(keys[0], folder);
        assert_eq!(keys[1], keys[2]);
        assert_eq!(keys[3], "");
        let stats = emu.stats();
        assert_eq!(stats["files"], 2, "{stats}");
        // d, d/sub, d/other
        assert_eq!(stats["folders"], 3, "{stats}");
    }
}
