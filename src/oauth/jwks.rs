//! JSON Web Key Sets (RFC 7517) and `jwks_uri`s: the `x5c` certificates a self-signed client registers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use std::fmt;

/// SHA-256 of a certificate's DER: how a registered certificate is compared with a presented one.
pub type Thumbprint = [u8; 32];

/// How a cached JWK Set copy stands against its maximum age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within four fifths of its maximum age (or no copy yet).
    Fresh,
    /// In the last fifth: the next request that may fetch renews it, while the copy still serves.
    Due,
    /// Past its maximum age: no certificate matches it until it is fetched again.
    Expired,
}

impl Freshness {
    /// A copy `age_ms` old whose maximum age is `max_age_ms`.
    pub fn of(age_ms: u64, max_age_ms: u64) -> Freshness {
        if age_ms >= max_age_ms {
            Freshness::Expired
        } else if age_ms >= max_age_ms / 5 * 4 {
            Freshness::Due
        } else {
            Freshness::Fresh
        }
    }
}

/// What a `Cache-Control` response header (RFC 9111 §5.2.2) says of how long a response may be used, in
/// seconds: `max-age` (the smallest, if repeated), 0 for `no-store` or `no-cache`, `None` if neither is said.
/// The caller bounds it (`jwks_min_refresh_seconds` to `jwks_max_age_seconds`).
pub fn cache_max_age(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let mut age: Option<u64> = None;
    for directive in text.split(',') {
        let (name, argument) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        let seconds = if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            Some(0)
        } else if name.eq_ignore_ascii_case("max-age") {
            // delta-seconds; a quoted form is tolerated (§5.2). Too many digits is "a very long time".
            let digits = argument.trim().trim_matches('"');
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                Some(0)
            } else {
                Some(digits.parse::<u64>().unwrap_or(u64::MAX))
            }
        } else {
            None
        };
        if let Some(seconds) = seconds {
            age = Some(age.map_or(seconds, |a| a.min(seconds)));
        }
    }
    age
}

/// Why a JWK Set could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    NotJson(String),
    NotAnObject,
    NoKeysArray,
    KeyNotAnObject { index: usize },
    X5cNotAnArrayOfStrings { index: usize },
    X5cEmpty { index: usize },
    X5cNotBase64 { index: usize },
    NoX5c,
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::NotJson(e) => write!(f, "JWK Set is not JSON: {e}"),
            JwksError::NotAnObject => write!(f, "JWK Set is not a JSON object"),
            JwksError::NoKeysArray => write!(f, "JWK Set has no \"keys\" array"),
            JwksError::KeyNotAnObject { index } => write!(f, "JWK Set key {index} is not an object"),
            JwksError::X5cNotAnArrayOfStrings { index } => {
                write!(f, "JWK Set key {index}: \"x5c\" is not an array of strings")
            }
            JwksError::X5cEmpty { index } => write!(f, "JWK Set key {index}: \"x5c\" is empty"),
            JwksError::X5cNotBase64 { index } => {
                write!(f, "JWK Set key {index}: \"x5c\"[0] is not standard base64 (RFC 7517 §4.7)")
            }
            JwksError::NoX5c => {
                write!(f, "JWK Set has no key with an \"x5c\" certificate, so no certificate can match (RFC 8705 §2.2)")
            }
        }
    }
}

impl std::error::Error for JwksError {}

/// The thumbprints of the `x5c[0]` certificate of every key that has one (RFC 7517 §4.7: the first
/// certificate holds the key). Keys without `x5c` are skipped; a set with none is an error.
pub fn x5c_thumbprints(set: &Value) -> Result<Vec<Thumbprint>, JwksError> {
    let keys = set
        .as_object()
        .ok_or(JwksError::NotAnObject)?
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NoKeysArray)?;
    let mut out = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let key = key.as_object().ok_or(JwksError::KeyNotAnObject { index })?;
        let Some(x5c) = key.get("x5c") else { continue };
        let chain = x5c.as_array().ok_or(JwksError::X5cNotAnArrayOfStrings { index })?;
        let first = chain.first().ok_or(JwksError::X5cEmpty { index })?;
        let b64 = first.as_str().ok_or(JwksError::X5cNotAnArrayOfStrings { index })?;
        let der = STANDARD.decode(b64).map_err(|_| JwksError::X5cNotBase64 { index })?;
        out.push(crate::cert::sha256(&der));
    }
    if out.is_empty() {
        return Err(JwksError::NoX5c);
    }
    Ok(out)
}

