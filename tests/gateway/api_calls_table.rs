//! The README's table of MediaFire API calls per WebDAV request, measured.
//!
//! Each row is one request, run twice against the emulator and counted from
//! its `stats()`:
//! - *cold*: on a freshly started server (logged in, nothing cached), after
//!   the row's set-up, if any;
//! - *warm*: right after, on the same server: the same request again, or,
//!   where the first one changed its target (PUT, MKCOL, MOVE, COPY, DELETE,
//!   LOCK) or read a new file (GET, HEAD), the same request on a sibling.
//!
//! The rendered table must equal the one between `<!-- api-calls:begin -->`
//! and `<!-- api-calls:end -->` in README.md. `UPDATE_README=1 cargo test
//! --test gateway api_calls_table` rewrites it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::TestServer;

const BEGIN: &str = "<!-- api-calls:begin -->";
const END: &str = "<!-- api-calls:end -->";

/// One row of the table.
#[derive(Clone, Copy, Debug)]
enum Op {
    PropfindDepth0,
    PropfindDepth1,
    PropfindMissing,
    Get,
    GetAgain,
    Head,
    PutNew,
    PutOverwrite,
    PutEmpty,
    Mkcol,
    MoveFile,
    MoveFolder,
    CopyFile,
    DeleteFile,
    DeleteFolder,
    LockUnlock,
    Proppatch,
}

const OPS: [Op; 17] = [
    Op::PropfindDepth0,
    Op::PropfindDepth1,
    Op::PropfindMissing,
    Op::Get,
    Op::GetAgain,
    Op::Head,
    Op::PutNew,
    Op::PutOverwrite,
    Op::PutEmpty,
    Op::Mkcol,
    Op::MoveFile,
    Op::MoveFolder,
    Op::CopyFile,
    Op::DeleteFile,
    Op::DeleteFolder,
    Op::LockUnlock,
    Op::Proppatch,
];

impl Op {
    /// The table's first column.
    fn label(self) -> &'static str {
        match self {
            Op::PropfindDepth0 => "`PROPFIND` folder, `Depth: 0`",
            Op::PropfindDepth1 => "`PROPFIND` folder, `Depth: 1`",
            Op::PropfindMissing => "`PROPFIND` missing `._x` (Finder probe)",
            Op::Get => "`GET` small file",
            Op::GetAgain => "`GET` the same file again",
            Op::Head => "`HEAD` file",
            Op::PutNew => "`PUT` new small file",
            Op::PutOverwrite => "`PUT` over an existing file",
            Op::PutEmpty => "`PUT` 0 bytes",
            Op::Mkcol => "`MKCOL`",
            Op::MoveFile => "`MOVE` file (rename in place)",
            Op::MoveFolder => "`MOVE` folder (to another folder)",
            Op::CopyFile => "`COPY` file (to another folder)",
            Op::DeleteFile => "`DELETE` file",
            Op::DeleteFolder => "`DELETE` folder (with a file in it)",
            Op::LockUnlock => "`LOCK` + `UNLOCK` file",
            Op::Proppatch => "`PROPPATCH` file",
        }
    }
}

/// What the account holds before the server starts; names carry the round
/// (0 = cold, 1 = warm) where a round needs its own target.
fn seed(server: &TestServer) {
    let e = &server.emulator;
    e.seed_folder("/other");
    for r in 0..2 {
        e.seed_file(
            &format!("/docs/file{r}.txt"),
            format!("file {r}").as_bytes(),
        );
        e.seed_file(&format!("/docs/over{r}.txt"), b"old content");
        e.seed_file(&format!("/docs/mv{r}.txt"), b"move me");
        e.seed_file(&format!("/docs/cp{r}.txt"), b"copy me");
        e.seed_file(&format!("/docs/del{r}.txt"), b"delete me");
        e.seed_file(&format!("/docs/lock{r}.txt"), b"lock me");
        e.seed_file(&format!("/docs/prop{r}.txt"), b"props");
        e.seed_file(&format!("/docs/dir{r}/inside.txt"), b"inside");
        e.seed_file(&format!("/docs/deldir{r}/inside.txt"), b"inside");
    }
}

fn propfind_body() -> &'static str {
    r#"<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>"#
}

