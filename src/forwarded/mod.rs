//! Where the client certificate comes from (the TLS connection, or a trusted forwarder's XFCC or RFC 9440
//! `Client-Cert` header), and how the authenticated one is forwarded to the AS.

pub mod client_cert;
pub mod forward;
pub mod source;
pub mod xfcc;
