//! OCSP (RFC 6960): the request for one certificate's status, and the verified answer for it.
//!
//! The request carries one CertID hashed with SHA-1 (RFC 5019 §2.1.1: what every responder matches) and no
//! nonce (RFC 5019 §2.1.2: most responders ignore one); replay is bounded instead by `thisUpdate`, which must
//! be no older than `ocsp_max_age_seconds`. The answer counts only if the CA signed it, or a responder
//! certificate the CA signed that carries id-kp-OCSPSigning and is valid now (§4.2.2.2), and only for the
//! CertID that was asked. RFC 6960's structures are declared here with der's derive.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use der::asn1::{Any, BitString, GeneralizedTime, Int, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Reader, Sequence, SliceReader, Tag, TagNumber, Tagged};
use std::fmt;
use x509_cert::certificate::Rfc5280;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::ext::Extensions;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::time::Validity;

use crate::cert::issuer::IssuerKey;
use crate::revocation::ca::Ca;
use crate::revocation::Status;

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const EXTENDED_KEY_USAGE: &str = "2.5.29.37";
const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// How far in the future a `thisUpdate` may be (clocks differ).
pub const CLOCK_SKEW_MS: u64 = 60_000;

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct CertId {
    hash_algorithm: AlgorithmIdentifierOwned,
    issuer_name_hash: OctetString,
    issuer_key_hash: OctetString,
    serial_number: Int,
}

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct Request {
    req_cert: CertId,
}

/// TBSRequest with its defaults and options left out: version v1, no requestor name, no extensions.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct TbsRequest {
    request_list: Vec<Request>,
}

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct OcspRequest {
    tbs_request: TbsRequest,
}

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct ResponseBytes {
    response_type: ObjectIdentifier,
    response: OctetString,
}

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct OcspResponse {
    /// ENUMERATED OCSPResponseStatus, read as it comes.
    response_status: Any,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes>,
}

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct SingleResponse {
    cert_id: CertId,
    /// CHOICE of IMPLICIT [0] good, [1] revoked, [2] unknown: told apart by its tag.
    cert_status: Any,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    single_extensions: Option<Extensions>,
}

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct ResponseData {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<u8>,
    /// CHOICE byName [1] / byKey [2]: the signer is found by trying keys, not by this hint.
    responder_id: Any,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<Extensions>,
}

/// Why an OCSP exchange gave no status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcspError {
    Malformed(String),
    /// The responder answered with an error status (RFC 6960 §4.2.1: 1 malformedRequest ... 6 unauthorized).
    NotSuccessful(u8),
    /// A response type other than id-pkix-ocsp-basic.
    NotBasic,
    /// Signed neither by the CA nor by a responder the CA authorized.
    UnauthorizedSigner,
    /// No answer for the certificate that was asked about.
    NotAsked,
    /// `thisUpdate` further in the future than the clock skew allows.
    FromTheFuture,
    /// `thisUpdate` older than `ocsp_max_age_seconds`.
    TooOld {
        age_ms: u64,
    },
    /// `nextUpdate` has passed.
    Expired,
}

impl fmt::Display for OcspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OcspError::Malformed(e) => write!(f, "not an OCSP response: {e}"),
            OcspError::NotSuccessful(s) => write!(f, "the responder answered with error status {s}"),
            OcspError::NotBasic => f.write_str("not a basic OCSP response"),
            OcspError::UnauthorizedSigner => {
                f.write_str("signed neither by the CA nor by an OCSP responder certificate the CA issued")
            }
            OcspError::NotAsked => f.write_str("it has no answer for the certificate asked about"),
            OcspError::FromTheFuture => f.write_str("its thisUpdate is in the future"),
            OcspError::TooOld { age_ms } => {
                write!(f, "its thisUpdate is {} s old, more than ocsp_max_age_seconds", age_ms / 1000)
            }
            OcspError::Expired => f.write_str("its nextUpdate has passed"),
        }
    }
}

impl std::error::Error for OcspError {}

fn malformed(e: impl fmt::Display) -> OcspError {
    OcspError::Malformed(e.to_string())
}

