//! Content storage: blobs addressed by their SHA-256, plus the units of uploads in progress.
//!
//! In memory mode both live in maps. With a data directory, blobs are files under `blobs/`,
//! units are files under `units/<upload key>/<unit id>`, and every write streams through a file
//! in `tmp/` while it is hashed, so no file is ever held whole in memory. This module knows
//! nothing of folders, names or the API; `state` decides what a blob belongs to.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body::Body;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// A stream of content chunks, as the download host sends them.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Chunk size when streaming content out of the store.
const READ_CHUNK: usize = 64 * 1024;

pub(crate) enum Store {
    Memory {
        blobs: Mutex<HashMap<String, Bytes>>,
        units: Mutex<HashMap<(String, u64), Bytes>>,
    },
    Disk {
        root: PathBuf,
        tmp_counter: AtomicU64,
    },
}

/// An error reading a request body into the store.
#[derive(Debug)]
pub(crate) enum PutError {
    /// The body was longer than allowed.
    TooLong,
    /// The client went away or the disk failed.
    Io(io::Error),
}

impl From<io::Error> for PutError {
    fn from(e: io::Error) -> Self {
        PutError::Io(e)
    }
}

/// What was stored: SHA-256 (lowercase hex) and length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub hash: String,
    pub size: u64,
}

impl Store {
    pub fn memory() -> Self {
        Store::Memory {
            blobs: Mutex::new(HashMap::new()),
            units: Mutex::new(HashMap::new()),
        }
    }

