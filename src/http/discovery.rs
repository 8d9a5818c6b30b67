//! `GET /.well-known/openid-configuration` (SPEC §8): where OIDC-discovery
//! clients (go-oidc, Envoy, Kong, oauth2-proxy) find the JWKS and which
//! algorithms to accept. Served only when `issuer` is an http(s) URL,
//! since every address in it is built from the issuer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, AppState};
use crate::verifier::Algorithm;

/// The provider metadata, or 404 when `issuer` is unset or not a URL.
pub async fn openid_configuration(State(app): State<AppState>) -> Response {
    let Some(issuer) = app
        .config
        .issuer
        .as_deref()
        .filter(|issuer| issuer.starts_with("https://") || issuer.starts_with("http://"))
    else {
        return ApiError::NotFound.into_response();
    };
    let base = issuer.trim_end_matches('/');
    let algorithms = signing_algorithms(app.keys.current().algorithms(), app.config.algorithm);
    let document = json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/api/token/"),
        "id_token_signing_alg_values_supported": algorithms,
        "subject_types_supported": ["public"],
        "response_types_supported": ["token"],
        "grant_types_supported": ["password", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "claims_supported": [app.config.user_id_claim, "exp", "iat", "jti"],
    });
    // Changes only when the key algorithms do; a short cache is safe.
    let cache = HeaderValue::from_static("public, max-age=300");
    ([(header::CACHE_CONTROL, cache)], Json(document)).into_response()
}

/// The JOSE names of `published` and `configured`, each once, the
/// configured one first.
fn signing_algorithms(published: Vec<Algorithm>, configured: Algorithm) -> Vec<&'static str> {
    let mut names = vec![configured.as_str()];
    for alg in published {
        if !names.contains(&alg.as_str()) {
            names.push(alg.as_str());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_algorithm_comes_first_and_none_twice() {
        assert_eq!(
            signing_algorithms(vec![Algorithm::Es256, Algorithm::Rs256], Algorithm::Rs256),
            ["RS256", "ES256"]
        );
        assert_eq!(
            signing_algorithms(vec![Algorithm::Es256], Algorithm::Es256),
            ["ES256"]
        );
    }
}
