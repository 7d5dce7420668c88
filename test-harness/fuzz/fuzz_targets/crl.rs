//! Fuzz target: a CRL as a CRL location serves it (DER or PEM), opened and verified against the CA, then its
//! entries read in small slices as a worker loads them. The entries reader also gets the raw input: a mutated
//! CRL rarely keeps its signature, and the entry decoder must not panic on any bytes either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::revocation::crl;

#[path = "revocation_ca.rs"]
mod revocation_ca;

/// Every serial in `entries`, read `per_slice` entries at a time as the worker does; `None` on an error.
fn sliced(entries: &[u8], per_slice: usize) -> Option<Vec<Vec<u8>>> {
    let mut serials = Vec::new();
    let mut offset = 0;
    while offset < entries.len() {
        let (more, consumed) = crl::entries(&entries[offset..], per_slice).ok()?;
        assert!(consumed <= entries.len() - offset, "read past the end");
        assert!(more.len() <= per_slice);
        serials.extend(more);
        if consumed == 0 {
            break;
        }
        offset += consumed;
    }
    Some(serials)
}

/// The slices agree with one read of the whole range.
fn read(entries: &[u8], per_slice: usize) {
    let in_slices = sliced(entries, per_slice);
    match crl::entries(entries, usize::MAX) {
        Ok((whole, consumed)) => {
            assert_eq!(consumed, entries.len(), "a whole read consumes everything");
            assert_eq!(in_slices.as_ref(), Some(&whole), "slices of {per_slice} disagree with a whole read");
        }
        Err(_) => assert!(in_slices.is_none(), "a slice read accepted what the whole read refused"),
    }
}

fuzz_target!(|data: &[u8]| {
    let per_slice = 1 + usize::from(data.last().copied().unwrap_or(0) % 4);
    if let Ok(der) = crl::der_of(data) {
        if let Ok(opened) = crl::open(&der, revocation_ca::cas()) {
            assert_eq!(opened.ca, 0);
            assert!(opened.entries.start <= opened.entries.end && opened.entries.end <= der.len());
            read(&der[opened.entries.clone()], per_slice);
        }
    }
    read(data, per_slice);
});
