//! The search a window is read with, and the cluster's clock.
//!
//! A search names every column of the worksheet (date-times as
//! `.detailed`, else they come back bucketed by day) and bounds the time
//! column by the window: `[Timestamp] >= '12/01/2026 13:00:00' [Timestamp]
//! < '12/01/2026 14:00:00'`. On ThoughtSpot Software the worksheets speak
//! the cluster's local time (`time_zone` of `GET /api/rest/2.0/system`), so
//! bounds are written and times read in that zone; every time in the data
//! is UTC.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use super::ActivityColumn;
use super::window::Window;
use crate::schema::ColumnType;

/// The zone a cluster's activity times are in.
#[derive(Clone, Debug)]
pub struct Clock {
    zone: TimeZone,
    name: String,
}

impl Clock {
    /// UTC (ThoughtSpot Cloud).
    pub fn utc() -> Self {
        Clock {
            zone: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    /// An IANA zone (a Software cluster's `time_zone`).
    pub fn zone(name: &str) -> Result<Self, String> {
        let zone = TimeZone::get(name)
            .map_err(|e| format!("the cluster's time zone {name:?} is unknown here: {e}"))?;
        Ok(Clock {
            zone,
            name: name.to_owned(),
        })
    }

    /// The zone's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The wall-clock bounds of a search for `window`: `'MM/DD/YYYY
    /// HH:MM:SS'` each. Near a daylight-saving switch (the zone's offset
    /// changes within two hours of the window) the bounds widen by the
    /// change on both sides, so the search also returns the rows of a
    /// repeated hour whichever reading the cluster gives them; rows outside
    /// the window are dropped when read, and another window keeps them.
    pub fn bounds(&self, window: Window) -> (String, String) {
        const NEAR: i64 = 2 * 3600;
        let offset = |second: i64| {
            jiff::Timestamp::from_second(second)
                .map(|t| i64::from(self.zone.to_offset(t).seconds()))
                .unwrap_or(0)
        };
        let offsets = [
            offset(window.start - NEAR),
            offset(window.start),
            offset(window.end),
            offset(window.end + NEAR),
        ];
        let low = offsets.iter().copied().min().unwrap_or(0);
        let high = offsets.iter().copied().max().unwrap_or(0);
        let change = high - low;
        let wall = |second: i64| {
            jiff::Timestamp::from_second(second)
                .map(|t| t.strftime("'%m/%d/%Y %H:%M:%S'").to_string())
                .unwrap_or_else(|_| format!("'{second}'"))
        };
        (
            wall(window.start + low - change),
            wall(window.end + high + change),
        )
    }

    /// The Unix second (UTC) of a wall-clock reading on the cluster.
    fn instant(&self, wall: DateTime) -> Option<i64> {
        let zoned = self.zone.to_ambiguous_zoned(wall).compatible().ok()?;
        Some(zoned.timestamp().as_second())
    }

    /// A time the cluster sent as seconds: its wall-clock reading counted
    /// from 1970-01-01 00:00:00 (the Unix time itself where the zone is
    /// UTC). Returns the Unix second.
    pub fn from_seconds(&self, seconds: i64) -> Option<i64> {
        let wall = jiff::Timestamp::from_second(seconds)
            .ok()?
            .to_zoned(TimeZone::UTC)
            .datetime();
        self.instant(wall)
    }

    /// A time the cluster sent as text, on its wall clock: `YYYY-MM-DD
    /// HH:MM:SS` (or with `T`, or fractional seconds), `MM/DD/YYYY
    /// HH:MM:SS`, or a date alone. A text with an offset or `Z` is taken
    /// as the instant it names.
    pub fn from_text(&self, text: &str) -> Option<i64> {
        let text = text.trim();
        if let Ok(t) = text.parse::<jiff::Timestamp>() {
            return Some(t.as_second());
        }
        if let Ok(wall) = text.parse::<DateTime>() {
            return self.instant(wall);
        }
        for format in ["%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y"] {
            if let Ok(wall) = DateTime::strptime(format, text) {
                return self.instant(wall);
            }
            if let Ok(date) = jiff::civil::Date::strptime(format, text) {
                return self.instant(date.to_datetime(jiff::civil::Time::midnight()));
            }
        }
        None
    }
}

/// Whether a column can be named in a search (`[name]`).
pub fn nameable(name: &str) -> bool {
    !name.is_empty() && !name.contains(['[', ']', '\''])
}

/// The search for one window: every column, then the time bounds.
pub fn search(
    columns: &[ActivityColumn],
    time: &ActivityColumn,
    window: Window,
    clock: &Clock,
) -> String {
    let mut query = String::new();
    for column in columns {
        if !query.is_empty() {
            query.push(' ');
        }
        query.push('[');
        query.push_str(&column.name);
        query.push(']');
        if column.ty == ColumnType::Timestamp && !column.measure {
            query.push_str(".detailed");
        }
    }
    let (from, to) = clock.bounds(window);
    query.push_str(&format!(" [{0}] >= {from} [{0}] < {to}", time.name));
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, ty: ColumnType, measure: bool) -> ActivityColumn {
        ActivityColumn {
            name: name.into(),
            csv: super::super::columns::snake_case(name),
            ty,
            measure,
        }
    }

    #[test]
    fn a_search_names_every_column_and_bounds_the_time() {
        let columns = [
            column("Incident Id", ColumnType::Text, false),
            column("Timestamp", ColumnType::Timestamp, false),
            column("Impressions", ColumnType::Double, true),
        ];
        // 2026-12-01 13:00:00 UTC and an hour later.
        let window = Window::new(1_796_130_000, 1_796_133_600).unwrap();
        assert_eq!(
            search(&columns, &columns[1], window, &Clock::utc()),
            "[Incident Id] [Timestamp].detailed [Impressions] [Timestamp] >= '12/01/2026 13:00:00' \
             [Timestamp] < '12/01/2026 14:00:00'"
        );
        let new_york = Clock::zone("America/New_York").unwrap();
        assert!(
            search(&columns, &columns[1], window, &new_york)
                .ends_with(">= '12/01/2026 08:00:00' [Timestamp] < '12/01/2026 09:00:00'")
        );
    }

    #[test]
    fn cluster_times_are_read_on_its_wall_clock() {
        let utc = Clock::utc();
        assert_eq!(utc.from_seconds(1_796_130_000), Some(1_796_130_000));
        assert_eq!(utc.from_text("2026-12-01 13:00:00"), Some(1_796_130_000));
        assert_eq!(utc.from_text("12/01/2026 13:00:00"), Some(1_796_130_000));
        assert_eq!(
            utc.from_text("2026-12-01T13:00:00.250"),
            Some(1_796_130_000)
        );
        assert_eq!(
            utc.from_text("2026-12-01T14:00:00+01:00"),
            Some(1_796_130_000)
        );
        assert_eq!(utc.from_text("12/01/2026"), Some(1_796_083_200));
        assert_eq!(utc.from_text("yesterday"), None);
        let new_york = Clock::zone("America/New_York").unwrap();
        // 08:00 in New York (EST, UTC-5) is 13:00 UTC.
        let eight = 1_796_130_000 - 5 * 3600;
        assert_eq!(new_york.from_seconds(eight), Some(1_796_130_000));
        assert_eq!(
            new_york.from_text("2026-12-01 08:00:00"),
            Some(1_796_130_000)
        );
        assert!(Clock::zone("Mars/Olympus").is_err());
    }

    #[test]
    fn bounds_cover_a_repeated_hour() {
        let new_york = Clock::zone("America/New_York").unwrap();
        // 2026-11-01 05:30 UTC is 01:30 EDT; an hour later, 01:30 EST:
        // every wall-clock time of the hour between lies in the bounds.
        let window = Window::new(1_793_511_000, 1_793_514_600).unwrap();
        assert_eq!(
            new_york.bounds(window),
            (
                "'10/31/2026 23:30:00'".to_owned(),
                "'11/01/2026 03:30:00'".to_owned()
            )
        );
        // No switch: the plain wall-clock times.
        let window = Window::new(1_796_130_000, 1_796_133_600).unwrap();
        assert_eq!(
            new_york.bounds(window),
            (
                "'12/01/2026 08:00:00'".to_owned(),
                "'12/01/2026 09:00:00'".to_owned()
            )
        );
    }
}
