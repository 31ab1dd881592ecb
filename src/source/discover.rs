//! Catalog discovery: tables, columns with exact types, keys, indexes, foreign keys, identity,
//! defaults, CT/CDC status and row estimates, from `sys.*` in a handful of round trips.

use super::{query_rows, Tds};
use crate::error::Error;
use crate::model::{
    CaptureInstance, Lsn, SourceCheck, SourceColumn, SourceForeignKey, SourceIndex, SourceSequence,
    SourceTable, SourceType, TableName,
};
use std::collections::BTreeMap;
use tiberius::Row;

fn s(r: &Row, i: usize) -> String {
    r.try_get::<&str, _>(i)
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string()
}
fn os(r: &Row, i: usize) -> Option<String> {
    r.try_get::<&str, _>(i).ok().flatten().map(str::to_string)
}
fn int(r: &Row, i: usize) -> i64 {
    r.try_get::<i32, _>(i)
        .ok()
        .flatten()
        .map(i64::from)
        .or_else(|| r.try_get::<i64, _>(i).ok().flatten())
        .unwrap_or(0)
}
fn flag(r: &Row, i: usize) -> bool {
    r.try_get::<bool, _>(i).ok().flatten().unwrap_or(false)
}

const TABLES: &str = "SELECT t.object_id, s.name, t.name, \
  CAST(ISNULL((SELECT SUM(p.rows) FROM sys.partitions p WHERE p.object_id = t.object_id AND p.index_id IN (0, 1)), 0) AS bigint), \
  CAST(CASE WHEN ct.object_id IS NULL THEN 0 ELSE 1 END AS bit) \
  FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id \
  LEFT JOIN sys.change_tracking_tables ct ON ct.object_id = t.object_id \
  WHERE t.is_ms_shipped = 0 AND s.name NOT IN (N'cdc', N'sys') ORDER BY s.name, t.name";

const COLUMNS: &str = "SELECT c.object_id, c.name, COALESCE(bt.name, ty.name), CAST(c.max_length AS int), \
  CAST(c.precision AS int), CAST(c.scale AS int), c.is_nullable, c.is_identity, c.is_computed, \
  CAST(dc.definition AS nvarchar(4000)), CAST(cc.definition AS nvarchar(4000)), \
  CAST(COLUMNPROPERTY(c.object_id, c.name, 'IsDeterministic') AS int) \
  FROM sys.columns c JOIN sys.tables t ON t.object_id = c.object_id \
  JOIN sys.types ty ON ty.user_type_id = c.user_type_id \
  LEFT JOIN sys.types bt ON ty.is_user_defined = 1 AND bt.user_type_id = c.system_type_id \
  LEFT JOIN sys.default_constraints dc ON dc.parent_object_id = c.object_id AND dc.parent_column_id = c.column_id \
  LEFT JOIN sys.computed_columns cc ON cc.object_id = c.object_id AND cc.column_id = c.column_id \
  WHERE t.is_ms_shipped = 0 ORDER BY c.object_id, c.column_id";

/// The columns of some tables now (for schema changes while streaming), by object id.
pub async fn columns_of(
    tds: &mut Tds,
    object_ids: &[i32],
) -> Result<BTreeMap<i32, Vec<SourceColumn>>, Error> {
    let mut out: BTreeMap<i32, Vec<SourceColumn>> =
        object_ids.iter().map(|i| (*i, Vec::new())).collect();
    if object_ids.is_empty() {
        return Ok(out);
    }
    let ids: Vec<String> = object_ids.iter().map(|i| i.to_string()).collect();
    let sql = COLUMNS.replace(
        "WHERE t.is_ms_shipped = 0",
        &format!(
            "WHERE t.is_ms_shipped = 0 AND c.object_id IN ({})",
            ids.join(", ")
        ),
    );
    for r in query_rows(tds, &sql, "read columns").await? {
        if let Some(cols) = out.get_mut(&(int(&r, 0) as i32)) {
            cols.push(column(&r));
        }
    }
    Ok(out)
}

