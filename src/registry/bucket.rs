//! The shared-data layout of a registry bucket: versioned, indexed by client id, one registration read alone.
//!
//! ```text
//! "OMB" LAYOUT | count: u32 LE | count x (id_end: u32 LE, entry_end: u32 LE) | data
//! ```
//! Record `i` describes `data[start..id_end]` (the client id) and `data[id_end..entry_end]` (its
//! registration), where `start` is the previous record's `entry_end` (0 for the first). Records are sorted
//! by client id (bytewise), so a lookup is a binary search. A bucket without clients is the empty value.

use std::fmt;

/// The layout this build writes and reads. A bucket of any other layout is never interpreted.
pub const LAYOUT: u8 = 2;
const MAGIC: &[u8; 3] = b"OMB";
const HEADER: usize = 8;
const RECORD: usize = 8;

/// Why a bucket cannot be read (the lookup fails safe: the registry counts as unavailable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketError {
    /// Not a bucket of this filter's binary layout (e.g. the JSON buckets of older versions).
    Unrecognized,
    /// A bucket of another layout version.
    Layout(u8),
    /// The index does not fit the data.
    Corrupt,
}

impl fmt::Display for BucketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BucketError::Unrecognized => {
                write!(f, "a registry bucket in shared data is not in a layout this filter knows")
            }
            BucketError::Layout(v) => {
                write!(f, "a registry bucket in shared data has layout version {v}; this filter reads version {LAYOUT}")
            }
            BucketError::Corrupt => {
                write!(f, "a registry bucket in shared data is damaged (its index does not fit its data)")
            }
        }
    }
}

impl std::error::Error for BucketError {}

/// The value of a bucket holding these `(client id, registration)` pairs, which must be sorted by id and
/// unique. No pairs: the empty value.
pub fn encode(entries: &[(&str, &[u8])]) -> Vec<u8> {
    if entries.is_empty() {
        return Vec::new();
    }
    let data_len: usize = entries.iter().map(|(id, entry)| id.len() + entry.len()).sum();
    let mut out = Vec::with_capacity(HEADER + RECORD * entries.len() + data_len);
    out.extend_from_slice(MAGIC);
    out.push(LAYOUT);
    out.extend_from_slice(&offset(entries.len()).to_le_bytes());
    let mut end = 0;
    for (id, entry) in entries {
        end += id.len();
        out.extend_from_slice(&offset(end).to_le_bytes());
        end += entry.len();
        out.extend_from_slice(&offset(end).to_le_bytes());
    }
    for (id, entry) in entries {
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(entry);
    }
    out
}

/// Offsets past u32 cannot be written; such a bucket (over 4 GiB, far above `registry.max_bytes`) would
/// read back as damaged.
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A bucket's parts, checked against the header.
struct View<'a> {
    count: usize,
    index: &'a [u8],
    data: &'a [u8],
}

fn view(bytes: &[u8]) -> Result<Option<View<'_>>, BucketError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.get(..3) != Some(MAGIC.as_slice()) {
        return Err(BucketError::Unrecognized);
    }
    match bytes.get(3) {
        Some(&LAYOUT) => {}
        Some(&other) => return Err(BucketError::Layout(other)),
        None => return Err(BucketError::Corrupt),
    }
    let count = read_u32(bytes, 4).ok_or(BucketError::Corrupt)? as usize;
    let index_end = count.checked_mul(RECORD).and_then(|n| n.checked_add(HEADER)).ok_or(BucketError::Corrupt)?;
    let index = bytes.get(HEADER..index_end).ok_or(BucketError::Corrupt)?;
    let data = bytes.get(index_end..).ok_or(BucketError::Corrupt)?;
    Ok(Some(View { count, index, data }))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let four: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(four))
}

impl<'a> View<'a> {
    /// Record `i`: the client id and its registration.
    fn record(&self, i: usize) -> Result<(&'a [u8], &'a [u8]), BucketError> {
        let at = i.checked_mul(RECORD).ok_or(BucketError::Corrupt)?;
        let start = match i.checked_sub(1) {
            None => 0,
            Some(prev) => read_u32(self.index, prev * RECORD + 4).ok_or(BucketError::Corrupt)? as usize,
        };
        let id_end = read_u32(self.index, at).ok_or(BucketError::Corrupt)? as usize;
        let entry_end = read_u32(self.index, at + 4).ok_or(BucketError::Corrupt)? as usize;
        if start > id_end || id_end > entry_end {
            return Err(BucketError::Corrupt);
        }
        let id = self.data.get(start..id_end).ok_or(BucketError::Corrupt)?;
        let entry = self.data.get(id_end..entry_end).ok_or(BucketError::Corrupt)?;
        Ok((id, entry))
    }
}

