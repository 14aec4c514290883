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

/// Starts `serve` with `args` and `env`, returns the URL it prints (or the
/// error it exits with).
async fn served_url(args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .env_remove("MEDIAFIRE_DAV_LISTEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("mediafire-dav: serving WebDAV at ") {
                return Some(url.trim().to_string());
            }
        }
        None
    })
    .await
    .expect("serve starts or exits");
    match found {
        Some(url) => {
            child.kill().await.unwrap();
            Ok(url)
        }
        None => {
            let out = child.wait_with_output().await.unwrap();
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_win_over_the_environment_which_wins_over_the_file() {
    let emu = emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    // The file names a port nobody can bind as a test user would (and that
    // this test never expects to see), and a prefix.
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:1\"\nprefix = \"/from-file\"\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let common = [
        "--config",
        config.to_str().unwrap(),
        "--api-base",
        &emu.base_url(),
        "--cookie",
        "demo-cookie",
        "--no-auth",
        "--state-dir",
        state.to_str().unwrap(),
    ];

    // Environment over file: the listen address comes from the environment,
    // the prefix (not in the environment) from the file.
    let url = served_url(&common, &[("MEDIAFIRE_DAV_LISTEN", "127.0.0.1:0")])
        .await
        .unwrap();
    assert!(!url.contains(":1/"), "{url}");
    assert!(url.ends_with("/from-file/"), "{url}");

    // Flag over environment.
    let mut args = common.to_vec();
    args.extend(["--listen", "127.0.0.1:0", "--prefix", "/from-flag"]);
    let url = served_url(
        &args,
        &[
            ("MEDIAFIRE_DAV_LISTEN", "127.0.0.1:1"),
            ("MEDIAFIRE_DAV_PREFIX", "/from-env"),
        ],
    )
    .await
    .unwrap();
    assert!(!url.contains(":1/"), "{url}");
    assert!(url.ends_with("/from-flag/"), "{url}");

    // Environment over file for the prefix too.
    let url = served_url(
        &common,
        &[
            ("MEDIAFIRE_DAV_LISTEN", "127.0.0.1:0"),
            ("MEDIAFIRE_DAV_PREFIX", "/from-env"),
        ],
    )
    .await
    .unwrap();
    assert!(url.ends_with("/from-env/"), "{url}");
}
