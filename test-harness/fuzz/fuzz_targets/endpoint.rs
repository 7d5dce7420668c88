//! Fuzz target: a request path against `{tenant}` endpoint templates (`oauth::endpoint`), and a tenant read from a
//! path segment (`oauth::tenant`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::oauth::endpoint::{Endpoints, Match};
use oauth_mtls_filter::oauth::tenant::Tenant;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let entries: Vec<String> =
        ["/t/{tenant}/oauth2/token", "/realms/{tenant}/protocol/openid-connect/token", "/oauth2/token", "/{tenant}"]
            .iter()
            .map(|e| e.to_string())
            .collect();
    let endpoints = Endpoints::parse(&entries).expect("the templates are valid");
    if let Some(Match::Tenant(tenant)) = endpoints.find(&text) {
        // A tenant found is always a valid one, and one path segment of the path as received.
        let name = tenant.as_str();
        assert!(Tenant::new(name).is_ok(), "{name:?}");
        assert!(!name.is_empty() && name != "." && name != "..", "{name:?}");
        assert!(!name.contains(['/', '\\', ';', '%', '?', '#']), "{name:?}");
    }
    // Any text as a segment: a tenant or an error, never a panic; a tenant holds no path character.
    if let Ok(t) = Tenant::from_segment(&text) {
        assert!(!t.as_str().contains(['/', '\\']), "{t:?}");
    }
    // Any text as an endpoints entry: parsed or refused, never a panic.
    let _ = Endpoints::parse(&[text.to_string()]);
});
