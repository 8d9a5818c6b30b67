//! Private keys at rest: AES-256-GCM under a 32-byte master key, with the
//! key's `kid` as associated data so a sealed key cannot be swapped onto
//! another row.
//!
//! Several master keys may be configured (SPEC §8): the first seals, every
//! one opens, so the master key can be replaced while servers run. A
//! sealed key names the master key that sealed it by its [`Fingerprint`]
//! (never the key), so opening picks the right key at once and
//! `jwtd keys list` shows which keys still depend on an old master key.
//! The sealed forms, by their first byte:
//!
//! - `2`: `[2][fingerprint, 8 bytes][nonce, 12][ciphertext and tag]`;
//! - `1`: `[1][nonce, 12][ciphertext and tag]`, without a fingerprint;
//!   still opened, by trying each configured key.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::KeyError;
use crate::config::MasterKeySource;

/// First byte of a sealed key that names its master key's fingerprint.
const SEALED_WITH_FINGERPRINT: u8 = 2;
/// First byte of a sealed key without a fingerprint.
const SEALED_WITHOUT_FINGERPRINT: u8 = 1;
const KEY_LEN: usize = 32;
const FINGERPRINT_LEN: usize = 8;
/// Hashed before the key, so a fingerprint is not the SHA-256 of the key
/// as any other system might publish it.
const FINGERPRINT_LABEL: &[u8] = b"jwtd master key fingerprint\0";

/// Names a master key without revealing it: the first 8 bytes of SHA-256
/// over a fixed label and the key, shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl Fingerprint {
    fn of(key: &[u8]) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(FINGERPRINT_LABEL);
        context.update(key);
        let mut fingerprint = [0; FINGERPRINT_LEN];
        fingerprint.copy_from_slice(&context.finish().as_ref()[..FINGERPRINT_LEN]);
        Self(fingerprint)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The configured master keys, which encrypt every private key at rest:
/// the first seals, every one opens. Never empty.
pub struct MasterKey {
    keys: Vec<OneKey>,
}

/// One master key, ready to use. aws-lc erases the key schedule when the
/// `LessSafeKey` is dropped.
struct OneKey {
    aead: LessSafeKey,
    fingerprint: Fingerprint,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl OneKey {
    /// The key of 32 raw bytes, or why not.
    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!("must be {KEY_LEN} bytes, found {}", bytes.len()));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| "rejected by AES-256-GCM".to_owned())?;
        Ok(Self {
            aead: LessSafeKey::new(unbound),
            fingerprint: Fingerprint::of(bytes),
        })
    }

    /// The key of standard base64 text, or why not (never the text).
    fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| "is not standard base64".to_owned())?,
        );
        Self::from_bytes(&bytes)
    }

    /// Decrypts `ciphertext` (with its tag) bound to `kid`, if this key
    /// sealed it.
    fn open(&self, kid: &str, nonce: &[u8], ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plaintext_len = self
            .aead
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buffer)
            .ok()?
            .len();
        buffer.truncate(plaintext_len);
        Some(buffer)
    }
}

/// A sealed key taken apart.
enum Sealed<'a> {
    WithFingerprint {
        fingerprint: Fingerprint,
        nonce: &'a [u8],
        ciphertext: &'a [u8],
    },
    WithoutFingerprint {
        nonce: &'a [u8],
        ciphertext: &'a [u8],
    },
}

impl<'a> Sealed<'a> {
    fn parse(sealed: &'a [u8]) -> Option<Self> {
        let (&version, rest) = sealed.split_first()?;
        match version {
            SEALED_WITH_FINGERPRINT if rest.len() >= FINGERPRINT_LEN + NONCE_LEN => {
                let (fingerprint, rest) = rest.split_at(FINGERPRINT_LEN);
                let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
                Some(Self::WithFingerprint {
                    fingerprint: Fingerprint(fingerprint.try_into().ok()?),
                    nonce,
                    ciphertext,
                })
            }
            SEALED_WITHOUT_FINGERPRINT if rest.len() >= NONCE_LEN => {
                let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
                Some(Self::WithoutFingerprint { nonce, ciphertext })
            }
            _ => None,
        }
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
    /// One master key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = OneKey::from_bytes(bytes).map_err(KeyError::MasterKey)?;
        Ok(Self { keys: vec![key] })
    }

