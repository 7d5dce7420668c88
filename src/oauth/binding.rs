//! Certificate-bound access tokens at a resource server (RFC 8705 §3): the token's `cnf` against the certificate.

use crate::oauth::verdict::Rejection;

/// What the resource check knows about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence<'a> {
    /// `jwt_authn` left a verified payload in dynamic metadata (the token's signature was checked).
    pub verified_payload: bool,
    /// The payload's `cnf."x5t#S256"`, if it has one.
    pub cnf_x5t_s256: Option<&'a str>,
    /// The `x5t#S256` of the certificate presented on this request, if any.
    pub presented_x5t_s256: Option<&'a str>,
}

/// Whether a request may reach a protected resource. Without a verified payload the answer is no: a chain
/// that lost its `jwt_authn` filter fails closed.
pub fn check(evidence: &Evidence<'_>, require_binding: bool) -> Result<(), Rejection> {
    if !evidence.verified_payload {
        return Err(Rejection::invalid_token(
            "no verified access token: jwt_authn did not verify a token for this path",
        ));
    }
    let Some(bound) = evidence.cnf_x5t_s256 else {
        return if require_binding {
            Err(Rejection::invalid_token("the access token is not certificate-bound (no cnf.x5t#S256)"))
        } else {
            Ok(())
        };
    };
    let Some(presented) = evidence.presented_x5t_s256 else {
        return Err(Rejection::invalid_token(
            "no client certificate was presented, and the access token is certificate-bound",
        ));
    };
    if constant_time_eq(bound.as_bytes(), presented.as_bytes()) {
        Ok(())
    } else {
        Err(Rejection::invalid_token("the access token is bound to another certificate"))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence<'a>(cnf: Option<&'a str>, presented: Option<&'a str>) -> Evidence<'a> {
        Evidence { verified_payload: true, cnf_x5t_s256: cnf, presented_x5t_s256: presented }
    }

    #[test]
    fn a_token_bound_to_the_presented_certificate_is_accepted() {
        assert_eq!(check(&evidence(Some("abc"), Some("abc")), true), Ok(()));
    }

    #[test]
    fn a_token_bound_to_another_certificate_is_invalid_token() {
        let e = check(&evidence(Some("abc"), Some("abd")), true).unwrap_err();
        assert_eq!((e.status, e.error), (401, "invalid_token"));
        assert!(e.description.contains("another certificate"));
    }

    #[test]
    fn a_bound_token_without_a_certificate_is_invalid_token() {
        let e = check(&evidence(Some("abc"), None), false).unwrap_err();
        assert!(e.description.contains("no client certificate"));
    }

    #[test]
    fn an_unbound_token_is_refused_when_binding_is_required_and_allowed_otherwise() {
        assert!(check(&evidence(None, Some("abc")), true).unwrap_err().description.contains("not certificate-bound"));
        assert_eq!(check(&evidence(None, None), false), Ok(()));
    }

    #[test]
    fn without_a_verified_payload_the_resource_fails_closed() {
        let e = Evidence { verified_payload: false, cnf_x5t_s256: Some("abc"), presented_x5t_s256: Some("abc") };
        assert!(check(&e, false).unwrap_err().description.contains("no verified access token"));
    }

    #[test]
    fn thumbprints_are_compared_exactly() {
        assert!(check(&evidence(Some("ABC"), Some("abc")), true).is_err());
        assert!(check(&evidence(Some("abc"), Some("abc=")), true).is_err());
    }
}
