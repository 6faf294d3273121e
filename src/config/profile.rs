//! Connection profiles: where a cluster is and how to sign in to it.
//!
//! Profiles live in `profiles.toml` in the platform config directory
//! (`~/.config/ts-principals` on Linux; `TS_PRINCIPALS_CONFIG_DIR`
//! overrides it), written with mode 0600. They store no secret: a profile
//! says where its secret comes from (an environment variable, or a prompt),
//! and the secret is read only when a command runs.
//!
//! ```toml
//! [profiles.prod]
//! url = "https://example.thoughtspot.cloud"
//! username = "admin"
//! secret_key_env = "PROD_TS_SECRET_KEY"   # or password_env, token_env, password = "prompt"
//! orgs = ["Acme Retail"]
//! ```
//!
//! Without a profile, the environment alone is used: `THOUGHTSPOT_URL`,
//! `THOUGHTSPOT_USERNAME`, and one of `THOUGHTSPOT_TOKEN`,
//! `THOUGHTSPOT_SECRET_KEY`, `THOUGHTSPOT_PASSWORD`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The profile file's name inside the config directory.
pub const FILE_NAME: &str = "profiles.toml";
/// Environment variable overriding the config directory.
pub const DIR_ENV: &str = "TS_PRINCIPALS_CONFIG_DIR";
/// The profile name meaning "the environment alone".
pub const ENV_PROFILE: &str = "env";

/// Environment variables read without a profile (and for secrets a profile
/// does not name a source for).
pub mod env {
    /// The cluster URL.
    pub const URL: &str = "THOUGHTSPOT_URL";
    /// The user to sign in as.
    pub const USERNAME: &str = "THOUGHTSPOT_USERNAME";
    /// A password.
    pub const PASSWORD: &str = "THOUGHTSPOT_PASSWORD";
    /// A trusted-authentication secret key.
    pub const SECRET_KEY: &str = "THOUGHTSPOT_SECRET_KEY";
    /// A bearer token.
    pub const TOKEN: &str = "THOUGHTSPOT_TOKEN";
}

/// One connection profile, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The cluster, e.g. `https://example.thoughtspot.cloud`.
    pub url: String,
    /// The user to sign in as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `"prompt"`: ask for the password when a command runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSetting>,
    /// Read the password from this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Read a trusted-authentication secret key from this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_env: Option<String>,
    /// Read a bearer token from this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Orgs to fetch by default, by name or id (none: every org).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
    /// PEM file of a private CA to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Skip TLS certificate verification (warned about on every use).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// The only stored password setting: ask for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordSetting {
    /// Prompt on the terminal when a command runs.
    Prompt,
}

/// Where a profile's secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A password typed at a prompt.
    PasswordPrompt,
    /// A password from an environment variable.
    PasswordEnv(String),
    /// A secret key from an environment variable.
    SecretKeyEnv(String),
    /// A bearer token from an environment variable.
    TokenEnv(String),
    /// The standard variables (`THOUGHTSPOT_TOKEN`, `…_SECRET_KEY`,
    /// `…_PASSWORD`), else a prompt.
    Default,
}

impl Profile {
    /// Where the secret comes from; an error when the profile names several.
    pub fn secret_source(&self) -> Result<SecretSource, String> {
        let mut sources = Vec::new();
        if self.password.is_some() {
            sources.push(SecretSource::PasswordPrompt);
        }
        if let Some(var) = &self.password_env {
            sources.push(SecretSource::PasswordEnv(var.clone()));
        }
        if let Some(var) = &self.secret_key_env {
            sources.push(SecretSource::SecretKeyEnv(var.clone()));
        }
        if let Some(var) = &self.token_env {
            sources.push(SecretSource::TokenEnv(var.clone()));
        }
        match sources.len() {
            0 => Ok(SecretSource::Default),
            1 => Ok(sources.remove(0)),
            _ => Err(
                "names more than one secret source (password, password_env, \
                      secret_key_env, token_env); keep one"
                    .into(),
            ),
        }
    }

