//! A worker's revocation checking: CRLs fetched and loaded into shared data a slice per tick (one worker at a
//! time per CRL), OCSP asked on a miss and its answer shared by every worker, and a certificate's status from
//! both (`revocation::store::combine`).

use crate::cert::Certificate;
use crate::config::RevocationConfig;
use crate::header;
use crate::oauth::jwks::JwksUri;
use crate::oauth::response;
use crate::proxy::cache::Lru;
use crate::proxy::host::{CallResponse, Host, Level, Metric};
use crate::proxy::memory::{Budget, Weigh, ENTRY_OVERHEAD};
use crate::proxy::worker::take;
use crate::revocation::ca::Ca;
use crate::revocation::crl::{self, CrlError, Digest, Opened, Unverified};
use crate::revocation::ocsp;
use crate::revocation::store::{self, CrlEvidence, CrlMeta, Decision, Keys, OcspEntry, OcspView, StoredStatus};
use crate::revocation::target::Target;
use crate::revocation::Status;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// CRL entries decoded per tick while a CRL loads (a few milliseconds of a worker's time).
const CRL_ENTRIES_PER_SLICE: usize = 500;
/// CRL buckets written (or cleared) per tick.
const CRL_BUCKETS_PER_SLICE: u32 = 64;
/// A CRL's metadata is read again from shared data after this long (a new CRL applies within it).
const META_MEMO_MS: u64 = 1000;
/// An encoded CRL entry is at least this long (SEQUENCE, INTEGER, UTCTime): the bucket count is estimated from
/// the entries' bytes before they are read.
const MIN_ENTRY_BYTES: usize = 24;
const TARGET_CACHE_ENTRIES: usize = 1024;
const LOOKUP_CACHE_ENTRIES: usize = 8192;
/// Issuers not covered that are each logged once.
const LOGGED_ISSUERS: usize = 16;

/// What revocation says of one authenticated certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Good,
    /// Revoked, by the source named.
    Revoked(&'static str),
    /// No fresh status, and why (`on_unavailable` decides).
    NoStatus(String),
    /// Its issuer is not in `revocation.issuers`: not checked.
    NotCovered,
    /// The responder is to be asked: the caller claims, dispatches and holds the request.
    Ask(OcspQuestion),
    /// Another request's call for this certificate is under way.
    Wait,
}

/// One OCSP call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspQuestion {
    /// The certificate's SHA-256 (this worker remembers answers by it).
    pub certificate: [u8; 32],
    pub ca: usize,
    pub serial: Vec<u8>,
    pub responder: JwksUri,
    /// The GET path (RFC 6960 Appendix A.1).
    pub path: String,
}

/// Bytes of a CRL's signed part hashed per tick (a few milliseconds).
const CRL_HASH_BYTES_PER_SLICE: usize = 128 << 10;

enum Phase {
    /// The signed bytes are hashed a slice per tick from `offset`, then the signature verified.
    Hashing {
        offset: usize,
        digest: Box<Digest>,
        unverified: Box<Unverified>,
    },
    Reading {
        offset: usize,
    },
    Writing {
        next: u32,
    },
}

/// A replaced generation's buckets, emptied from `not_before_ms` on, when no worker can still be reading them (a
/// worker re-reads the metadata at least every `META_MEMO_MS`).
struct Clearing {
    url: String,
    generation: u64,
    buckets: u32,
    next: u32,
    not_before_ms: u64,
}

/// What a cleared bucket holds: not a well-formed bucket, so that a reader that still names its generation
/// reads the metadata again instead of taking "not listed" from it.
const CLEARED: [u8; 1] = [0xff];

/// A CRL being loaded by this worker.
struct CrlLoad {
    url: String,
    der: Vec<u8>,
    opened: Opened,
    buckets: Vec<Vec<u8>>,
    entries: u64,
    generation: u64,
    etag: Option<String>,
    started_ms: u64,
    slices: u32,
    phase: Phase,
}

