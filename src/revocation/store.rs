//! Revocation state kept in shared data for every worker, and how the sources combine into one status.
//!
//! A CRL is stored as a small metadata record and buckets of revoked serial numbers: a lookup reads the
//! metadata and the one bucket its serial hashes to, never the whole list. A new CRL is written under a new
//! generation and switched to by its metadata, so that readers never see half a list. An OCSP answer is one
//! record per certificate.

use serde_json::{json, Map, Value};

use crate::revocation::Status;

/// How many serial numbers a CRL bucket holds, about (a lookup after a change copies one bucket).
pub const SERIALS_PER_BUCKET: usize = 128;
/// After a failed OCSP call, the next one for that certificate waits this long (a down responder is not
/// asked once per request).
pub const OCSP_RETRY_MS: u64 = 1000;

/// Shared-data keys of the revocation state, under the plugin's prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

fn url_id(url: &str) -> String {
    crate::hex::encode(crate::cert::sha256(url.as_bytes()).get(..8).unwrap_or_default())
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: format!("{prefix}/revocation") }
    }
    pub fn crl_meta(&self, url: &str) -> String {
        format!("{}/crl/{}/meta", self.prefix, url_id(url))
    }
    pub fn crl_lease(&self, url: &str) -> String {
        format!("{}/crl/{}/lease", self.prefix, url_id(url))
    }
    pub fn crl_bucket(&self, url: &str, generation: u64, bucket: u32) -> String {
        format!("{}/crl/{}/{generation}/{bucket}", self.prefix, url_id(url))
    }
    /// The CRL Distribution Point URLs seen in leaves (with `use_distribution_points`).
    pub fn distribution_points(&self) -> String {
        format!("{}/crl/distribution-points", self.prefix)
    }
    pub fn ocsp(&self, ca: usize, serial: &[u8]) -> String {
        format!("{}/ocsp/{ca}/{}", self.prefix, crate::hex::encode(serial))
    }
}

/// What is known of one CRL location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrlMeta {
    /// Its buckets are under this generation; 0: never loaded.
    pub generation: u64,
    pub ca: usize,
    pub this_update_ms: u64,
    pub next_update_ms: Option<u64>,
    /// The last fetch that loaded (or confirmed) a good CRL.
    pub fetched_ms: Option<u64>,
    /// The last fetch started (by any worker).
    pub attempted_ms: u64,
    pub buckets: u32,
    pub entries: u64,
    pub last_error: Option<String>,
    pub etag: Option<String>,
}

/// A stored record's JSON object (records are written by the filter; anything else reads as empty).
fn object(bytes: Option<&[u8]>) -> Map<String, Value> {
    match bytes.and_then(|b| serde_json::from_slice(b).ok()) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn number(map: &Map<String, Value>, key: &str) -> u64 {
    map.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_string)
}

