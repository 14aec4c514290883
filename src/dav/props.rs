//! Dead properties (RFC 4918 §4): what PROPPATCH stores and PROPFIND returns
//! for names the server does not compute itself. MediaFire cannot hold them,
//! so they live in `state_dir/props.json`, keyed by path, written atomically
//! (temp file + rename) after every change. They follow MOVE and COPY and are
//! dropped with DELETE; `fs.rs` calls the matching method here.
//!
//! [`Mtimes`] is the one live property kept here too: MediaFire has no
//! modification time, so the time of each upload this server made (or the
//! client's `X-OC-Mtime`, or a time a PROPPATCH set) is kept per quickkey,
//! valid only while the file still has the content hash it had then. It is
//! an append-only journal, because it gains a record with every upload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::fs::DavProp;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::{Error, ErrorKind, Result};

use super::cache::{is_within, rebase};

/// One stored property, as dav-server hands it to `patch_props`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct StoredProp {
    name: String,
    prefix: Option<String>,
    namespace: Option<String>,
    /// The property element as XML text (dav-server produces UTF-8).
    xml: Option<String>,
}

impl StoredProp {
    fn from_dav(p: &DavProp) -> StoredProp {
        StoredProp {
            name: p.name.clone(),
            prefix: p.prefix.clone(),
            namespace: p.namespace.clone(),
            xml: p
                .xml
                .as_ref()
                .map(|x| String::from_utf8_lossy(x).into_owned()),
        }
    }

    fn to_dav(&self, with_content: bool) -> DavProp {
        DavProp {
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            namespace: self.namespace.clone(),
            xml: if with_content {
                self.xml.as_ref().map(|x| x.clone().into_bytes())
            } else {
                None
            },
        }
    }
}

type PropMap = BTreeMap<String, BTreeMap<String, StoredProp>>;

/// The key of a property inside one resource: namespace + local name.
fn prop_key(namespace: &Option<String>, name: &str) -> String {
    format!("{{{}}}{}", namespace.as_deref().unwrap_or(""), name)
}

pub(crate) struct Props {
    file: PathBuf,
    map: Mutex<PropMap>,
}

/// Writes `value` as JSON to `path` atomically: a temp file in the same
/// directory, fsynced, then renamed over the old one.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::new(ErrorKind::Local, "serialising state").with_source(e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &json)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| Error::from(e.error).with_context("path", path.display()))?;
    Ok(())
}

/// Reads JSON state, or the default when the file does not exist yet.
pub(crate) fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(ErrorKind::Local, "state file is not valid JSON")
                .with_context("path", path.display())
                .with_source(e)
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(Error::from(e).with_context("path", path.display())),
    }
}

impl Props {
    pub(crate) fn open(state_dir: &Path) -> Result<Props> {
        let file = state_dir.join("props.json");
        let map = read_json(&file)?;
        Ok(Props {
            file,
            map: Mutex::new(map),
        })
    }

    fn save(&self, map: &PropMap) {
        if let Err(e) = write_json_atomic(&self.file, map) {
            warn!(error = %e, "props: saving dead properties failed");
        }
    }

    /// Applies a PROPPATCH; every instruction succeeds (removing an absent
    /// property is not an error, RFC 4918 §14.23).
    pub(crate) fn patch(&self, path: &str, patch: Vec<(bool, DavProp)>) -> Vec<DavProp> {
        let mut map = self.map.lock().unwrap();
        let mut done = Vec::with_capacity(patch.len());
        let entry = map.entry(path.to_string()).or_default();
        for (set, p) in patch {
            let key = prop_key(&p.namespace, &p.name);
            if set {
                entry.insert(key, StoredProp::from_dav(&p));
            } else {
                entry.remove(&key);
            }
            done.push(StoredProp::from_dav(&p).to_dav(false));
        }
        if entry.is_empty() {
            map.remove(path);
        }
        self.save(&map);
        done
    }

    pub(crate) fn list(&self, path: &str, with_content: bool) -> Vec<DavProp> {
        let map = self.map.lock().unwrap();
        map.get(path)
            .map(|m| m.values().map(|p| p.to_dav(with_content)).collect())
            .unwrap_or_default()
    }

    pub(crate) fn get(&self, path: &str, prop: &DavProp) -> Option<Vec<u8>> {
        let map = self.map.lock().unwrap();
        let p = map.get(path)?.get(&prop_key(&prop.namespace, &prop.name))?;
        p.xml.as_ref().map(|x| x.clone().into_bytes())
    }

