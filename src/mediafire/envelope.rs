//! The one place where a MediaFire reply becomes `Result<T, Error>`.
//!
//! MediaFire wraps every answer in `{"response":{..., "result":"Success"|"Error"}}`
//! and may send an error with status 200 or 400 (spec §2.2–2.3). [`decode`]
//! reads the body whatever the status and falls back to the HTTP status only
//! when the body is not that envelope. A body that is not JSON at all (a
//! Cloudflare "Just a moment..." page, a proxy error) is a transient failure,
//! never a panic and never an API error (spec §6.6).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::mediafire::codes;
use crate::mediafire::types::de;

/// Decodes one reply of `action` into `T`, or the error it carries.
pub fn decode<T: DeserializeOwned>(
    action: &'static str,
    status: u16,
    body: &[u8],
) -> Result<T, Error> {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Err(not_json(action, status, body));
    };
    let Some(response) = json.get("response").filter(|r| r.is_object()) else {
        return Err(from_status(
            action,
            status,
            "reply is JSON but not a MediaFire envelope",
        ));
    };

    if let Some(err) = envelope_error(action, status, response) {
        return Err(err);
    }
    serde_json::from_value::<T>(response.clone()).map_err(|e| {
        if (200..300).contains(&status) {
            Error::new(ErrorKind::Permanent, "unexpected reply shape")
                .with_action(action)
                .with_source(e)
        } else {
            from_status(action, status, "envelope without the expected fields").with_source(e)
        }
    })
}

/// The error an envelope carries: `result:"Error"`, or an `error` code on a
/// reply that does not claim success.
fn envelope_error(action: &'static str, status: u16, response: &Value) -> Option<Error> {
    let result = response.get("result").and_then(Value::as_str).unwrap_or("");
    let code = response
        .get("error")
        .and_then(de::value_to_i64)
        .filter(|c| *c > 0)
        .map(|c| c as u32);
    let is_error = result.eq_ignore_ascii_case("error") || (result.is_empty() && code.is_some());
    if !is_error {
        return None;
    }

    let message = response
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(code) = code else {
        let e = from_status(action, status, "error reply without a code");
        return Some(if message.is_empty() {
            e
        } else {
            e.with_context("message", message)
        });
    };
    let (kind, retry) = codes::classify(code);
    let err = Error::new(kind, message)
        .with_action(action)
        .with_code(code);
    let err = match retry {
        crate::error::Retry::Temporary => err.set_temporary(),
        _ => err.set_permanent(),
    };
    Some(err.with_context("http_status", status))
}

/// True when the first bytes of `body` look like an HTML page.
pub fn looks_html(body: &[u8]) -> bool {
    body.iter()
        .take(512)
        .copied()
        .collect::<Vec<u8>>()
        .to_ascii_lowercase()
        .windows(5)
        .any(|w| w == b"<html" || w == b"<!doc")
}

/// A body that is not JSON: an HTML challenge page, a proxy error, garbage.
fn not_json(action: &'static str, status: u16, body: &[u8]) -> Error {
    let what = if looks_html(body) {
        "reply is an HTML page, not JSON (Cloudflare challenge or proxy error?)"
    } else if body.is_empty() {
        "reply body is empty"
    } else {
        "reply is not JSON"
    };
    Error::new(ErrorKind::Transient, what)
        .with_action(action)
        .with_context("http_status", status)
        .set_temporary()
}

/// Classifies by HTTP status alone, for bodies that say nothing useful.
pub fn from_status(action: &'static str, status: u16, what: &'static str) -> Error {
    let kind = match status {
        200..=299 => ErrorKind::Permanent,
        401 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        // 403 from the API host is most often Cloudflare, not MediaFire.
        403 | 408 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    Error::new(kind, what)
        .with_action(action)
        .with_context("http_status", status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Retry;
    use crate::mediafire::types::{Ack, SessionTokenResponse};

    #[test]
    fn error_with_status_400_is_decoded_from_the_body() {
        let body = br#"{"response":{"action":"folder/get_info","message":"Session Token is missing","error":104,"result":"Error"}}"#;
        let e = decode::<Ack>("folder/get_info", 400, body).unwrap_err();
        assert_eq!(e.code(), Some(104));
        assert_eq!(e.kind(), ErrorKind::Auth);
    }

    #[test]
    fn string_code_and_success_with_200() {
        let body = br#"{"response":{"result":"Error","error":"163","message":"x"}}"#;
        let e = decode::<Ack>("a/b", 200, body).unwrap_err();
        assert_eq!(
            (e.code(), e.kind(), e.retry()),
            (Some(163), ErrorKind::RateLimited, Retry::Temporary)
        );
        let ok =
            decode::<SessionTokenResponse>("t", 200, br#"{"response":{"session_token":"abc"}}"#);
        assert_eq!(ok.unwrap().session_token, "abc");
    }

    #[test]
    fn html_and_garbage_are_transient() {
        let html = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>";
        for (status, body) in [(403, &html[..]), (200, b"\xff\xfe not json"), (502, b"")] {
            let e = decode::<Ack>("x/y", status, body).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Transient, "{status}");
            assert!(e.is_temporary());
        }
    }

    #[test]
    fn non_envelope_json_falls_back_to_status() {
        let e = decode::<Ack>("x/y", 503, br#"{"oops":1}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient);
        let e = decode::<Ack>("x/y", 200, br#"[1,2]"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Permanent);
    }
}
