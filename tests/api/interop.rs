//! A partner service's view: tokens verified with jwt-simple (a JOSE crate
//! independent of the jsonwebtoken/aws-lc-rs code that signs them), using
//! nothing but the JWKS fetched over HTTP. Also: keys, JWKS and users
//! survive a restart on the same database.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, ES256PublicKey, ES384PublicKey,
    Ed25519PublicKey, EdDSAPublicKeyLike, JWTClaims, PS256PublicKey, RS256PublicKey,
    RSAPublicKeyLike, VerificationOptions,
};
use jwtd::verifier::Algorithm;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{
    Pair, TestApp, assert_status, claims_of, expect_json, header_of, kid_of, spawn_app_with,
};

#[tokio::test]
async fn es384_access_and_refresh_tokens_verify_with_jwt_simple() {
    assert_pair_verifies_with_jwt_simple(Algorithm::Es384, |_| {}).await;
}

#[tokio::test]
async fn ps256_access_and_refresh_tokens_verify_with_jwt_simple() {
    assert_pair_verifies_with_jwt_simple(Algorithm::Ps256, |_| {}).await;
}

#[tokio::test]
async fn ps256_with_3072_bit_keys_verifies_with_jwt_simple() {
    assert_pair_verifies_with_jwt_simple(Algorithm::Ps256, |c| c.rsa_bits = 3072).await;
}

#[tokio::test]
async fn eddsa_access_and_refresh_tokens_verify_with_jwt_simple() {
    assert_pair_verifies_with_jwt_simple(Algorithm::EdDsa, |_| {}).await;
}

#[tokio::test]
async fn tampered_tokens_of_every_new_algorithm_fail_with_jwt_simple() {
    for algorithm in [Algorithm::Es384, Algorithm::Ps256, Algorithm::EdDsa] {
        assert_tampered_token_fails_with_jwt_simple(algorithm).await;
    }
}

#[tokio::test]
async fn kids_of_every_new_algorithm_are_the_thumbprints_jwt_simple_computes() {
    for algorithm in [Algorithm::Es384, Algorithm::Ps256, Algorithm::EdDsa] {
        assert_kids_are_thumbprints(algorithm).await;
    }
}

#[tokio::test]
async fn rs256_access_and_refresh_tokens_verify_with_jwt_simple() {
    assert_pair_verifies_with_jwt_simple(Algorithm::Rs256, |_| {}).await;
}

#[tokio::test]
async fn es256_access_and_refresh_tokens_verify_with_jwt_simple() {
    assert_pair_verifies_with_jwt_simple(Algorithm::Es256, |_| {}).await;
}

#[tokio::test]
async fn rs256_4096_bit_tokens_verify_with_jwt_simple() {
    assert_pair_verifies_with_jwt_simple(Algorithm::Rs256, |c| c.rsa_bits = 4096).await;
}

#[tokio::test]
async fn refreshed_tokens_verify_with_jwt_simple() {
    let (app, user_id) = app_with_user(|c| c.algorithm = Algorithm::Es256).await;
    let pair = app.login_ok("alice", "pw").await;
    let refreshed = expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
    let jwks = fetch_jwks(&app).await;
    for (token, token_type) in [
        (&refreshed["access"], "access"),
        (&refreshed["refresh"], "refresh"),
    ] {
        let claims = verify_with_jwt_simple(&jwks, token.as_str().unwrap(), None)
            .expect("jwt-simple accepts the refreshed token");
        assert_eq!(claims.custom.token_type, token_type);
        assert_eq!(claims.custom.user_id, user_id);
    }
}

