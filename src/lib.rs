//! `replicator`: migrates a live SQL Server database into PostgreSQL with almost no downtime.
//!
//! One module per component of `../shared/DESIGN.md`. So far: [`config`].

pub mod config;
