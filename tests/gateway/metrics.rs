//! Operations: `/metrics` read by a strict parser of the Prometheus text
//! exposition format (version 0.0.4), then checked family by family (each
//! required family is present with the right type and labels, and moves
//! when the server does the thing it counts); and the `healthcheck`
//! subcommand Docker's HEALTHCHECK runs.
//!
//! The parser follows the format's specification: `# HELP` and `# TYPE`
//! lines at most once per family and before its samples, samples of one
//! family kept together, metric and label names from the allowed alphabet,
//! label values with only `\\`, `\"` and `\n` escapes, Go-style float
//! values (with `NaN`, `+Inf`, `-Inf`), an optional integer timestamp, no
//! duplicate series, and a final newline. Anything else fails the test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use mediafire_dav::emulator::Faults;

use crate::util::{Options, TestServer};

/// One parsed exposition: family name → (type, series → value).
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    /// Family → (sorted labels → value).
    samples: HashMap<String, BTreeMap<Vec<(String, String)>, f64>>,
}

impl Exposition {
    /// The value of the series of `family` whose labels include `want`,
    /// summed over the series that match.
    fn value(&self, family: &str, want: &[(&str, &str)]) -> f64 {
        let Some(series) = self.samples.get(family) else {
            panic!("family {family} has no samples");
        };
        series
            .iter()
            .filter(|(labels, _)| {
                want.iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    /// Like [`value`](Self::value), but 0 for a family with no samples yet.
    fn value_or_zero(&self, family: &str, want: &[(&str, &str)]) -> f64 {
        if self.samples.contains_key(family) {
            self.value(family, want)
        } else {
            0.0
        }
    }

    fn kind(&self, family: &str) -> &str {
        self.types
            .get(family)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no TYPE for {family}"))
    }

    fn label_names(&self, family: &str) -> HashSet<String> {
        self.samples[family]
            .keys()
            .flat_map(|labels| labels.iter().map(|(k, _)| k.clone()))
            .collect()
    }
}

fn is_name_start(c: char, colon: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (colon && c == ':')
}

fn is_name_char(c: char, colon: bool) -> bool {
    is_name_start(c, colon) || c.is_ascii_digit()
}

/// A metric name (`colon`) or label name at the start of `s`; returns it
/// and the rest.
fn take_name(s: &str, colon: bool) -> Result<(&str, &str), String> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, c)) if is_name_start(c, colon) => {}
        _ => return Err(format!("bad name start in {s:?}")),
    }
    let end = chars
        .find(|(_, c)| !is_name_char(*c, colon))
        .map_or(s.len(), |(i, _)| i);
    Ok((&s[..end], &s[end..]))
}

/// A quoted label value at the start of `s` (after the opening quote);
/// returns the unescaped value and the rest after the closing quote.
fn take_label_value(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                other => return Err(format!("bad escape {other:?} in {s:?}")),
            },
            '\n' => return Err("raw newline in label value".into()),
            c => out.push(c),
        }
    }
    Err(format!("unterminated label value {s:?}"))
}

/// A float as Go's `strconv.ParseFloat` reads it in the exposition format.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => return Ok(f64::NAN),
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !ok_chars || s.is_empty() {
        return Err(format!("bad value {s:?}"));
    }
    s.parse::<f64>()
        .map_err(|e| format!("bad value {s:?}: {e}"))
}

