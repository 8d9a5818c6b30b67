//! The partner's `Authenticated<C>` extractor answers exactly as the
//! issuer's own protected views do.

use axum::http::header;
use jwtd::clock::Clock;
use jwtd::verifier::RemoteOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{PASSWORD, Partner, issuer_with_alice, random_hex, signed_by_issuer, tampered};
use crate::helpers::access_token_not_valid;

#[tokio::test]
async fn the_extractor_answers_401s_like_the_issuers_protected_views() {
    let (app, user_id) = issuer_with_alice(|_| {}).await;
    let partner = Partner::start(&app, RemoteOptions::default()).await;
    let pair = app.login_ok("alice", PASSWORD).await;
    // An access token issued an hour ago, as the issuer writes them.
    let issued = app.clock.now() - 3_600;
    let lifetime = app.config.access_token_lifetime.as_secs() as i64;
    let expired = signed_by_issuer(
        &app,
        &json!({
            "token_type": "access",
            "exp": issued + lifetime,
            "iat": issued,
            "jti": random_hex(),
            "user_id": user_id,
        }),
    )
    .await;

    let not_provided = json!({"detail": "Authentication credentials were not provided."});
    let bad_header = json!({
        "detail": "Authorization header must contain two space-delimited values",
        "code": "bad_authorization_header",
    });
    let cases: Vec<(&str, Option<String>, Value)> = vec![
        ("no header", None, not_provided.clone()),
        (
            "another scheme",
            Some("Basic x".into()),
            not_provided.clone(),
        ),
        ("a bare scheme", Some("Bearer".into()), bad_header.clone()),
        ("two values", Some("Bearer a b".into()), bad_header),
        (
            "garbage",
            Some("Bearer garbage".into()),
            access_token_not_valid("Token is invalid"),
        ),
        (
            "a tampered token",
            Some(format!("Bearer {}", tampered(&pair.access))),
            access_token_not_valid("Token is invalid"),
        ),
        (
            "an expired token",
            Some(format!("Bearer {expired}")),
            access_token_not_valid("Token is expired"),
        ),
        (
            "a refresh token",
            Some(format!("Bearer {}", pair.refresh)),
            access_token_not_valid("Token has wrong type"),
        ),
    ];
    for (case, authorization, expected) in cases {
        let (status, body, challenge) = partner.hello(authorization.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "partner, {case}");
        assert_eq!(body, expected, "partner body, {case}");
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer realm="api""#),
            "partner WWW-Authenticate, {case}"
        );

        let mut request = app.client.get(app.url("/api/me/"));
        if let Some(authorization) = &authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let response = request.send().await.unwrap();
        let issuer_challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "issuer, {case}"
        );
        assert_eq!(issuer_challenge, challenge, "same challenge, {case}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            expected,
            "the issuer's /api/me/ says the same, {case}"
        );
    }
    // And the valid token passes both.
    partner.expect_hello(&pair.access, &user_id).await;
    let me = app.me(&pair.access).await;
    assert_eq!(me.status(), StatusCode::OK);
}
