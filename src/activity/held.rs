//! What an output directory already holds of a worksheet, and merging a
//! new copy into it.
//!
//! A data file is kept in key order: by time, then by every attribute
//! column (measures are not part of a row's identity: searches aggregate
//! them over the attributes). Rows read again (the overlap of an
//! incremental copy) replace the rows held with the same key, so a row is
//! never doubled; rows held that the new copy does not cover are kept, so
//! none is lost. Files are streamed, never read whole.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use super::{ActivityColumn, Copied};
use crate::sink::csv::push_field;

/// One data row: its time (Unix seconds) and its fields as one CSV record
/// (without the line end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The time column, in Unix seconds.
    pub time: i64,
    /// The record, CSV-encoded.
    pub line: Box<str>,
}

/// The fields of one CSV record as encoded by [`push_field`].
pub fn fields(line: &str) -> impl Iterator<Item = Cow<'_, str>> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let text = rest?;
        if let Some(quoted) = text.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            loop {
                match chars.next() {
                    Some((i, '"')) => {
                        if quoted[i + 1..].starts_with('"') {
                            value.push('"');
                            chars.next();
                        } else {
                            let after = &quoted[i + 1..];
                            rest = after.strip_prefix(',');
                            return Some(Cow::Owned(value));
                        }
                    }
                    Some((_, c)) => value.push(c),
                    None => {
                        rest = None;
                        return Some(Cow::Owned(value));
                    }
                }
            }
        }
        match text.split_once(',') {
            Some((field, after)) => {
                rest = Some(after);
                Some(Cow::Borrowed(field))
            }
            None => {
                rest = None;
                Some(Cow::Borrowed(text))
            }
        }
    })
}

/// The key order of a worksheet's rows.
#[derive(Clone, Debug)]
pub struct Order {
    /// Per field (`cluster_id` first): part of the key.
    key: Vec<bool>,
}

impl Order {
    /// The order for a file of `columns` (after `cluster_id`) whose rows
    /// are identified by every attribute (every column but the measures).
    pub fn new(columns: &[ActivityColumn]) -> Self {
        Self::identified_by(&columns.iter().map(|c| !c.measure).collect::<Vec<_>>())
    }

    /// The order for `source`'s rows: by time, then its identity.
    pub fn of(source: super::Source, columns: &[ActivityColumn]) -> Self {
        Self::identified_by(&source.identity(columns))
    }

    fn identified_by(identity: &[bool]) -> Self {
        Order {
            key: std::iter::once(true)
                .chain(identity.iter().copied())
                .collect(),
        }
    }

    /// By time, then by each key field.
    pub fn cmp(&self, a: &Row, b: &Row) -> Ordering {
        a.time.cmp(&b.time).then_with(|| {
            if a.line == b.line {
                return Ordering::Equal;
            }
            for ((x, y), &key) in fields(&a.line).zip(fields(&b.line)).zip(&self.key) {
                if key {
                    match x.cmp(&y) {
                        Ordering::Equal => {}
                        other => return other,
                    }
                }
            }
            Ordering::Equal
        })
    }

    /// Sorts `rows` into key order and keeps, of rows with the same key,
    /// the one read last.
    pub fn sort_unique(&self, rows: &mut Vec<Row>) {
        rows.sort_by(|a, b| self.cmp(a, b));
        let mut kept: Vec<Row> = Vec::with_capacity(rows.len());
        for row in rows.drain(..) {
            match kept.last_mut() {
                Some(last) if self.cmp(last, &row) == Ordering::Equal => *last = row,
                _ => kept.push(row),
            }
        }
        *rows = kept;
    }
}

