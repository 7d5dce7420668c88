//! A worker's state: its configuration, the registry refresh it may run, and the caches its requests share
//! (certificates, connections, decoded registrations), within the memory budget.

use crate::config::{Config, RegistryConfig};
use crate::forwarded::source::Peer;
use crate::forwarded::source::PeerError;
use crate::header;
use crate::oauth::jwks::{self, JwksUri};
use crate::oauth::registration::Client;
use crate::oauth::response;
use crate::oauth::verdict::{Directory, JwksView, Lookup};
use crate::proxy::cache::{Certificates, Lru};
use crate::proxy::host::{CallResponse, Host, Level, Metric, SharedWriteError, Stream};
use crate::proxy::memory::{self, Weigh};
use crate::proxy::readiness::{NotReady, Readiness};
use crate::proxy::revocation::Revocation;
use crate::registry::load::{Budget, Finding, Load, Step, Summary};
use crate::registry::{self, JwksEntry, Keys, Lease, Meta};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;

/// Client certificates kept decoded per worker.
const CERTIFICATE_CACHE_ENTRIES: usize = 1024;
/// Connections whose peer (certificate, validation) a worker remembers.
const CONNECTION_CACHE_ENTRIES: usize = 4096;

/// The tick period: refreshes are checked once a second.
pub const TICK_MS: u64 = 1000;
/// The tick period while a registry load is in progress: one slice of the load per tick.
pub const LOAD_TICK_MS: u64 = 1;
/// A loading worker renews its lease every slice for this long; if it stops, another worker takes over.
const LOAD_LEASE_MS: u64 = 10_000;
/// Registry clients kept decoded per worker (older generations are dropped first, then all).
const CLIENT_CACHE_ENTRIES: usize = 4096;

/// A registry document being loaded by this worker, a slice per tick.
struct Loading {
    load: Load,
    etag: Option<String>,
    started_ms: u64,
    document_bytes: usize,
    slices: u32,
    /// A bucket in shared data was rewritten: the generation must change, even if the load fails later.
    changed: bool,
    /// After the load: the buckets of the previous bucket count still to empty (count, next index).
    clearing: Option<(u32, u32)>,
}

/// A decoded registry client (or its absence) and the generation it was read at.
type CachedClient = (u64, Option<Rc<Client>>);

/// Per-worker state: the configuration, the decoded caches, and this worker's registry call.
pub struct Worker {
    pub config: Config,
    keys: Keys,
    inline: HashMap<String, Rc<Client>>,
    /// Registry clients this worker has decoded, valid while the registry's generation is unchanged.
    clients: RefCell<Lru<String, CachedClient>>,
    meta: RefCell<Option<(u32, Rc<Meta>)>>,
    registry_call: Cell<Option<u32>>,
    loading: RefCell<Option<Loading>>,
    budget: Cell<Budget>,
    /// This worker's name in the refresh lease.
    owner: u64,
    seed: Cell<u64>,
    pub(crate) certificates: RefCell<Certificates>,
    connections: RefCell<Lru<u64, Connection>>,
    /// What this worker last added to the summed memory gauges: (cached bytes, VM memory bytes).
    reported: Cell<(i64, i64)>,
    /// Revocation checking, when configured.
    pub(crate) revocation: Option<Revocation>,
    /// The tick period last set.
    tick_period: Cell<u64>,
    /// The least severe level the proxy prints, as last asked (each tick).
    log_level: Cell<Level>,
}

/// What a worker remembers of a connection: its peer certificate by SHA-256 (the certificate itself is in the
/// certificate cache, or read again), or why it could not be read, and whether Envoy validated its chain.
#[derive(Clone)]
struct Connection {
    certificate: Option<Result<[u8; 32], PeerError>>,
    validated: bool,
}

