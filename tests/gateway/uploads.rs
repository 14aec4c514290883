//! Uploads at scale (issue 3): every promise of the PUT path, proved against
//! the emulator over real HTTP. Byte counts come from the emulator's own
//! statistics (`upload_unit_bytes`, `max_units_in_flight`), file identity
//! from its own API (`folder/get_content` with a session token), so the
//! server under test never grades itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mediafire_dav::config::ServeArgs;
use mediafire_dav::emulator::{self, EmulatorConfig, FailMode, Faults};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::util::{Options, PASS, TestServer, USER, hrefs, propfind};

const MIB: usize = 1 << 20;

/// The unit size of [`small_units`]: many units in a small (fast) file.
const UNIT: usize = 64 * 1024;

/// Deterministic, incompressible-looking bytes; different seeds give
/// different content in every unit.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

async fn put(server: &TestServer, path: &str, body: Vec<u8>) -> u16 {
    server
        .req("PUT", path)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get(server: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let resp = server.req("GET", path).send().await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

fn stat(server: &TestServer, key: &str) -> u64 {
    server.emulator.stats()[key].as_u64().unwrap_or(0)
}

fn unit_bytes(server: &TestServer) -> u64 {
    stat(server, "upload_unit_bytes")
}

/// One file as the emulator's own API lists it.
#[derive(Debug, Clone)]
struct Listed {
    name: String,
    quickkey: String,
    size: u64,
    hash: String,
}

/// The files of `folder_key` (`myfiles` = root), asked through the
/// emulator's public API with a session token bought with the cookie.
async fn emulator_files(server: &TestServer, folder_key: &str) -> Vec<Listed> {
    let listing = crate::util::emulator_call(
        server,
        "folder/get_content",
        &[
            ("folder_key", folder_key),
            ("content_type", "files"),
            ("chunk_size", "1000"),
        ],
    )
    .await;
    let files = listing["response"]["folder_content"]["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    files
        .iter()
        .map(|f| Listed {
            name: f["filename"].as_str().unwrap_or_default().to_string(),
            quickkey: f["quickkey"].as_str().unwrap_or_default().to_string(),
            size: f["size"].as_str().unwrap_or("0").parse().unwrap(),
            hash: f["hash"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

async fn root_files(server: &TestServer) -> Vec<Listed> {
    emulator_files(server, "myfiles").await
}

fn spool_dir(server: &TestServer) -> PathBuf {
    server.state_dir.join("spool")
}

fn dir_entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits (up to 10 s) until `dir` holds nothing; returns what is left.
async fn wait_empty(dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = dir_entries(dir);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to 20 s) until the emulator has received `bytes` unit bytes.
async fn wait_unit_bytes(server: &TestServer, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while unit_bytes(server) < bytes {
        assert!(
            Instant::now() < deadline,
            "units never arrived: {}",
            server.emulator.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn with_faults(faults: Faults) -> Options {
    Options {
        emulator: Some(EmulatorConfig {
            faults,
            ..EmulatorConfig::default()
        }),
        ..Options::default()
    }
}

/// An emulator with 64 KiB units (set with `--unit-size`; the client must
/// follow what `upload/check` says) and `faults`.
fn small_units(faults: Faults) -> Options {
    Options {
        emulator: Some(EmulatorConfig {
            unit_size: Some(UNIT as u64),
            faults,
            ..EmulatorConfig::default()
        }),
        ..Options::default()
    }
}

// ---------------------------------------------------------------------------
// sizes

#[tokio::test]
async fn empty_tiny_and_unit_boundary_sizes_round_trip_with_exact_unit_bytes() {
    let server = TestServer::start().await;
    // (size, expected upload/resumable requests): < 4 MiB is one 4 MiB unit,
    // from 4 MiB on the units are 1 MiB (spec §4.4).
    let cases = [
        (0usize, 0u64),
        (1, 1),
        (100, 1),
        (4 * MIB - 1, 1),
        (4 * MIB, 4),
        (4 * MIB + 1, 5),
    ];
    for (i, (size, units)) in cases.into_iter().enumerate() {
        let path = format!("/size-{size}.bin");
        let body = content(size, 100 + i as u64);
        server.emulator.reset_stats();
        assert_eq!(put(&server, &path, body.clone()).await, 201, "PUT {path}");
        assert_eq!(unit_bytes(&server), size as u64, "unit bytes for {size}");
        assert_eq!(
            server.api_calls("upload/resumable"),
            units,
            "unit requests for {size}: {}",
            server.emulator.stats()
        );
        let (status, got) = get(&server, &path).await;
        assert_eq!(status, 200, "GET {path}");
        assert_eq!(got.len(), size, "GET {path} length");
        assert!(got == body, "GET {path} returns other bytes");
        let (status, xml) = propfind(&server, &path, "0").await;
        assert_eq!(status, 207);
        assert!(
            xml.contains(&format!("getcontentlength>{size}<")),
            "{path}: {xml}"
        );
    }
    // MediaFire cannot hold empty files: the zero-byte one lives in the
    // overlay, every other one is a real MediaFire file with its content.
    let listed = root_files(&server).await;
    for (size, _) in cases.iter().skip(1) {
        let f = listed
            .iter()
            .find(|f| f.name == format!("size-{size}.bin"))
            .unwrap_or_else(|| panic!("size-{size}.bin missing: {listed:?}"));
        assert_eq!(f.size, *size as u64);
    }
    assert!(!listed.iter().any(|f| f.name == "size-0.bin"));
    assert!(wait_empty(&spool_dir(&server)).await.is_empty());
}

// ---------------------------------------------------------------------------
// instant

#[tokio::test]
async fn instant_upload_of_known_content_moves_no_unit_bytes() {
    let server = TestServer::start().await;
    let body = content(5 * MIB + 123, 1);
    assert_eq!(put(&server, "/first.bin", body.clone()).await, 201);
    assert_eq!(unit_bytes(&server), body.len() as u64);

    // The same content under a second name, and in another folder.
    let mkcol = server.req("MKCOL", "/other/").send().await.unwrap();
    assert_eq!(mkcol.status(), 201);
    server.emulator.reset_stats();
    assert_eq!(put(&server, "/second.bin", body.clone()).await, 201);
    assert_eq!(put(&server, "/other/third.bin", body.clone()).await, 201);
    let stats = server.emulator.stats();
    assert_eq!(stats["upload_unit_bytes"], 0, "{stats}");
    assert_eq!(server.api_calls("upload/resumable"), 0, "{stats}");
    assert_eq!(server.api_calls("upload/instant"), 2, "{stats}");
    assert_eq!(server.api_calls("upload/poll_upload"), 0, "{stats}");

    for path in ["/second.bin", "/other/third.bin"] {
        let (status, got) = get(&server, path).await;
        assert_eq!(status, 200);
        assert!(got == body, "{path} has other bytes");
    }
    // The same content to the same path again: nothing to send at all.
    server.emulator.reset_stats();
    assert_eq!(put(&server, "/second.bin", body.clone()).await, 204);
    let stats = server.emulator.stats();
    assert_eq!(stats["upload_unit_bytes"], 0, "{stats}");
    assert_eq!(server.api_calls("upload/instant"), 0, "{stats}");
    assert_eq!(server.api_calls("upload/resumable"), 0, "{stats}");

    let listed = root_files(&server).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let first = listed.iter().find(|f| f.name == "first.bin").unwrap();
    let second = listed.iter().find(|f| f.name == "second.bin").unwrap();
    assert_ne!(first.quickkey, second.quickkey, "two files, two keys");
    assert_eq!(second.hash, sha256(&body));
}

#[tokio::test]
async fn overwrite_with_known_content_is_instant_and_keeps_the_key() {
    let server = TestServer::start().await;
    let a = content(2 * MIB, 11);
    let b = content(6 * MIB, 12);
    assert_eq!(put(&server, "/a.bin", a.clone()).await, 201);
    assert_eq!(put(&server, "/b.bin", b.clone()).await, 201);
    let key_b = root_files(&server)
        .await
        .into_iter()
        .find(|f| f.name == "b.bin")
        .unwrap()
        .quickkey;

    server.emulator.reset_stats();
    let status = put(&server, "/b.bin", a.clone()).await;
    assert!(
        status == 204 || status == 201,
        "overwrite answered {status}"
    );
    let stats = server.emulator.stats();
    assert_eq!(stats["upload_unit_bytes"], 0, "{stats}");
    assert_eq!(server.api_calls("upload/instant"), 1, "{stats}");

    let listed = root_files(&server).await;
    let bs: Vec<_> = listed.iter().filter(|f| f.name.starts_with('b')).collect();
    assert_eq!(bs.len(), 1, "{listed:?}");
    assert_eq!(bs[0].quickkey, key_b, "the key survives the overwrite");
    assert_eq!(bs[0].hash, sha256(&a));
    let (_, got) = get(&server, "/b.bin").await;
    assert!(got == a, "b.bin does not hold the new content");
}

// ---------------------------------------------------------------------------
// units: transient failure, parallelism, rate limit

#[tokio::test]
async fn a_transient_unit_failure_resends_that_unit_only() {
    for mode in [FailMode::Error100, FailMode::Drop, FailMode::Html403] {
        // The 3rd of 6 unit requests fails once.
        let server = TestServer::start_with(small_units(Faults {
            fail_upload_unit: 3,
            fail_mode: mode,
            ..Faults::default()
        }))
        .await;
        let body = content(6 * UNIT, 21);
        assert_eq!(
            put(&server, "/flaky.bin", body.clone()).await,
            201,
            "{mode:?}"
        );
        let stats = server.emulator.stats();
        // One extra request, and the failed one carried no stored bytes:
        // every unit's bytes arrived exactly once.
        assert_eq!(server.api_calls("upload/resumable"), 7, "{mode:?} {stats}");
        assert_eq!(unit_bytes(&server), body.len() as u64, "{mode:?} {stats}");
        let injected: u64 = stats["faults_injected"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(injected, 1, "{mode:?} {stats}");
        assert_eq!(server.api_calls("upload/check"), 1, "{mode:?} {stats}");
        let (_, got) = get(&server, "/flaky.bin").await;
        assert!(got == body, "{mode:?}: content differs");
    }
}

#[tokio::test]
async fn units_in_flight_never_exceed_the_configured_parallelism() {
    // Each unit is held 150 ms by the emulator so that parallel units overlap.
    let slow = Faults {
        unit_delay_ms: 150,
        ..Faults::default()
    };
    let body = content(6 * UNIT, 31);
    // (upload_parallelism, None = the default of 3)
    for parallel in [Some(1usize), None] {
        let mut options = small_units(slow.clone());
        options.args.upload_parallelism = parallel;
        let server = TestServer::start_with(options).await;
        assert_eq!(put(&server, "/par.bin", body.clone()).await, 201);
        let stats = server.emulator.stats();
        let max = stats["max_units_in_flight"].as_u64().unwrap();
        let limit = parallel.unwrap_or(3) as u64;
        assert!(
            max <= limit,
            "parallelism {limit}: {max} units at once: {stats}"
        );
        // The units really go out side by side, not one by one.
        assert!(
            max >= limit.min(2),
            "parallelism {limit}: only {max} at once: {stats}"
        );
        assert_eq!(server.api_calls("upload/resumable"), 6);
        let (_, got) = get(&server, "/par.bin").await;
        assert!(got == body);
    }
}

#[tokio::test]
async fn unit_requests_obey_the_global_rate_limit() {
    // The emulator refuses more than 5 calls in a second (error 163); the
    // server is told 4 per second with no burst. If unit POSTs bypassed the
    // limiter, three parallel units would trip the emulator at once.
    let mut options = small_units(Faults {
        rate_limit_per_sec: 5,
        ..Faults::default()
    });
    options.args.calls_per_second = Some(4.0);
    options.args.burst = Some(1);
    let server = TestServer::start_with(options).await;
    let body = content(6 * UNIT, 41);
    assert_eq!(put(&server, "/limited.bin", body.clone()).await, 201);
    let stats = server.emulator.stats();
    assert_eq!(server.api_calls("upload/resumable"), 6, "{stats}");
    assert!(
        stats["errors"].get("163").is_none(),
        "the emulator had to refuse calls: {stats}"
    );
}

// ---------------------------------------------------------------------------
// resume

#[tokio::test]
async fn resume_after_a_failed_middle_unit_sends_only_the_missing_units() {
    // Unit 4 of 8 keeps failing: the PUT must fail with a 5xx.
    let server = TestServer::start_with(small_units(Faults {
        fail_unit_id: Some(4),
        ..Faults::default()
    }))
    .await;
    let body = content(8 * UNIT, 51);
    let status = put(&server, "/resume.bin", body.clone()).await;
    assert_eq!(status, 502, "a unit that keeps failing is a bad gateway");
    let first = unit_bytes(&server);
    assert!(first < body.len() as u64);
    // Nothing half-made shows: no file, no spool.
    assert_eq!(get(&server, "/resume.bin").await.0, 404);
    assert!(
        !root_files(&server)
            .await
            .iter()
            .any(|f| f.name.starts_with("resume"))
    );
    assert!(wait_empty(&spool_dir(&server)).await.is_empty());

    // The server restarts and the network heals; the client sends the same
    // content again.
    server.emulator.set_faults(Faults::default());
    let server = server.restart(Options::default()).await;
    server.emulator.reset_stats();
    assert_eq!(put(&server, "/resume.bin", body.clone()).await, 201);
    let second = unit_bytes(&server);
    let missing_units = (body.len() as u64 - first).div_ceil(UNIT as u64);
    assert!(
        second <= (missing_units + 1) * UNIT as u64,
        "resent {second} bytes, {missing_units} units were missing"
    );
    assert!(first + second >= body.len() as u64);
    eprintln!(
        "resume: first attempt stored {first} bytes, the retry sent {second} ({missing_units} units missing)"
    );
    let (_, got) = get(&server, "/resume.bin").await;
    assert!(got == body, "resumed file differs");
    let listed = root_files(&server).await;
    assert_eq!(
        listed
            .iter()
            .filter(|f| f.name.starts_with("resume"))
            .count(),
        1,
        "{listed:?}"
    );
}

#[tokio::test]
async fn resume_after_dropped_connections_on_a_unit_past_the_first_bitmap_word() {
    // Same as above, but the failing unit's connection is cut each time, and
    // 64 KiB units. 18 units: unit 16 is bit 0 of the
    // second bitmap word, unit 17 (one byte) bit 1.
    let server = TestServer::start_with(small_units(Faults {
        fail_unit_id: Some(16),
        fail_mode: FailMode::Drop,
        ..Faults::default()
    }))
    .await;
    let body = content(17 * UNIT + 1, 52);
    let status = put(&server, "/drop.bin", body.clone()).await;
    assert!((500..600).contains(&status), "answered {status}");
    let first = unit_bytes(&server);
    assert_eq!(first, (16 * UNIT + 1) as u64, "all units but unit 16");
    server.emulator.set_faults(Faults::default());
    server.emulator.reset_stats();
    assert_eq!(put(&server, "/drop.bin", body.clone()).await, 201);
    assert_eq!(unit_bytes(&server), UNIT as u64, "only unit 16 again");
    assert_eq!(server.api_calls("upload/resumable"), 1);
    let (_, got) = get(&server, "/drop.bin").await;
    assert!(got == body);
}

// ---------------------------------------------------------------------------
// polling and fileerrors

#[tokio::test]
async fn polling_walks_the_verification_statuses_and_succeeds_only_with_a_key() {
    let server = TestServer::start_with(with_faults(Faults {
        poll_delay_ms: 1500,
        ..Faults::default()
    }))
    .await;
    let body = content(3 * MIB, 61);
    let started = Instant::now();
    assert_eq!(put(&server, "/slow.bin", body.clone()).await, 201);
    let took = started.elapsed();
    // Success only once MediaFire made the file: never before the delay.
    assert!(
        took >= Duration::from_millis(1500),
        "answered after {took:?}"
    );
    assert!(
        server.api_calls("upload/poll_upload") >= 2,
        "{}",
        server.emulator.stats()
    );
    // The file is there, with its key, the moment the PUT says so.
    let listed = root_files(&server).await;
    let f = listed.iter().find(|f| f.name == "slow.bin").unwrap();
    assert!(!f.quickkey.is_empty());
    assert_eq!(f.hash, sha256(&body));
    let (status, got) = get(&server, "/slow.bin").await;
    assert_eq!(status, 200);
    assert!(got == body);
}

#[tokio::test]
async fn a_full_account_is_507_before_any_unit_is_sent() {
    let server = TestServer::start_with(Options {
        emulator: Some(EmulatorConfig {
            storage_limit: 3 * MIB as u64,
            ..EmulatorConfig::default()
        }),
        ..Options::default()
    })
    .await;
    server
        .emulator
        .seed_file("/filler.bin", &content(2 * MIB, 70));
    server.emulator.reset_stats();
    let status = put(&server, "/big.bin", content(2 * MIB, 71)).await;
    assert_eq!(status, 507);
    assert_eq!(unit_bytes(&server), 0, "{}", server.emulator.stats());
    assert!(
        !root_files(&server)
            .await
            .iter()
            .any(|f| f.name == "big.bin")
    );
    assert!(wait_empty(&spool_dir(&server)).await.is_empty());
}

#[tokio::test]
async fn storage_limit_reached_during_verification_is_507() {
    // poll fileerror 15: the account fills up between check and assembly.
    let server = TestServer::start_with(Options {
        emulator: Some(EmulatorConfig {
            storage_limit: 8 * UNIT as u64,
            unit_size: Some(UNIT as u64),
            faults: Faults {
                poll_delay_ms: 1500,
                ..Faults::default()
            },
            ..EmulatorConfig::default()
        }),
        ..Options::default()
    })
    .await;
    let body = content(5 * UNIT, 72);
    let size = body.len() as u64;
    let task = {
        let req = server.req("PUT", "/late.bin").body(body);
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    wait_unit_bytes(&server, size).await;
    server
        .emulator
        .seed_file("/grew.bin", &content(4 * UNIT, 73));
    assert_eq!(task.await.unwrap(), 507);
    assert!(
        !root_files(&server)
            .await
            .iter()
            .any(|f| f.name == "late.bin")
    );
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_507() {
    // poll fileerror 1 ("larger than the maximum file size").
    let server = TestServer::start_with(Options {
        emulator: Some(EmulatorConfig {
            max_upload_size: MIB as u64,
            ..EmulatorConfig::default()
        }),
        ..Options::default()
    })
    .await;
    assert_eq!(put(&server, "/huge.bin", content(2 * MIB, 74)).await, 507);
    assert!(
        !root_files(&server)
            .await
            .iter()
            .any(|f| f.name == "huge.bin")
    );
}

// ---------------------------------------------------------------------------
// overwrite and concurrency

#[tokio::test]
async fn overwrite_keeps_the_key_and_the_old_content_until_the_new_is_complete() {
    let server = TestServer::start_with(small_units(Faults::default())).await;
    let old = content(2 * UNIT + 5, 81);
    let new = content(5 * UNIT + 9, 82);
    assert_eq!(put(&server, "/doc.bin", old.clone()).await, 201);
    let key = root_files(&server)
        .await
        .into_iter()
        .find(|f| f.name == "doc.bin")
        .unwrap()
        .quickkey;
    let (_, got) = get(&server, "/doc.bin").await;
    assert!(got == old);

    // MediaFire takes 2 s to verify the new content.
    server.emulator.set_faults(Faults {
        poll_delay_ms: 2000,
        ..Faults::default()
    });
    server.emulator.reset_stats();
    let task = {
        let req = server.req("PUT", "/doc.bin").body(new.clone());
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    // Every unit of the new content is in; MediaFire is verifying it.
    wait_unit_bytes(&server, new.len() as u64).await;
    for _ in 0..3 {
        let (status, got) = get(&server, "/doc.bin").await;
        assert_eq!(status, 200);
        assert_eq!(got.len(), old.len(), "GET during the replacement");
        assert!(got == old, "GET during the replacement mixed contents");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !task.is_finished(),
        "the replacement finished before the reads (poll delay too short)"
    );
    let status = task.await.unwrap();
    assert!(
        status == 204 || status == 201,
        "overwrite answered {status}"
    );

    let listed = root_files(&server).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].quickkey, key, "the quickkey survives");
    assert_eq!(listed[0].hash, sha256(&new));
    let (_, got) = get(&server, "/doc.bin").await;
    assert_eq!(got.len(), new.len());
    assert!(got == new, "after the replacement the new content, whole");
}

/// PUTs every body to `path` at once; returns the index of the PUT whose
/// answer came last, after checking that all succeeded.
async fn put_all_at_once(server: &TestServer, path: &str, bodies: &[Vec<u8>]) -> usize {
    let mut tasks = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let req = server.req("PUT", path).body(body.clone());
        tasks.push(tokio::spawn(async move {
            let status = req.send().await.unwrap().status().as_u16();
            (i, status, Instant::now())
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    for (i, status, _) in &done {
        assert!(
            *status == 201 || *status == 204,
            "PUT {i} answered {status}"
        );
    }
    done.iter().max_by_key(|(_, _, at)| *at).unwrap().0
}

#[tokio::test]
async fn concurrent_puts_to_one_path_leave_exactly_one_file() {
    let server = TestServer::start_with(small_units(Faults::default())).await;
    // Five different contents of 5 units each (the last one short).
    let bodies: Vec<Vec<u8>> = (0..5)
        .map(|i| content(4 * UNIT + 1000 * (i + 1), 90 + i as u64))
        .collect();
    let last = put_all_at_once(&server, "/same.bin", &bodies).await;

    let listed = root_files(&server).await;
    assert_eq!(listed.len(), 1, "one path, one file: {listed:?}");
    assert_eq!(listed[0].name, "same.bin");
    let hashes: Vec<String> = bodies.iter().map(|b| sha256(b)).collect();
    assert!(hashes.contains(&listed[0].hash));
    assert_eq!(
        listed[0].hash, hashes[last],
        "the last upload to complete wins"
    );
    let (_, got) = get(&server, "/same.bin").await;
    assert!(got == bodies[last]);
    let (_, xml) = propfind(&server, "/", "1").await;
    let names = hrefs(&xml);
    assert!(!names.iter().any(|n| n.contains("same(")), "{names:?}");
}

#[tokio::test]
async fn concurrent_overwrites_keep_one_file_and_its_key_even_if_mediafire_would_rename() {
    // MediaFire's default for a taken name is `keep` here (rename to
    // name(1).ext): the server must never rely on the default.
    let mut options = small_units(Faults::default());
    if let Some(e) = options.emulator.as_mut() {
        e.duplicate_action = emulator::DuplicateAction::Keep;
    }
    let server = TestServer::start_with(options).await;
    assert_eq!(put(&server, "/doc.txt", content(3 * UNIT, 1)).await, 201);
    let key = root_files(&server).await[0].quickkey.clone();
    // Five new contents, one of them already in the account (instant),
    // one small, the rest of several units.
    let known = content(2 * UNIT, 2);
    assert_eq!(put(&server, "/known.bin", known.clone()).await, 201);
    let bodies = vec![
        known,
        content(100, 3),
        content(6 * UNIT + 1, 4),
        content(5 * UNIT, 5),
        content(7 * UNIT + 3, 6),
    ];
    let last = put_all_at_once(&server, "/doc.txt", &bodies).await;
    let listed: Vec<Listed> = root_files(&server)
        .await
        .into_iter()
        .filter(|f| f.name != "known.bin")
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, "doc.txt");
    assert_eq!(listed[0].quickkey, key, "every overwrite kept the key");
    assert_eq!(listed[0].hash, sha256(&bodies[last]), "the last one wins");
    assert!(get(&server, "/doc.txt").await.1 == bodies[last]);
}

// ---------------------------------------------------------------------------
// short bodies and disconnects

fn basic_auth() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
}

/// How a raw request ends.
enum End {
    /// Half-close the socket and read what the server answers.
    HalfClose,
    /// Drop the connection without a word.
    Abort,
    /// Keep the connection open and read the status line.
    Answer,
}

/// A PUT written by hand: `headers` (CRLF-terminated lines), then `body`,
/// then `end`. Returns the status line, if any.
async fn raw_put(
    server: &TestServer,
    path: &str,
    headers: &str,
    body: &[u8],
    end: End,
) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\n{headers}\r\n",
        server.addr,
        basic_auth()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s.flush().await.unwrap();
    match end {
        End::Abort => {
            // Vanish once the server is spooling (proves the body got in).
            let spool = spool_dir(server);
            let deadline = Instant::now() + Duration::from_secs(10);
            while dir_entries(&spool).is_empty() {
                assert!(Instant::now() < deadline, "the server never spooled");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            drop(s);
            None
        }
        End::Answer => {
            let mut out = Vec::new();
            let mut buf = [0u8; 1024];
            let read = async {
                while !out.windows(2).any(|w| w == b"\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
            let text = String::from_utf8_lossy(&out).into_owned();
            text.lines().next().map(String::from)
        }
        End::HalfClose => {
            let _ = s.shutdown().await;
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
            let text = String::from_utf8_lossy(&out).into_owned();
            text.lines().next().map(String::from)
        }
    }
}

/// No upload reached the emulator and the spool is empty.
async fn assert_no_trace(server: &TestServer, what: &str) {
    let left = wait_empty(&spool_dir(server)).await;
    assert!(left.is_empty(), "{what}: spool left behind: {left:?}");
    let stats = server.emulator.stats();
    assert_eq!(stats["upload_unit_bytes"], 0, "{what}: {stats}");
    assert_eq!(server.api_calls("upload/check"), 0, "{what}: {stats}");
    assert_eq!(server.api_calls("upload/instant"), 0, "{what}: {stats}");
}

#[tokio::test]
async fn a_short_body_leaves_no_file_and_no_spool() {
    let server = TestServer::start().await;
    server.emulator.reset_stats();

    // Content-Length 1000, 500 bytes, then the client closes.
    let status = raw_put(
        &server,
        "/short.bin",
        "Content-Length: 1000\r\n",
        &content(500, 1),
        End::HalfClose,
    )
    .await;
    if let Some(line) = &status {
        assert!(!line.contains(" 20"), "short body answered {line}");
    }
    assert_no_trace(&server, "Content-Length short").await;

    // Finder: chunked with X-Expected-Entity-Length larger than what came.
    let mut chunked = format!("{:x}\r\n", 500).into_bytes();
    chunked.extend_from_slice(&content(500, 2));
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let status = raw_put(
        &server,
        "/finder.bin",
        "Transfer-Encoding: chunked\r\nX-Expected-Entity-Length: 1000\r\n",
        &chunked,
        End::HalfClose,
    )
    .await
    .expect("a complete chunked request gets an answer");
    assert!(
        status.contains(" 400") || status.contains(" 409") || status.contains(" 412"),
        "Finder short body answered {status}"
    );
    assert_no_trace(&server, "X-Expected-Entity-Length short").await;

    for path in ["/short.bin", "/finder.bin"] {
        assert_eq!(get(&server, path).await.0, 404, "{path}");
    }
    assert!(root_files(&server).await.is_empty());

    // Controls: the same raw requests with the whole body are stored.
    let status = raw_put(
        &server,
        "/whole.bin",
        "Content-Length: 1000\r\n",
        &content(1000, 1),
        End::Answer,
    )
    .await
    .expect("an answer");
    assert!(status.contains(" 201"), "whole body answered {status}");
    let mut chunked = format!("{:x}\r\n", 1000).into_bytes();
    chunked.extend_from_slice(&content(1000, 2));
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let status = raw_put(
        &server,
        "/finder-whole.bin",
        "Transfer-Encoding: chunked\r\nX-Expected-Entity-Length: 1000\r\n",
        &chunked,
        End::Answer,
    )
    .await
    .expect("an answer");
    assert!(
        status.contains(" 201"),
        "Finder whole body answered {status}"
    );
    assert_eq!(get(&server, "/finder-whole.bin").await.1, content(1000, 2));
    assert_eq!(root_files(&server).await.len(), 2);
}

#[tokio::test]
async fn a_body_cut_short_by_the_client_is_answered_400_not_502() {
    // The client's failure, not an upstream one: no 5xx in the request log.
    let server = TestServer::start().await;
    let status = raw_put(
        &server,
        "/cut.bin",
        "Content-Length: 1000\r\n",
        &content(500, 1),
        End::HalfClose,
    )
    .await
    .expect("an answer");
    assert!(status.contains(" 400"), "answered {status}");
    assert_no_trace(&server, "cut").await;
}

#[tokio::test]
async fn a_short_body_or_disconnect_never_changes_an_existing_file() {
    let server = TestServer::start().await;
    let old = content(3 * MIB, 3);
    assert_eq!(put(&server, "/keep.bin", old.clone()).await, 201);
    let before = root_files(&server).await;
    server.emulator.reset_stats();

    // Content-Length short, half-close.
    raw_put(
        &server,
        "/keep.bin",
        "Content-Length: 1000\r\n",
        &content(500, 4),
        End::HalfClose,
    )
    .await;
    assert_no_trace(&server, "short overwrite").await;

    // Finder-style short overwrite.
    let mut chunked = format!("{:x}\r\n", 700).into_bytes();
    chunked.extend_from_slice(&content(700, 5));
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    raw_put(
        &server,
        "/keep.bin",
        "Transfer-Encoding: chunked\r\nX-Expected-Entity-Length: 5000\r\n",
        &chunked,
        End::HalfClose,
    )
    .await;
    assert_no_trace(&server, "Finder short overwrite").await;

    // A client that disconnects mid-body (6 MiB announced, 3 MiB sent).
    raw_put(
        &server,
        "/keep.bin",
        &format!("Content-Length: {}\r\n", 6 * MIB),
        &content(3 * MIB, 6),
        End::Abort,
    )
    .await;
    assert_no_trace(&server, "disconnected overwrite").await;

    // A chunked body cut off mid-chunk.
    let mut cut = format!("{:x}\r\n", 2 * MIB).into_bytes();
    cut.extend_from_slice(&content(MIB, 7));
    raw_put(
        &server,
        "/keep.bin",
        "Transfer-Encoding: chunked\r\n",
        &cut,
        End::Abort,
    )
    .await;
    assert_no_trace(&server, "chunked cut").await;

    let after = root_files(&server).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].quickkey, before[0].quickkey);
    assert_eq!(after[0].hash, sha256(&old));
    let (_, got) = get(&server, "/keep.bin").await;
    assert!(got == old, "the old content must survive");
}

#[tokio::test]
async fn a_disconnect_mid_body_leaves_no_file_and_no_spool() {
    let server = TestServer::start().await;
    server.emulator.reset_stats();
    raw_put(
        &server,
        "/gone.bin",
        &format!("Content-Length: {}\r\n", 8 * MIB),
        &content(3 * MIB, 8),
        End::Abort,
    )
    .await;
    assert_no_trace(&server, "disconnect").await;
    assert_eq!(get(&server, "/gone.bin").await.0, 404);
    let (status, _) = propfind(&server, "/gone.bin", "0").await;
    assert_eq!(status, 404);
    assert!(root_files(&server).await.is_empty());
}

// ---------------------------------------------------------------------------
// full spool disk

/// A 1 MiB tmpfs, unmounted on drop. Needs root (CI and this machine run
/// as root); a failed mount fails the test.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn mount() -> TinyDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a 1 MiB tmpfs for the full-disk test failed (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TinyDisk { dir }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_spool_disk_is_507_and_the_spool_is_removed() {
    let disk = TinyDisk::mount();
    let spool = disk.dir.path().join("spool");
    let server = TestServer::start_with(Options {
        args: ServeArgs {
            spool_dir: Some(spool.clone()),
            ..ServeArgs::default()
        },
        ..Options::default()
    })
    .await;
    server.emulator.reset_stats();
    // Raw, so the answer is read even though the server stops reading the body.
    let status = raw_put(
        &server,
        "/toobig.bin",
        &format!("Content-Length: {}\r\n", 3 * MIB),
        &content(3 * MIB, 9),
        End::HalfClose,
    )
    .await
    .expect("an answer");
    assert!(status.contains(" 507"), "full disk answered {status}");
    let left = wait_empty(&spool).await;
    assert!(left.is_empty(), "spool left on the full disk: {left:?}");
    assert_eq!(server.api_calls("upload/check"), 0);
    // The disk is usable again: a small file still goes through.
    assert_eq!(put(&server, "/small.bin", content(1000, 10)).await, 201);
    assert!(wait_empty(&spool).await.is_empty());
    drop(server);
}

// ---------------------------------------------------------------------------
// progress log

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The real binary, serving the emulator at `api_base` with `state`; its
/// stderr lines (ANSI stripped) arrive on the receiver. Returns once it has
/// logged its address.
async fn spawn_binary(
    api_base: &str,
    state: &Path,
    log: &str,
) -> (
    tokio::process::Child,
    String,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mediafire-dav"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-auth", "--cookie"])
        .arg(EmulatorConfig::default().cookie)
        .arg("--api-base")
        .arg(api_base)
        .arg("--state-dir")
        .arg(state)
        .args(["--log", log])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stderr = child.stderr.take().unwrap();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(strip_ansi(&line));
        }
    });
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the server logs its address")
            .expect("the server runs");
        if let Some(i) = line.find("url=http://") {
            break line[i + 4..].split_whitespace().next().unwrap().to_string();
        }
    };
    (child, url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_uploads_log_progress_every_ten_percent_with_throughput() {
    let emu = emulator::start(EmulatorConfig {
        unit_size: Some(UNIT as u64),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, mut rx) =
        spawn_binary(&emu.base_url(), &dir.path().join("state"), "info").await;
    let mut seen = Vec::new();

    // A small file (one unit): its completion line, no progress lines.
    let resp = reqwest::Client::new()
        .put(format!("{url}small.bin"))
        .body(content(3000, 98))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a completion line for small.bin")
            .expect("the server runs");
        assert!(
            !line.contains("upload progress"),
            "a one-unit upload logs no progress: {line}"
        );
        seen.push(line.clone());
        if line.contains("upload complete") {
            break;
        }
    }

    // 10 units: one line per 10 %.
    let body = content(10 * UNIT, 99);
    let resp = reqwest::Client::new()
        .put(format!("{}big.bin", url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let mut progress = Vec::new();
    let complete = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no completion line; log so far: {seen:#?}"))
            .expect("the server runs");
        seen.push(line.clone());
        if line.contains("upload progress") {
            progress.push(line);
        } else if line.contains("upload complete") {
            break line;
        }
    };
    let _ = child.kill().await;

    let percents: Vec<u64> = progress
        .iter()
        .map(|l| {
            assert!(l.contains(" INFO "), "progress at info: {l}");
            assert!(l.contains("mib_per_s="), "progress has throughput: {l}");
            let p = l.split("percent=").nth(1).unwrap();
            p.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(
        percents,
        (1..=10).map(|i| i * 10).collect::<Vec<_>>(),
        "{progress:#?}"
    );
    assert!(complete.contains(" INFO "), "{complete}");
    assert!(complete.contains("mib_per_s="), "{complete}");
    assert!(complete.contains("big.bin"), "{complete}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_files_of_a_crashed_server_are_removed_at_start() {
    let emu = emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let spool = state.join("spool");
    let (mut child, url, _rx) = spawn_binary(&emu.base_url(), &state, "info").await;

    // A PUT is half-way through its body when the server dies (SIGKILL).
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /crash.bin HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        8 * MIB
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&content(3 * MIB, 5)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir_entries(&spool).is_empty() {
        assert!(Instant::now() < deadline, "the server never spooled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;
    drop(s);
    let left = dir_entries(&spool);
    assert_eq!(left.len(), 1, "the crash leaves its spool: {left:?}");
    // Something in the spool directory that is not a spool file stays.
    std::fs::write(spool.join("notes.txt"), b"not ours").unwrap();

    let (mut child, _url, _rx) = spawn_binary(&emu.base_url(), &state, "info").await;
    let left = dir_entries(&spool);
    let _ = child.kill().await;
    assert_eq!(
        left,
        vec!["notes.txt".to_string()],
        "abandoned spool files stay"
    );
    emu.shutdown().await;
}

// ---------------------------------------------------------------------------
// every fileerror and doupload.result, as a WebDAV status

/// PUTs a 5 KiB file, new and as an overwrite, with the emulator failing
/// every upload with `faults`; returns both statuses and the files after.
async fn failed_put_statuses(faults: Faults) -> ((u16, u16), Vec<Listed>) {
    let server = TestServer::start().await;
    assert_eq!(put(&server, "/old.bin", content(5000, 1)).await, 201);
    server.emulator.set_faults(faults);
    let new = put(&server, "/new.bin", content(5000, 2)).await;
    let over = put(&server, "/old.bin", content(5000, 3)).await;
    assert!(wait_empty(&spool_dir(&server)).await.is_empty());
    ((new, over), root_files(&server).await)
}

#[tokio::test]
async fn every_fileerror_has_a_clear_status() {
    // (fileerror, expected status): the file is too big or the account full
    // → 507; a virus → 403; the name clash MediaFire insists on → 409; a
    // vanished destination folder → 409; the account blocked → 503; every
    // other refusal or internal failure of MediaFire → 502.
    let table: &[(u32, u16)] = &[
        (1, 507),
        (2, 502),
        (3, 502),
        (4, 502),
        (5, 403),
        (6, 502),
        (7, 502),
        (8, 502),
        (9, 502),
        (10, 502),
        (12, 502),
        (13, 409),
        (14, 409),
        (15, 507),
        (16, 502),
        (17, 502),
        (18, 503),
        (19, 502),
        (99, 502),
    ];
    let mut got = Vec::new();
    for &(fileerror, _) in table {
        let (statuses, listed) = failed_put_statuses(Faults {
            upload_fileerror: fileerror,
            ..Faults::default()
        })
        .await;
        // Nothing appeared, nothing changed.
        assert_eq!(listed.len(), 1, "fileerror {fileerror}: {listed:?}");
        assert_eq!(listed[0].hash, sha256(&content(5000, 1)));
        got.push((fileerror, statuses));
    }
    for (&(fileerror, want), (_, statuses)) in table.iter().zip(&got) {
        assert_eq!(*statuses, (want, want), "fileerror {fileerror}: {got:?}");
    }
}

#[tokio::test]
async fn a_refused_upload_key_is_success_if_the_file_landed_else_502() {
    // A negative doupload.result after the last unit: MediaFire made the
    // file anyway (the emulator does), so the re-check finds it and the PUT
    // succeeds: 201 new, 204 overwritten.
    for result in [-20i64, -80, -1] {
        let (statuses, listed) = failed_put_statuses(Faults {
            poll_result: result,
            ..Faults::default()
        })
        .await;
        assert_eq!(statuses, (201, 204), "poll result {result}");
        let hashes: Vec<&str> = listed.iter().map(|f| f.hash.as_str()).collect();
        assert_eq!(
            hashes,
            [sha256(&content(5000, 2)), sha256(&content(5000, 3))],
            "poll result {result}: new.bin and old.bin hold what was PUT"
        );
    }
    // A refused key and no file: the upload failed, a clear 502 (never the
    // 404 or 405 a "not found" upload key used to become).
    let (refused, listed) = failed_put_statuses(Faults {
        poll_result: -80,
        upload_fileerror: 6,
        ..Faults::default()
    })
    .await;
    assert_eq!(refused, (502, 502), "refused key, no file");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].hash, sha256(&content(5000, 1)));
}

// ---------------------------------------------------------------------------
// memory

/// Peak resident memory (`VmHWM`) of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded_by_buffers_not_by_the_file_size() {
    let emu = emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, _rx) =
        spawn_binary(&emu.base_url(), &dir.path().join("state"), "info").await;
    let pid = child.id().unwrap();
    let http = reqwest::Client::new();
    // Warm up every code path with a small multi-unit file first.
    let small = content(5 * MIB, 1);
    let resp = http
        .put(format!("{url}warm.bin"))
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let before = peak_rss(pid);

    // 32 MiB: 16 units of 2 MiB, 3 in flight.
    let size = 32 * MIB;
    let body = content(size, 2);
    let resp = http
        .put(format!("{url}big.bin"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let after = peak_rss(pid);
    let _ = child.kill().await;
    assert_eq!(
        emu.stats()["upload_unit_bytes"].as_u64().unwrap(),
        (5 * MIB + size) as u64
    );
    let growth = after.saturating_sub(before);
    eprintln!(
        "memory: peak RSS {} MiB before, {} MiB after a {} MiB upload (+{} MiB)",
        before >> 20,
        after >> 20,
        size >> 20,
        growth >> 20
    );
    // Units in flight, each read once and perhaps copied once, plus slack;
    // holding the body would cost the whole 32 MiB.
    let bound = (3 * 2 * 2 * MIB + 4 * MIB) as u64;
    assert!(
        growth < bound,
        "peak RSS grew by {growth} bytes for a {size}-byte upload (bound {bound})"
    );
    emu.shutdown().await;
}

// ---------------------------------------------------------------------------
// log lines and a crash in the middle of the units

/// Collects the stderr lines that arrive within `wait`.
async fn drain(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    wait: Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(wait, rx.recv()).await {
        out.push(line);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_upload_logs_one_warning_with_its_code_and_name() {
    let emu = emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, mut rx) =
        spawn_binary(&emu.base_url(), &dir.path().join("state"), "info").await;
    let http = reqwest::Client::new();
    // (fault, status, what the warning must say)
    let cases: Vec<(Faults, u16, &str)> = vec![
        (
            Faults {
                upload_fileerror: 15,
                ..Faults::default()
            },
            507,
            "fileerror=15",
        ),
        (
            Faults {
                upload_fileerror: 5,
                ..Faults::default()
            },
            403,
            "virus",
        ),
        (
            Faults {
                upload_fileerror: 7,
                ..Faults::default()
            },
            502,
            "hash or size mismatch",
        ),
        (
            Faults {
                poll_result: -80,
                upload_fileerror: 6,
                ..Faults::default()
            },
            502,
            "upload key not found",
        ),
    ];
    for (i, (faults, status, says)) in cases.into_iter().enumerate() {
        emu.set_faults(faults);
        let name = format!("f{i}.bin");
        let resp = http
            .put(format!("{url}{name}"))
            .body(content(3000, i as u64))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{name}");
        let lines = drain(&mut rx, Duration::from_millis(300)).await;
        let warnings: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(" WARN ") && l.contains(says))
            .collect();
        assert_eq!(
            warnings.len(),
            1,
            "{name}: one warning saying {says:?}: {lines:#?}"
        );
        assert!(warnings[0].contains(&format!("name={name}")), "{lines:#?}");
    }
    let _ = child.kill().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_units_resumes_after_restart() {
    let emu = emulator::start(EmulatorConfig {
        unit_size: Some(UNIT as u64),
        faults: Faults {
            unit_delay_ms: 100,
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (mut child, url, _rx) = spawn_binary(&emu.base_url(), &state, "info").await;
    let body = content(10 * UNIT, 77);
    let total = body.len() as u64;
    let req = reqwest::Client::new()
        .put(format!("{url}crash.bin"))
        .body(body.clone());
    let put = tokio::spawn(async move { req.send().await.map(|r| r.status()) });
    let deadline = Instant::now() + Duration::from_secs(30);
    while emu.stats()["upload_unit_bytes"].as_u64().unwrap() < 3 * UNIT as u64 {
        assert!(Instant::now() < deadline, "units never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;
    assert!(
        put.await.unwrap().is_err(),
        "the client sees the server die"
    );
    // Let the emulator finish the unit requests the dead server left open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = emu.stats()["upload_unit_bytes"].as_u64().unwrap();
    assert!(first < total);

    emu.set_faults(Faults::default());
    emu.reset_stats();
    let (mut child, url, _rx) = spawn_binary(&emu.base_url(), &state, "info").await;
    let resp = reqwest::Client::new()
        .put(format!("{url}crash.bin"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let second = emu.stats()["upload_unit_bytes"].as_u64().unwrap();
    let missing_units = (total - first).div_ceil(UNIT as u64);
    eprintln!(
        "crash: {first} bytes stored before the kill, {second} sent after ({missing_units} units missing)"
    );
    assert!(
        second <= (missing_units + 1) * UNIT as u64,
        "resent {second} bytes, {missing_units} units were missing"
    );
    let got = reqwest::Client::new()
        .get(format!("{url}crash.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got == body, "the resumed file differs");
    let _ = child.kill().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn an_overwrite_that_fits_once_the_old_content_goes_is_not_refused() {
    // 10 units of space; a 6-unit file is replaced by a 7-unit one: only 4
    // units are free, but the old 6 go with the replacement.
    let mut options = small_units(Faults::default());
    if let Some(e) = options.emulator.as_mut() {
        e.storage_limit = 10 * UNIT as u64;
    }
    let server = TestServer::start_with(options).await;
    assert_eq!(put(&server, "/a.bin", content(6 * UNIT, 1)).await, 201);
    let new = content(7 * UNIT, 2);
    assert_eq!(put(&server, "/a.bin", new.clone()).await, 204);
    assert_eq!(get(&server, "/a.bin").await.1, new);
    // An overwrite that does not fit even so: MediaFire says so (fileerror
    // 15) and the old content stays.
    assert_eq!(put(&server, "/a.bin", content(12 * UNIT, 4)).await, 507);
    assert_eq!(get(&server, "/a.bin").await.1, new);
    // A new file of that size does not fit, and is refused before sending.
    server.emulator.reset_stats();
    assert_eq!(put(&server, "/b.bin", content(7 * UNIT, 3)).await, 507);
    assert_eq!(unit_bytes(&server), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_passes_through_intermediate_statuses_with_growing_pauses() {
    // The emulator answers 18, 19, 4, 5, 6 over 2 s before 99; the client
    // logs each intermediate status at debug.
    let emu = emulator::start(EmulatorConfig {
        faults: Faults {
            poll_delay_ms: 2000,
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, mut rx) = spawn_binary(
        &emu.base_url(),
        &dir.path().join("state"),
        "info,mediafire_dav::mediafire::upload=debug",
    )
    .await;
    let resp = reqwest::Client::new()
        .put(format!("{url}slow.bin"))
        .body(content(5000, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let lines = drain(&mut rx, Duration::from_millis(300)).await;
    let _ = child.kill().await;
    let stamps_and_statuses: Vec<(String, u32)> = lines
        .iter()
        .filter(|l| l.contains("upload not verified yet"))
        .map(|l| {
            let status = l.split("status=").nth(1).unwrap();
            let status = status.split_whitespace().next().unwrap().parse().unwrap();
            (l.split_whitespace().next().unwrap().to_string(), status)
        })
        .collect();
    let statuses: Vec<u32> = stamps_and_statuses.iter().map(|s| s.1).collect();
    assert!(statuses.len() >= 3, "{lines:#?}");
    assert!(
        statuses.iter().all(|s| [17, 18, 19, 4, 5, 6].contains(s)),
        "{statuses:?}"
    );
    let mut distinct = statuses.clone();
    distinct.dedup();
    assert!(distinct.len() >= 2, "walked through {statuses:?}");
    // The pauses grow (backoff 250 ms, 500 ms, 1 s, ...).
    let times: Vec<chrono::DateTime<chrono::Utc>> = stamps_and_statuses
        .iter()
        .map(|(t, _)| t.parse().unwrap())
        .collect();
    let gaps: Vec<i64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    assert!(
        gaps.len() >= 2 && gaps[gaps.len() - 1] > gaps[0] + 200,
        "poll pauses {gaps:?} ms"
    );
    let done = lines
        .iter()
        .find(|l| l.contains("upload complete"))
        .expect("a completion line");
    assert!(done.contains("quickkey="), "{done}");
    assert!(!done.contains("quickkey= "), "{done}");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_client_gone_during_the_upload_cancels_it_and_a_retry_resumes() {
    // The whole body is in, the units are on their way, and the client
    // hangs up: the upload stops there, nothing appears, the spool goes;
    // the client's retry sends only what MediaFire lacks.
    let server = TestServer::start_with(small_units(Faults {
        unit_delay_ms: 100,
        ..Faults::default()
    }))
    .await;
    let body = content(10 * UNIT, 5);
    let total = body.len() as u64;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /gone.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Length: {total}\r\n\r\n",
        server.addr,
        basic_auth(),
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    wait_unit_bytes(&server, 2 * UNIT as u64).await;
    drop(s);
    let left = wait_empty(&spool_dir(&server)).await;
    assert!(left.is_empty(), "spool left behind: {left:?}");
    // Unit requests already on the wire may still land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = unit_bytes(&server);
    assert!(first < total, "the upload went on without its client");
    assert!(root_files(&server).await.is_empty());

    server.emulator.set_faults(Faults::default());
    server.emulator.reset_stats();
    assert_eq!(put(&server, "/gone.bin", body.clone()).await, 201);
    let second = unit_bytes(&server);
    let missing = (total - first).div_ceil(UNIT as u64);
    assert!(
        second <= (missing + 1) * UNIT as u64,
        "resent {second}, {missing} units were missing"
    );
    assert!(get(&server, "/gone.bin").await.1 == body);
}

#[tokio::test]
async fn tokens_expiring_mid_upload_cost_no_unit_twice() {
    let server = TestServer::start_with(small_units(Faults {
        unit_delay_ms: 50,
        ..Faults::default()
    }))
    .await;
    let body = content(12 * UNIT, 8);
    let task = {
        let req = server.req("PUT", "/tok.bin").body(body.clone());
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    wait_unit_bytes(&server, 3 * UNIT as u64).await;
    server.emulator.expire_all_tokens();
    assert_eq!(task.await.unwrap(), 201);
    let stats = server.emulator.stats();
    assert!(
        stats["errors"]["105"].as_u64().unwrap_or(0) >= 1,
        "no token expired mid-upload: {stats}"
    );
    // Units refused for the expired token carried no stored bytes; every
    // unit was stored exactly once.
    assert_eq!(unit_bytes(&server), body.len() as u64, "{stats}");
    assert!(get(&server, "/tok.bin").await.1 == body);
}

#[tokio::test]
async fn an_instant_upload_into_a_full_account_is_507() {
    // Instant uploads move no bytes but still take space (error 162).
    let mut options = small_units(Faults::default());
    if let Some(e) = options.emulator.as_mut() {
        e.storage_limit = 10 * UNIT as u64;
    }
    let server = TestServer::start_with(options).await;
    let body = content(6 * UNIT, 1);
    assert_eq!(put(&server, "/a.bin", body.clone()).await, 201);
    server.emulator.reset_stats();
    assert_eq!(put(&server, "/b.bin", body).await, 507);
    let stats = server.emulator.stats();
    assert_eq!(server.api_calls("upload/instant"), 1, "{stats}");
    assert_eq!(stats["upload_unit_bytes"], 0, "{stats}");
    assert_eq!(root_files(&server).await.len(), 1);
}
