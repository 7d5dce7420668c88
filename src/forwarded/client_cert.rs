//! RFC 9440 Client-Cert and Client-Cert-Chain header fields (RFC 8941 byte sequences).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use std::fmt;

/// Why a Client-Cert or Client-Cert-Chain value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertError {
    /// An item is not a byte sequence (does not start with `:`), e.g. a token, string or inner list.
    NotByteSequence,
    /// A byte sequence has no closing `:`.
    MissingClosingColon,
    /// A byte sequence holds a character outside the base64 alphabet or is not valid base64.
    InvalidBase64,
    /// A byte sequence is empty (`::`), so it carries no certificate.
    Empty,
    /// A parameter after the byte sequence is not RFC 8941 syntax.
    InvalidParameter,
    /// Characters follow the item (or a list member) where the field should end or a `,` follow.
    TrailingCharacters,
    /// A list has an empty member (leading, doubled or trailing `,`).
    EmptyListMember,
}

impl fmt::Display for ClientCertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            ClientCertError::NotByteSequence => "client certificate field is not a byte sequence",
            ClientCertError::MissingClosingColon => "client certificate byte sequence has no closing ':'",
            ClientCertError::InvalidBase64 => "client certificate byte sequence is not valid base64",
            ClientCertError::Empty => "client certificate byte sequence is empty",
            ClientCertError::InvalidParameter => "client certificate field has an invalid parameter",
            ClientCertError::TrailingCharacters => {
                "client certificate field has unexpected characters after the byte sequence"
            }
            ClientCertError::EmptyListMember => "client certificate chain has an empty list member",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for ClientCertError {}

/// RFC 8941 §4.2.7: parsers should accept missing padding and non-zero pad bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Parses a `Client-Cert` value (an sf-item `:base64:` with optional parameters, which are
/// ignored) to the certificate's DER. Surrounding spaces are trimmed.
pub fn parse_client_cert(value: &[u8]) -> Result<Vec<u8>, ClientCertError> {
    let mut cur = Cursor::new(value);
    cur.skip(|b| b == b' ');
    let der = cur.item()?;
    cur.skip(|b| b == b' ');
    if cur.peek().is_some() {
        return Err(ClientCertError::TrailingCharacters);
    }
    Ok(der)
}

/// Parses a `Client-Cert-Chain` value (an sf-list of byte sequences, `,` with optional whitespace
/// between) to the DER of each member, in order. An empty field is an empty list.
pub fn parse_client_cert_chain(value: &[u8]) -> Result<Vec<Vec<u8>>, ClientCertError> {
    let mut cur = Cursor::new(value);
    let mut members = Vec::new();
    cur.skip(|b| b == b' ');
    if cur.peek().is_none() {
        return Ok(members);
    }
    loop {
        if matches!(cur.peek(), None | Some(b',')) {
            return Err(ClientCertError::EmptyListMember);
        }
        members.push(cur.item()?);
        cur.skip(is_ows);
        match cur.next() {
            None => return Ok(members),
            Some(b',') => cur.skip(is_ows),
            Some(_) => return Err(ClientCertError::TrailingCharacters),
        }
    }
}

