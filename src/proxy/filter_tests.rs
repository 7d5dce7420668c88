//! The filter's state machines driven through the fake proxy, as Envoy drives them.

use super::*;
use crate::proxy::fake::Fake;
use crate::testdata::{der, FORWARDER, LEAF, SELF_SIGNED_1, SELF_SIGNED_2};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

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

#[test]
fn annotation_headers_sent_by_the_client_are_stripped_on_every_path() {
    let w = dn_worker();
    let fake = Fake::new();
    fake.request(&[
        (":method", "GET"),
        (":path", "/userinfo"),
        ("x-mtls-client-id", "admin"),
        ("x-mtls-auth-method", "tls_client_auth"),
        ("x-mtls-x5t-s256", "abc"),
        ("client-cert", ":AAAA:"),
        ("client-cert-chain", ":AAAA:"),
    ]);
    assert_eq!(RequestFilter::new(w).on_request_headers(&fake, true), Action::Continue);
    for h in ["x-mtls-client-id", "x-mtls-auth-method", "x-mtls-x5t-s256", "client-cert", "client-cert-chain"] {
        assert_eq!(fake.header(h), None, "{h}");
    }
}

#[test]
fn a_matching_certificate_is_authenticated_and_annotated() {
    let w = dn_worker();
    let fake = Fake::new();
    token_request(&fake, &[("x-mtls-client-id", "spoofed")]).peer(LEAF, true);
    let action = send(&mut RequestFilter::new(w), &fake, &[b"grant_type=client_credentials&client_id=dn"]);
    assert_eq!(action, Action::Continue);
    assert_eq!(fake.header_values("x-mtls-client-id"), vec!["dn"]);
    assert_eq!(fake.header("x-mtls-auth-method").as_deref(), Some("tls_client_auth"));
    assert_eq!(fake.header("x-mtls-x5t-s256"), Some(crate::cert::x5t_s256(&der(LEAF))));
    assert_eq!(fake.header("client-cert"), Some(format!(":{}:", STANDARD.encode(der(LEAF)))));
    assert_eq!(fake.counter("oauth_mtls.authenticated"), 1);
}

#[test]
fn a_mismatching_certificate_is_stopped_with_invalid_client() {
    let w = dn_worker();
    let fake = Fake::new();
    token_request(&fake, &[]).peer(SELF_SIGNED_1, true);
    let action = send(&mut RequestFilter::new(w), &fake, &[b"client_id=dn"]);
    assert_eq!(action, Action::Pause);
    assert_eq!(fake.reply_status(), Some(401));
    assert_eq!(fake.reply_json()["error"], "invalid_client");
    let reply = fake.reply.borrow().clone().unwrap();
    assert!(reply.headers.contains(&("cache-control".into(), "no-store".into())));
    assert!(reply.headers.contains(&("content-type".into(), "application/json".into())));
    assert_eq!(fake.header("x-mtls-client-id"), None);
    assert_eq!(fake.counter("oauth_mtls.rejected.subject_mismatch"), 1);
    let log = fake.logs.borrow().join("\n");
    assert!(log.contains("client_id=dn reason=subject_mismatch"), "{log}");
    assert!(!log.contains("BEGIN CERTIFICATE"), "a log line never holds a certificate");
}

#[test]
fn a_body_in_one_byte_chunks_gives_the_same_result_as_one_chunk() {
    let body = b"grant_type=client_credentials&client_id=dn";
    let chunks: Vec<&[u8]> = body.chunks(1).collect();
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    assert_eq!(send(&mut RequestFilter::new(dn_worker()), &fake, &chunks), Action::Continue);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("dn"));
}

#[test]
fn a_body_ending_in_trailers_is_decided_at_the_trailers() {
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    let mut f = RequestFilter::new(dn_worker());
    assert_eq!(f.on_request_headers(&fake, false), Action::Pause);
    *fake.body.borrow_mut() = b"client_id=dn".to_vec();
    assert_eq!(f.on_request_body(&fake, 12, false), Action::Pause);
    assert_eq!(f.on_request_trailers(&fake), Action::Continue);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("dn"));
}

#[test]
fn a_body_over_the_limit_is_413() {
    let w = worker(r#"{"max_body_bytes": 16}"#);
    let fake = Fake::new();
    token_request(&fake, &[]);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn&", b"grant_type=client_credentials"]);
    assert_eq!(fake.reply_status(), Some(413));
    assert_eq!(fake.reply_json()["error"], "invalid_request");
    // A declared content-length over the limit is refused before any body is buffered.
    token_request(&fake, &[("content-length", "17")]);
    assert_eq!(RequestFilter::new(w).on_request_headers(&fake, false), Action::Pause);
    assert_eq!(fake.reply_status(), Some(413));
}

#[test]
fn a_repeated_client_id_is_invalid_request() {
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=dn&client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(400));
    assert_eq!(fake.reply_json()["error"], "invalid_request");
}

#[test]
fn basic_credentials_naming_another_client_are_invalid_request() {
    let fake = Fake::new();
    let basic = format!("Basic {}", STANDARD.encode("web:secret"));
    token_request(&fake, &[("authorization", &basic)]).peer(LEAF, true);
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(400));
}

#[test]
fn a_token_request_that_is_not_a_form_is_invalid_request() {
    let fake = Fake::new();
    fake.request(&[(":method", "POST"), (":path", "/token"), ("content-type", "application/json")]);
    assert_eq!(RequestFilter::new(dn_worker()).on_request_headers(&fake, false), Action::Pause);
    assert_eq!(fake.reply_status(), Some(400));
}

