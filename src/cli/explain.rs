//! The filter's verdict on a certificate and a registration, explained step by step (the CLI's `check`).

use crate::cert::san::SanRule;
use crate::cert::{Leaf, Sans};
use crate::cli::{chain, dn_forms, methods};
use crate::config::UnknownClient;
use crate::forwarded::source::Presented;
use crate::oauth::jwks::{self, JwksUri};
use crate::oauth::registration::{self, Client, KeySource, Method, SubjectRule, TLS_CLIENT_AUTH};
use crate::oauth::verdict::{self, Directory, JwksView, Lookup, PassReason, Rejection, Verdict};
use crate::revocation::ca::Ca;
use crate::revocation::store::{self, CrlEvidence, Decision, OcspView};
use crate::revocation::target::Target;
use crate::revocation::{crl, name_text, ocsp, OnUnavailable};
use serde::Serialize;
use serde_json::Value;
use std::rc::Rc;

/// One step of the decision: what was compared with what, under which rule, and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub step: String,
    pub detail: String,
    /// `None` for a step that only reports.
    pub ok: Option<bool>,
    /// A step that lets the request through but that the filter logs as a warning.
    #[serde(skip_serializing_if = "is_false")]
    pub warning: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The leaf as the filter sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeafSummary {
    pub subject: String,
    pub issuer: String,
    pub dns: Vec<String>,
    pub uri: Vec<String>,
    pub ip: Vec<String>,
    pub email: Vec<String>,
    pub x5t_s256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub leaf: Option<LeafSummary>,
    pub steps: Vec<Step>,
    /// `authenticated`, `passed` or `rejected`.
    pub verdict: String,
    /// The error and description the client would get, or what the AS would be told.
    pub outcome: String,
    /// What the verdict rests on that was not checked here (the chain's validation, without `--ca`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

impl Explanation {
    pub fn authenticated(&self) -> bool {
        self.verdict == "authenticated"
    }
}

fn step(steps: &mut Vec<Step>, name: &str, detail: String, ok: Option<bool>) {
    steps.push(Step { step: name.to_string(), detail, ok, warning: false });
}

/// What `check --issuer` gives the revocation step: the CA as `revocation.issuers` would list it, files standing
/// in for what the filter fetches, and the filter's settings.
#[derive(Debug, Clone)]
pub struct RevocationInput {
    pub ca: Ca,
    /// Each `--crl`: the file's name and bytes (DER or PEM), as if fetched from a CRL location just now.
    pub crls: Vec<(String, Vec<u8>)>,
    /// `--ocsp-response`: the file's name and the responder's answer (DER); `None`: OCSP is not consulted.
    pub ocsp_response: Option<(String, Vec<u8>)>,
    /// The time the CRLs and the answer are judged at.
    pub now_ms: u64,
    /// `revocation.ocsp_max_age_seconds`.
    pub ocsp_max_age_seconds: u64,
    /// `revocation.on_unavailable`.
    pub on_unavailable: OnUnavailable,
}

/// What `check` knows of the validation Envoy gives the client's chain.
#[derive(Debug, Clone)]
pub enum ChainInput {
    /// Not checked (no `--ca`): assumed validated by Envoy's validation context.
    Assumed,
    /// `--not-validated`: Envoy reported the chain as not validated.
    NotValidated,
    /// `--ca`: validated here, as Envoy's default validator does.
    Checked(chain::Report),
}

impl ChainInput {
    /// Whether the filter would be told the chain is validated (an assumption unless checked).
    fn validated(&self) -> bool {
        match self {
            ChainInput::Assumed => true,
            ChainInput::NotValidated => false,
            ChainInput::Checked(r) => !matches!(r.outcome, chain::Outcome::Invalid(_)),
        }
    }

    /// What an authentication resting on this validation is conditional on, if anything.
    fn condition(&self) -> Option<String> {
        match self {
            ChainInput::Assumed => Some(
                "only if Envoy's validation context validates the chain, which was NOT checked here (give the CA \
                 bundle with --ca)"
                    .to_string(),
            ),
            ChainInput::Checked(chain::Report { outcome: chain::Outcome::CannotCheck(_), .. }) => {
                Some("only if the signature this tool cannot check verifies (Envoy checks it)".to_string())
            }
            _ => None,
        }
    }
}

/// What `check` is given: the leaf, what is known of its chain, one registration, and the filter's settings.
pub struct Input<'a> {
    pub leaf_der: &'a [u8],
    pub chain: ChainInput,
    pub metadata: &'a Value,
    /// Stands in for the document at the client's `jwks_uri`, which `check` never fetches.
    pub jwks: Option<&'a Value>,
    /// When given, the revocation check the filter makes after authenticating a `tls_client_auth` client.
    pub revocation: Option<&'a RevocationInput>,
    /// The plugin's `unknown_client`: what happens to a client without a (loading) registration.
    pub unknown_client: UnknownClient,
    /// With `--endpoint`: how the request's path resolved (literal, or which tenant), and whether the client
    /// has a registration there (if not, it is an unknown client and `metadata` only names its id).
    pub endpoint: Option<EndpointInput>,
}