pub struct Revocation {
    keys: Keys,
    targets: RefCell<Lru<[u8; 32], Option<Rc<Target>>>>,
    /// (CRL generation, certificate SHA-256) → listed (generations are random per load: unique across CRLs).
    lookups: RefCell<Lru<(u64, [u8; 32]), bool>>,
    /// CRL metadata by URL and when it was read.
    metas: RefCell<HashMap<String, (u64, Rc<CrlMeta>)>>,
    /// Fresh OCSP answers this worker has seen, by certificate SHA-256: (status, until).
    answers: RefCell<Lru<[u8; 32], (Status, u64)>>,
    call: Cell<Option<u32>>,
    call_url: RefCell<Option<(String, Option<String>)>>,
    loading: RefCell<Option<CrlLoad>>,
    clearing: RefCell<Vec<Clearing>>,
    logged: RefCell<Vec<Vec<u8>>>,
    seed: Cell<u64>,
}

impl Revocation {
    pub fn new(prefix: &str, budget: Budget, seed: u64) -> Revocation {
        let part = budget.revocation();
        let half = crate::proxy::memory::Part { max_bytes: part.max_bytes / 2, max_entry: part.max_entry / 2 };
        let quarter = crate::proxy::memory::Part { max_bytes: part.max_bytes / 4, max_entry: part.max_entry / 4 };
        Revocation {
            keys: Keys::new(prefix),
            targets: RefCell::new(Lru::new(TARGET_CACHE_ENTRIES, half)),
            lookups: RefCell::new(Lru::new(LOOKUP_CACHE_ENTRIES, quarter)),
            metas: RefCell::new(HashMap::new()),
            answers: RefCell::new(Lru::new(LOOKUP_CACHE_ENTRIES, quarter)),
            call: Cell::new(None),
            call_url: RefCell::new(None),
            loading: RefCell::new(None),
            clearing: RefCell::new(Vec::new()),
            logged: RefCell::new(Vec::new()),
            seed: Cell::new(seed),
        }
    }

    pub fn cached_bytes(&self) -> usize {
        let t = self.targets.borrow().bytes();
        t.saturating_add(self.lookups.borrow().bytes()).saturating_add(self.answers.borrow().bytes())
    }

    pub fn is_loading(&self) -> bool {
        self.loading.borrow().is_some()
    }

    pub fn is_call(&self, token: u32) -> bool {
        self.call.get() == Some(token)
    }

