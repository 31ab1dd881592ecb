//! One table's part of a window as set-based T-SQL.
//!
//! Per table and per 1,000 rows: the rows as a table value constructor (`(VALUES (...), ...)
//! AS s (c1, ...)`, every value cast to its column's type, so the derived table has exactly the
//! table's types), then, by what the window says SQL Server has for each key (its first change
//! there: an insert or an update): one `INSERT ... SELECT` for the new keys, one `UPDATE ...
//! FROM` joined to it for the updated ones (followed by a check of the rows it found), both
//! (`UPDATE`, then `INSERT ... WHERE NOT EXISTS`) where it is not known (changes a stopped table
//! kept, a backfill); under `IDENTITY_INSERT` when the table has an identity; and one `DELETE
//! ... FROM` joined to the deleted keys (a key inserted and deleted inside the window is not
//! sent). Rows whose large value PostgreSQL did not send update only what was sent.
//!
//! Contract: nothing is written row by row; a value SQL Server cannot hold is an error naming
//! the key and the column, before any statement exists.

use super::decode::Cell;
use super::inverse;
use super::net::{Before, End, KeyText, TableChanges};
use crate::convert::{ColumnPlan, TablePlan};
use crate::error::Error;
use crate::model::{quote_tsql, tsql_literal, SourceType};

/// Rows per statement (a table value constructor's rows, as T-SQL limits `INSERT ... VALUES`).
const ROWS_PER_STATEMENT: usize = 1000;

/// A table's columns as the fallback writes them: (relation column index, plan column, source
/// type), in the relation's order.
struct Target<'a> {
    plan: &'a TablePlan,
    columns: Vec<(usize, &'a ColumnPlan, &'a SourceType)>,
    key: Vec<usize>,
}

/// A statement of a window. An update that must find every row it names carries the query
/// that reads which of them SQL Server lacks, run only when the statement fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The T-SQL.
    pub sql: String,
    /// When the statement fails: a query returning the position (in `keys`) of the first row
    /// SQL Server does not have, with each row's key as the error names it.
    pub missing: Option<(String, Vec<String>)>,
}

impl From<String> for Statement {
    fn from(sql: String) -> Statement {
        Statement { sql, missing: None }
    }
}

/// One table's writes and deletes; `Err` (naming the key and column) when SQL Server cannot
/// take them.
pub(super) fn table_sql(
    plan: &TablePlan,
    relation: &super::decode::Relation,
    changes: &TableChanges,
    name: &str,
) -> Result<(Vec<Statement>, Vec<Statement>), Error> {
    let target = target_of(plan, relation)?;
    // Rows by what SQL Server has for their key: none (insert), one (update), not known (both).
    let (mut new, mut updated, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let mut updated_keys = Vec::new();
    let mut partial: Vec<(Vec<bool>, Vec<String>, String)> = Vec::new();
    let mut gone: Vec<Vec<String>> = Vec::new();
    for (i, (key, end)) in changes.ends.iter().enumerate() {
        let before = changes.before.get(i).copied().unwrap_or(Before::Unknown);
        match end {
            // Inserted and deleted inside the window: SQL Server never had it.
            End::Deleted if before == Before::Absent => {}
            End::Deleted => gone.push(key_values(&target, key, name)?),
            End::Row(row) => {
                let sent: Vec<bool> = row.iter().map(|c| *c != Cell::Unchanged).collect();
                let values = row_values(&target, row, key, name)?;
                if !sent.iter().all(|s| *s) {
                    partial.push((sent, values, describe_key(key)));
                } else {
                    match before {
                        Before::Absent => new.push(values),
                        Before::Present => {
                            updated.push(values);
                            updated_keys.push(describe_key(key));
                        }
                        Before::Unknown => full.push(values),
                    }
                }
            }
        }
    }
    let mut writes: Vec<Statement> = Vec::new();
    if !full.is_empty() {
        writes.extend(upsert_sql(&target, &full).into_iter().map(Statement::from));
    }
    // Each updated row is on SQL Server if it mirrors PostgreSQL; one that is not fails the
    // window loudly (its update would otherwise vanish), and the error names its key.
    let missing = tsql_literal(&format!(
        "fallback: {name}: a row PostgreSQL updated is not on SQL Server, so SQL Server no longer mirrors PostgreSQL for this table (a write past the fence, or a change by hand); the fallback waits at this window: put the row back on SQL Server, or end the fallback (replicator fallback stop)"
    ));
    let all: Vec<usize> = (0..target.columns.len()).collect();
    for (chunk, keys) in updated
        .chunks(ROWS_PER_STATEMENT)
        .zip(updated_keys.chunks(ROWS_PER_STATEMENT))
    {
        if let Some(sql) = update_sql(&target, &all, &derived(&target, &all, chunk)) {
            writes.push(Statement {
                sql: format!(
                    "{sql}; IF @@ROWCOUNT <> {} THROW 50001, {missing}, 1",
                    chunk.len()
                ),
                missing: Some((missing_sql(&target, chunk), keys.to_vec())),
            });
        }
    }
    if !new.is_empty() {
        writes.extend(insert_sql(&target, &new).into_iter().map(Statement::from));
    }
    for (sent, values, key) in &partial {
        if let Some(sql) = partial_sql(&target, sent, values) {
            writes.push(Statement {
                sql: format!("{sql}; IF @@ROWCOUNT <> 1 THROW 50001, {missing}, 1"),
                missing: Some((
                    missing_sql(&target, std::slice::from_ref(values)),
                    vec![key.clone()],
                )),
            });
        }
    }
    let deletes = if gone.is_empty() {
        Vec::new()
    } else {
        delete_sql(&target, &gone)
            .into_iter()
            .map(Statement::from)
            .collect()
    };
    Ok((writes, deletes))
}

fn target_of<'a>(
    plan: &'a TablePlan,
    relation: &super::decode::Relation,
) -> Result<Target<'a>, Error> {
    let name = plan.source.name.to_string();
    let mut columns = Vec::new();
    for (i, rc) in relation.columns.iter().enumerate() {
        let col = plan.columns.iter().find(|c| c.target == rc.name).ok_or_else(|| {
            Error::table(
                &name,
                format!(
                    "fallback: column {} of {} is on PostgreSQL only; SQL Server cannot take its values",
                    rc.name, plan.target
                ),
                Some("drop the column on PostgreSQL, or stop the fallback (replicator fallback stop)"),
            )
        })?;
        let source = plan
            .source
            .columns
            .iter()
            .find(|s| s.name == col.source)
            .ok_or_else(|| {
                Error::table(
                    &name,
                    format!("fallback: no source column {}", col.source),
                    None,
                )
            })?;
        if source.computed.is_some()
            || matches!(source.source_type.name.as_str(), "timestamp" | "rowversion")
        {
            continue; // SQL Server computes it
        }
        inverse::invertible(col, &source.source_type)
            .map_err(|why| Error::table(&name, format!("fallback: {why}"), None))?;
        columns.push((i, col, &source.source_type));
    }
    let key: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, (_, c, _))| c.key)
        .map(|(j, _)| j)
        .collect();
    if key.is_empty() {
        return Err(Error::table(&name, "fallback: the table has no key", None));
    }
    Ok(Target { plan, columns, key })
}

