//! Revocation of client certificates at the edge: RFC 5280 CRLs and RFC 6960 OCSP.
//!
//! The core reads bytes and decides; the worker (`proxy::revocation`) fetches, stores and holds requests.
//! - [`ca`]: the issuing CAs whose leaves are checked (their keys verify CRLs and OCSP responses);
//! - [`target`]: what a leaf says about its status: its issuer, serial, OCSP responder and CRL locations;
//! - [`crl`]: a CRL opened, verified and read a slice of entries at a time;
//! - [`ocsp`]: the request for one certificate, and the verified answer for it;
//! - [`store`]: the forms kept in shared data, and how the sources combine into one status.

pub mod ca;
pub mod crl;
pub mod ocsp;
pub mod store;
pub mod target;

#[cfg(test)]
pub(crate) mod testdata;

/// The statuses a source can give a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked,
    /// The source does not know the certificate (OCSP `unknown`): no status.
    Unknown,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Good => "good",
            Status::Revoked => "revoked",
            Status::Unknown => "unknown",
        }
    }
}

/// What happens when no fresh status can be had (`revocation.on_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    Reject,
    Pass,
}

/// A DER `Name` as RFC 4514 text, for log lines and errors (x509-cert's own Display would link its whole
/// OID name database into the module).
pub fn name_text(name_der: &[u8]) -> String {
    crate::cert::x509::name_from_der(name_der)
        .ok()
        .and_then(|n| crate::cert::dn::Dn::from_name(&n).ok())
        .map_or_else(|| "an unreadable name".to_string(), |dn| dn.to_string())
}

/// Milliseconds since the Unix epoch of an X.509 time.
pub(crate) fn time_ms(t: &x509_cert::time::Time) -> u64 {
    u64::try_from(t.to_unix_duration().as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch of a GeneralizedTime.
pub(crate) fn generalized_ms(t: &der::asn1::GeneralizedTime) -> u64 {
    u64::try_from(t.to_unix_duration().as_millis()).unwrap_or(u64::MAX)
}
