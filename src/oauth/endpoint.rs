//! The endpoints the filter enforces: literal paths, and templates whose one `{tenant}` segment names the
//! request's tenant (`/realms/{tenant}/protocol/openid-connect/token`, `/t/{tenant}/oauth2/token`).
//!
//! The literal segments match the widest reading of the path (`path::key`: case, `;parameters`, escapes,
//! dot segments, a trailing `/`), as literal endpoints always have: a path the AS may route to an endpoint
//! must never skip enforcement. The tenant segment is read from the path as received (after Envoy's
//! normalization), percent-decoded once, and compared exactly. A path that reaches a template but whose tenant
//! segment cannot be read as one tenant (empty, `.`, `..`, `;`, an encoded `/`, several segments) is refused,
//! never let through unenforced.

use crate::oauth::path;
use crate::oauth::tenant::{Tenant, TenantError};
use std::fmt;

/// The placeholder a template's tenant segment holds.
pub const TENANT: &str = "{tenant}";

/// One configured endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// Compared as the widest reading of the whole path.
    Literal(String),
    /// The segments before and after the tenant, each in the widest reading.
    Template { before: Vec<String>, after: Vec<String> },
}

/// The configured endpoints, ready for matching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoints(Vec<Endpoint>);

/// What a request's path is to the endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// A literal endpoint: registrations without a tenant serve it.
    Literal,
    /// A template's endpoint in this tenant.
    Tenant(Tenant),
    /// It reaches a template, but its tenant segment is not one tenant.
    BadTenant(TenantError),
}

/// Why an `endpoints` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    NotAbsolutePath,
    /// A `{`, `}` or `*` other than one whole `{tenant}` segment.
    Pattern,
    TwoPlaceholders,
    /// It can match the same path as the entry at this index.
    Overlaps(usize),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::NotAbsolutePath => write!(f, "must be an absolute path without query or fragment"),
            EndpointError::Pattern => write!(
                f,
                "only `{TENANT}`, as one whole path segment, may be a placeholder (no `*`, no other `{{name}}`, no \
                 placeholder inside a segment)"
            ),
            EndpointError::TwoPlaceholders => write!(f, "may hold `{TENANT}` once only"),
            EndpointError::Overlaps(i) => write!(f, "can match the same request paths as endpoints[{i}]"),
        }
    }
}

impl std::error::Error for EndpointError {}

/// The form of a path that literal matching compares: `path::key` without a trailing `/`.
pub fn literal_key(path: &str) -> String {
    let mut key = path::key(path);
    if key.len() > 1 && key.ends_with('/') {
        key.pop();
    }
    key
}

/// The segments of a key (`/a/b` is `a`, `b`; `/` has none).
fn segments(key: &str) -> Vec<&str> {
    key.split('/').filter(|s| !s.is_empty()).collect()
}

fn owned(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| (*s).to_string()).collect()
}

impl Endpoint {
    fn parse(entry: &str) -> Result<Endpoint, EndpointError> {
        if !entry.starts_with('/') || entry.contains(['?', '#']) || entry.chars().any(char::is_whitespace) {
            return Err(EndpointError::NotAbsolutePath);
        }
        let raw: Vec<&str> = entry.split('/').skip(1).collect();
        let placeholders = raw.iter().filter(|s| **s == TENANT).count();
        if raw.iter().any(|s| *s != TENANT && s.contains(['{', '}', '*'])) {
            return Err(EndpointError::Pattern);
        }
        match placeholders {
            0 => Ok(Endpoint::Literal(literal_key(entry))),
            1 => {
                let at = raw.iter().position(|s| *s == TENANT).unwrap_or(0);
                let (before, after) = raw.split_at(at);
                let after = after.get(1..).unwrap_or_default();
                let before = literal_key(&format!("/{}", before.join("/")));
                let after = literal_key(&format!("/{}", after.join("/")));
                Ok(Endpoint::Template { before: owned(&segments(&before)), after: owned(&segments(&after)) })
            }
            _ => Err(EndpointError::TwoPlaceholders),
        }
    }