    fn check(&self, name: &str) -> Result<(), ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            name: name.to_owned(),
            message,
        };
        cluster_url(&self.url).map_err(invalid)?;
        let source = self.secret_source().map_err(invalid)?;
        let needs_user = matches!(
            source,
            SecretSource::PasswordPrompt
                | SecretSource::PasswordEnv(_)
                | SecretSource::SecretKeyEnv(_)
        );
        if needs_user && self.username.is_none() {
            return Err(invalid(
                "signs in with a password or secret key but names no username".into(),
            ));
        }
        for var in [&self.password_env, &self.secret_key_env, &self.token_env]
            .into_iter()
            .flatten()
        {
            if var.is_empty() || var.contains(['=', '\0']) {
                return Err(invalid(format!(
                    "\"{var}\" is not an environment variable name"
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::PasswordPrompt => {
                f.write_str("password, prompted for when a command runs")
            }
            SecretSource::PasswordEnv(var) => write!(f, "password from ${var}"),
            SecretSource::SecretKeyEnv(var) => {
                write!(f, "secret key (trusted authentication) from ${var}")
            }
            SecretSource::TokenEnv(var) => write!(f, "bearer token from ${var}"),
            SecretSource::Default => write!(
                f,
                "${}, ${} or ${} (first set wins), else a password prompt",
                env::TOKEN,
                env::SECRET_KEY,
                env::PASSWORD
            ),
        }
    }
}

/// A cluster URL made fit for use, and what was taken off it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterUrl {
    /// `scheme://host[:port]`: where the REST API lives.
    pub url: String,
    /// What followed the address and was dropped, e.g. `#/home` of a URL
    /// copied from a browser; `None` when nothing (or only `/`) did.
    pub dropped: Option<String>,
}

impl ClusterUrl {
    /// A warning about what was dropped, if anything was.
    pub fn warning(&self) -> Option<String> {
        self.dropped.as_ref().map(|dropped| {
            format!(
                "using {} and ignoring \"{dropped}\" after it: the REST API lives at the \
                 cluster's root (a URL copied from a browser carries the page's address)",
                self.url
            )
        })
    }
}

/// Reads the address of a cluster: `http(s)://host[:port]`, anything after
/// it (a browser's `/#/home`, a path, a query) dropped and reported in
/// [`ClusterUrl::dropped`]. A user name or password in the URL is refused
/// (it would be logged, recorded in snapshots and stored in profiles), and
/// no message repeats it.
pub fn cluster_url(raw: &str) -> Result<ClusterUrl, String> {
    let text = raw.trim();
    let shown = without_userinfo(text);
    let example = "e.g. https://example.thoughtspot.cloud";
    let parsed = url::Url::parse(text).map_err(|e| {
        format!("url \"{shown}\" is not a URL ({e}); give the cluster's address, {example}")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "url \"{shown}\" must be the cluster's address starting with https:// (or \
             http://), {example}"
        ));
    }
    let origin = parsed.origin().ascii_serialization();
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "url \"{shown}\" holds a user name or password; credentials never go in the URL, \
             where they would be logged and stored: give the address alone ({origin}), the \
             user with --username (or {}), and the password with --password-env VAR or \
             --password-prompt (or {})",
            env::USERNAME,
            env::PASSWORD
        ));
    }
    let mut dropped = String::new();
    if parsed.path() != "/" {
        dropped.push_str(parsed.path());
    }
    if parsed.query().is_some() {
        // A query may carry a token; it is named, not repeated.
        dropped.push_str("?…");
    }
    if let Some(fragment) = parsed.fragment() {
        dropped.push('#');
        dropped.push_str(fragment);
    }
    Ok(ClusterUrl {
        url: origin,
        dropped: (!dropped.is_empty()).then_some(dropped),
    })
}

/// `text` with whatever sits between the scheme and an `@` replaced, so a
/// message about a URL never repeats a password in it.
fn without_userinfo(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let authority_end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    match text[start..authority_end].rfind('@') {
        Some(at) => format!("{}…@{}", &text[..start], &text[start + at + 1..]),
        None => text.to_owned(),
    }
}