/// The held file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HeldError {
    /// It cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A record is not what the manifest says the file holds.
    #[error(
        "{path}, line {line}: {problem}; the file was changed since ts-principals wrote it: \
         restore it (git checkout) or move it away to copy the activity again"
    )]
    Record {
        /// The file.
        path: PathBuf,
        /// The line the record starts on.
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// The file is not what the manifest records (edited, truncated, or
    /// replaced since ts-principals wrote it).
    #[error(
        "{path} was changed since ts-principals wrote it ({what} is not what manifest.json \
         records): restore it (git checkout), or move it away to copy the activity again"
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// What differs.
        what: &'static str,
    },
    /// The worksheet's columns changed in a way the data cannot follow.
    #[error(
        "{path}: {problem}; move the file away (keep it if you need its rows) and run \
         activity again to start a new copy with the worksheet's columns"
    )]
    Columns {
        /// The file.
        path: PathBuf,
        /// What changed.
        problem: String,
    },
}

/// Rows of a held file, in the column layout of a new copy.
pub struct HeldRows {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    /// For each new field, the held field it comes from.
    from: Vec<Option<usize>>,
    time_field: usize,
    cluster_id: String,
    order: Order,
    previous: Option<Row>,
    record: csv::StringRecord,
    line: Vec<u8>,
}

impl HeldRows {
    /// Opens the held file of `held` for a copy with `columns`, checking
    /// its header. Columns the worksheet gained are empty in held rows; a
    /// column it lost, or whose type changed, is an error (its data would
    /// be lost).
    pub fn open(
        path: &Path,
        held: &Copied,
        columns: &[ActivityColumn],
        time_column: &str,
        cluster_id: &str,
        order: Order,
    ) -> Result<HeldRows, HeldError> {
        let io = |source| HeldError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(BufReader::with_capacity(1 << 20, file));
        let expected: Vec<&str> = std::iter::once(super::columns::CLUSTER_ID)
            .chain(held.columns.iter().map(|c| c.csv.as_str()))
            .collect();
        let header = reader.headers().map_err(|e| HeldError::Record {
            path: path.to_path_buf(),
            line: 1,
            problem: e.to_string(),
        })?;
        if header.iter().collect::<Vec<_>>() != expected {
            return Err(HeldError::Record {
                path: path.to_path_buf(),
                line: 1,
                problem: format!(
                    "the header is not the one the manifest records ({})",
                    expected.join(",")
                ),
            });
        }
        let lost: Vec<String> = (held.columns.iter())
            .filter(|old| !columns.iter().any(|new| new.csv == old.csv))
            .map(|old| format!("{:?}", old.name))
            .collect();
        if !lost.is_empty() {
            return Err(HeldError::Columns {
                path: path.to_path_buf(),
                problem: format!(
                    "the worksheet no longer has the column(s) {}",
                    lost.join(", ")
                ),
            });
        }
        let mut from = vec![Some(0)];
        for new in columns {
            let old = held.columns.iter().position(|old| old.csv == new.csv);
            if let Some(old) = old.map(|i| &held.columns[i])
                && old.ty != new.ty
            {
                return Err(HeldError::Columns {
                    path: path.to_path_buf(),
                    problem: format!(
                        "the column {:?} is now {}, but the file holds {}",
                        new.name,
                        new.ty.sql_name(),
                        old.ty.sql_name()
                    ),
                });
            }
            from.push(old.map(|i| i + 1));
        }
        let time_field = (held.columns.iter())
            .position(|c| c.csv == time_column)
            .map(|i| i + 1)
            .ok_or_else(|| HeldError::Columns {
                path: path.to_path_buf(),
                problem: format!("the file has no time column {time_column:?}"),
            })?;
        Ok(HeldRows {
            path: path.to_path_buf(),
            reader,
            from,
            time_field,
            cluster_id: cluster_id.to_owned(),
            order,
            previous: None,
            record: csv::StringRecord::new(),
            line: Vec::with_capacity(256),
        })
    }

    fn problem(&self, problem: String) -> HeldError {
        HeldError::Record {
            path: self.path.clone(),
            line: self.record.position().map_or(0, |p| p.line()),
            problem,
        }
    }

