//! Statements: session-state statements, DDL through the catalog, everything else rewritten onto
//! PostgreSQL.

use crate::catalog::{self, pg_table};
use crate::error::SqlError;
use crate::tds::token::{self};
use crate::tds::PacketWriter;
use crate::tsql::parse::Stmt;
use crate::tsql::rewrite::{referenced_tables, to_pg_text, Context, Rewriter};
use crate::types::TsqlType;
use crate::value::{decode_pg, pg_quote, Value};
use sqlparser::ast::{Expr, ObjectName, Statement};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_postgres::types::Type;

use super::results::stream_statement;
use super::*;

impl Session {
    /// Evaluates a scalar expression through PostgreSQL.
    pub(super) async fn eval(&mut self, e: &Expr) -> Result<(Value, Option<TsqlType>), SqlError> {
        let mut stmt = match crate::tsql::parse::parse_batch(&format!("SELECT {e}")) {
            Ok(mut v) if v.len() == 1 => match v.remove(0) {
                Stmt::Sql(s) => s,
                _ => return Err(SqlError::internal("expression did not parse".into())),
            },
            _ => return Err(SqlError::internal(format!("cannot evaluate {e}"))),
        };
        let ctx = self.context_with_tables(&mut stmt).await?;
        let mut rw = Rewriter::new(&ctx);
        let types = rw.rewrite(&mut stmt);
        if let Some(err) = rw.error {
            return Err(SqlError::new(err.number, 16, err.message));
        }
        let sql =
            to_pg_text(&stmt.to_string()).map_err(|e| SqlError::new(e.number, 15, e.message))?;
        let client = self.pg()?;
        let st = client
            .prepare(&sql)
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        let rows = client
            .query(&st, &[])
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        let ty = st
            .columns()
            .first()
            .map(|c| c.type_().clone())
            .unwrap_or(Type::TEXT);
        let v = match rows.first() {
            Some(r) => {
                let raw: Raw = r
                    .try_get(0)
                    .map_err(|e| SqlError::internal(e.to_string()))?;
                decode_pg(&ty, raw.0).map_err(|e| SqlError::internal(e.0))?
            }
            None => Value::Null,
        };
        Ok((v, types.column(0, 1)))
    }

    pub(super) async fn eval_condition(&mut self, cond: &Expr) -> Result<bool, SqlError> {
        let (v, _) = self
            .eval(&Expr::Case {
                case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                operand: None,
                conditions: vec![sqlparser::ast::CaseWhen {
                    condition: cond.clone(),
                    result: Expr::Value(sqlparser::ast::Value::Number("1".into(), false).into()),
                }],
                else_result: Some(Box::new(Expr::Value(
                    sqlparser::ast::Value::Number("0".into(), false).into(),
                ))),
            })
            .await?;
        Ok(matches!(v, Value::Int(1)))
    }

    pub(super) async fn context_with_tables(
        &mut self,
        stmt: &mut Statement,
    ) -> Result<Context, SqlError> {
        let mut ctx = self.context();
        let keys = referenced_tables(stmt);
        let generation = super::DDL_GENERATION.load(Ordering::SeqCst);
        if generation != self.cache_generation {
            self.table_cache.clear();
            self.cache_generation = generation;
        }
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !self.table_cache.contains_key(*k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let mut loaded = catalog::load_table_columns(self.pg()?, &missing)
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
            for k in missing {
                let info = loaded.remove(&k);
                self.table_cache.insert(k, info);
            }
        }
        for k in &keys {
            if let Some(Some(info)) = self.table_cache.get(k) {
                ctx.tables.insert(k.clone(), info.columns.clone());
            }
        }
        for ci in crate::tsql::rewrite::cdc_function_instances(stmt) {
            if let Some(inst) = catalog::load_cdc_instance(self.pg()?, &ci)
                .await
                .map_err(|e| SqlError::from_pg(&e))?
            {
                ctx.cdc_instances.insert(ci.to_lowercase(), inst);
            }
        }
        for name in crate::tsql::rewrite::changetable_targets(stmt) {
            let cols = catalog::load_change_tracking_key(self.pg()?, &name)
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
            if !cols.is_empty() {
                ctx.ct_keys.insert(name.to_lowercase(), cols);
            }
        }
        Ok(ctx)
    }

