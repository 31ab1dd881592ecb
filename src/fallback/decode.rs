//! PostgreSQL's logical replication messages (the `pgoutput` plugin, protocol version 1), as
//! `pg_logical_slot_peek_binary_changes` returns them: one message per row.
//!
//! Contract: [`decode`] reads exactly one message and refuses anything malformed with what it
//! expected; it never guesses. Values stay in PostgreSQL's text form (protocol 1 sends text);
//! the inverse conversion ([`super::inverse`]) turns them into SQL Server values by column type.
//! Reference: PostgreSQL documentation, "Logical Replication Message Formats".

use std::fmt;

/// A position in PostgreSQL's write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgLsn(pub u64);

impl fmt::Display for PgLsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl std::str::FromStr for PgLsn {
    type Err = String;
    /// Parses `16/B374D848`, the form PostgreSQL prints.
    fn from_str(s: &str) -> Result<PgLsn, String> {
        let (hi, lo) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an LSN (expected like 16/B374D848)"))?;
        let part = |p: &str| u32::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not an LSN"));
        Ok(PgLsn((u64::from(part(hi)?) << 32) | u64::from(part(lo)?)))
    }
}

/// One column of a relation as the publication describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelColumn {
    /// Part of the replica identity (the primary key by default).
    pub key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (-1 when none).
    pub type_mod: i32,
}

/// A relation (table) as the stream describes it, sent before its first change in a session
/// and again after it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Its OID.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Replica identity: `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Columns in table order (dropped and generated ones left out).
    pub columns: Vec<RelColumn>,
}

/// One column's value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cell {
    /// NULL.
    Null,
    /// A TOASTed value the change did not touch: not sent; the row keeps its value.
    Unchanged,
    /// The value in PostgreSQL's text form.
    Text(String),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A transaction begins; `final_lsn` is its commit's LSN.
    Begin {
        /// The commit's LSN.
        final_lsn: PgLsn,
        /// Commit time, microseconds since 2000-01-01.
        commit_time: i64,
        /// Transaction id.
        xid: u32,
    },
    /// A transaction commits.
    Commit {
        /// The commit's LSN.
        commit_lsn: PgLsn,
        /// The end of the commit record: where a reader resumes after this transaction.
        end_lsn: PgLsn,
        /// Commit time, microseconds since 2000-01-01.
        commit_time: i64,
    },
    /// A relation's description.
    Relation(Relation),
    /// A row inserted.
    Insert {
        /// Relation OID.
        rel: u32,
        /// The new row.
        new: Vec<Cell>,
    },
    /// A row updated; `old` is its key before (sent only when the key changed, or every column
    /// under replica identity full).
    Update {
        /// Relation OID.
        rel: u32,
        /// The old key (or old row), when sent.
        old: Option<Vec<Cell>>,
        /// The new row.
        new: Vec<Cell>,
    },
    /// A row deleted, given by its key (or its whole row under replica identity full).
    Delete {
        /// Relation OID.
        rel: u32,
        /// The old key or row.
        old: Vec<Cell>,
    },
    /// Tables truncated.
    Truncate {
        /// Relation OIDs.
        rels: Vec<u32>,
        /// CASCADE (1) and RESTART IDENTITY (2) bits.
        options: u8,
    },
    /// A message the apply does not need (origin, type, logical message).
    Other(u8),
}

