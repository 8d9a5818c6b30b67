//! Key rotation (SPEC §5) over HTTP, with a running server and its manual
//! clock: the JWKS cache lifetime around a rotation, tokens across a
//! rotation, and an emergency revocation. The schedule itself, lived
//! through against a real store, is unit-tested inside the crate
//! (`keys::tests`, `tokens::rotation_tests`).

use std::collections::BTreeSet;
use std::time::Duration;

use jwtd::clock::Clock;
use jwtd::testing::{Deployment, KeyState, StoredKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_status, expect_json, kid_of, poll_until, spawn_app};

const DAY: i64 = 86_400;
/// Seconds a retiring key stays published beyond its tokens' lifetime and
/// the leeway: the schedule's propagation margin.
const PROPAGATION_MARGIN: i64 = 2;
/// How long a running server may take to notice a change (SPEC §5 asks
/// for one second; the schedule ticks every 250 ms).
const WITHIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn the_jwks_max_age_shrinks_as_a_scheduled_change_approaches() {
    let app = spawn_app().await;
    assert_eq!(
        max_age(&app).await,
        300,
        "far from any change: jwks_max_age"
    );

    app.advance(seconds(30 * DAY - 100));
    poll_until(
        WITHIN,
        "max-age ≤ 100 s, 100 s before the rotation",
        async || {
            let age = max_age(&app).await;
            (age <= 100).then_some(age)
        },
    )
    .await;

    app.advance(seconds(200));
    poll_until(WITHIN, "the rotation to publish a third key", async || {
        (published_kids(&app).await.len() == 3).then_some(())
    })
    .await;
    assert_eq!(
        max_age(&app).await,
        300,
        "the next change (a retirement) is a day away"
    );

    let keys = stored_keys(&app).await;
    let retiring = key(&keys, &kid_in(&keys, KeyState::Retiring));
    let retirement = retiring.deactivated_at.unwrap() + DAY + PROPAGATION_MARGIN;
    app.advance(seconds(retirement - 50 - app.clock.now()));
    poll_until(
        WITHIN,
        "max-age ≤ 50 s, 50 s before the retirement",
        async || {
            let age = max_age(&app).await;
            (age <= 50).then_some(age)
        },
    )
    .await;
}

#[tokio::test]
async fn tokens_issued_before_a_rotation_still_verify_after_it() {
    let app = spawn_app().await;
    app.add_user("alice", "correct horse").await;
    let before = stored_keys(&app).await;
    let (first, waiting) = (
        kid_in(&before, KeyState::Active),
        kid_in(&before, KeyState::Next),
    );

    app.advance(seconds(30 * DAY - 100));
    let old = app.login_ok("alice", "correct horse").await;
    assert_eq!(kid_of(&old.access), first);

    app.advance(seconds(200));
    let published = poll_until(WITHIN, "the JWKS to list three keys", async || {
        let kids = published_kids(&app).await;
        (kids.len() == 3).then_some(kids)
    })
    .await
    .0;
    let after = stored_keys(&app).await;
    assert_eq!(kid_in(&after, KeyState::Retiring), first);
    assert_eq!(kid_in(&after, KeyState::Active), waiting);
    let newest = kid_in(&after, KeyState::Next);
    assert_eq!(published, set_of([&first, &waiting, &newest]));

    for token in [&old.access, &old.refresh] {
        let body = expect_json(app.verify(token).await, StatusCode::OK).await;
        assert_eq!(body, json!({}));
    }
    let fresh = app.login_ok("alice", "correct horse").await;
    assert_eq!(kid_of(&fresh.access), waiting, "new logins use the new key");
    assert_eq!(kid_of(&fresh.refresh), waiting);
    let refreshed = expect_json(app.refresh(&old.refresh).await, StatusCode::OK).await;
    assert_eq!(
        kid_of(refreshed["access"].as_str().unwrap()),
        waiting,
        "an old refresh token buys tokens signed by the new key"
    );
}

