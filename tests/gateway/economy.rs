//! API economy: what each WebDAV request costs in MediaFire API calls, counted
//! on the emulator's side (`stats()`), never guessed from the server's logs.
//!
//! Covers the cache (fresh listings answer everything, misses included), the
//! change detection (TTL + device revision), the direct-link cache, paging of
//! big folders, the global rate limiter, the backoff on 163 and the cap on
//! API calls in flight. Timing is only ever checked loosely: a bound that
//! slowness cannot break (calls seen so far ≤ what the limiter allows).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mediafire_dav::app;
use mediafire_dav::config::{ServeArgs, Settings};
use mediafire_dav::emulator::{self, EmulatorConfig, EmulatorHandle, Faults};

use crate::util::{Options, PASS, TestServer, USER, hrefs, propfind};

/// Calls per action since the last `reset_stats`.
fn calls(server: &TestServer) -> BTreeMap<String, u64> {
    let stats = server.emulator.stats();
    stats["api_calls"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

async fn get(server: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let resp = server.req("GET", path).send().await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

async fn status_of(server: &TestServer, method: &str, path: &str) -> u16 {
    server
        .req(method, path)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A server whose cache trusts a listing for `ttl_secs`.
async fn server_with_ttl(ttl_secs: u64, emulator: EmulatorConfig) -> TestServer {
    TestServer::start_with(Options {
        emulator: Some(emulator),
        args: ServeArgs {
            cache_ttl: Some(ttl_secs),
            ..ServeArgs::default()
        },
        no_cookie: false,
    })
    .await
}

fn content(i: usize) -> Vec<u8> {
    format!("file number {i}\n").into_bytes()
}

// ---- the path cache and the negative cache ---------------------------------

#[tokio::test]
async fn propfind_of_a_folder_listed_moments_ago_costs_no_api_call() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/docs/a.txt", b"a");
    server.emulator.seed_file("/docs/b.txt", b"b");
    server.emulator.seed_folder("/docs/sub");
    let (status, body) = propfind(&server, "/docs/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(
        server.total_api_calls() > 0,
        "the first listing must reach MediaFire"
    );

    server.emulator.reset_stats();
    for _ in 0..3 {
        let (status, again) = propfind(&server, "/docs/", "1").await;
        assert_eq!(status, 207);
        assert_eq!(hrefs(&again), hrefs(&body));
        let (status, _) = propfind(&server, "/docs/", "0").await;
        assert_eq!(status, 207);
        let (status, _) = propfind(&server, "/docs/a.txt", "0").await;
        assert_eq!(status, 207);
        assert_eq!(status_of(&server, "HEAD", "/docs/b.txt").await, 200);
    }
    assert_eq!(server.total_api_calls(), 0, "{:?}", calls(&server));
}

#[tokio::test]
async fn probes_of_missing_names_cost_no_api_call_after_the_first() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/docs/x", b"x");
    server.emulator.reset_stats();
    let (status, _) = propfind(&server, "/docs/._x", "0").await;
    assert_eq!(status, 404);
    assert!(server.total_api_calls() > 0, "the first probe lists /docs");

    server.emulator.reset_stats();
    let probes = [
        "/docs/._x",
        "/docs/.DS_Store",
        "/docs/desktop.ini",
        "/docs/Thumbs.db",
        "/docs/missing.txt",
        "/._docs",
        "/.DS_Store",
        "/desktop.ini",
        "/nowhere/._x",
        "/nowhere/deeper/Thumbs.db",
    ];
    for _ in 0..5 {
        for p in probes {
            let (status, _) = propfind(&server, p, "0").await;
            assert_eq!(status, 404, "{p}");
            assert_eq!(status_of(&server, "HEAD", p).await, 404, "{p}");
            assert_eq!(status_of(&server, "GET", p).await, 404, "{p}");
        }
    }
    assert_eq!(server.total_api_calls(), 0, "{:?}", calls(&server));
}

#[tokio::test]
async fn every_mutation_updates_the_cache_in_place() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/m/a.txt", b"aaa");
    server.emulator.seed_folder("/m/inner");
    server.emulator.seed_folder("/other");
    assert_eq!(propfind(&server, "/m/", "1").await.0, 207);
    assert_eq!(propfind(&server, "/other/", "1").await.0, 207);
    assert_eq!(propfind(&server, "/m/inner/", "1").await.0, 207);

    let dest = |p: &str| format!("{}{}", server.url, p);
    let ok = |s: reqwest::StatusCode| assert!(s.is_success(), "{s}");
    ok(server
        .req("PUT", "/m/new.txt")
        .body("new")
        .send()
        .await
        .unwrap()
        .status());
    ok(server
        .req("MKCOL", "/m/made/")
        .send()
        .await
        .unwrap()
        .status());
    ok(server
        .req("MOVE", "/m/a.txt")
        .header("Destination", dest("/m/renamed.txt"))
        .send()
        .await
        .unwrap()
        .status());
    ok(server
        .req("MOVE", "/m/inner/")
        .header("Destination", dest("/other/inner/"))
        .send()
        .await
        .unwrap()
        .status());
    ok(server
        .req("COPY", "/m/new.txt")
        .header("Destination", dest("/other/copy.txt"))
        .send()
        .await
        .unwrap()
        .status());
    ok(server
        .req("DELETE", "/m/new.txt")
        .send()
        .await
        .unwrap()
        .status());
    // Overwrite with a different length, and a zero-byte file (kept locally).
    ok(server
        .req("PUT", "/other/copy.txt")
        .body("twelve bytes")
        .send()
        .await
        .unwrap()
        .status());
    ok(server
        .req("PUT", "/m/empty.txt")
        .send()
        .await
        .unwrap()
        .status());

    server.emulator.reset_stats();
    let names = |body: &str| {
        let mut h = hrefs(body);
        h.sort();
        h
    };
    let (_, m) = propfind(&server, "/m/", "1").await;
    assert_eq!(
        names(&m),
        ["/m/", "/m/empty.txt", "/m/made/", "/m/renamed.txt"]
    );
    let (_, other) = propfind(&server, "/other/", "1").await;
    assert_eq!(
        names(&other),
        ["/other/", "/other/copy.txt", "/other/inner/"]
    );
    assert!(other.contains("getcontentlength>12<"), "{other}");
    let (status, _) = propfind(&server, "/other/inner/", "1").await;
    assert_eq!(status, 207);
    let (status, _) = propfind(&server, "/m/made/", "1").await;
    assert_eq!(status, 207);
    assert_eq!(
        server.total_api_calls(),
        0,
        "after the mutations every listing is still answered from memory: {:?}",
        calls(&server)
    );
    // And what the cache says is what MediaFire holds.
    let server = server.restart(Options::default()).await;
    let (_, m_fresh) = propfind(&server, "/m/", "1").await;
    assert_eq!(names(&m_fresh), names(&m));
    let (_, other_fresh) = propfind(&server, "/other/", "1").await;
    assert_eq!(names(&other_fresh), names(&other));
    assert!(
        other_fresh.contains("getcontentlength>12<"),
        "{other_fresh}"
    );
}

#[tokio::test]
async fn deleting_a_folder_costs_one_call_however_much_it_holds() {
    let server = TestServer::start().await;
    let names: Vec<String> = (0..50).map(|i| format!("f{i:02}.txt")).collect();
    server.emulator.seed_files(
        "/gone",
        names.iter().map(|n| (n.as_str(), b"bytes".as_slice())),
    );
    server.emulator.seed_file("/gone/sub/deeper.txt", b"deeper");
    assert_eq!(propfind(&server, "/gone/", "1").await.0, 207);
    server.emulator.reset_stats();
    assert_eq!(status_of(&server, "DELETE", "/gone/").await, 204);
    assert_eq!(
        calls(&server),
        BTreeMap::from([("folder/delete".to_string(), 1)])
    );
    assert_eq!(server.emulator.stats()["files"], 0);
    assert_eq!(propfind(&server, "/gone/", "0").await.0, 404);
    assert_eq!(propfind(&server, "/gone/sub/deeper.txt", "0").await.0, 404);
}

// ---- paging --------------------------------------------------------------

#[tokio::test]
async fn a_folder_of_2500_files_and_300_folders_lists_in_at_most_6_calls() {
    let server = TestServer::start().await;
    for i in 0..2500 {
        server
            .emulator
            .seed_file(&format!("/big/f{i:04}.txt"), b"same bytes");
    }
    for i in 0..300 {
        server.emulator.seed_folder(&format!("/big/d{i:03}"));
    }
    propfind(&server, "/", "1").await;
    server.emulator.reset_stats();
    let (status, body) = propfind(&server, "/big/", "1").await;
    assert_eq!(status, 207);
    let names = hrefs(&body);
    assert_eq!(names.len(), 1 + 2500 + 300);
    assert!(names.contains(&"/big/f2499.txt".to_string()));
    assert!(names.contains(&"/big/d299/".to_string()));
    let listing_calls = server.api_calls("folder/get_content");
    assert!(
        listing_calls <= 6,
        "{listing_calls} folder/get_content calls: {:?}",
        calls(&server)
    );
}

#[tokio::test]
async fn a_30000_entry_folder_lists_completely_then_from_the_cache() {
    // Listing 30 chunks takes seconds in a debug build on a busy machine:
    // a long TTL keeps expiry (tested elsewhere) out of the counts.
    let server = server_with_ttl(3600, EmulatorConfig::default()).await;
    server.emulator.seed_file("/small/s.txt", b"s");
    let started = Instant::now();
    let files: Vec<String> = (0..20_000).map(|i| format!("file {i:05}.bin")).collect();
    let folders: Vec<String> = (0..10_000).map(|i| format!("dir {i:05}")).collect();
    server
        .emulator
        .seed_files("/huge", files.iter().map(|n| (n.as_str(), b"x".as_slice())));
    server
        .emulator
        .seed_folders("/huge", folders.iter().map(String::as_str));
    eprintln!("seeded 30,000 entries in {:?}", started.elapsed());
    propfind(&server, "/", "1").await;
    server.emulator.reset_stats();

    let started = Instant::now();
    let big = tokio::spawn(server.req("PROPFIND", "/huge/").header("Depth", "1").send());
    // While the big folder is paged in, other folders stay responsive.
    let paging = async {
        while server.api_calls("folder/get_content") < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), paging)
        .await
        .expect("the big listing starts");
    let (status, small) = propfind(&server, "/small/", "1").await;
    assert_eq!(status, 207);
    assert!(hrefs(&small).contains(&"/small/s.txt".to_string()));
    assert!(
        !big.is_finished(),
        "a small folder had to wait for the 30,000-entry listing"
    );
    let resp = big.await.unwrap().unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    eprintln!("first Depth-1 PROPFIND: {:?}", started.elapsed());
    assert_eq!(status, 207);
    let names = hrefs(&body);
    assert_eq!(names.len(), 1 + 30_000);
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "no entry listed twice");
    assert!(names.contains(&"/huge/file 19999.bin".to_string()));
    assert!(names.contains(&"/huge/dir 09999/".to_string()));
    // 20 chunks of files and 10 of folders, plus at most one empty chunk each.
    let listing_calls = server.api_calls("folder/get_content") - 2;
    assert!(
        (30..=32).contains(&listing_calls),
        "{listing_calls} folder/get_content calls"
    );

    server.emulator.reset_stats();
    let started = Instant::now();
    let (status, again) = propfind(&server, "/huge/", "1").await;
    eprintln!("second Depth-1 PROPFIND: {:?}", started.elapsed());
    assert_eq!(status, 207);
    assert_eq!(hrefs(&again).len(), names.len());
    // Lookups inside it are free as well.
    assert_eq!(propfind(&server, "/huge/file 12345.bin", "0").await.0, 207);
    assert_eq!(propfind(&server, "/huge/._file 1.bin", "0").await.0, 404);
    assert_eq!(server.total_api_calls(), 0, "{:?}", calls(&server));
}

