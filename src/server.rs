//! Assembling a running issuer: open the store, load the master key, make
//! sure signing keys exist, build the key ring, then serve HTTP while a
//! background task keeps the key ring in step with the database.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::health::Health;
use crate::http::{self, AppServices, AppState, ConnectionLimits};
use crate::keys::lifecycle::{self, KeyMaking};
use crate::keys::rewrap;
use crate::keys::schedule::{RotationPolicy, Step};
use crate::keys::{KeyError, KeyRing, KeySet, MasterKey};
use crate::metrics::METRICS;
use crate::store::{ChangeFeed, Store, StoreError};
use crate::tokens::{RefreshWriter, TokenService};
use crate::users::{AccountCache, LoginThrottle, PasswordHasher, ThrottleLimits};

/// How often a server runs the key schedule and looks for key and user
/// changes made by other processes.
pub(crate) const KEY_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often `serve` deletes expired token records: daily, by the clock.
const FLUSH_INTERVAL: i64 = 86_400;

/// Why the issuer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The master key or a signing key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The configured `bind` address.
        addr: SocketAddr,
        /// The operating system's reason (in use, not permitted, …).
        reason: String,
    },
}

/// A ready-to-serve issuer.
pub struct Issuer {
    state: AppState,
    keys: KeyKeeper,
}

/// The bound listeners: the API's, and the metrics listener's when
/// `metrics_bind` is set.
pub struct Listeners {
    api: TcpListener,
    metrics: Option<TcpListener>,
}

impl Listeners {
    /// The API's address (the port the system chose for `:0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.api.local_addr()
    }

    /// The metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// What the background key task needs.
#[derive(Clone)]
struct KeyKeeper {
    master: Arc<MasterKey>,
    making: KeyMaking,
}

impl Issuer {
    /// Opens the store (creating and migrating it), loads or creates the
    /// master key, creates the first signing keys if needed and loads them.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let store = Store::open(&config.database_url).await?;
        store
            .check_writable()
            .await
            .map_err(|err| StoreError::Open {
                path: config.database_name(),
                reason: err.to_string(),
            })?;
        let master = Arc::new(MasterKey::load(&config.master_key)?);
        let making = KeyMaking {
            policy: RotationPolicy::new(&config),
            rsa_bits: config.rsa_bits,
        };
        let (version, stored) = store.keys_with_version().await?;
        // Every stored private key must open before any new key is sealed:
        // one sealed under a master key no longer configured would fail
        // only on the day it is due to sign.
        rewrap::check_every_key_opens(&stored, &master)?;
        KeySet::build(version, &stored, &master, None, &making.policy)?;
        lifecycle::run_schedule(&store, &master, making, clock.as_ref()).await?;
        let (version, stored) = store.keys_with_version().await?;
        let keys = KeySet::build(version, &stored, &master, None, &making.policy)?;
        let state = AppState::new(AppServices {
            tokens: Arc::new(TokenService::new(&config)),
            passwords: PasswordHasher::with_cost(config.password_hash).await,
            keys: Arc::new(KeyRing::new(keys)),
            throttle: Arc::new(LoginThrottle::new(
                ThrottleLimits {
                    per_user: config.login_failures_per_user,
                    per_address: config.login_failures_per_address,
                    per_account: config.login_failures_per_account,
                },
                store.clone(),
            )),
            accounts: Arc::new(AccountCache::new(store.users_version().await?)),
            config: Arc::new(config),
            refresh_writer: RefreshWriter::start(store.clone()),
            health: Arc::new(Health::default()),
            store,
            clock,
        });
        // Everything above read the store.
        state.health.store_answered();
        Ok(Self {
            state,
            keys: KeyKeeper { master, making },
        })
    }

    /// The state handlers see (`testing::Minter` logs users in through it).
    pub(crate) fn state(&self) -> &AppState {
        &self.state
    }

    /// Binds the configured address, and `metrics_bind` when set.
    pub async fn bind(&self) -> Result<Listeners, StartupError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|err| StartupError::Bind {
                    addr,
                    reason: err.to_string(),
                })
        };
        let api = bind(self.state.config.bind).await?;
        let metrics = match self.state.config.metrics_bind {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { api, metrics })
    }

    /// Serves HTTP on `listener` until `shutdown` completes, keeping the key
    /// ring current in the background. Then, in order: `/readyz` answers
    /// 503, the listener closes, requests in flight finish (for up to
    /// `shutdown_timeout`), the background task stops, the refresh writer
    /// commits what is queued, and the store closes.
    pub async fn serve(self, listeners: Listeners, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let background = tokio::spawn(keep_in_step(self.state.clone(), self.keys, stop_rx));
        let config = &self.state.config;
        let limits = ConnectionLimits {
            header_timeout: config.request_header_timeout,
            request_timeout: config.request_timeout,
            shutdown_timeout: config.shutdown_timeout,
        };
        let health = Arc::clone(&self.state.health);
        let shutdown = async move {
            shutdown.await;
            health.stop();
            tracing::info!("shutting down: not ready, no new connections, finishing requests");
        };
        let routers = http::routers(self.state.clone());
        // The metrics listener (with the probes) outlives the API's drain.
        let (drained_tx, drained_rx) = watch::channel(false);
        let metrics = match (listeners.metrics, routers.metrics) {
            (Some(listener), Some(router)) => {
                let mut drained = drained_rx;
                let done = async move {
                    let _ = drained.wait_for(|drained| *drained).await;
                };
                Some(tokio::spawn(http::serve(
                    listener, router, limits, None, done,
                )))
            }
            _ => None,
        };
        http::serve(
            listeners.api,
            routers.api,
            limits,
            routers.observed,
            shutdown,
        )
        .await;
        let _ = drained_tx.send(true);
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        let _ = stop_tx.send(true);
        let _ = background.await;
        self.state.refresh_writer.finish().await;
        self.state.store.close().await;
    }
}

