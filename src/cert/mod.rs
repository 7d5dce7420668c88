//! The client's leaf certificate: what the filter needs from it, decoded once from DER.

pub mod dn;
pub mod issuer;
pub mod pem;
pub mod san;
pub(crate) mod x509;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::cert::dn::{Dn, DnError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use x509::GeneralName;

/// The subjectAltName entries the filter matches on, each list in certificate order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sans {
    pub dns: Vec<String>,
    pub uri: Vec<String>,
    pub ip: Vec<IpAddr>,
    pub email: Vec<String>,
}

/// The decoded leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub subject: Dn,
    pub issuer: Dn,
    pub sans: Sans,
    /// SHA-256 of the whole DER encoding.
    pub sha256: [u8; 32],
}

/// Why a certificate could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    /// The DER is not an X.509 certificate; carries a one-line summary of the parser error.
    Malformed(String),
    /// Bytes follow the certificate.
    TrailingData { bytes: usize },
    /// The subject name could not be decoded.
    SubjectInvalid(DnError),
    /// The issuer name could not be decoded.
    IssuerInvalid(DnError),
    /// The certificate has more than one subjectAltName extension.
    DuplicateSubjectAltName,
    /// The subjectAltName extension could not be decoded.
    SubjectAltNameInvalid(String),
}

/// Keeps an error summary on one short line.
fn one_line(s: &str) -> String {
    const MAX: usize = 200;
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX).collect()
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Malformed(summary) => {
                write!(f, "certificate is not valid DER X.509: {summary}")
            }
            CertError::TrailingData { bytes } => {
                write!(f, "certificate is followed by {bytes} unexpected byte(s)")
            }
            CertError::SubjectInvalid(e) => write!(f, "certificate subject is invalid: {e}"),
            CertError::IssuerInvalid(e) => write!(f, "certificate issuer is invalid: {e}"),
            CertError::DuplicateSubjectAltName => {
                write!(f, "certificate has more than one subjectAltName extension")
            }
            CertError::SubjectAltNameInvalid(summary) => {
                write!(f, "certificate subjectAltName extension is invalid: {summary}")
            }
        }
    }
}

impl std::error::Error for CertError {}

/// SHA-256 of `der`.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// The RFC 8705 §3.1 `x5t#S256` thumbprint: base64url without padding of the SHA-256 of `der`.
pub fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha256(der))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Some(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        None
    }
}

/// A certificate as it was presented: its DER, the SHA-256 of it, and what decoding it gave. Built once per
/// certificate a worker sees (see `cache`), so a request on a known certificate decodes and hashes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub der: Vec<u8>,
    pub sha256: [u8; 32],
    pub leaf: Result<Leaf, CertError>,
}

impl Certificate {
    pub fn from_der(der: Vec<u8>) -> Certificate {
        let sha256 = sha256(&der);
        let leaf = Leaf::decode(&der, sha256);
        Certificate { der, sha256, leaf }
    }

    /// The RFC 8705 §3.1 `x5t#S256` thumbprint of this certificate.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }
}

impl Leaf {
    /// Decodes one DER certificate (nothing may follow it). The signature and validity are not
    /// checked here.
    pub fn from_der(der: &[u8]) -> Result<Leaf, CertError> {
        Leaf::decode(der, sha256(der))
    }

    fn decode(der: &[u8], sha256: [u8; 32]) -> Result<Leaf, CertError> {
        let (cert, trailing) =
            x509::Certificate::decode(der).map_err(|e| CertError::Malformed(one_line(&e.to_string())))?;
        if trailing > 0 {
            return Err(CertError::TrailingData { bytes: trailing });
        }
        let subject = Dn::from_name(&cert.subject).map_err(CertError::SubjectInvalid)?;
        let issuer = Dn::from_name(&cert.issuer).map_err(CertError::IssuerInvalid)?;
        let mut san = cert.extensions.iter().filter(|e| e.oid == x509::SUBJECT_ALT_NAME);
        let (first, second) = (san.next(), san.next());
        if second.is_some() {
            return Err(CertError::DuplicateSubjectAltName);
        }
        let mut sans = Sans::default();
        if let Some(extension) = first {
            let names = x509::general_names(extension.value)
                .map_err(|e| CertError::SubjectAltNameInvalid(one_line(&e.to_string())))?;
            for name in names {
                match name {
                    GeneralName::Dns(s) => sans.dns.push(s.to_string()),
                    GeneralName::Uri(s) => sans.uri.push(s.to_string()),
                    GeneralName::Email(s) => sans.email.push(s.to_string()),
                    GeneralName::Ip(bytes) => sans.ip.extend(ip_from_bytes(bytes)),
                    // Other kinds are never matched.
                    GeneralName::Other => {}
                }
            }
        }
        Ok(Leaf { subject, issuer, sans, sha256 })
    }

