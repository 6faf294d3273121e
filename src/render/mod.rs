//! Rendering TML from minijinja templates.
//!
//! The built-in templates (in `templates/`, embedded in the binary) describe
//! the seven data tables, the two activity tables and the model (or
//! worksheet) that joins them. `--templates DIR` overrides any of them by
//! file name. Every string scalar goes through the `yaml` filter; every
//! rendered file is parsed back and the set checked as one import before it
//! is returned, so nothing unreadable reaches the disk.

pub mod check;
mod names;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, context};
use serde::Serialize;

use crate::config::{TmlConfig, TmlFormat};
use crate::schema::activity::{CLUSTER_ID, Held, Source};
use crate::schema::attribution::{self, GroupActivityDef, group_activity_name};
use crate::schema::{ColumnType, IdentifierCase, Table};
pub use check::TmlKind;
pub use names::file_stem;

/// The built-in templates, by file name.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "_macros.tml.j2",
        include_str!("../../templates/_macros.tml.j2"),
    ),
    (
        "_identity.tml.j2",
        include_str!("../../templates/_identity.tml.j2"),
    ),
    (
        "_table.tml.j2",
        include_str!("../../templates/_table.tml.j2"),
    ),
    (
        "_model.tml.j2",
        include_str!("../../templates/_model.tml.j2"),
    ),
    (
        "_logical.tml.j2",
        include_str!("../../templates/_logical.tml.j2"),
    ),
    (
        "orgs.table.tml.j2",
        include_str!("../../templates/orgs.table.tml.j2"),
    ),
    (
        "users.table.tml.j2",
        include_str!("../../templates/users.table.tml.j2"),
    ),
    (
        "org_memberships.table.tml.j2",
        include_str!("../../templates/org_memberships.table.tml.j2"),
    ),
    (
        "groups.table.tml.j2",
        include_str!("../../templates/groups.table.tml.j2"),
    ),
    (
        "group_privileges.table.tml.j2",
        include_str!("../../templates/group_privileges.table.tml.j2"),
    ),
    (
        "group_memberships.table.tml.j2",
        include_str!("../../templates/group_memberships.table.tml.j2"),
    ),
    (
        "group_hierarchy.table.tml.j2",
        include_str!("../../templates/group_hierarchy.table.tml.j2"),
    ),
    (
        "group_memberships_history.table.tml.j2",
        include_str!("../../templates/group_memberships_history.table.tml.j2"),
    ),
    (
        "_activity.tml.j2",
        include_str!("../../templates/_activity.tml.j2"),
    ),
    (
        "activity_bi_server.table.tml.j2",
        include_str!("../../templates/activity_bi_server.table.tml.j2"),
    ),
    (
        "activity_ai_bi_stats.table.tml.j2",
        include_str!("../../templates/activity_ai_bi_stats.table.tml.j2"),
    ),
    (
        "_group_activity.tml.j2",
        include_str!("../../templates/_group_activity.tml.j2"),
    ),
    (
        "group_activity_bi_server.table.tml.j2",
        include_str!("../../templates/group_activity_bi_server.table.tml.j2"),
    ),
    (
        "group_activity_ai_bi_stats.table.tml.j2",
        include_str!("../../templates/group_activity_ai_bi_stats.table.tml.j2"),
    ),
    (
        "model.model.tml.j2",
        include_str!("../../templates/model.model.tml.j2"),
    ),
    (
        "worksheet.worksheet.tml.j2",
        include_str!("../../templates/worksheet.worksheet.tml.j2"),
    ),
];

/// Database used for Falcon tables when none is configured.
pub const FALCON_DATABASE: &str = "TS_PRINCIPALS";
/// Falcon's default schema.
pub const FALCON_SCHEMA: &str = "falcon_default_schema";

