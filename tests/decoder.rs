//! The snapshot's own decoder against tiberius's rows, over the same rows from the simulator:
//! byte for byte the same COPY stream, the same losses, the same errors.

use crate::common::*;
use replicator::config::{NulPolicy, Policies, SubMicrosecondPolicy};
use replicator::convert::{plan_tables, TablePlan};
use replicator::daemon::chunk::{copy_stream, Decoder};
use replicator::daemon::snapshot::is_utf16_decode_failure;
use std::collections::BTreeMap;

type Outcome = Result<(Vec<u8>, i64, BTreeMap<(String, String), u64>), String>;

async fn plans(env: &Env, tables: &[&str]) -> (replicator::source::Tds, Vec<TablePlan>) {
    let sel: String = tables
        .iter()
        .map(|t| format!("[[tables]]\nsource = \"{t}\"\n"))
        .collect();
    let cfg = env.config(&sel);
    let mut tds = replicator::source::connect(&cfg.source).await.unwrap();
    let discovered = replicator::source::discover::discover(&mut tds, false)
        .await
        .unwrap();
    let plans = plan_tables(&discovered, &cfg.tables, &cfg.mapping)
        .unwrap()
        .all()
        .unwrap();
    assert_eq!(plans.len(), tables.len());
    (tds, plans)
}

/// One table's first `limit` rows as a COPY stream by `decoder`; tiberius's path re-reads
/// national text as bytes when it cannot decode it, as the daemon does.
async fn stream(
    tds: &mut replicator::source::Tds,
    plan: &TablePlan,
    policies: &Policies,
    decoder: Decoder,
) -> Outcome {
    let mut r = copy_stream(tds, plan, policies, decoder, 1_000_000, false).await;
    if matches!(&r, Err(e) if is_utf16_decode_failure(e)) {
        assert_eq!(
            decoder,
            Decoder::Tiberius,
            "the direct decoder never needs a re-read"
        );
        r = copy_stream(tds, plan, policies, decoder, 1_000_000, true).await;
    }
    r.map(|(bytes, read)| {
        let losses = read
            .losses
            .counts
            .iter()
            .map(|((c, k), n)| ((c.clone(), k.label().to_string()), *n))
            .collect();
        (bytes, read.rows, losses)
    })
    .map_err(|e| e.to_string())
}

