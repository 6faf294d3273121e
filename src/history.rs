//! Membership history, `group_memberships_history` (SCD type 2, DESIGN §6):
//! every effective membership with the time it began (`valid_from`) and
//! ended (`valid_to`, empty while it lasts), so activity is attributed to
//! the groups a user was in when it happened.
//!
//! A generation advances the history it is given with the memberships of
//! its snapshot, stamped with the snapshot's time ([`as_of`]): open rows
//! that the snapshot no longer has are closed, memberships it has that no
//! open row holds are opened. The first snapshot's rows have no
//! `valid_from` (held since before history began). The same snapshot again
//! changes nothing, and the output is sorted, so the same inputs give the
//! same bytes. An output directory holds one cluster: a history of another
//! cluster is not carried into it.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::generate::DATA_DIR;
use crate::model::Principals;
use crate::schema::attribution::{HISTORY, history_columns};
use crate::sink::DataOptions;
use crate::sink::csv::push_field;

/// The history's file name in `OUT/data`.
pub fn file_name() -> String {
    format!("{HISTORY}.csv")
}

/// One membership: cluster_id, org_id, user_guid, group_guid, is_direct,
/// depth, as the data files write them.
pub type Membership = [Box<str>; 6];

/// One history row: a [`Membership`], then valid_from and valid_to
/// (`YYYY-MM-DD HH:MM:SS` UTC, or empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The membership.
    pub membership: Membership,
    /// When it began; empty when held since before history began.
    pub valid_from: Box<str>,
    /// When it ended; empty while it lasts.
    pub valid_to: Box<str>,
}

/// Why a history cannot be read or advanced.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A record is not a history row.
    #[error(
        "{path}, line {line}: {problem}; the history was changed since ts-principals wrote \
         it: restore it (git checkout)"
    )]
    Record {
        /// The file.
        path: PathBuf,
        /// The line the record starts on.
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// The rows contradict each other.
    #[error(
        "{path}: {problem}; the history was changed since ts-principals wrote it: restore it (git checkout)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The file is not what its manifest records.
    #[error(
        "{path} is not what {dir}/manifest.json records ({what} differs): it was changed \
         since ts-principals wrote it; restore it (git checkout) rather than editing history"
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// Its output directory.
        dir: String,
        /// What differs.
        what: &'static str,
    },
    /// The manifest lists a history file that is gone.
    #[error(
        "{path} is gone, but the manifest beside it lists it: the membership history would \
         start again; restore it (git checkout), or generate into a new directory to start \
         a new history"
    )]
    Gone {
        /// The file.
        path: PathBuf,
    },
    /// A time in the future.
    #[error(
        "{what} {text} is in the future (now is {now} UTC); the membership history would \
         refuse every real snapshot after it: give the time the principals were taken"
    )]
    Future {
        /// Where it came from.
        what: &'static str,
        /// The time.
        text: String,
        /// Now.
        now: String,
    },
    /// `--history` names a directory without memberships to start from.
    #[error(
        "--history {dir}: it holds neither {DATA_DIR}/{HISTORY}.csv nor \
         {DATA_DIR}/group_memberships.csv; name the output directory of an earlier \
         `ts-principals generate`"
    )]
    NoPrior {
        /// The directory.
        dir: String,
    },
    /// The snapshot is older than what the history already records.
    #[error(
        "the principals are as of {as_of} UTC, but the membership history of cluster \
         {cluster} ({path}) already records a change at {latest} UTC; history cannot run \
         backwards: generate from a newer snapshot, or say when these principals were taken \
         with --as-of"
    )]
    Backwards {
        /// The history file.
        path: String,
        /// The cluster.
        cluster: String,
        /// The snapshot's time.
        as_of: String,
        /// The latest change recorded.
        latest: String,
    },
    /// `--as-of` or the snapshot's `fetched_at` is not a time.
    #[error("{what} {text:?} is not a time; write it as 2026-12-01T10:00:00Z or 2026-12-01")]
    BadTime {
        /// Where it came from.
        what: &'static str,
        /// The text.
        text: String,
    },
}

