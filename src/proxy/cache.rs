//! The per-worker caches of the request path: certificates by the SHA-256 of their DER, what Envoy said of a
//! connection's peer by connection id, and the bounded map they (and the registry's decoded clients) are kept in.
//!
//! A client presents the same certificate on every request of a connection and across connections. Envoy
//! hashes the connection's peer certificate once per connection (`connection.sha256_peer_certificate_digest`),
//! so the first request of a connection on a certificate the worker has seen costs no PEM read, base64,
//! hashing or X.509 decoding, and later requests on that connection cost one property read (its id): in
//! Envoy each property read or header write costs thousands of instructions, more than the whole decision.

use crate::cert::Certificate;
use crate::config::ForwardFormat;
use crate::forwarded::forward;
use crate::forwarded::source::PeerError;
use crate::proxy::memory::{Part, Weigh, ENTRY_OVERHEAD};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

/// A map that keeps at most `capacity` entries weighing at most its part of the memory budget together:
/// when either would be passed, the older half (by last use) is dropped, as often as needed, which costs
/// one pass over the map each time. An entry heavier than the part's `max_entry` is not kept.
pub struct Lru<K, V> {
    entries: HashMap<K, Slot<V>>,
    capacity: usize,
    part: Part,
    bytes: usize,
    clock: u64,
}

struct Slot<V> {
    used: u64,
    weight: usize,
    value: V,
}

impl<K: Eq + Hash, V> Lru<K, V> {
    pub fn new(capacity: usize, part: Part) -> Lru<K, V> {
        Lru { entries: HashMap::new(), capacity: capacity.max(2), part, bytes: 0, clock: 0 }
    }