/// Lower-case hex, how thumbprints are stored in shared data and compared with XFCC's `Hash`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The thumbprint written by [`hex`], or `None` if `text` is not 64 hex digits.
pub fn thumbprint_from_hex(text: &str) -> Option<Thumbprint> {
    thumbprint_from_hex_bytes(text.as_bytes())
}

/// [`thumbprint_from_hex`] of bytes (as Envoy's `sha256_peer_certificate_digest`); either case.
pub fn thumbprint_from_hex_bytes(text: &[u8]) -> Option<Thumbprint> {
    fn digit(c: u8) -> Option<u8> {
        char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (slot, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *slot = digit(*hi)? << 4 | digit(*lo)?;
    }
    Some(out)
}

/// [`x5c_thumbprints`] of a JWK Set document as fetched.
pub fn parse_thumbprints(document: &[u8]) -> Result<Vec<Thumbprint>, JwksError> {
    let value: Value = serde_json::from_slice(document).map_err(|e| JwksError::NotJson(e.to_string()))?;
    x5c_thumbprints(&value)
}

/// A registered `jwks_uri`, split into what an HTTP call through an Envoy cluster needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUri {
    pub uri: String,
    pub authority: String,
    pub path: String,
}

/// Why a `jwks_uri` is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksUriError {
    NotHttp,
    NoHost,
    Fragment,
    Whitespace,
}

impl fmt::Display for JwksUriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JwksUriError::NotHttp => "jwks_uri must be an https:// (or http://) URL",
            JwksUriError::NoHost => "jwks_uri has no host",
            JwksUriError::Fragment => "jwks_uri must not have a fragment",
            JwksUriError::Whitespace => "jwks_uri contains whitespace or control characters",
        })
    }
}

impl std::error::Error for JwksUriError {}