    pub(super) async fn exec_stmt<W: AsyncWrite + Unpin + Send>(
        &mut self,
        s: &Stmt,
        out: &mut PacketWriter<W>,
        mode: Mode,
    ) -> Result<Done, SqlError> {
        let none = Done { rows: None };
        match s {
            Stmt::BeginTran => self.begin_tran().await.map(|_| none),
            Stmt::Commit => self.commit_tran().await.map(|_| none),
            Stmt::Rollback(name) => self.rollback_tran(name.as_deref()).await.map(|_| none),
            Stmt::Save(name) => {
                if self.trancount == 0 {
                    return Err(SqlError::new(
                        628,
                        16,
                        "Cannot issue SAVE TRANSACTION when there is no active transaction.".into(),
                    ));
                }
                self.ensure_txn().await?;
                let n = name.to_lowercase();
                self.pg()?
                    .batch_execute(&format!(
                        "SAVEPOINT {}",
                        catalog::pg_ident(&format!("sp_{n}"))
                    ))
                    .await
                    .map_err(|e| SqlError::from_pg(&e))?;
                self.savepoints.push(n);
                Ok(none)
            }
            Stmt::SetIsolation(level) => {
                self.isolation = *level;
                Ok(none)
            }
            Stmt::SetNoCount(on) => {
                self.nocount = *on;
                Ok(none)
            }
            Stmt::SetXactAbort(on) => {
                self.xact_abort = *on;
                Ok(none)
            }
            Stmt::SetIdentityInsert(t, on) => {
                let (q, _, _) = pg_table(t);
                self.identity_insert = on.then_some(q);
                Ok(none)
            }
            Stmt::SetOption(_) => Ok(none),
            Stmt::Declare(vars) => {
                for (name, dt, init) in vars {
                    let ty = TsqlType::parse(&dt.to_string())
                        .map_err(|e| SqlError::new(2715, 16, e.0))?;
                    let v = match init {
                        Some(e) => self.eval(e).await?.0,
                        None => Value::Null,
                    };
                    self.vars.insert(name.to_lowercase(), (ty, v));
                }
                Ok(none)
            }
            Stmt::SetVar(name, op, e) => {
                let lower = name.to_lowercase();
                let Some((ty, _)) = self.vars.get(&lower).cloned() else {
                    return Err(SqlError::new(
                        137,
                        15,
                        format!("Must declare the scalar variable \"{name}\"."),
                    ));
                };
                let expr = if op == "=" {
                    e.clone()
                } else {
                    let bin = match op.as_str() {
                        "+=" => sqlparser::ast::BinaryOperator::Plus,
                        "-=" => sqlparser::ast::BinaryOperator::Minus,
                        "*=" => sqlparser::ast::BinaryOperator::Multiply,
                        _ => sqlparser::ast::BinaryOperator::Divide,
                    };
                    Expr::BinaryOp {
                        left: Box::new(Expr::Identifier(sqlparser::ast::Ident::new(name.clone()))),
                        op: bin,
                        right: Box::new(e.clone()),
                    }
                };
                let (v, _) = self.eval(&expr).await?;
                self.vars.insert(lower, (ty, v));
                Ok(none)
            }
            Stmt::Use(db) => {
                if self.trancount > 0 {
                    return Err(SqlError::new(
                        226,
                        16,
                        "USE statement not allowed within multi-statement transaction.".into(),
                    ));
                }
                self.connect(db).await.map_err(|_| SqlError::new(911, 16, format!("Database '{db}' does not exist. Make sure that the name is entered correctly.")))?;
                token::env_change_text(out.buf(), 1, &self.database, "");
                token::message(
                    out.buf(),
                    false,
                    5701,
                    1,
                    0,
                    &format!("Changed database context to '{}'.", self.database),
                    "mssql-sim",
                    1,
                );
                Ok(none)
            }
            Stmt::CreateDatabase(name) => {
                self.shared.create_database(name).await?;
                Ok(none)
            }
            Stmt::DropDatabase(name) => {
                if name.eq_ignore_ascii_case(&self.database) {
                    return Err(SqlError::new(
                        3702,
                        16,
                        format!("Cannot drop database \"{name}\" because it is currently in use."),
                    ));
                }
                self.shared.drop_database(name).await?;
                Ok(none)
            }
            Stmt::CreateAliasType {
                name,
                base,
                nullable,
            } => {
                let (_, schema, type_name) = pg_table(name);
                self.create_alias_type(&schema, &type_name, base, *nullable)
                    .await?;
                Ok(none)
            }
            Stmt::CreateModule {
                kind,
                name,
                or_alter,
                text,
            } => {
                let (_, schema, module) = pg_table(name);
                self.run_ddl(format!(
                    "SELECT _sim.create_module({}, {}, {}, {}, {or_alter})",
                    pg_quote(&schema),
                    pg_quote(&module),
                    pg_quote(kind),
                    pg_quote(text)
                ))
                .await?;
                Ok(none)
            }
            Stmt::ConstraintChecking {
                table,
                enable,
                names,
            } => {
                let (qualified, _, _) = crate::catalog::pg_table(table);
                let names = match names {
                    None => "NULL".to_string(),
                    Some(n) => format!(
                        "ARRAY[{}]::text[]",
                        n.iter()
                            .map(|x| crate::value::pg_quote(&x.to_lowercase()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.run_ddl(format!(
                    "SELECT _sim.fk_checking({}::regclass, {enable}, {names})",
                    crate::value::pg_quote(&qualified)
                ))
                .await?;
                Ok(none)
            }
            Stmt::AlterDatabase(name, words) => {
                let db = if name.is_empty() {
                    self.database.clone()
                } else {
                    name.clone()
                };
                self.shared.alter_database(&db, words).await?;
                Ok(none)
            }
            Stmt::Print(e) => {
                let (v, _) = self.eval(e).await?;
                let text = match v {
                    Value::Text(s) => s,
                    Value::Null => String::new(),
                    other => crate::value::pg_literal(&other)
                        .trim_matches('\'')
                        .to_string(),
                };
                token::message(out.buf(), false, 0, 1, 0, &text, "mssql-sim", 1);
                Ok(none)
            }
            Stmt::Raise {
                message,
                severity,
                state,
            } => {
                let (v, _) = self.eval(message).await?;
                let text = match v {
                    Value::Text(s) => s,
                    other => format!("{other:?}"),
                };
                let mut e = SqlError::new(50000, (*severity).clamp(0, 25) as u8, text);
                e.state = (*state).clamp(0, 255) as u8;
                if e.class <= 10 {
                    token::message(
                        out.buf(),
                        false,
                        50000,
                        e.state,
                        e.class,
                        &e.message,
                        "mssql-sim",
                        1,
                    );
                    return Ok(none);
                }
                Err(e)
            }
            Stmt::RestartSequence { name, value } => {
                let (qualified, _, _) = pg_table(name);
                let with = match value {
                    Some(e) => match self.eval(e).await?.0 {
                        Value::Int(n) => format!(" WITH {n}"),
                        other => format!(
                            " WITH {}",
                            crate::value::pg_literal(&other).trim_matches('\'')
                        ),
                    },
                    None => String::new(),
                };
                self.run_ddl(format!("ALTER SEQUENCE {qualified} RESTART{with}"))
                    .await
                    .map(|_| none)
            }
            Stmt::Reseed { table, value } => {
                let n = match self.eval(value).await?.0 {
                    Value::Int(n) => n,
                    other => crate::value::pg_literal(&other)
                        .trim_matches('\'')
                        .parse::<i64>()
                        .map_err(|_| {
                            SqlError::new(
                                2560,
                                16,
                                "Parameter 3 is incorrect for this DBCC statement.".into(),
                            )
                        })?,
                };
                self.run_ddl(format!("SELECT _sim.reseed({}, {n})", pg_quote(table)))
                    .await
                    .map(|_| none)
            }
            Stmt::ExecString(e) => {
                let sql = match self.eval(e).await?.0 {
                    Value::Text(t) => t,
                    Value::Null => return Ok(none),
                    _ => {
                        return Err(SqlError::new(
                            245,
                            16,
                            "EXEC (...) takes a character string".into(),
                        ))
                    }
                };
                Box::pin(self.exec_batch(&sql, Mode::Proc, out))
                    .await
                    .map_err(|e| SqlError::internal(e.to_string()))?;
                if self.last_error != 0 {
                    return Err(SqlError::new(
                        self.last_error,
                        16,
                        "the dynamic SQL of EXEC (...) failed".into(),
                    ));
                }
                Ok(none)
            }
            Stmt::Exec { proc, args } => {
                let name = proc.to_string().to_lowercase().replace(['[', ']'], "");
                let mut values = Vec::new();
                for (n, e) in args {
                    // A bare word is a string argument (`EXEC sp_addtype id, 'varchar(11)'`).
                    let v = match e {
                        sqlparser::ast::Expr::Identifier(i) if !i.value.starts_with('@') => {
                            Value::Text(i.value.clone())
                        }
                        _ => self.eval(e).await?.0,
                    };
                    values.push((n.clone(), v));
                }
                let name = name
                    .trim_start_matches("sys.")
                    .trim_start_matches("dbo.")
                    .to_string();
                self.exec_procedure(&name, &values, out, mode).await?;
                Ok(none)
            }
            Stmt::AlterColumn {
                table,
                column,
                ty,
                nullable,
            } => {
                let t =
                    TsqlType::parse(&ty.to_string()).map_err(|e| SqlError::new(2715, 16, e.0))?;
                let (qualified, _, _) = pg_table(table);
                let col = catalog::pg_ident(column);
                let storage = t.pg_storage();
                let mut sql = format!("ALTER TABLE {qualified} ALTER COLUMN {col} TYPE {storage}");
                match nullable {
                    Some(false) => sql.push_str(&format!(", ALTER COLUMN {col} SET NOT NULL")),
                    _ => sql.push_str(&format!(", ALTER COLUMN {col} DROP NOT NULL")),
                }
                sql.push_str(&format!(
                    "; UPDATE _sim.columns SET type = {}, system_type_id = {}, user_type_id = {}, max_length = {}, precision = {}, scale = {} \
                     WHERE table_oid = {}::regclass AND lower(name) = {}",
                    pg_quote(&t.to_string()),
                    t.system_type_id(),
                    t.user_type_id(),
                    t.max_length(),
                    t.precision(),
                    t.scale(),
                    pg_quote(&qualified),
                    pg_quote(&column.to_lowercase())
                ));
                self.run_ddl(sql).await
            }
            Stmt::CreateIndex {
                name,
                table,
                unique,
                clustered,
                columns,
                include,
                filter,
            } => {
                let (qualified, _, table_name) = pg_table(table);
                let (pg_filter, tsql_filter) = match filter {
                    Some(f) => (
                        format!(" WHERE {}", catalog::rewrite_default(f)?),
                        pg_quote(&catalog::tsql_definition(f)),
                    ),
                    None => (String::new(), "NULL".to_string()),
                };
                let pg_name = catalog::index_pg_name(&table_name, name);
                let cols: Vec<String> = columns
                    .iter()
                    .map(|(c, desc)| {
                        format!(
                            "{}{}",
                            catalog::pg_ident(c),
                            if *desc { " DESC" } else { "" }
                        )
                    })
                    .collect();
                let inc = if include.is_empty() {
                    String::new()
                } else {
                    format!(
                        " INCLUDE ({})",
                        include
                            .iter()
                            .map(|c| catalog::pg_ident(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let schema = qualified.split('.').next().unwrap_or("\"dbo\"").to_string();
                let sql = format!(
                    "CREATE {}INDEX {} ON {qualified} ({}){inc}{pg_filter}; \
                     INSERT INTO _sim.indexes SELECT {schema_reg}::regclass, {}::regclass, (SELECT COALESCE(max(index_id), 1) + 1 FROM _sim.indexes WHERE table_oid = {}::regclass), {clustered}, {tsql_filter}; \
                     INSERT INTO _sim.names VALUES ({schema_reg}::regclass, {}) ON CONFLICT (oid) DO UPDATE SET name = excluded.name",
                    if *unique { "UNIQUE " } else { "" },
                    catalog::pg_ident(&pg_name),
                    cols.join(", "),
                    pg_quote(&qualified),
                    pg_quote(&qualified),
                    pg_quote(name),
                    schema_reg = pg_quote(&format!("{schema}.{}", catalog::pg_ident(&pg_name))),
                );
                self.run_ddl(sql).await
            }
            Stmt::CreateTrigger {
                name,
                table,
                or_alter,
                events,
                number,
                message,
                state: _,
                bypass,
            } => {
                let (qualified, _, _) = pg_table(table);
                let (_, _, trig) = pg_table(name);
                let (key, value) = match bypass {
                    Some((k, v)) => (pg_quote(k), pg_quote(v)),
                    None => ("NULL".into(), "NULL".into()),
                };
                let sql = format!(
                    "SELECT _sim.create_trigger({}::regclass, {}, {}, {or_alter}, {}, {number}, {}, {key}, {value})",
                    pg_quote(&qualified),
                    pg_quote(&trig.to_lowercase()),
                    pg_quote(&trig),
                    pg_quote(&events.join(" OR ")),
                    pg_quote(message)
                );
                self.run_ddl(sql).await
            }
            Stmt::StoredTrigger {
                name,
                table,
                or_alter,
                events,
                text,
            } => {
                let (qualified, schema, _) = pg_table(table);
                let (_, _, trig) = pg_table(name);
                let sql = format!(
                    "SELECT _sim.store_trigger({}::regclass, {}, {}, {or_alter}, {}, {}, {})",
                    pg_quote(&qualified),
                    pg_quote(&trig.to_lowercase()),
                    pg_quote(&trig),
                    pg_quote(&events.join(" OR ")),
                    pg_quote(&schema),
                    pg_quote(text)
                );
                self.run_ddl(sql).await
            }
            Stmt::DropTrigger { names, if_exists } => {
                let mut sql = String::new();
                for n in names {
                    let (_, schema, trig) = pg_table(n);
                    sql.push_str(&format!(
                        "SELECT _sim.drop_trigger({}, {}, {}, {if_exists}); \
                         DELETE FROM _sim.modules m WHERE m.type = 'TR' AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.oid = m.object_id::oid);",
                        pg_quote(&schema.to_lowercase()),
                        pg_quote(&trig.to_lowercase()),
                        pg_quote(&trig)
                    ));
                }
                self.run_ddl(sql).await
            }
            Stmt::TableChangeTracking {
                table,
                enable,
                track_columns,
            } => {
                let (qualified, _, name) = pg_table(table);
                let sql = if *enable {
                    format!(
                        "SELECT _sim.ct_enable_table({}::regclass, {track_columns}, {})",
                        pg_quote(&qualified),
                        pg_quote(&name)
                    )
                } else {
                    format!(
                        "SELECT _sim.ct_disable_table({}::regclass, {})",
                        pg_quote(&qualified),
                        pg_quote(&name)
                    )
                };
                self.run_ddl(sql).await
            }
            Stmt::WithChangeTrackingContext(ctx, inner) => {
                let bytes = match self.eval(ctx).await?.0 {
                    Value::Bytes(b) => b,
                    Value::Null => Vec::new(),
                    Value::Text(t) => t.into_bytes(),
                    other => {
                        return Err(SqlError::new(
                            257,
                            16,
                            format!(
                                "CHANGE_TRACKING_CONTEXT must be varbinary(128), not {other:?}."
                            ),
                        ))
                    }
                };
                if bytes.len() > 128 {
                    return Err(SqlError::new(
                        22106,
                        16,
                        "The CHANGE_TRACKING_CONTEXT value is longer than 128 bytes.".into(),
                    ));
                }
                let set = format!(
                    "SELECT set_config('sim.ct_context', '{}', false)",
                    crate::value::hex(&bytes)
                );
                self.pg()?
                    .batch_execute(&set)
                    .await
                    .map_err(|e| SqlError::from_pg(&e))?;
                let r = Box::pin(self.exec_stmt(inner, out, mode)).await;
                let _ = self
                    .pg()?
                    .batch_execute("SELECT set_config('sim.ct_context', '', false)")
                    .await;
                r
            }
            Stmt::If { .. } => Ok(none),
            Stmt::Sql(stmt) => self.exec_sql(stmt, out).await,
            Stmt::CreateView(stmt, text) => {
                let done = self.exec_sql(stmt, out).await?;
                if let Statement::CreateView(cv) = stmt.as_ref() {
                    let (qualified, schema, view) = pg_table(&cv.name);
                    self.run_ddl(format!(
                        "DELETE FROM _sim.modules WHERE object_id = to_regclass({q})::oid::int \
                           OR (type = 'V' AND lower(schema_name) = lower({s}) AND lower(name) = lower({n})); \
                         INSERT INTO _sim.modules (object_id, schema_name, name, type, definition) \
                         SELECT to_regclass({q})::oid::int, {s}, {n}, 'V', {}",
                        pg_quote(text),
                        q = pg_quote(&qualified),
                        s = pg_quote(&schema),
                        n = pg_quote(&view)
                    ))
                    .await?;
                }
                Ok(done)
            }
        }
    }

    /// `sys.sp_mssqlsim_seed @rows = n`: creates the sample schema in the current database through
    /// T-SQL and fills it in bulk (see `workload::seed`). Refuses a database that has it already.
    async fn seed<W: AsyncWrite + Unpin + Send>(
        &mut self,
        rows: i64,
        out: &mut PacketWriter<W>,
        mode: Mode,
    ) -> Result<(), SqlError> {
        if self.trancount > 0 {
            return Err(SqlError::new(
                574,
                16,
                "sp_mssqlsim_seed cannot run inside a user transaction.".into(),
            ));
        }
        let exists: bool = self
            .pg()?
            .query_one("SELECT to_regclass('dbo.customers') IS NOT NULL", &[])
            .await
            .map_err(|e| SqlError::from_pg(&e))?
            .get(0);
        if exists {
            return Err(SqlError::new(2714, 16, format!("There is already an object named 'customers' in the database '{}': it is seeded already.", self.database)));
        }
        Box::pin(self.exec_batch(crate::workload::seed::SCHEMA, Mode::Proc, out))
            .await
            .map_err(|e| SqlError::internal(e.to_string()))?;
        if self.last_error != 0 {
            return Err(SqlError::new(
                self.last_error,
                16,
                "creating the sample schema failed".into(),
            ));
        }
        let _ = mode;
        // The groups fill concurrently, each on its own backing connection and transaction.
        let (groups, finish) = crate::workload::seed::fill_groups(rows);
        let (_, pg_name) = self.shared.resolve_database(&self.database).await?;
        let mut tasks = Vec::new();
        for g in groups {
            let client = self.shared.connect_pg(&pg_name).await?;
            tasks.push(tokio::spawn(async move {
                let r = client.batch_execute(&format!("BEGIN; {g} COMMIT;")).await;
                if r.is_err() {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                r.map_err(|e| SqlError::from_pg(&e))
            }));
        }
        let mut first_error = None;
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => {
                    first_error =
                        first_error.or(Some(SqlError::internal(format!("seed task: {e}"))))
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let client = self.pg()?;
        client
            .batch_execute(&format!("{finish}; ANALYZE"))
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        Ok(())
    }

    /// Procedures the simulator provides. `sp_mssqlsim_ct_cleanup [@up_to_version = n]` is
    /// simulator-only: Change Tracking cleanup up to a version (without one: by the retention).
    pub(super) async fn exec_procedure<W: AsyncWrite + Unpin + Send>(
        &mut self,
        name: &str,
        args: &[(Option<String>, Value)],
        out: &mut PacketWriter<W>,
        mode: Mode,
    ) -> Result<(), SqlError> {
        match name {
            "sp_mssqlsim_ct_cleanup" => {
                let up_to = args
                    .iter()
                    .find(|(n, _)| {
                        n.as_deref()
                            .is_none_or(|n| n.eq_ignore_ascii_case("@up_to_version"))
                    })
                    .map(|(_, v)| v.clone());
                let sql = match up_to {
                    Some(Value::Int(v)) => format!("SELECT _sim.ct_cleanup({v})"),
                    Some(Value::Decimal(d)) => format!("SELECT _sim.ct_cleanup({d})"),
                    None | Some(Value::Null) => "SELECT _sim.ct_auto_cleanup()".to_string(),
                    Some(other) => {
                        return Err(SqlError::new(
                            8114,
                            16,
                            format!("Error converting {other:?} to bigint for @up_to_version."),
                        ))
                    }
                };
                self.run_ddl(sql).await.map(|_| ())
            }
            "sp_cdc_enable_db" | "sp_cdc_disable_db" => {
                let enable = name == "sp_cdc_enable_db";
                self.run_ddl(format!("SELECT _sim.cdc_{}_db()", if enable { "enable" } else { "disable" })).await?;
                self.shared.set_database_flag(&self.database, "is_cdc_enabled", enable).await
            }
            "sp_cdc_enable_table" => {
                let schema = text_arg(args, "@source_schema", 0)?.unwrap_or_else(|| "dbo".into());
                let table = text_arg(args, "@source_name", 1)?.ok_or_else(|| missing_arg(name, "@source_name"))?;
                let role = text_arg(args, "@role_name", 2)?;
                let instance = text_arg(args, "@capture_instance", 3)?.unwrap_or_else(|| format!("{schema}_{table}"));
                let net = match arg(args, "@supports_net_changes", 4) {
                    Some(Value::Int(i)) => *i != 0,
                    Some(Value::Bool(b)) => *b,
                    _ => false,
                };
                let columns = match text_arg(args, "@captured_column_list", 7)? {
                    Some(c) => format!(
                        "ARRAY[{}]::text[]",
                        c.split(',').map(|x| pg_quote(x.trim().trim_matches(|c| c == '[' || c == ']'))).collect::<Vec<_>>().join(", ")
                    ),
                    None => "NULL".into(),
                };
                let sql = format!(
                    "SELECT _sim.cdc_enable_table(_sim.regclass_of({}), {}, {}, {}, {net}, {columns})",
                    pg_quote(&format!("[{}].[{}]", schema.replace(']', "]]"), table.replace(']', "]]"))),
                    pg_quote(&format!("{schema}.{table}")),
                    pg_quote(&instance),
                    role.map(|r| pg_quote(&r)).unwrap_or_else(|| "NULL".into()),
                );
                self.run_ddl(sql).await.map(|_| ())
            }
            "sp_cdc_disable_table" => {
                let schema = text_arg(args, "@source_schema", 0)?.unwrap_or_else(|| "dbo".into());
                let table = text_arg(args, "@source_name", 1)?.ok_or_else(|| missing_arg(name, "@source_name"))?;
                let instance = text_arg(args, "@capture_instance", 2)?.unwrap_or_else(|| "all".into());
                let sql = format!(
                    "SELECT _sim.cdc_disable_table(_sim.regclass_of({}), {})",
                    pg_quote(&format!("[{}].[{}]", schema.replace(']', "]]"), table.replace(']', "]]"))),
                    pg_quote(&instance)
                );
                self.run_ddl(sql).await.map(|_| ())
            }
            "sp_cdc_cleanup_change_table" => {
                let instance = text_arg(args, "@capture_instance", 0)?.ok_or_else(|| missing_arg(name, "@capture_instance"))?;
                let lsn = match arg(args, "@low_water_mark", 1) {
                    Some(Value::Bytes(b)) => b.clone(),
                    _ => return Err(missing_arg(name, "@low_water_mark")),
                };
                self.run_ddl(format!("SELECT _sim.cdc_cleanup({}, '\\x{}'::bytea)", pg_quote(&instance), crate::value::hex(&lsn))).await.map(|_| ())
            }
                        "sp_cdc_change_job" => {
                let job = text_arg(args, "@job_type", 1)?.unwrap_or_else(|| "capture".into());
                match (job.to_lowercase().as_str(), arg(args, "@retention", 5)) {
                    ("cleanup", Some(Value::Int(minutes))) => {
                        self.run_ddl(format!("UPDATE _sim.cdc_state SET retention_minutes = {minutes}")).await.map(|_| ())
                    }
                    // The capture job's schedule is the server's --cdc-polling-interval.
                    _ => Ok(()),
                }
            }
                        "sp_mssqlsim_seed" => {
                let rows = match arg(args, "@rows", 0) {
                    Some(Value::Int(n)) if *n > 0 => *n,
                    None => 10_000,
                    Some(other) => return Err(SqlError::new(8114, 16, format!("@rows must be a positive integer, not {other:?}."))),
                };
                self.seed(rows, out, mode).await
            }
            // sp_addextendedproperty @name, @value, @level0type, @level0name, @level1type,
            // @level1name, @level2type, @level2name (sys.extended_properties).
            "sp_addextendedproperty" => {
                let t = |n: &str, i: usize| text_arg(args, n, i);
                let prop = t("@name", 0)?.ok_or_else(|| missing_arg("sp_addextendedproperty", "@name"))?;
                let value = match arg(args, "@value", 1) {
                    None | Some(Value::Null) => "NULL".to_string(),
                    Some(Value::Text(v)) => pg_quote(v),
                    Some(other) => pg_quote(crate::value::pg_literal(other).trim_matches('\'')),
                };
                let q = |v: Option<String>| v.map(|x| pg_quote(&x)).unwrap_or_else(|| "NULL".into());
                self.run_ddl(format!(
                    "SELECT _sim.add_extended_property({}, {value}, {}, {}, {}, {}, {}, {})",
                    pg_quote(&prop),
                    q(t("@level0type", 2)?),
                    q(t("@level0name", 3)?),
                    q(t("@level1type", 4)?),
                    q(t("@level1name", 5)?),
                    q(t("@level2type", 6)?),
                    q(t("@level2name", 7)?),
                ))
                .await
                .map(|_| ())
            }
            // sp_set_session_context @key, @value [, @read_only]: SESSION_CONTEXT(@key).
            "sp_set_session_context" => {
                let key = text_arg(args, "@key", 0)?
                    .ok_or_else(|| missing_arg("sp_set_session_context", "@key"))?;
                let value = match arg(args, "@value", 1) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::Text(v)) => v.clone(),
                    Some(other) => crate::value::pg_literal(other).trim_matches('\'').to_string(),
                };
                self.run_ddl(format!(
                    "SELECT set_config(_sim.session_key({}), {}, false)",
                    pg_quote(&key),
                    pg_quote(&value)
                ))
                .await
                .map(|_| ())
            }
            // Alias types (sp_addtype @typename, @phystype, @nulltype).
            "sp_addtype" => {
                let name = text_arg(args, "@typename", 0)?.ok_or_else(|| missing_arg(name, "@typename"))?;
                let base = text_arg(args, "@phystype", 1)?.ok_or_else(|| missing_arg("sp_addtype", "@phystype"))?;
                let nulls = text_arg(args, "@nulltype", 2)?.unwrap_or_else(|| "NULL".into());
                let nullable = !nulls.trim().eq_ignore_ascii_case("NOT NULL");
                self.create_alias_type("dbo", &name, &base, nullable).await
            }
            // The one server option the simulator keeps: 'max text repl size' (per database).
            "sp_configure" => {
                let option = text_arg(args, "@configname", 0)?.unwrap_or_default();
                if !option.eq_ignore_ascii_case("max text repl size")
                    && !option.eq_ignore_ascii_case("max text repl size (B)")
                {
                    return Err(SqlError::new(15123, 16, format!("The configuration option '{option}' does not exist, or it may be an advanced option.")));
                }
                match arg(args, "@configvalue", 1) {
                    Some(Value::Int(v)) if *v >= -1 && *v <= i32::MAX as i64 => self
                        .run_ddl(format!("UPDATE _sim.cdc_state SET max_text_repl_size = {v}"))
                        .await
                        .map(|_| ()),
                    None => Ok(()),
                    Some(other) => Err(SqlError::new(15129, 16, format!("'{other:?}' is not a valid value for configuration option 'max text repl size'."))),
                }
            }
            // One capture pass now (SQL Server's sys.sp_cdc_scan), instead of waiting for the job.
            "sp_cdc_scan" => self
                .run_ddl("SELECT CASE WHEN to_regclass('cdc.change_tables') IS NOT NULL THEN _sim.cdc_capture() END".into())
                .await
                .map(|_| ()),
            _ => {
                // A procedure a script created: kept for catalog readers, not run.
                let known = self
                    .pg()?
                    .query_opt("SELECT 1 FROM _sim.modules WHERE lower(name) = lower($1) AND type = 'P'", &[&name])
                    .await
                    .ok()
                    .flatten()
                    .is_some();
                if known {
                    return Err(SqlError::new(40000, 16, format!("Procedure '{name}' exists, but the simulator runs no procedure bodies (its text is in sys.sql_modules).")));
                }
                Err(SqlError::new(2812, 16, format!("Could not find stored procedure '{name}'.")))
            }
        }
    }

    /// Records an alias type (`sp_addtype`, `CREATE TYPE ... FROM`): a name for a base type and
    /// its nullability, listed in `sys.types` as user-defined.
    pub(super) async fn create_alias_type(
        &mut self,
        schema: &str,
        name: &str,
        base: &str,
        nullable: bool,
    ) -> Result<(), SqlError> {
        let ty = TsqlType::parse(base).map_err(|e| {
            SqlError::new(
                2715,
                16,
                format!(
                    "Column, parameter, or variable #1: Cannot find data type {base}. ({})",
                    e.0
                ),
            )
        })?;
        self.run_ddl(format!(
            "SELECT _sim.create_alias_type({}, {}, {}, {nullable}, {}, {}, {}, {})",
            pg_quote(schema),
            pg_quote(name),
            pg_quote(&ty.to_string()),
            ty.system_type_id(),
            ty.max_length(),
            ty.precision(),
            ty.scale()
        ))
        .await
        .map(|_| ())
    }

    /// The alias types of the current database, by lower-cased name.
    pub(super) async fn alias_types(&self) -> Result<catalog::AliasTypes, SqlError> {
        let rows = self
            .pg()?
            .query(
                "SELECT lower(name), base, nullable, user_type_id FROM _sim.alias_types",
                &[],
            )
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    (
                        r.get::<_, String>(1),
                        r.get::<_, bool>(2),
                        r.get::<_, i32>(3),
                    ),
                )
            })
            .collect())
    }

    /// Runs DDL (or catalog-changing SQL) as one statement; every session's catalog cache
    /// is invalidated, also when it fails part-way.
    pub(super) async fn run_ddl(&mut self, sql: String) -> Result<Done, SqlError> {
        let r = self
            .guarded(|client| async move {
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| SqlError::from_pg(&e))
            })
            .await;
        super::DDL_GENERATION.fetch_add(1, Ordering::SeqCst);
        r?;
        Ok(Done { rows: None })
    }

    /// INSERT, UPDATE or DELETE in one round trip: the statement alone, or inside a transaction
    /// `SAVEPOINT; statement; RELEASE` (a failure rolls back to the savepoint: the statement alone
    /// is undone, as in SQL Server). Returns the rows affected.
    pub(super) async fn exec_dml(&mut self, sql: &str) -> Result<u64, SqlError> {
        // A transaction's PostgreSQL BEGIN travels with its first statement.
        let begin = if self.trancount > 0 && !self.pg_txn_open {
            Some(self.pg_isolation().await?)
        } else {
            None
        };
        let client = self
            .pg
            .clone()
            .ok_or_else(|| SqlError::fatal("no backing connection".into()))?;
        let in_txn = self.trancount > 0;
        let mut batch = String::new();
        if let Some(level) = begin {
            batch.push_str(&format!("BEGIN ISOLATION LEVEL {level}; "));
            self.pg_txn_open = true;
        }
        if in_txn {
            batch.push_str(&format!(
                "SAVEPOINT _sim_stmt; {sql}; RELEASE SAVEPOINT _sim_stmt"
            ));
        } else {
            batch.push_str(sql);
        }
        // CommandComplete of the statement itself: after BEGIN and SAVEPOINT when sent.
        let position = begin.is_some() as usize + in_txn as usize;
        match client.simple_query(&batch).await {
            Ok(messages) => {
                let counts: Vec<u64> = messages
                    .iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
                        _ => None,
                    })
                    .collect();
                Ok(counts.get(position).copied().unwrap_or(0))
            }
            Err(e) => {
                let err = SqlError::from_pg(&e);
                if in_txn && !err.ends_transaction {
                    let _ = client
                        .batch_execute(
                            "ROLLBACK TO SAVEPOINT _sim_stmt; RELEASE SAVEPOINT _sim_stmt",
                        )
                        .await;
                }
                Err(err)
            }
        }
    }

    pub(super) async fn exec_sql<W: AsyncWrite + Unpin + Send>(
        &mut self,
        stmt: &Statement,
        out: &mut PacketWriter<W>,
    ) -> Result<Done, SqlError> {
        match stmt {
            Statement::CreateTable(ct) => {
                let aliases = self.alias_types().await?;
                let sql = catalog::create_table_sql(ct, &aliases)?;
                return self.run_ddl(sql).await;
            }
            Statement::AlterTable(at) => {
                let (qualified, _, _) = pg_table(&at.name);
                let sql = format!(
                    "{}SELECT _sim.cdc_record_ddl({}::regclass, {});",
                    catalog::alter_table_sql(at, &self.alias_types().await?)?,
                    pg_quote(&qualified),
                    pg_quote(&stmt.to_string())
                );
                return self.run_ddl(sql).await;
            }
            Statement::CreateSchema { schema_name, .. } => {
                let raw = schema_name.to_string();
                let name = if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
                    raw[1..raw.len() - 1].replace("\"\"", "\"")
                } else if raw.len() >= 2 && raw.starts_with('[') && raw.ends_with(']') {
                    raw[1..raw.len() - 1].replace("]]", "]")
                } else {
                    raw
                };
                let sql = format!(
                    "CREATE SCHEMA {}; INSERT INTO _sim.names SELECT oid, {} FROM pg_namespace WHERE nspname = {} ON CONFLICT (oid) DO NOTHING",
                    catalog::pg_ident(&name),
                    pg_quote(&name),
                    pg_quote(&name.to_lowercase())
                );
                return self.run_ddl(sql).await;
            }
            Statement::DropProcedure {
                proc_desc,
                if_exists,
                ..
            } => {
                let mut sql = String::new();
                for d in proc_desc {
                    let (_, schema, name) = pg_table(&d.name);
                    sql.push_str(&format!(
                        "SELECT _sim.drop_module({}, {}, 'P', {if_exists}); ",
                        pg_quote(&schema),
                        pg_quote(&name)
                    ));
                }
                return self.run_ddl(sql).await;
            }
            Statement::DropFunction(df) => {
                let mut sql = String::new();
                for d in &df.func_desc {
                    let (_, schema, name) = pg_table(&d.name);
                    sql.push_str(&format!(
                        "SELECT _sim.drop_module({}, {}, 'FN', {}); ",
                        pg_quote(&schema),
                        pg_quote(&name),
                        df.if_exists
                    ));
                }
                return self.run_ddl(sql).await;
            }
            Statement::Drop {
                object_type: sqlparser::ast::ObjectType::Table,
                names,
                if_exists,
                ..
            } => {
                let mut sql = String::new();
                for n in names {
                    let (q, _, _) = pg_table(n);
                    sql.push_str(&format!(
                        "DELETE FROM _sim.columns WHERE table_oid = to_regclass({q1}); DELETE FROM _sim.tables WHERE oid = to_regclass({q1}); \
                         DELETE FROM _sim.indexes WHERE table_oid = to_regclass({q1}); DROP TABLE {}{q}; ",
                        if *if_exists { "IF EXISTS " } else { "" },
                        q1 = pg_quote(&q)
                    ));
                }
                return self.run_ddl(sql).await;
            }
            _ => {}
        }
        let mut stmt = stmt.clone();
        let ctx = self.context_with_tables(&mut stmt).await?;
        self.name_insert_columns(&mut stmt);
        map_information_schema(&mut stmt);
        let mut rw = Rewriter::new(&ctx);
        let inferred = rw.rewrite(&mut stmt);
        if let Some(err) = rw.error {
            return Err(SqlError::new(err.number, 16, err.message));
        }
        let insert_table = match &stmt {
            Statement::Insert(ins) => match &ins.table {
                sqlparser::ast::TableObject::TableName(n) => Some(n.clone()),
                _ => None,
            },
            _ => None,
        };
        let is_dml = matches!(
            stmt,
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
        );
        let is_ddl = matches!(
            stmt,
            Statement::Truncate { .. } | Statement::Drop { .. } | Statement::CreateView { .. }
        );
        let sql =
            to_pg_text(&stmt.to_string()).map_err(|e| SqlError::new(e.number, 15, e.message))?;
        tracing::trace!(sql = %sql, "rewritten statement");
        if is_ddl {
            return self.run_ddl(sql).await;
        }
        if is_dml {
            let rows = self.exec_dml(&sql).await?;
            if let Some(t) = insert_table {
                // Explicit values under IDENTITY_INSERT move the identity past them, as SQL
                // Server does (PostgreSQL's sequence would not move).
                let (q, _, _) = pg_table(&t);
                if self.identity_insert.as_deref() == Some(q.as_str()) {
                    self.exec_dml(&format!(
                        "SELECT _sim.identity_catch_up({}::regclass)",
                        pg_quote(&q)
                    ))
                    .await?;
                }
                self.note_identity_insert(&t);
            }
            return Ok(Done { rows: Some(rows) });
        }
        let cancel = self.attention.clone();
        let acked = self.attention_acked;
        let cache = self.result_cache.clone();
        // Rows are encoded into a separate buffer and handed to the writer in pieces.
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
        let producer = self.guarded(move |client| async move {
            stream_statement(&client, &sql, inferred, tx, cancel, acked, cache).await
        });
        // Drive the producer and forward its output concurrently.
        let forward = async {
            while let Some(chunk) = rx.recv().await {
                out.buf().extend_from_slice(&chunk);
                if out.maybe_flush().await.is_err() {
                    break;
                }
            }
        };
        let (result, _) = tokio::join!(producer, forward);
        let rows = result?;
        Ok(Done { rows: Some(rows) })
    }

