//! The TDS protocol by hand: attention (cancel) and hostile clients, which tiberius cannot produce.

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn packet(ty: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![ty, 0x01];
    p.extend_from_slice(&((payload.len() + 8) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 1, 0]);
    p.extend_from_slice(payload);
    p
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// LOGIN7 (MS-TDS 2.2.6.4) for a SQL login.
fn login7(user: &str, password: &str) -> Vec<u8> {
    let pw: Vec<u8> = utf16(password)
        .iter()
        .map(|b| b.rotate_left(4) ^ 0xA5)
        .collect();
    let fields: [Vec<u8>; 9] = [
        utf16("host"),
        utf16(user),
        pw,
        utf16("protocol-test"),
        utf16(""),
        utf16(""),
        utf16("raw"),
        utf16(""),
        utf16(""),
    ];
    let mut fixed = Vec::new();
    fixed.extend_from_slice(&0u32.to_le_bytes()); // length, patched below
    fixed.extend_from_slice(&0x7400_0004u32.to_le_bytes());
    fixed.extend_from_slice(&4096u32.to_le_bytes());
    fixed.extend_from_slice(&[0; 12]); // client version, pid, connection id
    fixed.extend_from_slice(&[0xE0, 0x03, 0x00, 0x00]); // option flags 1, 2, type flags, flags 3
    fixed.extend_from_slice(&0i32.to_le_bytes());
    fixed.extend_from_slice(&0x0409u32.to_le_bytes());
    let mut data = Vec::new();
    let mut offset = 94u16;
    for f in &fields {
        fixed.extend_from_slice(&offset.to_le_bytes());
        fixed.extend_from_slice(&((f.len() / 2) as u16).to_le_bytes());
        data.extend_from_slice(f);
        offset += f.len() as u16;
    }
    fixed.extend_from_slice(&[0; 6]); // client id
    fixed.extend_from_slice(&[0; 12]); // SSPI, attach db file, change password
    fixed.extend_from_slice(&0u32.to_le_bytes()); // SSPI long
    assert_eq!(fixed.len(), 94);
    let total = (fixed.len() + data.len()) as u32;
    fixed[0..4].copy_from_slice(&total.to_le_bytes());
    fixed.extend_from_slice(&data);
    fixed
}

/// Reads one whole reply message (packets up to end-of-message); returns its payload.
async fn read_reply(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut h = [0u8; 8];
        s.read_exact(&mut h).await.expect("reply header");
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let start = out.len();
        out.resize(start + len - 8, 0);
        s.read_exact(&mut out[start..]).await.expect("reply body");
        if h[1] & 0x01 != 0 {
            return out;
        }
    }
}

async fn raw_session(server: &mssql_sim::server::SimServer) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let prelogin = [0x00, 0x00, 0x06, 0x00, 0x06, 0xFF, 16, 0, 0, 0, 0, 0];
    s.write_all(&packet(0x12, &prelogin)).await.unwrap();
    read_reply(&mut s).await;
    s.write_all(&packet(0x10, &login7("sa", SA_PASSWORD)))
        .await
        .unwrap();
    let reply = read_reply(&mut s).await;
    assert!(reply.contains(&0xAD), "LOGINACK expected");
    s
}

fn sql_batch(sql: &str) -> Vec<u8> {
    // ALL_HEADERS with a transaction descriptor header, then the UTF-16 text.
    let mut p = Vec::new();
    p.extend_from_slice(&22u32.to_le_bytes());
    p.extend_from_slice(&18u32.to_le_bytes());
    p.extend_from_slice(&2u16.to_le_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&utf16(sql));
    packet(0x01, &p)
}

#[tokio::test]
async fn attention_stops_a_running_result_and_is_acknowledged() {
    let s = sim("attention").await;
    let mut raw = raw_session(&s).await;
    raw.write_all(&sql_batch(
        "SELECT value, REPLICATE(N'x', 50) FROM GENERATE_SERIES(1, 5000000)",
    ))
    .await
    .unwrap();
    // Wait for the first packet of the result, then cancel.
    let mut h = [0u8; 8];
    raw.read_exact(&mut h).await.unwrap();
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    let mut first = vec![0u8; len - 8];
    raw.read_exact(&mut first).await.unwrap();
    raw.write_all(&packet(0x06, &[])).await.unwrap();
    let rest = if h[1] & 0x01 != 0 {
        Vec::new()
    } else {
        read_reply(&mut raw).await
    };
    // The reply ends with DONE carrying the attention acknowledgement, long before 5M rows.
    let done = &rest[rest.len() - 13..];
    assert_eq!(done[0], 0xFD, "a DONE token ends the reply");
    assert_ne!(
        u16::from_le_bytes([done[1], done[2]]) & 0x20,
        0,
        "DONE_ATTN acknowledges the attention"
    );
    assert!(
        rest.len() < 100_000_000,
        "the result was cut short ({} bytes)",
        rest.len()
    );
    // The session goes on.
    raw.write_all(&sql_batch("SELECT 42")).await.unwrap();
    let reply = read_reply(&mut raw).await;
    assert!(
        reply.windows(5).any(|w| w == [0xD1, 4, 42, 0, 0]),
        "a row with 42 follows: {reply:02x?}"
    );
}

#[tokio::test]
async fn hostile_clients_do_not_hurt_the_server() {
    let s = sim("hostile").await;
    // A header shorter than itself, random bytes, a LOGIN7 before PRELOGIN, a truncated LOGIN7.
    let garbage: Vec<Vec<u8>> = vec![
        vec![0x12, 0x01, 0x00, 0x02, 0, 0, 0, 0],
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect(),
        packet(0x10, &login7("sa", SA_PASSWORD)),
        packet(
            0x12,
            &[0x00, 0x00, 0x06, 0x00, 0x06, 0xFF, 16, 0, 0, 0, 0, 0],
        )
        .into_iter()
        .chain(packet(0x10, &[1, 2, 3]))
        .collect(),
    ];
    for g in garbage {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        let _ = t.write_all(&g).await;
        // End of input: a server waiting for the rest of a packet sees EOF.
        let _ = t.shutdown().await;
        // The server answers or closes; either way this read ends.
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = t.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    }
    let mut c = connect(&s).await;
    assert_eq!(rows(&mut c, "SELECT 1").await[0].get::<i32, _>(0), Some(1));
    // A client that logs in and vanishes mid-request.
    let mut raw = raw_session(&s).await;
    raw.write_all(&sql_batch("SELECT value FROM GENERATE_SERIES(1, 1000000)")[..20])
        .await
        .unwrap();
    drop(raw);
    assert_eq!(rows(&mut c, "SELECT 2").await[0].get::<i32, _>(0), Some(2));
}
