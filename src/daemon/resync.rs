//! `replicator resync --table s.t`: one table copied again while the others stream.
//!
//! Contract: the table is rediscovered (a changed column type is taken, the target table is
//! recreated when its shape no longer fits), emptied and copied from a new start position, then
//! it catches up like any snapshot. Runs in the streamer between windows, so no window touches
//! the table meanwhile. Offline (daemon stopped), [`mark`] records the request on the target and
//! in the store, and the next start copies it.

use super::{connect_source, connect_target, decide_change_source, Shared, TableRt};
use crate::convert::plan_tables;
use crate::error::Error;
use crate::sink::{ddl, progress};
use crate::source;
use crate::state::TableState;
use std::sync::Arc;

/// Queues a resync for the streamer; errors name the known tables when `name` is not one.
pub fn request(shared: &Shared, name: &str) -> Result<(), Error> {
    let known = shared.store.tables()?;
    if !known.iter().any(|(n, _)| n == name) {
        let names: Vec<&str> = known.iter().map(|(n, _)| n.as_str()).collect();
        return Err(Error::Fatal(format!(
            "resync: no replicated table {name} (known: {})",
            names.join(", ")
        )));
    }
    shared.requests.resync(name)
}

/// Starts the requested resyncs (called by the streamer between windows).
pub async fn start_requested(shared: &Arc<Shared>) -> Result<(), Error> {
    let todo: Vec<String> = shared.requests.take_resyncs()?;
    for name in todo {
        match start(shared, &name).await {
            Ok(()) => {}
            Err(e) if e.kind() == crate::error::ErrorKind::Fatal => return Err(e),
            // A connection hiccup: asked again at the next turn.
            Err(e) if e.kind() == crate::error::ErrorKind::Transient => {
                shared.note_transient(Some(&name), &e);
                request(shared, &name)?;
            }
            Err(e) => shared.table_failed(&name, &e),
        }
    }
    Ok(())
}

async fn start(shared: &Arc<Shared>, name: &str) -> Result<(), Error> {
    let cfg = &shared.config;
    let mut tds = connect_source(shared).await?;
    let db = source::database_info(&mut tds).await?;
    let discovered = source::discover::discover(&mut tds, db.cdc_enabled).await?;
    let planned = plan_tables(&discovered, &shared.registry.selectors()?, &cfg.mapping)
        .map_err(Error::Fatal)?;
    if let Some((_, why)) = planned
        .unplannable
        .iter()
        .find(|(t, _)| t.to_string() == name)
    {
        return Err(Error::table(name, why, Some(crate::convert::Planned::HINT)));
    }
    let mut plan = planned
        .plans
        .into_iter()
        .find(|p| p.source.name.to_string() == name)
        .ok_or_else(|| {
            Error::table(
                name,
                "resync: the table no longer exists at the source or is no longer selected",
                Some("check [[tables]] and the source"),
            )
        })?;
    let kind = decide_change_source(&plan, &db)?;
    let pg = connect_target(shared).await?;
    // Durable first: a crash from here on still copies the table again at the next start.
    progress::mark_resync(&pg, &cfg.mapping.progress_schema, name).await?;
    let recorded = progress::load(&pg, &cfg.mapping.progress_schema)
        .await?
        .remove(name)
        .and_then(|p| p.columns);
    ddl::replace_if_other_shape(&pg, &plan, recorded.as_deref()).await?;
    let mut notes = Vec::new();
    if !ddl::ensure_table(&pg, &plan, &mut notes).await? {
        ddl::fit_generated(&pg, &mut plan).await?;
    }
    crate::sink::guard::ensure(&pg, &cfg.mapping.progress_schema, &plan.target).await?;
    for n in &notes {
        n.log();
    }
    shared
        .store
        .journal("resync", Some(name), "requested: copying the table again")?;
    tracing::info!(table = name, "resync: copying the table again");
    shared.store.update(name, |old| {
        let mut r = old.unwrap_or_else(|| {
            crate::state::TableRecord::new(plan.target.to_string(), Some(kind.clone()), 0)
        });
        r.state = TableState::Pending;
        r.last_error = None;
        r.change_source = Some(kind.clone());
        r.target = plan.target.to_string();
        r
    })?;
    let rt = TableRt {
        plan: Arc::new(plan),
        kind,
    };
    shared.registry.insert(name.to_string(), rt.clone())?;
    super::prepare_foreign_keys(shared)?;
    shared.spawn_snapshot(name, rt);
    Ok(())
}

/// Offline resync: marks the table on the target's progress table (the next start copies it
/// again) and in the store. Fails when the table is unknown.
pub async fn mark(
    config: &crate::config::Config,
    store: &crate::state::Store,
    name: &str,
) -> Result<(), Error> {
    let known = store.tables()?;
    if !known.iter().any(|(n, _)| n == name) {
        let names: Vec<&str> = known.iter().map(|(n, _)| n.as_str()).collect();
        return Err(Error::Fatal(format!(
            "resync: no replicated table {name} (known: {})",
            names.join(", ")
        )));
    }
    let pg = crate::sink::connect(&config.target).await?;
    progress::ensure(&pg, &config.mapping.progress_schema).await?;
    progress::mark_resync(&pg, &config.mapping.progress_schema, name).await?;
    store.journal(
        "resync",
        Some(name),
        "requested while stopped: copied again at the next start",
    )?;
    store.update(name, |old| {
        let mut r = old.unwrap_or_else(crate::state::TableRecord::unknown);
        r.state = TableState::Pending;
        r.last_error = None;
        r
    })?;
    Ok(())
}