fn parse(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("exposition must end with a newline".into());
    }
    let mut exp = Exposition::default();
    let mut helps = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            let (word, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            if word != "HELP" && word != "TYPE" {
                continue; // a plain comment
            }
            let (name, rest) = take_name(rest.trim_start(), true).map_err(err)?;
            let arg = rest.strip_prefix(' ').unwrap_or(rest);
            if exp.samples.contains_key(name) {
                return Err(err(format!("{word} after samples of {name}")));
            }
            if word == "HELP" {
                if !helps.insert(name.to_string()) {
                    return Err(err(format!("second HELP for {name}")));
                }
                let mut chars = arg.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                        return Err(err("bad escape in HELP".into()));
                    }
                }
            } else {
                if !matches!(
                    arg,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(err(format!("bad type {arg:?}")));
                }
                if exp
                    .types
                    .insert(name.to_string(), arg.to_string())
                    .is_some()
                {
                    return Err(err(format!("second TYPE for {name}")));
                }
            }
            continue;
        }
        let (name, mut rest) = take_name(line, true).map_err(err)?;
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            rest = inner;
            loop {
                rest = rest.trim_start();
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (label, after) = take_name(rest, false).map_err(err)?;
                let after = after.trim_start();
                let after = after
                    .strip_prefix("=\"")
                    .ok_or_else(|| err(format!("expected =\" after {label}")))?;
                let (value, after) = take_label_value(after).map_err(err)?;
                if labels.iter().any(|(k, _): &(String, String)| k == label) {
                    return Err(err(format!("label {label} twice")));
                }
                labels.push((label.to_string(), value));
                rest = after.trim_start();
                if let Some(after) = rest.strip_prefix(',') {
                    rest = after;
                } else if !rest.starts_with('}') {
                    return Err(err("expected , or }".into()));
                }
            }
        }
        let mut fields = rest.split_whitespace();
        if !rest.starts_with([' ', '\t']) {
            return Err(err("no space before the value".into()));
        }
        let value =
            parse_value(fields.next().ok_or_else(|| err("no value".into()))?).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| err(format!("bad timestamp {ts:?}")))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing text".into()));
        }
        // Samples of one family stay together (this server has no
        // histograms or summaries, so a sample's name is its family).
        if current.as_deref() != Some(name) {
            if finished.contains(name) {
                return Err(err(format!("samples of {name} are not grouped")));
            }
            if let Some(prev) = current.take() {
                finished.insert(prev);
            }
            current = Some(name.to_string());
        }
        labels.sort();
        let series = exp.samples.entry(name.to_string()).or_default();
        if series.insert(labels, value).is_some() {
            return Err(err(format!("duplicate series of {name}")));
        }
    }
    Ok(exp)
}

#[test]
fn the_parser_refuses_malformed_expositions() {
    let good = "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\na_total{x=\"2\",} 4 1700000000000\n# TYPE g gauge\ng -Inf\n";
    let exp = parse(good).unwrap();
    assert_eq!(exp.value("a_total", &[]), 7.0);
    assert_eq!(exp.value("a_total", &[("y", "q\"\\\n")]), 3.0);
    for bad in [
        "a 1",                                       // no final newline
        "a{x=\"1\"} 1\na{x=\"1\"} 2\n",              // duplicate series
        "a 1\nb 1\na 2\n",                           // not grouped
        "a 1\n# TYPE a counter\n",                   // TYPE after samples
        "# TYPE a counter\n# TYPE a counter\na 1\n", // two TYPEs
        "# TYPE a countr\na 1\n",                    // unknown type
        "1a 1\n",                                    // bad name
        "a{x=\"1} 1\n",                              // unterminated value
        "a{x=\"\\t\"} 1\n",                          // bad escape
        "a{x=1} 1\n",                                // unquoted value
        "a one\n",                                   // bad value
        "a 1 2.5\n",                                 // bad timestamp
        "a{x=\"1\"}1\n",                             // no space
        "a 1 2 3\n",                                 // trailing text
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad:?}");
    }
}

async fn scrape(server: &TestServer) -> Exposition {
    let resp = server.req("GET", "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        ctype.starts_with("text/plain") && ctype.contains("version=0.0.4"),
        "{ctype}"
    );
    let text = resp.text().await.unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test]
