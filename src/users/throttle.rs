//! Brute-force throttling of logins: failed attempts are counted per
//! username and per client address in fixed 15-minute windows; past the
//! limit, logins are refused before any password is checked. Memory is
//! bounded: at most [`MAX_TRACKED`] usernames and as many addresses, the
//! oldest forgotten first. Counters live in each process's memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::clock::UnixTime;

/// Length of a counting window, in seconds.
pub const WINDOW: i64 = 15 * 60;
/// Most keys tracked per kind (usernames, addresses).
pub const MAX_TRACKED: usize = 50_000;

/// A refused login: how many seconds until it may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the window that hit its limit ends.
    pub retry_after: i64,
}

/// Failure counters for logins.
#[derive(Debug)]
pub struct LoginThrottle {
    per_user: u32,
    per_address: u32,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    users: Windows<String>,
    addresses: Windows<IpAddr>,
}

impl LoginThrottle {
    /// Allows `per_user` failures per username and `per_address` per client
    /// address in each window; 0 turns that limit off.
    pub fn new(per_user: u32, per_address: u32) -> Self {
        Self {
            per_user,
            per_address,
            counters: Mutex::new(Counters::default()),
        }
    }

    /// Refuses a login attempt when the username or the address has used
    /// up its failures in the current window.
    pub fn check(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<(), Throttled> {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let user = counters.users.retry_after(username, self.per_user, now);
        let addr = address.and_then(|a| {
            counters
                .addresses
                .retry_after(&bucket(a), self.per_address, now)
        });
        match user.max(addr) {
            Some(retry_after) => Err(Throttled { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failed login.
    pub fn record_failure(&self, username: &str, address: Option<IpAddr>, now: UnixTime) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if self.per_user > 0 {
            counters.users.count(username.to_owned(), now);
        }
        if let (Some(address), true) = (address, self.per_address > 0) {
            counters.addresses.count(bucket(address), now);
        }
    }

    /// Forgets a username's failures after it logged in.
    pub fn record_success(&self, username: &str) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.users.windows.remove(username);
    }
}

/// IPv6 clients usually hold a whole /64: count them as one.
fn bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
    }
}

/// Failure counts in fixed windows, keyed by `K`.
#[derive(Debug)]
struct Windows<K> {
    windows: HashMap<K, (UnixTime, u32)>,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Self {
            windows: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> Windows<K> {
    /// Seconds until `key` may try again, if it hit `limit` in its window.
    fn retry_after<Q>(&self, key: &Q, limit: u32, now: UnixTime) -> Option<i64>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let &(start, failures) = self.windows.get(key)?;
        let ends = start + WINDOW;
        (limit > 0 && failures >= limit && now < ends).then_some(ends - now)
    }

    fn count(&mut self, key: K, now: UnixTime) {
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let window = self.windows.entry(key).or_insert((now, 0));
        if now >= window.0 + WINDOW {
            *window = (now, 0);
        }
        window.1 = window.1.saturating_add(1);
    }

    /// Drops finished windows; if that is not enough, the oldest 1 %, so
    /// the scan is paid once per many inserts.
    fn make_room(&mut self, now: UnixTime) {
        self.windows.retain(|_, (start, _)| now < *start + WINDOW);
        if self.windows.len() >= MAX_TRACKED {
            let mut starts: Vec<UnixTime> =
                self.windows.values().map(|(start, _)| *start).collect();
            let cut = starts.len() / 100;
            let (_, threshold, _) = starts.select_nth_unstable(cut);
            let threshold = *threshold;
            self.windows.retain(|_, (start, _)| *start > threshold);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn a_username_is_throttled_after_its_limit_until_the_window_ends() {
        let throttle = LoginThrottle::new(3, 0);
        for _ in 0..3 {
            assert_eq!(throttle.check("alice", HOME, 1_000), Ok(()));
            throttle.record_failure("alice", HOME, 1_000);
        }
        assert_eq!(
            throttle.check("alice", HOME, 1_100),
            Err(Throttled {
                retry_after: WINDOW - 100
            })
        );
        assert_eq!(
            throttle.check("bob", HOME, 1_100),
            Ok(()),
            "per user, not global"
        );
        assert_eq!(
            throttle.check("alice", HOME, 1_000 + WINDOW),
            Ok(()),
            "the window ended"
        );
    }

    #[test]
    fn an_address_is_throttled_whatever_usernames_it_tries() {
        let throttle = LoginThrottle::new(0, 5);
        for i in 0..5 {
            throttle.record_failure(&format!("user{i}"), HOME, 10);
        }
        assert!(throttle.check("someone-else", HOME, 11).is_err());
        assert_eq!(throttle.check("someone-else", None, 11), Ok(()));
    }

    #[test]
    fn success_forgets_the_usernames_failures() {
        let throttle = LoginThrottle::new(2, 0);
        throttle.record_failure("alice", HOME, 10);
        throttle.record_success("alice");
        throttle.record_failure("alice", HOME, 10);
        assert_eq!(throttle.check("alice", HOME, 10), Ok(()));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let throttle = LoginThrottle::new(0, 0);
        for _ in 0..100 {
            throttle.record_failure("alice", HOME, 10);
        }
        assert_eq!(throttle.check("alice", HOME, 10), Ok(()));
    }

    #[test]
    fn memory_stays_bounded_when_usernames_rotate() {
        let throttle = LoginThrottle::new(10, 0);
        for i in 0..(MAX_TRACKED + 1_000) {
            throttle.record_failure(&format!("u{i}"), HOME, 10 + (i as i64 / 1_000));
        }
        let counters = throttle.counters.lock().unwrap();
        assert!(counters.users.windows.len() <= MAX_TRACKED);
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let throttle = LoginThrottle::new(0, 2);
        throttle.record_failure("x", Some(a), 10);
        throttle.record_failure("y", Some(b), 10);
        assert!(throttle.check("z", Some(a), 11).is_err());
    }
}
