//! The simulator's catalog: per-database initialisation, DDL generated from declared T-SQL types,
//! and the declared types of result columns.
//!
//! Contract: every table created through T-SQL has a row in `_sim.tables`, one row per column in
//! `_sim.columns` (declared type and original spelling), and original spellings of its name and
//! constraints in `_sim.names`. PostgreSQL objects are named in lower case.

use crate::error::SqlError;
use crate::tsql::rewrite::{to_pg_text, Context, Rewriter, TableColumns};
use crate::types::TsqlType;
use crate::value::pg_quote;
use sqlparser::ast::{
    ColumnDef, ColumnOption, CreateTable, Expr, IdentityPropertyFormatKind, IdentityPropertyKind,
    ObjectName, TableConstraint,
};
use std::collections::HashMap;
use tokio_postgres::Client;

/// The SQL that creates the catalog inside a new database.
pub const INIT_SQL: &str = include_str!("init.sql");
/// Change Tracking: tables, triggers and functions (run after [`INIT_SQL`]).
pub const CT_SQL: &str = include_str!("ct.sql");
/// Change Data Capture: tables, triggers and functions (run after [`CT_SQL`]).
pub const CDC_SQL: &str = include_str!("cdc.sql");

/// Quotes a PostgreSQL identifier (lower-cased, as all simulator objects are named).
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.to_lowercase().replace('"', "\"\""))
}

/// `"schema"."table"` of a T-SQL object name (schema defaults to dbo).
pub fn pg_table(name: &ObjectName) -> (String, String, String) {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect();
    let (schema, table) = match parts.len() {
        0 => ("dbo".to_string(), String::new()),
        1 => ("dbo".to_string(), parts[0].clone()),
        n => (
            if parts[n - 2].is_empty() {
                "dbo".into()
            } else {
                parts[n - 2].clone()
            },
            parts[n - 1].clone(),
        ),
    };
    (
        format!("{}.{}", pg_ident(&schema), pg_ident(&table)),
        schema,
        table,
    )
}

/// Creates the catalog in a freshly created database and records it in `_sim.databases`.
pub async fn init_database(
    client: &Client,
    name: &str,
    database_id: i32,
    all: &[(String, i32)],
) -> Result<(), SqlError> {
    client
        .batch_execute(&format!("{INIT_SQL}\n{CT_SQL}\n{CDC_SQL}"))
        .await
        .map_err(|e| SqlError::internal(format!("initialising database {name}: {e}")))?;
    // pgcrypto gives HASHBYTES('SHA1'); without it everything else still works.
    let _ = client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA _sim")
        .await;
    let mut sql = format!("SET sim.database = {}; ", pg_quote(name));
    for (n, id) in all
        .iter()
        .chain(std::iter::once(&(name.to_string(), database_id)))
    {
        sql.push_str(&format!("INSERT INTO _sim.databases (name, database_id) VALUES ({}, {id}) ON CONFLICT DO NOTHING; ", pg_quote(n)));
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| SqlError::internal(e.to_string()))?;
    Ok(())
}

/// An expression in the simulator's PostgreSQL form (defaults, CHECKs, index filters).
pub(crate) fn rewrite_default(e: &Expr) -> Result<String, SqlError> {
    let ctx = Context::default();
    let mut stmt_expr = e.clone();
    let mut rw = Rewriter::new(&ctx);
    let _ = sqlparser::ast::VisitMut::visit(&mut stmt_expr, &mut rw);
    if let Some(err) = rw.error {
        return Err(SqlError::new(err.number, 16, err.message));
    }
    to_pg_text(&stmt_expr.to_string()).map_err(|e| SqlError::new(e.number, 16, e.message))
}

/// An expression as SQL Server prints a default's definition: names and keywords in lower case,
/// literals as written (`N'x'`, `getdate()`).
fn definition_text(e: &Expr) -> String {
    let printed = e.to_string();
    let dialect = sqlparser::dialect::MsSqlDialect {};
    match sqlparser::tokenizer::Tokenizer::new(&dialect, &printed).tokenize() {
        Ok(tokens) => tokens
            .into_iter()
            .map(|t| match t {
                sqlparser::tokenizer::Token::Word(w) if w.quote_style.is_none() => {
                    w.value.to_lowercase()
                }
                other => other.to_string(),
            })
            .collect::<String>()
            .split("next_value_for('")
            .enumerate()
            .map(|(i, part)| match (i, part.split_once("')")) {
                // NEXT VALUE FOR [schema].[sequence], as SQL Server prints it.
                (0, _) | (_, None) => part.to_string(),
                (_, Some((name, rest))) => {
                    let bracketed: Vec<String> = name
                        .split('.')
                        .map(|p| format!("[{}]", p.trim_matches(|c| c == '[' || c == ']')))
                        .collect();
                    format!("NEXT VALUE FOR {}{rest}", bracketed.join("."))
                }
            })
            .collect(),
        Err(_) => printed,
    }
}

