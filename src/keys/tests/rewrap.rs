//! `rewrap` against a real store: every private key re-sealed under the
//! first master key, and a private key erased since it was read stays
//! erased.

use super::START;
use crate::keys::rewrap::{Rewrapped, rewrap};
use crate::keys::seal::fingerprint_of;
use crate::keys::{KeyError, MasterKey, material};
use crate::store::{KeyState, Store, StoredKey};
use crate::verifier::Algorithm;

const A: [u8; 32] = [1; 32];
const B: [u8; 32] = [2; 32];

fn master(keys: &[&[u8; 32]]) -> MasterKey {
    use base64::Engine;
    let text: Vec<String> = keys
        .iter()
        .map(|key| base64::engine::general_purpose::STANDARD.encode(key))
        .collect();
    MasterKey::from_list(&text.join(",")).expect("master keys")
}

fn stored(master: &MasterKey, state: KeyState) -> StoredKey {
    let key = material::generate(Algorithm::Es256, 2048).expect("a key");
    let erased = matches!(state, KeyState::Retired | KeyState::Revoked);
    StoredKey {
        sealed_private: (!erased).then(|| master.seal(&key.kid, &key.pkcs8).expect("sealed")),
        kid: key.kid,
        alg: key.alg,
        state,
        public: key.public,
        created_at: START,
        activated_at: None,
        deactivated_at: None,
        retired_at: erased.then_some(START),
        revoked_at: None,
        rotate_requested_at: None,
    }
}

async fn store_with(keys: &[StoredKey]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("a folder");
    let url = format!("sqlite://{}", dir.path().join("jwtd.db").display());
    let store = Store::open(&url).await.expect("the store opens");
    let mut tx = store.key_transaction().await.expect("a key transaction");
    for key in keys {
        tx.insert(key).await.expect("inserted");
    }
    tx.commit().await.expect("committed");
    (dir, store)
}

#[tokio::test]
async fn every_private_key_is_resealed_under_the_first_master_key() {
    let old = master(&[&A]);
    let keys = [
        stored(&old, KeyState::Active),
        stored(&old, KeyState::Retiring),
        stored(&old, KeyState::Retired),
    ];
    let (_dir, store) = store_with(&keys).await;
    let both = master(&[&B, &A]);
    let under = both.sealing_fingerprint();

    let done = rewrap(&store, &both).await.expect("rewrapped");
    assert_eq!(
        done,
        Rewrapped {
            resealed: 2,
            already: 0,
            under
        }
    );
    let (_, after) = store.keys_with_version().await.expect("keys");
    let only_new = master(&[&B]);
    for key in &after {
        match key.sealed_private.as_deref() {
            Some(sealed) => {
                assert_eq!(fingerprint_of(sealed), Some(under));
                only_new
                    .open(&key.kid, sealed)
                    .expect("opens with the new key");
            }
            None => assert_eq!(key.state, KeyState::Retired),
        }
    }
    let again = rewrap(&store, &both).await.expect("rewrapped");
    assert_eq!(
        again,
        Rewrapped {
            resealed: 0,
            already: 2,
            under
        }
    );
    store.close().await;
}

#[tokio::test]
async fn a_key_no_master_key_opens_stops_rewrap_and_changes_nothing() {
    let old = master(&[&A]);
    let keys = [stored(&old, KeyState::Active), stored(&old, KeyState::Next)];
    let (_dir, store) = store_with(&keys).await;
    let (_, before) = store.keys_with_version().await.expect("keys");

    let err = rewrap(&store, &master(&[&B])).await.expect_err("refused");
    assert!(
        matches!(&err, KeyError::Decrypt { kid, .. } if kid == &before[0].kid),
        "{err}"
    );
    let (_, after) = store.keys_with_version().await.expect("keys");
    let sealed = |keys: &[StoredKey]| {
        keys.iter()
            .map(|k| k.sealed_private.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(sealed(&after), sealed(&before));
    store.close().await;
}

#[tokio::test]
async fn a_private_key_erased_or_changed_since_it_was_read_is_left_alone() {
    let old = master(&[&A]);
    let live = stored(&old, KeyState::Active);
    let retired = stored(&old, KeyState::Retired);
    let (_dir, store) = store_with(&[live.clone(), retired.clone()]).await;
    let read = live.sealed_private.clone().expect("sealed");
    let resealed = master(&[&B]).seal(&live.kid, b"x").expect("sealed");

    let mut tx = store.key_transaction().await.expect("a key transaction");
    let stale = old.seal(&live.kid, b"y").expect("sealed");
    assert!(
        !tx.replace_sealed(&live.kid, &stale, &resealed)
            .await
            .expect("ran")
    );
    assert!(
        !tx.replace_sealed(&retired.kid, &read, &resealed)
            .await
            .expect("ran")
    );
    assert!(
        tx.replace_sealed(&live.kid, &read, &resealed)
            .await
            .expect("ran")
    );
    tx.commit().await.expect("committed");

    let (_, after) = store.keys_with_version().await.expect("keys");
    let by_kid = |kid: &str| after.iter().find(|k| k.kid == kid).expect("the key");
    assert_eq!(
        by_kid(&live.kid).sealed_private.as_deref(),
        Some(&resealed[..])
    );
    assert_eq!(by_kid(&retired.kid).sealed_private, None, "still erased");
    store.close().await;
}