#[test]
fn clients_of_other_methods_pass_unannotated() {
    let fake = Fake::new();
    token_request(&fake, &[("x-mtls-client-id", "dn")]).peer(LEAF, true);
    assert_eq!(send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=web"]), Action::Continue);
    assert_eq!(fake.reply_status(), None);
    assert_eq!(fake.header("x-mtls-client-id"), None);
    assert_eq!(fake.counter("oauth_mtls.passed"), 1);
}

#[test]
fn client_id_only_in_the_query_string_is_not_authenticated() {
    let fake = Fake::new();
    fake.request(&[
        (":method", "POST"),
        (":path", "/token?client_id=dn"),
        ("content-type", "application/x-www-form-urlencoded"),
    ])
    .peer(LEAF, true);
    assert_eq!(
        send(&mut RequestFilter::new(dn_worker()), &fake, &[b"grant_type=client_credentials"]),
        Action::Continue
    );
    assert_eq!(fake.header("x-mtls-client-id"), None);
}

#[test]
fn the_forward_header_format_is_configurable() {
    let w = worker(&format!(
        r#"{{"forward_certificate": {{"header": "x-wso2-mtls-cert", "format": "pem"}},
            "clients": [{{"client_id": "dn", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}]}}"#
    ));
    let fake = Fake::new();
    token_request(&fake, &[("x-wso2-mtls-cert", "spoofed")]).peer(LEAF, true);
    send(&mut RequestFilter::new(w), &fake, &[b"client_id=dn"]);
    let v = fake.header("x-wso2-mtls-cert").unwrap();
    assert!(v.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(crate::cert::pem::decode_leaf(v.as_bytes()).unwrap(), der(LEAF));
    assert_eq!(fake.header("client-cert"), None);
}

fn xfcc_worker() -> Rc<Worker> {
    worker(&format!(
        r#"{{"certificate_source": "xfcc", "trusted_forwarders": [{{"uri_san": "spiffe://example.org/front-proxy"}}],
            "clients": [{{"client_id": "dn", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}]}}"#
    ))
}

fn xfcc_for(pem: &str) -> String {
    let encoded: String = pem
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("By=spiffe://example.org/as;Cert=\"{encoded}\";Subject=\"x\"")
}

#[test]
fn xfcc_from_a_trusted_forwarder_is_used_and_passed_on() {
    let fake = Fake::new();
    let xfcc = xfcc_for(LEAF);
    token_request(&fake, &[("x-forwarded-client-cert", &xfcc)]).peer(FORWARDER, true);
    assert_eq!(send(&mut RequestFilter::new(xfcc_worker()), &fake, &[b"client_id=dn"]), Action::Continue);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("dn"));
    assert!(fake.header("x-forwarded-client-cert").is_some());
}

#[test]
fn xfcc_from_an_untrusted_peer_is_ignored_and_removed() {
    let fake = Fake::new();
    let xfcc = xfcc_for(LEAF);
    // The peer presents the client's own certificate, not a forwarder's.
    token_request(&fake, &[("x-forwarded-client-cert", &xfcc)]).peer(LEAF, true);
    send(&mut RequestFilter::new(xfcc_worker()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(401));
    assert!(fake.reply_json()["error_description"].as_str().unwrap().contains("no client certificate"));
    assert_eq!(fake.header("x-forwarded-client-cert"), None);
}

#[test]
fn a_forwarder_whose_own_chain_was_not_validated_is_not_trusted() {
    let fake = Fake::new();
    let xfcc = xfcc_for(LEAF);
    token_request(&fake, &[("x-forwarded-client-cert", &xfcc)]).peer(FORWARDER, false);
    send(&mut RequestFilter::new(xfcc_worker()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(401));
}

#[test]
fn two_xfcc_headers_are_invalid_client() {
    let fake = Fake::new();
    let xfcc = xfcc_for(LEAF);
    token_request(&fake, &[("x-forwarded-client-cert", &xfcc), ("x-forwarded-client-cert", &xfcc)])
        .peer(FORWARDER, true);
    send(&mut RequestFilter::new(xfcc_worker()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(401));
    assert!(fake.reply_json()["error_description"].as_str().unwrap().contains("more than once"));
}

#[test]
fn rfc9440_client_cert_from_a_trusted_forwarder_is_used() {
    let w = worker(&format!(
        r#"{{"certificate_source": "client-cert", "trusted_forwarders": [{{"subject_dn": "CN=front-proxy,O=Example"}}],
            "clients": [{{"client_id": "dn", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}]}}"#
    ));
    let fake = Fake::new();
    let value = format!(":{}:", STANDARD.encode(der(LEAF)));
    token_request(&fake, &[("client-cert", &value)]).peer(FORWARDER, true);
    assert_eq!(send(&mut RequestFilter::new(w), &fake, &[b"client_id=dn"]), Action::Continue);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("dn"));
    assert_eq!(fake.header_values("client-cert"), vec![value]);
}

// ---- registry ----

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
    w.on_registry_response(fake, response);
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

#[test]
fn registry_clients_are_served_after_a_refresh() {
    let w = registry_worker("");
    let fake = Fake::new();
    assert_eq!(authenticate(&w, &fake, "a"), Some(401), "nothing loaded yet");
    assert!(fake.reply_json()["error_description"].as_str().unwrap().contains("registry"));
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    let call = fake.calls.borrow()[0].clone();
    assert_eq!(
        (call.cluster.as_str(), call.authority.as_str(), call.path.as_str()),
        ("registry", "registry.local", "/clients")
    );
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(authenticate(&w, &fake, "b"), None);
    assert_eq!(fake.counter("oauth_mtls.registry.clients"), 2);
    let stored: usize = fake
        .shared
        .borrow()
        .iter()
        .filter(|(k, _)| k.starts_with("test/registry/v2/4/") || k.ends_with("/meta"))
        .map(|(_, (v, _))| v.len())
        .sum();
    assert_eq!(fake.counter("oauth_mtls.registry.bytes"), stored as i64);
}

#[test]
fn registry_churn_does_not_grow_shared_data() {
    let w = registry_worker("");
    let fake = Fake::new();
    let mut sizes = Vec::new();
    for round in 0..20 {
        let ids: Vec<String> = (round * 10..round * 10 + 10).map(|i| format!("client-{i:04}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        refresh(&w, &fake, Fake::ok(200, &registry_doc(&ids)));
        fake.advance_s(12);
        sizes.push((fake.shared.borrow().len(), fake.counter("oauth_mtls.registry.bytes")));
    }
    // A fixed set of keys (buckets, meta, lease), whatever clients come and go.
    assert!(sizes.iter().all(|(keys, _)| *keys == sizes[0].0), "{sizes:?}");
    assert!(sizes.iter().all(|(_, bytes)| (*bytes - sizes[0].1).abs() < sizes[0].1 / 10), "{sizes:?}");
}

#[test]
fn registry_clients_load_on_every_worker_from_shared_data() {
    let fetching = Fake::new();
    let w1 = registry_worker("");
    refresh(&w1, &fetching, Fake::ok(200, &registry_doc(&["a"])));
    let other = Fake::worker_of(&fetching);
    let w2 = registry_worker("");
    assert_eq!(authenticate(&w2, &other, "a"), None);
}

#[test]
fn only_one_worker_fetches_at_a_time() {
    let f1 = Fake::new();
    let f2 = Fake::worker_of(&f1);
    let (w1, w2) = (registry_worker(""), registry_worker(""));
    w1.on_tick(&f1);
    w2.on_tick(&f2);
    assert_eq!(f1.calls.borrow().len() + f2.calls.borrow().len(), 1);
}

#[test]
fn removed_clients_disappear_after_the_next_refresh() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    fake.advance_s(12);
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(authenticate(&w, &fake, "b"), Some(401));
    assert!(fake.reply_json()["error_description"].as_str().unwrap().contains("unknown client"));
}

#[test]
fn garbage_and_outages_keep_the_last_good_copy_until_max_stale() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    fake.advance_s(12);
    refresh(&w, &fake, Fake::ok(200, "<html>oops</html>"));
    assert_eq!(authenticate(&w, &fake, "a"), None);
    fake.advance_s(10);
    refresh(&w, &fake, CallResponse::default());
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(fake.counter("oauth_mtls.registry.refresh_failed"), 2);
    fake.advance_s(50);
    assert_eq!(authenticate(&w, &fake, "a"), Some(401));
    let d = fake.reply_json()["error_description"].as_str().unwrap().to_string();
    assert!(d.contains("stale"), "{d}");
}

#[test]
fn etag_is_sent_and_not_modified_refreshes_the_age() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, CallResponse { etag: Some("\"v1\"".into()), ..Fake::ok(200, &registry_doc(&["a"])) });
    fake.advance_s(55);
    refresh(&w, &fake, Fake::ok(304, ""));
    assert!(fake.last_call().unwrap().headers.contains(&("if-none-match".into(), "\"v1\"".into())));
    fake.advance_s(30);
    assert_eq!(authenticate(&w, &fake, "a"), None, "a 304 counts as a successful refresh");
}

