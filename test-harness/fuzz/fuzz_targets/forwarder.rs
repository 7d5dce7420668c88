//! Shared by the fuzz targets of forwarded certificates: a filter configured for one certificate source that
//! trusts the test forwarder, and that forwarder as the direct, validated peer.

use oauth_mtls_filter::cert;
use oauth_mtls_filter::config::Config;
use oauth_mtls_filter::forwarded::source::{self, Peer};
use std::rc::Rc;

const FORWARDER: &[u8] = include_bytes!("../corpus/cert_der/seed-testdata-forwarder.der");

/// The setup for `certificate_source` (built once per thread; a fuzz binary uses one source).
pub fn forwarded(certificate_source: &str) -> &'static (Config, Peer) {
    thread_local! { static SETUP: std::cell::OnceCell<&'static (Config, Peer)> = const { std::cell::OnceCell::new() }; }
    SETUP.with(|s| *s.get_or_init(|| Box::leak(Box::new(setup(certificate_source)))))
}

fn setup(certificate_source: &str) -> (Config, Peer) {
    let subject = cert::Leaf::from_der(FORWARDER).unwrap().subject.to_string();
    let config =
        serde_json::json!({"certificate_source": certificate_source, "trusted_forwarders": [{"subject_dn": subject}]});
    let config = Config::parse(&serde_json::to_vec(&config).unwrap()).unwrap();
    let certificate = Rc::new(cert::Certificate::from_der(FORWARDER.to_vec()));
    let peer = Peer { certificate: Some(Ok(certificate)), validated: true };
    assert!(source::is_trusted_forwarder(&config, &peer));
    (config, peer)
}
