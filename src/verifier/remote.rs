//! A JWKS fetched from a URL and cached: for the response's `max-age`
//! (bounded), revalidated with `If-None-Match`, refetched when a token
//! names an unknown kid (at most once per cooldown), and kept when the
//! issuer is unreachable. Verifications of known kids never wait for a
//! fetch: an expired cache is refreshed in the background.
//!
//! Time comes from the verifier's [`Clock`], in whole seconds; the
//! decisions that depend on it (`Timing`, `Span`) are pure functions of
//! the time and the cached state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};

use super::error::VerifierError;
use super::key::JwkSet;
use crate::clock::{Clock, UnixTime};

/// How a [`RemoteJwks`] fetches and caches. The cache durations are
/// counted in whole seconds of the verifier's clock, rounded up.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Timeout of one fetch.
    pub timeout: Duration,
    /// The shortest time a fetched JWKS is trusted, whatever `max-age` says
    /// (and the wait before retrying a failed fetch).
    pub min_cache: Duration,
    /// The longest time a fetched JWKS is trusted without revalidation
    /// (it wins over `min_cache` if shorter).
    pub max_cache: Duration,
    /// At most one fetch per this long because of unknown kids.
    pub unknown_kid_cooldown: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            min_cache: Duration::from_secs(10),
            max_cache: Duration::from_secs(3_600),
            unknown_kid_cooldown: Duration::from_secs(30),
        }
    }
}

/// A stretch of the clock's time: `length` seconds from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: UnixTime,
    length: i64,
}

impl Span {
    /// Whether the span is over at `now`. A clock set back before its start
    /// ends it too: a wall clock stepped back costs one early fetch, not a
    /// cache trusted (or a cooldown kept) for as long as the step.
    fn is_over(self, now: UnixTime) -> bool {
        now < self.start || now.saturating_sub(self.start) >= self.length
    }
}

/// The options' durations in whole seconds, and what they decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    min_cache: i64,
    max_cache: i64,
    unknown_kid_cooldown: i64,
}

impl Timing {
    fn new(options: &RemoteOptions) -> Self {
        Self {
            min_cache: whole_seconds(options.min_cache),
            max_cache: whole_seconds(options.max_cache),
            unknown_kid_cooldown: whole_seconds(options.unknown_kid_cooldown),
        }
    }

    /// How long keys fetched at `now` with this `max-age` are trusted:
    /// `max_age` held between `min_cache` and `max_cache`.
    fn after_fetch(self, now: UnixTime, max_age: Duration) -> Span {
        let length = whole_seconds(max_age)
            .max(self.min_cache)
            .min(self.max_cache);
        Span { start: now, length }
    }

    /// How long the cached keys stand after a fetch failed at `now`: the
    /// next try is `min_cache` away.
    fn after_failure(self, now: UnixTime) -> Span {
        Span {
            start: now,
            length: self.min_cache,
        }
    }

    /// The cooldown an unknown-kid fetch at `now` starts.
    fn cooldown(self, now: UnixTime) -> Span {
        Span {
            start: now,
            length: self.unknown_kid_cooldown,
        }
    }
}

/// `duration` in seconds, rounded up, saturating.
fn whole_seconds(duration: Duration) -> i64 {
    let secs = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    i64::try_from(secs).unwrap_or(i64::MAX)
}

struct Cached {
    keys: Arc<JwkSet>,
    etag: Option<String>,
    /// Until when the keys are used without revalidation.
    trusted: Span,
}

/// A cached JWKS behind a URL.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    timing: Timing,
    cached: RwLock<Arc<Cached>>,
    /// Held while fetching, so fetches never overlap.
    fetching: tokio::sync::Mutex<()>,
    /// The cooldown started by the last fetch for an unknown kid.
    unknown_kid_cooldown: Mutex<Option<Span>>,
    /// Set while a background refresh is scheduled or running.
    refreshing: AtomicBool,
    fetches: AtomicU64,
}

