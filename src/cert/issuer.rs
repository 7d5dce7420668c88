//! Per-client issuer pinning (RFC 8705 §7.4): the leaf must carry a signature made by a registered CA key.
//!
//! Any CA in the listener's trust store can issue a certificate with any subject. A client pinned to its
//! CA's public key is authenticated only by a leaf whose signature that key verifies, whatever its DN says
//! and whoever else is trusted. Pins are keys, not names: a second CA with the same DN does not match.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;

use der::Decode;
use rsa::pkcs8::spki::SubjectPublicKeyInfoRef;

use crate::cert::x509::Certificate;

/// A pinned issuing CA public key.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerKey {
    /// DER SubjectPublicKeyInfo.
    spki: Vec<u8>,
    kind: KeyKind,
}

impl fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerKey({:?}, sha256:{})", self.kind, crate::oauth::jwks::hex(&crate::cert::sha256(&self.spki)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

/// Why a pin could not be read, or did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerError {
    NotBase64,
    /// Neither an X.509 certificate nor a SubjectPublicKeyInfo.
    NotAKey,
    /// A key type other than RSA, P-256 or P-384.
    UnsupportedKey,
    /// The leaf is signed with an algorithm the filter cannot verify.
    UnsupportedSignature(String),
    Malformed(String),
}

