//! The decision on one token request: authenticate the client by its certificate, pass it, or reject it.

use crate::cert::Leaf;
use crate::config::UnknownClient;
use crate::jwks::{JwksUri, Thumbprint};
use crate::registration::{Client, KeySource, Method, SubjectRule, SELF_SIGNED_TLS_CLIENT_AUTH, TLS_CLIENT_AUTH};
use std::rc::Rc;

/// Why a request was rejected: one stat and one log word each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    NoCertificate,
    BadCertificate,
    NotValidated,
    SubjectMismatch,
    JwkMismatch,
    JwksUnavailable,
    UnknownClient,
    RegistryUnavailable,
    InvalidRequest,
    BodyTooLarge,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::NoCertificate,
        Reason::BadCertificate,
        Reason::NotValidated,
        Reason::SubjectMismatch,
        Reason::JwkMismatch,
        Reason::JwksUnavailable,
        Reason::UnknownClient,
        Reason::RegistryUnavailable,
        Reason::InvalidRequest,
        Reason::BodyTooLarge,
    ];

    /// The name used in stats (`oauth_mtls.rejected.<name>`) and log lines.
    pub fn name(self) -> &'static str {
        match self {
            Reason::NoCertificate => "no_certificate",
            Reason::BadCertificate => "bad_certificate",
            Reason::NotValidated => "certificate_not_validated",
            Reason::SubjectMismatch => "subject_mismatch",
            Reason::JwkMismatch => "jwk_mismatch",
            Reason::JwksUnavailable => "jwks_unavailable",
            Reason::UnknownClient => "unknown_client",
            Reason::RegistryUnavailable => "registry_unavailable",
            Reason::InvalidRequest => "invalid_request",
            Reason::BodyTooLarge => "body_too_large",
        }
    }
}

/// A request stopped at the proxy, with the RFC 6749 §5.2 error the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
    pub reason: Reason,
}

impl Rejection {
    pub fn invalid_client(reason: Reason, description: impl Into<String>) -> Rejection {
        Rejection { status: 401, error: "invalid_client", description: description.into(), reason }
    }

    pub fn invalid_request(description: impl Into<String>) -> Rejection {
        Rejection { status: 400, error: "invalid_request", description: description.into(), reason: Reason::InvalidRequest }
    }

    pub fn too_large(limit: usize) -> Rejection {
        Rejection {
            status: 413,
            error: "invalid_request",
            description: format!("the request body exceeds the limit of {limit} bytes"),
            reason: Reason::BodyTooLarge,
        }
    }
}

/// Why a request went through without annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassReason {
    NoClientId,
    UnknownClient,
    NotMtlsClient,
}

/// What the AS is told about a client this filter authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub client_id: String,
    pub method: &'static str,
    pub x5t_s256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Authenticated(Authenticated),
    Pass(PassReason),
    Reject(Rejection),
    /// The client's `jwks_uri` must be (re)fetched before a decision; ask again afterwards.
    FetchJwks(JwksUri),
}

/// The certificate the client presented, as the certificate source found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    None,
    /// A forwarded certificate header or XFCC that could not be read; the text says why.
    Malformed(String),
    Certificate { der: Vec<u8>, validated: bool },
}

/// A registration lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Rc<Client>),
    Unknown,
    /// The registry cannot answer (never loaded, or stale); the text says which.
    Unavailable(String),
}

/// What is known of a `jwks_uri`'s JWK Set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksView {
    /// Thumbprints of the last good copy (possibly none yet), and whether a refetch is allowed now.
    Known { thumbprints: Vec<Thumbprint>, may_refetch: bool, last_error: Option<String> },
}

/// Where the verdict finds registrations and JWK Sets: the shell backs it with shared data.
pub trait Directory {
    fn client(&mut self, client_id: &str) -> Lookup;
    fn jwks(&mut self, uri: &JwksUri) -> JwksView;
}

