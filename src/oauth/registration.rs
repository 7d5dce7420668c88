//! OAuth client registrations (RFC 7591 metadata), checked against RFC 8705 and compiled for matching.

use crate::cert::dn::{Dn, DnError};
use crate::cert::issuer::{IssuerError, IssuerKey};
use crate::cert::san::{SanError, SanKind, SanRule};
use crate::oauth::jwks::{self, JwksError, JwksUri, JwksUriError, Thumbprint};
use crate::oauth::tenant::{self, Tenant, TenantError};
use serde_json::{Map, Value};
use std::fmt;

pub const TLS_CLIENT_AUTH: &str = "tls_client_auth";
pub const SELF_SIGNED_TLS_CLIENT_AUTH: &str = "self_signed_tls_client_auth";

/// The registered value a `tls_client_auth` client's leaf certificate must match (RFC 8705 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectRule {
    Dn(Dn),
    San(SanRule),
}

/// Where a `self_signed_tls_client_auth` client's certificates are registered (RFC 8705 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Jwks(Vec<Thumbprint>),
    JwksUri(JwksUri),
}

/// How the filter treats a client, by its `token_endpoint_auth_method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    TlsClientAuth(SubjectRule),
    SelfSigned(KeySource),
    /// Any other method (`client_secret_basic`, `private_key_jwt`, `none`...): not ours to check.
    Other(String),
}

/// A registration compiled for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    /// The tenant it belongs to (see [`Stored::tenant`]).
    pub tenant: Option<Tenant>,
    pub method: Method,
    pub bound_tokens: bool,
    /// `tls_client_auth_issuer_keys`: the CA keys this client's leaf must be signed by (none: any trusted CA).
    pub pinned_issuers: Vec<IssuerKey>,
}

impl Client {
    pub fn method_name(&self) -> &str {
        match &self.method {
            Method::TlsClientAuth(_) => TLS_CLIENT_AUTH,
            Method::SelfSigned(_) => SELF_SIGNED_TLS_CLIENT_AUTH,
            Method::Other(name) => name,
        }
    }
}

/// Why a registration was refused at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationError {
    NotAnObject,
    MissingClientId,
    /// The client id holds a control character (CR, LF, NUL...): it could not be sent in a header.
    ClientIdControlCharacter,
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// `tls_client_auth` needs exactly one `tls_client_auth_*` value; lists the ones present.
    SubjectValueCount(Vec<&'static str>),
    InvalidSubjectDn(DnError),
    EmptySubjectDn,
    InvalidSan(SanError),
    /// RFC 7591 §2: `jwks` and `jwks_uri` MUST NOT both be present.
    JwksAndJwksUri,
    NoJwks,
    InvalidJwks(JwksError),
    InvalidJwksUri(JwksUriError),
    InvalidIssuerKey(IssuerError),
    /// `tls_client_auth_issuer_keys` on a client that does not use `tls_client_auth`.
    IssuerKeysWithoutTlsClientAuth,
    /// Valid metadata this deployment cannot serve; the text says why.
    Unsupported(String),
    /// `tenant` is not a tenant name (empty, `.`, `..`, a path character): it could never match.
    InvalidTenant(TenantError),
    /// It names another tenant than the registry that serves it (`registries[].tenant`).
    OtherTenant {
        registry: Tenant,
        item: String,
    },
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrationError::NotAnObject => write!(f, "registration is not a JSON object"),
            RegistrationError::MissingClientId => write!(f, "client_id is missing or empty"),
            RegistrationError::ClientIdControlCharacter => {
                write!(f, "client_id holds a control character (CR, LF, NUL...), which cannot be sent in x-mtls-client-id")
            }
            RegistrationError::WrongType { field, expected } => write!(f, "{field} must be {expected}"),
            RegistrationError::SubjectValueCount(found) if found.is_empty() => write!(
                f,
                "tls_client_auth requires exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email; none is present (RFC 8705 §2.1.2)"
            ),
            RegistrationError::SubjectValueCount(found) => write!(
                f,
                "tls_client_auth requires exactly one tls_client_auth_* value, found {} (RFC 8705 §2.1.2)",
                found.join(", ")
            ),
            RegistrationError::InvalidSubjectDn(e) => {
                write!(f, "tls_client_auth_subject_dn is not an RFC 4514 DN: {e}")
            }
            RegistrationError::EmptySubjectDn => write!(f, "tls_client_auth_subject_dn is empty"),
            RegistrationError::InvalidSan(e) => write!(f, "{e}"),
            RegistrationError::JwksAndJwksUri => {
                write!(f, "jwks and jwks_uri must not both be present (RFC 7591 §2)")
            }
            RegistrationError::NoJwks => write!(
                f,
                "self_signed_tls_client_auth requires jwks or jwks_uri (RFC 8705 §2.2)"
            ),
            RegistrationError::InvalidJwks(e) => write!(f, "jwks: {e}"),
            RegistrationError::InvalidJwksUri(e) => write!(f, "{e}"),
            RegistrationError::Unsupported(why) => write!(f, "{why}"),
            RegistrationError::InvalidIssuerKey(e) => write!(f, "tls_client_auth_issuer_keys: {e}"),
            RegistrationError::IssuerKeysWithoutTlsClientAuth => {
                write!(f, "tls_client_auth_issuer_keys applies only to tls_client_auth clients")
            }
            RegistrationError::InvalidTenant(e) => write!(f, "tenant: {e}, so no request could ever match it"),
            RegistrationError::OtherTenant { registry, item } => {
                write!(f, "it names tenant `{item}`, but its registry serves tenant `{registry}` only")
            }
        }
    }
}

