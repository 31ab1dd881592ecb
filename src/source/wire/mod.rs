//! The snapshot's own reader of a query's response: TDS tokens parsed synchronously from the
//! packet payloads tiberius hands over undecoded ([`tiberius::Query::query_raw`], our addition
//! to the vendored crate), so that a row's values go from the packet bytes to PostgreSQL's binary
//! COPY without tiberius's per-value asynchronous decoding and allocation.
//!
//! Contract: [`RawRows`] yields the response's rows in order, each value as the
//! [`ColumnData`] tiberius would have decoded from the same bytes ([`row`]); the server's ERROR
//! token is the driver's own `Error::Server` (same number, same retry-or-stop decision); a result
//! column the reader does not handle is [`WireError::Unsupported`] before any row, so the caller
//! can read that table through tiberius instead. Memory: the bytes of one row (one packet for
//! ordinary rows; a (max) value whole while its row is read).

pub mod meta;
pub mod row;
pub mod transcode;

use bytes::{Buf, BytesMut};
use meta::{Cur, Stop, WireColumn};
use row::{Scratch, Span};
use std::time::Duration;
use tiberius::{ColumnData, RawResponse};
use tokio::net::TcpStream;
use tokio_util::compat::Compat;

/// Why the raw reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed, or the server sent an ERROR token.
    #[error("{0}")]
    Driver(tiberius::error::Error),
    /// The bytes are not a valid token stream.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// A well-framed value that is not what its type says (bytes invalid in the column's code
    /// page, xml that is not UTF-16): the data's problem, named with its column by the caller.
    #[error("{0}")]
    Value(String),
    /// A result column this reader does not decode (the caller falls back to tiberius).
    #[error("not read by the snapshot's decoder: {0}")]
    Unsupported(String),
}

/// The source of packet payloads: tiberius's raw response, or bytes given in tests.
pub trait Payloads {
    /// The next payload, `None` after the last.
    fn next_payload(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<BytesMut>, WireError>> + Send;
}

/// tiberius's raw response with a bound on each wait for the server.
pub struct Timed<'a> {
    /// The response.
    pub response: RawResponse<'a, Compat<TcpStream>>,
    /// How long one packet may take.
    pub timeout: Duration,
}

impl Payloads for Timed<'_> {
    async fn next_payload(&mut self) -> Result<Option<BytesMut>, WireError> {
        match tokio::time::timeout(self.timeout, self.response.next_payload()).await {
            Ok(r) => r.map_err(WireError::Driver),
            Err(_) => Err(WireError::Driver(tiberius::error::Error::Io {
                kind: std::io::ErrorKind::TimedOut,
                message: format!(
                    "SQL Server sent nothing for {}",
                    humantime::format_duration(self.timeout)
                ),
            })),
        }
    }
}

/// Rows of one result set, read from raw packet payloads.
pub struct RawRows<P: Payloads> {
    src: P,
    buf: BytesMut,
    /// The next unparsed byte in `buf`.
    at: usize,
    /// Parse again only once `buf` holds this many bytes.
    need: usize,
    ended: bool,
    cols: Vec<WireColumn>,
    spans: Vec<Span>,
    scratch: Scratch,
}

enum Token {
    Meta(Vec<WireColumn>),
    Row,
    Skip,
}

impl<P: Payloads> RawRows<P> {
    /// Reads up to the result's column metadata. A response without a result set has no
    /// columns and no rows.
    pub async fn start(src: P) -> Result<Self, WireError> {
        let mut r = RawRows {
            src,
            buf: BytesMut::with_capacity(64 << 10),
            at: 0,
            need: 0,
            ended: false,
            cols: Vec::new(),
            spans: Vec::new(),
            scratch: Scratch::default(),
        };
        while r.cols.is_empty() {
            match r.advance().await? {
                Some(Token::Meta(cols)) => r.cols = cols,
                Some(Token::Row) => {
                    return Err(WireError::Malformed("a row before its metadata".into()))
                }
                Some(Token::Skip) => {}
                None => break,
            }
        }
        Ok(r)
    }

