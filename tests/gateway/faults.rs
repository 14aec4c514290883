//! Each emulator fault switch on its own, against the whole gateway.
//!
//! What every test here asserts, whatever the fault:
//! - reads (PROPFIND, GET) succeed: the client retries them;
//! - a write either succeeds or answers a clear upstream status (502, 503,
//!   504), never a 500 and never a hang;
//! - afterwards the emulator's tree (`/__emulator/tree`) holds no duplicate
//!   and no partial file: each path appears once, an acknowledged PUT's file
//!   has exactly the bytes sent, and a refused PUT left either nothing or a
//!   complete earlier or later version.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mediafire_dav::emulator::{EmulatorConfig, FailMode, Faults};
use sha2::{Digest, Sha256};

use crate::util::{Options, TestServer, hrefs, propfind};

/// Statuses a write may answer when MediaFire keeps failing.
pub const UPSTREAM_FAILURE: [u16; 3] = [502, 503, 504];

pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic content of `len` bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// One live item of the emulator's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Folder,
    File { size: u64, hash: String },
}

/// The emulator's live tree as path → item; panics on a path that appears
/// twice (a duplicate file or folder).
pub fn tree_of(tree: &serde_json::Value) -> BTreeMap<String, Item> {
    let mut out = BTreeMap::new();
    let mut files_seen = BTreeSet::new();
    let mut folders_seen = BTreeSet::new();
    for it in tree["items"].as_array().expect("items array") {
        let path = it["path"].as_str().unwrap().to_string();
        let item = if it["kind"] == "folder" {
            assert!(
                folders_seen.insert(path.clone()),
                "duplicate folder {path}: {tree}"
            );
            Item::Folder
        } else {
            assert!(
                files_seen.insert(path.clone()),
                "duplicate file {path}: {tree}"
            );
            Item::File {
                size: it["size"].as_u64().unwrap(),
                hash: it["hash"].as_str().unwrap().to_string(),
            }
        };
        assert!(
            out.insert(path.clone(), item).is_none(),
            "a file and a folder share {path}: {tree}"
        );
    }
    out
}

