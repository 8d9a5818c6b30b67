//! Issuer and partner together, on real sockets: a jwtd issuer
//! from the `TestApp` and, in the same process, a partner service on
//! 127.0.0.1:0 that trusts it through `Verifier::from_jwks_url` and the
//! `Authenticated<C>` extractor, exactly as `examples/partner.rs` does.
//! The partner lives on the wall clock; the issuer's manual clock starts at
//! the wall clock and is never moved here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::clock::Clock;
use jwtd::config::Config;
use jwtd::keys::MasterKey;
use jwtd::keys::lifecycle::{self, KeyMaking};
use jwtd::keys::ring::KeySet;
use jwtd::keys::schedule::RotationPolicy;
use jwtd::store::Store;
use jwtd::tokens::{TokenService, TokenType, new_jti};
use jwtd::verifier::{
    Algorithm, Authenticated, Invalid, RemoteOptions, TokenError, Verifier, VerifierError,
    VerifyOptions,
};
use jwtd::verifier::{Algorithm as IssuerAlgorithm, PublicJwk};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::{JoinHandle, JoinSet};

use crate::helpers::{Pair, TestApp, header_of, kid_of, spawn_app_with};

const PASSWORD: &str = "correct horse";
/// How long a bounded poll waits before the test fails.
const POLL_DEADLINE: Duration = Duration::from_secs(6);
/// How fast a verification that must not wait for any fetch has to be,
/// with room for a loaded 2-core CI machine (they take microseconds).
const NOT_BLOCKED: Duration = Duration::from_millis(600);

// ---------------------------------------------------------------------------
// (a) Rotation: the partner follows without a restart.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_partner_follows_a_rotation_without_restarting() {
    let (app, user_id) = issuer_with_alice(|c| c.algorithm = IssuerAlgorithm::Es256).await;
    let partner = Partner::start(&app, VerifyOptions::default(), RemoteOptions::default()).await;
    let remote = partner.verifier.remote().expect("built from a URL").clone();
    assert_eq!(remote.fetch_count(), 1, "one fetch at start-up");

    let first = app.login_ok("alice", PASSWORD).await;
    let first_kid = kid_of(&first.access);
    partner.expect_hello(&first.access, &user_id).await;

    // First rotation: the new active key was the published `next` key, so
    // the partner knows it already and needs no fetch.
    let second_kid = rotate_now(&app).await;
    assert_ne!(second_kid, first_kid);
    let second = login_signed_by(&app, &second_kid).await;
    partner.expect_hello(&second.access, &user_id).await;
    assert_eq!(
        remote.fetch_count(),
        1,
        "the prepublished key was already cached"
    );

    // Second rotation: the key that signs now was created by the first
    // rotation, after the partner's fetch. Its unknown kid makes the
    // partner refetch once, and the token verifies.
    let third_kid = rotate_now(&app).await;
    assert!(
        !remote.keys_for(None).await.contains(&third_kid),
        "the partner has not seen {third_kid} yet"
    );
    let third = login_signed_by(&app, &third_kid).await;
    partner.expect_hello(&third.access, &user_id).await;
    assert_eq!(
        remote.fetch_count(),
        2,
        "one refetch for the unknown kid, then the key is cached"
    );
    partner.expect_hello(&third.access, &user_id).await;
    assert_eq!(remote.fetch_count(), 2);

    // Tokens of the keys that stopped signing still verify: they are
    // `retiring`, still published, until their tokens have expired.
    partner.expect_hello(&first.access, &user_id).await;
    partner.expect_hello(&second.access, &user_id).await;
    assert_eq!(remote.fetch_count(), 2);
}

