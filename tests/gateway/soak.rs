//! Soak: 8 concurrent clients doing mixed operations while MediaFire fails
//! 10% of its calls (500/error 100, Cloudflare pages, dropped connections,
//! mixed) and force-expires every token every 5 s; besides, 2% of the calls
//! are carried out but their answer is lost (`SOAK_LOST` sets that rate).
//!
//! Each client works in its own folder and keeps a model of what it did: a
//! write the gateway acknowledged (2xx) is certain; a write that failed
//! (502/503/504 only) leaves its paths uncertain between the states before
//! and after. The run asserts that every read succeeds and returns what the
//! model says, and at the end that MediaFire's tree matches the model
//! exactly: certain paths hold exactly the acknowledged content, uncertain
//! ones one of their allowed states, and nothing else exists (no
//! duplicates, no partial or stray files). The gateway's own listing must
//! agree with MediaFire's.
//!
//! `SOAK_SECS` sets the length (default 30 s, the CI version; the benchmark
//! `scripts/soak.sh` runs it longer), `SOAK_SEED` the random seed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediafire_dav::emulator::{EmulatorConfig, FailMode, Faults};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::faults::{Item, UPSTREAM_FAILURE, pattern, sha256, tree_of};
use crate::util::{Options, TestServer, hrefs, propfind};

const CLIENTS: usize = 8;

/// Every state a path may be in; one state means certain. `None`: absent.
type States = BTreeSet<Option<Item>>;

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |i: &Item| match i {
            Item::Folder => (0, 0, String::new()),
            Item::File { size, hash } => (1, *size, hash.clone()),
        };
        key(self).cmp(&key(other))
    }
}

/// One client's model of its folder `/c<N>`.
struct Model {
    root: String,
    paths: BTreeMap<String, States>,
    next_name: u64,
}

impl Model {
    fn certain(&self, path: &str) -> Option<&Item> {
        let states = self.paths.get(path)?;
        match (states.len(), states.iter().next()) {
            (1, Some(Some(item))) => Some(item),
            _ => None,
        }
    }

    /// Certain files and folders, for picking operands.
    fn certain_of(&self, want_folder: bool) -> Vec<String> {
        self.paths
            .keys()
            .filter(|p| match self.certain(p) {
                Some(Item::Folder) => want_folder,
                Some(Item::File { .. }) => !want_folder,
                None => false,
            })
            .cloned()
            .collect()
    }

    fn set(&mut self, path: &str, item: Option<Item>) {
        self.paths.insert(path.to_string(), BTreeSet::from([item]));
    }

    /// After a failed write: `path` may also be in `states` now.
    fn widen(&mut self, path: &str, states: States) {
        let entry = self
            .paths
            .entry(path.to_string())
            .or_insert_with(|| BTreeSet::from([None]));
        entry.extend(states);
    }

    fn fresh_name(&mut self, ext: &str) -> String {
        self.next_name += 1;
        format!("n{}{ext}", self.next_name)
    }
}

/// What one client counted.
#[derive(Default, Debug)]
struct Tally {
    ops: u64,
    acknowledged: u64,
    failed_writes: u64,
    reads: u64,
}

fn file_item(data: &[u8]) -> Item {
    Item::File {
        size: data.len() as u64,
        hash: sha256(data),
    }
}

async fn status(resp: reqwest::Result<reqwest::Response>, what: &str) -> (u16, bytes::Bytes) {
    let resp = resp.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap_or_default())
}

/// Records a write's outcome; panics on a status that is neither success
/// nor a clear upstream failure.
fn written(what: &str, status: u16, body: &[u8], tally: &mut Tally) -> bool {
    tally.ops += 1;
    if (200..300).contains(&status) {
        tally.acknowledged += 1;
        return true;
    }
    assert!(
        UPSTREAM_FAILURE.contains(&status),
        "{what}: {status} is neither success nor a clear upstream failure: {}",
        String::from_utf8_lossy(body)
    );
    tally.failed_writes += 1;
    false
}

