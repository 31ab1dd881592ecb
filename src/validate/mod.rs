//! Validation: both sides' rows compared value by value, after the converter's normalisation.
//!
//! Every row is reduced to the bytes of PostgreSQL's binary form of its target values: on the
//! target that is what `COPY ... TO STDOUT (FORMAT binary)` sends; on the source, the converter's
//! values encoded by [`crate::convert::copy`]. Rows are grouped into buckets by a hash of the key
//! bytes (never by key ranges, whose order differs between the engines), and each bucket keeps
//! a count and a sum of row hashes; a bucket that differs is read again to name its keys.
//!
//! Contract: a difference is never missed by the bucket sums except by a 64-bit hash
//! collision; findings name the table and key. Callers validate at a position both sides have
//! reached (cutover: writes stopped and drained).

pub mod by_key;
pub mod by_value;
pub mod pushdown;

use crate::config::{Checksums, Policies};
use crate::convert::copy;
use crate::convert::value::to_value;
use crate::convert::{Losses, TablePlan};
use crate::error::{Context, Error};
use crate::model::quote_pg;
use crate::source::read::{key_display, Key, KeyValue};
use crate::source::Tds;
use by_key::KeyBytes;
use bytes::{Buf, BytesMut};
use futures_util::TryStreamExt;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Instant;

const BUCKETS: usize = 4096;

/// What a validation found for one table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Rows at the source.
    pub source_rows: i64,
    /// Rows on the target.
    pub target_rows: i64,
    /// Keys that differ, each with what differs (at most 20 listed).
    pub findings: Vec<String>,
    /// Number of differing keys.
    pub differing: usize,
    /// The differing keys, for a recheck or a repair.
    #[serde(skip)]
    pub suspects: Vec<Suspect>,
    /// The bucket checksums were computed by both databases ([`pushdown`]), not the daemon.
    pub in_database: bool,
    /// Rows read into the daemon, both sides together (0 for equal tables checked in database).
    pub rows_read: i64,
    /// Seconds the source took for the first comparison (its aggregate, or reading its rows).
    pub source_seconds: f64,
    /// Seconds the target took for the same.
    pub target_seconds: f64,
}

/// A key that differs, as both sides can look it up.
#[derive(Debug, Clone)]
pub struct Suspect {
    /// The key's binary form on the target.
    pub key: KeyBytes,
    /// The key as SQL Server sent it (`None` for a target-only key of an unusual type).
    pub source_key: Option<Key>,
    /// `(id=42)`.
    pub display: String,
}

/// Keeps a reader's busy share at or under `share` (0 < share <= 1) by sleeping between pieces.
pub struct Throttle {
    share: f64,
    since: Instant,
}

impl Throttle {
    /// A throttle at `share` of one connection's time.
    pub fn new(share: f64) -> Throttle {
        Throttle {
            share: share.clamp(0.01, 1.0),
            since: Instant::now(),
        }
    }

    /// Call every few thousand rows: sleeps so that busy / (busy + idle) stays at `share`.
    pub async fn pace(&mut self) {
        tokio::time::sleep(idle_for(self.since.elapsed(), self.share)).await;
        self.since = Instant::now();
    }
}

/// The idle time that keeps `busy / (busy + idle)` at `share`.
fn idle_for(busy: std::time::Duration, share: f64) -> std::time::Duration {
    if share >= 1.0 {
        return std::time::Duration::ZERO;
    }
    busy.mul_f64((1.0 - share) / share)
}

#[cfg(test)]
mod tests {
    use super::idle_for;
    use std::time::Duration;

    #[test]
    fn throttle_keeps_the_busy_share() {
        let busy = Duration::from_millis(100);
        assert_eq!(idle_for(busy, 1.0), Duration::ZERO);
        assert_eq!(idle_for(busy, 0.5), Duration::from_millis(100));
        assert_eq!(idle_for(busy, 0.25), Duration::from_millis(300));
    }
}

