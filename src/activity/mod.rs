//! `activity`: the rows of ThoughtSpot's activity worksheets (TS: BI Server,
//! TS: AI and BI Stats) copied into the output directory, beside the
//! principals, so a database can join them (ThoughtSpot joins only tables
//! of one connection).
//!
//! The columns are the worksheet's own, read from the cluster
//! ([`columns`]); rows come through `searchdata` in time windows that are
//! split until each is below the API's row cap ([`window`]), so nothing is
//! silently truncated; each copy is merged into what the output directory
//! already holds, in key order and without doubles ([`held`]). The state
//! of an incremental copy is the data itself: the newest row held.

pub mod columns;
pub mod fetch;
pub mod held;
pub mod query;
pub mod response;
pub mod run;
pub mod window;

pub use crate::schema::activity::{ActivityColumn, Copied, Held, Source};

/// Seconds in a duration written `90s`, `30m`, `24h`, `7d` or `2w`.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit; write e.g. 90m, 24h or 7d"))?;
    let (number, unit) = text.split_at(unit_at);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 90m, 24h or 7d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h, d or w")),
    };
    number
        .checked_mul(seconds)
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("{text:?} is not a positive duration"))
}

/// The Unix second a `--since` or `--until` names: a UTC date
/// (`2026-11-01`), date and time (`2026-11-01 13:00:00`, `…T13:00:00Z`,
/// or with an offset), or a duration before `now` (`7d`).
pub fn parse_time(text: &str, now: i64) -> Result<i64, String> {
    let trimmed = text.trim();
    if trimmed.starts_with(|c: char| c.is_ascii_digit())
        && trimmed.ends_with(|c: char| c.is_ascii_alphabetic())
        && !trimmed.contains(['-', ':'])
    {
        return now
            .checked_sub(parse_duration(trimmed)?)
            .ok_or_else(|| format!("{trimmed:?} reaches further back than any time"));
    }
    if let Ok(t) = trimmed.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    let utc = |wall: jiff::civil::DateTime| {
        wall.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_second())
            .map_err(|e| e.to_string())
    };
    if let Ok(wall) = trimmed.parse::<jiff::civil::DateTime>() {
        return utc(wall);
    }
    if let Ok(date) = trimmed.parse::<jiff::civil::Date>() {
        return utc(date.to_datetime(jiff::civil::Time::midnight()));
    }
    Err(format!(
        "{trimmed:?} is neither a time (2026-11-01, 2026-11-01 13:00:00, \
         2026-11-01T13:00:00Z) nor a duration (90m, 24h, 7d)"
    ))
}

/// A copy of both worksheets as a cluster describes them, for tests.
#[cfg(test)]
pub(crate) fn sample_held() -> Held {
    use columns::{WorksheetColumn, data_columns};
    let list = |columns: &[(&str, &str, &str)]| {
        data_columns(
            &(columns.iter())
                .map(|(name, data_type, kind)| WorksheetColumn {
                    name: (*name).into(),
                    data_type: (*data_type).into(),
                    kind: (*kind).into(),
                })
                .collect::<Vec<_>>(),
        )
    };
    let (a, m) = ("ATTRIBUTE", "MEASURE");
    let bi_server = list(&[
        ("Incident Id", "VARCHAR", a),
        ("Timestamp", "DATE_TIME", a),
        ("URL", "VARCHAR", a),
        ("HTTP Response Code", "INT64", a),
        ("Client Type", "VARCHAR", a),
        ("Answer Book GUID", "VARCHAR", a),
        ("User Id", "VARCHAR", a),
        ("User Action", "VARCHAR", a),
        ("Query Text", "VARCHAR", a),
        ("Response Size", "INT64", m),
        ("Latency (us)", "INT64", m),
        ("Impressions", "DOUBLE", m),
        ("Org Id", "INT64", a),
    ]);
    let stats = list(&[
        ("Query ID", "VARCHAR", a),
        ("TS Query Start Time", "DATE_TIME", a),
        ("User ID", "VARCHAR", a),
        ("Connection", "VARCHAR", a),
        ("Query Status", "VARCHAR", a),
        ("Is Billable", "BOOL", a),
        ("Credits", "DOUBLE", m),
        ("Query Latency (External)", "INT64", m),
    ]);
    let copied = |worksheet: &str, time_column: &str, columns| Copied {
        worksheet: worksheet.into(),
        worksheet_guid: "00000000-0000-0000-0000-000000000001".into(),
        org_id: 0,
        time_zone: "UTC".into(),
        time_column: time_column.into(),
        columns,
        rows: 0,
        newest: None,
    };
    Held::from([
        (
            Source::BiServer,
            copied("TS: BI Server", "timestamp", bi_server),
        ),
        (
            Source::AiBiStats,
            copied("TS: AI and BI Stats", "ts_query_start_time", stats),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_parse() {
        let now = 1_000_000;
        assert_eq!(parse_time("7d", now), Ok(now - 7 * 86_400));
        assert_eq!(parse_time("90m", now), Ok(now - 5400));
        assert_eq!(parse_time("2026-12-01", now), Ok(1_796_083_200));
        assert_eq!(parse_time("2026-12-01 13:00:00", now), Ok(1_796_130_000));
        assert_eq!(parse_time("2026-12-01T13:00:00Z", now), Ok(1_796_130_000));
        assert_eq!(
            parse_time("2026-12-01T14:00:00+01:00", now),
            Ok(1_796_130_000)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("7y", now).is_err());
        assert!(parse_time("0d", now).is_err());
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn names_follow_the_sources() {
        assert_eq!(Source::BiServer.file(), "activity_bi_server.csv");
        assert_eq!(
            Source::AiBiStats.object_name("TS_"),
            "TS_ACTIVITY_AI_BI_STATS"
        );
        assert_eq!(Source::AiBiStats.label(), "TS: AI and BI Stats");
    }
}
