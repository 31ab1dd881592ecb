use super::value::*;
use super::*;
use crate::config::{NulPolicy, Policies, SubMicrosecondPolicy};
use crate::model::{SourceColumn, SourceType, Value};
use tiberius::ColumnData;

fn col(kind: TargetKind, utf16: bool) -> ColumnPlan {
    ColumnPlan {
        utf16_expr: utf16.then(|| "CAST([c] AS varbinary(max))".into()),
        ..ColumnPlan::plain(kind)
    }
}

fn conv(
    cell: ColumnData<'static>,
    c: &ColumnPlan,
    p: &Policies,
) -> (Result<Value, value::ConvertError>, Losses) {
    let mut l = Losses::default();
    (to_value(cell, c, p, &mut l), l)
}

#[test]
fn nul_policies_are_applied_and_counted() {
    let c = col(TargetKind::Text, false);
    let cell = || ColumnData::String(Some("a\0b".into()));
    let (v, l) = conv(cell(), &c, &Policies::default());
    assert_eq!(v.unwrap(), Value::Text("ab".into()));
    assert_eq!(l.counts.get(&("c".into(), LossKind::NulStripped)), Some(&1));
    let p = Policies {
        nul_characters: NulPolicy::Replace,
        nul_replacement: "?".into(),
        ..Default::default()
    };
    assert_eq!(conv(cell(), &c, &p).0.unwrap(), Value::Text("a?b".into()));
    let p = Policies {
        nul_characters: NulPolicy::Fail,
        ..Default::default()
    };
    assert!(conv(cell(), &c, &p).0.unwrap_err().message.contains("NUL"));
}

#[test]
fn utf16_bytes_decode_and_lone_surrogates_are_counted() {
    let c = col(TargetKind::Text, true);
    let bytes = vec![0x61, 0, 0xe9, 0, 0x00, 0xd8];
    let (v, l) = conv(
        ColumnData::Binary(Some(bytes.into())),
        &c,
        &Policies::default(),
    );
    assert_eq!(v.unwrap(), Value::Text("aé\u{FFFD}".into()));
    assert_eq!(
        l.counts.get(&("c".into(), LossKind::LoneSurrogateReplaced)),
        Some(&1)
    );
}

#[test]
fn temporal_values_are_exact_or_counted() {
    use tiberius::time::{Date, DateTime, DateTime2, Time};
    let c = col(TargetKind::Timestamp, false);
    // 2000-01-01 00:00:00 + 1 tick (1/300 s) -> 3333 us; 2 ticks -> 6667 us (half up).
    let (v, _) = conv(
        ColumnData::DateTime(Some(DateTime::new(36524, 1))),
        &c,
        &Policies::default(),
    );
    assert_eq!(v.unwrap(), Value::Timestamp(3333));
    let (v, _) = conv(
        ColumnData::DateTime(Some(DateTime::new(36524, 2))),
        &c,
        &Policies::default(),
    );
    assert_eq!(v.unwrap(), Value::Timestamp(6667));
    // 23:59:59.9999999 truncates to .999999 on the same day.
    let last = 86_400 * 10_000_000 - 1;
    let cell =
        || ColumnData::DateTime2(Some(DateTime2::new(Date::new(730119), Time::new(last, 7))));
    let (v, l) = conv(cell(), &c, &Policies::default());
    assert_eq!(v.unwrap(), Value::Timestamp(86_400_000_000 - 1));
    assert_eq!(
        l.counts
            .get(&("c".into(), LossKind::SubMicrosecondTruncated)),
        Some(&1)
    );
    let p = Policies {
        sub_microsecond: SubMicrosecondPolicy::Fail,
        ..Default::default()
    };
    assert!(conv(cell(), &c, &p).0.is_err());
    let t = col(TargetKind::Text, false);
    assert_eq!(
        conv(cell(), &t, &Policies::default()).0.unwrap(),
        Value::Text("2000-01-01 23:59:59.9999999".into())
    );
}

