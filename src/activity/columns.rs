//! The columns of an activity worksheet, as the cluster describes them
//! (`metadata/search` with `include_details`), turned into data columns:
//! snake-case names, the data's types.

use crate::schema::ColumnType;
pub use crate::schema::activity::{ActivityColumn, CLUSTER_ID};

/// A column as the worksheet lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorksheetColumn {
    /// Its name.
    pub name: String,
    /// `dataType`: VARCHAR, INT64, DOUBLE, DATE_TIME, …
    pub data_type: String,
    /// `type`: ATTRIBUTE or MEASURE.
    pub kind: String,
}

/// The data's type for a worksheet `dataType`. Impressions are DOUBLE
/// whatever the worksheet says (a liveboard view counts a fraction).
pub fn column_type(name: &str, data_type: &str) -> ColumnType {
    if name.eq_ignore_ascii_case("impressions") {
        return ColumnType::Double;
    }
    match data_type.to_ascii_uppercase().as_str() {
        "INT64" | "INT32" | "INT" | "INTEGER" | "BIGINT" => ColumnType::Bigint,
        "DOUBLE" | "FLOAT" | "DECIMAL" | "NUMBER" => ColumnType::Double,
        "BOOL" | "BOOLEAN" => ColumnType::Boolean,
        "DATE_TIME" | "DATE" | "TIMESTAMP" | "DATETIME" => ColumnType::Timestamp,
        _ => ColumnType::Text,
    }
}

/// `Latency (us)` → `latency_us`: ASCII letters and digits kept (lower
/// case), every other run of characters one `_`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "c_");
    }
    out
}

/// The data columns for a worksheet's columns, in its order. Names are
/// made unique (`_2`, `_3`, …), `cluster_id` being taken.
pub fn data_columns(columns: &[WorksheetColumn]) -> Vec<ActivityColumn> {
    let mut taken = vec![CLUSTER_ID.to_owned()];
    let mut out = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let mut base = snake_case(&column.name);
        if base.is_empty() {
            base = format!("column_{}", i + 1);
        }
        let mut csv = base.clone();
        let mut n = 2;
        while taken.contains(&csv) {
            csv = format!("{base}_{n}");
            n += 1;
        }
        taken.push(csv.clone());
        out.push(ActivityColumn {
            name: column.name.clone(),
            csv,
            ty: column_type(&column.name, &column.data_type),
            measure: column.kind.eq_ignore_ascii_case("MEASURE"),
        });
    }
    out
}

/// Prefixes searches put before an aggregated measure's name.
const AGGREGATES: &[&str] = &[
    "total ",
    "average ",
    "sum of ",
    "unique number of ",
    "unique count of ",
    "count of ",
    "max ",
    "min ",
    "minimum ",
    "maximum ",
];

/// Which of `columns` a search result's column named `returned` is:
/// the same name (ignoring case), or an aggregate of a measure
/// (`Total Impressions`).
pub fn match_returned(columns: &[ActivityColumn], returned: &str) -> Option<usize> {
    let returned = returned.trim();
    if let Some(i) = (columns.iter()).position(|c| c.name == returned) {
        return Some(i);
    }
    if let Some(i) = (columns.iter()).position(|c| c.name.eq_ignore_ascii_case(returned)) {
        return Some(i);
    }
    let lower = returned.to_lowercase();
    AGGREGATES.iter().find_map(|prefix| {
        let rest = lower.strip_prefix(prefix)?;
        (columns.iter()).position(|c| c.measure && c.name.to_lowercase() == rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(name: &str, data_type: &str, kind: &str) -> WorksheetColumn {
        WorksheetColumn {
            name: name.into(),
            data_type: data_type.into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn names_become_snake_case() {
        assert_eq!(snake_case("Latency (us)"), "latency_us");
        assert_eq!(
            snake_case("Query Latency (External)"),
            "query_latency_external"
        );
        assert_eq!(snake_case("Answer Book GUID"), "answer_book_guid");
        assert_eq!(snake_case("TS Query Start Time"), "ts_query_start_time");
        assert_eq!(snake_case("User ID"), "user_id");
        assert_eq!(snake_case("  --Org--  "), "org");
        assert_eq!(snake_case("1st Seen"), "c_1st_seen");
        assert_eq!(snake_case("Größe"), "gr_e");
    }

    #[test]
    fn columns_keep_order_types_and_unique_names() {
        let columns = data_columns(&[
            ws("Incident Id", "VARCHAR", "ATTRIBUTE"),
            ws("Timestamp", "DATE_TIME", "ATTRIBUTE"),
            ws("Impressions", "INT64", "MEASURE"),
            ws("Cluster Id", "VARCHAR", "ATTRIBUTE"),
            ws("Org-Id", "INT64", "ATTRIBUTE"),
            ws("Org Id", "INT64", "ATTRIBUTE"),
            ws("!!!", "BOOL", "ATTRIBUTE"),
        ]);
        let names: Vec<&str> = columns.iter().map(|c| c.csv.as_str()).collect();
        assert_eq!(
            names,
            [
                "incident_id",
                "timestamp",
                "impressions",
                "cluster_id_2",
                "org_id",
                "org_id_2",
                "column_7"
            ]
        );
        assert_eq!(columns[1].ty, ColumnType::Timestamp);
        assert_eq!(columns[2].ty, ColumnType::Double, "Impressions are DOUBLE");
        assert!(columns[2].measure && !columns[0].measure);
        assert_eq!(columns[6].ty, ColumnType::Boolean);
    }

    #[test]
    fn returned_names_match_measures_by_their_aggregate() {
        let columns = data_columns(&[
            ws("Impressions", "DOUBLE", "MEASURE"),
            ws("User", "VARCHAR", "ATTRIBUTE"),
            ws("Query Latency (External)", "INT64", "MEASURE"),
        ]);
        assert_eq!(match_returned(&columns, "Total Impressions"), Some(0));
        assert_eq!(match_returned(&columns, "impressions"), Some(0));
        assert_eq!(
            match_returned(&columns, "Average Query Latency (External)"),
            Some(2)
        );
        assert_eq!(
            match_returned(&columns, "Total User"),
            None,
            "attributes are not aggregated"
        );
        assert_eq!(match_returned(&columns, "Something"), None);
    }
}
