//! `MfMeta` (dav-server `DavMetaData`) and `MfDirEntry` (`DavDirEntry`),
//! built from cached MediaFire entries or overlay entries.
//!
//! ETags must survive a restart and change when content changes: files use
//! the content hash (else quickkey + revision), folders their key and
//! revision. `creationdate` is whole seconds (Windows chokes on fractions).
//! MediaFire has no mtime, so `getlastmodified` is the creation time unless
//! a stored mtime exists (overlay entries have one).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::fs::{DavDirEntry, DavMetaData, FsFuture, FsResult};
use futures_util::FutureExt;

use crate::remote::{FileInfo, FolderInfo};

#[derive(Clone, Debug)]
pub(crate) struct MfMeta {
    pub(crate) is_dir: bool,
    pub(crate) len: u64,
    pub(crate) created: SystemTime,
    pub(crate) modified: SystemTime,
    pub(crate) etag: String,
}

/// Drops the sub-second part.
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

/// The first 32 characters of a hash (plenty to tell versions apart in a
/// header), keeping only characters an ETag may carry.
fn etag_part(hash: &str) -> String {
    hash.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect()
}

impl MfMeta {
    pub(crate) fn root() -> MfMeta {
        MfMeta {
            is_dir: true,
            len: 0,
            created: UNIX_EPOCH,
            modified: UNIX_EPOCH,
            etag: "root".into(),
        }
    }

    pub(crate) fn folder(f: &FolderInfo) -> MfMeta {
        let created = whole_seconds(f.created);
        MfMeta {
            is_dir: true,
            len: 0,
            created,
            modified: created,
            etag: format!("d-{}-{}", f.key, f.revision),
        }
    }

    /// A remote file; `mtime` is a stored modification time, if any.
    pub(crate) fn file(f: &FileInfo, mtime: Option<SystemTime>) -> MfMeta {
        let created = whole_seconds(f.created);
        let etag = if f.hash.is_empty() {
            format!("f-{}-{}", f.quickkey, f.revision)
        } else {
            format!("h-{}", etag_part(&f.hash))
        };
        MfMeta {
            is_dir: false,
            len: f.size,
            created,
            modified: mtime.map_or(created, whole_seconds),
            etag,
        }
    }

    /// A file kept in the local overlay.
    pub(crate) fn local(size: u64, created: SystemTime, modified: SystemTime, sha: &str) -> MfMeta {
        let modified = whole_seconds(modified);
        let etag = if sha.is_empty() {
            let secs = modified
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("l-{size}-{secs:x}")
        } else {
            format!("h-{}", etag_part(sha))
        };
        MfMeta {
            is_dir: false,
            len: size,
            created: whole_seconds(created),
            modified,
            etag,
        }
    }
}

impl DavMetaData for MfMeta {
    fn len(&self) -> u64 {
        self.len
    }

    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }

    fn created(&self) -> FsResult<SystemTime> {
        Ok(self.created)
    }

    fn is_dir(&self) -> bool {
        self.is_dir
    }

    fn etag(&self) -> Option<String> {
        Some(self.etag.clone())
    }
}

/// A directory entry with its metadata already embedded (no lookup later).
pub(crate) struct MfDirEntry {
    pub(crate) name: String,
    pub(crate) meta: MfMeta,
}

impl DavDirEntry for MfDirEntry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = Box::new(self.meta.clone()) as Box<dyn DavMetaData>;
        async move { Ok(meta) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_come_from_hash_or_key_and_revision() {
        let mut f = FileInfo {
            quickkey: "qk".into(),
            name: "a".into(),
            size: 3,
            hash: "ab".repeat(32),
            created: UNIX_EPOCH + Duration::from_millis(1_500),
            revision: 4,
        };
        assert_eq!(
            MfMeta::file(&f, None).etag,
            format!("h-{}", "ab".repeat(16))
        );
        assert_eq!(
            MfMeta::file(&f, None).created,
            UNIX_EPOCH + Duration::from_secs(1)
        );
        f.hash.clear();
        assert_eq!(MfMeta::file(&f, None).etag, "f-qk-4");
    }
}
