//! `wss://`: the client side of TLS, and the stream type every connection uses, plain or
//! encrypted.
//!
//! The only trusted root is the CA named with `--ca`. Session resumption is off, so every
//! connection costs the server a full handshake (the worst case, and the same for every
//! server measured).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::util::Error;

/// What a `wss://` connection needs besides the address.
#[derive(Clone)]
pub struct Tls {
    pub connector: TlsConnector,
    pub name: ServerName<'static>,
}

impl Tls {
    /// A client that trusts only the certificates in the PEM file `ca`, expects the
    /// server's certificate to be valid for `host` (a DNS name or an IP address) and offers
    /// the ALPN protocols `alpn` (none: no ALPN extension).
    pub fn new(ca: &str, host: &str, alpn: &[&[u8]]) -> Result<Tls, Error> {
        let in_ca = |e: &dyn std::fmt::Display| Error::new(format!("--ca {ca}: {e}"));
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| in_ca(&e))? {
            roots
                .add(cert.map_err(|e| in_ca(&e))?)
                .map_err(|e| in_ca(&e))?;
        }
        if roots.is_empty() {
            return Err(in_ca(&"no certificate found"));
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| Error::new(format!("not a TLS server name: {host:?}: {e}")))?;
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// The TLS handshake over an open TCP connection.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<Conn> {
        let stream = self.connector.connect(self.name.clone(), tcp).await?;
        NEGOTIATED.with(|n| {
            if n.borrow().is_none() {
                *n.borrow_mut() = Some(describe(stream.get_ref().1));
            }
        });
        Ok(Conn::Tls(Box::new(stream)))
    }

    /// Whether the server chose `h2` by ALPN on this connection.
    pub fn is_h2(conn: &Conn) -> bool {
        match conn {
            Conn::Plain(_) => false,
            Conn::Tls(stream) => stream.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }
}

thread_local! {
    /// What the first TLS handshake of the run agreed on, for the report.
    static NEGOTIATED: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn describe(conn: &tokio_rustls::rustls::ClientConnection) -> String {
    let version = conn
        .protocol_version()
        .map_or("?".to_string(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or("?".to_string(), |s| format!("{:?}", s.suite()));
    let group = conn
        .negotiated_key_exchange_group()
        .map_or("?".to_string(), |g| format!("{:?}", g.name()));
    format!("{version} {suite} {group}")
}

/// Protocol version, cipher suite and key exchange group of the first TLS connection,
/// e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519`; `None` if there was none.
pub fn negotiated() -> Option<String> {
    NEGOTIATED.with(|n| n.borrow().clone())
}

/// A client connection: plain TCP (`ws://`) or TLS over TCP (`wss://`).
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
