//! The MediaFire client against the built-in emulator over real HTTP: the
//! two sides are written independently from the spec, so these tests catch
//! a misreading on either side. Faults are switched on per test.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use mediafire_dav::emulator::{self, EmulatorConfig, EmulatorHandle, FailMode, Faults};
use mediafire_dav::error::ErrorKind;
use mediafire_dav::mediafire::{Client, ClientConfig};
use mediafire_dav::remote::{ROOT, Remote, UploadRequest, UploadSource};

async fn start(config: EmulatorConfig) -> EmulatorHandle {
    emulator::start(EmulatorConfig {
        seed: Some(7),
        ..config
    })
    .await
    .expect("emulator starts")
}

fn client_config(emu: &EmulatorHandle, dir: &Path) -> ClientConfig {
    ClientConfig {
        api_base: emu.base_url(),
        cookie: Some("session=demo-cookie; other=1".into()),
        state_dir: dir.to_path_buf(),
        calls_per_second: 0.0,
        burst: 100,
        max_concurrent_calls: 32,
        request_timeout: Duration::from_secs(5),
        poll_timeout: Duration::from_secs(20),
        retry_base_delay: Duration::from_millis(5),
        max_retries: 6,
        ..ClientConfig::default()
    }
}

async fn client(emu: &EmulatorHandle, dir: &Path) -> Client {
    Client::new(client_config(emu, dir)).await.expect("client")
}

