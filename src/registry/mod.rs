//! The client registry: its document, its shared-data layout (buckets, metadata, lease) and its refresh schedule.

pub(crate) mod bucket;
pub mod load;
pub(crate) mod scan;

use crate::oauth::jwks::Freshness;
use crate::oauth::registration::{self, Client, RegistrationError, Stored};
use crate::oauth::tenant::{self, Tenant};
use crate::registry::scan::{Event, ScanError, Scanner};
use bucket::BucketError;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
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

impl From<ScanError> for DocumentError {
    fn from(e: ScanError) -> DocumentError {
        DocumentError::NotJson(e.to_string())
    }
}

/// A registry document: the registrations that load, and the ones refused with the rule they break.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    pub clients: Vec<Stored>,
    pub refused: Vec<(String, RegistrationError)>,
    /// Client ids that appeared more than once in one tenant (named `id (tenant t)` in a tenant), once for each
    /// copy after the first. No copy of such an id loads, whatever each copy says: which one the AS holds is
    /// unknown.
    pub duplicates: Vec<String>,
    /// Client ids whose first copy had loaded and was withdrawn when the id was listed again.
    pub withdrawn: Vec<String>,
}

impl Document {
    /// Adds the next registration; `seen` holds the client ids met so far.
    fn add(&mut self, entry: Entry, seen: &mut HashSet<String>) {
        if let Some(key) = entry.key() {
            if !seen.insert(key.clone()) {
                let before = self.clients.len();
                self.clients.retain(|c| c.key() != key);
                let named = tenant::describe_key(&key);
                if self.clients.len() < before {
                    self.withdrawn.push(named.clone());
                }
                self.duplicates.push(named);
                return;
            }
        }
        match entry {
            Entry::Loads(stored) => self.clients.push(stored),
            Entry::Refused { label, error, .. } => self.refused.push((label, error)),
        }
    }

    /// Moves every `jwks_uri` registration to `refused` (used when no cluster can fetch them).
    pub fn refuse_jwks_uri_clients(&mut self, why: &str) {
        let (uri, keep): (Vec<Stored>, Vec<Stored>) =
            std::mem::take(&mut self.clients).into_iter().partition(|c| c.jwks_uri.is_some());
        self.clients = keep;
        self.refused.extend(uri.into_iter().map(|c| (c.client_id, RegistrationError::Unsupported(why.to_string()))));
    }
}

/// The registration objects of a registry document: a JSON array of RFC 7591 client metadata, or
/// `{"clients": [...]}`. Parsed one registration at a time (see [`crate::registry::scan`]).
pub fn items(bytes: &[u8]) -> Result<Vec<Value>, DocumentError> {
    let mut items = Vec::new();
    each_element(bytes, |found| {
        match found {
            None => items.clear(),
            Some((range, position)) => items.push(parse_element(bytes, range, position)?),
        }
        Ok(())
    })?;
    Ok(items)
}

/// Parses a registry document (see [`items`]) into the registrations that load and those refused.
pub fn parse_document(bytes: &[u8]) -> Result<Document, DocumentError> {
    let mut doc = Document::default();
    let mut seen = HashSet::new();
    each_element(bytes, |found| {
        let Some((range, position)) = found else {
            doc = Document::default();
            seen.clear();
            return Ok(());
        };
        doc.add(check_element(&parse_element(bytes, range, position)?, position, None), &mut seen);
        Ok(())
    })?;
    Ok(doc)
}

/// Calls `f` with the byte range and position of every registration, in one unbounded scan, and with
/// `None` when a repeated `"clients"` member replaces what came before (positions restart at 0).
fn each_element(
    bytes: &[u8],
    mut f: impl FnMut(Option<(std::ops::Range<usize>, usize)>) -> Result<(), DocumentError>,
) -> Result<(), DocumentError> {
    let mut scanner = Scanner::new();
    let mut position = 0;
    loop {
        match scanner.next(bytes, usize::MAX)? {
            Event::Element(range) => {
                f(Some((range, position)))?;
                position += 1;
            }
            Event::Reset => {
                f(None)?;
                position = 0;
            }
            Event::Pending => {}
            Event::End { list: true } => return Ok(()),
            Event::End { list: false } => return Err(DocumentError::NotAList),
        }
    }
}

