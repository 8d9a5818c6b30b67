//! Brute-force throttling of logins: failed attempts are counted per
//! username *and* client address (so nobody can lock a user out from
//! elsewhere cheaply), per client address, and per username from all
//! addresses (distributed guessing), each in a 15-minute window that opens
//! at its first failure; past a limit, logins are refused before any
//! password is checked. The counters live in the database, so every
//! process serving it shares them: N processes do not give N times the
//! attempts. Finished windows are deleted as new failures are counted.

use std::net::IpAddr;

use crate::clock::UnixTime;
use crate::store::{FailureCounter, FailureWindow, Store, StoreError};

/// Length of a counting window, in seconds.
pub const WINDOW: i64 = 15 * 60;

/// A refused login: how many seconds until it may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the window that hit its limit ends.
    pub retry_after: i64,
}

/// How many failures each counter allows per window; 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// For one username from one address.
    pub per_user: u32,
    /// From one address, whatever the usernames.
    pub per_address: u32,
    /// For one username, whatever the addresses.
    pub per_account: u32,
}

/// Failure counters for logins, kept in the store.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: ThrottleLimits,
    store: Store,
}

impl LoginThrottle {
    /// Counters in `store` allowing `limits` failures per window.
    pub fn new(limits: ThrottleLimits, store: Store) -> Self {
        Self { limits, store }
    }

