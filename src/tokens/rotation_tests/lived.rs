//! The schedule lived through, step by step, against a real SQLite store.

use crate::config::Config;
use crate::keys::tests::{DAY, START};
use crate::tokens::TokenType;
use crate::verifier::Algorithm;

use super::deployment::Deployment;
use super::witness::{Jitter, Witness};

#[tokio::test]
async fn four_hundred_days_with_the_defaults() {
    let lived = live_through(Algorithm::Es256, 400 * DAY).await;
    assert_eq!(
        lived.rotations(),
        13,
        "30-day keys over 400 days rotate 13 times; activations: {:?}",
        lived.activations
    );
}

#[tokio::test]
async fn seventy_days_with_rsa_keys() {
    let lived = live_through(Algorithm::Rs256, 70 * DAY).await;
    assert_eq!(lived.rotations(), 2, "activations: {:?}", lived.activations);
}

/// Runs a deployment with the default policy (30d/1d/5m/1d) from `START`
/// for `span`, issuing an access, a refresh and a sliding token at every
/// step and checking every promise of SPEC §5 at every step.
async fn live_through(algorithm: Algorithm, span: i64) -> Witness {
    let config = Config {
        algorithm,
        ..Config::default()
    };
    let mut deployment = Deployment::new(&config).await;
    let mut witness = Witness::new(&config);
    let mut clock = Jitter::new(0x5eed_2026);
    let mut now = START;
    while now <= START + span {
        deployment.tick(now).await;
        witness.check(now, &deployment.keys, deployment.set());
        for token_type in [TokenType::Access, TokenType::Refresh, TokenType::Sliding] {
            let issued = deployment.issue(token_type, now);
            witness.saw_issued(issued, now, deployment.set());
        }
        now += clock.step();
    }
    witness
}
