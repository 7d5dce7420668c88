//! Where the client certificate comes from: the TLS connection, or a trusted forwarder's XFCC or Client-Cert header.

use crate::cert::{self, Certificate};
use crate::config::{CertificateSource, Config, Forwarder};
use crate::oauth::verdict::Presented;
use crate::proxy::cache::{Certificates, PeerError};
use crate::{cert::pem, forwarded::client_cert, forwarded::xfcc, oauth::jwks};
use std::rc::Rc;

/// What Envoy knows of the direct peer's TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The certificate the peer presented, if it presented one (`connection.peer_certificate`, found by
    /// `connection.sha256_peer_certificate_digest` in the worker's cache), or why it cannot be read.
    pub certificate: Option<Result<Rc<Certificate>, PeerError>>,
    /// `connection.peer_certificate_valid`: the chain was validated against the trusted CAs.
    pub validated: bool,
}

/// The request header the certificate source reads, if it reads one.
pub fn forwarded_header(source: CertificateSource) -> Option<&'static str> {
    match source {
        CertificateSource::Connection => None,
        CertificateSource::Xfcc => Some("x-forwarded-client-cert"),
        CertificateSource::ClientCert => Some("client-cert"),
    }
}

/// Whether the direct peer is one of the `trusted_forwarders`: its own certificate must be validated and
/// carry the configured URI SAN (any of them) or subject DN.
pub fn is_trusted_forwarder(config: &Config, peer: &Peer) -> bool {
    if !peer.validated || config.trusted_forwarders.is_empty() {
        return false;
    }
    let Some(Ok(Ok(leaf))) = peer.certificate.as_ref().map(|c| c.as_ref().map(|c| &c.leaf)) else {
        return false;
    };
    config.trusted_forwarders.iter().any(|f| match f {
        Forwarder::UriSan(uri) => leaf.sans.uri.iter().any(|u| u == uri),
        Forwarder::SubjectDn(dn) => dn.matches(&leaf.subject),
    })
}

/// The client certificate of this request. `forwarded` holds every value of the source's header, in order;
/// certificates are decoded through the worker's cache.
pub fn presented(config: &Config, peer: &Peer, forwarded: &[Vec<u8>], certificates: &mut Certificates) -> Presented {
    match config.certificate_source {
        CertificateSource::Connection => match &peer.certificate {
            None => Presented::None,
            Some(Ok(certificate)) => {
                Presented::Certificate { certificate: certificate.clone(), validated: peer.validated }
            }
            Some(Err(e)) => Presented::Malformed(e.to_string()),
        },
        _ => {
            let trusted = !forwarded.is_empty() && is_trusted_forwarder(config, peer);
            forwarded_certificate(config, trusted, forwarded, certificates)
        }
    }
}

/// The client certificate a forwarder put in the source's header, when whether the direct peer is a trusted
/// forwarder is already known (the filter decides that once per request). Not trusted: ignored, as if absent.
pub fn forwarded_certificate(
    config: &Config,
    trusted: bool,
    forwarded: &[Vec<u8>],
    certificates: &mut Certificates,
) -> Presented {
    let source = config.certificate_source;
    if !trusted || source == CertificateSource::Connection {
        return Presented::None;
    }
    let value = match forwarded {
        [] => return Presented::None,
        [one] => one,
        _ => {
            return Presented::Malformed(format!(
                "the {} header appears more than once",
                forwarded_header(source).unwrap_or("certificate")
            ))
        }
    };
    let validated = config.forwarder_validates_chains;
    let der = match source {
        CertificateSource::ClientCert => client_cert::parse_client_cert(value).map_err(|e| e.to_string()),
        _ => from_xfcc(value),
    };
    match der {
        Ok(der) => Presented::Certificate { certificate: certificates.of_der(der), validated },
        Err(why) => Presented::Malformed(why),
    }
}

/// The leaf DER from the XFCC element the trusted forwarder added: the last one.
fn from_xfcc(value: &[u8]) -> Result<Vec<u8>, String> {
    let elements = xfcc::parse(value).map_err(|e| format!("x-forwarded-client-cert: {e}"))?;
    let element = elements.last().ok_or("x-forwarded-client-cert is empty")?;
    let cert = element.cert.as_deref().ok_or(
        "the x-forwarded-client-cert element has no Cert (set set_current_client_cert_details.cert on the forwarder)",
    )?;
    let der = pem::decode_leaf(cert.as_bytes()).map_err(|e| format!("x-forwarded-client-cert Cert: {e}"))?;
    if let Some(hash) = &element.hash {
        if !hash.eq_ignore_ascii_case(&jwks::hex(&cert::sha256(&der))) {
            return Err("the x-forwarded-client-cert Hash does not match its Cert".to_string());
        }
    }
    Ok(der)
}
