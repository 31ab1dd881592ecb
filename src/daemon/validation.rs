//! Validation while replication runs: periodic and on demand (`replicator validate`).
//!
//! Both sides are compared at one position. The target is pinned by a REPEATABLE READ
//! transaction begun between two windows (the apply gate), so it holds exactly the changes up
//! to its committed position `U`. The source is read in a SNAPSHOT transaction that also lists
//! the keys changed after `U` (CHANGETABLE, or the CDC change table); those keys are left out of
//! the comparison, so every other key is compared at `U` on both sides. A key that still differs
//! is rechecked after the target caught up (twice for CDC, whose capture job may not yet have
//! seen a change) before it is reported: a busy table gives no false alarm.
//!
//! Contract: findings name the table and key; `repair` rewrites a confirmed key from the source
//! while no window runs, so the fix and the stream never race; nothing else is written.

use super::{connect_target, resume_position, Shared, TableRt};
use crate::config::ValidationMode;
use crate::convert::TablePlan;
use crate::error::{Context, Error};
use crate::model::{quote_tsql, Position};
use crate::model::{ChangeSource, Verdict};
use crate::sink::apply::Op;
use crate::sink::{guard, progress};
use crate::source::read::Key;
use crate::source::{self, Tds};
use crate::state::{TableState, ValidationRecord};
use crate::validate::by_key::{self, KeyBytes};
use crate::validate::{Outcome, Suspect};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to validate.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Request {
    /// One table (`schema.table` as status prints it), or every streaming table.
    pub table: Option<String>,
    /// Every row instead of counts and a sample.
    pub full: bool,
    /// Rewrite confirmed differences from the source.
    pub repair: bool,
    /// Compare the translated views instead of the tables (see [`super::view_validation`]).
    pub views: bool,
}

/// One table's validation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableResult {
    /// Source `schema.table`.
    pub table: String,
    /// `sample` or `full`.
    pub mode: String,
    /// The outcome.
    pub result: Verdict,
    /// Rows compared on the source side (full), or the source's row count (sample).
    pub source_rows: i64,
    /// The same on the target side.
    pub target_rows: i64,
    /// Confirmed differences: table, key and what differs (at most 20).
    pub findings: Vec<String>,
    /// Keys rewritten from the source (`repair`).
    pub repaired: usize,
    /// Keys left out because they kept changing (replication carries them).
    pub changing: usize,
    /// Why a table was skipped.
    pub note: Option<String>,
    /// Full mode: the bucket checksums were computed by both databases.
    pub in_database: bool,
    /// Rows read into the replicator by the first comparison, both sides together.
    pub rows_read: i64,
    /// Full mode: seconds the source and the target each took for the first comparison
    /// (in database they run at the same time), to see which side is slow.
    pub seconds: Option<SideSeconds>,
    /// An equal full validation recorded as the table's proof of equality, which cutover
    /// builds on instead of comparing every row inside its write window.
    pub proven: bool,
}

/// Seconds each side took, rounded to milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SideSeconds {
    /// The source's aggregate (or its rows read).
    pub source: f64,
    /// The target's.
    pub target: f64,
}

impl SideSeconds {
    fn of(o: &Outcome) -> SideSeconds {
        let ms = |s: f64| (s * 1000.0).round() / 1000.0;
        SideSeconds {
            source: ms(o.source_seconds),
            target: ms(o.target_seconds),
        }
    }
}

