//! The partner's JWKS cache against a live issuer: it follows a rotation,
//! keeps its keys while the issuer is down, fetches at most once per
//! cooldown for unknown kids, and never makes a known kid wait for a fetch.

use std::sync::Arc;
use std::time::Duration;

use jwtd::verifier::{Algorithm, Invalid, RemoteOptions, TokenError};
use reqwest::StatusCode;

use super::{
    JwksProxy, PASSWORD, Partner, WITHIN, issuer_with_alice, login_signed_by, remote_verifier,
    rotate_now, verify_concurrently, with_unknown_kid,
};
use crate::helpers::{access_token_not_valid, kid_of, poll_until};

#[tokio::test]
async fn the_partner_follows_a_rotation_without_restarting() {
    let (app, user_id) = issuer_with_alice(|c| c.algorithm = Algorithm::Es256).await;
    let partner = Partner::start(&app, RemoteOptions::default()).await;
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

#[tokio::test]
async fn with_the_issuer_stopped_the_partner_keeps_verifying_with_cached_keys() {
    let (mut app, user_id) = issuer_with_alice(|_| {}).await;
    let proxy = JwksProxy::start(&app).await;
    let cache = Duration::from_secs(10);
    let remote_options = RemoteOptions {
        timeout: Duration::from_secs(5),
        min_cache: cache,
        max_cache: cache,
        unknown_kid_cooldown: Duration::from_secs(30),
    };
    let verifier = remote_verifier(&app, &proxy.url(), remote_options).await;
    let partner = Partner::serve(Arc::new(verifier)).await;
    let remote = partner.verifier.remote().unwrap().clone();
    let pair = app.login_ok("alice", PASSWORD).await;
    partner.expect_hello(&pair.access, &user_id).await;
    app.stop().await;

    // The cache expires while the issuer cannot answer: the background
    // refetch hangs, and known kids verify all along.
    proxy.hold();
    app.advance(cache);
    partner.expect_hello(&pair.access, &user_id).await;
    proxy.wait_for_requests(2).await;
    for _ in 0..20 {
        partner.expect_hello(&pair.access, &user_id).await;
    }
    assert_eq!(proxy.exchanges().len(), 1, "the refetch is still hanging");
    assert_eq!(remote.fetch_count(), 1);
    proxy.release();
    poll_until(WITHIN, "the hanging refetch to fail", async || {
        (remote.fetch_count() == 2).then_some(())
    })
    .await;
    assert_eq!(proxy.exchanges()[1].status, 502, "the issuer is down");

    // Over four more cache lifetimes, each expiry sends one background
    // refetch and unknown kids one per 30 s cooldown; all fail, and known
    // kids keep verifying.
    let mut expected = remote.fetch_count();
    for round in 1..=4 {
        app.advance(cache);
        expected += 1;
        let what = format!("the background refetch of round {round}");
        poll_until(WITHIN, &what, async || {
            partner.expect_hello(&pair.access, &user_id).await;
            (remote.fetch_count() >= expected).then_some(())
        })
        .await;
        partner
            .expect_invalid(&with_unknown_kid(&pair.access))
            .await;
        if round % 3 == 1 {
            expected += 1; // rounds 1 and 4: 30 s apart
        }
        assert_eq!(
            remote.fetch_count(),
            expected,
            "round {round}: one refetch per expiry, one per cooldown for unknown kids"
        );
    }
    assert!(
        proxy.exchanges()[1..].iter().all(|e| e.status == 502),
        "every refetch failed: {:?}",
        proxy.exchanges()
    );
    // Still there, well after the cache's lifetime.
    partner.expect_hello(&pair.access, &user_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_kids_cost_at_most_one_fetch_per_cooldown() {
    let (app, user_id) = issuer_with_alice(|_| {}).await;
    let partner = Partner::start(&app, RemoteOptions::default()).await;
    let remote = partner.verifier.remote().unwrap().clone();
    let pair = app.login_ok("alice", PASSWORD).await;
    assert_eq!(remote.fetch_count(), 1);

    let forged: Vec<String> = (0..1_000).map(|_| with_unknown_kid(&pair.access)).collect();
    let refused = partner.hello_all(forged).await;
    assert_eq!(refused.len(), 1_000);
    for (status, body) in &refused {
        assert_eq!(*status, StatusCode::UNAUTHORIZED);
        assert_eq!(*body, access_token_not_valid("Token is invalid"));
    }
    assert_eq!(
        remote.fetch_count(),
        2,
        "1,000 unknown kids within the 30 s cooldown: one refetch"
    );
    partner.expect_hello(&pair.access, &user_id).await;

    // One fetch in each cooldown window, and none a second before its end.
    let cooldown = Duration::from_secs(5);
    let quick = remote_verifier(
        &app,
        &app.url("/.well-known/jwks.json"),
        RemoteOptions {
            unknown_kid_cooldown: cooldown,
            ..RemoteOptions::default()
        },
    )
    .await;
    let quick_remote = quick.remote().unwrap().clone();
    let unknown_kids = async |n: usize| {
        for _ in 0..n {
            let err = quick
                .verify(&with_unknown_kid(&pair.access))
                .await
                .unwrap_err();
            assert_eq!(err, TokenError::Invalid(Invalid::UnknownKey));
        }
    };
    for window in 0..3 {
        unknown_kids(200).await;
        assert_eq!(quick_remote.fetch_count(), 2 + window, "window {window}");
        app.advance(cooldown - Duration::from_secs(1));
        unknown_kids(100).await;
        assert_eq!(quick_remote.fetch_count(), 2 + window, "window {window}");
        app.advance(Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fetch_does_not_block_verifications_of_known_kids() {
    let (app, user_id) = issuer_with_alice(|_| {}).await;
    let pair = app.login_ok("alice", PASSWORD).await;
    let slow = JwksProxy::start(&app).await;
    let remote_options = RemoteOptions {
        timeout: Duration::from_secs(60),
        ..RemoteOptions::default()
    };
    let verifier = Arc::new(remote_verifier(&app, &slow.url(), remote_options.clone()).await);
    assert_eq!(slow.requests(), 1);

    // An unknown kid starts a fetch that the JWKS server holds.
    slow.hold();
    let forged = with_unknown_kid(&pair.access);
    let unknown = tokio::spawn({
        let verifier = verifier.clone();
        async move { verifier.verify(&forged).await }
    });
    slow.wait_for_requests(2).await;

    // Meanwhile 200 concurrent verifications of a known kid all finish.
    verify_concurrently(&verifier, &pair.access, 200).await;
    assert!(!unknown.is_finished(), "the held fetch is still under way");
    // And through the extractor too.
    let partner = Partner::serve(verifier.clone()).await;
    partner.expect_hello(&pair.access, &user_id).await;
    assert!(!unknown.is_finished(), "the held fetch is still under way");
    assert_eq!(slow.exchanges().len(), 1, "nothing answered while held");

    // The unknown kid waited for its fetch: it ends once that is answered.
    slow.release();
    let result = tokio::time::timeout(WITHIN, unknown)
        .await
        .expect("the unknown kid's verification ends once released")
        .unwrap();
    assert_eq!(
        result.unwrap_err(),
        TokenError::Invalid(Invalid::UnknownKey)
    );
    assert_eq!(slow.exchanges().len(), 2, "its fetch was answered first");
    assert_eq!(verifier.remote().unwrap().fetch_count(), 2);

    // An expired cache is refreshed in the background: a known kid does
    // not wait for that held refresh either.
    let cache = Duration::from_secs(10);
    let expiring = Arc::new(
        remote_verifier(
            &app,
            &slow.url(),
            RemoteOptions {
                min_cache: cache,
                max_cache: cache,
                ..remote_options
            },
        )
        .await,
    );
    let requests = slow.requests();
    slow.hold();
    app.advance(cache);
    verify_concurrently(&expiring, &pair.access, 50).await;
    slow.wait_for_requests(requests + 1).await;
    verify_concurrently(&expiring, &pair.access, 50).await;
    assert_eq!(
        slow.requests(),
        requests + 1,
        "one background refresh at a time"
    );
    let answered = slow.exchanges().len();
    let expiring_remote = expiring.remote().unwrap().clone();
    assert_eq!(expiring_remote.fetch_count(), 1, "the refresh is held");
    slow.release();
    poll_until(WITHIN, "the background refresh to land", async || {
        (expiring_remote.fetch_count() == 2).then_some(())
    })
    .await;
    assert_eq!(slow.exchanges()[answered].status, 304, "nothing changed");
    verify_concurrently(&expiring, &pair.access, 50).await;
    assert_eq!(slow.requests(), requests + 1, "the cache is fresh again");
}
