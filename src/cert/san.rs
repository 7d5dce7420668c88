//! Registered subjectAltName values (RFC 8705 §2.1.2) and how they match a certificate's SANs.

use std::fmt;
use std::net::IpAddr;

use crate::cert::Sans;

/// The four SAN kinds a `tls_client_auth` client may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SanKind {
    Dns,
    Uri,
    Ip,
    Email,
}

impl SanKind {
    /// The GeneralName choice in RFC 5280.
    pub fn name(self) -> &'static str {
        match self {
            SanKind::Dns => "dNSName",
            SanKind::Uri => "uniformResourceIdentifier",
            SanKind::Ip => "iPAddress",
            SanKind::Email => "rfc822Name",
        }
    }

    /// The RFC 8705 client metadata field that registers this kind.
    pub fn metadata_field(self) -> &'static str {
        match self {
            SanKind::Dns => "tls_client_auth_san_dns",
            SanKind::Uri => "tls_client_auth_san_uri",
            SanKind::Ip => "tls_client_auth_san_ip",
            SanKind::Email => "tls_client_auth_san_email",
        }
    }
}

impl fmt::Display for SanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A registered SAN value, ready to be matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanRule {
    Dns(String),
    Uri(String),
    Ip(IpAddr),
    Email(String),
}

/// Why a registered SAN value is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanError {
    /// The registered value is the empty string.
    Empty(SanKind),
    /// `tls_client_auth_san_ip` is neither an IPv4 dotted quad nor an IPv6 address.
    InvalidIp(String),
    /// `tls_client_auth_san_email` has no `@` separating a local part from a domain.
    InvalidEmail(String),
}

/// Quotes a registered value for an error message: escaped, on one line, and bounded in length.
fn quoted(s: &str) -> String {
    const MAX: usize = 100;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

impl fmt::Display for SanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SanError::Empty(kind) => write!(f, "{} is empty", kind.metadata_field()),
            SanError::InvalidIp(s) => {
                write!(f, "tls_client_auth_san_ip \"{}\" is not an IPv4 or IPv6 address", quoted(s))
            }
            SanError::InvalidEmail(s) => {
                write!(f, "tls_client_auth_san_email \"{}\" is not of the form local-part@domain", quoted(s))
            }
        }
    }
}

impl std::error::Error for SanError {}

/// rfc822Name comparison (RFC 5280 §7.5): the local part exactly, the domain ASCII case-insensitively.
fn email_matches(registered: &str, presented: &str) -> bool {
    match (registered.rsplit_once('@'), presented.rsplit_once('@')) {
        (Some((reg_local, reg_domain)), Some((local, domain))) => {
            reg_local == local && reg_domain.eq_ignore_ascii_case(domain)
        }
        _ => false,
    }
}

