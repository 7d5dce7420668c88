//! An incremental registry load: a fetched document parsed, checked and bucketed in slices, one per tick.
//!
//! A load first reads the whole document (registrations are checked and grouped by bucket as they are
//! found; nothing is written), then hands out the buckets to write, a few per slice. A document that turns
//! out not to be valid fails before any bucket is written, so the last good copy stays intact.

use crate::oauth::registration::{RegistrationError, Stored};
use crate::oauth::tenant::{self, Tenant};
use crate::registry::bucket;
use crate::registry::scan::{Event, Scanner};
use crate::registry::{self, DocumentError, Entry};
use std::collections::BTreeMap;

/// How much one slice may do. Natively one registration costs 2-3 µs (parse, RFC 8705 checks, DN compile,
/// encode) and handing out buckets 1.5-3 ns a byte, so the default slice is 0.1-0.2 ms of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Registrations parsed and checked per slice.
    pub registrations: usize,
    /// Document bytes scanned per slice (bounds slices of large registrations, or of other members).
    pub scan_bytes: usize,
    /// Bucket bytes handed out per slice (at least one bucket).
    pub write_bytes: usize,
    /// Buckets handed out per slice (each costs a shared-data read, even when empty).
    pub write_buckets: usize,
}

impl Budget {
    /// Well under a millisecond per slice (measured: docs/configuration.md, "The registry").
    pub const DEFAULT: Budget =
        Budget { registrations: 64, scan_bytes: 32 * 1024, write_bytes: 64 * 1024, write_buckets: 64 };
}

/// Something a slice found that the operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A registration refused, with its client id (or `#position`) and why.
    Refused(String, RegistrationError),
    /// A client id listed again: no copy of it loads.
    Duplicate(String),
}

/// What one slice did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Read part of the document.
    Parsed(Vec<Finding>),
    /// The values of these buckets (index, bytes): write each one that differs from shared data.
    Write(Vec<(u32, Vec<u8>)>),
    /// Every bucket has been handed out.
    Done(Summary),
}

/// The loaded registry, for the metadata and the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub clients: u64,
    pub refused: u64,
    /// Total size of the bucket values.
    pub bytes: u64,
    pub buckets: u32,
}

enum Phase {
    Parsing { body: Vec<u8>, scanner: Scanner },
    Writing { next: u32 },
    Done,
}

/// One load in progress (owned by the worker that fetched the document).
pub struct Load {
    phase: Phase,
    budget: Budget,
    buckets: u32,
    /// Why `jwks_uri` registrations are refused, if they are.
    jwks_uri_refusal: Option<String>,
    /// The tenant of every registration, for a registry of one tenant (`registries[].tenant`).
    tenant: Option<Tenant>,
    /// Registrations so far (resets when a repeated `"clients"` member replaces the first).
    position: usize,
    /// Per bucket, by client id: the stored registration, or `None` for an id that does not load (refused,
    /// or listed twice) but is claimed, so that later copies are still duplicates (as in
    /// [`registry::parse_document`]).
    groups: Vec<BTreeMap<String, Option<Vec<u8>>>>,
    clients: u64,
    refused: u64,
    bytes: u64,
}

impl Load {
    pub fn new(
        body: Vec<u8>,
        buckets: u32,
        tenant: Option<Tenant>,
        jwks_uri_refusal: Option<String>,
        budget: Budget,
    ) -> Load {
        let buckets = buckets.max(1);
        Load {
            tenant,
            phase: Phase::Parsing { body, scanner: Scanner::new() },
            budget,
            buckets,
            jwks_uri_refusal,
            position: 0,
            groups: (0..buckets).map(|_| BTreeMap::new()).collect(),
            clients: 0,
            refused: 0,
            bytes: 0,
        }
    }

    /// Document bytes read so far and in all (both 0 once the document has been read).
    pub fn progress(&self) -> (usize, usize) {
        match &self.phase {
            Phase::Parsing { body, scanner } => (scanner.offset(), body.len()),
            _ => (0, 0),
        }
    }