    /// Opens (creating) a store under `root`.
    pub fn disk(root: &Path) -> io::Result<Self> {
        for sub in ["blobs", "units", "tmp"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        // leftovers of an interrupted write are garbage
        if let Ok(entries) = std::fs::read_dir(root.join("tmp")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Store::Disk {
            root: root.to_path_buf(),
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The size of the blob with this hash, if stored.
    pub fn blob_size(&self, hash: &str) -> Option<u64> {
        if !is_sha256_hex(hash) {
            return None;
        }
        match self {
            Store::Memory { blobs, .. } => lock(blobs).get(hash).map(|b| b.len() as u64),
            Store::Disk { root, .. } => std::fs::metadata(blob_path(root, hash))
                .ok()
                .map(|m| m.len()),
        }
    }

    /// Stores a blob given whole (seeding).
    pub fn put_blob_bytes(&self, content: &[u8]) -> io::Result<Stored> {
        let hash = hex::encode(Sha256::digest(content));
        let stored = Stored {
            hash: hash.clone(),
            size: content.len() as u64,
        };
        match self {
            Store::Memory { blobs, .. } => {
                lock(blobs).insert(hash, Bytes::copy_from_slice(content));
            }
            Store::Disk { root, .. } => {
                let target = blob_path(root, &hash);
                if !target.exists() {
                    let tmp = self.tmp_path();
                    std::fs::write(&tmp, content)?;
                    std::fs::rename(&tmp, &target)?;
                }
            }
        }
        Ok(stored)
    }

    /// Streams a request body into a blob, hashing it on the way; fails past `limit` bytes.
    pub async fn put_blob_body<B>(&self, body: B, limit: u64) -> Result<Stored, PutError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        match self {
            Store::Memory { blobs, .. } => {
                let data = collect_limited(body, limit).await?;
                let hash = hex::encode(Sha256::digest(&data));
                let size = data.len() as u64;
                lock(blobs).insert(hash.clone(), data);
                Ok(Stored { hash, size })
            }
            Store::Disk { root, .. } => {
                let tmp = self.tmp_path();
                let result = write_body_to_file(body, &tmp, limit).await;
                let stored = match result {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        return Err(e);
                    }
                };
                tokio::fs::rename(&tmp, blob_path(root, &stored.hash)).await?;
                Ok(stored)
            }
        }
    }

    /// Streams one upload unit into the store, keeping it only when its size and SHA-256 are
    /// the `expected` ones (a damaged retry never replaces a good copy); fails past `limit`
    /// bytes. Returns what arrived either way.
    pub async fn put_unit<B>(
        &self,
        key: &str,
        id: u64,
        body: B,
        limit: u64,
        expected: &Stored,
    ) -> Result<Stored, PutError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        match self {
            Store::Memory { units, .. } => {
                let data = collect_limited(body, limit).await?;
                let hash = hex::encode(Sha256::digest(&data));
                let stored = Stored {
                    hash,
                    size: data.len() as u64,
                };
                if stored == *expected {
                    lock(units).insert((key.to_string(), id), data);
                }
                Ok(stored)
            }
            Store::Disk { root, .. } => {
                let tmp = self.tmp_path();
                let stored = match write_body_to_file(body, &tmp, limit).await {
                    Ok(s) if s == *expected => s,
                    other => {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        return other;
                    }
                };
                let dir = root.join("units").join(key);
                tokio::fs::create_dir_all(&dir).await?;
                tokio::fs::rename(&tmp, dir.join(id.to_string())).await?;
                Ok(stored)
            }
        }
    }

    /// Concatenates units `0..n` of an upload into a blob, streaming; returns the blob's hash
    /// and size. The units stay until [`remove_units`](Self::remove_units).
    pub async fn assemble(&self, key: &str, n: u64) -> io::Result<Stored> {
        match self {
            Store::Memory { blobs, units } => {
                let mut hasher = Sha256::new();
                let mut data = Vec::new();
                {
                    let units = lock(units);
                    for id in 0..n {
                        let unit = units.get(&(key.to_string(), id)).ok_or_else(|| {
                            io::Error::new(io::ErrorKind::NotFound, format!("unit {id} missing"))
                        })?;
                        hasher.update(unit);
                        data.extend_from_slice(unit);
                    }
                }
                let hash = hex::encode(hasher.finalize());
                let size = data.len() as u64;
                lock(blobs).insert(hash.clone(), Bytes::from(data));
                Ok(Stored { hash, size })
            }
            Store::Disk { root, .. } => {
                let tmp = self.tmp_path();
                let result = assemble_files(&root.join("units").join(key), n, &tmp).await;
                match result {
                    Ok(stored) => {
                        tokio::fs::rename(&tmp, blob_path(root, &stored.hash)).await?;
                        Ok(stored)
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        Err(e)
                    }
                }
            }
        }
    }

    /// Forgets every unit of an upload.
    pub async fn remove_units(&self, key: &str) {
        match self {
            Store::Memory { units, .. } => lock(units).retain(|(k, _), _| k != key),
            Store::Disk { root, .. } => {
                let _ = tokio::fs::remove_dir_all(root.join("units").join(key)).await;
            }
        }
    }

    /// Streams `len` bytes of a blob from `start`.
    pub async fn open(&self, hash: &str, start: u64, len: u64) -> io::Result<ByteStream> {
        match self {
            Store::Memory { blobs, .. } => {
                let blob = lock(blobs)
                    .get(hash)
                    .cloned()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "blob missing"))?;
                let end = start.saturating_add(len).min(blob.len() as u64) as usize;
                let start = (start as usize).min(end);
                let slice = blob.slice(start..end);
                let chunks: Vec<io::Result<Bytes>> = (0..slice.len())
                    .step_by(READ_CHUNK)
                    .map(|at| Ok(slice.slice(at..(at + READ_CHUNK).min(slice.len()))))
                    .collect();
                Ok(Box::pin(futures_util::stream::iter(chunks)))
            }
            Store::Disk { root, .. } => {
                let mut file = tokio::fs::File::open(blob_path(root, hash)).await?;
                file.seek(io::SeekFrom::Start(start)).await?;
                let reader = file.take(len);
                let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK);
                Ok(Box::pin(stream.map(|r| r)))
            }
        }
    }

    fn tmp_path(&self) -> PathBuf {
        match self {
            Store::Memory { .. } => PathBuf::new(),
            Store::Disk { root, tmp_counter } => {
                let n = tmp_counter.fetch_add(1, Ordering::Relaxed);
                root.join("tmp").join(format!("{}-{n}", std::process::id()))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn blob_path(root: &Path, hash: &str) -> PathBuf {
    root.join("blobs").join(hash)
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn next_chunk<B>(body: &mut B) -> Result<Option<Bytes>, PutError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => {
                return Err(PutError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("reading request body: {e}"),
                )));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

async fn collect_limited<B>(mut body: B, limit: u64) -> Result<Bytes, PutError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(PutError::TooLong);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

async fn write_body_to_file<B>(mut body: B, path: &Path, limit: u64) -> Result<Stored, PutError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(path).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = next_chunk(&mut body).await? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(PutError::TooLong);
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(Stored {
        hash: hex::encode(hasher.finalize()),
        size,
    })
}

async fn assemble_files(dir: &Path, n: u64, out: &Path) -> io::Result<Stored> {
    let mut file = tokio::fs::File::create(out).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; READ_CHUNK];
    for id in 0..n {
        let mut unit = tokio::fs::File::open(dir.join(id.to_string())).await?;
        loop {
            let got = unit.read(&mut buf).await?;
            if got == 0 {
                break;
            }
            hasher.update(&buf[..got]);
            file.write_all(&buf[..got]).await?;
            size += got as u64;
        }
    }
    file.flush().await?;
    Ok(Stored {
        hash: hex::encode(hasher.finalize()),
        size,
    })
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    async fn read_all(s: ByteStream) -> Vec<u8> {
        let parts: Vec<io::Result<Bytes>> = s.collect().await;
        parts
            .into_iter()
            .flat_map(|p| p.unwrap().to_vec())
            .collect()
    }

    fn expect(data: &[u8]) -> Stored {
        Stored {
            hash: hex::encode(Sha256::digest(data)),
            size: data.len() as u64,
        }
    }

    async fn roundtrip(store: Store) {
        // a damaged unit is reported but not kept
        let bad = store
            .put_unit(
                "k",
                0,
                Full::new(Bytes::from_static(b"hellX ")),
                100,
                &expect(b"hello "),
            )
            .await
            .unwrap();
        assert_ne!(bad, expect(b"hello "));
        assert!(store.assemble("k", 1).await.is_err());
        let a = store
            .put_unit(
                "k",
                0,
                Full::new(Bytes::from_static(b"hello ")),
                100,
                &expect(b"hello "),
            )
            .await
            .unwrap();
        assert_eq!(a.size, 6);
        store
            .put_unit(
                "k",
                1,
                Full::new(Bytes::from_static(b"world")),
                100,
                &expect(b"world"),
            )
            .await
            .unwrap();
        let blob = store.assemble("k", 2).await.unwrap();
        assert_eq!(blob.hash, hex::encode(Sha256::digest(b"hello world")));
        assert_eq!(store.blob_size(&blob.hash), Some(11));
        assert_eq!(
            read_all(store.open(&blob.hash, 3, 5).await.unwrap()).await,
            b"lo wo"
        );
        store.remove_units("k").await;
        assert!(store.assemble("k", 2).await.is_err());
        let too_long = store
            .put_blob_body(Full::new(Bytes::from_static(b"0123456789")), 5)
            .await;
        assert!(matches!(too_long, Err(PutError::TooLong)));
    }

    #[tokio::test]
    async fn memory_store_roundtrip() {
        roundtrip(Store::memory()).await;
    }

    #[tokio::test]
    async fn disk_store_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        roundtrip(Store::disk(dir.path()).unwrap()).await;
    }
}
