//! `MfFile`: dav-server's `DavFile` for reads and spooled writes.
//!
//! Reads: `open` is lazy; the first `read_bytes` takes the stream `handle`
//! prefetched for this offset, or opens one download there, and later reads
//! drain it. Only a `seek` to another offset drops the stream (dav-server
//! seeks once per range), so a GET costs one upstream request and a HEAD
//! none. `read_bytes` never returns more than asked, and a stream ending
//! early is an error, never a short read (dav-server would pad it with
//! zeros). Overlay files are read from their local blob.
//!
//! Writes: the body goes to a tempfile in `spool_dir` (created on the first
//! byte) while SHA-256 is computed, so memory stays bounded. dav-server has
//! no close: `flush()` commits. It first checks the byte count against
//! `OpenOptions::size` (Content-Length or `X-Expected-Entity-Length`) and
//! refuses a short or long body without uploading anything. A dropped
//! connection never reaches `flush`; the spool is deleted in `Drop`.

use std::io::SeekFrom;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture};
use futures_util::{FutureExt, StreamExt};
use http::StatusCode;
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use crate::error::{Error, ErrorKind};
use crate::remote::{ByteStream, FileInfo};

use super::error::Failure;
use super::fs::{Prefetch, Shared};
use super::meta::MfMeta;

/// Name prefix of spool files, so a sweep after a crash finds only ours.
pub(crate) const SPOOL_PREFIX: &str = "mfdav-put-";

pub(crate) struct MfFile {
    mode: Mode,
    shared: Arc<Shared>,
    failure: Failure,
}

enum Mode {
    /// An overlay entry, read from its blob.
    Local {
        blob: Option<std::fs::File>,
        size: u64,
        pos: u64,
        meta: MfMeta,
    },
    Remote(Reader),
    Write(Writer),
}

struct Reader {
    info: FileInfo,
    prefetch: Prefetch,
    pos: u64,
    /// `Mutex` only to make the `!Sync` stream `Sync`; always reached
    /// through `get_mut`, never locked across an await.
    stream: Mutex<Option<ByteStream>>,
    /// Bytes received but not yet handed out.
    pending: Bytes,
}

struct Writer {
    path: String,
    expected: Option<u64>,
    mtime: Option<SystemTime>,
    spool: Option<(tokio::fs::File, TempPath)>,
    hasher: Sha256,
    written: u64,
    committed: Option<MfMeta>,
}

impl std::fmt::Debug for MfFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mode {
            Mode::Local { pos, .. } => f.debug_struct("MfFile::Local").field("pos", pos).finish(),
            Mode::Remote(r) => f
                .debug_struct("MfFile::Remote")
                .field("quickkey", &r.info.quickkey)
                .field("pos", &r.pos)
                .finish(),
            Mode::Write(w) => f
                .debug_struct("MfFile::Write")
                .field("path", &w.path)
                .field("written", &w.written)
                .finish(),
        }
    }
}

/// Whether an I/O error means the disk is full.
fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

impl MfFile {
    pub(crate) fn local(blob: Option<std::fs::File>, meta: MfMeta, shared: Arc<Shared>) -> MfFile {
        let size = meta.len;
        MfFile {
            mode: Mode::Local {
                blob,
                size,
                pos: 0,
                meta,
            },
            shared,
            failure: Failure::default(),
        }
    }

    pub(crate) fn remote(
        info: FileInfo,
        shared: Arc<Shared>,
        failure: Failure,
        prefetch: Prefetch,
    ) -> MfFile {
        let reader = Reader {
            info,
            prefetch,
            pos: 0,
            stream: Mutex::new(None),
            pending: Bytes::new(),
        };
        MfFile {
            mode: Mode::Remote(reader),
            shared,
            failure,
        }
    }

    pub(crate) fn writer(
        path: String,
        expected: Option<u64>,
        mtime: Option<SystemTime>,
        shared: Arc<Shared>,
        failure: Failure,
    ) -> MfFile {
        let writer = Writer {
            path,
            expected,
            mtime,
            spool: None,
            hasher: Sha256::new(),
            written: 0,
            committed: None,
        };
        MfFile {
            mode: Mode::Write(writer),
            shared,
            failure,
        }
    }

