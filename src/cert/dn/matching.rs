//! distinguishedNameMatch (RFC 4517 §4.2.15) with caseIgnoreMatch values.

use super::{AttrValue, Ava, Dn, Rdn};

/// caseIgnoreMatch preparation (RFC 4518 insignificant space handling, then case folding).
/// The characters of `s` as matched: runs of white space as one space, none at either end, lower case.
fn normalized(s: &str) -> impl Iterator<Item = char> + '_ {
    s.split_whitespace()
        .enumerate()
        .flat_map(|(i, word)| (i > 0).then_some(' ').into_iter().chain(word.chars().flat_map(char::to_lowercase)))
}

fn values_match(a: &AttrValue, b: &AttrValue) -> bool {
    match (a, b) {
        (AttrValue::Text(x), AttrValue::Text(y)) => x == y || normalized(x).eq(normalized(y)),
        (AttrValue::Bytes(x), AttrValue::Bytes(y)) => x == y,
        _ => false,
    }
}

fn avas_match(a: &Ava, b: &Ava) -> bool {
    a.oid == b.oid && values_match(&a.value, &b.value)
}

impl Rdn {
    /// Same set of AVAs, in any order.
    pub fn matches(&self, other: &Rdn) -> bool {
        if self.avas.len() != other.avas.len() {
            return false;
        }
        if let ([a], [b]) = (self.avas.as_slice(), other.avas.as_slice()) {
            return avas_match(a, b);
        }
        let mut used = vec![false; other.avas.len()];
        self.avas.iter().all(|a| {
            let found = other.avas.iter().zip(used.iter_mut()).find(|(b, used)| !**used && avas_match(a, b));
            match found {
                Some((_, slot)) => {
                    *slot = true;
                    true
                }
                None => false,
            }
        })
    }
}

impl Dn {
    /// distinguishedNameMatch (RFC 4517 §4.2.15): the same number of RDNs, pairwise equal in order;
    /// text values compared with caseIgnoreMatch and insignificant-space handling.
    pub fn matches(&self, other: &Dn) -> bool {
        self.rdns.len() == other.rdns.len() && self.rdns.iter().zip(&other.rdns).all(|(a, b)| a.matches(b))
    }
}

#[cfg(test)]
mod tests {
    use crate::cert::dn::testing::*;

    #[test]
    fn type_names_oids_case_and_hash_encoding_all_match() {
        let reference = dn("CN=Foo");
        for other in ["cn=foo", "2.5.4.3=FOO", "CN=#0C03666f6f", "OID.2.5.4.3=fOO", "CN=\"foo\""] {
            assert!(reference.matches(&dn(other)), "{other}");
        }
        assert!(!reference.matches(&dn("CN=Fob")));
    }

    #[test]
    fn rdn_order_is_significant() {
        assert!(!dn("CN=a,O=b").matches(&dn("O=b,CN=a")));
    }

    #[test]
    fn multi_valued_rdn_matches_in_any_order() {
        assert!(dn("CN=a+OU=b").matches(&dn("OU=b+CN=a")));
        assert!(!dn("CN=a+OU=b").matches(&dn("CN=a+OU=c")));
        assert!(!dn("CN=a+CN=a").matches(&dn("CN=a+OU=a")));
    }

    #[test]
    fn different_number_of_rdns_never_match() {
        assert!(!dn("CN=a,O=b").matches(&dn("CN=a")));
        assert!(!dn("CN=a").matches(&dn("CN=a+OU=b")));
        assert!(!dn("CN=a").matches(&dn("")));
    }

    #[test]
    fn insignificant_spaces_are_ignored() {
        assert!(dn("CN=a b").matches(&dn("CN= a   b ")));
        assert!(dn("CN=a b").matches(&dn("CN=\\ a \\ b\\ ")));
        assert!(dn("CN=a b").matches(&dn("CN=a\\09b")));
        assert!(!dn("CN=a b").matches(&dn("CN=ab")));
    }

    #[test]
    fn case_folding_is_unicode() {
        assert!(dn("CN=ÉCOLE").matches(&dn("CN=école")));
        assert!(dn("O=ΣΊΣΥΦΟΣ").matches(&dn("O=σίσυφοσ")));
    }

    #[test]
    fn different_attribute_types_never_match() {
        assert!(!dn("CN=a").matches(&dn("OU=a")));
    }

    #[test]
    fn bytes_match_only_identical_bytes() {
        assert!(dn("1.2.3=#04020102").matches(&dn("1.2.3=#04020102")));
        assert!(!dn("1.2.3=#04020102").matches(&dn("1.2.3=#04020103")));
    }

    #[test]
    fn text_never_matches_bytes() {
        // An OCTET STRING holding "foo" is not the string "foo".
        assert!(!dn("CN=foo").matches(&dn("CN=#0403666f6f")));
    }

    // --- Display ----------------------------------------------------------------------------
}
