//! Signing what a test builds with the server's own active key, read
//! through `jwtd::testing`: as the server signs, or byte by byte.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::testing::{Deployment, KeyState, SigningKey};
use jwtd::verifier::{Algorithm, PublicJwk};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// The server's active signing key, read and unsealed from its database, to
/// forge tokens exactly as the server would sign them.
pub(crate) struct ActiveKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) public: PublicJwk,
    signer: SigningKey,
    /// The private key (PKCS#8 DER), for signatures built byte by byte.
    pkcs8: Vec<u8>,
}

impl ActiveKey {
    /// Reads the active key of `app`'s database.
    pub(crate) async fn of(app: &TestApp) -> Self {
        let deployment = Deployment::open(&app.config)
            .await
            .expect("database and master key open");
        let keys = deployment.keys().await.expect("keys read");
        let key = keys
            .into_iter()
            .find(|key| key.state == KeyState::Active)
            .expect("an active key");
        let pkcs8 = deployment.unseal(&key).expect("private key unseals");
        let signer = deployment.active_signer().await.expect("the key parses");
        deployment.close().await;
        assert_eq!((signer.kid(), signer.alg()), (key.kid.as_str(), key.alg));
        Self {
            kid: key.kid,
            alg: key.alg,
            public: key.public,
            signer,
            pkcs8: pkcs8.to_vec(),
        }
    }

    /// The header the server puts on its tokens.
    pub(crate) fn header(&self) -> Value {
        json!({"alg": self.alg.as_str(), "typ": "JWT", "kid": self.kid})
    }

    /// A token over `claims` signed exactly as the server signs.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        self.signer
            .sign(claims.to_string().as_bytes())
            .expect("signs")
    }

    /// A token over `claims` signed by this key's private half under
    /// `alg` (the RSA key of RS256 or PS256 under the other padding), with
    /// `alg` in its header.
    pub(crate) fn sign_as(&self, alg: Algorithm, claims: &Value) -> String {
        SigningKey::from_pkcs8(&self.kid, alg, &self.pkcs8)
            .expect("the key parses for this algorithm")
            .sign(claims.to_string().as_bytes())
            .expect("signs")
    }

    /// `b64(header).b64(payload).b64(signature)` over the given JSON texts
    /// (taken verbatim, so they may hold duplicate keys), validly signed.
    pub(crate) fn sign_parts(&self, header: &str, payload: &str) -> String {
        let input = signing_input(header, payload);
        join(&input, &self.signature(input.as_bytes()))
    }

    /// The key's signature over `input`: RSASSA-PKCS1-v1_5 SHA-256, or
    /// ECDSA P-256 SHA-256 as JWS's fixed-width `r || s`.
    pub(crate) fn signature(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self.alg {
            Algorithm::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&self.pkcs8).expect("RSA key");
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, input, &mut signature)
                    .expect("signs");
                signature
            }
            Algorithm::Es256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8)
                    .expect("EC key")
                    .sign(&rng, input)
                    .expect("signs")
                    .as_ref()
                    .to_vec()
            }
            other => panic!("forged tokens are RS256 or ES256, not {other}"),
        }
    }

    /// ES256 only: the signature over `input` split into `r` and `s`.
    pub(crate) fn r_and_s(&self, input: &[u8]) -> ([u8; 32], [u8; 32]) {
        assert_eq!(self.alg, Algorithm::Es256);
        let signature = self.signature(input);
        (
            signature[..32].try_into().unwrap(),
            signature[32..].try_into().unwrap(),
        )
    }

    /// ES256 only: a valid signature over `input`, DER-encoded (ASN.1) as
    /// X.509 has it rather than as JWS requires.
    pub(crate) fn der_signature(&self, input: &[u8]) -> Vec<u8> {
        assert_eq!(self.alg, Algorithm::Es256);
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.pkcs8)
            .expect("EC key")
            .sign(&SystemRandom::new(), input)
            .expect("signs")
            .as_ref()
            .to_vec()
    }
}

/// base64url without padding.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `b64(header).b64(payload)`.
pub(crate) fn signing_input(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header), b64(payload))
}

/// `input.b64(signature)`.
pub(crate) fn join(input: &str, signature: &[u8]) -> String {
    format!("{input}.{}", b64(signature))
}

/// A fresh token id: 32 random lowercase hex characters, as the server's
/// ids look (their time part does not matter to a forged token).
pub(crate) fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random number generator");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
