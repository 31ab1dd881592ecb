//! T-SQL's built-in functions, CAST and CONVERT, each translated to what computes the same
//! value in PostgreSQL, or refused with the reason.

use super::{
    case_insensitive, literal, merge, refuse, sql, string_literal, Refusal, Sql, Translator, Ty,
};
use crate::convert::default_kind;
use crate::model::{SourceColumn, SourceType};
use sqlparser::ast::{Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments};

/// The arguments of a plain call (no DISTINCT, no clauses), as expressions.
fn args<'a>(e: &Expr, f: &'a Function) -> Result<Vec<&'a Expr>, Refusal> {
    match &f.args {
        FunctionArguments::None => Ok(Vec::new()),
        FunctionArguments::List(l) if l.duplicate_treatment.is_none() && l.clauses.is_empty() => l
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Ok(x),
                _ => refuse(e, "an argument of this form has no translation"),
            })
            .collect(),
        _ => refuse(e, "a call of this form has no translation"),
    }
}

/// A DATEADD / DATEDIFF / DATEPART date part, by any of its T-SQL spellings.
fn date_part(e: &Expr, x: &Expr) -> Result<&'static str, Refusal> {
    let name = match x {
        Expr::Identifier(i) => i.value.to_ascii_lowercase(),
        _ => return refuse(e, "the date part must be a name (day, month...)"),
    };
    Ok(match name.as_str() {
        "year" | "yy" | "yyyy" => "year",
        "quarter" | "qq" | "q" => "quarter",
        "month" | "mm" | "m" => "month",
        "dayofyear" | "dy" | "y" => "doy",
        "day" | "dd" | "d" => "day",
        "week" | "wk" | "ww" => "week",
        "weekday" | "dw" | "w" => "weekday",
        "hour" | "hh" => "hour",
        "minute" | "mi" | "n" => "minute",
        "second" | "ss" | "s" => "second",
        "millisecond" | "ms" => "millisecond",
        _ => return refuse(e, format!("date part {name} has no translation")),
    })
}

fn want(e: &Expr, a: &[&Expr], n: usize) -> Result<(), Refusal> {
    if a.len() == n {
        Ok(())
    } else {
        refuse(e, format!("expected {n} argument(s)"))
    }
}

/// A function call.
pub(super) fn call(t: &Translator<'_>, e: &Expr, f: &Function) -> Result<Sql, Refusal> {
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return refuse(e, "window and aggregate clauses have no translation here");
    }
    let name = f
        .name
        .to_string()
        .replace(['[', ']'], "")
        .to_ascii_lowercase();
    if name == "count" {
        if let FunctionArguments::List(l) = &f.args {
            if let [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] = l.args.as_slice() {
                if l.duplicate_treatment.is_none() && l.clauses.is_empty() {
                    return Ok(sql("count(*)", Ty::Int));
                }
            }
        }
    }
    call_named(t, e, &name, &args(e, f)?)
}

/// A built-in function by its lower-case name, with its arguments (sqlparser reads some calls,
/// SUBSTRING, TRIM, FLOOR, CEILING, as expressions of their own; they come here too).
pub(super) fn call_named(
    t: &Translator<'_>,
    e: &Expr,
    name: &str,
    a: &[&Expr],
) -> Result<Sql, Refusal> {
    let c = Call {
        t,
        e,
        a: a.to_vec(),
    };
    for family in [nulls_and_constants, strings, numbers, dates, aggregates] {
        if let Some(s) = family(&c, name)? {
            return Ok(s);
        }
    }
    refuse(e, format!("function {name} has no translation"))
}

/// One call being translated: its arguments, each translated on demand.
struct Call<'t, 'e> {
    t: &'t Translator<'t>,
    e: &'e Expr,
    a: Vec<&'e Expr>,
}

impl Call<'_, '_> {
    fn x(&self, i: usize) -> Result<Sql, Refusal> {
        self.t.expr(self.a[i])
    }

    fn str_arg(&self, i: usize) -> Result<Sql, Refusal> {
        let s = self.x(i)?;
        if s.ty.is_str() || s.ty == Ty::Null {
            Ok(s)
        } else {
            refuse(
                self.a[i],
                "a string was expected (SQL Server would convert it)",
            )
        }
    }

