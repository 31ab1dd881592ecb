//! `mssql-sim script`: runs T-SQL script files batch by batch, as sqlcmd does.
//!
//! Contract: a file is read as UTF-8 (with or without BOM) or UTF-16 (with BOM); batches are
//! separated by lines holding only `GO` (any case, an optional repeat count, surrounding blanks);
//! every batch runs (a failed one does not stop the rest, as with sqlcmd without `-b`); each
//! failure is reported with its file, first line and the server's error; the report counts them.

use crate::workload::connect;
use futures_util::TryStreamExt;

/// One batch of a script: its text, the 1-based line it starts on, and how often `GO n` runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The batch text (without the GO line).
    pub text: String,
    /// 1-based line of the file where the batch starts.
    pub line: usize,
    /// `GO n` runs the batch n times.
    pub count: u32,
}

/// A script file's text: UTF-16 (LE or BE) when it starts with that BOM, otherwise UTF-8 (a
/// UTF-8 BOM is dropped). Invalid UTF-8 is an error naming the byte offset.
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    let (enc, bom) = match encoding_rs::Encoding::for_bom(bytes) {
        Some((enc, n)) => (enc, n),
        None => (encoding_rs::UTF_8, 0),
    };
    let (text, had_errors) = enc.decode_without_bom_handling(&bytes[bom..]);
    if had_errors {
        if enc == encoding_rs::UTF_8 {
            let at = std::str::from_utf8(&bytes[bom..])
                .err()
                .map(|e| e.valid_up_to() + bom)
                .unwrap_or(0);
            return Err(format!(
                "not valid UTF-8 at byte {at} (UTF-16 needs a byte order mark)"
            ));
        }
        return Err(format!("not valid {}", enc.name()));
    }
    Ok(text.into_owned())
}

/// `GO` or `GO n` alone on a line (blanks around), as sqlcmd recognises the batch separator.
fn go_count(line: &str) -> Option<u32> {
    let t = line.trim();
    let rest = t.get(..2).filter(|g| g.eq_ignore_ascii_case("GO"))?;
    let _ = rest;
    let tail = t[2..].trim();
    if tail.is_empty() {
        return Some(1);
    }
    tail.parse::<u32>().ok().filter(|n| *n > 0)
}

/// Splits a script into batches on `GO` lines; blank batches are dropped.
pub fn split_batches(text: &str) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        if let Some(count) = go_count(line) {
            if !current.trim().is_empty() {
                out.push(Batch {
                    text: std::mem::take(&mut current),
                    line: start,
                    count,
                });
            }
            current.clear();
            start = i + 2;
            continue;
        }
        if current.is_empty() && line.trim().is_empty() {
            start = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        out.push(Batch {
            text: current,
            line: start,
            count: 1,
        });
    }
    out
}

/// A failed batch.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The file.
    pub file: String,
    /// The 1-based line the batch starts on.
    pub line: usize,
    /// The error the client got.
    pub error: String,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Batches run (a `GO n` batch counts n times).
    pub batches: usize,
    /// The batches that failed.
    pub failures: Vec<Failure>,
}

/// Runs every file's batches through one session to `server` (starting in `database`, created
/// when missing) and reports the failures. Only a connection failure is an error.
pub async fn run(
    server: std::net::SocketAddr,
    sa_password: &str,
    database: Option<&str>,
    files: &[std::path::PathBuf],
) -> Result<Report, String> {
    let mut c = connect(server, sa_password, None).await?;
    if let Some(db) = database {
        let lit = db.replace('\'', "''");
        let name = db.replace(']', "]]");
        let sql = format!(
            "IF NOT EXISTS (SELECT 1 FROM sys.databases WHERE name = N'{lit}') CREATE DATABASE [{name}]"
        );
        drain(&mut c, &sql)
            .await
            .map_err(|e| format!("create database {db}: {e}"))?;
        drain(&mut c, &format!("USE [{name}]"))
            .await
            .map_err(|e| format!("use database {db}: {e}"))?;
    }
    let mut report = Report::default();
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let text = decode(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        for batch in split_batches(&text) {
            for _ in 0..batch.count {
                report.batches += 1;
                if let Err(e) = drain(&mut c, &batch.text).await {
                    report.failures.push(Failure {
                        file: file.display().to_string(),
                        line: batch.line,
                        error: e,
                    });
                }
            }
        }
    }
    Ok(report)
}

/// Sends a batch and reads every result of it; the first error is returned.
async fn drain(c: &mut crate::workload::Tds, sql: &str) -> Result<(), String> {
    let mut stream = c.simple_query(sql).await.map_err(|e| e.to_string())?;
    while stream
        .try_next()
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_lines_split_as_sqlcmd_does() {
        let s = "SELECT 1\ngo\n\n  GO  \nSELECT 2\nSELECT 3\nGO 3\nSELECT 4\n-- GO\nGOTO x\nGO\r\nSELECT 5";
        let b = split_batches(s);
        assert_eq!(
            b,
            vec![
                Batch {
                    text: "SELECT 1\n".into(),
                    line: 1,
                    count: 1
                },
                Batch {
                    text: "SELECT 2\nSELECT 3\n".into(),
                    line: 5,
                    count: 3
                },
                Batch {
                    text: "SELECT 4\n-- GO\nGOTO x\n".into(),
                    line: 8,
                    count: 1
                },
                Batch {
                    text: "SELECT 5\n".into(),
                    line: 12,
                    count: 1
                },
            ]
        );
        assert_eq!(go_count("GO 0"), None);
        assert_eq!(go_count("GO x"), None);
        assert_eq!(go_count("Go"), Some(1));
    }

    #[test]
    fn utf8_with_and_without_bom_and_utf16_with_bom() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFSELECT N'\xC3\xA9'").unwrap(),
            "SELECT N'é'"
        );
        assert_eq!(decode("SELECT 'ü'".as_bytes()).unwrap(), "SELECT 'ü'");
        let mut le = vec![0xFF, 0xFE];
        le.extend("GO\né".encode_utf16().flat_map(|u| u.to_le_bytes()));
        assert_eq!(decode(&le).unwrap(), "GO\né");
        let mut be = vec![0xFE, 0xFF];
        be.extend("x".encode_utf16().flat_map(|u| u.to_be_bytes()));
        assert_eq!(decode(&be).unwrap(), "x");
        let e = decode(b"SELECT \xFF").unwrap_err();
        assert!(e.contains("byte 7"), "{e}");
    }
}
