//! HTTP Basic authentication for the WebDAV endpoint.
//!
//! Passwords may be configured in plain text or as a bcrypt (`$2a$`, `$2b$`,
//! `$2y$`) or argon2 (`$argon2id$`, ...) hash. Plain comparisons run in
//! constant time. Repeated failures from one address are throttled: past
//! [`MAX_FAILURES`] failures in [`FAILURE_WINDOW`] that address gets 429 until
//! the window passes, without the password being checked at all. A hash is
//! verified once per distinct `Authorization` value: the SHA-256 of the last
//! accepted one is kept, since clients send it with every request and a
//! bcrypt check costs a runtime thread tens to hundreds of milliseconds.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Credentials;

/// Failed attempts allowed from one address within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// How long failed attempts are remembered.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Addresses with failed attempts remembered at most.
const MAX_TRACKED: usize = 100_000;

/// What to do with a request, as far as authentication goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No or wrong credentials: answer 401 with a challenge.
    Denied,
    /// Too many failures from this address: answer 429.
    Throttled {
        retry_after: Duration,
    },
}

enum Secret {
    Plain(Vec<u8>),
    Bcrypt(String),
    Argon2(String),
}

/// Checks `Authorization` headers against the configured credentials.
pub struct Authenticator {
    user: Vec<u8>,
    secret: Secret,
    failures: DashMap<IpAddr, (u32, Instant)>,
    /// SHA-256 of the last `Authorization` value a bcrypt/argon2 hash
    /// accepted. WebDAV clients send the header with every request, and a
    /// hash check costs tens to hundreds of milliseconds of CPU on a
    /// runtime thread; the digest spares the repeats.
    accepted: Mutex<Option<[u8; 32]>>,
    /// How many bcrypt/argon2 verifications ran (for tests).
    slow_checks: AtomicU64,
}

impl Authenticator {
    pub fn new(credentials: &Credentials) -> anyhow::Result<Authenticator> {
        let pass = &credentials.pass;
        let secret = if pass.starts_with("$2a$")
            || pass.starts_with("$2b$")
            || pass.starts_with("$2y$")
        {
            Secret::Bcrypt(pass.clone())
        } else if pass.starts_with("$argon2") {
            argon2::PasswordHash::new(pass).map_err(|e| {
                anyhow::anyhow!("config: `pass` looks like an argon2 hash but is not valid: {e}")
            })?;
            Secret::Argon2(pass.clone())
        } else {
            Secret::Plain(pass.as_bytes().to_vec())
        };
        Ok(Authenticator {
            user: credentials.user.as_bytes().to_vec(),
            secret,
            failures: DashMap::new(),
            accepted: Mutex::new(None),
            slow_checks: AtomicU64::new(0),
        })
    }

    /// Decides on one request from `peer` carrying `header` (the raw
    /// `Authorization` value, if any).
    pub fn check(&self, peer: IpAddr, header: Option<&[u8]>) -> Verdict {
        if let Some(entry) = self.failures.get(&peer) {
            let (count, since) = *entry;
            let elapsed = since.elapsed();
            if count >= MAX_FAILURES && elapsed < FAILURE_WINDOW {
                return Verdict::Throttled {
                    retry_after: FAILURE_WINDOW - elapsed,
                };
            }
        }
        let Some(header) = header else {
            // A client's first request usually carries no credentials; that
            // is how it learns it must authenticate, not a failed attempt.
            return Verdict::Denied;
        };
        if self.matches(header) {
            self.failures.remove(&peer);
            Verdict::Allowed
        } else {
            self.record_failure(peer);
            Verdict::Denied
        }
    }