    /// The RFC 8705 §3.1 `x5t#S256` thumbprint of this certificate.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    // Generated with the openssl CLI (EC P-256). CA: C=GB, O=Example Bank, CN=Example Test CA.
    // Leaf issued by that CA, subject C=GB, O=Example Bank, OU=Payments, CN=client-one, with
    // subjectAltName=DNS:first.example.com,DNS:client.example.com,IP:10.1.2.3,IP:::1,
    // URI:spiffe://example.org/client-one,email:Ops@Example.com
    const LEAF_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICfDCCAiGgAwIBAgIUERKjoga0WUfy2bMHay93pYlz/R4wCgYIKoZIzj0EAwIw
PjELMAkGA1UEBhMCR0IxFTATBgNVBAoMDEV4YW1wbGUgQmFuazEYMBYGA1UEAwwP
RXhhbXBsZSBUZXN0IENBMCAXDTI2MTEyODExMTcyMVoYDzIxMjYxMTA0MTExNzIx
WjBMMQswCQYDVQQGEwJHQjEVMBMGA1UECgwMRXhhbXBsZSBCYW5rMREwDwYDVQQL
DAhQYXltZW50czETMBEGA1UEAwwKY2xpZW50LW9uZTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABC2SoyiY98+afLsgK5ZsofpPfJblqTtyrFbfvOt2F7z3+gu1qRQp
c+1Vz24imqMiC1mfnUoFRnb9HPfPWw3XFamjgewwgekwCQYDVR0TBAIwADALBgNV
HQ8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwIwegYDVR0RBHMwcYIRZmlyc3Qu
ZXhhbXBsZS5jb22CEmNsaWVudC5leGFtcGxlLmNvbYcECgECA4cQAAAAAAAAAAAA
AAAAAAAAAYYfc3BpZmZlOi8vZXhhbXBsZS5vcmcvY2xpZW50LW9uZYEPT3BzQEV4
YW1wbGUuY29tMB0GA1UdDgQWBBT05EtOxXQuslXaq7dE6jSX6obKIjAfBgNVHSME
GDAWgBTc5AkMFVIDl/dWoivF7QrxqfPQjzAKBggqhkjOPQQDAgNJADBGAiEA5y28
IRYwLhqLvT9EZ2TPiqSAU88lV3lYsyJBMRtFwR8CIQCKbofayt+0srojN+y2MKSY
sBYHVIMRM8k6solh7gqK5g==
-----END CERTIFICATE-----";

    /// `openssl x509 -in leaf.pem -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d '='`
    const LEAF_X5T_S256: &str = "Vof51yI-wIBw9hIDgFFY_IHTOth_Lnr3Qau4W3UgS2o";

    // Self-signed: subject = issuer = CN=self-signed-client, O=Example Corp;
    // subjectAltName=URI:https://client.example.org
    const SELF_SIGNED_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIB5jCCAYygAwIBAgIULgyOXBSbOWJVEurME1tYPmRNMPkwCgYIKoZIzj0EAwIw
NDEbMBkGA1UEAwwSc2VsZi1zaWduZWQtY2xpZW50MRUwEwYDVQQKDAxFeGFtcGxl
IENvcnAwIBcNMjYxMTI4MTExNzIxWhgPMjEyNjExMDQxMTE3MjFaMDQxGzAZBgNV
BAMMEnNlbGYtc2lnbmVkLWNsaWVudDEVMBMGA1UECgwMRXhhbXBsZSBDb3JwMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEt/ZaygSImbRYPbQH/66B5CIEGnhtPfxy
CMw5ATcXxP5mji8jhkcxi6vurS6dx1l4KgE51ci7XaTeApOymxMEuaN6MHgwHQYD
VR0OBBYEFAs4j4YtOoeXkuJifZuvFP1zNtBNMB8GA1UdIwQYMBaAFAs4j4YtOoeX
kuJifZuvFP1zNtBNMA8GA1UdEwEB/wQFMAMBAf8wJQYDVR0RBB4wHIYaaHR0cHM6
Ly9jbGllbnQuZXhhbXBsZS5vcmcwCgYIKoZIzj0EAwIDSAAwRQIgLmTqE004uWKs
M+nYYS5Lbjx1f3XCptmeuU9Y0DBHp3UCIQDT2shoP/LbOwXnT1G1sEPqwysnMFh9
sVCmsQn2EQhxMw==
-----END CERTIFICATE-----";

