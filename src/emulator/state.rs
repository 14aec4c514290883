//! The emulated account as a whole: the folder tree (see `tree`), tokens, links, upload
//! sessions, counters, fault switches, and their persistence.
//!
//! Everything here sits behind one `Mutex<State>` that is held only for in-memory work, never
//! across an await. With a data directory the state is saved as `state.json` shortly after each
//! mutation (debounced) and at shutdown.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::EmulatorConfig;
use super::faults::{FaultState, Faults};
use super::store::Store;
pub(crate) use super::tree::{
    File, Folder, MAX_DEPTH, ROOT, TRASH, Tree, changes_extension, is_valid_name, placed_name,
};
use super::upload::UploadSession;

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TokenKind {
    Session,
    Action,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Token {
    pub kind: TokenKind,
    /// Issue or last renewal (what renew's "< 5 minutes old" measures).
    pub renewed_ms: i64,
    pub expires_ms: i64,
}

/// A direct download link handed out by `file/get_links`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Link {
    pub quickkey: String,
    pub expires_ms: i64,
}

/// A cookie value the token endpoint accepts besides the configured one (rotation).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CookieValue {
    pub value: String,
    /// `None` while it is the current value; set when rotated away.
    pub valid_until_ms: Option<i64>,
}

/// Everything that is saved in the data directory.
#[derive(Serialize, Deserialize)]
pub(crate) struct State {
    pub tree: Tree,
    pub tokens: HashMap<String, Token>,
    pub uploads: HashMap<String, UploadSession>,
    pub links: HashMap<String, Link>,
    pub cookies: Vec<CookieValue>,
    /// Key and token generator (seeded from `--seed`).
    #[serde(skip, default = "entropy_rng")]
    pub rng: StdRng,
    /// While an asynchronous operation runs: until when (other mutations answer 208).
    #[serde(skip)]
    pub async_until: Option<Instant>,
}

fn entropy_rng() -> StdRng {
    StdRng::from_os_rng()
}

#[derive(Default)]
pub(crate) struct Stats {
    pub api_calls: BTreeMap<String, u64>,
    pub total_api_calls: u64,
    pub upload_unit_bytes: u64,
    pub upload_simple_bytes: u64,
    pub download_bytes: u64,
    pub downloads: u64,
    pub errors: BTreeMap<String, u64>,
    pub faults_injected: BTreeMap<String, u64>,
}

