//! Fuzz target: an X.509 certificate in DER (the client's leaf, a forwarder's certificate).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::cert::dn::Dn;
use oauth_mtls_filter::cert::Leaf;

fuzz_target!(|data: &[u8]| {
    let Ok(leaf) = Leaf::from_der(data) else { return };
    for name in [&leaf.subject, &leaf.issuer] {
        assert!(name.matches(name));
        let printed = name.to_string();
        assert!(!printed.contains(['\r', '\n']), "display is one line");
        // The subject as printed in a log line, registered as tls_client_auth_subject_dn, matches it.
        if let Ok(parsed) = Dn::parse(&printed) {
            assert!(parsed.matches(name), "{printed:?} does not match the name it was printed from");
        }
    }
    assert_eq!(leaf.sha256, oauth_mtls_filter::cert::sha256(data));
});
