//! The binary's subcommands as a user runs them: `check`, `serve --demo` and
//! `healthcheck`.

use std::process::Stdio;
use std::time::Duration;

use mediafire_dav::emulator::{self, EmulatorConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mediafire-dav");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_the_account_and_quota() {
    let emu = emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.seed_file("/a.bin", &vec![7u8; 3000]);
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["check", "--api-base", &emu.base_url(), "--cookie"])
        .arg(EmulatorConfig::default().cookie)
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("account:"), "{stdout}");
    assert!(stdout.contains("storage:  2.9 KiB used of"), "{stdout}");
    // The session was saved, owner-only.
    let session = std::fs::read_dir(state.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("session"))
        .expect("a session file in the state directory");
    use std::os::unix::fs::PermissionsExt;
    let mode = session.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{:?}", session.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_a_dead_cookie_fails_and_names_the_credential() {
    let emu = emulator::start(EmulatorConfig::default()).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "check",
            "--api-base",
            &emu.base_url(),
            "--cookie",
            "expired-cookie",
        ])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("MEDIAFIRE_COOKIE"), "{stderr}");
    assert!(
        !stderr.contains("expired-cookie"),
        "the cookie must not be echoed: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_sample_files_with_printed_credentials() {
    let mut child = Command::new(BIN)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = None;
    let mut creds = None;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("mediafire-dav: serving WebDAV at ") {
                url = Some(rest.trim().to_string());
            }
            if let Some(rest) = line
                .trim()
                .strip_prefix("demo account (built-in emulator): user ")
            {
                let (user, pass) = rest.split_once(", password ").unwrap();
                creds = Some((user.to_string(), pass.to_string()));
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("demo starts");
    let url = url.expect("the URL is printed");
    let (user, pass) = creds.expect("the credentials are printed");
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{url}README.txt"))
        .basic_auth(&user, Some(&pass))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("demo"));
    let resp = http.get(format!("{url}README.txt")).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // The health check subcommand agrees, and fails once the server is gone.
    let health = format!("{url}healthz");
    let ok = Command::new(BIN)
        .args(["healthcheck", "--url", &health])
        .status()
        .await
        .unwrap();
    assert!(ok.success());
    child.kill().await.unwrap();
    let _ = child.wait().await;
    let gone = Command::new(BIN)
        .args(["healthcheck", "--url", &health])
        .status()
        .await
        .unwrap();
    assert!(!gone.success());
}
