//! One registry as a worker serves it: its refresh (a lease in shared data, one fetch, a load in slices), its
//! gauges, and lookups of its clients. A filter has one (`registry`) or several (`registries`, each with its
//! own document, lease, ETag, staleness and stats, so that one tenant's registry failing never affects
//! another's).

use crate::config::RegistryConfig;
use crate::header;
use crate::oauth::registration::Client;
use crate::oauth::response;
use crate::oauth::verdict::Lookup;
use crate::proxy::cache::Lru;
use crate::proxy::host::{CallResponse, Host, Level, Metric, RegistryStat};
use crate::proxy::memory::{Part, Weigh};
use crate::proxy::worker::take;
use crate::registry::load::{Budget, Finding, Load, Step, Summary};
use crate::registry::{self, Keys, Lease, Meta};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// A loading worker renews its lease every slice for this long; if it stops, another worker takes over.
const LOAD_LEASE_MS: u64 = 10_000;
/// Registry clients kept decoded per worker and registry (older generations are dropped first, then all).
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

/// What every registry of a worker shares: the worker's name in the leases, its load budget, a seed for the
/// refresh jitter, and whether `jwks_uri` registrations can be served.
pub(crate) struct Refresher<'a> {
    pub owner: u64,
    pub budget: Budget,
    pub seed: &'a Cell<u64>,
    /// Why `jwks_uri` registrations are refused (no `jwks_cluster`), if they are.
    pub jwks_uri_refusal: Option<&'a str>,
}

impl Refresher<'_> {
    fn next_seed(&self) -> u64 {
        let s = self.seed.get().wrapping_add(1);
        self.seed.set(s);
        s
    }
}

/// What a registry needs of its worker's tick (see [`Registry::on_tick`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Busy,
    Due(u64),
    Idle,
}

/// One registry of a worker.
pub(crate) struct Registry {
    pub config: RegistryConfig,
    keys: Keys,
    /// Clients this worker has decoded, by (tenant, client id) key, valid while the generation is unchanged.
    clients: RefCell<Lru<String, CachedClient>>,
    meta: RefCell<Option<(u32, Rc<Meta>)>>,
    call: Cell<Option<u32>>,
    loading: RefCell<Option<Loading>>,
    /// The gauges as this worker last recorded them (clients, refused, age in seconds).
    reported: Cell<(Option<u64>, Option<u64>, Option<u64>)>,
}

impl Registry {
    /// `prefix`: the filter's shared-data prefix. `registry` keeps its keys there; each of `registries` has
    /// its own, named by what it fetches (so a reordered list finds its own copies again).
    pub fn new(config: RegistryConfig, prefix: &str, cache: Part) -> Registry {
        let keys = match config.index {
            None => Keys::new(prefix),
            Some(_) => {
                let source = format!(
                    "{}\n{}\n{}\n{}",
                    config.cluster,
                    config.authority,
                    config.path,
                    config.tenant.as_ref().map(|t| t.as_str()).unwrap_or_default()
                );
                Keys::new(&format!(
                    "{}/registries/{:016x}",
                    prefix.trim_end_matches('/'),
                    registry::fnv1a64(source.as_bytes())
                ))
            }
        };
        Registry {
            config,
            keys,
            clients: RefCell::new(Lru::new(CLIENT_CACHE_ENTRIES, cache)),
            meta: RefCell::new(None),
            call: Cell::new(None),
            loading: RefCell::new(None),
            reported: Cell::new((None, None, None)),
        }
    }

    /// Whether its registrations can serve a request to `tenant` (`None`: a literal endpoint): a registry of
    /// one tenant serves that tenant only; one without serves whatever tenant each item names.
    pub fn serves(&self, tenant: Option<&crate::oauth::tenant::Tenant>) -> bool {
        match &self.config.tenant {
            None => true,
            Some(own) => tenant == Some(own),
        }
    }

    pub fn cached_bytes(&self) -> usize {
        self.clients.borrow().bytes()
    }

    pub fn is_loading(&self) -> bool {
        self.loading.borrow().is_some()
    }

    pub fn is_call(&self, token: u32) -> bool {
        self.call.get() == Some(token)
    }