    fn int_arg(&self, i: usize) -> Result<Sql, Refusal> {
        let s = self.x(i)?;
        if s.ty == Ty::Int {
            Ok(s)
        } else {
            refuse(self.a[i], "an integer was expected")
        }
    }
}

/// Current time, identifiers and NULL handling.
fn nulls_and_constants(c: &Call<'_, '_>, name: &str) -> Result<Option<Sql>, Refusal> {
    let (e, a) = (c.e, c.a.clone());
    let t = c.t;
    let x = |i: usize| c.x(i);
    let r: Result<Sql, Refusal> = match name {
        "getdate" | "sysdatetime" | "current_timestamp" => {
            want(e, &a, 0)?;
            Ok(sql("LOCALTIMESTAMP", Ty::Timestamp))
        }
        "getutcdate" | "sysutcdatetime" => {
            want(e, &a, 0)?;
            Ok(sql("(now() AT TIME ZONE 'UTC')", Ty::Timestamp))
        }
        "sysdatetimeoffset" => {
            want(e, &a, 0)?;
            Ok(sql("CURRENT_TIMESTAMP", Ty::TimestampTz))
        }
        "newid" => {
            want(e, &a, 0)?;
            Ok(sql("gen_random_uuid()", Ty::Uuid))
        }
        "isnull" | "coalesce" => {
            if name == "isnull" {
                want(e, &a, 2)?;
            } else if a.len() < 2 {
                return refuse(e, "COALESCE needs two arguments or more");
            }
            let parts = a.iter().map(|p| t.expr(p)).collect::<Result<Vec<_>, _>>()?;
            let ty = parts.iter().fold(Ty::Null, |acc, p| merge(acc, p.ty));
            let text: Vec<String> = parts.into_iter().map(|p| p.text).collect();
            Ok(sql(format!("COALESCE({})", text.join(", ")), ty))
        }
        "nullif" => {
            want(e, &a, 2)?;
            let (l, r) = (x(0)?, x(1)?);
            if l.ty.is_str() || r.ty.is_str() {
                return refuse(e, "NULLIF on strings compares under the collation");
            }
            Ok(sql(format!("NULLIF({}, {})", l.text, r.text), l.ty))
        }
        "iif" => {
            want(e, &a, 3)?;
            let c = x(0)?;
            if c.ty != Ty::Predicate {
                return refuse(e, "IIF needs a condition first");
            }
            let (y, n) = (x(1)?, x(2)?);
            Ok(sql(
                format!("CASE WHEN {} THEN {} ELSE {} END", c.text, y.text, n.text),
                merge(y.ty, n.ty),
            ))
        }
        _ => return Ok(None),
    };
    r.map(Some)
}

