//! TLS for DNS Push, both ends: rustls with the ring provider, TLS 1.2 and 1.3.
//!
//! * The server's certificate chain and key come from PEM files and are read again on
//!   SIGHUP ([`ServerTls::reload`]); a session keeps the configuration it started with.
//! * With a client CA, clients must present a certificate that chains to it; their
//!   identity for the per-name ACL is a DNS name (or IP address) the certificate is valid
//!   for ([`certificate_names_match`]).
//! * The client verifies the server against `--ca FILE` or the system's roots.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Where Debian keeps the system's trusted roots.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {message}")]
    Read {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{path} holds no {what}")]
    Empty { what: &'static str, path: PathBuf },
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// Selects the ring provider once per process (aws-lc-rs is not built).
pub fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is then used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The files of a TLS server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by one of these CAs.
    pub client_ca: Option<PathBuf>,
}

/// A server configuration that SIGHUP can replace.
pub struct ServerTls {
    files: ServerFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    pub fn load(files: ServerFiles) -> Result<ServerTls, TlsError> {
        let config = server_config(&files)?;
        Ok(ServerTls {
            files,
            current: RwLock::new(config),
        })
    }

    /// The configuration new sessions use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the files again; on error the old configuration stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        Ok(())
    }

    pub fn files(&self) -> &ServerFiles {
        &self.files
    }
}

fn server_config(files: &ServerFiles) -> Result<Arc<ServerConfig>, TlsError> {
    install_provider();
    let chain = read_certs("certificate", &files.cert)?;
    let key = read_key(&files.key)?;
    let builder = ServerConfig::builder();
    let builder = match &files.client_ca {
        Some(ca) => {
            let roots = Arc::new(read_roots("client CA", ca)?);
            let verifier = WebPkiClientVerifier::builder(roots)
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::Rustls(format!(
            "{} and {}: {e}",
            files.cert.display(),
            files.key.display()
        ))
    })?;
    Ok(Arc::new(config))
}

/// How a client checks the server.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsOptions {
    /// Trust only these CAs; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// Accept any server certificate (only when asked for).
    pub insecure: bool,
    /// A client certificate and key, for servers that require one.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// A client configuration for the given options.
pub fn client_config(options: &ClientTlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    install_provider();
    let builder = ClientConfig::builder();
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnything::new()))
    } else {
        let roots = match &options.ca {
            Some(ca) => read_roots("CA", ca)?,
            None => read_roots("system roots", Path::new(SYSTEM_ROOTS))?,
        };
        builder.with_root_certificates(roots)
    };
    let config = match &options.identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs("certificate", cert)?, read_key(key)?)
            .map_err(|e| TlsError::Rustls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Whether the certificate is valid for `name` (a DNS name or an IP address).
pub fn certificate_names_match(cert: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(subject) = ServerName::try_from(name.trim_end_matches('.')) else {
        return false;
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&subject).is_ok()
}

fn read_error(what: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Read {
        what,
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(what, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what: "PEM certificate",
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| read_error("private key", path, e))
}

fn read_roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(what, path)? {
        roots.add(cert).map_err(|e| read_error(what, path, e))?;
    }
    Ok(roots)
}

/// Writes a self-signed certificate for `names` and its key as `cert.pem` and `key.pem`
/// in `dir`, unless both exist. Returns their paths.
pub fn ensure_self_signed(dir: &Path, names: &[&str]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::Rustls(format!("generating a certificate: {e}")))?;
    std::fs::write(&cert_path, generated.cert.pem())
        .map_err(|e| read_error("certificate", &cert_path, e))?;
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())
        .map_err(|e| read_error("private key", &key_path, e))?;
    Ok((cert_path, key_path))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

mod insecure {
    //! `--insecure`: a verifier that accepts every server certificate but still checks
    //! the handshake signatures.

    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    pub struct AcceptAnything(CryptoProvider);

    impl AcceptAnything {
        pub fn new() -> Self {
            AcceptAnything(rustls::crypto::ring::default_provider())
        }
    }

    impl ServerCertVerifier for AcceptAnything {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
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
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
