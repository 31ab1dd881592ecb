//! `replicator rollback`: SQL Server becomes the primary again, with every write made on
//! PostgreSQL, proven, with a measured downtime.
//!
//! Order: the fallback's daemon stops; PostgreSQL's writes to the migrated tables are fenced (the
//! write guards again, in one transaction, which waits for the writers in flight); the slot is
//! drained into SQL Server; every row of every table is compared (the same per-bucket
//! checksums as cutover's, computed by both databases where they can); then SQL Server's fence
//! is lowered, identities are set past PostgreSQL's values, the slot is dropped. The downtime is
//! from PostgreSQL's fence to SQL Server's release.
//!
//! Contract: refused, changing nothing, when the fallback has an unapplied window (its error);
//! when a table differs after the drain, PostgreSQL's fence is lifted again and the fallback goes
//! on (SQL Server received the drained changes, which it would have anyway). Once every table is
//! proven the release only goes forward: it is recorded (`FallbackRecord.releasing`) before
//! SQL Server is touched, and a kill or an error inside it leaves PostgreSQL fenced for the next
//! `rollback` to finish (the daemon refuses to carry changes meanwhile). Columns SQL Server
//! computes (computed, rowversion) are not compared: it made them anew.

use crate::config::Config;
use crate::convert::TablePlan;
use crate::daemon::{self, Shared};
use crate::error::{Context, Error};
use crate::fallback::delta::{self, Changed};
use crate::fallback::{slot, stream};
use crate::sink::{guard, progress};
use crate::state::{now_ms, Store};
use crate::validate::by_key;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One table compared after the drain.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    /// SQL Server's `schema.table`.
    pub table: String,
    /// Rows at SQL Server.
    pub source_rows: i64,
    /// Rows at PostgreSQL.
    pub target_rows: i64,
    /// `equal` or `different`.
    pub result: String,
    /// What the window compared: `changed keys` (those written since the proof, and those it
    /// found different) or `every row`.
    pub checked: String,
    /// Keys compared inside the window (with `changed keys`).
    pub keys: usize,
    /// What differs (at most 20, by key).
    pub findings: Vec<String>,
}

/// Seconds each part took: the first two before the window (PostgreSQL still the primary),
/// the others inside it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollbackParts {
    /// Applying what the slot held before the window.
    pub catch_up: f64,
    /// Comparing every row before the window.
    pub proof: f64,
    /// Fencing PostgreSQL's writes.
    pub fence: f64,
    /// Applying what the slot still held.
    pub drain: f64,
    /// Comparing the rows written since the proof, and those it found different.
    pub validate: f64,
    /// Lowering SQL Server's fence and setting identities.
    pub release: f64,
}

/// What `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// SQL Server is the primary again.
    pub ok: bool,
    /// From PostgreSQL's fence to SQL Server's release (seconds).
    pub downtime_seconds: f64,
    /// The window's parts.
    pub parts: RollbackParts,
    /// Every table.
    pub tables: Vec<TableCheck>,
    /// Identities and sequences set on SQL Server after PostgreSQL's last value: (name, value).
    pub identities_reseeded: Vec<(String, i64)>,
    /// Why it did not complete.
    pub problems: Vec<String>,
    /// When it finished (RFC 3339).
    pub finished_at: String,
}

