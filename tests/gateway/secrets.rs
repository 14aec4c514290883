//! No secret in the log: the real binary with `--log debug`, its stderr
//! captured, through login, token expiry and re-login, cookie rotation,
//! uploads small and multi-unit, downloads, and failed logins. Afterwards
//! neither the cookie (as configured or rotated), nor any session or upload
//! token the emulator handed out, nor the password, nor the Basic
//! credentials appear in a log line or an error page. The state file is
//! private (0600 in a 0700 directory).
//!
//! Also the rest of the front door's security, end to end: repeated failed
//! logins are throttled (429, even for the right password), bcrypt and
//! argon2 hashes work as passwords (and are not passwords themselves), and
//! the binary will not start without credentials unless `--no-auth`, nor
//! with `--no-auth` on a public address without `--allow-public-no-auth`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;

use crate::child::{Proc, http};
use crate::faults::pattern;

const COOKIE: &str = "ukey=c00k1e-s3cret-v4lue; session=abc";
const USER: &str = "carol";
const PASS: &str = "p4ssw0rd-never-logged";

/// Every token and cookie value in the emulator's saved state.
fn emulator_secrets(data_dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(text) = std::fs::read(data_dir.join("state.json")) else {
        return out;
    };
    let Ok(state) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return out;
    };
    if let Some(tokens) = state["tokens"].as_object() {
        out.extend(tokens.keys().cloned());
    }
    for c in state["cookies"].as_array().into_iter().flatten() {
        if let Some(v) = c["value"].as_str() {
            out.insert(v.to_string());
        }
    }
    out
}

