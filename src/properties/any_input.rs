//! Properties: Every parser answers Ok or Err on any input.

use super::*;

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn every_parser_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = form::decode(&bytes);
        let _ = form::client_id(&bytes);
        let _ = form::is_form_content_type(&bytes);
        let _ = basic::client_id(&bytes);
        let _ = request::client_id(&bytes, Some(&bytes));
        let _ = xfcc::parse(&bytes);
        let _ = client_cert::parse_client_cert(&bytes);
        let _ = client_cert::parse_client_cert_chain(&bytes);
        let _ = pem::decode_certificates(&bytes);
        let _ = Dn::parse(&String::from_utf8_lossy(&bytes));
        let _ = Leaf::from_der(&bytes);
        let _ = registry::parse_document(&bytes);
        let _ = registry::decode_bucket(&bytes);
        let _ = registry::Meta::decode(Some(&bytes));
        let _ = registry::Lease::decode(Some(&bytes));
        let _ = registry::JwksEntry::decode(Some(&bytes));
        let _ = jwks::parse_thumbprints(&bytes);
        let _ = Config::parse(&bytes);
        let _ = discovery::amend(&bytes, None, None);
        let text = String::from_utf8_lossy(&bytes);
        let _ = JwksUri::parse(&text);
        let _ = jwks::thumbprint_from_hex(&text);
        for kind in [SanKind::Dns, SanKind::Uri, SanKind::Ip, SanKind::Email] {
            let _ = SanRule::parse(kind, &text);
        }
    }

    #[test]
    fn header_parsers_survive_their_own_special_characters(s in "[ \t,;=\"\\\\:%+/A-Za-z0-9*?.-]{0,80}") {
        let _ = xfcc::parse(s.as_bytes());
        let _ = client_cert::parse_client_cert(s.as_bytes());
        let _ = client_cert::parse_client_cert_chain(s.as_bytes());
        let _ = form::client_id(s.as_bytes());
        let _ = basic::client_id(s.as_bytes());
        let _ = pem::decode_certificates(s.as_bytes());
    }

    #[test]
    fn certificate_parser_survives_corrupted_certificates(
        cert in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let pems = [LEAF, FORWARDER, SELF_SIGNED_1, SELF_SIGNED_2];
        let bytes = mutated(&der(pems[cert]), &edits, cut);
        if let Ok(leaf) = Leaf::from_der(&bytes) {
            prop_assert!(!leaf.subject.to_string().contains(['\r', '\n']));
        }
        let mut dir = tls_dn_directory("CN=nobody").unwrap();
        let verdict = decide(Some("c"), &Presented::certificate(bytes, true), UnknownClient::Reject, &mut dir);
        prop_assert!(matches!(verdict, Verdict::Reject(_)));
    }

    #[test]
    fn json_parsers_survive_arbitrary_json(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let _ = registry::parse_document(&bytes);
        let _ = registry::parse_document(&serde_json::to_vec(&json!([value])).unwrap());
        let _ = crate::oauth::registration::check(&value);
        let _ = jwks::x5c_thumbprints(&value);
        let _ = jwks::x5c_thumbprints(&json!({"keys": [{"x5c": [value.clone()]}, value.clone()]}));
        let _ = Config::parse(&bytes);
        let _ = discovery::amend(&bytes, None, None);
    }
}

fn one_line(error: impl std::fmt::Display) -> Result<(), TestCaseError> {
    let text = error.to_string();
    prop_assert!(!text.contains(['\r', '\n']), "error message is not one line: {:?}", text);
    Ok(())
}

proptest! {
    #![proptest_config(cases(128))]

    /// Error messages reach logs and response bodies: never more than one line, whatever the input echoes.
    #[test]
    fn every_error_message_is_one_line(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        key in "\\PC{0,4}[\r\n\u{85}\u{2028}]\\PC{0,4}|\\PC{0,8}",
        value in "\\PC{0,4}[\r\n\u{85}\u{2028}]\\PC{0,4}|\\PC{0,8}",
    ) {
        if let Err(e) = form::decode(&bytes) { one_line(e)?; }
        if let Err(e) = basic::client_id(&bytes) { one_line(e)?; }
        if let Err(e) = xfcc::parse(&bytes) { one_line(e)?; }
        if let Err(e) = client_cert::parse_client_cert(&bytes) { one_line(e)?; }
        if let Err(e) = client_cert::parse_client_cert_chain(&bytes) { one_line(e)?; }
        if let Err(e) = pem::decode_certificates(&bytes) { one_line(e)?; }
        if let Err(e) = Dn::parse(&String::from_utf8_lossy(&bytes)) { one_line(e)?; }
        if let Err(e) = Dn::parse(&value) { one_line(e)?; }
        if let Err(e) = Leaf::from_der(&bytes) { one_line(e)?; }
        if let Err(e) = registry::parse_document(&bytes) { one_line(e)?; }
        if let Err(e) = jwks::parse_thumbprints(&bytes) { one_line(e)?; }
        if let Err(e) = discovery::amend(&bytes, None, None) { one_line(e)?; }
        if let Err(e) = JwksUri::parse(&value) { one_line(e)?; }
        if let Err(e) = Config::parse(&bytes) { one_line(e)?; }
        // The configuration and registrations echo member names and values from the document.
        let configs = [
            json!({(key.clone()): 1}),
            json!({"registry": {"cluster": "r", (key.clone()): 1}}),
            json!({"certificate_source": value}),
            json!({"endpoints": [value]}),
            json!({"forward_certificate": {"header": value}}),
            json!({"trusted_forwarders": [{"subject_dn": value}]}),
            json!({"clients": [{"client_id": value, "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": value}]}),
        ];
        for doc in configs {
            if let Err(e) = Config::parse(&serde_json::to_vec(&doc).unwrap()) { one_line(e)?; }
        }
        let tls = |field: &str| json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", (field): value});
        let registrations = [
            tls("tls_client_auth_subject_dn"),
            tls("tls_client_auth_san_ip"),
            tls("tls_client_auth_san_email"),
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": value}),
            json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a", "tls_client_auth_issuer_keys": [value]}),
        ];
        for metadata in registrations {
            if let Err(e) = crate::oauth::registration::check(&metadata) { one_line(e)?; }
        }
    }
}
