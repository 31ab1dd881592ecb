//! Requests: SQL batches, RPC calls and transaction-manager messages, each statement reported
//! with its DONE token.

use crate::error::SqlError;
use crate::tds::rpc::RpcParam;
use crate::tds::token::{
    self, DONE_COUNT, DONE_ERROR, DONE_MORE, TOKEN_DONE, TOKEN_DONEINPROC, TOKEN_DONEPROC,
};
use crate::tds::PacketWriter;
use crate::tsql::parse::{parse_batch, parse_param_declarations, Isolation, Stmt};
use crate::value::Value;
use tokio::io::AsyncWrite;

use super::*;

impl Session {
    /// Transaction manager requests (python-tds and ODBC drivers begin/commit this way).
    pub(super) async fn exec_tm<W: AsyncWrite + Unpin + Send>(
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

    pub(super) async fn exec_rpc<W: AsyncWrite + Unpin + Send>(
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
    pub(super) async fn proc_error<W: AsyncWrite + Unpin + Send>(
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
    pub(super) async fn exec_batch<W: AsyncWrite + Unpin + Send>(
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
    pub(super) fn exec_stmt_reporting<'a, W: AsyncWrite + Unpin + Send>(
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
}
