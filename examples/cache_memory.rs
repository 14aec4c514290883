//! How much memory the adapter's listing cache takes per cached entry.
//!
//! A counting global allocator tracks the bytes live in this process. The
//! adapter ([`MfDav`]) runs over a synthetic [`Remote`] that makes each
//! folder's listing on demand (realistic names, 15-character quickkeys,
//! 64-character hashes) and keeps nothing itself, so what stays allocated
//! after every folder has been listed once through a depth-1 PROPFIND is the
//! cache. Prints a summary on stderr and one JSON line on stdout (read by
//! `scripts/bench.py`).
//!
//! Run with `cargo run --release --example cache_memory -- --entries 100000
//! [--per-folder 1000]`. An example, so `cargo test` builds it but never
//! runs it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mediafire_dav::dav::{DavConfig, MfDav};
use mediafire_dav::error::{Error, ErrorKind, Result};
use mediafire_dav::remote::{
    AccountInfo, DeviceStatus, Download, FileInfo, FolderInfo, Listing, Quota, ROOT, Remote,
    UploadRequest,
};

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

fn rss() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A remote whose folders `d0000`.. under the root each hold `per_folder`
/// files, made up when listed.
struct Synthetic {
    folders: usize,
    per_folder: usize,
    lists: AtomicU64,
}

const EPOCH: Duration = Duration::from_secs(1_717_000_000);

/// A deterministic 15-character quickkey / 64-character hash for `n`.
fn key(n: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

fn hex_hash(n: u64) -> String {
    let mut x = n.wrapping_add(0x1234_5678);
    (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap_or('0')
        })
        .collect()
}

fn unsupported(what: &str) -> Error {
    Error::new(ErrorKind::Permanent, "not part of the cache benchmark").with_context("call", what)
}

#[async_trait::async_trait]
impl Remote for Synthetic {
    async fn account(&self) -> Result<AccountInfo> {
        Ok(AccountInfo {
            email: "bench@example.com".into(),
            display_name: "bench".into(),
            premium: false,
            quota: Quota {
                used: 0,
                limit: None,
            },
        })
    }

    async fn device_status(&self) -> Result<DeviceStatus> {
        Ok(DeviceStatus {
            revision: 1,
            async_jobs_in_progress: false,
        })
    }

    async fn list_folder(&self, folder_key: &str) -> Result<Listing> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        let created = SystemTime::UNIX_EPOCH + EPOCH;
        if folder_key == ROOT {
            let folders = (0..self.folders)
                .map(|i| FolderInfo {
                    key: format!("f{i:012}"),
                    name: format!("d{i:04}"),
                    created,
                    revision: 1,
                })
                .collect();
            return Ok(Listing {
                folders,
                files: Vec::new(),
            });
        }
        let folder: usize = folder_key
            .strip_prefix('f')
            .and_then(|n| n.parse().ok())
            .filter(|n| *n < self.folders)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such folder"))?;
        let files = (0..self.per_folder)
            .map(|i| {
                let n = (folder * self.per_folder + i) as u64;
                FileInfo {
                    quickkey: key(n, 15),
                    // A typical camera/document name: 24 characters.
                    name: format!("IMG_2024{:04}_{:06}.jpg", folder, i),
                    size: 1_000_000 + n * 37,
                    hash: hex_hash(n),
                    created: created + Duration::from_secs(n),
                    revision: 1,
                }
            })
            .collect();
        Ok(Listing {
            folders: Vec::new(),
            files,
        })
    }

    async fn create_folder(&self, _: &str, _: &str) -> Result<FolderInfo> {
        Err(unsupported("create_folder"))
    }
    async fn rename_folder(&self, _: &str, _: &str) -> Result<()> {
        Err(unsupported("rename_folder"))
    }
    async fn move_folder(&self, _: &str, _: &str) -> Result<()> {
        Err(unsupported("move_folder"))
    }
    async fn delete_folder(&self, _: &str) -> Result<()> {
        Err(unsupported("delete_folder"))
    }
    async fn rename_file(&self, _: &str, _: &str) -> Result<()> {
        Err(unsupported("rename_file"))
    }
    async fn move_file(&self, _: &str, _: &str) -> Result<()> {
        Err(unsupported("move_file"))
    }
    async fn copy_file(&self, _: &str, _: &str) -> Result<String> {
        Err(unsupported("copy_file"))
    }
    async fn delete_file(&self, _: &str) -> Result<()> {
        Err(unsupported("delete_file"))
    }
    async fn upload(&self, _: UploadRequest) -> Result<FileInfo> {
        Err(unsupported("upload"))
    }
    async fn download(&self, _: &str, _: u64, _: Option<u64>) -> Result<Download> {
        Err(unsupported("download"))
    }
}

