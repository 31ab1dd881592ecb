//! The configuration file (TOML), validated without touching the network.
//!
//! Contract:
//! - Unknown keys are errors; every error names the key (`source.port`, `tables[2].source`).
//! - Durations are human strings (`"500ms"`, `"10m"`).
//! - Secrets come from an environment variable, a file, or a systemd credential; they are read
//!   when the configuration is loaded, kept in [`Secret`] (whose `Debug` and `Display` print
//!   `<redacted>`), and never appear in an error. A password inside `target.url` is refused.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration error, naming the key (or file) it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The key, as written in the file (`source.port`), or the file path.
    pub key: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// A secret value. Never printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for handing to a driver. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// TLS to SQL Server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceTls {
    /// Encrypt, and verify the certificate unless `trust_server_certificate`.
    #[default]
    Require,
    /// Plaintext (the simulator; never across an untrusted network).
    Disable,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    password_credential: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    host: String,
    #[serde(default = "default_mssql_port")]
    port: u16,
    database: String,
    user: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    password_credential: Option<String>,
    #[serde(default)]
    tls: SourceTls,
    #[serde(default)]
    trust_server_certificate: bool,
    ca_file: Option<PathBuf>,
}

fn default_mssql_port() -> u16 {
    1433
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    password_credential: Option<String>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    source: String,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    poll_interval: Option<String>,
    batch_rows: Option<usize>,
    snapshot_chunk_rows: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawValidation {
    interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    source: RawSource,
    target: RawTarget,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    tables: Vec<RawTable>,
    #[serde(default)]
    replication: RawReplication,
    #[serde(default)]
    validation: RawValidation,
}

/// SQL Server, the source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port (1433 by default).
    pub port: u16,
    /// Database to migrate.
    pub database: String,
    /// SQL login.
    pub user: String,
    /// The login's password.
    pub password: Secret,
    /// TLS mode.
    pub tls: SourceTls,
    /// Accept any server certificate (only with `tls = "require"`).
    pub trust_server_certificate: bool,
    /// CA certificate to verify the server with.
    pub ca_file: Option<PathBuf>,
}

/// PostgreSQL, the target.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Connection URL without a password.
    pub url: String,
    /// Password, when the server asks for one.
    pub password: Option<Secret>,
    /// CA certificate for verify-ca / verify-full.
    pub ca_file: Option<PathBuf>,
}

/// Which source tables to migrate: a `schema.table` name or pattern (`*`, `?`) and exclusions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSelector {
    /// Pattern of `schema.table`.
    pub source: String,
    /// Patterns excluded from it.
    pub exclude: Vec<String>,
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// SQL Server.
    pub source: SourceConfig,
    /// PostgreSQL.
    pub target: TargetConfig,
    /// Directory of the checkpoint store (created if missing).
    pub state_dir: PathBuf,
    /// Path of the control socket.
    pub control_socket: PathBuf,
    /// Tables to migrate (at least one selector).
    pub tables: Vec<TableSelector>,
    /// How often to look for changes while streaming.
    pub poll_interval: Duration,
    /// Most changes applied in one target transaction (split only at source transactions).
    pub batch_rows: usize,
    /// Rows per snapshot chunk.
    pub snapshot_chunk_rows: usize,
    /// How often to validate while streaming.
    pub validation_interval: Duration,
}

/// Where secrets and credentials are looked up; the process environment by default.
pub trait Environment {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

fn parse_duration(
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v)
            .map_err(|e| {
                err(
                    key,
                    format!("'{v}' is not a duration like \"500ms\", \"30s\" or \"10m\" ({e})"),
                )
            })
            .and_then(|d| {
                if d.is_zero() {
                    Err(err(key, "must be longer than zero"))
                } else {
                    Ok(d)
                }
            }),
    }
}

