//! Reading rendered TML back before anything is written.
//!
//! Each file is parsed with serde-saphyr into the TML structure (unknown keys
//! at the document and object level are errors, as they are for ThoughtSpot)
//! with `no_schema`, so a plain scalar that a YAML 1.1 reader would take for a
//! boolean, number or null where text belongs fails here instead of in
//! ThoughtSpot. Then the set is checked as one import: every table, column
//! and join a file refers to must exist among the files.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde::de::IgnoredAny;

impl JoinWith {
    /// The table the join reaches.
    pub fn destination(&self) -> &str {
        self.destination.name.as_deref().unwrap_or_default()
    }
}

/// Kind of TML document, from its file suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TmlKind {
    /// `<name>.table.tml`
    Table,
    /// `<name>.model.tml`
    Model,
    /// `<name>.worksheet.tml`
    Worksheet,
}

impl TmlKind {
    /// Every kind.
    pub const ALL: [TmlKind; 3] = [TmlKind::Table, TmlKind::Model, TmlKind::Worksheet];

    /// `table`, `model` or `worksheet`.
    pub fn name(self) -> &'static str {
        match self {
            TmlKind::Table => "table",
            TmlKind::Model => "model",
            TmlKind::Worksheet => "worksheet",
        }
    }

    /// The kind a file name's suffix says, if any.
    pub fn of_file(file_name: &str) -> Option<TmlKind> {
        Self::ALL
            .into_iter()
            .find(|k| file_name.ends_with(&format!(".{}", k.suffix())))
    }

    /// The file suffix, without the leading dot.
    pub fn suffix(self) -> &'static str {
        match self {
            TmlKind::Table => "table.tml",
            TmlKind::Model => "model.tml",
            TmlKind::Worksheet => "worksheet.tml",
        }
    }
}

// ---- The TML structure, as far as ts-principals writes or checks it. ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableDoc {
    #[serde(default, rename = "guid")]
    _guid: Option<String>,
    #[serde(default, rename = "obj_id")]
    _obj_id: Option<String>,
    table: Table,
}

/// A parsed table TML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// ThoughtSpot table name.
    pub name: String,
    #[serde(default, rename = "description")]
    _description: Option<String>,
    /// Database.
    #[serde(default)]
    pub db: Option<String>,
    /// Schema.
    #[serde(default)]
    pub schema: Option<String>,
    /// Database table.
    #[serde(default)]
    pub db_table: Option<String>,
    /// Connection, absent for Falcon tables.
    #[serde(default)]
    pub connection: Option<Connection>,
    /// Columns.
    #[serde(default)]
    pub columns: Vec<TableColumn>,
    /// Joins where this table is the source.
    #[serde(default)]
    pub joins_with: Vec<JoinWith>,
    #[serde(default, rename = "properties")]
    _properties: Option<IgnoredAny>,
    #[serde(default, rename = "rls_rules")]
    _rls_rules: Option<IgnoredAny>,
}

/// `table.connection`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Connection name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "fqn")]
    _fqn: Option<String>,
    #[serde(default, rename = "type")]
    _type: Option<String>,
}

/// A table column.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableColumn {
    /// Logical name, used in `[TABLE::name]`.
    pub name: String,
    #[serde(default, rename = "description")]
    _description: Option<String>,
    /// Database column.
    pub db_column_name: String,
    properties: ColumnProperties,
    #[serde(default)]
    db_column_properties: Option<DbColumnProperties>,
}

impl TableColumn {
    /// `db_column_properties.data_type`, when given.
    pub fn data_type(&self) -> Option<&str> {
        self.db_column_properties
            .as_ref()
            .map(|d| d.data_type.as_str())
    }
}