/// The time a snapshot describes, as history stamps it
/// (`YYYY-MM-DD HH:MM:SS` UTC): `--as-of` when given, else the snapshot's
/// `fetched_at`; none when neither is known.
pub fn as_of(flag: Option<&str>, fetched_at: Option<&str>) -> Result<Option<String>, HistoryError> {
    let (what, text) = match (flag, fetched_at) {
        (Some(text), _) => ("--as-of", text),
        (None, Some(text)) => ("the input's fetched_at", text),
        (None, None) => return Ok(None),
    };
    let bad = || HistoryError::BadTime {
        what,
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    let second = if let Ok(t) = trimmed.parse::<jiff::Timestamp>() {
        t.as_second()
    } else if let Ok(t) = trimmed.parse::<jiff::civil::DateTime>() {
        t.to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|_| bad())?
            .timestamp()
            .as_second()
    } else if let Ok(d) = trimmed.parse::<jiff::civil::Date>() {
        (d.to_zoned(jiff::tz::TimeZone::UTC).map_err(|_| bad())?)
            .timestamp()
            .as_second()
    } else {
        return Err(bad());
    };
    let now = jiff::Timestamp::now().as_second();
    if second > now + 3600 {
        return Err(HistoryError::Future {
            what,
            text: text.to_owned(),
            now: crate::activity::window::utc_text(now),
        });
    }
    Ok(Some(crate::activity::window::utc_text(second)))
}

/// The effective memberships of `principals`, as `group_memberships.csv`
/// writes them (one per org the group is in).
pub fn memberships(principals: &Principals, options: &DataOptions) -> Vec<Membership> {
    let p = principals;
    let text = |value: &str| Box::<str>::from(options.text(value));
    let cluster = text(&p.source.cluster_id);
    let users: Vec<Box<str>> = p.users.iter().map(|u| text(&u.id)).collect();
    let groups: Vec<Box<str>> = p.groups.iter().map(|g| text(&g.id)).collect();
    let mut out = Vec::new();
    for m in p.effective_memberships() {
        let group = p.group(m.group);
        let orgs: &[i64] = if group.org_ids.is_empty() {
            &[crate::model::PRIMARY_ORG_ID]
        } else {
            &group.org_ids
        };
        for org in orgs {
            out.push([
                cluster.clone(),
                org.to_string().into(),
                users[m.user as usize].clone(),
                groups[m.group.get()].clone(),
                (if m.is_direct() { "true" } else { "false" }).into(),
                m.depth.to_string().into(),
            ]);
        }
    }
    out
}

/// A membership history: its rows, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The rows, in output order.
    pub rows: Vec<Row>,
}

/// What advancing a history changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Memberships opened.
    pub opened: usize,
    /// Memberships closed.
    pub closed: usize,
    /// Rows of other clusters left out.
    pub dropped: usize,
}

impl History {
    /// The history of a first snapshot: every membership open, without a
    /// start (held since before history began).
    pub fn first(memberships: Vec<Membership>) -> Self {
        let mut history = History {
            rows: (memberships.into_iter())
                .map(|membership| Row {
                    membership,
                    valid_from: "".into(),
                    valid_to: "".into(),
                })
                .collect(),
        };
        history.sort();
        history
    }