/// A depth-1 PROPFIND of `path`; returns the number of `href`s in the answer.
async fn propfind(dav: &MfDav, path: &str) -> anyhow::Result<usize> {
    let req = http::Request::builder()
        .method("PROPFIND")
        .uri(path)
        .header("depth", "1")
        .body(Empty::<Bytes>::new())?;
    let resp = dav.handle(req).await;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the PROPFIND answer: {e}"))?
        .to_bytes();
    anyhow::ensure!(status.as_u16() == 207, "PROPFIND {path} answered {status}");
    let text = String::from_utf8_lossy(&body).to_ascii_lowercase();
    Ok(text.matches("<d:href>").count())
}

struct Args {
    entries: usize,
    per_folder: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        entries: 100_000,
        per_folder: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> anyhow::Result<usize> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|v: &usize| *v > 0)
                .ok_or_else(|| anyhow::anyhow!("{name} needs a positive number"))
        };
        match a.as_str() {
            "--entries" => args.entries = value("--entries")?,
            "--per-folder" => args.per_folder = value("--per-folder")?,
            other => anyhow::bail!("unknown argument {other:?} (use --entries N [--per-folder M])"),
        }
    }
    Ok(args)
}

async fn measure(args: Args) -> anyhow::Result<()> {
    let folders = args.entries.div_ceil(args.per_folder);
    let dir = tempfile::tempdir()?;
    let remote = Arc::new(Synthetic {
        folders,
        per_folder: args.per_folder,
        lists: AtomicU64::new(0),
    });
    let dav = MfDav::new(
        remote.clone(),
        DavConfig {
            state_dir: dir.path().join("state"),
            spool_dir: dir.path().join("spool"),
            cache_ttl: Duration::from_secs(3600),
            ..DavConfig::default()
        },
    )?;
    // Warm up: the root listing and whatever the handler sets up lazily.
    let roots = propfind(&dav, "/").await?;
    anyhow::ensure!(roots == folders + 1, "root listed {roots} hrefs");
    let (live0, rss0) = (live(), rss());

    for i in 0..folders {
        let hrefs = propfind(&dav, &format!("/d{i:04}/")).await?;
        anyhow::ensure!(
            hrefs == args.per_folder + 1,
            "folder {i} listed {hrefs} hrefs"
        );
    }
    let (live1, rss1) = (live(), rss());
    // Everything must now come from the cache.
    let lists = remote.lists.load(Ordering::Relaxed);
    propfind(&dav, "/d0000/").await?;
    anyhow::ensure!(
        remote.lists.load(Ordering::Relaxed) == lists,
        "a second PROPFIND listed the folder again: the cache did not keep it"
    );

    let entries = folders * args.per_folder;
    let bytes = live1 - live0;
    let per_entry = bytes as f64 / entries as f64;
    eprintln!(
        "cache_memory: {entries} entries in {folders} folders: {bytes} bytes live \
         ({per_entry:.0} bytes/entry); RSS grew {} KiB; FileInfo is {} bytes inline",
        (rss1 - rss0) / 1024,
        std::mem::size_of::<FileInfo>()
    );
    println!(
        "{{\"entries\": {entries}, \"folders\": {folders}, \"live_bytes\": {bytes}, \
         \"bytes_per_entry\": {per_entry:.1}, \"rss_growth\": {}, \"file_info_inline\": {}}}",
        rss1 - rss0,
        std::mem::size_of::<FileInfo>()
    );
    drop(dav);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(measure(args))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cache_memory: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
