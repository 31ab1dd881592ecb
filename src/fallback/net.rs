//! A window of PostgreSQL transactions reduced to each table's net effect: per key, the row it
//! ends with or its deletion. Applied in one SQL Server transaction, the window's intermediate
//! states never matter; only the end does, as in the forward stream.
//!
//! Contract: [`Window::add`] takes messages in the slot's order and refuses what the fallback
//! cannot carry (a truncate, a table without a key, a relation it was not told of), naming the
//! table; a key change is a deletion of the old key and a row at the new one; an untouched
//! TOASTed value (not sent) is taken from an earlier change of the same row in the window, or
//! left for SQL Server to keep.

use super::decode::{Cell, Message, PgLsn, Relation};
use std::collections::{BTreeMap, HashMap};

/// A row as text cells in the relation's column order.
pub type Row = Vec<Cell>;

/// A key: its columns' text values.
pub type KeyText = Vec<Option<String>>;

/// What a key ends the window as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// This row (cells `Unchanged` keep SQL Server's value).
    Row(Row),
    /// Deleted.
    Deleted,
}

/// Whether a key had a row before its first change here: PostgreSQL's first change of it says
/// (an insert: no; an update or delete: yes), unless the changes came from elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// No row (its first change was an insert, or a key moved onto it).
    Absent,
    /// A row (its first change was an update or a delete).
    Present,
    /// Not known (kept changes, a backfill): written so either way ends right.
    Unknown,
}

/// One relation's net changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableChanges {
    /// By key, in first-touched order.
    pub ends: Vec<(KeyText, End)>,
    /// For each of `ends`, whether the key had a row before.
    pub before: Vec<Before>,
    index: HashMap<KeyText, usize>,
}

impl TableChanges {
    /// Records what `key` ends as (the last word wins), whether it had a row before unknown.
    pub fn set(&mut self, key: KeyText, end: End) {
        self.set_before(key, end, Before::Unknown);
    }

    /// Records what `key` ends as; `before` counts only for its first change.
    pub fn set_before(&mut self, key: KeyText, end: End, before: Before) {
        match self.index.get(&key) {
            Some(&i) => self.ends[i].1 = end,
            None => {
                self.index.insert(key.clone(), self.ends.len());
                self.ends.push((key, end));
                self.before.push(before);
            }
        }
    }

    fn current(&self, key: &KeyText) -> Option<&End> {
        self.index.get(key).map(|&i| &self.ends[i].1)
    }

    /// Takes `later`'s ends on top of these: the last word wins, and a later row's untouched
    /// large values come from this one's row for the key.
    pub fn then(&mut self, later: &TableChanges) {
        for (key, end) in &later.ends {
            let end = match (end, self.current(key)) {
                (End::Row(row), Some(End::Row(prev))) => {
                    let mut row = row.clone();
                    fill_unchanged(&mut row, prev);
                    End::Row(row)
                }
                (end, _) => end.clone(),
            };
            self.set(key.clone(), end);
        }
    }
}

/// Whole transactions read from the slot, reduced.
#[derive(Debug, Default)]
pub struct Window {
    /// Relations described so far in this reading session, by OID.
    pub relations: HashMap<u32, Relation>,
    /// Net changes by relation OID.
    pub tables: BTreeMap<u32, TableChanges>,
    /// The end LSN of the last whole transaction taken in.
    pub end: Option<PgLsn>,
    /// Transactions taken in.
    pub transactions: u64,
    /// Row changes taken in (before reduction).
    pub changes: u64,
    /// The end of the last commit SQL Server holds (its progress): a transaction whose commit
    /// record starts before it is held already, read past, not applied again. One whose commit
    /// starts exactly there (the next record in the WAL) is not held.
    pub applied_through: Option<PgLsn>,
    /// Transactions read past for that reason.
    pub skipped: u64,
    skipping: bool,
    /// Row changes of the transaction in progress taken in since it began or since the last
    /// [`Window::take_part`].
    open_changes: u64,
}

