//! SPEC §4's verification rules, attacked one at a time: every forged,
//! tampered, confused or malformed token is a 401 `Token is invalid` (or the
//! message simplejwt gives the case), never a 5xx. Forged tokens are signed
//! with the server's real active key, read from its database, so each one is
//! refused for the single defect it carries and not for a bad signature.
//!
//! `algorithms`: ES384, PS256 and EdDSA deployments end to end, and tokens
//! that name another algorithm than their key's; `signatures`: algorithms,
//! keys, header members and ECDSA encodings;
//! `claims`: claims, expiry, leeway, issuer and audience; `shape`: sizes,
//! segments, base64 and RSA key sizes. `forge` signs what the tests build.

mod algorithms;
mod claims;
mod forge;
mod shape;
mod signatures;

use jwtd::clock::Clock;
use jwtd::config::Config;
use jwtd::verifier::Algorithm;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, access_token_not_valid, expect_json, spawn_app_with};

use forge::signing_input;
pub(crate) use forge::{ActiveKey, random_jti};

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
            "jti": random_jti(),
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
pub(crate) async fn fixture_with(configure: impl FnOnce(&mut Config)) -> Fixture {
    let app = spawn_app_with(configure).await;
    let user_id = app.add_user("alice", "pw").await.to_string();
    let key = ActiveKey::of(&app).await;
    Fixture { app, key, user_id }
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
        access_token_not_valid(message),
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
