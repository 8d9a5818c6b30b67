//! Size and shape: the 8 KiB limit, segments, base64, and RSA key sizes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::json;

use super::forge::b64;
use super::{assert_accepted, assert_invalid_everywhere, fixture, fixture_with};
use crate::helpers::expect_json;

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
