//! Properties: Small laws.

use super::*;

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn thumbprint_hex_round_trips(print in any::<Thumbprint>()) {
        prop_assert_eq!(jwks::thumbprint_from_hex(&jwks::hex(&print)), Some(print));
        prop_assert_eq!(jwks::thumbprint_from_hex(&jwks::hex(&print).to_uppercase()), Some(print));
    }

    #[test]
    fn jwks_thumbprints_are_the_sha256_of_each_x5c(certs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..4)) {
        let keys: Vec<Value> = certs.iter().map(|c| json!({"kty": "RSA", "x5c": [STANDARD.encode(c), "ignored"]})).collect();
        let doc = serde_json::to_vec(&json!({"keys": keys})).unwrap();
        let expected: Vec<Thumbprint> = certs.iter().map(|c| crate::cert::sha256(c)).collect();
        prop_assert_eq!(jwks::parse_thumbprints(&doc), Ok(expected));
    }
}
