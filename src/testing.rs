//! Driving a real issuer from test suites and benchmarks: jwtd's own, and
//! a partner service's that starts an issuer in-process
//! ([`Issuer`] with a [`ManualClock`](crate::clock::ManualClock)) and needs
//! users, a rotation or a token with claims the issuer would never write.
//!
//! Nothing here is needed to run jwtd. Every function works on a
//! deployment's own database and master key, as its operator could.
//!
//! ```
//! # #[tokio::main] async fn main() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use jwtd::clock::{Clock, ManualClock};
//! use jwtd::config::{Config, MasterKeySource};
//! use jwtd::server::Issuer;
//! use jwtd::testing::Deployment;
//!
//! let dir = tempfile::tempdir()?;
//! let config = Config {
//!     database_url: format!("sqlite://{}", dir.path().join("jwtd.db").display()),
//!     bind: "127.0.0.1:0".parse()?,
//!     master_key: MasterKeySource::File(dir.path().join("master.key")),
//!     ..Config::default()
//! };
//! let clock = Arc::new(ManualClock::starting_now());
//! let issuer = Issuer::open(config.clone(), clock.clone()).await?;
//! let listener = issuer.bind().await?;
//! let base = format!("http://{}", listener.local_addr()?);
//! tokio::spawn(issuer.serve(listener, std::future::pending()));
//!
//! let deployment = Deployment::open(&config).await?;
//! deployment.add_user("alice", "pw", true, clock.now()).await?;
//! let login = reqwest::Client::new()
//!     .post(format!("{base}/api/token/"))
//!     .json(&serde_json::json!({"username": "alice", "password": "pw"}))
//!     .send()
//!     .await?;
//! assert_eq!(login.status(), 200);
//!
//! // A token the issuer could have signed, whatever its claims say.
//! let signer = deployment.active_signer().await?;
//! let forged = signer.sign(br#"{"token_type":"access","user_id":"1"}"#)?;
//! assert_eq!(forged.split('.').count(), 3);
//!
//! let next = deployment.rotate_now(clock.as_ref()).await?;
//! assert_ne!(next, signer.kid());
//! clock.advance(std::time::Duration::from_secs(3_600));
//! # Ok(()) }
//! ```

use std::sync::Arc;

use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED,
    ECDSA_P384_SHA384_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RSA_PSS_2048_8192_SHA256,
    RSA_PSS_SHA256, RsaEncoding, UnparsedPublicKey, VerificationAlgorithm,
};
use zeroize::Zeroizing;

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::http::{AppState, Fields, Trim};
use crate::keys::lifecycle::{self, KeyMaking};
use crate::keys::schedule::RotationPolicy;
use crate::keys::{KeySet, material};
use crate::server::Issuer;
use crate::store::Store;
use crate::tokens::{Expect, TokenService, TokenType};
use crate::users::{Password, PasswordHasher};
use crate::verifier::Algorithm;

pub use crate::http::MAX_BODY_BYTES;
pub use crate::keys::{GeneratedKey, MasterKey, SigningKey};
pub use crate::store::{KeyState, StoredKey, User};

/// A deployment's database and master key, opened beside (or instead of)
/// a running issuer.
pub struct Deployment {
    store: Store,
    master: MasterKey,
    config: Config,
}

impl Deployment {
    /// Opens the database and master key `config` names (both must exist).
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let store = Store::open(&config.database_url).await?;
        let master = MasterKey::load(&config.master_key)?;
        Ok(Self {
            store,
            master,
            config: config.clone(),
        })
    }

    /// Adds a user whose password is hashed at the default cost; returns
    /// its id.
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
        active: bool,
        now: UnixTime,
    ) -> anyhow::Result<i64> {
        let hash = PasswordHasher::new()
            .await
            .hash(&Password::new(password.to_owned()))
            .await
            .map_err(|err| anyhow::anyhow!("hashing the password: {err}"))?;
        Ok(self.store.add_user(username, &hash, active, now).await?.id)
    }

    /// Enables or disables a user, as `jwtd users enable|disable` does.
    pub async fn set_user_active(
        &self,
        username: &str,
        active: bool,
        now: UnixTime,
    ) -> anyhow::Result<()> {
        self.store.set_user_active(username, active, now).await?;
        Ok(())
    }

    /// The user called `username`, as stored (password hash, last login…).
    pub async fn user(&self, username: &str) -> anyhow::Result<Option<User>> {
        Ok(self.store.user_by_name(username).await?)
    }

    /// Every signing key ever made, oldest first, as stored.
    pub async fn keys(&self) -> anyhow::Result<Vec<StoredKey>> {
        Ok(self.store.keys_with_version().await?.1)
    }

    /// The private key (PKCS#8 DER) of a stored key, decrypted.
    pub fn unseal(&self, key: &StoredKey) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let sealed = key
            .sealed_private
            .as_deref()
            .with_context(|| format!("key {} has no private key left", key.kid))?;
        Ok(self.master.open(&key.kid, sealed)?)
    }

    /// The key that signs now, ready to sign anything: a token the issuer
    /// could have issued, whatever its claims say.
    pub async fn active_signer(&self) -> anyhow::Result<SigningKey> {
        let keys = self.keys().await?;
        let active = keys
            .iter()
            .find(|key| key.state == KeyState::Active)
            .context("no active key")?;
        Ok(SigningKey::from_pkcs8(
            &active.kid,
            active.alg,
            &self.unseal(active)?,
        )?)
    }

    /// `jwtd keys rotate --now`: the waiting key signs from now on; returns
    /// its kid.
    pub async fn rotate_now(&self, clock: &dyn Clock) -> anyhow::Result<String> {
        let making = KeyMaking {
            policy: RotationPolicy::new(&self.config),
            rsa_bits: self.config.rsa_bits,
        };
        lifecycle::rotate(&self.store, &self.master, making, true, clock).await?;
        let keys = self.keys().await?;
        let active = keys.iter().find(|key| key.state == KeyState::Active);
        Ok(active.context("no active key after rotating")?.kid.clone())
    }

    /// Closes the database.
    pub async fn close(self) {
        self.store.close().await;
    }
}