/// A profile problem.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No config directory could be found.
    #[error("cannot find a config directory ({0}); set {DIR_ENV}")]
    NoConfigDir(String),
    /// The profile file cannot be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No such profile.
    #[error(
        "no profile \"{name}\" in {path}{known}; create it with `ts-principals config create --name {name} --url …`"
    )]
    Missing {
        /// The name asked for.
        name: String,
        /// The profile file.
        path: PathBuf,
        /// ", profiles: a, b" or "".
        known: String,
    },
    /// A profile exists already.
    #[error(
        "profile \"{0}\" exists; pass --force to replace it, or `ts-principals config delete {0}` first"
    )]
    Exists(String),
    /// A profile or its name is unusable.
    #[error("profile \"{name}\" {message}")]
    Invalid {
        /// The profile.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Nothing says which cluster to use.
    #[error(
        "no cluster given: pass --profile NAME (see `ts-principals config list`), or set \
         {} (and {} with {}, {} or {})",
        env::URL,
        env::USERNAME,
        env::TOKEN,
        env::SECRET_KEY,
        env::PASSWORD
    )]
    NoCluster,
    /// A secret could not be had.
    #[error("{0}")]
    Secret(String),
    /// An environment variable holds an unusable value.
    #[error("{var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong (never the value itself when it may hold a secret).
        message: String,
    },
}

/// All profiles, as the file stores them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    /// By name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The profile store: one file in the config directory.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store in `TS_PRINCIPALS_CONFIG_DIR`, else the platform's config
    /// directory.
    pub fn locate() -> Result<Self, ProfileError> {
        let dir = match std::env::var_os(DIR_ENV).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                use etcetera::BaseStrategy;
                etcetera::choose_base_strategy()
                    .map_err(|e| ProfileError::NoConfigDir(e.to_string()))?
                    .config_dir()
                    .join("ts-principals")
            }
        };
        Ok(Self::at(dir))
    }

    /// The store in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            path: dir.into().join(FILE_NAME),
        }
    }

    /// The profile file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every profile (none when the file does not exist yet). A file (or
    /// directory) other users can write, or that another user than this
    /// one or root owns, is refused: whoever can change it can point a
    /// profile at their own server and collect the password.
    pub fn load(&self) -> Result<Profiles, ProfileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profiles::default()),
            Err(e) => return Err(self.error(format!("cannot read: {e}"))),
        };
        self.check_private()?;
        let profiles: Profiles =
            toml::from_str(&text).map_err(|e| self.error(describe_toml_error(&text, &e)))?;
        for (name, profile) in &profiles.profiles {
            profile.check(name)?;
        }
        Ok(profiles)
    }

    /// Refuses a profile file, or its directory, that others can write or
    /// that someone else owns (as ssh does): its owner can always change
    /// it, whatever its mode says.
    #[cfg(unix)]
    fn check_private(&self) -> Result<(), ProfileError> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let dir = self.dir();
        for (path, what, fix) in [
            (self.path.as_path(), "it", "600"),
            (dir, "its directory", "700"),
        ] {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            let named = if meta.is_dir() {
                format!("{what} {}", path.display())
            } else {
                what.to_owned()
            };
            if let Some(message) = foreign_owner(&named, path, meta.uid(), me) {
                return Err(self.error(message));
            }
            let mode = meta.permissions().mode();
            // A sticky directory (like /tmp) keeps others from replacing the file.
            let sticky = meta.is_dir() && mode & 0o1000 != 0;
            if mode & 0o022 != 0 && !sticky {
                return Err(self.error(format!(
                    "{what} can be changed by other users (mode {:o}), who could point a profile \
                     at their own server and collect your password; check the profiles, then \
                     run `chmod {fix} {}`",
                    mode & 0o7777,
                    path.display()
                )));
            }
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn check_private(&self) -> Result<(), ProfileError> {
        Ok(())
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// One profile by name.
    pub fn get(&self, name: &str) -> Result<Profile, ProfileError> {
        let mut profiles = self.load()?;
        match profiles.profiles.remove(name) {
            Some(profile) => Ok(profile),
            None => Err(self.missing(name, &profiles)),
        }
    }

    fn missing(&self, name: &str, profiles: &Profiles) -> ProfileError {
        let known = if profiles.profiles.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = profiles.profiles.keys().map(String::as_str).collect();
            format!(" (profiles: {})", names.join(", "))
        };
        ProfileError::Missing {
            name: name.to_owned(),
            path: self.path.clone(),
            known,
        }
    }

    /// Adds (or with `replace`, replaces) a profile.
    pub fn create(&self, name: &str, profile: Profile, replace: bool) -> Result<(), ProfileError> {
        check_name(name)?;
        profile.check(name)?;
        self.modify(|profiles| {
            if profiles.profiles.contains_key(name) && !replace {
                return Err(ProfileError::Exists(name.to_owned()));
            }
            profiles.profiles.insert(name.to_owned(), profile);
            Ok(())
        })
    }

    /// Deletes a profile.
    pub fn delete(&self, name: &str) -> Result<(), ProfileError> {
        self.modify(|profiles| {
            if profiles.profiles.remove(name).is_none() {
                return Err(self.missing(name, profiles));
            }
            Ok(())
        })
    }

    /// Loads, changes and saves the profiles while holding a lock on their
    /// directory, so runs changing profiles at once take turns and none
    /// loses another's change.
    fn modify(
        &self,
        change: impl FnOnce(&mut Profiles) -> Result<(), ProfileError>,
    ) -> Result<(), ProfileError> {
        let dir = self.dir();
        create_private_dir(dir).map_err(|e| {
            self.error(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })?;
        // Not only when the file exists (as `load` checks): no profile is
        // written where someone else could change it.
        self.check_private()?;
        let _lock = crate::atomic::Lock::acquire(dir, crate::atomic::Wait::Block, || {
            tracing::info!(
                "waiting for another ts-principals run to finish changing {}",
                self.path.display()
            );
        })
        .map_err(|e| self.error(format!("cannot lock {}: {e}", dir.display())))?;
        let mut profiles = self.load()?;
        change(&mut profiles)?;
        self.save(&profiles)
    }

    /// Writes the file atomically, readable by its owner only.
    fn save(&self, profiles: &Profiles) -> Result<(), ProfileError> {
        let text = toml::to_string(profiles)
            .map_err(|e| self.error(format!("cannot encode profiles: {e}")))?;
        let text = format!(
            "# ts-principals connection profiles; managed by `ts-principals config`.\n\
             # No secrets here: each profile names where its secret comes from.\n\n{text}"
        );
        crate::atomic::write_file(&self.path, text.as_bytes(), crate::atomic::Access::Private)
            .map_err(|e| self.error(format!("cannot write: {e}")))
    }

    fn error(&self, message: String) -> ProfileError {
        ProfileError::File {
            path: self.path.clone(),
            message,
        }
    }
}

/// Where and why the profile file does not parse, without the offending
/// line or value: someone may have written a secret there.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let mut message = error.message().trim_end().to_owned();
    let Some(span) = error.span().filter(|s| s.start <= text.len()) else {
        return format!("{message}; fix or delete the file");
    };
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..span.start].matches('\n').count() + 1;
    let column = text[line_start..span.start].chars().count() + 1;
    // The values on the lines the error points at are never repeated.
    let end = text[span.end.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| span.end.min(text.len()) + i);
    for source_line in text[line_start..end].lines() {
        let value = source_line.split_once('=').map_or(source_line, |(_, v)| v);
        let mut values: Vec<&str> = value
            .split(['"', '\''])
            .chain([value.trim(), value.trim().trim_matches(['"', '\''])])
            .map(str::trim)
            // Punctuation and one-letter words would garble the message.
            .filter(|v| v.len() > 2 && v.chars().any(char::is_alphanumeric))
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values {
            message = message.replace(value, "…");
        }
    }
    format!("line {line}, column {column}: {message}; fix or delete the file")
}

