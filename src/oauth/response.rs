//! The local replies the filter sends: RFC 6749 §5.2 JSON error bodies and their headers.

use crate::header;
use crate::oauth::verdict::{Challenge, Rejection};

/// The JSON body of a rejection; the description is one line of printable text.
pub fn body(rejection: &Rejection) -> String {
    let description = for_log(&rejection.description);
    let body = serde_json::json!({"error": rejection.error, "error_description": description});
    String::from_utf8(serde_json::to_vec(&body).unwrap_or_default()).unwrap_or_default()
}

/// The realm of the HTTP Basic challenge (RFC 7617 §2 requires one).
pub const BASIC_REALM: &str = "oauth";

/// Headers of a rejection: JSON and never cached; its challenge, if it has one (RFC 6750 §3, RFC 6749 §5.2).
pub fn headers(rejection: &Rejection) -> Vec<(&'static str, String)> {
    let mut h = vec![
        (header::CONTENT_TYPE, "application/json".to_string()),
        (header::CACHE_CONTROL, "no-store".to_string()),
        (header::PRAGMA, "no-cache".to_string()),
    ];
    if rejection.challenge == Some(Challenge::Basic) {
        h.push((header::WWW_AUTHENTICATE, format!("Basic realm=\"{BASIC_REALM}\", charset=\"UTF-8\"")));
    }
    if rejection.challenge == Some(Challenge::Bearer) {
        h.push((
            header::WWW_AUTHENTICATE,
            format!("Bearer error=\"{}\", error_description=\"{}\"", rejection.error, for_log(&rejection.description)),
        ));
    }
    h
}

/// The most characters of one client- or registry-controlled value a log line carries.
pub const LOG_VALUE_CHARS: usize = 256;

/// `text` as a log line may carry it: one line (see [`one_line`]) of at most [`LOG_VALUE_CHARS`] characters,
/// the rest said as a count, so that no client can write a 60 KB log line or forge another.
pub fn for_log(text: &str) -> String {
    let mut out: String = one_line(text).chars().take(LOG_VALUE_CHARS).collect();
    let rest = text.len().saturating_sub(out.len());
    if text.chars().count() > LOG_VALUE_CHARS {
        out.push_str(&format!("...(+{rest} bytes)"));
    }
    out
}

/// `text` as a field of a structured log (the access-log decision, which escapes it): itself up to
/// [`LOG_VALUE_CHARS`] characters, longer ones cut as [`for_log`] does, so that no client makes a log line grow with
/// what it sends.
pub fn bounded(text: &str) -> String {
    if text.len() <= LOG_VALUE_CHARS {
        text.to_string()
    } else {
        for_log(text)
    }
}

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

    #[test]
    fn a_structured_log_field_is_bounded() {
        assert_eq!(bounded("payments \"a\""), "payments \"a\"");
        let long = "x".repeat(100_000);
        let out = bounded(&long);
        assert!(out.len() < LOG_VALUE_CHARS + 32, "{}", out.len());
        assert!(out.ends_with("...(+99744 bytes)"), "{out}");
    }
    use crate::oauth::verdict::Reason;

    #[test]
    fn a_long_value_is_cut_in_a_log_line_and_the_rest_counted() {
        let logged = for_log(&"x".repeat(60_000));
        assert_eq!(logged, format!("{}...(+59744 bytes)", "x".repeat(256)));
        assert_eq!(for_log("short\r\nX-Forged: 1"), "short  X-Forged: 1");
    }

    #[test]
    fn error_body_is_rfc6749_json() {
        let r = Rejection::invalid_client(Reason::NoCertificate, "no client certificate was presented");
        let v: serde_json::Value = serde_json::from_str(&body(&r)).unwrap();
        assert_eq!(v["error"], "invalid_client");
        assert_eq!(v["error_description"], "no client certificate was presented");
    }

    #[test]
    fn a_resource_rejection_carries_a_bearer_challenge() {
        let r = Rejection::invalid_token("the access token is bound to another \"certificate\"");
        let h = headers(&r);
        let challenge = &h.iter().find(|(n, _)| *n == "www-authenticate").unwrap().1;
        assert_eq!(
            challenge,
            "Bearer error=\"invalid_token\", error_description=\"the access token is bound to another 'certificate'\""
        );
        let client = headers(&Rejection::invalid_client(Reason::NoCertificate, "x"));
        assert!(client.iter().all(|(n, _)| *n != "www-authenticate"));
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
