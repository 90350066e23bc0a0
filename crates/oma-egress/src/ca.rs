//! The deployment CA: generated at first start, kept sealed under the data dir, and used to
//! sign one short-lived leaf per intercepted host (cached in memory).
//!
//! The file `DATA_DIR/egress-ca.sealed` holds the CA certificate and private key as JSON,
//! sealed with the root secret (associated data [`SEAL_AAD`]), so a copy of the data dir
//! without the root secret cannot mint certificates the boxes trust.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oma_core::seal::Sealer;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::EgressError;

/// The file under the data dir.
pub const CA_FILE: &str = "egress-ca.sealed";
/// Associated data of the sealed file: it opens only as what it is.
const SEAL_AAD: &str = "oma/egress-ca";
/// Leaves (and TLS configurations) kept in memory at most; beyond, the cache starts over.
pub(crate) const MAX_CACHED_HOSTS: usize = 4096;
/// Leaves are valid this long; a cached leaf is re-issued once older than half of it.
const LEAF_DAYS: i64 = 30;

#[derive(Serialize, Deserialize)]
struct Stored {
    common_name: String,
    cert_pem: String,
    key_pem: String,
}

/// The deployment CA. Cheap to clone.
#[derive(Clone)]
pub struct DeploymentCa {
    inner: Arc<Inner>,
}

struct Inner {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    leaves: Mutex<HashMap<String, (time::OffsetDateTime, Arc<CertifiedKey>)>>,
}

