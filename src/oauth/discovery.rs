//! Authorization server metadata (RFC 8414, OpenID Discovery) amended with what the edge provides (RFC 8705 §3.3, §5).

use crate::oauth::endpoint::TENANT;
use crate::oauth::tenant::Tenant;
use serde_json::{Map, Value};
use std::fmt;

/// The metadata documents the filter amends by default (`discovery.paths`).
pub const PATHS: [&str; 2] = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"];

/// Why a metadata document was passed on unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    NotJson(String),
    NotAnObject,
    MethodsNotAnArray,
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::NotJson(e) => write!(f, "metadata is not JSON: {e}"),
            DiscoveryError::NotAnObject => write!(f, "metadata is not a JSON object"),
            DiscoveryError::MethodsNotAnArray => write!(f, "token_endpoint_auth_methods_supported is not an array"),
        }
    }
}

impl std::error::Error for DiscoveryError {}

/// `value` with every `{tenant}` replaced by the tenant, percent-encoded as a path segment.
pub fn substitute(value: &str, tenant: &Tenant) -> String {
    let encoded: String = tenant
        .as_str()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    value.replace(TENANT, &encoded)
}

/// The document with `tls_client_auth` and `self_signed_tls_client_auth` in
/// `token_endpoint_auth_methods_supported`, `tls_client_certificate_bound_access_tokens: true`, and
/// `mtls_endpoint_aliases` when configured, `{tenant}` in them replaced by the request's tenant. Every other
/// member is kept, in order.
pub fn amend(
    document: &[u8],
    aliases: Option<&Map<String, Value>>,
    tenant: Option<&Tenant>,
) -> Result<Vec<u8>, DiscoveryError> {
    let mut value: Value = serde_json::from_slice(document).map_err(|e| DiscoveryError::NotJson(e.to_string()))?;
    let obj = value.as_object_mut().ok_or(DiscoveryError::NotAnObject)?;
    let methods = obj
        .entry("token_endpoint_auth_methods_supported")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or(DiscoveryError::MethodsNotAnArray)?;
    for method in [crate::oauth::registration::TLS_CLIENT_AUTH, crate::oauth::registration::SELF_SIGNED_TLS_CLIENT_AUTH]
    {
        if !methods.iter().any(|m| m.as_str() == Some(method)) {
            methods.push(Value::String(method.to_string()));
        }
    }
    obj.insert("tls_client_certificate_bound_access_tokens".into(), Value::Bool(true));
    if let Some(aliases) = aliases {
        let mut aliases = aliases.clone();
        if let Some(tenant) = tenant {
            for value in aliases.values_mut() {
                if let Some(text) = value.as_str().filter(|t| t.contains(TENANT)) {
                    *value = Value::String(substitute(text, tenant));
                }
            }
        }
        obj.insert("mtls_endpoint_aliases".into(), Value::Object(aliases));
    }
    serde_json::to_vec(&value).map_err(|e| DiscoveryError::NotJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn amended(doc: Value, aliases: Option<Value>) -> Value {
        let aliases = aliases.map(|a| a.as_object().unwrap().clone());
        serde_json::from_slice(&amend(doc.to_string().as_bytes(), aliases.as_ref(), None).unwrap()).unwrap()
    }

    #[test]
    fn mtls_methods_are_added_once() {
        let v = amended(
            json!({"issuer": "https://as", "token_endpoint_auth_methods_supported": ["client_secret_basic", "tls_client_auth"]}),
            None,
        );
        assert_eq!(
            v["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "tls_client_auth", "self_signed_tls_client_auth"])
        );
    }

    #[test]
    fn methods_are_listed_even_when_the_as_lists_none() {
        let v = amended(json!({"issuer": "https://as"}), None);
        assert_eq!(
            v["token_endpoint_auth_methods_supported"],
            json!(["tls_client_auth", "self_signed_tls_client_auth"])
        );
    }

    #[test]
    fn bound_tokens_are_advertised() {
        let v = amended(json!({"tls_client_certificate_bound_access_tokens": false}), None);
        assert_eq!(v["tls_client_certificate_bound_access_tokens"], json!(true));
    }

    #[test]
    fn mtls_endpoint_aliases_are_set_when_configured() {
        let aliases = json!({"token_endpoint": "https://mtls.example.com/token"});
        let v = amended(json!({"token_endpoint": "https://as/token"}), Some(aliases.clone()));
        assert_eq!(v["mtls_endpoint_aliases"], aliases);
        assert_eq!(v["token_endpoint"], json!("https://as/token"));
        assert!(amended(json!({}), None).get("mtls_endpoint_aliases").is_none());
    }

    #[test]
    fn other_members_are_untouched_and_keep_their_order() {
        let doc = r#"{"issuer":"https://as","jwks_uri":"https://as/jwks","scopes_supported":["openid"],"token_endpoint_auth_methods_supported":[]}"#;
        let out = String::from_utf8(amend(doc.as_bytes(), None, None).unwrap()).unwrap();
        assert!(
            out.starts_with(r#"{"issuer":"https://as","jwks_uri":"https://as/jwks","scopes_supported":["openid"],"#),
            "{out}"
        );
    }

    #[test]
    fn documents_that_are_not_metadata_objects_are_errors() {
        assert!(matches!(amend(b"<html>", None, None), Err(DiscoveryError::NotJson(_))));
        assert_eq!(amend(b"[]", None, None), Err(DiscoveryError::NotAnObject));
        assert_eq!(
            amend(br#"{"token_endpoint_auth_methods_supported": "x"}"#, None, None),
            Err(DiscoveryError::MethodsNotAnArray)
        );
    }

    #[test]
    fn aliases_name_the_requests_tenant() {
        let aliases =
            json!({"token_endpoint": "https://mtls.example.com/realms/{tenant}/protocol/openid-connect/token"});
        let aliases = aliases.as_object().unwrap();
        let tenant = Tenant::new("realm a").unwrap();
        let out: Value = serde_json::from_slice(&amend(b"{}", Some(aliases), Some(&tenant)).unwrap()).unwrap();
        assert_eq!(
            out["mtls_endpoint_aliases"]["token_endpoint"],
            "https://mtls.example.com/realms/realm%20a/protocol/openid-connect/token"
        );
    }
}
