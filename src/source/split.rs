//! The key space of a table split into ranges: the snapshot copies the ranges in parallel,
//! database-side validation aggregates them in pieces. A single integer key whose values are
//! dense (an identity, typically) is split by arithmetic between its MIN and MAX (two index
//! seeks); any other key at points SQL Server computes (`ROW_NUMBER() OVER (ORDER BY pk)`, one
//! scan of the key).

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
    if let Some(points) = dense_integer_points(tds, plan, parts).await? {
        return Ok(ranges(points));
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
    Ok(ranges(points))
}

/// Consecutive ranges: up to the first point, between points, after the last.
fn ranges(points: Vec<Key>) -> Vec<(Option<Key>, Option<Key>)> {
    let mut out = Vec::new();
    let mut lower: Option<Key> = None;
    for p in points {
        out.push((lower.take(), Some(p.clone())));
        lower = Some(p);
    }
    out.push((lower, None));
    out
}

/// Split points by arithmetic for one integer key column whose MIN..MAX span is at most twice
/// the estimated row count; `None` for any other key (or a sparse one), which SQL Server splits.
async fn dense_integer_points(
    tds: &mut Tds,
    plan: &TablePlan,
    parts: usize,
) -> Result<Option<Vec<Key>>, Error> {
    let [key] = plan.key.as_slice() else {
        return Ok(None);
    };
    let col = &plan.columns[*key];
    if !matches!(
        col.source_decl.to_ascii_lowercase().as_str(),
        "tinyint" | "smallint" | "int" | "bigint"
    ) {
        return Ok(None);
    }
    let c = crate::model::quote_tsql(&col.source);
    let sql = format!("SELECT MIN({c}), MAX({c}) FROM {}", plan.source.name.tsql());
    let what = || format!("read the key bounds of {}", plan.source.name);
    let row = tds
        .simple_query(sql)
        .await
        .context(what)?
        .into_row()
        .await
        .context(what)?;
    let cells: Vec<tiberius::ColumnData<'static>> =
        row.map(|r| r.into_iter().collect()).unwrap_or_default();
    let (lo, hi) = match (cells.first(), cells.get(1)) {
        (Some(lo), Some(hi)) => (KeyValue::from_cell(lo), KeyValue::from_cell(hi)),
        _ => return Ok(None),
    };
    let (Some(l), Some(h)) = (integer(&lo), integer(&hi)) else {
        return Ok(None);
    };
    Ok(dense_points(l, h, plan.source.estimated_rows, parts)
        .map(|ps| ps.into_iter().map(|p| vec![same_kind(&lo, p)]).collect()))
}

/// `parts - 1` increasing points that cut `lo..=hi` into ranges of equal span, when the span is
/// at most twice `rows` (dense) and at least `parts`.
fn dense_points(lo: i128, hi: i128, rows: i64, parts: usize) -> Option<Vec<i128>> {
    let span = hi - lo + 1;
    let p = parts as i128;
    if span > 2 * rows.max(0) as i128 || span < p {
        return None;
    }
    Some((1..p).map(|i| lo + span * i / p - 1).collect())
}

fn integer(k: &KeyValue) -> Option<i128> {
    Some(match k {
        KeyValue::U8(v) => *v as i128,
        KeyValue::I16(v) => *v as i128,
        KeyValue::I32(v) => *v as i128,
        KeyValue::I64(v) => *v as i128,
        _ => return None,
    })
}

/// `v` as the same integer variant as `like` (it lies between two values of that variant).
fn same_kind(like: &KeyValue, v: i128) -> KeyValue {
    match like {
        KeyValue::U8(_) => KeyValue::U8(v as u8),
        KeyValue::I16(_) => KeyValue::I16(v as i16),
        KeyValue::I32(_) => KeyValue::I32(v as i32),
        _ => KeyValue::I64(v as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::dense_points;

    #[test]
    fn dense_keys_split_evenly_and_sparse_ones_are_left_to_sql_server() {
        assert_eq!(
            dense_points(1, 1_000_000, 1_000_000, 3),
            Some(vec![333_333, 666_666])
        );
        assert_eq!(dense_points(-5, 4, 10, 2), Some(vec![-1]));
        // Keys with gaps up to half the span still count as dense.
        assert_eq!(dense_points(1, 200, 100, 4), Some(vec![50, 100, 150]));
        // Sparse (an outlier key far away), fewer values than parts, or no estimate.
        assert_eq!(dense_points(1, 1_000_000_000_000, 1_000_000, 3), None);
        assert_eq!(dense_points(7, 8, 2, 3), None);
        assert_eq!(dense_points(1, 100, 0, 2), None);
        // Every point lies inside the span and they increase.
        for parts in 2..40 {
            let ps = dense_points(i64::MIN as i128, i64::MIN as i128 + 999, 1000, parts).unwrap();
            assert_eq!(ps.len(), parts - 1);
            assert!(ps.windows(2).all(|w| w[0] < w[1]));
            assert!(ps
                .iter()
                .all(|p| *p >= i64::MIN as i128 && *p < i64::MIN as i128 + 999));
        }
    }
}