/// The JSON value of the registration at `range` (position `position` in the list).
pub fn parse_element(bytes: &[u8], range: std::ops::Range<usize>, position: usize) -> Result<Value, DocumentError> {
    let start = range.start;
    let text = bytes.get(range).unwrap_or_default();
    serde_json::from_slice(text)
        .map_err(|e| DocumentError::NotJson(format!("registration #{position} (at byte offset {start}): {e}")))
}

/// One registration of a document, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Loads(Stored),
    /// Refused: its key if it has a client id (see [`Stored::key`]), the label that names it in a log (the
    /// id or `#position`), and why.
    Refused {
        key: Option<String>,
        label: String,
        error: RegistrationError,
    },
}

impl Entry {
    /// The (tenant, client id) key the registration claims, loaded or not (see [`Stored::key`]).
    pub fn key(&self) -> Option<String> {
        match self {
            Entry::Loads(stored) => Some(stored.key()),
            Entry::Refused { key, .. } => key.clone(),
        }
    }
}

/// Checks the registration at `position` of a document served for `tenant` (`registries[].tenant`), or for
/// the tenants its items name.
pub fn check_element(metadata: &Value, position: usize, tenant: Option<&Tenant>) -> Entry {
    match registration::check_in(metadata, tenant) {
        Ok(stored) => Entry::Loads(stored),
        Err(error) => {
            let client_id = registration::client_id_of(metadata).filter(|id| !id.is_empty());
            // The tenant it claims, where that is one: a second copy of it is still a duplicate.
            let named = metadata.get("tenant").and_then(Value::as_str).and_then(|t| Tenant::new(t).ok());
            let scope = named.as_ref().or(tenant);
            let key = client_id.map(|id| tenant::scoped_key(scope, id).into_owned());
            let label = match (client_id, scope) {
                (Some(id), Some(t)) => format!("{id} (tenant {t})"),
                (Some(id), None) => id.to_string(),
                (None, _) => format!("#{position}"),
            };
            Entry::Refused { key, label, error }
        }
    }
}

/// Shared-data keys. Every key starts with the prefix, so several filters in one VM do not collide. The
/// registry's keys carry the bucket layout version, so filters of different layouts sharing a VM (a version
/// change while the old one drains) keep separate copies instead of reading each other's.
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.trim_end_matches('/').to_string() }
    }
    pub fn meta(&self) -> String {
        format!("{}/registry/v{}/meta", self.prefix, bucket::LAYOUT)
    }
    pub fn lease(&self) -> String {
        format!("{}/registry/v{}/lease", self.prefix, bucket::LAYOUT)
    }
    /// Bucket keys include the bucket count: a load with another count writes a fresh set while the old one serves.
    pub fn bucket(&self, buckets: u32, index: u32) -> String {
        format!("{}/registry/v{}/{buckets}/{index}", self.prefix, bucket::LAYOUT)
    }
    pub fn jwks(&self, uri: &str) -> String {
        format!("{}/jwks/{:016x}", self.prefix, fnv1a64(uri.as_bytes()))
    }
}

pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The bucket a client id lives in. Stable across VMs, builds and restarts.
pub fn bucket_of(client_id: &str, buckets: u32) -> u32 {
    let h = fnv1a64(client_id.as_bytes());
    u32::try_from(h % u64::from(buckets.max(1))).unwrap_or(0)
}

/// A registration as stored in a bucket (its compact JSON).
pub fn encode_entry(stored: &Stored) -> Vec<u8> {
    serde_json::to_vec(&stored.to_json()).unwrap_or_default()
}

/// The value of every bucket for these registrations (see [`crate::registry::bucket`]): sorted by client id, so an
/// unchanged bucket encodes to identical bytes and is not rewritten. The filter builds the same bytes
/// incrementally ([`crate::registry::load`]); this is the whole-document form for tools and tests.
pub fn encode_buckets(clients: &[Stored], buckets: u32) -> Vec<Vec<u8>> {
    let mut grouped: Vec<Vec<(String, Vec<u8>)>> = (0..buckets.max(1)).map(|_| Vec::new()).collect();
    for c in clients {
        let key = c.key();
        if let Some(slot) = grouped.get_mut(bucket_of(&key, buckets) as usize) {
            slot.push((key, encode_entry(c)));
        }
    }
    grouped
        .into_iter()
        .map(|mut group| {
            group.sort_by(|a, b| a.0.cmp(&b.0));
            let pairs: Vec<(&str, &[u8])> = group.iter().map(|(id, entry)| (id.as_str(), entry.as_slice())).collect();
            bucket::encode(&pairs)
        })
        .collect()
}

