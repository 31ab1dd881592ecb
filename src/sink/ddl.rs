//! Target DDL: tables with their key before the load; indexes and unique constraints after it;
//! foreign keys `NOT VALID` once every table streams (validated at cutover).
//!
//! Contract: an existing target table of another shape is an error naming the difference; nothing
//! is ever dropped or altered to make it fit.

use crate::config::IdentifierCase;
use crate::convert::{expr, target_identifier, ColumnPlan, TablePlan, TargetKind};
use crate::error::{Context, Error};
use crate::model::{quote_pg, PgTableName, TableName};
use tokio_postgres::Client;

/// What the schema conversion did to one object that it did not copy as it is: translated it
/// (how), or left it to port by hand (why). Logged, printed by `schema`, gathered by the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    /// Source table.
    pub table: String,
    /// The object: its kind and name (`check constraint CK_x`, `column default of Name`).
    pub object: String,
    /// Translated, or to port by hand.
    pub fate: Fate,
    /// What was done or left out, and why.
    pub message: String,
}

/// What became of a source object on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Created as it is.
    Migrated,
    /// Created in a translated form that means the same.
    Translated,
    /// Not created: to port by hand.
    ByHand,
}

impl Note {
    fn by_hand(plan: &TablePlan, object: String, message: String) -> Note {
        Note {
            table: plan.source.name.to_string(),
            object,
            fate: Fate::ByHand,
            message,
        }
    }

    fn translated(plan: &TablePlan, object: String, message: String) -> Note {
        Note {
            table: plan.source.name.to_string(),
            object,
            fate: Fate::Translated,
            message,
        }
    }

    /// Logs it: a warning for what is left out, information for a translation.
    pub fn log(&self) {
        match self.fate {
            Fate::ByHand => {
                tracing::warn!(table = %self.table, note = %self.message, "schema conversion note")
            }
            _ => tracing::info!(table = %self.table, note = %self.message, "schema translated"),
        }
    }
}

/// Translates a SQL Server default to PostgreSQL where a faithful translation exists.
pub fn translate_default(def: &str, col: &ColumnPlan) -> Option<String> {
    let mut d = def.trim();
    while d.starts_with('(') && d.ends_with(')') && balanced(&d[1..d.len() - 1]) {
        d = d[1..d.len() - 1].trim();
    }
    let lower = d.to_lowercase();
    let func = |name: &str| lower == format!("{name}()");
    if func("getdate") || func("sysdatetime") || lower == "current_timestamp" {
        return match col.kind {
            TargetKind::Timestamp => Some("LOCALTIMESTAMP".into()),
            TargetKind::TimestampTz => Some("CURRENT_TIMESTAMP".into()),
            TargetKind::Date => Some("CURRENT_DATE".into()),
            _ => None,
        };
    }
    if func("getutcdate") || func("sysutcdatetime") {
        return (col.kind == TargetKind::Timestamp).then(|| "(now() AT TIME ZONE 'UTC')".into());
    }
    if func("sysdatetimeoffset") {
        return (col.kind == TargetKind::TimestampTz).then(|| "CURRENT_TIMESTAMP".into());
    }
    if func("newid") {
        return (col.kind == TargetKind::Uuid).then(|| "gen_random_uuid()".into());
    }
    // Numbers.
    if !lower.is_empty()
        && lower
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
    {
        return match col.kind {
            TargetKind::Bool => match lower.as_str() {
                "0" => Some("false".into()),
                "1" => Some("true".into()),
                _ => None,
            },
            TargetKind::Int2
            | TargetKind::Int4
            | TargetKind::Int8
            | TargetKind::Float4
            | TargetKind::Float8
            | TargetKind::Numeric(_) => Some(lower.clone()),
            _ => None,
        };
    }
    // String constants.
    let body = d.strip_prefix('N').unwrap_or(d);
    if body.len() >= 2 && body.starts_with('\'') && body.ends_with('\'') {
        let inner = &body[1..body.len() - 1];
        if !inner.replace("''", "").contains('\'') && col.kind.is_text() {
            return Some(format!("'{inner}'"));
        }
    }
    None
}

fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// `CREATE TABLE` with the key, identity and translated defaults; notes what was not carried.
pub fn create_table_sql(plan: &TablePlan, notes: &mut Vec<Note>) -> String {
    let scope = expr::Scope::of_plan(plan);
    let mut cols = Vec::new();
    for c in &plan.columns {
        let mut def = format!("{} {}", quote_pg(&c.target), c.column_type());
        let int_kind = matches!(
            c.kind,
            TargetKind::Int2 | TargetKind::Int4 | TargetKind::Int8
        );
        if c.identity && int_kind {
            def.push_str(" GENERATED BY DEFAULT AS IDENTITY");
        } else if c.identity {
            notes.push(Note::translated(
                plan,
                format!("identity {}", c.source),
                format!(
                    "identity column {} becomes a plain {} column",
                    c.source,
                    c.kind.ddl()
                ),
            ));
        }
        if c.not_null {
            def.push_str(" NOT NULL");
        }
        let source_col = plan.source.columns.iter().find(|s| s.name == c.source);
        if let Some(d) = source_col.and_then(|s| s.default.as_ref()) {
            if !c.identity {
                let object = format!("column default of {}", c.source);
                let translated = match (&c.default_sequence, translate_default(d, c)) {
                    (Some(seq), _) => {
                        let t = format!("nextval({})", crate::convert::expr::literal(&seq.sql()));
                        notes.push(Note::translated(
                            plan,
                            object.clone(),
                            format!("default {d} of column {} becomes DEFAULT {t}", c.source),
                        ));
                        Ok(t)
                    }
                    (None, t) => match t {
                        Some(t) => Ok(t),
                        None => expr::translate_value(d, &scope, c.kind).inspect(|t| {
                            notes.push(Note::translated(
                                plan,
                                object.clone(),
                                format!("default {d} of column {} becomes DEFAULT {t}", c.source),
                            ))
                        }),
                    },
                };
                match translated {
                    Ok(t) => {
                        def.push_str(" DEFAULT ");
                        def.push_str(&t);
                    }
                    Err(why) => notes.push(Note::by_hand(
                        plan,
                        object,
                        format!(
                            "default {d} of column {} has no faithful translation ({why}); left out",
                            c.source
                        ),
                    )),
                }
            }
        }
        if let (Some(d), Some((_, alias))) = (
            &c.domain,
            plan.source
                .alias_columns
                .iter()
                .find(|(n, _)| *n == c.source),
        ) {
            notes.push(Note::translated(
                plan,
                format!("column {}", c.source),
                format!(
                    "column {} of alias type {alias} is declared with domain {d} over {}",
                    c.source,
                    c.kind.ddl()
                ),
            ));
        }
        if let Some(t) = source_col
            .map(|s| s.source_type.name.as_str())
            .filter(|t| matches!(*t, "sql_variant" | "hierarchyid") && !c.expression)
        {
            notes.push(Note::translated(
                plan,
                format!("column {}", c.source),
                if c.kind == TargetKind::Jsonb {
                    format!(
                        "{t} column {} becomes jsonb: {{\"type\": its base type, \"value\": its value}} \
                         (a number for numeric base types, true/false for bit, a string otherwise)",
                        c.source
                    )
                } else if c.kind == TargetKind::Ltree {
                    format!(
                        "{t} column {} becomes ltree: its path /1/3/ as 1.3 (a label 2.5 as 2_5, -1 as n1); \
                         ancestry queries (@>, <@) work, ordering is ltree's, not SQL Server's",
                        c.source
                    )
                } else {
                    format!(
                        "{t} column {} becomes {}: the value as SQL Server converts it to nvarchar{}",
                        c.source,
                        c.kind.ddl(),
                        if t == "sql_variant" {
                            " in a form that keeps every digit (its base type is not kept; \
                             mapping.types.sql_variant = \"jsonb\" keeps it)"
                        } else {
                            " (the path, /1/3/)"
                        }
                    )
                },
            ));
        }
        if c.spatial && c.kind != TargetKind::Bytea {
            let t = source_col.map_or("geography", |s| s.source_type.name.as_str());
            notes.push(Note::translated(
                plan,
                format!("column {}", c.source),
                format!(
                    "{t} column {} becomes PostGIS {}, written as extended WKB (the SRID kept)",
                    c.source,
                    c.kind.ddl()
                ),
            ));
        } else if c.spatial {
            let t = source_col.map_or("geography", |s| s.source_type.name.as_str());
            let cast = if t == "geography" { "::geography" } else { "" };
            notes.push(Note::translated(
                plan,
                format!("column {}", c.source),
                format!(
                    "{t} column {} becomes bytea holding extended WKB (the SRID kept); with PostGIS, \
                     after cutover: ALTER TABLE {} ALTER COLUMN {} TYPE {t} USING ST_GeomFromEWKB({}){cast}",
                    c.source,
                    plan.target,
                    quote_pg(&c.target),
                    quote_pg(&c.target)
                ),
            ));
        }
        if let Some((Some(expr), s)) = source_col.map(|s| (&s.computed, s)) {
            let why = if c.key {
                "it is part of the key".to_string()
            } else if s.deterministic != Some(true) {
                "SQL Server does not call it deterministic".to_string()
            } else {
                match expr::translate_value(expr, &scope, c.kind) {
                    Err(refusal) => format!("its definition does not translate ({refusal})"),
                    Ok(_) => "configured so".to_string(),
                }
            };
            notes.push(Note::translated(
                plan,
                format!("computed column {}", c.source),
                format!(
                    "computed column {} ({expr}) becomes a plain column holding the source's values: {why}",
                    c.source
                ),
            ));
        }
        cols.push(def);
    }
    for g in &plan.generated {
        cols.push(format!(
            "{} {} GENERATED ALWAYS AS ({}) STORED",
            quote_pg(&g.target),
            g.kind.ddl(),
            g.expr
        ));
        notes.push(Note::translated(
            plan,
            format!("computed column {}", g.source),
            format!(
                "computed column {} ({}) becomes GENERATED ALWAYS AS ({}) STORED",
                g.source, g.definition, g.expr
            ),
        ));
    }
    let key: Vec<String> = plan.key_columns().map(|c| quote_pg(&c.target)).collect();
    cols.push(format!(
        "CONSTRAINT {} PRIMARY KEY ({})",
        quote_pg(&pg_name(&format!("{}_pkey", plan.target.name))),
        key.join(", ")
    ));
    format!(
        "CREATE TABLE {} (\n    {}\n)",
        plan.target.sql(),
        cols.join(",\n    ")
    )
}

