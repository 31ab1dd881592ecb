//! The tables this run migrates, and what they are asked to do between windows.
//!
//! Contract: every accessor takes its lock for the call only and hands out copies; a poisoned
//! lock is [`Error::Poisoned`] naming it, never a panic.

use super::TableRt;
use crate::config::TableSelector;
use crate::error::Error;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A foreign key to create once every table streams: (target table, name, statement).
pub type DeferredForeignKey = (String, String, String);

/// The run's tables: their plans and change sources, the `[[tables]]` selectors in force, the
/// tables taken in (their stored state is the daemon's word), and the foreign keys waiting for
/// every table to stream.
pub struct Registry {
    tables: Mutex<BTreeMap<String, TableRt>>,
    taken_in: Mutex<BTreeSet<String>>,
    selectors: Mutex<Vec<TableSelector>>,
    deferred_fks: Mutex<Vec<DeferredForeignKey>>,
}

impl Registry {
    /// An empty registry under these selectors.
    pub fn new(selectors: Vec<TableSelector>) -> Registry {
        Registry {
            tables: Mutex::new(BTreeMap::new()),
            taken_in: Mutex::new(BTreeSet::new()),
            selectors: Mutex::new(selectors),
            deferred_fks: Mutex::new(Vec::new()),
        }
    }

    fn tables(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, TableRt>>, Error> {
        self.tables.lock().map_err(|_| Error::Poisoned("tables"))
    }

    /// Every table taken into the run, with its plan and change source (a copy).
    pub fn runtimes(&self) -> Result<Vec<(String, TableRt)>, Error> {
        Ok(self
            .tables()?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    /// One table's plan and change source (a copy).
    pub fn runtime(&self, name: &str) -> Result<Option<TableRt>, Error> {
        Ok(self.tables()?.get(name).cloned())
    }

    /// Adds a table, or replaces its plan and change source.
    pub fn insert(&self, name: String, rt: TableRt) -> Result<(), Error> {
        self.tables()?.insert(name, rt);
        Ok(())
    }

    /// Removes a table from the run (it stopped); a no-op for one not in it.
    pub fn remove(&self, name: &str) {
        if let Ok(mut t) = self.tables.lock() {
            t.remove(name);
        }
    }

    /// Records that this run took `name` in (its stored state is now the daemon's).
    pub fn mark_taken_in(&self, name: &str) {
        if let Ok(mut t) = self.taken_in.lock() {
            t.insert(name.to_string());
        }
    }

    /// The tables this run has taken in.
    pub fn taken_in(&self) -> BTreeSet<String> {
        self.taken_in.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The `[[tables]]` selectors in force.
    pub fn selectors(&self) -> Result<Vec<TableSelector>, Error> {
        Ok(self
            .selectors
            .lock()
            .map_err(|_| Error::Poisoned("selectors"))?
            .clone())
    }

    /// Puts `new` in force; false when it is what is in force already.
    pub fn replace_selectors(&self, new: &[TableSelector]) -> Result<bool, Error> {
        let mut s = self
            .selectors
            .lock()
            .map_err(|_| Error::Poisoned("selectors"))?;
        if *s == new {
            return Ok(false);
        }
        *s = new.to_vec();
        Ok(true)
    }

    /// The foreign keys still to create (a copy).
    pub fn deferred_foreign_keys(&self) -> Result<Vec<DeferredForeignKey>, Error> {
        Ok(self
            .deferred_fks
            .lock()
            .map_err(|_| Error::Poisoned("deferred_fks"))?
            .clone())
    }

    /// Sets the foreign keys to create (an empty list once they are created).
    pub fn set_deferred_foreign_keys(&self, fks: Vec<DeferredForeignKey>) -> Result<(), Error> {
        *self
            .deferred_fks
            .lock()
            .map_err(|_| Error::Poisoned("deferred_fks"))? = fks;
        Ok(())
    }
}

/// What operators asked of the streamer, which takes it between windows.
#[derive(Default)]
pub struct Requests {
    resync: Mutex<Vec<String>>,
    reload: AtomicBool,
}

impl Requests {
    /// Asks for `table` to be copied again (`replicator resync`).
    pub fn resync(&self, table: &str) -> Result<(), Error> {
        self.resync
            .lock()
            .map_err(|_| Error::Poisoned("resync_requests"))?
            .push(table.to_string());
        Ok(())
    }

    /// Takes the tables asked to be copied again (each once).
    pub fn take_resyncs(&self) -> Result<Vec<String>, Error> {
        Ok(std::mem::take(
            &mut *self
                .resync
                .lock()
                .map_err(|_| Error::Poisoned("resync_requests"))?,
        ))
    }

    /// Asks the streamer to take in the tables a reload selected.
    pub fn reload(&self) {
        self.reload.store(true, Ordering::SeqCst);
    }

    /// Whether a reload was asked for since the last call (the request is taken).
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::SeqCst)
    }

    /// Whether a reload waits to be taken (the request stays).
    pub fn reload_pending(&self) -> bool {
        self.reload.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_taken_once_and_selectors_change_only_when_different() {
        let r = Requests::default();
        r.resync("dbo.a").unwrap();
        r.resync("dbo.b").unwrap();
        assert_eq!(r.take_resyncs().unwrap(), ["dbo.a", "dbo.b"]);
        assert!(r.take_resyncs().unwrap().is_empty());
        assert!(!r.reload_pending() && !r.take_reload());
        r.reload();
        assert!(r.reload_pending());
        assert!(r.take_reload());
        assert!(!r.take_reload());

        let reg = Registry::new(Vec::new());
        assert!(!reg.replace_selectors(&[]).unwrap());
        let sel = TableSelector {
            source: "dbo.*".into(),
            ..Default::default()
        };
        assert!(reg.replace_selectors(std::slice::from_ref(&sel)).unwrap());
        assert!(!reg.replace_selectors(std::slice::from_ref(&sel)).unwrap());
        assert_eq!(reg.selectors().unwrap(), [sel]);
        reg.mark_taken_in("dbo.a");
        assert!(reg.taken_in().contains("dbo.a"));
        reg.remove("dbo.unknown");
        assert!(reg.runtimes().unwrap().is_empty());
    }
}
