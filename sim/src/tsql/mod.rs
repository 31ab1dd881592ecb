//! T-SQL: parsing batches and rewriting statements onto PostgreSQL.

pub mod parse;
pub mod rewrite;