/// A fresh key pair, as `jwtd serve` makes them (RSA keys of `rsa_bits`).
pub fn generate_key(alg: Algorithm, rsa_bits: u32) -> anyhow::Result<GeneratedKey> {
    Ok(material::generate(alg, rsa_bits)?)
}

/// A key as raw aws-lc-rs holds it, parsed once from the PKCS#8 jwtd
/// generated: the baseline jwtd's own issue and verify are measured
/// against, signing and verifying without any of jwtd's code.
pub struct RawKey {
    signer: RawSigner,
    rng: SystemRandom,
    verify_alg: &'static dyn VerificationAlgorithm,
    /// The public key as `UnparsedPublicKey` takes it.
    public: Vec<u8>,
    parsed: ParsedPublicKey,
}

enum RawSigner {
    Rsa(aws_lc_rs::rsa::KeyPair, &'static dyn RsaEncoding),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl RawKey {
    /// `key`'s private half for its algorithm.
    pub fn new(key: &GeneratedKey) -> anyhow::Result<Self> {
        let pkcs8 = &key.pkcs8[..];
        let rsa = |encoding: &'static dyn RsaEncoding| {
            aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map(|pair| RawSigner::Rsa(pair, encoding))
        };
        let ec = |signing| EcdsaKeyPair::from_pkcs8(signing, pkcs8).map(RawSigner::Ec);
        let (signer, verify_alg): (_, &'static dyn VerificationAlgorithm) = match key.alg {
            Algorithm::Rs256 => (rsa(&RSA_PKCS1_SHA256), &RSA_PKCS1_2048_8192_SHA256),
            Algorithm::Ps256 => (rsa(&RSA_PSS_SHA256), &RSA_PSS_2048_8192_SHA256),
            Algorithm::Es256 => (
                ec(&ECDSA_P256_SHA256_FIXED_SIGNING),
                &ECDSA_P256_SHA256_FIXED,
            ),
            Algorithm::Es384 => (
                ec(&ECDSA_P384_SHA384_FIXED_SIGNING),
                &ECDSA_P384_SHA384_FIXED,
            ),
            Algorithm::EdDsa => (
                Ed25519KeyPair::from_pkcs8(pkcs8).map(RawSigner::Ed),
                &ED25519,
            ),
        };
        let signer = signer.map_err(|e| anyhow::anyhow!("{} key: {e}", key.alg))?;
        let public = match &signer {
            RawSigner::Rsa(pair, _) => pair.public_key().as_ref().to_vec(),
            RawSigner::Ec(pair) => pair.public_key().as_ref().to_vec(),
            RawSigner::Ed(pair) => pair.public_key().as_ref().to_vec(),
        };
        let parsed = ParsedPublicKey::new(verify_alg, &public)
            .map_err(|e| anyhow::anyhow!("{} public key: {e}", key.alg))?;
        Ok(Self {
            signer,
            rng: SystemRandom::new(),
            verify_alg,
            public,
            parsed,
        })
    }

    /// The signature of `message`, into `out`.
    pub fn sign(&self, message: &[u8], out: &mut Vec<u8>) {
        match &self.signer {
            RawSigner::Rsa(pair, encoding) => {
                out.resize(pair.public_modulus_len(), 0);
                (pair.sign(*encoding, &self.rng, message, out)).expect("RSA signing");
            }
            RawSigner::Ec(pair) => {
                let signature = pair.sign(&self.rng, message).expect("ECDSA signing");
                out.clear();
                out.extend_from_slice(signature.as_ref());
            }
            RawSigner::Ed(pair) => {
                out.clear();
                out.extend_from_slice(pair.sign(message).as_ref());
            }
        }
    }