fn cert_id(ca: &Ca, serial: &[u8]) -> Result<CertId, der::Error> {
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned { oid: ID_SHA1, parameters: Some(Any::null()) },
        issuer_name_hash: OctetString::new(ca.name_hash.to_vec())?,
        issuer_key_hash: OctetString::new(ca.key_hash.to_vec())?,
        serial_number: Int::new(serial)?,
    })
}

/// The DER OCSPRequest for the certificate `serial` of `ca`.
pub fn request(ca: &Ca, serial: &[u8]) -> Result<Vec<u8>, der::Error> {
    let request =
        OcspRequest { tbs_request: TbsRequest { request_list: vec![Request { req_cert: cert_id(ca, serial)? }] } };
    request.to_der()
}

/// The path of a GET request (RFC 6960 Appendix A.1): the responder's path, `/`, and the URL-encoded base64
/// of the DER request.
pub fn get_path(responder_path: &str, request_der: &[u8]) -> String {
    let mut path = responder_path.trim_end_matches('/').to_string();
    path.push('/');
    for c in STANDARD.encode(request_der).chars() {
        match c {
            '+' => path.push_str("%2B"),
            '/' => path.push_str("%2F"),
            '=' => path.push_str("%3D"),
            c => path.push(c),
        }
    }
    path
}

/// A verified answer about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: Status,
    pub this_update_ms: u64,
    pub next_update_ms: Option<u64>,
}

/// Whether the certificate `der` may sign responses for `ca` at `now_ms`: the CA signed it, it is valid now,
/// it carries id-kp-OCSPSigning (RFC 6960 §4.2.2.2). Its key, if so.
fn delegated_key(der: &[u8], ca: &Ca, now_ms: u64) -> Option<IssuerKey> {
    let (cert, _) = crate::cert::x509::Certificate::decode(der).ok()?;
    if ca.key.signed(der) != Ok(true) {
        return None;
    }
    let validity = Validity::<Rfc5280>::from_der(cert.validity).ok()?;
    if super::time_ms(&validity.not_before) > now_ms || super::time_ms(&validity.not_after) < now_ms {
        return None;
    }
    let eku = cert.extensions.iter().find(|e| e.oid == EXTENDED_KEY_USAGE)?;
    if !ExtendedKeyUsage::from_der(eku.value).ok()?.0.contains(&ID_KP_OCSP_SIGNING) {
        return None;
    }
    IssuerKey::from_spki(cert.spki.to_vec()).ok()
}

/// The certificates of a BasicOCSPResponse's `certs [0] EXPLICIT SEQUENCE OF Certificate`, each as its DER.
fn certificates<'a>(r: &mut SliceReader<'a>) -> der::Result<Vec<&'a [u8]>> {
    let mut certs = Vec::new();
    if r.is_finished() {
        return Ok(certs);
    }
    let header = der::Header::decode(r)?;
    header.tag().assert_eq(Tag::ContextSpecific { constructed: true, number: TagNumber(0) })?;
    r.read_nested(header.length(), |list| {
        list.sequence(|items| {
            while !items.is_finished() {
                certs.push(items.tlv_bytes()?);
            }
            Ok::<_, der::Error>(())
        })
    })?;
    Ok(certs)
}

