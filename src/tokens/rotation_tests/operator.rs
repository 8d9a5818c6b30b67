//! Revocation and rotations an operator asks for, against the store.

use crate::keys::KeyError;
use crate::keys::tests::{DAY, HOUR, MINUTE, START, count_in, key, kid_in};
use crate::store::KeyState;
use crate::tokens::TokenType;

use super::deployment::{Deployment, es256};
use super::{jwks_kids, set_of};

#[tokio::test]
async fn revoking_the_active_key_leaves_a_next_key_waiting_at_once() {
    let mut deployment = Deployment::new(&es256()).await;
    deployment.tick(START).await;
    let (active, waiting) = deployment.active_and_next();

    let steps = deployment.revoke(&active, START + HOUR).await.unwrap();
    deployment.reload().await;

    assert_eq!(key(&deployment.keys, &active).state, KeyState::Revoked);
    assert_eq!(kid_in(&deployment.keys, KeyState::Active), waiting);
    assert_eq!(
        count_in(&deployment.keys, KeyState::Next),
        1,
        "a next key must exist at all times, made in the revocation's own \
         transaction (lifecycle::revoke's contract); steps applied: {steps:?}"
    );
}

#[tokio::test]
async fn revoking_the_waiting_key_replaces_it_at_once() {
    let mut deployment = Deployment::new(&es256()).await;
    deployment.tick(START).await;
    let (active, waiting) = deployment.active_and_next();

    deployment.revoke(&waiting, START + HOUR).await.unwrap();
    deployment.reload().await;

    let (still_active, replacement) = deployment.active_and_next();
    assert_eq!(still_active, active);
    assert_ne!(replacement, waiting);
    assert_eq!(key(&deployment.keys, &replacement).created_at, START + HOUR);
    let revoked = key(&deployment.keys, &waiting);
    assert_eq!(revoked.state, KeyState::Revoked);
    assert!(revoked.sealed_private.is_none());
    assert_eq!(jwks_kids(deployment.set()), set_of([&active, &replacement]));
}

#[tokio::test]
async fn revoking_an_unknown_kid_is_an_error_and_changes_nothing() {
    let mut deployment = Deployment::new(&es256()).await;
    deployment.tick(START).await;
    let before = deployment.snapshot().await;

    let outcome = deployment.revoke("no-such-kid", START + HOUR).await;

    assert!(
        matches!(&outcome, Err(KeyError::UnknownKey(kid)) if kid == "no-such-kid"),
        "{outcome:?}"
    );
    assert_eq!(deployment.snapshot().await, before);
}

#[tokio::test]
async fn revoking_a_revoked_key_again_is_an_error_and_changes_nothing() {
    let mut deployment = Deployment::new(&es256()).await;
    deployment.tick(START).await;
    let (active, _) = deployment.active_and_next();
    deployment.revoke(&active, START + HOUR).await.unwrap();
    deployment.tick(START + HOUR).await;
    let before = deployment.snapshot().await;

    let outcome = deployment.revoke(&active, START + 2 * HOUR).await;

    assert!(
        matches!(&outcome, Err(KeyError::UnknownKey(_))),
        "{outcome:?}"
    );
    assert_eq!(deployment.snapshot().await, before);
}

#[tokio::test]
async fn asking_for_a_rotation_before_the_prepublish_time_only_schedules_it() {
    let mut deployment = Deployment::new(&es256()).await;
    deployment.tick(START).await;
    let (active, waiting) = deployment.active_and_next();
    let before = deployment.key_states().await;

    let at = deployment.rotate(false, START + HOUR).await;

    assert_eq!(
        at,
        START + DAY,
        "the next key was published at START: it may sign a day later"
    );
    assert_eq!(deployment.key_states().await, before, "nothing moved yet");
    deployment.tick(START + DAY - 1).await;
    assert_eq!(deployment.active_and_next().0, active);
    deployment.tick(START + DAY).await;
    assert_eq!(
        deployment.active_and_next().0,
        waiting,
        "it took over on time"
    );
}

#[tokio::test]
async fn asking_for_a_rotation_now_makes_the_next_key_sign_at_once() {
    let mut deployment = Deployment::new(&es256()).await;
    deployment.tick(START).await;
    let (active, waiting) = deployment.active_and_next();
    let old = deployment.issue(TokenType::Refresh, START + MINUTE);

    let at = deployment.rotate(true, START + HOUR).await;
    deployment.reload().await;

    assert_eq!(at, START + HOUR);
    let (now_active, newest) = deployment.active_and_next();
    assert_eq!(now_active, waiting);
    assert!(
        newest != active && newest != waiting,
        "a new next key was made"
    );
    assert_eq!(key(&deployment.keys, &active).state, KeyState::Retiring);
    assert_eq!(
        deployment.issue(TokenType::Access, START + HOUR).kid,
        waiting
    );
    assert!(
        deployment.verify(&old.token, START + HOUR).is_ok(),
        "tokens of the replaced key still verify"
    );
}
