//! The translator's table: T-SQL in, PostgreSQL out, or the refusal's reason.

use super::*;

fn scope() -> Scope {
    let col = |source: &str, target: &str, kind: TargetKind, national: bool, ci: bool| ExprColumn {
        source: source.into(),
        target: target.into(),
        kind,
        national,
        case_insensitive: ci,
        relation: None,
    };
    Scope {
        columns: vec![
            col("Qty", "qty", TargetKind::Int4, false, true),
            col(
                "Price",
                "price",
                TargetKind::Numeric(Some((10, 2))),
                false,
                true,
            ),
            col("Ratio", "ratio", TargetKind::Float8, false, true),
            col("Name", "name", TargetKind::Varchar(40), true, true),
            col("Code", "code", TargetKind::Varchar(10), false, true),
            col("CsCode", "cs_code", TargetKind::Varchar(10), false, false),
            col(
                "Discontinued",
                "discontinued",
                TargetKind::Bool,
                false,
                true,
            ),
            col("Born", "born", TargetKind::Date, false, true),
            col("Created", "created", TargetKind::Timestamp, false, true),
            col("At", "at", TargetKind::TimestampTz, false, true),
            col("Data", "data", TargetKind::Bytea, false, true),
            col("Id", "id", TargetKind::Uuid, false, true),
            col(
                "Unit Price",
                "unit_price",
                TargetKind::Numeric(Some((19, 4))),
                false,
                true,
            ),
            col("Start", "start", TargetKind::Time, false, true),
        ],
        default_case_insensitive: true,
        nondeterministic: false,
    }
}

