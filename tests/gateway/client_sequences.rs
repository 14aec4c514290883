//! Each desktop client's request sequence, replayed with the headers that
//! client sends, and the outcome a user of that client would see.
//!
//! The davfs2 sequence is the one davfs2 1.6.1 sent to this server through
//! a mount (captured with a logging proxy): LOCK on the new name, HEAD for
//! the ETag, the delayed PUT with `If-Match` and the lock in `If`, UNLOCK,
//! then conditional GETs. The others follow the clients' documented
//! behaviour (`../shared/dav-server-notes.md` §2.2). rclone itself runs too,
//! as an oracle for `X-OC-Mtime`.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::process::Command;

use crate::util::{Options, PASS, TestServer, USER, require_tool};

const FINDER: &str = "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0";
const WINDOWS: &str = "Microsoft-WebDAV-MiniRedir/10.0.19045";
const DAVFS2: &str = "davfs2/1.6.1 neon/0.32.5";
const RCLONE: &str = "rclone/v1.60.1-DEV";

const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<lockinfo xmlns='DAV:'>
 <lockscope><exclusive/></lockscope>
<locktype><write/></locktype><owner>me</owner>
</lockinfo>
"#;

/// A request as the client with user agent `ua` would send it.
fn as_client(server: &TestServer, ua: &str, method: &str, path: &str) -> reqwest::RequestBuilder {
    server.req(method, path).header("User-Agent", ua)
}

/// LOCKs `path`; returns the status and the `Lock-Token` (with its `<>`).
async fn lock(server: &TestServer, ua: &str, path: &str) -> (u16, String) {
    let resp = as_client(server, ua, "LOCK", path)
        .header("Depth", "0")
        .header("Timeout", "Second-1800")
        .header("Content-Type", "application/xml")
        .body(LOCKINFO)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let token = resp
        .headers()
        .get("lock-token")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, token)
}

