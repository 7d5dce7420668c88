//! The filter's state machines driven through the fake proxy, as Envoy drives them.

use super::*;
use crate::config::Config;
use crate::proxy::fake::Fake;
use crate::proxy::host::Host;
use crate::proxy::worker::{LOAD_TICK_MS, TICK_MS};
use crate::registry::load::Budget;
use crate::registry::{self, Lease};
use crate::testdata::{der, FORWARDER, LEAF, SELF_SIGNED_1, SELF_SIGNED_2};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

mod connections;
mod discovery;
mod forwarded;
mod jwks;
mod memory;
mod observability;
mod refresh;
mod resources;
mod revocation;
mod tenants;
mod token_requests;

const DN: &str = "CN=dn-client,OU=Payments,O=Example Bank,C=GB";

fn worker(config: &str) -> Rc<Worker> {
    Rc::new(Worker::new(Config::parse(config.as_bytes()).unwrap(), "test", 1))
}

fn dn_worker() -> Rc<Worker> {
    worker(&format!(
        r#"{{"clients": [{{"client_id": "dn", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}},
                         {{"client_id": "web", "token_endpoint_auth_method": "client_secret_basic"}}]}}"#
    ))
}

fn token_request<'a>(fake: &'a Fake, extra: &[(&str, &str)]) -> &'a Fake {
    let mut headers =
        vec![(":method", "POST"), (":path", "/token"), ("content-type", "application/x-www-form-urlencoded")];
    headers.extend_from_slice(extra);
    fake.request(&headers)
}

/// Runs a whole request: headers, then the body in the given chunks. Returns the last action.
fn send(filter: &mut RequestFilter, fake: &Fake, chunks: &[&[u8]]) -> Action {
    let action = filter.on_request_headers(fake, chunks.is_empty());
    if chunks.is_empty() || action == Action::Pause && fake.reply.borrow().is_some() {
        return action;
    }
    assert_eq!(action, Action::Pause, "a token request is held until its body is read");
    let mut last = action;
    let mut size = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        fake.body.borrow_mut().extend_from_slice(chunk);
        size += chunk.len();
        last = filter.on_request_body(fake, size, i + 1 == chunks.len());
        if fake.reply.borrow().is_some() {
            break;
        }
    }
    last
}

fn xfcc_worker() -> Rc<Worker> {
    worker(&format!(
        r#"{{"certificate_source": "xfcc", "trusted_forwarders": [{{"uri_san": "spiffe://example.org/front-proxy"}}],
            "clients": [{{"client_id": "dn", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}]}}"#
    ))
}

/// Every byte but RFC 3986's unreserved ones percent-encoded.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn xfcc_for(pem: &str) -> String {
    format!("By=spiffe://example.org/as;Cert=\"{}\";Subject=\"x\"", percent_encoded(pem))
}

fn registry_worker(extra: &str) -> Rc<Worker> {
    worker(&format!(
        r#"{{"unknown_client": "reject", "registry": {{"cluster": "registry", "authority": "registry.local", "path": "/clients",
             "refresh_seconds": 10, "max_stale_seconds": 60, "buckets": 4}}{extra}}}"#
    ))
}

fn registry_doc(ids: &[&str]) -> String {
    let items: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"client_id": "{id}", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// A refresh begins: tick, then answer the call the worker made (a document is then loaded over ticks).
fn start_refresh(w: &Worker, fake: &Fake, response: CallResponse) {
    let before = fake.calls.borrow().len();
    w.on_tick(fake);
    assert_eq!(fake.calls.borrow().len(), before + 1, "a refresh was due");
    let token = fake.last_call().unwrap().token;
    assert!(w.is_registry_call(token));
    w.on_registry_response(fake, token, response);
}

/// Ticks until the load in progress ends; returns how many ticks it took.
fn finish_load(w: &Worker, fake: &Fake) -> usize {
    let mut ticks = 0;
    while w.is_loading() {
        w.on_tick(fake);
        ticks += 1;
        assert!(ticks < 100_000, "a load always ends");
    }
    ticks
}

/// One whole refresh: the call, its answer, and the load if there is one.
fn refresh(w: &Worker, fake: &Fake, response: CallResponse) {
    start_refresh(w, fake, response);
    finish_load(w, fake);
}

fn authenticate(w: &Rc<Worker>, fake: &Fake, client_id: &str) -> Option<u16> {
    token_request(fake, &[]).peer(LEAF, true);
    fake.body.borrow_mut().clear();
    send(&mut RequestFilter::new(w.clone()), fake, &[format!("client_id={client_id}").as_bytes()]);
    fake.reply_status()
}

/// One registration a slice, one bucket a slice: a small document spans many ticks.
const ONE_AT_A_TIME: Budget = Budget { registrations: 1, scan_bytes: 1 << 20, write_bytes: 1, write_buckets: 1 };

/// Shared-data reads of registry buckets (not the metadata or the lease) since the last call.
fn bucket_reads(fake: &Fake) -> u32 {
    let mut reads = fake.reads.borrow_mut();
    let n = reads
        .iter()
        .filter(|(k, _)| k.starts_with("test/registry/v2/") && !k.ends_with("/meta") && !k.ends_with("/lease"))
        .map(|(_, n)| *n)
        .sum();
    reads.clear();
    n
}

fn registry_buckets(fake: &Fake) -> Vec<(String, Vec<u8>)> {
    let mut b: Vec<(String, Vec<u8>)> = fake
        .shared
        .borrow()
        .iter()
        .filter(|(k, _)| k.starts_with("test/registry/v2/") && !k.ends_with("/meta") && !k.ends_with("/lease"))
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    b.sort();
    b
}

fn lease_holder(fake: &Fake) -> Option<Lease> {
    Lease::decode(fake.shared.borrow().get("test/registry/v2/lease").map(|(v, _)| v.as_slice()))
        .filter(|l| l.owner != 0)
}

fn jwks_doc(pem: &str) -> String {
    format!(r#"{{"keys": [{{"kty": "EC", "x5c": ["{}"]}}]}}"#, STANDARD.encode(der(pem)))
}

fn jwks_worker() -> Rc<Worker> {
    worker(
        r#"{"jwks_cluster": "jwks", "jwks_min_refresh_seconds": 5, "clients": [{"client_id": "ss",
            "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": "https://jwks.test/ss.json"}]}"#,
    )
}

