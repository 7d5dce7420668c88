//! The `oauth-mtls` command line: `check`, `lint` and `thumbprint`, on the filter's own pure core.

pub(crate) mod explain;
// Envoy bootstraps given to `lint` (a YAML parser: native builds only).
#[cfg(not(target_arch = "wasm32"))]
mod envoy;

use crate::config::Config;
use crate::{cert, cert::pem, oauth::registration, registry};
use explain::Explanation;
use serde_json::{json, Value};

pub const USAGE: &str = "usage:
  oauth-mtls check --cert CLIENT.pem [--chain CHAIN.pem] --client REGISTRATION.json [--client-id ID]
                   [--jwks JWKS.json] [--not-validated] [--json]
      the verdict the filter would give on a token request with this certificate, step by step
      (exit 0: authenticated, 1: not authenticated, 2: usage or input error)
  oauth-mtls lint CONFIG.json [--json]              validate a plugin configuration as the filter does
  oauth-mtls lint ENVOY.yaml [--json]               the same for each oauth-mtls filter of an Envoy bootstrap,
                                                    and warn about the deployment rules it misses (SECURITY.md)
  oauth-mtls lint --registry CLIENTS.json [--json]  validate a registry document as the filter does
  oauth-mtls thumbprint CERT.pem [--json]           the RFC 8705 x5t#S256 of a certificate
";

/// The result of one command: exit status and what to print on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub text: String,
}

fn usage(problem: &str) -> Output {
    Output { status: 2, text: format!("oauth-mtls: {problem}\n{USAGE}") }
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
            "--not-validated" => {
                flags.not_validated = true;
                Ok(())
            }
            "--cert" => value("--cert").map(|v| flags.cert = Some(v)),
            "--chain" => value("--chain").map(|v| flags.chain = Some(v)),
            "--client" => value("--client").map(|v| flags.client = Some(v)),
            "--client-id" => value("--client-id").map(|v| flags.client_id = Some(v)),
            "--jwks" => value("--jwks").map(|v| flags.jwks = Some(v)),
            "--registry" => value("--registry").map(|v| flags.registry = Some(v)),
            "-h" | "--help" => return Output { status: 0, text: USAGE.to_string() },
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
    let result = match positional.split_first() {
        Some((cmd, rest)) if cmd == "check" && rest.is_empty() => check(&flags, read),
        Some((cmd, rest)) if cmd == "lint" => match (rest, &flags.registry) {
            ([], Some(file)) => lint_registry(file, flags.json, read),
            ([file], None) => lint_config(file, flags.json, read),
            _ => Err("lint takes CONFIG.json, or --registry CLIENTS.json".to_string()),
        },
        Some((cmd, [file])) if cmd == "thumbprint" => thumbprint(file, flags.json, read),
        Some((cmd, _)) => Err(format!("unknown command or wrong arguments: {cmd}")),
        None => Err("no command".to_string()),
    };
    result.unwrap_or_else(|problem| usage(&problem))
}

#[derive(Default)]
struct Flags {
    json: bool,
    not_validated: bool,
    cert: Option<String>,
    chain: Option<String>,
    client: Option<String>,
    client_id: Option<String>,
    jwks: Option<String>,
    registry: Option<String>,
}

/// A certificate file: PEM (the first certificate) or DER.
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

fn check(flags: &Flags, read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Result<Output, String> {
    let cert_file = flags.cert.as_deref().ok_or("check needs --cert")?;
    let client_file = flags.client.as_deref().ok_or("check needs --client")?;
    let leaf = certificates(cert_file, read)?.into_iter().next().ok_or(format!("{cert_file}: no certificate"))?;
    let chain = match &flags.chain {
        Some(f) => certificates(f, read)?,
        None => Vec::new(),
    };
    let document = json_file(client_file, read)?;
    let registration = select(document, flags.client_id.as_deref())?;
    let jwks = match &flags.jwks {
        Some(f) => Some(json_file(f, read)?),
        None => None,
    };
    let explanation = explain::check(&leaf, !flags.not_validated, &registration, jwks.as_ref());
    let status = if explanation.authenticated() { 0 } else { 1 };
    let chain_subjects: Vec<String> = chain
        .iter()
        .map(|der| cert::Leaf::from_der(der).map_or_else(|e| format!("(unparseable: {e})"), |l| l.subject.to_string()))
        .collect();
    let text = if flags.json {
        let mut v = serde_json::to_value(&explanation).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("chain".into(), json!(chain_subjects));
        }
        format!("{v}\n")
    } else {
        render(&explanation, &chain_subjects)
    };
    Ok(Output { status, text })
}

