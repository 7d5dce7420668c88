//! The filter as the proxy runs it: a worker's state (registry refresh, caches within the memory budget) and a
//! request's state machine, over the small `host` trait; the proxy-wasm shell (wasm32 only) implements it.

pub mod cache;
pub mod decision;
#[cfg(test)]
mod fake;
pub mod headers;
pub mod host;
pub mod memory;
pub mod readiness;
pub(crate) mod registry;
pub mod request;
pub mod revocation;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod shell;
pub mod worker;
