//! Private keys at rest: AES-256-GCM under a 32-byte master key, with the
//! key's `kid` as associated data so a sealed key cannot be swapped onto
//! another row.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::KeyError;
use crate::config::MasterKeySource;

/// Format marker of a sealed key, so the format can change later.
const SEAL_VERSION: u8 = 1;
const KEY_LEN: usize = 32;

/// The key that encrypts every private key at rest.
pub struct MasterKey {
    aead: LessSafeKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Names a master key file that group or others may read in a warning:
/// whoever reads it can open every stored private key.
fn warn_if_others_may_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", metadata.permissions().mode() & 0o777),
            "the master key file is readable by group or others; chmod 600 it"
        );
    }
}

impl MasterKey {
    /// A master key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != KEY_LEN {
            return Err(KeyError::MasterKey(format!(
                "must be {KEY_LEN} bytes, found {}",
                bytes.len()
            )));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| KeyError::MasterKey("rejected by AES-256-GCM".into()))?;
        Ok(Self {
            aead: LessSafeKey::new(unbound),
        })
    }

    /// A master key from standard base64 text.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::MasterKey("is not standard base64".into()))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Loads the master key from where the configuration says; a missing
    /// key file is created with a fresh random key, readable by its owner
    /// only (0600).
    pub fn load(source: &MasterKeySource) -> Result<Self, KeyError> {
        match source {
            MasterKeySource::Inline(text) => Self::from_base64(text),
            MasterKeySource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => {
                    warn_if_others_may_read(path);
                    Self::from_base64(&Zeroizing::new(text))
                        .map_err(|err| KeyError::MasterKey(format!("{}: {err}", path.display())))
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    match Self::create(path) {
                        // Another process created it first: use theirs.
                        Err(KeyError::MasterKey(_)) if path.exists() => Self::load(source),
                        created => created,
                    }
                }
                Err(err) => Err(KeyError::MasterKey(format!("{}: {err}", path.display()))),
            },
        }
    }

    fn create(path: &Path) -> Result<Self, KeyError> {
        let io_error =
            |err: std::io::Error| KeyError::MasterKey(format!("{}: {err}", path.display()));
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| KeyError::MasterKey("no randomness available".into()))?;
        let text = Zeroizing::new(STANDARD.encode(bytes.as_ref()));
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_error)?;
        }
        let mut file = open_private(path).map_err(io_error)?;
        file.write_all(text.as_bytes()).map_err(io_error)?;
        file.write_all(b"\n").map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        Self::from_bytes(bytes.as_ref())
    }

    /// Encrypts `plaintext`, binding it to `kid`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::MasterKey("no randomness available".into()))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        sealed.push(SEAL_VERSION);
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut body,
            )
            .map_err(|_| KeyError::MasterKey("encryption failed".into()))?;
        sealed.extend_from_slice(&body);
        body.fill(0);
        Ok(sealed)
    }

    /// Decrypts what [`MasterKey::seal`] produced for the same `kid`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let decrypt_error = || KeyError::Decrypt {
            kid: kid.to_owned(),
        };
        let (&version, rest) = sealed.split_first().ok_or_else(decrypt_error)?;
        if version != SEAL_VERSION || rest.len() < NONCE_LEN {
            return Err(decrypt_error());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| decrypt_error())?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plaintext_len = self
            .aead
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buffer)
            .map_err(|_| decrypt_error())?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_the_kid() {
        let key = MasterKey::from_bytes(&[9u8; 32]).unwrap();
        let sealed = key.seal("kid-1", b"secret").unwrap();
        assert_eq!(key.open("kid-1", &sealed).unwrap().as_slice(), b"secret");
        assert!(matches!(
            key.open("kid-2", &sealed),
            Err(KeyError::Decrypt { .. })
        ));
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open("kid-1", &sealed).is_err());
        assert!(key.open("kid-1", &sealed[..5]).is_err());
    }

    #[test]
    fn master_key_text_is_checked() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
    }

    #[test]
    fn created_key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let source = MasterKeySource::File(path.clone());
        let first = MasterKey::load(&source).unwrap();
        let sealed = first.seal("k", b"x").unwrap();
        let second = MasterKey::load(&source).unwrap();
        assert_eq!(second.open("k", &sealed).unwrap().as_slice(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
