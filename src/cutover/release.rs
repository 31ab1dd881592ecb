//! The release's two records, made safe against a kill between them: PostgreSQL's release
//! transaction (the guards go) and the store's record of it (tables `cut_over`, the fallback).
//!
//! Contract: an intent is written to the store before the release transaction and removed after
//! the store holds its outcome. An intent found at the next start is settled by what PostgreSQL
//! says, never guessed: the guards gone means the release committed, so the store is brought to
//! it (tables cut over, the fallback started with its slot); guards in place mean it did not,
//! so the intent goes and the tables stream on. Idempotent.

use crate::error::{Context, Error};
use crate::model::PgTableName;
use crate::sink::guard;
use crate::state::{FallbackRecord, Store, TableState};
use serde::{Deserialize, Serialize};

/// The store's key of the intent.
const KEY: &str = "release_intent";

/// What a release is about to make true.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// Source tables (`schema.table`) and their target tables.
    pub tables: Vec<(String, PgTableName)>,
    /// The fallback's slot and the LSN it keeps changes from, with `--fallback`.
    pub fallback: Option<(String, String)>,
}

/// Records the intent (before the release transaction begins).
pub fn record(store: &Store, intent: &Intent) -> Result<(), Error> {
    store.set_meta(KEY, &Some(intent))
}

/// Brings the store to a committed release: every table cut over, the fallback started, the
/// intent removed. Idempotent.
pub fn finish(store: &Store, intent: &Intent) -> Result<(), Error> {
    for (name, _) in &intent.tables {
        store.update(name, |old| {
            let mut r = old.unwrap_or_else(crate::state::TableRecord::unknown);
            r.state = TableState::CutOver;
            r.last_error = None;
            r
        })?;
    }
    if let Some((slot, since_lsn)) = &intent.fallback {
        if !store
            .fallback()?
            .is_some_and(|f| f.active && f.slot == *slot)
        {
            store.set_fallback(&FallbackRecord {
                slot: slot.clone(),
                since_lsn: since_lsn.clone(),
                started_ms: crate::state::now_ms(),
                active: true,
                ..Default::default()
            })?;
            store.journal(
                "fallback_started",
                None,
                format!("slot {slot} keeps PostgreSQL's changes from {since_lsn}"),
            )?;
        }
    }
    store.set_meta(KEY, &None::<Intent>)
}

/// Settles an intent a killed cutover left (see the module's contract); returns what it did,
/// `None` when there was none.
pub async fn settle(
    store: &Store,
    config: &crate::config::Config,
) -> Result<Option<String>, Error> {
    let Some(intent) = store.meta::<Option<Intent>>(KEY)?.flatten() else {
        return Ok(None);
    };
    let pg = crate::sink::connect(&config.target).await?;
    let targets: Vec<String> = intent.tables.iter().map(|(_, t)| t.sql()).collect();
    let guarded: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_trigger g JOIN unnest($1::text[]) AS t(name) \
             ON g.tgrelid = to_regclass(t.name) WHERE g.tgname = $2",
            &[&targets, &guard::TRIGGER],
        )
        .await
        .context(|| "look for the guards of an interrupted cutover's release".into())?
        .get(0);
    let what = if guarded == 0 {
        finish(store, &intent)?;
        format!(
            "an interrupted cutover had released {} on PostgreSQL: recorded cut over{}; its downtime report was lost",
            match intent.tables.len() {
                1 => "1 table".to_string(),
                n => format!("{n} tables"),
            },
            match &intent.fallback {
                Some((slot, _)) => format!(", and the fallback runs from slot {slot}"),
                None => String::new(),
            }
        )
    } else {
        store.set_meta(KEY, &None::<Intent>)?;
        "an interrupted cutover had not released the tables: they stream on; run cutover again"
            .to_string()
    };
    store.journal("cutover_settled", None, what.clone())?;
    tracing::warn!("{what}");
    Ok(Some(what))
}
