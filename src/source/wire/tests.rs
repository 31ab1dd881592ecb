//! The decoder over hand-built token streams (the types the simulator does not send: fixed-length
//! types, NBCROW, chunked PLP, text), fed whole, byte by byte, and split at every position.

use super::*;
use std::borrow::Cow;
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, Time};

/// Payloads given in advance.
struct Given(std::collections::VecDeque<BytesMut>);

impl Payloads for Given {
    async fn next_payload(&mut self) -> Result<Option<BytesMut>, WireError> {
        Ok(self.0.pop_front())
    }
}

const CP1252: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn name(b: &mut Vec<u8>, n: &str) {
    b.push(n.encode_utf16().count() as u8);
    b.extend(utf16(n));
}

fn col(b: &mut Vec<u8>, type_info: &[u8], n: &str) {
    b.extend(0u32.to_le_bytes());
    b.extend(1u16.to_le_bytes());
    b.extend(type_info);
    name(b, n);
}

/// COLMETADATA for the columns [`row`] fills.
fn metadata() -> Vec<u8> {
    let mut b = vec![0x81];
    b.extend(12u16.to_le_bytes());
    col(&mut b, &[0x38], "id");
    col(&mut b, &[0x26, 8], "b");
    let mut nmax = vec![0xE7, 0xFF, 0xFF];
    nmax.extend(CP1252);
    col(&mut b, &nmax, "nmax");
    col(&mut b, &[0x6A, 17, 38, 2], "d");
    col(&mut b, &[0x24, 16], "g");
    let mut vc = vec![0xA7, 50, 0];
    vc.extend(CP1252);
    col(&mut b, &vc, "vc");
    col(&mut b, &[0x2B, 7], "dto");
    col(&mut b, &[0xA5, 0xFF, 0xFF], "bmax");
    col(&mut b, &[0x3C], "m");
    col(&mut b, &[0x3D], "dt");
    let mut tx = vec![0x23];
    tx.extend(0x7FFF_FFFFu32.to_le_bytes());
    tx.extend(CP1252);
    tx.push(2);
    tx.extend(3u16.to_le_bytes());
    tx.extend(utf16("dbo"));
    tx.extend(1u16.to_le_bytes());
    tx.extend(utf16("t"));
    col(&mut b, &tx, "tx");
    col(&mut b, &[0x68, 1], "bt");
    b
}

/// A ROW with every value set; `nmax` in several PLP chunks.
fn full_row(id: i32) -> Vec<u8> {
    let mut b = vec![0xD1];
    b.extend(id.to_le_bytes());
    b.push(8);
    b.extend((-5_000_000_000i64).to_le_bytes());
    let text = utf16("naïve ☃ 𝄞 and more");
    b.extend((text.len() as u64).to_le_bytes());
    // Chunks of 7, 4 (splitting a surrogate pair), then the rest.
    for part in [&text[..7], &text[7..11], &text[11..]] {
        b.extend((part.len() as u32).to_le_bytes());
        b.extend(part);
    }
    b.extend(0u32.to_le_bytes());
    b.push(17);
    b.push(0); // negative
    let mut mag = [0u8; 16];
    mag[..16].copy_from_slice(&12345678901234567890123456789012345u128.to_le_bytes());
    b.extend(mag);
    b.push(16);
    b.extend([
        0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 8, 9, 10, 11, 12, 13, 14, 15,
    ]);
    b.extend(4u16.to_le_bytes());
    b.extend([b'c', b'a', b'f', 0xE9]);
    b.push(10);
    b.extend(&1234567u64.to_le_bytes()[..5]);
    b.extend(&730_119u32.to_le_bytes()[..3]);
    b.extend((-330i16).to_le_bytes());
    // bmax: unknown total length, two chunks.
    b.extend(0xFFFF_FFFF_FFFF_FFFEu64.to_le_bytes());
    b.extend(2u32.to_le_bytes());
    b.extend([1, 2]);
    b.extend(1u32.to_le_bytes());
    b.extend([3]);
    b.extend(0u32.to_le_bytes());
    b.extend((-1i32).to_le_bytes());
    b.extend(0xFFFF_0000u32.to_le_bytes());
    b.extend(40_000i32.to_le_bytes());
    b.extend(150u32.to_le_bytes());
    b.push(16);
    b.extend([0xAB; 16]);
    b.extend([0; 8]);
    b.extend(3u32.to_le_bytes());
    b.extend(b"old");
    b.push(1);
    b.push(1);
    b
}

