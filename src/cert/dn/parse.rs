//! RFC 4514 strings: the DNs registrations give (`tls_client_auth_subject_dn`) and Envoy and OpenSSL print.

use super::value::{decode_string, parse_single_tlv};
use super::{is_dotted_oid, oid_for_short_name, AttrValue, Ava, Dn, DnError, Rdn};

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

/// Characters that may follow `\` to stand for themselves (RFC 4514 §3 `special` plus `=` and space).
fn is_escapable(b: u8) -> bool {
    matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' | b'=' | b' ' | b'#')
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.input.get(self.pos.checked_add(ahead)?).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn parse_dn(&mut self) -> Result<Dn, DnError> {
        let mut rdns = Vec::new();
        self.skip_spaces();
        if self.peek().is_none() {
            return Ok(Dn { rdns });
        }
        let mut avas = Vec::new();
        loop {
            avas.push(self.parse_ava()?);
            self.skip_spaces();
            match self.peek() {
                None => {
                    rdns.push(Rdn { avas });
                    break;
                }
                Some(b'+') => {
                    self.pos += 1;
                    self.skip_spaces();
                }
                Some(b',') => {
                    self.pos += 1;
                    self.skip_spaces();
                    rdns.push(Rdn { avas: std::mem::take(&mut avas) });
                }
                Some(other) => return Err(DnError::UnexpectedCharacter { ch: char::from(other), offset: self.pos }),
            }
        }
        rdns.reverse();
        Ok(Dn { rdns })
    }

    fn parse_ava(&mut self) -> Result<Ava, DnError> {
        let oid = self.parse_type()?;
        self.skip_spaces();
        if self.peek() != Some(b'=') {
            return Err(DnError::MissingEquals { offset: self.pos });
        }
        self.pos += 1;
        self.skip_spaces();
        let value = match self.peek() {
            Some(b'#') => self.parse_hex_value()?,
            Some(b'"') => self.parse_quoted_value()?,
            _ => self.parse_string_value()?,
        };
        Ok(Ava { oid, value })
    }

    fn parse_type(&mut self) -> Result<String, DnError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b'=' | b' ' | b',' | b'+') {
                break;
            }
            self.pos += 1;
        }
        let raw = self.input.get(start..self.pos).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or_default();
        if raw.is_empty() {
            return Err(DnError::EmptyAttributeType { offset: start });
        }
        let dotted = match raw.get(..4) {
            Some(prefix) if prefix.eq_ignore_ascii_case("oid.") => raw.get(4..),
            _ if raw.starts_with(|c: char| c.is_ascii_digit()) => Some(raw),
            _ => None,
        };
        if let Some(dotted) = dotted {
            return if is_dotted_oid(dotted) {
                Ok(dotted.to_string())
            } else {
                Err(DnError::InvalidAttributeType { offset: start })
            };
        }
        let is_keystring = raw.starts_with(|c: char| c.is_ascii_alphabetic())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !is_keystring {
            return Err(DnError::InvalidAttributeType { offset: start });
        }
        oid_for_short_name(raw)
            .map(str::to_string)
            .ok_or_else(|| DnError::UnknownAttributeType { name: raw.to_string(), offset: start })
    }

    /// Reads the character(s) after a `\` at `self.pos` and appends the byte it stands for.
    fn parse_escape(&mut self, out: &mut Vec<u8>) -> Result<(), DnError> {
        let at = self.pos;
        let first = self.peek_at(1).ok_or(DnError::DanglingEscape { offset: at })?;
        if let (Some(hi), Some(lo)) = (crate::hex::digit(first), self.peek_at(2).and_then(crate::hex::digit)) {
            out.push(hi * 16 + lo);
            self.pos += 3;
            Ok(())
        } else if is_escapable(first) {
            out.push(first);
            self.pos += 2;
            Ok(())
        } else {
            Err(DnError::InvalidEscape { offset: at })
        }
    }

    fn parse_string_value(&mut self) -> Result<AttrValue, DnError> {
        let start = self.pos;
        let mut out = Vec::new();
        // Length of `out` up to its last significant byte: unescaped trailing spaces are dropped.
        let mut keep = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b',' | b'+' => break,
                b'\\' => {
                    self.parse_escape(&mut out)?;
                    keep = out.len();
                }
                b'"' | b';' | b'<' | b'>' | 0 => {
                    return Err(DnError::UnescapedCharacter { ch: char::from(b), offset: self.pos })
                }
                b' ' => {
                    out.push(b);
                    self.pos += 1;
                }
                _ => {
                    out.push(b);
                    self.pos += 1;
                    keep = out.len();
                }
            }
        }
        out.truncate(keep);
        String::from_utf8(out).map(AttrValue::Text).map_err(|_| DnError::InvalidUtf8 { offset: start })
    }

    fn parse_quoted_value(&mut self) -> Result<AttrValue, DnError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(DnError::UnterminatedQuote { offset: start }),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => self.parse_escape(&mut out)?,
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        self.expect_value_end()?;
        String::from_utf8(out).map(AttrValue::Text).map_err(|_| DnError::InvalidUtf8 { offset: start })
    }

    fn parse_hex_value(&mut self) -> Result<AttrValue, DnError> {
        let start = self.pos;
        self.pos += 1; // '#'
        let mut bytes = Vec::new();
        loop {
            match (self.peek().and_then(crate::hex::digit), self.peek_at(1).and_then(crate::hex::digit)) {
                (Some(hi), Some(lo)) => {
                    bytes.push(hi * 16 + lo);
                    self.pos += 2;
                }
                (Some(_), None) => return Err(DnError::InvalidHexValue { offset: start }),
                (None, _) => break,
            }
        }
        if bytes.is_empty() {
            return Err(DnError::InvalidHexValue { offset: start });
        }
        match self.peek() {
            None | Some(b' ' | b',' | b'+') => {}
            Some(_) => return Err(DnError::InvalidHexValue { offset: start }),
        }
        self.expect_value_end()?;
        let tlv = parse_single_tlv(&bytes).ok_or(DnError::InvalidBerValue { offset: start })?;
        if tlv.class_bits == 0 && !tlv.constructed {
            if let Some(decoded) = decode_string(tlv.tag, tlv.content) {
                return decoded.map(AttrValue::Text).map_err(|()| DnError::InvalidBerValue { offset: start });
            }
        }
        Ok(AttrValue::Bytes(bytes))
    }

    /// After a quoted or `#` value: optional spaces, then `,`, `+` or the end.
    fn expect_value_end(&mut self) -> Result<(), DnError> {
        self.skip_spaces();
        match self.peek() {
            None | Some(b',' | b'+') => Ok(()),
            Some(b) => Err(DnError::UnexpectedCharacter { ch: char::from(b), offset: self.pos }),
        }
    }
}