fn check_name(name: &str) -> Result<(), ProfileError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name == ENV_PROFILE {
        return Err(ProfileError::Invalid {
            name: name.to_owned(),
            message: "is reserved: `--profile env` means the environment alone".into(),
        });
    }
    if !valid {
        return Err(ProfileError::Invalid {
            name: name.to_owned(),
            message: "is not a valid name; use letters, digits, '-', '_' and '.'".into(),
        });
    }
    Ok(())
}

/// Why a profile file or directory owned by `owner` is not to be trusted
/// by a process running as `me`; `None` when `me` or root owns it.
#[cfg(unix)]
fn foreign_owner(what: &str, path: &Path, owner: u32, me: u32) -> Option<String> {
    if owner == me || owner == 0 {
        return None;
    }
    Some(format!(
        "{what} is owned by another user (uid {owner}; you are uid {me}), who can change it \
         and point a profile at their own server to collect your password; if it is yours, \
         check the profiles, then run `sudo chown {me} {}`; else use a config directory of \
         your own ({DIR_ENV}=DIR)",
        path.display()
    ))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// How a command reaches secrets: the environment and a prompt. Injected
/// so tests can stand in for both.
pub trait Secrets {
    /// An environment variable's value (`None` when unset or empty).
    fn var(&self, name: &str) -> Option<String>;
    /// Asks for a secret on the terminal; `None` when there is no terminal.
    fn prompt(&self, question: &str) -> Option<std::io::Result<String>>;
}

/// The process environment and the controlling terminal.
pub struct ProcessSecrets;

impl Secrets for ProcessSecrets {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn prompt(&self, question: &str) -> Option<std::io::Result<String>> {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return None;
        }
        Some(rpassword::prompt_password(question))
    }
}

