//! What the issuer changes reaches the partner through its cache: a
//! revoked key once the cache expires, a new key set on revalidation.

use std::sync::Arc;
use std::time::Duration;

use jwtd::verifier::RemoteOptions;
use reqwest::StatusCode;

use super::{
    JwksProxy, PASSWORD, Partner, WITHIN, issuer_with_alice, login_signed_by, remote_verifier,
    rotate_now,
};
use crate::helpers::{access_token_not_valid, kid_of, poll_until};

#[tokio::test]
async fn a_revoked_key_stops_verifying_once_the_partners_cache_expires() {
    let max_age = Duration::from_secs(60);
    let (app, user_id) = issuer_with_alice(|c| {
        c.jwks_max_age = max_age;
        c.key_prepublish = Duration::from_secs(3_600);
    })
    .await;
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=60");
    // min_cache (10 s) is shorter: the issuer's max-age governs.
    let partner = Partner::start(&app, RemoteOptions::default()).await;
    let remote = partner.verifier.remote().unwrap().clone();
    let pair = app.login_ok("alice", PASSWORD).await;
    let compromised = kid_of(&pair.access);
    partner.expect_hello(&pair.access, &user_id).await;

    app.jwtd(&["keys", "revoke", &compromised], None).await.ok();
    poll_until(
        WITHIN,
        "the issuer to unpublish the revoked key",
        async || {
            let jwks = app.jwks().await;
            let keys = jwks["keys"].as_array().unwrap();
            (!keys.iter().any(|key| key["kid"] == compromised.as_str())).then_some(())
        },
    )
    .await;

    // Until its cache expires, the partner trusts the keys it has.
    app.advance(max_age - Duration::from_secs(1));
    partner.expect_hello(&pair.access, &user_id).await;
    assert_eq!(remote.fetch_count(), 1, "the cache is still fresh");

    // Once it has expired, the background refetch brings the key set
    // without the revoked key, and its tokens are refused.
    app.advance(Duration::from_secs(1));
    let refused = "the partner to refuse the revoked key's token";
    let (body, _) = poll_until(WITHIN, refused, async || {
        let (status, body, _) = partner
            .hello(Some(&format!("Bearer {}", pair.access)))
            .await;
        (status == StatusCode::UNAUTHORIZED).then_some(body)
    })
    .await;
    assert_eq!(body, access_token_not_valid("Token is invalid"));
    assert_eq!(
        remote.fetch_count(),
        3,
        "the background refetch, then one refetch for the kid it no longer has"
    );
    // For good: it stays refused.
    for _ in 0..3 {
        partner.expect_invalid(&pair.access).await;
    }
    // The key that took over signs tokens the partner accepts.
    let (fresh, _) = poll_until(WITHIN, "a token signed by the new active key", async || {
        let pair = app.login_ok("alice", PASSWORD).await;
        (kid_of(&pair.access) != compromised).then_some(pair)
    })
    .await;
    partner.expect_hello(&fresh.access, &user_id).await;
    assert_eq!(
        remote.fetch_count(),
        3,
        "the new key was in the refetched set"
    );
}

#[tokio::test]
async fn the_partner_revalidates_with_if_none_match_and_keeps_its_keys_on_304() {
    let (app, user_id) = issuer_with_alice(|_| {}).await;
    let pair = app.login_ok("alice", PASSWORD).await;
    let proxy = JwksProxy::start(&app).await;
    let cache = Duration::from_secs(10);
    let verifier = remote_verifier(
        &app,
        &proxy.url(),
        RemoteOptions {
            min_cache: cache,
            max_cache: cache,
            ..RemoteOptions::default()
        },
    )
    .await;
    let partner = Partner::serve(Arc::new(verifier)).await;
    let remote = partner.verifier.remote().unwrap().clone();
    let first = proxy.exchanges()[0].clone();
    assert_eq!(first.if_none_match, None, "nothing to revalidate at first");
    assert_eq!(first.status, 200);
    let etag = first.etag.clone().expect("the issuer sends an ETag");

    for round in 1..=2 {
        app.advance(cache);
        let seen = proxy.exchanges().len();
        // The cache has expired: this verification still succeeds with
        // the cached keys and starts a revalidation in the background.
        partner.expect_hello(&pair.access, &user_id).await;
        let exchange = revalidation(&proxy, &remote, seen).await;
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

    // The rotation activates the prepublished key: known, no fetch.
    let new_kid = rotate_now(&app).await;
    let rotated = login_signed_by(&app, &new_kid).await;
    let seen = proxy.exchanges().len();
    partner.expect_hello(&rotated.access, &user_id).await;
    assert_eq!(proxy.exchanges().len(), seen, "no fetch for a known kid");
    // Once the cache expires, the revalidation gets the new key set whole.
    app.advance(cache);
    partner.expect_hello(&rotated.access, &user_id).await;
    let changed = revalidation(&proxy, &remote, seen).await;
    assert_eq!(changed.status, 200, "the key set changed");
    assert_eq!(changed.if_none_match.as_deref(), Some(etag.as_str()));
    assert_ne!(changed.etag.as_deref(), Some(etag.as_str()));
    assert!(
        changed.etag.is_some(),
        "a changed key set is sent whole, with its new ETag"
    );
    partner.expect_hello(&pair.access, &user_id).await;
    partner.expect_hello(&rotated.access, &user_id).await;
}

/// Waits for the background revalidation after `seen` answered requests to
/// land in the cache; returns its exchange, the only one since.
async fn revalidation(
    proxy: &JwksProxy,
    remote: &jwtd::verifier::RemoteJwks,
    seen: usize,
) -> super::Exchange {
    poll_until(WITHIN, "the background revalidation", async || {
        (remote.fetch_count() == seen as u64 + 1).then_some(())
    })
    .await;
    let exchanges = proxy.exchanges();
    assert_eq!(exchanges.len(), seen + 1, "one revalidation: {exchanges:?}");
    exchanges[seen].clone()
}
