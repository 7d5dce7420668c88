//! The decision on one token request: authenticate the client by its certificate, pass it, or reject it.

use crate::cert::Certificate;
use crate::config::UnknownClient;
use crate::forwarded::source::Presented;
use crate::oauth::jwks::{Freshness, JwksUri, Thumbprint};
use crate::oauth::registration::{
    Client, KeySource, Method, SubjectRule, SELF_SIGNED_TLS_CLIENT_AUTH, TLS_CLIENT_AUTH,
};
use crate::registry::Unavailable;
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
    /// A protected resource refused the access token (RFC 6750 `invalid_token`).
    InvalidToken,
    /// The leaf was not signed by a CA key pinned for the client.
    IssuerMismatch,
    /// A CRL or OCSP responder says the client's certificate is revoked.
    CertificateRevoked,
    /// No fresh revocation status could be had and `revocation.on_unavailable` is `reject`.
    RevocationUnavailable,
}

impl Reason {
    pub const ALL: [Reason; 14] = [
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
        Reason::InvalidToken,
        Reason::IssuerMismatch,
        Reason::CertificateRevoked,
        Reason::RevocationUnavailable,
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
            Reason::InvalidToken => "invalid_token",
            Reason::IssuerMismatch => "issuer_mismatch",
            Reason::CertificateRevoked => "certificate_revoked",
            Reason::RevocationUnavailable => "revocation_unavailable",
        }
    }
}

/// A request stopped at the proxy, with the error the client sees: RFC 6749 §5.2 JSON at the AS's
/// endpoints, an RFC 6750 §3 Bearer challenge at protected resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
    pub reason: Reason,
    /// The `WWW-Authenticate` challenge the reply carries, if any.
    pub challenge: Option<Challenge>,
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// RFC 6750 §3: a resource server's refusal of a token.
    Bearer,
    /// RFC 6749 §5.2: `invalid_client` answering a client that authenticated with HTTP Basic.
    Basic,
}

impl Rejection {
    pub fn invalid_client(reason: Reason, description: impl Into<String>) -> Rejection {
        Rejection { status: 401, error: "invalid_client", description: description.into(), reason, challenge: None }
    }

    /// A CRL or the OCSP responder says the authenticated client's certificate is revoked.
    pub fn revoked() -> Rejection {
        Rejection::invalid_client(Reason::CertificateRevoked, "the client certificate has been revoked")
    }

    /// No fresh revocation status, and `revocation.on_unavailable` is `reject`.
    pub fn revocation_unavailable() -> Rejection {
        Rejection::invalid_client(
            Reason::RevocationUnavailable,
            "the revocation status of the client certificate could not be established",
        )
    }

    pub fn invalid_request(description: impl Into<String>) -> Rejection {
        Rejection {
            status: 400,
            error: "invalid_request",
            description: description.into(),
            reason: Reason::InvalidRequest,
            challenge: None,
        }
    }

    pub fn too_large(limit: usize) -> Rejection {
        Rejection {
            status: 413,
            error: "invalid_request",
            description: format!("the request body exceeds the limit of {limit} bytes"),
            reason: Reason::BodyTooLarge,
            challenge: None,
        }
    }

    /// RFC 6749 §5.2: an `invalid_client` refusal of a client that used the Authorization header answers
    /// with a challenge of the scheme it used (HTTP Basic is the one RFC 6749 defines for clients).
    pub fn challenging(mut self, authorization: Option<&[u8]>) -> Rejection {
        if self.error == "invalid_client" && authorization.is_some_and(crate::oauth::basic::is_basic) {
            self.challenge = Some(Challenge::Basic);
        }
        self
    }

