//! The JSON shapes ts-principals reads, borrowed from the input buffer.
//!
//! One [`WireRecord`] reads a user, group or org in any of the accepted
//! dialects (canonical snapshot, REST v2, REST v1): the field sets barely
//! overlap, so a single pass can parse a file before knowing its dialect, and
//! the dialect is decided afterwards from what was present. Strings borrow
//! from the file whenever they hold no escapes, which keeps parsing close to
//! the cost of scanning the bytes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A string that borrows from the input when it can. (Serde's own
/// `Cow<str>` only borrows for fields marked `#[serde(borrow)]`, not inside
/// `Vec` or `Option`.)
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// An id: GUIDs are strings, org ids are integers, and ThoughtSpot writes
/// org ids as strings in some places (`groups/search` → `orgs[].id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WireId<'a> {
    Int(i64),
    Str(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for WireId<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for IdVisitor<'a> {
            type Value = WireId<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or integer id")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(WireId::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(WireId::Int)
                    .map_err(|_| E::custom(format!("id {v} is too large")))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(WireId::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WireId::Str(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_any(IdVisitor(std::marker::PhantomData))
    }
}

/// Milliseconds since the epoch; accepts integers and integral floats
/// (`1.6e12`), since JSON producers differ, within the years -9999..=9999
/// that a timestamp column can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WireMillis(pub i64);

/// Times outside what a timestamp column can show: the number as read.
fn out_of_range<E: de::Error>(millis: impl fmt::Display) -> E {
    E::custom(format!(
        "time {millis} ms is outside the years -9999 to 9999; times are milliseconds since \
         1970 (is this one in micro- or nanoseconds?)"
    ))
}

impl WireMillis {
    fn checked<E: de::Error>(millis: i64) -> Result<Self, E> {
        match jiff::Timestamp::from_millisecond(millis) {
            Ok(_) => Ok(WireMillis(millis)),
            Err(_) => Err(out_of_range(millis)),
        }
    }
}

impl<'de> Deserialize<'de> for WireMillis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MillisVisitor;
        impl Visitor<'_> for MillisVisitor {
            type Value = WireMillis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("milliseconds since 1970 as an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                WireMillis::checked(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v).map_or_else(|_| Err(out_of_range(v)), WireMillis::checked)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v.fract() != 0.0 {
                    Err(E::custom(format!(
                        "time {v} is not a whole number of milliseconds"
                    )))
                } else if v.abs() >= 9.0e15 {
                    // Far outside the range; converting would saturate and misreport it.
                    Err(out_of_range(v))
                } else {
                    WireMillis::checked(v as i64)
                }
            }
        }
        deserializer.deserialize_any(MillisVisitor)
    }
}

/// A reference to another object: `{"id": …, "name": …}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(
    default,
    expecting = "a reference, an object like {\"id\": …, \"name\": …}"
)]
pub(crate) struct WireRef<'a> {
    #[serde(borrow)]
    pub id: Option<WireId<'a>>,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
}

/// A user, group or org in any accepted dialect. Fields a dialect lacks are
/// `None`; unknown fields are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "a user, group or org record (a JSON object)")]
pub(crate) struct WireRecord<'a> {
    // Shared by every dialect.
    #[serde(borrow)]
    pub id: Option<WireId<'a>>,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow, alias = "displayName")]
    pub display_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub description: Option<Text<'a>>,
    #[serde(borrow)]
    pub visibility: Option<Text<'a>>,
    #[serde(alias = "creation_time_in_millis")]
    pub created: Option<WireMillis>,
    #[serde(alias = "modification_time_in_millis")]
    pub modified: Option<WireMillis>,
    #[serde(borrow)]
    pub privileges: Option<Vec<Text<'a>>>,

    // Users (v2 and canonical; v1 calls e-mail `mail`).
    #[serde(borrow, alias = "mail")]
    pub email: Option<Text<'a>>,
    #[serde(borrow)]
    pub account_type: Option<Text<'a>>,
    #[serde(borrow)]
    pub account_status: Option<Text<'a>>,

    // Groups (v2 and canonical).
    #[serde(borrow, rename = "type")]
    pub group_type: Option<Text<'a>>,

    // v2 references.
    #[serde(borrow)]
    pub orgs: Option<Vec<WireRef<'a>>>,
    #[serde(borrow)]
    pub current_org: Option<WireRef<'a>>,
    #[serde(borrow)]
    pub user_groups: Option<Vec<WireRef<'a>>>,
    #[serde(borrow)]
    pub user_inherited_groups: Option<Vec<WireRef<'a>>>,
    #[serde(borrow)]
    pub sub_groups: Option<Vec<WireRef<'a>>>,
    #[serde(borrow)]
    pub users: Option<Vec<WireRef<'a>>>,

    // Canonical snapshot references.
    pub derived_id: Option<bool>,
    #[serde(borrow)]
    pub org_ids: Option<Vec<WireId<'a>>>,
    #[serde(borrow)]
    pub group_ids: Option<Vec<Text<'a>>>,
    #[serde(borrow)]
    pub parent_group_ids: Option<Vec<Text<'a>>>,

    // v1 `user/list`.
    #[serde(borrow, rename = "principalTypeEnum")]
    pub principal_type: Option<Text<'a>>,
    #[serde(borrow, rename = "groupNames")]
    pub group_names: Option<Vec<Text<'a>>>,
}

/// A record that must be a JSON object. Derived struct deserializers
/// also take an array, field by field in order, so `[["u", "amy"]]` would
/// fail with "expected a string" at some element instead of saying that a
/// record must be an object.
#[derive(Debug)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user, group or org record (a JSON object)")
            }
            fn visit_map<M: de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

