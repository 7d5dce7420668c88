//! HTTP Basic client credentials (RFC 7617, RFC 6749 §2.3.1): the client id they carry.

use crate::oauth::form::{decode_component, FormError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;

/// Why Basic credentials could not yield a client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasicError {
    /// The credentials after `Basic` are missing or not standard padded base64.
    InvalidBase64,
    /// The decoded credentials have no `:` between client id and secret.
    MissingColon,
    /// The client id is not UTF-8 after decoding.
    InvalidUtf8,
    /// The client id has a `%` not followed by two hex digits.
    InvalidEncoding,
}

impl fmt::Display for BasicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            BasicError::InvalidBase64 => "Basic credentials are not valid base64",
            BasicError::MissingColon => "Basic credentials have no ':' after the client id",
            BasicError::InvalidUtf8 => "Basic client id is not UTF-8",
            BasicError::InvalidEncoding => "Basic client id has a '%' not followed by two hex digits",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for BasicError {}

/// Whether an `Authorization` value uses the `Basic` scheme (whatever its credentials).
pub fn is_basic(authorization: &[u8]) -> bool {
    basic_credentials(authorization).is_some()
}

/// The credentials of an `Authorization` value with the `Basic` scheme (any case), or `None` for another scheme.
fn basic_credentials(authorization: &[u8]) -> Option<&[u8]> {
    let value = trim_sp(authorization);
    let (scheme, credentials) = match value.iter().position(|&b| b == b' ') {
        Some(sp) => (value.get(..sp).unwrap_or_default(), value.get(sp..).unwrap_or_default()),
        None => (value, &[][..]),
    };
    scheme.eq_ignore_ascii_case(b"Basic").then_some(credentials)
}

/// The client id carried by an `Authorization` value with the `Basic` scheme, or `None` for
/// another scheme. The id (before the first `:`) is form-urlencoded (RFC 6749 §2.3.1) and is
/// decoded; it may be empty.
pub fn client_id(authorization: &[u8]) -> Result<Option<String>, BasicError> {
    let Some(credentials) = basic_credentials(authorization) else { return Ok(None) };
    let token68 = trim_sp(credentials);
    if token68.is_empty() {
        return Err(BasicError::InvalidBase64);
    }
    let decoded = STANDARD.decode(token68).map_err(|_| BasicError::InvalidBase64)?;
    let colon = decoded.iter().position(|&b| b == b':').ok_or(BasicError::MissingColon)?;
    let id = decoded.get(..colon).unwrap_or_default();
    decode_component(id).map(Some).map_err(|e| match e {
        FormError::InvalidPercentEncoding => BasicError::InvalidEncoding,
        FormError::InvalidUtf8 | FormError::DuplicateParameter(_) => BasicError::InvalidUtf8,
    })
}

fn trim_sp(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ').map_or(start, |p| p.saturating_add(1));
    s.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &[u8]) -> String {
        format!("Basic {}", STANDARD.encode(credentials))
    }

    #[test]
    fn client_id_is_the_part_before_the_first_colon() {
        // RFC 6749 §2.3.1 example: s6BhdRkqt3:7Fjfp0ZBr1KtDRbnfVdmIw
        assert_eq!(
            client_id(b"Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3").unwrap(),
            Some("s6BhdRkqt3".to_string())
        );
        assert_eq!(client_id(basic(b"id:secret:with:colons").as_bytes()).unwrap(), Some("id".to_string()));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let v = format!("bASIC {}", STANDARD.encode("id:pw"));
        assert_eq!(client_id(v.as_bytes()).unwrap(), Some("id".to_string()));
    }

    #[test]
    fn several_spaces_may_follow_the_scheme() {
        let v = format!("Basic    {}", STANDARD.encode("id:pw"));
        assert_eq!(client_id(v.as_bytes()).unwrap(), Some("id".to_string()));
    }

    #[test]
    fn other_schemes_carry_no_client_id() {
        assert_eq!(client_id(b"Bearer abc").unwrap(), None);
        assert_eq!(client_id(b"DPoP abc").unwrap(), None);
        assert_eq!(client_id(b"Basicx aWQ6cHc=").unwrap(), None);
        assert_eq!(client_id(b"").unwrap(), None);
    }

    #[test]
    fn invalid_base64_is_an_error() {
        assert_eq!(client_id(b"Basic !!!"), Err(BasicError::InvalidBase64));
        assert_eq!(client_id(b"Basic aWQ6cHc"), Err(BasicError::InvalidBase64));
        assert_eq!(client_id(b"Basic aWQ6 cHc="), Err(BasicError::InvalidBase64));
    }

    #[test]
    fn basic_without_credentials_is_an_error() {
        assert_eq!(client_id(b"Basic"), Err(BasicError::InvalidBase64));
        assert_eq!(client_id(b"Basic   "), Err(BasicError::InvalidBase64));
    }

    #[test]
    fn decoded_credentials_must_contain_a_colon() {
        assert_eq!(client_id(basic(b"no-colon").as_bytes()), Err(BasicError::MissingColon));
    }

    #[test]
    fn client_id_is_form_urlencoded() {
        assert_eq!(client_id(basic(b"my%3Aclient:secret").as_bytes()).unwrap(), Some("my:client".to_string()));
        assert_eq!(client_id(basic(b"a+b:secret").as_bytes()).unwrap(), Some("a b".to_string()));
    }

    #[test]
    fn invalid_percent_escape_in_client_id_is_an_error() {
        assert_eq!(client_id(basic(b"bad%zz:secret").as_bytes()), Err(BasicError::InvalidEncoding));
    }

    #[test]
    fn client_id_must_be_utf8() {
        assert_eq!(client_id(basic(b"\xff:secret").as_bytes()), Err(BasicError::InvalidUtf8));
        assert_eq!(client_id(basic(b"%FF:secret").as_bytes()), Err(BasicError::InvalidUtf8));
    }

    #[test]
    fn empty_client_id_is_returned_as_empty() {
        assert_eq!(client_id(basic(b":secret").as_bytes()).unwrap(), Some(String::new()));
    }
}