impl std::error::Error for RegistrationError {}

const SUBJECT_FIELDS: [&str; 5] = [
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
];

/// The part of a registration the filter keeps, in the compact form stored in shared data
/// ([`Stored::to_json`]: members `i`, `m`, and `s`, `t`, `u`, `b`, `p` only when set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub client_id: String,
    /// The tenant it belongs to: found only by requests to that tenant's templated endpoints. `None`: only by
    /// requests to literal endpoints.
    pub tenant: Option<Tenant>,
    pub method: String,
    /// For `tls_client_auth`: which `tls_client_auth_*` field, and its value.
    pub subject: Option<(String, String)>,
    /// For inline `jwks`: hex SHA-256 of each `x5c[0]`.
    pub thumbprints: Vec<String>,
    pub jwks_uri: Option<String>,
    pub bound_tokens: bool,
    /// Pinned issuer keys: base64 DER SubjectPublicKeyInfo.
    pub issuer_keys: Vec<String>,
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

/// The strings of a JSON array, or `None` if it is not an array of strings.
pub fn strings_of(value: &Value) -> Option<Vec<String>> {
    value.as_array()?.iter().map(|v| v.as_str().map(str::to_string)).collect()
}

/// Checks one RFC 7591 metadata object and returns its stored form, or why it breaks RFC 8705.
pub fn check(metadata: &Value) -> Result<Stored, RegistrationError> {
    check_in(metadata, None)
}

