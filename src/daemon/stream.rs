//! Continuous replication: windows of changes read from CT and CDC, applied to PostgreSQL in one
//! transaction per window together with every table's new position.
//!
//! Contract: a window is (last, upper] per table; the target commits the rows and the positions
//! together, then the embedded store advances (never backwards). Retention loss is detected
//! before reading and handled by policy; it is never skipped.

use super::{connect_source, connect_target, Shared, TableRt};
use crate::config::Policies;
use crate::config::RetentionPolicy;
use crate::convert::value::to_value;
use crate::convert::{Losses, TablePlan};
use crate::error::{Backoff, Context, Error, ErrorKind};
use crate::model::ChangeSource;
use crate::model::{Lsn, Position, Value};
use crate::sink::apply::{Op, StageWriter, Stages};
use crate::sink::progress;
use crate::source::read::{key_display, KeyValue};
use crate::source::{self, Tds};
use crate::state::{TableRecord, TableState};
use futures_util::TryStreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiberius::Query;

struct Conns {
    tds: Tds,
    pg: tokio_postgres::Client,
    stages: Stages,
}

/// What one window did.
#[derive(Debug, Default)]
pub struct WindowReport {
    /// Changes applied (rows deleted + upserted).
    pub changes: u64,
    /// Tables whose history is gone (retention, TRUNCATE), with the reason.
    pub lost: Vec<(String, String)>,
    /// The window was cut short of the source's position: read the next one at once.
    pub more: bool,
}

