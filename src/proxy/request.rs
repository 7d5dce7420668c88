//! One HTTP request through the filter: the state machine from its headers to its verdict and reply.

use crate::config::{CertificateSource, Config, PRODUCED_HEADERS};
use crate::forwarded::source::{self, Presented};
use crate::header;
use crate::oauth::jwks::JwksUri;
use crate::oauth::registration::TLS_CLIENT_AUTH;
use crate::oauth::request::{self, Classified};
use crate::oauth::tenant::Tenant;
use crate::oauth::verdict::{self, Rejection, Verdict};
use crate::oauth::{binding, discovery, response};
use crate::proxy::decision::{Decision, Ruling};
use crate::proxy::headers::Headers;
use crate::proxy::host::{Action, CallResponse, Level, Metric, Stream};
use crate::proxy::readiness;
use crate::proxy::revocation::{Check, OcspQuestion};
use crate::proxy::worker::Worker;
use crate::revocation::OnUnavailable;
use std::rc::Rc;

/// The headers of `headers` that are one of `names` in any spelling a server may read as it: any case, and `_`
/// for `-` (CGI, WSGI, Rack and PHP read `x_mtls_client_id` as `x-mtls-client-id`). Each name once.
fn spellings_of(headers: &Headers, names: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let lengths = names.iter().fold(0, |set, wanted| set | length_bit(wanted.len()));
    for (name, _) in headers.iter() {
        if lengths & length_bit(name.len()) == 0 {
            continue;
        }
        let same = |wanted: &&str| {
            wanted.len() == name.len()
                && wanted.bytes().zip(name).all(|(w, n)| w == n.to_ascii_lowercase() || (w == b'-' && *n == b'_'))
        };
        if names.iter().any(same) {
            let name = String::from_utf8_lossy(name).into_owned();
            if !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

/// What a rejection's log line names of a request, kept from its headers (gone by its body): the path and
/// Envoy's request id.
fn named(path: &str, headers: &Headers) -> (String, String) {
    let request_id = String::from_utf8_lossy(headers.get(header::X_REQUEST_ID).unwrap_or(b"-")).into_owned();
    (path.to_string(), request_id)
}

/// A name's length as one bit of a set, lengths from 63 up sharing the last: most headers are told from every
/// name `spellings_of` looks for by one test of their length (measured in Envoy 1.40: ~700 instructions less per
/// request than comparing each header with each name).
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// Whether a request with this method may be one the filter acts on beyond stripping: a request to an endpoint
/// is a `POST` (`classify`), while resources and metadata documents may be asked for with any method. Most requests
/// through an edge proxy are API calls; without `resources` or `discovery` they are done with once stripped
/// (~600 instructions less per request than reading and classifying their path).
fn may_act_on(config: &Config, method: &[u8]) -> bool {
    method.eq_ignore_ascii_case(b"POST") || !config.resources.is_empty() || config.discovery.is_some()
}

/// Where a request is in the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Not (or no longer) a request this filter acts on.
    Passive,
    /// A token request: headers held, the body being buffered.
    ReadingBody,
    /// Headers and body held while the client's JWK Set is fetched by the call `token`.
    AwaitingJwks { token: u32, uri: JwksUri },
    /// Headers and body held while the OCSP responder answers the call `token` about the client's certificate.
    AwaitingOcsp { token: u32, question: OcspQuestion },
    /// Held while another request's OCSP call about the same certificate is under way, until `deadline_ms`.
    AwaitingStatus { deadline_ms: u64 },
    /// A metadata request (`discovery`): its response is amended if it is a JSON document.
    MetadataRequested,
    /// The metadata response's body is being held to be amended.
    AmendingMetadata,
}

/// What a decision leaves the request: flowing again, answered by the filter, or held for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Continue,
    /// A local reply was sent.
    Replied,
    /// Held until a call answers (`State::AwaitingJwks`, `AwaitingOcsp`) or another's does (`AwaitingStatus`).
    Waiting,
}

/// One HTTP request through the filter.
pub struct RequestFilter {
    worker: Rc<Worker>,
    state: State,
    body_size: usize,
    saw_body: bool,
    client_id: Option<String>,
    /// The token request's Authorization header (HTTP Basic may name the client), read with the headers.
    authorization: Option<Vec<u8>>,
    presented: Option<Presented>,
    /// A wait for another request's OCSP call ran out: no longer wait.
    waited: bool,
    /// The tenant a templated endpoint named: the client is looked up in it only.
    tenant: Option<Tenant>,
    /// The path and Envoy's request id, for a rejection's log line (kept where a decision is made).
    path: String,
    request_id: String,
}

impl RequestFilter {
    pub fn new(worker: Rc<Worker>) -> RequestFilter {
        RequestFilter {
            worker,
            state: State::Passive,
            body_size: 0,
            saw_body: false,
            client_id: None,
            authorization: None,
            presented: None,
            waited: false,
            tenant: None,
            path: String::new(),
            request_id: String::new(),
        }
    }

    pub fn on_request_headers(&mut self, s: &dyn Stream, end_of_stream: bool) -> Action {
        let config = &self.worker.config;
        // One copy of the header map serves every read of the request: each host call costs more than
        // copying the map (measured with callgrind in Envoy 1.40: ~3,000 instructions a call). Headers are only
        // removed when present: each removal also makes Envoy clear the route cache.
        let headers = s.request_headers();
        let get = |name: &str| headers.get(name);
        // Read what the certificate source needs before anything inbound is stripped.
        let forwarded: Vec<Vec<u8>> = source::forwarded_header(config.certificate_source)
            .map(|h| headers.all(h).map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        if headers.is_malformed() {
            // A map the proxy garbled shows no header: remove them all rather than let one through.
            for name in config.stripped_headers() {
                s.set_request_header(name, None);
            }
        }
        // The names of config.stripped_headers(), without allocating a list on every request: a name listed
        // twice (the default forwarding header is `client-cert`, one of the produced headers) is found once.
        let [a, b, c, d, e] = PRODUCED_HEADERS;
        for name in spellings_of(&headers, &[a, b, c, d, e, config.forward_certificate.header.as_str()]) {
            s.set_request_header(&name, None);
        }
        // For a forwarded source, whether the direct peer is a trusted forwarder, decided once (it parses the
        // peer's certificate). Without a forwarded header there is nothing to trust.
        let trusted = (config.certificate_source != CertificateSource::Connection).then(|| {
            let trusted = !forwarded.is_empty() && source::is_trusted_forwarder(config, &self.worker.read_peer(s));
            // XFCC from a peer we do not trust must not reach the AS either.
            if config.certificate_source == CertificateSource::Xfcc && !forwarded.is_empty() && !trusted {
                s.set_request_header(header::X_FORWARDED_CLIENT_CERT, None);
            }
            trusted
        });
        let presented = |s: &dyn Stream| {
            let worker = &self.worker;
            let mut decode = |der| worker.certificates.borrow_mut().of_der(der);
            match trusted {
                Some(trusted) => source::forwarded_certificate(config, trusted, &forwarded, &mut decode),
                None => source::presented(config, &worker.read_peer(s), &[], &mut decode),
            }
        };
        let method = get(":method").unwrap_or_default();
        let path = get(":path").unwrap_or_default();
        if let Some(ready) = &config.readiness_path {
            if path.split(|b| *b == b'?' || *b == b'#').next() == Some(ready.as_bytes()) {
                let answer = readiness::answer(method, self.worker.readiness(s));
                s.send_response(answer.status, answer.details, &answer.headers, answer.body.as_bytes());
                return Action::Pause;
            }
        }
        if !may_act_on(config, method) {
            return Action::Continue;
        }
        let path_text = String::from_utf8_lossy(path);
        if let Some(resource) = config.resource(&path_text) {
            (self.path, self.request_id) = named(&path_text, &headers);
            if let Err(rejection) = request::single_token(path, &headers) {
                self.reject(s, &rejection);
                return Action::Pause;
            }
            let require_binding = resource.require_binding;
            let presented = presented(s);
            return self.check_resource(s, require_binding, presented);
        }
        if let Some(d) = config.discovery.as_ref().filter(|_| method == b"GET") {
            if let Some(tenant) = d.document(&path_text) {
                // The filter rewrites the JSON, so it must arrive uncompressed.
                s.set_request_header(header::ACCEPT_ENCODING, None);
                self.tenant = tenant;
                self.state = State::MetadataRequested;
                return Action::Continue;
            }
        }
        let classified = request::classify(config, method, path, &headers);
        match classified {
            Classified::Ignore => Action::Continue,
            Classified::Reject(rejection) => {
                (self.path, self.request_id) = named(&path_text, &headers);
                self.reject(s, &rejection);
                Action::Pause
            }
            Classified::Enforce(tenant) => {
                self.tenant = tenant;
                (self.path, self.request_id) = named(&path_text, &headers);
                self.authorization = get(header::AUTHORIZATION).map(<[u8]>::to_vec);
                self.presented = Some(presented(s));
                if end_of_stream {
                    self.decide(s, &[]).into()
                } else {
                    self.state = State::ReadingBody;
                    Action::Pause
                }
            }
        }
    }

    pub fn on_request_body(&mut self, s: &dyn Stream, body_size: usize, end_of_stream: bool) -> Action {
        match self.state {
            State::ReadingBody => {}
            State::AwaitingJwks { .. } | State::AwaitingOcsp { .. } | State::AwaitingStatus { .. } => {
                return Action::Pause
            }
            _ => return Action::Continue,
        }
        self.saw_body = true;
        self.body_size = body_size;
        if body_size > self.worker.config.max_body_bytes {
            self.state = State::Passive;
            self.reject(s, &Rejection::too_large(self.worker.config.max_body_bytes));
            return Action::Pause;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = s.request_body(body_size).unwrap_or_default();
        self.decide(s, &body).into()
    }

    /// A protected resource: the verified token's `cnf` must name the presented certificate (RFC 8705 §3).
    fn check_resource(&mut self, s: &dyn Stream, require_binding: bool, presented: Presented) -> Action {
        let config = &self.worker.config;
        let presented_x5t = match &presented {
            Presented::Certificate { certificate, .. } => Some(certificate.x5t_s256()),
            _ => None,
        };
        // Each read of dynamic metadata costs Envoy ~20,000-30,000 instructions (it walks the path as CEL values
        // and serializes what it finds), so the claim is read first: Envoy finds a path under the payload's key
        // only through the payload, so a claim found there is a verified payload's. The whole payload is read
        // only when there is no claim, to tell an unbound token from no verified token at all.
        let meta = &config.jwt_payload_metadata;
        let payload = ["metadata", "filter_metadata", meta.namespace.as_str(), meta.key.as_str()];
        let cnf = s
            .property(&[payload[0], payload[1], payload[2], payload[3], "cnf", "x5t#S256"])
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|v| !v.is_empty());
        let token = match cnf.as_deref() {
            Some(x5t) => binding::Token::Bound(x5t),
            None if s.property(&payload).is_some_and(|p| !p.is_empty()) => binding::Token::Unbound,
            None => binding::Token::Unverified,
        };
        let evidence = binding::Evidence { token, presented_x5t_s256: presented_x5t.as_deref() };
        let verdict = binding::check(&evidence, require_binding);
        // Kept for the rejection log line (its thumbprint).
        self.presented = Some(presented);
        match verdict {
            Ok(()) => {
                s.metric(Metric::ResourceAllowed, 1);
                Action::Continue
            }
            Err(rejection) => {
                self.reject(s, &rejection);
                Action::Pause
            }
        }
    }

    /// Holds a metadata document's response until its body is complete, so it can be amended.
    pub fn on_response_headers(&mut self, s: &dyn Stream, end_of_stream: bool) -> Action {
        if self.state != State::MetadataRequested || end_of_stream {
            return Action::Continue;
        }
        let ok = s.response_header(":status").as_deref() == Some(b"200".as_slice());
        let json = s
            .response_header(header::CONTENT_TYPE)
            .is_some_and(|t| String::from_utf8_lossy(&t).to_ascii_lowercase().contains("json"));
        let encoded = s.response_header(header::CONTENT_ENCODING).is_some_and(|e| !e.eq_ignore_ascii_case(b"identity"));
        if !ok || !json || encoded {
            return Action::Continue;
        }
        self.state = State::AmendingMetadata;
        Action::Pause
    }

    pub fn on_response_body(&mut self, s: &dyn Stream, body_size: usize, end_of_stream: bool) -> Action {
        if self.state != State::AmendingMetadata {
            return Action::Continue;
        }
        let Some(d) = &self.worker.config.discovery else { return Action::Continue };
        if body_size > d.max_bytes {
            self.state = State::Passive;
            s.log(Level::Warn, "discovery: metadata document larger than discovery.max_bytes; passed on unchanged");
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.state = State::Passive;
        let body = s.response_body(body_size).unwrap_or_default();
        match discovery::amend(&body, d.mtls_endpoint_aliases.as_ref(), self.tenant.as_ref()) {
            Ok(amended) => {
                s.replace_response_body(body_size, &amended);
                s.set_response_header(header::CONTENT_LENGTH, Some(amended.len().to_string().as_bytes()));
                s.metric(Metric::DiscoveryAmended, 1);
            }
            Err(e) => {
                s.log(Level::Warn, &format!("discovery: passed on unchanged: {}", response::for_log(&e.to_string())))
            }
        }
        Action::Continue
    }

    /// HTTP/2 (and chunked HTTP/1.1) bodies may end with trailers instead of an end-of-stream data frame.
    pub fn on_request_trailers(&mut self, s: &dyn Stream) -> Action {
        match self.state {
            State::ReadingBody => {
                self.saw_body = true;
                let body = s.request_body(self.body_size).unwrap_or_default();
                self.decide(s, &body).into()
            }
            State::AwaitingJwks { .. } | State::AwaitingOcsp { .. } | State::AwaitingStatus { .. } => Action::Pause,
            State::Passive | State::MetadataRequested | State::AmendingMetadata => Action::Continue,
        }
    }

    /// A JWK Set or an OCSP response fetched for this request arrived (or failed): store it for every worker
    /// and decide.
    pub fn on_call_response(&mut self, s: &dyn Stream, token: u32, response: CallResponse) {
        match &self.state {
            State::AwaitingJwks { token: expected, uri } if *expected == token => {
                let uri = uri.clone();
                self.worker.store_jwks(s, &uri, &response);
            }
            State::AwaitingOcsp { token: expected, question } if *expected == token => {
                let (Some(r), Some(config)) = (&self.worker.revocation, &self.worker.config.revocation) else { return };
                r.store_ocsp(s, config, question, &response);
            }
            _ => return,
        }
        self.state = State::ReadingBody;
        if self.finish(s, false) == Outcome::Continue {
            s.resume_request();
        }
    }

    /// Held for another request's OCSP call (`AwaitingStatus`).
    pub fn is_waiting_for_status(&self) -> bool {
        matches!(self.state, State::AwaitingStatus { .. })
    }

    /// A request held for another's OCSP call looks again: decided if the status is in, or once its deadline
    /// has passed (it then asks the responder itself, or has no status). `false` while it still waits.
    pub fn on_wake(&mut self, s: &dyn Stream) -> bool {
        let State::AwaitingStatus { deadline_ms } = self.state else { return true };
        self.waited = s.now_ms() >= deadline_ms;
        self.state = State::ReadingBody;
        match self.finish(s, false) {
            Outcome::Continue => {
                s.resume_request();
                true
            }
            Outcome::Replied => true,
            Outcome::Waiting => {
                if let State::AwaitingStatus { .. } = self.state {
                    // Still waiting: for the same deadline.
                    self.state = State::AwaitingStatus { deadline_ms };
                }
                !self.is_waiting_for_status()
            }
        }
    }

    /// At the end of the stream: a request held for its body that never got one means the proxy did not
    /// deliver body callbacks after a paused header callback.
    pub fn on_log(&self, s: &dyn Stream) {
        if self.state == State::ReadingBody && !self.saw_body {
            s.log(
                Level::Error,
                "a token request was held for its body but the body never reached the filter: set \
                 allow_on_headers_stop_iteration: true in the wasm filter's config (Envoy >= 1.35)",
            );
        }
    }

    fn decide(&mut self, s: &dyn Stream, body: &[u8]) -> Outcome {
        match request::client_id(body, self.authorization.as_deref()) {
            Ok(id) => {
                self.client_id = id;
                self.finish(s, true)
            }
            Err(rejection) => {
                self.reject(s, &rejection);
                Outcome::Replied
            }
        }
    }

    fn finish(&mut self, s: &dyn Stream, refetch_allowed: bool) -> Outcome {
        let worker = self.worker.clone();
        let presented = self.presented.clone().unwrap_or(Presented::None);
        let mut directory = worker.directory(s, self.tenant.as_ref(), refetch_allowed);
        let verdict =
            verdict::decide(self.client_id.as_deref(), &presented, worker.config.unknown_client, &mut directory);
        match verdict {
            Verdict::Authenticated(a) => self.revocation_checked(s, a),
            Verdict::Pass(why) => {
                s.metric(Metric::Passed, 1);
                s.set_decision(&Decision {
                    tenant: self.tenant_name(),
                    ..Decision::new(Ruling::Passed(why), self.client_id.as_deref(), self.certificate())
                });
                self.state = State::Passive;
                Outcome::Continue
            }
            Verdict::Reject(rejection) => {
                self.reject(s, &rejection);
                Outcome::Replied
            }
            Verdict::FetchJwks(uri) => {
                let cluster = worker.config.jwks_cluster.clone().unwrap_or_default();
                if !worker.claim_jwks_fetch(s, &uri) {
                    return self.finish(s, false);
                }
                match s.http_get(
                    &cluster,
                    &uri.authority,
                    &uri.path,
                    &[(header::ACCEPT, "application/json")],
                    worker.config.jwks_timeout_ms,
                ) {
                    Ok(token) => {
                        self.state = State::AwaitingJwks { token, uri };
                        Outcome::Waiting
                    }
                    Err(e) => {
                        worker.store_jwks(s, &uri, &CallResponse::default());
                        s.log(Level::Warn, &format!("jwks: cannot call cluster {cluster}: {e}"));
                        self.finish(s, false)
                    }
                }
            }
        }
    }

    /// An authenticated `tls_client_auth` client's certificate is checked for revocation (when configured)
    /// before the request goes on annotated. A self-signed registration is pinned by its key: not revocable.
    fn revocation_checked(&mut self, s: &dyn Stream, a: verdict::Authenticated) -> Outcome {
        let worker = self.worker.clone();
        let (Some(r), Some(config)) = (&worker.revocation, &worker.config.revocation) else {
            return self.annotate(s, &a);
        };
        if a.method != TLS_CLIENT_AUTH {
            return self.annotate(s, &a);
        }
        match r.check(s, config, &a.certificate) {
            Check::Good | Check::NotCovered => self.annotate(s, &a),
            Check::Revoked(by) => {
                s.log(
                    Level::Info,
                    &format!(
                        "revocation: the certificate of client_id={} is revoked ({by})",
                        response::for_log(&a.client_id)
                    ),
                );
                self.reject(s, &Rejection::revoked());
                Outcome::Replied
            }
            Check::NoStatus(why) => self.unavailable(s, &a, &why),
            Check::Wait => self.wait_for_another_call(s, &a, config.timeout_ms),
            Check::Ask(question) => {
                if !r.claim_ocsp(s, config, &question) {
                    return self.wait_for_another_call(s, &a, config.timeout_ms);
                }
                let extra = [(header::ACCEPT, "application/ocsp-response")];
                match s.http_get(
                    &config.cluster,
                    &question.responder.authority,
                    &question.path,
                    &extra,
                    config.timeout_ms,
                ) {
                    Ok(token) => {
                        self.state = State::AwaitingOcsp { token, question };
                        Outcome::Waiting
                    }
                    Err(e) => {
                        r.store_ocsp(s, config, &question, &CallResponse::default());
                        self.unavailable(s, &a, &format!("cannot call cluster {}: {e}", config.cluster))
                    }
                }
            }
        }
    }

    /// Holds the request while another request's OCSP call about the same certificate is under way (at most
    /// that call's timeout, and a little more); once such a wait has run out, there is no status.
    fn wait_for_another_call(&mut self, s: &dyn Stream, a: &verdict::Authenticated, timeout_ms: u64) -> Outcome {
        if self.waited {
            return self.unavailable(s, a, "the OCSP call for this certificate did not complete in time");
        }
        self.state = State::AwaitingStatus { deadline_ms: s.now_ms().saturating_add(timeout_ms).saturating_add(200) };
        Outcome::Waiting
    }

    /// No fresh revocation status: `on_unavailable` decides.
    fn unavailable(&mut self, s: &dyn Stream, a: &verdict::Authenticated, why: &str) -> Outcome {
        let pass = self.worker.config.revocation.as_ref().is_some_and(|c| c.on_unavailable == OnUnavailable::Pass);
        if pass {
            s.metric(Metric::RevocationUnavailablePassed, 1);
            s.log(
                Level::Warn,
                &format!(
                    "revocation: no fresh status for the certificate of client_id={}, passed (on_unavailable: pass): {}",
                    response::for_log(&a.client_id),
                    response::for_log(why)
                ),
            );
            return self.annotate(s, a);
        }
        s.log(
            Level::Warn,
            &format!(
                "revocation: no fresh status for the certificate of client_id={}: {}",
                response::for_log(&a.client_id),
                response::for_log(why)
            ),
        );
        self.reject(s, &Rejection::revocation_unavailable());
        Outcome::Replied
    }

    /// The request goes on to the AS annotated with the authenticated client.
    fn annotate(&mut self, s: &dyn Stream, a: &verdict::Authenticated) -> Outcome {
        let worker = self.worker.clone();
        let fc = &worker.config.forward_certificate;
        let forwarded = worker.certificates.borrow_mut().forwarded(&a.certificate, fc.format);
        // Every inbound copy of these was removed with the request headers: adding is enough.
        s.add_request_header(header::X_MTLS_CLIENT_ID, a.client_id.as_bytes());
        s.add_request_header(header::X_MTLS_AUTH_METHOD, a.method.as_bytes());
        s.add_request_header(header::X_MTLS_X5T_S256, a.x5t_s256.as_bytes());
        s.add_request_header(&fc.header, forwarded.as_bytes());
        s.metric(Metric::Authenticated, 1);
        s.set_decision(&Decision {
            method: Some(a.method),
            tenant: self.tenant_name(),
            ..Decision::new(Ruling::Authenticated, Some(&a.client_id), Some(&a.certificate))
        });
        if worker.logs(Level::Debug) {
            s.log(
                Level::Debug,
                &format!(
                    "authenticated client_id={} method={} x5t#S256={}",
                    response::for_log(&a.client_id),
                    a.method,
                    a.x5t_s256
                ),
            );
        }
        self.state = State::Passive;
        Outcome::Continue
    }

    /// The request's tenant, for the access log and log lines.
    fn tenant_name(&self) -> Option<String> {
        self.tenant.as_ref().map(|t| response::bounded(t.as_str()))
    }

    /// The certificate the request presented, once read.
    fn certificate(&self) -> Option<&crate::cert::Certificate> {
        match &self.presented {
            Some(Presented::Certificate { certificate, .. }) => Some(certificate),
            _ => None,
        }
    }

    fn reject(&mut self, s: &dyn Stream, rejection: &Rejection) {
        self.state = State::Passive;
        let rejection = &rejection.clone().challenging(self.authorization.as_deref());
        let decision = Decision {
            tenant: self.tenant_name(),
            ..Decision::new(Ruling::Rejected(rejection.reason), self.client_id.as_deref(), self.certificate())
        };
        s.metric(Metric::Rejected(rejection.reason), 1);
        if self.worker.logs(Level::Info) {
            s.log(
                Level::Info,
                &format!(
                    "rejected client_id={}{} reason={} x5t#S256={} sha256={} status={} path={} request_id={}: {}",
                    response::for_log(self.client_id.as_deref().unwrap_or("-")),
                    decision.tenant.as_deref().map(|t| format!(" tenant={}", response::for_log(t))).unwrap_or_default(),
                    rejection.reason.name(),
                    decision.x5t_s256.as_deref().unwrap_or("-"),
                    decision.sha256.as_deref().unwrap_or("-"),
                    rejection.status,
                    response::for_log(&self.path),
                    response::for_log(&self.request_id),
                    response::for_log(&rejection.description)
                ),
            );
        }
        s.set_decision(&decision);
        let headers = response::headers(rejection);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let details = format!("oauth_mtls.rejected.{}", rejection.reason.name());
        s.send_response(rejection.status, &details, &headers, response::body(rejection).as_bytes());
    }
}

impl From<Outcome> for Action {
    fn from(o: Outcome) -> Action {
        match o {
            Outcome::Continue => Action::Continue,
            Outcome::Replied | Outcome::Waiting => Action::Pause,
        }
    }
}

#[cfg(test)]
#[path = "tests/mod.rs"]
mod tests;
