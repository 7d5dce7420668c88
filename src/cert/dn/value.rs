//! Attribute values as BER/DER encodes them: the string types of `#hex` values and of X.509 names.
//!
//! A hand-written reader of one TLV, not the `der` crate the rest of `cert` uses: `der` 0.8 refuses
//! UniversalString (tag 28), which RFC 5280 allows in a DirectoryString, and a `#hex` value in a registered DN
//! may be BER (RFC 4514 §2.4).

use super::{AttrValue, Ava, Dn, DnError, Rdn};
use crate::cert::x509::Name;

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
pub(super) fn decode_string(tag: u32, content: &[u8]) -> Option<Result<String, ()>> {
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
pub(super) struct Tlv<'a> {
    pub(super) class_bits: u8,
    pub(super) constructed: bool,
    pub(super) tag: u32,
    pub(super) content: &'a [u8],
}

/// Parses exactly one BER TLV with a definite length occupying all of `bytes`.
pub(super) fn parse_single_tlv(bytes: &[u8]) -> Option<Tlv<'_>> {
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

impl Dn {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::dn::testing::*;

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
