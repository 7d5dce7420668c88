//! The `oauth-mtls` command line: `check`, `lint` and `thumbprint`, on the filter's own pure core.

// `registry from-keycloak|from-wso2`: an AS's client list as a registry document (native builds only).
#[cfg(not(target_arch = "wasm32"))]
mod bridge;
pub(crate) mod chain;
pub(crate) mod dn_forms;
pub(crate) mod explain;
pub(crate) mod methods;
#[cfg(test)]
mod testdata;
// Envoy bootstraps given to `lint` (a YAML parser: native builds only).
#[cfg(not(target_arch = "wasm32"))]
mod envoy;

use crate::config::{CertificateSource, Config, UnknownClient};
use crate::oauth::endpoint::Match;
use crate::oauth::tenant::Tenant;
use crate::revocation::{ca::Ca, OnUnavailable};
use crate::{cert, cert::pem, oauth::registration, registry};
use explain::{ChainInput, Explanation, RevocationInput};
use serde_json::{json, Value};

/// The version `--version` prints: the crate's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const USAGE: &str = "usage:
  oauth-mtls check --cert CLIENT.pem [--chain CHAIN.pem] --client REGISTRATION.json [--client-id ID]
                   [--ca CA.pem]... [--now TIME] [--not-validated] [--unknown-client pass|reject]
                   [--jwks JWKS.json] [--endpoint PATH --config CONFIG.json] [--json]
                   [--issuer CA.pem [--crl CRL]... [--ocsp-response RESPONSE.der]
                    [--ocsp-max-age SECONDS] [--on-unavailable reject|pass]]
      the verdict the filter would give on a token request with this certificate, step by step
      (exit 0: authenticated, 1: not authenticated, 2: usage or input error).
      --cert holds the leaf, optionally followed by the intermediates the client sends (as does --chain).
      With --ca (the PEM bundle of Envoy's trusted_ca), the chain is validated here as Envoy's default
      validator does (signatures, issuer names, validity at --now, CA basicConstraints and keyUsage, path
      length); without it, chain validation is NOT checked: it is assumed, and an authenticated verdict is
      conditional on it. --not-validated replays a chain Envoy reported as not validated.
      --unknown-client is the plugin's unknown_client (default pass, as the filter): it decides for a client
      whose registration does not load.
      --endpoint PATH resolves the request's path against the endpoints of --config as the filter does (a
      literal endpoint, or a {tenant} template and its tenant; not an endpoint: not authenticated there): the
      registration of --client-id in that tenant is used (none: an unknown client; --config's unknown_client
      decides unless --unknown-client is given).
      With --issuer (the CA as revocation.issuers lists it, PEM or DER), a tls_client_auth certificate of that
      CA is then checked for revocation as the filter does: each --crl (DER or PEM) as if just fetched, the
      --ocsp-response as the responder's answer (none: OCSP not consulted), judged at --now (RFC 3339 or Unix
      seconds; default: the clock), ocsp_max_age_seconds --ocsp-max-age (default 3600), and with no fresh
      status --on-unavailable decides (default reject, as the filter)
  oauth-mtls lint CONFIG.json [--json]              validate a plugin configuration as the filter does
  oauth-mtls lint ENVOY.yaml [--json]               the same for each oauth-mtls filter of an Envoy bootstrap
                                                    (YAML or JSON), its warnings and its clusters, and warn
                                                    about the deployment rules it misses (SECURITY.md); any
                                                    other Envoy YAML/JSON holding the filter: its plugin
                                                    configuration only
  oauth-mtls lint CONFIG.json --explain [--json]    what the configuration's preset fills in (endpoints,
                                                    discovery.paths, forward_certificate) and what it overrides
  oauth-mtls lint --registry CLIENTS.json [--config CONFIG.json] [--json]
                                                    validate a registry document as the filter does (copies
                                                    counted per tenant); with --config, say which registrations
                                                    no endpoint of it can reach
  oauth-mtls thumbprint CERT.pem [--json]           the RFC 8705 x5t#S256 of a certificate
  oauth-mtls registry from-keycloak|from-wso2 [--tenant NAME] FILE|-
      the registry document (RFC 7591 metadata) for the clients Keycloak's admin API (GET
      /admin/realms/{realm}/clients) or WSO2's application API returns (docs/authorization-servers.md); a client
      the filter cannot enforce exactly as the AS does is refused, and then nothing is written (exit 1)
  oauth-mtls version | --version                    the version of oauth-mtls
";

/// The one line printed after an input error, instead of the whole usage.
const HELP_HINT: &str = "(oauth-mtls --help shows the usage)";

/// The result of one command: exit status and what to print on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub text: String,
}

fn usage(problem: &str) -> Output {
    Output { status: 2, text: format!("oauth-mtls: {problem}\n{USAGE}") }
}

/// Why a command could not run: the command line is wrong (the usage is printed), or an input is missing,
/// unreadable or not what was expected (the error and a one-line hint).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    Usage(String),
    Input(String),
}

impl From<String> for Failure {
    fn from(problem: String) -> Failure {
        Failure::Input(problem)
    }
}

impl Failure {
    fn output(self) -> Output {
        match self {
            Failure::Usage(problem) => usage(&problem),
            Failure::Input(problem) => Output { status: 2, text: format!("oauth-mtls: {problem}\n{HELP_HINT}\n") },
        }
    }
}

/// Runs the command in `args` (without the program name); `read` reads a file.
pub fn run(args: &[String], read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Output {
    let mut flags = Flags::default();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        let result = match arg.as_str() {
            "--json" => {
                flags.json = true;
                Ok(())
            }
            "--explain" => {
                flags.explain = true;
                Ok(())
            }
            "--not-validated" => {
                flags.not_validated = true;
                Ok(())
            }
            "--ca" => value("--ca").map(|v| flags.ca.push(v)),
            "--unknown-client" => {
                value("--unknown-client").and_then(|v| unknown_client(&v)).map(|u| flags.unknown_client = Some(u))
            }
            "--cert" => value("--cert").map(|v| flags.cert = Some(v)),
            "--chain" => value("--chain").map(|v| flags.chain = Some(v)),
            "--client" => value("--client").map(|v| flags.client = Some(v)),
            "--client-id" => value("--client-id").map(|v| flags.client_id = Some(v)),
            "--jwks" => value("--jwks").map(|v| flags.jwks = Some(v)),
            "--registry" => value("--registry").map(|v| flags.registry = Some(v)),
            "--tenant" => value("--tenant").map(|v| flags.tenant = Some(v)),
            "--endpoint" => value("--endpoint").map(|v| flags.endpoint = Some(v)),
            "--config" => value("--config").map(|v| flags.config = Some(v)),
            "--issuer" => value("--issuer").map(|v| flags.issuer = Some(v)),
            "--crl" => value("--crl").map(|v| flags.crls.push(v)),
            "--ocsp-response" => value("--ocsp-response").map(|v| flags.ocsp_response = Some(v)),
            "--now" => value("--now").and_then(|v| instant_ms(&v)).map(|ms| flags.now_ms = Some(ms)),
            "--ocsp-max-age" => value("--ocsp-max-age").and_then(|v| max_age(&v)).map(|s| flags.ocsp_max_age = Some(s)),
            "--on-unavailable" => {
                value("--on-unavailable").and_then(|v| on_unavailable(&v)).map(|o| flags.on_unavailable = Some(o))
            }
            "-h" | "--help" => return Output { status: 0, text: USAGE.to_string() },
            "-V" | "--version" => return version(),
            other if other.starts_with("--") => Err(format!("unknown option {other}")),
            other => {
                positional.push(other.to_string());
                Ok(())
            }
        };
        if let Err(problem) = result {
            return usage(&problem);
        }
    }
    if flags.tenant.is_some() && positional.first().is_none_or(|cmd| cmd != "registry") {
        return usage("--tenant belongs to `registry from-keycloak|from-wso2`");
    }
    let result: Result<Output, Failure> = match positional.split_first() {
        Some((cmd, rest)) if cmd == "check" && rest.is_empty() => check(&flags, read),
        Some((cmd, rest)) if cmd == "lint" => match (rest, &flags.registry) {
            ([], Some(file)) => lint_registry(file, flags.config.as_deref(), flags.json, read),
            ([file], None) if flags.explain => explain_preset(file, flags.json, read),
            ([file], None) => lint_config(file, flags.json, read),
            _ => Err(Failure::Usage("lint takes CONFIG.json, or --registry CLIENTS.json".to_string())),
        },
        Some((cmd, [file])) if cmd == "thumbprint" => thumbprint(file, flags.json, read),
        #[cfg(not(target_arch = "wasm32"))]
        Some((cmd, [source, file])) if cmd == "registry" => match bridge::Source::from_command(source) {
            Some(source) => registry_from(source, file, flags.tenant.as_deref(), read).map_err(Failure::from),
            None => Err(Failure::Usage(format!("registry takes from-keycloak or from-wso2, not {source:?}"))),
        },
        Some((cmd, [])) if cmd == "version" => Ok(version()),
        Some((cmd, _)) => Err(Failure::Usage(format!("unknown command or wrong arguments: {cmd}"))),
        None => Err(Failure::Usage("no command".to_string())),
    };
    result.unwrap_or_else(Failure::output)
}

fn version() -> Output {
    Output { status: 0, text: format!("oauth-mtls {VERSION}\n") }
}