/// The secret a profile resolved to. `Debug` never shows it.
#[derive(Clone)]
pub enum Secret {
    /// A bearer token.
    Token(SecretString),
    /// A trusted-authentication secret key (with the profile's username).
    SecretKey(SecretString),
    /// A password (with the profile's username).
    Password(SecretString),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Secret::Token(_) => "Token(<redacted>)",
            Secret::SecretKey(_) => "SecretKey(<redacted>)",
            Secret::Password(_) => "Password(<redacted>)",
        })
    }
}

/// A resolved profile: plain settings for reaching a cluster, with the
/// secret read from where the profile says.
#[derive(Debug)]
pub struct Resolved {
    /// The cluster's base URL (no trailing slash).
    pub url: String,
    /// The user to sign in as.
    pub username: Option<String>,
    /// The secret to sign in with.
    pub secret: Secret,
    /// PEM file of a private CA to trust.
    pub ca_cert: Option<PathBuf>,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// Orgs the profile fetches by default.
    pub orgs: Vec<String>,
    /// Where it came from, for messages ("profile prod", "the environment").
    pub origin: String,
}

/// Resolves `--profile` (or its absence) into settings: the named
/// profile; `env` or no profile with `THOUGHTSPOT_URL` set: the environment.
pub fn resolve(
    store: &Store,
    profile_name: Option<&str>,
    secrets: &dyn Secrets,
) -> Result<Resolved, ProfileError> {
    let (profile, origin) = match profile_name {
        Some(ENV_PROFILE) | None => {
            let Some(url) = secrets.var(env::URL) else {
                return Err(ProfileError::NoCluster);
            };
            let profile = Profile {
                url,
                username: secrets.var(env::USERNAME),
                ..Profile::default()
            };
            (profile, "the environment".to_owned())
        }
        Some(name) => (store.get(name)?, format!("profile \"{name}\"")),
    };
    let url = cluster_url(&profile.url).map_err(|message| match profile_name {
        Some(ENV_PROFILE) | None => ProfileError::Env {
            var: env::URL,
            message,
        },
        Some(name) => ProfileError::Invalid {
            name: name.to_owned(),
            message,
        },
    })?;
    if let Some(warning) = url.warning() {
        tracing::warn!("{origin}: {warning}");
    }
    let secret = secret(&profile, &origin, secrets)?;
    Ok(Resolved {
        url: url.url,
        username: profile.username,
        secret,
        ca_cert: profile.ca_cert,
        insecure: profile.insecure,
        orgs: profile.orgs,
        origin,
    })
}

/// The profile's secret, from its source. Without one named, the standard
/// variables are read, first set wins: a bearer token, then (with a
/// username) a secret key, then a password; else a prompt.
fn secret(profile: &Profile, origin: &str, secrets: &dyn Secrets) -> Result<Secret, ProfileError> {
    let from_var = |var: &str, what: &str| {
        secrets.var(var).map(SecretString::from).ok_or_else(|| {
            ProfileError::Secret(format!(
                "{origin} reads its {what} from ${var}, which is not set; export it first"
            ))
        })
    };
    let source = profile
        .secret_source()
        .map_err(|message| ProfileError::Invalid {
            name: origin.to_owned(),
            message,
        })?;
    let var = |name: &str| secrets.var(name).map(SecretString::from);
    Ok(match source {
        SecretSource::TokenEnv(name) => Secret::Token(from_var(&name, "bearer token")?),
        SecretSource::SecretKeyEnv(name) => Secret::SecretKey(from_var(&name, "secret key")?),
        SecretSource::PasswordEnv(name) => Secret::Password(from_var(&name, "password")?),
        SecretSource::PasswordPrompt => {
            Secret::Password(prompt_password(profile, origin, secrets)?)
        }
        SecretSource::Default => {
            if let Some(token) = var(env::TOKEN) {
                Secret::Token(token)
            } else if profile.username.is_none() {
                return Err(ProfileError::Secret(format!(
                    "{origin} has no credentials: set {} (a bearer token), or {} with {} or {}",
                    env::TOKEN,
                    env::USERNAME,
                    env::SECRET_KEY,
                    env::PASSWORD
                )));
            } else if let Some(key) = var(env::SECRET_KEY) {
                Secret::SecretKey(key)
            } else if let Some(password) = var(env::PASSWORD) {
                Secret::Password(password)
            } else {
                Secret::Password(prompt_password(profile, origin, secrets)?)
            }
        }
    })
}

