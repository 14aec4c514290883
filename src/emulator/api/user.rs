//! `user/*`: session tokens (§1.4), action tokens (§1.5) and account information (§3.14).

use std::time::Instant;

use serde_json::json;

use super::{ApiError, Caller, Fields, Params, fields};
use crate::emulator::RenewMode;
use crate::emulator::state::{Emulator, Token, TokenKind, lock, now_ms, random_hex};

/// Checks a token for a call; `allow_action` for `upload/*`. 104 when missing, 105 when unknown
/// or expired (or an action token outside `upload/*`).
pub(crate) fn check_token(
    emu: &Emulator,
    token: Option<&str>,
    allow_action: bool,
) -> Result<TokenKind, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::new(104));
    };
    let now = now_ms();
    let boundary = {
        let faults = lock(&emu.faults);
        let at = Instant::now();
        faults
            .periodic_expiry_boundary(at)
            .map(|b| now - at.duration_since(b).as_millis() as i64)
    };
    let mut state = lock(&emu.state);
    let Some(t) = state.tokens.get(token) else {
        return Err(ApiError::new(105));
    };
    let expired = now >= t.expires_ms || boundary.is_some_and(|b| t.renewed_ms < b);
    if expired {
        state.tokens.remove(token);
        return Err(ApiError::new(105));
    }
    if t.kind == TokenKind::Action && !allow_action {
        return Err(ApiError::new(105));
    }
    Ok(t.kind)
}

/// Mints a session token (144 hex characters, as in the docs' examples).
pub(crate) fn mint_session_token(emu: &Emulator) -> String {
    let now = now_ms();
    let mut state = lock(&emu.state);
    state.tokens.retain(|_, t| t.expires_ms > now);
    let token = random_hex(&mut state.rng, 144);
    state.tokens.insert(
        token.clone(),
        Token {
            kind: TokenKind::Session,
            renewed_ms: now,
            expires_ms: now + emu.config.token_ttl as i64 * 1000,
        },
    );
    drop(state);
    emu.mark_dirty();
    token
}

/// `user/renew_session_token` (§1.4): younger than 5 minutes → the same token, extended;
/// older → a new token or the same one extended, per `--renew-mode`.
pub(crate) fn user_renew_session_token(
    emu: &Emulator,
    caller: &Caller,
) -> Result<Fields, ApiError> {
    let token = caller.token.clone().unwrap_or_default();
    let now = now_ms();
    let ttl = emu.config.token_ttl as i64 * 1000;
    let mut state = lock(&emu.state);
    let Some(t) = state.tokens.get_mut(&token) else {
        return Err(ApiError::new(105));
    };
    let young = now - t.renewed_ms < emu.config.renew_same_token_secs as i64 * 1000;
    let result = if young || emu.config.renew_mode == RenewMode::Extend {
        t.expires_ms = now + ttl;
        if !young {
            t.renewed_ms = now;
        }
        token
    } else {
        let fresh = random_hex(&mut state.rng, 144);
        state.tokens.insert(
            fresh.clone(),
            Token {
                kind: TokenKind::Session,
                renewed_ms: now,
                expires_ms: now + ttl,
            },
        );
        fresh
    };
    drop(state);
    emu.mark_dirty();
    Ok(fields(json!({"session_token": result})))
}

/// `user/get_action_token` (§1.5): `type=upload|image`, `lifespan` minutes 1–1440.
pub(crate) fn user_get_action_token(emu: &Emulator, p: &Params) -> Result<Fields, ApiError> {
    match p.get("type") {
        None => return Err(ApiError::new(128)),
        Some("upload") | Some("image") => {}
        Some(_) => return Err(ApiError::new(129)),
    }
    let lifespan = p.number("lifespan", 15)?;
    if !(1..=1440).contains(&lifespan) {
        return Err(ApiError::new(129));
    }
    let now = now_ms();
    let mut state = lock(&emu.state);
    state.tokens.retain(|_, t| t.expires_ms > now);
    let token = random_hex(&mut state.rng, 160);
    state.tokens.insert(
        token.clone(),
        Token {
            kind: TokenKind::Action,
            renewed_ms: now,
            expires_ms: now + lifespan as i64 * 60_000,
        },
    );
    drop(state);
    emu.mark_dirty();
    Ok(fields(json!({"action_token": token})))
}

/// `user/destroy_action_token`: an unknown token answers 100, as the 1.1 docs say.
pub(crate) fn user_destroy_action_token(emu: &Emulator, p: &Params) -> Result<Fields, ApiError> {
    let Some(token) = p.get("action_token") else {
        return Err(ApiError::new(128));
    };
    let mut state = lock(&emu.state);
    match state.tokens.get(token) {
        Some(t) if t.kind == TokenKind::Action => {
            state.tokens.remove(token);
            drop(state);
            emu.mark_dirty();
            Ok(Fields::new())
        }
        _ => Err(ApiError::new(100)),
    }
}

/// `user/get_info` (§3.14): account and quota.
pub(crate) fn user_get_info(emu: &Emulator) -> Result<Fields, ApiError> {
    let used = lock(&emu.state).tree.used_bytes();
    let limit = emu.config.storage_limit;
    Ok(fields(json!({"user_info": {
        "ekey": "0123456789abcdef0123456789abcdef",
        "email": "demo@example.com",
        "first_name": "Demo",
        "last_name": "User",
        "display_name": "Demo User",
        "gender": "Prefer not to answer",
        "birth_date": "",
        "location": "",
        "website": "",
        "premium": "yes",
        "bandwidth": "1073741823360",
        "created": "2020-01-01",
        "validated": "yes",
        "tos_accepted": "1.5",
        "used_storage_size": used.to_string(),
        "base_storage": limit.to_string(),
        "bonus_storage": "0",
        "storage_limit": limit.to_string(),
        "storage_limit_exceeded": if used > limit { "yes" } else { "no" },
        "options": "0",
        "max_upload_size": emu.config.max_upload_size.to_string(),
        "max_instant_upload_size": emu.config.max_upload_size.to_string(),
        "one_time_key_request_max_count": "100",
        "facebook": {"linked": "no"},
        "gmail": {"linked": "no"},
        "twitter": {"linked": "no"},
    }})))
}
