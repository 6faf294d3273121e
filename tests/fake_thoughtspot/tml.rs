//! TML import on the fake ThoughtSpot: `POST /api/rest/2.0/metadata/tml/import`
//! keeps the tables, models and worksheets imported, per org, and checks each
//! document as a cluster does.
//!
//! - A document is read as YAML 1.1 reads it: a plain key such as `on:` or
//!   a plain value such as `yes`, `1_000` or `2024-01-01` where text belongs
//!   is not a string, so the document fails (line by line, before parsing).
//! - A `guid` updates that object of the caller's org; without one, an
//!   `obj_id` updates the org's object of that id (else creates one with
//!   it); without either the object is created, but a table whose database
//!   table another table of the org already maps is refused with
//!   ThoughtSpot's message. A model or worksheet without a guid is always
//!   created anew, duplicating one of the same name.
//! - Every table, join and column a document names must exist among the
//!   org's objects as the whole request leaves them: documents of one
//!   request may refer to each other in any order (a document that fails
//!   stores nothing, and those that needed it fail too).
//! - Import policies PARTIAL (and PARTIAL_OBJECT), ALL_OR_NONE and
//!   VALIDATE_ONLY; `create_new` creates every object anew.
//!
//! Faults: [`Faults::import_warning`],
//! [`Faults::import_drop_after_store`] and
//! [`Faults::import_gateway_timeout`]. `metadata/search` lists the objects
//! ([`Shared::listed_objects`]); tests read and change them with
//! [`Shared::objects`], [`Shared::delete_object`] and
//! [`Shared::import_by_hand`].

use std::fmt;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

#[cfg(doc)]
use super::Faults;
use super::{Seen, Shared, authorize, cut_off, error, json_response, no_v2, pause, seen};

/// The path of the import endpoint.
pub const IMPORT_PATH: &str = "/api/rest/2.0/metadata/tml/import";

/// The answer to every document of a failed ALL_OR_NONE (or VALIDATE_ONLY)
/// import that did not fail itself.
pub const NOT_IMPORTED: &str = "Not imported: the ALL_OR_NONE import had errors in other objects";

/// What an imported object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A table over a database table (`table:`).
    Table,
    /// A model (`model:`, ThoughtSpot 10 and later).
    Model,
    /// A worksheet (`worksheet:`, older clusters).
    Worksheet,
}

impl Kind {
    /// Its key in a document (`table`, `model`, `worksheet`), also its name
    /// in messages.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::Model => "model",
            Kind::Worksheet => "worksheet",
        }
    }

    /// The kind whose document key is `key`.
    fn of_key(key: &str) -> Option<Kind> {
        [Kind::Table, Kind::Model, Kind::Worksheet]
            .into_iter()
            .find(|k| k.key() == key)
    }
}

/// The database table a ThoughtSpot table maps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DbTable {
    /// The connection's name; `None` for a Falcon table.
    pub connection: Option<String>,
    /// `db`: the database.
    pub db: String,
    /// `schema`.
    pub schema: String,
    /// `db_table`: the table's name in the database.
    pub db_table: String,
}

impl fmt::Display for DbTable {
    /// `db.schema.db_table`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.db, self.schema, self.db_table)
    }
}

/// An object imported into the fake.
#[derive(Clone, Debug)]
pub struct Object {
    /// Assigned by the fake when the object is created.
    pub guid: String,
    /// The org of the token that imported it.
    pub org: i64,
    /// Table, model or worksheet.
    pub kind: Kind,
    /// Its ThoughtSpot name (`name`).
    pub name: String,
    /// The `obj_id` it was imported with, unique in its org.
    pub obj_id: Option<String>,
    /// What a table maps (`None` for models and worksheets).
    pub db_table: Option<DbTable>,
    /// Column names: `columns[].name` (tables, models) or
    /// `worksheet_columns[].name`.
    pub columns: Vec<String>,
    /// The names of a table's joins (`joins_with[].name`).
    pub joins: Vec<String>,
    /// The document last imported.
    pub tml: String,
    /// 1 when created, one more at each update.
    pub version: u64,
}

/// The objects of every org.
#[derive(Debug, Default)]
pub struct Store {
    objects: Vec<Object>,
    /// Objects created so far (GUIDs are made from it).
    created: u64,
}

/// A store for a new fake cluster.
pub fn new_store() -> Arc<Mutex<Store>> {
    Arc::default()
}

/// How a request imports its documents (`import_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Each document on its own (also PARTIAL_OBJECT).
    Partial,
    /// All documents, or none when any fails.
    AllOrNone,
    /// Checked as ALL_OR_NONE, never stored.
    ValidateOnly,
}

impl Policy {
    /// The policy named `text`, or the error message.
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "PARTIAL" | "PARTIAL_OBJECT" => Ok(Policy::Partial),
            "ALL_OR_NONE" => Ok(Policy::AllOrNone),
            "VALIDATE_ONLY" => Ok(Policy::ValidateOnly),
            other => Err(format!(
                "Invalid import_policy {other}: expected PARTIAL, ALL_OR_NONE, VALIDATE_ONLY \
                 or PARTIAL_OBJECT"
            )),
        }
    }
}

/// An import request's body.
struct Request {
    docs: Vec<String>,
    policy: Policy,
    create_new: bool,
}

impl Request {
    /// The request in `body`, or the message of a 400.
    fn read(body: &Bytes) -> Result<Self, String> {
        let request: Value =
            serde_json::from_slice(body).map_err(|_| "request body is not JSON".to_owned())?;
        let docs = match request.get("metadata_tmls") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>(),
            _ => None,
        }
        .ok_or("metadata_tmls is required: an array of TML documents (strings)")?;
        let policy = match request.get("import_policy") {
            None | Some(Value::Null) => Policy::Partial,
            Some(Value::String(text)) => Policy::parse(text)?,
            Some(other) => return Err(format!("Invalid import_policy {other}")),
        };
        let create_new = match request.get("create_new") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("create_new must be true or false, not {other}")),
        };
        Ok(Request {
            docs,
            policy,
            create_new,
        })
    }
}

/// A document imported (or found valid).
#[derive(Clone, Debug)]
struct Done {
    guid: String,
    name: String,
    obj_id: Option<String>,
    /// The document named its object's GUID.
    named: bool,
}

/// What became of one document: its object, or the error message.
type Outcome = Result<Done, String>;

impl Store {
    /// Imports `docs` into `org`: one outcome per document, in order.
    ///
    /// Each document's object is placed in order (created, or updated in
    /// place); then every reference is checked against the objects as the
    /// whole request leaves them. A document whose references fail is
    /// taken out and the request placed again without it (others may have
    /// needed it), until every document left passes.
    fn import(
        &mut self,
        org: i64,
        docs: &[String],
        policy: Policy,
        create_new: bool,
    ) -> Vec<Outcome> {
        let mut refused: Vec<Option<String>> = vec![None; docs.len()];
        let pass = loop {
            let pass = self.place_all(org, docs, &refused, create_new);
            let mut again = false;
            for (i, placed) in pass.placed.iter().enumerate() {
                if let Ok(placed) = placed
                    && let Err(e) = check_references(placed, &pass.objects)
                {
                    refused[i] = Some(e);
                    again = true;
                }
            }
            if !again {
                break pass;
            }
        };
        let mut outcomes: Vec<Outcome> = pass
            .placed
            .into_iter()
            .map(|placed| placed.map(|p| p.done))
            .collect();
        let failed = outcomes.iter().any(Result::is_err);
        self.created = pass.created;
        if policy == Policy::Partial || (policy == Policy::AllOrNone && !failed) {
            self.objects = pass.objects;
        }
        if failed && policy != Policy::Partial {
            for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
                *outcome = Err(NOT_IMPORTED.to_owned());
            }
        }
        outcomes
    }

    /// Places the documents not `refused`, in order, into a copy of the
    /// objects.
    fn place_all(
        &self,
        org: i64,
        docs: &[String],
        refused: &[Option<String>],
        create_new: bool,
    ) -> Pass {
        let mut objects = self.objects.clone();
        let mut created = self.created;
        let placed = docs
            .iter()
            .zip(refused)
            .map(|(doc, refused)| match refused {
                Some(e) => Err(e.clone()),
                None => place(&mut objects, &mut created, org, doc, create_new),
            })
            .collect();
        Pass {
            objects,
            created,
            placed,
        }
    }
}

