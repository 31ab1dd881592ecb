//! Results: rewritten statements run on PostgreSQL; rows stream out as TDS with bounded memory.

use crate::catalog::{self, ResultColumns};
use crate::error::SqlError;
use crate::tds::token::{self};
use crate::types::{Len, TsqlType};
use crate::value::{default_tsql_type, encode_pg_value};
use futures_util::{pin_mut, TryStreamExt};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::*;

/// Prepares and runs one rewritten statement; rows go out as COLMETADATA + ROW tokens in chunks.
pub(super) async fn stream_statement(
    client: &Client,
    sql: &str,
    inferred: crate::tsql::rewrite::SelectTypes,
    tx: mpsc::Sender<Vec<u8>>,
    cancel: Arc<AtomicU32>,
    acked: u32,
    cache: Arc<std::sync::Mutex<super::ResultCache>>,
) -> Result<u64, SqlError> {
    let st = client
        .prepare(sql)
        .await
        .map_err(|e| SqlError::from_pg(&e))?;
    if st.columns().is_empty() {
        return client
            .execute(&st, &[])
            .await
            .map_err(|e| SqlError::from_pg(&e));
    }
    let oids: Vec<u32> = st
        .columns()
        .iter()
        .filter_map(|c| c.table_oid())
        .filter(|o| *o != 0)
        .collect();
    // Declared types of the tables' columns, looked up once per table until DDL changes them.
    let generation = super::DDL_GENERATION.load(std::sync::atomic::Ordering::SeqCst);
    let missing: Vec<u32> = {
        let mut c = cache
            .lock()
            .map_err(|_| SqlError::internal("result cache poisoned".into()))?;
        if c.generation != generation {
            *c = super::ResultCache {
                generation,
                ..Default::default()
            };
        }
        let mut m: Vec<u32> = oids
            .iter()
            .copied()
            .filter(|o| !c.loaded.contains(o))
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    if !missing.is_empty() {
        let found = catalog::load_result_columns(client, &missing)
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        let mut c = cache
            .lock()
            .map_err(|_| SqlError::internal("result cache poisoned".into()))?;
        c.columns.extend(found);
        c.loaded.extend(missing);
    }
    let declared: ResultColumns = {
        let c = cache
            .lock()
            .map_err(|_| SqlError::internal("result cache poisoned".into()))?;
        oids.iter()
            .flat_map(|o| c.columns.iter().filter(move |((t, _), _)| t == o))
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    };
    let mut cols: Vec<(String, TsqlType, Type)> = Vec::new();
    let ncols = st.columns().len();
    for (i, c) in st.columns().iter().enumerate() {
        let from_table = match (c.table_oid(), c.column_id()) {
            (Some(o), Some(a)) if o != 0 => declared.get(&(o, a)).cloned(),
            _ => None,
        };
        // The type the expression has in T-SQL wins (a no-op CAST keeps PostgreSQL's column
        // origin); a column's declared type comes next, PostgreSQL's type last.
        let inferred_type = inferred.column(i, ncols);
        // An alias as written; else a column's declared spelling; else a column reference as
        // written; else PostgreSQL's (lower-cased) name.
        let written = inferred
            .written_name(i, ncols)
            .filter(|(w, _)| w.to_lowercase() == c.name());
        let name = match (&written, &from_table) {
            (Some((w, true)), _) => w.clone(),
            (_, Some((n, _))) if n.to_lowercase() == c.name() => n.clone(),
            (Some((w, false)), _) => w.clone(),
            _ if matches!(c.name(), "?column?" | "coalesce" | "case") => String::new(),
            _ => c.name().to_string(),
        };
        let ty = inferred_type
            .or(from_table.map(|(_, t)| t))
            .unwrap_or_else(|| numeric_default(c));
        cols.push((name, ty, c.type_().clone()));
    }
    let mut buf = Vec::with_capacity(64 * 1024);
    write_colmetadata(&mut buf, &cols);
    let rows = client
        .query_raw(&st, std::iter::empty::<i32>())
        .await
        .map_err(|e| SqlError::from_pg(&e))?;
    pin_mut!(rows);
    let mut n: u64 = 0;
    while let Some(row) = rows.try_next().await.map_err(|e| SqlError::from_pg(&e))? {
        buf.push(0xD1);
        for (i, (name, ty, pgty)) in cols.iter().enumerate() {
            let raw: Raw = row
                .try_get(i)
                .map_err(|e| SqlError::internal(e.to_string()))?;
            encode_pg_value(ty, pgty, raw.0, &mut buf)
                .map_err(|e| SqlError::new(8115, 16, format!("column '{name}': {}", e.0)))?;
        }
        n += 1;
        if buf.len() >= 32 * 1024 {
            if tx.send(std::mem::take(&mut buf)).await.is_err() {
                return Err(SqlError::internal("client went away".into()));
            }
            buf.reserve(64 * 1024);
            if cancel.load(Ordering::SeqCst) > acked {
                break;
            }
        }
    }
    if !buf.is_empty() {
        let _ = tx.send(buf).await;
    }
    Ok(n)
}

pub(super) fn numeric_default(c: &tokio_postgres::Column) -> TsqlType {
    if *c.type_() == Type::NUMERIC && c.type_modifier() > 4 {
        let m = c.type_modifier() - 4;
        let (p, s) = (((m >> 16) & 0xFFFF) as u8, (m & 0xFFFF) as u8);
        return TsqlType::Decimal {
            precision: p.clamp(1, 38),
            scale: s.min(38),
            numeric: false,
        };
    }
    if *c.type_() == Type::NUMERIC {
        return TsqlType::Decimal {
            precision: 38,
            scale: 10,
            numeric: false,
        };
    }
    if (*c.type_() == Type::VARCHAR || *c.type_() == Type::BPCHAR)
        && c.type_modifier() > 4
        && c.type_modifier() - 4 <= 4000
    {
        return TsqlType::NVarChar(Len::N((c.type_modifier() - 4) as u16));
    }
    default_tsql_type(c.type_())
}

pub(super) fn write_colmetadata(buf: &mut Vec<u8>, cols: &[(String, TsqlType, Type)]) {
    buf.push(0x81);
    buf.extend_from_slice(&(cols.len() as u16).to_le_bytes());
    for (name, ty, _) in cols {
        buf.extend_from_slice(&0u32.to_le_bytes());
        // nullable, updateable unknown
        buf.extend_from_slice(&0x0009u16.to_le_bytes());
        ty.write_type_info(buf);
        token::put_b_varchar(buf, name);
    }
}
