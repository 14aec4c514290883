//! The only place that retries: exponential backoff with jitter, for
//! `Temporary` errors only.
//!
//! Idempotent calls (listings, info, links, renames, unit uploads) are sent
//! again after any temporary failure. Non-idempotent calls (`folder/create`,
//! `file/copy`, upload commits) are sent again only when the failure proves
//! MediaFire did not act (a rate-limit or "busy" code, a refused connection,
//! a Cloudflare page); after an ambiguous failure (timeout, 5xx, error 100)
//! the caller's re-check decides, so a retry never makes a duplicate.
//! Callers never sleep themselves. Renewing the session on 105 is *not* a
//! retry: it happens once, at the call site (client.rs).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tracing::warn;

use crate::error::{Error, ErrorKind, Result};
use crate::mediafire::codes;

/// Whether sending a call twice can do harm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// Same result however often it is sent.
    Idempotent,
    /// A second send may create a second object.
    NotIdempotent,
}

/// Backoff settings; see `ClientConfig::{max_retries, retry_base_delay}`.
#[derive(Clone, Debug, Default)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Counts every resend, for `/metrics`.
    pub retries: Arc<AtomicU64>,
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): base·2^(attempt-1),
    /// capped, with "equal jitter" (half fixed, half random).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros().max(1) as u64);
        half + Duration::from_micros(jitter)
    }

    /// Runs `op` until it succeeds, fails permanently, or retries run out
    /// (then the error is marked `Persistent`). A non-idempotent call is
    /// resent only after failures that prove MediaFire did not act.
    pub async fn run<T, F, Fut>(&self, action: &'static str, idem: Idempotency, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // Without a way to check, an ambiguous failure of a non-idempotent
        // call is reported, never resent.
        let no_check = || async {
            Err::<Option<T>, _>(Error::new(
                ErrorKind::Permanent,
                "no re-check for this call",
            ))
        };
        self.run_checked(action, idem, op, no_check).await
    }

    /// Like [`run`](Self::run), but after an ambiguous failure of a
    /// non-idempotent call asks `recheck` whether the call took effect after
    /// all (for example by listing the parent folder); `Some` ends the loop
    /// with that value, `None` allows one more send.
    pub async fn run_checked<T, F, Fut, C, CFut>(
        &self,
        action: &'static str,
        idem: Idempotency,
        mut op: F,
        mut recheck: C,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
        C: FnMut() -> CFut,
        CFut: Future<Output = Result<Option<T>>>,
    {
        let mut attempt = 0u32;
        let mut rate_limited = 0u32;
        loop {
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_temporary() {
                return Err(err);
            }
            if idem == Idempotency::NotIdempotent && !proves_not_acted(&err) {
                match recheck().await {
                    Ok(Some(v)) => return Ok(v),
                    Ok(None) if attempt < self.max_retries => {}
                    // No way to tell whether the call acted: report, do not resend.
                    Ok(None) | Err(_) => return Err(err.set_permanent()),
                }
            }
            // A rate-limit refusal says "later", not "broken": the global
            // pause (see `Client::after_reply`) spaces the attempts out, and
            // they get a budget of their own so that a burst of calls
            // outlasts MediaFire's window instead of failing inside it.
            let budget = if err.kind() == ErrorKind::RateLimited {
                rate_limited += 1;
                (
                    rate_limited,
                    self.max_retries.saturating_mul(RATE_LIMIT_BUDGET),
                )
            } else {
                attempt += 1;
                (attempt, self.max_retries)
            };
            if budget.0 > budget.1 {
                return Err(err.set_persistent());
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            let delay = self.delay(budget.0.min(self.max_retries.max(1)));
            warn!(action, attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// How many times more attempts a rate-limited call gets than other
/// temporary failures.
const RATE_LIMIT_BUDGET: u32 = 4;

/// True when the failure shows MediaFire did not act on the request.
pub fn proves_not_acted(err: &Error) -> bool {
    if let Some(code) = err.code() {
        return codes::proves_not_acted(code);
    }
    if err.kind() == ErrorKind::RateLimited {
        return true;
    }
    // A Cloudflare challenge (403/429/503 HTML) never reached the API.
    if matches!(err.context("http_status"), Some("403" | "429")) {
        return true;
    }
    is_connect_error(err)
}

fn is_connect_error(err: &Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<reqwest::Error>() {
            return r.is_connect();
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::error::Retry;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn temporary_errors_are_retried_then_persistent() {
        let n = AtomicU32::new(0);
        let r: Result<()> = policy()
            .run("a/b", Idempotency::Idempotent, || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::Transient, "x"))
            })
            .await;
        assert_eq!(n.load(Ordering::SeqCst), 4);
        assert_eq!(r.unwrap_err().retry(), Retry::Persistent);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let n = AtomicU32::new(0);
        let _ = policy()
            .run::<(), _, _>("a/b", Idempotency::Idempotent, || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::NotFound, "x"))
            })
            .await;
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn ambiguous_failure_of_a_create_asks_the_recheck() {
        let n = AtomicU32::new(0);
        let r = policy()
            .run_checked(
                "folder/create",
                Idempotency::NotIdempotent,
                || async {
                    n.fetch_add(1, Ordering::SeqCst);
                    Err(Error::new(ErrorKind::Transient, "timeout"))
                },
                || async { Ok(Some(7)) },
            )
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn rate_limits_get_a_larger_budget_that_still_ends() {
        let n = AtomicU32::new(0);
        let r = policy()
            .run::<u32, _, _>("device/get_status", Idempotency::Idempotent, || async {
                if n.fetch_add(1, Ordering::SeqCst) < 8 {
                    Err(Error::new(ErrorKind::RateLimited, "slow down").with_code(163))
                } else {
                    Ok(1)
                }
            })
            .await;
        assert_eq!(
            r.unwrap(),
            1,
            "more refusals than max_retries are ridden out"
        );

        let n = AtomicU32::new(0);
        let r = policy()
            .run::<(), _, _>("device/get_status", Idempotency::Idempotent, || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::RateLimited, "slow down").with_code(163))
            })
            .await;
        assert_eq!(r.unwrap_err().retry(), crate::error::Retry::Persistent);
        assert_eq!(n.load(Ordering::SeqCst), 3 * RATE_LIMIT_BUDGET + 1);
    }

    #[tokio::test]
    async fn ambiguous_failure_without_a_recheck_is_not_resent() {
        let n = AtomicU32::new(0);
        let r: Result<()> = policy()
            .run("file/copy", Idempotency::NotIdempotent, || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::Transient, "connection closed"))
            })
            .await;
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert_eq!(r.unwrap_err().retry(), Retry::Permanent);
    }

    #[tokio::test]
    async fn rate_limit_is_resent_even_when_not_idempotent() {
        let n = AtomicU32::new(0);
        let rechecks = AtomicU32::new(0);
        let r = policy()
            .run_checked(
                "file/copy",
                Idempotency::NotIdempotent,
                || async {
                    if n.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err(Error::new(ErrorKind::RateLimited, "slow down").with_code(163))
                    } else {
                        Ok(1)
                    }
                },
                || async {
                    rechecks.fetch_add(1, Ordering::SeqCst);
                    Ok(None)
                },
            )
            .await;
        assert_eq!(r.unwrap(), 1);
        assert_eq!(
            rechecks.load(Ordering::SeqCst),
            0,
            "a rate-limited call needs no re-check"
        );
    }
}
