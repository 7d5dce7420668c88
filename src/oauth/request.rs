//! Which requests are token requests the filter enforces, and the client_id they carry (RFC 6749 §2.3, §3.2).

use crate::config::Config;
use crate::header;
use crate::oauth::endpoint::Match;
use crate::oauth::tenant::Tenant;
use crate::oauth::verdict::Rejection;
use crate::proxy::headers::Headers;
use crate::{oauth::basic, oauth::form};

/// What the request headers say about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Not a request this filter authenticates: only the inbound-header stripping applies.
    Ignore,
    /// A form POST to a configured endpoint, in a tenant when a template matched: read the body, then decide.
    Enforce(Option<Tenant>),
    Reject(Rejection),
}

/// Classifies a request from its method and path and, for a token request, its content type and declared
/// length.
pub fn classify(config: &Config, method: &[u8], path: &[u8], headers: &Headers) -> Classified {
    let Ok(path) = std::str::from_utf8(path) else { return Classified::Ignore };
    // The method first: it is the cheaper test (the endpoint's is a normalized copy of the path), and most
    // requests through the filter (API calls, GETs of the AS) fail it.
    if !method.eq_ignore_ascii_case(b"POST") {
        return Classified::Ignore;
    }
    let tenant = match config.endpoint(path) {
        None => return Classified::Ignore,
        Some(Match::Literal) => None,
        Some(Match::Tenant(t)) => Some(t),
        Some(Match::BadTenant(e)) => {
            return Classified::Reject(Rejection::invalid_request(format!(
                "the path does not name one tenant: {e} (a tenant is one path segment, percent-decoded once, never \
                 empty, `.` or `..`)"
            )))
        }
    };
    if !headers.get(header::CONTENT_TYPE).is_some_and(form::is_form_content_type) {
        return Classified::Reject(Rejection::invalid_request(
            "requests to this endpoint must use content-type application/x-www-form-urlencoded",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        return Classified::Reject(Rejection::too_large(config.max_body_bytes));
    }
    Classified::Enforce(tenant)
}

/// RFC 6750 §2: a request to a protected resource carries its access token one way only. Counts the ways a
/// token came (each `Authorization` header, each `access_token` query parameter; the form body is not read)
/// and refuses more than one: a proxy that checks one token must not pass another to the resource server.
pub fn single_token(path: &[u8], headers: &Headers) -> Result<(), Rejection> {
    let query = path.splitn(2, |b| *b == b'?').nth(1).unwrap_or_default();
    let query = query.split(|b| *b == b'#').next().unwrap_or_default();
    let in_query = query
        .split(|b| *b == b'&')
        .filter(|pair| {
            let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
            form::decode_component(name).is_ok_and(|n| n == "access_token")
        })
        .count();
    if headers.all(header::AUTHORIZATION).count() + in_query > 1 {
        let mut rejection =
            Rejection::invalid_request("the request carries more than one access token (RFC 6750 §2: one method only)");
        rejection.challenge = Some(crate::oauth::verdict::Challenge::Bearer);
        return Err(rejection);
    }
    Ok(())
}

/// The client_id of a token request: from the form body, else from HTTP Basic credentials.
/// A repeated `client_id`, or Basic credentials naming another client, is `invalid_request`.
pub fn client_id(body: &[u8], authorization: Option<&[u8]>) -> Result<Option<String>, Rejection> {
    let from_body = form::client_id(body).map_err(|e| match e {
        form::FormError::DuplicateParameter(name) => {
            Rejection::invalid_request(format!("the {name} parameter is repeated in the request body (RFC 6749 §3.2)"))
        }
        other => Rejection::invalid_request(format!("the request body is not a valid form: {other}")),
    })?;
    let from_basic = match authorization {
        None => None,
        Some(value) => basic::client_id(value).map_err(|e| {
            Rejection::invalid_request(format!("the Authorization header is not valid Basic credentials: {e}"))
        })?,
    };
    match (from_body, from_basic) {
        (Some(body_id), Some(basic_id)) if body_id != basic_id => Err(Rejection::invalid_request(
            "the client_id in the Authorization header differs from the client_id in the request body",
        )),
        (Some(id), _) | (None, Some(id)) => Ok(Some(id)),
        (None, None) => Ok(None),
    }
}
