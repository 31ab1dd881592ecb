//! Inside the write window, after the drain (both sides at the final position P2): each table
//! is compared either by its delta or in full.
//!
//! Delta: a table with a usable proof of equality at P1 ([`crate::sink::progress::Proof`]) has
//! only the keys the change source lists as changed after P1 compared, value by value, and its
//! row counts compared on both sides. The argument (docs/design.md, "Cutover"): at P1 every key
//! not changed after P1 was equal; since then only the replicator wrote the target (the write
//! guard, unaltered since P1, refused every other session), and it wrote only keys changed after
//! P1 (a repair, a snapshot or a schema change drops the proof); so a key unchanged since P1 is
//! still equal, and every other key is compared here.
//!
//! Full: every row (today's comparison), for a table without a usable proof; the reason is
//! reported.

use super::report::{Parts, ProofSummary, TableResult};
use super::Options;
use crate::daemon::{Shared, TableRt};
use crate::error::{Context, Error};
use crate::model::{quote_pg, Position};
use crate::model::{ChangeSource, Verdict};
use crate::sink::guard;
use crate::sink::progress::{Proof, TableProgress};
use crate::source::{self, Tds};
use crate::validate::by_key;
use std::collections::HashMap;
use std::time::Instant;

/// Above this share of the proof's rows changed since P1, comparing every row is cheaper.
const DELTA_SHARE: f64 = 0.5;

/// The proof a table's check builds on, or why every row is compared.
pub async fn basis(
    tds: &mut Tds,
    pg: &tokio_postgres::Client,
    opts: &Options,
    rt: &TableRt,
    progress: Option<&TableProgress>,
    min_valid: &HashMap<i32, i64>,
    schema: &str,
) -> Result<Result<Proof, String>, Error> {
    if opts.full_check_in_window {
        return Ok(Err("--full-check-in-window".into()));
    }
    let Some(proof) = progress.and_then(|p| p.proof.clone()) else {
        return Ok(Err("no equality proof stands (none was made, or a snapshot, repair or schema change since dropped it)".into()));
    };
    if !super::prove::recent(&proof, opts.validated_within) {
        let age = (crate::state::now_ms() - proof.at_ms).max(0) / 1000;
        return Ok(Err(format!(
            "the proof is {age} s old, older than --validated-within {}",
            humantime::format_duration(opts.validated_within)
        )));
    }
    if guard::identity(pg, schema, &rt.plan.target)
        .await?
        .as_deref()
        != Some(proof.guard.as_str())
    {
        return Ok(Err("the write guard was disabled, dropped, re-created or its function replaced since the proof: another session may have written the table".into()));
    }
    let kept = match (&rt.kind, &proof.position) {
        (ChangeSource::ChangeTracking, Position::Ct(p1)) => min_valid
            .get(&rt.plan.source.object_id)
            .is_some_and(|mv| mv <= p1),
        (ChangeSource::Cdc(ci), Position::Cdc(p1)) => {
            progress.and_then(|p| p.capture_instance.as_deref()) == Some(ci.as_str())
                && source::cdc::min_lsn(tds, ci)
                    .await?
                    // All zeros: the capture instance is gone.
                    .is_some_and(|min| min.0 != [0; 10] && min <= *p1)
        }
        _ => false,
    };
    if !kept {
        return Ok(Err(format!(
            "the changes after the proof's position {} are no longer all listed at the source (retention cleanup, or another change source)",
            proof.position
        )));
    }
    Ok(Ok(proof))
}

