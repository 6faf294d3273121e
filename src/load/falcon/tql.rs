//! Remote TQL: the database, schema and tables, created through
//! `POST /ts_dataservice/v1/public/tql/query` on the cluster's own address,
//! with the session of the callosum login (a cookie).
//!
//! What is documented (ThoughtSpot's "TQL service reference"): the request
//! is an `ExecuteQueryRequest` as JSON (`context`, `options`, `query.
//! statement`); the answer an `ExecuteQueryResponse` whose `result` holds
//! `message` entries (`type` INFO, WARNING or ERROR and a `value`),
//! optionally a `table` of `headers` and `rows` (`v`), and the
//! `final_context`. `SHOW DATABASES` lists one database per INFO message.
//! Statement errors come back as ERROR messages with HTTP 200.
//!
//! What is assumed, and tolerated either way: the answer may be one JSON
//! object, several (JSON lines, as cs_tools reads it) or an array of them;
//! a message `type` may be the enum's name or its number (0, 1, 2); a
//! `CREATE` of something that exists fails with an ERROR message saying it
//! "already exists", which is taken as success (cs_tools issues its
//! `CREATE DATABASE` and `CREATE SCHEMA` every time and relies on this).

use reqwest::Method;
use serde_json::{Value, json};

use super::FalconError;
use crate::client::http::{Body, Http, Request};
use crate::client::{Credentials, v1, v2};
use crate::schema::{ColumnType, TableDef};

/// Path of the remote TQL service on the cluster.
pub const QUERY_PATH: &str = "/ts_dataservice/v1/public/tql/query";

/// Length given to every text column. Falcon requires a length; text in
/// our tables has none, so a generous one: 64 KiB characters is far above
/// any name, e-mail or description ThoughtSpot keeps, and far below the
/// 64 MB ThoughtSpot documents as the VARCHAR limit ("Data types").
pub const VARCHAR_LENGTH: u32 = 65_535;

/// The Falcon type of a column type.
pub fn falcon_type(ty: ColumnType) -> String {
    match ty {
        ColumnType::Text => format!("VARCHAR({VARCHAR_LENGTH})"),
        ColumnType::Bigint => "BIGINT".into(),
        ColumnType::Boolean => "BOOL".into(),
        ColumnType::Timestamp => "DATETIME".into(),
        ColumnType::Double => "DOUBLE".into(),
    }
}

/// `"name"`, as TQL's reference recommends for every object name. Names
/// holding a `"` are refused before anything is sent (see
/// [`check_name`]), since TQL documents no escape for one.
pub fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// Whether `name` can be written as a quoted TQL identifier.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("the {what} name is empty"));
    }
    if let Some(c) = name.chars().find(|c| *c == '"' || c.is_control()) {
        return Err(format!(
            "the {what} name {name:?} holds {c:?}, which a quoted TQL name cannot carry"
        ));
    }
    Ok(())
}

/// `"DATABASE"."SCHEMA"."TABLE"`.
pub fn qualified(database: &str, schema: &str, table: &str) -> String {
    format!("{}.{}.{}", quote(database), quote(schema), quote(table))
}

/// `CREATE TABLE` for one table: its columns in order with their Falcon
/// types, and the primary key the layout records.
pub fn create_table(database: &str, schema: &str, def: &TableDef) -> String {
    let mut parts: Vec<String> = (def.columns.iter())
        .map(|c| format!("{} {}", quote(&c.name), falcon_type(c.ty)))
        .collect();
    let key: Vec<String> = def.key().map(|c| quote(&c.name)).collect();
    if !key.is_empty() {
        parts.push(format!("CONSTRAINT PRIMARY KEY ({})", key.join(", ")));
    }
    format!(
        "CREATE TABLE {} ({});",
        qualified(database, schema, &def.table),
        parts.join(", ")
    )
}

/// The request body for one statement, run in `database` (none: no
/// database selected) and `schema`.
pub fn request(statement: &str, database: Option<&str>, schema: &str) -> Value {
    let mut context = json!({"schema": schema, "server_schema_version": -1});
    if let Some(database) = database {
        context["database"] = database.into();
    }
    json!({
        "context": context,
        "options": {
            "query_options": {"pagination": {}},
            "adv_options": {"continue_execution_on_error": false},
        },
        "query": {"statement": statement},
    })
}