/// The endpoint a request is addressed to, resolved as the filter resolves it.
#[derive(Debug, Clone)]
pub struct EndpointInput {
    pub description: String,
    pub registered: bool,
}

/// The whole explanation when the path is not one the filter authenticates at: not an endpoint (the request
/// goes on, unenforced and unannotated), or a template's path that names no single tenant (refused).
pub fn not_enforced(path: &str, why: Option<String>) -> Explanation {
    let (detail, verdict, outcome) = match why {
        None => (
            format!("{path} is not one of the configured endpoints"),
            "passed",
            "passed to the AS without annotation: the filter does not authenticate at this path".to_string(),
        ),
        Some(e) => (
            format!("{path} reaches a {{tenant}} template but does not name one tenant: {e}"),
            "rejected",
            format!("400 invalid_request: the path does not name one tenant: {e}"),
        ),
    };
    Explanation {
        leaf: None,
        steps: vec![Step { step: "endpoint".to_string(), detail, ok: Some(false), warning: false }],
        verdict: verdict.to_string(),
        outcome,
        condition: None,
    }
}

/// Explains the verdict for the input's leaf against its registration.
pub fn check(input: &Input) -> Explanation {
    let (leaf_der, metadata, jwks_doc) = (input.leaf_der, input.metadata, input.jwks);
    let mut steps = Vec::new();
    let leaf = match Leaf::from_der(leaf_der) {
        Ok(leaf) => leaf,
        Err(e) => {
            step(&mut steps, "certificate", format!("cannot be parsed: {e}"), Some(false));
            return finish(None, steps, None, input, None);
        }
    };
    let summary = summarize(&leaf);
    if let Some(endpoint) = &input.endpoint {
        step(&mut steps, "endpoint", endpoint.description.clone(), None);
        if !endpoint.registered {
            let id = registration::client_id_of(metadata).unwrap_or("(none)");
            step(
                &mut steps,
                "unknown client",
                format!(
                    "no registration of client {id} serves this endpoint (a registration is found only in its own \
                     tenant; one without a tenant only at literal endpoints); unknown_client: {} decides",
                    unknown_client_name(input.unknown_client)
                ),
                None,
            );
            return finish(Some(summary), steps, None, input, None);
        }
    }
    step(
        &mut steps,
        "certificate",
        format!(
            "leaf subject \"{}\", issued by \"{}\", x5t#S256 {}",
            summary.subject, summary.issuer, summary.x5t_s256
        ),
        None,
    );
    let client = match registration::check(metadata).and_then(|s| s.compile()) {
        Ok(c) => c,
        Err(e) => {
            let id = registration::client_id_of(metadata).unwrap_or("(none)");
            let mut detail = format!("client {id} is refused at load: {e}");
            let dn = metadata.get("tls_client_auth_subject_dn").and_then(Value::as_str);
            if let Some(hint) = dn.and_then(|dn| dn_forms::load_hint(dn, &leaf.subject)) {
                detail.push_str(&format!(" ({hint})"));
            }
            step(&mut steps, "registration", detail, Some(false));
            step(
                &mut steps,
                "unknown client",
                format!(
                    "a registration that does not load is not loaded, so the filter knows no client {id} (from a \
                     registry, the other registrations load; an inline one makes the filter refuse its whole \
                     configuration); unknown_client: {} decides",
                    unknown_client_name(input.unknown_client)
                ),
                None,
            );
            return finish(Some(summary), steps, None, input, None);
        }
    };
    step(
        &mut steps,
        "registration",
        format!("client {} uses token_endpoint_auth_method {}", client.client_id, client.method_name()),
        None,
    );
    match &client.method {
        Method::TlsClientAuth(rule) => {
            chain_steps(&mut steps, &input.chain);
            if !client.pinned_issuers.is_empty() {
                let signed = crate::cert::issuer::issued_by_any(&client.pinned_issuers, leaf_der);
                let detail = match &signed {
                    Ok(true) => {
                        "a CA key pinned in tls_client_auth_issuer_keys signed the leaf (RFC 8705 §7.4)".to_string()
                    }
                    Ok(false) => {
                        "none of the CA keys pinned in tls_client_auth_issuer_keys signed the leaf (RFC 8705 §7.4)"
                            .to_string()
                    }
                    Err(e) => format!("the pinned issuer cannot be checked: {e}"),
                };
                step(&mut steps, "issuer pinning", detail, Some(signed == Ok(true)));
            }
            match rule {
                SubjectRule::Dn(dn) => {
                    let ok = dn.matches(&leaf.subject);
                    let mut detail = format!(
                        "registered tls_client_auth_subject_dn \"{dn}\" {} the leaf subject \"{}\" under distinguishedNameMatch (RFC 4517: same RDNs in order, multi-valued RDNs as sets, types by OID, values case-insensitive after space folding)",
                        if ok { "equals" } else { "does not equal" },
                        leaf.subject
                    );
                    if !ok {
                        detail.push_str(&format!(": {}", dn_forms::mismatch_hint(dn, &leaf.subject)));
                    }
                    step(&mut steps, "subject DN", detail, Some(ok));
                }
                SubjectRule::San(rule) => san_steps(&mut steps, rule, &leaf.sans),
            }
        }
        Method::SelfSigned(source) => {
            if matches!(input.chain, ChainInput::Checked(_)) {
                step(
                    &mut steps,
                    "chain validation",
                    "not required: a self_signed_tls_client_auth certificate is pinned by its thumbprint, not \
                     validated (RFC 8705 §2.2)"
                        .to_string(),
                    None,
                );
            }
            let (prints, place) = match source {
                KeySource::Jwks(p) => (p.clone(), "jwks".to_string()),
                KeySource::JwksUri(uri) => (
                    jwks_doc.and_then(|d| jwks::x5c_thumbprints(d).ok()).unwrap_or_default(),
                    format!(
                        "the JWK Set at jwks_uri {} ({})",
                        uri.uri,
                        if jwks_doc.is_some() { "given with --jwks" } else { "not fetched: give it with --jwks" }
                    ),
                ),
            };
            let ok = prints.contains(&leaf.sha256);
            let listed: Vec<String> = prints.iter().map(|p| crate::oauth::jwks::hex(p)).collect();
            step(
                &mut steps,
                "x5c certificate",
                format!(
                    "SHA-256 of the leaf ({}) {} the SHA-256 of an x5c[0] in {place} [{}] (RFC 8705 §2.2; no chain validation)",
                    crate::oauth::jwks::hex(&leaf.sha256),
                    if ok { "equals" } else { "equals none of" },
                    listed.join(", ")
                ),
                Some(ok),
            );
        }
        Method::Other(m) => {
            let detail = match methods::hint(m) {
                Some(hint) => hint,
                None => format!("{m} is not a mutual-TLS method: the filter passes the request without annotation"),
            };
            step(&mut steps, "method", detail, None)
        }
    }
    let uri_prints = jwks_doc.and_then(|d| jwks::x5c_thumbprints(d).ok());
    finish(Some(summary), steps, Some(client), input, uri_prints)
}

