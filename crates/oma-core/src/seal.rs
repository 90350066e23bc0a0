//! Sealing of secrets at rest: XChaCha20-Poly1305 under a key derived with HKDF-SHA256 from the
//! operator's root secret. The record's identity (tenant and record id) is the associated data,
//! so a sealed value copied onto another row does not open.
//!
//! Format: `v1.` + base64(nonce ‖ ciphertext). The version byte leaves room for key rotation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::Error;

pub const ROOT_SECRET_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Holds the derived sealing key. `Debug` never prints it.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn from_root_secret(root: &[u8]) -> Result<Self, Error> {
        if root.len() != ROOT_SECRET_LEN {
            return Err(Error::invalid(format!(
                "the root secret must be {ROOT_SECRET_LEN} bytes (base64 of 32 random bytes)"
            )));
        }
        let hk = Hkdf::<Sha256>::new(Some(b"oma-seal"), root);
        let mut key = [0u8; 32];
        hk.expand(b"oma:secrets:v1", &mut key)
            .map_err(|_| Error::internal("key derivation failed"))?;
        Ok(Self {
            cipher: XChaCha20Poly1305::new((&key).into()),
        })
    }

    /// Parses `OMA_ROOT_SECRET`-style base64.
    pub fn from_base64(b64: &str) -> Result<Self, Error> {
        let raw = STANDARD
            .decode(b64.trim())
            .map_err(|_| Error::invalid("the root secret is not valid base64"))?;
        Self::from_root_secret(&raw)
    }

    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::ids::fill_random(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::internal("sealing failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(format!("v1.{}", STANDARD.encode(out)))
    }

    pub fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>, Error> {
        let bad = || Error::internal("a sealed secret could not be opened (wrong root secret?)");
        let body = sealed.strip_prefix("v1.").ok_or_else(bad)?;
        let raw = STANDARD.decode(body).map_err(|_| bad())?;
        if raw.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| bad())
    }
}

/// A fresh root secret, base64.
pub fn generate_root_secret() -> String {
    STANDARD.encode(crate::ids::random_bytes(ROOT_SECRET_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_binds_to_aad() {
        let s = Sealer::from_base64(&generate_root_secret()).unwrap();
        let sealed = s.seal("t1/vcrd_1", b"hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(s.open("t1/vcrd_1", &sealed).unwrap(), b"hunter2");
        assert!(s.open("t2/vcrd_1", &sealed).is_err());
        let other = Sealer::from_base64(&generate_root_secret()).unwrap();
        assert!(other.open("t1/vcrd_1", &sealed).is_err());
    }

    #[test]
    fn rejects_short_roots() {
        assert!(Sealer::from_root_secret(&[0u8; 8]).is_err());
        assert!(Sealer::from_base64("not base64!").is_err());
    }
}
