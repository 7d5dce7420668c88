//! Properties: Forms, Basic credentials and the client_id rule.

use super::*;

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn form_encode_decode_round_trips(
        pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..6),
        plus in any::<bool>(),
        empty_pieces in any::<bool>(),
    ) {
        let sep = if empty_pieces { "&&" } else { "&" };
        let body = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", form_encode(n, plus), form_encode(v, plus)))
            .collect::<Vec<_>>()
            .join(sep);
        let body = if empty_pieces { format!("&{body}&") } else { body };
        prop_assert_eq!(form::decode(body.as_bytes()), Ok(pairs));
    }

    #[test]
    fn client_id_is_found_once_and_a_repeat_is_an_error(
        others in prop::collection::vec(("[a-z_]{1,10}", any::<String>()), 0..5),
        ids in prop::collection::vec((any::<String>(), 0u8..3, any::<prop::sample::Index>()), 0..4),
    ) {
        let mut pairs: Vec<(String, String)> =
            others.into_iter().filter(|(n, _)| n != "client_id").map(|(n, v)| (n, form_encode(&v, true))).collect();
        for (value, spelling, at) in &ids {
            let name = ["client_id", "client%5Fid", "%63lient_id"][usize::from(*spelling)];
            pairs.insert(at.index(pairs.len() + 1), (name.to_string(), form_encode(value, true)));
        }
        let body = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&");
        let found = form::client_id(body.as_bytes());
        match ids.len() {
            0 => prop_assert_eq!(found, Ok(None)),
            1 => prop_assert_eq!(found, Ok(Some(ids[0].0.clone()))),
            _ => prop_assert_eq!(found, Err(form::FormError::DuplicateParameter("client_id".into()))),
        }
    }

    #[test]
    fn basic_credentials_round_trip(
        id in any::<String>(),
        secret in any::<String>(),
        scheme in proptest::sample::select(vec!["Basic", "basic", "BASIC"]),
        pad in " {0,2}",
    ) {
        let credentials = STANDARD.encode(format!("{}:{}", form_encode(&id, true), form_encode(&secret, true)));
        let header = format!("{pad}{scheme} {pad}{credentials}{pad}");
        prop_assert_eq!(basic::client_id(header.as_bytes()), Ok(Some(id.clone())));
        // Basic credentials and a form body naming the same client agree.
        let body = format!("grant_type=client_credentials&client_id={}", form_encode(&id, false));
        prop_assert_eq!(request::client_id(body.as_bytes(), Some(header.as_bytes())), Ok(Some(id)));
    }

    #[test]
    fn basic_and_body_naming_different_clients_is_rejected(a in "[a-z]{1,8}", b in "[a-z]{1,8}") {
        prop_assume!(a != b);
        let header = format!("Basic {}", STANDARD.encode(format!("{a}:secret")));
        let body = format!("client_id={b}");
        let rejected = request::client_id(body.as_bytes(), Some(header.as_bytes())).unwrap_err();
        prop_assert_eq!(rejected.reason, Reason::InvalidRequest);
    }

    #[test]
    fn other_authorization_schemes_carry_no_client_id(token in "[A-Za-z0-9._~+/=-]{0,40}") {
        prop_assert_eq!(basic::client_id(format!("Bearer {token}").as_bytes()), Ok(None));
    }
}