/// Decodes one `pgoutput` message; `Err` says what was malformed.
pub fn decode(data: &[u8]) -> Result<Message, String> {
    let mut r = Reader { data, at: 0 };
    let tag = r.u8()?;
    let m = match tag {
        b'B' => Message::Begin {
            final_lsn: PgLsn(r.u64()?),
            commit_time: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            Message::Commit {
                commit_lsn: PgLsn(r.u64()?),
                end_lsn: PgLsn(r.u64()?),
                commit_time: r.i64()?,
            }
        }
        b'R' => {
            let oid = r.u32()?;
            let schema = r.string()?;
            let name = r.string()?;
            let replica_identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                columns.push(RelColumn {
                    key: r.u8()? & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_mod: r.i32()?,
                });
            }
            Message::Relation(Relation {
                oid,
                schema,
                name,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            let rel = r.u32()?;
            r.expect(b'N')?;
            Message::Insert {
                rel,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let rel = r.u32()?;
            let old = match r.peek()? {
                b'K' | b'O' => {
                    r.u8()?;
                    Some(r.tuple()?)
                }
                _ => None,
            };
            r.expect(b'N')?;
            Message::Update {
                rel,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let rel = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => {}
                other => return Err(format!("delete: expected K or O, found {other:#04x}")),
            }
            Message::Delete {
                rel,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            let options = r.u8()?;
            let mut rels = Vec::with_capacity(n as usize);
            for _ in 0..n {
                rels.push(r.u32()?);
            }
            Message::Truncate { rels, options }
        }
        b'O' | b'Y' | b'M' => Message::Other(tag),
        other => return Err(format!("unknown pgoutput message {other:#04x}")),
    };
    if matches!(m, Message::Other(_)) || r.at == data.len() {
        Ok(m)
    } else {
        Err(format!(
            "pgoutput message {:?}: {} bytes left over",
            tag as char,
            data.len() - r.at
        ))
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("pgoutput message ends early at byte {}", self.at))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn peek(&self) -> Result<u8, String> {
        self.data
            .get(self.at)
            .copied()
            .ok_or_else(|| format!("pgoutput message ends early at byte {}", self.at))
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn expect(&mut self, b: u8) -> Result<(), String> {
        match self.u8()? {
            x if x == b => Ok(()),
            x => Err(format!(
                "pgoutput: expected {:?} at byte {}, found {x:#04x}",
                b as char,
                self.at - 1
            )),
        }
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(self.u32()? as i32)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(self.u64()? as i64)
    }
    fn string(&mut self) -> Result<String, String> {
        let rest = &self.data[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("pgoutput: a name without its terminating NUL")?;
        let s = String::from_utf8(rest[..end].to_vec())
            .map_err(|_| "pgoutput: a name that is not UTF-8".to_string())?;
        self.at += end + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Cell>, String> {
        let n = self.u16()?;
        let mut cells = Vec::with_capacity(n as usize);
        for _ in 0..n {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    let bytes = self.take(len)?.to_vec();
                    Cell::Text(
                        String::from_utf8(bytes)
                            .map_err(|_| "pgoutput: a text value that is not UTF-8".to_string())?,
                    )
                }
                other => return Err(format!("pgoutput: unknown column kind {other:#04x}")),
            });
        }
        Ok(cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(cells: &[Option<&str>]) -> Vec<u8> {
        let mut b = (cells.len() as u16).to_be_bytes().to_vec();
        for c in cells {
            match c {
                None => b.push(b'n'),
                Some(s) => {
                    b.push(b't');
                    b.extend((s.len() as u32).to_be_bytes());
                    b.extend(s.as_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn messages_decode_and_malformed_ones_are_refused() {
        let mut rel = vec![b'R'];
        rel.extend(16384u32.to_be_bytes());
        rel.extend(b"public\0orders\0d");
        rel.extend(2u16.to_be_bytes());
        rel.extend([1u8]);
        rel.extend(b"id\0");
        rel.extend(23u32.to_be_bytes());
        rel.extend((-1i32).to_be_bytes());
        rel.extend([0u8]);
        rel.extend(b"note\0");
        rel.extend(25u32.to_be_bytes());
        rel.extend((-1i32).to_be_bytes());
        let Message::Relation(r) = decode(&rel).unwrap() else {
            panic!()
        };
        assert_eq!((r.schema.as_str(), r.name.as_str()), ("public", "orders"));
        assert!(r.columns[0].key && !r.columns[1].key);
        let mut ins = vec![b'I'];
        ins.extend(16384u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(tuple(&[Some("7"), None]));
        assert_eq!(
            decode(&ins).unwrap(),
            Message::Insert {
                rel: 16384,
                new: vec![Cell::Text("7".into()), Cell::Null]
            }
        );
        let mut upd = vec![b'U'];
        upd.extend(16384u32.to_be_bytes());
        upd.push(b'K');
        upd.extend(tuple(&[Some("7"), None]));
        upd.push(b'N');
        upd.extend(tuple(&[Some("8"), Some("x")]));
        let Message::Update { old: Some(old), .. } = decode(&upd).unwrap() else {
            panic!()
        };
        assert_eq!(old[0], Cell::Text("7".into()));
        assert!(decode(&ins[..ins.len() - 1]).is_err(), "truncated");
        let mut extra = ins.clone();
        extra.push(0);
        assert!(decode(&extra).is_err(), "left over bytes");
        assert!(decode(b"Z").is_err());
        assert_eq!(
            "16/B374D848".parse::<PgLsn>().unwrap().to_string(),
            "16/B374D848"
        );
        assert!("16-B3".parse::<PgLsn>().is_err());
    }
}
