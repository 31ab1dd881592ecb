//! `replicator check`: the preflight. Everything the replicator will need is asked of both
//! databases before anything is written, and every finding says what to do.
//!
//! Contract: read-only on both sides; never prints a secret; `ok` is false exactly when an
//! item is an error (the daemon would stop or skip a table).

use crate::config::{Config, NulPolicy, SubMicrosecondPolicy};
use crate::convert::{plan_table, TablePlan, TargetKind};
use crate::daemon::decide_change_source;
use crate::source::{self, Tds};
use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but know this.
    Warn,
    /// Would stop the daemon or a table.
    Error,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Severity.
    pub level: Level,
    /// What it is about: `source`, `target`, or a table.
    pub subject: String,
    /// What was found.
    pub message: String,
    /// What to do (T-SQL or SQL where it helps).
    pub hint: Option<String>,
}

/// The preflight's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// No item is an error.
    pub ok: bool,
    /// Every finding, source first.
    pub items: Vec<Item>,
}

impl Report {
    /// The human report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for i in &self.items {
            let tag = match i.level {
                Level::Ok => "ok   ",
                Level::Warn => "warn ",
                Level::Error => "ERROR",
            };
            out.push_str(&format!("{tag} {}: {}\n", i.subject, i.message));
            if let Some(h) = &i.hint {
                out.push_str(&format!("      hint: {h}\n"));
            }
        }
        let errors = self
            .items
            .iter()
            .filter(|i| i.level == Level::Error)
            .count();
        let warns = self.items.iter().filter(|i| i.level == Level::Warn).count();
        out.push_str(&format!(
            "\n{} error(s), {} warning(s): {}\n",
            errors,
            warns,
            if self.ok {
                "ready to run"
            } else {
                "fix the errors first"
            }
        ));
        out
    }
}

struct Items(Vec<Item>);

impl Items {
    fn add(
        &mut self,
        level: Level,
        subject: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.0.push(Item {
            level,
            subject: subject.to_string(),
            message: message.into(),
            hint,
        });
    }
}

/// Snapshot rate assumed when comparing the snapshot's duration with the change retention
/// (rows/s; docs/benchmarks.md measures 170-185k on two cores).
const ASSUMED_ROWS_PER_SEC: f64 = 100_000.0;

/// Runs every check; connection failures are findings, not errors.
pub async fn run(config: &Config) -> Report {
    let mut items = Items(Vec::new());
    let plans = match source::connect(&config.source).await {
        Ok(mut tds) => source_checks(config, &mut tds, &mut items).await,
        Err(e) => {
            items.add(Level::Error, "source", e.to_string(), e.hint());
            Vec::new()
        }
    };
    target_checks(config, &plans, &mut items).await;
    let ok = !items.0.iter().any(|i| i.level == Level::Error);
    Report { ok, items: items.0 }
}