impl Window {
    /// A window that reads past what SQL Server's progress says it holds.
    pub fn after(applied_through: Option<PgLsn>) -> Window {
        Window {
            applied_through,
            ..Window::default()
        }
    }

    /// Takes one message in; `Err` names the table and why the fallback cannot carry it.
    pub fn add(&mut self, m: Message) -> Result<(), String> {
        match &m {
            Message::Begin { final_lsn, .. } => {
                // `final_lsn` is where the commit record starts, the progress where the last
                // applied one ends: equal when the two commits are adjacent in the WAL.
                self.skipping = self.applied_through.is_some_and(|d| *final_lsn < d);
                self.open_changes = 0;
            }
            Message::Commit { end_lsn, .. } if self.skipping => {
                self.skipping = false;
                self.skipped += 1;
                self.end = Some(*end_lsn);
                return Ok(());
            }
            Message::Insert { .. }
            | Message::Update { .. }
            | Message::Delete { .. }
            | Message::Truncate { .. }
                if self.skipping =>
            {
                return Ok(());
            }
            _ => {}
        }
        match m {
            Message::Relation(r) => {
                if r.replica_identity != b'f' && !r.columns.iter().any(|c| c.key) {
                    return Err(format!(
                        "table {}.{} has no replica identity key: its updates and deletes cannot be found on SQL Server",
                        r.schema, r.name
                    ));
                }
                self.relations.insert(r.oid, r);
            }
            Message::Commit { end_lsn, .. } => {
                self.end = Some(end_lsn);
                self.transactions += 1;
                self.open_changes = 0;
            }
            Message::Insert { rel, new } => {
                let key = self.key_of(rel, &new)?;
                self.changes += 1;
                self.open_changes += 1;
                self.tables
                    .entry(rel)
                    .or_default()
                    .set_before(key, End::Row(new), Before::Absent);
            }
            Message::Update { rel, old, new } => {
                let new_key = self.key_of(rel, &new)?;
                self.changes += 1;
                self.open_changes += 1;
                let t = self.tables.entry(rel).or_default();
                let mut row = new;
                if let Some(old) = old {
                    let rel_cols = &self.relations[&rel].columns;
                    let old_key: KeyText = key_cells(rel_cols, &old);
                    if old_key != new_key {
                        // The row moves: what it had here (or on SQL Server) is taken along.
                        if let Some(End::Row(prev)) = t.current(&old_key).cloned() {
                            fill_unchanged(&mut row, &prev);
                        } else if row.contains(&Cell::Unchanged) {
                            return Err(format!(
                                "a key change of table {} carries a large value PostgreSQL did not send; \
                                 set REPLICA IDENTITY FULL on it",
                                self.name(rel)
                            ));
                        }
                        t.set_before(old_key, End::Deleted, Before::Present);
                        // The new key had no row (or one deleted earlier here, whose entry
                        // keeps its first word).
                        t.set_before(new_key, End::Row(row), Before::Absent);
                        return Ok(());
                    }
                }
                if let Some(End::Row(prev)) = t.current(&new_key).cloned() {
                    fill_unchanged(&mut row, &prev);
                }
                t.set_before(new_key, End::Row(row), Before::Present);
            }
            Message::Delete { rel, old } => {
                let cols = &self
                    .relations
                    .get(&rel)
                    .ok_or_else(|| format!("a change of relation {rel} before its description"))?
                    .columns;
                let key = key_cells(cols, &old);
                self.changes += 1;
                self.open_changes += 1;
                self.tables
                    .entry(rel)
                    .or_default()
                    .set_before(key, End::Deleted, Before::Present);
            }
            Message::Truncate { rels, .. } => {
                let names: Vec<String> = rels.iter().map(|r| self.name(*r)).collect();
                return Err(format!(
                    "TRUNCATE of {} on PostgreSQL: the fallback does not carry it (delete the rows instead, or stop the fallback)",
                    names.join(", ")
                ));
            }
            Message::Begin { .. } | Message::Other(_) => {}
        }
        Ok(())
    }