/// String functions.
fn strings(c: &Call<'_, '_>, name: &str) -> Result<Option<Sql>, Refusal> {
    let (e, a) = (c.e, c.a.clone());
    let x = |i: usize| c.x(i);
    let str_arg = |i: usize| c.str_arg(i);
    let int_arg = |i: usize| c.int_arg(i);
    let r: Result<Sql, Refusal> = match name {
        "len" => {
            want(e, &a, 1)?;
            let s = str_arg(0)?;
            Ok(sql(format!("length(rtrim({}))", s.text), Ty::Int))
        }
        "datalength" => {
            want(e, &a, 1)?;
            let s = x(0)?;
            match s.ty {
                Ty::Bytes => Ok(sql(format!("octet_length({})", s.text), Ty::Int)),
                // A code-page string holds one byte per character at the source.
                Ty::Str {
                    national: false, ..
                } => Ok(sql(format!("length({})", s.text), Ty::Int)),
                _ => refuse(
                    e,
                    "DATALENGTH of national text counts UTF-16 bytes, which PostgreSQL does not store",
                ),
            }
        }
        "left" | "right" => {
            want(e, &a, 2)?;
            let (s, n) = (str_arg(0)?, int_arg(1)?);
            Ok(sql(format!("{name}({}, {})", s.text, n.text), s.ty))
        }
        "substring" => {
            want(e, &a, 3)?;
            let (s, from, len) = (str_arg(0)?, int_arg(1)?, int_arg(2)?);
            Ok(sql(
                format!("substring({} from {} for {})", s.text, from.text, len.text),
                s.ty,
            ))
        }
        "upper" | "lower" | "ltrim" | "rtrim" => {
            want(e, &a, 1)?;
            let s = str_arg(0)?;
            Ok(sql(format!("{name}({})", s.text), s.ty))
        }
        "trim" => {
            want(e, &a, 1)?;
            let s = str_arg(0)?;
            Ok(sql(format!("btrim({}, ' ')", s.text), s.ty))
        }
        "charindex" => {
            want(e, &a, 2)?;
            let (needle, hay) = (str_arg(0)?, str_arg(1)?);
            let ci = case_insensitive(&[hay.ty, needle.ty]);
            let d = |t: String| c.t.scope.deterministic(t);
            Ok(sql(
                if ci {
                    format!(
                        "strpos({}, {})",
                        d(format!("lower({})", hay.text)),
                        d(format!("lower({})", needle.text))
                    )
                } else {
                    format!("strpos({}, {})", d(hay.text), d(needle.text))
                },
                Ty::Int,
            ))
        }
        "replace" => {
            want(e, &a, 3)?;
            let (s, from, to) = (str_arg(0)?, str_arg(1)?, str_arg(2)?);
            let ci = case_insensitive(&[s.ty, from.ty]);
            let subject = c.t.scope.deterministic(s.text.clone());
            if !ci {
                return Ok(Some(sql(
                    format!("replace({subject}, {}, {})", from.text, to.text),
                    s.ty,
                )));
            }
            // Case-insensitive at the source: a case-insensitive regular expression of the
            // constant searched for, and a replacement with its backslashes and & escaped.
            let (Some(f), Some(r)) = (string_literal(&from.text), string_literal(&to.text)) else {
                return refuse(
                    e,
                    "REPLACE on case-insensitive text with a search that is not a constant",
                );
            };
            let re: String = f
                .chars()
                .flat_map(|c| {
                    let meta = "\\^$.|?*+()[]{}".contains(c);
                    meta.then_some('\\').into_iter().chain([c])
                })
                .collect();
            let rep = r.replace('\\', "\\\\").replace('&', "\\&");
            Ok(sql(
                format!(
                    "regexp_replace({subject}, {}, {}, 'gi')",
                    literal(&re),
                    literal(&rep)
                ),
                s.ty,
            ))
        }
        _ => return Ok(None),
    };
    r.map(Some)
}

/// Number functions.
fn numbers(c: &Call<'_, '_>, name: &str) -> Result<Option<Sql>, Refusal> {
    let (e, a) = (c.e, c.a.clone());
    let t = c.t;
    let x = |i: usize| c.x(i);
    let int_arg = |i: usize| c.int_arg(i);
    let r: Result<Sql, Refusal> = match name {
        "abs" | "ceiling" | "floor" | "sign" | "sqrt" | "power" => {
            let n = if name == "power" { 2 } else { 1 };
            want(e, &a, n)?;
            let parts = a.iter().map(|p| t.expr(p)).collect::<Result<Vec<_>, _>>()?;
            if parts.iter().any(|p| !p.ty.is_number()) {
                return refuse(e, "a number was expected");
            }
            let pg = match name {
                "ceiling" => "ceil",
                other => other,
            };
            let ty = if matches!(name, "sqrt") {
                Ty::Float
            } else {
                parts[0].ty
            };
            let text: Vec<String> = parts.into_iter().map(|p| p.text).collect();
            Ok(sql(format!("{pg}({})", text.join(", ")), ty))
        }
        "round" => {
            if a.len() != 2 && a.len() != 3 {
                return refuse(e, "expected 2 or 3 arguments");
            }
            let (v, n) = (x(0)?, int_arg(1)?);
            let truncate = match a.get(2) {
                None => false,
                Some(_) => x(2)?.text != "0",
            };
            let f = if truncate { "trunc" } else { "round" };
            match v.ty {
                Ty::Int | Ty::Decimal => Ok(sql(format!("{f}({}, {})", v.text, n.text), v.ty)),
                Ty::Float | Ty::Real => Ok(sql(
                    format!(
                        "CAST({f}(CAST({} AS numeric), {}) AS {})",
                        v.text,
                        n.text,
                        if v.ty == Ty::Real {
                            "real"
                        } else {
                            "double precision"
                        }
                    ),
                    v.ty,
                )),
                _ => refuse(e, "a number was expected"),
            }
        }
        _ => return Ok(None),
    };
    r.map(Some)
}

