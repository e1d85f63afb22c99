//! TLS for the HTTP listener: a certificate and key from files (`[http] tls_cert`/`tls_key`),
//! or a self-signed one generated on first start and kept in `DATA_DIR/.cairn/tls/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated once, kept under the data directory.
    SelfSigned,
}

/// The rustls server configuration (ALPN: HTTP/2, then HTTP/1.1), and when the certificate
/// expires (seconds since the Unix epoch; `None` if it cannot be read from the certificate).
pub fn server_config(
    source: &TlsSource,
    data_dir: &Path,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Option<i64>)> {
    let (cert, key) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned => self_signed(&data_dir.join(".cairn/tls"))?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    let expiry = match certs.first().map(|c| x509_parser::parse_x509_certificate(c)) {
        Some(Ok((_, parsed))) => Some(parsed.validity().not_after.timestamp()),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "reading the certificate's expiry");
            None
        }
        None => None,
    };
    let key =
        PrivateKeyDer::from_pem_file(&key).with_context(|| format!("reading TLS key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), expiry))
}

fn self_signed(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if !host.is_empty() {
        names.push(host);
    }
    let generated =
        rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    crate::write_private(&key, &generated.signing_key.serialize_pem())?;
    crate::write_private(&cert, &generated.cert.pem())?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok((cert, key))
}