#[tokio::test]
async fn issuer_and_audience_verify_with_jwt_simple() {
    let (app, user_id) = app_with_user(|c| {
        c.issuer = Some("https://auth.example.com".into());
        c.audience = Some("https://api.example.com".into());
    })
    .await;
    let pair = app.login_ok("alice", "pw").await;
    let jwks = fetch_jwks(&app).await;
    let options = |issuer: &str, audience: &str| VerificationOptions {
        allowed_issuers: Some(HashSet::from([issuer.to_owned()])),
        allowed_audiences: Some(HashSet::from([audience.to_owned()])),
        ..strict_options()
    };
    let claims = verify_with_jwt_simple(
        &jwks,
        &pair.access,
        Some(options(
            "https://auth.example.com",
            "https://api.example.com",
        )),
    )
    .expect("jwt-simple accepts the token for its issuer and audience");
    assert_eq!(claims.custom.user_id, user_id);
    assert_eq!(claims.issuer.as_deref(), Some("https://auth.example.com"));
    // And jwt-simple's own checks see the claims the way jwtd meant them.
    assert!(
        verify_with_jwt_simple(
            &jwks,
            &pair.access,
            Some(options(
                "https://evil.example.com",
                "https://api.example.com"
            )),
        )
        .is_err()
    );
    assert!(
        verify_with_jwt_simple(
            &jwks,
            &pair.access,
            Some(options(
                "https://auth.example.com",
                "https://other.example.com"
            )),
        )
        .is_err()
    );
}

#[tokio::test]
async fn tampered_rs256_token_fails_with_jwt_simple() {
    assert_tampered_token_fails_with_jwt_simple(Algorithm::Rs256).await;
}

#[tokio::test]
async fn tampered_es256_token_fails_with_jwt_simple() {
    assert_tampered_token_fails_with_jwt_simple(Algorithm::Es256).await;
}

#[tokio::test]
async fn rs256_kids_are_rfc_7638_thumbprints_by_jwt_simple() {
    assert_kids_are_thumbprints(Algorithm::Rs256).await;
}

#[tokio::test]
async fn es256_kids_are_rfc_7638_thumbprints_by_jwt_simple() {
    assert_kids_are_thumbprints(Algorithm::Es256).await;
}

#[tokio::test]
async fn rs256_jwks_entries_pass_jwt_simples_strict_jwk_import() {
    let (app, _) = app_with_user(|_| {}).await;
    let pair = app.login_ok("alice", "pw").await;
    let jwks = fetch_jwks(&app).await;
    let jwk = jwk_for(&jwks, &kid_of(&pair.access));
    let key = RS256PublicKey::from_jwk(&jwk.to_string()).expect("strict JWK import");
    assert_eq!(key.key_id().as_deref(), jwk["kid"].as_str());
    key.verify_token::<JwtdClaims>(&pair.access, Some(strict_options()))
        .expect("verifies with the imported JWK");
}

#[tokio::test]
async fn es256_jwks_entries_pass_jwt_simples_strict_jwk_import() {
    let (app, _) = app_with_user(|c| c.algorithm = Algorithm::Es256).await;
    let pair = app.login_ok("alice", "pw").await;
    let jwks = fetch_jwks(&app).await;
    let jwk = jwk_for(&jwks, &kid_of(&pair.access));
    let key = ES256PublicKey::from_jwk(&jwk.to_string()).expect("strict JWK import");
    assert_eq!(key.key_id().as_deref(), jwk["kid"].as_str());
    key.verify_token::<JwtdClaims>(&pair.access, Some(strict_options()))
        .expect("verifies with the imported JWK");
}

// ---------------------------------------------------------------------------
// Restart on the same database
// ---------------------------------------------------------------------------

#[tokio::test]
async fn jwks_is_identical_after_a_restart() {
    let (app, _) = app_with_user(|_| {}).await;
    let before = app.get("/.well-known/jwks.json").await;
    let etag_before = before.headers().get("etag").cloned();
    let body_before = before.text().await.unwrap();
    let app = app.restart().await;
    let after = app.get("/.well-known/jwks.json").await;
    assert_status(&after, StatusCode::OK);
    assert_eq!(after.headers().get("etag").cloned(), etag_before);
    assert_eq!(after.text().await.unwrap(), body_before);
}

#[tokio::test]
async fn signing_keys_survive_a_restart() {
    let (app, _) = app_with_user(|c| c.algorithm = Algorithm::Es256).await;
    let kid_before = kid_of(&app.login_ok("alice", "pw").await.access);
    let app = app.restart().await;
    let kid_after = kid_of(&app.login_ok("alice", "pw").await.access);
    assert_eq!(kid_after, kid_before, "the same active key signs");
    let store = jwtd::testing::Deployment::open(&app.config).await.unwrap();
    let keys = store.keys().await.unwrap();
    store.close().await;
    assert_eq!(keys.len(), 2, "no key was added by the restart: {keys:?}");
}