    async fn read_remote(&mut self, count: usize) -> Result<Bytes, FsError> {
        let Mode::Remote(r) = &mut self.mode else {
            return Err(FsError::Forbidden);
        };
        while r.pending.is_empty() {
            if r.pos >= r.info.size || count == 0 {
                return Ok(Bytes::new());
            }
            let slot = r.stream.get_mut().unwrap();
            if slot.is_none()
                && let Some(body) = r.prefetch.take(&r.info.quickkey, r.pos)
            {
                *slot = Some(body);
            }
            if slot.is_none() {
                debug!(quickkey = %r.info.quickkey, offset = r.pos, "read: opening download");
                let dl = self
                    .shared
                    .remote
                    .download(&r.info.quickkey, r.pos, None)
                    .await
                    .map_err(|e| self.failure.convert(&e))?;
                *slot = Some(dl.body);
            }
            let stream = slot.as_mut().expect("set above");
            match stream.next().await {
                Some(Ok(chunk)) => r.pending = chunk,
                Some(Err(e)) => {
                    *slot = None;
                    return Err(self.failure.convert(&e));
                }
                None => {
                    *slot = None;
                    let e = Error::new(ErrorKind::Transient, "download ended before the file did")
                        .with_context("quickkey", &r.info.quickkey)
                        .with_context("offset", r.pos);
                    return Err(self.failure.convert(&e));
                }
            }
        }
        let n = count.min(r.pending.len());
        let out = r.pending.split_to(n);
        r.pos += n as u64;
        self.shared
            .counters
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(out)
    }

    async fn write(&mut self, buf: Bytes) -> Result<(), FsError> {
        let Mode::Write(w) = &mut self.mode else {
            return Err(FsError::Forbidden);
        };
        if w.committed.is_some() {
            return Err(FsError::GeneralFailure);
        }
        if buf.is_empty() {
            return Ok(());
        }
        if w.spool.is_none() {
            let tmp = tempfile::Builder::new()
                .prefix(SPOOL_PREFIX)
                .tempfile_in(&self.shared.config.spool_dir)
                .map_err(|e| spool_error(&self.failure, e, &w.path))?;
            let (file, path) = tmp.into_parts();
            w.spool = Some((tokio::fs::File::from_std(file), path));
        }
        let (file, _) = w.spool.as_mut().expect("set above");
        if let Err(e) = file.write_all(&buf).await {
            // Drop the spool now: a full disk must not stay full.
            w.spool = None;
            return Err(spool_error(&self.failure, e, &w.path));
        }
        w.hasher.update(&buf);
        w.written += buf.len() as u64;
        self.shared
            .counters
            .bytes_in
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), FsError> {
        let Mode::Write(w) = &mut self.mode else {
            return Ok(());
        };
        if w.committed.is_some() {
            return Ok(());
        }
        if let Some(expected) = w.expected
            && expected != w.written
        {
            warn!(path = %w.path, expected, received = w.written, "upload: body length differs from the announced size, not committing");
            w.spool = None;
            self.failure.set(StatusCode::BAD_REQUEST);
            return Err(FsError::GeneralFailure);
        }
        if let Some((file, _)) = w.spool.as_mut()
            && let Err(e) = file.flush().await
        {
            w.spool = None;
            return Err(spool_error(&self.failure, e, &w.path));
        }
        let sha256 = hex::encode(w.hasher.finalize_reset());
        let spool_path = w
            .spool
            .as_ref()
            .map(|(_, p)| p.to_path_buf())
            .unwrap_or_default();
        let result = self
            .shared
            .commit(&w.path, &spool_path, w.written, &sha256, w.mtime)
            .await;
        // Committed or failed, the spool has served its purpose.
        w.spool = None;
        match result {
            Ok(meta) => {
                debug!(path = %w.path, size = w.written, "upload: committed");
                w.committed = Some(meta);
                Ok(())
            }
            Err(e) => Err(self.failure.convert(&e.with_context("path", &w.path))),
        }
    }
}

