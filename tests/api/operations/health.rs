//! `/livez` answers while the process serves; `/readyz` follows the
//! database: 503 with a reason within three seconds of it going out of
//! reach, 200 again once it is back, with no restart.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::helpers::poll_until;
use crate::postgres::Cluster;
use crate::process::{Home, Server};

/// How soon `/readyz` must follow the database.
const WITHIN: Duration = Duration::from_secs(3);

async fn get(client: &Client, url: &str) -> (StatusCode, Value) {
    let response = client.get(url).send().await.expect("the server answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until `/readyz` answers `want`; returns its body.
async fn readyz_becomes(client: &Client, server: &Server, want: StatusCode, what: &str) -> Value {
    let url = server.url("/readyz");
    let (body, _) = poll_until(WITHIN, what, async || {
        let (status, body) = get(client, &url).await;
        (status == want).then_some(body)
    })
    .await;
    body
}

/// `/readyz` is 503 with the database's reason, `/livez` and `/healthz`
/// still 200.
async fn assert_not_ready_but_alive(client: &Client, server: &Server, body: &Value) {
    assert_eq!(body["status"], "unavailable", "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("database") && !reason.contains('\n'),
        "a one-line reason naming the database: {body}"
    );
    for probe in ["/livez", "/healthz"] {
        let (status, body) = get(client, &server.url(probe)).await;
        assert_eq!(status, StatusCode::OK, "{probe} without the database");
        assert_eq!(body["status"], "ok");
    }
}

/// Holds every lock of SQLite's WAL index (the `-shm` file), as a writer
/// that crashed mid-checkpoint on another host's mount would: no
/// connection can begin a transaction until it is released.
struct WalIndexLock {
    _file: File,
}

impl WalIndexLock {
    fn take(shm: &std::path::Path) -> WalIndexLock {
        let file = File::options()
            .read(true)
            .write(true)
            .open(shm)
            .expect("the -shm file exists while jwtd runs");
        // SQLite's WAL locks are the 8 bytes from offset 120 of the -shm file.
        let lock = libc::flock {
            l_type: libc::F_WRLCK as i16,
            l_whence: libc::SEEK_SET as i16,
            l_start: 120,
            l_len: 8,
            l_pid: 0,
        };
        // SAFETY: F_SETLK reads the flock struct given; the fd is open.
        let done = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) };
        assert_eq!(
            done,
            0,
            "locking the WAL index: {}",
            std::io::Error::last_os_error()
        );
        WalIndexLock { _file: file }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_a_sqlite_database_that_is_locked_and_released() {
    let home = Home::sqlite(&[]);
    let server = home.serve();
    let client = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let (status, body) = get(&client, &server.url("/readyz")).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &"ready".into()));

    let shm = home.path().join("jwtd.db-shm");
    let lock = WalIndexLock::take(&shm);
    let body = readyz_becomes(
        &client,
        &server,
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz is 503 while the database is locked",
    )
    .await;
    assert_not_ready_but_alive(&client, &server, &body).await;

    drop(lock);
    readyz_becomes(
        &client,
        &server,
        StatusCode::OK,
        "/readyz is 200 again once the lock is released",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_a_postgres_database_that_stops_and_starts() {
    if !crate::postgres::available(
        "operations::readyz_follows_a_postgres_database_that_stops_and_starts",
        &[],
    ) {
        return;
    }
    let cluster = Cluster::private();
    let home = Home::on(&cluster.create_database(), &[]);
    let server = home.serve();
    let client = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    readyz_becomes(&client, &server, StatusCode::OK, "ready at start").await;

    cluster.stop();
    let body = readyz_becomes(
        &client,
        &server,
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz is 503 while PostgreSQL is stopped",
    )
    .await;
    assert_not_ready_but_alive(&client, &server, &body).await;

    cluster.start();
    readyz_becomes(
        &client,
        &server,
        StatusCode::OK,
        "/readyz is 200 again once PostgreSQL is back",
    )
    .await;
}
