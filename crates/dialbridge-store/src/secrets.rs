//! Secrets at rest: the server's key, sealing (authenticated encryption) of secrets that must
//! be recovered in clear (SIP passwords, md5 of admin passwords, trunk passwords), and slow
//! hashing of secrets that only need checking (agent login passwords).

use std::fs;
use std::io::Write;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use md5::{Digest, Md5};

use crate::StoreError;

const KEY_FILE: &str = "secret.key";
const NONCE_LEN: usize = 12;

/// The server's 32-byte secret key: it seals stored secrets and (later) signs SIP nonces.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Parses 64 hex characters (the form of the config's `secret_key` and of the key file).
    pub fn from_hex(text: &str) -> Result<Self, StoreError> {
        let bytes = hex::decode(text.trim()).map_err(|_| StoreError::BadSecretKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| StoreError::BadSecretKey)?;
        Ok(Self(key))
    }

    /// Reads `secret.key` in `data_dir`, creating it (owner-only) with a random key the first
    /// time. A key that changed would make every sealed secret unreadable, so a present but
    /// malformed file is an error, never replaced.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Self::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = ChaCha20Poly1305::generate_key(&mut OsRng).into();
                let mut options = fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options
                    .open(&path)
                    .map_err(|e| StoreError::Io(path.display().to_string(), e))?;
                file.write_all(hex::encode(key).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| StoreError::Io(path.display().to_string(), e))?;
                Ok(Self(key))
            }
            Err(e) => Err(StoreError::Io(path.display().to_string(), e)),
        }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Seals and opens secrets with ChaCha20-Poly1305 under the server's key. The stored form is
/// hex(nonce || ciphertext).
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    pub fn new(key: &SecretKey) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.bytes())),
        }
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        out.extend(self.cipher.encrypt(&nonce, plaintext.as_bytes()).unwrap_or_default());
        hex::encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<String, StoreError> {
        let bytes = hex::decode(sealed).map_err(|_| StoreError::SealedSecretUnreadable)?;
        if bytes.len() < NONCE_LEN {
            return Err(StoreError::SealedSecretUnreadable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| StoreError::SealedSecretUnreadable)?;
        String::from_utf8(plain).map_err(|_| StoreError::SealedSecretUnreadable)
    }
}

/// Argon2id cost. The defaults are OWASP's recommendation; tests and benchmarks lower them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordHashCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for PasswordHashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}

#[derive(Clone)]
pub struct PasswordHashing {
    argon2: Argon2<'static>,
}

impl PasswordHashing {
    pub fn new(cost: PasswordHashCost) -> Result<Self, StoreError> {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| StoreError::BadPasswordHashCost(e.to_string()))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        })
    }

    pub fn hash(&self, secret: &str) -> Result<String, StoreError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::BadPasswordHashCost(e.to_string()))
    }

    /// Checks `secret` against a stored hash; the hash's own parameters are used, so raising
    /// the cost later keeps old hashes valid.
    pub fn verify(&self, secret: &str, stored: &str) -> bool {
        PasswordHash::new(stored)
            .map(|parsed| self.argon2.verify_password(secret.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    }
}

/// Lowercase hex MD5, the legacy interface's password form.
pub fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

#[cfg(test)]
#[path = "secrets_test.rs"]
mod tests;
