//! Fault injection: the failures real MediaFire produces, switched on per run.
//!
//! [`Faults`] is the switch board (flags, [`super::EmulatorHandle::set_faults`] and
//! `POST /__emulator/faults`); [`FaultState`] holds what the switches need between calls (the
//! rate window, the unit request counter, when the switches were set). Faults apply to `/api/`
//! calls only, never to the admin endpoints or the download host. All but one strike before the
//! call is looked at; `lose_answer_rate` strikes after it was carried out (the case where a
//! retry could make a duplicate).

use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// How an injected transient failure looks on the wire.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// HTTP 500 with an error 100 ("Internal server error") envelope.
    #[default]
    Error100,
    /// HTTP 403 with a Cloudflare-style "Just a moment..." HTML page.
    Html403,
    /// Close the connection without any response.
    Drop,
    /// One of the three above, picked at random per failure.
    Mixed,
}

/// The fault switches. Each is independent; the default switches everything off.
/// In JSON (`POST /__emulator/faults`) a missing field takes its default.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Fraction (0.0–1.0) of API calls that fail transiently. Default 0.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,

    /// How those calls fail: `error100`, `html403`, `drop` or `mixed`. Default `error100`.
    #[arg(long, value_enum, default_value_t = FailMode::Error100)]
    pub fail_mode: FailMode,

    /// Fraction (0.0–1.0) of API calls that are carried out but whose answer is lost: the
    /// connection drops after the work is done, so the caller cannot tell whether it happened.
    /// Default 0.
    #[arg(long, default_value_t = 0.0)]
    pub lose_answer_rate: f64,

    /// API calls per second above which calls answer error 163; 0 = unlimited. Default 0.
    #[arg(long, default_value_t = 0)]
    pub rate_limit_per_sec: u32,

    /// Make move/copy/delete asynchronous: they answer `asynchronous:"yes"` and take effect
    /// after `--async-ms`; other mutations meanwhile answer 208.
    #[arg(long)]
    pub async_ops: bool,

    /// How long an asynchronous operation takes, in milliseconds. Default 0.
    #[arg(long, default_value_t = 0)]
    pub async_ms: u64,

    /// Force-expire every token every N seconds; 0 = never. Default 0.
    #[arg(long, default_value_t = 0)]
    pub expire_tokens_every_secs: u64,

    /// Time from the last unit to poll status 99, in milliseconds; meanwhile polls answer
    /// 18, 19, 4, 5, 6 in turn. Default 0.
    #[arg(long, default_value_t = 0)]
    pub poll_delay_ms: u64,

    /// Fail the N-th `upload/resumable` request (counted from when the faults were set) with a
    /// transient error; 0 = never. Default 0.
    #[arg(long, default_value_t = 0)]
    pub fail_upload_unit: u64,
}

/// A transient failure decided for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    Error100,
    Html403,
    Drop,
}

/// The switches plus the bookkeeping they need.
pub(crate) struct FaultState {
    pub faults: Faults,
    set_at: Instant,
    window_start: Instant,
    window_calls: u32,
    unit_requests: u64,
}

impl FaultState {
    pub fn new(faults: Faults) -> Self {
        let now = Instant::now();
        FaultState {
            faults,
            set_at: now,
            window_start: now,
            window_calls: 0,
            unit_requests: 0,
        }
    }

    /// Replaces the switches and restarts their counters.
    pub fn set(&mut self, faults: Faults) {
        *self = FaultState::new(faults);
    }

