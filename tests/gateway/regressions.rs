//! Regressions found by trying to break the server from outside: each test
//! sends the exact input that once went wrong.

use mediafire_dav::emulator::EmulatorConfig;

use crate::util::{Options, TestServer, hrefs, propfind};

/// `PUT /trail%20` answered 201 but stored the file as `trail`: the name
/// travels in the `x-filename` upload header, whose trailing (and leading)
/// spaces HTTP strips. The client could not GET what it had just PUT, and
/// rclone left a stray `trail` behind on every retry. Such names are now
/// refused before any upload, and nothing is created.
#[tokio::test]
async fn put_of_a_name_with_edge_spaces_is_refused_not_renamed() {
    let server = TestServer::start().await;
    for path in ["/trail%20", "/%20lead", "/%20both%20.txt"] {
        let resp = server
            .req("PUT", path)
            .body("some bytes")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "PUT {path}");
        let get = server.req("GET", path).send().await.unwrap();
        assert_eq!(get.status(), 404, "GET {path}");
    }
    let (status, body) = propfind(&server, "/", "1").await;
    assert_eq!(status, 207);
    let names = hrefs(&body);
    for stray in ["/trail", "/lead", "/both .txt", "/trail ", "/ lead"] {
        assert!(!names.iter().any(|h| h == stray), "{stray:?} in {names:?}");
    }
    // An inner space is fine.
    let resp = server
        .req("PUT", "/in%20side.txt")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let get = server.req("GET", "/in%20side.txt").send().await.unwrap();
    assert_eq!(get.text().await.unwrap(), "x");
}

/// Against a MediaFire that compares names case-insensitively, `MKCOL /dir`
/// next to an existing `/Dir` answered 201 although `folder/create` (with
/// `skip`) had only handed back `Dir`: `/dir` then answered 404. The name is
/// taken, so MKCOL must say so, and `/Dir` must be untouched.
#[tokio::test]
async fn mkcol_of_a_name_differing_only_in_case_is_not_a_false_201() {
    let server = TestServer::start_with(Options {
        emulator: Some(EmulatorConfig {
            case_insensitive_names: true,
            ..EmulatorConfig::default()
        }),
        ..Options::default()
    })
    .await;
    let resp = server.req("MKCOL", "/Dir").send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let resp = server.req("MKCOL", "/dir").send().await.unwrap();
    assert_eq!(resp.status(), 405, "MKCOL /dir next to /Dir");
    let (status, body) = propfind(&server, "/", "1").await;
    assert_eq!(status, 207);
    let names = hrefs(&body);
    assert!(names.iter().any(|h| h == "/Dir/"), "{names:?}");
    assert!(!names.iter().any(|h| h.starts_with("/dir")), "{names:?}");
}

/// Four MOVEs of one file to `/race/A`..`/race/D`, sent at once, all
/// answered 201 and PROPFIND then listed four files, while MediaFire held
/// one (renamed four times). A later `DELETE /race/A` trashed the file the
/// client of `/race/D` believed it had. Now the first MOVE wins and the
/// others find the source gone.
#[tokio::test]
async fn concurrent_moves_of_one_file_move_it_once() {
    let server = TestServer::start().await;
    assert_eq!(
        server.req("MKCOL", "/race").send().await.unwrap().status(),
        201
    );
    let put = server
        .req("PUT", "/race/f")
        .body("race")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let moves = ["A", "B", "C", "D"].map(|d| {
        server
            .req("MOVE", "/race/f")
            .header("Destination", format!("{}/race/{d}", server.url))
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(moves)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let moved = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(moved, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 404),
        "{statuses:?}"
    );
    let (_, body) = propfind(&server, "/race/", "1").await;
    let names = hrefs(&body);
    assert_eq!(names.len(), 2, "{names:?}");
    let get = server.req("GET", &names[1]).send().await.unwrap();
    assert_eq!(get.text().await.unwrap(), "race");
    assert_eq!(
        server.emulator.stats()["files"],
        1,
        "{}",
        server.emulator.stats()
    );
}

/// `GET /a/a/a/…` with 2000 segments overflowed the stack of a worker
/// thread and aborted the whole process: each folder level of the lookup
/// nested one more future. Now it is a plain 404 and the server lives on.
#[tokio::test]
async fn a_very_deep_path_is_a_404_not_a_crash() {
    let server = TestServer::start().await;
    assert_eq!(
        server.req("MKCOL", "/a").send().await.unwrap().status(),
        201
    );
    let deep = "/a".repeat(2000);
    for method in ["GET", "PROPFIND", "PUT", "MKCOL", "DELETE"] {
        let resp = server.req(method, &deep).send().await.unwrap();
        let status = resp.status().as_u16();
        assert!((400..500).contains(&status), "{method}: {status}");
    }
    let resp = server.req("GET", "/healthz").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// A PUT whose body ends before its `Content-Length` (the client went away,
/// or sent a broken chunked body) answered 502 Bad Gateway, blaming
/// MediaFire for the client's input. Now 400, and nothing is created.
#[tokio::test]
async fn a_cut_off_put_body_is_a_400_not_a_502() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", crate::util::USER, crate::util::PASS),
    );
    let requests = [
        format!(
            "PUT /short.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
             Content-Length: 100\r\n\r\nonly-ten!!"
        ),
        format!(
            "PUT /chunked.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
             Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n"
        ),
    ];
    for raw in requests {
        let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        conn.write_all(raw.as_bytes()).await.unwrap();
        conn.shutdown().await.unwrap();
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?} -> {answer:?}");
    }
    for path in ["/short.bin", "/chunked.bin"] {
        let get = server.req("GET", path).send().await.unwrap();
        assert_eq!(get.status(), 404, "{path}");
    }
}

