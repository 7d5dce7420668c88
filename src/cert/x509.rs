//! The fields of a DER X.509 certificate (RFC 5280 §4.1) the filter reads, decoded with the `der` crate.
//!
//! Only what the filter uses is decoded: the signed TBSCertificate bytes, issuer and subject names, the
//! SubjectPublicKeyInfo, the extensions (subjectAltName's general names on request) and the signature.
//! Every other field is checked to be one well-formed TLV and skipped. Every length is checked, and
//! nothing may follow the last field of a SEQUENCE.

use der::oid::ObjectIdentifierRef;
use der::{asn1::BitStringRef, Decode, Header, Reader, SliceReader, Tag, TagNumber};

/// An object identifier in dotted-decimal form (`2.5.4.3`).
pub type Oid = String;

/// One attribute of a name: its type and its value's whole TLV (any type; directory strings are
/// decoded by [`crate::cert::dn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub oid: Oid,
    pub value: &'a [u8],
}

/// A name (RDNSequence): its RDNs in ASN.1 order, each with its attributes in encoded order.
pub type Name<'a> = Vec<Vec<Attribute<'a>>>;

/// One extension: its identifier and the content of its `extnValue` OCTET STRING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension<'a> {
    pub oid: Oid,
    pub value: &'a [u8],
}

/// A general name (RFC 5280 §4.2.1.6) of a kind the filter matches, or another kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeneralName<'a> {
    Email(&'a str),
    Dns(&'a str),
    Uri(&'a str),
    /// The octets of an iPAddress (4 or 16 of them when well-formed).
    Ip(&'a [u8]),
    /// otherName, x400Address, directoryName, ediPartyName or registeredID (not decoded).
    Other,
}

/// The decoded certificate, borrowing from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate<'a> {
    /// The whole TBSCertificate TLV: the bytes the signature covers.
    pub tbs: &'a [u8],
    /// The serialNumber INTEGER TLV.
    pub serial: &'a [u8],
    pub issuer: Name<'a>,
    /// The issuer Name TLV, as a CRL or an OCSP CertID names it.
    pub issuer_der: &'a [u8],
    /// The Validity TLV.
    pub validity: &'a [u8],
    pub subject: Name<'a>,
    pub subject_der: &'a [u8],
    /// The whole SubjectPublicKeyInfo TLV.
    pub spki: &'a [u8],
    pub extensions: Vec<Extension<'a>>,
    pub signature_algorithm: Oid,
    /// The signature BIT STRING's octets.
    pub signature: &'a [u8],
}

/// subjectAltName (RFC 5280 §4.2.1.6).
pub const SUBJECT_ALT_NAME: &str = "2.5.29.17";

fn context(number: u8, constructed: bool) -> Tag {
    Tag::ContextSpecific { constructed, number: TagNumber(u32::from(number)) }
}

/// Reads an OBJECT IDENTIFIER into its dotted form.
fn oid<'a>(r: &mut SliceReader<'a>) -> der::Result<Oid> {
    let header = Header::decode(r)?;
    header.tag().assert_eq(Tag::ObjectIdentifier)?;
    let content = r.read_slice(header.length())?;
    Ok(ObjectIdentifierRef::from_bytes(content).map_err(|_| Tag::ObjectIdentifier.value_error())?.to_string())
}

/// An AlgorithmIdentifier's algorithm; the parameters are skipped.
fn algorithm<'a>(r: &mut SliceReader<'a>) -> der::Result<Oid> {
    r.sequence(|a| {
        let id = oid(a)?;
        if !a.is_finished() {
            a.tlv_bytes()?;
        }
        Ok::<_, der::Error>(id)
    })
}

/// Reads the rest of the current constructed value as a list of `item`s.
fn all<'a, T>(
    r: &mut SliceReader<'a>,
    mut item: impl FnMut(&mut SliceReader<'a>) -> der::Result<T>,
) -> der::Result<Vec<T>> {
    let mut out = Vec::new();
    while !r.is_finished() {
        out.push(item(r)?);
    }
    Ok(out)
}

/// Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue).
fn name<'a>(r: &mut SliceReader<'a>) -> der::Result<Name<'a>> {
    r.sequence(|rdns| {
        all(rdns, |rdn| {
            let header = Header::decode(rdn)?;
            header.tag().assert_eq(Tag::Set)?;
            rdn.read_nested(header.length(), |atvs| {
                all(atvs, |atv| {
                    atv.sequence(|a| {
                        let oid = oid(a)?;
                        // The value is one TLV of any type: taken as bytes, checked by `crate::cert::dn`.
                        let rest = a.remaining_len();
                        Ok::<_, der::Error>(Attribute { oid, value: a.read_slice(rest)? })
                    })
                })
            })
        })
    })
}

/// A whole DER `Name` (nothing may follow it).
pub fn name_from_der(der: &[u8]) -> der::Result<Name<'_>> {
    let mut reader = SliceReader::new(der)?;
    let decoded = name(&mut reader)?;
    reader.finish()?;
    Ok(decoded)
}

/// Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }.
fn extension<'a>(r: &mut SliceReader<'a>) -> der::Result<Extension<'a>> {
    r.sequence(|e| {
        let oid = oid(e)?;
        if Tag::peek(e)? == Tag::Boolean {
            bool::decode(e)?;
        }
        let header = Header::decode(e)?;
        header.tag().assert_eq(Tag::OctetString)?;
        Ok::<_, der::Error>(Extension { oid, value: e.read_slice(header.length())? })
    })
}

/// Skips the optional field tagged `tag` if it is next.
fn skip_optional(r: &mut SliceReader<'_>, tag: Tag) -> der::Result<()> {
    if !r.is_finished() && Tag::peek(r)? == tag {
        r.tlv_bytes()?;
    }
    Ok(())
}

/// The fields of a TBSCertificate the filter reads.
struct Tbs<'a> {
    serial: &'a [u8],
    issuer: Name<'a>,
    issuer_der: &'a [u8],
    validity: &'a [u8],
    subject: Name<'a>,
    subject_der: &'a [u8],
    spki: &'a [u8],
    extensions: Vec<Extension<'a>>,
}

fn tbs_certificate<'a>(tbs: &'a [u8]) -> der::Result<Tbs<'a>> {
    let mut reader = SliceReader::new(tbs)?;
    let fields = reader.sequence(|r| {
        skip_optional(r, context(0, true))?; // version
        let serial = r.tlv_bytes()?;
        r.tlv_bytes()?; // signature
        let issuer_der = r.tlv_bytes()?;
        let issuer = name_from_der(issuer_der)?;
        let validity = r.tlv_bytes()?;
        let subject_der = r.tlv_bytes()?;
        let subject = name_from_der(subject_der)?;
        let spki = r.tlv_bytes()?;
        skip_optional(r, context(1, false))?; // issuerUniqueID
        skip_optional(r, context(2, false))?; // subjectUniqueID
        let mut extensions = Vec::new();
        if !r.is_finished() {
            let header = Header::decode(r)?;
            header.tag().assert_eq(context(3, true))?;
            extensions = r.read_nested(header.length(), |list| list.sequence(|l| all(l, extension)))?;
        }
        Ok::<_, der::Error>(Tbs { serial, issuer, issuer_der, validity, subject, subject_der, spki, extensions })
    })?;
    reader.finish()?;
    Ok(fields)
}

impl<'a> Certificate<'a> {
    /// Decodes the certificate at the start of `der`; also returns how many bytes follow it.
    pub fn decode(der: &'a [u8]) -> der::Result<(Certificate<'a>, usize)> {
        let mut reader = SliceReader::new(der)?;
        let (tbs, signature_algorithm, signature) = reader.sequence(|r| {
            let tbs = r.tlv_bytes()?;
            let signature_algorithm = algorithm(r)?;
            let bits = BitStringRef::decode(r)?;
            let signature = bits.as_bytes().ok_or_else(|| Tag::BitString.value_error())?;
            Ok::<_, der::Error>((tbs, signature_algorithm, signature))
        })?;
        let trailing = usize::try_from(reader.remaining_len()).unwrap_or(usize::MAX);
        let t = tbs_certificate(tbs)?;
        let certificate = Certificate {
            tbs,
            serial: t.serial,
            issuer: t.issuer,
            issuer_der: t.issuer_der,
            validity: t.validity,
            subject: t.subject,
            subject_der: t.subject_der,
            spki: t.spki,
            extensions: t.extensions,
            signature_algorithm,
            signature,
        };
        Ok((certificate, trailing))
    }
}

