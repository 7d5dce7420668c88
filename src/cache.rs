//! A bounded per-worker cache of parsed leaf certificates, keyed by the SHA-256 of their DER.
//!
//! A client presents the same certificate on every request of a connection and across connections, so
//! each worker parses it once. Entries are evicted least-recently-used when the cache is full.

use crate::cert::{self, CertError, Leaf};
use std::collections::HashMap;
use std::rc::Rc;

pub struct LeafCache {
    entries: HashMap<[u8; 32], (u64, Rc<Leaf>)>,
    capacity: usize,
    clock: u64,
}

impl LeafCache {
    pub fn new(capacity: usize) -> LeafCache {
        LeafCache { entries: HashMap::new(), capacity: capacity.max(1), clock: 0 }
    }

    /// The parsed leaf of `der`, from the cache or parsed now (parse errors are not cached).
    pub fn get_or_parse(&mut self, der: &[u8]) -> Result<Rc<Leaf>, CertError> {
        self.clock += 1;
        let key = cert::sha256(der);
        if let Some((used, leaf)) = self.entries.get_mut(&key) {
            *used = self.clock;
            return Ok(leaf.clone());
        }
        let leaf = Rc::new(Leaf::from_der(der)?);
        if self.entries.len() >= self.capacity {
            let oldest = self.entries.iter().min_by_key(|(_, (used, _))| *used).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(key, (self.clock, leaf.clone()));
        Ok(leaf)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{der, FORWARDER, LEAF, SELF_SIGNED_1};

    #[test]
    fn a_certificate_is_parsed_once() {
        let mut c = LeafCache::new(4);
        let a = c.get_or_parse(&der(LEAF)).unwrap();
        let b = c.get_or_parse(&der(LEAF)).unwrap();
        assert!(Rc::ptr_eq(&a, &b));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted_when_full() {
        let mut c = LeafCache::new(2);
        let leaf = c.get_or_parse(&der(LEAF)).unwrap();
        c.get_or_parse(&der(FORWARDER)).unwrap();
        c.get_or_parse(&der(LEAF)).unwrap(); // LEAF is now the most recent
        c.get_or_parse(&der(SELF_SIGNED_1)).unwrap(); // evicts FORWARDER
        assert_eq!(c.len(), 2);
        assert!(Rc::ptr_eq(&leaf, &c.get_or_parse(&der(LEAF)).unwrap()));
    }

    #[test]
    fn parse_errors_are_returned_and_not_cached() {
        let mut c = LeafCache::new(2);
        assert!(c.get_or_parse(b"garbage").is_err());
        assert!(c.is_empty());
    }
}
