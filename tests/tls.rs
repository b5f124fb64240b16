//! Black-box tests of `--ssl`, `--sslca` (mutual TLS) and the TLS start-up errors. The
//! certificates are made by each test run with openssl; none are checked in.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A test PKI: a CA, server certificates with several key types, and client certificates
/// from the CA and from an unrelated CA.
struct Pki {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed by scripts/install-test-deps.sh");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = temp_dir(tag);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("client.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for ca in ["ca", "otherca"] {
            openssl(
                &dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=test {ca}"),
                ],
            );
        }
        let pki = Pki { dir };
        pki.leaf(
            "server-ec",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "ca",
            "san.ext",
        );
        pki.leaf(
            "client",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "ca",
            "client.ext",
        );
        pki.leaf(
            "stranger",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "otherca",
            "client.ext",
        );
        pki
    }

    /// A key and certificate signed by `ca`, files NAME.key (PKCS#8) and NAME.pem.
    fn leaf(&self, name: &str, keygen: &[&str], ca: &str, ext: &str) {
        let mut args = vec!["req"];
        args.extend_from_slice(keygen);
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        args.extend_from_slice(&[
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&self.dir, &args);
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn client(&self, identity: Option<&str>) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.dir.join("ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.dir.join(format!("{name}.pem")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key =
                    PrivateKeyDer::from_pem_file(self.dir.join(format!("{name}.key"))).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        TlsConnector::from(Arc::new(config))
    }
}

/// Opens wss://127.0.0.1:PORT/ and returns the first text message.
async fn wss_first_message(port: u16, connector: &TlsConnector) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .map_err(|_| "tls timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let url = format!("wss://127.0.0.1:{port}/");
    let (mut ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(url, tls))
        .await
        .map_err(|_| "handshake timeout".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(next_text(&mut ws).await)
}

fn tls_args<'a>(pki: &'a Pki, cert: &'a str, key: &'a str) -> Vec<String> {
    vec![
        "--ssl".into(),
        format!("--sslcert={}", pki.path(cert)),
        format!("--sslkey={}", pki.path(key)),
    ]
}

#[tokio::test]
async fn wss_clients_exchange_messages_and_programs_see_https() {
    let pki = Pki::new("tls-basic");
    let mut args = tls_args(&pki, "server-ec.pem", "server-ec.key");
    args.extend([
        "sh".into(),
        "-c".into(),
        "echo HTTPS=$HTTPS; read line; echo got $line".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with(&format!(
            "Starting WebSocket server   : wss://127.0.0.1:{}/",
            server.port
        )))
        .is_some());

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let tls = pki
        .client(None)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let url = format!("wss://127.0.0.1:{}/x", server.port);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "HTTPS=on");
    send_text(&mut ws, "secret").await;
    assert_eq!(next_text(&mut ws).await, "got secret");
    let url_field = format!("url:'https://127.0.0.1:{}/x'", server.port);
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains(&url_field)
            && l.ends_with("| CONNECT"))
        .is_some());
}

