//! PEM certificates as proxies and users send them (plain or URL-encoded), decoded to DER.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;

/// Why a PEM input could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    /// The input holds no `-----BEGIN CERTIFICATE-----` block.
    NoCertificate,
    /// A `-----BEGIN ...-----` line has no matching `-----END ...-----` line.
    UnterminatedBlock,
    /// A `-----BEGIN` or `-----END` line is not of the form `-----BEGIN <label>-----`.
    MalformedBoundary,
    /// A block ends with an `-----END` line whose label differs from its `-----BEGIN` line.
    MismatchedEnd,
    /// The body of a certificate block is not standard padded base64.
    InvalidBase64,
    /// A certificate block has an empty body.
    EmptyCertificate,
    /// A URL-encoded input has a `%` not followed by two hex digits.
    InvalidPercentEncoding,
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            PemError::NoCertificate => "no PEM CERTIFICATE block found",
            PemError::UnterminatedBlock => "PEM block has no matching END line",
            PemError::MalformedBoundary => "malformed PEM BEGIN or END line",
            PemError::MismatchedEnd => "PEM END line label does not match its BEGIN line",
            PemError::InvalidBase64 => "PEM certificate body is not valid base64",
            PemError::EmptyCertificate => "PEM certificate block is empty",
            PemError::InvalidPercentEncoding => "URL-encoded PEM has a '%' not followed by two hex digits",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for PemError {}

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";
const CERTIFICATE: &[u8] = b"CERTIFICATE";

/// Decodes every `CERTIFICATE` block of `input`, in order, to DER.
///
/// Blocks of other types are skipped (but must still be well formed); text between blocks is
/// ignored. If `input` does not contain `-----BEGIN ` (with its space, which URL encoding turns
/// into `%20`) but contains `%`, it is percent-decoded first (`%XX` only, `+` is kept).
pub fn decode_certificates(input: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    decode_blocks(input, CERTIFICATE)
}

/// Decodes every block labelled `wanted` (e.g. `X509 CRL`) of `input`, in order, to DER; as
/// [`decode_certificates`] does for certificates (none is `NoCertificate`).
pub fn decode_blocks(input: &[u8], wanted: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    let decoded;
    // A literal "-----BEGIN " (with its space) marks plain PEM. URL-encoded PEM still contains
    // "-----BEGIN" because '-' is unreserved, but its space is encoded as "%20".
    let text: &[u8] = if find(input, BEGIN, 0).is_none() && input.contains(&b'%') {
        decoded = percent_decode(input).ok_or(PemError::InvalidPercentEncoding)?;
        &decoded
    } else {
        input
    };

    let mut certificates = Vec::new();
    let mut pos = 0;
    while let Some(begin) = find(text, BEGIN, pos) {
        let label_start = begin.saturating_add(BEGIN.len());
        let (label, body_start) = read_label(text, label_start)?;
        let end = find(text, END, body_start).ok_or(PemError::UnterminatedBlock)?;
        let end_label_start = end.saturating_add(END.len());
        let (end_label, after) = read_label(text, end_label_start)?;
        if end_label != label {
            return Err(PemError::MismatchedEnd);
        }
        if label == wanted {
            let body = text.get(body_start..end).ok_or(PemError::UnterminatedBlock)?;
            certificates.push(decode_body(body)?);
        }
        pos = after;
    }

    if certificates.is_empty() {
        Err(PemError::NoCertificate)
    } else {
        Ok(certificates)
    }
}

/// Decodes the first `CERTIFICATE` block of `input` to DER (the whole input must still be valid).
pub fn decode_leaf(input: &[u8]) -> Result<Vec<u8>, PemError> {
    decode_certificates(input)?.into_iter().next().ok_or(PemError::NoCertificate)
}

