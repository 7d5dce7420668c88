//! Hexadecimal digits, as RFC 4514 `\XX` escapes, percent-encoding and PEM-encoded values spell bytes.

/// The value of one hex digit, either case.
pub fn digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0')));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_read_in_either_case_and_nothing_else_is_a_digit() {
        assert_eq!((digit(b'0'), digit(b'9'), digit(b'a'), digit(b'F')), (Some(0), Some(9), Some(10), Some(15)));
        assert_eq!((digit(b'g'), digit(b'/'), digit(b' ')), (None, None, None));
    }
}
