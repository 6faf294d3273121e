//! The project config, `ts-principals.toml`: what to generate, so a TML
//! repository is declarative and reproducible. Every key is optional; flags
//! override it. Unknown keys are errors, so a typo cannot pass silently.
//!
//! Connection profiles (where a cluster is and how to sign in) live apart,
//! in the user's config directory: see [`profile`].

pub mod profile;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::schema::{IdentifierCase, Target};

/// File name looked for in the current directory when `--config` is not given.
pub const DEFAULT_FILE: &str = "ts-principals.toml";

/// The values `[fetch]` keys accept, the same as their flags do: the flags'
/// parsers are built from these ranges.
pub mod limits {
    use std::ops::RangeInclusive;

    /// `fetch.page_size` and `--page-size`: records asked for per page.
    pub const PAGE_SIZE: RangeInclusive<u32> = 1..=100_000;
    /// `fetch.concurrency` and `--concurrency`: requests in flight at once.
    pub const CONCURRENCY: RangeInclusive<u32> = 1..=64;
    /// `fetch.max_response_mb` and `--max-response-mb`: MiB one response
    /// body may hold, decompressed.
    pub const MAX_RESPONSE_MB: RangeInclusive<u32> = 1..=65_536;
}

/// The whole project config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectConfig {
    /// `[tml]`: what the TML describes.
    pub tml: TmlConfig,
    /// `[data]`: how data is written.
    pub data: DataConfig,
    /// `[fetch]`: how principals are fetched from a cluster.
    pub fetch: FetchConfig,
}

/// Which kind of TML joins the tables together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TmlFormat {
    /// A model (ThoughtSpot 10.x and later).
    #[default]
    Model,
    /// A worksheet, for older clusters.
    Worksheet,
}

/// `[tml]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TmlConfig {
    /// Name of the ThoughtSpot connection the tables live in; absent means
    /// Falcon tables.
    pub connection: Option<String>,
    /// Database holding the tables.
    pub database: Option<String>,
    /// Schema holding the tables.
    pub schema: Option<String>,
    /// Prefix of every table name (`TS_` gives `TS_USERS`).
    pub table_prefix: String,
    /// Name of the model or worksheet joining the tables.
    pub model_name: String,
    /// `model` or `worksheet`.
    pub format: TmlFormat,
    /// The database the tables are loaded into; decides the default
    /// identifier case.
    pub target: Option<Target>,
    /// Case of `db_table` and `db_column_name` (and of what `load`
    /// creates); default from `target`.
    pub identifier_case: Option<IdentifierCase>,
    /// `[tml.activity]`.
    pub activity: ActivityConfig,
    /// Also write a stable `obj_id` per object (unique per org; clusters
    /// that support it match on it before the GUID).
    pub obj_ids: bool,
}

impl TmlConfig {
    /// The identifier case: as configured, else the target's, else upper
    /// (Falcon's, and what ThoughtSpot's own tools write for Snowflake).
    pub fn identifier_case(&self) -> IdentifierCase {
        self.identifier_case
            .or(self.target.map(Target::default_case))
            .unwrap_or_default()
    }
}

impl Default for TmlConfig {
    fn default() -> Self {
        Self {
            connection: None,
            database: None,
            schema: None,
            table_prefix: "TS_".into(),
            model_name: "TS: Users and Groups".into(),
            format: TmlFormat::Model,
            target: None,
            identifier_case: None,
            activity: ActivityConfig::default(),
            obj_ids: false,
        }
    }
}

/// `[tml.activity]`: the activity tables (TS: BI Server, TS: AI and BI
/// Stats) that `ts-principals activity` copies into the output directory.
/// Their TML is rendered, and joined in the model, for the worksheets the
/// directory holds rows of; their names are `table_prefix` +
/// `ACTIVITY_BI_SERVER` / `ACTIVITY_AI_BI_STATS`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivityConfig {
    /// Render the activity tables the data holds and join them in the
    /// model; false leaves them out of the TML (their data is kept).
    pub enabled: bool,
}

impl Default for ActivityConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `[data]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// IANA zone timestamps are written in.
    pub timezone: String,
    /// Prefix text cells starting with `= + - @ TAB CR` with `'`.
    pub excel_safe: bool,
    /// Cluster id for inputs that carry none.
    pub cluster_id: Option<String>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            excel_safe: false,
            cluster_id: None,
        }
    }
}

/// `[fetch]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// Fetch every org the credentials can see.
    pub all_orgs: bool,
    /// Orgs to fetch, by name or id, when not `all_orgs`.
    pub orgs: Vec<String>,
    /// Records per page.
    pub page_size: u32,
    /// Pages fetched at once.
    pub concurrency: u32,
    /// MiB one response body may hold, decompressed.
    pub max_response_mb: u32,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            all_orgs: false,
            orgs: Vec::new(),
            page_size: 1000,
            concurrency: 4,
            max_response_mb: 512,
        }
    }
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is not usable.
    #[error("config {origin}: `{key}` {problem}")]
    Invalid {
        /// The file, or "flags".
        origin: String,
        /// The offending key, e.g. `tml.table_prefix`.
        key: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
}