impl CrlMeta {
    pub fn decode(bytes: Option<&[u8]>) -> CrlMeta {
        let m = object(bytes);
        CrlMeta {
            generation: number(&m, "generation"),
            ca: usize::try_from(number(&m, "ca")).unwrap_or(usize::MAX),
            this_update_ms: number(&m, "this_update_ms"),
            next_update_ms: m.get("next_update_ms").and_then(Value::as_u64),
            fetched_ms: m.get("fetched_ms").and_then(Value::as_u64),
            attempted_ms: number(&m, "attempted_ms"),
            buckets: u32::try_from(number(&m, "buckets")).unwrap_or(0),
            entries: number(&m, "entries"),
            last_error: text(&m, "last_error"),
            etag: text(&m, "etag"),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        json!({
            "generation": self.generation, "ca": self.ca, "this_update_ms": self.this_update_ms,
            "next_update_ms": self.next_update_ms, "fetched_ms": self.fetched_ms, "attempted_ms": self.attempted_ms,
            "buckets": self.buckets, "entries": self.entries, "last_error": self.last_error, "etag": self.etag,
        })
        .to_string()
        .into_bytes()
    }

    /// Why this CRL cannot vouch that a certificate is good now (`None`: it can).
    pub fn stale(&self, now_ms: u64, max_stale_ms: u64) -> Option<String> {
        let Some(fetched) = self.fetched_ms.filter(|_| self.generation != 0) else {
            return Some(match &self.last_error {
                Some(e) => format!("the CRL has not loaded: {e}"),
                None => "the CRL has not loaded yet".to_string(),
            });
        };
        if self.next_update_ms.is_some_and(|n| n < now_ms) {
            return Some("the CRL has expired (its nextUpdate has passed)".to_string());
        }
        let age = now_ms.saturating_sub(fetched);
        if age > max_stale_ms {
            let last = self.last_error.as_deref().unwrap_or("none");
            return Some(format!("the CRL was last fetched {} s ago (last error: {last})", age / 1000));
        }
        None
    }
}

/// FNV-1a: which bucket a serial number is in.
pub fn bucket_of(serial: &[u8], buckets: u32) -> u32 {
    let hash = serial.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    u32::try_from(hash % u64::from(buckets.max(1))).unwrap_or(0)
}

/// How many buckets a CRL of `entries` serials gets.
pub fn bucket_count(entries: usize) -> u32 {
    u32::try_from(entries.div_ceil(SERIALS_PER_BUCKET).max(1)).unwrap_or(u32::MAX)
}

/// Appends a serial number to a bucket: its length (one byte; serials are at most 20 octets, RFC 5280
/// §4.1.2.2) and its octets.
pub fn push_serial(bucket: &mut Vec<u8>, serial: &[u8]) {
    if let Ok(len) = u8::try_from(serial.len()) {
        bucket.push(len);
        bucket.extend_from_slice(serial);
    }
}

/// Whether `bucket` lists `serial`; `None` if the bucket is not well formed.
pub fn bucket_lists(bucket: &[u8], serial: &[u8]) -> Option<bool> {
    let mut rest = bucket;
    while let Some((len, tail)) = rest.split_first() {
        let (entry, tail) = tail.split_at_checked(usize::from(*len))?;
        if entry == serial {
            return Some(true);
        }
        rest = tail;
    }
    Some(false)
}

/// The stored form of a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredStatus {
    Good,
    Revoked,
    Unknown,
}

impl From<Status> for StoredStatus {
    fn from(s: Status) -> StoredStatus {
        match s {
            Status::Good => StoredStatus::Good,
            Status::Revoked => StoredStatus::Revoked,
            Status::Unknown => StoredStatus::Unknown,
        }
    }
}

impl From<StoredStatus> for Status {
    fn from(s: StoredStatus) -> Status {
        match s {
            StoredStatus::Good => Status::Good,
            StoredStatus::Revoked => Status::Revoked,
            StoredStatus::Unknown => Status::Unknown,
        }
    }
}

/// What is known of one certificate by OCSP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OcspEntry {
    /// The last verified answer, used until `until_ms`.
    pub status: Option<StoredStatus>,
    pub until_ms: u64,
    /// When a call was last started (by any worker); 0: never.
    pub attempted_ms: u64,
    /// When the last call failed, and why.
    pub failed_ms: u64,
    pub error: Option<String>,
}

/// What an OCSP record says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcspView {
    Fresh(Status),
    /// A call is under way (this worker's or another's).
    InFlight,
    /// The last call failed, too recently to ask again.
    Failed(String),
    /// Nothing fresh: the responder may be asked.
    Absent,
}

impl StoredStatus {
    fn name(self) -> &'static str {
        Status::from(self).name()
    }

    fn named(name: &str) -> Option<StoredStatus> {
        match name {
            "good" => Some(StoredStatus::Good),
            "revoked" => Some(StoredStatus::Revoked),
            "unknown" => Some(StoredStatus::Unknown),
            _ => None,
        }
    }
}