/// Streams until stopped.
pub async fn run(shared: Arc<Shared>) -> Result<(), Error> {
    let mut conns: Option<Conns> = None;
    let mut backoff = Backoff::new(Duration::from_secs(30));
    let mut idle: u32 = 0;
    let poll = shared.config.poll_interval;
    loop {
        if shared.stopping() {
            return Ok(());
        }
        shared.lifecycle.beat();
        super::resync::start_requested(&shared).await?;
        if let Err(e) = super::reload::add_requested(&shared).await {
            if e.kind() == ErrorKind::Fatal {
                return Err(e);
            }
            // Taken in again at the next turn; replication goes on meanwhile.
            shared.note_transient(None, &e);
            shared.requests.reload();
        }
        let tables = streaming_tables(&shared)?;
        if tables.is_empty() {
            if shared.sleep_or_stop(poll).await {
                return Ok(());
            }
            continue;
        }
        if conns.is_none() {
            let tds = stream_session(&shared).await?;
            let pg = connect_target(&shared).await?;
            conns = Some(Conns {
                tds,
                pg,
                stages: Stages::default(),
            });
        }
        let Some(c) = conns.as_mut() else { continue };
        // A window in flight is abandoned on stop (its target transaction rolls back, nothing
        // is lost) and bounded in time (a lost reply must not stall replication forever).
        let gate = shared.apply_gate.lock().await;
        let began = Instant::now();
        let outcome = tokio::select! {
            r = tokio::time::timeout(WINDOW_TIMEOUT, window(&shared, c, &tables)) => r.unwrap_or_else(|_| Err(stalled("a change window"))),
            _ = shared.lifecycle.stopped() => return Ok(()),
        };
        drop(gate);
        shared
            .counters
            .windows
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        shared.counters.window_micros.fetch_add(
            began.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        match outcome {
            Ok(report) => {
                backoff.reset();
                for (t, why) in report.lost {
                    history_lost(&shared, &t, &why).await?;
                }
                maybe_create_foreign_keys(&shared, &c.pg).await?;
                if report.changes == 0 {
                    idle = (idle + 1).min(4);
                    // Back off while idle: poll, 2x, 4x... up to 8x the interval (at most 2 s more).
                    let wait = (poll * (1 << idle.min(3))).min(poll + Duration::from_secs(2));
                    if shared.sleep_or_stop(wait).await {
                        return Ok(());
                    }
                } else {
                    idle = 0;
                    if !report.more && shared.sleep_or_stop(poll).await {
                        return Ok(());
                    }
                }
            }
            Err(e) => match e.kind() {
                ErrorKind::Transient => {
                    shared.note_transient(None, &e);
                    conns = None;
                    if shared.sleep_or_stop(backoff.next_delay()).await {
                        return Ok(());
                    }
                }
                ErrorKind::Table => {
                    conns = None;
                    match &e {
                        Error::Table { table, .. } => shared.table_failed(&table.clone(), &e),
                        // A server error without a table: stop every streaming table would be
                        // wrong; retry after a pause and report it.
                        _ => {
                            shared.note_transient(None, &e);
                            if shared.sleep_or_stop(backoff.next_delay()).await {
                                return Ok(());
                            }
                        }
                    }
                }
                ErrorKind::Fatal => return Err(e),
            },
        }
    }
}

fn streaming_tables(shared: &Shared) -> Result<Vec<(String, TableRt, Position)>, Error> {
    let tables = shared.registry.runtimes()?;
    let mut out = Vec::new();
    for (name, rt) in tables {
        if rt.kind == ChangeSource::CopiedOnce {
            continue;
        }
        let Some(rec) = shared.store.table(&name)? else {
            continue;
        };
        if !matches!(rec.state, TableState::CatchingUp | TableState::Streaming) {
            continue;
        }
        if let Some(p) = super::resume_position(&rec) {
            out.push((name, rt, p));
        }
    }
    Ok(out)
}

/// How a change query's rows are laid out.
#[derive(Clone, Copy)]
enum Layout {
    /// `SYS_CHANGE_VERSION, deleted, key..., columns...` (CT).
    Ct,
    /// `__$start_lsn, __$operation, columns...` (CDC).
    Cdc,
    /// `columns...`: whole current rows (a backfill), staged as upserts.
    Rows,
}

/// Streams a change query's rows into the staging writer.
#[allow(clippy::too_many_arguments)]
async fn stage_rows(
    tds: &mut Tds,
    q: Query<'_>,
    name: &str,
    plan: &TablePlan,
    policies: &Policies,
    layout: Layout,
    writer: &mut StageWriter<'_, '_>,
    losses: &mut Losses,
) -> Result<(), Error> {
    let nkey = plan.key.len();
    let mut stream = q
        .query(tds)
        .await
        .context(|| format!("read changes of {name}"))?
        .into_row_stream();
    while let Some(row) = stream
        .try_next()
        .await
        .context(|| format!("read changes of {name}"))?
    {
        let cells: Vec<tiberius::ColumnData<'static>> = row.into_iter().collect();
        let (skip, delete, key_cells): (usize, bool, Vec<tiberius::ColumnData<'static>>) =
            match layout {
                Layout::Ct => {
                    let deleted = matches!(cells.get(1), Some(tiberius::ColumnData::I32(Some(1))));
                    (2 + nkey, deleted, cells[2..2 + nkey].to_vec())
                }
                Layout::Cdc => {
                    let op = match cells.get(1) {
                        Some(tiberius::ColumnData::I32(Some(v))) => *v,
                        _ => 0,
                    };
                    (
                        2,
                        op == 1,
                        plan.key.iter().map(|i| cells[2 + i].clone()).collect(),
                    )
                }
                Layout::Rows => (
                    0,
                    false,
                    plan.key.iter().map(|i| cells[*i].clone()).collect(),
                ),
            };
        let key: Vec<KeyValue> = key_cells.iter().map(KeyValue::from_cell).collect();
        let conv = |e: crate::convert::value::ConvertError| {
            Error::table(
                name,
                format!("{e} at key {}", key_display(plan, &key)),
                Some("change the policy or the column's type in the configuration, then restart"),
            )
        };
        if delete {
            let mut values = vec![Value::Null; plan.columns.len()];
            for (kc, ki) in key_cells.into_iter().zip(&plan.key) {
                values[*ki] = to_value(kc, &plan.columns[*ki], policies, losses).map_err(conv)?;
            }
            writer.push(Op::Delete, &values).await?;
        } else {
            let mut values = Vec::with_capacity(plan.columns.len());
            for (cell, col) in cells.into_iter().skip(skip).zip(&plan.columns) {
                values.push(to_value(cell, col, policies, losses).map_err(conv)?);
            }
            writer.push(Op::Upsert, &values).await?;
        }
    }
    Ok(())
}

/// One read of a capture instance's change table: which LSNs, bounded how.
struct CdcRead<'a> {
    instance: &'a str,
    range: source::cdc::Range,
    from: Lsn,
    to: Lsn,
}

/// Stages one CDC read's rows (every CDC read goes through here).
async fn stage_cdc(
    tds: &mut Tds,
    read: &CdcRead<'_>,
    name: &str,
    plan: &TablePlan,
    policies: &Policies,
    writer: &mut StageWriter<'_, '_>,
    losses: &mut Losses,
) -> Result<(), Error> {
    let mut q = Query::new(source::cdc::changes_sql(plan, read.instance, read.range));
    q.bind(read.from.0.to_vec());
    q.bind(read.to.0.to_vec());
    stage_rows(tds, q, name, plan, policies, Layout::Cdc, writer, losses).await
}

/// One table's outcome in a window.
struct Advance {
    name: String,
    position: Position,
    changes: u64,
    losses: Losses,
}

/// A window while it is read: its target transaction and staging, and what it gathers.
struct Building<'w, 'c> {
    shared: &'w Shared,
    tx: &'w tokio_postgres::Transaction<'c>,
    stages: &'w mut Stages,
    policies: &'w Policies,
    schema: &'w str,
    /// The source commit time of the oldest change read, on our clock: lag is measured from it.
    oldest_change: Option<Instant>,
    report: WindowReport,
    advanced: Vec<Advance>,
    replans: Vec<(String, TableRt)>,
}

/// Reads and applies one window for every streaming table: CT tables in one SNAPSHOT
/// transaction, CDC tables up to one upper LSN, all in one target transaction with every
/// table's new position and shape; then the embedded store advances in one transaction.
async fn window(
    shared: &Shared,
    c: &mut Conns,
    tables: &[(String, TableRt, Position)],
) -> Result<WindowReport, Error> {
    let schema = shared.config.mapping.progress_schema.clone();
    let policies = shared.config.policies.clone();
    let Conns { tds, pg, stages } = c;
    let tx = pg.transaction().await.context(|| "begin a window".into())?;
    stages.begin();
    let mut b = Building {
        shared,
        tx: &tx,
        stages,
        policies: &policies,
        schema: &schema,
        oldest_change: None,
        report: WindowReport::default(),
        advanced: Vec::new(),
        replans: Vec::new(),
    };
    let of_kind = |cdc: bool| -> Vec<&(String, TableRt, Position)> {
        tables
            .iter()
            .filter(|t| {
                matches!(t.1.kind, ChangeSource::Cdc(_)) == cdc
                    && t.1.kind != ChangeSource::CopiedOnce
            })
            .collect()
    };
    b.ct(tds, &of_kind(false)).await?;
    b.cdc(tds, &of_kind(true)).await?;
    let Building {
        oldest_change,
        report,
        advanced,
        replans,
        ..
    } = b;
    // A new shape is recorded with the rows written in it: a restart resumes from this shape.
    for (name, rt) in &replans {
        progress::record_shape(&tx, &schema, name, rt.shape()).await?;
    }
    tx.commit().await.context(|| "commit a window".into())?;
    let sources: Vec<(String, ChangeSource)> = replans
        .iter()
        .map(|(n, rt)| (n.clone(), rt.kind.clone()))
        .collect();
    for (name, rt) in replans {
        shared.registry.insert(name, rt)?;
    }
    let lag = match oldest_change {
        Some(t) if report.changes > 0 => t.elapsed().as_secs_f64(),
        _ => 0.0,
    };
    advance_store(shared, tables, &report, (advanced, sources), lag).await?;
    Ok(report)
}

/// The embedded store follows the committed window: every advanced table's position, counters
/// and losses, the change source of a table that took over a capture instance, and the
/// catching-up tables that are now streaming, in one store transaction run
/// off the async workers.
async fn advance_store(
    shared: &Shared,
    tables: &[(String, TableRt, Position)],
    report: &WindowReport,
    (advanced, mut sources): (Vec<Advance>, Vec<(String, ChangeSource)>),
    lag: f64,
) -> Result<(), Error> {
    let lost: Vec<&str> = report.lost.iter().map(|(t, _)| t.as_str()).collect();
    // Tables with nothing new are caught up too (unless their history is lost).
    let caught_up: Vec<String> = tables
        .iter()
        .map(|t| t.0.clone())
        .filter(|n| !lost.contains(&n.as_str()))
        .collect();
    let store = shared.store.clone();
    let mut source_of = |name: &str| {
        let i = sources.iter().position(|(n, _)| n == name)?;
        Some(sources.swap_remove(i).1)
    };
    let mut updates: Vec<crate::state::WindowUpdate> = advanced
        .into_iter()
        .map(|a| {
            let source = source_of(&a.name);
            let f: Box<dyn FnOnce(&mut TableRecord) + Send> =
                Box::new(move |r: &mut TableRecord| {
                    r.changes_applied += a.changes;
                    r.lag_seconds = lag;
                    r.source_position = Some(a.position);
                    super::merge_losses(r, &a.losses);
                    if source.is_some() {
                        r.change_source = source;
                    }
                });
            (a.name, a.position, f)
        })
        .collect();
    // A take-over that moved no position still records its new capture instance.
    for (name, source) in sources {
        if let Some((_, _, at)) = tables.iter().find(|t| t.0 == name) {
            let f: Box<dyn FnOnce(&mut TableRecord) + Send> =
                Box::new(move |r: &mut TableRecord| r.change_source = Some(source));
            updates.push((name, *at, f));
        }
    }
    // On the tracker: a stop that drops this window mid-write still waits for the store
    // transaction to end before the daemon counts as stopped.
    let streaming = shared
        .lifecycle
        .tasks
        .spawn_blocking(move || store.advance_window(updates, &caught_up))
        .await
        .map_err(|e| Error::panicked("state store", e))??;
    for name in streaming {
        tracing::info!(table = %name, "caught up: streaming");
    }
    Ok(())
}

impl Building<'_, '_> {
    /// Records a table's new position in the window's transaction, and what it applied.
    async fn advanced(
        &mut self,
        name: &str,
        position: Position,
        changes: u64,
        losses: Losses,
    ) -> Result<(), Error> {
        progress::record_position(self.tx, self.schema, name, &position).await?;
        self.advanced.push(Advance {
            name: name.to_string(),
            position,
            changes,
            losses,
        });
        self.report.changes += changes;
        Ok(())
    }

    /// Change Tracking: one SNAPSHOT transaction for every CT table.
    async fn ct(
        &mut self,
        tds: &mut Tds,
        ct: &[&(String, TableRt, Position)],
    ) -> Result<(), Error> {
        if ct.is_empty() {
            return Ok(());
        }
        let upper = source::ct::begin_window(tds).await?.ok_or_else(|| {
            Error::Fatal("Change Tracking was disabled on the source database".into())
        })?;
        let min_valid = source::ct::min_valid_versions(tds).await?;
        let oldest = ct
            .iter()
            .filter_map(|t| match t.2 {
                Position::Ct(v) if v < upper => Some(v),
                _ => None,
            })
            .min();
        if let Some(oldest) = oldest {
            note_age(
                &mut self.oldest_change,
                source::ct::age_ms(tds, oldest, upper).await?,
            );
        }
        // The columns as of this window, for every CT table in one round trip. A table's plan
        // is the shape its target rows are written in (recorded on the target with them, so a
        // restart resumes from it, not from what start-up discovery saw); any difference is
        // reconciled here before its changes are staged. Why a column added at any moment (while
        // the daemon was down, during start-up, between this read and the CHANGETABLE read)
        // loses no value: the change query reads only the plan's columns, so no window applies a
        // row in a shape the target lacks; the window that first sees the column adds it (no
        // default fill) and backfills, in this same SNAPSHOT transaction, every row whose value
        // in it is not NULL, with the position advancing to this window's upper bound; a value
        // written after that snapshot is a change after the bound, read by a later window whose
        // plan has the column. A column added after this read is simply seen by the next window.
        let ids: Vec<i32> = ct.iter().map(|t| t.1.plan.source.object_id).collect();
        let mut columns_now = crate::source::discover::columns_of(tds, &ids).await?;
        for (name, rt, pos) in ct.iter().map(|t| (&t.0, &t.1, &t.2)) {
            let Position::Ct(last) = *pos else { continue };
            if last >= upper {
                continue;
            }
            match min_valid.get(&rt.plan.source.object_id) {
                None => {
                    self.report.lost.push((
                        name.clone(),
                        "Change Tracking is no longer enabled on the table".into(),
                    ));
                    continue;
                }
                Some(mv) if last < *mv => {
                    self.report.lost.push((name.clone(), format!(
                        "changes after version {last} are gone (min valid version {mv}: retention cleanup or TRUNCATE)"
                    )));
                    continue;
                }
                _ => {}
            }
            let now = columns_now
                .remove(&rt.plan.source.object_id)
                .unwrap_or_default();
            let (rt, added) = self.reconcile(now, name, rt).await?;
            let plan = &rt.plan;
            let mut writer = self.stages.writer(self.tx, plan);
            let mut losses = Losses::default();
            backfill(
                tds,
                name,
                plan,
                &added,
                self.policies,
                &mut writer,
                &mut losses,
            )
            .await?;
            let mut q = Query::new(source::ct::changes_sql(plan, false));
            q.bind(last);
            q.bind(upper);
            stage_rows(
                tds,
                q,
                name,
                plan,
                self.policies,
                Layout::Ct,
                &mut writer,
                &mut losses,
            )
            .await?;
            let (d, u) = writer.apply(!added.is_empty()).await?;
            self.advanced(name, Position::Ct(upper), d + u, losses)
                .await?;
        }
        source::ct::end_window(tds).await
    }

    /// CDC: (last, upper] per capture instance, upper the max LSN or an earlier source
    /// transaction boundary when the window is big.
    async fn cdc(
        &mut self,
        tds: &mut Tds,
        cdc: &[&(String, TableRt, Position)],
    ) -> Result<(), Error> {
        if cdc.is_empty() {
            return Ok(());
        }
        let Some(max) = source::cdc::max_lsn(tds).await? else {
            return Ok(());
        };
        let instances = source::cdc::instances(tds).await?;
        let behind: Vec<(&str, Lsn)> = cdc
            .iter()
            .filter_map(|t| match (&t.2, &t.1.kind) {
                (Position::Cdc(l), ChangeSource::Cdc(ci)) if *l < max => Some((ci.as_str(), *l)),
                _ => None,
            })
            .collect();
        let upper =
            source::cdc::window_end(tds, &behind, max, self.shared.config.batch_rows).await?;
        self.report.more = upper < max;
        if let Some(oldest) = behind.iter().map(|b| b.1).min() {
            note_age(
                &mut self.oldest_change,
                source::cdc::age_ms(tds, oldest, upper).await?,
            );
        }
        for (name, rt, pos) in cdc.iter().map(|t| (&t.0, &t.1, &t.2)) {
            let (Position::Cdc(last), ChangeSource::Cdc(ci)) = (*pos, &rt.kind) else {
                continue;
            };
            if last >= upper {
                continue;
            }
            // All zeros (or nothing): the instance is gone.
            let min = source::cdc::min_lsn(tds, ci)
                .await?
                .filter(|m| *m != Lsn([0; 10]));
            match min {
                None => {
                    self.report.lost.push((
                        name.clone(),
                        format!("capture instance {ci} no longer exists"),
                    ));
                    continue;
                }
                Some(m) if last != Lsn([0; 10]) && last < m && !adjacent(&last, &m) => {
                    self.report.lost.push((
                        name.clone(),
                        format!(
                        "changes after LSN {last} are gone (capture instance {ci} starts at {m})"
                    ),
                    ));
                    continue;
                }
                _ => {}
            }
            // A newer instance takes over from its start.
            let newer = instances
                .get(&rt.plan.source.object_id)
                .and_then(|list| list.last())
                .filter(|(n, start)| n != ci && *start <= upper)
                .cloned();
            let mut losses = Losses::default();
            let changes = match newer {
                None => {
                    let read = CdcRead {
                        instance: ci,
                        range: source::cdc::Range::UpTo,
                        from: last,
                        to: upper,
                    };
                    self.cdc_read(tds, &read, name, &rt.plan, &[], &mut losses)
                        .await?
                }
                Some((new_ci, new_start)) => {
                    self.take_over(
                        tds,
                        name,
                        rt,
                        (ci, last),
                        (&new_ci, new_start),
                        upper,
                        &mut losses,
                    )
                    .await?
                }
            };
            self.advanced(name, Position::Cdc(upper), changes, losses)
                .await?;
        }
        Ok(())
    }

    /// Stages one CDC read (after a backfill of `added` columns, if any) and applies it;
    /// returns the rows applied.
    async fn cdc_read(
        &mut self,
        tds: &mut Tds,
        read: &CdcRead<'_>,
        name: &str,
        plan: &TablePlan,
        added: &[String],
        losses: &mut Losses,
    ) -> Result<u64, Error> {
        let mut writer = self.stages.writer(self.tx, plan);
        backfill(tds, name, plan, added, self.policies, &mut writer, losses).await?;
        stage_cdc(tds, read, name, plan, self.policies, &mut writer, losses).await?;
        let (d, u) = writer.apply(true).await?;
        Ok(d + u)
    }

    /// A newer capture instance takes over: the old instance up to the new one's start, with
    /// the old shape; then the new shape, its backfill and the new instance up to `upper`.
    #[allow(clippy::too_many_arguments)]
    async fn take_over(
        &mut self,
        tds: &mut Tds,
        name: &str,
        rt: &TableRt,
        (ci, last): (&str, Lsn),
        (new_ci, new_start): (&str, Lsn),
        upper: Lsn,
        losses: &mut Losses,
    ) -> Result<u64, Error> {
        let before = CdcRead {
            instance: ci,
            range: source::cdc::Range::Before,
            from: last,
            to: new_start,
        };
        let mut changes = self
            .cdc_read(tds, &before, name, &rt.plan, &[], losses)
            .await?;
        let id = rt.plan.source.object_id;
        let now = crate::source::discover::columns_of(tds, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        let (mut switched, added) = self.reconcile(now, name, rt).await?;
        switched.kind = ChangeSource::Cdc(new_ci.to_string());
        let from = CdcRead {
            instance: new_ci,
            range: source::cdc::Range::From,
            from: new_start,
            to: upper,
        };
        changes += self
            .cdc_read(tds, &from, name, &switched.plan, &added, losses)
            .await?;
        self.shared.store.journal(
            "capture_instance_switch",
            Some(name),
            format!("from {ci} to {new_ci} at {new_start}"),
        )?;
        tracing::info!(table = %name, from = %ci, to = %new_ci, "switched to the newer capture instance");
        self.replans.retain(|(n, _)| n != name);
        self.replans.push((name.to_string(), switched));
        Ok(changes)
    }

    /// Reconciles a table's columns with the source's; returns the (possibly new) runtime and
    /// the columns to backfill.
    async fn reconcile(
        &mut self,
        now: Vec<crate::model::SourceColumn>,
        name: &str,
        rt: &TableRt,
    ) -> Result<(TableRt, Vec<String>), Error> {
        let diff = super::schema::compare(&rt.plan.source.columns, &now);
        if diff.is_empty() {
            return Ok((rt.clone(), Vec::new()));
        }
        let (plan, added) =
            super::schema::apply(self.shared, self.tx, name, rt, now, &diff).await?;
        let new_rt = TableRt {
            plan,
            kind: rt.kind.clone(),
        };
        self.replans.push((name.to_string(), new_rt.clone()));
        Ok((new_rt, added))
    }
}

/// Stages every current row whose value in one of the `added` columns is not NULL (a column
/// added to the source: its values arrive with the window that first sees it). Nothing when no
/// column was added.
async fn backfill(
    tds: &mut Tds,
    name: &str,
    plan: &TablePlan,
    added: &[String],
    policies: &Policies,
    writer: &mut StageWriter<'_, '_>,
    losses: &mut Losses,
) -> Result<(), Error> {
    if added.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        plan.select_list(false),
        plan.source.name.tsql(),
        super::schema::backfill_filter(added)
    );
    stage_rows(
        tds,
        Query::new(sql),
        name,
        plan,
        policies,
        Layout::Rows,
        writer,
        losses,
    )
    .await
}

/// Moves `oldest` back to a change that was `age_ms` old when the source answered.
fn note_age(oldest: &mut Option<Instant>, age_ms: Option<i64>) {
    let Some(ms) = age_ms else { return };
    let at = Instant::now()
        .checked_sub(Duration::from_millis(ms.max(0) as u64))
        .unwrap_or_else(Instant::now);
    *oldest = Some(oldest.map_or(at, |o| o.min(at)));
}

/// Whether `b` is the LSN right after `a` (same VLF and block, next slot), the one case where
/// a min LSN above our position loses nothing.
fn adjacent(a: &Lsn, b: &Lsn) -> bool {
    let na = u128::from_be_bytes({
        let mut x = [0u8; 16];
        x[6..].copy_from_slice(&a.0);
        x
    });
    let nb = u128::from_be_bytes({
        let mut x = [0u8; 16];
        x[6..].copy_from_slice(&b.0);
        x
    });
    nb == na + 1
}

/// A table's change history is gone: re-snapshot it (default) or stop it, loudly either way.
async fn history_lost(shared: &Arc<Shared>, name: &str, why: &str) -> Result<(), Error> {
    tracing::error!(table = name, reason = why, "change history lost");
    match shared.config.policies.retention_loss {
        RetentionPolicy::Stop => {
            shared.table_failed(name, &Error::table(name, why, Some("run `replicator resync --table` to copy it again, or set policies.retention_loss = \"resnapshot\"")));
        }
        RetentionPolicy::Resnapshot => {
            shared
                .store
                .journal("resnapshot", Some(name), why.to_string())?;
            super::prepare_foreign_keys(shared)?;
            shared.set_state(name, TableState::Pending)?;
            if let Some(rt) = shared.registry.runtime(name)? {
                shared.spawn_snapshot(name, rt);
            }
        }
    }
    Ok(())
}

/// Creates the deferred foreign keys once every table streams (`NOT VALID`; cutover validates).
async fn maybe_create_foreign_keys(
    shared: &Shared,
    pg: &tokio_postgres::Client,
) -> Result<(), Error> {
    let pending = shared.registry.deferred_foreign_keys()?;
    if pending.is_empty() {
        return Ok(());
    }
    for (n, _) in &shared.registry.runtimes()? {
        match shared.store.table(n)?.map(|r| r.state) {
            Some(TableState::Streaming) => {}
            _ => return Ok(()),
        }
    }
    for (table, name, sql) in &pending {
        match pg.batch_execute(sql).await {
            Ok(()) => tracing::info!(
                table,
                constraint = name,
                "foreign key created (not valid until cutover)"
            ),
            Err(e) if e.code().is_some_and(|c| c.code() == "42710") => {}
            Err(e) => {
                tracing::warn!(table, constraint = name, error = %e, "foreign key not created");
            }
        }
    }
    shared.registry.set_deferred_foreign_keys(Vec::new())?;
    Ok(())
}

/// The CDC position that holds every transaction committed before the call: the max LSN once
/// the capture job has mapped a commit (or an idle marker) after that moment. When the job maps
/// nothing (an idle database whose server writes no markers), the max LSN once it has not moved
/// for the job's polling interval plus a second. The job reads the log every few seconds.
async fn cdc_settled(tds: &mut Tds, deadline: Instant) -> Result<Option<Lsn>, Error> {
    let settle = source::cdc::polling_interval(tds)
        .await
        .unwrap_or(Duration::from_secs(5))
        + Duration::from_secs(1);
    let horizon = source::cdc::commit_horizon(tds).await?;
    // Only a mapping made after this counts: an older one with a later time (the clock set
    // back) proves nothing about the commits before the horizon.
    let start = source::cdc::max_lsn(tds).await?;
    let mut last = None;
    let mut since = Instant::now();
    loop {
        let (max, mapped) = source::cdc::capture_progress(tds, &horizon).await?;
        if mapped.is_some_and(|m| Some(m) > start) {
            return Ok(max);
        }
        if max != last {
            (last, since) = (max, Instant::now());
        } else if since.elapsed() >= settle {
            tracing::warn!(
                settle_secs = settle.as_secs(),
                "the cdc capture job mapped nothing after the drain began; taking its max lsn as final because it did not move for the polling interval"
            );
            return Ok(last);
        }
        if Instant::now() > deadline {
            return Err(Error::Fatal(
                "the CDC capture job did not catch up before the cutover timeout: is SQL Server Agent running the capture job (EXEC sys.sp_cdc_help_jobs)?".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Applies windows until every streaming table has reached the source's position as of the call
/// (cutover's drain). CDC waits until the capture job has read past the drain's start
/// ([`cdc_settled`]).
pub async fn drain(shared: &Shared, deadline: Instant) -> Result<(), Error> {
    let tds = stream_session(shared).await?;
    let pg = connect_target(shared).await?;
    let mut conns = Conns {
        tds,
        pg,
        stages: Stages::default(),
    };
    let tables = streaming_tables(shared)?;
    let ct_final = if tables
        .iter()
        .any(|t| t.1.kind == ChangeSource::ChangeTracking)
    {
        source::ct::current_version(&mut conns.tds).await?
    } else {
        None
    };
    let mut cdc_final = None;
    if tables
        .iter()
        .any(|t| matches!(t.1.kind, ChangeSource::Cdc(_)))
    {
        cdc_final = cdc_settled(&mut conns.tds, deadline).await?;
    }
    loop {
        let tables = streaming_tables(shared)?;
        let behind = tables
            .iter()
            .filter(|(_, _, p)| match (p, ct_final, cdc_final) {
                (Position::Ct(v), Some(f), _) => *v < f,
                (Position::Cdc(l), _, Some(f)) => *l < f,
                _ => false,
            })
            .count();
        if behind == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Fatal(format!("{behind} table(s) did not reach the final source position before the cutover timeout")));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let report = tokio::time::timeout(
            left.min(WINDOW_TIMEOUT),
            window(shared, &mut conns, &tables),
        )
        .await
        .unwrap_or_else(|_| Err(stalled("a drain window")))?;
        if let Some((t, why)) = report.lost.first() {
            return Err(Error::table(
                t,
                format!("change history lost during cutover: {why}"),
                Some("resync the table, then run cutover again"),
            ));
        }
        if report.changes == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A source session for windows: SNAPSHOT isolation for every read (CT windows open their own
/// transaction; CDC reads see one consistent state and never take shared locks).
pub(crate) async fn stream_session(shared: &Shared) -> Result<Tds, Error> {
    let mut tds = connect_source(shared).await?;
    source::execute(
        &mut tds,
        "SET TRANSACTION ISOLATION LEVEL SNAPSHOT",
        "set snapshot isolation",
    )
    .await?;
    Ok(tds)
}

/// Longest a window may take before its sessions are dropped and it is retried.
pub const WINDOW_TIMEOUT: Duration = Duration::from_secs(300);

/// A transient error for an operation that stopped answering.
pub fn stalled(what: &str) -> Error {
    Error::Source {
        context: format!("{what} stopped answering; reconnecting"),
        source: tiberius::error::Error::Io {
            kind: std::io::ErrorKind::TimedOut,
            message: "no reply".into(),
        },
    }
}