async fn source_checks(config: &Config, tds: &mut Tds, items: &mut Items) -> Vec<TablePlan> {
    let db = match source::database_info(tds).await {
        Ok(db) => db,
        Err(e) => {
            items.add(Level::Error, "source", e.to_string(), e.hint());
            return Vec::new();
        }
    };
    let dbq = crate::model::quote_tsql(&config.source.database);
    items.add(
        Level::Ok,
        "source",
        format!(
            "connected to {} as {}: {}",
            config.source.database, config.source.user, db.version
        ),
        None,
    );
    if db.snapshot_isolation {
        items.add(Level::Ok, "source", "snapshot isolation is allowed", None);
    } else {
        items.add(
            Level::Error,
            "source",
            "snapshot isolation is off: snapshots and change windows need it",
            Some(format!(
                "ALTER DATABASE {dbq} SET ALLOW_SNAPSHOT_ISOLATION ON"
            )),
        );
    }
    match db.ct_retention_minutes {
        Some(m) => items.add(
            Level::Ok,
            "source",
            format!("Change Tracking is on (retention {m} minutes)"),
            None,
        ),
        None if !db.cdc_enabled => items.add(
            Level::Warn,
            "source",
            "neither Change Tracking nor CDC is enabled on the database",
            Some(format!(
                "ALTER DATABASE {dbq} SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)"
            )),
        ),
        None => {}
    }
    if db.cdc_enabled {
        items.add(Level::Ok, "source", "CDC is enabled on the database", None);
    }
    let discovered = match source::discover::discover(tds, db.cdc_enabled).await {
        Ok(d) => d,
        Err(e) => {
            items.add(Level::Error, "source", e.to_string(), e.hint());
            return Vec::new();
        }
    };
    let mut plans = Vec::new();
    for (i, sel) in config.tables.iter().enumerate() {
        if sel.is_exact() && !discovered.iter().any(|t| sel.matches(&t.name)) {
            items.add(
                Level::Error,
                &format!("tables[{i}]"),
                format!(
                    "no table {} in the source database (or no permission to see it)",
                    sel.source
                ),
                Some("check the name, or GRANT SELECT on it to the replicator's login".into()),
            );
        }
    }
    let mut total_rows = 0i64;
    for t in &discovered {
        let Some((i, sel)) = crate::config::selector_for(&config.tables, &t.name) else {
            continue;
        };
        let name = t.name.to_string();
        let plan = match plan_table(t, sel, i, &config.mapping) {
            Ok(p) => p,
            Err(e) => {
                items.add(Level::Error, &name, e, None);
                continue;
            }
        };
        total_rows += t.estimated_rows;
        let kind = decide_change_source(&plan, &db);
        if matches!(kind, Ok(crate::model::ChangeSource::Cdc(_))) {
            cdc_columns(tds, &plan, items).await;
        }
        match kind {
            Ok(k) => items.add(
                Level::Ok,
                &name,
                format!(
                    "{} rows (estimate), key ({}), changes from {} -> {}",
                    t.estimated_rows,
                    plan.key_columns()
                        .map(|c| c.source.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    k.label(),
                    plan.target
                ),
                None,
            ),
            Err(e) => items.add(Level::Error, &name, e.to_string(), e.hint()),
        }
        lossy_columns(config, &plan, items);
        permissions(tds, &plan, items).await;
        plans.push(plan);
    }
    if plans.is_empty() && !discovered.is_empty() {
        items.add(
            Level::Error,
            "tables",
            "no source table matches [[tables]]: nothing to migrate",
            None,
        );
    }
    if let Some(m) = db.ct_retention_minutes {
        let minutes = total_rows as f64 / ASSUMED_ROWS_PER_SEC / 60.0;
        if minutes * 2.0 > m as f64 {
            items.add(
                Level::Warn,
                "source",
                format!("the snapshot of {total_rows} rows may take about {minutes:.0} minutes, more than half the Change Tracking retention ({m} minutes): changes made meanwhile could be cleaned up first, and the table copied again"),
                Some(format!("ALTER DATABASE {dbq} SET CHANGE_TRACKING (CHANGE_RETENTION = 7 DAYS)")),
            );
        }
    }
    not_migrated(config, tds, &plans, items).await;
    plans
}

/// Columns whose values may change on the way, by the configured policies.
fn lossy_columns(config: &Config, plan: &TablePlan, items: &mut Items) {
    let name = plan.source.name.to_string();
    for c in &plan.source.columns {
        let t = &c.source_type;
        let sub_us =
            matches!(t.name.as_str(), "datetime2" | "time" | "datetimeoffset") && t.scale == 7;
        if sub_us && config.policies.sub_microsecond == SubMicrosecondPolicy::Truncate {
            items.add(
                Level::Warn,
                &name,
                format!("column {} is {}: PostgreSQL keeps microseconds, a 7th digit is truncated and counted", c.name, t.declaration()),
                Some("policies.sub_microsecond = \"fail\" stops instead".into()),
            );
        }
        let text = matches!(
            t.name.as_str(),
            "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext"
        );
        if text && config.policies.nul_characters == NulPolicy::Fail {
            items.add(
                Level::Warn,
                &name,
                format!("column {} is text: a NUL character (which PostgreSQL cannot hold) stops the table", c.name),
                Some("policies.nul_characters = \"strip\" or \"replace\" keeps going and counts them".into()),
            );
        }
        if c.computed.is_some() {
            match plan.generated.iter().find(|g| g.source == c.name) {
                Some(g) => items.add(
                    Level::Ok,
                    &name,
                    format!(
                        "column {} is computed on SQL Server: PostgreSQL computes it as {}",
                        c.name, g.expr
                    ),
                    None,
                ),
                None => items.add(
                    Level::Warn,
                    &name,
                    format!(
                        "column {} is computed on SQL Server: it is copied as a plain column holding its values",
                        c.name
                    ),
                    Some("`replicator schema --report DIR` says why it is not generated".into()),
                ),
            }
        }
    }
    collation_meaning(config, plan, name, items);
}

/// Case-insensitive text under `mapping.collation`: with "binary", the unique keys whose
/// meaning changes (SQL Server refuses 'abc' beside 'ABC', PostgreSQL would not); with
/// "preserve", what PostgreSQL's nondeterministic collations cannot do.
fn collation_meaning(config: &Config, plan: &TablePlan, name: String, items: &mut Items) {
    let ci = |col: &str| {
        plan.columns.iter().any(|c| {
            c.source.eq_ignore_ascii_case(col)
                && matches!(c.kind, TargetKind::Text | TargetKind::Varchar(_))
                && !plan
                    .source
                    .case_sensitive_columns
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(col))
        })
    };
    match config.mapping.collation {
        crate::config::Collation::Binary => {
            let key = plan
                .key_columns()
                .filter(|c| ci(&c.source))
                .map(|c| c.source.clone());
            let mut keys: Vec<String> = Vec::new();
            let key: Vec<String> = key.collect();
            if !key.is_empty() {
                keys.push(format!("the primary key ({})", key.join(", ")));
            }
            for ix in plan.source.indexes.iter().filter(|i| i.unique) {
                let cols: Vec<&str> = ix
                    .columns
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .filter(|c| ci(c))
                    .collect();
                if !cols.is_empty() {
                    keys.push(format!("unique index {} ({})", ix.name, cols.join(", ")));
                }
            }
            if !keys.is_empty() {
                items.add(
                    Level::Warn,
                    &name,
                    format!(
                        "{} compare case-insensitively on SQL Server and case-sensitively on PostgreSQL (mapping.collation = \"binary\"): after cutover, values differing only in case are distinct",
                        keys.join(", ")
                    ),
                    Some("mapping.collation = \"preserve\" keeps SQL Server's meaning".into()),
                );
            }
        }
        crate::config::Collation::Preserve => {
            let cols: Vec<&str> = plan
                .columns
                .iter()
                .filter(|c| c.collate.is_some())
                .map(|c| c.target.as_str())
                .collect();
            if !cols.is_empty() {
                items.add(
                    Level::Ok,
                    &name,
                    format!(
                        "columns {} compare case-insensitively (collation {}); PostgreSQL before 18 refuses LIKE and substring search on them unless the query says COLLATE \"default\"",
                        cols.join(", "),
                        crate::convert::CI_COLLATION
                    ),
                    None,
                );
            }
        }
        crate::config::Collation::Citext => {
            let cols: Vec<&str> = plan
                .columns
                .iter()
                .filter(|c| c.citext)
                .map(|c| c.target.as_str())
                .collect();
            if !cols.is_empty() {
                items.add(
                    Level::Ok,
                    &name,
                    format!(
                        "columns {} are citext: they compare case-insensitively, LIKE included (case folded by lower() under the database's locale)",
                        cols.join(", ")
                    ),
                    None,
                );
            }
        }
    }
}