impl ProjectConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: ProjectConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(&path.display().to_string())?;
        Ok(config)
    }

    /// Checks values that parse but cannot work; `origin` names where they
    /// came from in messages.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key, problem: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            problem,
        };
        let tml = &self.tml;
        // Table names appear inside `[TABLE::Column]` references, which
        // brackets and colons would break.
        let names = [("tml.table_prefix", &tml.table_prefix, true)];
        for (key, value, may_be_empty) in names {
            if !may_be_empty && value.trim().is_empty() {
                return Err(invalid(key, "must not be empty".into()));
            }
            if let Some(bad) = value
                .chars()
                .find(|c| matches!(c, '[' | ']' | ':') || c.is_control())
            {
                return Err(invalid(
                    key,
                    format!(
                        "contains {bad:?}; table names are used in ThoughtSpot references like \
                         [TABLE::Column], so they cannot contain brackets, colons or control characters"
                    ),
                ));
            }
        }
        if tml.model_name.trim().is_empty() {
            return Err(invalid("tml.model_name", "must not be empty".into()));
        }
        if tml.connection.is_some() && (tml.database.is_none() || tml.schema.is_none()) {
            return Err(invalid(
                "tml.connection",
                "is set, so `tml.database` and `tml.schema` must say where the tables are loaded"
                    .into(),
            ));
        }
        if jiff::tz::TimeZone::get(&self.data.timezone).is_err() {
            return Err(invalid(
                "data.timezone",
                format!(
                    "\"{}\" is not a known IANA time zone (try \"UTC\" or \"Europe/Berlin\")",
                    self.data.timezone
                ),
            ));
        }
        let fetch = [
            (
                "fetch.page_size",
                "--page-size",
                self.fetch.page_size,
                limits::PAGE_SIZE,
            ),
            (
                "fetch.concurrency",
                "--concurrency",
                self.fetch.concurrency,
                limits::CONCURRENCY,
            ),
            (
                "fetch.max_response_mb",
                "--max-response-mb",
                self.fetch.max_response_mb,
                limits::MAX_RESPONSE_MB,
            ),
        ];
        for (key, flag, value, range) in fetch {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    format!(
                        "is {value}; it must be from {} to {}, as for {flag}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProjectConfig, ConfigError> {
        ProjectConfig::parse(text, Path::new("ts-principals.toml"))
    }

    #[test]
    fn empty_config_is_all_defaults() {
        assert_eq!(parse("").unwrap(), ProjectConfig::default());
    }

    #[test]
    fn the_documented_example_parses() {
        let config = parse(
            r#"
            [tml]
            connection = "Analytics Snowflake"
            database = "ANALYTICS"
            schema = "THOUGHTSPOT"
            table_prefix = "TS_"
            model_name = "TS: Users and Groups"
            format = "worksheet"
            [tml.activity]
            enabled = false
            [data]
            timezone = "UTC"
            excel_safe = true
            cluster_id = "prod"
            [fetch]
            all_orgs = true
            page_size = 1000
            concurrency = 4
            "#,
        )
        .unwrap();
        assert_eq!(config.tml.format, TmlFormat::Worksheet);
        assert!(!config.tml.activity.enabled);
        assert_eq!(config.data.cluster_id.as_deref(), Some("prod"));
    }

    #[test]
    fn typos_are_errors_with_location() {
        let err = parse("[tml]\ntable_prefx = \"X_\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("table_prefx"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn unusable_values_name_their_key() {
        let err = parse("[tml]\ntable_prefix = \"A]\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tml.table_prefix"), "{err}");
        let err = parse("[data]\ntimezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("data.timezone"), "{err}");
        let err = parse("[tml]\nconnection = \"Snow\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tml.database"), "{err}");
    }

    #[test]
    fn fetch_keys_have_the_limits_of_their_flags() {
        for (text, key) in [
            (
                "[fetch]\nconcurrency = 5000\n",
                "`fetch.concurrency` is 5000",
            ),
            ("[fetch]\nconcurrency = 0\n", "`fetch.concurrency` is 0"),
            ("[fetch]\npage_size = 0\n", "`fetch.page_size` is 0"),
            (
                "[fetch]\npage_size = 100001\n",
                "`fetch.page_size` is 100001",
            ),
            (
                "[fetch]\nmax_response_mb = 0\n",
                "`fetch.max_response_mb` is 0",
            ),
            (
                "[fetch]\nmax_response_mb = 65537\n",
                "`fetch.max_response_mb` is 65537",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
            assert!(err.contains("as for --"), "{err}");
        }
        let edges = "[fetch]\nconcurrency = 64\npage_size = 100000\n";
        let config = parse(edges).unwrap();
        assert_eq!(config.fetch.concurrency, 64);
        assert_eq!(config.fetch.page_size, 100_000);
        let config = parse("[fetch]\nconcurrency = 1\npage_size = 1\n").unwrap();
        assert_eq!((config.fetch.concurrency, config.fetch.page_size), (1, 1));
    }

    #[test]
    fn hostile_names_are_accepted_where_they_are_only_text() {
        let config = parse("[tml]\nmodel_name = \"on: off\"\nconnection = \"yes\"\ndatabase = \"2024-01-01\"\nschema = \"~\"\n").unwrap();
        assert_eq!(config.tml.model_name, "on: off");
    }
}
