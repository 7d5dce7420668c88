//! Fuzz target: an RFC 4514 distinguished name string (registrations, trusted forwarders).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::cert::dn::Dn;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(dn) = Dn::parse(&text) {
        assert!(dn.matches(&dn));
        let printed = dn.to_string();
        assert!(!printed.contains(['\r', '\n']), "display is one line");
        assert_eq!(Dn::parse(&printed).as_ref(), Ok(&dn), "display round trip of {text:?} via {printed:?}");
    }
});
