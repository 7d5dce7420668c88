//! The per-VM memory budget: what a client or a registry can make a worker hold is charged by bytes.
//!
//! A worker's wasm VM has one linear memory that never shrinks and that V8 caps (1 GiB in Envoy): an
//! allocation past it traps the VM. Every cache a request can fill (decoded certificates, connections,
//! decoded registrations and the client ids looked up, known or not) is therefore bounded by the bytes its
//! entries hold on the heap, not by how many there are. The budget (`memory_budget_bytes`) is shared out in
//! fixed parts; an entry larger than a part's `max_entry` is not kept at all (it is decoded again when it
//! comes again, at the cost of the client that sends it).

use crate::cert::dn::{AttrValue, Dn};
use crate::cert::san::SanRule;
use crate::cert::{Certificate, Leaf, Sans};
use crate::oauth::registration::{Client, KeySource, Method, SubjectRule};
use std::mem::size_of;

/// What an allocation costs beyond its bytes (dlmalloc's header and alignment), counted from above.
const ALLOCATION_OVERHEAD: usize = 16;
/// What a cache pays per entry for its map slot and bookkeeping, counted from above.
pub const ENTRY_OVERHEAD: usize = 64;

/// Heap bytes held by a value, estimated from above (capacities, not lengths; every allocation's overhead).
pub trait Weigh {
    fn weight(&self) -> usize;
}

fn vec_weight<T>(v: &Vec<T>) -> usize {
    if v.capacity() == 0 {
        0
    } else {
        v.capacity().saturating_mul(size_of::<T>()).saturating_add(ALLOCATION_OVERHEAD)
    }
}

fn sum<'a, T: Weigh + 'a>(items: impl IntoIterator<Item = &'a T>) -> usize {
    items.into_iter().fold(0, |total, item| total.saturating_add(item.weight()))
}

impl Weigh for String {
    fn weight(&self) -> usize {
        if self.capacity() == 0 {
            0
        } else {
            self.capacity().saturating_add(ALLOCATION_OVERHEAD)
        }
    }
}

impl Weigh for std::rc::Rc<str> {
    fn weight(&self) -> usize {
        // The text after the Rc's two counts, in one allocation.
        self.len().saturating_add(2 * size_of::<usize>()).saturating_add(ALLOCATION_OVERHEAD)
    }
}

impl Weigh for crate::revocation::target::Target {
    fn weight(&self) -> usize {
        vec_weight(&self.issuer_name)
            .saturating_add(vec_weight(&self.serial))
            .saturating_add(vec_weight(&self.ocsp_urls))
            .saturating_add(sum(&self.ocsp_urls))
            .saturating_add(vec_weight(&self.crl_urls))
            .saturating_add(sum(&self.crl_urls))
    }
}

impl Weigh for Vec<u8> {
    fn weight(&self) -> usize {
        vec_weight(self)
    }
}

impl Weigh for Dn {
    fn weight(&self) -> usize {
        let avas = self.rdns.iter().flat_map(|r| r.avas.iter());
        let values = avas.fold(0usize, |total, ava| {
            let value = match &ava.value {
                AttrValue::Text(t) => t.weight(),
                AttrValue::Bytes(b) => b.weight(),
            };
            total.saturating_add(ava.oid.weight()).saturating_add(value)
        });
        let lists = self.rdns.iter().fold(vec_weight(&self.rdns), |total, r| total.saturating_add(vec_weight(&r.avas)));
        values.saturating_add(lists)
    }
}

impl Weigh for Sans {
    fn weight(&self) -> usize {
        let lists = vec_weight(&self.dns) + vec_weight(&self.uri) + vec_weight(&self.ip) + vec_weight(&self.email);
        lists.saturating_add(sum(&self.dns)).saturating_add(sum(&self.uri)).saturating_add(sum(&self.email))
    }
}

impl Weigh for Leaf {
    fn weight(&self) -> usize {
        self.subject.weight().saturating_add(self.issuer.weight()).saturating_add(self.sans.weight())
    }
}

impl Weigh for Certificate {
    fn weight(&self) -> usize {
        let leaf = self.leaf.as_ref().map_or(ALLOCATION_OVERHEAD, Leaf::weight);
        size_of::<Certificate>()
            .saturating_add(ALLOCATION_OVERHEAD)
            .saturating_add(self.der.weight())
            .saturating_add(leaf)
    }
}

