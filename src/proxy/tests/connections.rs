//! What a worker remembers of connections and certificates, and what a request costs in host calls.

use super::*;

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
