//! Modification times that clients set in a PROPPATCH, read from the body
//! before dav-server sees it (`MfDav::proppatch` keeps them through
//! `Shared::set_mtime`, in the same store as `X-OC-Mtime`):
//! - `Win32LastModifiedTime` (Windows Explorer), which dav-server
//!   acknowledges with 200 but never hands to the filesystem;
//! - ownCloud's `{DAV:}lastmodified` in Unix seconds (newer rclone's
//!   `SetModTime`). dav-server 0.11 answers 403 for every DAV: property it
//!   does not know, so [`rewrite_lastmodified`] moves it into [`MTIME_NS`]
//!   first; dav-server then treats it as a dead property (with its lock and
//!   `If` checks), `MfFs::patch_props` acknowledges it without storing it,
//!   and the answer names it `DAV:` again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The Microsoft namespace of the `Win32*` properties.
const NS_MS: &str = "urn:schemas-microsoft-com:";

/// The namespace `{DAV:}lastmodified` travels in through dav-server.
pub(crate) const MTIME_NS: &str = "urn:x-mediafire-dav:lastmodified";

/// Latest time accepted: 9999-12-31, past which HTTP dates stop making sense.
const MAX_SECS: u64 = 253_402_300_799;

fn from_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Unix seconds, possibly with a fraction (which is dropped); `None` for
/// anything else.
fn parse_unix_secs(value: &str) -> Option<SystemTime> {
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
        Err(_) => parse_unix_secs(text),
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

    #[test]
    fn unix_seconds_are_digits_only() {
        assert_eq!(
            parse_unix_secs("1700000000"),
            Some(from_secs(1_700_000_000))
        );
        assert_eq!(
            parse_unix_secs(" 1700000000.75 "),
            Some(from_secs(1_700_000_000))
        );
        assert_eq!(parse_unix_secs("-5"), None);
        assert_eq!(parse_unix_secs("1e9"), None);
        assert_eq!(parse_unix_secs(""), None);
        assert_eq!(parse_unix_secs("99999999999999999999"), None);
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
}