/// A rendering failure.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template override directory is unusable.
    #[error("templates directory {path}: {message}")]
    TemplateDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A template failed to compile or render.
    #[error("template {template}: {message}")]
    Template {
        /// The template file name.
        template: String,
        /// minijinja's message, with the line.
        message: String,
    },
    /// A rendered file is not valid TML.
    #[error("{file} (from template {template}) is not valid TML: {message}")]
    ParseBack {
        /// The file that would have been written.
        file: String,
        /// The template it came from.
        template: String,
        /// What the parser said.
        message: String,
    },
    /// The rendered files do not fit together or do not match the settings.
    #[error("the rendered TML does not hold together:\n{}", problems.iter().map(|p| format!("  {}: {}", p.file, p.message)).collect::<Vec<_>>().join("\n"))]
    Check {
        /// Every problem found.
        problems: Vec<check::Problem>,
    },
}

/// What the TML describes, resolved from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TmlSettings {
    /// Connection name; `None` for Falcon tables.
    pub connection: Option<String>,
    /// Database of the tables.
    pub database: String,
    /// Schema of the tables.
    pub schema: String,
    /// Prefix of the principal tables' names.
    pub table_prefix: String,
    /// Name of the model or worksheet.
    pub model_name: String,
    /// Model or worksheet.
    pub format: TmlFormat,
    /// Case of every database name (`db_table`, `db_column_name`).
    pub identifier_case: IdentifierCase,
    /// Render the activity tables the data holds (`tml.activity.enabled`).
    pub activity: bool,
    /// Write a stable `obj_id` into every file (`tml.obj_ids`).
    pub obj_ids: bool,
    /// The GUIDs the objects have on the cluster (from the GUID map): each
    /// file gets its own as the root `guid:`, and the model names its
    /// tables' in `model_tables[].fqn`.
    pub guids: Guids,
}

/// GUIDs by kind and object name.
pub type Guids = BTreeMap<(TmlKind, String), String>;

/// The stable `obj_id` of the object `key` (a table's key such as `users`,
/// or `model` / `worksheet`) under `table_prefix`: `TS_PRINCIPALS__` and
/// the prefix and key upper-cased, in the characters ThoughtSpot allows
/// (letters, digits, `_`). A prefix with other characters gets a hash of
/// itself too, so prefixes that differ only there stay apart.
pub fn obj_id(table_prefix: &str, key: &str) -> String {
    let clean = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut id = format!("TS_PRINCIPALS__{}{}", clean(table_prefix), clean(key));
    if table_prefix
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || c == '_'))
    {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(table_prefix.as_bytes());
        id.push_str(&format!("__{}", &hex::encode(hash)[..8]));
    }
    id
}

impl TmlSettings {
    /// Settings from the `[tml]` config section.
    pub fn from_config(tml: &TmlConfig) -> Self {
        let falcon = tml.connection.is_none();
        TmlSettings {
            connection: tml.connection.clone(),
            database: tml
                .database
                .clone()
                .unwrap_or_else(|| if falcon { FALCON_DATABASE } else { "" }.to_owned()),
            schema: tml
                .schema
                .clone()
                .unwrap_or_else(|| if falcon { FALCON_SCHEMA } else { "" }.to_owned()),
            table_prefix: tml.table_prefix.clone(),
            model_name: tml.model_name.clone(),
            format: tml.format,
            identifier_case: tml.identifier_case(),
            activity: tml.activity.enabled,
            obj_ids: tml.obj_ids,
            guids: Guids::new(),
        }
    }
}

impl Default for TmlSettings {
    fn default() -> Self {
        Self::from_config(&TmlConfig::default())
    }
}

/// Where templates come from: the built-ins, each optionally replaced by a
/// file of the same name in an override directory.
#[derive(Clone, Debug, Default)]
pub struct Templates {
    overrides: Option<PathBuf>,
}