impl fmt::Display for IssuerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssuerError::NotBase64 => write!(f, "a pinned issuer is not standard base64"),
            IssuerError::NotAKey => {
                write!(f, "a pinned issuer is neither a DER certificate nor a DER SubjectPublicKeyInfo")
            }
            IssuerError::UnsupportedKey => write!(f, "a pinned issuer key is not RSA, P-256 or P-384"),
            IssuerError::UnsupportedSignature(oid) => {
                write!(f, "the certificate's signature algorithm {oid} cannot be verified")
            }
            IssuerError::Malformed(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for IssuerError {}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

impl IssuerKey {
    /// The length of the pinned SubjectPublicKeyInfo (what the key holds on the heap).
    pub fn spki_len(&self) -> usize {
        self.spki.len()
    }

    /// A pin as registered: base64 (standard) DER of the CA's certificate or of its SubjectPublicKeyInfo.
    pub fn parse(b64: &str) -> Result<IssuerKey, IssuerError> {
        let der = STANDARD.decode(b64.trim()).map_err(|_| IssuerError::NotBase64)?;
        let spki = match Certificate::decode(&der) {
            Ok((cert, _)) => cert.spki.to_vec(),
            Err(_) => der,
        };
        IssuerKey::from_spki(spki)
    }

    /// The pin in its stored form (base64 of the SubjectPublicKeyInfo).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.spki)
    }

    fn check_loads(&self) -> Result<(), IssuerError> {
        use rsa::pkcs8::DecodePublicKey;
        let ok = match self.kind {
            KeyKind::Rsa => rsa::PublicKey::from_public_key_der(&self.spki).is_ok(),
            KeyKind::P256 => p256::ecdsa::VerifyingKey::from_public_key_der(&self.spki).is_ok(),
            KeyKind::P384 => p384::ecdsa::VerifyingKey::from_public_key_der(&self.spki).is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(IssuerError::NotAKey)
        }
    }

    /// A key from its DER SubjectPublicKeyInfo (a CA's key, an OCSP responder's).
    pub fn from_spki(spki: Vec<u8>) -> Result<IssuerKey, IssuerError> {
        let kind = {
            // from_der: nothing may follow the SubjectPublicKeyInfo.
            let info = SubjectPublicKeyInfoRef::from_der(&spki).map_err(|_| IssuerError::NotAKey)?;
            let alg = info.algorithm.oid.to_string();
            let curve = info.algorithm.parameters.and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
            let curve = curve.map(|o| o.to_string());
            match (alg.as_str(), curve.as_deref()) {
                (OID_RSA, _) => KeyKind::Rsa,
                (OID_EC, Some(OID_P256)) => KeyKind::P256,
                (OID_EC, Some(OID_P384)) => KeyKind::P384,
                _ => return Err(IssuerError::UnsupportedKey),
            }
        };
        let key = IssuerKey { spki, kind };
        key.check_loads()?;
        Ok(key)
    }

    /// Whether this key's signature on `leaf_der` verifies.
    pub fn signed(&self, leaf_der: &[u8]) -> Result<bool, IssuerError> {
        let (leaf, _) = Certificate::decode(leaf_der)
            .map_err(|e| IssuerError::Malformed(format!("the certificate cannot be parsed: {e}")))?;
        self.verifies(&leaf.signature_algorithm, leaf.tbs, leaf.signature)
    }

    /// As [`IssuerKey::verifies`], over the digest of the message (`alg`'s hash of it, see [`Digest`], e.g.
    /// computed a slice at a time for a large CRL).
    pub fn verifies_prehashed(&self, alg: &str, digest: &[u8], signature: &[u8]) -> Result<bool, IssuerError> {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::signature::hazmat::PrehashVerifier;
        let verified = match (self.kind, alg) {
            (KeyKind::Rsa, "1.2.840.113549.1.1.11" | "1.2.840.113549.1.1.12" | "1.2.840.113549.1.1.13") => {
                let Ok(key) = rsa::PublicKey::from_public_key_der(&self.spki) else { return Ok(false) };
                let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else { return Ok(false) };
                match alg {
                    "1.2.840.113549.1.1.11" => {
                        rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key).verify_prehash(digest, &sig)
                    }
                    "1.2.840.113549.1.1.12" => {
                        rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(key).verify_prehash(digest, &sig)
                    }
                    _ => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(key).verify_prehash(digest, &sig),
                }
                .is_ok()
            }
            (KeyKind::P256, "1.2.840.10045.4.3.2") => {
                let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(&self.spki) else { return Ok(false) };
                let Ok(sig) = p256::ecdsa::Signature::from_der(signature) else { return Ok(false) };
                key.verify_prehash(digest, &sig).is_ok()
            }
            (KeyKind::P384, "1.2.840.10045.4.3.3") => {
                let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(&self.spki) else { return Ok(false) };
                let Ok(sig) = p384::ecdsa::Signature::from_der(signature) else { return Ok(false) };
                key.verify_prehash(digest, &sig).is_ok()
            }
            (_, "1.2.840.113549.1.1.11" | "1.2.840.113549.1.1.12" | "1.2.840.113549.1.1.13")
            | (_, "1.2.840.10045.4.3.2" | "1.2.840.10045.4.3.3") => false,
            (_, other) => return Err(IssuerError::UnsupportedSignature(other.to_string())),
        };
        Ok(verified)
    }

    /// Whether `signature`, made with the algorithm `alg` (an OID), verifies `message` under this key. A
    /// signature of a key type other than this key's is not this key's (`false`); an algorithm the filter
    /// cannot verify is an error. The same rules sign certificates, CRLs and OCSP responses (RFC 5280 §4.1.1.2,
    /// RFC 6960 §4.2.1).
    pub fn verifies(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<bool, IssuerError> {
        let mut digest = Digest::of(alg).ok_or_else(|| IssuerError::UnsupportedSignature(alg.to_string()))?;
        digest.update(message);
        self.verifies_prehashed(alg, &digest.finish(), signature)
    }
}

