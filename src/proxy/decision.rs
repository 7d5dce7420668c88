//! What the filter decided on one request, for Envoy's own access log.
//!
//! The shell hands a [`Decision`] to Envoy as one filter-state value, `wasm.oauth_mtls` (one host call per
//! request), declared as a `google.protobuf.Struct`: the access-log operator `%FILTER_STATE(wasm.oauth_mtls:TYPED)%`
//! prints it as a JSON object, `{"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"verdict": ...}}`.
//! Absent fields are left out. Adding a field is one line in [`Decision::fields`] (and the field itself).

use crate::cert::Certificate;
use crate::oauth::verdict::{PassReason, Reason};

/// The filter-state key (`wasm.` + this) and the property the shell declares.
pub const PROPERTY: &str = "oauth_mtls";
/// The type the property is declared with, so that Envoy prints it as JSON.
pub const STRUCT_TYPE_URL: &str = "type.googleapis.com/google.protobuf.Struct";

/// The outcome of a request the filter acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ruling {
    /// Authenticated by its certificate and annotated for the AS.
    Authenticated,
    /// Let through unannotated (`reason`: why).
    Passed(PassReason),
    /// Answered by the filter itself (`reason`: the rejection reason the stats use).
    Rejected(Reason),
}

/// One request's decision, as the access log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub ruling: Ruling,
    pub client_id: Option<String>,
    /// `tls_client_auth` or `self_signed_tls_client_auth` (authenticated requests).
    pub method: Option<&'static str>,
    /// The certificate the decision was about: RFC 8705 `x5t#S256` (base64url) and hex SHA-256 (as Envoy's
    /// `%DOWNSTREAM_PEER_FINGERPRINT_256%` spells the connection's; a forwarded certificate is not the peer's).
    pub x5t_s256: Option<String>,
    pub sha256: Option<String>,
    /// The tenant the request was decided for (multi-tenancy; none yet).
    pub tenant: Option<String>,
}

impl Ruling {
    /// `authenticated`, `passed` or `rejected`.
    pub fn verdict(self) -> &'static str {
        match self {
            Ruling::Authenticated => "authenticated",
            Ruling::Passed(_) => "passed",
            Ruling::Rejected(_) => "rejected",
        }
    }

    /// Why: the rejection reason the stats name, or why the request passed.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Ruling::Authenticated => None,
            Ruling::Passed(PassReason::NoClientId) => Some("no_client_id"),
            Ruling::Passed(PassReason::UnknownClient) => Some("unknown_client"),
            Ruling::Passed(PassReason::NotMtlsClient) => Some("not_mtls_client"),
            Ruling::Rejected(reason) => Some(reason.name()),
        }
    }
}

impl Decision {
    pub fn new(ruling: Ruling, client_id: Option<&str>, certificate: Option<&Certificate>) -> Decision {
        Decision {
            ruling,
            client_id: client_id.map(str::to_string),
            method: None,
            x5t_s256: certificate.map(Certificate::x5t_s256),
            sha256: certificate.map(|c| crate::hex::encode(&c.sha256)),
            tenant: None,
        }
    }

    /// Every field by its name in the log, in order; `None` is left out.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 7] {
        [
            ("verdict", Some(self.ruling.verdict())),
            ("reason", self.ruling.reason()),
            ("client_id", self.client_id.as_deref()),
            ("auth_method", self.method),
            ("x5t_s256", self.x5t_s256.as_deref()),
            ("sha256", self.sha256.as_deref()),
            ("tenant", self.tenant.as_deref()),
        ]
    }

    /// The fields as a serialized `google.protobuf.Struct` of string values (the property's value).
    pub fn to_struct(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        for (name, value) in self.fields() {
            let Some(value) = value else { continue };
            // Struct.fields (1) is a map<string, Value>: an entry per field, key (1) and Value (2) whose
            // string_value is field 3.
            let mut string_value = Vec::with_capacity(value.len().saturating_add(4));
            length_delimited(&mut string_value, 3, value.as_bytes());
            let mut entry = Vec::with_capacity(name.len().saturating_add(string_value.len()).saturating_add(8));
            length_delimited(&mut entry, 1, name.as_bytes());
            length_delimited(&mut entry, 2, &string_value);
            length_delimited(&mut out, 1, &entry);
        }
        out
    }
}

