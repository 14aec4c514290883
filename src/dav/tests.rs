//! Request-level tests: `MfDav::handle` driven in-process over the
//! in-memory remote, one behaviour per test.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dav_server::davpath::DavPath;
use dav_server::fs::{DavFileSystem, OpenOptions};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};

use super::error::Failure;
use super::fs::{MfFs, Prefetch};
use super::memory::MemoryRemote;
use super::{DavConfig, MfDav};
use crate::error::ErrorKind;

struct Env {
    dav: MfDav,
    remote: Arc<MemoryRemote>,
    state: tempfile::TempDir,
    spool: tempfile::TempDir,
}

fn env() -> Env {
    env_with(|_| {})
}

fn env_with(tweak: impl FnOnce(&mut DavConfig)) -> Env {
    let remote = Arc::new(MemoryRemote::new());
    let state = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut config = DavConfig {
        state_dir: state.path().to_path_buf(),
        spool_dir: spool.path().to_path_buf(),
        ..DavConfig::default()
    };
    tweak(&mut config);
    let dav = MfDav::new(remote.clone(), config).unwrap();
    Env {
        dav,
        remote,
        state,
        spool,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Env {
    async fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        let resp = self.dav.handle(req).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match resp.into_body().collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(e) => format!("<body error: {e}>"),
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn put(&self, path: &str, body: &[u8]) -> StatusCode {
        let len = body.len().to_string();
        self.req("PUT", path, &[("content-length", &len)], body)
            .await
            .status
    }

    async fn propfind(&self, path: &str, depth: &str) -> Reply {
        self.req("PROPFIND", path, &[("depth", depth)], b"").await
    }

    fn spool_files(&self) -> usize {
        std::fs::read_dir(self.spool.path()).unwrap().count()
    }

    fn fs(&self) -> MfFs {
        MfFs {
            shared: self.dav.shared.clone(),
            failure: Failure::default(),
            prefetch: Prefetch::default(),
            mtime: None,
            delete_root: None,
        }
    }
}

#[tokio::test]
async fn put_then_get_and_propfind_without_relisting() {
    let e = env();
    assert_eq!(e.put("/a.txt", b"hello world").await, StatusCode::CREATED);
    assert_eq!(e.remote.read_path("a.txt").unwrap(), &b"hello world"[..]);
    let lists = e.remote.calls("list_folder");

    let r = e.propfind("/", "1").await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert!(r.body.contains("a.txt"), "{}", r.body);
    assert_eq!(e.remote.calls("list_folder"), lists);

    let r = e.req("GET", "/a.txt", &[], b"").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "hello world");
    assert!(r.headers.get("etag").is_some());
    assert_eq!(e.spool_files(), 0);

    // Overwrite replaces the same file.
    assert_eq!(e.put("/a.txt", b"bye").await, StatusCode::NO_CONTENT);
    assert_eq!(e.remote.file_count(), 1);
    assert_eq!(e.remote.read_path("a.txt").unwrap(), &b"bye"[..]);
}

#[tokio::test]
async fn get_range_uses_one_download_and_head_none() {
    let e = env();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    e.put("/big", &data).await;

    let r = e.req("HEAD", "/big", &[], b"").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(e.remote.calls("download"), 0);

    let mut b = Request::builder().method("GET").uri("/big");
    b = b.header("range", "bytes=1000-40999");
    let resp = e.dav.handle(b.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], &data[1000..41000]);
    assert_eq!(e.remote.calls("download"), 1);
}

