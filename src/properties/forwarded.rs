//! Properties: x-forwarded-client-cert, RFC 9440 Client-Cert, PEM.

use super::*;

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn xfcc_quoted_subject_round_trips_and_yields_no_second_cert(subject in text(), uri in text(), body in prop::collection::vec(any::<u8>(), 1..64)) {
        let pem_text = pem::encode(&body);
        let value = format!(
            "By=spiffe://proxy;Hash=00;Subject={};URI={};Cert={}",
            xfcc_quote(&subject),
            xfcc_quote(&uri),
            xfcc_quote(&url_encode(&pem_text)),
        );
        let elements = xfcc::parse(value.as_bytes()).unwrap();
        prop_assert_eq!(elements.len(), 1);
        prop_assert_eq!(elements[0].subject.as_deref(), Some(subject.as_str()));
        prop_assert_eq!(&elements[0].uri, &vec![uri]);
        prop_assert_eq!(elements[0].cert.as_deref(), Some(pem_text.as_str()));
    }

    #[test]
    fn xfcc_elements_come_back_in_order(subjects in prop::collection::vec(text(), 1..5)) {
        let value = subjects.iter().map(|s| format!("Hash=00;Subject={}", xfcc_quote(s))).collect::<Vec<_>>().join(",");
        let parsed: Vec<Option<String>> = xfcc::parse(value.as_bytes()).unwrap().into_iter().map(|e| e.subject).collect();
        prop_assert_eq!(parsed, subjects.into_iter().map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn client_cert_encode_parse_round_trips(
        der in prop::collection::vec(any::<u8>(), 1..400),
        unpadded in any::<bool>(),
        params in proptest::sample::select(vec!["", ";a=1", "; b=?0", ";k=\"x\\\"y\"", ";t=tok/1:2", ";n=-1.5;m", ";z=:AQ==:"]),
        pad in " {0,2}",
    ) {
        let mut item = client_cert::encode(&der);
        if unpadded {
            item = item.replace('=', "");
        }
        let value = format!("{pad}{item}{params}{pad}");
        prop_assert_eq!(client_cert::parse_client_cert(value.as_bytes()), Ok(der));
    }

    #[test]
    fn client_cert_chain_encode_parse_round_trips(
        chain in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 0..5),
        sep in proptest::sample::select(vec![",", ", ", " ,\t", ",  "]),
    ) {
        let value = chain.iter().map(|d| client_cert::encode(d)).collect::<Vec<_>>().join(sep);
        prop_assert_eq!(client_cert::parse_client_cert_chain(value.as_bytes()), Ok(chain));
    }

    #[test]
    fn pem_encode_decode_round_trips(
        ders in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 1..4),
        junk in "[a-z .:\n]{0,20}",
        other_block in any::<bool>(),
        crlf in any::<bool>(),
        url_encoded in any::<bool>(),
    ) {
        let mut text = String::new();
        for d in &ders {
            text.push_str(&junk);
            if other_block {
                text.push_str("-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n");
            }
            text.push_str(&pem::encode(d));
        }
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        if url_encoded {
            text = url_encode(&text);
        }
        prop_assert_eq!(pem::decode_certificates(text.as_bytes()), Ok(ders.clone()));
        prop_assert_eq!(pem::decode_leaf(text.as_bytes()), Ok(ders[0].clone()));
    }
}