impl Worker {
    pub fn new(config: Config, shared_data_prefix: &str, seed: u64) -> Worker {
        let inline = config.clients.iter().map(|(id, c)| (id.clone(), Rc::new(c.clone()))).collect();
        // Workers may be configured in the same millisecond: a random hasher (WASI random_get) tells them apart.
        let owner = std::collections::hash_map::RandomState::new().hash_one(seed) | 1;
        let budget = memory::Budget { total: config.memory_budget_bytes };
        let config_has_revocation = config.revocation.is_some();
        Worker {
            keys: Keys::new(shared_data_prefix),
            config,
            inline,
            clients: RefCell::new(Lru::new(CLIENT_CACHE_ENTRIES, budget.clients())),
            meta: RefCell::new(None),
            registry_call: Cell::new(None),
            loading: RefCell::new(None),
            budget: Cell::new(Budget::DEFAULT),
            owner,
            seed: Cell::new(seed),
            certificates: RefCell::new(Certificates::new(CERTIFICATE_CACHE_ENTRIES, budget.certificates())),
            connections: RefCell::new(Lru::new(CONNECTION_CACHE_ENTRIES, budget.connections())),
            reported: Cell::new((0, 0)),
            revocation: config_has_revocation.then(|| Revocation::new(shared_data_prefix, budget, seed)),
            tick_period: Cell::new(TICK_MS),
            log_level: Cell::new(Level::Info),
        }
    }

    /// What this worker's caches hold, in bytes, as charged to the memory budget.
    pub fn cached_bytes(&self) -> usize {
        let certificates = self.certificates.borrow().bytes();
        let connections = self.connections.borrow().bytes();
        let clients = self.clients.borrow().bytes();
        let revocation = self.revocation.as_ref().map_or(0, Revocation::cached_bytes);
        certificates.saturating_add(connections).saturating_add(clients).saturating_add(revocation)
    }

    /// Adds this worker's change since its last report to the gauges summed over workers: the bytes its caches
    /// hold, and the size of its VM's linear memory (`vm_bytes`, where the proxy tells it).
    pub fn report_memory(&self, host: &dyn Host, vm_bytes: Option<u64>) {
        let (cached_before, vm_before) = self.reported.get();
        let cached = i64::try_from(self.cached_bytes()).unwrap_or(i64::MAX);
        let vm = vm_bytes.map_or(vm_before, |b| i64::try_from(b).unwrap_or(i64::MAX));
        if cached != cached_before {
            host.metric(Metric::MemoryCachedBytes, cached.saturating_sub(cached_before));
        }
        if vm != vm_before {
            host.metric(Metric::MemoryVmBytes, vm.saturating_sub(vm_before));
        }
        self.reported.set((cached, vm));
    }

    /// How much of a load one tick does (tests use small budgets to see a load span many ticks).
    pub fn set_load_budget(&self, budget: Budget) {
        self.budget.set(budget);
    }

    /// A registry document or a CRL is being loaded by this worker.
    pub fn is_loading(&self) -> bool {
        self.loading.borrow().is_some() || self.revocation.as_ref().is_some_and(Revocation::is_loading)
    }

    /// The tick period this worker needs now: fast while it loads a registry document or a CRL.
    fn apply_tick_period(&self, host: &dyn Host) {
        let period = if self.is_loading() { LOAD_TICK_MS } else { TICK_MS };
        if self.tick_period.replace(period) != period {
            host.set_tick_period_ms(period);
        }
    }

    /// Asks the proxy which levels it prints (once a tick: a line it would not print is then not even formatted).
    pub fn read_log_level(&self, host: &dyn Host) {
        self.log_level.set(host.log_level());
    }

    /// Whether the proxy prints lines of `level` (as of the last tick).
    pub fn logs(&self, level: Level) -> bool {
        level >= self.log_level.get()
    }

    /// Whether this worker can serve every client it is configured for: the registry, if there is one, is
    /// usable (loaded, and no older than `max_stale_seconds`), the rule registry clients are served by.
    pub fn readiness(&self, host: &dyn Host) -> Readiness {
        let Some(reg) = &self.config.registry else { return Readiness::Ready };
        match self.current_meta(host).usable(host.now_ms(), reg.max_stale_seconds) {
            Ok(()) => Readiness::Ready,
            Err(why) => Readiness::NotReady(NotReady::from(&why)),
        }
    }

    /// Every tick: the log level, and the registry's and the CRLs' refresh or load.
    pub fn on_tick(&self, host: &dyn Host) {
        self.read_log_level(host);
        self.registry_tick(host);
        if let (Some(r), Some(config)) = (&self.revocation, &self.config.revocation) {
            r.on_tick(host, config);
            self.apply_tick_period(host);
        }
    }

