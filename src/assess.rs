//! The assessment report (`replicator schema --report DIR`): object by object, what the
//! migration does with the source database: migrated as it is, translated (and how), or left to
//! port by hand (and why, with the original text in a file of its own).
//!
//! Contract: every object the report names comes from discovery; its fate is the one the DDL
//! functions decide ([`crate::sink::ddl`]'s notes), never a second judgement; `report.md`,
//! `report.json` and the `.sql` files are written whole or not at all (a failure names the
//! file).

use crate::config::Config;
use crate::convert::{plan_table, TablePlan};
use crate::error::Error;
use crate::model::{SourceTable, TableName};
use crate::sink::ddl::{self, Fate, Note};
use crate::source::{self, Tds};
use serde::Serialize;
use std::path::Path;

/// A view, procedure, function or trigger: its T-SQL text, to port by hand.
#[derive(Debug, Clone, Serialize)]
pub struct Module {
    /// `schema.name`.
    pub name: String,
    /// `view`, `procedure`, `function` or `trigger`.
    pub kind: String,
    /// Its definition (`sys.sql_modules`), as written.
    pub definition: String,
}

/// One object and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectFate {
    /// The table it belongs to (`schema.table`), or the module's own name.
    pub table: String,
    /// Its kind and name (`check constraint CK_x`, `view dbo.v`).
    pub object: String,
    /// Migrated, translated or to port by hand.
    pub fate: Fate,
    /// How it was translated, or why it is left to port by hand.
    pub detail: String,
    /// For a module: the file (under the report's folder) holding its text.
    pub file: Option<String>,
    /// For a module: the tables, views and routines its text names.
    pub depends_on: Vec<String>,
}

/// The counts the report starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Created as they are.
    pub migrated: usize,
    /// Created in a translated form.
    pub translated: usize,
    /// Left to port by hand.
    pub by_hand: usize,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The source database.
    pub database: String,
    /// Counts by fate.
    pub totals: Totals,
    /// Every object, tables first, in discovery order.
    pub objects: Vec<ObjectFate>,
}

const MODULES: &str = "SELECT s.name, o.name, o.type, CAST(m.definition AS nvarchar(max)) \
  FROM sys.objects o JOIN sys.schemas s ON s.schema_id = o.schema_id \
  LEFT JOIN sys.sql_modules m ON m.object_id = o.object_id \
  WHERE o.type IN ('V', 'P', 'FN', 'IF', 'TF', 'TR') AND o.is_ms_shipped = 0 \
  AND o.name NOT LIKE N'replicator!_fence!_%' ESCAPE '!' ORDER BY s.name, o.name";

/// Reads the source's views, procedures, functions and triggers with their text.
pub async fn modules(tds: &mut Tds) -> Result<Vec<Module>, Error> {
    let rows = source::query_rows(
        tds,
        MODULES,
        "list views, procedures, functions and triggers",
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let text = |i: usize| r.try_get::<&str, _>(i).ok().flatten().unwrap_or("");
            Module {
                name: format!("{}.{}", text(0), text(1)),
                kind: match text(2).trim() {
                    "V" => "view",
                    "P" => "procedure",
                    "TR" => "trigger",
                    _ => "function",
                }
                .into(),
                definition: text(3).to_string(),
            }
        })
        .collect())
}

