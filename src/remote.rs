//! The seam between the WebDAV adapter (`dav`) and the storage behind it.
//!
//! `dav` sees MediaFire only through the [`Remote`] trait: a handful of typed
//! calls on folder keys and quickkeys, and one [`Error`](crate::error::Error)
//! type whose kind says what went wrong. No URLs, envelopes or tokens cross
//! this line. `mediafire::Client` implements it for the real service (and the
//! emulator, which speaks the same HTTP API); tests may implement it with a
//! fake.
//!
//! Conventions:
//! - The account root ("My Files") is the folder key [`ROOT`] (the empty
//!   string). The client translates it to whatever the wire wants.
//! - Names are the exact names MediaFire stores, in Unicode NFC as given.
//! - Every call is a single logical operation; retries, rate limiting and
//!   session renewal happen behind the trait, never in the caller.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

use crate::error::Result;

/// The folder key of the account root ("My Files").
pub const ROOT: &str = "";

/// A folder as listed by MediaFire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderInfo {
    /// 13-character folder key (treat as opaque).
    pub key: String,
    pub name: String,
    /// Creation time (from `created_utc`); MediaFire exposes no mtime.
    pub created: SystemTime,
    /// The folder's revision counter, 0 when MediaFire gave none.
    pub revision: u64,
}

/// A file as listed by MediaFire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// 15- (or 11-) character quickkey (treat as opaque).
    pub quickkey: String,
    pub name: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the content (MD5 for some legacy files), may be empty.
    pub hash: String,
    /// Creation time (from `created_utc`).
    pub created: SystemTime,
    /// The file's revision counter, 0 when MediaFire gave none.
    pub revision: u64,
}

/// The complete content of one folder (every page, folders and files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub folders: Vec<FolderInfo>,
    pub files: Vec<FileInfo>,
}

/// Storage use of the account, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub used: u64,
    /// `None` when MediaFire does not report a limit.
    pub limit: Option<u64>,
}

/// Who is logged in, and how full the account is (`user/get_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    pub email: String,
    pub display_name: String,
    pub premium: bool,
    pub quota: Quota,
}

/// Cheap change detection (`device/get_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Increases with every mutation anywhere in the account.
    pub revision: u64,
    pub async_jobs_in_progress: bool,
}

/// A complete local file to upload: already spooled and hashed.
#[derive(Clone, Debug)]
pub struct UploadSource {
    /// The spool file. The uploader only reads it; the caller deletes it.
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: String,
}

/// One upload: new file, or new content for an existing file.
#[derive(Clone, Debug)]
pub struct UploadRequest {
    /// Destination folder key ([`ROOT`] for the root).
    pub folder_key: String,
    pub name: String,
    pub source: UploadSource,
    /// The quickkey of the existing file this upload replaces (same folder,
    /// same name). The file keeps this key and its old content stays readable
    /// until the new content is complete.
    pub replace: Option<String>,
    /// Modification time to record, where MediaFire allows it.
    pub mtime: Option<SystemTime>,
}

/// The body of a download.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// An open download, starting at the requested offset.
pub struct Download {
    /// Bytes from the requested offset to the end (or the requested length).
    pub body: ByteStream,
    /// Total size of the file as the download host reports it.
    pub total_size: u64,
}

/// The calls the WebDAV adapter makes. See the module docs for conventions.
#[async_trait::async_trait]
pub trait Remote: Send + Sync + 'static {
    /// Account, display name and quota (`user/get_info`).
    async fn account(&self) -> Result<AccountInfo>;

    /// Device revision and async-job flag (`device/get_status`).
    async fn device_status(&self) -> Result<DeviceStatus>;

    /// All folders and files in a folder, every page (`folder/get_content`).
    /// A failure is an error, never an empty listing.
    async fn list_folder(&self, folder_key: &str) -> Result<Listing>;

    /// Creates `name` in `parent`. `AlreadyExists` if the name is taken.
    /// Never creates a duplicate, even when a retry is needed.
    async fn create_folder(&self, parent: &str, name: &str) -> Result<FolderInfo>;

    /// Renames a folder in place (`folder/update`).
    async fn rename_folder(&self, folder_key: &str, new_name: &str) -> Result<()>;

    /// Moves a folder (with its subtree) into another folder (`folder/move`).
    async fn move_folder(&self, folder_key: &str, dst_parent: &str) -> Result<()>;

    /// Moves a folder to the trash (`folder/delete`).
    async fn delete_folder(&self, folder_key: &str) -> Result<()>;

    /// Renames a file in place (`file/update`).
    async fn rename_file(&self, quickkey: &str, new_name: &str) -> Result<()>;

    /// Moves a file into another folder (`file/move`).
    async fn move_file(&self, quickkey: &str, dst_folder: &str) -> Result<()>;

    /// Copies a file into a folder; returns the new quickkey (`file/copy`).
    /// The copy may have received a collision-renamed name: callers that care
    /// about the name re-list or rename.
    async fn copy_file(&self, quickkey: &str, dst_folder: &str) -> Result<String>;

    /// Moves a file to the trash (`file/delete`).
    async fn delete_file(&self, quickkey: &str) -> Result<()>;

    /// Uploads a spooled file; returns the stored file once it has its key.
    async fn upload(&self, request: UploadRequest) -> Result<FileInfo>;

    /// Opens a download of `quickkey` from byte `offset`, up to `len` bytes
    /// (to the end when `None`). Direct links are cached behind this call.
    async fn download(&self, quickkey: &str, offset: u64, len: Option<u64>) -> Result<Download>;
}
