//! Full validation computed by each database itself: per bucket, a row count and two sums of
//! row hashes, so a table whose buckets agree is proven equal without moving a row into the
//! daemon. Only the differing buckets are then read and compared key by key
//! ([`super::full`]).
//!
//! Canonical rendering. Every column becomes the bytes of PostgreSQL's binary form of its target
//! value (what `int4send`, `timestamp_send`, ... return), framed by a 4-byte length or
//! `0xFFFFFFFF` for NULL, the framing of `COPY ... (FORMAT binary)`. SQL Server produces the
//! same bytes with `CAST(... AS binary(n))` (big-endian integers and IEEE floats),
//! `DATEDIFF_BIG(microsecond, '2000-01-01', ...)` (PostgreSQL's epoch), the UTF-8 of strings
//! through a `_UTF8` collation (SQL Server 2019 and later), and uniqueidentifier bytes
//! reordered into RFC order. Numerics are compared as their text, which both engines render
//! with the column's scale. The converter's policies are applied on the source side (NULs
//! stripped or replaced; digits below a microsecond truncated).
//!
//! Buckets are the first 12 bits of the MD5 of the key's rendering, so the daemon computes the
//! bucket of a key it holds (a changed key to leave out) from its binary form
//! ([`bucket_of`]), and both engines assign every row to the same bucket.
//!
//! Contract: a rendering that differs between the engines (an unusual type or server setting)
//! can only make buckets differ, never agree: differing buckets are compared row by row, so the
//! result is exact either way. Tables with a column outside the rendered types (xml, spatial,
//! sql_variant, configured expressions, type overrides across families) are compared in the
//! daemon.

use super::BUCKETS;
use crate::config::{NulPolicy, Policies};
use crate::convert::{ColumnPlan, TablePlan, TargetKind};
use crate::error::{Context, Error};
use crate::model::{quote_pg, tsql_literal};
use crate::source::read::{keyset_predicate, Bound};
use crate::source::Tds;
use futures_util::TryStreamExt;
use md5::{Digest, Md5};
use std::collections::HashSet;

/// One side's per-bucket aggregates: (rows, sum of hash bits 0-31, sum of bits 32-63).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sums {
    /// Rows counted.
    pub rows: i64,
    /// Per bucket.
    pub buckets: Vec<(i64, i64, i64)>,
}

/// The two aggregate queries of one table, and the filters that select some buckets.
#[derive(Debug, Clone)]
pub struct Queries {
    source_key: String,
    source_row: String,
    target_key: String,
    target_row: String,
    /// The key can be bucketed from its binary form in the daemon (not for numeric keys).
    pub key_bucketable: bool,
}

/// The bucket of a key given in its binary form (`copy::field` framing), as both databases
/// compute it.
pub fn bucket_of(key: &[u8]) -> usize {
    let d = Md5::digest(key);
    ((d[0] as usize) << 8 | d[1] as usize) % BUCKETS
}

