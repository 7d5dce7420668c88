//! Fuzz target: an Authorization header (HTTP Basic client credentials), alone and with a form body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::{oauth::basic, oauth::request};

fuzz_target!(|data: &[u8]| {
    let _ = basic::client_id(data);
    // Bytes before the first newline are the Authorization value, the rest the form body.
    let (authorization, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => data.split_at(at),
        None => (data, &[][..]),
    };
    let body = body.get(1..).unwrap_or_default();
    if let Ok(Some(id)) = request::client_id(body, Some(authorization)) {
        // An id that is accepted came from one of the two places, and they did not disagree.
        let from_basic = basic::client_id(authorization).ok().flatten();
        let from_body = oauth_mtls_filter::oauth::form::client_id(body).ok().flatten();
        assert!(from_basic.as_ref() == Some(&id) || from_body.as_ref() == Some(&id));
        if let (Some(a), Some(b)) = (from_basic, from_body) {
            assert_eq!(a, b);
        }
    }
});