fn unknown_client_name(setting: UnknownClient) -> &'static str {
    match setting {
        UnknownClient::Pass => "pass (the filter's default)",
        UnknownClient::Reject => "reject",
    }
}

/// The chain's validation, as known: assumed, reported not validated, or checked here link by link.
fn chain_steps(steps: &mut Vec<Step>, chain: &ChainInput) {
    let (detail, ok) = match chain {
        ChainInput::Assumed => (
            "NOT checked: assumed validated by Envoy's validation context (trusted_ca), which tls_client_auth \
             requires; give the CA bundle with --ca to check it here"
                .to_string(),
            None,
        ),
        ChainInput::NotValidated => (
            "the chain was NOT validated by the proxy (--not-validated); tls_client_auth requires a validated chain"
                .to_string(),
            Some(false),
        ),
        ChainInput::Checked(report) => {
            for link in &report.links {
                step(steps, "chain", link.clone(), None);
            }
            match &report.outcome {
                chain::Outcome::Valid => (
                    "the chain validates against --ca (signatures, names, validity, CA basicConstraints and \
                     keyUsage, path length; not checked: extendedKeyUsage, name constraints, policies, critical \
                     extensions)"
                        .to_string(),
                    Some(true),
                ),
                chain::Outcome::Invalid(why) => (
                    format!(
                        "the chain does not validate against --ca: {why}; Envoy reports it as not validated (or \
                         refuses the handshake), and tls_client_auth requires a validated chain"
                    ),
                    Some(false),
                ),
                chain::Outcome::CannotCheck(why) => (format!("cannot check: {why}"), None),
            }
        }
    };
    step(steps, "chain validation", detail, ok);
}