/// The objects as a request's documents leave them.
struct Pass {
    objects: Vec<Object>,
    /// [`Store::created`] after it.
    created: u64,
    /// Each document placed, or why not.
    placed: Vec<Result<Placed, String>>,
}

/// A document whose object is placed.
struct Placed {
    root: Value,
    done: Done,
}

/// Reads one document and places its object in `objects` (changed only
/// when it succeeds), without looking at its references.
fn place(
    objects: &mut Vec<Object>,
    created: &mut u64,
    org: i64,
    text: &str,
    create_new: bool,
) -> Result<Placed, String> {
    check_yaml11(text)?;
    let root: Value = serde_saphyr::from_str(text)
        .map_err(|e| format!("Invalid TML: {}", e.without_snippet()))?;
    let doc = Doc::read(&root)?;
    let mut object = doc.object(org, text)?;
    let target = if create_new {
        None
    } else {
        doc.target(objects, org)?
    };
    match target {
        Some(i) => {
            let old = &objects[i];
            object.guid = old.guid.clone();
            object.version = old.version + 1;
            if object.obj_id.is_none() {
                object.obj_id = old.obj_id.clone();
            }
        }
        None => {
            *created += 1;
            object.guid = format!("{:08x}-1111-4000-8000-{:012x}", org as u32, *created);
            if create_new {
                object.obj_id = None;
            }
        }
    }
    check_obj_id(objects, &object)?;
    check_db_table(objects, &object, target.is_some())?;
    let done = Done {
        guid: object.guid.clone(),
        name: object.name.clone(),
        obj_id: object.obj_id.clone(),
        named: doc.guid.is_some() && !create_new,
    };
    match target {
        Some(i) => objects[i] = object,
        None => objects.push(object),
    }
    Ok(Placed { root, done })
}

/// Every table, join and column a placed document names exists among
/// `objects`.
fn check_references(placed: &Placed, objects: &[Object]) -> Result<(), String> {
    let doc = Doc::read(&placed.root)?;
    let object = objects
        .iter()
        .find(|o| o.guid == placed.done.guid)
        .expect("a placed object");
    let scope = Scope::new(objects, object.org);
    match doc.kind {
        Kind::Table => check_table(doc.body, object, &scope),
        Kind::Model => check_model(doc.body, &object.name, &scope),
        Kind::Worksheet => check_worksheet(doc.body, &object.name, &scope),
    }
}

/// No other object of the org has `object`'s obj_id.
fn check_obj_id(objects: &[Object], object: &Object) -> Result<(), String> {
    let Some(obj_id) = &object.obj_id else {
        return Ok(());
    };
    match objects
        .iter()
        .find(|o| o.org == object.org && o.guid != object.guid && o.obj_id.as_ref() == Some(obj_id))
    {
        Some(other) => Err(format!(
            "obj_id {obj_id} is already used by {} {} (GUID {})",
            other.kind.key(),
            other.name,
            other.guid
        )),
        None => Ok(()),
    }
}

/// No other table of the org maps `object`'s database table.
fn check_db_table(objects: &[Object], object: &Object, updating: bool) -> Result<(), String> {
    let Some(mapped) = &object.db_table else {
        return Ok(());
    };
    let Some(other) = objects.iter().find(|o| {
        o.org == object.org && o.guid != object.guid && o.db_table.as_ref() == Some(mapped)
    }) else {
        return Ok(());
    };
    Err(if updating {
        format!(
            "Table {} cannot map {mapped}: table {} (GUID {}) already maps it",
            object.name, other.name, other.guid
        )
    } else {
        format!(
            "Cannot create a new table as the table in the TML file already exists \
             ({mapped}, GUID {})",
            other.guid
        )
    })
}

// ---------------------------------------------------------------------------
// Reading a document
// ---------------------------------------------------------------------------

/// A YAML mapping, as parsed.
type Mapping = Map<String, Value>;

/// A document's root: its identity and the object's mapping.
struct Doc<'a> {
    kind: Kind,
    guid: Option<&'a str>,
    obj_id: Option<&'a str>,
    body: &'a Mapping,
}

impl<'a> Doc<'a> {
    /// The document `root`: a mapping with `guid` and `obj_id` (both
    /// optional) and exactly one object key.
    fn read(root: &'a Value) -> Result<Self, String> {
        let root = root
            .as_object()
            .ok_or("Invalid TML: the document is not a mapping")?;
        let mut found: Option<(Kind, &Mapping)> = None;
        for (key, value) in root {
            if key == "guid" || key == "obj_id" {
                continue;
            }
            let kind =
                Kind::of_key(key).ok_or_else(|| format!("Invalid TML: unknown key `{key}`"))?;
            if let Some((other, _)) = found {
                return Err(format!(
                    "Invalid TML: both `{}` and `{key}` in one document",
                    other.key()
                ));
            }
            let body = value
                .as_object()
                .ok_or_else(|| format!("Invalid TML: `{key}` is not a mapping"))?;
            found = Some((kind, body));
        }
        let (kind, body) = found.ok_or("Invalid TML: no `table`, `model` or `worksheet`")?;
        Ok(Doc {
            kind,
            guid: text(root, "guid", "the document")?,
            obj_id: text(root, "obj_id", "the document")?,
            body,
        })
    }

    /// The object the document describes, without its GUID and version.
    fn object(&self, org: i64, tml: &str) -> Result<Object, String> {
        let kind = self.kind.key();
        let name = required(self.body, "name", &format!("the {kind}"))?;
        let place = format!("{kind} {name}");
        text(self.body, "description", &place)?;
        let (db_table, columns, joins) = match self.kind {
            Kind::Table => (
                Some(db_table_of(self.body, &place)?),
                names(self.body, "columns", &place)?,
                names(self.body, "joins_with", &place)?,
            ),
            Kind::Model => (None, names(self.body, "columns", &place)?, Vec::new()),
            Kind::Worksheet => (
                None,
                names(self.body, "worksheet_columns", &place)?,
                Vec::new(),
            ),
        };
        Ok(Object {
            guid: String::new(),
            org,
            kind: self.kind,
            name: name.to_owned(),
            obj_id: self.obj_id.map(str::to_owned),
            db_table,
            columns,
            joins,
            tml: tml.to_owned(),
            version: 1,
        })
    }

    /// The index of the object of `org` the document updates, if any.
    fn target(&self, objects: &[Object], org: i64) -> Result<Option<usize>, String> {
        let (found, who) = if let Some(guid) = self.guid {
            let i = objects
                .iter()
                .position(|o| o.org == org && o.guid == guid)
                .ok_or_else(|| format!("Object with GUID {guid} does not exist in this org"))?;
            (Some(i), format!("GUID {guid}"))
        } else if let Some(obj_id) = self.obj_id {
            let i = objects
                .iter()
                .position(|o| o.org == org && o.obj_id.as_deref() == Some(obj_id));
            (i, format!("obj_id {obj_id}"))
        } else {
            (None, String::new())
        };
        match found {
            Some(i) if objects[i].kind != self.kind => Err(format!(
                "Object with {who} is a {}, not a {}",
                objects[i].kind.key(),
                self.kind.key()
            )),
            found => Ok(found),
        }
    }
}

/// `key` of `map` as text, when there (null counts as absent).
fn text<'a>(map: &'a Mapping, key: &str, place: &str) -> Result<Option<&'a str>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "Invalid TML: `{key}` of {place} is not a string: {other}"
        )),
    }
}

/// `key` of `map` as text, which must be there.
fn required<'a>(map: &'a Mapping, key: &str, place: &str) -> Result<&'a str, String> {
    text(map, key, place)?.ok_or_else(|| format!("Invalid TML: {place} has no `{key}`"))
}

/// The mappings listed under `key` (none when it is absent).
fn items<'a>(map: &'a Mapping, key: &str, place: &str) -> Result<Vec<&'a Mapping>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|item| {
                item.as_object().ok_or_else(|| {
                    format!("Invalid TML: an entry of `{key}` of {place} is not a mapping")
                })
            })
            .collect(),
        Some(_) => Err(format!("Invalid TML: `{key}` of {place} is not a list")),
    }
}

/// The `name` of each entry listed under `key`.
fn names(map: &Mapping, key: &str, place: &str) -> Result<Vec<String>, String> {
    let entry = format!("an entry of `{key}` of {place}");
    items(map, key, place)?
        .into_iter()
        .map(|item| required(item, "name", &entry).map(str::to_owned))
        .collect()
}

