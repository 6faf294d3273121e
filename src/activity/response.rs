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
struct Body<'a> {
    #[serde(borrow)]
    contents: Vec<Contents<'a>>,
}

#[derive(Deserialize)]
struct Contents<'a> {
    #[serde(default)]
    column_names: Vec<String>,
    #[serde(default, borrow)]
    data_rows: Vec<Vec<Raw<'a>>>,
    #[serde(default)]
    available_data_row_count: Option<u64>,
}

/// A cell as the response holds it, text borrowed from the response where
/// it can be: reading a page allocates little beyond the rows it makes.
#[derive(Debug)]
enum Raw<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
    /// `{"v": {"s": 1733000000}}`, how searches return date-times.
    Seconds(i64),
    /// Anything else (an array, another object), kept to be named.
    Other(Value),
}

impl std::fmt::Display for Raw<'_> {
    /// As JSON, for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Raw::Null => f.write_str("null"),
            Raw::Bool(b) => write!(f, "{b}"),
            Raw::Int(i) => write!(f, "{i}"),
            Raw::Float(x) => write!(f, "{x}"),
            Raw::Text(t) => write!(f, "{}", Value::String(t.to_string())),
            Raw::Seconds(s) => write!(f, "{{\"v\":{{\"s\":{s}}}}}"),
            Raw::Other(v) => write!(f, "{v}"),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> serde::de::Visitor<'de> for RawVisitor {
    type Value = Raw<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a cell")
    }
    fn visit_unit<E>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Raw<'de>, E> {
        Ok(Raw::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Raw<'de>, E> {
        Ok(Raw::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Raw<'de>, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => Raw::Int(i),
            Err(_) => Raw::Float(u as f64),
        })
    }
    fn visit_f64<E>(self, x: f64) -> Result<Raw<'de>, E> {
        Ok(Raw::Float(x))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Raw<'de>, E> {
        Ok(Raw::Text(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Raw<'de>, E> {
        Ok(Raw::Text(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Raw<'de>, E> {
        Ok(Raw::Text(Cow::Owned(s)))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Raw<'de>, A::Error> {
        let value = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Raw::Other(value))
    }
    /// `{"v": {"s": n}}` (or `{"v": n}`) without building a map; any
    /// other object is kept whole, to be named in a message.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
        let mut seconds = None;
        let mut other = serde_json::Map::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match map.next_value::<Raw<'de>>()? {
                Raw::Seconds(s) | Raw::Int(s) if key == "v" || key == "s" => seconds = Some(s),
                value => {
                    other.insert(key.into_owned(), raw_to_value(value));
                }
            }
        }
        Ok(match seconds {
            Some(s) if other.is_empty() => Raw::Seconds(s),
            _ => Raw::Other(Value::Object(other)),
        })
    }
}

fn raw_to_value(raw: Raw<'_>) -> Value {
    match raw {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::from(i),
        Raw::Float(x) => Value::from(x),
        Raw::Text(t) => Value::String(t.into_owned()),
        Raw::Seconds(s) => serde_json::json!({"v": {"s": s}}),
        Raw::Other(v) => v,
    }
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

/// How to read pages of one worksheet (owned, so pages can be read on
/// other threads while more arrive).
#[derive(Clone, Debug)]
pub struct Reader {
    /// The worksheet's columns.
    pub columns: Vec<ActivityColumn>,
    /// Index of the time column among them.
    pub time: usize,
    /// The cluster id every row starts with.
    pub cluster_id: String,
    /// The cluster's clock.
    pub clock: Clock,
}

impl Reader {
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
            if let Some(ours) = match_returned(&self.columns, name) {
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
            push_field(&mut line, &self.cluster_id);
            let mut time = None;
            for (i, (column, &index)) in self.columns.iter().zip(&at).enumerate() {
                let cell = cells.get(index).unwrap_or(&Raw::Null);
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
                    line: super::held::line_text(&line),
                }),
                _ => page.outside += 1,
            }
        }
        Ok(page)
    }

    /// One cell as data text (none for null), with its Unix second for a
    /// time.
    fn cell<'v>(&self, column: &ActivityColumn, cell: &'v Raw<'_>) -> Result<Cell<'v>, String> {
        let wrong = || format!("{cell} is not a {}", column.ty.sql_name());
        let value = match (column.ty, cell) {
            (_, Raw::Null) => return Ok(None),
            (ColumnType::Timestamp, cell) => {
                let second = match cell {
                    Raw::Seconds(s) | Raw::Int(s) => self.clock.from_seconds(*s),
                    Raw::Float(x) if x.is_finite() => self.clock.from_seconds(x.floor() as i64),
                    Raw::Text(t) => match t.trim().parse::<i64>() {
                        Ok(s) => self.clock.from_seconds(s),
                        Err(_) => self.clock.from_text(t),
                    },
                    _ => None,
                }
                .ok_or_else(wrong)?;
                return Ok(Some((Cow::Owned(utc_text(second)), Some(second))));
            }
            (ColumnType::Bigint, Raw::Int(i)) => Cow::Owned(i.to_string()),
            (ColumnType::Bigint, Raw::Float(x)) if x.fract() == 0.0 && x.abs() < 9.0e18 => {
                Cow::Owned((*x as i64).to_string())
            }
            (ColumnType::Bigint, Raw::Text(s)) => match s.trim().parse::<i64>() {
                Ok(i) => Cow::Owned(i.to_string()),
                Err(_) if s.trim().is_empty() => return Ok(None),
                Err(_) => return Err(wrong()),
            },
            (ColumnType::Double, Raw::Int(i)) => Cow::Owned((*i as f64).to_string()),
            (ColumnType::Double, Raw::Float(x)) if x.is_finite() => Cow::Owned(x.to_string()),
            (ColumnType::Double, Raw::Text(s)) => match s.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Cow::Owned(x.to_string()),
                Err(_) if s.trim().is_empty() => return Ok(None),
                _ => return Err(wrong()),
            },
            (ColumnType::Boolean, Raw::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
            (ColumnType::Boolean, Raw::Text(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "1" => Cow::Borrowed("true"),
                "false" | "f" | "no" | "0" => Cow::Borrowed("false"),
                "" => return Ok(None),
                _ => return Err(wrong()),
            },
            (ColumnType::Boolean, Raw::Int(1)) => Cow::Borrowed("true"),
            (ColumnType::Boolean, Raw::Int(0)) => Cow::Borrowed("false"),
            (ColumnType::Text, Raw::Text(s)) if s.contains('\0') => Cow::Owned(s.replace('\0', "")),
            (ColumnType::Text, Raw::Text(s)) => Cow::Borrowed(s.as_ref()),
            (ColumnType::Text, Raw::Int(i)) => Cow::Owned(i.to_string()),
            (ColumnType::Text, Raw::Float(x)) => Cow::Owned(x.to_string()),
            (ColumnType::Text, Raw::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
            (ColumnType::Text, other) => Cow::Owned(other.to_string()),
            _ => return Err(wrong()),
        };
        Ok(Some((value, None)))
    }
}

/// A cell as data text (none for null), with its Unix second for a time.
type Cell<'v> = Option<(Cow<'v, str>, Option<i64>)>;

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
            columns,
            time: 1,
            cluster_id: "c1".into(),
            clock,
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
            columns,
            time: 1,
            cluster_id: "c1".into(),
            clock,
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