/// Translated: (T-SQL, PostgreSQL).
const TRANSLATED: &[(&str, &str)] = &[
    // Names, constants, nesting.
    ("([Qty])", "(\"qty\")"),
    ("[Unit Price]", "\"unit_price\""),
    ("qty", "\"qty\""),
    ("[dbo].[Qty]", "\"qty\""),
    ("((0))", "((0))"),
    ("((-1.5))", "((-1.5))"),
    ("(1e3)", "(1e3)"),
    ("(N'it''s')", "('it''s')"),
    ("('a\\b')", "('a\\b')"),
    ("(NULL)", "(NULL)"),
    ("(0x0A1b)", "('\\x0A1b'::bytea)"),
    // Arithmetic and comparisons.
    ("([Qty]>(0))", "(\"qty\" > (0))"),
    ("([Qty]>=(0) AND [Qty]<=(100))", "(\"qty\" >= (0) AND \"qty\" <= (100))"),
    ("([Price]*[Qty])", "(\"price\" * \"qty\")"),
    ("([Qty]/(2))", "(\"qty\" / (2))"),
    ("([Qty]%(2)=(0))", "(\"qty\" % (2) = (0))"),
    ("([Qty]-(1))", "(\"qty\" - (1))"),
    ("(-[Qty])", "(-\"qty\")"),
    ("([Ratio]/(2))", "(\"ratio\" / (2))"),
    ("([Qty]<>(3))", "(\"qty\" <> (3))"),
    ("([Qty]!=(3))", "(\"qty\" <> (3))"),
    ("(NOT [Qty]>(3))", "(NOT \"qty\" > (3))"),
    ("([Qty]>(1) OR [Qty] IS NULL)", "(\"qty\" > (1) OR \"qty\" IS NULL)"),
    ("([Name] IS NOT NULL)", "(\"name\" IS NOT NULL)"),
    ("([Qty] BETWEEN (1) AND (10))", "(\"qty\" BETWEEN (1) AND (10))"),
    ("([Qty] NOT BETWEEN 1 AND 10)", "(\"qty\" NOT BETWEEN 1 AND 10)"),
    ("([Born]>='19000101')", "(\"born\" >= '19000101')"),
    ("([Qty] IN ((1),(2),(3)))", "(\"qty\" IN ((1), (2), (3)))"),
    // Strings: trailing spaces ignored, case by the column's collation.
    ("([Code]='A')", "(lower(rtrim(\"code\")) = 'a')"),
    ("([Code]='Ab  ')", "(lower(rtrim(\"code\")) = 'ab')"),
    ("([CsCode]='Ab')", "(rtrim(\"cs_code\") = 'Ab')"),
    ("([Code]<>N'x')", "(lower(rtrim(\"code\")) <> 'x')"),
    ("([Code]=[CsCode])", "(lower(rtrim(\"code\")) = lower(rtrim(\"cs_code\")))"),
    ("([Code]='É')", "(lower(rtrim(\"code\")) = lower('É'))"),
    ("([Code] IN ('A','B'))", "(lower(rtrim(\"code\")) IN ('a', 'b'))"),
    ("([Code] NOT IN (N'X'))", "(lower(rtrim(\"code\")) NOT IN ('x'))"),
    ("([Name]+N' '+[Code])", "(\"name\" || ' ' || \"code\")"),
    ("(([Name]+N'!'))", "((\"name\" || '!'))"),
    ("([Code]=NULL)", "(lower(rtrim(\"code\")) = NULL)"),
    // LIKE, with and without classes.
    ("([Code] LIKE 'A%')", "(\"code\" ILIKE 'A%')"),
    ("([CsCode] LIKE 'A_%')", "(\"cs_code\" LIKE 'A_%')"),
    ("([Code] NOT LIKE '%x%')", "(\"code\" NOT ILIKE '%x%')"),
    ("([CsCode] LIKE 'a\\b%')", "(\"cs_code\" LIKE 'a\\\\b%')"),
    ("([CsCode] LIKE '[0-9][0-9][0-9]')", "(\"cs_code\" SIMILAR TO '[0-9][0-9][0-9]')"),
    ("([Code] LIKE '[A-Z][0-9]%')", "(lower(\"code\") SIMILAR TO '[a-z][0-9]%')"),
    ("([CsCode] LIKE '[^0-9]%')", "(\"cs_code\" SIMILAR TO '[^0-9]%')"),
    ("([CsCode] LIKE '(1)[0-9]')", "(\"cs_code\" SIMILAR TO '\\(1\\)[0-9]')"),
    ("([CsCode] LIKE '[0-9]+*')", "(\"cs_code\" SIMILAR TO '[0-9]\\+\\*')"),
    // CASE and IIF.
    ("(CASE WHEN [Qty]>(0) THEN N'in' ELSE N'out' END)", "(CASE WHEN \"qty\" > (0) THEN 'in' ELSE 'out' END)"),
    ("(CASE [Qty] WHEN (1) THEN 'one' END)", "(CASE WHEN \"qty\" = (1) THEN 'one' END)"),
    ("(CASE [Code] WHEN 'A' THEN 1 ELSE 0 END)", "(CASE WHEN lower(rtrim(\"code\")) = 'a' THEN 1 ELSE 0 END)"),
    ("(IIF([Qty]>(10),'many','few'))", "(CASE WHEN \"qty\" > (10) THEN 'many' ELSE 'few' END)"),
    // bit against 0 and 1.
    ("([Discontinued]=(0))", "(\"discontinued\" = false)"),
    ("([Discontinued]=1)", "(\"discontinued\" = true)"),
    ("((1)=[Discontinued])", "(true = \"discontinued\")"),
    // NULL handling.
    ("(isnull([Qty],(0)))", "(COALESCE(\"qty\", (0)))"),
    ("(ISNULL([Name],N''))", "(COALESCE(\"name\", ''))"),
    ("(coalesce([Qty],[Price],(0)))", "(COALESCE(\"qty\", \"price\", (0)))"),
    ("(NULLIF([Qty],(0)))", "(NULLIF(\"qty\", (0)))"),
    // String functions.
    ("(len([Name])>(0))", "(length(rtrim(\"name\")) > (0))"),
    ("(datalength([Code]))", "(length(\"code\"))"),
    ("(DATALENGTH([Data]))", "(octet_length(\"data\"))"),
    ("(left([Code],(3)))", "(left(\"code\", (3)))"),
    ("(RIGHT([Code],2))", "(right(\"code\", 2))"),
    ("(substring([Name],(1),(3)))", "(substring(\"name\" from (1) for (3)))"),
    ("(upper([Name]))", "(upper(\"name\"))"),
    ("(LOWER([Code]))", "(lower(\"code\"))"),
    ("(ltrim(rtrim([Name])))", "(ltrim(rtrim(\"name\")))"),
    ("(TRIM([Name]))", "(btrim(\"name\", ' '))"),
    ("(charindex('@',[Code])>(0))", "(strpos(lower(\"code\"), lower('@')) > (0))"),
    ("(CHARINDEX('x',[CsCode]))", "(strpos(\"cs_code\", 'x'))"),
    ("(replace([CsCode],'a','b'))", "(replace(\"cs_code\", 'a', 'b'))"),
    ("(REPLACE([Code],'a.b','&'))", "(regexp_replace(\"code\", 'a\\.b', '\\&', 'gi'))"),
    // Dates and times.
    ("(getdate())", "(LOCALTIMESTAMP)"),
    ("(sysdatetime())", "(LOCALTIMESTAMP)"),
    ("(CURRENT_TIMESTAMP)", "(LOCALTIMESTAMP)"),
    ("(getutcdate())", "((now() AT TIME ZONE 'UTC'))"),
    ("(sysutcdatetime())", "((now() AT TIME ZONE 'UTC'))"),
    ("(sysdatetimeoffset())", "(CURRENT_TIMESTAMP)"),
    ("([Created]<=getdate())", "(\"created\" <= LOCALTIMESTAMP)"),
    ("(dateadd(day,(1),[Created]))", "((\"created\" + ((1)) * INTERVAL '1 day'))"),
    ("(DATEADD(month,-1,[Created]))", "((\"created\" + (-1) * INTERVAL '1 month'))"),
    ("(dateadd(quarter,1,[Created]))", "((\"created\" + 3 * (1) * INTERVAL '1 month'))"),
    ("(dateadd(wk,2,[Created]))", "((\"created\" + 7 * (2) * INTERVAL '1 day'))"),
    ("(dateadd(hh,2,[At]))", "((\"at\" + (2) * INTERVAL '1 hour'))"),
    ("(dateadd(yy,1,[Born]))", "(CAST(\"born\" + (1) * INTERVAL '1 year' AS date))"),
    ("(datediff(day,[Born],getdate()))", "((CAST(LOCALTIMESTAMP AS date) - CAST(\"born\" AS date)))"),
    ("(DATEDIFF(year,[Born],[Created]))", "(CAST(date_part('year', \"created\") - date_part('year', \"born\") AS integer))"),
    ("(datediff(month,[Born],[Created]))", "(CAST((date_part('year', \"created\") - date_part('year', \"born\")) * 12 + date_part('month', \"created\") - date_part('month', \"born\") AS integer))"),
    ("(datediff(hour,[Created],getdate()))", "(CAST(date_part('epoch', date_trunc('hour', LOCALTIMESTAMP) - date_trunc('hour', \"created\")) / 3600 AS integer))"),
    ("(datediff(wk,[Born],[Created]))", "(((CAST(\"created\" AS date) - CAST(date_part('dow', \"created\") AS integer)) - (CAST(\"born\" AS date) - CAST(date_part('dow', \"born\") AS integer))) / 7)"),
    ("(datepart(year,[Created]))", "(CAST(date_part('year', \"created\") AS integer))"),
    ("(DATEPART(dy,[Born]))", "(CAST(date_part('doy', \"born\") AS integer))"),
    ("(datepart(mi,[Start]))", "(CAST(date_part('minute', \"start\") AS integer))"),
    ("(year([Born])>=(1900))", "(CAST(date_part('year', \"born\") AS integer) >= (1900))"),
    ("(month([Created]))", "(CAST(date_part('month', \"created\") AS integer))"),
    ("(DAY([Born]))", "(CAST(date_part('day', \"born\") AS integer))"),
    // Numbers.
    ("(round([Price],(2)))", "(round(\"price\", (2)))"),
    ("(ROUND([Price],0,1))", "(trunc(\"price\", 0))"),
    ("(round([Ratio],2))", "(CAST(round(CAST(\"ratio\" AS numeric), 2) AS double precision))"),
    ("(abs([Qty]))", "(abs(\"qty\"))"),
    ("(CEILING([Price]))", "(ceil(\"price\"))"),
    ("(floor([Ratio]))", "(floor(\"ratio\"))"),
    ("(power([Qty],(2)))", "(power(\"qty\", (2)))"),
    // Identifiers.
    ("(newid())", "(gen_random_uuid())"),
    // CAST and CONVERT.
    ("(CONVERT([bit],(0)))", "(((0) <> 0))"),
    ("(CAST([Qty] AS varchar(10)))", "(left(CAST(\"qty\" AS text), 10))"),
    ("(CAST([Qty] AS varchar))", "(left(CAST(\"qty\" AS text), 30))"),
    ("(CAST([Qty] AS bigint))", "(CAST(\"qty\" AS bigint))"),
    ("(CAST([Qty] AS decimal(10,2)))", "(CAST(\"qty\" AS numeric(10,2)))"),
    ("(CAST([Price] AS float))", "(CAST(\"price\" AS double precision))"),
    ("(CONVERT(nvarchar(max),[Name]))", "(\"name\")"),
    ("(CONVERT(varchar(8),[Born],112))", "(left(to_char(\"born\", 'YYYYMMDD'), 8))"),
    ("(CONVERT(varchar(10),[Created],23))", "(left(to_char(\"created\", 'YYYY-MM-DD'), 10))"),
    ("(CONVERT(varchar(19),[Created],120))", "(left(to_char(\"created\", 'YYYY-MM-DD HH24:MI:SS'), 19))"),
    ("(CONVERT(varchar(10),[Born],103))", "(left(to_char(\"born\", 'DD/MM/YYYY'), 10))"),
    ("(CAST([Born] AS varchar(10)))", "(left(to_char(\"born\", 'YYYY-MM-DD'), 10))"),
    ("(CAST([Discontinued] AS varchar(1)))", "(left(CAST(CAST(\"discontinued\" AS integer) AS text), 1))"),
    ("(CAST([Id] AS varchar(36)))", "(left(upper(CAST(\"id\" AS text)), 36))"),
    ("(CAST([Created] AS date))", "(CAST(\"created\" AS date))"),
    ("(CAST('20240131' AS datetime))", "(CAST('20240131' AS timestamp without time zone))"),
    ("([Created]>='20240101 10:30:00')", "(\"created\" >= '20240101 10:30:00')"),
    ("([Born]<'2024-12-31')", "(\"born\" < '2024-12-31')"),
    ("(CAST('12' AS int))", "(CAST('12' AS integer))"),
];

