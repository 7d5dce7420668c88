//! Shared by the revocation fuzz targets: the unit tests' revocation CA (`revocation::testdata::CA`, a public
//! certificate; its seed file), whose key verifies their CRLs and OCSP answers.

use oauth_mtls_filter::revocation::ca::Ca;

const CA: &[u8] = include_bytes!("../corpus/cert_der/seed-testdata-revocation_ca.der");

/// The CA as `revocation.issuers` would hold it (built once per thread).
pub fn cas() -> &'static [Ca] {
    thread_local! { static CAS: std::cell::OnceCell<&'static [Ca]> = const { std::cell::OnceCell::new() }; }
    CAS.with(|c| *c.get_or_init(|| Box::leak(vec![Ca::from_der(CA).unwrap()].into_boxed_slice())))
}
