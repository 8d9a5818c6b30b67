//! SPEC §4's verification rules, attacked one at a time: every forged,
//! tampered, confused or malformed token is a 401 `Token is invalid` (or the
//! message simplejwt gives the case), never a 5xx. Forged tokens are signed
//! with the server's real active key, read from its database, so each one is
//! refused for the single defect it carries and not for a bad signature.

use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::clock::Clock;
use jwtd::keys::{MasterKey, SigningKey};
use jwtd::store::KeyState;
use jwtd::store::Store;
use jwtd::verifier::{Algorithm, PublicJwk};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, claims_of, expect_json, header_of, spawn_app_with};

/// The order n of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

// ---------------------------------------------------------------------------
// Controls: the forging helpers produce tokens the server accepts, so every
// refusal below is caused by the one defect each test introduces.
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
    let pem = published_public_key(&fx.app).await.to_pem().expect("PEM");
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
    let pem = published_public_key(&fx.app).await.to_pem().expect("PEM");
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
    let stranger = jwtd::keys::material::generate(Algorithm::Rs256, 2048).expect("generate");
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
    let own_key = fx.key.public.published(&fx.key.kid);
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

// ---------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------

#[tokio::test]
async fn string_exp_is_invalid() {
    assert_claim_refused(|c| c["exp"] = json!(c["exp"].to_string())).await;
}

#[tokio::test]
async fn string_nbf_is_invalid() {
    assert_claim_refused(|c| c["nbf"] = json!(c["iat"].to_string())).await;
}

#[tokio::test]
async fn string_iat_is_invalid() {
    assert_claim_refused(|c| c["iat"] = json!(c["iat"].to_string())).await;
}

#[tokio::test]
async fn nbf_in_the_future_is_invalid() {
    assert_claim_refused(|c| c["nbf"] = json!(c["iat"].as_i64().unwrap() + 60)).await;
}

#[tokio::test]
async fn iat_in_the_future_is_invalid() {
    assert_claim_refused(|c| c["iat"] = json!(c["iat"].as_i64().unwrap() + 60)).await;
}

#[tokio::test]
async fn iat_ahead_within_leeway_is_accepted_beyond_it_is_invalid() {
    let fx = fixture_with(|c| c.leeway = Duration::from_secs(30)).await;
    let mut claims = fx.access_claims();
    let now = fx.now();
    claims["iat"] = json!(now + 20);
    assert_accepted(&fx, &fx.key.sign(&claims)).await;
    claims["iat"] = json!(now + 60);
    assert_invalid_everywhere(&fx, &fx.key.sign(&claims)).await;
}

#[tokio::test]
async fn nbf_and_iat_in_the_past_are_accepted() {
    let fx = fixture().await;
    let mut claims = fx.access_claims();
    claims["nbf"] = json!(fx.now() - 10);
    claims["iat"] = json!(fx.now() - 10);
    assert_accepted(&fx, &fx.key.sign(&claims)).await;
}

#[tokio::test]
async fn missing_exp_is_refused_with_simplejwts_message() {
    let fx = fixture().await;
    let mut claims = fx.access_claims();
    claims.as_object_mut().unwrap().remove("exp");
    let token = fx.key.sign(&claims);
    assert_verify_refuses(&fx.app, &token, "Token has no 'exp' claim").await;
    assert_me_refuses(&fx.app, &token, "Token has no 'exp' claim").await;
}

