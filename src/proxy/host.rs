//! What the filter needs from its proxy: a small trait the proxy-wasm shell implements and tests fake.

/// A proxy callback's answer: go on, or hold the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

/// Log levels, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// A shared-data write that lost a compare-and-swap race, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedWriteError {
    CasMismatch,
    Failed,
}

/// The metrics the filter keeps; the shell maps each to a proxy-wasm metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Authenticated,
    Passed,
    Rejected(crate::oauth::verdict::Reason),
    /// A stat of `registry`: `oauth_mtls.registry.<stat>`.
    Registry(RegistryStat),
    /// A stat of the entry of `registries` at this index: `oauth_mtls.registries.<index>.<stat>`.
    Registries(u8, RegistryStat),
    JwksFetchOk,
    JwksFetchFailed,
    /// Requests to a protected resource whose token binding checked out.
    ResourceAllowed,
    /// Metadata documents amended.
    DiscoveryAmended,
    /// A CRL loaded (or confirmed unchanged), or a fetch or load that failed.
    RevocationCrlOk,
    RevocationCrlFailed,
    /// An OCSP response verified, or a call that gave no status.
    RevocationOcspOk,
    RevocationOcspFailed,
    /// An authenticated certificate whose issuer is not in `revocation.issuers` (not checked).
    RevocationNotCovered,
    /// No fresh status, let through by `on_unavailable: pass`.
    RevocationUnavailablePassed,
    /// Gauge summed over workers: bytes the caches hold, as charged to `memory_budget_bytes`.
    MemoryCachedBytes,
    /// Gauge summed over workers: the size of the VMs' linear memory (it grows, never shrinks).
    MemoryVmBytes,
}

/// What each registry counts or measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistryStat {
    RefreshOk,
    RefreshFailed,
    NotModified,
    /// Gauge: registrations loaded.
    Clients,
    /// Gauge: registrations refused at load.
    Refused,
    /// Gauge: seconds since the last successful refresh.
    AgeSeconds,
    /// Gauge: bytes of registry data in shared data (buckets and metadata).
    Bytes,
}

impl RegistryStat {
    pub const ALL: [RegistryStat; 7] = [
        RegistryStat::RefreshOk,
        RegistryStat::RefreshFailed,
        RegistryStat::NotModified,
        RegistryStat::Clients,
        RegistryStat::Refused,
        RegistryStat::AgeSeconds,
        RegistryStat::Bytes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RegistryStat::RefreshOk => "refresh_ok",
            RegistryStat::RefreshFailed => "refresh_failed",
            RegistryStat::NotModified => "not_modified",
            RegistryStat::Clients => "clients",
            RegistryStat::Refused => "refused",
            RegistryStat::AgeSeconds => "age_seconds",
            RegistryStat::Bytes => "bytes",
        }
    }

    pub fn is_gauge(self) -> bool {
        matches!(self, RegistryStat::Clients | RegistryStat::Refused | RegistryStat::AgeSeconds | RegistryStat::Bytes)
    }
}

impl Metric {
    pub fn is_gauge(self) -> bool {
        match self {
            Metric::Registry(stat) | Metric::Registries(_, stat) => stat.is_gauge(),
            other => other.is_summed(),
        }
    }

    /// A gauge every worker adds its own change to (so it reads as the sum over workers), not one it sets.
    pub fn is_summed(self) -> bool {
        matches!(self, Metric::MemoryCachedBytes | Metric::MemoryVmBytes)
    }

    /// The stat prefix of a filter whose plugin is not named.
    pub const DEFAULT_PREFIX: &'static str = "oauth_mtls";

    /// The stat name under the default prefix, `oauth_mtls.<suffix>` (Envoy shows `wasmcustom.<name>`).
    pub fn name(self) -> String {
        self.name_under(Metric::DEFAULT_PREFIX)
    }

    /// The stat name under `prefix` (see [`Metric::prefix_for`]).
    pub fn name_under(self, prefix: &str) -> String {
        format!("{prefix}.{}", self.suffix())
    }

    /// The stat prefix of the plugin named `plugin` (Envoy's wasm `config.name`): the name with every character
    /// but ASCII letters, digits and `_` made `_` (a `.` would add a level to the stat's name), or
    /// [`Metric::DEFAULT_PREFIX`] for an empty name.
    pub fn prefix_for(plugin: &str) -> String {
        if plugin.is_empty() {
            return Metric::DEFAULT_PREFIX.to_string();
        }
        plugin.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
    }

    /// The name below the prefix: `authenticated`, `rejected.<reason>`, `registry.clients`, ...
    fn suffix(self) -> String {
        match self {
            Metric::Authenticated => "authenticated".into(),
            Metric::Passed => "passed".into(),
            Metric::Rejected(reason) => format!("rejected.{}", reason.name()),
            Metric::Registry(stat) => format!("registry.{}", stat.name()),
            Metric::Registries(i, stat) => format!("registries.{i}.{}", stat.name()),
            Metric::JwksFetchOk => "jwks.fetch_ok".into(),
            Metric::JwksFetchFailed => "jwks.fetch_failed".into(),
            Metric::ResourceAllowed => "resource.allowed".into(),
            Metric::DiscoveryAmended => "discovery.amended".into(),
            Metric::RevocationCrlOk => "revocation.crl_ok".into(),
            Metric::RevocationCrlFailed => "revocation.crl_failed".into(),
            Metric::RevocationOcspOk => "revocation.ocsp_ok".into(),
            Metric::RevocationOcspFailed => "revocation.ocsp_failed".into(),
            Metric::RevocationNotCovered => "revocation.not_covered".into(),
            Metric::RevocationUnavailablePassed => "revocation.unavailable_passed".into(),
            Metric::MemoryCachedBytes => "memory.cached_bytes".into(),
            Metric::MemoryVmBytes => "memory.vm_bytes".into(),
        }
    }

