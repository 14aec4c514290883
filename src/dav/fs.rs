//! `MfFs`: dav-server's `DavFileSystem` over a [`Remote`].
//!
//! `MfFs` is cloned per request (dav-server boxes it); all state is in the
//! shared [`Shared`] behind an `Arc`, plus per-request parts: the
//! [`Failure`] slot, a prefetched GET download, the client's mtime and the
//! DELETE target. Every path goes through [`rel`] once: percent-decoded
//! bytes → UTF-8 → NFC segments joined by `/`. An entry is looked up in the
//! cache (free while the parent listing is fresh) and the overlay; a remote
//! file wins over a local entry of the same name. Every mutation updates
//! the cache, overlay and dead properties in place, so the next PROPFIND
//! needs no re-list.
//!
//! Costs per WebDAV method are in `../shared/dav-server-notes.md` §1.6.
//! COPY of a collection is walked by dav-server (one `copy_file` per file);
//! DELETE of one is cut short to a single `delete_folder` (see
//! [`MfFs::delete_root`]).

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, DavProp, FsError, FsFuture, FsResult,
    FsStream, OpenOptions, ReadDirMeta,
};
use futures_util::{FutureExt, future};
use http::StatusCode;
use tokio::time::Instant;
use tracing::{debug, trace, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::remote::{ByteStream, FileInfo, Remote, UploadRequest, UploadSource};

use super::DavConfig;
use super::cache::{Cache, KeyLocks, Node, is_within, join, serialized, split};
use super::error::Failure;
use super::file::MfFile;
use super::meta::{MfDirEntry, MfMeta};
use super::mtime::MTIME_NS;
use super::nfc;
use super::overlay::{LocalEntry, Overlay};
use super::props::{Mtimes, Props};

/// How long an `account` answer serves quota properties.
const QUOTA_TTL: Duration = Duration::from_secs(60);

/// Counters for `/metrics`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) uploads_in_flight: AtomicI64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
}

/// Bytes used and the limit, as dav-server's `get_quota` wants them.
type QuotaPair = (u64, Option<u64>);

/// State shared by every request.
pub(crate) struct Shared {
    pub(crate) remote: Arc<dyn Remote>,
    pub(crate) cache: Cache,
    pub(crate) overlay: Overlay,
    pub(crate) props: Props,
    mtimes: Mtimes,
    /// Times a PROPPATCH gave an empty placeholder, for the upload that
    /// replaces it (Explorer: PUT 0 bytes, LOCK, PROPPATCH, PUT). In memory
    /// only: the sequence takes seconds.
    placeholder_mtimes: DashMap<String, SystemTime>,
    pub(crate) config: DavConfig,
    /// One lock per path: concurrent PUTs to one path end as one file.
    uploads: KeyLocks,
    /// One lock per path for MKCOL, DELETE and the source of MOVE: of
    /// concurrent ones on one entry, the first acts and the others see it.
    sources: KeyLocks,
    /// (used, limit) and when it was fetched.
    quota: Mutex<Option<(QuotaPair, Instant)>>,
    pub(crate) counters: Counters,
}

/// A download `handle` opened before dav-server sent any header, so that
/// an upstream failure on GET is a status and not a cut-off body. The
/// request's `MfFile` takes it when the offset matches.
#[derive(Clone, Default)]
pub(crate) struct Prefetch(Arc<Mutex<Option<(String, u64, ByteStream)>>>);

impl Prefetch {
    pub(crate) fn put(&self, quickkey: &str, offset: u64, body: ByteStream) {
        *self.0.lock().unwrap() = Some((quickkey.to_string(), offset, body));
    }

    /// The prefetched stream, if it is for `quickkey` at `offset`.
    pub(crate) fn take(&self, quickkey: &str, offset: u64) -> Option<ByteStream> {
        let mut slot = self.0.lock().unwrap();
        match slot.as_ref() {
            Some((qk, off, _)) if qk == quickkey && *off == offset => {
                slot.take().map(|(_, _, b)| b)
            }
            _ => None,
        }
    }
}

/// What a path names.
pub(crate) enum Found {
    /// The account root.
    Root,
    Remote(Node),
    Local(LocalEntry),
}

