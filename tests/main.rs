//! Integration tests: the replicator against the simulator (TCP) and a throwaway PostgreSQL.

mod cdc_nulls;
mod common;
mod connect;
mod cutover;
mod cutover_proof;
mod decoder;
mod docker;
mod fallback;
mod kill;
mod layers;
mod ops;
mod realdata;
mod restart;
mod schema;
mod snapshot;
mod stream;
mod validate;
