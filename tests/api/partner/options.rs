//! Verifiers from a PEM or a JWKS document, what they refuse to trust,
//! each verify option, and the clock they verify by.

use std::collections::BTreeMap;
use std::time::Duration;

use jwtd::clock::Clock;
use jwtd::verifier::{
    Algorithm, Invalid, PublicJwk, RemoteOptions, TokenError, Verifier, VerifierError,
    VerifyOptions,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    PASSWORD, WITHIN, issuer_signer, issuer_with_alice, on_clock_of, random_hex, tampered,
    with_header, with_kid,
};
use crate::helpers::kid_of;

#[tokio::test]
async fn from_pem_and_from_jwks_verify_the_issuers_tokens() {
    for algorithm in Algorithm::ALL {
        let (app, user_id) = issuer_with_alice(|c| c.algorithm = algorithm).await;
        let pair = app.login_ok("alice", PASSWORD).await;
        let kid = kid_of(&pair.access);
        let body = app
            .get("/.well-known/jwks.json")
            .await
            .text()
            .await
            .unwrap();
        let options = || on_clock_of(&app);

        // The served JWKS body, as a file a partner was handed.
        let from_jwks = Verifier::from_jwks(&body, options()).expect("JWKS");
        let claims = from_jwks.verify(&pair.access).await.expect("verifies");
        assert_eq!(claims["user_id"], json!(user_id));
        assert_eq!(claims["token_type"], "access");
        assert!(from_jwks.remote().is_none());
        #[derive(Deserialize)]
        struct Who {
            user_id: String,
        }
        let who: Who = from_jwks.verify_as(&pair.access).await.unwrap();
        assert_eq!(who.user_id, user_id);
        assert_eq!(
            from_jwks.verify(&tampered(&pair.access)).await.unwrap_err(),
            TokenError::Invalid(Invalid::BadSignature)
        );
        assert_eq!(
            from_jwks
                .verify(&with_kid(&pair.access, "nobody"))
                .await
                .unwrap_err(),
            TokenError::Invalid(Invalid::UnknownKey)
        );

        // An exported PEM of the key that signed it.
        let pems = exported_pems(&body);
        let own = Verifier::from_pem(&pems[&kid], options()).expect("PEM");
        let claims = own
            .verify(&pair.access)
            .await
            .expect("verifies with its PEM");
        assert_eq!(claims["user_id"], json!(user_id));
        assert_eq!(
            own.verify(&tampered(&pair.access)).await.unwrap_err(),
            TokenError::Invalid(Invalid::BadSignature)
        );
        // The other published key (`next`) refuses it.
        let (other_kid, other_pem) = pems.iter().find(|(k, _)| **k != kid).unwrap();
        let other = Verifier::from_pem(other_pem, options()).unwrap();
        assert_eq!(
            other.verify(&pair.access).await.unwrap_err(),
            TokenError::Invalid(Invalid::BadSignature),
            "signed by {kid}, not {other_kid}"
        );

        // The same from files, as `jwtd keys export` writes them.
        let export = tempfile::tempdir().unwrap();
        let (jwks_file, pem_file) = (
            export.path().join("jwks.json"),
            export.path().join(format!("{kid}.pem")),
        );
        std::fs::write(&jwks_file, &body).unwrap();
        std::fs::write(&pem_file, &pems[&kid]).unwrap();
        for verifier in [
            Verifier::from_jwks_file(&jwks_file, options()).unwrap(),
            Verifier::from_pem_file(&pem_file, options()).unwrap(),
        ] {
            let claims = verifier.verify(&pair.access).await.expect("verifies");
            assert_eq!(claims["user_id"], json!(user_id));
        }
        assert!(matches!(
            Verifier::from_pem_file(&export.path().join("missing.pem"), options()),
            Err(VerifierError::Read { .. })
        ));
    }
}