/// The mapping under `key`, which must be there.
fn mapping<'a>(map: &'a Mapping, key: &str, place: &str) -> Result<&'a Mapping, String> {
    match map.get(key) {
        Some(Value::Object(inner)) => Ok(inner),
        None | Some(Value::Null) => Err(format!("Invalid TML: {place} has no `{key}`")),
        Some(_) => Err(format!("Invalid TML: `{key}` of {place} is not a mapping")),
    }
}

/// The database table a table's document maps.
fn db_table_of(table: &Mapping, place: &str) -> Result<DbTable, String> {
    let connection = match table.get("connection") {
        None | Some(Value::Null) => None,
        Some(_) => Some(required(
            mapping(table, "connection", place)?,
            "name",
            "its connection",
        )?),
    };
    Ok(DbTable {
        connection: connection.map(str::to_owned),
        db: required(table, "db", place)?.to_owned(),
        schema: required(table, "schema", place)?.to_owned(),
        db_table: required(table, "db_table", place)?.to_owned(),
    })
}

// ---------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------

/// The objects of one org a document may refer to, as its request leaves
/// them.
struct Scope<'a> {
    objects: Vec<&'a Object>,
}

impl<'a> Scope<'a> {
    /// The objects of `org` among `objects`.
    fn new(objects: &'a [Object], org: i64) -> Self {
        Scope {
            objects: objects.iter().filter(|o| o.org == org).collect(),
        }
    }

    /// The table named `name` (the one of GUID `fqn` when given).
    fn table(&self, name: &str, fqn: Option<&str>) -> Result<&'a Object, String> {
        let tables = self.objects.iter().filter(|o| o.kind == Kind::Table);
        if let Some(fqn) = fqn {
            let table = tables
                .clone()
                .find(|o| o.guid == fqn)
                .ok_or_else(|| format!("Invalid TML: table {name} (fqn {fqn}) does not exist"))?;
            return if table.name == name {
                Ok(table)
            } else {
                Err(format!(
                    "Invalid TML: fqn {fqn} is table {}, not {name}",
                    table.name
                ))
            };
        }
        let mut named = tables.filter(|o| o.name == name);
        match (named.next(), named.next()) {
            (Some(table), None) => Ok(table),
            (None, _) => Err(format!("Invalid TML: table {name} does not exist")),
            (Some(_), Some(_)) => Err(format!(
                "Invalid TML: Multiple tables named {name}; give fqn"
            )),
        }
    }
}

/// The tables a model or worksheet names, each by the name it is referred
/// to by (model table name or alias, worksheet table name, table path id).
struct Members<'a> {
    /// What a member is called in messages ("model table", "table path").
    what: &'static str,
    list: Vec<(&'a str, &'a Object)>,
}

impl<'a> Members<'a> {
    /// No members yet; `what` names them in messages.
    fn new(what: &'static str) -> Self {
        Members {
            what,
            list: Vec::new(),
        }
    }

    /// `table`, referred to as `key` (which must be new).
    fn add(&mut self, key: &'a str, table: &'a Object) -> Result<(), String> {
        if self.get(key).is_ok() {
            return Err(format!("Invalid TML: {} {key} appears twice", self.what));
        }
        self.list.push((key, table));
        Ok(())
    }

    /// The table referred to as `key`.
    fn get(&self, key: &str) -> Result<&'a Object, String> {
        self.list
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, table)| *table)
            .ok_or_else(|| format!("Invalid TML: {} {key} does not exist", self.what))
    }

    /// `column` of the member `key`.
    fn column(&self, key: &str, column: &str, place: &str) -> Result<(), String> {
        has_column(self.get(key)?, key, column, place)
    }

    /// Every `[KEY::column]` of `expr`.
    fn check_expr(&self, expr: &str, place: &str) -> Result<(), String> {
        column_refs(expr).try_for_each(|(key, column)| self.column(key, column, place))
    }

    /// A `column_id`, `KEY::column`.
    fn check_column_id(&self, id: &str, place: &str) -> Result<(), String> {
        let (key, column) = id
            .split_once("::")
            .ok_or_else(|| format!("Invalid TML: column_id {id} of {place} is not KEY::column"))?;
        self.column(key, column, place)
    }
}

/// `column` is a column of `table` (referred to as `key`).
fn has_column(table: &Object, key: &str, column: &str, place: &str) -> Result<(), String> {
    if table.columns.iter().any(|c| c == column) {
        Ok(())
    } else {
        Err(format!(
            "Invalid TML: column {key}::{column} does not exist (in {place})"
        ))
    }
}

/// The `[TABLE::column]` references of an expression.
fn column_refs(expr: &str) -> impl Iterator<Item = (&str, &str)> {
    expr.split('[')
        .skip(1)
        .filter_map(|part| part.split_once(']'))
        .filter_map(|(inside, _)| inside.split_once("::"))
}

/// A table's joins: each destination exists, each `on` names columns of
/// the two tables.
fn check_table(body: &Mapping, table: &Object, scope: &Scope) -> Result<(), String> {
    let place = format!("table {}", table.name);
    for column in items(body, "columns", &place)? {
        text(column, "db_column_name", &place)?;
    }
    for join in items(body, "joins_with", &place)? {
        let join_place = format!("join {} of {place}", required(join, "name", &place)?);
        let destination = mapping(join, "destination", &join_place)?;
        let other = scope.table(
            required(destination, "name", &join_place)?,
            text(destination, "fqn", &join_place)?,
        )?;
        let on = required(join, "on", &join_place)?;
        let on_place = format!("the `on` of {join_place}");
        for (name, column) in column_refs(on) {
            let side = [table, other]
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| {
                    format!(
                        "Invalid TML: table {name} does not exist in {join_place}, which joins \
                         {} and {}",
                        table.name, other.name
                    )
                })?;
            has_column(side, name, column, &on_place)?;
        }
    }
    Ok(())
}

/// A model's tables, joins, columns and formulas.
fn check_model(body: &Mapping, name: &str, scope: &Scope) -> Result<(), String> {
    let place = format!("model {name}");
    let entries = items(body, "model_tables", &place)?;
    let mut tables = Members::new("model table");
    for entry in &entries {
        let (key, table) = member(entry, scope, &place)?;
        tables.add(key, table)?;
    }
    for entry in &entries {
        let (key, source) = member(entry, scope, &place)?;
        let join_place = format!("the joins of model table {key}");
        for join in items(entry, "joins", &join_place)? {
            tables.get(required(join, "with", &join_place)?)?;
            if let Some(referenced) = text(join, "referencing_join", &join_place)?
                && !source.joins.iter().any(|j| j == referenced)
            {
                return Err(format!(
                    "Invalid TML: join {referenced} of table {} does not exist",
                    source.name
                ));
            }
            if let Some(on) = text(join, "on", &join_place)? {
                tables.check_expr(on, &join_place)?;
            }
        }
    }
    check_columns_and_formulas(body, "columns", &tables, &place)
}

/// A model table or worksheet table entry: the name it is referred to by
/// (its alias, else its name) and its table.
fn member<'a>(
    entry: &'a Mapping,
    scope: &Scope<'a>,
    place: &str,
) -> Result<(&'a str, &'a Object), String> {
    let name = required(entry, "name", place)?;
    let table = scope.table(name, text(entry, "fqn", place)?)?;
    Ok((text(entry, "alias", place)?.unwrap_or(name), table))
}

/// Each `column_id` of the columns under `key`, each formula's `expr`.
fn check_columns_and_formulas(
    body: &Mapping,
    key: &str,
    members: &Members,
    place: &str,
) -> Result<(), String> {
    for column in items(body, key, place)? {
        let column_place = format!("column {} of {place}", required(column, "name", place)?);
        if let Some(id) = text(column, "column_id", &column_place)? {
            members.check_column_id(id, &column_place)?;
        }
    }
    for formula in items(body, "formulas", place)? {
        let formula_place = format!("a formula of {place}");
        if let Some(expr) = text(formula, "expr", &formula_place)? {
            members.check_expr(expr, &formula_place)?;
        }
    }
    Ok(())
}

