//! Distinguished names: RFC 4514 strings, X.509 names, and distinguishedNameMatch (RFC 4517).

use std::fmt;

/// A distinguished name as a sequence of RDNs in ASN.1 order: the first RDN is the most significant
/// (for example `C=GB`). RFC 4514 strings list the RDNs in the reverse order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dn {
    pub rdns: Vec<Rdn>,
}

/// A relative distinguished name: one or more attribute type-and-value pairs (joined by `+` in strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdn {
    pub avas: Vec<Ava>,
}

/// One attribute type and value; the type is a dotted-decimal OID such as `2.5.4.3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub oid: String,
    pub value: AttrValue,
}

/// An attribute value: decoded text when it was a directory string type, else the full DER/BER TLV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Text(String),
    Bytes(Vec<u8>),
}

/// Why a distinguished name could not be parsed or decoded. `offset` is a byte offset in the input string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnError {
    /// An RDN or AVA position holds no attribute type (e.g. `=x`, `CN=a,,O=b`, a trailing `,`).
    EmptyAttributeType { offset: usize },
    /// The attribute type is not followed by `=`.
    MissingEquals { offset: usize },
    /// A short name that is not one of the known attribute types.
    UnknownAttributeType { name: String, offset: usize },
    /// The attribute type is neither a short name nor a well-formed dotted OID.
    InvalidAttributeType { offset: usize },
    /// A character that RFC 4514 requires to be escaped appears unescaped in a value.
    UnescapedCharacter { ch: char, offset: usize },
    /// A `\` at the end of the input.
    DanglingEscape { offset: usize },
    /// A `\` followed by something that is neither a special character nor two hex digits.
    InvalidEscape { offset: usize },
    /// The bytes of a value (after `\XX` unescaping) are not valid UTF-8.
    InvalidUtf8 { offset: usize },
    /// A `#` value whose hex digits are missing, odd in number, or not hex.
    InvalidHexValue { offset: usize },
    /// A `#` value whose bytes are not exactly one BER/DER TLV, or a string TLV with invalid content.
    InvalidBerValue { offset: usize },
    /// A quoted value without its closing `"`.
    UnterminatedQuote { offset: usize },
    /// Something other than `,`, `+` or the end of input follows a quoted or `#` value.
    UnexpectedCharacter { ch: char, offset: usize },
    /// An X.509 RDN with no attributes.
    EmptyRdn { index: usize },
    /// An X.509 attribute whose string value does not decode in its declared encoding.
    InvalidStringValue { oid: String },
    /// An X.509 attribute whose value is not exactly one TLV with a definite length.
    MalformedValue { oid: String },
}

impl fmt::Display for DnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnError::EmptyAttributeType { offset } => {
                write!(f, "distinguished name: empty attribute type at byte {offset}")
            }
            DnError::MissingEquals { offset } => {
                write!(f, "distinguished name: expected '=' after the attribute type at byte {offset}")
            }
            DnError::UnknownAttributeType { name, offset } => write!(
                f,
                "distinguished name: unknown attribute type \"{}\" at byte {offset}",
                name.escape_debug()
            ),
            DnError::InvalidAttributeType { offset } => write!(
                f,
                "distinguished name: attribute type at byte {offset} is neither a name nor a dotted OID"
            ),
            DnError::UnescapedCharacter { ch, offset } => write!(
                f,
                "distinguished name: character '{}' at byte {offset} must be escaped",
                ch.escape_debug()
            ),
            DnError::DanglingEscape { offset } => {
                write!(f, "distinguished name: '\\' at byte {offset} ends the input")
            }
            DnError::InvalidEscape { offset } => write!(
                f,
                "distinguished name: '\\' at byte {offset} is followed by neither a special character nor two hex digits"
            ),
            DnError::InvalidUtf8 { offset } => {
                write!(f, "distinguished name: value at byte {offset} is not valid UTF-8")
            }
            DnError::InvalidHexValue { offset } => write!(
                f,
                "distinguished name: '#' value at byte {offset} is not an even number of hex digits"
            ),
            DnError::InvalidBerValue { offset } => write!(
                f,
                "distinguished name: '#' value at byte {offset} is not a single valid BER encoding"
            ),
            DnError::UnterminatedQuote { offset } => {
                write!(f, "distinguished name: quoted value at byte {offset} has no closing '\"'")
            }
            DnError::UnexpectedCharacter { ch, offset } => write!(
                f,
                "distinguished name: unexpected character '{}' at byte {offset}, expected ',' or '+'",
                ch.escape_debug()
            ),
            DnError::EmptyRdn { index } => {
                write!(f, "distinguished name: RDN number {index} has no attributes")
            }
            DnError::InvalidStringValue { oid } => write!(
                f,
                "distinguished name: value of attribute {} is not valid in its string encoding",
                oid.escape_debug()
            ),
            DnError::MalformedValue { oid } => write!(
                f,
                "distinguished name: value of attribute {} is not one DER value",
                oid.escape_debug()
            ),
        }
    }
}

