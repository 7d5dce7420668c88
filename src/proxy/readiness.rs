//! Readiness: whether the filter can serve every client it is configured for, answered at `readiness_path`.
//!
//! Ready means the rule the filter applies to registry clients holds: the registry (if any) has loaded and its
//! copy is no older than `max_stale_seconds`. The answer reveals only that, and the reason's name: no error
//! text (which may name internal hosts), no client.

use crate::header;
use crate::registry::Unavailable;

/// The filter's readiness, as a worker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(NotReady),
}

/// Why the filter is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// No registry document has loaded since the filter started.
    RegistryNotLoaded,
    /// No good refresh for longer than `max_stale_seconds`: registry clients are refused.
    RegistryStale,
    /// The registry's shared data cannot be read.
    RegistryUnreadable,
}

impl NotReady {
    pub fn name(self) -> &'static str {
        match self {
            NotReady::RegistryNotLoaded => "registry_not_loaded",
            NotReady::RegistryStale => "registry_stale",
            NotReady::RegistryUnreadable => "registry_unreadable",
        }
    }
}

impl From<&Unavailable> for NotReady {
    fn from(why: &Unavailable) -> NotReady {
        match why {
            Unavailable::NotLoaded { .. } => NotReady::RegistryNotLoaded,
            Unavailable::Stale { .. } => NotReady::RegistryStale,
            Unavailable::Bucket(_) => NotReady::RegistryUnreadable,
        }
    }
}

/// The local reply to a request for the readiness path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `%RESPONSE_CODE_DETAILS%`.
    pub details: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
}

/// The answer to `method` on the readiness path: `GET` or `HEAD` get the readiness (200 or 503, JSON); any other
/// method 405.
pub fn answer(method: &[u8], readiness: Readiness) -> Answer {
    let json = (header::CONTENT_TYPE, "application/json");
    let no_store = (header::CACHE_CONTROL, "no-store");
    if method != b"GET" && method != b"HEAD" {
        return Answer {
            status: 405,
            details: "oauth_mtls.readiness_method_not_allowed",
            headers: vec![json, no_store, (header::ALLOW, "GET, HEAD")],
            body: r#"{"error":"method_not_allowed"}"#.to_string(),
        };
    }
    match readiness {
        Readiness::Ready => Answer {
            status: 200,
            details: "oauth_mtls.ready",
            headers: vec![json, no_store],
            body: r#"{"status":"ready"}"#.to_string(),
        },
        Readiness::NotReady(why) => Answer {
            status: 503,
            details: "oauth_mtls.not_ready",
            headers: vec![json, no_store],
            body: format!(r#"{{"status":"not_ready","reason":"{}"}}"#, why.name()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(a: &Answer) -> serde_json::Value {
        serde_json::from_str(&a.body).unwrap()
    }

    #[test]
    fn ready_is_200_with_a_json_status() {
        let a = answer(b"GET", Readiness::Ready);
        assert_eq!((a.status, json(&a)), (200, serde_json::json!({"status": "ready"})));
        assert!(a.headers.contains(&(header::CONTENT_TYPE, "application/json")));
    }

    #[test]
    fn not_ready_is_503_naming_only_the_reason() {
        let a = answer(b"HEAD", Readiness::NotReady(NotReady::RegistryStale));
        assert_eq!((a.status, json(&a)), (503, serde_json::json!({"status": "not_ready", "reason": "registry_stale"})));
    }

    #[test]
    fn other_methods_are_405_and_say_which_are_allowed() {
        let a = answer(b"POST", Readiness::Ready);
        assert_eq!(a.status, 405);
        assert!(a.headers.contains(&(header::ALLOW, "GET, HEAD")));
    }

    #[test]
    fn registry_unavailability_maps_to_its_reason() {
        let stale = Unavailable::Stale { age_seconds: 400, max_stale_seconds: 300, last_error: Some("x".into()) };
        assert_eq!(NotReady::from(&stale), NotReady::RegistryStale);
        assert_eq!(NotReady::from(&Unavailable::NotLoaded { last_error: None }), NotReady::RegistryNotLoaded);
    }
}
