//! Contract tests for the MediaFire emulator, written from `mediafire-api.md`: every call goes
//! over real HTTP with reqwest, and every assertion is about the wire (envelope shape, string vs
//! number types, status codes, headers).

use std::time::Duration;

use mediafire_dav::emulator::{self, EmulatorConfig, EmulatorHandle, FailMode, Faults};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

struct Emu {
    h: EmulatorHandle,
    http: reqwest::Client,
    token: String,
}

/// reqwest is built without its `json` feature: decode bodies with serde_json.
trait JsonBody {
    async fn json_value(self) -> Value;
}

impl JsonBody for reqwest::Response {
    async fn json_value(self) -> Value {
        let bytes = self.bytes().await.expect("response body");
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    }
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// File content with its SHA-256 computed once (hashing is slow in debug builds).
#[derive(Debug)]
struct Payload {
    data: Vec<u8>,
    hash: String,
}

impl Payload {
    fn new(data: Vec<u8>) -> Self {
        let hash = sha(&data);
        Payload { data, hash }
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl PartialEq<Payload> for Vec<u8> {
    fn eq(&self, other: &Payload) -> bool {
        *self == other.data
    }
}

/// Deterministic test content.
fn content(len: usize, seed: u8) -> Payload {
    Payload::new(
        (0..len)
            .map(|i| {
                (i as u32)
                    .wrapping_mul(2654435761)
                    .wrapping_add(seed as u32) as u8
            })
            .collect(),
    )
}

fn config() -> EmulatorConfig {
    EmulatorConfig {
        seed: Some(42),
        ..EmulatorConfig::default()
    }
}

async fn start(cfg: EmulatorConfig) -> Emu {
    let h = emulator::start(cfg).await.expect("emulator starts");
    let http = reqwest::Client::new();
    let mut emu = Emu {
        h,
        http,
        token: String::new(),
    };
    emu.token = emu.session_token().await;
    emu
}

impl Emu {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.h.base_url())
    }

    async fn session_token(&self) -> String {
        let r = self
            .http
            .post(self.url("/application/get_session_token.php"))
            .header("Cookie", "user=x; session=demo-cookie")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json_value().await;
        v["response"]["session_token"].as_str().unwrap().to_string()
    }

    /// POST form to `/api/1.5/<action>.php` with the session token; returns (status, response).
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        form.push(("session_token", &self.token));
        form.push(("response_format", "json"));
        self.raw_call(action, &form).await
    }

    async fn raw_call(&self, action: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(&format!("/api/1.5/{action}.php")))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(
            r.headers()["content-type"],
            "application/json",
            "{action}: content type"
        );
        let v: Value = r.json_value().await;
        assert_eq!(v["response"]["action"], action, "{action}: action field");
        (status, v["response"].clone())
    }

    /// A call that must succeed.
    async fn ok(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let (status, r) = self.call(action, params).await;
        assert_eq!(status, 200, "{action}: {r}");
        assert_eq!(r["result"], "Success", "{action}: {r}");
        assert_eq!(r["current_api_version"], "1.5");
        r
    }

    /// A call that must fail with `code` (as a JSON number) and the default status 400.
    async fn err(&self, action: &str, params: &[(&str, &str)], code: u64) -> Value {
        let (status, r) = self.call(action, params).await;
        assert_eq!(r["result"], "Error", "{action}: {r}");
        assert_eq!(r["error"], json!(code), "{action}: {r}");
        assert!(r["message"].is_string());
        assert_eq!(status, 400, "{action}: {r}");
        r
    }

    async fn stats(&self) -> Value {
        self.http
            .get(self.url("/__emulator/stats"))
            .send()
            .await
            .unwrap()
            .json_value()
            .await
    }

    async fn list(&self, folder: &str, kind: &str) -> Vec<Value> {
        let r = self
            .ok(
                "folder/get_content",
                &[
                    ("folder_key", folder),
                    ("content_type", kind),
                    ("chunk_size", "1000"),
                ],
            )
            .await;
        r["folder_content"][kind].as_array().unwrap().clone()
    }

    async fn direct_link(&self, qk: &str) -> String {
        let r = self
            .ok(
                "file/get_links",
                &[("quick_key", qk), ("link_type", "direct_download")],
            )
            .await;
        r["links"][0]["direct_download"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn download(&self, qk: &str) -> Vec<u8> {
        let url = self.direct_link(qk).await;
        let r = self.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap().to_vec()
    }

    /// `upload/check` with `resumable=yes`.
    async fn check(&self, folder: &str, name: &str, data: &Payload) -> Value {
        let size = data.len().to_string();
        let hash = data.hash.clone();
        self.ok(
            "upload/check",
            &[
                ("folder_key", folder),
                ("filename", name),
                ("size", &size),
                ("hash", &hash),
                ("resumable", "yes"),
            ],
        )
        .await
    }

    /// Sends unit `id` of `data`; returns (status, response).
    async fn unit(
        &self,
        token: &str,
        query: &[(&str, &str)],
        name: &str,
        data: &Payload,
        unit_size: usize,
        id: usize,
    ) -> (StatusCode, Value) {
        let start = id * unit_size;
        let end = (start + unit_size).min(data.len());
        let body = data[start..end].to_vec();
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("session_token", token));
        q.push(("response_format", "json"));
        let r = self
            .http
            .post(self.url("/api/1.5/upload/resumable.php"))
            .query(&q)
            // raw UTF-8, as AL/OL send it
            .header(
                "x-filename",
                HeaderValue::from_bytes(name.as_bytes()).unwrap(),
            )
            .header("x-filesize", data.len().to_string())
            .header("x-filehash", &data.hash)
            .header("x-unit-id", id.to_string())
            .header("x-unit-size", body.len().to_string())
            .header("x-unit-hash", sha(&body))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json_value().await;
        (status, v["response"].clone())
    }

    async fn poll(&self, key: &str) -> Value {
        let r = self.ok("upload/poll_upload", &[("key", key)]).await;
        r["doupload"].clone()
    }

    async fn poll_until_done(&self, key: &str) -> Value {
        for _ in 0..200 {
            let d = self.poll(key).await;
            if d["status"] == "99" {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("upload {key} never reached status 99");
    }

    /// A full resumable upload; returns the final poll `doupload`.
    async fn upload(
        &self,
        folder: &str,
        name: &str,
        data: &Payload,
        query: &[(&str, &str)],
    ) -> Value {
        let check = self.check(folder, name, data).await;
        let ru = &check["resumable_upload"];
        let unit_size: usize = ru["unit_size"].as_str().unwrap().parse().unwrap();
        let n: usize = ru["number_of_units"].as_str().unwrap().parse().unwrap();
        let mut q = vec![("folder_key", folder)];
        q.extend_from_slice(query);
        let mut key = ru["upload_key"].as_str().unwrap().to_string();
        for id in 0..n {
            let (status, r) = self.unit(&self.token, &q, name, data, unit_size, id).await;
            assert_eq!(status, 200, "unit {id}: {r}");
            assert_eq!(r["doupload"]["result"], "0");
            key = r["doupload"]["key"].as_str().unwrap().to_string();
        }
        self.poll_until_done(&key).await
    }
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

// ---------------------------------------------------------------------------------------------
// session token endpoint

#[tokio::test]
async fn session_token_endpoint_shape_gzip_and_bad_cookie() {
    let e = start(config()).await;
    // gzip when asked: read the raw bytes with a client that does not decode
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let r = raw
        .post(e.url("/application/get_session_token.php"))
        .header("Cookie", "demo-cookie")
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["content-type"], "application/json");
    let zipped = r.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut text)
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["response"]["result"], "Success");
    assert!(s(&v["response"]["session_token"]).len() >= 32);

    // reqwest with the gzip feature decodes transparently
    assert!(!e.session_token().await.is_empty());

    for cookie in [None, Some("other=1")] {
        let mut req = e.http.post(e.url("/application/get_session_token.php"));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let r = req.send().await.unwrap();
        assert_ne!(r.status(), 200);
        let v: Value = r.json_value().await;
        assert_eq!(v["response"]["result"], "Error");
        assert_eq!(v["response"]["error"], json!(107));
    }
    let st = e.stats().await;
    assert_eq!(st["api_calls"]["application/get_session_token"], json!(5));
    assert_eq!(st["errors"]["107"], json!(2));
}

