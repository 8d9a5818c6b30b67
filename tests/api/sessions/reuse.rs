//! Refresh families: concurrent refreshes of one token, reuse detection
//! and the retry grace.

use super::*;

// --- 4. reuse detection -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_refreshes_of_one_token_give_exactly_one_success() {
    const N: usize = 50;
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let pair = login(&app, "alice").await;

    let outcomes = refresh_all_at_once(&app, vec![pair.refresh.clone(); N]).await;

    let winners: Vec<&Value> = outcomes
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one success: {outcomes:?}");
    let refused = json!({"detail": BLACKLISTED, "code": "token_not_valid"});
    for (status, body) in outcomes.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*status, body),
            (StatusCode::UNAUTHORIZED, &refused),
            "every other refresh is refused as blacklisted"
        );
    }
    // The 49 replays of a rotated-away token revoked the family, the
    // winner's new token included.
    let winner = winners[0]["refresh"].as_str().expect("a new refresh token");
    assert_token_error(app.verify(winner).await, BLACKLISTED).await;
}

/// Refreshes sent at once, so they share the writer's batches: every
/// fresh token rotates, every replay of a rotated-away token revokes only
/// its own family, and each answer is its own.
#[tokio::test]
async fn concurrent_refreshes_of_many_sessions_each_get_their_own_outcome() {
    const FRESH: usize = 24;
    const REPLAYED: usize = 8;
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let mut fresh = Vec::new();
    for _ in 0..FRESH {
        fresh.push(login(&app, "alice").await.refresh);
    }
    // Rotated once, before the burst: presenting them again is reuse. Their
    // successors must die with their families.
    let mut replayed = Vec::new();
    for _ in 0..REPLAYED {
        let old = login(&app, "alice").await.refresh;
        let successor = rotate(&app, &old).await;
        replayed.push((old, successor));
    }

    let tokens = fresh
        .iter()
        .chain(replayed.iter().map(|(old, _)| old))
        .cloned()
        .collect();
    let outcomes = refresh_all_at_once(&app, tokens).await;

    let refused = json!({"detail": BLACKLISTED, "code": "token_not_valid"});
    for (index, (status, body)) in outcomes.iter().enumerate() {
        if index < FRESH {
            assert_eq!(*status, StatusCode::OK, "fresh token {index}: {body}");
        } else {
            assert_eq!(
                (*status, body),
                (StatusCode::UNAUTHORIZED, &refused),
                "replay {index}"
            );
        }
    }
    // Every rotated token works once more; the presented ones are spent.
    for ((_, body), presented) in outcomes.iter().zip(&fresh) {
        let rotated = body["refresh"].as_str().expect("a new refresh token");
        rotate(&app, rotated).await;
        assert_token_error(app.refresh(presented).await, BLACKLISTED).await;
    }
    // The replays' families are revoked, successors included.
    for (_, successor) in &replayed {
        assert_token_error(app.refresh(successor).await, BLACKLISTED).await;
    }
}

#[tokio::test]
async fn a_thiefs_replay_revokes_the_victims_newer_token_too() {
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let stolen = login(&app, "alice").await.refresh;
    let other_login = login(&app, "alice").await.refresh;

    // The victim refreshes A → B; the thief replays A.
    let victims = rotate(&app, &stolen).await;
    app.advance(Duration::from_secs(1));
    assert_token_error(app.refresh(&stolen).await, BLACKLISTED).await;
    // The victim's newer token died with the family.
    assert_token_error(app.refresh(&victims).await, BLACKLISTED).await;
    assert_token_error(app.verify(&victims).await, BLACKLISTED).await;

    // Another login's family is unaffected.
    let next = rotate(&app, &other_login).await;
    assert_empty_ok(app.verify(&next).await).await;

    // The other way round: the thief refreshes first, the victim's
    // (now rotated-away) token comes back and kills the thief's.
    let victims = login(&app, "alice").await.refresh;
    let thiefs = rotate(&app, &victims).await;
    assert_token_error(app.refresh(&victims).await, BLACKLISTED).await;
    assert_token_error(app.refresh(&thiefs).await, BLACKLISTED).await;
    // Still nothing for the other login, and a new login works.
    let next = rotate(&app, &next).await;
    assert_empty_ok(app.verify(&next).await).await;
    let fresh = login(&app, "alice").await.refresh;
    rotate(&app, &fresh).await;
}