async fn unlock(server: &TestServer, ua: &str, path: &str, token: &str) -> u16 {
    as_client(server, ua, "UNLOCK", path)
        .header("Lock-Token", token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A body sent with `Transfer-Encoding: chunked` (no Content-Length), in
/// pieces of `piece` bytes, the way Finder uploads.
fn chunked(data: &[u8], piece: usize) -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

/// The properties of each resource in a multistatus body that came with a
/// 200 propstat: (decoded href, local name → text). A collection's
/// `resourcetype` reads `collection`.
fn responses(body: &str) -> Vec<(String, HashMap<String, String>)> {
    let tree = xmltree::Element::parse(body.as_bytes())
        .unwrap_or_else(|e| panic!("not XML ({e}): {body}"));
    let elems = |e: &xmltree::Element| {
        e.children
            .iter()
            .filter_map(|n| n.as_element().cloned())
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for resp in elems(&tree).into_iter().filter(|e| e.name == "response") {
        let mut href = String::new();
        let mut props = HashMap::new();
        for part in elems(&resp) {
            if part.name == "href" {
                let raw = part.get_text().unwrap_or_default().to_string();
                href = percent_encoding::percent_decode_str(&raw)
                    .decode_utf8_lossy()
                    .into_owned();
            }
            if part.name != "propstat" {
                continue;
            }
            let ok = elems(&part)
                .iter()
                .any(|s| s.name == "status" && s.get_text().is_some_and(|t| t.contains(" 200 ")));
            if !ok {
                continue;
            }
            for prop in elems(&part).into_iter().filter(|e| e.name == "prop") {
                for p in elems(&prop) {
                    let text = if elems(&p).iter().any(|c| c.name == "collection") {
                        "collection".to_string()
                    } else {
                        p.get_text().unwrap_or_default().to_string()
                    };
                    props.insert(p.name.clone(), text);
                }
            }
        }
        out.push((href, props));
    }
    out
}

/// PROPFIND with an explicit body; returns status and the parsed answer.
async fn propfind_as(
    server: &TestServer,
    ua: &str,
    path: &str,
    depth: &str,
    body: &'static str,
) -> (u16, Vec<(String, HashMap<String, String>)>) {
    let resp = as_client(server, ua, "PROPFIND", path)
        .header("Depth", depth)
        .header("Content-Type", "application/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let parsed = if status == 207 {
        responses(&text)
    } else {
        Vec::new()
    };
    (status, parsed)
}

const ALLPROP: &str =
    r#"<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><allprop/></propfind>"#;

/// The properties of the one resource a Depth-0 PROPFIND returns.
async fn props_of(server: &TestServer, ua: &str, path: &str) -> HashMap<String, String> {
    let (status, mut found) = propfind_as(server, ua, path, "0", ALLPROP).await;
    assert_eq!(status, 207, "PROPFIND {path}");
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap().1
}

async fn get_body(server: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let resp = server.req("GET", path).send().await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

fn files_on_mediafire(server: &TestServer) -> u64 {
    server.emulator.stats()["files"].as_u64().unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + seed as usize) % 253) as u8)
        .collect()
}

// ---------------------------------------------------------------- Finder

#[tokio::test]
async fn finder_mounts_writable_and_sees_quota() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/q.bin", &pattern(3000, 1));
    // Finder mounts read-only unless the server says it is class 2.
    let resp = as_client(&server, FINDER, "OPTIONS", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let dav = resp.headers()["dav"].to_str().unwrap().to_string();
    assert!(dav.split(',').any(|c| c.trim() == "2"), "DAV: {dav}");
    // No partial updates: MediaFire cannot change part of a file.
    assert!(!dav.contains("partialupdate"), "DAV: {dav}");

    let quota = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"#;
    let (status, found) = propfind_as(&server, FINDER, "/", "0", quota).await;
    assert_eq!(status, 207);
    let props = &found[0].1;
    // dav-server zero-pads "used" for WebDAVFS, which otherwise misreads it.
    assert_eq!(props["quota-used-bytes"], "00000000003000", "{props:?}");
    let avail: u64 = props["quota-available-bytes"].parse().unwrap();
    assert!(avail > 0, "{props:?}");
}

#[tokio::test]
async fn finder_copy_keeps_apple_files_local_and_uploads_the_file_once() {
    let server = TestServer::start().await;
    server.emulator.seed_folder("/Docs");
    // Finder probes the AppleDouble and .DS_Store names of everything it
    // shows; after the first listing they must cost no API call.
    let (status, _) = propfind_as(&server, FINDER, "/Docs/._report.txt", "0", ALLPROP).await;
    assert_eq!(status, 404);
    let calls = server.total_api_calls();
    for name in ["._report.txt", ".DS_Store", "._x", ".DS_Store"] {
        let (status, _) =
            propfind_as(&server, FINDER, &format!("/Docs/{name}"), "0", ALLPROP).await;
        assert_eq!(status, 404, "{name}");
    }
    assert_eq!(
        server.total_api_calls(),
        calls,
        "probes must be answered from the cache: {}",
        server.emulator.stats()
    );

    // The copy: LOCK the new name, chunked PUT with the expected length and
    // the lock token, same for the AppleDouble companion, then UNLOCK.
    let content = pattern(200_000, 9);
    let (status, token) = lock(&server, FINDER, "/Docs/report.txt").await;
    assert_eq!(status, 201, "LOCK on a new name creates a lock-null entry");
    let resp = as_client(&server, FINDER, "PUT", "/Docs/report.txt")
        .header("X-Expected-Entity-Length", content.len().to_string())
        .header("If", format!("({token})"))
        .body(chunked(&content, 16 * 1024))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(
        resp.headers()
            .get("content-length")
            .is_none_or(|v| v == "0")
    );

    let fork = pattern(4096, 3);
    let (status, fork_token) = lock(&server, FINDER, "/Docs/._report.txt").await;
    assert_eq!(status, 201);
    let resp = as_client(&server, FINDER, "PUT", "/Docs/._report.txt")
        .header("X-Expected-Entity-Length", fork.len().to_string())
        .header("If", format!("({fork_token})"))
        .body(chunked(&fork, 1000))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let resp = as_client(&server, FINDER, "PUT", "/Docs/.DS_Store")
        .header("X-Expected-Entity-Length", "6")
        .body(chunked(b"Bud1\0\0", 3))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        unlock(&server, FINDER, "/Docs/._report.txt", &fork_token).await,
        204
    );
    assert_eq!(
        unlock(&server, FINDER, "/Docs/report.txt", &token).await,
        204
    );

    // One file on MediaFire; the Apple files live in the local overlay.
    assert_eq!(
        files_on_mediafire(&server),
        1,
        "{}",
        server.emulator.stats()
    );
    assert_eq!(get_body(&server, "/Docs/report.txt").await, (200, content));
    assert_eq!(get_body(&server, "/Docs/._report.txt").await, (200, fork));
    let (status, found) = propfind_as(&server, FINDER, "/Docs/", "1", ALLPROP).await;
    assert_eq!(status, 207);
    let names: Vec<&str> = found.iter().map(|(h, _)| h.as_str()).collect();
    for want in ["/Docs/report.txt", "/Docs/._report.txt", "/Docs/.DS_Store"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }

    // Renaming in Finder moves the file and its AppleDouble companion.
    for (from, to) in [
        ("/Docs/report.txt", "/Docs/final.txt"),
        ("/Docs/._report.txt", "/Docs/._final.txt"),
    ] {
        let resp = as_client(&server, FINDER, "MOVE", from)
            .header("Destination", format!("{}{to}", server.url))
            .header("Overwrite", "F")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{from}");
    }
    assert_eq!(get_body(&server, "/Docs/._final.txt").await.0, 200);
    assert_eq!(get_body(&server, "/Docs/final.txt").await.0, 200);
    assert_eq!(get_body(&server, "/Docs/report.txt").await.0, 404);
    assert_eq!(files_on_mediafire(&server), 1);

    // A chunked body that stops short of its announced length is refused
    // and leaves nothing behind.
    let resp = as_client(&server, FINDER, "PUT", "/Docs/short.bin")
        .header("X-Expected-Entity-Length", "1000")
        .body(chunked(&[7u8; 10], 5))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (status, _) = propfind_as(&server, FINDER, "/Docs/short.bin", "0", ALLPROP).await;
    assert_eq!(status, 404);
    assert_eq!(files_on_mediafire(&server), 1);
}

