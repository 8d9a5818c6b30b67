//! Every algorithm end to end in memory: a generated key signs, its
//! published JWK and its PEM verify, and a token never picks its own
//! algorithm: between every pair of algorithms, a token whose header names
//! another algorithm than its key's is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::keys::material::{self, GeneratedKey};
use crate::keys::ring::SigningKey;
use crate::verifier::{
    Algorithm, ExpectedType, Invalid, JwkSet, KeyLookup, PublicKey, Rules, TokenError, verify_token,
};

const NOW: i64 = 1_767_225_600;

fn generate(alg: Algorithm) -> GeneratedKey {
    material::generate(alg, 2048).expect("a key")
}

/// A token over valid claims, signed by `key`'s private half under `alg`
/// with `kid` in its header.
fn token(key: &GeneratedKey, alg: Algorithm, kid: &str) -> String {
    let signer = SigningKey::from_pkcs8(kid, alg, &key.pkcs8).expect("a signing key");
    let claims =
        json!({"token_type": "access", "exp": NOW + 60, "iat": NOW, "jti": "a1", "user_id": "1"});
    signer.sign(claims.to_string().as_bytes()).expect("signed")
}

/// The JWKS a server publishes for `key`, read back as a partner does.
fn jwks_of(key: &GeneratedKey) -> JwkSet {
    let document = json!({"keys": [key.public.published(&key.kid, key.alg)]});
    JwkSet::parse(&document.to_string()).expect("a usable JWKS")
}

fn verify(keys: &dyn KeyLookup, token: &str) -> Result<(), TokenError> {
    verify_token(keys, &Rules::default(), token, ExpectedType::Any, NOW).map(drop)
}

#[test]
fn each_algorithm_signs_and_verifies_through_its_jwk_and_its_pem() {
    for alg in Algorithm::ALL {
        let key = generate(alg);
        assert_eq!(key.alg, alg);
        assert!(key.public.fits(alg), "{alg}: the public key fits");
        assert_eq!(key.kid, key.public.thumbprint());
        let token = token(&key, alg, &key.kid);
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header["alg"], alg.as_str());

        let jwks = jwks_of(&key);
        assert_eq!(jwks.get(&key.kid).map(|k| k.alg), Some(alg));
        assert_eq!(verify(&jwks, &token), Ok(()), "{alg} through the JWKS");

        let pem = PublicKey::from_pem(&key.public.to_pem(alg).expect("a PEM")).expect("parses");
        assert_eq!(pem.alg, alg, "the PEM names its algorithm");
        assert_eq!(verify(&pem, &token), Ok(()), "{alg} through the PEM");

        // Another user, same signature.
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let (header, _) = signed.split_once('.').unwrap();
        let claims = json!({"token_type": "access", "exp": NOW + 60, "iat": NOW, "jti": "a1", "user_id": "2"});
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(
            verify(&jwks, &format!("{header}.{payload}.{signature}")),
            Err(TokenError::Invalid(Invalid::BadSignature)),
            "{alg}: a tampered token"
        );
    }
}

#[test]
fn a_token_naming_another_algorithm_than_its_keys_is_refused_for_every_pair() {
    let keys: Vec<GeneratedKey> = Algorithm::ALL.into_iter().map(generate).collect();
    for target in &keys {
        let jwks = jwks_of(target);
        let pem = PublicKey::from_pem(&target.public.to_pem(target.alg).unwrap()).unwrap();
        for other in keys.iter().filter(|k| k.alg != target.alg) {
            // Signed by the other algorithm's own key, naming the target's kid.
            let forged = token(other, other.alg, &target.kid);
            for (how, lookup) in [("JWKS", &jwks as &dyn KeyLookup), ("PEM", &pem)] {
                assert_eq!(
                    verify(lookup, &forged),
                    Err(TokenError::Invalid(Invalid::WrongAlgorithm)),
                    "{} key, {} token, through the {how}",
                    target.alg,
                    other.alg
                );
            }
        }
    }
}

#[test]
fn an_rsa_key_verifies_only_the_padding_of_its_algorithm() {
    for (made_for, signed_as) in [
        (Algorithm::Rs256, Algorithm::Ps256),
        (Algorithm::Ps256, Algorithm::Rs256),
    ] {
        let key = generate(made_for);
        let jwks = jwks_of(&key);
        // The same RSA key, the other padding, the header honestly naming it.
        let other_padding = token(&key, signed_as, &key.kid);
        assert_eq!(
            verify(&jwks, &other_padding),
            Err(TokenError::Invalid(Invalid::WrongAlgorithm)),
        );
        // The same, with the header lying: the signature doesn't verify.
        let [_, payload, signature] = other_padding.split('.').collect::<Vec<_>>()[..] else {
            unreachable!("a compact JWS has three parts")
        };
        let honest_header = token(&key, made_for, &key.kid);
        let header = honest_header.split('.').next().unwrap();
        let lying = format!("{header}.{payload}.{signature}");
        assert_eq!(
            verify(&jwks, &lying),
            Err(TokenError::Invalid(Invalid::BadSignature)),
            "{made_for} key, {signed_as} signature"
        );
    }
}

#[test]
fn a_jwks_entry_whose_alg_does_not_fit_its_key_type_is_skipped() {
    for key in Algorithm::ALL.map(generate) {
        for alg in Algorithm::ALL
            .into_iter()
            .filter(|alg| !key.public.fits(*alg))
        {
            let entry = key.public.published(&key.kid, alg);
            assert!(
                PublicKey::from_jwk(&entry).is_err(),
                "a {} key published as {alg}",
                key.alg
            );
        }
    }
}

#[test]
fn an_rsa_jwk_without_alg_is_for_rs256_and_a_ps256_pem_only_for_ps256() {
    let key = generate(Algorithm::Ps256);
    let mut entry = key.public.published(&key.kid, Algorithm::Ps256);
    entry.as_object_mut().unwrap().remove("alg");
    assert_eq!(PublicKey::from_jwk(&entry).unwrap().alg, Algorithm::Rs256);
    let rs256_pem = key.public.to_pem(Algorithm::Rs256).unwrap();
    let ps256_pem = key.public.to_pem(Algorithm::Ps256).unwrap();
    assert_ne!(rs256_pem, ps256_pem);
    assert_eq!(
        PublicKey::from_pem(&rs256_pem).unwrap().alg,
        Algorithm::Rs256
    );
    assert_eq!(
        PublicKey::from_pem(&ps256_pem).unwrap().alg,
        Algorithm::Ps256
    );
}