impl Dn {
    /// Parses an RFC 4514 string (also the RFC 2253 output of Envoy and OpenSSL). Spaces around
    /// `,`, `+` and `=` and at both ends are ignored; an empty string is the empty DN.
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        Parser { input: s.as_bytes(), pos: 0 }.parse_dn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::dn::testing::*;

    #[test]
    fn string_lists_rdns_in_reverse_asn1_order() {
        let d = dn("CN=client-one,OU=Payments,O=Example Bank,C=GB");
        assert_eq!(
            d.rdns,
            vec![
                single(&[text("2.5.4.6", "GB")]),
                single(&[text("2.5.4.10", "Example Bank")]),
                single(&[text("2.5.4.11", "Payments")]),
                single(&[text("2.5.4.3", "client-one")]),
            ]
        );
    }

    #[test]
    fn plus_joins_avas_of_one_rdn() {
        let d = dn("CN=a+OU=b,O=c");
        assert_eq!(d.rdns.len(), 2);
        assert_eq!(d.rdns[1], single(&[text("2.5.4.3", "a"), text("2.5.4.11", "b")]));
    }

    #[test]
    fn empty_string_is_the_empty_dn() {
        assert!(dn("").is_empty());
        assert!(dn("   ").is_empty());
        assert!(!dn("CN=a").is_empty());
    }