/// How grave a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Output or progress.
    Info,
    /// Something to know.
    Warning,
    /// The statement failed.
    Error,
}

/// One message of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// How grave.
    pub severity: Severity,
    /// The text, as sent (often ending in a line break).
    pub text: String,
}

/// What a statement answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// Every message, in order.
    pub messages: Vec<Message>,
    /// Rows of a result table, each as its values.
    pub rows: Vec<Vec<String>>,
}

/// The line TQL ends every successful statement with.
const SUCCESS: &str = "Statement executed successfully.";

impl Answer {
    /// The error messages, trimmed.
    pub fn errors(&self) -> Vec<&str> {
        (self.messages.iter())
            .filter(|m| m.severity == Severity::Error)
            .map(|m| m.text.trim())
            .collect()
    }

    /// The lines of output: each INFO message's lines and each row's first
    /// value, trimmed, without the success line. `SHOW DATABASES` lists a
    /// name per line.
    pub fn lines(&self) -> Vec<String> {
        let info = (self.messages.iter())
            .filter(|m| m.severity == Severity::Info)
            .flat_map(|m| m.text.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(SUCCESS))
            .map(str::to_owned);
        let rows = (self.rows.iter()).filter_map(|r| r.first().map(|v| v.trim().to_owned()));
        info.chain(rows).collect()
    }

    /// Whether the only errors say that the object already exists.
    pub fn only_already_exists(&self) -> bool {
        let errors = self.errors();
        !errors.is_empty()
            && errors
                .iter()
                .all(|e| e.to_ascii_lowercase().contains("already exist"))
    }
}

/// Parses an answer: one JSON object, JSON lines, or an array of objects.
pub fn parse(body: &[u8]) -> Result<Answer, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8 ({e})"))?;
    let responses: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(value) => vec![value],
        Err(_) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| format!("line {} is not JSON ({e})", i + 1))
            })
            .collect::<Result<_, _>>()?,
    };
    if responses.is_empty() {
        return Err("the answer is empty".into());
    }
    let mut answer = Answer::default();
    for response in &responses {
        let Some(result) = response.get("result") else {
            return Err(format!(
                "an answer without `result`: {}",
                shorten(&response.to_string())
            ));
        };
        for message in result
            .get("message")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let severity = match message.get("type") {
                Some(Value::String(s)) if s.eq_ignore_ascii_case("error") => Severity::Error,
                Some(Value::String(s)) if s.eq_ignore_ascii_case("warning") => Severity::Warning,
                Some(Value::Number(n)) if n.as_u64() == Some(2) => Severity::Error,
                Some(Value::Number(n)) if n.as_u64() == Some(1) => Severity::Warning,
                _ => Severity::Info,
            };
            let text = match message.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            answer.messages.push(Message { severity, text });
        }
        let rows = (result.pointer("/table/rows").and_then(Value::as_array))
            .into_iter()
            .flatten();
        for row in rows {
            let values = (row.get("v").and_then(Value::as_array))
                .into_iter()
                .flatten();
            answer.rows.push(
                values
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
            );
        }
    }
    Ok(answer)
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Remote TQL on one cluster, signed in with a session.
pub(crate) struct Tql<'a> {
    pub http: &'a Http,
    pub credentials: &'a Credentials,
}

