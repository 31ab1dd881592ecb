//! The way back after cutover: PostgreSQL's changes read by logical decoding and applied to SQL
//! Server, until the user rolls back or stops the fallback.
//!
//! Built so far: the decoder of `pgoutput` messages ([`decode`]) and the slot and publication
//! on the target ([`slot`]).

pub mod decode;
pub mod slot;