// ---------------------------------------------------------------------------
// (b) The issuer stopped: cached keys keep working, fetches don't block.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn with_the_issuer_stopped_the_partner_keeps_verifying_with_cached_keys() {
    let (mut app, user_id) = issuer_with_alice(|_| {}).await;
    let remote_options = RemoteOptions {
        timeout: Duration::from_secs(2),
        min_cache: Duration::from_millis(300),
        max_cache: Duration::from_millis(300),
        unknown_kid_cooldown: Duration::from_millis(300),
    };
    let partner = Partner::start(&app, VerifyOptions::default(), remote_options).await;
    let remote = partner.verifier.remote().unwrap().clone();
    let pair = app.login_ok("alice", PASSWORD).await;
    partner.expect_hello(&pair.access, &user_id).await;

    app.stop().await;
    let before = remote.fetch_count();
    // Over three cache lifetimes (each expiry sends a background refetch,
    // which fails), plus unknown kids past their cooldown (each a fetch
    // that fails): known kids keep verifying, quickly.
    let until = Instant::now() + Duration::from_millis(1_200);
    let mut rounds = 0;
    while Instant::now() < until {
        let started = Instant::now();
        partner.expect_hello(&pair.access, &user_id).await;
        let (status, body, _) = partner
            .hello(Some(&format!(
                "Bearer {}",
                with_kid(&pair.access, &new_jti(0))
            )))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, invalid_for_access("Token is invalid"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "an unreachable issuer must not hold verifications up: {:?}",
            started.elapsed()
        );
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rounds >= 5, "only {rounds} rounds");
    assert!(
        remote.fetch_count() >= before + 2,
        "the partner did try to refetch (and failed): {} → {}",
        before,
        remote.fetch_count()
    );
    // Still there, well after the cache's lifetime.
    partner.expect_hello(&pair.access, &user_id).await;
}

