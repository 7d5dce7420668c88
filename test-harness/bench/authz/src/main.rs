//! The benchmark's variant E: an Envoy ext_authz v3 gRPC service making the filter's decision with its core.
//!
//! Usage: `bench-authz ADDR REGISTRATIONS.json` (ADDR like 127.0.0.1:9191; the JSON is an array of RFC 7591
//! registrations, or `{"clients": [...]}`). Envoy must send the peer certificate
//! (`include_peer_certificate: true`) and the body (`with_request_body`, `pack_as_bytes: true`). The decision
//! is `oauth_mtls_filter::oauth::verdict::decide`, the same function the filter runs; an authenticated request gets
//! the filter's headers (`x-mtls-client-id`, `x-mtls-auth-method`, `x-mtls-x5t-s256`, RFC 9440 `client-cert`),
//! a refused one the filter's 401 JSON. Runs on one thread (a current-thread runtime), like the filter on one
//! Envoy worker.
//!
//! One difference from the filter: ext_authz does not tell the service whether Envoy validated the chain
//! (the attribute context has no such field), so the certificate counts as validated. A real deployment would
//! need `require_client_certificate` + no `ACCEPT_UNTRUSTED`, or a header set by Envoy; it costs the same.
//!
//! Variant H-ext: a request under `/api/` (the bench's protected API) is the filter's `resources` check done
//! here instead: `jwt_authn` runs before ext_authz and leaves the verified token's payload in dynamic metadata
//! (`payload_in_metadata: jwt_payload`), which ext_authz sends along (`metadata_context_namespaces:
//! [envoy.filters.http.jwt_authn]`); the payload's `cnf."x5t#S256"` must equal the thumbprint of the presented
//! certificate, as the filter's `oauth::binding::check` decides (private to the filter's crate, so mirrored in
//! `bound_to_presented`), else `401` with the filter's `WWW-Authenticate: Bearer error="invalid_token"`. The
//! prefix is matched as a plain prefix (the filter reads a path more widely; the bench's path is plain).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HeaderAppendAction, HttpStatusCode,
};
use envoy_types::ext_authz::v3::{CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder};
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::Value;
use oauth_mtls_filter::config::{ForwardFormat, UnknownClient, PRODUCED_HEADERS};
use oauth_mtls_filter::forwarded::source::{PeerError, Presented, SourceError};
use oauth_mtls_filter::oauth::jwks::{Freshness, JwksUri};
use oauth_mtls_filter::oauth::registration::Client;
use oauth_mtls_filter::oauth::verdict::{self, Directory, JwksView, Lookup, Verdict};
use oauth_mtls_filter::proxy::cache::Certificates;
use oauth_mtls_filter::proxy::memory::Budget;
use tonic::{Request, Response, Status};

thread_local! {
    /// The compiled registrations, per thread (`Client` is shared by `Rc`, as in the filter).
    static CLIENTS: RefCell<HashMap<String, Rc<Client>>> = RefCell::new(HashMap::new());
    /// Client certificates decoded once, per thread.
    static CERTIFICATES: RefCell<Certificates> = RefCell::new(Certificates::new(1024, Budget { total: Budget::DEFAULT_BYTES as usize }.certificates()));
}

/// The bench's protected API (variant H-ext).
const RESOURCE_PREFIX: &str = "/api/";
/// Where `jwt_authn` leaves the verified payload (`payload_in_metadata`), as the filter's defaults say.
const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";
const JWT_PAYLOAD: &str = "jwt_payload";

struct Registrations;

impl Directory for Registrations {
    fn client(&mut self, client_id: &str) -> Lookup {
        CLIENTS.with(|c| match c.borrow().get(client_id) {
            Some(found) => Lookup::Found(Rc::clone(found)),
            None => Lookup::Unknown,
        })
    }

    fn jwks(&mut self, _uri: &JwksUri) -> JwksView {
        JwksView::Known {
            thumbprints: Vec::new(),
            freshness: Freshness::Fresh,
            may_refetch: false,
            last_error: Some("no jwks_uri in the bench".into()),
        }
    }
}