fn san_steps(steps: &mut Vec<Step>, rule: &SanRule, sans: &Sans) {
    let kind = rule.kind();
    let entries: Vec<(String, Sans)> = match kind {
        crate::cert::san::SanKind::Dns => {
            sans.dns.iter().map(|v| (v.clone(), Sans { dns: vec![v.clone()], ..Sans::default() })).collect()
        }
        crate::cert::san::SanKind::Uri => {
            sans.uri.iter().map(|v| (v.clone(), Sans { uri: vec![v.clone()], ..Sans::default() })).collect()
        }
        crate::cert::san::SanKind::Ip => {
            sans.ip.iter().map(|v| (v.to_string(), Sans { ip: vec![*v], ..Sans::default() })).collect()
        }
        crate::cert::san::SanKind::Email => {
            sans.email.iter().map(|v| (v.clone(), Sans { email: vec![v.clone()], ..Sans::default() })).collect()
        }
    };
    let rule_text = match kind {
        crate::cert::san::SanKind::Dns => "case-insensitive, no wildcard expansion",
        crate::cert::san::SanKind::Uri => "exact string",
        crate::cert::san::SanKind::Ip => "binary address",
        crate::cert::san::SanKind::Email => "local part exact, domain case-insensitive",
    };
    if entries.is_empty() {
        step(steps, kind.metadata_field(), format!("the leaf has no {} subjectAltName", kind.name()), Some(false));
    }
    for (value, single) in entries {
        let ok = rule.matches(&single);
        step(
            steps,
            kind.metadata_field(),
            format!(
                "{} \"{value}\" {} the registered value ({rule_text})",
                kind.name(),
                if ok { "matches" } else { "does not match" }
            ),
            Some(ok),
        );
    }
}

/// The final word is the filter's own `verdict::decide`, so the CLI can never disagree with the filter; then,
/// as in the filter, an authenticated `tls_client_auth` client's certificate is checked for revocation.
fn finish(
    leaf: Option<LeafSummary>,
    mut steps: Vec<Step>,
    client: Option<Client>,
    input: &Input,
    jwks_prints: Option<Vec<jwks::Thumbprint>>,
) -> Explanation {
    let (der, revocation) = (input.leaf_der, input.revocation);
    struct One(Option<Rc<Client>>, Option<Vec<jwks::Thumbprint>>);
    impl Directory for One {
        fn client(&mut self, _: &str) -> Lookup {
            self.0.clone().map_or(Lookup::Unknown, Lookup::Found)
        }
        fn jwks(&mut self, _: &JwksUri) -> JwksView {
            JwksView::Known {
                thumbprints: self.1.clone().unwrap_or_default(),
                freshness: crate::oauth::jwks::Freshness::Fresh,
                may_refetch: false,
                last_error: None,
            }
        }
    }
    // A registration that does not load is no registration: the client is unknown, and unknown_client decides.
    let id = client.as_ref().map_or_else(
        || registration::client_id_of(input.metadata).unwrap_or("(none)").to_string(),
        |c| c.client_id.clone(),
    );
    let mut directory = One(client.map(Rc::new), jwks_prints);
    let presented = Presented::certificate(der.to_vec(), input.chain.validated());
    let verdict = verdict::decide(Some(&id), &presented, input.unknown_client, &mut directory);
    let mut passed_unchecked = false;
    let verdict = match (verdict, revocation) {
        (Verdict::Authenticated(a), Some(input)) if a.method == TLS_CLIENT_AUTH => {
            match revocation_steps(&mut steps, der, input) {
                Revocation::Good | Revocation::NotCovered => Verdict::Authenticated(a),
                Revocation::Revoked => Verdict::Reject(Rejection::revoked()),
                Revocation::NoStatus => Verdict::Reject(Rejection::revocation_unavailable()),
                Revocation::NoStatusPassed => {
                    passed_unchecked = true;
                    Verdict::Authenticated(a)
                }
            }
        }
        (Verdict::Authenticated(a), Some(_)) => {
            step(
                &mut steps,
                "revocation",
                format!(
                    "not checked: a {} client is pinned by its key (RFC 8705 §2.2), not by a CA that could revoke \
                     it; the filter checks only tls_client_auth certificates",
                    a.method
                ),
                None,
            );
            Verdict::Authenticated(a)
        }
        (other, Some(_)) => {
            step(
                &mut steps,
                "revocation",
                "not reached: the filter checks revocation only once a tls_client_auth client is authenticated"
                    .to_string(),
                None,
            );
            other
        }
        (other, None) => other,
    };
    let condition = match &verdict {
        Verdict::Authenticated(a) if a.method == TLS_CLIENT_AUTH => input.chain.condition(),
        _ => None,
    };
    let (name, outcome) = match &verdict {
        Verdict::Authenticated(a) => (
            "authenticated",
            format!(
                "x-mtls-client-id: {}, x-mtls-auth-method: {}, x-mtls-x5t-s256: {}{}",
                a.client_id,
                a.method,
                a.x5t_s256,
                if passed_unchecked {
                    "; passed with a warning: no fresh revocation status (on_unavailable: pass)"
                } else {
                    ""
                }
            ),
        ),
        Verdict::Pass(reason) => {
            let why = match reason {
                PassReason::NoClientId => "no client_id",
                PassReason::UnknownClient => "an unknown client under unknown_client: pass",
                PassReason::NotMtlsClient => "not a mutual-TLS client",
            };
            ("passed", format!("passed to the AS without annotation: {why}"))
        }
        Verdict::Reject(r) => {
            ("rejected", format!("{} {}: {}", r.status, r.error, crate::oauth::response::one_line(&r.description)))
        }
        Verdict::FetchJwks(u) => ("rejected", format!("the JWK Set at {} is needed: give it with --jwks", u.uri)),
    };
    Explanation { leaf, steps, verdict: name.to_string(), outcome, condition }
}

