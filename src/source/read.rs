//! Snapshot reads: primary-key keyset chunks and split points, every comparison done by SQL Server.
//!
//! Contract: a key is carried exactly as SQL Server returned it ([`KeyValue`]) and compared by
//! SQL Server after a cast to the column's declared type, so collations, uniqueidentifier order
//! and 100 ns temporal values are never judged by anyone else.

use crate::convert::TablePlan;
pub use crate::key::{Key, KeyValue};

/// Renders a key for messages: `(id=42)`, `(order_id=7, line_no=2)`.
pub fn key_display(plan: &TablePlan, key: &[KeyValue]) -> String {
    let parts: Vec<String> = plan
        .key_columns()
        .zip(key)
        .map(|(c, v)| format!("{}={}", c.source, v.display()))
        .collect();
    format!("({})", parts.join(", "))
}

/// `(k1 > p1) OR (k1 = p1 AND k2 > p2)`... for `Greater`, or the `<=` form for `AtMost`, over
/// the key columns, parameters numbered from `first_param`, each cast to the declared type.
pub fn keyset_predicate(plan: &TablePlan, bound: Bound, first_param: usize) -> String {
    let cols: Vec<(String, String)> = plan
        .key_columns()
        .enumerate()
        .map(|(i, c)| {
            let decl = &c.source_decl;
            (
                crate::model::quote_tsql(&c.source),
                format!("CAST(@P{} AS {decl})", first_param + i),
            )
        })
        .collect();
    let n = cols.len();
    let mut terms = Vec::new();
    for i in 0..n {
        let mut t: Vec<String> = cols[..i]
            .iter()
            .map(|(c, p)| format!("{c} = {p}"))
            .collect();
        let (c, p) = &cols[i];
        let op = match (bound, i + 1 == n) {
            (Bound::Greater, _) => ">",
            (Bound::AtMost, true) => "<=",
            (Bound::AtMost, false) => "<",
        };
        t.push(format!("{c} {op} {p}"));
        terms.push(format!("({})", t.join(" AND ")));
    }
    format!("({})", terms.join(" OR "))
}

/// Which side of a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Strictly after the key.
    Greater,
    /// Up to and including the key.
    AtMost,
}

/// The chunk query: up to `limit` rows after `after` and up to `upto`, in key order.
pub fn chunk_sql(
    plan: &TablePlan,
    after: bool,
    upto: bool,
    limit: usize,
    utf16_safe: bool,
) -> String {
    let nkey = plan.key.len();
    let mut preds = Vec::new();
    if after {
        preds.push(keyset_predicate(plan, Bound::Greater, 1));
    }
    if upto {
        preds.push(keyset_predicate(
            plan,
            Bound::AtMost,
            if after { 1 + nkey } else { 1 },
        ));
    }
    let filter = if preds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", preds.join(" AND "))
    };
    format!(
        "SELECT TOP ({limit}) {} FROM {}{filter} ORDER BY {}",
        plan.select_list(utf16_safe),
        plan.source.name.tsql(),
        plan.key_order_by()
    )
}

/// The split-point query: every `step`-th key in key order (SQL Server computes the order), each
/// followed by its row number, which is what orders the points (never the keys themselves).
pub fn split_points_sql(plan: &TablePlan, step: i64) -> String {
    let keys: Vec<String> = plan
        .key_columns()
        .enumerate()
        .map(|(i, c)| format!("{} AS [k{i}]", crate::model::quote_tsql(&c.source)))
        .collect();
    let aliases: Vec<String> = (0..plan.key.len()).map(|i| format!("[k{i}]")).collect();
    format!(
        "SELECT {a}, [rn__] FROM (SELECT {k}, ROW_NUMBER() OVER (ORDER BY {o}) AS [rn__] FROM {t}) AS [x__] \
         WHERE [rn__] % {step} = 0 ORDER BY [rn__]",
        a = aliases.join(", "),
        k = keys.join(", "),
        o = plan.key_order_by(),
        t = plan.source.name.tsql()
    )
}
