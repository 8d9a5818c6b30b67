//! `/.well-known/openid-configuration`: served only when `issuer` is an
//! http(s) URL, with every address built from it. (openid-client's own
//! discovery of a live jwtd is in tests/interop/.)

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn discovery_names_the_jwks_the_token_endpoint_and_the_algorithms() {
    let app = spawn_app_with(|config| {
        config.issuer = Some("https://auth.example.com/".into());
        config.algorithm = "ES256".parse().unwrap();
    })
    .await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration/",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let document: Value = response.json().await.unwrap();
        assert_eq!(document["issuer"], "https://auth.example.com/");
        assert_eq!(
            document["jwks_uri"],
            "https://auth.example.com/.well-known/jwks.json"
        );
        assert_eq!(
            document["token_endpoint"],
            "https://auth.example.com/api/token/"
        );
        assert_eq!(
            document["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        assert_eq!(document["subject_types_supported"], json!(["public"]));
        assert_eq!(document["response_types_supported"], json!(["token"]));
        assert_eq!(
            document["grant_types_supported"],
            json!(["password", "refresh_token"])
        );
    }
}

#[tokio::test]
async fn without_an_http_issuer_there_is_no_discovery_document() {
    for issuer in [None, Some("urn:example:jwtd"), Some("auth.example.com")] {
        let app = spawn_app_with(|config| config.issuer = issuer.map(str::to_owned)).await;
        let response = app.get("/.well-known/openid-configuration").await;
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "issuer {issuer:?}"
        );
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"detail": "Not found."})
        );
    }
}

#[tokio::test]
async fn metrics_are_never_served_on_the_api_address() {
    let app =
        spawn_app_with(|config| config.metrics_bind = Some("127.0.0.1:0".parse().unwrap())).await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
}
