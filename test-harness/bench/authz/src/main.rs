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

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use envoy_types::ext_authz::v3::pb::{Authorization, AuthorizationServer, CheckRequest, CheckResponse, HttpStatusCode};
use envoy_types::ext_authz::v3::{CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder};
use oauth_mtls_filter::config::{ForwardFormat, UnknownClient};
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
                let mut b = OkHttpResponseBuilder::new();
                b.add_header("x-mtls-client-id", a.client_id, None, false);
                b.add_header("x-mtls-auth-method", a.method, None, false);
                b.add_header("x-mtls-x5t-s256", a.x5t_s256, None, false);
                if let Presented::Certificate { certificate, .. } = &presented {
                    b.add_header(
                        "client-cert",
                        oauth_mtls_filter::forwarded::forward::encode(&certificate.der, ForwardFormat::Rfc9440),
                        None,
                        false,
                    );
                }
                ok(b)
            }
            Verdict::Pass(_) => ok(OkHttpResponseBuilder::new()),
            Verdict::Reject(r) => denied(r.status, r.error, &r.description),
            Verdict::FetchJwks(_) => denied(401, "invalid_client", "jwks_uri is not supported by the bench service"),
        };
        Ok(Response::new(resp))
    }
}

fn ok(mut b: OkHttpResponseBuilder) -> CheckResponse {
    // Like the filter: the headers it produces never come from the client.
    for h in ["x-mtls-client-id", "x-mtls-auth-method", "x-mtls-x5t-s256"] {
        b.remove_header(h);
    }
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