    /// Whether `token` is this worker's CRL fetch.
    pub fn is_crl_call(&self, token: u32) -> bool {
        self.revocation.as_ref().is_some_and(|r| r.is_call(token))
    }

    /// A CRL fetch answered: a load starts over the next ticks.
    pub fn on_crl_response(&self, host: &dyn Host, response: CallResponse) {
        if let (Some(r), Some(config)) = (&self.revocation, &self.config.revocation) {
            r.on_crl_response(host, config, response);
            self.apply_tick_period(host);
        }
    }

    /// One slice of a registry load in progress; otherwise start a registry refresh if one is due and no
    /// other worker holds the lease.
    fn registry_tick(&self, host: &dyn Host) {
        let Some(reg) = &self.config.registry else { return };
        let now = host.now_ms();
        let meta = self.read_meta(host);
        host.metric(Metric::RegistryClients, i64::try_from(meta.clients).unwrap_or(i64::MAX));
        host.metric(Metric::RegistryRefused, i64::try_from(meta.refused).unwrap_or(i64::MAX));
        if let Some(at) = meta.loaded_at_ms {
            host.metric(Metric::RegistryAgeSeconds, i64::try_from(now.saturating_sub(at) / 1000).unwrap_or(0));
        }
        if let Some(loading) = self.loading.take() {
            return self.load_slice(host, reg, loading);
        }
        if self.registry_call.get().is_some() || now < meta.next_at_ms {
            return;
        }
        let lease = Lease { expires_ms: now + reg.timeout_ms + 2000, owner: self.owner };
        if !take(host, &self.keys.lease(), &Lease { expires_ms: 0, owner: 0 }.encode(), |current| {
            Lease::is_free(Lease::decode(current), now).then(|| lease.encode())
        }) {
            return;
        }
        // A 304 must not keep buckets of another count than this worker's: ask without If-None-Match then.
        let etag = meta.etag.clone().filter(|_| meta.buckets == reg.buckets);
        let mut extra = vec![(header::ACCEPT, "application/json")];
        if let Some(tag) = etag.as_deref() {
            extra.push((header::IF_NONE_MATCH, tag));
        }
        match host.http_get(&reg.cluster, &reg.authority, &reg.path, &extra, reg.timeout_ms) {
            Ok(token) => self.registry_call.set(Some(token)),
            Err(e) => self.registry_failed(host, format!("cannot call cluster {}: {e}", reg.cluster), false),
        }
    }

    /// Whether `token` is this worker's registry call.
    pub fn is_registry_call(&self, token: u32) -> bool {
        self.registry_call.get() == Some(token)
    }

    /// The registry answered (or the call failed). A document is only taken here; the ticks that follow
    /// load it, a slice each, while the last good copy keeps serving.
    pub fn on_registry_response(&self, host: &dyn Host, response: CallResponse) {
        self.registry_call.set(None);
        let Some(reg) = &self.config.registry else { return };
        let now = host.now_ms();
        match response.status {
            None => self.registry_failed(host, "no response (timeout, reset or no healthy upstream)".into(), false),
            Some(_) if response.too_large => self.registry_failed(
                host,
                format!("document larger than registry.max_bytes ({})", reg.max_bytes),
                false,
            ),
            Some(304) => {
                let mut meta = self.read_meta(host);
                meta.succeeded(now, reg.refresh_seconds, self.next_seed());
                host.metric(Metric::RegistryNotModified, 1);
                self.write_meta(host, &meta);
                self.release_lease(host);
            }
            Some(200) => {
                if !self.renew_lease(host, now + LOAD_LEASE_MS) {
                    host.log(
                        Level::Warn,
                        "registry: the refresh lease expired before the document arrived and another worker holds it now; this copy is dropped",
                    );
                    return;
                }
                let refusal = self
                    .config
                    .jwks_cluster
                    .is_none()
                    .then(|| "jwks_uri needs jwks_cluster in the plugin configuration".to_string());
                let document_bytes = response.body.len();
                host.log(
                    Level::Info,
                    &format!(
                        "registry: loading a {document_bytes}-byte document over the next ticks; the current copy serves until it completes"
                    ),
                );
                *self.loading.borrow_mut() = Some(Loading {
                    load: Load::new(response.body, reg.buckets, refusal, self.budget.get()),
                    etag: response.etag,
                    started_ms: now,
                    document_bytes,
                    slices: 0,
                    changed: false,
                    clearing: None,
                });
                self.apply_tick_period(host);
            }
            Some(status) => self.registry_failed(host, format!("HTTP status {status}"), false),
        }
    }

