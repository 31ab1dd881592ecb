//! `replicator validate --views`: each view the replicator translates is compared row for row
//! with the source's view, while replication runs.
//!
//! A view has no key, so the keys-changed-meanwhile method of table validation does not apply.
//! Instead both sides are read when the view's tables (transitively) hold the same rows: the
//! target is pinned between two windows at its committed positions `U` (REPEATABLE READ), the
//! source is read in a SNAPSHOT transaction that first checks no change after `U` exists for
//! any of those tables. When one does, both snapshots are dropped, replication is waited for,
//! and it is tried again. Rows are compared as a multiset of canonical values
//! ([`crate::validate::by_value`]); a difference is reported only when it is seen three times
//! (the capture job of CDC may lag a change the snapshot already shows).
//!
//! Contract: reads only; a view that does not translate, or reads a table that is not streaming,
//! is reported skipped with the reason.

use super::validation::{caught_up, pin_tables, source_position, TableResult};
use super::{connect_target, Shared, TableRt};
use crate::convert::expr::query::View;
use crate::error::{Context, Error};
use crate::model::{quote_pg, TableName, Verdict};
use crate::source::{self, Tds};
use crate::state::TableState;
use crate::validate::by_key;
use crate::validate::by_value::{self, RowMultiset};
use futures_util::TryStreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Times a view is read on both sides before a difference (or a table that keeps changing) is
/// reported.
const ATTEMPTS: usize = 3;

/// Compares every translated view of the source; one result per source view.
pub async fn run(shared: &Arc<Shared>) -> Result<Vec<TableResult>, Error> {
    let mut tds = super::stream::stream_session(shared).await?;
    let modules = crate::assess::modules(&mut tds).await?;
    let definitions = crate::assess::view_definitions(&modules);
    let runtimes = shared.registry.runtimes()?;
    let plans: Vec<_> = runtimes.iter().map(|(_, rt)| (*rt.plan).clone()).collect();
    let outcomes = crate::sink::ddl::views(&plans, &definitions, &shared.config.mapping);
    let mut pg = connect_target(shared).await?;
    let mut out = Vec::new();
    for o in &outcomes {
        if shared.stopping() {
            break;
        }
        let name = o.source.to_string();
        let result = match (&o.view, &o.result) {
            (Some(v), _) => match base_tables(v, &outcomes, &runtimes, shared) {
                Err(why) => skipped(&name, &why),
                Ok(bases) => match compare(shared, &mut tds, &mut pg, &o.source, v, &bases).await {
                    Ok(r) => r,
                    Err(e) if e.kind() == crate::error::ErrorKind::Fatal => return Err(e),
                    Err(e) => skipped(&name, &format!("validation failed: {e}")),
                },
            },
            (None, Err(why)) => skipped(&name, &format!("not translated: {why}")),
            (None, Ok(_)) => skipped(&name, "not translated"),
        };
        out.push(result);
    }
    Ok(out)
}

/// What a view reads, transitively.
#[derive(Default)]
struct Bases {
    /// The replicated tables.
    tables: Vec<(String, TableRt)>,
    /// The translated views between (name, `CREATE OR REPLACE VIEW`), the innermost last.
    views: Vec<(TableName, String)>,
}

/// The replicated tables a view reads, through the views it reads; `Err` names the first one
/// that is not a streaming table.
fn base_tables(
    view: &View,
    outcomes: &[crate::sink::ddl::ViewOutcome],
    runtimes: &[(String, TableRt)],
    shared: &Shared,
) -> Result<Bases, String> {
    let same = |a: &TableName, b: &TableName| {
        a.schema.eq_ignore_ascii_case(&b.schema) && a.name.eq_ignore_ascii_case(&b.name)
    };
    let mut out = Bases::default();
    let mut todo: Vec<TableName> = view.reads.clone();
    let mut seen: Vec<TableName> = Vec::new();
    while let Some(n) = todo.pop() {
        if seen.iter().any(|s| same(s, &n)) {
            continue;
        }
        seen.push(n.clone());
        if let Some((name, rt)) = runtimes
            .iter()
            .find(|(_, rt)| same(&rt.plan.source.name, &n))
        {
            let state = shared.store.table(name).ok().flatten().map(|r| r.state);
            if state != Some(TableState::Streaming) {
                return Err(format!("it reads table {name}, which is not streaming"));
            }
            out.tables.push((name.clone(), rt.clone()));
        } else if let Some((inner, Ok((_, sql)))) = outcomes
            .iter()
            .find(|o| same(&o.source, &n))
            .and_then(|o| Some((o.view.as_ref()?, &o.result)))
        {
            todo.extend(inner.reads.iter().cloned());
            out.views.push((n.clone(), sql.clone()));
        } else {
            return Err(format!("it reads {n}, which is not replicated"));
        }
    }
    Ok(out)
}

fn skipped(name: &str, why: &str) -> TableResult {
    result(
        name,
        Verdict::Skipped,
        0,
        0,
        Vec::new(),
        Some(why.to_string()),
    )
}

