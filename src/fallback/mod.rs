//! The way back after cutover: PostgreSQL's changes read by logical decoding and applied to SQL
//! Server, until the user rolls back or stops the fallback.
//!
//! The decoder of `pgoutput` messages ([`decode`]), the slot and publication on the target
//! ([`slot`]), a window's net effect per key ([`net`]), values back into T-SQL literals of the
//! source's types ([`inverse`]; a sql_variant kept as jsonb: [`variant`]), the window applied
//! set-based ([`apply`], each table's statements: [`statements`]), a table stopped alone
//! ([`parked`]) and the children whose rows wait for it ([`blocked`]), columns added on
//! PostgreSQL ([`added`]), the loop ([`stream`]), and the keys rollback compares inside its
//! window ([`delta`]).

pub mod added;
pub mod apply;
pub mod blocked;
pub mod decode;
pub mod delta;
pub mod inverse;
pub mod net;
pub mod parked;
pub mod slot;
pub mod statements;
pub mod stream;
pub mod variant;