/// Refused: (T-SQL, a part of the reason).
const REFUSED: &[(&str, &str)] = &[
    ("([Nope]>(0))", "no column Nope"),
    ("([other].[t].[Qty])", "another table"),
    ("([Code]>'A')", "order of strings"),
    ("([Code] BETWEEN 'A' AND 'M')", "order of strings"),
    ("([Qty]+N'x')", "precedence"),
    ("([Created]+(1))", "DATEADD"),
    ("([Price]/(3))", "decimal division"),
    ("([Qty]&(1))", "operator"),
    ("([Discontinued]=(2))", "other than 0 or 1"),
    ("([Code] LIKE [Name])", "not a constant"),
    ("([Code] LIKE '[abc')", "unclosed"),
    ("([Qty] LIKE '1%')", "non-string"),
    ("([Created]='01/02/2024')", "DATEFORMAT"),
    ("([Created]='2024-01-02')", "DATEFORMAT"),
    ("([Code]=(1))", "non-string"),
    ("(datalength([Name]))", "UTF-16"),
    ("(datepart(weekday,[Born]))", "session settings"),
    ("(datepart(wk,[Born]))", "session settings"),
    ("(datepart(fortnight,[Born]))", "date part fortnight"),
    ("(dateadd(hour,1,[Born]))", "DATEADD on this type"),
    ("(dateadd(day,1.5,[Created]))", "integer"),
    (
        "(datediff(ms,[Created],[Created]))",
        "DATEDIFF(millisecond)",
    ),
    ("(year([Qty]))", "a date was expected"),
    ("(len([Qty]))", "a string was expected"),
    ("(charindex('a',[Code],(3)))", "expected 2"),
    ("(replace([Code],[Name],'x'))", "not a constant"),
    ("(NULLIF([Code],''))", "collation"),
    ("(user_name())", "function user_name"),
    ("(dbo.MyFunc([Qty]))", "function dbo.myfunc"),
    ("(CAST([Ratio] AS varchar(20)))", "float, money, datetime"),
    ("(CAST([Created] AS varchar(30)))", "float, money, datetime"),
    ("(CONVERT(varchar(30),[Created],0))", "style 0"),
    ("(CONVERT(varchar(10),[Born],120))", "style 120"),
    ("(CAST([Price] AS int))", "SQL Server's rules"),
    ("(CAST([Qty] AS char(5)))", "fixed-length"),
    ("(CAST([Qty] AS sql_variant))", "a cast to sql_variant"),
    ("(CAST([Data] AS geography))", "no PostgreSQL counterpart"),
    ("(CAST([Name] AS int))", "SQL Server's rules"),
    ("(TRY_CONVERT(int,[Code]))", "no translation"),
    ("((SELECT max([Qty]) FROM [t]))", "no translation"),
    ("(COUNT(*) OVER ())", "no translation"),
    ("([Qty] > 0) garbage", "text after"),
    ("(([Qty] > 0)", "not a T-SQL expression"),
    ("(IIF([Qty],1,0))", "condition"),
    ("(CASE WHEN [Qty] THEN 1 END)", "condition"),
    ("([Qty] AND [Code])", "not conditions"),
    ("(-[Code])", "operator on this type"),
];

