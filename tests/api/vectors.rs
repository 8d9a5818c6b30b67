//! Test vectors nobody here wrote, from Project Wycheproof (C2SP/wycheproof),
//! run through jwtd's own verification path:
//!
//! - the signature primitives: ECDSA P-256 SHA-256 and P-384 SHA-384 in
//!   IEEE P1363 form (r‖s, the JOSE form), RSA PKCS#1 v1.5 SHA-256 and
//!   RSASSA-PSS SHA-256 with MGF1-SHA-256 and a 32-byte salt with 2048,
//!   3072 and 4096-bit keys, and Ed25519 (its keys read as OKP JWKs), from
//!   the `wycheproof` crate, through [`PublicKey::verifies`]; the PSS keys
//!   that carry their parameters are also read from their PEM;
//! - the JWS cases of `json_web_signature_test.json` (a copy with its licence
//!   in `tests/data/wycheproof/`) whose key is an RS256, PS256 or P-256 key, through
//!   [`verify_token`] with the group's JWK read by [`JwkSet::parse`] and
//!   [`PublicKey::from_jwk`];
//! - inputs found by the fuzz targets under `fuzz/`, as regressions (none
//!   so far: see the end of this file).
//!
//! Every count is asserted, so a loader that silently finds nothing fails.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::verifier::Algorithm;
use jwtd::verifier::{
    ExpectedType, Invalid, JwkSet, JwksError, KeyLookup, PublicKey, Rules, TokenError, verify_token,
};
use serde_json::{Value, json};
use wycheproof::{
    EdwardsCurve, EllipticCurve, HashFunction, TestResult, ecdsa, eddsa, rsa_pkcs1_verify,
    rsa_pss_verify,
};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------
// Signature primitives
// ---------------------------------------------------------------------------

/// How the vectors of one file went.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
}

/// Checks each vector against Wycheproof's verdict and collects every
/// mismatch, so one run lists them all.
struct Run {
    file: &'static str,
    /// The "acceptable" vectors of the file and whether jwtd accepts them.
    acceptable: &'static [(usize, bool)],
    tally: Tally,
    failures: Vec<String>,
}

impl Run {
    fn new(file: &'static str, acceptable: &'static [(usize, bool)]) -> Self {
        Self {
            file,
            acceptable,
            tally: Tally::default(),
            failures: Vec::new(),
        }
    }

    fn record(&mut self, tc_id: usize, comment: &str, expected: TestResult, accepted: bool) {
        let verdict = if accepted { "accepted" } else { "rejected" };
        let right = match expected {
            TestResult::Valid => {
                self.tally.valid += 1;
                accepted
            }
            TestResult::Invalid => {
                self.tally.invalid += 1;
                !accepted
            }
            TestResult::Acceptable => {
                self.tally.acceptable += 1;
                self.acceptable.contains(&(tc_id, accepted))
            }
        };
        if !right {
            self.failures.push(format!(
                "tcId {tc_id} ({comment}): Wycheproof says {expected:?}, jwtd {verdict}"
            ));
        }
    }

    #[track_caller]
    fn finish(self) -> Tally {
        assert!(
            self.failures.is_empty(),
            "{}: {} vectors went the wrong way:\n{}",
            self.file,
            self.failures.len(),
            self.failures.join("\n")
        );
        self.tally
    }
}

#[test]
fn wycheproof_ecdsa_p256_sha256_p1363() {
    let set = ecdsa::TestSet::load(ecdsa::TestName::EcdsaSecp256r1Sha256P1363)
        .expect("the wycheproof crate loads its P-256 P1363 vectors");
    let mut run = Run::new("ecdsa_secp256r1_sha256_p1363_test.json", &[]);
    for group in &set.test_groups {
        assert_eq!(group.key.curve, EllipticCurve::Secp256r1);
        assert_eq!(group.hash, HashFunction::Sha2_256);
        // The uncompressed point: 0x04 ‖ x ‖ y, 32 bytes each.
        let point = &group.key.key;
        assert_eq!((point.len(), point[0]), (65, 0x04), "uncompressed point");
        let key = PublicKey::p256(&b64(&point[1..33]), &b64(&point[33..]))
            .expect("every Wycheproof P-256 key is a valid point");
        for test in &group.tests {
            let accepted = key.verifies(&test.msg, &b64(&test.sig));
            run.record(test.tc_id, &test.comment, test.result, accepted);
        }
    }
    let tally = run.finish();
    assert_eq!(
        tally,
        Tally {
            valid: 173,
            invalid: 89,
            acceptable: 0
        }
    );
}

