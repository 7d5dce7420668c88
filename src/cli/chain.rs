//! `check --ca`: the client's chain validated as Envoy's default certificate validator does, on the rules that
//! decide whether a presented chain is trusted: from the leaf, each certificate's issuer is found by name (its
//! issuer Name's DER equals the issuer's subject Name's DER) among the presented intermediates and the trust
//! anchors, each signature verifies with its issuer's key, every certificate of the path (the anchor included)
//! is valid at the time given, every issuer is a CA (basicConstraints cA, and keyCertSign when keyUsage is
//! present) and no pathLenConstraint is exceeded. The anchor's own signature is not checked (as BoringSSL).
//! A signature of an algorithm the filter cannot verify is "cannot check", never valid.
//!
//! Not checked here: extendedKeyUsage, name constraints, certificate policies, unknown critical extensions and
//! any `match_*` / SPKI / hash pins of Envoy's validation context.

use crate::cert::issuer::{IssuerError, IssuerKey};
use crate::cert::x509::Certificate;
use crate::cli::explain::instant;
use crate::revocation::{name_text, time_ms};
use der::Decode;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::time::Validity;

const BASIC_CONSTRAINTS: &str = "2.5.29.19";
const KEY_USAGE: &str = "2.5.29.15";

/// The longest path tried (the leaf, intermediates and the anchor).
const MAX_PATH: usize = 10;

/// What the validation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A path from the leaf to a trust anchor satisfies every rule.
    Valid,
    /// No path does: why the best one fails.
    Invalid(String),
    /// A path would hold if signatures this tool cannot verify did: the verdict depends on them.
    CannotCheck(String),
}

/// The validation: one line per link of the path reported, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub links: Vec<String>,
    pub outcome: Outcome,
}

/// One certificate read for path building.
struct Cert {
    der: Vec<u8>,
    subject: String,
    anchor: bool,
}

/// What one link of a path (a certificate and its issuer) gives.
enum LinkResult {
    Ok(String),
    Fails(String),
    CannotCheck(String),
}

/// Validates `leaf` with the `presented` intermediates (in any order) against the `anchors`, at `now_ms`.
pub fn validate(leaf: &[u8], presented: &[Vec<u8>], anchors: &[Vec<u8>], now_ms: u64) -> Report {
    let Ok((decoded, _)) = Certificate::decode(leaf) else {
        return Report { links: Vec::new(), outcome: Outcome::Invalid("the leaf cannot be parsed".to_string()) };
    };
    let leaf = Cert { der: leaf.to_vec(), subject: name_text(decoded.subject_der), anchor: false };
    let mut pool: Vec<Cert> = Vec::new();
    for (der, anchor) in anchors.iter().map(|d| (d, true)).chain(presented.iter().map(|d| (d, false))) {
        if let Ok((c, _)) = Certificate::decode(der) {
            pool.push(Cert { der: der.clone(), subject: name_text(c.subject_der), anchor });
        }
    }
    // A leaf that is itself a trust anchor is trusted as it is.
    if pool.iter().any(|c| c.anchor && c.der == leaf.der) {
        let mut links = Vec::new();
        let outcome = match validity(&leaf.der, now_ms) {
            Ok(text) => {
                links.push(format!("\"{}\" is itself a trust anchor in --ca; {text}", leaf.subject));
                Outcome::Valid
            }
            Err(why) => Outcome::Invalid(format!("\"{}\": {why}", leaf.subject)),
        };
        return Report { links, outcome };
    }
    let mut best: Option<Report> = None;
    let mut path = vec![0usize];
    let mut all = vec![leaf];
    all.extend(pool);
    search(&all, &mut path, now_ms, &mut best);
    best.unwrap_or_else(|| {
        let issuer = name_text(decoded.issuer_der);
        Report {
            links: Vec::new(),
            outcome: Outcome::Invalid(format!(
                "no certificate in --ca or in the presented chain has the leaf's issuer \"{issuer}\" as its subject"
            )),
        }
    })
}

/// Rank of a report: a valid path beats one that cannot be checked, which beats an invalid one; among invalid
/// ones, the longest (the one that got furthest) is kept.
fn rank(r: &Report) -> (u8, usize) {
    let class = match r.outcome {
        Outcome::Valid => 2,
        Outcome::CannotCheck(_) => 1,
        Outcome::Invalid(_) => 0,
    };
    (class, r.links.len())
}