/// Builds the report for the tables `config` selects (each planned on its own, so one that
/// cannot be migrated is reported rather than stopping the rest) and the modules.
pub fn build(
    config: &Config,
    database: &str,
    tables: &[SourceTable],
    sequences: &[Result<crate::model::SourceSequence, String>],
    modules: &[Module],
) -> Report {
    let case = config.mapping.identifier_case;
    let mut plans: Vec<TablePlan> = Vec::new();
    let mut objects = Vec::new();
    for t in tables {
        let Some((i, sel)) = crate::config::selector_for(&config.tables, &t.name) else {
            continue;
        };
        match plan_table(t, sel, i, &config.mapping) {
            Ok(p) => plans.push(p),
            Err(why) => objects.push(ObjectFate {
                table: t.name.to_string(),
                object: format!("table {}", t.name),
                fate: Fate::ByHand,
                detail: why,
                file: None,
                depends_on: Vec::new(),
            }),
        }
    }
    let mut notes: Vec<Note> = Vec::new();
    let lookup = |n: &TableName| ddl::referenced(&plans, n);
    for p in &plans {
        ddl::create_table_sql(p, &mut notes);
        ddl::index_sql(p, case, &mut notes);
        ddl::check_sql(p, case, &mut notes);
        ddl::foreign_key_sql(p, &lookup, case, &mut notes);
    }
    objects.extend(table_objects(&plans, &notes));
    objects.extend(sequence_objects(config, &plans, sequences));
    // Whatever else the DDL said something about (a column's type, for one).
    for n in &notes {
        if !objects
            .iter()
            .any(|o| o.table == n.table && o.object == n.object)
        {
            objects.push(ObjectFate {
                table: n.table.clone(),
                object: n.object.clone(),
                fate: n.fate,
                detail: n.message.clone(),
                file: None,
                depends_on: Vec::new(),
            });
        }
    }
    let views = ddl::views(&plans, &view_definitions(modules), &config.mapping);
    objects.extend(module_objects(tables, modules, &views));
    let mut totals = Totals::default();
    for o in &objects {
        match o.fate {
            Fate::Migrated => totals.migrated += 1,
            Fate::Translated => totals.translated += 1,
            Fate::ByHand => totals.by_hand += 1,
        }
    }
    Report {
        database: database.to_string(),
        totals,
        objects,
    }
}

/// Every object of the planned tables, with the fate the DDL's notes give it (migrated when
/// none).
fn table_objects(plans: &[TablePlan], notes: &[Note]) -> Vec<ObjectFate> {
    let mut objects = Vec::new();
    for p in plans {
        let table = p.source.name.to_string();
        let mut add = |object: String, migrated: String| {
            let note = notes
                .iter()
                .find(|n| n.table == table && n.object == object);
            objects.push(ObjectFate {
                table: table.clone(),
                object,
                fate: note.map_or(Fate::Migrated, |n| n.fate),
                detail: note.map_or(migrated, |n| n.message.clone()),
                file: None,
                depends_on: Vec::new(),
            });
        };
        add(format!("table {table}"), format!("becomes {}", p.target));
        for c in &p.source.columns {
            if c.identity {
                add(
                    format!("identity {}", c.name),
                    "GENERATED BY DEFAULT AS IDENTITY, continued after the source's at cutover"
                        .into(),
                );
            }
            if let Some(d) = &c.default {
                add(
                    format!("column default of {}", c.name),
                    format!("DEFAULT {d}"),
                );
            }
            if c.computed.is_some() {
                add(format!("computed column {}", c.name), String::new());
            }
        }
        for ix in &p.source.indexes {
            add(
                format!("index {}", ix.name),
                "created after the snapshot".into(),
            );
        }
        for fk in &p.source.foreign_keys {
            add(
                format!("foreign key {}", fk.name),
                format!(
                    "ON DELETE {} ON UPDATE {}, NOT VALID until cutover validates it",
                    fk.on_delete, fk.on_update
                ),
            );
        }
        for ck in &p.source.checks {
            add(format!("check constraint {}", ck.name), String::new());
        }
        for (column, _) in &p.source.descriptions {
            match column {
                None => add("description".into(), "COMMENT ON TABLE".into()),
                Some(c) => add(format!("description of {c}"), "COMMENT ON COLUMN".into()),
            }
        }
    }
    objects
}

