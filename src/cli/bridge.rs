//! `oauth-mtls registry from-keycloak|from-wso2`: the clients an authorization server's admin API returns,
//! rewritten as the filter's registry document (RFC 7591 metadata). Neither Keycloak nor WSO2 serves such a list.
//!
//! A client is converted only when the filter can enforce exactly what the AS enforces; every other one is
//! refused with the reason, and then no document is written (the last good one keeps being served). What each
//! AS enforces, and the source it was read from, is in docs/authorization-servers.md.

use crate::cert::{pem, x509, Leaf};
use crate::oauth::registration::{self, SELF_SIGNED_TLS_CLIENT_AUTH, TLS_CLIENT_AUTH};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::fmt;

/// The AS whose representation is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `GET /admin/realms/{realm}/clients`: an array of ClientRepresentation.
    Keycloak,
    /// An array of the Application Management API's ApplicationModel (`advancedConfigurations.certificate`
    /// and `inboundProtocolConfiguration.oidc`, the body of `GET .../inbound-protocols/oidc`).
    Wso2,
}

impl Source {
    /// The subcommand naming it.
    pub fn from_command(command: &str) -> Option<Source> {
        match command {
            "from-keycloak" => Some(Source::Keycloak),
            "from-wso2" => Some(Source::Wso2),
            _ => None,
        }
    }
}

/// Keycloak's client attributes and authenticator ids (services/.../X509ClientAuthenticator.java,
/// OIDCConfigAttributes.java).
const KC_SUBJECT_DN: &str = "x509.subjectdn";
const KC_REGEX: &str = "x509.allow.regex.pattern.comparison";
const KC_BOUND_TOKENS: &str = "tls.client.certificate.bound.access.tokens";
const KC_X509: &str = "client-x509";

/// Why the input as a whole could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    NotJson(String),
    NotAnArray,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::NotJson(e) => write!(f, "not JSON: {e}"),
            InputError::NotAnArray => write!(f, "expected a JSON array of the AS's client representations"),
        }
    }
}

/// Why one client was not converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotAnObject,
    NoClientId,
    /// Keycloak: `x509.allow.regex.pattern.comparison` absent (Keycloak then defaults to true) or not "false".
    RegexSubjectDn(String),
    /// Keycloak: a client-x509 client without `x509.subjectdn` (Keycloak authenticates nobody with it).
    NoSubjectDn,
    /// An authenticator the bridge has no RFC 7591 name for.
    UnknownAuthenticator(String),
    /// WSO2: `tls_client_auth` without a registered certificate (WSO2's authenticator then fails every request).
    NoCertificate,
    /// WSO2: the registered certificate could not be read; says why.
    Certificate(String),
    /// WSO2: a certificate type other than PEM or JWKS.
    CertificateType(String),
    /// WSO2: a subject DN together with a JWKS URL: the filter cannot check the DN of certificates fetched later.
    SubjectDnWithJwks,
    /// WSO2: the registered DN is not the registered certificate's subject, so WSO2 refuses every request.
    SubjectDnNotTheCertificates {
        registered: String,
    },
    /// WSO2: `self_signed_tls_client_auth`, which WSO2's mutual-TLS authenticator does not implement.
    SelfSignedUnsupported,
    /// The converted registration is one the filter itself refuses.
    Invalid(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotAnObject => write!(f, "not a JSON object"),
            Refusal::NoClientId => write!(f, "no client id (Keycloak `clientId`, WSO2 `inboundProtocolConfiguration.oidc.clientId`)"),
            Refusal::RegexSubjectDn(value) => write!(
                f,
                "Keycloak matches x509.subjectdn as a regular expression ({KC_REGEX} is {value}; absent means true); the filter matches one exact DN and will not guess what a pattern admits: set {KC_REGEX} to \"false\" in Keycloak"
            ),
            Refusal::NoSubjectDn => {
                write!(f, "client-x509 without {KC_SUBJECT_DN}: Keycloak authenticates no certificate for it")
            }
            Refusal::UnknownAuthenticator(name) => {
                write!(f, "client authenticator {name:?} has no RFC 7591 token_endpoint_auth_method the bridge knows")
            }
            Refusal::NoCertificate => write!(
                f,
                "tls_client_auth without advancedConfigurations.certificate: WSO2's MutualTLSClientAuthenticator compares the presented certificate with the registered one, so it authenticates nobody"
            ),
            Refusal::Certificate(why) => write!(f, "advancedConfigurations.certificate: {why}"),
            Refusal::CertificateType(kind) => {
                write!(f, "advancedConfigurations.certificate.type {kind:?} is neither PEM nor JWKS")
            }
            Refusal::SubjectDnWithJwks => write!(
                f,
                "tlsClientAuthSubjectDn with a JWKS certificate: WSO2 requires both the JWKS certificate and the DN, and the filter cannot check the DN of certificates it fetches later"
            ),
            Refusal::SubjectDnNotTheCertificates { registered } => write!(
                f,
                "tlsClientAuthSubjectDn {registered:?} is not the subject of the registered certificate, so WSO2 refuses every request of this client"
            ),
            Refusal::SelfSignedUnsupported => write!(
                f,
                "self_signed_tls_client_auth: WSO2's MutualTLSClientAuthenticator implements only tls_client_auth"
            ),
            Refusal::Invalid(why) => write!(f, "the filter would refuse the converted registration: {why}"),
        }
    }
}