/// One registration from a file holding one, an array, or `{"clients": [...]}`.
fn select(document: Value, client_id: Option<&str>) -> Result<Value, String> {
    let list = match document {
        Value::Object(obj) if !obj.contains_key("clients") => return Ok(Value::Object(obj)),
        other => registry::items(other.to_string().as_bytes()).map_err(|e| e.to_string())?,
    };
    match client_id {
        Some(id) => list
            .into_iter()
            .find(|r| registration::client_id_of(r) == Some(id))
            .ok_or(format!("no registration with client_id {id}")),
        None if list.len() == 1 => list.into_iter().next().ok_or("empty".to_string()),
        None => Err(format!("{} registrations: choose one with --client-id", list.len())),
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
        let mark = match s.ok {
            Some(true) => "ok  ",
            Some(false) => "FAIL",
            None => "    ",
        };
        out.push_str(&format!("{mark} {}: {}\n", s.step, s.detail));
    }
    out.push_str(&format!("verdict: {} ({})\n", e.verdict, e.outcome));
    out
}

fn lint_config(file: &str, json_out: bool, read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Result<Output, String> {
    let bytes = read(file)?;
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(doc) = envoy::bootstrap(&bytes) {
        return Ok(envoy::lint(file, &doc, json_out));
    }
    let (status, text) = match Config::parse(&bytes) {
        Ok(c) => {
            let summary = format!(
                "{} inline clients, registry {}, certificate source {:?}, {} endpoint(s), {} resource(s)",
                c.clients.len(),
                if c.registry.is_some() { "on" } else { "off" },
                c.certificate_source,
                c.endpoints.len(),
                c.resources.len()
            );
            let warnings = c.warnings();
            if json_out {
                let warnings: Vec<Value> = warnings.iter().map(|(k, p)| json!({"key": k, "problem": p})).collect();
                (0, format!("{}\n", json!({"ok": true, "summary": summary, "warnings": warnings})))
            } else {
                let mut text = String::new();
                for (key, advice) in &warnings {
                    text.push_str(&format!("{file}: warning at `{key}`: {advice}\n"));
                }
                text.push_str(&format!("{file}: ok: {summary}\n"));
                (0, text)
            }
        }
        Err(e) if json_out => {
            (1, format!("{}\n", json!({"ok": false, "errors": [{"key": e.key, "problem": e.problem}]})))
        }
        Err(e) => (1, format!("{file}: error at `{}`: {}\n", e.key, e.problem)),
    };
    Ok(Output { status, text })
}

fn lint_registry(file: &str, json_out: bool, read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Result<Output, String> {
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
    let mut copies: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for id in items.iter().filter_map(registration::client_id_of).filter(|id| !id.is_empty()) {
        *copies.entry(id).or_default() += 1;
    }
    let mut loaded = 0;
    for (i, item) in items.iter().enumerate() {
        let id = registration::client_id_of(item);
        let key = match id {
            Some(id) => format!("[{i}] ({})", crate::oauth::response::for_log(id)),
            None => format!("[{i}]"),
        };
        match (id.and_then(|id| copies.get(id)).copied().unwrap_or(0), registration::check(item)) {
            (n, _) if n > 1 => {
                errors.push((key, format!("client_id is listed {n} times; the filter loads no copy of it")))
            }
            (_, Ok(_)) => loaded += 1,
            (_, Err(e)) => errors.push((key, e.to_string())),
        }
    }
    let status = if errors.is_empty() { 0 } else { 1 };
    let text = if json_out {
        let errs: Vec<Value> = errors.iter().map(|(k, p)| json!({"key": k, "problem": p})).collect();
        format!("{}\n", json!({"ok": errors.is_empty(), "loaded": loaded, "errors": errs}))
    } else {
        let mut t = String::new();
        for (k, p) in &errors {
            t.push_str(&format!("{file}: error at `{k}`: {p}\n"));
        }
        t.push_str(&format!("{file}: {loaded} client(s) load, {} refused\n", errors.len()));
        t
    };
    Ok(Output { status, text })
}

fn thumbprint(file: &str, json_out: bool, read: &dyn Fn(&str) -> Result<Vec<u8>, String>) -> Result<Output, String> {
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
    use crate::testdata::{der, LEAF, SELF_SIGNED_1};
    use std::collections::HashMap;

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
        f.insert(
            "twice.json",
            br#"[{"client_id": "a", "token_endpoint_auth_method": "none"}, {"client_id": "b"},
            {"client_id": "a", "token_endpoint_auth_method": "tls_client_auth"}]"#
                .to_vec(),
        );
        f
    }

    fn cli(args: &str) -> Output {
        let f = files();
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        run(&args, &|name| f.get(name).cloned().ok_or(format!("{name}: no such file")))
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
    fn usage_errors_exit_2() {
        assert_eq!(cli("").status, 2);
        assert_eq!(cli("check --cert leaf.pem").status, 2);
        assert_eq!(cli("thumbprint missing.pem").status, 2);
        assert_eq!(cli("frobnicate").status, 2);
        assert_eq!(cli("check --cert").status, 2);
        assert_eq!(cli("--help").status, 0);
    }
}