// ---- change detection ----------------------------------------------------

/// A short cache TTL. One `device/get_status` answer serves every
/// revalidation for a quarter of it, so it is long enough that a slow
/// machine still walks a path within that window.
const TTL_SECS: u64 = 2;
const PAST_TTL: Duration = Duration::from_millis(TTL_SECS * 1000 + 200);

#[tokio::test]
async fn changes_behind_the_servers_back_appear_after_the_ttl() {
    let server = server_with_ttl(TTL_SECS, EmulatorConfig::default()).await;
    server.emulator.seed_file("/w/old.txt", b"old");
    let (_, body) = propfind(&server, "/w/", "1").await;
    assert!(hrefs(&body).contains(&"/w/old.txt".to_string()));

    // Another MediaFire client adds a file and a folder.
    server.emulator.seed_file("/w/new.txt", b"new");
    server.emulator.seed_folder("/w/newdir");
    let (_, body) = propfind(&server, "/w/", "1").await;
    assert!(
        !hrefs(&body).contains(&"/w/new.txt".to_string()),
        "within the TTL the listing comes from memory"
    );

    tokio::time::sleep(PAST_TTL).await;
    let (_, body) = propfind(&server, "/w/", "1").await;
    let names = hrefs(&body);
    assert!(names.contains(&"/w/new.txt".to_string()), "{names:?}");
    assert!(names.contains(&"/w/newdir/".to_string()), "{names:?}");
    assert_eq!(get(&server, "/w/new.txt").await, (200, b"new".to_vec()));

    // A change of content (same name) shows too.
    server.emulator.seed_file("/w/old.txt", b"changed!");
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(
        get(&server, "/w/old.txt").await,
        (200, b"changed!".to_vec())
    );
}

