//! Properties: RFC 4514 distinguished names.

use super::*;

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn dn_display_parses_back_to_the_same_dn(dn in dn()) {
        let printed = dn.to_string();
        prop_assert!(!printed.contains(['\r', '\n']), "display is one line: {printed:?}");
        prop_assert_eq!(Dn::parse(&printed), Ok(dn));
    }

    #[test]
    fn dn_other_spellings_of_the_same_name_parse_to_it(dn in dn(), knobs in prop::collection::vec(any::<u8>(), 1..64)) {
        let text = variant(&dn, &knobs, false);
        prop_assert_eq!(Dn::parse(&text), Ok(dn), "{}", text);
    }

    #[test]
    fn dn_matches_itself_under_ascii_case_and_space_changes(dn in dn(), knobs in prop::collection::vec(any::<u8>(), 1..64)) {
        let text = variant(&dn, &knobs, true);
        let other = Dn::parse(&text).unwrap();
        prop_assert!(dn.matches(&dn));
        prop_assert!(dn.matches(&other), "{} vs {}", dn, text);
        prop_assert!(other.matches(&dn), "{} vs {}", text, dn);
    }

    #[test]
    fn dn_match_is_symmetric(a in small_dn(), b in small_dn()) {
        prop_assert_eq!(a.matches(&b), b.matches(&a));
        prop_assert!(a.matches(&a));
    }

    #[test]
    fn dn_multi_valued_rdn_matches_in_any_order(dn in dn()) {
        let mut reordered = dn.clone();
        for rdn in &mut reordered.rdns {
            rdn.avas.reverse();
        }
        prop_assert!(dn.matches(&reordered));
        prop_assert!(reordered.matches(&dn));
    }

    #[test]
    fn dn_with_another_rdn_count_never_matches(dn in dn(), extra in dn()) {
        let mut longer = dn.clone();
        longer.rdns.extend(extra.rdns);
        prop_assert!(!dn.matches(&longer));
        prop_assert!(!longer.matches(&dn));
    }

    #[test]
    fn dn_parse_never_panics_on_special_characters(s in "[ ,+=\"\\\\;<>#0-9a-fA-FcnoOIDu.\\x00é]{0,40}") {
        if let Ok(dn) = Dn::parse(&s) {
            prop_assert_eq!(Dn::parse(&dn.to_string()), Ok(dn));
        }
    }
}
