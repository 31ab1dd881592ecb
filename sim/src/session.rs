//! One TDS session: login, then requests, each executed on the session's own PostgreSQL
//! connection to the current database.
//!
//! Transaction contract (as SQL Server with XACT_ABORT OFF): outside BEGIN TRAN each statement
//! commits on its own; inside, a failed statement is rolled back alone (a PostgreSQL savepoint
//! per statement) and the transaction goes on, except for errors that end it (3960, 1205).
//! Result rows stream from PostgreSQL to the client with bounded memory.

use crate::catalog::{self, pg_table, ResultColumns};
use crate::error::SqlError;
use crate::server::Shared;
use crate::tds::rpc::{parse_rpc, parse_sql_batch, RpcParam};
use crate::tds::token::{
    self, DONE_ATTN, DONE_COUNT, DONE_ERROR, DONE_MORE, TOKEN_DONE, TOKEN_DONEINPROC,
    TOKEN_DONEPROC,
};
use crate::tds::{self, login, PacketWriter};
use crate::tsql::parse::{parse_batch, parse_param_declarations, Isolation, Stmt};
use crate::tsql::rewrite::{referenced_tables, to_pg_text, Context, Rewriter};
use crate::types::{Len, TsqlType};
use crate::value::{decode_pg, default_tsql_type, encode_pg_value, pg_quote, Value};
use futures_util::{pin_mut, TryStreamExt};
use sqlparser::ast::{Expr, ObjectName, Statement};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Client;

/// Raw bytes of a PostgreSQL value in binary format.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Where a statement's reply tokens go: a batch (DONE) or a procedure (DONEINPROC).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Batch,
    Proc,
}

/// Session state.
pub struct Session {
    shared: Arc<Shared>,
    spid: u16,
    pg: Option<Arc<Client>>,
    database: String,
    vars: HashMap<String, (TsqlType, Value)>,
    trancount: u32,
    pg_txn_open: bool,
    isolation: Isolation,
    savepoints: Vec<String>,
    nocount: bool,
    xact_abort: bool,
    rowcount: i64,
    scope_identity: Value,
    last_error: i32,
    attention: Arc<AtomicU32>,
    attention_acked: u32,
}

static NEXT_SPID: AtomicU32 = AtomicU32::new(51);

/// Result of a statement: rows sent or affected.
struct Done {
    rows: Option<u64>,
}

impl Session {
    /// A session before login.
    pub fn new(shared: Arc<Shared>) -> Self {
        Session {
            shared,
            spid: (NEXT_SPID.fetch_add(1, Ordering::Relaxed) % 32000) as u16,
            pg: None,
            database: "master".into(),
            vars: HashMap::new(),
            trancount: 0,
            pg_txn_open: false,
            isolation: Isolation::ReadCommitted,
            savepoints: Vec::new(),
            nocount: false,
            xact_abort: false,
            rowcount: 0,
            scope_identity: Value::Null,
            last_error: 0,
            attention: Arc::new(AtomicU32::new(0)),
            attention_acked: 0,
        }
    }

