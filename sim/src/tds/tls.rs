//! TLS inside PRELOGIN (TDS 7.x): the handshake's records travel as the payload of PRELOGIN
//! packets; once it completes, TLS records flow on the raw connection and carry the TDS packets
//! (LOGIN7 and everything after: full encryption, as SQL Server with Force Encryption).
//!
//! Contract: [`accept`] returns a stream on which the session reads and writes plain TDS. The
//! protocol is TLS 1.2, as SQL Server's inside PRELOGIN; no session tickets are sent.

use super::{HEADER_LEN, PT_PRELOGIN, STATUS_EOM};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Largest PRELOGIN packet written during the handshake (the default TDS packet size).
const HANDSHAKE_PACKET: usize = 4096;

/// Builds the acceptor from a PEM certificate chain and a PEM private key; errors name the file.
pub fn acceptor(cert_pem: &Path, key_pem: &Path) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", cert_pem.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS certificate {}: no certificate in the file",
            cert_pem.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .map_err(|e| format!("TLS key {}: {e}", key_pem.display()))?;
    // TLS 1.2, as SQL Server inside PRELOGIN (TLS 1.3 is for TDS 8 strict): a TLS 1.3 client
    // sends its last handshake flight without waiting for a reply, which clients such as FreeTDS
    // then leave in their TDS buffer.
    let mut cfg = rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key do not fit: {e}"))?;
    cfg.send_tls13_tickets = 0;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Runs the server side of the handshake inside PRELOGIN packets.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: &TlsAcceptor,
    stream: S,
) -> io::Result<TlsStream<PreloginFramed<S>>> {
    let mut tls = acceptor.accept(PreloginFramed::new(stream)).await?;
    // The last handshake flight may still sit in the framing buffer.
    tls.get_mut().0.flush().await?;
    tls.get_mut().0.handshaking = false;
    Ok(tls)
}

/// A stream that, while `handshaking`, strips PRELOGIN headers from what it reads and wraps what
/// it writes into PRELOGIN packets on flush; afterwards it passes bytes through.
pub struct PreloginFramed<S> {
    inner: S,
    handshaking: bool,
    reads_framed: bool,
    header: [u8; HEADER_LEN],
    header_pos: usize,
    remaining: usize,
    pending: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
}

impl<S> PreloginFramed<S> {
    fn new(inner: S) -> Self {
        PreloginFramed {
            inner,
            handshaking: true,
            reads_framed: true,
            header: [0; HEADER_LEN],
            header_pos: 0,
            remaining: 0,
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
        }
    }
}

/// `data` as PRELOGIN packets of at most [`HANDSHAKE_PACKET`] bytes, the last one end-of-message.
fn frame(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + HEADER_LEN * 2);
    let chunks: Vec<&[u8]> = data.chunks(HANDSHAKE_PACKET - HEADER_LEN).collect();
    for (i, c) in chunks.iter().enumerate() {
        let len = (c.len() + HEADER_LEN) as u16;
        let status = if i + 1 == chunks.len() { STATUS_EOM } else { 0 };
        out.extend_from_slice(&[PT_PRELOGIN, status]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[0, 0, (i + 1) as u8, 0]);
        out.extend_from_slice(c);
    }
    out
}

impl<S: AsyncRead + Unpin> AsyncRead for PreloginFramed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.handshaking || !me.reads_framed {
            return Pin::new(&mut me.inner).poll_read(cx, buf);
        }
        while me.remaining == 0 {
            while me.header_pos < HEADER_LEN {
                // The first byte tells a PRELOGIN packet (0x12) from a TLS record (0x14-0x17):
                // a client that finished its side of the handshake sends raw records at once,
                // and the TLS layer may read them before it sees that the handshake is over.
                let upto = if me.header_pos == 0 { 1 } else { HEADER_LEN };
                let mut hb = ReadBuf::new(&mut me.header[me.header_pos..upto]);
                ready!(Pin::new(&mut me.inner).poll_read(cx, &mut hb))?;
                let n = hb.filled().len();
                if n == 0 {
                    return Poll::Ready(Ok(()));
                }
                me.header_pos += n;
                if me.header_pos == 1 && me.header[0] != PT_PRELOGIN {
                    if !(0x14..=0x17).contains(&me.header[0]) {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "expected a PRELOGIN packet or a TLS record during the TLS handshake, got {:#x}",
                                me.header[0]
                            ),
                        )));
                    }
                    me.reads_framed = false;
                    me.header_pos = 0;
                    buf.put_slice(&me.header[..1]);
                    return Poll::Ready(Ok(()));
                }
            }
            let len = u16::from_be_bytes([me.header[2], me.header[3]]) as usize;
            me.remaining = len.checked_sub(HEADER_LEN).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "PRELOGIN packet shorter than its header",
                )
            })?;
            me.header_pos = 0;
        }
        let want = me.remaining.min(buf.remaining());
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut me.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        buf.advance(n);
        me.remaining -= n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PreloginFramed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if !me.handshaking && me.out_pos >= me.out.len() && me.pending.is_empty() {
            return Pin::new(&mut me.inner).poll_write(cx, data);
        }
        me.pending.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            if me.out_pos < me.out.len() {
                let n = ready!(Pin::new(&mut me.inner).poll_write(cx, &me.out[me.out_pos..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                me.out_pos += n;
                continue;
            }
            if me.pending.is_empty() {
                break;
            }
            me.out = if me.handshaking {
                frame(&me.pending)
            } else {
                std::mem::take(&mut me.pending)
            };
            me.pending.clear();
            me.out_pos = 0;
        }
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(Pin::new(&mut *me).poll_flush(cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_the_packet_size_and_mark_the_last() {
        let data = vec![7u8; 5000];
        let f = frame(&data);
        assert_eq!(f.len(), 5000 + 2 * HEADER_LEN);
        assert_eq!((f[0], f[1]), (PT_PRELOGIN, 0));
        assert_eq!(u16::from_be_bytes([f[2], f[3]]) as usize, HANDSHAKE_PACKET);
        let second = HANDSHAKE_PACKET;
        assert_eq!((f[second], f[second + 1]), (PT_PRELOGIN, STATUS_EOM));
        assert_eq!(
            u16::from_be_bytes([f[second + 2], f[second + 3]]) as usize,
            5000 - (HANDSHAKE_PACKET - HEADER_LEN) + HEADER_LEN
        );
    }
}