#[test]
fn the_table_translates_and_refuses_as_written() {
    let s = scope();
    let mut failures = Vec::new();
    for (tsql, want) in TRANSLATED {
        match translate(tsql, &s) {
            Ok(got) if got == *want => {}
            other => failures.push(format!("{tsql}\n    want {want}\n    got  {other:?}")),
        }
    }
    for (tsql, reason) in REFUSED {
        match translate(tsql, &s) {
            Err(r) if r.reason.contains(reason) || r.to_string().contains(reason) => {}
            other => failures.push(format!(
                "{tsql}\n    want refusal containing {reason:?}\n    got  {other:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        TRANSLATED.len() + REFUSED.len(),
        failures.join("\n")
    );
    assert!(TRANSLATED.len() + REFUSED.len() >= 100);
}

#[test]
fn a_refusal_names_the_node_that_has_no_translation() {
    let r = translate("([Qty]>(0) AND user_name()=N'x')", &scope()).unwrap_err();
    assert_eq!(r.node, "user_name()");
    assert!(r
        .to_string()
        .starts_with("`user_name()`: function user_name"));
}

#[test]
fn similar_to_patterns_escape_their_own_metacharacters() {
    assert_eq!(similar_pattern("a|b{2}").as_deref(), Some("a\\|b\\{2\\}"));
    assert_eq!(similar_pattern("[a\\]").as_deref(), Some("[a\\\\]"));
    assert_eq!(similar_pattern("[a"), None);
}

#[test]
fn under_a_nondeterministic_collation_matching_runs_under_the_default_one() {
    let s = Scope {
        nondeterministic: true,
        ..scope()
    };
    for (tsql, want) in [
        (
            "([Code] LIKE 'A%')",
            "(\"code\" COLLATE \"default\" ILIKE 'A%')",
        ),
        (
            "([Code] LIKE '[A-Z]%')",
            "(lower(\"code\") COLLATE \"default\" SIMILAR TO '[a-z]%')",
        ),
        (
            "(charindex('x',[Code]))",
            "(strpos(lower(\"code\") COLLATE \"default\", lower('x') COLLATE \"default\"))",
        ),
        (
            "(replace([CsCode],'a','b'))",
            "(replace(\"cs_code\" COLLATE \"default\", 'a', 'b'))",
        ),
        // Equality needs nothing: the collation compares as SQL Server did.
        ("([Code]='A')", "(lower(rtrim(\"code\")) = 'a')"),
    ] {
        assert_eq!(translate(tsql, &s).as_deref(), Ok(want), "{tsql}");
    }
}

mod views {
    use super::super::query::{translate_view, Catalog, Relation};
    use super::*;
    use crate::model::{PgTableName, TableName};

    fn relation(n: &TableName) -> Option<Relation> {
        let col = |source: &str, kind: TargetKind| ExprColumn {
            source: source.into(),
            target: source.to_lowercase(),
            kind,
            national: false,
            case_insensitive: true,
            relation: None,
        };
        let (name, columns) = match n.name.to_lowercase().as_str() {
            "orders" => (
                "orders",
                vec![
                    col("OrderID", TargetKind::Int4),
                    col("CustomerID", TargetKind::Varchar(5)),
                    col("Freight", TargetKind::Numeric(Some((19, 4)))),
                    col("Discount", TargetKind::Float4),
                    col("Shipped", TargetKind::Timestamp),
                ],
            ),
            "customers" => (
                "customers",
                vec![
                    col("CustomerID", TargetKind::Varchar(5)),
                    col("City", TargetKind::Varchar(15)),
                ],
            ),
            _ => return None,
        };
        Some(Relation {
            target: PgTableName {
                schema: "public".into(),
                name: name.into(),
            },
            columns,
        })
    }

    fn translate(sql: &str) -> Result<String, String> {
        let catalog = Catalog {
            relation: &relation,
            case: crate::config::IdentifierCase::Lower,
            preserve_collation: false,
        };
        translate_view(sql, &catalog)
            .map(|v| v.select)
            .map_err(|r| r.to_string())
    }

    #[test]
    fn views_translate_joins_aggregates_and_subqueries_or_say_why_not() {
        assert_eq!(
            translate("CREATE VIEW v AS SELECT o.OrderID, c.City AS Town FROM Orders o JOIN Customers c ON c.CustomerID = o.CustomerID WHERE o.Shipped BETWEEN '19970101' AND '19971231'").unwrap(),
            "SELECT \"o\".\"orderid\", \"c\".\"city\" AS \"town\" FROM \"public\".\"orders\" AS \"o\" JOIN \"public\".\"customers\" AS \"c\" ON lower(rtrim(\"c\".\"customerid\")) = lower(rtrim(\"o\".\"customerid\")) WHERE \"o\".\"shipped\" BETWEEN '19970101' AND '19971231'"
        );
        assert_eq!(
            translate("CREATE VIEW v AS SELECT OrderID, SUM(Freight) AS Total, COUNT(*) AS N FROM Orders GROUP BY OrderID HAVING SUM(Freight) > (SELECT AVG(OrderID) AS a FROM Orders)").unwrap(),
            "SELECT \"Orders\".\"orderid\", sum(\"Orders\".\"freight\") AS \"total\", count(*) AS \"n\" FROM \"public\".\"orders\" AS \"Orders\" GROUP BY \"Orders\".\"orderid\" HAVING sum(\"Orders\".\"freight\") > (SELECT CAST(trunc(avg(\"Orders\".\"orderid\")) AS integer) AS \"a\" FROM \"public\".\"orders\" AS \"Orders\")"
        );
        // An unnamed value where SQL Server allows one: a scalar subquery's, a later UNION branch's.
        assert_eq!(
            translate("CREATE VIEW v AS SELECT OrderID FROM Orders WHERE OrderID > (SELECT AVG(OrderID) FROM Orders) UNION ALL SELECT OrderID * 2 FROM Orders").unwrap(),
            "SELECT \"Orders\".\"orderid\" FROM \"public\".\"orders\" AS \"Orders\" WHERE \"Orders\".\"orderid\" > (SELECT CAST(trunc(avg(\"Orders\".\"orderid\")) AS integer) FROM \"public\".\"orders\" AS \"Orders\") UNION ALL SELECT \"Orders\".\"orderid\" * 2 FROM \"public\".\"orders\" AS \"Orders\""
        );
        assert_eq!(
            translate("CREATE VIEW v AS SELECT TOP 100 PERCENT Customers.* FROM Customers ORDER BY City").unwrap(),
            "SELECT \"Customers\".\"customerid\", \"Customers\".\"city\" FROM \"public\".\"customers\" AS \"Customers\""
        );
        for (sql, why) in [
            ("CREATE VIEW v AS SELECT DISTINCT City FROM Customers", "DISTINCT over case-insensitive text"),
            ("CREATE VIEW v AS SELECT City, COUNT(*) AS n FROM Customers GROUP BY City", "GROUP BY case-insensitive text"),
            ("CREATE VIEW v AS SELECT City FROM Customers UNION SELECT CustomerID FROM Orders", "UNION removes duplicates"),
            ("CREATE VIEW v AS SELECT City FROM Customers ORDER BY City", "ORDER BY in a view"),
            ("CREATE VIEW v AS SELECT TOP 5 City FROM Customers", "a clause of this SELECT"),
            ("CREATE VIEW v AS SELECT Freight * (1 - Discount) AS x FROM Orders", "single precision"),
            ("CREATE VIEW v AS SELECT AVG(Freight) AS a FROM Orders", "average of decimals"),
            ("CREATE VIEW v AS SELECT MAX(City) AS m FROM Customers", "order of strings"),
            ("CREATE VIEW v AS SELECT x FROM Suppliers", "Suppliers is not migrated"),
            ("CREATE VIEW v AS SELECT CustomerID FROM Orders o JOIN Customers c ON c.CustomerID = o.CustomerID", "ambiguous"),
            ("CREATE VIEW v AS SELECT OrderID + 1 FROM Orders", "a view column without a name"),
        ] {
            let got = translate(sql);
            assert!(got.as_ref().is_err_and(|e| e.contains(why)), "{sql}\n  want {why}\n  got {got:?}");
        }
    }
}