#[tokio::test]
async fn short_body_is_refused_without_upload() {
    let e = env();
    let r = e
        .req("PUT", "/short", &[("content-length", "10")], b"12345")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.remote.calls("upload"), 0);
    assert_eq!(e.spool_files(), 0);
    assert_eq!(
        e.propfind("/short", "0").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn dropped_writer_removes_spool() {
    let e = env();
    let fs = e.fs();
    let path = DavPath::new("/dropped").unwrap();
    let options = OpenOptions {
        write: true,
        create: true,
        truncate: true,
        size: Some(100),
        ..OpenOptions::default()
    };
    let mut file = fs.open(&path, options).await.unwrap();
    file.write_bytes(Bytes::from_static(b"partial"))
        .await
        .unwrap();
    assert_eq!(e.spool_files(), 1);
    drop(file);
    assert_eq!(e.spool_files(), 0);
    assert_eq!(e.remote.calls("upload"), 0);
}

#[tokio::test]
async fn zero_byte_put_lives_in_overlay_until_content_arrives() {
    let e = env();
    assert_eq!(e.put("/empty", b"").await, StatusCode::CREATED);
    assert_eq!(e.remote.calls("upload"), 0);
    let r = e.propfind("/", "1").await;
    assert!(r.body.contains("/empty"), "{}", r.body);
    let r = e.req("GET", "/empty", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, ""));

    assert_eq!(e.put("/empty", b"now full").await, StatusCode::NO_CONTENT);
    assert_eq!(e.remote.read_path("empty").unwrap(), &b"now full"[..]);
    assert!(e.dav.shared.overlay.get("empty").is_none());

    // Emptying a remote file trashes it and keeps a local empty entry.
    assert_eq!(e.put("/empty", b"").await, StatusCode::NO_CONTENT);
    assert_eq!(e.remote.file_count(), 0);
    assert_eq!(
        e.req("GET", "/empty", &[], b"").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn mkcol_statuses() {
    let e = env();
    assert_eq!(
        e.req("MKCOL", "/d", &[], b"").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        e.req("MKCOL", "/d", &[], b"").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        e.req("MKCOL", "/no/d", &[], b"").await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(e.put("/no/f", b"x").await, StatusCode::CONFLICT);
    // The new folder is known empty: listing it costs nothing.
    let lists = e.remote.calls("list_folder");
    assert_eq!(
        e.propfind("/d/", "1").await.status,
        StatusCode::MULTI_STATUS
    );
    assert_eq!(e.remote.calls("list_folder"), lists);
}

#[tokio::test]
async fn delete_file_and_collection() {
    let e = env();
    e.req("MKCOL", "/d", &[], b"").await;
    e.put("/d/f", b"x").await;
    e.put("/d/empty", b"").await;
    e.put("/g", b"y").await;
    assert_eq!(
        e.req("DELETE", "/g", &[], b"").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        e.req("DELETE", "/d/", &[], b"").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(e.remote.file_count(), 0);
    assert_eq!(e.propfind("/d/", "0").await.status, StatusCode::NOT_FOUND);
    assert!(e.dav.shared.overlay.get("d/empty").is_none());
}

#[tokio::test]
async fn copy_and_move_files_and_folders() {
    let e = env();
    e.req("MKCOL", "/a", &[], b"").await;
    e.req("MKCOL", "/b", &[], b"").await;
    e.put("/a/f", b"data").await;
    let dest = |p: &str| format!("http://localhost{p}");

    let r = e
        .req("COPY", "/a/f", &[("destination", &dest("/b/g"))], b"")
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(e.remote.read_path("b/g").unwrap(), &b"data"[..]);
    let r = e
        .req("COPY", "/a/f", &[("destination", &dest("/a/f2"))], b"")
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(e.remote.read_path("a/f2").unwrap(), &b"data"[..]);

    let r = e
        .req("MOVE", "/a/f", &[("destination", &dest("/b/h"))], b"")
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(e.remote.read_path("a/f").is_none());
    assert_eq!(e.remote.read_path("b/h").unwrap(), &b"data"[..]);

    // Move over an existing destination with Overwrite: T.
    let r = e
        .req(
            "MOVE",
            "/a/f2",
            &[("destination", &dest("/b/h")), ("overwrite", "T")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(e.remote.file_count(), 2);

    // Folder rename+move carries its content and cached listing.
    let r = e
        .req("MOVE", "/b/", &[("destination", &dest("/a/c/"))], b"")
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(e.remote.read_path("a/c/h").unwrap(), &b"data"[..]);
    let r = e.req("GET", "/a/c/g", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "data"));
}

#[tokio::test]
async fn lock_on_unmapped_url_makes_a_lock_null_resource() {
    let e = env();
    let body = br#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let r = e
        .req("LOCK", "/locked", &[("timeout", "Second-60")], body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.headers.get("lock-token").is_some());
    assert_eq!(
        e.propfind("/locked", "0").await.status,
        StatusCode::MULTI_STATUS
    );
    assert_eq!(e.remote.calls("upload"), 0);
}

#[tokio::test]
async fn dead_props_persist_follow_move_and_drop_on_delete() {
    let e = env();
    e.put("/p", b"x").await;
    let patch = br#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:color>blue</Z:color></D:prop></D:set></D:propertyupdate>"#;
    let r = e.req("PROPPATCH", "/p", &[], patch).await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert!(r.body.contains("200"), "{}", r.body);

    // A new adapter on the same state dir sees the property.
    let config = DavConfig {
        state_dir: e.state.path().to_path_buf(),
        spool_dir: e.spool.path().to_path_buf(),
        ..DavConfig::default()
    };
    let again = Env {
        dav: MfDav::new(e.remote.clone(), config).unwrap(),
        remote: e.remote.clone(),
        state: tempfile::tempdir().unwrap(),
        spool: tempfile::tempdir().unwrap(),
    };
    let find = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><Z:color/></D:prop></D:propfind>"#;
    let r = again.req("PROPFIND", "/p", &[("depth", "0")], find).await;
    assert!(r.body.contains("blue"), "{}", r.body);

    let r = again
        .req("MOVE", "/p", &[("destination", "http://localhost/q")], b"")
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = again.req("PROPFIND", "/q", &[("depth", "0")], find).await;
    assert!(r.body.contains("blue"), "{}", r.body);

    again.req("DELETE", "/q", &[], b"").await;
    again.put("/q", b"new").await;
    let r = again.req("PROPFIND", "/q", &[("depth", "0")], find).await;
    assert!(!r.body.contains("blue"), "{}", r.body);
}

#[tokio::test]
async fn listing_failure_is_an_error_not_an_empty_folder() {
    let e = env();
    e.req("MKCOL", "/d", &[], b"").await;
    e.dav.shared.cache.forget("d");
    e.remote.fail("list_folder", ErrorKind::Transient, u64::MAX);
    let r = e.propfind("/d/", "1").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);

    e.remote
        .fail("list_folder", ErrorKind::RateLimited, u64::MAX);
    let r = e.propfind("/d/", "1").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers.get("retry-after").is_some());

    e.remote.clear_faults();
    assert_eq!(
        e.propfind("/d/", "1").await.status,
        StatusCode::MULTI_STATUS
    );
}

#[tokio::test]
async fn auth_failure_on_get_is_503() {
    let e = env();
    e.put("/f", b"abc").await;
    e.remote.fail("download", ErrorKind::Auth, 1);
    let r = e.req("GET", "/f", &[], b"").await;
    // dav-server starts the body before the first read; the failure shows as
    // a broken body rather than a status, so only check that no data leaked.
    assert!(
        r.status != StatusCode::OK || r.body.starts_with("<body error"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn fresh_folder_propfind_and_missing_probes_cost_nothing() {
    let e = env();
    e.put("/f", b"abc").await;
    e.propfind("/", "1").await;
    let before = e.remote.total_calls();
    let r = e.propfind("/", "1").await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    for _ in 0..3 {
        assert_eq!(e.propfind("/._f", "0").await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            e.propfind("/missing", "0").await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(e.remote.total_calls(), before);
}

#[tokio::test]
async fn revalidation_after_ttl_costs_one_status_call() {
    let e = env_with(|c| c.cache_ttl = Duration::from_millis(200));
    e.propfind("/", "1").await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, lists) = (
        e.remote.calls("device_status"),
        e.remote.calls("list_folder"),
    );
    assert_eq!(e.propfind("/", "1").await.status, StatusCode::MULTI_STATUS);
    assert_eq!(e.remote.calls("device_status"), status + 1);
    assert_eq!(e.remote.calls("list_folder"), lists);
}

#[tokio::test]
async fn missing_depth_means_one() {
    let e = env();
    e.put("/f", b"abc").await;
    let r = e.req("PROPFIND", "/f", &[], b"").await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert!(r.body.contains("/f</"), "{}", r.body);
    let r = e.req("PROPFIND", "/", &[], b"").await;
    assert!(r.body.contains("<D:href>/</D:href>"), "{}", r.body);
}

#[tokio::test]
async fn read_only_refuses_mutations_with_403() {
    let e = env_with(|c| c.read_only = true);
    for m in [
        "PUT",
        "DELETE",
        "MKCOL",
        "PROPPATCH",
        "LOCK",
        "MOVE",
        "COPY",
    ] {
        assert_eq!(
            e.req(m, "/x", &[], b"").await.status,
            StatusCode::FORBIDDEN,
            "{m}"
        );
    }
    assert_eq!(e.propfind("/", "1").await.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        e.remote.calls("create_folder") + e.remote.calls("upload"),
        0
    );
    let allow = e.req("OPTIONS", "/", &[], b"").await.headers["allow"].clone();
    assert!(!allow.to_str().unwrap().contains("PUT"), "{allow:?}");
}

#[tokio::test]
async fn concurrent_puts_to_one_path_end_with_one_file() {
    let e = env();
    let (a, b) = tokio::join!(e.put("/same", b"first"), e.put("/same", b"second"));
    assert!(a.is_success() && b.is_success(), "{a} {b}");
    assert_eq!(e.remote.file_count(), 1);
}

#[tokio::test]
async fn names_are_matched_in_nfc() {
    let e = env();
    // "é" decomposed (NFD) on PUT, composed (NFC) on GET.
    assert_eq!(e.put("/cafe%CC%81", b"x").await, StatusCode::CREATED);
    let r = e.req("GET", "/caf%C3%A9", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "x"));
    e.req("MKCOL", "/d%C3%A9", &[], b"").await;
    let r = e.req("MKCOL", "/de%CC%81", &[], b"").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn quota_comes_from_account_and_is_cached() {
    let e = env();
    e.put("/f", b"12345").await;
    let find = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"#;
    let r = e.req("PROPFIND", "/", &[("depth", "0")], find).await;
    assert!(r.body.contains("quota-used-bytes>5<"), "{}", r.body);
    e.req("PROPFIND", "/", &[("depth", "0")], find).await;
    assert_eq!(e.remote.calls("account"), 1);
}

#[tokio::test]
async fn apple_files_stay_local() {
    let e = env();
    assert_eq!(e.put("/._f", b"fork").await, StatusCode::CREATED);
    assert_eq!(e.remote.calls("upload"), 0);
    let r = e.req("GET", "/._f", &[], b"").await;
    assert_eq!(r.body, "fork");
}

#[tokio::test]
async fn quota_exceeded_is_507() {
    let e = env();
    e.remote.set_quota_limit(Some(3));
    assert_eq!(
        e.put("/big", b"12345").await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    assert_eq!(e.spool_files(), 0);
}

#[tokio::test]
async fn overlay_entries_and_props_follow_folder_moves_and_copies() {
    let e = env();
    e.req("MKCOL", "/a", &[], b"").await;
    e.put("/a/empty", b"").await;
    let patch = br#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:tag>t1</Z:tag></D:prop></D:set></D:propertyupdate>"#;
    e.req("PROPPATCH", "/a/empty", &[], patch).await;

    let r = e
        .req(
            "COPY",
            "/a/empty",
            &[("destination", "http://h/a/copy")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = e
        .req("MOVE", "/a/", &[("destination", "http://h/b/")], b"")
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = e.propfind("/b/", "1").await;
    assert!(
        r.body.contains("/b/empty") && r.body.contains("/b/copy"),
        "{}",
        r.body
    );
    let find = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><Z:tag/></D:prop></D:propfind>"#;
    for p in ["/b/empty", "/b/copy"] {
        let r = e.req("PROPFIND", p, &[("depth", "0")], find).await;
        assert!(r.body.contains("t1"), "{p}: {}", r.body);
    }
    assert_eq!(e.remote.calls("upload"), 0);
}

#[tokio::test]
async fn lock_null_resource_takes_content_later() {
    let e = env();
    let body = br#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let r = e.req("LOCK", "/ln", &[], body).await;
    let token = r.headers["lock-token"].to_str().unwrap().to_string();
    let r = e
        .req(
            "PUT",
            "/ln",
            &[("if", &format!("({token})")), ("content-length", "4")],
            b"data",
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(e.remote.read_path("ln").unwrap(), &b"data"[..]);
    assert!(e.dav.shared.overlay.get("ln").is_none());
}

#[tokio::test]
async fn depth_infinity_is_refused() {
    let e = env();
    let r = e.propfind("/", "infinity").await;
    assert!(
        r.status.is_client_error() || r.status.is_server_error(),
        "{}",
        r.status
    );
    assert_ne!(r.status, StatusCode::MULTI_STATUS);
}

#[tokio::test]
async fn stats_count_cache_and_bytes() {
    let e = env();
    e.put("/f", b"12345").await;
    e.req("GET", "/f", &[], b"").await;
    e.propfind("/", "1").await;
    let s = e.dav.stats();
    assert_eq!((s.bytes_in, s.bytes_out, s.uploads_in_flight), (5, 5, 0));
    assert!(s.cache_misses >= 1 && s.cache_hits >= 1, "{s:?}");
}

#[tokio::test]
async fn partial_updates_are_refused() {
    let e = env();
    e.put("/f", b"12345").await;
    let r = e
        .req(
            "PUT",
            "/f",
            &[("content-range", "bytes 0-1/5"), ("content-length", "2")],
            b"ab",
        )
        .await;
    assert!(!r.status.is_success(), "{}", r.status);
    assert_eq!(e.remote.read_path("f").unwrap(), &b"12345"[..]);
}

#[test]
fn range_start_parses_first_range() {
    use super::range_start;
    assert_eq!(range_start("bytes=10-20", 100), Some(10));
    assert_eq!(range_start("bytes=10-", 100), Some(10));
    assert_eq!(range_start("bytes=-30", 100), Some(70));
    assert_eq!(range_start("bytes=5-6,1-2", 100), Some(5));
    assert_eq!(range_start("items=1-2", 100), None);
}

#[tokio::test]
async fn prefix_is_stripped_for_paths_and_destinations() {
    let e = env_with(|c| c.prefix = "/dav".into());
    assert_eq!(e.put("/dav/f", b"abc").await, StatusCode::CREATED);
    assert_eq!(e.remote.read_path("f").unwrap(), &b"abc"[..]);
    let r = e.propfind("/dav/", "1").await;
    assert!(r.body.contains("<D:href>/dav/f</D:href>"), "{}", r.body);
    let r = e
        .req("MOVE", "/dav/f", &[("destination", "http://h/dav/g")], b"")
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(e.remote.read_path("g").unwrap(), &b"abc"[..]);
}

#[tokio::test]
async fn listing_failure_of_a_subfolder_on_metadata_is_502() {
    let e = env();
    e.req("MKCOL", "/d", &[], b"").await;
    e.req("MKCOL", "/d/e", &[], b"").await;
    e.dav.shared.cache.forget("d");
    e.remote.fail("list_folder", ErrorKind::Transient, u64::MAX);
    // Depth 0 on a child of an unlisted folder needs the parent's listing.
    let r = e.propfind("/d/e/", "0").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let r = e.req("GET", "/d/x", &[], b"").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn finder_expected_length_is_checked() {
    let e = env();
    let r = e
        .req(
            "PUT",
            "/finder",
            &[("x-expected-entity-length", "10")],
            b"12345",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.remote.calls("upload"), 0);
    let r = e
        .req(
            "PUT",
            "/finder",
            &[("x-expected-entity-length", "5")],
            b"12345",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn stale_listing_is_repaired_on_upload_and_delete() {
    use crate::remote::Remote;
    let e = env();
    e.put("/f", b"one").await;
    let Some(super::cache::Node::File(f)) = e.dav.shared.cache.child("", "f") else {
        panic!("f not cached");
    };
    // Another client trashes the file; our listing still shows it.
    e.remote.delete_file(&f.quickkey).await.unwrap();
    assert!(e.put("/f", b"two").await.is_success());
    assert_eq!(e.remote.read_path("f").unwrap(), &b"two"[..]);

    // Another client creates a name our fresh listing does not know.
    e.remote.put_path("g", b"theirs").unwrap();
    assert!(e.put("/g", b"ours").await.is_success());
    assert_eq!(e.remote.read_path("g").unwrap(), &b"ours"[..]);
    assert_eq!(e.remote.file_count(), 2);
}

#[tokio::test]
async fn html_index_of_an_unlistable_folder_is_an_error() {
    let e = env();
    e.req("MKCOL", "/d", &[], b"").await;
    e.dav.shared.cache.forget("d");
    e.remote.fail("list_folder", ErrorKind::Auth, 1);
    let r = e.req("GET", "/d/", &[], b"").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = e.req("GET", "/d/", &[], b"").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("<html") || r.body.contains("<HTML"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn client_mtime_is_kept_and_survives_restart() {
    let e = env();
    let r = e
        .req(
            "PUT",
            "/m",
            &[("content-length", "3"), ("x-oc-mtime", "1700000000")],
            b"abc",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["x-oc-mtime"], "accepted");
    let stamp = "Tue, 14 Nov 2023 22:13:20 GMT";
    let r = e.req("HEAD", "/m", &[], b"").await;
    assert_eq!(r.headers["last-modified"], stamp);

    let config = DavConfig {
        state_dir: e.state.path().to_path_buf(),
        spool_dir: e.spool.path().to_path_buf(),
        ..DavConfig::default()
    };
    let dav = MfDav::new(e.remote.clone(), config).unwrap();
    let req = Request::builder()
        .method("HEAD")
        .uri("/m")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(dav.handle(req).await.headers()["last-modified"], stamp);

    // A later upload without a client time records its own.
    e.put("/m", b"new").await;
    let r = e.req("HEAD", "/m", &[], b"").await;
    assert_ne!(r.headers["last-modified"], stamp);
}

#[tokio::test]
async fn failed_copy_rename_leaves_no_stray_copy() {
    let e = env();
    e.put("/f", b"abc").await;
    e.remote.fail("rename_file", ErrorKind::Transient, 1);
    let r = e
        .req("COPY", "/f", &[("destination", "http://h/g")], b"")
        .await;
    assert!(!r.status.is_success(), "{}", r.status);
    assert_eq!(e.remote.file_count(), 1);
    let r = e
        .req("COPY", "/f", &[("destination", "http://h/g")], b"")
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(e.remote.read_path("g").unwrap(), &b"abc"[..]);
}

#[tokio::test]
async fn options_advertise_locking_but_not_partial_updates() {
    let e = env();
    let r = e.req("OPTIONS", "/", &[], b"").await;
    let dav = r.headers["dav"].to_str().unwrap();
    assert!(dav.contains('2'), "{dav}");
    assert!(!dav.contains("partialupdate"), "{dav}");
    assert!(r.headers["allow"].to_str().unwrap().contains("LOCK"));
}

/// Needs a small file system: `mount -t tmpfs -o size=64k tmpfs /tmp/tinyfs`
/// and `MF_DAV_TEST_FULL_SPOOL=/tmp/tinyfs`; skipped otherwise.
#[tokio::test]
async fn full_spool_disk_is_507_and_leaves_nothing() {
    let Some(dir) = std::env::var_os("MF_DAV_TEST_FULL_SPOOL") else {
        eprintln!("skipped: MF_DAV_TEST_FULL_SPOOL not set");
        return;
    };
    let e = env_with(|c| c.spool_dir = dir.clone().into());
    let body = vec![7u8; 256 * 1024];
    assert_eq!(
        e.put("/huge", &body).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(e.remote.calls("upload"), 0);
}

#[tokio::test]
async fn folder_etag_changes_when_its_content_does() {
    let e = env();
    e.req("MKCOL", "/d", &[], b"").await;
    let etag = |r: &Reply| {
        let i = r.body.find("getetag>").expect("etag in body");
        r.body[i..].split('<').next().unwrap().to_string()
    };
    let before = etag(&e.propfind("/d/", "0").await);
    e.put("/d/f", b"x").await;
    let after = etag(&e.propfind("/d/", "0").await);
    assert_ne!(before, after);
}

#[tokio::test]
async fn deleting_a_tree_is_one_remote_call() {
    let e = env();
    e.req("MKCOL", "/t", &[], b"").await;
    e.req("MKCOL", "/t/sub", &[], b"").await;
    e.put("/t/a", b"1").await;
    e.put("/t/sub/b", b"2").await;
    e.put("/t/sub/empty", b"").await;
    e.dav.shared.cache.forget("t/sub");
    let before = e.remote.total_calls();
    assert_eq!(
        e.req("DELETE", "/t/", &[], b"").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(e.remote.total_calls(), before + 1);
    assert_eq!(e.remote.calls("delete_folder"), 1);
    assert_eq!(e.remote.file_count(), 0);
    assert!(e.dav.shared.overlay.get("t/sub/empty").is_none());
}

#[tokio::test]
async fn deleting_a_tree_with_a_locked_member_is_refused() {
    let e = env();
    e.req("MKCOL", "/t", &[], b"").await;
    e.put("/t/a", b"1").await;
    let body = br#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    assert!(e.req("LOCK", "/t/a", &[], body).await.status.is_success());
    assert_eq!(
        e.req("DELETE", "/t/", &[], b"").await.status,
        StatusCode::LOCKED
    );
    assert_eq!(
        e.remote.calls("delete_folder") + e.remote.calls("delete_file"),
        0
    );
    assert_eq!(e.remote.file_count(), 1);
}

#[tokio::test]
async fn a_remote_file_shadows_a_local_entry_of_the_same_name() {
    let e = env();
    e.put("/x", b"").await;
    e.propfind("/", "1").await;
    // Another client uploads the real file; the next listing shows it.
    e.remote.put_path("x", b"real").unwrap();
    e.dav.shared.cache.forget("");
    let r = e.req("GET", "/x", &[], b"").await;
    assert_eq!(r.body, "real");
    assert_eq!(
        e.req("DELETE", "/x", &[], b"").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        e.req("GET", "/x", &[], b"").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn concurrent_propfinds_list_a_folder_once() {
    let e = env();
    e.remote.set_latency(Duration::from_millis(50));
    let reqs = (0..8).map(|_| e.propfind("/", "1"));
    let replies = futures_util::future::join_all(reqs).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::MULTI_STATUS));
    assert_eq!(e.remote.calls("list_folder"), 1);
}

#[tokio::test]
async fn slow_concurrent_puts_to_one_path_end_with_one_file() {
    let e = env();
    e.remote.set_latency(Duration::from_millis(30));
    let (a, b, c) = tokio::join!(
        e.put("/same", b"1"),
        e.put("/same", b"22"),
        e.put("/same", b"333")
    );
    assert!(
        a.is_success() && b.is_success() && c.is_success(),
        "{a} {b} {c}"
    );
    assert_eq!(e.remote.file_count(), 1);
    assert_eq!(e.remote.calls("upload"), 3);
}

#[tokio::test]
async fn local_entries_serve_ranges() {
    let e = env();
    let data: Vec<u8> = (0..40_000u32).map(|i| (i % 199) as u8).collect();
    e.put("/._big", &data).await;
    let req = Request::builder()
        .method("GET")
        .uri("/._big")
        .header("range", "bytes=17000-")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = e.dav.handle(req).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], &data[17000..]);
    assert_eq!(e.remote.calls("upload") + e.remote.calls("download"), 0);
}
