//! Token encoders for server replies (MS-TDS 2.2.7). Each function appends one token to `buf`.

pub use crate::types::COLLATION;

/// DONE status: more results follow.
pub const DONE_MORE: u16 = 0x0001;
/// DONE status: the statement failed.
pub const DONE_ERROR: u16 = 0x0002;
/// DONE status: inside a transaction.
pub const DONE_INXACT: u16 = 0x0004;
/// DONE status: the row count is valid.
pub const DONE_COUNT: u16 = 0x0010;
/// DONE status: acknowledges an attention.
pub const DONE_ATTN: u16 = 0x0020;

/// Token type of DONE (end of a batch statement).
pub const TOKEN_DONE: u8 = 0xFD;
/// Token type of DONEPROC (end of a procedure).
pub const TOKEN_DONEPROC: u8 = 0xFE;
/// Token type of DONEINPROC (end of a statement inside a procedure).
pub const TOKEN_DONEINPROC: u8 = 0xFF;

/// Appends UTF-16LE code units of `s`.
pub fn put_utf16(buf: &mut Vec<u8>, s: &str) {
    for u in s.encode_utf16() {
        buf.extend_from_slice(&u.to_le_bytes());
    }
}

/// B_VARCHAR: a u8 character count, then UTF-16LE (truncated at 255 units).
pub fn put_b_varchar(buf: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(255).collect();
    buf.push(units.len() as u8);
    for u in units {
        buf.extend_from_slice(&u.to_le_bytes());
    }
}

/// US_VARCHAR: a u16 character count, then UTF-16LE.
pub fn put_us_varchar(buf: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(65535).collect();
    buf.extend_from_slice(&(units.len() as u16).to_le_bytes());
    for u in units {
        buf.extend_from_slice(&u.to_le_bytes());
    }
}

/// Writes a token with a u16 length prefix filled in after `body` ran.
fn with_len(buf: &mut Vec<u8>, token: u8, body: impl FnOnce(&mut Vec<u8>)) {
    buf.push(token);
    let at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    body(buf);
    let len = (buf.len() - at - 2) as u16;
    buf[at..at + 2].copy_from_slice(&len.to_le_bytes());
}

/// ENVCHANGE with text values (database 1, language 2, packet size 4).
pub fn env_change_text(buf: &mut Vec<u8>, ty: u8, new: &str, old: &str) {
    with_len(buf, 0xE3, |b| {
        b.push(ty);
        put_b_varchar(b, new);
        put_b_varchar(b, old);
    });
}

/// ENVCHANGE with binary values (collation 7, begin 8, commit 9, rollback 10).
pub fn env_change_bytes(buf: &mut Vec<u8>, ty: u8, new: &[u8], old: &[u8]) {
    with_len(buf, 0xE3, |b| {
        b.push(ty);
        b.push(new.len() as u8);
        b.extend_from_slice(new);
        b.push(old.len() as u8);
        b.extend_from_slice(old);
    });
}

/// LOGINACK for TDS 7.4, program "Microsoft SQL Server" 16.0.4095.
pub fn login_ack(buf: &mut Vec<u8>) {
    with_len(buf, 0xAD, |b| {
        b.push(1);
        b.extend_from_slice(&0x7400_0004u32.to_be_bytes());
        put_b_varchar(b, "Microsoft SQL Server");
        b.extend_from_slice(&[16, 0, 0x0F, 0xFF]);
    });
}

/// An ERROR (0xAA) or INFO (0xAB) message.
#[allow(clippy::too_many_arguments)]
pub fn message(
    buf: &mut Vec<u8>,
    error: bool,
    number: i32,
    state: u8,
    class: u8,
    text: &str,
    server: &str,
    line: i32,
) {
    with_len(buf, if error { 0xAA } else { 0xAB }, |b| {
        b.extend_from_slice(&number.to_le_bytes());
        b.push(state);
        b.push(class);
        put_us_varchar(b, text);
        put_b_varchar(b, server);
        put_b_varchar(b, "");
        b.extend_from_slice(&line.to_le_bytes());
    });
}

/// SSPI (0xED): an integrated-authentication token for the client (an NTLM CHALLENGE).
pub fn sspi(buf: &mut Vec<u8>, data: &[u8]) {
    buf.push(0xED);
    buf.extend_from_slice(&(data.len() as u16).to_le_bytes());
    buf.extend_from_slice(data);
}

/// DONE, DONEPROC or DONEINPROC.
pub fn done(buf: &mut Vec<u8>, token: u8, status: u16, cur_cmd: u16, rows: u64) {
    buf.push(token);
    buf.extend_from_slice(&status.to_le_bytes());
    buf.extend_from_slice(&cur_cmd.to_le_bytes());
    buf.extend_from_slice(&rows.to_le_bytes());
}

/// RETURNSTATUS of a procedure.
pub fn return_status(buf: &mut Vec<u8>, status: i32) {
    buf.push(0x79);
    buf.extend_from_slice(&status.to_le_bytes());
}

/// FEATUREEXTACK with no features acknowledged.
pub fn feature_ext_ack_empty(buf: &mut Vec<u8>) {
    buf.push(0xAE);
    buf.push(0xFF);
}