#[test]
fn wycheproof_ecdsa_p384_sha384_p1363() {
    let set = ecdsa::TestSet::load(ecdsa::TestName::EcdsaSecp384r1Sha384P1363)
        .expect("the wycheproof crate loads its P-384 P1363 vectors");
    let mut run = Run::new("ecdsa_secp384r1_sha384_p1363_test.json", &[]);
    for group in &set.test_groups {
        assert_eq!(group.key.curve, EllipticCurve::Secp384r1);
        assert_eq!(group.hash, HashFunction::Sha2_384);
        // The uncompressed point: 0x04 ‖ x ‖ y, 48 bytes each.
        let point = &group.key.key;
        assert_eq!((point.len(), point[0]), (97, 0x04), "uncompressed point");
        let key = PublicKey::p384(&b64(&point[1..49]), &b64(&point[49..]))
            .expect("every Wycheproof P-384 key is a valid point");
        assert_eq!(key.alg, Algorithm::Es384);
        for test in &group.tests {
            let accepted = key.verifies(&test.msg, &b64(&test.sig));
            run.record(test.tc_id, &test.comment, test.result, accepted);
        }
    }
    let tally = run.finish();
    assert_eq!(
        tally,
        Tally {
            valid: 193,
            invalid: 87,
            acceptable: 0
        }
    );
}

/// Ed25519, each key read as the OKP JWK jwtd publishes (RFC 8037).
#[test]
fn wycheproof_ed25519() {
    let set = eddsa::TestSet::load(eddsa::TestName::Ed25519)
        .expect("the wycheproof crate loads its Ed25519 vectors");
    let mut run = Run::new("ed25519_test.json", &[]);
    for group in &set.test_groups {
        assert_eq!(group.key.curve, EdwardsCurve::Ed25519);
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&group.key.pk)});
        let key = PublicKey::from_jwk(&jwk).expect("every Wycheproof Ed25519 key is usable");
        assert_eq!(key.alg, Algorithm::EdDsa);
        for test in &group.tests {
            let accepted = key.verifies(&test.msg, &b64(&test.sig));
            run.record(test.tc_id, &test.comment, test.result, accepted);
        }
    }
    let tally = run.finish();
    assert_eq!(
        tally,
        Tally {
            valid: 88,
            invalid: 63,
            acceptable: 0
        }
    );
}

/// RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-byte salt (PS256):
/// every vector through a key built from the group's modulus and exponent,
/// and, for the files whose keys carry the RSASSA-PSS parameters, through
/// the group's PEM as `jwtd token verify --key` reads it.
fn rsa_pss_sha256(name: rsa_pss_verify::TestName, file: &'static str, bits: usize) -> Tally {
    let set = rsa_pss_verify::TestSet::load(name).expect("the wycheproof crate loads its file");
    let mut run = Run::new(file, &[]);
    for group in &set.test_groups {
        assert_eq!((group.key_size, group.hash), (bits, HashFunction::Sha2_256));
        assert_eq!(
            (group.mgf_hash, group.salt_size),
            (Some(HashFunction::Sha2_256), 32)
        );
        let unsigned = |bytes: &[u8]| b64(&bytes[bytes.iter().take_while(|b| **b == 0).count()..]);
        let key = PublicKey::rsa_pss(&unsigned(&group.key.n), &unsigned(&group.key.e))
            .expect("every Wycheproof RSA key is usable");
        let pem = file
            .contains("params")
            .then(|| PublicKey::from_pem(&group.pem).expect("jwtd reads the RSASSA-PSS PEM"));
        for test in &group.tests {
            let accepted = key.verifies(&test.msg, &b64(&test.sig));
            run.record(test.tc_id, &test.comment, test.result, accepted);
            if let Some(pem) = &pem {
                assert_eq!(pem.alg, Algorithm::Ps256);
                assert_eq!(
                    pem.verifies(&test.msg, &b64(&test.sig)),
                    accepted,
                    "tcId {}: the PEM and the JWK agree",
                    test.tc_id
                );
            }
        }
    }
    run.finish()
}

