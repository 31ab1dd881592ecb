//! Before the write window, while the application still writes: every table gets a proof of
//! equality at a known position P1 (a full, lag-aware validation by the running daemon, with
//! differences repaired and checked again), and the foreign keys that hold are validated. Inside
//! the window only what changed since P1 is compared ([`super::check`]).
//!
//! Contract: changes nothing but what a `replicator validate --full --repair` changes (repaired
//! rows) and foreign keys' validated flag; a table that still differs after its repair refuses
//! the cutover before anything is fenced or stopped.

use super::Options;
use crate::config::Config;
use crate::error::{Context, Error};
use crate::model::quote_pg;
use crate::sink::progress::{self, Proof};
use std::time::{Duration, Instant};

/// Longest a single table's validation may take (a very large table, a slow source).
const VALIDATE_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Attempts per table: a repair is followed by another validation, which must find it equal.
const ATTEMPTS: usize = 3;

/// What happened before the window.
#[derive(Debug, Default)]
pub struct Before {
    /// Seconds spent validating.
    pub seconds: f64,
    /// Foreign keys validated.
    pub foreign_keys_validated: usize,
    /// What was reused, run, or left for the window, per table.
    pub notes: Vec<String>,
}

/// A proof is reused when it is at most `within` old (its other conditions are checked inside
/// the window, where they count).
pub fn recent(proof: &Proof, within: Duration) -> bool {
    let age_ms = crate::state::now_ms() - proof.at_ms;
    age_ms >= 0 && (age_ms as u128) <= within.as_millis()
}

/// Proves every streaming table equal through the daemon answering on the control socket, unless
/// a recent proof stands; then validates the foreign keys. `tables` are the source names.
pub async fn before_window(
    config: &Config,
    opts: &Options,
    tables: &[String],
) -> Result<Before, Error> {
    let started = Instant::now();
    let mut out = Before::default();
    let schema = &config.mapping.progress_schema;
    let pg = crate::sink::connect(&config.target).await?;
    for table in tables {
        let mut attempt = 0;
        let mut fresh = false;
        loop {
            let standing = progress::load(&pg, schema).await?;
            let proof = standing.get(table).and_then(|t| t.proof.clone());
            if let Some(p) = proof.filter(|p| recent(p, opts.validated_within)) {
                let age = (crate::state::now_ms() - p.at_ms).max(0) / 1000;
                let note = match fresh {
                    true => format!("{table}: proven equal at {} ({} rows)", p.position, p.rows),
                    false => format!(
                        "{table}: proven equal at {} {age} s ago ({} rows), reused",
                        p.position, p.rows
                    ),
                };
                eprintln!("cutover: {note}");
                out.notes.push(note);
                break;
            }
            if attempt == ATTEMPTS {
                let note = format!("{table}: no proof could be recorded in {ATTEMPTS} validations (its rows kept being rewritten); every row is compared inside the window");
                eprintln!("cutover: {note}");
                out.notes.push(note);
                break;
            }
            attempt += 1;
            eprintln!("cutover: {table}: comparing every row while the application still writes (before the window)");
            let t = Instant::now();
            let answer = crate::control::send(
                &config.control_socket,
                &crate::control::Request::Validate(crate::daemon::validation::Request {
                    table: Some(table.to_string()),
                    full: true,
                    repair: true,
                    views: false,
                }),
                VALIDATE_WAIT,
            )
            .await
            .ok_or_else(|| {
                Error::Fatal(format!(
                    "cutover refused, nothing changed: the daemon stopped answering while validating {table}"
                ))
            })?;
            if let Some(e) = answer["error"].as_str() {
                return Err(Error::Fatal(format!(
                    "cutover refused, nothing changed: validating {table} failed: {e}"
                )));
            }
            let r = &answer["results"][0];
            let result = r["result"].as_str().unwrap_or("?");
            eprintln!(
                "cutover: {table}: {result} ({} rows, {:.1} s)",
                r["source_rows"],
                t.elapsed().as_secs_f64()
            );
            match result {
                "equal" | "repaired" => fresh = true,
                "different" => {
                    let findings: Vec<&str> = r["findings"]
                        .as_array()
                        .map(|f| f.iter().filter_map(|x| x.as_str()).take(5).collect())
                        .unwrap_or_default();
                    return Err(Error::Fatal(format!(
                        "cutover refused, nothing changed: {table} differs from the source and could not be repaired: {}; hint: see `replicator validate --full --table {table}`, or `replicator resync --table {table}`",
                        findings.join("; ")
                    )));
                }
                _ => {
                    let note = format!(
                        "{table}: not validated before the window ({}); every row is compared inside it",
                        r["note"].as_str().unwrap_or(result)
                    );
                    eprintln!("cutover: {note}");
                    out.notes.push(note);
                    break;
                }
            }
        }
    }
    out.foreign_keys_validated = validate_constraints(&pg, &mut out.notes).await?;
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Validates the replicated tables' `NOT VALID` foreign keys and check constraints now, while the application writes
/// (a scan of each referencing table, which must not be inside the window). One that does not
/// hold yet (its rows in flight) is left for the window, where it is validated again.
async fn validate_constraints(
    pg: &tokio_postgres::Client,
    notes: &mut Vec<String>,
) -> Result<usize, Error> {
    let rows = pg
        .query(
            "SELECT n.nspname::text, c.relname::text, k.conname::text, \
             CASE k.contype WHEN 'c' THEN 'check constraint' ELSE 'foreign key' END FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE k.contype IN ('f', 'c') AND NOT k.convalidated \
             AND EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = $1)",
            &[&crate::sink::guard::TRIGGER],
        )
        .await
        .context(|| "list the foreign keys not validated yet".into())?;
    let mut validated = 0;
    for r in rows {
        let (schema, table, con, what): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let t = Instant::now();
        match pg
            .batch_execute(&format!(
                "ALTER TABLE {}.{} VALIDATE CONSTRAINT {}",
                quote_pg(&schema),
                quote_pg(&table),
                quote_pg(&con)
            ))
            .await
        {
            Ok(()) => {
                validated += 1;
                eprintln!(
                    "cutover: {schema}.{table}: {what} {con} validated ({:.1} s)",
                    t.elapsed().as_secs_f64()
                );
            }
            Err(e) => notes.push(format!(
                "{schema}.{table}: {what} {con} did not hold before the window ({}); validated again inside it",
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or(e.to_string())
            )),
        }
    }
    Ok(validated)
}
