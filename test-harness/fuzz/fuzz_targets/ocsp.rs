//! Fuzz target: an OCSP responder's answer (RFC 6960), verified for the CA's certificate 0x1001 at a fixed
//! time; and the same bytes as a leaf whose revocation facts are read (`Target::of`: issuer, serial, AIA OCSP
//! and CRL Distribution Point URLs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::revocation::{ocsp, target::Target};

#[path = "revocation_ca.rs"]
mod revocation_ca;

/// A minute after the seed answers were made (their thisUpdate): they verify, so mutations start from there.
const NOW_MS: u64 = 1_796_101_443_000 + 60_000;
const MAX_AGE_MS: u64 = 3_600_000;

fuzz_target!(|data: &[u8]| {
    let ca = &revocation_ca::cas()[0];
    if let Ok(answer) = ocsp::verify(data, ca, &[0x10, 0x01], NOW_MS, MAX_AGE_MS) {
        // What counts is fresh: no later than the clock skew allows, no older than the maximum age, not expired.
        assert!(answer.this_update_ms <= NOW_MS + ocsp::CLOCK_SKEW_MS);
        assert!(NOW_MS.saturating_sub(answer.this_update_ms) <= MAX_AGE_MS);
        assert!(answer.next_update_ms.is_none_or(|n| n >= NOW_MS));
    }
    if let Ok(target) = Target::of(data) {
        let http = |u: &String| u.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"));
        assert!(target.ocsp_urls.iter().chain(&target.crl_urls).all(http), "{target:?}");
        let _ = ocsp::request(ca, &target.serial);
    }
});
