//! What a leaf certificate says about where its revocation status is: its issuer and serial number (which
//! entry of a CRL, which OCSP CertID), its OCSP responder (Authority Information Access, RFC 5280 §4.2.2.1)
//! and its CRLs (CRL Distribution Points, §4.2.1.13). Only `http:` locations are used (RFC 5280 and RFC 6960
//! fetch both over plain HTTP: CRLs and responses are signed).

use der::Decode;
use x509_cert::certificate::Rfc5280;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};
use x509_cert::serial_number::SerialNumber;

/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const ID_AD_OCSP: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

const AUTHORITY_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.1";
const CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";

/// The revocation facts of one leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The DER of the leaf's issuer Name.
    pub issuer_name: Vec<u8>,
    /// The serial number's content octets (two's complement, as encoded).
    pub serial: Vec<u8>,
    pub ocsp_urls: Vec<String>,
    pub crl_urls: Vec<String>,
}

fn http_uris(names: &[GeneralName]) -> impl Iterator<Item = String> + '_ {
    names
        .iter()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_string()),
            _ => None,
        })
        .filter(|u| u.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")))
}

impl Target {
    /// Reads a leaf's DER. A malformed AIA or CRL DP extension is an error (a certificate whose status
    /// location cannot be read must not look as if it had none).
    pub fn of(leaf_der: &[u8]) -> Result<Target, der::Error> {
        let (cert, _) = crate::cert::x509::Certificate::decode(leaf_der)?;
        let extension = |oid: &str| cert.extensions.iter().find(|e| e.oid == oid).map(|e| e.value);
        let mut ocsp_urls = Vec::new();
        if let Some(value) = extension(AUTHORITY_INFO_ACCESS) {
            let aia = AuthorityInfoAccessSyntax::from_der(value)?;
            let ocsp: Vec<GeneralName> =
                aia.0.into_iter().filter(|a| a.access_method == ID_AD_OCSP).map(|a| a.access_location).collect();
            ocsp_urls.extend(http_uris(&ocsp));
        }
        let mut crl_urls = Vec::new();
        if let Some(value) = extension(CRL_DISTRIBUTION_POINTS) {
            for dp in CrlDistributionPoints::from_der(value)?.0 {
                // A point with its own CRL issuer names an indirect CRL, which the filter does not read.
                if dp.crl_issuer.is_some() {
                    continue;
                }
                if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point {
                    crl_urls.extend(http_uris(names));
                }
            }
        }
        Ok(Target {
            issuer_name: cert.issuer_der.to_vec(),
            serial: SerialNumber::<Rfc5280>::from_der(cert.serial)?.as_bytes().to_vec(),
            ocsp_urls,
            crl_urls,
        })
    }

    /// The serial number in hex, for keys and log lines.
    pub fn serial_hex(&self) -> String {
        crate::hex::encode(&self.serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::testdata::{der, CA, GOOD};

    #[test]
    fn a_leaf_gives_its_issuer_serial_ocsp_responder_and_crl_distribution_point() {
        let t = Target::of(&der(GOOD)).unwrap();
        assert_eq!(t.serial, vec![0x10, 0x01]);
        assert_eq!(t.ocsp_urls, vec!["http://ocsp.example.test/ocsp".to_string()]);
        assert_eq!(t.crl_urls, vec!["http://crl.example.test/ca.crl".to_string()]);
        assert_eq!(t.issuer_name, crate::revocation::ca::Ca::parse(CA).unwrap().name);
    }

    #[test]
    fn a_certificate_without_those_extensions_has_no_locations() {
        let t = Target::of(&der(CA)).unwrap();
        assert!(t.ocsp_urls.is_empty() && t.crl_urls.is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Target::of(b"\x30\x03\x02\x01").is_err());
    }
}