#[test]
fn inline_clients_work_while_the_registry_is_down() {
    let w = registry_worker(&format!(
        r#", "clients": [{{"client_id": "inline", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}]"#
    ));
    let fake = Fake::new();
    refresh(&w, &fake, CallResponse::default());
    assert_eq!(authenticate(&w, &fake, "inline"), None);
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

#[test]
fn a_registry_document_is_loaded_over_several_ticks_at_a_faster_tick() {
    let w = registry_worker("");
    w.set_load_budget(ONE_AT_A_TIME);
    let fake = Fake::new();
    start_refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b", "c"])));
    assert!(w.is_loading());
    assert_eq!(fake.tick_period_ms.get(), Some(LOAD_TICK_MS));
    assert!(fake.logs.borrow().iter().any(|l| l.contains("registry: loading a") && l.contains("byte document")));
    let ticks = finish_load(&w, &fake);
    // 3 registrations one a tick, one more to find the end of the document, 4 buckets one a tick, the switch.
    assert_eq!(ticks, 3 + 1 + 4 + 1);
    assert_eq!(fake.tick_period_ms.get(), Some(TICK_MS));
    assert_eq!(authenticate(&w, &fake, "c"), None);
    let log = fake.logs.borrow().join("\n");
    assert!(
        log.contains(&format!(
            "registry: loaded 3 clients (0 refused) from {} bytes",
            registry_doc(&["a", "b", "c"]).len()
        )),
        "{log}"
    );
    assert!(log.contains("over 9 ticks"), "{log}");
    assert_eq!(fake.counter("oauth_mtls.registry.refresh_ok"), 1);
    assert_eq!(lease_holder(&fake), None, "the lease is released when the load ends");
}

#[test]
fn the_last_good_registry_serves_until_the_new_document_has_been_read() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    fake.advance_s(12);
    w.set_load_budget(ONE_AT_A_TIME);
    start_refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "c", "d", "e"])));
    for _ in 0..4 {
        w.on_tick(&fake);
        assert_eq!(authenticate(&w, &fake, "b"), None, "b is still registered while the document is read");
        assert_eq!(authenticate(&w, &fake, "c"), Some(401), "c is not registered yet");
    }
    finish_load(&w, &fake);
    assert_eq!(authenticate(&w, &fake, "b"), Some(401));
    assert_eq!(authenticate(&w, &fake, "c"), None);
}

