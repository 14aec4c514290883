//! One test per WebDAV method and its error paths, against the server backed
//! by the emulator.

use crate::util::{Options, TestServer, hrefs, propfind};

async fn put(server: &TestServer, path: &str, body: impl Into<reqwest::Body>) -> u16 {
    server
        .req("PUT", path)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get(server: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let resp = server.req("GET", path).send().await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed as usize) % 251) as u8)
        .collect()
}

#[tokio::test]
async fn wrong_credentials_get_401_and_cost_no_api_call() {
    let server = TestServer::start().await;
    let before = server.total_api_calls();
    let resp = server
        .anon("PROPFIND", "/")
        .basic_auth("alice", Some("not-the-password"))
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp = server.anon("GET", "/README.txt").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        server.total_api_calls(),
        before,
        "{}",
        server.emulator.stats()
    );
}

#[tokio::test]
async fn healthz_needs_no_credentials() {
    let server = TestServer::start().await;
    let resp = server.anon("GET", "/healthz").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn propfind_lists_what_the_account_holds() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/docs/a.txt", b"hello");
    server.emulator.seed_folder("/docs/sub");
    let (status, body) = propfind(&server, "/docs/", "1").await;
    assert_eq!(status, 207, "{body}");
    let names = hrefs(&body);
    assert!(names.contains(&"/docs/".to_string()), "{names:?}");
    assert!(names.contains(&"/docs/a.txt".to_string()), "{names:?}");
    assert!(names.contains(&"/docs/sub/".to_string()), "{names:?}");
    assert!(
        body.contains("<D:getcontentlength>5</D:getcontentlength>")
            || body.contains("getcontentlength>5<"),
        "{body}"
    );

    let (status, body) = propfind(&server, "/docs/a.txt", "0").await;
    assert_eq!(status, 207);
    assert_eq!(hrefs(&body), vec!["/docs/a.txt".to_string()]);

    let (status, _) = propfind(&server, "/docs/missing.txt", "0").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn put_then_get_round_trips_small_and_multi_unit_files() {
    let server = TestServer::start().await;
    let small = b"just a few bytes".to_vec();
    assert_eq!(put(&server, "/small.txt", small.clone()).await, 201);
    assert_eq!(get(&server, "/small.txt").await, (200, small));

    // 6 MiB: the emulator picks 1 MiB units, so this takes six units.
    let big = pattern(6 * 1024 * 1024 + 123, 7);
    assert_eq!(put(&server, "/big.bin", big.clone()).await, 201);
    let (status, body) = get(&server, "/big.bin").await;
    assert_eq!(status, 200);
    assert!(body == big, "downloaded content differs");
    assert!(
        server.api_calls("upload/resumable") >= 6,
        "{}",
        server.emulator.stats()
    );
}

#[tokio::test]
async fn get_honours_range_and_head_fetches_no_link() {
    let server = TestServer::start().await;
    let data = pattern(100_000, 3);
    server.emulator.seed_file("/r.bin", &data);
    let links_before = server.api_calls("file/get_links");
    let resp = server.req("HEAD", "/r.bin").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "100000");
    assert_eq!(
        server.api_calls("file/get_links"),
        links_before,
        "HEAD must not fetch a link"
    );

    let resp = server
        .req("GET", "/r.bin")
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 1000-1999/100000");
    assert_eq!(
        resp.bytes().await.unwrap().to_vec(),
        data[1000..2000].to_vec()
    );

    let resp = server
        .req("GET", "/r.bin")
        .header("Range", "bytes=99990-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data[99990..].to_vec());
}

#[tokio::test]
async fn put_into_a_missing_parent_is_409() {
    let server = TestServer::start().await;
    assert_eq!(put(&server, "/no/such/dir/f.txt", "x").await, 409);
    assert_eq!(server.emulator.stats()["files"].as_u64(), Some(0));
}

#[tokio::test]
async fn mkcol_creates_and_refuses_existing_or_orphan_paths() {
    let server = TestServer::start().await;
    let resp = server.req("MKCOL", "/new").send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let resp = server.req("MKCOL", "/new").send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let resp = server.req("MKCOL", "/missing/child").send().await.unwrap();
    assert_eq!(resp.status(), 409);
    let (status, body) = propfind(&server, "/", "1").await;
    assert_eq!(status, 207);
    assert!(hrefs(&body).contains(&"/new/".to_string()));
    assert_eq!(server.emulator.stats()["folders"].as_u64(), Some(1));
}

#[tokio::test]
async fn delete_moves_files_and_folders_to_the_trash() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/d/f.txt", b"1");
    server.emulator.seed_file("/g.txt", b"2");
    assert_eq!(
        server
            .req("DELETE", "/g.txt")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        server.req("DELETE", "/d/").send().await.unwrap().status(),
        204
    );
    assert_eq!(get(&server, "/g.txt").await.0, 404);
    assert_eq!(propfind(&server, "/d/", "0").await.0, 404);
    assert_eq!(
        server
            .req("DELETE", "/g.txt")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn copy_and_move_files_and_folders_server_side() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/a/one.txt", b"one");
    server.emulator.seed_file("/a/inner/two.txt", b"two");
    server.emulator.seed_folder("/b");
    server.emulator.seed_file("/x.txt", b"x");
    server.emulator.seed_file("/y.txt", b"y");
    let dest = |p: &str| format!("{}{}", server.url, p);

    // COPY a file under a new name in the same folder.
    let resp = server
        .req("COPY", "/a/one.txt")
        .header("Destination", dest("/a/uno.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(get(&server, "/a/uno.txt").await, (200, b"one".to_vec()));
    assert_eq!(get(&server, "/a/one.txt").await, (200, b"one".to_vec()));

    // MOVE (rename + move) a file.
    let resp = server
        .req("MOVE", "/a/uno.txt")
        .header("Destination", dest("/b/eins.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(get(&server, "/b/eins.txt").await, (200, b"one".to_vec()));
    assert_eq!(get(&server, "/a/uno.txt").await.0, 404);

    // MOVE a folder with its subtree.
    let resp = server
        .req("MOVE", "/a/inner/")
        .header("Destination", dest("/b/moved/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        get(&server, "/b/moved/two.txt").await,
        (200, b"two".to_vec())
    );
    assert_eq!(propfind(&server, "/a/inner/", "0").await.0, 404);

    // COPY a folder.
    let resp = server
        .req("COPY", "/b/")
        .header("Destination", dest("/c/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        get(&server, "/c/moved/two.txt").await,
        (200, b"two".to_vec())
    );

    // MOVE onto an existing file without Overwrite: T fails, with it succeeds.
    let resp = server
        .req("MOVE", "/x.txt")
        .header("Destination", dest("/y.txt"))
        .header("Overwrite", "F")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412);
    let resp = server
        .req("MOVE", "/x.txt")
        .header("Destination", dest("/y.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(get(&server, "/y.txt").await, (200, b"x".to_vec()));
}

#[tokio::test]
async fn overwrite_keeps_one_file_with_the_new_content() {
    let server = TestServer::start().await;
    assert_eq!(put(&server, "/o.txt", "first version").await, 201);
    assert_eq!(put(&server, "/o.txt", "second, longer version").await, 204);
    assert_eq!(
        get(&server, "/o.txt").await,
        (200, b"second, longer version".to_vec())
    );
    assert_eq!(server.emulator.stats()["files"].as_u64(), Some(1));
}

#[tokio::test]
async fn zero_byte_files_live_in_the_overlay() {
    let server = TestServer::start().await;
    assert_eq!(put(&server, "/empty.txt", "").await, 201);
    assert_eq!(get(&server, "/empty.txt").await, (200, Vec::new()));
    let (_, body) = propfind(&server, "/", "1").await;
    assert!(hrefs(&body).contains(&"/empty.txt".to_string()), "{body}");
    assert_eq!(server.emulator.stats()["files"].as_u64(), Some(0));
    // A later real PUT replaces it with an upload under the same name.
    assert_eq!(put(&server, "/empty.txt", "now with content").await, 204);
    assert_eq!(
        get(&server, "/empty.txt").await,
        (200, b"now with content".to_vec())
    );
    assert_eq!(server.emulator.stats()["files"].as_u64(), Some(1));
}

#[tokio::test]
async fn lock_unlock_and_lock_null_resources() {
    let server = TestServer::start().await;
    let body = r#"<?xml version="1.0"?><lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope><locktype><write/></locktype><owner>t</owner></lockinfo>"#;
    let resp = server
        .req("LOCK", "/locked.txt")
        .header("Timeout", "Second-60")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        201,
        "lock on an unmapped URL creates a lock-null resource"
    );
    let token = resp.headers()["lock-token"].to_str().unwrap().to_string();
    // Someone without the token cannot write.
    assert_eq!(put(&server, "/locked.txt", "x").await, 423);
    let resp = server
        .req("PUT", "/locked.txt")
        .header("If", format!("({token})"))
        .body("mine")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let resp = server
        .req("UNLOCK", "/locked.txt")
        .header("Lock-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(get(&server, "/locked.txt").await, (200, b"mine".to_vec()));
}

#[tokio::test]
async fn dead_properties_survive_a_restart() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/p.txt", b"p");
    let patch = r#"<?xml version="1.0"?><propertyupdate xmlns="DAV:" xmlns:z="urn:example"><set><prop><z:color>blue</z:color></prop></set></propertyupdate>"#;
    let resp = server
        .req("PROPPATCH", "/p.txt")
        .body(patch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 207);
    let server = server.restart(Options::default()).await;
    let find = r#"<?xml version="1.0"?><propfind xmlns="DAV:" xmlns:z="urn:example"><prop><z:color/></prop></propfind>"#;
    let resp = server
        .req("PROPFIND", "/p.txt")
        .header("Depth", "0")
        .body(find)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 207);
    let text = resp.text().await.unwrap();
    assert!(text.contains("blue"), "{text}");
}

#[tokio::test]
async fn quota_comes_from_the_account() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/q.bin", &pattern(5000, 1));
    let find = r#"<?xml version="1.0"?><propfind xmlns="DAV:"><prop><quota-available-bytes/><quota-used-bytes/></prop></propfind>"#;
    let resp = server
        .req("PROPFIND", "/")
        .header("Depth", "0")
        .body(find)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 207);
    let text = resp.text().await.unwrap();
    assert!(text.contains("quota-used-bytes>5000<"), "{text}");
    assert!(text.contains("quota-available-bytes>"), "{text}");
}

#[tokio::test]
async fn restart_with_only_the_state_directory_keeps_working() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/keep/me.txt", b"still here");
    assert_eq!(
        get(&server, "/keep/me.txt").await,
        (200, b"still here".to_vec())
    );
    let server = server
        .restart(Options {
            no_cookie: true,
            ..Options::default()
        })
        .await;
    let before = server.api_calls("application/get_session_token");
    let (status, body) = propfind(&server, "/keep/", "1").await;
    assert_eq!(status, 207);
    assert!(hrefs(&body).contains(&"/keep/me.txt".to_string()));
    assert_eq!(
        get(&server, "/keep/me.txt").await,
        (200, b"still here".to_vec())
    );
    assert_eq!(
        server.api_calls("application/get_session_token"),
        before,
        "no new login needed"
    );
}

#[tokio::test]
async fn a_failed_listing_is_an_error_not_an_empty_folder() {
    let server = TestServer::start().await;
    server.emulator.seed_file("/f/x.txt", b"x");
    server.emulator.set_faults(mediafire_dav::emulator::Faults {
        fail_rate: 1.0,
        ..Default::default()
    });
    let (status, body) = propfind(&server, "/f/", "1").await;
    assert!(status >= 500 && status != 501, "status {status}: {body}");
}
