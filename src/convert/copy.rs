//! PostgreSQL's binary COPY format, written straight from [`Value`]s.
//!
//! Contract: a [`Value`] produced by [`crate::convert`] for a column encodes as that column's
//! type; the buffer is sent in pieces so memory stays bounded by the piece size.

use crate::model::Value;
use bytes::{BufMut, BytesMut};

/// The 19-byte header of a binary COPY stream.
pub fn header(buf: &mut BytesMut) {
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0);
    buf.put_i32(0);
}

/// The trailer that ends a binary COPY stream.
pub fn trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// Starts a row of `n` fields.
pub fn row_start(buf: &mut BytesMut, n: usize) {
    buf.put_i16(n as i16);
}

/// Appends one field.
pub fn field(buf: &mut BytesMut, v: &Value) {
    match v {
        Value::Null => buf.put_i32(-1),
        Value::Bool(b) => {
            buf.put_i32(1);
            buf.put_u8(*b as u8);
        }
        Value::I16(x) => {
            buf.put_i32(2);
            buf.put_i16(*x);
        }
        Value::I32(x) => {
            buf.put_i32(4);
            buf.put_i32(*x);
        }
        Value::I64(x) => {
            buf.put_i32(8);
            buf.put_i64(*x);
        }
        Value::F32(x) => {
            buf.put_i32(4);
            buf.put_f32(*x);
        }
        Value::F64(x) => {
            buf.put_i32(8);
            buf.put_f64(*x);
        }
        Value::Numeric { mantissa, scale } => numeric(buf, *mantissa, *scale),
        // xml's binary form is its text, like text's.
        Value::Text(s) => {
            buf.put_i32(s.len() as i32);
            buf.put_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            buf.put_i32(b.len() as i32);
            buf.put_slice(b);
        }
        Value::Uuid(u) => {
            buf.put_i32(16);
            buf.put_slice(u);
        }
        Value::Date(d) => {
            buf.put_i32(4);
            buf.put_i32(*d);
        }
        Value::Time(us) | Value::Timestamp(us) | Value::TimestampTz(us) => {
            buf.put_i32(8);
            buf.put_i64(*us);
        }
    }
}

/// numeric's binary form: ndigits, weight, sign, dscale, then base-10000 digits (big-endian),
/// without leading or trailing zero groups, as PostgreSQL writes it. No allocation.
pub fn numeric(buf: &mut BytesMut, mantissa: i128, scale: u8) {
    // Base-10000 groups of |mantissa| * 10^pad, least significant first, where the padding
    // makes the fraction fill whole groups (a u128 has at most 39 digits: 11 groups with pad).
    let pad = (4 - scale as u32 % 4) % 4;
    let mut groups = [0i16; 12];
    let mut n = 0;
    let mut v = mantissa.unsigned_abs();
    // The lowest group holds the padding zeros below the last fraction digit.
    let p = 10u128.pow(pad);
    if v > 0 {
        groups[0] = ((v % (10_000 / p)) * p) as i16;
        v /= 10_000 / p;
        n = 1;
        while v > 0 {
            groups[n] = (v % 10_000) as i16;
            v /= 10_000;
            n += 1;
        }
    }
    let frac_groups = ((scale as u32 + pad) / 4) as i16;
    // Drop leading (most significant) and trailing zero groups.
    let mut hi = n;
    while hi > 0 && groups[hi - 1] == 0 {
        hi -= 1;
    }
    let mut lo = 0;
    while lo < hi && groups[lo] == 0 {
        lo += 1;
    }
    let ndigits = hi - lo;
    let weight = if ndigits == 0 {
        0
    } else {
        hi as i16 - frac_groups - 1
    };
    buf.put_i32(8 + 2 * ndigits as i32);
    buf.put_i16(ndigits as i16);
    buf.put_i16(weight);
    buf.put_u16(if mantissa < 0 { 0x4000 } else { 0 });
    buf.put_u16(scale as u16);
    for g in groups[lo..hi].iter().rev() {
        buf.put_i16(*g);
    }
}

