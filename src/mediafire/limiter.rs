//! The global brake on API traffic: a calls-per-second token bucket with a
//! burst allowance, plus a semaphore capping how many calls are in flight.
//!
//! Every API call and every resumable unit takes a [`Permit`] before it is
//! sent and holds it until its reply is read. Units ([`Class::Transfer`])
//! hold their slot for as long as the bytes take, so they may fill all but
//! [`RESERVED_FOR_CALLS`] slots: a big upload never starves the listings a
//! file manager asks for meanwhile. When MediaFire answers 163/261 the client
//! calls [`Limiter::pause`], which stops *all* callers for a while instead of
//! letting each one hammer the server on its own schedule. Downloads from the
//! download host are not limited here.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// In-flight slots that unit uploads may never take.
pub const RESERVED_FOR_CALLS: usize = 2;

/// What a permit is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// An ordinary API call: short.
    Call,
    /// A resumable unit: holds its slot while megabytes travel.
    Transfer,
}

/// Token bucket + concurrency cap, shared by all clones of a client.
pub struct Limiter {
    rate: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
    in_flight: Arc<Semaphore>,
    transfers: Arc<Semaphore>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    paused_until: Instant,
}

/// Held while one call is in flight.
pub struct Permit {
    _slot: OwnedSemaphorePermit,
    _transfer: Option<OwnedSemaphorePermit>,
}

impl Limiter {
    /// `rate` calls per second (≤ 0 disables the bucket), `burst` tokens at
    /// most, `max_concurrent` calls in flight (at least 1).
    pub fn new(rate: f64, burst: u32, max_concurrent: usize) -> Limiter {
        let burst = f64::from(burst.max(1));
        let now = Instant::now();
        Limiter {
            rate,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                last: now,
                paused_until: now,
            }),
            in_flight: Arc::new(Semaphore::new(max_concurrent.max(1))),
            transfers: Arc::new(Semaphore::new(
                max_concurrent.saturating_sub(RESERVED_FOR_CALLS).max(1),
            )),
        }
    }

    /// Waits for a free slot (of `class`) and a token.
    pub async fn acquire(&self, class: Class) -> Permit {
        // Neither semaphore is ever closed, so acquiring cannot fail.
        let transfer = match class {
            Class::Transfer => Arc::clone(&self.transfers).acquire_owned().await.ok(),
            Class::Call => None,
        };
        let slot = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .expect("the limiter semaphore is never closed");
        loop {
            match self.take_token() {
                None => {
                    return Permit {
                        _slot: slot,
                        _transfer: transfer,
                    };
                }
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Takes a token, or says how long to wait for one.
    fn take_token(&self) -> Option<Duration> {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now < b.paused_until {
            return Some(b.paused_until - now);
        }
        if self.rate <= 0.0 {
            return None;
        }
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }

    /// Stops every caller for `d` (MediaFire said 163/261) and empties the
    /// bucket so traffic restarts slowly.
    pub fn pause(&self, d: Duration) {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + d;
        if until > b.paused_until {
            b.paused_until = until;
        }
        b.tokens = 0.0;
        b.last = until;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bucket_allows_burst_then_rate() {
        let l = Limiter::new(100.0, 5, 100);
        let start = Instant::now();
        for _ in 0..5 {
            drop(l.acquire(Class::Call).await);
        }
        assert!(start.elapsed() < Duration::from_millis(20));
        for _ in 0..10 {
            drop(l.acquire(Class::Call).await);
        }
        let e = start.elapsed();
        assert!(
            e >= Duration::from_millis(90) && e < Duration::from_secs(2),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn pause_holds_everyone() {
        let l = Limiter::new(1000.0, 10, 4);
        l.pause(Duration::from_millis(150));
        let start = Instant::now();
        drop(l.acquire(Class::Call).await);
        assert!(start.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn transfers_leave_slots_for_calls() {
        let l = Limiter::new(0.0, 1, 4);
        let _t1 = l.acquire(Class::Transfer).await;
        let _t2 = l.acquire(Class::Transfer).await;
        let t3 = tokio::time::timeout(Duration::from_millis(30), l.acquire(Class::Transfer)).await;
        assert!(t3.is_err(), "two of four slots are reserved for calls");
        let _c1 = l.acquire(Class::Call).await;
        let _c2 = l.acquire(Class::Call).await;
    }

    #[tokio::test]
    async fn semaphore_caps_in_flight() {
        let l = Limiter::new(0.0, 1, 2);
        let a = l.acquire(Class::Call).await;
        let _b = l.acquire(Class::Call).await;
        let third = tokio::time::timeout(Duration::from_millis(30), l.acquire(Class::Call)).await;
        assert!(third.is_err());
        drop(a);
        let third = tokio::time::timeout(Duration::from_millis(200), l.acquire(Class::Call)).await;
        assert!(third.is_ok());
    }
}
