//! The tables as CSV: RFC 4180, `,`, header row, LF line ends, UTF-8 without
//! BOM, empty field for a missing value.
//!
//! Tables are streamed to any writer in chunks of about a megabyte, so even
//! a table of millions of rows never sits in memory whole. Membership
//! tables repeat the same few values millions of times, so each cell value
//! is escaped once into an arena and rows are assembled by copying bytes.

use std::io::{self, Write};

use super::{DataOptions, Table};
use crate::model::{Group, Org, Principals, User};

/// Chunk size for streaming rows out.
const CHUNK: usize = 1 << 20;

/// Appends `value` as one CSV field: quoted, with quotes doubled, when it
/// holds a comma, quote, CR or LF; as is otherwise.
pub fn push_field(out: &mut Vec<u8>, value: &str) {
    if value
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.push(b'"');
        for part in value.split_inclusive('"') {
            out.extend_from_slice(part.as_bytes());
            if part.ends_with('"') {
                out.push(b'"');
            }
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

/// Escaped cell values, stored back to back.
#[derive(Default)]
struct Cells {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Cells {
    fn of<'s>(values: impl Iterator<Item = std::borrow::Cow<'s, str>>) -> Self {
        let mut cells = Cells::default();
        for value in values {
            push_field(&mut cells.bytes, &value);
            cells.ends.push(cells.bytes.len());
        }
        cells
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// Rows collected into a chunk that is handed to a writer when full.
struct Rows<'o> {
    chunk: Vec<u8>,
    cluster: Vec<u8>,
    out: &'o mut dyn Write,
    count: usize,
}

impl Rows<'_> {
    /// One row: the cluster id, then `fields`, already escaped.
    fn row(&mut self, fields: &[&[u8]]) -> io::Result<()> {
        self.chunk.extend_from_slice(&self.cluster);
        for field in fields {
            self.chunk.push(b',');
            self.chunk.extend_from_slice(field);
        }
        self.chunk.push(b'\n');
        self.count += 1;
        if self.chunk.len() >= CHUNK {
            self.out.write_all(&self.chunk)?;
            self.chunk.clear();
        }
        Ok(())
    }

    fn finish(self) -> io::Result<usize> {
        self.out.write_all(&self.chunk)?;
        self.out.flush()?;
        Ok(self.count)
    }
}

/// Number of rows `table` has, without rendering it.
pub fn row_count(table: Table, principals: &Principals) -> usize {
    let p = principals;
    let per_org = |g: &Group| g.org_ids.len().max(1);
    match table {
        Table::Orgs => p.orgs.len(),
        Table::Users => p.users.len(),
        Table::OrgMemberships => p.users.iter().map(|u| u.org_ids.len()).sum(),
        Table::Groups => p.groups.iter().map(per_org).sum(),
        Table::GroupPrivileges => p
            .groups
            .iter()
            .map(|g| per_org(g) * g.privileges.len())
            .sum(),
        Table::GroupHierarchy => p.groups.iter().map(|g| per_org(g) * g.parents.len()).sum(),
        Table::GroupMemberships => p
            .effective_memberships()
            .iter()
            .map(|m| per_org(p.group(m.group)))
            .sum(),
    }
}

/// Writes one table, header first, to `out`; returns the number of rows.
pub fn write_table(
    table: Table,
    principals: &Principals,
    options: &DataOptions,
    out: &mut dyn Write,
) -> io::Result<usize> {
    let p = principals;
    let mut header = Vec::new();
    for (i, column) in table.columns().iter().enumerate() {
        if i > 0 {
            header.push(b',');
        }
        push_field(&mut header, column.name);
    }
    header.push(b'\n');
    out.write_all(&header)?;
    let mut cluster = Vec::new();
    push_field(&mut cluster, &options.text(&p.source.cluster_id));
    let org_ids = Cells::of(p.orgs.iter().map(|o| o.id.to_string().into()));
    let org_rank = p.org_rank();
    let rank = |org: &i64| org_rank.get(org).copied().unwrap_or(0) as usize;
    // For each group, the ranks of its orgs: rows are grouped by org.
    let group_orgs: Vec<Vec<usize>> = p
        .groups
        .iter()
        .map(|g| g.org_ids.iter().map(rank).collect())
        .collect();
    if table == Table::GroupMemberships {
        return group_memberships(p, options, cluster, &org_ids, &group_orgs, out);
    }
    let mut rows = Rows {
        chunk: Vec::with_capacity(CHUNK + 4096),
        cluster,
        out,
        count: 0,
    };
    // One escaped cell, for values that are not assembled from `Cells`.
    let cell = |value: &str| {
        let mut bytes = Vec::with_capacity(value.len());
        push_field(&mut bytes, &options.text(value));
        bytes
    };
    let stamp = |millis| options.timestamp(millis).into_bytes();
    // Groups exist per org: (org rank, group) pairs, grouped by org, groups
    // in canonical order within each.
    let groups_by_org = || {
        by_org(
            p.orgs.len(),
            p.groups
                .iter()
                .zip(&group_orgs)
                .flat_map(|(g, orgs)| orgs.iter().map(move |&o| (o, g))),
        )
    };
    match table {
        Table::Orgs => {
            for (i, org) in p.orgs.iter().enumerate() {
                // Every field named (no `..`): a new one must get a column or a reason here.
                let Org {
                    id: _, // written from `org_ids`, escaped once
                    name,
                    description,
                } = org;
                rows.row(&[org_ids.get(i), &cell(name), &cell(description)])?;
            }
        }
        Table::Users => {
            for u in &p.users {
                let User {
                    id,
                    derived_id: _, // recorded in the snapshot, not a column
                    name,
                    display_name,
                    email,
                    visibility,
                    account_type,
                    account_status,
                    created,
                    modified,
                    org_ids: _, // the org_memberships table
                    groups: _,  // the group_memberships table
                } = u;
                rows.row(&[
                    &cell(id),
                    &cell(name),
                    &cell(email),
                    &cell(display_name),
                    &cell(opt(visibility)),
                    &cell(opt(account_type)),
                    &cell(opt(account_status)),
                    &stamp(*created),
                    &stamp(*modified),
                ])?;
            }
        }
        Table::OrgMemberships => {
            let users = Cells::of(p.users.iter().map(|u| options.text(&u.id)));
            let buckets = by_org(
                p.orgs.len(),
                p.users
                    .iter()
                    .enumerate()
                    .flat_map(|(i, u)| u.org_ids.iter().map(move |o| (rank(o), i))),
            );
            for (org, members) in buckets.iter().enumerate() {
                for &u in members {
                    rows.row(&[users.get(u), org_ids.get(org)])?;
                }
            }
        }
        Table::Groups => {
            for (org, groups) in groups_by_org().iter().enumerate() {
                for g in groups {
                    let Group {
                        id,
                        derived_id: _, // recorded in the snapshot, not a column
                        name,
                        display_name,
                        description,
                        group_type,
                        visibility,
                        created,
                        modified,
                        org_ids: _,    // one row per org, grouped above
                        parents: _,    // the group_hierarchy table
                        privileges: _, // the group_privileges table
                    } = g;
                    rows.row(&[
                        org_ids.get(org),
                        &cell(id),
                        &cell(name),
                        &cell(display_name),
                        &cell(description),
                        &cell(opt(visibility)),
                        &cell(opt(group_type)),
                        &stamp(*created),
                        &stamp(*modified),
                    ])?;
                }
            }
        }
        Table::GroupPrivileges => {
            for (org, groups) in groups_by_org().iter().enumerate() {
                for g in groups {
                    let id = cell(&g.id);
                    for privilege in &g.privileges {
                        rows.row(&[org_ids.get(org), &id, &cell(privilege)])?;
                    }
                }
            }
        }
        Table::GroupHierarchy => {
            for (org, groups) in groups_by_org().iter().enumerate() {
                for g in groups {
                    let id = cell(&g.id);
                    for &parent in &g.parents {
                        rows.row(&[org_ids.get(org), &id, &cell(&p.group(parent).id)])?;
                    }
                }
            }
        }
        Table::GroupMemberships => {}
    }
    rows.finish()
}

/// The effective membership table, by far the largest. Rows are ordered by
/// org, then (user, group), and assembled from pre-escaped cells. (An
/// assembler thread beside the writer saved 6% of the benchmark's generate
/// time, under the 10% a hand-rolled piece must buy; examples/bench.rs.)
fn group_memberships(
    p: &Principals,
    options: &DataOptions,
    cluster: Vec<u8>,
    orgs: &Cells,
    group_orgs: &[Vec<usize>],
    out: &mut dyn Write,
) -> io::Result<usize> {
    let users = Cells::of(p.users.iter().map(|u| options.text(&u.id)));
    let groups = Cells::of(p.groups.iter().map(|g| options.text(&g.id)));
    let memberships = p.effective_memberships();
    // Membership indices grouped by org (a counting sort, so stable).
    let mut starts = vec![0usize; orgs.ends.len().max(1) + 1];
    for m in memberships {
        for &org in &group_orgs[m.group.get()] {
            starts[org + 1] += 1;
        }
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut order = vec![0u32; starts[starts.len() - 1]];
    let mut next = starts.clone();
    for (i, m) in memberships.iter().enumerate() {
        for &org in &group_orgs[m.group.get()] {
            order[next[org]] = i as u32;
            next[org] += 1;
        }
    }
    let mut rows = Rows {
        chunk: Vec::with_capacity(CHUNK + 4096),
        cluster,
        out,
        count: 0,
    };
    let mut depth = itoa::Buffer::new();
    for org in 0..starts.len() - 1 {
        for &i in &order[starts[org]..starts[org + 1]] {
            let m = &memberships[i as usize];
            let direct: &[u8] = if m.is_direct() { b"true" } else { b"false" };
            rows.row(&[
                orgs.get(org),
                users.get(m.user as usize),
                groups.get(m.group.get()),
                direct,
                depth.format(m.depth).as_bytes(),
            ])?;
        }
    }
    rows.finish()
}

fn opt<T: AsRef<str>>(value: &Option<T>) -> &str {
    value.as_ref().map_or("", |v| v.as_ref())
}

/// Groups rows by org rank, keeping their order within each org (a
/// counting sort, so ordering by org costs linear time).
fn by_org<T>(orgs: usize, rows: impl Iterator<Item = (usize, T)>) -> Vec<Vec<T>> {
    let mut buckets: Vec<Vec<T>> = (0..orgs.max(1)).map(|_| Vec::new()).collect();
    let last = buckets.len() - 1;
    for (rank, row) in rows {
        buckets[rank.min(last)].push(row);
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let field = |v: &str| {
            let mut out = Vec::new();
            push_field(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(field("plain text"), "plain text");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("cr\r"), "\"cr\r\"");
        assert_eq!(field("\""), "\"\"\"\"");
    }

    proptest::proptest! {
        #[test]
        fn any_field_reads_back_with_a_csv_reader(value in proptest::prelude::any::<String>()) {
            let mut line = b"x,".to_vec();
            push_field(&mut line, &value);
            line.extend_from_slice(b",y\n");
            let mut reader = ::csv::ReaderBuilder::new().has_headers(false).from_reader(&line[..]);
            let record = reader.records().next().expect("a record").expect("valid CSV");
            proptest::prop_assert_eq!(record.len(), 3);
            proptest::prop_assert_eq!(&record[1], value.as_str());
        }
    }

    /// A writer that fails after a few bytes, like a full disk.
    struct Full(usize);

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_surface() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/fixtures/v2_combined.json"
        );
        let bytes = std::fs::read(path).unwrap();
        let loaded = crate::input::load_bytes("v2.json", &bytes, &Default::default()).unwrap();
        for table in Table::ALL {
            let err = write_table(
                table,
                &loaded.principals,
                &DataOptions::default(),
                &mut Full(10),
            );
            assert!(err.is_err(), "{table:?}");
        }
    }
}