/// The SQL Server expression that renders one column (see the module docs), or `None`.
fn source_bytes(col: &ColumnPlan, source_type: &str, policies: &Policies) -> Option<String> {
    use TargetKind as K;
    if col.expression {
        return None;
    }
    let e = &col.read_expr;
    let utf8 = |nvarchar: String| {
        format!(
            "CAST(CAST({nvarchar} COLLATE Latin1_General_100_BIN2_UTF8 AS varchar(max)) AS varbinary(max))"
        )
    };
    let micros_since = |from: &str, value: String| -> String {
        format!("CAST(DATEDIFF_BIG(microsecond, {from}, {value}) AS binary(8))")
    };
    let s = source_type;
    Some(match col.kind {
        K::Bool if s == "bit" => format!("CAST(CAST({e} AS bit) AS binary(1))"),
        K::Int2 if matches!(s, "tinyint" | "smallint") => {
            format!("CAST(CAST({e} AS smallint) AS binary(2))")
        }
        K::Int4 if matches!(s, "tinyint" | "smallint" | "int") => {
            format!("CAST(CAST({e} AS int) AS binary(4))")
        }
        K::Int8 if matches!(s, "tinyint" | "smallint" | "int" | "bigint") => {
            format!("CAST(CAST({e} AS bigint) AS binary(8))")
        }
        K::Float4 if s == "real" => format!("CAST(CAST({e} AS real) AS binary(4))"),
        K::Float8 if matches!(s, "real" | "float") => {
            format!("CAST(CAST({e} AS float) AS binary(8))")
        }
        K::Numeric(Some(_)) if matches!(s, "decimal" | "numeric" | "money" | "smallmoney") => {
            utf8(format!("CONVERT(nvarchar(60), {e})"))
        }
        K::Text | K::Varchar(_)
            if matches!(
                s,
                "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "sysname"
            ) =>
        {
            let text = format!("CAST({e} AS nvarchar(max))");
            let text = match policies.nul_characters {
                NulPolicy::Strip => {
                    format!("REPLACE({text} COLLATE Latin1_General_100_BIN2, NCHAR(0), N'')")
                }
                NulPolicy::Replace => format!(
                    "REPLACE({text} COLLATE Latin1_General_100_BIN2, NCHAR(0), {})",
                    tsql_literal(&policies.nul_replacement)
                ),
                NulPolicy::Fail => text,
            };
            utf8(text)
        }
        K::Bytea
            if matches!(
                s,
                "binary" | "varbinary" | "image" | "timestamp" | "rowversion"
            ) =>
        {
            format!("CAST({e} AS varbinary(max))")
        }
        K::Uuid if s == "uniqueidentifier" => {
            // SQL Server keeps the first three groups little-endian.
            let b = format!("CAST({e} AS binary(16))");
            [
                (4, 1),
                (3, 1),
                (2, 1),
                (1, 1),
                (6, 1),
                (5, 1),
                (8, 1),
                (7, 1),
                (9, 8),
            ]
            .iter()
            .map(|(at, n)| format!("SUBSTRING({b}, {at}, {n})"))
            .collect::<Vec<_>>()
            .join(" + ")
        }
        // The literal takes the column's type; DATEDIFF counts microsecond boundaries, which
        // truncates the 100 ns digit as the converter does.
        K::Date if s == "date" => {
            format!("CAST(DATEDIFF(day, '2000-01-01', {e}) AS binary(4))")
        }
        // Literals spelled as SQL Server displays the column's type.
        K::Timestamp if s == "datetime2" => {
            micros_since("'2000-01-01 00:00:00.0000000'", e.clone())
        }
        // datetime's 1/300 s ticks are rounded to the microsecond, as the converter does.
        K::Timestamp if matches!(s, "datetime" | "smalldatetime") => micros_since(
            "'2000-01-01 00:00:00.0000000'",
            format!("CAST({e} AS datetime2(6))"),
        ),
        K::Time if s == "time" => micros_since("'00:00:00.0000000'", e.clone()),
        K::TimestampTz if s == "datetimeoffset" => {
            micros_since("'2000-01-01 00:00:00.0000000 +00:00'", e.clone())
        }
        _ => return None,
    })
}

/// The PostgreSQL expression that renders one target column the same way.
fn target_bytes(col: &ColumnPlan) -> String {
    use TargetKind as K;
    let c = quote_pg(&col.target);
    match col.kind {
        // character(n)::text drops the padding SQL Server's value keeps: padded again (a
        // table made as character varying(n) holds it padded already).
        K::Varchar(n) if col.fixed => format!("convert_to(rpad({c}::text, {n}), 'UTF8')"),
        K::Bool => format!("boolsend({c})"),
        K::Int2 => format!("int2send({c})"),
        K::Int4 => format!("int4send({c})"),
        K::Int8 => format!("int8send({c})"),
        K::Float4 => format!("float4send({c})"),
        K::Float8 => format!("float8send({c})"),
        K::Numeric(_) => format!("convert_to({c}::text, 'UTF8')"),
        K::Text | K::Varchar(_) | K::Xml => format!("convert_to({c}::text, 'UTF8')"),
        K::Bytea => c,
        K::Uuid => format!("uuid_send({c})"),
        K::Date => format!("date_send({c})"),
        K::Time => format!("time_send({c})"),
        K::Timestamp => format!("timestamp_send({c})"),
        K::TimestampTz => format!("timestamptz_send({c})"),
        // Never rendered: the source side has no rendering of these (compared in the daemon).
        K::Ltree | K::Geometry | K::Geography | K::Jsonb => {
            format!("convert_to({c}::text, 'UTF8')")
        }
    }
}

/// The length of a kind's binary form when every value has the same one: its framing is then
/// a constant, and the value is rendered once instead of twice.
fn fixed_width(kind: &TargetKind) -> Option<u32> {
    use TargetKind as K;
    Some(match kind {
        K::Bool => 1,
        K::Int2 => 2,
        K::Int4 | K::Float4 | K::Date => 4,
        K::Int8 | K::Float8 | K::Time | K::Timestamp | K::TimestampTz => 8,
        K::Uuid => 16,
        K::Numeric(_)
        | K::Text
        | K::Varchar(_)
        | K::Xml
        | K::Bytea
        | K::Ltree
        | K::Geometry
        | K::Geography
        | K::Jsonb => return None,
    })
}