/// [`check`] for a registration served by a registry of one tenant (`registries[].tenant`): it belongs to that
/// tenant, and may not name another.
pub fn check_in(metadata: &Value, registry_tenant: Option<&Tenant>) -> Result<Stored, RegistrationError> {
    let obj = metadata.as_object().ok_or(RegistrationError::NotAnObject)?;
    let tenant = match (obj.get("tenant"), registry_tenant) {
        (None | Some(Value::Null), t) => t.cloned(),
        (Some(Value::String(s)), t) => {
            let named = Tenant::new(s).map_err(RegistrationError::InvalidTenant)?;
            match t {
                Some(registry) if *registry != named => {
                    return Err(RegistrationError::OtherTenant { registry: registry.clone(), item: s.clone() })
                }
                _ => Some(named),
            }
        }
        (Some(_), _) => return Err(wrong("tenant", "a string")),
    };
    let client_id = match obj.get("client_id") {
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            return Err(RegistrationError::ClientIdControlCharacter)
        }
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None => return Err(RegistrationError::MissingClientId),
        Some(_) => return Err(wrong("client_id", "a string")),
    };
    let method = match obj.get("token_endpoint_auth_method") {
        None => "client_secret_basic".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(wrong("token_endpoint_auth_method", "a string")),
    };
    let bound_tokens = match obj.get("tls_client_certificate_bound_access_tokens") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(wrong("tls_client_certificate_bound_access_tokens", "a boolean")),
    };
    let mut stored = Stored {
        client_id,
        tenant,
        method,
        subject: None,
        thumbprints: Vec::new(),
        jwks_uri: None,
        bound_tokens,
        issuer_keys: Vec::new(),
    };
    match obj.get("tls_client_auth_issuer_keys") {
        None | Some(Value::Null) => {}
        Some(Value::Array(keys)) => {
            if stored.method != TLS_CLIENT_AUTH {
                return Err(RegistrationError::IssuerKeysWithoutTlsClientAuth);
            }
            for key in keys {
                let text = key.as_str().ok_or(wrong("tls_client_auth_issuer_keys", "an array of base64 strings"))?;
                let pin = IssuerKey::parse(text).map_err(RegistrationError::InvalidIssuerKey)?;
                stored.issuer_keys.push(pin.to_base64());
            }
        }
        Some(_) => return Err(wrong("tls_client_auth_issuer_keys", "an array of base64 strings")),
    }
    match stored.method.as_str() {
        TLS_CLIENT_AUTH => {
            let mut present = Vec::new();
            for field in SUBJECT_FIELDS {
                match obj.get(field) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(v)) => {
                        present.push(field);
                        stored.subject = Some((field.to_string(), v.clone()));
                    }
                    Some(_) => return Err(wrong(field, "a string")),
                }
            }
            if present.len() != 1 {
                return Err(RegistrationError::SubjectValueCount(present));
            }
        }
        SELF_SIGNED_TLS_CLIENT_AUTH => {
            let jwks = obj.get("jwks").filter(|v| !v.is_null());
            let uri = obj.get("jwks_uri").filter(|v| !v.is_null());
            match (jwks, uri) {
                (Some(_), Some(_)) => return Err(RegistrationError::JwksAndJwksUri),
                (None, None) => return Err(RegistrationError::NoJwks),
                (Some(set), None) => {
                    let prints = jwks::x5c_thumbprints(set).map_err(RegistrationError::InvalidJwks)?;
                    stored.thumbprints = prints.iter().map(|t| jwks::hex(t)).collect();
                }
                (None, Some(Value::String(u))) => stored.jwks_uri = Some(u.clone()),
                (None, Some(_)) => return Err(wrong("jwks_uri", "a string")),
            }
        }
        _ => {}
    }
    // Compiling proves the values parse (DN, IP, URI), so a bad registration is refused at load.
    stored.compile()?;
    Ok(stored)
}

