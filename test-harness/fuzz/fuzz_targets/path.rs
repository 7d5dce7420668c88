//! Fuzz target: a request path as endpoint and resource matching read it (`path::key`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::oauth::path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let key = path::key(&text);
    // One absolute path: no query, no empty, `.` or `..` segment, no upper-case ASCII, no backslash.
    assert!(key.starts_with('/'), "{key:?}");
    assert!(!key.contains(['?', '#', '\\']), "{key:?}");
    assert!(!key.contains("//") && !key.contains("/./") && !key.contains("/../"), "{key:?}");
    assert!(!key.ends_with("/.") && !key.ends_with("/.."), "{key:?}");
    assert!(!key.bytes().any(|b| b.is_ascii_uppercase()), "{key:?}");
    // A query never changes the path.
    assert_eq!(path::key(&format!("{}?x=/A", text.split(['?', '#']).next().unwrap_or(""))), key);
});