#[test]
fn wycheproof_rsa_pss_2048_sha256_mgf1_32() {
    let tally = rsa_pss_sha256(
        rsa_pss_verify::TestName::RsaPss2048Sha256Mgf1SaltLen32,
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        2048,
    );
    assert_eq!(
        tally,
        Tally {
            valid: 63,
            invalid: 45,
            acceptable: 0
        }
    );
}

#[test]
fn wycheproof_rsa_pss_2048_sha256_mgf1_32_with_parameters_in_the_pem() {
    let tally = rsa_pss_sha256(
        rsa_pss_verify::TestName::RsaPss2048Sha256Mgf1SaltLen32WithParams,
        "rsa_pss_2048_sha256_mgf1_32_params_test.json",
        2048,
    );
    assert_eq!(
        tally,
        Tally {
            valid: 63,
            invalid: 45,
            acceptable: 0
        }
    );
}

#[test]
fn wycheproof_rsa_pss_3072_and_4096_sha256_mgf1_32() {
    let tally = rsa_pss_sha256(
        rsa_pss_verify::TestName::RsaPss3072Sha256Mgf1SaltLen32,
        "rsa_pss_3072_sha256_mgf1_32_test.json",
        3072,
    );
    assert_eq!(
        tally,
        Tally {
            valid: 63,
            invalid: 45,
            acceptable: 0
        }
    );
    let tally = rsa_pss_sha256(
        rsa_pss_verify::TestName::RsaPss4096Sha256Mgf1SaltLen32,
        "rsa_pss_4096_sha256_mgf1_32_test.json",
        4096,
    );
    assert_eq!(
        tally,
        Tally {
            valid: 63,
            invalid: 45,
            acceptable: 0
        }
    );
}

/// RSA PKCS#1 v1.5 SHA-256 with the given modulus size: every vector through
/// a key built from the group's modulus and exponent.
fn rsa_pkcs1_sha256(
    name: rsa_pkcs1_verify::TestName,
    file: &'static str,
    bits: usize,
    acceptable: &'static [(usize, bool)],
) -> Tally {
    let set = rsa_pkcs1_verify::TestSet::load(name).expect("the wycheproof crate loads its file");
    let mut run = Run::new(file, acceptable);
    for group in &set.test_groups {
        assert_eq!((group.key_size, group.hash), (bits, HashFunction::Sha2_256));
        // JWK integers are unsigned big-endian without leading zero bytes;
        // Wycheproof's modulus carries a sign byte.
        let unsigned = |bytes: &[u8]| b64(&bytes[bytes.iter().take_while(|b| **b == 0).count()..]);
        let key = PublicKey::rsa(&unsigned(&group.key.n), &unsigned(&group.key.e))
            .expect("every Wycheproof RSA key is usable");
        for test in &group.tests {
            let accepted = key.verifies(&test.msg, &b64(&test.sig));
            run.record(test.tc_id, &test.comment, test.result, accepted);
        }
    }
    run.finish()
}

// The "acceptable" RSA vectors, one per file, and jwtd's consistent answer:
// the DigestInfo with its AlgorithmIdentifier's NULL parameters omitted
// (RFC 8017 §9.2 note 1: "Legacy", flagged `MissingNull`). aws-lc builds the
// one canonical encoding and compares, so it refuses the variant, as RFC 8017
// recommends for new verifiers.
const RSA_2048_ACCEPTABLE: &[(usize, bool)] = &[(8, false)];
const RSA_3072_ACCEPTABLE: &[(usize, bool)] = &[(8, false)];
const RSA_4096_ACCEPTABLE: &[(usize, bool)] = &[(8, false)];

#[test]
fn wycheproof_rsa_pkcs1_2048_sha256() {
    let tally = rsa_pkcs1_sha256(
        rsa_pkcs1_verify::TestName::Rsa2048Sha256,
        "rsa_signature_2048_sha256_test.json",
        2048,
        RSA_2048_ACCEPTABLE,
    );
    assert_eq!(
        tally,
        Tally {
            valid: 9,
            invalid: 249,
            acceptable: 1
        }
    );
}

