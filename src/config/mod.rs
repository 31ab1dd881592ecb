//! The configuration file (TOML), validated without touching the network.
//!
//! Contract:
//! - Unknown keys are errors; every error names the key (`source.port`, `tables[2].source`).
//! - Durations are human strings (`"500ms"`, `"10m"`).
//! - Secrets come from an environment variable, a file, or a systemd credential; they are read
//!   when the configuration is loaded, kept in [`Secret`] (whose `Debug` and `Display` print
//!   `<redacted>`), and never appear in an error. A password inside `target.url` is refused.

mod pg_url;

pub use pg_url::{split_ssl_options, PgSslMode};
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

/// How the replicator logs in to SQL Server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceAuth {
    /// A SQL Server login (`source.user` and its password).
    #[default]
    Sql,
    /// Windows authentication with NTLM: `source.user` is `DOMAIN\user`.
    Windows,
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
    auth: SourceAuth,
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
    key: Option<Vec<String>>,
    change_source: Option<ChangeSourceChoice>,
    #[serde(default)]
    columns: std::collections::BTreeMap<String, RawColumn>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    rename: Option<String>,
    #[serde(default)]
    exclude: bool,
    #[serde(rename = "type")]
    target_type: Option<String>,
    expression: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    #[serde(default)]
    schemas: std::collections::BTreeMap<String, String>,
    identifier_case: Option<IdentifierCase>,
    progress_schema: Option<String>,
    #[serde(default)]
    types: std::collections::BTreeMap<String, String>,
    alias_types: Option<AliasTypes>,
    computed_columns: Option<ComputedColumns>,
    collation: Option<Collation>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    nul_characters: Option<NulPolicy>,
    nul_replacement: Option<String>,
    sub_microsecond: Option<SubMicrosecondPolicy>,
    retention_loss: Option<RetentionPolicy>,
    invalid_xml: Option<InvalidXmlPolicy>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    poll_interval: Option<String>,
    batch_rows: Option<usize>,
    snapshot_chunk_rows: Option<usize>,
    snapshot_workers: Option<usize>,
    snapshot_decoder: Option<SnapshotDecoder>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawValidation {
    interval: Option<String>,
    mode: Option<String>,
    sample_rows: Option<usize>,
    max_share: Option<f64>,
    checksums: Option<String>,
    chunk_rows: Option<i64>,
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
    #[serde(default)]
    mapping: RawMapping,
    #[serde(default)]
    policies: RawPolicies,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    fallback: RawFallback,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFallback {
    slot: Option<String>,
    window_changes: Option<i32>,
    max_retained_wal: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
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
    /// SQL login or Windows (NTLM).
    pub auth: SourceAuth,
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
    /// CA certificate for verify-ca / verify-full (`target.ca_file`, or `sslrootcert` in the URL).
    pub ca_file: Option<PathBuf>,
    /// `sslmode` from the URL (libpq's values; `prefer` when absent).
    pub ssl_mode: PgSslMode,
}

/// Which source tables to migrate: a `schema.table` name or pattern (`*`, `?`) and exclusions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableSelector {
    /// Pattern of `schema.table`.
    pub source: String,
    /// Patterns excluded from it.
    pub exclude: Vec<String>,
    /// Key columns for tables without a primary key (source names).
    pub key: Option<Vec<String>>,
    /// Where changes come from.
    pub change_source: ChangeSourceChoice,
    /// Per-column settings, by source column name.
    pub columns: std::collections::BTreeMap<String, ColumnSettings>,
}

/// The first `[[tables]]` entry that selects `table` (it decides the table's settings), with
/// its index.
pub fn selector_for<'a>(
    selectors: &'a [TableSelector],
    table: &crate::model::TableName,
) -> Option<(usize, &'a TableSelector)> {
    selectors.iter().enumerate().find(|(_, s)| s.matches(table))
}

impl TableSelector {
    /// Whether `table` is selected: matches `source` and none of `exclude`. Names compare
    /// case-insensitively, as SQL Server's default collation does; `*` and `?` are wildcards.
    pub fn matches(&self, table: &crate::model::TableName) -> bool {
        pattern_matches(&self.source, table)
            && !self.exclude.iter().any(|x| pattern_matches(x, table))
    }

