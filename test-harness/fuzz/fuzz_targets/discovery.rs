//! Fuzz target: authorization server metadata amended with the mTLS methods.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::oauth::discovery;
use serde_json::{json, Map, Value};

/// The string members of the methods list (numbers may be reprinted by a second pass).
fn methods(doc: &[u8]) -> Vec<String> {
    let value: Value = serde_json::from_slice(doc).unwrap();
    let list = value["token_endpoint_auth_methods_supported"].as_array().expect("the methods are an array");
    list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut aliases = Map::new();
    aliases.insert("token_endpoint".into(), json!("https://mtls.example.com/token"));
    for aliases in [None, Some(&aliases)] {
        let Ok(once) = discovery::amend(data, aliases, None) else { continue };
        let twice = discovery::amend(&once, aliases, None).expect("an amended document amends again");
        // Idempotent: amending again adds nothing (compared by members: floats may be reprinted).
        assert_eq!(methods(&twice), methods(&once));
        let (a, b): (Map<String, Value>, Map<String, Value>) =
            (serde_json::from_slice(&once).unwrap(), serde_json::from_slice(&twice).unwrap());
        assert!(a.keys().eq(b.keys()));
        let list = methods(&once);
        for m in ["tls_client_auth", "self_signed_tls_client_auth"] {
            assert!(list.iter().any(|v| v == m));
        }
    }
});