/// The source's CHECK constraints, translated, as `NOT VALID` constraints created after the
/// table's snapshot (they hold for every row written from then on; cutover validates them
/// against every row). A constraint that does not translate, is disabled, or is not trusted at
/// the source is left out with a note giving its text and the reason. Returns (name, statement).
pub fn check_sql(
    plan: &TablePlan,
    case: IdentifierCase,
    notes: &mut Vec<Note>,
) -> Vec<(String, String)> {
    let scope = expr::Scope::of_plan(plan);
    let mut out = Vec::new();
    for ck in &plan.source.checks {
        let object = format!("check constraint {}", ck.name);
        let mut note = |why: String| {
            notes.push(Note::by_hand(
                plan,
                object.clone(),
                format!(
                    "check constraint {} {} is not created: {why}",
                    ck.name, ck.definition
                ),
            ))
        };
        if ck.disabled {
            note("it is disabled at the source".into());
            continue;
        }
        if ck.not_trusted {
            note("it is not trusted at the source (rows from before may break it)".into());
            continue;
        }
        match expr::translate_condition(&ck.definition, &scope) {
            Ok(cond) => {
                let name = pg_name(&target_identifier(&ck.name, case));
                notes.push(Note::translated(
                    plan,
                    object,
                    format!(
                        "check constraint {} {} becomes CHECK ({cond})",
                        ck.name, ck.definition
                    ),
                ));
                out.push((
                    name.clone(),
                    format!(
                        "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({cond}) NOT VALID",
                        plan.target.sql(),
                        quote_pg(&name)
                    ),
                ));
            }
            Err(why) => note(format!("it has no faithful translation ({why})")),
        }
    }
    out
}

/// `COMMENT ON` the table and its columns from their descriptions (`MS_Description`);
/// idempotent. A description of an excluded column is left out.
pub fn comment_sql(plan: &TablePlan) -> Vec<String> {
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    plan.source
        .descriptions
        .iter()
        .filter_map(|(column, text)| match column {
            None => Some(format!(
                "COMMENT ON TABLE {} IS {}",
                plan.target.sql(),
                literal(text)
            )),
            Some(c) => plan
                .columns
                .iter()
                .find(|p| p.source.eq_ignore_ascii_case(c) && !p.expression)
                .map(|p| {
                    format!(
                        "COMMENT ON COLUMN {}.{} IS {}",
                        plan.target.sql(),
                        quote_pg(&p.target),
                        literal(text)
                    )
                }),
        })
        .collect()
}