/// Builds the table's queries, or `None` when a column is not rendered (see the module docs).
pub fn queries(plan: &TablePlan, policies: &Policies) -> Option<Queries> {
    let mut src = Vec::new();
    let mut tgt = Vec::new();
    for col in &plan.columns {
        let ty = plan
            .source
            .columns
            .iter()
            .find(|c| c.name == col.source)?
            .source_type
            .name
            .clone();
        let b = source_bytes(col, &ty, policies)?;
        let t = target_bytes(col);
        let (source_len, target_len) = match fixed_width(&col.kind) {
            Some(n) => (format!("0x{n:08X}"), format!("'\\x{n:08x}'::bytea")),
            None => (
                format!("CAST(DATALENGTH({b}) AS binary(4))"),
                format!("int4send(length({t}))"),
            ),
        };
        src.push(format!(
            "CASE WHEN {e} IS NULL THEN 0xFFFFFFFF ELSE {source_len} + {b} END",
            e = col.read_expr
        ));
        tgt.push(format!(
            "CASE WHEN {c} IS NULL THEN '\\xffffffff'::bytea ELSE {target_len} || {t} END",
            c = quote_pg(&col.target)
        ));
    }
    let pick = |v: &[String], idx: &[usize], sep: &str| {
        idx.iter()
            .map(|i| v[*i].clone())
            .collect::<Vec<_>>()
            .join(sep)
    };
    let all: Vec<usize> = (0..plan.columns.len()).collect();
    Some(Queries {
        source_key: pick(&src, &plan.key, " + "),
        source_row: pick(&src, &all, " + "),
        target_key: pick(&tgt, &plan.key, " || "),
        target_row: pick(&tgt, &all, " || "),
        key_bucketable: plan
            .key
            .iter()
            .all(|k| !matches!(plan.columns[*k].kind, TargetKind::Numeric(_))),
    })
}

impl Queries {
    /// A row's bucket on the source ([`bucket_of`] in T-SQL).
    fn source_bucket(&self) -> String {
        format!(
            "CAST(SUBSTRING(HASHBYTES('MD5', {}), 1, 2) AS int) % {BUCKETS}",
            self.source_key
        )
    }

    /// A row's bucket on the target ([`bucket_of`] in SQL).
    fn target_bucket(&self) -> String {
        format!(
            "('x' || substr(md5({}), 1, 4))::bit(16)::int % {BUCKETS}",
            self.target_key
        )
    }

    /// `WHERE` condition selecting `buckets` on the source.
    pub fn source_filter(&self, buckets: &HashSet<usize>) -> String {
        format!("{} IN ({})", self.source_bucket(), list(buckets))
    }

    /// `WHERE` condition selecting `buckets` on the target.
    pub fn target_filter(&self, buckets: &HashSet<usize>) -> String {
        format!("{} IN ({})", self.target_bucket(), list(buckets))
    }
}

fn list(buckets: &HashSet<usize>) -> String {
    let mut v: Vec<usize> = buckets.iter().copied().collect();
    v.sort_unstable();
    v.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn empty() -> Sums {
    Sums {
        rows: 0,
        buckets: vec![(0, 0, 0); BUCKETS],
    }
}

/// Adds one piece's rows `(bucket, count, sum1, sum2)` into `sums`.
fn add(sums: &mut Sums, b: i64, n: i64, s1: i64, s2: i64) {
    let b = (b.max(0) as usize) % BUCKETS;
    let e = &mut sums.buckets[b];
    sums.rows += n;
    *e = (e.0 + n, e.1.wrapping_add(s1), e.2.wrapping_add(s2));
}

/// The source's aggregates, in the session's current transaction. `paced`: about that many rows
/// per statement (key ranges SQL Server computes), with sleeps between them that keep the
/// session busy at most `share` of the time.
pub async fn source_sums(
    tds: &mut Tds,
    plan: &TablePlan,
    q: &Queries,
    paced: Option<i64>,
    share: f64,
) -> Result<Sums, Error> {
    let ranges = match paced {
        Some(rows) if plan.source.estimated_rows > rows => {
            let parts = (plan.source.estimated_rows / rows.max(1) + 1) as usize;
            crate::source::split::key_ranges(tds, plan, parts).await?
        }
        _ => vec![(None, None)],
    };
    let what = || format!("validate: checksums of {}", plan.source.name);
    let nkey = plan.key.len();
    let mut throttle = super::Throttle::new(share);
    let mut sums = empty();
    for (lower, upper) in &ranges {
        let mut preds = Vec::new();
        if lower.is_some() {
            preds.push(keyset_predicate(plan, Bound::Greater, 1));
        }
        if upper.is_some() {
            let first = if lower.is_some() { 1 + nkey } else { 1 };
            preds.push(keyset_predicate(plan, Bound::AtMost, first));
        }
        let filter = match preds.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", preds.join(" AND ")),
        };
        // The row hash is computed once, in a derived table; its CAST names the type for
        // engines that type a derived table's columns from their expressions.
        let sql = format!(
            "SELECT b, COUNT_BIG(*), SUM(CAST(SUBSTRING(h, 1, 4) AS bigint)), \
                    SUM(CAST(SUBSTRING(h, 5, 4) AS bigint)) \
             FROM (SELECT {} AS b, CAST(HASHBYTES('MD5', {}) AS binary(16)) AS h \
                   FROM {}{filter}) x \
             GROUP BY b",
            q.source_bucket(),
            q.source_row,
            plan.source.name.tsql()
        );
        let mut query = tiberius::Query::new(sql);
        for k in lower.iter().chain(upper.iter()).flatten() {
            query.bind(k.to_cell());
        }
        let mut stream = query.query(tds).await.context(what)?.into_row_stream();
        while let Some(row) = stream.try_next().await.context(what)? {
            let b: i32 = row.try_get(0).context(what)?.unwrap_or(0);
            let n: i64 = row.try_get(1).context(what)?.unwrap_or(0);
            let s1: i64 = row.try_get(2).context(what)?.unwrap_or(0);
            let s2: i64 = row.try_get(3).context(what)?.unwrap_or(0);
            add(&mut sums, b.into(), n, s1, s2);
        }
        throttle.pace().await;
    }
    Ok(sums)
}

