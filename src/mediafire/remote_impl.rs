//! `impl Remote for Client`: the typed calls the WebDAV adapter makes, each
//! composed from the API actions in `client.rs`.
//!
//! This is where listings are paged to the end, where a create re-lists
//! before it is sent again, and where asynchronous mutations are waited for.
//! The root folder ([`crate::remote::ROOT`], the empty key) is sent as an
//! empty key, which MediaFire reads as "My Files" (spec §7.2).

use std::collections::HashSet;
use std::time::SystemTime;

use tracing::{debug, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::mediafire::client::{Client, ContentType, display_key};
use crate::mediafire::parse_utc;
use crate::mediafire::retry::Idempotency;
use crate::mediafire::types::{
    FileCopyResponse, FileEntry, FolderCreateResponse, FolderEntry, MutationResponse,
};
use crate::remote::{
    AccountInfo, DeviceStatus, Download, FileInfo, FolderInfo, Listing, Quota, Remote,
    UploadRequest,
};

/// More chunks than this in one folder means the server is looping.
const MAX_CHUNKS: u64 = 10_000;

impl Client {
    /// Every entry of one content type in `folder_key`, all chunks.
    pub async fn list_content(
        &self,
        folder_key: &str,
        ct: ContentType,
    ) -> Result<(Vec<FolderEntry>, Vec<FileEntry>)> {
        let (mut folders, mut files) = (Vec::new(), Vec::new());
        for chunk in 1..=MAX_CHUNKS {
            let c = self.folder_get_content(folder_key, ct, chunk).await?;
            let got = c.folders.len() + c.files.len();
            folders.extend(c.folders);
            files.extend(c.files);
            // Past the end MediaFire sends an empty list (spec §3.1).
            if !c.more_chunks || got == 0 {
                return Ok((folders, files));
            }
        }
        Err(
            Error::new(ErrorKind::Permanent, "folder listing never ends")
                .with_action("folder/get_content")
                .with_context("folder_key", display_key(folder_key)),
        )
    }

    /// The folder named `name` in `parent`, if any (exact name match).
    async fn find_folder(&self, parent: &str, name: &str) -> Result<Option<FolderInfo>> {
        let (folders, _) = self.list_content(parent, ContentType::Folders).await?;
        Ok(folders
            .into_iter()
            .find(|f| f.name == name)
            .map(folder_info))
    }

    /// Waits for MediaFire's async jobs when a mutation ran asynchronously.
    async fn settle(&self, action: &'static str, r: &MutationResponse) -> Result<()> {
        if r.asynchronous {
            debug!(action, "mutation runs asynchronously, waiting for it");
            self.wait_for_async_jobs(action).await;
        }
        Ok(())
    }
}

/// A listing folder entry as the seam's type.
pub fn folder_info(f: FolderEntry) -> FolderInfo {
    FolderInfo {
        created: created(f.created_utc.as_deref(), &f.folderkey),
        key: f.folderkey,
        name: f.name,
        revision: f.revision,
    }
}

/// A listing file entry as the seam's type.
pub fn file_info(f: FileEntry) -> FileInfo {
    FileInfo {
        created: created(f.created_utc.as_deref(), &f.quickkey),
        quickkey: f.quickkey,
        name: f.filename,
        size: f.size,
        hash: f.hash,
        revision: f.revision,
    }
}

/// `created_utc`, or the UNIX epoch when it is missing or unparsable: the
/// local-time `created` field is US Central and not worth guessing from.
fn created(utc: Option<&str>, key: &str) -> SystemTime {
    match utc.and_then(parse_utc) {
        Some(t) => t,
        None => {
            debug!(key, "no usable created_utc, using the UNIX epoch");
            SystemTime::UNIX_EPOCH
        }
    }
}

/// Longest name MediaFire is assumed to take (spec §6.1).
pub const MAX_NAME_LEN: usize = 255;

/// Refuses names MediaFire cannot store before any call: empty, `.`/`..`,
/// a slash or backslash, a control character, or longer than
/// [`MAX_NAME_LEN`] characters. The rest is MediaFire's call (118/185).
pub fn check_name(action: &'static str, name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
        || name.chars().count() > MAX_NAME_LEN;
    if bad {
        return Err(Error::new(
            ErrorKind::InvalidName,
            "name is empty, too long, or has a slash or control character",
        )
        .with_action(action)
        .with_context("name", name.escape_debug()));
    }
    Ok(())
}

/// The seam's view of a `folder/create` reply.
fn created_folder(r: FolderCreateResponse, requested: &str) -> Result<FolderInfo> {
    let key = r.folder_key.or(r.folderkey).unwrap_or_default();
    if key.is_empty() {
        return Err(
            Error::new(ErrorKind::Permanent, "folder/create returned no folder key")
                .with_action("folder/create"),
        );
    }
    Ok(FolderInfo {
        key,
        name: r.name.unwrap_or_else(|| requested.to_string()),
        created: r
            .created_utc
            .as_deref()
            .and_then(parse_utc)
            .unwrap_or_else(SystemTime::now),
        revision: r.revision,
    })
}

/// With `skip`, a service that compares names case-insensitively answers a
/// create of "dir" next to "Dir" with the existing "Dir": nothing was
/// created, so the name is taken.
fn same_name_or_exists(f: FolderInfo, requested: &str) -> Result<FolderInfo> {
    if f.name != requested && f.name.to_lowercase() == requested.to_lowercase() {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            "a folder whose name differs only in case exists",
        )
        .with_action("folder/create")
        .with_context("existing", f.name.escape_debug()));
    }
    Ok(f)
}

