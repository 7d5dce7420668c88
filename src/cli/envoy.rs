//! `oauth-mtls lint ENVOY.yaml`: an Envoy bootstrap (YAML or JSON) that runs the filter, checked for what the
//! filter's guarantees rest on (SECURITY.md, "Deployment rules the guarantees depend on").
//!
//! Every oauth-mtls wasm filter in `static_resources.listeners` (a wasm filter whose `root_id`, `vm_id` or module
//! names `oauth_mtls` / `oauth-mtls`) is found; its plugin configuration (the JSON under `configuration.value`) is
//! validated exactly as `lint CONFIG.json` does, and its listener, filter chain, TLS context and HTTP connection
//! manager are checked for the settings each rule needs, one warning per missing setting, naming the rule.
//! The plugin configuration's own warnings (`Config::warnings`) and advice on its inline registrations are
//! reported too, and the clusters it names (`registry.cluster`, `revocation.cluster`, `jwks_cluster`) must be
//! clusters of the bootstrap. Filters Envoy receives over xDS (LDS, ECDS) are not in the file and cannot be
//! checked here.
//!
//! Any other Envoy YAML or JSON (a listener, an LDS or ECDS resource file, an Istio EnvoyFilter or WasmPlugin,
//! several YAML documents) that holds the filter gets its plugin configurations linted, and is told that the
//! deployment rules need a whole bootstrap.

use super::Output;
use crate::config::{CertificateSource, Config, BUFFER_HEADROOM, ENVOY_DEFAULT_BUFFER_LIMIT};
use serde_json::{json, Value};

const HCM: &str = "envoy.filters.network.http_connection_manager";
const HCM_TYPE: &str = "HttpConnectionManager";
const WASM_TYPE: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
const JWT_AUTHN_TYPE: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
/// Envoy's default HTTP/2 `initial_stream_window_size` (256 MiB).
const ENVOY_DEFAULT_STREAM_WINDOW: u64 = 256 << 20;

/// The rules of SECURITY.md a warning protects.
const RULE_FAILURE_POLICY: &str = "SECURITY.md rule 2: a failed VM refuses requests";
const RULE_STOP_ITERATION: &str = "SECURITY.md rule 3: allow_on_headers_stop_iteration";
const RULE_PATHS: &str = "SECURITY.md rule 4: path normalization";
const RULE_RESUMPTION: &str = "SECURITY.md rule 6: TLS session resumption off";
const RULE_FRONT_PROXY: &str = "SECURITY.md rule 7: behind a front proxy";
const RULE_JWT_AUTHN: &str = "SECURITY.md rule 9: jwt_authn before the filter";
const RULE_EDGE: &str = "SECURITY.md rule 10: edge settings";
const RULE_CERTIFICATES: &str = "SECURITY.md: a client certificate to read";
const RULE_PLUGIN: &str = "the plugin configuration";
const RULE_CLUSTERS: &str = "the plugin's clusters";

/// One missing setting: where (a path into the bootstrap), what is wrong, and the rule it protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Warning {
    pub at: String,
    pub problem: String,
    pub rule: &'static str,
}

/// What `lint` found in a bootstrap: each filter's summary, warnings, and plugin configuration errors.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub filters: Vec<(String, String)>,
    pub warnings: Vec<Warning>,
    pub errors: Vec<(String, String)>,
}

/// The document as an Envoy bootstrap, or None when it is not one (then it is a plugin configuration).
pub(crate) fn bootstrap(bytes: &[u8]) -> Option<Value> {
    let doc: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => serde_yaml_ng::from_slice(bytes).ok()?,
    };
    let top = doc.as_object()?;
    let envoy_keys = ["static_resources", "dynamic_resources", "admin", "node", "overload_manager", "layered_runtime"];
    envoy_keys.iter().any(|k| top.contains_key(*k)).then_some(doc)
}

/// Every YAML document of `bytes` (one for JSON), or None when it is not YAML at all.
fn documents(bytes: &[u8]) -> Option<Vec<Value>> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_slice(bytes).map(Value::deserialize).collect::<Result<Vec<_>, _>>().ok()
}

