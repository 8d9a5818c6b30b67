//! The rules of SPEC §5, checked against what a live run saw.

use std::collections::{BTreeMap, BTreeSet};

use jwtd::testing::KeyState;

use super::watch::{KeyRow, Observed, Sample, rank};
use super::{PREPUBLISH, RETIRE_AFTER, ROTATION, SLACK, WITHIN};

/// Longest stretch, in seconds, over which `differs` was seen continuously
/// true: from the end of the first sample that saw it to the start of the
/// last one, so polling gaps never count against the server.
fn longest_stretch(samples: &[Sample], differs: impl Fn(&Sample) -> bool) -> (f64, f64) {
    let mut longest = (0.0, 0.0);
    let mut since: Option<f64> = None;
    for sample in samples {
        if differs(sample) {
            let from = *since.get_or_insert(sample.after);
            if sample.before - from > longest.1 - longest.0 {
                longest = (from, sample.before);
            }
        } else {
            since = None;
        }
    }
    longest
}

/// The wall-clock window of the first sample where `holds`.
fn first_seen(samples: &[Sample], holds: impl Fn(&Sample) -> bool) -> Option<(f64, f64)> {
    samples.iter().find(|s| holds(s)).map(|s| {
        (
            (s.before * 100.0).round() / 100.0,
            (s.after * 100.0).round() / 100.0,
        )
    })
}

