//! Offline verification with exported keys (checked by jwt-simple too),
//! and the exit codes and messages of `jwtd token verify`.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, ES256KeyPair, ES256PublicKey, ES384PublicKey,
    Ed25519PublicKey, EdDSAPublicKeyLike, JWTClaims, PS256PublicKey, RS256PublicKey,
    RSAPublicKeyLike, VerificationOptions,
};
use serde_json::Value;

use super::{client, kids_of, login, wall};
use crate::helpers::{claims_of, header_of, kid_of, poll_until};
use crate::process::Home;

/// Claims as jwt-simple returns them (the custom ones as a map).
type Claims = JWTClaims<serde_json::Map<String, Value>>;

fn verify_with_jwt_simple(pem: &str, token: &str, kid: &str) -> Claims {
    let options = VerificationOptions {
        required_key_id: Some(kid.to_owned()),
        ..VerificationOptions::default()
    };
    match header_of(token)["alg"].as_str() {
        Some("RS256") => RS256PublicKey::from_pem(pem)
            .expect("jwt-simple reads the exported RSA PEM")
            .with_key_id(kid)
            .verify_token(token, Some(options))
            .expect("jwt-simple verifies the token"),
        Some("ES256") => ES256PublicKey::from_pem(pem)
            .expect("jwt-simple reads the exported P-256 PEM")
            .with_key_id(kid)
            .verify_token(token, Some(options))
            .expect("jwt-simple verifies the token"),
        Some("ES384") => ES384PublicKey::from_pem(pem)
            .expect("jwt-simple reads the exported P-384 PEM")
            .with_key_id(kid)
            .verify_token(token, Some(options))
            .expect("jwt-simple verifies the token"),
        Some("PS256") => PS256PublicKey::from_pem(&pkcs1_of_ps256_pem(pem))
            .expect("jwt-simple reads the RSA key of the exported PEM")
            .with_key_id(kid)
            .verify_token(token, Some(options))
            .expect("jwt-simple verifies the token"),
        Some("EdDSA") => Ed25519PublicKey::from_pem(pem)
            .expect("jwt-simple reads the exported Ed25519 PEM")
            .with_key_id(kid)
            .verify_token(token, Some(options))
            .expect("jwt-simple verifies the token"),
        other => panic!("unexpected alg {other:?}"),
    }
}

/// The RSASSA-PSS AlgorithmIdentifier of RFC 4055 restricted to SHA-256,
/// MGF1 with SHA-256 and a 32-byte salt, in hex.
const PS256_ALGORITHM_ID: &str = "304106092a864886f70d01010a3034a00f300d06096086480165030402010500\
                                  a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120";

/// A PS256 key's exported PEM names RSASSA-PSS with PS256's parameters;
/// jwt-simple reads RSA keys only under the plain rsaEncryption identifier.
/// Checks the identifier and returns the RSAPublicKey inside as a PKCS#1
/// `RSA PUBLIC KEY` PEM, for jwt-simple to verify with.
fn pkcs1_of_ps256_pem(pem: &str) -> String {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).expect("base64 PEM body");
    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
    // SEQUENCE (4-byte header) { AlgorithmIdentifier, BIT STRING (4-byte
    // header, no unused bits) { RSAPublicKey } }, for a 2048-bit key.
    assert!(hex[8..].starts_with(PS256_ALGORITHM_ID), "{hex}");
    let bit_string = &der[4 + PS256_ALGORITHM_ID.len() / 2..];
    assert_eq!(&bit_string[..2], [0x03, 0x82]);
    assert_eq!(bit_string[4], 0, "no unused bits");
    let encoded = STANDARD.encode(&bit_string[5..]);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// `token verify` with `how`; panics unless it exits 0 printing `token`'s
/// claims as JSON.
#[track_caller]
fn assert_cli_accepts(home: &Home, token: &str, how: &[&str]) {
    let mut args = vec!["token", "verify", token];
    args.extend_from_slice(how);
    let run = home.run(&args, None).ok();
    let printed: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("{how:?}: stdout is not JSON ({err}): {}", run.stdout));
    assert_eq!(printed, claims_of(token), "{how:?} prints the claims");
    assert_eq!(run.status.code(), Some(0));
    assert!(
        run.stderr.trim().is_empty(),
        "{how:?}: stderr {}",
        run.stderr
    );
}