/// Encodes `der` as an RFC 8941 byte sequence: `:` standard padded base64 `:`.
pub fn encode(der: &[u8]) -> String {
    format!(":{}:", STANDARD.encode(der))
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(input: &'a [u8]) -> Self {
        Cursor { rest: input }
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    fn skip(&mut self, pred: impl Fn(u8) -> bool) {
        let n = self.rest.iter().take_while(|&&b| pred(b)).count();
        self.rest = self.rest.get(n..).unwrap_or_default();
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let n = self.rest.iter().take_while(|&&b| pred(b)).count();
        let (taken, rest) = self.rest.split_at_checked(n).unwrap_or((self.rest, &[]));
        self.rest = rest;
        taken
    }

    /// A byte-sequence item with parameters; returns the decoded, non-empty bytes.
    fn item(&mut self) -> Result<Vec<u8>, ClientCertError> {
        let content = self.byte_sequence()?;
        if content.is_empty() {
            return Err(ClientCertError::Empty);
        }
        let der = LENIENT.decode(content).map_err(|_| ClientCertError::InvalidBase64)?;
        if der.is_empty() {
            return Err(ClientCertError::Empty);
        }
        self.parameters()?;
        Ok(der)
    }

    /// `:` base64 `:`; returns the base64 text, checked against the alphabet.
    fn byte_sequence(&mut self) -> Result<&'a [u8], ClientCertError> {
        if self.next() != Some(b':') {
            return Err(ClientCertError::NotByteSequence);
        }
        let content = self.take_while(|b| b != b':');
        if self.next() != Some(b':') {
            return Err(ClientCertError::MissingClosingColon);
        }
        if !content.iter().all(|&b| is_base64_char(b)) {
            return Err(ClientCertError::InvalidBase64);
        }
        Ok(content)
    }

    /// RFC 8941 parameters: `*( ";" *SP key [ "=" bare-item ] )`, checked and discarded.
    fn parameters(&mut self) -> Result<(), ClientCertError> {
        while self.peek() == Some(b';') {
            self.next();
            self.skip(|b| b == b' ');
            match self.peek() {
                Some(b) if b.is_ascii_lowercase() || b == b'*' => {}
                _ => return Err(ClientCertError::InvalidParameter),
            }
            self.take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*'));
            if self.peek() == Some(b'=') {
                self.next();
                self.bare_item()?;
            }
        }
        Ok(())
    }

    fn bare_item(&mut self) -> Result<(), ClientCertError> {
        let bad = ClientCertError::InvalidParameter;
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {
                if self.peek() == Some(b'-') {
                    self.next();
                }
                let int = self.take_while(|b| b.is_ascii_digit()).len();
                if self.peek() == Some(b'.') {
                    self.next();
                    let frac = self.take_while(|b| b.is_ascii_digit()).len();
                    if !(1..=12).contains(&int) || !(1..=3).contains(&frac) {
                        return Err(bad);
                    }
                } else if !(1..=15).contains(&int) {
                    return Err(bad);
                }
            }
            Some(b'"') => {
                self.next();
                loop {
                    match self.next() {
                        Some(b'"') => break,
                        Some(b'\\') => {
                            if !matches!(self.next(), Some(b'"' | b'\\')) {
                                return Err(bad);
                            }
                        }
                        Some(0x20..=0x7e) => {}
                        _ => return Err(bad),
                    }
                }
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'*' => {
                self.take_while(|b| is_tchar(b) || b == b':' || b == b'/');
            }
            Some(b':') => {
                self.byte_sequence().map_err(|_| bad)?;
            }
            Some(b'?') => {
                self.next();
                if !matches!(self.next(), Some(b'0' | b'1')) {
                    return Err(bad);
                }
            }
            _ => return Err(bad),
        }
        Ok(())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DER: &[u8] = b"\x30\x82\x01\x0a\x02\x82\x01\x01\x00\xff";

    #[test]
    fn encode_then_parse_round_trips() {
        let v = encode(DER);
        assert_eq!(v, ":MIIBCgKCAQEA/w==:");
        assert_eq!(parse_client_cert(v.as_bytes()).unwrap(), DER);
    }

    #[test]
    fn surrounding_spaces_are_trimmed() {
        assert_eq!(parse_client_cert(b"  :MIIBCgKCAQEA/w==:  ").unwrap(), DER);
    }

    #[test]
    fn missing_padding_is_accepted() {
        assert_eq!(parse_client_cert(b":MIIBCgKCAQEA/w:").unwrap(), DER);
    }

    #[test]
    fn parameters_are_ignored() {
        let v = b":MIIBCgKCAQEA/w==:;a=1;b-c=\"x;,\\\"y\";d;e=?0;f=tok/en:x;g=:AA==:;h=-1.5";
        assert_eq!(parse_client_cert(v).unwrap(), DER);
    }

    #[test]
    fn malformed_parameter_is_an_error() {
        assert_eq!(parse_client_cert(b":MIIBCgKCAQEA/w==:;A=1"), Err(ClientCertError::InvalidParameter));
        assert_eq!(parse_client_cert(b":MIIBCgKCAQEA/w==:;a=\"open"), Err(ClientCertError::InvalidParameter));
        assert_eq!(parse_client_cert(b":MIIBCgKCAQEA/w==:;a="), Err(ClientCertError::InvalidParameter));
    }

    #[test]
    fn character_outside_base64_alphabet_is_an_error() {
        assert_eq!(parse_client_cert(b":MIIB-gKCAQEA/w==:"), Err(ClientCertError::InvalidBase64));
        assert_eq!(parse_client_cert(b":MIIB CgKCAQEA/w==:"), Err(ClientCertError::InvalidBase64));
        assert_eq!(parse_client_cert(b":M=II:"), Err(ClientCertError::InvalidBase64));
    }

    #[test]
    fn missing_closing_colon_is_an_error() {
        assert_eq!(parse_client_cert(b":MIIBCgKCAQEA/w=="), Err(ClientCertError::MissingClosingColon));
    }

    #[test]
    fn value_that_is_not_a_byte_sequence_is_an_error() {
        assert_eq!(parse_client_cert(b"MIIBCgKCAQEA/w=="), Err(ClientCertError::NotByteSequence));
        assert_eq!(parse_client_cert(b""), Err(ClientCertError::NotByteSequence));
        assert_eq!(parse_client_cert(b"(:AA==:)"), Err(ClientCertError::NotByteSequence));
    }

    #[test]
    fn empty_byte_sequence_is_an_error() {
        assert_eq!(parse_client_cert(b"::"), Err(ClientCertError::Empty));
    }

    #[test]
    fn trailing_characters_are_an_error() {
        assert_eq!(parse_client_cert(b":MIIBCgKCAQEA/w==:x"), Err(ClientCertError::TrailingCharacters));
        assert_eq!(parse_client_cert(b":AA==:, :AQ==:"), Err(ClientCertError::TrailingCharacters));
    }

    #[test]
    fn chain_of_two_is_returned_in_order() {
        let chain = parse_client_cert_chain(b":AA==: ,\t:AQ==:;p=1").unwrap();
        assert_eq!(chain, vec![vec![0x00], vec![0x01]]);
    }

    #[test]
    fn empty_chain_field_is_an_empty_list() {
        assert_eq!(parse_client_cert_chain(b"  ").unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn empty_member_in_chain_is_an_error() {
        assert_eq!(parse_client_cert_chain(b":AA==:,,:AQ==:"), Err(ClientCertError::EmptyListMember));
        assert_eq!(parse_client_cert_chain(b":AA==:, "), Err(ClientCertError::EmptyListMember));
        assert_eq!(parse_client_cert_chain(b", :AA==:"), Err(ClientCertError::EmptyListMember));
    }

    #[test]
    fn empty_byte_sequence_in_chain_is_an_error() {
        assert_eq!(parse_client_cert_chain(b":AA==:, ::"), Err(ClientCertError::Empty));
    }

    #[test]
    fn chain_member_that_is_not_a_byte_sequence_is_an_error() {
        assert_eq!(parse_client_cert_chain(b":AA==:, token"), Err(ClientCertError::NotByteSequence));
    }
}