impl SanRule {
    /// Reads the value registered under `kind.metadata_field()`. The value is taken as is (no trimming).
    pub fn parse(kind: SanKind, registered: &str) -> Result<SanRule, SanError> {
        if registered.is_empty() {
            return Err(SanError::Empty(kind));
        }
        match kind {
            SanKind::Dns => Ok(SanRule::Dns(registered.to_string())),
            SanKind::Uri => Ok(SanRule::Uri(registered.to_string())),
            SanKind::Ip => {
                registered.parse::<IpAddr>().map(SanRule::Ip).map_err(|_| SanError::InvalidIp(registered.to_string()))
            }
            SanKind::Email => match registered.rsplit_once('@') {
                Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
                    Ok(SanRule::Email(registered.to_string()))
                }
                _ => Err(SanError::InvalidEmail(registered.to_string())),
            },
        }
    }

    pub fn kind(&self) -> SanKind {
        match self {
            SanRule::Dns(_) => SanKind::Dns,
            SanRule::Uri(_) => SanKind::Uri,
            SanRule::Ip(_) => SanKind::Ip,
            SanRule::Email(_) => SanKind::Email,
        }
    }

    /// True if any SAN of the rule's kind matches: dNSName ASCII case-insensitively without wildcard
    /// expansion, URI exactly, iPAddress in binary (an IPv4-mapped IPv6 address is not the IPv4
    /// address), rfc822Name with an exact local part and a case-insensitive domain.
    pub fn matches(&self, sans: &Sans) -> bool {
        match self {
            SanRule::Dns(reg) => sans.dns.iter().any(|d| d.eq_ignore_ascii_case(reg)),
            SanRule::Uri(reg) => sans.uri.iter().any(|u| u == reg),
            SanRule::Ip(reg) => sans.ip.iter().any(|ip| ip == reg),
            SanRule::Email(reg) => sans.email.iter().any(|e| email_matches(reg, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: SanKind, s: &str) -> SanRule {
        SanRule::parse(kind, s).unwrap()
    }

    fn dns(names: &[&str]) -> Sans {
        Sans { dns: names.iter().map(|s| s.to_string()).collect(), ..Sans::default() }
    }

    fn ips(addrs: &[&str]) -> Sans {
        Sans { ip: addrs.iter().map(|s| s.parse().unwrap()).collect(), ..Sans::default() }
    }

    fn emails(addrs: &[&str]) -> Sans {
        Sans { email: addrs.iter().map(|s| s.to_string()).collect(), ..Sans::default() }
    }

    #[test]
    fn kinds_name_their_general_name_and_metadata_field() {
        assert_eq!(SanKind::Dns.name(), "dNSName");
        assert_eq!(SanKind::Uri.name(), "uniformResourceIdentifier");
        assert_eq!(SanKind::Ip.name(), "iPAddress");
        assert_eq!(SanKind::Email.name(), "rfc822Name");
        assert_eq!(SanKind::Dns.metadata_field(), "tls_client_auth_san_dns");
        assert_eq!(SanKind::Uri.metadata_field(), "tls_client_auth_san_uri");
        assert_eq!(SanKind::Ip.metadata_field(), "tls_client_auth_san_ip");
        assert_eq!(SanKind::Email.metadata_field(), "tls_client_auth_san_email");
    }

    #[test]
    fn rule_reports_its_kind() {
        assert_eq!(rule(SanKind::Dns, "a.example").kind(), SanKind::Dns);
        assert_eq!(rule(SanKind::Uri, "urn:x").kind(), SanKind::Uri);
        assert_eq!(rule(SanKind::Ip, "10.0.0.1").kind(), SanKind::Ip);
        assert_eq!(rule(SanKind::Email, "a@b").kind(), SanKind::Email);
    }

    #[test]
    fn dns_matches_ascii_case_insensitively() {
        assert!(rule(SanKind::Dns, "Client.Example.COM").matches(&dns(&["client.example.com"])));
        assert!(!rule(SanKind::Dns, "client.example.co").matches(&dns(&["client.example.com"])));
        assert!(!rule(SanKind::Dns, "client.example.com.").matches(&dns(&["client.example.com"])));
    }

    #[test]
    fn dns_wildcard_in_certificate_is_not_expanded() {
        assert!(!rule(SanKind::Dns, "a.example.com").matches(&dns(&["*.example.com"])));
    }

    #[test]
    fn dns_registered_wildcard_matches_only_literally() {
        assert!(rule(SanKind::Dns, "*.example.com").matches(&dns(&["*.example.com"])));
        assert!(!rule(SanKind::Dns, "*.example.com").matches(&dns(&["a.example.com"])));
    }

    #[test]
    fn any_san_of_the_kind_may_match_not_only_the_first() {
        let sans = dns(&["first.example.com", "client.example.com"]);
        assert!(rule(SanKind::Dns, "client.example.com").matches(&sans));
    }

    #[test]
    fn uri_matches_by_exact_string_comparison() {
        let sans = Sans { uri: vec!["spiffe://example.org/client-one".into()], ..Sans::default() };
        assert!(rule(SanKind::Uri, "spiffe://example.org/client-one").matches(&sans));
        assert!(!rule(SanKind::Uri, "SPIFFE://example.org/client-one").matches(&sans));
        assert!(!rule(SanKind::Uri, "spiffe://example.org/client-one/").matches(&sans));
        assert!(!rule(SanKind::Uri, "spiffe://example.org/Client-One").matches(&sans));
    }

    #[test]
    fn ipv6_is_compared_in_binary() {
        assert!(rule(SanKind::Ip, "::1").matches(&ips(&["0:0:0:0:0:0:0:1"])));
        assert!(rule(SanKind::Ip, "0:0:0:0:0:0:0:1").matches(&ips(&["::1"])));
        assert!(rule(SanKind::Ip, "2001:DB8::A").matches(&ips(&["2001:db8:0:0::a"])));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_not_the_ipv4_address() {
        assert!(!rule(SanKind::Ip, "::ffff:10.1.2.3").matches(&ips(&["10.1.2.3"])));
        assert!(!rule(SanKind::Ip, "10.1.2.3").matches(&ips(&["::ffff:10.1.2.3"])));
    }

    #[test]
    fn ipv4_must_be_equal() {
        assert!(rule(SanKind::Ip, "10.1.2.3").matches(&ips(&["10.1.2.30", "10.1.2.3"])));
        assert!(!rule(SanKind::Ip, "10.1.2.3").matches(&ips(&["10.1.2.30"])));
    }

    #[test]
    fn invalid_ip_is_rejected_at_parse() {
        for s in ["10.1.2", "10.1.2.256", "010.1.2.3", "::g", " 10.1.2.3", "example.com"] {
            assert_eq!(SanRule::parse(SanKind::Ip, s), Err(SanError::InvalidIp(s.to_string())), "{s}");
        }
    }

    #[test]
    fn email_domain_is_case_insensitive_local_part_is_not() {
        let sans = emails(&["Ops@EXAMPLE.COM"]);
        assert!(rule(SanKind::Email, "Ops@example.com").matches(&sans));
        assert!(!rule(SanKind::Email, "ops@example.com").matches(&sans));
    }

    #[test]
    fn email_without_at_sign_is_rejected_at_parse() {
        for s in ["ops", "@example.com", "ops@"] {
            assert_eq!(SanRule::parse(SanKind::Email, s), Err(SanError::InvalidEmail(s.to_string())), "{s}");
        }
    }

    #[test]
    fn san_of_another_kind_never_matches() {
        let sans = Sans {
            dns: vec!["spiffe://example.org/a".into(), "10.1.2.3".into(), "a@example.com".into()],
            uri: vec!["client.example.com".into()],
            email: vec!["client.example.com".into()],
            ..Sans::default()
        };
        assert!(!rule(SanKind::Uri, "spiffe://example.org/a").matches(&sans));
        assert!(!rule(SanKind::Ip, "10.1.2.3").matches(&sans));
        assert!(!rule(SanKind::Email, "a@example.com").matches(&sans));
        assert!(!rule(SanKind::Dns, "client.example.com").matches(&Sans { dns: vec![], ..sans }));
    }

    #[test]
    fn empty_registered_value_is_rejected() {
        for kind in [SanKind::Dns, SanKind::Uri, SanKind::Ip, SanKind::Email] {
            assert_eq!(SanRule::parse(kind, ""), Err(SanError::Empty(kind)));
        }
        assert_eq!(SanError::Empty(SanKind::Dns).to_string(), "tls_client_auth_san_dns is empty");
    }

    #[test]
    fn error_messages_are_one_line() {
        let e = SanRule::parse(SanKind::Ip, "10.0.0.1\r\nX: y").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg}");
    }

    #[test]
    fn matches_the_sans_of_a_decoded_certificate() {
        let sans = Sans {
            dns: vec!["first.example.com".into(), "client.example.com".into()],
            uri: vec!["spiffe://example.org/client-one".into()],
            ip: vec!["10.1.2.3".parse().unwrap(), "::1".parse().unwrap()],
            email: vec!["Ops@Example.com".into()],
        };
        assert!(rule(SanKind::Dns, "client.example.com").matches(&sans));
        assert!(rule(SanKind::Uri, "spiffe://example.org/client-one").matches(&sans));
        assert!(rule(SanKind::Ip, "0:0:0:0:0:0:0:1").matches(&sans));
        assert!(rule(SanKind::Email, "Ops@example.COM").matches(&sans));
    }
}