    /// Reads the next record, checking its cluster and time; its time.
    fn next_record(&mut self) -> Result<Option<i64>, HeldError> {
        let more = self.reader.read_record(&mut self.record).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            HeldError::Record {
                path: self.path.clone(),
                line,
                problem: e.to_string(),
            }
        })?;
        if !more {
            return Ok(None);
        }
        let record = &self.record;
        if record.get(0) != Some(self.cluster_id.as_str()) {
            let found = record.get(0).unwrap_or("").to_owned();
            return Err(self.problem(format!(
                "holds activity of cluster {found:?}, not of {:?}",
                self.cluster_id
            )));
        }
        let text = record.get(self.time_field).unwrap_or("");
        match parse_utc(text) {
            Some(time) => Ok(Some(time)),
            None => Err(self.problem(format!("the time {text:?} is not YYYY-MM-DD HH:MM:SS"))),
        }
    }

    /// The next held row, in the new layout.
    pub fn next_row(&mut self) -> Result<Option<Row>, HeldError> {
        let Some(time) = self.next_record()? else {
            return Ok(None);
        };
        self.line.clear();
        for (i, from) in self.from.iter().enumerate() {
            if i > 0 {
                self.line.push(b',');
            }
            if let Some(value) = from.and_then(|f| self.record.get(f)) {
                push_field(&mut self.line, value);
            }
        }
        let row = Row {
            time,
            line: line_text(&self.line),
        };
        if let Some(previous) = &self.previous
            && self.order.cmp(previous, &row) == Ordering::Greater
        {
            return Err(self.problem("the rows are out of order".into()));
        }
        self.previous = Some(row.clone());
        Ok(Some(row))
    }

    /// Reads every record, returning the newest time and the count. Only
    /// times are checked for order here (a merge checks whole keys).
    pub fn scan(mut self) -> Result<(Option<i64>, usize), HeldError> {
        let mut count = 0;
        let mut newest: Option<i64> = None;
        while let Some(time) = self.next_record()? {
            if newest.is_some_and(|n| n > time) {
                return Err(self.problem("the rows are out of order".into()));
            }
            count += 1;
            newest = Some(time);
        }
        Ok((newest, count))
    }
}

/// A line built by [`push_field`] from text, as text.
pub fn line_text(line: &[u8]) -> Box<str> {
    match std::str::from_utf8(line) {
        Ok(text) => text.into(),
        Err(_) => String::from_utf8_lossy(line).into(),
    }
}