/// Column properties; keys beyond these are accepted unchecked, as
/// ThoughtSpot has many (synonyms, format_pattern, currency_type, …).
#[derive(Debug, Deserialize)]
struct ColumnProperties {
    column_type: String,
    #[serde(default)]
    aggregation: Option<String>,
    #[serde(default)]
    index_type: Option<String>,
    #[serde(default, rename = "is_hidden")]
    _is_hidden: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct DbColumnProperties {
    data_type: String,
}

/// A table-level join.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinWith {
    /// Join name, referenced by models and worksheets.
    pub name: String,
    destination: Destination,
    #[serde(rename = "on")]
    on: String,
    #[serde(default, rename = "type")]
    join_type: Option<String>,
    #[serde(default)]
    cardinality: Option<String>,
    #[serde(default, rename = "is_one_to_one")]
    _is_one_to_one: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Destination {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "fqn")]
    _fqn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelDoc {
    #[serde(default, rename = "guid")]
    _guid: Option<String>,
    #[serde(default, rename = "obj_id")]
    _obj_id: Option<String>,
    model: Model,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    name: String,
    #[serde(default, rename = "description")]
    _description: Option<String>,
    #[serde(default)]
    model_tables: Vec<ModelTable>,
    #[serde(default)]
    formulas: Vec<Formula>,
    #[serde(default)]
    columns: Vec<LogicalColumn>,
    #[serde(default, rename = "filters")]
    _filters: Option<IgnoredAny>,
    #[serde(default, rename = "parameters")]
    _parameters: Option<IgnoredAny>,
    #[serde(default, rename = "properties")]
    _properties: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelTable {
    name: String,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default, rename = "fqn")]
    _fqn: Option<String>,
    #[serde(default)]
    joins: Vec<ModelJoin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelJoin {
    with: String,
    #[serde(default)]
    referencing_join: Option<String>,
    #[serde(default, rename = "on")]
    on: Option<String>,
    #[serde(default, rename = "type")]
    join_type: Option<String>,
    #[serde(default)]
    cardinality: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Formula {
    #[serde(default)]
    id: Option<String>,
    name: String,
    expr: String,
    #[serde(default, rename = "properties")]
    _properties: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogicalColumn {
    name: String,
    #[serde(default, rename = "description")]
    _description: Option<String>,
    #[serde(default)]
    column_id: Option<String>,
    #[serde(default)]
    formula_id: Option<String>,
    properties: ColumnProperties,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorksheetDoc {
    #[serde(default, rename = "guid")]
    _guid: Option<String>,
    #[serde(default, rename = "obj_id")]
    _obj_id: Option<String>,
    worksheet: Worksheet,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Worksheet {
    name: String,
    #[serde(default, rename = "description")]
    _description: Option<String>,
    #[serde(default)]
    tables: Vec<WorksheetTable>,
    #[serde(default)]
    joins: Vec<WorksheetJoin>,
    #[serde(default)]
    table_paths: Vec<TablePath>,
    #[serde(default)]
    formulas: Vec<Formula>,
    #[serde(default)]
    worksheet_columns: Vec<LogicalColumn>,
    #[serde(default, rename = "filters")]
    _filters: Option<IgnoredAny>,
    #[serde(default, rename = "properties")]
    _properties: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorksheetTable {
    name: String,
    #[serde(default, rename = "id")]
    _id: Option<String>,
    #[serde(default, rename = "fqn")]
    _fqn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorksheetJoin {
    name: String,
    source: String,
    destination: String,
    #[serde(default, rename = "type")]
    join_type: Option<String>,
    #[serde(default, rename = "is_one_to_one")]
    _is_one_to_one: Option<bool>,
    #[serde(default, rename = "on")]
    on: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TablePath {
    id: String,
    table: String,
    #[serde(default)]
    join_path: Vec<JoinPath>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinPath {
    #[serde(default)]
    join: Vec<String>,
}

/// A parsed TML document.
#[derive(Debug)]
pub enum Parsed {
    /// A table.
    Table(Box<Table>),
    /// A model or worksheet.
    Model(Box<ModelLike>),
}

/// A model or worksheet, reduced to what the set checks need.
#[derive(Debug)]
pub struct ModelLike {
    /// Object name.
    pub name: String,
    /// `model` or `worksheet`, for messages.
    kind: &'static str,
    /// Table or alias or path id → table name.
    aliases: BTreeMap<String, String>,
    /// (table, joined-with alias, referencing join).
    joins: Vec<(String, String, Option<String>)>,
    /// Join names used by worksheet joins and table paths.
    join_names: Vec<(String, String)>,
    /// (worksheet join, source or destination table) pairs.
    join_ends: Vec<(String, String)>,
    /// `TABLE::column` ids of columns.
    column_ids: Vec<(String, String)>,
    /// Formula ids, and the expressions of formulas and join conditions
    /// with where they are (`formula "Actions"`).
    formula_ids: BTreeSet<String>,
    formula_exprs: Vec<(String, String)>,
    /// Formula ids that columns point at.
    column_formulas: Vec<(String, String)>,
}

impl Parsed {
    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Parsed::Table(t) => &t.name,
            Parsed::Model(m) => &m.name,
        }
    }
}

/// Problems found in one file, or in the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, or empty for the set.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

// Values ThoughtSpot accepts (from its TML schema, as the validator checks them).
const COLUMN_TYPES: &[&str] = &["ATTRIBUTE", "MEASURE"];
const DATA_TYPES: &[&str] = &[
    "BOOL",
    "VARCHAR",
    "CHAR",
    "DOUBLE",
    "FLOAT",
    "INT32",
    "INT64",
    "DATE",
    "DATE_TIME",
    "TIME",
];
const AGGREGATIONS: &[&str] = &[
    "SUM",
    "COUNT",
    "AVERAGE",
    "MAX",
    "MIN",
    "COUNT_DISTINCT",
    "NONE",
    "STD_DEVIATION",
    "VARIANCE",
    "TABLE_AGGR",
];
const INDEX_TYPES: &[&str] = &[
    "DONT_INDEX",
    "DEFAULT",
    "PREFIX_ONLY",
    "PREFIX_AND_SUBSTRING",
    "PREFIX_AND_WORD_SUBSTRING",
];
const JOIN_TYPES: &[&str] = &["INNER", "LEFT_OUTER", "RIGHT_OUTER", "OUTER"];
const CARDINALITIES: &[&str] = &["ONE_TO_ONE", "MANY_TO_ONE", "ONE_TO_MANY"];

/// Collects values outside what ThoughtSpot accepts.
#[derive(Default)]
struct Values(Vec<String>);

impl Values {
    fn one_of(
        &mut self,
        place: impl std::fmt::Display,
        key: &str,
        value: Option<&str>,
        allowed: &[&str],
    ) {
        if let Some(value) = value.filter(|v| !allowed.contains(v)) {
            self.0.push(format!(
                "{place}: {key} {value:?} is not one of {allowed:?}"
            ));
        }
    }

    fn properties(&mut self, place: &str, p: &ColumnProperties) {
        self.one_of(place, "column_type", Some(&p.column_type), COLUMN_TYPES);
        self.one_of(place, "aggregation", p.aggregation.as_deref(), AGGREGATIONS);
        self.one_of(place, "index_type", p.index_type.as_deref(), INDEX_TYPES);
    }

    fn table(mut self, t: &Table) -> Self {
        for c in &t.columns {
            let place = format!("column {:?}", c.name);
            self.properties(&place, &c.properties);
            let data_type = c
                .db_column_properties
                .as_ref()
                .map(|d| d.data_type.as_str());
            self.one_of(&place, "data_type", data_type, DATA_TYPES);
        }
        for j in &t.joins_with {
            let place = format!("join {:?}", j.name);
            self.one_of(&place, "type", j.join_type.as_deref(), JOIN_TYPES);
            self.one_of(
                &place,
                "cardinality",
                j.cardinality.as_deref(),
                CARDINALITIES,
            );
        }
        self
    }

    fn logical(mut self, columns: &[LogicalColumn]) -> Self {
        for c in columns {
            self.properties(&format!("column {:?}", c.name), &c.properties);
        }
        self
    }

    fn model(self, m: &Model) -> Self {
        let mut values = self.logical(&m.columns);
        for t in &m.model_tables {
            for j in &t.joins {
                let place = format!("join of {:?} with {:?}", t.name, j.with);
                values.one_of(&place, "type", j.join_type.as_deref(), JOIN_TYPES);
                values.one_of(
                    &place,
                    "cardinality",
                    j.cardinality.as_deref(),
                    CARDINALITIES,
                );
            }
        }
        values
    }

    fn worksheet(self, w: &Worksheet) -> Self {
        let mut values = self.logical(&w.worksheet_columns);
        for j in &w.joins {
            values.one_of(
                format!("join {:?}", j.name),
                "type",
                j.join_type.as_deref(),
                JOIN_TYPES,
            );
        }
        values
    }

    fn into_result(self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0.join("; "))
        }
    }
}

/// YAML 1.1 reads these plain keys as booleans or null (`on:` is the classic).
const YAML11_NON_STRING_KEYS: &[&str] = &[
    "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~",
];

/// Parses one rendered file as TML of `kind`.
pub fn parse(kind: TmlKind, text: &str) -> Result<Parsed, String> {
    for (number, line) in text.lines().enumerate() {
        let body = line.trim_start().trim_start_matches("- ");
        if let Some((key, _)) = body.split_once(':')
            && YAML11_NON_STRING_KEYS.contains(&key.to_ascii_lowercase().as_str())
        {
            return Err(format!(
                "line {}: the key `{key}:` is read as a boolean or null by YAML 1.1 readers \
                     (ThoughtSpot, PyYAML); write it quoted: \"{key}\":",
                number + 1
            ));
        }
    }
    let mut options = serde_saphyr::Options::default();
    options.no_schema = true;
    let fail = |e: serde_saphyr::Error| e.to_string();
    Ok(match kind {
        TmlKind::Table => {
            let doc: TableDoc = serde_saphyr::from_str_with_options(text, options).map_err(fail)?;
            Values::default().table(&doc.table).into_result()?;
            Parsed::Table(Box::new(doc.table))
        }
        TmlKind::Model => {
            let doc: ModelDoc = serde_saphyr::from_str_with_options(text, options).map_err(fail)?;
            Values::default().model(&doc.model).into_result()?;
            Parsed::Model(Box::new(ModelLike::from_model(doc.model)))
        }
        TmlKind::Worksheet => {
            let doc: WorksheetDoc =
                serde_saphyr::from_str_with_options(text, options).map_err(fail)?;
            Values::default().worksheet(&doc.worksheet).into_result()?;
            Parsed::Model(Box::new(ModelLike::from_worksheet(doc.worksheet)))
        }
    })
}

/// What identifies a document on a cluster, and the tables it names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The object's name.
    pub name: Option<String>,
    /// The root `guid:`.
    pub guid: Option<String>,
    /// The root `obj_id:`.
    pub obj_id: Option<String>,
    /// The tables a model (`model_tables`) or worksheet (`tables`) names,
    /// each with its `fqn:` (the table's GUID) when given.
    pub tables: Vec<(String, Option<String>)>,
}

#[derive(Deserialize)]
struct IdentityDoc {
    #[serde(default)]
    guid: Option<String>,
    #[serde(default)]
    obj_id: Option<String>,
    #[serde(default)]
    table: Option<IdentityObject>,
    #[serde(default)]
    model: Option<IdentityObject>,
    #[serde(default)]
    worksheet: Option<IdentityObject>,
}

#[derive(Deserialize)]
struct IdentityObject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    model_tables: Vec<IdentityRef>,
    #[serde(default)]
    tables: Vec<IdentityRef>,
}

#[derive(Deserialize)]
struct IdentityRef {
    name: String,
    #[serde(default)]
    fqn: Option<String>,
}

/// Reads a document's [`Identity`] (the rest of it is not checked here;
/// [`parse`] does that).
pub fn identity(text: &str) -> Result<Identity, String> {
    let mut options = serde_saphyr::Options::default();
    options.no_schema = true;
    let doc: IdentityDoc =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())?;
    let object = doc.table.or(doc.model).or(doc.worksheet);
    let (name, refs) = match object {
        Some(o) => (o.name, o.model_tables.into_iter().chain(o.tables).collect()),
        None => (None, Vec::new()),
    };
    Ok(Identity {
        name,
        guid: doc.guid,
        obj_id: doc.obj_id,
        tables: refs
            .into_iter()
            .map(|r: IdentityRef| (r.name, r.fqn))
            .collect(),
    })
}

/// The GUIDs the TML files in `dir` carry, by kind and name: what a run
/// that must render the same files as the last `generate` renders with.
/// Files that cannot be read are left out (the comparison then tells).
pub fn guids_in(dir: &std::path::Path) -> BTreeMap<(TmlKind, String), String> {
    let mut guids = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(kind) = TmlKind::of_file(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if let Ok(Identity {
            name: Some(name),
            guid: Some(guid),
            ..
        }) = identity(&text)
        {
            guids.insert((kind, name), guid);
        }
    }
    guids
}

impl ModelLike {
    fn from_model(m: Model) -> Self {
        let mut out = ModelLike::new(m.name, "model", &m.formulas);
        for t in &m.model_tables {
            out.aliases.insert(
                t.alias.clone().unwrap_or_else(|| t.name.clone()),
                t.name.clone(),
            );
        }
        for t in m.model_tables {
            for j in t.joins {
                if let Some(on) = j.on {
                    let place = format!("join of {:?} with {:?}", t.name, j.with);
                    out.formula_exprs.push((place, on));
                }
                out.joins.push((t.name.clone(), j.with, j.referencing_join));
            }
        }
        out.add_columns(m.columns);
        out
    }

    fn from_worksheet(w: Worksheet) -> Self {
        let mut out = ModelLike::new(w.name, "worksheet", &w.formulas);
        for t in &w.tables {
            out.aliases.insert(t.name.clone(), t.name.clone());
        }
        for p in &w.table_paths {
            out.aliases.insert(p.id.clone(), p.table.clone());
            for step in &p.join_path {
                for join in &step.join {
                    out.join_names
                        .push((format!("table path {}", p.id), join.clone()));
                }
            }
        }
        for j in w.joins {
            let place = format!("join {:?}", j.name);
            out.join_ends.push((place.clone(), j.source.clone()));
            out.join_ends.push((place.clone(), j.destination.clone()));
            match j.on {
                Some(on) => out.formula_exprs.push((place, on)),
                None => out.join_names.push((
                    format!("join from {} to {}", j.source, j.destination),
                    j.name,
                )),
            }
        }
        out.add_columns(w.worksheet_columns);
        out
    }

    fn new(name: String, kind: &'static str, formulas: &[Formula]) -> Self {
        ModelLike {
            name,
            kind,
            aliases: BTreeMap::new(),
            joins: Vec::new(),
            join_names: Vec::new(),
            join_ends: Vec::new(),
            column_ids: Vec::new(),
            formula_ids: formulas
                .iter()
                .flat_map(|f| [f.id.clone(), Some(f.name.clone())])
                .flatten()
                .collect(),
            formula_exprs: formulas
                .iter()
                .map(|f| (format!("formula {:?}", f.name), f.expr.clone()))
                .collect(),
            column_formulas: Vec::new(),
        }
    }

    fn add_columns(&mut self, columns: Vec<LogicalColumn>) {
        for c in columns {
            if let Some(id) = c.column_id {
                self.column_ids.push((c.name.clone(), id));
            }
            if let Some(formula) = c.formula_id {
                self.column_formulas.push((c.name, formula));
            }
        }
    }
}

/// `[TABLE::Column]` references in a join condition or formula.
pub fn references(expr: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let inner = &after[..close];
        if let Some((table, column)) = inner.split_once("::")
            && !table.contains('[')
        {
            out.push((table, column));
        }
        rest = &after[close + 1..];
    }
    out
}

