//! Rows fetched by key on both sides, reduced to the same bytes as a full validation: the
//! target's binary form of each value. Used to recheck suspects and to repair them.
//!
//! Contract: a key is identified by [`KeyBytes`] on both sides; the source is asked by its own
//! key values (cast to the declared type, compared by SQL Server), the target by the binary
//! form PostgreSQL sent (compared by PostgreSQL).

use crate::config::Policies;
use crate::convert::copy;
use crate::convert::value::{to_value, DAYS_0001_TO_2000, US_PER_DAY};
use crate::convert::{Losses, TablePlan, TargetKind};
use crate::error::{Context, Error};
use crate::model::ChangeSource;
use crate::model::{quote_pg, quote_tsql, Position, Value};
use crate::source::read::{Key, KeyValue};
use crate::source::Tds;
use bytes::BytesMut;
use futures_util::TryStreamExt;
use std::collections::HashMap;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

/// A row's key as the target's binary fields, each with its 4-byte length.
pub type KeyBytes = Vec<u8>;

/// Keys per statement (SQL Server takes at most 2,100 parameters).
const PER_STATEMENT: usize = 100;

/// A value already in PostgreSQL's binary form, bound as is (any type).
#[derive(Debug)]
pub struct RawBinary<'a>(pub Option<&'a [u8]>);

impl ToSql for RawBinary<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Some(b) => {
                out.extend_from_slice(b);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}

/// A column received in binary form, kept as is (`None` for NULL).
pub struct RawOut(pub Option<Vec<u8>>);

