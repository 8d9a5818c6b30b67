//! Whether this process may take traffic (SPEC §8): the store answered
//! recently, a signing key is loaded, and no shutdown has begun. The
//! background work records each round the store answered; `/readyz` and
//! the metrics read it.
//!
//! Elapsed time here is monotonic (`Instant`), not the injected clock: it
//! measures this process's own recent past, which a wall clock moved by an
//! operator or NTP must not stretch or shrink.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How recently the store must have answered for the process to be ready.
pub const STORE_SILENCE_LIMIT: Duration = Duration::from_secs(2);

/// What `/readyz` and the metrics read; shared by the server's tasks.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Milliseconds after `started` of the store's last answer, plus one;
    /// zero: never.
    store_answered: AtomicU64,
    stopping: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            store_answered: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        }
    }
}

impl Health {
    /// The store answered every query of a round just now.
    pub fn store_answered(&self) {
        let since_start = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.store_answered
            .store(since_start.saturating_add(1), Ordering::Relaxed);
    }

    /// How long ago the store last answered; `None` if it never has.
    pub fn store_silent_for(&self) -> Option<Duration> {
        match self.store_answered.load(Ordering::Relaxed) {
            0 => None,
            at => {
                let answered = self.started + Duration::from_millis(at - 1);
                Some(Instant::now().saturating_duration_since(answered))
            }
        }
    }

    /// Shutdown has begun: not ready from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// Why the process should not take traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// SIGTERM or SIGINT arrived; requests in flight are finishing.
    #[error("shutting down")]
    ShuttingDown,
    /// The store has not answered since the process started.
    #[error("the database has not answered yet")]
    StoreNeverAnswered,
    /// The store's last answer is too old.
    #[error("the database has not answered for {0} s")]
    StoreSilent(u64),
    /// No key can sign tokens.
    #[error("no signing key is loaded")]
    NoSigningKey,
}

/// Whether a process is ready, from what it knows: how long the store has
/// been silent, whether a signing key is loaded, whether it is stopping.
pub fn readiness(
    store_silent_for: Option<Duration>,
    signing_key_loaded: bool,
    stopping: bool,
) -> Result<(), NotReady> {
    if stopping {
        return Err(NotReady::ShuttingDown);
    }
    match store_silent_for {
        None => return Err(NotReady::StoreNeverAnswered),
        Some(silence) if silence > STORE_SILENCE_LIMIT => {
            return Err(NotReady::StoreSilent(silence.as_secs()));
        }
        Some(_) => {}
    }
    if !signing_key_loaded {
        return Err(NotReady::NoSigningKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECENT: Option<Duration> = Some(Duration::from_millis(300));

    #[test]
    fn ready_when_the_store_answered_recently_with_a_signer_and_no_shutdown() {
        assert_eq!(readiness(RECENT, true, false), Ok(()));
        assert_eq!(readiness(Some(STORE_SILENCE_LIMIT), true, false), Ok(()));
    }

    #[test]
    fn each_condition_alone_makes_it_not_ready() {
        assert_eq!(readiness(RECENT, true, true), Err(NotReady::ShuttingDown));
        assert_eq!(
            readiness(None, true, false),
            Err(NotReady::StoreNeverAnswered)
        );
        assert_eq!(
            readiness(Some(Duration::from_millis(2_500)), true, false),
            Err(NotReady::StoreSilent(2))
        );
        assert_eq!(readiness(RECENT, false, false), Err(NotReady::NoSigningKey));
    }

    #[test]
    fn health_remembers_the_last_answer_and_the_stop() {
        let health = Health::default();
        assert_eq!(health.store_silent_for(), None);
        health.store_answered();
        assert!(health.store_silent_for().unwrap() < Duration::from_secs(1));
        assert!(!health.stopping());
        health.stop();
        assert!(health.stopping());
    }
}
