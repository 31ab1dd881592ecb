//! Every type at its boundaries, as literals and as parameters, read back exactly.

use crate::common::*;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use tiberius::numeric::Numeric;

fn dt(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
}

#[tokio::test]
async fn boundaries_round_trip() {
    let s = sim("types").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE dbo.b (id int PRIMARY KEY, ti tinyint, si smallint, bi bigint, bt bit, d380 decimal(38,0), d3838 decimal(38,38), \
         m money, sm smallmoney, r real, f float, da date, t7 time(7), dtm datetime, sdt smalldatetime, d2 datetime2(7), d23 datetime2(3), \
         dto datetimeoffset(7), g uniqueidentifier, vc varchar(20), nv nvarchar(max), vb varbinary(max), bn binary(4))",
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO dbo.b VALUES (1, 255, -32768, -9223372036854775808, 1, 99999999999999999999999999999999999999, \
         0.99999999999999999999999999999999999999, 922337203685477.5807, -214748.3648, 3.4e38, -1.79e308, '0001-01-01', \
         '23:59:59.9999999', '2024-02-29 23:59:59.997', '2079-06-06 23:59', '9999-12-31 23:59:59.9999999', '2024-01-01 00:00:00.123', \
         '2024-06-01 12:00:00.1234567 -08:00', '6F9619FF-8B86-D011-B42D-00C04FC964FF', 'café', N'', 0x00FF10, 0x01020304), \
         (2, 0, NULL, NULL, 0, -99999999999999999999999999999999999999, -0.00000000000000000000000000000000000001, -922337203685477.5808, \
         214748.3647, NULL, NULL, '9999-12-31', '00:00:00', '1753-01-01 00:00:00', '1900-01-01', '0001-01-01 00:00:00', NULL, \
         '0001-01-01 14:00:00 +14:00', NULL, '', NULL, 0x, NULL)",
    )
    .await;
    let r = rows(
        &mut c,
        "SELECT *, CAST(m AS decimal(19,4)) AS m_exact FROM dbo.b ORDER BY id",
    )
    .await;
    let exact = rows(
        &mut c,
        "SELECT CAST(m AS decimal(19,4)) AS m_exact FROM dbo.b ORDER BY id",
    )
    .await;
    let a = &r[0];
    assert_eq!(a.get::<u8, _>("ti"), Some(255));
    assert_eq!(a.get::<i16, _>("si"), Some(-32768));
    assert_eq!(a.get::<i64, _>("bi"), Some(i64::MIN));
    assert_eq!(a.get::<bool, _>("bt"), Some(true));
    let n: Numeric = a.get("d380").unwrap();
    assert_eq!(
        (n.value(), n.scale()),
        (99999999999999999999999999999999999999i128, 0)
    );
    let n: Numeric = a.get("d3838").unwrap();
    assert_eq!(
        (n.value(), n.scale()),
        (99999999999999999999999999999999999999i128, 38)
    );
    let n: Numeric = exact[0].get("m_exact").unwrap();
    assert_eq!((n.value(), n.scale()), (9223372036854775807i128, 4));
    assert_eq!(a.get::<f32, _>("r"), Some(3.4e38));
    assert_eq!(a.get::<f64, _>("f"), Some(-1.79e308));
    assert_eq!(
        a.get::<NaiveDate, _>("da"),
        NaiveDate::from_ymd_opt(1, 1, 1)
    );
    assert_eq!(
        a.get::<NaiveTime, _>("t7"),
        NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_900)
    );
    // '.997' is tick 299 of 300 in that second: SQL Server's datetime rounds to 1/300 s.
    let dtm: NaiveDateTime = a.get("dtm").unwrap();
    assert_eq!(
        dtm.format("%Y-%m-%d %H:%M:%S").to_string(),
        "2024-02-29 23:59:59"
    );
    assert_eq!(
        (chrono::Timelike::nanosecond(&dtm) as u64 * 300 + 500_000_000) / 1_000_000_000,
        299
    );
    assert_eq!(
        a.get::<NaiveDateTime, _>("sdt"),
        Some(dt("2079-06-06 23:59:00.0"))
    );
    assert_eq!(
        a.get::<NaiveDateTime, _>("d2"),
        Some(dt("9999-12-31 23:59:59.9999999"))
    );
    assert_eq!(
        a.get::<NaiveDateTime, _>("d23"),
        Some(dt("2024-01-01 00:00:00.123"))
    );
    let dto: chrono::DateTime<chrono::FixedOffset> = a.get("dto").unwrap();
    assert_eq!(
        dto.to_rfc3339_opts(chrono::SecondsFormat::Nanos, false),
        "2024-06-01T12:00:00.123456700-08:00"
    );
    let g: uuid::Uuid = a.get("g").unwrap();
    assert_eq!(
        g.to_string().to_uppercase(),
        "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    );
    assert_eq!(a.get::<&str, _>("vc"), Some("café"));
    assert_eq!(a.get::<&str, _>("nv"), Some(""), "empty string is not NULL");
    assert_eq!(a.get::<&[u8], _>("vb"), Some(&[0x00u8, 0xFF, 0x10][..]));
    assert_eq!(a.get::<&[u8], _>("bn"), Some(&[1u8, 2, 3, 4][..]));
    let b = &r[1];
    assert_eq!(b.get::<u8, _>("ti"), Some(0));
    assert_eq!(b.get::<i16, _>("si"), None);
    let n: Numeric = b.get("d3838").unwrap();
    assert_eq!((n.value(), n.scale()), (-1, 38));
    let n: Numeric = exact[1].get("m_exact").unwrap();
    assert_eq!((n.value(), n.scale()), (-9223372036854775808i128, 4));
    assert_eq!(
        b.get::<NaiveDateTime, _>("dtm"),
        Some(dt("1753-01-01 00:00:00.0"))
    );
    assert_eq!(
        b.get::<NaiveDateTime, _>("d2"),
        Some(dt("0001-01-01 00:00:00.0"))
    );
    let dto: chrono::DateTime<chrono::FixedOffset> = b.get("dto").unwrap();
    assert_eq!(dto.to_rfc3339(), "0001-01-01T14:00:00+14:00");
    assert_eq!(b.get::<&str, _>("vc"), Some(""));
    assert_eq!(b.get::<&str, _>("nv"), None);
    assert_eq!(b.get::<&[u8], _>("vb"), Some(&[][..]));
}

