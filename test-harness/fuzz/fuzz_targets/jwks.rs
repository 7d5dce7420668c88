//! Fuzz target: a JWK Set document (inline `jwks`, or fetched from a `jwks_uri`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::jwks;

fuzz_target!(|data: &[u8]| {
    if let Ok(prints) = jwks::parse_thumbprints(data) {
        assert!(!prints.is_empty());
        for p in &prints {
            assert_eq!(jwks::thumbprint_from_hex(&jwks::hex(p)), Some(*p));
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = jwks::thumbprint_from_hex(&text);
    if let Ok(uri) = jwks::JwksUri::parse(&text) {
        assert!(!uri.authority.is_empty());
        assert!(uri.path.starts_with('/'));
    }
});