#[derive(Default)]
struct Flags {
    json: bool,
    explain: bool,
    not_validated: bool,
    ca: Vec<String>,
    unknown_client: Option<UnknownClient>,
    cert: Option<String>,
    chain: Option<String>,
    client: Option<String>,
    client_id: Option<String>,
    jwks: Option<String>,
    registry: Option<String>,
    tenant: Option<String>,
    endpoint: Option<String>,
    config: Option<String>,
    issuer: Option<String>,
    crls: Vec<String>,
    ocsp_response: Option<String>,
    now_ms: Option<u64>,
    ocsp_max_age: Option<u64>,
    on_unavailable: Option<OnUnavailable>,
}

/// `--now`: Unix seconds, or an RFC 3339 date-time (`2026-12-01T05:04:03Z`, `...05:04:03.5+01:00`); in ms.
fn instant_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("--now {text:?}: neither Unix seconds nor an RFC 3339 time such as 2026-12-01T05:04:03Z");
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().ok().and_then(|s| s.checked_mul(1000)).ok_or_else(bad);
    }
    let digits = |at: std::ops::Range<usize>| {
        text.get(at).filter(|d| d.bytes().all(|b| b.is_ascii_digit())).and_then(|d| d.parse::<u16>().ok())
    };
    let at = |i: usize, allowed: &[u8]| text.as_bytes().get(i).is_some_and(|b| allowed.contains(b));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return Err(bad());
    }
    let field = |at: std::ops::Range<usize>| digits(at).ok_or_else(bad);
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    let mut rest = text.get(19..).unwrap_or_default();
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let count = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if count == 0 {
            return Err(bad());
        }
        let first3 = format!("{:0<3}", fraction.get(..count.min(3)).unwrap_or_default());
        millis = first3.parse::<u64>().map_err(|_| bad())?;
        rest = fraction.get(count..).unwrap_or_default();
    }
    // The local time is UTC plus the offset.
    let offset_minutes: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let part = |r: std::ops::Range<usize>| {
                rest.get(r).filter(|d| d.bytes().all(|b| b.is_ascii_digit())).and_then(|d| d.parse::<i64>().ok())
            };
            let (h, m) = (part(1..3).ok_or_else(bad)?, part(4..6).ok_or_else(bad)?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            if *sign == b'-' {
                -(h * 60 + m)
            } else {
                h * 60 + m
            }
        }
        _ => return Err(bad()),
    };
    let [month, day, hour, minute, second] =
        [month, day, hour, minute, second].map(|v| u8::try_from(v).unwrap_or(u8::MAX));
    let local = der::DateTime::new(year, month, day, hour, minute, second).map_err(|_| bad())?;
    let local_ms = u64::try_from(local.unix_duration().as_millis()).map_err(|_| bad())?.saturating_add(millis);
    let offset_ms = offset_minutes.saturating_mul(60_000);
    let utc = i128::from(local_ms) - i128::from(offset_ms);
    u64::try_from(utc).map_err(|_| bad())
}

/// `--on-unavailable`: the values of `revocation.on_unavailable`.
fn on_unavailable(text: &str) -> Result<OnUnavailable, String> {
    match text {
        "reject" => Ok(OnUnavailable::Reject),
        "pass" => Ok(OnUnavailable::Pass),
        other => Err(format!("--on-unavailable takes reject or pass, not {other:?}")),
    }
}

/// `--unknown-client`: the values of `unknown_client`.
fn unknown_client(text: &str) -> Result<UnknownClient, String> {
    match text {
        "pass" => Ok(UnknownClient::Pass),
        "reject" => Ok(UnknownClient::Reject),
        other => Err(format!("--unknown-client takes pass or reject, not {other:?}")),
    }
}

/// `--now`, or the clock.
fn now_ms(flags: &Flags) -> Result<u64, Failure> {
    match flags.now_ms {
        Some(ms) => Ok(ms),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| format!("the clock: {e}"))?
            .as_millis()
            .try_into()
            .map_err(|_| Failure::Input("the clock is out of range".to_string())),
    }
}

/// `--ocsp-max-age`: seconds, in the range `revocation.ocsp_max_age_seconds` accepts.
fn max_age(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(s) if (1..=7 * 86400).contains(&s) => Ok(s),
        _ => Err(format!("--ocsp-max-age takes seconds from 1 to 604800 (as ocsp_max_age_seconds), not {text:?}")),
    }
}

/// The revocation step's input from `--issuer` and the options that go with it.
fn revocation_input(
    flags: &Flags,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Option<RevocationInput>, Failure> {
    let Some(issuer) = &flags.issuer else {
        let stray = !flags.crls.is_empty()
            || flags.ocsp_response.is_some()
            || (flags.now_ms.is_some() && flags.ca.is_empty())
            || flags.ocsp_max_age.is_some()
            || flags.on_unavailable.is_some();
        if stray {
            return Err(Failure::Usage(
                "--crl, --ocsp-response, --ocsp-max-age and --on-unavailable need --issuer, and --now needs --issuer \
                 or --ca"
                    .to_string(),
            ));
        }
        return Ok(None);
    };
    if flags.crls.is_empty() && flags.ocsp_response.is_none() {
        return Err(Failure::Usage(
            "--issuer needs --crl or --ocsp-response: the filter refuses a revocation configuration that checks nothing"
                .to_string(),
        ));
    }
    let der = certificates(issuer, read)?.into_iter().next().ok_or(format!("{issuer}: no certificate"))?;
    let ca = Ca::from_der(&der).map_err(|e| format!("{issuer}: the CA certificate {e}"))?;
    let mut crls = Vec::new();
    for file in &flags.crls {
        crls.push((file.clone(), read(file)?));
    }
    let ocsp_response = match &flags.ocsp_response {
        Some(file) => Some((file.clone(), read(file)?)),
        None => None,
    };
    Ok(Some(RevocationInput {
        ca,
        crls,
        ocsp_response,
        now_ms: now_ms(flags)?,
        ocsp_max_age_seconds: flags.ocsp_max_age.unwrap_or(3600),
        on_unavailable: flags.on_unavailable.unwrap_or(OnUnavailable::Reject),
    }))
}

/// A certificate file: PEM (every certificate, in order) or DER (one).
fn certificates(file: &str, read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Result<Vec<Vec<u8>>, String> {
    let bytes = read(file)?;
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes]);
    }
    pem::decode_certificates(&bytes).map_err(|e| format!("{file}: {e}"))
}

