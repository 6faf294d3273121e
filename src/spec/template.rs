//! `principals.yaml.j2`: a spec written as a minijinja template and rendered
//! with variables from an HR or IdP export (CSV, JSON or YAML), so hundreds
//! of users and use-case groups come from the source of truth.
//!
//! Every `{{ … }}` prints a string as a double-quoted YAML scalar (the same
//! escaping TML gets), so a display name of `yes`, `No`, `a: b`, `#1` or
//! `2024-01-01` arrives as written; `|safe` prints raw YAML (as `|tojson`
//! does, whose JSON is YAML). Undefined variables are errors. Each variables
//! file is bound to its name (`hr.csv` → `hr`, or `NAME=FILE`), and with one
//! file also to `vars`: a CSV as a list of rows (column → text), JSON as
//! it is, YAML with YAML 1.2's scalars (`no`, `on`, `007`, `1_000` are text;
//! quote a value to keep it text whatever it looks like).

use std::path::{Path, PathBuf};

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind};

use super::SpecError;
use crate::render::yaml;

/// One `--vars [NAME=]FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarsFile {
    /// The variable it is bound to.
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

impl VarsFile {
    /// Reads `NAME=FILE` or `FILE` (named after the file's stem, with
    /// characters other than letters, digits and `_` made `_`).
    pub fn parse(arg: &str) -> Result<Self, String> {
        let (name, path) = match arg.split_once('=') {
            Some((name, path)) if is_identifier(name) => (name.to_owned(), PathBuf::from(path)),
            _ => {
                let path = PathBuf::from(arg);
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut name: String = stem
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                    name.insert(0, '_');
                }
                (name, path)
            }
        };
        if path.as_os_str().is_empty() {
            return Err(format!("`{arg}` names no file"));
        }
        Ok(VarsFile { name, path })
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Reads a variables file by its extension: `.csv` (a header row, then
/// one row per record; every cell is text), `.json`, `.yaml`/`.yml`.
pub fn load_vars(path: &Path) -> Result<Value, SpecError> {
    let fail = |message: String| SpecError::Vars {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let extension = (path.extension())
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "csv" => {
            let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
            let headers = reader
                .headers()
                .map_err(|e| fail(format!("header row: {e}")))?
                .clone();
            let mut seen = std::collections::BTreeSet::new();
            for header in &headers {
                if !seen.insert(header) {
                    return Err(fail(format!(
                        "column `{header}` appears twice in the header"
                    )));
                }
            }
            let mut rows = Vec::new();
            for (n, record) in reader.records().enumerate() {
                let record = record.map_err(|e| fail(format!("row {}: {e}", n + 2)))?;
                let row: std::collections::BTreeMap<String, String> = headers
                    .iter()
                    .zip(record.iter())
                    .map(|(h, v)| (h.to_owned(), v.to_owned()))
                    .collect();
                rows.push(row);
            }
            Ok(Value::from(minijinja::value::Serde(&rows)))
        }
        "json" => {
            let value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| fail(format!("not JSON: {e}")))?;
            Ok(Value::from(minijinja::value::Serde(&value)))
        }
        "yaml" | "yml" => {
            let text = std::str::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8: {e}")))?;
            // YAML 1.2 scalars: `no`, `on`, `007` and `1_000` stay text, as
            // an export's names and ids are meant.
            let mut options = super::options(text.len());
            options.strict_booleans = true;
            options.leading_zero_numbers_as_strings = true;
            options.underscored_numbers_as_strings = true;
            options.non_finite_float_policy = serde_saphyr::options::NonFiniteFloatPolicy::AsString;
            let value: serde_json::Value = serde_saphyr::from_str_with_options(text, options)
                .map_err(|e| fail(format!("not YAML: {}", super::yaml_message(&e))))?;
            Ok(Value::from(minijinja::value::Serde(&value)))
        }
        _ => Err(fail(
            "variables come from a .csv, .json, .yaml or .yml file".to_owned(),
        )),
    }
}

/// Renders the template `text` (`origin` names it) with the variables files.
pub fn render(text: &str, origin: &str, vars: &[VarsFile]) -> Result<String, SpecError> {
    let mut context = std::collections::BTreeMap::new();
    for file in vars {
        if context.contains_key(&file.name) {
            return Err(SpecError::Template {
                origin: origin.to_owned(),
                message: format!(
                    "two variables files are named `{}`; name them apart with NAME=FILE",
                    file.name
                ),
            });
        }
        context.insert(file.name.clone(), load_vars(&file.path)?);
    }
    if let [only] = vars {
        let value = context.get(&only.name).cloned().unwrap_or_default();
        context.entry("vars".to_owned()).or_insert(value);
    }
    let env = environment();
    let fail = |e: minijinja::Error| SpecError::Template {
        origin: origin.to_owned(),
        message: describe(&e),
    };
    let template = env.template_from_named_str(origin, text).map_err(fail)?;
    template
        .render(Value::from(minijinja::value::Serde(&context)))
        .map_err(fail)
}

fn describe(error: &minijinja::Error) -> String {
    let mut message = match error.line() {
        Some(line) => format!("line {line}: {}", error.kind()),
        None => error.kind().to_string(),
    };
    if let Some(detail) = error.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn environment() -> Environment<'static> {
    let mut env = crate::render::base_environment();
    env.set_auto_escape_callback(|_| AutoEscape::Custom("yaml".into()));
    env.set_formatter(|out, _state, value| {
        if value.is_safe() {
            return out.write_str(value.as_str().unwrap_or_default()).map_err(Into::into);
        }
        if value.is_none() || value.is_undefined() {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "a value printed is none; print text (e.g. {{ row.email or \"\" }}) or leave the field out",
            ));
        }
        let text = match value.as_str() {
            Some(text) => yaml::quote(text),
            None => match value.kind() {
                minijinja::value::ValueKind::Number | minijinja::value::ValueKind::Bool => {
                    value.to_string()
                }
                kind => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "a {kind} cannot be printed as one YAML value; loop over it, or print it with |tojson"
                        ),
                    ));
                }
            },
        };
        out.write_str(&text).map_err(Into::into)
    });
    env.add_filter("yaml", |value: &Value| -> Result<Value, minijinja::Error> {
        match value.as_str() {
            Some(text) => Ok(Value::from_safe_string(yaml::quote(text))),
            None => Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "the yaml filter writes strings, but got {} `{value}`",
                    value.kind()
                ),
            )),
        }
    });
    env
}
