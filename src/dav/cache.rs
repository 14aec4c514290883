//! The path → entry cache: one listing per folder path, filled from
//! `Remote::list_folder`, updated in place by every mutation this server
//! makes, and revalidated cheaply when its TTL runs out.
//!
//! Terms:
//! - a *path* is the NFC-normalised, `/`-joined relative path (`""` = root);
//! - a *listing* ([`Dir`]) holds a folder's key and its children keyed by NFC
//!   name, the instant it was fetched, and the device revision known *before*
//!   it was fetched (its tag).
//!
//! Freshness: a listing younger than the TTL answers everything, including
//! "no such name" (the negative cache Finder's `._x` probes need). An older
//! one costs one `device_status` call: when the device revision still equals
//! the tag nothing changed anywhere in the account and the listing is kept;
//! otherwise the folder is re-listed. A tag older than the listing is safe
//! (it can only cause an extra re-list), so tags reuse the newest revision
//! seen. This module never decides WebDAV semantics; `fs.rs` does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;
use tracing::debug;

use crate::error::{Error, ErrorKind, Result};
use crate::remote::{DeviceStatus, FileInfo, FolderInfo, ROOT, Remote};

use super::nfc;

/// How long one `device_status` answer may serve several revalidations
/// (a deep path revalidates each ancestor in a row); at most a quarter of
/// the TTL.
const REVALIDATE_WINDOW: Duration = Duration::from_secs(1);

/// Most listings kept; past this, stale ones are dropped at the next fetch.
const MAX_LISTINGS: usize = 20_000;

/// Per-key async locks (single-flight listing, one upload per path).
pub(crate) type KeyLocks = DashMap<String, Arc<tokio::sync::Mutex<()>>>;

/// Runs `work` holding the lock for `key`, then drops the lock's entry when
/// nobody else holds or waits on it (so the map does not grow forever).
pub(crate) async fn serialized<T>(locks: &KeyLocks, key: &str, work: impl Future<Output = T>) -> T {
    let lock = locks.entry(key.to_string()).or_default().clone();
    let out = {
        let _guard = lock.lock().await;
        work.await
    };
    drop(lock);
    // The shard lock held by `remove_if` keeps anyone from cloning meanwhile.
    locks.remove_if(key, |_, l| Arc::strong_count(l) == 1);
    out
}

/// A cached child of a folder.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Folder(FolderInfo),
    File(FileInfo),
}

impl Node {
    pub(crate) fn name(&self) -> &str {
        match self {
            Node::Folder(f) => &f.name,
            Node::File(f) => &f.name,
        }
    }
}

/// One folder's listing.
struct Dir {
    key: String,
    children: HashMap<String, Node>,
    fetched: Instant,
    tag: Option<u64>,
}

pub(crate) struct Cache {
    remote: Arc<dyn Remote>,
    ttl: Duration,
    dirs: DashMap<String, Dir>,
    /// Single-flight per folder path, so N concurrent PROPFINDs list once.
    fetching: KeyLocks,
    /// Newest device status seen, and when.
    device: Mutex<Option<(DeviceStatus, Instant)>>,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
}

/// Splits `a/b/c` into (`a/b`, `c`); the root's children have parent `""`.
pub(crate) fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// Joins a parent path and a child name.
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `path` is `root` or lies below it.
pub(crate) fn is_within(path: &str, root: &str) -> bool {
    root.is_empty()
        || path == root
        || (path.len() > root.len()
            && path.starts_with(root)
            && path.as_bytes()[root.len()] == b'/')
}

/// `path` with its `from` prefix replaced by `to` (caller checked `is_within`).
pub(crate) fn rebase(path: &str, from: &str, to: &str) -> String {
    let rest = &path[from.len()..];
    if to.is_empty() {
        rest.trim_start_matches('/').to_string()
    } else if from.is_empty() {
        join(to, rest)
    } else {
        format!("{to}{rest}")
    }
}

