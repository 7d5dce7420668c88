//! Criterion microbenchmarks of the filter's pure core: certificate parse, DN and SAN match, form decode,
//! registration decode, a slice of the incremental registry load, and the whole decision, cold and cached.
//!
//! Certificates come from the test PKI (`$OAUTH_MTLS_BUILD/pki`, default `build/pki`; made by `make test`
//! or `make bench`). Run: `make bench-micro`.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::rc::Rc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use oauth_mtls_filter::cert::dn::Dn;
use oauth_mtls_filter::cert::san::{SanKind, SanRule};
use oauth_mtls_filter::cert::Leaf;
use oauth_mtls_filter::config::UnknownClient;
use oauth_mtls_filter::forwarded::source::Presented;
use oauth_mtls_filter::oauth::jwks::{Freshness, JwksUri};
use oauth_mtls_filter::oauth::registration::Client;
use oauth_mtls_filter::oauth::verdict::{self, Directory, JwksView, Lookup, Verdict};
use oauth_mtls_filter::proxy::cache::Certificates;
use oauth_mtls_filter::proxy::memory;
use oauth_mtls_filter::registry::load::{Budget, Load, Step};
use oauth_mtls_filter::{cert::pem, oauth::form, registry};

const DN: &str = "CN=dn-client,OU=Payments,O=Example Bank,C=GB";

fn pki_dir() -> PathBuf {
    let build = std::env::var_os("OAUTH_MTLS_BUILD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../build"));
    build.join("pki")
}