#[tokio::test]
async fn duplicate_keys_in_the_payload_are_invalid() {
    let fx = fixture().await;
    let now = fx.now();
    let payload = format!(
        r#"{{"token_type":"access","exp":{},"iat":{now},"jti":"{}","user_id":"{}","user_id":"999"}}"#,
        now + 300,
        jwtd::tokens::new_jti(now),
        fx.user_id,
    );
    let token = fx.key.sign_parts(&fx.key.header().to_string(), &payload);
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn duplicate_exp_in_the_payload_is_invalid() {
    let fx = fixture().await;
    let now = fx.now();
    let payload = format!(
        r#"{{"token_type":"access","exp":{now},"iat":{now},"jti":"{}","user_id":"{}","exp":{}}}"#,
        jwtd::tokens::new_jti(now),
        fx.user_id,
        now + 300,
    );
    let token = fx.key.sign_parts(&fx.key.header().to_string(), &payload);
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn duplicate_keys_in_the_header_are_invalid() {
    let fx = fixture().await;
    let payload = fx.access_claims().to_string();
    let headers = [
        format!(
            r#"{{"alg":"HS256","typ":"JWT","kid":"{0}","alg":"RS256"}}"#,
            fx.key.kid
        ),
        format!(
            r#"{{"alg":"RS256","typ":"JWT","kid":"other","kid":"{0}"}}"#,
            fx.key.kid
        ),
        format!(
            r#"{{"alg":"RS256","typ":"JWT","typ":"JWT","kid":"{0}"}}"#,
            fx.key.kid
        ),
    ];
    for header in headers {
        let token = fx.key.sign_parts(&header, &payload);
        assert_invalid_everywhere(&fx, &token).await;
    }
}

// ---------------------------------------------------------------------------
// Size and shape
// ---------------------------------------------------------------------------

#[tokio::test]
async fn validly_signed_token_over_8_kib_is_invalid() {
    let fx = fixture().await;
    let mut claims = fx.access_claims();
    claims["padding"] = json!("x".repeat(8 * 1024));
    let token = fx.key.sign(&claims);
    assert!(token.len() > 8 * 1024);
    assert_invalid_everywhere(&fx, &token).await;
}

#[tokio::test]
async fn token_just_within_8_kib_is_accepted_one_byte_more_is_not() {
    let fx = fixture().await;
    let base = fx.access_claims();
    let padded_claims = |pad: usize| {
        let mut claims = base.clone();
        claims["padding"] = json!("x".repeat(pad));
        claims
    };
    // Length without signing: header, payload, and a 256-byte signature.
    let header_len = b64(fx.key.header().to_string()).len();
    let length = |pad: usize| header_len + 1 + b64(padded_claims(pad).to_string()).len() + 1 + 342;
    // The longest token of at most 8192 bytes, and the next longer one.
    let mut pad = 1;
    while length(pad + 1) <= 8 * 1024 {
        pad += 1;
    }
    let padded = |pad: usize| fx.key.sign(&padded_claims(pad));
    let largest = padded(pad);
    assert!(largest.len() >= 8 * 1024 - 2, "{}", largest.len());
    assert_accepted(&fx, &largest).await;
    let over = padded(pad + 1);
    assert!(over.len() > 8 * 1024);
    assert_invalid_everywhere(&fx, &over).await;
}

#[tokio::test]
async fn token_with_two_segments_is_invalid() {
    let fx = fixture().await;
    let genuine = fx.app.login_ok("alice", "pw").await.access;
    let (input, _) = genuine.rsplit_once('.').unwrap();
    assert_invalid_everywhere(&fx, input).await;
    assert_invalid_everywhere(&fx, &format!("{input}.")).await;
}

#[tokio::test]
async fn token_with_four_or_five_segments_is_invalid() {
    let fx = fixture().await;
    let genuine = fx.app.login_ok("alice", "pw").await.access;
    let signature = genuine.rsplit('.').next().unwrap();
    assert_invalid_everywhere(&fx, &format!("{genuine}.{signature}")).await;
    assert_invalid_everywhere(&fx, &format!("{genuine}.")).await;
    assert_invalid_everywhere(&fx, &format!("{genuine}.{signature}.{signature}")).await;
}

#[tokio::test]
async fn token_with_invalid_base64_is_invalid() {
    let fx = fixture().await;
    let genuine = fx.app.login_ok("alice", "pw").await.access;
    let parts: Vec<&str> = genuine.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let replace_at = |text: &str, at: usize, with: char| {
        let mut chars: Vec<char> = text.chars().collect();
        chars[at] = with;
        chars.into_iter().collect::<String>()
    };
    let broken = [
        format!("!{header}.{payload}.{signature}"),
        format!("{header}.{}.{signature}", replace_at(payload, 5, '*')),
        // The standard alphabet's `+` and `/` are not base64url.
        format!("{header}.{}.{signature}", replace_at(payload, 5, '+')),
        format!("{header}.{payload}.{}", replace_at(signature, 5, '/')),
        // Padding is not allowed in a JWS.
        format!("{header}.{payload}.{signature}=="),
        format!("{header}=.{payload}.{signature}"),
        // A length no base64 string has.
        format!("{header}.{payload}.{}", &signature[..signature.len() - 3]),
        format!("{header}.{payload}.%%%"),
    ];
    for token in broken {
        assert_invalid_everywhere(&fx, &token).await;
    }
}

#[tokio::test]
async fn signature_with_non_canonical_base64_trailing_bits_is_invalid() {
    let fx = fixture().await;
    let genuine = fx.app.login_ok("alice", "pw").await.access;
    let (input, signature) = genuine.rsplit_once('.').unwrap();
    // 256 bytes encode to 342 characters; the last one carries 2 bits and 4
    // bits that must be zero. Setting one of those gives a string that a
    // lenient decoder maps to the very same signature.
    assert_eq!(signature.len(), 342);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = *signature.as_bytes().last().unwrap();
    let index = alphabet.iter().position(|&c| c == last).unwrap();
    assert_eq!(index & 0x0F, 0, "canonical encoding");
    let non_canonical = format!(
        "{input}.{}{}",
        &signature[..signature.len() - 1],
        alphabet[index | 0x01] as char
    );
    assert_invalid_everywhere(&fx, &non_canonical).await;
}

// ---------------------------------------------------------------------------
// Expiry, type and leeway
// ---------------------------------------------------------------------------

#[tokio::test]
async fn access_token_past_its_lifetime_is_expired() {
    let fx = fixture().await;
    let pair = fx.app.login_ok("alice", "pw").await;
    fx.app.advance(Duration::from_secs(301));
    assert_verify_refuses(&fx.app, &pair.access, "Token is expired").await;
    assert_me_refuses(&fx.app, &pair.access, "Token is expired").await;
}

#[tokio::test]
async fn refresh_token_at_me_has_wrong_type() {
    let fx = fixture().await;
    let pair = fx.app.login_ok("alice", "pw").await;
    assert_me_refuses(&fx.app, &pair.refresh, "Token has wrong type").await;
    // ...while /api/token/verify/ takes any type.
    expect_json(fx.app.verify(&pair.refresh).await, StatusCode::OK).await;
}

#[tokio::test]
async fn leeway_accepts_a_token_20_seconds_past_exp() {
    let fx = fixture_with(|c| c.leeway = Duration::from_secs(30)).await;
    let pair = fx.app.login_ok("alice", "pw").await;
    fx.app.advance(Duration::from_secs(300 + 20));
    assert_accepted(&fx, &pair.access).await;
}

#[tokio::test]
async fn leeway_does_not_accept_a_token_beyond_it() {
    let fx = fixture_with(|c| c.leeway = Duration::from_secs(30)).await;
    let pair = fx.app.login_ok("alice", "pw").await;
    fx.app.advance(Duration::from_secs(300 + 31));
    assert_verify_refuses(&fx.app, &pair.access, "Token is expired").await;
    assert_me_refuses(&fx.app, &pair.access, "Token is expired").await;
}

#[tokio::test]
async fn leeway_accepts_nbf_slightly_in_the_future() {
    let fx = fixture_with(|c| c.leeway = Duration::from_secs(30)).await;
    let mut claims = fx.access_claims();
    claims["nbf"] = json!(fx.now() + 20);
    assert_accepted(&fx, &fx.key.sign(&claims)).await;
}

// ---------------------------------------------------------------------------
// Issuer and audience
// ---------------------------------------------------------------------------

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://api.example.com";

async fn iss_aud_fixture() -> Fixture {
    fixture_with(|c| {
        c.issuer = Some(ISSUER.into());
        c.audience = Some(AUDIENCE.into());
    })
    .await
}

#[tokio::test]
async fn configured_issuer_and_audience_are_carried_by_every_token() {
    let fx = iss_aud_fixture().await;
    let pair = fx.app.login_ok("alice", "pw").await;
    for token in [&pair.access, &pair.refresh] {
        let claims = claims_of(token);
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["aud"], AUDIENCE);
        expect_json(fx.app.verify(token).await, StatusCode::OK).await;
    }
    expect_json(fx.app.me(&pair.access).await, StatusCode::OK).await;
}

#[tokio::test]
async fn token_from_another_issuer_is_invalid() {
    let fx = iss_aud_fixture().await;
    let mut claims = fx.access_claims();
    assert_eq!(claims["iss"], ISSUER, "fixture claims carry iss");
    claims["iss"] = json!("https://evil.example.com");
    assert_invalid_everywhere(&fx, &fx.key.sign(&claims)).await;
}

#[tokio::test]
async fn token_without_issuer_is_invalid_when_one_is_configured() {
    let fx = iss_aud_fixture().await;
    let mut claims = fx.access_claims();
    claims.as_object_mut().unwrap().remove("iss");
    assert_invalid_everywhere(&fx, &fx.key.sign(&claims)).await;
}

#[tokio::test]
async fn token_for_another_audience_is_invalid() {
    let fx = iss_aud_fixture().await;
    let mut claims = fx.access_claims();
    assert_eq!(claims["aud"], AUDIENCE, "fixture claims carry aud");
    claims["aud"] = json!("https://other-api.example.com");
    assert_invalid_everywhere(&fx, &fx.key.sign(&claims)).await;
}

#[tokio::test]
async fn token_without_audience_is_invalid_when_one_is_configured() {
    let fx = iss_aud_fixture().await;
    let mut claims = fx.access_claims();
    claims.as_object_mut().unwrap().remove("aud");
    assert_invalid_everywhere(&fx, &fx.key.sign(&claims)).await;
}

#[tokio::test]
async fn forged_token_with_the_configured_issuer_and_audience_is_accepted() {
    let fx = iss_aud_fixture().await;
    assert_accepted(&fx, &fx.key.sign(&fx.access_claims())).await;
}

#[tokio::test]
async fn token_with_aud_is_invalid_when_no_audience_is_configured() {
    let fx = fixture().await;
    let mut claims = fx.access_claims();
    claims["aud"] = json!(AUDIENCE);
    assert_invalid_everywhere(&fx, &fx.key.sign(&claims)).await;
}

// ---------------------------------------------------------------------------
// RSA key sizes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rs256_with_3072_bit_keys_works_end_to_end() {
    assert_rsa_size_works_end_to_end(3072).await;
}

