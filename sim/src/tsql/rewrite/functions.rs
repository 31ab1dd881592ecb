//! T-SQL built-in functions mapped onto PostgreSQL or the simulator's `_sim` functions.

use crate::types::{Len, TsqlType};
use crate::value::pg_quote;
use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments};

use super::*;

/// A call's unnamed argument expressions, in order.
pub(super) fn unnamed_args(f: &sqlparser::ast::Function) -> Vec<&Expr> {
    match &f.args {
        FunctionArguments::List(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl Rewriter<'_> {
    pub(super) fn func(&mut self, f: &sqlparser::ast::Function) -> Option<Expr> {
        let name = f.name.to_string().to_lowercase();
        let name = name
            .trim_start_matches("dbo.")
            .trim_start_matches("sys.")
            .to_string();
        let args: Vec<String> = match &f.args {
            FunctionArguments::List(l) => l
                .args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e.to_string(),
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => "*".into(),
                    other => other.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let arg_exprs = unnamed_args(f);
        // COUNT(DISTINCT x), SUM(DISTINCT x)...: the qualifier travels with the arguments.
        let args: Vec<String> = match &f.args {
            FunctionArguments::List(l)
                if matches!(
                    l.duplicate_treatment,
                    Some(sqlparser::ast::DuplicateTreatment::Distinct)
                ) && !args.is_empty() =>
            {
                let mut a = args;
                a[0] = format!("DISTINCT {}", a[0]);
                a
            }
            _ => args,
        };
        if let Some(e) = self.spatial_constructor(&name, f) {
            return Some(e);
        }
        let a = |i: usize| args.get(i).cloned().unwrap_or_else(|| "NULL".into());
        let dt2 = Some(TsqlType::DateTime2(7));
        let (sql, ty): (String, Option<TsqlType>) = match name.as_str() {
            "isnull" => (
                format!("COALESCE({}, {})", a(0), a(1)),
                arg_exprs.first().and_then(|e| self.type_of(e)),
            ),
            "session_context" => (
                format!("_sim.session_context({})", a(0)),
                Some(TsqlType::NVarChar(Len::N(4000))),
            ),
            "len" => (format!("_sim.len({})", a(0)), Some(TsqlType::Int)),
            "datalength" => (format!("_sim.datalength({})", a(0)), Some(TsqlType::Int)),
            "getdate" | "current_timestamp" => ("_sim.getdate()".into(), Some(TsqlType::DateTime)),
            "getutcdate" => ("_sim.getutcdate()".into(), Some(TsqlType::DateTime)),
            "sysdatetime" => ("_sim.sysdatetime()".into(), dt2),
            "sysutcdatetime" => ("_sim.sysutcdatetime()".into(), dt2),
            "sysdatetimeoffset" => (
                "_sim.sysdatetimeoffset()".into(),
                Some(TsqlType::DateTimeOffset(7)),
            ),
            "newid" | "newsequentialid" => {
                ("gen_random_uuid()".into(), Some(TsqlType::UniqueIdentifier))
            }
            "scope_identity" => (self.identity_sql(), Some(TsqlType::Decimal { precision: 38, scale: 0, numeric: true })),
            "ident_current" => (
                format!("_sim.ident_current({})", a(0)),
                Some(TsqlType::Decimal {
                    precision: 38,
                    scale: 0,
                    numeric: true,
                }),
            ),
            "ident_seed" => (
                format!("_sim.ident_seed({})", a(0)),
                Some(TsqlType::Decimal {
                    precision: 38,
                    scale: 0,
                    numeric: true,
                }),
            ),
            "ident_incr" => (
                format!("_sim.ident_incr({})", a(0)),
                Some(TsqlType::Decimal {
                    precision: 38,
                    scale: 0,
                    numeric: true,
                }),
            ),
            "object_id" => (format!("_sim.object_id({})", a(0)), Some(TsqlType::Int)),
            "has_perms_by_name" => (
                format!("_sim.has_perms_by_name({}, {}, {})", a(0), a(1), a(2)),
                Some(TsqlType::Int),
            ),
            "object_name" => (
                format!("_sim.object_name({})", a(0)),
                Some(TsqlType::NVarChar(Len::N(128))),
            ),
            "schema_name" => (
                if args.is_empty() {
                    "'dbo'".into()
                } else {
                    format!("_sim.schema_name({})", a(0))
                },
                Some(TsqlType::NVarChar(Len::N(128))),
            ),
            "schema_id" => (
                if args.is_empty() {
                    "1".into()
                } else {
                    format!("_sim.schema_id({})", a(0))
                },
                Some(TsqlType::Int),
            ),
            "db_name" => (
                pg_quote(&self.ctx.database),
                Some(TsqlType::NVarChar(Len::N(128))),
            ),
            "db_id" => (
                format!(
                    "_sim.db_id({})",
                    if args.is_empty() {
                        pg_quote(&self.ctx.database)
                    } else {
                        a(0)
                    }
                ),
                Some(TsqlType::SmallInt),
            ),
            "columnproperty" => (
                format!("_sim.columnproperty({}, {}, {})", a(0), a(1), a(2)),
                Some(TsqlType::Int),
            ),
            "objectproperty" => (
                format!("_sim.objectproperty({}, {})", a(0), a(1)),
                Some(TsqlType::Int),
            ),
            "serverproperty" => (
                format!("_sim.serverproperty({})", a(0)),
                Some(TsqlType::SqlVariant),
            ),
            "sql_variant_property" => (
                format!("_sim.variant_property({}, {})", a(0), a(1)),
                Some(TsqlType::SqlVariant),
            ),
            "databasepropertyex" => (
                format!("_sim.databasepropertyex({}, {})", a(0), a(1)),
                Some(TsqlType::SqlVariant),
            ),
            "type_name" => (
                format!("_sim.type_name({})", a(0)),
                Some(TsqlType::NVarChar(Len::N(128))),
            ),
                        "substring" if arg_exprs.len() == 3 => (
                format!("substring({}, {}, {})", a(0), a(1), a(2)),
                match arg_exprs.first().and_then(|e| self.type_of(e)) {
                    Some(TsqlType::Binary(_) | TsqlType::VarBinary(_) | TsqlType::Image) => {
                        Some(TsqlType::VarBinary(Len::Max))
                    }
                    _ => return None,
                },
            ),
            "hashbytes" => {
                let data = match arg_exprs.get(1).and_then(|e| self.type_of(e)) {
                    Some(TsqlType::VarChar(_) | TsqlType::Char(_) | TsqlType::Text) => {
                        format!("_sim.cp1252({})", a(1))
                    }
                    Some(TsqlType::Binary(_) | TsqlType::VarBinary(_) | TsqlType::Image) => a(1),
                    _ => format!("_sim.utf16le(({})::text)", a(1)),
                };
                (
                    format!("_sim.hashbytes({}, {})", a(0), data),
                    Some(TsqlType::VarBinary(Len::N(8000))),
                )
            }
            "checksum" | "binary_checksum" => (
                format!("_sim.checksum(concat_ws('|', {}))", args.join(", ")),
                Some(TsqlType::Int),
            ),
            "charindex" => (
                if args.len() > 2 {
                    format!("_sim.charindex({}, {}, {})", a(0), a(1), a(2))
                } else {
                    format!("_sim.charindex({}, {}, 1)", a(0), a(1))
                },
                Some(TsqlType::Int),
            ),
            "replicate" => (format!("repeat({}, {})", a(0), a(1)), None),
            "space" => (format!("repeat(' ', {})", a(0)), None),
            "ceiling" => (format!("ceil({})", a(0)), None),
            "rand" => ("random()".into(), Some(TsqlType::Float)),
                        "min" | "max"
                if matches!(
                    arg_exprs.first().and_then(|e| self.type_of(e)),
                    Some(TsqlType::Binary(_) | TsqlType::VarBinary(_) | TsqlType::UniqueIdentifier)
                ) =>
            {
                (format!("_sim.{name}({})", a(0)), arg_exprs.first().and_then(|e| self.type_of(e)))
            }
            "count_big" => (
                format!("count({})", args.join(", ")),
                Some(TsqlType::BigInt),
            ),
            "next_value_for" => (
                format!("nextval(_sim.regclass_of({})::regclass)", a(0)),
                Some(TsqlType::BigInt),
            ),
            "count" => (
                format!("count({})::int", args.join(", ")),
                Some(TsqlType::Int),
            ),
            "iif" => (
                format!("CASE WHEN {} THEN {} ELSE {} END", a(0), a(1), a(2)),
                None,
            ),
            "isnumeric" => (format!("_sim.isnumeric({})", a(0)), Some(TsqlType::Int)),
            "nchar" => (format!("_sim.nchar({})", a(0)), Some(TsqlType::NChar(1))),
            "char" => (format!("_sim.char({})", a(0)), Some(TsqlType::Char(1))),
            "ascii" => (format!("_sim.ascii({})", a(0)), Some(TsqlType::Int)),
            "unicode" => (format!("_sim.unicode({})", a(0)), Some(TsqlType::Int)),
            "year" | "month" | "day" => (
                format!("_sim.datepart('{}', {})", name, a(0)),
                Some(TsqlType::Int),
            ),
            "dateadd" | "datediff" | "datediff_big" | "datepart" | "datename" => {
                let part = arg_exprs
                    .first()
                    .map(|e| e.to_string().to_lowercase())
                    .unwrap_or_default();
                let part = part.trim_matches(|c| c == '\'' || c == '"');
                let rest: Vec<String> = args.iter().skip(1).cloned().collect();
                let ty = match name.as_str() {
                    "dateadd" => arg_exprs.get(2).and_then(|e| self.type_of(e)).or(dt2),
                    "datename" => Some(TsqlType::NVarChar(Len::N(30))),
                    "datediff_big" => Some(TsqlType::BigInt),
                    _ => Some(TsqlType::Int),
                };
                let fname = if name == "datediff_big" {
                    "datediff"
                } else {
                    name.as_str()
                };
                                let call = format!("_sim.{fname}('{part}', {})", rest.join(", "));
                // DATEDIFF is an int in SQL Server (DATEDIFF_BIG a bigint): CAST(... AS binary)
                // must see four bytes.
                let call = if name == "datediff" {
                    format!("({call})::int")
                } else {
                    call
                };
                (call, ty)
            }
            "eomonth" => (format!("_sim.eomonth({})", a(0)), Some(TsqlType::Date)),
            "sysdatetime_ticks" => return None,
            "change_tracking_current_version" => {
                ("_sim.ct_current_version()".into(), Some(TsqlType::BigInt))
            }
            "fn_cdc_is_bit_set" => (format!("_sim.cdc_is_bit_set({}, {})", a(0), a(1)), Some(TsqlType::Bit)),
            "fn_cdc_get_column_ordinal" => (
                format!("(SELECT cc.column_ordinal FROM cdc.captured_columns cc JOIN cdc.change_tables ct ON ct.object_id = cc.object_id WHERE ct.capture_instance = {} AND lower(cc.column_name) = lower({}))", a(0), a(1)),
                Some(TsqlType::Int),
            ),
            "fn_cdc_has_column_changed" => (
                format!("_sim.cdc_is_bit_set((SELECT cc.column_ordinal FROM cdc.captured_columns cc JOIN cdc.change_tables ct ON ct.object_id = cc.object_id WHERE ct.capture_instance = {} AND lower(cc.column_name) = lower({})), {})", a(0), a(1), a(2)),
                Some(TsqlType::Bit),
            ),
            "change_tracking_is_column_in_mask" => (
                format!("_sim.ct_column_in_mask({}, {})", a(0), a(1)),
                Some(TsqlType::Int),
            ),
            "change_tracking_min_valid_version" => (
                format!("_sim.ct_min_valid_version({})", a(0)),
                Some(TsqlType::BigInt),
            ),
            "fn_cdc_get_max_lsn" => ("_sim.cdc_max_lsn()".into(), Some(TsqlType::Binary(10))),
            "fn_cdc_get_min_lsn" => (
                format!("_sim.cdc_min_lsn({})", a(0)),
                Some(TsqlType::Binary(10)),
            ),
            "fn_cdc_increment_lsn" => (
                format!("_sim.cdc_increment_lsn({})", a(0)),
                Some(TsqlType::Binary(10)),
            ),
            "fn_cdc_decrement_lsn" => (
                format!("_sim.cdc_decrement_lsn({})", a(0)),
                Some(TsqlType::Binary(10)),
            ),
            "fn_cdc_map_time_to_lsn" => (
                format!("_sim.cdc_map_time_to_lsn({}, {})", a(0), a(1)),
                Some(TsqlType::Binary(10)),
            ),
            "fn_cdc_map_lsn_to_time" => (
                format!("_sim.cdc_map_lsn_to_time({})", a(0)),
                Some(TsqlType::DateTime),
            ),
            _ => return None,
        };
        Some(self.typed_raw(sql, ty))
    }
}
