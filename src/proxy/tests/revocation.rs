//! Revocation of an authenticated client's certificate: CRLs loaded by the worker, OCSP asked on a miss.

use super::*;
use crate::revocation::testdata::{self as pki, MADE_MS};

const CRL_URL: &str = "http://crl.example.test/ca.crl";

fn pem_of(b64: &str) -> String {
    crate::cert::pem::encode(&pki::der(b64))
}

fn dn_of(b64: &str) -> String {
    crate::cert::Leaf::from_der(&pki::der(b64)).unwrap().subject.to_string()
}

/// A worker with clients `good` and `revoked` (each by its certificate's DN) and this `revocation` object.
fn revocation_worker(revocation: &str) -> Rc<Worker> {
    let ca = pki::CA;
    let revocation = revocation.replace("CA", ca);
    worker(&format!(
        r#"{{"clients": [
              {{"client_id": "good", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{}"}},
              {{"client_id": "revoked", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{}"}},
              {{"client_id": "dn", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}],
            "revocation": {revocation}}}"#,
        dn_of(pki::GOOD),
        dn_of(pki::REVOKED)
    ))
}

fn fake_now() -> Fake {
    let fake = Fake::new();
    fake.now.set(MADE_MS + 60_000);
    fake
}

fn der_response(b64: &str) -> CallResponse {
    CallResponse { status: Some(200), body: pki::der(b64), ..CallResponse::default() }
}

/// A token request of `client_id` presenting `cert` (a CA-validated connection); its filter, to answer calls.
fn request(w: &Rc<Worker>, fake: &Fake, client_id: &str, cert: &str) -> (RequestFilter, Action) {
    token_request(fake, &[]).peer(cert, true);
    let mut f = RequestFilter::new(w.clone());
    let action = send(&mut f, fake, &[format!("client_id={client_id}").as_bytes()]);
    (f, action)
}

fn load_crl(w: &Worker, fake: &Fake, response: CallResponse) {
    w.on_tick(fake);
    let call = fake.last_call().expect("the CRL is fetched");
    assert_eq!(
        (call.cluster.as_str(), call.authority.as_str(), call.path.as_str()),
        ("pki", "crl.example.test", "/ca.crl")
    );
    assert!(w.is_crl_call(call.token));
    w.on_crl_response(fake, response);
    finish_load(w, fake);
}

fn reason(fake: &Fake) -> String {
    fake.reply_json()["error_description"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_certificate_the_crl_lists_is_refused_and_one_it_does_not_list_is_authenticated() {
    let (w, fake) = (
        revocation_worker(&format!(r#"{{"cluster": "pki", "issuers": ["CA"], "crl_urls": ["{CRL_URL}"]}}"#)),
        fake_now(),
    );
    load_crl(&w, &fake, der_response(pki::CRL));
    assert_eq!(fake.counter("oauth_mtls.revocation.crl_ok"), 1);
    request(&w, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!(fake.reply_status(), None);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("good"));
    request(&w, &fake, "revoked", &pem_of(pki::REVOKED));
    assert_eq!(fake.reply_status(), Some(401));
    assert_eq!(reason(&fake), "the client certificate has been revoked");
    assert_eq!(fake.counter("oauth_mtls.rejected.certificate_revoked"), 1);
}

#[test]
fn before_any_crl_has_loaded_there_is_no_status_and_on_unavailable_decides() {
    let reject = revocation_worker(&format!(r#"{{"cluster": "pki", "issuers": ["CA"], "crl_urls": ["{CRL_URL}"]}}"#));
    let fake = fake_now();
    request(&reject, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!(fake.reply_status(), Some(401));
    assert_eq!(reason(&fake), "the revocation status of the client certificate could not be established");
    assert_eq!(fake.counter("oauth_mtls.rejected.revocation_unavailable"), 1);

    let pass = revocation_worker(&format!(
        r#"{{"cluster": "pki", "issuers": ["CA"], "crl_urls": ["{CRL_URL}"], "on_unavailable": "pass"}}"#
    ));
    let fake = fake_now();
    request(&pass, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!(fake.reply_status(), None);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("good"));
    assert_eq!(fake.counter("oauth_mtls.revocation.unavailable_passed"), 1);
}

#[test]
fn a_crl_signed_by_another_key_is_not_loaded_and_vouches_for_no_one() {
    let (w, fake) = (
        revocation_worker(&format!(r#"{{"cluster": "pki", "issuers": ["CA"], "crl_urls": ["{CRL_URL}"]}}"#)),
        fake_now(),
    );
    load_crl(&w, &fake, der_response(pki::ROGUE_CRL));
    assert_eq!(fake.counter("oauth_mtls.revocation.crl_failed"), 1);
    request(&w, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!(fake.reply_status(), Some(401));
}

#[test]
fn a_crl_past_max_stale_seconds_since_its_last_good_fetch_vouches_for_no_one_but_still_revokes() {
    let (w, fake) = (
        revocation_worker(&format!(
            r#"{{"cluster": "pki", "issuers": ["CA"], "crl_urls": ["{CRL_URL}"], "refresh_seconds": 10, "max_stale_seconds": 30}}"#
        )),
        fake_now(),
    );
    load_crl(&w, &fake, der_response(pki::CRL));
    for _ in 0..4 {
        fake.advance_s(10);
        w.on_tick(&fake);
        if let Some(call) = fake.last_call().filter(|c| w.is_crl_call(c.token)) {
            w.on_crl_response(&fake, CallResponse::default()); // the CRL server is down
            let _ = call;
        }
    }
    request(&w, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!(fake.reply_status(), Some(401), "stale: no status");
    request(&w, &fake, "revoked", &pem_of(pki::REVOKED));
    assert_eq!(reason(&fake), "the client certificate has been revoked", "a listed serial stays revoked");
}

#[test]
fn an_ocsp_miss_holds_the_request_until_the_responder_answers_and_the_answer_serves_every_worker() {
    let w = revocation_worker(r#"{"cluster": "pki", "issuers": ["CA"], "ocsp": true, "ocsp_max_age_seconds": 600}"#);
    let fake = fake_now();
    let (mut f, action) = request(&w, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!(action, Action::Pause);
    let call = fake.last_call().unwrap();
    assert_eq!((call.cluster.as_str(), call.authority.as_str()), ("pki", "ocsp.example.test"));
    assert!(call.path.starts_with("/ocsp/MEMwQTA"), "{}", call.path);
    f.on_call_response(&fake, call.token, der_response(pki::OCSP_GOOD));
    assert_eq!((fake.resumed.get(), fake.header("x-mtls-client-id").as_deref()), (1, Some("good")));
    // Another worker: the shared answer, no call.
    let other = Fake::worker_of(&fake);
    let w2 = revocation_worker(r#"{"cluster": "pki", "issuers": ["CA"], "ocsp": true, "ocsp_max_age_seconds": 600}"#);
    request(&w2, &other, "good", &pem_of(pki::GOOD));
    assert_eq!((other.reply_status(), other.calls.borrow().len()), (None, 0));
    // Past the maximum age the responder is asked again.
    fake.advance_s(600);
    let (_, action) = request(&w, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!((action, fake.calls.borrow().len()), (Action::Pause, 2));
}

#[test]
fn concurrent_misses_for_one_certificate_make_one_call_and_the_others_wait_for_its_answer() {
    let w = revocation_worker(r#"{"cluster": "pki", "issuers": ["CA"], "ocsp": true}"#);
    let fake = fake_now();
    let (mut first, _) = request(&w, &fake, "good", &pem_of(pki::GOOD));
    let (mut second, action) = request(&w, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!((action, fake.calls.borrow().len()), (Action::Pause, 1));
    assert!(second.is_waiting_for_status());
    assert!(!second.on_wake(&fake), "still waiting while the call is under way");
    first.on_call_response(&fake, fake.last_call().unwrap().token, der_response(pki::OCSP_GOOD));
    assert!(second.on_wake(&fake));
    assert_eq!(fake.resumed.get(), 2);
}

#[test]
fn a_waiting_request_whose_call_is_lost_asks_the_responder_itself_after_the_timeout() {
    let w = revocation_worker(r#"{"cluster": "pki", "issuers": ["CA"], "ocsp": true, "timeout_ms": 1000}"#);
    let fake = fake_now();
    let _first = request(&w, &fake, "good", &pem_of(pki::GOOD)); // its call never answers
    let (mut second, _) = request(&w, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!(fake.calls.borrow().len(), 1);
    fake.now.set(fake.now.get() + 1_300);
    assert!(second.on_wake(&fake), "no longer waiting for the other call");
    assert_eq!((fake.calls.borrow().len(), fake.reply_status()), (2, None), "it asked itself");
    second.on_call_response(&fake, fake.last_call().unwrap().token, der_response(pki::OCSP_GOOD));
    assert_eq!(fake.resumed.get(), 1);
}

#[test]
fn ocsp_revoked_is_refused_and_an_unverifiable_answer_is_no_status() {
    let w = revocation_worker(r#"{"cluster": "pki", "issuers": ["CA"], "ocsp": true}"#);
    let fake = fake_now();
    let (mut f, _) = request(&w, &fake, "revoked", &pem_of(pki::REVOKED));
    f.on_call_response(&fake, fake.last_call().unwrap().token, der_response(pki::OCSP_REVOKED));
    assert_eq!(reason(&fake), "the client certificate has been revoked");

    let (mut f, _) = request(&w, &fake, "good", &pem_of(pki::GOOD));
    f.on_call_response(&fake, fake.last_call().unwrap().token, der_response(pki::OCSP_ROGUE));
    assert_eq!(fake.reply_status(), Some(401));
    assert_eq!(fake.counter("oauth_mtls.revocation.ocsp_failed"), 1);
    assert_eq!(fake.counter("oauth_mtls.rejected.revocation_unavailable"), 1);
    // A failed call is not repeated for every request: within the retry delay there is no new call.
    let calls = fake.calls.borrow().len();
    request(&w, &fake, "good", &pem_of(pki::GOOD));
    assert_eq!((fake.reply_status(), fake.calls.borrow().len()), (Some(401), calls));
}

#[test]
fn ocsp_url_overrides_the_responder_in_the_certificate() {
    let w = revocation_worker(
        r#"{"cluster": "pki", "issuers": ["CA"], "ocsp": true, "ocsp_url": "http://responder:8080/r"}"#,
    );
    let fake = fake_now();
    request(&w, &fake, "good", &pem_of(pki::GOOD));
    let call = fake.last_call().unwrap();
    assert_eq!(call.authority, "responder:8080");
    assert!(call.path.starts_with("/r/"));
}

#[test]
fn a_certificate_of_an_issuer_not_listed_is_not_checked_but_counted() {
    let w = revocation_worker(r#"{"cluster": "pki", "issuers": ["CA"], "ocsp": true}"#);
    let fake = fake_now();
    request(&w, &fake, "dn", LEAF);
    assert_eq!((fake.reply_status(), fake.calls.borrow().len()), (None, 0));
    assert_eq!(fake.counter("oauth_mtls.revocation.not_covered"), 1);
}

#[test]
fn distribution_points_found_in_leaves_are_loaded_too() {
    let w = revocation_worker(r#"{"cluster": "pki", "issuers": ["CA"], "use_distribution_points": true}"#);
    let fake = fake_now();
    request(&w, &fake, "revoked", &pem_of(pki::REVOKED));
    assert_eq!(fake.reply_status(), Some(401));
    assert_eq!(fake.counter("oauth_mtls.rejected.revocation_unavailable"), 1, "its CRL is not loaded yet");
    load_crl(&w, &fake, der_response(pki::CRL));
    fake.advance_s(1);
    request(&w, &fake, "revoked", &pem_of(pki::REVOKED));
    assert_eq!(reason(&fake), "the client certificate has been revoked");
}

#[test]
fn a_crl_older_than_the_one_loaded_is_not_loaded_so_a_replayed_crl_cannot_undo_a_revocation() {
    let (w, fake) = (
        revocation_worker(&format!(
            r#"{{"cluster": "pki", "issuers": ["CA"], "crl_urls": ["{CRL_URL}"], "refresh_seconds": 1}}"#
        )),
        fake_now(),
    );
    load_crl(&w, &fake, der_response(pki::CRL));
    // A newer CRL is what was loaded last (its thisUpdate after this one's)...
    let key = crate::revocation::store::Keys::new("test").crl_meta(CRL_URL);
    let mut meta = crate::revocation::store::CrlMeta::decode(fake.shared_get(&key).0.as_deref());
    meta.this_update_ms += 1000;
    fake.shared_set(&key, &meta.encode(), None).unwrap();
    // ...and the next fetch answers with the older one.
    fake.advance_s(2);
    load_crl(&w, &fake, der_response(pki::CRL));
    assert_eq!(fake.counter("oauth_mtls.revocation.crl_failed"), 1);
    assert!(
        fake.logs.borrow().iter().any(|l| l.contains("older than the CRL already loaded")),
        "{:?}",
        fake.logs.borrow()
    );
}

#[test]
fn a_certificate_forwarded_in_xfcc_is_checked_like_one_presented_on_the_connection() {
    let w = worker(&format!(
        r#"{{"certificate_source": "xfcc", "trusted_forwarders": [{{"uri_san": "spiffe://example.org/front-proxy"}}],
            "clients": [{{"client_id": "revoked", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{}"}}],
            "revocation": {{"cluster": "pki", "issuers": ["{}"], "crl_urls": ["{CRL_URL}"]}}}}"#,
        dn_of(pki::REVOKED),
        pki::CA
    ));
    let fake = fake_now();
    load_crl(&w, &fake, der_response(pki::CRL));
    let xfcc = xfcc_for(&pem_of(pki::REVOKED));
    token_request(&fake, &[("x-forwarded-client-cert", &xfcc)]).peer(FORWARDER, true);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=revoked"]);
    assert_eq!(reason(&fake), "the client certificate has been revoked");
}