#[test]
fn decimals_are_exact_to_38_digits() {
    use tiberius::numeric::Numeric;
    let c = col(TargetKind::Numeric(Some((38, 38))), false);
    let big = 99_999_999_999_999_999_999_999_999_999_999_999_999i128;
    let (v, _) = conv(
        ColumnData::Numeric(Some(Numeric::new_with_scale(big, 38))),
        &c,
        &Policies::default(),
    );
    assert_eq!(
        v.unwrap(),
        Value::Numeric {
            mantissa: big,
            scale: 38
        }
    );
    assert_eq!(render_decimal(-1234, 2), "-12.34");
    assert_eq!(render_decimal(5, 3), "0.005");
    let small = col(TargetKind::Numeric(Some((4, 2))), false);
    assert!(conv(
        ColumnData::Numeric(Some(Numeric::new_with_scale(12345, 2))),
        &small,
        &Policies::default()
    )
    .0
    .is_err());
}

#[test]
fn integers_check_ranges_and_tinyint_is_unsigned() {
    let c = col(TargetKind::Int2, false);
    assert_eq!(
        conv(ColumnData::U8(Some(255)), &c, &Policies::default())
            .0
            .unwrap(),
        Value::I16(255)
    );
    assert!(conv(ColumnData::I32(Some(70000)), &c, &Policies::default())
        .0
        .is_err());
}

fn table(cols: &[(&str, &str, i16)], pk: &[&str]) -> SourceTable {
    SourceTable {
        name: crate::model::TableName {
            schema: "dbo".into(),
            name: "T x".into(),
        },
        object_id: 1,
        columns: cols
            .iter()
            .map(|(n, t, len)| SourceColumn {
                name: n.to_string(),
                source_type: SourceType {
                    name: t.to_string(),
                    max_length: *len,
                    precision: 0,
                    scale: 0,
                },
                nullable: true,
                identity: false,
                computed: None,
                deterministic: None,
                default: None,
            })
            .collect(),
        primary_key: pk.iter().map(|s| s.to_string()).collect(),
        indexes: vec![],
        foreign_keys: vec![],
        identity_current: None,
        change_tracking: true,
        capture_instances: vec![],
        estimated_rows: 0,
        checks: Vec::new(),
        case_sensitive_columns: Vec::new(),
        descriptions: Vec::new(),
        alias_columns: Vec::new(),
    }
}

#[test]
fn plans_name_problems_precisely() {
    let sel = crate::config::TableSelector {
        source: "dbo.*".into(),
        ..Default::default()
    };
    let m = crate::config::Mapping::default();
    let t = table(
        &[
            ("Id", "int", 4),
            ("ID2", "nvarchar", 200),
            ("m", "money", 8),
        ],
        &["Id"],
    );
    let p = plan_table(&t, &sel, 0, &m).unwrap();
    assert_eq!(p.target.to_string(), "public.t x");
    assert_eq!(p.columns[1].kind, TargetKind::Varchar(100));
    assert_eq!(p.columns[2].read_expr, "CAST([m] AS decimal(19,4))");
    let no_pk = table(&[("a", "int", 4)], &[]);
    assert!(plan_table(&no_pk, &sel, 0, &m)
        .unwrap_err()
        .contains("no primary key"));
    let clash = table(&[("a", "int", 4), ("A", "int", 4)], &["a"]);
    let e = plan_table(&clash, &sel, 0, &m).unwrap_err();
    assert!(e.contains("both become a"), "{e}");
    // A CLR type of the database's own has no default.
    let odd = table(&[("a", "int", 4), ("g", "money_udt", -1)], &["a"]);
    assert!(plan_table(&odd, &sel, 0, &m)
        .unwrap_err()
        .contains("money_udt"));
}