    const SELF_SIGNED_X5T_S256: &str = "oUhK-RJerphhvsJlP_HuQzV3mm1Ijbjh9otLWifdsQA";

    // Same subject as the leaf, an X.509 v1 certificate without any extension.
    const NO_SAN_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBhzCCAS0CFBESo6IGtFlH8tmzB2svd6WJc/0gMAoGCCqGSM49BAMCMD4xCzAJ
BgNVBAYTAkdCMRUwEwYDVQQKDAxFeGFtcGxlIEJhbmsxGDAWBgNVBAMMD0V4YW1w
bGUgVGVzdCBDQTAgFw0yNjExMjgxMTE3MjdaGA8yMTI2MTEwNDExMTcyN1owTDEL
MAkGA1UEBhMCR0IxFTATBgNVBAoMDEV4YW1wbGUgQmFuazERMA8GA1UECwwIUGF5
bWVudHMxEzARBgNVBAMMCmNsaWVudC1vbmUwWTATBgcqhkjOPQIBBggqhkjOPQMB
BwNCAAQtkqMomPfPmny7ICuWbKH6T3yW5ak7cqxW37zrdhe89/oLtakUKXPtVc9u
IpqjIgtZn51KBUZ2/Rz3z1sN1xWpMAoGCCqGSM49BAMCA0gAMEUCIQDmPIynFpLw
xJj3skw4NcIzKQqnLI2dcLvdpOMITDP6zwIgFvX4wKMGiBwiXK1M1QuK4EO+WbFd
4OHtPqAU8Spjmx4=
-----END CERTIFICATE-----";

    // Leaf with subjectAltName=DNS:a.example.com and issuerAltName=DNS:b.example.com; the test
    // rewrites the issuerAltName OID (2.5.29.18) into a second subjectAltName (2.5.29.17).
    const SAN_AND_IAN_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICBDCCAaqgAwIBAgIUERKjoga0WUfy2bMHay93pYlz/SEwCgYIKoZIzj0EAwIw
PjELMAkGA1UEBhMCR0IxFTATBgNVBAoMDEV4YW1wbGUgQmFuazEYMBYGA1UEAwwP
RXhhbXBsZSBUZXN0IENBMCAXDTI2MTEyODExMTczMVoYDzIxMjYxMTA0MTExNzMx
WjBMMQswCQYDVQQGEwJHQjEVMBMGA1UECgwMRXhhbXBsZSBCYW5rMREwDwYDVQQL
DAhQYXltZW50czETMBEGA1UEAwwKY2xpZW50LW9uZTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABC2SoyiY98+afLsgK5ZsofpPfJblqTtyrFbfvOt2F7z3+gu1qRQp
c+1Vz24imqMiC1mfnUoFRnb9HPfPWw3XFamjdjB0MBgGA1UdEQQRMA+CDWEuZXhh
bXBsZS5jb20wGAYDVR0SBBEwD4INYi5leGFtcGxlLmNvbTAdBgNVHQ4EFgQU9ORL
TsV0LrJV2qu3ROo0l+qGyiIwHwYDVR0jBBgwFoAU3OQJDBVSA5f3VqIrxe0K8anz
0I8wCgYIKoZIzj0EAwIDSAAwRQIgLBAvVvax/8zz0T3C4lHuFyDxKKmw0Ex2rPAH
LMoXprgCIQD1bmzlfTZm137dWWB5UJva3PmnZU+byAB1w/0qxwZKNA==
-----END CERTIFICATE-----";