    /// The history an earlier output directory holds, checked against its
    /// manifest: its `group_memberships_history.csv`, or, for an output
    /// written before history was kept, its `group_memberships.csv` as a
    /// first snapshot; with the time and cluster its manifest records.
    /// None when it holds neither; an error when the manifest lists a
    /// history file that is gone.
    pub fn read_prior(dir: &Path) -> Result<Option<Prior>, HistoryError> {
        let recorded = Recorded::of(dir);
        let data = dir.join(DATA_DIR);
        let relative = format!("{DATA_DIR}/{}", file_name());
        let history = data.join(file_name());
        let (path, relative, dated) = if history.is_file() {
            (history, relative, true)
        } else if recorded.files.contains_key(&relative) {
            return Err(HistoryError::Gone { path: history });
        } else {
            let memberships = data.join("group_memberships.csv");
            if !memberships.is_file() {
                return Ok(None);
            }
            (
                memberships,
                format!("{DATA_DIR}/group_memberships.csv"),
                false,
            )
        };
        recorded.check(dir, &relative)?;
        Ok(Some(Prior {
            history: Self::read(&path, dated)?,
            cluster: recorded.cluster_id,
            as_of: recorded.as_of,
        }))
    }

    /// Reads a history file (or, without `dated`, a `group_memberships`
    /// file as a first snapshot), checking every record.
    pub fn read(path: &Path, dated: bool) -> Result<Self, HistoryError> {
        let file = std::fs::File::open(path).map_err(|source| HistoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(io::BufReader::with_capacity(crate::load::CHUNK, file));
        let width = if dated { 8 } else { 6 };
        let expected: Vec<&str> = history_columns()[..width].iter().map(|c| c.name).collect();
        let mut record = csv::StringRecord::new();
        let mut rows = Vec::new();
        let mut first = true;
        loop {
            let line = reader.position().line();
            let bad = |problem: String| HistoryError::Record {
                path: path.to_path_buf(),
                line,
                problem,
            };
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(bad(e.to_string())),
            }
            if first {
                first = false;
                if record.iter().ne(expected.iter().copied()) {
                    return Err(bad(format!(
                        "the header is {:?}, expected {:?}",
                        record.iter().collect::<Vec<_>>().join(","),
                        expected.join(",")
                    )));
                }
                continue;
            }
            if record.len() != width {
                return Err(bad(format!("{} fields, expected {width}", record.len())));
            }
            let field = |i: usize| Box::<str>::from(&record[i]);
            if record[1].parse::<i64>().is_err() {
                return Err(bad(format!("org_id {:?} is not a number", &record[1])));
            }
            if !matches!(&record[4], "true" | "false") {
                return Err(bad(format!(
                    "is_direct {:?} is not true or false",
                    &record[4]
                )));
            }
            if record[5].parse::<u32>().is_err() {
                return Err(bad(format!("depth {:?} is not a number", &record[5])));
            }
            let (valid_from, valid_to) = if dated {
                for i in [6, 7] {
                    if !record[i].is_empty() && !is_stamp(&record[i]) {
                        return Err(bad(format!(
                            "{} {:?} is not a time YYYY-MM-DD HH:MM:SS",
                            expected[i], &record[i]
                        )));
                    }
                }
                if !record[6].is_empty() && !record[7].is_empty() && record[7] < record[6] {
                    return Err(bad("valid_to is before valid_from".into()));
                }
                (field(6), field(7))
            } else {
                ("".into(), "".into())
            };
            rows.push(Row {
                membership: [field(0), field(1), field(2), field(3), field(4), field(5)],
                valid_from,
                valid_to,
            });
        }
        let mut history = History { rows };
        history.sort();
        // Two open rows of one membership would attribute its activity twice.
        let mut open = std::collections::HashSet::new();
        for row in history.rows.iter().filter(|r| r.valid_to.is_empty()) {
            if !open.insert(&row.membership) {
                let m = &row.membership;
                return Err(HistoryError::Invalid {
                    path: path.to_path_buf(),
                    problem: format!(
                        "the membership of user {} in group {} (org {}) is open twice",
                        m[2], m[3], m[1]
                    ),
                });
            }
        }
        drop(open);
        Ok(history)
    }

    /// The latest change recorded for `cluster`: the newest `valid_from` or
    /// `valid_to`.
    pub fn latest(&self, cluster: &str) -> Option<&str> {
        (self.rows.iter())
            .filter(|r| &*r.membership[0] == cluster)
            .flat_map(|r| [&*r.valid_from, &*r.valid_to])
            .filter(|t| !t.is_empty())
            .max()
    }

