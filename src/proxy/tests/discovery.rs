//! Authorization server metadata amended with what the edge provides (RFC 8705 §5).

use super::*;

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
