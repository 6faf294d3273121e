//! A YAML mapping read in file order with the position of every key, so a
//! finding about an entry points at the line that declares it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// Where something is in the spec (1-based; 0 when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
}

impl Pos {
    pub(crate) fn of<T>(spanned: &Spanned<T>) -> Self {
        Pos {
            line: spanned.referenced.line() as usize,
            column: spanned.referenced.column() as usize,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// A string and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The text.
    pub text: String,
    /// Where.
    pub at: Pos,
}

impl Located {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Located {
            text: text.into(),
            at: Pos::default(),
        }
    }
}

impl From<Spanned<String>> for Located {
    fn from(spanned: Spanned<String>) -> Self {
        Located {
            at: Pos::of(&spanned),
            text: spanned.value,
        }
    }
}

/// The entries of a mapping, in file order, each key with its position.
/// A `null` (an empty `users:`) is an empty mapping.
#[derive(Debug)]
pub(crate) struct Entries<T>(pub Vec<(Located, T)>);

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<T> {
            type Value = Entries<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to entries")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<T>()?;
                    entries.push((Located::from(key), value));
                }
                Ok(Entries(entries))
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Entries(Vec::new()))
            }

            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Entries(Vec::new()))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}