    /// Advances the history of `cluster` to `memberships`, stamping what
    /// changed with `as_of`: open rows the memberships lack are closed, and
    /// memberships no open row holds are opened. `after` is the time the
    /// history is already of (its directory's manifest): neither it nor
    /// the latest change may be newer than `as_of`. `path` names the history
    /// in an error. An output holds one cluster, so rows of other clusters
    /// are left out (and counted); a history without rows of `cluster`
    /// starts afresh, as a first snapshot.
    pub fn advance(
        mut self,
        cluster: &str,
        memberships: Vec<Membership>,
        (as_of, after): (&str, Option<&str>),
        path: &str,
    ) -> Result<(Self, Changes), HistoryError> {
        let latest = self.latest(cluster).max(after);
        if let Some(latest) = latest.filter(|latest| *latest > as_of) {
            return Err(HistoryError::Backwards {
                path: path.to_owned(),
                cluster: cluster.to_owned(),
                as_of: as_of.to_owned(),
                latest: latest.to_owned(),
            });
        }
        let before = self.rows.len();
        self.rows.retain(|r| &*r.membership[0] == cluster);
        let dropped = before - self.rows.len();
        if self.rows.is_empty() {
            let first = History::first(memberships);
            let changes = Changes {
                dropped,
                ..Changes::default()
            };
            return Ok((first, changes));
        }
        let mut open: HashMap<&Membership, usize> = HashMap::new();
        for (i, row) in self.rows.iter().enumerate() {
            if row.valid_to.is_empty() {
                open.insert(&row.membership, i);
            }
        }
        let mut still = vec![false; self.rows.len()];
        let mut opened = Vec::new();
        for membership in memberships {
            match open.get(&membership) {
                Some(&i) => still[i] = true,
                None => opened.push(membership),
            }
        }
        drop(open);
        let mut changes = Changes {
            opened: opened.len(),
            closed: 0,
            dropped,
        };
        for (row, still) in self.rows.iter_mut().zip(still) {
            if !still && row.valid_to.is_empty() {
                row.valid_to = as_of.into();
                changes.closed += 1;
            }
        }
        self.rows.extend(opened.into_iter().map(|membership| Row {
            membership,
            valid_from: as_of.into(),
            valid_to: "".into(),
        }));
        self.sort();
        Ok((self, changes))
    }

    /// Orders the rows by cluster, org (as a number), user, group, then
    /// time, so the same history always gives the same bytes.
    fn sort(&mut self) {
        self.rows.sort_by(|a, b| {
            let (x, y) = (&a.membership, &b.membership);
            (x[0].cmp(&y[0]))
                .then_with(|| org_number(&x[1]).cmp(&org_number(&y[1])))
                .then_with(|| x[1..].cmp(&y[1..]))
                .then_with(|| a.valid_from.cmp(&b.valid_from))
                .then_with(|| a.valid_to.is_empty().cmp(&b.valid_to.is_empty()))
                .then_with(|| a.valid_to.cmp(&b.valid_to))
        });
    }

    /// Writes the history as CSV, header first; returns the data rows.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<usize> {
        let mut chunk = Vec::with_capacity(crate::load::CHUNK + 4096);
        let header: Vec<&str> = history_columns().iter().map(|c| c.name).collect();
        chunk.extend_from_slice(header.join(",").as_bytes());
        chunk.push(b'\n');
        for row in &self.rows {
            for (i, field) in (row.membership.iter())
                .chain([&row.valid_from, &row.valid_to])
                .enumerate()
            {
                if i > 0 {
                    chunk.push(b',');
                }
                push_field(&mut chunk, field);
            }
            chunk.push(b'\n');
            if chunk.len() >= crate::load::CHUNK {
                out.write_all(&chunk)?;
                chunk.clear();
            }
        }
        out.write_all(&chunk)?;
        Ok(self.rows.len())
    }
}