impl JwksUri {
    pub fn parse(uri: &str) -> Result<JwksUri, JwksUriError> {
        if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(JwksUriError::Whitespace);
        }
        let rest = strip_prefix_ignore_case(uri, "https://")
            .or_else(|| strip_prefix_ignore_case(uri, "http://"))
            .ok_or(JwksUriError::NotHttp)?;
        if rest.contains('#') {
            return Err(JwksUriError::Fragment);
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        // userinfo is never sent as authority
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        if authority.is_empty() || authority.starts_with(':') {
            return Err(JwksUriError::NoHost);
        }
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(JwksUri { uri: uri.to_string(), authority: authority.to_string(), path })
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thumbprint_is_sha256_of_x5c_first_certificate_der() {
        let der = b"not really a certificate, but DER bytes all the same";
        let set = json!({"keys": [{"kty": "EC", "x5c": [STANDARD.encode(der), STANDARD.encode(b"issuer")]}]});
        assert_eq!(x5c_thumbprints(&set).unwrap(), vec![crate::cert::sha256(der)]);
    }

    #[test]
    fn keys_without_x5c_are_skipped() {
        let set =
            json!({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}, {"kty": "EC", "x5c": [STANDARD.encode(b"c")]}]});
        assert_eq!(x5c_thumbprints(&set).unwrap().len(), 1);
    }

    #[test]
    fn a_set_without_any_x5c_cannot_authenticate_anyone() {
        let set = json!({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]});
        assert_eq!(x5c_thumbprints(&set), Err(JwksError::NoX5c));
    }

    #[test]
    fn x5c_is_standard_base64_not_base64url() {
        let set = json!({"keys": [{"x5c": ["-_-_"]}]});
        assert_eq!(x5c_thumbprints(&set), Err(JwksError::X5cNotBase64 { index: 0 }));
    }

    #[test]
    fn malformed_sets_are_errors() {
        assert_eq!(x5c_thumbprints(&json!([])), Err(JwksError::NotAnObject));
        assert_eq!(x5c_thumbprints(&json!({})), Err(JwksError::NoKeysArray));
        assert_eq!(x5c_thumbprints(&json!({"keys": [1]})), Err(JwksError::KeyNotAnObject { index: 0 }));
        assert_eq!(x5c_thumbprints(&json!({"keys": [{"x5c": []}]})), Err(JwksError::X5cEmpty { index: 0 }));
        assert!(matches!(parse_thumbprints(b"{"), Err(JwksError::NotJson(_))));
    }

    #[test]
    fn thumbprints_round_trip_through_hex() {
        let t = crate::cert::sha256(b"x");
        assert_eq!(thumbprint_from_hex(&hex(&t)), Some(t));
        assert_eq!(thumbprint_from_hex("abc"), None);
        assert_eq!(thumbprint_from_hex(&"zz".repeat(32)), None);
        assert_eq!(thumbprint_from_hex(&"+f".repeat(32)), None);
        assert_eq!(thumbprint_from_hex(&hex(&t).to_ascii_uppercase()), Some(t));
    }

    #[test]
    fn jwks_uri_is_split_into_authority_and_path() {
        let u = JwksUri::parse("https://clients.example.com:8443/a/jwks.json?v=1").unwrap();
        assert_eq!(u.authority, "clients.example.com:8443");
        assert_eq!(u.path, "/a/jwks.json?v=1");
        assert_eq!(JwksUri::parse("http://jwks.test").unwrap().path, "/");
    }

    #[test]
    fn jwks_uri_must_be_http_with_a_host() {
        assert_eq!(JwksUri::parse("ftp://x/y"), Err(JwksUriError::NotHttp));
        assert_eq!(JwksUri::parse("https:///y"), Err(JwksUriError::NoHost));
        assert_eq!(JwksUri::parse("https://x/y#f"), Err(JwksUriError::Fragment));
        assert_eq!(JwksUri::parse("https://x/y z"), Err(JwksUriError::Whitespace));
    }

    #[test]
    fn cache_control_max_age_is_read_in_seconds() {
        assert_eq!(cache_max_age(b"max-age=600"), Some(600));
        assert_eq!(cache_max_age(b"public, Max-Age = 30 , must-revalidate"), Some(30));
        assert_eq!(cache_max_age(b"max-age=\"45\""), Some(45));
    }

    #[test]
    fn no_store_or_no_cache_means_no_reuse() {
        assert_eq!(cache_max_age(b"no-store"), Some(0));
        assert_eq!(cache_max_age(b"max-age=600, no-cache"), Some(0));
    }

    #[test]
    fn a_repeated_max_age_counts_its_smallest_value() {
        assert_eq!(cache_max_age(b"max-age=600, max-age=5"), Some(5));
    }

    #[test]
    fn a_malformed_max_age_means_no_reuse_and_a_huge_one_is_the_largest() {
        assert_eq!(cache_max_age(b"max-age=-1"), Some(0));
        assert_eq!(cache_max_age(b"max-age="), Some(0));
        assert_eq!(cache_max_age(b"max-age=99999999999999999999999"), Some(u64::MAX));
    }

    #[test]
    fn a_cache_control_without_max_age_says_nothing() {
        assert_eq!(cache_max_age(b"public"), None);
        assert_eq!(cache_max_age(b""), None);
        assert_eq!(cache_max_age(&[0xff, 0xfe]), None);
    }

    #[test]
    fn a_copy_is_due_in_the_last_fifth_of_its_age_and_expired_after() {
        assert_eq!(Freshness::of(0, 300_000), Freshness::Fresh);
        assert_eq!(Freshness::of(239_999, 300_000), Freshness::Fresh);
        assert_eq!(Freshness::of(240_000, 300_000), Freshness::Due);
        assert_eq!(Freshness::of(300_000, 300_000), Freshness::Expired);
    }
}
