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

/// A PostgreSQL error's message with its detail, and the SQLSTATE.
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
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

impl Error {
    /// Retry, stop the table, or stop the daemon. The only place that decides it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Source { source, .. } => match source {
                tiberius::error::Error::Server(e) => match e.code() {
                    // deadlock victim, snapshot update conflict, Azure throttling/failover
                    1205 | 3960 | 40613 | 40197 | 40501 | 49918 | 49919 | 49920 => {
                        ErrorKind::Transient
                    }
                    // login failed, cannot open database
                    18456 | 18452 | 4060 => ErrorKind::Fatal,
                    _ => ErrorKind::Table,
                },
                // A certificate that does not verify will not verify on the next try either.
                tiberius::error::Error::Tls(m) if m.to_lowercase().contains("certificate") => {
                    ErrorKind::Fatal
                }
                tiberius::error::Error::Io { .. }
                | tiberius::error::Error::Tls(_)
                | tiberius::error::Error::Routing { .. }
                | tiberius::error::Error::Protocol(_) => ErrorKind::Transient,
                _ => ErrorKind::Table,
            },
            Error::Target { source, .. } => match source.code() {
                Some(code) => {
                    let c = code.code();
                    if c.starts_with("08")
                        || c.starts_with("57")
                        || c.starts_with("53")
                        || c == "40001"
                        || c == "40P01"
                    {
                        ErrorKind::Transient
                    } else if c.starts_with("28") || c == "3D000" || c == "42501" {
                        ErrorKind::Fatal
                    } else {
                        ErrorKind::Table
                    }
                }
                // No SQLSTATE: a refused certificate is fatal; the connection (closed, refused,
                // reset) is transient; anything else (a value that cannot be encoded) is not.
                None if pg_certificate_refused(source) => ErrorKind::Fatal,
                None if source.is_closed() || io_caused(source) => ErrorKind::Transient,
                None => ErrorKind::Table,
            },
            Error::Table { .. } => ErrorKind::Table,
            Error::Config(_) | Error::State(_) | Error::Fatal(_) => ErrorKind::Fatal,
        }
    }

    /// What the operator can do, when something can be said.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Table { hint, .. } => hint.clone(),
            Error::Source {
                source: tiberius::error::Error::Server(e),
                ..
            } if e.code() == 18456 => Some(
                "check source.user and the password it is given (the password is never shown)"
                    .into(),
            ),
            Error::Target { source, .. }
                if source.code().is_some_and(|c| c.code().starts_with("28")) =>
            {
                Some("check the user in target.url and target.password_env/password_file".into())
            }
            Error::Source {
                source: tiberius::error::Error::Tls(_),
                ..
            }
            | Error::Target { .. }
                if self.kind() == ErrorKind::Fatal && self.to_string().contains("certificate") =>
            {
                Some(CERTIFICATE_HINT.into())
            }
            Error::Source { .. } if self.kind() == ErrorKind::Transient => {
                Some("is SQL Server reachable from here? retrying with backoff".into())
            }
            Error::Target { .. } if self.kind() == ErrorKind::Transient => {
                Some("is PostgreSQL reachable from here? retrying with backoff".into())
            }
            _ => None,
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