    /// One slice of the load in progress; puts it back unless it ended.
    fn load_slice(&self, host: &dyn Host, reg: &RegistryConfig, mut l: Loading) {
        l.slices += 1;
        let now = host.now_ms();
        if !self.renew_lease(host, now + LOAD_LEASE_MS) {
            host.log(Level::Warn, "registry: another worker took over the refresh lease; this load stops unfinished");
            if l.changed {
                let mut meta = self.read_meta(host);
                meta.generation = meta.generation.wrapping_add(1);
                self.write_meta(host, &meta);
            }
            self.apply_tick_period(host);
            return;
        }
        if let Some((count, next)) = l.clearing {
            // Empty the buckets of the previous count (nobody reads them since the metadata names the new one).
            let end =
                next.saturating_add(u32::try_from(self.budget.get().write_buckets).unwrap_or(u32::MAX)).min(count);
            for index in next..end {
                let _ = host.shared_set(&self.keys.bucket(count, index), b"", None);
            }
            if end < count {
                l.clearing = Some((count, end));
                *self.loading.borrow_mut() = Some(l);
            } else {
                self.release_lease(host);
                self.apply_tick_period(host);
            }
            return;
        }
        match l.load.step() {
            Err(e) => {
                self.registry_failed(host, e.to_string(), l.changed);
                self.apply_tick_period(host);
            }
            Ok(Step::Parsed(findings)) => {
                for finding in findings {
                    match finding {
                        Finding::Refused(client, e) => host.log(
                            Level::Warn,
                            &format!(
                                "registry: client {} refused: {}",
                                response::for_log(&client),
                                response::for_log(&e.to_string())
                            ),
                        ),
                        Finding::Duplicate(client) => host.log(
                            Level::Warn,
                            &format!(
                                "registry: client {} is listed more than once; no copy of it is used",
                                response::for_log(&client)
                            ),
                        ),
                    }
                }
                *self.loading.borrow_mut() = Some(l);
            }
            Ok(Step::Write(values)) => {
                // Bucket by bucket: each one switches whole to the new document (see docs/configuration.md, "The registry").
                for (index, value) in values {
                    let key = self.keys.bucket(reg.buckets, index);
                    if host.shared_get(&key).0.unwrap_or_default() == value {
                        continue;
                    }
                    l.changed = true;
                    if host.shared_set(&key, &value, None).is_err() {
                        self.registry_failed(host, "cannot write shared data".into(), true);
                        self.apply_tick_period(host);
                        return;
                    }
                }
                *self.loading.borrow_mut() = Some(l);
            }
            Ok(Step::Done(summary)) => self.loaded(host, reg, l, summary),
        }
    }

    /// The last slice: the new registry is complete; the metadata switches to it.
    fn loaded(&self, host: &dyn Host, reg: &RegistryConfig, mut l: Loading, summary: Summary) {
        let now = host.now_ms();
        let mut meta = self.read_meta(host);
        let previous = meta.buckets;
        if l.changed || previous != summary.buckets {
            meta.generation = meta.generation.wrapping_add(1);
        }
        meta.buckets = summary.buckets;
        meta.clients = summary.clients;
        meta.refused = summary.refused;
        meta.etag = l.etag.take();
        meta.succeeded(now, reg.refresh_seconds, self.next_seed());
        self.write_meta(host, &meta);
        let bytes = summary.bytes.saturating_add(meta.encode().len() as u64);
        host.metric(Metric::RegistryBytes, i64::try_from(bytes).unwrap_or(i64::MAX));
        host.metric(Metric::RegistryRefreshOk, 1);
        host.metric(Metric::RegistryClients, i64::try_from(meta.clients).unwrap_or(i64::MAX));
        host.metric(Metric::RegistryRefused, i64::try_from(meta.refused).unwrap_or(i64::MAX));
        host.log(
            Level::Info,
            &format!(
                "registry: loaded {} clients ({} refused) from {} bytes in {} ms over {} ticks",
                meta.clients,
                meta.refused,
                l.document_bytes,
                now.saturating_sub(l.started_ms),
                l.slices
            ),
        );
        if previous != 0 && previous != summary.buckets {
            l.clearing = Some((previous, 0));
            *self.loading.borrow_mut() = Some(l);
            return;
        }
        self.release_lease(host);
        self.apply_tick_period(host);
    }

