//! The way back after cutover: PostgreSQL's changes read by logical decoding and applied to SQL
//! Server, until the user rolls back or stops the fallback.
//!
//! Built so far: the decoder of `pgoutput` messages ([`decode`]), the slot and publication on
//! the target ([`slot`]), a window's net effect per key ([`net`]) and values back into T-SQL
//! literals of the source's types ([`inverse`]).

pub mod added;
pub mod apply;
pub mod decode;
pub mod delta;
pub mod inverse;
pub mod net;
pub mod slot;
pub mod stream;