    /// Whether `source` names exactly one table (no wildcard).
    pub fn is_exact(&self) -> bool {
        !self.source.contains(['*', '?'])
    }
}

fn pattern_matches(pattern: &str, table: &crate::model::TableName) -> bool {
    let Some((ps, pt)) = crate::model::split_two_part(pattern) else {
        return false;
    };
    glob(&ps.to_lowercase(), &table.schema.to_lowercase())
        && glob(&pt.to_lowercase(), &table.name.to_lowercase())
}

/// `*` (any run) and `?` (one character) matching, iterative with backtracking.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Per-column settings of a `[[tables]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnSettings {
    /// Target column name (used as written, whatever `identifier_case`).
    pub rename: Option<String>,
    /// Leave the column out.
    pub exclude: bool,
    /// Target type override (see [`crate::model::TargetKind::parse`]).
    pub target_type: Option<String>,
    /// A T-SQL expression the source evaluates instead of the column (masking, business rules).
    pub expression: Option<String>,
}

/// Where a table's changes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSourceChoice {
    /// CDC when a capture instance exists, else Change Tracking.
    #[default]
    Auto,
    /// Change Tracking.
    ChangeTracking,
    /// Change Data Capture.
    Cdc,
    /// Copied once, validated at cutover; no streaming.
    None,
}

/// How target identifiers are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierCase {
    /// Lower-cased (PostgreSQL's convention; collisions are an error).
    #[default]
    Lower,
    /// As SQL Server spells them.
    Preserve,
}

/// Who decodes the snapshot's rows (`replication.snapshot_decoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotDecoder {
    /// The replicator's own: TDS rows straight into binary COPY (a table with a column type it
    /// does not read is read through tiberius).
    #[default]
    Direct,
    /// tiberius's rows, converted value by value (slower; the escape hatch).
    Tiberius,
}

/// What to do with NUL characters in text (PostgreSQL text cannot hold them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NulPolicy {
    /// Remove them (counted).
    #[default]
    Strip,
    /// Stop the table with an error naming the key.
    Fail,
    /// Replace each with `policies.nul_replacement` (counted).
    Replace,
}

/// What to do with digits below a microsecond (datetime2(7), time(7), datetimeoffset(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SubMicrosecondPolicy {
    /// Truncate (never round across a day boundary; counted).
    #[default]
    Truncate,
    /// Stop the table with an error naming the key.
    Fail,
}

/// What to do with an xml value PostgreSQL's parser would refuse (not well-formed XML content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InvalidXmlPolicy {
    /// Stop the table with an error naming the key and the column.
    #[default]
    Fail,
    /// Write NULL instead (counted per column).
    Null,
}

/// What to do when a table's changes are no longer available (retention, TRUNCATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RetentionPolicy {
    /// Re-snapshot that table while the others stream.
    #[default]
    Resnapshot,
    /// Stop that table with an error.
    Stop,
}

/// Lossy-value policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    /// NUL characters in text.
    pub nul_characters: NulPolicy,
    /// Replacement for a NUL with [`NulPolicy::Replace`].
    pub nul_replacement: String,
    /// Digits below a microsecond.
    pub sub_microsecond: SubMicrosecondPolicy,
    /// Lost change history.
    pub retention_loss: RetentionPolicy,
    /// xml values that are not well-formed XML content.
    pub invalid_xml: InvalidXmlPolicy,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            nul_characters: NulPolicy::Strip,
            nul_replacement: String::new(),
            sub_microsecond: SubMicrosecondPolicy::Truncate,
            retention_loss: RetentionPolicy::Resnapshot,
            invalid_xml: InvalidXmlPolicy::Fail,
        }
    }
}

/// Naming and type mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Source schema to target schema (`dbo` to `public` unless given).
    pub schemas: std::collections::BTreeMap<String, String>,
    /// Identifier case.
    pub identifier_case: IdentifierCase,
    /// Schema of the target's progress tables.
    pub progress_schema: String,
    /// Type overrides by SQL Server type name (`datetime2 = "text"`).
    pub types: std::collections::BTreeMap<String, String>,
    /// What a column of an alias type (`sp_addtype`, `CREATE TYPE ... FROM`) becomes.
    pub alias_types: AliasTypes,
    /// What a computed column becomes.
    pub computed_columns: ComputedColumns,
    /// How case-insensitive source text compares on the target.
    pub collation: Collation,
}