async fn assert_same(
    tds: &mut replicator::source::Tds,
    plan: &TablePlan,
    policies: &Policies,
) -> Outcome {
    let direct = stream(tds, plan, policies, Decoder::Direct).await;
    let reference = stream(tds, plan, policies, Decoder::Tiberius).await;
    match (&direct, &reference) {
        (Ok((a, ra, la)), Ok((b, rb, lb))) => {
            assert_eq!(ra, rb, "{}: row counts", plan.source.name);
            if a != b {
                let at = a
                    .iter()
                    .zip(b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                panic!(
                    "{}: COPY streams differ at byte {at} of {} / {}: direct {:?} vs tiberius {:?}",
                    plan.source.name,
                    a.len(),
                    b.len(),
                    &a[at.saturating_sub(8)..(at + 24).min(a.len())],
                    &b[at.saturating_sub(8)..(at + 24).min(b.len())]
                );
            }
            assert_eq!(la, lb, "{}: losses", plan.source.name);
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{}: errors", plan.source.name),
        _ => panic!(
            "{}: direct {direct:?} vs tiberius {reference:?}",
            plan.source.name
        ),
    }
    direct
}

/// Rows that walk every type through signs, magnitudes, scales, NULLs and non-ASCII text.
fn varied_rows(n: i64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let sign = if i % 2 == 0 { 1 } else { -1 };
            let null = |v: String| if i % 11 == 3 { "NULL".to_string() } else { v };
            let mag = 10i128.pow((i % 17) as u32) + i as i128;
            let text: String = ["a", "é", "☃", "𝄞", "'", " ", "Ω", "z"]
                .iter()
                .cycle()
                .skip(i as usize % 8)
                .take((i % 13) as usize)
                .copied()
                .collect();
            let neg = if sign < 0 { "-" } else { "" };
            let values = [
                (1000 + i).to_string(),
                null((i % 256).to_string()),
                null((sign * (i * 97 % 32768)).to_string()),
                null((sign as i128 * mag).to_string()),
                null((i % 2).to_string()),
                null(format!("{}.{:04}", sign * i * 1013, i % 10000)),
                null(format!("{neg}{}.{:05}", mag % 10i128.pow(13), i % 100000)),
                null(format!("{}.{:02}", sign * i, i % 100)),
                null(format!("{}.25", sign * i)),
                null(format!(
                    "{}E{}",
                    sign as f64 * 1.5 * i as f64,
                    i % 300 - 150
                )),
                format!(
                    "'{}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}'",
                    1753 + i % 8000,
                    1 + i % 12,
                    1 + i % 28,
                    i % 24,
                    i % 60,
                    (i * 7) % 60,
                    (i * 3) % 1000
                ),
                format!(
                    "'{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}0'",
                    1 + i % 9999,
                    1 + i % 12,
                    1 + i % 28,
                    i % 24,
                    i % 60,
                    i % 60,
                    (i * 37) % 1_000_000
                ),
                format!(
                    "'{:04}-{:02}-{:02}'",
                    1 + (i * 31) % 9999,
                    1 + i % 12,
                    1 + i % 28
                ),
                format!(
                    "'{:02}:{:02}:{:02}.{:06}0'",
                    i % 24,
                    (i * 7) % 60,
                    (i * 11) % 60,
                    (i * 13) % 1_000_000
                ),
                format!(
                    "'2001-02-03 04:05:06.{:06}0 {}{:02}:{:02}'",
                    i % 1_000_000,
                    if sign < 0 { "-" } else { "+" },
                    i % 14,
                    (i * 15) % 60
                ),
                null(format!("'{}'", "xyz".repeat((i % 4) as usize))),
                format!("N'{}'", text.replace('\'', "''")),
                null(format!("0x{}", "AB01".repeat((i % 5) as usize))),
                "NEWID()".to_string(),
            ];
            format!("({})", values.join(", "))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_decoder_gives_tiberius_bytes_for_every_type() {
    let env = Env::new("decoder").await;
    let mut c = env.tds().await;
    exec(&mut c, crate::snapshot::TYPES).await;
    exec(
        &mut c,
        "CREATE TABLE dbo.varied (id int NOT NULL PRIMARY KEY, t tinyint NULL, s smallint NULL, \
         b decimal(38,0) NULL, bt bit NULL, m money NULL, d decimal(18,5) NULL, n numeric(12,2) NULL, \
         r real NULL, f float NULL, dt datetime NOT NULL, d2 datetime2 NOT NULL, da date NOT NULL, \
         tm time NOT NULL, dto datetimeoffset NOT NULL, vc varchar(20) NULL, nvc nvarchar(40) NOT NULL, \
         vb varbinary(40) NULL, g uniqueidentifier NOT NULL)",
    )
    .await;
    for batch in varied_rows(1200).chunks(200) {
        exec(
            &mut c,
            &format!("INSERT INTO dbo.varied VALUES {}", batch.join(", ")),
        )
        .await;
    }
    // (max) values much larger than a packet, and code-page text outside ASCII.
    exec(
        &mut c,
        "CREATE TABLE dbo.plp (id bigint NOT NULL PRIMARY KEY, nmax nvarchar(max) NULL, \
         vmax varchar(max) NULL, bmax varbinary(max) NULL, vc varchar(50) NULL)",
    )
    .await;
    let blob: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let text: String = "naïve ☃ 𝄞 text, ".repeat(150_000);
    let mut q = tiberius::Query::new(
        "INSERT INTO dbo.plp VALUES (1, @P1, @P2, @P3, 'café crème'), (2, NULL, NULL, NULL, NULL), (3, N'', '', 0x, '')",
    );
    q.bind(text.clone());
    q.bind("plain ascii ".repeat(20_000));
    q.bind(blob);
    q.execute(&mut c).await.unwrap();
    // A key of text, so the chunk's last key is a string.
    exec(
        &mut c,
        "CREATE TABLE dbo.texts (k nvarchar(20) NOT NULL PRIMARY KEY, v int NULL); \
         INSERT INTO dbo.texts VALUES (N'b', 1), (N'a☃', 2), (N'c', NULL)",
    )
    .await;

    let (mut tds, plans) = plans(&env, &["dbo.types", "dbo.varied", "dbo.plp", "dbo.texts"]).await;
    let default = Policies::default();
    for plan in &plans {
        let (bytes, rows, _) = assert_same(&mut tds, plan, &default).await.unwrap();
        assert!(
            rows > 0 && bytes.len() > 19,
            "{}: rows read",
            plan.source.name
        );
    }
    let types = &plans[0];
    let (_, rows, losses) = assert_same(&mut tds, types, &default).await.unwrap();
    assert_eq!(rows, 3);
    let loss = |l: &BTreeMap<(String, String), u64>, c: &str, k: &str| {
        l.get(&(c.to_string(), k.to_string())).copied()
    };
    assert_eq!(loss(&losses, "nmax", "lone_surrogate_replaced"), Some(1));
    assert_eq!(loss(&losses, "nmax", "nul_stripped"), Some(1));
    assert_eq!(loss(&losses, "d2", "sub_microsecond_truncated"), Some(1));
    // Every policy gives the same bytes, losses or error by both decoders.
    let replace = Policies {
        nul_characters: NulPolicy::Replace,
        nul_replacement: "\u{2400}".into(),
        ..Policies::default()
    };
    let (_, _, l) = assert_same(&mut tds, types, &replace).await.unwrap();
    assert_eq!(loss(&l, "nmax", "nul_replaced"), Some(1));
    let fail_nul = Policies {
        nul_characters: NulPolicy::Fail,
        ..Policies::default()
    };
    let e = assert_same(&mut tds, types, &fail_nul).await.unwrap_err();
    assert!(e.contains("NUL") && e.contains("(id=1)"), "{e}");
    let fail_us = Policies {
        sub_microsecond: SubMicrosecondPolicy::Fail,
        ..Policies::default()
    };
    let e = assert_same(&mut tds, types, &fail_us).await.unwrap_err();
    assert!(
        e.contains("below a microsecond") && e.contains("(id=1)"),
        "{e}"
    );
    // The last key comes from the rows: the text key's last row in key order.
    let (_, read) = copy_stream(&mut tds, &plans[3], &default, Decoder::Direct, 2, false)
        .await
        .unwrap();
    assert_eq!(read.rows, 2);
    assert_eq!(
        read.last,
        Some(vec![replicator::key::KeyValue::String("b".into())])
    );
}