#[test]
fn defaults_translate_only_where_faithful() {
    use crate::sink::ddl::translate_default;
    let c = |kind| col(kind, false);
    assert_eq!(
        translate_default("(getdate())", &c(TargetKind::Timestamp)).as_deref(),
        Some("LOCALTIMESTAMP")
    );
    assert_eq!(
        translate_default("(sysdatetimeoffset())", &c(TargetKind::TimestampTz)).as_deref(),
        Some("CURRENT_TIMESTAMP")
    );
    assert_eq!(
        translate_default("(newid())", &c(TargetKind::Uuid)).as_deref(),
        Some("gen_random_uuid()")
    );
    assert_eq!(
        translate_default("((0))", &c(TargetKind::Bool)).as_deref(),
        Some("false")
    );
    assert_eq!(
        translate_default("((-1.5))", &c(TargetKind::Numeric(Some((10, 2))))).as_deref(),
        Some("-1.5")
    );
    assert_eq!(
        translate_default("(N'it''s')", &c(TargetKind::Text)).as_deref(),
        Some("'it''s'")
    );
    // Not faithful: reported, never guessed.
    assert_eq!(translate_default("(getdate())", &c(TargetKind::Text)), None);
    assert_eq!(
        translate_default("(CONVERT([bit],(0)))", &c(TargetKind::Bool)),
        None
    );
    assert_eq!(translate_default("((2))", &c(TargetKind::Bool)), None);
    assert_eq!(
        translate_default("(user_name())", &c(TargetKind::Text)),
        None
    );
}

