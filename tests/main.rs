//! Integration tests: the replicator against the simulator (TCP) and a throwaway PostgreSQL.

mod common;
mod kill;
mod snapshot;
mod stream;
