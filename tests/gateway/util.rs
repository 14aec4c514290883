//! Starts the emulator and the real server on loopback ports, and speaks
//! HTTP to them the way a WebDAV client would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mediafire_dav::app;
use mediafire_dav::config::{ServeArgs, Settings};
use mediafire_dav::emulator::{self, EmulatorConfig, EmulatorHandle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const USER: &str = "alice";
pub const PASS: &str = "wonderland";

/// A running server, backed by its own emulator.
#[allow(dead_code)] // not every test module uses every field
pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub emulator: Arc<EmulatorHandle>,
    pub state_dir: PathBuf,
    _dir: Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    http: reqwest::Client,
}

/// Options for [`TestServer::start_with`].
#[derive(Clone, Default)]
pub struct Options {
    pub emulator: Option<EmulatorConfig>,
    pub args: ServeArgs,
    /// Give no cookie: the server must live on its saved session.
    pub no_cookie: bool,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestServer {
        let config = options.emulator.clone().unwrap_or_default();
        let emulator = Arc::new(emulator::start(config).await.expect("emulator starts"));
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::launch(emulator, dir, options).await
    }

    async fn launch(
        emulator: Arc<EmulatorHandle>,
        dir: Arc<tempfile::TempDir>,
        options: Options,
    ) -> TestServer {
        let state_dir = dir.path().join("state");
        let mut args = options.args.clone();
        args.listen = Some("127.0.0.1:0".parse().unwrap());
        args.api_base = Some(emulator.base_url());
        if !options.no_cookie {
            let cookie = options.emulator.clone().unwrap_or_default().cookie;
            args.cookie = Some(cookie);
        }
        if !args.no_auth {
            args.user.get_or_insert_with(|| USER.into());
            args.pass.get_or_insert_with(|| PASS.into());
        }
        args.state_dir = Some(state_dir.clone());
        args.calls_per_second.get_or_insert(1000.0);
        args.burst.get_or_insert(1000);
        let settings = Settings::resolve(&args).expect("valid settings");
        let built = app::build(settings).await.expect("app builds");
        let listener = tokio::net::TcpListener::bind(built.settings.listen)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let app = built.app.clone();
        let task = tokio::spawn(async move {
            let _built = built;
            mediafire_dav::server::serve(listener, app, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        TestServer {
            url: format!("http://{addr}"),
            addr,
            emulator,
            state_dir,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Stops this server and starts a new one on the same emulator and state
    /// directory.
    pub async fn restart(mut self, options: Options) -> TestServer {
        self.stop().await;
        let emulator = self.emulator.clone();
        let dir = self._dir.clone();
        Self::launch(emulator, dir, options).await
    }

    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// An authenticated request to `path` (already percent-encoded).
    pub fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.anon(method, path).basic_auth(USER, Some(PASS))
    }

    /// A request without credentials.
    pub fn anon(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.http.request(method, format!("{}{}", self.url, path))
    }

    /// The emulator's count of calls to one API action.
    pub fn api_calls(&self, action: &str) -> u64 {
        self.emulator.stats()["api_calls"][action]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn total_api_calls(&self) -> u64 {
        self.emulator.stats()["total_api_calls"]
            .as_u64()
            .unwrap_or(0)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A PROPFIND with `depth`, returning status and body.
pub async fn propfind(server: &TestServer, path: &str, depth: &str) -> (u16, String) {
    let resp = server
        .req("PROPFIND", path)
        .header("Depth", depth)
        .header("Content-Type", "application/xml")
        .body(r#"<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>"#)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The decoded `href`s in a multistatus body.
pub fn hrefs(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("href>") {
        // `<D:href>` opens, `</D:href>` closes: look back to the `<`.
        let tag_start = rest[..start].rfind('<').unwrap_or(0);
        let closing = rest[tag_start..].starts_with("</");
        rest = &rest[start + 5..];
        if closing {
            continue;
        }
        let Some(end) = rest.find("</") else { break };
        let raw = &rest[..end];
        out.push(
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned(),
        );
        rest = &rest[end..];
    }
    out
}

/// Whether `tool` is on the PATH; the test suite's script installs them.
pub fn require_tool(tool: &str) -> PathBuf {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "{tool} is not installed: run scripts/install-test-tools.sh (scripts/test.sh does)"
    );
    PathBuf::from(path)
}

/// Calls a MediaFire API action on the emulator directly, as another
/// MediaFire client of the same account would (behind the server's back).
pub async fn emulator_call(
    server: &TestServer,
    action: &str,
    params: &[(&str, &str)],
) -> serde_json::Value {
    let base = server.emulator.base_url();
    let http = reqwest::Client::new();
    let cookie = mediafire_dav::emulator::EmulatorConfig::default().cookie;
    let token = http
        .post(format!("{base}/application/get_session_token.php"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let token: serde_json::Value = serde_json::from_slice(&token).unwrap();
    let token = token["response"]["session_token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut form = vec![
        ("session_token", token.as_str()),
        ("response_format", "json"),
    ];
    form.extend_from_slice(params);
    let body = http
        .post(format!("{base}/api/1.5/{action}.php"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}