async fn exported_keys_verify_offline(algorithm: &str) {
    let home = Home::new(&[("algorithm", algorithm)]);
    let server = home.serve();
    home.add_user("alice", "pw");
    let client = client();
    let (access, refresh) = login(&client, &server.url(""), "alice", "pw").await;
    assert_eq!(header_of(&access)["alg"], algorithm);
    let active = home.only("active");
    assert_eq!(kid_of(&access), active);

    let out = home.path().join("exported");
    let out_arg = out.display().to_string();
    home.run(&["keys", "export", "--out", &out_arg], None).ok();

    // jwks.json is what the server serves, and there is one PEM per
    // published key and nothing else.
    let served: Value = client
        .get(format!("{}/.well-known/jwks.json", server.url("")))
        .send()
        .await
        .expect("JWKS")
        .json()
        .await
        .expect("JSON");
    let exported: Value =
        serde_json::from_slice(&std::fs::read(out.join("jwks.json")).expect("jwks.json written"))
            .expect("jwks.json is JSON");
    assert_eq!(exported, served, "the exported JWKS is the served one");
    let kids = kids_of(&served);
    assert_eq!(kids.len(), 2, "active and next are published: {served}");
    let mut files: BTreeSet<String> = std::fs::read_dir(&out)
        .expect("out dir")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.remove("jwks.json"));
    let pems: BTreeSet<String> = kids.iter().map(|kid| format!("{kid}.pem")).collect();
    assert_eq!(files, pems, "one <kid>.pem per published key");
    for file in &pems {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(
            text.starts_with("-----BEGIN PUBLIC KEY-----"),
            "{file}: {text}"
        );
        assert!(!text.contains("PRIVATE"), "{file} holds only a public key");
    }

    let active_pem = out.join(format!("{active}.pem"));
    let active_pem_arg = active_pem.display().to_string();
    let jwks_file = out.join("jwks.json").display().to_string();
    let jwks_url = format!("{}/.well-known/jwks.json", server.url(""));
    for token in [&access, &refresh] {
        assert_cli_accepts(&home, token, &["--key", &active_pem_arg]);
        assert_cli_accepts(&home, token, &["--jwks", &jwks_file]);
        assert_cli_accepts(&home, token, &["--jwks", &jwks_url]);
    }

    // An independent JOSE implementation accepts the exported PEM.
    let pem = std::fs::read_to_string(&active_pem).unwrap();
    for token in [&access, &refresh] {
        let claims = verify_with_jwt_simple(&pem, token, &active);
        let expected = claims_of(token);
        assert_eq!(
            claims.expires_at.map(|t| t.as_secs()),
            expected["exp"].as_u64()
        );
        assert_eq!(
            claims.custom.get("token_type"),
            Some(&expected["token_type"])
        );
        assert_eq!(claims.custom.get("user_id"), Some(&expected["user_id"]));
    }

    // Without --out, the keys go to keys/ under the working directory.
    home.run(&["keys", "export"], None).ok();
    let default_jwks: Value = serde_json::from_slice(
        &std::fs::read(home.path().join("keys/jwks.json")).expect("keys/jwks.json written"),
    )
    .unwrap();
    assert_eq!(default_jwks, served);
    assert!(home.path().join(format!("keys/{active}.pem")).is_file());
}

#[tokio::test]
async fn rs256_exported_keys_verify_offline_and_with_jwt_simple() {
    exported_keys_verify_offline("RS256").await;
}

#[tokio::test]
async fn es256_exported_keys_verify_offline_and_with_jwt_simple() {
    exported_keys_verify_offline("ES256").await;
}

#[tokio::test]
async fn es384_exported_keys_verify_offline_and_with_jwt_simple() {
    exported_keys_verify_offline("ES384").await;
}

#[tokio::test]
async fn ps256_exported_keys_verify_offline_and_with_jwt_simple() {
    exported_keys_verify_offline("PS256").await;
}

#[tokio::test]
async fn eddsa_exported_keys_verify_offline_and_with_jwt_simple() {
    exported_keys_verify_offline("EdDSA").await;
}

// --- 4. exit codes and messages ----------------------------------------------------------------

/// Replaces one character in the middle of the signature.
fn tamper(token: &str) -> String {
    let cut = token.rfind('.').expect("three parts") + 1;
    let middle = cut + (token.len() - cut) / 2;
    let old = token.as_bytes()[middle];
    let new = if old == b'A' { 'B' } else { 'A' };
    format!("{}{new}{}", &token[..middle], &token[middle + 1..])
}