    fn record_failure(&self, peer: IpAddr) {
        if self.failures.len() >= MAX_TRACKED {
            // Many addresses failing (one client hopping through an IPv6
            // range, say): forget what has expired, and if that is not
            // enough, everything, rather than grow without bound.
            self.failures
                .retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
            if self.failures.len() >= MAX_TRACKED {
                self.failures.clear();
            }
        }
        let mut entry = self.failures.entry(peer).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn matches(&self, header: &[u8]) -> bool {
        let Some((user, pass)) = parse_basic(header) else {
            return false;
        };
        let user_ok: bool = user.ct_eq(&self.user).into();
        let pass_ok = match &self.secret {
            Secret::Plain(expected) => pass.ct_eq(expected).into(),
            Secret::Bcrypt(_) | Secret::Argon2(_) => {
                let digest: [u8; 32] = Sha256::digest(header).into();
                let known = *self.accepted.lock().unwrap_or_else(|p| p.into_inner());
                if known.is_some_and(|k| bool::from(k.ct_eq(&digest))) {
                    return true;
                }
                let ok = self.hashed_matches(&pass);
                if ok && user_ok {
                    *self.accepted.lock().unwrap_or_else(|p| p.into_inner()) = Some(digest);
                }
                ok
            }
        };
        user_ok & pass_ok
    }

    /// Checks `pass` against the bcrypt/argon2 hash.
    fn hashed_matches(&self, pass: &[u8]) -> bool {
        self.slow_checks.fetch_add(1, Ordering::Relaxed);
        match &self.secret {
            Secret::Bcrypt(hash) => bcrypt::verify(pass, hash).unwrap_or(false),
            Secret::Argon2(hash) => {
                use argon2::PasswordVerifier;
                argon2::PasswordHash::new(hash)
                    .map(|h| argon2::Argon2::default().verify_password(pass, &h).is_ok())
                    .unwrap_or(false)
            }
            Secret::Plain(_) => false,
        }
    }
}

/// Splits `Basic base64(user:pass)` into its two halves.
fn parse_basic(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> Vec<u8> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {token}").into_bytes()
    }

    fn auth(pass: &str) -> Authenticator {
        Authenticator::new(&Credentials {
            user: "alice".into(),
            pass: pass.into(),
        })
        .unwrap()
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn plain_password_is_checked() {
        let a = auth("s3cret");
        assert_eq!(
            a.check(PEER, Some(&basic("alice", "s3cret"))),
            Verdict::Allowed
        );
        assert_eq!(
            a.check(PEER, Some(&basic("alice", "wrong"))),
            Verdict::Denied
        );
        assert_eq!(
            a.check(PEER, Some(&basic("bob", "s3cret"))),
            Verdict::Denied
        );
        assert_eq!(a.check(PEER, None), Verdict::Denied);
        assert_eq!(a.check(PEER, Some(b"Bearer xyz")), Verdict::Denied);
        assert_eq!(a.check(PEER, Some(b"Basic !!!notbase64")), Verdict::Denied);
        assert_eq!(a.check(PEER, Some(&[0xff, 0xfe])), Verdict::Denied);
    }

    #[test]
    fn password_may_contain_colons() {
        let a = auth("a:b:c");
        assert_eq!(
            a.check(PEER, Some(&basic("alice", "a:b:c"))),
            Verdict::Allowed
        );
    }

    #[test]
    fn bcrypt_and_argon2_hashes_are_accepted() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let a = auth(&hash);
        assert_eq!(a.check(PEER, Some(&basic("alice", "pw"))), Verdict::Allowed);
        assert_eq!(a.check(PEER, Some(&basic("alice", "px"))), Verdict::Denied);

        use argon2::PasswordHasher;
        let salt = argon2::password_hash::SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        let hash = argon2::Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        let a = auth(&hash);
        assert_eq!(a.check(PEER, Some(&basic("alice", "pw"))), Verdict::Allowed);
        assert_eq!(a.check(PEER, Some(&basic("alice", "px"))), Verdict::Denied);
    }

    #[test]
    fn an_accepted_hashed_password_is_not_verified_again() {
        let a = auth(&bcrypt::hash("pw", 4).unwrap());
        let good = basic("alice", "pw");
        for _ in 0..3 {
            assert_eq!(a.check(PEER, Some(&good)), Verdict::Allowed);
        }
        assert_eq!(a.slow_checks.load(Ordering::Relaxed), 1);
        // A wrong password is still checked, and refused.
        assert_eq!(a.check(PEER, Some(&basic("alice", "px"))), Verdict::Denied);
        assert_eq!(a.check(PEER, Some(&basic("bob", "pw"))), Verdict::Denied);
        assert_eq!(a.slow_checks.load(Ordering::Relaxed), 3);
        assert_eq!(a.check(PEER, Some(&good)), Verdict::Allowed);
        assert_eq!(a.slow_checks.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_failure_table_is_bounded() {
        let a = auth("pw");
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let peer = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) + 1));
            a.record_failure(peer);
        }
        assert!(a.failures.len() <= MAX_TRACKED, "{}", a.failures.len());
    }

    #[test]
    fn repeated_failures_are_throttled_per_address() {
        let a = auth("pw");
        for _ in 0..MAX_FAILURES {
            assert_eq!(a.check(PEER, Some(&basic("alice", "no"))), Verdict::Denied);
        }
        // Even the right password is refused while throttled.
        assert!(matches!(
            a.check(PEER, Some(&basic("alice", "pw"))),
            Verdict::Throttled { .. }
        ));
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(
            a.check(other, Some(&basic("alice", "pw"))),
            Verdict::Allowed
        );
    }
}