impl Tql<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http.base())
    }

    /// Signs in with the callosum login (the session remote TQL uses).
    pub async fn sign_in(&self) -> Result<(), FalconError> {
        v1::sign_in(self.http, self.credentials, "loading into Falcon")
            .await
            .map_err(|source| FalconError::Request {
                what: "signing in to the cluster for remote TQL".into(),
                url: self.url(v1::LOGIN_PATH),
                source: Box::new(source),
            })
    }

    /// Stops with [`FalconError::NoFalcon`] when `GET /api/rest/2.0/system`
    /// says this is a ThoughtSpot Cloud cluster. Anything else (no v2 on an
    /// old Software release, a refusal) is left for the TQL call to judge.
    pub async fn refuse_cloud(&self) -> Result<(), FalconError> {
        let request = Request {
            method: Method::GET,
            path: v2::SYSTEM_PATH,
            body: Body::None,
            bearer: None,
            v1: false,
        };
        let reply = match self.http.send(&request).await {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!("GET {}: {error}; judging by remote TQL", v2::SYSTEM_PATH);
                return Ok(());
            }
        };
        if !reply.status.is_success() {
            tracing::debug!(
                "GET {} answered HTTP {}; judging by remote TQL",
                v2::SYSTEM_PATH,
                reply.status.as_u16()
            );
            return Ok(());
        }
        let Ok(system) = serde_json::from_slice::<v2::System>(&reply.body) else {
            return Ok(());
        };
        let saas = system.deployment.as_deref() == Some("SAAS");
        let release = system.release_version.as_deref().unwrap_or("");
        if saas || release.ends_with(".cl") {
            return Err(FalconError::NoFalcon {
                url: self.http.base().to_owned(),
                evidence: format!(
                    "GET {} says it is a ThoughtSpot Cloud cluster (type {}, release {})",
                    v2::SYSTEM_PATH,
                    system.deployment.as_deref().unwrap_or("not given"),
                    if release.is_empty() {
                        "not given"
                    } else {
                        release
                    }
                ),
            });
        }
        tracing::debug!(
            "the cluster runs ThoughtSpot Software (type {:?}, release {release:?})",
            system.deployment
        );
        Ok(())
    }

    /// Runs one statement. An expired session is renewed once. ERROR
    /// messages are returned in the answer, for the caller to judge.
    pub async fn run(
        &self,
        statement: &str,
        database: Option<&str>,
        schema: &str,
    ) -> Result<Answer, FalconError> {
        let body = request(statement, database, schema);
        let url = self.url(QUERY_PATH);
        let mut renewed = false;
        loop {
            let request = Request {
                method: Method::POST,
                path: QUERY_PATH,
                body: Body::Json(&body),
                bearer: None,
                v1: false,
            };
            let reply =
                (self.http.send(&request).await).map_err(|source| FalconError::Request {
                    what: format!("running `{statement}`"),
                    url: url.clone(),
                    source: Box::new(source),
                })?;
            let status = reply.status.as_u16();
            if status == 401 && !renewed {
                tracing::debug!("{QUERY_PATH}: the session expired; signing in again");
                renewed = true;
                self.sign_in().await?;
                continue;
            }
            if status == 404 {
                return Err(FalconError::NoFalcon {
                    url: self.http.base().to_owned(),
                    evidence: format!(
                        "POST {QUERY_PATH} answered HTTP 404 ({}): it has no remote TQL service",
                        reply.message()
                    ),
                });
            }
            if !reply.status.is_success() {
                let advice = match status {
                    401 => {
                        "the session was refused even after signing in again; check the \
                            profile's user and password"
                    }
                    403 => {
                        "remote TQL needs a user with the ADMINISTRATION or \"Can manage \
                            data\" privilege; sign in as such a user (--profile)"
                    }
                    _ => {
                        "try again; if it persists, run the statement in the TQL editor or \
                          `tql` on the cluster to see why"
                    }
                };
                return Err(FalconError::Status {
                    what: format!("running `{statement}` in remote TQL"),
                    method: "POST",
                    url,
                    status,
                    message: reply.message(),
                    advice: advice.into(),
                });
            }
            return parse(&reply.body).map_err(|reason| FalconError::Malformed {
                what: format!("running `{statement}` in remote TQL"),
                url: url.clone(),
                reason,
            });
        }
    }

    /// Runs a statement that must succeed; "already exists" counts as
    /// success when `exists_ok`. Returns whether it created something.
    pub async fn execute(
        &self,
        statement: &str,
        database: Option<&str>,
        schema: &str,
        exists_ok: bool,
    ) -> Result<bool, FalconError> {
        let answer = self.run(statement, database, schema).await?;
        if answer.errors().is_empty() {
            return Ok(true);
        }
        if exists_ok && answer.only_already_exists() {
            return Ok(false);
        }
        Err(FalconError::Tql {
            url: self.url(QUERY_PATH),
            statement: statement.to_owned(),
            message: answer.errors().join("; "),
        })
    }

    /// The databases `SHOW DATABASES` lists.
    pub async fn databases(&self, schema: &str) -> Result<Vec<String>, FalconError> {
        let statement = "SHOW DATABASES;";
        let answer = self.run(statement, None, schema).await?;
        if !answer.errors().is_empty() {
            return Err(FalconError::Tql {
                url: self.url(QUERY_PATH),
                statement: statement.into(),
                message: answer.errors().join("; "),
            });
        }
        Ok(answer.lines())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{IdentifierCase, Table};

    #[test]
    fn create_table_names_types_and_key_as_the_layout_says() {
        let def = Table::GroupMemberships.definition("TS_", IdentifierCase::Upper);
        let sql = create_table("TS_PRINCIPALS", "falcon_default_schema", &def);
        assert_eq!(
            sql,
            "CREATE TABLE \"TS_PRINCIPALS\".\"falcon_default_schema\".\"TS_GROUP_MEMBERSHIPS\" (\
             \"CLUSTER_ID\" VARCHAR(65535), \"ORG_ID\" BIGINT, \"USER_GUID\" VARCHAR(65535), \
             \"GROUP_GUID\" VARCHAR(65535), \"IS_DIRECT\" BOOL, \"DEPTH\" BIGINT, \
             CONSTRAINT PRIMARY KEY (\"CLUSTER_ID\", \"ORG_ID\", \"USER_GUID\", \"GROUP_GUID\"));"
        );
        let users = Table::Users.definition("ts_", IdentifierCase::Lower);
        let sql = create_table("db", "s", &users);
        assert!(sql.contains("\"created\" DATETIME"), "{sql}");
        assert!(
            sql.starts_with("CREATE TABLE \"db\".\"s\".\"ts_users\""),
            "{sql}"
        );
        assert_eq!(falcon_type(ColumnType::Double), "DOUBLE");
    }

    #[test]
    fn names_tql_cannot_quote_are_refused() {
        assert!(check_name("table", "TS_USERS").is_ok());
        assert!(check_name("table", "Ünïcode names").is_ok());
        assert!(
            check_name("table", "a\"b")
                .unwrap_err()
                .contains("\"a\\\"b\"")
        );
        assert!(check_name("schema", "a\nb").is_err());
        assert!(check_name("database", " ").is_err());
    }

    #[test]
    fn requests_carry_the_statement_and_context() {
        let body = request("SHOW DATABASES;", None, "falcon_default_schema");
        assert_eq!(body["query"]["statement"], "SHOW DATABASES;");
        assert_eq!(body["context"]["schema"], "falcon_default_schema");
        assert_eq!(body["context"]["server_schema_version"], -1);
        assert!(body["context"].get("database").is_none());
        assert_eq!(
            body["options"]["adv_options"]["continue_execution_on_error"],
            false
        );
        let body = request("CREATE SCHEMA \"D\".\"S\";", Some("D"), "S");
        assert_eq!(body["context"]["database"], "D");
    }

    #[test]
    fn the_documented_show_databases_answer_lists_names() {
        // The example of ThoughtSpot's TQL service reference, abridged.
        let body = br#"{"result": {"final_context": {"schema": "falcon_default_schema",
            "database": "", "server_schema_version": "163"},
            "message": [{"type": "INFO", "value": "thoughtspot_internal_stats\n"},
                        {"type": "INFO", "value": "TPCH5K\n"},
                        {"type": "INFO", "value": "Statement executed successfully. \n"}],
            "complete": true}}"#;
        let answer = parse(body).unwrap();
        assert_eq!(answer.lines(), ["thoughtspot_internal_stats", "TPCH5K"]);
        assert!(answer.errors().is_empty());
    }

    #[test]
    fn json_lines_arrays_numeric_types_and_tables_are_read() {
        let lines = b"{\"result\":{\"message\":[{\"type\":2,\"value\":\"Database \\\"X\\\" already exists\\n\"}]}}\n\
                      {\"result\":{\"table\":{\"headers\":[{\"name\":\"n\"}],\"rows\":[{\"v\":[\"A\"]},{\"v\":[7]}]}}}\n";
        let answer = parse(lines).unwrap();
        assert_eq!(answer.errors(), ["Database \"X\" already exists"]);
        assert!(answer.only_already_exists());
        assert_eq!(answer.lines(), ["A", "7"]);
        let array = br#"[{"result":{"message":[{"type":"ERROR","value":"syntax error"},
                         {"type":"ERROR","value":"Table exists already?"}]}}]"#;
        let answer = parse(array).unwrap();
        assert!(!answer.only_already_exists());
        assert_eq!(answer.errors().len(), 2);
        assert!(parse(b"").is_err());
        assert!(
            parse(b"{\"no\": 1}")
                .unwrap_err()
                .contains("without `result`")
        );
        assert!(
            parse(b"{\"result\":{}}\nnot json")
                .unwrap_err()
                .contains("line 2")
        );
    }
}
