//! `jwtd keys revoke` and `jwtd keys rotate`, against running replicas
//! and without a server.

use std::collections::BTreeSet;
use std::time::Duration;

use jwtd::clock::format_rfc3339;
use reqwest::StatusCode;
use serde_json::Value;

use super::{client, jwks_at, key_by_kid, login, verify_at};
use crate::helpers::{kid_of, poll_until};
use crate::process::{Home, only_in};

#[tokio::test]
async fn revoking_the_active_key_takes_effect_in_every_replica_within_a_second() {
    let home = Home::new(&[]);
    let servers = home.serve_replicas();
    let bases: Vec<String> = servers.iter().map(|server| server.url("")).collect();
    let base = bases[0].clone();
    home.add_user("alice", "pw");
    let client = client();
    let (access, refresh) = login(&client, &base, "alice", "pw").await;
    let before = home.keys();
    let revoked = only_in(&before, "active");
    let old_next = only_in(&before, "next");
    assert_eq!(kid_of(&access), revoked);
    assert_eq!(verify_at(&client, &base, &refresh).await.0, StatusCode::OK);

    let run = home.run(&["keys", "revoke", &revoked], None).ok();
    assert!(run.stdout.contains(&revoked), "{}", run.stdout);
    let (_, took) = poll_until(Duration::from_millis(1500), "revocation seen", async || {
        for base in &bases {
            let (kids, _) = jwks_at(&client, base).await;
            let seen = !kids.contains(&revoked)
                && verify_at(&client, base, &access).await.0 == StatusCode::UNAUTHORIZED
                && verify_at(&client, base, &refresh).await.0 == StatusCode::UNAUTHORIZED;
            if !seen {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(
        took <= Duration::from_millis(1000 + 250),
        "revocation took {took:?}"
    );

    // The next key signs now, and a new next key is published.
    let keys = home.keys();
    let revoked_row = key_by_kid(&keys, &revoked);
    assert_eq!(revoked_row["state"], "revoked", "{keys:#?}");
    assert!(revoked_row["revoked_at"].is_i64());
    assert_eq!(only_in(&keys, "active"), old_next, "the next key took over");
    let (keys, _) = poll_until(Duration::from_millis(1500), "a new next key", async || {
        let keys = home.keys();
        let next: Vec<&Value> = keys.iter().filter(|k| k["state"] == "next").collect();
        (next.len() == 1 && next[0]["kid"] != old_next.as_str()).then_some(keys)
    })
    .await;
    let new_next = only_in(&keys, "next");
    assert!(before.iter().all(|k| k["kid"] != new_next.as_str()));
    let (fresh, _) = login(&client, &base, "alice", "pw").await;
    assert_eq!(
        kid_of(&fresh),
        old_next,
        "the server signs with the new key"
    );
    assert_eq!(verify_at(&client, &base, &fresh).await.0, StatusCode::OK);
    let (kids, _) = jwks_at(&client, &base).await;
    assert_eq!(
        kids,
        BTreeSet::from([old_next.clone(), new_next.clone()]),
        "JWKS"
    );
    // Offline too: the served JWKS no longer knows the revoked kid.
    let jwks_url = format!("{base}/.well-known/jwks.json");
    home.run(&["token", "verify", &refresh, "--jwks", &jwks_url], None)
        .exits_with(1)
        .one_line_error(&["unknown key id"]);
    // Revoking it again is an error and changes nothing.
    home.run(&["keys", "revoke", &revoked], None)
        .one_line_error(&[&revoked]);
    assert_eq!(home.keys(), keys);

    // `keys rotate` says when the next key takes over: once it has been
    // published for key_prepublish (1 day by default).
    let created = key_by_kid(&keys, &new_next)["created_at"]
        .as_i64()
        .expect("created_at");
    let run = home.run(&["keys", "rotate"], None).ok();
    let when = format_rfc3339(created + 86_400);
    assert!(
        run.stdout.contains(&when),
        "rotate names {when}: {}",
        run.stdout
    );
    let after_rotate = home.keys();
    assert_eq!(only_in(&after_rotate, "active"), old_next);
    assert_eq!(only_in(&after_rotate, "next"), new_next);

    // `keys rotate --now` switches at once.
    let run = home.run(&["keys", "rotate", "--now"], None).ok();
    assert!(
        run.stdout.to_lowercase().contains("now active"),
        "{}",
        run.stdout
    );
    let rotated = home.keys();
    assert_eq!(only_in(&rotated, "active"), new_next, "{rotated:#?}");
    assert_eq!(key_by_kid(&rotated, &old_next)["state"], "retiring");
    let newest = only_in(&rotated, "next");
    assert!(![&revoked, &old_next, &new_next].contains(&&newest));
    poll_until(
        Duration::from_millis(1500),
        "the server signs with the rotated key",
        async || {
            let (token, _) = login(&client, &base, "alice", "pw").await;
            (kid_of(&token) == new_next).then_some(())
        },
    )
    .await;
    let (kids, _) = jwks_at(&client, &base).await;
    assert_eq!(kids, BTreeSet::from([old_next, new_next, newest]));
    // Tokens of the key that stopped signing still verify.
    assert_eq!(verify_at(&client, &base, &fresh).await.0, StatusCode::OK);
    drop(servers);
}

#[test]
fn revoking_the_active_key_without_a_server_promotes_next_and_makes_a_new_one() {
    let home = Home::new(&[]);
    drop(home.serve());
    let before = home.keys();
    let active = only_in(&before, "active");
    let next = only_in(&before, "next");

    home.run(&["keys", "revoke", &active], None).ok();
    let after = home.keys();
    assert_eq!(key_by_kid(&after, &active)["state"], "revoked");
    assert_eq!(
        only_in(&after, "active"),
        next,
        "the next key becomes active at once: {after:#?}"
    );
    let new_next = after
        .iter()
        .filter(|k| k["state"] == "next")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(
        new_next.len(),
        1,
        "SPEC §5: revoking the active key makes a new next key at once: {after:#?}"
    );
    assert!(before.iter().all(|k| k["kid"] != new_next[0].as_str()));
}