impl OcspEntry {
    pub fn decode(bytes: Option<&[u8]>) -> OcspEntry {
        let m = object(bytes);
        OcspEntry {
            status: text(&m, "status").as_deref().and_then(StoredStatus::named),
            until_ms: number(&m, "until_ms"),
            attempted_ms: number(&m, "attempted_ms"),
            failed_ms: number(&m, "failed_ms"),
            error: text(&m, "error"),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        json!({
            "status": self.status.map(StoredStatus::name), "until_ms": self.until_ms,
            "attempted_ms": self.attempted_ms, "failed_ms": self.failed_ms, "error": self.error,
        })
        .to_string()
        .into_bytes()
    }

    /// `timeout_ms`: how long a call may take before it counts as lost.
    pub fn view(&self, now_ms: u64, timeout_ms: u64) -> OcspView {
        if let Some(status) = self.status.filter(|_| self.until_ms > now_ms) {
            return OcspView::Fresh(status.into());
        }
        let answered = self.failed_ms >= self.attempted_ms || self.until_ms > self.attempted_ms;
        if self.attempted_ms != 0 && !answered && now_ms < self.attempted_ms.saturating_add(timeout_ms) {
            return OcspView::InFlight;
        }
        if self.failed_ms != 0 && now_ms < self.failed_ms.saturating_add(OCSP_RETRY_MS) {
            return OcspView::Failed(self.error.clone().unwrap_or_else(|| "the OCSP call failed".to_string()));
        }
        OcspView::Absent
    }
}

/// What one CRL says of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlEvidence {
    Listed,
    /// Not listed; `stale`: why this CRL cannot vouch for it now.
    NotListed {
        stale: Option<String>,
    },
    /// The CRL could not be read (not loaded, a bucket unreadable).
    Unavailable(String),
}

/// The combined verdict of every source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Good,
    /// Revoked, by the source named.
    Revoked(&'static str),
    /// Ask the OCSP responder.
    Ask,
    /// An OCSP call for this certificate is under way: wait for its answer.
    Wait,
    /// No fresh status, and why.
    NoStatus(String),
}