/// Each oauth-mtls filter (or Istio WasmPlugin) in `v`, with the path to it.
fn find_filters<'a>(v: &'a Value, path: String, found: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(obj) => {
            if is_oauth_mtls(v) || is_wasm_plugin(v) {
                found.push((path, v));
                return;
            }
            for (key, child) in obj {
                find_filters(child, join(&path, key), found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                find_filters(child, format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// An Istio WasmPlugin of this filter (its plugin configuration is `spec.pluginConfig`, an object).
fn is_wasm_plugin(v: &Value) -> bool {
    let named = |s: Option<&str>| s.is_some_and(|s| s.contains("oauth_mtls") || s.contains("oauth-mtls"));
    str_at(v, &["kind"]) == Some("WasmPlugin")
        && (named(str_at(v, &["spec", "url"])) || named(str_at(v, &["metadata", "name"])))
}

/// `lint FILE` on a document that is not a bootstrap: None when it is a plugin configuration (JSON without the
/// filter in it) for `lint` to read as one; else the lint of each filter it holds, or what `lint` expects.
pub(crate) fn lint_other_document(file: &str, bytes: &[u8], json_out: bool) -> Option<Result<Output, String>> {
    let text = std::str::from_utf8(bytes).unwrap_or_default().trim_start();
    let json_like = text.starts_with('{') || text.starts_with('[');
    let docs = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => vec![v],
        Err(_) if json_like => return None,
        Err(_) => documents(bytes).unwrap_or_default(),
    };
    let mut found = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let path = if docs.len() > 1 { format!("document {i}") } else { String::new() };
        find_filters(doc, path, &mut found);
    }
    if found.is_empty() {
        if serde_json::from_slice::<Value>(bytes).is_ok() {
            return None;
        }
        return Some(Err(format!(
            "{file}: neither a plugin configuration (the JSON the filter receives) nor an Envoy configuration \
             holding the oauth-mtls wasm filter; lint reads a plugin configuration (JSON), an Envoy bootstrap \
             (YAML or JSON, with static_resources), or any Envoy YAML/JSON holding the filter (a listener, an \
             LDS/ECDS resource, an Istio EnvoyFilter or WasmPlugin), whose plugin configuration is \
             typed_config.config.configuration.value"
        )));
    }
    let mut report = Report::default();
    for (at, filter) in found {
        let config = if is_wasm_plugin(filter) {
            let value_at = join(&at, "spec.pluginConfig");
            let json = filter.pointer("/spec/pluginConfig").map(Value::to_string).unwrap_or_default();
            plugin_value(json.as_bytes(), &value_at, false, &mut report)
        } else {
            plugin_config(filter, &at, false, &mut report)
        };
        if let Some(config) = config {
            report.filters.push((at, summary(&config)));
        }
    }
    Some(Ok(render(file, &report, json_out, false)))
}

/// `lint FILE` on an Envoy bootstrap: exit 1 when a filter's plugin configuration is invalid, else 0 (warnings
/// do not fail it).
pub(crate) fn lint(file: &str, doc: &Value, json_out: bool) -> Output {
    render(file, &check(doc), json_out, true)
}

/// The report on a bootstrap (`whole`) or on another document holding the filter.
fn render(file: &str, report: &Report, json_out: bool, whole: bool) -> Output {
    let status = if report.errors.is_empty() { 0 } else { 1 };
    let text = if json_out {
        let warnings: Vec<Value> =
            report.warnings.iter().map(|w| json!({"key": w.at, "problem": w.problem, "rule": w.rule})).collect();
        let errors: Vec<Value> = report.errors.iter().map(|(k, p)| json!({"key": k, "problem": p})).collect();
        let filters: Vec<Value> = report.filters.iter().map(|(at, s)| json!({"at": at, "summary": s})).collect();
        let v = json!({"ok": report.errors.is_empty(), "envoy_bootstrap": whole, "filters": filters,
                       "warnings": warnings, "errors": errors});
        format!("{v}\n")
    } else {
        let mut t = if whole {
            format!("{file}: Envoy bootstrap with {} oauth-mtls filter(s)\n", report.filters.len())
        } else {
            format!(
                "{file}: not an Envoy bootstrap; the oauth-mtls filter's plugin configuration is linted, the \
                 deployment rules (SECURITY.md) and the clusters it names need the whole bootstrap\n"
            )
        };
        for w in &report.warnings {
            t.push_str(&format!("{file}: warning at `{}`: {} ({})\n", w.at, w.problem, w.rule));
        }
        for (key, problem) in &report.errors {
            t.push_str(&format!("{file}: error at `{key}`: {problem}\n"));
        }
        for (at, summary) in &report.filters {
            t.push_str(&format!("{file}: `{at}`: {summary}\n"));
        }
        if whole && report.filters.is_empty() {
            t.push_str(&format!(
                "{file}: no oauth-mtls wasm filter in static_resources (one delivered over LDS or ECDS is not checked)\n"
            ));
        }
        t
    };
    Output { status, text }
}

/// `key` under `path` (`path.key`, or `key` at the document's root).
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// A protobuf boolean, also in YAML/JSON string form.
fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || matches!(v.and_then(Value::as_str), Some("true"))
}

/// A protobuf integer (uint32 as a number, uint64 also as a string).
fn number(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn typed(v: &Value, ty: &str) -> bool {
    str_at(v, &["typed_config", "@type"]).is_some_and(|t| t.ends_with(ty))
}

/// Is this HTTP filter the oauth-mtls wasm filter?
fn is_oauth_mtls(filter: &Value) -> bool {
    if !typed(filter, WASM_TYPE) {
        return false;
    }
    let Some(config) = at(filter, &["typed_config", "config"]) else { return false };
    let named = |s: Option<&str>| s.is_some_and(|s| s.contains("oauth_mtls") || s.contains("oauth-mtls"));
    named(str_at(config, &["root_id"]))
        || named(str_at(config, &["vm_config", "vm_id"]))
        || named(str_at(config, &["vm_config", "code", "local", "filename"]))
        || named(str_at(config, &["vm_config", "code", "remote", "http_uri", "uri"]))
}

/// Every check on every oauth-mtls filter of the bootstrap.
pub(crate) fn check(doc: &Value) -> Report {
    let mut report = Report::default();
    let clusters = doc.get("static_resources").map(|s| list(s, "clusters")).unwrap_or(&[]);
    let listeners = doc.get("static_resources").map(|s| list(s, "listeners")).unwrap_or(&[]);
    for (li, listener) in listeners.iter().enumerate() {
        let name = str_at(listener, &["name"]).unwrap_or("");
        for (ci, chain) in list(listener, "filter_chains").iter().enumerate() {
            for (fi, network) in list(chain, "filters").iter().enumerate() {
                if str_at(network, &["name"]) != Some(HCM) && !typed(network, HCM_TYPE) {
                    continue;
                }
                let Some(hcm) = network.get("typed_config") else { continue };
                let http_filters = list(hcm, "http_filters");
                for (hi, filter) in http_filters.iter().enumerate() {
                    if !is_oauth_mtls(filter) {
                        continue;
                    }
                    let place = format!("listeners[{li}] ({name}).filter_chains[{ci}]");
                    let hcm_at = format!("{place}.filters[{fi}]");
                    let filter_at =
                        format!("{hcm_at}.http_filters[{hi}] ({})", str_at(filter, &["name"]).unwrap_or(""));
                    let Some(config) = plugin_config(filter, &filter_at, true, &mut report) else { continue };
                    let value_at = format!("{filter_at}.typed_config.config.configuration.value");
                    check_clusters(doc, &config, &value_at, &mut report);
                    let mut warn = |at: String, problem: String, rule: &'static str| {
                        report.warnings.push(Warning { at, problem, rule })
                    };
                    check_wasm(filter, &filter_at, &mut warn);
                    check_hcm(hcm, &hcm_at, &config, &mut warn);
                    check_tls(chain, &place, &config, &mut warn);
                    check_buffers(listener, hcm, clusters, &format!("listeners[{li}] ({name})"), &config, &mut warn);
                    if !config.resources.is_empty() {
                        let before = http_filters.iter().take(hi).any(|f| {
                            str_at(f, &["name"]) == Some("envoy.filters.http.jwt_authn") || typed(f, JWT_AUTHN_TYPE)
                        });
                        if !before {
                            warn(
                                filter_at.clone(),
                                "the plugin protects `resources` but no jwt_authn filter comes before it: every API \
                                 request is refused"
                                    .into(),
                                RULE_JWT_AUTHN,
                            );
                        }
                    }
                    report.filters.push((filter_at, summary(&config)));
                }
            }
        }
    }
    report
}

/// The filter's plugin configuration, validated as `on_configure` does; its errors and warnings are reported.
fn plugin_config(filter: &Value, filter_at: &str, whole: bool, report: &mut Report) -> Option<Config> {
    let value_at = join(filter_at, "typed_config.config.configuration.value");
    let value = at(filter, &["typed_config", "config", "configuration", "value"]).and_then(Value::as_str);
    let Some(value) = value else {
        report.errors.push((value_at, "no plugin configuration (a StringValue holding the JSON)".into()));
        return None;
    };
    plugin_value(value.as_bytes(), &value_at, whole, report)
}

/// A plugin configuration's JSON at `value_at`: its errors, its warnings and the advice on its registrations.
/// In a whole bootstrap (`whole`) the buffers `max_body_bytes` needs are checked on the listener itself, so the
/// configuration's own advice on them is left out.
fn plugin_value(json: &[u8], value_at: &str, whole: bool, report: &mut Report) -> Option<Config> {
    let raw: Option<Value> = serde_json::from_slice(json).ok();
    for (key, advice) in raw.as_ref().map(super::inline_client_hints).unwrap_or_default() {
        report.warnings.push(Warning { at: format!("{value_at}: {key}"), problem: advice, rule: RULE_PLUGIN });
    }
    match Config::parse(json) {
        Ok(config) => {
            for (key, advice) in config.warnings().into_iter().filter(|(k, _)| !(whole && *k == "max_body_bytes")) {
                report.warnings.push(Warning { at: format!("{value_at}: {key}"), problem: advice, rule: RULE_PLUGIN });
            }
            Some(config)
        }
        Err(e) => {
            report.errors.push((format!("{value_at}: {}", e.key), e.problem));
            None
        }
    }
}

fn summary(c: &Config) -> String {
    format!("ok: {}", super::config_summary(c))
}

/// The clusters the plugin calls must be clusters of the bootstrap: a missing one is an error, unless clusters
/// also come over CDS (then a warning: it must be one of those).
fn check_clusters(doc: &Value, config: &Config, value_at: &str, report: &mut Report) {
    let clusters = doc.get("static_resources").map(|s| list(s, "clusters")).unwrap_or(&[]);
    let names: Vec<&str> = clusters.iter().filter_map(|c| str_at(c, &["name"])).collect();
    let dynamic = at(doc, &["dynamic_resources", "cds_config"]).is_some()
        || at(doc, &["dynamic_resources", "ads_config"]).is_some();
    let mut named: Vec<(String, &str)> =
        config.registries.iter().map(|r| (format!("{}.cluster", r.name()), r.cluster.as_str())).collect();
    named.extend(config.revocation.as_ref().map(|r| ("revocation.cluster".to_string(), r.cluster.as_str())));
    named.extend(config.jwks_cluster.as_deref().map(|c| ("jwks_cluster".to_string(), c)));
    for (key, cluster) in named {
        if names.contains(&cluster) {
            continue;
        }
        let listed = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        let at = format!("{value_at}: {key}");
        if dynamic {
            report.warnings.push(Warning {
                at,
                problem: format!(
                    "`{cluster}` is not a static cluster of this bootstrap (static clusters: {listed}); it must come \
                     over CDS, or every call the filter makes through it fails"
                ),
                rule: RULE_CLUSTERS,
            });
        } else {
            report.errors.push((
                at,
                format!(
                    "`{cluster}` is not a cluster of this bootstrap (clusters: {listed}): every call the filter makes \
                     through it fails"
                ),
            ));
        }
    }
}

type Warn<'a> = dyn FnMut(String, String, &'static str) + 'a;