#[test]
fn a_document_that_breaks_midway_keeps_the_last_good_registry_untouched() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    let before = registry_buckets(&fake);
    fake.advance_s(12);
    w.set_load_budget(ONE_AT_A_TIME);
    let mut broken = registry_doc(&["x1", "x2", "x3", "x4", "x5"]);
    broken.truncate(broken.len() - 20);
    start_refresh(&w, &fake, Fake::ok(200, &broken));
    let ticks = finish_load(&w, &fake);
    assert!(ticks >= 4, "the break is found only after several slices ({ticks})");
    assert_eq!(registry_buckets(&fake), before, "no bucket was written");
    assert_eq!(fake.counter("oauth_mtls.registry.refresh_failed"), 1);
    assert!(fake
        .logs
        .borrow()
        .iter()
        .any(|l| l.contains("refresh failed, keeping the last good copy: registry document is not JSON")));
    assert_eq!(fake.tick_period_ms.get(), Some(TICK_MS));
    assert_eq!(lease_holder(&fake), None);
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(authenticate(&w, &fake, "x1"), Some(401));
}

#[test]
fn no_refresh_starts_while_a_load_is_in_progress() {
    let f1 = Fake::new();
    let f2 = Fake::worker_of(&f1);
    let (w1, w2) = (registry_worker(""), registry_worker(""));
    w1.set_load_budget(ONE_AT_A_TIME);
    start_refresh(&w1, &f1, Fake::ok(200, &registry_doc(&["a", "b", "c"])));
    for _ in 0..3 {
        f1.advance_s(30);
        f2.advance_s(30);
        w1.on_tick(&f1);
        w2.on_tick(&f2);
    }
    assert_eq!(f1.calls.borrow().len() + f2.calls.borrow().len(), 1, "nobody fetched during the load");
    finish_load(&w1, &f1);
    f2.advance_s(12);
    w2.on_tick(&f2);
    assert_eq!(f2.calls.borrow().len(), 1, "the next refresh is due after the load");
}

#[test]
fn a_worker_whose_lease_was_taken_over_stops_its_load() {
    let w = registry_worker("");
    w.set_load_budget(ONE_AT_A_TIME);
    let fake = Fake::new();
    start_refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b", "c"])));
    w.on_tick(&fake);
    let other = Lease { expires_ms: fake.now.get() + 60_000, owner: 7 };
    fake.shared_set("test/registry/v2/lease", &other.encode(), None).unwrap();
    w.on_tick(&fake);
    assert!(!w.is_loading());
    assert_eq!(fake.tick_period_ms.get(), Some(TICK_MS));
    assert!(fake.logs.borrow().iter().any(|l| l.contains("another worker took over the refresh lease")));
    assert_eq!(lease_holder(&fake), Some(other), "the other worker's lease is left alone");
}

#[test]
fn a_steady_state_lookup_reads_only_the_registry_metadata() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(authenticate(&w, &fake, "nobody"), Some(401));
    bucket_reads(&fake);
    for _ in 0..3 {
        assert_eq!(authenticate(&w, &fake, "a"), None);
        assert_eq!(authenticate(&w, &fake, "nobody"), Some(401));
    }
    assert_eq!(bucket_reads(&fake), 0);
    authenticate(&w, &fake, "a");
    assert_eq!(fake.reads.borrow().keys().cloned().collect::<Vec<_>>(), vec!["test/registry/v2/meta".to_string()]);
}

#[test]
fn after_a_change_a_lookup_reads_only_its_own_bucket_once() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    authenticate(&w, &fake, "a");
    fake.advance_s(12);
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "c"])));
    bucket_reads(&fake);
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(bucket_reads(&fake), 1);
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(bucket_reads(&fake), 0);
}

#[test]
fn an_unchanged_document_keeps_every_decoded_client() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    authenticate(&w, &fake, "a");
    fake.advance_s(12);
    // Same registrations in another order, without an ETag: every bucket encodes the same, none is written.
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["b", "a"])));
    bucket_reads(&fake);
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(bucket_reads(&fake), 0);
}

#[test]
fn another_workers_cache_follows_a_change() {
    let f1 = Fake::new();
    let f2 = Fake::worker_of(&f1);
    let (w1, w2) = (registry_worker(""), registry_worker(""));
    refresh(&w1, &f1, Fake::ok(200, &registry_doc(&["a", "b"])));
    assert_eq!(authenticate(&w2, &f2, "b"), None);
    f1.advance_s(12);
    refresh(&w1, &f1, Fake::ok(200, &registry_doc(&["a"])));
    f2.now.set(f1.now.get());
    assert_eq!(authenticate(&w2, &f2, "b"), Some(401));
}

#[test]
fn a_bucket_of_another_layout_makes_registry_clients_unavailable_not_unknown() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    let key = format!("test/registry/v2/4/{}", registry::bucket_of("a", 4));
    let mut value = fake.shared.borrow()[&key].0.clone();
    value[3] = crate::registry::bucket::LAYOUT + 1;
    fake.shared_set(&key, &value, None).unwrap();
    assert_eq!(authenticate(&w, &fake, "a"), Some(401));
    assert_eq!(fake.counter("oauth_mtls.rejected.registry_unavailable"), 1);
    assert!(fake.reply_json()["error_description"].as_str().unwrap().contains("layout version 3"));
}