fn number(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => Some(v.value.to_string()),
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => number(expr).map(|n| format!("-{n}")),
        Expr::Nested(inner) => number(inner),
        _ => None,
    }
}

struct KeyDef {
    name: String,
    primary: bool,
    columns: Vec<String>,
}

/// What one column contributes to a table's DDL.
#[derive(Default)]
struct ColumnSql {
    def: String,
    /// For a nullable column with a default: the definition without the default, and the
    /// default (ALTER TABLE ... ADD leaves existing rows NULL then, as SQL Server does without
    /// WITH VALUES).
    nullable_with_default: Option<(String, String)>,
    constraints: Vec<String>,
    keys: Vec<KeyDef>,
    catalog: Vec<String>,
}

fn constraint_name(name: &Option<sqlparser::ast::Ident>, prefix: &str, table: &str) -> String {
    name.as_ref()
        .map(|n| n.value.clone())
        .unwrap_or_else(|| auto_name(prefix, table))
}

fn fk_sql(name: &str, cols: &[String], fk: &sqlparser::ast::ForeignKeyConstraint) -> String {
    let (ft, _, _) = pg_table(&fk.foreign_table);
    let cols: Vec<String> = cols.iter().map(|c| pg_ident(c)).collect();
    let refcols: Vec<String> = fk
        .referred_columns
        .iter()
        .map(|c| pg_ident(&c.value))
        .collect();
    format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {ft} ({}){}",
        pg_ident(name),
        cols.join(", "),
        refcols.join(", "),
        fk_actions(fk)
    )
}

/// Alias types by lower-cased name: (base type, nullable, user_type_id).
pub type AliasTypes = HashMap<String, (String, bool, i32)>;

/// A computed column's expression (`AS expr`): its T-SQL type, its PostgreSQL text over the
/// table's columns, and its T-SQL definition as `sys.computed_columns` shows it.
struct Computed {
    ty: TsqlType,
    pg: String,
    definition: String,
    persisted: bool,
}