/// `%XX` decoding of Envoy's URL-encoded PEM.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

#[derive(Default)]
struct Service;

#[tonic::async_trait]
impl Authorization for Service {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let req = request.into_inner();
        let attrs = req.attributes.unwrap_or_default();
        let http = attrs.request.and_then(|r| r.http).unwrap_or_default();
        let cert_pem = attrs.source.map(|s| s.certificate).unwrap_or_default();

        if http.path.starts_with(RESOURCE_PREFIX) {
            let presented = if cert_pem.is_empty() { None } else { x5t_s256_of(&cert_pem) };
            let resp = match bound_to_presented(attrs.metadata_context.as_ref(), presented.as_deref()) {
                Ok(()) => ok(OkHttpResponseBuilder::new()),
                Err(description) => invalid_token(description),
            };
            return Ok(Response::new(resp));
        }
        let is_token = http.method == "POST" && http.path.split('?').next() == Some("/token");
        if !is_token {
            return Ok(Response::new(ok(OkHttpResponseBuilder::new())));
        }
        let body: &[u8] = if http.raw_body.is_empty() { http.body.as_bytes() } else { &http.raw_body };
        let client_id = match oauth_mtls_filter::oauth::form::client_id(body) {
            Ok(id) => id,
            Err(e) => return Ok(Response::new(denied(400, "invalid_request", &e.to_string()))),
        };
        let presented = if cert_pem.is_empty() {
            Presented::None
        } else {
            match oauth_mtls_filter::cert::pem::decode_leaf(&percent_decode(&cert_pem)) {
                // Decoded once per certificate, as the filter does (a per-thread cache keyed by SHA-256).
                Ok(der) => Presented::Certificate {
                    certificate: CERTIFICATES.with(|c| c.borrow_mut().of_der(der)),
                    validated: true,
                },
                Err(e) => Presented::Malformed(SourceError::Peer(PeerError::Pem(e))),
            }
        };
        let v = verdict::decide(client_id.as_deref(), &presented, UnknownClient::Pass, &mut Registrations);
        let resp = match v {
            Verdict::Authenticated(a) => {
                // Set, replacing any inbound copy (Envoy applies headers_to_remove after these, so they must
                // not be removed as well: before, they were, and the upstream never saw them).
                let set = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
                let mut b = OkHttpResponseBuilder::new();
                b.add_header("x-mtls-client-id", a.client_id, set, false);
                b.add_header("x-mtls-auth-method", a.method, set, false);
                b.add_header("x-mtls-x5t-s256", a.x5t_s256, set, false);
                if let Presented::Certificate { certificate, .. } = &presented {
                    b.add_header(
                        "client-cert",
                        oauth_mtls_filter::forwarded::forward::encode(&certificate.der, ForwardFormat::Rfc9440),
                        set,
                        false,
                    );
                }
                b.remove_header("client-cert-chain");
                with_status_ok(b)
            }
            Verdict::Pass(_) => ok(OkHttpResponseBuilder::new()),
            Verdict::Reject(r) => denied(r.status, r.error, &r.description),
            Verdict::FetchJwks(_) => denied(401, "invalid_client", "jwks_uri is not supported by the bench service"),
        };
        Ok(Response::new(resp))
    }
}

/// The `x5t#S256` of the presented certificate (Envoy's URL-encoded PEM), its leaf decoded once per thread.
fn x5t_s256_of(cert_pem: &str) -> Option<String> {
    let der = oauth_mtls_filter::cert::pem::decode_leaf(&percent_decode(cert_pem)).ok()?;
    Some(CERTIFICATES.with(|c| c.borrow_mut().of_der(der)).x5t_s256())
}

/// A field of a protobuf `Struct` value, if the value is a struct.
fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match &value.kind {
        Some(Kind::StructValue(s)) => s.fields.get(name),
        _ => None,
    }
}