#[tokio::test]
async fn token_verify_names_why_a_token_is_refused_and_bad_input_changes_nothing() {
    let home = Home::new(&[("access_token_lifetime", "1s")]);
    let server = home.serve();
    home.add_user("alice", "pw");
    let client = client();
    let (access, refresh) = login(&client, &server.url(""), "alice", "pw").await;
    let access_exp = claims_of(&access)["exp"].as_f64().expect("exp");
    let active = home.only("active");
    let next = home.only("next");

    let out = home.path().join("exported");
    let out_arg = out.display().to_string();
    home.run(&["keys", "export", "--out", &out_arg], None).ok();
    let jwks_file = out.join("jwks.json").display().to_string();
    let jwks_url = format!("{}/.well-known/jwks.json", server.url(""));
    let active_pem = out.join(format!("{active}.pem")).display().to_string();
    let next_pem = out.join(format!("{next}.pem")).display().to_string();
    // The refresh token lives a day: the control case.
    assert_cli_accepts(&home, &refresh, &["--jwks", &jwks_file]);

    let before = home.keys();
    let refused = |token: &str, how: &[&str], reason: &str| {
        let mut args = vec!["token", "verify", token];
        args.extend_from_slice(how);
        home.run(&args, None)
            .exits_with(1)
            .one_line_error(&[reason])
    };

    // Bad signature, through a JWKS and through a PEM.
    let tampered = tamper(&refresh);
    refused(&tampered, &["--jwks", &jwks_file], "bad signature");
    refused(&tampered, &["--key", &active_pem], "bad signature");
    // With --key the kid is not consulted: another key's PEM is a bad signature.
    refused(&refresh, &["--key", &next_pem], "bad signature");

    // Unknown kid: a JWKS without the key that signed.
    let mut without_active: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("jwks.json")).unwrap()).unwrap();
    without_active["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] != active.as_str());
    let other_jwks = home.path().join("other-jwks.json");
    std::fs::write(&other_jwks, without_active.to_string()).unwrap();
    let other_jwks = other_jwks.display().to_string();
    refused(&refresh, &["--jwks", &other_jwks], "unknown key id");

    // Wrong audience: the token has no aud.
    refused(
        &refresh,
        &["--jwks", &jwks_url, "--audience", "other"],
        "wrong audience",
    );
    refused(
        &refresh,
        &["--key", &active_pem, "--audience", "other"],
        "wrong audience",
    );

    // Not a JWT at all.
    let unsigned = &refresh[..refresh.rfind('.').unwrap()];
    for junk in ["hello", "a.b.c", "", unsigned] {
        refused(junk, &["--jwks", &jwks_file], "not a well-formed JWS");
    }

    // Bad input to the commands: one line, non-zero, nothing changed.
    let line = home
        .run(&["keys", "revoke", "no-such-kid"], None)
        .one_line_error(&[]);
    assert!(line.contains("no-such-kid"), "names the kid: {line}");

    let not_json = home.path().join("not-json.json");
    std::fs::write(&not_json, "this is not JSON {").unwrap();
    let not_json = not_json.display().to_string();
    home.run(&["token", "verify", &refresh, "--jwks", &not_json], None)
        .one_line_error(&["not-json.json"]);
    let empty_jwks = home.path().join("empty-jwks.json");
    std::fs::write(&empty_jwks, r#"{"keys":[]}"#).unwrap();
    let empty_jwks = empty_jwks.display().to_string();
    home.run(&["token", "verify", &refresh, "--jwks", &empty_jwks], None)
        .one_line_error(&[]);
    let missing = home.path().join("missing.json").display().to_string();
    home.run(&["token", "verify", &refresh, "--jwks", &missing], None)
        .one_line_error(&["missing.json"]);

    let master = home.master_key().display().to_string();
    home.run(&["token", "verify", &refresh, "--key", &master], None)
        .one_line_error(&["master.key"]);
    let private_pem = home.path().join("private.pem");
    std::fs::write(&private_pem, ES256KeyPair::generate().to_pem().unwrap()).unwrap();
    let private_pem = private_pem.display().to_string();
    home.run(&["token", "verify", &refresh, "--key", &private_pem], None)
        .one_line_error(&["PRIVATE KEY"]);
    home.run(&["token", "verify", &refresh, "--key", &jwks_file], None)
        .one_line_error(&[]);

    home.run(&["token", "verify", &refresh], None)
        .one_line_error(&["--jwks"]);
    home.run(
        &[
            "token",
            "verify",
            &refresh,
            "--jwks",
            &jwks_file,
            "--key",
            &active_pem,
        ],
        None,
    )
    .one_line_error(&[]);

    assert_eq!(home.keys(), before, "no key was created or changed");
    assert!(
        !home.path().join("keys").exists(),
        "nothing was exported by a failed command"
    );

    // Expired: wait (bounded) until the 1 s access token is past its exp.
    poll_until(
        Duration::from_secs(5),
        "the 1 s access token is past its exp",
        async || (wall() >= access_exp + 0.05).then_some(()),
    )
    .await;
    refused(&access, &["--jwks", &jwks_file], "expired");
    refused(&access, &["--key", &active_pem], "expired");
    drop(server);
}
