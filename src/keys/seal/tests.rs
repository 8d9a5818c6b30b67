use super::*;

const A: [u8; 32] = [9; 32];
const B: [u8; 32] = [8; 32];

fn keys(text: &str) -> MasterKey {
    MasterKey::from_list(text).unwrap()
}

fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// What `seal` wrote before sealed keys named their master key.
fn sealed_without_fingerprint(key: &[u8], kid: &str, plaintext: &[u8]) -> Vec<u8> {
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
    let nonce = [3u8; NONCE_LEN];
    let mut body = plaintext.to_vec();
    aead.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(kid.as_bytes()),
        &mut body,
    )
    .unwrap();
    [&[SEALED_WITHOUT_FINGERPRINT][..], &nonce, &body].concat()
}

#[test]
fn seal_round_trips_and_binds_the_kid() {
    let key = MasterKey::from_bytes(&A).unwrap();
    let sealed = key.seal("kid-1", b"secret").unwrap();
    assert_eq!(key.open("kid-1", &sealed).unwrap().as_slice(), b"secret");
    assert!(matches!(
        key.open("kid-2", &sealed),
        Err(KeyError::Decrypt { .. })
    ));
    let other = MasterKey::from_bytes(&B).unwrap();
    assert!(other.open("kid-1", &sealed).is_err());
    assert!(key.open("kid-1", &sealed[..5]).is_err());
}

#[test]
fn the_first_key_seals_and_every_key_opens() {
    let (a, b) = (base64(&A), base64(&B));
    let old = keys(&a);
    let sealed_by_a = old.seal("k", b"x").unwrap();
    let both = keys(&format!("{b}, {a}"));
    assert_eq!(both.open("k", &sealed_by_a).unwrap().as_slice(), b"x");
    let sealed_by_b = both.seal("k", b"y").unwrap();
    assert_eq!(
        fingerprint_of(&sealed_by_b),
        Some(keys(&b).sealing_fingerprint()),
        "the first key seals"
    );
    assert_eq!(keys(&b).open("k", &sealed_by_b).unwrap().as_slice(), b"y");
    assert!(old.open("k", &sealed_by_b).is_err());
}

#[test]
fn a_sealed_key_names_its_master_key_and_opens_with_that_one() {
    let (a, b) = (base64(&A), base64(&B));
    let sealed = keys(&a).seal("k", b"x").unwrap();
    let fingerprint = keys(&a).sealing_fingerprint();
    assert_eq!(fingerprint.to_string().len(), 16);
    assert!(
        fingerprint
            .to_string()
            .bytes()
            .all(|c| c.is_ascii_hexdigit())
    );
    assert_ne!(fingerprint, keys(&b).sealing_fingerprint());
    assert_eq!(fingerprint_of(&sealed), Some(fingerprint));
    assert_eq!(keys(&b).sealed_with("k", &sealed), Some(fingerprint));

    // The fingerprint picks the key: naming another configured key fails.
    let mut relabelled = sealed.clone();
    relabelled[1..9].copy_from_slice(&keys(&b).sealing_fingerprint().0);
    assert!(keys(&format!("{a},{b}")).open("k", &relabelled).is_err());

    match keys(&b).open("k", &sealed) {
        Err(err @ KeyError::Decrypt { .. }) => {
            let message = err.to_string();
            assert!(message.contains(" k "), "{message}");
            assert!(message.contains(&fingerprint.to_string()), "{message}");
        }
        other => panic!("expected a decrypt error, got {other:?}"),
    }
}

#[test]
fn sealed_keys_without_a_fingerprint_still_open() {
    let (a, b) = (base64(&A), base64(&B));
    let old = sealed_without_fingerprint(&A, "k", b"x");
    let both = keys(&format!("{b},{a}"));
    assert_eq!(both.open("k", &old).unwrap().as_slice(), b"x");
    assert_eq!(fingerprint_of(&old), None);
    assert_eq!(
        both.sealed_with("k", &old),
        Some(keys(&a).sealing_fingerprint())
    );
    assert_eq!(keys(&b).sealed_with("k", &old), None);
    assert!(matches!(
        keys(&b).open("k", &old),
        Err(KeyError::Decrypt {
            sealed_with: None,
            ..
        })
    ));
}

#[test]
fn master_key_text_is_checked() {
    assert!(MasterKey::from_base64("not base64!").is_err());
    assert!(MasterKey::from_base64(&base64(&[1u8; 16])).is_err());
    assert!(MasterKey::from_base64(&base64(&[1u8; 32])).is_ok());
}

#[test]
fn a_bad_entry_or_line_is_named_without_its_text() {
    let (good, short) = (base64(&A), base64(&[1u8; 16]));
    let message = |result: Result<MasterKey, KeyError>| result.unwrap_err().to_string();

    let listed = message(MasterKey::from_list(&format!("{good},{short}")));
    assert!(listed.contains("master_key entry 2"), "{listed}");
    assert!(listed.contains("must be 32 bytes"), "{listed}");
    assert!(!listed.contains(&short), "{listed}");
    let empty = message(MasterKey::from_list(&format!("{good},")));
    assert!(empty.contains("entry 2"), "{empty}");

    let file = Path::new("keys/master.key");
    let text = format!("\n{good}\n\n  {good}  \nnot base64!\n");
    let lined = message(MasterKey::from_lines(&text, file));
    assert!(lined.contains("keys/master.key line 5"), "{lined}");
    assert!(!lined.contains("not base64!"), "{lined}");
    let blank = message(MasterKey::from_lines("\n \n", file));
    assert!(blank.contains("holds no key"), "{blank}");
    assert!(MasterKey::from_lines(&format!("\n{good}\n\n{good}\n"), file).is_ok());
}

#[test]
fn created_key_file_is_private_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/master.key");
    let source = MasterKeySource::File(path.clone());
    assert!(MasterKey::load_existing(&source).unwrap().is_none());
    let first = MasterKey::load(&source).unwrap();
    let sealed = first.seal("k", b"x").unwrap();
    let second = MasterKey::load(&source).unwrap();
    assert_eq!(second.open("k", &sealed).unwrap().as_slice(), b"x");
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn debug_hides_every_key() {
    let both = keys(&format!("{},{}", base64(&A), base64(&B)));
    assert_eq!(format!("{both:?}"), "MasterKey([redacted])");
}
