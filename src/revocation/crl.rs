//! A certificate revocation list (RFC 5280 §5), read from untrusted bytes.
//!
//! [`open`] checks the whole list once: its outer structure, that a configured CA issued it and that CA's key
//! verifies its signature, its validity times, and that it is a complete CRL of end-entity certificates (delta,
//! indirect and partitioned CRLs are refused: the filter would read them wrongly). [`entries`] then reads the
//! revoked serial numbers a slice at a time, so that a CRL of 100,000 entries is loaded over many ticks.
//! Every element is decoded by x509-cert's types; only the order of the TBSCertList fields is walked here.

use der::asn1::BitString;
use der::{Decode, Reader, SliceReader, Tag, TagMode, TagNumber};
use std::fmt;
use x509_cert::certificate::Rfc5280;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::Extensions;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::time::Time;

pub use crate::cert::issuer::Digest;
use crate::cert::pem;
use crate::revocation::ca::Ca;

const DELTA_CRL_INDICATOR: &str = "2.5.29.27";
const ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
const CERTIFICATE_ISSUER: &str = "2.5.29.29";
const REASON_CODE: &str = "2.5.29.21";

/// Why a CRL was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlError {
    /// Not DER, nor PEM with an `X509 CRL` block.
    Malformed(String),
    /// Its issuer is none of `revocation.issuers`.
    UnknownIssuer(String),
    /// The issuer's key does not verify its signature (or it names two different algorithms).
    BadSignature,
    /// Signed with an algorithm the filter cannot verify.
    UnsupportedSignature(String),
    /// A delta, indirect or partitioned CRL.
    Unsupported(&'static str),
    /// A critical extension the filter does not implement (RFC 5280 §5.2: such a CRL must not be used).
    CriticalExtension(String),
}

impl fmt::Display for CrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrlError::Malformed(e) => write!(f, "not a CRL (DER or PEM X509 CRL): {e}"),
            CrlError::UnknownIssuer(name) => write!(f, "issued by {name}, which is not in revocation.issuers"),
            CrlError::BadSignature => f.write_str("its signature does not verify with its issuer's key"),
            CrlError::UnsupportedSignature(oid) => write!(f, "signed with {oid}, which the filter cannot verify"),
            CrlError::Unsupported(what) => write!(f, "{what}, which the filter does not read"),
            CrlError::CriticalExtension(oid) => write!(f, "it has the critical extension {oid}, unknown to the filter"),
        }
    }
}

impl std::error::Error for CrlError {}

fn malformed(e: impl fmt::Display) -> CrlError {
    CrlError::Malformed(e.to_string())
}

/// A CRL whose structure, issuer and extensions checked out, before its signature is verified: the signed
/// bytes are at `tbs` in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub opened: Opened,
    pub tbs: std::ops::Range<usize>,
    pub algorithm: String,
    pub signature: Vec<u8>,
}

impl Unverified {
    /// Whether the issuing CA's key verifies the signature over `digest` (the hash of the `tbs` bytes).
    pub fn verify(&self, cas: &[Ca], digest: &[u8]) -> Result<(), CrlError> {
        let ca = cas.get(self.opened.ca).ok_or_else(|| malformed("its issuer is no longer configured"))?;
        match ca.key.verifies_prehashed(&self.algorithm, digest, &self.signature) {
            Ok(true) => Ok(()),
            Ok(false) => Err(CrlError::BadSignature),
            Err(e) => Err(CrlError::UnsupportedSignature(e.to_string())),
        }
    }
}

/// A CRL that checked out; its entries are at `entries` in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Index of the issuing CA in `revocation.issuers`.
    pub ca: usize,
    pub this_update_ms: u64,
    pub next_update_ms: Option<u64>,
    /// Byte range of the revokedCertificates' contents in the DER document (empty: none revoked).
    pub entries: std::ops::Range<usize>,
}