    /// The result's columns.
    pub fn columns(&self) -> &[WireColumn] {
        &self.cols
    }

    /// Moves to the next row; false at the end of the response.
    pub async fn next_row(&mut self) -> Result<bool, WireError> {
        loop {
            match self.advance().await? {
                Some(Token::Row) => return Ok(true),
                Some(Token::Skip) => {}
                Some(Token::Meta(_)) => {
                    return Err(WireError::Malformed(
                        "a second result set where one was expected".into(),
                    ))
                }
                None => return Ok(false),
            }
        }
    }

    /// Value `i` of the current row as bytes, when they lie in one piece: `Some(None)` for
    /// NULL, `None` for a value in several PLP chunks (read it with [`RawRows::cell`]).
    #[inline]
    pub fn raw(&self, i: usize) -> Option<Option<&[u8]>> {
        match self.spans[i] {
            Span::Null => Some(None),
            Span::Bytes(s, e) => Some(Some(&self.buf[s..e])),
            Span::Chunks(s, e) if s == e => Some(Some(&[])),
            Span::Chunks(s, e) => {
                let b = &self.buf[s..e];
                let first = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                (4 + first == b.len()).then(|| Some(&b[4..]))
            }
        }
    }

    /// Value `i` of the current row. The flag says lone surrogates were replaced by U+FFFD.
    pub fn cell(&mut self, i: usize) -> Result<(ColumnData<'_>, bool), WireError> {
        row::cell(&self.buf, &self.cols[i], self.spans[i], &mut self.scratch)
    }

    /// The next token, reading payloads as needed; `None` at the end of the response.
    async fn advance(&mut self) -> Result<Option<Token>, WireError> {
        loop {
            if self.at < self.buf.len() && self.need <= self.buf.len() {
                let mut c = Cur::new(&self.buf, self.at);
                match token(&mut c, &self.cols, &mut self.spans) {
                    Ok(t) => {
                        self.at = c.at;
                        return Ok(Some(t));
                    }
                    Err(Stop::More(n)) => self.need = n,
                    Err(Stop::Bad(e)) => return Err(e),
                }
            }
            if self.ended {
                if self.at < self.buf.len() {
                    return Err(WireError::Malformed(
                        "the response ended inside a token".into(),
                    ));
                }
                return Ok(None);
            }
            // Drop what is parsed before taking more, so the buffer holds at most one row
            // plus a packet.
            if self.at > 0 {
                self.buf.advance(self.at);
                self.need = self.need.saturating_sub(self.at);
                self.at = 0;
            }
            match self.src.next_payload().await? {
                Some(p) => self.buf.extend_from_slice(&p),
                None => self.ended = true,
            }
        }
    }
}

/// One token at `c`; a row's spans are left in `spans`.
fn token(c: &mut Cur<'_>, cols: &[WireColumn], spans: &mut Vec<Span>) -> Result<Token, Stop> {
    let t = c.u8()?;
    Ok(match t {
        0xD1 | 0xD2 => {
            row::scan(c, cols, t == 0xD2, spans)?;
            Token::Row
        }
        0x81 => Token::Meta(meta::colmetadata(c)?),
        // DONE, DONEPROC, DONEINPROC: status, command, row count.
        0xFD..=0xFF => {
            c.take(12)?;
            Token::Skip
        }
        // RETURNSTATUS
        0x79 => {
            c.take(4)?;
            Token::Skip
        }
        0xAA => return Err(Stop::Bad(WireError::Driver(meta::error(c)?))),
        // INFO, ENVCHANGE, ORDER, TABNAME, COLINFO: length-prefixed, nothing we use.
        0xAB | 0xE3 | 0xA9 | 0xA4 | 0xA5 => {
            let n = c.u16()? as usize;
            c.take(n)?;
            Token::Skip
        }
        other => {
            return Err(meta::malformed(&format!(
                "unexpected token 0x{other:02X} in a result"
            )))
        }
    })
}

#[cfg(test)]
mod tests;