#[tokio::test]
async fn users_survive_a_restart() {
    let (app, user_id) = app_with_user(|_| {}).await;
    let app = app.restart().await;
    let pair = app.login_ok("alice", "pw").await;
    let me = expect_json(app.me(&pair.access).await, StatusCode::OK).await;
    assert_eq!(me, json!({"user_id": user_id, "username": "alice"}));
}

#[tokio::test]
async fn tokens_issued_before_a_restart_verify_after_it() {
    let (app, user_id) = app_with_user(|_| {}).await;
    let pair = app.login_ok("alice", "pw").await;
    let app = app.restart().await;
    for token in [&pair.access, &pair.refresh] {
        expect_json(app.verify(token).await, StatusCode::OK).await;
    }
    let me = expect_json(app.me(&pair.access).await, StatusCode::OK).await;
    assert_eq!(me["user_id"], user_id);
    let jwks = fetch_jwks(&app).await;
    for token in [&pair.access, &pair.refresh] {
        verify_with_jwt_simple(&jwks, token, None).expect("jwt-simple, JWKS after restart");
    }
    expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The claims jwtd adds to the registered ones.
#[derive(Debug, Deserialize)]
pub(crate) struct JwtdClaims {
    pub(crate) token_type: String,
    pub(crate) user_id: String,
}

/// An app on a configuration `configure` adjusts, with user `alice` / `pw`;
/// returns alice's id as the string tokens carry.
async fn app_with_user(configure: impl FnOnce(&mut jwtd::config::Config)) -> (TestApp, String) {
    let app = spawn_app_with(configure).await;
    let id = app.add_user("alice", "pw").await.to_string();
    (app, id)
}

/// `GET /.well-known/jwks.json` over HTTP, as a partner would.
pub(crate) async fn fetch_jwks(app: &TestApp) -> Value {
    let response = reqwest::get(app.url("/.well-known/jwks.json"))
        .await
        .expect("JWKS fetched");
    expect_json(response, StatusCode::OK).await
}

/// Verification options for tokens fresh from a server whose manual clock
/// started at the real time: a few seconds of tolerance, no more.
pub(crate) fn strict_options() -> VerificationOptions {
    VerificationOptions {
        time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(5)),
        ..VerificationOptions::default()
    }
}

/// The JWK of `kid` in `jwks`.
pub(crate) fn jwk_for(jwks: &Value, kid: &str) -> Value {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} is not in {jwks}"))
        .clone()
}

fn unb64(member: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(member.as_str().expect("a base64url member"))
        .expect("base64url")
}

/// Verifies `token` with jwt-simple the way a relying party does: the key
/// the JWKS lists under the token's `kid`, built from its public members
/// only, under the algorithm the JWK (not the token) names; the token's
/// `kid` must match.
pub(crate) fn verify_with_jwt_simple(
    jwks: &Value,
    token: &str,
    options: Option<VerificationOptions>,
) -> Result<JWTClaims<JwtdClaims>, jwt_simple::Error> {
    let kid = kid_of(token);
    let jwk = jwk_for(jwks, &kid);
    let options = VerificationOptions {
        required_key_id: Some(kid.clone()),
        ..options.unwrap_or_else(strict_options)
    };
    match (jwk["kty"].as_str(), jwk["alg"].as_str()) {
        (Some("RSA"), Some("RS256")) => {
            RS256PublicKey::from_components(&unb64(&jwk["n"]), &unb64(&jwk["e"]))?
                .with_key_id(&kid)
                .verify_token::<JwtdClaims>(token, Some(options))
        }
        (Some("EC"), Some("ES256")) => {
            assert_eq!(jwk["crv"], "P-256");
            let point = [&[0x04][..], &unb64(&jwk["x"]), &unb64(&jwk["y"])].concat();
            ES256PublicKey::from_bytes(&point)?
                .with_key_id(&kid)
                .verify_token::<JwtdClaims>(token, Some(options))
        }
        (Some("EC"), Some("ES384")) => {
            assert_eq!(jwk["crv"], "P-384");
            let point = [&[0x04][..], &unb64(&jwk["x"]), &unb64(&jwk["y"])].concat();
            ES384PublicKey::from_bytes(&point)?
                .with_key_id(&kid)
                .verify_token::<JwtdClaims>(token, Some(options))
        }
        (Some("RSA"), Some("PS256")) => {
            PS256PublicKey::from_components(&unb64(&jwk["n"]), &unb64(&jwk["e"]))?
                .with_key_id(&kid)
                .verify_token::<JwtdClaims>(token, Some(options))
        }
        (Some("OKP"), Some("EdDSA")) => {
            assert_eq!(jwk["crv"], "Ed25519");
            Ed25519PublicKey::from_bytes(&unb64(&jwk["x"]))?
                .with_key_id(&kid)
                .verify_token::<JwtdClaims>(token, Some(options))
        }
        other => panic!("unexpected JWK type {other:?}: {jwk}"),
    }
}

