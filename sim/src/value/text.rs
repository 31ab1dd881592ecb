//! Stored text: the escape for what PostgreSQL text cannot hold, and code page 1252.

use super::*;

/// UTF-16 code units (from TDS) to stored text; lossless for every sequence of units.
pub fn utf16_to_stored(units: &[u16]) -> String {
    let mut out = String::with_capacity(units.len());
    for r in char::decode_utf16(units.iter().copied()) {
        match r {
            Ok('\0') => {
                out.push(ESC);
                out.push('0');
            }
            Ok(ESC) => {
                out.push(ESC);
                out.push(ESC);
            }
            Ok(c) => out.push(c),
            Err(e) => {
                out.push(ESC);
                out.push_str(&format!("u{:04x}", e.unpaired_surrogate()));
            }
        }
    }
    out
}

/// UTF-16LE bytes (from TDS) to stored text.
pub fn utf16le_bytes_to_stored(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    utf16_to_stored(&units)
}

/// Appends stored text as UTF-16LE, undoing the escapes.
pub fn stored_to_utf16le(s: &str, out: &mut Vec<u8>) {
    if !s.contains(ESC) {
        for u in s.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        return;
    }
    let mut chars = s.chars().peekable();
    let mut buf = [0u16; 2];
    while let Some(c) = chars.next() {
        if c == ESC {
            match chars.next() {
                Some('0') => out.extend_from_slice(&[0, 0]),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let u = u16::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                    out.extend_from_slice(&u.to_le_bytes());
                }
                Some(ESC) | None => {
                    for u in ESC.encode_utf16(&mut buf) {
                        out.extend_from_slice(&u.to_le_bytes());
                    }
                }
                Some(other) => {
                    for u in other.encode_utf16(&mut buf) {
                        out.extend_from_slice(&u.to_le_bytes());
                    }
                }
            }
        } else {
            for u in c.encode_utf16(&mut buf) {
                out.extend_from_slice(&u.to_le_bytes());
            }
        }
    }
}

/// Stored text to UTF-16 code units.
pub fn stored_to_utf16(s: &str) -> Vec<u16> {
    let mut bytes = Vec::new();
    stored_to_utf16le(s, &mut bytes);
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Stored text to code page 1252 bytes (varchar); characters outside it become `?` as in SQL Server.
pub fn stored_to_cp1252(s: &str) -> Vec<u8> {
    let units = stored_to_utf16(s);
    let mut out = Vec::with_capacity(units.len());
    for r in char::decode_utf16(units.iter().copied()) {
        match r {
            Ok(c) if (c as u32) < 0x80 => out.push(c as u8),
            Ok(c) => {
                let mut tmp = [0u8; 4];
                let (bytes, _, had_errors) =
                    encoding_rs::WINDOWS_1252.encode(c.encode_utf8(&mut tmp));
                if had_errors || bytes.len() != 1 {
                    out.push(b'?');
                } else {
                    out.push(bytes[0]);
                }
            }
            Err(_) => out.push(b'?'),
        }
    }
    out
}

/// Code page 1252 bytes (varchar parameters) to stored text.
pub fn cp1252_to_stored(bytes: &[u8]) -> String {
    let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
    let units: Vec<u16> = text.encode_utf16().collect();
    utf16_to_stored(&units)
}