#[tokio::test]
async fn with_upload_apple_files_finder_files_go_to_mediafire() {
    let server = TestServer::start_with(Options {
        args: mediafire_dav::config::ServeArgs {
            upload_apple_files: true,
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    for name in ["._photo.jpg", ".DS_Store"] {
        let resp = as_client(&server, FINDER, "PUT", &format!("/{name}"))
            .header("X-Expected-Entity-Length", "4")
            .body(chunked(b"fork", 2))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{name}: {}", resp.status());
    }
    assert_eq!(
        files_on_mediafire(&server),
        2,
        "{}",
        server.emulator.stats()
    );
}

#[tokio::test]
async fn nfd_names_reach_the_nfc_entry_and_never_make_a_twin() {
    let server = TestServer::start().await;
    // Stored in NFC on MediaFire, asked for in NFD (what macOS sends).
    server.emulator.seed_file("/Caf\u{e9}.txt", b"stored nfc");
    server.emulator.seed_folder("/R\u{e9}sum\u{e9}");
    // And one stored in NFD (uploaded by some other client).
    server
        .emulator
        .seed_file("/Nai\u{308}ve.txt", b"stored nfd");
    let nfd_file = "/Cafe%CC%81.txt";
    let props = props_of(&server, FINDER, nfd_file).await;
    assert_eq!(props["getcontentlength"], "10");
    assert_eq!(
        get_body(&server, nfd_file).await,
        (200, b"stored nfc".to_vec())
    );
    let resp = as_client(&server, FINDER, "PUT", nfd_file)
        .header("X-Expected-Entity-Length", "7")
        .body(chunked(b"updated", 4))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "an update, not a new file");
    assert_eq!(
        get_body(&server, "/Caf%C3%A9.txt").await,
        (200, b"updated".to_vec())
    );
    let resp = as_client(&server, FINDER, "MKCOL", "/Re%CC%81sume%CC%81")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405, "the folder exists under its NFC name");

    // Stored in NFD, asked for in NFC.
    let resp = as_client(&server, WINDOWS, "PUT", "/Na%C3%AFve.txt")
        .body("replaced")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        get_body(&server, "/Nai%CC%88ve.txt").await,
        (200, b"replaced".to_vec())
    );

    // A MOVE onto a canonically equal name is onto the same entry.
    let resp = as_client(&server, FINDER, "COPY", "/Caf%C3%A9.txt")
        .header("Destination", format!("{}/Na%C3%AFve.txt", server.url))
        .header("Overwrite", "F")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412, "Overwrite: F onto an existing name");

    assert_eq!(
        files_on_mediafire(&server),
        2,
        "{}",
        server.emulator.stats()
    );
    let (_, found) = propfind_as(&server, FINDER, "/", "1", ALLPROP).await;
    let mut names: Vec<String> = found
        .iter()
        .map(|(h, _)| unicode_nfc(h))
        .filter(|h| h != "/")
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["/Caf\u{e9}.txt", "/Na\u{ef}ve.txt", "/R\u{e9}sum\u{e9}/"],
        "{found:?}"
    );
}