#[tokio::test]
async fn rs256_with_4096_bit_keys_works_end_to_end() {
    assert_rsa_size_works_end_to_end(4096).await;
}

async fn assert_rsa_size_works_end_to_end(bits: u32) {
    let fx = fixture_with(|c| c.rsa_bits = bits).await;
    let bytes = bits as usize / 8;
    let jwks = fx.app.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "active and next keys: {jwks}");
    for key in keys {
        let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), bytes, "modulus of {}", key["kid"]);
        assert!(n[0] & 0x80 != 0, "a full {bits}-bit modulus");
    }
    let pair = fx.app.login_ok("alice", "pw").await;
    let signature = pair.access.rsplit('.').next().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(signature).unwrap().len(), bytes);
    assert_accepted(&fx, &pair.access).await;
    let refreshed = expect_json(fx.app.refresh(&pair.refresh).await, StatusCode::OK).await;
    assert_accepted(&fx, refreshed["access"].as_str().unwrap()).await;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A running app with one user (`alice` / `pw`) and its active key.
pub(crate) struct Fixture {
    pub(crate) app: TestApp,
    pub(crate) key: ActiveKey,
    pub(crate) user_id: String,
}

impl Fixture {
    /// The server's clock.
    pub(crate) fn now(&self) -> i64 {
        self.app.clock.now()
    }

