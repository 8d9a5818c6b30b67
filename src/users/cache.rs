//! The accounts that access tokens name, kept in memory so that
//! authenticating a request costs no database round trip.
//!
//! Any change to a user that matters here (name, active flag, deletion),
//! by this process or another, bumps a version in the database (a
//! trigger); the server polls it with its key check and empties the cache
//! when it moved. So a user disabled from the CLI is refused by every
//! server within one poll interval. A lookup that started before a change
//! is not cached after it (the version it started under is checked).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::Account;
use crate::store::{Store, StoreError};

/// Most accounts kept; when full, the cache starts over.
const CAPACITY: usize = 10_000;

/// Accounts by id, valid for one users version.
#[derive(Debug, Default)]
pub struct AccountCache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    version: i64,
    accounts: HashMap<i64, Account>,
}

impl AccountCache {
    /// An empty cache for the store's users version `version`.
    pub fn new(version: i64) -> Self {
        Self {
            inner: Mutex::new(Entries {
                version,
                accounts: HashMap::new(),
            }),
        }
    }

    /// The account with this id, from memory or else from the store.
    pub async fn get(&self, store: &Store, id: i64) -> Result<Option<Account>, StoreError> {
        let version = {
            let entries = self.lock();
            if let Some(account) = entries.accounts.get(&id) {
                return Ok(Some(account.clone()));
            }
            entries.version
        };
        let account = store.account_by_id(id).await?;
        if let Some(account) = &account {
            let mut entries = self.lock();
            if entries.version == version {
                if entries.accounts.len() >= CAPACITY {
                    entries.accounts.clear();
                }
                entries.accounts.insert(id, account.clone());
            }
        }
        Ok(account)
    }

    /// Empties the cache if the store's users version is no longer the one
    /// it holds; returns whether it did.
    pub fn sync(&self, version: i64) -> bool {
        let mut entries = self.lock();
        if entries.version == version {
            return false;
        }
        entries.version = version;
        entries.accounts.clear();
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The entries stay consistent even if a holder panicked.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