#[tokio::test]
async fn a_revalidation_with_nothing_changed_costs_one_status_call() {
    let server = server_with_ttl(TTL_SECS, EmulatorConfig::default()).await;
    server.emulator.seed_file("/r/s/t/deep.txt", b"deep");
    server.emulator.seed_file("/r/top.txt", b"top");
    let (status, _) = propfind(&server, "/r/s/t/", "1").await;
    assert_eq!(status, 207);
    let (status, _) = propfind(&server, "/r/", "1").await;
    assert_eq!(status, 207);

    for round in 0..2 {
        tokio::time::sleep(PAST_TTL).await;
        server.emulator.reset_stats();
        // Four stale listings on the way (root, r, r/s, r/s/t): one call.
        let (status, body) = propfind(&server, "/r/s/t/", "1").await;
        assert_eq!(status, 207);
        assert!(hrefs(&body).contains(&"/r/s/t/deep.txt".to_string()));
        let (status, _) = propfind(&server, "/r/", "1").await;
        assert_eq!(status, 207);
        assert_eq!(
            calls(&server),
            BTreeMap::from([("device/get_status".to_string(), 1)]),
            "round {round}"
        );
    }

    // Once something changed, the stale listings are fetched again.
    server.emulator.seed_file("/r/s/t/other.txt", b"o");
    tokio::time::sleep(PAST_TTL).await;
    server.emulator.reset_stats();
    let (_, body) = propfind(&server, "/r/s/t/", "1").await;
    assert!(hrefs(&body).contains(&"/r/s/t/other.txt".to_string()));
    assert!(server.api_calls("folder/get_content") > 0);
}