    /// One master key from standard base64 text.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let key = OneKey::from_base64(text).map_err(KeyError::MasterKey)?;
        Ok(Self { keys: vec![key] })
    }

    /// Master keys from `master_key`'s text: standard base64 keys
    /// separated by commas, the sealing key first. An error names the
    /// entry by its position, never its text.
    pub fn from_list(text: &str) -> Result<Self, KeyError> {
        let entries = text.split(',').enumerate().map(|(i, entry)| {
            OneKey::from_base64(entry).map_err(|why| format!("master_key entry {}: {why}", i + 1))
        });
        Self::collect(entries, "master_key")
    }

    /// Master keys from a key file's text: one standard base64 key a line,
    /// the sealing key first; blank lines are skipped. An error names the
    /// line by its number, never its text.
    pub fn from_lines(text: &str, file: &Path) -> Result<Self, KeyError> {
        let lines = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty());
        let keys = lines.map(|(i, line)| {
            OneKey::from_base64(line)
                .map_err(|why| format!("{} line {}: {why}", file.display(), i + 1))
        });
        Self::collect(keys, &file.display().to_string())
    }

    fn collect(
        keys: impl Iterator<Item = Result<OneKey, String>>,
        origin: &str,
    ) -> Result<Self, KeyError> {
        let keys = keys
            .collect::<Result<Vec<_>, _>>()
            .map_err(KeyError::MasterKey)?;
        if keys.is_empty() {
            return Err(KeyError::MasterKey(format!("{origin} holds no key")));
        }
        Ok(Self { keys })
    }

    /// Loads the master keys from where the configuration says; a missing
    /// key file is created with one fresh random key, readable by its owner
    /// only (0600).
    pub fn load(source: &MasterKeySource) -> Result<Self, KeyError> {
        match source {
            MasterKeySource::Inline(text) => Self::from_list(text),
            MasterKeySource::File(path) => match Self::read_file(path)? {
                Some(keys) => Ok(keys),
                None => match Self::create(path) {
                    // Another process created it first: use theirs.
                    Err(KeyError::MasterKey(_)) if path.exists() => Self::load(source),
                    created => created,
                },
            },
        }
    }

    /// Loads the master keys from where the configuration says, without
    /// creating a missing key file: `None` when it is missing.
    pub fn load_existing(source: &MasterKeySource) -> Result<Option<Self>, KeyError> {
        match source {
            MasterKeySource::Inline(text) => Self::from_list(text).map(Some),
            MasterKeySource::File(path) => Self::read_file(path),
        }
    }

    fn read_file(path: &Path) -> Result<Option<Self>, KeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                warn_if_others_may_read(path);
                Self::from_lines(&Zeroizing::new(text), path).map(Some)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(KeyError::MasterKey(format!("{}: {err}", path.display()))),
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

    /// The fingerprint of the key that seals: the first configured.
    pub fn sealing_fingerprint(&self) -> Fingerprint {
        self.sealing().fingerprint
    }

    fn sealing(&self) -> &OneKey {
        // `MasterKey` is never built empty (`collect` refuses).
        &self.keys[0]
    }

    /// Encrypts `plaintext` under the first master key, binding it to `kid`
    /// and naming the master key's fingerprint.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let key = self.sealing();
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::MasterKey("no randomness available".into()))?;
        // Room for the tag up front: growing would leave a copy of the
        // plaintext behind in freed memory.
        let mut body = Zeroizing::new(Vec::with_capacity(plaintext.len() + AES_256_GCM.tag_len()));
        body.extend_from_slice(plaintext);
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut *body,
            )
            .map_err(|_| KeyError::MasterKey("encryption failed".into()))?;
        let mut sealed = Vec::with_capacity(1 + FINGERPRINT_LEN + NONCE_LEN + body.len());
        sealed.push(SEALED_WITH_FINGERPRINT);
        sealed.extend_from_slice(&key.fingerprint.0);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// Decrypts what [`MasterKey::seal`] produced for the same `kid`, with
    /// the master key it names (a sealed key without a fingerprint: with
    /// whichever configured key opens it).
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let opened = match Sealed::parse(sealed) {
            Some(Sealed::WithFingerprint {
                fingerprint,
                nonce,
                ciphertext,
            }) => self
                .keys
                .iter()
                .find(|key| key.fingerprint == fingerprint)
                .and_then(|key| key.open(kid, nonce, ciphertext)),
            Some(Sealed::WithoutFingerprint { nonce, ciphertext }) => self
                .keys
                .iter()
                .find_map(|key| key.open(kid, nonce, ciphertext)),
            None => None,
        };
        opened.ok_or_else(|| KeyError::Decrypt {
            kid: kid.to_owned(),
            sealed_with: fingerprint_of(sealed),
        })
    }

    /// The fingerprint of the master key that sealed `sealed` (bound to
    /// `kid`): the one it names, or, for a sealed key without one, the
    /// configured key that opens it. `None` if neither is known.
    pub fn sealed_with(&self, kid: &str, sealed: &[u8]) -> Option<Fingerprint> {
        match Sealed::parse(sealed)? {
            Sealed::WithFingerprint { fingerprint, .. } => Some(fingerprint),
            Sealed::WithoutFingerprint { nonce, ciphertext } => self
                .keys
                .iter()
                .find(|key| key.open(kid, nonce, ciphertext).is_some())
                .map(|key| key.fingerprint),
        }
    }
}

/// The fingerprint a sealed key names, if it names one: known without any
/// master key.
pub fn fingerprint_of(sealed: &[u8]) -> Option<Fingerprint> {
    match Sealed::parse(sealed)? {
        Sealed::WithFingerprint { fingerprint, .. } => Some(fingerprint),
        Sealed::WithoutFingerprint { .. } => None,
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
mod tests;