/// An NBCROW with every nullable column NULL (id, m and dt are fixed-length, never NULL here).
fn null_row(id: i32) -> Vec<u8> {
    let mut b = vec![0xD2];
    // Columns 1-7 and 10-11 NULL: bits 1..=7 of byte 0, bits 2 and 3 of byte 1.
    b.extend([0b1111_1110, 0b0000_1100]);
    b.extend(id.to_le_bytes());
    b.extend(0i32.to_le_bytes());
    b.extend(7u32.to_le_bytes());
    b.extend(0i32.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b
}

fn done() -> Vec<u8> {
    let mut b = vec![0xFD];
    b.extend(0u16.to_le_bytes());
    b.extend(0xC1u16.to_le_bytes());
    b.extend(2u64.to_le_bytes());
    b
}

fn info() -> Vec<u8> {
    let mut b = vec![0xAB];
    b.extend(3u16.to_le_bytes());
    b.extend([1, 2, 3]);
    b
}

fn stream() -> Vec<u8> {
    [metadata(), info(), full_row(1), null_row(2), done()].concat()
}

/// Every cell of every row, rendered.
async fn decode(payloads: Vec<Vec<u8>>) -> Result<Vec<Vec<String>>, WireError> {
    let src = Given(
        payloads
            .into_iter()
            .map(|p| BytesMut::from(&p[..]))
            .collect(),
    );
    let mut r = RawRows::start(src).await?;
    let mut out = Vec::new();
    while r.next_row().await? {
        let mut row = Vec::new();
        for i in 0..r.columns().len() {
            let (c, lossy) = r.cell(i)?;
            row.push(format!("{c:?}{}", if lossy { " lossy" } else { "" }));
        }
        out.push(row);
    }
    Ok(out)
}

fn expected() -> Vec<Vec<String>> {
    let r = |c: ColumnData<'_>| format!("{c:?}");
    let full = vec![
        r(ColumnData::I32(Some(1))),
        r(ColumnData::I64(Some(-5_000_000_000))),
        r(ColumnData::String(Some(Cow::Borrowed(
            "naïve ☃ 𝄞 and more",
        )))),
        r(ColumnData::Numeric(Some(Numeric::new_with_scale(
            -12345678901234567890123456789012345,
            2,
        )))),
        r(ColumnData::Guid(Some(uuid::Uuid::from_bytes([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 8, 9, 10, 11, 12, 13, 14, 15,
        ])))),
        r(ColumnData::String(Some(Cow::Borrowed("café")))),
        r(ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
            DateTime2::new(Date::new(730_119), Time::new(1_234_567, 7)),
            -330,
        )))),
        r(ColumnData::Binary(Some(Cow::Borrowed(&[1, 2, 3])))),
        // money -1 * 2^32 + 0xFFFF0000, scaled by 10^-4
        r(ColumnData::F64(Some(
            ((-1i64 << 32) as f64 + 4294901760.0) / 1e4,
        ))),
        r(ColumnData::DateTime(Some(DateTime::new(40_000, 150)))),
        r(ColumnData::String(Some(Cow::Borrowed("old")))),
        r(ColumnData::Bit(Some(true))),
    ];
    let nulls = vec![
        r(ColumnData::I32(Some(2))),
        r(ColumnData::I32(None)),
        r(ColumnData::String(None)),
        r(ColumnData::Numeric(None)),
        r(ColumnData::Guid(None)),
        r(ColumnData::String(None)),
        r(ColumnData::DateTimeOffset(None)),
        r(ColumnData::Binary(None)),
        r(ColumnData::F64(Some(0.0007))),
        r(ColumnData::DateTime(Some(DateTime::new(0, 0)))),
        r(ColumnData::String(None)),
        r(ColumnData::Bit(None)),
    ];
    vec![full, nulls]
}