    /// Row changes of the transaction in progress since it began or since the last part was
    /// taken (0 between transactions).
    pub fn open_changes(&self) -> u64 {
        self.open_changes
    }

    /// Takes the changes so far out as a window of their own, for a transaction too large to
    /// hold whole: the part is applied inside the SQL Server transaction the rest of it commits
    /// in. The relations, the position and the transaction in progress stay; the part has no
    /// end (its last transaction is not whole), and the window's later changes of a key come
    /// after the part's (SQL Server has the part's rows by then, in that transaction).
    pub fn take_part(&mut self) -> Window {
        self.open_changes = 0;
        Window {
            relations: self.relations.clone(),
            tables: std::mem::take(&mut self.tables),
            changes: std::mem::take(&mut self.changes),
            ..Window::default()
        }
    }

    fn name(&self, rel: u32) -> String {
        self.relations
            .get(&rel)
            .map(|r| format!("{}.{}", r.schema, r.name))
            .unwrap_or_else(|| format!("with OID {rel}"))
    }

    fn key_of(&self, rel: u32, row: &Row) -> Result<KeyText, String> {
        let r = self
            .relations
            .get(&rel)
            .ok_or_else(|| format!("a change of relation {rel} before its description"))?;
        Ok(key_cells(&r.columns, row))
    }
}

fn key_cells(cols: &[super::decode::RelColumn], row: &Row) -> KeyText {
    cols.iter()
        .zip(row)
        .filter(|(c, _)| c.key)
        .map(|(_, cell)| match cell {
            Cell::Text(t) => Some(t.clone()),
            Cell::Null | Cell::Unchanged => None,
        })
        .collect()
}