    /// Every CRL location: the configured ones, then those found in leaves (`use_distribution_points`).
    fn crl_urls(&self, host: &dyn Host, config: &RevocationConfig) -> Vec<String> {
        let mut urls: Vec<String> = config.crl_urls.iter().map(|u| u.uri.clone()).collect();
        if config.use_distribution_points {
            let found: Vec<String> = host
                .shared_get(&self.keys.distribution_points())
                .0
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            for url in found {
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
        }
        urls
    }

    /// Adds the distribution points of a leaf to the CRLs every worker loads (up to `MAX_CRLS` in all).
    fn register_distribution_points(&self, host: &dyn Host, config: &RevocationConfig, new: &[String]) {
        let configured = config.crl_urls.len();
        let key = self.keys.distribution_points();
        let added = take(host, &key, b"[]", |current| {
            let mut found: Vec<String> = current.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
            let before = found.len();
            for url in new {
                if !found.contains(url) && configured.saturating_add(found.len()) < crate::config::MAX_CRLS {
                    found.push(url.clone());
                }
            }
            (found.len() != before).then(|| serde_json::to_vec(&found).unwrap_or_default())
        });
        if added {
            host.log(Level::Info, &format!("revocation: CRL distribution point(s) to load: {}", new.join(", ")));
        }
    }

    fn meta(&self, host: &dyn Host, url: &str, now: u64) -> Rc<CrlMeta> {
        if let Some((read, meta)) = self.metas.borrow().get(url) {
            // A CRL not loaded yet is looked up again each time: its first load applies at once.
            if meta.generation != 0 && now.saturating_sub(*read) < META_MEMO_MS {
                return meta.clone();
            }
        }
        let meta = Rc::new(CrlMeta::decode(host.shared_get(&self.keys.crl_meta(url)).0.as_deref()));
        self.metas.borrow_mut().insert(url.to_string(), (now, meta.clone()));
        meta
    }

    fn write_meta(&self, host: &dyn Host, url: &str, meta: CrlMeta) {
        if host.shared_set(&self.keys.crl_meta(url), &meta.encode(), None).is_err() {
            host.log(Level::Error, "revocation: cannot write shared data");
        }
        self.metas.borrow_mut().insert(url.to_string(), (host.now_ms(), Rc::new(meta)));
    }

    fn target(&self, certificate: &Certificate) -> Result<Rc<Target>, String> {
        if let Some(known) = self.targets.borrow_mut().get_mut(&certificate.sha256) {
            return known.clone().ok_or_else(|| "its issuer, serial or status locations cannot be read".to_string());
        }
        let target = Target::of(&certificate.der).ok().map(Rc::new);
        let weight = target.as_ref().map_or(0, |t| t.weight()).saturating_add(ENTRY_OVERHEAD);
        self.targets.borrow_mut().insert(certificate.sha256, target.clone(), weight);
        target.ok_or_else(|| "its issuer, serial or status locations cannot be read".to_string())
    }

    /// The revocation status of an authenticated certificate, from what shared data holds now.
    pub fn check(&self, host: &dyn Host, config: &RevocationConfig, certificate: &Certificate) -> Check {
        let target = match self.target(certificate) {
            Ok(t) => t,
            Err(why) => return Check::NoStatus(format!("the client certificate: {why}")),
        };
        let Some((ca_index, ca)) = Ca::find(&config.issuers, &target.issuer_name) else {
            self.not_covered(host, &target);
            return Check::NotCovered;
        };
        let now = host.now_ms();
        let max_stale_ms = config.max_stale_seconds.saturating_mul(1000);
        let mut urls = self.crl_urls(host, config);
        if config.use_distribution_points {
            let new: Vec<String> = target.crl_urls.iter().filter(|u| !urls.contains(u)).cloned().collect();
            if !new.is_empty() {
                self.register_distribution_points(host, config, &new);
                urls = self.crl_urls(host, config);
            }
        }
        let mut evidence = Vec::new();
        let mut pending = Vec::new();
        for url in &urls {
            let meta = self.meta(host, url, now);
            if meta.generation == 0 {
                // Not loaded yet: whose CRL it is is not known. It matters if it is the leaf's own.
                if target.crl_urls.contains(url) || !config.use_distribution_points {
                    pending.push(meta.stale(now, max_stale_ms).unwrap_or_default());
                }
                continue;
            }
            if meta.ca != ca_index {
                continue;
            }
            let mut listed = self.listed(host, url, &meta, &target.serial, certificate.sha256);
            if listed.is_none() {
                // Its generation may just have been replaced and cleared: read the metadata again, once.
                self.metas.borrow_mut().remove(url);
                let fresh = self.meta(host, url, now);
                if fresh.generation != meta.generation && fresh.ca == ca_index {
                    listed = self.listed(host, url, &fresh, &target.serial, certificate.sha256);
                }
            }
            evidence.push(match listed {
                Some(true) => CrlEvidence::Listed,
                Some(false) => CrlEvidence::NotListed { stale: meta.stale(now, max_stale_ms) },
                None => CrlEvidence::Unavailable("a CRL bucket in shared data is unreadable".to_string()),
            });
        }
        if evidence.is_empty() && !pending.is_empty() {
            evidence.push(CrlEvidence::Unavailable(pending.join("; ")));
        }
        let responder = config
            .ocsp
            .then(|| config.ocsp_url.clone().or_else(|| target.ocsp_urls.iter().find_map(|u| JwksUri::parse(u).ok())));
        let view = match &responder {
            None => None,
            Some(None) => Some(OcspView::Failed("the certificate names no OCSP responder".to_string())),
            Some(Some(_)) => Some(self.ocsp_view(host, config, (ca_index, &target.serial, certificate.sha256), now)),
        };
        match store::combine(&evidence, view.as_ref()) {
            Decision::Good => Check::Good,
            Decision::Revoked(by) => Check::Revoked(by),
            Decision::NoStatus(why) => Check::NoStatus(why),
            Decision::Wait => Check::Wait,
            Decision::Ask => {
                let Some(Some(responder)) = responder else {
                    return Check::NoStatus("no OCSP responder".to_string());
                };
                match ocsp::request(ca, &target.serial) {
                    Ok(der) => Check::Ask(OcspQuestion {
                        certificate: certificate.sha256,
                        ca: ca_index,
                        serial: target.serial.clone(),
                        path: ocsp::get_path(&responder.path, &der),
                        responder,
                    }),
                    Err(e) => Check::NoStatus(format!("the OCSP request cannot be encoded: {e}")),
                }
            }
        }
    }

    fn not_covered(&self, host: &dyn Host, target: &Target) {
        host.metric(Metric::RevocationNotCovered, 1);
        let mut logged = self.logged.borrow_mut();
        if logged.len() < LOGGED_ISSUERS && !logged.contains(&target.issuer_name) {
            logged.push(target.issuer_name.clone());
            let issuer = crate::revocation::name_text(&target.issuer_name);
            host.log(
                Level::Warn,
                &format!(
                    "revocation: certificates issued by {} are not checked: that CA is not in revocation.issuers",
                    response::for_log(&issuer)
                ),
            );
        }
    }

    /// Whether the CRL at `url` lists `serial` (of the certificate `sha256`); `None` if its bucket cannot be read.
    fn listed(&self, host: &dyn Host, url: &str, meta: &CrlMeta, serial: &[u8], sha256: [u8; 32]) -> Option<bool> {
        let key = (meta.generation, sha256);
        if let Some(listed) = self.lookups.borrow_mut().get_mut(&key) {
            return Some(*listed);
        }
        let bucket = store::bucket_of(serial, meta.buckets);
        let bytes = host.shared_get(&self.keys.crl_bucket(url, meta.generation, bucket)).0?;
        let listed = store::bucket_lists(&bytes, serial)?;
        self.lookups.borrow_mut().insert(key, listed, ENTRY_OVERHEAD.saturating_add(48));
        Some(listed)
    }

    fn ocsp_view(
        &self,
        host: &dyn Host,
        config: &RevocationConfig,
        question: (usize, &[u8], [u8; 32]),
        now: u64,
    ) -> OcspView {
        let (ca, serial, sha256) = question;
        if let Some((status, until)) = self.answers.borrow_mut().get_mut(&sha256) {
            if *until > now {
                return OcspView::Fresh(*status);
            }
        }
        let entry = OcspEntry::decode(host.shared_get(&self.keys.ocsp(ca, serial)).0.as_deref());
        let view = entry.view(now, config.timeout_ms.saturating_add(100));
        if let (OcspView::Fresh(status), true) = (&view, entry.until_ms > now) {
            self.answers.borrow_mut().insert(sha256, (*status, entry.until_ms), ENTRY_OVERHEAD.saturating_add(48));
        }
        view
    }

    /// Claims the call for `question` across workers: `false` if another request's call is under way.
    pub fn claim_ocsp(&self, host: &dyn Host, config: &RevocationConfig, question: &OcspQuestion) -> bool {
        let now = host.now_ms();
        let timeout = config.timeout_ms.saturating_add(100);
        take(host, &self.keys.ocsp(question.ca, &question.serial), &OcspEntry::default().encode(), |current| {
            let mut entry = OcspEntry::decode(current);
            if entry.view(now, timeout) != OcspView::Absent {
                return None;
            }
            entry.attempted_ms = now;
            Some(entry.encode())
        })
    }

    /// Stores what the responder answered (or that it did not) for every worker.
    pub fn store_ocsp(&self, host: &dyn Host, config: &RevocationConfig, question: &OcspQuestion, r: &CallResponse) {
        let key = self.keys.ocsp(question.ca, &question.serial);
        let now = host.now_ms();
        let max_age_ms = config.ocsp_max_age_seconds.saturating_mul(1000);
        let answer = match (r.status, config.issuers.get(question.ca)) {
            (None, _) => Err("no response (timeout, reset or no healthy upstream)".to_string()),
            (_, None) => Err("the CA is no longer configured".to_string()),
            (Some(_), _) if r.too_large => Err("the response is too large".to_string()),
            (Some(200), Some(ca)) => {
                ocsp::verify(&r.body, ca, &question.serial, now, max_age_ms).map_err(|e| e.to_string())
            }
            (Some(status), _) => Err(format!("HTTP status {status}")),
        };
        let mut entry = OcspEntry::decode(host.shared_get(&key).0.as_deref());
        let serial = crate::hex::encode(&question.serial);
        match answer {
            Ok(answer) => {
                let until = answer.this_update_ms.saturating_add(max_age_ms);
                let until = answer.next_update_ms.map_or(until, |n| n.min(until));
                entry.status = Some(StoredStatus::from(answer.status));
                entry.until_ms = until;
                entry.error = None;
                host.metric(Metric::RevocationOcspOk, 1);
                host.log(
                    Level::Debug,
                    &format!("revocation: OCSP says serial {serial} is {} until {until}", answer.status.name()),
                );
                if until > now {
                    let weight = ENTRY_OVERHEAD.saturating_add(48);
                    self.answers.borrow_mut().insert(question.certificate, (answer.status, until), weight);
                }
            }
            Err(e) => {
                entry.failed_ms = now.max(entry.attempted_ms);
                entry.error = Some(response::one_line(&e));
                host.metric(Metric::RevocationOcspFailed, 1);
                host.log(
                    Level::Warn,
                    &format!(
                        "revocation: OCSP for serial {serial} at {} gave no status: {}",
                        response::for_log(&question.responder.uri),
                        response::for_log(&e)
                    ),
                );
            }
        }
        if host.shared_set(&key, &entry.encode(), None).is_err() {
            host.log(Level::Error, "revocation: cannot write shared data");
        }
    }

    /// Every tick: a slice of the CRL load in progress, or a CRL fetch when one is due and this worker claims
    /// it. `true` while a load is in progress (the worker then ticks fast).
    pub fn on_tick(&self, host: &dyn Host, config: &RevocationConfig) -> bool {
        self.clear_replaced(host);
        if self.loading.borrow().is_some() {
            self.slice(host, config);
            return self.loading.borrow().is_some();
        }
        if self.call.get().is_some() {
            return false;
        }
        let now = host.now_ms();
        let refresh_ms = config.refresh_seconds.saturating_mul(1000);
        for url in self.crl_urls(host, config) {
            let due = |meta: &CrlMeta| meta.attempted_ms == 0 || now >= meta.attempted_ms.saturating_add(refresh_ms);
            if !due(&self.meta(host, &url, now)) {
                continue;
            }
            let claimed = take(host, &self.keys.crl_meta(&url), &CrlMeta::default().encode(), |current| {
                let mut meta = CrlMeta::decode(current);
                if !due(&meta) {
                    return None;
                }
                meta.attempted_ms = now;
                Some(meta.encode())
            });
            self.metas.borrow_mut().remove(&url);
            if !claimed {
                continue;
            }
            let Ok(parsed) = JwksUri::parse(&url) else { continue };
            let etag = self.meta(host, &url, now).etag.clone();
            let mut extra = vec![(header::ACCEPT, "application/pkix-crl")];
            if let Some(etag) = &etag {
                extra.push((header::IF_NONE_MATCH, etag.as_str()));
            }
            match host.http_get(&config.cluster, &parsed.authority, &parsed.path, &extra, config.timeout_ms) {
                Ok(token) => {
                    self.call.set(Some(token));
                    *self.call_url.borrow_mut() = Some((url, etag));
                }
                Err(e) => self.crl_failed(host, &url, &format!("cannot call cluster {}: {e}", config.cluster)),
            }
            break;
        }
        false
    }

    /// Empties the buckets of replaced generations whose time has come, a slice per tick.
    fn clear_replaced(&self, host: &dyn Host) {
        let now = host.now_ms();
        let mut clearing = self.clearing.borrow_mut();
        let Some(c) = clearing.iter_mut().find(|c| c.not_before_ms <= now) else { return };
        let end = c.next.saturating_add(CRL_BUCKETS_PER_SLICE).min(c.buckets);
        for b in c.next..end {
            let _ = host.shared_set(&self.keys.crl_bucket(&c.url, c.generation, b), &CLEARED, None);
        }
        c.next = end;
        clearing.retain(|c| c.next < c.buckets);
    }

    fn crl_failed(&self, host: &dyn Host, url: &str, error: &str) {
        let mut meta = CrlMeta::decode(host.shared_get(&self.keys.crl_meta(url)).0.as_deref());
        meta.last_error = Some(response::one_line(error));
        self.write_meta(host, url, meta);
        host.metric(Metric::RevocationCrlFailed, 1);
        host.log(
            Level::Warn,
            &format!(
                "revocation: CRL {} not loaded, keeping the last good copy: {}",
                response::for_log(url),
                response::for_log(error)
            ),
        );
    }

    /// The answer to this worker's CRL fetch; `true` if a load starts (the worker then ticks fast).
    pub fn on_crl_response(&self, host: &dyn Host, config: &RevocationConfig, response: CallResponse) -> bool {
        self.call.set(None);
        let Some((url, etag)) = self.call_url.borrow_mut().take() else { return false };
        let now = host.now_ms();
        match response.status {
            Some(304) if etag.is_some() => {
                let mut meta = CrlMeta::decode(host.shared_get(&self.keys.crl_meta(&url)).0.as_deref());
                if meta.generation != 0 {
                    meta.fetched_ms = Some(now);
                    meta.last_error = None;
                    self.write_meta(host, &url, meta);
                    host.metric(Metric::RevocationCrlOk, 1);
                    return false;
                }
                self.crl_failed(host, &url, "304 Not Modified for a CRL that is not loaded");
                return false;
            }
            Some(200) if !response.too_large => {}
            Some(200) => {
                self.crl_failed(host, &url, &format!("larger than max_crl_bytes ({})", config.max_crl_bytes));
                return false;
            }
            Some(status) => {
                self.crl_failed(host, &url, &format!("HTTP status {status}"));
                return false;
            }
            None => {
                self.crl_failed(host, &url, "no response (timeout, reset or no healthy upstream)");
                return false;
            }
        }
        let der = match crl::der_of(&response.body) {
            Ok(der) => der.into_owned(),
            Err(e) => {
                self.crl_failed(host, &url, &e.to_string());
                return false;
            }
        };
        let unverified = match crl::open_unverified(&der, &config.issuers) {
            Ok(o) => o,
            Err(e) => {
                self.crl_failed(host, &url, &e.to_string());
                return false;
            }
        };
        let Some(digest) = Digest::of(&unverified.algorithm) else {
            self.crl_failed(host, &url, &CrlError::UnsupportedSignature(unverified.algorithm.clone()).to_string());
            return false;
        };
        let opened = unverified.opened.clone();
        let current = CrlMeta::decode(host.shared_get(&self.keys.crl_meta(&url)).0.as_deref());
        if current.generation != 0 && opened.this_update_ms < current.this_update_ms {
            self.crl_failed(host, &url, "its thisUpdate is older than the CRL already loaded (a replayed CRL?)");
            return false;
        }
        if opened.next_update_ms.is_some_and(|n| n < now) {
            self.crl_failed(
                host,
                &url,
                &CrlError::Unsupported("an expired CRL (its nextUpdate has passed)").to_string(),
            );
            return false;
        }
        let estimate = opened.entries.len() / MIN_ENTRY_BYTES;
        let buckets = store::bucket_count(estimate);
        let seed = self.seed.get().wrapping_mul(6_364_136_223_846_793_005).wrapping_add(now | 1);
        self.seed.set(seed);
        let generation = if seed == 0 || seed == current.generation { seed.wrapping_add(2) } else { seed };
        *self.loading.borrow_mut() = Some(CrlLoad {
            url,
            phase: Phase::Hashing {
                offset: unverified.tbs.start,
                digest: Box::new(digest),
                unverified: Box::new(unverified),
            },
            buckets: vec![Vec::new(); usize::try_from(buckets).unwrap_or(1)],
            der,
            opened,
            entries: 0,
            generation,
            etag: response.etag,
            started_ms: now,
            slices: 0,
        });
        true
    }

    fn slice(&self, host: &dyn Host, config: &RevocationConfig) {
        let Some(mut load) = self.loading.borrow_mut().take() else { return };
        load.slices = load.slices.saturating_add(1);
        let count = u32::try_from(load.buckets.len()).unwrap_or(1);
        let phase = std::mem::replace(&mut load.phase, Phase::Writing { next: 0 });
        match phase {
            Phase::Hashing { offset, mut digest, unverified } => {
                let end = offset.saturating_add(CRL_HASH_BYTES_PER_SLICE).min(unverified.tbs.end);
                digest.update(load.der.get(offset..end).unwrap_or_default());
                if end < unverified.tbs.end {
                    load.phase = Phase::Hashing { offset: end, digest, unverified };
                } else {
                    if let Err(e) = unverified.verify(&config.issuers, &digest.finish()) {
                        return self.crl_failed(host, &load.url, &e.to_string());
                    }
                    load.phase = Phase::Reading { offset: load.opened.entries.start };
                }
            }
            Phase::Reading { offset } => {
                let rest = load.der.get(offset..load.opened.entries.end).unwrap_or_default();
                match crl::entries(rest, CRL_ENTRIES_PER_SLICE) {
                    Err(e) => return self.crl_failed(host, &load.url, &e.to_string()),
                    Ok((serials, consumed)) => {
                        for serial in &serials {
                            let b = store::bucket_of(serial, count);
                            if let Some(bucket) = load.buckets.get_mut(usize::try_from(b).unwrap_or(0)) {
                                store::push_serial(bucket, serial);
                            }
                        }
                        load.entries = load.entries.saturating_add(serials.len() as u64);
                        let offset = offset.saturating_add(consumed);
                        load.phase = if consumed == 0 || offset >= load.opened.entries.end {
                            Phase::Writing { next: 0 }
                        } else {
                            Phase::Reading { offset }
                        };
                    }
                }
            }
            Phase::Writing { next } => {
                let end = next.saturating_add(CRL_BUCKETS_PER_SLICE).min(count);
                for b in next..end {
                    let bytes =
                        load.buckets.get(usize::try_from(b).unwrap_or(0)).map(Vec::as_slice).unwrap_or_default();
                    if host.shared_set(&self.keys.crl_bucket(&load.url, load.generation, b), bytes, None).is_err() {
                        return self.crl_failed(host, &load.url, "cannot write shared data");
                    }
                }
                if end >= count {
                    return self.switch(host, config, &load);
                }
                load.phase = Phase::Writing { next: end };
            }
        }
        *self.loading.borrow_mut() = Some(load);
    }

    /// The buckets are written: the metadata switches every worker to the new CRL; the previous generation's
    /// buckets are cleared later.
    fn switch(&self, host: &dyn Host, config: &RevocationConfig, load: &CrlLoad) {
        let now = host.now_ms();
        let mut meta = CrlMeta::decode(host.shared_get(&self.keys.crl_meta(&load.url)).0.as_deref());
        let previous = (meta.generation, meta.buckets);
        meta.generation = load.generation;
        meta.ca = load.opened.ca;
        meta.this_update_ms = load.opened.this_update_ms;
        meta.next_update_ms = load.opened.next_update_ms;
        meta.fetched_ms = Some(now);
        meta.buckets = u32::try_from(load.buckets.len()).unwrap_or(1);
        meta.entries = load.entries;
        meta.last_error = None;
        meta.etag = load.etag.clone();
        self.write_meta(host, &load.url, meta);
        host.metric(Metric::RevocationCrlOk, 1);
        let issuer = config.issuers.get(load.opened.ca).map_or("?", |c| c.subject.as_str());
        host.log(
            Level::Info,
            &format!(
                "revocation: loaded CRL {} of {} ({} revoked, {} bytes) in {} ms over {} ticks",
                response::for_log(&load.url),
                response::for_log(issuer),
                load.entries,
                load.der.len(),
                now.saturating_sub(load.started_ms),
                load.slices
            ),
        );
        if previous.0 != 0 {
            self.clearing.borrow_mut().push(Clearing {
                url: load.url.clone(),
                generation: previous.0,
                buckets: previous.1,
                next: 0,
                not_before_ms: now.saturating_add(3 * META_MEMO_MS),
            });
        }
    }
}