    /// `Some` when any counter of this attempt has used up its failures in
    /// its current window. `username` is `None` for a name that is not
    /// valid: only its address counts.
    pub async fn check(
        &self,
        username: Option<&str>,
        address: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Option<Throttled>, StoreError> {
        let counters = counters_of(&self.limits, username, address);
        if counters.is_empty() {
            return Ok(None);
        }
        let keys: Vec<FailureCounter> = counters.iter().map(|(key, _)| key.clone()).collect();
        let windows = self.store.login_failures(&keys).await?;
        Ok(verdict(&counters, &windows, now))
    }

    /// Counts a failed login.
    pub async fn record_failure(
        &self,
        username: Option<&str>,
        address: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let counters: Vec<FailureCounter> = counters_of(&self.limits, username, address)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        if counters.is_empty() {
            return Ok(());
        }
        self.store.count_login_failure(&counters, now, WINDOW).await
    }

    /// Forgets a username's failures from this address after it logged in
    /// from there. Its count from all addresses stays: a distributed guess
    /// is not forgiven because the owner logged in meanwhile.
    pub async fn record_success(
        &self,
        username: &str,
        address: Option<IpAddr>,
    ) -> Result<(), StoreError> {
        if self.limits.per_user == 0 {
            return Ok(());
        }
        self.store
            .forget_login_failures(&user_at_address(username, address))
            .await
    }
}

/// The counters an attempt is counted on, each with its limit; those whose
/// limit is 0 are left out.
fn counters_of(
    limits: &ThrottleLimits,
    username: Option<&str>,
    address: Option<IpAddr>,
) -> Vec<(FailureCounter, u32)> {
    let address = address.map(bucket);
    let mut counters = Vec::with_capacity(3);
    if let Some(name) = username {
        counters.push((user_at_address(name, address), limits.per_user));
        let account = FailureCounter {
            counter: "account",
            subject: name.to_owned(),
        };
        counters.push((account, limits.per_account));
    }
    if let Some(address) = address {
        let address = FailureCounter {
            counter: "address",
            subject: address.to_string(),
        };
        counters.push((address, limits.per_address));
    }
    counters.retain(|(_, limit)| *limit > 0);
    counters
}

/// The counter of one username from one address (or from no known one).
fn user_at_address(username: &str, address: Option<IpAddr>) -> FailureCounter {
    let address = address.map(bucket);
    FailureCounter {
        counter: "user",
        // A valid username holds no space.
        subject: match address {
            Some(address) => format!("{username} {address}"),
            None => username.to_owned(),
        },
    }
}

/// Whether an attempt is refused at `now`, given its counters' windows:
/// refused until the latest-ending window among those at their limit ends.
fn verdict(
    counters: &[(FailureCounter, u32)],
    windows: &[(FailureCounter, FailureWindow)],
    now: UnixTime,
) -> Option<Throttled> {
    windows
        .iter()
        .filter_map(|(key, window)| {
            let (_, limit) = counters.iter().find(|(counter, _)| counter == key)?;
            let ends = window.start + WINDOW;
            (window.failures >= *limit && now < ends).then_some(ends - now)
        })
        .max()
        .map(|retry_after| Throttled { retry_after })
}

/// The unit an address is counted in: an IPv4 address, or an IPv6 /64 (a
/// client usually holds a whole one). An IPv4-mapped IPv6 address, as a
/// dual-stack listener sees IPv4 clients, is the IPv4 address.
fn bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    /// A throttle on a fresh SQLite file (kept as long as the directory).
    async fn limits(per_user: u32, per_address: u32, per_account: u32) -> Throttle {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!(
            "sqlite://{}",
            dir.path().join("jwtd.db").display()
        ))
        .await
        .unwrap();
        let limits = ThrottleLimits {
            per_user,
            per_address,
            per_account,
        };
        Throttle {
            inner: LoginThrottle::new(limits, store),
            _dir: dir,
        }
    }

    struct Throttle {
        inner: LoginThrottle,
        _dir: tempfile::TempDir,
    }

    impl Throttle {
        async fn check(
            &self,
            username: Option<&str>,
            address: Option<IpAddr>,
            now: i64,
        ) -> Option<Throttled> {
            self.inner.check(username, address, now).await.unwrap()
        }

        async fn record_failure(&self, username: Option<&str>, address: Option<IpAddr>, now: i64) {
            self.inner
                .record_failure(username, address, now)
                .await
                .unwrap();
        }

        async fn record_success(&self, username: &str, address: Option<IpAddr>) {
            self.inner.record_success(username, address).await.unwrap();
        }
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[tokio::test]
    async fn a_username_is_throttled_after_its_limit_until_the_window_ends() {
        let throttle = limits(3, 0, 0).await;
        for _ in 0..3 {
            assert_eq!(throttle.check(Some("alice"), HOME, 1_000).await, None);
            throttle.record_failure(Some("alice"), HOME, 1_000).await;
        }
        assert_eq!(
            throttle.check(Some("alice"), HOME, 1_100).await,
            Some(Throttled {
                retry_after: WINDOW - 100
            })
        );
        assert_eq!(
            throttle.check(Some("bob"), HOME, 1_100).await,
            None,
            "per user, not global"
        );
        assert_eq!(
            throttle.check(Some("alice"), HOME, 1_000 + WINDOW).await,
            None,
            "the window ended"
        );
    }

    #[tokio::test]
    async fn a_username_is_counted_per_address() {
        let throttle = limits(2, 0, 0).await;
        for _ in 0..2 {
            throttle
                .record_failure(Some("alice"), ip("192.0.2.1"), 10)
                .await;
        }
        assert!(
            throttle
                .check(Some("alice"), ip("192.0.2.1"), 11)
                .await
                .is_some()
        );
        assert_eq!(
            throttle.check(Some("alice"), ip("192.0.2.2"), 11).await,
            None,
            "another address is not locked out"
        );
    }

    #[tokio::test]
    async fn an_account_is_throttled_across_addresses() {
        let throttle = limits(10, 0, 5).await;
        for i in 0..5 {
            throttle
                .record_failure(Some("alice"), ip(&format!("192.0.2.{i}")), 10)
                .await;
        }
        assert!(
            throttle
                .check(Some("alice"), ip("198.51.100.7"), 11)
                .await
                .is_some()
        );
        assert_eq!(
            throttle.check(Some("bob"), ip("198.51.100.7"), 11).await,
            None
        );
    }

    #[tokio::test]
    async fn an_address_is_throttled_whatever_usernames_it_tries() {
        let throttle = limits(0, 5, 0).await;
        for i in 0..4 {
            throttle
                .record_failure(Some(&format!("user{i}")), HOME, 10)
                .await;
        }
        throttle.record_failure(None, HOME, 10).await;
        assert!(
            throttle
                .check(Some("someone-else"), HOME, 11)
                .await
                .is_some()
        );
        assert!(throttle.check(None, HOME, 11).await.is_some());
        assert_eq!(throttle.check(Some("someone-else"), None, 11).await, None);
    }

    #[tokio::test]
    async fn success_forgets_the_failures_from_its_address_only() {
        let throttle = limits(2, 0, 3).await;
        throttle.record_failure(Some("alice"), HOME, 10).await;
        throttle.record_success("alice", HOME).await;
        throttle.record_failure(Some("alice"), HOME, 10).await;
        assert_eq!(throttle.check(Some("alice"), HOME, 10).await, None);
        throttle
            .record_failure(Some("alice"), ip("192.0.2.9"), 10)
            .await;
        assert!(
            throttle.check(Some("alice"), HOME, 10).await.is_some(),
            "three failures for the account in all"
        );
    }

    #[tokio::test]
    async fn zero_turns_a_limit_off() {
        let throttle = limits(0, 0, 0).await;
        for _ in 0..100 {
            throttle.record_failure(Some("alice"), HOME, 10).await;
        }
        assert_eq!(throttle.check(Some("alice"), HOME, 10).await, None);
    }

    #[tokio::test]
    async fn throttles_on_one_database_share_their_counts() {
        let first = limits(3, 0, 0).await;
        let store = Store::open(&format!(
            "sqlite://{}",
            first._dir.path().join("jwtd.db").display()
        ))
        .await
        .unwrap();
        let second = LoginThrottle::new(first.inner.limits, store);
        first.record_failure(Some("alice"), HOME, 10).await;
        second
            .record_failure(Some("alice"), HOME, 11)
            .await
            .unwrap();
        assert_eq!(first.check(Some("alice"), HOME, 12).await, None);
        first.record_failure(Some("alice"), HOME, 12).await;
        assert_eq!(
            second.check(Some("alice"), HOME, 13).await.unwrap(),
            Some(Throttled {
                retry_after: WINDOW - 3
            }),
            "three failures through two throttles; the window opened at the first"
        );
    }

    #[tokio::test]
    async fn a_finished_window_starts_again_and_is_deleted() {
        let throttle = limits(2, 0, 0).await;
        throttle.record_failure(Some("alice"), HOME, 10).await;
        throttle.record_failure(Some("alice"), HOME, 10).await;
        assert!(
            throttle
                .check(Some("alice"), HOME, 10 + WINDOW - 1)
                .await
                .is_some()
        );
        throttle
            .record_failure(Some("alice"), HOME, 10 + WINDOW)
            .await;
        assert_eq!(
            throttle.check(Some("alice"), HOME, 10 + WINDOW).await,
            None,
            "one failure in the new window"
        );
        throttle
            .record_failure(Some("bob"), HOME, 10 + 2 * WINDOW + 1)
            .await;
        let stored = throttle
            .inner
            .store
            .login_failures(&[user_at_address("alice", HOME)])
            .await
            .unwrap();
        assert!(
            stored.is_empty(),
            "alice's finished window is deleted: {stored:?}"
        );
    }

    #[tokio::test]
    async fn ipv6_clients_count_per_64() {
        let throttle = limits(0, 2, 0).await;
        throttle
            .record_failure(Some("x"), ip("2001:db8::1"), 10)
            .await;
        throttle
            .record_failure(Some("y"), ip("2001:db8::ffff:2"), 10)
            .await;
        assert!(
            throttle
                .check(Some("z"), ip("2001:db8::1"), 11)
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn ipv4_clients_of_a_dual_stack_listener_count_per_address() {
        let throttle = limits(0, 2, 0).await;
        throttle
            .record_failure(Some("x"), ip("::ffff:192.0.2.1"), 10)
            .await;
        throttle
            .record_failure(Some("y"), ip("::ffff:192.0.2.1"), 10)
            .await;
        assert!(
            throttle
                .check(Some("z"), ip("192.0.2.1"), 11)
                .await
                .is_some()
        );
        assert_eq!(
            throttle.check(Some("z"), ip("::ffff:192.0.2.2"), 11).await,
            None
        );
    }
}