    /// Moves the properties of `from` and everything below it to `to`.
    pub(crate) fn rename(&self, from: &str, to: &str) {
        let mut map = self.map.lock().unwrap();
        let moved: Vec<String> = map.keys().filter(|k| is_within(k, from)).cloned().collect();
        if moved.is_empty() {
            return;
        }
        map.retain(|k, _| !is_within(k, to));
        for old in moved {
            if let Some(v) = map.remove(&old) {
                map.insert(rebase(&old, from, to), v);
            }
        }
        self.save(&map);
    }

    /// Copies the properties of the single resource `from` to `to`.
    pub(crate) fn copy(&self, from: &str, to: &str) {
        let mut map = self.map.lock().unwrap();
        let src = map.get(from).cloned();
        let changed = match src {
            Some(v) => {
                map.insert(to.to_string(), v);
                true
            }
            None => map.remove(to).is_some(),
        };
        if changed {
            self.save(&map);
        }
    }

    /// Drops the properties of `path` and everything below it.
    pub(crate) fn remove(&self, path: &str) {
        let mut map = self.map.lock().unwrap();
        let before = map.len();
        map.retain(|k, _| !is_within(k, path));
        if map.len() != before {
            self.save(&map);
        }
    }
}

/// What we know about one file's modification time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct StoredMtime {
    /// Content hash at the time of the upload; another hash means another
    /// client changed the file and the stored time no longer applies.
    hash: String,
    size: u64,
    /// Unix seconds.
    mtime: u64,
}

/// One line of the modification-time journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum MtimeLine {
    Set {
        quickkey: String,
        #[serde(flatten)]
        stored: StoredMtime,
    },
    Del {
        quickkey: String,
    },
}

/// The journal is rewritten once it holds this many lines more than twice
/// the live records.
const COMPACT_SLACK: usize = 1000;

/// Modification times of files this server uploaded, by quickkey, in the
/// append-only journal `state_dir/mtimes.jsonl`. Every upload records one,
/// so rewriting the whole set per upload would make a long sync quadratic
/// in disk writes: each change appends a line instead, and the journal is
/// compacted (temp file, fsync, rename) at start and when it has grown to
/// more than twice the live records. A torn last line (a crash mid-append)
/// is skipped; an `mtimes.json` of the earlier format is taken over.
pub(crate) struct Mtimes {
    file: PathBuf,
    inner: Mutex<MtimeJournal>,
}

struct MtimeJournal {
    map: BTreeMap<String, StoredMtime>,
    /// Open for appending; `None` after a write failed (the next change
    /// compacts instead).
    log: Option<std::fs::File>,
    lines: usize,
}

impl Mtimes {
    pub(crate) fn open(state_dir: &Path) -> Result<Mtimes> {
        let file = state_dir.join("mtimes.jsonl");
        let legacy = state_dir.join("mtimes.json");
        let mut map: BTreeMap<String, StoredMtime> = read_json(&legacy)?;
        let mut lines = 0;
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    lines += 1;
                    match serde_json::from_str::<MtimeLine>(line) {
                        Ok(MtimeLine::Set { quickkey, stored }) => {
                            map.insert(quickkey, stored);
                        }
                        Ok(MtimeLine::Del { quickkey }) => {
                            map.remove(&quickkey);
                        }
                        Err(e) => {
                            warn!(line = n + 1, error = %e, "props: skipping an unreadable mtimes line")
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::from(e).with_context("path", file.display())),
        }
        let mtimes = Mtimes {
            file,
            inner: Mutex::new(MtimeJournal {
                map,
                log: None,
                lines,
            }),
        };
        mtimes.compact(&mut mtimes.inner.lock().unwrap())?;
        if legacy.exists() {
            std::fs::remove_file(&legacy)?;
        }
        Ok(mtimes)
    }

    /// Rewrites the journal as one line per record and reopens it for
    /// appending.
    fn compact(&self, j: &mut MtimeJournal) -> Result<()> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        let mut text = String::new();
        for (quickkey, stored) in &j.map {
            let line = MtimeLine::Set {
                quickkey: quickkey.clone(),
                stored: stored.clone(),
            };
            text.push_str(&serde_json::to_string(&line).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.file)
            .map_err(|e| Error::from(e.error).with_context("path", self.file.display()))?;
        j.log = Some(std::fs::OpenOptions::new().append(true).open(&self.file)?);
        j.lines = j.map.len();
        Ok(())
    }

