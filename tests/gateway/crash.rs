//! `kill -9` of the server in the middle of an upload, then a restart on the
//! same state directory: no partial file on MediaFire or in listings, no
//! spool debris, and the retried PUT succeeds, sending only the units
//! MediaFire does not have yet.

use std::time::Duration;

use crate::child::{Proc, http};
use crate::faults::{Item, pattern, sha256, tree_of};

const COOKIE: &str = "crash-cookie";
const USER: &str = "dave";
const PASS: &str = "crash-pass";
const MIB: usize = 1 << 20;

async fn emulator_json(emu: &Proc, what: &str) -> serde_json::Value {
    let resp = http()
        .get(format!("{}/__emulator/{what}", emu.url))
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

/// Files left in the spool directory.
fn spool_files(state: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(state.join("spool"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_leaves_nothing_and_the_retry_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("emu");
    let state = dir.path().join("state");
    let emu = Proc::emulator(COOKIE, &data, &["--log", "warn"]).await;
    // Slow the upload down so the kill lands in the middle: one unit at a
    // time, four API calls a second.
    let slow = [
        "--cookie",
        COOKIE,
        "--user",
        USER,
        "--pass",
        PASS,
        "--calls-per-second",
        "4",
        "--burst",
        "1",
        "--upload-parallelism",
        "1",
        "--log",
        "info",
    ];
    let mut server = Proc::serve(&emu.url, &state, &slow).await;
    let body = pattern(16 * MIB + 5, 42);
    let put = {
        let url = format!("{}/big.bin", server.url);
        let body = body.clone();
        tokio::spawn(async move {
            http()
                .put(url)
                .basic_auth(USER, Some(PASS))
                .body(body)
                .send()
                .await
        })
    };
    // Wait until a few units have arrived, then kill.
    let mut units = 0;
    for _ in 0..600 {
        let stats = emulator_json(&emu, "stats").await;
        units = stats["api_calls"]["upload/resumable"].as_u64().unwrap_or(0);
        if units >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(units >= 4, "the upload never got going");
    server.kill9().await;
    let answer = put.await.unwrap();
    assert!(
        answer.is_err() || !answer.as_ref().unwrap().status().is_success(),
        "a killed server cannot have acknowledged the PUT: {answer:?}"
    );
    let stats = emulator_json(&emu, "stats").await;
    let sent_before = stats["upload_unit_bytes"].as_u64().unwrap();
    assert!(
        sent_before < body.len() as u64,
        "the whole file went up before the kill; slow it down: {stats}"
    );

    // Nothing partial on MediaFire.
    let tree = tree_of(&emulator_json(&emu, "tree").await);
    assert!(tree.is_empty(), "after the kill: {tree:?}");

    // Restart on the same state directory, from the saved session alone.
    let no_cookie: Vec<&str> = slow[2..].to_vec();
    let server = Proc::serve(&emu.url, &state, &no_cookie).await;
    assert!(
        spool_files(&state).is_empty(),
        "the dead process's spool is still there: {:?}",
        spool_files(&state)
    );
    let c = http();
    let listing = c
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{}/", server.url),
        )
        .basic_auth(USER, Some(PASS))
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 207);
    let listing = listing.text().await.unwrap();
    assert!(!listing.contains("big.bin"), "{listing}");

    // The retry succeeds and completes the file.
    let resp = c
        .put(format!("{}/big.bin", server.url))
        .basic_auth(USER, Some(PASS))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let tree = tree_of(&emulator_json(&emu, "tree").await);
    assert_eq!(
        tree.get("/big.bin"),
        Some(&Item::File {
            size: body.len() as u64,
            hash: sha256(&body)
        }),
        "{tree:?}"
    );
    assert_eq!(tree.len(), 1, "{tree:?}");
    let resp = c
        .get(format!("{}/big.bin", server.url))
        .basic_auth(USER, Some(PASS))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap() == body);

    // Only the missing units were sent the second time.
    let stats = emulator_json(&emu, "stats").await;
    let sent_total = stats["upload_unit_bytes"].as_u64().unwrap();
    let sent_after = sent_total - sent_before;
    assert!(
        sent_after < body.len() as u64,
        "the retry re-sent every unit ({sent_after} bytes after {sent_before}): {stats}"
    );
    assert_eq!(sent_total, body.len() as u64, "{stats}");
    assert!(spool_files(&state).is_empty(), "{:?}", spool_files(&state));
}
