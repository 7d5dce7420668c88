//! Fuzz target: PEM certificates, plain or URL-encoded (the connection's peer certificate, XFCC Cert).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::{cert, cert::pem};

fuzz_target!(|data: &[u8]| {
    let leaf = pem::decode_leaf(data);
    match pem::decode_certificates(data) {
        Ok(ders) => {
            assert_eq!(leaf.as_ref(), ders.first().ok_or(&pem::PemError::NoCertificate));
            let text: String = ders.iter().map(|der| pem::encode(der)).collect();
            assert_eq!(pem::decode_certificates(text.as_bytes()).as_ref(), Ok(&ders));
            for der in &ders {
                let _ = cert::Leaf::from_der(der);
            }
        }
        Err(e) => assert_eq!(leaf, Err(e)),
    }
});
