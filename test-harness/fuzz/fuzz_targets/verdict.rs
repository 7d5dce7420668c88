//! Fuzz target: the verdict end to end — a registration and a presented certificate built from the input,
//! decided with a small in-memory directory; an authenticated client must really be the registered one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::cert::{sha256, Leaf};
use oauth_mtls_filter::config::UnknownClient;
use oauth_mtls_filter::forwarded::source::Presented;
use oauth_mtls_filter::oauth::jwks::{Freshness, JwksUri, Thumbprint};
use oauth_mtls_filter::oauth::registration::{self, Client, KeySource, Method, SubjectRule};
use oauth_mtls_filter::oauth::verdict::{decide, Directory, JwksView, Lookup, PassReason, Verdict};
use serde_json::{json, Value};
use std::rc::Rc;

/// The unit tests' certificates (seed files), so that inputs reach the matching code quickly.
const CERTS: [&[u8]; 4] = [
    include_bytes!("../corpus/cert_der/seed-testdata-leaf.der"),
    include_bytes!("../corpus/cert_der/seed-testdata-forwarder.der"),
    include_bytes!("../corpus/cert_der/seed-testdata-self_signed_1.der"),
    include_bytes!("../corpus/cert_der/seed-cert-leaf_pem.der"),
];
const TEST_CA: &[u8] = include_bytes!("../corpus/cert_der/seed-testdata-test_ca.der");

struct Dir {
    client: Option<Rc<Client>>,
    prints: Vec<Thumbprint>,
    freshness: Freshness,
    may_refetch: bool,
}

impl Directory for Dir {
    fn client(&mut self, id: &str) -> Lookup {
        match &self.client {
            Some(c) if c.client_id == id => Lookup::Found(c.clone()),
            _ => Lookup::Unknown,
        }
    }
    fn jwks(&mut self, _: &JwksUri) -> JwksView {
        JwksView::Known {
            thumbprints: self.prints.clone(),
            freshness: self.freshness,
            may_refetch: self.may_refetch,
            last_error: None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // flags: bit0 validated, bit1 unknown clients rejected, bits 2-3 built-in certificate,
    // bit4 the certificate is the DER after the NUL, bits 5-7 what is registered.
    let Some((&flags, rest)) = data.split_first() else { return };
    let validated = flags & 1 != 0;
    let unknown = if flags & 2 != 0 { UnknownClient::Reject } else { UnknownClient::Pass };
    let builtin = CERTS[usize::from(flags >> 2 & 3)];
    let (value, tail) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let value = String::from_utf8_lossy(value).into_owned();
    let der = if flags & 0x10 != 0 { tail.to_vec() } else { builtin.to_vec() };
    let kind = flags >> 5;
    let mut metadata = json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth"});
    match kind {
        0 => metadata["tls_client_auth_subject_dn"] = json!(value),
        1 => metadata["tls_client_auth_san_dns"] = json!(value),
        2 => metadata["tls_client_auth_san_uri"] = json!(value),
        3 => metadata["tls_client_auth_san_ip"] = json!(value),
        4 => {
            // an e-mail SAN, pinned to the unit tests' CA
            metadata["tls_client_auth_san_email"] = json!(value);
            metadata["tls_client_auth_issuer_keys"] =
                json!([base64::Engine::encode(&base64::engine::general_purpose::STANDARD, TEST_CA)]);
        }
        5 => {
            metadata["token_endpoint_auth_method"] = json!("self_signed_tls_client_auth");
            metadata["jwks"] = serde_json::from_str(&value).unwrap_or(Value::String(value.clone()));
        }
        6 => {
            metadata["token_endpoint_auth_method"] = json!("self_signed_tls_client_auth");
            metadata["jwks_uri"] = json!(value);
        }
        _ => metadata["token_endpoint_auth_method"] = json!(value),
    }
    let client = registration::check(&metadata).ok().and_then(|s| s.compile().ok()).map(Rc::new);
    let freshness = [Freshness::Fresh, Freshness::Due, Freshness::Expired][tail.len() / 2 % 3];
    let mut dir =
        Dir { client: client.clone(), prints: vec![sha256(builtin)], freshness, may_refetch: tail.len() % 2 == 1 };
    let presented = if der.is_empty() { Presented::None } else { Presented::certificate(der.clone(), validated) };

    match decide(Some("c"), &presented, unknown, &mut dir) {
        Verdict::Authenticated(a) => {
            let client = client.expect("only a registered client is authenticated");
            let leaf = Leaf::from_der(&der).expect("only a certificate that parses authenticates");
            assert_eq!(a.client_id, "c");
            assert_eq!(a.x5t_s256, leaf.x5t_s256());
            match &client.method {
                Method::TlsClientAuth(rule) => {
                    assert!(validated, "tls_client_auth needs a validated chain");
                    assert_eq!(a.method, registration::TLS_CLIENT_AUTH);
                    assert_eq!(oauth_mtls_filter::cert::issuer::issued_by_any(&client.pinned_issuers, &der), Ok(true));
                    match rule {
                        SubjectRule::Dn(dn) => {
                            assert!(dn.matches(&leaf.subject), "{dn} authenticated {}", leaf.subject)
                        }
                        SubjectRule::San(san) => assert!(san.matches(&leaf.sans)),
                    }
                }
                Method::SelfSigned(KeySource::Jwks(prints)) => assert!(prints.contains(&leaf.sha256)),
                Method::SelfSigned(KeySource::JwksUri(_)) => {
                    assert!(dir.prints.contains(&leaf.sha256));
                    assert_ne!(dir.freshness, Freshness::Expired, "an expired JWK Set authenticated a key");
                    assert!(dir.freshness == Freshness::Fresh || !dir.may_refetch, "a due JWK Set was not renewed");
                }
                Method::Other(m) => panic!("a {m} client was authenticated by certificate"),
            }
        }
        Verdict::Pass(PassReason::NoClientId) => panic!("a client_id was given"),
        Verdict::Pass(PassReason::UnknownClient) => {
            assert!(client.is_none());
            assert_eq!(unknown, UnknownClient::Pass);
        }
        Verdict::Pass(PassReason::NotMtlsClient) => {
            assert!(matches!(client.as_ref().map(|c| &c.method), Some(Method::Other(_))));
        }
        Verdict::Reject(r) => {
            assert_eq!(r.status, 401);
            assert!(!r.description.contains(['\r', '\n']), "descriptions are one line: {:?}", r.description);
        }
        Verdict::FetchJwks(_) => {
            assert!(dir.may_refetch);
            assert!(matches!(client.as_ref().map(|c| &c.method), Some(Method::SelfSigned(KeySource::JwksUri(_)))));
        }
    }
});
