//! The target's side of the fallback: a publication over the migrated tables and a logical
//! replication slot (`pgoutput`) that keeps every change made on PostgreSQL until SQL Server
//! holds it.
//!
//! Contract: [`ensure`] is idempotent and creates the publication before the slot (pgoutput
//! looks a publication up as of each change, so one made after the slot would fail the first
//! changes); the slot keeps every change committed after its creation. [`peek`] reads without
//! consuming: changes leave the slot only through [`advance`], called after SQL Server
//! committed them, so a crash in between reads them again (the SQL Server side skips what its
//! progress table already holds).

use super::decode::{decode, Message, PgLsn};
use crate::error::{Context, Error};
use crate::model::PgTableName;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// The publication's name (one per database).
pub const PUBLICATION: &str = "replicator_fallback";

pub use crate::config::slot_name;

/// One message read from the slot, with the LSN it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The LSN of the message.
    pub lsn: PgLsn,
    /// The decoded message.
    pub message: Message,
}

/// The slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// Changes before this are confirmed applied.
    pub confirmed_flush: Option<PgLsn>,
    /// WAL the slot keeps the server from recycling, in bytes.
    pub retained_bytes: i64,
    /// A session is reading from it now.
    pub active: bool,
}

/// `wal_level` of the target; logical decoding needs `logical`.
pub async fn wal_level(pg: &Client) -> Result<String, Error> {
    let row = pg
        .query_one("SHOW wal_level", &[])
        .await
        .context(|| "read wal_level on the target".into())?;
    Ok(row.get(0))
}

/// Creates the publication over `tables` and the slot, each unless it exists; returns the
/// LSN from which the slot keeps changes. Refuses, naming the setting, when `wal_level` is not
/// `logical`.
pub async fn ensure(pg: &Client, slot: &str, tables: &[PgTableName]) -> Result<PgLsn, Error> {
    let level = wal_level(pg).await?;
    if level != "logical" {
        return Err(Error::Fatal(format!(
            "the fallback needs wal_level = logical on the target (it is {level}): run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL"
        )));
    }
    let exists = pg
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&PUBLICATION],
        )
        .await
        .context(|| "look up the fallback publication".into())?
        .is_some();
    if !exists {
        let list = tables
            .iter()
            .map(|t| t.sql())
            .collect::<Vec<_>>()
            .join(", ");
        pg.batch_execute(&format!(
            "CREATE PUBLICATION {PUBLICATION} FOR TABLE {list}"
        ))
        .await
        .context(|| "create the fallback publication".into())?;
    }
    if let Some(state) = state(pg, slot).await? {
        return Ok(state.confirmed_flush.unwrap_or_default());
    }
    let row = pg
        .query_one(
            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .context(|| "create the fallback replication slot".into())?;
    row.get::<_, String>(0)
        .parse()
        .map_err(|e: String| Error::Fatal(format!("the new slot's LSN: {e}")))
}