/// The shared emulator: configuration, state, content store, counters, fault switches.
pub(crate) struct Emulator {
    pub config: EmulatorConfig,
    pub base_url: String,
    pub state: Mutex<State>,
    pub store: Store,
    pub stats: Mutex<Stats>,
    pub faults: Mutex<FaultState>,
    pub fault_rng: Mutex<StdRng>,
    state_file: Option<PathBuf>,
    save_needed: Arc<Notify>,
    /// One writer of `state.json` at a time (the debounced saver and the shutdown flush);
    /// true once the final save is done.
    save_lock: Mutex<bool>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A random key of `len` characters from `[0-9a-z]`.
pub(crate) fn random_key(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A random lowercase hex string of `len` characters (token shapes, §1.3).
pub(crate) fn random_hex(rng: &mut StdRng, len: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    (0..len)
        .map(|_| HEX[rng.random_range(0..HEX.len())] as char)
        .collect()
}

impl Emulator {
    /// Builds the emulator, loading `state.json` from the data directory when present, and
    /// starts the debounced saver.
    pub async fn open(config: EmulatorConfig, base_url: String) -> anyhow::Result<Self> {
        let mut rng = match config.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let fault_rng = StdRng::seed_from_u64(rng.random());
        let (store, state_file) = match &config.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("emulator: creating data dir {}: {e}", dir.display())
                })?;
                let store = Store::disk(dir).map_err(|e| {
                    anyhow::anyhow!("emulator: opening store in {}: {e}", dir.display())
                })?;
                (store, Some(dir.join("state.json")))
            }
            None => (Store::memory(), None),
        };
        let mut state = match &state_file {
            Some(path) if path.exists() => load_state(path)?,
            _ => State {
                tree: Tree::new(now_ms()),
                tokens: HashMap::new(),
                uploads: HashMap::new(),
                links: HashMap::new(),
                cookies: Vec::new(),
                rng: entropy_rng(),
                async_until: None,
            },
        };
        state.rng = rng;
        state.tree.case_insensitive = config.case_insensitive_names;
        state.tree.rebuild_children();
        let faults = FaultState::new(config.faults.clone());
        Ok(Emulator {
            config,
            base_url,
            state: Mutex::new(state),
            store,
            stats: Mutex::new(Stats::default()),
            faults: Mutex::new(faults),
            fault_rng: Mutex::new(fault_rng),
            state_file,
            save_needed: Arc::new(Notify::new()),
            save_lock: Mutex::new(false),
        })
    }

    /// Starts the background task that saves the state shortly after mutations.
    pub fn spawn_saver(self: &Arc<Self>) {
        if self.state_file.is_none() {
            return;
        }
        let weak: Weak<Emulator> = Arc::downgrade(self);
        let notify = self.save_needed.clone();
        tokio::spawn(async move {
            loop {
                notify.notified().await;
                // debounce: one save for a burst of mutations
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(emu) = weak.upgrade() else { return };
                let saved = tokio::task::spawn_blocking(move || emu.save_now()).await;
                if let Ok(Err(e)) = saved {
                    tracing::warn!(error = %e, "emulator: saving state failed");
                }
            }
        });
    }

    /// Marks the state as changed (saved soon when there is a data directory).
    pub fn mark_dirty(&self) {
        if self.state_file.is_some() {
            self.save_needed.notify_one();
        }
    }

    /// Writes `state.json` now (atomically: temp file + rename). Does nothing once closed.
    pub fn save_now(&self) -> anyhow::Result<()> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let closed = lock(&self.save_lock);
        if *closed {
            return Ok(());
        }
        let text = {
            let state = lock(&self.state);
            serde_json::to_vec(&*state)?
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// The last save at shutdown. Afterwards the data directory is left alone, even by timers
    /// of this instance that still fire (a new instance may already own the directory).
    pub async fn flush(&self) {
        if let Err(e) = self.save_now() {
            tracing::warn!(error = %e, "emulator: saving state at shutdown failed");
        }
        *lock(&self.save_lock) = true;
    }

    pub fn stats_json(&self) -> Value {
        let (files, folders) = {
            let state = lock(&self.state);
            state.tree.live_counts()
        };
        let s = lock(&self.stats);
        json!({
            "api_calls": s.api_calls,
            "total_api_calls": s.total_api_calls,
            "upload_unit_bytes": s.upload_unit_bytes,
            "upload_simple_bytes": s.upload_simple_bytes,
            "download_bytes": s.download_bytes,
            "downloads": s.downloads,
            "errors": s.errors,
            "faults_injected": s.faults_injected,
            "files": files,
            "folders": folders,
        })
    }

    pub fn reset_stats(&self) {
        *lock(&self.stats) = Stats::default();
    }

    pub fn count_api_call(&self, action: &str) {
        let mut s = lock(&self.stats);
        *s.api_calls.entry(action.to_string()).or_default() += 1;
        s.total_api_calls += 1;
    }

    pub fn count_error(&self, code: u32) {
        *lock(&self.stats)
            .errors
            .entry(code.to_string())
            .or_default() += 1;
    }

    pub fn count_fault(&self, name: &str) {
        *lock(&self.stats)
            .faults_injected
            .entry(name.to_string())
            .or_default() += 1;
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.faults).set(faults);
    }

    pub fn expire_all_tokens(&self) {
        lock(&self.state).tokens.clear();
        self.mark_dirty();
    }

    pub fn seed_folder(&self, path: &str) -> String {
        let key = {
            let mut state = lock(&self.state);
            let State { tree, rng, .. } = &mut *state;
            tree.mkdir_p(ROOT, path, rng, now_ms())
        };
        self.mark_dirty();
        key
    }

    pub fn seed_file(&self, path: &str, content: &[u8]) -> String {
        let (dir, name) = match path.trim_end_matches('/').rsplit_once('/') {
            Some((d, n)) if !n.is_empty() => (d.to_string(), n.to_string()),
            _ => (String::new(), path.trim_matches('/').to_string()),
        };
        let name = if name.is_empty() {
            "unnamed".to_string()
        } else {
            name
        };
        let stored = match self.store.put_blob_bytes(content) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, path, "emulator: seeding content failed");
                return String::new();
            }
        };
        let key = {
            let mut state = lock(&self.state);
            let State { tree, rng, .. } = &mut *state;
            let now = now_ms();
            let parent = tree.mkdir_p(ROOT, &dir, rng, now);
            match tree.live_child_file(&parent, &name) {
                Some(existing) => {
                    tree.replace_content(&existing, &stored.hash, stored.size);
                    existing
                }
                None => tree.create_file(&parent, &name, &stored.hash, stored.size, rng, now),
            }
        };
        self.mark_dirty();
        key
    }

    /// Whether a `Cookie` header carries a currently valid cookie value.
    /// Without rotation that is the configured value; with rotation the configured value is
    /// the first of a list of values, each valid until a grace period after its successor.
    pub fn cookie_valid(&self, header: &str, now: i64) -> bool {
        if !self.config.rotate_cookie {
            return !self.config.cookie.is_empty() && header.contains(&self.config.cookie);
        }
        let mut state = lock(&self.state);
        if state.cookies.is_empty() {
            state.cookies.push(CookieValue {
                value: self.config.cookie.clone(),
                valid_until_ms: None,
            });
        }
        state.cookies.iter().any(|c| {
            !c.value.is_empty()
                && c.valid_until_ms.is_none_or(|until| now < until)
                && header.contains(&c.value)
        })
    }

    /// Rotates the cookie: the current value(s) stay valid for the grace period, a new value
    /// becomes current. Returns the new value.
    pub fn rotate_cookie(&self, now: i64) -> String {
        let grace = self.config.cookie_grace_secs as i64 * 1000;
        let mut state = lock(&self.state);
        let fresh = random_key(&mut state.rng, 24);
        state
            .cookies
            .retain(|c| c.valid_until_ms.is_none_or(|u| now < u));
        for c in state
            .cookies
            .iter_mut()
            .filter(|c| c.valid_until_ms.is_none())
        {
            c.valid_until_ms = Some(now + grace);
        }
        state.cookies.push(CookieValue {
            value: fresh.clone(),
            valid_until_ms: None,
        });
        drop(state);
        self.mark_dirty();
        fresh
    }
}

fn load_state(path: &std::path::Path) -> anyhow::Result<State> {
    let text = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("emulator: reading {}: {e}", path.display()))?;
    serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("emulator: {} is not a saved state: {e}", path.display()))
}
