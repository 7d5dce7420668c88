//! Fuzz target: an application/x-www-form-urlencoded token request body (and a Content-Type value).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::oauth::form;

fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }).collect()
}

fuzz_target!(|data: &[u8]| {
    let _ = form::is_form_content_type(data);
    let client_id = form::client_id(data);
    match form::decode(data) {
        Ok(pairs) => {
            // Whatever decodes re-encodes to a body that decodes to the same pairs.
            let body: Vec<String> = pairs.iter().map(|(n, v)| format!("{}={}", encode(n), encode(v))).collect();
            assert_eq!(form::decode(body.join("&").as_bytes()).as_ref(), Ok(&pairs));
            // The client_id rule: found when named exactly once, refused when named twice.
            let named = pairs.iter().filter(|(n, _)| n == "client_id").count();
            match named {
                0 => assert_eq!(client_id, Ok(None)),
                1 => assert!(matches!(client_id, Ok(Some(_)))),
                _ => assert!(matches!(client_id, Err(form::FormError::DuplicateParameter(_)))),
            }
        }
        Err(e) => assert_eq!(client_id, Err(e)),
    }
});