/// Creates the translated CHECK constraints ([`check_sql`]); one PostgreSQL refuses is logged
/// and journaled by the caller through the returned notes, not an error of the table.
pub async fn run_checks(pg: &Client, plan: &TablePlan, checks: &[(String, String)]) -> Vec<Note> {
    let mut notes = Vec::new();
    for (name, sql) in checks {
        match pg.batch_execute(sql).await {
            Ok(()) => {}
            Err(e) if e.code().is_some_and(|c| c.code() == "42710") => {}
            Err(e) => notes.push(Note::by_hand(
                plan,
                format!("check constraint {name}"),
                format!(
                    "check constraint {name} is not created: PostgreSQL refused it: {}",
                    e.as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or(e.to_string())
                ),
            )),
        }
    }
    notes
}

/// The case-insensitive collation the table's columns are declared with (`mapping.collation =
/// "preserve"`), created before the table: idempotent.
pub fn collation_sql(plan: &TablePlan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Both trusted since PostgreSQL 13: the database's owner may create them. PostGIS is not
    // (a superuser installs it); geometry and geography columns need it there already.
    if plan.columns.iter().any(|c| c.citext) {
        out.push("CREATE EXTENSION IF NOT EXISTS citext".into());
    }
    if plan.columns.iter().any(|c| c.kind == TargetKind::Ltree) {
        out.push("CREATE EXTENSION IF NOT EXISTS ltree".into());
    }
    for c in plan.columns.iter().filter_map(|c| c.collate.as_ref()) {
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {}; CREATE COLLATION IF NOT EXISTS {} \
             (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
            quote_pg(&c.schema),
            c.sql()
        );
        if !out.contains(&sql) {
            out.push(sql);
        }
    }
    out
}

/// The domains the table's columns are declared with (SQL Server alias types), created before
/// the table: idempotent (an existing domain is kept; `ensure_table`'s check of an existing
/// table compares base types).
pub fn domain_sql(plan: &TablePlan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in &plan.columns {
        let Some(d) = &c.domain else { continue };
        // A type of that name that is not a domain (a table's row type, say) is an error: the
        // column must not silently take it.
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; DO $d$ DECLARE kind \"char\"; BEGIN \
             SELECT t.typtype INTO kind FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE n.nspname = {schema_lit} AND t.typname = {name_lit}; \
             IF kind IS NULL THEN CREATE DOMAIN {domain} AS {base}; \
             ELSIF kind <> 'd' THEN RAISE EXCEPTION 'type % exists and is not a domain (alias type of column %)', {domain_lit}, {column_lit}; \
             END IF; END $d$",
            schema = quote_pg(&d.schema),
            schema_lit = expr::literal(&d.schema),
            name_lit = expr::literal(&d.name),
            domain = d.sql(),
            domain_lit = expr::literal(&d.to_string()),
            column_lit = expr::literal(&c.source),
            base = c.base_type()
        );
        if !out.contains(&sql) {
            out.push(sql);
        }
    }
    out
}

/// The sequences to carry: those in a schema of a migrated table, and those a migrated
/// column's default draws from.
pub fn sequences_for<'a>(
    all: &'a [crate::model::SourceSequence],
    plans: &[TablePlan],
) -> Vec<&'a crate::model::SourceSequence> {
    all.iter()
        .filter(|q| {
            plans.iter().any(|p| {
                p.source.name.schema.eq_ignore_ascii_case(&q.name.schema)
                    || p.source.columns.iter().any(|c| {
                        c.default
                            .as_deref()
                            .and_then(crate::convert::next_value_for)
                            .is_some_and(|n| n == q.name)
                    })
            })
        })
        .collect()
}

/// `CREATE SEQUENCE` for a source sequence (idempotent: an existing one is kept), with its
/// start, increment, bounds and cycling; cutover sets it after the source's last value.
pub fn sequence_sql(q: &crate::model::SourceSequence, mapping: &crate::config::Mapping) -> String {
    let t = crate::convert::sequence_target(&q.name, mapping);
    format!(
        "CREATE SCHEMA IF NOT EXISTS {}; CREATE SEQUENCE IF NOT EXISTS {} AS bigint START WITH {} \
         INCREMENT BY {} MINVALUE {} MAXVALUE {} {}CYCLE",
        quote_pg(&t.schema),
        t.sql(),
        q.start,
        q.increment,
        q.min,
        q.max,
        if q.cycle { "" } else { "NO " }
    )
}