fn json_file(file: &str, read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Result<Value, String> {
    serde_json::from_slice(&read(file)?).map_err(|e| format!("{file}: not JSON: {e}"))
}

fn check(flags: &Flags, read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Result<Output, Failure> {
    let cert_file = flags.cert.as_deref().ok_or(Failure::Usage("check needs --cert".to_string()))?;
    let client_file = flags.client.as_deref().ok_or(Failure::Usage("check needs --client".to_string()))?;
    if flags.not_validated && !flags.ca.is_empty() {
        return Err(Failure::Usage("--not-validated and --ca exclude each other".to_string()));
    }
    let mut certs = certificates(cert_file, read)?.into_iter();
    let leaf = certs.next().ok_or(format!("{cert_file}: no certificate"))?;
    // What the client sends after its leaf: the rest of --cert, then --chain.
    let mut chain: Vec<Vec<u8>> = certs.collect();
    if let Some(f) = &flags.chain {
        chain.extend(certificates(f, read)?);
    }
    let document = json_file(client_file, read)?;
    // With --endpoint: the path resolved against the plugin configuration's endpoints, as the filter does.
    let mut unknown_client = flags.unknown_client;
    let scope = match &flags.endpoint {
        None => None,
        Some(path) => {
            let file = flags.config.as_deref().ok_or(Failure::Usage(
                "--endpoint needs --config (the plugin configuration whose endpoints resolve it)".to_string(),
            ))?;
            let config = Config::parse(&read(file)?).map_err(|e| format!("{file}: {e}"))?;
            unknown_client = unknown_client.or(Some(config.unknown_client));
            match config.endpoint(path) {
                None => return Ok(explained(&explain::not_enforced(path, None), &[], flags.json, 1)),
                Some(Match::BadTenant(e)) => {
                    return Ok(explained(&explain::not_enforced(path, Some(e.to_string())), &[], flags.json, 1))
                }
                Some(Match::Literal) => Some((format!("{path} is a literal endpoint: no tenant"), None)),
                Some(Match::Tenant(t)) => Some((format!("{path} is a templated endpoint in tenant {t}"), Some(t))),
            }
        }
    };
    let (registration, endpoint) = match scope {
        None => (select(document, flags.client_id.as_deref())?, None),
        Some((description, tenant)) => {
            let in_scope = select_in(document, flags.client_id.as_deref(), tenant.as_ref())?;
            let registered = in_scope.is_ok();
            let registration = in_scope.unwrap_or_else(|id| json!({ "client_id": id }));
            (registration, Some(explain::EndpointInput { description, registered }))
        }
    };
    let jwks = match &flags.jwks {
        Some(f) => Some(json_file(f, read)?),
        None => None,
    };
    let revocation = revocation_input(flags, read)?;
    let chain_input = if flags.not_validated {
        ChainInput::NotValidated
    } else if flags.ca.is_empty() {
        ChainInput::Assumed
    } else {
        let mut anchors = Vec::new();
        for file in &flags.ca {
            anchors.extend(certificates(file, read)?);
        }
        ChainInput::Checked(chain::validate(&leaf, &chain, &anchors, now_ms(flags)?))
    };
    let input = explain::Input {
        leaf_der: &leaf,
        chain: chain_input,
        metadata: &registration,
        jwks: jwks.as_ref(),
        revocation: revocation.as_ref(),
        unknown_client: unknown_client.unwrap_or(UnknownClient::Pass),
        endpoint,
    };
    let explanation = explain::check(&input);
    let status = if explanation.authenticated() { 0 } else { 1 };
    let chain_subjects: Vec<String> = chain
        .iter()
        .map(|der| cert::Leaf::from_der(der).map_or_else(|e| format!("(unparseable: {e})"), |l| l.subject.to_string()))
        .collect();
    Ok(explained(&explanation, &chain_subjects, flags.json, status))
}

/// An explanation as text or JSON.
fn explained(explanation: &Explanation, chain_subjects: &[String], json_out: bool, status: i32) -> Output {
    let text = if json_out {
        let mut v = serde_json::to_value(explanation).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("chain".into(), json!(chain_subjects));
        }
        format!("{v}\n")
    } else {
        render(explanation, chain_subjects)
    };
    Output { status, text }
}

/// With `--endpoint`: the registration of the client in `tenant` (none: those without a tenant), or the
/// client id that has none there.
fn select_in(
    document: Value,
    client_id: Option<&str>,
    tenant: Option<&Tenant>,
) -> Result<Result<Value, String>, Failure> {
    let list = match document {
        Value::Object(obj) if !obj.contains_key("clients") => vec![Value::Object(obj)],
        other => registry::items(other.to_string().as_bytes()).map_err(|e| e.to_string())?,
    };
    let in_tenant = |r: &Value| r.get("tenant").and_then(Value::as_str) == tenant.map(Tenant::as_str);
    let id = match client_id {
        Some(id) => id.to_string(),
        None => match list.as_slice() {
            [one] => registration::client_id_of(one).unwrap_or_default().to_string(),
            _ => return Err(Failure::Usage(format!("{} registrations: choose one with --client-id", list.len()))),
        },
    };
    let found = list.into_iter().find(|r| registration::client_id_of(r) == Some(id.as_str()) && in_tenant(r));
    Ok(found.ok_or(id))
}

/// One registration from a file holding one, an array, or `{"clients": [...]}`.
fn select(document: Value, client_id: Option<&str>) -> Result<Value, Failure> {
    let list = match document {
        Value::Object(obj) if !obj.contains_key("clients") => return Ok(Value::Object(obj)),
        other => registry::items(other.to_string().as_bytes()).map_err(|e| e.to_string())?,
    };
    match client_id {
        Some(id) => list
            .into_iter()
            .find(|r| registration::client_id_of(r) == Some(id))
            .ok_or(Failure::Input(format!("no registration with client_id {id}"))),
        None if list.len() == 1 => list.into_iter().next().ok_or(Failure::Input("empty".to_string())),
        None => Err(Failure::Usage(format!("{} registrations: choose one with --client-id", list.len()))),
    }
}

fn render(e: &Explanation, chain: &[String]) -> String {
    let mut out = String::new();
    if let Some(leaf) = &e.leaf {
        out.push_str(&format!("certificate  subject  {}\n", leaf.subject));
        out.push_str(&format!("             issuer   {}\n", leaf.issuer));
        for (name, values) in [
            ("dNSName", &leaf.dns),
            ("uniformResourceIdentifier", &leaf.uri),
            ("iPAddress", &leaf.ip),
            ("rfc822Name", &leaf.email),
        ] {
            for v in values.iter() {
                out.push_str(&format!("             SAN      {name} {v}\n"));
            }
        }
        out.push_str(&format!("             x5t#S256 {}\n", leaf.x5t_s256));
    }
    if !chain.is_empty() {
        out.push_str(&format!(
            "chain        {} more certificate(s), never matched (only the leaf authenticates): {}\n",
            chain.len(),
            chain.join(" | ")
        ));
    }
    for s in &e.steps {
        let mark = match (s.ok, s.warning) {
            (_, true) => "WARN",
            (Some(true), _) => "ok  ",
            (Some(false), _) => "FAIL",
            (None, _) => "    ",
        };
        out.push_str(&format!("{mark} {}: {}\n", s.step, s.detail));
    }
    match &e.condition {
        Some(condition) => out.push_str(&format!("verdict: {} ({}), {condition}\n", e.verdict, e.outcome)),
        None => out.push_str(&format!("verdict: {} ({})\n", e.verdict, e.outcome)),
    }
    out
}

/// The plugin's `certificate_source` as the configuration spells it.
fn certificate_source_name(source: CertificateSource) -> &'static str {
    match source {
        CertificateSource::Connection => "connection",
        CertificateSource::Xfcc => "xfcc",
        CertificateSource::ClientCert => "client-cert",
    }
}

/// One line on a valid plugin configuration.
pub(crate) fn config_summary(c: &Config) -> String {
    format!(
        "{} inline clients, {} registr{}, certificate_source {}, unknown_client {}, {} endpoint(s), {} resource(s), \
         max_body_bytes {}",
        c.clients.len(),
        c.registries.len(),
        if c.registries.len() == 1 { "y" } else { "ies" },
        certificate_source_name(c.certificate_source),
        match c.unknown_client {
            UnknownClient::Pass => "pass",
            UnknownClient::Reject => "reject",
        },
        c.endpoints.len(),
        c.resources.len(),
        c.max_body_bytes
    )
}

/// `lint`'s advice on one registration that loads (or not) but is likely not what was meant: a DN copied in
/// OpenSSL's order or form, a method name outside the IANA registry. Keys are relative to the registration.
pub(crate) fn registration_hints(metadata: &Value) -> Vec<(String, String)> {
    let mut hints = Vec::new();
    let field = |name: &str| metadata.get(name).and_then(Value::as_str);
    if let Some(hint) = field("tls_client_auth_subject_dn").and_then(dn_forms::lint_hint) {
        hints.push(("tls_client_auth_subject_dn".to_string(), hint));
    }
    if let Some(hint) = field("token_endpoint_auth_method").and_then(methods::hint) {
        hints.push(("token_endpoint_auth_method".to_string(), hint));
    }
    hints
}

/// The key of registration `index` of a list named `list` (`clients[1] (bad)`, or `[1] (bad)` for a registry).
fn registration_key(list: &str, index: usize, metadata: &Value) -> String {
    match registration::client_id_of(metadata) {
        Some(id) => format!("{list}[{index}] ({})", crate::oauth::response::for_log(id)),
        None => format!("{list}[{index}]"),
    }
}

/// Every registration hint of a plugin configuration's inline `clients`, keyed from the document's root.
pub(crate) fn inline_client_hints(config: &Value) -> Vec<(String, String)> {
    let clients = config.get("clients").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut hints = Vec::new();
    for (i, item) in clients.iter().enumerate() {
        for (field, hint) in registration_hints(item) {
            hints.push((format!("{}.{field}", registration_key("clients", i, item)), hint));
        }
    }
    hints
}