/// Verifies an OCSP response `body` for the certificate `serial` of `ca`, at `now_ms`, accepting answers no
/// older than `max_age_ms`.
pub fn verify(body: &[u8], ca: &Ca, serial: &[u8], now_ms: u64, max_age_ms: u64) -> Result<Answer, OcspError> {
    let response = OcspResponse::from_der(body).map_err(malformed)?;
    if response.response_status.tag() != Tag::Enumerated {
        return Err(malformed("responseStatus is not ENUMERATED"));
    }
    match response.response_status.value() {
        [0] => {}
        [status] => return Err(OcspError::NotSuccessful(*status)),
        _ => return Err(malformed("responseStatus")),
    }
    let bytes = response.response_bytes.ok_or_else(|| malformed("a successful response without responseBytes"))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(OcspError::NotBasic);
    }
    let mut r = SliceReader::new(bytes.response.as_bytes()).map_err(malformed)?;
    let (tbs, algorithm, signature, certs) = r
        .sequence(|r| {
            let tbs = r.tlv_bytes()?;
            let algorithm = AlgorithmIdentifierOwned::decode(r)?;
            let signature = BitString::decode(r)?;
            let certs = certificates(r)?;
            Ok::<_, der::Error>((tbs, algorithm, signature, certs))
        })
        .map_err(malformed)?;
    r.finish().map_err(malformed)?;
    let data = ResponseData::from_der(tbs).map_err(malformed)?;

    let signature = signature.as_bytes().ok_or(OcspError::UnauthorizedSigner)?;
    let algorithm = algorithm.oid.to_string();
    let by = |key: &IssuerKey| key.verifies(&algorithm, tbs, signature) == Ok(true);
    let signed = by(&ca.key) || certs.iter().filter_map(|c| delegated_key(c, ca, now_ms)).any(|key| by(&key));
    if !signed {
        return Err(OcspError::UnauthorizedSigner);
    }

    let asked = cert_id(ca, serial).map_err(malformed)?;
    let single = data
        .responses
        .iter()
        .find(|s| {
            s.cert_id.hash_algorithm.oid == asked.hash_algorithm.oid
                && s.cert_id.issuer_name_hash == asked.issuer_name_hash
                && s.cert_id.issuer_key_hash == asked.issuer_key_hash
                && s.cert_id.serial_number == asked.serial_number
        })
        .ok_or(OcspError::NotAsked)?;
    let this_update_ms = super::generalized_ms(&single.this_update);
    let next_update_ms = single.next_update.as_ref().map(super::generalized_ms);
    if this_update_ms > now_ms.saturating_add(CLOCK_SKEW_MS) {
        return Err(OcspError::FromTheFuture);
    }
    let age_ms = now_ms.saturating_sub(this_update_ms);
    if age_ms > max_age_ms {
        return Err(OcspError::TooOld { age_ms });
    }
    if next_update_ms.is_some_and(|n| n < now_ms) {
        return Err(OcspError::Expired);
    }
    let status = match single.cert_status.tag() {
        Tag::ContextSpecific { number: TagNumber(0), .. } => Status::Good,
        Tag::ContextSpecific { number: TagNumber(1), .. } => Status::Revoked,
        Tag::ContextSpecific { number: TagNumber(2), .. } => Status::Unknown,
        _ => return Err(malformed("certStatus")),
    };
    Ok(Answer { status, this_update_ms, next_update_ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::testdata::*;

    const SERIAL_GOOD: [u8; 2] = [0x10, 0x01];
    const SERIAL_REVOKED: [u8; 2] = [0x10, 0x02];
    const HOUR_MS: u64 = 3_600_000;

    fn ca() -> Ca {
        Ca::parse(CA).unwrap()
    }

    fn at(minutes: i64) -> u64 {
        MADE_MS.checked_add_signed(minutes * 60_000).unwrap()
    }

    #[test]
    fn the_request_is_the_one_openssl_makes_a_sha1_cert_id_without_nonce() {
        assert_eq!(request(&ca(), &SERIAL_GOOD).unwrap(), der(REQUEST_1001));
    }

    #[test]
    fn a_get_request_appends_the_url_encoded_base64_request_to_the_responder_path() {
        // RFC 6960 Appendix A.1: GET {url}/{url-encoding of base-64 encoding of the DER encoding of the OCSPRequest}
        assert_eq!(get_path("/ocsp/", &[0xfb, 0xff, 0xfe]), "/ocsp/%2B%2F%2F%2B");
        assert_eq!(get_path("/", &[0x00]), "/AA%3D%3D");
    }

    #[test]
    fn an_answer_signed_by_the_ca_gives_the_status_of_the_certificate_asked() {
        let a = verify(&der(OCSP_GOOD), &ca(), &SERIAL_GOOD, at(1), HOUR_MS).unwrap();
        assert_eq!(a.status, Status::Good);
        assert_eq!(a.this_update_ms, MADE_MS);
        assert_eq!(a.next_update_ms, Some(MADE_MS + 24 * HOUR_MS));
    }

    #[test]
    fn an_answer_signed_by_a_responder_the_ca_certified_for_ocsp_signing_counts() {
        let a = verify(&der(OCSP_REVOKED), &ca(), &SERIAL_REVOKED, at(1), HOUR_MS).unwrap();
        assert_eq!(a.status, Status::Revoked);
    }

    #[test]
    fn an_answer_signed_by_any_other_key_is_refused() {
        assert_eq!(verify(&der(OCSP_ROGUE), &ca(), &SERIAL_GOOD, at(1), HOUR_MS), Err(OcspError::UnauthorizedSigner));
    }

    #[test]
    fn a_delegated_responder_of_another_ca_does_not_count() {
        // The responder certificate was issued by the CA, not by the rogue CA of the same name.
        let rogue = Ca::parse(ROGUE_CA).unwrap();
        let e = verify(&der(OCSP_REVOKED), &rogue, &SERIAL_REVOKED, at(1), HOUR_MS);
        assert_eq!(e, Err(OcspError::UnauthorizedSigner));
    }

    #[test]
    fn an_answer_about_another_certificate_is_no_answer() {
        assert_eq!(verify(&der(OCSP_GOOD), &ca(), &SERIAL_REVOKED, at(1), HOUR_MS), Err(OcspError::NotAsked));
    }

    #[test]
    fn unknown_is_reported_as_unknown() {
        let a = verify(&der(OCSP_UNKNOWN), &ca(), &[0x10, 0x09], at(1), HOUR_MS).unwrap();
        assert_eq!(a.status, Status::Unknown);
    }

    #[test]
    fn an_answer_older_than_the_maximum_age_is_refused_so_an_old_good_cannot_be_replayed() {
        let e = verify(&der(OCSP_GOOD), &ca(), &SERIAL_GOOD, at(61), HOUR_MS);
        assert_eq!(e, Err(OcspError::TooOld { age_ms: 61 * 60_000 }));
    }

    #[test]
    fn an_answer_past_its_next_update_is_refused() {
        assert_eq!(verify(&der(OCSP_GOOD), &ca(), &SERIAL_GOOD, at(25 * 60), 48 * HOUR_MS), Err(OcspError::Expired));
    }

    #[test]
    fn an_answer_from_the_future_beyond_the_clock_skew_is_refused() {
        assert_eq!(verify(&der(OCSP_GOOD), &ca(), &SERIAL_GOOD, at(-2), HOUR_MS), Err(OcspError::FromTheFuture));
        assert!(verify(&der(OCSP_GOOD), &ca(), &SERIAL_GOOD, at(0) - 30_000, HOUR_MS).is_ok());
    }

    #[test]
    fn an_answer_altered_after_signing_is_refused() {
        let mut body = der(OCSP_GOOD);
        // certStatus good [0] (0x80 0x00) becomes unknown [2] (0x82 0x00).
        let at_status = body.windows(2).position(|w| w == [0x80, 0x00]).unwrap();
        body[at_status] = 0x82;
        assert_eq!(verify(&body, &ca(), &SERIAL_GOOD, at(1), HOUR_MS), Err(OcspError::UnauthorizedSigner));
    }

    #[test]
    fn error_statuses_and_garbage_give_no_status() {
        // OCSPResponse { responseStatus tryLater (3) }
        assert_eq!(
            verify(&[0x30, 0x03, 0x0a, 0x01, 0x03], &ca(), &SERIAL_GOOD, at(1), HOUR_MS),
            Err(OcspError::NotSuccessful(3))
        );
        let good = der(OCSP_GOOD);
        for cut in [0, 3, 20, good.len() / 2, good.len() - 1] {
            assert!(
                matches!(verify(&good[..cut], &ca(), &SERIAL_GOOD, at(1), HOUR_MS), Err(OcspError::Malformed(_))),
                "{cut}"
            );
        }
    }
}
