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
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
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

    /// The error code of a rate-limited call: 163 (API request limit) or 261 (per-resource
    /// limit). Default 163.
    #[arg(long, default_value_t = 163)]
    #[serde(default = "default_rate_limit_code")]
    pub rate_limit_code: u32,

    /// Make move/copy/delete asynchronous: they answer `asynchronous:"yes"` and take effect
    /// after `--async-ms`; other mutations meanwhile answer 208.
    #[arg(long)]
    pub async_ops: bool,

    /// How long an asynchronous operation takes, in milliseconds. Default 0.
    #[arg(long, default_value_t = 0)]
    pub async_ms: u64,

    /// Force-expire every token every N seconds (counted from when the switches were set);
    /// 0 = never. Default 0.
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

    /// Answer the N-th `upload/resumable` request (counted like `fail_upload_unit`) with error
    /// 304, as if the unit had been damaged on the way; 0 = never. Default 0.
    #[arg(long, default_value_t = 0)]
    pub unit_hash_mismatch: u64,

    /// Extra delay before every API call is answered, in milliseconds. Default 0.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,

    /// Fraction (0.0–1.0) of `file/get_links` entries answered with only `quickkey` and a
    /// plain-string `error` inside a successful envelope (recorded quirk). Default 0.
    #[arg(long, default_value_t = 0.0)]
    pub link_error_rate: f64,

    /// Cut every download after this many body bytes (the connection closes mid-body);
    /// 0 = never. Default 0.
    #[arg(long, default_value_t = 0)]
    pub download_cut_after_bytes: u64,

    /// Fail every `upload/resumable` request for this unit (`x-unit-id`, 0-based) with a
    /// transient error until the switches change: a unit that keeps failing. Default none.
    #[arg(long)]
    pub fail_unit_id: Option<u64>,

    /// Hold every `upload/resumable` request this many milliseconds before handling it (a slow
    /// uplink; makes parallel units overlap). Default 0.
    #[arg(long, default_value_t = 0)]
    pub unit_delay_ms: u64,

    /// Make every upload that completes from now on fail with this poll `fileerror` (§4.7)
    /// instead of creating its file; 0 = never. Default 0.
    #[arg(long, default_value_t = 0)]
    pub upload_fileerror: u32,

    /// Answer every `upload/poll_upload` with this `doupload.result` (e.g. -80 "Upload Key not
    /// found", -20 "Invalid Upload Key"); 0 = never. Default 0.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub poll_result: i64,
}

fn default_rate_limit_code() -> u32 {
    163
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            fail_rate: 0.0,
            fail_mode: FailMode::Error100,
            rate_limit_per_sec: 0,
            rate_limit_code: default_rate_limit_code(),
            async_ops: false,
            async_ms: 0,
            expire_tokens_every_secs: 0,
            poll_delay_ms: 0,
            fail_upload_unit: 0,
            unit_hash_mismatch: 0,
            latency_ms: 0,
            link_error_rate: 0.0,
            download_cut_after_bytes: 0,
            fail_unit_id: None,
            unit_delay_ms: 0,
            upload_fileerror: 0,
            poll_result: 0,
            lose_answer_rate: 0.0,
        }
    }
}

impl Faults {
    /// Checks the values: rates must be numbers from 0 to 1, the rate-limit code 163 or 261.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.rate_limit_code, 163 | 261) {
            return Err(format!(
                "rate_limit_code must be 163 or 261 (got {})",
                self.rate_limit_code
            ));
        }
        for (name, rate) in [
            ("fail_rate", self.fail_rate),
            ("link_error_rate", self.link_error_rate),
            ("lose_answer_rate", self.lose_answer_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1 (got {rate})"));
            }
        }
        Ok(())
    }
}

/// A transient failure decided for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    Error100,
    Html403,
    Drop,
    /// Error 304 on a unit request (not a transient failure: the client must resend the unit).
    UnitHash304,
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
        if rate.is_nan() || rate <= 0.0 || rng.random::<f64>() >= rate {
            return None;
        }
        Some(self.pick_mode(rng))
    }

    /// Decides whether the answer to a call that was carried out is lost.
    pub fn answer_lost(&self, rng: &mut StdRng) -> bool {
        let rate = self.faults.lose_answer_rate;
        rate > 0.0 && rng.random::<f64>() < rate
    }

    /// Counts one `upload/resumable` request (for unit `unit_id`, when the header parses): the
    /// `fail_upload_unit`-th one, and every one for `fail_unit_id`, fails transiently; the
    /// `unit_hash_mismatch`-th one answers 304.
    pub fn unit_request_fails(
        &mut self,
        rng: &mut StdRng,
        unit_id: Option<u64>,
    ) -> Option<Injected> {
        self.unit_requests += 1;
        let nth = |n: u64| n != 0 && self.unit_requests == n;
        let marked = unit_id.is_some() && unit_id == self.faults.fail_unit_id;
        if nth(self.faults.fail_upload_unit) || marked {
            return Some(self.pick_mode(rng));
        }
        if nth(self.faults.unit_hash_mismatch) {
            return Some(Injected::UnitHash304);
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

    /// Decides, for each of `n` links, whether it is answered with an error instead.
    pub fn link_errors(&self, rng: &mut StdRng, n: usize) -> Vec<bool> {
        let rate = self.faults.link_error_rate;
        (0..n)
            .map(|_| rate > 0.0 && rng.random::<f64>() < rate)
            .collect()
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
            .map(|_| st.unit_request_fails(&mut rng, Some(0)).is_some())
            .collect();
        assert_eq!(fails, [false, false, true, false, false, false]);
    }

    #[test]
    fn a_marked_unit_fails_every_time_and_others_never() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut st = FaultState::new(Faults {
            fail_unit_id: Some(2),
            ..Faults::default()
        });
        for _ in 0..3 {
            assert!(st.unit_request_fails(&mut rng, Some(2)).is_some());
            assert!(st.unit_request_fails(&mut rng, Some(1)).is_none());
            assert!(st.unit_request_fails(&mut rng, None).is_none());
        }
    }

    #[test]
    fn faults_json_fills_missing_fields_with_defaults() {
        let f: Faults = serde_json::from_str(r#"{"fail_mode":"drop","fail_rate":0.5}"#).unwrap();
        assert_eq!(f.fail_mode, FailMode::Drop);
        assert_eq!(f.fail_rate, 0.5);
        assert_eq!(f.rate_limit_per_sec, 0);
        assert_eq!(f.rate_limit_code, 163);
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