/// What the revocation step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revocation {
    Good,
    /// The leaf's issuer is not the CA given: the filter does not check it.
    NotCovered,
    Revoked,
    /// No fresh status, refused (`on_unavailable: reject`).
    NoStatus,
    /// No fresh status, let through (`on_unavailable: pass`).
    NoStatusPassed,
}

/// An instant as RFC 3339 UTC text.
pub(crate) fn instant(ms: u64) -> String {
    der::DateTime::from_unix_duration(std::time::Duration::from_millis(ms))
        .map_or_else(|_| format!("{ms} ms after the epoch"), |t| t.to_string())
}

/// The filter's revocation check (`proxy::revocation::Revocation::check`) on the files given: each CRL is
/// opened, verified and read whole as the worker loads one, the OCSP answer is verified as the worker stores
/// one, and `store::combine` decides.
fn revocation_steps(steps: &mut Vec<Step>, leaf_der: &[u8], input: &RevocationInput) -> Revocation {
    let target = match Target::of(leaf_der) {
        Ok(t) => t,
        Err(e) => {
            let why = format!("the client certificate: its issuer, serial or status locations cannot be read ({e})");
            return no_status(steps, input, &why);
        }
    };
    let cas = std::slice::from_ref(&input.ca);
    if Ca::find(cas, &target.issuer_name).is_none() {
        step(
            steps,
            "revocation",
            format!(
                "not checked: its issuer \"{}\" is not the CA given (\"{}\"), and the filter checks only \
                 certificates of a CA listed in revocation.issuers",
                name_text(&target.issuer_name),
                input.ca.subject
            ),
            None,
        );
        return Revocation::NotCovered;
    }
    let serial = target.serial_hex();
    let list = |urls: &[String]| if urls.is_empty() { "none".to_string() } else { urls.join(", ") };
    step(
        steps,
        "revocation target",
        format!(
            "serial {serial} issued by \"{}\"; the leaf names OCSP responder(s): {}; CRL distribution point(s): {}",
            input.ca.subject,
            list(&target.ocsp_urls),
            list(&target.crl_urls)
        ),
        None,
    );
    let mut evidence = Vec::new();
    for (name, bytes) in &input.crls {
        let (found, detail) = crl_evidence(name, bytes, cas, &target.serial, input.now_ms);
        step(steps, "revocation CRL", format!("{name}: {detail}"), None);
        evidence.push(found);
    }
    let view = input.ocsp_response.as_ref().map(|(name, bytes)| {
        let (view, detail) = ocsp_view(bytes, input, &target.serial);
        step(steps, "revocation OCSP", format!("{name}: {detail}"), None);
        view
    });
    match store::combine(&evidence, view.as_ref()) {
        Decision::Good => {
            let by = if evidence.contains(&CrlEvidence::NotListed { stale: None }) {
                "a valid CRL of the CA does not list it"
            } else {
                "the OCSP responder answers good"
            };
            step(steps, "revocation", format!("serial {serial} is not revoked: {by}"), Some(true));
            Revocation::Good
        }
        Decision::Revoked(by) => {
            step(steps, "revocation", format!("serial {serial} is revoked (by {by})"), Some(false));
            Revocation::Revoked
        }
        Decision::NoStatus(why) => no_status(steps, input, &why),
        // Only a stored record's absence or a call under way gives these: files are never either.
        Decision::Ask | Decision::Wait => no_status(steps, input, "no OCSP answer was given"),
    }
}

