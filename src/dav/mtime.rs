//! Modification times that clients set, kept because MediaFire cannot
//! give them back.
//!
//! Three ways in:
//! - `X-OC-Mtime: <unix seconds>` on PUT (rclone's `owncloud`/`nextcloud`
//!   vendors, ownCloud-style clients); the answer says `X-OC-Mtime: accepted`;
//! - `Win32LastModifiedTime` in a PROPPATCH (Windows Explorer), which
//!   dav-server acknowledges with 200 but never hands to the filesystem;
//! - ownCloud's PROPPATCH of `{DAV:}lastmodified` in Unix seconds (newer
//!   rclone's `SetModTime`). dav-server 0.11 answers 403 for every DAV:
//!   property it does not know, so [`rewrite_lastmodified`] moves it into
//!   [`MTIME_NS`] first; dav-server then treats it as a dead property (with
//!   its lock and `If` checks), the filesystem acknowledges it without
//!   storing it, and the answer names it `DAV:` again.
//!
//! MediaFire lists creation times only (`mediafire-api.md` §9.9), so a time
//! set here lives in `state_dir/mtimes.jsonl`, keyed by path, and is tied to
//! one version of the content: the ETag the entry had when the time was
//! set. When the content changes elsewhere (another MediaFire client), the
//! record no longer applies and MediaFire's time shows again.
//!
//! Writes through this server decide the new time themselves:
//! - a time the writer gave (`X-OC-Mtime`) is kept;
//! - a time set on an empty placeholder (Windows' 0-byte PUT, a lock-null
//!   entry) carries over to the content that replaces it, because that is
//!   the file the client was describing;
//! - new content for an existing file is stamped with the time of the write:
//!   MediaFire keeps the first upload's creation time when a file is
//!   replaced, and a file that was just rewritten must not look unchanged;
//! - a new file needs no record (its creation time is the write time).
//!
//! The upload still passes the time on in `UploadRequest::mtime`, for a
//! MediaFire client that can record it upstream.
//!
//! Records follow MOVE and COPY and go with DELETE, like dead properties.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::error::{Error, Result};

use super::cache::{is_within, rebase};
use super::meta::MfMeta;

/// The Microsoft namespace of the `Win32*` properties.
const NS_MS: &str = "urn:schemas-microsoft-com:";

/// The namespace `{DAV:}lastmodified` travels in through dav-server.
pub(crate) const MTIME_NS: &str = "urn:x-mediafire-dav:lastmodified";

/// Latest time accepted: 9999-12-31, past which HTTP dates stop making sense.
const MAX_SECS: u64 = 253_402_300_799;

/// The journal is rewritten once it holds this many lines more than twice
/// the live records.
const COMPACT_SLACK: usize = 1000;

/// One client-set time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    /// Unix seconds.
    secs: u64,
    /// The ETag of the content version the time describes.
    etag: String,
}

type RecordMap = BTreeMap<String, Record>;

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Line {
    Set {
        path: String,
        secs: u64,
        etag: String,
    },
    Del {
        path: String,
    },
}

/// Client-set modification times, in memory and in the append-only journal
/// `state_dir/mtimes.jsonl`: every change appends a line (a rclone sync of
/// many files must not rewrite a growing file per upload), and the journal
/// is compacted into one `set` line per record when it has grown to more
/// than twice that. A torn last line (a crash mid-append) is skipped.
pub(crate) struct Mtimes {
    file: PathBuf,
    inner: Mutex<Journal>,
}

struct Journal {
    map: RecordMap,
    /// Open for appending; `None` after a write failed (retried on the next
    /// change by compacting).
    log: Option<std::fs::File>,
    lines: usize,
}

fn to_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn from_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn open_append(file: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
}

impl Journal {
    fn apply(&mut self, line: Line) {
        match line {
            Line::Set { path, secs, etag } => {
                self.map.insert(path, Record { secs, etag });
            }
            Line::Del { path } => {
                self.map.remove(&path);
            }
        }
    }
}