#[tokio::test]
async fn rotated_cookie_is_set_and_old_value_expires_after_grace() {
    let e = start(EmulatorConfig {
        rotate_cookie: true,
        cookie_grace_secs: 1,
        ..config()
    })
    .await;
    let r = e
        .http
        .post(e.url("/application/get_session_token.php"))
        .header("Cookie", "demo-cookie")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let pair = set.split(';').next().unwrap().to_string();
    assert!(pair.starts_with("ukey="), "{set}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let old = e
        .http
        .post(e.url("/application/get_session_token.php"))
        .header("Cookie", "demo-cookie")
        .send()
        .await
        .unwrap();
    assert_ne!(
        old.status(),
        200,
        "the configured value expired after the grace period"
    );
    let new = e
        .http
        .post(e.url("/application/get_session_token.php"))
        .header("Cookie", format!("demo-cookie; {pair}"))
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// tokens

#[tokio::test]
async fn missing_and_bad_tokens_answer_104_and_105() {
    let e = start(config()).await;
    let (status, r) = e
        .raw_call("folder/get_info", &[("response_format", "json")])
        .await;
    assert_eq!(status, 400);
    assert_eq!(r["error"], json!(104));
    let (_, r) = e
        .raw_call("folder/get_info", &[("session_token", "nope")])
        .await;
    assert_eq!(r["error"], json!(105));
    // an empty token counts as absent
    let (_, r) = e.raw_call("user/get_info", &[("session_token", "")]).await;
    assert_eq!(r["error"], json!(104));
    e.ok("folder/get_info", &[]).await;
    e.h.expire_all_tokens();
    e.err("folder/get_info", &[], 105).await;
}

#[tokio::test]
async fn tokens_expire_after_ttl() {
    let e = start(EmulatorConfig {
        token_ttl: 1,
        ..config()
    })
    .await;
    e.ok("user/get_info", &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    e.err("user/get_info", &[], 105).await;
}

#[tokio::test]
async fn renew_returns_same_token_when_young_and_a_new_one_when_old() {
    let mut e = start(config()).await;
    let r = e.ok("user/renew_session_token", &[]).await;
    assert_eq!(s(&r["session_token"]), e.token);

    let mut old = start(EmulatorConfig {
        renew_same_token_secs: 0,
        ..config()
    })
    .await;
    let r = old.ok("user/renew_session_token", &[]).await;
    let fresh = s(&r["session_token"]).to_string();
    assert_ne!(fresh, old.token);
    old.token = fresh;
    old.ok("user/get_info", &[]).await;

    let ext = start(EmulatorConfig {
        renew_same_token_secs: 0,
        renew_mode: emulator::RenewMode::Extend,
        token_ttl: 2,
        ..config()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = ext.ok("user/renew_session_token", &[]).await;
    assert_eq!(s(&r["session_token"]), ext.token);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // 2.4 s after issue, but renewed at 1.2 s with a 2 s TTL
    ext.ok("user/get_info", &[]).await;
    e.token = "x".into();
    e.err("user/get_info", &[], 105).await;
}

#[tokio::test]
async fn action_tokens_work_on_upload_only_and_can_be_destroyed() {
    let e = start(config()).await;
    let r = e
        .ok(
            "user/get_action_token",
            &[("type", "upload"), ("lifespan", "1440")],
        )
        .await;
    let at = s(&r["action_token"]).to_string();
    let data = content(1000, 1);
    let (status, r) = e.unit(&at, &[], "a.bin", &data, 4 * MIB, 0).await;
    assert_eq!(status, 200, "{r}");
    let (_, r) = e.raw_call("user/get_info", &[("session_token", &at)]).await;
    assert_eq!(r["error"], json!(105));
    e.err(
        "user/get_action_token",
        &[("type", "upload"), ("lifespan", "5000")],
        129,
    )
    .await;
    e.ok("user/destroy_action_token", &[("action_token", &at)])
        .await;
    e.err("user/destroy_action_token", &[("action_token", &at)], 100)
        .await;
}

// ---------------------------------------------------------------------------------------------
// user / device / system

#[tokio::test]
async fn user_device_and_system_shapes() {
    let e = start(config()).await;
    e.h.seed_file("/a.txt", b"hello");
    let r = e.ok("user/get_info", &[]).await;
    let u = &r["user_info"];
    assert_eq!(s(&u["used_storage_size"]), "5");
    assert!(s(&u["storage_limit"]).parse::<u64>().unwrap() > 0);
    let r = e.ok("device/get_status", &[]).await;
    let rev: u64 = s(&r["device_revision"]).parse().unwrap();
    assert_eq!(r["async_jobs_in_progress"], "no");
    e.ok("folder/create", &[("foldername", "x")]).await;
    let r = e.ok("device/get_status", &[]).await;
    assert!(s(&r["device_revision"]).parse::<u64>().unwrap() > rev);
    // get_limits needs no token
    let (status, r) = e.raw_call("system/get_limits", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(r["limits"]["folder_content_chunk_size"], "100");
    // unknown action
    e.err("folder/frobnicate", &[], 253).await;
}

// ---------------------------------------------------------------------------------------------
// folders

#[tokio::test]
async fn folder_create_info_update_and_errors() {
    let e = start(config()).await;
    let r = e
        .ok(
            "folder/create",
            &[("foldername", "Docs"), ("parent_key", "")],
        )
        .await;
    let fk = s(&r["folder_key"]).to_string();
    assert_eq!(fk.len(), 13);
    assert!(
        fk.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    );
    assert_eq!(r["name"], "Docs");
    assert!(
        r["new_device_revision"].is_u64(),
        "new_device_revision is a number"
    );
    assert_eq!(r["parent_folderkey"], "myfiles");
    // default collision policy for create: keep → renamed
    let r = e.ok("folder/create", &[("foldername", "Docs")]).await;
    assert_eq!(r["name"], "Docs(1)");
    // skip returns the existing folder
    let r = e
        .ok(
            "folder/create",
            &[("foldername", "Docs"), ("action_on_duplicate", "skip")],
        )
        .await;
    assert_eq!(s(&r["folder_key"]), fk);

    let r = e.ok("folder/get_info", &[("folder_key", &fk)]).await;
    let info = &r["folder_info"];
    assert_eq!(info["name"], "Docs");
    for k in [
        "file_count",
        "folder_count",
        "revision",
        "created",
        "created_utc",
    ] {
        assert!(info[k].is_string(), "{k}");
    }
    assert!(s(&info["created_utc"]).ends_with('Z'));
    let r = e.ok("folder/get_info", &[("folder_key", "myfiles")]).await;
    assert_eq!(r["folder_info"]["folderkey"], "myfiles");
    assert_eq!(r["folder_info"]["folder_count"], "2");

    e.ok(
        "folder/update",
        &[("folder_key", &fk), ("foldername", "Papers")],
    )
    .await;
    let r = e.ok("folder/get_info", &[("folder_key", &fk)]).await;
    assert_eq!(r["folder_info"]["name"], "Papers");
    e.err(
        "folder/update",
        &[("folder_key", &fk), ("foldername", "Docs(1)")],
        144,
    )
    .await;

    e.err("folder/get_info", &[("folder_key", "zzzzzzzzzzzzz")], 112)
        .await;
    e.err("folder/create", &[("foldername", "a/b")], 185).await;
    e.err("folder/create", &[("foldername", &"x".repeat(256))], 185)
        .await;
    e.err("folder/create", &[], 117).await;
    e.err(
        "folder/create",
        &[("foldername", "n"), ("parent_key", "nosuchfolder1")],
        112,
    )
    .await;
}

#[tokio::test]
async fn get_content_pages_both_types_with_string_values() {
    let e = start(config()).await;
    let dir = e.h.seed_folder("/big");
    for i in 0..25 {
        e.h.seed_file(&format!("/big/f{i:02}.txt"), format!("file {i}").as_bytes());
    }
    for i in 0..3 {
        e.h.seed_folder(&format!("/big/d{i}"));
    }
    let mut names = Vec::new();
    for chunk in 1..=3 {
        let c = chunk.to_string();
        let r = e
            .ok(
                "folder/get_content",
                &[
                    ("folder_key", &dir),
                    ("content_type", "files"),
                    ("chunk", &c),
                    ("chunk_size", "10"),
                    ("filter", ""),
                ],
            )
            .await;
        let fc = &r["folder_content"];
        assert_eq!(fc["chunk_number"], c.as_str());
        assert_eq!(fc["chunk_size"], "10");
        assert_eq!(fc["content_type"], "files");
        assert_eq!(fc["folderkey"], dir.as_str());
        assert_eq!(fc["more_chunks"], if chunk < 3 { "yes" } else { "no" });
        for f in fc["files"].as_array().unwrap() {
            for k in [
                "quickkey",
                "filename",
                "size",
                "hash",
                "created_utc",
                "revision",
            ] {
                assert!(f[k].is_string(), "{k} is a string: {f}");
            }
            assert_eq!(s(&f["quickkey"]).len(), 15);
            names.push(s(&f["filename"]).to_string());
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("f{i:02}.txt")).collect();
    assert_eq!(names, expected);
    // past the end: empty array, no more chunks
    let r = e
        .ok(
            "folder/get_content",
            &[
                ("folder_key", &dir),
                ("content_type", "files"),
                ("chunk", "4"),
                ("chunk_size", "10"),
            ],
        )
        .await;
    assert_eq!(r["folder_content"]["files"], json!([]));
    assert_eq!(r["folder_content"]["more_chunks"], "no");
    let folders = e.list(&dir, "folders").await;
    assert_eq!(folders.len(), 3);
    assert_eq!(folders[0]["name"], "d0");
    assert!(folders[0]["file_count"].is_string());
    // root as empty key and as `myfiles`
    assert_eq!(e.list("", "folders").await.len(), 1);
    assert_eq!(e.list("myfiles", "folders").await.len(), 1);
    // order_by size desc
    let r = e
        .ok(
            "folder/get_content",
            &[
                ("folder_key", &dir),
                ("content_type", "files"),
                ("order_by", "size"),
                ("order_direction", "desc"),
                ("chunk_size", "1"),
            ],
        )
        .await;
    assert_eq!(r["folder_content"]["files"][0]["size"], "7");
    // bad chunk size / enum
    e.err(
        "folder/get_content",
        &[("content_type", "files"), ("chunk_size", "1001")],
        129,
    )
    .await;
    e.err(
        "folder/get_content",
        &[("content_type", "files"), ("order_by", "time")],
        129,
    )
    .await;
    e.err(
        "folder/get_content",
        &[("folder_key", "nonexistent12"), ("content_type", "files")],
        112,
    )
    .await;
    // GET with a query string works like POST
    let r: Value = e
        .http
        .get(e.url("/api/1.5/folder/get_content.php"))
        .query(&[
            ("session_token", e.token.as_str()),
            ("folder_key", dir.as_str()),
            ("content_type", "folders"),
        ])
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(
        r["response"]["folder_content"]["folders"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn multipart_form_parameters_are_accepted() {
    let e = start(config()).await;
    let body = format!(
        "--BOUNDARY\r\nContent-Disposition: form-data; name=\"session_token\"\r\n\r\n{}\r\n\
--BOUNDARY\r\nContent-Disposition: form-data; name=\"foldername\"\r\n\r\nMulti\r\n--BOUNDARY--\r\n",
        e.token
    );
    let r: Value = e
        .http
        .post(e.url("/api/1.5/folder/create.php"))
        .header("content-type", "multipart/form-data; boundary=BOUNDARY")
        .body(body)
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(r["response"]["result"], "Success", "{r}");
    assert_eq!(r["response"]["name"], "Multi");
}

#[tokio::test]
async fn folder_move_copy_delete_purge() {
    let e = start(config()).await;
    let a = e.h.seed_folder("/a");
    let b = e.h.seed_folder("/b");
    let sub = e.h.seed_folder("/a/sub");
    e.h.seed_file("/a/sub/x.txt", b"xx");
    e.h.seed_file("/a/y.txt", b"yyy");
    e.h.seed_folder("/b/sub");

    // into itself or a descendant → 115
    e.err(
        "folder/move",
        &[("folder_key_src", &a), ("folder_key_dst", &sub)],
        115,
    )
    .await;
    // copy is recursive; a taken name gets renamed
    let r = e
        .ok(
            "folder/copy",
            &[("folder_key_src", &a), ("folder_key_dst", &b)],
        )
        .await;
    let copy = s(&r["new_folderkeys"][0]).to_string();
    assert_eq!(copy.len(), 13);
    let r = e
        .ok(
            "folder/get_info",
            &[("folder_key", &copy), ("details", "yes")],
        )
        .await;
    assert_eq!(r["folder_info"]["total_files"], "2");
    assert_eq!(r["folder_info"]["total_folders"], "1");
    // move with a collision reports the new name
    let r = e
        .ok(
            "folder/move",
            &[("folder_key_src", &sub), ("folder_key_dst", &b)],
        )
        .await;
    assert_eq!(r["new_names"], json!(["sub(1)"]));
    assert_eq!(r["asynchronous"], "no");
    assert!(r["new_device_revision"].is_u64());
    let names: Vec<String> = e
        .list(&b, "folders")
        .await
        .iter()
        .map(|f| s(&f["name"]).to_string())
        .collect();
    assert_eq!(names, ["a", "sub", "sub(1)"]);
    // delete → trash; second delete → 209; changes → 211; purge removes
    e.ok("folder/delete", &[("folder_key", &a)]).await;
    assert!(
        e.list("", "folders")
            .await
            .iter()
            .all(|f| f["folderkey"] != a.as_str())
    );
    e.err("folder/delete", &[("folder_key", &a)], 209).await;
    e.err(
        "folder/update",
        &[("folder_key", &a), ("foldername", "z")],
        211,
    )
    .await;
    let r = e.ok("folder/get_info", &[("folder_key", &a)]).await;
    assert!(r["folder_info"]["delete_date"].is_string());
    let trash = e.list("trash", "folders").await;
    assert_eq!(trash.len(), 1);
    e.ok("folder/purge", &[("folder_key", &a)]).await;
    e.err("folder/get_info", &[("folder_key", &a)], 112).await;
    e.err("folder/delete", &[("folder_key", "myfiles")], 114)
        .await;
}

// ---------------------------------------------------------------------------------------------
// files

#[tokio::test]
async fn file_info_links_update_move_copy_delete() {
    let e = start(config()).await;
    let qk = e.h.seed_file("/docs/report.txt", b"report body");
    let docs = e.h.seed_folder("/docs");
    let other = e.h.seed_folder("/other");
    e.h.seed_file("/other/report.txt", b"another");

    let r = e.ok("file/get_info", &[("quick_key", &qk)]).await;
    let fi = &r["file_info"];
    assert_eq!(fi["filename"], "report.txt");
    assert_eq!(fi["size"], "11");
    assert_eq!(fi["hash"], sha(b"report body").as_str());
    assert_eq!(fi["parent_folderkey"], docs.as_str());
    // several keys → file_infos
    let both = format!("{qk},{qk}");
    let r = e.ok("file/get_info", &[("quick_key", &both)]).await;
    assert_eq!(r["file_infos"].as_array().unwrap().len(), 2);
    e.err("file/get_info", &[("quick_key", "aaaaaaaaaaaaaaa")], 110)
        .await;
    e.err("file/get_info", &[("quick_key", &docs)], 111).await;
    e.err("file/get_info", &[], 111).await;

    // get_links: GET like AL/OL
    let r: Value = e
        .http
        .get(e.url("/api/1.5/file/get_links.php"))
        .query(&[
            ("session_token", e.token.as_str()),
            ("quick_key", qk.as_str()),
            ("link_type", "direct_download"),
            ("response_format", "json"),
        ])
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    let link = s(&r["response"]["links"][0]["direct_download"]);
    assert!(
        link.starts_with(&format!("{}/dl/", e.h.base_url())),
        "{link}"
    );
    assert!(link.ends_with(&format!("/{qk}/report.txt")), "{link}");
    assert!(r["response"]["direct_download_free_bandwidth"].is_string());

    // rename: invalid → 118, taken → 143
    e.err(
        "file/update",
        &[("quick_key", &qk), ("filename", "a\\b")],
        118,
    )
    .await;
    e.ok(
        "file/update",
        &[("quick_key", &qk), ("filename", "final.txt")],
    )
    .await;
    e.ok(
        "file/update",
        &[("quick_key", &qk), ("filename", "final.md")],
    )
    .await;
    let r = e.ok("file/get_info", &[("quick_key", &qk)]).await;
    assert_eq!(r["file_info"]["filename"], "final.md");
    e.ok(
        "file/update",
        &[("quick_key", &qk), ("filename", "report.txt")],
    )
    .await;

    // move onto a taken name → renamed and reported
    let r = e
        .ok("file/move", &[("quick_key", &qk), ("folder_key", &other)])
        .await;
    assert_eq!(r["new_names"], json!(["report(1).txt"]));
    // copy → new quickkey, same content
    let r = e
        .ok("file/copy", &[("quick_key", &qk), ("folder_key", "")])
        .await;
    let copy = s(&r["new_quickkeys"][0]).to_string();
    assert_eq!(copy.len(), 15);
    assert_eq!(r["skipped_count"], "0");
    assert_eq!(e.download(&copy).await, b"report body");
    // delete → trash, then 210, 211, purge
    e.ok("file/delete", &[("quick_key", &copy)]).await;
    e.err("file/delete", &[("quick_key", &copy)], 210).await;
    e.err(
        "file/update",
        &[("quick_key", &copy), ("filename", "q.txt")],
        211,
    )
    .await;
    assert!(e.list("", "files").await.is_empty());
    e.ok("file/purge", &[("quick_key", &copy)]).await;
    e.err("file/get_info", &[("quick_key", &copy)], 110).await;
}

#[tokio::test]
async fn names_can_collide_case_insensitively() {
    let e = start(EmulatorConfig {
        case_insensitive_names: true,
        ..config()
    })
    .await;
    e.h.seed_file("/Report.TXT", b"x");
    let check = e.check("", "report.txt", &content(3, 1)).await;
    assert_eq!(check["file_exists"], "yes");
    e.ok("folder/create", &[("foldername", "Dir")]).await;
    let r = e.ok("folder/create", &[("foldername", "DIR")]).await;
    assert_eq!(r["name"], "DIR(1)");
    // the default is case-sensitive
    let e = start(config()).await;
    e.h.seed_file("/Report.TXT", b"x");
    let check = e.check("", "report.txt", &content(3, 1)).await;
    assert_eq!(check["file_exists"], "no");
}

#[tokio::test]
async fn invalid_settings_are_refused() {
    let bad = EmulatorConfig {
        error_status: 42,
        ..config()
    };
    let err = emulator::start(bad).await.err().expect("refused");
    assert!(err.to_string().contains("--error-status"), "{err}");
    let e = start(config()).await;
    let r = e
        .http
        .post(e.url("/__emulator/faults"))
        .body(r#"{"fail_rate": 3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = e
        .http
        .post(e.url("/__emulator/faults"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn comma_lists_apply_completely_or_not_at_all() {
    let e = start(config()).await;
    let a = e.h.seed_file("/a.txt", b"a");
    let b = e.h.seed_file("/b.txt", b"b");
    let dst = e.h.seed_folder("/dst");
    let bad = format!("{a},aaaaaaaaaaaaaaa");
    e.err("file/delete", &[("quick_key", &bad)], 110).await;
    assert_eq!(e.list("", "files").await.len(), 2, "nothing deleted");
    let both = format!("{a},{b}");
    let r = e
        .ok("file/move", &[("quick_key", &both), ("folder_key", &dst)])
        .await;
    assert_eq!(r["new_names"], json!([]));
    assert_eq!(e.list(&dst, "files").await.len(), 2);
    e.ok("file/delete", &[("quick_key", &both)]).await;
    assert!(e.list(&dst, "files").await.is_empty());
}

#[tokio::test]
async fn extension_change_can_be_forbidden() {
    let e = start(EmulatorConfig {
        forbid_extension_change: true,
        ..config()
    })
    .await;
    let qk = e.h.seed_file("/a.txt", b"a");
    e.err(
        "file/update",
        &[("quick_key", &qk), ("filename", "a.txt.old")],
        106,
    )
    .await;
    e.ok("file/update", &[("quick_key", &qk), ("filename", "b.txt")])
        .await;
}

// ---------------------------------------------------------------------------------------------
// downloads

#[tokio::test]
async fn download_get_head_range_and_416() {
    let e = start(config()).await;
    let data = content(300_000, 7);
    let qk = e.h.seed_file("/d.bin", &data);
    let url = e.direct_link(&qk).await;

    let r = e.http.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(r.headers()["accept-ranges"], "bytes");

    let r = e.http.get(&url).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);

    let r = e
        .http
        .get(&url)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 1000-1999/300000");
    assert_eq!(r.headers()["content-length"], "1000");
    assert_eq!(r.bytes().await.unwrap().to_vec(), data[1000..2000]);

    let r = e
        .http
        .get(&url)
        .header("Range", "bytes=299990-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), data[299_990..]);

    let r = e
        .http
        .get(&url)
        .header("Range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), data[299_995..]);

    let r = e
        .http
        .get(&url)
        .header("Range", "bytes=300000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */300000");

    let st = e.stats().await;
    assert_eq!(st["downloads"], json!(4));
    assert_eq!(st["download_bytes"], json!(300_000 + 1000 + 10 + 5));
    // download host requests are not API calls
    assert!(st["api_calls"].get("dl").is_none());
    assert_eq!(st["api_calls"]["file/get_links"], json!(1));
}

#[tokio::test]
async fn direct_links_expire_and_can_redirect() {
    let e = start(EmulatorConfig {
        link_ttl: 1,
        download_redirect: true,
        ..config()
    })
    .await;
    let qk = e.h.seed_file("/r.txt", b"redirected");
    let url = e.direct_link(&qk).await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("/dlh/"));
    assert_eq!(
        e.http.get(&url).send().await.unwrap().text().await.unwrap(),
        "redirected"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = e.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

// ---------------------------------------------------------------------------------------------
// uploads

#[tokio::test]
async fn resumable_upload_with_bitmap_and_resume() {
    let e = start(config()).await;
    let data = content(5 * MIB + 123, 3);
    let check = e.check("", "big.bin", &data).await;
    assert_eq!(check["hash_exists"], "no");
    assert_eq!(check["file_exists"], "no");
    assert!(check["upload_url"]["resumable"].is_string());
    let ru = &check["resumable_upload"];
    assert_eq!(ru["unit_size"], "1048576");
    assert_eq!(ru["number_of_units"], "6");
    assert_eq!(ru["all_units_ready"], "no");
    assert_eq!(ru["bitmap"], json!({"count": "1", "words": ["0"]}));
    let key = s(&ru["upload_key"]).to_string();
    assert_eq!(key.len(), 11);

    // units 0, 2, 5 (out of order), then the check shows them
    for id in [5, 0, 2] {
        let (status, r) = e
            .unit(&e.token, &[("folder_key", "")], "big.bin", &data, MIB, id)
            .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["doupload"], json!({"result": "0", "key": key}));
    }
    let check = e.check("", "big.bin", &data).await;
    assert_eq!(check["resumable_upload"]["bitmap"]["words"], json!(["37"]));
    assert_eq!(check["resumable_upload"]["upload_key"], key.as_str());
    let d = e.poll(&key).await;
    assert_eq!(d["status"], "17");
    assert_eq!(d["quickkey"], "");

    // x-unit-size must match the expected unit length → 129; bad unit hash → 304
    let r = e
        .http
        .post(e.url("/api/1.5/upload/resumable.php"))
        .query(&[("session_token", e.token.as_str())])
        .header("x-filename", "big.bin")
        .header("x-filesize", data.len().to_string())
        .header("x-filehash", &data.hash)
        .header("x-unit-id", "1")
        .header("x-unit-size", MIB.to_string())
        .header("x-unit-hash", sha(b"wrong"))
        .body(data.data[MIB..2 * MIB].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json_value().await;
    assert_eq!(v["response"]["error"], json!(304));

    let mut last = Value::Null;
    for id in [1, 3, 4] {
        let (_, r) = e.unit(&e.token, &[], "big.bin", &data, MIB, id).await;
        last = r;
    }
    assert_eq!(last["resumable_upload"]["all_units_ready"], "yes");
    assert_eq!(last["resumable_upload"]["bitmap"]["words"], json!(["63"]));
    let d = e.poll_until_done(&key).await;
    assert_eq!(d["fileerror"], "");
    assert_eq!(d["filename"], "big.bin");
    assert_eq!(d["size"], (5 * MIB + 123).to_string().as_str());
    assert_eq!(d["hash"], sha(&data).as_str());
    let qk = s(&d["quickkey"]).to_string();
    assert_eq!(e.download(&qk).await, data);
    let st = e.stats().await;
    assert_eq!(st["upload_unit_bytes"], json!(data.len() + MIB));
    assert_eq!(st["errors"]["304"], json!(1));
}

#[tokio::test]
async fn duplicate_actions_skip_keep_replace() {
    let e = start(config()).await;
    let first = content(1000, 1);
    let d = e.upload("", "dup.txt", &first, &[]).await;
    let qk = s(&d["quickkey"]).to_string();

    let second = content(2000, 2);
    // default skip → fileerror 13
    let d = e.upload("", "dup.txt", &second, &[]).await;
    assert_eq!(d["fileerror"], "13");
    assert_eq!(d["quickkey"], "");
    // keep → renamed copy
    let d = e
        .upload("", "dup.txt", &second, &[("action_on_duplicate", "keep")])
        .await;
    assert_eq!(d["filename"], "dup(1).txt");
    assert_ne!(d["quickkey"], qk.as_str());
    // replace → same quickkey, new revision and content
    let before = e.ok("file/get_info", &[("quick_key", &qk)]).await;
    let third = content(3000, 3);
    let d = e
        .upload("", "dup.txt", &third, &[("action_on_duplicate", "replace")])
        .await;
    assert_eq!(d["quickkey"], qk.as_str());
    let after = e.ok("file/get_info", &[("quick_key", &qk)]).await;
    let rev = |v: &Value| s(&v["file_info"]["revision"]).parse::<u64>().unwrap();
    assert!(rev(&after) > rev(&before));
    assert_eq!(after["file_info"]["size"], "3000");
    assert_eq!(e.download(&qk).await, third);
}

#[tokio::test]
async fn replace_keeps_old_content_until_the_new_one_completes() {
    let e = start(config()).await;
    let old = content(5 * MIB, 1);
    let qk = e.h.seed_file("/r.bin", &old);
    let new = content(5 * MIB, 2);
    let q = [("action_on_duplicate", "replace")];
    for id in 0..3 {
        e.unit(&e.token, &q, "r.bin", &new, MIB, id).await;
    }
    assert_eq!(e.download(&qk).await, old);
    let mut key = String::new();
    for id in 3..5 {
        let (_, r) = e.unit(&e.token, &q, "r.bin", &new, MIB, id).await;
        key = s(&r["doupload"]["key"]).to_string();
    }
    let d = e.poll_until_done(&key).await;
    assert_eq!(d["quickkey"], qk.as_str());
    assert_eq!(e.download(&qk).await, new);
}

#[tokio::test]
async fn instant_upload_and_check_flags() {
    let e = start(config()).await;
    let data = Payload::new(b"known content".to_vec());
    let qk = e.h.seed_file("/src/known.txt", &data);
    let dst = e.h.seed_folder("/dst");
    let check = e.check(&dst, "copy.txt", &data).await;
    assert_eq!(check["hash_exists"], "yes");
    assert_eq!(check["in_account"], "yes");
    assert_eq!(check["in_folder"], "no");
    assert_eq!(check["file_exists"], "no");
    let size = data.len().to_string();
    let hash = sha(&data);
    let r = e
        .ok(
            "upload/instant",
            &[
                ("folder_key", &dst),
                ("filename", "copy.txt"),
                ("hash", &hash),
                ("size", &size),
            ],
        )
        .await;
    let new_qk = s(&r["quickkey"]).to_string();
    assert_ne!(new_qk, qk);
    assert_eq!(r["filename"], "copy.txt");
    assert!(r["new_device_revision"].is_u64());
    assert_eq!(e.download(&new_qk).await, data);
    let check = e.check(&dst, "copy.txt", &data).await;
    assert_eq!(check["in_folder"], "yes");
    assert_eq!(check["file_exists"], "yes");
    assert_eq!(check["different_hash"], "no");
    assert_eq!(check["duplicate_quickkey"], new_qk.as_str());
    // unknown hash
    let unknown = sha(b"never stored");
    e.err(
        "upload/instant",
        &[("filename", "x"), ("hash", &unknown), ("size", "12")],
        265,
    )
    .await;
}

#[tokio::test]
async fn zero_byte_uploads_are_rejected() {
    let e = start(config()).await;
    let d = e
        .upload("", "empty.txt", &Payload::new(Vec::new()), &[])
        .await;
    assert_eq!(d["status"], "99");
    assert_eq!(d["fileerror"], "2");
    assert_eq!(d["quickkey"], "");
    assert!(e.list("", "files").await.is_empty());
    // the empty content is never "known": no instant upload of it either
    let empty = sha(b"");
    let check = e.check("", "empty.txt", &Payload::new(Vec::new())).await;
    assert_eq!(check["hash_exists"], "no");
    e.err(
        "upload/instant",
        &[("filename", "e.txt"), ("hash", &empty), ("size", "0")],
        265,
    )
    .await;
}

#[tokio::test]
async fn oversized_uploads_are_refused_up_front() {
    let e = start(EmulatorConfig {
        max_upload_size: 1000,
        ..config()
    })
    .await;
    let huge = u64::MAX.to_string();
    let hash = sha(b"x");
    e.err(
        "upload/check",
        &[
            ("filename", "h"),
            ("size", &huge),
            ("hash", &hash),
            ("resumable", "yes"),
        ],
        282,
    )
    .await;
    let (status, r) = e
        .unit(&e.token, &[], "h.bin", &content(1001, 1), 4 * MIB, 0)
        .await;
    assert_eq!(status, 400);
    assert_eq!(r["error"], json!(282));
}

#[tokio::test]
async fn simple_upload_raw_and_multipart() {
    let e = start(config()).await;
    let data = Payload::new(b"simple upload body".to_vec());
    let r: Value = e
        .http
        .post(e.url("/api/1.5/upload/simple.php"))
        .query(&[
            ("session_token", e.token.as_str()),
            ("response_format", "json"),
        ])
        .header("x-filename", "s.txt")
        .header("x-filesize", data.len().to_string())
        .header("x-filehash", &data.hash)
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(r["response"]["server"], "live");
    let key = s(&r["response"]["doupload"]["key"]).to_string();
    let d = e.poll_until_done(&key).await;
    assert_eq!(e.download(s(&d["quickkey"])).await, data);

    let body = "--B0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.txt\"\r\n\
Content-Type: text/plain\r\n\r\nmultipart body\r\n--B0--\r\n"
        .to_string();
    let r: Value = e
        .http
        .post(e.url("/api/1.5/upload/simple.php"))
        .query(&[("session_token", e.token.as_str())])
        .header("content-type", "multipart/form-data; boundary=B0")
        .body(body)
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    let key = s(&r["response"]["doupload"]["key"]).to_string();
    let d = e.poll_until_done(&key).await;
    assert_eq!(d["filename"], "m.txt");
    assert_eq!(e.download(s(&d["quickkey"])).await, b"multipart body");
    let st = e.stats().await;
    assert_eq!(st["upload_simple_bytes"], json!(data.len() + 14));
}

#[tokio::test]
async fn multipart_simple_upload_with_token_field() {
    let e = start(config()).await;
    let body = format!(
        "--B1\r\nContent-Disposition: form-data; name=\"session_token\"\r\n\r\n{}\r\n\
--B1\r\nContent-Disposition: form-data; name=\"Filedata\"; filename=\"f.txt\"\r\n\r\n\
field token\r\n--B1--\r\n",
        e.token
    );
    let post = |body: String| {
        e.http
            .post(e.url("/api/1.5/upload/simple.php"))
            .header("content-type", "multipart/form-data; boundary=B1")
            .body(body)
            .send()
    };
    let r = post(body).await.unwrap().json_value().await;
    assert_eq!(r["response"]["result"], "Success", "{r}");
    let key = s(&r["response"]["doupload"]["key"]).to_string();
    let d = e.poll_until_done(&key).await;
    assert_eq!(d["filename"], "f.txt");
    assert_eq!(e.download(s(&d["quickkey"])).await, b"field token");
    // no token anywhere → 104
    let body = "--B1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"g.txt\"\r\n\r\n\
x\r\n--B1--\r\n"
        .to_string();
    let r = post(body).await.unwrap().json_value().await;
    assert_eq!(r["response"]["error"], json!(104));
}

#[tokio::test]
async fn raw_utf8_filenames_round_trip() {
    let e = start(config()).await;
    let name = "naïve résumé 日本.txt";
    let d = e.upload("", name, &content(10, 1), &[]).await;
    assert_eq!(d["filename"], name);
    let files = e.list("", "files").await;
    assert_eq!(files[0]["filename"], name);
    let link = e.direct_link(s(&d["quickkey"])).await;
    assert!(
        link.ends_with("/na%C3%AFve%20r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.txt"),
        "{link}"
    );
}

#[tokio::test]
async fn whole_file_hash_mismatch_is_fileerror_7() {
    let e = start(config()).await;
    let data = content(100, 9);
    let wrong = sha(b"something else");
    // one unit whose own hash is right but whose declared file hash is not
    let r = e
        .http
        .post(e.url("/api/1.5/upload/resumable.php"))
        .query(&[("session_token", e.token.as_str())])
        .header("x-filename", "h.bin")
        .header("x-filesize", "100")
        .header("x-filehash", &wrong)
        .header("x-unit-id", "0")
        .header("x-unit-size", "100")
        .header("x-unit-hash", &data.hash)
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    let v: Value = r.json_value().await;
    let key = s(&v["response"]["doupload"]["key"]).to_string();
    let d = e.poll_until_done(&key).await;
    assert_eq!(d["fileerror"], "7");
}

#[tokio::test]
async fn poll_walks_through_statuses_before_99() {
    let e = start(EmulatorConfig {
        faults: Faults {
            poll_delay_ms: 1000,
            ..Faults::default()
        },
        ..config()
    })
    .await;
    let data = content(10, 1);
    let (_, r) = e.unit(&e.token, &[], "p.txt", &data, 4 * MIB, 0).await;
    let key = s(&r["doupload"]["key"]).to_string();
    let mut seen = Vec::new();
    loop {
        // poll without any token, as FUSE does
        let (status, r) = e.raw_call("upload/poll_upload", &[("key", &key)]).await;
        assert_eq!(status, 200);
        let st = s(&r["doupload"]["status"]).to_string();
        if seen.last() != Some(&st) {
            seen.push(st.clone());
        }
        if st == "99" {
            assert_eq!(s(&r["doupload"]["quickkey"]).len(), 15);
            break;
        }
        assert_eq!(r["doupload"]["quickkey"], "", "no quickkey before 99");
        assert!(
            e.list("", "files").await.is_empty(),
            "file appears only at 99"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.first().map(String::as_str), Some("18"));
    assert!(seen.len() >= 4, "{seen:?}");
    for st in &seen {
        assert!(
            ["4", "5", "6", "18", "19", "99"].contains(&st.as_str()),
            "{seen:?}"
        );
    }
    // malformed and unknown keys
    let r = e.ok("upload/poll_upload", &[("key", "short")]).await;
    assert_eq!(r["doupload"]["result"], "-20");
    let r = e.ok("upload/poll_upload", &[("key", "aaaaaaaaaaa")]).await;
    assert_eq!(r["doupload"]["result"], "-80");
    e.err("upload/poll_upload", &[], 129).await;
}

#[tokio::test]
async fn storage_limit_and_missing_folder_fileerrors() {
    let e = start(EmulatorConfig {
        storage_limit: 1000,
        ..config()
    })
    .await;
    let d = e.upload("", "big.bin", &content(1500, 1), &[]).await;
    assert_eq!(d["fileerror"], "15");
    let check = e.check("", "small.bin", &content(10, 1)).await;
    assert_eq!(check["available_space"], "1000");

    // the destination folder goes away while the upload is being verified
    let e = start(EmulatorConfig {
        faults: Faults {
            poll_delay_ms: 300,
            ..Faults::default()
        },
        ..config()
    })
    .await;
    let dir = e.h.seed_folder("/later");
    let data = content(10, 2);
    let (_, r) = e
        .unit(
            &e.token,
            &[("folder_key", &dir)],
            "v.bin",
            &data,
            4 * MIB,
            0,
        )
        .await;
    let key = s(&r["doupload"]["key"]).to_string();
    e.ok("folder/purge", &[("folder_key", &dir)]).await;
    let d = e.poll_until_done(&key).await;
    assert_eq!(d["fileerror"], "14");
}

// ---------------------------------------------------------------------------------------------
// faults

#[tokio::test]
async fn fault_error100_html403_and_drop() {
    let e = start(config()).await;
    e.h.set_faults(Faults {
        fail_rate: 1.0,
        fail_mode: FailMode::Error100,
        ..Faults::default()
    });
    let r = e
        .http
        .post(e.url("/api/1.5/user/get_info.php"))
        .form(&[("session_token", e.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let v: Value = r.json_value().await;
    assert_eq!(v["response"]["error"], json!(100));

    e.h.set_faults(Faults {
        fail_rate: 1.0,
        fail_mode: FailMode::Html403,
        ..Faults::default()
    });
    let r = e
        .http
        .post(e.url("/api/1.5/user/get_info.php"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("Just a moment..."));

    // switch through the admin endpoint this time
    let r = e
        .http
        .post(e.url("/__emulator/faults"))
        .header("content-type", "application/json")
        .body(json!({"fail_rate": 1.0, "fail_mode": "drop"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = e
        .http
        .post(e.url("/api/1.5/user/get_info.php"))
        .send()
        .await;
    assert!(r.is_err(), "connection dropped without a response");

    // admin endpoints and the token endpoint are not affected
    assert_eq!(e.stats().await["faults_injected"]["drop"], json!(1));
    e.h.set_faults(Faults::default());
    e.ok("user/get_info", &[]).await;
    let st = e.stats().await;
    assert_eq!(st["api_calls"]["user/get_info"], json!(4));
    assert_eq!(st["errors"]["100"], json!(1));
}

#[tokio::test]
async fn fault_mixed_mode_and_partial_rate() {
    let e = start(config()).await;
    e.h.set_faults(Faults {
        fail_rate: 1.0,
        fail_mode: FailMode::Mixed,
        ..Faults::default()
    });
    let (mut e500, mut e403, mut dropped) = (0, 0, 0);
    for _ in 0..30 {
        // a fresh client each time: a dropped connection must not poison the pool
        let client = reqwest::Client::new();
        match client
            .post(e.url("/api/1.5/user/get_info.php"))
            .send()
            .await
        {
            Ok(r) if r.status() == 500 => e500 += 1,
            Ok(r) if r.status() == 403 => e403 += 1,
            Ok(r) => panic!("unexpected status {}", r.status()),
            Err(_) => dropped += 1,
        }
    }
    assert!(
        e500 > 0 && e403 > 0 && dropped > 0,
        "{e500} {e403} {dropped}"
    );

    e.h.set_faults(Faults {
        fail_rate: 0.5,
        ..Faults::default()
    });
    let mut failures = 0;
    for _ in 0..60 {
        let (status, _) = e.call("user/get_info", &[]).await;
        if status == 500 {
            failures += 1;
        }
    }
    assert!(
        (10..=50).contains(&failures),
        "{failures} of 60 failed at rate 0.5"
    );
}

#[tokio::test]
async fn seeded_emulators_make_the_same_keys() {
    let mut keys = Vec::new();
    for _ in 0..2 {
        let e = start(EmulatorConfig {
            seed: Some(7),
            ..EmulatorConfig::default()
        })
        .await;
        let r = e.ok("folder/create", &[("foldername", "same")]).await;
        keys.push((e.token.clone(), s(&r["folder_key"]).to_string()));
    }
    assert_eq!(keys[0], keys[1]);
}

#[tokio::test]
async fn fault_rate_limit_answers_163() {
    let e = start(EmulatorConfig {
        faults: Faults {
            rate_limit_per_sec: 3,
            ..Faults::default()
        },
        ..config()
    })
    .await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let (_, r) = e.call("user/get_info", &[]).await;
        codes.push(r["error"].as_u64().unwrap_or(0));
    }
    assert_eq!(codes, [0, 0, 0, 163, 163, 163]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    e.ok("user/get_info", &[]).await;
}

#[tokio::test]
async fn fault_async_operations_and_208() {
    let e = start(EmulatorConfig {
        faults: Faults {
            async_ops: true,
            async_ms: 400,
            ..Faults::default()
        },
        ..config()
    })
    .await;
    let a = e.h.seed_folder("/a");
    let b = e.h.seed_folder("/b");
    let r = e
        .ok(
            "folder/move",
            &[("folder_key_src", &a), ("folder_key_dst", &b)],
        )
        .await;
    assert_eq!(r["asynchronous"], "yes");
    let st = e.ok("device/get_status", &[]).await;
    assert_eq!(st["async_jobs_in_progress"], "yes");
    e.err("folder/create", &[("foldername", "x")], 208).await;
    assert_eq!(e.list(&b, "folders").await.len(), 0, "not moved yet");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = e.ok("device/get_status", &[]).await;
    assert_eq!(st["async_jobs_in_progress"], "no");
    assert_eq!(e.list(&b, "folders").await.len(), 1, "moved");
    // an async copy's answer names the keys that appear later
    let r = e
        .ok(
            "folder/copy",
            &[("folder_key_src", &b), ("folder_key_dst", "")],
        )
        .await;
    let new_key = s(&r["new_folderkeys"][0]).to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = e.ok("folder/get_info", &[("folder_key", &new_key)]).await;
    assert_eq!(r["folder_info"]["name"], "b(1)");
}

#[tokio::test]
async fn fault_periodic_token_expiry() {
    let e = start(EmulatorConfig {
        faults: Faults {
            expire_tokens_every_secs: 1,
            ..Faults::default()
        },
        ..config()
    })
    .await;
    e.ok("user/get_info", &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    e.err("user/get_info", &[], 105).await;
}

#[tokio::test]
async fn fault_nth_unit_fails_and_upload_resumes() {
    let e = start(config()).await;
    e.h.set_faults(Faults {
        fail_upload_unit: 2,
        ..Faults::default()
    });
    let data = content(5 * MIB, 4);
    let mut failed = Vec::new();
    let mut key = String::new();
    for id in 0..5 {
        let (status, r) = e.unit(&e.token, &[], "f.bin", &data, MIB, id).await;
        if status != 200 {
            assert_eq!(status, 500);
            assert_eq!(r["error"], json!(100));
            failed.push(id);
        } else {
            key = s(&r["doupload"]["key"]).to_string();
        }
    }
    assert_eq!(failed, [1]);
    let check = e.check("", "f.bin", &data).await;
    assert_eq!(check["resumable_upload"]["bitmap"]["words"], json!(["29"]));
    let (status, _) = e.unit(&e.token, &[], "f.bin", &data, MIB, 1).await;
    assert_eq!(status, 200);
    let d = e.poll_until_done(&key).await;
    assert_eq!(e.download(s(&d["quickkey"])).await, data);
}

#[tokio::test]
async fn fault_unit_hash_mismatch_and_latency() {
    let e = start(config()).await;
    e.h.set_faults(Faults {
        unit_hash_mismatch: 1,
        latency_ms: 200,
        ..Faults::default()
    });
    let data = content(100, 1);
    let started = std::time::Instant::now();
    let (status, r) = e.unit(&e.token, &[], "m.bin", &data, 4 * MIB, 0).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(status, 400);
    assert_eq!(r["error"], json!(304));
    let (status, r) = e.unit(&e.token, &[], "m.bin", &data, 4 * MIB, 0).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        e.stats().await["faults_injected"]["unit_hash_mismatch"],
        json!(1)
    );
}

#[tokio::test]
async fn fault_link_errors_and_cut_downloads() {
    let e = start(config()).await;
    let data = content(200_000, 3);
    let qk = e.h.seed_file("/c.bin", &data);
    e.h.set_faults(Faults {
        link_error_rate: 1.0,
        download_cut_after_bytes: 100_000,
        ..Faults::default()
    });
    let r = e
        .ok(
            "file/get_links",
            &[("quick_key", &qk), ("link_type", "direct_download")],
        )
        .await;
    assert_eq!(
        r["links"][0],
        json!({"quickkey": qk, "error": "User lacks permissions"})
    );
    e.h.set_faults(Faults {
        download_cut_after_bytes: 100_000,
        ..Faults::default()
    });
    let url = e.direct_link(&qk).await;
    let r = e.http.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["content-length"], "200000");
    let mut got = 0;
    let mut stream = r.bytes_stream();
    let mut failed = false;
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => got += c.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body ends with an error");
    assert_eq!(got, 100_000);
    // a range that fits below the cut is whole
    // (a fresh client: the pooled connection was the one cut)
    let r = reqwest::Client::new()
        .get(&url)
        .header("Range", "bytes=0-999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 1000);
}

#[tokio::test]
async fn error_status_is_configurable() {
    let e = start(EmulatorConfig {
        error_status: 200,
        ..config()
    })
    .await;
    let (status, r) = e
        .call("file/get_info", &[("quick_key", "aaaaaaaaaaaaaaa")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["error"], json!(110));
}

// ---------------------------------------------------------------------------------------------
// admin, stats, persistence

#[tokio::test]
async fn admin_seed_stats_and_reset() {
    let e = start(config()).await;
    let r: Value = e
        .http
        .post(e.url("/__emulator/seed?path=/s/t.txt"))
        .body("seeded")
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    let qk = s(&r["quickkey"]).to_string();
    let r: Value = e
        .http
        .post(e.url("/__emulator/seed?path=/s/u/"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(s(&r["folderkey"]).len(), 13);
    assert_eq!(e.download(&qk).await, b"seeded");
    e.list("", "folders").await;
    e.list("", "files").await;
    let st = e.stats().await;
    assert_eq!(st, e.h.stats());
    assert_eq!(st["files"], json!(1));
    assert_eq!(st["folders"], json!(2));
    assert_eq!(st["api_calls"]["folder/get_content"], json!(2));
    assert_eq!(st["api_calls"]["application/get_session_token"], json!(1));
    assert_eq!(st["total_api_calls"], json!(4));
    assert_eq!(st["download_bytes"], json!(6));
    e.http
        .post(e.url("/__emulator/stats/reset"))
        .send()
        .await
        .unwrap();
    let st = e.stats().await;
    assert_eq!(st["total_api_calls"], json!(0));
    assert_eq!(st["api_calls"], json!({}));
    let r = e
        .http
        .post(e.url("/__emulator/expire-tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    e.err("user/get_info", &[], 105).await;
}

#[tokio::test]
async fn data_dir_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..config()
    };
    let e = start(cfg.clone()).await;
    let data = content(5 * MIB, 5);
    let d = e.upload("", "kept.bin", &data, &[]).await;
    let qk = s(&d["quickkey"]).to_string();
    let r = e.ok("folder/create", &[("foldername", "kept")]).await;
    let fk = s(&r["folder_key"]).to_string();
    // half an upload, to resume after the restart
    let other = content(5 * MIB, 6);
    for id in 0..2 {
        e.unit(&e.token, &[], "half.bin", &other, MIB, id).await;
    }
    let token = e.token.clone();
    e.h.shutdown().await;

    let mut e = start(cfg).await;
    e.ok("folder/get_info", &[("folder_key", &fk)]).await;
    assert_eq!(e.download(&qk).await, data);
    let check = e.check("", "half.bin", &other).await;
    assert_eq!(check["resumable_upload"]["bitmap"]["words"], json!(["3"]));
    // tokens survive too
    e.token = token;
    e.ok("user/get_info", &[]).await;
}

#[tokio::test]
async fn large_upload_streams_through_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..config()
    })
    .await;
    let data = content(64 * MIB, 8);
    let d = e.upload("", "huge.bin", &data, &[]).await;
    assert_eq!(d["size"], (64 * MIB).to_string().as_str());
    let blob = dir.path().join("blobs").join(sha(&data));
    assert_eq!(std::fs::metadata(&blob).unwrap().len(), (64 * MIB) as u64);
    // units are cleaned up after assembly
    let units = std::fs::read_dir(dir.path().join("units")).unwrap().count();
    assert_eq!(units, 0);
    let url = e.direct_link(s(&d["quickkey"])).await;
    let r = e.http.get(&url).send().await.unwrap();
    let mut hasher = Sha256::new();
    let mut stream = r.bytes_stream();
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        hasher.update(chunk.unwrap());
    }
    assert_eq!(hex::encode(hasher.finalize()), sha(&data));
}

#[tokio::test]
async fn dropping_the_handle_keeps_serving_and_shutdown_stops() {
    let h = emulator::start(config()).await.unwrap();
    let url = format!("{}/__emulator/stats", h.base_url());
    let addr = h.addr();
    assert!(addr.ip().is_loopback());
    drop(h);
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);

    let h = emulator::start(config()).await.unwrap();
    let url = format!("{}/__emulator/stats", h.base_url());
    h.shutdown().await;
    assert!(
        reqwest::get(&url).await.is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn an_upload_being_verified_completes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        faults: Faults {
            poll_delay_ms: 800,
            ..Faults::default()
        },
        ..config()
    };
    let e = start(cfg.clone()).await;
    let data = content(1000, 9);
    let (_, r) = e.unit(&e.token, &[], "late.bin", &data, 4 * MIB, 0).await;
    let key = s(&r["doupload"]["key"]).to_string();
    assert_ne!(e.poll(&key).await["status"], "99");
    let token = e.token.clone();
    e.h.shutdown().await;

    let mut e = start(EmulatorConfig {
        faults: Faults::default(),
        ..cfg
    })
    .await;
    e.token = token;
    let d = e.poll_until_done(&key).await;
    assert_eq!(d["fileerror"], "");
    assert_eq!(e.download(s(&d["quickkey"])).await, data);
    // the old instance's timer fired meanwhile, but must not have written the data dir
    tokio::time::sleep(Duration::from_millis(300)).await;
    e.h.shutdown().await;
    let e = start(EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..config()
    })
    .await;
    assert_eq!(e.list("", "files").await.len(), 1);
}