    pub fn get_mut<Q: Eq + Hash + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.clock += 1;
        let slot = self.entries.get_mut(key)?;
        slot.used = self.clock;
        Some(&mut slot.value)
    }

    /// Keeps `value` under `key`, charged `weight` bytes (what the key and the value hold on the heap) plus
    /// the entry's own overhead. Returns `false`, keeping nothing, when the entry alone is over the part's
    /// `max_entry`.
    pub fn insert(&mut self, key: K, value: V, weight: usize) -> bool {
        self.clock += 1;
        let weight = weight.saturating_add(ENTRY_OVERHEAD);
        if let Some(old) = self.entries.remove(&key) {
            self.bytes = self.bytes.saturating_sub(old.weight);
        }
        if weight > self.part.max_entry {
            return false;
        }
        while !self.entries.is_empty()
            && (self.entries.len() >= self.capacity || self.bytes.saturating_add(weight) > self.part.max_bytes)
        {
            self.drop_older_half();
        }
        self.bytes = self.bytes.saturating_add(weight);
        self.entries.insert(key, Slot { used: self.clock, weight, value });
        true
    }

    /// Charges `key`'s entry `extra` bytes more (a value it came to hold since it was inserted); the budget
    /// is restored at the next insertion.
    fn charge<Q: Eq + Hash + ?Sized>(&mut self, key: &Q, extra: usize)
    where
        K: Borrow<Q>,
    {
        if let Some(slot) = self.entries.get_mut(key) {
            slot.weight = slot.weight.saturating_add(extra);
            self.bytes = self.bytes.saturating_add(extra);
        }
    }

    fn drop_older_half(&mut self) {
        let mut uses: Vec<u64> = self.entries.values().map(|slot| slot.used).collect();
        let cut = uses.len().div_ceil(2);
        let threshold = if cut == 0 { 0 } else { *uses.select_nth_unstable(cut - 1).1 };
        let mut dropped = 0usize;
        self.entries.retain(|_, slot| {
            let keep = slot.used > threshold;
            if !keep {
                dropped = dropped.saturating_add(slot.weight);
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(dropped);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the entries weigh together, as charged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A certificate the worker has seen, and the header value that forwards it (encoded on first use).
struct Entry {
    certificate: Rc<Certificate>,
    forwarded: Option<Rc<str>>,
}

pub struct Certificates {
    entries: Lru<[u8; 32], Entry>,
}

impl Certificates {
    pub fn new(capacity: usize, part: Part) -> Certificates {
        Certificates { entries: Lru::new(capacity, part) }
    }

    /// The certificate whose SHA-256 is `digest`, if this worker has it.
    pub fn get(&mut self, digest: &[u8; 32]) -> Option<Rc<Certificate>> {
        self.entries.get_mut(digest).map(|e| e.certificate.clone())
    }

    /// The certificate of `der`: from the cache, or decoded now and kept (a certificate that does not decode
    /// is kept too: the same bytes always give the same error), unless it is too heavy for the budget.
    pub fn of_der(&mut self, der: Vec<u8>) -> Rc<Certificate> {
        let digest = crate::cert::sha256(&der);
        if let Some(certificate) = self.get(&digest) {
            return certificate;
        }
        let certificate = Rc::new(Certificate::from_der(der));
        let weight = certificate.weight();
        self.entries.insert(digest, Entry { certificate: certificate.clone(), forwarded: None }, weight);
        certificate
    }

    /// The connection's peer certificate. `digest` is Envoy's hex SHA-256 of it (absent or empty when
    /// there is none, or on a proxy that does not provide it); `pem` reads `connection.peer_certificate`,
    /// and is only called when the digest is not a certificate this worker has seen.
    pub fn of_connection(
        &mut self,
        digest: Option<&[u8]>,
        pem: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<Result<Rc<Certificate>, PeerError>> {
        self.of_digest(digest.and_then(crate::oauth::jwks::thumbprint_from_hex_bytes), pem)
    }

    /// The connection's peer certificate, by its SHA-256 when known (see [`Certificates::of_connection`]).
    pub fn of_digest(
        &mut self,
        digest: Option<[u8; 32]>,
        pem: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<Result<Rc<Certificate>, PeerError>> {
        if let Some(certificate) = digest.as_ref().and_then(|d| self.get(d)) {
            return Some(Ok(certificate));
        }
        let text = pem()?;
        let der = match crate::cert::pem::decode_leaf(&text) {
            Ok(der) => der,
            Err(e) => return Some(Err(PeerError::Pem(e))),
        };
        let certificate = self.of_der(der);
        if digest.is_some_and(|d| d != certificate.sha256) {
            return Some(Err(PeerError::DigestMismatch));
        }
        Some(Ok(certificate))
    }

    /// `certificate` as the forwarding header carries it in `format`, encoded once while the certificate is
    /// cached. A worker has one configuration, so one format.
    pub fn forwarded(&mut self, certificate: &Certificate, format: ForwardFormat) -> Rc<str> {
        let encode = || Rc::<str>::from(forward::encode(&certificate.der, format));
        let Some(entry) = self.entries.get_mut(&certificate.sha256) else { return encode() };
        if let Some(value) = &entry.forwarded {
            return value.clone();
        }
        let value = encode();
        entry.forwarded = Some(value.clone());
        self.entries.charge(&certificate.sha256, value.weight());
        value
    }

    /// What the kept certificates weigh together, as charged to the budget.
    pub fn bytes(&self) -> usize {
        self.entries.bytes()
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
    use crate::cert::sha256;
    use crate::testdata::{der, FORWARDER, LEAF, SELF_SIGNED_1};

    const BIG: Part = Part { max_bytes: 1 << 30, max_entry: 1 << 30 };

    fn hex(d: [u8; 32]) -> Vec<u8> {
        crate::oauth::jwks::hex(&d).into_bytes()
    }

    #[test]
    fn a_certificate_is_decoded_once() {
        let mut c = Certificates::new(4, BIG);
        let a = c.of_der(der(LEAF));
        let b = c.of_der(der(LEAF));
        assert!(Rc::ptr_eq(&a, &b));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_known_connection_certificate_is_found_by_envoys_digest_without_reading_the_pem() {
        let mut c = Certificates::new(4, BIG);
        let first = c.of_connection(Some(&hex(sha256(&der(LEAF)))), || Some(LEAF.as_bytes().to_vec()));
        let first = first.unwrap().unwrap();
        let again = c.of_connection(Some(&hex(sha256(&der(LEAF)))), || panic!("the PEM was read again"));
        assert!(Rc::ptr_eq(&first, &again.unwrap().unwrap()));
    }

    #[test]
    fn envoys_digest_is_read_in_either_case() {
        let mut c = Certificates::new(4, BIG);
        c.of_der(der(LEAF));
        let upper = crate::oauth::jwks::hex(&sha256(&der(LEAF))).to_ascii_uppercase();
        assert!(c.of_connection(Some(upper.as_bytes()), || panic!("the PEM was read")).is_some());
    }

    #[test]
    fn without_a_digest_the_pem_is_read_and_hashed() {
        let mut c = Certificates::new(4, BIG);
        for digest in [None, Some(b"".as_slice()), Some(b"not hex".as_slice())] {
            let seen = c.of_connection(digest, || Some(LEAF.as_bytes().to_vec())).unwrap().unwrap();
            assert_eq!(seen.sha256, sha256(&der(LEAF)));
        }
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn no_certificate_on_the_connection_is_none() {
        let mut c = Certificates::new(4, BIG);
        assert!(c.of_connection(None, || None).is_none());
        assert!(c.of_connection(Some(b""), || None).is_none());
    }

    #[test]
    fn a_digest_that_is_not_the_pems_hash_is_refused() {
        let mut c = Certificates::new(4, BIG);
        let other = hex(sha256(&der(FORWARDER)));
        let r = c.of_connection(Some(&other), || Some(LEAF.as_bytes().to_vec())).unwrap();
        assert_eq!(r.unwrap_err(), PeerError::DigestMismatch);
    }

    #[test]
    fn a_connection_pem_that_does_not_decode_is_an_error() {
        let mut c = Certificates::new(4, BIG);
        let r = c.of_connection(None, || Some(b"-----BEGIN CERTIFICATE-----\n!!\n".to_vec())).unwrap();
        assert!(matches!(r, Err(PeerError::Pem(_))));
    }

    #[test]
    fn when_full_the_least_recently_used_half_is_dropped() {
        let mut c: Lru<u32, &str> = Lru::new(4, BIG);
        for k in 0..4 {
            c.insert(k, "v", 0);
        }
        c.get_mut(&0); // 0 is now the most recent
        c.insert(4, "v", 0); // full: keeps the two most recent (0 and 3), then adds 4
        assert_eq!(c.len(), 3);
        assert!(c.get_mut(&0).is_some() && c.get_mut(&3).is_some() && c.get_mut(&4).is_some());
        assert!(c.get_mut(&1).is_none() && c.get_mut(&2).is_none());
    }

    #[test]
    fn a_full_cache_never_grows_past_its_capacity() {
        let mut c: Lru<u32, u32> = Lru::new(8, BIG);
        for k in 0..1000 {
            c.insert(k, k, 0);
            assert!(c.len() <= 8);
        }
        assert_eq!(c.get_mut(&999), Some(&mut 999));
    }

    #[test]
    fn replacing_a_key_in_a_full_cache_evicts_nothing() {
        let mut c: Lru<u32, u32> = Lru::new(2, BIG);
        c.insert(1, 1, 0);
        c.insert(2, 2, 0);
        c.insert(2, 20, 0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get_mut(&1), Some(&mut 1));
    }

    #[test]
    fn a_certificate_that_does_not_decode_is_kept_with_its_error() {
        let mut c = Certificates::new(2, BIG);
        let seen = c.of_der(b"garbage".to_vec());
        assert!(seen.leaf.is_err());
        assert!(Rc::ptr_eq(&seen, &c.of_der(b"garbage".to_vec())));
    }

    #[test]
    fn the_forwarded_value_is_encoded_once_while_cached() {
        let mut c = Certificates::new(2, BIG);
        let leaf = c.of_der(der(LEAF));
        let a = c.forwarded(&leaf, ForwardFormat::Rfc9440);
        assert!(Rc::ptr_eq(&a, &c.forwarded(&leaf, ForwardFormat::Rfc9440)));
        assert_eq!(&*a, forward::encode(&der(LEAF), ForwardFormat::Rfc9440));
        c.of_der(der(FORWARDER));
        c.of_der(der(SELF_SIGNED_1)); // evicts LEAF: still encoded, just not kept
        assert!(c.get(&sha256(&der(LEAF))).is_none());
        assert_eq!(&*c.forwarded(&leaf, ForwardFormat::Rfc9440), &*a);
    }
}