/// Checks that the file at `path` is the one the manifest records: its
/// SHA-256 and its data rows, when recorded.
pub fn check_recorded(
    path: &Path,
    sha256: Option<&str>,
    rows: Option<u64>,
) -> Result<(), HeldError> {
    let differs =
        crate::load::differs_from_record(path, sha256, rows).map_err(|source| HeldError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if let Some(what) = differs {
        return Err(HeldError::Changed {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) → Unix seconds.
pub fn parse_utc(text: &str) -> Option<i64> {
    let wall: jiff::civil::DateTime = text.parse().ok()?;
    Some(
        wall.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

/// What a merge wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Rows written.
    pub rows: usize,
    /// Rows of the new copy that were already held (replaced in place).
    pub already_held: usize,
    /// Time of the newest row.
    pub newest: Option<i64>,
}

/// Writes the header and the rows of `held` and `new` (sorted and unique
/// by [`Order::sort_unique`]) merged in key order; a new row replaces the
/// held row with the same key.
pub fn merge(
    header: &[&str],
    held: Option<HeldRows>,
    new: &[Row],
    order: &Order,
    out: &mut dyn Write,
) -> io::Result<Merged> {
    let mut chunk: Vec<u8> = Vec::with_capacity(1 << 20);
    for (i, name) in header.iter().enumerate() {
        if i > 0 {
            chunk.push(b',');
        }
        push_field(&mut chunk, name);
    }
    chunk.push(b'\n');
    let mut merged = Merged::default();
    let mut emit = |row: &Row, chunk: &mut Vec<u8>| -> io::Result<()> {
        chunk.extend_from_slice(row.line.as_bytes());
        chunk.push(b'\n');
        merged.rows += 1;
        merged.newest = Some(row.time);
        if chunk.len() >= 1 << 20 {
            out.write_all(chunk)?;
            chunk.clear();
        }
        Ok(())
    };
    let mut new = new.iter().peekable();
    if let Some(mut held) = held {
        let fail = |e: HeldError| io::Error::other(e.to_string());
        while let Some(row) = held.next_row().map_err(fail)? {
            while let Some(&next) = new.peek() {
                match order.cmp(next, &row) {
                    Ordering::Less => {
                        emit(next, &mut chunk)?;
                        new.next();
                    }
                    _ => break,
                }
            }
            match new.peek() {
                Some(&next) if order.cmp(next, &row) == Ordering::Equal => {
                    emit(next, &mut chunk)?;
                    merged.already_held += 1;
                    new.next();
                }
                _ => emit(&row, &mut chunk)?,
            }
        }
    }
    for row in new {
        emit(row, &mut chunk)?;
    }
    out.write_all(&chunk)?;
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnType;

    fn columns() -> Vec<ActivityColumn> {
        let c = |name: &str, ty, measure| ActivityColumn {
            name: name.into(),
            csv: super::super::columns::snake_case(name),
            ty,
            measure,
        };
        vec![
            c("Incident Id", ColumnType::Text, false),
            c("Timestamp", ColumnType::Timestamp, false),
            c("Impressions", ColumnType::Double, true),
        ]
    }

    fn row(time: i64, id: &str, impressions: &str) -> Row {
        let mut line = Vec::new();
        push_field(&mut line, "c1");
        line.push(b',');
        push_field(&mut line, id);
        line.push(b',');
        push_field(&mut line, &super::super::window::utc_text(time));
        line.push(b',');
        push_field(&mut line, impressions);
        Row {
            time,
            line: String::from_utf8(line).unwrap().into(),
        }
    }

    #[test]
    fn fields_read_back_what_push_field_wrote() {
        let values = ["", "a", "a,b", "\"q\"", "line\nbreak", "é,\"", ""];
        let mut line = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            push_field(&mut line, v);
        }
        let line = String::from_utf8(line).unwrap();
        let read: Vec<String> = fields(&line).map(Cow::into_owned).collect();
        assert_eq!(read, values);
    }

    #[test]
    fn rows_with_the_same_key_are_one_and_the_last_read_wins() {
        let order = Order::new(&columns());
        let mut rows = vec![
            row(5, "b", "1"),
            row(5, "a", "1"),
            row(3, "z", "1"),
            row(5, "a", "2"),
        ];
        order.sort_unique(&mut rows);
        let ids: Vec<String> = rows.iter().map(|r| r.line.to_string()).collect();
        assert_eq!(
            ids,
            [
                "c1,z,1970-01-01 00:00:03,1",
                "c1,a,1970-01-01 00:00:05,2",
                "c1,b,1970-01-01 00:00:05,1"
            ]
        );
    }

    #[test]
    fn merging_keeps_every_held_row_and_never_doubles_one() {
        let dir = tempfile::tempdir().unwrap();
        let columns = columns();
        let order = Order::new(&columns);
        let header = ["cluster_id", "incident_id", "timestamp", "impressions"];
        let copied = Copied {
            worksheet: "TS: BI Server".into(),
            worksheet_guid: "g".into(),
            org_id: 0,
            time_zone: "UTC".into(),
            time_column: "timestamp".into(),
            columns: columns.clone(),
            rows: 0,
            newest: None,
        };
        let path = dir.path().join("held.csv");
        let mut first = vec![row(1, "a", "1"), row(2, "b", "1"), row(4, "d", "1")];
        order.sort_unique(&mut first);
        let mut bytes = Vec::new();
        let written = merge(&header, None, &first, &order, &mut bytes).unwrap();
        assert_eq!((written.rows, written.newest), (3, Some(4)));
        std::fs::write(&path, &bytes).unwrap();

        // The overlap re-reads 2 and 4 (4 with a new measure) and adds 3 and 5.
        let mut second = vec![
            row(4, "d", "2.5"),
            row(2, "b", "1"),
            row(3, "c", "1"),
            row(5, "e", "1"),
        ];
        order.sort_unique(&mut second);
        let held = HeldRows::open(
            &path,
            &copied,
            &columns,
            "timestamp",
            "c1",
            Order::new(&columns),
        )
        .unwrap();
        let mut out = Vec::new();
        let merged = merge(&header, Some(held), &second, &order, &mut out).unwrap();
        assert_eq!(
            merged,
            Merged {
                rows: 5,
                already_held: 2,
                newest: Some(5)
            }
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "cluster_id,incident_id,timestamp,impressions\n\
             c1,a,1970-01-01 00:00:01,1\n\
             c1,b,1970-01-01 00:00:02,1\n\
             c1,c,1970-01-01 00:00:03,1\n\
             c1,d,1970-01-01 00:00:04,2.5\n\
             c1,e,1970-01-01 00:00:05,1\n"
        );
        let held = HeldRows::open(
            &path,
            &copied,
            &columns,
            "timestamp",
            "c1",
            Order::new(&columns),
        )
        .unwrap();
        assert_eq!(held.scan().unwrap(), (Some(4), 3));
    }

    #[test]
    fn a_changed_file_or_worksheet_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let columns = columns();
        let copied = Copied {
            worksheet: "TS: BI Server".into(),
            worksheet_guid: "g".into(),
            org_id: 0,
            time_zone: "UTC".into(),
            time_column: "timestamp".into(),
            columns: columns.clone(),
            rows: 0,
            newest: None,
        };
        let path = dir.path().join("held.csv");
        let header = "cluster_id,incident_id,timestamp,impressions\n";
        let open = |text: &str| {
            std::fs::write(&path, text).unwrap();
            HeldRows::open(
                &path,
                &copied,
                &columns,
                "timestamp",
                "c1",
                Order::new(&columns),
            )
            .and_then(HeldRows::scan)
        };
        let error = open(&format!(
            "{header}c1,b,1970-01-01 00:00:02,1\nc1,a,1970-01-01 00:00:01,1\n"
        ));
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("line 3: the rows are out of order")
        );
        let error = open(&format!("{header}c2,b,1970-01-01 00:00:02,1\n"));
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("holds activity of cluster \"c2\"")
        );
        let error = open(&format!("{header}c1,b,yesterday,1\n"));
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("line 2: the time \"yesterday\"")
        );
        let error = open("cluster_id,incident_id\n");
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("line 1: the header")
        );

        // The worksheet lost a column: refused; gained one: held rows get it empty.
        std::fs::write(&path, format!("{header}c1,a,1970-01-01 00:00:01,1\n")).unwrap();
        let fewer = &columns[..2];
        let error = HeldRows::open(&path, &copied, fewer, "timestamp", "c1", Order::new(fewer))
            .err()
            .unwrap();
        assert!(
            error
                .to_string()
                .contains("no longer has the column(s) \"Impressions\"")
        );
        let mut more = columns.clone();
        more.insert(
            1,
            ActivityColumn {
                name: "Org Id".into(),
                csv: "org_id".into(),
                ty: ColumnType::Bigint,
                measure: false,
            },
        );
        let mut held =
            HeldRows::open(&path, &copied, &more, "timestamp", "c1", Order::new(&more)).unwrap();
        assert_eq!(
            &*held.next_row().unwrap().unwrap().line,
            "c1,a,,1970-01-01 00:00:01,1"
        );
    }
}
