//! The admin endpoints under `/__emulator/` (loopback only, never subject to faults): stats,
//! fault switches, token expiry and seeding, for tests that run in other processes.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::api::Params;
use super::faults::Faults;
use super::server::{Body, FORM_LIMIT, json_response, query_params, read_limited, text};
use super::state::{Emulator, lock};

pub(super) async fn admin(
    emu: &Arc<Emulator>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Response<Body> {
    if !remote.ip().is_loopback() {
        return text(
            StatusCode::FORBIDDEN,
            "text/plain",
            "admin endpoints are loopback only\n",
        );
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let query = req.uri().query().map(String::from);
    let ok = || json_response(StatusCode::OK, &json!({"ok": true}));
    match (method, path.as_str()) {
        (Method::GET, "/__emulator/stats") => json_response(StatusCode::OK, &emu.stats_json()),
        (Method::POST, "/__emulator/stats/reset") => {
            emu.reset_stats();
            ok()
        }
        (Method::GET, "/__emulator/faults") => {
            let f = lock(&emu.faults).faults.clone();
            json_response(
                StatusCode::OK,
                &serde_json::to_value(f).unwrap_or(Value::Null),
            )
        }
        (Method::POST, "/__emulator/faults") => {
            let Some(body) = read_limited(req.into_body(), FORM_LIMIT).await else {
                return text(StatusCode::BAD_REQUEST, "text/plain", "body too large\n");
            };
            match serde_json::from_slice::<Faults>(&body) {
                Ok(f) if f.validate().is_err() => text(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    &format!("faults: {}\n", f.validate().err().unwrap_or_default()),
                ),
                Ok(f) => {
                    emu.set_faults(f.clone());
                    json_response(
                        StatusCode::OK,
                        &serde_json::to_value(f).unwrap_or(Value::Null),
                    )
                }
                Err(e) => text(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    &format!("faults: invalid JSON ({e})\n"),
                ),
            }
        }
        (Method::POST, "/__emulator/expire-tokens") => {
            emu.expire_all_tokens();
            ok()
        }
        (Method::POST, "/__emulator/seed") => {
            let mut params = Params::default();
            query_params(query.as_deref(), &mut params);
            let Some(path) = params.get("path").map(String::from) else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "seed: `path` is required\n",
                );
            };
            let body = match Limited::new(req.into_body(), usize::MAX).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        &format!("seed: {e}\n"),
                    );
                }
            };
            if path.ends_with('/') {
                let key = emu.seed_folder(&path);
                json_response(StatusCode::OK, &json!({"folderkey": key}))
            } else {
                let key = emu.seed_file(&path, &body);
                json_response(StatusCode::OK, &json!({"quickkey": key}))
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "unknown admin endpoint\n",
        ),
    }
}