/// What became of one source view.
#[derive(Debug, Clone)]
pub struct ViewOutcome {
    /// The view at the source.
    pub source: TableName,
    /// Its name on the target and `CREATE OR REPLACE VIEW` statement, or why it does not
    /// translate.
    pub result: Result<(PgTableName, String), String>,
    /// The translation (its query and what it reads), when it translates.
    pub view: Option<crate::convert::expr::query::View>,
}

/// Translates the source's views (name, definition) over the migrated tables and each other,
/// in dependency order (a view over a view that does not translate does not either).
pub fn views(
    plans: &[TablePlan],
    definitions: &[(TableName, String)],
    mapping: &crate::config::Mapping,
) -> Vec<ViewOutcome> {
    use crate::convert::expr::query::{translate_view, Catalog, Relation, View};
    let same = |a: &TableName, b: &TableName| {
        a.schema.eq_ignore_ascii_case(&b.schema) && a.name.eq_ignore_ascii_case(&b.name)
    };
    let target_of = |n: &TableName| PgTableName {
        schema: crate::convert::target_schema(&n.schema, mapping),
        name: target_identifier(&n.name, mapping.identifier_case),
    };
    let mut done: Vec<(View, PgTableName)> = Vec::new();
    let mut out: Vec<ViewOutcome> = Vec::new();
    let mut pending: Vec<&(TableName, String)> = definitions.iter().collect();
    loop {
        let mut progressed = false;
        let mut still = Vec::new();
        for d in pending {
            let relation = |n: &TableName| -> Option<Relation> {
                if let Some(p) = plans.iter().find(|p| same(&p.source.name, n)) {
                    return Some(Relation {
                        target: p.target.clone(),
                        columns: expr::Scope::of_plan(p).columns,
                    });
                }
                done.iter()
                    .find(|(v, _)| same(&v.name, n))
                    .map(|(v, t)| Relation {
                        target: t.clone(),
                        columns: v.columns.clone(),
                    })
            };
            let catalog = Catalog {
                relation: &relation,
                case: mapping.identifier_case,
                preserve_collation: mapping.collation == crate::config::Collation::Preserve,
            };
            match translate_view(&d.1, &catalog) {
                Ok(v) => {
                    let t = target_of(&d.0);
                    let sql = format!("CREATE OR REPLACE VIEW {} AS {}", t.sql(), v.select);
                    out.push(ViewOutcome {
                        source: d.0.clone(),
                        result: Ok((t.clone(), sql)),
                        view: Some(v.clone()),
                    });
                    done.push((v, t));
                    progressed = true;
                }
                // A view over another view waits for it.
                Err(r)
                    if r.reason.ends_with("is not migrated (or not translated)")
                        && definitions
                            .iter()
                            .any(|o| !same(&o.0, &d.0) && r.node.contains(&o.0.name)) =>
                {
                    still.push(d)
                }
                Err(r) => out.push(ViewOutcome {
                    source: d.0.clone(),
                    result: Err(r.to_string()),
                    view: None,
                }),
            }
        }
        pending = still;
        if !progressed || pending.is_empty() {
            break;
        }
    }
    for d in pending {
        out.push(ViewOutcome {
            source: d.0.clone(),
            result: Err("it reads a view that does not translate".into()),
            view: None,
        });
    }
    out
}

/// PostgreSQL truncates names to 63 bytes; do it on a character boundary ourselves.
fn pg_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > 63 {
            break;
        }
        out.push(c);
    }
    out
}