/// Encodes `der` as one PEM `CERTIFICATE` block: 64-character lines, trailing `\n`.
pub fn encode(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.extend(line.iter().map(|&b| char::from(b)));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Percent-decodes `%XX` escapes; every other byte (including `+`) is kept. `None` if a `%` is
/// not followed by two hex digits.
pub(crate) fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter();
    while let Some(&b) = bytes.next() {
        if b == b'%' {
            let hi = crate::hex::digit(*bytes.next()?)?;
            let lo = crate::hex::digit(*bytes.next()?)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// Reads `<label>-----` starting at `start`; returns the label and the position after the dashes.
fn read_label(text: &[u8], start: usize) -> Result<(&[u8], usize), PemError> {
    let rest = text.get(start..).ok_or(PemError::MalformedBoundary)?;
    let len = rest.iter().position(|&b| !(b.is_ascii_alphanumeric() || b == b' ' || b == b'-')).unwrap_or(rest.len());
    let candidate = rest.get(..len).ok_or(PemError::MalformedBoundary)?;
    // The label runs up to the first "-----" (labels never contain five dashes).
    let label_len = find(candidate, DASHES, 0).ok_or(PemError::MalformedBoundary)?;
    let label = candidate.get(..label_len).ok_or(PemError::MalformedBoundary)?;
    if label.is_empty() {
        return Err(PemError::MalformedBoundary);
    }
    Ok((label, start.saturating_add(label_len).saturating_add(DASHES.len())))
}

fn decode_body(body: &[u8]) -> Result<Vec<u8>, PemError> {
    let compact: Vec<u8> = body.iter().copied().filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')).collect();
    if compact.is_empty() {
        return Err(PemError::EmptyCertificate);
    }
    STANDARD.decode(&compact).map_err(|_| PemError::InvalidBase64)
}

/// Position of the first occurrence of `needle` in `haystack` at or after `from`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let rest = haystack.get(from..)?;
    rest.windows(needle.len()).position(|w| w == needle).map(|p| p.saturating_add(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Not a real certificate: the parser only cares about base64, so any bytes do.
    const DER: &[u8] = b"\x30\x82\x01\x0a-not-really-der-but-bytes-long-enough-to-span-two-pem-lines-of-output";

    fn plain() -> String {
        encode(DER)
    }

    #[test]
    fn plain_pem_decodes_to_der() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIBCg==\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_leaf(pem.as_bytes()).unwrap(), vec![0x30, 0x82, 0x01, 0x0a]);
    }

    #[test]
    fn url_encoded_pem_is_percent_decoded_first() {
        let enc = "-----BEGIN%20CERTIFICATE-----%0AMIIBCg%3D%3D%0A-----END%20CERTIFICATE-----%0A";
        assert_eq!(decode_leaf(enc.as_bytes()).unwrap(), vec![0x30, 0x82, 0x01, 0x0a]);
    }

    #[test]
    fn url_encoded_pem_keeps_plus_as_base64_plus() {
        // "+/8=" is 0xfb 0xff; a form decoder would turn '+' into a space.
        let enc = "-----BEGIN%20CERTIFICATE-----%0A+/8%3D%0A-----END%20CERTIFICATE-----%0A";
        assert_eq!(decode_leaf(enc.as_bytes()).unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn invalid_percent_escape_is_an_error() {
        assert_eq!(decode_leaf(b"-----BEGIN%20CERTIFICATE-----%zz"), Err(PemError::InvalidPercentEncoding));
        assert_eq!(decode_leaf(b"abc%4"), Err(PemError::InvalidPercentEncoding));
    }

    #[test]
    fn crlf_line_ends_and_inner_whitespace_are_ignored() {
        let pem = plain().replace('\n', "\r\n");
        assert_eq!(decode_leaf(pem.as_bytes()).unwrap(), DER);
        let spaced = "-----BEGIN CERTIFICATE-----\r\n MII\tB Cg= =\r\n-----END CERTIFICATE-----";
        assert_eq!(decode_leaf(spaced.as_bytes()).unwrap(), vec![0x30, 0x82, 0x01, 0x0a]);
    }

    #[test]
    fn two_blocks_are_returned_in_order() {
        let first = encode(b"first");
        let second = encode(b"second");
        let both = format!("subject=leaf\n{first}issuer text\n{second}");
        let certs = decode_certificates(both.as_bytes()).unwrap();
        assert_eq!(certs, vec![b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(decode_leaf(both.as_bytes()).unwrap(), b"first");
    }

    #[test]
    fn missing_end_line_is_unterminated() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIBCg==\n";
        assert_eq!(decode_leaf(pem.as_bytes()), Err(PemError::UnterminatedBlock));
    }

    #[test]
    fn end_label_must_match_begin_label() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIBCg==\n-----END PRIVATE KEY-----\n";
        assert_eq!(decode_leaf(pem.as_bytes()), Err(PemError::MismatchedEnd));
    }

    #[test]
    fn malformed_begin_line_is_an_error() {
        let pem = "-----BEGIN CERTIFICATE\nMIIBCg==\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_leaf(pem.as_bytes()), Err(PemError::MalformedBoundary));
    }

    #[test]
    fn bad_base64_is_an_error() {
        let pem = "-----BEGIN CERTIFICATE-----\nMII*Cg==\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_leaf(pem.as_bytes()), Err(PemError::InvalidBase64));
        let unpadded = "-----BEGIN CERTIFICATE-----\nMIIBCg\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_leaf(unpadded.as_bytes()), Err(PemError::InvalidBase64));
    }

    #[test]
    fn empty_certificate_body_is_an_error() {
        let pem = "-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_leaf(pem.as_bytes()), Err(PemError::EmptyCertificate));
    }

    #[test]
    fn private_key_block_is_skipped() {
        let pem = format!("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n{}", plain());
        assert_eq!(decode_certificates(pem.as_bytes()).unwrap(), vec![DER.to_vec()]);
        let only_key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        assert_eq!(decode_certificates(only_key.as_bytes()), Err(PemError::NoCertificate));
    }

    #[test]
    fn empty_input_has_no_certificate() {
        assert_eq!(decode_certificates(b""), Err(PemError::NoCertificate));
        assert_eq!(decode_leaf(b"just some text"), Err(PemError::NoCertificate));
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let pem = plain();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(pem.lines().nth(1).unwrap().len(), 64);
        assert_eq!(decode_leaf(pem.as_bytes()).unwrap(), DER);
    }
}