    /// `INSERT t VALUES (...)` without a column list fills the columns SQL Server fills: not the
    /// identity (unless IDENTITY_INSERT is on for the table), not computed columns. PostgreSQL
    /// would fill the first ones by position, so the list is written out.
    fn name_insert_columns(&self, stmt: &mut Statement) {
        if let Statement::Update(up) = stmt {
            if let sqlparser::ast::TableFactor::Table { name, .. } = &up.table.relation {
                let key = crate::tsql::rewrite::table_key(name);
                if let Some(Some(info)) = self.table_cache.get(&key) {
                    variant_assignments(&mut up.assignments, info);
                }
            }
        }
        let Statement::Insert(ins) = stmt else { return };
        let sqlparser::ast::TableObject::TableName(name) = ins.table.clone() else {
            return;
        };
        let key = crate::tsql::rewrite::table_key(&name);
        let Some(Some(info)) = self.table_cache.get(&key) else {
            return;
        };
        bit_literals(ins, info);
        variant_values(ins, info);
        if !ins.columns.is_empty() || ins.source.is_none() {
            return;
        }
        let (q, _, _) = pg_table(&name);
        let identity_insert = self.identity_insert.as_deref() == Some(q.as_str());
        let skip = |c: &String| {
            info.computed.contains(c) || (!identity_insert && info.identity.as_ref() == Some(c))
        };
        if !info.columns.iter().any(|(c, _)| skip(c)) {
            return;
        }
        ins.columns = info
            .columns
            .iter()
            .filter(|(c, _)| !skip(c))
            .map(|(c, _)| {
                sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::with_quote(
                    '"',
                    c.clone(),
                )])
            })
            .collect();
    }

    /// After an INSERT: SCOPE_IDENTITY() now refers to this table if it has an identity column.
    fn note_identity_insert(&mut self, table: &ObjectName) {
        let key = crate::tsql::rewrite::table_key(table);
        if let Some(Some(info)) = self.table_cache.get(&key) {
            if info.has_identity {
                let (q, _, _) = pg_table(table);
                self.identity_table = Some(q);
            }
        }
    }
}