/// The relative NFC path of a `DavPath` (`""` for the root).
pub(crate) fn rel(path: &DavPath) -> FsResult<String> {
    let raw = std::str::from_utf8(path.as_bytes()).map_err(|_| {
        debug!(path = ?path, "fs: path is not UTF-8");
        FsError::Forbidden
    })?;
    Ok(rel_str(raw))
}

pub(crate) fn rel_str(raw: &str) -> String {
    let segs: Vec<String> = raw.split('/').filter(|s| !s.is_empty()).map(nfc).collect();
    segs.join("/")
}

/// Whether `name` is one of Finder's metadata files.
pub(crate) fn is_apple_name(name: &str) -> bool {
    name.starts_with("._") || name == ".DS_Store"
}

/// Counts an upload as in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicI64);

impl<'a> InFlight<'a> {
    fn new(c: &'a AtomicI64) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        InFlight(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn not_found(path: &str) -> Error {
    Error::new(ErrorKind::NotFound, "no such file or folder").with_context("path", path)
}

impl Shared {
    pub(crate) fn new(remote: Arc<dyn Remote>, config: DavConfig) -> Result<Shared> {
        std::fs::create_dir_all(&config.state_dir)?;
        std::fs::create_dir_all(&config.spool_dir)?;
        super::spool::clean_dead(&config.spool_dir);
        Ok(Shared {
            cache: Cache::new(remote.clone(), config.cache_ttl),
            overlay: Overlay::open(&config.state_dir)?,
            props: Props::open(&config.state_dir)?,
            mtimes: Mtimes::open(&config.state_dir)?,
            remote,
            config,
            uploads: DashMap::new(),
            placeholder_mtimes: DashMap::new(),
            sources: DashMap::new(),
            quota: Mutex::new(None),
            counters: Counters::default(),
        })
    }

    /// The metadata of what a path names.
    pub(crate) fn meta(&self, found: &Found) -> MfMeta {
        match found {
            Found::Root => MfMeta::root(),
            Found::Remote(Node::Folder(f)) => MfMeta::folder(f),
            Found::Remote(Node::File(f)) => self.file_meta(f),
            Found::Local(e) => e.meta(),
        }
    }

    /// A remote file's metadata, with the stored mtime when it still applies.
    pub(crate) fn file_meta(&self, f: &FileInfo) -> MfMeta {
        MfMeta::file(f, self.mtimes.get(&f.quickkey, &f.hash, f.size))
    }

    /// What `path` names, `None` when nothing.
    pub(crate) async fn find(&self, path: &str) -> Result<Option<Found>> {
        if path.is_empty() {
            return Ok(Some(Found::Root));
        }
        if let Some(e) = self.overlay.get(path) {
            // A remote file of the same name (another client's upload) wins,
            // as it does in `read_dir`. If the listing cannot be had, the
            // local entry still answers.
            return Ok(Some(match self.cache.lookup(path).await {
                Ok(Some(node)) => Found::Remote(node),
                _ => Found::Local(e),
            }));
        }
        Ok(self.cache.lookup(path).await?.map(Found::Remote))
    }

