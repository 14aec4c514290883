//! The real `mediafire-dav` binary as child processes: an emulator and a
//! server, with their output captured line by line, for the tests that must
//! kill a process or read its log.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_mediafire-dav");

/// Every line a child wrote to one stream, as it arrives.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(&self, stream: impl AsyncRead + Unpin + Send + 'static) {
        let lines = self.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.0.lock().unwrap().push(strip_ansi(&line));
            }
        });
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// Waits until a line satisfies `pick`, and returns what it picked.
    pub async fn wait_for<T>(&self, what: &str, pick: impl Fn(&str) -> Option<T>) -> T {
        for _ in 0..600 {
            if let Some(v) = self.0.lock().unwrap().iter().find_map(|l| pick(l)) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no line with {what} within 30 s:\n{}", self.text());
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A running child with its captured output.
pub struct Proc {
    pub child: Child,
    pub url: String,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Proc {
    fn spawn(args: &[&str]) -> (Child, Lines, Lines) {
        let mut child = Command::new(BIN)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let (stdout, stderr) = (Lines::default(), Lines::default());
        stdout.follow(child.stdout.take().unwrap());
        stderr.follow(child.stderr.take().unwrap());
        (child, stdout, stderr)
    }

    /// `mediafire-dav emulator` on a free port; `extra` are more flags.
    pub async fn emulator(cookie: &str, data_dir: &Path, extra: &[&str]) -> Proc {
        let data = data_dir.to_str().unwrap();
        let mut args = vec![
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--cookie",
            cookie,
            "--data-dir",
            data,
        ];
        args.extend_from_slice(extra);
        let (child, stdout, stderr) = Self::spawn(&args);
        let url = stdout
            .wait_for("the emulator's URL", |l| {
                l.strip_prefix("listening on ").map(str::to_string)
            })
            .await;
        Proc {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// `mediafire-dav serve` on a free port against `api_base`.
    pub async fn serve(api_base: &str, state_dir: &Path, extra: &[&str]) -> Proc {
        let state = state_dir.to_str().unwrap();
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--api-base",
            api_base,
            "--state-dir",
            state,
        ];
        args.extend_from_slice(extra);
        let (child, stdout, stderr) = Self::spawn(&args);
        let url = stderr
            .wait_for("serving WebDAV", |l| {
                let at = l.find("serving WebDAV")?;
                let url = l[at..].split("url=").nth(1)?;
                Some(
                    url.split_whitespace()
                        .next()?
                        .trim_end_matches('/')
                        .to_string(),
                )
            })
            .await;
        Proc {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// Sends SIGKILL (`kill -9`) and waits for the process to be gone.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM and waits (at most 30 s) for a clean exit.
    pub async fn terminate(&mut self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let waited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        assert!(waited.is_ok(), "no exit within 30 s of SIGTERM");
        // let the readers drain the pipes
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client that never follows redirects, for talking to children.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