fn unicode_nfc(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfc().collect()
}

// ------------------------------------------------------- Windows Explorer

const WIN32_PATCH: &str = r#"<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32CreationTime>Mon, 13 Nov 2023 08:00:00 GMT</Z:Win32CreationTime><Z:Win32LastAccessTime>Wed, 15 Nov 2023 09:30:00 GMT</Z:Win32LastAccessTime><Z:Win32LastModifiedTime>Tue, 14 Nov 2023 22:13:20 GMT</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"#;

#[tokio::test]
async fn explorer_copy_ends_as_one_file_with_its_windows_mtime() {
    let server = TestServer::start().await;
    // Explorer's first request carries no credentials.
    let resp = server
        .anon("OPTIONS", "/")
        .header("User-Agent", WINDOWS)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    let path = "/Quarterly%20Report.docx";
    let (status, _) = propfind_as(&server, WINDOWS, path, "0", ALLPROP).await;
    assert_eq!(status, 404);
    let resp = as_client(&server, WINDOWS, "PUT", path)
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (status, token) = lock(&server, WINDOWS, path).await;
    assert_eq!(
        status, 200,
        "the 0-byte file exists, so this is a plain lock"
    );
    let resp = as_client(&server, WINDOWS, "PROPPATCH", path)
        .header("If", format!("({token})"))
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .body(WIN32_PATCH)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 207);
    let text = resp.text().await.unwrap();
    let statuses: Vec<&str> = text.matches("HTTP/1.1 ").collect();
    assert!(
        !statuses.is_empty() && !text.contains("HTTP/1.1 4"),
        "{text}"
    );
    let resp = as_client(&server, WINDOWS, "HEAD", path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content = pattern(300_000, 5);
    let resp = as_client(&server, WINDOWS, "PUT", path)
        .header("If", format!("({token})"))
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(unlock(&server, WINDOWS, path, &token).await, 204);

    // One file, under the original name, with the content.
    assert_eq!(files_on_mediafire(&server), 1);
    let (_, found) = propfind_as(&server, WINDOWS, "/", "1", ALLPROP).await;
    let names: Vec<&str> = found.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(names, ["/", "/Quarterly Report.docx"]);
    assert_eq!(get_body(&server, path).await, (200, content));

    // Win32LastModifiedTime became the modification time, everywhere.
    let want = "Tue, 14 Nov 2023 22:13:20 GMT";
    let props = props_of(&server, WINDOWS, path).await;
    assert_eq!(props["getlastmodified"], want, "{props:?}");
    let created = &props["creationdate"];
    assert!(
        created.len() == 20 && created.ends_with('Z') && !created.contains('.'),
        "creationdate must be RFC 3339 in whole seconds: {created}"
    );
    // An empty-body PROPFIND from Windows returns the Win32 set.
    let resp = as_client(&server, WINDOWS, "PROPFIND", path)
        .header("Depth", "0")
        .send()
        .await
        .unwrap();
    let win = responses(&resp.text().await.unwrap()).pop().unwrap().1;
    assert_eq!(win["Win32LastModifiedTime"], want, "{win:?}");
    assert_eq!(win["Win32FileAttributes"], "00000020");
    let resp = server.req("HEAD", path).send().await.unwrap();
    assert_eq!(resp.headers()["last-modified"], want);

    // And it survives a restart.
    let server = server.restart(Options::default()).await;
    let props = props_of(&server, WINDOWS, path).await;
    assert_eq!(props["getlastmodified"], want);
}