fn column(r: &Row) -> SourceColumn {
    SourceColumn {
        name: s(r, 1),
        source_type: SourceType {
            name: s(r, 2).to_lowercase(),
            max_length: int(r, 3) as i16,
            precision: int(r, 4) as u8,
            scale: int(r, 5) as u8,
        },
        nullable: flag(r, 6),
        identity: flag(r, 7),
        computed: if flag(r, 8) {
            Some(os(r, 10).unwrap_or_default())
        } else {
            None
        },
        default: os(r, 9),
        deterministic: match (flag(r, 8), r.try_get::<i32, _>(11).ok().flatten()) {
            (true, Some(d)) => Some(d == 1),
            _ => None,
        },
    }
}

const INDEXES: &str = "SELECT i.object_id, i.index_id, i.name, i.is_primary_key, i.is_unique, i.is_unique_constraint, \
  CAST(i.filter_definition AS nvarchar(4000)), c.name, ic.is_descending_key, ic.is_included_column \
  FROM sys.indexes i JOIN sys.tables t ON t.object_id = i.object_id \
  JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id \
  JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id \
  WHERE i.type IN (1, 2) AND t.is_ms_shipped = 0 \
  ORDER BY i.object_id, i.index_id, ic.is_included_column, ic.key_ordinal, ic.index_column_id";

const FOREIGN_KEYS: &str = "SELECT fk.parent_object_id, fk.object_id, fk.name, rs.name, rt.name, pc.name, rc.name, \
  fk.delete_referential_action_desc, fk.update_referential_action_desc \
  FROM sys.foreign_keys fk JOIN sys.foreign_key_columns fkc ON fkc.constraint_object_id = fk.object_id \
  JOIN sys.columns pc ON pc.object_id = fkc.parent_object_id AND pc.column_id = fkc.parent_column_id \
  JOIN sys.columns rc ON rc.object_id = fkc.referenced_object_id AND rc.column_id = fkc.referenced_column_id \
  JOIN sys.tables rt ON rt.object_id = fk.referenced_object_id JOIN sys.schemas rs ON rs.schema_id = rt.schema_id \
  ORDER BY fk.parent_object_id, fk.object_id, fkc.constraint_column_id";

const CHECKS: &str = "SELECT k.parent_object_id, k.name, CAST(k.definition AS nvarchar(4000)), \
  CAST(k.is_disabled AS int), CAST(k.is_not_trusted AS int) \
  FROM sys.check_constraints k JOIN sys.tables t ON t.object_id = k.parent_object_id \
  WHERE t.is_ms_shipped = 0 ORDER BY k.parent_object_id, k.name";

const CASE_SENSITIVE: &str = "SELECT c.object_id, c.name FROM sys.columns c \
  JOIN sys.tables t ON t.object_id = c.object_id \
  WHERE t.is_ms_shipped = 0 AND (c.collation_name LIKE '%[_]CS[_]%' OR c.collation_name LIKE '%[_]BIN%')";

const DESCRIPTIONS: &str = "SELECT ep.major_id, c.name, CAST(ep.value AS nvarchar(4000)) \
  FROM sys.extended_properties ep JOIN sys.tables t ON t.object_id = ep.major_id \
  LEFT JOIN sys.columns c ON c.object_id = ep.major_id AND c.column_id = ep.minor_id \
  WHERE ep.class = 1 AND ep.name = N'MS_Description' AND t.is_ms_shipped = 0 \
  ORDER BY ep.major_id, ep.minor_id";

const ALIAS_COLUMNS: &str = "SELECT c.object_id, c.name, s.name, ty.name FROM sys.columns c \
  JOIN sys.tables t ON t.object_id = c.object_id JOIN sys.types ty ON ty.user_type_id = c.user_type_id \
  JOIN sys.schemas s ON s.schema_id = ty.schema_id \
  WHERE t.is_ms_shipped = 0 AND ty.is_user_defined = 1 AND ty.is_assembly_type = 0 AND ty.is_table_type = 0";