/// What a CDC table's change rows do not carry: computed columns (NULL in every change row) and
/// LOB values over `max text repl size` (SQL Server refuses the write, error 7139).
async fn cdc_columns(tds: &mut Tds, plan: &TablePlan, items: &mut Items) {
    let name = plan.source.name.to_string();
    for c in &plan.source.columns {
        if let Some(g) = plan.generated.iter().find(|g| g.source == c.name) {
            items.add(
                Level::Ok,
                &name,
                format!(
                    "column {} is computed: CDC change rows hold NULL for it, and PostgreSQL computes it itself ({})",
                    c.name, g.expr
                ),
                None,
            );
            continue;
        }
        match (&c.computed, c.deterministic) {
            (Some(_), Some(false)) => items.add(
                Level::Warn,
                &name,
                format!("column {} is computed with a non-deterministic definition: CDC change rows hold NULL for it, so each change takes its value from the source row as read when the change is applied (it depends on when it is read; validation may report it)", c.name),
                None,
            ),
            (Some(def), _) => items.add(
                Level::Ok,
                &name,
                format!("column {} is computed: CDC change rows hold NULL for it, so changes compute it from its definition {def} over the change row", c.name),
                None,
            ),
            _ => {}
        }
    }
    let lobs: Vec<&str> = plan
        .source
        .columns
        .iter()
        .filter(|c| c.computed.is_none())
        .filter(|c| {
            matches!(
                c.source_type.name.as_str(),
                "text" | "ntext" | "image" | "xml"
            ) || (c.source_type.max_length == -1
                && matches!(
                    c.source_type.name.as_str(),
                    "varchar" | "nvarchar" | "varbinary"
                ))
        })
        .map(|c| c.name.as_str())
        .collect();
    if lobs.is_empty() {
        return;
    }
    let limit = crate::source::query_rows(
        tds,
        "SELECT CAST(value_in_use AS int) FROM sys.configurations WHERE name = N'max text repl size (B)'",
        "read max text repl size",
    )
    .await
    .ok()
    .and_then(|r| r.first().and_then(|r| r.try_get::<i32, _>(0).ok().flatten()));
    let limit = match limit {
        Some(-1) => return,
        Some(n) => format!("{n} bytes"),
        None => "65,536 bytes by default".into(),
    };
    items.add(
        Level::Warn,
        &name,
        format!(
            "LOB column(s) {} on a CDC table: SQL Server refuses a write of a longer value than max text repl size ({limit}) with error 7139",
            lobs.join(", ")
        ),
        Some("EXEC sp_configure 'max text repl size', -1; RECONFIGURE (no limit), if the application writes larger values".into()),
    );
}

