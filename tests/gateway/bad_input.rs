//! Hostile and malformed requests, one table row each, with the status the
//! gateway must answer. None may panic, none may answer 5xx (the one
//! exception is named in its row), and the server must be healthy after the
//! whole table.
//!
//! Requests are written on a raw TCP socket: an HTTP client library would
//! normalise `..`, re-encode invalid UTF-8 or refuse odd headers, and those
//! are exactly the inputs under test.

use std::time::Duration;

use base64::Engine;
use mediafire_dav::config::ServeArgs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{Options, PASS, TestServer, USER};

/// One request of the table.
pub struct Row {
    pub name: &'static str,
    pub method: &'static str,
    /// The raw request target, sent byte for byte.
    pub target: Vec<u8>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub body: Vec<u8>,
    pub expect: u16,
    /// Text the answer must contain (the rule it names).
    pub says: Option<&'static str>,
}

fn row(name: &'static str, method: &'static str, target: &str, expect: u16) -> Row {
    Row {
        name,
        method,
        target: target.as_bytes().to_vec(),
        headers: Vec::new(),
        body: Vec::new(),
        expect,
        says: None,
    }
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let headers: Vec<(&str, String)> =
            self.headers.iter().map(|(n, v)| (*n, text(v))).collect();
        f.debug_struct("Row")
            .field("method", &self.method)
            .field("target", &text(&self.target))
            .field("headers", &headers)
            .field("body", &text(&self.body))
            .finish()
    }
}