impl Cache {
    pub(crate) fn new(remote: Arc<dyn Remote>, ttl: Duration) -> Cache {
        Cache {
            remote,
            ttl,
            dirs: DashMap::new(),
            fetching: DashMap::new(),
            device: Mutex::new(None),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn is_fresh(&self, path: &str) -> bool {
        self.dirs
            .get(path)
            .is_some_and(|d| d.fetched.elapsed() < self.ttl)
    }

    /// Makes sure a usable listing of the folder at `path` is cached.
    /// `NotFound` when `path` is not a folder.
    pub(crate) async fn ensure(&self, path: &str) -> Result<()> {
        // Ancestors first, top-down: `resolve_key` then finds its parent
        // fresh and recurses one level only, however deep `path` is (a GET
        // of a 2000-segment path overflowed the stack and killed the server).
        if !path.is_empty() {
            let ancestors = std::iter::once(0)
                .chain(path.match_indices('/').map(|(i, _)| i))
                .map(|i| &path[..i]);
            for ancestor in ancestors {
                if !self.is_fresh(ancestor) {
                    self.ensure_one(ancestor).await?;
                }
            }
        }
        self.ensure_one(path).await
    }

    /// [`Cache::ensure`] for one folder whose ancestors are usually fresh.
    async fn ensure_one(&self, path: &str) -> Result<()> {
        if self.is_fresh(path) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        serialized(&self.fetching, path, async {
            if self.is_fresh(path) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            if let Some(tag) = self.dirs.get(path).map(|d| d.tag)
                && self.revalidate(path, tag).await
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let key = self.resolve_key(path).await?;
            self.fetch(path, &key).await
        })
        .await
    }

    /// True when the device revision still equals `tag` (then the listing
    /// is marked fresh again).
    async fn revalidate(&self, path: &str, tag: Option<u64>) -> bool {
        let Some(tag) = tag else { return false };
        let window = REVALIDATE_WINDOW.min(self.ttl / 4);
        let now = match self.device_status(Some(window)).await {
            Ok(s) if s.async_jobs_in_progress => {
                debug!(path, "cache: MediaFire jobs still running, re-listing");
                return false;
            }
            Ok(s) => s.revision,
            Err(e) => {
                debug!(path, error = %e, "cache: revalidation failed, re-listing");
                return false;
            }
        };
        if now != tag {
            debug!(path, tag, now, "cache: account changed, re-listing");
            return false;
        }
        if let Some(mut d) = self.dirs.get_mut(path) {
            d.fetched = Instant::now();
        }
        debug!(path, revision = now, "cache: revalidated");
        true
    }

    /// The folder key of `path`, found through the parent's listing.
    async fn resolve_key(&self, path: &str) -> Result<String> {
        if path.is_empty() {
            return Ok(ROOT.to_string());
        }
        let (parent, name) = split(path);
        Box::pin(self.ensure(parent)).await?;
        match self.child(parent, name) {
            Some(Node::Folder(f)) => Ok(f.key),
            _ => Err(Error::new(ErrorKind::NotFound, "no such folder").with_context("path", path)),
        }
    }

    async fn fetch(&self, path: &str, key: &str) -> Result<()> {
        // The tag must be read before the listing (see module docs). While
        // MediaFire still runs jobs (a folder copy, a trash) the listing may
        // change without us: no tag, so the next revalidation re-lists. When
        // MediaFire is unwell, say so now: listing anyway would spend a
        // second retry budget on the same outage.
        let tag = match self.device_status(None).await {
            Ok(s) if !s.async_jobs_in_progress => Some(s.revision),
            Ok(_) => None,
            Err(e) if upstream_unwell(e.kind()) => return Err(e.with_context("path", path)),
            Err(_) => None,
        };
        self.misses.fetch_add(1, Ordering::Relaxed);
        debug!(path, folder_key = key, "cache: listing folder");
        let listing = match self.remote.list_folder(key).await {
            Ok(l) => l,
            Err(e) => {
                if e.kind() == ErrorKind::NotFound {
                    self.forget_subtree(path);
                }
                return Err(e.with_context("path", path));
            }
        };
        let mut children = HashMap::new();
        for f in listing.folders {
            children.insert(nfc(&f.name), Node::Folder(f));
        }
        for f in listing.files {
            children.entry(nfc(&f.name)).or_insert(Node::File(f));
        }
        let dir = Dir {
            key: key.to_string(),
            children,
            fetched: Instant::now(),
            tag,
        };
        self.dirs.insert(path.to_string(), dir);
        if self.dirs.len() > MAX_LISTINGS {
            let ttl = self.ttl;
            self.dirs.retain(|_, d| d.fetched.elapsed() < ttl);
            debug!(kept = self.dirs.len(), "cache: dropped stale listings");
        }
        Ok(())
    }

    /// The newest device status, asking MediaFire when the one we have is
    /// older than `max_age` (or missing).
    async fn device_status(&self, max_age: Option<Duration>) -> Result<DeviceStatus> {
        let known = *self.device.lock().unwrap();
        if let Some((status, at)) = known
            && max_age.is_none_or(|m| at.elapsed() < m)
        {
            return Ok(status);
        }
        let status = self.remote.device_status().await?;
        *self.device.lock().unwrap() = Some((status, Instant::now()));
        Ok(status)
    }

    /// The key of the folder at `path` (listing it if needed).
    pub(crate) async fn folder_key(&self, path: &str) -> Result<String> {
        self.ensure(path).await?;
        self.dirs.get(path).map(|d| d.key.clone()).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "folder vanished").with_context("path", path)
        })
    }

    /// The entry at `path` (not the root), `None` when it does not exist.
    pub(crate) async fn lookup(&self, path: &str) -> Result<Option<Node>> {
        let (parent, name) = split(path);
        match self.ensure(parent).await {
            Ok(()) => Ok(self.child(parent, name)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Children of the folder at `path`.
    pub(crate) async fn children(&self, path: &str) -> Result<Vec<Node>> {
        self.ensure(path).await?;
        Ok(self
            .dirs
            .get(path)
            .map(|d| d.children.values().cloned().collect())
            .unwrap_or_default())
    }

    /// A cached child, without any remote call.
    pub(crate) fn child(&self, parent: &str, name: &str) -> Option<Node> {
        self.dirs.get(parent)?.children.get(&nfc(name)).cloned()
    }

    /// Records a new or changed child of `parent`.
    pub(crate) fn insert(&self, parent: &str, node: Node) {
        if let Some(mut d) = self.dirs.get_mut(parent) {
            d.children.insert(nfc(node.name()), node);
        }
        self.bump(parent);
    }

    /// Counts a change inside the folder at `path` in its cached revision,
    /// so its ETag changes before MediaFire's new revision is listed.
    fn bump(&self, path: &str) {
        if path.is_empty() {
            return;
        }
        let (parent, name) = split(path);
        // Never called while another entry of `dirs` is borrowed (one shard
        // lock at a time, or DashMap deadlocks).
        if let Some(mut d) = self.dirs.get_mut(parent)
            && let Some(Node::Folder(f)) = d.children.get_mut(name)
        {
            f.revision += 1;
        }
    }

    /// Records a folder this server just created: it is known to be empty.
    pub(crate) fn insert_new_folder(&self, parent: &str, folder: FolderInfo) {
        let path = join(parent, &nfc(&folder.name));
        let tag = self.device.lock().unwrap().map(|(s, _)| s.revision);
        let dir = Dir {
            key: folder.key.clone(),
            children: HashMap::new(),
            fetched: Instant::now(),
            tag,
        };
        // `folder/create` with `skip` may hand back a folder we already list:
        // keep its children rather than showing it empty.
        if self.dirs.get(&path).is_none_or(|d| d.key != folder.key) {
            self.dirs.insert(path, dir);
        }
        self.insert(parent, Node::Folder(folder));
    }

    /// Forgets a child of `parent` (and, for a folder, its listings).
    pub(crate) fn remove(&self, parent: &str, name: &str) {
        self.detach(parent, name);
        self.forget_subtree(&join(parent, &nfc(name)));
    }

    /// Removes a child from its parent's listing, keeping its own listings.
    pub(crate) fn detach(&self, parent: &str, name: &str) {
        if let Some(mut d) = self.dirs.get_mut(parent) {
            d.children.remove(&nfc(name));
        }
        self.bump(parent);
    }

    /// Drops one folder's listing; the next use re-lists it.
    pub(crate) fn forget(&self, path: &str) {
        self.dirs.remove(path);
    }

    /// Moves cached listings of a folder subtree to a new path.
    pub(crate) fn rebase_subtree(&self, from: &str, to: &str) {
        let keys: Vec<String> = self
            .dirs
            .iter()
            .map(|e| e.key().clone())
            .filter(|p| is_within(p, from))
            .collect();
        for old in keys {
            if let Some((_, dir)) = self.dirs.remove(&old) {
                self.dirs.insert(rebase(&old, from, to), dir);
            }
        }
    }

    /// Drops the listings of `path` and everything below it.
    pub(crate) fn forget_subtree(&self, path: &str) {
        if path.is_empty() {
            self.dirs.clear();
        } else {
            self.dirs.retain(|p, _| !is_within(p, path));
        }
    }
}

/// Kinds that mean MediaFire (or the way to it) is failing right now, as
/// opposed to refusing this one request.
fn upstream_unwell(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Transient | ErrorKind::RateLimited | ErrorKind::Auth | ErrorKind::Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::memory::MemoryRemote;

    #[test]
    fn path_helpers() {
        assert_eq!(split("a/b/c"), ("a/b", "c"));
        assert_eq!(split("c"), ("", "c"));
        assert!(is_within("a/b", "a"));
        assert!(!is_within("ab", "a"));
        assert!(is_within("x", ""));
        assert_eq!(rebase("a/b/c", "a/b", "x"), "x/c");
        assert_eq!(rebase("a/b", "a/b", "x/y"), "x/y");
    }

    #[tokio::test]
    async fn fresh_listing_answers_missing_names_without_calls() {
        let remote = Arc::new(MemoryRemote::new());
        remote.put_path("f.txt", b"hi").unwrap();
        let cache = Cache::new(remote.clone(), Duration::from_secs(30));
        assert!(cache.lookup("f.txt").await.unwrap().is_some());
        let before = remote.total_calls();
        for _ in 0..5 {
            assert!(cache.lookup("._f.txt").await.unwrap().is_none());
        }
        assert_eq!(remote.total_calls(), before);
    }

    #[tokio::test]
    async fn expired_listing_costs_one_status_call_when_nothing_changed() {
        let remote = Arc::new(MemoryRemote::new());
        let cache = Cache::new(remote.clone(), Duration::from_millis(200));
        cache.ensure("").await.unwrap();
        assert_eq!(remote.calls("list_folder"), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let status_before = remote.calls("device_status");
        cache.ensure("").await.unwrap();
        assert_eq!(remote.calls("device_status"), status_before + 1);
        assert_eq!(remote.calls("list_folder"), 1);

        // A change elsewhere forces a re-list at the next expiry.
        remote.touch();
        tokio::time::sleep(Duration::from_millis(250)).await;
        cache.ensure("").await.unwrap();
        assert_eq!(remote.calls("list_folder"), 2);
    }

    #[tokio::test]
    async fn running_jobs_defeat_revalidation() {
        let remote = Arc::new(MemoryRemote::new());
        let cache = Cache::new(remote.clone(), Duration::from_millis(100));
        remote.set_jobs_running(true);
        cache.ensure("").await.unwrap();
        remote.set_jobs_running(false);
        tokio::time::sleep(Duration::from_millis(150)).await;
        cache.ensure("").await.unwrap();
        assert_eq!(remote.calls("list_folder"), 2);
    }
}