fn check_wasm(filter: &Value, filter_at: &str, warn: &mut Warn) {
    let config = at(filter, &["typed_config", "config"]);
    let get = |key: &str| config.and_then(|c| c.get(key));
    if !truthy(get("allow_on_headers_stop_iteration")) {
        warn(
            format!("{filter_at}.typed_config.config.allow_on_headers_stop_iteration"),
            "not true: Envoy never delivers a token request's body to the filter, so token requests hang".into(),
            RULE_STOP_ITERATION,
        );
    }
    let policy = get("failure_policy").and_then(Value::as_str);
    if policy == Some("FAIL_OPEN") || truthy(get("fail_open")) {
        warn(
            format!("{filter_at}.typed_config.config.failure_policy"),
            "fails open: while the VM is down requests pass unauthenticated, forged x-mtls-* headers included; use \
             FAIL_RELOAD (or FAIL_CLOSED)"
                .into(),
            RULE_FAILURE_POLICY,
        );
    }
}

fn check_hcm(hcm: &Value, hcm_at: &str, config: &Config, warn: &mut Warn) {
    let field = |key: &str| format!("{hcm_at}.typed_config.{key}");
    if !truthy(hcm.get("normalize_path")) {
        warn(
            field("normalize_path"),
            "not true: `/a/../token` and `/%74oken` reach the AS's `/token` as paths the filter may not compare".into(),
            RULE_PATHS,
        );
    }
    if !truthy(hcm.get("merge_slashes")) {
        warn(
            field("merge_slashes"),
            "not true: `//token` reaches the AS's token endpoint as another path".into(),
            RULE_PATHS,
        );
    }
    let escaped = hcm.get("path_with_escaped_slashes_action").and_then(Value::as_str);
    if !matches!(escaped, Some("REJECT_REQUEST") | Some("UNESCAPE_AND_REDIRECT")) {
        warn(
            field("path_with_escaped_slashes_action"),
            format!(
                "{}: `%2F` and `%5C` in a path reach the AS, which may route `/%2Ftoken` as `/token`; use REJECT_REQUEST",
                escaped.unwrap_or("unset (Envoy keeps them as they are)")
            ),
            RULE_PATHS,
        );
    }
    let underscores = str_at(hcm, &["common_http_protocol_options", "headers_with_underscores_action"]);
    if underscores != Some("REJECT_REQUEST") {
        warn(
            field("common_http_protocol_options.headers_with_underscores_action"),
            format!(
                "{}: CGI/WSGI/Rack/PHP servers read `x_mtls_client_id` as `x-mtls-client-id`; use REJECT_REQUEST",
                underscores.unwrap_or("unset (Envoy allows them)")
            ),
            RULE_EDGE,
        );
    }
    let xfcc = hcm.get("forward_client_cert_details").and_then(Value::as_str).unwrap_or("SANITIZE");
    match config.certificate_source {
        CertificateSource::Xfcc if xfcc != "FORWARD_ONLY" => warn(
            field("forward_client_cert_details"),
            format!(
                "{xfcc} with certificate_source xfcc: the filter must see the front proxy's XFCC as it is (SANITIZE \
                 removes it, APPEND_FORWARD/SANITIZE_SET put this hop last); use FORWARD_ONLY"
            ),
            RULE_FRONT_PROXY,
        ),
        CertificateSource::Connection if !matches!(xfcc, "SANITIZE" | "SANITIZE_SET") => warn(
            field("forward_client_cert_details"),
            format!("{xfcc}: this Envoy terminates the client's TLS, so a client's own XFCC would reach the AS; use SANITIZE or SANITIZE_SET"),
            RULE_FRONT_PROXY,
        ),
        _ => {}
    }
    let needed = (config.max_body_bytes + BUFFER_HEADROOM) as u64;
    let window = number(at(hcm, &["http2_protocol_options", "initial_stream_window_size"]));
    if window.unwrap_or(ENVOY_DEFAULT_STREAM_WINDOW) < needed {
        warn(
            field("http2_protocol_options.initial_stream_window_size"),
            format!(
                "{} is below max_body_bytes + 64 KiB ({needed}): Envoy buffers an HTTP/2 request body only up to the \
                 stream window, so it answers an over-limit body with its own text/plain 413 before the filter",
                window.unwrap_or(0)
            ),
            RULE_EDGE,
        );
    }
}