/// The registration stored under `key` ([`Stored::key`]: tenant and client id) in a bucket value, decoding
/// only that one. `Ok(None)`: not in the bucket. A stored entry that does not decode, or is another client's
/// (or another tenant's), is damage: an error.
pub fn find_client(bytes: &[u8], key: &str) -> Result<Option<Stored>, BucketError> {
    let Some(entry) = bucket::find(bytes, key)? else { return Ok(None) };
    match decode_entry(entry) {
        Some(stored) if stored.key() == key => Ok(Some(stored)),
        _ => Err(BucketError::Corrupt),
    }
}

/// A registration written by [`encode_entry`], or `None` if `entry` is not of that form.
fn decode_entry(entry: &[u8]) -> Option<Stored> {
    Stored::from_json(&serde_json::from_slice(entry).ok()?)
}

/// Decodes a whole bucket into compiled clients by key ([`Stored::key`]; tools and tests; the filter uses
/// [`find_client`]). A bucket that cannot be read, and entries that no longer compile, give nothing.
pub fn decode_bucket(bytes: &[u8]) -> HashMap<String, Rc<Client>> {
    bucket::entries(bytes)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, entry)| decode_entry(entry))
        .filter_map(|s| Some((s.key(), Rc::new(s.compile().ok()?))))
        .collect()
}

/// Why the registry cannot answer a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// No document has loaded since the filter started; with the last refresh's error, if any.
    NotLoaded { last_error: Option<String> },
    /// No good refresh for longer than `max_stale_seconds`.
    Stale { age_seconds: u64, max_stale_seconds: u64, last_error: Option<String> },
    /// The client's bucket cannot be read.
    Bucket(BucketError),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = |e: &Option<String>| e.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default();
        match self {
            Unavailable::NotLoaded { last_error } => {
                write!(f, "the client registry has not been loaded yet{}", why(last_error))
            }
            Unavailable::Stale { age_seconds, max_stale_seconds, last_error } => write!(
                f,
                "the client registry is stale: no successful refresh for {age_seconds} s (max_stale_seconds is \
                 {max_stale_seconds}){}",
                why(last_error)
            ),
            Unavailable::Bucket(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Unavailable {}

/// Registry state shared by all workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Changes whenever a load changes the buckets: a worker's decoded registrations are valid while it
    /// stays the same, so a lookup reads only this key in the steady state (0 when absent).
    pub generation: u64,
    /// The bucket count the current buckets were written with (their keys include it; 0 when absent).
    pub buckets: u32,
}

impl Meta {
    /// The state written by [`Meta::encode`]; the default when there is none or it is not of that form.
    pub fn decode(bytes: Option<&[u8]>) -> Meta {
        bytes.and_then(|b| Meta::from_json(&serde_json::from_slice(b).ok()?)).unwrap_or_default()
    }

    fn from_json(value: &Value) -> Option<Meta> {
        let o = value.as_object()?;
        Some(Meta {
            loaded_at_ms: optional(o, "loaded_at_ms", Value::as_u64)?,
            next_at_ms: o.get("next_at_ms")?.as_u64()?,
            etag: optional(o, "etag", text)?,
            clients: o.get("clients")?.as_u64()?,
            refused: o.get("refused")?.as_u64()?,
            failures: u32::try_from(o.get("failures")?.as_u64()?).ok()?,
            last_error: optional(o, "last_error", text)?,
            generation: o.get("generation").map_or(Some(0), Value::as_u64)?,
            buckets: o.get("buckets").map_or(Some(0), |b| u32::try_from(b.as_u64()?).ok())?,
        })
    }

    /// A JSON object with every field (`null` for those not set).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Map::new();
        o.insert("loaded_at_ms".into(), self.loaded_at_ms.into());
        o.insert("next_at_ms".into(), self.next_at_ms.into());
        o.insert("etag".into(), self.etag.clone().into());
        o.insert("clients".into(), self.clients.into());
        o.insert("refused".into(), self.refused.into());
        o.insert("failures".into(), self.failures.into());
        o.insert("last_error".into(), self.last_error.clone().into());
        o.insert("generation".into(), self.generation.into());
        o.insert("buckets".into(), self.buckets.into());
        serde_json::to_vec(&Value::Object(o)).unwrap_or_default()
    }

    /// `Ok` if registrations may be served now; otherwise the description a rejected client sees.
    pub fn usable(&self, now_ms: u64, max_stale_seconds: u64) -> Result<(), Unavailable> {
        let last_error = self.last_error.clone();
        match self.loaded_at_ms {
            None => Err(Unavailable::NotLoaded { last_error }),
            Some(at) => {
                let age_seconds = now_ms.saturating_sub(at) / 1000;
                if age_seconds > max_stale_seconds {
                    Err(Unavailable::Stale { age_seconds, max_stale_seconds, last_error })
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
        self.last_error = Some(crate::oauth::response::one_line(&error));
        let backoff_ms = 1000u64.saturating_mul(1u64 << self.failures.saturating_sub(1).min(16));
        self.next_at_ms = now_ms + backoff_ms.min(refresh_seconds.saturating_mul(1000));
    }
}

/// The member `key` read by `read`: `Some(None)` when absent or null, `None` when `read` refuses it.
fn optional<T>(o: &Map<String, Value>, key: &str, read: impl Fn(&Value) -> Option<T>) -> Option<Option<T>> {
    match o.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(v) => read(v).map(Some),
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
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

/// The refresh lease: whoever holds an unexpired lease is the one worker fetching (and loading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub expires_ms: u64,
    /// Which worker holds it, so a worker renewing its lease during a load notices another took it over.
    pub owner: u64,
}

impl Lease {
    /// `"<expires_ms> <owner>"`; a bare `"<expires_ms>"` has owner 0.
    pub fn decode(bytes: Option<&[u8]>) -> Option<Lease> {
        let text = std::str::from_utf8(bytes?).ok()?;
        let mut parts = text.split_whitespace();
        let expires_ms = parts.next()?.parse().ok()?;
        let owner = match parts.next() {
            Some(o) => o.parse().ok()?,
            None => 0,
        };
        parts.next().is_none().then_some(Lease { expires_ms, owner })
    }

    pub fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.expires_ms, self.owner).into_bytes()
    }

    /// A lease can be taken when there is none, or it has expired (its holder died or timed out).
    pub fn is_free(current: Option<Lease>, now_ms: u64) -> bool {
        current.is_none_or(|l| l.expires_ms <= now_ms)
    }
}

/// A `jwks_uri`'s cached JWK Set, shared by all workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwksEntry {
    /// Hex SHA-256 of each `x5c[0]` in the last good copy.
    pub thumbprints: Vec<String>,
    pub fetched_at_ms: Option<u64>,
    /// When a fetch was last started: refetches on a miss wait `jwks_min_refresh_seconds` from here.
    pub attempted_at_ms: u64,
    pub last_error: Option<String>,
    /// How long the last good copy may be used, from its Cache-Control bounded by the configuration.
    pub max_age_ms: Option<u64>,
}

