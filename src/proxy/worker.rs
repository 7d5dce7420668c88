//! A worker's state: its configuration, its registries' refresh, and the caches its requests share
//! (certificates, connections, decoded registrations), within the memory budget.

use crate::config::Config;
use crate::forwarded::source::Peer;
use crate::forwarded::source::PeerError;
use crate::oauth::jwks::{self, JwksUri};
use crate::oauth::registration::Client;
use crate::oauth::response;
use crate::oauth::tenant::{self, Tenant};
use crate::oauth::verdict::{Directory, JwksView, Lookup};
use crate::proxy::cache::{Certificates, Lru};
use crate::proxy::host::{CallResponse, Host, Level, Metric, SharedWriteError, Stream};
use crate::proxy::memory;
use crate::proxy::readiness::{NotReady, Readiness};
use crate::proxy::registry::{Need, Refresher, Registry};
use crate::proxy::revocation::Revocation;
use crate::registry::load::Budget;
use crate::registry::{JwksEntry, Keys};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;

/// Registries a worker fetches (or whose documents wait to load) at once.
const MAX_FETCHES: usize = 4;

/// Client certificates kept decoded per worker.
const CERTIFICATE_CACHE_ENTRIES: usize = 1024;
/// Connections whose peer (certificate, validation) a worker remembers.
const CONNECTION_CACHE_ENTRIES: usize = 4096;

