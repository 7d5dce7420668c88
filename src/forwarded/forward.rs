//! The authenticated certificate written into the header the AS reads (RFC 9440, PEM, URL-encoded PEM, base64 DER).

use crate::config::ForwardFormat;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The header value carrying `der` in `format`. Every format is a single line of visible ASCII.
pub fn encode(der: &[u8], format: ForwardFormat) -> String {
    match format {
        ForwardFormat::Rfc9440 => format!(":{}:", STANDARD.encode(der)),
        // One line: header values cannot hold line breaks. WSO2 and Java readers strip whitespace.
        ForwardFormat::Pem => {
            format!("-----BEGIN CERTIFICATE----- {} -----END CERTIFICATE-----", STANDARD.encode(der))
        }
        ForwardFormat::PemUrlencoded => percent_encode(&crate::cert::pem::encode(der)),
        ForwardFormat::Base64Der => STANDARD.encode(der),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as nginx's `$ssl_client_escaped_cert`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DER: &[u8] = b"\x30\x03\x02\x01\x05 some der bytes + / = ";

    #[test]
    fn rfc9440_is_a_structured_field_byte_sequence() {
        let v = encode(DER, ForwardFormat::Rfc9440);
        assert!(v.starts_with(':') && v.ends_with(':'));
        assert_eq!(crate::forwarded::client_cert::parse_client_cert(v.as_bytes()).unwrap(), DER);
    }

    #[test]
    fn base64_der_is_plain_standard_base64() {
        assert_eq!(STANDARD.decode(encode(DER, ForwardFormat::Base64Der)).unwrap(), DER);
    }

    #[test]
    fn pem_is_one_line_that_pem_readers_accept() {
        let v = encode(DER, ForwardFormat::Pem);
        assert!(!v.contains(['\r', '\n']));
        assert_eq!(crate::cert::pem::decode_leaf(v.as_bytes()).unwrap(), DER);
    }

    #[test]
    fn pem_urlencoded_decodes_to_the_pem() {
        let v = encode(DER, ForwardFormat::PemUrlencoded);
        assert!(v.bytes().all(|b| b.is_ascii_graphic()));
        assert!(v.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
        assert_eq!(crate::cert::pem::decode_leaf(v.as_bytes()).unwrap(), DER);
    }
}
