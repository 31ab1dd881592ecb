//! What rollback compares inside its window: the keys the fallback wrote after a proof, and the
//! keys that proof found different. A row outside both was equal when proven and was written by
//! neither side since (SQL Server's fence keeps applications out, PostgreSQL's changes reach it
//! only through the slot), so it is equal still.
//!
//! Contract: [`Changed`] holds every key of every window it was shown (a key change adds both
//! keys); [`compare`] checks exactly those keys on both sides, or says it cannot (a key type
//! the source cannot be asked by) so the caller compares the whole table.

use super::net::{KeyText, Window};
use crate::convert::TablePlan;
use crate::error::{Context, Error};
use crate::validate::by_key::{self, KeyBytes, RawOut};
use crate::validate::Suspect;
use std::collections::{HashMap, HashSet};

/// Keys a table's windows touched: its key columns' names (the relation's order) and the keys.
#[derive(Debug, Default)]
struct Touched {
    columns: Vec<String>,
    keys: HashSet<KeyText>,
}

/// The keys the fallback wrote, by target table (`schema`, `name`).
#[derive(Debug, Default)]
pub struct Changed {
    tables: HashMap<(String, String), Touched>,
}

impl Changed {
    /// Takes in every key of an applied window.
    pub fn add(&mut self, w: &Window) {
        for (oid, changes) in &w.tables {
            let Some(rel) = w.relations.get(oid) else {
                continue;
            };
            let t = self
                .tables
                .entry((rel.schema.clone(), rel.name.clone()))
                .or_default();
            t.columns = rel
                .columns
                .iter()
                .filter(|c| c.key)
                .map(|c| c.name.clone())
                .collect();
            t.keys.extend(changes.ends.iter().map(|(k, _)| k.clone()));
        }
    }

    /// Keys held, all tables together.
    pub fn len(&self) -> usize {
        self.tables.values().map(|t| t.keys.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The keys of `plan` to compare: those `changed` holds and the `suspects` of its proof, in both
/// sides' forms; `None` when one cannot be looked up on SQL Server by key (compare every row).
pub async fn keys(
    pg: &impl tokio_postgres::GenericClient,
    plan: &TablePlan,
    changed: &Changed,
    suspects: &[Suspect],
) -> Result<Option<Vec<(KeyBytes, crate::key::Key)>>, Error> {
    let mut out: HashMap<KeyBytes, crate::key::Key> = HashMap::new();
    for s in suspects {
        let Some(k) = &s.source_key else {
            return Ok(None);
        };
        out.insert(s.key.clone(), k.clone());
    }
    let key = (plan.target.schema.clone(), plan.target.name.clone());
    if let Some(t) = changed.tables.get(&key) {
        for bytes in key_bytes(pg, plan, &t.columns, &t.keys).await? {
            let Some(k) = by_key::source_key_from_bytes(plan, &bytes) else {
                return Ok(None);
            };
            out.insert(bytes, k);
        }
    }
    Ok(Some(out.into_iter().collect()))
}

/// Keys as PostgreSQL's text gave them, in the target's binary form (plan key order): each
/// value cast back to its column's type by PostgreSQL itself.
async fn key_bytes(
    pg: &impl tokio_postgres::GenericClient,
    plan: &TablePlan,
    columns: &[String],
    keys: &HashSet<KeyText>,
) -> Result<Vec<KeyBytes>, Error> {
    // Where each plan key column sits in the relation's key.
    let at: Vec<usize> = plan
        .key_columns()
        .map(|c| {
            columns.iter().position(|n| *n == c.target).ok_or_else(|| {
                Error::Fatal(format!(
                    "rollback: key column {} of {} is not in PostgreSQL's replica identity",
                    c.target, plan.target
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let types: Vec<String> = plan.key_columns().map(|c| c.declared_type()).collect();
    let keys: Vec<&KeyText> = keys
        .iter()
        .filter(|k| k.iter().all(Option::is_some))
        .collect();
    let mut out = Vec::with_capacity(keys.len());
    for batch in keys.chunks(500) {
        let mut params: Vec<&str> = Vec::new();
        let mut rows = Vec::new();
        for k in batch {
            let mut cells = Vec::new();
            for (i, ty) in at.iter().zip(&types) {
                params.push(k[*i].as_deref().unwrap_or_default());
                cells.push(format!("(${}::text)::{ty}", params.len()));
            }
            rows.push(format!("({})", cells.join(", ")));
        }
        let sql = format!("SELECT * FROM (VALUES {}) AS k", rows.join(", "));
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        for r in pg
            .query(&sql, &refs)
            .await
            .context(|| format!("rollback: the changed keys of {}", plan.target))?
        {
            let mut b = Vec::new();
            for i in 0..types.len() {
                let v: RawOut = r
                    .try_get(i)
                    .context(|| format!("rollback: the changed keys of {}", plan.target))?;
                match v.0 {
                    Some(v) => {
                        b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        b.extend_from_slice(&v);
                    }
                    None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
            out.push(b);
        }
    }
    Ok(out)
}