#[test]
fn a_new_bucket_count_is_loaded_beside_the_old_buckets_which_are_then_emptied() {
    let fake = Fake::new();
    let four = registry_worker("");
    refresh(&four, &fake, CallResponse { etag: Some("\"v1\"".into()), ..Fake::ok(200, &registry_doc(&["a", "b"])) });
    let eight = worker(
        r#"{"unknown_client": "reject", "registry": {"cluster": "registry", "authority": "registry.local", "path": "/clients",
             "refresh_seconds": 10, "max_stale_seconds": 60, "buckets": 8}}"#,
    );
    eight.set_load_budget(ONE_AT_A_TIME);
    fake.advance_s(12);
    start_refresh(
        &eight,
        &fake,
        CallResponse { etag: Some("\"v1\"".into()), ..Fake::ok(200, &registry_doc(&["a", "b"])) },
    );
    assert!(
        !fake.last_call().unwrap().headers.iter().any(|(n, _)| n == "if-none-match"),
        "a 304 would leave 8 buckets unwritten"
    );
    while eight.is_loading() {
        // Both configurations serve throughout: the metadata names the count whose buckets are complete.
        assert_eq!(authenticate(&eight, &fake, "b"), None);
        assert_eq!(authenticate(&four, &fake, "b"), None);
        eight.on_tick(&fake);
    }
    assert_eq!(authenticate(&four, &fake, "b"), None);
    let shared = fake.shared.borrow();
    assert!(shared.iter().filter(|(k, _)| k.starts_with("test/registry/v2/4/")).all(|(_, (v, _))| v.is_empty()));
    assert!(shared.iter().any(|(k, (v, _))| k.starts_with("test/registry/v2/8/") && !v.is_empty()));
}

#[test]
fn registry_bytes_in_shared_data_stay_under_twice_the_document() {
    let w = registry_worker(r#", "jwks_cluster": "jwks""#);
    let fake = Fake::new();
    let ids: Vec<String> = (0..2000).map(|i| format!("bench-{i:06}")).collect();
    let items: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"client_id":"{id}","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN={id},OU=Gen1,O=Example Bank,C=GB"}}"#))
        .collect();
    let doc = format!(r#"{{"clients":[{}]}}"#, items.join(","));
    refresh(&w, &fake, Fake::ok(200, &doc));
    let gauge = fake.counter("oauth_mtls.registry.bytes");
    assert_eq!(fake.counter("oauth_mtls.registry.clients"), 2000);
    assert!(gauge > 0 && gauge < 2 * doc.len() as i64, "{gauge} bytes for a {}-byte document", doc.len());
}

// ---- jwks_uri ----

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

#[test]
fn jwks_uri_is_fetched_on_first_use_and_authenticates() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    assert_eq!(fake.header("x-mtls-auth-method").as_deref(), Some("self_signed_tls_client_auth"));
    // Cached in shared data: the next request needs no fetch.
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), None);
    assert_eq!(fake.calls.borrow().len(), 1);
}

#[test]
fn jwks_uri_rotation_works_after_min_refresh_without_restart() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    // The client rotates to a new certificate; within min refresh the old set answers.
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_2, Some(&jwks_doc(SELF_SIGNED_2))), Some(401));
    assert_eq!(fake.calls.borrow().len(), 1, "no refetch within jwks_min_refresh_seconds");
    fake.advance_s(5);
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_2, Some(&jwks_doc(SELF_SIGNED_2))), None);
    assert_eq!(fake.calls.borrow().len(), 2);
}

#[test]
fn a_failing_jwks_uri_keeps_the_last_good_set() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    fake.advance_s(6);
    // A miss triggers a refetch, which fails: the old set still serves the old certificate.
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_2, Some("garbage")), Some(401));
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), None);
}

#[test]
fn a_key_removed_from_a_jwks_uri_set_stops_authenticating_within_the_maximum_age_though_it_is_used_all_along() {
    let (w, fake) = (jwks_worker(), Fake::new()); // default jwks_max_age_seconds: 300
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    // The client's set drops the leaked certificate; the leaked one keeps being presented every 10 s.
    let mut first_refusal = None;
    for step in 1..=40 {
        fake.advance_s(10);
        if self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_2))).is_some() {
            first_refusal = Some(step * 10);
            break;
        }
    }
    assert_eq!(first_refusal, Some(240), "renewed when due (4/5 of 300 s), and refused from then on");
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_2, None), None, "the new certificate authenticates");
}

#[test]
fn a_jwks_uri_copy_past_its_maximum_age_that_cannot_be_fetched_authenticates_no_one() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    fake.advance_s(240);
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), None, "due: the renewal fails, the copy still serves");
    fake.advance_s(60);
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), Some(401), "expired: fetched again, failed, refused");
    let d = fake.reply_json()["error_description"].as_str().unwrap().to_string();
    assert!(d.contains("older than its maximum age"), "{d}");
}

#[test]
fn a_jwks_uri_cache_control_max_age_is_honoured_within_the_configured_bounds() {
    let (w, fake) = (jwks_worker(), Fake::new()); // min refresh 5 s, max age 300 s
                                                  // One request; a fetch it makes is answered with the set and `max-age`. Returns whether it fetched.
    let request = |max_age: u64| {
        token_request(&fake, &[]).peer(SELF_SIGNED_1, false);
        let calls = fake.calls.borrow().len();
        let mut f = RequestFilter::new(w.clone());
        send(&mut f, &fake, &[b"client_id=ss"]);
        let fetched = fake.calls.borrow().len() > calls;
        if fetched {
            let response = CallResponse { max_age_seconds: Some(max_age), ..Fake::ok(200, &jwks_doc(SELF_SIGNED_1)) };
            f.on_call_response(&fake, fake.last_call().unwrap().token, response);
        }
        assert_eq!(fake.reply_status(), None, "authenticated");
        fetched
    };
    assert!(request(20));
    fake.advance_s(15);
    assert!(!request(0), "fresh for 4/5 of its own 20 s");
    fake.advance_s(1);
    assert!(request(1_000_000), "due at 16 s");
    fake.advance_s(239);
    assert!(!request(0));
    fake.advance_s(1);
    assert!(request(0), "a longer max-age is cut to jwks_max_age_seconds (due at 240 s)");
    fake.advance_s(5);
    assert!(request(0), "max-age 0 is raised to jwks_min_refresh_seconds (due at 4 s)");
}

