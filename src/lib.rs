//! oauth-mtls-filter: RFC 8705 mutual-TLS OAuth client authentication as a proxy-wasm HTTP filter.
//!
//! Everything that decides is plain Rust in the modules below and is tested natively; the proxy-wasm
//! glue lives in `shell` and is compiled only for wasm32.

// Production code may not panic (Cargo.toml denies unwrap/expect/panic/indexing); tests may.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]
// Only the proxy-wasm shell touches raw memory (the header map the host hands over).
#![deny(unsafe_code)]

pub mod basic;
pub mod binding;
pub mod bucket;
pub mod cache;
pub mod cert;
pub mod cli;
pub mod client_cert;
pub mod config;
pub mod discovery;
pub mod dn;
pub mod explain;
pub mod filter;
pub mod form;
pub mod forward;
pub mod headers;
pub mod hex;
pub mod host;
pub mod issuer;
pub mod jwks;
pub mod load;
pub mod memory;
pub mod path;
pub mod pem;
pub mod registration;
pub mod registry;
pub mod request;
pub mod response;
pub mod san;
pub mod scan;
pub mod source;
pub mod verdict;
pub mod x509;
pub mod xfcc;

#[cfg(test)]
mod testdata;

#[cfg(test)]
mod fake;

#[cfg(test)]
mod properties;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod shell;
