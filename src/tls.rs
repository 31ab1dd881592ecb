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

use crate::config::{PgSslMode, TargetConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

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
