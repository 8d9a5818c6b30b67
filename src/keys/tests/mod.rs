//! White-box tests of key rotation. `schedule` drives the pure
//! [`plan`](super::schedule::plan) under random policies and clocks. The
//! helpers below are shared with the tests that carry the schedule out
//! against a real store while issuing tokens (`tokens::rotation_tests`:
//! they need both modules, and tokens may depend on keys, not the reverse).

mod algorithms;
mod rewrap;
mod ring;
mod schedule;

use crate::clock::UnixTime;
use crate::store::{KeyState, StoredKey};

pub(crate) const MINUTE: i64 = 60;
pub(crate) const HOUR: i64 = 3_600;
pub(crate) const DAY: i64 = 86_400;
/// 2026-01-01T00:00:00Z: where the stories begin.
pub(crate) const START: UnixTime = 1_767_225_600;

/// How many of `keys` are in `state`.
pub(crate) fn count_in(keys: &[StoredKey], state: KeyState) -> usize {
    keys.iter().filter(|k| k.state == state).count()
}

/// The kid of the one key in `state`.
#[track_caller]
pub(crate) fn kid_in(keys: &[StoredKey], state: KeyState) -> String {
    let found: Vec<&StoredKey> = keys.iter().filter(|k| k.state == state).collect();
    assert_eq!(found.len(), 1, "one {state:?} key among {keys:?}");
    found[0].kid.clone()
}

/// The key called `kid`.
#[track_caller]
pub(crate) fn key<'a>(keys: &'a [StoredKey], kid: &str) -> &'a StoredKey {
    keys.iter()
        .find(|k| k.kid == kid)
        .unwrap_or_else(|| panic!("no key {kid} among {keys:?}"))
}
