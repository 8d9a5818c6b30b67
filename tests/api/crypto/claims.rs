//! Claims: their types, `nbf` and `iat`, duplicates, expiry and leeway,
//! issuer and audience.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    Fixture, assert_accepted, assert_invalid_everywhere, assert_me_refuses, assert_verify_refuses,
    fixture, fixture_with, random_jti,
};
use crate::helpers::{claims_of, expect_json};

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
        random_jti(),
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
        random_jti(),
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

/// Genuine claims changed by `change`, validly signed: must be refused as
/// invalid.
async fn assert_claim_refused(change: impl FnOnce(&mut Value)) {
    let fx = fixture().await;
    let mut claims = fx.access_claims();
    change(&mut claims);
    assert_invalid_everywhere(&fx, &fx.key.sign(&claims)).await;
}