#[test]
fn a_jwks_uri_that_never_answered_says_so() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), Some(401));
    let d = fake.reply_json()["error_description"].as_str().unwrap().to_string();
    assert!(d.contains("could not be fetched"), "{d}");
}

#[test]
fn a_paused_request_whose_body_never_came_is_logged_as_a_configuration_error() {
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    let f = {
        let mut f = RequestFilter::new(dn_worker());
        assert_eq!(f.on_request_headers(&fake, false), Action::Pause);
        f
    };
    f.on_log(&fake);
    assert!(fake.logs.borrow().iter().any(|l| l.contains("allow_on_headers_stop_iteration")));
}

// ---- protected resources (RFC 8705 §3) ----

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

#[test]
fn a_token_bound_to_the_presented_certificate_reaches_the_resource() {
    let fake = Fake::new();
    let x5t = crate::cert::x5t_s256(&der(LEAF));
    resource_request(&fake, "/api/accounts", Some(Some(&x5t))).peer(LEAF, true);
    assert_eq!(RequestFilter::new(resource_worker()).on_request_headers(&fake, true), Action::Continue);
    assert_eq!(fake.counter("oauth_mtls.resource.allowed"), 1);
}

#[test]
fn a_token_bound_to_another_certificate_gets_a_bearer_invalid_token_challenge() {
    let fake = Fake::new();
    let x5t = crate::cert::x5t_s256(&der(LEAF));
    resource_request(&fake, "/api/accounts", Some(Some(&x5t))).peer(SELF_SIGNED_1, false);
    assert_eq!(RequestFilter::new(resource_worker()).on_request_headers(&fake, true), Action::Pause);
    assert_eq!(fake.reply_status(), Some(401));
    let challenge = www_authenticate(&fake);
    assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("another certificate"), "{challenge}");
    assert_eq!(fake.counter("oauth_mtls.rejected.invalid_token"), 1);
}

#[test]
fn a_resource_without_jwt_authn_metadata_fails_closed() {
    let fake = Fake::new();
    resource_request(&fake, "/api/accounts", None).peer(LEAF, true);
    RequestFilter::new(resource_worker()).on_request_headers(&fake, true);
    assert!(www_authenticate(&fake).contains("no verified access token"));
}

#[test]
fn an_unbound_token_passes_only_where_binding_is_not_required() {
    let fake = Fake::new();
    resource_request(&fake, "/api/x", Some(None)).peer(LEAF, true);
    RequestFilter::new(resource_worker()).on_request_headers(&fake, true);
    assert!(www_authenticate(&fake).contains("not certificate-bound"));
    resource_request(&fake, "/legacy/x", Some(None)).peer(LEAF, true);
    assert_eq!(RequestFilter::new(resource_worker()).on_request_headers(&fake, true), Action::Continue);
    assert_eq!(fake.reply_status(), None);
}

// ---- discovery ----

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

#[test]
fn the_as_metadata_is_amended_with_a_correct_content_length() {
    let fake = Fake::new();
    fake.request(&[(":method", "GET"), (":path", "/.well-known/openid-configuration"), ("accept-encoding", "gzip")]);
    let mut f = RequestFilter::new(discovery_worker());
    assert_eq!(f.on_request_headers(&fake, true), Action::Continue);
    assert_eq!(fake.header("accept-encoding"), None, "asked uncompressed, so it can be rewritten");
    let doc = r#"{"issuer":"https://as","token_endpoint_auth_methods_supported":["private_key_jwt"]}"#;
    metadata_response(&fake, "200", "application/json; charset=utf-8", doc);
    assert_eq!(f.on_response_headers(&fake, false), Action::Pause);
    assert_eq!(f.on_response_body(&fake, doc.len(), true), Action::Continue);
    let body = fake.response_body.borrow().clone();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["token_endpoint_auth_methods_supported"],
        serde_json::json!(["private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"])
    );
    assert_eq!(v["mtls_endpoint_aliases"]["token_endpoint"], "https://mtls.example.com/token");
    let length: usize = String::from_utf8(
        fake.response_headers.borrow().iter().find(|(n, _)| n == "content-length").unwrap().1.clone(),
    )
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(length, body.len());
}

#[test]
fn metadata_errors_and_non_json_responses_pass_unchanged() {
    let fake = Fake::new();
    fake.request(&[(":method", "GET"), (":path", "/.well-known/oauth-authorization-server")]);
    let mut f = RequestFilter::new(discovery_worker());
    f.on_request_headers(&fake, true);
    metadata_response(&fake, "404", "application/json", "{}");
    assert_eq!(f.on_response_headers(&fake, false), Action::Continue);
    let mut f = RequestFilter::new(discovery_worker());
    f.on_request_headers(&fake, true);
    metadata_response(&fake, "200", "application/json", "not json");
    assert_eq!(f.on_response_headers(&fake, false), Action::Pause);
    assert_eq!(f.on_response_body(&fake, 8, true), Action::Continue);
    assert_eq!(fake.response_body.borrow().as_slice(), b"not json");
}

#[test]
fn other_responses_are_never_held() {
    let fake = Fake::new();
    fake.request(&[(":method", "GET"), (":path", "/userinfo")]);
    let mut f = RequestFilter::new(discovery_worker());
    f.on_request_headers(&fake, true);
    metadata_response(&fake, "200", "application/json", "{}");
    assert_eq!(f.on_response_headers(&fake, false), Action::Continue);
}

#[test]
fn an_envoy_without_peer_certificate_valid_fails_closed_and_says_why() {
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    fake.properties.borrow_mut().remove("connection.peer_certificate_valid");
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(401));
    assert!(fake.logs.borrow().iter().any(|l| l.contains("does not provide connection.peer_certificate_valid")));
}