/// Runs the rollback. `timeout` bounds the fence's wait for writers and the drain.
pub async fn run(config: Config, timeout: Duration) -> Result<RollbackReport, Error> {
    crate::control::request(&config.control_socket, &crate::control::Request::Stop).await;
    let waited = Instant::now();
    let store = loop {
        match Store::open(&config.state_dir) {
            Ok(s) => break s,
            Err(e) if waited.elapsed() > Duration::from_secs(60) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut rec = store.fallback()?.filter(|r| r.active).ok_or_else(|| {
        Error::Fatal("rollback refused: no active fallback (cutover --fallback makes one)".into())
    })?;
    if rec.releasing {
        return finish_interrupted(daemon::shared(config, store), rec).await;
    }
    if let Some(e) = &rec.last_error {
        return Err(Error::Fatal(format!(
            "rollback refused, nothing changed: the fallback's last window was not applied: {}",
            e.message
        )));
    }
    let shared = daemon::shared(config, store);
    let mut s = stream::Session::open(&shared).await?;
    let stopped = crate::fallback::parked::stopped(&mut s.tds, &rec.slot).await?;
    if !stopped.is_empty() {
        let why: Vec<String> = stopped
            .iter()
            .map(|t| {
                let reason = rec
                    .stopped_tables
                    .iter()
                    .find(|r| r.table == *t)
                    .map_or("SQL Server cannot take its changes".to_string(), |r| {
                        r.message.clone()
                    });
                format!("{t} is stopped: {reason}")
            })
            .collect();
        return Err(Error::Fatal(format!(
            "rollback refused, nothing changed: {}; hint: change the value on PostgreSQL (the table resumes with its next change), then roll back",
            why.join("; ")
        )));
    }
    let mut parts = RollbackParts::default();
    // Before the window, while the application still writes on PostgreSQL: catch up, then
    // prove every table. Nothing is applied to SQL Server from the proof's start to the
    // window, and everything applied after is in `changed`.
    let t = Instant::now();
    stream::catch_up(&shared, &mut s, &mut rec, t + timeout).await?;
    parts.catch_up = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let proofs = prove(&shared, &mut s).await?;
    parts.proof = t.elapsed().as_secs_f64();
    let mut changed = Changed::default();
    let window = Instant::now();
    fence_postgresql(&shared, &s, timeout).await?;
    parts.fence = window.elapsed().as_secs_f64();
    let t = Instant::now();
    if let Err(e) = stream::drain(&shared, &mut s, &mut rec, window + timeout, &mut changed).await {
        unfence_postgresql(&shared, &s).await?;
        return Err(e);
    }
    parts.drain = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let tables = compare(&shared, &mut s, &proofs, &changed).await?;
    parts.validate = t.elapsed().as_secs_f64();
    let problems: Vec<String> = tables
        .iter()
        .filter(|c| c.result != "equal")
        .map(|c| {
            format!(
                "{} differs after the drain: {}",
                c.table,
                c.findings.join("; ")
            )
        })
        .collect();
    let mut identities_reseeded = Vec::new();
    if problems.is_empty() {
        // Proven: from here the release only goes forward. Recorded first, so a kill or an
        // error inside it leaves PostgreSQL fenced and the next `rollback` finishes it.
        rec.releasing = true;
        rec.fenced_ms = Some(now_ms() - window.elapsed().as_millis() as i64);
        rec.updated_ms = now_ms();
        shared.store.set_fallback(&rec)?;
        let t = Instant::now();
        identities_reseeded = release(&shared, &mut s, &rec.slot).await.map_err(|e| {
            Error::Fatal(format!(
                "rollback: every table was proven equal, but the release of SQL Server stopped: {e}; PostgreSQL stays fenced: run `replicator rollback` again to finish the release"
            ))
        })?;
        parts.release = t.elapsed().as_secs_f64();
    }
    let ok = problems.is_empty();
    let downtime = window.elapsed().as_secs_f64();
    if ok {
        rec.active = false;
        rec.releasing = false;
        rec.updated_ms = now_ms();
        shared.store.set_fallback(&rec)?;
    } else {
        unfence_postgresql(&shared, &s).await?;
    }
    shared.store.journal(
        "rollback",
        None,
        if ok {
            format!("complete: SQL Server is the primary again; downtime {downtime:.2} s")
        } else {
            format!("refused after the drain: {}", problems.join("; "))
        },
    )?;
    Ok(RollbackReport {
        ok,
        downtime_seconds: downtime,
        parts,
        tables,
        identities_reseeded,
        problems,
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Finishes a release a killed (or failed) rollback began after proving every table: the same
/// idempotent steps (identities, SQL Server's fence, the slot), then the fallback ends.
/// PostgreSQL's guards, committed before the proof's window, kept its tables unwritten since.
async fn finish_interrupted(
    shared: Arc<Shared>,
    mut rec: crate::state::FallbackRecord,
) -> Result<RollbackReport, Error> {
    let mut s = stream::Session::open(&shared).await?;
    let t = Instant::now();
    let identities_reseeded = release(&shared, &mut s, &rec.slot).await?;
    // Writes were refused on both sides from the interrupted run's fence until now.
    let downtime = rec.fenced_ms.map(|f| (now_ms() - f).max(0) as f64 / 1000.0);
    rec.active = false;
    rec.releasing = false;
    rec.updated_ms = now_ms();
    shared.store.set_fallback(&rec)?;
    shared.store.journal(
        "rollback",
        None,
        match downtime {
            Some(d) => format!("complete: an interrupted release finished; SQL Server is the primary again; downtime {d:.2} s since the interrupted run fenced PostgreSQL"),
            None => "complete: an interrupted release finished; SQL Server is the primary again (the interrupted run did not record when it fenced PostgreSQL, so the downtime is unknown)".into(),
        },
    )?;
    Ok(RollbackReport {
        ok: true,
        downtime_seconds: downtime.unwrap_or(0.0),
        parts: RollbackParts {
            release: t.elapsed().as_secs_f64(),
            ..Default::default()
        },
        tables: Vec::new(),
        identities_reseeded,
        problems: vec![],
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// The write guards on every migrated table, in one transaction (it waits for the writers in
/// flight, at most `timeout`).
async fn fence_postgresql(
    shared: &Shared,
    s: &stream::Session,
    timeout: Duration,
) -> Result<(), Error> {
    let schema = &shared.config.mapping.progress_schema;
    progress::ensure(&s.pg, schema).await?;
    s.pg.batch_execute(&format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'",
        timeout.as_millis().max(1)
    ))
    .await
    .context(|| "rollback: begin the fence on PostgreSQL".into())?;
    for p in &s.plans {
        if let Err(e) = guard::ensure(&s.pg, schema, &p.target).await {
            let _ = s.pg.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    }
    s.pg.batch_execute("COMMIT")
        .await
        .context(|| "rollback: commit the fence on PostgreSQL".into())
}

/// Lifts PostgreSQL's fence (a refused rollback: PostgreSQL stays the primary).
async fn unfence_postgresql(shared: &Shared, s: &stream::Session) -> Result<(), Error> {
    let _ = shared;
    for p in &s.plans {
        guard::remove(&s.pg, &p.target).await?;
    }
    Ok(())
}

/// The plan without the columns SQL Server computes itself (computed, rowversion).
fn comparable(plan: &TablePlan) -> TablePlan {
    let computed = |name: &str| {
        plan.source.columns.iter().any(|c| {
            c.name == name
                && (c.computed.is_some()
                    || matches!(c.source_type.name.as_str(), "timestamp" | "rowversion"))
        })
    };
    let mut p = plan.clone();
    let keep: Vec<bool> = p
        .columns
        .iter()
        .map(|c| c.key || !computed(&c.source))
        .collect();
    let mut new_index = Vec::new();
    let mut n = 0;
    for k in &keep {
        new_index.push(n);
        if *k {
            n += 1;
        }
    }
    p.key = p.key.iter().map(|&i| new_index[i]).collect();
    let mut i = 0;
    p.columns.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    p
}

/// One table's proof before the window: equal but for the keys it lists (rows still in the
/// slot, or different), or not made (compare every row inside the window).
struct TableProof {
    plan: TablePlan,
    suspects: Option<Vec<crate::validate::Suspect>>,
}

/// Compares every row of every table while PostgreSQL's application writes and nothing is
/// applied to SQL Server: the differences are the rows still in the slot, or real ones; the
/// window compares them again.
async fn prove(shared: &Shared, s: &mut stream::Session) -> Result<Vec<TableProof>, Error> {
    let mut out = Vec::new();
    let plans: Vec<TablePlan> = s.plans.iter().map(comparable).collect();
    for plan in plans {
        let o = full_compare(shared, s, &plan).await?;
        eprintln!(
            "rollback: {}: proven before the window ({} rows, {} to compare again)",
            plan.source.name, o.source_rows, o.differing
        );
        // Every differing key must be known to look it up again; else the window compares all.
        let suspects = (o.suspects.len() == o.differing).then_some(o.suspects);
        out.push(TableProof { plan, suspects });
    }
    Ok(out)
}

async fn full_compare(
    shared: &Shared,
    s: &mut stream::Session,
    plan: &TablePlan,
) -> Result<crate::validate::Outcome, Error> {
    let tx =
        s.pg.build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .context(|| "rollback: begin reading the target".into())?;
    let o = crate::validate::full(
        &mut s.tds,
        &tx,
        plan,
        &shared.config.policies,
        &Default::default(),
        crate::validate::FullOptions::configured(&shared.config, 1.0),
    )
    .await?;
    tx.commit()
        .await
        .context(|| "rollback: end reading the target".into())?;
    Ok(o)
}

/// Inside the window: per table, the keys written since the proof and those the proof found
/// different; every row where the proof could not name its keys.
async fn compare(
    shared: &Shared,
    s: &mut stream::Session,
    proofs: &[TableProof],
    changed: &Changed,
) -> Result<Vec<TableCheck>, Error> {
    let mut out = Vec::new();
    for p in proofs {
        let plan = &p.plan;
        let keys = match &p.suspects {
            Some(suspects) => delta::keys(&s.pg, plan, changed, suspects).await?,
            None => None,
        };
        let check = match keys {
            Some(keys) => {
                let findings =
                    by_key::compare(&mut s.tds, &s.pg, plan, &shared.config.policies, &keys)
                        .await?;
                TableCheck {
                    table: plan.source.name.to_string(),
                    source_rows: -1,
                    target_rows: -1,
                    result: if findings.is_empty() {
                        "equal"
                    } else {
                        "different"
                    }
                    .into(),
                    checked: "changed keys".into(),
                    keys: keys.len(),
                    findings: findings
                        .iter()
                        .take(20)
                        .map(|(k, what)| format!("{k}: {what}"))
                        .collect(),
                }
            }
            None => {
                let o = full_compare(shared, s, plan).await?;
                TableCheck {
                    table: plan.source.name.to_string(),
                    source_rows: o.source_rows,
                    target_rows: o.target_rows,
                    result: if o.equal() { "equal" } else { "different" }.into(),
                    checked: "every row".into(),
                    keys: 0,
                    findings: o.findings.iter().take(20).cloned().collect(),
                }
            }
        };
        out.push(check);
    }
    Ok(out)
}

/// SQL Server's fence lowered, identities set after PostgreSQL's values, the slot dropped.
async fn release(
    shared: &Arc<Shared>,
    s: &mut stream::Session,
    slot_name: &str,
) -> Result<Vec<(String, i64)>, Error> {
    let mut reseeded = Vec::new();
    for p in &s.plans {
        let Some(id) = p.columns.iter().find(|c| c.identity) else {
            continue;
        };
        // PostgreSQL's identity may have handed out values whose rows are gone: SQL Server
        // continues after the highest it ever gave.
        let row =
            s.pg.query_one(
                &format!(
                    "SELECT GREATEST(COALESCE((SELECT max({c})::bigint FROM {t}), 0), \
                     COALESCE((SELECT last_value FROM pg_sequences \
                      WHERE format('%I.%I', schemaname, sequencename)::regclass = \
                      pg_get_serial_sequence($1, $2)::regclass), 0))",
                    c = crate::model::quote_pg(&id.target),
                    t = p.target.sql()
                ),
                &[&p.target.sql(), &id.target],
            )
            .await
            .context(|| format!("rollback: read the identity of {}", p.target))?;
        let high: i64 = row.get(0);
        let current = crate::source::query_rows(
            &mut s.tds,
            &format!(
                "SELECT CAST(IDENT_CURRENT({}) AS bigint)",
                crate::model::tsql_literal(&p.source.name.tsql())
            ),
            "rollback: read SQL Server's identity",
        )
        .await?
        .first()
        .and_then(|r| r.get::<i64, _>(0))
        .unwrap_or(0);
        if high > current {
            crate::source::execute(
                &mut s.tds,
                &format!(
                    "DBCC CHECKIDENT ({}, RESEED, {high}) WITH NO_INFOMSGS",
                    crate::model::tsql_literal(&p.source.name.tsql())
                ),
                "rollback: set SQL Server's identity",
            )
            .await?;
            reseeded.push((p.source.name.to_string(), high));
        }
    }
    // Sequences PostgreSQL drew from (NEXT VALUE FOR defaults): SQL Server's continue after.
    let sequences: Vec<_> = crate::source::discover::sequences(&mut s.tds)
        .await?
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    for q in crate::sink::ddl::sequences_for(&sequences, &s.plans) {
        let t = crate::convert::sequence_target(&q.name, &shared.config.mapping);
        let last: Option<i64> = s
            .pg
            .query_one(
                "SELECT last_value FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename)::regclass = $1::text::regclass",
                &[&t.sql()],
            )
            .await
            .context(|| format!("rollback: read sequence {t}"))?
            .get(0);
        if let Some(last) = last.filter(|&l| l > q.current) {
            let next = last.saturating_add(q.increment);
            crate::source::execute(
                &mut s.tds,
                &format!("ALTER SEQUENCE {} RESTART WITH {next}", q.name.tsql()),
                "rollback: continue SQL Server's sequence",
            )
            .await?;
            reseeded.push((q.name.to_string(), last));
        }
    }
    for (_, drop) in super::fence::leftovers(&mut s.tds).await? {
        crate::source::execute(&mut s.tds, &drop, "rollback: lower SQL Server's fence").await?;
    }
    slot::drop_all(&s.pg, slot_name).await?;
    crate::fallback::apply::forget(&mut s.tds, slot_name).await?;
    let _ = shared;
    Ok(reseeded)
}