/// The filter's resource check (`oauth::binding::check` with `require_binding: true`): a verified payload
/// whose `cnf."x5t#S256"` is the presented certificate's thumbprint, compared in constant time.
fn bound_to_presented(metadata: Option<&Metadata>, presented: Option<&str>) -> Result<(), &'static str> {
    let payload = metadata.and_then(|m| m.filter_metadata.get(JWT_AUTHN)).and_then(|s| s.fields.get(JWT_PAYLOAD));
    let Some(payload) = payload else {
        return Err("no verified access token: jwt_authn did not verify a token for this path");
    };
    let cnf = field(payload, "cnf").and_then(|c| field(c, "x5t#S256")).and_then(|v| match &v.kind {
        Some(Kind::StringValue(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    });
    let Some(bound) = cnf else {
        return Err("the access token is not certificate-bound (no cnf.x5t#S256)");
    };
    let Some(presented) = presented else {
        return Err("no client certificate was presented, and the access token is certificate-bound");
    };
    let same = bound.len() == presented.len()
        && bound.bytes().zip(presented.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(())
    } else {
        Err("the access token is bound to another certificate")
    }
}

/// RFC 6750 §3: the resource server's 401, as the filter answers it.
fn invalid_token(description: &str) -> CheckResponse {
    let mut b = DeniedHttpResponseBuilder::new();
    b.set_http_status(HttpStatusCode::Unauthorized);
    let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
    b.add_header("www-authenticate", challenge, None, false);
    let mut r = CheckResponse::with_status(Status::unauthenticated(""));
    r.set_http_response(b);
    r
}

/// A request allowed without an annotation: like the filter, every inbound copy of its headers is removed.
fn ok(mut b: OkHttpResponseBuilder) -> CheckResponse {
    for h in PRODUCED_HEADERS {
        b.remove_header(h);
    }
    with_status_ok(b)
}

fn with_status_ok(b: OkHttpResponseBuilder) -> CheckResponse {
    let mut r = CheckResponse::with_status(Status::ok(""));
    r.set_http_response(b);
    r
}

fn denied(status: u16, error: &str, description: &str) -> CheckResponse {
    let code = if status == 400 { HttpStatusCode::BadRequest } else { HttpStatusCode::Unauthorized };
    let mut b = DeniedHttpResponseBuilder::new();
    b.set_http_status(code);
    b.add_header("content-type", "application/json", None, false);
    b.add_header("cache-control", "no-store", None, false);
    b.set_body(serde_json::json!({"error": error, "error_description": description}).to_string());
    let mut r = CheckResponse::with_status(Status::permission_denied(""));
    r.set_http_response(b);
    r
}

fn load(path: &str) -> Result<HashMap<String, Rc<Client>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let doc = oauth_mtls_filter::registry::parse_document(&bytes).map_err(|e| format!("{path}: {e}"))?;
    for (id, why) in &doc.refused {
        eprintln!("bench-authz: registration {id} refused: {why}");
    }
    let mut out = HashMap::new();
    for stored in &doc.clients {
        let client = stored.compile().map_err(|e| format!("{}: {e}", stored.client_id))?;
        out.insert(client.client_id.clone(), Rc::new(client));
    }
    Ok(out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bench-authz ADDR REGISTRATIONS.json");
        std::process::exit(2);
    };
    let clients = match load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-authz: {e}");
            std::process::exit(2);
        }
    };
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-authz: bad address {addr}: {e}");
            std::process::exit(2);
        }
    };
    eprintln!("bench-authz: {} registrations, listening on {addr}", clients.len());
    CLIENTS.with(|c| *c.borrow_mut() = clients);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-authz: runtime: {e}");
            std::process::exit(1);
        }
    };
    let served =
        rt.block_on(tonic::transport::Server::builder().add_service(AuthorizationServer::new(Service)).serve(addr));
    if let Err(e) = served {
        eprintln!("bench-authz: {e}");
        std::process::exit(1);
    }
}
