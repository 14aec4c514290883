//! GET on a folder gives a browser a clean HTML listing: checked as text
//! (names, sizes, dates, links), then in headless Chromium, driven through
//! chromedriver's W3C WebDriver API: load the listing, click the link of a
//! file with an awkward name, read the file, go back up.

use std::process::Stdio;
use std::time::Duration;

use mediafire_dav::config::ServeArgs;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::util::{Options, TestServer, require_tool};

const AWKWARD: &str = "a b#c%d&e+f é.txt";
const AWKWARD_CONTENT: &str = "the awkward file's own content\n";

async fn listing_server() -> TestServer {
    // Browsers cannot answer a Basic-auth prompt here; loopback may go without.
    let server = TestServer::start_with(Options {
        args: ServeArgs {
            no_auth: true,
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    server.emulator.seed_file(
        &format!("/Music & Sounds/{AWKWARD}"),
        AWKWARD_CONTENT.as_bytes(),
    );
    server
        .emulator
        .seed_file("/Music & Sounds/big.bin", &vec![0u8; 3 * 1024 * 1024 / 2]);
    server.emulator.seed_folder("/Music & Sounds/Live <2024>");
    server.emulator.seed_file("/top.txt", b"top");
    server
}

#[tokio::test]
async fn a_folder_lists_names_sizes_dates_and_working_links() {
    let server = listing_server().await;
    let resp = server
        .anon("GET", "/Music%20%26%20Sounds/")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let page = resp.text().await.unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    // Names (escaped), sizes, dates.
    assert!(page.contains(">a b#c%d&amp;e+f é.txt</a>"), "{page}");
    assert!(page.contains(">Live &lt;2024&gt;/</a>"), "{page}");
    assert!(page.contains(">1.5 MiB<") && page.contains("data-bytes=\"1572864\""));
    assert!(page.contains("data-bytes=\"31\""), "{page}");
    let year = chrono::Utc::now().format("%Y-").to_string();
    // Two files and a folder, each with its time.
    assert_eq!(page.matches(&format!("<time datetime=\"{year}")).count(), 3);
    // Every link resolves to what it names.
    let hrefs: Vec<&str> = page
        .split("href=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    let file_href = hrefs
        .iter()
        .find(|h| h.ends_with(".txt"))
        .unwrap()
        .replace("&amp;", "&");
    let resp = server.anon("GET", &file_href).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{file_href}");
    assert_eq!(resp.text().await.unwrap(), AWKWARD_CONTENT);
    for h in &hrefs {
        let h = h.replace("&amp;", "&");
        let resp = server.anon("GET", &h).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{h}");
    }
    // A folder without its slash is sent to it.
    let resp = server
        .anon("GET", "/Music%20%26%20Sounds")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
}

/// A free loopback port (released for chromedriver to take).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free port; tries another port if the one
    /// picked was taken meanwhile.
    async fn start() -> Driver {
        let chromedriver = require_tool("chromedriver");
        require_tool("chromium");
        for _attempt in 0..3 {
            let port = free_port();
            let child = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("chromedriver starts");
            let mut driver = Driver {
                child,
                base: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap(),
                _profile: tempfile::tempdir().unwrap(),
            };
            if driver.wait_ready().await {
                return driver;
            }
        }
        panic!("chromedriver did not become ready");
    }

    /// True once `/status` says ready; false if chromedriver exited or
    /// took longer than 15 s.
    async fn wait_ready(&mut self) -> bool {
        for _ in 0..150 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ready = self.http.get(format!("{}/status", self.base)).send().await;
            if let Ok(r) = ready
                && let Ok(bytes) = r.bytes().await
                && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
                && v["value"]["ready"] == true
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&b).unwrap());
        }
        let resp = req.send().await.expect("chromedriver answers");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("chromedriver answers");
        let v: Value = serde_json::from_slice(&bytes).expect("chromedriver speaks JSON");
        assert!(status.is_success(), "{path}: {status} {v}");
        v["value"].clone()
    }

    /// A headless Chromium session with the flags this machine needs.
    async fn session(&self) -> String {
        let profile = self._profile.path().display().to_string();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={profile}"),
                ],
            },
        }}});
        let v = self
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        v["sessionId"].as_str().expect("a session id").to_string()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_the_listing_and_follows_an_awkward_link() {
    let server = listing_server().await;
    let driver = Driver::start().await;
    let id = driver.session().await;
    let s = format!("/session/{id}");
    use reqwest::Method as M;

    let listing = format!("{}/Music%20%26%20Sounds/", server.url);
    driver
        .call(
            M::POST,
            &format!("{s}/url"),
            Some(json!({ "url": listing })),
        )
        .await;
    let title = driver.call(M::GET, &format!("{s}/title"), None).await;
    assert_eq!(title, "Index of /Music & Sounds/");

    // The rendered table: one row per entry with its size.
    let rows = driver
        .call(
            M::POST,
            &format!("{s}/elements"),
            Some(json!({"using": "css selector", "value": "tbody tr"})),
        )
        .await;
    assert_eq!(rows.as_array().unwrap().len(), 4, "parent + 3 entries");

    // Click the awkward name, as a person would.
    let link = driver
        .call(
            M::POST,
            &format!("{s}/element"),
            Some(json!({"using": "link text", "value": AWKWARD})),
        )
        .await;
    let element = link
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .expect("an element reference")
        .to_string();
    driver
        .call(
            M::POST,
            &format!("{s}/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    let mut shown = String::new();
    for _ in 0..50 {
        let body = driver
            .call(
                M::POST,
                &format!("{s}/execute/sync"),
                Some(json!({"script": "return document.body ? document.body.innerText : ''", "args": []})),
            )
            .await;
        shown = body.as_str().unwrap_or("").to_string();
        if shown.contains("awkward file") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown.trim_end(), AWKWARD_CONTENT.trim_end());
    let url = driver.call(M::GET, &format!("{s}/url"), None).await;
    let url = url.as_str().unwrap();
    let path = &url[server.url.len()..];
    assert_eq!(
        percent_encoding::percent_decode_str(path).decode_utf8_lossy(),
        format!("/Music & Sounds/{AWKWARD}")
    );

    // Back, then up through the parent link to the root listing.
    driver
        .call(M::POST, &format!("{s}/back"), Some(json!({})))
        .await;
    let up = driver
        .call(
            M::POST,
            &format!("{s}/element"),
            Some(json!({"using": "css selector", "value": "a[rel=up]"})),
        )
        .await;
    let up = up
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    driver
        .call(M::POST, &format!("{s}/element/{up}/click"), Some(json!({})))
        .await;
    let mut title = Value::Null;
    for _ in 0..50 {
        title = driver.call(M::GET, &format!("{s}/title"), None).await;
        if title == "Index of /" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(title, "Index of /");
    driver.call(M::DELETE, &s, None).await;
}