impl Row {
    fn header(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Row {
        self.headers.push((name, value.as_ref().to_vec()));
        self
    }

    fn body(mut self, body: impl AsRef<[u8]>) -> Row {
        self.body = body.as_ref().to_vec();
        self
    }

    fn says(mut self, text: &'static str) -> Row {
        self.says = Some(text);
        self
    }

    fn xml(self, body: impl AsRef<[u8]>) -> Row {
        self.header("Content-Type", "application/xml").body(body)
    }
}

/// Sends `row` on a fresh connection with valid credentials and returns the
/// status and body of the answer.
pub async fn send_raw(server: &TestServer, row: &Row) -> (u16, String) {
    let mut req = Vec::new();
    req.extend_from_slice(row.method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(&row.target);
    req.extend_from_slice(b" HTTP/1.1\r\n");
    let host = server.addr.to_string();
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    let mut head = vec![
        ("Host", host.into_bytes()),
        ("Authorization", format!("Basic {creds}").into_bytes()),
        ("Connection", b"close".to_vec()),
    ];
    head.extend(row.headers.iter().cloned());
    let chunked = row
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    if !row.body.is_empty() && !chunked {
        head.push(("Content-Length", row.body.len().to_string().into_bytes()));
    }
    for (name, value) in head {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(&row.body);

    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // The server may answer before reading the whole body; a write error
    // after that is fine, the answer is what counts.
    let _ = stream.write_all(&req).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer));
    match read.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if !answer.is_empty() => {
            // a reset after the answer arrived
            let _ = e;
        }
        Ok(Err(e)) => panic!("{}: connection failed without an answer: {e}", row.name),
        Err(_) => panic!("{}: no answer within 60 s", row.name),
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{}: not an HTTP answer: {text:?}", row.name));
    (status, text)
}

/// Runs every row and reports all mismatches at once.
async fn run_table(server: &TestServer, rows: &[Row]) {
    let mut wrong = Vec::new();
    for row in rows {
        let (status, text) = send_raw(server, row).await;
        let says_ok = row.says.is_none_or(|t| text.contains(t));
        // Nothing of the account outside the request's target, nor of the
        // server's own files, may leak into an answer.
        for leak in ["root:x:0", "top secret"] {
            assert!(
                !text.contains(leak),
                "{}: answer leaks {leak:?}: {text}",
                row.name
            );
        }
        if status != row.expect || !says_ok {
            let head: String = text.lines().next().unwrap_or("").to_string();
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
            let head = format!("{head} | {}", body.chars().take(200).collect::<String>());
            wrong.push(format!(
                "{}: expected {}, got {status}\n  {head}",
                row.name, row.expect
            ));
        }
        let health = server.anon("GET", "/healthz").send().await;
        assert!(
            health.is_ok_and(|r| r.status() == 200),
            "{}: server unhealthy afterwards",
            row.name
        );
    }
    assert!(
        wrong.is_empty(),
        "{} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// `depth` levels of entities, each expanding to ten of the previous.
fn entity_bomb(root: &str, depth: usize) -> String {
    let mut dtd = String::from("<!ENTITY e0 \"lollollollol\">");
    for i in 1..=depth {
        let refs: String = (0..10).map(|_| format!("&e{};", i - 1)).collect();
        dtd.push_str(&format!("<!ENTITY e{i} \"{refs}\">"));
    }
    format!(
        "<?xml version=\"1.0\"?><!DOCTYPE {root} [{dtd}]><D:{root} xmlns:D=\"DAV:\">\
         <D:prop><D:displayname>&e{depth};</D:displayname></D:prop></D:{root}>"
    )
}

/// An external entity pointing at a local file.
fn external_entity(root: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><!DOCTYPE {root} [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
         <D:{root} xmlns:D=\"DAV:\"><D:prop><D:displayname>&x;</D:displayname></D:prop></D:{root}>"
    )
}

/// A well-formed PROPFIND of more than 1 MiB.
fn huge_propfind() -> String {
    let mut props = String::new();
    while props.len() < (1 << 20) + 1024 {
        props.push_str(&format!("<Z:p{} xmlns:Z=\"urn:z\"/>", props.len()));
    }
    format!(
        "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>{props}</D:prop></D:propfind>"
    )
}

fn deep_xml(depth: usize) -> String {
    let open: String = (0..depth).map(|_| "<D:x>").collect();
    let close: String = (0..depth).map(|_| "</D:x>").collect();
    format!(
        "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
         <Z:deep xmlns:Z=\"urn:z\">{open}{close}</Z:deep></D:prop></D:set></D:propertyupdate>"
    )
}

const LOCKINFO: &str = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\">\
    <D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>\
    <D:owner>me</D:owner></D:lockinfo>";

fn rows(server: &TestServer) -> Vec<Row> {
    let here = |p: &str| format!("http://{}{p}", server.addr);
    let deep = |n: usize| format!("/{}", "a/".repeat(n));
    vec![
        // --- XML bodies ---
        row("PROPFIND malformed XML", "PROPFIND", "/d/", 400)
            .header("Depth", "1")
            .xml("<D:propfind xmlns:D=\"DAV:\"><D:prop>"),
        row("PROPFIND not XML at all", "PROPFIND", "/d/", 400)
            .header("Depth", "1")
            .xml([0xff, 0xfe, 0x00, 0x3c]),
        row("PROPFIND entity expansion", "PROPFIND", "/d/", 400)
            .header("Depth", "0")
            .xml(entity_bomb("propfind", 8)),
        // xml-rs never reads external entities: the prop is just unknown.
        row("PROPFIND external entity", "PROPFIND", "/d/", 207)
            .header("Depth", "0")
            .xml(external_entity("propfind")),
        // dav-server reads at most 64 KiB of an XML body.
        row("PROPFIND body over 1 MiB", "PROPFIND", "/d/", 413)
            .header("Depth", "0")
            .xml(huge_propfind()),
        row("PROPFIND wrong root element", "PROPFIND", "/d/", 400)
            .header("Depth", "0")
            .xml("<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"/>"),
        // dav-server reads an unknown Depth as 0.
        row("PROPFIND Depth banana", "PROPFIND", "/d/", 207).header("Depth", "banana"),
        row("PROPPATCH malformed XML", "PROPPATCH", "/d/f.txt", 400)
            .xml("<D:propertyupdate xmlns:D=\"DAV:\"><D:set>"),
        row("PROPPATCH entity expansion", "PROPPATCH", "/d/f.txt", 400)
            .xml(entity_bomb("propertyupdate", 8)),
        row("PROPPATCH external entity", "PROPPATCH", "/d/f.txt", 207)
            .xml(external_entity("propertyupdate")),
        row("PROPPATCH 10000-deep nesting", "PROPPATCH", "/d/f.txt", 413).xml(deep_xml(10_000)),
        row(
            "PROPPATCH 5000-deep nesting under 64 KiB",
            "PROPPATCH",
            "/d/f.txt",
            400,
        )
        .xml(deep_xml(5_000)),
        row("LOCK malformed XML", "LOCK", "/d/f.txt", 400).xml("<D:lockinfo xmlns:D=\"DAV:\">"),
        row("LOCK entity expansion", "LOCK", "/d/f.txt", 400).xml(entity_bomb("lockinfo", 8)),
        row("LOCK with a bad Timeout", "LOCK", "/d/locked.txt", 200)
            .header("Timeout", "Second-banana, Infinite-x")
            .xml(LOCKINFO),
        // dav-server answers a Lock-Token that matches no lock with 409.
        row(
            "UNLOCK with a garbage Lock-Token",
            "UNLOCK",
            "/d/f.txt",
            409,
        )
        .header("Lock-Token", "not-a-token"),
        // --- request paths ---
        row("GET .. above the root", "GET", "/../../etc/passwd", 403),
        row(
            "GET %2e%2e above the root",
            "GET",
            "/%2e%2e/%2e%2e/etc/passwd",
            403,
        ),
        row(
            "GET %2E%2E mixed case",
            "GET",
            "/d/%2E%2E/%2E%2E/etc/passwd",
            403,
        ),
        row("GET .. inside the tree", "GET", "/d/../d/f.txt", 200),
        row(
            "GET %2f-encoded slash",
            "GET",
            "/d%2f..%2f..%2fetc%2fpasswd",
            400,
        ),
        row(
            "GET backslash traversal",
            "GET",
            "/d/..\\..\\secret.txt",
            404,
        ),
        row("PUT .. above the root", "PUT", "/../escape.txt", 403).body("x"),
        row(
            "PUT %2e%2e above the root",
            "PUT",
            "/%2e%2e/escape.txt",
            403,
        )
        .body("x"),
        row("GET invalid UTF-8 %ff", "GET", "/d/%ff%fe.txt", 403),
        row("PUT invalid UTF-8 %c3%28", "PUT", "/d/%c3%28.txt", 403).body("x"),
        row("MKCOL invalid UTF-8", "MKCOL", "/d/%80dir/", 403),
        row("GET NUL byte", "GET", "/d/a%00b.txt", 400),
        row("GET raw non-ASCII bytes", "GET", "/d/caf\u{e9}.txt", 400),
        row("GET with a fragment", "GET", "/d/f.txt#frag", 200),
        row("GET absolute-form target", "GET", &here("/d/f.txt"), 200),
        // MediaFire nests folders 130 deep: deeper paths cannot exist, and
        // resolving them recursed once per segment.
        row("PROPFIND 131 levels deep", "PROPFIND", &deep(131), 404).header("Depth", "1"),
        row("GET 4096 levels deep", "GET", &deep(4096), 414),
        row(
            "PUT 4096 levels deep",
            "PUT",
            &format!("{}x", deep(4096)),
            414,
        )
        .body("x"),
        // --- names MediaFire rejects: 400 naming the rule ---
        row("PUT name with a backslash", "PUT", "/d/a%5Cb.txt", 400)
            .body("x")
            .says("must not contain `/` or `\\`"),
        row(
            "PUT name with a control character",
            "PUT",
            "/d/a%01b.txt",
            400,
        )
        .body("x")
        .says("control characters"),
        row(
            "PUT name of 256 characters",
            "PUT",
            &format!("/d/{}", "n".repeat(256)),
            400,
        )
        .body("x")
        .says("at most 255 characters"),
        row(
            "MKCOL name with a control character",
            "MKCOL",
            "/d/bad%07dir/",
            400,
        )
        .says("control characters"),
        row("LOCK a name with a tab", "LOCK", "/d/a%09b.txt", 400).xml(LOCKINFO),
        row(
            "PUT a 255-character name is fine",
            "PUT",
            &format!("/d/{}", "n".repeat(255)),
            201,
        )
        .body("x"),
        // --- Destination ---
        row(
            "MOVE Destination .. above the root",
            "MOVE",
            "/d/f.txt",
            400,
        )
        .header("Destination", here("/../../etc/x"))
        .says("`..`"),
        row(
            "MOVE Destination %2e%2e above the root",
            "MOVE",
            "/d/f.txt",
            400,
        )
        .header("Destination", here("/%2e%2e/%2e%2e/x")),
        row("COPY Destination %2E inside", "COPY", "/d/f.txt", 400)
            .header("Destination", here("/d/%2E/g.txt")),
        row("COPY Destination invalid UTF-8", "COPY", "/d/f.txt", 403)
            .header("Destination", here("/d/%ff.txt")),
        row("COPY Destination not a URL", "COPY", "/d/f.txt", 400).header("Destination", ":::"),
        row(
            "COPY Destination with a backslash name",
            "COPY",
            "/d/f.txt",
            400,
        )
        .header("Destination", here("/d/a%5Cb.txt")),
        row("MOVE Destination 4096 levels deep", "MOVE", "/d/f.txt", 414)
            .header("Destination", here(&format!("{}x", deep(4096)))),
        // The host part of a Destination is not compared with ours: behind
        // a reverse proxy the Host header rarely matches what the client
        // sees, so the path alone decides (as in dav-server).
        row("MOVE Destination on another host", "MOVE", "/d/f.txt", 201)
            .header("Destination", "http://example.invalid/d/g.txt"),
        row("MOVE it back", "MOVE", "/d/g.txt", 201).header("Destination", here("/d/f.txt")),
        row("MOVE Destination onto itself", "MOVE", "/d/f.txt", 403)
            .header("Destination", here("/d/f.txt")),
        // dav-server reads an Overwrite other than F as T.
        row("MOVE with a bad Overwrite", "MOVE", "/d/f.txt", 201)
            .header("Destination", here("/d/g.txt"))
            .header("Overwrite", "maybe"),
        row("MOVE it back again", "MOVE", "/d/g.txt", 201).header("Destination", here("/d/f.txt")),
        // --- Range ---
        row("GET Range not bytes", "GET", "/d/f.txt", 200).header("Range", "items=0-1"),
        row("GET Range garbage", "GET", "/d/f.txt", 200).header("Range", "bytes=abc"),
        // dav-server answers an inverted range with 416 rather than ignoring it.
        row("GET Range reversed", "GET", "/d/f.txt", 416).header("Range", "bytes=5-1"),
        row("GET Range past the end", "GET", "/d/f.txt", 416).header("Range", "bytes=999999-"),
        row("GET Range huge numbers", "GET", "/d/f.txt", 200)
            .header("Range", "bytes=99999999999999999999999-"),
        row("GET Range suffix of zero", "GET", "/d/f.txt", 416).header("Range", "bytes=-0"),
        row("GET Range many parts", "GET", "/d/f.txt", 206)
            .header("Range", format!("bytes={}", "0-0,".repeat(500) + "1-1")),
        // --- If and friends ---
        // dav-server ignores an If header it cannot parse, and a lock token
        // that names no lock on an unlocked resource.
        row("PUT If garbage", "PUT", "/d/f.txt", 204)
            .header("If", "garbage (((")
            .body("x"),
        row("PUT If unknown lock token", "PUT", "/d/f.txt", 204)
            .header(
                "If",
                "(<opaquelocktoken:00000000-0000-0000-0000-000000000000>)",
            )
            .body("y"),
        row(
            "PUT on a locked file with an unknown token",
            "PUT",
            "/d/locked.txt",
            412,
        )
        .header(
            "If",
            "(<opaquelocktoken:00000000-0000-0000-0000-000000000000>)",
        )
        .body("z"),
        row(
            "DELETE a locked file without its token",
            "DELETE",
            "/d/locked.txt",
            423,
        ),
        row("DELETE If-Match mismatch", "DELETE", "/d/f.txt", 412).header("If-Match", "\"nope\""),
        row("GET If-None-Match *", "GET", "/d/f.txt", 304).header("If-None-Match", "*"),
        row("GET If-Modified-Since garbage", "GET", "/d/f.txt", 200)
            .header("If-Modified-Since", "yesterday-ish"),
        row("GET header value with high bytes", "GET", "/d/f.txt", 200)
            .header("X-Junk", [0x80, 0xff, b'a']),
        // --- bodies and methods ---
        // Finder's announced length, with a chunked body that ends short.
        row(
            "PUT chunked body shorter than announced",
            "PUT",
            "/d/short.txt",
            400,
        )
        .header("Transfer-Encoding", "chunked")
        .header("X-Expected-Entity-Length", "100")
        .body("10\r\nonly a few bytes\r\n0\r\n\r\n"),
        row("PUT with Content-Range", "PUT", "/d/f.txt", 501)
            .header("Content-Range", "bytes 0-0/5")
            .body("x"),
        row("PATCH", "PATCH", "/d/f.txt", 405).body("x"),
        // RFC 9110 §9.1: an unrecognised method SHOULD get 501.
        row("unknown method", "BREW", "/d/f.txt", 501),
    ]
}

async fn seeded_server(args: ServeArgs) -> TestServer {
    let server = TestServer::start_with(Options {
        args,
        ..Options::default()
    })
    .await;
    server.emulator.seed_file("/d/f.txt", b"hello world");
    server
        .emulator
        .seed_file("/d/locked.txt", b"locked by a row");
    server.emulator.seed_file("/secret.txt", b"top secret");
    server
}

#[tokio::test]
async fn hostile_requests_get_the_expected_status() {
    let server = seeded_server(ServeArgs::default()).await;
    run_table(&server, &rows(&server)).await;
    // Nothing escaped: the tree holds what was seeded, nothing more (the
    // refused writes left nothing behind).
    let tree = crate::faults::tree_of(&server.emulator.tree());
    let long = format!("/d/{}", "n".repeat(255));
    let paths: Vec<&str> = tree.keys().map(String::as_str).collect();
    let expected = [
        "/d",
        "/d/f.txt",
        "/d/locked.txt",
        long.as_str(),
        "/secret.txt",
    ];
    assert_eq!(paths, expected, "{tree:?}");
}

#[tokio::test]
async fn read_only_refuses_every_mutation_with_403() {
    let server = seeded_server(ServeArgs {
        read_only: true,
        ..ServeArgs::default()
    })
    .await;
    let here = |p: &str| format!("http://{}{p}", server.addr);
    let table = vec![
        row("read-only PUT", "PUT", "/d/new.txt", 403).body("x"),
        row("read-only PUT over a file", "PUT", "/d/f.txt", 403).body("x"),
        row("read-only DELETE", "DELETE", "/d/f.txt", 403),
        row("read-only MKCOL", "MKCOL", "/d/new/", 403),
        row("read-only COPY", "COPY", "/d/f.txt", 403).header("Destination", here("/d/c.txt")),
        row("read-only MOVE", "MOVE", "/d/f.txt", 403).header("Destination", here("/d/m.txt")),
        row("read-only PROPPATCH", "PROPPATCH", "/d/f.txt", 403).xml(
            "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
             <Z:a xmlns:Z=\"urn:z\">1</Z:a></D:prop></D:set></D:propertyupdate>",
        ),
        row("read-only LOCK", "LOCK", "/d/f.txt", 403).xml(LOCKINFO),
        row("read-only UNLOCK", "UNLOCK", "/d/f.txt", 403).header("Lock-Token", "<x>"),
        row("read-only PATCH", "PATCH", "/d/f.txt", 403).body("x"),
        row("read-only GET still works", "GET", "/d/f.txt", 200),
        row("read-only PROPFIND still works", "PROPFIND", "/d/", 207).header("Depth", "1"),
        row("read-only OPTIONS still works", "OPTIONS", "/d/", 200),
    ];
    server.emulator.reset_stats();
    run_table(&server, &table).await;
    let stats = server.emulator.stats();
    for action in [
        "upload/check",
        "file/delete",
        "folder/create",
        "file/copy",
        "file/move",
    ] {
        assert_eq!(
            stats["api_calls"][action],
            serde_json::Value::Null,
            "{action}: {stats}"
        );
    }
}