impl Templates {
    /// Only the built-in templates.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Built-ins, overridden by same-named files in `dir`.
    pub fn with_overrides(dir: &Path) -> Result<Self, RenderError> {
        let entries = std::fs::read_dir(dir).map_err(|e| RenderError::TemplateDir {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut overridden = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if BUILTIN_TEMPLATES
                .iter()
                .any(|(builtin, _)| *builtin == name)
            {
                overridden.push(name);
            } else if name.ends_with(".j2") {
                tracing::info!(
                    "{}: {name} is not a built-in template name; usable only through include/import",
                    dir.display()
                );
            }
        }
        overridden.sort();
        tracing::info!(
            "templates overridden from {}: {}",
            dir.display(),
            if overridden.is_empty() {
                "none".to_owned()
            } else {
                overridden.join(", ")
            }
        );
        Ok(Self {
            overrides: Some(dir.to_path_buf()),
        })
    }

    /// The minijinja environment: strict undefined, trim/lstrip blocks,
    /// trailing newline kept, no auto-escaping (the `yaml` filter escapes).
    pub fn environment(&self) -> Environment<'static> {
        let mut env = base_environment();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        add_filters(&mut env);
        let overrides = self.overrides.clone();
        env.set_loader(move |name| load_template(overrides.as_deref(), name));
        env
    }
}

/// A minijinja environment as every template of ts-principals is read:
/// undefined values are errors, blocks trim the line they are on, and the
/// trailing newline is kept.
pub fn base_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build();
    // The default delimiters are always valid.
    if let Ok(syntax) = syntax {
        env.set_syntax(syntax);
    }
    env
}

fn load_template(overrides: Option<&Path>, name: &str) -> Result<Option<String>, minijinja::Error> {
    if let Some(dir) = overrides {
        // Names come from our own plan or from include tags in the user's own
        // templates; never let one wander out of the directory.
        if !name.contains(['/', '\\']) && name != ".." {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => return Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!("cannot read {}: {e}", path.display()),
                    ));
                }
            }
        }
    }
    Ok(BUILTIN_TEMPLATES
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, text)| (*text).to_owned()))
}

/// Registers every filter the templates may use.
pub fn add_filters(env: &mut Environment<'_>) {
    env.add_filter("yaml", yaml_filter);
}

/// Registers `ident(name)`: a database name in the configured identifier
/// case, as every `db_column_name` is written.
fn add_identifier_case(env: &mut Environment<'_>, case: IdentifierCase) {
    env.add_function("ident", move |name: &str| case.apply(name));
}

/// `{{ value|yaml }}`: the value as a double-quoted YAML string. Only
/// strings are accepted, so a template cannot print `none` or a number where
/// text belongs without saying so (`|string`).
fn yaml_filter(value: &Value) -> Result<String, minijinja::Error> {
    match value.as_str() {
        Some(text) => Ok(yaml::quote(text)),
        None => Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "the yaml filter writes strings, but got {} `{value}`; use |string to print it as text",
                value.kind()
            ),
        )),
    }
}

/// One rendered TML file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TmlFile {
    /// File name, e.g. `TS_USERS.table.tml`.
    pub file_name: String,
    /// Kind of document.
    pub kind: TmlKind,
    /// Name of the object it defines.
    pub object_name: String,
    /// The template it came from.
    pub template: String,
    /// The TML text.
    pub text: String,
}

#[derive(Serialize)]
struct TableContext {
    /// ThoughtSpot table name.
    name: String,
    /// Database table name.
    db_table: String,
    /// The table's GUID on the cluster, when the GUID map knows it.
    guid: Option<String>,
    /// For activity tables: the worksheet's columns, the name of the one
    /// holding the user GUID, and the worksheet's name.
    #[serde(flatten)]
    activity: Option<ActivityContext>,
}

#[derive(Serialize)]
struct ActivityContext {
    /// The worksheet the rows come from, as named on the cluster.
    worksheet: String,
    /// Its columns (`cluster_id` not included).
    columns: Vec<ActivityColumnContext>,
    /// The names of those columns.
    column_names: Vec<String>,
    /// The column holding the user's GUID, if the worksheet has one.
    user_column: Option<String>,
    /// The column that dates a row.
    time_column: String,
    /// The column holding the org the row happened in (a number), if any.
    org_column: Option<String>,
}

