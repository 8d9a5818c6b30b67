//! Replicas learn of changes by PostgreSQL's LISTEN/NOTIFY, not only by
//! polling: each is woken by the commit of another process's change.

use std::time::Duration;

use crate::postgres::fresh_database;
use crate::process::Home;

#[tokio::test]
async fn a_change_from_the_cli_wakes_every_replica() {
    if !crate::postgres::available("replicas::a_change_from_the_cli_wakes_every_replica", &[]) {
        return;
    }
    let mut home = Home::on(&fresh_database(), &[]);
    home.set_env("RUST_LOG", "jwtd=debug");
    home.add_user("alice", "pw");
    let servers = home.serve_replicas();
    for (change, args) in [
        ("a key rotated now", &["keys", "rotate", "--now"][..]),
        ("a user disabled", &["users", "disable", "alice"][..]),
    ] {
        let before: Vec<usize> = servers
            .iter()
            .map(|server| {
                server
                    .log()
                    .iter()
                    .filter(|line| line.contains("woken by a change notification"))
                    .count()
            })
            .collect();
        home.run(args, None).ok();
        for (server, seen) in servers.iter().zip(before) {
            server
                .wait_for_lines(
                    "woken by a change notification",
                    seen + 1,
                    Duration::from_secs(5),
                    change,
                )
                .await;
        }
    }
}
