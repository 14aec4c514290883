//! An in-memory [`Remote`] for tests and the `dav_mem` example.
//!
//! It keeps folders and files in two maps keyed like MediaFire (folder keys,
//! quickkeys), bumps a device revision on every mutation, counts calls per
//! method and can be told to fail a method. It follows the trait docs: a
//! failed listing is an error, `create_folder` never duplicates, `copy_file`
//! collision-renames, uploads verify the spool's size and SHA-256, and empty
//! uploads are refused because MediaFire cannot store empty files.
//! It is not an emulator of MediaFire's HTTP API (that is `crate::emulator`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::remote::{
    AccountInfo, DeviceStatus, Download, FileInfo, FolderInfo, Listing, Quota, ROOT, Remote,
    UploadRequest,
};

/// Chunk size of download streams, small enough to exercise re-chunking.
const DOWNLOAD_CHUNK: usize = 7 * 1024;

struct Folder {
    info: FolderInfo,
    parent: String,
}

struct File {
    info: FileInfo,
    folder: String,
    data: Bytes,
}

#[derive(Default)]
struct State {
    folders: HashMap<String, Folder>,
    files: HashMap<String, File>,
    revision: u64,
    next_key: u64,
    calls: HashMap<&'static str, u64>,
    /// method → (kind, remaining count; `u64::MAX` = always)
    faults: HashMap<&'static str, (ErrorKind, u64)>,
    quota_limit: Option<u64>,
    /// Reported by `device_status`.
    jobs_running: bool,
    /// Added to `list_folder` and `upload`, to let concurrent calls overlap.
    latency: std::time::Duration,
}

/// The in-memory remote. Cheap to share behind an `Arc`.
#[doc(hidden)]
pub struct MemoryRemote {
    state: Mutex<State>,
}

impl Default for MemoryRemote {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRemote {
    pub fn new() -> Self {
        MemoryRemote {
            state: Mutex::new(State {
                revision: 1,
                quota_limit: Some(10 * 1024 * 1024 * 1024),
                ..State::default()
            }),
        }
    }

    /// How many times `method` (a trait method name) was called.
    pub fn calls(&self, method: &str) -> u64 {
        let st = self.state.lock().unwrap();
        st.calls.get(method).copied().unwrap_or(0)
    }

    /// Calls of every method together.
    pub fn total_calls(&self) -> u64 {
        self.state.lock().unwrap().calls.values().sum()
    }

    /// Makes the next `times` calls of `method` fail with `kind`
    /// (`u64::MAX` for every call until [`MemoryRemote::clear_faults`]).
    pub fn fail(&self, method: &'static str, kind: ErrorKind, times: u64) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(method, (kind, times));
    }

    /// Sets what `device_status` says about background jobs.
    pub fn set_jobs_running(&self, running: bool) {
        self.state.lock().unwrap().jobs_running = running;
    }

    /// Makes `list_folder` and `upload` take this long (default zero).
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    async fn wait_latency(&self) {
        let latency = self.state.lock().unwrap().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Sets the storage limit reported by `account` and enforced by `upload`.
    pub fn set_quota_limit(&self, limit: Option<u64>) {
        self.state.lock().unwrap().quota_limit = limit;
    }

    /// Content of the file named by a `/`-separated path, for assertions.
    pub fn read_path(&self, path: &str) -> Option<Bytes> {
        let st = self.state.lock().unwrap();
        let (folder, name) = st.resolve_parent(path)?;
        st.files
            .values()
            .find(|f| f.folder == folder && f.info.name == name)
            .map(|f| f.data.clone())
    }

    /// Number of files (not folders) stored anywhere.
    pub fn file_count(&self) -> usize {
        self.state.lock().unwrap().files.len()
    }

    /// Simulates a change made by another client: bumps the device revision.
    pub fn touch(&self) {
        self.state.lock().unwrap().revision += 1;
    }

    /// Adds a file directly, as another client would (bumps the revision).
    pub fn put_path(&self, path: &str, data: &[u8]) -> Result<FileInfo> {
        let mut st = self.state.lock().unwrap();
        let (folder, name) = st
            .resolve_parent(path)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "parent folder missing"))?;
        Ok(st.add_file(&folder, &name, Bytes::copy_from_slice(data)))
    }