/// A worksheet's tables, joins, table paths, columns and formulas.
fn check_worksheet(body: &Mapping, name: &str, scope: &Scope) -> Result<(), String> {
    let place = format!("worksheet {name}");
    let mut tables = Members::new("worksheet table");
    for entry in items(body, "tables", &place)? {
        let (key, table) = member(entry, scope, &place)?;
        tables.add(key, table)?;
    }
    for join in items(body, "joins", &place)? {
        let join_name = required(join, "name", &place)?;
        let join_place = format!("join {join_name} of {place}");
        let source = tables.get(required(join, "source", &join_place)?)?;
        tables.get(required(join, "destination", &join_place)?)?;
        if !source.joins.iter().any(|j| j == join_name) {
            return Err(format!(
                "Invalid TML: join {join_name} of table {} does not exist",
                source.name
            ));
        }
    }
    let mut paths = Members::new("table path");
    for path in items(body, "table_paths", &place)? {
        let id = required(path, "id", &place)?;
        let table = tables.get(required(path, "table", &format!("table path {id}"))?)?;
        paths.add(id, table)?;
    }
    check_columns_and_formulas(body, "worksheet_columns", &paths, &place)
}

// ---------------------------------------------------------------------------
// YAML 1.1
// ---------------------------------------------------------------------------

/// Plain scalars YAML 1.1 reads as booleans.
const BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
];

/// Plain scalars YAML 1.1 reads as null.
const NULLS: &[&str] = &["null", "Null", "NULL", "~"];

/// Keys whose values are text in TML.
const TEXT_KEYS: &[&str] = &[
    "name",
    "description",
    "db",
    "schema",
    "db_table",
    "db_column_name",
    "expr",
    "column_id",
    "formula_id",
    "with",
    "referencing_join",
    "on",
    "guid",
    "obj_id",
    "fqn",
    "alias",
    "id",
    "table",
    "source",
    "destination",
];

/// What YAML 1.1 reads a plain scalar as, when not a string.
fn yaml11_reading(plain: &str) -> Option<&'static str> {
    if BOOLEANS.contains(&plain) {
        Some("a boolean")
    } else if NULLS.contains(&plain) {
        Some("null")
    } else if is_int(plain) {
        Some("an integer")
    } else if is_float(plain) {
        Some("a float")
    } else if is_date(plain) {
        Some("a date")
    } else {
        None
    }
}

/// `[0-9][0-9_]*`.
fn is_digits(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

/// Base 60: `[0-9][0-9_]*(:[0-5]?[0-9])+`.
fn is_sexagesimal(s: &str) -> bool {
    let mut parts = s.split(':');
    let first = parts.next().is_some_and(is_digits);
    let mut rest = parts.peekable();
    first
        && rest.peek().is_some()
        && rest.all(|p| {
            let b = p.as_bytes();
            match b {
                [d] => d.is_ascii_digit(),
                [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
                _ => false,
            }
        })
}

/// `s` without a leading sign.
fn unsigned(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

/// A YAML 1.1 integer: decimal, `0b`, `0x`, octal `0…`, base 60, with `_`.
fn is_int(s: &str) -> bool {
    let s = unsigned(s);
    let all = |s: &str, ok: fn(u8) -> bool| !s.is_empty() && s.bytes().all(|b| ok(b) || b == b'_');
    if let Some(bits) = s.strip_prefix("0b") {
        all(bits, |b| b == b'0' || b == b'1')
    } else if let Some(hex) = s.strip_prefix("0x") {
        all(hex, |b| b.is_ascii_hexdigit())
    } else {
        is_digits(s) || is_sexagesimal(s)
    }
}

/// A YAML 1.1 float (`1.5`, `.5`, `1e3`, `1.5e-3`, `190:20:30.15`, `.inf`,
/// `.nan`).
fn is_float(s: &str) -> bool {
    let s = unsigned(s);
    if matches!(s, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(unsigned(&s[i + 1..]))),
        None => (s, None),
    };
    if exponent.is_some_and(|e| e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let fraction = |f: &str| f.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    match mantissa.split_once('.') {
        Some(("", f)) => !f.is_empty() && fraction(f),
        Some((whole, f)) => {
            fraction(f) && (is_digits(whole) || (exponent.is_none() && is_sexagesimal(whole)))
        }
        None => exponent.is_some() && is_digits(mantissa),
    }
}

/// A YAML 1.1 timestamp: `2024-01-01`, or `2024-1-1` followed by a time.
fn is_date(s: &str) -> bool {
    let (date, time) = match s.find(['T', 't', ' ', '\t']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim_start())),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let digits = |p: &str, lengths: &[usize]| {
        lengths.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
    };
    let day_lengths: &[usize] = if time.is_some() { &[1, 2] } else { &[2] };
    let date_ok = matches!(parts[..], [y, m, d] if digits(y, &[4]) && digits(m, day_lengths) && digits(d, day_lengths));
    date_ok
        && time.is_none_or(|t| {
            let mut clock = t.splitn(3, ':');
            let (h, m, s) = (clock.next(), clock.next(), clock.next());
            h.is_some_and(|h| digits(h, &[1, 2]))
                && m.is_some_and(|m| digits(m, &[2]))
                && s.is_some_and(|s| s.get(..2).is_some_and(|s| digits(s, &[2])))
        })
}

/// One `key: value` line of a block mapping, as written.
struct Entry<'a> {
    key: &'a str,
    /// The key is written plain (unquoted).
    plain_key: bool,
    /// The key's column.
    column: usize,
    /// What follows the colon, trimmed.
    value: &'a str,
}

/// The `key: value` on `line` (after any `- `), if it holds one.
fn entry(line: &str) -> Option<Entry<'_>> {
    let mut rest = line.trim_start_matches(' ');
    while let Some(after) = rest.strip_prefix('-')
        && after.starts_with([' ', '\t'])
    {
        rest = after.trim_start();
    }
    let column = line.len() - rest.len();
    let (key, plain_key, after) = match rest.chars().next()? {
        quote @ ('"' | '\'') => {
            let end = closing_quote(&rest[1..], quote)? + 1;
            (&rest[1..end], false, &rest[end + 1..])
        }
        c if "#[]{}&*!|>%@`,?".contains(c) => return None,
        _ => {
            let end = plain_key_end(rest)?;
            (&rest[..end], true, &rest[end..])
        }
    };
    let value = after.strip_prefix(':')?;
    (value.is_empty() || value.starts_with([' ', '\t'])).then(|| Entry {
        key,
        plain_key,
        column,
        value: value.trim(),
    })
}

/// Where a plain key ends: at the first `:` followed by a blank or the end
/// of the line, unless a comment comes first.
fn plain_key_end(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'#' if i > 0 && matches!(bytes[i - 1], b' ' | b'\t') => return None,
            b':' if matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')) => return Some(i),
            _ => {}
        }
    }
    None
}

/// Where the quoted scalar `quote` opened before `text` closes in it.
fn closing_quote(text: &str, quote: char) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && chars.peek().is_some_and(|&(_, n)| n == '\'') {
                chars.next();
            } else {
                return Some(i);
            }
        }
    }
    None
}

/// A plain value without its trailing comment.
fn without_comment(value: &str) -> &str {
    match value.find(" #").or_else(|| value.find("\t#")) {
        Some(i) => value[..i].trim_end(),
        None => value,
    }
}

/// Lines that continue a scalar begun on an earlier line.
#[derive(Clone, Copy)]
enum Within {
    /// A `|` or `>` scalar of a key at this column.
    Block(usize),
    /// A quoted scalar not closed yet.
    Quoted(char),
}

