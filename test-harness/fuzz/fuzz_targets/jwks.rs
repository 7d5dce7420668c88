//! Fuzz target: a JWK Set document (inline `jwks`, or fetched from a `jwks_uri`), and the Cache-Control
//! header of its response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::oauth::jwks;

fuzz_target!(|data: &[u8]| {
    if let Ok(prints) = jwks::parse_thumbprints(data) {
        assert!(!prints.is_empty());
        for p in &prints {
            assert_eq!(jwks::thumbprint_from_hex(&jwks::hex(p)), Some(*p));
        }
    }
    if let Some(seconds) = jwks::cache_max_age(data) {
        // The smallest value said wins: appending a directive never lengthens the age.
        let mut more = data.to_vec();
        more.extend_from_slice(b",max-age=1");
        assert!(jwks::cache_max_age(&more).is_some_and(|s| s <= seconds.max(1)));
    }
    let text = String::from_utf8_lossy(data);
    let _ = jwks::thumbprint_from_hex(&text);
    if let Ok(uri) = jwks::JwksUri::parse(&text) {
        assert!(!uri.authority.is_empty());
        assert!(uri.path.starts_with('/'));
    }
});