impl std::error::Error for DnError {}

/// Known attribute short names (lowercase lookup key, display name, OID). The first entry for an OID
/// is the name used when displaying.
const ATTRIBUTE_TYPES: &[(&str, &str, &str)] = &[
    ("cn", "CN", "2.5.4.3"),
    ("commonname", "CN", "2.5.4.3"),
    ("l", "L", "2.5.4.7"),
    ("localityname", "L", "2.5.4.7"),
    ("st", "ST", "2.5.4.8"),
    ("stateorprovincename", "ST", "2.5.4.8"),
    ("o", "O", "2.5.4.10"),
    ("organizationname", "O", "2.5.4.10"),
    ("ou", "OU", "2.5.4.11"),
    ("organizationalunitname", "OU", "2.5.4.11"),
    ("c", "C", "2.5.4.6"),
    ("countryname", "C", "2.5.4.6"),
    ("street", "STREET", "2.5.4.9"),
    ("streetaddress", "STREET", "2.5.4.9"),
    ("dc", "DC", "0.9.2342.19200300.100.1.25"),
    ("domaincomponent", "DC", "0.9.2342.19200300.100.1.25"),
    ("uid", "UID", "0.9.2342.19200300.100.1.1"),
    ("userid", "UID", "0.9.2342.19200300.100.1.1"),
    ("sn", "SN", "2.5.4.4"),
    ("surname", "SN", "2.5.4.4"),
    ("serialnumber", "serialNumber", "2.5.4.5"),
    ("title", "title", "2.5.4.12"),
    ("gn", "GN", "2.5.4.42"),
    ("givenname", "GN", "2.5.4.42"),
    ("initials", "initials", "2.5.4.43"),
    ("generationqualifier", "generationQualifier", "2.5.4.44"),
    ("dnqualifier", "dnQualifier", "2.5.4.46"),
    ("pseudonym", "pseudonym", "2.5.4.65"),
    ("postalcode", "postalCode", "2.5.4.17"),
    ("organizationidentifier", "organizationIdentifier", "2.5.4.97"),
    ("businesscategory", "businessCategory", "2.5.4.15"),
    ("emailaddress", "emailAddress", "1.2.840.113549.1.9.1"),
    ("e", "emailAddress", "1.2.840.113549.1.9.1"),
];

fn oid_for_short_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    ATTRIBUTE_TYPES.iter().find(|(key, _, _)| *key == lower).map(|(_, _, oid)| *oid)
}

fn short_name_for_oid(oid: &str) -> Option<&'static str> {
    ATTRIBUTE_TYPES.iter().find(|(_, _, o)| *o == oid).map(|(_, name, _)| *name)
}

/// A dotted OID: at least two arcs, each decimal digits without a leading zero.
fn is_dotted_oid(s: &str) -> bool {
    let mut arcs = 0usize;
    for arc in s.split('.') {
        if arc.is_empty() || !arc.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if arc.len() > 1 && arc.starts_with('0') {
            return false;
        }
        arcs += 1;
    }
    arcs >= 2
}

mod matching;
mod parse;
mod value;

impl Dn {
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }
}

/// Writes a text value escaped per RFC 4514 §2.4; control characters are also hex-escaped so the
/// output is always one printable line.
fn write_escaped(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => write!(f, "\\{c}")?,
            ' ' if i == 0 || i == last => f.write_str("\\ ")?,
            '#' if i == 0 => f.write_str("\\#")?,
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    write!(f, "\\{b:02x}")?;
                }
            }
            c => write!(f, "{c}")?,
        }
    }
    Ok(())
}