fn prompt_password(
    profile: &Profile,
    origin: &str,
    secrets: &dyn Secrets,
) -> Result<SecretString, ProfileError> {
    let user = profile.username.as_deref().unwrap_or("?");
    let question = format!("Password for {user} at {}: ", profile.url);
    match secrets.prompt(&question) {
        Some(Ok(password)) if !password.is_empty() => Ok(SecretString::from(password)),
        Some(Ok(_)) => Err(ProfileError::Secret("no password entered".into())),
        Some(Err(e)) => Err(ProfileError::Secret(format!(
            "cannot read the password: {e}"
        ))),
        None => Err(ProfileError::Secret(format!(
            "{origin} needs a password but there is no terminal to ask on; set {} (or a \
             password_env/secret_key_env/token_env in the profile)",
            env::PASSWORD
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    struct Fake {
        vars: HashMap<&'static str, &'static str>,
        terminal: Option<&'static str>,
    }

    impl Secrets for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).map(|v| v.to_string())
        }
        fn prompt(&self, _: &str) -> Option<std::io::Result<String>> {
            self.terminal.map(|p| Ok(p.to_owned()))
        }
    }

    fn fake(vars: &[(&'static str, &'static str)], terminal: Option<&'static str>) -> Fake {
        Fake {
            vars: vars.iter().copied().collect(),
            terminal,
        }
    }

    fn profile() -> Profile {
        Profile {
            url: "https://ts.example.com".into(),
            username: Some("admin".into()),
            ..Profile::default()
        }
    }

    #[test]
    fn profiles_round_trip_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("sub"));
        let mut p = profile();
        p.secret_key_env = Some("PROD_KEY".into());
        p.orgs = vec!["Acme".into()];
        store.create("prod", p.clone(), false).unwrap();
        assert_eq!(store.get("prod").unwrap(), p);
        assert!(matches!(
            store.create("prod", p.clone(), false),
            Err(ProfileError::Exists(_))
        ));
        store.create("prod", p.clone(), true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.delete("prod").unwrap();
        let missing = store.get("prod").unwrap_err().to_string();
        assert!(missing.contains("config create --name prod"), "{missing}");
    }

    #[test]
    fn cluster_urls_are_the_address_alone() {
        let url = |raw: &str| cluster_url(raw).map(|u| (u.url, u.dropped));
        let plain = Ok(("https://ts.example.com".to_owned(), None));
        assert_eq!(url("https://ts.example.com"), plain);
        assert_eq!(url(" https://ts.example.com/ "), plain);
        assert_eq!(url("https://TS.example.com:443/"), plain);
        assert_eq!(
            url("https://ts.example.com/#/home"),
            Ok(("https://ts.example.com".into(), Some("#/home".into())))
        );
        assert_eq!(
            url("http://127.0.0.1:8787/?orgId=1&token=t#/pinboard/x"),
            Ok((
                "http://127.0.0.1:8787".into(),
                Some("?…#/pinboard/x".into())
            ))
        );
        let warning = cluster_url("https://ts.example.com/#/home")
            .unwrap()
            .warning()
            .unwrap();
        assert!(warning.contains("ignoring \"#/home\""), "{warning}");
        for raw in [
            "https://admin:Pw-77@ts.example.com/",
            "https://admin@ts.example.com",
            "https://:Pw-77@ts.example.com",
        ] {
            let error = cluster_url(raw).unwrap_err();
            assert!(!error.contains("Pw-77"), "{error}");
            assert!(error.contains("holds a user name or password"), "{error}");
            assert!(error.contains("(https://ts.example.com)"), "{error}");
        }
        for raw in [
            "ts.example.com",
            "admin:Pw-77@ts.example.com",
            "ftp://x",
            "https://",
        ] {
            let error = cluster_url(raw).unwrap_err();
            assert!(!error.contains("Pw-77"), "{error}");
            assert!(error.contains("https://"), "{error}");
        }
    }

    #[test]
    fn parse_errors_never_repeat_the_value() {
        let store = Store::at(tempfile::tempdir().unwrap().path());
        for (line, expected) in [
            ("password = \"hunter2-secret\"", "line 3, column 12"),
            ("insecure = \"hunter2-secret\"", "line 3, column 12"),
            ("token_env = [\"hunter2-secret\"]", "line 3, column 13"),
            ("username = hunter2-secret", "line 3, column 12"),
        ] {
            let text = format!("[profiles.p]\nurl = \"https://ts.example.com\"\n{line}\n");
            create_private_dir(store.dir()).unwrap();
            std::fs::write(store.path(), &text).unwrap();
            let error = store.load().unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{line}: {error}");
            assert!(error.contains(expected), "{line}: {error}");
        }
        // Keys are not values: a typo is still named.
        let text = "[profiles.p]\nurl = \"https://ts.example.com\"\nusrname = \"admin\"\n";
        std::fs::write(store.path(), text).unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(error.contains("usrname"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("c"));
        store.create("p", profile(), false).unwrap();
        let mode = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        mode(store.path(), 0o620);
        let error = store.load().unwrap_err().to_string();
        assert!(
            error.contains("mode 620") && error.contains("chmod 600"),
            "{error}"
        );
        mode(store.path(), 0o600);
        mode(store.dir(), 0o777);
        let error = store.get("p").unwrap_err().to_string();
        assert!(
            error.contains("its directory") && error.contains("chmod 700"),
            "{error}"
        );
        // Others cannot replace files in a sticky directory (like /tmp).
        mode(store.dir(), 0o1777);
        assert_eq!(store.get("p").unwrap(), profile());
        mode(store.dir(), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_or_directory_someone_else_owns_is_refused() {
        let path = Path::new("/home/ana/.config/ts-principals/profiles.toml");
        assert_eq!(foreign_owner("it", path, 1000, 1000), None);
        assert_eq!(foreign_owner("it", path, 0, 1000), None, "root may own it");
        let message = foreign_owner("it", path, 65534, 1000).unwrap();
        for expected in [
            "/home/ana/.config/ts-principals/profiles.toml",
            "uid 65534",
            "you are uid 1000",
            "sudo chown 1000 /home/ana/.config/ts-principals/profiles.toml",
            DIR_ENV,
        ] {
            assert!(message.contains(expected), "{expected}: {message}");
        }

        // The real thing needs root (to give a file away); skipped otherwise.
        use std::os::unix::fs::chown;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("c"));
        store.create("p", profile(), false).unwrap();
        if chown(store.path(), Some(65534), None).is_err() {
            eprintln!("skipped: giving a file to uid 65534 needs root");
            return;
        }
        let error = store.load().unwrap_err().to_string();
        assert!(
            error.contains("owned by another user (uid 65534") && error.contains("chown"),
            "{error}"
        );
        chown(store.path(), Some(0), None).unwrap();
        chown(store.dir(), Some(65534), None).unwrap();
        let error = store.get("p").unwrap_err().to_string();
        assert!(
            error.contains("its directory") && error.contains("uid 65534"),
            "{error}"
        );
        // Nor is a profile written there.
        let error = store.create("q", profile(), false).unwrap_err().to_string();
        assert!(error.contains("uid 65534"), "{error}");
        chown(store.dir(), Some(0), None).unwrap();
        assert_eq!(store.get("p").unwrap(), profile());
    }

    #[test]
    fn profiles_created_at_once_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("c"));
        const RUNS: usize = 16;
        let start = std::sync::Barrier::new(RUNS);
        std::thread::scope(|scope| {
            for i in 0..RUNS {
                let (store, start) = (&store, &start);
                scope.spawn(move || {
                    start.wait();
                    store.create(&format!("p{i}"), profile(), false).unwrap();
                });
            }
        });
        assert_eq!(store.load().unwrap().profiles.len(), RUNS);
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        let store = Store::at(tempfile::tempdir().unwrap().path());
        for (name, profile, expected) in [
            ("env", profile(), "reserved"),
            ("a b", profile(), "valid name"),
            (
                "p",
                Profile {
                    url: "ts.example.com".into(),
                    ..profile()
                },
                "https://",
            ),
            (
                "p",
                Profile {
                    password_env: Some("A".into()),
                    token_env: Some("B".into()),
                    ..profile()
                },
                "more than one",
            ),
            (
                "p",
                Profile {
                    username: None,
                    password: Some(PasswordSetting::Prompt),
                    ..profile()
                },
                "no username",
            ),
        ] {
            let error = store.create(name, profile, false).unwrap_err().to_string();
            assert!(error.contains(expected), "{name}: {error}");
        }
    }

    #[test]
    fn the_environment_alone_is_a_profile() {
        let store = Store::at(tempfile::tempdir().unwrap().path());
        let secrets = fake(
            &[
                (env::URL, "https://ts.example.com/"),
                (env::USERNAME, "admin"),
                (env::SECRET_KEY, "key-1"),
            ],
            None,
        );
        for name in [None, Some("env")] {
            let resolved = resolve(&store, name, &secrets).unwrap();
            assert_eq!(resolved.url, "https://ts.example.com");
            assert_eq!(resolved.username.as_deref(), Some("admin"));
            let Secret::SecretKey(key) = resolved.secret else {
                panic!("a secret key: {:?}", resolved.secret)
            };
            assert_eq!(key.expose_secret(), "key-1");
        }
        let none = resolve(&store, None, &fake(&[], None)).unwrap_err();
        assert!(matches!(none, ProfileError::NoCluster));
    }

    #[test]
    fn secrets_come_from_the_named_source() {
        let store = Store::at(tempfile::tempdir().unwrap().path());
        let mut p = profile();
        p.token_env = Some("MY_TOKEN".into());
        store.create("t", p, false).unwrap();
        let resolved = resolve(&store, Some("t"), &fake(&[("MY_TOKEN", "tok")], None)).unwrap();
        let Secret::Token(token) = resolved.secret else {
            panic!("a token: {:?}", resolved.secret)
        };
        assert_eq!(token.expose_secret(), "tok");
        let unset = resolve(&store, Some("t"), &fake(&[], None)).unwrap_err();
        assert!(
            unset.to_string().contains("$MY_TOKEN, which is not set"),
            "{unset}"
        );

        let mut p = profile();
        p.password = Some(PasswordSetting::Prompt);
        store.create("p", p, false).unwrap();
        let typed = resolve(&store, Some("p"), &fake(&[], Some("pw"))).unwrap();
        let Secret::Password(password) = typed.secret else {
            panic!("a password: {:?}", typed.secret)
        };
        assert_eq!(password.expose_secret(), "pw");
        let no_tty = resolve(&store, Some("p"), &fake(&[], None)).unwrap_err();
        assert!(no_tty.to_string().contains("no terminal"), "{no_tty}");
    }

    #[test]
    fn a_profile_without_a_source_reads_the_standard_variables() {
        let store = Store::at(tempfile::tempdir().unwrap().path());
        store.create("d", profile(), false).unwrap();
        let secrets = fake(&[(env::PASSWORD, "pw"), (env::URL, "https://other")], None);
        let resolved = resolve(&store, Some("d"), &secrets).unwrap();
        // The profile's URL wins over THOUGHTSPOT_URL.
        assert_eq!(resolved.url, "https://ts.example.com");
        let Secret::Password(password) = resolved.secret else {
            panic!("a password: {:?}", resolved.secret)
        };
        assert_eq!(password.expose_secret(), "pw");
    }

    #[test]
    fn the_standard_variables_go_token_then_secret_key_then_password() {
        let store = Store::at(tempfile::tempdir().unwrap().path());
        store.create("d", profile(), false).unwrap();
        let all = [
            (env::TOKEN, "tok"),
            (env::SECRET_KEY, "key"),
            (env::PASSWORD, "pw"),
        ];
        let kind = |vars: &[(&'static str, &'static str)]| match resolve(
            &store,
            Some("d"),
            &fake(vars, Some("typed")),
        )
        .map(|r| r.secret)
        {
            Ok(Secret::Token(s)) => format!("token {}", s.expose_secret()),
            Ok(Secret::SecretKey(s)) => format!("key {}", s.expose_secret()),
            Ok(Secret::Password(s)) => format!("password {}", s.expose_secret()),
            Err(e) => e.to_string(),
        };
        assert_eq!(kind(&all), "token tok");
        assert_eq!(kind(&all[1..]), "key key");
        assert_eq!(kind(&all[2..]), "password pw");
        assert_eq!(kind(&[]), "password typed");
    }
}
