//! The TDS 7.4 wire layer: packet framing, login, tokens and RPC requests.
//!
//! Framing contract: a message is one or more packets of the same type, the last one flagged
//! end-of-message; [`read_message`] returns whole messages, [`PacketWriter`] splits a reply into
//! packets of the negotiated size.

pub mod login;
pub mod ntlm;
pub mod rpc;
pub mod tls;
pub mod token;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// SQL batch request.
pub const PT_SQL_BATCH: u8 = 0x01;
/// Remote procedure call request.
pub const PT_RPC: u8 = 0x03;
/// Tabular result (every server reply).
pub const PT_REPLY: u8 = 0x04;
/// Attention (cancel) signal.
pub const PT_ATTENTION: u8 = 0x06;
/// Bulk load data.
pub const PT_BULK: u8 = 0x07;
/// Transaction manager request.
pub const PT_TRANSACTION_MANAGER: u8 = 0x0E;
/// LOGIN7 request.
pub const PT_LOGIN7: u8 = 0x10;
/// SSPI (integrated authentication) message.
pub const PT_SSPI: u8 = 0x11;
/// PRELOGIN request.
pub const PT_PRELOGIN: u8 = 0x12;

const STATUS_EOM: u8 = 0x01;
const STATUS_RESET: u8 = 0x08;
const HEADER_LEN: usize = 8;
/// Upper bound on one request message; larger requests are refused (protects the server).
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// One complete client message.
#[derive(Debug)]
pub struct Message {
    /// Packet type of the message.
    pub ty: u8,
    /// The payload of all its packets, headers removed.
    pub data: Vec<u8>,
    /// The client asked for the session to be reset (connection pooling).
    pub reset_connection: bool,
}

/// Reads one whole message; `Ok(None)` on a clean end of stream before a new message.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Message>> {
    let mut data = Vec::new();
    let mut first: Option<(u8, bool)> = None;
    loop {
        let mut header = [0u8; HEADER_LEN];
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && first.is_none() => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        let ty = header[0];
        let status = header[1];
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        if len < HEADER_LEN {
            return Err(invalid(format!(
                "packet length {len} is shorter than its header"
            )));
        }
        if data.len() + len > MAX_MESSAGE_LEN {
            return Err(invalid("message too large".into()));
        }
        let start = data.len();
        data.resize(start + len - HEADER_LEN, 0);
        r.read_exact(&mut data[start..]).await?;
        match first {
            None => first = Some((ty, status & STATUS_RESET != 0)),
            Some((t, _)) if t != ty && ty != PT_ATTENTION => {
                return Err(invalid(format!(
                    "packet type {ty:#x} inside a message of type {t:#x}"
                )))
            }
            _ => {}
        }
        if ty == PT_ATTENTION {
            return Ok(Some(Message {
                ty,
                data: Vec::new(),
                reset_connection: false,
            }));
        }
        if status & STATUS_EOM != 0 {
            let (ty, reset_connection) = first.unwrap_or((ty, false));
            return Ok(Some(Message {
                ty,
                data,
                reset_connection,
            }));
        }
    }
}

/// Creates an `InvalidData` I/O error: the client broke the protocol.
pub fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// Buffers a reply and writes it as packets of `packet_size` bytes.
pub struct PacketWriter<W> {
    w: W,
    packet_size: usize,
    buf: Vec<u8>,
    packet_id: u8,
}

impl<W: AsyncWrite + Unpin> PacketWriter<W> {
    /// A writer with the default 4096-byte packets.
    pub fn new(w: W) -> Self {
        PacketWriter {
            w,
            packet_size: 4096,
            buf: Vec::with_capacity(64 * 1024),
            packet_id: 1,
        }
    }

    /// Sets the packet size negotiated at login (clamped to 512..=32767).
    pub fn set_packet_size(&mut self, size: usize) {
        self.packet_size = size.clamp(512, 32767);
    }

    /// The reply bytes not yet sent; tokens are appended here.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Sends every full packet buffered so far (keeps the remainder) once 32 KiB have built up.
    pub async fn maybe_flush(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= 32 * 1024 {
            self.send_packets(false).await?;
        }
        Ok(())
    }

    /// Sends everything buffered, the last packet flagged end-of-message.
    pub async fn end_message(&mut self) -> std::io::Result<()> {
        self.send_packets(true).await?;
        self.w.flush().await
    }

    async fn send_packets(&mut self, end: bool) -> std::io::Result<()> {
        let payload = self.packet_size - HEADER_LEN;
        let mut out =
            Vec::with_capacity(self.buf.len() + self.buf.len() / payload * HEADER_LEN + 16);
        let mut pos = 0;
        loop {
            let remaining = self.buf.len() - pos;
            let last = remaining <= payload;
            if last && !end {
                break;
            }
            let n = remaining.min(payload);
            let status = if last { STATUS_EOM } else { 0 };
            out.push(PT_REPLY);
            out.push(status);
            out.extend_from_slice(&((n + HEADER_LEN) as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0, self.packet_id, 0]);
            self.packet_id = self.packet_id.wrapping_add(1);
            out.extend_from_slice(&self.buf[pos..pos + n]);
            pos += n;
            if last {
                break;
            }
        }
        self.buf.drain(..pos);
        self.w.write_all(&out).await
    }
}