/// rclone, creating one folder from 8 workers, sent concurrent
/// `MKCOL /c2/`: all answered 201, and each late one (MediaFire's `skip`
/// handing back the existing folder) reset the cached listing to empty, so a
/// file PUT in between answered 404 to PROPFIND for the cache lifetime. Now
/// one MKCOL creates, the others get 405, and earlier uploads stay visible.
#[tokio::test]
async fn concurrent_mkcols_of_one_path_create_once_and_lose_no_listing() {
    let server = TestServer::start().await;
    server.emulator.set_faults(mediafire_dav::emulator::Faults {
        latency_ms: 30,
        ..Default::default()
    });
    let mkcols = (0..6).map(|_| server.req("MKCOL", "/c2/").send());
    let statuses: Vec<u16> = futures_util::future::join_all(mkcols)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 405),
        "{statuses:?}"
    );
    let put = server
        .req("PUT", "/c2/f.txt")
        .body("f")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let late = server.req("MKCOL", "/c2/").send().await.unwrap();
    assert_eq!(late.status(), 405);
    let (status, _) = propfind(&server, "/c2/f.txt", "0").await;
    assert_eq!(status, 207);
}

/// A file another MediaFire client moved to the trash while our listing
/// still showed it: GET, PUT and MOVE answered 403, because MediaFire's
/// error 211 ("Items in the Trash Can cannot be modified") was read as
/// Forbidden. From the account's point of view the file is gone.
#[tokio::test]
async fn a_file_trashed_behind_our_back_is_gone_not_forbidden() {
    let server = TestServer::start().await;
    let qk = server.emulator.seed_file("/t/gone.txt", b"bye");
    server.emulator.seed_file("/t/moved.txt", b"m");
    let qk2 = server.emulator.seed_file("/t/put.txt", b"p");
    let (status, body) = propfind(&server, "/t/", "1").await;
    assert_eq!(status, 207);
    assert!(hrefs(&body).contains(&"/t/gone.txt".to_string()), "{body}");
    for key in [&qk, &qk2] {
        let r = crate::util::emulator_call(&server, "file/delete", &[("quick_key", key)]).await;
        assert_eq!(r["response"]["result"], "Success", "{r}");
    }
    let resp = server.req("GET", "/t/gone.txt").send().await.unwrap();
    assert_eq!(resp.status(), 404);

    // A PUT over the trashed file makes a new one under the name.
    let resp = server
        .req("PUT", "/t/put.txt")
        .body("new content")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let resp = server.req("GET", "/t/put.txt").send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "new content");

    let (status, body) = propfind(&server, "/t/", "1").await;
    assert_eq!(status, 207);
    assert!(!hrefs(&body).contains(&"/t/gone.txt".to_string()), "{body}");
}
