//! Reading a `searchdata` page (`data_format: COMPACT`) into rows of the
//! data file: `cluster_id`, then the worksheet's columns, each cell in the
//! data's type and every time in UTC.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::ActivityColumn;
use super::columns::match_returned;
use super::held::Row;
use super::query::Clock;
use super::window::{Window, utc_text};
use crate::schema::ColumnType;
use crate::sink::csv::push_field;

#[derive(Deserialize)]
struct Body {
    contents: Vec<Contents>,
}

#[derive(Deserialize)]
struct Contents {
    #[serde(default)]
    column_names: Vec<String>,
    #[serde(default)]
    data_rows: Vec<Vec<Value>>,
    #[serde(default)]
    available_data_row_count: Option<u64>,
}

/// One page, read.
#[derive(Debug, Default)]
pub struct Page {
    /// Rows on the page (what the API returned, before any was dropped).
    pub returned: usize,
    /// What the API says the whole search holds, when it says.
    pub available: Option<u64>,
    /// The rows whose time lies in the window, as data rows.
    pub rows: Vec<Row>,
    /// Rows dropped because their time lies outside the window or is
    /// missing (another window reads them).
    pub outside: usize,
}

/// How to read pages of one worksheet.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    /// The worksheet's columns.
    pub columns: &'a [ActivityColumn],
    /// Index of the time column among them.
    pub time: usize,
    /// The cluster id every row starts with.
    pub cluster_id: &'a str,
    /// The cluster's clock.
    pub clock: &'a Clock,
}

impl Reader<'_> {
    /// Reads one page of the search for `window`. The error says what is
    /// wrong, with the row (counted from `offset`) and column.
    pub fn page(&self, body: &[u8], window: Window, offset: u64) -> Result<Page, String> {
        let body: Body = serde_json::from_slice(body)
            .map_err(|e| format!("the response is not a searchdata result ({e})"))?;
        let Some(contents) = body.contents.into_iter().next() else {
            return Err("the response has no `contents`".into());
        };
        let mut page = Page {
            returned: contents.data_rows.len(),
            available: contents.available_data_row_count,
            ..Page::default()
        };
        if contents.data_rows.is_empty() {
            return Ok(page);
        }
        // Where each of our columns is in the result.
        let mut at: Vec<Option<usize>> = vec![None; self.columns.len()];
        for (i, name) in contents.column_names.iter().enumerate() {
            if let Some(ours) = match_returned(self.columns, name) {
                at[ours].get_or_insert(i);
            }
        }
        let missing: Vec<&str> = (self.columns.iter().zip(&at))
            .filter(|(_, at)| at.is_none())
            .map(|(c, _)| c.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the result lacks the column(s) {missing:?} (it has {:?})",
                contents.column_names
            ));
        }
        let at: Vec<usize> = at.into_iter().flatten().collect();
        let mut line = Vec::with_capacity(256);
        for (n, cells) in contents.data_rows.iter().enumerate() {
            let row_number = offset + n as u64 + 1;
            line.clear();
            push_field(&mut line, self.cluster_id);
            let mut time = None;
            for (i, (column, &index)) in self.columns.iter().zip(&at).enumerate() {
                let cell = cells.get(index).unwrap_or(&Value::Null);
                let value = self.cell(column, cell).map_err(|problem| {
                    format!("row {row_number}, column {:?}: {problem}", column.name)
                })?;
                if i == self.time {
                    time = value.as_ref().and_then(|v| v.1);
                }
                line.push(b',');
                if let Some((text, _)) = value {
                    push_field(&mut line, &text);
                }
            }
            match time {
                Some(time) if window.contains(time) => page.rows.push(Row {
                    time,
                    line: String::from_utf8_lossy(&line).into(),
                }),
                _ => page.outside += 1,
            }
        }
        Ok(page)
    }

    /// One cell as data text (none for null), with its Unix second for a
    /// time.
    fn cell<'v>(&self, column: &ActivityColumn, cell: &'v Value) -> Result<Cell<'v>, String> {
        let wrong = || format!("{cell} is not a {}", column.ty.sql_name());
        let value = match (column.ty, cell) {
            (_, Value::Null) => return Ok(None),
            (ColumnType::Timestamp, cell) => {
                let second = match seconds_of(cell) {
                    Some(Seconds::Number(s)) => self.clock.from_seconds(s),
                    Some(Seconds::Text(t)) => self.clock.from_text(t),
                    None => None,
                }
                .ok_or_else(wrong)?;
                return Ok(Some((Cow::Owned(utc_text(second)), Some(second))));
            }
            (ColumnType::Bigint, Value::Number(n)) => match n.as_i64() {
                Some(i) => Cow::Owned(i.to_string()),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => {
                        Cow::Owned((f as i64).to_string())
                    }
                    _ => return Err(wrong()),
                },
            },
            (ColumnType::Bigint, Value::String(s)) => match s.trim().parse::<i64>() {
                Ok(i) => Cow::Owned(i.to_string()),
                Err(_) if s.trim().is_empty() => return Ok(None),
                Err(_) => return Err(wrong()),
            },
            (ColumnType::Double, Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() => Cow::Owned(f.to_string()),
                _ => return Err(wrong()),
            },
            (ColumnType::Double, Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Cow::Owned(f.to_string()),
                Err(_) if s.trim().is_empty() => return Ok(None),
                _ => return Err(wrong()),
            },
            (ColumnType::Boolean, Value::Bool(b)) => {
                Cow::Borrowed(if *b { "true" } else { "false" })
            }
            (ColumnType::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str()
            {
                "true" | "t" | "yes" | "1" => Cow::Borrowed("true"),
                "false" | "f" | "no" | "0" => Cow::Borrowed("false"),
                "" => return Ok(None),
                _ => return Err(wrong()),
            },
            (ColumnType::Boolean, Value::Number(n)) => match n.as_i64() {
                Some(1) => Cow::Borrowed("true"),
                Some(0) => Cow::Borrowed("false"),
                _ => return Err(wrong()),
            },
            (ColumnType::Text, Value::String(s)) if s.contains('\0') => {
                Cow::Owned(s.replace('\0', ""))
            }
            (ColumnType::Text, Value::String(s)) => Cow::Borrowed(s.as_str()),
            (ColumnType::Text, Value::Number(n)) => Cow::Owned(n.to_string()),
            (ColumnType::Text, Value::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
            (ColumnType::Text, other) => Cow::Owned(other.to_string()),
            _ => return Err(wrong()),
        };
        Ok(Some((value, None)))
    }
}

