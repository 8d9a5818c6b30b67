//! Algorithms and keys: the controls, `alg` confusion, unknown and foreign
//! keys, header members that would pick the key, ECDSA encodings.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::testing::{SigningKey, generate_key};
use jwtd::verifier::{Algorithm, PublicJwk};
use serde_json::{Value, json};

use super::forge::{ActiveKey, b64, join, signing_input};
use super::{Fixture, assert_accepted, assert_invalid_everywhere, es256_fixture, fixture};
use crate::helpers::{TestApp, claims_of, header_of};

/// The order n of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

// ---------------------------------------------------------------------------
// Controls: the forging helpers produce tokens the server accepts, so every
// refusal in these tests is caused by the one defect each test introduces.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn forged_rs256_token_with_genuine_claims_is_accepted() {
    let fx = fixture().await;
    let token = fx.key.sign(&fx.access_claims());
    assert_eq!(header_of(&token), fx.key.header());
    assert_accepted(&fx, &token).await;
}

#[tokio::test]
async fn hand_built_rs256_token_with_genuine_header_is_accepted() {
    let fx = fixture().await;
    let token = fx.key.sign_parts(
        &fx.key.header().to_string(),
        &fx.access_claims().to_string(),
    );
    assert_accepted(&fx, &token).await;
}

#[tokio::test]
async fn hand_built_es256_token_with_genuine_header_is_accepted() {
    let fx = es256_fixture().await;
    assert_eq!(fx.key.alg, Algorithm::Es256);
    let token = fx.key.sign_parts(
        &fx.key.header().to_string(),
        &fx.access_claims().to_string(),
    );
    assert_accepted(&fx, &token).await;
}