/// The status of a request, with the body for the failure message.
pub async fn status_of(resp: reqwest::Result<reqwest::Response>) -> (u16, String) {
    let resp = resp.expect("the server answers (no dropped connection)");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

pub fn dest(server: &TestServer, path: &str) -> String {
    format!("{}{}", server.url, path)
}

/// A write's status must be success or a clear upstream failure.
#[track_caller]
pub fn assert_write_status(what: &str, status: u16, body: &str) -> bool {
    assert!(
        (200..300).contains(&status) || UPSTREAM_FAILURE.contains(&status),
        "{what}: {status} is neither success nor a clear upstream failure: {body}"
    );
    (200..300).contains(&status)
}

async fn server_with(faults: Faults) -> TestServer {
    TestServer::start_with(Options {
        emulator: Some(EmulatorConfig {
            seed: Some(11),
            faults,
            ..EmulatorConfig::default()
        }),
        ..Options::default()
    })
    .await
}

/// Reads that must succeed, writes that may fail clearly, then the tree
/// check. Faults are switched on after seeding and off before the check.
async fn mixed_workload(faults: Faults) -> TestServer {
    let server = server_with(Faults::default()).await;
    let seeded = pattern(200_000, 1);
    server.emulator.seed_file("/in/seeded.bin", &seeded);
    server.emulator.seed_folder("/in/sub");
    server.emulator.set_faults(faults.clone());

    // Reads: every one succeeds.
    for round in 0..3 {
        let (status, body) = propfind(&server, "/in/", "1").await;
        assert_eq!(status, 207, "PROPFIND round {round}: {body}");
        assert!(
            hrefs(&body).contains(&"/in/seeded.bin".to_string()),
            "{body}"
        );
        let resp = server.req("GET", "/in/seeded.bin").send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET round {round}");
        assert!(
            resp.bytes().await.unwrap() == seeded,
            "GET round {round}: content"
        );
    }

    // Writes: each either lands completely or answers 502/503/504.
    // `allowed[path]` is every content a path may hold afterwards.
    let mut allowed: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    allowed.insert("/in/seeded.bin".into(), vec![Some(sha256(&seeded))]);
    let mut must_hold: BTreeMap<String, String> = BTreeMap::new();
    must_hold.insert("/in/seeded.bin".into(), sha256(&seeded));
    for (i, len) in [10_000usize, 1_500_000, 5 * 1024 * 1024 + 17]
        .iter()
        .enumerate()
    {
        let path = format!("/in/put{i}.bin");
        let data = pattern(*len, 100 + i as u64);
        let (status, body) =
            status_of(server.req("PUT", &path).body(data.clone()).send().await).await;
        allowed.insert(path.clone(), vec![None, Some(sha256(&data))]);
        if assert_write_status(&format!("PUT {path}"), status, &body) {
            must_hold.insert(path, sha256(&data));
        }
    }
    // COPY: one copy or none, never two.
    let seeded_hash = sha256(&seeded);
    let (status, body) = status_of(
        server
            .req("COPY", "/in/seeded.bin")
            .header("Destination", dest(&server, "/in/copy.bin"))
            .send()
            .await,
    )
    .await;
    allowed.insert("/in/copy.bin".into(), vec![None, Some(seeded_hash.clone())]);
    if assert_write_status("COPY", status, &body) {
        must_hold.insert("/in/copy.bin".into(), seeded_hash);
    }
    // MOVE: in one place or the other, never both, never lost when acknowledged.
    if let Some(hash) = must_hold.get("/in/put0.bin").cloned() {
        let (status, body) = status_of(
            server
                .req("MOVE", "/in/put0.bin")
                .header("Destination", dest(&server, "/in/sub/moved.bin"))
                .send()
                .await,
        )
        .await;
        must_hold.remove("/in/put0.bin");
        allowed.insert("/in/sub/moved.bin".into(), vec![None, Some(hash.clone())]);
        if assert_write_status("MOVE", status, &body) {
            must_hold.insert("/in/sub/moved.bin".into(), hash);
            allowed.insert("/in/put0.bin".into(), vec![None]);
        }
    }
    // Overwrite: the old or the new content, never a mix or a second file.
    let v2 = pattern(30_000, 7);
    let (status, body) = status_of(
        server
            .req("PUT", "/in/seeded.bin")
            .body(v2.clone())
            .send()
            .await,
    )
    .await;
    allowed
        .get_mut("/in/seeded.bin")
        .unwrap()
        .push(Some(sha256(&v2)));
    if assert_write_status("PUT overwrite", status, &body) {
        must_hold.insert("/in/seeded.bin".into(), sha256(&v2));
    } else {
        must_hold.remove("/in/seeded.bin");
    }
    let (status, body) = status_of(server.req("MKCOL", "/in/newdir/").send().await).await;
    let mkcol_ok = assert_write_status("MKCOL", status, &body);

    // Let a switched-off fault settle (asynchronous operations land late).
    server.emulator.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(faults.async_ms + 50)).await;
    let tree = tree_of(&server.emulator.tree());
    for (path, hash) in &must_hold {
        match tree.get(path) {
            Some(Item::File { hash: h, .. }) => {
                assert_eq!(h, hash, "{path} holds other bytes than acknowledged")
            }
            other => panic!("acknowledged {path} is {other:?} in {tree:?}"),
        }
    }
    for (path, item) in &tree {
        if let Item::File { hash, .. } = item {
            let ok = allowed
                .get(path)
                .is_some_and(|v| v.contains(&Some(hash.clone())));
            assert!(ok, "unexpected file {path} ({hash}) in {tree:?}");
        } else {
            assert!(
                ["/in", "/in/sub", "/in/newdir"].contains(&path.as_str()),
                "unexpected folder {path}"
            );
        }
    }
    if mkcol_ok {
        assert_eq!(tree.get("/in/newdir"), Some(&Item::Folder));
    }
    server
}

