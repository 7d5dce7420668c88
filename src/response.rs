//! The local replies the filter sends: RFC 6749 §5.2 JSON error bodies and their headers.

use crate::verdict::Rejection;

/// The JSON body of a rejection; the description is one line of printable text.
pub fn body(rejection: &Rejection) -> String {
    let description = one_line(&rejection.description);
    serde_json::json!({"error": rejection.error, "error_description": description}).to_string()
}

/// Headers of every rejection.
pub const HEADERS: [(&str, &str); 3] =
    [("content-type", "application/json"), ("cache-control", "no-store"), ("pragma", "no-cache")];

/// Replaces control characters (CR, LF, TAB, NUL...) with a space and `"`/`\` with `'`, so the text is
/// safe in a JSON string, a log line and an RFC 6749 error_description (%x20-21 / %x23-5B / %x5D-7E).
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Reason;

    #[test]
    fn error_body_is_rfc6749_json() {
        let r = Rejection::invalid_client(Reason::NoCertificate, "no client certificate was presented");
        let v: serde_json::Value = serde_json::from_str(&body(&r)).unwrap();
        assert_eq!(v["error"], "invalid_client");
        assert_eq!(v["error_description"], "no client certificate was presented");
    }

    #[test]
    fn description_never_contains_cr_lf_tab_or_quotes() {
        let r = Rejection::invalid_client(Reason::SubjectMismatch, "subject \"CN=a\r\nX-Injected: 1\tb\\\" bad");
        let text = body(&r);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let d = v["error_description"].as_str().unwrap();
        assert!(!d.contains(['\r', '\n', '\t', '"', '\\']), "{d}");
        assert!(!text.contains(['\r', '\n', '\t']));
    }
}
