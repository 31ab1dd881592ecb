//! A child table whose rows refer to rows a stopped parent keeps aside: SQL Server's foreign
//! key would refuse them, so the child stops too (its changes kept aside with the parent's)
//! instead of refusing the whole window; the other tables go on.
//!
//! Contract: a child row blocks when its foreign key's values are the key of a row the parent
//! keeps aside that SQL Server may not have (its first change an insert, or not known; compared
//! as PostgreSQL's text of them, which both sides' rows come in). A foreign key on
//! other columns than the parent's key cannot be matched so: any row the child writes blocks.
//! Deletions never block (SQL Server has the parent row they left).

use super::decode::{Cell, Relation};
use super::net::{Before, End, KeyText, TableChanges};
use crate::convert::TablePlan;
use std::collections::{HashMap, HashSet};

/// The keys of rows each stopped table (source `schema.table`) keeps aside that SQL Server may
/// not have.
pub type KeptKeys = HashMap<String, HashSet<KeyText>>;

/// The keys of `changes` whose rows SQL Server may not have: rows whose first change was not
/// an update (deleted keys and updated rows it has).
pub fn maybe_absent(changes: &TableChanges) -> HashSet<KeyText> {
    changes
        .ends
        .iter()
        .enumerate()
        .filter(|(i, (_, end))| {
            matches!(end, End::Row(_)) && changes.before.get(*i) != Some(&Before::Present)
        })
        .map(|(_, (k, _))| k.clone())
        .collect()
}

/// Why `changes` of `plan` cannot be written while the tables in `kept` are stopped; `None`
/// when they can.
pub fn reason(
    plan: &TablePlan,
    relation: &Relation,
    changes: &TableChanges,
    plans: &[TablePlan],
    kept: &KeptKeys,
) -> Option<String> {
    for fk in &plan.source.foreign_keys {
        let parent = fk.references.to_string();
        let Some((parent_name, keys)) = kept.iter().find(|(t, _)| t.eq_ignore_ascii_case(&parent))
        else {
            continue;
        };
        let rows = changes.ends.iter().filter_map(|(_, e)| match e {
            End::Row(r) => Some(r),
            End::Deleted => None,
        });
        let Some(at) = key_positions(plan, relation, fk, plans, parent_name) else {
            if rows.count() > 0 {
                return Some(format!(
                    "its rows refer to {parent_name} (foreign key {}), which is stopped: SQL Server would refuse them until it resumes",
                    fk.name
                ));
            }
            continue;
        };
        for row in rows {
            let key: Option<KeyText> = at
                .iter()
                .map(|&i| match row.get(i) {
                    Some(Cell::Text(s)) => Some(Some(s.clone())),
                    _ => None, // NULL refers to nothing; an unsent value was not changed
                })
                .collect();
            if let Some(key) = key.filter(|k| keys.contains(k)) {
                let shown: Vec<&str> = key.iter().map(|v| v.as_deref().unwrap_or("")).collect();
                return Some(format!(
                    "a row refers to {parent_name} key ({}) through foreign key {}, a row SQL Server does not have yet ({parent_name} is stopped)",
                    shown.join(", "),
                    fk.name
                ));
            }
        }
    }
    None
}

/// For each of the parent's key columns (its table order, as PostgreSQL sends keys), the
/// position in `relation` of the child column referring to it; `None` when the foreign key
/// is not on exactly the parent's key.
fn key_positions(
    plan: &TablePlan,
    relation: &Relation,
    fk: &crate::model::SourceForeignKey,
    plans: &[TablePlan],
    parent_name: &str,
) -> Option<Vec<usize>> {
    let parent = plans
        .iter()
        .find(|p| p.source.name.to_string() == parent_name)?;
    let parent_key: Vec<&str> = parent
        .columns
        .iter()
        .filter(|c| c.key)
        .map(|c| c.source.as_str())
        .collect();
    if parent_key.len() != fk.ref_columns.len() {
        return None;
    }
    parent_key
        .iter()
        .map(|k| {
            let j = fk
                .ref_columns
                .iter()
                .position(|r| r.eq_ignore_ascii_case(k))?;
            let child = plan
                .columns
                .iter()
                .find(|c| c.source.eq_ignore_ascii_case(&fk.columns[j]))?;
            relation.columns.iter().position(|c| c.name == child.target)
        })
        .collect()
}
