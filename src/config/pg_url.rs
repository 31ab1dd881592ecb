//! `target.url`'s TLS options: libpq's `sslmode` and `sslrootcert`, which tokio-postgres does not
//! read itself, taken out of the URL (or `key=value` string) and checked when the configuration
//! is read. [`crate::tls`] acts on them.

use std::path::PathBuf;

/// libpq's `sslmode` values that the replicator honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgSslMode {
    /// Plaintext only.
    Disable,
    /// TLS when offered.
    #[default]
    Prefer,
    /// TLS, certificate not checked (unless a CA is given).
    Require,
    /// TLS, certificate chains to the CA.
    VerifyCa,
    /// TLS, certificate chains to the CA and names the host.
    VerifyFull,
}

impl PgSslMode {
    fn parse(s: &str) -> Result<PgSslMode, String> {
        Ok(match s {
            "disable" => PgSslMode::Disable,
            "prefer" => PgSslMode::Prefer,
            "require" => PgSslMode::Require,
            "verify-ca" => PgSslMode::VerifyCa,
            "verify-full" => PgSslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow is not supported: use prefer, require, verify-ca or verify-full"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            ))
            }
        })
    }
}

/// `target.url` without `sslmode` and `sslrootcert` (tokio-postgres knows neither verify mode),
/// and the two values. Works on URLs and on `key=value` connection strings.
pub fn split_ssl_options(url: &str) -> Result<(String, PgSslMode, Option<PathBuf>), String> {
    let mut mode = None;
    let mut rootcert = None;
    let mut take = |key: &str, value: String| -> Result<bool, String> {
        match key {
            "sslmode" => mode = Some(PgSslMode::parse(&value)?),
            "sslrootcert" => rootcert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let cleaned = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, percent_decode(v))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for part in url.split_whitespace() {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if !take(k.trim(), v.trim_matches('\'').to_string())? {
                kept.push(part);
            }
        }
        kept.join(" ")
    };
    Ok((cleaned, mode.unwrap_or_default(), rootcert))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_rootcert_leave_the_url_and_others_stay() {
        let (u, m, r) = split_ssl_options(
            "postgres://u@h:5/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(u, "postgres://u@h:5/db?application_name=x");
        assert_eq!(m, PgSslMode::VerifyFull);
        assert_eq!(r, Some(PathBuf::from("/etc/ca.pem")));
        let (u, m, r) = split_ssl_options("host=h user=u sslmode=verify-ca dbname=d").unwrap();
        assert_eq!(
            (u.as_str(), m, r),
            ("host=h user=u dbname=d", PgSslMode::VerifyCa, None)
        );
        let (u, m, _) = split_ssl_options("postgres://u@h/db").unwrap();
        assert_eq!((u.as_str(), m), ("postgres://u@h/db", PgSslMode::Prefer));
        assert!(split_ssl_options("postgres://u@h/db?sslmode=allow")
            .unwrap_err()
            .contains("allow"));
        assert!(split_ssl_options("postgres://u@h/db?sslmode=bogus")
            .unwrap_err()
            .contains("bogus"));
    }
}