/// Validates the requested tables one after the other; each result is recorded in the store
/// (shown by `status`) and the journal.
pub async fn run(shared: &Arc<Shared>, req: &Request) -> Result<Vec<TableResult>, Error> {
    if req.views {
        return super::view_validation::run(shared).await;
    }
    let tables = shared.registry.runtimes()?;
    if let Some(t) = &req.table {
        if !tables.iter().any(|(n, _)| n == t) {
            let known: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::Fatal(format!(
                "validate: no replicated table {t} (known: {})",
                known.join(", ")
            )));
        }
    }
    let mode = if req.full {
        ValidationMode::Full
    } else {
        shared.config.validation_mode
    };
    let mut out = Vec::new();
    for (name, rt) in tables {
        if req.table.as_ref().is_some_and(|t| t != &name) {
            continue;
        }
        if shared.stopping() {
            break;
        }
        let state = shared.store.table(&name)?.map(|r| r.state);
        let result = if state != Some(TableState::Streaming) {
            if req.table.is_none() {
                continue; // only tables that stream are validated in a sweep
            }
            skipped(&name, mode, "the table is not streaming")
        } else {
            match table(shared, &name, &rt, mode, req.repair).await {
                Ok(r) => r,
                Err(e) if e.kind() == crate::error::ErrorKind::Fatal => return Err(e),
                Err(e) => skipped(&name, mode, &format!("validation failed: {e}")),
            }
        };
        record(shared, &result)?;
        out.push(result);
    }
    Ok(out)
}

fn mode_label(mode: ValidationMode) -> &'static str {
    match mode {
        ValidationMode::Sample => "sample",
        ValidationMode::Full => "full",
    }
}

fn skipped(name: &str, mode: ValidationMode, why: &str) -> TableResult {
    TableResult {
        table: name.to_string(),
        mode: mode_label(mode).into(),
        result: Verdict::Skipped,
        source_rows: 0,
        target_rows: 0,
        findings: Vec::new(),
        repaired: 0,
        changing: 0,
        note: Some(why.to_string()),
        in_database: false,
        rows_read: 0,
        seconds: None,
        proven: false,
    }
}

fn record(shared: &Shared, r: &TableResult) -> Result<(), Error> {
    let rec = ValidationRecord {
        at_ms: crate::state::now_ms(),
        result: r.result,
        mode: r.mode.clone(),
        findings: r.findings.clone(),
        source_rows: r.source_rows,
        target_rows: r.target_rows,
    };
    shared.store.record_validation(&r.table, rec)?;
    let detail = match (&r.note, r.findings.first()) {
        (Some(n), _) => n.clone(),
        (None, Some(f)) => format!("{} difference(s), first: {f}", r.findings.len()),
        (None, None) => format!("{} rows equal", r.source_rows),
    };
    shared.store.journal(
        "validation",
        Some(&r.table),
        format!("{} {}: {detail}", r.mode, r.result),
    )?;
    if r.result == Verdict::Different {
        tracing::error!(table = %r.table, findings = r.findings.len(), "validation found differences");
    } else {
        tracing::info!(table = %r.table, result = %r.result, mode = %r.mode, "validated");
    }
    Ok(())
}

/// The committed position of a table (changes up to it are on the target).
pub(super) fn position(shared: &Shared, name: &str) -> Result<Option<Position>, Error> {
    Ok(shared.store.table(name)?.as_ref().and_then(resume_position))
}

fn reached(now: &Option<Position>, goal: &Option<Position>) -> bool {
    match (now, goal) {
        (_, None) => true,
        (Some(Position::Ct(a)), Some(Position::Ct(b))) => a >= b,
        (Some(Position::Cdc(a)), Some(Position::Cdc(b))) => a >= b,
        _ => false,
    }
}

/// The source's newest position for this table's change source.
pub(super) async fn source_position(
    tds: &mut Tds,
    kind: &ChangeSource,
) -> Result<Option<Position>, Error> {
    Ok(match kind {
        ChangeSource::ChangeTracking => source::ct::current_version(tds).await?.map(Position::Ct),
        ChangeSource::Cdc(_) => source::cdc::max_lsn(tds).await?.map(Position::Cdc),
        ChangeSource::CopiedOnce => None,
    })
}

/// A pinned target: a REPEATABLE READ transaction that sees exactly the changes up to `pos`.
/// With `hold`, the apply gate stays taken (no window runs) until the guard is dropped.
async fn pin<'a>(
    shared: &'a Shared,
    pg: &'a mut tokio_postgres::Client,
    name: &str,
    hold: bool,
) -> Result<
    (
        tokio_postgres::Transaction<'a>,
        Option<Position>,
        Option<tokio::sync::MutexGuard<'a, ()>>,
    ),
    Error,