    /// Appends `line` (already applied to the map), compacting when due.
    fn append(&self, j: &mut MtimeJournal, line: &MtimeLine) {
        let mut buf = serde_json::to_vec(line).unwrap_or_default();
        buf.push(b'\n');
        let appended = match j.log.as_mut() {
            Some(f) => std::io::Write::write_all(f, &buf).is_ok(),
            None => false,
        };
        j.lines += 1;
        let due = !appended || j.lines > 2 * j.map.len() + COMPACT_SLACK;
        if due && let Err(e) = self.compact(j) {
            j.log = None;
            warn!(error = %e, "props: saving modification times failed");
        }
    }

    pub(crate) fn record(&self, quickkey: &str, hash: &str, size: u64, mtime: SystemTime) {
        let mtime = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let stored = StoredMtime {
            hash: hash.to_string(),
            size,
            mtime,
        };
        let mut j = self.inner.lock().unwrap();
        if j.map.get(quickkey) == Some(&stored) {
            return;
        }
        j.map.insert(quickkey.to_string(), stored.clone());
        let line = MtimeLine::Set {
            quickkey: quickkey.to_string(),
            stored,
        };
        self.append(&mut j, &line);
    }

    /// The stored mtime of `quickkey` if its content is still `hash`/`size`.
    pub(crate) fn get(&self, quickkey: &str, hash: &str, size: u64) -> Option<SystemTime> {
        let j = self.inner.lock().unwrap();
        let m = j.map.get(quickkey)?;
        (m.hash == hash && m.size == size).then(|| UNIX_EPOCH + Duration::from_secs(m.mtime))
    }

    pub(crate) fn forget(&self, quickkey: &str) {
        let mut j = self.inner.lock().unwrap();
        if j.map.remove(quickkey).is_some() {
            let line = MtimeLine::Del {
                quickkey: quickkey.to_string(),
            };
            self.append(&mut j, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimes_are_appended_compacted_and_survive_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mtimes.jsonl");
        // A store of the earlier one-JSON-file format is taken over.
        std::fs::write(
            dir.path().join("mtimes.json"),
            r#"{"old":{"hash":"h0","size":1,"mtime":5}}"#,
        )
        .unwrap();
        let m = Mtimes::open(dir.path()).unwrap();
        assert!(!dir.path().join("mtimes.json").exists());
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        // Many uploads of one file: appended lines, then a compaction.
        for i in 0..(COMPACT_SLACK as u64 + 10) {
            m.record("qk", "h1", 3, t(i));
        }
        m.record("other", "h2", 4, t(7));
        m.forget("other");
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        assert!(lines < 20, "journal not compacted: {lines} lines");
        // A crash mid-append leaves half a line behind.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"op\":\"set\",\"quickkey\":\"x").unwrap();
        drop((f, m));

        let m = Mtimes::open(dir.path()).unwrap();
        assert_eq!(m.get("qk", "h1", 3), Some(t(COMPACT_SLACK as u64 + 9)));
        assert_eq!(m.get("qk", "changed", 3), None);
        assert_eq!(m.get("other", "h2", 4), None);
        assert_eq!(m.get("old", "h0", 1), Some(t(5)));
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);
    }

    fn prop(name: &str, value: &str) -> DavProp {
        DavProp::new(name.into(), "Z".into(), "urn:z".into(), value.into())
    }

    #[test]
    fn props_survive_reopen_and_follow_rename() {
        let dir = tempfile::tempdir().unwrap();
        let props = Props::open(dir.path()).unwrap();
        props.patch("a/f", vec![(true, prop("color", "red"))]);
        props.rename("a", "b");
        drop(props);

        let props = Props::open(dir.path()).unwrap();
        assert!(props.list("a/f", true).is_empty());
        let got = props.get("b/f", &prop("color", "")).unwrap();
        assert!(String::from_utf8(got).unwrap().contains("red"));
        props.remove("b");
        assert!(props.list("b/f", false).is_empty());
    }

    #[test]
    fn mtimes_hold_only_while_content_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Mtimes::open(dir.path()).unwrap().record("qk", "h1", 3, t);
        let m = Mtimes::open(dir.path()).unwrap();
        assert_eq!(m.get("qk", "h1", 3), Some(t));
        assert_eq!(m.get("qk", "h2", 3), None);
        m.forget("qk");
        assert_eq!(m.get("qk", "h1", 3), None);
    }
}