fn warn_renamed(action: &'static str, r: &MutationResponse) {
    let renamed = match &r.new_names {
        Some(serde_json::Value::Array(a)) => !a.is_empty(),
        Some(serde_json::Value::Object(o)) => !o.is_empty(),
        Some(serde_json::Value::String(s)) => !s.is_empty(),
        _ => false,
    };
    if renamed {
        warn!(action, new_names = %r.new_names.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            "MediaFire renamed moved items to avoid a name collision");
    }
}

impl Client {
    /// The new quickkey of a `file/copy` answer, once an asynchronous copy
    /// has landed.
    async fn copied_key(&self, quickkey: &str, r: FileCopyResponse) -> Result<String> {
        let key = match &r.new_quickkeys {
            Some(serde_json::Value::Array(a)) => {
                a.iter().find_map(|v| v.as_str().map(str::to_string))
            }
            Some(serde_json::Value::String(s)) => s.split(',').next().map(|s| s.trim().to_string()),
            _ => None,
        }
        .or_else(|| {
            r.new_quickkey
                .as_deref()
                .and_then(|s| s.split(',').next())
                .map(|s| s.trim().to_string())
        })
        .filter(|k| !k.is_empty());
        if r.asynchronous {
            self.wait_for_async_jobs("file/copy").await;
        }
        key.ok_or_else(|| {
            let e = Error::new(ErrorKind::Permanent, "file/copy returned no new quickkey")
                .with_action("file/copy")
                .with_context("quickkey", quickkey);
            if r.skipped_count > 0 || r.other_count > 0 {
                e.with_context("skipped", r.skipped_count)
                    .with_context("failed", r.other_count)
            } else {
                e
            }
        })
    }
}

#[async_trait::async_trait]
impl Remote for Client {
    async fn account(&self) -> Result<AccountInfo> {
        let u = self.user_get_info().await?;
        let display_name = if !u.display_name.is_empty() {
            u.display_name
        } else {
            format!("{} {}", u.first_name, u.last_name)
                .trim()
                .to_string()
        };
        Ok(AccountInfo {
            email: u.email,
            display_name,
            premium: u.premium,
            quota: Quota {
                used: u.used_storage_size,
                limit: u.storage_limit.filter(|l| *l > 0),
            },
        })
    }

    async fn device_status(&self) -> Result<DeviceStatus> {
        let s = self.device_get_status().await?;
        Ok(DeviceStatus {
            revision: s.device_revision,
            async_jobs_in_progress: s.async_jobs_in_progress,
        })
    }

    async fn list_folder(&self, folder_key: &str) -> Result<Listing> {
        let (folders, files) = tokio::try_join!(
            self.list_content(folder_key, ContentType::Folders),
            self.list_content(folder_key, ContentType::Files),
        )?;
        Ok(Listing {
            folders: folders.0.into_iter().map(folder_info).collect(),
            files: files.1.into_iter().map(file_info).collect(),
        })
    }