fn fail(rate: f64, mode: FailMode) -> Faults {
    Faults {
        fail_rate: rate,
        fail_mode: mode,
        ..Faults::default()
    }
}

#[tokio::test]
async fn error_100_answers_are_retried() {
    let server = mixed_workload(fail(0.3, FailMode::Error100)).await;
    let stats = server.emulator.stats();
    assert!(
        stats["faults_injected"]["error100"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
}

#[tokio::test]
async fn cloudflare_challenge_pages_are_retried() {
    let server = mixed_workload(fail(0.3, FailMode::Html403)).await;
    let stats = server.emulator.stats();
    assert!(
        stats["faults_injected"]["html403"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let server = mixed_workload(fail(0.3, FailMode::Drop)).await;
    let stats = server.emulator.stats();
    assert!(
        stats["faults_injected"]["drop"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
}

#[tokio::test]
async fn lost_answers_make_no_duplicates() {
    // The call is carried out, the answer never arrives: a blind retry of
    // a create, copy or upload would make a second one.
    let server = mixed_workload(Faults {
        lose_answer_rate: 0.25,
        ..Faults::default()
    })
    .await;
    let stats = server.emulator.stats();
    assert!(
        stats["faults_injected"]["lost_answer"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{stats}"
    );
}

#[tokio::test]
async fn mediafire_down_costs_one_retry_budget_per_request_and_leaves_no_debris() {
    // Nothing gets through: reads cannot succeed, but they must say why
    // with a 502/503, spend one retry budget (not one per internal lookup),
    // and no write may leave anything behind.
    let server = server_with(Faults::default()).await;
    server.emulator.seed_file("/keep.txt", b"kept");
    server.emulator.set_faults(fail(1.0, FailMode::Mixed));
    // The client's default budget: one call plus five retries.
    const BUDGET: u64 = 6;
    let requests = [
        ("PROPFIND", "/", None),
        ("PUT", "/new.bin", Some(pattern(70_000, 3))),
        ("MKCOL", "/d/", None),
    ];
    for (method, path, body) in requests {
        server.emulator.reset_stats();
        let mut req = server.req(method, path);
        if method == "PROPFIND" {
            req = req.header("Depth", "1");
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let (status, text) = status_of(req.send().await).await;
        assert!(
            UPSTREAM_FAILURE.contains(&status),
            "{method}: {status} {text}"
        );
        let calls = server.total_api_calls();
        assert!(
            calls <= BUDGET,
            "{method} made {calls} calls: {}",
            server.emulator.stats()
        );
    }
    server.emulator.set_faults(Faults::default());
    let tree = tree_of(&server.emulator.tree());
    assert_eq!(tree.keys().collect::<Vec<_>>(), ["/keep.txt"], "{tree:?}");
}

#[tokio::test]
async fn rate_limit_163_is_waited_out() {
    let server = mixed_workload(Faults {
        rate_limit_per_sec: 4,
        ..Faults::default()
    })
    .await;
    let stats = server.emulator.stats();
    assert!(stats["errors"]["163"].as_u64().unwrap_or(0) > 0, "{stats}");
}

#[tokio::test]
async fn forced_token_expiry_is_renewed_transparently() {
    let server = server_with(Faults::default()).await;
    server.emulator.seed_file("/t/a.txt", b"alpha");
    server.emulator.set_faults(Faults {
        expire_tokens_every_secs: 1,
        ..Faults::default()
    });
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        // Every listing is fresh: a new name each round forces a call.
        let path = format!("/t/f{i}.txt");
        let data = pattern(1000 + i, i as u64);
        let (status, body) =
            status_of(server.req("PUT", &path).body(data.clone()).send().await).await;
        assert_eq!(status, 201, "PUT {path}: {body}");
        let resp = server.req("GET", &path).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.bytes().await.unwrap() == data);
        let (status, _) = propfind(&server, "/t/", "1").await;
        assert_eq!(status, 207);
    }
    let stats = server.emulator.stats();
    assert!(
        stats["errors"]["105"].as_u64().unwrap_or(0) > 0,
        "no expiry seen: {stats}"
    );
    let tree = tree_of(&server.emulator.tree());
    assert_eq!(tree.len(), 1 + 1 + 5, "{tree:?}");
}

#[tokio::test]
async fn asynchronous_operations_and_208_busy_answers() {
    let server = server_with(Faults::default()).await;
    server.emulator.seed_file("/a/one.txt", b"one");
    server.emulator.seed_file("/a/two.txt", b"two");
    server.emulator.seed_file("/a/three.txt", b"three");
    server.emulator.seed_folder("/b");
    server.emulator.set_faults(Faults {
        async_ops: true,
        async_ms: 400,
        ..Faults::default()
    });
    // Warm the listings, then four mutations at once: while one runs on
    // MediaFire's side the others meet 208 and must wait it out.
    for dir in ["/a/", "/b/"] {
        assert_eq!(propfind(&server, dir, "1").await.0, 207);
    }
    let (r1, r2, r3, r4) = tokio::join!(
        server
            .req("MOVE", "/a/one.txt")
            .header("Destination", dest(&server, "/b/one.txt"))
            .send(),
        server
            .req("COPY", "/a/two.txt")
            .header("Destination", dest(&server, "/b/two.txt"))
            .send(),
        server.req("DELETE", "/a/three.txt").send(),
        server.req("MKCOL", "/b/c/").send(),
    );
    for (what, r) in [("MOVE", r1), ("COPY", r2), ("DELETE", r3), ("MKCOL", r4)] {
        let (s, b) = status_of(r).await;
        assert!((200..300).contains(&s), "{what}: {s} {b}");
    }
    let stats = server.emulator.stats();
    assert!(
        stats["errors"]["208"].as_u64().unwrap_or(0) > 0,
        "no 208 met: {stats}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tree = tree_of(&server.emulator.tree());
    let paths: Vec<&str> = tree.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        ["/a", "/a/two.txt", "/b", "/b/c", "/b/one.txt", "/b/two.txt"],
        "{tree:?}"
    );
    // And what the gateway shows agrees once the operations landed.
    let (status, body) = propfind(&server, "/b/", "1").await;
    assert_eq!(status, 207);
    let mut names = hrefs(&body);
    names.sort();
    assert_eq!(
        names,
        ["/b/", "/b/c/", "/b/one.txt", "/b/two.txt"],
        "{body}"
    );
}

#[tokio::test]
async fn slow_upload_verification_is_polled_to_the_end() {
    let server = server_with(Faults {
        poll_delay_ms: 1500,
        ..Faults::default()
    })
    .await;
    let data = pattern(300_000, 9);
    let (status, body) = status_of(
        server
            .req("PUT", "/slow.bin")
            .body(data.clone())
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        server.api_calls("upload/poll_upload") >= 2,
        "{}",
        server.emulator.stats()
    );
    let tree = tree_of(&server.emulator.tree());
    assert_eq!(
        tree.get("/slow.bin"),
        Some(&Item::File {
            size: data.len() as u64,
            hash: sha256(&data)
        })
    );
}

#[tokio::test]
async fn a_failed_unit_is_resent_alone() {
    let server = server_with(Faults {
        fail_upload_unit: 2,
        ..Faults::default()
    })
    .await;
    let data = pattern(6 * 1024 * 1024, 5);
    let (status, body) = status_of(
        server
            .req("PUT", "/units.bin")
            .body(data.clone())
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let stats = server.emulator.stats();
    // Six 1 MiB units plus one resend; the resend's bytes are counted once
    // the emulator accepts them, so exactly the file's size arrived.
    assert_eq!(stats["api_calls"]["upload/resumable"], 7, "{stats}");
    assert_eq!(stats["upload_unit_bytes"], data.len() as u64, "{stats}");
    let tree = tree_of(&server.emulator.tree());
    assert_eq!(
        tree.get("/units.bin"),
        Some(&Item::File {
            size: data.len() as u64,
            hash: sha256(&data)
        })
    );
}
