//! Deployments with `algorithm = ES384`, `PS256` or `EdDSA`, as a user and a
//! partner see them: logging in, refreshing, verifying at the issuer and
//! with jwt-simple through the JWKS, and the JWKS entry itself. A token
//! whose header names any other algorithm than its key's is invalid, even
//! when it is genuinely signed under that other algorithm.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::testing::{SigningKey, generate_key};
use jwtd::verifier::Algorithm;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Fixture, assert_accepted, assert_invalid_everywhere, fixture_with};
use crate::helpers::{expect_json, header_of, kid_of};
use crate::interop::verify_with_jwt_simple;

const NEW_ALGORITHMS: [Algorithm; 3] = [Algorithm::Es384, Algorithm::Ps256, Algorithm::EdDsa];

/// The members of the published JWK, and the lengths of its decoded key
/// members and of a signature.
fn expected_shape(alg: Algorithm) -> (Vec<&'static str>, Vec<(&'static str, usize)>, usize) {
    match alg {
        Algorithm::Es384 => (
            vec!["alg", "crv", "kid", "kty", "use", "x", "y"],
            vec![("x", 48), ("y", 48)],
            96,
        ),
        Algorithm::Ps256 => (
            vec!["alg", "e", "kid", "kty", "n", "use"],
            vec![("n", 256), ("e", 3)],
            256,
        ),
        Algorithm::EdDsa => (
            vec!["alg", "crv", "kid", "kty", "use", "x"],
            vec![("x", 32)],
            64,
        ),
        other => panic!("not a new algorithm: {other}"),
    }
}

fn decoded(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

#[tokio::test]
async fn each_new_algorithm_logs_in_refreshes_and_verifies_at_the_issuer_and_with_jwt_simple() {
    for alg in NEW_ALGORITHMS {
        let fx = fixture_with(|c| c.algorithm = alg).await;
        let pair = fx.app.login_ok("alice", "pw").await;
        for token in [&pair.access, &pair.refresh] {
            assert_eq!(
                header_of(token),
                json!({"alg": alg.as_str(), "typ": "JWT", "kid": fx.key.kid})
            );
        }
        assert_accepted(&fx, &pair.access).await;
        let verified = expect_json(fx.app.verify(&pair.refresh).await, StatusCode::OK).await;
        assert_eq!(verified, json!({}), "{alg}: the refresh token verifies");

        let refreshed = expect_json(fx.app.refresh(&pair.refresh).await, StatusCode::OK).await;
        let access = refreshed["access"].as_str().expect("a new access token");
        let refresh = refreshed["refresh"]
            .as_str()
            .expect("a rotated refresh token");
        assert_eq!(header_of(access)["alg"], alg.as_str());
        assert_accepted(&fx, access).await;

        let jwks = fx.app.jwks().await;
        for token in [&pair.access, &pair.refresh, access, refresh] {
            let claims = verify_with_jwt_simple(&jwks, token, None)
                .unwrap_or_else(|err| panic!("{alg}: jwt-simple refuses {token}: {err}"));
            assert_eq!(claims.custom.user_id, fx.user_id);
        }
        assert_jwks_entry(&fx, &jwks, alg, access);
    }
}

/// Every published key of the deployment has the members of `alg`'s key
/// type and no other, the active one signed `token`, and the signature has
/// the algorithm's length.
#[track_caller]
fn assert_jwks_entry(fx: &Fixture, jwks: &Value, alg: Algorithm, token: &str) {
    let (members, lengths, signature_length) = expected_shape(alg);
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{alg}: active and next are published");
    for key in keys {
        let mut names: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, members, "{alg}: {key}");
        assert_eq!(key["alg"], alg.as_str());
        assert_eq!(key["use"], "sig");
        for (member, length) in &lengths {
            assert_eq!(
                decoded(key[*member].as_str().unwrap()).len(),
                *length,
                "{alg} {member}"
            );
        }
    }
    assert_eq!(keys[0]["kid"], fx.key.kid, "the active key comes first");
    assert_eq!(kid_of(token), fx.key.kid);
    let signature = token.rsplit('.').next().unwrap();
    assert_eq!(
        decoded(signature).len(),
        signature_length,
        "{alg} signature"
    );
}

#[tokio::test]
async fn a_token_naming_another_algorithm_than_its_key_is_invalid_for_every_pair() {
    for alg in NEW_ALGORITHMS {
        let fx = fixture_with(|c| c.algorithm = alg).await;
        assert_accepted(&fx, &fx.key.sign(&fx.access_claims())).await;
        for other in Algorithm::ALL.into_iter().filter(|other| *other != alg) {
            // A genuine signature under `other`, by a key of its own, with the
            // deployment's kid: only the algorithm is wrong.
            let stranger = generate_key(other, 2048).expect("a key");
            let forger =
                SigningKey::from_pkcs8(&fx.key.kid, other, &stranger.pkcs8).expect("a signing key");
            let forged = forger
                .sign(fx.access_claims().to_string().as_bytes())
                .expect("signs");
            assert_eq!(header_of(&forged)["alg"], other.as_str());
            assert_invalid_everywhere(&fx, &forged).await;
        }
    }
}

#[tokio::test]
async fn the_rsa_key_of_a_ps256_deployment_does_not_verify_pkcs1_signatures() {
    let fx = fixture_with(|c| c.algorithm = Algorithm::Ps256).await;
    let pkcs1 = fx.key.sign_as(Algorithm::Rs256, &fx.access_claims());
    // The header honestly says RS256: the key is not for RS256.
    assert_eq!(header_of(&pkcs1)["alg"], "RS256");
    assert_invalid_everywhere(&fx, &pkcs1).await;
    // The header says PS256: a PKCS#1 v1.5 signature is not a PSS one.
    let (_, rest) = pkcs1.split_once('.').unwrap();
    let header = URL_SAFE_NO_PAD.encode(fx.key.header().to_string());
    assert_invalid_everywhere(&fx, &format!("{header}.{rest}")).await;
}