#[test]
fn wycheproof_rsa_pkcs1_3072_sha256() {
    let tally = rsa_pkcs1_sha256(
        rsa_pkcs1_verify::TestName::Rsa3072Sha256,
        "rsa_signature_3072_sha256_test.json",
        3072,
        RSA_3072_ACCEPTABLE,
    );
    assert_eq!(
        tally,
        Tally {
            valid: 8,
            invalid: 250,
            acceptable: 1
        }
    );
}

#[test]
fn wycheproof_rsa_pkcs1_4096_sha256() {
    let tally = rsa_pkcs1_sha256(
        rsa_pkcs1_verify::TestName::Rsa4096Sha256,
        "rsa_signature_4096_sha256_test.json",
        4096,
        RSA_4096_ACCEPTABLE,
    );
    assert_eq!(
        tally,
        Tally {
            valid: 7,
            invalid: 250,
            acceptable: 1
        }
    );
}

// ---------------------------------------------------------------------------
// JWS: json_web_signature_test.json
// ---------------------------------------------------------------------------
//
// Of its 23 groups, 13 hold an RSA or P-256 key jwtd could be handed:
// - 9 signing keys (RS256: `rs256`, `rs256` RS256_2048, the two RFC 7520
//   Figure 13 keys, one with `key_ops`; PS256: `ps256` and the two RFC 7520
//   keys, whose only vector, Figure 20, is PS384 and so refused; ES256:
//   `es256`, `SpecialCaseEs256`), 322 vectors, run through `verify_token`;
// - 4 encryption keys (`use: enc`, or `key_ops: ["encrypt"]`), 4 vectors with
//   genuine signatures that must not verify because the key is not for
//   signing.
// The other 10 are out of scope, and jwtd refuses their keys outright:
// HS256 (4 groups), RS384/RS512/PS384/PS512 (4), ES512 on P-521 (2).
// Their `alg: none` vectors are key-independent, so they are also run
// against the RS256 and ES256 keys.

const JWS_VECTORS: &str =
    include_str!("../data/wycheproof/wycheproof_json_web_signature_test.json");

/// The time for the claim checks; the vectors carry no claims to speak of.
const NOW: i64 = 1_700_000_000;

fn rules() -> Rules {
    Rules {
        leeway: 100 * 365 * 86_400,
        ..Rules::default()
    }
}

/// One test group of the JWS file: its key and its vectors.
struct JwsGroup {
    index: usize,
    comment: String,
    jwk: Value,
    tests: Vec<Value>,
}

impl JwsGroup {
    fn key_set(&self) -> Result<JwkSet, JwksError> {
        JwkSet::parse(&json!({ "keys": [self.jwk] }).to_string())
    }

    fn member(&self, name: &str) -> Option<&str> {
        self.jwk.get(name).and_then(Value::as_str)
    }

    /// Why the group is out of scope (an algorithm jwtd does not verify).
    fn out_of_scope(&self) -> Option<&'static str> {
        match (self.member("kty"), self.member("crv"), self.member("alg")) {
            (Some("oct"), ..) => Some("HMAC key (HS256)"),
            (Some("EC"), crv, _) if crv != Some("P-256") => Some("ES512 key on P-521"),
            (Some("RSA"), _, Some(alg)) if alg != "RS256" && alg != "PS256" => {
                Some("RS384, RS512, PS384 or PS512 key")
            }
            (Some("RSA" | "EC"), ..) => None,
            _ => Some("another key type"),
        }
    }

    /// Whether the JWK allows signatures (RFC 7517 §4.2 `use`, §4.3 `key_ops`).
    fn for_signing(&self) -> bool {
        let use_ok = self.member("use").is_none_or(|u| u == "sig");
        let ops_ok = self.jwk.get("key_ops").is_none_or(|ops| {
            ops.as_array()
                .is_some_and(|ops| ops.iter().any(|op| op == "verify"))
        });
        use_ok && ops_ok
    }

    /// The key from its raw components, ignoring `use`, `key_ops` and `alg`.
    fn raw_key(&self) -> PublicKey {
        let member = |name| self.member(name).expect("RSA or EC JWK members");
        match self.member("kty") {
            Some("RSA") => PublicKey::rsa(member("n"), member("e")),
            _ => PublicKey::p256(member("x"), member("y")),
        }
        .expect("the group's key is well-formed")
    }
}

