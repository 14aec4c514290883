//! Behaviour of the MediaFire client against a small scripted HTTP fake on
//! 127.0.0.1: session renewal, cookie rotation, state file, retries, rate
//! limits, creates without duplicates, resumable uploads, polling and
//! download link refresh. Each test scripts the replies it needs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use mediafire_dav::error::ErrorKind;
use mediafire_dav::mediafire::{Client, ClientConfig};
use mediafire_dav::remote::{Remote, UploadRequest, UploadSource};

// ---- the fake ---------------------------------------------------------------

/// One request as the fake saw it.
#[derive(Clone, Debug)]
struct Req {
    #[allow(dead_code)]
    method: String,
    path: String,
    /// `folder/get_info` for API calls, `application/get_session_token` for
    /// the token endpoint, else the path.
    action: String,
    /// Query and form parameters together.
    params: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: Bytes,
}

impl Req {
    fn p(&self, k: &str) -> &str {
        self.params.get(k).map(String::as_str).unwrap_or("")
    }
    fn h(&self, k: &str) -> &str {
        self.headers.get(k).map(String::as_str).unwrap_or("")
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
}

impl Reply {
    fn with_header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn after(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

fn raw(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.into(),
        delay: Duration::ZERO,
    }
}

/// A Success envelope for `req` with `fields` merged in.
fn ok(req: &Req, fields: Value) -> Reply {
    let mut r = json!({"action": req.action, "result": "Success", "current_api_version": "1.5"});
    if let (Value::Object(m), Value::Object(f)) = (&mut r, fields) {
        m.extend(f);
    }
    raw(200, json!({ "response": r }).to_string()).with_header("content-type", "application/json")
}

/// An Error envelope with HTTP 400, as MediaFire sends it (spec §2.3).
fn api_err(req: &Req, code: u32, message: &str) -> Reply {
    let r = json!({"response": {"action": req.action, "message": message, "error": code,
                   "result": "Error", "current_api_version": "1.5"}});
    raw(400, r.to_string()).with_header("content-type", "application/json")
}

fn html_403() -> Reply {
    raw(
        403,
        "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body></body></html>",
    )
    .with_header("content-type", "text/html")
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

struct Fake {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Fake {
    async fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Req>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let (h, l) = (handler.clone(), log.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (h, l) = (h.clone(), l.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(req, h.clone(), l.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Fake { addr, log }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self, action: &str) -> Vec<Req> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.action == action)
            .cloned()
            .collect()
    }

    fn count(&self, action: &str) -> usize {
        self.requests(action).len()
    }

    fn total(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

async fn serve(
    req: hyper::Request<hyper::body::Incoming>,
    handler: Handler,
    log: Arc<Mutex<Vec<Req>>>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let mut params: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    let action = if let Some(a) = path
        .strip_prefix("/api/1.5/")
        .and_then(|a| a.strip_suffix(".php"))
    {
        a.to_string()
    } else if path == "/application/get_session_token.php" {
        "application/get_session_token".to_string()
    } else {
        path.clone()
    };
    let r = Req {
        method,
        path,
        action,
        params,
        headers,
        body,
    };
    log.lock().unwrap().push(r.clone());
    let reply = handler(&r);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = hyper::Response::builder().status(reply.status);
    for (k, v) in reply.headers {
        resp = resp.header(k, v);
    }
    Ok(resp.body(Full::new(Bytes::from(reply.body))).unwrap())
}

/// Token endpoint (token `t1`) and upload action token (`up1`) for tests
/// that do not care about the session.
fn basics(req: &Req) -> Option<Reply> {
    match req.action.as_str() {
        "application/get_session_token" => Some(ok(req, json!({"session_token": "t1"}))),
        "user/get_action_token" => Some(ok(req, json!({"action_token": "up1"}))),
        _ => None,
    }
}

fn config(base: &str, dir: &Path) -> ClientConfig {
    ClientConfig {
        api_base: base.to_string(),
        cookie: Some("ukey=u1; skey=s1".into()),
        state_dir: dir.to_path_buf(),
        calls_per_second: 0.0,
        burst: 100,
        max_concurrent_calls: 64,
        upload_parallelism: 3,
        request_timeout: Duration::from_secs(2),
        poll_timeout: Duration::from_secs(5),
        max_retries: 4,
        retry_base_delay: Duration::from_millis(2),
        ..ClientConfig::default()
    }
}

async fn client(fake: &Fake, dir: &Path) -> Client {
    Client::new(config(&fake.base(), dir)).await.unwrap()
}

fn spool(dir: &Path, data: &[u8]) -> UploadSource {
    let path = dir.join("spool.bin");
    std::fs::write(&path, data).unwrap();
    UploadSource {
        path,
        size: data.len() as u64,
        sha256: hex::encode(Sha256::digest(data)),
    }
}

// ---- session ----------------------------------------------------------------

#[tokio::test]
async fn fifty_calls_hitting_105_cause_one_renewal() {
    let valid = Arc::new(Mutex::new("t1".to_string()));
    let v = valid.clone();
    let fake = Fake::start(move |req| match req.action.as_str() {
        "application/get_session_token" => ok(req, json!({"session_token": "t1"})),
        "user/renew_session_token" => {
            *v.lock().unwrap() = "t2".into();
            ok(req, json!({"session_token": "t2"})).after(Duration::from_millis(50))
        }
        _ if req.p("session_token") != v.lock().unwrap().as_str() => {
            api_err(req, 105, "The supplied Session Token is expired or invalid")
        }
        "device/get_status" => ok(
            req,
            json!({"device_revision": "7", "async_jobs_in_progress": "no"}),
        ),
        _ => raw(500, ""),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    c.login().await.unwrap();
    // The token dies behind the client's back.
    *valid.lock().unwrap() = "nobody-has-this".into();

    let calls = (0..50).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.device_status().await })
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.unwrap().unwrap().revision, 7);
    }
    assert_eq!(
        fake.count("user/renew_session_token"),
        1,
        "single-flight renewal"
    );
    assert_eq!(fake.count("application/get_session_token"), 1);
    assert_eq!(c.stats().renewals, 1);
}

#[tokio::test]
async fn failed_renewal_falls_back_to_the_cookie_once() {
    let fake = Fake::start(move |req| match req.action.as_str() {
        "application/get_session_token" => {
            let n = if req.h("cookie").contains("skey=s1") {
                "t-new"
            } else {
                "t-bad"
            };
            ok(req, json!({"session_token": n}))
        }
        "user/renew_session_token" => {
            api_err(req, 105, "The supplied Session Token is expired or invalid")
        }
        _ if req.p("session_token") != "t-new" => api_err(req, 105, "expired"),
        "user/get_info" => ok(
            req,
            json!({"user_info": {"email": "a@b.c", "display_name": "A",
            "premium": "no", "used_storage_size": "10", "storage_limit": "100"}}),
        ),
        _ => raw(500, ""),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // A saved, young but already dead token.
    std::fs::write(
        dir.path().join("session.json"),
        serde_json::to_vec(
            &json!({"session_token": "t-old", "token_issued": now_secs(),
            "cookie": "ukey=u1; skey=s1", "cookie_origin": null}),
        )
        .unwrap(),
    )
    .unwrap();
    let mut cfg = config(&fake.base(), dir.path());
    cfg.cookie = None;
    let c = Client::new(cfg).await.unwrap();
    let calls = (0..20).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.account().await })
    });
    for r in futures_util::future::join_all(calls).await {
        let a = r.unwrap().unwrap();
        assert_eq!((a.quota.used, a.quota.limit), (10, Some(100)));
    }
    assert_eq!(fake.count("user/renew_session_token"), 1);
    assert_eq!(fake.count("application/get_session_token"), 1);
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn cookie_rotation_is_merged_and_persisted() {
    let fake = Fake::start(|req| match req.action.as_str() {
        "application/get_session_token" => ok(req, json!({"session_token": "t1"}))
            .with_header("set-cookie", "skey=ROTATED; Path=/; HttpOnly; Secure")
            .with_header("set-cookie", "extra=x1; Path=/"),
        "device/get_status" => ok(
            req,
            json!({"device_revision": "1", "async_jobs_in_progress": "no"}),
        ),
        _ => raw(500, ""),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    c.device_status().await.unwrap();

    let sent = fake.requests("device/get_status")[0]
        .h("cookie")
        .to_string();
    assert_eq!(
        sent, "ukey=u1; skey=ROTATED; extra=x1",
        "same name replaced, others kept"
    );
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("session.json")).unwrap()).unwrap();
    assert_eq!(state["cookie"], "ukey=u1; skey=ROTATED; extra=x1");
    assert_eq!(state["session_token"], "t1");
}

#[tokio::test]
async fn restart_without_cookie_uses_the_private_state_file() {
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            "device/get_status" if req.p("session_token") == "t1" => ok(
                req,
                json!({"device_revision": "3", "async_jobs_in_progress": "no"}),
            ),
            _ => api_err(req, 105, "expired"),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    {
        let c = client(&fake, dir.path()).await;
        c.login().await.unwrap();
    }
    let path = dir.path().join("session.json");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("t1"));

    let mut cfg = config(&fake.base(), dir.path());
    cfg.cookie = None;
    let c = Client::new(cfg).await.unwrap();
    assert_eq!(c.device_status().await.unwrap().revision, 3);
    assert_eq!(
        fake.count("application/get_session_token"),
        1,
        "no new login after restart"
    );
    assert!(!format!("{c:?}").contains("t1"));
}

#[tokio::test]
async fn dead_cookie_is_an_auth_error_naming_the_credential() {
    let fake = Fake::start(|req| match req.action.as_str() {
        "application/get_session_token" => {
            api_err(req, 107, "The Credentials you entered are invalid")
        }
        _ => raw(500, ""),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let e = c.login().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(e.to_string().contains("MEDIAFIRE_COOKIE"), "{e}");
    assert!(!e.to_string().contains("skey=s1"), "no secret in the error");
    assert_eq!(
        fake.count("application/get_session_token"),
        1,
        "auth failures are not retried"
    );
    // Calls right after do not ask MediaFire again and again.
    for _ in 0..5 {
        assert_eq!(c.device_status().await.unwrap_err().kind(), ErrorKind::Auth);
    }
    assert_eq!(
        fake.count("application/get_session_token"),
        1,
        "cool-down after a refusal"
    );
    assert_eq!(fake.count("device/get_status"), 0);
}

// ---- transport ----------------------------------------------------------------

#[tokio::test]
async fn html_challenge_page_is_transient_and_retried() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let fake = Fake::start(move |req| {
        basics(req).unwrap_or_else(|| {
            if n2.fetch_add(1, Ordering::SeqCst) < 2 {
                return html_403();
            }
            ok(
                req,
                json!({"folder_info": {"folderkey": "abc", "name": "x", "revision": 5}}),
            )
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let f = c.folder_get_info("abc").await.unwrap();
    assert_eq!((f.name.as_str(), f.revision), ("x", 5));
    assert_eq!(fake.count("folder/get_info"), 3);
    let stats = c.stats();
    assert_eq!(stats.calls("folder/get_info", "transient_failure"), 2);
    assert_eq!(stats.calls("folder/get_info", "ok"), 1);
    assert_eq!(stats.retries, 2);
}

#[tokio::test]
async fn html_forever_ends_transient_persistent() {
    let fake = Fake::start(|req| basics(req).unwrap_or_else(html_403)).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let e = c.folder_get_info("abc").await.unwrap_err();
    assert_eq!(
        (e.kind(), e.retry()),
        (
            ErrorKind::Transient,
            mediafire_dav::error::Retry::Persistent
        )
    );
    assert_eq!(fake.count("folder/get_info"), 5, "1 + max_retries");
}

#[tokio::test]
async fn rate_limit_backs_off_then_succeeds() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let fake = Fake::start(move |req| {
        basics(req).unwrap_or_else(|| {
            if n2.fetch_add(1, Ordering::SeqCst) == 0 {
                return api_err(
                    req,
                    163,
                    "You have reached the limit accessing the API. Please try again later.",
                );
            }
            ok(
                req,
                json!({"device_revision": "9", "async_jobs_in_progress": "no"}),
            )
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fake.base(), dir.path());
    cfg.retry_base_delay = Duration::from_millis(20);
    let c = Client::new(cfg).await.unwrap();
    c.login().await.unwrap();
    let start = Instant::now();
    assert_eq!(c.device_status().await.unwrap().revision, 9);
    // The global pause after a 163 is 4 × base delay.
    assert!(
        start.elapsed() >= Duration::from_millis(80),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fake.count("device/get_status"), 2);
    assert_eq!(c.stats().calls("device/get_status", "error_163"), 1);
}

#[tokio::test]
async fn errors_are_read_from_the_body_whatever_the_status() {
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| match req.p("quick_key") {
            // Error with HTTP 200 and a string code.
            "a" => raw(200, r#"{"response":{"result":"Error","error":"110","message":"Unknown or Invalid QuickKey"}}"#),
            // Error with HTTP 400.
            "b" => api_err(req, 111, "Quick Key is missing"),
            _ => raw(500, "not json"),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let e = c.file_get_info("a").await.unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::NotFound, Some(110)));
    let e = c.file_get_info("b").await.unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::NotFound, Some(111)));
    assert_eq!(
        fake.count("file/get_info"),
        2,
        "permanent errors are not retried"
    );
}

// ---- listings and mutations ---------------------------------------------------

#[tokio::test]
async fn listing_reads_every_chunk_of_both_types() {
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| {
            match (req.action.as_str(), req.p("content_type"), req.p("chunk")) {
                ("folder/get_content", "files", "1") => ok(
                    req,
                    json!({"folder_content": {
                "chunk_number": "1", "more_chunks": "yes", "content_type": "files",
                "files": [{"quickkey": "q1", "filename": "a.txt", "size": "3", "hash": "h",
                           "created_utc": "2021-09-28T06:10:15Z", "revision": 4}]}}),
                ),
                ("folder/get_content", "files", "2") => ok(
                    req,
                    json!({"folder_content": {
                "chunk_number": 2, "more_chunks": "no",
                "files": [{"quickkey": "q2", "filename": "b.txt", "size": 5, "revision": "6"}]}}),
                ),
                // No "folders" key at all: an empty folder list.
                ("folder/get_content", "folders", "1") => {
                    ok(req, json!({"folder_content": {"more_chunks": "no"}}))
                }
                _ => raw(500, ""),
            }
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let l = c.list_folder("").await.unwrap();
    assert!(l.folders.is_empty());
    let names: Vec<_> = l
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.size, f.revision))
        .collect();
    assert_eq!(names, [("a.txt", 3, 4), ("b.txt", 5, 6)]);
    assert_eq!(
        l.files[1].created,
        std::time::UNIX_EPOCH,
        "no created_utc: the epoch"
    );
    let reqs = fake.requests("folder/get_content");
    assert!(
        reqs.iter()
            .all(|r| r.p("chunk_size") == "1000" && r.p("folder_key").is_empty())
    );
}

#[tokio::test]
async fn failed_listing_is_an_error_not_an_empty_folder() {
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| api_err(req, 112, "Unknown or invalid FolderKey"))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let e = c.list_folder("nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// A folder tree the create tests mutate.
#[derive(Default)]
struct Folders {
    names: Vec<String>,
}

fn folders_reply(req: &Req, f: &Folders) -> Reply {
    let list: Vec<Value> = f
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"folderkey": format!("fk{i}"), "name": n, "revision": "1"}))
        .collect();
    ok(
        req,
        json!({"folder_content": {"more_chunks": "no", "folders": list}}),
    )
}

#[tokio::test]
async fn create_that_timed_out_but_happened_is_not_resent() {
    let state = Arc::new(Mutex::new(Folders::default()));
    let s = state.clone();
    let fake = Fake::start(move |req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            "folder/get_content" => folders_reply(req, &s.lock().unwrap()),
            "folder/create" => {
                // The server acts, but the reply comes too late.
                s.lock()
                    .unwrap()
                    .names
                    .push(req.p("foldername").to_string());
                ok(
                    req,
                    json!({"folder_key": "fk0", "name": req.p("foldername")}),
                )
                .after(Duration::from_secs(3))
            }
            _ => raw(500, ""),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fake.base(), dir.path());
    cfg.request_timeout = Duration::from_millis(300);
    let c = Client::new(cfg).await.unwrap();
    let f = c.create_folder("", "photos").await.unwrap();
    assert_eq!((f.key.as_str(), f.name.as_str()), ("fk0", "photos"));
    assert_eq!(fake.count("folder/create"), 1, "never sent twice");
    assert_eq!(state.lock().unwrap().names, ["photos"]);
    assert_eq!(
        fake.requests("folder/create")[0].p("action_on_duplicate"),
        "skip"
    );
}

#[tokio::test]
async fn create_that_failed_without_acting_is_resent_once() {
    let state = Arc::new(Mutex::new(Folders::default()));
    let (s, n) = (state.clone(), Arc::new(AtomicUsize::new(0)));
    let fake = Fake::start(move |req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            "folder/get_content" => folders_reply(req, &s.lock().unwrap()),
            "folder/create" if n.fetch_add(1, Ordering::SeqCst) == 0 => api_err(req, 100, "Internal server error"),
            "folder/create" => {
                s.lock().unwrap().names.push(req.p("foldername").to_string());
                ok(req, json!({"folder_key": "fk0", "name": req.p("foldername"), "created_utc": "2022-07-03T15:01:08Z"}))
            }
            _ => raw(500, ""),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let f = c.create_folder("parent1", "docs").await.unwrap();
    assert_eq!(f.key, "fk0");
    assert_eq!(fake.count("folder/create"), 2);
    assert_eq!(state.lock().unwrap().names, ["docs"], "exactly one folder");
    // Pre-check + one re-check before the resend.
    assert_eq!(fake.count("folder/get_content"), 2);
}

#[tokio::test]
async fn create_of_a_taken_name_is_already_exists() {
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            "folder/get_content" => folders_reply(
                req,
                &Folders {
                    names: vec!["docs".into()],
                },
            ),
            _ => raw(500, ""),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    assert_eq!(
        c.create_folder("", "docs").await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(fake.count("folder/create"), 0);
}

#[tokio::test]
async fn copy_is_resent_only_after_the_destination_proves_it_did_not_happen() {
    // Every copy fails ambiguously (error 100): before each resend the
    // destination is listed, and only a listing without a new file holding
    // the source's content allows it. Nothing is ever resent blind.
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            "folder/get_content" => ok(
                req,
                json!({"folder_content": {"more_chunks": "no", "files": []}}),
            ),
            "file/get_info" => ok(
                req,
                json!({"file_info": {"quickkey": "q1", "filename": "a.txt",
                    "size": "3", "hash": "ab"}}),
            ),
            _ => api_err(req, 100, "Internal server error"),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let e = c.copy_file("q1", "fk").await.unwrap_err();
    assert!(!e.is_temporary(), "{e}");
    let copies = fake.count("file/copy");
    assert!(copies >= 1);
    // One listing before the first copy, one after each failed copy.
    assert_eq!(fake.count("folder/get_content"), copies + 1);
}

#[tokio::test]
async fn async_move_waits_for_the_job() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let fake = Fake::start(move |req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            "folder/move" => ok(
                req,
                json!({"asynchronous": "yes", "new_device_revision": 12}),
            ),
            "device/get_status" => {
                let busy = if n2.fetch_add(1, Ordering::SeqCst) < 2 {
                    "yes"
                } else {
                    "no"
                };
                ok(
                    req,
                    json!({"device_revision": "12", "async_jobs_in_progress": busy}),
                )
            }
            _ => raw(500, ""),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    c.move_folder("fk1", "").await.unwrap();
    assert_eq!(fake.count("device/get_status"), 3);
    let m = &fake.requests("folder/move")[0];
    assert_eq!((m.p("folder_key_src"), m.p("folder_key_dst")), ("fk1", ""));
}

#[tokio::test]
async fn delete_answered_100_then_already_deleted_is_success() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let fake = Fake::start(move |req| {
        basics(req).unwrap_or_else(|| match n2.fetch_add(1, Ordering::SeqCst) {
            0 => api_err(req, 100, "Internal server error"),
            _ => api_err(req, 210, "This file has already been deleted"),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    c.delete_file("q1").await.unwrap();
    assert_eq!(fake.count("file/delete"), 2);
    // But a first-attempt 210 is a real NotFound.
    n.store(1, Ordering::SeqCst);
    assert_eq!(
        c.delete_file("q2").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

// ---- uploads --------------------------------------------------------------------

/// Scripted resumable upload state: which units the server holds.
struct UploadState {
    unit_size: u64,
    count: u64,
    have: Vec<bool>,
    data: HashMap<u64, Bytes>,
    fail_unit_once: Option<u64>,
    /// Accept this unit once without keeping it (the server lost it).
    lose_unit_once: Option<u64>,
    /// Unit replies carry no `resumable_upload` (as AL/OL assume).
    quiet_units: bool,
    unit_delay: Duration,
    polls: Vec<&'static str>,
}

impl UploadState {
    fn new(unit_size: u64, have: Vec<bool>) -> UploadState {
        UploadState {
            unit_size,
            count: have.len() as u64,
            have,
            data: HashMap::new(),
            fail_unit_once: None,
            lose_unit_once: None,
            quiet_units: false,
            unit_delay: Duration::ZERO,
            polls: vec![],
        }
    }
}

fn bitmap(have: &[bool]) -> Value {
    let words: Vec<String> = have
        .chunks(16)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u64, |w, (i, b)| if *b { w | (1 << i) } else { w })
                .to_string()
        })
        .collect();
    json!({"count": words.len().to_string(), "words": words})
}

fn resumable(st: &UploadState) -> Value {
    json!({"all_units_ready": if st.have.iter().all(|b| *b) { "yes" } else { "no" },
           "number_of_units": st.count.to_string(), "unit_size": st.unit_size.to_string(),
           "bitmap": bitmap(&st.have), "upload_key": "upkey000001"})
}

fn upload_server(state: Arc<Mutex<UploadState>>) -> impl Fn(&Req) -> Reply + Send + Sync + 'static {
    move |req| {
        if let Some(r) = basics(req) {
            return r;
        }
        let mut st = state.lock().unwrap();
        if req.action.starts_with("upload/") && req.p("session_token") != "up1" {
            return api_err(req, 105, "The supplied Session Token is expired or invalid");
        }
        match req.action.as_str() {
            "upload/check" => ok(
                req,
                json!({"hash_exists": "no", "file_exists": "no",
                "storage_limit_exceeded": "no", "available_space": "1000000000",
                "resumable_upload": resumable(&st)}),
            ),
            "upload/resumable" => {
                let id: u64 = req.h("x-unit-id").parse().unwrap();
                if st.fail_unit_once == Some(id) {
                    st.fail_unit_once = None;
                    return raw(502, "<html>bad gateway</html>");
                }
                let hash = hex::encode(Sha256::digest(&req.body));
                if hash != req.h("x-unit-hash")
                    || req.h("x-unit-size") != req.body.len().to_string()
                {
                    return api_err(req, 304, "unit hash mismatch");
                }
                if st.lose_unit_once == Some(id) {
                    st.lose_unit_once = None;
                } else {
                    st.have[id as usize] = true;
                    st.data.insert(id, req.body.clone());
                }
                let mut fields = json!({"doupload": {"result": "0", "key": "upkey000001"}});
                if !st.quiet_units {
                    fields["resumable_upload"] = resumable(&st);
                }
                ok(req, fields).after(st.unit_delay)
            }
            "upload/poll_upload" => {
                let status = if st.polls.is_empty() {
                    "99"
                } else {
                    st.polls.remove(0)
                };
                if status == "99" {
                    ok(
                        req,
                        json!({"doupload": {"result": "0", "status": "99", "fileerror": "",
                        "quickkey": "newquickkey0001", "filename": "big.bin", "size": "2500",
                        "hash": "", "created_utc": "2026-12-04T16:00:00Z", "revision": "3"}}),
                    )
                } else {
                    ok(
                        req,
                        json!({"doupload": {"result": "0", "status": status, "fileerror": "",
                        "quickkey": "", "filename": "", "description": "working"}}),
                    )
                }
            }
            _ => raw(500, ""),
        }
    }
}

fn test_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn upload_resume_sends_only_missing_units() {
    let data = test_bytes(2500);
    let state = Arc::new(Mutex::new(UploadState::new(1000, vec![true, false, true])));
    let fake = Fake::start(upload_server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let req = UploadRequest {
        folder_key: "fkdest".into(),
        name: "big.bin".into(),
        source: spool(dir.path(), &data),
        replace: None,
        mtime: None,
    };
    let info = c.upload(req).await.unwrap();
    assert_eq!(
        (info.quickkey.as_str(), info.name.as_str(), info.size),
        ("newquickkey0001", "big.bin", 2500)
    );

    let units = fake.requests("upload/resumable");
    let ids: Vec<&str> = units.iter().map(|r| r.h("x-unit-id")).collect();
    assert_eq!(ids, ["1"], "only the missing unit");
    let u = &units[0];
    assert_eq!(&u.body[..], &data[1000..2000]);
    assert_eq!(u.h("x-filesize"), "2500");
    assert_eq!(u.h("x-filename"), "big.bin");
    assert_eq!(u.h("x-filehash"), hex::encode(Sha256::digest(&data)));
    assert_eq!(u.p("folder_key"), "fkdest");
    assert_eq!(u.p("action_on_duplicate"), "skip");
    assert_eq!(
        u.p("session_token"),
        "up1",
        "upload calls carry the action token"
    );
    assert!(u.h("cookie").is_empty() || !u.path.contains("session_token"));
    assert_eq!(fake.count("user/get_action_token"), 1);
    assert_eq!(c.stats().bytes_up, 1000);
}

#[tokio::test]
async fn upload_retries_a_failed_unit_only_and_polls_through_statuses() {
    let data = test_bytes(2500);
    let state = Arc::new(Mutex::new(UploadState {
        fail_unit_once: Some(2),
        polls: vec!["17", "18", "19", "4", "5", "6"],
        ..UploadState::new(1000, vec![false; 3])
    }));
    let fake = Fake::start(upload_server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fake.base(), dir.path());
    cfg.upload_parallelism = 2;
    let c = Client::new(cfg).await.unwrap();
    let req = UploadRequest {
        folder_key: "".into(),
        name: "big.bin".into(),
        source: spool(dir.path(), &data),
        replace: Some("oldquickkey0001".into()),
        mtime: None,
    };
    let info = c.upload(req).await.unwrap();
    assert_eq!(info.quickkey, "newquickkey0001");
    assert_eq!(info.revision, 3);

    let mut ids: Vec<String> = fake
        .requests("upload/resumable")
        .iter()
        .map(|r| r.h("x-unit-id").to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["0", "1", "2", "2"],
        "unit 2 resent once, nothing else"
    );
    let st = state.lock().unwrap();
    let joined: Vec<u8> = (0..3).flat_map(|i| st.data[&i].to_vec()).collect();
    assert_eq!(joined, data);
    assert_eq!(
        fake.count("upload/poll_upload"),
        7,
        "6 in-progress statuses, then 99"
    );
    let r = &fake.requests("upload/resumable")[0];
    assert_eq!(
        (r.p("action_on_duplicate"), r.p("quick_key")),
        ("replace", "oldquickkey0001")
    );
}

#[tokio::test]
async fn units_the_server_lost_are_found_by_a_recheck_and_resent() {
    let data = test_bytes(2500);
    let state = Arc::new(Mutex::new(UploadState {
        lose_unit_once: Some(0),
        quiet_units: true,
        ..UploadState::new(1000, vec![false; 3])
    }));
    let fake = Fake::start(upload_server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let name = "naïve 文件.bin";
    let req = UploadRequest {
        folder_key: "".into(),
        name: name.into(),
        source: spool(dir.path(), &data),
        replace: None,
        mtime: None,
    };
    c.upload(req).await.unwrap();
    let mut ids: Vec<String> = fake
        .requests("upload/resumable")
        .iter()
        .map(|r| r.h("x-unit-id").to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["0", "0", "1", "2"]);
    assert_eq!(
        fake.count("upload/check"),
        3,
        "first check, re-check after each pass"
    );
    assert_eq!(
        fake.requests("upload/resumable")[0].h("x-filename"),
        name,
        "raw UTF-8 name"
    );
    let st = state.lock().unwrap();
    let joined: Vec<u8> = (0..3).flat_map(|i| st.data[&i].to_vec()).collect();
    assert_eq!(joined, data);
}

#[tokio::test]
async fn a_cancelled_upload_stops_sending_and_never_commits() {
    let data = test_bytes(10_000);
    let state = Arc::new(Mutex::new(UploadState {
        unit_delay: Duration::from_millis(400),
        ..UploadState::new(1000, vec![false; 10])
    }));
    let fake = Fake::start(upload_server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let req = UploadRequest {
        folder_key: "".into(),
        name: "big.bin".into(),
        source: spool(dir.path(), &data),
        replace: None,
        mtime: None,
    };
    let task = tokio::spawn(async move { c.upload(req).await });
    // Cancel once the first units are on the wire (the server holds them).
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.count("upload/resumable") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let sent = fake.count("upload/resumable");
    assert!(
        (1..=3).contains(&sent),
        "only units in flight were sent, got {sent}"
    );
    assert_eq!(fake.count("upload/poll_upload"), 0);
}

#[tokio::test]
async fn poll_fileerror_maps_to_a_clear_error() {
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            "upload/check" => ok(req, json!({"hash_exists": "no", "file_exists": "no",
                "resumable_upload": {"all_units_ready": "yes", "number_of_units": "1",
                "unit_size": "4194304", "bitmap": {"count": "1", "words": ["1"]}, "upload_key": "k1"}})),
            "upload/poll_upload" => ok(req, json!({"doupload": {"result": "0", "status": "4", "fileerror": "15"}})),
            _ => raw(500, ""),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let req = UploadRequest {
        folder_key: "".into(),
        name: "a.txt".into(),
        source: spool(dir.path(), b"hello"),
        replace: None,
        mtime: None,
    };
    let e = c.upload(req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(
        fake.count("upload/resumable"),
        0,
        "all units present: nothing sent"
    );
    assert_eq!(fake.requests("upload/poll_upload")[0].p("key"), "k1");
}

#[tokio::test]
async fn short_spool_is_refused_before_any_request() {
    let fake = Fake::start(|req| basics(req).unwrap_or_else(|| raw(500, ""))).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let mut source = spool(dir.path(), &test_bytes(100));
    source.size = 5000;
    let req = UploadRequest {
        folder_key: "".into(),
        name: "short.bin".into(),
        source,
        replace: None,
        mtime: None,
    };
    let e = c.upload(req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Local);
    assert!(e.to_string().contains("shorter"), "{e}");
    assert_eq!(fake.total(), 0, "nothing was sent");

    let empty = spool(dir.path(), b"");
    let req = UploadRequest {
        folder_key: "".into(),
        name: "empty".into(),
        source: empty,
        replace: None,
        mtime: None,
    };
    assert_eq!(
        c.upload(req).await.unwrap_err().kind(),
        ErrorKind::Permanent
    );
    assert_eq!(fake.total(), 0);
}

#[tokio::test]
async fn known_hash_uses_instant_upload() {
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            "upload/check" => ok(
                req,
                json!({"hash_exists": "yes", "in_account": "yes", "file_exists": "no"}),
            ),
            "upload/instant" => ok(
                req,
                json!({"quickkey": "instantqk000001", "filename": req.p("filename"),
                "device_revision": 4085, "newrevision": {"revision": "4.7", "epoch": "1"}}),
            ),
            _ => raw(500, ""),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let source = spool(dir.path(), b"known content");
    let sha = source.sha256.clone();
    let req = UploadRequest {
        folder_key: "fk".into(),
        name: "k.txt".into(),
        source,
        replace: None,
        mtime: None,
    };
    let info = c.upload(req).await.unwrap();
    assert_eq!(
        (info.quickkey.as_str(), info.size, info.hash.as_str()),
        ("instantqk000001", 13, sha.as_str())
    );
    assert_eq!(fake.count("upload/resumable"), 0);
    let i = &fake.requests("upload/instant")[0];
    assert_eq!(
        (i.p("hash"), i.p("size"), i.p("action_on_duplicate")),
        (sha.as_str(), "13", "skip")
    );
}

// ---- downloads --------------------------------------------------------------------

#[tokio::test]
async fn download_refreshes_a_refused_link_once() {
    let content: Vec<u8> = test_bytes(1000);
    let links = Arc::new(AtomicUsize::new(0));
    let (l2, c2) = (links.clone(), content.clone());
    let fake = Fake::start(move |req| {
        if let Some(r) = basics(req) {
            return r;
        }
        let base = format!("http://{}", req.h("host"));
        match req.action.as_str() {
            "file/get_links" => {
                let n = l2.fetch_add(1, Ordering::SeqCst);
                ok(
                    req,
                    json!({"links": [{"quickkey": req.p("quick_key"),
                    "direct_download": format!("{base}/dl/tok{n}/{}/f.bin", req.p("quick_key"))}]}),
                )
            }
            p if p.starts_with("/dl/tok0/") => raw(403, "expired link"),
            p if p.starts_with("/dl/tok1/") => {
                assert!(req.h("cookie").is_empty(), "no cookie to the download host");
                let range = req.h("range").trim_start_matches("bytes=").to_string();
                let (a, b) = range.split_once('-').unwrap();
                let a: usize = a.parse().unwrap();
                if a >= c2.len() {
                    return raw(416, "")
                        .with_header("content-range", &format!("bytes */{}", c2.len()));
                }
                let b: usize = if b.is_empty() {
                    c2.len() - 1
                } else {
                    b.parse::<usize>().unwrap().min(c2.len() - 1)
                };
                raw(206, c2[a..=b].to_vec())
                    .with_header("content-range", &format!("bytes {a}-{b}/{}", c2.len()))
            }
            _ => raw(500, ""),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let d = c.download("qk1", 100, Some(50)).await.unwrap();
    assert_eq!(d.total_size, 1000);
    let got: Vec<u8> = d.body.map(|b| b.unwrap().to_vec()).concat().await;
    assert_eq!(got, &content[100..150]);
    assert_eq!(links.load(Ordering::SeqCst), 2, "one refresh");

    // The fresh link is cached: reading to the end asks for no new link.
    let d = c.download("qk1", 900, None).await.unwrap();
    let got: Vec<u8> = d.body.map(|b| b.unwrap().to_vec()).concat().await;
    assert_eq!(got, &content[900..]);
    // Past the end: an empty body.
    let d = c.download("qk1", 1000, None).await.unwrap();
    assert_eq!(d.body.count().await, 0);
    assert_eq!(links.load(Ordering::SeqCst), 2);
    // A mutation forgets the link.
    c.forget_link("qk1");
    let _ = c.download("qk1", 0, Some(1)).await;
    assert_eq!(links.load(Ordering::SeqCst), 3);
    assert_eq!(c.stats().link_refreshes, 1, "only the refused link counts");
}

#[tokio::test]
async fn download_link_error_entry_is_an_error() {
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| {
            ok(req, json!({"links": [{"quickkey": req.p("quick_key"), "error": "User lacks permissions"}]}))
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let e = c.download("qk", 0, None).await.err().expect("error");
    assert_eq!(e.kind(), ErrorKind::Forbidden);
}

#[tokio::test]
async fn background_renewal_runs_and_stops_with_the_last_clone() {
    let fake = Fake::start(|req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            "user/renew_session_token" => ok(req, json!({"session_token": "t1"})),
            _ => raw(500, ""),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fake.base(), dir.path());
    cfg.renew_after = Duration::from_millis(150);
    let c = Client::new(cfg).await.unwrap();
    let c2 = c.clone();
    c.login().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let renewed = fake.count("user/renew_session_token");
    assert!((2..=8).contains(&renewed), "renewed {renewed} times in 1 s");

    drop(c);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        fake.count("user/renew_session_token") > renewed,
        "a clone keeps it alive"
    );
    drop(c2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = fake.count("user/renew_session_token");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.count("user/renew_session_token"),
        after_drop,
        "task stopped"
    );
}

#[tokio::test]
async fn upload_action_token_is_cached_and_replaced_after_105() {
    let issued = Arc::new(AtomicUsize::new(0));
    let valid = Arc::new(Mutex::new(String::new()));
    let (i2, v2) = (issued.clone(), valid.clone());
    let fake = Fake::start(move |req| match req.action.as_str() {
        "application/get_session_token" => ok(req, json!({"session_token": "t1"})),
        "user/get_action_token" => {
            assert_eq!((req.p("type"), req.p("lifespan")), ("upload", "1440"));
            assert_eq!(req.p("session_token"), "t1");
            let t = format!("up{}", i2.fetch_add(1, Ordering::SeqCst));
            *v2.lock().unwrap() = t.clone();
            ok(req, json!({"action_token": t}))
        }
        "upload/check" if req.p("session_token") == v2.lock().unwrap().as_str() => ok(
            req,
            json!({"hash_exists": "yes", "file_exists": "yes", "different_hash": "no",
                "duplicate_quickkey": "dupquickkey0001"}),
        ),
        "upload/check" => api_err(req, 105, "The supplied Session Token is expired or invalid"),
        "file/get_info" => ok(
            req,
            json!({"file_info": {"quickkey": "dupquickkey0001",
            "filename": "same.txt", "size": "4", "hash": "h", "revision": "2"}}),
        ),
        _ => raw(500, ""),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    let up = |name: &str| UploadRequest {
        folder_key: "".into(),
        name: name.into(),
        source: spool(dir.path(), b"same"),
        replace: None,
        mtime: None,
    };
    let f = c.upload(up("same.txt")).await.unwrap();
    assert_eq!(
        f.quickkey, "dupquickkey0001",
        "identical file: nothing sent"
    );
    c.upload(up("same.txt")).await.unwrap();
    assert_eq!(
        issued.load(Ordering::SeqCst),
        1,
        "the action token is reused"
    );

    // MediaFire forgets the action token: one 105, one new token.
    *valid.lock().unwrap() = "gone".into();
    c.upload(up("same.txt")).await.unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(fake.count("upload/check"), 4);
    assert_eq!(c.stats().action_tokens, 2);
}

#[tokio::test]
async fn retry_after_pauses_all_calls() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let fake = Fake::start(move |req| {
        basics(req).unwrap_or_else(|| {
            if n2.fetch_add(1, Ordering::SeqCst) == 0 {
                return raw(429, "<html>slow down</html>").with_header("retry-after", "1");
            }
            ok(
                req,
                json!({"device_revision": "4", "async_jobs_in_progress": "no"}),
            )
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    c.login().await.unwrap();
    let start = Instant::now();
    assert_eq!(c.device_status().await.unwrap().revision, 4);
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn bad_names_never_reach_mediafire() {
    let fake = Fake::start(|req| basics(req).unwrap_or_else(|| raw(500, ""))).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    assert_eq!(
        c.create_folder("", "a/b").await.unwrap_err().kind(),
        ErrorKind::InvalidName
    );
    assert_eq!(
        c.rename_file("q", "").await.unwrap_err().kind(),
        ErrorKind::InvalidName
    );
    let req = UploadRequest {
        folder_key: "".into(),
        name: "x\ny".into(),
        source: spool(dir.path(), b"data"),
        replace: None,
        mtime: None,
    };
    assert_eq!(
        c.upload(req).await.unwrap_err().kind(),
        ErrorKind::InvalidName
    );
    assert_eq!(fake.total(), 0);
}

#[tokio::test]
async fn rename_whose_reply_was_lost_is_not_reported_as_a_clash() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let fake = Fake::start(move |req| {
        basics(req).unwrap_or_else(|| match req.action.as_str() {
            // The first rename happens, but its reply is a gateway error.
            "file/update" if n2.fetch_add(1, Ordering::SeqCst) == 0 => {
                raw(502, "<html>bad gateway</html>")
            }
            "file/update" => api_err(req, 143, "This file already exists"),
            "file/get_info" => ok(
                req,
                json!({"file_info": {"quickkey": "q1", "filename": "new.txt", "size": "1"}}),
            ),
            _ => raw(500, ""),
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&fake, dir.path()).await;
    c.rename_file("q1", "new.txt").await.unwrap();
    // A genuine clash on the first attempt stays a clash.
    n.store(1, Ordering::SeqCst);
    assert_eq!(
        c.rename_file("q1", "new.txt").await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(fake.count("file/get_info"), 1);
}