/// Secondary indexes and unique constraints, created after the table's snapshot. Unique keys
/// become `DEFERRABLE INITIALLY DEFERRED` constraints where PostgreSQL allows it, so a window
/// that swaps unique values between rows applies in one transaction.
pub fn index_sql(plan: &TablePlan, case: IdentifierCase, notes: &mut Vec<Note>) -> Vec<String> {
    let scope = expr::Scope::of_plan(plan);
    let mut out = Vec::new();
    let col = |name: &str| {
        plan.columns
            .iter()
            .find(|c| c.source.eq_ignore_ascii_case(name))
            .map(|c| quote_pg(&c.target))
    };
    for ix in &plan.source.indexes {
        let name = pg_name(&format!(
            "{}_{}",
            plan.target.name,
            target_identifier(&ix.name, case)
        ));
        let filter = match &ix.filter {
            None => String::new(),
            Some(f) => match expr::translate_condition(f, &scope) {
                Ok(w) => {
                    notes.push(Note::translated(
                        plan,
                        format!("index {}", ix.name),
                        format!(
                            "filtered index {} becomes a partial index WHERE {w}",
                            ix.name
                        ),
                    ));
                    format!(" WHERE {w}")
                }
                Err(why) => {
                    notes.push(Note::by_hand(
                        plan,
                        format!("index {}", ix.name),
                        format!(
                            "filtered index {} is not created: its filter {f} has no faithful translation ({why})",
                            ix.name
                        ),
                    ));
                    continue;
                }
            },
        };
        let keys: Option<Vec<String>> = ix
            .columns
            .iter()
            .map(|(c, desc)| col(c).map(|q| if *desc { format!("{q} DESC") } else { q }))
            .collect();
        let include: Option<Vec<String>> = ix.include.iter().map(|c| col(c)).collect();
        let (Some(keys), Some(include)) = (keys, include) else {
            notes.push(Note::by_hand(
                plan,
                format!("index {}", ix.name),
                format!("index {} uses an excluded column; not created", ix.name),
            ));
            continue;
        };
        let inc = if include.is_empty() {
            String::new()
        } else {
            format!(" INCLUDE ({})", include.join(", "))
        };
        let any_desc = ix.columns.iter().any(|(_, d)| *d);
        if ix.unique && !any_desc && filter.is_empty() {
            out.push(format!(
                "ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({}){inc} DEFERRABLE INITIALLY DEFERRED",
                plan.target.sql(),
                quote_pg(&name),
                keys.join(", ")
            ));
        } else {
            out.push(format!(
                "CREATE {}INDEX {} ON {} ({}){inc}{filter}",
                if ix.unique { "UNIQUE " } else { "" },
                quote_pg(&name),
                plan.target.sql(),
                keys.join(", ")
            ));
        }
    }
    out
}

/// A referenced table's target name and its (source, target) column names.
pub type ReferencedTable = (PgTableName, Vec<(String, String)>);

/// The migrated table `name` among `plans`, as a foreign key references it: its target and its
/// (source, target) column names.
pub fn referenced<'a>(
    plans: impl IntoIterator<Item = &'a TablePlan>,
    name: &TableName,
) -> Option<ReferencedTable> {
    plans.into_iter().find(|p| &p.source.name == name).map(|p| {
        (
            p.target.clone(),
            p.columns
                .iter()
                .map(|c| (c.source.clone(), c.target.clone()))
                .collect(),
        )
    })
}

/// Foreign keys as `NOT VALID DEFERRABLE INITIALLY DEFERRED` (validated at cutover). Only those
/// whose referenced table is migrated too; the others are noted.
pub fn foreign_key_sql(
    plan: &TablePlan,
    targets: &dyn Fn(&TableName) -> Option<ReferencedTable>,
    case: IdentifierCase,
    notes: &mut Vec<Note>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for fk in &plan.source.foreign_keys {
        let Some((ref_table, ref_cols)) = targets(&fk.references) else {
            notes.push(Note::by_hand(
                plan,
                format!("foreign key {}", fk.name),
                format!(
                    "foreign key {} references {}, which is not migrated; not created",
                    fk.name, fk.references
                ),
            ));
            continue;
        };
        let map_local = |c: &String| {
            plan.columns
                .iter()
                .find(|p| p.source.eq_ignore_ascii_case(c))
                .map(|p| quote_pg(&p.target))
        };
        let map_ref = |c: &String| {
            ref_cols
                .iter()
                .find(|(s, _)| s.eq_ignore_ascii_case(c))
                .map(|(_, t)| quote_pg(t))
        };
        let local: Option<Vec<String>> = fk.columns.iter().map(map_local).collect();
        let remote: Option<Vec<String>> = fk.ref_columns.iter().map(map_ref).collect();
        let (Some(local), Some(remote)) = (local, remote) else {
            notes.push(Note::by_hand(
                plan,
                format!("foreign key {}", fk.name),
                format!(
                    "foreign key {} uses an excluded column; not created",
                    fk.name
                ),
            ));
            continue;
        };
        let action = |a: &str| match a {
            "CASCADE" => "CASCADE",
            "SET_NULL" => "SET NULL",
            "SET_DEFAULT" => "SET DEFAULT",
            _ => "NO ACTION",
        };
        let name = pg_name(&format!(
            "{}_{}",
            plan.target.name,
            target_identifier(&fk.name, case)
        ));
        out.push((
            name.clone(),
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {} ON UPDATE {} \
                 DEFERRABLE INITIALLY DEFERRED NOT VALID",
                plan.target.sql(),
                quote_pg(&name),
                local.join(", "),
                ref_table.sql(),
                remote.join(", "),
                action(&fk.on_delete),
                action(&fk.on_update)
            ),
        ));
    }
    out
}