#[tokio::test]
async fn revoking_the_active_key_fails_its_tokens_and_promotes_the_next_key() {
    let app = spawn_app().await;
    app.add_user("alice", "correct horse").await;
    let pair = app.login_ok("alice", "correct horse").await;
    let before = stored_keys(&app).await;
    let (compromised, waiting) = (
        kid_in(&before, KeyState::Active),
        kid_in(&before, KeyState::Next),
    );
    assert_eq!(kid_of(&pair.access), compromised);
    // Verified once before the revocation, so the server has seen (and
    // may remember) it: the revocation must still win.
    expect_json(app.verify(&pair.access).await, StatusCode::OK).await;
    expect_json(app.me(&pair.access).await, StatusCode::OK).await;

    app.jwtd(&["keys", "revoke", &compromised], None).await.ok();

    for token in [&pair.access, &pair.refresh] {
        let body = poll_until(
            WITHIN,
            "its tokens to be refused at /api/token/verify/",
            async || {
                let response = app.verify(token).await;
                (response.status() == StatusCode::UNAUTHORIZED)
                    .then_some(response.json::<Value>().await.unwrap())
            },
        )
        .await
        .0;
        assert_eq!(
            body,
            json!({"detail": "Token is invalid", "code": "token_not_valid"})
        );
    }
    let refused = expect_json(app.refresh(&pair.refresh).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(refused["detail"], "Token is invalid");
    let refused = expect_json(app.me(&pair.access).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(refused["messages"][0]["message"], "Token is invalid");
    let published = poll_until(
        WITHIN,
        "a new next key, and the revoked key unpublished",
        async || {
            let kids = published_kids(&app).await;
            (kids.len() == 2 && !kids.contains(&compromised)).then_some(kids)
        },
    )
    .await
    .0;
    assert!(published.contains(&waiting), "{published:?}");

    let fresh = app.login_ok("alice", "correct horse").await;
    assert_eq!(kid_of(&fresh.access), waiting, "the next key signs at once");
    let after = stored_keys(&app).await;
    let revoked = key(&after, &compromised);
    assert_eq!(revoked.state, KeyState::Revoked);
    assert!(
        revoked.sealed_private.is_none(),
        "its private key is erased"
    );
    assert_eq!(kid_in(&after, KeyState::Active), waiting);
    let newest = kid_in(&after, KeyState::Next);
    assert_eq!(published, set_of([&waiting, &newest]));
}

fn seconds(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).expect("a forward step"))
}

/// Every key in `app`'s database, oldest first.
async fn stored_keys(app: &TestApp) -> Vec<StoredKey> {
    let deployment = Deployment::open(&app.config).await.unwrap();
    let keys = deployment.keys().await.unwrap();
    deployment.close().await;
    keys
}

/// The kid of the one key in `state`.
#[track_caller]
fn kid_in(keys: &[StoredKey], state: KeyState) -> String {
    let found: Vec<&StoredKey> = keys.iter().filter(|k| k.state == state).collect();
    assert_eq!(found.len(), 1, "one {state:?} key among {keys:?}");
    found[0].kid.clone()
}

#[track_caller]
fn key<'a>(keys: &'a [StoredKey], kid: &str) -> &'a StoredKey {
    keys.iter()
        .find(|k| k.kid == kid)
        .unwrap_or_else(|| panic!("no key {kid} among {keys:?}"))
}

fn set_of<'a>(kids: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    kids.into_iter().cloned().collect()
}

async fn published_kids(app: &TestApp) -> BTreeSet<String> {
    app.jwks().await["keys"]
        .as_array()
        .expect("a keys array")
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The JWKS `Cache-Control: max-age`, in seconds.
async fn max_age(app: &TestApp) -> u64 {
    let response = app.get("/.well-known/jwks.json").await;
    assert_status(&response, StatusCode::OK);
    let cache = response.headers()["cache-control"].to_str().unwrap();
    cache
        .strip_prefix("public, max-age=")
        .and_then(|age| age.parse().ok())
        .unwrap_or_else(|| panic!("unexpected Cache-Control: {cache}"))
}