impl RemoteJwks {
    /// Fetches the JWKS at `url` once; fails if that first fetch fails.
    /// The cache runs on `clock`.
    pub async fn new(
        url: &str,
        options: RemoteOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, VerifierError> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|err| VerifierError::Fetch(err.to_string()))?;
        let now = clock.now();
        let remote = Arc::new(Self {
            url: url.to_owned(),
            client,
            clock,
            timing: Timing::new(&options),
            cached: RwLock::new(Arc::new(Cached {
                keys: Arc::new(JwkSet::default()),
                etag: None,
                trusted: Span {
                    start: now,
                    length: 0,
                },
            })),
            fetching: tokio::sync::Mutex::new(()),
            unknown_kid_cooldown: Mutex::new(None),
            refreshing: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
        });
        remote.fetch().await?;
        Ok(remote)
    }

    /// How many fetches this cache has finished, answered or failed. A
    /// fetch counts once its outcome is in the cache.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Acquire)
    }

    /// The keys to verify a token naming `kid` with.
    pub async fn keys_for(self: &Arc<Self>, kid: Option<&str>) -> Arc<JwkSet> {
        let cached = self.current();
        if cached.trusted.is_over(self.clock.now()) {
            self.refresh_in_background();
        }
        let unknown = kid.is_some_and(|kid| !cached.keys.contains(kid));
        if !unknown {
            return cached.keys.clone();
        }
        if self.take_unknown_kid_slot() {
            if let Err(err) = self.fetch().await {
                tracing::warn!(url = %self.url, error = %err, "JWKS refetch for an unknown kid failed");
            }
        } else if self.fetching.try_lock().is_err() {
            // A fetch is under way: it may bring this kid too, so wait for it.
            drop(self.fetching.lock().await);
        }
        self.current().keys.clone()
    }

    fn current(&self) -> Arc<Cached> {
        self.cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Claims the once-per-cooldown right to fetch for an unknown kid.
    fn take_unknown_kid_slot(&self) -> bool {
        let mut last = self
            .unknown_kid_cooldown
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        if last.is_some_and(|cooldown| !cooldown.is_over(now)) {
            return false;
        }
        *last = Some(self.timing.cooldown(now));
        true
    }

    fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return; // one is already on its way
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(err) = this.fetch().await {
                tracing::warn!(url = %this.url, error = %err, "JWKS refresh failed; keeping the cached keys");
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches (or revalidates) the JWKS now. On failure the cached keys
    /// stay, and are trusted for `min_cache` more before the next try.
    async fn fetch(&self) -> Result<(), VerifierError> {
        let _one_at_a_time = self.fetching.lock().await;
        let previous = self.current();
        let mut request = self.client.get(&self.url);
        if let Some(etag) = &previous.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let result = match request.send().await {
            Ok(response) => self.read_response(response, &previous).await,
            Err(err) => Err(VerifierError::Fetch(err.to_string())),
        };
        let next = match &result {
            Ok(next) => next.clone(),
            Err(_) => Arc::new(Cached {
                keys: previous.keys.clone(),
                etag: previous.etag.clone(),
                trusted: self.timing.after_failure(self.clock.now()),
            }),
        };
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = next;
        self.fetches.fetch_add(1, Ordering::Release);
        result.map(|_| ())
    }

    async fn read_response(
        &self,
        response: reqwest::Response,
        previous: &Cached,
    ) -> Result<Arc<Cached>, VerifierError> {
        let max_age = max_age(
            response
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        let trusted = self.timing.after_fetch(self.clock.now(), max_age);
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(Arc::new(Cached {
                keys: previous.keys.clone(),
                etag: etag.or_else(|| previous.etag.clone()),
                trusted,
            })),
            status if status.is_success() => {
                let body = response
                    .text()
                    .await
                    .map_err(|err| VerifierError::Fetch(err.to_string()))?;
                Ok(Arc::new(Cached {
                    keys: Arc::new(JwkSet::parse(&body)?),
                    etag,
                    trusted,
                }))
            }
            status => Err(VerifierError::Fetch(format!("HTTP {status}"))),
        }
    }
}

/// The `max-age` of a `Cache-Control` value; zero when absent or when the
/// response must not be reused as is (`no-cache`, `no-store`).
fn max_age(cache_control: Option<&str>) -> Duration {
    let Some(value) = cache_control else {
        return Duration::ZERO;
    };
    let mut age = Duration::ZERO;
    for directive in value.split(',').map(str::trim) {
        let directive = directive.to_ascii_lowercase();
        if directive == "no-cache" || directive == "no-store" {
            return Duration::ZERO;
        }
        if let Some(secs) = directive
            .strip_prefix("max-age=")
            .and_then(|s| s.trim_matches('"').parse().ok())
        {
            age = Duration::from_secs(secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age(Some("public, max-age=300")),
            Duration::from_secs(300)
        );
        assert_eq!(max_age(Some("max-age=300, no-cache")), Duration::ZERO);
        assert_eq!(max_age(Some("public")), Duration::ZERO);
        assert_eq!(max_age(None), Duration::ZERO);
        assert_eq!(max_age(Some("max-age=abc")), Duration::ZERO);
    }

    fn timing(min_cache: u64, max_cache: u64, cooldown: u64) -> Timing {
        Timing::new(&RemoteOptions {
            min_cache: Duration::from_secs(min_cache),
            max_cache: Duration::from_secs(max_cache),
            unknown_kid_cooldown: Duration::from_secs(cooldown),
            ..RemoteOptions::default()
        })
    }

    #[test]
    fn max_age_is_held_between_min_and_max_cache() {
        let timing = timing(10, 3_600, 30);
        let trusted = |max_age: u64| timing.after_fetch(1_000, Duration::from_secs(max_age));
        assert_eq!(
            trusted(300),
            Span {
                start: 1_000,
                length: 300
            }
        );
        assert_eq!(trusted(0).length, 10, "at least min_cache");
        assert_eq!(trusted(86_400).length, 3_600, "at most max_cache");
        // Conflicting bounds: the shorter trust wins.
        let conflicting = Timing::new(&RemoteOptions {
            min_cache: Duration::from_secs(60),
            max_cache: Duration::from_secs(5),
            ..RemoteOptions::default()
        });
        assert_eq!(
            conflicting.after_fetch(0, Duration::from_secs(300)).length,
            5
        );
    }

    #[test]
    fn durations_count_in_whole_seconds_rounded_up() {
        let timing = Timing::new(&RemoteOptions {
            min_cache: Duration::from_millis(300),
            max_cache: Duration::from_millis(1_500),
            unknown_kid_cooldown: Duration::ZERO,
            ..RemoteOptions::default()
        });
        assert_eq!(
            timing,
            Timing {
                min_cache: 1,
                max_cache: 2,
                unknown_kid_cooldown: 0
            }
        );
        assert_eq!(whole_seconds(Duration::MAX), i64::MAX);
    }

    #[test]
    fn a_span_is_over_at_its_end_or_when_the_clock_went_back() {
        let span = Span {
            start: 1_000,
            length: 10,
        };
        assert!(!span.is_over(1_000));
        assert!(!span.is_over(1_009));
        assert!(span.is_over(1_010));
        assert!(span.is_over(i64::MAX));
        assert!(span.is_over(999), "the clock went back");
        let endless = Span {
            start: i64::MIN,
            length: i64::MAX,
        };
        assert!(endless.is_over(i64::MAX), "no overflow");
    }

    #[test]
    fn a_failed_fetch_keeps_the_keys_for_min_cache() {
        let span = timing(10, 3_600, 30).after_failure(1_000);
        assert!(!span.is_over(1_009));
        assert!(span.is_over(1_010), "the next try");
    }

    #[test]
    fn an_unknown_kid_fetch_closes_the_slot_for_the_cooldown() {
        let cooldown = timing(10, 3_600, 30).cooldown(1_000);
        assert!(!cooldown.is_over(1_000));
        assert!(!cooldown.is_over(1_029));
        assert!(cooldown.is_over(1_030));
        assert!(
            timing(10, 3_600, 0).cooldown(1_000).is_over(1_000),
            "no cooldown"
        );
    }
}