fn org_number(text: &str) -> i64 {
    text.parse().unwrap_or(i64::MAX)
}

/// Whether `text` is a time as the history writes it: `YYYY-MM-DD HH:MM:SS`.
pub fn is_stamp(text: &str) -> bool {
    text.len() == 19 && text.parse::<jiff::civil::DateTime>().is_ok() && text.as_bytes()[10] == b' '
}

/// What an output directory's manifest says of the principals and files.
#[derive(Debug, Default)]
pub struct Recorded {
    /// `input.cluster_id`.
    pub cluster_id: Option<String>,
    /// `input.as_of`.
    pub as_of: Option<String>,
    files: BTreeMap<String, serde_json::Value>,
}

impl Recorded {
    /// The manifest of `dir`; empty when it has none or it cannot be read
    /// (a history is then taken as it is).
    pub fn of(dir: &Path) -> Self {
        #[derive(serde::Deserialize, Default)]
        struct Input {
            cluster_id: Option<String>,
            as_of: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Manifest {
            #[serde(default)]
            input: Option<Input>,
            #[serde(default)]
            files: BTreeMap<String, serde_json::Value>,
        }
        let manifest = std::fs::read(dir.join(crate::output::MANIFEST))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok());
        match manifest {
            Some(m) => {
                let input = m.input.unwrap_or_default();
                Recorded {
                    cluster_id: input.cluster_id,
                    as_of: input.as_of.filter(|t| is_stamp(t)),
                    files: m.files,
                }
            }
            None => Recorded::default(),
        }
    }

    /// Checks the file at `relative` in `dir` against what the manifest
    /// records of it, when it records it.
    fn check(&self, dir: &Path, relative: &str) -> Result<(), HistoryError> {
        let Some(entry) = self.files.get(relative) else {
            return Ok(());
        };
        let path = dir.join(relative);
        let sha256 = entry.get("sha256").and_then(|v| v.as_str());
        let rows = entry.get("rows").and_then(|v| v.as_u64());
        let differs = crate::load::differs_from_record(&path, sha256, rows).map_err(|source| {
            HistoryError::Io {
                path: path.clone(),
                source,
            }
        })?;
        if let Some(what) = differs {
            return Err(HistoryError::Changed {
                path,
                dir: dir.display().to_string(),
                what,
            });
        }
        Ok(())
    }
}

/// A history read from an earlier output directory, with what its
/// manifest records.
#[derive(Debug)]
pub struct Prior {
    /// The history.
    pub history: History,
    /// The cluster the directory holds.
    pub cluster: Option<String>,
    /// The time its principals are of: a newer snapshot must not be older.
    pub as_of: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(user: &str, group: &str, depth: u32) -> Membership {
        [
            "c".into(),
            "0".into(),
            user.into(),
            group.into(),
            (if depth == 0 { "true" } else { "false" }).into(),
            depth.to_string().into(),
        ]
    }