/// The longest run of hex digits in `text` (session tokens are 144 long).
fn longest_hex_run(text: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("emu");
    let state = dir.path().join("state");
    let mut emu = Proc::emulator(
        COOKIE,
        &data,
        &["--token-ttl", "2", "--rotate-cookie", "--log", "warn"],
    )
    .await;
    let mut server = Proc::serve(
        &emu.url,
        &state,
        &[
            "--cookie", COOKIE, "--user", USER, "--pass", PASS, "--log", "debug",
        ],
    )
    .await;

    // Collect every token the emulator issues while the test runs (expired
    // ones leave its state, so look often).
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let watcher = {
        let (seen, data) = (seen.clone(), data.clone());
        tokio::spawn(async move {
            loop {
                let now = emulator_secrets(&data);
                seen.lock().unwrap().extend(now);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let c = http();
    let url = |p: &str| format!("{}{p}", server.url);
    // Failed logins, one with the real password under another user name.
    for (user, pass) in [(USER, "wrong-guess-1"), ("mallory", PASS), (USER, "")] {
        let resp = c
            .get(url("/"))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let page = resp.text().await.unwrap();
        assert!(
            !page.contains(PASS) && !page.contains("wrong-guess"),
            "{page}"
        );
    }
    let small = pattern(1000, 1);
    let big = pattern(5 * 1024 * 1024 + 3, 2);
    for round in 0..2 {
        // Round 1 runs after the token expired: the server logs in again.
        let (s, b) = (format!("/s{round}.txt"), format!("/b{round}.bin"));
        for (path, body) in [(&s, &small), (&b, &big)] {
            let resp = c
                .put(url(path))
                .basic_auth(USER, Some(PASS))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "PUT {path}");
        }
        let resp = c
            .get(url(&b))
            .basic_auth(USER, Some(PASS))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.bytes().await.unwrap() == big);
        let resp = c
            .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), url("/"))
            .basic_auth(USER, Some(PASS))
            .header("Depth", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 207);
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
    }
    server.terminate().await;
    watcher.abort();
    let mut secrets = seen.lock().unwrap().clone();
    secrets.extend(emulator_secrets(&data));
    emu.terminate().await;
    secrets.extend(emulator_secrets(&data));

    // The session file: private, and holding what it should.
    let session = state.join("session.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&session).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "session.json mode {mode:o}");
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "state dir mode {mode:o}");
    }
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&session).unwrap()).unwrap();
    if let Some(t) = saved["session_token"].as_str() {
        secrets.insert(t.to_string());
    }
    if let Some(c) = saved["cookie"].as_str() {
        secrets.insert(c.to_string());
    }

    let tokens = secrets.iter().filter(|s| s.len() >= 100).count();
    assert!(
        tokens >= 2,
        "expected a login and a re-login, saw {tokens} tokens"
    );
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    secrets.extend([
        COOKIE.to_string(),
        "c00k1e-s3cret-v4lue".to_string(),
        PASS.to_string(),
        creds,
    ]);
    let log = format!("{}\n{}", server.stderr.text(), server.stdout.text());
    // Debug logging was really on, and the run did what it should.
    assert!(log.contains("DEBUG"), "no debug lines:\n{log}");
    assert!(log.contains("PUT"), "no request lines:\n{log}");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains a secret ({}…):\n{log}",
            &secret[..secret.len().min(12)]
        );
    }
    assert!(
        longest_hex_run(&log) < 100,
        "something token-shaped is in the log:\n{log}"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    use mediafire_dav::server::auth::MAX_FAILURES;

    let server = crate::util::TestServer::start().await;
    for i in 0..MAX_FAILURES {
        let resp = server
            .anon("GET", "/")
            .basic_auth(crate::util::USER, Some("guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "attempt {i}");
    }
    // Now even the right password is refused, without being checked.
    let resp = server.req("GET", "/").send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let page = resp.text().await.unwrap();
    assert!(!page.contains(crate::util::PASS), "{page}");
    // The health check stays reachable for the orchestrator.
    let health = server.anon("GET", "/healthz").send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn bcrypt_and_argon2_password_hashes_log_in() {
    use argon2::PasswordHasher;
    use mediafire_dav::config::ServeArgs;

    let bcrypt = bcrypt::hash(crate::util::PASS, 4).unwrap();
    let salt = argon2::password_hash::SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
    let argon = argon2::Argon2::default()
        .hash_password(crate::util::PASS.as_bytes(), &salt)
        .unwrap()
        .to_string();
    for hash in [bcrypt, argon] {
        let server = crate::util::TestServer::start_with(crate::util::Options {
            args: ServeArgs {
                pass: Some(hash.clone()),
                ..ServeArgs::default()
            },
            ..crate::util::Options::default()
        })
        .await;
        let ok = server
            .req("PROPFIND", "/")
            .header("Depth", "0")
            .send()
            .await;
        assert_eq!(ok.unwrap().status(), 207, "{hash}");
        // The hash itself is not a password.
        let resp = server
            .anon("PROPFIND", "/")
            .basic_auth(crate::util::USER, Some(&hash))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{hash}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_to_start_without_auth_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let run = |args: Vec<&str>| {
        let mut all = vec![
            "serve",
            "--api-base",
            "http://127.0.0.1:9",
            "--state-dir",
            state,
        ];
        all.extend(args);
        let all: Vec<String> = all.into_iter().map(String::from).collect();
        async move {
            let out = tokio::process::Command::new(crate::child::BIN)
                .args(&all)
                .env_remove("MEDIAFIRE_DAV_USER")
                .env_remove("MEDIAFIRE_DAV_PASS")
                .env_remove("MEDIAFIRE_DAV_NO_AUTH")
                .env_remove("MEDIAFIRE_DAV_ALLOW_PUBLIC_NO_AUTH")
                .env_remove("MEDIAFIRE_DAV_CONFIG")
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(Duration::from_secs(30), out)
                .await
                .expect("exits at once")
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, err) = run(vec!["--listen", "127.0.0.1:0"]).await;
    assert!(!ok && err.contains("--no-auth"), "no credentials: {err}");
    let (ok, err) = run(vec!["--listen", "0.0.0.0:0", "--no-auth"]).await;
    assert!(
        !ok && err.contains("--allow-public-no-auth"),
        "public no-auth: {err}"
    );
}