> {
    let (tx, mut positions, gate) = pin_tables(shared, pg, &[name], "", hold).await?;
    Ok((tx, positions.pop().flatten(), gate))
}

/// [`pin`] for several tables at once: their committed positions, read while no window can
/// commit, and a snapshot holding exactly those. `settings` (`SET LOCAL ...;`) run first in
/// the transaction.
pub(super) async fn pin_tables<'a>(
    shared: &'a Shared,
    pg: &'a mut tokio_postgres::Client,
    names: &[&str],
    settings: &str,
    hold: bool,
) -> Result<
    (
        tokio_postgres::Transaction<'a>,
        Vec<Option<Position>>,
        Option<tokio::sync::MutexGuard<'a, ()>>,
    ),
    Error,
> {
    let gate = shared.apply_gate.lock().await;
    let positions = names
        .iter()
        .map(|n| position(shared, n))
        .collect::<Result<Vec<_>, _>>()?;
    let tx = pg
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .context(|| "validate: begin a target snapshot".into())?;
    // The snapshot is taken by the first query: take it while no window can commit.
    tx.batch_execute(&format!("{settings} SELECT 1"))
        .await
        .context(|| "validate: begin a target snapshot".into())?;
    Ok((tx, positions, if hold { Some(gate) } else { None }))
}

/// First pass: (counts or every row), with the keys changed meanwhile left out.
struct FirstPass {
    source_rows: i64,
    target_rows: i64,
    suspects: Vec<Suspect>,
    count_gap: i64,
    changing: usize,
    source_at: Option<Position>,
    in_database: bool,
    rows_read: i64,
    seconds: Option<SideSeconds>,
    /// What a proof needs from the pinned target: (P1, proof epoch, guard identity), when the
    /// table has all three.
    basis: Option<(Position, i64, String)>,
}

async fn first_pass(
    shared: &Shared,
    tds: &mut Tds,
    pg: &mut tokio_postgres::Client,
    name: &str,
    rt: &TableRt,
    mode: ValidationMode,
) -> Result<FirstPass, Error> {
    let plan = &rt.plan;
    let policies = &shared.config.policies;
    let (tx, pos, _) = pin(shared, pg, name, false).await?;
    let schema = &shared.config.mapping.progress_schema;
    let epoch = progress::proof_epoch(&tx, schema, name).await?;
    let guard = guard::identity(&tx, schema, &plan.target).await?;
    let basis = match (pos, epoch, guard) {
        (Some(p), Some(e), Some(g)) => Some((p, e, g)),
        _ => None,
    };
    source::execute(tds, "BEGIN TRANSACTION", "validate: begin").await?;
    let source_at = source_position(tds, &rt.kind).await?;
    let changed =
        by_key::changed_keys(tds, &rt.plan, &rt.kind, &pos, &shared.config.policies).await?;
    let skip: HashSet<KeyBytes> = changed.iter().map(|c| c.0.clone()).collect();
    let out = match mode {
        ValidationMode::Full => {
            let o: Outcome = crate::validate::full(
                tds,
                &tx,
                plan,
                policies,
                &skip,
                crate::validate::FullOptions::configured(
                    &shared.config,
                    shared.config.validation_max_share,
                ),
            )
            .await?;
            let seconds = SideSeconds::of(&o);
            FirstPass {
                source_rows: o.source_rows,
                target_rows: o.target_rows,
                suspects: o.suspects,
                count_gap: 0,
                changing: skip.len(),
                source_at,
                in_database: o.in_database,
                rows_read: o.rows_read,
                seconds: Some(seconds),
                basis,
            }
        }
        ValidationMode::Sample => {
            let (source_rows, target_rows, count_gap) =
                counts(tds, &tx, plan, policies, &changed).await?;
            let suspects = sample(
                tds,
                &tx,
                plan,
                policies,
                &skip,
                shared.config.validation_sample_rows,
            )
            .await?;
            FirstPass {
                source_rows,
                target_rows,
                suspects,
                count_gap,
                changing: skip.len(),
                source_at,
                in_database: false,
                rows_read: 0,
                seconds: None,
                basis: None,
            }
        }
    };
    source::execute(tds, "COMMIT", "validate: end").await?;
    tx.commit()
        .await
        .context(|| "validate: end the target snapshot".into())?;
    Ok(out)
}