fn lint_config(file: &str, json_out: bool, read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Result<Output, Failure> {
    let bytes = read(file)?;
    let raw: Option<Value> = serde_json::from_slice(&bytes).ok();
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(doc) = envoy::bootstrap(&bytes) {
        return Ok(envoy::lint(file, &doc, json_out));
    }
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(out) = envoy::lint_other_document(file, &bytes, json_out) {
        return out.map_err(Failure::Input);
    }
    let mut warnings: Vec<(String, String)> = Vec::new();
    let parsed = Config::parse(&bytes);
    if let Ok(c) = &parsed {
        warnings.extend(c.warnings().into_iter().map(|(k, p)| (k.to_string(), p)));
    }
    warnings.extend(raw.as_ref().map(inline_client_hints).unwrap_or_default());
    let json_warnings: Vec<Value> = warnings.iter().map(|(k, p)| json!({"key": k, "problem": p})).collect();
    let mut text = String::new();
    for (key, advice) in &warnings {
        text.push_str(&format!("{file}: warning at `{key}`: {advice}\n"));
    }
    let (status, text) = match parsed {
        Ok(c) if json_out => {
            (0, format!("{}\n", json!({"ok": true, "summary": config_summary(&c), "warnings": json_warnings})))
        }
        Ok(c) => (0, format!("{text}{file}: ok: {}\n", config_summary(&c))),
        Err(e) if json_out => (
            1,
            format!(
                "{}\n",
                json!({"ok": false, "errors": [{"key": e.key, "problem": e.problem}], "warnings": json_warnings})
            ),
        ),
        Err(e) => (1, format!("{text}{file}: error at `{}`: {}\n", e.key, e.problem)),
    };
    Ok(Output { status, text })
}

/// `lint CONFIG.json --explain`: what the configuration's `preset` fills in, and what the configuration sets
/// itself instead.
fn explain_preset(
    file: &str,
    json_out: bool,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Output, Failure> {
    let bytes = read(file)?;
    let config = Config::parse(&bytes).map_err(|e| format!("{file}: error at `{}`: {}", e.key, e.problem))?;
    let raw: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let Some(preset) = config.preset else {
        return Ok(Output {
            status: 0,
            text: format!("{file}: no preset: every key is as the configuration sets it\n"),
        });
    };
    let set = |key: &str| raw.get(key).is_some_and(|v| !v.is_null());
    let discovery_paths_set = raw.get("discovery").and_then(|d| d.get("paths")).is_some_and(|v| !v.is_null());
    let mut rows: Vec<(String, Value, &str)> = Vec::new();
    for (key, value) in preset.expansion() {
        let (key, value, source) = match key.as_str() {
            "discovery" if raw.get("discovery").is_none_or(Value::is_null) => (
                String::from("discovery.paths"),
                value.get("paths").cloned().unwrap_or_default(),
                "not used: no discovery",
            ),
            "discovery" if discovery_paths_set => (
                String::from("discovery.paths"),
                value.get("paths").cloned().unwrap_or_default(),
                "overridden by the configuration",
            ),
            "discovery" => {
                (String::from("discovery.paths"), value.get("paths").cloned().unwrap_or_default(), "filled in")
            }
            other if set(other) => (other.to_string(), value, "overridden by the configuration"),
            other => (other.to_string(), value, "filled in"),
        };
        rows.push((key, value, source));
    }
    let text = if json_out {
        let keys: Vec<Value> = rows.iter().map(|(k, v, s)| json!({"key": k, "value": v, "source": s})).collect();
        format!("{}\n", json!({"preset": preset.name(), "expands_to": keys}))
    } else {
        let mut t = format!("{file}: preset {} expands to\n", preset.name());
        for (key, value, source) in rows {
            t.push_str(&format!("  {key} ({source}):\n"));
            match value.as_array() {
                Some(items) => {
                    items.iter().for_each(|i| t.push_str(&format!("    {}\n", i.as_str().unwrap_or_default())))
                }
                None => t.push_str(&format!("    {value}\n")),
            }
        }
        t
    };
    Ok(Output { status: 0, text })
}

/// `registry from-keycloak|from-wso2`: the document on stdout, or every refused client and nothing else.
#[cfg(not(target_arch = "wasm32"))]
fn registry_from(
    source: bridge::Source,
    file: &str,
    tenant: Option<&str>,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Output, String> {
    let conversion = bridge::convert(source, &read(file)?, tenant).map_err(|e| format!("{file}: {e}"))?;
    if conversion.refused.is_empty() {
        let document = serde_json::to_string_pretty(&conversion.registrations).map_err(|e| e.to_string())?;
        return Ok(Output { status: 0, text: format!("{document}\n") });
    }
    let mut text = String::new();
    for (client, why) in &conversion.refused {
        text.push_str(&format!("{file}: refused `{client}`: {why}\n"));
    }
    text.push_str(&format!(
        "{} client(s) refused, {} convertible; no document written\n",
        conversion.refused.len(),
        conversion.registrations.len()
    ));
    Ok(Output { status: 1, text })
}

fn lint_registry(
    file: &str,
    config: Option<&str>,
    json_out: bool,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Output, Failure> {
    // With --config: whether each registration's tenant can be reached by one of its endpoints.
    let config = match config {
        None => None,
        Some(f) => Some(Config::parse(&read(f)?).map_err(|e| format!("{f}: {e}"))?),
    };
    let items = match registry::items(&read(file)?) {
        Ok(items) => items,
        Err(e) if json_out => {
            return Ok(Output {
                status: 1,
                text: format!("{}\n", json!({"ok": false, "errors": [{"key": "", "problem": e.to_string()}]})),
            })
        }
        Err(e) => return Ok(Output { status: 1, text: format!("{file}: error: {e}\n") }),
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    // Copies are counted per (tenant, client_id): the same id in two tenants is two clients.
    let scoped = |item: &Value| {
        let id = registration::client_id_of(item).filter(|id| !id.is_empty())?;
        Some((item.get("tenant").and_then(Value::as_str).map(str::to_string), id.to_string()))
    };
    let mut copies: std::collections::HashMap<(Option<String>, String), usize> = std::collections::HashMap::new();
    for key in items.iter().filter_map(scoped) {
        *copies.entry(key).or_default() += 1;
    }
    let mut loaded = 0;
    for (i, item) in items.iter().enumerate() {
        let key = registration_key("", i, item);
        for (field, hint) in registration_hints(item) {
            warnings.push((format!("{key}.{field}"), hint));
        }
        let listed = scoped(item).and_then(|k| copies.get(&k)).copied().unwrap_or(0);
        match (listed, registration::check(item)) {
            (n, _) if n > 1 => {
                let tenant = item.get("tenant").and_then(Value::as_str).map(|t| format!(" in tenant {t}"));
                let tenant = tenant.unwrap_or_default();
                errors.push((key, format!("client_id is listed {n} times{tenant}; the filter loads no copy of it")))
            }
            (_, Ok(stored)) => {
                loaded += 1;
                if config.as_ref().is_some_and(|c| !c.reaches(stored.tenant.as_ref())) {
                    let why = match &stored.tenant {
                        Some(t) => format!("of tenant {t}, but no endpoint is a {{tenant}} template"),
                        None => "without a tenant, but every endpoint is a {tenant} template".to_string(),
                    };
                    warnings.push((key, format!("loads, and is never used: {why}")));
                }
            }
            (_, Err(e)) => errors.push((key, e.to_string())),
        }
    }
    let status = if errors.is_empty() { 0 } else { 1 };
    let text = if json_out {
        let errs: Vec<Value> = errors.iter().map(|(k, p)| json!({"key": k, "problem": p})).collect();
        let warns: Vec<Value> = warnings.iter().map(|(k, p)| json!({"key": k, "problem": p})).collect();
        format!("{}\n", json!({"ok": errors.is_empty(), "loaded": loaded, "errors": errs, "warnings": warns}))
    } else {
        let mut t = String::new();
        for (k, p) in &warnings {
            t.push_str(&format!("{file}: warning at `{k}`: {p}\n"));
        }
        for (k, p) in &errors {
            t.push_str(&format!("{file}: error at `{k}`: {p}\n"));
        }
        t.push_str(&format!("{file}: {loaded} client(s) load, {} refused\n", errors.len()));
        t
    };
    Ok(Output { status, text })
}

fn thumbprint(file: &str, json_out: bool, read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Result<Output, Failure> {
    let der = certificates(file, read)?.into_iter().next().ok_or(format!("{file}: no certificate"))?;
    let x5t = cert::x5t_s256(&der);
    let text = if json_out {
        format!("{}\n", json!({"x5t#S256": x5t, "sha256": crate::oauth::jwks::hex(&cert::sha256(&der))}))
    } else {
        format!("{x5t}\n")
    };
    Ok(Output { status: 0, text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testdata as chains;
    use crate::revocation::testdata as rev;
    use crate::testdata::{der, LEAF, SELF_SIGNED_1};
    use std::collections::HashMap;

    /// MADE_MS, when the testdata's OCSP answers were made, and an hour and two later.
    const MADE: &str = "2026-12-01T05:04:03Z";
    const MADE_PLUS_60_S: &str = "1796101503";
    const MADE_PLUS_2_H: &str = "2026-12-01T07:04:03Z";

    /// The revocation step's lines of a `check` in text form.
    fn revocation_lines(out: &Output) -> Vec<&str> {
        out.text.lines().filter(|l| l.get(5..).is_some_and(|rest| rest.starts_with("revocation"))).collect()
    }

    /// The key of a one-error lint result.
    fn lint_error_key(out: &Output) -> String {
        let v: Value = serde_json::from_str(&out.text).unwrap();
        assert_eq!(v["ok"], false, "{v}");
        v["errors"][0]["key"].as_str().unwrap().to_string()
    }

    fn files() -> HashMap<&'static str, Vec<u8>> {
        let mut f = HashMap::new();
        f.insert("leaf.pem", LEAF.as_bytes().to_vec());
        f.insert("leaf.der", der(LEAF));
        f.insert("chain.pem", format!("{LEAF}\n{SELF_SIGNED_1}").into_bytes());
        f.insert("dn.json", br#"{"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=dn-client,OU=Payments,O=Example Bank,C=GB"}"#.to_vec());
        f.insert("many.json", br#"{"clients": [{"client_id": "a", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "nope.example.com"}, {"client_id": "b", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "client.example.com"}]}"#.to_vec());
        f.insert("bad-registry.json", br#"[{"client_id": "ok"}, {"client_id": "bad", "token_endpoint_auth_method": "tls_client_auth"}, {"token_endpoint_auth_method": "none"}]"#.to_vec());
        f.insert(
            "config.json",
            br#"{"clients": [], "registry": {"cluster": "r", "authority": "a", "path": "/", "refresh_seconds": "30"}}"#
                .to_vec(),
        );
        f.insert("good-config.json", br#"{"endpoints": ["/token"]}"#.to_vec());
        f.insert("big-body.json", br#"{"max_body_bytes": 1048576}"#.to_vec());
        // Revocation (crate::revocation::testdata): the CA, its leaves 0x1001 (good) and 0x1002 (revoked), its CRL
        // listing 0x1002, a CRL under its name signed by another key, and an OCSP answer "0x1001 good" made at
        // MADE_MS (2026-12-01T05:04:03Z).
        f.insert("rev-ca.pem", pem::encode(&rev::der(rev::CA)).into_bytes());
        f.insert("rev-ca.der", rev::der(rev::CA));
        f.insert("good.pem", pem::encode(&rev::der(rev::GOOD)).into_bytes());
        f.insert("revoked.pem", pem::encode(&rev::der(rev::REVOKED)).into_bytes());
        f.insert("ca.crl", rev::der(rev::CRL));
        f.insert(
            "ca-crl.pem",
            format!("-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n", rev::CRL).into_bytes(),
        );
        f.insert("rogue.crl", rev::der(rev::ROGUE_CRL));
        f.insert("ocsp-good.der", rev::der(rev::OCSP_GOOD));
        f.insert("ocsp-revoked.der", rev::der(rev::OCSP_REVOKED));
        f.insert("good.json", br#"{"client_id": "good", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "O=Revocation Test,CN=good"}"#.to_vec());
        f.insert("revoked.json", br#"{"client_id": "revoked", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "O=Revocation Test,CN=revoked"}"#.to_vec());
        f.insert("self-signed.pem", SELF_SIGNED_1.as_bytes().to_vec());
        f.insert(
            "self-signed.json",
            serde_json::to_vec(&json!({"client_id": "s", "token_endpoint_auth_method": "self_signed_tls_client_auth",
                "jwks": {"keys": [{"x5c": [base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der(SELF_SIGNED_1))]}]}}))
            .unwrap(),
        );
        let revocation = |fields: &str| format!(r#"{{"revocation": {{{fields}}}}}"#).into_bytes();
        let ca = rev::CA;
        f.insert(
            "rev-no-cluster.json",
            revocation(&format!(r#""issuers": ["{ca}"], "crl_urls": ["http://crl.example.test/ca.crl"]"#)),
        );
        f.insert("rev-bad-issuer.json", revocation(r#""cluster": "pki", "issuers": ["not base64!"], "ocsp": true"#));
        f.insert(
            "rev-https-crl.json",
            revocation(&format!(
                r#""cluster": "pki", "issuers": ["{ca}"], "crl_urls": ["https://crl.example.test/ca.crl"]"#
            )),
        );
        f.insert("rev-ocsp-url-alone.json", revocation(&format!(r#""cluster": "pki", "issuers": ["{ca}"], "crl_urls": ["http://crl.example.test/ca.crl"], "ocsp_url": "http://ocsp.example.test/""#)));
        f.insert("rev-nothing.json", revocation(&format!(r#""cluster": "pki", "issuers": ["{ca}"]"#)));
        f.insert(
            "rev-crl.json",
            revocation(&format!(
                r#""cluster": "pki", "issuers": ["{ca}"], "crl_urls": ["http://crl.example.test/ca.crl"]"#
            )),
        );
        f.insert("rev-pass.json", revocation(&format!(r#""cluster": "pki", "issuers": ["{ca}"], "crl_urls": ["http://crl.example.test/ca.crl"], "on_unavailable": "pass""#)));
        f.insert("rev-ocsp-aia.json", revocation(&format!(r#""cluster": "pki", "issuers": ["{ca}"], "ocsp": true"#)));
        f.insert(
            "rev-ocsp-url.json",
            revocation(&format!(
                r#""cluster": "pki", "issuers": ["{ca}"], "ocsp": true, "ocsp_url": "http://ocsp.example.test/""#
            )),
        );
        // Chains (check --ca): the revocation CA and a CA under its name with another key; a root, an
        // intermediate and its leaf.
        f.insert("rogue-ca.pem", pem::encode(&rev::der(rev::ROGUE_CA)).into_bytes());
        f.insert("root.pem", pem::encode(&rev::der(chains::ROOT)).into_bytes());
        f.insert(
            "leaf-and-intermediate.pem",
            [pem::encode(&rev::der(chains::LEAF)), pem::encode(&rev::der(chains::INTERMEDIATE))].concat().into_bytes(),
        );
        f.insert("chain-leaf.json", br#"{"client_id": "chain", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=chain-leaf,O=Chain Test"}"#.to_vec());
        f.insert("broken-registry.json", br#"[{"client_id": "good", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "O=Revocation Test,CN=good", "tls_client_auth_san_dns": "x.example"}]"#.to_vec());
        f.insert("openssl-dn.json", br#"{"clients": [{"client_id": "svc", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "C = DE, O = Acme Corp, CN = svc"}]}"#.to_vec());
        f.insert("slash-dn.json", br#"[{"client_id": "svc", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "/C=DE/O=Acme Corp/CN=svc"}]"#.to_vec());
        f.insert("typo-method.json", br#"{"clients": [{"client_id": "svc", "token_endpoint_auth_method": "tls_client_auth ", "tls_client_auth_subject_dn": "CN=svc"}]}"#.to_vec());
        f.insert(
            "covering.json",
            br#"{"endpoints": ["/token", "/oauth/par"], "resources": [{"prefix": "/oauth/"}]}"#.to_vec(),
        );
        f.insert("bad-yaml.yaml", b"name: envoy.filters.http.router\ntyped_config: {}\n".to_vec());
        f.insert(
            "twice.json",
            br#"[{"client_id": "a", "token_endpoint_auth_method": "none"}, {"client_id": "b"},
            {"client_id": "a", "token_endpoint_auth_method": "tls_client_auth"}]"#
                .to_vec(),
        );
        f
    }

    fn cli(args: &str) -> Output {
        let mut f = files();
        f.insert("tenants.json", br#"[{"client_id": "p", "tenant": "acme", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=dn-client,OU=Payments,O=Example Bank,C=GB"},
            {"client_id": "p", "tenant": "globex", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=other,O=X"}]"#.to_vec());
        f.insert("wso2.json", br#"{"preset": "wso2", "unknown_client": "reject"}"#.to_vec());
        f.insert("literal.json", br#"{"endpoints": ["/token"]}"#.to_vec());
        f.insert(
            "twice-in-tenant.json",
            br#"[{"client_id": "p", "tenant": "acme", "token_endpoint_auth_method": "none"},
            {"client_id": "p", "tenant": "acme", "token_endpoint_auth_method": "none"},
            {"client_id": "p", "tenant": "globex", "token_endpoint_auth_method": "none"}]"#
                .to_vec(),
        );
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        run(&args, &|name| f.get(name).cloned().ok_or(format!("{name}: no such file")))
    }

    #[test]
    fn check_endpoint_uses_the_registration_of_the_paths_tenant() {
        let out = cli("check --cert leaf.pem --client tenants.json --client-id p --endpoint /t/acme/oauth2/token --config wso2.json");
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(
            out.text.contains("endpoint: /t/acme/oauth2/token is a templated endpoint in tenant acme"),
            "{}",
            out.text
        );
        let out = cli("check --cert leaf.pem --client tenants.json --client-id p --endpoint /t/globex/oauth2/token --config wso2.json");
        assert_eq!(out.status, 1);
        assert!(out.text.contains("does not match the registered tls_client_auth_subject_dn"), "{}", out.text);
    }

    #[test]
    fn check_endpoint_in_a_tenant_without_the_client_is_an_unknown_client() {
        let out = cli("check --cert leaf.pem --client tenants.json --client-id p --endpoint /t/initech/oauth2/token --config wso2.json");
        assert_eq!(out.status, 1);
        assert!(out.text.contains("unknown_client: reject decides"), "{}", out.text);
        // The literal super-tenant endpoint: none of these registrations has no tenant.
        let out = cli(
            "check --cert leaf.pem --client tenants.json --client-id p --endpoint /oauth2/token --config wso2.json",
        );
        assert!(out.text.contains("is a literal endpoint: no tenant"), "{}", out.text);
        assert!(out.text.contains("verdict: rejected (401 invalid_client: unknown client"), "{}", out.text);
    }

    #[test]
    fn check_endpoint_names_paths_the_filter_does_not_authenticate_at() {
        let out = cli("check --cert leaf.pem --client tenants.json --client-id p --endpoint /api/x --config wso2.json");
        assert_eq!(out.status, 1);
        assert!(out.text.contains("/api/x is not one of the configured endpoints"), "{}", out.text);
        assert!(out.text.contains("verdict: passed"), "{}", out.text);
        let out = cli("check --cert leaf.pem --client tenants.json --client-id p --endpoint /t/a;b/oauth2/token --config wso2.json");
        assert!(
            out.text.contains("verdict: rejected (400 invalid_request: the path does not name one tenant"),
            "{}",
            out.text
        );
        assert_eq!(cli("check --cert leaf.pem --client tenants.json --client-id p --endpoint /token").status, 2);
    }

    #[test]
    fn lint_explain_prints_what_a_preset_fills_in() {
        let out = cli("lint wso2.json --explain");
        assert!(out.text.contains("preset wso2 expands to"), "{}", out.text);
        assert!(out.text.contains("/t/{tenant}/oauth2/ciba"), "{}", out.text);
        assert!(out.text.contains("forward_certificate (filled in)"), "{}", out.text);
        assert!(cli("lint literal.json --explain").text.contains("no preset"));
    }

    #[test]
    fn lint_registry_counts_copies_per_tenant() {
        let out = cli("lint --registry twice-in-tenant.json");
        assert!(out.text.contains("`[0] (p)`: client_id is listed 2 times in tenant acme"), "{}", out.text);
        assert!(out.text.contains("1 client(s) load, 2 refused"), "{}", out.text);
    }

    #[test]
    fn lint_registry_with_config_names_registrations_no_endpoint_reaches() {
        let out = cli("lint --registry tenants.json --config literal.json");
        assert!(
            out.text.contains("loads, and is never used: of tenant acme, but no endpoint is a {tenant} template"),
            "{}",
            out.text
        );
        assert!(!cli("lint --registry tenants.json --config wso2.json").text.contains("never used"));
    }

    #[test]
    fn thumbprint_prints_the_x5t_s256() {
        let out = cli("thumbprint leaf.pem");
        assert_eq!(out, Output { status: 0, text: format!("{}\n", cert::x5t_s256(&der(LEAF))) });
        assert_eq!(cli("thumbprint leaf.der").text, out.text);
        let v: Value = serde_json::from_str(&cli("thumbprint leaf.pem --json").text).unwrap();
        assert_eq!(v["x5t#S256"], cert::x5t_s256(&der(LEAF)));
    }

    #[test]
    fn check_explains_an_authenticated_client_and_exits_0() {
        let out = cli("check --cert leaf.pem --client dn.json");
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(
            out.text.contains("certificate  subject  CN=dn-client,OU=Payments,O=Example Bank,C=GB"),
            "{}",
            out.text
        );
        assert!(out.text.contains("SAN      dNSName client.example.com"));
        assert!(out.text.contains("ok   subject DN: registered tls_client_auth_subject_dn"));
        assert!(
            out.text.ends_with(
                "verdict: authenticated (x-mtls-client-id: c, x-mtls-auth-method: tls_client_auth, x-mtls-x5t-s256: "
                    .to_string()
                    .as_str()
            ) || out.text.contains("verdict: authenticated")
        );
    }

    #[test]
    fn check_names_the_failing_rule_and_exits_1() {
        let out = cli("check --cert leaf.pem --client dn.json --not-validated");
        assert_eq!(out.status, 1);
        assert!(out.text.contains("FAIL chain validation"), "{}", out.text);
        assert!(out.text.contains("verdict: rejected (401 invalid_client"), "{}", out.text);
    }

    #[test]
    fn check_picks_a_client_from_a_registry_document() {
        assert_eq!(cli("check --cert leaf.pem --client many.json").status, 2);
        let a = cli("check --cert leaf.pem --client many.json --client-id a");
        assert_eq!(a.status, 1);
        assert!(
            a.text.contains("FAIL tls_client_auth_san_dns: dNSName \"first.example.com\" does not match"),
            "{}",
            a.text
        );
        assert_eq!(cli("check --cert leaf.pem --client many.json --client-id b").status, 0);
    }

    #[test]
    fn check_reports_the_chain_but_matches_only_the_leaf() {
        let out = cli("check --cert leaf.pem --chain chain.pem --client dn.json");
        assert!(out.text.contains("never matched (only the leaf authenticates)"), "{}", out.text);
        let v: Value =
            serde_json::from_str(&cli("check --cert leaf.pem --chain chain.pem --client dn.json --json").text).unwrap();
        assert_eq!(v["verdict"], "authenticated");
        assert_eq!(v["chain"].as_array().unwrap().len(), 2);
        assert_eq!(v["steps"].as_array().unwrap().iter().filter(|s| s["ok"] == false).count(), 0);
    }

    #[test]
    fn lint_locates_configuration_errors_by_key() {
        let out = cli("lint config.json");
        assert_eq!(out.status, 1);
        assert_eq!(
            out.text.lines().next().unwrap().split(": error at `").nth(1).unwrap().split('`').next().unwrap(),
            "registry.refresh_seconds"
        );
        assert_eq!(cli("lint good-config.json").status, 0);
        let v: Value = serde_json::from_str(&cli("lint config.json --json").text).unwrap();
        assert_eq!(v["errors"][0]["key"], "registry.refresh_seconds");
    }

    #[test]
    fn lint_registry_locates_each_refused_client() {
        let out = cli("lint --registry bad-registry.json");
        assert_eq!(out.status, 1);
        assert!(out.text.contains("error at `[1] (bad)`: tls_client_auth requires exactly one"), "{}", out.text);
        assert!(out.text.contains("error at `[2]`: client_id is missing"), "{}", out.text);
        assert!(out.text.contains("1 client(s) load, 2 refused"));
    }

    #[test]
    fn lint_warns_when_envoys_default_buffer_limit_would_answer_before_the_filter() {
        let out = cli("lint big-body.json");
        assert_eq!(out.status, 0, "valid, so not an error");
        assert!(out.text.contains("warning at `max_body_bytes`: 1048576 bytes needs per_connection_buffer_limit_bytes of at least 1114112"), "{}", out.text);
        assert!(!cli("lint good-config.json").text.contains("warning"));
        let v: Value = serde_json::from_str(&cli("lint big-body.json --json").text).unwrap();
        assert_eq!(v["warnings"][0]["key"], "max_body_bytes");
    }

    #[test]
    fn lint_registry_refuses_every_copy_of_a_client_id_listed_twice_as_the_filter_does() {
        let out = cli("lint --registry twice.json");
        assert_eq!(out.status, 1);
        assert!(
            out.text.contains("error at `[0] (a)`: client_id is listed 2 times; the filter loads no copy of it"),
            "{}",
            out.text
        );
        assert!(out.text.contains("error at `[2] (a)`"), "{}", out.text);
        assert!(out.text.contains("1 client(s) load, 2 refused"), "{}", out.text);
    }

    #[test]
    fn without_issuer_check_says_nothing_about_revocation() {
        let out = cli("check --cert good.pem --client good.json");
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(!out.text.contains("revocation"), "{}", out.text);
    }

    #[test]
    fn a_valid_crl_of_the_issuer_not_listing_the_certificate_lets_it_authenticate() {
        let out =
            cli(&format!("check --cert good.pem --client good.json --issuer rev-ca.pem --crl ca.crl --now {MADE}"));
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(out.text.contains("revocation CRL: ca.crl: verified with the CA's key, thisUpdate 2026-12-01T05:04:03Z, nextUpdate 2126-11-07T05:04:03Z, 1 serial(s) revoked: does not list serial 1001"), "{}", out.text);
        assert!(
            out.text.contains("ok   revocation: serial 1001 is not revoked: a valid CRL of the CA does not list it"),
            "{}",
            out.text
        );
        assert!(out.text.contains("verdict: authenticated (x-mtls-client-id: good"), "{}", out.text);
    }

    #[test]
    fn a_crl_and_the_issuer_are_read_as_pem_or_der() {
        let pem =
            cli(&format!("check --cert good.pem --client good.json --issuer rev-ca.der --crl ca-crl.pem --now {MADE}"));
        let der =
            cli(&format!("check --cert good.pem --client good.json --issuer rev-ca.pem --crl ca.crl --now {MADE}"));
        assert_eq!(pem.status, 0, "{}", pem.text);
        assert_eq!(revocation_lines(&pem).last(), revocation_lines(&der).last());
    }

    #[test]
    fn a_certificate_the_crl_lists_is_rejected_as_revoked() {
        let out = cli(&format!(
            "check --cert revoked.pem --client revoked.json --issuer rev-ca.pem --crl ca.crl --now {MADE}"
        ));
        assert_eq!(out.status, 1, "{}", out.text);
        assert!(out.text.contains("FAIL revocation: serial 1002 is revoked (by CRL)"), "{}", out.text);
        assert!(
            out.text.ends_with("verdict: rejected (401 invalid_client: the client certificate has been revoked)\n"),
            "{}",
            out.text
        );
    }

    #[test]
    fn a_fresh_ocsp_good_lets_the_certificate_authenticate() {
        let out = cli(&format!(
            "check --cert good.pem --client good.json --issuer rev-ca.pem --ocsp-response ocsp-good.der --now {MADE_PLUS_60_S}"
        ));
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(out.text.contains("revocation OCSP: ocsp-good.der: good, verified"), "{}", out.text);
        assert!(out.text.contains("(60 s old; ocsp_max_age_seconds 3600)"), "{}", out.text);
        assert!(out.text.contains("ok   revocation: serial 1001 is not revoked: the OCSP responder answers good"));
    }

    #[test]
    fn an_ocsp_revoked_rejects_the_certificate() {
        let out = cli(&format!(
            "check --cert revoked.pem --client revoked.json --issuer rev-ca.pem --ocsp-response ocsp-revoked.der --now {MADE_PLUS_60_S}"
        ));
        assert_eq!(out.status, 1, "{}", out.text);
        assert!(out.text.contains("FAIL revocation: serial 1002 is revoked (by OCSP)"), "{}", out.text);
    }

    #[test]
    fn an_ocsp_good_older_than_ocsp_max_age_is_no_status_and_on_unavailable_reject_refuses() {
        // RFC 5019 §2.1.2 replay: a two-hour-old good answer is no status under ocsp_max_age_seconds 3600.
        let out = cli(&format!(
            "check --cert good.pem --client good.json --issuer rev-ca.pem --ocsp-response ocsp-good.der --now {MADE_PLUS_2_H}"
        ));
        assert_eq!(out.status, 1, "{}", out.text);
        assert!(
            out.text.contains("ocsp-good.der: no status: its thisUpdate is 7200 s old, more than ocsp_max_age_seconds"),
            "{}",
            out.text
        );
        assert!(
            out.text.contains("FAIL revocation: no fresh status: OCSP: its thisUpdate is 7200 s old"),
            "{}",
            out.text
        );
        assert!(out.text.contains("on_unavailable: reject (the filter's default) refuses the request"), "{}", out.text);
        assert!(out.text.ends_with("verdict: rejected (401 invalid_client: the revocation status of the client certificate could not be established)\n"), "{}", out.text);
        let explicit = cli(&format!(
            "check --cert good.pem --client good.json --issuer rev-ca.pem --ocsp-response ocsp-good.der --now {MADE_PLUS_2_H} --on-unavailable reject"
        ));
        assert_eq!(explicit, out);
    }

    #[test]
    fn with_no_fresh_status_on_unavailable_pass_lets_the_client_through_with_a_warning() {
        let args = format!(
            "check --cert good.pem --client good.json --issuer rev-ca.pem --ocsp-response ocsp-good.der --now {MADE_PLUS_2_H} --on-unavailable pass"
        );
        let out = cli(&args);
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(
            out.text.contains("WARN revocation: no fresh status: OCSP: its thisUpdate is 7200 s old"),
            "{}",
            out.text
        );
        assert!(out.text.contains("verdict: authenticated (x-mtls-client-id: good"), "{}", out.text);
        assert!(
            out.text.contains("; passed with a warning: no fresh revocation status (on_unavailable: pass))"),
            "{}",
            out.text
        );
        let v: Value = serde_json::from_str(&cli(&format!("{args} --json")).text).unwrap();
        let last = v["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((&last["step"], &last["ok"], &last["warning"]), (&json!("revocation"), &Value::Null, &json!(true)));
        assert_eq!(v["verdict"], "authenticated");
    }

    #[test]
    fn ocsp_max_age_sets_how_old_an_answer_may_be() {
        let out = cli(&format!(
            "check --cert good.pem --client good.json --issuer rev-ca.pem --ocsp-response ocsp-good.der --now {MADE_PLUS_2_H} --ocsp-max-age 10800"
        ));
        assert_eq!(out.status, 0, "{}", out.text);
    }

    #[test]
    fn a_crl_under_the_issuers_name_signed_by_another_key_gives_no_status() {
        let out =
            cli(&format!("check --cert good.pem --client good.json --issuer rev-ca.pem --crl rogue.crl --now {MADE}"));
        assert_eq!(out.status, 1, "{}", out.text);
        assert!(
            out.text
                .contains("revocation CRL: rogue.crl: not used: its signature does not verify with its issuer's key"),
            "{}",
            out.text
        );
        assert!(
            out.text.contains("FAIL revocation: no fresh status: CRL rogue.crl: its signature does not verify"),
            "{}",
            out.text
        );
    }

    #[test]
    fn an_expired_crl_gives_no_status() {
        let out =
            cli("check --cert good.pem --client good.json --issuer rev-ca.pem --crl ca.crl --now 2126-11-08T00:00:00Z");
        assert_eq!(out.status, 1, "{}", out.text);
        assert!(out.text.contains("not used: an expired CRL (its nextUpdate has passed)"), "{}", out.text);
        // Not even the revoked certificate is called revoked by it.
        let revoked = cli("check --cert revoked.pem --client revoked.json --issuer rev-ca.pem --crl ca.crl --now 2126-11-08T00:00:00Z");
        assert!(revoked.text.contains("could not be established"), "{}", revoked.text);
    }

    #[test]
    fn a_certificate_of_another_issuer_is_not_checked() {
        let out = cli(&format!("check --cert leaf.pem --client dn.json --issuer rev-ca.pem --crl ca.crl --now {MADE}"));
        assert_eq!(out.status, 0, "{}", out.text);
        let lines = revocation_lines(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("     revocation: not checked: its issuer \"CN=Unit Test CA,O=Unit Test,C=GB\""),
            "{lines:?}"
        );
        assert!(lines[0].contains("is not the CA given (\"CN=Revocation Test CA,O=Revocation Test\")"), "{lines:?}");
    }

    #[test]
    fn a_self_signed_client_is_not_checked_for_revocation() {
        let out = cli(&format!(
            "check --cert self-signed.pem --client self-signed.json --issuer rev-ca.pem --crl ca.crl --now {MADE}"
        ));
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(
            out.text
                .contains("     revocation: not checked: a self_signed_tls_client_auth client is pinned by its key"),
            "{}",
            out.text
        );
    }

    #[test]
    fn revocation_is_not_reached_when_the_client_is_not_authenticated() {
        let out =
            cli(&format!("check --cert good.pem --client revoked.json --issuer rev-ca.pem --crl ca.crl --now {MADE}"));
        assert_eq!(out.status, 1);
        assert_eq!(revocation_lines(&out), vec!["     revocation: not reached: the filter checks revocation only once a tls_client_auth client is authenticated"]);
    }

    #[test]
    fn revocation_options_need_an_issuer_and_something_to_check() {
        for args in [
            "check --cert good.pem --client good.json --crl ca.crl",
            "check --cert good.pem --client good.json --now 0",
            "check --cert good.pem --client good.json --on-unavailable pass",
            "check --cert good.pem --client good.json --issuer rev-ca.pem",
            "check --cert good.pem --client good.json --issuer good.json --crl ca.crl",
            "check --cert good.pem --client good.json --issuer rev-ca.pem --crl missing.crl",
            "check --cert good.pem --client good.json --issuer rev-ca.pem --crl ca.crl --on-unavailable maybe",
            "check --cert good.pem --client good.json --issuer rev-ca.pem --crl ca.crl --ocsp-max-age 0",
            "check --cert good.pem --client good.json --issuer rev-ca.pem --crl ca.crl --now yesterday",
        ] {
            assert_eq!(cli(args).status, 2, "{args}");
        }
    }

    #[test]
    fn now_is_unix_seconds_or_an_rfc_3339_date_time() {
        assert_eq!(instant_ms("1796101443"), Ok(rev::MADE_MS));
        assert_eq!(instant_ms("2026-12-01T05:04:03Z"), Ok(rev::MADE_MS));
        assert_eq!(instant_ms("2026-12-01t05:04:03z"), Ok(rev::MADE_MS));
        assert_eq!(instant_ms("2026-12-01 06:04:03.250+01:00"), Ok(rev::MADE_MS + 250));
        assert_eq!(instant_ms("2026-11-30T23:34:03-05:30"), Ok(rev::MADE_MS));
        assert_eq!(instant_ms("1970-01-01T00:00:00Z"), Ok(0));
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01T05:04:03",
            "2026-13-01T05:04:03Z",
            "2026-12-01T05:04:03+1:00",
            "2026-12-01T05:04:03.Z",
            "1970-01-01T00:00:00+00:01",
            "-5",
        ] {
            assert!(instant_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lint_names_a_revocation_object_without_its_cluster() {
        assert_eq!(lint_error_key(&cli("lint rev-no-cluster.json --json")), "revocation");
        assert!(cli("lint rev-no-cluster.json").text.contains("error at `revocation`: missing field `cluster`"));
    }

    #[test]
    fn lint_names_an_issuer_that_is_not_base64() {
        let out = cli("lint rev-bad-issuer.json");
        assert_eq!(out.status, 1);
        assert_eq!(
            out.text,
            "rev-bad-issuer.json: error at `revocation.issuers[0]`: the CA certificate is not standard base64\n"
        );
    }

    #[test]
    fn lint_refuses_a_crl_location_that_is_not_http() {
        // RFC 5280 §4.2.1.13 and RFC 6960 fetch CRLs and OCSP over plain HTTP: what they return is signed.
        assert_eq!(lint_error_key(&cli("lint rev-https-crl.json --json")), "revocation.crl_urls[0]");
        assert!(cli("lint rev-https-crl.json").text.contains("must be an http:// URL with a host"));
    }

    #[test]
    fn lint_refuses_an_ocsp_url_without_ocsp_true() {
        assert_eq!(lint_error_key(&cli("lint rev-ocsp-url-alone.json --json")), "revocation.ocsp_url");
        assert!(cli("lint rev-ocsp-url-alone.json").text.contains("is set but `ocsp` is not true"));
    }

    #[test]
    fn lint_refuses_a_revocation_object_that_checks_nothing() {
        assert_eq!(lint_error_key(&cli("lint rev-nothing.json --json")), "revocation");
        assert!(cli("lint rev-nothing.json").text.contains("checks nothing"));
    }

    #[test]
    fn lint_accepts_a_revocation_object_with_a_crl_and_no_warning() {
        let out = cli("lint rev-crl.json");
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(!out.text.contains("warning"), "{}", out.text);
        assert!(!cli("lint rev-ocsp-url.json").text.contains("warning"));
    }

    #[test]
    fn lint_warns_that_on_unavailable_pass_lets_a_revoked_certificate_through() {
        let out = cli("lint rev-pass.json");
        assert_eq!(out.status, 0, "a warning, not an error");
        assert!(
            out.text.contains("warning at `revocation.on_unavailable`: pass: while no fresh status can be had"),
            "{}",
            out.text
        );
        assert!(out.text.contains("a revoked certificate authenticates"), "{}", out.text);
    }

    #[test]
    fn lint_notes_that_ocsp_without_ocsp_url_calls_each_leafs_responder_through_the_cluster() {
        let out = cli("lint rev-ocsp-aia.json");
        assert_eq!(out.status, 0);
        assert!(out.text.contains("warning at `revocation.ocsp`: true without ocsp_url"), "{}", out.text);
        assert!(
            out.text.contains("the cluster `pki` (revocation.cluster), which must reach every responder host"),
            "{}",
            out.text
        );
        let v: Value = serde_json::from_str(&cli("lint rev-ocsp-aia.json --json").text).unwrap();
        assert_eq!(v["warnings"][0]["key"], "revocation.ocsp");
    }

    #[test]
    fn with_ca_a_certificate_of_a_ca_with_the_same_name_and_another_key_is_refused() {
        let out = cli(&format!("check --cert good.pem --client good.json --ca rogue-ca.pem --now {MADE}"));
        assert_eq!(out.status, 1, "{}", out.text);
        assert!(out.text.contains("FAIL chain validation: the chain does not validate against --ca: the sha256WithRSAEncryption signature of \"O=Revocation Test,CN=good\" does not verify with the key of \"CN=Revocation Test CA,O=Revocation Test\" (--ca)"), "{}", out.text);
        assert!(!out.text.contains("ok   chain"), "{}", out.text);
        assert!(out.text.ends_with("verdict: rejected (401 invalid_client: the client certificate chain was not validated against a trusted CA, which tls_client_auth requires)\n"), "{}", out.text);
    }

    #[test]
    fn with_ca_a_genuine_chain_validates_and_the_verdict_is_unconditional() {
        let out = cli(&format!("check --cert good.pem --client good.json --ca rev-ca.pem --now {MADE}"));
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(out.text.contains("     chain: \"O=Revocation Test,CN=good\" signed by \"CN=Revocation Test CA,O=Revocation Test\" (--ca): sha256WithRSAEncryption signature verifies; valid 2026-12-01T05:04:03Z to 2126-11-07T05:04:03Z"), "{}", out.text);
        assert!(out.text.contains("ok   chain validation: the chain validates against --ca"), "{}", out.text);
        let verdict = out.text.lines().last().unwrap();
        assert!(verdict.starts_with("verdict: authenticated (") && verdict.ends_with(')'), "{verdict}");
        // --cert may hold the leaf followed by the intermediates the client sends.
        let out =
            cli(&format!("check --cert leaf-and-intermediate.pem --client chain-leaf.json --ca root.pem --now {MADE}"));
        assert_eq!(out.status, 1, "the testdata chain starts 2026-12-01T08:02Z, after MADE: {}", out.text);
        let out = cli(
            "check --cert leaf-and-intermediate.pem --client chain-leaf.json --ca root.pem --now 2026-12-02T00:00:00Z",
        );
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(out.text.contains("ok   chain validation"), "{}", out.text);
    }

    #[test]
    fn with_ca_an_expired_certificate_is_refused() {
        let out = cli("check --cert good.pem --client good.json --ca rev-ca.pem --now 2127-01-01T00:00:00Z");
        assert_eq!(out.status, 1, "{}", out.text);
        assert!(out.text.contains("FAIL chain validation: the chain does not validate against --ca: \"O=Revocation Test,CN=good\": expired at 2127-01-01T00:00:00Z (valid 2026-12-01T05:04:03Z to 2126-11-07T05:04:03Z)"), "{}", out.text);
    }

    #[test]
    fn without_ca_the_chain_is_said_not_checked_and_the_verdict_conditional() {
        let out = cli("check --cert good.pem --client good.json");
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(out.text.contains("     chain validation: NOT checked: assumed validated by Envoy's validation context (trusted_ca), which tls_client_auth requires; give the CA bundle with --ca to check it here\n"), "{}", out.text);
        assert!(!out.text.contains("ok   chain"), "{}", out.text);
        assert!(out.text.lines().last().unwrap().ends_with("), only if Envoy's validation context validates the chain, which was NOT checked here (give the CA bundle with --ca)"), "{}", out.text);
        let v: Value = serde_json::from_str(&cli("check --cert good.pem --client good.json --json").text).unwrap();
        assert!(v["condition"].as_str().unwrap().starts_with("only if Envoy's validation context"), "{v}");
        let checked: Value = serde_json::from_str(
            &cli(&format!("check --cert good.pem --client good.json --ca rev-ca.pem --now {MADE} --json")).text,
        )
        .unwrap();
        assert_eq!(checked.get("condition"), None, "{checked}");
    }

    #[test]
    fn ca_and_not_validated_exclude_each_other_and_now_needs_ca_or_issuer() {
        let out = cli("check --cert good.pem --client good.json --ca rev-ca.pem --not-validated");
        assert_eq!(out.status, 2);
        assert!(out.text.contains("--not-validated and --ca exclude each other"), "{}", out.text);
        assert_eq!(cli(&format!("check --cert good.pem --client good.json --now {MADE}")).status, 2);
    }

    #[test]
    fn a_registry_registration_that_does_not_load_is_an_unknown_client_decided_by_unknown_client() {
        let pass = cli("check --cert good.pem --client broken-registry.json --client-id good");
        assert_eq!(pass.status, 1, "not authenticated: {}", pass.text);
        assert!(pass.text.contains("FAIL registration: client good is refused at load: tls_client_auth requires exactly one tls_client_auth_* value"), "{}", pass.text);
        assert!(pass.text.contains("unknown_client: pass (the filter's default) decides"), "{}", pass.text);
        assert!(
            pass.text.ends_with(
                "verdict: passed (passed to the AS without annotation: an unknown client under unknown_client: pass)\n"
            ),
            "{}",
            pass.text
        );
        let explicit =
            cli("check --cert good.pem --client broken-registry.json --client-id good --unknown-client pass");
        assert_eq!(explicit, pass);
        let reject =
            cli("check --cert good.pem --client broken-registry.json --client-id good --unknown-client reject");
        assert_eq!(reject.status, 1);
        assert!(
            reject.text.ends_with(
                "verdict: rejected (401 invalid_client: unknown client: no registration for this client_id)\n"
            ),
            "{}",
            reject.text
        );
        assert_eq!(cli("check --cert good.pem --client good.json --unknown-client maybe").status, 2);
    }

    #[test]
    fn lint_names_a_dn_copied_from_openssl_and_the_rfc_4514_string_meant() {
        let out = cli("lint openssl-dn.json");
        assert_eq!(out.status, 0, "it loads: {}", out.text);
        assert!(out.text.contains("warning at `clients[0] (svc).tls_client_auth_subject_dn`: \"C = DE, O = Acme Corp, CN = svc\" lists the RDNs most significant first"), "{}", out.text);
        assert!(out.text.contains("use \"CN=svc,O=Acme Corp,C=DE\""), "{}", out.text);
        let out = cli("lint --registry slash-dn.json");
        assert_eq!(out.status, 1, "{}", out.text);
        assert!(out.text.contains("warning at `[0] (svc).tls_client_auth_subject_dn`: \"/C=DE/O=Acme Corp/CN=svc\" is in OpenSSL's /C=../CN=.. form"), "{}", out.text);
        assert!(out.text.contains("it is \"CN=svc,O=Acme Corp,C=DE\""), "{}", out.text);
        assert!(
            out.text.contains("error at `[0] (svc)`: tls_client_auth_subject_dn is not an RFC 4514 DN"),
            "{}",
            out.text
        );
    }

    #[test]
    fn lint_warns_on_a_method_name_outside_the_iana_registry() {
        let out = cli("lint typo-method.json");
        assert_eq!(out.status, 0, "{}", out.text);
        assert!(out.text.contains("warning at `clients[0] (svc).token_endpoint_auth_method`: \"tls_client_auth \" is not a method of IANA's OAuth Token Endpoint Authentication Methods registry"), "{}", out.text);
        assert!(out.text.contains("the nearest mTLS method is tls_client_auth\n"), "{}", out.text);
        let v: Value = serde_json::from_str(&cli("lint typo-method.json --json").text).unwrap();
        assert_eq!(v["warnings"][0]["key"], "clients[0] (svc).token_endpoint_auth_method");
    }

    #[test]
    fn lint_says_which_endpoint_a_resource_prefix_covers() {
        let out = cli("lint covering.json");
        assert_eq!(out.status, 1);
        assert_eq!(
            out.text,
            "covering.json: error at `resources[0].prefix`: must not cover an endpoint (it covers /oauth/par)\n"
        );
    }

    #[test]
    fn lint_prints_the_users_terms_not_rust_debug_names() {
        let out = cli("lint good-config.json");
        assert!(out.text.contains("certificate_source connection, unknown_client pass"), "{}", out.text);
        assert!(!out.text.contains("Connection"), "{}", out.text);
    }

    #[test]
    fn lint_says_what_it_expects_of_a_yaml_that_holds_no_filter() {
        let out = cli("lint bad-yaml.yaml");
        assert_eq!(out.status, 2, "{}", out.text);
        assert!(out.text.starts_with("oauth-mtls: bad-yaml.yaml: neither a plugin configuration (the JSON the filter receives) nor an Envoy configuration holding the oauth-mtls wasm filter"), "{}", out.text);
        assert!(!out.text.contains("usage:"), "{}", out.text);
    }

    #[test]
    fn version_prints_the_crate_version() {
        let expected = Output { status: 0, text: format!("oauth-mtls {}\n", env!("CARGO_PKG_VERSION")) };
        assert_eq!(cli("--version"), expected);
        assert_eq!(cli("version"), expected);
        assert_eq!(cli("-V"), expected);
    }

    #[test]
    fn a_missing_file_prints_the_error_and_a_one_line_hint_not_the_usage() {
        let out = cli("check --cert missing.pem --client good.json");
        assert_eq!(
            out,
            Output {
                status: 2,
                text: "oauth-mtls: missing.pem: no such file\n(oauth-mtls --help shows the usage)\n".into()
            }
        );
        assert_eq!(cli("lint missing.json").text.lines().count(), 2);
        assert!(cli("check --cert good.pem").text.contains("usage:"), "a usage error still shows the usage");
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(cli("").status, 2);
        assert_eq!(cli("check --cert leaf.pem").status, 2);
        assert_eq!(cli("thumbprint missing.pem").status, 2);
        assert_eq!(cli("frobnicate").status, 2);
        assert_eq!(cli("check --cert").status, 2);
        assert_eq!(cli("--help").status, 0);
    }
}
