//! Token requests at an endpoint: annotation, refusal, body framing, client ids, replies.

use super::*;

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
fn a_forwarding_header_with_a_name_of_63_characters_or_more_is_stripped_too() {
    // Names are first told apart by their length, and lengths from 63 up are one: each is still compared.
    for len in [62, 63, 64, 100] {
        let name = format!("x-{}", "c".repeat(len - 2));
        let w = worker(&format!(r#"{{"forward_certificate": {{"header": "{name}"}}}}"#));
        let fake = Fake::new();
        let longer = format!("{name}x");
        fake.request(&[(":method", "GET"), (":path", "/x"), (&name.to_uppercase(), "forged"), (&longer, "kept")]);
        assert_eq!(RequestFilter::new(w).on_request_headers(&fake, true), Action::Continue);
        assert_eq!(fake.header(&name), None, "{len}");
        assert_eq!(fake.header(&longer).as_deref(), Some("kept"), "{len}");
    }
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