/// Appends a protobuf length-delimited field (wire type 2): its tag, its length as a varint, its bytes.
pub fn length_delimited(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push((field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a protobuf varint field (wire type 0).
pub fn varint_field(out: &mut Vec<u8>, field: u8, value: u64) {
    out.push(field << 3);
    varint(out, value);
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The arguments of Envoy's `declare_property` foreign function (`DeclarePropertyArguments`: name 1, type 3,
/// schema 4) declaring [`PROPERTY`] a protobuf of [`STRUCT_TYPE_URL`], for the filter chain's life.
pub fn declaration() -> Vec<u8> {
    const WASM_TYPE_PROTOBUF: u64 = 3;
    let mut out = Vec::new();
    length_delimited(&mut out, 1, PROPERTY.as_bytes());
    varint_field(&mut out, 3, WASM_TYPE_PROTOBUF);
    length_delimited(&mut out, 4, STRUCT_TYPE_URL.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a serialized Struct of string values back (a minimal protobuf reader for the test).
    fn read_struct(bytes: &[u8]) -> Vec<(String, String)> {
        fn field(bytes: &[u8], at: &mut usize) -> (u8, Vec<u8>) {
            let tag = bytes[*at];
            *at += 1;
            let (mut len, mut shift) = (0usize, 0);
            loop {
                let b = bytes[*at];
                *at += 1;
                len |= usize::from(b & 0x7f) << shift;
                shift += 7;
                if b < 0x80 {
                    break;
                }
            }
            let value = bytes[*at..*at + len].to_vec();
            *at += len;
            (tag, value)
        }
        let (mut at, mut out) = (0, Vec::new());
        while at < bytes.len() {
            let (tag, entry) = field(bytes, &mut at);
            assert_eq!(tag, 0x0a);
            let mut e = 0;
            let (k_tag, key) = field(&entry, &mut e);
            let (v_tag, value) = field(&entry, &mut e);
            let mut v = 0;
            let (s_tag, string) = field(&value, &mut v);
            assert_eq!((k_tag, v_tag, s_tag), (0x0a, 0x12, 0x1a));
            out.push((String::from_utf8(key).unwrap(), String::from_utf8(string).unwrap()));
        }
        out
    }

    #[test]
    fn a_rejection_names_its_reason_and_leaves_absent_fields_out() {
        let d = Decision::new(Ruling::Rejected(Reason::SubjectMismatch), Some("payments"), None);
        assert_eq!(
            read_struct(&d.to_struct()),
            vec![
                ("verdict".into(), "rejected".into()),
                ("reason".into(), "subject_mismatch".into()),
                ("client_id".into(), "payments".into())
            ]
        );
    }

    #[test]
    fn the_certificate_is_given_as_x5t_s256_and_as_hex() {
        let der = crate::cert::pem::decode_leaf(crate::testdata::LEAF.as_bytes()).unwrap();
        let certificate = Certificate::from_der(der.clone());
        let d = Decision::new(Ruling::Authenticated, Some("payments"), Some(&certificate));
        let fields = read_struct(&d.to_struct());
        let hex: String = crate::cert::sha256(&der).iter().map(|b| format!("{b:02x}")).collect();
        assert!(fields.contains(&("x5t_s256".into(), crate::cert::x5t_s256(&der))), "{fields:?}");
        assert!(fields.contains(&("sha256".into(), hex)), "{fields:?}");
        assert!(!fields.iter().any(|(k, _)| k == "reason"), "{fields:?}");
    }

    #[test]
    fn a_passed_request_says_why() {
        let d = Decision::new(Ruling::Passed(PassReason::UnknownClient), Some("newcomer"), None);
        assert_eq!(
            read_struct(&d.to_struct())[..2],
            [("verdict".into(), "passed".into()), ("reason".into(), "unknown_client".into())]
        );
    }

    #[test]
    fn long_values_get_multi_byte_lengths() {
        let long = "x".repeat(300);
        let d = Decision::new(Ruling::Passed(PassReason::UnknownClient), Some(&long), None);
        assert!(read_struct(&d.to_struct()).contains(&("client_id".into(), long)));
    }

    #[test]
    fn the_declaration_is_a_protobuf_struct_property_named_oauth_mtls() {
        let mut expected = vec![0x0a, 10];
        expected.extend_from_slice(b"oauth_mtls");
        expected.extend_from_slice(&[0x18, 3, 0x22, 42]);
        expected.extend_from_slice(b"type.googleapis.com/google.protobuf.Struct");
        assert_eq!(declaration(), expected);
    }
}
