//! Starting on a database whose migrations are all applied takes no
//! session lock (what a transaction-pooling PgBouncer could leave held on
//! a pooled connection); applying one does, so replicas starting at once
//! on an empty database apply each migration once.

use std::time::Duration;

use crate::postgres::fresh_database;
use crate::process::Home;

/// The advisory lock sqlx takes to migrate the database `name`:
/// 0x3d32ad9e × CRC-32 (IEEE) of the name.
fn migration_lock(name: &str) -> i64 {
    let crc = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zlib; print(zlib.crc32(sys.argv[1].encode()))",
            name,
        ])
        .output()
        .expect("python3 runs");
    let crc: i64 = String::from_utf8(crc.stdout)
        .unwrap()
        .trim()
        .parse()
        .expect("a number");
    0x3d32ad9e * crc
}

#[tokio::test]
async fn a_start_with_every_migration_applied_takes_no_session_lock() {
    if !crate::postgres::available(
        "replicas::a_start_with_every_migration_applied_takes_no_session_lock",
        &["python3"],
    ) {
        return;
    }
    let url = fresh_database();
    let name = url.rsplit('/').next().expect("a database name");
    let home = Home::on(&url, &[]);
    home.run(&["migrate"], None).ok();

    // Another session holds the migration lock for good.
    let holder = sqlx::PgPool::connect(&url)
        .await
        .expect("the database opens");
    let mut session = holder.acquire().await.expect("a connection");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(migration_lock(name))
        .execute(&mut *session)
        .await
        .expect("the lock is taken");

    // Every migration is applied: `serve` starts anyway.
    let server = home.serve();
    drop(server);

    // On an empty database, migrating waits for the lock.
    let empty = fresh_database();
    let empty_name = empty.rsplit('/').next().expect("a database name");
    // Advisory locks belong to their database.
    let holder = sqlx::PgPool::connect(&empty)
        .await
        .expect("the database opens");
    let mut session = holder.acquire().await.expect("a connection");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(migration_lock(empty_name))
        .execute(&mut *session)
        .await
        .expect("the lock is taken");
    let mut waiting = Home::on(&empty, &[]).spawn_server();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        waiting.wait_listening(Duration::from_millis(10)).is_err(),
        "a server that must migrate waits for the lock: {:?}",
        waiting.log()
    );
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *session)
        .await
        .expect("the locks are released");
    waiting.ready();
}