#[tokio::test]
async fn every_key_form_is_accepted() {
    let pki = Pki::new("tls-keys");
    pki.leaf("rsa", &["-newkey", "rsa:2048"], "ca", "san.ext");
    pki.leaf("ed", &["-newkey", "ed25519"], "ca", "san.ext");
    let dir = pki.dir.clone();
    openssl(
        &dir,
        &[
            "rsa",
            "-in",
            "rsa.key",
            "-traditional",
            "-out",
            "rsa-pkcs1.key",
        ],
    );
    openssl(
        &dir,
        &["ec", "-in", "server-ec.key", "-out", "server-sec1.key"],
    );
    for (cert, key) in [
        ("rsa.pem", "rsa.key"),
        ("rsa.pem", "rsa-pkcs1.key"),
        ("server-ec.pem", "server-ec.key"),
        ("server-ec.pem", "server-sec1.key"),
        ("ed.pem", "ed.key"),
    ] {
        let mut args = tls_args(&pki, cert, key);
        args.extend(["echo".into(), "hello".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start(&args);
        let first = wss_first_message(server.port, &pki.client(None)).await;
        assert_eq!(first.as_deref(), Ok("hello"), "{cert} with {key}");
    }
}

#[tokio::test]
async fn old_protocols_and_plain_http_are_refused_cleanly() {
    let pki = Pki::new("tls-refuse");
    let mut args = tls_args(&pki, "server-ec.pem", "server-ec.key");
    args.extend(["echo".into(), "hello".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    for version in ["-tls1", "-tls1_1"] {
        let output = Command::new("openssl")
            .args([
                "s_client",
                version,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-connect",
                &format!("127.0.0.1:{}", server.port),
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{version} handshake succeeded");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("Cipher is (NONE)") || !text.contains("Protocol  :"),
            "{version}: {text}"
        );
    }
    // Plain HTTP on the TLS port gets no HTTP answer, and the daemon keeps serving.
    let answer = raw_request(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!answer.starts_with(b"HTTP/"));
    assert_eq!(
        wss_first_message(server.port, &pki.client(None))
            .await
            .as_deref(),
        Ok("hello")
    );
    assert!(server
        .stderr
        .wait_for(DEADLINE, |l| l
            .contains("http: TLS handshake error from 127.0.0.1:"))
        .is_some());
}

#[tokio::test]
async fn mutual_tls_requires_a_certificate_from_the_ca() {
    let pki = Pki::new("tls-mutual");
    let mut args = tls_args(&pki, "server-ec.pem", "server-ec.key");
    args.push(format!("--sslca={}", pki.path("ca.pem")));
    args.extend(["echo".into(), "welcome".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l
            .contains("Mutual TLS enabled (client certs verified against"))
        .is_some());
    assert!(wss_first_message(server.port, &pki.client(None))
        .await
        .is_err());
    assert!(
        wss_first_message(server.port, &pki.client(Some("stranger")))
            .await
            .is_err()
    );
    assert_eq!(
        wss_first_message(server.port, &pki.client(Some("client")))
            .await
            .as_deref(),
        Ok("welcome")
    );
}

#[test]
fn tls_startup_errors_name_the_file_and_exit_3() {
    let pki = Pki::new("tls-errors");
    std::fs::write(pki.dir.join("garbage.pem"), "not a pem file\n").unwrap();
    let port = free_port().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (tls_args(&pki, "missing.pem", "server-ec.key"), "open "),
        (
            tls_args(&pki, "garbage.pem", "server-ec.key"),
            "garbage.pem",
        ),
        (
            tls_args(&pki, "server-ec.pem", "garbage.pem"),
            "garbage.pem",
        ),
        (tls_args(&pki, "server-ec.pem", "client.key"), "do not fit"),
        (
            {
                let mut a = tls_args(&pki, "server-ec.pem", "server-ec.key");
                a.push(format!("--sslca={}", pki.path("garbage.pem")));
                a
            },
            "garbage.pem",
        ),
    ];
    for (mut args, expected) in cases {
        args.extend([
            format!("--port={port}"),
            "--address=127.0.0.1".into(),
            "cat".into(),
        ]);
        let output = Command::new(binary()).args(&args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stdout}");
        let fatal = stdout
            .lines()
            .find(|l| l.contains("| FATAL  |"))
            .unwrap_or_default();
        assert!(
            fatal.contains("Can't start server: ") && fatal.contains(expected),
            "{args:?}: {fatal}"
        );
    }
    let output = Command::new(binary())
        .args(["--ssl", "--sslkey=k", "cat"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "please specify both --sslcert and --sslkey when requesting --ssl\n"
    );
    let output = Command::new(binary())
        .args(["--sslca=ca.pem", "cat"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "you should not be using --ssl* flags when there is no --ssl option\n"
    );
}

type WssStream =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Opens wss://127.0.0.1:PORT/; returns the session and the certificate the server showed.
async fn wss_session(port: u16, connector: &TlsConnector) -> Result<(WssStream, Vec<u8>), String> {
    wss_session_after(port, connector, b"").await
}

/// Like [`wss_session`], with `preamble` sent in clear before the TLS handshake.
async fn wss_session_after(
    port: u16,
    connector: &TlsConnector,
    preamble: &[u8],
) -> Result<(WssStream, Vec<u8>), String> {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    tcp.write_all(preamble).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .map_err(|_| "tls timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let shown = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.as_ref().to_vec())
        .unwrap_or_default();
    let url = format!("wss://127.0.0.1:{port}/");
    let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(url, tls))
        .await
        .map_err(|_| "handshake timeout".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((ws, shown))
}

impl Pki {
    /// The DER bytes of certificate file NAME.pem.
    fn der(&self, name: &str) -> Vec<u8> {
        CertificateDer::from_pem_file(self.dir.join(format!("{name}.pem")))
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// Replaces file `to` with a copy of `from` (renamed into place, as a renewal would).
    fn install(&self, from: &str, to: &str) {
        let staged = self.dir.join(format!("{to}.new"));
        std::fs::copy(self.dir.join(from), &staged).unwrap();
        std::fs::rename(staged, self.dir.join(to)).unwrap();
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_open_sessions() {
    let pki = Pki::new("tls-reload");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    pki.leaf("renewed", &ec, "ca", "san.ext");
    pki.install("server-ec.pem", "live.pem");
    pki.install("server-ec.key", "live.key");
    let mut args = tls_args(&pki, "live.pem", "live.key");
    args.push("cat".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let client = pki.client(None);

    let (mut old, shown) = wss_session(server.port, &client).await.unwrap();
    assert_eq!(shown, pki.der("server-ec"));
    send_text(&mut old, "before").await;
    assert_eq!(next_text(&mut old).await, "before");

    pki.install("renewed.pem", "live.pem");
    pki.install("renewed.key", "live.key");
    server.signal("HUP");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("SIGHUP: reloaded TLS files"))
        .is_some());
    let (mut new, shown) = wss_session(server.port, &client).await.unwrap();
    assert_eq!(shown, pki.der("renewed"));
    send_text(&mut old, "still here").await;
    assert_eq!(next_text(&mut old).await, "still here");

    // A broken certificate file, then a key that does not fit: the renewed pair stays.
    std::fs::write(
        pki.dir.join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nnope\n",
    )
    .unwrap();
    pki.install("broken.pem", "live.pem");
    server.signal("HUP");
    let kept = server
        .stdout
        .wait_for(DEADLINE, |l| {
            l.contains("SIGHUP: keeping the current TLS certificate")
        })
        .expect("error line");
    assert!(
        kept.contains("| ERROR  |") && kept.contains("live.pem"),
        "{kept}"
    );
    pki.install("renewed.pem", "live.pem");
    pki.install("server-ec.key", "live.key");
    server.signal("HUP");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l
            .contains("SIGHUP: keeping the current TLS certificate")
            && l.contains("do not fit together"))
        .is_some());
    let (_, shown) = wss_session(server.port, &client).await.unwrap();
    assert_eq!(shown, pki.der("renewed"));
    send_text(&mut new, "new one").await;
    assert_eq!(next_text(&mut new).await, "new one");
    send_text(&mut old, "old one").await;
    assert_eq!(next_text(&mut old).await, "old one");
}

#[tokio::test]
async fn sighup_reloads_the_client_ca() {
    let pki = Pki::new("tls-reload-ca");
    pki.install("ca.pem", "live-ca.pem");
    let mut args = tls_args(&pki, "server-ec.pem", "server-ec.key");
    args.push(format!("--sslca={}", pki.path("live-ca.pem")));
    args.extend(["echo".into(), "welcome".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let member = pki.client(Some("client"));
    let stranger = pki.client(Some("stranger"));
    assert!(wss_first_message(server.port, &stranger).await.is_err());
    assert!(wss_first_message(server.port, &member).await.is_ok());
    pki.install("otherca.pem", "live-ca.pem");
    server.signal("HUP");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("SIGHUP: reloaded TLS files"))
        .is_some());
    assert_eq!(
        wss_first_message(server.port, &stranger).await.as_deref(),
        Ok("welcome")
    );
    assert!(wss_first_message(server.port, &member).await.is_err());
}

#[tokio::test]
async fn a_trusted_proxy_header_comes_before_tls() {
    let pki = Pki::new("tls-proxy");
    let mut args = tls_args(&pki, "server-ec.pem", "server-ec.key");
    args.extend([
        "--trustproxy=127.0.0.1".into(),
        "sh".into(),
        "-c".into(),
        "echo $REMOTE_ADDR $REMOTE_PORT $HTTPS".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let header = b"PROXY TCP6 2001:db8::9 ::1 5555 443\r\n";
    let (mut ws, _) = wss_session_after(server.port, &pki.client(None), header)
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "2001:db8::9 5555 on");
    let (mut ws, _) = wss_session(server.port, &pki.client(None)).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("127.0.0.1 "));
}
