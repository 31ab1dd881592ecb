//! The benches' change workload: 70/20/10 update/insert/delete in transactions of 10 changes,
//! at an offered rate over several connections, through one statement (`$1` ids to update,
//! `$2` ids to insert, `$3` ids to delete) that returns how many rows it changed.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running workload.
pub struct Load {
    /// Rows changed so far.
    pub changes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts `conns` connections to `url` running `statement` at `rate` changes/s in total: ids
/// to update among `1..=rows`, new ids from `next_id`, and a row each connection inserted
/// earlier to delete.
pub fn start(
    url: String,
    statement: &'static str,
    rate: u64,
    conns: usize,
    rows: i64,
    next_id: Arc<AtomicU64>,
) -> Load {
    let changes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for k in 0..conns {
        let (url, changes, stop, next_id) =
            (url.clone(), changes.clone(), stop.clone(), next_id.clone());
        handles.push(tokio::spawn(async move {
            let c = crate::common::pg(&url).await;
            let stmt = c.prepare(statement).await.unwrap();
            let per_conn = rate as f64 / conns as f64 / 10.0;
            let start = Instant::now();
            let mut done = 0u64;
            let mut mine: std::collections::VecDeque<i64> = Default::default();
            let mut rng = fastrand::Rng::with_seed(k as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * per_conn) as u64;
                if done >= due {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                    continue;
                }
                let ups: Vec<i64> = (0..7).map(|_| rng.i64(1..=rows)).collect();
                let ins: Vec<i64> = (0..2)
                    .map(|_| next_id.fetch_add(1, Ordering::Relaxed) as i64)
                    .collect();
                let del: Vec<i64> = match mine.len() > 100 {
                    true => mine.pop_front().into_iter().collect(),
                    false => vec![],
                };
                mine.extend(ins.iter().copied());
                let n: i64 = c
                    .query_one(&stmt, &[&ups, &ins, &del])
                    .await
                    .unwrap()
                    .get(0);
                changes.fetch_add(n as u64, Ordering::Relaxed);
                done += 1;
            }
        }));
    }
    Load {
        changes,
        stop,
        handles,
    }
}

impl Load {
    /// Stops the workload; returns the rows it changed.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
        self.changes.load(Ordering::Relaxed)
    }
}

/// The `p` quantile (0..1) of `v` (sorted in place); NaN when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}
