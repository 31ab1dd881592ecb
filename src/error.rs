//! Errors, and the one place that decides retry-or-stop ([`Error::kind`]).
//!
//! Contract: messages name the table, column and key they concern, never a password or a row
//! value other than a key; `hint` says what the operator can do.

use std::fmt;

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A connection or server hiccup: retry with backoff; nothing is lost meanwhile.
    Transient,
    /// Something about one table (data, schema, retention): stop that table, keep the others.
    Table,
    /// Configuration, credentials, the state store: stop the daemon with the reason.
    Fatal,
}

/// A replicator error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQL Server said no, or the connection failed.
    #[error("source: {context}: {source}")]
    Source {
        /// What was being done (names the table where there is one).
        context: String,
        /// The driver's error.
        #[source]
        source: tiberius::error::Error,
    },
    /// PostgreSQL said no, or the connection failed.
    #[error("target: {context}: {}", pg_message(.source))]
    Target {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A table cannot go on as it is.
    #[error("table {table}: {message}")]
    Table {
        /// `schema.table` at the source.
        table: String,
        /// What is wrong (names the column and key where there is one).
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The checkpoint store.
    #[error("state store: {0}")]
    State(String),
    /// A part of the daemon's own state can no longer be used (a lock poisoned by a task that
    /// panicked while holding it, a closed semaphore): stop rather than go on unsure.
    #[error("internal: the daemon's {0} can no longer be used (a task panicked holding it)")]
    Poisoned(&'static str),
    /// One of the daemon's tasks panicked.
    #[error("internal: a {what} task panicked: {message}")]
    Panicked {
        /// Which task.
        what: &'static str,
        /// The panic, as the runtime reports it.
        message: String,
    },
    /// Anything else that must stop the daemon.
    #[error("{0}")]
    Fatal(String),
}

/// Whether an I/O error is in the error's cause chain.
fn io_caused(e: &tokio_postgres::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        if c.is::<std::io::Error>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// A PostgreSQL error's message with its detail, and the SQLSTATE. A detail that may hold row
/// values is left out: a data exception's (class 22: an XML parser's report quotes the value)
/// and a "Failing row contains (...)" (CHECK and NOT NULL violations print the whole row). A
/// key's (unique and foreign key violations) is kept: it names the row.
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let mut s = format!("{} (SQLSTATE {code})", db.message());
            if let Some(d) = db
                .detail()
                .filter(|d| !code.starts_with("22") && !d.starts_with("Failing row contains"))
            {
                s.push_str(": ");
                s.push_str(d);
            }
            s
        }
        None => {
            // tokio-postgres says "error performing TLS handshake"; the why is in its sources.
            let mut s = e.to_string();
            let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
            while let Some(c) = cur {
                let t = c.to_string();
                if !s.contains(&t) {
                    s.push_str(": ");
                    s.push_str(&t);
                }
                cur = c.source();
            }
            s
        }
    }
}