/// Reads up to `count` bytes of a local blob at `*pos`. Blobs are small
/// Finder files, so the blocking read is short.
fn read_blob(
    blob: Option<&std::fs::File>,
    size: u64,
    pos: &mut u64,
    count: usize,
) -> Result<Bytes, FsError> {
    use std::io::{Read, Seek};
    let want = size.saturating_sub(*pos).min(count as u64) as usize;
    let Some(mut file) = blob.filter(|_| want > 0) else {
        return Ok(Bytes::new());
    };
    let mut buf = vec![0u8; want];
    let read = file
        .seek(SeekFrom::Start(*pos))
        .and_then(|_| file.read(&mut buf));
    match read {
        Ok(0) | Err(_) => {
            warn!(
                pos = *pos,
                size, "overlay: blob shorter than its entry or unreadable"
            );
            Err(FsError::GeneralFailure)
        }
        Ok(n) => {
            buf.truncate(n);
            *pos += n as u64;
            Ok(Bytes::from(buf))
        }
    }
}

fn spool_error(failure: &Failure, e: std::io::Error, path: &str) -> FsError {
    let kind = if is_disk_full(&e) {
        ErrorKind::Local
    } else {
        ErrorKind::Permanent
    };
    let err = Error::new(kind, "writing the upload spool")
        .with_context("path", path)
        .with_source(e);
    if kind == ErrorKind::Permanent {
        // A local I/O failure that is not "disk full" is our fault.
        failure.set(StatusCode::INTERNAL_SERVER_ERROR);
        tracing::error!(error = %err, "upload: spool failure");
        return FsError::GeneralFailure;
    }
    failure.convert(&err)
}

impl Drop for MfFile {
    fn drop(&mut self) {
        if let Mode::Write(w) = &self.mode
            && w.committed.is_none()
            && w.spool.is_some()
        {
            // The TempPath deletes the file as it drops.
            debug!(path = %w.path, received = w.written, "upload: abandoned, deleting spool");
        }
    }
}

impl DavFile for MfFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = match &self.mode {
            Mode::Local { meta, .. } => meta.clone(),
            Mode::Remote(r) => self.shared.file_meta(&r.info),
            Mode::Write(w) => w.committed.clone().unwrap_or_else(|| {
                let now = SystemTime::now();
                MfMeta::local(w.written, now, now, "")
            }),
        };
        async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) }.boxed()
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.write(bytes).boxed()
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        self.write(buf).boxed()
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            match &mut self.mode {
                Mode::Local {
                    blob, size, pos, ..
                } => read_blob(blob.as_ref(), *size, pos, count),
                Mode::Remote(_) => self.read_remote(count).await,
                Mode::Write(_) => Err(FsError::Forbidden),
            }
        }
        .boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            let (cur, len) = match &self.mode {
                Mode::Local { pos, size, .. } => (*pos, *size),
                Mode::Remote(r) => (r.pos, r.info.size),
                Mode::Write(w) => (w.written, w.written),
            };
            let target = match pos {
                SeekFrom::Start(n) => Some(n),
                SeekFrom::Current(d) => cur.checked_add_signed(d),
                SeekFrom::End(d) => len.checked_add_signed(d),
            }
            .ok_or(FsError::GeneralFailure)?;
            match &mut self.mode {
                Mode::Local { pos, .. } => *pos = target,
                Mode::Remote(r) => {
                    if target != r.pos {
                        // The open stream is at the wrong offset: re-open lazily.
                        *r.stream.get_mut().unwrap() = None;
                        r.pending = Bytes::new();
                        r.pos = target;
                    }
                }
                Mode::Write(w) => {
                    if target != w.written {
                        debug!(path = %w.path, target, "fs: seek in an upload refused (no partial writes)");
                        return Err(FsError::NotImplemented);
                    }
                }
            }
            Ok(target)
        }
        .boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        self.commit().boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_is_insufficient_storage_and_other_io_is_500() {
        let f = Failure::default();
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(spool_error(&f, full, "p"), FsError::InsufficientStorage);
        let f = Failure::default();
        let other = std::io::Error::other("boom");
        assert_eq!(spool_error(&f, other, "p"), FsError::GeneralFailure);
        assert_eq!(f.get(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