// ---------------------------------------------------------------------------
// (c) Unknown kids: one fetch per cooldown; slow fetches block nobody.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_kids_cost_at_most_one_fetch_per_cooldown() {
    let (app, user_id) = issuer_with_alice(|_| {}).await;
    let partner = Partner::start(&app, VerifyOptions::default(), RemoteOptions::default()).await;
    let remote = partner.verifier.remote().unwrap().clone();
    let pair = app.login_ok("alice", PASSWORD).await;
    assert_eq!(remote.fetch_count(), 1);

    let forged: Vec<String> = (0..1_000)
        .map(|_| with_kid(&pair.access, &new_jti(0)))
        .collect();
    let refused = partner.hello_all(forged).await;
    assert_eq!(refused.len(), 1_000);
    for (status, body) in &refused {
        assert_eq!(*status, StatusCode::UNAUTHORIZED);
        assert_eq!(*body, invalid_for_access("Token is invalid"));
    }
    assert_eq!(
        remote.fetch_count(),
        2,
        "1,000 unknown kids within the 30 s cooldown: one refetch"
    );
    partner.expect_hello(&pair.access, &user_id).await;

    // With a 1 s cooldown: one fetch in each cooldown window.
    let quick = Verifier::from_jwks_url(
        &app.url("/.well-known/jwks.json"),
        VerifyOptions::default(),
        RemoteOptions {
            unknown_kid_cooldown: Duration::from_secs(1),
            ..RemoteOptions::default()
        },
    )
    .await
    .expect("the partner fetches the JWKS");
    let quick_remote = quick.remote().unwrap().clone();
    for window in 0..2 {
        let started = Instant::now();
        for _ in 0..200 {
            let err = quick
                .verify(&with_kid(&pair.access, &new_jti(0)))
                .await
                .unwrap_err();
            assert_eq!(err, TokenError::Invalid(Invalid::UnknownKey));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "one window");
        assert_eq!(quick_remote.fetch_count(), 2 + window);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fetch_does_not_block_verifications_of_known_kids() {
    let (app, user_id) = issuer_with_alice(|_| {}).await;
    let pair = app.login_ok("alice", PASSWORD).await;
    let slow = JwksProxy::start(&app).await;
    let verifier = Arc::new(
        Verifier::from_jwks_url(
            &slow.url(),
            VerifyOptions::default(),
            RemoteOptions {
                timeout: Duration::from_secs(10),
                ..RemoteOptions::default()
            },
        )
        .await
        .expect("the first fetch"),
    );
    assert_eq!(slow.requests(), 1);

    // An unknown kid starts a fetch that the JWKS server answers in 2 s.
    slow.set_delay(Duration::from_secs(2));
    let forged = with_kid(&pair.access, &new_jti(0));
    let unknown = tokio::spawn({
        let verifier = verifier.clone();
        async move {
            let started = Instant::now();
            let result = verifier.verify(&forged).await;
            (result, started.elapsed())
        }
    });
    slow.wait_for_requests(2).await;

    // Meanwhile 200 concurrent verifications of a known kid: none waits.
    let elapsed = verify_concurrently(&verifier, &pair.access, 200).await;
    assert!(
        elapsed < NOT_BLOCKED,
        "known-kid verifications waited for the slow fetch: {elapsed:?}"
    );
    assert!(!unknown.is_finished(), "the slow fetch is still under way");
    // And through the extractor too.
    let partner = Partner::serve(verifier.clone()).await;
    let started = Instant::now();
    partner.expect_hello(&pair.access, &user_id).await;
    assert!(started.elapsed() < NOT_BLOCKED);
    assert!(!unknown.is_finished(), "the slow fetch is still under way");

    let (result, took) = unknown.await.unwrap();
    assert_eq!(
        result.unwrap_err(),
        TokenError::Invalid(Invalid::UnknownKey)
    );
    assert!(
        took >= Duration::from_millis(1_500),
        "the unknown kid did wait for its fetch: {took:?}"
    );
    assert_eq!(verifier.remote().unwrap().fetch_count(), 2);

    // An expired cache is refreshed in the background: a known kid does
    // not wait for that slow refresh either.
    let expiring = Arc::new(
        Verifier::from_jwks_url(
            &slow.url(),
            VerifyOptions::default(),
            RemoteOptions {
                timeout: Duration::from_secs(10),
                min_cache: Duration::from_millis(200),
                max_cache: Duration::from_millis(200),
                ..RemoteOptions::default()
            },
        )
        .await
        .expect("the first fetch, slow"),
    );
    let requests = slow.requests();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elapsed = verify_concurrently(&expiring, &pair.access, 50).await;
    assert!(
        elapsed < NOT_BLOCKED,
        "known kids waited for a background refresh: {elapsed:?}"
    );
    slow.wait_for_requests(requests + 1).await;
    let elapsed = verify_concurrently(&expiring, &pair.access, 50).await;
    assert!(elapsed < NOT_BLOCKED, "{elapsed:?}");
    assert_eq!(
        slow.requests(),
        requests + 1,
        "one background refresh at a time"
    );
}

// ---------------------------------------------------------------------------
// (d) Revocation reaches the partner when its cache expires.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_revoked_key_stops_verifying_once_the_partners_cache_expires() {
    let (app, user_id) = issuer_with_alice(|c| {
        c.jwks_max_age = Duration::from_secs(1);
        c.key_prepublish = Duration::from_secs(3_600);
    })
    .await;
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=1");
    let partner = Partner::start(
        &app,
        VerifyOptions::default(),
        RemoteOptions {
            min_cache: Duration::from_secs(1),
            ..RemoteOptions::default()
        },
    )
    .await;
    let pair = app.login_ok("alice", PASSWORD).await;
    let compromised = kid_of(&pair.access);
    partner.expect_hello(&pair.access, &user_id).await;

    let (store, master) = open_keys(&app).await;
    let revoked_at = Instant::now();
    lifecycle::revoke(
        &store,
        &master,
        making(&app.config),
        &compromised,
        app.clock.as_ref(),
    )
    .await
    .expect("revoke the active key");
    store.close().await;

    let body = poll(
        "the partner to refuse the revoked key's token",
        async || {
            let (status, body, _) = partner
                .hello(Some(&format!("Bearer {}", pair.access)))
                .await;
            (status == StatusCode::UNAUTHORIZED).then_some(body)
        },
    )
    .await;
    let took = revoked_at.elapsed();
    assert_eq!(body, invalid_for_access("Token is invalid"));
    // Issuer reload (≤ 1 s) + max-age (1 s) + one background refetch.
    assert!(took < Duration::from_secs(4), "refused only after {took:?}");
    // For good: it stays refused.
    for _ in 0..3 {
        let (status, _, _) = partner
            .hello(Some(&format!("Bearer {}", pair.access)))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The key that took over signs tokens the partner accepts.
    let fresh = poll("a token signed by the new active key", async || {
        let pair = app.login_ok("alice", PASSWORD).await;
        (kid_of(&pair.access) != compromised).then_some(pair)
    })
    .await;
    partner.expect_hello(&fresh.access, &user_id).await;
}

// ---------------------------------------------------------------------------
// (e) The extractor's 401s are the issuer's.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_extractor_answers_401s_like_the_issuers_protected_views() {
    let (app, user_id) = issuer_with_alice(|_| {}).await;
    let partner = Partner::start(&app, VerifyOptions::default(), RemoteOptions::default()).await;
    let pair = app.login_ok("alice", PASSWORD).await;
    let set = key_set(&app).await;
    let expired = TokenService::new(&app.config)
        .issue(&set, TokenType::Access, &user_id, app.clock.now() - 3_600)
        .expect("an access token issued an hour ago")
        .0;

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
            invalid_for_access("Token is invalid"),
        ),
        (
            "a tampered token",
            Some(format!("Bearer {}", tampered(&pair.access))),
            invalid_for_access("Token is invalid"),
        ),
        (
            "an expired token",
            Some(format!("Bearer {expired}")),
            invalid_for_access("Token is expired"),
        ),
        (
            "a refresh token",
            Some(format!("Bearer {}", pair.refresh)),
            invalid_for_access("Token has wrong type"),
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

// ---------------------------------------------------------------------------
// (f) PEM and JWKS verifiers, and each option.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn from_pem_and_from_jwks_verify_the_issuers_tokens() {
    for algorithm in [IssuerAlgorithm::Rs256, IssuerAlgorithm::Es256] {
        let (app, user_id) = issuer_with_alice(|c| c.algorithm = algorithm).await;
        let pair = app.login_ok("alice", PASSWORD).await;
        let kid = kid_of(&pair.access);
        let body = app
            .get("/.well-known/jwks.json")
            .await
            .text()
            .await
            .unwrap();

        // The served JWKS body, as a file a partner was handed.
        let from_jwks = Verifier::from_jwks(&body, VerifyOptions::default()).expect("JWKS");
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
        let own = Verifier::from_pem(&pems[&kid], VerifyOptions::default()).expect("PEM");
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
        let other = Verifier::from_pem(other_pem, VerifyOptions::default()).unwrap();
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
            Verifier::from_jwks_file(&jwks_file, VerifyOptions::default()).unwrap(),
            Verifier::from_pem_file(&pem_file, VerifyOptions::default()).unwrap(),
        ] {
            let claims = verifier.verify(&pair.access).await.expect("verifies");
            assert_eq!(claims["user_id"], json!(user_id));
        }
        assert!(matches!(
            Verifier::from_pem_file(&export.path().join("missing.pem"), VerifyOptions::default()),
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
    let started = Instant::now();
    let unreachable = Verifier::from_jwks_url(
        &format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
        VerifyOptions::default(),
        RemoteOptions {
            timeout: Duration::from_secs(2),
            ..RemoteOptions::default()
        },
    )
    .await;
    assert!(matches!(unreachable, Err(VerifierError::Fetch(_))));
    assert!(started.elapsed() < Duration::from_secs(5));
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
    let set = key_set(&app).await;
    let sign = |claims: Value| {
        set.signer
            .as_ref()
            .expect("an active key")
            .sign(claims.to_string().as_bytes())
            .expect("signed")
    };
    let now = jwtd::clock::SystemClock.now();
    let base = json!({
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": new_jti(now),
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
    let defaults = VerifyOptions::default;

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
    let untyped = sign(json!({"exp": now + 300, "iat": now, "jti": new_jti(now), "user_id": "1"}));
    refuses(defaults(), &untyped, TokenError::NoType).await;
    accepts(of_type(None), &untyped).await;
    let no_id = sign(json!({"token_type": "access", "exp": now + 300, "iat": now}));
    refuses(defaults(), &no_id, TokenError::NoId).await;
}

// ---------------------------------------------------------------------------
// (g) Revalidation: If-None-Match, 304, and the keys kept.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_partner_revalidates_with_if_none_match_and_keeps_its_keys_on_304() {
    let (app, user_id) = issuer_with_alice(|_| {}).await;
    let pair = app.login_ok("alice", PASSWORD).await;
    let proxy = JwksProxy::start(&app).await;
    let verifier = Verifier::from_jwks_url(
        &proxy.url(),
        VerifyOptions::default(),
        RemoteOptions {
            min_cache: Duration::from_millis(500),
            max_cache: Duration::from_millis(500),
            ..RemoteOptions::default()
        },
    )
    .await
    .expect("the first fetch");
    let partner = Partner::serve(Arc::new(verifier)).await;
    let first = proxy.exchanges()[0].clone();
    assert_eq!(first.if_none_match, None, "nothing to revalidate at first");
    assert_eq!(first.status, 200);
    let etag = first.etag.clone().expect("the issuer sends an ETag");

    for round in 1..=2 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let seen = proxy.exchanges().len();
        // The cache has expired: this verification still succeeds with
        // the cached keys and starts a revalidation in the background.
        partner.expect_hello(&pair.access, &user_id).await;
        proxy.wait_for_requests(seen as u64 + 1).await;
        let exchange = proxy.exchanges()[seen].clone();
        assert_eq!(
            exchange.if_none_match.as_deref(),
            Some(etag.as_str()),
            "revalidation {round} names the cached ETag"
        );
        assert_eq!(exchange.status, 304, "nothing changed: 304");
        partner.expect_hello(&pair.access, &user_id).await;
    }
    assert!(
        proxy.exchanges()[1..].iter().all(|e| e.status == 304),
        "only 304s while nothing changed: {:?}",
        proxy.exchanges()
    );

    // Once the key set changes, the next revalidation gets the new body.
    let new_kid = rotate_now(&app).await;
    let rotated = login_signed_by(&app, &new_kid).await;
    let seen = proxy.exchanges().len();
    let changed = poll("a revalidation that gets the new key set", async || {
        partner.expect_hello(&rotated.access, &user_id).await;
        proxy
            .exchanges()
            .into_iter()
            .skip(seen)
            .find(|e| e.status == 200)
    })
    .await;
    assert_eq!(changed.if_none_match.as_deref(), Some(etag.as_str()));
    assert_ne!(changed.etag.as_deref(), Some(etag.as_str()));
    assert!(
        changed.etag.is_some(),
        "a changed key set is sent whole, with its new ETag"
    );
    partner.expect_hello(&pair.access, &user_id).await;
}

// ---------------------------------------------------------------------------
// The partner service under test, as examples/partner.rs builds it.
// ---------------------------------------------------------------------------

/// The partner's state; the extractor finds the verifier through `FromRef`.
#[derive(Clone)]
struct PartnerState {
    verifier: Arc<Verifier>,
}

impl FromRef<PartnerState> for Arc<Verifier> {
    fn from_ref(state: &PartnerState) -> Self {
        Arc::clone(&state.verifier)
    }
}

/// The claims the partner reads.
#[derive(Deserialize)]
struct Claims {
    user_id: String,
}

async fn hello(Authenticated(claims): Authenticated<Claims>) -> Json<Value> {
    Json(json!({"user_id": claims.user_id}))
}

/// A partner service on 127.0.0.1:0, stopped when dropped.
struct Partner {
    addr: SocketAddr,
    verifier: Arc<Verifier>,
    client: reqwest::Client,
    server: JoinHandle<()>,
}

impl Partner {
    /// A partner trusting `app`'s live JWKS.
    async fn start(app: &TestApp, options: VerifyOptions, remote: RemoteOptions) -> Partner {
        let verifier = Verifier::from_jwks_url(&app.url("/.well-known/jwks.json"), options, remote)
            .await
            .expect("the partner fetches the issuer's JWKS");
        Self::serve(Arc::new(verifier)).await
    }

    async fn serve(verifier: Arc<Verifier>) -> Partner {
        let router = Router::new()
            .route("/hello", get(hello))
            .with_state(PartnerState {
                verifier: verifier.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("partner serves");
        });
        Partner {
            addr,
            verifier,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            server,
        }
    }

    /// `GET /hello` with this `Authorization` header: status, JSON body and
    /// `WWW-Authenticate`.
    async fn hello(&self, authorization: Option<&str>) -> (StatusCode, Value, Option<String>) {
        hello_with(&self.client, self.addr, authorization).await
    }

    /// Panics unless `/hello` accepts `token` as `user_id`'s.
    async fn expect_hello(&self, token: &str, user_id: &str) {
        let (status, body, _) = self.hello(Some(&format!("Bearer {token}"))).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the partner refused the token: {body}"
        );
        assert_eq!(body, json!({"user_id": user_id}));
    }

    /// `GET /hello` for every token, 25 requests at a time.
    async fn hello_all(&self, tokens: Vec<String>) -> Vec<(StatusCode, Value)> {
        let queue = Arc::new(Mutex::new(tokens));
        let mut workers = JoinSet::new();
        for _ in 0..25 {
            let (queue, client, addr) = (queue.clone(), self.client.clone(), self.addr);
            workers.spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let Some(token) = queue.lock().unwrap().pop() else {
                        break answers;
                    };
                    let (status, body, _) =
                        hello_with(&client, addr, Some(&format!("Bearer {token}"))).await;
                    answers.push((status, body));
                }
            });
        }
        let mut all = Vec::new();
        while let Some(answers) = workers.join_next().await {
            all.extend(answers.unwrap());
        }
        all
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn hello_with(
    client: &reqwest::Client,
    addr: SocketAddr,
    authorization: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = client.get(format!("http://{addr}/hello"));
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let response = request.send().await.expect("the partner answers");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body, challenge)
}

