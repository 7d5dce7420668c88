//! The client registry: its document, its shared-data layout (buckets, metadata, lease) and its refresh schedule.

use crate::registration::{self, Client, RegistrationError, Stored};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Why a registry document was refused as a whole (the last good copy keeps serving).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    NotJson(String),
    NotAList,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentError::NotJson(e) => write!(f, "registry document is not JSON: {e}"),
            DocumentError::NotAList => {
                write!(f, "registry document is neither a JSON array nor an object with a \"clients\" array")
            }
        }
    }
}

impl std::error::Error for DocumentError {}

/// A registry document: the registrations that load, and the ones refused with the rule they break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub clients: Vec<Stored>,
    pub refused: Vec<(String, RegistrationError)>,
    /// Client ids that appeared more than once (all but the first copy are ignored).
    pub duplicates: Vec<String>,
}

impl Document {
    /// Moves every `jwks_uri` registration to `refused` (used when no cluster can fetch them).
    pub fn refuse_jwks_uri_clients(&mut self, why: &str) {
        let (uri, keep): (Vec<Stored>, Vec<Stored>) =
            std::mem::take(&mut self.clients).into_iter().partition(|c| c.jwks_uri.is_some());
        self.clients = keep;
        self.refused.extend(
            uri.into_iter().map(|c| (c.client_id, RegistrationError::Unsupported(why.to_string()))),
        );
    }
}

/// The registration objects of a registry document: a JSON array of RFC 7591 client metadata, or
/// `{"clients": [...]}`.
pub fn items(bytes: &[u8]) -> Result<Vec<Value>, DocumentError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| DocumentError::NotJson(e.to_string()))?;
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(mut obj) => match obj.remove("clients") {
            Some(Value::Array(items)) => Ok(items),
            _ => Err(DocumentError::NotAList),
        },
        _ => Err(DocumentError::NotAList),
    }
}

/// Parses a registry document (see [`items`]) into the registrations that load and those refused.
pub fn parse_document(bytes: &[u8]) -> Result<Document, DocumentError> {
    let list = items(bytes)?;
    let mut doc = Document { clients: Vec::new(), refused: Vec::new(), duplicates: Vec::new() };
    let mut seen = std::collections::HashSet::new();
    for (i, metadata) in list.iter().enumerate() {
        let label = registration::client_id_of(metadata).map_or_else(|| format!("#{i}"), str::to_string);
        match registration::check(metadata) {
            Ok(stored) if seen.insert(stored.client_id.clone()) => doc.clients.push(stored),
            Ok(stored) => doc.duplicates.push(stored.client_id),
            Err(e) => doc.refused.push((label, e)),
        }
    }
    Ok(doc)
}

/// Shared-data keys. Every key starts with the prefix, so several filters in one VM do not collide.
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.trim_end_matches('/').to_string() }
    }
    pub fn meta(&self) -> String {
        format!("{}/registry/meta", self.prefix)
    }
    pub fn lease(&self) -> String {
        format!("{}/registry/lease", self.prefix)
    }
    /// Bucket keys include the bucket count, so a reconfiguration with another count never reads old buckets.
    pub fn bucket(&self, buckets: u32, index: u32) -> String {
        format!("{}/registry/{buckets}/{index}", self.prefix)
    }
    pub fn jwks(&self, uri: &str) -> String {
        format!("{}/jwks/{:016x}", self.prefix, fnv1a64(uri.as_bytes()))
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The bucket a client id lives in. Stable across VMs, builds and restarts.
pub fn bucket_of(client_id: &str, buckets: u32) -> u32 {
    let h = fnv1a64(client_id.as_bytes());
    u32::try_from(h % u64::from(buckets.max(1))).unwrap_or(0)
}

/// The value of every bucket for these registrations: a JSON array sorted by client id, so an unchanged
/// bucket encodes to identical bytes and is not rewritten (its CAS, and every worker's cache, stay valid).
pub fn encode_buckets(clients: &[Stored], buckets: u32) -> Vec<Vec<u8>> {
    let mut grouped: Vec<Vec<&Stored>> = (0..buckets.max(1)).map(|_| Vec::new()).collect();
    for c in clients {
        if let Some(slot) = grouped.get_mut(bucket_of(&c.client_id, buckets) as usize) {
            slot.push(c);
        }
    }
    grouped
        .into_iter()
        .map(|mut group| {
            group.sort_by(|a, b| a.client_id.cmp(&b.client_id));
            serde_json::to_vec(&group).unwrap_or_else(|_| b"[]".to_vec())
        })
        .collect()
}

/// Decodes one bucket into compiled clients. Entries that no longer compile are skipped.
pub fn decode_bucket(bytes: &[u8]) -> HashMap<String, Rc<Client>> {
    let stored: Vec<Stored> = serde_json::from_slice(bytes).unwrap_or_default();
    stored
        .iter()
        .filter_map(|s| s.compile().ok())
        .map(|c| (c.client_id.clone(), Rc::new(c)))
        .collect()
}

/// Registry state shared by all workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// When the registry last answered with a good document (or 304), in ms since the epoch.
    pub loaded_at_ms: Option<u64>,
    /// When the next refresh is due.
    pub next_at_ms: u64,
    pub etag: Option<String>,
    pub clients: u64,
    pub refused: u64,
    /// Failed refreshes since the last success.
    pub failures: u32,
    pub last_error: Option<String>,
}