async fn assert_pair_verifies_with_jwt_simple(
    algorithm: Algorithm,
    configure: impl FnOnce(&mut jwtd::config::Config),
) {
    let (app, user_id) = app_with_user(|c| {
        c.algorithm = algorithm;
        configure(c);
    })
    .await;
    let Pair { access, refresh } = app.login_ok("alice", "pw").await;
    let jwks = fetch_jwks(&app).await;
    for (token, token_type) in [(&access, "access"), (&refresh, "refresh")] {
        assert_eq!(header_of(token)["alg"], algorithm.as_str());
        let claims = verify_with_jwt_simple(&jwks, token, None)
            .unwrap_or_else(|err| panic!("jwt-simple refuses the {token_type} token: {err}"));
        assert_eq!(claims.custom.token_type, token_type);
        assert_eq!(claims.custom.user_id, user_id);
        let raw = claims_of(token);
        assert_eq!(claims.jwt_id.as_deref(), raw["jti"].as_str());
        assert_eq!(
            claims.expires_at.map(|t| t.as_secs()),
            raw["exp"].as_u64(),
            "jwt-simple reads exp as jwtd wrote it"
        );
    }
}

async fn assert_tampered_token_fails_with_jwt_simple(algorithm: Algorithm) {
    let (app, user_id) = app_with_user(|c| c.algorithm = algorithm).await;
    let access = app.login_ok("alice", "pw").await.access;
    let jwks = fetch_jwks(&app).await;
    verify_with_jwt_simple(&jwks, &access, None).expect("the genuine token verifies");

    let parts: Vec<&str> = access.split('.').collect();
    let mut claims = claims_of(&access);
    claims["user_id"] = json!(format!("{user_id}0"));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert!(verify_with_jwt_simple(&jwks, &tampered, None).is_err());

    let mut signature = unb64(&json!(parts[2]));
    signature[10] ^= 0x80;
    let resigned = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert!(verify_with_jwt_simple(&jwks, &resigned, None).is_err());
}

async fn assert_kids_are_thumbprints(algorithm: Algorithm) {
    let (app, _) = app_with_user(|c| c.algorithm = algorithm).await;
    let jwks = fetch_jwks(&app).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for jwk in keys {
        let thumbprint = match algorithm {
            Algorithm::Rs256 => {
                RS256PublicKey::from_components(&unb64(&jwk["n"]), &unb64(&jwk["e"]))
                    .unwrap()
                    .jwk_thumbprint()
            }
            Algorithm::Es256 => {
                let point = [&[0x04][..], &unb64(&jwk["x"]), &unb64(&jwk["y"])].concat();
                ES256PublicKey::from_bytes(&point).unwrap().jwk_thumbprint()
            }
            Algorithm::Es384 => {
                let point = [&[0x04][..], &unb64(&jwk["x"]), &unb64(&jwk["y"])].concat();
                ES384PublicKey::from_bytes(&point).unwrap().jwk_thumbprint()
            }
            Algorithm::Ps256 => {
                PS256PublicKey::from_components(&unb64(&jwk["n"]), &unb64(&jwk["e"]))
                    .unwrap()
                    .jwk_thumbprint()
            }
            Algorithm::EdDsa => Ed25519PublicKey::from_bytes(&unb64(&jwk["x"]))
                .unwrap()
                .jwk_thumbprint(),
            other => panic!("no jwt-simple thumbprint for {other:?}"),
        };
        assert_eq!(jwk["kid"], thumbprint);
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], algorithm.as_str());
    }
}
