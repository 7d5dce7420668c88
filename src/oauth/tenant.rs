//! Tenants of a multi-tenant authorization server (Keycloak realms, WSO2 tenant domains, an issuer per
//! prefix): the name a request's path gives, and the scope a registration belongs to.
//!
//! Client ids are unique per tenant only, so a registration is found by (tenant, client_id): a registration of
//! tenant A never authenticates a request to tenant B's endpoint, and one without a tenant serves only the
//! literal endpoints.

use std::borrow::Cow;
use std::fmt;

/// A tenant's name as the path carries it, percent-decoded once: non-empty, never `.` or `..`, and without a
/// character that could make it another path or another name in a server's routing (`/`, `\`, `;`, `%`, `?`,
/// `#`) or in a header or a log line (control characters). Compared exactly, case-sensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(String);

/// Why a string is not a tenant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantError {
    Empty,
    DotSegment,
    /// `/`, `\`, `;`, `%`, `?` or `#`.
    PathCharacter(char),
    ControlCharacter,
    /// Its percent-encoding is not valid, or does not decode to UTF-8.
    BadEncoding,
}

impl fmt::Display for TenantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantError::Empty => write!(f, "the tenant is empty"),
            TenantError::DotSegment => write!(f, "the tenant is `.` or `..`"),
            TenantError::PathCharacter(c) => write!(f, "the tenant holds `{c}`"),
            TenantError::ControlCharacter => write!(f, "the tenant holds a control character"),
            TenantError::BadEncoding => write!(f, "the tenant's percent-encoding is not valid UTF-8"),
        }
    }
}

impl std::error::Error for TenantError {}

impl Tenant {
    /// A tenant name as configured or registered (not percent-encoded).
    pub fn new(name: &str) -> Result<Tenant, TenantError> {
        if name.is_empty() {
            return Err(TenantError::Empty);
        }
        if name == "." || name == ".." {
            return Err(TenantError::DotSegment);
        }
        if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\' | ';' | '%' | '?' | '#')) {
            return Err(TenantError::PathCharacter(c));
        }
        if name.chars().any(char::is_control) {
            return Err(TenantError::ControlCharacter);
        }
        Ok(Tenant(name.to_string()))
    }

    /// The tenant a path segment names: percent-decoded once, then as [`Tenant::new`].
    pub fn from_segment(segment: &str) -> Result<Tenant, TenantError> {
        let decoded = percent_decode(segment.as_bytes()).ok_or(TenantError::BadEncoding)?;
        let decoded = String::from_utf8(decoded).map_err(|_| TenantError::BadEncoding)?;
        Tenant::new(&decoded)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every `%XX` decoded once; `None` if a `%` is not followed by two hex digits.
fn percent_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let (&h, tail) = tail.split_first()?;
            let (&l, tail) = tail.split_first()?;
            out.push(crate::hex::digit(h)? << 4 | crate::hex::digit(l)?);
            rest = tail;
        } else {
            out.push(b);
            rest = tail;
        }
    }
    Some(out)
}

/// Separates the tenant from the client id in a registration's lookup key. A client id never holds it (ids
/// with control characters are refused), nor does a tenant.
const SEPARATOR: char = '\u{1f}';

/// The key a registration is stored and found under: the client id alone without a tenant, else
/// `tenant` U+001F `client_id`.
pub fn scoped_key<'a>(tenant: Option<&Tenant>, client_id: &'a str) -> Cow<'a, str> {
    match tenant {
        None => Cow::Borrowed(client_id),
        Some(t) => {
            let mut key = String::with_capacity(t.0.len() + 1 + client_id.len());
            key.push_str(&t.0);
            key.push(SEPARATOR);
            key.push_str(client_id);
            Cow::Owned(key)
        }
    }
}

/// A key made by [`scoped_key`], read back as (tenant, client id), for naming a registration in a log line.
pub fn describe_key(key: &str) -> String {
    match key.split_once(SEPARATOR) {
        Some((tenant, id)) => format!("{id} (tenant {tenant})"),
        None => key.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_a_non_empty_name_that_is_not_a_dot_segment() {
        assert_eq!(Tenant::new(""), Err(TenantError::Empty));
        assert_eq!(Tenant::new("."), Err(TenantError::DotSegment));
        assert_eq!(Tenant::new(".."), Err(TenantError::DotSegment));
        assert_eq!(Tenant::new("...").map(|t| t.to_string()), Ok("...".to_string()));
        assert_eq!(Tenant::new("acme.com").map(|t| t.to_string()), Ok("acme.com".to_string()));
    }

    #[test]
    fn a_tenant_holds_no_character_that_routes_elsewhere() {
        for (name, c) in [("a/b", '/'), ("a\\b", '\\'), ("a;x", ';'), ("a%2e", '%'), ("a?b", '?'), ("a#b", '#')] {
            assert_eq!(Tenant::new(name), Err(TenantError::PathCharacter(c)), "{name}");
        }
        assert_eq!(Tenant::new("a\nb"), Err(TenantError::ControlCharacter));
    }

    #[test]
    fn a_path_segment_is_percent_decoded_once() {
        assert_eq!(Tenant::from_segment("realm%20a").map(|t| t.to_string()), Ok("realm a".to_string()));
        assert_eq!(Tenant::from_segment("%2e%2e"), Err(TenantError::DotSegment));
        assert_eq!(Tenant::from_segment("%2E"), Err(TenantError::DotSegment));
        assert_eq!(Tenant::from_segment("a%2Fb"), Err(TenantError::PathCharacter('/')));
        assert_eq!(Tenant::from_segment("a%5cb"), Err(TenantError::PathCharacter('\\')));
        // Decoded once: what remains encoded stays a `%`, which no tenant holds.
        assert_eq!(Tenant::from_segment("%252e%252e"), Err(TenantError::PathCharacter('%')));
        assert_eq!(Tenant::from_segment("a%zz"), Err(TenantError::BadEncoding));
        assert_eq!(Tenant::from_segment("a%"), Err(TenantError::BadEncoding));
        assert_eq!(Tenant::from_segment("%ff"), Err(TenantError::BadEncoding));
        assert_eq!(Tenant::from_segment("%00"), Err(TenantError::ControlCharacter));
    }

    #[test]
    fn tenants_compare_exactly() {
        assert_ne!(Tenant::new("Acme"), Tenant::new("acme"));
    }

    #[test]
    fn the_same_client_id_in_two_tenants_is_two_keys() {
        let (a, b) = (Tenant::new("a").ok(), Tenant::new("b").ok());
        assert_ne!(scoped_key(a.as_ref(), "payments"), scoped_key(b.as_ref(), "payments"));
        assert_ne!(scoped_key(a.as_ref(), "payments"), scoped_key(None, "payments"));
        assert_eq!(scoped_key(None, "payments"), "payments");
        assert_eq!(describe_key(&scoped_key(a.as_ref(), "payments")), "payments (tenant a)");
    }
}
