//! Integration tests: the replicator against the simulator (TCP) and a throwaway PostgreSQL.

mod common;
mod cutover;
mod kill;
mod ops;
mod snapshot;
mod stream;
mod tls;
mod validate;
