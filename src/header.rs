//! The HTTP header names the filter reads or writes, one constant each (lower case, as Envoy passes them).

/// The annotations of an authenticated token request: the only headers the AS may trust.
pub const X_MTLS_CLIENT_ID: &str = "x-mtls-client-id";
pub const X_MTLS_AUTH_METHOD: &str = "x-mtls-auth-method";
pub const X_MTLS_X5T_S256: &str = "x-mtls-x5t-s256";
/// RFC 9440: the client certificate, and its chain, as a front proxy forwards them (and, by default, the filter).
pub const CLIENT_CERT: &str = "client-cert";
pub const CLIENT_CERT_CHAIN: &str = "client-cert-chain";
/// Envoy's forwarded client certificate details.
pub const X_FORWARDED_CLIENT_CERT: &str = "x-forwarded-client-cert";

pub const AUTHORIZATION: &str = "authorization";
pub const CONTENT_TYPE: &str = "content-type";
pub const CONTENT_LENGTH: &str = "content-length";
pub const CONTENT_ENCODING: &str = "content-encoding";
pub const ACCEPT: &str = "accept";
pub const ACCEPT_ENCODING: &str = "accept-encoding";
pub const CACHE_CONTROL: &str = "cache-control";
pub const PRAGMA: &str = "pragma";
pub const WWW_AUTHENTICATE: &str = "www-authenticate";
pub const IF_NONE_MATCH: &str = "if-none-match";
pub const ETAG: &str = "etag";
pub const ALLOW: &str = "allow";
/// Envoy's request id (also in its access log), named in rejection log lines.
pub const X_REQUEST_ID: &str = "x-request-id";