/// The hash a signature algorithm signs (RSA PKCS#1 v1.5 with SHA-2, ECDSA P-256/P-384), computed at once or a
/// slice at a time.
#[derive(Clone)]
pub enum Digest {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Digest {
    /// The hash of a signature algorithm the filter verifies; `None` for any other.
    pub fn of(algorithm: &str) -> Option<Digest> {
        use sha2::Digest as _;
        match algorithm {
            "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => Some(Digest::Sha256(sha2::Sha256::new())),
            "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Some(Digest::Sha384(sha2::Sha384::new())),
            "1.2.840.113549.1.1.13" => Some(Digest::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match self {
            Digest::Sha256(h) => h.update(bytes),
            Digest::Sha384(h) => h.update(bytes),
            Digest::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Digest::Sha256(h) => h.finalize().to_vec(),
            Digest::Sha384(h) => h.finalize().to_vec(),
            Digest::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Whether any of `pins` signed `leaf_der` (an empty list pins nothing: true).
pub fn issued_by_any(pins: &[IssuerKey], leaf_der: &[u8]) -> Result<bool, IssuerError> {
    if pins.is_empty() {
        return Ok(true);
    }
    let mut last_error = None;
    for pin in pins {
        match pin.signed(leaf_der) {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
    }
    match last_error {
        Some(e) => Err(e),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{
        der, FORWARDER, LEAF, P384_CA, P384_LEAF, RSA_CA, RSA_SHA256_LEAF, RSA_SHA384_LEAF, RSA_SHA512_LEAF,
        SELF_SIGNED_1, TEST_CA,
    };

    fn pin(pem: &str) -> IssuerKey {
        IssuerKey::parse(&STANDARD.encode(der(pem))).unwrap()
    }

    #[test]
    fn a_leaf_signed_by_the_pinned_ca_key_matches() {
        assert_eq!(pin(TEST_CA).signed(&der(LEAF)), Ok(true));
        assert_eq!(issued_by_any(&[pin(SELF_SIGNED_1), pin(TEST_CA)], &der(FORWARDER)), Ok(true));
    }

    #[test]
    fn rsa_pkcs1_v1_5_signatures_with_sha256_sha384_and_sha512_verify() {
        for leaf in [RSA_SHA256_LEAF, RSA_SHA384_LEAF, RSA_SHA512_LEAF] {
            assert_eq!(pin(RSA_CA).signed(&der(leaf)), Ok(true), "{leaf}");
        }
    }

    #[test]
    fn p384_signatures_with_sha384_verify() {
        assert_eq!(pin(P384_CA).signed(&der(P384_LEAF)), Ok(true));
    }

    #[test]
    fn a_key_of_another_type_never_verifies() {
        assert_eq!(pin(RSA_CA).signed(&der(P384_LEAF)), Ok(false));
        assert_eq!(pin(P384_CA).signed(&der(LEAF)), Ok(false));
        assert_eq!(pin(TEST_CA).signed(&der(RSA_SHA256_LEAF)), Ok(false));
    }

    #[test]
    fn a_leaf_signed_by_another_key_does_not_match() {
        assert_eq!(pin(SELF_SIGNED_1).signed(&der(LEAF)), Ok(false));
        assert_eq!(issued_by_any(&[pin(SELF_SIGNED_1)], &der(LEAF)), Ok(false));
    }

    #[test]
    fn a_pin_may_be_the_ca_certificate_or_its_subject_public_key_info() {
        let ca_der = der(TEST_CA);
        let (ca, _) = Certificate::decode(&ca_der).unwrap();
        let spki = STANDARD.encode(ca.spki);
        assert_eq!(IssuerKey::parse(&spki).unwrap(), pin(TEST_CA));
        assert_eq!(pin(TEST_CA).to_base64(), spki);
    }

    #[test]
    fn a_tampered_leaf_does_not_verify() {
        let mut leaf = der(LEAF);
        // Flip a bit inside the subject (well inside the TBS, after the header and serial).
        let at = leaf.len() / 3;
        leaf[at] ^= 0x01;
        assert_ne!(pin(TEST_CA).signed(&leaf), Ok(true));
    }

    #[test]
    fn garbage_pins_are_refused() {
        assert_eq!(IssuerKey::parse("***"), Err(IssuerError::NotBase64));
        assert_eq!(IssuerKey::parse(&STANDARD.encode(b"not a key")), Err(IssuerError::NotAKey));
    }

    #[test]
    fn no_pins_pin_nothing() {
        assert_eq!(issued_by_any(&[], &der(LEAF)), Ok(true));
    }
}
