//! Flushing expired records, from the CLI and from `serve`.

use super::*;

// --- 9. flushing expired records ------------------------------------------------------------

#[tokio::test]
async fn flush_expired_cli_deletes_expired_records_and_their_blacklist_entries() {
    // The CLI flushes by the wall clock: issue from a clock three days
    // back, so refresh tokens (1 day) are expired by now and sliding tokens
    // (10 days to refresh_exp) are not.
    let app = spawn_app_with(|config| {
        config.refresh_token_lifetime = Duration::from_secs(86_400);
        config.sliding_token_refresh_lifetime = Duration::from_secs(10 * 86_400);
    })
    .await;
    app.add_user("alice", PASSWORD).await;
    app.add_user("bob", PASSWORD).await;
    app.clock.set(app.clock.now() - 3 * 86_400);

    let plain = login(&app, "alice").await.refresh;
    let rotated_away = login(&app, "alice").await.refresh;
    let rotated = rotate(&app, &rotated_away).await;
    let blacklisted = login(&app, "alice").await.refresh;
    assert_empty_ok(blacklist(&app, &blacklisted).await).await;
    let kept = sliding_ok(&app, "alice").await;
    let bob = login(&app, "bob").await;
    let kept_blacklisted = sliding_ok(&app, "bob").await;
    let bearer = format!("Bearer {}", bob.access);
    assert_empty_ok(logout_all(&app, "/api/token/logout-all/", Some(&bearer)).await).await;

    let expired = [&plain, &rotated_away, &rotated, &blacklisted, &bob.refresh];
    let pool = open_db(&app).await;
    for token in expired {
        assert!(claim(token, "exp") < jwtd::clock::SystemClock.now());
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        7
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM blacklisted_tokens").await,
        4
    );

    let run = app.jwtd(&["flush-expired"], None).await.ok();
    assert_eq!(numbers_in(&run.stdout), [5], "stdout: {}", run.stdout);

    for token in expired {
        assert!(outstanding(&pool, &jti(token)).await.is_none(), "flushed");
    }
    assert!(!recorded(&pool, &kept).await.blacklisted);
    assert!(recorded(&pool, &kept_blacklisted).await.blacklisted);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        2
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM blacklisted_tokens").await,
        1,
        "the expired tokens' blacklist entries went with them"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM token_families").await,
        0,
        "families left empty are gone"
    );
    pool.close().await;

    // The unexpired tokens behave as before.
    expect_json(sliding_refresh(&app, &kept).await, StatusCode::OK).await;
    assert_token_error(sliding_refresh(&app, &kept_blacklisted).await, BLACKLISTED).await;

    let again = app.jwtd(&["flush-expired"], None).await.ok();
    assert_eq!(numbers_in(&again.stdout), [0], "stdout: {}", again.stdout);
}

#[tokio::test]
async fn serve_flushes_expired_records_at_start_and_daily() {
    let app = spawn_app_with(|config| {
        config.refresh_token_lifetime = Duration::from_secs(60);
    })
    .await;
    app.add_user("alice", PASSWORD).await;
    let expired = login(&app, "alice").await.refresh;
    assert_empty_ok(blacklist(&app, &expired).await).await;
    app.advance(Duration::from_secs(61));
    let fresh = login(&app, "alice").await.refresh;

    let pool = open_db(&app).await;
    // The running server flushed when it started, not since.
    assert!(recorded(&pool, &expired).await.blacklisted);
    pool.close().await;

    let app = app.restart().await;
    let pool = open_db(&app).await;
    wait_until_flushed(&pool, &jti(&expired)).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM blacklisted_tokens").await,
        0
    );
    assert!(
        outstanding(&pool, &jti(&fresh)).await.is_some(),
        "unexpired rows stay"
    );
    rotate(&app, &fresh).await;

    // A day later the running server flushes again by itself.
    let last = login(&app, "alice").await.refresh;
    app.advance(Duration::from_secs(86_400));
    wait_until_flushed(&pool, &jti(&last)).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        0
    );
    pool.close().await;
}