    /// Records a call and applies an injected fault, if any.
    fn enter(&self, method: &'static str) -> Result<std::sync::MutexGuard<'_, State>> {
        let mut st = self.state.lock().unwrap();
        *st.calls.entry(method).or_default() += 1;
        if let Some((kind, left)) = st.faults.get_mut(method) {
            let kind = *kind;
            if *left != u64::MAX {
                *left -= 1;
            }
            if *left == 0 {
                st.faults.remove(method);
            }
            return Err(Error::new(kind, "injected failure").with_action(method));
        }
        Ok(st)
    }
}

impl State {
    fn new_key(&mut self, len: usize) -> String {
        self.next_key += 1;
        format!("{:0>width$}", self.next_key, width = len)
    }

    fn folder_exists(&self, key: &str) -> bool {
        key == ROOT || self.folders.contains_key(key)
    }

    fn name_taken(&self, folder: &str, name: &str) -> bool {
        self.folders
            .values()
            .any(|f| f.parent == folder && f.info.name == name)
            || self
                .files
                .values()
                .any(|f| f.folder == folder && f.info.name == name)
    }

    fn resolve_parent(&self, path: &str) -> Option<(String, String)> {
        let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let name = segs.pop()?.to_string();
        let mut key = ROOT.to_string();
        for seg in segs {
            key = self
                .folders
                .iter()
                .find(|(_, f)| f.parent == key && f.info.name == seg)
                .map(|(k, _)| k.clone())?;
        }
        Some((key, name))
    }

    fn add_file(&mut self, folder: &str, name: &str, data: Bytes) -> FileInfo {
        self.revision += 1;
        let quickkey = self.new_key(15);
        let info = FileInfo {
            quickkey: quickkey.clone(),
            name: name.to_string(),
            size: data.len() as u64,
            hash: hex::encode(Sha256::digest(&data)),
            created: SystemTime::now(),
            revision: 1,
        };
        let file = File {
            info: info.clone(),
            folder: folder.to_string(),
            data,
        };
        self.files.insert(quickkey, file);
        info
    }

    fn used(&self) -> u64 {
        self.files.values().map(|f| f.info.size).sum()
    }

    /// A free name in `folder`: `name`, else `stem (n).ext`.
    fn free_name(&self, folder: &str, name: &str) -> String {
        if !self.name_taken(folder, name) {
            return name.to_string();
        }
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], &name[i..]),
            _ => (name, ""),
        };
        (1..)
            .map(|n| format!("{stem} ({n}){ext}"))
            .find(|n| !self.name_taken(folder, n))
            .expect("an unbounded range always yields a free name")
    }

    fn is_inside<'a>(&'a self, mut key: &'a str, ancestor: &str) -> bool {
        while key != ROOT {
            if key == ancestor {
                return true;
            }
            match self.folders.get(key) {
                Some(f) => key = &f.parent,
                None => return false,
            }
        }
        ancestor == ROOT
    }
}

fn not_found(what: &str, key: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no such {what}")).with_context("key", key)
}

fn exists(name: &str) -> Error {
    Error::new(ErrorKind::AlreadyExists, "name taken").with_context("name", name)
}

#[async_trait::async_trait]
impl Remote for MemoryRemote {
    async fn account(&self) -> Result<AccountInfo> {
        let st = self.enter("account")?;
        Ok(AccountInfo {
            email: "demo@example.invalid".into(),
            display_name: "Demo".into(),
            premium: false,
            quota: Quota {
                used: st.used(),
                limit: st.quota_limit,
            },
        })
    }

    async fn device_status(&self) -> Result<DeviceStatus> {
        let st = self.enter("device_status")?;
        Ok(DeviceStatus {
            revision: st.revision,
            async_jobs_in_progress: st.jobs_running,
        })
    }