#[tokio::test]
async fn a_burst_of_revalidations_costs_one_status_call() {
    let server = server_with_ttl(TTL_SECS, EmulatorConfig::default()).await;
    for i in 0..10 {
        server
            .emulator
            .seed_file(&format!("/c/d{i}/x.txt"), &content(i));
    }
    for i in 0..10 {
        assert_eq!(propfind(&server, &format!("/c/d{i}/"), "1").await.0, 207);
    }
    tokio::time::sleep(PAST_TTL).await;
    server.emulator.reset_stats();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let req = server
                .req("PROPFIND", &format!("/c/d{i}/"))
                .header("Depth", "1");
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 207);
    }
    assert_eq!(
        calls(&server),
        BTreeMap::from([("device/get_status".to_string(), 1)])
    );
}

// ---- direct links --------------------------------------------------------

#[tokio::test]
async fn twenty_gets_of_one_file_make_one_get_links_call() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/g/file.bin", &content(7));
    server.emulator.reset_stats();
    for _ in 0..20 {
        assert_eq!(get(&server, "/g/file.bin").await, (200, content(7)));
    }
    assert_eq!(
        server.api_calls("file/get_links"),
        1,
        "{:?}",
        calls(&server)
    );
    assert_eq!(server.emulator.stats()["downloads"].as_u64(), Some(20));
    // Ranged reads reuse the same link.
    let resp = server
        .req("GET", "/g/file.bin")
        .header("Range", "bytes=2-5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap(), content(7)[2..6]);
    assert_eq!(server.api_calls("file/get_links"), 1);
}