fn check_tls(chain: &Value, place: &str, config: &Config, warn: &mut Warn) {
    let socket = chain.get("transport_socket");
    let tls = socket.filter(|s| typed(s, "DownstreamTlsContext")).and_then(|s| s.get("typed_config"));
    let Some(tls) = tls else {
        if config.certificate_source != CertificateSource::ClientCert {
            warn(
                format!("{place}.transport_socket"),
                "no TLS on this filter chain: Envoy has no client certificate for the filter to read".into(),
                RULE_CERTIFICATES,
            );
        }
        return;
    };
    let tls_at = format!("{place}.transport_socket.typed_config");
    for key in ["disable_stateless_session_resumption", "disable_stateful_session_resumption"] {
        if !truthy(tls.get(key)) {
            warn(
                format!("{tls_at}.{key}"),
                "not true: on a resumed TLS session Envoy reports the client certificate as not validated, so \
                 tls_client_auth clients (and a resumed front proxy) are refused"
                    .into(),
                RULE_RESUMPTION,
            );
        }
    }
    let common = tls.get("common_tls_context");
    let validates = common.is_some_and(|c| {
        ["validation_context", "combined_validation_context", "validation_context_sds_secret_config"]
            .iter()
            .any(|k| c.get(*k).is_some())
    });
    if !validates && config.certificate_source != CertificateSource::ClientCert {
        warn(
            format!("{tls_at}.common_tls_context.validation_context"),
            "missing: without one Envoy never asks for a client certificate, so no client authenticates".into(),
            RULE_CERTIFICATES,
        );
    }
    if config.certificate_source == CertificateSource::Xfcc && !truthy(tls.get("require_client_certificate")) {
        warn(
            format!("{tls_at}.require_client_certificate"),
            "not true with certificate_source xfcc: every peer here should be a forwarder proving itself by a \
             verified certificate (the filter trusts XFCC only from trusted_forwarders)"
                .into(),
            RULE_FRONT_PROXY,
        );
    }
}