async fn client(server: Arc<TestServer>, id: usize, seed: u64, until: Instant) -> (Model, Tally) {
    let mut rng = StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9));
    let mut m = Model {
        root: format!("/c{id}"),
        paths: BTreeMap::new(),
        next_name: 0,
    };
    let mut t = Tally::default();
    let root = m.root.clone();
    // The client's own folder: retried until it exists.
    loop {
        let (s, b) = status(
            server.req("MKCOL", &format!("{root}/")).send().await,
            "MKCOL root",
        )
        .await;
        if written("MKCOL root", s, &b, &mut t) || s == 405 {
            break;
        }
    }
    m.set(&root, Some(Item::Folder));

    while Instant::now() < until {
        let files = m.certain_of(false);
        let folders = m.certain_of(true);
        let dir = folders[rng.random_range(0..folders.len())].clone();
        match rng.random_range(0..100) {
            // PUT a new file; now and then a multi-unit one.
            0..=24 => {
                let len = if rng.random_range(0..12) == 0 {
                    rng.random_range(4 << 20..6 << 20)
                } else {
                    rng.random_range(1..200_000)
                };
                let data = pattern(len, rng.random());
                let path = format!("{dir}/{}", m.fresh_name(".bin"));
                let what = format!("PUT {path}");
                let (s, b) = status(
                    server.req("PUT", &path).body(data.clone()).send().await,
                    &what,
                )
                .await;
                if written(&what, s, &b, &mut t) {
                    m.set(&path, Some(file_item(&data)));
                } else {
                    m.widen(&path, BTreeSet::from([Some(file_item(&data))]));
                }
            }
            // Overwrite a file.
            25..=34 if !files.is_empty() => {
                let path = files[rng.random_range(0..files.len())].clone();
                let data = pattern(rng.random_range(1..100_000), rng.random());
                let what = format!("PUT over {path}");
                let (s, b) = status(
                    server.req("PUT", &path).body(data.clone()).send().await,
                    &what,
                )
                .await;
                if written(&what, s, &b, &mut t) {
                    m.set(&path, Some(file_item(&data)));
                } else {
                    m.widen(&path, BTreeSet::from([Some(file_item(&data))]));
                }
            }
            // GET a file: must succeed with the modelled content.
            35..=54 if !files.is_empty() => {
                let path = files[rng.random_range(0..files.len())].clone();
                let what = format!("GET {path}");
                let (s, body) = status(server.req("GET", &path).send().await, &what).await;
                assert_eq!(
                    s,
                    200,
                    "{what}: a read failed: {}",
                    String::from_utf8_lossy(&body)
                );
                assert_eq!(
                    m.certain(&path),
                    Some(&file_item(&body)),
                    "{what}: wrong content"
                );
                t.reads += 1;
                t.ops += 1;
            }
            // PROPFIND a folder: must succeed and list every certain child.
            55..=69 => {
                let (s, body) = propfind(&server, &format!("{dir}/"), "1").await;
                assert_eq!(s, 207, "PROPFIND {dir}/: a read failed: {body}");
                let listed: BTreeSet<String> = hrefs(&body)
                    .into_iter()
                    .map(|h| h.trim_end_matches('/').to_string())
                    .collect();
                for (path, _) in m.paths.iter().filter(|(p, _)| parent(p) == dir) {
                    match m.certain(path) {
                        Some(_) => {
                            assert!(listed.contains(path), "{dir}: {path} missing: {listed:?}")
                        }
                        None if m.paths[path] == BTreeSet::from([None]) => {
                            assert!(!listed.contains(path), "{dir}: deleted {path} listed")
                        }
                        None => {}
                    }
                }
                t.reads += 1;
                t.ops += 1;
            }
            // MKCOL a subfolder (one level below the client's folder).
            70..=74 if dir == root => {
                let path = format!("{dir}/{}", m.fresh_name(""));
                let what = format!("MKCOL {path}");
                let (s, b) =
                    status(server.req("MKCOL", &format!("{path}/")).send().await, &what).await;
                if written(&what, s, &b, &mut t) {
                    m.set(&path, Some(Item::Folder));
                } else {
                    m.widen(&path, BTreeSet::from([Some(Item::Folder)]));
                }
            }
            // MOVE a file to a new name, maybe into another folder.
            75..=84 if !files.is_empty() => {
                let from = files[rng.random_range(0..files.len())].clone();
                let to = format!("{dir}/{}", m.fresh_name(".mv"));
                let what = format!("MOVE {from} {to}");
                let req = server
                    .req("MOVE", &from)
                    .header("Destination", format!("{}{to}", server.url));
                let (s, b) = status(req.send().await, &what).await;
                let item = m.certain(&from).cloned();
                if written(&what, s, &b, &mut t) {
                    m.set(&from, None);
                    m.set(&to, item);
                } else {
                    m.widen(&from, BTreeSet::from([None]));
                    m.widen(&to, BTreeSet::from([item]));
                }
            }
            // COPY a file to a new name.
            85..=91 if !files.is_empty() => {
                let from = files[rng.random_range(0..files.len())].clone();
                let to = format!("{dir}/{}", m.fresh_name(".cp"));
                let what = format!("COPY {from} {to}");
                let req = server
                    .req("COPY", &from)
                    .header("Destination", format!("{}{to}", server.url));
                let (s, b) = status(req.send().await, &what).await;
                let item = m.certain(&from).cloned();
                if written(&what, s, &b, &mut t) {
                    m.set(&to, item);
                } else {
                    m.widen(&to, BTreeSet::from([item]));
                }
            }
            // DELETE a file.
            92..=99 if !files.is_empty() => {
                let path = files[rng.random_range(0..files.len())].clone();
                let what = format!("DELETE {path}");
                let (s, b) = status(server.req("DELETE", &path).send().await, &what).await;
                if written(&what, s, &b, &mut t) {
                    m.set(&path, None);
                } else {
                    m.widen(&path, BTreeSet::from([None]));
                }
            }
            _ => {}
        }
    }
    (m, t)
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_mixed_clients_with_faults_and_token_expiry() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261204);
    let server = Arc::new(
        TestServer::start_with(Options {
            emulator: Some(EmulatorConfig {
                seed: Some(seed),
                ..EmulatorConfig::default()
            }),
            ..Options::default()
        })
        .await,
    );
    server.emulator.set_faults(Faults {
        fail_rate: 0.1,
        fail_mode: FailMode::Mixed,
        expire_tokens_every_secs: 5,
        lose_answer_rate: std::env::var("SOAK_LOST")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.02),
        ..Faults::default()
    });
    let until = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(server.clone(), id, seed, until)))
        .collect();
    let mut models = Vec::new();
    for task in tasks {
        match task.await {
            Ok(done) => models.push(done),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    server.emulator.set_faults(Faults::default());
    let stats = server.emulator.stats();
    let injected: u64 = stats["faults_injected"]
        .as_object()
        .map_or(0, |o| o.values().filter_map(|v| v.as_u64()).sum());
    assert!(injected > 0, "no fault was injected: {stats}");
    assert!(
        stats["errors"]["105"].as_u64().unwrap_or(0) > 0 || secs < 6,
        "no expiry: {stats}"
    );

    // MediaFire's tree against the models.
    let tree = tree_of(&server.emulator.tree());
    let mut modelled = BTreeSet::new();
    for (m, tally) in &models {
        assert!(
            tally.acknowledged > 0,
            "{}: nothing acknowledged: {tally:?}",
            m.root
        );
        for (path, states) in &m.paths {
            modelled.insert(path.clone());
            let actual = tree.get(path).cloned();
            assert!(
                states.contains(&actual),
                "seed {seed}: {path} is {actual:?}, the model allows {states:?}"
            );
        }
    }
    for path in tree.keys() {
        assert!(
            modelled.contains(path),
            "seed {seed}: stray {path} on MediaFire"
        );
    }

    // The gateway's view agrees with MediaFire's.
    for (m, _) in &models {
        for dir in m.certain_of(true) {
            let (s, body) = propfind(&server, &format!("{dir}/"), "1").await;
            assert_eq!(s, 207);
            let listed: BTreeSet<String> = hrefs(&body)
                .into_iter()
                .map(|h| h.trim_end_matches('/').to_string())
                .filter(|h| h != &dir)
                .collect();
            let actual: BTreeSet<String> =
                tree.keys().filter(|p| parent(p) == dir).cloned().collect();
            assert_eq!(listed, actual, "seed {seed}: the gateway's {dir}/ differs");
        }
    }
    let tallies: Vec<String> = models
        .iter()
        .map(|(m, t)| format!("{}: {t:?}", m.root))
        .collect();
    eprintln!("soak {secs}s seed {seed}: {}\n{stats}", tallies.join("\n"));
}