/// Types and rewrites a computed column's expression over `siblings` (the table's other columns),
/// by rewriting `SELECT expr FROM table` as any query.
fn computed(
    col: &ColumnDef,
    schema: &str,
    table: &str,
    siblings: &TableColumns,
) -> Result<Option<Computed>, SqlError> {
    let Some((expr, persisted)) = col.options.iter().find_map(|o| match &o.option {
        ColumnOption::Generated {
            generation_expr: Some(e),
            generation_expr_mode,
            ..
        } => Some((
            e.clone(),
            matches!(
                generation_expr_mode,
                Some(sqlparser::ast::GeneratedExpressionMode::Stored)
            ),
        )),
        _ => None,
    }) else {
        return Ok(None);
    };
    let orig = &col.name.value;
    let mut bracketed = expr.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut bracketed, |e| {
        if let Expr::Identifier(i) = e {
            i.quote_style = Some('[');
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    let definition = format!("({bracketed})");
    let sql = format!(
        "SELECT {expr} FROM [{}].[{}]",
        schema.replace(']', "]]"),
        table.replace(']', "]]")
    );
    let bad = |m: String| {
        SqlError::new(
            4936,
            16,
            format!("Computed column '{orig}' in table '{table}': {m}"),
        )
    };
    let mut stmts =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MsSqlDialect {}, &sql)
            .map_err(|e| bad(e.to_string()))?;
    let mut stmt = stmts.pop().ok_or_else(|| bad("no expression".into()))?;
    let mut ctx = Context::default();
    ctx.tables.insert(
        format!("{}.{}", schema.to_lowercase(), table.to_lowercase()),
        siblings.clone(),
    );
    let mut rw = Rewriter::new(&ctx);
    let types = rw.rewrite(&mut stmt);
    if let Some(err) = rw.error {
        return Err(SqlError::new(err.number, 16, err.message));
    }
    let ty = types
        .column(0, 1)
        .ok_or_else(|| bad("the simulator cannot tell the expression's type".into()))?;
    let sqlparser::ast::Statement::Query(q) = &stmt else {
        return Err(bad("not an expression".into()));
    };
    let sqlparser::ast::SetExpr::Select(sel) = q.body.as_ref() else {
        return Err(bad("not an expression".into()));
    };
    let item = match sel.projection.first() {
        Some(sqlparser::ast::SelectItem::UnnamedExpr(e)) => e.to_string(),
        _ => return Err(bad("not an expression".into())),
    };
    let pg = to_pg_text(&item).map_err(|e| SqlError::new(e.number, 16, e.message))?;
    Ok(Some(Computed {
        ty,
        pg,
        definition,
        persisted,
    }))
}

/// The definition of one column (type, identity, nullability, default, range check) and its
/// catalog row. `in_pk`: the column is part of a table-level primary key (so NOT NULL).
/// `computed`: its expression, for a computed column.
fn column_sql(
    col: &ColumnDef,
    table: &str,
    reg: &str,
    in_pk: bool,
    computed: Option<&Computed>,
    aliases: &AliasTypes,
) -> Result<ColumnSql, SqlError> {
    let orig = col.name.value.clone();
    let declared = col.data_type.to_string();
    let alias = aliases.get(
        &declared
            .trim_matches(|c| c == '"' || c == '[' || c == ']')
            .to_lowercase(),
    );
    let ty = match (computed, alias) {
        (Some(c), _) => c.ty.clone(),
        (None, Some((base, _, _))) => TsqlType::parse(base)
            .map_err(|e| SqlError::new(2715, 16, format!("Column '{orig}': {}", e.0)))?,
        (None, None) => TsqlType::parse(&declared)
            .map_err(|e| SqlError::new(2715, 16, format!("Column '{orig}': {}", e.0)))?,
    };
    let user_type_id = alias.map_or(ty.user_type_id() as i64, |a| a.2 as i64);
    let mut out = ColumnSql::default();
    // An alias type brings its own nullability (overridden by an explicit NULL / NOT NULL).
    // rowversion is NOT NULL unless declared NULL.
    let mut nullable = !in_pk && alias.is_none_or(|a| a.1) && ty != TsqlType::RowVersion;
    let mut identity: Option<(String, String)> = None;
    let mut default: Option<(Option<String>, Expr)> = None;
    let mut checks: Vec<String> = Vec::new();
    for opt in &col.options {
        match &opt.option {
            ColumnOption::Null => nullable = true,
            ColumnOption::NotNull => nullable = false,
            ColumnOption::Default(e) => {
                default = Some((opt.name.as_ref().map(|n| n.value.clone()), e.clone()))
            }
            ColumnOption::Identity(kind) => {
                let props = match kind {
                    IdentityPropertyKind::Identity(p) | IdentityPropertyKind::Autoincrement(p) => p,
                };
                identity = Some(match &props.parameters {
                    Some(IdentityPropertyFormatKind::FunctionCall(p))
                    | Some(IdentityPropertyFormatKind::StartAndIncrement(p)) => (
                        number(&p.seed).unwrap_or("1".into()),
                        number(&p.increment).unwrap_or("1".into()),
                    ),
                    None => ("1".into(), "1".into()),
                });
                nullable = false;
            }
            ColumnOption::PrimaryKey(_) => {
                nullable = false;
                out.keys.push(KeyDef {
                    name: constraint_name(&opt.name, "PK", table),
                    primary: true,
                    columns: vec![orig.clone()],
                });
            }
            ColumnOption::Unique(_) => {
                out.keys.push(KeyDef {
                    name: constraint_name(&opt.name, "UQ", table),
                    primary: false,
                    columns: vec![orig.clone()],
                });
            }
            ColumnOption::Check(ck) => {
                let name = constraint_name(&opt.name, "CK", table);
                checks.push(format!(
                    "CONSTRAINT {} CHECK ({})",
                    pg_ident(&name),
                    rewrite_default(&ck.expr)?
                ));
                out.catalog.push(name_row_constraint(reg, &name));
                out.catalog.push(check_text(reg, &name, &ck.expr));
            }
            ColumnOption::ForeignKey(fk) => {
                let name = constraint_name(&opt.name, "FK", table);
                out.constraints
                    .push(fk_sql(&name, std::slice::from_ref(&orig), fk));
                out.catalog.push(name_row_constraint(reg, &name));
            }
            _ => {}
        }
    }
    let mut def = format!("{} {}", pg_ident(&orig), ty.pg_storage());
    if let Some(c) = computed {
        // PostgreSQL keeps every computed column (SQL Server computes a non-persisted one on
        // read; the values are the same for a deterministic expression, the only kind
        // PostgreSQL accepts here).
        def.push_str(&format!(" GENERATED ALWAYS AS ({}) STORED", c.pg));
    }
    if let Some((seed, incr)) = &identity {
        def.push_str(&format!(
            " GENERATED BY DEFAULT AS IDENTITY (START WITH {seed} INCREMENT BY {incr}"
        ));
        if seed.starts_with('-') || incr.starts_with('-') {
            def.push_str(" MINVALUE -9223372036854775808");
        }
        def.push(')');
    }
    if !nullable {
        def.push_str(" NOT NULL");
    }
    let mut default_cols = ("NULL".to_string(), "NULL".to_string(), "NULL".to_string());
    if let Some((name, e)) = &default {
        let d = rewrite_default(e)?;
        if nullable {
            out.nullable_with_default = Some((String::new(), d.clone()));
        }
        def.push_str(&format!(" DEFAULT {d}"));
        let dname = name
            .clone()
            .unwrap_or_else(|| auto_name("DF", &format!("{table}__{orig}")));
        default_cols = (
            "nextval('_sim.object_ids')".into(),
            pg_quote(&dname),
            pg_quote(&format!("({})", definition_text(e))),
        );
    }
    if let Some(ck) = ty.pg_check(&pg_ident(&orig)) {
        def.push_str(&format!(
            " CONSTRAINT {} CHECK ({ck})",
            pg_ident(&format!("_sim_{}", short_hash(&orig)))
        ));
    }
    for c in checks {
        def.push(' ');
        def.push_str(&c);
    }
    if let Some((bare, d)) = &mut out.nullable_with_default {
        *bare = def.replacen(&format!(" DEFAULT {d}"), "", 1);
    }
    out.def = def;
    let (seed, incr) = identity.clone().unwrap_or(("NULL".into(), "NULL".into()));
    let (computed_definition, persisted) = match computed {
        Some(c) => (pg_quote(&c.definition), c.persisted.to_string()),
        None => ("NULL".into(), "NULL".into()),
    };
    out.catalog.push(format!(
        "INSERT INTO _sim.columns (table_oid, attnum, name, type, system_type_id, user_type_id, max_length, precision, scale, is_identity, seed, increment, default_object_id, default_name, default_definition, computed_definition, is_persisted) \
         SELECT {reg}, a.attnum, {}, {}, {}, {}, {}, {}, {}, {}, {seed}, {incr}, {}, {}, {}, {computed_definition}, {persisted} FROM pg_attribute a WHERE a.attrelid = {reg} AND a.attname = {}",
        pg_quote(&orig),
        pg_quote(&ty.to_string()),
        ty.system_type_id(),
        user_type_id,
        ty.max_length(),
        ty.precision(),
        ty.scale(),
        identity.is_some(),
        default_cols.0,
        default_cols.1,
        default_cols.2,
        pg_quote(&orig.to_lowercase())
    ));
    Ok(out)
}

/// A PRIMARY KEY or UNIQUE constraint and its catalog rows (index id 1 for the primary key,
/// the next free id otherwise).
fn key_sql(k: &KeyDef, reg: &str) -> (String, Vec<String>) {
    let cols: Vec<String> = k.columns.iter().map(|c| pg_ident(c)).collect();
    let def = format!(
        "CONSTRAINT {} {} ({})",
        pg_ident(&k.name),
        if k.primary { "PRIMARY KEY" } else { "UNIQUE" },
        cols.join(", ")
    );
    let id = if k.primary {
        "1".to_string()
    } else {
        format!("(SELECT COALESCE(max(index_id), 1) + 1 FROM _sim.indexes WHERE table_oid = {reg})")
    };
    let lower = pg_quote(&k.name.to_lowercase());
    let catalog = vec![
        format!("INSERT INTO _sim.indexes SELECT conindid, conrelid, {id}, {} FROM pg_constraint WHERE conrelid = {reg} AND conname = {lower}", k.primary),
        name_row_constraint(reg, &k.name),
        format!(
            "INSERT INTO _sim.names SELECT conindid, {} FROM pg_constraint WHERE conrelid = {reg} AND conname = {lower} ON CONFLICT (oid) DO UPDATE SET name = excluded.name",
            pg_quote(&k.name)
        ),
    ];
    (def, catalog)
}

fn index_column_names(cols: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    cols.iter().map(|ic| ident_of(&ic.column.expr)).collect()
}

/// A table-level constraint: its definition, and keys and catalog rows it adds.
fn table_constraint_sql(
    c: &TableConstraint,
    table: &str,
    reg: &str,
    out: &mut ColumnSql,
) -> Result<(), SqlError> {
    match c {
        TableConstraint::PrimaryKey(pk) => out.keys.push(KeyDef {
            name: constraint_name(&pk.name, "PK", table),
            primary: true,
            columns: index_column_names(&pk.columns),
        }),
        TableConstraint::Unique(uq) => out.keys.push(KeyDef {
            name: constraint_name(&uq.name, "UQ", table),
            primary: false,
            columns: index_column_names(&uq.columns),
        }),
        TableConstraint::ForeignKey(fk) => {
            let name = constraint_name(&fk.name, "FK", table);
            let cols: Vec<String> = fk.columns.iter().map(|c| c.value.clone()).collect();
            out.constraints.push(fk_sql(&name, &cols, fk));
            out.catalog.push(name_row_constraint(reg, &name));
        }
        TableConstraint::Check(ck) => {
            let name = constraint_name(&ck.name, "CK", table);
            out.constraints.push(format!(
                "CONSTRAINT {} CHECK ({})",
                pg_ident(&name),
                rewrite_default(&ck.expr)?
            ));
            out.catalog.push(name_row_constraint(reg, &name));
            out.catalog.push(check_text(reg, &name, &ck.expr));
        }
        other => {
            return Err(SqlError::new(
                40000,
                16,
                format!("The constraint '{other}' is not supported by the simulator."),
            ))
        }
    }
    Ok(())
}

/// Generates the PostgreSQL statements (one string, run as one transaction) for CREATE TABLE.
pub fn create_table_sql(ct: &CreateTable, aliases: &AliasTypes) -> Result<String, SqlError> {
    let (qualified, schema, table) = pg_table(&ct.name);
    if table.starts_with('#') {
        return Err(SqlError::new(
            40000,
            16,
            "Temporary tables are not supported by the simulator.".into(),
        ));
    }
    let reg = format!("{}::regclass", pg_quote(&qualified));
    let mut table_level = ColumnSql::default();
    for c in &ct.constraints {
        table_constraint_sql(c, &table, &reg, &mut table_level)?;
    }
    let pk_cols: Vec<String> = table_level
        .keys
        .iter()
        .filter(|k| k.primary)
        .flat_map(|k| k.columns.iter().map(|c| c.to_lowercase()))
        .collect();
    let mut defs = Vec::new();
    let mut constraints = Vec::new();
    let mut keys = Vec::new();
    let mut catalog = Vec::new();
    // The declared columns' types, for computed columns' expressions.
    let siblings: TableColumns = ct
        .columns
        .iter()
        .filter_map(|c| {
            let declared = c.data_type.to_string();
            let ty = TsqlType::parse(&declared).ok().or_else(|| {
                let a = aliases.get(
                    &declared
                        .trim_matches(|c| c == '"' || c == '[' || c == ']')
                        .to_lowercase(),
                )?;
                TsqlType::parse(&a.0).ok()
            })?;
            Some((c.name.value.to_lowercase(), ty))
        })
        .collect();
    for col in &ct.columns {
        let comp = computed(col, &schema, &table, &siblings)?;
        let c = column_sql(
            col,
            &table,
            &reg,
            pk_cols.contains(&col.name.value.to_lowercase()),
            comp.as_ref(),
            aliases,
        )?;
        defs.push(c.def);
        constraints.extend(c.constraints);
        keys.extend(c.keys);
        catalog.extend(c.catalog);
    }
    constraints.extend(table_level.constraints);
    keys.extend(table_level.keys);
    catalog.extend(table_level.catalog);
    let mut key_catalog = Vec::new();
    for k in &keys {
        let (def, rows) = key_sql(k, &reg);
        constraints.push(def);
        key_catalog.extend(rows);
    }
    defs.extend(constraints);
    let mut sql = format!("CREATE TABLE {qualified} ({});\n", defs.join(", "));
    sql.push_str(&format!(
        "DELETE FROM _sim.columns WHERE table_oid = {reg};\n"
    ));
    sql.push_str(&format!("INSERT INTO _sim.tables (oid) VALUES ({reg});\n"));
    sql.push_str(&format!("INSERT INTO _sim.names VALUES ({reg}, {}) ON CONFLICT (oid) DO UPDATE SET name = excluded.name;\n", pg_quote(&table)));
    sql.push_str(&format!(
        "INSERT INTO _sim.names SELECT oid, {} FROM pg_namespace WHERE nspname = {} ON CONFLICT (oid) DO NOTHING;\n",
        pg_quote(&schema),
        pg_quote(&schema.to_lowercase())
    ));
    for c in catalog.iter().chain(key_catalog.iter()) {
        sql.push_str(c);
        sql.push_str(";\n");
    }
    sql.push_str(&format!("SELECT _sim.refresh_normalizer({reg});\n"));
    Ok(sql)
}

/// Generates the PostgreSQL statements for ALTER TABLE: ADD columns and constraints, DROP
/// COLUMN and DROP CONSTRAINT, keeping the catalog in step. Other forms are refused by name.
pub fn alter_table_sql(
    at: &sqlparser::ast::AlterTable,
    aliases: &AliasTypes,
) -> Result<String, SqlError> {
    use sqlparser::ast::AlterTableOperation as Op;
    let (qualified, _, table) = pg_table(&at.name);
    let reg = format!("{}::regclass", pg_quote(&qualified));
    let mut sql = String::new();
    let mut catalog = Vec::new();
    for op in &at.operations {
        match op {
            Op::AddColumn { column_def, .. } => {
                if column_def.data_type.to_string() == crate::tsql::parse::COMPUTED_TYPE {
                    return Err(SqlError::new(
                        40000,
                        16,
                        "Adding a computed column with ALTER TABLE is not supported by the simulator; declare it in CREATE TABLE.".into(),
                    ));
                }
                let c = column_sql(column_def, &table, &reg, false, None, aliases)?;
                match &c.nullable_with_default {
                    // Existing rows stay NULL (SQL Server fills them only WITH VALUES).
                    Some((bare, default)) => sql.push_str(&format!(
                        "ALTER TABLE {qualified} ADD COLUMN {bare}; ALTER TABLE {qualified} ALTER COLUMN {} SET DEFAULT {default};\n",
                        pg_ident(&column_def.name.value)
                    )),
                    _ => sql.push_str(&format!("ALTER TABLE {qualified} ADD COLUMN {};\n", c.def)),
                }
                for k in &c.keys {
                    let (def, rows) = key_sql(k, &reg);
                    sql.push_str(&format!("ALTER TABLE {qualified} ADD {def};\n"));
                    catalog.extend(rows);
                }
                for con in c.constraints {
                    sql.push_str(&format!("ALTER TABLE {qualified} ADD {con};\n"));
                }
                catalog.extend(c.catalog);
            }
            Op::AddConstraint { constraint, .. } => {
                let mut c = ColumnSql::default();
                table_constraint_sql(constraint, &table, &reg, &mut c)?;
                for k in &c.keys {
                    let (def, rows) = key_sql(k, &reg);
                    sql.push_str(&format!("ALTER TABLE {qualified} ADD {def};\n"));
                    catalog.extend(rows);
                }
                for con in c.constraints {
                    sql.push_str(&format!("ALTER TABLE {qualified} ADD {con};\n"));
                }
                catalog.extend(c.catalog);
            }
            Op::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for c in column_names {
                    sql.push_str(&format!(
                        "DELETE FROM _sim.columns WHERE table_oid = {reg} AND lower(name) = {};\nALTER TABLE {qualified} DROP COLUMN {}{};\n",
                        pg_quote(&c.value.to_lowercase()),
                        if *if_exists { "IF EXISTS " } else { "" },
                        pg_ident(&c.value)
                    ));
                }
            }
            Op::DropConstraint {
                name, if_exists, ..
            } => {
                sql.push_str(&format!(
                    "DELETE FROM _sim.indexes WHERE index_oid = (SELECT conindid FROM pg_constraint WHERE conrelid = {reg} AND conname = {});\nALTER TABLE {qualified} DROP CONSTRAINT {}{};\n",
                    pg_quote(&name.value.to_lowercase()),
                    if *if_exists { "IF EXISTS " } else { "" },
                    pg_ident(&name.value)
                ));
            }
            other => {
                return Err(SqlError::new(
                    40000,
                    16,
                    format!(
                        "ALTER TABLE {} {other} is not supported by the simulator.",
                        at.name
                    ),
                ))
            }
        }
    }
    for c in catalog {
        sql.push_str(&c);
        sql.push_str(";\n");
    }
    sql.push_str(&format!(
        "UPDATE _sim.tables SET modify_date = localtimestamp(3) WHERE oid = {reg};\n"
    ));
    sql.push_str(&format!("SELECT _sim.refresh_normalizer({reg});\n"));
    Ok(sql)
}