/// The target's pieces for a paced aggregate: page ranges (TID range scans, PostgreSQL 14 and
/// later, read only their pages), the last one open-ended. One piece otherwise. Every row the
/// transaction sees is in exactly one piece: the table's pages only grow while it runs.
pub async fn target_pieces(
    pg: &tokio_postgres::Transaction<'_>,
    plan: &TablePlan,
    paced: Option<i64>,
) -> Result<Vec<String>, Error> {
    let Some(rows) = paced else {
        return Ok(vec![String::new()]);
    };
    let r = pg
        .query_one(
            "SELECT current_setting('server_version_num')::int, \
                    pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint",
            &[&plan.target.sql()],
        )
        .await
        .context(|| format!("validate: size of {}", plan.target))?;
    let (version, pages): (i32, i64) = (r.get(0), r.get(1));
    let per_piece = (pages * rows / plan.source.estimated_rows.max(1)).max(1);
    if version < 140_000 || pages <= per_piece {
        return Ok(vec![String::new()]);
    }
    let mut pieces = Vec::new();
    let mut at = 0;
    while at + per_piece < pages {
        pieces.push(format!(
            " WHERE ctid >= '({at},0)'::tid AND ctid < '({},0)'::tid",
            at + per_piece
        ));
        at += per_piece;
    }
    pieces.push(format!(" WHERE ctid >= '({at},0)'::tid"));
    Ok(pieces)
}

/// The target's aggregates, in `pg`'s transaction; `paced` and `share` as for [`source_sums`].
pub async fn target_sums(
    pg: &tokio_postgres::Transaction<'_>,
    plan: &TablePlan,
    q: &Queries,
    paced: Option<i64>,
    share: f64,
) -> Result<Sums, Error> {
    let mut throttle = super::Throttle::new(share);
    let mut sums = empty();
    for filter in target_pieces(pg, plan, paced).await? {
        let sql = format!(
            "SELECT b, count(*)::bigint, sum(('x' || substr(h, 1, 8))::bit(32)::bigint)::bigint, \
                    sum(('x' || substr(h, 9, 8))::bit(32)::bigint)::bigint \
             FROM (SELECT {} AS b, md5({}) AS h FROM {}{filter}) x \
             GROUP BY b",
            q.target_bucket(),
            q.target_row,
            plan.target.sql()
        );
        let rows = pg
            .query(&sql, &[])
            .await
            .context(|| format!("validate: checksums of {}", plan.target))?;
        for r in rows {
            let b: i32 = r.get(0);
            add(&mut sums, b.into(), r.get(1), r.get(2), r.get(3));
        }
        throttle.pace().await;
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_come_from_the_md5_of_the_framed_key() {
        // int4 42 framed as COPY binary: length 4, then big-endian.
        let key = [0, 0, 0, 4, 0, 0, 0, 42];
        let d = Md5::digest(key);
        assert_eq!(
            bucket_of(&key),
            ((d[0] as usize) * 256 + d[1] as usize) % 4096
        );
        assert!(bucket_of(&key) < BUCKETS);
    }
}