/// Row counts at one position: the source's count minus the target's, less what the keys
/// changed meanwhile explain. Zero when the target holds exactly the source's rows.
async fn counts(
    tds: &mut Tds,
    tx: &tokio_postgres::Transaction<'_>,
    plan: &TablePlan,
    policies: &crate::config::Policies,
    changed: &[(KeyBytes, Key)],
) -> Result<(i64, i64, i64), Error> {
    let name = plan.source.name.to_string();
    let rows = source::query_rows(
        tds,
        &format!("SELECT COUNT_BIG(*) FROM {}", plan.source.name.tsql()),
        &format!("validate: count {name}"),
    )
    .await?;
    let src: i64 = rows
        .first()
        .and_then(|r| r.try_get::<i64, _>(0).ok().flatten())
        .unwrap_or(0);
    let tgt: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {}", plan.target.sql()), &[])
        .await
        .context(|| format!("validate: count {}", plan.target))?
        .get(0);
    let keys: Vec<Key> = changed.iter().map(|c| c.1.clone()).collect();
    let bytes: Vec<KeyBytes> = changed.iter().map(|c| c.0.clone()).collect();
    let src_has = by_key::source_rows(tds, plan, policies, &keys).await?;
    let tgt_has = by_key::target_rows(tx, plan, &bytes).await?;
    let explained = src_has.len() as i64 - tgt_has.len() as i64;
    Ok((src, tgt, (src - tgt) - explained))
}

/// `n` random source rows compared value by value with the target's.
async fn sample(
    tds: &mut Tds,
    tx: &tokio_postgres::Transaction<'_>,
    plan: &TablePlan,
    policies: &crate::config::Policies,
    skip: &HashSet<KeyBytes>,
    n: usize,
) -> Result<Vec<Suspect>, Error> {
    let name = plan.source.name.to_string();
    let keys: Vec<String> = plan.key_columns().map(|c| quote_tsql(&c.source)).collect();
    let rows = source::query_rows(
        tds,
        &format!(
            "SELECT TOP ({n}) {} FROM {} ORDER BY NEWID()",
            keys.join(", "),
            plan.source.name.tsql()
        ),
        &format!("validate: sample {name}"),
    )
    .await?;
    let sample: Vec<Key> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| crate::source::read::KeyValue::from_cell(&c))
                .collect()
        })
        .collect();
    let src = by_key::source_rows(tds, plan, policies, &sample).await?;
    let wanted: Vec<KeyBytes> = src.keys().filter(|k| !skip.contains(*k)).cloned().collect();
    let tgt = by_key::target_rows(tx, plan, &wanted).await?;
    let mut out = Vec::new();
    for k in &wanted {
        if tgt.get(k) != src.get(k).map(|s| &s.bytes) {
            let key = src.get(k).map(|s| s.key.clone());
            out.push(Suspect {
                key: k.clone(),
                display: key
                    .as_ref()
                    .map(|k| crate::source::read::key_display(plan, k))
                    .unwrap_or_default(),
                source_key: key,
            });
        }
    }
    Ok(out)
}

