//! Fuzz target: a pinned issuer key (tls_client_auth_issuer_keys) and a leaf it may have signed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::cert::issuer::{issued_by_any, IssuerKey};

fuzz_target!(|data: &[u8]| {
    // base64 key, NUL, leaf DER
    let (key, leaf) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(key) = IssuerKey::parse(&String::from_utf8_lossy(key)) else { return };
    assert_eq!(IssuerKey::parse(&key.to_base64()).map(|k| k.to_base64()), Ok(key.to_base64()));
    let _ = key.signed(leaf);
    let _ = issued_by_any(std::slice::from_ref(&key), leaf);
});