impl JwksEntry {
    /// The entry written by [`JwksEntry::encode`], or `None` if there is none or it is not of that form.
    pub fn decode(bytes: Option<&[u8]>) -> Option<JwksEntry> {
        let value: Value = serde_json::from_slice(bytes?).ok()?;
        let o = value.as_object()?;
        Some(JwksEntry {
            thumbprints: registration::strings_of(o.get("thumbprints")?)?,
            fetched_at_ms: optional(o, "fetched_at_ms", Value::as_u64)?,
            attempted_at_ms: o.get("attempted_at_ms")?.as_u64()?,
            last_error: optional(o, "last_error", text)?,
            max_age_ms: optional(o, "max_age_ms", Value::as_u64)?,
        })
    }

    /// A JSON object with every field (`null` for those not set).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Map::new();
        o.insert("thumbprints".into(), self.thumbprints.clone().into());
        o.insert("fetched_at_ms".into(), self.fetched_at_ms.into());
        o.insert("attempted_at_ms".into(), self.attempted_at_ms.into());
        o.insert("last_error".into(), self.last_error.clone().into());
        o.insert("max_age_ms".into(), self.max_age_ms.into());
        serde_json::to_vec(&Value::Object(o)).unwrap_or_default()
    }

    pub fn may_refetch(&self, now_ms: u64, min_refresh_seconds: u64) -> bool {
        now_ms.saturating_sub(self.attempted_at_ms) >= min_refresh_seconds.saturating_mul(1000)
    }

    /// The last good copy against its maximum age (`default_max_age_ms` where the entry has none).
    pub fn freshness(&self, now_ms: u64, default_max_age_ms: u64) -> Freshness {
        match self.fetched_at_ms {
            None => Freshness::Fresh,
            Some(at) => Freshness::of(now_ms.saturating_sub(at), self.max_age_ms.unwrap_or(default_max_age_ms)),
        }
    }

    /// Whether a fetch may start now: `jwks_min_refresh_seconds` after the last attempt, or, for a copy due for
    /// renewal or expired, at once when nothing was attempted since it was fetched (renewals come at most once
    /// per maximum age, so they need no other limit).
    pub fn may_fetch(&self, now_ms: u64, min_refresh_seconds: u64, default_max_age_ms: u64) -> bool {
        let renewal = self.freshness(now_ms, default_max_age_ms) != Freshness::Fresh
            && self.fetched_at_ms.is_some_and(|at| self.attempted_at_ms <= at);
        renewal || self.may_refetch(now_ms, min_refresh_seconds)
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
    fn no_copy_of_a_client_id_listed_twice_loads() {
        let doc = parse_document(
            br#"[{"client_id": "a", "token_endpoint_auth_method": "none"}, {"client_id": "a"}, {"client_id": "b"}]"#,
        )
        .unwrap();
        assert_eq!(doc.clients.iter().map(|c| c.client_id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(doc.duplicates, ["a"]);
        assert_eq!(doc.withdrawn, ["a"]);
    }

    #[test]
    fn a_refused_first_copy_does_not_let_a_second_copy_of_its_client_id_load() {
        let doc = parse_document(
            br#"[{"client_id": "a", "token_endpoint_auth_method": "tls_client_auth"},
                                      {"client_id": "a", "token_endpoint_auth_method": "none"}]"#,
        )
        .unwrap();
        assert!(doc.clients.is_empty());
        assert_eq!((doc.refused.len(), doc.duplicates.len()), (1, 1));
    }

    #[test]
    fn a_client_id_with_a_control_character_is_refused() {
        // It would be sent in x-mtls-client-id, where Envoy answers 503 to CR or LF.
        let doc = parse_document(b"[{\"client_id\": \"a\\r\\nb\", \"token_endpoint_auth_method\": \"none\"}]").unwrap();
        assert!(doc.clients.is_empty());
        assert_eq!(doc.refused[0].1, RegistrationError::ClientIdControlCharacter);
    }

    #[test]
    fn every_client_is_found_in_its_bucket() {
        let doc = parse_document(
            serde_json::to_string(
                &(0..500).map(|i| serde_json::json!({"client_id": format!("client-{i}")})).collect::<Vec<_>>(),
            )
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
        assert_eq!(m.usable(1_000, 300), Err(Unavailable::NotLoaded { last_error: None }));
        assert!(m.usable(1_000, 300).unwrap_err().to_string().contains("not been loaded"));
    }

    #[test]
    fn registry_is_usable_until_max_stale_seconds_then_stale() {
        let mut m = Meta::default();
        m.succeeded(1_000_000, 30, 7);
        assert!(m.usable(1_000_000 + 300_000, 300).is_ok());
        m.failed(1_000_000 + 300_000, 30, "connection refused".into());
        let e = m.usable(1_000_000 + 301_000, 300).unwrap_err();
        assert!(matches!(e, Unavailable::Stale { age_seconds: 301, .. }), "{e:?}");
        let e = e.to_string();
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
        assert!(Lease::is_free(Lease::decode(Some(b"5 9")), 5));
        assert!(!Lease::is_free(Lease::decode(Some(b"6 9")), 5));
        assert_eq!(Lease::decode(Some(b"garbage")), None);
    }

    #[test]
    fn a_lease_names_its_owner() {
        let l = Lease { expires_ms: 7, owner: 42 };
        assert_eq!(Lease::decode(Some(&l.encode())), Some(l));
        assert_eq!(Lease::decode(Some(b"7")), Some(Lease { expires_ms: 7, owner: 0 }));
        assert_eq!(Lease::decode(Some(b"7 42 1")), None);
    }

    #[test]
    fn metadata_written_before_generations_existed_reads_as_generation_zero() {
        let m = Meta::decode(Some(br#"{"loaded_at_ms": 5, "next_at_ms": 6, "etag": null, "clients": 1, "refused": 0, "failures": 0, "last_error": null}"#));
        assert_eq!((m.loaded_at_ms, m.generation, m.buckets), (Some(5), 0, 0));
    }

    #[test]
    fn one_client_is_decoded_from_its_bucket_without_the_others() {
        let doc = parse_document(
            br#"[{"client_id": "a", "token_endpoint_auth_method": "none"}, {"client_id": "b"}, {"client_id": "c"}]"#,
        )
        .unwrap();
        let all = encode_buckets(&doc.clients, 1).remove(0);
        let b = find_client(&all, "b").unwrap().unwrap();
        assert_eq!((b.client_id.as_str(), b.method.as_str()), ("b", "client_secret_basic"));
        assert_eq!(find_client(&all, "a").unwrap().unwrap().method, "none");
        assert_eq!(find_client(&all, "z"), Ok(None));
        // Damage in another registration does not matter to this one: only "b" is decoded.
        let at = all.windows(3).position(|w| w == br#""i""#).unwrap();
        let mut damaged = all.clone();
        damaged[at + 1] = b'X';
        assert!(find_client(&damaged, "b").unwrap().is_some());
        assert_eq!(find_client(&damaged, "a"), Err(BucketError::Corrupt));
    }

    #[test]
    fn a_bucket_of_another_layout_is_an_error_not_an_empty_bucket() {
        assert_eq!(find_client(br#"[{"i": "a", "m": "none"}]"#, "a"), Err(BucketError::Unrecognized));
        assert!(decode_bucket(br#"[{"i": "a", "m": "none"}]"#).is_empty());
    }

    /// The whole-document parse this module had before it parsed registration by registration.
    fn parse_whole(bytes: &[u8]) -> Result<Document, DocumentError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| DocumentError::NotJson(e.to_string()))?;
        let list = match value {
            Value::Array(items) => items,
            Value::Object(mut obj) => match obj.remove("clients") {
                Some(Value::Array(items)) => items,
                _ => return Err(DocumentError::NotAList),
            },
            _ => return Err(DocumentError::NotAList),
        };
        let mut doc = Document::default();
        let mut seen = HashSet::new();
        for (i, metadata) in list.iter().enumerate() {
            doc.add(check_element(metadata, i, None), &mut seen);
        }
        Ok(doc)
    }

    /// Same outcome (error kind included) as parsing the whole document at once.
    pub(crate) fn agrees_with_whole_parse(bytes: &[u8]) -> Result<(), String> {
        let (now, before) = (parse_document(bytes), parse_whole(bytes));
        let same = match (&now, &before) {
            (Ok(a), Ok(b)) => a == b,
            (Err(DocumentError::NotJson(_)), Err(DocumentError::NotJson(_))) => true,
            (Err(DocumentError::NotAList), Err(DocumentError::NotAList)) => true,
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(format!("{:?}: scanned {now:?}, whole {before:?}", String::from_utf8_lossy(bytes)))
        }
    }

    #[test]
    fn parsing_registration_by_registration_agrees_with_parsing_the_whole_document() {
        let docs: &[&[u8]] = &[
            br#"[{"client_id": "a"}, {"client_id": "a"}, {"x": 1}, 7, "s", null]"#,
            br#"{"v": 1, "clients": [{"client_id": "a\"]"}], "w": {"clients": 2}}"#,
            br#"{"clients": [{"client_id": "a"}], "clients": [{"client_id": "b"}]}"#,
            br#"{"clients": [{"client_id": "a"}], "clients": []}"#,
            br#"{"clients": [{"client_id": "a"}], "clients": 1}"#,
            br#"{"clients": 1, "clients": [{"client_id": "a"}]}"#,
            br#"[{"client_id": "a", "n": 1e400}]"#,
            br#"{"n": 1e400, "clients": []}"#,
            br#"[{"client_id": "\ud800"}]"#,
            br#"[{"client_id": "a"}"#,
            b"[{\"client_id\": \"\xff\"}]",
            b"\xef\xbb\xbf[]",
            b"[] x",
            b"",
        ];
        for doc in docs {
            agrees_with_whole_parse(doc).unwrap();
        }
        let deep = |n: usize| format!("[{}{}]", "[".repeat(n), "]".repeat(n)).into_bytes();
        agrees_with_whole_parse(&deep(125)).unwrap();
        agrees_with_whole_parse(&deep(126)).unwrap();
        agrees_with_whole_parse(&deep(127)).unwrap();
    }

    #[test]
    fn a_jwks_copy_due_for_renewal_may_be_fetched_once_before_min_refresh() {
        let e =
            JwksEntry { fetched_at_ms: Some(0), attempted_at_ms: 0, max_age_ms: Some(10_000), ..Default::default() };
        assert!(!e.may_fetch(7_999, 60, 300_000), "fresh: only after min_refresh");
        assert!(e.may_fetch(8_000, 60, 300_000), "due: at once");
        let attempted = JwksEntry { attempted_at_ms: 8_000, ..e.clone() };
        assert!(!attempted.may_fetch(11_000, 60, 300_000), "one renewal attempt, then min_refresh again");
        assert!(attempted.may_fetch(68_000, 60, 300_000));
    }

    #[test]
    fn a_jwks_copy_without_its_own_max_age_uses_the_configured_one() {
        let e = JwksEntry { fetched_at_ms: Some(0), ..Default::default() };
        assert_eq!(e.freshness(299_999, 300_000), Freshness::Due);
        assert_eq!(e.freshness(300_000, 300_000), Freshness::Expired);
        assert_eq!(JwksEntry::default().freshness(u64::MAX, 1), Freshness::Fresh, "no copy yet");
    }

    #[test]
    fn jwks_refetch_waits_min_refresh_from_the_last_attempt() {
        let e = JwksEntry { attempted_at_ms: 10_000, ..Default::default() };
        assert!(!e.may_refetch(10_999, 1));
        assert!(e.may_refetch(11_000, 1));
    }

    #[test]
    fn meta_is_stored_as_json_with_every_field_and_read_back() {
        let mut m = Meta {
            etag: Some("\"v1\"".into()),
            clients: 3,
            refused: 1,
            generation: 2,
            buckets: 64,
            ..Default::default()
        };
        m.succeeded(5_000, 30, 1);
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(text.starts_with(r#"{"loaded_at_ms":5000,"next_at_ms":"#), "{text}");
        assert!(
            text.ends_with(
                r#""etag":"\"v1\"","clients":3,"refused":1,"failures":0,"last_error":null,"generation":2,"buckets":64}"#
            ),
            "{text}"
        );
        assert_eq!(Meta::decode(Some(&m.encode())), m);
    }

    #[test]
    fn unreadable_meta_is_the_default() {
        assert_eq!(Meta::decode(None), Meta::default());
        assert_eq!(Meta::decode(Some(b"{")), Meta::default());
        assert_eq!(Meta::decode(Some(br#"{"next_at_ms": 1}"#)), Meta::default());
        assert_eq!(
            Meta::decode(Some(br#"{"next_at_ms":1,"clients":1,"refused":0,"failures":4294967296}"#)),
            Meta::default()
        );
    }

    #[test]
    fn a_jwks_entry_is_stored_as_json_and_read_back() {
        let e = JwksEntry {
            thumbprints: vec!["ab".repeat(32)],
            fetched_at_ms: None,
            attempted_at_ms: 7,
            last_error: Some("timeout".into()),
            max_age_ms: Some(300_000),
        };
        let text = String::from_utf8(e.encode()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"thumbprints":["{}"],"fetched_at_ms":null,"attempted_at_ms":7,"last_error":"timeout","max_age_ms":300000}}"#,
                "ab".repeat(32)
            )
        );
        assert_eq!(JwksEntry::decode(Some(text.as_bytes())), Some(e));
        assert_eq!(JwksEntry::decode(Some(br#"{"thumbprints":[1],"attempted_at_ms":7}"#)), None);
    }

    #[test]
    fn meta_written_before_generation_and_buckets_existed_reads_them_as_zero() {
        let m = Meta::decode(Some(
            br#"{"loaded_at_ms":1,"next_at_ms":2,"etag":null,"clients":3,"refused":0,"failures":0,"last_error":null}"#,
        ));
        assert_eq!((m.clients, m.generation, m.buckets), (3, 0, 0));
    }

    #[test]
    fn keys_are_prefixed() {
        let k = Keys::new("oauth-mtls/p/");
        assert_eq!(k.meta(), "oauth-mtls/p/registry/v2/meta");
        assert_eq!(k.lease(), "oauth-mtls/p/registry/v2/lease");
        assert_eq!(k.bucket(64, 3), "oauth-mtls/p/registry/v2/64/3");
        assert!(k.jwks("https://x/j").starts_with("oauth-mtls/p/jwks/"));
    }
}