    /// Checks the name is free, creates with `skip`, and after an ambiguous
    /// failure re-lists the parent instead of sending the create again.
    async fn create_folder(&self, parent: &str, name: &str) -> Result<FolderInfo> {
        check_name("folder/create", name)?;
        if let Some(existing) = self.find_folder(parent, name).await? {
            return Err(
                Error::new(ErrorKind::AlreadyExists, "a folder with this name exists")
                    .with_action("folder/create")
                    .with_context("name", name)
                    .with_context("folder_key", existing.key),
            );
        }
        self.inner
            .retry
            .run_checked(
                "folder/create",
                Idempotency::NotIdempotent,
                || async { created_folder(self.folder_create_once(parent, name).await?, name) },
                || async {
                    debug!(
                        name,
                        "create failed ambiguously, re-listing before any resend"
                    );
                    self.find_folder(parent, name).await
                },
            )
            .await
            .and_then(|f| same_name_or_exists(f, name))
            .map_err(|e| {
                e.with_context("parent_key", display_key(parent))
                    .with_context("name", name)
            })
    }

    async fn rename_folder(&self, folder_key: &str, new_name: &str) -> Result<()> {
        check_name("folder/update", new_name)?;
        let r = self.folder_update(folder_key, new_name).await?;
        self.settle("folder/update", &r).await
    }

    async fn move_folder(&self, folder_key: &str, dst_parent: &str) -> Result<()> {
        let r = self.folder_move(folder_key, dst_parent).await?;
        warn_renamed("folder/move", &r);
        self.settle("folder/move", &r).await
    }

    async fn delete_folder(&self, folder_key: &str) -> Result<()> {
        let r = self.folder_delete(folder_key).await?;
        self.settle("folder/delete", &r).await
    }

    async fn rename_file(&self, quickkey: &str, new_name: &str) -> Result<()> {
        check_name("file/update", new_name)?;
        let r = self.file_update(quickkey, new_name).await?;
        self.settle("file/update", &r).await
    }

    async fn move_file(&self, quickkey: &str, dst_folder: &str) -> Result<()> {
        let r = self.file_move(quickkey, dst_folder).await?;
        warn_renamed("file/move", &r);
        self.settle("file/move", &r).await
    }

    async fn copy_file(&self, quickkey: &str, dst_folder: &str) -> Result<String> {
        // The destination's files before the copy: after an ambiguous
        // failure (the answer lost), a new file there with the source's
        // content is our copy, and a resend would make a second one.
        let (_, before) = self.list_content(dst_folder, ContentType::Files).await?;
        let before: HashSet<String> = before.into_iter().map(|f| file_info(f).quickkey).collect();
        self.inner
            .retry
            .run_checked(
                "file/copy",
                Idempotency::NotIdempotent,
                || async {
                    let r = self.file_copy(quickkey, dst_folder).await?;
                    self.copied_key(quickkey, r).await
                },
                || async {
                    debug!(
                        quickkey,
                        "copy failed ambiguously, re-listing before any resend"
                    );
                    self.wait_for_async_jobs("file/copy").await;
                    let source = file_info(self.file_get_info(quickkey).await?);
                    let (_, now) = self.list_content(dst_folder, ContentType::Files).await?;
                    Ok(now.into_iter().map(file_info).find_map(|f| {
                        let ours = !before.contains(&f.quickkey)
                            && f.size == source.size
                            && f.hash == source.hash;
                        ours.then_some(f.quickkey)
                    }))
                },
            )
            .await
            .map_err(|e| {
                e.with_context("quickkey", quickkey)
                    .with_context("dst", display_key(dst_folder))
            })
    }

    async fn delete_file(&self, quickkey: &str) -> Result<()> {
        let r = self.file_delete(quickkey).await?;
        self.settle("file/delete", &r).await
    }

    async fn upload(&self, request: UploadRequest) -> Result<FileInfo> {
        self.upload_file(&request).await
    }

    async fn download(&self, quickkey: &str, offset: u64, len: Option<u64>) -> Result<Download> {
        self.open_download(quickkey, offset, len).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_mediafire_cannot_store_are_refused_locally() {
        for bad in ["", ".", "..", "a/b", "a\\b", "tab\there", &"x".repeat(256)] {
            let e = check_name("file/update", bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidName, "{bad:?}");
        }
        for good in ["a", "naïve 文件.txt", "#1 & co", &"é".repeat(255)] {
            check_name("file/update", good).unwrap();
        }
    }
}
