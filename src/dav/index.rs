//! The HTML page a browser gets for GET on a folder: every entry with a link
//! that works whatever its name holds (`#`, `%`, `?`, `&`, spaces, accents),
//! its size and its modification time, folders first.
//!
//! dav-server's own index has the basics but links its breadcrumb root to
//! `/` (outside a `--prefix`), offers "Parent Directory" at the top, shows
//! times without a zone, and hides every dot-file; this page fixes those.
//! It hides only Finder's `._*` and `.DS_Store` bookkeeping files.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use dav_server::fs::DavMetaData;

use super::fs::is_apple_name;
use super::meta::MfDirEntry;

/// Escapes text for HTML element content and quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved
/// characters, so no name can end the path early or start a query or a
/// fragment.
fn encode_segment(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

/// The absolute URL path of the folder `segments` under `prefix`, with a
/// trailing slash.
fn folder_href(prefix: &str, segments: &[&str]) -> String {
    let mut href = String::new();
    for seg in prefix.split('/').filter(|s| !s.is_empty()) {
        href.push('/');
        href.push_str(&encode_segment(seg));
    }
    for seg in segments {
        href.push('/');
        href.push_str(&encode_segment(seg));
    }
    href.push('/');
    href
}

/// 1536 → "1.5 KiB"; bytes below 1 KiB stay exact.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The page up to the table body: head, style, breadcrumbs (every
/// ancestor links to itself), table header.
fn page_head(html: &mut String, prefix: &str, segments: &[&str]) {
    let shown = if segments.is_empty() {
        format!("{prefix}/")
    } else {
        format!("{prefix}/{}/", segments.join("/"))
    };
    let title = escape(&format!("Index of {shown}"));
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{title}</title>\n<style>\n\
         body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}\n\
         table {{ border-collapse: collapse; }}\n\
         th, td {{ padding: 0.2em 1em 0.2em 0; text-align: left; }}\n\
         td.size {{ text-align: right; font-variant-numeric: tabular-nums; }}\n\
         td.time {{ font-variant-numeric: tabular-nums; white-space: nowrap; }}\n\
         a {{ text-decoration: none; }}\n</style>\n</head>\n<body>\n"
    );
    let root_label = if prefix.is_empty() { "/" } else { prefix };
    let _ = write!(
        html,
        "<h1>Index of <a href=\"{}\">{}</a>",
        escape(&folder_href(prefix, &[])),
        escape(root_label)
    );
    if !prefix.is_empty() {
        html.push('/');
    }
    for i in 0..segments.len() {
        let _ = write!(
            html,
            "<a href=\"{}\">{}</a>/",
            escape(&folder_href(prefix, &segments[..=i])),
            escape(segments[i])
        );
    }
    html.push_str(
        "</h1>\n<table>\n<thead><tr><th>Name</th><th>Size</th>\
         <th>Last modified (UTC)</th></tr></thead>\n<tbody>\n",
    );
    if let Some((_, parent)) = segments.split_last() {
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{}\" rel=\"up\">Parent folder</a></td><td></td><td></td></tr>",
            escape(&folder_href(prefix, parent))
        );
    }
}

/// One table row: linked name, size, modification time.
fn row(html: &mut String, here: &str, e: &MfDirEntry) {
    let dir = e.meta.is_dir();
    let (href, label) = if dir {
        (
            format!("{here}{}/", encode_segment(&e.name)),
            format!("{}/", e.name),
        )
    } else {
        (format!("{here}{}", encode_segment(&e.name)), e.name.clone())
    };
    let size = if dir {
        String::from("<td class=\"size\">—</td>")
    } else {
        let n = e.meta.len();
        format!(
            "<td class=\"size\" title=\"{n} bytes\" data-bytes=\"{n}\">{}</td>",
            human_size(n)
        )
    };
    let time = match e.meta.modified() {
        Ok(t) => {
            let t = DateTime::<Utc>::from(t);
            format!(
                "<td class=\"time\"><time datetime=\"{}\">{}</time></td>",
                t.format("%Y-%m-%dT%H:%M:%SZ"),
                t.format("%Y-%m-%d %H:%M:%S")
            )
        }
        Err(_) => String::from("<td class=\"time\"></td>"),
    };
    let _ = writeln!(
        html,
        "<tr><td><a href=\"{}\">{}</a></td>{size}{time}</tr>",
        escape(&href),
        escape(&label)
    );
}

/// Renders the listing of the folder at `rel` (NFC, `/`-joined, `""` for
/// the root) served under `prefix`: folders first, then files, by name.
pub(crate) fn render(prefix: &str, rel: &str, mut entries: Vec<MfDirEntry>) -> String {
    let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    entries.retain(|e| !is_apple_name(&e.name));
    entries.sort_by(|a, b| {
        b.meta
            .is_dir()
            .cmp(&a.meta.is_dir())
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut html = String::with_capacity(1024 + entries.len() * 200);
    page_head(&mut html, prefix, &segments);
    let here = folder_href(prefix, &segments);
    for e in &entries {
        row(&mut html, &here, e);
    }
    html.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::dav::meta::MfMeta;

    fn entry(name: &str, dir: bool, len: u64) -> MfDirEntry {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        MfDirEntry {
            name: name.into(),
            meta: MfMeta {
                is_dir: dir,
                len,
                created: t,
                modified: t,
                etag: "e".into(),
            },
        }
    }

    #[test]
    fn awkward_names_get_safe_links_and_escaped_labels() {
        let page = render(
            "/dav",
            "Music & Sounds",
            vec![
                entry("a b#c%d&e+f é.txt", false, 1536),
                entry("<sub>", true, 0),
                entry("._a b#c%d&e+f é.txt", false, 4096),
                entry(".hidden-but-shown", false, 3),
            ],
        );
        assert!(
            page.contains(
                "<a href=\"/dav/Music%20%26%20Sounds/a%20b%23c%25d%26e%2Bf%20%C3%A9.txt\">\
                 a b#c%d&amp;e+f é.txt</a>"
            ),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"/dav/Music%20%26%20Sounds/%3Csub%3E/\">&lt;sub&gt;/</a>"),
            "{page}"
        );
        assert!(!page.contains("._a b"), "Finder files are hidden");
        assert!(page.contains(".hidden-but-shown"));
        assert!(page.contains(">1.5 KiB<") && page.contains("title=\"1536 bytes\""));
        assert!(
            page.contains("<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14 22:13:20</time>")
        );
        // Folders first; parent and breadcrumbs stay under the prefix.
        assert!(page.find("&lt;sub&gt;").unwrap() < page.find("a b#c").unwrap());
        assert!(page.contains("<a href=\"/dav/\" rel=\"up\">Parent folder</a>"));
        assert!(page.contains("<h1>Index of <a href=\"/dav/\">/dav</a>/<a href=\"/dav/Music%20%26%20Sounds/\">Music &amp; Sounds</a>/</h1>"));
    }

    #[test]
    fn the_root_has_no_parent_link() {
        let page = render("", "", vec![entry("f", false, 3)]);
        assert!(!page.contains("Parent folder"));
        assert!(page.contains("<h1>Index of <a href=\"/\">/</a></h1>"));
        assert!(page.contains("<a href=\"/f\">f</a>") && page.contains(">3 B<"));
    }
}