/// A cell as data text (none for null), with its Unix second for a time.
type Cell<'v> = Option<(Cow<'v, str>, Option<i64>)>;

enum Seconds<'v> {
    Number(i64),
    Text(&'v str),
}

/// A time cell: `{"v": {"s": 1733000000}}` (what searches return for
/// date-times), a number of seconds, or text.
fn seconds_of(cell: &Value) -> Option<Seconds<'_>> {
    match cell {
        Value::Object(map) => {
            let inner = map.get("v")?;
            match inner {
                Value::Object(v) => seconds_of(v.get("s")?),
                other => seconds_of(other),
            }
        }
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .map(Seconds::Number),
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(n) => Some(Seconds::Number(n)),
            Err(_) => Some(Seconds::Text(s)),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::columns::{WorksheetColumn, data_columns};
    use super::*;

    fn columns() -> Vec<ActivityColumn> {
        let ws = |name: &str, data_type: &str, kind: &str| WorksheetColumn {
            name: name.into(),
            data_type: data_type.into(),
            kind: kind.into(),
        };
        data_columns(&[
            ws("Incident Id", "VARCHAR", "ATTRIBUTE"),
            ws("Timestamp", "DATE_TIME", "ATTRIBUTE"),
            ws("Query Text", "VARCHAR", "ATTRIBUTE"),
            ws("HTTP Response Code", "INT64", "ATTRIBUTE"),
            ws("Impressions", "DOUBLE", "MEASURE"),
            ws("Is System", "BOOL", "ATTRIBUTE"),
        ])
    }

    #[test]
    fn cells_become_data_text_and_times_utc() {
        let columns = columns();
        let clock = Clock::utc();
        let reader = Reader {
            columns: &columns,
            time: 1,
            cluster_id: "c1",
            clock: &clock,
        };
        let body = serde_json::json!({"contents": [{
            "column_names": ["Timestamp", "Incident Id", "Query Text", "HTTP Response Code",
                              "Total Impressions", "Is System"],
            "data_rows": [
                [{"v": {"s": 100}}, "i1", "a, \"b\"\nc", 200, 0.5, false],
                [{"v": {"s": 101}}, "i2", null, "404", 2, true],
                [{"v": {"s": 500}}, "i3", "late", 200, 1, false],
                [null, "i4", "no time", 200, 1, false],
            ],
            "available_data_row_count": 4,
        }]});
        let window = Window::new(100, 200).unwrap();
        let page = reader.page(body.to_string().as_bytes(), window, 0).unwrap();
        assert_eq!(
            (page.returned, page.available, page.outside),
            (4, Some(4), 2)
        );
        let lines: Vec<&str> = page.rows.iter().map(|r| &*r.line).collect();
        assert_eq!(
            lines,
            [
                "c1,i1,1970-01-01 00:01:40,\"a, \"\"b\"\"\nc\",200,0.5,false",
                "c1,i2,1970-01-01 00:01:41,,404,2,true",
            ]
        );
        assert_eq!(page.rows[1].time, 101);
    }

    #[test]
    fn bad_cells_and_missing_columns_are_named() {
        let columns = columns();
        let clock = Clock::utc();
        let reader = Reader {
            columns: &columns,
            time: 1,
            cluster_id: "c1",
            clock: &clock,
        };
        let window = Window::new(0, 1000).unwrap();
        let body = serde_json::json!({"contents": [{
            "column_names": ["Timestamp", "Incident Id", "Query Text", "HTTP Response Code",
                              "Total Impressions", "Is System"],
            "data_rows": [[{"v": {"s": 100}}, "i1", "q", "two hundred", 1, true]],
        }]});
        let error = reader
            .page(body.to_string().as_bytes(), window, 40)
            .unwrap_err();
        assert_eq!(
            error,
            "row 41, column \"HTTP Response Code\": \"two hundred\" is not a bigint"
        );
        let body = serde_json::json!({"contents": [{
            "column_names": ["Timestamp", "Incident Id"],
            "data_rows": [[{"v": {"s": 100}}, "i1"]],
        }]});
        let error = reader
            .page(body.to_string().as_bytes(), window, 0)
            .unwrap_err();
        assert!(
            error.starts_with("the result lacks the column(s) [\"Query Text\""),
            "{error}"
        );
        assert!(reader.page(b"<html>", window, 0).is_err());
    }
}