/// The slot's state, `None` when there is no slot.
pub async fn state(pg: &Client, slot: &str) -> Result<Option<SlotState>, Error> {
    let row = pg
        .query_opt(
            "SELECT confirmed_flush_lsn::text, \
             COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint, active \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .context(|| "read the fallback slot".into())?;
    Ok(row.map(|r| SlotState {
        confirmed_flush: r.get::<_, Option<String>>(0).and_then(|s| s.parse().ok()),
        retained_bytes: r.get(1),
        active: r.get(2),
    }))
}

/// Reads (without consuming) the slot's next whole transactions, about `max_changes` messages;
/// a transaction is never cut.
///
/// Decoding reads only WAL PostgreSQL has flushed; transactions committed asynchronously
/// (`synchronous_commit = off`) would wait for the WAL writer, which sleeps up to seconds when
/// idle. So first a synchronous commit flushes everything before it: of a transaction that
/// writes only a logical decoding message (a commit that wrote no WAL is not flushed), which
/// pgoutput does not send (no `messages` option) and so adds no transaction to the stream.
pub async fn peek(pg: &Client, slot: &str, max_changes: i32) -> Result<Vec<Change>, Error> {
    Ok(peek_upto(pg, slot, max_changes).await?.0)
}

/// As [`peek`], with the WAL position decoding read up to: when nothing came back, every
/// transaction committed before it holds no change of the published tables, and the slot may
/// advance there (else it keeps WAL from its last applied commit for ever while idle).
pub async fn peek_upto(
    pg: &Client,
    slot: &str,
    max_changes: i32,
) -> Result<(Vec<Change>, PgLsn), Error> {
    let (changes, upto) = peek_stream(pg, slot, max_changes).await?;
    let changes: Vec<Change> = changes.try_collect().await?;
    Ok((changes, upto))
}

/// The session settings values are rendered in as text for [`super::inverse::literal`], by
/// decoding and by any query the fallback reads values with.
pub const RENDERING: &str = "SET DateStyle = ISO; SET TimeZone = 'UTC'; SET bytea_output = hex; \
     SET extra_float_digits = 3";

/// As [`peek_upto`], the changes read one at a time as PostgreSQL sends them, so a transaction
/// larger than memory is never held whole. While the stream is read, `pg` answers nothing else.
pub async fn peek_stream(
    pg: &Client,
    slot: &str,
    max_changes: i32,
) -> Result<(impl Stream<Item = Result<Change, Error>>, PgLsn), Error> {
    // Values arrive in their text form, rendered by this session: the forms
    // `inverse::literal` reads.
    pg.batch_execute(&format!(
        "{RENDERING}; SET synchronous_commit = on; BEGIN; \
         SELECT pg_logical_emit_message(true, 'replicator_fallback', 'flush'); COMMIT"
    ))
    .await
    .context(|| "flush the target's WAL before reading the fallback slot".into())?;
    let upto: String = pg
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .await
        .context(|| "read the target's flushed WAL position".into())?
        .get(0);
    let upto: PgLsn = upto.parse().map_err(Error::Fatal)?;
    let params: [&(dyn ToSql + Sync); 3] = [&slot, &max_changes, &PUBLICATION];
    let rows = pg
        .query_raw(
            "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
             'proto_version', '1', 'publication_names', $3)",
            params.iter().map(|p| *p as &dyn ToSql),
        )
        .await
        .context(|| "read the fallback slot".into())?;
    let changes = rows.map(|r| {
        let r = r.context(|| "read the fallback slot".into())?;
        let lsn: String = r.get(0);
        let data: Vec<u8> = r.get(1);
        let lsn = lsn.parse().map_err(Error::Fatal)?;
        let message =
            decode(&data).map_err(|e| Error::Fatal(format!("fallback: at {lsn}: {e}")))?;
        Ok(Change { lsn, message })
    });
    Ok((changes, upto))
}

/// Moves the slot past `lsn` (a commit's end): PostgreSQL may recycle the WAL before it.
/// Never moves backwards.
pub async fn advance(pg: &Client, slot: &str, lsn: PgLsn) -> Result<(), Error> {
    if state(pg, slot)
        .await?
        .and_then(|s| s.confirmed_flush)
        .is_some_and(|c| c >= lsn)
    {
        return Ok(());
    }
    pg.query_one(
        "SELECT end_lsn::text FROM pg_replication_slot_advance($1, $2::text::pg_lsn)",
        &[&slot, &lsn.to_string()],
    )
    .await
    .context(|| format!("advance the fallback slot to {lsn}"))?;
    Ok(())
}

/// Drops the slot and the publication (idempotent): PostgreSQL keeps no WAL for the fallback
/// from then on.
pub async fn drop_all(pg: &Client, slot: &str) -> Result<(), Error> {
    pg.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .context(|| "drop the fallback slot".into())?;
    pg.batch_execute(&format!("DROP PUBLICATION IF EXISTS {PUBLICATION}"))
        .await
        .context(|| "drop the fallback publication".into())?;
    Ok(())
}

/// What to tell a user about the fallback's slot found while no fallback runs (an interrupted
/// `cutover --fallback` leaves it): it keeps the target's WAL until dropped. `None` when there
/// is no such slot.
pub async fn orphan_warning(pg: &Client, slot: &str) -> Result<Option<String>, Error> {
    Ok(state(pg, slot).await?.map(|s| {
        format!(
            "replication slot {slot} exists on the target while no fallback runs (an interrupted `cutover --fallback` leaves it): it keeps {} bytes of WAL and more with every write until dropped; `replicator fallback stop` drops it, a `cutover --fallback` makes it anew, a plain `cutover` drops it",
            s.retained_bytes
        )
    }))
}

/// WAL bytes between PostgreSQL's current position and the slot's confirmed position: what SQL
/// Server does not hold yet (0 when there is no slot).
pub async fn lag_bytes(pg: &Client, slot: &str) -> Result<i64, Error> {
    let row = pg
        .query_opt(
            "SELECT COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .context(|| "read the fallback slot's lag".into())?;
    Ok(row.map(|r| r.get(0)).unwrap_or(0))
}
