//! Password hashing with argon2id.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
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
    params: Params,
}

/// The argon2id cost of new hashes. The default is OWASP's recommendation
/// (19 MiB, 2 passes, 1 lane); hashes keep the cost they were made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

impl HashCost {
    /// argon2's parameters, or why they are refused.
    pub fn params(&self) -> Result<Params, String> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|err| err.to_string())
    }
}

impl PasswordHasher {
    /// A hasher at the default cost.
    pub async fn new() -> Self {
        Self::with_cost(HashCost::default()).await
    }

    /// A hasher making hashes at `cost` (computes the dummy hash once, at
    /// the same cost, so unknown users take as long as known ones). An
    /// invalid cost falls back to the default; configuration checks it first.
    pub async fn with_cost(cost: HashCost) -> Self {
        let params = cost.params().unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let slots = Arc::new(Semaphore::new(cores));
        let dummy = Password::new("jwtd dummy password for unknown users".into());
        let dummy_hash = hash_blocking(&slots, &params, &dummy)
            .await
            .unwrap_or_default();
        Self {
            dummy_hash: dummy_hash.into(),
            slots,
            params,
        }
    }

    /// The argon2id PHC string of `password`, with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, argon2::password_hash::Error> {
        hash_blocking(&self.slots, &self.params, password).await
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
    params: &Params,
    password: &Password,
) -> Result<String, argon2::password_hash::Error> {
    let Ok(_slot) = slots.acquire().await else {
        return Err(argon2::password_hash::Error::Crypto);
    };
    let (password, params) = (password.clone(), params.clone());
    tokio::task::spawn_blocking(move || {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.expose())
            .map(|hash| hash.to_string())
    })
    .await
    .unwrap_or(Err(argon2::password_hash::Error::Crypto))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_at_the_configured_cost_and_verifies() {
        let cost = HashCost {
            memory_kib: 8_192,
            iterations: 1,
            parallelism: 2,
        };
        let hasher = PasswordHasher::with_cost(cost).await;
        let hash = hasher.hash(&Password::new("pw".into())).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=2$"), "{hash}");
        assert!(
            hasher
                .verify(Password::new("pw".into()), Some(hash.clone()))
                .await
        );
        assert!(
            !hasher
                .verify(Password::new("nope".into()), Some(hash))
                .await
        );
        assert!(
            !hasher.verify(Password::new("pw".into()), None).await,
            "unknown users never match"
        );
    }

    #[test]
    fn the_default_is_owasps() {
        assert_eq!(
            HashCost::default(),
            HashCost {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
        assert!(
            HashCost {
                memory_kib: 1,
                ..HashCost::default()
            }
            .params()
            .is_err()
        );
    }
}