impl Weigh for Client {
    fn weight(&self) -> usize {
        let method = match &self.method {
            Method::TlsClientAuth(SubjectRule::Dn(dn)) => dn.weight(),
            Method::TlsClientAuth(SubjectRule::San(rule)) => match rule {
                SanRule::Dns(s) | SanRule::Uri(s) | SanRule::Email(s) => s.weight(),
                SanRule::Ip(_) => 0,
            },
            Method::SelfSigned(KeySource::Jwks(prints)) => vec_weight(prints),
            Method::SelfSigned(KeySource::JwksUri(uri)) => {
                uri.uri.weight().saturating_add(uri.authority.weight()).saturating_add(uri.path.weight())
            }
            Method::Other(name) => name.weight(),
        };
        let issuers = self.pinned_issuers.iter().fold(vec_weight(&self.pinned_issuers), |total, key| {
            total.saturating_add(key.spki_len()).saturating_add(ALLOCATION_OVERHEAD)
        });
        size_of::<Client>()
            .saturating_add(ALLOCATION_OVERHEAD)
            .saturating_add(self.client_id.weight())
            .saturating_add(self.tenant.as_ref().map_or(0, |t| t.as_str().len().saturating_add(ALLOCATION_OVERHEAD)))
            .saturating_add(method)
            .saturating_add(issuers)
    }
}

/// The per-VM budget and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub total: usize,
}

/// One cache's part of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The most the cache's entries may weigh together.
    pub max_bytes: usize,
    /// An entry heavier than this is not kept (1/64 of the part: a part always holds many entries).
    pub max_entry: usize,
}

impl Part {
    fn of(bytes: usize) -> Part {
        Part { max_bytes: bytes, max_entry: bytes / 64 }
    }

    /// One of `n` equal shares of this part (the registries share the clients' part); an entry may weigh
    /// what it could in the whole part, up to the share.
    pub fn share(self, n: usize) -> Part {
        let max_bytes = self.max_bytes / n.max(1);
        Part { max_bytes, max_entry: self.max_entry.min(max_bytes) }
    }
}

impl Budget {
    /// The default: 64 MiB a worker, far below V8's 1 GiB cap and enough for tens of thousands of clients.
    pub const DEFAULT_BYTES: u64 = 64 << 20;
    pub const MIN_BYTES: u64 = 1 << 20;
    /// Leaves room under V8's 1 GiB for a registry load, request bodies and the module's own memory.
    pub const MAX_BYTES: u64 = 512 << 20;

    /// Decoded certificates: seven sixteenths.
    pub fn certificates(self) -> Part {
        Part::of(self.total / 16 * 7)
    }

    /// Revocation: where each certificate's status is (issuer, serial, URLs) and the CRL lookups made:
    /// one sixteenth.
    pub fn revocation(self) -> Part {
        Part::of(self.total / 16)
    }

    /// Decoded registrations and the client ids looked up (known or not): three eighths.
    pub fn clients(self) -> Part {
        Part::of(self.total / 8 * 3)
    }

    /// Connections (their certificate's digest and validation): one eighth.
    pub fn connections(self) -> Part {
        Part::of(self.total / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{der, LEAF};

    #[test]
    fn the_parts_of_the_budget_never_add_up_to_more_than_the_budget() {
        for total in [Budget::MIN_BYTES as usize, 3_000_001, Budget::MAX_BYTES as usize] {
            let b = Budget { total };
            let parts = b.certificates().max_bytes
                + b.clients().max_bytes
                + b.connections().max_bytes
                + b.revocation().max_bytes;
            assert!(parts <= total, "{total}");
        }
    }

    #[test]
    fn a_certificate_weighs_at_least_its_der_and_every_san_it_decoded() {
        let c = Certificate::from_der(der(LEAF));
        let leaf = c.leaf.as_ref().unwrap();
        let sans: usize = leaf.sans.dns.iter().chain(&leaf.sans.uri).map(String::len).sum();
        assert!(c.weight() >= c.der.len() + sans, "{}", c.weight());
    }

    #[test]
    fn many_short_subject_alt_names_weigh_far_more_than_their_bytes() {
        let mut sans = Sans::default();
        for _ in 0..1000 {
            sans.dns.push("a".to_string());
        }
        // Each one-letter name is its own allocation: counted with its String and the allocator's overhead.
        assert!(sans.weight() >= 1000 * (size_of::<String>() + 1 + ALLOCATION_OVERHEAD), "{}", sans.weight());
    }

    #[test]
    fn a_client_weighs_at_least_its_id() {
        let client = crate::oauth::registration::check(&serde_json::json!({
            "client_id": "x".repeat(10_000),
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=a",
        }))
        .unwrap()
        .compile()
        .unwrap();
        assert!(client.weight() >= 10_000);
    }
}
