//! One TDS session: login, then requests, each executed on the session's own PostgreSQL
//! connection to the current database.
//!
//! Transaction contract (as SQL Server with XACT_ABORT OFF): outside BEGIN TRAN each statement
//! commits on its own; inside, a failed statement is rolled back alone (a PostgreSQL savepoint
//! per statement) and the transaction goes on, except for errors that end it (3960, 1205).
//! Result rows stream from PostgreSQL to the client with bounded memory.

mod requests;
mod results;
mod statements;
mod transactions;

use crate::error::SqlError;
use crate::instance::Shared;
use crate::tds::rpc::{parse_rpc, parse_sql_batch};
use crate::tds::token::{self, DONE_ATTN, DONE_ERROR, TOKEN_DONE};
use crate::tds::{self, login, PacketWriter};
use crate::tsql::parse::Isolation;
use crate::tsql::rewrite::Context;
use crate::types::TsqlType;
use crate::value::{pg_quote, Value};
use futures_util::FutureExt;
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
    /// The table (PostgreSQL name) this session last inserted an identity value into.
    identity_table: Option<String>,
    /// The table with SET IDENTITY_INSERT ON in this session (PostgreSQL name).
    pub(super) identity_insert: Option<String>,
    /// Declared columns of tables by key, valid while `cache_generation` equals DDL_GENERATION.
    table_cache: HashMap<String, Option<crate::catalog::TableInfo>>,
    /// Declared result columns by (table oid, attnum), same validity.
    result_cache: Arc<std::sync::Mutex<ResultCache>>,
    cache_generation: u64,
    last_error: i32,
    attention: Arc<AtomicU32>,
    attention_acked: u32,
}

static NEXT_SPID: AtomicU32 = AtomicU32::new(51);

/// Bumped by every DDL any session of this process runs; sessions drop their catalog caches
/// when it moves.
pub(crate) static DDL_GENERATION: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(1);

/// Declared result columns already looked up, by table oid.
#[derive(Default)]
pub(crate) struct ResultCache {
    pub(crate) generation: u64,
    pub(crate) loaded: std::collections::HashSet<u32>,
    pub(crate) columns: crate::catalog::ResultColumns,
}

/// Result of a statement: rows sent or affected.
struct Done {
    rows: Option<u64>,
}