/// How a case-insensitive source column (`_CI_` collations, SQL Server's usual) compares on
/// the target (`mapping.collation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Collation {
    /// PostgreSQL's default (deterministic, case-sensitive): `'abc' = 'ABC'` is false, and a
    /// unique key allows both.
    #[default]
    Binary,
    /// A nondeterministic ICU collation, case-insensitive and accent-sensitive
    /// (`und-u-ks-level2`), on every such column: compares as SQL Server did. PostgreSQL
    /// before 18 refuses LIKE on these columns unless the query says `COLLATE "default"`.
    Preserve,
    /// The `citext` extension's type on every such column (case-insensitive comparison, LIKE
    /// included, on any PostgreSQL; accents and case fold by `lower()`): a varchar(n) keeps its
    /// limit as a CHECK. Columns of an alias type keep their domain.
    Citext,
}

/// What a computed column becomes (`mapping.computed_columns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ComputedColumns {
    /// `GENERATED ALWAYS AS (...) STORED` when its definition is deterministic, not part of the
    /// key, and translates; otherwise a plain column holding the source's values.
    #[default]
    Generated,
    /// Always a plain column holding the source's values.
    Values,
}

/// What a column of an alias type becomes (`mapping.alias_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AliasTypes {
    /// A PostgreSQL domain of the same name over the base type's mapping.
    #[default]
    Domain,
    /// The base type's mapping.
    Base,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            schemas: [("dbo".to_string(), "public".to_string())].into(),
            identifier_case: IdentifierCase::Lower,
            progress_schema: "replicator".into(),
            types: Default::default(),
            alias_types: AliasTypes::Domain,
            computed_columns: ComputedColumns::Generated,
            collation: Collation::Binary,
        }
    }
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[fallback]`.
    pub fallback: FallbackConfig,
    /// SQL Server.
    pub source: SourceConfig,
    /// PostgreSQL.
    pub target: TargetConfig,
    /// Directory of the checkpoint store (created if missing).
    pub state_dir: PathBuf,
    /// Path of the control socket.
    pub control_socket: PathBuf,
    /// Where the Prometheus `/metrics` listener binds (off when `None`; loopback only).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Tables to migrate (at least one selector).
    pub tables: Vec<TableSelector>,
    /// How often to look for changes while streaming.
    pub poll_interval: Duration,
    /// Most changes applied in one target transaction (split only at source transactions).
    pub batch_rows: usize,
    /// Rows per snapshot chunk: the first chunk's when not set (then each next chunk aims at
    /// 16 MiB of COPY data), every chunk's when set.
    pub snapshot_chunk_rows: usize,
    /// Whether `replication.snapshot_chunk_rows` was set.
    pub snapshot_chunk_rows_set: bool,
    /// How often to validate while streaming (`None`: never, `interval = "off"`).
    pub validation_interval: Option<Duration>,
    /// What periodic validation does.
    pub validation_mode: ValidationMode,
    /// Keys compared per table by a sample validation.
    pub validation_sample_rows: usize,
    /// Largest share of one connection's time a validation read may take (0 < x <= 1).
    pub validation_max_share: f64,
    /// Who computes a full validation's checksums.
    pub validation_checksums: Checksums,
    /// Rows per aggregate statement of a paced database-side full validation.
    pub validation_chunk_rows: i64,
    /// Parallel snapshot workers (each holds one source and one target connection).
    pub snapshot_workers: usize,
    /// Who decodes the snapshot's rows.
    pub snapshot_decoder: SnapshotDecoder,
    /// Naming and types.
    pub mapping: Mapping,
    /// Lossy-value and retention policies.
    pub policies: Policies,
}

/// `[fallback]`: PostgreSQL's changes back to SQL Server after `cutover --fallback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackConfig {
    /// The logical replication slot's name (default `replicator_fallback_<target database>`).
    pub slot: String,
    /// About how many changes one window reads (whole transactions; default 10,000).
    pub window_changes: i32,
    /// Status and metrics warn when the slot keeps more WAL than this (bytes; default 10 GiB).
    pub max_retained_wal: i64,
}

