//! application/x-www-form-urlencoded bodies (the token request), and the client_id rule of RFC 6749.

use std::fmt;

/// Why a form body (or one of its components) was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// A `%` is not followed by two hex digits.
    InvalidPercentEncoding,
    /// A decoded name or value is not UTF-8.
    InvalidUtf8,
    /// The named parameter appears more than once (RFC 6749 §3.2).
    DuplicateParameter(String),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::InvalidPercentEncoding => f.write_str("form data has a '%' not followed by two hex digits"),
            FormError::InvalidUtf8 => f.write_str("form data is not UTF-8 after decoding"),
            FormError::DuplicateParameter(name) => {
                write!(f, "form parameter {name} is included more than once")
            }
        }
    }
}

impl std::error::Error for FormError {}

/// True if `value` (a Content-Type field value) is the media type
/// `application/x-www-form-urlencoded`, compared case-insensitively, with or without parameters.
pub fn is_form_content_type(value: &[u8]) -> bool {
    let essence = match value.iter().position(|&b| b == b';') {
        Some(semi) => value.get(..semi).unwrap_or_default(),
        None => value,
    };
    trim_ows(essence).eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

/// Decodes a form body to its `(name, value)` pairs in order. Empty pieces between `&` are
/// skipped; a piece without `=` has an empty value.
pub fn decode(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    body.split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => {
                    (piece.get(..eq).unwrap_or_default(), piece.get(eq.saturating_add(1)..).unwrap_or_default())
                }
                None => (piece, &[][..]),
            };
            Ok((decode_component(name)?, decode_component(value)?))
        })
        .collect()
}

/// Decodes one form-urlencoded component: `+` is a space, then `%XX` escapes are decoded
/// strictly; the result must be UTF-8.
pub fn decode_component(component: &[u8]) -> Result<String, FormError> {
    if !component.iter().any(|&b| b == b'+' || b == b'%') {
        return String::from_utf8(component.to_vec()).map_err(|_| FormError::InvalidUtf8);
    }
    let spaced: Vec<u8> = component.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    let bytes = crate::cert::pem::percent_decode(&spaced).ok_or(FormError::InvalidPercentEncoding)?;
    String::from_utf8(bytes).map_err(|_| FormError::InvalidUtf8)
}

/// The `client_id` parameter of a form body: `None` if absent, an error if present more than
/// once (even with equal values). Names are compared after decoding.
pub fn client_id(body: &[u8]) -> Result<Option<String>, FormError> {
    let mut found = None;
    for (name, value) in decode(body)? {
        if name == "client_id" {
            if found.is_some() {
                return Err(FormError::DuplicateParameter("client_id".to_string()));
            }
            found = Some(value);
        }
    }
    Ok(found)
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |p| p.saturating_add(1));
    s.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn form_media_type_matches_case_insensitively() {
        assert!(is_form_content_type(b"application/x-www-form-urlencoded"));
        assert!(is_form_content_type(b"Application/X-WWW-Form-URLEncoded"));
    }

    #[test]
    fn form_media_type_allows_parameters_and_ows() {
        assert!(is_form_content_type(b"application/x-www-form-urlencoded; charset=UTF-8"));
        assert!(is_form_content_type(b" application/x-www-form-urlencoded ;charset=utf-8"));
        assert!(is_form_content_type(b"application/x-www-form-urlencoded\t"));
    }

    #[test]
    fn other_media_types_are_not_forms() {
        assert!(!is_form_content_type(b"text/plain"));
        assert!(!is_form_content_type(b"multipart/form-data; boundary=x"));
        assert!(!is_form_content_type(b"application/x-www-form-urlencodedX"));
        assert!(!is_form_content_type(b"application/json"));
        assert!(!is_form_content_type(b""));
        assert!(!is_form_content_type(b"application/x-www-form-urlencoded, text/plain"));
    }

    #[test]
    fn pairs_are_split_on_ampersand_and_first_equals() {
        assert_eq!(
            decode(b"grant_type=client_credentials&scope=a=b").unwrap(),
            pairs(&[("grant_type", "client_credentials"), ("scope", "a=b")])
        );
    }

    #[test]
    fn empty_pieces_and_trailing_ampersand_are_skipped() {
        assert_eq!(decode(b"&a=1&&b=2&").unwrap(), pairs(&[("a", "1"), ("b", "2")]));
        assert_eq!(decode(b"").unwrap(), pairs(&[]));
    }

    #[test]
    fn piece_without_equals_has_empty_value() {
        assert_eq!(decode(b"flag&a=").unwrap(), pairs(&[("flag", ""), ("a", "")]));
    }

    #[test]
    fn plus_is_a_space_and_percent_escapes_are_decoded() {
        assert_eq!(
            decode(b"scope=read+write%20admin&x=%2B%26%3D").unwrap(),
            pairs(&[("scope", "read write admin"), ("x", "+&=")])
        );
    }

    #[test]
    fn invalid_percent_escape_is_an_error() {
        assert_eq!(decode(b"a=%zz"), Err(FormError::InvalidPercentEncoding));
        assert_eq!(decode(b"a=%4"), Err(FormError::InvalidPercentEncoding));
        assert_eq!(decode(b"a=100%"), Err(FormError::InvalidPercentEncoding));
        assert_eq!(decode(b"%G1=x"), Err(FormError::InvalidPercentEncoding));
    }

    #[test]
    fn decoded_text_must_be_utf8() {
        assert_eq!(decode(b"a=%FF"), Err(FormError::InvalidUtf8));
        assert_eq!(decode(b"a=\xff"), Err(FormError::InvalidUtf8));
        assert_eq!(decode(b"a=%C3%A9").unwrap(), pairs(&[("a", "\u{e9}")]));
    }

    #[test]
    fn decode_component_decodes_one_component() {
        assert_eq!(decode_component(b"my%3Aclient+1").unwrap(), "my:client 1");
        assert_eq!(decode_component(b"%"), Err(FormError::InvalidPercentEncoding));
    }

    #[test]
    fn single_client_id_is_returned() {
        assert_eq!(
            client_id(b"grant_type=client_credentials&client_id=s6BhdRkqt3").unwrap(),
            Some("s6BhdRkqt3".to_string())
        );
    }

    #[test]
    fn absent_client_id_is_none() {
        assert_eq!(client_id(b"grant_type=client_credentials").unwrap(), None);
    }

    #[test]
    fn client_id_as_a_value_is_not_a_client_id() {
        assert_eq!(client_id(b"scope=client_id&client_idx=a").unwrap(), None);
    }

    #[test]
    fn client_id_name_is_compared_after_decoding() {
        assert_eq!(client_id(b"client%5Fid=x").unwrap(), Some("x".to_string()));
    }

    #[test]
    fn client_id_more_than_once_is_an_error_even_if_equal() {
        let dup = Err(FormError::DuplicateParameter("client_id".to_string()));
        assert_eq!(client_id(b"client_id=a&client_id=b"), dup);
        assert_eq!(client_id(b"client_id=a&client_id=a"), dup);
        assert_eq!(client_id(b"client_id=a&client%5Fid=a"), dup);
    }

    #[test]
    fn client_id_value_is_decoded() {
        assert_eq!(client_id(b"&&client_id=my%3Aclient+x&").unwrap(), Some("my:client x".to_string()));
    }

    #[test]
    fn malformed_body_fails_client_id_lookup() {
        assert_eq!(client_id(b"client_id=a&junk=%"), Err(FormError::InvalidPercentEncoding));
    }
}