#[tokio::test]
async fn every_framing_decodes_whole() {
    assert_eq!(decode(vec![stream()]).await.unwrap(), expected());
}

#[tokio::test]
async fn tokens_split_anywhere_across_packets_decode_the_same() {
    let s = stream();
    for at in 1..s.len() {
        let got = decode(vec![s[..at].to_vec(), s[at..].to_vec()]).await;
        assert_eq!(got.unwrap(), expected(), "split at byte {at}");
    }
    let bytes: Vec<Vec<u8>> = s.iter().map(|b| vec![*b]).collect();
    assert_eq!(
        decode(bytes).await.unwrap(),
        expected(),
        "one byte per packet"
    );
}

#[tokio::test]
async fn lone_surrogates_become_replacement_characters_and_are_reported() {
    let mut b = vec![0x81];
    b.extend(1u16.to_le_bytes());
    let mut ti = vec![0xE7, 40, 0];
    ti.extend(CP1252);
    col(&mut b, &ti, "n");
    b.push(0xD1);
    b.extend(4u16.to_le_bytes());
    b.extend(0xD800u16.to_le_bytes());
    b.extend((b'x' as u16).to_le_bytes());
    b.extend(done());
    let rows = decode(vec![b]).await.unwrap();
    assert_eq!(
        rows,
        vec![vec![format!(
            "{:?} lossy",
            ColumnData::String(Some(Cow::Borrowed("\u{FFFD}x")))
        )]]
    );
}

#[tokio::test]
async fn a_server_error_is_the_drivers_error_with_its_number() {
    let mut e = vec![0xAA];
    let mut body = Vec::new();
    body.extend(1205u32.to_le_bytes());
    body.push(51);
    body.push(13);
    let msg = utf16("deadlock victim");
    body.extend((msg.len() as u16 / 2).to_le_bytes());
    body.extend(msg);
    name(&mut body, "sim");
    name(&mut body, "");
    body.extend(1u32.to_le_bytes());
    e.extend((body.len() as u16).to_le_bytes());
    e.extend(body);
    let s = [metadata(), full_row(1), e, done()].concat();
    match decode(vec![s]).await {
        Err(WireError::Driver(tiberius::error::Error::Server(t))) => {
            assert_eq!(t.code(), 1205);
            assert_eq!(t.message(), "deadlock victim");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unsupported_column_type_is_said_before_any_row() {
    let mut b = vec![0x81];
    b.extend(1u16.to_le_bytes());
    let mut ti = vec![0x62];
    ti.extend(8016u32.to_le_bytes());
    col(&mut b, &ti, "v");
    match decode(vec![b]).await {
        Err(WireError::Unsupported(what)) => assert!(what.contains("0x62"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_response_cut_short_or_garbled_is_an_error_not_an_end() {
    let s = stream();
    let cut = s[..s.len() - 20].to_vec();
    assert!(matches!(
        decode(vec![cut]).await,
        Err(WireError::Malformed(_))
    ));
    let mut garbled = [metadata(), full_row(1)].concat();
    garbled.push(0x42);
    assert!(matches!(
        decode(vec![garbled]).await,
        Err(WireError::Malformed(m)) if m.contains("0x42")
    ));
}

#[tokio::test]
async fn bytes_invalid_in_the_columns_code_page_are_a_value_error_not_a_stream_error() {
    // Japanese_CI_AS (LCID 0x0411, no sort id): Shift_JIS. 0x82 is a lead byte without its trail.
    let mut b = vec![0x81];
    b.extend(1u16.to_le_bytes());
    col(&mut b, &[0xA7, 20, 0, 0x11, 0x04, 0xD0, 0x00, 0x00], "v");
    b.push(0xD1);
    b.extend(2u16.to_le_bytes());
    b.extend([b'a', 0x82]);
    b.extend(done());
    match decode(vec![b]).await {
        Err(WireError::Value(m)) => assert!(m.contains("Shift_JIS"), "{m}"),
        other => panic!("{other:?}"),
    }
}