/// Runs the key schedule, rebuilds the key ring whenever the store's
/// key-set version moves, empties the account cache whenever the users
/// version moves, and flushes expired token records daily.
async fn keep_in_step(state: AppState, keeper: KeyKeeper, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(KEY_POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_flush: Option<UnixTime> = None;
    // Whether the last round failed: a database that stays down is
    // reported once, not four times a second.
    let mut failing = false;
    let mut feed = match state.store.change_feed().await {
        Some(Ok(feed)) => Some(feed),
        Some(Err(err)) => {
            tracing::warn!(error = %err, "cannot listen for changes; polling only");
            None
        }
        None => None,
    };
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = next_change(&mut feed) => {}
            _ = stop.changed() => return,
        }
        // A round that waits on a locked or unreachable database must not
        // hold up shutdown; dropping it rolls back what it began.
        tokio::select! {
            () = keep_in_step_once(&state, &keeper, &mut failing, &mut last_flush) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One round of [`keep_in_step`]; `failing` says whether the round before
/// failed, and becomes whether this one did.
async fn keep_in_step_once(
    state: &AppState,
    keeper: &KeyKeeper,
    failing: &mut bool,
    last_flush: &mut Option<UnixTime>,
) {
    {
        let schedule = lifecycle::run_schedule(
            &state.store,
            &keeper.master,
            keeper.making,
            state.clock.as_ref(),
        );
        let mut round = RoundLog::default();
        match schedule.await {
            Ok(steps) => {
                for step in steps {
                    if matches!(
                        step,
                        Step::Activate {
                            previous: Some(_),
                            ..
                        }
                    ) {
                        METRICS.key_rotated();
                    }
                }
            }
            Err(err) => round.failed(&err, "key schedule failed; will retry"),
        }
        if let Err(err) = reload_keys(state, &keeper.master, &keeper.making.policy).await {
            round.failed(
                &err,
                "could not reload signing keys; keeping the current ones",
            );
        }
        match state.store.users_version().await {
            Ok(version) => {
                if state.accounts.sync(version) {
                    tracing::debug!(version, "users changed; account cache emptied");
                }
            }
            Err(err) => round.failed(&err, "could not check for user changes; will retry"),
        }
        if round.failures.is_empty() {
            state.health.store_answered();
        }
        *failing = round.end(*failing);
        let now = state.clock.now();
        if last_flush.is_none_or(|at| now - at >= FLUSH_INTERVAL) {
            *last_flush = Some(now);
            match state.store.flush_expired(now).await {
                Ok(count) => tracing::info!(event = "flush_expired", tokens = count),
                Err(err) => {
                    tracing::error!(error = %err, "flushing expired tokens failed; will retry tomorrow")
                }
            }
        }
    }
}

/// The failures of one round of the background work, logged at ERROR
/// only when the round before succeeded (at debug while they go on).
#[derive(Default)]
struct RoundLog {
    failures: Vec<String>,
}

impl RoundLog {
    fn failed(&mut self, err: &dyn std::fmt::Display, what: &'static str) {
        self.failures.push(format!("{what}: {err}"));
    }

    /// Logs this round given whether the one before failed; returns
    /// whether this one did.
    fn end(self, was_failing: bool) -> bool {
        match (was_failing, self.failures.is_empty()) {
            (false, false) => {
                for failure in &self.failures {
                    tracing::error!("{failure}");
                }
                tracing::error!(
                    every = ?KEY_POLL_INTERVAL,
                    "background work keeps being retried; logged again when it succeeds"
                );
            }
            (true, false) => {
                for failure in &self.failures {
                    tracing::debug!("{failure}");
                }
            }
            (true, true) => tracing::info!("background work succeeds again"),
            (false, true) => {}
        }
        !self.failures.is_empty()
    }
}

/// Returns when `feed` reports a change; never without a feed. After an
/// error it pauses a second (the listener reconnects at the next call).
async fn next_change(feed: &mut Option<ChangeFeed>) {
    let Some(listening) = feed else {
        return std::future::pending().await;
    };
    match listening.changed().await {
        Ok(()) => tracing::debug!("woken by a change notification"),
        Err(err) => {
            tracing::debug!(error = %err, "change notifications interrupted");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

/// Reloads the key ring if the stored key set changed since it was built.
pub(crate) async fn reload_keys(
    state: &AppState,
    master: &MasterKey,
    policy: &RotationPolicy,
) -> Result<(), KeyError> {
    let current = state.keys.current();
    if state.store.key_set_version().await? == current.version {
        return Ok(());
    }
    let (version, stored) = state.store.keys_with_version().await?;
    let keys = KeySet::build(version, &stored, master, Some(&current), policy)?;
    state.keys.replace(keys);
    tracing::info!(version, "signing keys reloaded");
    Ok(())
}
