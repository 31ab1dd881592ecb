//! The key space of a table split into ranges at points SQL Server computes
//! (`ROW_NUMBER() OVER (ORDER BY pk)`): the snapshot copies the ranges in parallel, database-side
//! validation aggregates them in pieces.

use crate::convert::TablePlan;
use crate::error::{Context, Error};
use crate::source::read::{split_points_sql, Key, KeyValue};
use crate::source::Tds;

/// Splits the key space into about `parts` ranges at points SQL Server computes.
pub async fn key_ranges(
    tds: &mut Tds,
    plan: &TablePlan,
    parts: usize,
) -> Result<Vec<(Option<Key>, Option<Key>)>, Error> {
    if parts <= 1 || plan.source.estimated_rows < 2 {
        return Ok(vec![(None, None)]);
    }
    let step = (plan.source.estimated_rows / parts as i64).max(1);
    let sql = split_points_sql(plan, step);
    let rows = tds
        .simple_query(sql)
        .await
        .context(|| format!("compute split points of {}", plan.source.name))?
        .into_first_result()
        .await
        .context(|| format!("compute split points of {}", plan.source.name))?;
    let nkey = plan.key.len();
    let mut numbered: Vec<(i64, Key)> = rows
        .into_iter()
        .map(|r| {
            let cells: Vec<tiberius::ColumnData<'static>> = r.into_iter().collect();
            let rn = match cells.get(nkey) {
                Some(tiberius::ColumnData::I64(Some(n))) => *n,
                Some(tiberius::ColumnData::I32(Some(n))) => *n as i64,
                _ => 0,
            };
            (rn, cells[..nkey].iter().map(KeyValue::from_cell).collect())
        })
        .collect();
    numbered.sort_by_key(|(rn, _)| *rn);
    let mut points: Vec<Key> = numbered.into_iter().map(|(_, k)| k).collect();
    points.truncate(parts.saturating_sub(1).max(1));
    let mut out = Vec::new();
    let mut lower: Option<Key> = None;
    for p in points {
        out.push((lower.take(), Some(p.clone())));
        lower = Some(p);
    }
    out.push((lower, None));
    Ok(out)
}
