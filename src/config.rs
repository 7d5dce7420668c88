//! The plugin configuration: its JSON form, its defaults, and its validation with errors that name the key.

use crate::cert::dn::Dn;
use crate::header;
use crate::oauth::endpoint::{self, Endpoints};
use crate::oauth::jwks::JwksUri;
use crate::oauth::registration::{self, Client, KeySource, Method};
use crate::oauth::tenant::{self, Tenant};
use crate::preset::{Preset, PRESETS};
use crate::revocation::ca::Ca;
pub use crate::revocation::OnUnavailable;
use crate::{oauth::discovery, oauth::path, proxy::memory};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// Where the client certificate is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateSource {
    Connection,
    Xfcc,
    ClientCert,
}

/// How the authenticated certificate is written into the forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardFormat {
    Rfc9440,
    Pem,
    PemUrlencoded,
    Base64Der,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownClient {
    Pass,
    Reject,
}

/// A direct peer trusted to forward client certificates, named by its own validated certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarder {
    UriSan(String),
    SubjectDn(Dn),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardCertificate {
    pub header: String,
    pub format: ForwardFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Its place in `registries`; `None` for `registry` (its stats keep the names without an index).
    pub index: Option<u8>,
    /// The tenant of every registration it serves (`registries[].tenant`); `None`: the tenant each item names.
    pub tenant: Option<Tenant>,
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub refresh_seconds: u64,
    pub timeout_ms: u64,
    pub max_stale_seconds: u64,
    pub buckets: u32,
    pub max_bytes: usize,
}

/// A protected resource: requests under `prefix` need an access token bound to the presented certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub prefix: String,
    /// `prefix` in the form request paths are compared in (`path::key`).
    prefix_key: String,
    pub require_binding: bool,
}

/// Where `jwt_authn` leaves the verified token payload (`payload_in_metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadMetadata {
    pub namespace: String,
    pub key: String,
}

/// Amending the AS's metadata documents with what the edge provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub mtls_endpoint_aliases: Option<Map<String, Value>>,
    pub max_bytes: usize,
    /// The metadata documents amended: paths or `{tenant}` templates (default `discovery::PATHS`).
    pub paths: Vec<String>,
    routes: Endpoints,
}

impl Discovery {
    /// Whether `path` is a metadata document to amend, and in which tenant (`Some(None)`: a literal path). A
    /// path that reaches a template without naming one tenant is not amended.
    pub fn document(&self, path: &str) -> Option<Option<Tenant>> {
        match self.routes.find(path)? {
            endpoint::Match::Literal => Some(None),
            endpoint::Match::Tenant(t) => Some(Some(t)),
            endpoint::Match::BadTenant(_) => None,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub endpoints: Vec<String>,
    /// `endpoints` ready for matching request paths (literal paths and `{tenant}` templates).
    routes: Endpoints,
    pub max_body_bytes: usize,
    pub certificate_source: CertificateSource,
    pub trusted_forwarders: Vec<Forwarder>,
    pub forwarder_validates_chains: bool,
    pub forward_certificate: ForwardCertificate,
    pub unknown_client: UnknownClient,
    pub clients: HashMap<String, Client>,
    /// `registry`, or every entry of `registries`, in order.
    pub registries: Vec<RegistryConfig>,
    pub jwks_cluster: Option<String>,
    pub jwks_min_refresh_seconds: u64,
    pub jwks_timeout_ms: u64,
    /// The longest a fetched JWK Set is used: a `Cache-Control: max-age` is honoured up to this.
    pub jwks_max_age_seconds: u64,
    /// What a worker's caches may hold, in bytes (see `memory`).
    pub memory_budget_bytes: usize,
    pub shared_data_prefix: Option<String>,
    pub resources: Vec<Resource>,
    pub jwt_payload_metadata: PayloadMetadata,
    pub discovery: Option<Discovery>,
    pub revocation: Option<RevocationConfig>,
    /// The server whose endpoints, discovery paths and certificate header filled what the document left out.
    pub preset: Option<Preset>,
    /// The path the filter answers itself with its readiness (`proxy::readiness`); none: not answered.
    pub readiness_path: Option<String>,
}

/// `revocation`: client certificates checked by CRL and OCSP (see `revocation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationConfig {
    pub cluster: String,
    pub issuers: Vec<Ca>,
    pub crl_urls: Vec<JwksUri>,
    pub use_distribution_points: bool,
    pub ocsp: bool,
    pub ocsp_url: Option<JwksUri>,
    pub on_unavailable: OnUnavailable,
    pub refresh_seconds: u64,
    pub max_stale_seconds: u64,
    pub timeout_ms: u64,
    pub ocsp_max_age_seconds: u64,
    pub max_crl_bytes: usize,
}

/// The most CRL locations a filter loads, configured and found in leaves' distribution points together.
pub const MAX_CRLS: usize = 16;

/// Envoy's default `per_connection_buffer_limit_bytes`: a request body over it gets Envoy's own 413.
pub const ENVOY_DEFAULT_BUFFER_LIMIT: usize = 1 << 20;
/// What Envoy's buffer must hold beyond `max_body_bytes` for the filter to see a body over its limit first
/// (a body arrives in chunks of up to 64 KiB).
pub const BUFFER_HEADROOM: usize = 64 << 10;

/// The strings of the array at `key`; an item that is not one is named (`endpoints[2]`).
fn strings(items: &[Value], key: &str) -> Result<Vec<String>, ConfigError> {
    let string = |(i, v): (usize, &Value)| {
        v.as_str().map(str::to_string).ok_or_else(|| err(format!("{key}[{i}]"), "must be a string"))
    };
    items.iter().enumerate().map(string).collect()
}

/// The most registries a filter fetches (`registries`).
pub const MAX_REGISTRIES: usize = 128;

/// The keys of `registries[]`; `registry` has all but the last (its items name their tenants).
const REGISTRIES_KEYS: [&str; 9] = [
    "cluster",
    "authority",
    "path",
    "refresh_seconds",
    "timeout_ms",
    "max_stale_seconds",
    "buckets",
    "max_bytes",
    "tenant",
];

/// `registry`, or one object of `registries` at `index`; errors name the key (`registry.path`,
/// `registries[3].tenant`).
fn registry_config(r: &Object<'_>, index: Option<u8>) -> Result<RegistryConfig, ConfigError> {
    let (cluster, authority, path) =
        (r.required_string("cluster")?, r.required_string("authority")?, r.required_string("path")?);
    for (k, v) in [("cluster", &cluster), ("authority", &authority)] {
        if v.is_empty() {
            return Err(err(r.key(k), "must not be empty"));
        }
    }
    if !path.starts_with('/') {
        return Err(err(r.key("path"), "must start with /"));
    }
    let tenant = match r.string("tenant")? {
        None => None,
        Some(t) => Some(Tenant::new(&t).map_err(|e| err(r.key("tenant"), e.to_string()))?),
    };
    let refresh_seconds = in_range(&r.key("refresh_seconds"), r.u64("refresh_seconds")?, 30, 1, 86400)?;
    Ok(RegistryConfig {
        index,
        tenant,
        cluster,
        authority,
        path,
        refresh_seconds,
        timeout_ms: in_range(&r.key("timeout_ms"), r.u64("timeout_ms")?, 5000, 1, 60000)?,
        max_stale_seconds: in_range(
            &r.key("max_stale_seconds"),
            r.u64("max_stale_seconds")?,
            300,
            refresh_seconds,
            30 * 86400,
        )?,
        // About 100 registrations a bucket at 100,000 clients: a lookup after a change copies
        // ~15 KB, and a bucket is small enough for one load slice.
        buckets: in_range(&r.key("buckets"), r.u64("buckets")?, 1024, 1, 4096)? as u32,
        // A loading worker holds the document and its encoded buckets at once: 64 MiB keeps a load far
        // below V8's 1 GiB per VM beside the caches' budget.
        max_bytes: in_range(&r.key("max_bytes"), r.u64("max_bytes")?, 16 << 20, 1024, MAX_REGISTRY_BYTES)? as usize,
    })
}

impl RegistryConfig {
    /// Whether both fetch the same document for the same tenant (two copies would make every client ambiguous).
    fn same_source(&self, other: &RegistryConfig) -> bool {
        (&self.cluster, &self.authority, &self.path, &self.tenant)
            == (&other.cluster, &other.authority, &other.path, &other.tenant)
    }