/// Depth-first over the issuers of the path's last certificate; a path ends at a trust anchor.
fn search(all: &[Cert], path: &mut Vec<usize>, now_ms: u64, best: &mut Option<Report>) {
    if best.as_ref().is_some_and(|b| b.outcome == Outcome::Valid) || path.len() >= MAX_PATH {
        return;
    }
    let Some(last) = path.last().and_then(|&i| all.get(i)) else { return };
    let Ok((child, _)) = Certificate::decode(&last.der) else { return };
    for (i, candidate) in all.iter().enumerate() {
        if path.contains(&i) {
            continue;
        }
        let Ok((c, _)) = Certificate::decode(&candidate.der) else { continue };
        if c.subject_der != child.issuer_der {
            continue;
        }
        path.push(i);
        if candidate.anchor {
            let report = judge(all, path, now_ms);
            if best.as_ref().is_none_or(|b| rank(&report) > rank(b)) {
                *best = Some(report);
            }
        } else {
            search(all, path, now_ms, best);
        }
        path.pop();
    }
}

/// Every rule on one complete path (leaf first, anchor last).
fn judge(all: &[Cert], path: &[usize], now_ms: u64) -> Report {
    let certs: Vec<&Cert> = path.iter().filter_map(|&i| all.get(i)).collect();
    let mut links = Vec::new();
    let mut cannot = None;
    for (at, pair) in certs.windows(2).enumerate() {
        let [child, issuer] = pair else { continue };
        match link(child, issuer, at, now_ms) {
            LinkResult::Ok(text) => links.push(text),
            LinkResult::CannotCheck(text) => {
                links.push(text.clone());
                cannot.get_or_insert(text);
            }
            LinkResult::Fails(why) => return Report { links, outcome: Outcome::Invalid(why) },
        }
    }
    if let Some(anchor) = certs.last() {
        match validity(&anchor.der, now_ms) {
            Ok(text) => links.push(format!("\"{}\" (trust anchor from --ca): {text}", anchor.subject)),
            Err(why) => {
                return Report {
                    links,
                    outcome: Outcome::Invalid(format!("the trust anchor \"{}\": {why}", anchor.subject)),
                }
            }
        }
    }
    let outcome = match cannot {
        Some(why) => Outcome::CannotCheck(why),
        None => Outcome::Valid,
    };
    Report { links, outcome }
}

/// `child` issued by `issuer`, `below` certificates above the leaf (0: `child` is the leaf).
fn link(child: &Cert, issuer: &Cert, below: usize, now_ms: u64) -> LinkResult {
    let (Ok((c, _)), Ok((i, _))) = (Certificate::decode(&child.der), Certificate::decode(&issuer.der)) else {
        return LinkResult::Fails("a certificate of the path cannot be parsed".to_string());
    };
    let who = format!("\"{}\"", child.subject);
    let by = format!("\"{}\"{}", issuer.subject, if issuer.anchor { " (--ca)" } else { " (presented)" });
    if let Err(why) = ca_rules(&i, below) {
        return LinkResult::Fails(format!("{by}, the issuer of {who}, {why}"));
    }
    let when = match validity(&child.der, now_ms) {
        Ok(text) => text,
        Err(why) => return LinkResult::Fails(format!("{who}: {why}")),
    };
    let algorithm = algorithm_name(&c.signature_algorithm);
    let verified =
        IssuerKey::from_spki(i.spki.to_vec()).and_then(|k| k.verifies(&c.signature_algorithm, c.tbs, c.signature));
    match verified {
        Ok(true) => LinkResult::Ok(format!("{who} signed by {by}: {algorithm} signature verifies; {when}")),
        Ok(false) => LinkResult::Fails(format!(
            "the {algorithm} signature of {who} does not verify with the key of {by}: a certificate under that \
             name, signed by another key"
        )),
        Err(e @ (IssuerError::UnsupportedKey | IssuerError::UnsupportedSignature(_))) => LinkResult::CannotCheck(
            format!("{who} signed by {by}: cannot check the signature here ({e}); Envoy decides"),
        ),
        Err(e) => LinkResult::Fails(format!("the signature of {who} cannot be checked with the key of {by}: {e}")),
    }
}

