//! What the filter tells Envoy's access log and probes: each decision, the local reply's details, log lines only
//! at the levels Envoy prints, and readiness at `readiness_path`.

use super::*;
use crate::oauth::verdict::{PassReason, Reason};
use crate::proxy::decision::Ruling;
use crate::proxy::host::Level;

#[test]
fn an_authenticated_request_records_client_method_and_both_thumbprints() {
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=dn"]);
    let d = fake.decision().unwrap();
    assert_eq!(
        (d.ruling, d.client_id.as_deref(), d.method),
        (Ruling::Authenticated, Some("dn"), Some("tls_client_auth"))
    );
    assert_eq!(d.x5t_s256, Some(crate::cert::x5t_s256(&der(LEAF))));
    assert_eq!(
        d.sha256,
        fake.properties
            .borrow()
            .get("connection.sha256_peer_certificate_digest")
            .map(|h| String::from_utf8(h.clone()).unwrap())
    );
}

#[test]
fn a_passed_request_records_why_it_passed() {
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=stranger"]);
    let d = fake.decision().unwrap();
    assert_eq!((d.ruling, d.client_id.as_deref()), (Ruling::Passed(PassReason::UnknownClient), Some("stranger")));
}

#[test]
fn a_rejection_records_its_reason_and_names_it_in_the_reply_details() {
    let fake = Fake::new();
    token_request(&fake, &[("x-request-id", "req-42")]).peer(SELF_SIGNED_1, true);
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=dn"]);
    assert_eq!(fake.decision().unwrap().ruling, Ruling::Rejected(Reason::SubjectMismatch));
    assert_eq!(fake.reply.borrow().as_ref().unwrap().details, "oauth_mtls.rejected.subject_mismatch");
}

#[test]
fn a_rejection_log_line_names_the_path_the_request_id_and_the_hex_thumbprint() {
    let fake = Fake::new();
    token_request(&fake, &[("x-request-id", "req-42")]).peer(SELF_SIGNED_1, true);
    send(&mut RequestFilter::new(dn_worker()), &fake, &[b"client_id=dn"]);
    let hex = crate::hex::encode(&crate::cert::sha256(&der(SELF_SIGNED_1)));
    let log = fake.logs.borrow().join("\n");
    assert!(log.contains(&format!("sha256={hex} status=401 path=/token request_id=req-42:")), "{log}");
}

#[test]
fn a_request_the_filter_does_not_act_on_records_nothing() {
    let fake = Fake::new();
    fake.request(&[(":method", "GET"), (":path", "/userinfo")]);
    RequestFilter::new(dn_worker()).on_request_headers(&fake, true);
    assert_eq!(fake.decision(), None);
}

#[test]
fn the_authenticated_line_is_not_even_formatted_when_envoy_does_not_print_debug() {
    let (w, fake) = (dn_worker(), Fake::new());
    fake.log_level.set(Level::Info);
    w.read_log_level(&fake);
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]);
    assert!(fake.logs.borrow().is_empty(), "{:?}", fake.logs.borrow());
    fake.log_level.set(Level::Debug);
    w.on_tick(&fake);
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(w), &fake, &[b"client_id=dn"]);
    assert!(fake.logs.borrow().iter().any(|l| l.starts_with("Debug: authenticated client_id=dn")));
}

fn probe(w: &Rc<Worker>, fake: &Fake, method: &str) -> (u16, serde_json::Value) {
    fake.request(&[(":method", method), (":path", "/ready?verbose=1")]);
    assert_eq!(RequestFilter::new(w.clone()).on_request_headers(fake, true), Action::Pause);
    (fake.reply_status().unwrap(), fake.reply_json())
}

#[test]
fn without_a_registry_the_filter_is_ready() {
    let (w, fake) = (worker(r#"{"readiness_path": "/ready"}"#), Fake::new());
    assert_eq!(probe(&w, &fake, "GET"), (200, serde_json::json!({"status": "ready"})));
    assert_eq!(fake.reply.borrow().as_ref().unwrap().details, "oauth_mtls.ready");
}

#[test]
fn readiness_follows_the_registry_through_an_outage_and_its_recovery() {
    let (w, fake) = (registry_worker(r#", "readiness_path": "/ready""#), Fake::new());
    assert_eq!(probe(&w, &fake, "GET").1["reason"], "registry_not_loaded");
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    assert_eq!(probe(&w, &fake, "HEAD").0, 200);
    fake.advance_s(61);
    refresh(&w, &fake, CallResponse::default());
    assert_eq!(probe(&w, &fake, "GET"), (503, serde_json::json!({"status": "not_ready", "reason": "registry_stale"})));
    fake.advance_s(20);
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    assert_eq!(probe(&w, &fake, "GET").0, 200);
}

#[test]
fn the_readiness_path_answers_only_get_and_head() {
    let (w, fake) = (worker(r#"{"readiness_path": "/ready"}"#), Fake::new());
    assert_eq!(probe(&w, &fake, "DELETE").0, 405);
}

#[test]
fn other_paths_are_not_answered_by_readiness() {
    let (w, fake) = (worker(r#"{"readiness_path": "/ready"}"#), Fake::new());
    fake.request(&[(":method", "GET"), (":path", "/ready/x")]);
    assert_eq!(RequestFilter::new(w).on_request_headers(&fake, true), Action::Continue);
    assert_eq!(fake.reply_status(), None);
}
