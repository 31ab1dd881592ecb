//! SIGHUP: the configuration file is read again. New `[[tables]]` selectors are taken (their
//! tables are copied and then stream, while the others go on); every other change needs a
//! restart and is logged as ignored, naming what changed.
//!
//! Contract: an invalid file changes nothing (logged with the key at fault); a table that is no
//! longer selected keeps streaming until the next restart (logged).

use super::{connect_source, connect_target, register_table, Shared};
use crate::config::{self, Config};
use crate::convert::plan_tables;
use crate::error::Error;
use crate::sink::progress;
use crate::source;
use crate::state::TableState;
use std::path::Path;
use std::sync::Arc;

/// Reads the file again and takes what can be taken; never fails the daemon.
pub fn on_sighup(shared: &Shared, path: &Path) {
    let new = match config::load(path, &config::ProcessEnvironment) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "reload: the configuration is invalid; nothing changed");
            return;
        }
    };
    let ignored = changed_besides_tables(&shared.config, &new);
    if !ignored.is_empty() {
        tracing::warn!(
            changed = %ignored.join(", "),
            "reload: these settings need a restart; ignored"
        );
    }
    match shared.registry.replace_selectors(&new.tables) {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!("reload: no table selection changed");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "reload: the table selection could not be changed");
            return;
        }
    }
    shared.requests.reload();
    tracing::info!("reload: table selection changed; new tables are taken in");
}

/// The top-level sections whose settings differ (tables aside).
fn changed_besides_tables(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let d = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    if d(&old.source, &new.source) {
        out.push("source");
    }
    if d(&old.target, &new.target) {
        out.push("target");
    }
    if d(&old.state_dir, &new.state_dir) {
        out.push("state");
    }
    if d(&old.control_socket, &new.control_socket) {
        out.push("control");
    }
    if d(&old.mapping, &new.mapping) {
        out.push("mapping");
    }
    if d(&old.policies, &new.policies) {
        out.push("policies");
    }
    if (
        old.poll_interval,
        old.batch_rows,
        old.snapshot_chunk_rows,
        old.snapshot_workers,
    ) != (
        new.poll_interval,
        new.batch_rows,
        new.snapshot_chunk_rows,
        new.snapshot_workers,
    ) {
        out.push("replication");
    }
    if d(
        &(
            old.validation_interval,
            old.validation_mode,
            old.validation_sample_rows,
            old.validation_max_share,
            old.validation_checksums,
            old.validation_chunk_rows,
        ),
        &(
            new.validation_interval,
            new.validation_mode,
            new.validation_sample_rows,
            new.validation_max_share,
            new.validation_checksums,
            new.validation_chunk_rows,
        ),
    ) {
        out.push("validation");
    }
    out
}

/// Takes in the tables a reload newly selected (called by the streamer between windows).
pub async fn add_requested(shared: &Arc<Shared>) -> Result<(), Error> {
    if !shared.requests.take_reload() {
        return Ok(());
    }
    let cfg = &shared.config;
    let mut tds = connect_source(shared).await?;
    let db = source::database_info(&mut tds).await?;
    let discovered = source::discover::discover(&mut tds, db.cdc_enabled).await?;
    drop(tds);
    let planned = match plan_tables(&discovered, &shared.registry.selectors()?, &cfg.mapping) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "reload: the new table selection cannot be planned; nothing added");
            return Ok(());
        }
    };
    let known: Vec<String> = shared
        .registry
        .runtimes()?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let taken_in = shared.registry.taken_in();
    for (name, why) in &planned.unplannable {
        if !taken_in.contains(&name.to_string()) {
            super::unplannable(shared, name, why)?;
        }
    }
    let plans = planned.plans;
    for name in &known {
        if !plans.iter().any(|p| &p.source.name.to_string() == name) {
            tracing::warn!(table = %name, "reload: no longer selected; it streams until the next restart");
        }
    }
    let pg = connect_target(shared).await?;
    let mut committed = progress::load(&pg, &cfg.mapping.progress_schema).await?;
    let mut notes = Vec::new();
    let mut added = Vec::new();
    for plan in plans {
        let name = plan.source.name.to_string();
        if known.contains(&name) {
            continue;
        }
        register_table(shared, &pg, plan, &db, &mut committed, &mut notes).await?;
        shared.store.journal(
            "table_added",
            Some(&name),
            "selected by a configuration reload",
        )?;
        added.push(name);
    }
    for n in &notes {
        n.log();
    }
    super::prepare_foreign_keys(shared)?;
    for name in added {
        let rt = shared.registry.runtime(&name)?;
        let state = shared.store.table(&name)?.map(|r| r.state);
        if let (Some(rt), Some(TableState::Pending | TableState::Snapshotting)) = (rt, state) {
            tracing::info!(table = %name, "reload: copying the new table");
            shared.spawn_snapshot(&name, rt);
        }
    }
    Ok(())
}