    /// Whether `signature` verifies over `message`, with the public key
    /// parsed once.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify_sig(message, signature).is_ok()
    }

    /// The same, parsing the public key first, as a verifier without a
    /// key cache would.
    pub fn verify_unparsed(&self, message: &[u8], signature: &[u8]) -> bool {
        (UnparsedPublicKey::new(self.verify_alg, &self.public))
            .verify(message, signature)
            .is_ok()
    }
}

/// A login body read as `POST /api/token/` reads it: its fields by
/// `Content-Type` (JSON or form-encoded), then `username` (trimmed) and
/// `password` as strings. A refused body is the status the endpoint
/// answers with. For fuzzing the body reader without a server.
pub fn login_fields(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<[String; 2], axum::http::StatusCode> {
    use axum::response::IntoResponse as _;
    let refused = |err: crate::http::ApiError| err.into_response().status();
    let fields = Fields::parse(content_type, body).map_err(refused)?;
    (fields.strings([("username", Trim::Yes), ("password", Trim::No)])).map_err(refused)
}

/// Issuing and verifying access tokens exactly as the issuer's endpoints
/// do, with one key held in memory: no store, no HTTP. For measuring
/// jwtd's own cost over the signature it computes.
pub struct TokenBench {
    keys: KeySet,
    service: TokenService,
    now: UnixTime,
}

impl TokenBench {
    /// An issuer following `config` whose only key, active since `now`, is
    /// `key`.
    pub fn new(config: &Config, key: &GeneratedKey, now: UnixTime) -> anyhow::Result<Self> {
        let master = MasterKey::from_bytes(&[7; 32])?;
        let stored = StoredKey {
            sealed_private: Some(master.seal(&key.kid, &key.pkcs8)?),
            kid: key.kid.clone(),
            alg: key.alg,
            state: KeyState::Active,
            public: key.public.clone(),
            created_at: now,
            activated_at: Some(now),
            deactivated_at: None,
            retired_at: None,
            revoked_at: None,
            rotate_requested_at: None,
        };
        let keys = KeySet::build(1, &[stored], &master, None, &RotationPolicy::new(config))?;
        Ok(Self {
            keys,
            service: TokenService::new(config),
            now,
        })
    }

    /// An access token for `user_id`.
    pub fn issue_access(&self, user_id: &str) -> anyhow::Result<String> {
        let (token, _) = self
            .service
            .issue(&self.keys, TokenType::Access, user_id, self.now)?;
        Ok(token)
    }

    /// Verifies an access token in full (signature and claims).
    pub fn verify(&self, token: &str) -> anyhow::Result<()> {
        let expect = Expect::Type(TokenType::Access);
        self.service.verify(&self.keys, token, expect, self.now)?;
        Ok(())
    }

    /// Verifies an access token as `/api/me/` and `/api/token/verify/` do:
    /// from memory when it was verified lately.
    pub fn verify_cached(&self, token: &str) -> anyhow::Result<()> {
        let expect = Expect::Type(TokenType::Access);
        self.service
            .verify_cached(&self.keys, token, expect, self.now)?;
        Ok(())
    }
}

/// Logs users in without their passwords, through an opened issuer's own
/// session code: refresh tokens recorded exactly as a login records them.
/// For load tests that need many valid tokens quickly.
#[derive(Clone)]
pub struct Minter {
    state: AppState,
}

impl Minter {
    /// Opens the issuer `config` describes (creating its keys if needed).
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let issuer = Issuer::open(config, clock).await?;
        Ok(Self {
            state: issuer.state().clone(),
        })
    }

    /// The id of the user called `username`.
    pub async fn user_id(&self, username: &str) -> anyhow::Result<i64> {
        let user = self.state.store.user_by_name(username).await?;
        Ok(user.with_context(|| format!("no user `{username}`"))?.id)
    }

    /// A new access token for `user_id`.
    pub fn access(&self, user_id: i64) -> anyhow::Result<String> {
        let keys = self.state.keys.current();
        let now = self.state.clock.now();
        let (token, _) =
            self.state
                .tokens
                .issue(&keys, TokenType::Access, &user_id.to_string(), now)?;
        Ok(token)
    }

    /// A login of `user_id`: `(access, refresh)`, the refresh token recorded.
    pub async fn login(&self, user_id: i64) -> anyhow::Result<(String, String)> {
        let keys = self.state.keys.current();
        let now = self.state.clock.now();
        Ok(self.state.sessions(&keys).login(user_id, now).await?)
    }

    /// Closes the database, after every recorded login is written.
    pub async fn close(self) {
        self.state.store.close().await;
    }
}