/// Checks one table at the final position: by its delta when `basis` holds a proof (falling back
/// to every row when most rows changed since), else every row. Adds its time to `parts`;
/// returns the result and the problems found, each naming the table.
pub async fn table(
    shared: &Shared,
    tds: &mut Tds,
    pg: &mut tokio_postgres::Client,
    (name, rt): (&str, &TableRt),
    basis: Result<Proof, String>,
    parts: &mut Parts,
) -> Result<(TableResult, Vec<String>), Error> {
    let started = Instant::now();
    let mut problems = Vec::new();
    let plan = &rt.plan;
    let mut result = TableResult {
        source: name.to_string(),
        target: plan.target.to_string(),
        source_rows: 0,
        target_rows: 0,
        result: Verdict::Equal,
        check: "delta".into(),
        why_full: None,
        proof: None,
        keys_checked: 0,
        identity_synced_to: None,
        checked_in_database: false,
        rows_read: 0,
        seconds: 0.0,
    };
    let mut why_full = basis.as_ref().err().cloned();
    if let Ok(proof) = &basis {
        source::execute(
            tds,
            "BEGIN TRANSACTION",
            &format!("cutover: begin the delta check of {name}"),
        )
        .await?;
        let tx = pg
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .context(|| format!("cutover: begin the delta check of {}", plan.target))?;
        let policies = &shared.config.policies;
        let keys =
            by_key::changed_keys(tds, plan, &rt.kind, &Some(proof.position), policies).await?;
        if keys.len() as f64 > (proof.rows as f64 * DELTA_SHARE).max(10_000.0) {
            why_full = Some(format!(
                "{} keys changed since the proof: comparing every row is cheaper",
                keys.len()
            ));
        } else {
            let differ = by_key::compare(tds, &tx, plan, policies, &keys).await?;
            parts.delta_check += started.elapsed().as_secs_f64();
            let counted = Instant::now();
            let target_sql = format!("SELECT count(*) FROM {}", plan.target.sql());
            let target_count = tx.query_one(&target_sql, &[]);
            let source_sql = format!("SELECT COUNT_BIG(*) FROM {}", plan.source.name.tsql());
            let count_what = format!("cutover: count the rows of {name}");
            let source_count = source::query_rows(tds, &source_sql, &count_what);
            let (s, t) = tokio::join!(source_count, target_count);
            let s: i64 = s?
                .first()
                .and_then(|r| r.try_get::<i64, _>(0).ok().flatten())
                .ok_or_else(|| {
                    Error::table(name, "cutover: the source returned no row count", None)
                })?;
            let t: i64 = t
                .context(|| format!("cutover: count the rows of {}", plan.target))?
                .get(0);
            parts.counts += counted.elapsed().as_secs_f64();
            result.source_rows = s;
            result.target_rows = t;
            result.keys_checked = keys.len() as i64;
            result.proof = Some(ProofSummary {
                validated_at: chrono::DateTime::from_timestamp_millis(proof.at_ms)
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
                position: proof.position.to_string(),
                rows: proof.rows,
                mode: proof.mode.clone(),
            });
            if !differ.is_empty() || s != t {
                result.result = Verdict::Different;
                problems.push(format!(
                    "{name}: {s} rows at the source, {t} on the target, {} of the {} key(s) changed since the proof differ",
                    differ.len(),
                    keys.len()
                ));
                for (key, what) in differ.iter().take(20) {
                    problems.push(format!("{name} {key}: {what}"));
                }
                if differ.is_empty() {
                    problems.push(format!("{name}: the counts differ though every changed key is equal: a row was added or removed on the target by another session"));
                }
            }
        }
        source::execute(
            tds,
            "COMMIT",
            &format!("cutover: end the delta check of {name}"),
        )
        .await?;
        tx.commit()
            .await
            .context(|| format!("cutover: end the delta check of {}", plan.target))?;
    }
    if let Some(why) = why_full {
        let full_started = Instant::now();
        result.check = "full".into();
        result.why_full = Some(why);
        result.proof = None;
        let read = pg
            .transaction()
            .await
            .context(|| format!("cutover: begin the full check of {}", plan.target))?;
        let outcome = crate::validate::full(
            tds,
            &read,
            plan,
            &shared.config.policies,
            &Default::default(),
            crate::validate::FullOptions::configured(&shared.config, 1.0),
        )
        .await?;
        read.commit()
            .await
            .context(|| format!("cutover: end the full check of {}", plan.target))?;
        parts.full_check += full_started.elapsed().as_secs_f64();
        result.source_rows = outcome.source_rows;
        result.target_rows = outcome.target_rows;
        result.keys_checked = outcome.source_rows;
        result.checked_in_database = outcome.in_database;
        result.rows_read = outcome.rows_read;
        if !outcome.equal() {
            result.result = Verdict::Different;
            problems.push(format!(
                "{name}: {} rows at the source, {} on the target, {} key(s) differ",
                outcome.source_rows, outcome.target_rows, outcome.differing
            ));
            problems.extend(outcome.findings.iter().cloned());
        }
    }
    shared.store.record_validation(
        name,
        crate::state::ValidationRecord {
            at_ms: crate::state::now_ms(),
            result: result.result,
            mode: match result.check.as_str() {
                "delta" => "cutover delta".into(),
                _ => "full".into(),
            },
            findings: problems.iter().take(20).cloned().collect(),
            source_rows: result.source_rows,
            target_rows: result.target_rows,
        },
    )?;
    result.seconds = started.elapsed().as_secs_f64();
    Ok((result, problems))
}

/// Sets the target's identity sequence to continue after the source's `IDENT_CURRENT`; the
/// value set, when the table has an identity.
pub async fn sync_identity(
    tds: &mut Tds,
    pg: &tokio_postgres::Client,
    rt: &TableRt,
) -> Result<Option<i64>, Error> {
    let plan = &rt.plan;
    let Some(col) = plan.columns.iter().find(|c| c.identity) else {
        return Ok(None);
    };
    let Some(ident) = crate::source::discover::ident_current(tds, &plan.source.name).await? else {
        return Ok(None);
    };
    let seq: Option<String> = pg
        .query_one(
            "SELECT pg_get_serial_sequence($1, $2)",
            &[&plan.target.sql(), &col.target],
        )
        .await
        .context(|| format!("find the identity sequence of {}", plan.target))?
        .get(0);
    let Some(seq) = seq else { return Ok(None) };
    pg.execute(
        "SELECT setval($1::text::regclass, $2, true)",
        &[&seq, &ident.max(1)],
    )
    .await
    .context(|| format!("sync the identity of {}", plan.target))?;
    Ok(Some(ident))
}