fn jws_groups() -> Vec<JwsGroup> {
    let doc: Value = serde_json::from_str(JWS_VECTORS).expect("the vector file is JSON");
    assert_eq!(doc["numberOfTests"], 401);
    let groups = doc["testGroups"].as_array().expect("testGroups");
    groups
        .iter()
        .enumerate()
        .map(|(index, group)| JwsGroup {
            index,
            comment: group["comment"].as_str().unwrap_or_default().to_owned(),
            // HMAC groups only have the secret.
            jwk: group.get("public").unwrap_or(&group["private"]).clone(),
            tests: group["tests"].as_array().expect("tests").clone(),
        })
        .collect()
}

/// What jwtd makes of a JWS up to the signature: the claims come after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Header, key, algorithm and signature passed (a claim may still fail).
    Passed,
    /// Refused before the claims.
    Refused(Invalid),
}

fn signature_stage(keys: &dyn KeyLookup, jws: &str) -> Stage {
    match verify_token(keys, &rules(), jws, ExpectedType::Any, NOW) {
        Err(TokenError::Invalid(
            reason @ (Invalid::TooLarge
            | Invalid::Malformed
            | Invalid::ForbiddenHeader
            | Invalid::UnknownKey
            | Invalid::WrongAlgorithm
            | Invalid::BadSignature),
        )) => Stage::Refused(reason),
        // verify_token checks claims only once the signature has passed.
        Ok(_) | Err(_) => Stage::Passed,
    }
}

/// jwtd's verdict on a vector. jwtd parses the payload as a JSON object
/// before it checks the signature, and Wycheproof's payloads are not objects
/// (`foo`, empty, raw bytes, RFC 7520's prose), so `verify_token` refuses all
/// of them as Malformed without reaching the signature. A vector whose only
/// defect for jwtd is such a payload is therefore judged in two halves: the
/// header stage on the same header and signature with a claims object as
/// payload (which at best fails as BadSignature: header, kid and algorithm
/// passed), and the signature on the original bytes, through the key's own
/// [`PublicKey::verifies`], the call `verify_token` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// `verify_token`'s own answer.
    Whole(Stage),
    /// Payload not a JSON object: the two halves.
    Split { header: Stage, signature: bool },
}

impl Verdict {
    fn judge(keys: &dyn KeyLookup, key: &PublicKey, jws: &str) -> Self {
        let whole = signature_stage(keys, jws);
        let (Stage::Refused(Invalid::Malformed), Some((header, _, signature))) =
            (whole, payload_not_object(jws))
        else {
            return Self::Whole(whole);
        };
        let with_claims = format!("{header}.{}.{signature}", b64(b"{}"));
        let signed = &jws[..jws.len() - signature.len() - 1];
        Self::Split {
            header: signature_stage(keys, &with_claims),
            signature: key.verifies(signed.as_bytes(), signature),
        }
    }

    /// Whether jwtd would accept the vector were its payload a claims object.
    fn passes(self) -> bool {
        match self {
            Self::Whole(stage) => stage == Stage::Passed,
            Self::Split { header, signature } => {
                signature
                    && matches!(
                        header,
                        Stage::Passed | Stage::Refused(Invalid::BadSignature)
                    )
            }
        }
    }

    /// The check that refused it, for the tally.
    fn reason(self) -> String {
        match self {
            Self::Whole(stage) => format!("{stage:?}"),
            Self::Split {
                header: Stage::Refused(Invalid::BadSignature),
                signature,
            } => format!("payload not JSON, header ok, signature verifies: {signature}"),
            Self::Split { header, .. } => format!("payload not JSON, header {header:?}"),
        }
    }
}

/// The three segments of a compact JWS whose header is a JSON object and
/// whose payload decodes but is not one.
fn payload_not_object(jws: &str) -> Option<(&str, &str, &str)> {
    let mut parts = jws.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let object = |bytes: &[u8]| serde_json::from_slice::<serde_json::Map<String, Value>>(bytes);
    let header_bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let payload_bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    (object(&header_bytes).is_ok() && object(&payload_bytes).is_err())
        .then_some((header, payload, signature))
}