/// The result: the registrations converted, and the clients refused as (client id or `#index`, why).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conversion {
    pub registrations: Vec<Value>,
    pub refused: Vec<(String, Refusal)>,
}

/// Converts the AS's client list `input`; `tenant`, when given, is set on every registration.
pub fn convert(source: Source, input: &[u8], tenant: Option<&str>) -> Result<Conversion, InputError> {
    let value: Value = serde_json::from_slice(input).map_err(|e| InputError::NotJson(e.to_string()))?;
    let items = value.as_array().ok_or(InputError::NotAnArray)?;
    let mut out = Conversion::default();
    for (index, item) in items.iter().enumerate() {
        let converted = match source {
            Source::Keycloak => keycloak(item),
            Source::Wso2 => wso2(item),
        };
        let name = |id: Option<&str>| id.map_or_else(|| format!("#{index}"), str::to_string);
        match converted {
            Ok(None) => {}
            Ok(Some(mut registration)) => {
                let id = registration::client_id_of(&registration).map(str::to_string);
                if let Err(e) = registration::check(&registration) {
                    out.refused.push((name(id.as_deref()), Refusal::Invalid(e.to_string())));
                    continue;
                }
                if let (Some(tenant), Some(members)) = (tenant, registration.as_object_mut()) {
                    members.insert("tenant".to_string(), json!(tenant));
                }
                out.registrations.push(registration);
            }
            Err((id, refusal)) => out.refused.push((name(id.as_deref()), refusal)),
        }
    }
    Ok(out)
}

type Converted = Result<Option<Value>, (Option<String>, Refusal)>;

fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// One ClientRepresentation. SAML and disabled clients are left out: no OAuth request of theirs is served.
fn keycloak(item: &Value) -> Converted {
    let client = item.as_object().ok_or((None, Refusal::NotAnObject))?;
    if text(client, "protocol").is_some_and(|p| p != "openid-connect") || client.get("enabled") == Some(&json!(false)) {
        return Ok(None);
    }
    let id = text(client, "clientId").filter(|id| !id.is_empty()).ok_or((None, Refusal::NoClientId))?;
    let refuse = |refusal| (Some(id.to_string()), refusal);
    let attribute = |key| client.get("attributes").and_then(|a| a.get(key)).and_then(Value::as_str);
    let mut registration = Map::new();
    registration.insert("client_id".to_string(), json!(id));
    let method = if client.get("publicClient") == Some(&json!(true)) {
        "none"
    } else {
        match text(client, "clientAuthenticatorType") {
            Some("client-secret") => "client_secret_basic",
            Some("client-jwt") => "private_key_jwt",
            Some("client-secret-jwt") => "client_secret_jwt",
            Some(KC_X509) => {
                let dn = attribute(KC_SUBJECT_DN).filter(|dn| !dn.is_empty()).ok_or(refuse(Refusal::NoSubjectDn))?;
                match attribute(KC_REGEX) {
                    Some("false") => {}
                    other => return Err(refuse(Refusal::RegexSubjectDn(other.unwrap_or("absent").to_string()))),
                }
                registration.insert("tls_client_auth_subject_dn".to_string(), json!(dn));
                TLS_CLIENT_AUTH
            }
            other => return Err(refuse(Refusal::UnknownAuthenticator(other.unwrap_or("(none)").to_string()))),
        }
    };
    registration.insert("token_endpoint_auth_method".to_string(), json!(method));
    if attribute(KC_BOUND_TOKENS) == Some("true") {
        registration.insert("tls_client_certificate_bound_access_tokens".to_string(), json!(true));
    }
    Ok(Some(Value::Object(registration)))
}

/// One ApplicationModel. Applications without an OIDC inbound configuration (SAML, WS-Trust...) are left out.
fn wso2(item: &Value) -> Converted {
    if !item.is_object() {
        return Err((None, Refusal::NotAnObject));
    }
    let Some(oidc) = at(item, &["inboundProtocolConfiguration", "oidc"]) else { return Ok(None) };
    let id = oidc.get("clientId").and_then(Value::as_str).filter(|id| !id.is_empty());
    let id = id.ok_or((None, Refusal::NoClientId))?;
    let refuse = |refusal| (Some(id.to_string()), refusal);
    let mut registration = Map::new();
    registration.insert("client_id".to_string(), json!(id));
    let method = at(oidc, &["clientAuthentication", "tokenEndpointAuthMethod"]).and_then(Value::as_str);
    let subject_dn =
        at(oidc, &["clientAuthentication", "tlsClientAuthSubjectDn"]).and_then(Value::as_str).filter(|d| !d.is_empty());
    if oidc.get("publicClient") == Some(&json!(true)) {
        registration.insert("token_endpoint_auth_method".to_string(), json!("none"));
        return Ok(Some(Value::Object(registration)));
    }
    match method {
        Some(TLS_CLIENT_AUTH) => {
            let certificate =
                at(item, &["advancedConfigurations", "certificate"]).ok_or(refuse(Refusal::NoCertificate))?;
            let value = certificate.get("value").and_then(Value::as_str).filter(|v| !v.trim().is_empty());
            let value = value.ok_or(refuse(Refusal::NoCertificate))?;
            registration.insert("token_endpoint_auth_method".to_string(), json!(SELF_SIGNED_TLS_CLIENT_AUTH));
            match certificate.get("type").and_then(Value::as_str) {
                Some("PEM") => {
                    let der = pem_certificate(value).map_err(|why| refuse(Refusal::Certificate(why)))?;
                    if let Some(registered) = subject_dn {
                        if !subject_is(&der, registered).map_err(|why| refuse(Refusal::Certificate(why)))? {
                            let registered = registered.to_string();
                            return Err(refuse(Refusal::SubjectDnNotTheCertificates { registered }));
                        }
                    }
                    let mut key = Map::new();
                    if let Some(kty) = key_type(&der) {
                        key.insert("kty".to_string(), json!(kty));
                    }
                    key.insert("x5c".to_string(), json!([STANDARD.encode(&der)]));
                    registration.insert("jwks".to_string(), json!({"keys": [key]}));
                }
                Some("JWKS") if subject_dn.is_some() => return Err(refuse(Refusal::SubjectDnWithJwks)),
                Some("JWKS") => {
                    registration.insert("jwks_uri".to_string(), json!(value.trim()));
                }
                other => return Err(refuse(Refusal::CertificateType(other.unwrap_or("(none)").to_string()))),
            }
        }
        Some(SELF_SIGNED_TLS_CLIENT_AUTH) => return Err(refuse(Refusal::SelfSignedUnsupported)),
        // Other methods pass the filter unannotated; without one WSO2 accepts any authenticator but
        // mutual TLS, whose certificate header only the filter writes (RFC 7591 §2 default: client_secret_basic).
        Some(other) => {
            registration.insert("token_endpoint_auth_method".to_string(), json!(other));
        }
        None => {}
    }
    Ok(Some(Value::Object(registration)))
}

