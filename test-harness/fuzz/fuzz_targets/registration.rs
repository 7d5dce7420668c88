//! Fuzz target: a registry document (RFC 7591 client metadata list), then its shared-data buckets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::registry;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let _ = registry::decode_bucket(data);
    let Ok(doc) = registry::parse_document(data) else { return };
    let mut ids = HashSet::new();
    for stored in &doc.clients {
        assert!(ids.insert(stored.client_id.clone()), "client_id {} loaded twice", stored.client_id);
        assert!(stored.compile().is_ok(), "a loaded registration must compile");
    }
    // Every loaded client survives the trip through the buckets.
    let buckets = 1 + u32::from(data.first().copied().unwrap_or(0) % 8);
    let mut found = HashSet::new();
    for (index, bytes) in registry::encode_buckets(&doc.clients, buckets).iter().enumerate() {
        for (id, client) in registry::decode_bucket(bytes) {
            assert_eq!(registry::bucket_of(&id, buckets) as usize, index);
            assert_eq!(client.client_id, id);
            assert!(found.insert(id));
        }
    }
    assert_eq!(found, ids);
});
