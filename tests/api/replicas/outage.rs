//! The database stopped under load and started again: what needs no
//! database goes on answering from memory, what needs one answers 503
//! with `Retry-After` (never 500), and everything recovers by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::poll_until;
use crate::postgres::Cluster;
use crate::process::{Home, Server};

/// What one request answered.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("every request is answered");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
    }
}

/// A pair from `POST /api/token/` at `server`.
async fn login(client: &Client, server: &Server) -> Answer {
    send(
        client
            .post(server.url("/api/token/"))
            .json(&json!({"username": "alice", "password": "pw"})),
    )
    .await
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().expect("a token").to_owned()
}

/// Logs in, refreshes and verifies at every server in turn until `stop`,
/// counting the statuses; panics on a 5xx other than 503.
async fn load(client: Client, urls: Vec<String>, stop: Arc<AtomicBool>) -> BTreeMap<u16, usize> {
    let mut seen = BTreeMap::new();
    let mut turn = 0;
    while !stop.load(Ordering::SeqCst) {
        let base = &urls[turn % urls.len()];
        turn += 1;
        let answer = send(
            client
                .post(format!("{base}/api/token/"))
                .json(&json!({"username": "alice", "password": "pw"})),
        )
        .await;
        let mut statuses = vec![answer.status];
        if answer.status == StatusCode::OK {
            let refresh = text(&answer.body, "refresh");
            let access = text(&answer.body, "access");
            let next = &urls[turn % urls.len()];
            for (path, body) in [
                ("/api/token/refresh/", json!({"refresh": refresh})),
                ("/api/token/verify/", json!({"token": access})),
            ] {
                let answer = send(client.post(format!("{next}{path}")).json(&body)).await;
                statuses.push(answer.status);
            }
        }
        for status in statuses {
            assert!(
                status == StatusCode::SERVICE_UNAVAILABLE || !status.is_server_error(),
                "a request under load answered {status}"
            );
            *seen.entry(status.as_u16()).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

/// The 503 a request needing the database gets while it is down.
#[track_caller]
fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
    let retry_after = answer.retry_after.as_deref().unwrap_or_default();
    assert!(
        retry_after.parse::<u64>().is_ok_and(|seconds| seconds >= 1),
        "{what}: Retry-After {retry_after:?}"
    );
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{what}: DRF's body, {}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_stopped_under_load_gets_503s_and_everything_recovers_without_a_restart() {
    if !crate::postgres::available(
        "replicas::the_database_stopped_under_load_gets_503s_and_everything_recovers_without_a_restart",
        &[],
    ) {
        return;
    }
    let cluster = Cluster::private();
    let home = Home::on(&cluster.create_database(), &[]);
    home.add_user("alice", "pw");
    let servers = home.serve_replicas();
    let urls: Vec<String> = servers.iter().map(|s| s.url("")).collect();
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // A session opened while the database is up, and its user known to
    // every replica.
    let pair = login(&client, &servers[0]).await.body;
    let (access, refresh) = (text(&pair, "access"), text(&pair, "refresh"));
    for server in &servers {
        let me = send(client.get(server.url("/api/me/")).bearer_auth(&access)).await;
        assert_eq!(me.status, StatusCode::OK);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut loads = JoinSet::new();
    for _ in 0..2 {
        loads.spawn(load(client.clone(), urls.clone(), stop.clone()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.stop();

    for server in &servers {
        // Needs the database: 503, Retry-After, DRF's body.
        poll_until(Duration::from_secs(10), "logins refused", async || {
            let answer = login(&client, server).await;
            (answer.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
        })
        .await;
        assert_unavailable(&login(&client, server).await, "login");
        for (what, request) in [
            (
                "refresh",
                client
                    .post(server.url("/api/token/refresh/"))
                    .json(&json!({"refresh": refresh})),
            ),
            (
                "blacklist",
                client
                    .post(server.url("/api/token/blacklist/"))
                    .json(&json!({"refresh": refresh})),
            ),
            (
                "logout-all",
                client
                    .post(server.url("/api/token/logout-all/"))
                    .bearer_auth(&access),
            ),
        ] {
            assert_unavailable(&send(request).await, what);
        }

        // Needs none: answered from memory.
        let answer = send(
            client
                .post(server.url("/api/token/verify/"))
                .json(&json!({"token": access})),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "verify: {}", answer.body);
        let answer = send(client.get(server.url("/api/me/")).bearer_auth(&access)).await;
        assert_eq!(answer.status, StatusCode::OK, "me: {}", answer.body);
        let answer = send(client.get(server.url("/.well-known/jwks.json"))).await;
        assert_eq!(answer.status, StatusCode::OK, "jwks");
        assert!(!answer.body["keys"].as_array().unwrap().is_empty());
    }

    cluster.start();
    let back = Instant::now();
    for server in &servers {
        let (_, took) = poll_until(Duration::from_secs(10), "logins again", async || {
            let answer = login(&client, server).await;
            (answer.status == StatusCode::OK).then_some(())
        })
        .await;
        assert!(
            back.elapsed() <= Duration::from_secs(2),
            "{} took {took:?} to log in again after the database came back",
            server.url("")
        );
    }
    // The session opened before the outage carries on.
    let answer = send(
        client
            .post(urls[1].clone() + "/api/token/refresh/")
            .json(&json!({"refresh": refresh})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    stop.store(true, Ordering::SeqCst);
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    for counts in loads.join_all().await {
        for (status, count) in counts {
            *seen.entry(status).or_default() += count;
        }
    }
    eprintln!(
        "statuses under load: {seen:?}; logins again {:?} after the database came back",
        back.elapsed()
    );
    assert!(
        seen.get(&503).is_some_and(|&n| n > 0),
        "the load saw the outage: {seen:?}"
    );
    assert!(
        seen.get(&200).is_some_and(|&n| n > 10),
        "and worked around it: {seen:?}"
    );
    for server in servers {
        let (status, log) = server.terminate();
        assert!(status.success(), "{status}");
        assert!(
            !log.iter().any(|line| line.contains("panicked")),
            "{log:#?}"
        );
        // The outage is reported once by the background work (its first
        // failing round), not four times a second, and so is the recovery.
        let errors = log.iter().filter(|line| line.contains("ERROR")).count();
        assert!((1..=4).contains(&errors), "{errors} ERROR lines: {log:#?}");
        assert!(
            log.iter()
                .any(|line| line.contains("background work succeeds again")),
            "{log:#?}"
        );
    }
}

/// Every connection the replicas hold is cut by the database every 100 ms
/// (`pg_terminate_backend`) under a load of logins and refreshes: jwtd
/// runs the interrupted transactions again, and no client sees a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_cut_by_the_database_are_retried_inside_jwtd() {
    if !crate::postgres::available(
        "replicas::connections_cut_by_the_database_are_retried_inside_jwtd",
        &[],
    ) {
        return;
    }
    const CHAINS: usize = 6;
    const RUN_FOR: Duration = Duration::from_secs(6);
    let home = Home::on(&crate::postgres::fresh_database(), &[]);
    home.add_user("alice", "pw");
    let servers = home.serve_replicas();
    let urls: Vec<String> = servers.iter().map(|s| s.url("")).collect();
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let cutter = {
        let (url, stop) = (home.database_url().to_owned(), stop.clone());
        tokio::spawn(async move {
            let pool = sqlx::PgPool::connect(&url)
                .await
                .expect("the database opens");
            let mut cut = 0_i64;
            while !stop.load(Ordering::SeqCst) {
                let terminated: i64 = sqlx::query_scalar(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_one(&pool)
                .await
                .expect("terminating connections");
                cut += terminated;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            cut
        })
    };
    let mut chains = JoinSet::new();
    for chain in 0..CHAINS {
        let (client, urls) = (client.clone(), urls.clone());
        chains.spawn(async move {
            let mut statuses: Vec<StatusCode> = Vec::new();
            let started = Instant::now();
            let mut turn = chain;
            while started.elapsed() < RUN_FOR {
                let base = &urls[turn % urls.len()];
                turn += 1;
                let answer = send(
                    client
                        .post(format!("{base}/api/token/"))
                        .json(&json!({"username": "alice", "password": "pw"})),
                )
                .await;
                statuses.push(answer.status);
                if answer.status != StatusCode::OK {
                    continue;
                }
                let mut refresh = text(&answer.body, "refresh");
                for _ in 0..5 {
                    let base = &urls[turn % urls.len()];
                    turn += 1;
                    let answer = send(
                        client
                            .post(format!("{base}/api/token/refresh/"))
                            .json(&json!({"refresh": refresh})),
                    )
                    .await;
                    statuses.push(answer.status);
                    if answer.status != StatusCode::OK {
                        break;
                    }
                    refresh = text(&answer.body, "refresh");
                }
            }
            statuses
        });
    }
    let statuses: Vec<StatusCode> = chains.join_all().await.into_iter().flatten().collect();
    stop.store(true, Ordering::SeqCst);
    let cut = cutter.await.expect("the cutter ends");
    let failed: Vec<&StatusCode> = statuses.iter().filter(|s| **s != StatusCode::OK).collect();
    eprintln!(
        "{} requests, {cut} connections cut, {} not 200",
        statuses.len(),
        failed.len()
    );
    assert!(cut >= 20, "only {cut} connections were cut");
    assert!(statuses.len() >= 50, "only {} requests", statuses.len());
    assert!(failed.is_empty(), "answers other than 200: {failed:?}");
}
