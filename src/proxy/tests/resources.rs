//! Protected resources (RFC 8705 §3): the token must be bound to the presented certificate.

use super::*;

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
fn a_resource_without_jwt_authn_metadata_fails_closed_where_binding_is_not_required_too() {
    let fake = Fake::new();
    resource_request(&fake, "/legacy/x", None).peer(LEAF, true);
    assert_eq!(RequestFilter::new(resource_worker()).on_request_headers(&fake, true), Action::Pause);
    assert!(www_authenticate(&fake).contains("no verified access token"));
}

#[test]
fn a_token_bound_to_another_certificate_is_refused_where_binding_is_not_required_too() {
    let fake = Fake::new();
    let x5t = crate::cert::x5t_s256(&der(LEAF));
    resource_request(&fake, "/legacy/x", Some(Some(&x5t))).peer(SELF_SIGNED_1, false);
    assert_eq!(RequestFilter::new(resource_worker()).on_request_headers(&fake, true), Action::Pause);
    assert!(www_authenticate(&fake).contains("another certificate"));
}

#[test]
fn an_empty_cnf_thumbprint_is_an_unbound_token() {
    let fake = Fake::new();
    resource_request(&fake, "/api/x", Some(Some(""))).peer(LEAF, true);
    RequestFilter::new(resource_worker()).on_request_headers(&fake, true);
    assert!(www_authenticate(&fake).contains("not certificate-bound"));
    resource_request(&fake, "/legacy/x", Some(Some(""))).peer(LEAF, true);
    assert_eq!(RequestFilter::new(resource_worker()).on_request_headers(&fake, true), Action::Continue);
}

#[test]
fn the_whole_payload_is_read_only_when_the_token_has_no_cnf_thumbprint() {
    // A bound token's claim is found only under its verified payload: the costly payload read adds nothing.
    let payload = "metadata.filter_metadata.envoy.filters.http.jwt_authn.jwt_payload";
    let reads_of_payload = |cnf: Option<&str>| {
        let fake = Fake::new();
        resource_request(&fake, "/legacy/x", Some(cnf)).peer(LEAF, true);
        RequestFilter::new(resource_worker()).on_request_headers(&fake, true);
        let reads = fake.property_reads.borrow();
        reads.iter().filter(|p| *p == payload).count()
    };
    assert_eq!(reads_of_payload(Some(&crate::cert::x5t_s256(&der(LEAF)))), 0);
    assert_eq!(reads_of_payload(None), 1);
    assert_eq!(reads_of_payload(Some("")), 1);
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
