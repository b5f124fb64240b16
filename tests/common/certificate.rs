//! A CA and a server certificate for 127.0.0.1 signed by it, made with openssl for each
//! test run, for tests of TLS with HTTP/2. Used through `#[path]`.
#![allow(dead_code)]

use crate::common::temp_dir;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A CA and a server certificate for 127.0.0.1 signed by it, made with openssl.
pub struct Certificate {
    dir: PathBuf,
}

impl Certificate {
    /// Makes the CA and the certificate in a fresh directory named after `tag`.
    pub fn new(tag: &str) -> Certificate {
        let dir = temp_dir(tag);
        let run = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl is installed by scripts/install-test-deps.sh");
            assert!(output.status.success(), "openssl {args:?}");
        };
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=h2 test ca",
        ]);
        run(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        run(&csr);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        Certificate { dir }
    }

    /// A file of the set: `ca.pem`, `server.pem`, `server.key`.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The daemon's TLS flags.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--ssl".to_string(),
            format!("--sslcert={}", self.path("server.pem")),
            format!("--sslkey={}", self.path("server.key")),
        ]
    }

    /// A client that trusts the CA and offers `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.dir.join("ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}
