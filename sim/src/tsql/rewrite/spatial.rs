//! geography and geometry: the static constructors scripts use (`geography::Point`,
//! `geometry::STGeomFromText`...) and the members clients read (`.STAsBinary()`, `.STSrid`),
//! over the stored form of [`crate::value::spatial`].

use super::*;
use crate::value::spatial;
use sqlparser::ast::UnaryOperator;

/// SQL Server's error number for a failure inside a CLR type's method.
const CLR_ERROR: i32 = 6522;

impl Rewriter<'_> {
    /// `geography__point(lat, long, srid)` and the other constructors the parser's pre-pass
    /// made of `type::Method(...)`; `None` when `name` is not one.
    pub(super) fn spatial_constructor(
        &mut self,
        name: &str,
        f: &sqlparser::ast::Function,
    ) -> Option<Expr> {
        let (ty_name, method) = name.split_once("__")?;
        let ty = match ty_name {
            "geography" => TsqlType::Geography,
            "geometry" => TsqlType::Geometry,
            _ => return None,
        };
        let args = super::functions::unnamed_args(f);
        let default_srid = if ty == TsqlType::Geography { 4326 } else { 0 };
        let built = match method {
            "point" => match (number(args.first()), number(args.get(1)), args.get(2)) {
                // geography::Point takes latitude first; WKB holds x = longitude, y = latitude.
                (Some(a), Some(b), srid) if ty == TsqlType::Geography => {
                    srid_of(srid, default_srid)
                        .map(|s| spatial::stored(s, &spatial::point_wkb(b, a)))
                }
                (Some(a), Some(b), srid) => srid_of(srid, default_srid)
                    .map(|s| spatial::stored(s, &spatial::point_wkb(a, b))),
                _ => Err(format!(
                    "{ty_name}::Point: the simulator takes literal numbers only"
                )),
            },
            "stgeomfromtext" | "stpointfromtext" | "stlinefromtext" | "stpolyfromtext"
            | "stmpointfromtext" | "stmlinefromtext" | "stmpolyfromtext" | "stgeomcollfromtext"
            | "parse" => match args.first().and_then(|e| string(e)) {
                Some(text) => spatial::wkb_from_wkt(&text).and_then(|wkb| {
                    srid_of(args.get(1), default_srid).map(|s| spatial::stored(s, &wkb))
                }),
                None => Err(format!(
                    "{ty_name}::{method}: the simulator takes a literal text only"
                )),
            },
            "stgeomfromwkb" => match args.first().and_then(|e| hex(e)) {
                Some(wkb) => srid_of(args.get(1), default_srid).map(|s| spatial::stored(s, &wkb)),
                None => Err(format!(
                    "{ty_name}::STGeomFromWKB: the simulator takes a literal binary only"
                )),
            },
            _ => Err(format!(
                "{ty_name}::{method} is not a method the simulator knows"
            )),
        };
        Some(match built {
            Ok(bytes) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                self.typed_raw(format!("'\\x{hex}'::bytea"), Some(ty))
            }
            Err(message) => {
                self.fail(CLR_ERROR, message);
                raw("NULL".into())
            }
        })
    }

    /// `col.STAsBinary()` (the WKB) on a spatial value; `None` for other calls.
    pub(super) fn spatial_method(&mut self, f: &sqlparser::ast::Function) -> Option<Expr> {
        let parts = &f.name.0;
        let method = parts.last()?.as_ident()?.value.to_lowercase();
        if parts.len() < 2 || method != "stasbinary" {
            return None;
        }
        let object = ObjectName(parts[..parts.len() - 1].to_vec()).to_string();
        let sql = format!("substring({object} from 5)");
        Some(self.typed_raw(sql, Some(TsqlType::VarBinary(Len::Max))))
    }

    /// `col.STSrid` on a spatial value; `None` for other names.
    pub(super) fn spatial_property(&mut self, parts: &[sqlparser::ast::Ident]) -> Option<Expr> {
        let last = parts.last()?;
        if parts.len() < 2 || !last.value.eq_ignore_ascii_case("stsrid") {
            return None;
        }
        let object = match &parts[..parts.len() - 1] {
            [one] => Expr::Identifier(one.clone()),
            more => Expr::CompoundIdentifier(more.to_vec()),
        };
        if !matches!(
            self.type_of(&object),
            Some(TsqlType::Geography | TsqlType::Geometry)
        ) {
            return None;
        }
        // PostgreSQL's bitwise operators share one precedence: every shift is parenthesized.
        let sql = format!(
            "(get_byte({object}, 0) | (get_byte({object}, 1) << 8) | (get_byte({object}, 2) << 16) \
             | (get_byte({object}, 3) << 24))"
        );
        Some(self.typed_raw(sql, Some(TsqlType::Int)))
    }
}

fn number(e: Option<&&Expr>) -> Option<f64> {
    match e? {
        Expr::Value(v) => match &v.value {
            AstValue::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => number(Some(&&**expr)).map(|n| -n),
        Expr::Nested(inner) => number(Some(&&**inner)),
        _ => None,
    }
}

fn srid_of(e: Option<&&Expr>, default: i32) -> Result<i32, String> {
    match e {
        None => Ok(default),
        Some(x) => number(Some(x))
            .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= i32::MAX as f64)
            .map(|n| n as i32)
            .ok_or_else(|| "the SRID must be a literal integer".to_string()),
    }
}

fn string(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            AstValue::SingleQuotedString(s) | AstValue::NationalStringLiteral(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn hex(e: &Expr) -> Option<Vec<u8>> {
    let Expr::Value(v) = e else { return None };
    let AstValue::Number(n, _) = &v.value else {
        return None;
    };
    let digits = n.strip_prefix("0x").or_else(|| n.strip_prefix("0X"))?;
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
        .collect()
}