impl Stored {
    /// The compact JSON object kept in shared data.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("i".into(), Value::String(self.client_id.clone()));
        o.insert("m".into(), Value::String(self.method.clone()));
        if let Some(t) = &self.tenant {
            o.insert("n".into(), Value::String(t.to_string()));
        }
        if let Some((field, value)) = &self.subject {
            o.insert("s".into(), strings(&[field.clone(), value.clone()]));
        }
        if !self.thumbprints.is_empty() {
            o.insert("t".into(), strings(&self.thumbprints));
        }
        if let Some(uri) = &self.jwks_uri {
            o.insert("u".into(), Value::String(uri.clone()));
        }
        if self.bound_tokens {
            o.insert("b".into(), Value::Bool(true));
        }
        if !self.issuer_keys.is_empty() {
            o.insert("p".into(), strings(&self.issuer_keys));
        }
        Value::Object(o)
    }

    /// The registration written by [`Stored::to_json`], or `None` if `value` is not of that form.
    pub fn from_json(value: &Value) -> Option<Stored> {
        let o = value.as_object()?;
        let text = |key: &str| o.get(key).map(|v| v.as_str().map(str::to_string));
        let list = |key: &str| o.get(key).map_or(Some(Vec::new()), strings_of);
        let subject = match o.get("s").map(strings_of) {
            None => None,
            Some(Some(pair)) => match <[String; 2]>::try_from(pair) {
                Ok([field, value]) => Some((field, value)),
                Err(_) => return None,
            },
            Some(None) => return None,
        };
        let tenant = match text("n") {
            None => None,
            Some(n) => Some(Tenant::new(&n?).ok()?),
        };
        Some(Stored {
            client_id: text("i")??,
            tenant,
            method: text("m")??,
            subject,
            thumbprints: list("t")?,
            jwks_uri: text("u").map_or(Some(None), |u| u.map(Some))?,
            bound_tokens: o.get("b").map_or(Some(false), Value::as_bool)?,
            issuer_keys: list("p")?,
        })
    }

    /// The key it is stored and found under: (tenant, client id) as one string.
    pub fn key(&self) -> String {
        tenant::scoped_key(self.tenant.as_ref(), &self.client_id).into_owned()
    }

    /// The registration ready for matching.
    pub fn compile(&self) -> Result<Client, RegistrationError> {
        let method = match self.method.as_str() {
            TLS_CLIENT_AUTH => {
                let (field, value) = self.subject.as_ref().ok_or(RegistrationError::SubjectValueCount(Vec::new()))?;
                let rule = match field.as_str() {
                    "tls_client_auth_subject_dn" => {
                        let dn = Dn::parse(value).map_err(RegistrationError::InvalidSubjectDn)?;
                        if dn.is_empty() {
                            return Err(RegistrationError::EmptySubjectDn);
                        }
                        SubjectRule::Dn(dn)
                    }
                    other => {
                        let kind = san_kind(other).ok_or(RegistrationError::SubjectValueCount(Vec::new()))?;
                        SubjectRule::San(SanRule::parse(kind, value).map_err(RegistrationError::InvalidSan)?)
                    }
                };
                Method::TlsClientAuth(rule)
            }
            SELF_SIGNED_TLS_CLIENT_AUTH => match &self.jwks_uri {
                Some(uri) => Method::SelfSigned(KeySource::JwksUri(
                    JwksUri::parse(uri).map_err(RegistrationError::InvalidJwksUri)?,
                )),
                None => {
                    let prints: Option<Vec<Thumbprint>> =
                        self.thumbprints.iter().map(|h| jwks::thumbprint_from_hex(h)).collect();
                    match prints {
                        Some(p) if !p.is_empty() => Method::SelfSigned(KeySource::Jwks(p)),
                        _ => return Err(RegistrationError::InvalidJwks(JwksError::NoX5c)),
                    }
                }
            },
            other => Method::Other(other.to_string()),
        };
        let pinned_issuers = self
            .issuer_keys
            .iter()
            .map(|k| IssuerKey::parse(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(RegistrationError::InvalidIssuerKey)?;
        Ok(Client {
            client_id: self.client_id.clone(),
            tenant: self.tenant.clone(),
            method,
            bound_tokens: self.bound_tokens,
            pinned_issuers,
        })
    }
}

fn san_kind(field: &str) -> Option<SanKind> {
    Some(match field {
        "tls_client_auth_san_dns" => SanKind::Dns,
        "tls_client_auth_san_uri" => SanKind::Uri,
        "tls_client_auth_san_ip" => SanKind::Ip,
        "tls_client_auth_san_email" => SanKind::Email,
        _ => return None,
    })
}

fn wrong(field: &'static str, expected: &'static str) -> RegistrationError {
    RegistrationError::WrongType { field, expected }
}

/// The `client_id` of a metadata object, if it has one, for naming it in a log line.
pub fn client_id_of(metadata: &Value) -> Option<&str> {
    metadata.as_object().and_then(|o: &Map<String, Value>| o.get("client_id")).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tls_client_auth_needs_exactly_one_subject_value() {
        let none = json!({"client_id": "a", "token_endpoint_auth_method": "tls_client_auth"});
        assert_eq!(check(&none), Err(RegistrationError::SubjectValueCount(vec![])));
        let two = json!({"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "a.example.com", "tls_client_auth_san_uri": "spiffe://x"});
        assert_eq!(
            check(&two),
            Err(RegistrationError::SubjectValueCount(vec!["tls_client_auth_san_dns", "tls_client_auth_san_uri"]))
        );
    }

    #[test]
    fn an_unparseable_subject_dn_is_refused_at_load() {
        let reg = json!({"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=a,O"});
        assert!(matches!(check(&reg), Err(RegistrationError::InvalidSubjectDn(_))));
        let empty = json!({"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": ""});
        assert_eq!(check(&empty), Err(RegistrationError::EmptySubjectDn));
    }

    #[test]
    fn issuer_keys_are_stored_as_subject_public_key_infos() {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(crate::testdata::der(crate::testdata::TEST_CA));
        let reg = json!({"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "a.example.com", "tls_client_auth_issuer_keys": [ca]});
        let client = check(&reg).unwrap().compile().unwrap();
        assert_eq!(client.pinned_issuers, vec![IssuerKey::parse(&ca).unwrap()]);
    }

    #[test]
    fn issuer_keys_must_be_keys_and_only_for_tls_client_auth() {
        let bad = json!({"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "a.example.com", "tls_client_auth_issuer_keys": ["bm90IGEga2V5"]});
        assert!(matches!(check(&bad), Err(RegistrationError::InvalidIssuerKey(_))));
        let other = json!({"client_id": "a", "token_endpoint_auth_method": "private_key_jwt", "tls_client_auth_issuer_keys": []});
        assert_eq!(check(&other), Err(RegistrationError::IssuerKeysWithoutTlsClientAuth));
    }

    #[test]
    fn a_bad_san_ip_is_refused_at_load() {
        let reg = json!({"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_ip": "10.1.2.300"});
        assert!(matches!(check(&reg), Err(RegistrationError::InvalidSan(_))));
    }

    #[test]
    fn a_subject_value_that_is_not_a_string_is_refused() {
        let reg = json!({"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": ["a.example.com"]});
        assert_eq!(check(&reg), Err(wrong("tls_client_auth_san_dns", "a string")));
    }

    #[test]
    fn self_signed_needs_jwks_or_jwks_uri_but_not_both() {
        let neither = json!({"client_id": "a", "token_endpoint_auth_method": "self_signed_tls_client_auth"});
        assert_eq!(check(&neither), Err(RegistrationError::NoJwks));
        let both = json!({"client_id": "a", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": []}, "jwks_uri": "https://x/jwks"});
        assert_eq!(check(&both), Err(RegistrationError::JwksAndJwksUri));
    }

    #[test]
    fn inline_jwks_is_stored_as_thumbprints() {
        use base64::Engine;
        let der = b"certificate";
        let reg = json!({"client_id": "ss", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [{"kty": "EC", "x5c": [base64::engine::general_purpose::STANDARD.encode(der)]}]}});
        let stored = check(&reg).unwrap();
        assert_eq!(stored.thumbprints, vec![jwks::hex(&crate::cert::sha256(der))]);
        let client = stored.compile().unwrap();
        assert_eq!(client.method, Method::SelfSigned(KeySource::Jwks(vec![crate::cert::sha256(der)])));
    }

    #[test]
    fn jwks_uri_must_be_a_url() {
        let reg = json!({"client_id": "ss", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks_uri": "not a url"});
        assert!(matches!(check(&reg), Err(RegistrationError::InvalidJwksUri(_))));
    }

    #[test]
    fn other_methods_are_kept_unchecked() {
        let reg = json!({"client_id": "web", "token_endpoint_auth_method": "private_key_jwt"});
        assert_eq!(check(&reg).unwrap().compile().unwrap().method, Method::Other("private_key_jwt".into()));
        let default = json!({"client_id": "web"});
        assert_eq!(check(&default).unwrap().method, "client_secret_basic");
    }

    #[test]
    fn client_id_is_required_and_a_string() {
        assert_eq!(check(&json!({})), Err(RegistrationError::MissingClientId));
        assert_eq!(check(&json!({"client_id": ""})), Err(RegistrationError::MissingClientId));
        assert_eq!(check(&json!({"client_id": 7})), Err(wrong("client_id", "a string")));
        assert_eq!(check(&json!([])), Err(RegistrationError::NotAnObject));
    }

    #[test]
    fn stored_form_round_trips_through_json() {
        let reg = json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks_uri": "https://x/jwks", "tls_client_certificate_bound_access_tokens": true});
        let stored = check(&reg).unwrap();
        assert_eq!(Stored::from_json(&stored.to_json()), Some(stored));
    }

    #[test]
    fn the_stored_form_is_compact_json_with_only_the_members_that_are_set() {
        let reg = json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=c"});
        assert_eq!(
            check(&reg).unwrap().to_json().to_string(),
            r#"{"i":"c","m":"tls_client_auth","s":["tls_client_auth_subject_dn","CN=c"]}"#
        );
        let other = json!({"client_id": "o", "tls_client_certificate_bound_access_tokens": true});
        assert_eq!(check(&other).unwrap().to_json().to_string(), r#"{"i":"o","m":"client_secret_basic","b":true}"#);
    }

    #[test]
    fn a_stored_form_with_a_missing_or_mistyped_member_is_refused() {
        assert!(Stored::from_json(&json!({"i": "c", "m": "x"})).is_some());
        assert_eq!(Stored::from_json(&json!({"i": "c"})), None);
        assert_eq!(Stored::from_json(&json!({"i": "c", "m": "x", "s": ["only one"]})), None);
        assert_eq!(Stored::from_json(&json!({"i": "c", "m": "x", "b": "yes"})), None);
        assert_eq!(Stored::from_json(&json!({"i": "c", "m": "x", "t": [1]})), None);
    }
}