/// What a validation compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationMode {
    /// Row counts (exact, at one position) and `sample_rows` random keys value by value.
    Sample,
    /// Every row: bucketed hashes of both sides, differing buckets narrowed to keys.
    Full,
}

/// Who computes a full validation's bucket checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksums {
    /// Each database, where the source can (SQL Server 2019+, rendered types); otherwise the
    /// replicator. No rows move for equal buckets.
    Database,
    /// The replicator, reading every row of both sides (spares the source's CPU the hashing).
    Replicator,
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
    let source = source_section(raw.source, env)?;
    let target = target_section(raw.target, env)?;
    let tables = tables_section(raw.tables)?;
    let r = raw.replication;
    let batch_rows = r.batch_rows.unwrap_or(10_000);
    if batch_rows == 0 {
        return Err(err("replication.batch_rows", "must be at least 1"));
    }
    let snapshot_chunk_rows = r.snapshot_chunk_rows.unwrap_or(50_000);
    if snapshot_chunk_rows == 0 {
        return Err(err("replication.snapshot_chunk_rows", "must be at least 1"));
    }
    // One more worker than the machine has cores (a worker waits on one database or the other
    // part of the time), at least 2, at most 8.
    let snapshot_workers = r.snapshot_workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() + 1)
            .unwrap_or(4)
            .clamp(2, 8)
    });
    if snapshot_workers == 0 || snapshot_workers > 64 {
        return Err(err("replication.snapshot_workers", "must be 1-64"));
    }
    let mapping = mapping_section(raw.mapping)?;
    let policies = policies_section(raw.policies)?;
    let fallback = fallback_section(raw.fallback, &target)?;
    Ok(Config {
        fallback,
        source,
        target,
        state_dir: raw
            .state
            .dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/replicator")),
        metrics_listen: metrics_listen(raw.metrics.listen.as_deref())?,
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
        validation_interval: match raw.validation.interval.as_deref() {
            Some("off") => None,
            other => Some(parse_duration(
                "validation.interval",
                other,
                Duration::from_secs(600),
            )?),
        },
        validation_mode: match raw.validation.mode.as_deref() {
            None | Some("sample") => ValidationMode::Sample,
            Some("full") => ValidationMode::Full,
            Some(other) => {
                return Err(err(
                    "validation.mode",
                    format!("'{other}' is not one of \"sample\", \"full\""),
                ))
            }
        },
        validation_sample_rows: match raw.validation.sample_rows {
            Some(0) => return Err(err("validation.sample_rows", "must be at least 1")),
            Some(n) => n,
            None => 1000,
        },
        validation_max_share: match raw.validation.max_share {
            Some(x) if !(x > 0.0 && x <= 1.0) => {
                return Err(err(
                    "validation.max_share",
                    "must be more than 0 and at most 1 (a share of one connection's time)",
                ))
            }
            Some(x) => x,
            None => 0.5,
        },
        validation_checksums: match raw.validation.checksums.as_deref() {
            None | Some("database") => Checksums::Database,
            Some("replicator") => Checksums::Replicator,
            Some(other) => {
                return Err(err(
                    "validation.checksums",
                    format!("'{other}' is not one of \"database\", \"replicator\""),
                ))
            }
        },
        validation_chunk_rows: match raw.validation.chunk_rows {
            Some(n) if n < 1 => return Err(err("validation.chunk_rows", "must be at least 1")),
            Some(n) => n,
            None => 100_000,
        },
        snapshot_workers,
        snapshot_chunk_rows_set: r.snapshot_chunk_rows.is_some(),
        snapshot_decoder: r.snapshot_decoder.unwrap_or_default(),
        mapping,
        policies,
    })
}