/// The inverse of [`numeric`] on a value's bytes (without the length): mantissa and scale
/// (the value's dscale); `None` for NaN, infinities, a malformed value or one beyond i128.
pub fn numeric_value(b: &[u8]) -> Option<(i128, u8)> {
    let word = |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])) };
    let ndigits = word(0)? as i16;
    let weight = word(2)? as i16 as i32;
    let sign = word(4)?;
    let scale = u8::try_from(word(6)?).ok()?;
    if ndigits < 0 || !matches!(sign, 0 | 0x4000) || b.len() != 8 + 2 * ndigits as usize {
        return None;
    }
    // digits * 10^(4 * (weight + 1 - ndigits)) is the value; the mantissa is it * 10^scale.
    let mut digits: i128 = 0;
    for i in 0..ndigits as usize {
        digits = digits
            .checked_mul(10_000)?
            .checked_add(word(8 + 2 * i)? as i128)?;
    }
    let exp = 4 * (weight + 1 - ndigits as i32) + scale as i32;
    let v = if exp >= 0 {
        digits.checked_mul(10i128.checked_pow(exp as u32)?)?
    } else {
        let d = 10i128.checked_pow(exp.unsigned_abs())?;
        if digits % d != 0 {
            return None;
        }
        digits / d
    };
    Some((if sign == 0x4000 { -v } else { v }, scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_decode_to_what_was_encoded() {
        let mut x: i128 = 11;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let m = x % 10i128.pow((x.unsigned_abs() % 30) as u32);
            for scale in [0u8, 1, 2, 4, 5, 9, 18] {
                let b = enc(m, scale);
                assert_eq!(
                    numeric_value(&b[4..]),
                    Some((m, scale)),
                    "{m} scale {scale}"
                );
            }
        }
        // NaN, and a truncated value.
        assert_eq!(numeric_value(&[0, 0, 0, 0, 0xC0, 0, 0, 0]), None);
        assert_eq!(numeric_value(&enc(12345, 2)[4..10]), None);
    }

    fn enc(m: i128, s: u8) -> Vec<u8> {
        let mut b = BytesMut::new();
        numeric(&mut b, m, s);
        b.to_vec()
    }

    #[test]
    fn numerics_encode_like_postgres() {
        // 12.34: ndigits 2, weight 0, digits 12, 3400
        assert_eq!(
            enc(1234, 2),
            [0, 0, 0, 12, 0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 13, 72]
        );
        // 0 with scale 4
        assert_eq!(enc(0, 4), [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 4]);
        // -10000: ndigits 1, weight 1, digit 1
        assert_eq!(
            enc(-10000, 0),
            [0, 0, 0, 10, 0, 1, 0, 1, 0x40, 0, 0, 0, 0, 1]
        );
        // 0.0001 scale 4: ndigits 1, weight -1, digit 1
        assert_eq!(enc(1, 4), [0, 0, 0, 10, 0, 1, 255, 255, 0, 0, 0, 4, 0, 1]);
    }

    /// The encoder before it was made allocation-free: the reference for every mantissa.
    fn reference(mantissa: i128, scale: u8) -> Vec<u8> {
        let pad = (4 - scale as usize % 4) % 4;
        let mut le: Vec<u8> = vec![0; pad];
        let mut v = mantissa.unsigned_abs();
        while v > 0 {
            le.push((v % 10) as u8);
            v /= 10;
        }
        let frac_groups = (scale as usize + pad) / 4;
        let groups: Vec<i16> = le
            .chunks(4)
            .map(|c| c.iter().rev().fold(0i16, |acc, d| acc * 10 + *d as i16))
            .collect();
        let mut weight = groups.len() as i16 - frac_groups as i16 - 1;
        let mut be: Vec<i16> = groups.into_iter().rev().collect();
        while be.first() == Some(&0) {
            be.remove(0);
            weight -= 1;
        }
        while be.last() == Some(&0) {
            be.pop();
        }
        if be.is_empty() {
            weight = 0;
        }
        let mut b = BytesMut::new();
        b.put_i32(8 + 2 * be.len() as i32);
        b.put_i16(be.len() as i16);
        b.put_i16(weight);
        b.put_u16(if mantissa < 0 { 0x4000 } else { 0 });
        b.put_u16(scale as u16);
        for g in be {
            b.put_i16(g);
        }
        b.to_vec()
    }

    #[test]
    fn numerics_encode_as_the_reference_does() {
        let mut mantissas = vec![0i128, 1, -1, 9999, 10000, 10001, i128::MAX, i128::MIN + 1];
        let mut x: i128 = 7;
        for _ in 0..2000 {
            // Digits of every length, with runs of zeros in the middle and at the end.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let digits = (x.unsigned_abs() % 39) as u32;
            let m = x % 10i128.pow(digits.max(1));
            let zeros = 10i128.pow(if x % 3 == 0 {
                x.unsigned_abs() as u32 % 8
            } else {
                0
            });
            mantissas.push(m.checked_mul(zeros).unwrap_or(m));
        }
        for m in mantissas {
            for scale in [0u8, 1, 2, 3, 4, 5, 8, 12, 20, 37, 38] {
                assert_eq!(enc(m, scale), reference(m, scale), "{m} scale {scale}");
            }
        }
    }
}