impl<'a> FromSql<'a> for RawOut {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawOut(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawOut(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Splits [`KeyBytes`] into its fields (without their lengths; `None` for NULL).
pub fn key_fields(key: &[u8]) -> Vec<Option<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= key.len() {
        let l = i32::from_be_bytes([key[at], key[at + 1], key[at + 2], key[at + 3]]);
        at += 4;
        if l < 0 {
            out.push(None);
        } else {
            let end = (at + l as usize).min(key.len());
            out.push(Some(&key[at..end]));
            at = end;
        }
    }
    out
}

/// The [`KeyBytes`] of converted values.
pub fn key_bytes(plan: &TablePlan, values: &[Value]) -> KeyBytes {
    let mut b = BytesMut::new();
    for k in &plan.key {
        copy::field(&mut b, &values[*k]);
    }
    b.to_vec()
}

/// The source key for a key known only by its target bytes (integers, text, uuid, bit, binary,
/// decimal, date, time, datetime of every kind), a value that looks up the same row once cast to
/// the column's type; `None` for other key types (the caller compares the whole table).
pub fn source_key_from_bytes(plan: &TablePlan, key: &[u8]) -> Option<Key> {
    let fields = key_fields(key);
    let mut out = Vec::new();
    for (col, f) in plan.key_columns().zip(fields) {
        let f = f?;
        let decl = col.source_decl.to_lowercase();
        out.push(match col.kind {
            TargetKind::Int2 if f.len() == 2 && decl.starts_with("tinyint") => {
                KeyValue::U8(u8::try_from(i16::from_be_bytes([f[0], f[1]])).ok()?)
            }
            TargetKind::Int2 if f.len() == 2 => KeyValue::I16(i16::from_be_bytes([f[0], f[1]])),
            TargetKind::Int4 if f.len() == 4 => {
                KeyValue::I32(i32::from_be_bytes([f[0], f[1], f[2], f[3]]))
            }
            TargetKind::Int8 if f.len() == 8 => {
                KeyValue::I64(i64::from_be_bytes(f.try_into().ok()?))
            }
            TargetKind::Text | TargetKind::Varchar(_) => {
                KeyValue::String(String::from_utf8(f.to_vec()).ok()?)
            }
            TargetKind::Uuid if f.len() == 16 => KeyValue::Guid(f.try_into().ok()?),
            TargetKind::Bool if f.len() == 1 => KeyValue::Bit(f[0] != 0),
            TargetKind::Bytea => KeyValue::Binary(f.to_vec()),
            TargetKind::Numeric(_) => {
                let (m, s) = crate::convert::copy::numeric_value(f)?;
                KeyValue::Numeric(m, s)
            }
            // PostgreSQL counts days and microseconds from 2000-01-01, SQL Server's date from
            // 0001-01-01 (730,119 days before) and its time in 100 ns at scale 7; the lookup
            // casts to the column's own type.
            TargetKind::Date if f.len() == 4 => KeyValue::Date(
                u32::try_from(i32::from_be_bytes(f.try_into().ok()?) as i64 + DAYS_0001_TO_2000)
                    .ok()?,
            ),
            TargetKind::Time if f.len() == 8 => KeyValue::Time(
                u64::try_from(i64::from_be_bytes(f.try_into().ok()?)).ok()? * 10,
                7,
            ),
            TargetKind::Timestamp if f.len() == 8 => {
                let us = i64::from_be_bytes(f.try_into().ok()?);
                let day = us.div_euclid(US_PER_DAY);
                KeyValue::DateTime2(
                    u32::try_from(day + DAYS_0001_TO_2000).ok()?,
                    us.rem_euclid(US_PER_DAY) as u64 * 10,
                    7,
                )
            }
            _ => return None,
        });
    }
    Some(out)
}

/// A source row fetched by key.
#[derive(Debug, Clone)]
pub struct SourceRow {
    /// Its values in the target's binary form, each with its length (what a COPY sends).
    pub bytes: Vec<u8>,
    /// Its converted values.
    pub values: Vec<Value>,
    /// Its key as SQL Server sent it.
    pub key: Key,
}

/// Reads the source rows of `keys` (in the session's current transaction), by key bytes. Keys
/// with no row are absent.
pub async fn source_rows(
    tds: &mut Tds,
    plan: &TablePlan,
    policies: &Policies,
    keys: &[Key],
) -> Result<HashMap<KeyBytes, SourceRow>, Error> {
    let name = plan.source.name.to_string();
    let mut out = HashMap::new();
    let mut losses = Losses::default();
    for batch in keys.chunks(PER_STATEMENT) {
        let nk = plan.key.len();
        let terms: Vec<String> = (0..batch.len())
            .map(|i| {
                let eqs: Vec<String> = plan
                    .key_columns()
                    .enumerate()
                    .map(|(j, c)| {
                        format!(
                            "{} = CAST(@P{} AS {})",
                            quote_tsql(&c.source),
                            i * nk + j + 1,
                            c.source_decl
                        )
                    })
                    .collect();
                format!("({})", eqs.join(" AND "))
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            plan.select_list(false),
            plan.source.name.tsql(),
            terms.join(" OR ")
        );
        let mut q = tiberius::Query::new(sql);
        for key in batch {
            for v in key {
                q.bind(v.to_cell());
            }
        }
        let mut stream = q
            .query(tds)
            .await
            .context(|| format!("validate: read keys of {name}"))?
            .into_row_stream();
        while let Some(row) = stream
            .try_next()
            .await
            .context(|| format!("validate: read keys of {name}"))?
        {
            let mut values = Vec::with_capacity(plan.columns.len());
            let mut key = Vec::with_capacity(nk);
            for (i, (cell, col)) in row.into_iter().zip(&plan.columns).enumerate() {
                if plan.key.contains(&i) {
                    key.push(KeyValue::from_cell(&cell));
                }
                values.push(
                    to_value(cell, col, policies, &mut losses)
                        .map_err(|e| Error::table(&name, format!("validate: {e}"), None))?,
                );
            }
            let mut row_bytes = BytesMut::new();
            for v in &values {
                copy::field(&mut row_bytes, v);
            }
            // Key values in key order (plan.key may not follow column order).
            let key = plan
                .key
                .iter()
                .map(|k| {
                    let at = plan.key.iter().filter(|x| *x < k).count();
                    key[at].clone()
                })
                .collect();
            out.insert(
                key_bytes(plan, &values),
                SourceRow {
                    bytes: row_bytes.to_vec(),
                    values,
                    key,
                },
            );
        }
    }
    Ok(out)
}

/// Reads the target rows of `keys` through `client` (a transaction pins the state): key bytes
/// to row bytes, the same bytes a binary COPY sends.
pub async fn target_rows(
    client: &impl tokio_postgres::GenericClient,
    plan: &TablePlan,
    keys: &[KeyBytes],
) -> Result<HashMap<KeyBytes, Vec<u8>>, Error> {
    let cols: Vec<String> = plan.columns.iter().map(|c| quote_pg(&c.target)).collect();
    let key_cols: Vec<String> = plan.key_columns().map(|c| quote_pg(&c.target)).collect();
    let mut out = HashMap::new();
    for batch in keys.chunks(PER_STATEMENT) {
        let fields: Vec<Vec<Option<&[u8]>>> = batch.iter().map(|k| key_fields(k)).collect();
        let mut params: Vec<RawBinary> = Vec::new();
        let mut terms = Vec::new();
        for f in &fields {
            let mut eqs = Vec::new();
            for (c, v) in key_cols.iter().zip(f) {
                params.push(RawBinary(*v));
                eqs.push(format!("{c} = ${}", params.len()));
            }
            terms.push(format!("({})", eqs.join(" AND ")));
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            cols.join(", "),
            plan.target.sql(),
            terms.join(" OR ")
        );
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = client
            .query(&sql, &refs)
            .await
            .context(|| format!("validate: read keys of {}", plan.target))?;
        for r in rows {
            let mut row_bytes = BytesMut::new();
            for i in 0..cols.len() {
                let raw: RawOut = r
                    .try_get(i)
                    .context(|| format!("validate: read keys of {}", plan.target))?;
                match &raw.0 {
                    Some(v) => {
                        row_bytes.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        row_bytes.extend_from_slice(v);
                    }
                    None => row_bytes.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
            // Key fields in key order (plan.key may not follow column order).
            let mut ordered = BytesMut::new();
            let all = key_fields(&row_bytes);
            for k in &plan.key {
                match all[*k] {
                    Some(v) => {
                        ordered.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        ordered.extend_from_slice(v);
                    }
                    None => ordered.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
            out.insert(ordered.to_vec(), row_bytes.to_vec());
        }
    }
    Ok(out)
}

/// Keys changed after `pos` (read in the session's current transaction) as the change source
/// lists them (CHANGETABLE, or the CDC change table), each as both sides name it. Empty without
/// a position or a change source.
pub async fn changed_keys(
    tds: &mut Tds,
    plan: &TablePlan,
    kind: &ChangeSource,
    pos: &Option<Position>,
    policies: &Policies,
) -> Result<Vec<(KeyBytes, Key)>, Error> {
    let q = match (kind, pos) {
        (ChangeSource::ChangeTracking, Some(Position::Ct(v))) => {
            let mut q = tiberius::Query::new(crate::source::ct::changed_keys_sql(plan));
            q.bind(*v);
            q
        }
        (ChangeSource::Cdc(ci), Some(Position::Cdc(l))) => {
            let mut q = tiberius::Query::new(crate::source::cdc::changed_keys_sql(plan, ci));
            q.bind(l.0.to_vec());
            q
        }
        _ => return Ok(Vec::new()),
    };
    let name = plan.source.name.to_string();
    let mut stream = q
        .query(tds)
        .await
        .context(|| format!("validate: read the keys of {name} changed meanwhile"))?
        .into_row_stream();
    let mut out = Vec::new();
    let mut losses = Losses::default();
    while let Some(row) = stream
        .try_next()
        .await
        .context(|| format!("validate: read the keys of {name} changed meanwhile"))?
    {
        let cells: Vec<tiberius::ColumnData<'static>> = row.into_iter().collect();
        let key: Key = cells.iter().map(KeyValue::from_cell).collect();
        let mut values = vec![Value::Null; plan.columns.len()];
        for (cell, k) in cells.into_iter().zip(&plan.key) {
            values[*k] = to_value(cell, &plan.columns[*k], policies, &mut losses)
                .map_err(|e| Error::table(&name, format!("validate: {e}"), None))?;
        }
        out.push((key_bytes(plan, &values), key));
    }
    Ok(out)
}

/// Compares `keys` on both sides (the source in the session's current transaction, the target
/// in `client`'s): each key that differs, with what differs. A key absent on both sides is
/// equal.
pub async fn compare(
    tds: &mut Tds,
    client: &impl tokio_postgres::GenericClient,
    plan: &TablePlan,
    policies: &Policies,
    keys: &[(KeyBytes, Key)],
) -> Result<Vec<(String, &'static str)>, Error> {
    let source_keys: Vec<Key> = keys.iter().map(|k| k.1.clone()).collect();
    let src = source_rows(tds, plan, policies, &source_keys).await?;
    let bytes: Vec<KeyBytes> = keys.iter().map(|k| k.0.clone()).collect();
    let tgt = target_rows(client, plan, &bytes).await?;
    let mut out = Vec::new();
    for (k, key) in keys {
        let what = match (src.get(k), tgt.get(k)) {
            (Some(a), Some(b)) if &a.bytes == b => continue,
            (None, None) => continue,
            (Some(_), Some(_)) => "values differ",
            (Some(_), None) => "missing on the target",
            (None, Some(_)) => "on the target only",
        };
        out.push((crate::source::read::key_display(plan, key), what));
    }
    Ok(out)
}
