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