fn read_secret(
    section: &str,
    refs: RawSecretRef,
    env: &dyn Environment,
    required: bool,
) -> Result<Option<Secret>, ConfigError> {
    let given = [
        refs.password_env.is_some(),
        refs.password_file.is_some(),
        refs.password_credential.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given > 1 {
        return Err(err(
            format!("{section}.password_env"),
            "give only one of password_env, password_file and password_credential",
        ));
    }
    if let Some(name) = refs.password_env {
        let key = format!("{section}.password_env");
        return match env.var(&name) {
            Some(v) if !v.is_empty() => Ok(Some(Secret(v))),
            Some(_) => Err(err(key, format!("environment variable {name} is empty"))),
            None => Err(err(key, format!("environment variable {name} is not set"))),
        };
    }
    if let Some(path) = refs.password_file {
        return read_secret_file(&format!("{section}.password_file"), &path).map(Some);
    }
    if let Some(name) = refs.password_credential {
        let key = format!("{section}.password_credential");
        let dir = env
            .var("CREDENTIALS_DIRECTORY")
            .ok_or_else(|| err(&key, "CREDENTIALS_DIRECTORY is not set: systemd credentials need LoadCredential= in the unit"))?;
        if name.contains('/') || name.is_empty() {
            return Err(err(key, "a credential name, not a path"));
        }
        return read_secret_file(&key, &Path::new(&dir).join(name)).map(Some);
    }
    if required {
        return Err(err(
            format!("{section}.password_env"),
            "a password is required: set password_env, password_file or password_credential",
        ));
    }
    Ok(None)
}

fn read_secret_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        return Err(err(key, format!("{} is empty", path.display())));
    }
    Ok(Secret(secret))
}

/// Reads and validates the configuration file. Secrets are resolved from `env`.
pub fn load(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            path.display().to_string(),
            format!("cannot read the configuration file: {e}"),
        )
    })?;
    parse(&text, env)
}

/// Parses and validates configuration text.
pub fn parse(text: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        // toml names the key path in its message; keep its own words (no values are echoed for
        // secrets, which are never inline).
        let msg = e.message().to_string();
        let key = e
            .span()
            .map(|s| key_at(text, s.start))
            .unwrap_or_else(|| "configuration".into());
        err(key, msg)
    })?;
    let s = raw.source;
    if s.host.trim().is_empty() {
        return Err(err("source.host", "must not be empty"));
    }
    if s.port == 0 {
        return Err(err("source.port", "must be 1-65535"));
    }
    if s.database.trim().is_empty() {
        return Err(err("source.database", "must not be empty"));
    }
    if s.user.trim().is_empty() {
        return Err(err("source.user", "must not be empty"));
    }
    if s.tls == SourceTls::Disable && (s.trust_server_certificate || s.ca_file.is_some()) {
        return Err(err(
            "source.trust_server_certificate",
            "has no meaning with tls = \"disable\"",
        ));
    }
    let source_password = read_secret(
        "source",
        RawSecretRef {
            password_env: s.password_env,
            password_file: s.password_file,
            password_credential: s.password_credential,
        },
        env,
        true,
    )?
    .ok_or_else(|| err("source.password_env", "a password is required"))?;
    let t = raw.target;
    let url: tokio_postgres::Config = t.url.parse().map_err(|e| {
        err(
            "target.url",
            format!("not a PostgreSQL URL or connection string: {e}"),
        )
    })?;
    if url.get_password().is_some() {
        return Err(err("target.url", "must not contain a password: use target.password_env, password_file or password_credential"));
    }
    let target_password = read_secret(
        "target",
        RawSecretRef {
            password_env: t.password_env,
            password_file: t.password_file,
            password_credential: t.password_credential,
        },
        env,
        false,
    )?;
    if raw.tables.is_empty() {
        return Err(err(
            "tables",
            "name at least one table or pattern, e.g. [[tables]] source = \"dbo.*\"",
        ));
    }
    let mut tables = Vec::new();
    for (i, tsel) in raw.tables.into_iter().enumerate() {
        validate_pattern(&format!("tables[{i}].source"), &tsel.source)?;
        for (j, x) in tsel.exclude.iter().enumerate() {
            validate_pattern(&format!("tables[{i}].exclude[{j}]"), x)?;
        }
        tables.push(TableSelector {
            source: tsel.source,
            exclude: tsel.exclude,
        });
    }
    let r = raw.replication;
    let batch_rows = r.batch_rows.unwrap_or(10_000);
    if batch_rows == 0 {
        return Err(err("replication.batch_rows", "must be at least 1"));
    }
    let snapshot_chunk_rows = r.snapshot_chunk_rows.unwrap_or(50_000);
    if snapshot_chunk_rows == 0 {
        return Err(err("replication.snapshot_chunk_rows", "must be at least 1"));
    }
    Ok(Config {
        source: SourceConfig {
            host: s.host,
            port: s.port,
            database: s.database,
            user: s.user,
            password: source_password,
            tls: s.tls,
            trust_server_certificate: s.trust_server_certificate,
            ca_file: s.ca_file,
        },
        target: TargetConfig {
            url: t.url,
            password: target_password,
            ca_file: t.ca_file,
        },
        state_dir: raw
            .state
            .dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/replicator")),
        control_socket: raw
            .control
            .socket
            .unwrap_or_else(|| PathBuf::from("/run/replicator/control.sock")),
        tables,
        poll_interval: parse_duration(
            "replication.poll_interval",
            r.poll_interval.as_deref(),
            Duration::from_millis(200),
        )?,
        batch_rows,
        snapshot_chunk_rows,
        validation_interval: parse_duration(
            "validation.interval",
            raw.validation.interval.as_deref(),
            Duration::from_secs(600),
        )?,
    })
}

