#!/usr/bin/env bash
# The demo on a fresh Debian/Ubuntu machine with Rust: installs PostgreSQL's server binaries when
# initdb is missing, builds `replicator-demo` (the replicator's library with the simulator; the
# product binary links neither) and runs it (a throwaway PostgreSQL cluster, the SQL Server
# simulator with a sample database, snapshot, live changes, cutover). Options pass through:
# `bash scripts/demo.sh --rows 300000`, `--pg-url postgres://...`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "demo: installing the PostgreSQL server (initdb is missing)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
cargo build --release -p replicator-demo
exec ./target/release/replicator-demo "$@"
