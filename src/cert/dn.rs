//! Distinguished names: RFC 4514 strings, X.509 names, and distinguishedNameMatch (RFC 4517).

use std::fmt;

use crate::cert::x509::Name;

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

// ---------------------------------------------------------------------------------------------
// String values inside BER/DER (shared by `#hex` values and X.509 names)

const TAG_UTF8_STRING: u32 = 0x0C;
const TAG_NUMERIC_STRING: u32 = 0x12;
const TAG_PRINTABLE_STRING: u32 = 0x13;
const TAG_TELETEX_STRING: u32 = 0x14;
const TAG_IA5_STRING: u32 = 0x16;
const TAG_VISIBLE_STRING: u32 = 0x1A;
const TAG_UNIVERSAL_STRING: u32 = 0x1C;
const TAG_BMP_STRING: u32 = 0x1E;

/// Decodes the content of a universal, primitive string type. `None` when `tag` is not a string type;
/// `Some(Err(()))` when the content is not valid for that type.
fn decode_string(tag: u32, content: &[u8]) -> Option<Result<String, ()>> {
    match tag {
        // Decoded as UTF-8 (a superset of their repertoires), as x509-parser also accepts.
        TAG_UTF8_STRING | TAG_NUMERIC_STRING | TAG_PRINTABLE_STRING | TAG_IA5_STRING | TAG_VISIBLE_STRING => {
            Some(String::from_utf8(content.to_vec()).map_err(|_| ()))
        }
        TAG_TELETEX_STRING => Some(Ok(content.iter().map(|&b| char::from(b)).collect())),
        TAG_BMP_STRING => {
            let chunks = content.chunks_exact(2);
            if !chunks.remainder().is_empty() {
                return Some(Err(()));
            }
            let units = chunks.map(|c| match c {
                [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                _ => 0,
            });
            Some(char::decode_utf16(units).collect::<Result<String, _>>().map_err(|_| ()))
        }
        TAG_UNIVERSAL_STRING => {
            let chunks = content.chunks_exact(4);
            if !chunks.remainder().is_empty() {
                return Some(Err(()));
            }
            Some(
                chunks
                    .map(|c| match c {
                        [a, b, c, d] => char::from_u32(u32::from_be_bytes([*a, *b, *c, *d])).ok_or(()),
                        _ => Err(()),
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// One BER TLV with a definite length: (class bits, constructed, tag number, content).
struct Tlv<'a> {
    class_bits: u8,
    constructed: bool,
    tag: u32,
    content: &'a [u8],
}

/// Parses exactly one BER TLV with a definite length occupying all of `bytes`.
fn parse_single_tlv(bytes: &[u8]) -> Option<Tlv<'_>> {
    let (&first, mut rest) = bytes.split_first()?;
    let class_bits = first >> 6;
    let constructed = first & 0x20 != 0;
    let mut tag = u32::from(first & 0x1F);
    if tag == 0x1F {
        tag = 0;
        loop {
            let (&b, r) = rest.split_first()?;
            rest = r;
            tag = tag.checked_mul(128)?.checked_add(u32::from(b & 0x7F))?;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&len_byte, r) = rest.split_first()?;
    rest = r;
    let len = if len_byte & 0x80 == 0 {
        usize::from(len_byte)
    } else {
        let n = usize::from(len_byte & 0x7F);
        if n == 0 || n > std::mem::size_of::<usize>() {
            return None; // indefinite length, or too long
        }
        let (len_bytes, r) = (rest.get(..n)?, rest.get(n..)?);
        rest = r;
        len_bytes.iter().try_fold(0usize, |acc, &b| acc.checked_mul(256)?.checked_add(usize::from(b)))?
    };
    if rest.len() != len {
        return None;
    }
    Some(Tlv { class_bits, constructed, tag, content: rest })
}

// ---------------------------------------------------------------------------------------------
// RFC 4514 parsing

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

// ---------------------------------------------------------------------------------------------
// distinguishedNameMatch

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
    /// Parses an RFC 4514 string (also the RFC 2253 output of Envoy and OpenSSL). Spaces around
    /// `,`, `+` and `=` and at both ends are ignored; an empty string is the empty DN.
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        Parser { input: s.as_bytes(), pos: 0 }.parse_dn()
    }

    /// Decodes an X.509 `Name` in ASN.1 order. String-typed values become text; any other value is
    /// kept as its full DER encoding.
    pub fn from_name(name: &Name<'_>) -> Result<Dn, DnError> {
        let mut rdns = Vec::new();
        for (index, rdn) in name.iter().enumerate() {
            let mut avas = Vec::new();
            for attr in rdn {
                let oid = attr.oid.clone();
                let Some(tlv) = parse_single_tlv(attr.value) else {
                    return Err(DnError::MalformedValue { oid });
                };
                let decoded =
                    if tlv.class_bits == 0 && !tlv.constructed { decode_string(tlv.tag, tlv.content) } else { None };
                let value = match decoded {
                    Some(Ok(text)) => AttrValue::Text(text),
                    Some(Err(())) => return Err(DnError::InvalidStringValue { oid }),
                    None => AttrValue::Bytes(attr.value.to_vec()),
                };
                avas.push(Ava { oid, value });
            }
            if avas.is_empty() {
                return Err(DnError::EmptyRdn { index });
            }
            rdns.push(Rdn { avas });
        }
        Ok(Dn { rdns })
    }

    /// distinguishedNameMatch (RFC 4517 §4.2.15): the same number of RDNs, pairwise equal in order;
    /// text values compared with caseIgnoreMatch and insignificant-space handling.
    pub fn matches(&self, other: &Dn) -> bool {
        self.rdns.len() == other.rdns.len() && self.rdns.iter().zip(&other.rdns).all(|(a, b)| a.matches(b))
    }

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
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    fn text(oid: &str, v: &str) -> Ava {
        Ava { oid: oid.to_string(), value: AttrValue::Text(v.to_string()) }
    }

    fn single(avas: &[Ava]) -> Rdn {
        Rdn { avas: avas.to_vec() }
    }

    // --- parsing ---------------------------------------------------------------------------

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

    /// DER TLV with a short or long-form length.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 128 {
            out.push(content.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(content);
        out
    }

    /// AttributeTypeAndValue with an OID given as DER content bytes and a value TLV.
    fn atv(oid: &[u8], value: &[u8]) -> Vec<u8> {
        let mut content = tlv(0x06, oid);
        content.extend_from_slice(value);
        tlv(0x30, &content)
    }

    fn name(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let content: Vec<u8> = rdns.iter().flat_map(|atvs| tlv(0x31, &atvs.concat())).collect();
        tlv(0x30, &content)
    }

    const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
    const OID_O: &[u8] = &[0x55, 0x04, 0x0A];
    const OID_OU: &[u8] = &[0x55, 0x04, 0x0B];
    const OID_C: &[u8] = &[0x55, 0x04, 0x06];

    fn from_der(der: &[u8]) -> Result<Dn, DnError> {
        Dn::from_name(&crate::cert::x509::tests::name_of(der))
    }

    #[test]
    fn x509_name_is_read_in_asn1_order() {
        let der = name(&[
            vec![atv(OID_C, &tlv(0x13, b"GB"))],
            vec![atv(OID_O, &tlv(0x0C, b"Example Bank"))],
            vec![atv(OID_CN, &tlv(0x0C, b"client-one"))],
        ]);
        let d = from_der(&der).unwrap();
        assert_eq!(d.to_string(), "CN=client-one,O=Example Bank,C=GB");
        assert!(d.matches(&dn("cn=Client-One, o=example bank, c=gb")));
    }

    #[test]
    fn x509_multi_valued_rdn_is_kept_together() {
        let der = name(&[vec![atv(OID_CN, &tlv(0x0C, b"a")), atv(OID_OU, &tlv(0x0C, b"b"))]]);
        let d = from_der(&der).unwrap();
        assert_eq!(d.rdns.len(), 1);
        assert!(d.matches(&dn("OU=b+CN=a")));
    }

    #[test]
    fn x509_string_types_decode_to_text() {
        let cases: [(u8, &[u8], &str); 8] = [
            (0x0C, "Zoë".as_bytes(), "Zoë"),
            (0x13, b"Zoe", "Zoe"),
            (0x16, b"zoe@example.com", "zoe@example.com"),
            (0x1A, b"Zoe", "Zoe"),
            (0x12, b"123", "123"),
            (0x14, &[0x5A, 0x6F, 0xEB], "Zoë"),
            (0x1E, &[0x00, 0x5A, 0x00, 0x6F, 0x00, 0xEB, 0x20, 0xAC], "Zoë€"),
            (0x1C, &[0, 0, 0, 0x5A, 0, 1, 0xF6, 0], "Z😀"),
        ];
        for (tag, content, want) in cases {
            let d = from_der(&name(&[vec![atv(OID_CN, &tlv(tag, content))]])).unwrap();
            assert_eq!(d.rdns[0], single(&[text("2.5.4.3", want)]), "tag {tag:#x}");
        }
    }

    #[test]
    fn x509_non_string_value_is_kept_as_full_der() {
        let value = tlv(0x04, &[1, 2, 3]);
        let d = from_der(&name(&[vec![atv(&[0x2A, 0x03], &value)]])).unwrap();
        assert_eq!(d.rdns[0], single(&[Ava { oid: "1.2.3".to_string(), value: AttrValue::Bytes(value.clone()) }]));
        assert!(d.matches(&dn("1.2.3=#0403010203")));
    }

    #[test]
    fn x509_nul_inside_a_value_does_not_truncate_it() {
        let d = from_der(&name(&[vec![atv(OID_CN, &tlv(0x0C, b"good.example\0.evil"))]])).unwrap();
        assert!(d.matches(&dn("CN=good.example\\00.evil")));
        assert!(!d.matches(&dn("CN=good.example")));
    }

    #[test]
    fn x509_bmp_string_with_odd_length_is_rejected() {
        assert_eq!(
            from_der(&name(&[vec![atv(OID_CN, &tlv(0x1E, &[0, 0x41, 0]))]])),
            Err(DnError::InvalidStringValue { oid: "2.5.4.3".to_string() })
        );
    }

    #[test]
    fn x509_name_matches_the_same_name_given_as_hash_value() {
        let d = from_der(&name(&[vec![atv(OID_CN, &tlv(0x1E, &[0, 0x66, 0, 0x6F, 0, 0x6F]))]])).unwrap();
        assert!(d.matches(&dn("CN=#0C03666f6f")));
        assert!(d.matches(&dn("CN=FOO")));
    }
}