    /// Access-token claims exactly as the server would issue them now,
    /// including `iss`/`aud` when configured.
    pub(crate) fn access_claims(&self) -> Value {
        let now = self.now();
        let mut claims = json!({
            "token_type": "access",
            "exp": now + 300,
            "iat": now,
            "jti": jwtd::tokens::new_jti(now),
            "user_id": self.user_id,
        });
        if let Some(issuer) = &self.app.config.issuer {
            claims["iss"] = json!(issuer);
        }
        if let Some(audience) = &self.app.config.audience {
            claims["aud"] = json!(audience);
        }
        claims
    }

    /// `b64(genuine header).b64(genuine access claims)`.
    pub(crate) fn signing_input(&self) -> String {
        signing_input(
            &self.key.header().to_string(),
            &self.access_claims().to_string(),
        )
    }
}

/// A fixture on the default (RS256) configuration.
pub(crate) async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

/// A fixture whose keys are ES256.
pub(crate) async fn es256_fixture() -> Fixture {
    fixture_with(|c| c.algorithm = Algorithm::Es256).await
}

/// A fixture on a configuration `configure` adjusts.
pub(crate) async fn fixture_with(configure: impl FnOnce(&mut jwtd::config::Config)) -> Fixture {
    let app = spawn_app_with(configure).await;
    let user_id = app.add_user("alice", "pw").await.to_string();
    let key = ActiveKey::of(&app).await;
    Fixture { app, key, user_id }
}

