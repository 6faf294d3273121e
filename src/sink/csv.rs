//! The tables as CSV: RFC 4180, `,`, header row, LF line ends, UTF-8 without
//! BOM, empty field for a missing value.

use std::io::{self, Write};

use super::{DataOptions, Table};
use crate::model::Principals;

/// One rendered table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvTable {
    /// Which table.
    pub table: Table,
    /// The CSV bytes, header included.
    pub bytes: Vec<u8>,
    /// Data rows (header excluded).
    pub rows: usize,
}

impl CsvTable {
    /// File name: `<table>.csv`.
    pub fn file_name(&self) -> String {
        format!("{}.csv", self.table.name())
    }
}

/// Renders every table, several at a time.
pub fn render_all(principals: &Principals, options: &DataOptions) -> Vec<CsvTable> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = Table::ALL
            .iter()
            .map(|&table| {
                scope.spawn(move || {
                    let mut bytes = Vec::new();
                    let rows = write_table(table, principals, options, &mut bytes)
                        .expect("writing to memory cannot fail");
                    CsvTable { table, bytes, rows }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// Writes one table to `out`, returning the number of data rows.
pub fn write_table<W: Write>(
    table: Table,
    principals: &Principals,
    options: &DataOptions,
    out: W,
) -> io::Result<usize> {
    let mut w = Rows {
        csv: csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(out),
        count: 0,
    };
    w.csv.write_record(table.columns())?;
    let p = principals;
    let text = |value| options.text(value);
    let cluster = text(&p.source.cluster_id);
    let org_rank = p.org_rank();
    let rank = |org: &i64| org_rank.get(org).copied().unwrap_or(0) as usize;
    // Groups exist per org: one (group, org) pair per org the group is in.
    let groups_by_org = || {
        by_org(
            p.orgs.len(),
            p.groups
                .iter()
                .flat_map(|g| g.org_ids.iter().map(move |o| (rank(o), (g, num(*o))))),
        )
        .into_iter()
        .flatten()
    };
    match table {
        Table::Orgs => {
            for org in &p.orgs {
                w.row([&cluster, &num(org.id), &text(&org.name), &text(&org.description)])?;
            }
        }
        Table::Users => {
            for u in &p.users {
                w.row([
                    &cluster,
                    &text(&u.id),
                    &text(&u.name),
                    &text(&u.email),
                    &text(&u.display_name),
                    &text(opt(&u.visibility)),
                    &text(opt(&u.account_type)),
                    &text(opt(&u.account_status)),
                    &options.timestamp(u.created),
                    &options.timestamp(u.modified),
                ])?;
            }
        }
        Table::OrgMemberships => {
            let rows = by_org(
                p.orgs.len(),
                p.users
                    .iter()
                    .flat_map(|u| u.org_ids.iter().map(move |o| (rank(o), (u, *o)))),
            );
            for (u, org) in rows.into_iter().flatten() {
                w.row([&cluster, &text(&u.id), &num(org)])?;
            }
        }
        Table::Groups => {
            for (g, org) in groups_by_org() {
                w.row([
                    &cluster,
                    &org,
                    &text(&g.id),
                    &text(&g.name),
                    &text(&g.display_name),
                    &text(&g.description),
                    &text(opt(&g.visibility)),
                    &text(opt(&g.group_type)),
                    &options.timestamp(g.created),
                    &options.timestamp(g.modified),
                ])?;
            }
        }
        Table::GroupPrivileges => {
            for (g, org) in groups_by_org() {
                let id = text(&g.id);
                for privilege in &g.privileges {
                    w.row([&cluster, &org, &id, &text(privilege)])?;
                }
            }
        }
        Table::GroupMemberships => {
            let org_ids: Vec<String> = p.orgs.iter().map(|o| num(o.id)).collect();
            let user_ids: Vec<_> = p.users.iter().map(|u| text(&u.id)).collect();
            let group_ids: Vec<_> = p.groups.iter().map(|g| text(&g.id)).collect();
            let rows = by_org(
                p.orgs.len(),
                p.effective_memberships()
                    .iter()
                    .flat_map(|m| p.group(m.group).org_ids.iter().map(move |o| (rank(o), m))),
            );
            let mut depth = itoa::Buffer::new();
            for (org, members) in org_ids.iter().zip(&rows) {
                for m in members {
                    w.row([
                        &cluster,
                        org,
                        &user_ids[m.user as usize],
                        &group_ids[m.group.get()],
                        if m.is_direct() { "true" } else { "false" },
                        depth.format(m.depth),
                    ])?;
                }
            }
        }
        Table::GroupHierarchy => {
            for (g, org) in groups_by_org() {
                let id = text(&g.id);
                for &parent in &g.parents {
                    w.row([&cluster, &org, &id, &text(&p.group(parent).id)])?;
                }
            }
        }
    }
    w.csv.flush()?;
    Ok(w.count)
}

/// A CSV writer that counts rows.
struct Rows<W: Write> {
    csv: csv::Writer<W>,
    count: usize,
}

impl<W: Write> Rows<W> {
    fn row<const N: usize>(&mut self, fields: [&str; N]) -> io::Result<()> {
        self.csv.write_record(fields)?;
        self.count += 1;
        Ok(())
    }
}

fn num(n: i64) -> String {
    itoa::Buffer::new().format(n).to_owned()
}

fn opt<T: AsRef<str>>(value: &Option<T>) -> &str {
    value.as_ref().map_or("", |v| v.as_ref())
}

/// Groups rows by org rank, keeping their order within each org (a
/// counting sort, so ordering by org costs linear time).
fn by_org<T>(orgs: usize, rows: impl Iterator<Item = (usize, T)>) -> Vec<Vec<T>> {
    let mut buckets: Vec<Vec<T>> = (0..orgs.max(1)).map(|_| Vec::new()).collect();
    for (rank, row) in rows {
        let last = buckets.len() - 1;
        buckets[rank.min(last)].push(row);
    }
    buckets
}