/// One recheck of `suspects` at the target's current position: returns the keys that still
/// differ (with what differs) and how many changed meanwhile (left for the next round). With
/// `repair`, rewrites the differing keys from the source before any window runs again.
async fn recheck(
    shared: &Shared,
    tds: &mut Tds,
    pg: &mut tokio_postgres::Client,
    name: &str,
    rt: &TableRt,
    suspects: &[Suspect],
    repair: bool,
) -> Result<(Vec<(Suspect, &'static str)>, Vec<Suspect>, usize), Error> {
    let plan = &rt.plan;
    let policies = &shared.config.policies;
    let (tx, pos, gate) = pin(shared, pg, name, repair).await?;
    source::execute(tds, "BEGIN TRANSACTION", "validate: begin").await?;
    let changed: HashSet<KeyBytes> =
        by_key::changed_keys(tds, &rt.plan, &rt.kind, &pos, &shared.config.policies)
            .await?
            .into_iter()
            .map(|c| c.0)
            .collect();
    let (moving, still): (Vec<Suspect>, Vec<Suspect>) = suspects
        .iter()
        .cloned()
        .partition(|s| changed.contains(&s.key));
    let keys: Vec<Key> = still.iter().filter_map(|s| s.source_key.clone()).collect();
    let src = by_key::source_rows(tds, plan, policies, &keys).await?;
    let bytes: Vec<KeyBytes> = still.iter().map(|s| s.key.clone()).collect();
    let tgt = by_key::target_rows(&tx, plan, &bytes).await?;
    let mut differ = Vec::new();
    for s in still {
        let what = match (src.get(&s.key), tgt.get(&s.key)) {
            (Some(a), Some(b)) if &a.bytes == b => continue,
            (None, None) if s.source_key.is_some() => continue,
            (Some(_), Some(_)) => "values differ",
            (Some(_), None) => "missing on the target",
            (None, Some(_)) if s.source_key.is_some() => "on the target only",
            (None, Some(_)) => "on the target only (key type not rechecked at the source)",
            (None, None) => continue,
        };
        differ.push((s, what));
    }
    let mut repaired = 0;
    if repair && !differ.is_empty() {
        let mut stages = crate::sink::apply::Stages::default();
        stages.begin();
        let mut writer = stages.writer(&tx, plan);
        let mut deletes = Vec::new();
        for (s, what) in &differ {
            match src.get(&s.key) {
                Some(row) => writer.push(Op::Upsert, &row.values).await?,
                // Only a key SQL Server was asked about is known to be absent there.
                None if s.source_key.is_some() => deletes.push(s.key.clone()),
                None => {
                    tracing::warn!(table = name, key = %s.display, what, "not repaired");
                    continue;
                }
            }
            repaired += 1;
        }
        writer.apply(true).await?;
        delete_keys(&tx, plan, &deletes).await?;
        // Written outside a window: an earlier proof no longer holds.
        progress::invalidate_proof(&tx, &shared.config.mapping.progress_schema, name).await?;
    }
    source::execute(tds, "COMMIT", "validate: end").await?;
    tx.commit()
        .await
        .context(|| "validate: end the target snapshot".into())?;
    drop(gate);
    Ok((differ, moving, repaired))
}

async fn delete_keys(
    tx: &tokio_postgres::Transaction<'_>,
    plan: &TablePlan,
    keys: &[KeyBytes],
) -> Result<(), Error> {
    let key_cols: Vec<String> = plan
        .key_columns()
        .map(|c| crate::model::quote_pg(&c.target))
        .collect();
    for k in keys {
        let fields = by_key::key_fields(k);
        let params: Vec<by_key::RawBinary> = fields.iter().map(|f| by_key::RawBinary(*f)).collect();
        let eqs: Vec<String> = key_cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect();
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE {}",
                plan.target.sql(),
                eqs.join(" AND ")
            ),
            &refs,
        )
        .await
        .context(|| format!("repair {}", plan.target))?;
    }
    Ok(())
}

/// Waits until the target's position for `name` reaches `goal` (what the source had when the
/// last pass read it); false when it did not within `within`.
pub(super) async fn caught_up(
    shared: &Shared,
    name: &str,
    goal: &Option<Position>,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if position(shared, name)
            .ok()
            .is_some_and(|p| reached(&p, goal))
        {
            return true;
        }
        if Instant::now() > deadline || shared.sleep_or_stop(Duration::from_millis(50)).await {
            return false;
        }
    }
}