#[test]
fn identifier_case_schema_map_and_type_overrides() {
    let sel = crate::config::TableSelector {
        source: "dbo.*".into(),
        ..Default::default()
    };
    let t = table(&[("Id", "int", 4), ("When", "datetime2", 8)], &["Id"]);
    let mut m = crate::config::Mapping {
        identifier_case: crate::config::IdentifierCase::Preserve,
        ..Default::default()
    };
    m.schemas.insert("dbo".into(), "app".into());
    m.types.insert("datetime2".into(), "text".into());
    let p = plan_table(&t, &sel, 0, &m).unwrap();
    assert_eq!(p.target.to_string(), "app.T x");
    assert_eq!(p.columns[0].target, "Id");
    assert_eq!(p.columns[1].kind, TargetKind::Text);
    // A per-column type wins over the per-type one.
    let mut sel2 = sel.clone();
    sel2.columns.insert(
        "When".into(),
        crate::config::ColumnSettings {
            target_type: Some("timestamp".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        plan_table(&t, &sel2, 0, &m).unwrap().columns[1].kind,
        TargetKind::Timestamp
    );
    // A setting for a column the table does not have names the key.
    let mut sel3 = sel.clone();
    sel3.columns.insert("Nope".into(), Default::default());
    let e = plan_table(&t, &sel3, 2, &m).unwrap_err();
    assert!(
        e.contains("tables[2].columns.Nope") && e.contains("no column Nope"),
        "{e}"
    );
}

#[test]
fn computed_columns_are_read_from_their_definition_in_change_rows() {
    let sel = crate::config::TableSelector {
        source: "dbo.*".into(),
        ..Default::default()
    };
    // As values (what a computed column becomes when it is not generated).
    let m = crate::config::Mapping {
        computed_columns: crate::config::ComputedColumns::Values,
        ..Default::default()
    };
    let mut t = table(
        &[
            ("id", "int", 4),
            ("qty", "int", 4),
            ("m2", "money", 8),
            ("age", "int", 4),
        ],
        &["id"],
    );
    t.columns[2].computed = Some("([qty]*(2))".into());
    t.columns[2].deterministic = Some(true);
    t.columns[3].computed = Some("(datediff(year,[born],getdate()))".into());
    t.columns[3].deterministic = Some(false);
    let p = plan_table(&t, &sel, 0, &m).unwrap();
    assert_eq!(p.columns[1].change_expr, None);
    // Deterministic: the definition over the change row, with the column's own conversion.
    assert_eq!(
        p.columns[2].change_expr.as_deref(),
        Some("CAST(CAST(([qty]*(2)) AS money) AS decimal(19,4))")
    );
    // Not deterministic: the source row as it is when the change is read.
    assert_eq!(
        p.columns[3].change_expr.as_deref(),
        Some("(SELECT __src.[age] FROM [dbo].[T x] AS __src WHERE __src.[id] = __ct.[id])")
    );
    // A configured expression wins over the definition.
    let mut sel2 = sel.clone();
    sel2.columns.insert(
        "m2".into(),
        crate::config::ColumnSettings {
            expression: Some("[qty] * 3".into()),
            ..Default::default()
        },
    );
    let p = plan_table(&t, &sel2, 0, &m).unwrap();
    assert_eq!(p.columns[2].change_expr, None);
}

#[test]
fn filtered_indexes_checks_and_defaults_go_through_the_expression_translator() {
    use crate::model::{SourceCheck, SourceIndex};
    use crate::sink::ddl;
    let sel = crate::config::TableSelector {
        source: "dbo.*".into(),
        ..Default::default()
    };
    let m = crate::config::Mapping::default();
    let mut t = table(
        &[
            ("Id", "int", 4),
            ("Code", "varchar", 10),
            ("Done", "bit", 1),
        ],
        &["Id"],
    );
    t.case_sensitive_columns = vec!["code".into()];
    t.columns[1].default = Some("(upper(N'x'))".into());
    t.columns[2].default = Some("(user_name())".into());
    t.indexes = vec![
        SourceIndex {
            name: "IX_open".into(),
            columns: vec![("Code".into(), false)],
            include: vec!["Done".into()],
            unique: true,
            unique_constraint: false,
            filter: Some("([Done]=(0))".into()),
        },
        SourceIndex {
            name: "IX_odd".into(),
            columns: vec![("Code".into(), false)],
            include: vec![],
            unique: false,
            unique_constraint: false,
            filter: Some("([Code]>'M')".into()),
        },
    ];
    let check = |name: &str, definition: &str, disabled: bool, not_trusted: bool| SourceCheck {
        name: name.into(),
        definition: definition.into(),
        disabled,
        not_trusted,
    };
    t.checks = vec![
        check("CK_Code", "([Code] like '[A-Z]%')", false, false),
        check("CK_Off", "([Id]>(0))", true, false),
        check("CK_Old", "([Id]>(0))", false, true),
        check("CK_Func", "([dbo].[ok]([Id])=(1))", false, false),
    ];
    let p = plan_table(&t, &sel, 0, &m).unwrap();
    let mut notes = Vec::new();
    let create = ddl::create_table_sql(&p, &mut notes);
    assert!(
        create.contains("\"code\" character varying(10) DEFAULT (upper('x'))"),
        "{create}"
    );
    assert!(!create.contains("user_name"), "{create}");
    let ix = ddl::index_sql(&p, m.identifier_case, &mut notes);
    assert_eq!(
        ix,
        ["CREATE UNIQUE INDEX \"t x_ix_open\" ON \"public\".\"t x\" (\"code\") INCLUDE (\"done\") WHERE (\"done\" = false)"]
    );
    let checks = ddl::check_sql(&p, m.identifier_case, &mut notes);
    assert_eq!(
        checks,
        [(
            "ck_code".to_string(),
            "ALTER TABLE \"public\".\"t x\" ADD CONSTRAINT \"ck_code\" CHECK ((\"code\" SIMILAR TO '[A-Z]%')) NOT VALID".to_string()
        )]
    );
    let said: Vec<&str> = notes.iter().map(|n| n.message.as_str()).collect();
    for expected in [
        "default (user_name()) of column Done has no faithful translation (`user_name()`: function user_name",
        "filtered index IX_odd is not created: its filter ([Code]>'M') has no faithful translation",
        "check constraint CK_Off ([Id]>(0)) is not created: it is disabled at the source",
        "check constraint CK_Old ([Id]>(0)) is not created: it is not trusted",
        "check constraint CK_Func ([dbo].[ok]([Id])=(1)) is not created: it has no faithful translation (`[dbo].[ok]([Id])`: function dbo.ok has no translation)",
    ] {
        assert!(said.iter().any(|s| s.starts_with(expected)), "{expected}\n{said:#?}");
    }
}

#[test]
fn alias_typed_columns_are_declared_with_a_domain_unless_configured_otherwise() {
    let sel = crate::config::TableSelector {
        source: "dbo.*".into(),
        ..Default::default()
    };
    let mut t = table(&[("Id", "varchar", 11), ("N", "int", 4)], &["Id"]);
    t.alias_columns = vec![(
        "Id".into(),
        crate::model::TableName {
            schema: "dbo".into(),
            name: "EmpId".into(),
        },
    )];
    let m = crate::config::Mapping::default();
    let p = plan_table(&t, &sel, 0, &m).unwrap();
    assert_eq!(p.columns[0].declared_type(), "\"public\".\"empid\"");
    assert_eq!(p.columns[1].declared_type(), "integer");
    let domains = crate::sink::ddl::domain_sql(&p);
    assert_eq!(domains.len(), 1);
    assert!(
        domains[0].contains("CREATE DOMAIN \"public\".\"empid\" AS character varying(11)")
            && domains[0].contains("is not a domain"),
        "{domains:?}"
    );
    let mut notes = Vec::new();
    let create = crate::sink::ddl::create_table_sql(&p, &mut notes);
    assert!(create.contains("\"id\" \"public\".\"empid\""), "{create}");
    assert!(
        notes[0]
            .message
            .contains("alias type dbo.EmpId is declared with domain public.empid"),
        "{notes:?}"
    );
    // The base type instead, when configured; and a type override wins over the domain.
    let base = crate::config::Mapping {
        alias_types: crate::config::AliasTypes::Base,
        ..Default::default()
    };
    assert_eq!(
        plan_table(&t, &sel, 0, &base).unwrap().columns[0].domain,
        None
    );
    let mut typed = sel.clone();
    typed.columns.insert(
        "Id".into(),
        crate::config::ColumnSettings {
            target_type: Some("text".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        plan_table(&t, &typed, 0, &m).unwrap().columns[0].domain,
        None
    );
}

#[test]
fn deterministic_computed_columns_are_generated_and_can_be_kept_plain() {
    let sel = crate::config::TableSelector {
        source: "dbo.*".into(),
        ..Default::default()
    };
    let m = crate::config::Mapping::default();
    let mut t = table(
        &[
            ("qty", "int", 4),
            ("m2", "money", 8),
            ("id", "int", 4),
            ("age", "int", 4),
            ("bad", "int", 4),
        ],
        &["id"],
    );
    t.columns[1].computed = Some("([qty]*(2))".into());
    t.columns[1].deterministic = Some(true);
    t.columns[3].computed = Some("(datediff(year,[born],getdate()))".into());
    t.columns[3].deterministic = Some(false);
    t.columns[4].computed = Some("([dbo].[f]([qty]))".into());
    t.columns[4].deterministic = Some(true);
    let mut p = plan_table(&t, &sel, 0, &m).unwrap();
    let names: Vec<&str> = p.columns.iter().map(|c| c.source.as_str()).collect();
    assert_eq!(names, ["qty", "id", "age", "bad"]);
    assert_eq!(p.key_columns().next().unwrap().source, "id");
    assert_eq!(p.generated.len(), 1);
    assert_eq!(p.generated[0].expr, "(\"qty\" * (2))");
    let mut notes = Vec::new();
    let create = crate::sink::ddl::create_table_sql(&p, &mut notes);
    assert!(
        create.contains("\"m2\" numeric(19,4) GENERATED ALWAYS AS ((\"qty\" * (2))) STORED"),
        "{create}"
    );
    let said: Vec<&str> = notes.iter().map(|n| n.message.as_str()).collect();
    assert!(
        said.iter()
            .any(|s| s.contains("age") && s.contains("not call it deterministic")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|s| s.contains("bad") && s.contains("does not translate")),
        "{said:?}"
    );
    // A target that holds m2 as values keeps it so, in the source's column order, key intact.
    p.keep_plain(|t| t == "m2");
    let names: Vec<&str> = p.columns.iter().map(|c| c.source.as_str()).collect();
    assert_eq!(names, ["qty", "m2", "id", "age", "bad"]);
    assert!(p.generated.is_empty());
    assert_eq!(p.key_columns().next().unwrap().source, "id");
    // Configured as values: never generated.
    let values = crate::config::Mapping {
        computed_columns: crate::config::ComputedColumns::Values,
        ..Default::default()
    };
    assert!(plan_table(&t, &sel, 0, &values)
        .unwrap()
        .generated
        .is_empty());
}

#[test]
fn ewkb_sets_the_srid_in_the_wkbs_own_byte_order() {
    let mut le = vec![0, 0, 0x10, 0xe6, 1, 1, 0, 0, 0];
    le.extend(1.5f64.to_le_bytes());
    le.extend(2.5f64.to_le_bytes());
    let out = super::value::ewkb(&le).unwrap();
    assert_eq!(out[..9], [1, 1, 0, 0, 0x20, 0xe6, 0x10, 0, 0]);
    assert_eq!(out[9..], le[9..]);
    let be = vec![0, 0, 0x0f, 0x11, 0, 0, 0, 0, 2, 0, 0, 0, 0];
    let out = super::value::ewkb(&be).unwrap();
    assert_eq!(out[..9], [0, 0x20, 0, 0, 2, 0, 0, 0x0f, 0x11]);
    // No SRID: the WKB as it is.
    assert_eq!(
        super::value::ewkb(&[0, 0, 0, 0, 1, 7, 0, 0, 0]).unwrap(),
        [1, 7, 0, 0, 0]
    );
    assert!(super::value::ewkb(&[0, 0, 0x10, 0xe6, 5, 1, 0, 0, 0]).is_err());
    assert!(super::value::ewkb(&[0, 0, 0x10]).is_err());
}

#[test]
fn xml_content_is_checked_as_postgresql_takes_it() {
    use super::value::well_formed_content as ok;
    assert!(ok("<a/>").is_ok());
    assert!(ok("text <a>1</a><b x='y'/> more").is_ok());
    assert!(ok("<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>").is_ok());
    assert!(ok("<!DOCTYPE a [<!ENTITY e \"v\">]><a>&e;</a>").is_ok());
    assert!(ok("<x:a xmlns:x=\"urn:x\"/>").is_ok());
    assert!(ok("").is_ok());
    assert!(
        ok("<p:x><q:y/></p:x>").is_ok(),
        "PostgreSQL only warns of an undeclared prefix"
    );
    for bad in ["<a>", "<a></b>", "<p:x>", "a &nbsp; b", "<a b=1/>"] {
        let why = ok(bad).unwrap_err();
        assert!(!why.contains(bad), "{why}");
    }
}

#[test]
fn citext_covers_case_insensitive_text_columns_only() {
    let sel = crate::config::TableSelector {
        source: "dbo.*".into(),
        ..Default::default()
    };
    let m = crate::config::Mapping {
        collation: crate::config::Collation::Citext,
        ..Default::default()
    };
    let mut t = table(
        &[
            ("Id", "int", 4),
            ("Code", "varchar", 10),
            ("Name", "nvarchar", -1),
            ("Bin", "varchar", 5),
        ],
        &["Id"],
    );
    t.case_sensitive_columns = vec!["bin".into()];
    let p = plan_table(&t, &sel, 0, &m).unwrap();
    let citext: Vec<bool> = p.columns.iter().map(|c| c.citext).collect();
    assert_eq!(citext, [false, true, true, false]);
    assert_eq!(
        p.columns[1].column_type(),
        "citext CHECK (char_length(\"code\") <= 10)"
    );
    assert_eq!(p.columns[2].column_type(), "citext");
    assert_eq!(p.columns[3].column_type(), "character varying(5)");
    assert_eq!(
        crate::sink::ddl::collation_sql(&p),
        ["CREATE EXTENSION IF NOT EXISTS citext"]
    );
}

#[test]
fn hierarchyid_paths_become_ltree_labels() {
    use super::value::ltree_of_path as l;
    assert_eq!(l("/").unwrap(), "");
    assert_eq!(l("/1/").unwrap(), "1");
    assert_eq!(l("/1/3/").unwrap(), "1.3");
    assert_eq!(l("/1/2.5/").unwrap(), "1.2_5");
    assert_eq!(l("/-1/7.-2/").unwrap(), "n1.7_n2");
    for bad in ["", "1/2", "/a/", "//", "/1//", "/1.", "/1/-/"] {
        assert!(l(bad).is_err(), "{bad}");
    }
}

#[test]
fn sql_variants_become_their_text_or_jsonb_as_postgresql_renders_it() {
    let variant = |kind| ColumnPlan {
        variant: true,
        ..ColumnPlan::plain(kind)
    };
    let (text, jsonb) = (variant(TargetKind::Text), variant(TargetKind::Jsonb));
    let p = Policies::default();
    let run =
        |c: &ColumnPlan, s: &str| conv(ColumnData::String(Some(s.to_string().into())), c, &p).0;
    let json = |s: &str| {
        let mut b = vec![1u8];
        b.extend_from_slice(s.as_bytes());
        Value::Bytes(b)
    };
    let cases: &[(&str, &str, &str)] = &[
        ("int:42", "42", r#"{"type": "int", "value": 42}"#),
        (
            "numeric:-4.25",
            "-4.25",
            r#"{"type": "numeric", "value": -4.25}"#,
        ),
        (
            "money:9.5000",
            "9.5000",
            r#"{"type": "money", "value": 9.5000}"#,
        ),
        // SQL Server's style 3 for float: every digit, shortest on the target.
        (
            "float:1.0000000000000001E-001",
            "0.1",
            r#"{"type": "float", "value": 0.1}"#,
        ),
        ("float:-0.0E+000", "0", r#"{"type": "float", "value": 0}"#),
        (
            "real:2.50000000E+000",
            "2.5",
            r#"{"type": "real", "value": 2.5}"#,
        ),
        ("bit:1", "1", r#"{"type": "bit", "value": true}"#),
        (
            "nvarchar:a\"b\\c\n\u{1}é:",
            "a\"b\\c\n\u{1}é:",
            r#"{"type": "nvarchar", "value": "a\"b\\c\n\u0001é:"}"#,
        ),
        (
            "datetime:2024-02-29 10:11:12.123",
            "2024-02-29 10:11:12.123",
            r#"{"type": "datetime", "value": "2024-02-29 10:11:12.123"}"#,
        ),
    ];
    for (read, as_text, as_json) in cases {
        assert_eq!(
            run(&text, read).unwrap(),
            Value::Text(as_text.to_string()),
            "{read}"
        );
        assert_eq!(run(&jsonb, read).unwrap(), json(as_json), "{read}");
    }
    // Refused, naming why: no base type, a number that is not one, NUL under "fail".
    assert!(run(&text, "42").unwrap_err().message.contains("base type"));
    assert!(run(&jsonb, "int:4e2x").unwrap_err().message.contains("int"));
    assert!(run(&jsonb, "bit:2").unwrap_err().message.contains("0 or 1"));
    let fail = Policies {
        nul_characters: NulPolicy::Fail,
        ..Default::default()
    };
    let nul = ColumnData::String(Some("nvarchar:a\0b".into()));
    assert!(conv(nul, &jsonb, &fail)
        .0
        .unwrap_err()
        .message
        .contains("NUL"));
    let nul = ColumnData::String(Some("nvarchar:a\0b".into()));
    assert_eq!(
        conv(nul, &jsonb, &p).0.unwrap(),
        json(r#"{"type": "nvarchar", "value": "ab"}"#)
    );
}