fn jws_of(test: &Value) -> (u64, &str, &str, &str) {
    (
        test["tcId"].as_u64().expect("tcId"),
        test["comment"].as_str().unwrap_or_default(),
        test["result"].as_str().expect("result"),
        test["jws"].as_str().expect("jws"),
    )
}

#[test]
fn wycheproof_jws_groups_in_and_out_of_scope() {
    let groups = jws_groups();
    let mut signing = Vec::new();
    let mut not_for_signing = Vec::new();
    let mut skipped: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for group in &groups {
        match group.out_of_scope() {
            None if group.for_signing() => signing.push(group.index),
            None => not_for_signing.push(group.index),
            Some(why) => {
                skipped.entry(why).or_default().push(group.index);
                // Out of scope, and jwtd will not verify anything with it:
                // a symmetric key is a secret a JWKS must never carry.
                let refusal = if why.contains("HS256") {
                    JwksError::PrivateKey("k")
                } else {
                    JwksError::NoUsableKey
                };
                assert_eq!(
                    group.key_set().err(),
                    Some(refusal),
                    "group {} ({}): {why}",
                    group.index,
                    group.comment
                );
            }
        }
    }
    assert_eq!(signing, [1, 2, 3, 6, 9, 10, 13, 14, 22]);
    assert_eq!(not_for_signing, [17, 18, 19, 20]);
    let skipped: Vec<_> = skipped.into_iter().collect();
    assert_eq!(
        skipped,
        [
            ("ES512 key on P-521", vec![11, 15]),
            ("HMAC key (HS256)", vec![0, 12, 16, 21]),
            ("RS384, RS512, PS384 or PS512 key", vec![4, 5, 7, 8]),
        ]
    );
}