/// A self-signed request; if it triggers a JWK Set fetch, answer it with `jwks`.
fn self_signed(w: &Rc<Worker>, fake: &Fake, pem: &str, jwks: Option<&str>) -> Option<u16> {
    token_request(fake, &[]).peer(pem, false);
    fake.body.borrow_mut().clear();
    fake.resumed.set(0);
    let calls = fake.calls.borrow().len();
    let mut f = RequestFilter::new(w.clone());
    let action = send(&mut f, fake, &[b"client_id=ss"]);
    if fake.calls.borrow().len() > calls {
        assert_eq!(action, Action::Pause, "held while the JWK Set is fetched");
        let call = fake.last_call().unwrap();
        assert_eq!(
            (call.cluster.as_str(), call.authority.as_str(), call.path.as_str()),
            ("jwks", "jwks.test", "/ss.json")
        );
        let response = jwks.map_or_else(CallResponse::default, |doc| Fake::ok(200, doc));
        f.on_call_response(fake, call.token, response);
        if fake.reply_status().is_none() {
            assert_eq!(fake.resumed.get(), 1, "resumed after the fetch");
        }
    }
    fake.reply_status()
}

fn resource_worker() -> Rc<Worker> {
    worker(r#"{"resources": [{"prefix": "/api/"}, {"prefix": "/legacy/", "require_binding": false}]}"#)
}

/// A request to `path` on which jwt_authn verified a token with this `cnf` (`None`: no metadata at all).
fn resource_request<'a>(fake: &'a Fake, path: &str, cnf: Option<Option<&str>>) -> &'a Fake {
    fake.request(&[(":method", "GET"), (":path", path), ("authorization", "Bearer x.y.z")]);
    let mut p = fake.properties.borrow_mut();
    p.remove("metadata.filter_metadata.envoy.filters.http.jwt_authn.jwt_payload");
    p.remove("metadata.filter_metadata.envoy.filters.http.jwt_authn.jwt_payload.cnf.x5t#S256");
    if let Some(cnf) = cnf {
        p.insert("metadata.filter_metadata.envoy.filters.http.jwt_authn.jwt_payload".into(), b"\x0a\x03iss".to_vec());
        if let Some(x5t) = cnf {
            p.insert(
                "metadata.filter_metadata.envoy.filters.http.jwt_authn.jwt_payload.cnf.x5t#S256".into(),
                x5t.as_bytes().to_vec(),
            );
        }
    }
    drop(p);
    fake
}

fn www_authenticate(fake: &Fake) -> String {
    let reply = fake.reply.borrow().clone().unwrap();
    reply.headers.iter().find(|(n, _)| n == "www-authenticate").map(|(_, v)| v.clone()).unwrap_or_default()
}

fn discovery_worker() -> Rc<Worker> {
    worker(r#"{"discovery": {"mtls_endpoint_aliases": {"token_endpoint": "https://mtls.example.com/token"}}}"#)
}

fn metadata_response(fake: &Fake, status: &str, content_type: &str, body: &str) {
    *fake.response_headers.borrow_mut() = vec![
        (":status".into(), status.as_bytes().to_vec()),
        ("content-type".into(), content_type.as_bytes().to_vec()),
        ("content-length".into(), body.len().to_string().into_bytes()),
    ];
    *fake.response_body.borrow_mut() = body.as_bytes().to_vec();
}

/// A PEM "certificate" of `size` bytes that no two calls repeat (it does not decode as X.509: the filter keeps
/// such a certificate with its error, as it would a real one).
fn distinct_pem(n: usize, size: usize) -> String {
    let mut der = vec![0x30u8; size];
    der[..8].copy_from_slice(&(n as u64).to_le_bytes());
    let b64 = STANDARD.encode(&der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

fn challenge(fake: &Fake) -> Option<String> {
    let reply = fake.reply.borrow();
    reply.as_ref()?.headers.iter().find(|(n, _)| n == "www-authenticate").map(|(_, v)| v.clone())
}