/// Refused if any source says revoked; good if none does and one gives a fresh good; else asks the OCSP
/// responder when it may (`ocsp`: OCSP is on), or there is no status.
pub fn combine(crls: &[CrlEvidence], ocsp: Option<&OcspView>) -> Decision {
    if crls.contains(&CrlEvidence::Listed) {
        return Decision::Revoked("CRL");
    }
    if ocsp == Some(&OcspView::Fresh(Status::Revoked)) {
        return Decision::Revoked("OCSP");
    }
    if crls.iter().any(|c| matches!(c, CrlEvidence::NotListed { stale: None })) {
        return Decision::Good;
    }
    let mut why: Vec<String> = crls
        .iter()
        .filter_map(|c| match c {
            CrlEvidence::NotListed { stale } => stale.clone(),
            CrlEvidence::Unavailable(e) => Some(e.clone()),
            CrlEvidence::Listed => None,
        })
        .collect();
    match ocsp {
        Some(OcspView::Fresh(Status::Good)) => return Decision::Good,
        Some(OcspView::Absent) => return Decision::Ask,
        Some(OcspView::InFlight) => return Decision::Wait,
        Some(OcspView::Fresh(Status::Unknown)) => why.push("the OCSP responder does not know the certificate".into()),
        Some(OcspView::Failed(e)) => why.push(format!("OCSP: {e}")),
        Some(OcspView::Fresh(Status::Revoked)) | None => {}
    }
    if why.is_empty() {
        why.push("no revocation source covers this certificate".to_string());
    }
    Decision::NoStatus(why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: CrlEvidence = CrlEvidence::NotListed { stale: None };

    fn stale() -> CrlEvidence {
        CrlEvidence::NotListed { stale: Some("old".into()) }
    }

    #[test]
    fn any_source_saying_revoked_refuses_whatever_the_others_say() {
        assert_eq!(combine(&[FRESH, CrlEvidence::Listed], None), Decision::Revoked("CRL"));
        assert_eq!(combine(&[CrlEvidence::Listed], Some(&OcspView::Fresh(Status::Good))), Decision::Revoked("CRL"));
        assert_eq!(combine(&[FRESH], Some(&OcspView::Fresh(Status::Revoked))), Decision::Revoked("OCSP"));
        // A stale CRL still revokes: a revocation is never undone by age.
        assert_eq!(combine(&[CrlEvidence::Listed], Some(&OcspView::Absent)), Decision::Revoked("CRL"));
    }

    #[test]
    fn a_fresh_crl_not_listing_the_certificate_is_a_fresh_good() {
        assert_eq!(combine(&[FRESH], None), Decision::Good);
        assert_eq!(combine(&[stale(), FRESH], Some(&OcspView::Absent)), Decision::Good, "no OCSP call needed");
    }

    #[test]
    fn a_fresh_ocsp_good_is_a_fresh_good() {
        assert_eq!(combine(&[stale()], Some(&OcspView::Fresh(Status::Good))), Decision::Good);
        assert_eq!(combine(&[], Some(&OcspView::Fresh(Status::Good))), Decision::Good);
    }

    #[test]
    fn without_a_fresh_good_the_responder_is_asked_or_awaited() {
        assert_eq!(combine(&[stale()], Some(&OcspView::Absent)), Decision::Ask);
        assert_eq!(combine(&[], Some(&OcspView::InFlight)), Decision::Wait);
    }

    #[test]
    fn unknown_stale_unloaded_or_failed_sources_give_no_status() {
        for (crls, ocsp) in [
            (vec![stale()], None),
            (vec![CrlEvidence::Unavailable("not loaded".into())], None),
            (vec![], Some(OcspView::Fresh(Status::Unknown))),
            (vec![], Some(OcspView::Failed("down".into()))),
            (vec![], None),
        ] {
            assert!(matches!(combine(&crls, ocsp.as_ref()), Decision::NoStatus(_)), "{crls:?} {ocsp:?}");
        }
    }

    #[test]
    fn a_crl_is_stale_before_it_loads_after_its_next_update_and_after_max_stale() {
        let meta =
            CrlMeta { generation: 7, fetched_ms: Some(1_000), next_update_ms: Some(100_000), ..Default::default() };
        assert_eq!(meta.stale(50_000, 60_000), None);
        assert!(meta.stale(70_000, 60_000).unwrap().contains("last fetched 69 s ago"));
        assert!(meta.stale(100_001, 1_000_000).unwrap().contains("expired"));
        assert!(CrlMeta::default().stale(0, 60_000).unwrap().contains("not loaded"));
    }

    #[test]
    fn records_read_back_what_was_written_and_anything_else_reads_as_empty() {
        let meta =
            CrlMeta { generation: 9, ca: 1, next_update_ms: Some(5), etag: Some("\"x\"".into()), ..Default::default() };
        assert_eq!(CrlMeta::decode(Some(&meta.encode())), meta);
        let entry = OcspEntry {
            status: Some(StoredStatus::Revoked),
            until_ms: 7,
            error: Some("e".into()),
            ..Default::default()
        };
        assert_eq!(OcspEntry::decode(Some(&entry.encode())), entry);
        assert_eq!(OcspEntry::decode(Some(b"[1]")), OcspEntry::default());
        assert_eq!(CrlMeta::decode(None), CrlMeta::default());
    }

    #[test]
    fn a_bucket_lists_exactly_the_serials_pushed_into_it() {
        let mut bucket = Vec::new();
        push_serial(&mut bucket, &[0x10, 0x02]);
        push_serial(&mut bucket, &[0x01]);
        assert_eq!(bucket_lists(&bucket, &[0x10, 0x02]), Some(true));
        assert_eq!(bucket_lists(&bucket, &[0x01]), Some(true));
        assert_eq!(bucket_lists(&bucket, &[0x10]), Some(false));
        assert_eq!(bucket_lists(&[5, 1, 2], &[1]), None, "a length past the end is not well formed");
        assert_eq!(bucket_lists(&[], &[1]), Some(false));
    }

    #[test]
    fn an_ocsp_record_is_fresh_in_flight_failed_or_absent() {
        let mut e = OcspEntry { status: Some(StoredStatus::Good), until_ms: 10_000, ..Default::default() };
        assert_eq!(e.view(9_999, 2_000), OcspView::Fresh(Status::Good));
        assert_eq!(e.view(10_000, 2_000), OcspView::Absent);
        e.attempted_ms = 20_000;
        assert_eq!(e.view(21_000, 2_000), OcspView::InFlight);
        assert_eq!(e.view(22_000, 2_000), OcspView::Absent, "a call that never answered is lost after the timeout");
        e.failed_ms = 21_500;
        assert!(matches!(e.view(22_000, 2_000), OcspView::Failed(_)));
        assert_eq!(e.view(21_500 + OCSP_RETRY_MS, 2_000), OcspView::Absent);
    }
}
