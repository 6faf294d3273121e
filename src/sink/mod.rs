//! Writing principals as data: one row per fact, in seven tables.
//!
//! Every table starts with `cluster_id`, so several clusters can share one
//! database. Rows are ordered by org, then by the canonical order of the
//! principals in them, so the same principals always give the same bytes.

pub mod csv;

use std::borrow::Cow;

pub use crate::schema::Table;

use jiff::tz::TimeZone;

use crate::model::Millis;

/// How values are written.
#[derive(Clone, Debug)]
pub struct DataOptions {
    /// Prefix text cells that a spreadsheet would run as a formula.
    pub excel_safe: bool,
    /// Zone timestamps are written in.
    pub timezone: TimeZone,
}

impl Default for DataOptions {
    fn default() -> Self {
        Self {
            excel_safe: false,
            timezone: TimeZone::UTC,
        }
    }
}

impl DataOptions {
    /// A text cell: NUL characters removed and, when `excel_safe`, a leading
    /// `'` added before `=`, `+`, `-`, `@`, tab or carriage return, so a
    /// spreadsheet shows the text instead of evaluating it.
    pub fn text<'s>(&self, value: &'s str) -> Cow<'s, str> {
        let value: Cow<'s, str> = if value.contains('\0') {
            Cow::Owned(value.replace('\0', ""))
        } else {
            Cow::Borrowed(value)
        };
        let risky = self.excel_safe && value.starts_with(['=', '+', '-', '@', '\t', '\r']);
        if risky {
            Cow::Owned(format!("'{value}"))
        } else {
            value
        }
    }

    /// A timestamp cell, `YYYY-MM-DD HH:MM:SS` in the configured zone; empty
    /// when unknown.
    pub fn timestamp(&self, millis: Option<Millis>) -> String {
        let Some(millis) = millis else {
            return String::new();
        };
        match jiff::Timestamp::from_millisecond(millis) {
            Ok(ts) => ts
                .to_zoned(self.timezone.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string(),
            // Inputs are range-checked when read; this cannot happen.
            Err(_) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excel_safe_prefixes_only_risky_text() {
        let safe = DataOptions {
            excel_safe: true,
            ..DataOptions::default()
        };
        for risky in ["=1+1", "+x", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(safe.text(risky), format!("'{risky}"));
        }
        assert_eq!(safe.text("plain"), "plain");
        assert_eq!(DataOptions::default().text("=1+1"), "=1+1");
    }

    #[test]
    fn nul_is_stripped() {
        assert_eq!(DataOptions::default().text("a\0b"), "ab");
    }

    #[test]
    fn timestamps_are_utc_by_default_and_zone_aware() {
        let utc = DataOptions::default();
        assert_eq!(
            utc.timestamp(Some(1_600_000_000_000)),
            "2020-09-13 12:26:40"
        );
        assert_eq!(utc.timestamp(None), "");
        let tokyo = DataOptions {
            timezone: TimeZone::get("Asia/Tokyo").unwrap(),
            ..DataOptions::default()
        };
        assert_eq!(
            tokyo.timestamp(Some(1_600_000_000_000)),
            "2020-09-13 21:26:40"
        );
    }
}