impl Mtimes {
    pub(crate) fn open(state_dir: &Path) -> Result<Mtimes> {
        let file = state_dir.join("mtimes.jsonl");
        let mut journal = Journal {
            map: RecordMap::new(),
            log: None,
            lines: 0,
        };
        match std::fs::File::open(&file) {
            Ok(f) => {
                for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
                    let line =
                        line.map_err(|e| Error::from(e).with_context("path", file.display()))?;
                    match serde_json::from_str::<Line>(&line) {
                        Ok(l) => journal.apply(l),
                        Err(e) => {
                            warn!(line = n + 1, error = %e, "mtimes: skipping an unreadable journal line")
                        }
                    }
                    journal.lines += 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::from(e).with_context("path", file.display())),
        }
        let mtimes = Mtimes {
            file,
            inner: Mutex::new(journal),
        };
        mtimes.compact(&mut mtimes.inner.lock().unwrap())?;
        Ok(mtimes)
    }

    /// Rewrites the journal as one line per record (temp file, fsync,
    /// rename) and reopens it for appending.
    fn compact(&self, j: &mut Journal) -> Result<()> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        {
            let mut w = std::io::BufWriter::new(tmp.as_file_mut());
            for (path, r) in &j.map {
                let line = Line::Set {
                    path: path.clone(),
                    secs: r.secs,
                    etag: r.etag.clone(),
                };
                serde_json::to_writer(&mut w, &line).map_err(std::io::Error::other)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&self.file)
            .map_err(|e| Error::from(e.error).with_context("path", self.file.display()))?;
        j.log = Some(open_append(&self.file)?);
        j.lines = j.map.len();
        Ok(())
    }

    /// Applies `lines` in order and appends them to the journal.
    fn commit(&self, j: &mut Journal, lines: Vec<Line>) {
        if lines.is_empty() {
            return;
        }
        let mut buf = Vec::new();
        for l in &lines {
            // Serialising plain strings and numbers cannot fail.
            let _ = serde_json::to_writer(&mut buf, l);
            buf.push(b'\n');
        }
        j.lines += lines.len();
        for l in lines {
            j.apply(l);
        }
        let appended = match j.log.as_mut() {
            Some(f) => f.write_all(&buf).is_ok(),
            None => false,
        };
        let due = !appended || j.lines > 2 * j.map.len() + COMPACT_SLACK;
        if due && let Err(e) = self.compact(j) {
            j.log = None;
            warn!(error = %e, "mtimes: saving modification times failed");
        }
    }

    /// `meta` with the client-set time of `path`, when one applies to it.
    pub(crate) fn apply(&self, path: &str, mut meta: MfMeta) -> MfMeta {
        if meta.is_dir {
            return meta;
        }
        let j = self.inner.lock().unwrap();
        if let Some(r) = j.map.get(path)
            && r.etag == meta.etag
        {
            meta.modified = from_secs(r.secs);
        }
        meta
    }

    /// Records `time` as the modification time of the content `meta`
    /// describes at `path`. Folders keep MediaFire's time (their listing
    /// changes under them anyway), so a time set on one is dropped.
    pub(crate) fn set(&self, path: &str, time: SystemTime, meta: &MfMeta) {
        if meta.is_dir {
            return;
        }
        let (secs, etag) = (to_secs(time), meta.etag.clone());
        debug!(path, secs, etag = %etag, "mtimes: set");
        let mut j = self.inner.lock().unwrap();
        let line = Line::Set {
            path: path.to_string(),
            secs,
            etag,
        };
        self.commit(&mut j, vec![line]);
    }

    /// After new content was written to `path` (see the module docs for the
    /// rules). `before` is what the path held, `after` what it holds now;
    /// `local` says the content went to the overlay, whose entries carry
    /// their own write time (so a rewrite needs no stamp there). Returns
    /// `after` with the time that now applies.
    pub(crate) fn after_write(
        &self,
        path: &str,
        before: Option<&MfMeta>,
        after: MfMeta,
        explicit: Option<SystemTime>,
        local: bool,
    ) -> MfMeta {
        let mut j = self.inner.lock().unwrap();
        let old = j.map.get(path).cloned();
        let carried = old.as_ref().and_then(|r| {
            let b = before?;
            (b.len == 0 && !b.is_dir && r.etag == b.etag).then_some(r.secs)
        });
        let rewritten = !local && before.is_some_and(|b| !b.is_dir && b.len > 0);
        let secs = explicit
            .map(to_secs)
            .or(carried)
            .or_else(|| rewritten.then(|| to_secs(SystemTime::now())));
        let path_s = path.to_string();
        let line = match secs {
            Some(secs) => Some(Line::Set {
                path: path_s,
                secs,
                etag: after.etag.clone(),
            }),
            None => old.map(|_| Line::Del { path: path_s }),
        };
        self.commit(&mut j, line.into_iter().collect());
        drop(j);
        self.apply(path, after)
    }

