//! Ids as records carry them, and fast id → index lookups.
//!
//! A cluster's records hold millions of GUID references. GUIDs in canonical
//! form (36 characters, lower-case hex, hyphens at 8, 13, 18 and 23) are
//! packed into a `u128` as soon as they are read, while their bytes are
//! still in cache; lookups then hash and compare 16 bytes in place instead
//! of re-reading strings. Any other id (upper case, braces, custom ids)
//! stays text, so comparisons remain exact: a packed id prints back to the
//! very string it was read from. (With ids kept as strings, the benchmark's
//! generate took 1.14× as long; examples/bench.rs.)

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

type Fast = foldhash::fast::RandomState;

/// An id of a user or group, or a reference to one. Make them with
/// [`Id::new`], which packs every canonical GUID, so equal ids are equal
/// values; they order as their text does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Id<'a> {
    /// A canonical lower-case GUID, packed.
    Guid(u128),
    /// Any other id, verbatim.
    Text(Cow<'a, str>),
}

impl<'a> Id<'a> {
    /// Reads an id, packing it when it is a canonical GUID.
    pub fn new(text: Cow<'a, str>) -> Self {
        match pack(&text) {
            Some(guid) => Id::Guid(guid),
            None => Id::Text(text),
        }
    }

    /// True for the empty id.
    pub fn is_empty(&self) -> bool {
        matches!(self, Id::Text(t) if t.trim().is_empty())
    }
}

impl Ord for Id<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            // Fixed-width lower-case hex sorts like the number it spells.
            (Id::Guid(a), Id::Guid(b)) => a.cmp(b),
            (Id::Text(a), Id::Text(b)) => a.cmp(b),
            _ => self.to_string().cmp(&other.to_string()),
        }
    }
}

impl PartialOrd for Id<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl From<&'static str> for Id<'static> {
    fn from(text: &'static str) -> Self {
        Id::new(Cow::Borrowed(text))
    }
}

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Guid(guid) => {
                let hex = format!("{guid:032x}");
                write!(
                    f,
                    "{}-{}-{}-{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                )
            }
            Id::Text(text) => f.write_str(text),
        }
    }
}

/// Maps ids to indices.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    guids: HashMap<u128, u32, Fast>,
    others: HashMap<Box<str>, u32, Fast>,
}

impl IdIndex {
    /// Adds `id` → `ix` unless present; returns the index already there.
    pub(crate) fn insert(&mut self, id: &Id<'_>, ix: u32) -> Option<u32> {
        use std::collections::hash_map::Entry;
        match id {
            Id::Guid(key) => match self.guids.entry(*key) {
                Entry::Occupied(e) => Some(*e.get()),
                Entry::Vacant(e) => {
                    e.insert(ix);
                    None
                }
            },
            Id::Text(text) => match self.others.entry(text.as_ref().into()) {
                Entry::Occupied(e) => Some(*e.get()),
                Entry::Vacant(e) => {
                    e.insert(ix);
                    None
                }
            },
        }
    }

    /// The index of `id`.
    pub(crate) fn get(&self, id: &Id<'_>) -> Option<u32> {
        match id {
            Id::Guid(key) => self.guids.get(key).copied(),
            Id::Text(text) => self.others.get(text.as_ref()).copied(),
        }
    }
}

/// Value of each lower-case hex digit; 0xFF for every other byte.
const HEX: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// A canonical lower-case GUID as 128 bits; `None` for anything else.
/// Millions of references go through here, so it decodes without branches
/// per digit and checks validity once at the end.
fn pack(id: &str) -> Option<u128> {
    let b = id.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let mut invalid = 0u8;
    let mut half = |digits: [usize; 16]| {
        let mut value = 0u64;
        for i in digits {
            let nibble = HEX[usize::from(b[i])];
            invalid |= nibble;
            value = (value << 4) | u64::from(nibble & 0x0F);
        }
        value
    };
    let high = half([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17]);
    let low = half([
        19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
    ]);
    (invalid & 0xF0 == 0).then_some((u128::from(high) << 64) | u128::from(low))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_pack_and_print_back_exactly() {
        let text = "c7a2ea20-b2f1-4c94-ae05-319acb5c7427";
        let id = Id::from(text);
        assert!(matches!(id, Id::Guid(_)));
        assert_eq!(id.to_string(), text);
        for other in [
            "C7A2EA20-B2F1-4C94-AE05-319ACB5C7427",
            "{c7a2ea20-b2f1-4c94-ae05-319acb5c7427}",
            "x",
            "",
        ] {
            let id = Id::from(other);
            assert!(matches!(id, Id::Text(_)), "{other}");
            assert_eq!(id.to_string(), other);
        }
        assert_eq!(
            Id::from("00000000-0000-0000-0000-000000000000").to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn every_malformed_guid_stays_text() {
        let good = "c7a2ea20-b2f1-4c94-ae05-319acb5c7427";
        for i in 0..good.len() {
            for replacement in ['g', 'G', 'A', '-', ' ', '/', ':', '`', '{'] {
                let mut bad: Vec<char> = good.chars().collect();
                if bad[i] == replacement {
                    continue;
                }
                bad[i] = replacement;
                let bad: String = bad.into_iter().collect();
                assert!(matches!(Id::new(bad.clone().into()), Id::Text(_)), "{bad}");
            }
        }
    }

    #[test]
    fn ids_order_as_their_text() {
        let mut ids: Vec<Id> = [
            "b",
            "10000000-0000-0000-0000-000000000000",
            "0",
            "ffffffff-0000-0000-0000-000000000000",
            "z",
        ]
        .into_iter()
        .map(Id::from)
        .collect();
        let mut texts: Vec<String> = ids.iter().map(Id::to_string).collect();
        ids.sort();
        texts.sort();
        assert_eq!(ids.iter().map(Id::to_string).collect::<Vec<_>>(), texts);
    }

    #[test]
    fn guids_and_other_ids_are_found_exactly() {
        let mut index = IdIndex::default();
        let guid = Id::from("c7a2ea20-b2f1-4c94-ae05-319acb5c7427");
        let upper = Id::from("C7A2EA20-B2F1-4C94-AE05-319ACB5C7427");
        assert_eq!(index.insert(&guid, 0), None);
        assert_eq!(index.insert(&upper, 1), None, "case differs: another id");
        assert_eq!(index.insert(&Id::from("not-a-guid"), 2), None);
        assert_eq!(index.insert(&guid, 9), Some(0));
        assert_eq!(index.get(&guid), Some(0));
        assert_eq!(index.get(&upper), Some(1));
        assert_eq!(index.get(&Id::from("not-a-guid")), Some(2));
        assert_eq!(
            index.get(&Id::from("c7a2ea20-b2f1-4c94-ae05-319acb5c7428")),
            None
        );
    }
}