    /// Lists the folder at `path` (if it is one) so that a failure surfaces
    /// before dav-server starts a 207 it cannot take back.
    pub(crate) async fn prelist(&self, path: &str) -> Result<()> {
        match self.find(path).await? {
            Some(Found::Root) | Some(Found::Remote(Node::Folder(_))) => {
                self.cache.children(path).await.map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// Commits a finished upload body to `path`: see `file.rs` for the
    /// checks done before. Serialised per path.
    pub(crate) async fn commit(
        &self,
        path: &str,
        spool: &Path,
        size: u64,
        sha256: &str,
        mtime: Option<SystemTime>,
    ) -> Result<MfMeta> {
        serialized(
            &self.uploads,
            path,
            self.commit_locked(path, spool, size, sha256, mtime),
        )
        .await
    }

    async fn commit_locked(
        &self,
        path: &str,
        spool: &Path,
        size: u64,
        sha256: &str,
        mtime: Option<SystemTime>,
    ) -> Result<MfMeta> {
        let (parent, name) = split(path);
        let folder_key = self.cache.folder_key(parent).await?;
        let existing = match self.cache.child(parent, name) {
            Some(Node::Folder(_)) => {
                return Err(Error::new(ErrorKind::Forbidden, "a folder has this name")
                    .with_context("path", path));
            }
            Some(Node::File(f)) => Some(f),
            None => None,
        };
        let local = size == 0 || (self.config.local_apple_files && is_apple_name(name));
        if local {
            if let Some(f) = existing {
                // One name, one place: the local entry replaces the remote file.
                debug!(path, quickkey = %f.quickkey, "upload: trashing remote file replaced by a local entry");
                let r = self.remote.delete_file(&f.quickkey).await;
                self.stale(parent, r)?;
                self.mtimes.forget(&f.quickkey);
                self.cache.remove(parent, name);
            }
            let entry = if size == 0 {
                self.overlay.put_empty(path)
            } else {
                self.overlay.put_file(path, spool, size, sha256)?
            };
            debug!(path, size, "upload: kept in the local overlay");
            return Ok(entry.meta());
        }
        // A time given to the empty placeholder this content replaces
        // (Explorer's PROPPATCH between its 0-byte PUT and the real one)
        // describes this file.
        let placeholder_time = self.placeholder_mtimes.remove(path).map(|(_, t)| t);
        let mtime = mtime.or(placeholder_time);
        let request = UploadRequest {
            folder_key: folder_key.clone(),
            name: existing
                .as_ref()
                .map_or_else(|| name.to_string(), |f| f.name.clone()),
            source: UploadSource {
                path: spool.to_path_buf(),
                size,
                sha256: sha256.to_string(),
            },
            replace: existing.map(|f| f.quickkey),
            mtime,
        };
        let info = self.upload(parent, request).await?;
        self.mtimes.record(
            &info.quickkey,
            &info.hash,
            info.size,
            mtime.unwrap_or_else(SystemTime::now),
        );
        self.cache.insert(parent, Node::File(info.clone()));
        self.overlay.remove(path);
        Ok(self.file_meta(&info))
    }

    /// Keeps `time` as the modification time of what `path` names (a
    /// PROPPATCH of it): per quickkey for a MediaFire file, in the entry for
    /// a local one. Folders keep MediaFire's time.
    pub(crate) async fn set_mtime(&self, path: &str, time: SystemTime) -> Result<()> {
        match self.find(path).await? {
            Some(Found::Remote(Node::File(f))) => {
                self.mtimes.record(&f.quickkey, &f.hash, f.size, time);
            }
            Some(Found::Local(e)) => {
                self.overlay.set_modified(path, time);
                if e.size == 0 {
                    self.placeholder_mtimes.insert(path.to_string(), time);
                }
            }
            Some(Found::Root | Found::Remote(Node::Folder(_))) | None => {}
        }
        Ok(())
    }

    /// Forgets the listing of `dir` when `result` shows it was stale: a
    /// NotFound or AlreadyExists from MediaFire on something our listing
    /// said was (or was not) there.
    fn stale<T>(&self, dir: &str, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && matches!(e.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists)
        {
            debug!(dir, error = %e, "cache: listing contradicted by MediaFire, forgetting it");
            self.cache.forget(dir);
        }
        result
    }

    /// One upload. When the listing was stale, re-list once and retry: a
    /// taken name becomes a replace, a vanished replace target a new file.
    async fn upload(&self, parent: &str, mut request: UploadRequest) -> Result<FileInfo> {
        let _in_flight = InFlight::new(&self.counters.uploads_in_flight);
        debug!(name = %request.name, size = request.source.size, replace = ?request.replace, "upload: starting");
        match self.remote.upload(request.clone()).await {
            Err(e) if e.kind() == ErrorKind::NotFound && request.replace.is_some() => {
                debug!(name = %request.name, "upload: file to replace is gone, uploading anew");
                self.cache.forget(parent);
                self.cache.folder_key(parent).await?;
                request.replace = None;
                self.remote.upload(request).await
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists && request.replace.is_none() => {
                debug!(name = %request.name, "upload: name taken, re-listing to replace it");
                self.cache.forget(parent);
                match self.cache.lookup(&join(parent, &request.name)).await? {
                    Some(Node::File(f)) => {
                        request.name = f.name;
                        request.replace = Some(f.quickkey);
                        self.remote.upload(request).await
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    async fn quota(&self) -> Result<QuotaPair> {
        if let Some((q, at)) = *self.quota.lock().unwrap()
            && at.elapsed() < QUOTA_TTL
        {
            return Ok(q);
        }
        let account = self.remote.account().await?;
        let q = (account.quota.used, account.quota.limit);
        *self.quota.lock().unwrap() = Some((q, Instant::now()));
        Ok(q)
    }

    async fn create_dir(&self, path: &str) -> Result<()> {
        // Of concurrent MKCOLs of one path, the first creates and the others
        // find the folder (405) instead of all answering 201.
        serialized(&self.sources, path, self.create_dir_locked(path)).await
    }

    async fn create_dir_locked(&self, path: &str) -> Result<()> {
        if path.is_empty() {
            return Err(Error::new(ErrorKind::AlreadyExists, "the root exists"));
        }
        let (parent, name) = split(path);
        // RFC 4918 §9.3.1: a missing parent is 409, which dav-server makes
        // of NotFound here.
        let parent_key = self.cache.folder_key(parent).await?;
        if self.find(path).await?.is_some() {
            return Err(
                Error::new(ErrorKind::AlreadyExists, "name taken").with_context("path", path)
            );
        }
        let r = self.remote.create_folder(&parent_key, name).await;
        let info = self.stale(parent, r)?;
        self.cache.insert_new_folder(parent, info);
        Ok(())
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        serialized(&self.sources, path, self.remove_file_locked(path)).await
    }

    async fn remove_file_locked(&self, path: &str) -> Result<()> {
        match self.find(path).await? {
            Some(Found::Local(_)) => {
                self.overlay.remove(path);
                self.placeholder_mtimes.remove(path);
            }
            Some(Found::Remote(Node::File(f))) => {
                let (parent, name) = split(path);
                let r = self.remote.delete_file(&f.quickkey).await;
                self.stale(parent, r)?;
                self.mtimes.forget(&f.quickkey);
                self.cache.remove(parent, name);
                // A local entry hidden behind the remote file must not resurface.
                self.overlay.remove(path);
            }
            Some(_) => {
                return Err(
                    Error::new(ErrorKind::Forbidden, "not a file").with_context("path", path)
                );
            }
            None => return Err(not_found(path)),
        }
        self.props.remove(path);
        Ok(())
    }

    async fn remove_dir(&self, path: &str) -> Result<()> {
        serialized(&self.sources, path, self.remove_dir_locked(path)).await
    }

    async fn remove_dir_locked(&self, path: &str) -> Result<()> {
        match self.find(path).await? {
            Some(Found::Remote(Node::Folder(f))) => {
                // MediaFire trashes the whole subtree in one call.
                let (parent, name) = split(path);
                let r = self.remote.delete_folder(&f.key).await;
                self.stale(parent, r)?;
                self.cache.remove(parent, name);
            }
            Some(Found::Root) => {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    "the root cannot be deleted",
                ));
            }
            Some(_) => {
                return Err(
                    Error::new(ErrorKind::Forbidden, "not a folder").with_context("path", path)
                );
            }
            None => return Err(not_found(path)),
        }
        self.overlay.remove_subtree(path);
        self.props.remove(path);
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        serialized(&self.sources, from, self.rename_locked(from, to)).await
    }

    async fn rename_locked(&self, from: &str, to: &str) -> Result<()> {
        if from.is_empty() || to.is_empty() || is_within(to, from) {
            return Err(
                Error::new(ErrorKind::Forbidden, "cannot move the root or into itself")
                    .with_context("from", from)
                    .with_context("to", to),
            );
        }
        let (src_parent, _) = split(from);
        let (dst_parent, _) = split(to);
        let dst_key = self.cache.folder_key(dst_parent).await?;
        match self.find(from).await? {
            Some(Found::Local(_)) => self.overlay.rename(from, to),
            Some(Found::Remote(node)) => {
                let result = self.rename_remote(from, to, &node, &dst_key).await;
                if let Err(e) = result {
                    // A half-done move leaves listings we cannot trust.
                    self.cache.forget(src_parent);
                    self.cache.forget(dst_parent);
                    return Err(e);
                }
            }
            Some(Found::Root) | None => return Err(not_found(from)),
        }
        self.props.rename(from, to);
        Ok(())
    }

    /// Renames and/or moves one remote entry, then updates the cache.
    async fn rename_remote(&self, from: &str, to: &str, node: &Node, dst_key: &str) -> Result<()> {
        let (src_parent, src_name) = split(from);
        let (dst_parent, dst_name) = split(to);
        let moves = src_parent != dst_parent;
        let renames = nfc(node.name()) != dst_name;
        // Rename where the new name is free first, so neither step collides.
        let rename_first = renames && self.cache.child(src_parent, dst_name).is_none();
        let do_rename = || async {
            match node {
                Node::File(f) => self.remote.rename_file(&f.quickkey, dst_name).await,
                Node::Folder(f) => self.remote.rename_folder(&f.key, dst_name).await,
            }
        };
        let do_move = || async {
            match node {
                Node::File(f) => self.remote.move_file(&f.quickkey, dst_key).await,
                Node::Folder(f) => self.remote.move_folder(&f.key, dst_key).await,
            }
        };
        if rename_first {
            do_rename().await?;
        }
        if moves {
            do_move().await?;
        }
        if renames && !rename_first {
            do_rename().await?;
        }
        let mut moved = node.clone();
        if renames {
            match &mut moved {
                Node::File(f) => f.name = dst_name.to_string(),
                Node::Folder(f) => f.name = dst_name.to_string(),
            }
        }
        self.cache.detach(src_parent, src_name);
        if let Node::Folder(_) = node {
            self.cache.rebase_subtree(from, to);
            self.overlay.rename(from, to);
        } else {
            self.overlay.remove(to);
        }
        self.cache.insert(dst_parent, moved);
        debug!(from, to, moves, renames, "fs: moved remote entry");
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (dst_parent, dst_name) = split(to);
        let dst_key = self.cache.folder_key(dst_parent).await?;
        match self.find(from).await? {
            Some(Found::Local(_)) => {
                self.overlay.copy(from, to)?;
            }
            Some(Found::Remote(Node::File(f))) => {
                let (src_parent, _) = split(from);
                // `copy_file` keeps the source name unless it collides.
                let same_name = nfc(&f.name) == dst_name
                    && src_parent != dst_parent
                    && self.cache.child(dst_parent, dst_name).is_none();
                let r = self.remote.copy_file(&f.quickkey, &dst_key).await;
                let quickkey = self.stale(src_parent, r)?;
                let mut name = f.name.clone();
                if !same_name {
                    if let Err(e) = self.remote.rename_file(&quickkey, dst_name).await {
                        // Do not leave a copy under a name nobody asked for.
                        if let Err(d) = self.remote.delete_file(&quickkey).await {
                            warn!(quickkey, error = %d, "copy: trashing the misnamed copy failed");
                        }
                        self.cache.forget(dst_parent);
                        return Err(e);
                    }
                    name = dst_name.to_string();
                }
                let copy = FileInfo {
                    quickkey,
                    name,
                    created: SystemTime::now(),
                    revision: 0,
                    ..f
                };
                self.cache.insert(dst_parent, Node::File(copy));
                self.overlay.remove(to);
            }
            Some(_) => {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    "only files are copied here",
                ));
            }
            None => return Err(not_found(from)),
        }
        self.props.copy(from, to);
        Ok(())
    }

    pub(crate) async fn read_dir(&self, path: &str) -> Result<Vec<MfDirEntry>> {
        match self.find(path).await? {
            Some(Found::Root) | Some(Found::Remote(Node::Folder(_))) => {}
            Some(_) => {
                return Err(
                    Error::new(ErrorKind::Forbidden, "not a folder").with_context("path", path)
                );
            }
            None => return Err(not_found(path)),
        }
        let mut out: Vec<MfDirEntry> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for node in self.cache.children(path).await? {
            seen.insert(nfc(node.name()));
            let meta = self.meta(&Found::Remote(node.clone()));
            out.push(MfDirEntry {
                name: node.name().to_string(),
                meta,
            });
        }
        for (name, entry) in self.overlay.children(path) {
            if seen.insert(name.clone()) {
                out.push(MfDirEntry {
                    name,
                    meta: entry.meta(),
                });
            }
        }
        Ok(out)
    }
}

/// The `DavFileSystem`; one per request, sharing [`Shared`].
#[derive(Clone)]
pub(crate) struct MfFs {
    pub(crate) shared: Arc<Shared>,
    pub(crate) failure: Failure,
    pub(crate) prefetch: Prefetch,
    /// The client's modification time for a PUT (`X-OC-Mtime`).
    pub(crate) mtime: Option<SystemTime>,
    /// The target of a DELETE request. dav-server deletes a collection by
    /// walking it (list every folder, delete every file); MediaFire trashes a
    /// folder with its subtree in one call, so inside this path `read_dir`
    /// answers empty and the walk ends at one `remove_dir`. dav-server has
    /// already refused the DELETE if any lock below it conflicts.
    pub(crate) delete_root: Option<String>,
}

impl MfFs {
    fn fail(&self, e: Error) -> FsError {
        self.failure.convert(&e)
    }

    /// Fails at once when MediaFire already failed during this request:
    /// dav-server asks about the same paths several times per request, and
    /// each ask would otherwise spend the client's whole retry budget again
    /// (a PUT took 30 s to answer 502 with MediaFire down).
    fn upstream_ok(&self) -> FsResult<()> {
        match self.failure.get() {
            Some(_) => Err(FsError::GeneralFailure),
            None => Ok(()),
        }
    }

    async fn open_file(&self, path: &str, options: OpenOptions) -> FsResult<Box<dyn DavFile>> {
        let sh = &self.shared;
        let found = sh.find(path).await.map_err(|e| self.fail(e))?;
        if !options.write {
            return match found {
                Some(Found::Local(e)) => {
                    let blob = sh.overlay.open_blob(&e).map_err(|e| self.fail(e))?;
                    Ok(Box::new(MfFile::local(blob, e.meta(), sh.clone())))
                }
                Some(Found::Remote(Node::File(f))) => Ok(Box::new(MfFile::remote(
                    f,
                    sh.clone(),
                    self.failure.clone(),
                    self.prefetch.clone(),
                ))),
                Some(_) => Err(FsError::Forbidden),
                None => Err(FsError::NotFound),
            };
        }
        let exists = match found {
            Some(Found::Root) | Some(Found::Remote(Node::Folder(_))) => {
                return Err(FsError::Forbidden);
            }
            Some(_) => true,
            None => false,
        };
        if exists && options.create_new {
            return Err(FsError::Exists);
        }
        if !exists {
            if !options.create {
                return Err(FsError::NotFound);
            }
            // The parent must be a folder (dav-server turns NotFound into 409).
            sh.cache
                .folder_key(split(path).0)
                .await
                .map_err(|e| self.fail(e))?;
        }
        if !options.truncate {
            if exists {
                // Partial updates (PUT + Content-Range, PATCH) cannot be done on
                // MediaFire without re-uploading; refuse rather than corrupt.
                debug!(path, "fs: partial update refused");
                return Err(FsError::NotImplemented);
            }
            if options.size.is_none() {
                // LOCK on an unmapped URL: a lock-null resource (RFC 4918 §7.3).
                debug!(path, "fs: lock-null resource kept in the overlay");
                sh.overlay.put_empty(path);
            }
        }
        Ok(Box::new(MfFile::writer(
            path.to_string(),
            options.size,
            self.mtime,
            sh.clone(),
            self.failure.clone(),
        )))
    }
}

impl DavFileSystem for MfFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            trace!(path = %path, ?options, "fs: open");
            let p = rel(path)?;
            if p.is_empty() {
                return Err(FsError::Forbidden);
            }
            self.upstream_ok()?;
            self.open_file(&p, options).await
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            trace!(path = %path, "fs: read_dir");
            let p = rel(path)?;
            if self
                .delete_root
                .as_ref()
                .is_some_and(|root| is_within(&p, root))
            {
                debug!(path = %p, "fs: deleting a whole folder, skipping its walk");
                let none = futures_util::stream::empty::<FsResult<Box<dyn DavDirEntry>>>();
                return Ok(Box::pin(none) as FsStream<Box<dyn DavDirEntry>>);
            }
            self.upstream_ok()?;
            let entries = self.shared.read_dir(&p).await.map_err(|e| self.fail(e))?;
            let items = entries
                .into_iter()
                .map(|e| Ok(Box::new(e) as Box<dyn DavDirEntry>));
            Ok(Box::pin(futures_util::stream::iter(items)) as FsStream<Box<dyn DavDirEntry>>)
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            trace!(path = %path, "fs: metadata");
            let p = rel(path)?;
            self.upstream_ok()?;
            match self.shared.find(&p).await.map_err(|e| self.fail(e))? {
                Some(found) => Ok(Box::new(self.shared.meta(&found)) as Box<dyn DavMetaData>),
                None => Err(FsError::NotFound),
            }
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            trace!(path = %path, "fs: create_dir");
            let p = rel(path)?;
            self.upstream_ok()?;
            self.shared.create_dir(&p).await.map_err(|e| self.fail(e))
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            trace!(path = %path, "fs: remove_dir");
            let p = rel(path)?;
            self.upstream_ok()?;
            self.shared.remove_dir(&p).await.map_err(|e| self.fail(e))
        }
        .boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            trace!(path = %path, "fs: remove_file");
            let p = rel(path)?;
            self.upstream_ok()?;
            self.shared.remove_file(&p).await.map_err(|e| self.fail(e))
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            trace!(from = %from, to = %to, "fs: rename");
            let (f, t) = (rel(from)?, rel(to)?);
            self.upstream_ok()?;
            self.shared.rename(&f, &t).await.map_err(|e| self.fail(e))
        }
        .boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            trace!(from = %from, to = %to, "fs: copy");
            let (f, t) = (rel(from)?, rel(to)?);
            self.upstream_ok()?;
            self.shared.copy(&f, &t).await.map_err(|e| self.fail(e))
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
    ) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        future::ready(true).boxed()
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            trace!(path = %path, n = patch.len(), "fs: patch_props");
            let p = rel(path)?;
            // A moved `{DAV:}lastmodified` is a modification time, which
            // `MfDav::proppatch` keeps; it is not a dead property.
            let (times, dead): (Vec<_>, Vec<_>) = patch
                .into_iter()
                .partition(|(_, prop)| prop.namespace.as_deref() == Some(MTIME_NS));
            let mut done: Vec<(StatusCode, DavProp)> = Vec::new();
            if !dead.is_empty() {
                let stored = self.shared.props.patch(&p, dead);
                done.extend(stored.into_iter().map(|p| (StatusCode::OK, p)));
            }
            done.extend(times.into_iter().map(|(_, mut prop)| {
                prop.xml = None;
                (StatusCode::OK, prop)
            }));
            Ok(done)
        }
        .boxed()
    }

    fn get_props<'a>(&'a self, path: &'a DavPath, do_content: bool) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            trace!(path = %path, "fs: get_props");
            let p = rel(path)?;
            Ok(self.shared.props.list(&p, do_content))
        }
        .boxed()
    }

    fn get_prop<'a>(&'a self, path: &'a DavPath, prop: DavProp) -> FsFuture<'a, Vec<u8>> {
        async move {
            trace!(path = %path, prop = %prop.name, "fs: get_prop");
            let p = rel(path)?;
            self.shared.props.get(&p, &prop).ok_or(FsError::NotFound)
        }
        .boxed()
    }

    fn get_quota(&self) -> FsFuture<'_, (u64, Option<u64>)> {
        async move {
            trace!("fs: get_quota");
            self.shared.quota().await.map_err(|e| self.fail(e))
        }
        .boxed()
    }
}