fn ident_of(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

fn fk_actions(fk: &sqlparser::ast::ForeignKeyConstraint) -> String {
    let mut s = String::new();
    if let Some(a) = &fk.on_delete {
        s.push_str(&format!(" ON DELETE {a}"));
    }
    if let Some(a) = &fk.on_update {
        s.push_str(&format!(" ON UPDATE {a}"));
    }
    s
}

/// Keeps a CHECK constraint's T-SQL text (what `sys.check_constraints.definition` shows, in
/// parentheses as SQL Server prints it) as the PostgreSQL constraint's comment.
fn check_text(reg: &str, name: &str, e: &Expr) -> String {
    format!(
        "DO $c$ BEGIN EXECUTE format('COMMENT ON CONSTRAINT %I ON %s IS %L', {}, {reg}, {}); END $c$",
        pg_quote(&name.to_lowercase()),
        pg_quote(&tsql_definition(e))
    )
}

/// An expression's T-SQL text as SQL Server's catalog shows a CHECK's or a filtered index's
/// definition: in parentheses, quoted names in brackets.
pub(crate) fn tsql_definition(e: &Expr) -> String {
    let printed = e.to_string();
    let dialect = sqlparser::dialect::MsSqlDialect {};
    // Quoted names as SQL Server prints them: in brackets.
    let text = match sqlparser::tokenizer::Tokenizer::new(&dialect, &printed).tokenize() {
        Ok(tokens) => tokens
            .into_iter()
            .map(|t| match t {
                sqlparser::tokenizer::Token::Word(w) if w.quote_style == Some('"') => {
                    format!("[{}]", w.value.replace(']', "]]"))
                }
                other => other.to_string(),
            })
            .collect::<String>(),
        Err(_) => printed,
    };
    format!("({text})")
}

fn name_row_constraint(reg: &str, name: &str) -> String {
    format!(
        "INSERT INTO _sim.names SELECT oid, {} FROM pg_constraint WHERE conrelid = {reg} AND conname = {} ON CONFLICT (oid) DO UPDATE SET name = excluded.name",
        pg_quote(name),
        pg_quote(&name.to_lowercase())
    )
}

/// The PostgreSQL name of an index: SQL Server's index names are per table, PostgreSQL's per
/// schema, so the table's name leads (a hash keeps it within 63 bytes); `_sim.names` keeps the
/// name as written.
pub fn index_pg_name(table: &str, index: &str) -> String {
    let full = format!("{}${}", table.to_lowercase(), index.to_lowercase());
    if full.len() <= 63 {
        return full;
    }
    let head: String = full.chars().take(40).collect();
    format!("{head}${}", &short_hash(&full)[..16])
}

fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:016X}", h)
}