    /// A refresh failed; `changed`: it had rewritten buckets already (caches must re-read them).
    fn registry_failed(&self, host: &dyn Host, error: String, changed: bool) {
        let Some(reg) = &self.config.registry else { return };
        let mut meta = self.read_meta(host);
        if changed {
            meta.generation = meta.generation.wrapping_add(1);
        }
        meta.failed(host.now_ms(), reg.refresh_seconds, error.clone());
        self.write_meta(host, &meta);
        host.metric(Metric::RegistryRefreshFailed, 1);
        host.log(Level::Warn, &format!("registry: refresh failed, keeping the last good copy: {error}"));
        self.release_lease(host);
    }

    /// Extends this worker's lease; `false` if another worker holds it.
    fn renew_lease(&self, host: &dyn Host, expires_ms: u64) -> bool {
        let key = self.keys.lease();
        let (value, cas) = host.shared_get(&key);
        match Lease::decode(value.as_deref()) {
            Some(current) if current.owner == self.owner => {
                host.shared_set(&key, &Lease { expires_ms, owner: self.owner }.encode(), cas).is_ok()
            }
            _ => false,
        }
    }

    /// Frees the lease if this worker holds it.
    fn release_lease(&self, host: &dyn Host) {
        let key = self.keys.lease();
        let (value, cas) = host.shared_get(&key);
        if Lease::decode(value.as_deref()).is_some_and(|l| l.owner == self.owner) {
            let _ = host.shared_set(&key, &Lease { expires_ms: 0, owner: 0 }.encode(), cas);
        }
    }

    fn read_meta(&self, host: &dyn Host) -> Meta {
        Meta::decode(host.shared_get(&self.keys.meta()).0.as_deref())
    }

    fn write_meta(&self, host: &dyn Host, meta: &Meta) {
        if host.shared_set(&self.keys.meta(), &meta.encode(), None).is_err() {
            host.log(Level::Error, "registry: cannot write shared data");
        }
    }

    fn next_seed(&self) -> u64 {
        let s = self.seed.get().wrapping_add(1);
        self.seed.set(s);
        s
    }

