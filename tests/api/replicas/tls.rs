//! Replicas on another host reach PostgreSQL over TLS, verifying its
//! certificate: with `sslmode=verify-full` they work against a server that
//! accepts only TLS, and refuse one whose authority they do not trust.

use reqwest::StatusCode;
use serde_json::json;

use crate::postgres::Cluster;
use crate::process::Home;

#[tokio::test]
async fn jwtd_talks_to_postgres_over_verified_tls() {
    if !crate::postgres::available(
        "replicas::jwtd_talks_to_postgres_over_verified_tls",
        &["openssl"],
    ) {
        return;
    }
    let (cluster, authority) = Cluster::private_tls_only();
    let url = cluster.create_database();
    let verified = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        authority.display()
    );
    let home = Home::on(&verified, &[]);
    home.add_user("alice", "pw");
    let server = home.serve();
    let response = reqwest::Client::new()
        .post(server.url("/api/token/"))
        .json(&json!({"username": "alice", "password": "pw"}))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::OK);
    drop(server);

    // The server takes nothing but TLS, and jwtd trusts no authority it
    // was not given.
    for (url, why) in [
        (format!("{url}?sslmode=disable"), "no encryption"),
        (format!("{url}?sslmode=verify-full"), "UnknownIssuer"),
    ] {
        Home::on(&url, &[])
            .run(&["migrate"], None)
            .one_line_error(&["cannot open database", why]);
    }
}
