//! Slow and hostile connections: heads that never finish, heads trickled a
//! byte at a time, bodies that stall, and a flood that uses up every file
//! descriptor the process has.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app_with;
use crate::process::{Server, jwtd};

/// The head an attacker starts and never finishes.
const UNFINISHED_HEAD: &[u8] = b"POST /api/token/ HTTP/1.1\r\nHost: x\r\n";

/// Reads until the server closes the connection or `within` passes;
/// returns what was read and how long the close took.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within
            .checked_sub(started.elapsed())
            .unwrap_or_else(|| panic!("the server kept the connection open for {within:?}"));
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (received, started.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open for {within:?}"),
        }
    }
}

/// One request on a fresh connection, bounded in time.
async fn fresh_request(
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("the server answers")
}

#[tokio::test]
async fn a_trickled_head_is_closed_at_the_header_timeout() {
    let app = spawn_app_with(|config| config.request_header_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: trickle\r\n\r\n";
    let started = Instant::now();
    let mut sent = 0;
    // One byte every 100 ms: the whole head would take over 5 s.
    while sent < head.len() {
        if stream.write_all(&head[sent..sent + 1]).await.is_err() {
            break;
        }
        sent += 1;
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => panic!("answered a trickled head: {:?}", &buf[..n]),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a trickled head kept its connection for 4 s"
        );
    }
    let closed_after = started.elapsed();
    assert!(sent < head.len(), "the whole head went through");
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before the header timeout"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(|config| config.request_header_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let (rest, idle) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    assert!(
        idle >= Duration::from_millis(900),
        "an idle connection was closed after {idle:?}, before the header timeout"
    );
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_its_connection_is_closed() {
    let app = spawn_app_with(|config| config.request_timeout = Duration::from_secs(1)).await;
    app.add_user("alice", "pw").await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\": \"al",
        )
        .await
        .unwrap();
    let (answer, after) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        answer.ends_with(r#"{"detail":"Request timed out."}"#),
        "{answer}"
    );
    assert!(
        after >= Duration::from_millis(900),
        "answered after {after:?}, before the request timeout"
    );
    // A body that arrives in time is still read.
    let ok = app.login("alice", "pw").await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_open_file_soft_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_limited(dir.path(), "256:4096", &[]);
    let pid = server.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let figures: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(figures, ["4096", "4096"], "{open_files}");
    assert!(
        server
            .log()
            .iter()
            .any(|line| line.contains("jwtd listening") && line.contains("open_file_limit=4096")),
        "{:?}",
        server.log()
    );
}

#[tokio::test]
async fn a_flood_of_unfinished_heads_cannot_lock_everyone_out() {
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    jwtd(
        dir.path(),
        &["users", "add", "alice", "--password-stdin"],
        Some("pw\n"),
    )
    .ok();
    let server = Server::start_limited(
        dir.path(),
        "256:256",
        &[("JWTD_REQUEST_HEADER_TIMEOUT", "2s")],
    );
    let addr = server.addr().to_owned();

    // More unfinished heads than the process has descriptors; the rest
    // wait in the kernel's accept queue.
    let mut attack = Vec::new();
    for _ in 0..400 {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream.write_all(UNFINISHED_HEAD).await.unwrap();
        attack.push(stream);
    }
    server
        .wait_for_lines(
            "cannot accept connections",
            1,
            Duration::from_secs(10),
            "the flood never used up the descriptors",
        )
        .await;

    let started = Instant::now();
    let healthz = fresh_request(reqwest::Method::GET, &server.url("/healthz"), None).await;
    assert_eq!(healthz.status(), StatusCode::OK);
    let answered = started.elapsed();
    assert!(
        answered < HEADER_TIMEOUT + Duration::from_secs(3),
        "/healthz answered after {answered:?}"
    );
    let login = fresh_request(
        reqwest::Method::POST,
        &server.url("/api/token/"),
        Some(json!({"username": "alice", "password": "pw"})),
    )
    .await;
    assert_eq!(login.status(), StatusCode::OK);
    let answered = started.elapsed();
    assert!(
        answered < HEADER_TIMEOUT + Duration::from_secs(5),
        "the login answered after {answered:?}"
    );

    // Every attacking connection is closed by the server, without an answer.
    for stream in &mut attack {
        let (answer, _) = read_until_closed(stream, HEADER_TIMEOUT * 3).await;
        assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    }
    // Running out of descriptors is reported once a minute, not once per
    // failed accept.
    let reports = server
        .log()
        .iter()
        .filter(|line| line.contains("cannot accept connections"))
        .count();
    assert_eq!(reports, 1, "{:?}", server.log());
}

#[tokio::test]
async fn an_unfinished_head_does_not_hold_up_shutdown() {
    let mut app =
        spawn_app_with(|config| config.request_header_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(UNFINISHED_HEAD).await.unwrap();
    // Let the server take the connection before it is told to stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = tokio::time::timeout(Duration::from_secs(5), app.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited on an unfinished head");
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
}