fn fill_unchanged(row: &mut Row, prev: &Row) {
    for (cell, p) in row.iter_mut().zip(prev) {
        if *cell == Cell::Unchanged {
            *cell = p.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fallback::decode::RelColumn;

    fn rel() -> Message {
        Message::Relation(Relation {
            oid: 7,
            schema: "public".into(),
            name: "t".into(),
            replica_identity: b'd',
            columns: vec![
                RelColumn {
                    key: true,
                    name: "id".into(),
                    type_oid: 23,
                    type_mod: -1,
                },
                RelColumn {
                    key: false,
                    name: "v".into(),
                    type_oid: 25,
                    type_mod: -1,
                },
            ],
        })
    }

    fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn a_window_keeps_each_keys_end() {
        let mut w = Window::default();
        w.add(rel()).unwrap();
        w.add(Message::Insert {
            rel: 7,
            new: vec![t("1"), t("a")],
        })
        .unwrap();
        w.add(Message::Insert {
            rel: 7,
            new: vec![t("2"), t("big")],
        })
        .unwrap();
        // Key 1 moves to 3; 2 is updated with its large value untouched; 4 comes and goes.
        w.add(Message::Update {
            rel: 7,
            old: Some(vec![t("1"), Cell::Null]),
            new: vec![t("3"), t("a")],
        })
        .unwrap();
        w.add(Message::Update {
            rel: 7,
            old: None,
            new: vec![t("2"), Cell::Unchanged],
        })
        .unwrap();
        w.add(Message::Insert {
            rel: 7,
            new: vec![t("4"), t("x")],
        })
        .unwrap();
        w.add(Message::Delete {
            rel: 7,
            old: vec![t("4"), Cell::Null],
        })
        .unwrap();
        // 5 is updated with a value not sent and no earlier row here: SQL Server keeps its own.
        w.add(Message::Update {
            rel: 7,
            old: None,
            new: vec![t("5"), Cell::Unchanged],
        })
        .unwrap();
        w.add(Message::Commit {
            commit_lsn: PgLsn(9),
            end_lsn: PgLsn(10),
            commit_time: 0,
        })
        .unwrap();
        let ends: Vec<(KeyText, End)> = w.tables[&7].ends.clone();
        let k = |s: &str| vec![Some(s.to_string())];
        assert_eq!(
            ends,
            vec![
                (k("1"), End::Deleted),
                (k("2"), End::Row(vec![t("2"), t("big")])),
                (k("3"), End::Row(vec![t("3"), t("a")])),
                (k("4"), End::Deleted),
                (k("5"), End::Row(vec![t("5"), Cell::Unchanged])),
            ]
        );
        // Whether SQL Server had each key before: 1, 2, 3 (moved onto) and 4 no; 5 yes.
        assert_eq!(
            w.tables[&7].before,
            [
                Before::Absent,
                Before::Absent,
                Before::Absent,
                Before::Absent,
                Before::Present
            ]
        );
        assert_eq!((w.end, w.transactions, w.changes), (Some(PgLsn(10)), 1, 7));
        assert!(w
            .add(Message::Truncate {
                rels: vec![7],
                options: 0
            })
            .unwrap_err()
            .contains("public.t"));
        assert!(w
            .add(Message::Insert {
                rel: 8,
                new: vec![]
            })
            .is_err());
    }

    #[test]
    fn a_large_transaction_is_taken_out_in_parts_that_keep_the_relations() {
        let mut w = Window::default();
        w.add(rel()).unwrap();
        w.add(Message::Begin {
            final_lsn: PgLsn(100),
            commit_time: 0,
            xid: 1,
        })
        .unwrap();
        for id in ["1", "2", "3"] {
            w.add(Message::Insert {
                rel: 7,
                new: vec![t(id), t("a")],
            })
            .unwrap();
        }
        assert_eq!(w.open_changes(), 3);
        let part = w.take_part();
        assert_eq!(part.tables[&7].ends.len(), 3);
        assert_eq!(part.end, None, "a part is not a whole transaction");
        assert!(part.relations.contains_key(&7));
        assert!(w.tables.is_empty());
        assert_eq!(w.open_changes(), 0);
        // The rest of the transaction: an update of a row of the part is an update here.
        w.add(Message::Update {
            rel: 7,
            old: None,
            new: vec![t("2"), t("b")],
        })
        .unwrap();
        w.add(Message::Commit {
            commit_lsn: PgLsn(100),
            end_lsn: PgLsn(101),
            commit_time: 0,
        })
        .unwrap();
        assert_eq!(w.open_changes(), 0);
        assert_eq!(w.end, Some(PgLsn(101)));
        assert_eq!(w.tables[&7].before, [Before::Present]);
    }

    #[test]
    fn a_commit_starting_where_the_progress_ends_is_applied_one_before_is_read_past() {
        // SQL Server holds everything up to the end of a commit at 200. A transaction whose
        // commit record starts before it is that one or older; one starting at 200 is the
        // next record in the WAL, and PostgreSQL sends it from a slot confirmed at 200.
        let mut w = Window::after(Some(PgLsn(200)));
        w.add(rel()).unwrap();
        for (commit, id) in [(PgLsn(150), "1"), (PgLsn(200), "2")] {
            w.add(Message::Begin {
                final_lsn: commit,
                commit_time: 0,
                xid: 1,
            })
            .unwrap();
            w.add(Message::Insert {
                rel: 7,
                new: vec![t(id), t("a")],
            })
            .unwrap();
            w.add(Message::Commit {
                commit_lsn: commit,
                end_lsn: PgLsn(commit.0 + 50),
                commit_time: 0,
            })
            .unwrap();
        }
        assert_eq!(w.skipped, 1);
        let keys: Vec<_> = w.tables[&7].ends.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, [vec![Some("2".to_string())]]);
        assert_eq!(w.end, Some(PgLsn(250)));
    }
}