/// The sequences carried, and those that cannot be.
fn sequence_objects(
    config: &Config,
    plans: &[TablePlan],
    sequences: &[Result<crate::model::SourceSequence, String>],
) -> Vec<ObjectFate> {
    let mut objects = Vec::new();
    let usable: Vec<_> = sequences
        .iter()
        .filter_map(|q| q.as_ref().ok())
        .cloned()
        .collect();
    for q in ddl::sequences_for(&usable, plans) {
        let t = crate::convert::sequence_target(&q.name, &config.mapping);
        objects.push(ObjectFate {
            table: q.name.to_string(),
            object: format!("sequence {}", q.name),
            fate: Fate::Migrated,
            detail: format!("becomes {t}, set after the source's last value at cutover"),
            file: None,
            depends_on: Vec::new(),
        });
    }
    for why in sequences.iter().filter_map(|q| q.as_ref().err()) {
        objects.push(ObjectFate {
            table: String::new(),
            object: "sequence".into(),
            fate: Fate::ByHand,
            detail: why.clone(),
            file: None,
            depends_on: Vec::new(),
        });
    }
    objects
}

/// Views, procedures, functions and triggers: to port by hand, each with its file and the
/// names it uses.
/// The views among the modules: (name, definition).
pub fn view_definitions(modules: &[Module]) -> Vec<(TableName, String)> {
    modules
        .iter()
        .filter(|m| m.kind == "view")
        .filter_map(|m| TableName::parse(&m.name).map(|n| (n, m.definition.clone())))
        .collect()
}

fn module_objects(
    tables: &[SourceTable],
    modules: &[Module],
    views: &[ddl::ViewOutcome],
) -> Vec<ObjectFate> {
    let mut objects = Vec::new();
    let known: Vec<String> = tables
        .iter()
        .map(|t| t.name.name.clone())
        .chain(
            modules
                .iter()
                .map(|m| m.name.rsplit('.').next().unwrap_or("").to_string()),
        )
        .collect();
    for m in modules {
        let view = views.iter().find(|v| v.source.to_string() == m.name);
        let (fate, detail) = match view.map(|v| &v.result) {
            Some(Ok((target, sql))) => (
                Fate::Translated,
                format!("becomes view {target}, created at cutover: {sql}"),
            ),
            Some(Err(why)) => (
                Fate::ByHand,
                format!("not translated: {why}; its text is in the file"),
            ),
            None => (
                Fate::ByHand,
                format!("{}s are not translated; its text is in the file", m.kind),
            ),
        };
        objects.push(ObjectFate {
            table: m.name.clone(),
            object: format!("{} {}", m.kind, m.name),
            fate,
            detail,
            file: Some(format!("by_hand/{}.sql", file_name(&m.name))),
            depends_on: names_in(&m.definition, &known, &m.name),
        });
    }
    objects
}

/// A file name for an object name: letters, digits, `.`, `-` and `_` kept, the rest `_`.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The known names that `text` mentions as a word (brackets, quotes and dots around it do not
/// matter), case-insensitively, other than `own`.
fn names_in(text: &str, known: &[String], own: &str) -> Vec<String> {
    let words: std::collections::BTreeSet<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ' '))
        .flat_map(|w| [w.trim().to_lowercase()])
        .chain(
            text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map(str::to_lowercase),
        )
        .collect();
    let own = own.rsplit('.').next().unwrap_or("").to_lowercase();
    let mut out: Vec<String> = known
        .iter()
        .filter(|k| !k.is_empty() && k.to_lowercase() != own && words.contains(&k.to_lowercase()))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

impl Report {
    /// `report.md`: totals first, then one line per object.
    pub fn markdown(&self) -> String {
        let t = &self.totals;
        let mut out = format!(
            "# Migration assessment: {}\n\n| migrated | translated | to port by hand |\n|---|---|---|\n| {} | {} | {} |\n\n",
            self.database, t.migrated, t.translated, t.by_hand
        );
        out.push_str("| table | object | fate | detail |\n|---|---|---|---|\n");
        for o in &self.objects {
            let fate = match o.fate {
                Fate::Migrated => "migrated",
                Fate::Translated => "translated",
                Fate::ByHand => "by hand",
            };
            let mut detail = o.detail.clone();
            if let Some(f) = &o.file {
                detail.push_str(&format!(" ([{f}]({f}))"));
            }
            if !o.depends_on.is_empty() {
                detail.push_str(&format!("; uses {}", o.depends_on.join(", ")));
            }
            out.push_str(&format!(
                "| {} | {} | {fate} | {} |\n",
                cell(&o.table),
                cell(&o.object),
                cell(&detail)
            ));
        }
        out
    }