/// The DER of a CRL served as DER or as PEM (`-----BEGIN X509 CRL-----`).
pub fn der_of(body: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, CrlError> {
    if body.first() == Some(&0x30) {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let blocks = pem::decode_blocks(body, b"X509 CRL").map_err(|_| malformed("neither DER nor a PEM X509 CRL"))?;
    blocks.into_iter().next().map(std::borrow::Cow::Owned).ok_or_else(|| malformed("no PEM X509 CRL block"))
}

/// Opens and verifies the CRL `der` against the configured CAs, all at once.
pub fn open(der: &[u8], cas: &[Ca]) -> Result<Opened, CrlError> {
    let unverified = open_unverified(der, cas)?;
    let mut digest = Digest::of(&unverified.algorithm)
        .ok_or_else(|| CrlError::UnsupportedSignature(unverified.algorithm.clone()))?;
    digest.update(der.get(unverified.tbs.clone()).unwrap_or_default());
    unverified.verify(cas, &digest.finish())?;
    Ok(unverified.opened)
}

/// Reads the CRL `der` against the configured CAs without verifying its signature (the caller hashes the signed
/// bytes, at once or in slices, and calls [`Unverified::verify`]).
pub fn open_unverified(der: &[u8], cas: &[Ca]) -> Result<Unverified, CrlError> {
    let mut outer = SliceReader::new(der).map_err(malformed)?;
    let (tbs, algorithm, signature) = outer
        .sequence(|r| {
            let tbs = r.tlv_bytes()?;
            let algorithm = AlgorithmIdentifierOwned::decode(r)?;
            let signature = BitString::decode(r)?;
            Ok::<_, der::Error>((tbs, algorithm, signature))
        })
        .map_err(malformed)?;
    outer.finish().map_err(malformed)?;

    let mut r = SliceReader::new(tbs).map_err(malformed)?;
    let (issuer, inner_algorithm, this_update, next_update, entries, extensions) = r
        .sequence(|r| {
            if Tag::peek(r)? == Tag::Integer {
                let version = u8::decode(r)?;
                if version != 1 {
                    return Err(Tag::Integer.value_error().into());
                }
            }
            let algorithm = AlgorithmIdentifierOwned::decode(r)?;
            let issuer = r.tlv_bytes()?;
            let this_update = Time::decode(r)?;
            let next_update = match Tag::peek(r) {
                Ok(Tag::UtcTime | Tag::GeneralizedTime) => Some(Time::decode(r)?),
                _ => None,
            };
            let entries: &[u8] = match Tag::peek(r) {
                Ok(Tag::Sequence) => {
                    let header = der::Header::decode(r)?;
                    r.read_slice(header.length())?
                }
                _ => &[],
            };
            let extensions = r.context_specific::<Extensions>(TagNumber(0), TagMode::Explicit)?;
            Ok::<_, der::Error>((issuer, algorithm, this_update, next_update, entries, extensions))
        })
        .map_err(malformed)?;
    r.finish().map_err(malformed)?;

    let Some((ca, _)) = Ca::find(cas, issuer) else {
        return Err(CrlError::UnknownIssuer(super::name_text(issuer)));
    };
    // RFC 5280 §5.1.1.2: the signature field inside must name the outer algorithm.
    if inner_algorithm != algorithm {
        return Err(CrlError::BadSignature);
    }
    let signature = signature.as_bytes().ok_or(CrlError::BadSignature)?.to_vec();
    let algorithm = algorithm.oid.to_string();
    if Digest::of(&algorithm).is_none() {
        return Err(CrlError::UnsupportedSignature(algorithm));
    }
    for extension in extensions.iter().flatten() {
        match extension.extn_id.to_string().as_str() {
            DELTA_CRL_INDICATOR => return Err(CrlError::Unsupported("a delta CRL")),
            ISSUING_DISTRIBUTION_POINT => {
                let idp = IssuingDistributionPoint::from_der(extension.extn_value.as_bytes()).map_err(malformed)?;
                if idp.indirect_crl {
                    return Err(CrlError::Unsupported("an indirect CRL"));
                }
                if idp.only_some_reasons.is_some() || idp.distribution_point.is_some() {
                    return Err(CrlError::Unsupported("a partitioned CRL (its issuing distribution point limits it)"));
                }
                if idp.only_contains_ca_certs || idp.only_contains_attribute_certs {
                    return Err(CrlError::Unsupported("a CRL of CA or attribute certificates only"));
                }
            }
            // CRL number, authority key identifier, freshest CRL: nothing to enforce.
            oid if extension.critical => return Err(CrlError::CriticalExtension(oid.to_string())),
            _ => {}
        }
    }
    let offset = |part: &[u8]| (part.as_ptr() as usize).saturating_sub(der.as_ptr() as usize);
    let (start, tbs_start) = (offset(entries), offset(tbs));
    Ok(Unverified {
        opened: Opened {
            ca,
            this_update_ms: super::time_ms(&this_update),
            next_update_ms: next_update.as_ref().map(super::time_ms),
            entries: start..start.saturating_add(entries.len()),
        },
        tbs: tbs_start..tbs_start.saturating_add(tbs.len()),
        algorithm,
        signature,
    })
}

/// Reads up to `max` entries from the start of `entries` (the rest of a revokedCertificates' contents): the
/// serial numbers revoked, and how many bytes were read. An entry with `removeFromCRL` is not revoked; an
/// entry naming another certificate issuer (indirect CRL) or with an unknown critical extension is an error.
pub fn entries(entries: &[u8], max: usize) -> Result<(Vec<Vec<u8>>, usize), CrlError> {
    let mut serials = Vec::new();
    if entries.is_empty() {
        return Ok((serials, 0));
    }
    let mut r = SliceReader::new(entries).map_err(malformed)?;
    let mut read = 0;
    while read < max && !r.is_finished() {
        let entry = RevokedCert::<Rfc5280>::decode(&mut r).map_err(malformed)?;
        read += 1;
        let mut removed = false;
        for extension in entry.crl_entry_extensions.iter().flatten() {
            match extension.extn_id.to_string().as_str() {
                CERTIFICATE_ISSUER => return Err(CrlError::Unsupported("an indirect CRL")),
                REASON_CODE => {
                    let reason = CrlReason::from_der(extension.extn_value.as_bytes()).map_err(malformed)?;
                    removed = reason == CrlReason::RemoveFromCRL;
                }
                oid if extension.critical => return Err(CrlError::CriticalExtension(oid.to_string())),
                _ => {}
            }
        }
        if !removed {
            serials.push(entry.serial_number.as_bytes().to_vec());
        }
    }
    let consumed = usize::try_from(u32::from(r.position())).unwrap_or(usize::MAX);
    Ok((serials, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::target::Target;
    use crate::revocation::testdata::{der, CA, CRL, GOOD, REVOKED, ROGUE_CA, ROGUE_CRL};

    fn cas() -> Vec<Ca> {
        vec![Ca::parse(ROGUE_CA).unwrap(), Ca::parse(CA).unwrap()]
    }

    fn all_serials(crl: &[u8], opened: &Opened) -> Vec<Vec<u8>> {
        entries(&crl[opened.entries.clone()], usize::MAX).unwrap().0
    }

    #[test]
    fn a_crl_signed_by_its_issuer_opens_and_lists_what_the_ca_revoked() {
        let crl = der(CRL);
        let opened = open(&crl, &[Ca::parse(CA).unwrap()]).unwrap();
        assert_eq!(opened.ca, 0);
        assert!(opened.next_update_ms.unwrap() > opened.this_update_ms);
        let revoked = Target::of(&der(REVOKED)).unwrap().serial;
        let good = Target::of(&der(GOOD)).unwrap().serial;
        assert_eq!(all_serials(&crl, &opened), vec![revoked]);
        assert!(!all_serials(&crl, &opened).contains(&good));
    }

    #[test]
    fn a_crl_under_the_issuers_name_signed_by_another_key_is_refused() {
        // RFC 5280 §6.3.3 (f): the CRL's signature must verify with the issuer's key, not just carry its name.
        assert_eq!(open(&der(ROGUE_CRL), &[Ca::parse(CA).unwrap()]), Err(CrlError::BadSignature));
    }

    #[test]
    fn of_several_cas_with_one_name_the_first_listed_is_the_one_that_must_have_signed() {
        assert_eq!(open(&der(CRL), &cas()), Err(CrlError::BadSignature));
    }

    #[test]
    fn a_crl_of_an_issuer_not_configured_is_refused() {
        let e = open(&der(CRL), &[]).unwrap_err();
        assert!(matches!(&e, CrlError::UnknownIssuer(name) if name.contains("Revocation Test CA")), "{e:?}");
    }

    #[test]
    fn a_crl_altered_after_signing_does_not_verify() {
        let mut crl = der(CRL);
        // The last byte of the revoked serial (0x02 of 0x1002) becomes 0x01: now it would "revoke" 0x1001.
        let at = crl.windows(4).position(|w| w == [0x02, 0x02, 0x10, 0x02]).unwrap() + 3;
        crl[at] = 0x01;
        assert_eq!(open(&crl, &[Ca::parse(CA).unwrap()]), Err(CrlError::BadSignature));
    }

    #[test]
    fn a_crl_is_read_as_der_or_as_pem() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der(CRL));
        let pem = format!("-----BEGIN X509 CRL-----\n{b64}\n-----END X509 CRL-----\n");
        assert_eq!(der_of(pem.as_bytes()).unwrap().as_ref(), der(CRL).as_slice());
        assert_eq!(der_of(&der(CRL)).unwrap().as_ref(), der(CRL).as_slice());
        assert!(matches!(der_of(b"<html>not found</html>"), Err(CrlError::Malformed(_))));
    }

    #[test]
    fn garbage_and_truncated_crls_are_malformed_not_a_panic() {
        let crl = der(CRL);
        for cut in [0, 1, 10, crl.len() / 2, crl.len() - 1] {
            assert!(matches!(open(&crl[..cut], &cas()), Err(CrlError::Malformed(_))), "{cut}");
        }
        assert!(matches!(open(&[0x30, 0x03, 0x02, 0x01, 0x01], &cas()), Err(CrlError::Malformed(_))));
        assert!(matches!(entries(&[0x30, 0x05, 0x02], 10), Err(CrlError::Malformed(_))));
    }

    #[test]
    fn entries_are_read_a_slice_at_a_time() {
        let crl = der(CRL);
        let opened = open(&crl, &[Ca::parse(CA).unwrap()]).unwrap();
        let (first, used) = entries(&crl[opened.entries.clone()], 1).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(used, opened.entries.len());
        assert_eq!(entries(&[], 10).unwrap(), (vec![], 0));
        assert_eq!(entries(&crl[opened.entries.clone()], 0).unwrap(), (vec![], 0));
    }
}