/// The tick period: refreshes are checked once a second.
pub const TICK_MS: u64 = 1000;
/// The tick period while a registry load is in progress: one slice of the load per tick.
pub const LOAD_TICK_MS: u64 = 1;
/// Per-worker state: the configuration, the decoded caches, and this worker's registry call.
pub struct Worker {
    pub config: Config,
    keys: Keys,
    /// Inline registrations by (tenant, client id) key.
    inline: HashMap<String, Rc<Client>>,
    /// `registry`, or each of `registries`.
    registries: Vec<Registry>,
    budget: Cell<Budget>,
    /// When the registries last had their full tick (gauges, refresh due): loading ticks in between only
    /// advance loads.
    full_tick_ms: Cell<u64>,
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
        // The registries share the clients' part of the budget.
        let share = budget.clients().share(config.registries.len());
        let registries =
            config.registries.iter().map(|r| Registry::new(r.clone(), shared_data_prefix, share)).collect();
        Worker {
            keys: Keys::new(shared_data_prefix),
            config,
            inline,
            registries,
            budget: Cell::new(Budget::DEFAULT),
            full_tick_ms: Cell::new(0),
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
        let clients = self.registries.iter().map(Registry::cached_bytes).sum::<usize>();
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
        self.registries.iter().any(Registry::is_loading) || self.revocation.as_ref().is_some_and(Revocation::is_loading)
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

    /// Whether this worker can serve every client it is configured for: every registry (`registry`, or each of
    /// `registries`) is usable (loaded, and no older than `max_stale_seconds`), the rule registry clients are served by.
    pub fn readiness(&self, host: &dyn Host) -> Readiness {
        let now = host.now_ms();
        for registry in &self.registries {
            if let Err(why) = registry.current_meta(host).usable(now, registry.config.max_stale_seconds) {
                return Readiness::NotReady(NotReady::from(&why));
            }
        }
        Readiness::Ready
    }

    /// Every tick: the log level, and the registries' and the CRLs' refresh or load.
    pub fn on_tick(&self, host: &dyn Host) {
        self.read_log_level(host);
        let refresher = self.refresher();
        let now = host.now_ms();
        let full_due = now.saturating_sub(self.full_tick_ms.get()) >= TICK_MS || self.full_tick_ms.get() == 0;
        // One registry document loads at a time per worker (a load holds the document, its registrations and its
        // buckets, and linear memory never shrinks: 50 registries loading at once took 60 MiB); the others'
        // documents wait whole, in the order they arrived.
        let was_loading = self.registries.iter().any(Registry::is_loading);
        if let Some(r) = self.registries.iter().find(|r| r.is_loading()) {
            r.slice(host, &refresher);
        }
        if !full_due && (!was_loading || self.registries.iter().any(Registry::is_loading)) {
            // A fast tick of a load: not every registry's gauges. When the last load just ended, the next
            // registry due is fetched now rather than at the next full tick.
            self.apply_tick_period(host);
            return self.revocation_tick(host);
        }
        self.full_tick_ms.set(now.max(1));
        // At most MAX_FETCHES registries fetched or waiting to load at once, so that one slow or unreachable
        // registry does not hold up the others' refreshes. Of those due, the one due longest goes first, so that
        // no registry starves behind others refreshed often.
        let needs: Vec<Need> = self.registries.iter().map(|r| r.on_tick(host)).collect();
        let mut busy = needs.iter().filter(|n| **n == Need::Busy).count();
        let mut due: Vec<(u64, &Registry)> = needs
            .iter()
            .zip(&self.registries)
            .filter_map(|(need, r)| match need {
                Need::Due(since) => Some((*since, r)),
                _ => None,
            })
            .collect();
        due.sort_by_key(|(since, _)| *since);
        for (_, r) in due {
            if busy >= MAX_FETCHES {
                break;
            }
            // Another worker may hold its lease: then the next one due is tried.
            if r.fetch(host, &refresher) {
                busy += 1;
            }
        }
        self.apply_tick_period(host);
        self.revocation_tick(host);
    }

    /// The CRLs' refresh or load, every tick.
    fn revocation_tick(&self, host: &dyn Host) {
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

    fn refresher(&self) -> Refresher<'_> {
        Refresher {
            owner: self.owner,
            budget: self.budget.get(),
            seed: &self.seed,
            jwks_uri_refusal: self
                .config
                .jwks_cluster
                .is_none()
                .then_some("jwks_uri needs jwks_cluster in the plugin configuration"),
        }
    }

    /// Whether `token` is one of this worker's registry calls.
    pub fn is_registry_call(&self, token: u32) -> bool {
        self.registries.iter().any(|r| r.is_call(token))
    }

    /// A registry answered (or its call failed): a load starts over the next ticks.
    pub fn on_registry_response(&self, host: &dyn Host, token: u32, response: CallResponse) {
        if let Some(r) = self.registries.iter().find(|r| r.is_call(token)) {
            r.on_response(host, &self.refresher(), response);
        }
        self.apply_tick_period(host);
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

    /// Looks a client up in `tenant` (`None`: a literal endpoint): inline registrations first, then every
    /// registry that serves the tenant. Found in two registries, it is ambiguous and used from neither; a
    /// registry that cannot answer makes the answer unavailable (it might hold the client, or a second copy).
    fn lookup(&self, host: &dyn Host, tenant: Option<&Tenant>, client_id: &str) -> Lookup {
        let key = tenant::scoped_key(tenant, client_id);
        if let Some(c) = self.inline.get(key.as_ref()) {
            return Lookup::Found(c.clone());
        }
        let mut found: Option<Rc<Client>> = None;
        let mut unavailable = None;
        for registry in self.registries.iter().filter(|r| r.serves(tenant)) {
            match registry.lookup(host, &key) {
                Lookup::Found(_) if found.is_some() => {
                    host.log(
                        Level::Warn,
                        &format!(
                            "client {} is served by more than one registry; no copy of it is used",
                            response::for_log(&tenant::describe_key(&key))
                        ),
                    );
                    return Lookup::Unknown;
                }
                Lookup::Found(c) => found = Some(c),
                Lookup::Unknown => {}
                Lookup::Unavailable(why) => unavailable = Some(why),
            }
        }
        match (unavailable, found) {
            (Some(why), _) => Lookup::Unavailable(why),
            (None, Some(c)) => Lookup::Found(c),
            (None, None) => Lookup::Unknown,
        }
    }

    /// The registrations and JWK Sets a request's verdict reads; `refetch_allowed`: a JWK Set may be fetched.
    pub(crate) fn directory<'a>(
        &'a self,
        host: &'a dyn Host,
        tenant: Option<&'a Tenant>,
        refetch_allowed: bool,
    ) -> SharedDirectory<'a> {
        SharedDirectory { worker: self, host, tenant, refetch_allowed }
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
    /// The request's tenant: registrations are found in it only (`None`: a literal endpoint).
    tenant: Option<&'a Tenant>,
    refetch_allowed: bool,
}

impl Directory for SharedDirectory<'_> {
    fn client(&mut self, client_id: &str) -> Lookup {
        self.worker.lookup(self.host, self.tenant, client_id)
    }
    fn jwks(&mut self, uri: &JwksUri) -> JwksView {
        self.worker.jwks_view(self.host, uri, self.refetch_allowed)
    }
}
