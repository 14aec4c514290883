//! Names of PUT spool files, and the removal of those a dead process left.
//!
//! A spool file is `put-<pid>.<start>-XXXXXX` in the spool directory, where
//! `<pid>.<start>` tags this process (its id and when it first spooled). A
//! `kill -9` during an upload leaves the whole body there; at start-up
//! [`clean_dead`] deletes the files of processes that are gone, so crashes do
//! not fill the disk. A file is only deleted when its tag is not ours and
//! its process id is not alive, or is ours (a restarted container often gets
//! the same id again): files of a live process sharing the directory, and
//! of other adapters in this process, are never touched.
//!
//! Not here: writing or reading spool files (`file.rs`).

use std::path::Path;
use std::sync::OnceLock;

use tracing::{debug, warn};

/// `put-<pid>.<start>-`: the prefix of this process's spool files.
pub(crate) fn prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("put-{}.{start}-", std::process::id())
    })
}

/// Deletes the spool files of dead processes in `dir`; returns how many.
pub(crate) fn clean_dead(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_stale(name, prefix(), alive) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) => warn!(file = %name, error = %e, "spool: could not remove a dead upload"),
        }
    }
    if removed > 0 {
        debug!(removed, dir = %dir.display(), "spool: removed uploads of a dead process");
    }
    removed
}

/// Whether `name` is a spool file of a process that is gone.
fn is_stale(name: &str, ours: &str, alive: impl Fn(u32) -> bool) -> bool {
    let Some(rest) = name.strip_prefix("put-") else {
        return false;
    };
    let Some((tag, _)) = rest.split_once('-') else {
        return false;
    };
    let Some(pid) = tag.split_once('.').and_then(|(p, _)| p.parse::<u32>().ok()) else {
        return false;
    };
    if ours.strip_prefix("put-").and_then(|o| o.strip_suffix('-')) == Some(tag) {
        return false;
    }
    pid == std::process::id() || !alive(pid)
}

/// Whether a process with this id runs (Linux: `/proc`; elsewhere assume so).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_of_dead_processes_are_stale() {
        let me = std::process::id();
        let ours = format!("put-{me}.100-");
        let alive = |pid: u32| pid == 7 || pid == me;
        // ours: never
        assert!(!is_stale(&format!("put-{me}.100-abc"), &ours, alive));
        // an earlier life with our id (a restarted container): stale
        assert!(is_stale(&format!("put-{me}.99-abc"), &ours, alive));
        // a live process sharing the directory: kept; a dead one: stale
        assert!(!is_stale("put-7.5-abc", &ours, alive));
        assert!(is_stale("put-8.5-abc", &ours, alive));
        // not ours to judge
        for other in ["put-abc", "put-x.y-z", "notes.txt", "put-8"] {
            assert!(!is_stale(other, &ours, alive), "{other}");
        }
    }

    #[test]
    fn clean_dead_removes_only_dead_spools() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join(format!("{}live", prefix()));
        // no process has an id this large
        let dead = dir.path().join("put-4000000000.1-x");
        let other = dir.path().join("keep.txt");
        for f in [&mine, &dead, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(clean_dead(dir.path()), 1);
        assert!(mine.exists() && other.exists() && !dead.exists());
    }
}