#[tokio::test]
async fn verifiers_refuse_what_cannot_be_keys() {
    assert!(matches!(
        Verifier::from_pem("not a key", VerifyOptions::default()),
        Err(VerifierError::NotPublicKey(_))
    ));
    assert!(matches!(
        Verifier::from_jwks("{}", VerifyOptions::default()),
        Err(VerifierError::Jwks(_))
    ));
    assert!(matches!(
        Verifier::from_jwks(r#"{"keys":[]}"#, VerifyOptions::default()),
        Err(VerifierError::Jwks(_))
    ));
    // Nothing listens on a port just released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/.well-known/jwks.json");
    let unreachable = Verifier::from_jwks_url(
        &url,
        VerifyOptions::default(),
        RemoteOptions {
            timeout: Duration::from_secs(2),
            ..RemoteOptions::default()
        },
    );
    let unreachable = tokio::time::timeout(WITHIN, unreachable)
        .await
        .expect("an unreachable JWKS URL fails instead of hanging");
    assert!(matches!(unreachable, Err(VerifierError::Fetch(_))));
}

#[tokio::test]
async fn verify_reads_the_clock_it_is_given() {
    let (app, user_id) = issuer_with_alice(|_| {}).await;
    let pair = app.login_ok("alice", PASSWORD).await;
    let jwks = app
        .get("/.well-known/jwks.json")
        .await
        .text()
        .await
        .unwrap();
    let on_clock = Verifier::from_jwks(&jwks, on_clock_of(&app)).unwrap();
    let on_the_wall = Verifier::from_jwks(&jwks, VerifyOptions::default()).unwrap();
    let issued_at = app.clock.now();

    app.advance(app.config.access_token_lifetime - Duration::from_secs(1));
    let claims = on_clock
        .verify(&pair.access)
        .await
        .expect("not expired yet");
    assert_eq!(claims["user_id"], json!(user_id));
    app.advance(Duration::from_secs(1));
    assert_eq!(
        on_clock.verify(&pair.access).await.unwrap_err(),
        TokenError::Expired,
        "expired on the verifier's clock"
    );
    on_clock
        .verify_at(&pair.access, issued_at)
        .await
        .expect("verify_at takes the time it is given");
    on_the_wall
        .verify(&pair.access)
        .await
        .expect("by default, the wall clock: not five minutes later");
}

#[tokio::test]
async fn each_verify_option_accepts_and_refuses() {
    let (app, _) = issuer_with_alice(|_| {}).await;
    let pair = app.login_ok("alice", PASSWORD).await;
    let jwks = app
        .get("/.well-known/jwks.json")
        .await
        .text()
        .await
        .unwrap();
    let signer = issuer_signer(&app).await;
    let sign = |claims: Value| signer.sign(claims.to_string().as_bytes()).expect("signed");
    let now = app.clock.now();
    let base = json!({
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": random_hex(),
        "user_id": "1",
    });
    let with = |extra: Value| {
        let mut claims = base.clone();
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        sign(claims)
    };
    let verifier = |options: VerifyOptions| Verifier::from_jwks(&jwks, options).unwrap();
    let accepts = async |options: VerifyOptions, token: &str| {
        verifier(options)
            .verify(token)
            .await
            .unwrap_or_else(|err| panic!("refused ({err:?})"));
    };
    let refuses = async |options: VerifyOptions, token: &str, expected: TokenError| {
        assert_eq!(verifier(options).verify(token).await.unwrap_err(), expected);
    };
    let defaults = || on_clock_of(&app);

    // Issuer.
    let from_us = with(json!({"iss": "https://auth.example.com"}));
    let issuer = |iss: &str| VerifyOptions {
        issuer: Some(iss.into()),
        ..defaults()
    };
    accepts(issuer("https://auth.example.com"), &from_us).await;
    accepts(defaults(), &from_us).await;
    let wrong_issuer = TokenError::Invalid(Invalid::WrongIssuer);
    refuses(issuer("https://other.example.com"), &from_us, wrong_issuer).await;
    refuses(
        issuer("https://auth.example.com"),
        &pair.access,
        wrong_issuer,
    )
    .await;

    // Audience.
    let for_api = with(json!({"aud": "api"}));
    let for_several = with(json!({"aud": ["billing", "api"]}));
    let audience = |aud: &str| VerifyOptions {
        audience: Some(aud.into()),
        ..defaults()
    };
    let wrong_audience = TokenError::Invalid(Invalid::WrongAudience);
    accepts(audience("api"), &for_api).await;
    accepts(audience("api"), &for_several).await;
    refuses(audience("billing"), &for_api, wrong_audience).await;
    refuses(audience("api"), &pair.access, wrong_audience).await;
    refuses(defaults(), &for_api, wrong_audience).await;

    // Leeway, on exp and on iat/nbf.
    let just_expired = with(json!({"exp": now - 10}));
    let from_the_future = with(json!({"iat": now + 30}));
    let not_before = with(json!({"nbf": now + 30}));
    let leeway = VerifyOptions {
        leeway: Duration::from_secs(60),
        ..defaults()
    };
    refuses(defaults(), &just_expired, TokenError::Expired).await;
    accepts(leeway.clone(), &just_expired).await;
    let not_yet = TokenError::Invalid(Invalid::NotYetValid);
    refuses(defaults(), &from_the_future, not_yet).await;
    refuses(defaults(), &not_before, not_yet).await;
    accepts(leeway.clone(), &from_the_future).await;
    accepts(leeway, &not_before).await;

    // Algorithms: the issuer signs RS256 here.
    let only = |alg: Algorithm| VerifyOptions {
        algorithms: vec![alg],
        ..defaults()
    };
    accepts(only(Algorithm::Rs256), &pair.access).await;
    refuses(
        only(Algorithm::Es256),
        &pair.access,
        TokenError::Invalid(Invalid::WrongAlgorithm),
    )
    .await;
    // A header naming another algorithm than the key's is refused.
    refuses(
        defaults(),
        &with_header(
            &pair.access,
            json!({"alg": "ES256", "typ": "JWT", "kid": kid_of(&pair.access)}),
        ),
        TokenError::Invalid(Invalid::WrongAlgorithm),
    )
    .await;

    // Token type: access by default; another, or any.
    let of_type = |token_type: Option<&str>| VerifyOptions {
        token_type: token_type.map(str::to_owned),
        ..defaults()
    };
    refuses(defaults(), &pair.refresh, TokenError::WrongType).await;
    accepts(of_type(Some("refresh")), &pair.refresh).await;
    refuses(
        of_type(Some("refresh")),
        &pair.access,
        TokenError::WrongType,
    )
    .await;
    accepts(of_type(None), &pair.refresh).await;
    accepts(of_type(None), &pair.access).await;
    let untyped = sign(json!({"exp": now + 300, "iat": now, "jti": random_hex(), "user_id": "1"}));
    refuses(defaults(), &untyped, TokenError::NoType).await;
    accepts(of_type(None), &untyped).await;
    let no_id = sign(json!({"token_type": "access", "exp": now + 300, "iat": now}));
    refuses(defaults(), &no_id, TokenError::NoId).await;
}

/// kid → PEM of each key of a served JWKS, as `jwtd keys export` writes.
fn exported_pems(jwks: &str) -> BTreeMap<String, String> {
    let document: Value = serde_json::from_str(jwks).unwrap();
    document["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            let public = match key["kty"].as_str().unwrap() {
                "RSA" => PublicJwk::Rsa {
                    n: key["n"].as_str().unwrap().into(),
                    e: key["e"].as_str().unwrap().into(),
                },
                "OKP" => PublicJwk::Okp {
                    crv: key["crv"].as_str().unwrap().into(),
                    x: key["x"].as_str().unwrap().into(),
                },
                _ => PublicJwk::Ec {
                    crv: key["crv"].as_str().unwrap().into(),
                    x: key["x"].as_str().unwrap().into(),
                    y: key["y"].as_str().unwrap().into(),
                },
            };
            let kid = key["kid"].as_str().unwrap().to_owned();
            let alg: Algorithm = key["alg"].as_str().unwrap().parse().unwrap();
            assert_eq!(public.thumbprint(), kid, "the kid is the thumbprint");
            (kid, public.to_pem(alg).expect("a PEM"))
        })
        .collect()
}
