//! Property test of the request path, headers and XML bodies: generated
//! requests (hostile path pieces, odd headers, random and grammar-made XML)
//! against the real server while MediaFire fails 5% of its calls. No
//! request may go unanswered (a panic drops the connection), and no answer
//! may be a 5xx other than 502/503/504 (an upstream failure, injected here)
//! or 501 (an unknown method, or PUT with Content-Range: RFC 9110 says so).
//!
//! 200 cases by default; `PROPTEST_CASES` runs more.

use std::sync::Arc;

use mediafire_dav::emulator::{EmulatorConfig, FailMode, Faults};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::bad_input::{Row, send_raw};
use crate::util::{Options, TestServer};

/// Path pieces that have broken WebDAV servers before.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("%2e%2e".to_string()),
        Just("%2E".to_string()),
        Just("%ff".to_string()),
        Just("%00".to_string()),
        Just("%2f".to_string()),
        Just("%5c..%5c".to_string()),
        Just("%c3%28".to_string()),
        Just("caf%C3%A9".to_string()),
        Just("%F0%9F%98%80".to_string()),
        Just("d".to_string()),
        Just("f.txt".to_string()),
        Just("._f.txt".to_string()),
        Just(".DS_Store".to_string()),
        "[a-zA-Z0-9._~%-]{0,12}",
        "(%[0-9a-fA-F]{2}){1,4}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(segment(), 0..7),
        any::<bool>(),
        prop::option::of("[a-z=&%0-9]{0,10}"),
        0usize..3,
    )
        .prop_map(|(segs, slash, query, deep)| {
            let mut p = format!("/{}", segs.join("/"));
            if deep == 0 {
                // now and then very deep
                p = format!("{}{p}", "/a".repeat(140));
            }
            if slash && !p.ends_with('/') {
                p.push('/');
            }
            if let Some(q) = query {
                p = format!("{p}?{q}");
            }
            p
        })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET",
            "HEAD",
            "PUT",
            "DELETE",
            "MKCOL",
            "COPY",
            "MOVE",
            "PROPFIND",
            "PROPPATCH",
            "LOCK",
            "UNLOCK",
            "OPTIONS",
            "PATCH",
            "POST",
            "TRACE",
        ])
        .prop_map(String::from),
        "[A-Z]{1,9}",
    ]
}

/// XML made from WebDAV's own vocabulary, nested at random.
fn xml_element() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "D:propfind",
        "D:prop",
        "D:allprop",
        "D:propname",
        "D:include",
        "D:propertyupdate",
        "D:set",
        "D:remove",
        "D:lockinfo",
        "D:lockscope",
        "D:exclusive",
        "D:shared",
        "D:locktype",
        "D:write",
        "D:owner",
        "D:href",
        "D:getetag",
        "D:displayname",
        "D:resourcetype",
        "Z:custom",
        "x",
        "D:",
        ":",
        "Z:Win32FileAttributes",
    ]);
    let leaf = prop_oneof![
        name.clone().prop_map(|n| format!("<{n}/>")),
        "[ -~]{0,20}".prop_map(|t| t.replace('<', "&lt;").replace('&', "&amp;")),
        Just("&amp;&lt;&#x41;&#65;".to_string()),
        Just("&undefined;".to_string()),
        Just("<![CDATA[<not/> & markup]]>".to_string()),
        Just("<!-- a comment -->".to_string()),
    ];
    leaf.prop_recursive(6, 40, 5, move |inner| {
        (
            name.clone(),
            prop::collection::vec(inner, 0..5),
            any::<bool>(),
        )
            .prop_map(|(n, kids, attr)| {
                let attr = if attr { " a=\"v\" xml:lang='en'" } else { "" };
                format!("<{n}{attr}>{}</{n}>", kids.concat())
            })
    })
}

fn xml_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        xml_element().prop_map(|e| {
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:root xmlns:D=\"DAV:\" \
                 xmlns:Z=\"urn:z\">{e}</D:root>"
            )
            .into_bytes()
        }),
        xml_element().prop_map(|e| {
            format!("<D:propfind xmlns:D=\"DAV:\" xmlns:Z=\"urn:z\">{e}</D:propfind>").into_bytes()
        }),
        xml_element().prop_map(|e| e.into_bytes()),
        prop::collection::vec(any::<u8>(), 0..300),
        Just(Vec::new()),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(0x20u8..0xff, 0..20),
    ]
}