// ---------------------------------------------------------------------------
// Algorithms and keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_with_empty_signature_is_invalid() {
    let fx = fixture().await;
    let payload = fx.access_claims().to_string();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let with_kid = json!({"alg": alg, "typ": "JWT", "kid": fx.key.kid});
        let without_kid = json!({"alg": alg, "typ": "JWT"});
        for header in [with_kid, without_kid] {
            let token = format!("{}.", signing_input(&header.to_string(), &payload));
            assert_invalid_everywhere(&fx, &token).await;
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_jwks_public_key_pem_is_invalid() {
    let fx = fixture().await;
    let pem = published_public_key(&fx.app)
        .await
        .to_pem(fx.key.alg)
        .expect("PEM");
    for secret in [pem.as_str(), pem.trim_end()] {
        let token = hs256_token(&fx, secret.as_bytes());
        assert_invalid_everywhere(&fx, &token).await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_raw_rsa_modulus_is_invalid() {
    let fx = fixture().await;
    let PublicJwk::Rsa { n, .. } = published_public_key(&fx.app).await else {
        panic!("an RS256 app publishes an RSA key");
    };
    let modulus = URL_SAFE_NO_PAD.decode(&n).expect("base64url modulus");
    assert_eq!(modulus.len(), 256);
    let token = hs256_token(&fx, &modulus);
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn hs256_signed_with_the_jwks_ec_public_key_pem_is_invalid() {
    let fx = es256_fixture().await;
    let pem = published_public_key(&fx.app)
        .await
        .to_pem(fx.key.alg)
        .expect("PEM");
    let token = hs256_token(&fx, pem.as_bytes());
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn unknown_kid_is_invalid_even_with_a_valid_signature() {
    let fx = fixture().await;
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "no-such-key"});
    let token = fx
        .key
        .sign_parts(&header.to_string(), &fx.access_claims().to_string());
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn missing_kid_is_invalid() {
    let fx = fixture().await;
    let header = json!({"alg": "RS256", "typ": "JWT"});
    let token = fx
        .key
        .sign_parts(&header.to_string(), &fx.access_claims().to_string());
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn token_signed_by_a_key_the_server_never_made_is_invalid() {
    let fx = fixture().await;
    let stranger = generate_key(Algorithm::Rs256, 2048).expect("generate");
    let signer =
        SigningKey::from_pkcs8(&stranger.kid, stranger.alg, &stranger.pkcs8).expect("parse");
    let token = signer
        .sign(fx.access_claims().to_string().as_bytes())
        .expect("sign");
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn tampered_payload_with_the_original_signature_is_invalid() {
    let fx = fixture().await;
    let genuine = fx.app.login_ok("alice", "pw").await.access;
    let mut claims = claims_of(&genuine);
    claims["user_id"] = json!("2");
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(claims.to_string()), parts[2]);
    assert_invalid_everywhere(&fx, &tampered).await;
}

#[tokio::test]
async fn altered_signature_is_invalid() {
    let fx = fixture().await;
    let genuine = fx.app.login_ok("alice", "pw").await.access;
    let (input, signature) = genuine.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[100] ^= 0x01;
    let altered = format!("{input}.{}", b64(&bytes));
    assert_invalid_everywhere(&fx, &altered).await;
}

#[tokio::test]
async fn header_naming_rs256_on_an_es256_key_is_invalid() {
    let fx = es256_fixture().await;
    // A genuine ES256 signature by the key the kid names, under a header
    // that claims RS256: the key's own algorithm must win.
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": fx.key.kid});
    let token = fx
        .key
        .sign_parts(&header.to_string(), &fx.access_claims().to_string());
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn header_naming_es256_on_an_rs256_key_is_invalid() {
    let fx = fixture().await;
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": fx.key.kid});
    let token = fx
        .key
        .sign_parts(&header.to_string(), &fx.access_claims().to_string());
    assert_invalid_everywhere(&fx, &token).await;
}

// ---------------------------------------------------------------------------
// Header members that would let a token pick its own key or rules
// ---------------------------------------------------------------------------

#[tokio::test]
async fn jku_header_is_invalid() {
    assert_header_member_refused("jku", json!("https://attacker.example/jwks.json")).await;
}

#[tokio::test]
async fn x5u_header_is_invalid() {
    assert_header_member_refused("x5u", json!("https://attacker.example/cert.pem")).await;
}

#[tokio::test]
async fn jwk_header_is_invalid_even_naming_the_servers_own_key() {
    let fx = fixture().await;
    let own_key = fx.key.public.published(&fx.key.kid, fx.key.alg);
    let mut header = fx.key.header();
    header["jwk"] = own_key;
    let token = fx
        .key
        .sign_parts(&header.to_string(), &fx.access_claims().to_string());
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn crit_header_is_invalid() {
    assert_header_member_refused("crit", json!(["exp"])).await;
}

#[tokio::test]
async fn x5c_header_is_invalid() {
    assert_header_member_refused(
        "x5c",
        json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
    )
    .await;
}

// ---------------------------------------------------------------------------
// ECDSA signatures (ES256 app)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn es256_der_encoded_signature_is_invalid() {
    let fx = es256_fixture().await;
    let input = fx.signing_input();
    let der = fx.key.der_signature(input.as_bytes());
    assert_eq!(der[0], 0x30, "a DER SEQUENCE");
    assert_invalid_everywhere(&fx, &join(&input, &der)).await;
}

#[tokio::test]
async fn es256_signature_with_r_zero_is_invalid() {
    let fx = es256_fixture().await;
    let input = fx.signing_input();
    let (_, s) = fx.key.r_and_s(input.as_bytes());
    assert_invalid_everywhere(&fx, &join(&input, &[[0u8; 32], s].concat())).await;
}

#[tokio::test]
async fn es256_signature_with_s_zero_is_invalid() {
    let fx = es256_fixture().await;
    let input = fx.signing_input();
    let (r, _) = fx.key.r_and_s(input.as_bytes());
    assert_invalid_everywhere(&fx, &join(&input, &[r, [0u8; 32]].concat())).await;
}

#[tokio::test]
async fn es256_signature_with_r_equal_to_the_group_order_is_invalid() {
    let fx = es256_fixture().await;
    let input = fx.signing_input();
    let (_, s) = fx.key.r_and_s(input.as_bytes());
    assert_invalid_everywhere(&fx, &join(&input, &[P256_ORDER, s].concat())).await;
}

#[tokio::test]
async fn es256_signature_with_s_equal_to_the_group_order_is_invalid() {
    let fx = es256_fixture().await;
    let input = fx.signing_input();
    let (r, _) = fx.key.r_and_s(input.as_bytes());
    assert_invalid_everywhere(&fx, &join(&input, &[r, P256_ORDER].concat())).await;
}

#[tokio::test]
async fn es256_signature_of_64_zero_bytes_is_invalid() {
    let fx = es256_fixture().await;
    let input = fx.signing_input();
    assert_invalid_everywhere(&fx, &join(&input, &[0u8; 64])).await;
}

#[tokio::test]
async fn es256_signature_of_the_wrong_length_is_invalid() {
    let fx = es256_fixture().await;
    let input = fx.signing_input();
    let signature = fx.key.signature(input.as_bytes());
    assert_eq!(signature.len(), 64);
    for wrong in [
        &signature[..63],
        &[&signature[..], &[0u8]].concat()[..],
        &[],
    ] {
        assert_invalid_everywhere(&fx, &join(&input, wrong)).await;
    }
}

/// The active key as the JWKS publishes it (public members only).
pub(crate) async fn published_public_key(app: &TestApp) -> PublicJwk {
    let kid = ActiveKey::of(app).await.kid;
    let jwks = app.jwks().await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == kid)
        .expect("the active key is published")
        .clone();
    let members = match jwk["kty"].as_str() {
        Some("RSA") => json!({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}),
        _ => json!({"kty": "EC", "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]}),
    };
    serde_json::from_value(members).expect("a public JWK")
}

/// An HS256 token over genuine claims under the real kid, with `secret` as
/// the HMAC key.
pub(crate) fn hs256_token(fx: &Fixture, secret: &[u8]) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": fx.key.kid});
    let input = signing_input(&header.to_string(), &fx.access_claims().to_string());
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    join(&input, tag.as_ref())
}

/// Genuine header plus `name: value`, over genuine claims, validly signed:
/// must be refused.
async fn assert_header_member_refused(name: &str, value: Value) {
    let fx = fixture().await;
    let mut header = fx.key.header();
    header[name] = value;
    let token = fx
        .key
        .sign_parts(&header.to_string(), &fx.access_claims().to_string());
    assert_invalid_everywhere(&fx, &token).await;
}
