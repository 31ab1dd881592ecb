//! `replicator`: migrates a live SQL Server database into PostgreSQL with almost no downtime.
//!
//! One module per component of docs/design.md: [`config`], [`source`], [`model`],
//! [`convert`], [`sink`], [`state`], [`daemon`], [`cli`]; plus [`error`] (retry-or-stop in one
//! place) and [`tls`].

pub mod assess;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod convert;
pub mod cutover;
pub mod daemon;
pub mod error;
pub mod fallback;
pub mod key;
pub mod metrics;
pub mod model;
pub mod serve;
pub mod sink;
pub mod source;
pub mod state;
pub mod tls;
pub mod validate;