    /// Writes `report.md`, `report.json` and `by_hand/*.sql` into `dir` (created if missing).
    pub fn write(&self, dir: &Path, modules: &[Module]) -> Result<(), Error> {
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text)
                .map_err(|e| Error::Fatal(format!("cannot write {}: {e}", path.display())))
        };
        let by_hand = dir.join("by_hand");
        std::fs::create_dir_all(&by_hand)
            .map_err(|e| Error::Fatal(format!("cannot create {}: {e}", by_hand.display())))?;
        for m in modules {
            write(
                &by_hand.join(format!("{}.sql", file_name(&m.name))),
                &m.definition,
            )?;
        }
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Fatal(format!("report.json: {e}")))?;
        write(&dir.join("report.json"), &json)?;
        write(&dir.join("report.md"), &self.markdown())
    }
}

/// A markdown table cell: pipes escaped, on one line.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Adds to each sql_variant column's line the base types its values hold, with their counts
/// (read from the data: the catalog does not know them).
async fn variant_base_types(
    tds: &mut Tds,
    tables: &[SourceTable],
    report: &mut Report,
) -> Result<(), Error> {
    for t in tables {
        for c in t
            .columns
            .iter()
            .filter(|c| c.source_type.name == "sql_variant")
        {
            let Some(o) = report.objects.iter_mut().find(|o| {
                o.table == t.name.to_string() && o.object == format!("column {}", c.name)
            }) else {
                continue;
            };
            let col = crate::model::quote_tsql(&c.name);
            let sql = format!(
                "SELECT CAST(SQL_VARIANT_PROPERTY({col}, 'BaseType') AS nvarchar(128)), COUNT_BIG(*) \
                 FROM {} WHERE {col} IS NOT NULL \
                 GROUP BY CAST(SQL_VARIANT_PROPERTY({col}, 'BaseType') AS nvarchar(128)) ORDER BY 1",
                t.name.tsql()
            );
            let rows = source::query_rows(
                tds,
                &sql,
                &format!(
                    "read the base types of sql_variant column {} of {}",
                    c.name, t.name
                ),
            )
            .await?;
            let found: Vec<String> = rows
                .iter()
                .map(|r| {
                    let base = r.try_get::<&str, _>(0).ok().flatten().unwrap_or("?");
                    let n = r.try_get::<i64, _>(1).ok().flatten().unwrap_or(0);
                    format!("{base} ({n})")
                })
                .collect();
            o.detail.push_str(&if found.is_empty() {
                "; no values yet, so no base types".to_string()
            } else {
                format!("; base types of its values: {}", found.join(", "))
            });
        }
    }
    Ok(())
}

/// `schema --report DIR`: discovers the source, builds the report and writes it.
pub async fn run(config: &Config, dir: &Path) -> Result<Report, Error> {
    let mut tds = source::connect(&config.source).await?;
    let db = source::database_info(&mut tds).await?;
    let tables = source::discover::discover(&mut tds, db.cdc_enabled).await?;
    let modules = modules(&mut tds).await?;
    let sequences = source::discover::sequences(&mut tds).await?;
    let mut report = build(
        config,
        &config.source.database,
        &tables,
        &sequences,
        &modules,
    );
    variant_base_types(&mut tds, &tables, &mut report).await?;
    report.write(dir, &modules)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_are_the_known_names_a_text_uses() {
        let known = [
            "Orders".to_string(),
            "Order Details".into(),
            "Products".into(),
            "Invoices".into(),
        ];
        let text = "create view Invoices AS SELECT * FROM dbo.Orders o JOIN [Order Details] d ON 1=1 JOIN \"Products\" p ON 1=1";
        assert_eq!(
            names_in(text, &known, "dbo.Invoices"),
            ["Order Details", "Orders", "Products"]
        );
        assert_eq!(file_name("dbo.Sales by Year"), "dbo.Sales_by_Year");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
