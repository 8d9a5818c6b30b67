//! A JWKS fetched from a URL and cached: for the response's `max-age`
//! (bounded), revalidated with `If-None-Match`, refetched when a token
//! names an unknown kid (at most once per cooldown), and kept when the
//! issuer is unreachable. Verifications of known kids never wait for a
//! fetch: an expired cache is refreshed in the background.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use tokio::time::Instant;

use super::error::VerifierError;
use super::key::JwkSet;

/// How a [`RemoteJwks`] fetches and caches.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Timeout of one fetch.
    pub timeout: Duration,
    /// The shortest time a fetched JWKS is trusted, whatever `max-age` says
    /// (and the wait before retrying a failed fetch).
    pub min_cache: Duration,
    /// The longest time a fetched JWKS is trusted without revalidation.
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

struct Cached {
    keys: Arc<JwkSet>,
    etag: Option<String>,
    fresh_until: Instant,
}

/// A cached JWKS behind a URL.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    options: RemoteOptions,
    cached: RwLock<Arc<Cached>>,
    /// Held while fetching, so fetches never overlap.
    fetching: tokio::sync::Mutex<()>,
    last_unknown_kid_fetch: Mutex<Option<Instant>>,
    /// Set while a background refresh is scheduled or running.
    refreshing: AtomicBool,
    fetches: AtomicU64,
}

impl RemoteJwks {
    /// Fetches the JWKS at `url` once; fails if that first fetch fails.
    pub async fn new(url: &str, options: RemoteOptions) -> Result<Arc<Self>, VerifierError> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|err| VerifierError::Fetch(err.to_string()))?;
        let remote = Arc::new(Self {
            url: url.to_owned(),
            client,
            cached: RwLock::new(Arc::new(Cached {
                keys: Arc::new(JwkSet::default()),
                etag: None,
                fresh_until: Instant::now(),
            })),
            options,
            fetching: tokio::sync::Mutex::new(()),
            last_unknown_kid_fetch: Mutex::new(None),
            refreshing: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
        });
        remote.fetch().await?;
        Ok(remote)
    }

    /// How many HTTP requests this cache has made.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The keys to verify a token naming `kid` with.
    pub async fn keys_for(self: &Arc<Self>, kid: Option<&str>) -> Arc<JwkSet> {
        let cached = self.current();
        if cached.fresh_until <= Instant::now() {
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
            .last_unknown_kid_fetch
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.options.unknown_kid_cooldown) {
            return false;
        }
        *last = Some(now);
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
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = match request.send().await {
            Ok(response) => self.read_response(response, &previous).await,
            Err(err) => Err(VerifierError::Fetch(err.to_string())),
        };
        let next = match &result {
            Ok(next) => next.clone(),
            Err(_) => Arc::new(Cached {
                keys: previous.keys.clone(),
                etag: previous.etag.clone(),
                fresh_until: Instant::now() + self.options.min_cache,
            }),
        };
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = next;
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
        let fresh_until =
            Instant::now() + max_age.clamp(self.options.min_cache, self.options.max_cache);
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(Arc::new(Cached {
                keys: previous.keys.clone(),
                etag: etag.or_else(|| previous.etag.clone()),
                fresh_until,
            })),
            status if status.is_success() => {
                let body = response
                    .text()
                    .await
                    .map_err(|err| VerifierError::Fetch(err.to_string()))?;
                Ok(Arc::new(Cached {
                    keys: Arc::new(JwkSet::parse(&body)?),
                    etag,
                    fresh_until,
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
}