    /// The segments a path must have, `None` standing for the tenant.
    fn shape(&self) -> Vec<Option<&str>> {
        match self {
            Endpoint::Literal(key) => segments(key).into_iter().map(Some).collect(),
            Endpoint::Template { before, after } => before
                .iter()
                .map(|s| Some(s.as_str()))
                .chain(std::iter::once(None))
                .chain(after.iter().map(|s| Some(s.as_str())))
                .collect(),
        }
    }

    /// Whether some path matches both (the tenant standing for any one segment).
    fn overlaps(&self, other: &Endpoint) -> bool {
        let (a, b) = (self.shape(), other.shape());
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.is_none() || y.is_none() || x == y)
    }
}

impl Endpoints {
    /// Parses the `endpoints` entries; an error names the index of the entry at fault. Two entries one of
    /// which is a template may not match the same path: which tenant it would be in is then ambiguous.
    pub fn parse(entries: &[String]) -> Result<Endpoints, (usize, EndpointError)> {
        let mut parsed: Vec<Endpoint> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let endpoint = Endpoint::parse(entry).map_err(|e| (i, e))?;
            let templated = matches!(endpoint, Endpoint::Template { .. });
            if let Some(j) = parsed
                .iter()
                .position(|p| (templated || matches!(p, Endpoint::Template { .. })) && endpoint.overlaps(p))
            {
                return Err((i, EndpointError::Overlaps(j)));
            }
            parsed.push(endpoint);
        }
        Ok(Endpoints(parsed))
    }

    /// Whether any entry is a template.
    pub fn has_templates(&self) -> bool {
        self.0.iter().any(|e| matches!(e, Endpoint::Template { .. }))
    }

    /// Whether any entry is a literal path.
    pub fn has_literals(&self) -> bool {
        self.0.iter().any(|e| matches!(e, Endpoint::Literal(_)))
    }

    /// What `path` (as received, query included) is to the endpoints; `None`: not an endpoint.
    pub fn find(&self, path: &str) -> Option<Match> {
        let key = literal_key(path);
        let mut bad = None;
        let mut wanted: Option<Vec<&str>> = None;
        for endpoint in &self.0 {
            match endpoint {
                Endpoint::Literal(literal) if *literal == key => return Some(Match::Literal),
                Endpoint::Literal(_) => {}
                Endpoint::Template { before, after } => {
                    let got = wanted.get_or_insert_with(|| segments(&key));
                    match template_match(got, before, after) {
                        Some(true) => return Some(tenant_of(path, before.len(), got.len())),
                        // Its tenant spans several segments: refused unless another entry matches exactly.
                        Some(false) => bad = Some(Match::BadTenant(TenantError::NotOneSegment)),
                        None => {}
                    }
                }
            }
        }
        if bad.is_none() && wanted.is_some() {
            bad = self.reaches_a_template(path);
        }
        bad
    }

    /// Whether `path` reaches a template once its empty and dot segments are kept in place (the widest reading
    /// drops them): `/t//oauth2/token`, `/t/%2e/oauth2/token`. Such a path is refused, not let through.
    fn reaches_a_template(&self, path: &str) -> Option<Match> {
        let raw = path.split(['?', '#']).next().unwrap_or(path);
        let raw = raw.strip_prefix('/').unwrap_or(raw);
        let read: Vec<String> = raw.split('/').map(|s| segments(&path::key(&format!("/{s}"))).join("/")).collect();
        let read: Vec<&str> = read.iter().map(String::as_str).collect();
        self.0.iter().find_map(|endpoint| match endpoint {
            Endpoint::Template { before, after } => {
                template_match(&read, before, after).map(|_| Match::BadTenant(TenantError::NotOneSegment))
            }
            Endpoint::Literal(_) => None,
        })
    }
}

