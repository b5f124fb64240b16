//! TLS for every listener (`--ssl`): certificate chain and key from PEM files, TLS 1.2 and
//! 1.3 only, and with `--sslca` a client certificate that must verify against those CAs.
//! The files are read again on SIGHUP; each new connection takes the configuration current
//! when it arrives, so connections already open keep theirs.

use crate::config::TlsFiles;
use crate::logging::{self, Level};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use tokio_rustls::TlsAcceptor;

/// The TLS files and the acceptor built from them, replaced as a whole on reload.
pub struct Certificates {
    files: TlsFiles,
    /// Whether ALPN offers `h2`.
    http2: bool,
    current: RwLock<TlsAcceptor>,
}

impl Certificates {
    /// Reads the files named by `--sslcert`, `--sslkey` and `--sslca`; ALPN offers `h2`
    /// (before `http/1.1`) when `http2` is on.
    pub fn load(files: &TlsFiles, http2: bool) -> Result<Certificates, String> {
        let acceptor = acceptor(&files.cert, &files.key, files.ca.as_deref(), http2)?;
        Ok(Certificates {
            files: files.clone(),
            http2,
            current: RwLock::new(acceptor),
        })
    }

    /// The acceptor for a connection arriving now.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the files again. On any error the acceptor in use stays and the error, naming
    /// the file, is returned.
    pub fn reload(&self) -> Result<(), String> {
        let files = &self.files;
        let fresh = acceptor(&files.cert, &files.key, files.ca.as_deref(), self.http2)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The files, for log lines.
    pub fn describe(&self) -> String {
        let files = &self.files;
        let mut text = format!("{}, {}", files.cert.display(), files.key.display());
        if let Some(ca) = &files.ca {
            text.push_str(&format!(", {}", ca.display()));
        }
        text
    }
}

/// SIGHUP re-reads the TLS files; the certificate in use stays when they are unusable.
pub async fn reload_on_hangup(
    certificates: Option<Arc<Certificates>>,
    notifier: Option<Arc<super::systemd::Notifier>>,
) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangup.recv().await.is_some() {
        let Some(certificates) = &certificates else {
            logging::server(Level::Info, "SIGHUP: no TLS certificate to reload");
            continue;
        };
        if let Some(notifier) = &notifier {
            notifier.reloading();
        }
        match certificates.reload() {
            Ok(()) => logging::server(
                Level::Info,
                &format!("SIGHUP: reloaded TLS files ({})", certificates.describe()),
            ),
            Err(message) => logging::server(
                Level::Error,
                &format!("SIGHUP: keeping the current TLS certificate: {message}"),
            ),
        }
        if let Some(notifier) = &notifier {
            notifier.ready();
        }
    }
}

/// Builds an acceptor from the PEM files named on the command line, offering `h2` by ALPN
/// when `http2` is on. The error names the file and the cause, for the `Can't start
/// server:` line.
fn acceptor(
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
    http2: bool,
) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates(cert)?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|err| pem_error(key, "private key", err))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|err| format!("TLS setup failed: {err}"))?;
    let builder = match ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(ca)? {
                roots
                    .add(certificate)
                    .map_err(|err| format!("{}: unusable CA certificate: {err}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| format!("{}: {err}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|err| {
        format!(
            "{}: certificate and key do not fit together: {err}",
            cert.display()
        )
    })?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    // One resumption ticket per connection is enough for a client; each costs an
    // encryption and a record on every handshake.
    config.send_tls13_tickets = 1;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| pem_error(path, "certificate", err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(path, "certificate", err))?;
    if certificates.is_empty() {
        return Err(format!(
            "{}: no certificate found in PEM file",
            path.display()
        ));
    }
    Ok(certificates)
}

fn pem_error(path: &Path, what: &str, err: rustls::pki_types::pem::Error) -> String {
    match err {
        rustls::pki_types::pem::Error::Io(io) => {
            format!(
                "open {}: {}",
                path.display(),
                super::listen::go_error_text(&io)
            )
        }
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!("{}: no {what} found in PEM file", path.display())
        }
        other => format!("{}: invalid PEM {what}: {other}", path.display()),
    }
}