/// Sets each carried sequence ([`crate::sink::ddl::sequences_for`]) after the source's last
/// value, read inside the window: the next value PostgreSQL hands out is one the source never
/// did (a sequence never used at the source skips its start value once: a gap, never a
/// duplicate). Returns (target, value) for each.
pub async fn sync_sequences(
    tds: &mut Tds,
    pg: &tokio_postgres::Client,
    plans: &[crate::convert::TablePlan],
    mapping: &crate::config::Mapping,
) -> Result<Vec<(String, i64)>, Error> {
    let all: Vec<_> = crate::source::discover::sequences(tds)
        .await?
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let mut out = Vec::new();
    for q in crate::sink::ddl::sequences_for(&all, plans) {
        let t = crate::convert::sequence_target(&q.name, mapping);
        pg.execute(
            "SELECT setval($1::text::regclass, $2, true)",
            &[&t.sql(), &q.current],
        )
        .await
        .context(|| format!("set sequence {t} after the source's {}", q.current))?;
        out.push((t.to_string(), q.current));
    }
    Ok(out)
}

/// Rowversion columns keep working once the application writes on PostgreSQL: per target
/// schema, a sequence `replicator_rowversion` set past the source's `@@DBTS` (as SQL Server's
/// counter, one for every table); each such column defaults to its next value as 8 big-endian
/// bytes, and a trigger gives an updated row the next one, as SQL Server does. Runs in the
/// release's transaction (`tx`); returns a note per column.
pub async fn continue_rowversions(
    tds: &mut Tds,
    tx: &impl tokio_postgres::GenericClient,
    plans: &[crate::convert::TablePlan],
) -> Result<Vec<String>, Error> {
    let columns: Vec<(&crate::convert::TablePlan, &crate::convert::ColumnPlan)> = plans
        .iter()
        .flat_map(|p| {
            p.columns
                .iter()
                .filter(move |c| {
                    !c.expression
                        && c.kind == crate::convert::TargetKind::Bytea
                        && p.source.columns.iter().any(|s| {
                            s.name == c.source
                                && matches!(s.source_type.name.as_str(), "timestamp" | "rowversion")
                        })
                })
                .map(move |c| (p, c))
        })
        .collect();
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let dbts = crate::source::query_rows(
        tds,
        "SELECT CAST(@@DBTS AS bigint)",
        "read the source's rowversion counter (@@DBTS)",
    )
    .await?
    .first()
    .and_then(|r| r.get::<i64, _>(0))
    .ok_or_else(|| {
        // Counting from 0 would give rows older values than SQL Server's: never guess.
        Error::Fatal("the source did not say its rowversion counter (@@DBTS); rowversion columns cannot continue on PostgreSQL".into())
    })?;
    let mut schemas: Vec<&str> = columns
        .iter()
        .map(|(p, _)| p.target.schema.as_str())
        .collect();
    schemas.sort();
    schemas.dedup();
    for s in &schemas {
        let q = quote_pg(s);
        let seq = crate::model::pg_literal(&format!("{q}.replicator_rowversion"));
        tx.batch_execute(&format!(
            "CREATE SEQUENCE IF NOT EXISTS {q}.replicator_rowversion AS bigint; \
             SELECT setval({seq}, GREATEST({dbts}, 1)); \
             CREATE OR REPLACE FUNCTION {q}.replicator_rowversion_bump() RETURNS trigger LANGUAGE plpgsql AS $f$ \
             BEGIN \
               NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[0], int8send(nextval(TG_ARGV[1]::regclass)))); \
               RETURN NEW; \
             END $f$"
        ))
        .await
        .context(|| format!("create the rowversion counter in schema {s}"))?;
    }
    let mut notes = Vec::new();
    for (p, c) in columns {
        let seq = format!("{}.replicator_rowversion", quote_pg(&p.target.schema));
        let col = quote_pg(&c.target);
        let t = p.target.sql();
        tx.batch_execute(&format!(
            "ALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT int8send(nextval({}::regclass)); \
             DROP TRIGGER IF EXISTS replicator_rowversion ON {t}; \
             CREATE TRIGGER replicator_rowversion BEFORE UPDATE ON {t} FOR EACH ROW \
               EXECUTE FUNCTION {}.replicator_rowversion_bump({}, {})",
            crate::model::pg_literal(&seq),
            quote_pg(&p.target.schema),
            crate::model::pg_literal(&c.target),
            crate::model::pg_literal(&seq)
        ))
        .await
        .context(|| format!("make rowversion column {} of {t} generated", c.target))?;
        notes.push(format!(
            "rowversion {}.{}: generated on PostgreSQL (insert and update) from {seq}, after the source's @@DBTS {dbts}",
            p.target, c.target
        ));
    }
    Ok(notes)
}
