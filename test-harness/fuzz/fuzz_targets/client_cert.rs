//! Fuzz target: an RFC 9440 Client-Cert value (an RFC 8941 byte sequence with parameters).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::cert::Certificate;
use oauth_mtls_filter::config::Config;
use oauth_mtls_filter::forwarded::source::Presented;
use oauth_mtls_filter::forwarded::source::{self, Peer};
use oauth_mtls_filter::{cert, forwarded::client_cert};
use std::rc::Rc;

#[path = "forwarder.rs"]
mod forwarder;

/// A filter reading Client-Cert from a trusted forwarder, and that forwarder as the direct peer.
fn forwarded() -> &'static (Config, Peer) {
    forwarder::forwarded("client-cert")
}

fuzz_target!(|data: &[u8]| {
    let (config, peer) = forwarded();
    let presented = source::presented(config, peer, &[data.to_vec()], &mut |der| Rc::new(Certificate::from_der(der)));
    match client_cert::parse_client_cert(data) {
        Ok(der) => match presented {
            Presented::Certificate { certificate, validated } => {
                assert_eq!(certificate.der, der);
                assert_eq!(validated, config.forwarder_validates_chains);
            }
            other => panic!("{other:?}"),
        },
        Err(_) => assert!(matches!(presented, Presented::Malformed(_))),
    }
    if let Ok(der) = client_cert::parse_client_cert(data) {
        assert!(!der.is_empty());
        assert_eq!(client_cert::parse_client_cert(client_cert::encode(&der).as_bytes()), Ok(der.clone()));
        let _ = cert::Leaf::from_der(&der);
    }
});
