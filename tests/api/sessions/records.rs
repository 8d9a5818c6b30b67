//! Outstanding tokens recorded by jti, the blacklist endpoint and
//! simplejwt's rotation settings.

use super::*;

// --- 1. outstanding tokens ------------------------------------------------------

#[tokio::test]
async fn outstanding_tokens_are_recorded_by_jti_with_user_and_expiry_never_by_text() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", PASSWORD).await;
    let bob = app.add_user("bob", PASSWORD).await;

    let first = login(&app, "alice").await;
    let second = login(&app, "alice").await;
    app.advance(Duration::from_secs(5));
    let refreshed = expect_json(app.refresh(&first.refresh).await, StatusCode::OK).await;
    let rotated = refreshed["refresh"].as_str().unwrap().to_owned();
    let rotated_access = refreshed["access"].as_str().unwrap().to_owned();
    let bobs = login(&app, "bob").await;
    let sliding = sliding_ok(&app, "alice").await;

    let pool = open_db(&app).await;
    for (token, user) in [
        (&first.refresh, alice),
        (&second.refresh, alice),
        (&rotated, alice),
        (&bobs.refresh, bob),
    ] {
        let row = recorded(&pool, token).await;
        assert_eq!(row.user_id, user, "{row:?}");
        assert_eq!(row.token_type, "refresh");
        assert_eq!(row.expires_at, claim(token, "exp"), "expires_at is exp");
        assert!(row.family_id.is_some(), "a refresh token has a family");
    }
    let family = |row: &Outstanding| row.family_id.clone().unwrap();
    let first_row = recorded(&pool, &first.refresh).await;
    assert_eq!(
        family(&first_row),
        family(&recorded(&pool, &rotated).await),
        "a rotation stays in its login's family"
    );
    let mut family_ids = HashSet::new();
    for token in [&first.refresh, &second.refresh, &bobs.refresh] {
        family_ids.insert(family(&recorded(&pool, token).await));
    }
    assert_eq!(family_ids.len(), 3, "each login opens its own family");
    assert_eq!(first_row.rotated_at, Some(app.clock.now()));
    assert_eq!(first_row.replaced_by, Some(jti(&rotated)));
    assert!(first_row.blacklisted, "rotated away and blacklisted");

    let sliding_row = recorded(&pool, &sliding).await;
    assert_eq!(
        sliding_row,
        Outstanding {
            user_id: alice,
            token_type: "sliding".into(),
            family_id: None,
            expires_at: claim(&sliding, "refresh_exp"),
            rotated_at: None,
            replaced_by: None,
            blacklisted: false,
        }
    );

    let access_tokens = [&first.access, &second.access, &rotated_access, &bobs.access];
    for access in access_tokens {
        assert!(
            outstanding(&pool, &jti(access)).await.is_none(),
            "access tokens are not recorded"
        );
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        5
    );

    // The scan does find what is stored (the jti), so finding nothing of
    // the token text means something.
    let (where_jti, scanned) = columns_containing(&pool, &jti(&rotated)).await;
    assert!(
        where_jti.contains(&"outstanding_tokens.jti".to_owned()),
        "{where_jti:?}"
    );
    assert!(scanned >= 10, "the scan saw {scanned} text values");
    let every_token = [
        &first.refresh,
        &first.access,
        &second.refresh,
        &second.access,
        &rotated,
        &rotated_access,
        &bobs.refresh,
        &bobs.access,
        &sliding,
    ];
    for token in every_token {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        // The whole token, its payload and its signature.
        for needle in [token.as_str(), parts[1], parts[2]] {
            let (found, _) = columns_containing(&pool, needle).await;
            assert!(
                found.is_empty(),
                "token text of {} is stored in {found:?}",
                jti(token)
            );
        }
    }
    pool.close().await;
}

// --- 2. the blacklist endpoint -----------------------------------------------------

