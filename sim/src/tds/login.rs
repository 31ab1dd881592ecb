//! PRELOGIN and LOGIN7: what the client sends before the first request.

use super::invalid;

/// The client's PRELOGIN options that matter to us.
#[derive(Debug, Default)]
pub struct PreLogin {
    /// ENCRYPTION option sent by the client (0 off, 1 on, 2 not supported, 3 required).
    pub encryption: Option<u8>,
}

/// Client encryption values that demand TLS.
pub const ENCRYPT_ON: u8 = 0x01;
/// The client insists on TLS.
pub const ENCRYPT_REQ: u8 = 0x03;
/// The server does not support encryption.
pub const ENCRYPT_NOT_SUP: u8 = 0x02;

/// Parses a PRELOGIN request payload.
pub fn parse_prelogin(data: &[u8]) -> std::io::Result<PreLogin> {
    let mut out = PreLogin::default();
    let mut i = 0;
    while i < data.len() && data[i] != 0xFF {
        if i + 5 > data.len() {
            return Err(invalid("truncated PRELOGIN option".into()));
        }
        let token = data[i];
        let off = u16::from_be_bytes([data[i + 1], data[i + 2]]) as usize;
        let len = u16::from_be_bytes([data[i + 3], data[i + 4]]) as usize;
        if off + len > data.len() {
            return Err(invalid("PRELOGIN option outside the packet".into()));
        }
        if token == 0x01 && len >= 1 {
            out.encryption = Some(data[off]);
        }
        i += 5;
    }
    Ok(out)
}

/// Builds the PRELOGIN reply: version 16.0 (SQL Server 2022), the given encryption answer,
/// no instance, no thread id, MARS off.
pub fn prelogin_reply(encryption: u8) -> Vec<u8> {
    let options: [(u8, Vec<u8>); 5] = [
        (0x00, vec![16, 0, 0x0F, 0xFF, 0, 0]),
        (0x01, vec![encryption]),
        (0x02, vec![0]),
        (0x03, vec![]),
        (0x04, vec![0]),
    ];
    let header_len = options.len() * 5 + 1;
    let mut head = Vec::new();
    let mut body = Vec::new();
    for (token, data) in options.iter() {
        head.push(*token);
        head.extend_from_slice(&((header_len + body.len()) as u16).to_be_bytes());
        head.extend_from_slice(&(data.len() as u16).to_be_bytes());
        body.extend_from_slice(data);
    }
    head.push(0xFF);
    head.extend_from_slice(&body);
    head
}

/// What a LOGIN7 request carries.
#[derive(Debug, Default)]
pub struct Login7 {
    /// Requested TDS version.
    pub tds_version: u32,
    /// Requested packet size (0 = server default).
    pub packet_size: u32,
    /// Client host name.
    pub host_name: String,
    /// SQL login name.
    pub user_name: String,
    /// Password, de-obfuscated. Never log it.
    pub password: String,
    /// Application name.
    pub app_name: String,
    /// Initial database, if any.
    pub database: String,
    /// The client asked for integrated (SSPI) authentication.
    pub sspi: bool,
    /// Its first SSPI message (NTLM NEGOTIATE).
    pub sspi_data: Vec<u8>,
}

fn read_u16(d: &[u8], at: usize) -> std::io::Result<u16> {
    d.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| invalid("truncated LOGIN7".into()))
}

fn read_u32(d: &[u8], at: usize) -> std::io::Result<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| invalid("truncated LOGIN7".into()))
}

/// Decodes UTF-16LE bytes; invalid sequences become U+FFFD.
pub fn utf16le(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

fn field(d: &[u8], header_at: usize, password: bool) -> std::io::Result<String> {
    let off = read_u16(d, header_at)? as usize;
    let chars = read_u16(d, header_at + 2)? as usize;
    let bytes = d
        .get(off..off + chars * 2)
        .ok_or_else(|| invalid("LOGIN7 field outside the packet".into()))?;
    if password {
        let plain: Vec<u8> = bytes.iter().map(|b| (b ^ 0xA5).rotate_left(4)).collect();
        Ok(utf16le(&plain))
    } else {
        Ok(utf16le(bytes))
    }
}

/// Parses a LOGIN7 payload (MS-TDS 2.2.6.4).
pub fn parse_login7(d: &[u8]) -> std::io::Result<Login7> {
    if d.len() < 94 {
        return Err(invalid("LOGIN7 shorter than its fixed part".into()));
    }
    let sspi_off = read_u16(d, 78)? as usize;
    let sspi_len = read_u16(d, 80)?;
    let sspi_data = if sspi_len > 0 && sspi_len < u16::MAX {
        d.get(sspi_off..sspi_off + sspi_len as usize)
            .ok_or_else(|| invalid("LOGIN7 SSPI data outside the packet".into()))?
            .to_vec()
    } else {
        Vec::new()
    };
    Ok(Login7 {
        tds_version: read_u32(d, 4)?,
        packet_size: read_u32(d, 8)?,
        host_name: field(d, 36, false)?,
        user_name: field(d, 40, false)?,
        password: field(d, 44, true)?,
        app_name: field(d, 48, false)?,
        database: field(d, 68, false)?,
        sspi: sspi_len > 0,
        sspi_data,
    })
}