    /// What Envoy knows of the direct peer: its certificate and whether its chain was validated. Both are fixed
    /// for the life of a TLS connection (no renegotiation), so they are read once per connection and kept by
    /// connection id; the certificate itself is found by Envoy's digest in the certificate cache, and its PEM
    /// read and decoded only the first time this worker sees it.
    pub(crate) fn read_peer(&self, s: &dyn Stream) -> Peer {
        let connection =
            s.property(&["connection_id"]).and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_le_bytes);
        let read_pem = || s.property(&["connection", "peer_certificate"]).filter(|p| !p.is_empty());
        let known = connection.and_then(|id| self.connections.borrow_mut().get_mut(&id).map(|c| c.clone()));
        if let Some(known) = known {
            // The certificate may have left the certificate cache (or never fitted it): then it is read again.
            let certificate = match known.certificate {
                None => None,
                Some(Err(e)) => Some(Err(e)),
                Some(Ok(digest)) => self.certificates.borrow_mut().of_digest(Some(digest), read_pem),
            };
            return Peer { certificate, validated: known.validated };
        }
        let digest = s.property(&["connection", "sha256_peer_certificate_digest"]);
        let certificate = self.certificates.borrow_mut().of_connection(digest.as_deref(), read_pem);
        let valid = s.property(&["connection", "peer_certificate_valid"]);
        if certificate.is_some() && valid.is_none() {
            // Fails closed (not validated), but say why: an Envoy without this attribute cannot serve tls_client_auth.
            s.log(
                Level::Error,
                "this Envoy does not provide connection.peer_certificate_valid, so no certificate counts as validated \
                 and every tls_client_auth client is refused: run the Envoy version this filter supports (see docs/deploying.md)",
            );
        }
        let peer = Peer { certificate, validated: valid.is_some_and(|v| v.first().is_some_and(|b| *b != 0)) };
        if let Some(id) = connection {
            let certificate = peer.certificate.as_ref().map(|c| c.as_ref().map(|c| c.sha256).map_err(Clone::clone));
            let weight = match &certificate {
                Some(Err(PeerError::Pem(e))) => e.to_string().len(),
                _ => 0,
            };
            self.connections.borrow_mut().insert(id, Connection { certificate, validated: peer.validated }, weight);
        }
        peer
    }

    /// The registry metadata, decoded again only when it changed.
    fn current_meta(&self, host: &dyn Host) -> Rc<Meta> {
        let (bytes, cas) = host.shared_get(&self.keys.meta());
        let cas = cas.unwrap_or(0);
        if let Some((c, m)) = self.meta.borrow().as_ref() {
            if *c == cas {
                return m.clone();
            }
        }
        let m = Rc::new(Meta::decode(bytes.as_deref()));
        *self.meta.borrow_mut() = Some((cas, m.clone()));
        m
    }

    /// Looks a client up: inline registrations first, then the registry. In the steady state this reads
    /// only the registry metadata; after a change, the client's bucket, decoding that one registration.
    fn lookup(&self, host: &dyn Host, client_id: &str) -> Lookup {
        if let Some(c) = self.inline.get(client_id) {
            return Lookup::Found(c.clone());
        }
        let Some(reg) = &self.config.registry else { return Lookup::Unknown };
        let meta = self.current_meta(host);
        if let Err(why) = meta.usable(host.now_ms(), reg.max_stale_seconds) {
            return Lookup::Unavailable(why);
        }
        let cached =
            self.clients.borrow_mut().get_mut(client_id).filter(|(g, _)| *g == meta.generation).map(|(_, c)| c.clone());
        let found = match cached {
            Some(found) => found,
            None => {
                // The buckets are where the metadata says they were written (a reconfigured count applies
                // from its first load).
                let count = if meta.buckets == 0 { reg.buckets } else { meta.buckets };
                let key = self.keys.bucket(count, registry::bucket_of(client_id, count));
                let bytes = host.shared_get(&key).0.unwrap_or_default();
                let found = match registry::find_client(&bytes, client_id) {
                    Err(e) => return Lookup::Unavailable(registry::Unavailable::Bucket(e)),
                    Ok(stored) => stored.and_then(|s| s.compile().ok()).map(Rc::new),
                };
                // The id itself is charged too: unknown ids are kept (a miss costs a bucket read), and an id
                // may be as long as a request body.
                let weight = client_id.len().saturating_add(found.as_ref().map_or(0, |c| c.weight()));
                self.clients.borrow_mut().insert(client_id.to_string(), (meta.generation, found.clone()), weight);
                found
            }
        };
        match found {
            Some(c) => Lookup::Found(c),
            None => Lookup::Unknown,
        }
    }

    /// The registrations and JWK Sets a request's verdict reads; `refetch_allowed`: a JWK Set may be fetched.
    pub(crate) fn directory<'a>(&'a self, host: &'a dyn Host, refetch_allowed: bool) -> SharedDirectory<'a> {
        SharedDirectory { worker: self, host, refetch_allowed }
    }

    fn jwks_view(&self, host: &dyn Host, uri: &JwksUri, refetch_allowed: bool) -> JwksView {
        let entry = JwksEntry::decode(host.shared_get(&self.keys.jwks(&uri.uri)).0.as_deref());
        let now = host.now_ms();
        let max_age_ms = self.config.jwks_max_age_ms();
        match entry {
            None => JwksView::Known {
                thumbprints: Vec::new(),
                freshness: jwks::Freshness::Fresh,
                may_refetch: refetch_allowed,
                last_error: None,
            },
            Some(e) => JwksView::Known {
                thumbprints: e.thumbprints.iter().filter_map(|h| jwks::thumbprint_from_hex(h)).collect(),
                freshness: e.freshness(now, max_age_ms),
                may_refetch: refetch_allowed && e.may_fetch(now, self.config.jwks_min_refresh_seconds, max_age_ms),
                last_error: e.last_error,
            },
        }
    }

    /// Claims the right to fetch a JWK Set now (one fetch per `jwks_min_refresh_seconds` across workers).
    pub(crate) fn claim_jwks_fetch(&self, host: &dyn Host, uri: &JwksUri) -> bool {
        let now = host.now_ms();
        let min_refresh = self.config.jwks_min_refresh_seconds;
        let max_age_ms = self.config.jwks_max_age_ms();
        take(host, &self.keys.jwks(&uri.uri), &JwksEntry::default().encode(), |current| {
            let mut entry = JwksEntry::decode(current).unwrap_or_default();
            if entry.fetched_at_ms.is_some() && !entry.may_fetch(now, min_refresh, max_age_ms) {
                return None;
            }
            entry.attempted_at_ms = now;
            Some(entry.encode())
        })
    }

    pub(crate) fn store_jwks(&self, host: &dyn Host, uri: &JwksUri, response: &CallResponse) {
        let key = self.keys.jwks(&uri.uri);
        let (bytes, _) = host.shared_get(&key);
        let mut entry = JwksEntry::decode(bytes.as_deref()).unwrap_or_default();
        let result = match response.status {
            None => Err("no response (timeout, reset or no healthy upstream)".to_string()),
            Some(_) if response.too_large => Err("JWK Set too large".to_string()),
            Some(200) => jwks::parse_thumbprints(&response.body).map_err(|e| e.to_string()),
            Some(status) => Err(format!("HTTP status {status}")),
        };
        match result {
            Ok(prints) => {
                entry.thumbprints = prints.iter().map(|t| jwks::hex(t)).collect();
                entry.fetched_at_ms = Some(host.now_ms());
                entry.last_error = None;
                // Cache-Control, within [jwks_min_refresh_seconds, jwks_max_age_seconds]; none: the maximum.
                let config = &self.config;
                let seconds = response.max_age_seconds.unwrap_or(config.jwks_max_age_seconds);
                let seconds = seconds.clamp(config.jwks_min_refresh_seconds, config.jwks_max_age_seconds);
                entry.max_age_ms = Some(seconds.saturating_mul(1000));
                host.metric(Metric::JwksFetchOk, 1);
            }
            Err(e) => {
                host.log(
                    Level::Warn,
                    &format!(
                        "jwks: fetching {} failed, keeping the last good copy: {}",
                        response::for_log(&uri.uri),
                        response::for_log(&e)
                    ),
                );
                entry.last_error = Some(response::one_line(&e));
                host.metric(Metric::JwksFetchFailed, 1);
            }
        }
        if host.shared_set(&key, &entry.encode(), None) == Err(SharedWriteError::Failed) {
            host.log(Level::Error, "jwks: cannot write shared data");
        }
    }
}