/// The listener and the clusters its routes send to must buffer what the filter holds (Envoy's default: 1 MiB).
fn check_buffers(
    listener: &Value,
    hcm: &Value,
    clusters: &[Value],
    listener_at: &str,
    config: &Config,
    warn: &mut Warn,
) {
    let needed = (config.max_body_bytes + BUFFER_HEADROOM) as u64;
    let limit =
        |v: &Value| number(v.get("per_connection_buffer_limit_bytes")).unwrap_or(ENVOY_DEFAULT_BUFFER_LIMIT as u64);
    let problem = |have: u64| {
        format!(
            "{have} is below max_body_bytes + 64 KiB ({needed}): Envoy answers a body over the limit with its own \
             text/plain 413 before the filter's JSON one"
        )
    };
    if limit(listener) < needed {
        warn(format!("{listener_at}.per_connection_buffer_limit_bytes"), problem(limit(listener)), RULE_EDGE);
    }
    let mut routed: Vec<&str> = Vec::new();
    for host in at(hcm, &["route_config", "virtual_hosts"]).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    {
        for route in list(host, "routes") {
            if let Some(cluster) = str_at(route, &["route", "cluster"]) {
                if !routed.contains(&cluster) {
                    routed.push(cluster);
                }
            }
        }
    }
    for (i, cluster) in clusters.iter().enumerate() {
        let name = str_at(cluster, &["name"]).unwrap_or("");
        if routed.contains(&name) && limit(cluster) < needed {
            warn(
                format!("clusters[{i}] ({name}).per_connection_buffer_limit_bytes"),
                problem(limit(cluster)),
                RULE_EDGE,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A complete bootstrap with every setting the rules need; each test removes or changes one.
    const GOOD: &str = r#"
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 9901 } } }
static_resources:
  listeners:
  - name: edge
    per_connection_buffer_limit_bytes: 2097152
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: false
          disable_stateless_session_resumption: true
          disable_stateful_session_resumption: true
          common_tls_context:
            validation_context: { trusted_ca: { filename: ca.pem }, trust_chain_verification: ACCEPT_UNTRUSTED }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          common_http_protocol_options: { headers_with_underscores_action: REJECT_REQUEST }
          http2_protocol_options: { initial_stream_window_size: 131072 }
          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: REJECT_REQUEST
          forward_client_cert_details: SANITIZE
          route_config:
            virtual_hosts:
            - { name: as, domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: as } }] }
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                root_id: oauth_mtls
                allow_on_headers_stop_iteration: true
                failure_policy: FAIL_RELOAD
                vm_config: { runtime: envoy.wasm.runtime.v8, code: { local: { filename: oauth_mtls_filter.wasm } } }
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{"endpoints": ["/token"]}'
          - name: envoy.filters.http.router
  clusters:
  - name: as
    per_connection_buffer_limit_bytes: 2097152
