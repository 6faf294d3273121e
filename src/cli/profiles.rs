//! `ts-principals config create/list/show/delete`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config::profile::{
    self, PasswordSetting, Profile, ProfileError, Profiles, SecretSource, Store, env,
};

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Create (or with --force replace) a profile.
    ///
    /// Example: ts-principals config create --name prod --url https://example.thoughtspot.cloud
    /// --username admin --secret-key-env PROD_TS_SECRET_KEY
    ///
    /// Say where the secret comes from with one of --password-prompt, --password-env,
    /// --secret-key-env or --token-env; with none, THOUGHTSPOT_TOKEN, THOUGHTSPOT_SECRET_KEY
    /// or THOUGHTSPOT_PASSWORD is read when a command runs, else the password is prompted
    /// for. The secret itself is never stored.
    Create(CreateArgs),
    /// List the profiles.
    List,
    /// Show one profile (never a secret: only where it comes from and whether it is set).
    Show {
        /// The profile.
        name: String,
    },
    /// Delete a profile.
    Delete {
        /// The profile.
        name: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("secret").multiple(false)))]
pub(super) struct CreateArgs {
    /// Profile name (letters, digits, '-', '_', '.'), used as `--profile NAME`.
    #[arg(long)]
    name: String,
    /// The cluster's address, e.g. https://example.thoughtspot.cloud (anything after
    /// it, such as a browser's /#/home, is dropped; a user name or password in it is
    /// refused: use --username and a secret source).
    #[arg(long)]
    url: String,
    /// The user to sign in as.
    #[arg(long)]
    username: Option<String>,
    /// Ask for the password on the terminal each time the profile is used.
    #[arg(long, group = "secret")]
    password_prompt: bool,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", group = "secret")]
    password_env: Option<String>,
    /// Read a trusted-authentication secret key from this environment variable.
    #[arg(long, value_name = "VAR", group = "secret")]
    secret_key_env: Option<String>,
    /// Read a bearer token from this environment variable.
    #[arg(long, value_name = "VAR", group = "secret")]
    token_env: Option<String>,
    /// Org to fetch by default, by name or id (repeatable; none: every org).
    #[arg(long = "org", value_name = "NAME|ID")]
    orgs: Vec<String>,
    /// PEM file of a private CA to trust.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Skip TLS certificate verification for this cluster (warned about on every use).
    #[arg(long)]
    insecure: bool,
    /// Replace a profile of the same name.
    #[arg(long)]
    force: bool,
}

pub(super) fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let store = Store::locate()?;
    match command {
        ConfigCommand::Create(args) => create(&store, args)?,
        ConfigCommand::List => list(&store)?,
        ConfigCommand::Show { name } => {
            let profile = store.get(&name)?;
            print!(
                "{}",
                show(&name, &profile, &|var| std::env::var_os(var).is_some())
            );
        }
        ConfigCommand::Delete { name } => {
            store.delete(&name)?;
            tracing::info!("deleted profile \"{name}\" from {}", store.path().display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create(store: &Store, args: CreateArgs) -> anyhow::Result<()> {
    let ca_cert = match args.ca_cert {
        Some(path) => Some(std::fs::canonicalize(&path).map_err(|e| {
            anyhow::anyhow!(
                "--ca-cert {}: {e}; give the path of a PEM file",
                path.display()
            )
        })?),
        None => None,
    };
    let url = profile::cluster_url(&args.url).map_err(|message| ProfileError::Invalid {
        name: args.name.clone(),
        message,
    })?;
    if let Some(warning) = url.warning() {
        tracing::warn!("{warning}");
    }
    let profile = Profile {
        url: url.url,
        username: args.username,
        password: args.password_prompt.then_some(PasswordSetting::Prompt),
        password_env: args.password_env,
        secret_key_env: args.secret_key_env,
        token_env: args.token_env,
        orgs: args.orgs,
        ca_cert,
        insecure: args.insecure,
    };
    if profile.insecure {
        tracing::warn!(
            "profile \"{}\" skips TLS certificate verification; prefer --ca-cert",
            args.name
        );
    }
    store.create(&args.name, profile, args.force)?;
    tracing::info!(
        "saved profile \"{}\" in {}; use it with --profile {}",
        args.name,
        store.path().display(),
        args.name
    );
    Ok(())
}

fn list(store: &Store) -> anyhow::Result<()> {
    let Profiles { profiles } = store.load()?;
    if profiles.is_empty() {
        tracing::info!(
            "no profiles in {}; create one with `ts-principals config create`",
            store.path().display()
        );
        return Ok(());
    }
    let width = profiles
        .keys()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0);
    for (name, profile) in &profiles {
        let user = profile.username.as_deref().unwrap_or("-");
        println!("{name:width$}  {}  {user}", profile.url);
    }
    tracing::debug!("profiles are in {}", store.path().display());
    Ok(())
}

/// A profile for people: where the secret comes from, never the secret.
fn show(name: &str, profile: &Profile, is_set: &dyn Fn(&str) -> bool) -> String {
    let set = |var: &str| if is_set(var) { "set" } else { "not set" };
    let secret = match &profile.secret_source() {
        Ok(SecretSource::Default) => {
            let vars: Vec<String> = [env::TOKEN, env::SECRET_KEY, env::PASSWORD]
                .iter()
                .map(|v| format!("${v} ({})", set(v)))
                .collect();
            format!(
                "{}, first set wins; else a password prompt",
                vars.join(", ")
            )
        }
        Ok(
            source @ (SecretSource::PasswordEnv(var)
            | SecretSource::SecretKeyEnv(var)
            | SecretSource::TokenEnv(var)),
        ) => format!("{source} ({})", set(var)),
        Ok(source) => source.to_string(),
        Err(problem) => problem.clone(),
    };
    let mut text = format!("name:      {name}\nurl:       {}\n", profile.url);
    text += &format!(
        "username:  {}\n",
        profile.username.as_deref().unwrap_or("(none)")
    );
    text += &format!("secret:    {secret}\n");
    let orgs = if profile.orgs.is_empty() {
        "(every org)".to_owned()
    } else {
        profile.orgs.join(", ")
    };
    text += &format!("orgs:      {orgs}\n");
    if let Some(ca) = &profile.ca_cert {
        text += &format!("ca_cert:   {}\n", ca.display());
    }
    if profile.insecure {
        text += "insecure:  yes (TLS certificates are not verified)\n";
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_says_where_secrets_come_from_and_whether_they_are_set() {
        let profile = Profile {
            url: "https://ts.example.com".into(),
            username: Some("admin".into()),
            secret_key_env: Some("PROD_KEY".into()),
            ..Profile::default()
        };
        let text = show("prod", &profile, &|var| var == "PROD_KEY");
        assert!(
            text.contains("secret key (trusted authentication) from $PROD_KEY (set)"),
            "{text}"
        );
        let default = Profile {
            secret_key_env: None,
            ..profile
        };
        let text = show("prod", &default, &|var| var == env::PASSWORD);
        assert!(text.contains("$THOUGHTSPOT_PASSWORD (set)"), "{text}");
        assert!(text.contains("$THOUGHTSPOT_TOKEN (not set)"), "{text}");
    }
}
