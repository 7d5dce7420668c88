//! What the filter decided on one request, for Envoy's own access log.
//!
//! The shell hands a [`Decision`] to Envoy as one filter-state value, `wasm.oauth_mtls` (one host call per
//! decided request): a JSON object of strings, which `%FILTER_STATE(wasm.oauth_mtls:PLAIN)%` prints. Absent fields
//! are left out. Adding a field is one line in [`Decision::fields`] (and the field itself).
//!
//! JSON text rather than a `google.protobuf.Struct` (which Envoy's `:TYPED` would print as a nested object): Envoy
//! 1.40 spends ~200,000 instructions per request converting that Struct to JSON for the access log, measured.

use crate::cert::Certificate;
use crate::oauth::verdict::{PassReason, Reason};

/// The filter-state key: Envoy's is `wasm.` + this.
pub const PROPERTY: &str = "oauth_mtls";

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
    /// The tenant a templated endpoint named (none at a literal endpoint or a resource).
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
            client_id: client_id.map(crate::oauth::response::bounded),
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

    /// The fields as one JSON object of strings (the property's value). Written by hand: serde_json's map
    /// costs a random hasher seed (a WASI call) per request.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push('{');
        for (name, value) in self.fields() {
            let Some(value) = value else { continue };
            if out.len() > 1 {
                out.push(',');
            }
            json_string(&mut out, name);
            out.push(':');
            json_string(&mut out, value);
        }
        out.push('}');
        out
    }
}

/// Appends `text` as a JSON string (RFC 8259 §7: `"`, `\\` and control characters escaped).
fn json_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let hex = |nibble: u32| char::from(HEX.get(nibble as usize).copied().unwrap_or(b'0'));
                out.push_str("\\u00");
                out.push(hex(u32::from(c) >> 4));
                out.push(hex(u32::from(c) & 0xf));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(d: &Decision) -> serde_json::Value {
        serde_json::from_str(&d.to_json()).unwrap()
    }

    #[test]
    fn a_rejection_names_its_reason_and_leaves_absent_fields_out() {
        let d = Decision::new(Ruling::Rejected(Reason::SubjectMismatch), Some("payments"), None);
        assert_eq!(d.to_json(), r#"{"verdict":"rejected","reason":"subject_mismatch","client_id":"payments"}"#);
    }

    #[test]
    fn the_certificate_is_given_as_x5t_s256_and_as_hex() {
        let der = crate::cert::pem::decode_leaf(crate::testdata::LEAF.as_bytes()).unwrap();
        let certificate = Certificate::from_der(der.clone());
        let d = Decision::new(Ruling::Authenticated, Some("payments"), Some(&certificate));
        let fields = read(&d);
        let hex: String = crate::cert::sha256(&der).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(fields["x5t_s256"], crate::cert::x5t_s256(&der));
        assert_eq!(fields["sha256"], hex);
        assert_eq!(fields.get("reason"), None);
    }

    #[test]
    fn a_passed_request_says_why() {
        let d = Decision::new(Ruling::Passed(PassReason::UnknownClient), Some("newcomer"), None);
        assert_eq!(
            (read(&d)["verdict"].as_str(), read(&d)["reason"].as_str()),
            (Some("passed"), Some("unknown_client"))
        );
    }

    #[test]
    fn a_client_id_with_quotes_and_control_characters_stays_one_json_string() {
        let d = Decision::new(Ruling::Passed(PassReason::UnknownClient), Some("a\"b\n{c\\d\u{1}é"), None);
        assert_eq!(read(&d)["client_id"], "a\"b\n{c\\d\u{1}é");
        assert!(!d.to_json().contains('\n'));
    }
}