/// Checks a set of parsed files as one import.
pub fn check_set(files: &[(String, Parsed)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |file: &str, message: String| {
        problems.push(Problem {
            file: file.to_owned(),
            message,
        })
    };
    // table name → (columns, join names)
    let mut tables: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    let mut defined_in: BTreeMap<&str, &str> = BTreeMap::new();
    for (file, parsed) in files {
        if let Parsed::Table(t) = parsed {
            let columns: BTreeSet<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            if columns.len() != t.columns.len() {
                problem(
                    file,
                    format!("table {:?} has two columns with the same name", t.name),
                );
            }
            let joins = t.joins_with.iter().map(|j| j.name.as_str()).collect();
            if let Some(first) = defined_in.insert(&t.name, file) {
                problem(
                    file,
                    format!("table {:?} is defined by two files ({first} too)", t.name),
                );
            }
            tables.insert(&t.name, (columns, joins));
        }
    }
    for (file, parsed) in files {
        match parsed {
            Parsed::Table(t) => {
                for j in &t.joins_with {
                    let Some(dest) = j.destination.name.as_deref() else {
                        problem(
                            file,
                            format!("join {:?} names no destination table", j.name),
                        );
                        continue;
                    };
                    if !tables.contains_key(dest) {
                        problem(
                            file,
                            format!(
                                "join {:?} goes to {dest:?}, which is not in the set",
                                j.name
                            ),
                        );
                    }
                    let refs = references(&j.on);
                    for (table, column) in &refs {
                        match tables.get(table) {
                            None => problem(
                                file,
                                format!("join {:?} refers to unknown table {table:?}", j.name),
                            ),
                            Some((columns, _)) if !columns.contains(column) => problem(
                                file,
                                format!(
                                    "join {:?} refers to unknown column [{table}::{column}]",
                                    j.name
                                ),
                            ),
                            _ => {}
                        }
                    }
                    let named: BTreeSet<&str> = refs.iter().map(|(t, _)| *t).collect();
                    let expected: BTreeSet<&str> = [t.name.as_str(), dest].into();
                    if named != expected {
                        problem(
                            file,
                            format!(
                                "join {:?} must compare columns of {:?} and {dest:?}, not {named:?}",
                                j.name, t.name
                            ),
                        );
                    }
                }
            }
            Parsed::Model(m) => {
                for table in m.aliases.values() {
                    if !tables.contains_key(table.as_str()) {
                        problem(
                            file,
                            format!(
                                "{} uses table {table:?}, which has no table TML in the set",
                                m.kind
                            ),
                        );
                    }
                }
                for (table, with, referencing) in &m.joins {
                    let Some(target) = m.aliases.get(with) else {
                        problem(file, format!("{table:?} joins with unknown {with:?}"));
                        continue;
                    };
                    if let Some(join) = referencing {
                        let known = [table.as_str(), target.as_str()].iter().any(|t| {
                            tables
                                .get(t)
                                .is_some_and(|(_, joins)| joins.contains(join.as_str()))
                        });
                        if !known {
                            problem(
                                file,
                                format!(
                                    "referencing_join {join:?} is not a join of {table:?} or {with:?}"
                                ),
                            );
                        }
                    }
                }
                for (place, table) in &m.join_ends {
                    if !m.aliases.contains_key(table) {
                        problem(
                            file,
                            format!(
                                "{place} joins {table:?}, which is not a table of the {}",
                                m.kind
                            ),
                        );
                    }
                }
                for (place, join) in &m.join_names {
                    if !tables
                        .values()
                        .any(|(_, joins)| joins.contains(join.as_str()))
                    {
                        problem(
                            file,
                            format!("{place} uses {join:?}, which no table defines"),
                        );
                    }
                }
                for (name, id) in &m.column_ids {
                    let Some((alias, column)) = id.split_once("::") else {
                        problem(
                            file,
                            format!("column {name:?}: column_id {id:?} is not TABLE::COLUMN"),
                        );
                        continue;
                    };
                    match m.aliases.get(alias).and_then(|t| tables.get(t.as_str())) {
                        None => problem(
                            file,
                            format!("column {name:?} points at unknown table {alias:?}"),
                        ),
                        Some((columns, _)) if !columns.contains(column) => problem(
                            file,
                            format!("column {name:?} points at unknown column {id:?}"),
                        ),
                        _ => {}
                    }
                }
                for (name, formula) in &m.column_formulas {
                    if !m.formula_ids.contains(formula) {
                        problem(
                            file,
                            format!("column {name:?} uses unknown formula {formula:?}"),
                        );
                    }
                }
                for (place, expr) in &m.formula_exprs {
                    for (alias, column) in references(expr) {
                        match m.aliases.get(alias).and_then(|t| tables.get(t.as_str())) {
                            None => {
                                problem(file, format!("{place} refers to unknown table {alias:?}"))
                            }
                            Some((columns, _)) if !columns.contains(column) => problem(
                                file,
                                format!("{place} refers to unknown column [{alias}::{column}]"),
                            ),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TmlFormat;
    use crate::render::{Templates, TmlSettings, render_all};

    const TABLE: &str = r#"table:
  name: "A"
  db_table: "A"
  columns:
  - name: "Id"
    db_column_name: "ID"
    properties:
      column_type: "ATTRIBUTE"
    db_column_properties:
      data_type: "VARCHAR"
  joins_with:
  - name: "A_to_B"
    destination:
      name: "B"
    "on": "[A::Id] = [B::Id]"
    type: "INNER"
"#;

    #[test]
    fn bare_on_key_is_rejected() {
        let text = TABLE.replace("\"on\":", "on:");
        let err = parse(TmlKind::Table, &text).unwrap_err();
        assert!(err.contains("`on:`"), "{err}");
    }

    #[test]
    fn unquoted_lookalikes_are_rejected() {
        let text = TABLE.replace("name: \"A\"", "name: yes");
        assert!(parse(TmlKind::Table, &text).is_err());
        let text = TABLE.replace("db_table: \"A\"", "db_table: 1_000");
        assert!(parse(TmlKind::Table, &text).is_err());
    }

    #[test]
    fn values_thoughtspot_rejects_are_errors() {
        let text = TABLE.replace("data_type: \"VARCHAR\"", "data_type: \"VARCHAR2\"");
        let err = parse(TmlKind::Table, &text).unwrap_err();
        assert!(err.contains("data_type \"VARCHAR2\""), "{err}");
        let text = TABLE.replace("type: \"INNER\"", "type: \"CROSS\"");
        assert!(parse(TmlKind::Table, &text).is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = TABLE.replace("  db_table:", "  db_tabel:");
        let err = parse(TmlKind::Table, &text).unwrap_err();
        assert!(err.contains("db_tabel"), "{err}");
    }

    #[test]
    fn set_checks_find_missing_tables_and_columns() {
        let a = parse(TmlKind::Table, TABLE).unwrap();
        let problems = check_set(&[("A.table.tml".into(), a)]);
        assert!(
            problems.iter().any(|p| p.message.contains("goes to \"B\"")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("unknown table \"B\"")),
            "{problems:?}"
        );
    }

    /// The built-in rendering of `template` with the first `from` replaced
    /// by `to`, rendered as an override among the other built-ins: the
    /// error as the user sees it.
    fn broken(format: TmlFormat, template: &str, from: &str, to: &str) -> String {
        let settings = TmlSettings {
            format,
            ..TmlSettings::default()
        };
        let held = crate::activity::sample_held();
        let files = render_all(&settings, &Templates::builtin(), &held).unwrap();
        let file = files.iter().find(|f| f.template == template).unwrap();
        assert!(file.text.contains(from), "{template} lacks {from:?}");
        let text = file.text.replacen(from, to, 1);
        let dir = tempfile::tempdir().unwrap();
        let raw = format!("{{% raw %}}{text}{{% endraw %}}");
        std::fs::write(dir.path().join(template), raw).unwrap();
        let templates = Templates::with_overrides(dir.path()).unwrap();
        match render_all(&settings, &templates, &held) {
            Ok(_) => panic!("{template}: {from:?} → {to:?} passed the checks"),
            Err(e) => e.to_string(),
        }
    }

    const GROUPS: &str = "groups.table.tml.j2";
    const ORGS: &str = "orgs.table.tml.j2";
    const MODEL: &str = "model.model.tml.j2";
    const WORKSHEET: &str = "worksheet.worksheet.tml.j2";
    const GROUPS_FILE: &str = "TS_GROUPS.table.tml";
    const MODEL_FILE: &str = "TS_ Users and Groups.model.tml";
    const WORKSHEET_FILE: &str = "TS_ Users and Groups.worksheet.tml";

    /// One case per rule: (format, template, from, to, file named, problem named).
    type Case = (
        TmlFormat,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );

    /// Rules each file must pass on its own.
    #[rustfmt::skip]
    const FILE_RULES: &[Case] = &[
        (TmlFormat::Model, GROUPS, "\"on\":", "on:", GROUPS_FILE,
            "the key `on:` is read as a boolean or null by YAML 1.1 readers"),
        (TmlFormat::Model, GROUPS, "  db_table:", "  db_tabel:", GROUPS_FILE, "db_tabel"),
        (TmlFormat::Model, GROUPS, "db_table: \"TS_GROUPS\"", "db_table: 1_000", GROUPS_FILE,
            "db_table"),
        (TmlFormat::Model, GROUPS, "    db_column_name: \"CLUSTER_ID\"\n", "", GROUPS_FILE,
            "db_column_name"),
        (TmlFormat::Model, GROUPS, "  columns:\n", "  columns: [\n", GROUPS_FILE, "line"),
        (TmlFormat::Model, GROUPS, "column_type: \"ATTRIBUTE\"", "column_type: \"DIMENSION\"",
            GROUPS_FILE, "column \"Cluster Id\": column_type \"DIMENSION\" is not one of"),
        (TmlFormat::Model, GROUPS, "index_type: \"DONT_INDEX\"", "index_type: \"NEVER\"",
            GROUPS_FILE, "column \"Cluster Id\": index_type \"NEVER\" is not one of"),
        (TmlFormat::Model, GROUPS, "data_type: \"VARCHAR\"", "data_type: \"VARCHAR2\"",
            GROUPS_FILE, "column \"Cluster Id\": data_type \"VARCHAR2\" is not one of"),
        (TmlFormat::Model, GROUPS, "type: \"INNER\"", "type: \"CROSS\"", GROUPS_FILE,
            "join \"TS_GROUPS_to_TS_ORGS\": type \"CROSS\" is not one of"),
        (TmlFormat::Model, GROUPS, "cardinality: \"MANY_TO_ONE\"", "cardinality: \"MANY_TO_MANY\"",
            GROUPS_FILE, "join \"TS_GROUPS_to_TS_ORGS\": cardinality \"MANY_TO_MANY\" is not one of"),
        (TmlFormat::Model, MODEL, "aggregation: \"SUM\"", "aggregation: \"TOTAL\"", MODEL_FILE,
            "aggregation \"TOTAL\" is not one of"),
        (TmlFormat::Model, MODEL, "referencing_join: \"TS_GROUP_MEMBERSHIPS_to_TS_ORGS\"",
            "type: \"CROSS\"", MODEL_FILE,
            "join of \"TS_GROUP_MEMBERSHIPS\" with \"TS_ORGS\": type \"CROSS\" is not one of"),
        (TmlFormat::Model, MODEL, "referencing_join: \"TS_GROUP_MEMBERSHIPS_to_TS_ORGS\"",
            "cardinality: \"MANY\"", MODEL_FILE,
            "join of \"TS_GROUP_MEMBERSHIPS\" with \"TS_ORGS\": cardinality \"MANY\" is not one of"),
        (TmlFormat::Worksheet, WORKSHEET, "type: \"INNER\"", "type: \"CROSS\"", WORKSHEET_FILE,
            "join \"TS_GROUP_MEMBERSHIPS_to_TS_USERS\": type \"CROSS\" is not one of"),
        (TmlFormat::Worksheet, WORKSHEET, "column_type: \"ATTRIBUTE\"", "column_type: \"DIM\"",
            WORKSHEET_FILE, "column \"User\": column_type \"DIM\" is not one of"),
    ];

    /// Rules the files must pass together, as one import.
    #[rustfmt::skip]
    const SET_RULES: &[Case] = &[
        (TmlFormat::Model, GROUPS, "name: \"Org Id\"", "name: \"Cluster Id\"", GROUPS_FILE,
            "table \"TS_GROUPS\" has two columns with the same name"),
        (TmlFormat::Model, ORGS, "name: \"TS_ORGS\"", "name: \"TS_USERS\"", "TS_USERS.table.tml",
            "table \"TS_USERS\" is defined by two files (TS_ORGS.table.tml too)"),
        (TmlFormat::Model, GROUPS, "destination:\n      name: \"TS_ORGS\"",
            "destination:\n      name: \"TS_ORGZ\"", GROUPS_FILE,
            "join \"TS_GROUPS_to_TS_ORGS\" goes to \"TS_ORGZ\", which is not in the set"),
        (TmlFormat::Model, GROUPS, "destination:\n      name: \"TS_ORGS\"",
            "destination:\n      fqn: \"TS_ORGS\"", GROUPS_FILE,
            "join \"TS_GROUPS_to_TS_ORGS\" names no destination table"),
        (TmlFormat::Model, GROUPS, "= [TS_ORGS::Cluster Id]", "= [TS_ORGZ::Cluster Id]",
            GROUPS_FILE, "join \"TS_GROUPS_to_TS_ORGS\" refers to unknown table \"TS_ORGZ\""),
        (TmlFormat::Model, GROUPS, "[TS_ORGS::Org Id]", "[TS_ORGS::Org Number]", GROUPS_FILE,
            "join \"TS_GROUPS_to_TS_ORGS\" refers to unknown column [TS_ORGS::Org Number]"),
        (TmlFormat::Model, GROUPS, "= [TS_ORGS::Cluster Id] AND [TS_GROUPS::Org Id] = [TS_ORGS::Org Id]",
            "= [TS_GROUPS::Org Id]", GROUPS_FILE,
            "join \"TS_GROUPS_to_TS_ORGS\" must compare columns of \"TS_GROUPS\" and \"TS_ORGS\""),
        (TmlFormat::Model, MODEL, "  - name: \"TS_ORGS\"\n", "  - name: \"TS_ORGZ\"\n", MODEL_FILE,
            "model uses table \"TS_ORGZ\", which has no table TML in the set"),
        (TmlFormat::Model, MODEL, "- with: \"TS_ORGS\"", "- with: \"TS_ORGZ\"", MODEL_FILE,
            "\"TS_GROUP_MEMBERSHIPS\" joins with unknown \"TS_ORGZ\""),
        (TmlFormat::Model, MODEL, "referencing_join: \"TS_GROUP_MEMBERSHIPS_to_TS_ORGS\"",
            "referencing_join: \"TS_GROUP_MEMBERSHIPS_to_NOWHERE\"", MODEL_FILE,
            "referencing_join \"TS_GROUP_MEMBERSHIPS_to_NOWHERE\" is not a join of \"TS_GROUP_MEMBERSHIPS\" or \"TS_ORGS\""),
        (TmlFormat::Model, MODEL, "referencing_join: \"TS_GROUP_MEMBERSHIPS_to_TS_ORGS\"",
            "\"on\": \"[TS_GROUP_MEMBERSHIPS::Org Id] = [TS_ORGS::Org Number]\"", MODEL_FILE,
            "join of \"TS_GROUP_MEMBERSHIPS\" with \"TS_ORGS\" refers to unknown column [TS_ORGS::Org Number]"),
        (TmlFormat::Model, MODEL, "column_id: \"TS_USERS::Username\"",
            "column_id: \"TS_USERS.Username\"", MODEL_FILE,
            "column \"Username\": column_id \"TS_USERS.Username\" is not TABLE::COLUMN"),
        (TmlFormat::Model, MODEL, "column_id: \"TS_USERS::Username\"",
            "column_id: \"TS_USERZ::Username\"", MODEL_FILE,
            "column \"Username\" points at unknown table \"TS_USERZ\""),
        (TmlFormat::Model, MODEL, "column_id: \"TS_USERS::Username\"",
            "column_id: \"TS_USERS::Login\"", MODEL_FILE,
            "column \"Username\" points at unknown column \"TS_USERS::Login\""),
        (TmlFormat::Model, MODEL, "formula_id: \"formula_Group Members\"",
            "formula_id: \"formula_Nope\"", MODEL_FILE,
            "uses unknown formula \"formula_Nope\""),
        (TmlFormat::Model, MODEL, "[TS_ACTIVITY_BI_SERVER::Incident Id]", "[TS_BI::Incident Id]",
            MODEL_FILE, "formula \"Cluster Actions\" refers to unknown table \"TS_BI\""),
        (TmlFormat::Model, MODEL, "[TS_ACTIVITY_BI_SERVER::Incident Id]", "[TS_ACTIVITY_BI_SERVER::Incident]",
            MODEL_FILE, "formula \"Cluster Actions\" refers to unknown column [TS_ACTIVITY_BI_SERVER::Incident]"),
        (TmlFormat::Worksheet, WORKSHEET, "      - \"TS_GROUP_MEMBERSHIPS_to_TS_ORGS\"", "      - \"NOPE\"",
            WORKSHEET_FILE, "table path TS_ORGS_1 uses \"NOPE\", which no table defines"),
        (TmlFormat::Worksheet, WORKSHEET, "- name: \"TS_GROUP_MEMBERSHIPS_to_TS_ORGS\"",
            "- name: \"TS_GROUP_MEMBERSHIPS_TO_ORGS\"", WORKSHEET_FILE,
            "join from TS_GROUP_MEMBERSHIPS to TS_ORGS uses \"TS_GROUP_MEMBERSHIPS_TO_ORGS\", which no table defines"),
        (TmlFormat::Worksheet, WORKSHEET, "destination: \"TS_ORGS\"", "destination: \"TS_ORGZ\"",
            WORKSHEET_FILE,
            "join \"TS_GROUP_MEMBERSHIPS_to_TS_ORGS\" joins \"TS_ORGZ\", which is not a table of the worksheet"),
        (TmlFormat::Worksheet, WORKSHEET, "    is_one_to_one: false\n",
            "    is_one_to_one: false\n    \"on\": \"[TS_GROUP_MEMBERSHIPS::User GUID] = [TS_USERS::Nope]\"\n",
            WORKSHEET_FILE,
            "join \"TS_GROUP_MEMBERSHIPS_to_TS_USERS\" refers to unknown column [TS_USERS::Nope]"),
    ];

    #[test]
    fn every_rule_names_the_file_and_the_problem() {
        for (rules, kind) in [
            (FILE_RULES, "is not valid TML"),
            (SET_RULES, "does not hold together"),
        ] {
            for &(format, template, from, to, file, problem) in rules {
                let message = broken(format, template, from, to);
                let case = format!("{template}: {from:?} → {to:?}:\n{message}");
                assert!(message.contains(kind), "{case}");
                assert!(message.contains(file), "{case}");
                assert!(message.contains(problem), "{case}");
            }
        }
    }

    #[test]
    fn references_are_extracted() {
        assert_eq!(
            references("[A::x y] = [B::z] AND [C::w]"),
            vec![("A", "x y"), ("B", "z"), ("C", "w")]
        );
        assert_eq!(references("no refs [here]"), vec![]);
    }
}