/// The server's active signing key, read and unsealed from its database, to
/// forge tokens exactly as the server would sign them.
pub(crate) struct ActiveKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) public: PublicJwk,
    pkcs8: Vec<u8>,
}

impl ActiveKey {
    /// Reads the active key of `app`'s database.
    pub(crate) async fn of(app: &TestApp) -> Self {
        let store = Store::open(&app.database_path())
            .await
            .expect("database opens");
        let (_, keys) = store.keys_with_version().await.expect("keys read");
        store.close().await;
        let key = keys
            .into_iter()
            .find(|key| key.state == KeyState::Active)
            .expect("an active key");
        let master = MasterKey::load(&app.config.master_key).expect("master key");
        let pkcs8 = master
            .open(
                &key.kid,
                key.sealed_private.as_deref().expect("a private key"),
            )
            .expect("private key unseals");
        Self {
            kid: key.kid,
            alg: key.alg,
            public: key.public,
            pkcs8: pkcs8.to_vec(),
        }
    }

    /// The header the server puts on its tokens.
    pub(crate) fn header(&self) -> Value {
        json!({"alg": self.alg.as_str(), "typ": "JWT", "kid": self.kid})
    }

    /// A token over `claims` signed exactly as the server signs.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        SigningKey::from_pkcs8(&self.kid, self.alg, &self.pkcs8)
            .expect("key parses")
            .sign(claims.to_string().as_bytes())
            .expect("signs")
    }

    /// `b64(header).b64(payload).b64(signature)` over the given JSON texts
    /// (taken verbatim, so they may hold duplicate keys), validly signed.
    pub(crate) fn sign_parts(&self, header: &str, payload: &str) -> String {
        let input = signing_input(header, payload);
        join(&input, &self.signature(input.as_bytes()))
    }

    /// The key's signature over `input`: RSASSA-PKCS1-v1_5 SHA-256, or
    /// ECDSA P-256 SHA-256 as JWS's fixed-width `r || s`.
    pub(crate) fn signature(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self.alg {
            Algorithm::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&self.pkcs8).expect("RSA key");
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, input, &mut signature)
                    .expect("signs");
                signature
            }
            Algorithm::Es256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8)
                    .expect("EC key")
                    .sign(&rng, input)
                    .expect("signs")
                    .as_ref()
                    .to_vec()
            }
        }
    }

    /// ES256 only: the signature over `input` split into `r` and `s`.
    pub(crate) fn r_and_s(&self, input: &[u8]) -> ([u8; 32], [u8; 32]) {
        assert_eq!(self.alg, Algorithm::Es256);
        let signature = self.signature(input);
        (
            signature[..32].try_into().unwrap(),
            signature[32..].try_into().unwrap(),
        )
    }

    /// ES256 only: a valid signature over `input`, DER-encoded (ASN.1) as
    /// X.509 has it rather than as JWS requires.
    pub(crate) fn der_signature(&self, input: &[u8]) -> Vec<u8> {
        assert_eq!(self.alg, Algorithm::Es256);
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.pkcs8)
            .expect("EC key")
            .sign(&SystemRandom::new(), input)
            .expect("signs")
            .as_ref()
            .to_vec()
    }
}