    #[test]
    fn spaces_around_separators_and_equals_are_ignored() {
        assert_eq!(dn("  CN = a b ,  O=c  +  OU =d  "), dn("CN=a b,O=c+OU=d"));
        assert_eq!(dn("CN=x, O=y"), dn("CN=x,O=y"));
    }

    #[test]
    fn spaces_inside_values_are_kept() {
        assert_eq!(dn("CN=a  b").rdns[0], single(&[text("2.5.4.3", "a  b")]));
    }

    #[test]
    fn escaped_trailing_and_leading_space_is_part_of_the_value() {
        assert_eq!(dn("CN=a\\ ").rdns[0], single(&[text("2.5.4.3", "a ")]));
        assert_eq!(dn("CN=a\\  ").rdns[0], single(&[text("2.5.4.3", "a ")]));
        assert_eq!(dn("CN=\\ a").rdns[0], single(&[text("2.5.4.3", " a")]));
    }

    #[test]
    fn semicolon_is_not_an_rdn_separator() {
        assert_eq!(Dn::parse("CN=a;O=b"), Err(DnError::UnescapedCharacter { ch: ';', offset: 4 }));
    }

    #[test]
    fn short_names_are_case_insensitive() {
        assert_eq!(dn("cn=x,o=y,Ou=z,c=GB"), dn("CN=x,O=y,OU=z,C=GB"));
    }

    #[test]
    fn short_names_map_to_their_oids() {
        let cases = [
            ("CN", "2.5.4.3"),
            ("L", "2.5.4.7"),
            ("ST", "2.5.4.8"),
            ("O", "2.5.4.10"),
            ("OU", "2.5.4.11"),
            ("C", "2.5.4.6"),
            ("STREET", "2.5.4.9"),
            ("DC", "0.9.2342.19200300.100.1.25"),
            ("UID", "0.9.2342.19200300.100.1.1"),
            ("SN", "2.5.4.4"),
            ("surname", "2.5.4.4"),
            ("serialNumber", "2.5.4.5"),
            ("title", "2.5.4.12"),
            ("GN", "2.5.4.42"),
            ("givenName", "2.5.4.42"),
            ("initials", "2.5.4.43"),
            ("generationQualifier", "2.5.4.44"),
            ("dnQualifier", "2.5.4.46"),
            ("pseudonym", "2.5.4.65"),
            ("postalCode", "2.5.4.17"),
            ("organizationIdentifier", "2.5.4.97"),
            ("businessCategory", "2.5.4.15"),
            ("emailAddress", "1.2.840.113549.1.9.1"),
            ("E", "1.2.840.113549.1.9.1"),
        ];
        for (name, oid) in cases {
            let d = dn(&format!("{name}=v"));
            assert_eq!(d.rdns[0].avas[0].oid, oid, "{name}");
        }
    }

    #[test]
    fn dotted_oids_are_accepted_with_or_without_oid_prefix() {
        assert_eq!(dn("2.5.4.3=x"), dn("CN=x"));
        assert_eq!(dn("OID.2.5.4.3=x"), dn("CN=x"));
        assert_eq!(dn("oid.2.5.4.3=x"), dn("CN=x"));
        assert_eq!(dn("1.2.3.4=x").rdns[0].avas[0].oid, "1.2.3.4");
    }

    #[test]
    fn malformed_dotted_oid_is_rejected() {
        for s in ["2..5=x", "2.5.=x", "2=x", "2.05.4=x", "OID.=x", "OID.cn=x"] {
            assert_eq!(Dn::parse(s), Err(DnError::InvalidAttributeType { offset: 0 }), "{s}");
        }
    }

