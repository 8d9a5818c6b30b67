//! Password hashing with argon2id.

use std::fmt;
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::HashCost;

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
/// CPU at a time: each argon2 computation needs its memory cost (12 MiB by
/// default), and more at once than there are cores only adds memory (a
/// login flood would otherwise grow the process by gigabytes), not
/// throughput. Verifications reuse one work area per slot instead of
/// mapping and faulting in fresh memory each time (a third of a login's
/// CPU). Holds a dummy hash so unknown users cost a full verification too.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    dummy_hash: Arc<str>,
    slots: Arc<Semaphore>,
    params: Params,
    /// Idle argon2 work areas: at most one per slot.
    work_areas: Arc<Mutex<Vec<Vec<Block>>>>,
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
            work_areas: Arc::default(),
        }
    }

    /// The argon2id PHC string of `password`, with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, argon2::password_hash::Error> {
        hash_blocking(&self.slots, &self.params, password).await
    }

    /// Whether `phc` was made with this hasher's algorithm, version and
    /// cost; when not, checking it costs another time than usual.
    pub fn is_current(&self, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return false;
        };
        Algorithm::try_from(hash.algorithm.as_str()) == Ok(Algorithm::Argon2id)
            && hash.version.map(Version::try_from) == Some(Ok(Version::V0x13))
            && params.m_cost() == self.params.m_cost()
            && params.t_cost() == self.params.t_cost()
            && params.p_cost() == self.params.p_cost()
    }

    /// Whether `password` matches `hash`; with no hash (unknown user), it
    /// checks against the dummy hash and answers `false`.
    pub async fn verify(&self, password: Password, hash: Option<String>) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let areas = Arc::clone(&self.work_areas);
        let matches = tokio::task::spawn_blocking(move || {
            let take = || areas.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let mut area = take().unwrap_or_default();
            let matches = matches_in(&mut area, &password, &hash);
            areas.lock().unwrap_or_else(|p| p.into_inner()).push(area);
            matches
        })
        .await
        .unwrap_or(false);
        known && matches
    }
}

/// Whether `password` hashes to the argon2 PHC string `phc`, computed in
/// `area` (grown to the hash's memory cost if needed). The comparison is
/// constant-time.
fn matches_in(area: &mut Vec<Block>, password: &Password, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(hash.algorithm.as_str()),
        Params::try_from(&hash),
    ) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let blocks = params.block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.expose(),
        salt,
        &mut out,
        &mut area[..blocks],
    );
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| computed == *expected)
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

    #[tokio::test]
    async fn only_hashes_of_the_configured_cost_are_current() {
        let cost = HashCost {
            memory_kib: 1_024,
            iterations: 1,
            parallelism: 1,
        };
        let hasher = PasswordHasher::with_cost(cost).await;
        let current = hasher.hash(&Password::new("pw".into())).await.unwrap();
        assert!(hasher.is_current(&current), "{current}");
        let older = PasswordHasher::with_cost(HashCost {
            iterations: 2,
            ..cost
        })
        .await
        .hash(&Password::new("pw".into()))
        .await
        .unwrap();
        assert!(!hasher.is_current(&older), "{older}");
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, cost.params().unwrap())
            .hash_password(b"pw")
            .unwrap()
            .to_string();
        assert!(!hasher.is_current(&argon2i), "{argon2i}");
        assert!(!hasher.is_current("not a hash"));
    }

    #[test]
    fn a_reused_work_area_checks_hashes_of_any_cost_and_variant() {
        let mut area = Vec::new();
        let password = Password::new("correct horse".into());
        let wrong = Password::new("correct hors".into());
        for (algorithm, m, t, p) in [
            (Algorithm::Argon2id, 8_192, 1, 2),
            (Algorithm::Argon2id, 1_024, 3, 1),
            (Algorithm::Argon2i, 2_048, 2, 1),
            (Algorithm::Argon2d, 4_096, 1, 4),
        ] {
            let params = Params::new(m, t, p, None).unwrap();
            // Made by argon2's own PHC path, checked by ours.
            let phc = Argon2::new(algorithm, Version::V0x13, params)
                .hash_password(password.expose())
                .unwrap()
                .to_string();
            assert!(matches_in(&mut area, &password, &phc), "{phc}");
            assert!(!matches_in(&mut area, &wrong, &phc), "{phc}");
        }
        assert_eq!(area.len(), 8_192, "the area keeps its largest size");
        for garbage in [
            "",
            "$argon2id$",
            "$bcrypt$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        ] {
            assert!(!matches_in(&mut area, &password, garbage), "{garbage}");
        }
    }

    #[test]
    fn the_default_is_owasps() {
        assert_eq!(
            HashCost::default(),
            HashCost {
                memory_kib: 12_288,
                iterations: 3,
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