#[test]
fn a_worker_parses_a_client_certificate_once_across_requests() {
    let w = dn_worker();
    for _ in 0..3 {
        let fake = Fake::new();
        token_request(&fake, &[]).peer(LEAF, true);
        assert_eq!(send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]), Action::Continue);
    }
    assert_eq!(w.certificates.borrow().len(), 1);
}

#[test]
fn a_certificate_the_worker_has_seen_is_found_by_envoys_digest_without_reading_its_pem() {
    let w = dn_worker();
    let first = Fake::new();
    token_request(&first, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(w.clone()), &first, &[b"client_id=dn"]);
    assert!(first.property_reads.borrow().iter().any(|p| p == "connection.peer_certificate"));
    let again = Fake::new();
    token_request(&again, &[]).peer(LEAF, true);
    assert_eq!(send(&mut RequestFilter::new(w.clone()), &again, &[b"client_id=dn"]), Action::Continue);
    assert_eq!(again.header("x-mtls-client-id").as_deref(), Some("dn"));
    let reads = again.property_reads.borrow();
    assert!(!reads.iter().any(|p| p == "connection.peer_certificate"), "{reads:?}");
}

#[test]
fn later_requests_on_a_connection_read_only_its_id() {
    let w = dn_worker();
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]);
    fake.property_reads.borrow_mut().clear();
    token_request(&fake, &[]);
    assert_eq!(send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]), Action::Continue);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("dn"));
    assert_eq!(*fake.property_reads.borrow(), vec!["connection_id".to_string()]);
}

#[test]
fn a_connection_remembers_that_its_chain_was_not_validated() {
    let w = dn_worker();
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, false);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(401));
    token_request(&fake, &[]);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(401));
    // A new connection with the same certificate, validated this time, is judged on its own.
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(w), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), None);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("dn"));
}

#[test]
fn a_certificate_validated_on_one_connection_is_not_validated_on_another() {
    let w = dn_worker();
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("dn"));
    // Same certificate (so the decoded copy is reused), new handshake that Envoy did not validate.
    token_request(&fake, &[]).peer(LEAF, false);
    send(&mut RequestFilter::new(w), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(401));
    assert_eq!(fake.header("x-mtls-client-id"), None);
}

#[test]
fn envoys_digest_of_another_certificate_than_its_pem_fails_closed() {
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    let other = crate::oauth::jwks::hex(&crate::cert::sha256(&crate::testdata::der(crate::testdata::FORWARDER)));
    fake.properties.borrow_mut().insert("connection.sha256_peer_certificate_digest".into(), other.into_bytes());
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(401));
    assert_eq!(fake.header("x-mtls-client-id"), None);
}

#[test]
fn a_request_without_our_headers_costs_no_header_removals() {
    let fake = Fake::new();
    fake.request(&[(":method", "GET"), (":path", "/userinfo"), ("accept", "*/*")]);
    assert_eq!(RequestFilter::new(dn_worker()).on_request_headers(&fake, true), Action::Continue);
    assert_eq!(fake.removals.get(), 0);
    fake.request(&[
        (":method", "GET"),
        (":path", "/userinfo"),
        ("x-mtls-client-id", "admin"),
        ("X-MTLS-Client-Id", "again"),
    ]);
    RequestFilter::new(dn_worker()).on_request_headers(&fake, true);
    assert_eq!(fake.header("x-mtls-client-id"), None, "every copy, whatever its case");
}

#[test]
fn a_header_map_the_proxy_garbled_gets_every_produced_header_removed() {
    let fake = Fake::new();
    fake.request(&[(":method", "GET"), (":path", "/userinfo"), ("x-mtls-client-id", "admin")]);
    fake.garbled_headers.set(true);
    assert_eq!(RequestFilter::new(dn_worker()).on_request_headers(&fake, true), Action::Continue);
    assert_eq!(fake.header("x-mtls-client-id"), None);
    assert_eq!(fake.removals.get() as usize, crate::config::PRODUCED_HEADERS.len());
}

// ---- memory budget (issue 10: floods of distinct maximal inputs) ----

/// A PEM "certificate" of `size` bytes that no two calls repeat (it does not decode as X.509: the filter keeps
/// such a certificate with its error, as it would a real one).
fn distinct_pem(n: usize, size: usize) -> String {
    let mut der = vec![0x30u8; size];
    der[..8].copy_from_slice(&(n as u64).to_le_bytes());
    let b64 = STANDARD.encode(&der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

#[test]
fn a_flood_of_distinct_large_certificates_stays_within_the_memory_budget_and_the_client_is_still_served() {
    let w = worker(&format!(
        r#"{{"memory_budget_bytes": 1048576, "clients": [{{"client_id": "dn", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}]}}"#
    ));
    let fake = Fake::new();
    for n in 0..2000 {
        token_request(&fake, &[]).peer(&distinct_pem(n, 6000), false);
        send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]);
        assert_eq!(fake.reply_status(), Some(401));
        assert!(w.cached_bytes() <= 1 << 20, "{} bytes after {n} certificates", w.cached_bytes());
    }
    token_request(&fake, &[]).peer(LEAF, true);
    assert_eq!(send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]), Action::Continue);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("dn"));
}

#[test]
fn a_certificate_too_large_for_its_part_of_the_budget_is_decoded_again_not_kept() {
    let w = worker(r#"{"memory_budget_bytes": 1048576}"#);
    let fake = Fake::new();
    // 1 MiB budget: certificates get 512 KiB, and no entry may weigh more than 8 KiB.
    token_request(&fake, &[]).peer(&distinct_pem(1, 20_000), false);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=x"]);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=x"]);
    assert!(w.cached_bytes() < 1000, "{}", w.cached_bytes());
    let pem_reads = fake.property_reads.borrow().iter().filter(|p| *p == "connection.peer_certificate").count();
    assert_eq!(pem_reads, 2, "read again on the same connection");
}