/// The general names of a subjectAltName extension's value (GeneralNames ::= SEQUENCE OF GeneralName).
pub fn general_names(value: &[u8]) -> der::Result<Vec<GeneralName<'_>>> {
    let mut reader = SliceReader::new(value)?;
    let names = reader.sequence(|r| {
        all(r, |g| {
            let header = Header::decode(g)?;
            let content = g.read_slice(header.length())?;
            // An IA5String name that is not even UTF-8 makes the extension invalid.
            let text = || std::str::from_utf8(content).map_err(|_| header.tag().value_error());
            Ok(match header.tag() {
                Tag::ContextSpecific { constructed: false, number: TagNumber(1) } => GeneralName::Email(text()?),
                Tag::ContextSpecific { constructed: false, number: TagNumber(2) } => GeneralName::Dns(text()?),
                Tag::ContextSpecific { constructed: false, number: TagNumber(6) } => GeneralName::Uri(text()?),
                Tag::ContextSpecific { constructed: false, number: TagNumber(7) } => GeneralName::Ip(content),
                _ => GeneralName::Other,
            })
        })
    })?;
    reader.finish()?;
    Ok(names)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testdata::{der, LEAF, RSA_CA, RSA_SHA512_LEAF};

    /// DER TLV with a short-form length.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, u8::try_from(content.len()).unwrap()];
        out.extend_from_slice(content);
        out
    }

    #[test]
    fn the_fields_of_a_certificate_are_found() {
        let bytes = der(LEAF);
        let (cert, trailing) = Certificate::decode(&bytes).unwrap();
        assert_eq!(trailing, 0);
        // The TBSCertificate is the first element of the outer SEQUENCE (both with 2-byte long-form lengths).
        assert_eq!(cert.tbs.as_ptr(), bytes[4..].as_ptr());
        assert_eq!(cert.signature_algorithm, "1.2.840.10045.4.3.2");
        assert_eq!(cert.subject.len(), 4);
        assert_eq!(cert.subject[3][0].oid, "2.5.4.3");
        assert_eq!(cert.subject[3][0].value, tlv(0x0C, b"dn-client"));
        assert_eq!(cert.issuer[2][0].value, tlv(0x0C, b"Unit Test CA"));
        assert_eq!(&cert.spki[..2], &[0x30, 0x59]);
        let oids: Vec<&str> = cert.extensions.iter().map(|e| e.oid.as_str()).collect();
        assert_eq!(oids, ["2.5.29.17", "2.5.29.19", "2.5.29.14", "2.5.29.35"]);
        assert!(bytes.ends_with(cert.signature));
    }

    #[test]
    fn the_signature_algorithm_is_read_past_its_parameters() {
        let (leaf, ca) = (der(RSA_SHA512_LEAF), der(RSA_CA));
        let (cert, _) = Certificate::decode(&leaf).unwrap();
        assert_eq!(cert.signature_algorithm, "1.2.840.113549.1.1.13");
        let (ca, _) = Certificate::decode(&ca).unwrap();
        assert_eq!(ca.signature.len(), 256);
    }

    #[test]
    fn bytes_after_the_certificate_are_counted_not_read() {
        let mut bytes = der(LEAF);
        bytes.extend_from_slice(&[0, 0, 0]);
        assert_eq!(Certificate::decode(&bytes).unwrap().1, 3);
    }

    #[test]
    fn a_truncated_or_extended_tbs_is_an_error() {
        let bytes = der(LEAF);
        for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(Certificate::decode(&bytes[..cut]).is_err(), "{cut}");
        }
        // One byte more inside the outer SEQUENCE than its fields.
        let mut longer = bytes.clone();
        longer[3] += 1;
        longer.push(0);
        assert!(Certificate::decode(&longer).is_err());
    }

    #[test]
    fn attributes_of_a_multi_valued_rdn_keep_their_encoded_order_and_any_value_type() {
        let cn = tlv(0x30, &[tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x1C, &[0, 0, 0, 0x41])].concat());
        let ou = tlv(0x30, &[tlv(0x06, &[0x55, 0x04, 0x0B]), tlv(0x0C, b"b")].concat());
        let der = tlv(0x30, &tlv(0x31, &[cn, ou].concat()));
        let name = name_of(&der);
        assert_eq!(name.len(), 1);
        assert_eq!((name[0][0].oid.as_str(), name[0][1].oid.as_str()), ("2.5.4.3", "2.5.4.11"));
        assert_eq!(name[0][0].value, tlv(0x1C, &[0, 0, 0, 0x41]));
    }

    #[test]
    fn general_names_of_each_kind_are_decoded_and_others_skipped() {
        let value = tlv(
            0x30,
            &[
                tlv(0x82, b"a.example"),
                tlv(0x81, b"ops@example.com"),
                tlv(0x86, b"spiffe://example.org/a"),
                tlv(0x87, &[10, 1, 2, 3]),
                tlv(0xA4, &tlv(0x30, &[])), // directoryName
                tlv(0x88, &[0x2A, 0x03]),   // registeredID
            ]
            .concat(),
        );
        assert_eq!(
            general_names(&value).unwrap(),
            [
                GeneralName::Dns("a.example"),
                GeneralName::Email("ops@example.com"),
                GeneralName::Uri("spiffe://example.org/a"),
                GeneralName::Ip(&[10, 1, 2, 3]),
                GeneralName::Other,
                GeneralName::Other,
            ]
        );
    }

    #[test]
    fn a_general_name_string_that_is_not_utf8_or_not_tagged_as_one_is_an_error() {
        assert!(general_names(&tlv(0x30, &tlv(0x82, &[0xFF]))).is_err());
        assert!(general_names(&tlv(0x30, &tlv(0x1C, b"a"))).is_err());
        assert!(general_names(&[tlv(0x30, &tlv(0x82, b"a")), vec![0]].concat()).is_err());
        assert_eq!(general_names(&tlv(0x30, &[])).unwrap(), []);
    }

    /// The name a whole DER `Name` decodes to (for tests of `crate::cert::dn`).
    pub(crate) fn name_of(der: &[u8]) -> Name<'_> {
        let mut reader = SliceReader::new(der).unwrap();
        let decoded = name(&mut reader).unwrap();
        reader.finish().unwrap();
        decoded
    }
}
