//! The login throttle's counters as stored, and the front door to them.

use super::{Store, StoreError, dispatch};
use crate::clock::UnixTime;

/// One failure counter of the login throttle: its kind (`user`, `address`
/// or `account`) and what it counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FailureCounter {
    /// The kind of counter.
    pub counter: &'static str,
    /// What it counts: a username, an address, or both.
    pub subject: String,
}

/// A counter's current window, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureWindow {
    /// When its first failure was counted.
    pub start: UnixTime,
    /// Failures counted since.
    pub failures: u32,
}

impl Store {
    /// The current windows of `counters` (at most three), where they have
    /// one.
    pub async fn login_failures(
        &self,
        counters: &[FailureCounter],
    ) -> Result<Vec<(FailureCounter, FailureWindow)>, StoreError> {
        assert!(counters.len() <= 3, "at most three counters per read");
        dispatch!(&self.db, db => db.login_failures(counters).await)
    }

    /// Counts a failed login on each of `counters` at `now`, in windows of
    /// `window` seconds, and deletes the windows that have ended; one
    /// transaction.
    pub async fn count_login_failure(
        &self,
        counters: &[FailureCounter],
        now: UnixTime,
        window: i64,
    ) -> Result<(), StoreError> {
        dispatch!(&self.db, db => db.count_login_failure(counters, now, window).await)
    }

    /// Forgets one counter's failures.
    pub async fn forget_login_failures(&self, counter: &FailureCounter) -> Result<(), StoreError> {
        dispatch!(&self.db, db => db.forget_login_failures(counter).await)
    }
}