    /// How logs and errors name it: `registry`, or `registries[3]` with its tenant.
    pub fn name(&self) -> String {
        match (self.index, &self.tenant) {
            (None, _) => "registry".to_string(),
            (Some(i), None) => format!("registries[{i}]"),
            (Some(i), Some(t)) => format!("registries[{i}] (tenant {t})"),
        }
    }
}

/// The largest registry document a worker loads (`registry.max_bytes`).
pub const MAX_REGISTRY_BYTES: u64 = 64 << 20;

/// The headers this filter produces; inbound copies are removed from every request.
pub const PRODUCED_HEADERS: [&str; 5] = [
    header::CLIENT_CERT,
    header::CLIENT_CERT_CHAIN,
    header::X_MTLS_CLIENT_ID,
    header::X_MTLS_AUTH_METHOD,
    header::X_MTLS_X5T_S256,
];

/// What was wrong with the configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `registry.refresh_seconds` or `clients[2]`; empty for the document itself.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() || self.key == "." {
            write!(f, "invalid plugin configuration: {}", self.problem)
        } else {
            write!(f, "invalid plugin configuration: key `{}`: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    // Keys and serde messages quote the document (an unknown field's name): keep the message one line.
    let one_line = |s: String| s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    ConfigError { key: one_line(key.into()), problem: one_line(problem.into()) }
}

/// One JSON object of the configuration, read key by key. A key it does not list is an error, and absent
/// and `null` both mean "not set".
struct Object<'a> {
    /// Key path of the object itself, e.g. `registry` or `trusted_forwarders[0]`; empty for the document.
    path: String,
    map: &'a Map<String, Value>,
}

/// `path.key`, or `key` at the top level.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What a JSON value is, for an error message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `` `a`, `b`, `c` ``: the accepted keys or values, for an error message.
fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

impl<'a> Object<'a> {
    fn new(path: String, value: &'a Value, keys: &[&str]) -> Result<Object<'a>, ConfigError> {
        let Value::Object(map) = value else {
            return Err(err(path, format!("must be an object, not {}", kind(value))));
        };
        if let Some(unknown) = map.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(err(
                join(&path, unknown),
                format!("unknown field `{unknown}`, expected one of {}", quoted(keys)),
            ));
        }
        Ok(Object { path, map })
    }

    fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The value of `key` converted by `read`, which names what it expected when it returns `None`.
    fn typed<T>(
        &self,
        key: &str,
        expected: &str,
        read: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match read(v) {
                Some(t) => Ok(Some(t)),
                None => Err(err(self.key(key), format!("must be {expected}, not {}", kind(v)))),
            },
        }
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.typed(key, "an unsigned integer", Value::as_u64)
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.typed(key, "a boolean", Value::as_bool)
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.typed(key, "a string", |v| v.as_str().map(str::to_string))
    }

    fn required_string(&self, key: &str) -> Result<String, ConfigError> {
        self.string(key)?.ok_or_else(|| err(self.path.clone(), format!("missing field `{key}`")))
    }

    fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, ConfigError> {
        self.typed(key, "an array", Value::as_array)
    }

    fn object(&self, key: &str, keys: &[&str]) -> Result<Option<Object<'a>>, ConfigError> {
        self.get(key).map(|v| Object::new(self.key(key), v, keys)).transpose()
    }

    /// The objects of the array at `key`, each checked against `keys`.
    fn objects(&self, key: &str, keys: &[&str]) -> Result<Vec<Object<'a>>, ConfigError> {
        let items = self.array(key)?.map(Vec::as_slice).unwrap_or_default();
        items.iter().enumerate().map(|(i, v)| Object::new(format!("{}[{i}]", self.key(key)), v, keys)).collect()
    }

    /// The variant of `key` named by its string value, from `(name, variant)` pairs.
    fn variant<T: Copy>(&self, key: &str, variants: &[(&str, T)]) -> Result<Option<T>, ConfigError> {
        let Some(name) = self.string(key)? else { return Ok(None) };
        match variants.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(Some(*v)),
            None => {
                let names: Vec<&str> = variants.iter().map(|(n, _)| *n).collect();
                Err(err(self.key(key), format!("unknown variant `{name}`, expected one of {}", quoted(&names))))
            }
        }
    }
}

const KEYS: [&str; 22] = [
    "endpoints",
    "max_body_bytes",
    "certificate_source",
    "trusted_forwarders",
    "forwarder_validates_chains",
    "forward_certificate",
    "unknown_client",
    "clients",
    "registry",
    "registries",
    "preset",
    "jwks_cluster",
    "jwks_min_refresh_seconds",
    "jwks_timeout_ms",
    "jwks_max_age_seconds",
    "memory_budget_bytes",
    "shared_data_prefix",
    "resources",
    "jwt_payload_metadata",
    "discovery",
    "revocation",
    "readiness_path",
];

const SOURCES: [(&str, CertificateSource); 3] = [
    ("connection", CertificateSource::Connection),
    ("xfcc", CertificateSource::Xfcc),
    ("client-cert", CertificateSource::ClientCert),
];

const FORMATS: [(&str, ForwardFormat); 4] = [
    ("rfc9440", ForwardFormat::Rfc9440),
    ("pem", ForwardFormat::Pem),
    ("pem-urlencoded", ForwardFormat::PemUrlencoded),
    ("base64-der", ForwardFormat::Base64Der),
];

const ON_UNAVAILABLE: [(&str, OnUnavailable); 2] = [("reject", OnUnavailable::Reject), ("pass", OnUnavailable::Pass)];

const REVOCATION_KEYS: [&str; 12] = [
    "cluster",
    "issuers",
    "crl_urls",
    "use_distribution_points",
    "ocsp",
    "ocsp_url",
    "on_unavailable",
    "refresh_seconds",
    "max_stale_seconds",
    "timeout_ms",
    "ocsp_max_age_seconds",
    "max_crl_bytes",
];

/// An `http://` URL of a CRL or an OCSP responder (RFC 5280 and RFC 6960 fetch both over plain HTTP).
fn http_url(key: String, value: &str) -> Result<JwksUri, ConfigError> {
    let is_http = value.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    match JwksUri::parse(value) {
        Ok(url) if is_http => Ok(url),
        _ => Err(err(key, format!("must be an http:// URL with a host, got {value:?}"))),
    }
}

fn revocation(r: &Object<'_>) -> Result<RevocationConfig, ConfigError> {
    let cluster = r.required_string("cluster")?;
    if cluster.is_empty() {
        return Err(err(r.key("cluster"), "must not be empty"));
    }
    let mut issuers = Vec::new();
    for (i, v) in r.array("issuers")?.map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
        let key = format!("{}[{i}]", r.key("issuers"));
        let b64 = v.as_str().ok_or_else(|| err(key.clone(), "must be a base64 DER certificate string"))?;
        issuers.push(Ca::parse(b64).map_err(|e| err(key, format!("the CA certificate {e}")))?);
    }
    if issuers.is_empty() {
        return Err(err(r.key("issuers"), "must list at least one CA certificate (base64 DER)"));
    }
    let mut crl_urls = Vec::new();
    for (i, v) in r.array("crl_urls")?.map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
        let key = format!("{}[{i}]", r.key("crl_urls"));
        let text = v.as_str().ok_or_else(|| err(key.clone(), "must be a URL string"))?;
        crl_urls.push(http_url(key, text)?);
    }
    if crl_urls.len() > MAX_CRLS {
        return Err(err(r.key("crl_urls"), format!("lists more than {MAX_CRLS} CRLs")));
    }
    let use_distribution_points = r.bool("use_distribution_points")?.unwrap_or(false);
    let ocsp = r.bool("ocsp")?.unwrap_or(false);
    let ocsp_url = r.string("ocsp_url")?.map(|u| http_url(r.key("ocsp_url"), &u)).transpose()?;
    if ocsp_url.is_some() && !ocsp {
        return Err(err(r.key("ocsp_url"), "is set but `ocsp` is not true"));
    }
    if crl_urls.is_empty() && !use_distribution_points && !ocsp {
        return Err(err(
            r.path.clone(),
            "checks nothing: set `crl_urls`, `use_distribution_points: true` or `ocsp: true`",
        ));
    }
    let refresh_seconds = in_range(&r.key("refresh_seconds"), r.u64("refresh_seconds")?, 300, 1, 86400)?;
    Ok(RevocationConfig {
        cluster,
        issuers,
        crl_urls,
        use_distribution_points,
        ocsp,
        ocsp_url,
        on_unavailable: r.variant("on_unavailable", &ON_UNAVAILABLE)?.unwrap_or(OnUnavailable::Reject),
        refresh_seconds,
        max_stale_seconds: in_range(
            &r.key("max_stale_seconds"),
            r.u64("max_stale_seconds")?,
            3600.max(refresh_seconds),
            refresh_seconds,
            30 * 86400,
        )?,
        timeout_ms: in_range(&r.key("timeout_ms"), r.u64("timeout_ms")?, 2000, 100, 60000)?,
        ocsp_max_age_seconds: in_range(
            &r.key("ocsp_max_age_seconds"),
            r.u64("ocsp_max_age_seconds")?,
            3600,
            1,
            7 * 86400,
        )?,
        max_crl_bytes: in_range(&r.key("max_crl_bytes"), r.u64("max_crl_bytes")?, 16 << 20, 1024, MAX_REGISTRY_BYTES)?
            as usize,
    })
}