impl Session {
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
            identity_table: None,
            identity_insert: None,
            table_cache: HashMap::new(),
            result_cache: Arc::new(std::sync::Mutex::new(ResultCache::default())),
            cache_generation: 0,
            last_error: 0,
            attention: Arc::new(AtomicU32::new(0)),
            attention_acked: 0,
        }
    }

    /// Serves one client connection until it closes. Protocol errors end the session only.
    ///
    /// PRELOGIN decides the encryption: without a certificate every client is answered NOT_SUP;
    /// with one, clients that offer encryption get TLS for the whole session, and clients that
    /// do not are served in plaintext or, when TLS is required, answered ENCRYPT_REQ and closed.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        self,
        mut stream: S,
    ) -> std::io::Result<()> {
        let Some(msg) = tds::read_message(&mut stream).await? else {
            return Ok(());
        };
        if msg.ty != tds::PT_PRELOGIN {
            return Err(tds::invalid(format!(
                "expected PRELOGIN, got packet type {:#x}",
                msg.ty
            )));
        }
        let pre = login::parse_prelogin(&msg.data)?;
        let client_offers = pre
            .encryption
            .is_some_and(|e| e & 0x0f != login::ENCRYPT_NOT_SUP);
        let (answer, tls) = match &self.shared.tls {
            None => (login::ENCRYPT_NOT_SUP, None),
            Some((acceptor, _)) if client_offers => (login::ENCRYPT_ON, Some(acceptor.clone())),
            Some((_, true)) => (login::ENCRYPT_REQ, None),
            Some((_, false)) => (login::ENCRYPT_NOT_SUP, None),
        };
        let mut out = PacketWriter::new(&mut stream);
        out.buf().extend_from_slice(&login::prelogin_reply(answer));
        out.end_message().await?;
        drop(out);
        if answer == login::ENCRYPT_REQ {
            tracing::debug!("client does not support encryption, which this server requires");
            return Ok(());
        }
        if pre.encryption == Some(login::ENCRYPT_REQ) && tls.is_none() {
            // The client insists on TLS, which this server does not offer; it will disconnect.
            tracing::debug!("client requires encryption, which is not configured");
        }
        match tls {
            Some(acceptor) => {
                let stream = tds::tls::accept(&acceptor, stream).await?;
                self.serve(stream).await
            }
            None => self.serve(stream).await,
        }
    }

    /// LOGIN7, then requests until the client closes.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        mut self,
        stream: S,
    ) -> std::io::Result<()> {
        let (mut rd, wr) = tokio::io::split(stream);
        let mut out = PacketWriter::new(wr);
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
        let windows = l.sspi;
        if windows && !self.ntlm(&l, &mut rd, &mut out).await? {
            return Ok(());
        }
        if !self.login(&l, &mut out, windows).await? {
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

    /// Windows authentication: NTLM CHALLENGE out, AUTHENTICATE in, checked against the one
    /// configured domain user. False when the login was refused (the client was told).
    async fn ntlm<R: AsyncRead + Unpin, W: AsyncWrite + Unpin + Send>(
        &mut self,
        l: &login::Login7,
        rd: &mut R,
        out: &mut PacketWriter<W>,
    ) -> std::io::Result<bool> {
        let untrusted = SqlError::new(
            18452,
            14,
            "Login failed. The login is from an untrusted domain and cannot be used with Integrated authentication.".into(),
        );
        let Some(account) = self.shared.ntlm.clone() else {
            return refuse_login(out, &untrusted).await;
        };
        if tds::ntlm::check_negotiate(&l.sspi_data).is_err() {
            return refuse_login(out, &untrusted).await;
        }
        let mut challenge = [0u8; 8];
        getrandom::fill(&mut challenge).map_err(std::io::Error::other)?;
        // Windows FILETIME: 100 ns ticks since 1601.
        let filetime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 / 100)
            .unwrap_or(0)
            + 116_444_736_000_000_000;
        let challenge_msg = tds::ntlm::challenge(&account.domain, challenge, filetime);
        token::sspi(out.buf(), &challenge_msg);
        out.end_message().await?;
        let Some(msg) = tds::read_message(rd).await? else {
            return Ok(false);
        };
        // MS-TDS names the SSPI packet type; tiberius sends the AUTHENTICATE message as a
        // LOGIN7-typed packet, which SQL Server accepts too.
        if msg.ty != tds::PT_SSPI && msg.ty != tds::PT_LOGIN7 {
            return Err(tds::invalid(format!(
                "expected an SSPI packet, got packet type {:#x}",
                msg.ty
            )));
        }
        let exchange = tds::ntlm::Exchange {
            negotiate: &l.sspi_data,
            challenge: &challenge_msg,
            server_challenge: &challenge,
        };
        match tds::ntlm::verify(&msg.data, &exchange, &account) {
            Ok(()) => Ok(true),
            Err(why) => {
                // The reason stays in the server's log, as SQL Server's error log keeps it.
                tracing::info!(reason = why, "ntlm login refused");
                let e = SqlError::new(
                    18456,
                    14,
                    format!("Login failed for user '{}'.", tds::ntlm::claimed(&msg.data)),
                );
                refuse_login(out, &e).await
            }
        }
    }

    pub(super) async fn login<W: AsyncWrite + Unpin + Send>(
        &mut self,
        l: &login::Login7,
        out: &mut PacketWriter<W>,
        windows: bool,
    ) -> std::io::Result<bool> {
        let ok = windows
            || (l.user_name.eq_ignore_ascii_case("sa") && l.password == self.shared.sa_password);
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
    pub(super) async fn connect(&mut self, db: &str) -> Result<(), SqlError> {
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

    pub(super) fn pg(&self) -> Result<&Client, SqlError> {
        self.pg
            .as_deref()
            .ok_or_else(|| SqlError::fatal("no backing connection".into()))
    }

    pub(super) async fn handle<W: AsyncWrite + Unpin + Send>(
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
                // A panic while executing becomes an error reply; the session stays usable.
                let ran = std::panic::AssertUnwindSafe(self.exec_batch(&sql, Mode::Batch, out))
                    .catch_unwind()
                    .await;
                match ran {
                    Ok(r) => r?,
                    Err(_) => self.internal_failure(out).await,
                }
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
                let ran =
                    std::panic::AssertUnwindSafe(self.exec_rpc(&req.proc_name, req.params, out))
                        .catch_unwind()
                        .await;
                match ran {
                    Ok(r) => r?,
                    Err(_) => self.internal_failure(out).await,
                }
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

    /// After a panic in a request: the client gets an error (the reply so far is dropped) and
    /// an open transaction is rolled back, as SQL Server does on a severe error.
    async fn internal_failure<W: AsyncWrite + Unpin + Send>(&mut self, out: &mut PacketWriter<W>) {
        out.buf().clear();
        if self.pg_txn_open {
            if let Some(c) = &self.pg {
                let _ = c.batch_execute("ROLLBACK").await;
            }
        }
        self.pg_txn_open = false;
        self.trancount = 0;
        self.send_error(
            out,
            &SqlError::new(
                50000,
                16,
                "The simulator failed internally on this request; the session goes on (any open transaction was rolled back).".into(),
            ),
        );
        token::done(out.buf(), TOKEN_DONE, DONE_ERROR, 0, 0);
    }

    /// Ends the reply; acknowledges an attention that arrived during the request.
    pub(super) async fn finish_request<W: AsyncWrite + Unpin + Send>(
        &mut self,
        out: &mut PacketWriter<W>,
    ) -> std::io::Result<()> {
        if self.attention_acked < self.attention.load(Ordering::SeqCst) {
            self.attention_acked += 1;
            token::done(out.buf(), TOKEN_DONE, DONE_ATTN, 0, 0);
        }
        out.end_message().await
    }

    pub(super) fn cancelled(&self) -> bool {
        self.attention_acked < self.attention.load(Ordering::SeqCst)
    }

    pub(super) async fn reset(&mut self) {
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

    pub(super) fn send_error<W: AsyncWrite + Unpin + Send>(
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

    pub(super) fn context(&self) -> Context {
        let mut session: HashMap<&'static str, Value> = HashMap::new();
        session.insert("@@TRANCOUNT", Value::Int(self.trancount as i64));
        session.insert("@@ROWCOUNT", Value::Int(self.rowcount));

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
            ct_keys: HashMap::new(),
            cdc_instances: HashMap::new(),
            identity_table: self.identity_table.clone(),
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