impl fmt::Display for Dn {
    /// The RFC 4514 string: RDNs in reverse order, short names where known, values escaped,
    /// non-string values as `#` followed by the hex of their DER encoding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (j, ava) in rdn.avas.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                match short_name_for_oid(&ava.oid) {
                    Some(name) => f.write_str(name)?,
                    None => f.write_str(&ava.oid)?,
                }
                f.write_str("=")?;
                match &ava.value {
                    AttrValue::Text(text) => write_escaped(f, text)?,
                    AttrValue::Bytes(bytes) => {
                        f.write_str("#")?;
                        for b in bytes {
                            write!(f, "{b:02x}")?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
/// What the tests of every part of this module build DNs from.
mod testing {
    use super::*;

    pub(super) fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    pub(super) fn text(oid: &str, v: &str) -> Ava {
        Ava { oid: oid.to_string(), value: AttrValue::Text(v.to_string()) }
    }

    pub(super) fn single(avas: &[Ava]) -> Rdn {
        Rdn { avas: avas.to_vec() }
    }

    // --- parsing ---------------------------------------------------------------------------
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::dn::testing::*;

    #[test]
    fn display_is_rfc4514_with_short_names_in_reverse_order() {
        let d = dn("cn=client-one, ou=Payments, o=Example Bank, c=GB");
        assert_eq!(d.to_string(), "CN=client-one,OU=Payments,O=Example Bank,C=GB");
        assert_eq!(dn("1.2.3.4=x+CN=y").to_string(), "1.2.3.4=x+CN=y");
        assert_eq!(dn("").to_string(), "");
    }

    #[test]
    fn display_escapes_special_characters() {
        let d = dn(r#"CN=\#a\,b\+c\"d\\e\<f\>g\;h\ "#);
        assert_eq!(d.to_string(), r#"CN=\#a\,b\+c\"d\\e\<f\>g\;h\ "#);
        assert_eq!(dn("CN=\\ a").to_string(), "CN=\\ a");
        assert_eq!(dn("CN=a#b").to_string(), "CN=a#b");
    }

    #[test]
    fn display_hex_escapes_control_characters() {
        assert_eq!(dn("CN=a\\00b\\0ac").to_string(), "CN=a\\00b\\0ac");
    }

    #[test]
    fn display_shows_bytes_as_hash_hex() {
        assert_eq!(dn("1.2.3=#04020102").to_string(), "1.2.3=#04020102");
    }

    #[test]
    fn display_round_trips_through_parse() {
        let inputs = [
            "CN=client-one,OU=Payments,O=Example Bank,C=GB",
            "CN=a+OU=b,O=c",
            r#"CN=\,\+\"\\\<\>\;\=\ \#"#,
            "CN=\\ lead and trail\\ ",
            "CN=x\\00y",
            "CN=Zoë€😀",
            "1.2.3=#04020102",
            "CN=#1E0400e920ac",
            "UID=jdoe,DC=example,DC=com",
            r#"CN="quoted, value""#,
            "",
        ];
        for input in inputs {
            let d = dn(input);
            let again = dn(&d.to_string());
            assert_eq!(again, d, "{input}");
            assert!(again.matches(&d), "{input}");
        }
    }

    #[test]
    fn display_round_trips_for_generated_names() {
        // A small deterministic generator (no extra dependency): values drawn from a palette that
        // includes every character needing an escape.
        let palette: Vec<char> = "aZ9 ,+\"\\<>;=#\0\t\né€😀-.".chars().collect();
        let oids = ["2.5.4.3", "2.5.4.10", "2.5.4.11", "1.2.3.4", "0.9.2342.19200300.100.1.25"];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for _ in 0..500 {
            let rdns = (0..1 + next(4))
                .map(|_| Rdn {
                    avas: (0..1 + next(3))
                        .map(|_| Ava {
                            oid: oids[next(oids.len())].to_string(),
                            value: if next(8) == 0 {
                                AttrValue::Bytes(vec![0x04, 0x01, next(256) as u8])
                            } else {
                                AttrValue::Text((0..next(8)).map(|_| palette[next(palette.len())]).collect())
                            },
                        })
                        .collect(),
                })
                .collect();
            let d = Dn { rdns };
            let s = d.to_string();
            let again = Dn::parse(&s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(again, d, "{s:?}");
            assert!(again.matches(&d), "{s:?}");
        }
    }

    // --- from_name --------------------------------------------------------------------------
}