#[test]
fn wycheproof_jws_rs256_ps256_and_es256() {
    let mut failures = Vec::new();
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    let (mut valid, mut invalid) = (0, 0);
    for group in jws_groups() {
        if group.out_of_scope().is_some() || !group.for_signing() {
            continue;
        }
        let key_set = group.key_set().expect("a signing JWK jwtd can use");
        let key = PublicKey::from_jwk(&group.jwk).expect("a signing JWK jwtd can use");
        for test in &group.tests {
            let (tc_id, comment, result, jws) = jws_of(test);
            // RFC 7520 Figure 20 is PS384, under a JWK that says PS256:
            // Wycheproof takes the header's word, jwtd the key's.
            let result = match tc_id {
                346 | 350 => "invalid",
                _ => result,
            };
            match result {
                "valid" => valid += 1,
                _ => invalid += 1,
            }
            // By kid through the JWKS, and through the key alone (as from a
            // PEM, whatever the kid says).
            let lookups: [(&str, &dyn KeyLookup); 2] = [("JWKS", &key_set), ("key", &key)];
            for (via, keys) in lookups {
                let verdict = Verdict::judge(keys, &key, jws);
                if via == "JWKS" && result != "valid" {
                    *reasons.entry(verdict.reason()).or_default() += 1;
                }
                if verdict.passes() != (result == "valid") {
                    failures.push(format!(
                        "group {} tcId {tc_id} ({comment}) via {via}: {result}, jwtd {verdict:?}",
                        group.index
                    ));
                }
            }
            // The named attacks are refused by the check meant for them.
            let expected_header = match tc_id {
                31 => Some(Invalid::WrongAlgorithm), // HS256 keyed with the EC key
                346 | 350 => Some(Invalid::WrongAlgorithm), // PS384 under a PS256 key
                32 => Some(Invalid::ForbiddenHeader), // attacker's embedded `jwk`
                _ => None,
            };
            if let Some(wanted) = expected_header {
                let verdict = Verdict::judge(&key_set, &key, jws);
                assert!(
                    matches!(
                        verdict,
                        Verdict::Whole(Stage::Refused(got))
                            | Verdict::Split { header: Stage::Refused(got), .. } if got == wanted
                    ),
                    "tcId {tc_id} ({comment}): {verdict:?}, expected {wanted:?}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} JWS verdicts went the wrong way:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!((valid, invalid), (16, 306));
    let reasons: Vec<(&str, usize)> = reasons.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    assert_eq!(
        reasons,
        [
            // The signature is checked before the payload is parsed, so
            // these vectors' non-JSON payloads never matter.
            ("Refused(BadSignature)", 286),
            // The attacker's embedded `jwk`.
            ("Refused(ForbiddenHeader)", 1),
            // Not three segments, or a header not base64url JSON.
            ("Refused(Malformed)", 14),
            // The kid changed to `Xid-…`.
            ("Refused(UnknownKey)", 2),
            // HS256 keyed with the EC key; PS384 under the PS256 keys.
            ("Refused(WrongAlgorithm)", 3),
        ],
        "how the invalid vectors were refused (through the JWKS)"
    );
}

/// RFC 7517: a key whose `use` is not `sig`, or whose `key_ops` lacks
/// `verify`, must not verify signatures. Groups 17 and 18 (`use: enc`) are
/// refused; groups 19 and 20 (`key_ops: ["encrypt"]`, no `use`) are refused
/// because `key_ops` lacks `verify` (this test first found that gap).
#[test]
fn wycheproof_jws_keys_not_for_signing_are_refused() {
    let mut failures = Vec::new();
    let mut vectors = 0;
    for group in jws_groups() {
        if group.out_of_scope().is_some() || group.for_signing() {
            continue;
        }
        let raw = group.raw_key();
        for test in &group.tests {
            let (tc_id, comment, result, jws) = jws_of(test);
            vectors += 1;
            assert_eq!(result, "invalid");
            // The signature is genuine: only the key's purpose makes it invalid.
            let (_, _, signature) = payload_not_object(jws).expect("three segments");
            let signed = &jws[..jws.len() - signature.len() - 1];
            assert!(raw.verifies(signed.as_bytes(), signature));
            if let Ok(key_set) = group.key_set() {
                failures.push(format!(
                    "group {} ({}) tcId {tc_id} ({comment}): JwkSet::parse took {} \
                     and verifies the vector: {:?}",
                    group.index,
                    group.comment,
                    group.jwk,
                    Verdict::judge(&key_set, &raw, jws)
                ));
            }
            if PublicKey::from_jwk(&group.jwk).is_ok() {
                failures.push(format!(
                    "group {} tcId {tc_id}: PublicKey::from_jwk took a key not for signing",
                    group.index
                ));
            }
        }
    }
    assert_eq!(vectors, 4);
    assert!(
        failures.is_empty(),
        "keys not meant for signatures were used:\n{}",
        failures.join("\n")
    );
}

#[test]
fn wycheproof_jws_alg_none_is_refused_by_every_key() {
    let groups = jws_groups();
    let alg_none: Vec<&str> = groups
        .iter()
        .flat_map(|group| &group.tests)
        .map(|test| jws_of(test).3)
        .filter(|jws| {
            let header = jws.split('.').next().unwrap_or_default();
            let header: Value = URL_SAFE_NO_PAD
                .decode(header)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default();
            header["alg"]
                .as_str()
                .is_some_and(|alg| alg.eq_ignore_ascii_case("none"))
        })
        .collect();
    assert_eq!(alg_none.len(), 5, "tcIds 16 and 341 to 344");
    for group in [&groups[1], &groups[2]] {
        let key = PublicKey::from_jwk(&group.jwk).expect("the ES256 and RS256 keys");
        for jws in &alg_none {
            let verdict = Verdict::judge(&key, &key, jws);
            assert!(
                matches!(
                    verdict,
                    Verdict::Whole(Stage::Refused(Invalid::WrongAlgorithm))
                        | Verdict::Split {
                            header: Stage::Refused(Invalid::WrongAlgorithm),
                            ..
                        }
                ),
                "{jws} with the {} key: {verdict:?}",
                group.comment
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Fuzz findings
// ---------------------------------------------------------------------------
//
// The targets under `fuzz/` (verify_token, jwks_and_pem, request_body) have
// found no crash, panic, leak or oracle violation in jwtd so far; a finding
// goes here as a plain test of its input once fixed.
