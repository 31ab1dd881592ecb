//! Every transcoder against the general path over the same bytes: the same field, or nothing
//! written when the general path must decide.

use super::*;
use crate::config::Policies;
use crate::convert::copy;
use crate::convert::value::to_value;
use crate::convert::{direct, Losses};
use crate::source::wire::meta::WireColumn;
use crate::source::wire::row::{cell, Scratch, Span};

fn column(kind: K, not_null: bool) -> ColumnPlan {
    ColumnPlan {
        not_null,
        ..ColumnPlan::plain(kind)
    }
}

/// The general path's field for `b`, or `None` where it refuses the value.
fn general(ty: WireType, col: &ColumnPlan, b: &[u8]) -> Option<Vec<u8>> {
    let wire = WireColumn {
        name: "c".into(),
        ty,
    };
    let mut scratch = Scratch::default();
    let (c, _) = cell(b, &wire, Span::Bytes(0, b.len()), &mut scratch).ok()?;
    let mut out = BytesMut::new();
    if !direct::encode(&c, col, &mut out) {
        let v = to_value(c, col, &Policies::default(), &mut Losses::default()).ok()?;
        copy::field(&mut out, &v);
    }
    Some(out.to_vec())
}

fn check(ty: WireType, kinds: &[K], values: &[Vec<u8>]) -> usize {
    let mut fast_taken = 0;
    for kind in kinds {
        let col = column(*kind, false);
        let t = plan(ty, &col).unwrap_or_else(|| panic!("{ty:?} into {kind:?} has a transcoder"));
        for b in values {
            let mut fast = BytesMut::new();
            if write(t, b, &mut fast) {
                fast_taken += 1;
                assert_eq!(
                    Some(fast.to_vec()),
                    general(ty, &col, b),
                    "{ty:?} into {kind:?}: {b:02X?}"
                );
            } else {
                assert!(
                    fast.is_empty(),
                    "{ty:?} into {kind:?}: wrote before refusing"
                );
            }
        }
    }
    fast_taken
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

#[test]
fn integers_of_every_width_into_every_integer_column() {
    let ints = [K::Int2, K::Int4, K::Int8];
    let one: Vec<Vec<u8>> = [0u8, 1, 127, 128, 200, 255]
        .iter()
        .map(|v| vec![*v])
        .collect();
    assert!(check(WireType::Fixed(F::Int1, 1), &ints, &one) >= 18);
    assert!(check(WireType::ByteLen(B::Int), &ints, &one) >= 18);
    let mut many: Vec<Vec<u8>> = Vec::new();
    for v in [
        0i64,
        1,
        -1,
        127,
        -128,
        32767,
        -32768,
        32768,
        -32769,
        i32::MAX as i64,
        i32::MIN as i64,
        i32::MAX as i64 + 1,
        i64::MAX,
        i64::MIN,
    ] {
        if let Ok(x) = i16::try_from(v) {
            many.push(x.to_le_bytes().to_vec());
        }
        if let Ok(x) = i32::try_from(v) {
            many.push(x.to_le_bytes().to_vec());
        }
        many.push(v.to_le_bytes().to_vec());
    }
    // Out of a narrower column's range: left to the general path, which names the value.
    let taken = check(WireType::ByteLen(B::Int), &ints, &many);
    assert!(taken > 20 && taken < 3 * many.len(), "{taken}");
    check(
        WireType::Fixed(F::Int8, 8),
        &ints,
        &[i64::MIN.to_le_bytes().to_vec()],
    );
    check(
        WireType::Fixed(F::Int2, 2),
        &ints,
        &[(-2i16).to_le_bytes().to_vec()],
    );
    check(
        WireType::Fixed(F::Int4, 4),
        &ints,
        &[(-2i32).to_le_bytes().to_vec()],
    );
}

#[test]
fn bits_floats_uuids_and_dates() {
    check(
        WireType::ByteLen(B::Bit),
        &[K::Bool],
        &[vec![0], vec![1], vec![2]],
    );
    check(WireType::Fixed(F::Bit, 1), &[K::Bool], &[vec![0], vec![1]]);
    let floats = vec![
        1.5f32.to_le_bytes().to_vec(),
        (-0.0f32).to_le_bytes().to_vec(),
        f32::MAX.to_le_bytes().to_vec(),
        0.1f64.to_le_bytes().to_vec(),
        f64::MIN_POSITIVE.to_le_bytes().to_vec(),
        (-1e308f64).to_le_bytes().to_vec(),
        // 0.5 fits a real exactly: the general path writes it as one; the transcoder leaves it.
        0.5f64.to_le_bytes().to_vec(),
    ];
    let taken = check(
        WireType::ByteLen(B::Float),
        &[K::Float4, K::Float8],
        &floats,
    );
    assert_eq!(taken, floats.len());
    check(WireType::Fixed(F::Float8, 8), &[K::Float8], &floats[3..]);
    let g: Vec<u8> = (0u8..16).collect();
    assert_eq!(
        check(WireType::ByteLen(B::Guid), &[K::Uuid], &[g, vec![0xFF; 16]]),
        2
    );
    let dates: Vec<Vec<u8>> = [0u32, 1, 730_119, 3_652_058]
        .iter()
        .map(|d| d.to_le_bytes()[..3].to_vec())
        .collect();
    assert_eq!(check(WireType::ByteLen(B::Date), &[K::Date], &dates), 4);
}

#[test]
fn datetime2_at_every_scale_with_and_without_digits_below_a_microsecond() {
    for scale in 0..=7u8 {
        let len = match scale {
            0..=2 => 3,
            3..=4 => 4,
            _ => 5,
        };
        let per_day = 86_400 * 10u64.pow(scale as u32);
        let values: Vec<Vec<u8>> = [0u64, 1, 10, 123_456_780 % per_day, per_day - 1]
            .iter()
            .flat_map(|t| {
                [0u32, 730_119, 3_652_058].map(|d| {
                    let mut b = t.to_le_bytes()[..len].to_vec();
                    b.extend(&d.to_le_bytes()[..3]);
                    b
                })
            })
            .collect();
        let taken = check(
            WireType::ByteLen(B::DateTime2(scale)),
            &[K::Timestamp, K::TimestampTz],
            &values,
        );
        assert!(taken > 0, "scale {scale}");
    }
}

#[test]
fn national_text_in_every_utf8_length_and_the_cases_left_to_the_policies() {
    let mut values: Vec<Vec<u8>> = [
        "",
        "plain",
        "naïve",
        "☃ snow",
        "𝄞 clef",
        "mixed ß ☃ 𝄞 z",
        "ｗｉｄｅ",
    ]
    .iter()
    .map(|s| utf16(s))
    .collect();
    let taken_text = check(WireType::UShortLen(Chars::Utf16), &[K::Text], &values);
    assert_eq!(taken_text, values.len());
    // NUL, a lone high and a lone low surrogate, a high surrogate at the end, odd length.
    values.push(utf16("a\0b"));
    values.push([utf16("x"), 0xD800u16.to_le_bytes().to_vec(), utf16("y")].concat());
    values.push(0xDC00u16.to_le_bytes().to_vec());
    values.push([utf16("x"), 0xDBFFu16.to_le_bytes().to_vec()].concat());
    values.push(vec![b'a']);
    let n = values.len();
    assert_eq!(
        check(WireType::Plp(Chars::Utf16), &[K::Text], &values),
        n - 5
    );
    // varchar(5): fits by code units, or is left to the general path (which counts characters).
    let v5 = check(WireType::UShortLen(Chars::Utf16), &[K::Varchar(5)], &values);
    assert!(v5 >= 3, "{v5}");
}

#[test]
fn nothing_without_a_plain_pair() {
    let text = column(K::Text, false);
    assert_eq!(plan(WireType::ByteLen(B::Int), &text), None);
    assert_eq!(plan(WireType::UShortLen(Chars::Binary), &text), None);
    assert_eq!(
        plan(WireType::Plp(Chars::Xml), &column(K::Xml, false)),
        None
    );
    assert_eq!(
        plan(
            WireType::ByteLen(B::Decimal(2)),
            &column(K::Numeric(Some((18, 2))), false)
        ),
        None
    );
}