/// SELECT and VIEW CHANGE TRACKING on the table, asked of SQL Server.
async fn permissions(tds: &mut Tds, plan: &TablePlan, items: &mut Items) {
    let name = plan.source.name.to_string();
    let lit = crate::model::tsql_literal(&plan.source.name.tsql());
    let sql = format!(
        "SELECT HAS_PERMS_BY_NAME({lit}, 'OBJECT', 'SELECT'), HAS_PERMS_BY_NAME({lit}, 'OBJECT', 'VIEW CHANGE TRACKING')"
    );
    match source::query_rows(tds, &sql, "check permissions").await {
        Ok(rows) => {
            let r = rows.first();
            let get = |i: usize| r.and_then(|r| r.try_get::<i32, _>(i).ok().flatten());
            if get(0) != Some(1) {
                items.add(
                    Level::Error,
                    &name,
                    "the login cannot SELECT from the table",
                    Some(format!(
                        "GRANT SELECT ON {} TO <login's user>",
                        plan.source.name.tsql()
                    )),
                );
            }
            if plan.source.change_tracking && get(1) != Some(1) {
                items.add(
                    Level::Error,
                    &name,
                    "the login lacks VIEW CHANGE TRACKING on the table",
                    Some(format!(
                        "GRANT VIEW CHANGE TRACKING ON {} TO <login's user>",
                        plan.source.name.tsql()
                    )),
                );
            }
        }
        Err(e) => items.add(
            Level::Warn,
            &name,
            format!("permissions could not be checked: {e}"),
            None,
        ),
    }
}

