//! Password hashing with argon2id.

use std::fmt;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// A password in memory: never printed, wiped when dropped.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The password's bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Hashes and verifies passwords on tokio's blocking pool, at most one per
/// CPU at a time: each argon2 computation holds 19 MiB, and more at once
/// than there are cores only adds memory (a login flood would otherwise
/// grow the process by gigabytes), not throughput. Holds a dummy hash so
/// unknown users cost a full verification too.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    dummy_hash: Arc<str>,
    slots: Arc<Semaphore>,
}

impl PasswordHasher {
    /// Creates the hasher (computes the dummy hash once).
    pub async fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let slots = Arc::new(Semaphore::new(cores));
        let dummy = Password::new("jwtd dummy password for unknown users".into());
        let dummy_hash = hash_blocking(&slots, &dummy).await.unwrap_or_default();
        Self {
            dummy_hash: dummy_hash.into(),
            slots,
        }
    }

    /// The argon2id PHC string of `password`, with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, argon2::password_hash::Error> {
        hash_blocking(&self.slots, password).await
    }

    /// Whether `password` matches `hash`; with no hash (unknown user), it
    /// checks against the dummy hash and answers `false`.
    pub async fn verify(&self, password: Password, hash: Option<String>) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let matches = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(password.expose(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        known && matches
    }
}

async fn hash_blocking(
    slots: &Semaphore,
    password: &Password,
) -> Result<String, argon2::password_hash::Error> {
    let Ok(_slot) = slots.acquire().await else {
        return Err(argon2::password_hash::Error::Crypto);
    };
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose())
            .map(|hash| hash.to_string())
    })
    .await
    .unwrap_or(Err(argon2::password_hash::Error::Crypto))
}
