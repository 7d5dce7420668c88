//! OAuth at the token endpoint and the API: which requests are token requests and what they carry (RFC 6749),
//! registrations (RFC 7591, 8705), JWK Sets, the verdict and the replies, bound tokens at resources, metadata.

pub mod basic;
pub(crate) mod binding;
pub mod discovery;
pub mod endpoint;
pub mod form;
pub mod jwks;
pub mod path;
pub mod registration;
pub mod request;
pub(crate) mod response;
pub mod tenant;
pub mod verdict;
