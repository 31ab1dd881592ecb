//! The target write guard: until cutover, a replicated target table refuses writes from every
//! session but the replicator's, so the only writer of its rows is the replicator.
//!
//! Each replicated target table carries a statement-level `BEFORE INSERT OR UPDATE OR DELETE OR
//! TRUNCATE` trigger, `replicator_guard`, enabled `ALWAYS` (it fires under
//! `session_replication_role = replica` too). It raises unless the session set
//! [`WRITER_SETTING`] to `on`, which every session the replicator opens does ([`mark_session`]).
//! Being statement-level it costs one call per statement (a COPY, an apply's `INSERT ... SELECT`),
//! never one per row.
//!
//! What it proves, and what not: cutover's delta check ([`crate::cutover`]) relies on "no one
//! else wrote the table since the proof". A session can only get past the guard by declaring
//! itself the replicator (setting [`WRITER_SETTING`]) or by altering the trigger (disable, drop,
//! re-create, or replace its function), which only an owner can. The second is detected:
//! [`identity`] changes whenever the trigger's or its function's catalog row is touched (a
//! disable and re-enable included), and a proof taken under another identity is not used. The
//! first is trusted by design; cutover's row counts still catch a row added or removed that way,
//! and `--full-check-in-window` checks everything.
//!
//! Contract: [`ensure`] is idempotent and leaves an intact guard's catalog row untouched (so a
//! proof stays usable across daemon restarts); [`remove`] is idempotent.

use crate::error::{Context, Error};
use crate::model::{quote_pg, PgTableName};
use tokio_postgres::GenericClient;

/// The session setting that marks the replicator's own sessions.
pub const WRITER_SETTING: &str = "replicator.writer";

/// The trigger's name on every replicated target table.
pub const TRIGGER: &str = "replicator_guard";

const FUNCTION: &str = "refuse_foreign_write";

/// The trigger function's body: what [`identity`] requires it to be, word for word.
const BODY: &str = "
BEGIN
  IF coalesce(current_setting('replicator.writer', true), '') <> 'on' THEN
    RAISE EXCEPTION 'table %.% is replicated from SQL Server by replicator until cutover; writes from other sessions are refused', TG_TABLE_SCHEMA, TG_TABLE_NAME
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'write to SQL Server until `replicator cutover` has run';
  END IF;
  RETURN NULL;
END
";

/// Creates the trigger function in the progress schema, or restores it when its body was
/// changed (a warning: proofs taken under the changed one are void, see [`identity`]).
async fn ensure_function(pg: &impl GenericClient, schema: &str) -> Result<(), Error> {
    let body: Option<String> = pg
        .query_opt(
            "SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2",
            &[&schema, &FUNCTION],
        )
        .await
        .context(|| "look up the write guard function".into())?
        .map(|r| r.get(0));
    if body.as_deref() == Some(BODY) {
        return Ok(());
    }
    if body.is_some() {
        tracing::warn!(
            schema,
            "the write guard function was changed by someone else; restored"
        );
    }
    pg.batch_execute(&format!(
        "CREATE OR REPLACE FUNCTION {}.{}() RETURNS trigger LANGUAGE plpgsql AS $guard${BODY}$guard$",
        quote_pg(schema),
        quote_pg(FUNCTION)
    ))
    .await
    .context(|| format!("create the write guard function in schema {schema}"))
}

/// Marks a session as the replicator's: the guard lets its writes through.
pub async fn mark_session(pg: &impl GenericClient) -> Result<(), Error> {
    pg.batch_execute(&format!("SET {WRITER_SETTING} = 'on'"))
        .await
        .context(|| "mark the session as the replicator's".into())
}

/// Installs the guard on `table` (and the trigger function in the progress schema) unless an
/// enabled one is there already. Idempotent; an intact guard is left as it is. A table the
/// replicator's role does not own is left without a guard (a warning): it never gets a proof,
/// so cutover compares its every row.
pub async fn ensure(
    pg: &impl GenericClient,
    schema: &str,
    table: &PgTableName,
) -> Result<(), Error> {
    ensure_function(pg, schema).await?;
    let state: Option<String> = pg
        .query_opt(
            "SELECT tgenabled::text FROM pg_trigger WHERE tgrelid = $1::text::regclass AND tgname = $2",
            &[&table.sql(), &TRIGGER],
        )
        .await
        .context(|| format!("look up the write guard of {table}"))?
        .map(|r| r.get(0));
    if state.as_deref() == Some("A") {
        return Ok(());
    }
    let f = format!("{}.{}", quote_pg(schema), quote_pg(FUNCTION));
    let t = table.sql();
    let trig = quote_pg(TRIGGER);
    let sql = match state {
        None => format!(
            "CREATE TRIGGER {trig} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t} \
             FOR EACH STATEMENT EXECUTE FUNCTION {f}();
             ALTER TABLE {t} ENABLE ALWAYS TRIGGER {trig}"
        ),
        Some(_) => format!("ALTER TABLE {t} ENABLE ALWAYS TRIGGER {trig}"),
    };
    match pg.batch_execute(&sql).await {
        Ok(()) => {
            tracing::info!(target = %table, "write guard installed: only the replicator writes this table until cutover");
            Ok(())
        }
        // A table the replicator's role does not own (created beforehand by another role):
        // replication goes on without a guard, and cutover compares its every row.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            tracing::warn!(target = %table, "write guard not installed: the replicator's role does not own the table; cutover will compare every row of it inside the write window (hint: ALTER TABLE ... OWNER TO the replicator's role)");
            Ok(())
        }
        Err(e) => Err(e).context(|| format!("install the write guard on {table}")),
    }
}

/// The guard's identity: the oids of its trigger and trigger function and the transactions that
/// last wrote their catalog rows, `None` when it is missing, not enabled `ALWAYS`, or calls
/// anything but the genuine function ([`BODY`] in `schema`). Any change
/// to either (disabled and enabled again, dropped and created again, the function replaced)
/// gives another identity.
pub async fn identity(
    pg: &impl GenericClient,
    schema: &str,
    table: &PgTableName,
) -> Result<Option<String>, Error> {
    let row = pg
        .query_opt(
            "SELECT t.oid::text || ':' || t.xmin::text || '/' || p.oid::text || ':' || p.xmin::text \
             FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE t.tgrelid = to_regclass($1) AND t.tgname = $2 AND t.tgenabled = 'A' \
             AND n.nspname = $3 AND p.proname = $4 AND p.prosrc = $5",
            &[&table.sql(), &TRIGGER, &schema, &FUNCTION, &BODY],
        )
        .await
        .context(|| format!("read the write guard of {table}"))?;
    Ok(row.map(|r| r.get(0)))
}

/// Removes the guard from `table` (at cutover: the table is the application's now). Idempotent.
pub async fn remove(pg: &impl GenericClient, table: &PgTableName) -> Result<(), Error> {
    pg.batch_execute(&format!(
        "DROP TRIGGER IF EXISTS {} ON {}",
        quote_pg(TRIGGER),
        table.sql()
    ))
    .await
    .context(|| format!("remove the write guard of {table}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_function_checks_the_setting_the_replicator_sets() {
        assert!(super::BODY.contains(&format!(
            "current_setting('{}', true)",
            super::WRITER_SETTING
        )));
    }
}
