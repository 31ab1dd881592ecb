//! `mssql-sim`: a SQL Server simulator for tests, demos and benchmarks.
//!
//! It speaks TDS 7.4 (plaintext), executes T-SQL by rewriting it onto a PostgreSQL database, keeps
//! a catalog of declared T-SQL types so that metadata and values are SQL Server's, and implements
//! Change Tracking and CDC. Each TDS session owns one PostgreSQL connection.

pub mod catalog;
pub mod error;
pub mod instance;
pub mod script;
pub mod server;
pub mod session;
pub mod tds;
pub mod tsql;
pub mod types;
pub mod value;
pub mod workload;