#[test]
fn a_flood_of_distinct_long_unknown_client_ids_stays_within_the_memory_budget() {
    let w = registry_worker(r#", "memory_budget_bytes": 1048576, "max_body_bytes": 1048576"#);
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    for n in 0..300 {
        // Long enough to be kept (under the 6 KiB an entry may weigh), many enough to fill the budget 4 times.
        let id = format!("{n}{}", "x".repeat(5000));
        assert_eq!(authenticate(&w, &fake, &id), Some(401));
        assert!(w.cached_bytes() <= 1 << 20, "{} bytes after {n} ids", w.cached_bytes());
    }
    let huge = "y".repeat(1_000_000);
    assert_eq!(authenticate(&w, &fake, &huge), Some(401));
    assert!(w.cached_bytes() <= 1 << 20);
    assert_eq!(authenticate(&w, &fake, "a"), None, "the registered client is still served");
}

#[test]
fn the_memory_gauges_are_summed_over_workers() {
    let w1 = dn_worker();
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(w1.clone()), &fake, &[b"client_id=dn"]);
    w1.report_memory(&fake, Some(3 << 16));
    let w2 = dn_worker();
    w2.report_memory(&fake, Some(2 << 16));
    let cached = i64::try_from(w1.cached_bytes()).unwrap();
    assert!(cached > 0);
    assert_eq!(fake.counter("oauth_mtls.memory.cached_bytes"), cached);
    assert_eq!(fake.counter("oauth_mtls.memory.vm_bytes"), 5 << 16);
    w1.report_memory(&fake, Some(4 << 16));
    assert_eq!(fake.counter("oauth_mtls.memory.vm_bytes"), 6 << 16, "a worker adds its change, not its value");
}

// ---- RFC 6749 §5.2: the challenge of an invalid_client answer ----

fn challenge(fake: &Fake) -> Option<String> {
    let reply = fake.reply.borrow();
    reply.as_ref()?.headers.iter().find(|(n, _)| n == "www-authenticate").map(|(_, v)| v.clone())
}

#[test]
fn an_invalid_client_answer_to_a_client_that_used_http_basic_challenges_basic() {
    let fake = Fake::new();
    let basic = format!("Basic {}", STANDARD.encode("dn:secret"));
    token_request(&fake, &[("authorization", &basic)]); // no certificate
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"grant_type=client_credentials"]);
    assert_eq!(fake.reply_status(), Some(401));
    assert_eq!(fake.reply_json()["error"], "invalid_client");
    assert_eq!(challenge(&fake).as_deref(), Some("Basic realm=\"oauth\", charset=\"UTF-8\""));
}

#[test]
fn an_invalid_client_answer_to_a_client_that_did_not_use_the_authorization_header_has_no_challenge() {
    let fake = Fake::new();
    token_request(&fake, &[]);
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.reply_status(), Some(401));
    assert_eq!(challenge(&fake), None);
}

#[test]
fn annotation_headers_spelled_with_underscores_are_stripped_too() {
    // CGI/WSGI/Rack/PHP servers read x_mtls_client_id as HTTP_X_MTLS_CLIENT_ID, like x-mtls-client-id.
    let fake = Fake::new();
    fake.request(&[
        (":method", "GET"),
        (":path", "/userinfo"),
        ("x_mtls_client_id", "admin"),
        ("x-mtls_auth-method", "tls_client_auth"),
        ("client_cert", ":AAAA:"),
        ("x_request_id", "kept"),
    ]);
    assert_eq!(RequestFilter::new(dn_worker()).on_request_headers(&fake, true), Action::Continue);
    for h in ["x_mtls_client_id", "x-mtls_auth-method", "client_cert"] {
        assert_eq!(fake.header(h), None, "{h}");
    }
    assert_eq!(fake.header("x_request_id").as_deref(), Some("kept"));
}

#[test]
fn a_resource_request_carrying_two_access_tokens_is_an_invalid_request() {
    // RFC 6750 §2: a client MUST NOT use more than one method to transmit the token.
    for (path, second) in [
        ("/api/accounts?access_token=a.b.c", None),
        ("/api/accounts", Some(("authorization", "Bearer d.e.f"))),
        ("/api/accounts?x=1&access%5Ftoken=a.b.c", None),
    ] {
        let fake = Fake::new();
        resource_request(&fake, path, Some(Some("x"))).peer(LEAF, true);
        if let Some(h) = second {
            fake.headers.borrow_mut().push((h.0.to_string(), h.1.as_bytes().to_vec()));
        }
        assert_eq!(RequestFilter::new(resource_worker()).on_request_headers(&fake, true), Action::Pause, "{path}");
        assert_eq!(fake.reply_status(), Some(400), "{path}");
        assert_eq!(fake.reply_json()["error"], "invalid_request");
        assert!(www_authenticate(&fake).starts_with("Bearer error=\"invalid_request\""));
    }
}

#[test]
fn a_resource_request_with_its_token_in_the_query_only_is_checked_as_usual() {
    let fake = Fake::new();
    let x5t = crate::cert::x5t_s256(&der(LEAF));
    fake.request(&[(":method", "GET"), (":path", "/api/accounts?access_token=a.b.c")]);
    fake.properties
        .borrow_mut()
        .insert("metadata.filter_metadata.envoy.filters.http.jwt_authn.jwt_payload".into(), b"\x0a\x03iss".to_vec());
    fake.properties.borrow_mut().insert(
        "metadata.filter_metadata.envoy.filters.http.jwt_authn.jwt_payload.cnf.x5t#S256".into(),
        x5t.into_bytes(),
    );
    fake.peer(LEAF, true);
    assert_eq!(RequestFilter::new(resource_worker()).on_request_headers(&fake, true), Action::Continue);
}