    /// Serves one client connection until it closes. Protocol errors end the session only.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        mut self,
        stream: S,
    ) -> std::io::Result<()> {
        let (mut rd, wr) = tokio::io::split(stream);
        let mut out = PacketWriter::new(wr);
        // PRELOGIN
        let Some(msg) = tds::read_message(&mut rd).await? else {
            return Ok(());
        };
        if msg.ty != tds::PT_PRELOGIN {
            return Err(tds::invalid(format!(
                "expected PRELOGIN, got packet type {:#x}",
                msg.ty
            )));
        }
        let pre = login::parse_prelogin(&msg.data)?;
        out.buf()
            .extend_from_slice(&login::prelogin_reply(login::ENCRYPT_NOT_SUP));
        out.end_message().await?;
        if matches!(pre.encryption, Some(login::ENCRYPT_REQ)) {
            // The client insists on TLS, which this server does not offer; it will disconnect.
            tracing::debug!("client requires encryption, which is not supported");
        }
        // LOGIN7
        let Some(msg) = tds::read_message(&mut rd).await? else {
            return Ok(());
        };
        if msg.ty != tds::PT_LOGIN7 {
            return Err(tds::invalid(format!(
                "expected LOGIN7, got packet type {:#x}",
                msg.ty
            )));
        }
        let l = login::parse_login7(&msg.data)?;
        if !self.login(&l, &mut out).await? {
            return Ok(());
        }
        // Requests; a reader task forwards messages and counts attentions as they arrive.
        let (tx, mut rx) = mpsc::channel::<tds::Message>(4);
        let attn = self.attention.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(m)) = tds::read_message(&mut rd).await {
                if m.ty == tds::PT_ATTENTION {
                    attn.fetch_add(1, Ordering::SeqCst);
                }
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        });
        while let Some(msg) = rx.recv().await {
            let r = self.handle(msg, &mut out).await;
            if let Err(e) = r {
                reader.abort();
                return Err(e);
            }
            if self.pg.as_ref().is_some_and(|c| c.is_closed()) {
                break;
            }
        }
        reader.abort();
        Ok(())
    }

    async fn login<W: AsyncWrite + Unpin + Send>(
        &mut self,
        l: &login::Login7,
        out: &mut PacketWriter<W>,
    ) -> std::io::Result<bool> {
        let ok = l.user_name.eq_ignore_ascii_case("sa") && l.password == self.shared.sa_password;
        if !ok {
            // The password is never echoed, only the login name.
            let e = SqlError::new(
                18456,
                14,
                format!("Login failed for user '{}'.", l.user_name),
            );
            return refuse_login(out, &e).await;
        }
        let db = if l.database.is_empty() {
            "master".to_string()
        } else {
            l.database.clone()
        };
        if let Err(e) = self.connect(&db).await {
            let e = SqlError::new(
                4060,
                11,
                format!(
                    "Cannot open database \"{db}\" requested by the login. The login failed. ({})",
                    e.message
                ),
            );
            return refuse_login(out, &e).await;
        }
        if l.packet_size >= 512 {
            out.set_packet_size(l.packet_size as usize);
        }
        let b = out.buf();
        token::env_change_text(b, 1, &self.database, "master");
        token::message(
            b,
            false,
            5701,
            2,
            0,
            &format!("Changed database context to '{}'.", self.database),
            "mssql-sim",
            1,
        );
        token::env_change_bytes(b, 7, &token::COLLATION, &[]);
        token::env_change_text(b, 2, "us_english", "");
        token::message(
            b,
            false,
            5703,
            1,
            0,
            "Changed language setting to us_english.",
            "mssql-sim",
            1,
        );
        token::login_ack(b);
        let size = if l.packet_size >= 512 {
            l.packet_size.min(32767)
        } else {
            4096
        };
        token::env_change_text(b, 4, &size.to_string(), &size.to_string());
        token::done(b, TOKEN_DONE, 0, 0, 0);
        out.end_message().await?;
        Ok(true)
    }

    /// Opens a PostgreSQL connection to the database named `db` (T-SQL name).
    async fn connect(&mut self, db: &str) -> Result<(), SqlError> {
        let (name, pg_name) = self.shared.resolve_database(db).await?;
        let client = self.shared.connect_pg(&pg_name).await?;
        client
            .batch_execute(&format!(
                "SET search_path = dbo; SET sim.database = {}; SET intervalstyle = 'postgres'",
                pg_quote(&name)
            ))
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        if self.shared.read_committed_snapshot(&name).is_none() {
            let row = client
                .query_opt(
                    "SELECT read_committed_snapshot FROM _sim.databases WHERE name = $1",
                    &[&name],
                )
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
            self.shared.set_read_committed_snapshot(
                &name,
                row.map(|r| r.get::<_, bool>(0)).unwrap_or(false),
            );
        }
        self.pg = Some(Arc::new(client));
        self.database = name;
        self.trancount = 0;
        self.pg_txn_open = false;
        Ok(())
    }

    fn pg(&self) -> Result<&Client, SqlError> {
        self.pg
            .as_deref()
            .ok_or_else(|| SqlError::fatal("no backing connection".into()))
    }

    async fn handle<W: AsyncWrite + Unpin + Send>(
        &mut self,
        msg: tds::Message,
        out: &mut PacketWriter<W>,
    ) -> std::io::Result<()> {
        if msg.reset_connection {
            self.reset().await;
        }
        match msg.ty {
            tds::PT_ATTENTION => {
                if self.attention_acked < self.attention.load(Ordering::SeqCst) {
                    self.attention_acked += 1;
                    token::done(out.buf(), TOKEN_DONE, DONE_ATTN, 0, 0);
                    out.end_message().await?;
                }
                Ok(())
            }
            tds::PT_SQL_BATCH => {
                let sql = parse_sql_batch(&msg.data)?;
                self.exec_batch(&sql, Mode::Batch, out).await?;
                self.finish_request(out).await
            }
            tds::PT_RPC => {
                let req = match parse_rpc(&msg.data) {
                    Ok(r) => r,
                    Err(e) => {
                        let e = SqlError::new(
                            8009,
                            16,
                            format!("The incoming RPC request is malformed: {e}"),
                        );
                        self.proc_error(out, &e).await?;
                        return self.finish_request(out).await;
                    }
                };
                self.exec_rpc(&req.proc_name, req.params, out).await?;
                self.finish_request(out).await
            }
            tds::PT_TRANSACTION_MANAGER => {
                self.exec_tm(&msg.data, out).await?;
                self.finish_request(out).await
            }
            other => {
                self.send_error(
                    out,
                    &SqlError::new(
                        50000,
                        16,
                        format!("Unsupported TDS message type {other:#x}."),
                    ),
                );
                token::done(out.buf(), TOKEN_DONE, DONE_ERROR, 0, 0);
                out.end_message().await
            }
        }
    }

    /// Ends the reply; acknowledges an attention that arrived during the request.
    async fn finish_request<W: AsyncWrite + Unpin + Send>(
        &mut self,
        out: &mut PacketWriter<W>,
    ) -> std::io::Result<()> {
        if self.attention_acked < self.attention.load(Ordering::SeqCst) {
            self.attention_acked += 1;
            token::done(out.buf(), TOKEN_DONE, DONE_ATTN, 0, 0);
        }
        out.end_message().await
    }

    fn cancelled(&self) -> bool {
        self.attention_acked < self.attention.load(Ordering::SeqCst)
    }

    async fn reset(&mut self) {
        if self.pg_txn_open {
            if let Some(c) = &self.pg {
                let _ = c.batch_execute("ROLLBACK").await;
            }
        }
        self.pg_txn_open = false;
        self.trancount = 0;
        self.vars.clear();
        self.isolation = Isolation::ReadCommitted;
        self.nocount = false;
    }

    fn send_error<W: AsyncWrite + Unpin + Send>(
        &mut self,
        out: &mut PacketWriter<W>,
        e: &SqlError,
    ) {
        self.last_error = e.number;
        token::message(
            out.buf(),
            e.class >= 11,
            e.number,
            e.state,
            e.class,
            &e.message,
            "mssql-sim",
            1,
        );
    }

    /// Transaction manager requests (python-tds and ODBC drivers begin/commit this way).
    async fn exec_tm<W: AsyncWrite + Unpin + Send>(
        &mut self,
        data: &[u8],
        out: &mut PacketWriter<W>,
    ) -> std::io::Result<()> {
        let mut r = crate::tds::rpc::Reader::new(data);
        crate::tds::rpc::skip_all_headers(&mut r)?;
        let rest = r.rest();
        let req = u16::from_le_bytes([
            rest.first().copied().unwrap_or(0),
            rest.get(1).copied().unwrap_or(0),
        ]);
        let res = match req {
            5 => {
                // TM_BEGIN_XACT: isolation byte, then a name.
                if let Some(level) = rest.get(2) {
                    self.isolation = match level {
                        1 => Isolation::ReadUncommitted,
                        3 => Isolation::RepeatableRead,
                        4 => Isolation::Serializable,
                        5 => Isolation::Snapshot,
                        _ => self.isolation,
                    };
                }
                self.begin_tran().await
            }
            7 => self.commit_tran().await,
            8 => self.rollback_tran(None).await,
            0 => Ok(()),
            other => Err(SqlError::new(
                50000,
                16,
                format!("transaction manager request {other} is not supported"),
            )),
        };
        // TM_COMMIT_XACT / TM_ROLLBACK_XACT: a name (B_VARCHAR), then fBeginXact.
        let begin_again = matches!(req, 7 | 8) && {
            let name_len = rest.get(2).copied().unwrap_or(0) as usize;
            rest.get(3 + name_len * 2).copied() == Some(1)
        };
        match res {
            Ok(()) => {
                let desc = (self.spid as u64).to_le_bytes();
                match req {
                    5 => token::env_change_bytes(out.buf(), 8, &desc, &[]),
                    7 => token::env_change_bytes(out.buf(), 9, &[], &desc),
                    8 => token::env_change_bytes(out.buf(), 10, &[], &desc),
                    _ => {}
                }
                if begin_again && self.begin_tran().await.is_ok() {
                    token::env_change_bytes(out.buf(), 8, &desc, &[]);
                }
                token::done(out.buf(), TOKEN_DONE, 0, 0, 0);
            }
            Err(e) => {
                self.send_error(out, &e);
                token::done(out.buf(), TOKEN_DONE, DONE_ERROR, 0, 0);
            }
        }
        Ok(())
    }

    async fn exec_rpc<W: AsyncWrite + Unpin + Send>(
        &mut self,
        proc_name: &str,
        params: Vec<RpcParam>,
        out: &mut PacketWriter<W>,
    ) -> std::io::Result<()> {
        let name = proc_name.to_lowercase();
        let name = name
            .trim_start_matches("sys.")
            .trim_start_matches("dbo.")
            .to_string();
        match name.as_str() {
            "sp_executesql" => {
                let mut it = params.into_iter();
                let stmt = match it.next() {
                    Some(p) => match p.value {
                        Value::Text(s) => s,
                        _ => String::new(),
                    },
                    None => String::new(),
                };
                let decl = match it.next() {
                    Some(RpcParam {
                        value: Value::Text(d),
                        ..
                    }) => match parse_param_declarations(&d) {
                        Ok(d) => d,
                        Err(msg) => {
                            return self.proc_error(out, &SqlError::new(102, 15, msg)).await
                        }
                    },
                    _ => Vec::new(),
                };
                let saved = self.vars.clone();
                // Parameters become variables of the inner batch, typed as declared; positional
                // values take the declared names in order.
                for (i, p) in it.enumerate() {
                    let pname = if p.name.is_empty() {
                        decl.get(i).map(|(n, _)| n.clone())
                    } else {
                        Some(p.name.to_lowercase())
                    };
                    let Some(pname) = pname else {
                        self.vars = saved;
                        return self.proc_error(out, &SqlError::new(8144, 16, "Procedure or function sp_executesql has too many arguments specified.".into())).await;
                    };
                    let ty = decl
                        .iter()
                        .find(|(n, _)| *n == pname)
                        .map(|(_, t)| t.clone())
                        .unwrap_or(p.ty);
                    self.vars.insert(pname, (ty, p.value));
                }
                if let Some((missing, _)) = decl.iter().find(|(n, _)| !self.vars.contains_key(n)) {
                    let e = SqlError::new(8178, 16, format!("The parameterized query expects the parameter '{missing}', which was not supplied."));
                    self.vars = saved;
                    return self.proc_error(out, &e).await;
                }
                self.exec_batch(&stmt, Mode::Proc, out).await?;
                self.vars = saved;
                token::return_status(out.buf(), 0);
                token::done(
                    out.buf(),
                    TOKEN_DONEPROC,
                    if self.last_error != 0 { DONE_ERROR } else { 0 },
                    0,
                    0,
                );
            }
            "sp_prepare" | "sp_prepexec" | "sp_execute" | "sp_unprepare" => {
                self.send_error(out, &SqlError::new(2812, 16, format!("Could not find stored procedure '{proc_name}' (prepared statements are not simulated; use sp_executesql).")));
                token::done(out.buf(), TOKEN_DONEPROC, DONE_ERROR, 0, 0);
            }
            _ => {
                // A named procedure called by RPC: run it as EXEC with the parameters.
                let args: Vec<(Option<String>, Value)> = params
                    .into_iter()
                    .map(|p| {
                        (
                            if p.name.is_empty() {
                                None
                            } else {
                                Some(p.name)
                            },
                            p.value,
                        )
                    })
                    .collect();
                let r = self.exec_procedure(&name, &args, out, Mode::Proc).await;
                match r {
                    Ok(()) => {
                        token::return_status(out.buf(), 0);
                        token::done(out.buf(), TOKEN_DONEPROC, 0, 0, 0);
                    }
                    Err(e) => self.proc_error(out, &e).await?,
                }
            }
        }
        Ok(())
    }

    /// Ends a procedure call with an error.
    async fn proc_error<W: AsyncWrite + Unpin + Send>(
        &mut self,
        out: &mut PacketWriter<W>,
        e: &SqlError,
    ) -> std::io::Result<()> {
        self.send_error(out, e);
        token::return_status(out.buf(), 1);
        token::done(out.buf(), TOKEN_DONEPROC, DONE_ERROR, 0, 0);
        Ok(())
    }

    /// Runs a batch; each statement ends with its own DONE (or DONEINPROC).
    async fn exec_batch<W: AsyncWrite + Unpin + Send>(
        &mut self,
        sql: &str,
        mode: Mode,
        out: &mut PacketWriter<W>,
    ) -> std::io::Result<()> {
        self.last_error = 0;
        let stmts = match parse_batch(sql) {
            Ok(s) => s,
            Err(e) => {
                let err = SqlError {
                    number: 102,
                    state: 1,
                    class: 15,
                    message: e.to_string(),
                    aborts_batch: true,
                    ends_transaction: false,
                };
                self.send_error(out, &err);
                let tok = if mode == Mode::Batch {
                    TOKEN_DONE
                } else {
                    TOKEN_DONEINPROC
                };
                token::done(out.buf(), tok, DONE_ERROR, 0, 0);
                return Ok(());
            }
        };
        if stmts.is_empty() && mode == Mode::Batch {
            token::done(out.buf(), TOKEN_DONE, 0, 0, 0);
            return Ok(());
        }
        let n = stmts.len();
        for (i, s) in stmts.iter().enumerate() {
            let last = i + 1 == n;
            let keep_going = self.exec_stmt_reporting(s, mode, last, out).await?;
            if !keep_going || self.cancelled() {
                if mode == Mode::Batch && !last {
                    // A batch-aborting error still ends the reply with a final DONE.
                    token::done(out.buf(), TOKEN_DONE, DONE_ERROR, 0, 0);
                }
                break;
            }
        }
        Ok(())
    }

    /// Executes one statement and writes its DONE; returns whether the batch goes on.
    fn exec_stmt_reporting<'a, W: AsyncWrite + Unpin + Send>(
        &'a mut self,
        s: &'a Stmt,
        mode: Mode,
        last: bool,
        out: &'a mut PacketWriter<W>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<bool>> + Send + 'a>>
    {
        Box::pin(async move {
            let tok = if mode == Mode::Batch {
                TOKEN_DONE
            } else {
                TOKEN_DONEINPROC
            };
            let more = if last && mode == Mode::Batch {
                0
            } else {
                DONE_MORE
            };
            // IF and blocks report their inner statements themselves.
            if let Stmt::If {
                cond,
                then,
                otherwise,
            } = s
            {
                let branch = match self.eval_condition(cond).await {
                    Ok(true) => then,
                    Ok(false) => otherwise,
                    Err(e) => {
                        self.send_error(out, &e);
                        token::done(out.buf(), tok, DONE_ERROR | more, 0, 0);
                        return Ok(!e.aborts_batch);
                    }
                };
                let n = branch.len();
                for (i, inner) in branch.iter().enumerate() {
                    if !self
                        .exec_stmt_reporting(inner, mode, last && i + 1 == n, out)
                        .await?
                    {
                        return Ok(false);
                    }
                }
                if branch.is_empty() && last && mode == Mode::Batch {
                    token::done(out.buf(), TOKEN_DONE, 0, 0, 0);
                }
                return Ok(true);
            }
            match self.exec_stmt(s, out, mode).await {
                Ok(done) => {
                    if let Some(r) = done.rows {
                        self.rowcount = r as i64;
                    }
                    let (status, rows) = match done.rows {
                        Some(r) if !self.nocount => (DONE_COUNT, r),
                        _ => (0, 0),
                    };
                    token::done(out.buf(), tok, status | more, 0xC1, rows);
                    out.maybe_flush().await?;
                    Ok(true)
                }
                Err(e) => {
                    self.rowcount = 0;
                    if e.class >= 20 {
                        self.send_error(out, &e);
                        token::done(out.buf(), tok, DONE_ERROR, 0, 0);
                        return Ok(false);
                    }
                    if e.ends_transaction || (self.xact_abort && self.trancount > 0) {
                        let _ = self.rollback_tran(None).await;
                    }
                    self.send_error(out, &e);
                    token::done(out.buf(), tok, DONE_ERROR | more, 0, 0);
                    Ok(!(e.aborts_batch || self.xact_abort))
                }
            }
        })
    }

    fn context(&self) -> Context {
        let mut session: HashMap<&'static str, Value> = HashMap::new();
        session.insert("@@TRANCOUNT", Value::Int(self.trancount as i64));
        session.insert("@@ROWCOUNT", Value::Int(self.rowcount));
        session.insert("@@IDENTITY", self.scope_identity.clone());
        session.insert("SCOPE_IDENTITY", self.scope_identity.clone());
        session.insert("@@ERROR", Value::Int(self.last_error as i64));
        session.insert("@@SPID", Value::Int(self.spid as i64));
        session.insert(
            "@@VERSION",
            Value::Text("Microsoft SQL Server 2022 (RTM) - 16.0.4095.4 (X64) \n\tmssql-sim (a SQL Server simulator on PostgreSQL)\n".into()),
        );
        session.insert("@@SERVERNAME", Value::Text("mssql-sim".into()));
        session.insert("@@SERVICENAME", Value::Text("MSSQLSERVER".into()));
        session.insert("@@LANGUAGE", Value::Text("us_english".into()));
        session.insert("@@OPTIONS", Value::Int(5496));
        session.insert("@@TEXTSIZE", Value::Int(2147483647));
        session.insert("@@MAX_PRECISION", Value::Int(38));
        session.insert("@@DATEFIRST", Value::Int(7));
        session.insert("@@LOCK_TIMEOUT", Value::Int(-1));
        session.insert("@@MICROSOFTVERSION", Value::Int(0x10000FFF));
        session.insert("@@FETCH_STATUS", Value::Int(-1));
        // Locking READ COMMITTED (SQL Server's default): plain reads wait for uncommitted writers.
        let locking_reads = self.isolation == Isolation::ReadCommitted
            && self.shared.read_committed_snapshot(&self.database) == Some(false);
        Context {
            vars: self.vars.clone(),
            tables: HashMap::new(),
            session,
            database: self.database.clone(),
            locking_reads,
        }
    }

    /// Evaluates a scalar expression through PostgreSQL.
    async fn eval(&mut self, e: &Expr) -> Result<(Value, Option<TsqlType>), SqlError> {
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

    async fn eval_condition(&mut self, cond: &Expr) -> Result<bool, SqlError> {
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

    async fn context_with_tables(&mut self, stmt: &mut Statement) -> Result<Context, SqlError> {
        let mut ctx = self.context();
        let keys = referenced_tables(stmt);
        if !keys.is_empty() {
            ctx.tables = catalog::load_table_columns(self.pg()?, &keys)
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
        }
        Ok(ctx)
    }

    async fn ensure_txn(&mut self) -> Result<(), SqlError> {
        if self.trancount > 0 && !self.pg_txn_open {
            let level = self.pg_isolation().await?;
            self.pg()?
                .batch_execute(&format!("BEGIN ISOLATION LEVEL {level}"))
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
            self.pg_txn_open = true;
        }
        Ok(())
    }

    async fn pg_isolation(&self) -> Result<&'static str, SqlError> {
        Ok(match self.isolation {
            Isolation::ReadUncommitted | Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
            Isolation::Snapshot => {
                let row = self
                    .pg()?
                    .query_opt("SELECT snapshot_isolation FROM _sim.databases WHERE lower(name) = lower($1)", &[&self.database])
                    .await
                    .map_err(|e| SqlError::from_pg(&e))?;
                let allowed: bool = row.map(|r| r.get(0)).unwrap_or(false);
                if !allowed {
                    return Err(SqlError::new(
                        3952,
                        16,
                        format!("Snapshot isolation transaction failed accessing database '{}' because snapshot isolation is not allowed in this database. Use ALTER DATABASE to allow snapshot isolation.", self.database),
                    ));
                }
                "REPEATABLE READ"
            }
        })
    }

    async fn begin_tran(&mut self) -> Result<(), SqlError> {
        self.trancount += 1;
        if self.trancount == 1 {
            // The PostgreSQL transaction starts lazily with the first statement, so that
            // SET TRANSACTION ISOLATION LEVEL right after BEGIN TRAN still applies.
            self.pg_txn_open = false;
            self.savepoints.clear();
        }
        Ok(())
    }

    async fn commit_tran(&mut self) -> Result<(), SqlError> {
        if self.trancount == 0 {
            return Err(SqlError::new(
                3902,
                16,
                "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.".into(),
            ));
        }
        self.trancount -= 1;
        if self.trancount == 0 && self.pg_txn_open {
            self.pg_txn_open = false;
            self.pg()?
                .batch_execute("COMMIT")
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
        }
        Ok(())
    }

    async fn rollback_tran(&mut self, name: Option<&str>) -> Result<(), SqlError> {
        if self.trancount == 0 {
            return Err(SqlError::new(
                3903,
                16,
                "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.".into(),
            ));
        }
        if let Some(n) = name {
            let n = n.to_lowercase();
            if self.savepoints.contains(&n) {
                if self.pg_txn_open {
                    self.pg()?
                        .batch_execute(&format!(
                            "ROLLBACK TO SAVEPOINT {}",
                            catalog::pg_ident(&format!("sp_{n}"))
                        ))
                        .await
                        .map_err(|e| SqlError::from_pg(&e))?;
                }
                return Ok(());
            }
        }
        self.trancount = 0;
        self.savepoints.clear();
        if self.pg_txn_open {
            self.pg_txn_open = false;
            self.pg()?
                .batch_execute("ROLLBACK")
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
        }
        Ok(())
    }

    /// Runs PostgreSQL work for one statement: inside a transaction behind a savepoint, so that a
    /// failure undoes the statement alone.
    async fn guarded<T, F, Fut>(&mut self, f: F) -> Result<T, SqlError>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, SqlError>>,
    {
        self.ensure_txn().await?;
        let in_txn = self.pg_txn_open;
        let client = self
            .pg
            .clone()
            .ok_or_else(|| SqlError::fatal("no backing connection".into()))?;
        if in_txn {
            client
                .batch_execute("SAVEPOINT _sim_stmt")
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
        }
        let result = f(client.clone()).await;
        if in_txn {
            match &result {
                Ok(_) => {
                    let _ = client.batch_execute("RELEASE SAVEPOINT _sim_stmt").await;
                }
                Err(e) if !e.ends_transaction => {
                    let _ = client
                        .batch_execute("ROLLBACK TO SAVEPOINT _sim_stmt")
                        .await;
                }
                Err(_) => {}
            }
        }
        result
    }

    async fn exec_stmt<W: AsyncWrite + Unpin + Send>(
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
            Stmt::SetIdentityInsert(..) | Stmt::SetOption(_) => Ok(none),
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
            Stmt::Exec { proc, args } => {
                let name = proc.to_string().to_lowercase().replace(['[', ']'], "");
                let mut values = Vec::new();
                for (n, e) in args {
                    values.push((n.clone(), self.eval(e).await?.0));
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
            } => {
                let (qualified, _, _) = pg_table(table);
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
                    "CREATE {}INDEX {} ON {qualified} ({}){inc}; \
                     INSERT INTO _sim.indexes SELECT {schema_reg}::regclass, {}::regclass, (SELECT COALESCE(max(index_id), 1) + 1 FROM _sim.indexes WHERE table_oid = {}::regclass), {clustered}; \
                     INSERT INTO _sim.names VALUES ({schema_reg}::regclass, {}) ON CONFLICT (oid) DO UPDATE SET name = excluded.name",
                    if *unique { "UNIQUE " } else { "" },
                    catalog::pg_ident(name),
                    cols.join(", "),
                    pg_quote(&qualified),
                    pg_quote(&qualified),
                    pg_quote(name),
                    schema_reg = pg_quote(&format!("{schema}.{}", catalog::pg_ident(name))),
                );
                self.run_ddl(sql).await
            }
            Stmt::TableChangeTracking { .. } => Err(SqlError::new(
                40000,
                16,
                "Change tracking is not implemented by the simulator yet.".into(),
            )),
            Stmt::If { .. } => Ok(none),
            Stmt::Sql(stmt) => self.exec_sql(stmt, out).await,
        }
    }

    async fn exec_procedure<W: AsyncWrite + Unpin + Send>(
        &mut self,
        name: &str,
        _args: &[(Option<String>, Value)],
        _out: &mut PacketWriter<W>,
        _mode: Mode,
    ) -> Result<(), SqlError> {
        Err(SqlError::new(
            2812,
            16,
            format!("Could not find stored procedure '{name}'."),
        ))
    }

    async fn run_ddl(&mut self, sql: String) -> Result<Done, SqlError> {
        self.guarded(|client| async move {
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| SqlError::from_pg(&e))
        })
        .await?;
        Ok(Done { rows: None })
    }

    async fn exec_sql<W: AsyncWrite + Unpin + Send>(
        &mut self,
        stmt: &Statement,
        out: &mut PacketWriter<W>,
    ) -> Result<Done, SqlError> {
        match stmt {
            Statement::CreateTable(ct) => {
                let sql = catalog::create_table_sql(ct)?;
                return self.run_ddl(sql).await;
            }
            Statement::AlterTable(at) => {
                let sql = catalog::alter_table_sql(at)?;
                return self.run_ddl(sql).await;
            }
            Statement::CreateSchema { schema_name, .. } => {
                let name = schema_name
                    .to_string()
                    .trim_matches(|c| c == '[' || c == ']')
                    .to_string();
                let sql = format!(
                    "CREATE SCHEMA {}; INSERT INTO _sim.names SELECT oid, {} FROM pg_namespace WHERE nspname = {} ON CONFLICT (oid) DO NOTHING",
                    catalog::pg_ident(&name),
                    pg_quote(&name),
                    pg_quote(&name.to_lowercase())
                );
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
        let cancel = self.attention.clone();
        let acked = self.attention_acked;
        // Rows are encoded into a separate buffer and handed to the writer in pieces.
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
        let producer = self.guarded(move |client| async move {
            stream_statement(&client, &sql, inferred, tx, cancel, acked).await
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
        if let Some(t) = insert_table {
            self.record_identity(&t).await;
        }
        Ok(Done { rows: Some(rows) })
    }

    async fn record_identity(&mut self, table: &ObjectName) {
        let (q, _, _) = pg_table(table);
        let Some(client) = self.pg.clone() else {
            return;
        };
        let sql = "SELECT currval(pg_get_serial_sequence($1, a.attname))::numeric FROM _sim.columns c JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum WHERE c.table_oid = to_regclass($1) AND c.is_identity";
        let in_txn = self.pg_txn_open;
        if in_txn {
            let _ = client.batch_execute("SAVEPOINT _sim_ident").await;
        }
        match client.query_opt(sql, &[&q]).await {
            Ok(Some(r)) => {
                if let Ok(Raw(raw)) = r.try_get::<_, Raw>(0) {
                    if let Ok(v) = decode_pg(&Type::NUMERIC, raw) {
                        self.scope_identity = v;
                    }
                }
                if in_txn {
                    let _ = client.batch_execute("RELEASE SAVEPOINT _sim_ident").await;
                }
            }
            _ => {
                if in_txn {
                    let _ = client
                        .batch_execute("ROLLBACK TO SAVEPOINT _sim_ident")
                        .await;
                }
            }
        }
    }
}

/// Ends a login with an error; the session closes after it.
async fn refuse_login<W: AsyncWrite + Unpin + Send>(
    out: &mut PacketWriter<W>,
    e: &SqlError,
) -> std::io::Result<bool> {
    token::message(
        out.buf(),
        true,
        e.number,
        e.state,
        e.class,
        &e.message,
        "mssql-sim",
        1,
    );
    token::done(out.buf(), TOKEN_DONE, DONE_ERROR, 0, 0);
    out.end_message().await?;
    Ok(false)
}

/// INFORMATION_SCHEMA.X is served by the simulator's views in `_sim_is`.
fn map_information_schema(stmt: &mut Statement) {
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

/// Prepares and runs one rewritten statement; rows go out as COLMETADATA + ROW tokens in chunks.
async fn stream_statement(
    client: &Client,
    sql: &str,
    inferred: crate::tsql::rewrite::SelectTypes,
    tx: mpsc::Sender<Vec<u8>>,
    cancel: Arc<AtomicU32>,
    acked: u32,
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
    let declared: ResultColumns = if oids.is_empty() {
        HashMap::new()
    } else {
        catalog::load_result_columns(client, &oids)
            .await
            .map_err(|e| SqlError::from_pg(&e))?
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
        let name = match &from_table {
            Some((n, _)) if n.to_lowercase() == c.name() => n.clone(),
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

fn numeric_default(c: &tokio_postgres::Column) -> TsqlType {
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

fn write_colmetadata(buf: &mut Vec<u8>, cols: &[(String, TsqlType, Type)]) {
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