/// Verifies `token` `n` times concurrently; all must pass. Returns how long
/// they took together.
async fn verify_concurrently(verifier: &Arc<Verifier>, token: &str, n: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (verifier, token) = (verifier.clone(), token.to_owned());
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().expect("a known kid verifies");
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------
// A JWKS server of our own in front of the issuer: counts requests, records
// the revalidation headers and statuses, and can answer slowly.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Exchange {
    if_none_match: Option<String>,
    status: u16,
    etag: Option<String>,
}

struct ProxyShared {
    upstream: String,
    client: reqwest::Client,
    delay_ms: AtomicU64,
    requests: AtomicU64,
    exchanges: Mutex<Vec<Exchange>>,
}

struct JwksProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    server: JoinHandle<()>,
}

impl JwksProxy {
    async fn start(app: &TestApp) -> JwksProxy {
        let shared = Arc::new(ProxyShared {
            upstream: app.url("/.well-known/jwks.json"),
            client: reqwest::Client::new(),
            delay_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            exchanges: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/jwks.json", get(proxy_jwks))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("proxy serves");
        });
        JwksProxy {
            addr,
            shared,
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Requests received so far (answered or not).
    fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Answered requests, in order.
    fn exchanges(&self) -> Vec<Exchange> {
        self.shared.exchanges.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` requests have been answered, or received
    /// when the proxy is slow.
    async fn wait_for_requests(&self, n: u64) {
        let slow = self.shared.delay_ms.load(Ordering::SeqCst) > 0;
        poll(&format!("JWKS request #{n}"), async || {
            let seen = if slow {
                self.requests()
            } else {
                self.exchanges().len() as u64
            };
            (seen >= n).then_some(())
        })
        .await;
    }
}

impl Drop for JwksProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn proxy_jwks(State(shared): State<Arc<ProxyShared>>, headers: HeaderMap) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .map(|v| v.to_str().unwrap().to_owned());
    let mut request = shared.client.get(&shared.upstream);
    if let Some(tag) = &if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    let upstream = request.send().await.expect("the issuer answers the proxy");
    let status = upstream.status().as_u16();
    let mut response = AxumStatus::from_u16(status).unwrap().into_response();
    for name in [header::ETAG, header::CACHE_CONTROL, header::CONTENT_TYPE] {
        if let Some(value) = upstream.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    let etag = upstream
        .headers()
        .get(header::ETAG)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = upstream.bytes().await.unwrap();
    *response.body_mut() = axum::body::Body::from(body);
    shared.exchanges.lock().unwrap().push(Exchange {
        if_none_match,
        status,
        etag,
    });
    response
}

// ---------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------

/// An issuer configured by `configure`, with user alice; returns her id.
async fn issuer_with_alice(configure: impl FnOnce(&mut Config)) -> (TestApp, String) {
    let app = spawn_app_with(configure).await;
    let id = app.add_user("alice", PASSWORD).await;
    (app, id.to_string())
}

fn making(config: &Config) -> KeyMaking {
    KeyMaking {
        policy: RotationPolicy::new(config),
        rsa_bits: config.rsa_bits,
    }
}

async fn open_keys(app: &TestApp) -> (Store, MasterKey) {
    let store = Store::open(&app.database_path()).await.unwrap();
    let master = MasterKey::load(&app.config.master_key).unwrap();
    (store, master)
}

/// The issuer's key set as its store holds it now (to sign test tokens
/// with its active key).
async fn key_set(app: &TestApp) -> KeySet {
    let (store, master) = open_keys(app).await;
    let (version, keys) = store.keys_with_version().await.unwrap();
    store.close().await;
    KeySet::build(
        version,
        &keys,
        &master,
        None,
        &RotationPolicy::new(&app.config),
    )
    .expect("the key set builds")
}

/// `keys rotate --now` on the issuer; returns the kid that signs now.
async fn rotate_now(app: &TestApp) -> String {
    let (store, master) = open_keys(app).await;
    lifecycle::rotate(
        &store,
        &master,
        making(&app.config),
        true,
        app.clock.as_ref(),
    )
    .await
    .expect("rotate");
    let (_, keys) = store.keys_with_version().await.unwrap();
    store.close().await;
    keys.iter()
        .find(|k| k.state == jwtd::store::KeyState::Active)
        .expect("an active key")
        .kid
        .clone()
}

/// Logs alice in until the running issuer signs with `kid` (it reloads its
/// keys within a second).
async fn login_signed_by(app: &TestApp, kid: &str) -> Pair {
    poll(&format!("the issuer to sign with {kid}"), async || {
        let pair = app.login_ok("alice", PASSWORD).await;
        (kid_of(&pair.access) == kid).then_some(pair)
    })
    .await
}

/// Polls `probe` until it finds something, for at most [`POLL_DEADLINE`].
async fn poll<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "not within {POLL_DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `token` with its header replaced by `header` (signature kept).
fn with_header(token: &str, header: Value) -> String {
    let (_, rest) = token.split_once('.').expect("a JWS");
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// `token` with another kid in its header (signature kept).
fn with_kid(token: &str, kid: &str) -> String {
    let mut header = header_of(token);
    header["kid"] = json!(kid);
    with_header(token, header)
}

/// `token` with one payload claim changed (signature kept).
fn tampered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["user_id"] = json!("999999");
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

/// kid → PEM of each key of a served JWKS, as `jwtd keys export` writes.
fn exported_pems(jwks: &str) -> std::collections::BTreeMap<String, String> {
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
                _ => PublicJwk::Ec {
                    crv: key["crv"].as_str().unwrap().into(),
                    x: key["x"].as_str().unwrap().into(),
                    y: key["y"].as_str().unwrap().into(),
                },
            };
            let kid = key["kid"].as_str().unwrap().to_owned();
            assert_eq!(public.thumbprint(), kid, "the kid is the thumbprint");
            (kid, public.to_pem().expect("a PEM"))
        })
        .collect()
}

/// simplejwt's body for a bad token at a protected view.
fn invalid_for_access(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}
