//! Fuzz target: an x-forwarded-client-cert value, then its Cert as PEM and X.509.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::cert::Certificate;
use oauth_mtls_filter::config::Config;
use oauth_mtls_filter::forwarded::source::Presented;
use oauth_mtls_filter::forwarded::source::{self, Peer};
use oauth_mtls_filter::forwarded::xfcc::{self, Element};
use oauth_mtls_filter::{cert, cert::pem};
use std::rc::Rc;

#[path = "forwarder.rs"]
mod forwarder;

/// A filter reading XFCC from a trusted forwarder, and that forwarder as the direct peer.
fn forwarded() -> &'static (Config, Peer) {
    forwarder::forwarded("xfcc")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { char::from(b).to_string() } else { format!("%{b:02x}") })
        .collect()
}

/// The element written back as XFCC, every value quoted.
fn render(e: &Element) -> String {
    let mut pairs = Vec::new();
    pairs.extend(e.by.iter().map(|v| format!("By={}", quote(v))));
    pairs.extend(e.hash.iter().map(|v| format!("Hash={}", quote(v))));
    pairs.extend(e.cert.iter().map(|v| format!("Cert={}", quote(&url_encode(v)))));
    pairs.extend(e.chain.iter().map(|v| format!("Chain={}", quote(&url_encode(v)))));
    pairs.extend(e.subject.iter().map(|v| format!("Subject={}", quote(v))));
    pairs.extend(e.uri.iter().map(|v| format!("URI={}", quote(v))));
    pairs.extend(e.dns.iter().map(|v| format!("DNS={}", quote(v))));
    pairs.join(";")
}

fuzz_target!(|data: &[u8]| {
    // The header as the filter reads it: the leaf comes from the last element's Cert only.
    let (config, peer) = forwarded();
    let presented = source::presented(config, peer, &[data.to_vec()], &mut |der| Rc::new(Certificate::from_der(der)));
    if let Presented::Certificate { certificate, .. } = presented {
        let last = xfcc::parse(data).unwrap().pop().unwrap();
        assert_eq!(pem::decode_leaf(last.cert.unwrap().as_bytes()).as_ref(), Ok(&certificate.der));
    }
    let Ok(elements) = xfcc::parse(data) else { return };
    assert!(!elements.is_empty());
    // Quoting what was parsed and parsing it again gives the same elements: no value can smuggle a
    // separator, a second Cert or a second element.
    let rendered: Vec<String> = elements.iter().map(render).collect();
    if rendered.iter().all(|r| !r.is_empty()) {
        assert_eq!(xfcc::parse(rendered.join(",").as_bytes()).as_ref(), Ok(&elements));
    }
    for e in &elements {
        if let Some(text) = &e.cert {
            if let Ok(der) = pem::decode_leaf(text.as_bytes()) {
                let _ = cert::Leaf::from_der(&der);
            }
        }
    }
});