/// `Some(true)`: the key's segments are `before`, one tenant segment, `after`; `Some(false)`: they are
/// `before`, more than one segment, `after`; `None`: neither.
fn template_match(got: &[&str], before: &[String], after: &[String]) -> Option<bool> {
    let fixed = before.len() + after.len();
    if got.len() <= fixed {
        return None;
    }
    let starts = got.iter().zip(before).all(|(g, b)| *g == b);
    let ends = got.iter().rev().zip(after.iter().rev()).all(|(g, a)| *g == a);
    (starts && ends).then_some(got.len() == fixed + 1)
}

/// The tenant of a path that matched a template with `before` segments ahead of the tenant and `count`
/// segments in all. It is read from the path as received, so its case and encoding are the client's; that
/// path's segments must be the same segments as the widest reading's, one for one (no dot segment, no empty
/// segment but a trailing one, no encoded `/`), or which segment is the tenant depends on the server.
fn tenant_of(path: &str, before: usize, count: usize) -> Match {
    let raw = path.split(['?', '#']).next().unwrap_or(path);
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    let raw = raw.strip_suffix('/').unwrap_or(raw);
    let one_for_one = raw.split('/').count() == count && raw.split('/').all(path::is_one_segment);
    if !one_for_one {
        return Match::BadTenant(TenantError::NotOneSegment);
    }
    match raw.split('/').nth(before).map(Tenant::from_segment) {
        Some(Ok(tenant)) => Match::Tenant(tenant),
        Some(Err(e)) => Match::BadTenant(e),
        None => Match::BadTenant(TenantError::Empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(entries: &[&str]) -> Endpoints {
        Endpoints::parse(&entries.iter().map(|e| (*e).to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn refused(entries: &[&str]) -> (usize, EndpointError) {
        Endpoints::parse(&entries.iter().map(|e| (*e).to_string()).collect::<Vec<_>>()).unwrap_err()
    }

    fn tenant(name: &str) -> Option<Match> {
        Some(Match::Tenant(Tenant::new(name).unwrap()))
    }

    const KEYCLOAK: &str = "/realms/{tenant}/protocol/openid-connect/token";
    const WSO2: &str = "/t/{tenant}/oauth2/token";

    #[test]
    fn the_tenant_segment_of_a_template_names_the_tenant() {
        let e = endpoints(&[KEYCLOAK]);
        assert_eq!(e.find("/realms/realma/protocol/openid-connect/token"), tenant("realma"));
        assert_eq!(e.find("/realms/realmb/protocol/openid-connect/token?x=1"), tenant("realmb"));
    }

    #[test]
    fn a_literal_endpoint_has_no_tenant() {
        let e = endpoints(&["/oauth2/token", WSO2]);
        assert_eq!(e.find("/oauth2/token"), Some(Match::Literal));
        assert_eq!(e.find("/t/acme.com/oauth2/token"), tenant("acme.com"));
    }

    #[test]
    fn the_rest_of_the_path_matches_as_literal_endpoints_do() {
        let e = endpoints(&[WSO2]);
        // Case, `;parameters` and a trailing `/` of the literal segments, as the AS may route them.
        assert_eq!(e.find("/T/acme/OAuth2/Token"), tenant("acme"));
        assert_eq!(e.find("/t/acme/oauth2;jsessionid=1/token"), tenant("acme"));
        assert_eq!(e.find("/t/acme/oauth2/token/"), tenant("acme"));
        assert_eq!(e.find("/t/acme/oauth2/tokens"), None);
        assert_eq!(e.find("/t/acme/oauth2/token/x"), None);
        assert_eq!(e.find("/oauth2/token"), None);
    }

    #[test]
    fn the_tenant_keeps_its_case() {
        assert_eq!(endpoints(&[WSO2]).find("/t/Acme/oauth2/token"), tenant("Acme"));
    }

    #[test]
    fn the_tenant_is_percent_decoded_once() {
        let e = endpoints(&[KEYCLOAK]);
        assert_eq!(e.find("/realms/realm%20a/protocol/openid-connect/token"), tenant("realm a"));
        assert_eq!(e.find("/realms/r%41/protocol/openid-connect/token"), tenant("rA"));
    }

    #[test]
    fn a_tenant_segment_that_is_not_one_tenant_is_refused() {
        let e = endpoints(&[WSO2]);
        for path in [
            "/t//oauth2/token",
            "/t/./oauth2/token",
            "/t/%2e/oauth2/token",
            "/t/a%2Fb/oauth2/token",
            "/t/a%5Cb/oauth2/token",
            "/t/acme;x/oauth2/token",
            "/t/%252e%252e/oauth2/token",
            "/t/acme/extra/oauth2/token",
            "/t/a/../b/oauth2/token",
        ] {
            assert!(matches!(e.find(path), Some(Match::BadTenant(_))), "{path}: {:?}", e.find(path));
        }
    }

    #[test]
    fn a_dot_dot_tenant_leaves_the_template() {
        // `/t/../oauth2/token` is `/oauth2/token` to every server: the super-tenant endpoint, if listed.
        let e = endpoints(&["/oauth2/token", WSO2]);
        assert_eq!(e.find("/t/../oauth2/token"), Some(Match::Literal));
        assert_eq!(e.find("/t/%2e%2e/oauth2/token"), Some(Match::Literal));
        assert!(matches!(endpoints(&[WSO2]).find("/t/%2e%2e/oauth2/token"), Some(Match::BadTenant(_))));
    }

    #[test]
    fn a_longer_template_that_matches_exactly_wins_over_a_bad_tenant() {
        let e = endpoints(&[WSO2, "/t/{tenant}/x/oauth2/token"]);
        assert_eq!(e.find("/t/acme/x/oauth2/token"), tenant("acme"));
    }

    proptest::proptest! {
        /// `path::is_one_segment` agrees with the widest reading, except that a segment holding a separator (`\\`,
        /// `%2F`, `%5C`) is never one, even where the reading would drop an empty part of it.
        #[test]
        fn one_segment_is_what_the_widest_reading_makes_of_it(raw in "([a-zA-Z.;=~_-]|%2[eEfF]|%5[cC]|%41|%zz|\\\\){0,6}") {
            let key = path::key(&format!("/{raw}"));
            let one = key.len() > 1 && !key.get(1..).unwrap_or_default().contains('/');
            let lower = raw.to_ascii_lowercase();
            let separator = lower.contains('\\') || lower.contains("%2f") || lower.contains("%5c");
            proptest::prop_assert_eq!(path::is_one_segment(&raw), one && !separator, "{} reads {}", raw, key);
        }
    }

    #[test]
    fn only_a_whole_tenant_segment_is_a_placeholder() {
        for entry in ["/t/*/oauth2/token", "/t/{realm}/token", "/t/x{tenant}/token", "/t/{tenant}x/token", "/t/{/token"]
        {
            assert_eq!(refused(&[entry]), (0, EndpointError::Pattern), "{entry}");
        }
        assert_eq!(refused(&["/{tenant}/{tenant}/token"]), (0, EndpointError::TwoPlaceholders));
        assert_eq!(refused(&["/token", "token"]), (1, EndpointError::NotAbsolutePath));
    }

    #[test]
    fn entries_that_match_the_same_path_in_different_tenants_are_refused() {
        assert_eq!(refused(&[WSO2, "/{tenant}/acme/oauth2/token"]), (1, EndpointError::Overlaps(0)));
        assert_eq!(refused(&["/t/acme/oauth2/token", WSO2]), (1, EndpointError::Overlaps(0)));
        assert_eq!(refused(&[WSO2, "/T/{tenant}/OAUTH2/token/"]), (1, EndpointError::Overlaps(0)));
        // Literal duplicates stay harmless; templates of other shapes do not overlap.
        endpoints(&["/token", "/token", WSO2, "/t/{tenant}/oauth2/revoke", "/{tenant}/token"]);
    }
}
