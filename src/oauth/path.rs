//! Request paths as the servers behind the filter may route them, for matching endpoints and resources.
//!
//! A path the filter compares must not be one that it reads as "not protected" while the server behind it
//! routes it to a protected handler. Servers differ (Tomcat and Spring drop `;parameters`, some decode
//! `%2F` or take `\` for `/`, most resolve `.` and `..`), so the filter compares the widest reading: a request
//! is matched when any of these servers could route it there. Matching more widely only ever checks more.

/// `path` as compared: no query or fragment; every `%XX` of an unreserved character, `/` or `\` decoded; `\`
/// read as `/`; `;parameters` dropped from each segment; empty and `.` segments dropped; `..` removing the segment
/// before it; ASCII lower case. One string, `/a/b`, or `/a/b/` when the path ended in `/` (or is empty).
pub fn key(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let decoded = decode(path.as_bytes());
    let mut out: Vec<u8> = Vec::with_capacity(decoded.len() + 1);
    // Where each kept segment starts in `out` (its `/`), so that `..` can remove it.
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing = false;
    for raw in decoded.split(|b| *b == b'/') {
        let segment = raw.split(|b| *b == b';').next().unwrap_or(raw);
        trailing = matches!(segment, b"" | b"." | b"..");
        match segment {
            b"" | b"." => {}
            b".." => {
                if let Some(start) = starts.pop() {
                    out.truncate(start);
                }
            }
            _ => {
                starts.push(out.len());
                out.push(b'/');
                out.extend(segment.iter().map(u8::to_ascii_lowercase));
            }
        }
    }
    if trailing || starts.is_empty() {
        out.push(b'/');
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether `raw`, one segment of a path as received (no `/`), is exactly one segment in [`key`]'s reading: not
/// empty or a dot segment once decoded (`;parameters` aside), and holding no `/` or `\\`, raw or encoded. The
/// same answer as counting the segments of `key("/" + raw)`, without building it.
pub fn is_one_segment(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let (mut i, mut kept, mut dots_only, mut in_params) = (0, 0usize, true, false);
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => crate::hex::digit(h).zip(crate::hex::digit(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        let (c, step) = match escaped {
            Some(c) if c.is_ascii_alphanumeric() || b"-._~/\\".contains(&c) => (c, 3),
            _ => (b, 1),
        };
        if c == b'/' || c == b'\\' {
            return false;
        }
        in_params |= c == b';';
        if !in_params {
            kept += 1;
            dots_only &= c == b'.';
        }
        i += step;
    }
    !(kept == 0 || dots_only && kept <= 2)
}

/// Decodes `%XX` where XX is an unreserved character (RFC 3986 §2.3), `/` or `\`; reads `\` as `/`.
fn decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => crate::hex::digit(h).zip(crate::hex::digit(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(c) if c.is_ascii_alphanumeric() || b"-._~/\\".contains(&c) => {
                out.push(if c == b'\\' { b'/' } else { c });
                i += 3;
            }
            _ => {
                out.push(if b == b'\\' { b'/' } else { b });
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_fragment_are_not_part_of_the_path() {
        assert_eq!(key("/api/accounts?x=/y#z"), "/api/accounts");
    }

    #[test]
    fn path_parameters_are_dropped_from_every_segment() {
        assert_eq!(key("/api;v=1/accounts;jsessionid=2"), "/api/accounts");
    }

    #[test]
    fn letters_are_compared_in_lower_case() {
        assert_eq!(key("/API/Accounts"), "/api/accounts");
    }

    #[test]
    fn escaped_unreserved_characters_and_slashes_are_decoded() {
        assert_eq!(key("/%61pi%2Faccounts"), "/api/accounts");
        assert_eq!(key("/api%5caccounts"), "/api/accounts");
        assert_eq!(key("/api%3Baccounts"), "/api%3baccounts", "an escaped ; is data, not a parameter");
    }

    #[test]
    fn a_backslash_is_read_as_a_slash() {
        assert_eq!(key("/api\\accounts"), "/api/accounts");
    }

    #[test]
    fn empty_and_dot_segments_are_removed_and_dot_dot_climbs() {
        assert_eq!(key("//api/./x/../accounts"), "/api/accounts");
        assert_eq!(key("/x/%2e%2e/api/accounts"), "/api/accounts");
        assert_eq!(key("/../../api"), "/api");
    }

    #[test]
    fn a_trailing_slash_is_kept() {
        assert_eq!(key("/api/"), "/api/");
        assert_eq!(key("/api/."), "/api/");
        assert_eq!(key("/"), "/");
        assert_eq!(key(""), "/");
    }

    #[test]
    fn a_percent_sign_without_two_hex_digits_is_kept() {
        assert_eq!(key("/a%zz/%4"), "/a%zz/%4");
    }
}
