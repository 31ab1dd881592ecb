//! Integration tests of the simulator through TCP: tiberius, FreeTDS `tsql` and python-tds.

mod cdc;
mod change_tracking;
mod common;
mod external;
mod ntlm;
mod protocol;
mod realdata;
mod tiberius_basics;
mod tiberius_types;
mod tls;
mod tsql_surface;
mod workload;