    pub fn invalid_token(description: impl Into<String>) -> Rejection {
        Rejection {
            status: 401,
            error: "invalid_token",
            description: description.into(),
            reason: Reason::InvalidToken,
            challenge: Some(Challenge::Bearer),
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
    /// The certificate that authenticated the client (forwarded to the AS).
    pub certificate: Rc<Certificate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Authenticated(Authenticated),
    Pass(PassReason),
    Reject(Rejection),
    /// The client's `jwks_uri` must be (re)fetched before a decision; ask again afterwards.
    FetchJwks(JwksUri),
}

/// A registration lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Rc<Client>),
    Unknown,
    /// The registry cannot answer (never loaded, stale, or damaged).
    Unavailable(Unavailable),
}

/// What is known of a `jwks_uri`'s JWK Set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksView {
    /// Thumbprints of the last good copy (possibly none yet), how it stands against its maximum age, and
    /// whether a fetch may start now.
    Known { thumbprints: Vec<Thumbprint>, freshness: Freshness, may_refetch: bool, last_error: Option<String> },
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
            return Verdict::Reject(Rejection::invalid_client(Reason::RegistryUnavailable, why.to_string()))
        }
    };
    if matches!(client.method, Method::Other(_)) {
        return Verdict::Pass(PassReason::NotMtlsClient);
    }
    let (certificate, validated) = match presented {
        Presented::None => {
            return reject(
                Reason::NoCertificate,
                format!("no client certificate was presented, and this client uses {}", client.method_name()),
            )
        }
        Presented::Malformed(why) => {
            return reject(Reason::BadCertificate, format!("the forwarded client certificate is malformed: {why}"))
        }
        Presented::Certificate { certificate, validated } => (certificate, *validated),
    };
    let leaf = match &certificate.leaf {
        Ok(leaf) => leaf,
        Err(e) => return reject(Reason::BadCertificate, format!("the client certificate cannot be parsed: {e}")),
    };
    let authenticated = |method| {
        Verdict::Authenticated(Authenticated {
            client_id: client.client_id.clone(),
            method,
            x5t_s256: leaf.x5t_s256(),
            certificate: certificate.clone(),
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
            match crate::cert::issuer::issued_by_any(&client.pinned_issuers, &certificate.der) {
                Ok(true) => {}
                Ok(false) => {
                    return reject(
                        Reason::IssuerMismatch,
                        "the client certificate was not issued by a CA key pinned for this client (tls_client_auth_issuer_keys)",
                    )
                }
                Err(e) => return reject(Reason::IssuerMismatch, format!("the pinned issuer cannot be checked: {e}")),
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
                reject(
                    Reason::JwkMismatch,
                    "the client certificate matches no x5c certificate in the client's registered JWK Set (jwks)",
                )
            }
        }
        Method::SelfSigned(KeySource::JwksUri(uri)) => match directory.jwks(uri) {
            // A copy due for renewal is renewed by the request that finds it so, before its key counts.
            JwksView::Known { freshness: Freshness::Due | Freshness::Expired, may_refetch: true, .. } => {
                Verdict::FetchJwks(uri.clone())
            }
            JwksView::Known { freshness: Freshness::Expired, last_error, .. } => reject(
                Reason::JwksUnavailable,
                format!(
                    "the client's JWK Set is older than its maximum age and could not be fetched again: {}",
                    last_error.as_deref().unwrap_or("another fetch is under way")
                ),
            ),
            JwksView::Known { thumbprints, .. } if thumbprints.contains(&leaf.sha256) => {
                authenticated(SELF_SIGNED_TLS_CLIENT_AUTH)
            }
            JwksView::Known { may_refetch: true, .. } => Verdict::FetchJwks(uri.clone()),
            JwksView::Known { thumbprints, last_error: Some(e), .. } if thumbprints.is_empty() => {
                reject(Reason::JwksUnavailable, format!("the client's JWK Set at jwks_uri could not be fetched: {e}"))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::registration::check;
    use crate::testdata::{der, LEAF, SELF_SIGNED_1, SELF_SIGNED_2};
    use serde_json::json;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fixed {
        clients: HashMap<String, Rc<Client>>,
        unavailable: Option<Unavailable>,
        jwks: Option<JwksView>,
    }

    impl Fixed {
        fn with(metadata: serde_json::Value) -> Fixed {
            let client = check(&metadata).unwrap().compile().unwrap();
            let mut f = Fixed::default();
            f.clients.insert(client.client_id.clone(), Rc::new(client));
            f
        }
    }

    impl Directory for Fixed {
        fn client(&mut self, id: &str) -> Lookup {
            if let Some(why) = &self.unavailable {
                return Lookup::Unavailable(why.clone());
            }
            self.clients.get(id).map_or(Lookup::Unknown, |c| Lookup::Found(c.clone()))
        }
        fn jwks(&mut self, _: &JwksUri) -> JwksView {
            self.jwks.clone().unwrap_or(JwksView::Known {
                thumbprints: vec![],
                freshness: Freshness::Fresh,
                may_refetch: true,
                last_error: None,
            })
        }
    }

    fn validated(pem: &str) -> Presented {
        Presented::certificate(der(pem), true)
    }

    fn tls_client(field: &str, value: &str) -> Fixed {
        Fixed::with(json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", field: value}))
    }

    fn run(dir: &mut Fixed, presented: &Presented) -> Verdict {
        decide(Some("c"), presented, UnknownClient::Pass, dir)
    }

    fn reason(v: &Verdict) -> Option<Reason> {
        match v {
            Verdict::Reject(r) => Some(r.reason),
            _ => None,
        }
    }

    #[test]
    fn subject_dn_match_authenticates_and_reports_the_thumbprint() {
        let mut dir = tls_client("tls_client_auth_subject_dn", "cn=DN-Client, ou=Payments, o=Example Bank, c=gb");
        match run(&mut dir, &validated(LEAF)) {
            Verdict::Authenticated(a) => {
                assert_eq!(a.client_id, "c");
                assert_eq!(a.method, "tls_client_auth");
                assert_eq!(a.x5t_s256, crate::cert::x5t_s256(&der(LEAF)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subject_dn_in_another_rdn_order_does_not_match() {
        let mut dir = tls_client("tls_client_auth_subject_dn", "C=GB,O=Example Bank,OU=Payments,CN=dn-client");
        assert_eq!(reason(&run(&mut dir, &validated(LEAF))), Some(Reason::SubjectMismatch));
    }

    #[test]
    fn tls_client_auth_requires_a_validated_chain() {
        let mut dir = tls_client("tls_client_auth_subject_dn", "CN=dn-client,OU=Payments,O=Example Bank,C=GB");
        let unvalidated = Presented::certificate(der(LEAF), false);
        let v = run(&mut dir, &unvalidated);
        assert_eq!(reason(&v), Some(Reason::NotValidated));
        let Verdict::Reject(r) = v else { unreachable!() };
        assert!(r.description.contains("not validated"));
        assert_eq!((r.status, r.error), (401, "invalid_client"));
    }

    fn pinned(ca_pem: &str) -> Fixed {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode(der(ca_pem));
        Fixed::with(json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=dn-client,OU=Payments,O=Example Bank,C=GB",
            "tls_client_auth_issuer_keys": [key]}))
    }

    #[test]
    fn a_client_pinned_to_its_ca_key_is_authenticated_by_a_leaf_that_ca_signed() {
        assert!(matches!(run(&mut pinned(crate::testdata::TEST_CA), &validated(LEAF)), Verdict::Authenticated(_)));
    }

    #[test]
    fn the_right_subject_from_another_trusted_ca_does_not_authenticate_a_pinned_client() {
        // Pinned to another CA's key: the leaf (issued by TEST_CA, right DN, validated) is refused.
        let v = run(&mut pinned(SELF_SIGNED_1), &validated(LEAF));
        assert_eq!(reason(&v), Some(Reason::IssuerMismatch));
    }

    #[test]
    fn any_dns_san_may_match_not_only_the_first() {
        let mut dir = tls_client("tls_client_auth_san_dns", "CLIENT.example.com");
        assert!(matches!(run(&mut dir, &validated(LEAF)), Verdict::Authenticated(_)));
    }

    #[test]
    fn ip_san_is_compared_in_binary() {
        let mut dir = tls_client("tls_client_auth_san_ip", "2001:db8:0:0:0:0:0:1");
        assert!(matches!(run(&mut dir, &validated(LEAF)), Verdict::Authenticated(_)));
    }

    #[test]
    fn san_mismatch_names_the_san_type() {
        let mut dir = tls_client("tls_client_auth_san_uri", "spiffe://example.org/someone-else");
        let Verdict::Reject(r) = run(&mut dir, &validated(LEAF)) else { panic!() };
        assert!(r.description.contains("uniformResourceIdentifier"), "{}", r.description);
    }

    #[test]
    fn email_san_matches_with_a_case_insensitive_domain() {
        let mut dir = tls_client("tls_client_auth_san_email", "Ops@example.COM");
        assert!(matches!(run(&mut dir, &validated(LEAF)), Verdict::Authenticated(_)));
    }

    #[test]
    fn no_certificate_is_invalid_client() {
        let mut dir = tls_client("tls_client_auth_san_dns", "client.example.com");
        assert_eq!(reason(&run(&mut dir, &Presented::None)), Some(Reason::NoCertificate));
    }

    #[test]
    fn malformed_forwarded_certificate_is_invalid_client() {
        let mut dir = tls_client("tls_client_auth_san_dns", "client.example.com");
        let v = run(&mut dir, &Presented::Malformed(crate::forwarded::source::SourceError::XfccEmpty));
        assert_eq!(reason(&v), Some(Reason::BadCertificate));
        let garbage = Presented::certificate(vec![0x30, 0x03, 1, 2], true);
        assert_eq!(reason(&run(&mut dir, &garbage)), Some(Reason::BadCertificate));
    }

    fn self_signed_inline(pem: &str) -> Fixed {
        use base64::Engine;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der(pem));
        Fixed::with(json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [{"kty": "EC", "x5c": [x5c]}]}}))
    }

    #[test]
    fn self_signed_certificate_registered_in_jwks_authenticates_without_validation() {
        let mut dir = self_signed_inline(SELF_SIGNED_1);
        let presented = Presented::certificate(der(SELF_SIGNED_1), false);
        let Verdict::Authenticated(a) = run(&mut dir, &presented) else { panic!() };
        assert_eq!(a.method, "self_signed_tls_client_auth");
    }

    #[test]
    fn self_signed_certificate_not_in_jwks_is_rejected() {
        let mut dir = self_signed_inline(SELF_SIGNED_1);
        let presented = Presented::certificate(der(SELF_SIGNED_2), false);
        assert_eq!(reason(&run(&mut dir, &presented)), Some(Reason::JwkMismatch));
    }

    fn self_signed_by_uri() -> Fixed {
        Fixed::with(json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks_uri": "https://jwks.test/c.json"}))
    }

    #[test]
    fn jwks_uri_miss_asks_for_a_fetch_when_allowed() {
        let mut dir = self_signed_by_uri();
        let presented = Presented::certificate(der(SELF_SIGNED_1), false);
        assert!(matches!(run(&mut dir, &presented), Verdict::FetchJwks(u) if u.authority == "jwks.test"));
    }

    /// A JWK Set copy holding the certificates `pems`.
    fn copy(pems: &[&str], freshness: Freshness, may_refetch: bool) -> JwksView {
        let thumbprints = pems.iter().map(|p| crate::cert::sha256(&der(p))).collect();
        JwksView::Known { thumbprints, freshness, may_refetch, last_error: None }
    }

    #[test]
    fn a_jwks_uri_copy_due_for_renewal_is_renewed_before_its_key_counts() {
        let mut dir = self_signed_by_uri();
        dir.jwks = Some(copy(&[SELF_SIGNED_1], Freshness::Due, true));
        let presented = Presented::certificate(der(SELF_SIGNED_1), false);
        assert!(matches!(run(&mut dir, &presented), Verdict::FetchJwks(_)));
    }

    #[test]
    fn a_jwks_uri_copy_due_for_renewal_still_serves_while_another_request_renews_it() {
        let mut dir = self_signed_by_uri();
        dir.jwks = Some(copy(&[SELF_SIGNED_1], Freshness::Due, false));
        let presented = Presented::certificate(der(SELF_SIGNED_1), false);
        assert!(matches!(run(&mut dir, &presented), Verdict::Authenticated(_)));
    }

    #[test]
    fn a_key_in_an_expired_jwks_uri_copy_authenticates_no_one() {
        let mut dir = self_signed_by_uri();
        let presented = Presented::certificate(der(SELF_SIGNED_1), false);
        dir.jwks = Some(copy(&[SELF_SIGNED_1], Freshness::Expired, true));
        assert!(matches!(run(&mut dir, &presented), Verdict::FetchJwks(_)), "fetched again first");
        dir.jwks = Some(copy(&[SELF_SIGNED_1], Freshness::Expired, false));
        assert_eq!(reason(&run(&mut dir, &presented)), Some(Reason::JwksUnavailable), "not fetched: refused");
    }

    #[test]
    fn jwks_uri_hit_authenticates() {
        let mut dir = self_signed_by_uri();
        dir.jwks = Some(copy(&[SELF_SIGNED_1], Freshness::Fresh, false));
        let presented = Presented::certificate(der(SELF_SIGNED_1), false);
        assert!(matches!(run(&mut dir, &presented), Verdict::Authenticated(_)));
    }

    #[test]
    fn jwks_uri_miss_after_refetch_is_rejected() {
        let mut dir = self_signed_by_uri();
        dir.jwks = Some(copy(&[SELF_SIGNED_1], Freshness::Fresh, false));
        let presented = Presented::certificate(der(SELF_SIGNED_2), false);
        assert_eq!(reason(&run(&mut dir, &presented)), Some(Reason::JwkMismatch));
    }

    #[test]
    fn jwks_uri_never_fetched_successfully_says_so() {
        let mut dir = self_signed_by_uri();
        dir.jwks = Some(JwksView::Known {
            thumbprints: vec![],
            freshness: Freshness::Fresh,
            may_refetch: false,
            last_error: Some("HTTP status 500".into()),
        });
        let presented = Presented::certificate(der(SELF_SIGNED_1), false);
        let v = run(&mut dir, &presented);
        assert_eq!(reason(&v), Some(Reason::JwksUnavailable));
    }

    #[test]
    fn clients_of_other_methods_pass_unannotated() {
        let mut dir = Fixed::with(json!({"client_id": "c", "token_endpoint_auth_method": "client_secret_basic"}));
        assert_eq!(run(&mut dir, &Presented::None), Verdict::Pass(PassReason::NotMtlsClient));
    }

    #[test]
    fn unknown_clients_pass_or_are_rejected_as_configured() {
        let mut dir = Fixed::default();
        assert_eq!(run(&mut dir, &validated(LEAF)), Verdict::Pass(PassReason::UnknownClient));
        let v = decide(Some("c"), &validated(LEAF), UnknownClient::Reject, &mut dir);
        assert_eq!(reason(&v), Some(Reason::UnknownClient));
    }

    #[test]
    fn requests_without_client_id_pass_unannotated() {
        let mut dir = Fixed::default();
        assert_eq!(
            decide(None, &validated(LEAF), UnknownClient::Reject, &mut dir),
            Verdict::Pass(PassReason::NoClientId)
        );
    }

    #[test]
    fn an_unavailable_registry_rejects_with_its_reason() {
        let stale = Unavailable::Stale { age_seconds: 400, max_stale_seconds: 300, last_error: None };
        let mut dir = Fixed { unavailable: Some(stale), ..Fixed::default() };
        let v = run(&mut dir, &validated(LEAF));
        assert_eq!(reason(&v), Some(Reason::RegistryUnavailable));
    }
}