/// Decides a token request whose `client_id` is known (or absent).
pub fn decide(
    client_id: Option<&str>,
    presented: &Presented,
    unknown_client: UnknownClient,
    directory: &mut dyn Directory,
) -> Verdict {
    let Some(client_id) = client_id else { return Verdict::Pass(PassReason::NoClientId) };
    let client = match directory.client(client_id) {
        Lookup::Found(c) => c,
        Lookup::Unknown => {
            return match unknown_client {
                UnknownClient::Pass => Verdict::Pass(PassReason::UnknownClient),
                UnknownClient::Reject => Verdict::Reject(Rejection::invalid_client(
                    Reason::UnknownClient,
                    "unknown client: no registration for this client_id",
                )),
            }
        }
        Lookup::Unavailable(why) => {
            return Verdict::Reject(Rejection::invalid_client(Reason::RegistryUnavailable, why))
        }
    };
    if matches!(client.method, Method::Other(_)) {
        return Verdict::Pass(PassReason::NotMtlsClient);
    }
    let (der, validated) = match presented {
        Presented::None => {
            return reject(
                Reason::NoCertificate,
                format!("no client certificate was presented, and this client uses {}", client.method_name()),
            )
        }
        Presented::Malformed(why) => {
            return reject(Reason::BadCertificate, format!("the forwarded client certificate is malformed: {why}"))
        }
        Presented::Certificate { der, validated } => (der, *validated),
    };
    let leaf = match Leaf::from_der(der) {
        Ok(leaf) => leaf,
        Err(e) => return reject(Reason::BadCertificate, format!("the client certificate cannot be parsed: {e}")),
    };
    let authenticated = |method| {
        Verdict::Authenticated(Authenticated {
            client_id: client.client_id.clone(),
            method,
            x5t_s256: leaf.x5t_s256(),
        })
    };
    match &client.method {
        Method::TlsClientAuth(rule) => {
            if !validated {
                return reject(
                    Reason::NotValidated,
                    "the client certificate chain was not validated against a trusted CA, which tls_client_auth requires",
                );
            }
            match rule {
                SubjectRule::Dn(dn) if dn.matches(&leaf.subject) => authenticated(TLS_CLIENT_AUTH),
                SubjectRule::Dn(_) => reject(
                    Reason::SubjectMismatch,
                    format!(
                        "the client certificate subject \"{}\" does not match the registered tls_client_auth_subject_dn",
                        leaf.subject
                    ),
                ),
                SubjectRule::San(san) if san.matches(&leaf.sans) => authenticated(TLS_CLIENT_AUTH),
                SubjectRule::San(san) => reject(
                    Reason::SubjectMismatch,
                    format!(
                        "no {} subjectAltName of the client certificate matches the registered {}",
                        san.kind().name(),
                        san.kind().metadata_field()
                    ),
                ),
            }
        }
        Method::SelfSigned(KeySource::Jwks(prints)) => {
            if prints.contains(&leaf.sha256) {
                authenticated(SELF_SIGNED_TLS_CLIENT_AUTH)
            } else {
                reject(Reason::JwkMismatch, "the client certificate matches no x5c certificate in the client's registered JWK Set (jwks)")
            }
        }
        Method::SelfSigned(KeySource::JwksUri(uri)) => match directory.jwks(uri) {
            JwksView::Known { thumbprints, .. } if thumbprints.contains(&leaf.sha256) => {
                authenticated(SELF_SIGNED_TLS_CLIENT_AUTH)
            }
            JwksView::Known { may_refetch: true, .. } => Verdict::FetchJwks(uri.clone()),
            JwksView::Known { thumbprints, last_error: Some(e), .. } if thumbprints.is_empty() => reject(
                Reason::JwksUnavailable,
                format!("the client's JWK Set at jwks_uri could not be fetched: {e}"),
            ),
            JwksView::Known { .. } => reject(
                Reason::JwkMismatch,
                "the client certificate matches no x5c certificate in the JWK Set at the client's jwks_uri",
            ),
        },
        Method::Other(_) => Verdict::Pass(PassReason::NotMtlsClient),
    }
}

fn reject(reason: Reason, description: impl Into<String>) -> Verdict {
    Verdict::Reject(Rejection::invalid_client(reason, description))
}