/// An empty file filled much later is modified when it is filled: only a
/// time a client gave the placeholder carries over to its content.
#[tokio::test]
async fn an_empty_file_filled_later_gets_the_time_of_the_write() {
    let server = TestServer::start().await;
    let resp = server
        .req("PUT", "/later.txt")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let empty_time = props_of(&server, DAVFS2, "/later.txt").await["getlastmodified"].clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = server
        .req("PUT", "/later.txt")
        .body("content")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let filled = props_of(&server, DAVFS2, "/later.txt").await["getlastmodified"].clone();
    let parse = |s: &str| chrono::DateTime::parse_from_rfc2822(s).unwrap();
    assert!(
        parse(&filled) > parse(&empty_time),
        "{empty_time} -> {filled}"
    );
}

#[tokio::test]
async fn explorer_proppatch_on_an_existing_file_sets_its_mtime() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/old.txt", b"old content");
    let resp = as_client(&server, WINDOWS, "PROPPATCH", "/old.txt")
        .body(WIN32_PATCH)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 207);
    let props = props_of(&server, WINDOWS, "/old.txt").await;
    assert_eq!(props["getlastmodified"], "Tue, 14 Nov 2023 22:13:20 GMT");

    // A PROPPATCH that fails as a whole (getlastmodified is protected) sets nothing.
    let mixed = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32LastModifiedTime>Sat, 01 Jan 2000 00:00:00 GMT</Z:Win32LastModifiedTime><D:getlastmodified>Sat, 01 Jan 2000 00:00:00 GMT</D:getlastmodified></D:prop></D:set></D:propertyupdate>"#;
    let resp = as_client(&server, WINDOWS, "PROPPATCH", "/old.txt")
        .body(mixed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 207);
    let props = props_of(&server, WINDOWS, "/old.txt").await;
    assert_eq!(props["getlastmodified"], "Tue, 14 Nov 2023 22:13:20 GMT");
}

#[tokio::test]
async fn explorer_overwrite_keeps_one_file_and_takes_the_new_times() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/Budget.xlsx", b"old sheet");
    let path = "/Budget.xlsx";
    let (status, token) = lock(&server, WINDOWS, path).await;
    assert_eq!(status, 200);
    let resp = as_client(&server, WINDOWS, "PUT", path)
        .header("If", format!("({token})"))
        .body("new sheet, longer")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = as_client(&server, WINDOWS, "PROPPATCH", path)
        .header("If", format!("({token})"))
        .body(WIN32_PATCH)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 207);
    assert_eq!(unlock(&server, WINDOWS, path, &token).await, 204);
    assert_eq!(files_on_mediafire(&server), 1);
    assert_eq!(
        get_body(&server, path).await,
        (200, b"new sheet, longer".to_vec())
    );
    let props = props_of(&server, WINDOWS, path).await;
    assert_eq!(props["getlastmodified"], "Tue, 14 Nov 2023 22:13:20 GMT");
    assert_eq!(props["getcontentlength"], "17");
}