/// Headers WebDAV reads, with values good, odd and bad.
fn headers(host: String) -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let here = move |p: String| format!("http://{host}{p}").into_bytes();
    let one = prop_oneof![
        prop::sample::select(vec!["0", "1", "infinity", "2", "-1", ""])
            .prop_map(|v| ("Depth", v.as_bytes().to_vec())),
        path().prop_map(move |p| ("Destination", here(p))),
        path().prop_map(|p| ("Destination", format!("http://elsewhere.invalid{p}").into_bytes())),
        header_value().prop_map(|v| ("Destination", v)),
        prop::sample::select(vec!["T", "F", "t", "maybe", ""])
            .prop_map(|v| ("Overwrite", v.as_bytes().to_vec())),
        "bytes=[0-9]{0,6}-[0-9]{0,6}(,[0-9]{0,3}-[0-9]{0,3}){0,3}"
            .prop_map(|v| ("Range", v.into_bytes())),
        header_value().prop_map(|v| ("Range", v)),
        "(<[a-z:/0-9-]{0,30}>)? ?\\((Not )?(<opaquelocktoken:[0-9a-f-]{0,36}>|\\[\"[a-z0-9]{0,8}\"\\])\\)"
            .prop_map(|v| ("If", v.into_bytes())),
        header_value().prop_map(|v| ("If", v)),
        header_value().prop_map(|v| ("Lock-Token", v)),
        "(Second-[0-9]{0,12}|Infinite|[a-z]{0,6})(, ?Second-[0-9]{0,3})?"
            .prop_map(|v| ("Timeout", v.into_bytes())),
        header_value().prop_map(|v| ("If-Match", v)),
        header_value().prop_map(|v| ("If-None-Match", v)),
        header_value().prop_map(|v| ("If-Modified-Since", v)),
        header_value().prop_map(|v| ("Content-Range", v)),
        prop::sample::select(vec!["application/xml", "text/xml", "text/plain", "x/y;;"])
            .prop_map(|v| ("Content-Type", v.as_bytes().to_vec())),
        "[0-9]{0,8}".prop_map(|v| ("X-Expected-Entity-Length", v.into_bytes())),
    ];
    prop::collection::vec(one, 0..5)
}

/// One generated request.
fn request(host: String) -> impl Strategy<Value = Row> {
    (method(), path(), headers(host), xml_body()).prop_map(|(m, p, h, body)| Row {
        name: "generated",
        method: Box::leak(m.into_boxed_str()),
        target: p.into_bytes(),
        headers: h,
        body,
        expect: 0,
        says: None,
    })
}

fn acceptable(status: u16) -> bool {
    !(500..600).contains(&status) || (501..=504).contains(&status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_never_crash_or_answer_500() {
    let server = Arc::new(
        TestServer::start_with(Options {
            emulator: Some(EmulatorConfig {
                seed: Some(5),
                ..EmulatorConfig::default()
            }),
            ..Options::default()
        })
        .await,
    );
    server.emulator.seed_file("/d/f.txt", b"hello");
    server.emulator.seed_file("/f.txt", &[7u8; 3000]);
    server.emulator.seed_folder("/d/e");
    server.emulator.set_faults(Faults {
        fail_rate: 0.05,
        fail_mode: FailMode::Mixed,
        ..Faults::default()
    });

    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let strategy = request(server.addr.to_string());
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |row| {
            let (status, text) = handle.block_on(send_raw(&server, &row));
            if !acceptable(status) {
                let head: String = text.chars().take(300).collect();
                return Err(TestCaseError::fail(format!(
                    "{} {} answered {status}: {head}",
                    row.method,
                    String::from_utf8_lossy(&row.target)
                )));
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let health = server.anon("GET", "/healthz").send().await.unwrap();
    assert_eq!(health.status(), 200);
}