    /// Moves the records of `from` and everything below it to `to`.
    pub(crate) fn rename(&self, from: &str, to: &str) {
        let mut j = self.inner.lock().unwrap();
        let mut lines = Vec::new();
        for (k, r) in &j.map {
            if is_within(k, from) {
                lines.push(Line::Del { path: k.clone() });
                lines.push(Line::Set {
                    path: rebase(k, from, to),
                    secs: r.secs,
                    etag: r.etag.clone(),
                });
            } else if is_within(k, to) {
                // What the destination held is gone.
                lines.insert(0, Line::Del { path: k.clone() });
            }
        }
        self.commit(&mut j, lines);
    }

    /// Copies the record of the single entry `from` to `to`.
    pub(crate) fn copy(&self, from: &str, to: &str) {
        let mut j = self.inner.lock().unwrap();
        let line = match j.map.get(from) {
            Some(r) => Some(Line::Set {
                path: to.to_string(),
                secs: r.secs,
                etag: r.etag.clone(),
            }),
            None => j.map.contains_key(to).then(|| Line::Del {
                path: to.to_string(),
            }),
        };
        self.commit(&mut j, line.into_iter().collect());
    }

    /// Drops the records of `path` and everything below it.
    pub(crate) fn remove(&self, path: &str) {
        let mut j = self.inner.lock().unwrap();
        let lines = j
            .map
            .keys()
            .filter(|k| is_within(k, path))
            .map(|k| Line::Del { path: k.clone() })
            .collect();
        self.commit(&mut j, lines);
    }
}

/// The time in an `X-OC-Mtime` header: Unix seconds, possibly with a
/// fraction (which is dropped). `None` for anything else.
pub(crate) fn parse_oc_mtime(value: &str) -> Option<SystemTime> {
    let v = value.trim();
    let whole = v.split_once('.').map_or(v, |(w, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            w
        } else {
            ""
        }
    });
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    (secs <= MAX_SECS).then(|| from_secs(secs))
}

/// An HTTP date (RFC 1123, as Windows sends `Win32LastModifiedTime`), an
/// RFC 3339 time, or Unix seconds.
fn parse_time_text(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let dated = chrono::DateTime::parse_from_rfc2822(text)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(text));
    match dated {
        Ok(t) => {
            let secs = u64::try_from(t.timestamp()).ok()?;
            (secs <= MAX_SECS).then(|| from_secs(secs))
        }
        Err(_) => parse_oc_mtime(text),
    }
}

/// The modification time a PROPPATCH body sets, if it sets one: the
/// `Win32LastModifiedTime` of the Microsoft namespace. The last such `set`
/// wins; a body that is not XML sets nothing.
pub(crate) fn proppatch_mtime(body: &[u8]) -> Option<SystemTime> {
    let tree = xmltree::Element::parse(body).ok()?;
    if tree.name != "propertyupdate" {
        return None;
    }
    let mut found = None;
    for set in tree.children.iter().filter_map(|n| n.as_element()) {
        if set.name != "set" {
            continue;
        }
        let props = set.children.iter().filter_map(|n| n.as_element());
        for prop in props.filter(|e| e.name == "prop") {
            for p in prop.children.iter().filter_map(|n| n.as_element()) {
                let ns = p.namespace.as_deref().unwrap_or("");
                let wanted = ns == NS_MS && p.name == "Win32LastModifiedTime";
                if wanted && let Some(t) = p.get_text().and_then(|t| parse_time_text(&t)) {
                    found = Some(t);
                }
            }
        }
    }
    found
}

/// The `prop` children of every `set` in a `propertyupdate` tree.
fn set_props(tree: &mut xmltree::Element) -> impl Iterator<Item = &mut xmltree::Element> {
    tree.children
        .iter_mut()
        .filter_map(|n| n.as_mut_element())
        .filter(|e| e.name == "set")
        .flat_map(|set| set.children.iter_mut().filter_map(|n| n.as_mut_element()))
        .filter(|e| e.name == "prop")
}

