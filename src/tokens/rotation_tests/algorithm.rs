//! Changing the algorithm: the waiting key is replaced at once and signs
//! at the scheduled rotation; tokens of the old algorithm verify until
//! they expire.

use crate::clock::UnixTime;
use crate::config::Config;
use crate::keys::schedule::Step;
use crate::keys::tests::{DAY, HOUR, START, key};
use crate::store::KeyState;
use crate::tokens::{TokenError, TokenType};
use crate::verifier::Algorithm;

use super::deployment::{Deployment, Issued, es256};
use super::{published_algorithms, through_jwks};

#[tokio::test]
async fn a_new_algorithm_replaces_the_waiting_key_at_once_and_signs_at_the_rotation() {
    let mut deployment = Deployment::new(&Config::default()).await;
    deployment.tick(START).await;
    let (rsa_active, rsa_waiting) = deployment.active_and_next();

    deployment.switch_to(&es256());
    let steps = deployment.tick(START + HOUR).await;

    assert_eq!(
        steps,
        [
            Step::DiscardNext(rsa_waiting.clone()),
            Step::CreateNext(Algorithm::Es256)
        ]
    );
    let discarded = key(&deployment.keys, &rsa_waiting);
    assert_eq!(discarded.state, KeyState::Retired);
    assert!(discarded.sealed_private.is_none());
    let (active, ec_waiting) = deployment.active_and_next();
    assert_eq!(active, rsa_active);
    assert_eq!(key(&deployment.keys, &ec_waiting).alg, Algorithm::Es256);
    assert_eq!(
        published_algorithms(deployment.set()),
        [
            (rsa_active.clone(), "RS256".to_owned()),
            (ec_waiting.clone(), "ES256".to_owned())
        ]
        .into_iter()
        .collect(),
        "both algorithms are published meanwhile"
    );

    let (old, took_over) = step_until_the_signer_changes(&mut deployment, START + 2 * HOUR).await;
    assert_eq!(
        took_over,
        START + 30 * DAY,
        "at the scheduled rotation, not before"
    );
    assert_eq!(deployment.active_and_next().0, ec_waiting);
    assert_still_verifies_until_it_expires(&mut deployment, &old, took_over).await;
}

#[tokio::test]
async fn an_operator_moves_through_every_algorithm_one_rotation_at_a_time() {
    let mut deployment = Deployment::new(&Config::default()).await;
    deployment.tick(START).await;
    let mut now = START + HOUR;
    for alg in [
        Algorithm::Es384,
        Algorithm::Ps256,
        Algorithm::EdDsa,
        Algorithm::Es256,
        Algorithm::Rs256,
    ] {
        let (active, _) = deployment.active_and_next();
        let before = key(&deployment.keys, &active).alg;
        deployment.switch_to(&Config {
            algorithm: alg,
            ..Config::default()
        });
        deployment.tick(now).await;
        let (still_active, waiting) = deployment.active_and_next();
        assert_eq!(
            still_active, active,
            "{before} → {alg}: the old key signs on"
        );
        assert_eq!(key(&deployment.keys, &waiting).alg, alg);
        assert_eq!(
            published_algorithms(deployment.set()).get(&waiting),
            Some(&alg.as_str().to_owned()),
            "{before} → {alg}: the new key is published before it signs"
        );
        assert_eq!(
            published_algorithms(deployment.set()).get(&active),
            Some(&before.as_str().to_owned())
        );

        let (old, took_over) = step_until_the_signer_changes(&mut deployment, now + HOUR).await;
        assert_eq!(deployment.active_and_next().0, waiting);
        let new = deployment.issue(TokenType::Access, took_over);
        assert_eq!(new.kid, waiting, "{alg} signs after the handover");
        assert!(deployment.verify(&new.token, took_over).is_ok());
        assert!(through_jwks(deployment.set(), &new.token, took_over).is_ok());
        assert_still_verifies_until_it_expires(&mut deployment, &old, took_over).await;
        now = old.exp + HOUR;
    }
}

#[tokio::test]
async fn a_new_algorithm_just_before_the_rotation_waits_for_the_prepublish_time() {
    let mut deployment = Deployment::new(&Config::default()).await;
    deployment.tick(START).await;
    let switched = START + 30 * DAY - 6 * HOUR;
    deployment.switch_to(&es256());
    deployment.tick(switched).await;
    let (_, ec_waiting) = deployment.active_and_next();

    let (old, took_over) = step_until_the_signer_changes(&mut deployment, switched + HOUR).await;

    assert_eq!(
        took_over,
        switched + DAY,
        "the ES256 key signs only once published for key_prepublish"
    );
    assert_eq!(deployment.active_and_next().0, ec_waiting);
    assert_still_verifies_until_it_expires(&mut deployment, &old, took_over).await;
}

/// Steps the clock an hour at a time from `from` until another key signs;
/// returns the last refresh token the old key signed and when the new key
/// took over.
async fn step_until_the_signer_changes(
    deployment: &mut Deployment,
    from: UnixTime,
) -> (Issued, UnixTime) {
    let signer = deployment.active_and_next().0;
    let mut last = deployment.issue(TokenType::Refresh, from - HOUR);
    let mut now = from;
    while now < from + 60 * DAY {
        deployment.tick(now).await;
        if deployment.active_and_next().0 != signer {
            return (last, now);
        }
        last = deployment.issue(TokenType::Refresh, now);
        assert_eq!(last.kid, signer);
        now += HOUR;
    }
    panic!("no rotation within 60 days of {from}");
}

/// `token` (a refresh token) verifies, through the server's key set and
/// through the JWKS, every hour until its `exp`, then is expired.
async fn assert_still_verifies_until_it_expires(
    deployment: &mut Deployment,
    token: &Issued,
    from: UnixTime,
) {
    let mut now = from;
    while now < token.exp {
        deployment.tick(now).await;
        assert!(
            deployment.verify(&token.token, now).is_ok(),
            "{} failed at {}",
            token.kid,
            now - from
        );
        assert!(
            through_jwks(deployment.set(), &token.token, now).is_ok(),
            "{} unknown to the JWKS at {}",
            token.kid,
            now - from
        );
        now = (now + HOUR).min(token.exp - 1).max(now + 1);
    }
    deployment.tick(token.exp).await;
    assert_eq!(
        deployment.verify(&token.token, token.exp).err(),
        Some(TokenError::Expired)
    );
}