#[tokio::test]
async fn out_of_range_values_are_errors() {
    let s = sim("ranges").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE r (id int PRIMARY KEY, ti tinyint, d decimal(5,2), m money)",
    )
    .await;
    assert_eq!(
        error_number(&mut c, "INSERT INTO r (id, ti) VALUES (1, 256)").await,
        220
    );
    assert_eq!(
        error_number(&mut c, "INSERT INTO r (id, d) VALUES (1, 1000.00)").await,
        8115
    );
    let r = rows(&mut c, "SELECT COUNT(*) FROM r").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(0), "nothing was stored");
}

#[tokio::test]
async fn parameters_of_every_type_round_trip() {
    let s = sim("paramtypes").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE TABLE p (id int PRIMARY KEY, s nvarchar(max), n decimal(38,10), d2 datetime2(7), g uniqueidentifier, b varbinary(max), f float, bt bit)").await;
    let text = "NUL\0inside, ünïcödé, 😀 and a quote '";
    let num = Numeric::new_with_scale(-12345678901234567890123456789i128, 10);
    let when = dt("2024-03-10 01:02:03.4567891");
    let g = uuid::Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").unwrap();
    let blob: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    c.execute(
        "INSERT INTO p VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8)",
        &[
            &1i32,
            &text,
            &num,
            &when,
            &g,
            &blob.as_slice(),
            &-0.5f64,
            &true,
        ],
    )
    .await
    .unwrap();
    let r = c
        .query(
            "SELECT s, n, d2, g, b, f, bt FROM p WHERE id = @P1 AND g = @P2",
            &[&1i32, &g],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].get::<&str, _>(0), Some(text));
    let n: Numeric = r[0].get(1).unwrap();
    assert_eq!((n.value(), n.scale()), (num.value(), 10));
    assert_eq!(r[0].get::<NaiveDateTime, _>(2), Some(when));
    assert_eq!(r[0].get::<uuid::Uuid, _>(3), Some(g));
    assert_eq!(r[0].get::<&[u8], _>(4), Some(blob.as_slice()));
    assert_eq!(r[0].get::<f64, _>(5), Some(-0.5));
    assert_eq!(r[0].get::<bool, _>(6), Some(true));
}

#[tokio::test]
async fn uniqueidentifier_orders_as_sql_server_does() {
    let s = sim("guidorder").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE TABLE g (id uniqueidentifier PRIMARY KEY)").await;
    // SQL Server compares the last six bytes first: this is its ascending order.
    let ordered = [
        "01000000-0000-0000-0000-000000000000",
        "00000000-0000-0000-0100-000000000000",
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-010000000000",
    ];
    for g in ordered.iter().rev() {
        exec(&mut c, &format!("INSERT INTO g VALUES ('{g}')")).await;
    }
    let r = rows(&mut c, "SELECT id FROM g ORDER BY id").await;
    let got: Vec<String> = r
        .iter()
        .map(|r| r.get::<uuid::Uuid, _>(0).unwrap().to_string())
        .collect();
    assert_eq!(got, ordered.to_vec());
    let r = c
        .query(
            "SELECT COUNT(*) FROM g WHERE id > @P1",
            &[&uuid::Uuid::parse_str(ordered[1]).unwrap()],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r[0].get::<i32, _>(0), Some(2));
}