    async fn list_folder(&self, folder_key: &str) -> Result<Listing> {
        self.wait_latency().await;
        let st = self.enter("list_folder")?;
        if !st.folder_exists(folder_key) {
            return Err(not_found("folder", folder_key));
        }
        let mut listing = Listing::default();
        for f in st.folders.values().filter(|f| f.parent == folder_key) {
            listing.folders.push(f.info.clone());
        }
        for f in st.files.values().filter(|f| f.folder == folder_key) {
            listing.files.push(f.info.clone());
        }
        listing.folders.sort_by(|a, b| a.name.cmp(&b.name));
        listing.files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listing)
    }

    async fn create_folder(&self, parent: &str, name: &str) -> Result<FolderInfo> {
        let mut st = self.enter("create_folder")?;
        if !st.folder_exists(parent) {
            return Err(not_found("folder", parent));
        }
        if name.is_empty() || name.contains('/') {
            return Err(Error::new(ErrorKind::InvalidName, "bad folder name"));
        }
        if st.name_taken(parent, name) {
            return Err(exists(name));
        }
        st.revision += 1;
        let key = st.new_key(13);
        let info = FolderInfo {
            key: key.clone(),
            name: name.to_string(),
            created: SystemTime::now(),
            revision: 1,
        };
        let folder = Folder {
            info: info.clone(),
            parent: parent.to_string(),
        };
        st.folders.insert(key, folder);
        Ok(info)
    }

    async fn rename_folder(&self, folder_key: &str, new_name: &str) -> Result<()> {
        let mut st = self.enter("rename_folder")?;
        let parent = match st.folders.get(folder_key) {
            Some(f) => f.parent.clone(),
            None => return Err(not_found("folder", folder_key)),
        };
        if st.name_taken(&parent, new_name) {
            return Err(exists(new_name));
        }
        st.revision += 1;
        let f = st.folders.get_mut(folder_key).expect("checked above");
        f.info.name = new_name.to_string();
        f.info.revision += 1;
        Ok(())
    }

    async fn move_folder(&self, folder_key: &str, dst_parent: &str) -> Result<()> {
        let mut st = self.enter("move_folder")?;
        let name = match st.folders.get(folder_key) {
            Some(f) => f.info.name.clone(),
            None => return Err(not_found("folder", folder_key)),
        };
        if !st.folder_exists(dst_parent) {
            return Err(not_found("folder", dst_parent));
        }
        if st.is_inside(dst_parent, folder_key) {
            return Err(Error::new(ErrorKind::Forbidden, "move into own subtree"));
        }
        if st.name_taken(dst_parent, &name) {
            return Err(exists(&name));
        }
        st.revision += 1;
        let f = st.folders.get_mut(folder_key).expect("checked above");
        f.parent = dst_parent.to_string();
        f.info.revision += 1;
        Ok(())
    }

    async fn delete_folder(&self, folder_key: &str) -> Result<()> {
        let mut st = self.enter("delete_folder")?;
        if !st.folders.contains_key(folder_key) {
            return Err(not_found("folder", folder_key));
        }
        st.revision += 1;
        let doomed: Vec<String> = st
            .folders
            .keys()
            .filter(|k| st.is_inside(k, folder_key))
            .cloned()
            .collect();
        st.files.retain(|_, f| !doomed.contains(&f.folder));
        for k in doomed {
            st.folders.remove(&k);
        }
        Ok(())
    }

    async fn rename_file(&self, quickkey: &str, new_name: &str) -> Result<()> {
        let mut st = self.enter("rename_file")?;
        let folder = match st.files.get(quickkey) {
            Some(f) => f.folder.clone(),
            None => return Err(not_found("file", quickkey)),
        };
        if st.name_taken(&folder, new_name) {
            return Err(exists(new_name));
        }
        st.revision += 1;
        let f = st.files.get_mut(quickkey).expect("checked above");
        f.info.name = new_name.to_string();
        f.info.revision += 1;
        Ok(())
    }

    async fn move_file(&self, quickkey: &str, dst_folder: &str) -> Result<()> {
        let mut st = self.enter("move_file")?;
        let name = match st.files.get(quickkey) {
            Some(f) => f.info.name.clone(),
            None => return Err(not_found("file", quickkey)),
        };
        if !st.folder_exists(dst_folder) {
            return Err(not_found("folder", dst_folder));
        }
        if st.name_taken(dst_folder, &name) {
            return Err(exists(&name));
        }
        st.revision += 1;
        let f = st.files.get_mut(quickkey).expect("checked above");
        f.folder = dst_folder.to_string();
        f.info.revision += 1;
        Ok(())
    }

    async fn copy_file(&self, quickkey: &str, dst_folder: &str) -> Result<String> {
        let mut st = self.enter("copy_file")?;
        let (name, data) = match st.files.get(quickkey) {
            Some(f) => (f.info.name.clone(), f.data.clone()),
            None => return Err(not_found("file", quickkey)),
        };
        if !st.folder_exists(dst_folder) {
            return Err(not_found("folder", dst_folder));
        }
        let name = st.free_name(dst_folder, &name);
        Ok(st.add_file(dst_folder, &name, data).quickkey)
    }

    async fn delete_file(&self, quickkey: &str) -> Result<()> {
        let mut st = self.enter("delete_file")?;
        if st.files.remove(quickkey).is_none() {
            return Err(not_found("file", quickkey));
        }
        st.revision += 1;
        Ok(())
    }

    async fn upload(&self, request: UploadRequest) -> Result<FileInfo> {
        drop(self.enter("upload")?);
        self.wait_latency().await;
        let data = Bytes::from(tokio::fs::read(&request.source.path).await?);
        let mut st = self.state.lock().unwrap();
        if data.is_empty() {
            return Err(Error::new(
                ErrorKind::Permanent,
                "empty files cannot be stored",
            ));
        }
        if data.len() as u64 != request.source.size
            || hex::encode(Sha256::digest(&data)) != request.source.sha256
        {
            return Err(Error::new(
                ErrorKind::Permanent,
                "spool does not match size/hash",
            ));
        }
        if !st.folder_exists(&request.folder_key) {
            return Err(not_found("folder", &request.folder_key));
        }
        if st
            .quota_limit
            .is_some_and(|l| st.used() + data.len() as u64 > l)
        {
            return Err(Error::new(
                ErrorKind::QuotaExceeded,
                "storage limit reached",
            ));
        }
        match request.replace {
            Some(qk) => {
                let rev = st.revision + 1;
                let f = st
                    .files
                    .get_mut(&qk)
                    .ok_or_else(|| not_found("file", &qk))?;
                if f.folder != request.folder_key || f.info.name != request.name {
                    return Err(Error::new(ErrorKind::Permanent, "replace target mismatch"));
                }
                f.info.size = data.len() as u64;
                f.info.hash = request.source.sha256.clone();
                f.info.revision += 1;
                f.data = data;
                let info = f.info.clone();
                st.revision = rev;
                Ok(info)
            }
            None => {
                if st.name_taken(&request.folder_key, &request.name) {
                    return Err(exists(&request.name));
                }
                Ok(st.add_file(&request.folder_key, &request.name, data))
            }
        }
    }

    async fn download(&self, quickkey: &str, offset: u64, len: Option<u64>) -> Result<Download> {
        let st = self.enter("download")?;
        let f = st
            .files
            .get(quickkey)
            .ok_or_else(|| not_found("file", quickkey))?;
        let total = f.data.len() as u64;
        if offset > total {
            return Err(Error::new(ErrorKind::Permanent, "offset past end of file"));
        }
        let end = len.map_or(total, |l| (offset + l).min(total));
        let body = f.data.slice(offset as usize..end as usize);
        let chunks: Vec<Result<Bytes>> = (0..body.len())
            .step_by(DOWNLOAD_CHUNK)
            .map(|i| Ok(body.slice(i..(i + DOWNLOAD_CHUNK).min(body.len()))))
            .collect();
        Ok(Download {
            body: Box::pin(futures_util::stream::iter(chunks)),
            total_size: total,
        })
    }
}
