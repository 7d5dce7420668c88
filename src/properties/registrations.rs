//! Properties: Registry, discovery, verdict.

use super::*;

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn registry_buckets_keep_every_client(
        ids in prop::collection::hash_set("[a-z0-9._-]{1,12}|\\PC{1,6}", 0..24),
        kinds in prop::collection::vec(any::<u8>(), 24),
        buckets in 1u32..20,
    ) {
        let clients: Vec<Stored> = ids.iter().enumerate().map(|(i, id)| stored(id.clone(), kinds[i], i)).collect();
        let encoded = registry::encode_buckets(&clients, buckets);
        prop_assert_eq!(encoded.len(), buckets as usize);
        let mut seen = HashMap::new();
        for (index, bytes) in encoded.iter().enumerate() {
            for (id, client) in registry::decode_bucket(bytes) {
                prop_assert_eq!(registry::bucket_of(&id, buckets), index as u32);
                prop_assert!(seen.insert(id, client).is_none());
            }
        }
        prop_assert_eq!(seen.len(), clients.len());
        for s in &clients {
            prop_assert_eq!(seen.get(&s.client_id).map(|c| (**c).clone()), Some(s.compile().unwrap()));
        }
        // The encoding does not depend on the order of the document.
        let mut reversed = clients.clone();
        reversed.reverse();
        prop_assert_eq!(registry::encode_buckets(&reversed, buckets), encoded);
    }

    #[test]
    fn registry_loads_only_the_client_ids_listed_once(entries in prop::collection::vec((0u8..4, 0usize..3), 0..12)) {
        let methods = ["client_secret_basic", "private_key_jwt", "none"];
        let list: Vec<Value> = entries
            .iter()
            .map(|(id, m)| json!({"client_id": format!("c{id}"), "token_endpoint_auth_method": methods[*m]}))
            .collect();
        let doc = registry::parse_document(&serde_json::to_vec(&list).unwrap()).unwrap();
        let mut first = Vec::new();
        let mut later = Vec::new();
        let mut seen = HashSet::new();
        for (id, m) in &entries {
            if seen.insert(*id) {
                first.push((format!("c{id}"), methods[*m].to_string()));
            } else {
                later.push(format!("c{id}"));
            }
        }
        first.retain(|(id, _)| !later.contains(id));
        let kept: Vec<(String, String)> = doc.clients.iter().map(|s| (s.client_id.clone(), s.method.clone())).collect();
        prop_assert_eq!(kept, first);
        prop_assert_eq!(&doc.duplicates, &later);
        prop_assert!(doc.refused.is_empty());
        let wrapped = registry::parse_document(&serde_json::to_vec(&json!({"clients": list})).unwrap()).unwrap();
        prop_assert_eq!(wrapped, doc);
    }

    /// Parsing registration by registration accepts, refuses and loads exactly what parsing the whole
    /// document at once did, whatever the document and however it is damaged.
    #[test]
    fn registry_scanning_agrees_with_parsing_the_whole_document(
        value in json_value(),
        wrap in 0u8..3,
        pretty in any::<bool>(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(b"{}[]\",:\\ 0-e.tnx\x01".to_vec())),
            0..3,
        ),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let doc = match wrap {
            0 => value,
            1 => json!([value, {"client_id": "a"}]),
            _ => json!({"x": value.clone(), "clients": [value, {"client_id": "b"}]}),
        };
        let text = if pretty { serde_json::to_vec_pretty(&doc) } else { serde_json::to_vec(&doc) }.unwrap();
        let bytes = mutated(&text, &edits, cut);
        if let Err(e) = registry::tests::agrees_with_whole_parse(&bytes) {
            prop_assert!(false, "{}", e);
        }
    }

    /// A damaged bucket gives an error or a miss for a client, never a panic nor another client's registration.
    #[test]
    fn a_damaged_bucket_never_yields_another_clients_registration(
        ids in prop::collection::btree_set("[a-z]{1,6}", 1..12),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        wanted in "[a-z]{1,6}",
    ) {
        let clients: Vec<Stored> = ids.iter().enumerate().map(|(i, id)| stored(id.clone(), i as u8, i)).collect();
        let damaged = mutated(&registry::encode_buckets(&clients, 1).remove(0), &edits, cut);
        let _ = crate::registry::bucket::entries(&damaged);
        let _ = registry::decode_bucket(&damaged);
        for id in ids.iter().chain([&wanted]) {
            if let Ok(Some(found)) = registry::find_client(&damaged, id) {
                prop_assert_eq!(&found.client_id, id);
            }
        }
    }

    /// A load in slices of any size writes the buckets of the whole document.
    #[test]
    fn a_sliced_load_writes_the_buckets_of_the_whole_document(
        entries in prop::collection::vec((0u8..12, 0usize..4), 0..16),
        buckets in 1u32..6,
        registrations in 1usize..5,
        scan_bytes in 1usize..80,
        write_bytes in 1usize..400,
        write_buckets in 1usize..4,
    ) {
        let methods = ["client_secret_basic", "none", "tls_client_auth", "self_signed_tls_client_auth"];
        let list: Vec<Value> = entries
            .iter()
            .map(|(id, m)| json!({"client_id": format!("c{id}"), "token_endpoint_auth_method": methods[*m],
                                  "tls_client_auth_san_dns": "a.example.com", "jwks_uri": "https://x/j"}))
            .collect();
        let body = serde_json::to_vec(&json!({"clients": list})).unwrap();
        let whole = registry::parse_document(&body).unwrap();
        let budget = crate::registry::load::Budget { registrations, scan_bytes, write_bytes, write_buckets };
        let mut load = crate::registry::load::Load::new(body, buckets, None, None, budget);
        let mut written = Vec::new();
        for _ in 0..10_000 {
            match load.step().unwrap() {
                crate::registry::load::Step::Parsed(_) => {}
                crate::registry::load::Step::Write(values) => written.extend(values.into_iter().map(|(_, v)| v)),
                crate::registry::load::Step::Done(summary) => {
                    prop_assert_eq!(summary.clients, whole.clients.len() as u64);
                    let not_loaded = whole.refused.len() + whole.duplicates.len() + whole.withdrawn.len();
                    prop_assert_eq!(summary.refused, not_loaded as u64);
                    break;
                }
            }
        }
        prop_assert_eq!(written, registry::encode_buckets(&whole.clients, buckets));
    }

    #[test]
    fn discovery_amend_is_idempotent_and_keeps_every_member(doc in metadata(), with_aliases in any::<bool>()) {
        let aliases: Map<String, Value> = [("token_endpoint".to_string(), json!("https://mtls.example.com/token"))].into_iter().collect();
        let aliases = with_aliases.then_some(&aliases);
        let input = serde_json::to_vec(&doc).unwrap();
        let once = discovery::amend(&input, aliases, None).unwrap();
        let twice = discovery::amend(&once, aliases, None).unwrap();
        prop_assert_eq!(&twice, &once);
        let amended: Map<String, Value> = serde_json::from_slice(&once).unwrap();
        // Every original member keeps its place and (apart from the methods list) its value.
        let keys: Vec<&String> = amended.keys().collect();
        prop_assert_eq!(&keys[..doc.len()], &doc.keys().collect::<Vec<_>>()[..]);
        for (key, value) in &doc {
            if key != "token_endpoint_auth_methods_supported" && key != "tls_client_certificate_bound_access_tokens" && key != "mtls_endpoint_aliases" {
                prop_assert_eq!(&amended[key], value);
            }
        }
        let methods = amended["token_endpoint_auth_methods_supported"].as_array().unwrap();
        let before = doc.get("token_endpoint_auth_methods_supported").and_then(Value::as_array).cloned().unwrap_or_default();
        prop_assert_eq!(&methods[..before.len()], &before[..]);
        for m in ["tls_client_auth", "self_signed_tls_client_auth"] {
            prop_assert!(methods.iter().any(|v| v == m));
        }
        prop_assert_eq!(&amended["tls_client_certificate_bound_access_tokens"], &json!(true));
    }

    #[test]
    fn verdict_never_authenticates_a_client_whose_registered_dn_differs(
        kind in any::<u8>(),
        at in any::<usize>(),
        extra in "[a-z0-9]{1,4}",
        knobs in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        let subject = leaf_subject();
        let other = differing(&subject, kind, at, &extra);
        let registered = variant(&other, &knobs, true);
        let mut dir = tls_dn_directory(&registered).unwrap();
        let presented = Presented::certificate(der(LEAF), true);
        match decide(Some("c"), &presented, UnknownClient::Reject, &mut dir) {
            Verdict::Reject(r) => prop_assert_eq!(r.reason, Reason::SubjectMismatch, "{}", registered),
            v => prop_assert!(false, "{registered} gave {v:?}"),
        }
    }

    #[test]
    fn verdict_authenticates_the_registered_dn_however_it_is_spelled(knobs in prop::collection::vec(any::<u8>(), 1..32), validated in any::<bool>()) {
        let registered = variant(&leaf_subject(), &knobs, true);
        let mut dir = tls_dn_directory(&registered).unwrap();
        let presented = Presented::certificate(der(LEAF), validated);
        let verdict = decide(Some("c"), &presented, UnknownClient::Reject, &mut dir);
        if validated {
            prop_assert!(matches!(verdict, Verdict::Authenticated(ref a) if a.client_id == "c"), "{registered} gave {verdict:?}");
        } else {
            // tls_client_auth never accepts an unvalidated chain, whatever the subject.
            prop_assert!(matches!(verdict, Verdict::Reject(ref r) if r.reason == Reason::NotValidated), "{verdict:?}");
        }
    }

    #[test]
    fn verdict_only_authenticates_what_the_registration_names(
        registered in dn(),
        san in "[a-z.]{1,12}|spiffe://[a-z/]{1,12}",
        san_kind in 0u8..2,
        prints in prop::collection::vec(any::<[u8; 32]>(), 1..3),
        cert in 0usize..4,
        self_signed in any::<bool>(),
    ) {
        let pems = [LEAF, FORWARDER, SELF_SIGNED_1, SELF_SIGNED_2];
        let der = der(pems[cert]);
        let leaf = Leaf::from_der(&der).unwrap();
        let metadata = if self_signed {
            let keys: Vec<Value> = prints.iter().map(|p| json!({"kty": "EC", "x5c": [STANDARD.encode(p)]})).collect();
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": keys}})
        } else if san_kind == 0 {
            json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": registered.to_string()})
        } else {
            json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": san})
        };
        let Ok(mut dir) = directory(metadata) else { return Ok(()) };
        let presented = Presented::certificate(der, true);
        if let Verdict::Authenticated(_) = decide(Some("c"), &presented, UnknownClient::Reject, &mut dir) {
            // x5c values are not certificates here, so their thumbprints never equal a real one.
            prop_assert!(!self_signed);
            if san_kind == 0 {
                prop_assert!(registered.matches(&leaf.subject));
            } else {
                prop_assert!(SanRule::parse(SanKind::Uri, &san).unwrap().matches(&leaf.sans));
            }
        }
    }
}