impl std::fmt::Debug for DeploymentCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentCa")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl DeploymentCa {
    /// Opens `DATA_DIR/egress-ca.sealed`, creating it (0600) on first start.
    pub fn load_or_create(data_dir: &Path, sealer: &Sealer) -> Result<Self, EgressError> {
        let path = Self::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(sealed) => {
                let plain = sealer.open(SEAL_AAD, sealed.trim()).map_err(|e| {
                    EgressError::Ca(format!("{} does not open: {e}", path.display()))
                })?;
                let stored: Stored = serde_json::from_slice(&plain).map_err(|e| {
                    EgressError::Ca(format!("{} is not valid: {e}", path.display()))
                })?;
                Self::from_stored(&stored)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let stored = generate()?;
                let plain = serde_json::to_vec(&stored)
                    .map_err(|e| EgressError::Ca(format!("encoding the CA: {e}")))?;
                let sealed = sealer
                    .seal(SEAL_AAD, &plain)
                    .map_err(|e| EgressError::Ca(e.to_string()))?;
                write_private(&path, sealed.as_bytes())?;
                Self::from_stored(&stored)
            }
            Err(e) => Err(EgressError::Io(format!("reading {}", path.display()), e)),
        }
    }

    /// Opens the CA when it exists, without creating it (`oma doctor`).
    pub fn load(data_dir: &Path, sealer: &Sealer) -> Result<Option<Self>, EgressError> {
        if !Self::path(data_dir).exists() {
            return Ok(None);
        }
        Self::load_or_create(data_dir, sealer).map(Some)
    }

    /// A CA that lives only in memory (tests, tools without a data dir).
    pub fn ephemeral() -> Result<Self, EgressError> {
        Self::from_stored(&generate()?)
    }

    /// Where [`DeploymentCa::load_or_create`] keeps it.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CA_FILE)
    }

    /// SHA-256 of the CA certificate (DER), colon-separated hex, as `openssl x509 -fingerprint
    /// -sha256` prints it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.inner.cert_der.as_ref());
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The CA certificate, PEM: what boxes trust.
    pub fn cert_pem(&self) -> &str {
        &self.inner.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.inner.cert_der
    }

    /// A leaf for `host` (a DNS name or IP literal) signed by the CA, from the cache while it is
    /// fresh.
    pub(crate) fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, EgressError> {
        let now = time::OffsetDateTime::now_utc();
        let fresh =
            |issued: &time::OffsetDateTime| now - *issued < time::Duration::days(LEAF_DAYS / 2);
        if let Ok(cache) = self.inner.leaves.lock()
            && let Some((issued, key)) = cache.get(host)
            && fresh(issued)
        {
            return Ok(key.clone());
        }
        let key = self.issue_leaf(host, now)?;
        if let Ok(mut cache) = self.inner.leaves.lock() {
            cache.retain(|_, (issued, _)| fresh(issued));
            if cache.len() >= MAX_CACHED_HOSTS {
                cache.clear();
            }
            cache.insert(host.to_string(), (now, key.clone()));
        }
        Ok(key)
    }

    fn issue_leaf(
        &self,
        host: &str,
        now: time::OffsetDateTime,
    ) -> Result<Arc<CertifiedKey>, EgressError> {
        let bad = |e: rcgen::Error| EgressError::Ca(format!("issuing a leaf for {host}: {e}"));
        let mut params = CertificateParams::new(vec![host.to_string()]).map_err(bad)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(LEAF_DAYS);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(bad)?;
        let cert = params.signed_by(&key, &self.inner.issuer).map_err(bad)?;
        let provider = crate::provider();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = provider
            .key_provider
            .load_private_key(der)
            .map_err(|e| EgressError::Ca(format!("loading a leaf key: {e}")))?;
        Ok(Arc::new(CertifiedKey::new(
            vec![cert.der().clone(), self.inner.cert_der.clone()],
            signing,
        )))
    }

    fn from_stored(stored: &Stored) -> Result<Self, EgressError> {
        let bad = |e: rcgen::Error| EgressError::Ca(format!("the stored CA is not valid: {e}"));
        let key = KeyPair::from_pem(&stored.key_pem).map_err(bad)?;
        let der = pem_to_der(&stored.cert_pem)?;
        // An issuer needs the CA's name, key identifier method and usages, not its certificate:
        // the same parameters as at generation rebuild it exactly.
        let issuer = Issuer::new(ca_params(&stored.common_name), key);
        Ok(Self {
            inner: Arc::new(Inner {
                cert_pem: stored.cert_pem.clone(),
                cert_der: der,
                issuer,
                leaves: Mutex::new(HashMap::new()),
            }),
        })
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "oma");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn generate() -> Result<Stored, EgressError> {
    let bad = |e: rcgen::Error| EgressError::Ca(format!("generating the CA: {e}"));
    // A per-deployment name, so two deployments' CAs are told apart in a trust store.
    let common_name = format!(
        "oma egress CA {}",
        oma_core::ids::random_bytes(4)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut params = ca_params(&common_name);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let key = KeyPair::generate().map_err(bad)?;
    let cert = params.self_signed(&key).map_err(bad)?;
    Ok(Stored {
        common_name,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The DER of the first certificate in a PEM text.
pub(crate) fn pem_to_der(pem: &str) -> Result<CertificateDer<'static>, EgressError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| EgressError::Ca(format!("a certificate is not valid PEM: {e}")))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), EgressError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| EgressError::Io(format!("creating {}", dir.display()), e))?;
    }
    // create_new: two servers starting at once over one data dir must not both write a CA;
    // the loser fails loudly and the next start loads the winner's.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| EgressError::Io(format!("creating {}", path.display()), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| EgressError::Io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_with_the_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::from_root_secret(&[3u8; 32]).unwrap();
        assert!(DeploymentCa::load(dir.path(), &sealer).unwrap().is_none());
        let a = DeploymentCa::load_or_create(dir.path(), &sealer).unwrap();
        let b = DeploymentCa::load_or_create(dir.path(), &sealer).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = DeploymentCa::load(dir.path(), &sealer).unwrap().unwrap();
        assert_eq!(a.fingerprint(), c.fingerprint());
        let on_disk = std::fs::read_to_string(DeploymentCa::path(dir.path())).unwrap();
        assert!(
            !on_disk.contains("PRIVATE KEY"),
            "the key is sealed on disk"
        );
        let other = Sealer::from_root_secret(&[4u8; 32]).unwrap();
        assert!(DeploymentCa::load_or_create(dir.path(), &other).is_err());
        // Leaves from the reloaded CA chain to the original certificate.
        let leaf = b.leaf("api.example.com").unwrap();
        assert_eq!(leaf.cert[1], *a.cert_der());
        assert!(Arc::ptr_eq(&leaf, &b.leaf("api.example.com").unwrap()));
    }
}