/// Compares an existing target table with the plan; `Ok(false)` when it does not exist.
/// A table of another shape is an error naming the first difference.
pub async fn check_existing(pg: &Client, plan: &TablePlan) -> Result<bool, Error> {
    let rows = pg
        .query(
            "SELECT a.attname, CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) \
             ELSE format_type(a.atttypid, a.atttypmod) END, a.attnotnull \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&plan.target.schema, &plan.target.name],
        )
        .await
        .context(|| format!("inspect {}", plan.target))?;
    if rows.is_empty() {
        return Ok(false);
    }
    let existing: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let declared = plan
        .columns
        .iter()
        .map(|c| (&c.target, &c.kind, c.citext, c.fixed.then(|| c.base_type())))
        .chain(
            plan.generated
                .iter()
                .map(|g| (&g.target, &g.kind, false, None)),
        );
    // A fixed-length column is character(n) now; a table an earlier release made holds it as
    // character varying(n), which keeps working.
    for (target, kind, citext, fixed) in declared {
        match existing.iter().find(|(n, _)| n == target) {
            None => {
                return Err(Error::table(
                    &plan.source.name,
                    format!("target table {} exists without column {target}", plan.target),
                    Some("drop or rename the target table, or point the replicator at another schema (mapping.schemas); it is never altered to fit"),
                ))
            }
            Some((_, ty))
                if !(same_type(ty, kind)
                    || citext && ty == "citext"
                    || fixed.as_deref() == Some(ty.as_str())) =>
            {
                return Err(Error::table(
                    &plan.source.name,
                    format!("target column {}.{target} is {ty}, expected {}", plan.target, kind.ddl()),
                    Some("drop or fix the target table, or override the type (tables[].columns.<name>.type); it is never altered to fit"),
                ))
            }
            _ => {}
        }
    }
    Ok(true)
}

fn same_type(existing: &str, kind: &TargetKind) -> bool {
    existing == kind.ddl()
        || (matches!(kind, TargetKind::Time) && existing == "time without time zone")
        || (matches!(kind, TargetKind::Numeric(None)) && existing == "numeric")
}

/// Fits the plan's generated columns to an existing target table: a column the table holds
/// as a plain column stays one (written with the source's values); no column is ever written
/// that the table generates. Call after [`ensure_table`] found the table.
pub async fn fit_generated(pg: &Client, plan: &mut TablePlan) -> Result<(), Error> {
    let rows = pg
        .query(
            "SELECT a.attname::text, a.attgenerated = 's' FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&plan.target.schema, &plan.target.name],
        )
        .await
        .context(|| format!("inspect the generated columns of {}", plan.target))?;
    let generated_on_target = |name: &str| {
        rows.iter()
            .any(|r| r.get::<_, String>(0) == name && r.get::<_, bool>(1))
    };
    let plain_on_target = |name: &str| {
        rows.iter()
            .any(|r| r.get::<_, String>(0) == name && !r.get::<_, bool>(1))
    };
    plan.keep_plain(plain_on_target);
    if let Some(c) = plan.columns.iter().find(|c| generated_on_target(&c.target)) {
        return Err(Error::table(
            &plan.source.name,
            format!(
                "target column {}.{} is generated by PostgreSQL, but this configuration writes the source's values into it",
                plan.target, c.target
            ),
            Some("set mapping.computed_columns = \"generated\" again, or drop the target table and copy it afresh"),
        ));
    }
    Ok(())
}