"#;

    fn doc(yaml: &str) -> Value {
        bootstrap(yaml.as_bytes()).expect("an Envoy bootstrap")
    }

    /// GOOD with `edit` applied to its value (a JSON pointer and the new value; Null removes the key).
    fn with(edits: &[(&str, Value)]) -> Report {
        let mut v = doc(GOOD);
        for (pointer, value) in edits {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let obj = v.pointer_mut(parent).unwrap().as_object_mut().unwrap();
            if value.is_null() {
                obj.remove(key).unwrap();
            } else {
                obj.insert(key.to_string(), value.clone());
            }
        }
        check(&v)
    }

    const TLS: &str = "/static_resources/listeners/0/filter_chains/0/transport_socket/typed_config";
    const HCM_: &str = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";
    const WASM: &str =
        "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters/0/typed_config/config";

    fn one_warning(report: &Report) -> &Warning {
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.warnings.len(), 1, "{:#?}", report.warnings);
        &report.warnings[0]
    }

    #[test]
    fn a_bootstrap_with_every_setting_has_nothing_to_warn_about() {
        let report = check(&doc(GOOD));
        assert_eq!(report.filters.len(), 1);
        assert!(report.warnings.is_empty() && report.errors.is_empty(), "{report:#?}");
    }

    #[test]
    fn a_plugin_configuration_is_not_a_bootstrap_and_json_bootstraps_are() {
        assert!(bootstrap(br#"{"endpoints": ["/token"]}"#).is_none());
        assert!(bootstrap(b"endpoints: [/token]").is_none());
        let json = serde_json::to_vec(&doc(GOOD)).unwrap();
        assert_eq!(check(&bootstrap(&json).unwrap()).filters.len(), 1);
    }

    #[test]
    fn warns_without_allow_on_headers_stop_iteration() {
        let w = one_warning(&with(&[(&format!("{WASM}/allow_on_headers_stop_iteration"), Value::Null)])).clone();
        assert!(w.at.ends_with("typed_config.config.allow_on_headers_stop_iteration"), "{}", w.at);
        assert_eq!(w.rule, RULE_STOP_ITERATION);
    }

    #[test]
    fn warns_when_the_filter_fails_open() {
        let w = one_warning(&with(&[(&format!("{WASM}/failure_policy"), json!("FAIL_OPEN"))])).clone();
        assert_eq!(w.rule, RULE_FAILURE_POLICY);
        let w = one_warning(&with(&[
            (&format!("{WASM}/failure_policy"), Value::Null),
            (&format!("{WASM}/fail_open"), json!(true)),
        ]))
        .clone();
        assert_eq!(w.rule, RULE_FAILURE_POLICY);
        assert!(with(&[(&format!("{WASM}/failure_policy"), json!("FAIL_CLOSED"))]).warnings.is_empty());
    }

    #[test]
    fn warns_for_each_missing_path_normalization() {
        for key in ["normalize_path", "merge_slashes", "path_with_escaped_slashes_action"] {
            let w = one_warning(&with(&[(&format!("{HCM_}/{key}"), Value::Null)])).clone();
            assert!(w.at.ends_with(&format!("typed_config.{key}")), "{}", w.at);
            assert_eq!(w.rule, RULE_PATHS);
        }
        let w = one_warning(&with(&[(&format!("{HCM_}/path_with_escaped_slashes_action"), json!("KEEP_UNCHANGED"))]))
            .clone();
        assert!(w.problem.starts_with("KEEP_UNCHANGED"), "{}", w.problem);
    }

    #[test]
    fn warns_for_each_session_resumption_left_on() {
        for key in ["disable_stateless_session_resumption", "disable_stateful_session_resumption"] {
            let w = one_warning(&with(&[(&format!("{TLS}/{key}"), json!(false))])).clone();
            assert!(w.at.ends_with(key) && w.rule == RULE_RESUMPTION, "{w:?}");
        }
    }

    #[test]
    fn warns_when_envoy_never_asks_for_a_client_certificate() {
        let w = one_warning(&with(&[(&format!("{TLS}/common_tls_context"), json!({}))])).clone();
        assert_eq!(w.rule, RULE_CERTIFICATES);
        let report = with(&[("/static_resources/listeners/0/filter_chains/0/transport_socket", Value::Null)]);
        assert!(one_warning(&report).problem.starts_with("no TLS"), "{report:?}");
    }

    #[test]
    fn warns_when_header_names_with_underscores_are_allowed() {
        let w = one_warning(&with(&[(&format!("{HCM_}/common_http_protocol_options"), json!({}))])).clone();
        assert!(w.at.ends_with("headers_with_underscores_action") && w.rule == RULE_EDGE, "{w:?}");
    }

    #[test]
    fn warns_when_a_buffer_is_smaller_than_what_the_filter_holds() {
        let plugin = (&format!("{WASM}/configuration/value") as &str, json!(r#"{"max_body_bytes": 1048576}"#));
        // the listener and the routed cluster hold 2 MiB; the HTTP/2 stream window (128 KiB) does not
        let w = one_warning(&with(std::slice::from_ref(&plugin))).clone();
        assert!(w.at.ends_with("initial_stream_window_size") && w.problem.starts_with("131072"), "{w:?}");
        let report = with(&[
            plugin,
            (&format!("{HCM_}/http2_protocol_options"), Value::Null),
            ("/static_resources/listeners/0/per_connection_buffer_limit_bytes", Value::Null),
            ("/static_resources/clusters/0/per_connection_buffer_limit_bytes", json!("1048576")),
        ]);
        let at: Vec<&str> = report.warnings.iter().map(|w| w.at.as_str()).collect();
        assert_eq!(
            at,
            [
                "listeners[0] (edge).per_connection_buffer_limit_bytes",
                "clusters[0] (as).per_connection_buffer_limit_bytes"
            ]
        );
        assert!(report.warnings.iter().all(|w| w.rule == RULE_EDGE && w.problem.starts_with("1048576")));
    }

    #[test]
    fn behind_a_front_proxy_warns_unless_xfcc_is_forwarded_only_from_verified_peers() {
        let xfcc = json!(r#"{"certificate_source": "xfcc", "trusted_forwarders": [{"uri_san": "spiffe://x/front"}]}"#);
        let report = with(&[(&format!("{WASM}/configuration/value"), xfcc.clone())]);
        let at: Vec<&str> = report.warnings.iter().map(|w| w.at.rsplit('.').next().unwrap_or("")).collect();
        assert_eq!(at, ["forward_client_cert_details", "require_client_certificate"], "{report:#?}");
        assert!(report.warnings.iter().all(|w| w.rule == RULE_FRONT_PROXY));
        let fixed = with(&[
            (&format!("{WASM}/configuration/value"), xfcc),
            (&format!("{HCM_}/forward_client_cert_details"), json!("FORWARD_ONLY")),
            (&format!("{TLS}/require_client_certificate"), json!(true)),
        ]);
        assert!(fixed.warnings.is_empty(), "{fixed:#?}");
        // where Envoy terminates the client's TLS, a client's own XFCC must not pass
        let w = one_warning(&with(&[(&format!("{HCM_}/forward_client_cert_details"), json!("FORWARD_ONLY"))])).clone();
        assert_eq!(w.rule, RULE_FRONT_PROXY);
    }

    #[test]
    fn warns_when_resources_are_protected_without_jwt_authn_before_the_filter() {
        let value = json!(r#"{"resources": [{"prefix": "/api/"}]}"#);
        let w = one_warning(&with(&[(&format!("{WASM}/configuration/value"), value)])).clone();
        assert_eq!(w.rule, RULE_JWT_AUTHN);
    }

    #[test]
    fn an_invalid_plugin_configuration_is_an_error_located_in_the_bootstrap() {
        let report = with(&[(&format!("{WASM}/configuration/value"), json!(r#"{"max_body_bytes": "big"}"#))]);
        assert_eq!(report.errors.len(), 1, "{report:#?}");
        assert!(report.errors[0].0.ends_with("configuration.value: max_body_bytes"), "{:?}", report.errors);
        let out = lint("envoy.yaml", &doc(GOOD), false);
        assert_eq!(out.status, 0);
        assert!(out.text.starts_with("envoy.yaml: Envoy bootstrap with 1 oauth-mtls filter(s)\n"), "{}", out.text);
        assert!(!out.text.contains("warning"), "{}", out.text);
    }

    #[test]
    fn lint_prints_one_line_per_warning_naming_the_rule_and_json_for_scripts() {
        let mut v = doc(GOOD);
        v.pointer_mut(HCM_).unwrap().as_object_mut().unwrap().remove("merge_slashes");
        let out = lint("envoy.yaml", &v, false);
        assert_eq!(out.status, 0, "warnings do not fail lint");
        let warnings: Vec<&str> = out.text.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "{}", out.text);
        assert!(
            warnings[0].contains("typed_config.merge_slashes`: not true")
                && warnings[0].ends_with("(SECURITY.md rule 4: path normalization)")
        );
        let j: Value = serde_json::from_str(&lint("envoy.yaml", &v, true).text).unwrap();
        assert_eq!(j["warnings"][0]["rule"], RULE_PATHS);
        assert_eq!(j["envoy_bootstrap"], true);
    }

    #[test]
    fn a_bootstrap_without_the_filter_says_so() {
        let out = lint("front.yaml", &doc("static_resources: { listeners: [] }"), false);
        assert_eq!(out.status, 0);
        assert!(out.text.contains("no oauth-mtls wasm filter"), "{}", out.text);
    }

    #[test]
    fn the_plugin_configurations_own_warnings_and_registration_advice_are_shown() {
        let value = json!(format!(
            r#"{{"clients": [{{"client_id": "svc", "token_endpoint_auth_method": "tls_clientauth"}}],
            "revocation": {{"cluster": "as", "issuers": ["{}"], "crl_urls": ["http://crl.example.test/ca.crl"],
                           "on_unavailable": "pass"}}}}"#,
            crate::revocation::testdata::CA
        ));
        let report = with(&[(&format!("{WASM}/configuration/value"), value)]);
        assert!(report.errors.is_empty(), "{report:#?}");
        let at: Vec<&str> = report.warnings.iter().map(|w| w.at.rsplit(": ").next().unwrap_or("")).collect();
        assert_eq!(at, ["clients[0] (svc).token_endpoint_auth_method", "revocation.on_unavailable"], "{report:#?}");
        assert!(report.warnings.iter().all(|w| w.rule == RULE_PLUGIN));
    }

    #[test]
    fn a_cluster_the_plugin_names_must_be_a_cluster_of_the_bootstrap() {
        let registry = |cluster: &str| {
            json!(format!(r#"{{"registry": {{"cluster": "{cluster}", "authority": "r", "path": "/clients"}}}}"#))
        };
        let report = with(&[(&format!("{WASM}/configuration/value"), registry("registry"))]);
        assert_eq!(report.errors.len(), 1, "{report:#?}");
        assert!(report.errors[0].0.ends_with("configuration.value: registry.cluster"), "{:?}", report.errors);
        assert_eq!(
            report.errors[0].1,
            "`registry` is not a cluster of this bootstrap (clusters: as): every call the filter makes through it fails"
        );
        assert!(with(&[(&format!("{WASM}/configuration/value"), registry("as"))]).errors.is_empty());
        // With CDS, a cluster may come from it: a warning.
        let cds = with(&[
            (&format!("{WASM}/configuration/value"), registry("registry")),
            ("/dynamic_resources", json!({"cds_config": {"ads": {}}})),
        ]);
        assert!(cds.errors.is_empty(), "{cds:#?}");
        assert_eq!(one_warning(&cds).rule, RULE_CLUSTERS);
    }

    #[test]
    fn the_filter_is_found_and_linted_in_any_envoy_yaml_that_is_not_a_bootstrap() {
        // The listener of GOOD, alone: its plugin configuration is linted, the deployment rules are not.
        let bootstrap = doc(GOOD);
        let listener = serde_yaml_ng::to_string(bootstrap.pointer("/static_resources/listeners/0").unwrap()).unwrap();
        let out = lint_other_document("listener.yaml", listener.as_bytes(), false).unwrap().unwrap();
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(
            out.text.starts_with(
                "listener.yaml: not an Envoy bootstrap; the oauth-mtls filter's plugin configuration is linted"
            ),
            "{}",
            out.text
        );
        assert!(
            out.text.contains("`filter_chains[0].filters[0].typed_config.http_filters[0]`: ok: 0 inline clients"),
            "{}",
            out.text
        );
        // Several YAML documents (an Istio manifest), one with a broken plugin configuration.
        let broken = listener.replace(r#"{"endpoints": ["/token"]}"#, r#"{"endpoints": "/token"}"#);
        let manifest = format!("kind: Gateway\n---\n{broken}");
        let out = lint_other_document("istio.yaml", manifest.as_bytes(), true).unwrap().unwrap();
        assert_eq!(out.status, 1, "{}", out.text);
        let v: Value = serde_json::from_str(&out.text).unwrap();
        assert_eq!(v["envoy_bootstrap"], false);
        assert!(v["errors"][0]["key"].as_str().unwrap().starts_with("document 1.filter_chains[0]"), "{v}");
        // An Istio WasmPlugin's pluginConfig.
        let wasm_plugin =
            "kind: WasmPlugin\nmetadata: { name: oauth-mtls }\nspec: { pluginConfig: { unknown_client: maybe } }\n";
        let out = lint_other_document("wasmplugin.yaml", wasm_plugin.as_bytes(), false).unwrap().unwrap();
        assert!(out.text.contains("error at `spec.pluginConfig: unknown_client`"), "{}", out.text);
        // A plugin configuration in JSON is left to `lint` to read as one.
        assert!(lint_other_document("plugin.json", br#"{"endpoints": ["/token"]}"#, false).is_none());
        assert!(lint_other_document("plugin.json", br#"{"endpoints": ["/token"],}"#, false).is_none());
    }

    #[test]
    fn each_registry_of_registries_names_a_cluster_of_the_bootstrap() {
        let value = json!(
            r#"{"registries": [{"cluster": "as", "authority": "r", "path": "/a"},
                               {"cluster": "tenants", "authority": "r", "path": "/b"}]}"#
        );
        let report = with(&[(&format!("{WASM}/configuration/value"), value)]);
        assert_eq!(report.errors.len(), 1, "{report:#?}");
        assert!(report.errors[0].0.ends_with("configuration.value: registries[1].cluster"), "{:?}", report.errors);
    }
}