#[derive(Serialize)]
struct ActivityColumnContext {
    name: String,
    /// The data column (snake case), for ident().
    db: String,
    /// TML data type.
    #[serde(rename = "type")]
    ty: &'static str,
    measure: bool,
}

#[derive(Serialize)]
struct Context<'s> {
    connection: Option<&'s str>,
    database: &'s str,
    schema: &'s str,
    model_name: &'s str,
    tables: BTreeMap<&'static str, TableContext>,
}

/// A file to render.
struct Planned {
    template: String,
    kind: TmlKind,
    object_name: String,
    key: Option<&'static str>,
    /// The database table the TML must name, for table files.
    db_table: Option<String>,
    /// Database columns the table must have (the data's columns), with the
    /// type the data holds.
    db_columns: Vec<(String, ColumnType)>,
    /// Only these columns may be described (the principal tables); the
    /// activity tables hold columns the data does not list yet.
    exact: bool,
}

fn plan<'s>(settings: &'s TmlSettings, held: &Held) -> (Context<'s>, Vec<Planned>) {
    let case = settings.identifier_case;
    let mut tables = BTreeMap::new();
    let mut planned = Vec::new();
    for table in Table::ALL {
        let name = table.object_name(&settings.table_prefix);
        let def = table.definition(&settings.table_prefix, case);
        tables.insert(
            table.name(),
            TableContext {
                name: name.clone(),
                db_table: def.table.clone(),
                guid: None,
                activity: None,
            },
        );
        planned.push(Planned {
            template: format!("{}.table.tml.j2", table.name()),
            kind: TmlKind::Table,
            object_name: name,
            key: Some(table.name()),
            db_table: Some(def.table),
            db_columns: def.columns.into_iter().map(|c| (c.name, c.ty)).collect(),
            exact: true,
        });
    }
    let history = attribution::history_definition(&settings.table_prefix, case);
    let name = format!(
        "{}{}",
        settings.table_prefix,
        attribution::HISTORY.to_ascii_uppercase()
    );
    tables.insert(
        attribution::HISTORY,
        TableContext {
            name: name.clone(),
            db_table: history.table.clone(),
            guid: None,
            activity: None,
        },
    );
    planned.push(Planned {
        template: format!("{}.table.tml.j2", attribution::HISTORY),
        kind: TmlKind::Table,
        object_name: name,
        key: Some(attribution::HISTORY),
        db_table: Some(history.table),
        db_columns: history
            .columns
            .into_iter()
            .map(|c| (c.name, c.ty))
            .collect(),
        exact: true,
    });
    if settings.activity {
        for (&source, copied) in held {
            let key = activity_key(source);
            let name = source.object_name(&settings.table_prefix);
            let def = copied.definition(source, &settings.table_prefix, case);
            let columns = (copied.columns.iter())
                .map(|c| ActivityColumnContext {
                    // The table's own Cluster Id comes first; a worksheet
                    // column of that name keeps its data under another.
                    name: if c.name.eq_ignore_ascii_case("Cluster Id") {
                        format!("{} (worksheet)", c.name)
                    } else {
                        c.name.clone()
                    },
                    db: c.csv.clone(),
                    ty: c.ty.tml_types()[0],
                    measure: c.measure,
                })
                .collect();
            let user_column = (copied.columns.iter())
                .find(|c| c.csv == "user_id")
                .map(|c| c.name.clone());
            let time_column = (copied.columns.iter())
                .find(|c| c.csv == copied.time_column)
                .map_or_else(|| copied.time_column.clone(), |c| c.name.clone());
            let org_column = (copied.columns.iter())
                .find(|c| c.csv == "org_id" && c.ty == ColumnType::Bigint)
                .map(|c| c.name.clone());
            tables.insert(
                key,
                TableContext {
                    name: name.clone(),
                    db_table: def.table.clone(),
                    guid: None,
                    activity: Some(ActivityContext {
                        worksheet: copied.worksheet.clone(),
                        columns,
                        column_names: copied.columns.iter().map(|c| c.name.clone()).collect(),
                        user_column,
                        time_column: time_column.clone(),
                        org_column,
                    }),
                },
            );
            planned.push(Planned {
                template: format!("{key}.table.tml.j2"),
                kind: TmlKind::Table,
                object_name: name,
                key: Some(key),
                db_table: Some(def.table),
                db_columns: def.columns.into_iter().map(|c| (c.name, c.ty)).collect(),
                exact: true,
            });
            if let Some(view) = GroupActivityDef::of(source, copied, &settings.table_prefix, case) {
                let key = group_activity_key(source);
                let name = group_activity_name(source, &settings.table_prefix);
                let columns: Vec<ActivityColumnContext> = (view.columns.iter())
                    .filter(|c| c.csv != CLUSTER_ID)
                    .map(|c| ActivityColumnContext {
                        name: match MEMBERSHIP_NAMES.iter().find(|(csv, _)| *csv == c.csv) {
                            Some((_, name)) => (*name).to_owned(),
                            None => (copied.columns.iter())
                                .find(|a| a.csv == c.csv)
                                .map_or_else(|| c.csv.clone(), |a| a.name.clone()),
                        },
                        db: c.csv.clone(),
                        ty: c.ty.tml_types()[0],
                        measure: (copied.columns.iter()).any(|a| a.csv == c.csv && a.measure),
                    })
                    .collect();
                tables.insert(
                    key,
                    TableContext {
                        name: name.clone(),
                        db_table: view.view.clone(),
                        guid: None,
                        activity: Some(ActivityContext {
                            worksheet: copied.worksheet.clone(),
                            column_names: columns.iter().map(|c| c.name.clone()).collect(),
                            columns,
                            user_column: Some("User GUID".into()),
                            time_column,
                            org_column: Some("Org Id".into()),
                        }),
                    },
                );
                planned.push(Planned {
                    template: format!("{key}.table.tml.j2"),
                    kind: TmlKind::Table,
                    object_name: name,
                    key: Some(key),
                    db_table: Some(view.view),
                    db_columns: view.columns.into_iter().map(|c| (c.name, c.ty)).collect(),
                    exact: true,
                });
            }
        }
    }
    let (template, kind) = match settings.format {
        TmlFormat::Model => ("model.model.tml.j2", TmlKind::Model),
        TmlFormat::Worksheet => ("worksheet.worksheet.tml.j2", TmlKind::Worksheet),
    };
    planned.push(Planned {
        template: template.to_owned(),
        kind,
        object_name: settings.model_name.clone(),
        key: None,
        db_table: None,
        db_columns: Vec::new(),
        exact: false,
    });
    for item in &planned {
        if let Some(table) = item.key.and_then(|key| tables.get_mut(key)) {
            table.guid = guid_of(settings, item).map(str::to_owned);
        }
    }
    let context = Context {
        connection: settings.connection.as_deref(),
        database: &settings.database,
        schema: &settings.schema,
        model_name: &settings.model_name,
        tables,
    };
    (context, planned)
}