/// Creates the schema if needed and the table. Idempotent: an existing table of the same shape
/// is kept.
pub async fn ensure_table(
    pg: &Client,
    plan: &TablePlan,
    notes: &mut Vec<Note>,
) -> Result<bool, Error> {
    if check_existing(pg, plan).await? {
        return Ok(false);
    }
    let mut statements = collation_sql(plan);
    statements.extend(domain_sql(plan));
    statements.push(format!(
        "CREATE SCHEMA IF NOT EXISTS {};\n{}",
        quote_pg(&plan.target.schema),
        create_table_sql(plan, notes)
    ));
    let sql = statements.join(";\n");
    pg.batch_execute(&sql)
        .await
        .context(|| format!("create {}", plan.target))?;
    Ok(true)
}

/// Runs post-load DDL statements, skipping constraints and indexes that already exist.
pub async fn run_post_load(
    pg: &Client,
    table: &PgTableName,
    statements: &[String],
) -> Result<(), Error> {
    for sql in statements {
        match pg.batch_execute(sql).await {
            Ok(()) => {}
            // 42P07 relation exists, 42710 object exists: created before a restart.
            Err(e)
                if e.code()
                    .is_some_and(|c| c.code() == "42P07" || c.code() == "42710") => {}
            Err(e) => return Err(e).context(|| format!("create index or constraint on {table}")),
        }
    }
    Ok(())
}

/// Drops the foreign keys from and to `table` (before it is emptied for a re-snapshot); they are
/// created again, `NOT VALID`, once every table streams.
pub async fn drop_foreign_keys_touching(
    tx: &impl tokio_postgres::GenericClient,
    table: &PgTableName,
) -> Result<(), Error> {
    let rows = tx
        .query(
            "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', k.conrelid::regclass, k.conname) FROM pg_constraint k \
             WHERE k.contype = 'f' AND (k.conrelid = $1::text::regclass OR k.confrelid = $1::text::regclass)",
            &[&table.sql()],
        )
        .await
        .context(|| format!("list foreign keys touching {table}"))?;
    for r in rows {
        let sql: String = r.get(0);
        tx.batch_execute(&sql)
            .await
            .context(|| format!("drop a foreign key touching {table}"))?;
    }
    Ok(())
}

/// The source columns an existing target table of ours was built for, as far as it shows them:
/// every column of the plan whose target column exists there (and every column the plan leaves
/// out). Used for progress records that predate the recorded shape.
pub async fn columns_present(
    pg: &Client,
    plan: &TablePlan,
) -> Result<Vec<crate::model::SourceColumn>, Error> {
    let rows = pg
        .query(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&plan.target.schema, &plan.target.name],
        )
        .await
        .context(|| format!("inspect {}", plan.target))?;
    let present: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(plan
        .source
        .columns
        .iter()
        .filter(|s| match plan.columns.iter().find(|c| c.source == s.name) {
            Some(c) => present.contains(&c.target),
            None => true,
        })
        .cloned()
        .collect())
}

/// Drops a target table of ours (its foreign keys first) so it is created anew. Idempotent.
pub async fn drop_table(pg: &Client, table: &PgTableName) -> Result<(), Error> {
    let exists = pg
        .query_opt("SELECT to_regclass($1)::text", &[&table.sql()])
        .await
        .context(|| format!("look up {table}"))?
        .and_then(|r| r.get::<_, Option<String>>(0))
        .is_some();
    if !exists {
        return Ok(());
    }
    drop_foreign_keys_touching(pg, table).await?;
    pg.batch_execute(&format!("DROP TABLE {}", table.sql()))
        .await
        .context(|| format!("drop {table} to create it with the source's new shape"))?;
    tracing::warn!(target = %table, "target table dropped to be created with the source's new shape");
    Ok(())
}

/// For a table the replicator copies again (`resync`): when the target table's shape no longer
/// fits the source's (a column type changed), drops it (its foreign keys first; anything else
/// depending on it, such as a view, makes this fail with PostgreSQL's reason) so it is created
/// anew. Only ever called for a table with a progress record, i.e. one the replicator wrote.
/// `recorded`: the source columns the target table was built for (its progress record); a
/// difference from the plan's (a dropped column the new plan would leave NULL under a NOT NULL
/// constraint, say) replaces the table too.
pub async fn replace_if_other_shape(
    pg: &Client,
    plan: &TablePlan,
    recorded: Option<&[crate::model::SourceColumn]>,
) -> Result<(), Error> {
    let same_recorded = recorded.is_none_or(|r| r == plan.source.columns.as_slice());
    if same_recorded && check_existing(pg, plan).await.is_ok() {
        return Ok(());
    }
    drop_table(pg, &plan.target).await
}
