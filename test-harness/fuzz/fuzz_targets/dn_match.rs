//! Fuzz target: distinguishedNameMatch between two RFC 4514 strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::cert::dn::Dn;

fuzz_target!(|data: &[u8]| {
    // The first byte says where the first name ends.
    let Some((&split, rest)) = data.split_first() else { return };
    let (a, b) = rest.split_at(usize::from(split).min(rest.len()));
    let (Ok(a), Ok(b)) = (Dn::parse(&String::from_utf8_lossy(a)), Dn::parse(&String::from_utf8_lossy(b))) else {
        return;
    };
    assert_eq!(a.matches(&b), b.matches(&a), "match is symmetric");
    assert!(a.matches(&a) && b.matches(&b), "match is reflexive");
    if a.matches(&b) {
        assert_eq!(a.rdns.len(), b.rdns.len());
        // Matching names stay matching once printed and parsed again.
        let (pa, pb) = (Dn::parse(&a.to_string()).unwrap(), Dn::parse(&b.to_string()).unwrap());
        assert!(pa.matches(&pb));
    }
});