/// The registration stored for `client_id`, found by binary search; `None` if the bucket does not hold it.
pub fn find<'a>(bytes: &'a [u8], client_id: &str) -> Result<Option<&'a [u8]>, BucketError> {
    let Some(view) = view(bytes)? else { return Ok(None) };
    let wanted = client_id.as_bytes();
    let (mut lo, mut hi) = (0, view.count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (id, entry) = view.record(mid)?;
        match id.cmp(wanted) {
            std::cmp::Ordering::Equal => return Ok(Some(entry)),
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
        }
    }
    Ok(None)
}

/// Every `(client id, registration)` pair of a bucket, in order (tools and tests; lookups use [`find`]).
pub fn entries(bytes: &[u8]) -> Result<Vec<(&str, &[u8])>, BucketError> {
    let Some(view) = view(bytes)? else { return Ok(Vec::new()) };
    (0..view.count)
        .map(|i| {
            let (id, entry) = view.record(i)?;
            Ok((std::str::from_utf8(id).map_err(|_| BucketError::Corrupt)?, entry))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        encode(&[("alpha", b"{1}"), ("beta", b""), ("delta", b"{333}"), ("gamma", b"{4444}")])
    }

    #[test]
    fn each_client_is_found_with_its_own_registration() {
        let b = sample();
        assert_eq!(find(&b, "alpha"), Ok(Some(b"{1}".as_slice())));
        assert_eq!(find(&b, "beta"), Ok(Some(b"".as_slice())));
        assert_eq!(find(&b, "delta"), Ok(Some(b"{333}".as_slice())));
        assert_eq!(find(&b, "gamma"), Ok(Some(b"{4444}".as_slice())));
    }

    #[test]
    fn an_absent_client_is_not_found_before_between_or_after_the_others() {
        let b = sample();
        for id in ["aaa", "alph", "alphaa", "c", "epsilon", "zeta", ""] {
            assert_eq!(find(&b, id), Ok(None), "{id}");
        }
    }

    #[test]
    fn an_empty_bucket_is_the_empty_value_and_holds_nobody() {
        assert_eq!(encode(&[]), Vec::<u8>::new());
        assert_eq!(find(b"", "a"), Ok(None));
        assert_eq!(entries(b""), Ok(vec![]));
    }

    #[test]
    fn entries_lists_every_pair_in_order() {
        let b = sample();
        let ids: Vec<&str> = entries(&b).unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec!["alpha", "beta", "delta", "gamma"]);
    }

    #[test]
    fn a_bucket_of_another_layout_version_is_refused() {
        let mut b = sample();
        b[3] = LAYOUT + 1;
        assert_eq!(find(&b, "alpha"), Err(BucketError::Layout(LAYOUT + 1)));
        assert_eq!(entries(&b), Err(BucketError::Layout(LAYOUT + 1)));
    }

    #[test]
    fn the_json_buckets_of_older_versions_are_not_recognized() {
        let old = br#"[{"i":"alpha","m":"none"}]"#;
        assert_eq!(find(old, "alpha"), Err(BucketError::Unrecognized));
    }

    #[test]
    fn a_damaged_index_is_refused_never_followed() {
        let b = sample();
        // Cut anywhere: the header or the index no longer fits.
        for cut in 1..b.len() {
            let r = find(&b[..cut], "gamma");
            assert!(matches!(r, Err(_) | Ok(None)), "cut {cut}: {r:?}");
        }
        // An id that ends before it starts.
        let mut bad = b.clone();
        bad[HEADER + RECORD..HEADER + RECORD + 4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(entries(&bad), Err(BucketError::Corrupt));
        // A count far larger than the value.
        let mut huge = b.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find(&huge, "alpha"), Err(BucketError::Corrupt));
    }
}