/// What a record looks like, judged by the fields it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    V1Principal,
    User,
    Group,
    Org,
}

impl Shape {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Shape::V1Principal => "a v1 user/list principal",
            Shape::User => "a user",
            Shape::Group => "a group",
            Shape::Org => "an org",
        }
    }
}

impl WireRecord<'_> {
    /// The record's shape, or `None` when it carries nothing distinctive.
    pub(crate) fn shape(&self) -> Option<Shape> {
        if self.principal_type.is_some() || self.group_names.is_some() {
            return Some(Shape::V1Principal);
        }
        if matches!(self.id, Some(WireId::Int(_))) {
            return Some(Shape::Org);
        }
        let user = self.account_type.is_some()
            || self.account_status.is_some()
            || self.user_groups.is_some()
            || self.user_inherited_groups.is_some()
            || self.current_org.is_some()
            || self.email.is_some()
            || self.group_ids.is_some();
        let group = self.group_type.is_some()
            || self.sub_groups.is_some()
            || self.users.is_some()
            || self.parent_group_ids.is_some();
        match (user, group) {
            (true, false) => Some(Shape::User),
            (false, true) => Some(Shape::Group),
            _ => None,
        }
    }
}

/// The top level of an object-shaped file: a canonical snapshot or a
/// combined v2 export.
#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "a principals snapshot or REST v2 export object")]
pub(crate) struct WireDocument<'a> {
    pub schema_version: Option<serde_json::Value>,
    #[serde(borrow)]
    pub source: Option<WireSource<'a>>,
    #[serde(borrow)]
    pub orgs: Option<Vec<Object<WireRecord<'a>>>>,
    #[serde(borrow)]
    pub users: Option<Vec<Object<WireRecord<'a>>>>,
    #[serde(borrow)]
    pub groups: Option<Vec<Object<WireRecord<'a>>>>,
}

/// The `source` section of a canonical snapshot.
#[derive(Debug, Default, Deserialize)]
#[serde(
    default,
    expecting = "the snapshot's source, an object like {\"cluster_id\": …}"
)]
pub(crate) struct WireSource<'a> {
    #[serde(borrow)]
    pub cluster_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub cluster_url: Option<Text<'a>>,
    #[serde(borrow)]
    pub release_version: Option<Text<'a>>,
    #[serde(borrow)]
    pub api: Option<Text<'a>>,
    #[serde(borrow)]
    pub fetched_at: Option<Text<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_unless_escaped() {
        let json = r#"{"name": "plain", "display_name": "esc\u00e9", "group_ids": ["a", "b"]}"#;
        let record: WireRecord<'_> = serde_json::from_str(json).unwrap();
        assert!(matches!(record.name.unwrap().0, Cow::Borrowed("plain")));
        assert!(matches!(record.display_name.unwrap().0, Cow::Owned(ref s) if s == "escé"));
        assert!(
            record
                .group_ids
                .unwrap()
                .iter()
                .all(|t| matches!(t.0, Cow::Borrowed(_)))
        );
    }

    #[test]
    fn ids_accept_strings_and_integers() {
        let r: WireRef<'_> = serde_json::from_str(r#"{"id": "0", "name": "Primary"}"#).unwrap();
        assert_eq!(r.id, Some(WireId::Str("0".into())));
        let r: WireRef<'_> = serde_json::from_str(r#"{"id": 1842551919}"#).unwrap();
        assert_eq!(r.id, Some(WireId::Int(1842551919)));
    }

    #[test]
    fn shapes_are_told_apart() {
        let shape = |json: &str| {
            serde_json::from_str::<WireRecord<'_>>(json)
                .unwrap()
                .shape()
        };
        assert_eq!(
            shape(r#"{"id": "x", "account_type": "LOCAL_USER"}"#),
            Some(Shape::User)
        );
        assert_eq!(
            shape(r#"{"id": "x", "sub_groups": []}"#),
            Some(Shape::Group)
        );
        assert_eq!(shape(r#"{"id": 5, "name": "Acme"}"#), Some(Shape::Org));
        assert_eq!(
            shape(r#"{"name": "x", "principalTypeEnum": "LOCAL_USER"}"#),
            Some(Shape::V1Principal)
        );
        assert_eq!(shape(r#"{"id": "x", "name": "y"}"#), None);
    }

    #[test]
    fn millis_accept_integral_floats_only() {
        let m: WireMillis = serde_json::from_str("1.6e12").unwrap();
        assert_eq!(m, WireMillis(1_600_000_000_000));
        assert!(serde_json::from_str::<WireMillis>("1.5").is_err());
        assert!(serde_json::from_str::<WireMillis>("\"soon\"").is_err());
        assert!(serde_json::from_str::<WireMillis>("9223372036854775807").is_err());
    }

    // An out-of-range float used to be reported as "not a whole number of
    // milliseconds", sending people looking for a fraction that is not there.
    #[test]
    fn out_of_range_times_say_so_whatever_their_json_form() {
        let error = |json: &str| {
            serde_json::from_str::<WireMillis>(json)
                .unwrap_err()
                .to_string()
        };
        for json in [
            "1e20",
            "-1e20",
            "1.6e18",
            "1600000000000000000",
            "18446744073709551615",
        ] {
            let message = error(json);
            assert!(
                message.contains("outside the years -9999 to 9999"),
                "{json}: {message}"
            );
            assert!(!message.contains("whole number"), "{json}: {message}");
        }
        // Microseconds: in range for i64, out of range for a timestamp column.
        let message = error("1600000000000000");
        assert!(
            message.contains("time 1600000000000000 ms is outside"),
            "{message}"
        );
        assert!(error("1.5").contains("time 1.5 is not a whole number of milliseconds"));
    }
}