/// Validates one streaming table.
async fn table(
    shared: &Arc<Shared>,
    name: &str,
    rt: &TableRt,
    mode: ValidationMode,
    repair: bool,
) -> Result<TableResult, Error> {
    let mut tds = crate::daemon::stream::stream_session(shared).await?;
    let mut pg = connect_target(shared).await?;
    let started_ms = crate::state::now_ms();
    let first = first_pass(shared, &mut tds, &mut pg, name, rt, mode).await?;
    let mut result = TableResult {
        table: name.to_string(),
        mode: mode_label(mode).into(),
        result: Verdict::Equal,
        source_rows: first.source_rows,
        target_rows: first.target_rows,
        findings: Vec::new(),
        repaired: 0,
        changing: first.changing,
        note: None,
        in_database: first.in_database,
        rows_read: first.rows_read,
        seconds: first.seconds,
        proven: false,
    };
    let mut suspects = first.suspects;
    let mut count_gap = first.count_gap;
    let mut goal = first.source_at;
    // CDC needs a second confirmation: its capture job may not have seen a change yet.
    let rounds = if matches!(rt.kind, ChangeSource::Cdc(_)) {
        2
    } else {
        1
    };
    let mut confirmed: Vec<(Suspect, &'static str)> = Vec::new();
    for round in 0..rounds {
        if suspects.is_empty() && count_gap == 0 {
            break;
        }
        if !caught_up(shared, name, &goal, Duration::from_secs(120)).await {
            result.result = Verdict::Skipped;
            result.note = Some("replication did not catch up with the validated position within 2 minutes; validate again later".into());
            return Ok(result);
        }
        goal = source_position(&mut tds, &rt.kind).await?;
        let last = round + 1 == rounds;
        let (differ, moving, repaired) = recheck(
            shared,
            &mut tds,
            &mut pg,
            name,
            rt,
            &suspects,
            repair && last,
        )
        .await?;
        result.repaired += repaired;
        if count_gap != 0 {
            let (tx, pos, _) = pin(shared, &mut pg, name, false).await?;
            source::execute(&mut tds, "BEGIN TRANSACTION", "validate: begin").await?;
            let changed =
                by_key::changed_keys(&mut tds, &rt.plan, &rt.kind, &pos, &shared.config.policies)
                    .await?;
            let (s, t, gap) =
                counts(&mut tds, &tx, &rt.plan, &shared.config.policies, &changed).await?;
            source::execute(&mut tds, "COMMIT", "validate: end").await?;
            let _ = tx.commit().await;
            result.source_rows = s;
            result.target_rows = t;
            count_gap = gap;
        }
        result.changing = moving.len();
        suspects = differ.iter().map(|d| d.0.clone()).collect();
        confirmed = differ;
    }
    if count_gap != 0 {
        result.findings.push(format!(
            "{name}: row counts differ by {count_gap} beyond the rows changing meanwhile"
        ));
    }
    for (s, what) in confirmed.iter().take(20) {
        result
            .findings
            .push(format!("{name} {}: {what}", s.display));
    }
    if !result.findings.is_empty() {
        result.result = if repair && result.repaired == confirmed.len() && count_gap == 0 {
            Verdict::Repaired
        } else {
            Verdict::Different
        };
    }
    if let (ValidationMode::Full, Verdict::Equal, Some((position, epoch, guard))) =
        (mode, result.result, first.basis)
    {
        let proof = progress::Proof {
            position,
            at_ms: started_ms,
            rows: result.source_rows,
            mode: if result.in_database {
                "full, in database"
            } else {
                "full"
            }
            .into(),
            guard,
        };
        let schema = &shared.config.mapping.progress_schema;
        result.proven = progress::record_proof(&pg, schema, name, epoch, &proof).await?;
    }
    Ok(result)
}

/// Periodic validation: every `validation.interval`, each streaming table in turn, until the
/// daemon stops. Failures are logged and recorded; they never stop replication.
pub async fn periodic(shared: Arc<Shared>) {
    let Some(every) = shared.config.validation_interval else {
        return;
    };
    loop {
        if shared.sleep_or_stop(every).await {
            return;
        }
        let req = Request::default();
        if let Err(e) = run(&shared, &req).await {
            tracing::warn!(error = %e, "periodic validation failed");
        }
    }
}
