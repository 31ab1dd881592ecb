//! TLS to PostgreSQL (rustls through tokio-postgres-rustls), with libpq's `sslmode` semantics.
//! SQL Server's TLS is configured in [`crate::source::connect`] (tiberius with rustls).
//!
//! Contract, per `sslmode` in `target.url` (libpq's default is `prefer`):
//! - `disable`: plaintext.
//! - `prefer`: TLS when the server offers it, plaintext otherwise; `require`: TLS or fail. Both
//!   encrypt without checking the certificate unless a CA is given (`target.ca_file` or
//!   `sslrootcert`), in which case they check it as `verify-ca` does, as libpq does.
//! - `verify-ca`: the certificate chains to the CA; `verify-full`: and names the host.
//!   Without a CA file the system's roots are used.
//!
//! A failed check is an error naming the host; nothing is ever downgraded to plaintext except
//! by `prefer` when the server offers no TLS at all.

use crate::config::TargetConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

/// libpq's `sslmode` values that the replicator honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgSslMode {
    /// Plaintext only.
    Disable,
    /// TLS when offered.
    #[default]
    Prefer,
    /// TLS, certificate not checked (unless a CA is given).
    Require,
    /// TLS, certificate chains to the CA.
    VerifyCa,
    /// TLS, certificate chains to the CA and names the host.
    VerifyFull,
}

impl PgSslMode {
    fn parse(s: &str) -> Result<PgSslMode, String> {
        Ok(match s {
            "disable" => PgSslMode::Disable,
            "prefer" => PgSslMode::Prefer,
            "require" => PgSslMode::Require,
            "verify-ca" => PgSslMode::VerifyCa,
            "verify-full" => PgSslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow is not supported: use prefer, require, verify-ca or verify-full"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            ))
            }
        })
    }
}

/// `target.url` without `sslmode` and `sslrootcert` (tokio-postgres knows neither verify mode),
/// and the two values. Works on URLs and on `key=value` connection strings.
pub fn split_ssl_options(url: &str) -> Result<(String, PgSslMode, Option<PathBuf>), String> {
    let mut mode = None;
    let mut rootcert = None;
    let mut take = |key: &str, value: String| -> Result<bool, String> {
        match key {
            "sslmode" => mode = Some(PgSslMode::parse(&value)?),
            "sslrootcert" => rootcert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let cleaned = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, percent_decode(v))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for part in url.split_whitespace() {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if !take(k.trim(), v.trim_matches('\'').to_string())? {
                kept.push(part);
            }
        }
        kept.join(" ")
    };
    Ok((cleaned, mode.unwrap_or_default(), rootcert))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connection task of a client, whichever transport it uses.
pub type ConnectionTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Connects as `cfg.ssl_mode` says; returns the client and the connection task to spawn.
pub async fn connect_pg(
    pg: &tokio_postgres::Config,
    cfg: &TargetConfig,
) -> Result<(Client, ConnectionTask), ConnectPgError> {
    let mut pg = pg.clone();
    if cfg.ssl_mode == PgSslMode::Disable {
        pg.ssl_mode(SslMode::Disable);
        let (client, conn) = pg.connect(NoTls).await?;
        return Ok((client, Box::pin(log_end(conn))));
    }
    pg.ssl_mode(match cfg.ssl_mode {
        PgSslMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    let tls = client_config(cfg.ssl_mode, cfg.ca_file.as_deref()).map_err(ConnectPgError::Tls)?;
    let (client, conn) = pg
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        .await?;
    Ok((client, Box::pin(log_end(conn))))
}

async fn log_end<F: Future<Output = Result<(), tokio_postgres::Error>>>(conn: F) {
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "postgresql connection ended");
    }
}

/// Why a PostgreSQL connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectPgError {
    /// The server or the network said no.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// The TLS settings could not be built (CA file unreadable or empty).
    #[error("{0}")]
    Tls(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The CA file's certificates, or the system's roots without one.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("target.ca_file {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "target.ca_file {}: no usable certificate in the file",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no CA to verify PostgreSQL's certificate with: set target.ca_file (the system has no root certificates)".into());
            }
        }
    }
    Ok(roots)
}

/// The rustls client configuration for `mode`.
pub fn client_config(
    mode: PgSslMode,
    ca_file: Option<&Path>,
) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let verify_ca = |roots: RootCertStore| -> Result<Arc<dyn ServerCertVerifier>, String> {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("TLS setup: {e}"))?;
        Ok(Arc::new(ChainOnly(inner)))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, ca_file) {
        (PgSslMode::VerifyFull, _) => {
            return Ok(builder
                .with_root_certificates(roots(ca_file)?)
                .with_no_client_auth())
        }
        (PgSslMode::VerifyCa, _) | (PgSslMode::Prefer | PgSslMode::Require, Some(_)) => {
            verify_ca(roots(ca_file)?)?
        }
        _ => Arc::new(EncryptOnly(provider.clone())),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` / `require` without a CA: the traffic is encrypted, the certificate not checked
/// (libpq's behaviour); the handshake signatures still are.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_rootcert_leave_the_url_and_others_stay() {
        let (u, m, r) = split_ssl_options(
            "postgres://u@h:5/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(u, "postgres://u@h:5/db?application_name=x");
        assert_eq!(m, PgSslMode::VerifyFull);
        assert_eq!(r, Some(PathBuf::from("/etc/ca.pem")));
        let (u, m, r) = split_ssl_options("host=h user=u sslmode=verify-ca dbname=d").unwrap();
        assert_eq!(
            (u.as_str(), m, r),
            ("host=h user=u dbname=d", PgSslMode::VerifyCa, None)
        );
        let (u, m, _) = split_ssl_options("postgres://u@h/db").unwrap();
        assert_eq!((u.as_str(), m), ("postgres://u@h/db", PgSslMode::Prefer));
        assert!(split_ssl_options("postgres://u@h/db?sslmode=allow")
            .unwrap_err()
            .contains("allow"));
        assert!(split_ssl_options("postgres://u@h/db?sslmode=bogus")
            .unwrap_err()
            .contains("bogus"));
    }
}