fn describe_key(key: &KeyText) -> String {
    key.iter()
        .map(|k| k.as_deref().unwrap_or("NULL"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The literals of a row's written columns.
fn row_values(t: &Target, row: &[Cell], key: &KeyText, name: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::with_capacity(t.columns.len());
    for (i, col, ty) in &t.columns {
        let text = match row.get(*i) {
            Some(Cell::Text(s)) => Some(s.as_str()),
            _ => None,
        };
        out.push(inverse::literal(col, ty, text).map_err(|why| {
            Error::table(
                name,
                format!(
                    "fallback: key ({}), column {}: SQL Server cannot hold the value PostgreSQL has: {why}",
                    describe_key(key),
                    col.source
                ),
                Some("change the value on PostgreSQL, or stop the fallback (replicator fallback stop)"),
            )
        })?);
    }
    Ok(out)
}

/// The literals of a key.
fn key_values(t: &Target, key: &KeyText, name: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for (j, k) in t.key.iter().zip(key) {
        let (_, col, ty) = &t.columns[*j];
        out.push(inverse::literal(col, ty, k.as_deref()).map_err(|why| {
            Error::table(
                name,
                format!("fallback: key ({}): {why}", describe_key(key)),
                None,
            )
        })?);
    }
    Ok(out)
}

/// The type a value is cast to in the derived table: the column's, with the deprecated LOB
/// types as their `max` forms.
fn cast_type(ty: &SourceType) -> String {
    match ty.name.as_str() {
        "text" => "varchar(max)".into(),
        "ntext" => "nvarchar(max)".into(),
        "image" => "varbinary(max)".into(),
        _ => ty.declaration(),
    }
}

/// A literal cast to its column's type (a spatial constructor is typed already).
fn typed(literal: String, ty: &SourceType) -> String {
    if literal.starts_with("geography::") || literal.starts_with("geometry::") {
        literal
    } else {
        format!("CAST({literal} AS {})", cast_type(ty))
    }
}

/// `(VALUES (...), ...) AS s ([c1], ...)` of some rows over the columns `cols`.
fn derived(t: &Target, cols: &[usize], rows: &[Vec<String>]) -> String {
    let body: Vec<String> = rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = cols
                .iter()
                .zip(r)
                .map(|(&j, v)| typed(v.clone(), t.columns[j].2))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    format!("(VALUES {}) AS s ({})", body.join(", "), names(t, cols, ""))
}

fn names(t: &Target, cols: &[usize], prefix: &str) -> String {
    cols.iter()
        .map(|&j| format!("{prefix}{}", quote_tsql(&t.columns[j].1.source)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_match(t: &Target, a: &str, b: &str) -> String {
    t.key
        .iter()
        .map(|&j| {
            let c = quote_tsql(&t.columns[j].1.source);
            format!("{a}.{c} = {b}.{c}")
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn update_sql(t: &Target, cols: &[usize], from: &str) -> Option<String> {
    let sets: Vec<String> = cols
        .iter()
        .filter(|j| !t.key.contains(j))
        .map(|&j| {
            let c = quote_tsql(&t.columns[j].1.source);
            format!("{c} = s.{c}")
        })
        .collect();
    (!sets.is_empty()).then(|| {
        format!(
            "UPDATE x SET {} FROM {} AS x INNER JOIN {from} ON {}",
            sets.join(", "),
            t.plan.source.name.tsql(),
            key_match(t, "x", "s")
        )
    })
}

/// Rows SQL Server has no row for (their key's first change in the window was an insert): one
/// `INSERT` per 1,000 (a key SQL Server has after all fails the window loudly).
fn insert_sql(t: &Target, rows: &[Vec<String>]) -> Vec<String> {
    let all: Vec<usize> = (0..t.columns.len()).collect();
    let table = t.plan.source.name.tsql();
    let identity = t.columns.iter().any(|(_, c, _)| c.identity);
    let mut out = Vec::new();
    if identity {
        out.push(format!("SET IDENTITY_INSERT {table} ON"));
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        out.push(format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {}",
            names(t, &all, ""),
            names(t, &all, "s."),
            derived(t, &all, chunk)
        ));
    }
    if identity {
        out.push(format!("SET IDENTITY_INSERT {table} OFF"));
    }
    out
}

fn upsert_sql(t: &Target, rows: &[Vec<String>]) -> Vec<String> {
    let all: Vec<usize> = (0..t.columns.len()).collect();
    let table = t.plan.source.name.tsql();
    let identity = t.columns.iter().any(|(_, c, _)| c.identity);
    let mut out = Vec::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let from = derived(t, &all, chunk);
        out.extend(update_sql(t, &all, &from));
        if identity {
            out.push(format!("SET IDENTITY_INSERT {table} ON"));
        }
        out.push(format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {from} WHERE NOT EXISTS \
             (SELECT 1 FROM {table} AS x WHERE {})",
            names(t, &all, ""),
            names(t, &all, "s."),
            key_match(t, "x", "s")
        ));
        if identity {
            out.push(format!("SET IDENTITY_INSERT {table} OFF"));
        }
    }
    out
}

/// A row whose large value was not sent: the sent columns updated (SQL Server keeps the rest).
fn partial_sql(t: &Target, sent: &[bool], values: &[String]) -> Option<String> {
    let cols: Vec<usize> = (0..t.columns.len())
        .filter(|&j| sent.get(t.columns[j].0).copied().unwrap_or(false))
        .collect();
    let row: Vec<String> = cols.iter().map(|&j| values[j].clone()).collect();
    update_sql(t, &cols, &derived(t, &cols, &[row]))
}

/// The position of the first of `rows` (every column's literal) whose key SQL Server does not
/// have; no row when it has them all.
fn missing_sql(t: &Target, rows: &[Vec<String>]) -> String {
    let keys: Vec<String> = t
        .key
        .iter()
        .map(|&j| quote_tsql(&t.columns[j].1.source))
        .collect();
    // A name for the position that no key column has.
    let mut position = String::from("replicator_position");
    while keys.contains(&quote_tsql(&position)) {
        position.push('_');
    }
    let body: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(n, r)| {
            let cells: Vec<String> = t
                .key
                .iter()
                .map(|&j| typed(r[j].clone(), t.columns[j].2))
                .collect();
            format!("({n}, {})", cells.join(", "))
        })
        .collect();
    let position = quote_tsql(&position);
    format!(
        "SELECT TOP 1 s.{position} FROM (VALUES {}) AS s ({position}, {}) \
         WHERE NOT EXISTS (SELECT 1 FROM {} AS x WHERE {}) ORDER BY s.{position}",
        body.join(", "),
        keys.join(", "),
        t.plan.source.name.tsql(),
        key_match(t, "x", "s")
    )
}

fn delete_sql(t: &Target, keys: &[Vec<String>]) -> Vec<String> {
    let table = t.plan.source.name.tsql();
    keys.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            format!(
                "DELETE x FROM {table} AS x INNER JOIN {} ON {}",
                derived(t, &t.key, chunk),
                key_match(t, "x", "s")
            )
        })
        .collect()
}
