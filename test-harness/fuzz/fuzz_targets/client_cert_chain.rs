//! Fuzz target: an RFC 9440 Client-Cert-Chain value (an RFC 8941 list of byte sequences).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::forwarded::client_cert;

fuzz_target!(|data: &[u8]| {
    if let Ok(chain) = client_cert::parse_client_cert_chain(data) {
        assert!(chain.iter().all(|der| !der.is_empty()));
        let encoded: Vec<String> = chain.iter().map(|der| client_cert::encode(der)).collect();
        assert_eq!(client_cert::parse_client_cert_chain(encoded.join(", ").as_bytes()), Ok(chain));
    }
});