/// The dotted key (`source.port`, `tables[1].source`) written at byte `offset` of the file, for
/// errors the TOML parser reports by position; `line N` when no key can be told.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_no = text[..offset].matches('\n').count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    // The section: the last [name] or [[name]] header above, with its index for arrays.
    let mut section = String::new();
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for l in text[..line_start].lines() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let n = counts.entry(name.trim().to_string()).or_insert(0);
            section = format!("{}[{}]", name.trim(), *n);
            *n += 1;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            section = name.trim().to_string();
        }
    }
    match key {
        Some(k) if section.is_empty() => k,
        Some(k) => format!("{section}.{k}"),
        None => format!("line {line_no}"),
    }
}

/// A `schema.table` pattern: two parts, `*` and `?` as wildcards; brackets quote names with dots.
fn validate_pattern(key: &str, p: &str) -> Result<(), ConfigError> {
    let mut parts = 0;
    let mut in_bracket = false;
    let mut current = String::new();
    for c in p.chars() {
        match c {
            '[' if !in_bracket => in_bracket = true,
            ']' if in_bracket => in_bracket = false,
            '.' if !in_bracket => {
                if current.is_empty() {
                    return Err(err(key, format!("'{p}' has an empty name part")));
                }
                parts += 1;
                current.clear();
            }
            c => current.push(c),
        }
    }
    if in_bracket {
        return Err(err(key, format!("'{p}' has an unclosed '['")));
    }
    if current.is_empty() {
        return Err(err(key, format!("'{p}' has an empty name part")));
    }
    if parts != 1 {
        return Err(err(
            key,
            format!("'{p}' must be schema.table (e.g. \"dbo.*\" or \"sales.[order.lines]\")"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Env(HashMap<String, String>);
    impl Environment for Env {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }
    fn env(pairs: &[(&str, &str)]) -> Env {
        Env(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    const MINIMAL: &str = r#"
[source]
host = "127.0.0.1"
database = "shop"
user = "replicator"
password_env = "MSSQL_PASSWORD"

[target]
url = "postgres://replicator@127.0.0.1:5432/shop?sslmode=prefer"

[[tables]]
source = "dbo.*"
"#;

    #[test]
    fn minimal_file_gets_defaults() {
        let c = parse(MINIMAL, &env(&[("MSSQL_PASSWORD", "s3cret!")])).unwrap();
        assert_eq!(c.source.port, 1433);
        assert_eq!(c.source.tls, SourceTls::Require);
        assert_eq!(c.source.password.expose(), "s3cret!");
        assert_eq!(c.poll_interval, Duration::from_millis(200));
        assert_eq!(c.validation_interval, Duration::from_secs(600));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/replicator"));
        assert_eq!(
            c.tables,
            vec![TableSelector {
                source: "dbo.*".into(),
                exclude: vec![]
            }]
        );
    }

    #[test]
    fn secrets_are_never_printed() {
        let c = parse(MINIMAL, &env(&[("MSSQL_PASSWORD", "s3cret!")])).unwrap();
        let shown = format!("{c:?} {}", c.source.password);
        assert!(!shown.contains("s3cret!"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = |text: &str, vars: &[(&str, &str)]| parse(text, &env(vars)).unwrap_err();
        let with = |from: &str, to: &str| MINIMAL.replace(from, to);
        let ok_env = [("MSSQL_PASSWORD", "x")];
        assert_eq!(e(MINIMAL, &[]).key, "source.password_env");
        assert!(e(MINIMAL, &[]).message.contains("MSSQL_PASSWORD"));
        let url_err = e(
            &MINIMAL.replace("replicator@", "replicator:hunter2@"),
            &ok_env,
        );
        assert_eq!(url_err.key, "target.url");
        assert!(!url_err.to_string().contains("hunter2"), "{url_err}");
        assert_eq!(
            e(&with("source = \"dbo.*\"", "source = \"dbo\""), &ok_env).key,
            "tables[0].source"
        );
        assert_eq!(
            e(
                &format!("{MINIMAL}\n[replication]\npoll_interval = \"soon\"\n"),
                &ok_env
            )
            .key,
            "replication.poll_interval"
        );
        assert_eq!(
            e(
                &format!("{MINIMAL}\n[replication]\nbatch_rows = 0\n"),
                &ok_env
            )
            .key,
            "replication.batch_rows"
        );
        // Type errors found by the TOML parser name the key too.
        assert_eq!(
            e(
                &with("database = \"shop\"", "database = \"shop\"\nport = \"abc\""),
                &ok_env
            )
            .key,
            "source.port"
        );
        assert_eq!(
            e(&format!("{MINIMAL}\n[[tables]]\nsource = 7\n"), &ok_env).key,
            "tables[1].source"
        );
        let unknown = e(
            &with(
                "user = \"replicator\"",
                "user = \"replicator\"\npasword_env = \"typo\"",
            ),
            &ok_env,
        );
        assert!(unknown.message.contains("pasword_env"), "{unknown}");
        assert_eq!(
            e(
                &with(
                    "password_env = \"MSSQL_PASSWORD\"",
                    "password_env = \"MSSQL_PASSWORD\"\npassword_file = \"/x\""
                ),
                &ok_env
            )
            .key,
            "source.password_env"
        );
    }

    #[test]
    fn secrets_from_files_and_systemd_credentials() {
        let dir =
            std::env::temp_dir().join(format!("replicator-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mssql"), "from-credential\n").unwrap();
        std::fs::write(dir.join("pg"), "from-file\n").unwrap();
        let text = MINIMAL
            .replace(
                "password_env = \"MSSQL_PASSWORD\"",
                "password_credential = \"mssql\"",
            )
            .replace(
                "sslmode=prefer\"",
                &format!(
                    "sslmode=prefer\"\npassword_file = \"{}\"",
                    dir.join("pg").display()
                ),
            );
        let c = parse(
            &text,
            &env(&[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.source.password.expose(), "from-credential");
        assert_eq!(
            c.target.password.as_ref().map(|p| p.expose()),
            Some("from-file")
        );
        let missing = parse(&text, &env(&[])).unwrap_err();
        assert_eq!(missing.key, "source.password_credential");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/replicator.example.toml");
        let c = load(&path, &env(&[("MSSQL_PASSWORD", "x")])).unwrap();
        assert_eq!(c.tables[0].exclude.len(), 2);
        assert_eq!(c.snapshot_chunk_rows, 50_000);
    }

    #[test]
    fn table_patterns() {
        for ok in ["dbo.*", "sales.[order.lines]", "*.*", "x.y?z"] {
            validate_pattern("k", ok).unwrap();
        }
        for bad in ["dbo", "a.b.c", ".t", "s.", "s.[x"] {
            assert!(validate_pattern("k", bad).is_err(), "{bad}");
        }
    }
}