/// What one CRL file says of `serial`, as the filter would have it once loaded, and the step's detail.
fn crl_evidence(name: &str, bytes: &[u8], cas: &[Ca], serial: &[u8], now_ms: u64) -> (CrlEvidence, String) {
    let read = crl::der_of(bytes).and_then(|der| {
        let opened = crl::open(&der, cas)?;
        // The worker refuses an expired CRL and keeps its last good copy: here there is none.
        if opened.next_update_ms.is_some_and(|n| n < now_ms) {
            return Err(crl::CrlError::Unsupported("an expired CRL (its nextUpdate has passed)"));
        }
        let (serials, _) = crl::entries(der.get(opened.entries.clone()).unwrap_or_default(), usize::MAX)?;
        Ok((opened, serials))
    });
    match read {
        Ok((opened, serials)) => {
            let listed = serials.iter().any(|s| s == serial);
            let detail = format!(
                "verified with the CA's key, thisUpdate {}, nextUpdate {}, {} serial(s) revoked: {} serial {}",
                instant(opened.this_update_ms),
                opened.next_update_ms.map_or_else(|| "none".to_string(), instant),
                serials.len(),
                if listed { "lists" } else { "does not list" },
                crate::hex::encode(serial)
            );
            let evidence = if listed { CrlEvidence::Listed } else { CrlEvidence::NotListed { stale: None } };
            (evidence, detail)
        }
        Err(e) => (CrlEvidence::Unavailable(format!("CRL {name}: {e}")), format!("not used: {e}")),
    }
}

/// What the OCSP answer says, as the worker stores it (fresh until `thisUpdate` + `ocsp_max_age_seconds` or
/// its `nextUpdate`, whichever is first), and the step's detail.
fn ocsp_view(bytes: &[u8], input: &RevocationInput, serial: &[u8]) -> (OcspView, String) {
    let max_age_ms = input.ocsp_max_age_seconds.saturating_mul(1000);
    let now = input.now_ms;
    match ocsp::verify(bytes, &input.ca, serial, now, max_age_ms) {
        Ok(answer) => {
            let until = answer.this_update_ms.saturating_add(max_age_ms);
            let until = answer.next_update_ms.map_or(until, |n| n.min(until));
            let detail = format!(
                "{}, verified (signed by the CA or a responder it certified), thisUpdate {} ({} s old; \
                 ocsp_max_age_seconds {}), nextUpdate {}",
                answer.status.name(),
                instant(answer.this_update_ms),
                now.saturating_sub(answer.this_update_ms) / 1000,
                input.ocsp_max_age_seconds,
                answer.next_update_ms.map_or_else(|| "none".to_string(), instant)
            );
            if until > now {
                (OcspView::Fresh(answer.status), detail)
            } else {
                let why = format!("the answer is no longer fresh (used until {})", instant(until));
                (OcspView::Failed(why.clone()), format!("{detail}: {why}"))
            }
        }
        Err(e) => (OcspView::Failed(e.to_string()), format!("no status: {e}")),
    }
}

/// No fresh status: `on_unavailable` decides, as in the filter.
fn no_status(steps: &mut Vec<Step>, input: &RevocationInput, why: &str) -> Revocation {
    match input.on_unavailable {
        OnUnavailable::Reject => {
            step(
                steps,
                "revocation",
                format!("no fresh status: {why}; on_unavailable: reject (the filter's default) refuses the request"),
                Some(false),
            );
            Revocation::NoStatus
        }
        OnUnavailable::Pass => {
            steps.push(Step {
                step: "revocation".to_string(),
                detail: format!(
                    "no fresh status: {why}; on_unavailable: pass lets the client through authenticated (the \
                     filter logs a warning and counts oauth_mtls.revocation.unavailable_passed)"
                ),
                ok: None,
                warning: true,
            });
            Revocation::NoStatusPassed
        }
    }
}