/// Views, procedures, functions and triggers: a view that translates is created at cutover;
/// the rest are listed with why, so nobody is surprised.
async fn not_migrated(config: &Config, tds: &mut Tds, plans: &[TablePlan], items: &mut Items) {
    match crate::assess::modules(tds).await {
        Ok(modules) => {
            let definitions = crate::assess::view_definitions(&modules);
            let views = crate::sink::ddl::views(plans, &definitions, &config.mapping);
            for m in &modules {
                match views.iter().find(|v| v.source.to_string() == m.name).map(|v| &v.result) {
                    Some(Ok((target, _))) => items.add(
                        Level::Ok,
                        &m.name,
                        format!("view translated: created as {target} at cutover"),
                        None,
                    ),
                    Some(Err(why)) => items.add(
                        Level::Warn,
                        &m.name,
                        format!("view is not translated ({why}): recreate it in PostgreSQL before cutover"),
                        Some("`replicator schema --report DIR` writes its text to DIR/by_hand/".into()),
                    ),
                    None => items.add(
                        Level::Warn,
                        &m.name,
                        format!("{} is not migrated: recreate it in PostgreSQL before cutover", m.kind),
                        Some("`replicator schema --report DIR` writes its text to DIR/by_hand/".into()),
                    ),
                }
            }
        }
        Err(e) => items.add(
            Level::Warn,
            "source",
            format!("could not list views, procedures, functions and triggers: {e}"),
            None,
        ),
    }
    if let Ok(fenced) = crate::cutover::fence::leftovers(tds).await {
        for (table, undo) in fenced {
            items.add(
                Level::Warn,
                &table,
                "the source refuses writes to this table: a `cutover --fence-source` fenced it",
                Some(format!("to allow writes again, run on the source: {undo}")),
            );
        }
    }
}

async fn target_checks(config: &Config, plans: &[TablePlan], items: &mut Items) {
    let pg = match crate::sink::connect(&config.target).await {
        Ok(pg) => pg,
        Err(e) => {
            items.add(Level::Error, "target", e.to_string(), e.hint());
            return;
        }
    };
    match pg
        .query_one("SELECT version(), current_user, current_database()", &[])
        .await
    {
        Ok(r) => items.add(
            Level::Ok,
            "target",
            format!(
                "connected to {} as {}: {}",
                r.get::<_, String>(2),
                r.get::<_, String>(1),
                r.get::<_, String>(0)
            ),
            None,
        ),
        Err(e) => items.add(Level::Error, "target", e.to_string(), None),
    }
    // `cutover --fallback` reads the target's changes by logical decoding.
    match crate::fallback::slot::wal_level(&pg).await {
        Ok(level) if level == "logical" => items.add(
            Level::Ok,
            "target",
            "wal_level = logical: a fallback after cutover is possible",
            None,
        ),
        Ok(level) => items.add(
            Level::Warn,
            "target",
            format!("wal_level = {level}: a fallback after cutover (logical decoding) is not possible"),
            Some("ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (needed only for a way back after cutover)".into()),
        ),
        Err(e) => items.add(Level::Error, "target", e.to_string(), None),
    }
    // The fallback's slot keeps WAL until dropped; check cannot see the store (the daemon
    // holds it), so it says what the slot is for either way.
    match crate::fallback::slot::state(&pg, &config.fallback.slot).await {
        Ok(Some(s)) => items.add(
            Level::Warn,
            "target",
            format!(
                "replication slot {} exists and keeps {} bytes of WAL: the fallback's after `cutover --fallback` (status shows its lag), or left by an interrupted one",
                config.fallback.slot, s.retained_bytes
            ),
            Some("if no fallback runs, `replicator fallback stop` drops it; a slot nobody reads fills the target's disk".into()),
        ),
        Ok(None) => {}
        Err(e) => items.add(Level::Error, "target", e.to_string(), None),
    }
    spatial_checks(&pg, plans, items).await;
    let mut schemas: Vec<String> = plans.iter().map(|p| p.target.schema.clone()).collect();
    schemas.push(config.mapping.progress_schema.clone());
    schemas.sort();
    schemas.dedup();
    for s in &schemas {
        let r = pg
            .query_one(
                "SELECT CASE WHEN n.oid IS NULL THEN has_database_privilege(current_database(), 'CREATE') \
                 ELSE has_schema_privilege(n.oid, 'CREATE') END, n.oid IS NOT NULL \
                 FROM (SELECT 1) x LEFT JOIN pg_namespace n ON n.nspname = $1",
                &[s],
            )
            .await;
        match r {
            Ok(r) if r.get::<_, bool>(0) => {}
            Ok(r) => {
                let exists: bool = r.get(1);
                items.add(
                    Level::Error,
                    "target",
                    format!(
                        "the login cannot create tables in schema {s}{}",
                        if exists {
                            ""
                        } else {
                            " (nor create the schema)"
                        }
                    ),
                    Some(if exists {
                        format!(
                            "GRANT CREATE, USAGE ON SCHEMA {} TO <role>",
                            crate::model::quote_pg(s)
                        )
                    } else {
                        "GRANT CREATE ON DATABASE <db> TO <role>, or create the schema for it"
                            .into()
                    }),
                );
            }
            Err(e) => items.add(Level::Error, "target", e.to_string(), None),
        }
    }
    let progress: std::collections::BTreeMap<String, crate::sink::progress::TableProgress> =
        crate::sink::progress::load(&pg, &config.mapping.progress_schema)
            .await
            .unwrap_or_default();
    for plan in plans {
        let name = plan.source.name.to_string();
        match crate::sink::ddl::check_existing(&pg, plan).await {
            Ok(false) => {}
            Ok(true) if progress.contains_key(&name) => items.add(
                Level::Ok,
                &name,
                format!(
                    "target {} exists and is the replicator's (resumes)",
                    plan.target
                ),
                None,
            ),
            Ok(true) => {
                let rows = pg
                    .query_opt(&format!("SELECT 1 FROM {} LIMIT 1", plan.target.sql()), &[])
                    .await
                    .map(|r| r.is_some())
                    .unwrap_or(false);
                if rows {
                    items.add(
                        Level::Error,
                        &name,
                        format!(
                            "target {} already holds rows the replicator did not copy",
                            plan.target
                        ),
                        Some(
                            "empty or drop it, or map the table elsewhere (mapping.schemas)".into(),
                        ),
                    );
                } else {
                    items.add(
                        Level::Ok,
                        &name,
                        format!(
                            "target {} exists, empty, same shape: it is used",
                            plan.target
                        ),
                        None,
                    );
                }
            }
            // Ours, and the source changed shape since the last run: the daemon reconciles it
            // at start-up as while streaming (a changed type then stops the table, with a hint).
            Err(e) if progress.contains_key(&name) => items.add(
                Level::Warn,
                &name,
                format!(
                    "target {} is the replicator's and the source's shape changed since the last run ({e}): the daemon reconciles it when it starts",
                    plan.target
                ),
                None,
            ),
            Err(e) => items.add(Level::Error, &name, e.to_string(), e.hint()),
        }
    }
}