async fn link_refreshes(server: &TestServer) -> u64 {
    let text = server
        .req("GET", "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("mediafire_link_refreshes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the link refresh counter is exported")
}

#[tokio::test]
async fn an_expired_direct_link_is_refreshed_once_and_the_get_succeeds() {
    let server = TestServer::start_with(Options {
        emulator: Some(EmulatorConfig {
            link_ttl: 1,
            ..EmulatorConfig::default()
        }),
        ..Options::default()
    })
    .await;
    server.emulator.seed_file("/l/file.bin", &content(1));
    assert_eq!(get(&server, "/l/file.bin").await, (200, content(1)));
    assert_eq!(server.api_calls("file/get_links"), 1);
    assert_eq!(link_refreshes(&server).await, 0);

    // The emulator's link dies after a second; the server still trusts it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    server.emulator.reset_stats();
    assert_eq!(get(&server, "/l/file.bin").await, (200, content(1)));
    assert_eq!(server.api_calls("file/get_links"), 1, "one refresh");
    assert_eq!(link_refreshes(&server).await, 1);
    // The fresh link is cached again.
    assert_eq!(get(&server, "/l/file.bin").await, (200, content(1)));
    assert_eq!(server.api_calls("file/get_links"), 1);
}

#[tokio::test]
async fn a_link_refused_again_after_its_refresh_is_an_error_not_a_loop() {
    // Links die the moment they are issued: the refresh cannot help.
    let server = TestServer::start_with(Options {
        emulator: Some(EmulatorConfig {
            link_ttl: 0,
            ..EmulatorConfig::default()
        }),
        ..Options::default()
    })
    .await;
    server.emulator.seed_file("/l/file.bin", &content(2));
    assert_eq!(propfind(&server, "/l/", "1").await.0, 207);
    server.emulator.reset_stats();
    let (status, _) = get(&server, "/l/file.bin").await;
    assert!(status >= 400, "{status}");
    assert_eq!(
        server.api_calls("file/get_links"),
        2,
        "one link and one refresh, no more: {:?}",
        calls(&server)
    );
}

// ---- rate limiting -------------------------------------------------------

/// Seeds `n` folders `/burst/dNN/` with one file each, and lists `/burst/`.
async fn seed_burst(server: &TestServer, n: usize) {
    for i in 0..n {
        server
            .emulator
            .seed_file(&format!("/burst/d{i:02}/f.txt"), &content(i));
    }
    assert_eq!(propfind(server, "/burst/", "1").await.0, 207);
}

/// Lists every `/burst/dNN/` at once; each must answer with its file.
async fn list_burst(server: &TestServer, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let req = server
                .req("PROPFIND", &format!("/burst/d{i:02}/"))
                .header("Depth", "1");
            tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 207, "d{i:02}: {body}");
        assert!(
            hrefs(&body).contains(&format!("/burst/d{i:02}/f.txt")),
            "d{i:02}: {body}"
        );
    }
}