fn summarize(leaf: &Leaf) -> LeafSummary {
    LeafSummary {
        subject: leaf.subject.to_string(),
        issuer: leaf.issuer.to_string(),
        dns: leaf.sans.dns.clone(),
        uri: leaf.sans.uri.clone(),
        ip: leaf.sans.ip.iter().map(ToString::to_string).collect(),
        email: leaf.sans.email.clone(),
        x5t_s256: leaf.x5t_s256(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{der, LEAF, SELF_SIGNED_1, SELF_SIGNED_2};
    use serde_json::json;

    fn tls(field: &str, value: &str) -> Value {
        json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", field: value})
    }

    /// `check` on a leaf and a registration, the chain as given, no revocation, unknown_client pass.
    fn explain(leaf: &str, chain: ChainInput, metadata: &Value, jwks: Option<&Value>) -> Explanation {
        let der = der(leaf);
        let input = Input {
            leaf_der: &der,
            chain,
            metadata,
            jwks,
            revocation: None,
            unknown_client: UnknownClient::Pass,
            endpoint: None,
        };
        check(&input)
    }

    #[test]
    fn a_matching_dn_is_explained_and_authenticated() {
        let reg = tls("tls_client_auth_subject_dn", "cn=dn-client,ou=Payments,o=Example Bank,c=GB");
        let e = explain(LEAF, ChainInput::Assumed, &reg, None);
        assert!(e.authenticated(), "{e:?}");
        let dn = e.steps.iter().find(|s| s.step == "subject DN").unwrap();
        assert_eq!(dn.ok, Some(true));
        assert!(dn.detail.contains("distinguishedNameMatch"));
        assert_eq!(e.leaf.unwrap().subject, "CN=dn-client,OU=Payments,O=Example Bank,C=GB");
    }

    #[test]
    fn every_san_of_the_kind_is_listed_with_its_result() {
        let e = explain(LEAF, ChainInput::Assumed, &tls("tls_client_auth_san_dns", "client.example.com"), None);
        let dns: Vec<_> = e.steps.iter().filter(|s| s.step == "tls_client_auth_san_dns").collect();
        assert_eq!(dns.len(), 2);
        assert_eq!((dns[0].ok, dns[1].ok), (Some(false), Some(true)));
        assert!(e.authenticated());
    }

    #[test]
    fn an_unvalidated_chain_is_the_failing_step() {
        let e = explain(LEAF, ChainInput::NotValidated, &tls("tls_client_auth_san_dns", "client.example.com"), None);
        assert_eq!(e.steps.iter().find(|s| s.step == "chain validation").unwrap().ok, Some(false));
        assert_eq!(e.verdict, "rejected");
        assert!(e.outcome.contains("401 invalid_client"));
    }

    #[test]
    fn an_unchecked_chain_is_not_called_ok_and_makes_the_authentication_conditional() {
        let e = explain(LEAF, ChainInput::Assumed, &tls("tls_client_auth_san_dns", "client.example.com"), None);
        let chain = e.steps.iter().find(|s| s.step == "chain validation").unwrap();
        assert_eq!(chain.ok, None);
        assert!(chain.detail.starts_with("NOT checked: assumed validated by Envoy's validation context"));
        assert!(e.authenticated());
        assert!(e.condition.as_deref().unwrap().contains("NOT checked here (give the CA bundle with --ca)"));
    }

    #[test]
    fn self_signed_thumbprints_are_compared_and_need_no_chain() {
        use base64::Engine;
        let reg = json!({"client_id": "s", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [{"x5c": [base64::engine::general_purpose::STANDARD.encode(der(SELF_SIGNED_1))]}]}});
        let e = explain(SELF_SIGNED_1, ChainInput::NotValidated, &reg, None);
        assert!(e.authenticated() && e.condition.is_none(), "{e:?}");
        assert!(!explain(SELF_SIGNED_2, ChainInput::NotValidated, &reg, None).authenticated());
    }

    #[test]
    fn jwks_uri_clients_need_the_set_given() {
        use base64::Engine;
        let reg = json!({"client_id": "s", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": "https://x/j"});
        assert!(!explain(SELF_SIGNED_1, ChainInput::NotValidated, &reg, None).authenticated());
        let set = json!({"keys": [{"x5c": [base64::engine::general_purpose::STANDARD.encode(der(SELF_SIGNED_1))]}]});
        assert!(explain(SELF_SIGNED_1, ChainInput::NotValidated, &reg, Some(&set)).authenticated());
    }

    #[test]
    fn a_registration_that_does_not_load_is_an_unknown_client_and_unknown_client_decides() {
        let reg = json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth"});
        let der = der(LEAF);
        let mut input = Input {
            leaf_der: &der,
            chain: ChainInput::Assumed,
            metadata: &reg,
            jwks: None,
            revocation: None,
            unknown_client: UnknownClient::Pass,
            endpoint: None,
        };
        let passed = check(&input);
        assert!(passed.steps.iter().any(|s| s.step == "registration" && s.detail.contains("exactly one")));
        assert_eq!(passed.verdict, "passed", "{passed:?}");
        assert_eq!(passed.outcome, "passed to the AS without annotation: an unknown client under unknown_client: pass");
        input.unknown_client = UnknownClient::Reject;
        let rejected = check(&input);
        assert_eq!(rejected.verdict, "rejected");
        assert_eq!(rejected.outcome, "401 invalid_client: unknown client: no registration for this client_id");
    }

    #[test]
    fn a_dn_that_does_not_match_says_why_and_which_string_would() {
        let reg = tls("tls_client_auth_subject_dn", "C = GB, O = Example Bank, OU = Payments, CN = dn-client");
        let e = explain(LEAF, ChainInput::Assumed, &reg, None);
        let dn = e.steps.iter().find(|s| s.step == "subject DN").unwrap();
        assert_eq!(dn.ok, Some(false));
        assert!(dn.detail.ends_with(": the registered DN has the leaf's RDNs in the reverse order (the order `openssl x509 -subject` prints); the string that matches this certificate is \"CN=dn-client,OU=Payments,O=Example Bank,C=GB\""), "{}", dn.detail);
    }

    #[test]
    fn a_dn_in_openssl_slash_form_is_converted_in_the_explanation() {
        let reg = tls("tls_client_auth_subject_dn", "/C=GB/O=Example Bank/OU=Payments/CN=dn-client");
        let e = explain(LEAF, ChainInput::Assumed, &reg, None);
        let registration = e.steps.iter().find(|s| s.step == "registration").unwrap();
        assert!(
            registration.detail.contains(
                "in RFC 4514 it is \"CN=dn-client,OU=Payments,O=Example Bank,C=GB\", which matches this certificate"
            ),
            "{}",
            registration.detail
        );
    }

    #[test]
    fn a_method_name_outside_the_iana_registry_is_named_as_a_likely_typo() {
        let reg = json!({"client_id": "c", "token_endpoint_auth_method": "tls_clientauth"});
        let e = explain(LEAF, ChainInput::Assumed, &reg, None);
        let method = e.steps.iter().find(|s| s.step == "method").unwrap();
        assert!(method.detail.ends_with("the nearest mTLS method is tls_client_auth"), "{}", method.detail);
        assert_eq!(e.verdict, "passed");
    }

    #[test]
    fn a_chain_whose_signature_cannot_be_checked_is_not_ok_and_the_verdict_is_conditional() {
        use crate::cli::testdata as chains;
        use crate::revocation::testdata::der as der64;
        let leaf = der64(chains::ED25519_LEAF);
        let report = chain::validate(&leaf, &[], &[der64(chains::ED25519_CA)], 1_796_169_600_000);
        let reg = tls("tls_client_auth_subject_dn", "CN=ed25519-leaf,O=Chain Test");
        let input = Input {
            leaf_der: &leaf,
            chain: ChainInput::Checked(report),
            metadata: &reg,
            jwks: None,
            revocation: None,
            unknown_client: UnknownClient::Pass,
            endpoint: None,
        };
        let e = check(&input);
        let chain = e.steps.iter().find(|s| s.step == "chain validation").unwrap();
        assert_eq!(chain.ok, None, "{chain:?}");
        assert!(chain.detail.starts_with("cannot check: "), "{chain:?}");
        assert!(e.authenticated());
        assert_eq!(
            e.condition.as_deref(),
            Some("only if the signature this tool cannot check verifies (Envoy checks it)")
        );
    }
}