fn der(name: &str) -> Vec<u8> {
    let path = pki_dir().join(format!("{name}.pem"));
    let text = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make test` or `make bench` to build the test PKI)", path.display()));
    pem::decode_leaf(&text).unwrap()
}

fn registry_doc(n: usize) -> Vec<u8> {
    let clients: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "client_id": format!("client-{i:06}"),
                "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_subject_dn": format!("CN=client-{i:06},OU=Bench,O=Example Bank,C=GB"),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "clients": clients })).unwrap()
}

struct Fixed(HashMap<String, Rc<Client>>);

impl Directory for Fixed {
    fn client(&mut self, client_id: &str) -> Lookup {
        self.0.get(client_id).map_or(Lookup::Unknown, |c| Lookup::Found(Rc::clone(c)))
    }
    fn jwks(&mut self, _uri: &JwksUri) -> JwksView {
        JwksView::Known { thumbprints: Vec::new(), freshness: Freshness::Fresh, may_refetch: false, last_error: None }
    }
}

fn directory() -> Fixed {
    let doc = registry::parse_document(
        serde_json::json!([{"client_id": "demo-client", "token_endpoint_auth_method": "tls_client_auth",
                            "tls_client_auth_subject_dn": DN}])
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    Fixed(doc.clients.iter().map(|s| (s.client_id.clone(), Rc::new(s.compile().unwrap()))).collect())
}

fn certificates(c: &mut Criterion) {
    let dn_der = der("dn-client");
    let uri_der = der("san-uri-client");
    c.bench_function("cert/parse leaf (RSA, DN)", |b| b.iter(|| Leaf::from_der(black_box(&dn_der)).unwrap()));
    c.bench_function("cert/parse leaf (EC, URI SAN)", |b| b.iter(|| Leaf::from_der(black_box(&uri_der)).unwrap()));
    let mut cache =
        Certificates::new(1024, memory::Budget { total: memory::Budget::DEFAULT_BYTES as usize }.certificates());
    cache.of_der(dn_der.clone());
    let digest = oauth_mtls_filter::cert::sha256(&dn_der);
    c.bench_function("cert/certificate from the cache by Envoy's digest (hit)", |b| {
        b.iter(|| cache.get(black_box(&digest)).unwrap())
    });
    c.bench_function("cert/certificate from the cache by DER (hit: sha256 + lookup)", |b| {
        b.iter_batched(|| dn_der.clone(), |d| cache.of_der(black_box(d)), BatchSize::SmallInput)
    });
    c.bench_function("cert/x5t#S256", |b| b.iter(|| oauth_mtls_filter::cert::x5t_s256(black_box(&dn_der))));
}

fn names(c: &mut Criterion) {
    let leaf = Leaf::from_der(&der("dn-client")).unwrap();
    c.bench_function("dn/parse RFC 4514 (4 RDNs)", |b| b.iter(|| Dn::parse(black_box(DN)).unwrap()));
    let registered = Dn::parse("cn=DN-Client, ou=payments,  O=Example  Bank,C=gb").unwrap();
    assert!(registered.matches(&leaf.subject));
    c.bench_function("dn/distinguishedNameMatch (equal)", |b| {
        b.iter(|| black_box(&registered).matches(black_box(&leaf.subject)))
    });
    let other = Dn::parse("CN=other-client,O=Example Bank,C=GB").unwrap();
    c.bench_function("dn/distinguishedNameMatch (different)", |b| {
        b.iter(|| black_box(&other).matches(black_box(&leaf.subject)))
    });
    c.bench_function("dn/parse + match (uncached registration)", |b| {
        b.iter(|| Dn::parse(black_box(DN)).unwrap().matches(black_box(&leaf.subject)))
    });
    let uri_leaf = Leaf::from_der(&der("san-uri-client")).unwrap();
    let rule = SanRule::parse(SanKind::Uri, "spiffe://example.org/client").unwrap();
    assert!(rule.matches(&uri_leaf.sans));
    c.bench_function("san/uri match", |b| b.iter(|| black_box(&rule).matches(black_box(&uri_leaf.sans))));
    let dns_leaf = Leaf::from_der(&der("san-dns-client")).unwrap();
    let dns = SanRule::parse(SanKind::Dns, "CLIENT.example.com").unwrap();
    assert!(dns.matches(&dns_leaf.sans));
    c.bench_function("san/dns match (second of two)", |b| {
        b.iter(|| black_box(&dns).matches(black_box(&dns_leaf.sans)))
    });
}

fn forms(c: &mut Criterion) {
    let body = b"grant_type=client_credentials&client_id=demo-client&scope=openid%20accounts";
    c.bench_function("form/client_id", |b| b.iter(|| form::client_id(black_box(body)).unwrap()));
}

fn registrations(c: &mut Criterion) {
    let doc = registry_doc(1000);
    c.bench_function("registry/parse_document (1,000 clients)", |b| {
        b.iter(|| registry::parse_document(black_box(&doc)).unwrap())
    });
    let parsed = registry::parse_document(&doc).unwrap();
    let buckets = registry::encode_buckets(&parsed.clients, 64);
    let one = buckets.iter().max_by_key(|b| b.len()).unwrap().clone();
    c.bench_function("registry/decode_bucket (1 of 64 buckets of 1,000 clients)", |b| {
        b.iter(|| registry::decode_bucket(black_box(&one)))
    });
    let all = registry::encode_buckets(&parsed.clients, 1).remove(0);
    c.bench_function("registry/decode_bucket (all 1,000 clients in one)", |b| {
        b.iter(|| registry::decode_bucket(black_box(&all)))
    });
    c.bench_function("registry/encode_buckets (1,000 clients, 64)", |b| {
        b.iter(|| registry::encode_buckets(black_box(&parsed.clients), 64))
    });
}

/// The filter's incremental load (issue 4): what one slice of a 100,000-client document costs, and a lookup's
/// single-registration decode from a bucket of the default 1,024.
fn loads(c: &mut Criterion) {
    let doc = registry_doc(100_000);
    let budget = Budget::DEFAULT;
    // A parse slice: the first `budget.registrations` of the document (any slice of it costs the same).
    c.bench_function("registry/load: one parse slice (64 registrations)", |b| {
        b.iter_batched(
            || Load::new(doc[..64 * 1024].to_vec(), 1024, None, None, budget),
            |mut load| assert!(matches!(load.step(), Ok(Step::Parsed(_)))),
            BatchSize::LargeInput,
        )
    });
    // A write slice: the next 64 KiB of buckets of the whole document, once it has been read.
    let mut load = Load::new(doc.clone(), 1024, None, None, budget);
    while matches!(load.step(), Ok(Step::Parsed(_))) {}
    let mut writes = 0;
    let start = std::time::Instant::now();
    loop {
        match load.step() {
            Ok(Step::Write(_)) => writes += 1,
            _ => break,
        }
    }
    println!(
        "registry/load: the 100,000-client document's buckets took {writes} write slices, {:?} in all",
        start.elapsed()
    );
    let parsed = registry::parse_document(&doc).unwrap();
    let buckets = registry::encode_buckets(&parsed.clients, 1024);
    let id = "client-054321";
    let bucket = &buckets[registry::bucket_of(id, 1024) as usize];
    c.bench_function("registry/find_client (1 of ~100 in a bucket of 1,024 for 100,000 clients)", |b| {
        b.iter(|| registry::find_client(black_box(bucket), black_box(id)).unwrap().unwrap())
    });
}

fn decisions(c: &mut Criterion) {
    let dn_der = der("dn-client");
    let mut directory = directory();
    c.bench_function("verdict/decide tls_client_auth DN (cold: decode the certificate)", |b| {
        b.iter(|| {
            let presented = Presented::certificate(black_box(dn_der.clone()), true);
            let v = verdict::decide(Some("demo-client"), &presented, UnknownClient::Pass, &mut directory);
            assert!(matches!(v, Verdict::Authenticated(_)));
        })
    });
    let presented = Presented::certificate(dn_der, true);
    c.bench_function("verdict/decide tls_client_auth DN (certificate from the cache)", |b| {
        b.iter(|| verdict::decide(Some("demo-client"), black_box(&presented), UnknownClient::Pass, &mut directory))
    });
}

criterion_group!(benches, certificates, names, forms, registrations, loads, decisions);
criterion_main!(benches);