/// base64url without padding.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `b64(header).b64(payload)`.
pub(crate) fn signing_input(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header), b64(payload))
}

/// `input.b64(signature)`.
pub(crate) fn join(input: &str, signature: &[u8]) -> String {
    format!("{input}.{}", b64(signature))
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

/// Genuine claims changed by `change`, validly signed: must be refused as
/// invalid.
async fn assert_claim_refused(change: impl FnOnce(&mut Value)) {
    let fx = fixture().await;
    let mut claims = fx.access_claims();
    change(&mut claims);
    assert_invalid_everywhere(&fx, &fx.key.sign(&claims)).await;
}

/// 200 at `/api/token/verify/` and `/api/me/` (as alice).
pub(crate) async fn assert_accepted(fx: &Fixture, token: &str) {
    let verified = expect_json(fx.app.verify(token).await, StatusCode::OK).await;
    assert_eq!(verified, json!({}));
    let me = expect_json(fx.app.me(token).await, StatusCode::OK).await;
    assert_eq!(me["user_id"], fx.user_id);
}

/// `Token is invalid` at both `/api/token/verify/` and `/api/me/`.
pub(crate) async fn assert_invalid_everywhere(fx: &Fixture, token: &str) {
    assert_verify_refuses(&fx.app, token, "Token is invalid").await;
    assert_me_refuses(&fx.app, token, "Token is invalid").await;
}

/// 401 `{"detail": detail, "code": "token_not_valid"}` at
/// `/api/token/verify/`, with the challenge header.
pub(crate) async fn assert_verify_refuses(app: &TestApp, token: &str, detail: &str) {
    let response = app.verify(token).await;
    let challenge = challenge_of(&response);
    let body = expect_json(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        body,
        json!({"detail": detail, "code": "token_not_valid"}),
        "verify of {token}"
    );
    assert_eq!(challenge.as_deref(), Some(CHALLENGE));
}

/// 401 with simplejwt's access-token failure body carrying `message` at
/// `/api/me/`, with the challenge header.
pub(crate) async fn assert_me_refuses(app: &TestApp, token: &str, message: &str) {
    let response = app.me(token).await;
    let challenge = challenge_of(&response);
    let body = expect_json(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        body,
        json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
        }),
        "/api/me/ with {token}"
    );
    assert_eq!(challenge.as_deref(), Some(CHALLENGE));
}

const CHALLENGE: &str = r#"Bearer realm="api""#;

/// The `WWW-Authenticate` header of `response`.
fn challenge_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap_or_default().to_owned())
}
