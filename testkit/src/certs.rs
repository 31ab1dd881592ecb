//! Test certificates: a throwaway CA and a server certificate for `localhost` and `127.0.0.1`
//! signed by it, written as PEM files (rcgen; nothing is fetched or trusted system-wide).

use std::path::{Path, PathBuf};

/// PEM files of one test CA and one server certificate it signed.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate (what a client trusts).
    pub ca_pem: PathBuf,
    /// The server certificate (leaf).
    pub cert_pem: PathBuf,
    /// The server's private key (PKCS#8).
    pub key_pem: PathBuf,
}

impl TestCerts {
    /// Generates a CA named after `label` and a server certificate for `localhost` and
    /// `127.0.0.1` into `dir` (created if missing).
    pub fn generate(dir: &Path, label: &str) -> Result<TestCerts, String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let e = |e: rcgen::Error| format!("generate test certificates: {e}");
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("replicator test CA ({label})"));
        let ca_key = KeyPair::generate().map_err(e)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .map_err(e)?;
        leaf.distinguished_name
            .push(DnType::CommonName, format!("{label} test server"));
        let key = KeyPair::generate().map_err(e)?;
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(e)?;
        let certs = TestCerts {
            ca_pem: dir.join(format!("{label}-ca.pem")),
            cert_pem: dir.join(format!("{label}-server.pem")),
            key_pem: dir.join(format!("{label}-server.key")),
        };
        for (path, text) in [
            (&certs.ca_pem, ca_cert.pem()),
            (&certs.cert_pem, cert.pem()),
            (&certs.key_pem, key.serialize_pem()),
        ] {
            std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        }
        Ok(certs)
    }
}