    /// Test-only PEM decoding: the base64 between the armour lines.
    fn der(pem: &str) -> Vec<u8> {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn subject_is_decoded_and_matches_its_rfc4514_string() {
        let leaf = Leaf::from_der(&der(LEAF_PEM)).unwrap();
        let registered = Dn::parse("CN=client-one,OU=Payments,O=Example Bank,C=GB").unwrap();
        assert!(leaf.subject.matches(&registered));
        assert_eq!(leaf.subject.to_string(), "CN=client-one,OU=Payments,O=Example Bank,C=GB");
        assert!(!leaf.subject.matches(&Dn::parse("CN=client-one,O=Example Bank,C=GB").unwrap()));
    }

    #[test]
    fn issuer_is_decoded() {
        let leaf = Leaf::from_der(&der(LEAF_PEM)).unwrap();
        assert!(leaf.issuer.matches(&Dn::parse("CN=Example Test CA,O=Example Bank,C=GB").unwrap()));
    }

    #[test]
    fn all_subject_alt_names_are_collected_in_order() {
        let leaf = Leaf::from_der(&der(LEAF_PEM)).unwrap();
        assert_eq!(
            leaf.sans,
            Sans {
                dns: vec!["first.example.com".into(), "client.example.com".into()],
                uri: vec!["spiffe://example.org/client-one".into()],
                ip: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), IpAddr::V6(Ipv6Addr::LOCALHOST)],
                email: vec!["Ops@Example.com".into()],
            }
        );
    }

    #[test]
    fn no_subject_alt_name_extension_gives_empty_lists() {
        let leaf = Leaf::from_der(&der(NO_SAN_PEM)).unwrap();
        assert_eq!(leaf.sans, Sans::default());
        assert!(!leaf.subject.is_empty());
    }

    #[test]
    fn two_subject_alt_name_extensions_are_malformed() {
        let mut bytes = der(SAN_AND_IAN_PEM);
        assert!(Leaf::from_der(&bytes).is_ok());
        let ian_oid = [0x06, 0x03, 0x55, 0x1D, 0x12];
        let at = bytes.windows(5).position(|w| w == ian_oid).unwrap();
        bytes[at + 4] = 0x11;
        assert_eq!(Leaf::from_der(&bytes), Err(CertError::DuplicateSubjectAltName));
    }

    #[test]
    fn x5t_s256_is_base64url_of_sha256_of_the_der() {
        let bytes = der(LEAF_PEM);
        let leaf = Leaf::from_der(&bytes).unwrap();
        assert_eq!(leaf.x5t_s256(), LEAF_X5T_S256);
        assert_eq!(x5t_s256(&bytes), LEAF_X5T_S256);
        assert_eq!(leaf.sha256, sha256(&bytes));
        assert!(!leaf.x5t_s256().contains(['=', '+', '/']));
    }

    #[test]
    fn a_presented_certificate_keeps_its_der_its_hash_and_its_decoding() {
        let bytes = der(LEAF_PEM);
        let c = Certificate::from_der(bytes.clone());
        assert_eq!(c.x5t_s256(), LEAF_X5T_S256);
        assert_eq!(c.sha256, sha256(&bytes));
        assert_eq!(c.leaf, Leaf::from_der(&bytes));
        assert_eq!(c.der, bytes);
    }

    #[test]
    fn a_presented_certificate_that_does_not_decode_keeps_the_error() {
        let c = Certificate::from_der(b"not a certificate".to_vec());
        assert!(matches!(c.leaf, Err(CertError::Malformed(_))));
        assert_eq!(c.sha256, sha256(b"not a certificate"));
    }

    #[test]
    fn self_signed_certificate_is_decoded() {
        let bytes = der(SELF_SIGNED_PEM);
        let leaf = Leaf::from_der(&bytes).unwrap();
        assert!(leaf.subject.matches(&leaf.issuer));
        assert!(leaf.subject.matches(&Dn::parse("O=Example Corp,CN=self-signed-client").unwrap()));
        assert_eq!(leaf.sans.uri, vec!["https://client.example.org".to_string()]);
        assert_eq!(leaf.x5t_s256(), SELF_SIGNED_X5T_S256);
    }

    #[test]
    fn garbage_is_an_error() {
        for input in [&b""[..], b"\x00", b"hello world", b"\x30\x03\x02\x01"] {
            assert!(matches!(Leaf::from_der(input), Err(CertError::Malformed(_))));
        }
        // PEM text instead of DER.
        assert!(Leaf::from_der(LEAF_PEM.as_bytes()).is_err());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = der(LEAF_PEM);
        for len in 0..bytes.len() {
            assert!(Leaf::from_der(&bytes[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn trailing_byte_is_an_error() {
        let mut bytes = der(LEAF_PEM);
        bytes.push(0);
        assert_eq!(Leaf::from_der(&bytes), Err(CertError::TrailingData { bytes: 1 }));
    }

    #[test]
    fn error_messages_are_one_line() {
        let bytes = der(LEAF_PEM);
        let errors = [Leaf::from_der(b"\n\r").unwrap_err(), Leaf::from_der(&bytes[..100]).unwrap_err()];
        for e in errors {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg}");
        }
    }
}