/// The names the group activity tables give the membership columns.
const MEMBERSHIP_NAMES: [(&str, &str); 5] = [
    ("org_id", "Org Id"),
    ("group_guid", "Group GUID"),
    ("user_guid", "User GUID"),
    ("is_direct", "Is Direct"),
    ("depth", "Depth"),
];

/// The template key of a group activity table (`group_activity_bi_server`).
fn group_activity_key(source: Source) -> &'static str {
    match source {
        Source::BiServer => "group_activity_bi_server",
        Source::AiBiStats => "group_activity_ai_bi_stats",
    }
}

/// The template key of an activity table (`activity_bi_server`).
fn activity_key(source: Source) -> &'static str {
    match source {
        Source::BiServer => "activity_bi_server",
        Source::AiBiStats => "activity_ai_bi_stats",
    }
}

/// Renders every TML file for `settings` (with the activity tables of the
/// worksheets `held` records), parses each back and checks the set. Files
/// come back ordered by file name.
pub fn render_all(
    settings: &TmlSettings,
    templates: &Templates,
    held: &Held,
) -> Result<Vec<TmlFile>, RenderError> {
    let mut env = templates.environment();
    add_identifier_case(&mut env, settings.identifier_case);
    let (context, planned) = plan(settings, held);
    let base = Value::from(Serde(&context));
    let mut files = Vec::new();
    let mut parsed = Vec::new();
    let mut problems = Vec::new();
    for item in &planned {
        let template_error = |e: minijinja::Error| RenderError::Template {
            template: item.template.clone(),
            message: describe_template_error(&e),
        };
        let template = env.get_template(&item.template).map_err(template_error)?;
        let guid = guid_of(settings, item);
        let obj_id = obj_id_of(settings, item);
        let obj_id = obj_id.as_deref();
        let ctx = match item.key.and_then(|key| context.tables.get(key)) {
            Some(table) => context! {
                table => Value::from(Serde(table)), guid => guid, obj_id => obj_id, ..base.clone()
            },
            None => context! { guid => guid, obj_id => obj_id, ..base.clone() },
        };
        let text = template.render(ctx).map_err(template_error)?;
        let file_name = format!("{}.{}", file_stem(&item.object_name), item.kind.suffix());
        let document =
            check::parse(item.kind, &text).map_err(|message| RenderError::ParseBack {
                file: file_name.clone(),
                template: item.template.clone(),
                message,
            })?;
        problems.extend(
            expectations(settings, item, &document)
                .into_iter()
                .chain(identity_expectations(settings, item, &text))
                .map(|message| check::Problem {
                    file: file_name.clone(),
                    message,
                }),
        );
        parsed.push((file_name.clone(), document));
        files.push(TmlFile {
            file_name,
            kind: item.kind,
            object_name: item.object_name.clone(),
            template: item.template.clone(),
            text,
        });
    }
    problems.extend(check::check_set(&parsed));
    let mut seen = BTreeMap::new();
    for file in &files {
        if let Some(other) = seen.insert(file.file_name.to_lowercase(), &file.file_name) {
            problems.push(check::Problem {
                file: file.file_name.clone(),
                message: format!("has the same file name as {other} on case-insensitive file systems; rename one of the objects"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(RenderError::Check { problems });
    }
    files.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(files)
}

/// What a rendered document must say, given the settings it came from:
/// the names and places the data is loaded under, read back exactly.
fn expectations(settings: &TmlSettings, item: &Planned, document: &check::Parsed) -> Vec<String> {
    let mut out = Vec::new();
    if document.name() != item.object_name {
        out.push(format!(
            "names {:?}, expected {:?}",
            document.name(),
            item.object_name
        ));
    }
    let check::Parsed::Table(table) = document else {
        return out;
    };
    let mut expect = |what: &str, found: Option<&str>, wanted: Option<&str>| {
        if found != wanted {
            out.push(format!("{what} is {found:?}, expected {wanted:?}"));
        }
    };
    expect("db", table.db.as_deref(), Some(&settings.database));
    expect("schema", table.schema.as_deref(), Some(&settings.schema));
    expect(
        "db_table",
        table.db_table.as_deref(),
        item.db_table.as_deref(),
    );
    expect(
        "connection",
        table.connection.as_ref().and_then(|c| c.name.as_deref()),
        settings.connection.as_deref(),
    );
    for (db, ty) in &item.db_columns {
        match table.columns.iter().find(|c| &c.db_column_name == db) {
            None => out.push(format!(
                "lacks the database column {db:?} the data has (identifier case {})",
                settings.identifier_case.as_str()
            )),
            Some(column) => {
                let found = column.data_type();
                if !found.is_some_and(|t| ty.tml_types().contains(&t)) {
                    out.push(format!(
                        "column {:?} ({db}) has data_type {found:?}, but the data holds {}; use {}",
                        column.name,
                        ty.sql_name(),
                        ty.tml_types().join(" or ")
                    ));
                }
            }
        }
    }
    if item.exact {
        let extra: Vec<&str> = (table.columns.iter())
            .map(|c| c.db_column_name.as_str())
            .filter(|c| !item.db_columns.iter().any(|(d, _)| d == c))
            .collect();
        if !extra.is_empty() {
            out.push(format!(
                "has database column(s) {extra:?} the data does not have"
            ));
        }
    }
    out
}

/// The GUID the map records for a planned file's object.
fn guid_of<'s>(settings: &'s TmlSettings, item: &Planned) -> Option<&'s str> {
    (settings.guids.get(&(item.kind, item.object_name.clone()))).map(String::as_str)
}

/// The `obj_id` a planned file gets (`tml.obj_ids`).
fn obj_id_of(settings: &TmlSettings, item: &Planned) -> Option<String> {
    settings
        .obj_ids
        .then(|| obj_id(&settings.table_prefix, item.key.unwrap_or(item.kind.name())))
}

/// The root `guid:` and `obj_id:` a rendered file must carry, and the
/// `fqn:` of every table its model names: what lets a re-import update the
/// same objects (a template override that leaves them out would make the
/// cluster create duplicates).
fn identity_expectations(settings: &TmlSettings, item: &Planned, text: &str) -> Vec<String> {
    let found = match check::identity(text) {
        Ok(found) => found,
        Err(message) => return vec![message],
    };
    // `"…"`, or `none`.
    let shown = |value: Option<&str>| value.map_or_else(|| "none".to_owned(), |v| format!("{v:?}"));
    let mut out = Vec::new();
    let guid = guid_of(settings, item);
    if found.guid.as_deref() != guid {
        out.push(format!(
            "has guid {}, but the GUID map (guids.json) records {} for {} {:?}; the template \
             must write `guid: {{{{ guid|yaml }}}}` first when guid is not none",
            shown(found.guid.as_deref()),
            shown(guid),
            item.kind.name(),
            item.object_name
        ));
    }
    let obj_id = obj_id_of(settings, item);
    if found.obj_id != obj_id {
        out.push(format!(
            "has obj_id {}, expected {} (tml.obj_ids); the template must write \
             `obj_id: {{{{ obj_id|yaml }}}}` when obj_id is not none",
            shown(found.obj_id.as_deref()),
            shown(obj_id.as_deref())
        ));
    }
    for (table, fqn) in &found.tables {
        let expected = settings.guids.get(&(TmlKind::Table, table.clone()));
        if fqn.as_ref() != expected {
            out.push(format!(
                "names table {table:?} with fqn {}, but the GUID map records {}; the template \
                 must write `fqn: {{{{ tables[key].guid|yaml }}}}` when it is not none",
                shown(fqn.as_deref()),
                shown(expected.map(String::as_str))
            ));
        }
    }
    out
}

/// minijinja's message with the template line, and its cause chain.
fn describe_template_error(error: &minijinja::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_render_and_check() {
        let files =
            render_all(&TmlSettings::default(), &Templates::builtin(), &Held::new()).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file_name.as_str()).collect();
        assert_eq!(names.len(), 9, "{names:?}");
        let held = crate::activity::sample_held();
        let files = render_all(&TmlSettings::default(), &Templates::builtin(), &held).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file_name.as_str()).collect();
        assert_eq!(names.len(), 13, "{names:?}");
        assert!(
            names.contains(&"TS_ACTIVITY_BI_SERVER.table.tml"),
            "{names:?}"
        );
        let off = TmlSettings {
            activity: false,
            ..TmlSettings::default()
        };
        assert_eq!(
            render_all(&off, &Templates::builtin(), &held)
                .unwrap()
                .len(),
            9
        );
        assert!(
            names.contains(&"TS_ Users and Groups.model.tml"),
            "{names:?}"
        );
    }
}