/// geography and geometry columns: PostGIS types need PostGIS on the target; bytea ones could
/// be PostGIS types when it is there.
async fn spatial_checks(pg: &tokio_postgres::Client, plans: &[TablePlan], items: &mut Items) {
    let columns: Vec<(&TablePlan, &crate::convert::ColumnPlan)> = plans
        .iter()
        .flat_map(|p| p.columns.iter().filter(|c| c.spatial).map(move |c| (p, c)))
        .collect();
    if columns.is_empty() {
        return;
    }
    let postgis = match pg
        .query_one("SELECT to_regtype('geometry') IS NOT NULL", &[])
        .await
    {
        Ok(r) => r.get::<_, bool>(0),
        Err(e) => return items.add(Level::Error, "target", e.to_string(), None),
    };
    for (plan, c) in columns {
        let name = plan.source.name.to_string();
        match (c.kind, postgis) {
            (TargetKind::Bytea, true) => items.add(
                Level::Ok,
                &name,
                format!(
                    "column {} becomes bytea (extended WKB); the target has PostGIS: mapping.types.{} = \"{}\" makes it a PostGIS column",
                    c.source,
                    c.source_decl,
                    c.source_decl
                ),
                None,
            ),
            (TargetKind::Bytea, false) => {}
            (kind, false) => items.add(
                Level::Error,
                &name,
                format!("column {} becomes {}, but PostGIS is not installed on the target", c.source, kind.ddl()),
                Some("a superuser runs CREATE EXTENSION postgis in the target database, or map the column to bytea".into()),
            ),
            (kind, true) => items.add(
                Level::Ok,
                &name,
                format!("column {} becomes PostGIS {}", c.source, kind.ddl()),
                None,
            ),
        }
    }
}