/// Compare-and-swap on a shared-data key: `update` sees the current value and returns the new one, or
/// `None` to give up. Envoy checks a CAS only on a key that exists (and treats CAS 0 as "no check"), so an
/// absent key is first created with `initial`. Once the key exists exactly one of several racing workers
/// wins; only the very first claim of a key can let two through (both may create it), which costs one
/// duplicate fetch, never a wrong answer.
pub(crate) fn take(
    host: &dyn Host,
    key: &str,
    initial: &[u8],
    update: impl Fn(Option<&[u8]>) -> Option<Vec<u8>>,
) -> bool {
    let (mut value, mut cas) = host.shared_get(key);
    if cas.unwrap_or(0) == 0 {
        if host.shared_set(key, initial, None).is_err() {
            return false;
        }
        (value, cas) = host.shared_get(key);
    }
    let Some(cas) = cas.filter(|c| *c != 0) else { return false };
    let Some(next) = update(value.as_deref()) else { return false };
    host.shared_set(key, &next, Some(cas)).is_ok()
}

/// The verdict's view of registrations and JWK Sets, backed by shared data.
pub(crate) struct SharedDirectory<'a> {
    worker: &'a Worker,
    host: &'a dyn Host,
    refetch_allowed: bool,
}

impl Directory for SharedDirectory<'_> {
    fn client(&mut self, client_id: &str) -> Lookup {
        self.worker.lookup(self.host, client_id)
    }
    fn jwks(&mut self, uri: &JwksUri) -> JwksView {
        self.worker.jwks_view(self.host, uri, self.refetch_allowed)
    }
}