fn result(
    name: &str,
    verdict: Verdict,
    source_rows: i64,
    target_rows: i64,
    findings: Vec<String>,
    note: Option<String>,
) -> TableResult {
    TableResult {
        table: name.to_string(),
        mode: "view".into(),
        result: verdict,
        source_rows,
        target_rows,
        findings,
        repaired: 0,
        changing: 0,
        note,
        in_database: false,
        rows_read: source_rows + target_rows,
        seconds: None,
        proven: false,
    }
}

/// Reads one view on both sides until its tables hold the same rows on both, then compares.
async fn compare(
    shared: &Shared,
    tds: &mut Tds,
    pg: &mut tokio_postgres::Client,
    source_name: &TableName,
    view: &View,
    bases: &Bases,
) -> Result<TableResult, Error> {
    let name = source_name.to_string();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let names: Vec<&str> = bases.tables.iter().map(|(n, _)| n.as_str()).collect();
        let (tx, positions, _) = pin_tables(
            shared,
            pg,
            &names,
            "SET LOCAL TIME ZONE 'UTC'; SET LOCAL DateStyle = 'ISO';",
            false,
        )
        .await?;
        // The views it reads exist on the target only after cutover: made in this transaction,
        // which is rolled back.
        for (inner, sql) in bases.views.iter().rev() {
            tx.batch_execute(sql)
                .await
                .context(|| format!("validate: make view {inner} for this comparison"))?;
        }
        source::execute(tds, "BEGIN TRANSACTION", "validate: begin").await?;
        let mut settled = true;
        let mut goals = Vec::new();
        for ((_, rt), pos) in bases.tables.iter().zip(&positions) {
            let policies = &shared.config.policies;
            if !by_key::changed_keys(tds, &rt.plan, &rt.kind, pos, policies)
                .await?
                .is_empty()
            {
                settled = false;
            }
            goals.push(source_position(tds, &rt.kind).await?);
        }
        let rows = if settled {
            let mut m = RowMultiset::default();
            let columns = source_rows(tds, source_name, &mut m).await?;
            let target_columns = target_rows(&tx, &view.select, &mut m).await?;
            Some((m, columns, target_columns))
        } else {
            None
        };
        source::execute(tds, "COMMIT", "validate: end").await?;
        tx.rollback()
            .await
            .context(|| "validate: end the target snapshot".into())?;
        if let Some((m, columns, target_columns)) = rows {
            if columns != target_columns {
                return Ok(result(
                    &name,
                    Verdict::Different,
                    m.source_rows,
                    m.target_rows,
                    vec![format!(
                        "view {name}: {columns} columns at the source, {target_columns} on the target"
                    )],
                    None,
                ));
            }
            let (only_source, only_target) = m.differences();
            if only_source == 0 && only_target == 0 {
                return Ok(result(
                    &name,
                    Verdict::Equal,
                    m.source_rows,
                    m.target_rows,
                    Vec::new(),
                    None,
                ));
            }
            last = Some(result(
                &name,
                Verdict::Different,
                m.source_rows,
                m.target_rows,
                vec![format!(
                    "view {name}: {only_source} rows only at the source, {only_target} only on the target"
                )],
                None,
            ));
        }
        for ((table, _), goal) in bases.tables.iter().zip(&goals) {
            if !caught_up(shared, table, goal, Duration::from_secs(120)).await {
                return Ok(skipped(
                    &name,
                    "replication did not catch up with the source within 2 minutes; validate again later",
                ));
            }
        }
    }
    Ok(last.unwrap_or_else(|| {
        skipped(
            &name,
            "its tables kept changing at every attempt; validate again when writes are quieter",
        )
    }))
}

/// Adds the source view's rows; returns its column count.
async fn source_rows(tds: &mut Tds, view: &TableName, m: &mut RowMultiset) -> Result<usize, Error> {
    let what = || format!("validate: read view {view} at the source");
    let mut stream = tds
        .simple_query(format!("SELECT * FROM {}", view.tsql()))
        .await
        .context(what)?
        .into_row_stream();
    let mut columns = 0;
    while let Some(row) = stream.try_next().await.context(what)? {
        let cells: Vec<Option<String>> =
            row.into_iter().map(|c| by_value::source_cell(&c)).collect();
        columns = cells.len();
        m.source(&cells);
    }
    Ok(columns)
}

/// Adds the translated query's rows, each value as its text; returns its column count.
async fn target_rows(
    tx: &tokio_postgres::Transaction<'_>,
    select: &str,
    m: &mut RowMultiset,
) -> Result<usize, Error> {
    let what = || "validate: read a translated view on the target".to_string();
    let types: Vec<_> = tx
        .prepare(select)
        .await
        .context(what)?
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    let names: Vec<String> = (0..types.len()).map(|i| format!("c{i}")).collect();
    let sql = format!(
        "SELECT {} FROM ({select}) AS v({})",
        names
            .iter()
            .map(|n| format!("v.{}::text", quote_pg(n)))
            .collect::<Vec<_>>()
            .join(", "),
        names
            .iter()
            .map(|n| quote_pg(n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for msg in tx.simple_query(&sql).await.context(what)? {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = msg {
            let cells: Vec<Option<String>> = types
                .iter()
                .enumerate()
                .map(|(i, ty)| by_value::target_cell(ty, row.get(i)))
                .collect();
            m.target(&cells);
        }
    }
    Ok(types.len())
}