#[tokio::test]
async fn the_rate_limiter_holds_the_configured_calls_per_second() {
    const RATE: f64 = 20.0;
    const BURST: u32 = 5;
    const FOLDERS: usize = 20;
    let server = TestServer::start_with(Options {
        args: ServeArgs {
            calls_per_second: Some(RATE),
            burst: Some(BURST),
            ..ServeArgs::default()
        },
        ..Options::default()
    })
    .await;
    seed_burst(&server, FOLDERS).await;
    // Let the bucket fill up again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.emulator.reset_stats();

    let started = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let burst = list_burst(&server, FOLDERS);
    tokio::pin!(burst);
    loop {
        tokio::select! {
            () = &mut burst => break,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                samples.push((started.elapsed().as_secs_f64(), server.total_api_calls()));
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = server.total_api_calls();
    samples.push((elapsed, total));
    // Two listing calls per folder at least.
    assert!(total >= 2 * FOLDERS as u64, "{:?}", calls(&server));
    // Never more than the bucket allows by the time the sample was taken
    // (a sample is read after the calls it counts, so this bound is safe).
    for (t, n) in &samples {
        let allowed = f64::from(BURST) + RATE * t + 1.0;
        assert!(
            (*n as f64) <= allowed,
            "{n} calls after {t:.2}s, the limiter allows {allowed:.1}: {samples:?}"
        );
    }
    // And the burst took about as long as the rate requires.
    let needed = (total as f64 - f64::from(BURST)) / RATE;
    assert!(
        elapsed >= needed * 0.8,
        "{total} calls in {elapsed:.2}s at {RATE}/s"
    );
    eprintln!("{total} calls in {elapsed:.2}s; samples {samples:?}");
}

#[tokio::test]
async fn answers_163_back_off_and_then_succeed() {
    const FOLDERS: usize = 6;
    let server = TestServer::start().await;
    seed_burst(&server, FOLDERS).await;
    server.emulator.set_faults(Faults {
        rate_limit_per_sec: 4,
        ..Faults::default()
    });
    server.emulator.reset_stats();
    let started = Instant::now();
    list_burst(&server, FOLDERS).await;
    let elapsed = started.elapsed();
    let stats = server.emulator.stats();
    let rejected = stats["errors"]["163"].as_u64().unwrap_or(0);
    let total = stats["total_api_calls"].as_u64().unwrap_or(0);
    eprintln!("{total} calls, {rejected} answered 163, in {elapsed:?}");
    assert!(rejected > 0, "the emulator must have refused some: {stats}");
    // Backing off means few refusals per call that got through.
    let accepted = total - rejected;
    assert!(
        rejected <= 2 * accepted,
        "{rejected} refusals for {accepted} calls: the client hammers"
    );
    // About 13 calls at 4 a second take a few seconds; when every refusal of
    // one burst lengthened the global pause, this took over 30.
    assert!(
        elapsed < Duration::from_secs(20),
        "the backoff froze the gateway for {elapsed:?}"
    );
}

// ---- the cap on API calls in flight ---------------------------------------

/// A loopback HTTP proxy in front of the emulator's API that holds every
/// call for `delay` and records how many were in flight at once.
struct SlowProxy {
    url: String,
    max_in_flight: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowProxy {
    async fn start(upstream: String, delay: Duration) -> SlowProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let http = reqwest::Client::builder().no_gzip().build().unwrap();
        let (now, max) = (in_flight.clone(), max_in_flight.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (http, upstream, now, max) =
                    (http.clone(), upstream.clone(), now.clone(), max.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (http, upstream, now, max) =
                            (http.clone(), upstream.clone(), now.clone(), max.clone());
                        async move {
                            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                            max.fetch_max(n, Ordering::SeqCst);
                            tokio::time::sleep(delay).await;
                            let resp = forward(&http, &upstream, req).await;
                            now.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        SlowProxy {
            url: format!("http://{addr}"),
            max_in_flight,
            task,
        }
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `req` to `upstream` as it came and returns the answer as it came.
async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut out = http.request(parts.method, format!("{upstream}{uri}"));
    for (k, v) in &parts.headers {
        if !matches!(
            k.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            out = out.header(k, v);
        }
    }
    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
    match out.body(body).send().await {
        Ok(r) => {
            *resp.status_mut() = r.status();
            for (k, v) in r.headers() {
                if !matches!(
                    k.as_str(),
                    "content-length" | "connection" | "transfer-encoding"
                ) {
                    resp.headers_mut().append(k, v.clone());
                }
            }
            *resp.body_mut() = Full::new(r.bytes().await.unwrap_or_default());
        }
        Err(_) => *resp.status_mut() = hyper::StatusCode::BAD_GATEWAY,
    }
    resp
}

/// The real server, talking to `api_base`; stops when dropped.
struct ServerBehind {
    url: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ServerBehind {
    async fn start(api_base: &str, emulator: &EmulatorHandle, mut args: ServeArgs) -> ServerBehind {
        let _ = emulator;
        let dir = tempfile::tempdir().unwrap();
        args.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        args.api_base = Some(api_base.to_string());
        args.cookie = Some(EmulatorConfig::default().cookie);
        args.user = Some(USER.into());
        args.pass = Some(PASS.into());
        args.state_dir = Some(dir.path().join("state"));
        args.calls_per_second.get_or_insert(1000.0);
        args.burst.get_or_insert(1000);
        let built = app::build(Settings::resolve(&args).unwrap()).await.unwrap();
        let listener = tokio::net::TcpListener::bind(built.settings.listen)
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = built.app.clone();
        tokio::spawn(async move {
            let _built = built;
            let _ = mediafire_dav::server::serve(listener, app, async {
                let _ = stopped.await;
            })
            .await;
        });
        ServerBehind {
            url,
            _dir: dir,
            stop: Some(stop),
        }
    }
}

impl Drop for ServerBehind {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Lists `n` folders at once through a server capped at `cap` calls in
/// flight; returns the most calls the proxy saw in flight at once.
async fn most_in_flight(cap: usize, n: usize) -> usize {
    let emulator = emulator::start(EmulatorConfig::default()).await.unwrap();
    for i in 0..n {
        emulator.seed_file(&format!("/cap/d{i:02}/f.txt"), &content(i));
    }
    let proxy = SlowProxy::start(emulator.base_url(), Duration::from_millis(60)).await;
    let server = ServerBehind::start(
        &proxy.url,
        &emulator,
        ServeArgs {
            max_concurrent_calls: Some(cap),
            ..ServeArgs::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let propfind = |path: String| {
        http.request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{}{path}", server.url),
        )
        .basic_auth(USER, Some(PASS))
        .header("Depth", "1")
        .send()
    };
    assert_eq!(
        propfind("/cap/".into()).await.unwrap().status().as_u16(),
        207
    );
    proxy.max_in_flight.store(0, Ordering::SeqCst);
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(propfind(format!("/cap/d{i:02}/"))))
        .collect();
    for t in tasks {
        let resp = t.await.unwrap().unwrap();
        assert_eq!(resp.status().as_u16(), 207);
    }
    assert!(
        emulator.stats()["total_api_calls"].as_u64().unwrap() >= 2 * n as u64,
        "every folder was listed"
    );
    proxy.max_in_flight.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_in_flight_never_exceed_the_configured_cap() {
    let capped = most_in_flight(2, 12).await;
    assert_eq!(capped, 2, "calls in flight with max_concurrent_calls = 2");
    // The same burst with a higher cap does overlap: the measure can fail.
    let wider = most_in_flight(6, 12).await;
    assert!(
        wider > 2 && wider <= 6,
        "{wider} calls in flight with max_concurrent_calls = 6"
    );
}
