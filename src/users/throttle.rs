//! Brute-force throttling of logins: failed attempts are counted in fixed
//! 15-minute windows per username *and* client address (so nobody can lock
//! a user out from elsewhere cheaply), per client address, and per
//! username from all addresses (distributed guessing); past a limit,
//! logins are refused before any password is checked. Memory is bounded in
//! entries and in bytes, the oldest windows forgotten first. Counters live
//! in each process's memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::clock::UnixTime;

/// Length of a counting window, in seconds.
pub const WINDOW: i64 = 15 * 60;
/// Most keys tracked per kind (user at address, address, account).
pub const MAX_TRACKED: usize = 50_000;
/// Most bytes of keys and counters tracked per kind, about.
pub const MAX_TRACKED_BYTES: usize = 8 << 20;

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

/// Failure counters for logins.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: ThrottleLimits,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    users: Windows<(String, Option<IpAddr>)>,
    addresses: Windows<IpAddr>,
    accounts: Windows<String>,
}

impl LoginThrottle {
    /// Counters allowing `limits` failures per window.
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            counters: Mutex::new(Counters::default()),
        }
    }

    /// Refuses a login attempt when any of its counters has used up its
    /// failures in the current window. `username` is `None` for a name that
    /// is not valid: only its address counts.
    pub fn check(
        &self,
        username: Option<&str>,
        address: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<(), Throttled> {
        let ThrottleLimits {
            per_user,
            per_address,
            per_account,
        } = self.limits;
        let address = address.map(bucket);
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let addr = address.and_then(|a| counters.addresses.retry_after(&a, per_address, now));
        let (user, account) = match username {
            Some(name) => (
                counters
                    .users
                    .retry_after(&(name.to_owned(), address), per_user, now),
                counters.accounts.retry_after(name, per_account, now),
            ),
            None => (None, None),
        };
        match user.max(addr).max(account) {
            Some(retry_after) => Err(Throttled { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failed login.
    pub fn record_failure(&self, username: Option<&str>, address: Option<IpAddr>, now: UnixTime) {
        let limits = self.limits;
        let address = address.map(bucket);
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(name) = username {
            if limits.per_user > 0 {
                counters.users.count((name.to_owned(), address), now);
            }
            if limits.per_account > 0 {
                counters.accounts.count(name.to_owned(), now);
            }
        }
        if let (Some(address), true) = (address, limits.per_address > 0) {
            counters.addresses.count(address, now);
        }
    }

    /// Forgets a username's failures from this address after it logged in
    /// from there. Its count from all addresses stays: a distributed guess
    /// is not forgiven because the owner logged in meanwhile.
    pub fn record_success(&self, username: &str, address: Option<IpAddr>) {
        let key = (username.to_owned(), address.map(bucket));
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.users.forget(&key);
    }
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

/// Bytes a key holds outside its map slot.
trait HeapBytes {
    fn heap_bytes(&self) -> usize;
}

impl HeapBytes for IpAddr {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl HeapBytes for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl HeapBytes for (String, Option<IpAddr>) {
    fn heap_bytes(&self) -> usize {
        self.0.capacity()
    }
}

/// Failure counts in fixed windows, keyed by `K`, with the bytes they
/// hold.
#[derive(Debug)]
struct Windows<K> {
    windows: HashMap<K, (UnixTime, u32)>,
    bytes: usize,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Self {
            windows: HashMap::new(),
            bytes: 0,
        }
    }
}

impl<K: Eq + Hash + HeapBytes> Windows<K> {
    /// What one entry costs: its slot (key and window) and the key's heap.
    fn entry_bytes(key: &K) -> usize {
        std::mem::size_of::<(K, (UnixTime, u32))>() + key.heap_bytes()
    }

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
        if !self.windows.contains_key(&key) {
            let bytes = Self::entry_bytes(&key);
            if self.windows.len() >= MAX_TRACKED || self.bytes + bytes > MAX_TRACKED_BYTES {
                self.make_room(now, bytes);
            }
            self.bytes += bytes;
        }
        let window = self.windows.entry(key).or_insert((now, 0));
        if now >= window.0 + WINDOW {
            *window = (now, 0);
        }
        window.1 = window.1.saturating_add(1);
    }

    fn forget(&mut self, key: &K) {
        if let Some((stored, _)) = self.windows.remove_entry(key) {
            self.bytes -= Self::entry_bytes(&stored);
        }
    }

    /// Drops finished windows; while that is not enough for one more entry
    /// of `incoming` bytes, the oldest 1 % (at least one), so the scan is
    /// paid once per many inserts.
    fn make_room(&mut self, now: UnixTime, incoming: usize) {
        self.retain(|start| now < start + WINDOW);
        while !self.windows.is_empty()
            && (self.windows.len() >= MAX_TRACKED || self.bytes + incoming > MAX_TRACKED_BYTES)
        {
            let mut starts: Vec<UnixTime> =
                self.windows.values().map(|(start, _)| *start).collect();
            let cut = (starts.len() / 100).max(1);
            let (_, threshold, _) = starts.select_nth_unstable(cut - 1);
            let threshold = *threshold;
            // Everything older than the cut's last start, then as many of
            // that start as the cut still needs: windows often share one.
            let older = starts.iter().filter(|start| **start < threshold).count();
            let mut same_left = cut - older;
            self.retain(|start| {
                if start < threshold {
                    return false;
                }
                if start == threshold && same_left > 0 {
                    same_left -= 1;
                    return false;
                }
                true
            });
        }
    }

    /// Keeps the windows whose start passes `keep`, counting the bytes
    /// of the rest out.
    fn retain(&mut self, mut keep: impl FnMut(UnixTime) -> bool) {
        let mut freed = 0;
        self.windows.retain(|key, (start, _)| {
            let kept = keep(*start);
            if !kept {
                freed += Self::entry_bytes(key);
            }
            kept
        });
        self.bytes -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    fn limits(per_user: u32, per_address: u32, per_account: u32) -> LoginThrottle {
        LoginThrottle::new(ThrottleLimits {
            per_user,
            per_address,
            per_account,
        })
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_username_is_throttled_after_its_limit_until_the_window_ends() {
        let throttle = limits(3, 0, 0);
        for _ in 0..3 {
            assert_eq!(throttle.check(Some("alice"), HOME, 1_000), Ok(()));
            throttle.record_failure(Some("alice"), HOME, 1_000);
        }
        assert_eq!(
            throttle.check(Some("alice"), HOME, 1_100),
            Err(Throttled {
                retry_after: WINDOW - 100
            })
        );
        assert_eq!(
            throttle.check(Some("bob"), HOME, 1_100),
            Ok(()),
            "per user, not global"
        );
        assert_eq!(
            throttle.check(Some("alice"), HOME, 1_000 + WINDOW),
            Ok(()),
            "the window ended"
        );
    }

    #[test]
    fn a_username_is_counted_per_address() {
        let throttle = limits(2, 0, 0);
        for _ in 0..2 {
            throttle.record_failure(Some("alice"), ip("192.0.2.1"), 10);
        }
        assert!(throttle.check(Some("alice"), ip("192.0.2.1"), 11).is_err());
        assert_eq!(
            throttle.check(Some("alice"), ip("192.0.2.2"), 11),
            Ok(()),
            "another address is not locked out"
        );
    }

    #[test]
    fn an_account_is_throttled_across_addresses() {
        let throttle = limits(10, 0, 5);
        for i in 0..5 {
            throttle.record_failure(Some("alice"), ip(&format!("192.0.2.{i}")), 10);
        }
        assert!(
            throttle
                .check(Some("alice"), ip("198.51.100.7"), 11)
                .is_err()
        );
        assert_eq!(throttle.check(Some("bob"), ip("198.51.100.7"), 11), Ok(()));
    }

    #[test]
    fn an_address_is_throttled_whatever_usernames_it_tries() {
        let throttle = limits(0, 5, 0);
        for i in 0..4 {
            throttle.record_failure(Some(&format!("user{i}")), HOME, 10);
        }
        throttle.record_failure(None, HOME, 10);
        assert!(throttle.check(Some("someone-else"), HOME, 11).is_err());
        assert!(throttle.check(None, HOME, 11).is_err());
        assert_eq!(throttle.check(Some("someone-else"), None, 11), Ok(()));
    }

    #[test]
    fn success_forgets_the_failures_from_its_address_only() {
        let throttle = limits(2, 0, 3);
        throttle.record_failure(Some("alice"), HOME, 10);
        throttle.record_success("alice", HOME);
        throttle.record_failure(Some("alice"), HOME, 10);
        assert_eq!(throttle.check(Some("alice"), HOME, 10), Ok(()));
        throttle.record_failure(Some("alice"), ip("192.0.2.9"), 10);
        assert!(
            throttle.check(Some("alice"), HOME, 10).is_err(),
            "three failures for the account in all"
        );
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let throttle = limits(0, 0, 0);
        for _ in 0..100 {
            throttle.record_failure(Some("alice"), HOME, 10);
        }
        assert_eq!(throttle.check(Some("alice"), HOME, 10), Ok(()));
    }

    #[test]
    fn a_full_table_forgets_only_a_few_of_its_oldest_windows() {
        let throttle = limits(10, 0, 0);
        for i in 0..MAX_TRACKED {
            throttle.record_failure(Some(&format!("u{i}")), HOME, 10);
        }
        throttle.record_failure(Some("late"), HOME, 11);
        let counters = throttle.counters.lock().unwrap();
        let kept = counters.users.windows.len();
        assert!(kept >= MAX_TRACKED - MAX_TRACKED / 100, "{kept} kept");
    }

    #[test]
    fn memory_stays_bounded_when_usernames_rotate() {
        let throttle = limits(10, 0, 10);
        for i in 0..(MAX_TRACKED + 1_000) {
            throttle.record_failure(Some(&format!("u{i}")), HOME, 10 + (i as i64 / 1_000));
        }
        let counters = throttle.counters.lock().unwrap();
        assert!(counters.users.windows.len() <= MAX_TRACKED);
        assert!(counters.accounts.windows.len() <= MAX_TRACKED);
    }

    #[test]
    fn memory_stays_bounded_in_bytes_when_usernames_are_long() {
        let throttle = limits(10, 0, 10);
        let long = "é".repeat(150);
        for i in 0..30_000 {
            throttle.record_failure(Some(&format!("{long}{i}")), HOME, 10);
        }
        let counters = throttle.counters.lock().unwrap();
        for (bytes, entries) in [
            (counters.users.bytes, counters.users.windows.len()),
            (counters.accounts.bytes, counters.accounts.windows.len()),
        ] {
            assert!(bytes <= MAX_TRACKED_BYTES, "{bytes} bytes");
            assert!(entries < 30_000, "{entries} entries: none forgotten");
            let per_entry = bytes / entries;
            assert!(
                bytes + (entries / 100 + 2) * per_entry > MAX_TRACKED_BYTES,
                "{entries} entries of {per_entry} bytes: more forgotten than needed"
            );
        }
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let throttle = limits(0, 2, 0);
        throttle.record_failure(Some("x"), ip("2001:db8::1"), 10);
        throttle.record_failure(Some("y"), ip("2001:db8::ffff:2"), 10);
        assert!(throttle.check(Some("z"), ip("2001:db8::1"), 11).is_err());
    }

    #[test]
    fn ipv4_clients_of_a_dual_stack_listener_count_per_address() {
        let throttle = limits(0, 2, 0);
        throttle.record_failure(Some("x"), ip("::ffff:192.0.2.1"), 10);
        throttle.record_failure(Some("y"), ip("::ffff:192.0.2.1"), 10);
        assert!(throttle.check(Some("z"), ip("192.0.2.1"), 11).is_err());
        assert_eq!(
            throttle.check(Some("z"), ip("::ffff:192.0.2.2"), 11),
            Ok(())
        );
    }
}
