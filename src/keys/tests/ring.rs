//! Which key the in-memory ring signs with around a handover.

use super::START;
use crate::keys::MasterKey;
use crate::keys::material;
use crate::keys::ring::KeySet;
use crate::keys::schedule::RotationPolicy;
use crate::store::{KeyState, StoredKey};
use crate::verifier::Algorithm;

const POLICY: RotationPolicy = RotationPolicy {
    rotation_interval: 100,
    prepublish: 10,
    retire_after: 50,
    algorithm: Algorithm::Es256,
};

fn stored(master: &MasterKey, state: KeyState, created_at: i64) -> StoredKey {
    let key = material::generate(Algorithm::Es256, 2048).expect("a key");
    StoredKey {
        sealed_private: Some(master.seal(&key.kid, &key.pkcs8).expect("sealed")),
        kid: key.kid,
        alg: key.alg,
        state,
        public: key.public,
        created_at,
        activated_at: None,
        deactivated_at: None,
        retired_at: None,
        revoked_at: None,
        rotate_requested_at: None,
    }
}

fn signer(set: &KeySet, now: i64) -> String {
    set.signer_at(now).expect("a key signs").kid().to_owned()
}

#[test]
fn a_handover_recorded_ahead_of_this_clock_waits_for_its_instant() {
    let master = MasterKey::from_bytes(&[7; 32]).expect("a master key");
    // The step to `b` was taken by a replica whose clock runs ahead: it
    // recorded the handover at START + 100, which this process's clock
    // has not reached.
    let mut a = stored(&master, KeyState::Retiring, START - 50);
    a.activated_at = Some(START);
    a.deactivated_at = Some(START + 100);
    let mut b = stored(&master, KeyState::Active, START);
    b.activated_at = Some(START + 100);
    let c = stored(&master, KeyState::Next, START + 97);
    let set = KeySet::build(
        1,
        &[a.clone(), b.clone(), c.clone()],
        &master,
        None,
        &POLICY,
    )
    .expect("the set builds");

    assert_eq!(
        signer(&set, START + 97),
        a.kid,
        "the replaced key until the instant"
    );
    assert_eq!(signer(&set, START + 99), a.kid);
    assert_eq!(signer(&set, START + 100), b.kid, "the new key from it on");
    assert_eq!(signer(&set, START + 199), b.kid);
    assert_eq!(
        signer(&set, START + 200),
        c.kid,
        "and the next one when due"
    );
}