/// Runs `op` for round `r` and checks its status.
async fn run(server: &TestServer, op: Op, r: u32) {
    let dest = |p: String| format!("{}{}", server.url, p);
    let req = match op {
        Op::PropfindDepth0 | Op::PropfindDepth1 => server
            .req("PROPFIND", "/docs/")
            .header(
                "Depth",
                if matches!(op, Op::PropfindDepth0) {
                    "0"
                } else {
                    "1"
                },
            )
            .body(propfind_body()),
        Op::PropfindMissing => server
            .req("PROPFIND", "/docs/._x")
            .header("Depth", "0")
            .body(propfind_body()),
        Op::Get | Op::Head => server.req(
            if matches!(op, Op::Get) { "GET" } else { "HEAD" },
            &format!("/docs/file{r}.txt"),
        ),
        Op::GetAgain => server.req("GET", "/docs/file0.txt"),
        // Content the account has never seen, so no instant upload.
        Op::PutNew => server
            .req("PUT", &format!("/docs/new{r}.txt"))
            .body(format!("new file, round {r}")),
        Op::PutOverwrite => server
            .req("PUT", &format!("/docs/over{r}.txt"))
            .body(format!("new content, round {r}")),
        Op::PutEmpty => server.req("PUT", &format!("/docs/empty{r}.txt")),
        Op::Mkcol => server.req("MKCOL", &format!("/docs/made{r}/")),
        Op::MoveFile => server
            .req("MOVE", &format!("/docs/mv{r}.txt"))
            .header("Destination", dest(format!("/docs/moved{r}.txt"))),
        Op::MoveFolder => server
            .req("MOVE", &format!("/docs/dir{r}/"))
            .header("Destination", dest(format!("/other/dir{r}/"))),
        Op::CopyFile => server
            .req("COPY", &format!("/docs/cp{r}.txt"))
            .header("Destination", dest(format!("/other/cp{r}.txt"))),
        Op::DeleteFile => server.req("DELETE", &format!("/docs/del{r}.txt")),
        Op::DeleteFolder => server.req("DELETE", &format!("/docs/deldir{r}/")),
        Op::LockUnlock => {
            let path = format!("/docs/lock{r}.txt");
            let lock = server
                .req("LOCK", &path)
                .header("Timeout", "Second-60")
                .body(
                    r#"<?xml version="1.0"?><lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope><locktype><write/></locktype><owner>t</owner></lockinfo>"#,
                )
                .send()
                .await
                .unwrap();
            assert_eq!(lock.status(), 200, "{op:?} round {r}: LOCK");
            let token = lock.headers()["lock-token"].to_str().unwrap().to_string();
            server.req("UNLOCK", &path).header("Lock-Token", token)
        }
        Op::Proppatch => server
            .req("PROPPATCH", &format!("/docs/prop{r}.txt"))
            .body(
                r#"<?xml version="1.0"?><propertyupdate xmlns="DAV:" xmlns:z="urn:example"><set><prop><z:color>blue</z:color></prop></set></propertyupdate>"#,
            ),
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let expected: &[u16] = match op {
        Op::PropfindDepth0 | Op::PropfindDepth1 | Op::Proppatch => &[207],
        Op::PropfindMissing => &[404],
        Op::Get | Op::GetAgain | Op::Head => &[200],
        Op::PutNew | Op::PutEmpty | Op::Mkcol | Op::MoveFolder | Op::CopyFile => &[201],
        Op::PutOverwrite | Op::DeleteFile | Op::DeleteFolder | Op::LockUnlock => &[204],
        Op::MoveFile => &[201],
    };
    let body = resp.text().await.unwrap_or_default();
    assert!(
        expected.contains(&status),
        "{op:?} round {r}: status {status}: {body}"
    );
}

/// API calls per action.
type Counts = BTreeMap<String, u64>;

/// API calls per action since the last reset.
fn counts(server: &TestServer) -> Counts {
    server.emulator.stats()["api_calls"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default()
}

/// `3`, or `0`.
fn total(c: &Counts) -> u64 {
    c.values().sum()
}

/// `2× folder/get_content, device/get_status`, or `—`.
fn breakdown(c: &Counts) -> String {
    if c.is_empty() {
        return "—".to_string();
    }
    c.iter()
        .map(|(action, n)| {
            if *n == 1 {
                format!("`{action}`")
            } else {
                format!("{n}× `{action}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Cold and warm counts of one row.
async fn measure(op: Op) -> (Counts, Counts) {
    let server = TestServer::start().await;
    seed(&server);
    if matches!(op, Op::GetAgain) {
        // The first read of the file is the set-up, not the measure.
        run(&server, Op::Get, 0).await;
    }
    server.emulator.reset_stats();
    run(&server, op, 0).await;
    let cold = counts(&server);
    server.emulator.reset_stats();
    run(&server, op, 1).await;
    let warm = counts(&server);
    (cold, warm)
}

fn render(rows: &[(Op, Counts, Counts)]) -> String {
    let mut out = String::from(
        "| WebDAV request | Cold | Warm | Calls, cold | Calls, warm |\n\
         |---|--:|--:|---|---|\n",
    );
    for (op, cold, warm) in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            op.label(),
            total(cold),
            total(warm),
            breakdown(cold),
            breakdown(warm)
        ));
    }
    out
}

/// `readme` with the text between the markers replaced by `table`.
fn with_table(readme: &str, table: &str) -> Option<String> {
    let start = readme.find(BEGIN)? + BEGIN.len();
    let end = start + readme[start..].find(END)?;
    Some(format!("{}\n{}{}", &readme[..start], table, &readme[end..]))
}

#[tokio::test]
async fn the_readme_table_of_api_calls_per_request_is_current() {
    let mut rows = Vec::new();
    for op in OPS {
        let (cold, warm) = measure(op).await;
        rows.push((op, cold, warm));
    }
    let table = render(&rows);
    eprintln!("{table}");

    // The promises of issue 4, whatever the README says.
    let row = |op: fn(&Op) -> bool| rows.iter().find(|(o, _, _)| op(o)).unwrap();
    assert_eq!(total(&row(|o| matches!(o, Op::PropfindDepth1)).2), 0);
    assert_eq!(total(&row(|o| matches!(o, Op::PropfindMissing)).2), 0);
    assert_eq!(total(&row(|o| matches!(o, Op::GetAgain)).1), 0);
    assert_eq!(total(&row(|o| matches!(o, Op::Head)).2), 0);

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let updated = with_table(&readme, &table)
        .unwrap_or_else(|| panic!("README.md has no {BEGIN} … {END} section"));
    if std::env::var_os("UPDATE_README").is_some_and(|v| v == "1") {
        if updated != readme {
            std::fs::write(&path, updated).unwrap();
            eprintln!("README.md: table of API calls updated");
        }
        return;
    }
    assert!(
        updated == readme,
        "README.md's table of API calls is stale; regenerate it with \
         `UPDATE_README=1 cargo test --test gateway api_calls_table`. Measured:\n{table}"
    );
}