    pub fn all() -> Vec<Metric> {
        let mut all = vec![
            Metric::Authenticated,
            Metric::Passed,
            Metric::JwksFetchOk,
            Metric::JwksFetchFailed,
            Metric::ResourceAllowed,
            Metric::DiscoveryAmended,
            Metric::RevocationCrlOk,
            Metric::RevocationCrlFailed,
            Metric::RevocationOcspOk,
            Metric::RevocationOcspFailed,
            Metric::RevocationNotCovered,
            Metric::RevocationUnavailablePassed,
            Metric::MemoryCachedBytes,
            Metric::MemoryVmBytes,
        ];
        all.extend(crate::oauth::verdict::Reason::ALL.iter().map(|r| Metric::Rejected(*r)));
        all.extend(RegistryStat::ALL.iter().map(|s| Metric::Registry(*s)));
        all
    }

    /// The stats of the entries of `registries`, when the configuration has them.
    pub fn of_registries(registries: &[crate::config::RegistryConfig]) -> Vec<Metric> {
        let indexes = registries.iter().filter_map(|r| r.index);
        indexes.flat_map(|i| RegistryStat::ALL.iter().map(move |s| Metric::Registries(i, *s))).collect()
    }
}

/// A response to an HTTP call the filter dispatched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallResponse {
    /// `None` when the call failed before a response (timeout, reset, no healthy upstream).
    pub status: Option<u16>,
    pub etag: Option<String>,
    /// What its `Cache-Control` says of its age, in seconds (see `jwks::cache_max_age`).
    pub max_age_seconds: Option<u64>,
    pub body: Vec<u8>,
    /// The body was larger than the caller's limit and was not read.
    pub too_large: bool,
}

/// Why the proxy would not dispatch a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// Envoy's answer when the cluster is not defined (or an argument is wrong).
    BadArgument,
    /// Any other refusal.
    Refused,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::BadArgument => f.write_str("BadArgument (is the cluster defined?)"),
            CallError::Refused => f.write_str("the proxy refused to dispatch the call (is the cluster defined?)"),
        }
    }
}

impl std::error::Error for CallError {}

/// Host calls available in every context.
pub trait Host {
    fn now_ms(&self) -> u64;
    fn log(&self, level: Level, message: &str);
    /// The least severe level the proxy prints (Envoy: its `wasm` component's level; trace counts as debug).
    fn log_level(&self) -> Level;
    fn metric(&self, metric: Metric, value: i64);
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedWriteError>;
    /// Dispatches `GET` to `cluster`; the answer comes back as a [`CallResponse`] with the returned token.
    fn http_get(
        &self,
        cluster: &str,
        authority: &str,
        path: &str,
        extra: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, CallError>;
    /// How often the worker's tick comes (only from the worker's own callbacks: tick, registry response).
    fn set_tick_period_ms(&self, period_ms: u64);
}

/// Host calls about the current HTTP request.
pub trait Stream: Host {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// The whole request header map, in order, repeated headers as separate entries (one host call).
    fn request_headers(&self) -> crate::proxy::headers::Headers;
    fn set_request_header(&self, name: &str, value: Option<&[u8]>);
    /// Adds a request header without looking for existing copies (cheaper than a set; the caller knows
    /// there are none).
    fn add_request_header(&self, name: &str, value: &[u8]);
    fn request_body(&self, size: usize) -> Option<Vec<u8>>;
    /// A local reply; `details` is what Envoy's `%RESPONSE_CODE_DETAILS%` prints (no whitespace).
    fn send_response(&self, status: u16, details: &str, headers: &[(&str, &str)], body: &[u8]);
    /// What the filter decided on this request, for the access log (see `decision`).
    fn set_decision(&self, decision: &crate::proxy::decision::Decision);
    fn resume_request(&self);
    fn response_header(&self, name: &str) -> Option<Vec<u8>>;
    fn set_response_header(&self, name: &str, value: Option<&[u8]>);
    fn response_body(&self, size: usize) -> Option<Vec<u8>>;
    /// Replaces the first `size` bytes of the buffered response body with `body`.
    fn replace_response_body(&self, size: usize, body: &[u8]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_named_after_the_plugin() {
        assert_eq!(Metric::Passed.name_under(&Metric::prefix_for("oauth_mtls_realma")), "oauth_mtls_realma.passed");
        assert_eq!(Metric::Passed.name_under(&Metric::prefix_for("")), "oauth_mtls.passed");
        assert_eq!(Metric::prefix_for("istio-system.oauth-mtls"), "istio_system_oauth_mtls");
        assert_eq!(
            Metric::Rejected(crate::oauth::verdict::Reason::SubjectMismatch).name(),
            "oauth_mtls.rejected.subject_mismatch"
        );
    }
}