/// How many rows are read between two [`Throttle::pace`] calls.
const PACE_ROWS: i64 = 5_000;

impl Outcome {
    /// Both sides hold the same rows.
    pub fn equal(&self) -> bool {
        self.differing == 0 && self.source_rows == self.target_rows
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    rows: i64,
    sum: u64,
}

/// One side's rows: per bucket aggregates, and for the `wanted` buckets the key hash to
/// (row hash, displayable key).
#[derive(Default)]
struct Side {
    rows: i64,
    buckets: Vec<Bucket>,
    detail: BTreeMap<u64, (u64, String, KeyBytes, Option<Key>)>,
}

impl Side {
    fn new() -> Side {
        Side {
            rows: 0,
            buckets: vec![Bucket::default(); BUCKETS],
            detail: BTreeMap::new(),
        }
    }

    fn add(
        &mut self,
        key: &[u8],
        row: &[u8],
        wanted: Option<&HashSet<usize>>,
        detail: impl FnOnce() -> (String, Option<Key>),
    ) {
        let kh = hash(key);
        let rh = hash(row);
        let b = (kh % BUCKETS as u64) as usize;
        self.rows += 1;
        self.buckets[b].rows += 1;
        self.buckets[b].sum = self.buckets[b].sum.wrapping_add(rh);
        if wanted.is_some_and(|w| w.contains(&b)) {
            let (display, source_key) = detail();
            self.detail
                .insert(kh, (rh, display, key.to_vec(), source_key));
        }
    }
}

/// Reads the source table's rows through the converter (one SNAPSHOT statement).
async fn source_side(
    tds: &mut Tds,
    plan: &TablePlan,
    policies: &Policies,
    wanted: Option<&HashSet<usize>>,
    skip: &HashSet<KeyBytes>,
    throttle: &mut Throttle,
    filter: Option<&str>,
) -> Result<Side, Error> {
    let name = plan.source.name.to_string();
    let sql = format!(
        "SELECT {} FROM {}{}",
        plan.select_list(false),
        plan.source.name.tsql(),
        filter.map(|f| format!(" WHERE {f}")).unwrap_or_default()
    );
    let mut side = Side::new();
    let mut losses = Losses::default();
    let mut stream = tds
        .simple_query(sql)
        .await
        .context(|| format!("validate: read {name}"))?
        .into_row_stream();
    let mut row_buf = BytesMut::new();
    let mut key_buf = BytesMut::new();
    let mut read = 0i64;
    while let Some(row) = stream
        .try_next()
        .await
        .context(|| format!("validate: read {name}"))?
    {
        row_buf.clear();
        key_buf.clear();
        let mut key: Vec<KeyValue> = Vec::new();
        let mut values = Vec::with_capacity(plan.columns.len());
        for (i, (cell, col)) in row.into_iter().zip(&plan.columns).enumerate() {
            if plan.key.contains(&i) {
                key.push(KeyValue::from_cell(&cell));
            }
            let v = to_value(cell, col, policies, &mut losses)
                .map_err(|e| Error::table(&name, format!("validate: {e}"), None))?;
            copy::field(&mut row_buf, &v);
            values.push(v);
        }
        for k in &plan.key {
            copy::field(&mut key_buf, &values[*k]);
        }
        read += 1;
        if read % PACE_ROWS == 0 {
            throttle.pace().await;
        }
        if skip.contains(&key_buf[..]) {
            continue;
        }
        side.add(&key_buf, &row_buf, wanted, || {
            (key_display(plan, &key), Some(key.clone()))
        });
    }
    Ok(side)
}

/// Reads the target table's rows in binary form.
async fn target_side(
    pg: &tokio_postgres::Transaction<'_>,
    plan: &TablePlan,
    wanted: Option<&HashSet<usize>>,
    skip: &HashSet<KeyBytes>,
    throttle: &mut Throttle,
    filter: Option<&str>,
) -> Result<Side, Error> {
    let cols: Vec<String> = plan.columns.iter().map(|c| quote_pg(&c.target)).collect();
    let sql = format!(
        "COPY (SELECT {} FROM {}{}) TO STDOUT (FORMAT binary)",
        cols.join(", "),
        plan.target.sql(),
        filter.map(|f| format!(" WHERE {f}")).unwrap_or_default()
    );
    let stream = pg
        .copy_out(&sql)
        .await
        .context(|| format!("validate: read {}", plan.target))?;
    futures_util::pin_mut!(stream);
    let mut side = Side::new();
    let mut pending = BytesMut::new();
    let mut header_done = false;
    let n = plan.columns.len();
    let mut read = 0i64;
    while let Some(chunk) = stream
        .try_next()
        .await
        .context(|| format!("validate: read {}", plan.target))?
    {
        pending.extend_from_slice(&chunk);
        if !header_done {
            if pending.len() < 19 {
                continue;
            }
            let ext =
                u32::from_be_bytes([pending[15], pending[16], pending[17], pending[18]]) as usize;
            if pending.len() < 19 + ext {
                continue;
            }
            pending.advance(19 + ext);
            header_done = true;
        }
        // Whole tuples only.
        while let Some(len) = tuple_len(&pending, n) {
            let tuple = pending.split_to(len);
            if tuple.len() == 2 {
                break; // trailer
            }
            let mut fields: Vec<&[u8]> = Vec::with_capacity(n);
            let mut at = 2;
            for _ in 0..n {
                let l =
                    i32::from_be_bytes([tuple[at], tuple[at + 1], tuple[at + 2], tuple[at + 3]]);
                let end = at + 4 + l.max(0) as usize;
                fields.push(&tuple[at..end]);
                at = end;
            }
            let row = &tuple[2..];
            let key: Vec<u8> = plan
                .key
                .iter()
                .flat_map(|k| fields[*k].iter().copied())
                .collect();
            read += 1;
            if read % PACE_ROWS == 0 {
                throttle.pace().await;
            }
            if skip.contains(&key) {
                continue;
            }
            side.add(&key, row, wanted, || {
                (
                    describe_key(plan, &fields),
                    by_key::source_key_from_bytes(plan, &key),
                )
            });
        }
    }
    Ok(side)
}

/// Length of the first whole tuple in `b` (2 for the trailer), or `None` if incomplete.
fn tuple_len(b: &[u8], n: usize) -> Option<usize> {
    if b.len() < 2 {
        return None;
    }
    if i16::from_be_bytes([b[0], b[1]]) == -1 {
        return Some(2);
    }
    let mut at = 2;
    for _ in 0..n {
        if b.len() < at + 4 {
            return None;
        }
        let l = i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        at += 4 + l.max(0) as usize;
        if b.len() < at {
            return None;
        }
    }
    Some(at)
}

/// A target-only key, decoded for the common key types (hex otherwise).
fn describe_key(plan: &TablePlan, fields: &[&[u8]]) -> String {
    use crate::convert::TargetKind as K;
    let parts: Vec<String> = plan
        .key
        .iter()
        .map(|k| {
            let col = &plan.columns[*k];
            let f = &fields[*k][4..];
            let v = match col.kind {
                K::Int2 if f.len() == 2 => i16::from_be_bytes([f[0], f[1]]).to_string(),
                K::Int4 if f.len() == 4 => i32::from_be_bytes([f[0], f[1], f[2], f[3]]).to_string(),
                K::Int8 if f.len() == 8 => {
                    i64::from_be_bytes(f.try_into().unwrap_or([0; 8])).to_string()
                }
                K::Text | K::Varchar(_) => format!("'{}'", String::from_utf8_lossy(f)),
                K::Uuid if f.len() == 16 => uuid::Uuid::from_slice(f)
                    .map(|u| u.to_string().to_uppercase())
                    .unwrap_or_default(),
                _ => format!(
                    "0x{}",
                    f.iter().map(|b| format!("{b:02X}")).collect::<String>()
                ),
            };
            format!("{}={v}", col.source)
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// How a full validation runs.
#[derive(Debug, Clone, Copy)]
pub struct FullOptions {
    /// Largest busy share of each connection (1.0: not paced).
    pub share: f64,
    /// Who computes the checksums.
    pub checksums: Checksums,
    /// Rows per aggregate statement when database-side checksums are paced.
    pub chunk_rows: i64,
}

impl FullOptions {
    /// The configured validation, at `share`.
    pub fn configured(config: &crate::config::Config, share: f64) -> FullOptions {
        FullOptions {
            share,
            checksums: config.validation_checksums,
            chunk_rows: config.validation_chunk_rows,
        }
    }
}

/// Compares every row of one table except the `skip` keys (rows changing meanwhile), reading
/// the source in the session's current transaction and the target in `pg`'s. Exact when both
/// sides are at the same position for every other key.
pub async fn full(
    tds: &mut Tds,
    pg: &tokio_postgres::Transaction<'_>,
    plan: &TablePlan,
    policies: &Policies,
    skip: &HashSet<KeyBytes>,
    how: FullOptions,
) -> Result<Outcome, Error> {
    let mut throttle = Throttle::new(how.share);
    let pushed = match pushdown::queries(plan, policies) {
        Some(q)
            if how.checksums == Checksums::Database
                && (skip.is_empty() || q.key_bucketable)
                && checksums_in_database(tds).await =>
        {
            Some(q)
        }
        _ => None,
    };
    if let Some(q) = pushed {
        return full_in_database(tds, pg, plan, policies, skip, &q, how).await;
    }
    let started = std::time::Instant::now();
    let src = source_side(tds, plan, policies, None, skip, &mut throttle, None).await?;
    let source_seconds = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let tgt = target_side(pg, plan, None, skip, &mut throttle, None).await?;
    let target_seconds = started.elapsed().as_secs_f64();
    let differing_buckets: HashSet<usize> = (0..BUCKETS)
        .filter(|b| src.buckets[*b] != tgt.buckets[*b])
        .collect();
    let mut out = Outcome {
        source_rows: src.rows,
        target_rows: tgt.rows,
        findings: Vec::new(),
        differing: 0,
        suspects: Vec::new(),
        in_database: false,
        rows_read: src.rows + tgt.rows,
        source_seconds,
        target_seconds,
    };
    if differing_buckets.is_empty() {
        return Ok(out);
    }
    // Narrow the differing buckets down to keys.
    let src = source_side(
        tds,
        plan,
        policies,
        Some(&differing_buckets),
        skip,
        &mut throttle,
        None,
    )
    .await?;
    let tgt = target_side(
        pg,
        plan,
        Some(&differing_buckets),
        skip,
        &mut throttle,
        None,
    )
    .await?;
    out.rows_read += src.rows + tgt.rows;
    compare_details(plan, &src, &tgt, &mut out);
    Ok(out)
}

/// Whether the source can render strings as UTF-8 (SQL Server 2019 and later).
async fn checksums_in_database(tds: &mut Tds) -> bool {
    let rows = crate::source::query_rows(
        tds,
        "SELECT CAST(SERVERPROPERTY('ProductMajorVersion') AS int)",
        "read the server version",
    )
    .await;
    match rows {
        Ok(r) => r
            .first()
            .and_then(|r| r.try_get::<i32, _>(0).ok().flatten())
            .is_some_and(|v| v >= 15),
        Err(_) => false,
    }
}

/// [`full`] with the bucket aggregates computed by each database ([`pushdown`]); differing
/// buckets, and the buckets of the `skip` keys, are read and compared key by key.
async fn full_in_database(
    tds: &mut Tds,
    pg: &tokio_postgres::Transaction<'_>,
    plan: &TablePlan,
    policies: &Policies,
    skip: &HashSet<KeyBytes>,
    q: &pushdown::Queries,
    how: FullOptions,
) -> Result<Outcome, Error> {
    let throttle = &mut Throttle::new(how.share);
    // Paced: each side aggregates piece by piece and sleeps in between (its own throttle).
    let paced = (how.share < 1.0).then_some(how.chunk_rows);
    // Both databases aggregate at once; each side's time is kept.
    let timed = |started: std::time::Instant| started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let (src, tgt) = tokio::join!(
        async {
            let s = pushdown::source_sums(tds, plan, q, paced, how.share).await;
            (s, timed(started))
        },
        async {
            let t = pushdown::target_sums(pg, plan, q, paced, how.share).await;
            (t, timed(started))
        }
    );
    let ((src, source_seconds), (tgt, target_seconds)) = ((src.0?, src.1), (tgt.0?, tgt.1));
    let skipped: HashSet<usize> = skip.iter().map(|k| pushdown::bucket_of(k)).collect();
    let differing: HashSet<usize> = (0..BUCKETS)
        .filter(|b| src.buckets[*b] != tgt.buckets[*b])
        .collect();
    let mut out = Outcome {
        source_rows: src.rows,
        target_rows: tgt.rows,
        findings: Vec::new(),
        differing: 0,
        suspects: Vec::new(),
        in_database: true,
        rows_read: 0,
        source_seconds,
        target_seconds,
    };
    // Rows of skipped keys are in the sums: their buckets are compared key by key instead.
    let narrow: HashSet<usize> = differing.union(&skipped).copied().collect();
    if narrow.is_empty() {
        return Ok(out);
    }
    let adjust = |side: &Side, sums: &pushdown::Sums| -> i64 {
        sums.rows - narrow.iter().map(|b| sums.buckets[*b].0).sum::<i64>() + side.rows
    };
    let all: HashSet<usize> = (0..BUCKETS).collect();
    let s = source_side(
        tds,
        plan,
        policies,
        Some(&all),
        skip,
        throttle,
        Some(&q.source_filter(&narrow)),
    )
    .await?;
    let t = target_side(
        pg,
        plan,
        Some(&all),
        skip,
        throttle,
        Some(&q.target_filter(&narrow)),
    )
    .await?;
    // Counts without the skipped keys, as the daemon-side comparison reports them.
    out.source_rows = adjust(&s, &src);
    out.target_rows = adjust(&t, &tgt);
    out.rows_read = s.rows + t.rows;
    compare_details(plan, &s, &t, &mut out);
    let unexplained = differing.difference(&skipped).count();
    if out.differing == 0 && unexplained > 0 {
        tracing::warn!(
            table = %plan.source.name,
            buckets = unexplained,
            "database-side checksums differ where the rows agree: the engines render some value differently; the comparison was made row by row"
        );
    }
    Ok(out)
}

/// Names every key whose row differs between the two sides' detail.
fn compare_details(plan: &TablePlan, src: &Side, tgt: &Side, out: &mut Outcome) {
    for (kh, (rh, key, bytes, source_key)) in &src.detail {
        let what = match tgt.detail.get(kh) {
            None => "missing on the target",
            Some((th, ..)) if th != rh => "values differ",
            _ => continue,
        };
        push(out, format!("{} {key}: {what}", plan.source.name));
        out.suspects.push(Suspect {
            key: bytes.clone(),
            source_key: source_key.clone(),
            display: key.clone(),
        });
    }
    for (kh, (_, key, bytes, source_key)) in &tgt.detail {
        if !src.detail.contains_key(kh) {
            push(
                out,
                format!("{} {key}: on the target only", plan.source.name),
            );
            out.suspects.push(Suspect {
                key: bytes.clone(),
                source_key: source_key.clone(),
                display: key.clone(),
            });
        }
    }
}

fn push(out: &mut Outcome, finding: String) {
    out.differing += 1;
    if out.findings.len() < 20 {
        out.findings.push(finding);
    }
}