#[tokio::test]
async fn a_retry_within_the_grace_gets_a_fresh_pair_and_the_family_survives() {
    let app = spawn_app_with(|config| config.refresh_reuse_grace = Duration::from_secs(30)).await;
    app.add_user("alice", PASSWORD).await;
    let a = login(&app, "alice").await.refresh;

    // The first attempt's answer (B) is lost; the client retries A.
    let b = rotate(&app, &a).await;
    app.advance(Duration::from_secs(10));
    let retry = expect_json(app.refresh(&a).await, StatusCode::OK).await;
    assert_eq!(object_keys(&retry), ["access", "refresh"]);
    let c = retry["refresh"].as_str().unwrap().to_owned();
    assert_ne!(jti(&c), jti(&b), "a fresh pair");
    assert_eq!(claim(&c, "iat"), app.clock.now());
    let access = retry["access"].as_str().unwrap();
    assert_eq!(
        expect_json(app.me(access).await, StatusCode::OK).await["username"],
        "alice"
    );

    let pool = open_db(&app).await;
    assert_eq!(
        recorded(&pool, &c).await.family_id,
        recorded(&pool, &a).await.family_id,
        "the retry stays in the family"
    );
    pool.close().await;

    // The family survives: the retry's token refreshes.
    let d = rotate(&app, &c).await;
    assert_empty_ok(app.verify(&d).await).await;
    // B, superseded by the retry, is blacklisted.
    assert_token_error(app.verify(&b).await, BLACKLISTED).await;
    assert_token_error(app.refresh(&b).await, BLACKLISTED).await;
}

#[tokio::test]
async fn a_replay_after_the_grace_revokes_the_family() {
    let app = spawn_app_with(|config| config.refresh_reuse_grace = Duration::from_secs(30)).await;
    app.add_user("alice", PASSWORD).await;
    let a = login(&app, "alice").await.refresh;
    let other_login = login(&app, "alice").await.refresh;

    let b = rotate(&app, &a).await;
    app.advance(Duration::from_secs(31));
    assert_token_error(app.refresh(&a).await, BLACKLISTED).await;
    assert_token_error(app.verify(&b).await, BLACKLISTED).await;
    assert_token_error(app.refresh(&b).await, BLACKLISTED).await;

    // Another login's family is unaffected.
    let next = rotate(&app, &other_login).await;
    assert_empty_ok(app.verify(&next).await).await;
}

/// Three `jwtd serve` processes on one database, as replicas: twenty
/// refreshes of one token sent at once, spread over them, give exactly
/// one success; the reuse that the others are revokes the family, which
/// every process then refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_through_three_replicas_give_exactly_one_success() {
    const N: usize = 20;
    let home = Home::new(&[]);
    home.add_user("alice", PASSWORD);
    let servers = home.serve_replicas();
    let client = reqwest::Client::new();
    let post = async |server: &Server, path: &str, body: Value| {
        server.post_json(&client, path, body).await
    };
    let (status, pair) = post(
        &servers[0],
        "/api/token/",
        json!({"username": "alice", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let refresh = pair["refresh"]
        .as_str()
        .expect("a refresh token")
        .to_owned();

    let start = Arc::new(Barrier::new(N));
    let mut burst = JoinSet::new();
    for i in 0..N {
        let (client, url, refresh, start) = (
            client.clone(),
            servers[i % servers.len()].url("/api/token/refresh/"),
            refresh.clone(),
            start.clone(),
        );
        burst.spawn(async move {
            start.wait().await;
            let response = client
                .post(url)
                .json(&json!({"refresh": refresh}))
                .send()
                .await
                .expect("the server answers");
            let status = response.status();
            (status, response.json::<Value>().await.expect("a JSON body"))
        });
    }
    let outcomes = burst.join_all().await;
    let winners: Vec<&Value> = outcomes
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one success: {outcomes:?}");
    let refused = json!({"detail": BLACKLISTED, "code": "token_not_valid"});
    for (status, body) in outcomes.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!((*status, body), (StatusCode::UNAUTHORIZED, &refused));
    }
    let winner = winners[0]["refresh"].as_str().expect("a new refresh token");
    for server in &servers {
        let (status, body) = post(server, "/api/token/refresh/", json!({"refresh": winner})).await;
        assert_eq!(
            (status, &body),
            (StatusCode::UNAUTHORIZED, &refused),
            "the family is revoked for every process"
        );
    }
}
