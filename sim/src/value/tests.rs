use super::*;
use crate::types::{Len, TsqlType};

#[test]
fn escapes_round_trip() {
    let units = vec![0x61, 0x0000, 0xD800, 0x62, 0xDFFF, 0xDBFF, 0xDC00, 0x63];
    let stored = utf16_to_stored(&units);
    assert!(!stored.contains('\0'));
    assert_eq!(stored_to_utf16(&stored), units);
    let esc: Vec<u16> = ESC.to_string().encode_utf16().collect();
    assert_eq!(stored_to_utf16(&utf16_to_stored(&esc)), esc);
}

#[test]
fn decimal_parse_display_rescale() {
    let d = Dec::parse("-12.3450").unwrap();
    assert_eq!(d.to_string(), "-12.3450");
    assert_eq!(d.rescale(2).unwrap().to_string(), "-12.35");
    assert_eq!(
        Dec::parse("0.00000000000000000000000000000000000001")
            .unwrap()
            .to_string(),
        "0.00000000000000000000000000000000000001"
    );
    let big = "99999999999999999999999999999999999999";
    assert_eq!(Dec::parse(big).unwrap().to_string(), big);
}

#[test]
fn pg_numeric_with_38_fraction_digits() {
    // 0.99999999999999999999999999999999999999: weight -1, ten base-10000 digits, dscale 38.
    let mut raw = vec![0, 10, 0xFF, 0xFF, 0, 0, 0, 38];
    for _ in 0..9 {
        raw.extend_from_slice(&9999u16.to_be_bytes());
    }
    raw.extend_from_slice(&9900u16.to_be_bytes());
    let d = decode_pg_numeric(&raw).unwrap();
    assert_eq!(d.to_string(), format!("0.{}", "9".repeat(38)));
}

#[test]
fn datetime_text_forms() {
    let (d, t, o) = parse_datetime_text("2024-02-29 23:59:59.9999999 +05:30").unwrap();
    assert_eq!(
        format_datetimeoffset(d, t, o.unwrap()),
        "2024-02-29 23:59:59.9999999 +05:30"
    );
    let (d, t, o) = parse_datetime_text("20240101").unwrap();
    assert_eq!(
        (format_datetime2(d, t), o),
        ("2024-01-01 00:00:00.0000000".to_string(), None)
    );
    assert!(parse_datetime_text("2024-13-01").is_none());
    assert_eq!(
        parse_datetime_text("9999-12-31T23:59:59.9999999Z")
            .unwrap()
            .2,
        Some(0)
    );
}

#[test]
fn datetime_rounds_to_three_hundredths() {
    let mut buf = Vec::new();
    let (d, t, _) = parse_datetime_text("2024-01-01 00:00:00.002").unwrap();
    encode_tds(&TsqlType::DateTime, &Value::DateTime(d, t), &mut buf).unwrap();
    assert_eq!(u32::from_le_bytes(buf[5..9].try_into().unwrap()), 1);
}

#[test]
fn fast_path_matches_general_path() {
    use tokio_postgres::types::Type;
    let cases: Vec<(TsqlType, Type, Vec<u8>)> = vec![
        (TsqlType::BigInt, Type::INT8, (-5i64).to_be_bytes().to_vec()),
        (TsqlType::Int, Type::INT4, 123456i32.to_be_bytes().to_vec()),
        (
            TsqlType::SmallInt,
            Type::INT2,
            (-2i16).to_be_bytes().to_vec(),
        ),
        (TsqlType::Bit, Type::INT2, 1i16.to_be_bytes().to_vec()),
        (TsqlType::UniqueIdentifier, Type::UUID, (0u8..16).collect()),
        (
            TsqlType::NVarChar(Len::N(50)),
            Type::TEXT,
            "héllo \u{10FFFF}0x".as_bytes().to_vec(),
        ),
        (
            TsqlType::NVarChar(Len::N(50)),
            Type::VARCHAR,
            b"plain ascii".to_vec(),
        ),
        (
            TsqlType::DateTime2(7),
            Type::TEXT,
            b"2024-02-29 23:59:59.9999999".to_vec(),
        ),
        (
            TsqlType::DateTime2(3),
            Type::TEXT,
            b"2024-02-29 23:59:59.9996000".to_vec(),
        ),
    ];
    for (ty, pg, raw) in cases {
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        encode_pg_value(&ty, &pg, Some(&raw), &mut fast).unwrap();
        encode_tds(&ty, &decode_pg(&pg, Some(&raw)).unwrap(), &mut slow).unwrap();
        assert_eq!(fast, slow, "{ty} from {pg}");
    }
}