const IDENTITY: &str =
    "SELECT ic.object_id, CAST(ic.last_value AS bigint) FROM sys.identity_columns ic \
  JOIN sys.tables t ON t.object_id = ic.object_id WHERE t.is_ms_shipped = 0";

const CAPTURE_INSTANCES: &str =
    "SELECT ct.source_object_id, ct.capture_instance, ct.start_lsn, cc.column_name \
  FROM cdc.change_tables ct LEFT JOIN cdc.captured_columns cc ON cc.object_id = ct.object_id \
  ORDER BY ct.source_object_id, ct.create_date, ct.object_id, cc.column_ordinal";

/// Reads every user table of the current database. `cdc_enabled` says whether the `cdc` schema
/// exists to be asked about capture instances.
pub async fn discover(tds: &mut Tds, cdc_enabled: bool) -> Result<Vec<SourceTable>, Error> {
    let mut tables: BTreeMap<i32, SourceTable> = BTreeMap::new();
    for r in query_rows(tds, TABLES, "discover tables").await? {
        let object_id = int(&r, 0) as i32;
        tables.insert(
            object_id,
            SourceTable {
                name: TableName {
                    schema: s(&r, 1),
                    name: s(&r, 2),
                },
                object_id,
                columns: Vec::new(),
                primary_key: Vec::new(),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                identity_current: None,
                change_tracking: flag(&r, 4),
                capture_instances: Vec::new(),
                estimated_rows: int(&r, 3),
                checks: Vec::new(),
                case_sensitive_columns: Vec::new(),
                descriptions: Vec::new(),
                alias_columns: Vec::new(),
            },
        );
    }
    for r in query_rows(tds, COLUMNS, "discover columns").await? {
        let Some(t) = tables.get_mut(&(int(&r, 0) as i32)) else {
            continue;
        };
        t.columns.push(column(&r));
    }
    let mut current: Option<(i32, i64)> = None;
    for r in query_rows(tds, INDEXES, "discover indexes").await? {
        let oid = int(&r, 0) as i32;
        let index_id = int(&r, 1);
        let Some(t) = tables.get_mut(&oid) else {
            continue;
        };
        let column = s(&r, 7);
        if flag(&r, 3) {
            if !flag(&r, 9) {
                t.primary_key.push(column);
            }
            continue;
        }
        if current != Some((oid, index_id)) {
            current = Some((oid, index_id));
            t.indexes.push(SourceIndex {
                name: s(&r, 2),
                columns: Vec::new(),
                include: Vec::new(),
                unique: flag(&r, 4),
                unique_constraint: flag(&r, 5),
                filter: os(&r, 6),
            });
        }
        if let Some(ix) = t.indexes.last_mut() {
            if flag(&r, 9) {
                ix.include.push(column);
            } else {
                ix.columns.push((column, flag(&r, 8)));
            }
        }
    }
    let mut current_fk: Option<i64> = None;
    for r in query_rows(tds, FOREIGN_KEYS, "discover foreign keys").await? {
        let Some(t) = tables.get_mut(&(int(&r, 0) as i32)) else {
            continue;
        };
        let fk_id = int(&r, 1);
        if current_fk != Some(fk_id) {
            current_fk = Some(fk_id);
            t.foreign_keys.push(SourceForeignKey {
                name: s(&r, 2),
                columns: Vec::new(),
                references: TableName {
                    schema: s(&r, 3),
                    name: s(&r, 4),
                },
                ref_columns: Vec::new(),
                on_delete: s(&r, 7),
                on_update: s(&r, 8),
            });
        }
        if let Some(fk) = t.foreign_keys.last_mut() {
            fk.columns.push(s(&r, 5));
            fk.ref_columns.push(s(&r, 6));
        }
    }
    for r in query_rows(tds, CHECKS, "discover check constraints").await? {
        if let Some(t) = tables.get_mut(&(int(&r, 0) as i32)) {
            t.checks.push(SourceCheck {
                name: s(&r, 1),
                definition: s(&r, 2),
                disabled: int(&r, 3) != 0,
                not_trusted: int(&r, 4) != 0,
            });
        }
    }
    for r in query_rows(tds, CASE_SENSITIVE, "discover column collations").await? {
        if let Some(t) = tables.get_mut(&(int(&r, 0) as i32)) {
            t.case_sensitive_columns.push(s(&r, 1));
        }
    }
    for r in query_rows(tds, DESCRIPTIONS, "discover descriptions (MS_Description)").await? {
        if let Some(t) = tables.get_mut(&(int(&r, 0) as i32)) {
            t.descriptions.push((os(&r, 1), s(&r, 2)));
        }
    }
    for r in query_rows(tds, ALIAS_COLUMNS, "discover alias-typed columns").await? {
        if let Some(t) = tables.get_mut(&(int(&r, 0) as i32)) {
            t.alias_columns.push((
                s(&r, 1),
                TableName {
                    schema: s(&r, 2),
                    name: s(&r, 3),
                },
            ));
        }
    }
    for r in query_rows(tds, IDENTITY, "discover identity values").await? {
        if let Some(t) = tables.get_mut(&(int(&r, 0) as i32)) {
            t.identity_current = r.try_get::<i64, _>(1).ok().flatten();
        }
    }
    if cdc_enabled {
        for r in query_rows(tds, CAPTURE_INSTANCES, "discover CDC capture instances").await? {
            let Some(t) = tables.get_mut(&(int(&r, 0) as i32)) else {
                continue;
            };
            let name = s(&r, 1);
            if t.capture_instances.last().map(|c| &c.name) != Some(&name) {
                let lsn = r
                    .try_get::<&[u8], _>(2)
                    .ok()
                    .flatten()
                    .and_then(Lsn::from_slice);
                t.capture_instances.push(CaptureInstance {
                    name,
                    start_lsn: lsn,
                    columns: Vec::new(),
                });
            }
            if let (Some(ci), Some(col)) = (t.capture_instances.last_mut(), os(&r, 3)) {
                ci.columns.push(col);
            }
        }
    }
    Ok(tables.into_values().collect())
}