    /// Counts one API call against the per-second limit; true when it is over the limit.
    pub fn over_rate_limit(&mut self, now: Instant) -> bool {
        let limit = self.faults.rate_limit_per_sec;
        if limit == 0 {
            return false;
        }
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.window_calls = 0;
        }
        self.window_calls += 1;
        self.window_calls > limit
    }

    /// Decides whether this API call fails transiently, and how.
    pub fn random_failure(&self, rng: &mut StdRng) -> Option<Injected> {
        let rate = self.faults.fail_rate;
        if !(rate > 0.0) || rng.random::<f64>() >= rate {
            return None;
        }
        Some(self.pick_mode(rng))
    }

    /// Decides whether the answer to a call that was carried out is lost.
    pub fn answer_lost(&self, rng: &mut StdRng) -> bool {
        let rate = self.faults.lose_answer_rate;
        rate > 0.0 && rng.random::<f64>() < rate
    }

    /// Counts one `upload/resumable` request; the N-th one fails.
    pub fn unit_request_fails(&mut self, rng: &mut StdRng) -> Option<Injected> {
        self.unit_requests += 1;
        let n = self.faults.fail_upload_unit;
        if n != 0 && self.unit_requests == n {
            return Some(match self.faults.fail_mode {
                // a unit failure must reach the client as an answer it can retry
                FailMode::Drop => Injected::Drop,
                FailMode::Html403 => Injected::Html403,
                FailMode::Error100 => Injected::Error100,
                FailMode::Mixed => self.pick_mode(rng),
            });
        }
        None
    }

    fn pick_mode(&self, rng: &mut StdRng) -> Injected {
        match self.faults.fail_mode {
            FailMode::Error100 => Injected::Error100,
            FailMode::Html403 => Injected::Html403,
            FailMode::Drop => Injected::Drop,
            FailMode::Mixed => match rng.random_range(0..3) {
                0 => Injected::Error100,
                1 => Injected::Html403,
                _ => Injected::Drop,
            },
        }
    }

    /// The start of the current forced-expiry period: tokens issued or renewed before it are
    /// expired. `None` when the switch is off.
    pub fn periodic_expiry_boundary(&self, now: Instant) -> Option<Instant> {
        let every = self.faults.expire_tokens_every_secs;
        if every == 0 {
            return None;
        }
        let elapsed = now.duration_since(self.set_at).as_secs();
        let periods = elapsed / every;
        if periods == 0 {
            return None;
        }
        Some(self.set_at + Duration::from_secs(periods * every))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn rate_limit_counts_per_second_window() {
        let mut st = FaultState::new(Faults {
            rate_limit_per_sec: 2,
            ..Faults::default()
        });
        let t = Instant::now();
        assert!(!st.over_rate_limit(t));
        assert!(!st.over_rate_limit(t));
        assert!(st.over_rate_limit(t));
        assert!(!st.over_rate_limit(t + Duration::from_millis(1100)));
    }

    #[test]
    fn fail_rate_one_always_fails_and_zero_never() {
        let mut rng = StdRng::seed_from_u64(7);
        let always = FaultState::new(Faults {
            fail_rate: 1.0,
            fail_mode: FailMode::Html403,
            ..Faults::default()
        });
        let never = FaultState::new(Faults::default());
        for _ in 0..100 {
            assert_eq!(always.random_failure(&mut rng), Some(Injected::Html403));
            assert_eq!(never.random_failure(&mut rng), None);
        }
    }

    #[test]
    fn only_the_nth_unit_request_fails() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut st = FaultState::new(Faults {
            fail_upload_unit: 3,
            ..Faults::default()
        });
        let fails: Vec<bool> = (0..6)
            .map(|_| st.unit_request_fails(&mut rng).is_some())
            .collect();
        assert_eq!(fails, [false, false, true, false, false, false]);
    }

    #[test]
    fn faults_json_fills_missing_fields_with_defaults() {
        let f: Faults = serde_json::from_str(r#"{"fail_mode":"drop","fail_rate":0.5}"#).unwrap();
        assert_eq!(f.fail_mode, FailMode::Drop);
        assert_eq!(f.fail_rate, 0.5);
        assert_eq!(f.rate_limit_per_sec, 0);
        assert_eq!(f.lose_answer_rate, 0.0);
    }

    #[test]
    fn lost_answers_follow_their_rate() {
        let mut rng = StdRng::seed_from_u64(3);
        let always = FaultState::new(Faults {
            lose_answer_rate: 1.0,
            ..Faults::default()
        });
        let never = FaultState::new(Faults::default());
        for _ in 0..100 {
            assert!(always.answer_lost(&mut rng));
            assert!(!never.answer_lost(&mut rng));
        }
    }
}