/// The one certificate of a PEM value, or of base64 of a PEM (as WSO2's console stores it).
fn pem_certificate(value: &str) -> Result<Vec<u8>, String> {
    let text = if value.contains("-----BEGIN") {
        value.as_bytes().to_vec()
    } else {
        let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        STANDARD.decode(compact).map_err(|_| "neither PEM nor base64 of a PEM".to_string())?
    };
    match pem::decode_certificates(&text).map_err(|e| e.to_string())?.as_slice() {
        [der] => Leaf::from_der(der).map(|_| der.clone()).map_err(|e| e.to_string()),
        [] => Err("no certificate in it".to_string()),
        more => Err(format!("{} certificates in it; WSO2 compares one", more.len())),
    }
}

/// Whether `registered` (RFC 4514) names the subject of `der`, by the filter's own DN matching.
fn subject_is(der: &[u8], registered: &str) -> Result<bool, String> {
    let dn = crate::cert::dn::Dn::parse(registered).map_err(|e| format!("tlsClientAuthSubjectDn: {e}"))?;
    let leaf = Leaf::from_der(der).map_err(|e| e.to_string())?;
    Ok(dn.matches(&leaf.subject))
}

/// The JWK `kty` (RFC 7518 §6.1, RFC 8037) of the certificate's key, from its algorithm OID.
fn key_type(der: &[u8]) -> Option<&'static str> {
    use x509_cert::der::Decode;
    let (certificate, _) = x509::Certificate::decode(der).ok()?;
    let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(certificate.spki).ok()?;
    match spki.algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => Some("RSA"),
        "1.2.840.10045.2.1" => Some("EC"),
        "1.3.101.112" | "1.3.101.113" => Some("OKP"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn keycloak_one(client: Value) -> Conversion {
        convert(Source::Keycloak, json!([client]).to_string().as_bytes(), None).unwrap()
    }

    fn wso2_one(app: Value) -> Conversion {
        convert(Source::Wso2, json!([app]).to_string().as_bytes(), None).unwrap()
    }

    fn refusal(c: &Conversion) -> &Refusal {
        assert!(c.registrations.is_empty(), "{c:?}");
        &c.refused.first().unwrap().1
    }

    /// A ClientRepresentation as `GET /admin/realms/{realm}/clients` returns it (abridged to what matters).
    fn kc_x509(regex: Option<&str>) -> Value {
        let mut attributes = json!({"x509.subjectdn": "CN=dn-client,OU=Payments,O=Example Bank,C=GB",
                                    "tls.client.certificate.bound.access.tokens": "true"});
        if let Some(r) = regex {
            attributes["x509.allow.regex.pattern.comparison"] = json!(r);
        }
        json!({"id": "8b1c", "clientId": "payments", "enabled": true, "protocol": "openid-connect",
               "publicClient": false, "bearerOnly": false, "clientAuthenticatorType": "client-x509",
               "serviceAccountsEnabled": true, "attributes": attributes})
    }

    #[test]
    fn a_keycloak_x509_client_with_exact_dn_matching_becomes_tls_client_auth_by_subject_dn() {
        let c = keycloak_one(kc_x509(Some("false")));
        assert_eq!(c.refused, vec![]);
        assert_eq!(
            c.registrations,
            vec![
                json!({"client_id": "payments", "tls_client_auth_subject_dn": "CN=dn-client,OU=Payments,O=Example Bank,C=GB",
                        "token_endpoint_auth_method": "tls_client_auth", "tls_client_certificate_bound_access_tokens": true})
            ]
        );
    }

    #[test]
    fn a_keycloak_x509_client_matched_by_regex_is_refused_also_when_the_attribute_is_absent() {
        for (attribute, shown) in [(None, "absent"), (Some("true"), "true")] {
            let c = keycloak_one(kc_x509(attribute));
            assert_eq!(refusal(&c), &Refusal::RegexSubjectDn(shown.to_string()));
            assert!(refusal(&c).to_string().contains("set x509.allow.regex.pattern.comparison to \"false\""));
        }
    }

    #[test]
    fn a_keycloak_x509_client_without_a_subject_dn_is_refused() {
        let mut client = kc_x509(Some("false"));
        client["attributes"]["x509.subjectdn"] = json!("");
        assert_eq!(refusal(&keycloak_one(client)), &Refusal::NoSubjectDn);
    }

    #[test]
    fn a_keycloak_subject_dn_that_is_not_rfc_4514_is_refused_with_the_filters_reason() {
        let mut client = kc_x509(Some("false"));
        client["attributes"]["x509.subjectdn"] = json!("CN=a,O");
        let c = keycloak_one(client);
        assert!(matches!(refusal(&c), Refusal::Invalid(why) if why.contains("not an RFC 4514 DN")), "{c:?}");
        assert_eq!(c.refused.first().unwrap().0, "payments");
    }

    #[test]
    fn keycloak_secret_jwt_and_public_clients_keep_their_method_and_saml_or_disabled_clients_are_left_out() {
        let clients = json!([
            {"clientId": "s", "clientAuthenticatorType": "client-secret", "protocol": "openid-connect"},
            {"clientId": "j", "clientAuthenticatorType": "client-jwt"},
            {"clientId": "p", "publicClient": true, "clientAuthenticatorType": "client-secret"},
            {"clientId": "urn:sp", "protocol": "saml", "clientAuthenticatorType": "client-secret"},
            {"clientId": "off", "enabled": false, "clientAuthenticatorType": "client-x509"}
        ]);
        let c = convert(Source::Keycloak, clients.to_string().as_bytes(), None).unwrap();
        let methods: Vec<_> = c.registrations.iter().map(|r| r["token_endpoint_auth_method"].clone()).collect();
        assert_eq!(methods, vec![json!("client_secret_basic"), json!("private_key_jwt"), json!("none")]);
        assert_eq!(c.refused, vec![]);
    }

    #[test]
    fn a_keycloak_authenticator_without_a_known_rfc_7591_name_is_refused() {
        let c = keycloak_one(json!({"clientId": "k8s", "clientAuthenticatorType": "federated-jwt"}));
        assert_eq!(refusal(&c), &Refusal::UnknownAuthenticator("federated-jwt".to_string()));
    }

    #[test]
    fn tenant_is_set_on_every_registration_only_when_given() {
        let input = json!([kc_x509(Some("false")), {"clientId": "s", "clientAuthenticatorType": "client-secret"}]);
        let with = convert(Source::Keycloak, input.to_string().as_bytes(), Some("bank-a")).unwrap();
        assert!(with.registrations.iter().all(|r| r["tenant"] == "bank-a"), "{with:?}");
        let without = convert(Source::Keycloak, input.to_string().as_bytes(), None).unwrap();
        assert!(without.registrations.iter().all(|r| r.get("tenant").is_none()));
    }

    #[test]
    fn input_that_is_not_a_json_array_is_an_error() {
        assert!(matches!(convert(Source::Keycloak, b"{", None), Err(InputError::NotJson(_))));
        assert_eq!(convert(Source::Wso2, b"{\"clients\": []}", None), Err(InputError::NotAnArray));
        let c = convert(Source::Keycloak, b"[1, {\"clientAuthenticatorType\": \"client-secret\"}]", None).unwrap();
        assert_eq!(c.refused, vec![("#0".to_string(), Refusal::NotAnObject), ("#1".to_string(), Refusal::NoClientId)]);
    }

    /// An ApplicationModel: the application (`GET /api/server/v1/applications/{id}`) with its OIDC inbound
    /// configuration (`GET .../inbound-protocols/oidc`) under `inboundProtocolConfiguration.oidc`.
    fn wso2_app(certificate: Value, subject_dn: Option<&str>) -> Value {
        let mut auth = json!({"tokenEndpointAuthMethod": "tls_client_auth"});
        if let Some(dn) = subject_dn {
            auth["tlsClientAuthSubjectDn"] = json!(dn);
        }
        json!({"id": "2b8e", "name": "payments-app",
               "advancedConfigurations": {"saas": false, "certificate": certificate},
               "inboundProtocolConfiguration": {"oidc": {
                   "clientId": "payments", "grantTypes": ["client_credentials"], "publicClient": false,
                   "accessToken": {"type": "JWT", "bindingType": "None"}, "clientAuthentication": auth}}})
    }

    #[test]
    fn a_wso2_tls_client_auth_app_with_a_pem_certificate_pins_exactly_that_certificate() {
        let c = wso2_one(wso2_app(json!({"type": "PEM", "value": testdata::LEAF}), None));
        assert_eq!(c.refused, vec![]);
        let der = testdata::der(testdata::LEAF);
        assert_eq!(
            c.registrations,
            vec![json!({"client_id": "payments", "token_endpoint_auth_method": "self_signed_tls_client_auth",
                        "jwks": {"keys": [{"kty": "EC", "x5c": [STANDARD.encode(&der)]}]}})]
        );
        let stored = registration::check(c.registrations.first().unwrap()).unwrap().compile().unwrap();
        assert_eq!(
            stored.method,
            registration::Method::SelfSigned(registration::KeySource::Jwks(vec![crate::cert::sha256(&der)]))
        );
    }

    #[test]
    fn a_wso2_certificate_stored_as_base64_of_the_pem_is_read_too() {
        let value = STANDARD.encode(testdata::RSA_CA); // an RSA key
        let c = wso2_one(wso2_app(json!({"type": "PEM", "value": value}), None));
        assert_eq!(c.registrations.first().unwrap()["jwks"]["keys"][0]["kty"], "RSA", "{c:?}");
    }

    #[test]
    fn a_wso2_subject_dn_is_kept_only_as_a_check_that_it_names_the_pinned_certificate() {
        let same = "CN=dn-client, OU=Payments, O=Example Bank, C=GB";
        assert_eq!(
            wso2_one(wso2_app(json!({"type": "PEM", "value": testdata::LEAF}), Some(same))).registrations.len(),
            1
        );
        let other = wso2_one(wso2_app(json!({"type": "PEM", "value": testdata::LEAF}), Some("CN=someone-else")));
        let registered = "CN=someone-else".to_string();
        assert_eq!(refusal(&other), &Refusal::SubjectDnNotTheCertificates { registered });
    }

    #[test]
    fn a_wso2_jwks_certificate_becomes_a_jwks_uri_but_not_together_with_a_subject_dn() {
        let jwks = json!({"type": "JWKS", "value": "https://payments.example.com/jwks.json"});
        let c = wso2_one(wso2_app(jwks.clone(), None));
        assert_eq!(c.registrations.first().unwrap()["jwks_uri"], "https://payments.example.com/jwks.json");
        assert_eq!(refusal(&wso2_one(wso2_app(jwks, Some("CN=dn-client")))), &Refusal::SubjectDnWithJwks);
    }

    #[test]
    fn a_wso2_tls_client_auth_app_without_a_usable_certificate_is_refused() {
        let mut none = wso2_app(json!({}), None);
        none["advancedConfigurations"].as_object_mut().unwrap().remove("certificate");
        assert_eq!(refusal(&wso2_one(none)), &Refusal::NoCertificate);
        let garbage = wso2_one(wso2_app(json!({"type": "PEM", "value": "not a certificate!"}), None));
        assert_eq!(refusal(&garbage), &Refusal::Certificate("neither PEM nor base64 of a PEM".to_string()));
        let two = format!("{}\n{}", testdata::LEAF, testdata::SELF_SIGNED_1);
        let c = wso2_one(wso2_app(json!({"type": "PEM", "value": two}), None));
        assert_eq!(refusal(&c), &Refusal::Certificate("2 certificates in it; WSO2 compares one".to_string()));
        let c = wso2_one(wso2_app(json!({"type": "X509", "value": "x"}), None));
        assert_eq!(refusal(&c), &Refusal::CertificateType("X509".to_string()));
    }

    #[test]
    fn wso2_self_signed_is_refused_and_other_methods_and_public_clients_pass_through() {
        let mut app = wso2_app(json!({}), None);
        app["inboundProtocolConfiguration"]["oidc"]["clientAuthentication"]["tokenEndpointAuthMethod"] =
            json!("self_signed_tls_client_auth");
        assert_eq!(refusal(&wso2_one(app.clone())), &Refusal::SelfSignedUnsupported);
        app["inboundProtocolConfiguration"]["oidc"]["clientAuthentication"]["tokenEndpointAuthMethod"] =
            json!("private_key_jwt");
        assert_eq!(
            wso2_one(app.clone()).registrations.first().unwrap()["token_endpoint_auth_method"],
            "private_key_jwt"
        );
        app["inboundProtocolConfiguration"]["oidc"]["publicClient"] = json!(true);
        assert_eq!(wso2_one(app).registrations.first().unwrap()["token_endpoint_auth_method"], "none");
    }

    #[test]
    fn wso2_apps_without_an_oidc_inbound_configuration_are_left_out() {
        let c = wso2_one(json!({"name": "saml-app", "inboundProtocolConfiguration": {"saml": {}}}));
        assert_eq!(c, Conversion::default());
    }

    fn cli(args: &str, file: &Value) -> crate::cli::Output {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        let bytes = file.to_string().into_bytes();
        crate::cli::run(&args, &|name| {
            if name == "clients.json" {
                Ok(bytes.clone())
            } else {
                Err(format!("{name}: no such file"))
            }
        })
    }

    #[test]
    fn the_command_prints_the_document_and_exits_0() {
        let out = cli("registry from-keycloak --tenant bank-a clients.json", &json!([kc_x509(Some("false"))]));
        assert_eq!(out.status, 0, "{}", out.text);
        let document: Value = serde_json::from_str(&out.text).unwrap();
        assert_eq!(document[0]["client_id"], "payments");
        assert_eq!(document[0]["tenant"], "bank-a");
    }

    #[test]
    fn the_command_names_every_refused_client_writes_no_document_and_exits_1() {
        let out = cli(
            "registry from-keycloak clients.json",
            &json!([kc_x509(None), {"clientId": "x", "clientAuthenticatorType": "?"}]),
        );
        assert_eq!(out.status, 1);
        assert!(
            out.text.starts_with(
                "clients.json: refused `payments`: Keycloak matches x509.subjectdn as a regular expression"
            ),
            "{}",
            out.text
        );
        assert!(out.text.contains("refused `x`: client authenticator \"?\""), "{}", out.text);
        assert!(out.text.ends_with("2 client(s) refused, 0 convertible; no document written\n"), "{}", out.text);
    }

    #[test]
    fn the_command_refuses_an_unknown_source_a_missing_file_and_a_stray_tenant() {
        for args in [
            "registry from-okta clients.json",
            "registry from-wso2 missing.json",
            "registry from-wso2",
            "lint clients.json --tenant a",
            "registry from-wso2 clients.json --tenant",
        ] {
            assert_eq!(cli(args, &json!([])).status, 2, "{args}");
        }
    }
}
