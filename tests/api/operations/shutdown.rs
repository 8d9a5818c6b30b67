//! SIGTERM in the middle of a burst of logins and refreshes: `/readyz`
//! turns 503 at once, every request that reached jwtd is answered, a
//! request still arriving is finished, the process exits 0, and every
//! refresh token answered 200 still refreshes after a restart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::helpers::poll_until;
use crate::process::{Home, SIGTERM, signal};

const CHAINS: usize = 8;

/// What one chain of requests saw.
#[derive(Default)]
struct Chain {
    /// The last refresh token answered 200, if any.
    last_refresh: Option<String>,
    answered: usize,
    /// Errors other than a refused connection: a request that reached
    /// jwtd and got no answer.
    lost: Vec<String>,
}

/// Logs in, then refreshes its token again and again, one connection per
/// request, until jwtd stops accepting connections.
async fn chain(client: Client, base: String, stopped_at: Arc<Mutex<Option<Instant>>>) -> Chain {
    let mut seen = Chain::default();
    loop {
        let request = match &seen.last_refresh {
            None => client
                .post(format!("{base}/api/token/"))
                .json(&json!({"username": "alice", "password": "pw"})),
            Some(refresh) => client
                .post(format!("{base}/api/token/refresh/"))
                .json(&json!({"refresh": refresh})),
        };
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                seen.answered += 1;
                if status == StatusCode::OK {
                    seen.last_refresh = body["refresh"].as_str().map(str::to_owned);
                } else {
                    seen.lost.push(format!("answered {status}: {body}"));
                }
            }
            Err(err) if err.is_connect() => {
                assert!(
                    stopped_at.lock().unwrap().is_some(),
                    "a connection refused before SIGTERM: {err}"
                );
                return seen;
            }
            Err(err) => {
                seen.lost.push(format!("{err:?}"));
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_burst_answers_every_request_exits_0_and_loses_no_refresh() {
    let home = Home::new(&[("metrics_bind", "127.0.0.1:0"), ("shutdown_timeout", "10s")]);
    home.add_user("alice", "pw");
    let mut server = home.serve();
    let base = server.url("");
    let client = Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let stopped_at = Arc::new(Mutex::new(None));
    let mut chains = JoinSet::new();
    for _ in 0..CHAINS {
        chains.spawn(chain(client.clone(), base.clone(), Arc::clone(&stopped_at)));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // A login whose body is still arriving when the signal comes.
    let body = br#"{"username": "alice", "password": "wrong"}"#;
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /api/token/ HTTP/1.1\r\nHost: jwtd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    *stopped_at.lock().unwrap() = Some(Instant::now());
    signal(server.pid(), SIGTERM);
    let readyz = server.metrics_url("/readyz");
    let (reason, took) = poll_until(
        Duration::from_secs(2),
        "/readyz on the metrics listener is 503 after SIGTERM",
        async || {
            let response = client.get(&readyz).send().await.ok()?;
            let status = response.status();
            let body: Value = response.json().await.ok()?;
            (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body["reason"].clone())
        },
    )
    .await;
    assert_eq!(reason, "shutting down");
    assert!(
        took < Duration::from_secs(1),
        "/readyz turned 503 after {took:?}"
    );

    slow.write_all(&body[10..]).await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "the request in flight at SIGTERM is answered: {answer:?}"
    );

    let mut tokens = Vec::new();
    let mut answered = 0;
    while let Some(seen) = chains.join_next().await {
        let seen = seen.expect("a chain of requests");
        assert!(
            seen.lost.is_empty(),
            "requests without an answer: {:?}",
            seen.lost
        );
        answered += seen.answered;
        tokens.extend(seen.last_refresh);
    }
    assert!(answered >= CHAINS * 2, "a burst: {answered} answers");
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit(Duration::from_secs(10));
        (status, server.log())
    })
    .await
    .unwrap();
    let (status, log) = status;
    let status = status.expect("jwtd serve exits within shutdown_timeout");
    assert!(status.success(), "exit status {status}; stderr: {log:#?}");
    assert!(
        log.iter().any(|line| line.contains("jwtd stopped")),
        "{log:#?}"
    );

    // Every refresh token answered 200 before the stop still refreshes.
    let server = home.serve();
    assert_eq!(tokens.len(), CHAINS, "each chain got a refresh token");
    for refresh in tokens {
        let (status, body) = server
            .post_json(&client, "/api/token/refresh/", json!({"refresh": refresh}))
            .await;
        assert_eq!(status, StatusCode::OK, "after the restart: {body}");
    }
}
