//! oauth-mtls-filter: RFC 8705 mutual-TLS OAuth client authentication as a proxy-wasm HTTP filter.
//!
//! Three layers, each using only the ones below it:
//!
//! 1. **The core decides**, in plain Rust over bytes, tested natively: [`cert`] reads the client's leaf
//!    certificate (X.509, distinguished names, SANs, issuer pinning); [`forwarded`] finds the certificate
//!    (the connection, or a trusted forwarder's XFCC or `Client-Cert`) and encodes what is forwarded to the
//!    AS; [`oauth`] reads token requests and registrations and reaches the verdict (RFC 6749, 7591, 8705) and
//!    the reply; [`registry`] loads the AS's registrations into shared data; [`revocation`] reads CRLs and OCSP
//!    answers (RFC 5280, 6960) and combines them into a certificate's status; [`config`] is the plugin
//!    configuration, and [`preset`] what it fills in for the servers users run.
//! 2. **[`proxy`] holds the state machines**: a worker (registry and CRL refresh, caches within a memory budget) and a
//!    request, over a small `host` trait that a readable fake implements for tests.
//! 3. **A thin shell** (`proxy::shell`, wasm32 only) moves bytes between that trait and the proxy-wasm ABI.
//!
//! [`cli`] reaches its verdicts through the same core.

// Production code may not panic (Cargo.toml denies unwrap/expect/panic/indexing); tests may.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]
// Only the proxy-wasm shell touches raw memory (the header map the host hands over).
#![deny(unsafe_code)]

pub mod cert;
pub mod cli;
pub mod config;
pub mod forwarded;
pub mod header;
mod hex;
pub mod oauth;
pub mod preset;
pub mod proxy;
pub mod registry;
pub mod revocation;

#[cfg(test)]
mod testdata;

#[cfg(test)]
mod properties;