/// Checks every rule of SPEC §5 against what a live run saw; returns the
/// broken ones, with evidence.
fn rotation_violations(seen: &Observed, servers: usize) -> Vec<String> {
    let mut bad = seen.violations.clone();
    let samples = &seen.samples;
    let first = samples.first().expect("at least one sample");

    // Exactly one active and one next key at every instant.
    for sample in samples {
        let active = sample.in_state(KeyState::Active);
        let next = sample.in_state(KeyState::Next);
        if active.len() != 1 || next.len() != 1 {
            bad.push(format!(
                "at {:.2}: {} active and {} next keys: {:?}",
                sample.before,
                active.len(),
                next.len(),
                sample.keys
            ));
        }
    }

    // Each key goes next → active → retiring → retired, one step at a time;
    // a key first seen after the start is first seen as next.
    let mut history: BTreeMap<&str, Vec<(f64, KeyState)>> = BTreeMap::new();
    for sample in samples {
        for key in &sample.keys {
            let states = history.entry(key.kid.as_str()).or_default();
            if states.last().map(|(_, s)| *s) != Some(key.state) {
                states.push((sample.before, key.state));
            }
        }
    }
    for (kid, states) in &history {
        let initial = first.key(kid).is_some();
        if !initial && states[0].1 != KeyState::Next {
            bad.push(format!("key {kid} appeared as {:?}, not next", states[0].1));
        }
        for pair in states.windows(2) {
            let (from, to) = (rank(pair[0].1), rank(pair[1].1));
            if to != from + 1 || pair[1].1 == KeyState::Revoked {
                bad.push(format!(
                    "key {kid} went {:?} -> {:?} at {:.2} (history {states:?})",
                    pair[0].1, pair[1].1, pair[1].0
                ));
            }
        }
    }

    // The dates in the database tell the same story.
    let keys = &seen.final_keys;
    for key in keys {
        let kid = &key.kid;
        let initial = first.key(kid).is_some();
        if let Some(activated) = key.activated_at
            && !initial
            && activated - key.created_at < PREPUBLISH
        {
            bad.push(format!(
                "key {kid} signed {}s after it was published, before key_prepublish",
                activated - key.created_at
            ));
        }
        if matches!(key.state, KeyState::Retiring | KeyState::Retired) {
            match (key.activated_at, key.deactivated_at) {
                (Some(on), Some(off)) if off - on >= ROTATION => {}
                other => bad.push(format!(
                    "key {kid} stopped signing with (activated, deactivated) = {other:?}: {key:?}"
                )),
            }
        }
        if key.state == KeyState::Retired {
            match (key.deactivated_at, key.retired_at) {
                (Some(off), Some(gone)) if gone - off >= RETIRE_AFTER => {
                    if gone - off > RETIRE_AFTER + 1 {
                        bad.push(format!(
                            "key {kid} retired {}s after it stopped signing, due after {RETIRE_AFTER}s",
                            gone - off
                        ));
                    }
                }
                other => bad.push(format!(
                    "key {kid} retired with (deactivated, retired) = {other:?}: {key:?}"
                )),
            }
            if key.has_private {
                bad.push(format!("retired key {kid} still has its private key"));
            }
        }
        if key.state == KeyState::Revoked {
            bad.push(format!("key {kid} was revoked during a plain run"));
        }
    }

    // Handovers: each activation is the previous key's deactivation, no
    // earlier than due and within a second of it.
    let mut chain: Vec<&KeyRow> = keys.iter().filter(|k| k.activated_at.is_some()).collect();
    chain.sort_by_key(|k| k.activated_at);
    for pair in chain.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let on = next.activated_at.expect("activated");
        if prev.deactivated_at != Some(on) {
            bad.push(format!(
                "key {} activated at {on} but {} stopped signing at {:?}",
                next.kid, prev.kid, prev.deactivated_at
            ));
        }
        let due =
            (prev.activated_at.expect("activated") + ROTATION).max(next.created_at + PREPUBLISH);
        if on < due || on > due + 1 {
            bad.push(format!(
                "key {} activated at {on}, due at {due} (previous active since {:?}, created at {})",
                next.kid, prev.activated_at, next.created_at
            ));
        }
        for sample in samples {
            if sample.after < due as f64
                && sample.key(&next.kid).is_some_and(|k| rank(k.state) >= 1)
            {
                bad.push(format!(
                    "key {} seen active at wall {:.2}, before it was due at {due}",
                    next.kid, sample.after
                ));
            }
        }
    }
    // Overdue: a sample taken well after a step fell due that still shows
    // it undone.
    for sample in samples {
        let active = sample.in_state(KeyState::Active);
        let next = sample.in_state(KeyState::Next);
        if let ([active], [next]) = (&active[..], &next[..])
            && let Some(on) = active.activated_at
        {
            let due = (on + ROTATION).max(next.created_at + PREPUBLISH) as f64;
            if sample.before >= due + WITHIN + SLACK {
                bad.push(format!(
                    "at wall {:.2}, key {} still waits to sign though due at {due}",
                    sample.before, next.kid
                ));
            }
        }
        for retiring in sample.in_state(KeyState::Retiring) {
            let Some(off) = retiring.deactivated_at else {
                continue;
            };
            let due = (off + RETIRE_AFTER) as f64;
            if sample.before >= due + WITHIN + SLACK {
                bad.push(format!(
                    "at wall {:.2}, key {} still retiring though due to retire at {due}",
                    sample.before, retiring.kid
                ));
            }
        }
    }

    // Every server's JWKS follows the database within a second, and the
    // servers agree with each other.
    for server in 0..servers {
        let (from, to) = longest_stretch(samples, |s| s.jwks[server] != s.published());
        if to - from > WITHIN + SLACK {
            bad.push(format!(
                "server {server}'s JWKS differed from the published keys from wall {from:.2} to {to:.2}"
            ));
        }
    }
    for server in 1..servers {
        let (from, to) = longest_stretch(samples, |s| s.jwks[server] != s.jwks[0]);
        if to - from > WITHIN + SLACK {
            bad.push(format!(
                "servers 0 and {server} served different JWKS from wall {from:.2} to {to:.2}"
            ));
        }
    }
    // Every server publishes a key within a second of its created_at,
    // keeps it until its tokens have expired, then drops it within a second.
    for key in keys {
        let gone_at = key.deactivated_at.map(|off| (off + RETIRE_AFTER) as f64);
        for server in 0..servers {
            let mut listed_since: Option<f64> = None;
            let mut reported = BTreeSet::new();
            for sample in samples {
                let listed = sample.jwks[server].contains(&key.kid);
                let before_gone = gone_at.is_none_or(|at| sample.after < at);
                if listed {
                    listed_since.get_or_insert(sample.after);
                }
                let problem =
                    if listed && gone_at.is_some_and(|at| sample.before >= at + WITHIN + SLACK) {
                        Some("still published, though its tokens have all expired")
                    } else if !listed && listed_since.is_some() && before_gone {
                        Some("unpublished while its tokens may still be valid")
                    } else if !listed
                        && listed_since.is_none()
                        && before_gone
                        && sample.before >= key.created_at as f64 + WITHIN + SLACK
                    {
                        Some("not published yet, though created_at says it was")
                    } else {
                        None
                    };
                if let Some(problem) = problem
                    && reported.insert(problem)
                {
                    bad.push(format!(
                        "server {server}, key {} (created_at {}, deactivated_at {:?}, tokens expired by {gone_at:?}): \
                         {problem} at wall {:.2}..{:.2}; first seen in the database at wall {:?}",
                        key.kid,
                        key.created_at,
                        key.deactivated_at,
                        sample.before,
                        sample.after,
                        first_seen(samples, |s| s.key(&key.kid).is_some()),
                    ));
                }
            }
        }
    }

    // Every token was signed by the key active at its iat, published in
    // every JWKS before it, and that key stays published until the token's
    // exp (else the token fails early).
    for issued in &seen.tokens {
        let Some(key) = keys.iter().find(|k| k.kid == issued.kid) else {
            bad.push(format!("token signed by unknown key {}", issued.kid));
            continue;
        };
        let signing = key.activated_at.is_some_and(|on| on <= issued.iat)
            && key.deactivated_at.is_none_or(|off| issued.iat <= off);
        if !signing {
            bad.push(format!(
                "{} token issued by server {} at iat={} signed by {} which signed only from {:?} to {:?}",
                issued.kind, issued.by, issued.iat, key.kid, key.activated_at, key.deactivated_at
            ));
        }
        if let Some(off) = key.deactivated_at
            && issued.exp > off + RETIRE_AFTER
        {
            bad.push(format!(
                "{} token issued by server {} (iat={}, exp={}) outlives its key {}, which the \
                 database says stopped signing at {off} (a change first seen at wall {:?}) and \
                 which is unpublished at {}",
                issued.kind,
                issued.by,
                issued.iat,
                issued.exp,
                key.kid,
                first_seen(samples, |s| s
                    .key(&key.kid)
                    .is_some_and(|k| k.deactivated_at.is_some())),
                off + RETIRE_AFTER
            ));
        }
    }
    let mut first_token: BTreeMap<&str, i64> = BTreeMap::new();
    for issued in &seen.tokens {
        let at = first_token.entry(issued.kid.as_str()).or_insert(issued.iat);
        *at = (*at).min(issued.iat);
    }
    for (kid, iat) in first_token {
        if first.key(kid).is_some() {
            continue;
        }
        for server in 0..servers {
            let shown = samples
                .iter()
                .find(|s| s.jwks[server].contains(kid))
                .map(|s| s.after);
            if shown.is_none_or(|at| at >= (iat + 1) as f64) {
                bad.push(format!(
                    "key {kid} signed a token at {iat} but server {server} published it only at {shown:?}"
                ));
            }
        }
    }
    bad
}

