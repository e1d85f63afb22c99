//! Trusting one server certificate by its SHA-256 fingerprint: how `cairn` talks to a server with
//! a self-signed certificate (the one `scripts/run.sh` makes and prints the fingerprint of)
//! without trusting anything else. The fingerprint is given once to `cairn login` and kept.

use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// A fingerprint as people compare it: `AB:CD:…`, 32 bytes.
pub fn show(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Parse a fingerprint, with or without colons.
pub fn parse(raw: &str) -> anyhow::Result<[u8; 32]> {
    let clean: String = raw.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    hex::decode(&clean)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("a SHA-256 fingerprint is 64 hex digits (colons allowed): {raw}"))
}

/// Accepts exactly the certificate whose fingerprint it holds; remembers the one it was shown.
#[derive(Debug)]
pub struct Pinned {
    want: Option<[u8; 32]>,
    pub seen: Mutex<Option<[u8; 32]>>,
    algs: WebPkiSupportedAlgorithms,
}

impl Pinned {
    /// `None`: accept nothing, only note what was presented (to tell the user).
    pub fn new(want: Option<[u8; 32]>) -> Arc<Pinned> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        Arc::new(Pinned { want, seen: Mutex::new(None), algs })
    }

    /// A TLS configuration trusting this pin only (HTTP/2 or HTTP/1.1).
    pub fn config(self: &Arc<Self>) -> rustls::ClientConfig {
        self.config_alpn(&[b"h2", b"http/1.1"])
    }

    /// [`Pinned::config`] offering only these protocols (a WebSocket needs HTTP/1.1).
    pub fn config_alpn(self: &Arc<Self>, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the default versions")
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        cfg
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(got);
        match self.want {
            Some(w) if w == got => Ok(ServerCertVerified::assertion()),
            _ => Err(rustls::Error::General(format!(
                "the server's certificate has fingerprint {}",
                show(&got)
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}
