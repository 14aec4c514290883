//! Real WebDAV clients as oracles: litmus (the conformance suite) and rclone
//! (as a `webdav` remote) against the server backed by the emulator.

use std::path::{Path, PathBuf};
use std::process::Output;

use mediafire_dav::emulator::EmulatorConfig;
use tokio::process::Command;

use crate::util::{Options, PASS, TestServer, USER, require_tool};

fn show(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litmus_passes_all_five_suites() {
    let litmus = require_tool("litmus");
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let output = Command::new(litmus)
        .arg(format!("{}/", server.url))
        .arg(USER)
        .arg(PASS)
        .env("TESTS", "basic copymove props locks http")
        .current_dir(work.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines().filter(|l| l.contains("summary for")) {
        println!("{line}");
    }
    let summaries = stdout.lines().filter(|l| l.contains("summary for")).count();
    assert_eq!(summaries, 5, "{}", show(&output));
    assert!(output.status.success(), "{}", show(&output));
    assert!(!stdout.contains("FAIL"), "{}", show(&output));
}

/// rclone against `server`, configured through the environment only.
struct Rclone {
    bin: PathBuf,
    url: String,
    obscured: String,
    config_dir: tempfile::TempDir,
}

impl Rclone {
    async fn new(server: &TestServer) -> Rclone {
        let bin = require_tool("rclone");
        let out = Command::new(&bin)
            .args(["obscure", PASS])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
        Rclone {
            bin,
            url: format!("{}/", server.url),
            obscured: String::from_utf8(out.stdout).unwrap().trim().to_string(),
            config_dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .args([
                "--retries",
                "1",
                "--low-level-retries",
                "2",
                "--contimeout",
                "10s",
            ])
            .env("RCLONE_CONFIG", self.config_dir.path().join("rclone.conf"))
            .env("RCLONE_CONFIG_T_TYPE", "webdav")
            .env("RCLONE_CONFIG_T_URL", &self.url)
            .env("RCLONE_CONFIG_T_VENDOR", "other")
            .env("RCLONE_CONFIG_T_USER", USER)
            .env("RCLONE_CONFIG_T_PASS", &self.obscured)
            .output()
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args).await;
        assert!(out.status.success(), "rclone {args:?}\n{}", show(&out));
        out
    }
}

/// Names that trip up URL handling, spread over nested folders.
const AWKWARD: [&str; 8] = [
    "with space.txt",
    "h\u{e9}llo w\u{f6}rld \u{1f600}.txt",
    "hash#tag.txt",
    "100% done.txt",
    "a+b=c.txt",
    "rock & roll.txt",
    "\u{65e5}\u{672c}\u{8a9e}.md",
    "semi;colon 'quote'.txt",
];

/// Builds the tree the round trip copies: 200+ small files in nested folders,
/// awkward names, one empty file and one file big enough for many units.
fn make_tree(root: &Path, big_mib: usize) -> usize {
    let mut count = 0;
    for d in 0..10 {
        let dir = root
            .join(format!("dir {d}"))
            .join(format!("sub #{}", d % 3));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..20 {
            let body = format!("file {d}/{f}\n").repeat(1 + (d * 20 + f) % 50);
            std::fs::write(dir.join(format!("f{f:02}.txt")), body).unwrap();
            count += 1;
        }
    }
    let odd = root.join("odd names & more");
    std::fs::create_dir_all(&odd).unwrap();
    for (i, name) in AWKWARD.iter().enumerate() {
        std::fs::write(odd.join(name), format!("awkward {i}\n")).unwrap();
        count += 1;
    }
    std::fs::write(root.join("empty.txt"), b"").unwrap();
    let big: Vec<u8> = (0..big_mib * 1024 * 1024)
        .map(|i| ((i * 7 + i / 4093) % 256) as u8)
        .collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
    count + 2
}

async fn round_trip(server: &TestServer) {
    let rclone = Rclone::new(server).await;
    let src = tempfile::tempdir().unwrap();
    let files = make_tree(src.path(), 50);
    assert!(files >= 200);
    let local = src.path().to_str().unwrap();

    rclone
        .ok(&["copy", local, "t:tree", "--transfers", "4"])
        .await;
    rclone.ok(&["check", local, "t:tree", "--download"]).await;

    // Rename, move and delete through rclone, and mirror it locally.
    rclone
        .ok(&[
            "moveto",
            "t:tree/dir 0/sub #0/f00.txt",
            "t:tree/dir 0/sub #0/renamed.txt",
        ])
        .await;
    std::fs::rename(
        src.path().join("dir 0/sub #0/f00.txt"),
        src.path().join("dir 0/sub #0/renamed.txt"),
    )
    .unwrap();
    rclone
        .ok(&[
            "moveto",
            "t:tree/odd names & more/hash#tag.txt",
            "t:tree/dir 1/hash#tag.txt",
        ])
        .await;
    std::fs::rename(
        src.path().join("odd names & more/hash#tag.txt"),
        src.path().join("dir 1/hash#tag.txt"),
    )
    .unwrap();
    rclone
        .ok(&["moveto", "t:tree/dir 2", "t:tree/dir 9/dir 2 moved"])
        .await;
    std::fs::rename(
        src.path().join("dir 2"),
        src.path().join("dir 9/dir 2 moved"),
    )
    .unwrap();
    rclone
        .ok(&["deletefile", "t:tree/dir 3/sub #0/f05.txt"])
        .await;
    std::fs::remove_file(src.path().join("dir 3/sub #0/f05.txt")).unwrap();
    rclone.ok(&["purge", "t:tree/dir 4"]).await;
    std::fs::remove_dir_all(src.path().join("dir 4")).unwrap();

    rclone.ok(&["check", local, "t:tree", "--download"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_round_trip() {
    let server = TestServer::start().await;
    round_trip(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_round_trip_with_five_second_tokens() {
    let emulator = EmulatorConfig {
        token_ttl: 5,
        ..EmulatorConfig::default()
    };
    let server = TestServer::start_with(Options {
        emulator: Some(emulator),
        ..Options::default()
    })
    .await;
    round_trip(&server).await;
    let renewals = server.api_calls("user/renew_session_token")
        + server.api_calls("application/get_session_token");
    assert!(
        renewals >= 2,
        "tokens must have been renewed: {}",
        server.emulator.stats()
    );
}
