//! Certificate-bound access tokens at a resource server (RFC 8705 §3): the token's `cnf` against the certificate.

use crate::oauth::verdict::Rejection;

/// What `jwt_authn` left in dynamic metadata about the request's access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// No verified payload: `jwt_authn` did not verify a token for this path.
    Unverified,
    /// A verified payload without `cnf."x5t#S256"` (or with an empty one).
    Unbound,
    /// A verified payload whose `cnf."x5t#S256"` is this. The claim is found only under the payload's key, so
    /// it is itself proof of a verified payload: there is no bound token without one.
    Bound(&'a str),
}

/// What the resource check knows about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence<'a> {
    pub token: Token<'a>,
    /// The `x5t#S256` of the certificate presented on this request, if any.
    pub presented_x5t_s256: Option<&'a str>,
}

/// Whether a request may reach a protected resource. Without a verified payload the answer is no: a chain
/// that lost its `jwt_authn` filter fails closed.
pub fn check(evidence: &Evidence<'_>, require_binding: bool) -> Result<(), Rejection> {
    let bound = match evidence.token {
        Token::Unverified => {
            return Err(Rejection::invalid_token(
                "no verified access token: jwt_authn did not verify a token for this path",
            ))
        }
        Token::Unbound if require_binding => {
            return Err(Rejection::invalid_token("the access token is not certificate-bound (no cnf.x5t#S256)"))
        }
        Token::Unbound => return Ok(()),
        Token::Bound(bound) => bound,
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
        let token = cnf.map_or(Token::Unbound, Token::Bound);
        Evidence { token, presented_x5t_s256: presented }
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
        for require_binding in [true, false] {
            let e = Evidence { token: Token::Unverified, presented_x5t_s256: Some("abc") };
            assert!(check(&e, require_binding).unwrap_err().description.contains("no verified access token"));
        }
    }

    #[test]
    fn thumbprints_are_compared_exactly() {
        assert!(check(&evidence(Some("ABC"), Some("abc")), true).is_err());
        assert!(check(&evidence(Some("abc"), Some("abc=")), true).is_err());
    }
}