impl Meta {
    pub fn decode(bytes: Option<&[u8]>) -> Meta {
        bytes.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `Ok` if registrations may be served now; otherwise the description a rejected client sees.
    pub fn usable(&self, now_ms: u64, max_stale_seconds: u64) -> Result<(), String> {
        let why = self.last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default();
        match self.loaded_at_ms {
            None => Err(format!("the client registry has not been loaded yet{why}")),
            Some(at) => {
                let age_s = now_ms.saturating_sub(at) / 1000;
                if age_s > max_stale_seconds {
                    Err(format!(
                        "the client registry is stale: no successful refresh for {age_s} s (max_stale_seconds is {max_stale_seconds}){why}"
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Records a good document (or a 304) at `now_ms`.
    pub fn succeeded(&mut self, now_ms: u64, refresh_seconds: u64, seed: u64) {
        self.loaded_at_ms = Some(now_ms);
        self.failures = 0;
        self.last_error = None;
        self.next_at_ms = now_ms + jittered_ms(refresh_seconds, seed);
    }

    /// Records a failed refresh: retry with exponential backoff from 1 s, never later than the period.
    pub fn failed(&mut self, now_ms: u64, refresh_seconds: u64, error: String) {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(crate::response::one_line(&error));
        let backoff_ms = 1000u64.saturating_mul(1u64 << self.failures.saturating_sub(1).min(16));
        self.next_at_ms = now_ms + backoff_ms.min(refresh_seconds.saturating_mul(1000));
    }
}

/// The refresh period ±10 %, so workers and replicas do not refresh in lockstep.
pub fn jittered_ms(refresh_seconds: u64, seed: u64) -> u64 {
    let period = refresh_seconds.saturating_mul(1000);
    let spread = period / 5; // 20 % wide, centred
    if spread == 0 {
        return period;
    }
    let offset = fnv1a64(&seed.to_le_bytes()) % (spread + 1);
    period - spread / 2 + offset
}

/// The refresh lease: whoever holds an unexpired lease is the one worker fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub expires_ms: u64,
}

impl Lease {
    pub fn decode(bytes: Option<&[u8]>) -> Option<Lease> {
        let text = std::str::from_utf8(bytes?).ok()?;
        Some(Lease { expires_ms: text.trim().parse().ok()? })
    }

    pub fn encode(&self) -> Vec<u8> {
        self.expires_ms.to_string().into_bytes()
    }

    /// A lease can be taken when there is none, or it has expired (its holder died or timed out).
    pub fn is_free(current: Option<Lease>, now_ms: u64) -> bool {
        current.is_none_or(|l| l.expires_ms <= now_ms)
    }
}

/// A `jwks_uri`'s cached JWK Set, shared by all workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwksEntry {
    /// Hex SHA-256 of each `x5c[0]` in the last good copy.
    pub thumbprints: Vec<String>,
    pub fetched_at_ms: Option<u64>,
    /// When a fetch was last started: refetches on a miss wait `jwks_min_refresh_seconds` from here.
    pub attempted_at_ms: u64,
    pub last_error: Option<String>,
}

impl JwksEntry {
    pub fn decode(bytes: Option<&[u8]>) -> Option<JwksEntry> {
        serde_json::from_slice(bytes?).ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn may_refetch(&self, now_ms: u64, min_refresh_seconds: u64) -> bool {
        now_ms.saturating_sub(self.attempted_at_ms) >= min_refresh_seconds.saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_may_be_an_array_or_an_object_with_clients() {
        let a = parse_document(br#"[{"client_id": "a"}]"#).unwrap();
        let b = parse_document(br#"{"clients": [{"client_id": "a"}]}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.clients.len(), 1);
    }

    #[test]
    fn garbage_documents_are_refused_whole() {
        assert!(matches!(parse_document(b"<html>"), Err(DocumentError::NotJson(_))));
        assert!(matches!(parse_document(br#"[{"client_id": "a"}"#), Err(DocumentError::NotJson(_))));
        assert_eq!(parse_document(br#"{"items": []}"#), Err(DocumentError::NotAList));
        assert_eq!(parse_document(b"42"), Err(DocumentError::NotAList));
    }

    #[test]
    fn a_registration_breaking_rfc8705_is_refused_and_the_others_load() {
        let doc = parse_document(
            br#"[{"client_id": "good"}, {"client_id": "bad", "token_endpoint_auth_method": "tls_client_auth"}]"#,
        )
        .unwrap();
        assert_eq!(doc.clients.len(), 1);
        assert_eq!(doc.refused.len(), 1);
        assert_eq!(doc.refused[0].0, "bad");
    }

    #[test]
    fn a_repeated_client_id_keeps_the_first_registration() {
        let doc = parse_document(br#"[{"client_id": "a", "token_endpoint_auth_method": "none"}, {"client_id": "a"}]"#).unwrap();
        assert_eq!(doc.clients.len(), 1);
        assert_eq!(doc.clients[0].method, "none");
        assert_eq!(doc.duplicates, vec!["a".to_string()]);
    }

    #[test]
    fn every_client_is_found_in_its_bucket() {
        let doc = parse_document(
            serde_json::to_string(&(0..500).map(|i| serde_json::json!({"client_id": format!("client-{i}")})).collect::<Vec<_>>())
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let buckets = encode_buckets(&doc.clients, 16);
        assert_eq!(buckets.len(), 16);
        for i in 0..500 {
            let id = format!("client-{i}");
            let bucket = decode_bucket(&buckets[bucket_of(&id, 16) as usize]);
            assert!(bucket.contains_key(&id), "{id}");
        }
        let total: usize = buckets.iter().map(|b| decode_bucket(b).len()).sum();
        assert_eq!(total, 500);
    }

    #[test]
    fn unchanged_buckets_encode_identically_whatever_the_document_order() {
        let a = parse_document(br#"[{"client_id": "a"}, {"client_id": "b"}, {"client_id": "c"}]"#).unwrap();
        let b = parse_document(br#"[{"client_id": "c"}, {"client_id": "a"}, {"client_id": "b"}]"#).unwrap();
        assert_eq!(encode_buckets(&a.clients, 4), encode_buckets(&b.clients, 4));
    }

    #[test]
    fn removed_clients_disappear_from_their_bucket() {
        let before = parse_document(br#"[{"client_id": "a"}, {"client_id": "b"}]"#).unwrap();
        let after = parse_document(br#"[{"client_id": "a"}]"#).unwrap();
        let n = 1;
        assert!(decode_bucket(&encode_buckets(&before.clients, n)[0]).contains_key("b"));
        assert!(!decode_bucket(&encode_buckets(&after.clients, n)[0]).contains_key("b"));
    }

    #[test]
    fn jwks_uri_clients_are_refused_when_nothing_can_fetch_them() {
        let mut doc = parse_document(
            br#"[{"client_id": "a"}, {"client_id": "s", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": "https://x/j"}]"#,
        )
        .unwrap();
        doc.refuse_jwks_uri_clients("no jwks_cluster");
        assert_eq!(doc.clients.len(), 1);
        assert_eq!(doc.refused[0].0, "s");
    }

    #[test]
    fn registry_never_loaded_is_unusable() {
        let m = Meta::default();
        assert!(m.usable(1_000, 300).unwrap_err().contains("not been loaded"));
    }

    #[test]
    fn registry_is_usable_until_max_stale_seconds_then_stale() {
        let mut m = Meta::default();
        m.succeeded(1_000_000, 30, 7);
        assert!(m.usable(1_000_000 + 300_000, 300).is_ok());
        m.failed(1_000_000 + 300_000, 30, "connection refused".into());
        let e = m.usable(1_000_000 + 301_000, 300).unwrap_err();
        assert!(e.contains("stale") && e.contains("connection refused"), "{e}");
    }

    #[test]
    fn failures_back_off_but_never_beyond_the_period() {
        let mut m = Meta::default();
        let mut waits = Vec::new();
        for _ in 0..8 {
            m.failed(0, 10, "x".into());
            waits.push(m.next_at_ms);
        }
        assert_eq!(waits, vec![1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000]);
    }

    #[test]
    fn refresh_is_jittered_within_ten_percent() {
        let all: Vec<u64> = (0..200).map(|seed| jittered_ms(30, seed)).collect();
        assert!(all.iter().all(|&v| (27_000..=33_000).contains(&v)));
        assert!(all.iter().any(|&v| v != all[0]), "no jitter at all");
    }

    #[test]
    fn a_lease_is_free_when_absent_or_expired() {
        assert!(Lease::is_free(None, 5));
        assert!(Lease::is_free(Lease::decode(Some(b"5")), 5));
        assert!(!Lease::is_free(Lease::decode(Some(b"6")), 5));
        assert_eq!(Lease::decode(Some(b"garbage")), None);
    }

    #[test]
    fn jwks_refetch_waits_min_refresh_from_the_last_attempt() {
        let e = JwksEntry { attempted_at_ms: 10_000, ..Default::default() };
        assert!(!e.may_refetch(10_999, 1));
        assert!(e.may_refetch(11_000, 1));
    }

    #[test]
    fn keys_are_prefixed() {
        let k = Keys::new("oauth-mtls/p/");
        assert_eq!(k.meta(), "oauth-mtls/p/registry/meta");
        assert_eq!(k.bucket(64, 3), "oauth-mtls/p/registry/64/3");
        assert!(k.jwks("https://x/j").starts_with("oauth-mtls/p/jwks/"));
    }
}
