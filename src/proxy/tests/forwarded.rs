//! Certificates forwarded by a trusted front proxy: XFCC and RFC 9440 Client-Cert.

use super::*;

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
fn xfcc_from_an_untrusted_peer_is_removed_from_requests_the_filter_does_not_act_on_too() {
    let fake = Fake::new();
    let xfcc = xfcc_for(LEAF);
    fake.request(&[(":method", "GET"), (":path", "/api/accounts"), ("x-forwarded-client-cert", &xfcc)])
        .peer(LEAF, true);
    assert_eq!(RequestFilter::new(xfcc_worker()).on_request_headers(&fake, true), Action::Continue);
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