    /// Does one slice of work. An error means the document is refused; nothing has been written.
    pub fn step(&mut self) -> Result<Step, DocumentError> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Parsing { body, mut scanner } => {
                let mut findings = Vec::new();
                let read = self.parse(&body, &mut scanner, &mut findings)?;
                // The document is released as soon as it has been read.
                self.phase = if read { Phase::Writing { next: 0 } } else { Phase::Parsing { body, scanner } };
                Ok(Step::Parsed(findings))
            }
            Phase::Writing { next } => {
                let mut out = Vec::new();
                let mut size = 0;
                let mut index = next;
                while index < self.buckets
                    && (out.is_empty() || (size < self.budget.write_bytes && out.len() < self.budget.write_buckets))
                {
                    let value = self.encode(index);
                    size += value.len();
                    out.push((index, value));
                    index += 1;
                }
                self.bytes += size as u64;
                self.phase = Phase::Writing { next: index };
                if out.is_empty() {
                    self.phase = Phase::Done;
                    return Ok(Step::Done(self.summary()));
                }
                Ok(Step::Write(out))
            }
            Phase::Done => Ok(Step::Done(self.summary())),
        }
    }

    fn summary(&self) -> Summary {
        Summary { clients: self.clients, refused: self.refused, bytes: self.bytes, buckets: self.buckets }
    }

    /// Reads up to the budget; `true` once the whole document has been read.
    fn parse(
        &mut self,
        body: &[u8],
        scanner: &mut Scanner,
        findings: &mut Vec<Finding>,
    ) -> Result<bool, DocumentError> {
        let start = scanner.offset();
        let mut parsed = 0;
        while parsed < self.budget.registrations {
            let used = scanner.offset() - start;
            if used >= self.budget.scan_bytes {
                return Ok(false);
            }
            match scanner.next(body, self.budget.scan_bytes - used)? {
                Event::Element(range) => {
                    let metadata = registry::parse_element(body, range, self.position)?;
                    let entry = registry::check_element(&metadata, self.position, self.tenant.as_ref());
                    self.add(entry, findings);
                    self.position += 1;
                    parsed += 1;
                }
                Event::Reset => self.reset(),
                Event::Pending => return Ok(false),
                Event::End { list: true } => return Ok(true),
                Event::End { list: false } => return Err(DocumentError::NotAList),
            }
        }
        Ok(false)
    }

    fn add(&mut self, entry: Entry, findings: &mut Vec<Finding>) {
        // The bucket of the (tenant, client id) the registration claims, loaded or not.
        let key = entry.key();
        let mut group = key.as_deref().and_then(|k| self.groups.get_mut(registry::bucket_of(k, self.buckets) as usize));
        if let (Some(group), Some(key)) = (group.as_mut(), key.as_deref()) {
            if let Some(first) = group.get_mut(key) {
                // Listed twice in one tenant: ambiguous, so no copy loads, not even a first one that did.
                self.refused += 1;
                if first.take().is_some() {
                    self.clients = self.clients.saturating_sub(1);
                    self.refused += 1;
                }
                findings.push(Finding::Duplicate(tenant::describe_key(key)));
                return;
            }
        }
        let stored: Stored = match entry {
            Entry::Loads(stored) => stored,
            Entry::Refused { key, label, error } => {
                self.refused += 1;
                findings.push(Finding::Refused(label, error));
                // The id stays claimed, so that a later copy is still a duplicate.
                if let (Some(group), Some(key)) = (group, key) {
                    group.insert(key, None);
                }
                return;
            }
        };
        let Some(group) = group else { return };
        match (&self.jwks_uri_refusal, &stored.jwks_uri) {
            (Some(why), Some(_)) => {
                self.refused += 1;
                let key = stored.key();
                findings
                    .push(Finding::Refused(tenant::describe_key(&key), RegistrationError::Unsupported(why.clone())));
                group.insert(key, None);
            }
            _ => {
                self.clients += 1;
                let entry = registry::encode_entry(&stored);
                group.insert(stored.key(), Some(entry));
            }
        }
    }

    /// A repeated `"clients"` member: what the earlier one held does not count.
    fn reset(&mut self) {
        self.groups.iter_mut().for_each(BTreeMap::clear);
        self.position = 0;
        self.clients = 0;
        self.refused = 0;
    }

    /// The value of bucket `index`; its registrations are released.
    fn encode(&mut self, index: u32) -> Vec<u8> {
        let Some(group) = self.groups.get_mut(index as usize) else { return Vec::new() };
        let group = std::mem::take(group);
        let pairs: Vec<(&str, &[u8])> =
            group.iter().filter_map(|(id, entry)| entry.as_deref().map(|e| (id.as_str(), e))).collect();
        bucket::encode(&pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Budget = Budget { registrations: 2, scan_bytes: 1 << 20, write_bytes: 1, write_buckets: 1 };

    fn doc(ids: &[&str]) -> Vec<u8> {
        let items: Vec<String> =
            ids.iter().map(|id| format!(r#"{{"client_id": "{id}", "token_endpoint_auth_method": "none"}}"#)).collect();
        format!(r#"{{"clients": [{}]}}"#, items.join(", ")).into_bytes()
    }

    /// Runs a load to the end: every step, and the buckets it handed out.
    fn run(load: &mut Load) -> Result<(Vec<Step>, Vec<Vec<u8>>), DocumentError> {
        let mut steps = Vec::new();
        let mut buckets = Vec::new();
        loop {
            let step = load.step()?;
            if let Step::Write(values) = &step {
                for (index, value) in values {
                    assert_eq!(*index as usize, buckets.len(), "buckets are handed out in order");
                    buckets.push(value.clone());
                }
            }
            let done = matches!(step, Step::Done(_));
            steps.push(step);
            if done {
                return Ok((steps, buckets));
            }
            assert!(steps.len() < 10_000, "a load always ends");
        }
    }

    #[test]
    fn a_load_takes_one_slice_per_budget_of_registrations_then_one_per_bucket() {
        let ids: Vec<String> = (0..9).map(|i| format!("c{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut load = Load::new(doc(&ids), 3, None, None, TINY);
        let (steps, buckets) = run(&mut load).unwrap();
        let parsed = steps.iter().filter(|s| matches!(s, Step::Parsed(_))).count();
        let writes = steps.iter().filter(|s| matches!(s, Step::Write(_))).count();
        // 9 registrations, 2 per slice: 5 slices (the last one also finds the end of the document).
        assert_eq!(parsed, 5);
        assert_eq!(writes, 3, "one bucket per slice");
        assert_eq!(buckets.len(), 3);
        let Some(Step::Done(summary)) = steps.last() else { panic!() };
        assert_eq!((summary.clients, summary.refused, summary.buckets), (9, 0, 3));
        assert_eq!(summary.bytes, buckets.iter().map(|b| b.len() as u64).sum::<u64>());
    }

    #[test]
    fn the_buckets_equal_those_of_the_whole_document() {
        let body = br#"[{"client_id": "b"}, {"client_id": "a", "token_endpoint_auth_method": "none"},
            {"client_id": "bad", "token_endpoint_auth_method": "tls_client_auth"}, {"client_id": "b"},
            {"client_id": "s", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": "https://x/j"},
            {"client_id": "d"}]"#;
        for refusal in [None, Some("no jwks_cluster")] {
            let mut whole = registry::parse_document(body).unwrap();
            if let Some(why) = refusal {
                whole.refuse_jwks_uri_clients(why);
            }
            let mut load = Load::new(body.to_vec(), 4, None, refusal.map(String::from), TINY);
            let (steps, buckets) = run(&mut load).unwrap();
            assert_eq!(buckets, registry::encode_buckets(&whole.clients, 4));
            let Some(Step::Done(summary)) = steps.last() else { panic!() };
            assert_eq!(summary.clients, whole.clients.len() as u64);
            assert_eq!(summary.refused, (whole.refused.len() + whole.duplicates.len() + whole.withdrawn.len()) as u64);
        }
    }

    #[test]
    fn refused_and_repeated_registrations_are_reported_as_they_are_found() {
        let body = br#"[{"client_id": "a"}, {"client_id": "bad", "token_endpoint_auth_method": "tls_client_auth"}, {"client_id": "a"}, {}]"#;
        let mut load = Load::new(body.to_vec(), 2, None, None, Budget::DEFAULT);
        let Ok(Step::Parsed(findings)) = load.step() else { panic!() };
        assert!(
            matches!(&findings[0], Finding::Refused(label, RegistrationError::SubjectValueCount(_)) if label == "bad")
        );
        assert_eq!(findings[1], Finding::Duplicate("a".into()));
        assert_eq!(findings[2], Finding::Refused("#3".into(), RegistrationError::MissingClientId));
    }

    #[test]
    fn a_document_that_breaks_midway_fails_before_any_bucket_is_handed_out() {
        let mut body = doc(&["a", "b", "c", "d", "e"]);
        body.truncate(body.len() - 10);
        let mut load = Load::new(body, 2, None, None, TINY);
        let mut steps = 0;
        let error = loop {
            match load.step() {
                Ok(Step::Parsed(_)) => steps += 1,
                Ok(other) => panic!("handed out {other:?} from a broken document"),
                Err(e) => break e,
            }
        };
        assert_eq!(steps, 2, "two good slices, then the break");
        assert!(matches!(error, DocumentError::NotJson(_)), "{error}");
    }

    #[test]
    fn a_document_that_is_not_a_list_fails() {
        let mut load = Load::new(br#"{"clients": 7}"#.to_vec(), 2, None, None, TINY);
        assert_eq!(load.step(), Err(DocumentError::NotAList));
    }

    #[test]
    fn a_registration_that_serde_json_refuses_fails_the_document() {
        let mut load = Load::new(br#"[{"client_id": "a\q"}]"#.to_vec(), 2, None, None, TINY);
        let e = load.step().unwrap_err().to_string();
        assert!(e.contains("registration #0"), "{e}");
    }

    #[test]
    fn a_repeated_clients_member_replaces_the_first_one() {
        let body = br#"{"clients": [{"client_id": "a"}, {"client_id": "b"}], "clients": [{"client_id": "c"}]}"#;
        let mut load = Load::new(body.to_vec(), 1, None, None, TINY);
        let (steps, buckets) = run(&mut load).unwrap();
        assert_eq!(registry::decode_bucket(&buckets[0]).keys().collect::<Vec<_>>(), vec!["c"]);
        let Some(Step::Done(summary)) = steps.last() else { panic!() };
        assert_eq!(summary.clients, 1);
    }

    #[test]
    fn a_slice_scans_no_more_than_its_byte_budget() {
        let body = format!(r#"{{"padding": "{}", "clients": [{{"client_id": "a"}}]}}"#, "x".repeat(1000)).into_bytes();
        let mut load = Load::new(body, 1, None, None, Budget { scan_bytes: 100, ..TINY });
        let mut slices = 0;
        loop {
            let (read, total) = load.progress();
            if total == 0 {
                break;
            }
            assert!(read <= slices * 100);
            load.step().unwrap();
            slices += 1;
        }
        assert!(slices >= 10, "{slices}");
    }
}
