//! Counters for `/metrics`: API calls by action and outcome, session
//! renewals, bytes moved. Cheap to update from any task; [`ClientStats`] is a
//! snapshot.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

/// Live counters, shared by all clones of a client.
#[derive(Default)]
pub(crate) struct Stats {
    calls: Mutex<BTreeMap<(&'static str, String), u64>>,
    pub renewals: AtomicU64,
    pub token_fetches: AtomicU64,
    pub action_tokens: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub link_refreshes: AtomicU64,
}

/// One row of [`ClientStats::api_calls`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiCallCount {
    /// `<category>/<action>`, e.g. `folder/get_content`.
    pub action: String,
    /// `ok`, `error_<code>` for a MediaFire error, or the error kind.
    pub outcome: String,
    pub count: u64,
}

/// A snapshot of the client's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub api_calls: Vec<ApiCallCount>,
    /// Successful `user/renew_session_token` calls.
    pub renewals: u64,
    /// Session tokens bought with the cookie.
    pub token_fetches: u64,
    /// Upload action tokens fetched.
    pub action_tokens: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Direct links fetched again after the download host refused one.
    pub link_refreshes: u64,
    /// Calls sent again after a temporary failure.
    pub retries: u64,
}

impl ClientStats {
    /// Total calls of `action` with `outcome`.
    pub fn calls(&self, action: &str, outcome: &str) -> u64 {
        self.api_calls
            .iter()
            .filter(|c| c.action == action && c.outcome == outcome)
            .map(|c| c.count)
            .sum()
    }

    /// Total calls of `action`, any outcome.
    pub fn calls_of(&self, action: &str) -> u64 {
        self.api_calls
            .iter()
            .filter(|c| c.action == action)
            .map(|c| c.count)
            .sum()
    }
}

impl Stats {
    pub fn record<T>(&self, action: &'static str, result: &Result<T, Error>) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => match e.code() {
                Some(c) => format!("error_{c}"),
                None => e.kind().as_str().replace(' ', "_"),
            },
        };
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls.entry((action, outcome)).or_default() += 1;
    }

    pub fn snapshot(&self) -> ClientStats {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        ClientStats {
            api_calls: calls
                .iter()
                .map(|((a, o), n)| ApiCallCount {
                    action: a.to_string(),
                    outcome: o.clone(),
                    count: *n,
                })
                .collect(),
            renewals: self.renewals.load(Ordering::Relaxed),
            token_fetches: self.token_fetches.load(Ordering::Relaxed),
            action_tokens: self.action_tokens.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
            link_refreshes: self.link_refreshes.load(Ordering::Relaxed),
            retries: 0,
        }
    }
}