#[tokio::test]
async fn blacklist_endpoint_blacklists_a_refresh_token() {
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let one = login(&app, "alice").await;
    let two = login(&app, "alice").await;
    let untouched = login(&app, "alice").await;

    for (path, pair) in [
        ("/api/token/blacklist/", &one),
        ("/api/token/blacklist", &two),
    ] {
        assert_empty_ok(app.post_json(path, &json!({"refresh": pair.refresh})).await).await;
        assert_token_error(app.verify(&pair.refresh).await, BLACKLISTED).await;
        assert_token_error(app.refresh(&pair.refresh).await, BLACKLISTED).await;
        // Blacklisting it again: the same 401.
        assert_token_error(
            app.post_json(path, &json!({"refresh": pair.refresh})).await,
            BLACKLISTED,
        )
        .await;
    }

    // Other logins are not affected.
    assert_empty_ok(app.verify(&untouched.refresh).await).await;
    let next = rotate(&app, &untouched.refresh).await;
    assert_empty_ok(app.verify(&next).await).await;

    // Only refresh tokens can be blacklisted.
    assert_token_error(blacklist(&app, &untouched.access).await, WRONG_TYPE).await;
    let sliding = sliding_ok(&app, "alice").await;
    assert_token_error(blacklist(&app, &sliding).await, WRONG_TYPE).await;
    assert_empty_ok(app.verify(&sliding).await).await;
    assert_token_error(blacklist(&app, "not.a.token").await, "Token is invalid").await;

    let missing = expect_json(
        app.post_json("/api/token/blacklist/", &json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(missing, json!({"refresh": ["This field is required."]}));
}

// --- 3. rotation settings -----------------------------------------------------------

#[tokio::test]
async fn default_rotation_returns_a_pair_and_blacklists_the_old_token() {
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let pair = login(&app, "alice").await;

    let body = expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
    assert_eq!(object_keys(&body), ["access", "refresh"]);
    let access = body["access"].as_str().unwrap();
    let new = body["refresh"].as_str().unwrap();
    assert_eq!(claims_of(access)["token_type"], "access");
    assert_eq!(claims_of(new)["token_type"], "refresh");
    assert_ne!(jti(new), jti(&pair.refresh));
    assert_eq!(
        expect_json(app.me(access).await, StatusCode::OK).await["username"],
        "alice"
    );

    assert_empty_ok(app.verify(new).await).await;
    assert_token_error(app.verify(&pair.refresh).await, BLACKLISTED).await;
    assert_token_error(app.refresh(&pair.refresh).await, BLACKLISTED).await;
}

#[tokio::test]
async fn without_rotation_refresh_returns_only_an_access_token() {
    let app = spawn_app_with(|config| config.rotate_refresh_tokens = false).await;
    app.add_user("alice", PASSWORD).await;
    let pair = login(&app, "alice").await;

    for _ in 0..3 {
        app.advance(Duration::from_secs(10));
        let body = expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
        assert_eq!(object_keys(&body), ["access"], "{body}");
        let access = body["access"].as_str().unwrap();
        assert_eq!(claim(access, "iat"), app.clock.now());
        assert_eq!(
            expect_json(app.me(access).await, StatusCode::OK).await["username"],
            "alice"
        );
    }
    assert_empty_ok(app.verify(&pair.refresh).await).await;

    let pool = open_db(&app).await;
    let row = recorded(&pool, &pair.refresh).await;
    assert_eq!((row.rotated_at, row.blacklisted), (None, false), "{row:?}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        1
    );
    pool.close().await;
}

#[tokio::test]
async fn rotation_without_blacklisting_keeps_old_tokens_working() {
    let app = spawn_app_with(|config| {
        config.rotate_refresh_tokens = true;
        config.blacklist_after_rotation = false;
    })
    .await;
    app.add_user("alice", PASSWORD).await;
    let a = login(&app, "alice").await.refresh;

    let b = rotate(&app, &a).await;
    app.advance(Duration::from_secs(60));
    // No reuse detection: the old token still refreshes, as often as wanted.
    let c = rotate(&app, &a).await;
    let d = rotate(&app, &b).await;
    let e = rotate(&app, &a).await;
    let ids: HashSet<String> = [&a, &b, &c, &d, &e].into_iter().map(|t| jti(t)).collect();
    assert_eq!(ids.len(), 5, "a new refresh token each time");
    for token in [&a, &b, &c, &d, &e] {
        assert_empty_ok(app.verify(token).await).await;
    }
    rotate(&app, &c).await;
}