const UNKNOWN_CLIENT: [(&str, UnknownClient); 2] = [("pass", UnknownClient::Pass), ("reject", UnknownClient::Reject)];

fn in_range(key: &str, value: Option<u64>, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(err(key, format!("must be between {min} and {max}, got {v}")));
    }
    Ok(v)
}

/// Header names the filter may not be told to write: they would change routing, framing or credentials.
const FORBIDDEN_FORWARD_HEADERS: [&str; 9] = [
    "host",
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    "transfer-encoding",
    "connection",
    "te",
    header::X_FORWARDED_CLIENT_CERT,
    "cookie",
];

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b))
}

impl Config {
    /// Parses and validates the plugin configuration (an empty document means all defaults).
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|_| err("", "not UTF-8"))?;
        let text = if text.trim().is_empty() { "{}" } else { text };
        let mut document: Value = serde_json::from_slice(text.as_bytes()).map_err(|e| err("", e.to_string()))?;
        let preset = Object::new(String::new(), &document, &KEYS)?.variant("preset", &PRESETS)?;
        if let (Some(preset), Some(map)) = (preset, document.as_object_mut()) {
            preset.apply(map);
        }
        let mut config = Config::from_document(&Object::new(String::new(), &document, &KEYS)?)?;
        config.preset = preset;
        Ok(config)
    }

    fn from_document(raw: &Object<'_>) -> Result<Config, ConfigError> {
        let endpoints = match raw.array("endpoints")? {
            None => vec!["/token".to_string()],
            Some(items) => strings(items, "endpoints")?,
        };
        if endpoints.is_empty() {
            return Err(err("endpoints", "must list at least one path"));
        }
        let routes = Endpoints::parse(&endpoints).map_err(|(i, e)| err(format!("endpoints[{i}]"), e.to_string()))?;
        let max_body_bytes = in_range("max_body_bytes", raw.u64("max_body_bytes")?, 65536, 1, 1 << 20)? as usize;
        let certificate_source = raw.variant("certificate_source", &SOURCES)?.unwrap_or(CertificateSource::Connection);

        let mut trusted_forwarders = Vec::new();
        for f in raw.objects("trusted_forwarders", &["uri_san", "subject_dn"])? {
            let key = f.path.clone();
            trusted_forwarders.push(match (f.string("uri_san")?, f.string("subject_dn")?) {
                (Some(u), None) if !u.is_empty() => Forwarder::UriSan(u),
                (None, Some(d)) => {
                    let dn = Dn::parse(&d).map_err(|e| err(format!("{key}.subject_dn"), e.to_string()))?;
                    if dn.is_empty() {
                        return Err(err(format!("{key}.subject_dn"), "must not be empty"));
                    }
                    Forwarder::SubjectDn(dn)
                }
                _ => return Err(err(key, "must have exactly one of uri_san or subject_dn")),
            });
        }
        if certificate_source != CertificateSource::Connection && trusted_forwarders.is_empty() {
            return Err(err(
                "trusted_forwarders",
                "must name at least one forwarder when certificate_source is xfcc or client-cert",
            ));
        }

        let forward = raw.object("forward_certificate", &["header", "format"])?;
        let header = forward.as_ref().map(|f| f.string("header")).transpose()?.flatten();
        let header = header.unwrap_or_else(|| header::CLIENT_CERT.to_string()).to_ascii_lowercase();
        if !valid_header_name(&header) || FORBIDDEN_FORWARD_HEADERS.contains(&header.as_str()) {
            return Err(err("forward_certificate.header", format!("`{header}` cannot be used")));
        }
        let format = forward.as_ref().map(|f| f.variant("format", &FORMATS)).transpose()?.flatten();
        let forward_certificate = ForwardCertificate { header, format: format.unwrap_or(ForwardFormat::Rfc9440) };

        let jwks_cluster = raw.string("jwks_cluster")?.filter(|c| !c.is_empty());
        let mut clients = HashMap::new();
        for (i, metadata) in raw.array("clients")?.map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
            let key = match registration::client_id_of(metadata) {
                Some(id) => format!("clients[{i}] ({id})"),
                None => format!("clients[{i}]"),
            };
            let client =
                registration::check(metadata).and_then(|s| s.compile()).map_err(|e| err(key.clone(), e.to_string()))?;
            if matches!(client.method, Method::SelfSigned(KeySource::JwksUri(_))) && jwks_cluster.is_none() {
                return Err(err(key, "uses jwks_uri, so jwks_cluster must be set"));
            }
            let scoped = tenant::scoped_key(client.tenant.as_ref(), &client.client_id).into_owned();
            if clients.contains_key(&scoped) {
                let tenant = client.tenant.as_ref().map(|t| format!(" in tenant {t}")).unwrap_or_default();
                return Err(err(
                    key,
                    format!("client_id is registered twice{tenant}: which registration is meant is ambiguous"),
                ));
            }
            clients.insert(scoped, client);
        }

        let registry = raw.object("registry", REGISTRIES_KEYS.get(..8).unwrap_or_default())?;
        let listed = raw.objects("registries", &REGISTRIES_KEYS)?;
        if registry.is_some() && raw.get("registries").is_some() {
            return Err(err("registries", "cannot be used together with registry: list that registry in registries"));
        }
        if listed.len() > MAX_REGISTRIES {
            return Err(err("registries", format!("lists {} registries, more than {MAX_REGISTRIES}", listed.len())));
        }
        let mut registries = Vec::new();
        if let Some(r) = &registry {
            registries.push(registry_config(r, None)?);
        }
        for (i, r) in listed.iter().enumerate() {
            let config = registry_config(r, u8::try_from(i).ok())?;
            if let Some(j) = registries.iter().position(|o: &RegistryConfig| o.same_source(&config)) {
                return Err(err(
                    r.path.clone(),
                    format!("fetches the same document for the same tenant as registries[{j}]"),
                ));
            }
            registries.push(config);
        }

        let mut resources = Vec::new();
        for r in raw.objects("resources", &["prefix", "require_binding"])? {
            let prefix = r.required_string("prefix")?;
            if !prefix.starts_with('/') {
                return Err(err(r.key("prefix"), "must start with /"));
            }
            let prefix_key = path::key(&prefix);
            if let Some(endpoint) = endpoints.iter().find(|e| endpoint::literal_key(e).starts_with(&prefix_key)) {
                return Err(err(r.key("prefix"), format!("must not cover an endpoint (it covers {endpoint})")));
            }
            let require_binding = r.bool("require_binding")?.unwrap_or(true);
            resources.push(Resource { prefix, prefix_key, require_binding });
        }
        let (mut namespace, mut key) = (None, None);
        if let Some(pm) = raw.object("jwt_payload_metadata", &["namespace", "key"])? {
            (namespace, key) = (pm.string("namespace")?, pm.string("key")?);
        }
        let jwt_payload_metadata = PayloadMetadata {
            namespace: namespace.unwrap_or_else(|| "envoy.filters.http.jwt_authn".to_string()),
            key: key.unwrap_or_else(|| "jwt_payload".to_string()),
        };
        if jwt_payload_metadata.namespace.is_empty() || jwt_payload_metadata.key.is_empty() {
            return Err(err("jwt_payload_metadata", "namespace and key must not be empty"));
        }
        let discovery = match raw.object("discovery", &["mtls_endpoint_aliases", "max_bytes", "paths"])? {
            None => None,
            Some(d) => {
                let paths = match d.array("paths")? {
                    None => discovery::PATHS.iter().map(|p| (*p).to_string()).collect(),
                    Some(items) => strings(items, "discovery.paths")?,
                };
                if paths.is_empty() {
                    return Err(err("discovery.paths", "must list at least one path"));
                }
                let routes =
                    Endpoints::parse(&paths).map_err(|(i, e)| err(format!("discovery.paths[{i}]"), e.to_string()))?;
                let aliases = d.typed("mtls_endpoint_aliases", "an object", Value::as_object)?;
                for (k, v) in aliases.into_iter().flatten() {
                    let Some(text) = v.as_str() else {
                        return Err(err(format!("discovery.mtls_endpoint_aliases.{k}"), "must be a URL string"));
                    };
                    if text.contains(endpoint::TENANT) && routes.has_literals() {
                        return Err(err(
                            format!("discovery.mtls_endpoint_aliases.{k}"),
                            "holds {tenant}, so every discovery.paths entry must be a {tenant} template",
                        ));
                    }
                }
                Some(Discovery {
                    mtls_endpoint_aliases: aliases.cloned(),
                    max_bytes: in_range("discovery.max_bytes", d.u64("max_bytes")?, 65536, 1024, 1 << 20)? as usize,
                    paths,
                    routes,
                })
            }
        };
        let jwks_min_refresh_seconds =
            in_range("jwks_min_refresh_seconds", raw.u64("jwks_min_refresh_seconds")?, 60, 1, 86400)?;
        let jwks_max_age_seconds = in_range("jwks_max_age_seconds", raw.u64("jwks_max_age_seconds")?, 300, 1, 86400)?;
        if jwks_max_age_seconds < jwks_min_refresh_seconds {
            return Err(err(
                "jwks_max_age_seconds",
                format!("must not be less than jwks_min_refresh_seconds ({jwks_min_refresh_seconds})"),
            ));
        }

        let revocation = raw.object("revocation", &REVOCATION_KEYS)?.map(|r| revocation(&r)).transpose()?;

        let readiness_path = raw.string("readiness_path")?;
        let config = Config {
            readiness_path,
            revocation,
            preset: None,
            resources,
            jwt_payload_metadata,
            discovery,
            routes,
            endpoints,
            max_body_bytes,
            certificate_source,
            trusted_forwarders,
            forwarder_validates_chains: raw.bool("forwarder_validates_chains")?.unwrap_or(true),
            forward_certificate,
            unknown_client: raw.variant("unknown_client", &UNKNOWN_CLIENT)?.unwrap_or(UnknownClient::Pass),
            clients,
            registries,
            jwks_cluster,
            jwks_min_refresh_seconds,
            jwks_timeout_ms: in_range("jwks_timeout_ms", raw.u64("jwks_timeout_ms")?, 5000, 1, 60000)?,
            jwks_max_age_seconds,
            memory_budget_bytes: in_range(
                "memory_budget_bytes",
                raw.u64("memory_budget_bytes")?,
                memory::Budget::DEFAULT_BYTES,
                memory::Budget::MIN_BYTES,
                memory::Budget::MAX_BYTES,
            )? as usize,
            shared_data_prefix: raw.string("shared_data_prefix")?.filter(|p| !p.is_empty()),
        };
        if let Some(p) = &config.readiness_path {
            if !p.starts_with('/') || p.contains(['?', '#']) || p.chars().any(char::is_whitespace) {
                return Err(err("readiness_path", "must be an absolute path without query or fragment"));
            }
            if config.is_endpoint(p) || config.resource(p).is_some() {
                return Err(err("readiness_path", "must not be an endpoint or under a resource prefix"));
            }
        }
        Ok(config)
    }

    /// Whether `path` (as received, query included) is one of the configured endpoints.
    ///
    /// Matching is deliberately wider than exact: case, `;parameters` and trailing slashes are ignored,
    /// because many servers (Tomcat, koa-router, Spring) route `/TOKEN`, `/token;x` and `/token/` to the
    /// token endpoint, and a path the AS treats as the endpoint must never skip enforcement.
    pub fn is_endpoint(&self, path: &str) -> bool {
        self.endpoint(path).is_some()
    }

    /// What `path` is to the configured endpoints: a literal endpoint, a template's endpoint in a tenant, or
    /// one whose tenant segment is not a tenant (see [`crate::oauth::endpoint`]); `None`: not an endpoint.
    pub fn endpoint(&self, path: &str) -> Option<endpoint::Match> {
        self.routes.find(path)
    }

    /// The protected resource `path` falls under, if any: a prefix match on the widest reading of the path
    /// (`path::key`: case, `;parameters`, escapes, `\`, dot segments), so that no resource server's routing
    /// reaches a protected handler around the check.
    pub fn resource(&self, path: &str) -> Option<&Resource> {
        if self.resources.is_empty() {
            return None;
        }
        let path = path::key(path);
        self.resources.iter().find(|r| path.starts_with(&r.prefix_key))
    }

    /// Registrations no endpoint can reach, and endpoints no registration can serve (tenants: a registration
    /// with a tenant serves only `{tenant}` templates, one without only literal endpoints).
    fn tenant_warnings(&self) -> Vec<(&'static str, String)> {
        let mut warnings = Vec::new();
        let (templates, literals) = (self.routes.has_templates(), self.routes.has_literals());
        let mut ids: Vec<&Client> = self.clients.values().collect();
        ids.sort_by(|a, b| (&a.tenant, &a.client_id).cmp(&(&b.tenant, &b.client_id)));
        for c in &ids {
            match &c.tenant {
                Some(t) if !templates => warnings.push((
                    "clients",
                    format!("client {} of tenant {t} is never used: no endpoint is a {{tenant}} template", c.client_id),
                )),
                None if !literals => warnings.push((
                    "clients",
                    format!(
                        "client {} has no tenant, so it is never used: every endpoint is a {{tenant}} template",
                        c.client_id
                    ),
                )),
                _ => {}
            }
        }
        let tenanted = ids.iter().any(|c| c.tenant.is_some()) || !self.registries.is_empty();
        let untenanted = ids.iter().any(|c| c.tenant.is_none()) || self.registries.iter().any(|r| r.tenant.is_none());
        if templates && !tenanted {
            warnings.push((
                "endpoints",
                "the {tenant} templates serve no client: no inline client has a tenant and no registry is configured"
                    .to_string(),
            ));
        }
        if literals && !untenanted && (!ids.is_empty() || !self.registries.is_empty()) {
            warnings.push((
                "endpoints",
                "the literal endpoints serve no client: every registration belongs to a tenant (inline clients with \
                 tenant, registries with tenant), and those serve only {tenant} templates"
                    .to_string(),
            ));
        }
        warnings
    }

    /// Whether a registration of `tenant` (`None`: without one) can ever be used by a request.
    pub fn reaches(&self, tenant: Option<&Tenant>) -> bool {
        if tenant.is_some() {
            self.routes.has_templates()
        } else {
            self.routes.has_literals()
        }
    }

    /// What is valid but likely wrong in a deployment, as (key, advice): `oauth-mtls lint` prints it and the
    /// filter logs it when configured.
    pub fn warnings(&self) -> Vec<(&'static str, String)> {
        let mut warnings = Vec::new();
        if self.max_body_bytes > ENVOY_DEFAULT_BUFFER_LIMIT - BUFFER_HEADROOM {
            warnings.push((
                "max_body_bytes",
                format!(
                    "{} bytes needs per_connection_buffer_limit_bytes of at least {} on the listener (Envoy's default \
                     is {ENVOY_DEFAULT_BUFFER_LIMIT}); below that Envoy answers a body over the limit with its own \
                     text/plain 413 before the filter sees it (the shipped configs set 2 MiB)",
                    self.max_body_bytes,
                    self.max_body_bytes + BUFFER_HEADROOM
                ),
            ));
        }
        warnings.extend(self.tenant_warnings());
        if let Some(r) = &self.revocation {
            if r.on_unavailable == OnUnavailable::Pass {
                warnings.push((
                    "revocation.on_unavailable",
                    "pass: while no fresh status can be had (a CRL not loaded or expired, the OCSP responder down or \
                     its answer refused), a revoked certificate authenticates; each such request is logged and \
                     counted (oauth_mtls.revocation.unavailable_passed)"
                        .to_string(),
                ));
            }
            if r.ocsp && r.ocsp_url.is_none() {
                warnings.push((
                    "revocation.ocsp",
                    format!(
                        "true without ocsp_url: the OCSP responder named in each leaf's Authority Information Access \
                         is called through the cluster `{}` (revocation.cluster), which must reach every responder \
                         host the CAs name; a leaf that names none has no OCSP status",
                        r.cluster
                    ),
                ));
            }
            if r.use_distribution_points {
                warnings.push((
                    "revocation.use_distribution_points",
                    format!(
                        "true: the CRLs named in leaves' CRL Distribution Points are fetched through the cluster \
                         `{}` (revocation.cluster), which must reach every CRL host the CAs name; at most {MAX_CRLS} \
                         CRL locations are loaded in all",
                        r.cluster
                    ),
                ));
            }
        }
        warnings
    }

    /// `jwks_max_age_seconds` in milliseconds: the age of a JWK Set copy without its own Cache-Control age.
    pub fn jwks_max_age_ms(&self) -> u64 {
        self.jwks_max_age_seconds.saturating_mul(1000)
    }

    /// Every header removed from inbound requests.
    pub fn stripped_headers(&self) -> Vec<&str> {
        let mut names: Vec<&str> = PRODUCED_HEADERS.to_vec();
        if !names.contains(&self.forward_certificate.header.as_str()) {
            names.push(&self.forward_certificate.header);
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> ConfigError {
        Config::parse(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn empty_configuration_means_defaults() {
        let c = Config::parse(b"").unwrap();
        assert_eq!(c.endpoints, vec!["/token"]);
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.certificate_source, CertificateSource::Connection);
        assert_eq!(
            c.forward_certificate,
            ForwardCertificate { header: "client-cert".into(), format: ForwardFormat::Rfc9440 }
        );
        assert_eq!(c.unknown_client, UnknownClient::Pass);
        assert!(c.registries.is_empty());
        assert_eq!(c.jwks_min_refresh_seconds, 60);
    }

    #[test]
    fn regression_control_characters_in_an_unknown_key_do_not_break_the_error_line() {
        // Found by the `config` fuzz target: the unknown field's name was echoed with its CR.
        let e = problem("{\"trusted_forw\\rders\": [], \"registry\": {\"cluster\": \"r\", \"\\nx\": 1}}");
        assert!(e.problem.contains("trusted_forw ders"), "{e}");
        assert!(!e.to_string().contains(['\r', '\n']), "{e:?}");
        let e =
            problem("{\"registry\": {\"cluster\": \"r\", \"authority\": \"a\", \"path\": \"/\", \"\\u0085x\\n\": 1}}");
        assert!(!e.to_string().chars().any(char::is_control), "{e:?}");
        let e = problem("{\"certificate_source\": \"xfcc\\r\\nX-Injected: 1\"}");
        assert_eq!(e.key, "certificate_source");
        assert!(!e.to_string().contains(['\r', '\n']), "{e:?}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = problem(r#"{"endpoint": ["/token"]}"#);
        assert!(e.problem.contains("unknown field `endpoint`"), "{e}");
        let e = problem(r#"{"registry": {"cluster": "r", "authority": "a", "path": "/", "refresh": 1}}"#);
        assert_eq!(e.key, "registry.refresh");
        assert!(e.problem.contains("`refresh`"), "{e}");
    }

    #[test]
    fn unknown_values_of_a_choice_name_the_accepted_ones() {
        let e = problem(r#"{"forward_certificate": {"format": "der"}}"#);
        assert_eq!(e.key, "forward_certificate.format");
        assert!(e.problem.contains("`rfc9440`, `pem`, `pem-urlencoded`, `base64-der`"), "{e}");
    }

    #[test]
    fn a_missing_required_key_is_named() {
        let e = problem(r#"{"registry": {"cluster": "r", "path": "/"}}"#);
        assert_eq!((e.key.as_str(), e.problem.as_str()), ("registry", "missing field `authority`"));
        assert_eq!(problem(r#"{"resources": [{}]}"#).key, "resources[0]");
    }

    #[test]
    fn null_means_not_set() {
        let c = Config::parse(br#"{"endpoints": null, "max_body_bytes": null, "forward_certificate": null}"#).unwrap();
        assert_eq!((c.endpoints, c.max_body_bytes), (vec!["/token".to_string()], 65536));
    }

    #[test]
    fn wrong_types_name_the_key_path() {
        let e = problem(r#"{"registry": {"cluster": "r", "authority": "a", "path": "/", "timeout_ms": "5"}}"#);
        assert_eq!(e.key, "registry.timeout_ms");
        assert_eq!(e.problem, "must be an unsigned integer, not a string");
        assert_eq!(problem(r#"{"endpoints": ["/token", 1]}"#).key, "endpoints[1]");
        assert_eq!(problem(r#"{"trusted_forwarders": [[]]}"#).key, "trusted_forwarders[0]");
    }

    #[test]
    fn ranges_are_enforced() {
        assert_eq!(problem(r#"{"max_body_bytes": 0}"#).key, "max_body_bytes");
        let e = problem(
            r#"{"registry": {"cluster": "r", "authority": "a", "path": "/", "refresh_seconds": 60, "max_stale_seconds": 10}}"#,
        );
        assert_eq!(e.key, "registry.max_stale_seconds");
    }

    #[test]
    fn forwarded_sources_need_trusted_forwarders() {
        assert_eq!(problem(r#"{"certificate_source": "xfcc"}"#).key, "trusted_forwarders");
        let c = Config::parse(
            br#"{"certificate_source": "xfcc", "trusted_forwarders": [{"uri_san": "spiffe://example.org/front"}]}"#,
        )
        .unwrap();
        assert_eq!(c.trusted_forwarders, vec![Forwarder::UriSan("spiffe://example.org/front".into())]);
        assert_eq!(problem(r#"{"trusted_forwarders": [{}]}"#).key, "trusted_forwarders[0]");
    }

    #[test]
    fn a_bad_inline_client_names_its_index_and_id() {
        let e = problem(
            r#"{"clients": [{"client_id": "ok"}, {"client_id": "bad", "token_endpoint_auth_method": "tls_client_auth"}]}"#,
        );
        assert_eq!(e.key, "clients[1] (bad)");
        assert!(e.problem.contains("exactly one"), "{e}");
    }

    #[test]
    fn jwks_uri_clients_need_a_jwks_cluster() {
        let e = problem(
            r#"{"clients": [{"client_id": "s", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": "https://x/j"}]}"#,
        );
        assert!(e.problem.contains("jwks_cluster"), "{e}");
    }

    #[test]
    fn forward_header_cannot_be_a_routing_or_credential_header() {
        assert_eq!(
            problem(r#"{"forward_certificate": {"header": "Authorization"}}"#).key,
            "forward_certificate.header"
        );
        assert_eq!(problem(r#"{"forward_certificate": {"header": "bad header"}}"#).key, "forward_certificate.header");
        let c = Config::parse(br#"{"forward_certificate": {"header": "X-WSO2-MTLS-Cert", "format": "pem"}}"#).unwrap();
        assert_eq!(c.forward_certificate.header, "x-wso2-mtls-cert");
        assert!(c.stripped_headers().contains(&"x-wso2-mtls-cert"));
    }

    #[test]
    fn endpoints_match_paths_ignoring_the_query() {
        let c = Config::parse(br#"{"endpoints": ["/token", "/oauth2/revoke"]}"#).unwrap();
        assert!(c.is_endpoint("/token"));
        assert!(c.is_endpoint("/token?x=1"));
        assert!(c.is_endpoint("/oauth2/revoke"));
        assert!(!c.is_endpoint("/tokens"));
        assert!(!c.is_endpoint("/token/x"));
        assert!(!c.is_endpoint("/"));
    }

    #[test]
    fn path_variants_the_as_may_route_to_the_endpoint_are_endpoints_too() {
        let c = Config::parse(br#"{"endpoints": ["/oauth2/token"]}"#).unwrap();
        for variant in
            ["/oauth2/token/", "/OAUTH2/Token", "/oauth2/token;jsessionid=1", "/oauth2;x/token", "/oauth2/token//"]
        {
            assert!(c.is_endpoint(variant), "{variant}");
        }
    }

    #[test]
    fn resources_require_binding_by_default_and_match_by_prefix() {
        let c =
            Config::parse(br#"{"resources": [{"prefix": "/api/"}, {"prefix": "/legacy/", "require_binding": false}]}"#)
                .unwrap();
        assert!(c.resource("/api/accounts?x=1").unwrap().require_binding);
        assert!(c.resource("/API/accounts").is_some());
        assert!(!c.resource("/legacy/x").unwrap().require_binding);
        assert!(c.resource("/apix").is_none());
        assert!(c.resource("/token").is_none());
        assert_eq!(
            c.jwt_payload_metadata,
            PayloadMetadata { namespace: "envoy.filters.http.jwt_authn".into(), key: "jwt_payload".into() }
        );
    }

    #[test]
    fn a_resource_is_matched_in_every_path_form_a_server_may_route_to_it() {
        let c = Config::parse(br#"{"resources": [{"prefix": "/api/"}]}"#).unwrap();
        for variant in [
            "/api;v=1/accounts",
            "/API;x/accounts",
            "/%61pi/accounts",
            "/api%2Faccounts",
            "/x/../api/accounts",
            "//api/accounts",
            "/api\\accounts",
            "/api/./accounts",
        ] {
            assert!(c.resource(variant).is_some(), "{variant}");
        }
    }

    #[test]
    fn a_resource_may_not_cover_a_token_endpoint() {
        assert_eq!(problem(r#"{"resources": [{"prefix": "/"}]}"#).key, "resources[0].prefix");
        assert_eq!(problem(r#"{"resources": [{"prefix": "api"}]}"#).key, "resources[0].prefix");
    }

    #[test]
    fn discovery_aliases_must_be_strings() {
        let c = Config::parse(br#"{"discovery": {"mtls_endpoint_aliases": {"token_endpoint": "https://mtls/token"}}}"#)
            .unwrap();
        assert!(c.discovery.unwrap().mtls_endpoint_aliases.unwrap().contains_key("token_endpoint"));
        assert_eq!(
            problem(r#"{"discovery": {"mtls_endpoint_aliases": {"token_endpoint": 1}}}"#).key,
            "discovery.mtls_endpoint_aliases.token_endpoint"
        );
        assert!(Config::parse(b"{}").unwrap().discovery.is_none());
    }

    #[test]
    fn readiness_path_is_a_plain_path_apart_from_endpoints_and_resources() {
        assert_eq!(Config::parse(b"{}").unwrap().readiness_path, None);
        let c = Config::parse(br#"{"readiness_path": "/oauth-mtls/ready"}"#).unwrap();
        assert_eq!(c.readiness_path.as_deref(), Some("/oauth-mtls/ready"));
        for bad in [r#""ready""#, r#""/ready?x=1""#, r#""/token""#, r#""/api/ready""#] {
            let json = format!(r#"{{"readiness_path": {bad}, "resources": [{{"prefix": "/api/"}}]}}"#);
            assert_eq!(problem(&json).key, "readiness_path", "{bad}");
        }
    }

    #[test]
    fn not_json_is_an_error_not_a_crash() {
        assert!(Config::parse(b"{").is_err());
        assert!(Config::parse(&[0xff, 0xfe]).is_err());
        assert!(Config::parse(b"[]").is_err());
    }
}