async fn metrics_parse_and_every_required_family_moves() {
    let server = TestServer::start().await;
    let before = scrape(&server).await;
    let families = [
        ("mediafire_dav_http_requests_total", "counter"),
        ("mediafire_api_calls_total", "counter"),
        ("mediafire_dav_http_bytes_in_total", "counter"),
        ("mediafire_dav_http_bytes_out_total", "counter"),
        ("mediafire_dav_cache_hits_total", "counter"),
        ("mediafire_dav_cache_misses_total", "counter"),
        ("mediafire_session_renewals_total", "counter"),
        ("mediafire_dav_uploads_in_flight", "gauge"),
    ];
    for (family, kind) in families {
        assert_eq!(before.kind(family), kind, "{family}");
    }

    // Work that each family counts.
    let body = vec![b'm'; 50_000];
    let resp = server
        .req("PUT", "/m.bin")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = server.req("GET", "/m.bin").send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().len(), body.len());
    for _ in 0..3 {
        let resp = server
            .req("PROPFIND", "/")
            .header("Depth", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 207);
    }
    let resp = server.req("GET", "/missing.txt").send().await.unwrap();
    assert_eq!(resp.status(), 404);

    let after = scrape(&server).await;
    let grew = |family: &str, labels: &[(&str, &str)]| {
        after.value(family, labels) - before.value_or_zero(family, labels)
    };
    let requests = "mediafire_dav_http_requests_total";
    assert_eq!(
        after.label_names(requests),
        HashSet::from(["method".to_string(), "status".to_string()])
    );
    assert!(grew(requests, &[("method", "PUT"), ("status", "201")]) >= 1.0);
    assert!(grew(requests, &[("method", "GET"), ("status", "404")]) >= 1.0);
    assert!(grew(requests, &[("method", "PROPFIND"), ("status", "207")]) >= 3.0);
    let api = "mediafire_api_calls_total";
    assert_eq!(
        after.label_names(api),
        HashSet::from(["action".to_string(), "outcome".to_string()])
    );
    assert!(
        grew(api, &[("action", "folder/get_content")]) >= 1.0,
        "{after:?}"
    );
    assert!(grew(api, &[("action", "upload/check")]) >= 1.0, "{after:?}");
    assert!(grew("mediafire_dav_http_bytes_in_total", &[]) >= body.len() as f64);
    assert!(grew("mediafire_dav_http_bytes_out_total", &[]) >= body.len() as f64);
    assert!(grew("mediafire_dav_cache_hits_total", &[]) >= 1.0);
    assert!(grew("mediafire_dav_cache_misses_total", &[]) >= 1.0);
    assert_eq!(after.value("mediafire_dav_uploads_in_flight", &[]), 0.0);

    // An upload held by slow verification is in flight while it waits.
    server.emulator.set_faults(Faults {
        poll_delay_ms: 1500,
        ..Faults::default()
    });
    let url = format!("{}/slow.bin", server.url);
    let put = tokio::spawn(
        reqwest::Client::new()
            .put(url)
            .basic_auth(crate::util::USER, Some(crate::util::PASS))
            .body(vec![b's'; 10_000])
            .send(),
    );
    let mut seen = 0.0;
    for _ in 0..60 {
        seen = scrape(&server)
            .await
            .value("mediafire_dav_uploads_in_flight", &[]);
        if seen >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 1.0, "the held upload never showed as in flight");
    let resp = put.await.unwrap().unwrap();
    assert_eq!(resp.status(), 201);
    let done = scrape(&server).await;
    assert_eq!(done.value("mediafire_dav_uploads_in_flight", &[]), 0.0);

    // A restart on the saved session renews it instead of logging in.
    let server = server
        .restart(Options {
            no_cookie: true,
            ..Options::default()
        })
        .await;
    let restarted = scrape(&server).await;
    assert!(
        restarted.value("mediafire_session_renewals_total", &[]) >= 1.0,
        "{restarted:?}"
    );
}

/// What Docker's `HEALTHCHECK` runs: `mediafire-dav healthcheck` with the
/// container's environment, where only `MEDIAFIRE_DAV_LISTEN` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_subcommand_probes_the_listen_address() {
    let server = TestServer::start().await;
    let bin = env!("CARGO_BIN_EXE_mediafire-dav");
    let run = |listen: String| {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("healthcheck")
            .env_remove("MEDIAFIRE_DAV_HEALTH_URL")
            .env("MEDIAFIRE_DAV_LISTEN", listen);
        async move { cmd.output().await.unwrap() }
    };
    let out = run(format!("0.0.0.0:{}", server.addr.port())).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing listening there: a failure, with the URL in the message.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let out = run(format!("127.0.0.1:{port}")).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