/// INFORMATION_SCHEMA.X is served by the simulator's views in `_sim_is`.
pub(super) fn map_information_schema(stmt: &mut Statement) {
    let _ = sqlparser::ast::visit_relations_mut(stmt, |name| {
        let n = name.0.len();
        if n >= 2 {
            if let Some(id) = name.0[n - 2].as_ident() {
                if id.value.eq_ignore_ascii_case("information_schema") {
                    name.0[n - 2] = sqlparser::ast::ObjectNamePart::Identifier(
                        sqlparser::ast::Ident::new("_sim_is"),
                    );
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// A procedure argument by name, or by position when passed positionally.
fn arg<'a>(args: &'a [(Option<String>, Value)], name: &str, position: usize) -> Option<&'a Value> {
    args.iter()
        .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
        .or_else(|| {
            args.get(position)
                .filter(|(n, _)| n.is_none())
                .map(|(_, v)| v)
        })
}

fn text_arg(
    args: &[(Option<String>, Value)],
    name: &str,
    position: usize,
) -> Result<Option<String>, SqlError> {
    match arg(args, name, position) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Text(s)) => Ok(Some(s.clone())),
        Some(other) => Err(SqlError::new(
            8114,
            16,
            format!("Error converting {other:?} to nvarchar for {name}."),
        )),
    }
}

fn missing_arg(procedure: &str, name: &str) -> SqlError {
    SqlError::new(201, 16, format!("Procedure or function '{procedure}' expects parameter '{name}', which was not supplied."))
}

/// A number inserted into a bit column is 1 when it is not 0, as SQL Server converts it (the
/// simulator stores bit as smallint 0/1). Literal VALUES only.
fn bit_literals(ins: &mut sqlparser::ast::Insert, info: &catalog::TableInfo) {
    use sqlparser::ast::{Expr, SetExpr, Value as V};
    let targets = insert_targets(ins, info);
    let Some(source) = ins.source.as_mut() else {
        return;
    };
    let SetExpr::Values(values) = source.body.as_mut() else {
        return;
    };
    let bits: Vec<bool> = targets
        .iter()
        .map(|t| {
            info.columns
                .iter()
                .any(|(c, ty)| c == t && *ty == TsqlType::Bit)
        })
        .collect();
    if !bits.contains(&true) {
        return;
    }
    for row in &mut values.rows {
        for (e, bit) in row.iter_mut().zip(&bits) {
            if let (true, Expr::Value(v)) = (*bit, &mut *e) {
                if let V::Number(n, _) = &v.value {
                    if n.parse::<f64>().is_ok_and(|x| x != 0.0) {
                        v.value = V::Number("1".into(), false);
                    }
                }
            }
        }
    }
}

/// A value inserted into a sql_variant column keeps its base type, as SQL Server's implicit
/// conversion does: each one is written `CAST(v AS sql_variant)` (typed values that reach the
/// column otherwise are converted by PostgreSQL's assignment casts into `_sim.variant`).
fn variant_values(ins: &mut sqlparser::ast::Insert, info: &catalog::TableInfo) {
    use sqlparser::ast::SetExpr;
    let targets = insert_targets(ins, info);
    let variant: Vec<bool> = targets.iter().map(|t| is_variant(info, t)).collect();
    if !variant.contains(&true) {
        return;
    }
    let Some(source) = ins.source.as_mut() else {
        return;
    };
    let SetExpr::Values(values) = source.body.as_mut() else {
        return;
    };
    for row in &mut values.rows {
        for (e, v) in row.iter_mut().zip(&variant) {
            if *v {
                *e = as_variant(e.clone());
            }
        }
    }
}

/// `UPDATE t SET v = value` on a sql_variant column: the value keeps its base type.
fn variant_assignments(assignments: &mut [sqlparser::ast::Assignment], info: &catalog::TableInfo) {
    for a in assignments {
        if let sqlparser::ast::AssignmentTarget::ColumnName(name) = &a.target {
            let column = name
                .to_string()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .trim_matches(|x| x == '"' || x == '[' || x == ']')
                .to_lowercase();
            if is_variant(info, &column) {
                a.value = as_variant(a.value.clone());
            }
        }
    }
}

fn is_variant(info: &catalog::TableInfo, column: &str) -> bool {
    info.columns
        .iter()
        .any(|(c, ty)| c == column && *ty == TsqlType::SqlVariant)
}

fn as_variant(e: sqlparser::ast::Expr) -> sqlparser::ast::Expr {
    use sqlparser::ast::{DataType, Expr, Ident, ObjectName, Value as V};
    match &e {
        Expr::Value(v) if matches!(v.value, V::Null) => e,
        _ => Expr::Cast {
            kind: sqlparser::ast::CastKind::Cast,
            expr: Box::new(e),
            data_type: DataType::Custom(ObjectName::from(vec![Ident::new("sql_variant")]), vec![]),
            format: None,
        },
    }
}

/// The columns an INSERT's values go to, in order, lower-cased.
fn insert_targets(ins: &sqlparser::ast::Insert, info: &catalog::TableInfo) -> Vec<String> {
    let skip = |c: &String| info.computed.contains(c) || info.identity.as_ref() == Some(c);
    if ins.columns.is_empty() {
        info.columns
            .iter()
            .filter(|(c, _)| !skip(c))
            .map(|(c, _)| c.clone())
            .collect()
    } else {
        ins.columns
            .iter()
            .map(|c| {
                c.to_string()
                    .trim_matches(|x| x == '"' || x == '[' || x == ']')
                    .to_lowercase()
            })
            .collect()
    }
}
