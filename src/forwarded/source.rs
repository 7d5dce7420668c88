//! Where the client certificate comes from: the TLS connection, or a trusted forwarder's XFCC or Client-Cert header.

use crate::cert::pem::{self, PemError};
use crate::cert::{self, Certificate};
use crate::config::{CertificateSource, Config, Forwarder};
use crate::forwarded::client_cert::{self, ClientCertError};
use crate::forwarded::xfcc::{self, XfccError};
use crate::header;
use crate::oauth::jwks;
use std::fmt;
use std::rc::Rc;

/// The certificate the client presented, as the certificate source found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    None,
    /// A certificate was presented but cannot be read.
    Malformed(SourceError),
    Certificate {
        certificate: Rc<Certificate>,
        validated: bool,
    },
}

impl Presented {
    /// A certificate presented as `der`, decoded now (the filter decodes through its per-worker cache instead).
    pub fn certificate(der: Vec<u8>, validated: bool) -> Presented {
        Presented::Certificate { certificate: Rc::new(Certificate::from_der(der)), validated }
    }
}

/// Why a presented certificate cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// The connection's peer certificate.
    Peer(PeerError),
    /// The source's header (named) came more than once.
    Repeated(&'static str),
    ClientCert(ClientCertError),
    Xfcc(XfccError),
    /// The XFCC header has no element.
    XfccEmpty,
    /// The forwarder's XFCC element has no `Cert`.
    XfccNoCert,
    XfccCert(PemError),
    /// The XFCC element's `Hash` is not the SHA-256 of its `Cert`.
    XfccHashMismatch,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Peer(e) => write!(f, "{e}"),
            SourceError::Repeated(header) => write!(f, "the {header} header appears more than once"),
            SourceError::ClientCert(e) => write!(f, "{e}"),
            SourceError::Xfcc(e) => write!(f, "x-forwarded-client-cert: {e}"),
            SourceError::XfccEmpty => f.write_str("x-forwarded-client-cert is empty"),
            SourceError::XfccNoCert => f.write_str(
                "the x-forwarded-client-cert element has no Cert (set set_current_client_cert_details.cert on the forwarder)",
            ),
            SourceError::XfccCert(e) => write!(f, "x-forwarded-client-cert Cert: {e}"),
            SourceError::XfccHashMismatch => f.write_str("the x-forwarded-client-cert Hash does not match its Cert"),
        }
    }
}

impl std::error::Error for SourceError {}

/// Why the connection's certificate could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// `connection.peer_certificate` is not one PEM certificate.
    Pem(crate::cert::pem::PemError),
    /// Envoy's digest of the peer certificate is not the SHA-256 of the PEM it gave.
    DigestMismatch,
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Pem(e) => write!(f, "the connection's peer certificate: {e}"),
            PeerError::DigestMismatch => f.write_str(
                "the connection's sha256_peer_certificate_digest is not the SHA-256 of its peer_certificate",
            ),
        }
    }
}

impl std::error::Error for PeerError {}

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
        CertificateSource::Xfcc => Some(header::X_FORWARDED_CLIENT_CERT),
        CertificateSource::ClientCert => Some(header::CLIENT_CERT),
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
/// certificates are decoded by `decode` (the worker's cache).
pub fn presented(
    config: &Config,
    peer: &Peer,
    forwarded: &[Vec<u8>],
    decode: &mut dyn FnMut(Vec<u8>) -> Rc<Certificate>,
) -> Presented {
    match config.certificate_source {
        CertificateSource::Connection => match &peer.certificate {
            None => Presented::None,
            Some(Ok(certificate)) => {
                Presented::Certificate { certificate: certificate.clone(), validated: peer.validated }
            }
            Some(Err(e)) => Presented::Malformed(SourceError::Peer(e.clone())),
        },
        _ => {
            let trusted = !forwarded.is_empty() && is_trusted_forwarder(config, peer);
            forwarded_certificate(config, trusted, forwarded, decode)
        }
    }
}

/// The client certificate a forwarder put in the source's header, when whether the direct peer is a trusted
/// forwarder is already known (the filter decides that once per request). Not trusted: ignored, as if absent.
pub fn forwarded_certificate(
    config: &Config,
    trusted: bool,
    forwarded: &[Vec<u8>],
    decode: &mut dyn FnMut(Vec<u8>) -> Rc<Certificate>,
) -> Presented {
    let source = config.certificate_source;
    if !trusted || source == CertificateSource::Connection {
        return Presented::None;
    }
    let value = match forwarded {
        [] => return Presented::None,
        [one] => one,
        _ => return Presented::Malformed(SourceError::Repeated(forwarded_header(source).unwrap_or("certificate"))),
    };
    let validated = config.forwarder_validates_chains;
    let der = match source {
        CertificateSource::ClientCert => client_cert::parse_client_cert(value).map_err(SourceError::ClientCert),
        _ => from_xfcc(value),
    };
    match der {
        Ok(der) => Presented::Certificate { certificate: decode(der), validated },
        Err(why) => Presented::Malformed(why),
    }
}

/// The leaf DER from the XFCC element the trusted forwarder added: the last one.
fn from_xfcc(value: &[u8]) -> Result<Vec<u8>, SourceError> {
    let elements = xfcc::parse(value).map_err(SourceError::Xfcc)?;
    let element = elements.last().ok_or(SourceError::XfccEmpty)?;
    let cert = element.cert.as_deref().ok_or(SourceError::XfccNoCert)?;
    let der = pem::decode_leaf(cert.as_bytes()).map_err(SourceError::XfccCert)?;
    if let Some(hash) = &element.hash {
        if !hash.eq_ignore_ascii_case(&jwks::hex(&cert::sha256(&der))) {
            return Err(SourceError::XfccHashMismatch);
        }
    }
    Ok(der)
}