/// Date functions.
fn dates(c: &Call<'_, '_>, name: &str) -> Result<Option<Sql>, Refusal> {
    let (e, a) = (c.e, c.a.clone());
    let x = |i: usize| c.x(i);
    let int_arg = |i: usize| c.int_arg(i);
    let r: Result<Sql, Refusal> = match name {
        "year" | "month" | "day" => {
            want(e, &a, 1)?;
            let d = x(0)?;
            if !matches!(d.ty, Ty::Date | Ty::Timestamp | Ty::TimestampTz) {
                return refuse(e, "a date was expected");
            }
            Ok(sql(
                format!("CAST(date_part('{name}', {}) AS integer)", d.text),
                Ty::Int,
            ))
        }
        "datepart" => {
            want(e, &a, 2)?;
            let part = date_part(e, a[0])?;
            let d = x(1)?;
            if !d.ty.is_temporal() {
                return refuse(e, "a date was expected");
            }
            if matches!(part, "week" | "weekday" | "millisecond") {
                return refuse(e, format!("DATEPART({part}) depends on session settings"));
            }
            Ok(sql(
                format!("CAST(date_part('{part}', {}) AS integer)", d.text),
                Ty::Int,
            ))
        }
        "dateadd" => {
            want(e, &a, 3)?;
            let part = date_part(e, a[0])?;
            let (n, d) = (int_arg(1)?, x(2)?);
            let (unit, times) = match part {
                "quarter" => ("month", "3 * "),
                "week" => ("day", "7 * "),
                "doy" | "weekday" => ("day", ""),
                "millisecond" => ("millisecond", ""),
                p => (p, ""),
            };
            match d.ty {
                Ty::Timestamp | Ty::TimestampTz => Ok(sql(
                    format!("({} + {times}({}) * INTERVAL '1 {unit}')", d.text, n.text),
                    d.ty,
                )),
                Ty::Date if matches!(unit, "year" | "month" | "day") => Ok(sql(
                    format!(
                        "CAST({} + {times}({}) * INTERVAL '1 {unit}' AS date)",
                        d.text, n.text
                    ),
                    Ty::Date,
                )),
                _ => refuse(e, "DATEADD on this type has no translation"),
            }
        }
        "datediff" => {
            want(e, &a, 3)?;
            let part = date_part(e, a[0])?;
            let (from, to) = (x(1)?, x(2)?);
            if !from.ty.is_temporal() || !to.ty.is_temporal() {
                return refuse(e, "dates were expected");
            }
            let (f, t2) = (&from.text, &to.text);
            let yp = |p: &str, v: &str| format!("date_part('{p}', {v})");
            let text = match part {
                "year" => format!("CAST({} - {} AS integer)", yp("year", t2), yp("year", f)),
                "quarter" => format!(
                    "CAST(({} - {}) * 4 + {} - {} AS integer)",
                    yp("year", t2),
                    yp("year", f),
                    yp("quarter", t2),
                    yp("quarter", f)
                ),
                "month" => format!(
                    "CAST(({} - {}) * 12 + {} - {} AS integer)",
                    yp("year", t2),
                    yp("year", f),
                    yp("month", t2),
                    yp("month", f)
                ),
                "day" | "doy" => format!("(CAST({t2} AS date) - CAST({f} AS date))"),
                // Weeks count Sunday boundaries, whatever DATEFIRST says.
                "week" => format!(
                    "((CAST({t2} AS date) - CAST({} AS integer)) - (CAST({f} AS date) - CAST({} AS integer))) / 7",
                    yp("dow", t2),
                    yp("dow", f)
                ),
                "hour" | "minute" | "second" => {
                    let secs = match part {
                        "hour" => 3600,
                        "minute" => 60,
                        _ => 1,
                    };
                    format!(
                        "CAST(date_part('epoch', date_trunc('{part}', {t2}) - date_trunc('{part}', {f})) / {secs} AS integer)"
                    )
                }
                _ => return refuse(e, format!("DATEDIFF({part}) has no translation")),
            };
            Ok(sql(text, Ty::Int))
        }
        _ => return Ok(None),
    };
    r.map(Some)
}