/// Calls of `action` the emulator counted.
fn calls(emu: &EmulatorHandle, action: &str) -> u64 {
    emu.stats()["api_calls"][action].as_u64().unwrap_or(0)
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn spool(dir: &Path, name: &str, data: &[u8]) -> UploadSource {
    let path = dir.join(format!("spool-{name}"));
    std::fs::write(&path, data).unwrap();
    UploadSource {
        path,
        size: data.len() as u64,
        sha256: hex::encode(Sha256::digest(data)),
    }
}

fn upload_req(
    dir: &Path,
    folder: &str,
    name: &str,
    data: &[u8],
    replace: Option<&str>,
) -> UploadRequest {
    UploadRequest {
        folder_key: folder.to_string(),
        name: name.to_string(),
        source: spool(dir, name, data),
        replace: replace.map(str::to_string),
        mtime: None,
    }
}

async fn read_all(c: &Client, qk: &str, offset: u64, len: Option<u64>) -> Vec<u8> {
    let d = c.download(qk, offset, len).await.expect("download opens");
    let mut out = Vec::new();
    let mut body = d.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

#[tokio::test]
async fn round_trip_of_every_remote_call() {
    let emu = start(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    c.login().await.unwrap();

    let acct = c.account().await.unwrap();
    assert_eq!(acct.quota.limit, Some(10_737_418_240));
    let docs = c.create_folder(ROOT, "docs").await.unwrap();
    let arch = c.create_folder(ROOT, "archive").await.unwrap();
    assert_eq!(
        c.create_folder(ROOT, "docs").await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );

    // 5 MiB: the emulator splits it into 1 MiB units (spec §4.4 table).
    let big = bytes(5 * 1024 * 1024 + 123, 1);
    let f = c
        .upload(upload_req(dir.path(), &docs.key, "big.bin", &big, None))
        .await
        .unwrap();
    assert_eq!((f.name.as_str(), f.size), ("big.bin", big.len() as u64));
    assert_eq!(calls(&emu, "upload/resumable"), 6);
    assert_eq!(read_all(&c, &f.quickkey, 0, None).await, big);
    assert_eq!(
        read_all(&c, &f.quickkey, 1_000_000, Some(10)).await,
        &big[1_000_000..1_000_010]
    );
    assert!(
        read_all(&c, &f.quickkey, big.len() as u64, None)
            .await
            .is_empty()
    );

    let l = c.list_folder(&docs.key).await.unwrap();
    assert_eq!(l.files.len(), 1);
    assert_eq!(l.files[0].hash, hex::encode(Sha256::digest(&big)));
    assert!(
        l.files[0].created > std::time::UNIX_EPOCH,
        "created_utc parsed"
    );

    c.rename_file(&f.quickkey, "renamed.bin").await.unwrap();
    c.move_file(&f.quickkey, &arch.key).await.unwrap();
    let copy = c.copy_file(&f.quickkey, &docs.key).await.unwrap();
    assert_ne!(copy, f.quickkey);
    c.rename_folder(&docs.key, "documents").await.unwrap();
    c.move_folder(&docs.key, &arch.key).await.unwrap();

    let root = c.list_folder(ROOT).await.unwrap();
    assert_eq!(
        root.folders
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["archive"]
    );
    let a = c.list_folder(&arch.key).await.unwrap();
    assert_eq!(
        a.folders
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["documents"]
    );
    assert_eq!(
        a.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["renamed.bin"]
    );
    assert_eq!(read_all(&c, &copy, 0, Some(5)).await, &big[..5]);

    c.delete_file(&copy).await.unwrap();
    c.delete_folder(&docs.key).await.unwrap();
    assert!(c.list_folder(&arch.key).await.unwrap().folders.is_empty());
    assert_eq!(
        c.delete_file(&copy).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let status = c.device_status().await.unwrap();
    assert!(status.revision > 0 && !status.async_jobs_in_progress);
}

#[tokio::test]
async fn large_listing_is_paged_to_the_end() {
    let emu = start(EmulatorConfig::default()).await;
    for i in 0..1203 {
        emu.seed_file(&format!("/many/f{i:04}.txt"), b"x");
    }
    let key = emu.seed_folder("/many");
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    let l = c.list_folder(&key).await.unwrap();
    assert_eq!(l.files.len(), 1203);
    assert_eq!(
        calls(&emu, "folder/get_content"),
        3,
        "two file chunks of 1000, one folder chunk"
    );
}

#[tokio::test]
async fn expired_tokens_cause_one_renewal_for_many_calls() {
    let emu = start(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    c.login().await.unwrap();
    let fetches = calls(&emu, "application/get_session_token");
    emu.expire_all_tokens();

    let tasks = (0..30).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.list_folder(ROOT).await })
    });
    for t in futures_util::future::join_all(tasks).await {
        t.unwrap().unwrap();
    }
    // Renewing an expired token fails, so the cookie buys one new token.
    let renewals = calls(&emu, "user/renew_session_token");
    let new_fetches = calls(&emu, "application/get_session_token") - fetches;
    assert!(renewals <= 1, "renewals {renewals}");
    assert_eq!(new_fetches, 1);
}

#[tokio::test]
async fn rotated_cookie_is_kept_and_a_restart_needs_no_cookie() {
    let emu = start(EmulatorConfig {
        rotate_cookie: true,
        cookie_grace_secs: 0,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    {
        let c = client(&emu, dir.path()).await;
        c.login().await.unwrap();
        c.list_folder(ROOT).await.unwrap();
    }
    let state = std::fs::read_to_string(dir.path().join("session.json")).unwrap();
    assert!(
        state.contains("other=1"),
        "cookies the server did not rotate are kept"
    );
    emu.expire_all_tokens();

    let mut cfg = client_config(&emu, dir.path());
    cfg.cookie = None;
    let c = Client::new(cfg).await.unwrap();
    // The saved token is dead; the rotated cookie must still buy a new one.
    c.list_folder(ROOT).await.unwrap();
}

#[tokio::test]
async fn wrong_cookie_is_an_auth_error() {
    let emu = start(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = client_config(&emu, dir.path());
    cfg.cookie = Some("session=stale".into());
    let c = Client::new(cfg).await.unwrap();
    let e = c.login().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(e.to_string().contains("MEDIAFIRE_COOKIE"));
    assert_eq!(
        c.list_folder(ROOT).await.unwrap_err().kind(),
        ErrorKind::Auth
    );
}

#[tokio::test]
async fn transient_faults_and_rate_limits_are_ridden_out() {
    let emu = start(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    c.login().await.unwrap();
    let f = c.create_folder(ROOT, "f").await.unwrap();

    for mode in [FailMode::Error100, FailMode::Html403, FailMode::Drop] {
        emu.set_faults(Faults {
            fail_rate: 0.3,
            fail_mode: mode,
            ..Default::default()
        });
        for _ in 0..10 {
            c.list_folder(&f.key)
                .await
                .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        }
    }
    emu.set_faults(Faults {
        rate_limit_per_sec: 5,
        ..Default::default()
    });
    let tasks = (0..20).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.device_status().await })
    });
    for t in futures_util::future::join_all(tasks).await {
        t.unwrap().unwrap();
    }
    assert!(
        c.stats().calls("device/get_status", "error_163") > 0,
        "the limit was hit"
    );
}

#[tokio::test]
async fn uploads_survive_a_failed_unit_and_slow_verification() {
    let emu = start(EmulatorConfig::default()).await;
    emu.set_faults(Faults {
        fail_upload_unit: 3,
        poll_delay_ms: 600,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    let data = bytes(4 * 1024 * 1024 + 5, 2);
    let f = c
        .upload(upload_req(dir.path(), ROOT, "slow.bin", &data, None))
        .await
        .unwrap();
    assert_eq!(
        calls(&emu, "upload/resumable"),
        6,
        "5 units, one of them twice"
    );
    assert!(
        calls(&emu, "upload/poll_upload") >= 2,
        "polled through the delay"
    );
    assert_eq!(read_all(&c, &f.quickkey, 0, None).await, data);
}

#[tokio::test]
async fn overwrite_keeps_the_key_and_a_taken_name_is_refused() {
    let emu = start(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    let v1 = c
        .upload(upload_req(dir.path(), ROOT, "a.txt", b"version one", None))
        .await
        .unwrap();
    assert_eq!(read_all(&c, &v1.quickkey, 0, None).await, b"version one");

    let e = c
        .upload(upload_req(dir.path(), ROOT, "a.txt", b"other", None))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);

    let v2 = c
        .upload(upload_req(
            dir.path(),
            ROOT,
            "a.txt",
            b"version two!",
            Some(&v1.quickkey),
        ))
        .await
        .unwrap();
    assert_eq!(v2.quickkey, v1.quickkey, "replace keeps the quickkey");
    // The cached link of v1 was dropped: the new content comes back.
    assert_eq!(read_all(&c, &v1.quickkey, 0, None).await, b"version two!");
    let l = c.list_folder(ROOT).await.unwrap();
    assert_eq!(l.files.len(), 1);
    assert_eq!(l.files[0].size, 12);
}

#[tokio::test]
async fn known_content_is_uploaded_instantly() {
    let emu = start(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    let data = bytes(3000, 3);
    c.upload(upload_req(dir.path(), ROOT, "one.bin", &data, None))
        .await
        .unwrap();
    let unit_bytes = emu.stats()["upload_unit_bytes"].as_u64().unwrap();
    let two = c
        .upload(upload_req(dir.path(), ROOT, "two.bin", &data, None))
        .await
        .unwrap();
    assert_eq!(two.name, "two.bin");
    assert_eq!(calls(&emu, "upload/instant"), 1);
    assert_eq!(
        emu.stats()["upload_unit_bytes"].as_u64().unwrap(),
        unit_bytes,
        "no bytes sent"
    );
    assert_eq!(read_all(&c, &two.quickkey, 0, None).await, data);
}

#[tokio::test]
async fn expired_download_link_is_refreshed_once() {
    let emu = start(EmulatorConfig {
        link_ttl: 1,
        ..Default::default()
    })
    .await;
    let qk = emu.seed_file("/x.bin", &bytes(100, 4));
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    assert_eq!(read_all(&c, &qk, 0, Some(10)).await.len(), 10);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(read_all(&c, &qk, 90, None).await, &bytes(100, 4)[90..]);
    assert_eq!(calls(&emu, "file/get_links"), 2);
    assert_eq!(c.stats().link_refreshes, 1);
}

#[tokio::test]
async fn asynchronous_mutations_are_waited_for() {
    let emu = start(EmulatorConfig::default()).await;
    emu.set_faults(Faults {
        async_ops: true,
        async_ms: 300,
        ..Default::default()
    });
    let a = emu.seed_folder("/a");
    let b = emu.seed_folder("/b");
    let qk = emu.seed_file("/a/f.txt", b"hello");
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    c.move_file(&qk, &b).await.unwrap();
    // Right after, the move is visible and other mutations are not refused.
    assert_eq!(c.list_folder(&b).await.unwrap().files.len(), 1);
    assert!(c.list_folder(&a).await.unwrap().files.is_empty());
    c.rename_file(&qk, "g.txt").await.unwrap();
}

#[tokio::test]
async fn errors_sent_with_status_200_are_still_errors() {
    let emu = start(EmulatorConfig {
        error_status: 200,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    let e = c.list_folder("nosuchfolder1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        c.download("nosuchfile0001", 0, None)
            .await
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );
}

#[tokio::test]
async fn an_idle_session_is_kept_alive_by_background_renewal() {
    let emu = start(EmulatorConfig {
        token_ttl: 2,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = client_config(&emu, dir.path());
    cfg.renew_after = Duration::from_millis(700);
    let c = Client::new(cfg).await.unwrap();
    c.login().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    c.list_folder(ROOT).await.unwrap();
    let stats = c.stats();
    assert!(stats.renewals >= 3, "renewals {}", stats.renewals);
    assert_eq!(
        stats.calls("folder/get_content", "error_105"),
        0,
        "never expired"
    );
    assert_eq!(stats.token_fetches, 1);
}

#[tokio::test]
async fn tokens_expiring_under_load_are_replaced() {
    let emu = start(EmulatorConfig::default()).await;
    emu.set_faults(Faults {
        expire_tokens_every_secs: 1,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    let until = std::time::Instant::now() + Duration::from_millis(2500);
    let tasks = (0..4).map(|_| {
        let c = c.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while std::time::Instant::now() < until {
                c.list_folder(ROOT).await.expect("listing survives expiry");
                n += 1;
            }
            n
        })
    });
    let done: u32 = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .sum();
    assert!(done > 10);
}

#[tokio::test]
async fn download_redirects_are_followed() {
    let emu = start(EmulatorConfig {
        download_redirect: true,
        ..Default::default()
    })
    .await;
    let data = bytes(5000, 9);
    let qk = emu.seed_file("/r.bin", &data);
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    assert_eq!(read_all(&c, &qk, 4000, None).await, &data[4000..]);
}

#[tokio::test]
async fn emulator_refusals_map_to_the_right_kinds() {
    let emu = start(EmulatorConfig {
        forbid_extension_change: true,
        move_collision: emulator::Collision::Error,
        max_upload_size: 10_000,
        ..Default::default()
    })
    .await;
    let a = emu.seed_folder("/a");
    let qk = emu.seed_file("/n.txt", b"hi");
    emu.seed_file("/a/n.txt", b"other");
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    assert_eq!(
        c.rename_file(&qk, "n.md").await.unwrap_err().kind(),
        ErrorKind::InvalidName
    );
    assert_eq!(
        c.move_file(&qk, &a).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let big = bytes(20_000, 1);
    let e = c
        .upload(upload_req(dir.path(), ROOT, "big.bin", &big, None))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
}

#[tokio::test]
async fn a_full_account_refuses_uploads_before_sending() {
    let emu = start(EmulatorConfig {
        storage_limit: 1000,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&emu, dir.path()).await;
    let e = c
        .upload(upload_req(dir.path(), ROOT, "x.bin", &bytes(2000, 5), None))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(calls(&emu, "upload/resumable"), 0);
}

#[tokio::test]
async fn creates_and_uploads_under_dropped_connections_never_duplicate() {
    let emu = start(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = client_config(&emu, dir.path());
    cfg.max_retries = 10;
    let c = Client::new(cfg).await.unwrap();
    c.login().await.unwrap();
    emu.set_faults(Faults {
        fail_rate: 0.3,
        fail_mode: FailMode::Mixed,
        ..Default::default()
    });

    let mut made = 0;
    for i in 0..12 {
        // An ambiguous failure that the re-list cannot settle is reported,
        // never papered over by a second create.
        if c.create_folder(ROOT, &format!("d{i}")).await.is_ok() {
            made += 1;
        }
    }
    for i in 0..4 {
        let data = bytes(1500 + i, i as u8);
        c.upload(upload_req(
            dir.path(),
            ROOT,
            &format!("f{i}.bin"),
            &data,
            None,
        ))
        .await
        .unwrap();
    }
    emu.set_faults(Faults::default());

    let l = c.list_folder(ROOT).await.unwrap();
    let mut names: Vec<_> = l.folders.iter().map(|f| f.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), l.folders.len(), "no duplicate folders");
    assert!(
        l.folders.len() >= made && made >= 6,
        "made {made}, listed {}",
        l.folders.len()
    );
    assert!(
        l.folders.iter().all(|f| !f.name.contains('(')),
        "no renamed copies"
    );
    assert_eq!(l.files.len(), 4);
}
