//! Moving house: `jwtd copy-store --to postgres://…` copies a SQLite
//! deployment into an empty PostgreSQL database, and the sessions opened
//! before the move carry on after it, on every replica.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::kid_of;
use crate::postgres::fresh_database;
use crate::process::{Home, Server};

async fn post(client: &Client, server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    server.post_json(client, path, body).await
}

fn field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_deployment_moves_to_postgres_and_its_sessions_carry_on() {
    if !crate::postgres::available(
        "replicas::a_sqlite_deployment_moves_to_postgres_and_its_sessions_carry_on",
        &[],
    ) {
        return;
    }
    let client = Client::new();
    let old = Home::sqlite(&[("algorithm", "ES256")]);
    old.add_user("alice", "pw");
    old.add_user("bob", "pw");
    old.run(&["users", "disable", "bob"], None).ok();
    let server = old.serve();
    let login = json!({"username": "alice", "password": "pw"});
    // A session rotated once (its first token rotated away), a second one
    // blacklisted, a third untouched.
    let (_, first) = post(&client, &server, "/api/token/", login.clone()).await;
    let rotated_away = field(&first, "refresh");
    let (status, rotated) = post(
        &client,
        &server,
        "/api/token/refresh/",
        json!({"refresh": rotated_away}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, second) = post(&client, &server, "/api/token/", login.clone()).await;
    let blacklisted = field(&second, "refresh");
    let (status, _) = post(
        &client,
        &server,
        "/api/token/blacklist/",
        json!({"refresh": blacklisted}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, third) = post(&client, &server, "/api/token/", login.clone()).await;
    let kids_before = old.keys();
    drop(server);

    let url = fresh_database();
    let copied = old.run(&["copy-store", "--to", &url], None).ok();
    assert!(
        copied.stdout.contains("2 user(s)") && copied.stdout.contains("4 outstanding token(s)"),
        "{}",
        copied.stdout
    );
    assert!(!copied.stdout.contains(":pw@"), "no password in the output");

    // The new deployment: the same master key, the database on PostgreSQL.
    let master_key = old.master_key().display().to_string();
    let new = Home::on(
        &url,
        &[("algorithm", "ES256"), ("master_key_file", &master_key)],
    );
    assert_eq!(new.keys(), kids_before, "the keys moved as they were");
    let servers = new.serve_replicas();
    for server in &servers {
        let (status, body) = post(
            &client,
            server,
            "/api/token/verify/",
            json!({"token": field(&third, "access")}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Sessions carry on: the rotated one refreshes, the untouched one too.
    for (index, token) in [field(&rotated, "refresh"), field(&third, "refresh")]
        .into_iter()
        .enumerate()
    {
        let (status, body) = post(
            &client,
            &servers[index],
            "/api/token/refresh/",
            json!({"refresh": token}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            kids_before
                .iter()
                .any(|k| k["kid"] == kid_of(&field(&body, "access")))
        );
    }
    // The blacklist moved: both refused.
    for token in [&blacklisted, &rotated_away] {
        let (status, body) = post(
            &client,
            &servers[2],
            "/api/token/refresh/",
            json!({"refresh": token}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["detail"], "Token is blacklisted");
    }
    // Users moved with their passwords and flags; new ones come after them.
    let (status, _) = post(&client, &servers[0], "/api/token/", login).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(
        &client,
        &servers[0],
        "/api/token/",
        json!({"username": "bob", "password": "pw"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "bob stays disabled");
    new.add_user("carol", "pw");
    let users = new.run(&["users", "list"], None).ok().stdout;
    assert!(
        users
            .lines()
            .any(|line| line.split_whitespace().take(2).eq(["3", "carol"])),
        "{users}"
    );
    drop(servers);

    // A second copy into the same database is refused, and so are targets
    // that are not PostgreSQL.
    old.run(&["copy-store", "--to", &url], None)
        .one_line_error(&["not empty", "3 user(s)"]);
    old.run(&["copy-store", "--to", "sqlite://elsewhere.db"], None)
        .one_line_error(&["--to must be a PostgreSQL URL"]);
    new.run(&["copy-store", "--to", &fresh_database()], None)
        .one_line_error(&["copies a SQLite deployment"]);
}
