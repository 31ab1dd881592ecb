//! geography and geometry values: the simulator stores one as its SRID (4 bytes, little-endian)
//! followed by its well-known binary (little-endian, as SQL Server's `STAsBinary()` returns it).
//! Only the forms scripts write are built: `STGeomFromText` / `STPointFromText` /
//! `STLineFromText` / `STPolyFromText` from a WKT literal, `Point(lat, long, srid)` for
//! geography and `Point(x, y, srid)` for geometry, `STGeomFromWKB(bytes, srid)`. 2D only.

use std::str::FromStr;
use wkt::types::{Coord, LineString, Polygon};
use wkt::Wkt;

/// The stored form of a value: SRID then WKB.
pub fn stored(srid: i32, wkb: &[u8]) -> Vec<u8> {
    let mut out = srid.to_le_bytes().to_vec();
    out.extend_from_slice(wkb);
    out
}

/// The WKB of a point (x, y).
pub fn point_wkb(x: f64, y: f64) -> Vec<u8> {
    let mut out = header(1);
    coord(&mut out, x, y);
    out
}

/// The WKB of a WKT text; `Err` says what SQL Server's error would (the simulator's wording).
pub fn wkb_from_wkt(text: &str) -> Result<Vec<u8>, String> {
    let w = Wkt::<f64>::from_str(text.trim())
        .map_err(|e| format!("The well-known text (WKT) input is not valid: {e}"))?;
    let mut out = Vec::new();
    write(&mut out, &w)?;
    Ok(out)
}

fn header(kind: u32) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&kind.to_le_bytes());
    out
}

fn coord(out: &mut Vec<u8>, x: f64, y: f64) {
    out.extend_from_slice(&x.to_le_bytes());
    out.extend_from_slice(&y.to_le_bytes());
}

fn coords(out: &mut Vec<u8>, cs: &[Coord<f64>]) -> Result<(), String> {
    out.extend_from_slice(&(cs.len() as u32).to_le_bytes());
    for c in cs {
        if c.z.is_some() || c.m.is_some() {
            return Err("the simulator keeps 2D coordinates only (no Z or M)".into());
        }
        coord(out, c.x, c.y);
    }
    Ok(())
}

fn line(out: &mut Vec<u8>, l: &LineString<f64>) -> Result<(), String> {
    out.extend(header(2));
    coords(out, l.coords())
}

fn polygon(out: &mut Vec<u8>, p: &Polygon<f64>) -> Result<(), String> {
    out.extend(header(3));
    out.extend_from_slice(&(p.rings().len() as u32).to_le_bytes());
    for r in p.rings() {
        coords(out, r.coords())?;
    }
    Ok(())
}

fn write(out: &mut Vec<u8>, w: &Wkt<f64>) -> Result<(), String> {
    match w {
        Wkt::Point(p) => match p.coord() {
            Some(c) => {
                coords(&mut Vec::new(), std::slice::from_ref(c))?;
                out.extend(point_wkb(c.x, c.y));
            }
            // An empty point is NaN, NaN in WKB.
            None => out.extend(point_wkb(f64::NAN, f64::NAN)),
        },
        Wkt::LineString(l) => line(out, l)?,
        Wkt::Polygon(p) => polygon(out, p)?,
        Wkt::MultiPoint(m) => {
            out.extend(header(4));
            out.extend_from_slice(&(m.points().len() as u32).to_le_bytes());
            for p in m.points() {
                write(out, &Wkt::Point(p.clone()))?;
            }
        }
        Wkt::MultiLineString(m) => {
            out.extend(header(5));
            out.extend_from_slice(&(m.line_strings().len() as u32).to_le_bytes());
            for l in m.line_strings() {
                line(out, l)?;
            }
        }
        Wkt::MultiPolygon(m) => {
            out.extend(header(6));
            out.extend_from_slice(&(m.polygons().len() as u32).to_le_bytes());
            for p in m.polygons() {
                polygon(out, p)?;
            }
        }
        Wkt::GeometryCollection(g) => {
            out.extend(header(7));
            out.extend_from_slice(&(g.geometries().len() as u32).to_le_bytes());
            for x in g.geometries() {
                write(out, x)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_and_line_are_little_endian_wkb() {
        let p = wkb_from_wkt("POINT (1 2)").unwrap();
        assert_eq!(p[..5], [1, 1, 0, 0, 0]);
        assert_eq!(f64::from_le_bytes(p[5..13].try_into().unwrap()), 1.0);
        assert_eq!(p, point_wkb(1.0, 2.0));
        let l = wkb_from_wkt("LINESTRING (0 0, 1 1, 2 0)").unwrap();
        assert_eq!(l.len(), 5 + 4 + 3 * 16);
        let poly = wkb_from_wkt("POLYGON ((0 0, 4 0, 4 4, 0 0))").unwrap();
        assert_eq!(poly[1], 3);
        assert!(wkb_from_wkt("POINT Z (1 2 3)").is_err());
        assert!(wkb_from_wkt("POINT (1").is_err());
        assert_eq!(stored(4326, &p)[..4], 4326i32.to_le_bytes());
    }
}