/// The source type a CAST or CONVERT names (`varchar(10)`, `decimal(9,2)`, `int`).
fn source_type(spelled: &str) -> Option<SourceType> {
    let lower = spelled.to_ascii_lowercase();
    let (name, args) = match lower.split_once('(') {
        Some((n, rest)) => (n.trim().to_string(), rest.trim_end_matches(')').to_string()),
        None => (lower.trim().to_string(), String::new()),
    };
    let nums: Vec<&str> = args
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let n = |i: usize| nums.get(i).and_then(|v| v.parse::<i32>().ok());
    let national = matches!(name.as_str(), "nchar" | "nvarchar");
    let max_length: i16 = match name.as_str() {
        "char" | "varchar" | "binary" | "varbinary" | "nchar" | "nvarchar" => {
            let chars = if nums.first() == Some(&"max") {
                -1
            } else {
                // CAST and CONVERT without a length mean 30.
                n(0).unwrap_or(30)
            };
            if chars < 0 {
                -1
            } else {
                (chars * if national { 2 } else { 1 }) as i16
            }
        }
        _ => 0,
    };
    let (precision, scale) = match name.as_str() {
        "decimal" | "numeric" => (n(0).unwrap_or(18) as u8, n(1).unwrap_or(0) as u8),
        "float" => (n(0).unwrap_or(53) as u8, 0),
        "datetime2" | "time" | "datetimeoffset" => (0, n(0).unwrap_or(7) as u8),
        _ => (0, 0),
    };
    Some(SourceType {
        name,
        max_length,
        precision,
        scale,
    })
}

/// CONVERT's date styles that have an exact `to_char` pattern.
fn date_style(style: i64) -> Option<&'static str> {
    Some(match style {
        23 | 126 => "YYYY-MM-DD",
        101 => "MM/DD/YYYY",
        103 => "DD/MM/YYYY",
        104 => "DD.MM.YYYY",
        105 => "DD-MM-YYYY",
        108 => "HH24:MI:SS",
        111 => "YYYY/MM/DD",
        112 => "YYYYMMDD",
        120 => "YYYY-MM-DD HH24:MI:SS",
        _ => return None,
    })
}

