//! The choice of a table's change source, case by case.

use super::{decide_change_source, decide_change_source_resuming};
use crate::config::{ChangeSourceChoice, Mapping, TableSelector};
use crate::convert::plan_table;
use crate::model::ChangeSource;
use crate::model::{CaptureInstance, SourceColumn, SourceTable, SourceType, TableName};
use crate::source::DatabaseInfo;

fn table(ct: bool, instances: &[(&str, &[&str])]) -> SourceTable {
    let col = |n: &str| SourceColumn {
        name: n.into(),
        source_type: SourceType {
            name: "int".into(),
            max_length: 4,
            precision: 10,
            scale: 0,
        },
        nullable: n != "id",
        identity: false,
        computed: None,
        deterministic: None,
        default: None,
    };
    SourceTable {
        name: TableName {
            schema: "dbo".into(),
            name: "t".into(),
        },
        object_id: 1,
        columns: vec![col("id"), col("b")],
        primary_key: vec!["id".into()],
        indexes: vec![],
        foreign_keys: vec![],
        identity_current: None,
        change_tracking: ct,
        capture_instances: instances
            .iter()
            .map(|(name, cols)| CaptureInstance {
                name: name.to_string(),
                start_lsn: None,
                columns: cols.iter().map(|c| c.to_string()).collect(),
            })
            .collect(),
        estimated_rows: 0,
        checks: Vec::new(),
        case_sensitive_columns: Vec::new(),
        descriptions: Vec::new(),
        alias_columns: Vec::new(),
    }
}

fn db(ct: bool) -> DatabaseInfo {
    DatabaseInfo {
        version: "x".into(),
        snapshot_isolation: true,
        cdc_enabled: true,
        ct_retention_minutes: ct.then_some(2880),
    }
}

/// The kind chosen, or the start of the error's message and a word its hint must hold.
fn decide(
    source: ChangeSourceChoice,
    t: &SourceTable,
    db: &DatabaseInfo,
    resume: Option<&str>,
) -> Result<ChangeSource, (String, String)> {
    let sel = TableSelector {
        source: "dbo.t".into(),
        change_source: source,
        ..Default::default()
    };
    let plan = plan_table(t, &sel, 0, &Mapping::default()).expect("plan");
    let r = match resume {
        None => decide_change_source(&plan, db),
        Some(ci) => decide_change_source_resuming(&plan, db, Some(ci)),
    };
    r.map_err(|e| (e.to_string(), e.hint().unwrap_or_default()))
}

#[test]
fn each_change_source_is_chosen_or_refused_with_the_t_sql_that_enables_it() {
    use ChangeSourceChoice as S;
    let all: &[&str] = &["id", "b"];
    let cdc = |name| ChangeSource::Cdc(String::from(name));
    let ok: Vec<(S, SourceTable, DatabaseInfo, Option<&str>, ChangeSource)> = vec![
        (
            S::Auto,
            table(true, &[]),
            db(true),
            None,
            ChangeSource::ChangeTracking,
        ),
        (
            S::Auto,
            table(true, &[("dbo_t", all)]),
            db(true),
            None,
            cdc("dbo_t"),
        ),
        // The newest instance, unless a resumed position belongs to one that still exists.
        (
            S::Auto,
            table(false, &[("old", all), ("new", all)]),
            db(false),
            None,
            cdc("new"),
        ),
        (
            S::Auto,
            table(false, &[("old", all), ("new", all)]),
            db(false),
            Some("old"),
            cdc("old"),
        ),
        (
            S::Auto,
            table(false, &[("new", all)]),
            db(false),
            Some("gone"),
            cdc("new"),
        ),
        (
            S::ChangeTracking,
            table(true, &[("dbo_t", &["id"])]),
            db(true),
            None,
            ChangeSource::ChangeTracking,
        ),
        (
            S::Cdc,
            table(true, &[("dbo_t", all)]),
            db(true),
            None,
            cdc("dbo_t"),
        ),
        (
            S::None,
            table(false, &[]),
            db(false),
            None,
            ChangeSource::CopiedOnce,
        ),
        (
            S::None,
            table(false, &[("dbo_t", &["id"])]),
            db(false),
            None,
            ChangeSource::CopiedOnce,
        ),
    ];
    for (i, (source, t, d, resume, want)) in ok.into_iter().enumerate() {
        assert_eq!(decide(source, &t, &d, resume), Ok(want), "case {i}");
    }
    let refused: Vec<(S, SourceTable, DatabaseInfo, &str, &str)> = vec![
        (
            S::Auto,
            table(true, &[]),
            db(false),
            "neither Change Tracking nor CDC",
            "ENABLE CHANGE_TRACKING",
        ),
        (
            S::Auto,
            table(false, &[]),
            db(true),
            "neither Change Tracking nor CDC",
            "change_source = \"none\"",
        ),
        (
            S::ChangeTracking,
            table(false, &[]),
            db(true),
            "Change Tracking is not enabled",
            "ALTER TABLE [dbo].[t] ENABLE CHANGE_TRACKING",
        ),
        (
            S::Cdc,
            table(true, &[]),
            db(true),
            "CDC is not enabled",
            "sp_cdc_enable_table @source_schema = N'dbo', @source_name = N't'",
        ),
        (
            S::Auto,
            table(true, &[("dbo_t", &["id"])]),
            db(true),
            "capture instance dbo_t does not capture column(s) b",
            "@captured_column_list = NULL",
        ),
        (
            S::Cdc,
            table(true, &[("dbo_t", &["id"])]),
            db(true),
            "capture instance dbo_t does not capture column(s) b",
            "exclude those columns",
        ),
    ];
    for (i, (source, t, d, message, hint)) in refused.into_iter().enumerate() {
        let (m, h) = decide(source, &t, &d, None).expect_err("refused");
        assert!(m.contains(message), "case {i}: {m}");
        assert!(m.contains("dbo.t"), "case {i} names the table: {m}");
        assert!(h.contains(hint), "case {i}: {h}");
    }
}