/// An issuer must be a CA allowed to sign certificates, with room under its pathLenConstraint for the
/// `below` intermediates between it and the leaf.
fn ca_rules(issuer: &Certificate<'_>, below: usize) -> Result<(), String> {
    let extension = |oid: &str| issuer.extensions.iter().find(|e| e.oid == oid).map(|e| e.value);
    let constraints = match extension(BASIC_CONSTRAINTS).map(BasicConstraints::from_der) {
        None => return Err("is not a CA: it has no basicConstraints".to_string()),
        Some(Err(_)) => return Err("has a basicConstraints extension that cannot be read".to_string()),
        Some(Ok(b)) => b,
    };
    if !constraints.ca {
        return Err("is not a CA: its basicConstraints has cA false".to_string());
    }
    if let Some(value) = extension(KEY_USAGE) {
        match KeyUsage::from_der(value) {
            Ok(usage) if usage.key_cert_sign() => {}
            Ok(_) => return Err("may not sign certificates: its keyUsage lacks keyCertSign".to_string()),
            Err(_) => return Err("has a keyUsage extension that cannot be read".to_string()),
        }
    }
    if let Some(limit) = constraints.path_len_constraint {
        if below > usize::from(limit) {
            return Err(format!(
                "allows {limit} intermediate CA(s) below it (pathLenConstraint) and the path has {below}"
            ));
        }
    }
    Ok(())
}

/// Whether `der` is valid at `now_ms`: the validity period's text, or why not.
fn validity(der: &[u8], now_ms: u64) -> Result<String, String> {
    let (c, _) = Certificate::decode(der).map_err(|_| "cannot be parsed".to_string())?;
    let v = Validity::<x509_cert::certificate::Rfc5280>::from_der(c.validity)
        .map_err(|_| "its validity cannot be read".to_string())?;
    let (from, until) = (time_ms(&v.not_before), time_ms(&v.not_after));
    let period = format!("valid {} to {}", instant(from), instant(until));
    if now_ms < from {
        Err(format!("not yet valid at {} ({period})", instant(now_ms)))
    } else if now_ms > until {
        Err(format!("expired at {} ({period})", instant(now_ms)))
    } else {
        Ok(period)
    }
}

