//! `generate --group-activity`: the group activity views as CSV files, for
//! people who load files themselves. Each row of an activity file is
//! written once for every membership history row of its cluster, user and
//! org (the Primary org, 0, when the activity has none) that was valid at
//! its time, exactly as the view a database computes
//! ([`GroupActivityDef::select_sql`]).

use std::collections::HashMap;
use std::io::{self, BufReader, Write};
use std::path::Path;

use crate::history::{History, Row};
use crate::schema::attribution::GroupActivityDef;
use crate::sink::csv::push_field;

/// Writes the group activity of the activity file at `path` (its header
/// names the columns) into `out`, header first; returns the data rows.
pub fn write_csv(
    def: &GroupActivityDef,
    time_column: &str,
    path: &Path,
    history: &History,
    out: &mut dyn Write,
) -> io::Result<usize> {
    let file = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::with_capacity(crate::load::CHUNK, file));
    let bad = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let header = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
    let index = |csv: &str| header.iter().position(|h| h == csv);
    let missing = |csv: &str| bad(format!("the header has no column {csv}"));
    let cluster = index("cluster_id").ok_or_else(|| missing("cluster_id"))?;
    let user = index("user_id").ok_or_else(|| missing("user_id"))?;
    let time = index(time_column).ok_or_else(|| missing(time_column))?;
    let org = def.on.org.as_ref().and_then(|_| index("org_id"));
    // The activity columns each output row carries after the membership's
    // six, in order: their positions in the activity file.
    let carried: Vec<usize> = (def.columns.iter().skip(6))
        .map(|c| index(&c.csv).ok_or_else(|| missing(&c.csv)))
        .collect::<io::Result<_>>()?;
    let mut valid: HashMap<(&str, &str, &str), Vec<&Row>> = HashMap::new();
    for row in &history.rows {
        let m = &row.membership;
        valid.entry((&m[0], &m[2], &m[1])).or_default().push(row);
    }
    let mut chunk = Vec::with_capacity(crate::load::CHUNK + 4096);
    let names: Vec<&str> = def.columns.iter().map(|c| c.csv.as_str()).collect();
    chunk.extend_from_slice(names.join(",").as_bytes());
    chunk.push(b'\n');
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    while reader
        .read_record(&mut record)
        .map_err(|e| bad(e.to_string()))?
    {
        let at = &record[time];
        let org = match org.map(|i| &record[i]) {
            Some(org) if !org.is_empty() => org,
            _ => "0",
        };
        let Some(memberships) = valid.get(&(&record[cluster], &record[user], org)) else {
            continue;
        };
        for row in memberships {
            let from_ok = row.valid_from.is_empty() || (!at.is_empty() && *row.valid_from <= *at);
            let to_ok = row.valid_to.is_empty() || (!at.is_empty() && *at < *row.valid_to);
            if !(from_ok && to_ok) {
                continue;
            }
            let m = &row.membership;
            let membership = [&record[cluster], &m[1], &m[3], &m[2], &m[4], &m[5]];
            let activity = carried.iter().map(|&at| &record[at]);
            for (i, field) in membership.into_iter().chain(activity).enumerate() {
                if i > 0 {
                    chunk.push(b',');
                }
                push_field(&mut chunk, field);
            }
            chunk.push(b'\n');
            rows += 1;
            if chunk.len() >= crate::load::CHUNK {
                out.write_all(&chunk)?;
                chunk.clear();
            }
        }
    }
    out.write_all(&chunk)?;
    Ok(rows)
}
