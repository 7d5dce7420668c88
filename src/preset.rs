//! Presets for the authorization servers users run: `"preset": "keycloak" | "wso2" | "oidc-provider"` fills
//! `endpoints` with every client-authenticating endpoint of that server (with its tenant templates),
//! `discovery.paths` with its metadata documents, and `forward_certificate` with a header and format that
//! server can read. A key the configuration sets itself is never replaced.
//!
//! Sources (docs/authorization-servers.md cites them in full): Keycloak's OIDC endpoints under
//! `/realms/{realm}/protocol/openid-connect/` as its discovery document lists them (token, `token/introspect`,
//! `revoke`, `ext/par/request`, `auth/device`, `ext/ciba/auth`); WSO2 Identity Server's `/oauth2/` endpoints
//! (token, introspect, revoke, par, device_authorize, ciba), the super tenant at the root and every other
//! tenant under `/t/{tenant-domain}`; node-oidc-provider's default `routes` (v9: `/token`,
//! `/token/introspection`, `/token/revocation`, `/request`, `/device/auth`, `/backchannel`).

use serde_json::{json, Map, Value};

/// A server the filter knows the endpoints of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Keycloak,
    Wso2,
    OidcProvider,
}

/// The presets by the name the configuration uses.
pub const PRESETS: [(&str, Preset); 3] =
    [("keycloak", Preset::Keycloak), ("wso2", Preset::Wso2), ("oidc-provider", Preset::OidcProvider)];

const KEYCLOAK_ENDPOINTS: [&str; 6] = [
    "/realms/{tenant}/protocol/openid-connect/token",
    "/realms/{tenant}/protocol/openid-connect/token/introspect",
    "/realms/{tenant}/protocol/openid-connect/revoke",
    "/realms/{tenant}/protocol/openid-connect/ext/par/request",
    "/realms/{tenant}/protocol/openid-connect/auth/device",
    "/realms/{tenant}/protocol/openid-connect/ext/ciba/auth",
];

const KEYCLOAK_DISCOVERY: [&str; 2] =
    ["/realms/{tenant}/.well-known/openid-configuration", "/realms/{tenant}/.well-known/oauth-authorization-server"];

/// WSO2's endpoints, each for the super tenant and under `/t/{tenant}`.
const WSO2_ENDPOINTS: [&str; 6] = [
    "/oauth2/token",
    "/oauth2/introspect",
    "/oauth2/revoke",
    "/oauth2/par",
    "/oauth2/device_authorize",
    "/oauth2/ciba",
];

const WSO2_DISCOVERY: [&str; 2] =
    ["/oauth2/token/.well-known/openid-configuration", "/t/{tenant}/oauth2/token/.well-known/openid-configuration"];

const OIDC_PROVIDER_ENDPOINTS: [&str; 6] =
    ["/token", "/token/introspection", "/token/revocation", "/request", "/device/auth", "/backchannel"];

const OIDC_PROVIDER_DISCOVERY: [&str; 2] =
    ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"];

fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
}

impl Preset {
    pub fn name(self) -> &'static str {
        PRESETS.iter().find(|(_, p)| *p == self).map_or("", |(n, _)| n)
    }

    /// What the preset fills in: `endpoints`, `forward_certificate`, and `discovery.paths` (the latter only
    /// where `discovery` is configured).
    pub fn expansion(self) -> Map<String, Value> {
        let (endpoints, discovery, forward) = match self {
            Preset::Keycloak => (
                strings(KEYCLOAK_ENDPOINTS),
                strings(KEYCLOAK_DISCOVERY),
                // Keycloak's `nginx` certificate lookup provider reads a URL-encoded PEM.
                json!({"header": "ssl-client-cert", "format": "pem-urlencoded"}),
            ),
            Preset::Wso2 => (
                strings(
                    WSO2_ENDPOINTS
                        .iter()
                        .map(|e| (*e).to_string())
                        .chain(WSO2_ENDPOINTS.iter().map(|e| format!("/t/{{tenant}}{e}"))),
                ),
                strings(WSO2_DISCOVERY),
                // WSO2 reads the header named by `[oauth.mutualtls] client_certificate_header`.
                json!({"header": "x-wso2-mtls-cert", "format": "pem"}),
            ),
            Preset::OidcProvider => (
                strings(OIDC_PROVIDER_ENDPOINTS),
                strings(OIDC_PROVIDER_DISCOVERY),
                json!({"header": "client-cert", "format": "rfc9440"}),
            ),
        };
        let mut out = Map::new();
        out.insert("endpoints".into(), endpoints);
        out.insert("discovery".into(), json!({ "paths": discovery }));
        out.insert("forward_certificate".into(), forward);
        out
    }

    /// `document` with what the preset fills in where the document leaves it out (or null).
    pub fn apply(self, document: &mut Map<String, Value>) {
        for (key, value) in self.expansion() {
            match (key.as_str(), document.get_mut(&key)) {
                // `discovery.paths` only where discovery is configured.
                ("discovery", Some(Value::Object(discovery))) if discovery.get("paths").is_none_or(Value::is_null) => {
                    if let Some(paths) = value.get("paths") {
                        discovery.insert("paths".into(), paths.clone());
                    }
                }
                ("discovery", _) => {}
                (_, None | Some(Value::Null)) => {
                    document.insert(key, value);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(preset: Preset, document: Value) -> Value {
        let mut document = document.as_object().unwrap().clone();
        preset.apply(&mut document);
        Value::Object(document)
    }

    #[test]
    fn a_preset_fills_what_the_configuration_leaves_out() {
        let v = applied(Preset::Keycloak, json!({}));
        assert_eq!(v["endpoints"].as_array().unwrap().len(), 6);
        assert_eq!(v["forward_certificate"]["header"], "ssl-client-cert");
        assert_eq!(v.get("discovery"), None, "discovery stays off unless configured");
    }

    #[test]
    fn explicit_keys_override_the_preset() {
        let v = applied(
            Preset::Wso2,
            json!({"endpoints": ["/oauth2/token"], "forward_certificate": {"header": "x-cert"}, "discovery": {"paths": ["/d"]}}),
        );
        assert_eq!(v["endpoints"], json!(["/oauth2/token"]));
        assert_eq!(v["forward_certificate"], json!({"header": "x-cert"}));
        assert_eq!(v["discovery"]["paths"], json!(["/d"]));
    }

    #[test]
    fn discovery_paths_are_filled_where_discovery_is_configured() {
        let v = applied(Preset::Keycloak, json!({"discovery": {"max_bytes": 2048}}));
        assert_eq!(v["discovery"]["paths"], strings(KEYCLOAK_DISCOVERY));
        assert_eq!(v["discovery"]["max_bytes"], 2048);
    }

    #[test]
    fn wso2_covers_the_super_tenant_and_every_other_tenant() {
        let v = applied(Preset::Wso2, json!({}));
        let endpoints = v["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 12);
        for e in WSO2_ENDPOINTS {
            assert!(endpoints.contains(&json!(e)), "{e}");
            assert!(endpoints.contains(&json!(format!("/t/{{tenant}}{e}"))), "{e}");
        }
    }
}