/// The TLS refusal (a certificate that does not verify) inside a PostgreSQL connection error.
fn pg_certificate_refused(e: &tokio_postgres::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        let inner = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .or_else(|| c.downcast_ref::<rustls::Error>());
        if matches!(
            inner,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The hint for a server certificate that does not verify.
const CERTIFICATE_HINT: &str = "the server's certificate was refused: set source.ca_file / \
     target.ca_file to the CA that signed it (or, for SQL Server only, \
     source.trust_server_certificate = true)";

/// SQL Server error numbers: retry, stop the table, or stop the daemon.
fn server_error_kind(code: u32) -> ErrorKind {
    match code {
        // deadlock victim, snapshot update conflict, Azure throttling/failover
        1205 | 3960 | 40613 | 40197 | 40501 | 49918 | 49919 | 49920 => ErrorKind::Transient,
        // login failed, cannot open database
        18456 | 18452 | 4060 => ErrorKind::Fatal,
        _ => ErrorKind::Table,
    }
}

/// PostgreSQL SQLSTATEs: retry, stop the table, or stop the daemon.
fn sqlstate_kind(code: &str) -> ErrorKind {
    let class = code.get(..2).unwrap_or("");
    // connection exception, operator intervention (shutdown), insufficient resources,
    // serialization failure, deadlock
    if matches!(class, "08" | "57" | "53") || code == "40001" || code == "40P01" {
        ErrorKind::Transient
    // invalid authorization, database missing, insufficient privilege
    } else if class == "28" || code == "3D000" || code == "42501" {
        ErrorKind::Fatal
    } else {
        ErrorKind::Table
    }
}

/// What to do about an error and what the operator can do about it, decided together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Retry, stop the table, or stop the daemon.
    pub kind: ErrorKind,
    /// What the operator can do, when something can be said.
    pub hint: Option<String>,
}

impl Error {
    /// Retry, stop the table, or stop the daemon, and the hint, from the error's typed parts
    /// (driver variants, SQL Server error numbers, SQLSTATEs; never its message). The only place
    /// that decides either.
    pub fn policy(&self) -> Policy {
        let (kind, hint): (ErrorKind, Option<String>) = match self {
            Error::Source { source, .. } => match source {
                tiberius::error::Error::Server(e) => (
                    server_error_kind(e.code()),
                    (e.code() == 18456).then(|| {
                        "check source.user and the password it is given (the password is never shown)"
                            .into()
                    }),
                ),
                // A certificate that does not verify will not verify on the next try either
                // (tiberius gives the TLS failure as text only).
                tiberius::error::Error::Tls(m) if m.to_lowercase().contains("certificate") => {
                    (ErrorKind::Fatal, Some(CERTIFICATE_HINT.into()))
                }
                tiberius::error::Error::Io { .. }
                | tiberius::error::Error::Tls(_)
                | tiberius::error::Error::Routing { .. }
                | tiberius::error::Error::Protocol(_) => (
                    ErrorKind::Transient,
                    Some("is SQL Server reachable from here? retrying with backoff".into()),
                ),
                _ => (ErrorKind::Table, None),
            },
            Error::Target { source, .. } => {
                let kind = match source.code() {
                    Some(code) => sqlstate_kind(code.code()),
                    // No SQLSTATE: a refused certificate is fatal; the connection (closed,
                    // refused, reset) is transient; anything else (a value that cannot be
                    // encoded) is not.
                    None if pg_certificate_refused(source) => ErrorKind::Fatal,
                    None if source.is_closed() || io_caused(source) => ErrorKind::Transient,
                    None => ErrorKind::Table,
                };
                let hint = if source.code().is_some_and(|c| c.code().starts_with("28")) {
                    Some("check the user in target.url and target.password_env/password_file".into())
                } else if source.code().is_none() && pg_certificate_refused(source) {
                    Some(CERTIFICATE_HINT.into())
                } else if kind == ErrorKind::Transient {
                    Some("is PostgreSQL reachable from here? retrying with backoff".into())
                } else {
                    None
                };
                (kind, hint)
            }
            Error::Table { hint, .. } => (ErrorKind::Table, hint.clone()),
            Error::Config(_)
            | Error::State(_)
            | Error::Poisoned(_)
            | Error::Panicked { .. }
            | Error::Fatal(_) => (ErrorKind::Fatal, None),
        };
        Policy { kind, hint }
    }

    /// Retry, stop the table, or stop the daemon ([`Error::policy`]).
    pub fn kind(&self) -> ErrorKind {
        self.policy().kind
    }

    /// What the operator can do, when something can be said ([`Error::policy`]).
    pub fn hint(&self) -> Option<String> {
        self.policy().hint
    }

    /// A task that panicked (`e` from awaiting its handle).
    pub fn panicked(what: &'static str, e: impl fmt::Display) -> Error {
        Error::Panicked {
            what,
            message: e.to_string(),
        }
    }

    /// A table error.
    pub fn table(
        table: impl fmt::Display,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> Error {
        Error::Table {
            table: table.to_string(),
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }
}

/// Adds context to driver errors.
pub trait Context<T> {
    /// Wraps the error with what was being done.
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, tiberius::error::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Source {
            context: what(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, tokio_postgres::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Target {
            context: what(),
            source,
        })
    }
}

/// Exponential backoff with full jitter: 200 ms doubling to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    max: std::time::Duration,
}

impl Backoff {
    /// A fresh backoff capped at `max`.
    pub fn new(max: std::time::Duration) -> Backoff {
        Backoff { attempt: 0, max }
    }

    /// The next delay (random in [base/2, base], base doubling up to `max`).
    pub fn next_delay(&mut self) -> std::time::Duration {
        let base = std::time::Duration::from_millis(200)
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt += 1;
        let half = base / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn sql_server_error_numbers_decide_retry_or_stop() {
        for (code, kind) in [
            (1205, ErrorKind::Transient),
            (3960, ErrorKind::Transient),
            (40613, ErrorKind::Transient),
            (40197, ErrorKind::Transient),
            (40501, ErrorKind::Transient),
            (49918, ErrorKind::Transient),
            (49919, ErrorKind::Transient),
            (49920, ErrorKind::Transient),
            (18456, ErrorKind::Fatal),
            (18452, ErrorKind::Fatal),
            (4060, ErrorKind::Fatal),
            (8152, ErrorKind::Table),
            (208, ErrorKind::Table),
        ] {
            assert_eq!(server_error_kind(code), kind, "error {code}");
        }
    }

    #[test]
    fn sqlstates_decide_retry_or_stop() {
        for (code, kind) in [
            ("08006", ErrorKind::Transient),
            ("08001", ErrorKind::Transient),
            ("57P01", ErrorKind::Transient),
            ("53300", ErrorKind::Transient),
            ("40001", ErrorKind::Transient),
            ("40P01", ErrorKind::Transient),
            ("28P01", ErrorKind::Fatal),
            ("28000", ErrorKind::Fatal),
            ("3D000", ErrorKind::Fatal),
            ("42501", ErrorKind::Fatal),
            ("23505", ErrorKind::Table),
            ("22021", ErrorKind::Table),
            ("42P01", ErrorKind::Table),
            ("", ErrorKind::Table),
        ] {
            assert_eq!(sqlstate_kind(code), kind, "SQLSTATE {code}");
        }
    }

    #[test]
    fn every_constructible_variant_has_its_policy() {
        let source = |e: tiberius::error::Error| Error::Source {
            context: "read dbo.t".into(),
            source: e,
        };
        let reachable =
            Some("is SQL Server reachable from here? retrying with backoff".to_string());
        for (e, kind, hint) in [
            (
                source(tiberius::error::Error::Io {
                    kind: std::io::ErrorKind::ConnectionReset,
                    message: "reset".into(),
                }),
                ErrorKind::Transient,
                reachable.clone(),
            ),
            (
                source(tiberius::error::Error::Protocol(Cow::Borrowed(
                    "bad packet",
                ))),
                ErrorKind::Transient,
                reachable.clone(),
            ),
            (
                source(tiberius::error::Error::Tls("handshake eof".into())),
                ErrorKind::Transient,
                reachable,
            ),
            (
                source(tiberius::error::Error::Tls(
                    "invalid peer certificate: UnknownIssuer".into(),
                )),
                ErrorKind::Fatal,
                Some(CERTIFICATE_HINT.to_string()),
            ),
            (
                source(tiberius::error::Error::Conversion(Cow::Borrowed(
                    "not a number",
                ))),
                ErrorKind::Table,
                None,
            ),
            (
                Error::table(
                    "dbo.t",
                    "column c: type geography",
                    Some("map it in [[tables]]"),
                ),
                ErrorKind::Table,
                Some("map it in [[tables]]".to_string()),
            ),
            (Error::table("dbo.t", "gone", None), ErrorKind::Table, None),
            (Error::State("corrupt".into()), ErrorKind::Fatal, None),
            (Error::Fatal("stop".into()), ErrorKind::Fatal, None),
            (Error::Poisoned("tables"), ErrorKind::Fatal, None),
            (Error::panicked("snapshot", "boom"), ErrorKind::Fatal, None),
        ] {
            assert_eq!(e.policy(), Policy { kind, hint }, "{e}");
        }
    }
}
