//! Raw access to a response's token bytes (added for `replicator`; see `vendor/PATCHES.md`).
//!
//! A caller that decodes rows itself (for example straight into another wire format) sends a
//! query with [`Query::query_raw`] and reads the response's TDS token stream packet payload by
//! packet payload, without tiberius decoding any token. The connection stays usable afterwards:
//! a response read to its end leaves it clean, an abandoned one is flushed by the next request.
//!
//! [`Query::query_raw`]: crate::Query::query_raw

use crate::client::Connection;
use bytes::BytesMut;
use futures_util::io::{AsyncRead, AsyncWrite};
use futures_util::stream::TryStreamExt;

/// The undecoded token stream of one response.
///
/// Contract: [`RawResponse::next_payload`] returns the payloads of the response's packets in
/// order, then `None` once the end-of-message packet has been returned; the bytes are the
/// server's token stream exactly as sent (tokens may span payloads).
pub struct RawResponse<'a, S: AsyncRead + AsyncWrite + Unpin + Send> {
    connection: &'a mut Connection<S>,
    finished: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> std::fmt::Debug for RawResponse<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawResponse")
            .field("finished", &self.finished)
            .finish()
    }
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin + Send> RawResponse<'a, S> {
    pub(crate) fn new(connection: &'a mut Connection<S>) -> Self {
        Self {
            connection,
            finished: false,
        }
    }

    /// The next packet's payload, or `None` after the last one.
    ///
    /// # Errors
    ///
    /// An I/O or framing error of the connection; the connection must then be dropped.
    pub async fn next_payload(&mut self) -> crate::Result<Option<BytesMut>> {
        if self.finished {
            return Ok(None);
        }
        match self.connection.try_next().await? {
            Some(packet) => {
                self.finished = packet.is_last();
                let (_, payload) = packet.into_parts();
                Ok(Some(payload))
            }
            None => {
                self.finished = true;
                Err(crate::Error::Io {
                    kind: std::io::ErrorKind::UnexpectedEof,
                    message: "the server closed the connection in the middle of a response"
                        .into(),
                })
            }
        }
    }
}
