//! A request's header map as proxy-wasm serializes it, read in place: one copy from the proxy, no copy per header.
//!
//! The layout (proxy-wasm ABI): a little-endian u32 count, then a (name length, value length) pair of u32 per
//! header, then each name and each value in order, each followed by a NUL byte. A map that does not follow
//! it is kept but marked, so the caller can fail safe (e.g. strip every header it would strip if present).

/// The serialized map. The empty map is the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    bytes: Vec<u8>,
    /// Where each header's name and value are in `bytes`; empty for a malformed map.
    spans: Vec<(usize, usize, usize, usize)>,
    malformed: bool,
}

impl Headers {
    /// The map the proxy returned (an empty buffer is the empty map).
    pub fn from_serialized(bytes: Vec<u8>) -> Headers {
        match spans(&bytes) {
            Some(spans) => Headers { bytes, spans, malformed: false },
            None => Headers { bytes, spans: Vec::new(), malformed: true },
        }
    }

    /// Serializes `pairs` as the proxy would (for fakes and tests).
    pub fn from_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Headers {
        Headers::from_serialized(serialize(pairs))
    }

    /// Whether the proxy's buffer did not follow the layout (no header can then be read).
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    /// Every header in order, repeated names as separate entries.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|&(n, nl, v, vl)| {
            let name = self.bytes.get(n..n.saturating_add(nl)).unwrap_or_default();
            let value = self.bytes.get(v..v.saturating_add(vl)).unwrap_or_default();
            (name, value)
        })
    }

    /// The first value of `name` (compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }
}

/// `pairs` in the proxy-wasm layout (as the proxy serializes a map, and as a local reply's headers are passed).
pub fn serialize<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    bytes.extend_from_slice(&len(pairs.len()));
    for (n, v) in pairs {
        bytes.extend_from_slice(&len(n.as_ref().len()));
        bytes.extend_from_slice(&len(v.as_ref().len()));
    }
    for (n, v) in pairs {
        for part in [n.as_ref(), v.as_ref()] {
            bytes.extend_from_slice(part);
            bytes.push(0);
        }
    }
    bytes
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

/// Where each name and value is, or `None` if the buffer does not follow the layout exactly.
fn spans(bytes: &[u8]) -> Option<Vec<(usize, usize, usize, usize)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = u32_at(bytes, 0)?;
    let mut at = count.checked_mul(8)?.checked_add(4)?;
    if at > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let sizes = i.checked_mul(8)?.checked_add(4)?;
        let (name_len, value_len) = (u32_at(bytes, sizes)?, u32_at(bytes, sizes.checked_add(4)?)?);
        let name = at;
        let value = name.checked_add(name_len)?.checked_add(1)?;
        at = value.checked_add(value_len)?.checked_add(1)?;
        let nul_after = |start: usize, len: usize| start.checked_add(len).and_then(|end| bytes.get(end)) == Some(&0);
        if !nul_after(name, name_len) || !nul_after(value, value_len) {
            return None;
        }
        out.push((name, name_len, value, value_len));
    }
    (at == bytes.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Headers {
        Headers::from_pairs(&[
            (":method", "POST"),
            (":path", "/token"),
            ("X-Dup", "one"),
            ("x-dup", "two"),
            ("empty", ""),
        ])
    }

    #[test]
    fn headers_are_read_in_order_with_repeated_names_kept() {
        let m = map();
        let all: Vec<(&[u8], &[u8])> = m.iter().collect();
        assert_eq!(all.len(), 5);
        assert_eq!(all[1], (b":path".as_slice(), b"/token".as_slice()));
        assert_eq!(m.all("x-dup").collect::<Vec<_>>(), vec![b"one".as_slice(), b"two".as_slice()]);
    }

    #[test]
    fn names_are_compared_case_insensitively_and_get_is_the_first_value() {
        assert_eq!(map().get("X-DUP"), Some(b"one".as_slice()));
        assert_eq!(map().get("empty"), Some(b"".as_slice()));
        assert_eq!(map().get("absent"), None);
    }

    #[test]
    fn an_empty_buffer_is_the_empty_map() {
        let m = Headers::from_serialized(Vec::new());
        assert!(!m.is_malformed());
        assert_eq!(m.iter().count(), 0);
    }

    #[test]
    fn a_buffer_that_breaks_the_layout_is_malformed_and_shows_no_header() {
        let good = map().bytes;
        let cases: Vec<Vec<u8>> = vec![
            good[..good.len() - 1].to_vec(),  // truncated
            [good.clone(), vec![0]].concat(), // trailing byte
            {
                let mut b = good.clone();
                b[0] = 200;
                b
            }, // count too large
            {
                let mut b = good.clone();
                b[4] = 9;
                b
            }, // a name length past its NUL
            {
                let mut b = good.clone();
                let n = b.len();
                b[n - 1] = b'x';
                b
            }, // value not NUL-terminated
            vec![1, 0, 0],                    // shorter than the count
            vec![0xff, 0xff, 0xff, 0xff],     // a count whose table overflows
        ];
        for bytes in cases {
            let m = Headers::from_serialized(bytes.clone());
            assert!(m.is_malformed(), "{bytes:?}");
            assert_eq!(m.get(":method"), None);
        }
    }

    #[test]
    fn from_pairs_writes_what_the_proxy_writes() {
        // count 1, name length 2, value length 1, "ab\0c\0"
        let m = Headers::from_pairs(&[("ab", "c")]);
        assert_eq!(m.bytes, vec![1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, b'a', b'b', 0, b'c', 0]);
    }
}