/// CAST(x AS type) and CONVERT(type, x [, style]).
pub(super) fn convert(
    t: &Translator<'_>,
    e: &Expr,
    x: &Expr,
    type_name: &str,
    style: Option<&Expr>,
) -> Result<Sql, Refusal> {
    let v = t.expr(x)?;
    let type_name = type_name.replace(['[', ']'], "");
    let Some(st) = source_type(&type_name) else {
        return refuse(e, format!("type {type_name} is not known"));
    };
    if matches!(st.name.as_str(), "sql_variant" | "hierarchyid" | "xml") {
        return refuse(
            e,
            format!(
                "a cast to {} has no counterpart in PostgreSQL's types",
                st.name
            ),
        );
    }
    let national = matches!(st.name.as_str(), "nchar" | "nvarchar");
    let column = SourceColumn {
        name: String::new(),
        source_type: st.clone(),
        nullable: true,
        identity: false,
        computed: None,
        deterministic: None,
        default: None,
    };
    // The types whose values are carried in another form (a CLR type's text or binary) have
    // no cast that means the same.
    let carried_otherwise = matches!(
        st.name.as_str(),
        "geography" | "geometry" | "hierarchyid" | "sql_variant"
    );
    let kind = default_kind(&column)
        .ok()
        .filter(|_| !carried_otherwise)
        .ok_or_else(|| Refusal {
            node: e.to_string(),
            reason: format!("type {type_name} has no PostgreSQL counterpart"),
        })?;
    let ci = match v.ty {
        Ty::Str { ci, .. } => ci,
        _ => t.scope.default_case_insensitive,
    };
    let to = Ty::of_kind(kind, ci, national);
    let style = match style {
        None => None,
        Some(s) => match t.expr(s)?.text.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return refuse(e, "a CONVERT style must be a number"),
        },
    };
    let fixed_char = matches!(st.name.as_str(), "char" | "nchar");
    if to.is_str() {
        let chars = st.char_length();
        let cut = |text: String| match chars {
            Some(n) => format!("left({text}, {n})"),
            None => text,
        };
        if fixed_char {
            return refuse(e, "a fixed-length char pads with spaces; use varchar");
        }
        let text = match (v.ty, style) {
            (Ty::Str { .. } | Ty::Null, None) => cut(v.text),
            (Ty::Int | Ty::Decimal, None) => cut(format!("CAST({} AS text)", v.text)),
            (Ty::Uuid, None) => cut(format!("upper(CAST({} AS text))", v.text)),
            (Ty::Bool, None) => cut(format!("CAST(CAST({} AS integer) AS text)", v.text)),
            (Ty::Date, None) => cut(format!("to_char({}, 'YYYY-MM-DD')", v.text)),
            (Ty::Date | Ty::Timestamp | Ty::TimestampTz | Ty::Time, Some(s)) => {
                match date_style(s) {
                    Some(p) if !(v.ty == Ty::Date && p.contains("HH")) => {
                        cut(format!("to_char({}, {})", v.text, literal(p)))
                    }
                    _ => return refuse(e, format!("CONVERT style {s} has no exact translation")),
                }
            }
            _ => {
                return refuse(
                    e,
                    "this conversion to a string formats by SQL Server's rules (float, money, datetime)",
                )
            }
        };
        return Ok(sql(text, to));
    }
    if style.is_some() {
        return refuse(e, "a CONVERT style is only translated into a string");
    }
    let allowed = match (v.ty, to) {
        (Ty::Null, _) => true,
        (a, b) if a == b && a != Ty::Decimal => true,
        (
            Ty::Int | Ty::Decimal | Ty::Float | Ty::Real,
            Ty::Int | Ty::Decimal | Ty::Float | Ty::Real,
        ) => {
            // Decimal to integer truncates in SQL Server and rounds in PostgreSQL.
            !(matches!(v.ty, Ty::Decimal | Ty::Float | Ty::Real) && to == Ty::Int)
        }
        (Ty::Int, Ty::Bool) => true,
        (Ty::Timestamp, Ty::Date) | (Ty::Date, Ty::Timestamp) => true,
        // A constant string read as a number or a date: the same literal forms.
        (Ty::Str { .. }, Ty::Int | Ty::Decimal) => string_literal(&v.text).is_some(),
        (Ty::Str { .. }, Ty::Date | Ty::Timestamp) => string_literal(&v.text)
            .is_some_and(|s| s.len() >= 8 && s.chars().take(4).all(|c| c.is_ascii_digit())),
        _ => false,
    };
    if !allowed {
        return refuse(
            e,
            "this conversion follows SQL Server's rules, which PostgreSQL's cast does not",
        );
    }
    if v.ty == Ty::Real && to == Ty::Decimal {
        // PostgreSQL reads a real as 6 significant digits on its way to numeric; SQL Server
        // converts the value itself: through double precision, which holds it exactly.
        return Ok(sql(
            format!(
                "CAST(CAST({} AS double precision) AS {})",
                v.text,
                kind.ddl()
            ),
            to,
        ));
    }
    if v.ty == Ty::Int && to == Ty::Bool {
        return Ok(sql(format!("({} <> 0)", v.text), Ty::Bool));
    }
    Ok(sql(format!("CAST({} AS {})", v.text, kind.ddl()), to))
}

/// Aggregates (in a view's query): SQL Server's result for each, or a refusal.
fn aggregates(c: &Call<'_, '_>, name: &str) -> Result<Option<Sql>, Refusal> {
    let (e, a) = (c.e, c.a.clone());
    if !matches!(name, "count" | "sum" | "avg" | "min" | "max") {
        return Ok(None);
    }
    want(e, &a, 1)?;
    let v = c.x(0)?;
    let r = match (name, v.ty) {
        ("count", _) => sql(format!("count({})", v.text), Ty::Int),
        ("sum", Ty::Int | Ty::Decimal | Ty::Float | Ty::Real) => {
            sql(format!("sum({})", v.text), v.ty)
        }
        // SQL Server averages integers in integer arithmetic, truncating.
        ("avg", Ty::Int) => sql(format!("CAST(trunc(avg({})) AS integer)", v.text), Ty::Int),
        ("avg", Ty::Float | Ty::Real) => sql(format!("avg({})", v.text), Ty::Float),
        ("avg", Ty::Decimal) => {
            return refuse(
                e,
                "the average of decimals keeps a scale SQL Server derives from the operand",
            )
        }
        ("min" | "max", t) if !t.is_str() && t != Ty::Predicate => {
            sql(format!("{name}({})", v.text), t)
        }
        ("min" | "max", _) => return refuse(e, "the order of strings depends on the collation"),
        _ => return refuse(e, format!("{name} of this type has no translation")),
    };
    Ok(Some(r))
}