    /// The metric of this registry for `stat`: `oauth_mtls.registry.*` for `registry`,
    /// `oauth_mtls.registries.<index>.*` for an entry of `registries`.
    fn stat(&self, stat: RegistryStat) -> Metric {
        match self.config.index {
            None => Metric::Registry(stat),
            Some(i) => Metric::Registries(i, stat),
        }
    }

    fn gauge(&self, host: &dyn Host, stat: RegistryStat, value: u64) {
        host.metric(self.stat(stat), i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// Every second: the gauges. What the registry needs next: `Busy` (its fetch or load is under way, or its
    /// document waits to load, on this worker), `Due(since)` (a refresh was due at `since`), or `Idle`.
    pub fn on_tick(&self, host: &dyn Host) -> Need {
        let now = host.now_ms();
        // Decoded again only when another worker changed it (most ticks read it unchanged).
        let meta = self.current_meta(host);
        self.report(host, &meta, now);
        if self.is_busy() {
            return Need::Busy;
        }
        if now < meta.next_at_ms {
            return Need::Idle;
        }
        Need::Due(meta.next_at_ms)
    }

    /// Starts the refresh that is due, unless another worker holds the lease; whether a fetch is under way.
    pub fn fetch(&self, host: &dyn Host, r: &Refresher<'_>) -> bool {
        let now = host.now_ms();
        let meta = self.current_meta(host);
        let reg = &self.config;
        let lease = Lease { expires_ms: now + reg.timeout_ms + 2000, owner: r.owner };
        if !take(host, &self.keys.lease(), &Lease { expires_ms: 0, owner: 0 }.encode(), |current| {
            Lease::is_free(Lease::decode(current), now).then(|| lease.encode())
        }) {
            return false;
        }
        // A 304 must not keep buckets of another count than this worker's: ask without If-None-Match then.
        let etag = meta.etag.clone().filter(|_| meta.buckets == reg.buckets);
        let mut extra = vec![(header::ACCEPT, "application/json")];
        if let Some(tag) = etag.as_deref() {
            extra.push((header::IF_NONE_MATCH, tag));
        }
        match host.http_get(&reg.cluster, &reg.authority, &reg.path, &extra, reg.timeout_ms) {
            Ok(token) => {
                self.call.set(Some(token));
                true
            }
            Err(e) => {
                self.failed(host, r, format!("cannot call cluster {}: {e}", reg.cluster), false);
                false
            }
        }
    }

    /// The gauges, each recorded only when it differs from what this worker last recorded (a host call each).
    fn report(&self, host: &dyn Host, meta: &Meta, now: u64) {
        let age = meta.loaded_at_ms.map(|at| now.saturating_sub(at) / 1000);
        let (clients, refused, last_age) = self.reported.get();
        if clients != Some(meta.clients) {
            self.gauge(host, RegistryStat::Clients, meta.clients);
        }
        if refused != Some(meta.refused) {
            self.gauge(host, RegistryStat::Refused, meta.refused);
        }
        if let Some(age) = age.filter(|a| last_age != Some(*a)) {
            self.gauge(host, RegistryStat::AgeSeconds, age);
        }
        self.reported.set((Some(meta.clients), Some(meta.refused), age.or(last_age)));
    }

    /// A fetch or a load of this registry is under way on this worker.
    pub fn is_busy(&self) -> bool {
        self.call.get().is_some() || self.is_loading()
    }

    /// One slice of the load in progress, if there is one (`true`).
    pub fn slice(&self, host: &dyn Host, r: &Refresher<'_>) -> bool {
        match self.loading.take() {
            Some(loading) => {
                self.load_slice(host, r, loading);
                true
            }
            None => false,
        }
    }

    /// The registry answered (or the call failed). A document is only taken here; the ticks that follow
    /// load it, a slice each, while the last good copy keeps serving.
    pub fn on_response(&self, host: &dyn Host, r: &Refresher<'_>, response: CallResponse) {
        self.call.set(None);
        let reg = &self.config;
        let now = host.now_ms();
        match response.status {
            None => self.failed(host, r, "no response (timeout, reset or no healthy upstream)".into(), false),
            Some(_) if response.too_large => {
                let why = format!("document larger than {} ({})", self.key("max_bytes"), reg.max_bytes);
                self.failed(host, r, why, false)
            }
            Some(304) => {
                let mut meta = self.read_meta(host);
                meta.succeeded(now, reg.refresh_seconds, r.next_seed());
                host.metric(self.stat(RegistryStat::NotModified), 1);
                self.write_meta(host, &meta);
                self.release_lease(host, r);
            }
            Some(200) => {
                if !self.renew_lease(host, r, now + LOAD_LEASE_MS) {
                    self.log(
                        host,
                        Level::Warn,
                        "the refresh lease expired before the document arrived and another worker holds it now; this copy is dropped",
                    );
                    return;
                }
                let document_bytes = response.body.len();
                self.log(
                    host,
                    Level::Info,
                    &format!(
                        "loading a {document_bytes}-byte document over the next ticks; the current copy serves until it completes"
                    ),
                );
                let refusal = r.jwks_uri_refusal.map(str::to_string);
                *self.loading.borrow_mut() = Some(Loading {
                    load: Load::new(response.body, reg.buckets, reg.tenant.clone(), refusal, r.budget),
                    etag: response.etag,
                    started_ms: now,
                    document_bytes,
                    slices: 0,
                    changed: false,
                    clearing: None,
                });
            }
            Some(status) => self.failed(host, r, format!("HTTP status {status}"), false),
        }
    }

    /// A key of this registry's configuration, as errors and logs name it (`registry.max_bytes`).
    fn key(&self, key: &str) -> String {
        match self.config.index {
            None => format!("registry.{key}"),
            Some(i) => format!("registries[{i}].{key}"),
        }
    }

    fn log(&self, host: &dyn Host, level: Level, message: &str) {
        host.log(level, &format!("{}: {message}", self.config.name()));
    }

    /// One slice of the load in progress; puts it back unless it ended.
    fn load_slice(&self, host: &dyn Host, r: &Refresher<'_>, mut l: Loading) {
        l.slices += 1;
        let now = host.now_ms();
        if !self.renew_lease(host, r, now + LOAD_LEASE_MS) {
            self.log(host, Level::Warn, "another worker took over the refresh lease; this load stops unfinished");
            if l.changed {
                let mut meta = self.read_meta(host);
                meta.generation = meta.generation.wrapping_add(1);
                self.write_meta(host, &meta);
            }
            return;
        }
        if let Some((count, next)) = l.clearing {
            // Empty the buckets of the previous count (nobody reads them since the metadata names the new one).
            let end = next.saturating_add(u32::try_from(r.budget.write_buckets).unwrap_or(u32::MAX)).min(count);
            for index in next..end {
                let _ = host.shared_set(&self.keys.bucket(count, index), b"", None);
            }
            if end < count {
                l.clearing = Some((count, end));
                *self.loading.borrow_mut() = Some(l);
            } else {
                self.release_lease(host, r);
            }
            return;
        }
        match l.load.step() {
            Err(e) => self.failed(host, r, e.to_string(), l.changed),
            Ok(Step::Parsed(findings)) => {
                for finding in findings {
                    let line = match finding {
                        Finding::Refused(client, e) => format!(
                            "client {} refused: {}",
                            response::for_log(&client),
                            response::for_log(&e.to_string())
                        ),
                        Finding::Duplicate(client) => format!(
                            "client {} is listed more than once; no copy of it is used",
                            response::for_log(&client)
                        ),
                    };
                    self.log(host, Level::Warn, &line);
                }
                *self.loading.borrow_mut() = Some(l);
            }
            Ok(Step::Write(values)) => {
                // Bucket by bucket: each one switches whole to the new document (see docs/configuration.md, "The registry").
                for (index, value) in values {
                    let key = self.keys.bucket(self.config.buckets, index);
                    if host.shared_get(&key).0.unwrap_or_default() == value {
                        continue;
                    }
                    l.changed = true;
                    if host.shared_set(&key, &value, None).is_err() {
                        self.failed(host, r, "cannot write shared data".into(), true);
                        return;
                    }
                }
                *self.loading.borrow_mut() = Some(l);
            }
            Ok(Step::Done(summary)) => self.loaded(host, r, l, summary),
        }
    }

    /// The last slice: the new registry is complete; the metadata switches to it.
    fn loaded(&self, host: &dyn Host, r: &Refresher<'_>, mut l: Loading, summary: Summary) {
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
        meta.succeeded(now, self.config.refresh_seconds, r.next_seed());
        self.write_meta(host, &meta);
        let bytes = summary.bytes.saturating_add(meta.encode().len() as u64);
        self.gauge(host, RegistryStat::Bytes, bytes);
        host.metric(self.stat(RegistryStat::RefreshOk), 1);
        self.report(host, &meta, now);
        self.log(
            host,
            Level::Info,
            &format!(
                "loaded {} clients ({} refused) from {} bytes in {} ms over {} ticks",
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
        self.release_lease(host, r);
    }

    /// A refresh failed; `changed`: it had rewritten buckets already (caches must re-read them).
    fn failed(&self, host: &dyn Host, r: &Refresher<'_>, error: String, changed: bool) {
        let mut meta = self.read_meta(host);
        if changed {
            meta.generation = meta.generation.wrapping_add(1);
        }
        meta.failed(host.now_ms(), self.config.refresh_seconds, error.clone());
        self.write_meta(host, &meta);
        host.metric(self.stat(RegistryStat::RefreshFailed), 1);
        self.log(host, Level::Warn, &format!("refresh failed, keeping the last good copy: {error}"));
        self.release_lease(host, r);
    }

    /// Extends this worker's lease; `false` if another worker holds it.
    fn renew_lease(&self, host: &dyn Host, r: &Refresher<'_>, expires_ms: u64) -> bool {
        let key = self.keys.lease();
        let (value, cas) = host.shared_get(&key);
        match Lease::decode(value.as_deref()) {
            Some(current) if current.owner == r.owner => {
                host.shared_set(&key, &Lease { expires_ms, owner: r.owner }.encode(), cas).is_ok()
            }
            _ => false,
        }
    }

    /// Frees the lease if this worker holds it.
    fn release_lease(&self, host: &dyn Host, r: &Refresher<'_>) {
        let key = self.keys.lease();
        let (value, cas) = host.shared_get(&key);
        if Lease::decode(value.as_deref()).is_some_and(|l| l.owner == r.owner) {
            let _ = host.shared_set(&key, &Lease { expires_ms: 0, owner: 0 }.encode(), cas);
        }
    }

    fn read_meta(&self, host: &dyn Host) -> Meta {
        Meta::decode(host.shared_get(&self.keys.meta()).0.as_deref())
    }

    fn write_meta(&self, host: &dyn Host, meta: &Meta) {
        if host.shared_set(&self.keys.meta(), &meta.encode(), None).is_err() {
            self.log(host, Level::Error, "cannot write shared data");
        }
    }

    /// The metadata, decoded again only when it changed.
    pub fn current_meta(&self, host: &dyn Host) -> Rc<Meta> {
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

    /// Looks a registration up by its (tenant, client id) key ([`crate::oauth::tenant::scoped_key`]). In the
    /// steady state this reads only the metadata; after a change, the key's bucket, decoding that one
    /// registration.
    pub fn lookup(&self, host: &dyn Host, key: &str) -> Lookup {
        let reg = &self.config;
        let meta = self.current_meta(host);
        if let Err(why) = meta.usable(host.now_ms(), reg.max_stale_seconds) {
            return Lookup::Unavailable(why);
        }
        let cached =
            self.clients.borrow_mut().get_mut(key).filter(|(g, _)| *g == meta.generation).map(|(_, c)| c.clone());
        let found = match cached {
            Some(found) => found,
            None => {
                // The buckets are where the metadata says they were written (a reconfigured count applies
                // from its first load).
                let count = if meta.buckets == 0 { reg.buckets } else { meta.buckets };
                let bytes = host.shared_get(&self.keys.bucket(count, registry::bucket_of(key, count))).0;
                let found = match registry::find_client(&bytes.unwrap_or_default(), key) {
                    Err(e) => return Lookup::Unavailable(registry::Unavailable::Bucket(e)),
                    Ok(stored) => stored.and_then(|s| s.compile().ok()).map(Rc::new),
                };
                // The key itself is charged too: unknown ids are kept (a miss costs a bucket read), and an id
                // may be as long as a request body.
                let weight = key.len().saturating_add(found.as_ref().map_or(0, |c| c.weight()));
                self.clients.borrow_mut().insert(key.to_string(), (meta.generation, found.clone()), weight);
                found
            }
        };
        match found {
            Some(c) => Lookup::Found(c),
            None => Lookup::Unknown,
        }
    }
}