#[tokio::test]
async fn temporal_values_are_validated_rounded_and_compared_as_values() {
    let s = sim("temporal").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE TABLE tm (id int PRIMARY KEY, d3 datetime2(3), t0 time(0), o2 datetimeoffset(2), d7 datetime2)").await;
    exec(&mut c, "INSERT INTO tm VALUES (1, '2024-01-01 23:59:59.9996', '23:59:59.6', '2024-06-01 12:00:00.125 +02:00', '20240101')").await;
    let r = rows(&mut c, "SELECT d3, t0, o2, d7 FROM tm").await;
    // SQL Server rounds to the column's scale on write, carrying into the next day / wrapping.
    assert_eq!(
        r[0].get::<NaiveDateTime, _>(0),
        Some(dt("2024-01-02 00:00:00.0"))
    );
    assert_eq!(
        r[0].get::<NaiveTime, _>(1),
        NaiveTime::from_hms_opt(0, 0, 0)
    );
    let o: chrono::DateTime<chrono::FixedOffset> = r[0].get(2).unwrap();
    assert_eq!(
        o.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        "2024-06-01T12:00:00.130+02:00"
    );
    assert_eq!(
        r[0].get::<NaiveDateTime, _>(3),
        Some(dt("2024-01-01 00:00:00.0"))
    );
    // Comparisons with literals in other formats compare values, not text.
    for q in [
        "SELECT id FROM tm WHERE d7 = '2024-01-01'",
        "SELECT id FROM tm WHERE d7 = '2024-01-01T00:00:00.000'",
        "SELECT id FROM tm WHERE d3 BETWEEN '2024-01-01' AND '2024-01-02'",
        "SELECT id FROM tm WHERE d3 > '2024-01-01 23:59:59.999'",
        "SELECT id FROM tm WHERE o2 = '2024-06-01 10:00:00.13 +00:00'",
        "SELECT id FROM tm WHERE t0 < '00:00:01'",
    ] {
        assert_eq!(rows(&mut c, q).await.len(), 1, "{q}");
    }
    let r = c
        .query(
            "SELECT id FROM tm WHERE d7 = @P1",
            &[&NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(
        r.len(),
        1,
        "a date parameter compares with a datetime2 column"
    );
    // CAST to time(n) gives a time that compares with a time column, from a time parameter,
    // text or a datetime, rounded to n digits as SQL Server rounds.
    let r = c
        .query(
            "SELECT id FROM tm WHERE CAST(t0 AS time(3)) = CAST(@P1 AS time(3))",
            &[&NaiveTime::from_hms_opt(0, 0, 0).unwrap()],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 1, "a time parameter cast to time(3) finds the row");
    for q in [
        "SELECT id FROM tm WHERE t0 = CAST('00:00:00.4' AS time(0))",
        "SELECT id FROM tm WHERE t0 = CAST(CAST('2030-05-05 00:00:00' AS datetime) AS time(0))",
        "SELECT id FROM tm WHERE CAST(N'12:00:00.5' AS time(3)) = CAST('12:00:00.500' AS time(3))",
    ] {
        assert_eq!(rows(&mut c, q).await.len(), 1, "{q}");
    }
    let r = rows(&mut c, "SELECT CAST('23:59:59.9996' AS time(3))").await;
    assert_eq!(
        r[0].get::<NaiveTime, _>(0),
        NaiveTime::from_hms_milli_opt(0, 0, 0, 0),
        "rounded to 3 digits, wrapping past midnight"
    );
    exec(
        &mut c,
        "UPDATE tm SET d7 = '2025-02-03T04:05:06.7' WHERE id = 1",
    )
    .await;
    let r = rows(&mut c, "SELECT d7 FROM tm").await;
    assert_eq!(
        r[0].get::<NaiveDateTime, _>(0),
        Some(dt("2025-02-03 04:05:06.7"))
    );
    // Invalid and out-of-range values are refused and nothing is stored.
    assert_eq!(
        error_number(&mut c, "INSERT INTO tm (id, d7) VALUES (2, 'not a date')").await,
        241
    );
    assert_eq!(
        error_number(
            &mut c,
            "INSERT INTO tm (id, o2) VALUES (2, '0001-01-01 00:00:00 +14:00')"
        )
        .await,
        242
    );
    assert_eq!(
        error_number(
            &mut c,
            "INSERT INTO tm (id, o2) VALUES (2, '2024-01-01 00:00:00 +15:00')"
        )
        .await,
        242
    );
    assert_eq!(
        rows(&mut c, "SELECT COUNT(*) FROM tm").await[0].get::<i32, _>(0),
        Some(1)
    );
}