    #[test]
    fn unknown_short_name_is_an_error_naming_it() {
        let err = Dn::parse("CN=a,FOO=b").unwrap_err();
        assert_eq!(err, DnError::UnknownAttributeType { name: "FOO".to_string(), offset: 5 });
        assert!(err.to_string().contains("FOO"));
    }

    #[test]
    fn special_character_escapes_decode() {
        let d = dn(r#"CN=\,\+\"\\\<\>\;\=\ \#"#);
        assert_eq!(d.rdns[0], single(&[text("2.5.4.3", ",+\"\\<>;= #")]));
    }

    #[test]
    fn hex_pair_escapes_decode_utf8_sequences() {
        assert_eq!(dn("CN=Caf\\C3\\A9").rdns[0], single(&[text("2.5.4.3", "Café")]));
        assert_eq!(dn("CN=\\e2\\82\\ac").rdns[0], single(&[text("2.5.4.3", "€")]));
    }

    #[test]
    fn hex_pair_escapes_forming_invalid_utf8_are_rejected() {
        assert_eq!(Dn::parse("CN=\\C3"), Err(DnError::InvalidUtf8 { offset: 3 }));
        assert_eq!(Dn::parse("CN=a\\ff"), Err(DnError::InvalidUtf8 { offset: 3 }));
    }

    #[test]
    fn escaped_nul_is_a_legal_character_that_does_not_truncate() {
        let d = dn("CN=evil.example.com\\00.good.example.com");
        assert_eq!(d.rdns[0], single(&[text("2.5.4.3", "evil.example.com\0.good.example.com")]));
        assert!(!d.matches(&dn("CN=evil.example.com")));
    }

    #[test]
    fn unescaped_nul_is_rejected() {
        assert_eq!(Dn::parse("CN=a\0b"), Err(DnError::UnescapedCharacter { ch: '\0', offset: 4 }));
    }

    #[test]
    fn raw_utf8_in_values_is_accepted() {
        assert_eq!(dn("CN=Zoë €").rdns[0], single(&[text("2.5.4.3", "Zoë €")]));
    }

    #[test]
    fn hash_value_of_a_string_type_decodes_to_text() {
        let cases = [
            ("#0C03666f6f", "foo"),           // UTF8String
            ("#1303666f6f", "foo"),           // PrintableString
            ("#1603666f6f", "foo"),           // IA5String
            ("#1A03666f6f", "foo"),           // VisibleString
            ("#1203313233", "123"),           // NumericString
            ("#1402e9e8", "éè"),              // TeletexString read as latin-1
            ("#1E0400e920ac", "é€"),          // BMPString, UTF-16BE
            ("#1C080001F60000000041", "😀A"), // UniversalString, UTF-32BE
        ];
        for (hex, want) in cases {
            let d = Dn::parse(&format!("CN={hex}")).unwrap_or_else(|e| panic!("{hex}: {e}"));
            assert_eq!(d.rdns[0], single(&[text("2.5.4.3", want)]), "{hex}");
        }
    }

    #[test]
    fn hash_value_of_another_type_is_kept_as_the_whole_tlv() {
        let d = dn("1.2.3.4=#04020102");
        assert_eq!(d.rdns[0].avas[0].value, AttrValue::Bytes(vec![0x04, 0x02, 0x01, 0x02]));
    }

    #[test]
    fn hash_value_must_be_one_complete_ber_encoding() {
        for (s, e) in [
            ("CN=#0C03666f", DnError::InvalidBerValue { offset: 3 }), // short content
            ("CN=#0C02666f6f", DnError::InvalidBerValue { offset: 3 }), // trailing byte
            ("CN=#0C80666f0000", DnError::InvalidBerValue { offset: 3 }), // indefinite
            ("CN=#1E03000041", DnError::InvalidBerValue { offset: 3 }), // odd BMP length
            ("CN=#0C02c328", DnError::InvalidBerValue { offset: 3 }), // bad UTF-8
            ("CN=#", DnError::InvalidHexValue { offset: 3 }),
            ("CN=#0C0", DnError::InvalidHexValue { offset: 3 }),
            ("CN=#0C03666f6fzz", DnError::InvalidHexValue { offset: 3 }),
        ] {
            assert_eq!(Dn::parse(s), Err(e), "{s}");
        }
    }

    #[test]
    fn quoted_values_are_accepted() {
        let d = dn(r#"CN="a, b+c;<d>",O="x\"y""#);
        assert_eq!(d.rdns[1], single(&[text("2.5.4.3", "a, b+c;<d>")]));
        assert_eq!(d.rdns[0], single(&[text("2.5.4.10", "x\"y")]));
    }

    #[test]
    fn unterminated_quote_is_rejected() {
        assert_eq!(Dn::parse("CN=\"abc"), Err(DnError::UnterminatedQuote { offset: 3 }));
    }

    #[test]
    fn text_after_a_quoted_value_is_rejected() {
        assert_eq!(Dn::parse("CN=\"abc\"d"), Err(DnError::UnexpectedCharacter { ch: 'd', offset: 8 }));
    }

    #[test]
    fn unescaped_special_characters_in_a_value_are_rejected() {
        for (s, ch) in [("CN=a\"b", '"'), ("CN=a<b", '<'), ("CN=a>b", '>'), ("CN=a;b", ';')] {
            assert_eq!(Dn::parse(s), Err(DnError::UnescapedCharacter { ch, offset: 4 }), "{s}");
        }
    }

    #[test]
    fn equals_sign_is_allowed_unescaped_in_a_value() {
        assert_eq!(dn("CN=a=b").rdns[0], single(&[text("2.5.4.3", "a=b")]));
    }

    #[test]
    fn dangling_backslash_is_rejected() {
        assert_eq!(Dn::parse("CN=a\\"), Err(DnError::DanglingEscape { offset: 4 }));
    }

    #[test]
    fn backslash_before_an_ordinary_character_is_rejected() {
        assert_eq!(Dn::parse("CN=a\\q"), Err(DnError::InvalidEscape { offset: 4 }));
        assert_eq!(Dn::parse("CN=a\\4g"), Err(DnError::InvalidEscape { offset: 4 }));
    }

    #[test]
    fn missing_equals_is_rejected() {
        assert_eq!(Dn::parse("CN"), Err(DnError::MissingEquals { offset: 2 }));
        assert_eq!(Dn::parse("CN a"), Err(DnError::MissingEquals { offset: 3 }));
        assert_eq!(Dn::parse("CN=a,O"), Err(DnError::MissingEquals { offset: 6 }));
    }

    #[test]
    fn empty_attribute_type_is_rejected() {
        assert_eq!(Dn::parse("=a"), Err(DnError::EmptyAttributeType { offset: 0 }));
        assert_eq!(Dn::parse("CN=a,,O=b"), Err(DnError::EmptyAttributeType { offset: 5 }));
        assert_eq!(Dn::parse("CN=a,"), Err(DnError::EmptyAttributeType { offset: 5 }));
        assert_eq!(Dn::parse("CN=a+"), Err(DnError::EmptyAttributeType { offset: 5 }));
    }

    #[test]
    fn empty_value_is_allowed() {
        assert_eq!(dn("CN=,O=x").rdns[1], single(&[text("2.5.4.3", "")]));
    }

    #[test]
    fn error_messages_are_one_line() {
        let errors =
            [Dn::parse("CN=a\n;").unwrap_err(), Dn::parse("X\nY=a").unwrap_err(), Dn::parse("CN=\"a\"\n").unwrap_err()];
        for e in errors {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg}");
        }
    }

    // --- distinguishedNameMatch -------------------------------------------------------------
}
