//! Properties: The proxy's serialized header map.

use super::*;

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn a_serialized_header_map_reads_back_every_pair_in_order(
        pairs in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..12), prop::collection::vec(any::<u8>(), 0..24)), 0..8)
    ) {
        let map = crate::proxy::headers::Headers::from_pairs(&pairs);
        prop_assert!(!map.is_malformed());
        let read: Vec<(Vec<u8>, Vec<u8>)> = map.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(read, pairs);
    }

    #[test]
    fn any_bytes_from_the_proxy_read_as_a_map_or_as_malformed_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let map = crate::proxy::headers::Headers::from_serialized(bytes);
        if map.is_malformed() {
            prop_assert_eq!(map.iter().count(), 0);
        }
        let _ = map.get(":path");
    }

    #[test]
    fn a_damaged_serialized_map_is_read_whole_or_not_at_all(
        pairs in prop::collection::vec(("[a-z]{1,6}", "[a-z]{0,6}"), 1..6), at in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let good = crate::proxy::headers::Headers::from_pairs(&pairs);
        // Serialize by hand, damage one byte, and read: either the layout still holds (the same number of
        // headers) or the map is malformed and shows nothing.
        let mut serialized = Vec::new();
        serialized.extend_from_slice(&u32::try_from(pairs.len()).unwrap().to_le_bytes());
        for (n, v) in &pairs {
            serialized.extend_from_slice(&u32::try_from(n.len()).unwrap().to_le_bytes());
            serialized.extend_from_slice(&u32::try_from(v.len()).unwrap().to_le_bytes());
        }
        for (n, v) in &pairs {
            serialized.extend_from_slice(n.as_bytes());
            serialized.push(0);
            serialized.extend_from_slice(v.as_bytes());
            serialized.push(0);
        }
        prop_assert_eq!(crate::proxy::headers::Headers::from_serialized(serialized.clone()), good);
        let i = at.index(serialized.len());
        serialized[i] = byte;
        let damaged = crate::proxy::headers::Headers::from_serialized(serialized);
        if damaged.is_malformed() {
            prop_assert_eq!(damaged.iter().count(), 0);
        } else {
            prop_assert_eq!(damaged.iter().count(), pairs.len());
        }
    }
}
