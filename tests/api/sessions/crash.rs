//! A `kill -9` in the middle of a burst of refreshes against a real
//! `jwtd serve` process, and the WAL file under a long run.

use super::*;

// --- 10. kill -9 in the middle of a burst -------------------------------------------------------

/// How many refresh chains run at once.
const CHAINS: usize = 40;
/// How many successful refreshes before the server is killed.
const KILL_AFTER: usize = 120;
/// A bound on each chain's length, far beyond what the kill allows.
const MAX_STEPS: usize = 10_000;

/// What one chain of refreshes saw: each answered refresh (the token
/// presented, the refresh token returned), and the token whose request got
/// no answer.
#[derive(Debug, Default)]
struct Chain {
    answered: Vec<(String, String)>,
    unanswered: Option<String>,
    refused: Vec<(String, StatusCode, String)>,
    last: String,
}

/// Refreshes `token`, then the token returned, and so on, until the server
/// stops answering.
async fn refresh_chain(
    client: reqwest::Client,
    url: String,
    token: String,
    successes: Arc<AtomicUsize>,
    enough: Arc<Notify>,
) -> Chain {
    let mut chain = Chain {
        last: token.clone(),
        ..Chain::default()
    };
    let mut current = token;
    for _ in 0..MAX_STEPS {
        let sent = client
            .post(&url)
            .json(&json!({"refresh": current}))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(_) => {
                chain.unanswered = Some(current);
                return chain;
            }
        };
        let status = response.status();
        let Ok(text) = response.text().await else {
            // The status line came but the body did not: no answer either.
            chain.unanswered = Some(current);
            return chain;
        };
        if status != StatusCode::OK {
            chain.refused.push((current, status, text));
            return chain;
        }
        let body: Value = serde_json::from_str(&text).expect("a JSON body");
        let new = body["refresh"]
            .as_str()
            .expect("a new refresh token")
            .to_owned();
        chain.answered.push((current, new.clone()));
        chain.last = new.clone();
        current = new;
        if successes.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
            enough.notify_one();
        }
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_in_a_burst_of_refreshes_leaves_the_database_consistent() {
    let home = Home::new(&[]);
    let mut server = home.serve();
    home.add_user("alice", "pw");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let mut logins = JoinSet::new();
    for _ in 0..CHAINS {
        let client = client.clone();
        let url = server.url("/api/token/");
        logins.spawn(async move {
            let response = client
                .post(url)
                .json(&json!({"username": "alice", "password": "pw"}))
                .send()
                .await
                .expect("login request sent");
            let body = expect_json(response, StatusCode::OK).await;
            body["refresh"].as_str().unwrap().to_owned()
        });
    }
    let tokens = logins.join_all().await;

    let successes = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let mut burst = JoinSet::new();
    for token in tokens.iter().cloned() {
        burst.spawn(refresh_chain(
            client.clone(),
            server.url("/api/token/refresh/"),
            token,
            successes.clone(),
            enough.clone(),
        ));
    }
    tokio::time::timeout(Duration::from_secs(120), enough.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} refreshes in 120 s; log: {:?}",
                successes.load(Ordering::SeqCst),
                server.log()
            )
        });
    // Then kill at once, preferably while the database holds a rotation
    // whose answer has not arrived yet (a commit racing its response).
    let watcher = Database::connect(home.database_url()).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let committed = count(
            &watcher,
            "SELECT count(*) FROM outstanding_tokens WHERE rotated_at IS NOT NULL",
        )
        .await;
        if committed as usize > successes.load(Ordering::SeqCst) {
            break;
        }
    }
    server.kill();
    watcher.close().await;
    let chains = tokio::time::timeout(Duration::from_secs(120), burst.join_all())
        .await
        .expect("every chain stops once the server is gone");

    let refused: Vec<_> = chains.iter().flat_map(|chain| &chain.refused).collect();
    assert!(refused.is_empty(), "answered refusals: {refused:?}");
    let answered: usize = chains.iter().map(|chain| chain.answered.len()).sum();
    assert!(answered >= KILL_AFTER, "{answered} answered refreshes");
    let unanswered: Vec<&String> = chains
        .iter()
        .filter_map(|chain| chain.unanswered.as_ref())
        .collect();
    assert!(!unanswered.is_empty(), "the kill interrupted the burst");

    // The database after the crash.
    let pool = Database::connect(home.database_url()).await;
    if let Database::Sqlite(sqlite) = &pool {
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(sqlite)
            .await
            .unwrap();
        assert_eq!(integrity, "ok");
        let dangling = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(sqlite)
            .await
            .unwrap();
        assert!(
            dangling.is_empty(),
            "{} foreign key violations",
            dangling.len()
        );
    }
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outstanding_tokens o WHERE o.rotated_at IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM outstanding_tokens r WHERE r.jti = o.replaced_by \
              AND r.family_id = o.family_id AND r.user_id = o.user_id)"
        )
        .await,
        0,
        "every rotated token's replacement is recorded, in its family"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outstanding_tokens o WHERE o.rotated_at IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM blacklisted_tokens b WHERE b.jti = o.jti)"
        )
        .await,
        0,
        "every rotated token is blacklisted"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM blacklisted_tokens b JOIN outstanding_tokens o USING (jti) \
             WHERE o.rotated_at IS NULL"
        )
        .await,
        0,
        "no token is blacklisted without having been rotated (no logout here)"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM token_families WHERE revoked_at IS NOT NULL"
        )
        .await,
        0,
        "no family was revoked"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM token_families").await,
        CHAINS as i64
    );

    // Every answered refresh is on disk: the presented token rotated to
    // the returned one.
    for (presented, returned) in chains.iter().flat_map(|chain| &chain.answered) {
        let old = recorded(&pool, presented).await;
        assert_eq!(old.replaced_by, Some(jti(returned)), "{old:?}");
        assert!(old.blacklisted);
        recorded(&pool, returned).await;
    }
    // A token whose request got no answer is either rotated (and
    // blacklisted) or untouched.
    let mut rotated_unanswered = 0;
    let mut untouched = Vec::new();
    for chain in &chains {
        let row = recorded(&pool, &chain.last).await;
        match (&chain.unanswered, row.rotated_at) {
            (Some(_), Some(_)) => {
                assert!(row.blacklisted, "{row:?}");
                assert!(row.replaced_by.is_some(), "{row:?}");
                rotated_unanswered += 1;
            }
            (_, None) => {
                assert!(!row.blacklisted, "{row:?}");
                assert!(row.replaced_by.is_none(), "{row:?}");
                untouched.push(chain.last.clone());
            }
            (None, Some(_)) => panic!("a returned token that was never presented is rotated"),
        }
    }
    let rotations = count(
        &pool,
        "SELECT count(*) FROM outstanding_tokens WHERE rotated_at IS NOT NULL",
    )
    .await;
    assert_eq!(
        rotations as usize,
        answered + rotated_unanswered,
        "every committed rotation is an answered one or a cut-off one"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await as usize,
        CHAINS + answered + rotated_unanswered
    );
    pool.close().await;
    eprintln!(
        "kill -9 after {answered} answered refreshes; {} chains cut off, {rotated_unanswered} of them committed",
        unanswered.len()
    );

    // A new server on the same database carries on.
    let server = home.serve();
    for token in &untouched {
        let response = client
            .post(server.url("/api/token/refresh/"))
            .json(&json!({"refresh": token}))
            .send()
            .await
            .expect("request sent");
        expect_json(response, StatusCode::OK).await;
    }
    for chain in chains
        .iter()
        .filter(|chain| !untouched.contains(&chain.last))
    {
        let response = client
            .post(server.url("/api/token/verify/"))
            .json(&json!({"token": chain.last}))
            .send()
            .await
            .expect("request sent");
        assert_token_error(response, BLACKLISTED).await;
    }
}

/// The refresh writer's commits checkpoint the WAL as they go (SQLite's
/// default, every 1000 pages): a long run of refreshes leaves a small
/// `-wal` file (a 1500-refresh run without checkpoints grows it to 28 MB).
#[tokio::test]
async fn a_long_run_of_refreshes_keeps_the_wal_file_small() {
    const REFRESHES: usize = 1_500;
    const LIMIT: u64 = 8 << 20;
    let app = spawn_sqlite_app_with(|c| c.algorithm = jwtd::verifier::Algorithm::Es256).await;
    app.add_user("alice", PASSWORD).await;
    let mut refresh = login(&app, "alice").await.refresh;
    let wal = app.database_path().with_extension("db-wal");
    let mut largest = 0;
    for _ in 0..REFRESHES {
        refresh = rotate(&app, &refresh).await;
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert!(
        largest < LIMIT,
        "after {REFRESHES} refreshes the WAL reached {largest} bytes"
    );
}