/// A system-style constraint name, e.g. `PK__orders__1A2B3C4D5E6F7081`.
pub fn auto_name(prefix: &str, table: &str) -> String {
    let t: String = table.chars().take(16).collect();
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}__{t}__{}",
        &short_hash(&format!("{table}{salt}"))[..16]
    )
}

/// Declared name and type of a result column, by (table oid, attribute number).
pub type ResultColumns = HashMap<(u32, i16), (String, TsqlType)>;

/// Loads declared names and types of the columns of the given tables.
pub async fn load_result_columns(
    client: &Client,
    oids: &[u32],
) -> Result<ResultColumns, tokio_postgres::Error> {
    let oids: Vec<i64> = oids.iter().map(|o| *o as i64).collect();
    let rows = client
        .query("SELECT table_oid::bigint, attnum, name, type FROM _sim.columns WHERE table_oid = ANY($1::bigint[]::oid[])", &[&oids])
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        let oid: i64 = r.get(0);
        let attnum: i16 = r.get(1);
        let name: String = r.get(2);
        let ty: String = r.get(3);
        if let Ok(t) = TsqlType::parse(&ty) {
            out.insert((oid as u32, attnum), (name, t));
        }
    }
    Ok(out)
}

/// Declared columns of a table (lower-cased name, type) and whether it has an identity column.
#[derive(Debug, Clone, Default)]
pub struct TableInfo {
    /// Columns in order.
    pub columns: Vec<(String, TsqlType)>,
    /// The table has an IDENTITY column.
    pub has_identity: bool,
    /// The identity column (lower-cased).
    pub identity: Option<String>,
    /// Computed columns (lower-cased).
    pub computed: Vec<String>,
}