/// How many keys took over, and how many were retired, during the run.
fn rotations_seen(seen: &Observed) -> (usize, usize) {
    let first = seen.samples.first().expect("a sample");
    let last = seen.samples.last().expect("a sample");
    let activated = last
        .keys
        .iter()
        .filter(|k| first.key(&k.kid).is_none_or(|f| f.state == KeyState::Next))
        .filter(|k| k.activated_at.is_some())
        .count();
    let retired = last
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Retired)
        .count();
    (activated, retired)
}

/// Panics unless the run broke no rule and saw enough happen; `logs` (the
/// servers' key events) go into the message as evidence.
#[track_caller]
pub(super) fn assert_healthy_run(seen: &Observed, servers: usize, logs: &[String]) {
    let (activated, retired) = rotations_seen(seen);
    let kids: BTreeSet<&str> = seen.tokens.iter().map(|t| t.kid.as_str()).collect();
    let bad = rotation_violations(seen, servers);
    assert!(
        bad.is_empty(),
        "{} rule(s) broken over {} samples and {} tokens:\n{}\n\nkeys at the end: {:#?}\n\nkey events:\n{}",
        bad.len(),
        seen.samples.len(),
        seen.tokens.len(),
        bad.join("\n"),
        seen.final_keys,
        logs.join("\n")
    );
    assert!(
        activated >= 2,
        "saw {activated} rotations, wanted 2 or more"
    );
    assert!(retired >= 1, "saw {retired} retirements, wanted 1 or more");
    assert!(
        kids.len() >= 3,
        "tokens were signed by {} keys, wanted 3 or more: {kids:?}",
        kids.len()
    );
    assert!(seen.verified > 50, "only {} verifications", seen.verified);
}