fn algorithm_name(oid: &str) -> &str {
    match oid {
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testdata as chains;
    use crate::revocation::testdata as rev;
    use crate::testdata::{der, LEAF, P384_CA, P384_LEAF, RSA_CA, RSA_SHA256_LEAF, SELF_SIGNED_1, TEST_CA};

    /// 2026-12-02, when every test certificate is valid.
    const NOW: u64 = 1_796_169_600_000;

    #[test]
    fn a_leaf_signed_by_the_anchor_is_valid() {
        let r = validate(&der(LEAF), &[], &[der(TEST_CA)], NOW);
        assert_eq!(r.outcome, Outcome::Valid, "{r:?}");
        assert!(r.links[0].contains("ecdsa-with-SHA256 signature verifies"), "{r:?}");
        assert!(r.links[1].contains("(trust anchor from --ca)"), "{r:?}");
    }

    #[test]
    fn rsa_and_p384_signatures_are_verified() {
        assert_eq!(validate(&der(RSA_SHA256_LEAF), &[], &[der(RSA_CA)], NOW).outcome, Outcome::Valid);
        assert_eq!(validate(&der(P384_LEAF), &[], &[der(P384_CA)], NOW).outcome, Outcome::Valid);
    }

    #[test]
    fn a_ca_with_the_same_name_and_another_key_does_not_validate_the_leaf() {
        let r = validate(&rev::der(rev::GOOD), &[], &[rev::der(rev::ROGUE_CA)], NOW);
        let Outcome::Invalid(why) = &r.outcome else { panic!("{r:?}") };
        assert!(
            why.contains("does not verify with the key of \"CN=Revocation Test CA,O=Revocation Test\" (--ca)"),
            "{why}"
        );
        assert_eq!(validate(&rev::der(rev::GOOD), &[], &[rev::der(rev::CA)], NOW).outcome, Outcome::Valid);
    }

    #[test]
    fn the_right_anchor_is_found_among_several_with_the_same_name() {
        let anchors = [rev::der(rev::ROGUE_CA), der(TEST_CA), rev::der(rev::CA)];
        assert_eq!(validate(&rev::der(rev::GOOD), &[], &anchors, NOW).outcome, Outcome::Valid);
    }

    #[test]
    fn a_leaf_of_an_issuer_not_in_the_anchors_is_invalid() {
        let r = validate(&der(LEAF), &[], &[der(RSA_CA)], NOW);
        let Outcome::Invalid(why) = r.outcome else { panic!() };
        assert!(why.contains("has the leaf's issuer \"CN=Unit Test CA,O=Unit Test,C=GB\" as its subject"), "{why}");
    }

    #[test]
    fn an_expired_or_not_yet_valid_leaf_is_invalid() {
        let after = 4_955_000_000_000; // 2127-01-08
        let Outcome::Invalid(why) = validate(&der(LEAF), &[], &[der(TEST_CA)], after).outcome else { panic!() };
        assert!(why.starts_with("\"CN=dn-client,OU=Payments,O=Example Bank,C=GB\": expired at 2127-"), "{why}");
        let before = 1_700_000_000_000; // 2023
        let Outcome::Invalid(why) = validate(&der(LEAF), &[], &[der(TEST_CA)], before).outcome else { panic!() };
        assert!(why.contains("not yet valid at 2023-"), "{why}");
    }

    #[test]
    fn intermediates_presented_in_any_order_complete_the_path() {
        let presented = [rev::der(chains::SUB_INTERMEDIATE), rev::der(chains::INTERMEDIATE)];
        let r = validate(&rev::der(chains::LEAF), &presented, &[rev::der(chains::ROOT)], NOW);
        assert_eq!(r.outcome, Outcome::Valid, "{r:?}");
        assert_eq!(r.links.len(), 3, "{r:?}");
        assert!(
            r.links[1]
                .contains("\"CN=Chain Intermediate,O=Chain Test\" signed by \"CN=Chain Root,O=Chain Test\" (--ca)"),
            "{r:?}"
        );
        let missing = validate(&rev::der(chains::LEAF), &[], &[rev::der(chains::ROOT)], NOW);
        assert!(matches!(missing.outcome, Outcome::Invalid(_)), "{missing:?}");
    }

    #[test]
    fn a_path_longer_than_a_pathlen_constraint_allows_is_invalid() {
        let presented = [rev::der(chains::INTERMEDIATE), rev::der(chains::SUB_INTERMEDIATE)];
        let r = validate(&rev::der(chains::TOO_DEEP_LEAF), &presented, &[rev::der(chains::ROOT)], NOW);
        let Outcome::Invalid(why) = r.outcome else { panic!("{r:?}") };
        assert!(why.contains("\"CN=Chain Intermediate,O=Chain Test\" (presented), the issuer of \"CN=Chain Sub-intermediate,O=Chain Test\", allows 0 intermediate CA(s) below it (pathLenConstraint) and the path has 1"), "{why}");
    }

    #[test]
    fn an_issuer_whose_key_usage_lacks_key_cert_sign_does_not_issue() {
        let r = validate(&rev::der(chains::NO_KEY_CERT_SIGN_LEAF), &[], &[rev::der(chains::NO_KEY_CERT_SIGN_CA)], NOW);
        let Outcome::Invalid(why) = r.outcome else { panic!("{r:?}") };
        assert!(why.ends_with("may not sign certificates: its keyUsage lacks keyCertSign"), "{why}");
    }

    #[test]
    fn an_issuer_that_is_not_a_ca_does_not_issue() {
        // LEAF (basicConstraints cA false) judged as an issuer; TEST_CA (cA true) passes.
        assert_eq!(
            ca_rules(&Certificate::decode(&der(LEAF)).unwrap().0, 0),
            Err("is not a CA: its basicConstraints has cA false".to_string())
        );
        assert_eq!(ca_rules(&Certificate::decode(&der(TEST_CA)).unwrap().0, 0), Ok(()));
    }

    #[test]
    fn a_signature_algorithm_the_filter_cannot_verify_is_cannot_check_not_valid() {
        let r = validate(&rev::der(chains::ED25519_LEAF), &[], &[rev::der(chains::ED25519_CA)], NOW);
        let Outcome::CannotCheck(why) = r.outcome else { panic!("{r:?}") };
        assert!(why.contains("cannot check the signature here"), "{why}");
    }

    #[test]
    fn a_trusted_self_signed_leaf_is_its_own_anchor() {
        assert_eq!(validate(&der(SELF_SIGNED_1), &[], &[der(SELF_SIGNED_1)], NOW).outcome, Outcome::Valid);
        assert!(matches!(validate(&der(SELF_SIGNED_1), &[], &[der(TEST_CA)], NOW).outcome, Outcome::Invalid(_)));
    }

    #[test]
    fn garbage_is_invalid_not_a_crash() {
        assert!(matches!(validate(b"junk", &[], &[der(TEST_CA)], NOW).outcome, Outcome::Invalid(_)));
        assert_eq!(validate(&der(LEAF), &[b"junk".to_vec()], &[der(TEST_CA)], NOW).outcome, Outcome::Valid);
    }
}