/// Loads the declared columns of tables by lower-cased `schema.table` keys (absent tables are
/// absent from the map).
pub async fn load_table_columns(
    client: &Client,
    keys: &[String],
) -> Result<HashMap<String, TableInfo>, tokio_postgres::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname, lower(sc.name), sc.type, sc.is_identity, sc.computed_definition IS NOT NULL FROM _sim.columns sc \
             JOIN pg_class c ON c.oid = sc.table_oid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE (n.nspname || '.' || c.relname) = ANY($1) ORDER BY sc.attnum",
            &[&keys],
        )
        .await?;
    let mut out: HashMap<String, TableInfo> = HashMap::new();
    for r in rows {
        let key: String = r.get(0);
        let name: String = r.get(1);
        let ty: String = r.get(2);
        let identity: bool = r.get(3);
        let computed: bool = r.get(4);
        let info = out.entry(key).or_default();
        info.has_identity |= identity;
        if identity {
            info.identity = Some(name.clone());
        }
        if computed {
            info.computed.push(name.clone());
        }
        if let Ok(t) = TsqlType::parse(&ty) {
            info.columns.push((name, t));
        }
    }
    Ok(out)
}

/// Quotes a PostgreSQL identifier exactly as given (no case folding).
pub fn pg_quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The primary key columns (PostgreSQL name, declared type) of a change-tracked table, by its
/// T-SQL name; empty when the table is not tracked.
pub async fn load_change_tracking_key(
    client: &Client,
    name: &str,
) -> Result<Vec<(String, TsqlType)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT k.col::text, sc.type FROM _sim.ct_tables t CROSS JOIN LATERAL unnest(t.pk_columns) WITH ORDINALITY AS k(col, n) \
             JOIN pg_attribute a ON a.attrelid = t.table_oid AND a.attname = k.col \
             JOIN _sim.columns sc ON sc.table_oid = t.table_oid AND sc.attnum = a.attnum \
             WHERE t.table_oid = _sim.regclass_of($1) ORDER BY k.n",
            &[&name],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            TsqlType::parse(r.get::<_, &str>(1))
                .ok()
                .map(|t| (r.get::<_, String>(0), t))
        })
        .collect())
}

/// A CDC capture instance by name: its change table, captured columns and key columns;
/// `None` when CDC or the instance does not exist.
pub async fn load_cdc_instance(
    client: &Client,
    ci: &str,
) -> Result<Option<crate::tsql::rewrite::CdcInstance>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('cdc.change_tables') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let Some(row) = client
        .query_opt("SELECT object_id::oid::regclass::text, object_id FROM cdc.change_tables WHERE lower(capture_instance) = lower($1)", &[&ci])
        .await?
    else {
        return Ok(None);
    };
    let object_id: i32 = row.get(1);
    let columns = client
        .query("SELECT lower(column_name)::text FROM cdc.captured_columns WHERE object_id = $1 ORDER BY column_ordinal", &[&object_id])
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let keys = client
        .query("SELECT lower(column_name)::text FROM cdc.index_columns WHERE object_id = $1 ORDER BY index_ordinal", &[&object_id])
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok(Some(crate::tsql::rewrite::CdcInstance {
        change_table: row.get(0),
        columns,
        keys,
    }))
}