    fn text(history: &History) -> String {
        let mut out = Vec::new();
        history.write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_sequence_of_snapshots_opens_closes_and_reopens() {
        let first = History::first(vec![m("u1", "g1", 0), m("u2", "g1", 0)]);
        assert_eq!(
            first
                .rows
                .iter()
                .filter(|r| r.valid_from.is_empty())
                .count(),
            2
        );
        // The same snapshot again changes nothing.
        let (same, changes) = (first.clone())
            .advance(
                "c",
                vec![m("u2", "g1", 0), m("u1", "g1", 0)],
                ("2026-01-01 00:00:00", None),
                "h",
            )
            .unwrap();
        assert_eq!(same, first);
        assert_eq!(changes, Changes::default());
        // u2 leaves g1, u1 joins g2.
        let (second, changes) = (first.clone())
            .advance(
                "c",
                vec![m("u1", "g1", 0), m("u1", "g2", 0)],
                ("2026-01-02 00:00:00", None),
                "h",
            )
            .unwrap();
        assert_eq!((changes.opened, changes.closed), (1, 1));
        // u2 comes back: a new row, the closed one kept.
        let (third, changes) = (second.clone())
            .advance(
                "c",
                vec![m("u1", "g1", 0), m("u1", "g2", 0), m("u2", "g1", 0)],
                ("2026-01-03 00:00:00", None),
                "h",
            )
            .unwrap();
        assert_eq!((changes.opened, changes.closed), (1, 0));
        assert_eq!(
            text(&third),
            "cluster_id,org_id,user_guid,group_guid,is_direct,depth,valid_from,valid_to\n\
             c,0,u1,g1,true,0,,\n\
             c,0,u1,g2,true,0,2026-01-02 00:00:00,\n\
             c,0,u2,g1,true,0,,2026-01-02 00:00:00\n\
             c,0,u2,g1,true,0,2026-01-03 00:00:00,\n"
        );
        // A deleted user closes every row; a nested membership becoming
        // direct is a new version.
        let (fourth, changes) = (third.clone())
            .advance(
                "c",
                vec![m("u1", "g1", 1)],
                ("2026-01-04 00:00:00", None),
                "h",
            )
            .unwrap();
        assert_eq!((changes.opened, changes.closed), (1, 3));
        assert_eq!(
            fourth.rows.iter().filter(|r| r.valid_to.is_empty()).count(),
            1
        );
        // Nor before the time the history is of, though the first snapshot
        // has no stamps.
        let error = (first.clone())
            .advance(
                "c",
                vec![],
                ("2025-12-31 00:00:00", Some("2026-01-01 00:00:00")),
                "h",
            )
            .unwrap_err();
        assert!(error.to_string().contains("2026-01-01 00:00:00"), "{error}");
        // History does not run backwards.
        let error = (fourth.clone())
            .advance("c", vec![], ("2026-01-03 12:00:00", None), "h")
            .unwrap_err();
        assert!(error.to_string().contains("2026-01-04 00:00:00"), "{error}");
        // Another cluster starts afresh; the first cluster's rows are not
        // carried into its output.
        let (other, changes) = (fourth.clone())
            .advance(
                "d",
                vec![m("u9", "g9", 0)],
                ("2025-01-01 00:00:00", None),
                "h",
            )
            .unwrap();
        assert_eq!(changes.dropped, fourth.rows.len());
        assert_eq!(other.rows.len(), 1);
        assert_eq!(&*other.rows[0].valid_from, "");
    }

    #[test]
    fn written_history_reads_back_and_bad_records_are_named() {
        let (history, _) = History::first(vec![m("u1", "g1", 0), m("u2, \"x\"", "g1", 0)])
            .advance(
                "c",
                vec![m("u1", "g1", 0)],
                ("2026-01-02 00:00:00", None),
                "h",
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv");
        std::fs::write(&path, text(&history)).unwrap();
        assert_eq!(History::read(&path, true).unwrap(), history);
        let bad = text(&history).replace("2026-01-02 00:00:00", "yesterday");
        std::fs::write(&path, bad).unwrap();
        let error = History::read(&path, true).unwrap_err().to_string();
        assert!(
            error.contains("line 3") && error.contains("yesterday"),
            "{error}"
        );
    }

    #[test]
    fn as_of_takes_the_flag_then_the_snapshot_time() {
        assert_eq!(
            as_of(None, Some("2026-11-22T10:00:00Z"))
                .unwrap()
                .as_deref(),
            Some("2026-11-22 10:00:00")
        );
        assert_eq!(
            as_of(Some("2026-12-01"), Some("2026-11-22T10:00:00Z"))
                .unwrap()
                .as_deref(),
            Some("2026-12-01 00:00:00")
        );
        assert_eq!(as_of(None, None).unwrap(), None);
        assert!(as_of(Some("soon"), None).is_err());
        let future = as_of(Some("2999-01-01"), None).unwrap_err().to_string();
        assert!(future.contains("in the future"), "{future}");
    }
}