const SEQUENCES: &str = "SELECT s.name, q.name, CAST(q.start_value AS nvarchar(40)), \
  CAST(q.increment AS nvarchar(40)), CAST(q.minimum_value AS nvarchar(40)), \
  CAST(q.maximum_value AS nvarchar(40)), CAST(q.is_cycling AS int), CAST(q.current_value AS nvarchar(40)) \
  FROM sys.sequences q JOIN sys.schemas s ON s.schema_id = q.schema_id ORDER BY s.name, q.name";

/// The database's sequence objects; one whose values do not fit a bigint (a decimal(38)
/// sequence) is returned as `Err` naming it.
pub async fn sequences(tds: &mut Tds) -> Result<Vec<Result<SourceSequence, String>>, Error> {
    let rows = query_rows(tds, SEQUENCES, "discover sequences").await?;
    Ok(rows
        .iter()
        .map(|r| {
            let name = TableName {
                schema: s(r, 0),
                name: s(r, 1),
            };
            let n = |i: usize| s(r, i).trim().parse::<i64>().ok();
            match (n(2), n(3), n(4), n(5), n(7)) {
                (Some(start), Some(increment), Some(min), Some(max), Some(current)) => {
                    Ok(SourceSequence {
                        name,
                        start,
                        increment,
                        min,
                        max,
                        cycle: int(r, 6) != 0,
                        current,
                    })
                }
                _ => Err(format!(
                    "sequence {name} has values beyond PostgreSQL's bigint sequences"
                )),
            }
        })
        .collect())
}

/// `IDENT_CURRENT` of one table (`None` without an identity column).
pub async fn ident_current(tds: &mut Tds, table: &TableName) -> Result<Option<i64>, Error> {
    let sql = format!(
        "SELECT CAST(IDENT_CURRENT({}) AS bigint)",
        crate::model::tsql_literal(&table.tsql())
    );
    let rows = query_rows(tds, &sql, &format!("IDENT_CURRENT of {table}")).await?;
    Ok(rows
        .first()
        .and_then(|r| r.try_get::<i64, _>(0).ok().flatten()))
}
