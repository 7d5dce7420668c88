//! The issuing CAs whose leaves are checked for revocation (`revocation.issuers`).
//!
//! A CA's key verifies its CRLs and OCSP responses (and the delegated responders it certifies); its name and
//! key form the OCSP CertID (RFC 6960 §4.1.1). A leaf is matched to its CA by the encoded issuer name.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use der::Decode;
use rsa::pkcs8::spki::SubjectPublicKeyInfoRef;
use sha1::{Digest, Sha1};
use std::fmt;

use crate::cert::issuer::{IssuerError, IssuerKey};

/// One configured issuing CA.
#[derive(Clone, PartialEq, Eq)]
pub struct Ca {
    /// The DER of its subject Name, as a leaf's issuer field carries it.
    pub name: Vec<u8>,
    pub key: IssuerKey,
    /// SHA-1 of `name` and of its subjectPublicKey bits: the OCSP CertID's issuerNameHash and issuerKeyHash.
    pub name_hash: [u8; 20],
    pub key_hash: [u8; 20],
    /// Its subject as text, for log lines.
    pub subject: String,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ca({})", self.subject)
    }
}

/// Why a configured issuer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaError {
    NotBase64,
    NotACertificate(String),
    Key(IssuerError),
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaError::NotBase64 => f.write_str("is not standard base64"),
            CaError::NotACertificate(e) => write!(f, "is not a DER X.509 certificate: {e}"),
            CaError::Key(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CaError {}

impl Ca {
    /// A CA from the base64 (standard) DER of its certificate.
    pub fn parse(b64: &str) -> Result<Ca, CaError> {
        let der = STANDARD.decode(b64.trim()).map_err(|_| CaError::NotBase64)?;
        Ca::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<Ca, CaError> {
        let (cert, _) =
            crate::cert::x509::Certificate::decode(der).map_err(|e| CaError::NotACertificate(e.to_string()))?;
        let spki = SubjectPublicKeyInfoRef::from_der(cert.spki).map_err(|e| CaError::NotACertificate(e.to_string()))?;
        let key = IssuerKey::from_spki(cert.spki.to_vec()).map_err(CaError::Key)?;
        Ok(Ca {
            name_hash: Sha1::digest(cert.subject_der).into(),
            key_hash: Sha1::digest(spki.subject_public_key.raw_bytes()).into(),
            subject: super::name_text(cert.subject_der),
            name: cert.subject_der.to_vec(),
            key,
        })
    }

    /// The configured CA named `issuer_name` (a leaf's encoded issuer), if any; its index in `cas`.
    pub fn find<'a>(cas: &'a [Ca], issuer_name: &[u8]) -> Option<(usize, &'a Ca)> {
        cas.iter().enumerate().find(|(_, ca)| ca.name == issuer_name)
    }
}