// ----------------------------------------------------------------- davfs2

/// `If: <url> (<token>)`, as neon writes it for davfs2.
fn tagged_if(server: &TestServer, path: &str, token: &str) -> String {
    format!("<{}{path}> ({token})", server.url)
}

#[tokio::test]
async fn davfs2_lock_then_delayed_put_with_if_match() {
    let server = TestServer::start().await;
    server.emulator.seed_folder("/Documents");
    let path = "/Documents/new.txt";

    let (status, token) = lock(&server, DAVFS2, path).await;
    assert_eq!(status, 201);
    let resp = as_client(&server, DAVFS2, "HEAD", path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let placeholder_etag = resp.headers()["etag"].to_str().unwrap().to_string();

    // davfs2 uploads `delay_upload` seconds after close.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = as_client(&server, DAVFS2, "PUT", path)
        .header("If-Match", &placeholder_etag)
        .header("If", tagged_if(&server, path, &token))
        .body("hello davfs2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let etag1 = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(etag1, placeholder_etag);
    assert_eq!(unlock(&server, DAVFS2, path, &token).await, 204);

    // The cached copy is still good: 304.
    let resp = as_client(&server, DAVFS2, "GET", path)
        .header("If-None-Match", &etag1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);

    // Second edit: lock, PUT with If-Match on the current ETag.
    let (status, token) = lock(&server, DAVFS2, path).await;
    assert_eq!(status, 200);
    let resp = as_client(&server, DAVFS2, "PUT", path)
        .header("If-Match", &etag1)
        .header("If", tagged_if(&server, path, &token))
        .body("second version\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let etag2 = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(etag2, etag1);
    let modified = resp.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(unlock(&server, DAVFS2, path, &token).await, 204);

    // A PUT based on the old version is refused and changes nothing.
    let uploads = server.api_calls("upload/check") + server.api_calls("upload/instant");
    let resp = as_client(&server, DAVFS2, "PUT", path)
        .header("If-Match", &etag1)
        .body("stale writer\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412);
    assert_eq!(
        server.api_calls("upload/check") + server.api_calls("upload/instant"),
        uploads,
        "a refused PUT must not reach MediaFire"
    );
    assert_eq!(
        get_body(&server, path).await,
        (200, b"second version\n".to_vec())
    );

    // ETags and dates come from MediaFire's data and the state directory,
    // so a restarted server agrees with davfs2's cache.
    let server = server.restart(Options::default()).await;
    let resp = as_client(&server, DAVFS2, "GET", path)
        .header("If-None-Match", &etag2)
        .header("If-Modified-Since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    let resp = as_client(&server, DAVFS2, "HEAD", path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["etag"], etag2.as_str());
    assert_eq!(resp.headers()["last-modified"], modified.as_str());
}

#[tokio::test]
async fn a_rewritten_file_shows_a_new_modification_time() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/doc.txt", b"v1");
    let before = props_of(&server, DAVFS2, "/doc.txt").await["getlastmodified"].clone();
    // The seed's creation time and the rewrite may share a second; wait one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = as_client(&server, DAVFS2, "PUT", "/doc.txt")
        .body("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let after = props_of(&server, DAVFS2, "/doc.txt").await["getlastmodified"].clone();
    let parse = |s: &str| chrono::DateTime::parse_from_rfc2822(s).unwrap();
    assert!(parse(&after) > parse(&before), "{before} -> {after}");
}

// ----------------------------------------------------------------- rclone

#[tokio::test]
async fn rclone_x_oc_mtime_is_accepted_and_reported() {
    let server = TestServer::start().await;
    let resp = as_client(&server, RCLONE, "PUT", "/photo.jpg")
        .header("X-OC-Mtime", "1577934245")
        .header("Content-Type", "image/jpeg")
        .body(pattern(5000, 2))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-oc-mtime"], "accepted");
    let want = "Thu, 02 Jan 2020 03:04:05 GMT";
    assert_eq!(resp.headers()["last-modified"], want);
    let props = props_of(&server, RCLONE, "/photo.jpg").await;
    assert_eq!(props["getlastmodified"], want);

    // A later upload with a new time moves it; one without keeps none of the old.
    let resp = as_client(&server, RCLONE, "PUT", "/photo.jpg")
        .header("X-OC-Mtime", "1600000000")
        .body(pattern(5000, 3))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["x-oc-mtime"], "accepted");
    let props = props_of(&server, RCLONE, "/photo.jpg").await;
    assert_eq!(props["getlastmodified"], "Sun, 13 Sep 2020 12:26:40 GMT");

    // Garbage is not accepted (and not claimed to be).
    let resp = as_client(&server, RCLONE, "PUT", "/other.jpg")
        .header("X-OC-Mtime", "yesterday")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().get("x-oc-mtime").is_none());

    // MOVE keeps the time with the file; it survives a restart.
    let resp = server
        .req("MOVE", "/photo.jpg")
        .header("Destination", format!("{}/moved.jpg", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let server = server.restart(Options::default()).await;
    let props = props_of(&server, RCLONE, "/moved.jpg").await;
    assert_eq!(props["getlastmodified"], "Sun, 13 Sep 2020 12:26:40 GMT");
}

/// Newer rclone (`SetModTime` with vendor owncloud or nextcloud) sets a time
/// alone with a PROPPATCH of `{DAV:}lastmodified` in Unix seconds, and
/// wants one 200 propstat back.
#[tokio::test]
async fn rclone_set_mod_time_by_proppatch_of_dav_lastmodified() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/set.txt", b"x");
    let body = r#"<?xml version="1.0" encoding="utf-8" ?>
<D:propertyupdate xmlns:D="DAV:">
 <D:set>
  <D:prop>
   <lastmodified xmlns="DAV:">1600000000</lastmodified>
  </D:prop>
 </D:set>
</D:propertyupdate>
"#;
    let resp = as_client(&server, RCLONE, "PROPPATCH", "/set.txt")
        .header("Content-Type", "application/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 207);
    let text = resp.text().await.unwrap();
    let answer = responses(&text);
    assert_eq!(answer.len(), 1, "{text}");
    assert!(answer[0].1.contains_key("lastmodified"), "{text}");
    assert!(!text.contains("x-mediafire-dav"), "{text}");
    let props = props_of(&server, RCLONE, "/set.txt").await;
    assert_eq!(props["getlastmodified"], "Sun, 13 Sep 2020 12:26:40 GMT");

    // Not a dead property: allprop does not list it.
    assert!(!props.contains_key("lastmodified"), "{props:?}");

    // Under someone else's lock it is refused and changes nothing.
    let (status, _token) = lock(&server, DAVFS2, "/set.txt").await;
    assert_eq!(status, 200);
    let resp = as_client(&server, RCLONE, "PROPPATCH", "/set.txt")
        .body(body.replace("1600000000", "1500000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 423);
    let props = props_of(&server, RCLONE, "/set.txt").await;
    assert_eq!(props["getlastmodified"], "Sun, 13 Sep 2020 12:26:40 GMT");
}

/// rclone 1.60's `owncloud` vendor sends `X-OC-Mtime`; with it, `rclone
/// copy` keeps modification times and a second copy uploads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_owncloud_vendor_keeps_modification_times() {
    let rclone = require_tool("rclone");
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"first file\n").unwrap();
    std::fs::write(src.join("b.bin"), pattern(70_000, 4)).unwrap();
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_577_934_245);
    for name in ["a.txt", "b.bin"] {
        let f = std::fs::File::options()
            .write(true)
            .open(src.join(name))
            .unwrap();
        f.set_modified(old).unwrap();
    }
    let obscured = Command::new(&rclone)
        .args(["obscure", PASS])
        .output()
        .await
        .unwrap();
    let obscured = String::from_utf8(obscured.stdout)
        .unwrap()
        .trim()
        .to_string();
    let run = |args: Vec<String>| {
        let mut cmd = Command::new(&rclone);
        cmd.args(&args)
            .args(["--retries", "1", "--low-level-retries", "1"])
            .env("RCLONE_CONFIG", work.path().join("none.conf"))
            .env("RCLONE_CONFIG_T_TYPE", "webdav")
            .env("RCLONE_CONFIG_T_URL", format!("{}/", server.url))
            .env("RCLONE_CONFIG_T_VENDOR", "owncloud")
            .env("RCLONE_CONFIG_T_USER", USER)
            .env("RCLONE_CONFIG_T_PASS", &obscured);
        async move { cmd.output().await.unwrap() }
    };
    let show = |o: &std::process::Output| {
        format!(
            "{}\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let src_arg = src.display().to_string();
    let out = run(vec!["copy".into(), src_arg.clone(), "t:dst".into()]).await;
    assert!(out.status.success(), "{}", show(&out));

    let out = run(vec!["lsl".into(), "t:dst".into()]).await;
    assert!(out.status.success(), "{}", show(&out));
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    for name in ["a.txt", "b.bin"] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {listing}"));
        assert!(line.contains("2020-01-02 03:04:05"), "{line}");
    }

    // Sizes and times match: nothing to transfer the second time.
    let uploads = server.api_calls("upload/check");
    let out = run(vec!["copy".into(), src_arg, "t:dst".into(), "-v".into()]).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        server.api_calls("upload/check"),
        uploads,
        "second copy re-uploaded: {}",
        show(&out)
    );
}

// ------------------------------------------------- behind a reverse proxy

/// The proxy forwards `https://files.example.com/dav/...` to the server's
/// `/dav/...` (with its own Host), and clients write the public URL into
/// `Destination`.
#[tokio::test]
async fn destinations_on_the_public_url_work_behind_a_proxy() {
    let options = Options {
        args: mediafire_dav::config::ServeArgs {
            public_url: Some("https://files.example.com/dav".into()),
            ..Default::default()
        },
        ..Options::default()
    };
    let server = TestServer::start_with(options).await;
    let public = "https://files.example.com/dav";
    let resp = server
        .req("PUT", "/dav/a.txt")
        .body("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "the public path is the prefix");

    let resp = as_client(&server, FINDER, "MOVE", "/dav/a.txt")
        .header("Destination", format!("{public}/b%20%23c.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        get_body(&server, "/dav/b%20%23c.txt").await,
        (200, b"alpha".to_vec())
    );
    let resp = as_client(&server, WINDOWS, "COPY", "/dav/b%20%23c.txt")
        .header("Destination", format!("{public}/copy.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Straight to the server, bypassing the proxy, works too.
    let resp = server
        .req("MOVE", "/dav/copy.txt")
        .header("Destination", format!("{}/dav/direct.txt", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Another server is refused, and nothing moves.
    let resp = server
        .req("MOVE", "/dav/direct.txt")
        .header(
            "Destination",
            "https://elsewhere.example.net/dav/stolen.txt",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        get_body(&server, "/dav/direct.txt").await,
        (200, b"alpha".to_vec())
    );

    let (status, found) = propfind_as(&server, DAVFS2, "/dav/", "1", ALLPROP).await;
    assert_eq!(status, 207);
    let mut names: Vec<&str> = found.iter().map(|(h, _)| h.as_str()).collect();
    names.sort();
    assert_eq!(names, ["/dav/", "/dav/b #c.txt", "/dav/direct.txt"]);

    // The browser listing's links stay under the public path.
    let page = server
        .req("GET", "/dav/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<a href=\"/dav/b%20%23c.txt\">b #c.txt</a>"),
        "{page}"
    );
    assert!(page.contains("<a href=\"/dav/\">/dav</a>"), "{page}");
}