/// A PROPPATCH body in which every `set` of `{DAV:}lastmodified` has been
/// moved into [`MTIME_NS`], and the (last) time it sets; `None` when the
/// body sets no readable `{DAV:}lastmodified`.
pub(crate) fn rewrite_lastmodified(body: &[u8]) -> Option<(Vec<u8>, SystemTime)> {
    let mut tree = xmltree::Element::parse(body).ok()?;
    if tree.name != "propertyupdate" || tree.namespace.as_deref() != Some("DAV:") {
        return None;
    }
    let mut found = None;
    for prop in set_props(&mut tree) {
        for node in prop.children.iter_mut() {
            let Some(p) = node.as_mut_element() else {
                continue;
            };
            if p.namespace.as_deref() != Some("DAV:") || p.name != "lastmodified" {
                continue;
            }
            let Some(t) = p.get_text().and_then(|t| parse_time_text(&t)) else {
                continue;
            };
            found = Some(t);
            let mut moved = xmltree::Element::new("lastmodified");
            moved.prefix = Some("mfdav".into());
            moved.namespace = Some(MTIME_NS.into());
            let mut ns = xmltree::Namespace::empty();
            ns.put("mfdav", MTIME_NS);
            moved.namespaces = Some(ns);
            moved.children = std::mem::take(&mut p.children);
            *p = moved;
        }
    }
    let time = found?;
    let mut out = Vec::with_capacity(body.len() + 64);
    tree.write(&mut out).ok()?;
    Some((out, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_meta(etag: &str, len: u64) -> MfMeta {
        MfMeta {
            is_dir: false,
            len,
            created: UNIX_EPOCH,
            modified: UNIX_EPOCH,
            etag: etag.into(),
        }
    }

    #[test]
    fn oc_mtime_accepts_unix_seconds_only() {
        assert_eq!(parse_oc_mtime("1700000000"), Some(from_secs(1_700_000_000)));
        assert_eq!(
            parse_oc_mtime(" 1700000000.75 "),
            Some(from_secs(1_700_000_000))
        );
        assert_eq!(parse_oc_mtime("-5"), None);
        assert_eq!(parse_oc_mtime("1e9"), None);
        assert_eq!(parse_oc_mtime(""), None);
        assert_eq!(parse_oc_mtime("99999999999999999999"), None);
    }

    #[test]
    fn proppatch_finds_win32_last_modified_time() {
        let windows = br#"<?xml version="1.0" encoding="utf-8" ?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>
<Z:Win32CreationTime>Mon, 06 Nov 2023 10:00:00 GMT</Z:Win32CreationTime>
<Z:Win32LastAccessTime>Tue, 07 Nov 2023 10:00:00 GMT</Z:Win32LastAccessTime>
<Z:Win32LastModifiedTime>Tue, 14 Nov 2023 22:13:20 GMT</Z:Win32LastModifiedTime>
<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>
</D:prop></D:set></D:propertyupdate>"#;
        assert_eq!(proppatch_mtime(windows), Some(from_secs(1_700_000_000)));
        let iso = br#"<propertyupdate xmlns="DAV:"><set><prop>
<Win32LastModifiedTime xmlns="urn:schemas-microsoft-com:">2020-09-13T12:26:40Z</Win32LastModifiedTime>
</prop></set></propertyupdate>"#;
        assert_eq!(proppatch_mtime(iso), Some(from_secs(1_600_000_000)));

        // Same local name in another namespace, a remove, and junk: nothing.
        let other = br#"<D:propertyupdate xmlns:D="DAV:" xmlns:X="urn:x" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>
<X:Win32LastModifiedTime>Tue, 14 Nov 2023 22:13:20 GMT</X:Win32LastModifiedTime>
<D:lastmodified>1600000000</D:lastmodified>
</D:prop></D:set><D:remove><D:prop><Z:Win32LastModifiedTime/></D:prop></D:remove></D:propertyupdate>"#;
        assert_eq!(proppatch_mtime(other), None);
        assert_eq!(proppatch_mtime(b"not xml"), None);
    }

    #[test]
    fn dav_lastmodified_is_moved_out_of_the_dav_namespace() {
        let rclone = br#"<?xml version="1.0" encoding="utf-8" ?>
<D:propertyupdate xmlns:D="DAV:" xmlns:z="urn:z"><D:set><D:prop>
<lastmodified xmlns="DAV:">1600000000</lastmodified><z:color>red</z:color>
</D:prop></D:set></D:propertyupdate>"#;
        let (body, t) = rewrite_lastmodified(rclone).unwrap();
        assert_eq!(t, from_secs(1_600_000_000));
        let tree = xmltree::Element::parse(&body[..]).unwrap();
        let prop = tree.get_child("set").unwrap().get_child("prop").unwrap();
        let names: Vec<(Option<&str>, &str, String)> = prop
            .children
            .iter()
            .filter_map(|n| n.as_element())
            .map(|e| {
                let text = e.get_text().unwrap_or_default().to_string();
                (e.namespace.as_deref(), e.name.as_str(), text)
            })
            .collect();
        assert_eq!(
            names,
            [
                (Some(MTIME_NS), "lastmodified", "1600000000".to_string()),
                (Some("urn:z"), "color", "red".to_string()),
            ]
        );
        // Nothing to move, or nothing readable: left alone.
        let plain = br#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x</D:displayname></D:prop></D:set></D:propertyupdate>"#;
        assert!(rewrite_lastmodified(plain).is_none());
        let junk = br#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:lastmodified>soon</D:lastmodified></D:prop></D:set></D:propertyupdate>"#;
        assert!(rewrite_lastmodified(junk).is_none());
    }

    #[test]
    fn records_apply_to_their_content_version_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mtimes::open(dir.path()).unwrap();
        let t = from_secs(1_000_000);
        m.set("a/f", t, &file_meta("h-1", 5));
        drop(m);

        let m = Mtimes::open(dir.path()).unwrap();
        assert_eq!(m.apply("a/f", file_meta("h-1", 5)).modified, t);
        // Other content: the record does not describe it.
        assert_eq!(m.apply("a/f", file_meta("h-2", 5)).modified, UNIX_EPOCH);
        m.rename("a", "b");
        assert_eq!(m.apply("b/f", file_meta("h-1", 5)).modified, t);
        assert_eq!(m.apply("a/f", file_meta("h-1", 5)).modified, UNIX_EPOCH);
        m.copy("b/f", "c");
        assert_eq!(m.apply("c", file_meta("h-1", 5)).modified, t);
        m.remove("b");
        assert_eq!(m.apply("b/f", file_meta("h-1", 5)).modified, UNIX_EPOCH);
    }

    #[test]
    fn the_journal_appends_compacts_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mtimes.jsonl");
        let m = Mtimes::open(dir.path()).unwrap();
        // One path rewritten many times: appends, then a compaction.
        for i in 0..(COMPACT_SLACK as u64 + 10) {
            m.set("f", from_secs(i), &file_meta("h-1", 1));
        }
        m.set("g", from_secs(7), &file_meta("h-2", 2));
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        assert!(lines < 20, "journal not compacted: {lines} lines");
        // A crash mid-append leaves half a line.
        let mut f = open_append(&file).unwrap();
        f.write_all(b"{\"op\":\"set\",\"path\":\"h\",\"se").unwrap();
        drop((f, m));

        let m = Mtimes::open(dir.path()).unwrap();
        let last = from_secs(COMPACT_SLACK as u64 + 9);
        assert_eq!(m.apply("f", file_meta("h-1", 1)).modified, last);
        assert_eq!(m.apply("g", file_meta("h-2", 2)).modified, from_secs(7));
        assert_eq!(m.apply("h", file_meta("h-3", 3)).modified, UNIX_EPOCH);
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);
    }

    #[test]
    fn a_time_set_on_an_empty_placeholder_carries_over_to_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mtimes::open(dir.path()).unwrap();
        let t = from_secs(1_000_000);
        let empty = file_meta("l-0-1", 0);
        m.set("f", t, &empty);
        let after = m.after_write("f", Some(&empty), file_meta("h-9", 9), None, false);
        assert_eq!(after.modified, t);

        // A plain rewrite of real content is stamped with the time of the write.
        let full = file_meta("h-9", 9);
        let start = SystemTime::now() - Duration::from_secs(1);
        let after = m.after_write("f", Some(&full), file_meta("h-8", 8), None, false);
        assert!(after.modified >= start, "{:?}", after.modified);

        // A rewrite kept in the overlay has its own time.
        let local = m.after_write("o", Some(&full), file_meta("h-5", 5), None, true);
        assert_eq!(local.modified, UNIX_EPOCH);

        // A new file needs no record.
        let after = m.after_write("g", None, file_meta("h-6", 6), None, false);
        assert_eq!(after.modified, UNIX_EPOCH);

        // An explicit time always wins.
        let t2 = from_secs(2_000_000);
        let after = m.after_write("f", None, file_meta("h-7", 7), Some(t2), false);
        assert_eq!(after.modified, t2);
    }
}