/// `[source]`: every key checked, the password resolved.
fn source_section(s: RawSource, env: &dyn Environment) -> Result<SourceConfig, ConfigError> {
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
    if s.auth == SourceAuth::Windows
        && !s
            .user
            .split_once('\\')
            .is_some_and(|(d, u)| !d.is_empty() && !u.is_empty())
    {
        return Err(err(
            "source.user",
            "with auth = \"windows\" must be DOMAIN\\user (in TOML: 'CORP\\alice' or \"CORP\\\\alice\")",
        ));
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
    Ok(SourceConfig {
        host: s.host,
        port: s.port,
        database: s.database,
        user: s.user,
        password: source_password,
        auth: s.auth,
        tls: s.tls,
        trust_server_certificate: s.trust_server_certificate,
        ca_file: s.ca_file,
    })
}

/// `[target]`: the URL without its TLS options, which become settings; the password resolved.
fn target_section(t: RawTarget, env: &dyn Environment) -> Result<TargetConfig, ConfigError> {
    let (clean_url, ssl_mode, rootcert) =
        split_ssl_options(&t.url).map_err(|e| err("target.url", e))?;
    if ssl_mode == PgSslMode::Disable && t.ca_file.is_some() {
        return Err(err("target.ca_file", "has no meaning with sslmode=disable"));
    }
    let url: tokio_postgres::Config = clean_url.parse().map_err(|e| {
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
    Ok(TargetConfig {
        url: clean_url,
        password: target_password,
        ca_file: t.ca_file.or(rootcert),
        ssl_mode,
    })
}

/// `[[tables]]`: at least one; every pattern, key and column setting checked.
fn tables_section(raw: Vec<RawTable>) -> Result<Vec<TableSelector>, ConfigError> {
    if raw.is_empty() {
        return Err(err(
            "tables",
            "name at least one table or pattern, e.g. [[tables]] source = \"dbo.*\"",
        ));
    }
    let mut tables = Vec::new();
    for (i, tsel) in raw.into_iter().enumerate() {
        validate_pattern(&format!("tables[{i}].source"), &tsel.source)?;
        for (j, x) in tsel.exclude.iter().enumerate() {
            validate_pattern(&format!("tables[{i}].exclude[{j}]"), x)?;
        }
        if let Some(key) = &tsel.key {
            if key.is_empty() || key.iter().any(|k| k.is_empty()) {
                return Err(err(
                    format!("tables[{i}].key"),
                    "list the key's column names",
                ));
            }
        }
        let mut columns = std::collections::BTreeMap::new();
        for (name, c) in tsel.columns {
            let key = format!("tables[{i}].columns.{name}");
            if c.exclude
                && (c.rename.is_some() || c.target_type.is_some() || c.expression.is_some())
            {
                return Err(err(key, "an excluded column takes no other setting"));
            }
            if let Some(r) = &c.rename {
                if r.is_empty() {
                    return Err(err(format!("{key}.rename"), "must not be empty"));
                }
            }
            if let Some(t) = &c.target_type {
                crate::model::TargetKind::parse(t).map_err(|m| err(format!("{key}.type"), m))?;
            }
            if let Some(e) = &c.expression {
                if e.trim().is_empty() {
                    return Err(err(format!("{key}.expression"), "must not be empty"));
                }
                if c.target_type.is_none() {
                    return Err(err(
                        format!("{key}.type"),
                        "an expression needs the target type it yields, e.g. type = \"bytea\"",
                    ));
                }
            }
            columns.insert(
                name,
                ColumnSettings {
                    rename: c.rename,
                    exclude: c.exclude,
                    target_type: c.target_type,
                    expression: c.expression,
                },
            );
        }
        tables.push(TableSelector {
            source: tsel.source,
            exclude: tsel.exclude,
            key: tsel.key,
            change_source: tsel.change_source.unwrap_or_default(),
            columns,
        });
    }
    Ok(tables)
}

/// `[mapping]`: schema renames, identifier case, the progress schema, type overrides.
fn mapping_section(m: RawMapping) -> Result<Mapping, ConfigError> {
    let mut mapping = Mapping::default();
    for (from, to) in m.schemas {
        if to.is_empty() {
            return Err(err(format!("mapping.schemas.{from}"), "must not be empty"));
        }
        mapping.schemas.insert(from, to);
    }
    if let Some(c) = m.identifier_case {
        mapping.identifier_case = c;
    }
    if let Some(p) = m.progress_schema {
        if p.is_empty() {
            return Err(err("mapping.progress_schema", "must not be empty"));
        }
        mapping.progress_schema = p;
    }
    for (ty, target) in m.types {
        crate::model::TargetKind::parse(&target)
            .map_err(|msg| err(format!("mapping.types.{ty}"), msg))?;
        mapping.types.insert(ty.to_lowercase(), target);
    }
    if let Some(a) = m.alias_types {
        mapping.alias_types = a;
    }
    if let Some(c) = m.computed_columns {
        mapping.computed_columns = c;
    }
    if let Some(c) = m.collation {
        mapping.collation = c;
    }
    Ok(mapping)
}

/// `[fallback]`: the way back after `cutover --fallback`.
fn fallback_section(f: RawFallback, target: &TargetConfig) -> Result<FallbackConfig, ConfigError> {
    let slot = match f.slot {
        Some(s)
            if s.is_empty()
                || s.len() > 63
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            return Err(err(
                "fallback.slot",
                "a replication slot name: lower-case letters, digits and _, at most 63 bytes",
            ))
        }
        Some(s) => s,
        None => {
            let pg: Option<tokio_postgres::Config> = target.url.parse().ok();
            let db = pg.as_ref().and_then(|c| c.get_dbname().or(c.get_user()));
            slot_name(db.unwrap_or("postgres"))
        }
    };
    let window_changes = match f.window_changes {
        Some(n) if n < 1 => return Err(err("fallback.window_changes", "must be at least 1")),
        Some(n) => n,
        None => 10_000,
    };
    let max_retained_wal = match f.max_retained_wal.as_deref() {
        None => 10 * 1024 * 1024 * 1024,
        Some(v) => parse_bytes(v).ok_or_else(|| {
            err(
                "fallback.max_retained_wal",
                format!("'{v}' is not a size like \"10GB\" or \"512MB\""),
            )
        })?,
    };
    Ok(FallbackConfig {
        slot,
        window_changes,
        max_retained_wal,
    })
}

/// The default slot name for a target database: slot names are unique in the whole PostgreSQL
/// cluster, so the database is part of it (`replicator_fallback_<database>`, lower-case
/// letters, digits and `_` only, at most 63 bytes).
pub fn slot_name(database: &str) -> String {
    let mut s = String::from("replicator_fallback_");
    for c in database.chars() {
        let c = c.to_ascii_lowercase();
        s.push(if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '_'
        });
    }
    s.truncate(63);
    s
}

/// `10GB`, `512 MB`, `1TB`, `4096` (bytes): binary multiples.
fn parse_bytes(v: &str) -> Option<i64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: i64 = n.parse().ok()?;
    let mult: i64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "KIB" => 1 << 10,
        "MB" | "MIB" => 1 << 20,
        "GB" | "GIB" => 1 << 30,
        "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `[policies]`: what happens to values PostgreSQL cannot hold exactly.
fn policies_section(p: RawPolicies) -> Result<Policies, ConfigError> {
    let mut policies = Policies::default();
    if let Some(n) = p.nul_characters {
        policies.nul_characters = n;
    }
    if let Some(r) = p.nul_replacement {
        if r.contains('\0') {
            return Err(err(
                "policies.nul_replacement",
                "must not itself contain NUL",
            ));
        }
        policies.nul_replacement = r;
    } else if policies.nul_characters == NulPolicy::Replace {
        return Err(err(
            "policies.nul_replacement",
            "nul_characters = \"replace\" needs a replacement, e.g. \"\\uFFFD\" or \" \"",
        ));
    }
    if let Some(s) = p.sub_microsecond {
        policies.sub_microsecond = s;
    }
    if let Some(r) = p.retention_loss {
        policies.retention_loss = r;
    }
    if let Some(x) = p.invalid_xml {
        policies.invalid_xml = x;
    }
    Ok(policies)
}

/// `metrics.listen`: a loopback address, or none.
fn metrics_listen(listen: Option<&str>) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    Ok(match listen {
        None => None,
        Some(a) => {
            let addr: std::net::SocketAddr = a.parse().map_err(|_| {
                err(
                    "metrics.listen",
                    format!("'{a}' is not an address like \"127.0.0.1:9187\""),
                )
            })?;
            if !addr.ip().is_loopback() {
                return Err(err(
                        "metrics.listen",
                        format!("{addr} is not a loopback address: the listener is for a local scraper (put a proxy with TLS and auth in front for remote ones)"),
                    ));
            }
            Some(addr)
        }
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
        assert_eq!(c.validation_interval, Some(Duration::from_secs(600)));
        assert_eq!(c.validation_mode, ValidationMode::Sample);
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/replicator"));
        assert_eq!(
            c.tables,
            vec![TableSelector {
                source: "dbo.*".into(),
                ..Default::default()
            }]
        );
    }

    #[test]
    fn the_fallback_section_has_defaults_and_names_bad_keys() {
        let vars = [("MSSQL_PASSWORD", "s3cret!")];
        let c = parse(MINIMAL, &env(&vars)).unwrap();
        assert_eq!(c.fallback.slot, "replicator_fallback_shop");
        assert_eq!(c.fallback.window_changes, 10_000);
        assert_eq!(c.fallback.max_retained_wal, 10 << 30);
        let with = |extra: &str| parse(&format!("{MINIMAL}\n[fallback]\n{extra}\n"), &env(&vars));
        let c = with("slot = \"mine_2\"\nmax_retained_wal = \"512 MB\"").unwrap();
        assert_eq!(
            (c.fallback.slot.as_str(), c.fallback.max_retained_wal),
            ("mine_2", 512 << 20)
        );
        assert_eq!(
            with("slot = \"Bad-Name\"").unwrap_err().key,
            "fallback.slot"
        );
        assert_eq!(
            with("max_retained_wal = \"lots\"").unwrap_err().key,
            "fallback.max_retained_wal"
        );
        assert_eq!(
            with("window_changes = 0").unwrap_err().key,
            "fallback.window_changes"
        );
        assert!(with("nope = 1").is_err());
    }

    #[test]
    fn selectors_match_case_insensitively_with_excludes() {
        use crate::model::TableName;
        let sel = TableSelector {
            source: "dbo.*".into(),
            exclude: vec!["dbo.temp_*".into(), "dbo.[x.y]".into()],
            ..Default::default()
        };
        let t = |s: &str, n: &str| TableName {
            schema: s.into(),
            name: n.into(),
        };
        assert!(sel.matches(&t("DBO", "Orders")));
        assert!(!sel.matches(&t("dbo", "temp_1")));
        assert!(!sel.matches(&t("dbo", "x.y")));
        assert!(!sel.matches(&t("sales", "orders")));
        assert!(glob("a?c*", "abcdef") && !glob("a?c", "abcd") && glob("*", ""));
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
        assert_eq!(
            e(
                &format!("{MINIMAL}\n[metrics]\nlisten = \"0.0.0.0:9187\"\n"),
                &ok_env
            )
            .key,
            "metrics.listen"
        );
        let checksums = e(
            &format!("{MINIMAL}\n[validation]\nchecksums = \"daemon\"\n"),
            &ok_env,
        );
        assert_eq!(checksums.key, "validation.checksums");
        assert!(checksums.message.contains("'daemon'"), "{checksums}");
        assert_eq!(
            e(
                &format!("{MINIMAL}\n[validation]\nchunk_rows = 0\n"),
                &ok_env
            )
            .key,
            "validation.chunk_rows"
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
        assert!(!c.snapshot_chunk_rows_set);
        assert!((2..=8).contains(&c.snapshot_workers));
        assert_eq!(c.snapshot_decoder, SnapshotDecoder::Direct);
        let tiberius = parse(
            &format!(
                "{}\n",
                text_with(
                    &std::fs::read_to_string(&path).unwrap(),
                    "snapshot_decoder = \"direct\"",
                    "snapshot_decoder = \"tiberius\""
                )
            ),
            &env(&[("MSSQL_PASSWORD", "x")]),
        )
        .unwrap();
        assert_eq!(tiberius.snapshot_decoder, SnapshotDecoder::Tiberius);
        let bad = parse(
            &text_with(
                &std::fs::read_to_string(&path).unwrap(),
                "snapshot_decoder = \"direct\"",
                "snapshot_decoder = \"fast\"",
            ),
            &env(&[("MSSQL_PASSWORD", "x")]),
        )
        .unwrap_err();
        assert_eq!(bad.key, "replication.snapshot_decoder");
    }

    fn text_with(text: &str, from: &str, to: &str) -> String {
        assert!(text.contains(from), "{from}");
        text.replace(from, to)
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