/// Fails at the first plain key that YAML 1.1 reads as a boolean or null,
/// or the first plain value of a text key that it reads as anything but a
/// string.
fn check_yaml11(text: &str) -> Result<(), String> {
    let mut within: Option<Within> = None;
    for (i, line) in text.lines().enumerate() {
        match within {
            Some(Within::Block(column))
                if line.trim().is_empty()
                    || line.len() - line.trim_start_matches(' ').len() > column =>
            {
                continue;
            }
            Some(Within::Quoted(quote)) => {
                if closing_quote(line, quote).is_some() {
                    within = None;
                }
                continue;
            }
            _ => within = None,
        }
        let Some(entry) = entry(line) else {
            continue;
        };
        let fail = |what: String, reads: &str| {
            Err(format!(
                "Invalid TML: line {}: {what} is not a string (YAML 1.1 reads it as {reads})",
                i + 1
            ))
        };
        if entry.plain_key
            && let Some(reads) =
                yaml11_reading(entry.key).filter(|r| matches!(*r, "a boolean" | "null"))
        {
            return fail(format!("key `{}`", entry.key), reads);
        }
        match entry.value.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                if closing_quote(&entry.value[1..], quote).is_none() {
                    within = Some(Within::Quoted(quote));
                }
            }
            Some('|' | '>') => within = Some(Within::Block(entry.column)),
            Some('[' | '{' | '&' | '*' | '!' | '#') | None => {}
            Some(_) => {
                let plain = without_comment(entry.value);
                if TEXT_KEYS.contains(&entry.key)
                    && let Some(reads) = yaml11_reading(plain)
                {
                    return fail(format!("the value `{plain}` of `{}`", entry.key), reads);
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------

impl Shared {
    /// Every object imported so far, in all orgs, sorted by org, kind, name
    /// and GUID.
    pub fn objects(&self) -> Vec<Object> {
        let mut objects = self.tml.lock().unwrap().objects.clone();
        objects.sort_by(|a, b| {
            (a.org, a.kind, &a.name, &a.guid).cmp(&(b.org, b.kind, &b.name, &b.guid))
        });
        objects
    }

    /// Deletes the object of GUID `guid` (of any org): false when there is
    /// none.
    pub fn delete_object(&self, guid: &str) -> bool {
        let mut store = self.tml.lock().unwrap();
        let before = store.objects.len();
        store.objects.retain(|o| o.guid != guid);
        store.objects.len() < before
    }

    /// Imports one document into `org` as a person would in the UI: the
    /// endpoint's rules, PARTIAL, the document as written. The object's
    /// GUID, or the error message.
    pub fn import_by_hand(&self, org: i64, tml: &str) -> Result<String, String> {
        let mut outcomes =
            self.tml
                .lock()
                .unwrap()
                .import(org, &[tml.to_owned()], Policy::Partial, false);
        outcomes.remove(0).map(|done| done.guid)
    }

    /// The objects of `org` that one of `entries` (of a `metadata/search`)
    /// asks for, as the search lists them.
    pub(super) fn listed_objects(&self, org: i64, entries: &[Value]) -> Vec<Value> {
        self.objects()
            .iter()
            .filter(|o| o.org == org)
            .filter(|o| {
                entries
                    .iter()
                    .any(|e| super::activity::asked_for(e, &o.guid, &o.name, o.obj_id.as_deref()))
            })
            .map(listing)
            .collect()
    }
}

/// An object as `metadata/search` lists it.
fn listing(object: &Object) -> Value {
    let mut header = json!({
        "id": object.guid,
        "name": object.name,
        "type": if object.kind == Kind::Table { "ONE_TO_ONE_LOGICAL" } else { "WORKSHEET" },
        "obj_id": object.obj_id,
    });
    match (object.kind, &object.db_table) {
        (Kind::Model, _) => header["worksheetVersion"] = json!("V2"),
        (Kind::Worksheet, _) => header["worksheetVersion"] = json!("V1"),
        (Kind::Table, Some(mapped)) => {
            header["dataSourceName"] = json!(mapped.connection.as_deref().unwrap_or("Falcon"));
            header["databaseStripe"] = json!(mapped.db);
            header["schemaStripe"] = json!(mapped.schema);
            header["physicalTableName"] = json!(mapped.db_table);
        }
        (Kind::Table, None) => {}
    }
    json!({
        "metadata_id": object.guid,
        "metadata_name": object.name,
        "metadata_type": "LOGICAL_TABLE",
        "metadata_obj_id": object.obj_id,
        "metadata_header": header,
    })
}

/// One document's item in the import's answer.
fn answer_item(outcome: &Outcome, policy: Policy, warning: Option<&str>) -> Value {
    let done = match outcome {
        Ok(done) => done,
        Err(message) => {
            return json!({"response": {"status": {"status_code": "ERROR", "error_message": message}}});
        }
    };
    let mut header = json!({
        "name": done.name,
        "type": "LOGICAL_TABLE",
        "metadata_type": "LOGICAL_TABLE",
        "obj_id": done.obj_id,
    });
    if policy != Policy::ValidateOnly || done.named {
        header["id_guid"] = json!(done.guid);
    }
    let status = if warning == Some(done.name.as_str()) {
        json!({"status_code": "WARNING", "error_message": format!("fake warning: {}", done.name)})
    } else {
        json!({"status_code": "OK"})
    };
    json!({"response": {"status": status, "header": header}})
}

/// `POST /api/rest/2.0/metadata/tml/import`.
pub async fn import(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    pause(&state).await;
    let mut log = seen("POST", IMPORT_PATH, &headers, &body);
    let response = import_response(&state, &headers, &body, &mut log);
    log.status = response.status().as_u16();
    state.record(log);
    response
}

/// The import's answer: 401/404/400 as other endpoints, else one item per
/// document (or a cut connection).
fn import_response(state: &Shared, headers: &HeaderMap, body: &Bytes, log: &mut Seen) -> Response {
    if let Some(r) = no_v2(state) {
        return r;
    }
    let org = match authorize(state, headers) {
        Ok(org) => org,
        Err(r) => return r,
    };
    log.org = Some(org);
    let request = match Request::read(body) {
        Ok(request) => request,
        Err(message) => return error(StatusCode::BAD_REQUEST, 10002, &message),
    };
    let outcomes =
        state
            .tml
            .lock()
            .unwrap()
            .import(org, &request.docs, request.policy, request.create_new);
    let (warning, cut, gateway) = {
        let faults = state.faults.lock().unwrap();
        (
            faults.import_warning.clone(),
            faults.import_drop_after_store,
            faults.import_gateway_timeout,
        )
    };
    if cut {
        return cut_off(Bytes::new());
    }
    if gateway {
        return error(
            StatusCode::GATEWAY_TIMEOUT,
            10002,
            "upstream request timeout (the gateway gave up; the cluster went on)",
        );
    }
    let items = outcomes
        .iter()
        .map(|o| answer_item(o, request.policy, warning.as_deref()))
        .collect();
    json_response(&Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of TS_USERS-like columns mapping `ANALYTICS.TS.<db_table>`.
    fn table(head: &str, name: &str, db_table: &str) -> String {
        format!(
            "{head}table:\n  name: \"{name}\"\n  db: \"ANALYTICS\"\n  schema: \"TS\"\n  \
             db_table: \"{db_table}\"\n  connection:\n    name: \"Snowflake\"\n  columns:\n  \
             - name: \"User GUID\"\n    db_column_name: \"USER_GUID\"\n  \
             - name: \"Display Name\"\n    db_column_name: \"DISPLAY_NAME\"\n"
        )
    }

    fn users() -> String {
        table("", "TS_USERS", "TS_USERS")
    }

    /// TS_MEMBERS, joined to TS_USERS by `on`.
    fn members(on: &str) -> String {
        format!(
            "table:\n  name: \"TS_MEMBERS\"\n  db: \"ANALYTICS\"\n  schema: \"TS\"\n  \
             db_table: \"TS_MEMBERS\"\n  columns:\n  - name: \"User GUID\"\n  \
             - name: \"Group GUID\"\n  joins_with:\n  - name: \"TS_MEMBERS_to_TS_USERS\"\n    \
             destination:\n      name: \"TS_USERS\"\n    \"on\": \"{on}\"\n    type: INNER\n    \
             cardinality: MANY_TO_ONE\n"
        )
    }

    const ON: &str = "[TS_MEMBERS::User GUID] = [TS_USERS::User GUID]";

    /// A model over TS_MEMBERS and TS_USERS showing `column` of TS_USERS.
    fn model(name: &str, column: &str) -> String {
        format!(
            "model:\n  name: \"{name}\"\n  model_tables:\n  - name: \"TS_MEMBERS\"\n    joins:\n    \
             - with: \"TS_USERS\"\n      referencing_join: \"TS_MEMBERS_to_TS_USERS\"\n  \
             - name: \"TS_USERS\"\n  formulas:\n  - id: \"formula_Members\"\n    \
             name: \"Members\"\n    expr: \"unique count ( [TS_MEMBERS::User GUID] )\"\n  \
             columns:\n  - name: \"User\"\n    column_id: \"TS_USERS::{column}\"\n    \
             properties: {{column_type: ATTRIBUTE}}\n  - name: \"Members\"\n    \
             formula_id: \"formula_Members\"\n"
        )
    }

    /// The same as a worksheet.
    fn worksheet(name: &str) -> String {
        format!(
            "worksheet:\n  name: \"{name}\"\n  tables:\n  - name: \"TS_MEMBERS\"\n  \
             - name: \"TS_USERS\"\n  joins:\n  - name: \"TS_MEMBERS_to_TS_USERS\"\n    \
             source: \"TS_MEMBERS\"\n    destination: \"TS_USERS\"\n    type: INNER\n  \
             table_paths:\n  - id: \"TS_MEMBERS_1\"\n    table: \"TS_MEMBERS\"\n    \
             join_path:\n    - {{}}\n  - id: \"TS_USERS_1\"\n    table: \"TS_USERS\"\n    \
             join_path:\n    - join:\n      - \"TS_MEMBERS_to_TS_USERS\"\n  formulas:\n  \
             - id: \"f\"\n    name: \"Members\"\n    \
             expr: \"unique count ( [TS_MEMBERS_1::User GUID] )\"\n  worksheet_columns:\n  \
             - name: \"User\"\n    column_id: \"TS_USERS_1::Display Name\"\n"
        )
    }

    fn run(store: &mut Store, org: i64, docs: &[String], policy: Policy) -> Vec<Outcome> {
        store.import(org, docs, policy, false)
    }

    fn ok(outcome: &Outcome) -> &Done {
        outcome.as_ref().unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(outcome: &Outcome) -> &str {
        match outcome {
            Ok(done) => panic!("imported {}", done.name),
            Err(e) => e,
        }
    }

    /// The one outcome of importing `doc` alone.
    fn one(store: &mut Store, org: i64, doc: &str) -> Outcome {
        run(store, org, &[doc.to_owned()], Policy::Partial).remove(0)
    }

    /// A store holding TS_USERS and TS_MEMBERS of org 0.
    fn with_tables() -> Store {
        let mut store = Store::default();
        for outcome in run(&mut store, 0, &[users(), members(ON)], Policy::Partial) {
            ok(&outcome);
        }
        store
    }

    #[test]
    fn create_then_update_by_guid_keeps_one_object() {
        let mut store = Store::default();
        let created = ok(&one(&mut store, 0, &users())).clone();
        assert_eq!(created.name, "TS_USERS");
        assert!(!created.named);
        let head = format!("guid: \"{}\"\n", created.guid);
        let renamed = table(&head, "TS_PEOPLE", "TS_USERS");
        let updated = ok(&one(&mut store, 0, &renamed)).clone();
        assert_eq!(updated.guid, created.guid);
        assert!(updated.named);
        assert_eq!(store.objects.len(), 1);
        let object = &store.objects[0];
        assert_eq!(
            (object.name.as_str(), object.version, object.kind),
            ("TS_PEOPLE", 2, Kind::Table)
        );
        assert_eq!(object.tml, renamed);
        assert_eq!(object.columns, ["User GUID", "Display Name"]);
        let mapped = object.db_table.as_ref().unwrap();
        assert_eq!(mapped.connection.as_deref(), Some("Snowflake"));
        assert_eq!(mapped.to_string(), "ANALYTICS.TS.TS_USERS");

        // A GUID of nothing, or of another kind, is refused.
        let missing = "0000-missing";
        let e = one(
            &mut store,
            0,
            &table(&format!("guid: {missing}\n"), "X", "X"),
        );
        assert_eq!(
            err(&e),
            format!("Object with GUID {missing} does not exist in this org")
        );
        let as_model = format!("{head}{}", model("M", "Display Name"));
        assert_eq!(
            err(&one(&mut store, 0, &as_model)),
            format!("Object with GUID {} is a table, not a model", created.guid)
        );
        assert_eq!(store.objects.len(), 1);
    }

    #[test]
    fn a_mapped_db_table_is_not_mapped_again() {
        let mut store = with_tables();
        let users_guid = store.objects[0].guid.clone();
        let e = one(&mut store, 0, &table("", "TS_USERS copy", "TS_USERS"));
        assert_eq!(
            err(&e),
            format!(
                "Cannot create a new table as the table in the TML file already exists \
                 (ANALYTICS.TS.TS_USERS, GUID {users_guid})"
            )
        );
        // Another connection's table of the same name is another table.
        let elsewhere = table("", "TS_USERS", "TS_USERS").replace("Snowflake", "Other");
        ok(&one(&mut store, 0, &elsewhere));
        // An update may not take another table's database table either.
        let members_guid = store.objects[1].guid.clone();
        let moved = table(
            &format!("guid: \"{members_guid}\"\n"),
            "TS_MEMBERS",
            "TS_USERS",
        );
        assert!(err(&one(&mut store, 0, &moved)).contains("already maps it"));
        // Another org maps it freely.
        ok(&one(&mut store, 5, &users()));
    }

    #[test]
    fn a_model_without_guid_is_created_twice() {
        let mut store = with_tables();
        let first = ok(&one(&mut store, 0, &model("M", "Display Name"))).clone();
        let second = ok(&one(&mut store, 0, &model("M", "Display Name"))).clone();
        assert_ne!(first.guid, second.guid);
        let models: Vec<&Object> = store
            .objects
            .iter()
            .filter(|o| o.kind == Kind::Model)
            .collect();
        assert_eq!(models.len(), 2);
        assert_eq!(models[0].columns, ["User", "Members"]);
        ok(&one(&mut store, 0, &worksheet("W")));
        ok(&one(&mut store, 0, &worksheet("W")));
        assert_eq!(store.objects.len(), 6);
    }

    #[test]
    fn obj_id_updates_or_creates() {
        let mut store = Store::default();
        let doc = table("obj_id: \"ts-users\"\n", "TS_USERS", "TS_USERS");
        let created = ok(&one(&mut store, 0, &doc)).clone();
        assert_eq!(created.obj_id.as_deref(), Some("ts-users"));
        let again = ok(&one(&mut store, 0, &doc)).clone();
        assert_eq!(again.guid, created.guid);
        assert_eq!(store.objects[0].version, 2);
        let as_model = format!("obj_id: \"ts-users\"\n{}", model("M", "x"));
        assert_eq!(
            err(&one(&mut store, 0, &as_model)),
            "Object with obj_id ts-users is a table, not a model"
        );
        // create_new ignores both the obj_id and the GUID.
        let head = format!("guid: \"{}\"\nobj_id: \"ts-users\"\n", created.guid);
        let outcomes = store.import(0, &[table(&head, "T2", "T2")], Policy::Partial, true);
        let fresh = ok(&outcomes[0]);
        assert_ne!(fresh.guid, created.guid);
        assert_eq!(fresh.obj_id, None);
        assert_eq!(store.objects.len(), 2);
    }

    #[test]
    fn bare_on_key_fails_quoted_on_works() {
        let mut store = Store::default();
        ok(&one(&mut store, 0, &users()));
        let bare = members(ON).replace("\"on\":", "on:");
        assert_eq!(
            err(&one(&mut store, 0, &bare)),
            "Invalid TML: line 13: key `on` is not a string (YAML 1.1 reads it as a boolean)"
        );
        for key in ["On:", "ON:", "yes:", "Off:", "~:", "null:", "y:"] {
            let doc = members(ON).replace("\"on\":", key);
            assert!(
                err(&one(&mut store, 0, &doc)).contains("is not a string"),
                "{key}"
            );
        }
        ok(&one(
            &mut store,
            0,
            &members(ON).replace("\"on\":", "'on':"),
        ));
        assert_eq!(store.objects.len(), 2);
    }

    #[test]
    fn plain_values_read_as_other_types_fail() {
        let mut store = Store::default();
        let e = one(
            &mut store,
            0,
            &users().replace("\"TS_USERS\"\n  db:", "yes\n  db:"),
        );
        assert_eq!(
            err(&e),
            "Invalid TML: line 2: the value `yes` of `name` is not a string \
             (YAML 1.1 reads it as a boolean)"
        );
        for (plain, reads) in [
            ("No", "a boolean"),
            ("~", "null"),
            ("NULL", "null"),
            ("1_000", "an integer"),
            ("0x1F", "an integer"),
            ("012", "an integer"),
            ("1:30", "an integer"),
            ("-42", "an integer"),
            ("1e3", "a float"),
            ("1.5", "a float"),
            (".inf", "a float"),
            ("-.INF", "a float"),
            ("190:20:30.15", "a float"),
            ("2024-01-01", "a date"),
            ("2024-1-1 10:00:00", "a date"),
            ("2024-01-01T10:00:00Z # when", "a date"),
        ] {
            let doc = users().replace("\"DISPLAY_NAME\"", plain);
            let e = one(&mut store, 0, &doc);
            let shown = plain.split(" #").next().unwrap();
            assert_eq!(
                err(&e),
                format!(
                    "Invalid TML: line 12: the value `{shown}` of `db_column_name` is not a \
                     string (YAML 1.1 reads it as {reads})"
                ),
                "{plain}"
            );
        }
        for text in [
            "DISPLAY_NAME",
            "\"yes\"",
            "'2024-01-01'",
            "1.2.3",
            "2024-01-01x",
            "x1_000",
            "0x",
            "1:70",
            "e3",
            "yes please",
        ] {
            let doc = users().replace("\"DISPLAY_NAME\"", text);
            ok(&one(&mut store, 5, &doc));
            store.objects.clear();
        }
        // Not a text key: left to the parser.
        ok(&one(
            &mut store,
            0,
            &users().replace("name: \"Snowflake\"", "name: \"S\"\n    x: yes"),
        ));
        // A block scalar's lines are text.
        let block = members(ON).replace(
            "  columns:",
            "  description: |\n    on: yes\n    1:30\n  columns:",
        );
        ok(&one(&mut store, 0, &block));
        assert!(err(&one(&mut store, 0, "table: [")).starts_with("Invalid TML: "));
    }

    #[test]
    fn document_shape() {
        let mut store = with_tables();
        let e = |store: &mut Store, doc: &str| err(&one(store, 0, doc)).to_owned();
        assert_eq!(
            e(&mut store, &format!("owner: \"me\"\n{}", users())),
            "Invalid TML: unknown key `owner`"
        );
        assert_eq!(
            e(&mut store, "guid: \"x\"\n"),
            "Invalid TML: no `table`, `model` or `worksheet`"
        );
        assert!(e(&mut store, &format!("{}{}", users(), model("M", "x"))).contains("both"));
        assert_eq!(
            e(&mut store, "model:\n  columns: []\n"),
            "Invalid TML: the model has no `name`"
        );
        assert_eq!(
            e(&mut store, "- 1\n"),
            "Invalid TML: the document is not a mapping"
        );
        assert!(e(&mut store, &users().replace("  db: \"ANALYTICS\"\n", "")).contains("no `db`"));
    }

    #[test]
    fn references_must_exist() {
        let mut store = Store::default();
        let e = |store: &mut Store, doc: &str| err(&one(store, 0, doc)).to_owned();
        assert_eq!(
            e(&mut store, &members(ON)),
            "Invalid TML: table TS_USERS does not exist"
        );
        ok(&one(&mut store, 0, &users()));
        assert_eq!(
            e(
                &mut store,
                &members("[TS_MEMBERS::User GUID] = [TS_USERS::Nope]")
            ),
            "Invalid TML: column TS_USERS::Nope does not exist (in the `on` of join \
             TS_MEMBERS_to_TS_USERS of table TS_MEMBERS)"
        );
        assert!(
            e(
                &mut store,
                &members("[TS_OTHER::User GUID] = [TS_USERS::User GUID]")
            )
            .starts_with("Invalid TML: table TS_OTHER does not exist in join")
        );
        assert_eq!(
            e(&mut store, &model("M", "Display Name")),
            "Invalid TML: table TS_MEMBERS does not exist"
        );
        ok(&one(&mut store, 0, &members(ON)));
        assert_eq!(
            e(&mut store, &model("M", "Nope")),
            "Invalid TML: column TS_USERS::Nope does not exist (in column User of model M)"
        );
        assert_eq!(
            e(
                &mut store,
                &model("M", "x").replace("- with: \"TS_USERS\"", "- with: \"TS_X\"")
            ),
            "Invalid TML: model table TS_X does not exist"
        );
        assert_eq!(
            e(
                &mut store,
                &model("M", "x").replace(
                    "referencing_join: \"TS_MEMBERS_to",
                    "referencing_join: \"X_to"
                )
            ),
            "Invalid TML: join X_to_TS_USERS of table TS_MEMBERS does not exist"
        );
        assert_eq!(
            e(
                &mut store,
                &model("M", "Display Name").replace("[TS_MEMBERS::User", "[TS_MEMBERS::Usr")
            ),
            "Invalid TML: column TS_MEMBERS::Usr GUID does not exist (in a formula of model M)"
        );
        assert_eq!(
            e(
                &mut store,
                &worksheet("W").replace("TS_USERS_1::", "TS_USERS_2::")
            ),
            "Invalid TML: table path TS_USERS_2 does not exist"
        );
        assert_eq!(
            e(
                &mut store,
                &worksheet("W").replace("table: \"TS_USERS\"", "table: \"TS_X\"")
            ),
            "Invalid TML: worksheet table TS_X does not exist"
        );
        ok(&one(&mut store, 0, &worksheet("W")));

        // Two tables named TS_USERS: a model needs the fqn.
        let second = table("", "TS_USERS", "TS_USERS_2");
        let second = ok(&one(&mut store, 0, &second)).guid.clone();
        assert_eq!(
            e(&mut store, &model("M", "Display Name")),
            "Invalid TML: Multiple tables named TS_USERS; give fqn"
        );
        let with_fqn = model("M", "Display Name").replace(
            "  - name: \"TS_USERS\"\n",
            &format!("  - name: \"TS_USERS\"\n    fqn: \"{second}\"\n"),
        );
        let members_guid = store.objects[1].guid.clone();
        let join_fqn = members(ON).replace(
            "      name: \"TS_USERS\"\n",
            &format!("      name: \"TS_USERS\"\n      fqn: \"{second}\"\n"),
        );
        ok(&one(
            &mut store,
            0,
            &format!("guid: \"{members_guid}\"\n{join_fqn}"),
        ));
        ok(&one(&mut store, 0, &with_fqn));
        let wrong = with_fqn.replace(&second, &members_guid);
        assert_eq!(
            e(&mut store, &wrong),
            format!("Invalid TML: fqn {members_guid} is table TS_MEMBERS, not TS_USERS")
        );
    }

    #[test]
    fn one_request_refers_in_any_order() {
        let mut store = Store::default();
        let docs = [
            worksheet("W"),
            model("M", "Display Name"),
            members(ON),
            users(),
        ];
        for outcome in run(&mut store, 0, &docs, Policy::AllOrNone) {
            ok(&outcome);
        }
        assert_eq!(store.objects.len(), 4);
    }

    #[test]
    fn all_or_none_stores_nothing_when_one_fails() {
        let mut store = Store::default();
        let docs = [users(), members(ON), model("M", "Nope")];
        let outcomes = run(&mut store, 0, &docs, Policy::AllOrNone);
        assert_eq!(err(&outcomes[0]), NOT_IMPORTED);
        assert_eq!(err(&outcomes[1]), NOT_IMPORTED);
        assert!(err(&outcomes[2]).contains("TS_USERS::Nope"));
        assert!(store.objects.is_empty());
    }

    #[test]
    fn partial_stores_the_good_ones() {
        let mut store = Store::default();
        let docs = [
            members(ON),
            model("M", "Nope"),
            users(),
            worksheet("W"),
            members(ON),
        ];
        let outcomes = run(&mut store, 0, &docs, Policy::Partial);
        ok(&outcomes[0]);
        assert!(err(&outcomes[1]).contains("TS_USERS::Nope"));
        ok(&outcomes[2]);
        ok(&outcomes[3]);
        assert!(err(&outcomes[4]).starts_with("Cannot create a new table"));
        let names: Vec<&str> = store.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["TS_MEMBERS", "TS_USERS", "W"]);

        // A document that fails takes those that need it along.
        let mut store = Store::default();
        let bad_join = members("[TS_MEMBERS::Nope] = [TS_USERS::User GUID]");
        let docs = [worksheet("W"), bad_join, users()];
        let outcomes = run(&mut store, 0, &docs, Policy::Partial);
        assert_eq!(
            err(&outcomes[0]),
            "Invalid TML: table TS_MEMBERS does not exist"
        );
        assert!(err(&outcomes[1]).contains("TS_MEMBERS::Nope"));
        ok(&outcomes[2]);
        assert_eq!(store.objects.len(), 1);
    }

    #[test]
    fn validate_only_stores_nothing() {
        let mut store = with_tables();
        let guid = store.objects[0].guid.clone();
        let update = table(&format!("guid: \"{guid}\"\n"), "TS_USERS", "TS_USERS")
            .replace("Display Name", "Name");
        let docs = [update.clone(), model("M", "Name")];
        let outcomes = run(&mut store, 0, &docs, Policy::ValidateOnly);
        let items: Vec<Value> = outcomes
            .iter()
            .map(|o| answer_item(o, Policy::ValidateOnly, None))
            .collect();
        assert_eq!(
            items[0],
            json!({"response": {"status": {"status_code": "OK"}, "header": {
                "id_guid": guid, "name": "TS_USERS", "type": "LOGICAL_TABLE",
                "metadata_type": "LOGICAL_TABLE", "obj_id": null}}})
        );
        assert!(items[1]["response"]["header"].get("id_guid").is_none());
        assert_eq!(items[1]["response"]["header"]["name"], "M");
        assert_eq!(store.objects.len(), 2);
        assert_eq!(store.objects[0].columns, ["User GUID", "Display Name"]);
        assert_eq!(store.objects[0].version, 1);
        let failing = [update, model("M", "Nope")];
        let outcomes = run(&mut store, 0, &failing, Policy::ValidateOnly);
        assert_eq!(err(&outcomes[0]), NOT_IMPORTED);
        assert!(err(&outcomes[1]).contains("Nope"));
    }

    #[test]
    fn orgs_do_not_see_each_other() {
        let mut store = with_tables();
        let guid = store.objects[0].guid.clone();
        let update = table(&format!("guid: \"{guid}\"\n"), "Mine", "TS_USERS");
        assert_eq!(
            err(&one(&mut store, 5, &update)),
            format!("Object with GUID {guid} does not exist in this org")
        );
        assert!(err(&one(&mut store, 5, &members(ON))).contains("TS_USERS does not exist"));
        assert_eq!(store.objects[0].name, "TS_USERS");
    }

    /// The route end to end: answers, faults, `metadata/search` and orgs.
    #[tokio::test(flavor = "multi_thread")]
    async fn served_over_http() {
        use super::super::{Data, FakeThoughtSpot};
        let server = FakeThoughtSpot::start(Data::generated(3, 2, 2));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let post = |path: &str, body: Value, token: Option<&str>| {
            let mut request = client
                .post(format!("{}/api/rest/2.0/{path}", server.url()))
                .json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            }
        };
        let minted = server.state.mint_token(0);
        let token = Some(minted.as_str());
        let import = |docs: Vec<String>, policy: &str| json!({"metadata_tmls": docs, "import_policy": policy});

        let (status, _) = post(
            "metadata/tml/import",
            import(vec![users()], "PARTIAL"),
            None,
        )
        .await;
        assert_eq!(status, 401);
        let (status, e) = post(
            "metadata/tml/import",
            json!({"import_policy": "ALL_OR_NONE"}),
            token,
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            e["error"]["message"]["debug"]
                .as_str()
                .unwrap()
                .contains("metadata_tmls")
        );
        let (status, _) = post("metadata/tml/import", import(vec![], "SOME"), token).await;
        assert_eq!(status, 400);

        server
            .state
            .set(|f| f.import_warning = Some("TS_MEMBERS".into()));
        let docs = vec![users(), members(ON), "table: [".to_owned()];
        let (status, items) =
            post("metadata/tml/import", import(docs, "PARTIAL_OBJECT"), token).await;
        assert_eq!(status, 200);
        let items = items.as_array().unwrap();
        assert_eq!(items.len(), 3);
        let users_guid = items[0]["response"]["header"]["id_guid"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            items[0],
            json!({"response": {"status": {"status_code": "OK"}, "header": {
                "id_guid": users_guid, "name": "TS_USERS", "type": "LOGICAL_TABLE",
                "metadata_type": "LOGICAL_TABLE", "obj_id": null}}})
        );
        assert_eq!(
            items[1]["response"]["status"],
            json!({"status_code": "WARNING", "error_message": "fake warning: TS_MEMBERS"})
        );
        assert_eq!(items[2]["response"]["status"]["status_code"], "ERROR");
        let message = items[2]["response"]["status"]["error_message"]
            .as_str()
            .unwrap();
        assert!(
            message.starts_with("Invalid TML: ") && message.contains("line 1"),
            "{message}"
        );
        assert!(items[2]["response"].get("header").is_none());
        let seen = server.state.seen();
        let last = seen.last().unwrap();
        assert_eq!(
            (last.path.as_str(), last.status, last.org),
            (IMPORT_PATH, 200, Some(0))
        );

        // metadata/search: by name, by GUID, by pattern, by obj_id.
        let find = |entry: Value| json!({"metadata": [entry], "record_size": -1});
        let (_, by_name) = post(
            "metadata/search",
            find(json!({"type": "LOGICAL_TABLE", "identifier": "ts_users"})),
            token,
        )
        .await;
        assert_eq!(
            by_name,
            json!([{"metadata_id": users_guid, "metadata_name": "TS_USERS",
                    "metadata_type": "LOGICAL_TABLE", "metadata_obj_id": null,
                    "metadata_header": {"id": users_guid, "name": "TS_USERS",
                        "type": "ONE_TO_ONE_LOGICAL", "obj_id": null,
                        "dataSourceName": "Snowflake", "databaseStripe": "ANALYTICS",
                        "schemaStripe": "TS", "physicalTableName": "TS_USERS"}}])
        );
        let (_, by_guid) = post(
            "metadata/search",
            find(json!({"identifier": users_guid})),
            token,
        )
        .await;
        assert_eq!(by_guid, by_name);
        let (_, all) = post("metadata/search", find(json!({})), token).await;
        let names: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["metadata_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["TS_MEMBERS", "TS_USERS"]);
        assert_eq!(all[0]["metadata_header"]["dataSourceName"], "Falcon");
        let (_, paged) = post(
            "metadata/search",
            json!({"metadata": [{"name_pattern": "ts_%"}], "record_offset": 1, "record_size": 1}),
            token,
        )
        .await;
        assert_eq!(paged[0]["metadata_name"], "TS_USERS");
        let doc = model("M", "Display Name").replace("model:", "obj_id: \"m-1\"\nmodel:");
        let (_, items) = post(
            "metadata/tml/import",
            import(vec![doc], "ALL_OR_NONE"),
            token,
        )
        .await;
        assert_eq!(items[0]["response"]["header"]["obj_id"], "m-1");
        let (_, by_obj_id) = post(
            "metadata/search",
            find(json!({"obj_identifier": "m-1"})),
            token,
        )
        .await;
        assert_eq!(by_obj_id.as_array().unwrap().len(), 1);
        assert_eq!(by_obj_id[0]["metadata_header"]["type"], "WORKSHEET");
        assert_eq!(by_obj_id[0]["metadata_header"]["worksheetVersion"], "V2");
        assert_eq!(by_obj_id[0]["metadata_obj_id"], "m-1");

        // Another org sees none of it and cannot update it.
        let other = server.state.mint_token(1_000_001);
        let other = Some(other.as_str());
        let (_, none) = post("metadata/search", find(json!({})), other).await;
        assert_eq!(none, json!([]));
        let update = table(&format!("guid: \"{users_guid}\"\n"), "Taken", "TS_USERS");
        let (_, items) = post(
            "metadata/tml/import",
            import(vec![update.clone()], "PARTIAL"),
            other,
        )
        .await;
        assert_eq!(
            items[0]["response"]["status"]["error_message"],
            format!("Object with GUID {users_guid} does not exist in this org")
        );
        assert_eq!(server.state.objects().len(), 3);

        // A cut connection: no answer, but the update is stored.
        server.state.set(|f| f.import_drop_after_store = true);
        let sent = client
            .post(format!("{}{IMPORT_PATH}", server.url()))
            .bearer_auth(&minted)
            .json(&json!({"metadata_tmls": [table(&format!("guid: \"{users_guid}\"\n"), "Taken", "TS_USERS")]}))
            .send()
            .await;
        let failed = match sent {
            Err(e) => e.to_string(),
            Ok(response) => response.bytes().await.unwrap_err().to_string(),
        };
        assert!(!failed.is_empty());
        server.state.set(|f| f.import_drop_after_store = false);
        let objects = server.state.objects();
        let taken = objects.iter().find(|o| o.guid == users_guid).unwrap();
        assert_eq!((taken.name.as_str(), taken.version), ("Taken", 2));

        // By hand, then deleted.
        let guid = server.state.import_by_hand(1_000_001, &users()).unwrap();
        assert!(
            server
                .state
                .import_by_hand(1_000_001, &users())
                .unwrap_err()
                .contains("already exists")
        );
        let (_, theirs) = post("metadata/search", find(json!({})), other).await;
        assert_eq!(theirs[0]["metadata_id"], guid);
        assert!(server.state.delete_object(&guid));
        assert!(!server.state.delete_object(&guid));
        let orgs: Vec<i64> = server.state.objects().iter().map(|o| o.org).collect();
        assert_eq!(orgs, [0, 0, 0]);

        server.state.set(|f| f.no_v2 = true);
        let (status, _) = post("metadata/tml/import", import(vec![], "PARTIAL"), token).await;
        assert_eq!(status, 404);
    }
}
