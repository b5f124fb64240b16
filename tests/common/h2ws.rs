//! An HTTP/2 test client built on the `h2` crate: plain requests, and WebSockets opened with
//! extended CONNECT (RFC 8441), framed by tungstenite over the stream.
//! Used by the HTTP/2 test files through `#[path]`. The connection is driven by a task of
//! its own, so tests that block a thread (log waits) run on a multi-thread runtime.
#![allow(dead_code)]

#[path = "../../bench/loadgen/src/h2io.rs"]
mod h2io;

use crate::common::DEADLINE;
use bytes::Bytes;
use h2::client::SendRequest;
pub use h2io::StreamIo as H2Io;
use http::{HeaderMap, Method, Request, StatusCode};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// A WebSocket over one HTTP/2 stream.
pub type H2Ws = WebSocketStream<H2Io>;

/// Flow-control windows the client announces: per stream and for the whole connection.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// Bytes the server may send on one stream before the client reads them.
    pub stream: u32,
    /// Bytes the server may send on the connection before the client reads them.
    pub connection: u32,
}

impl Default for Windows {
    /// About what browsers announce: several streams' worth on the connection.
    fn default() -> Windows {
        Windows {
            stream: 1 << 20,
            connection: 16 << 20,
        }
    }
}

/// One HTTP/2 connection to the server.
pub struct H2Client {
    send: SendRequest<Bytes>,
    authority: String,
    scheme: &'static str,
    /// The connection task: ends with the connection, with the error that ended it.
    pub driver: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

/// A plain HTTP/2 response.
#[derive(Debug)]
pub struct H2Response {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl H2Client {
    /// Plain-text HTTP/2 with prior knowledge to 127.0.0.1:`port`.
    pub async fn h2c(port: u16) -> H2Client {
        H2Client::h2c_with(port, Windows::default()).await
    }

    /// Like [`H2Client::h2c`], announcing `windows`.
    pub async fn h2c_with(port: u16, windows: Windows) -> H2Client {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        tcp.set_nodelay(true).unwrap();
        H2Client::over(tcp, format!("127.0.0.1:{port}"), "http", windows).await
    }

    /// HTTP/2 over an established byte stream (TCP, or TLS that negotiated `h2`).
    pub async fn over<S>(
        io: S,
        authority: String,
        scheme: &'static str,
        windows: Windows,
    ) -> H2Client
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, connection) = tokio::time::timeout(
            DEADLINE,
            h2::client::Builder::new()
                .initial_window_size(windows.stream)
                .initial_connection_window_size(windows.connection)
                .handshake::<_, Bytes>(io),
        )
        .await
        .expect("h2 handshake in time")
        .expect("h2 handshake");
        let driver = tokio::spawn(connection);
        let mut client = H2Client {
            send,
            authority,
            scheme,
            driver,
        };
        // The server's SETTINGS arrive with or before the answer to a first request.
        let options = client.request(Method::OPTIONS, "*", &[]).await;
        assert_eq!(options.status, StatusCode::OK);
        client
    }

    /// Whether the server announced SETTINGS_ENABLE_CONNECT_PROTOCOL.
    pub fn extended_connect_enabled(&self) -> bool {
        self.send.is_extended_connect_protocol_enabled()
    }

    fn uri(&self, path: &str) -> String {
        if path == "*" {
            return "*".to_string();
        }
        format!("{}://{}{path}", self.scheme, self.authority)
    }

    /// A request without a body, its response read whole (bounded).
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> H2Response {
        let mut builder = Request::builder().method(method).uri(self.uri(path));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(()).unwrap();
        let mut send = self.send.clone().ready().await.expect("connection ready");
        let (response, _) = send.send_request(request, true).expect("send request");
        let response = tokio::time::timeout(DEADLINE, response)
            .await
            .expect("response in time")
            .expect("response");
        let (parts, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        while let Some(chunk) = tokio::time::timeout(DEADLINE, body.data())
            .await
            .expect("body in time")
        {
            let chunk = chunk.expect("body chunk");
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        H2Response {
            status: parts.status,
            headers: parts.headers,
            body: bytes,
        }
    }

    /// Opens a WebSocket at `path` with extended CONNECT (with `Sec-WebSocket-Version: 13`
    /// unless `headers` has one). On a refusal returns the status and the response body.
    pub async fn websocket(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(H2Ws, HeaderMap), (StatusCode, String)> {
        let mut builder = Request::builder()
            .method(Method::CONNECT)
            .uri(self.uri(path))
            .extension(h2::ext::Protocol::from_static("websocket"));
        if !headers
            .iter()
            .any(|(name, _)| *name == "sec-websocket-version")
        {
            builder = builder.header("sec-websocket-version", "13");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(()).unwrap();
        let mut send = tokio::time::timeout(DEADLINE, self.send.clone().ready())
            .await
            .expect("stream slot in time")
            .expect("connection ready");
        let (response, stream) = send.send_request(request, false).expect("send CONNECT");
        let response = tokio::time::timeout(DEADLINE, response)
            .await
            .expect("CONNECT answer in time")
            .expect("CONNECT answer");
        let (parts, mut body) = response.into_parts();
        if parts.status != StatusCode::OK {
            let mut text = Vec::new();
            while let Ok(Some(Ok(chunk))) = tokio::time::timeout(DEADLINE, body.data()).await {
                let _ = body.flow_control().release_capacity(chunk.len());
                text.extend_from_slice(&chunk);
            }
            return Err((parts.status, String::from_utf8_lossy(&text).into_owned()));
        }
        let io = H2Io::new(stream, body);
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let ws = WebSocketStream::from_raw_socket(io, Role::Client, Some(config)).await;
        Ok((ws, parts.headers))
    }

    /// Like [`H2Client::websocket`], panicking on a refusal.
    pub async fn open(&mut self, path: &str) -> H2Ws {
        match self.websocket(path, &[]).await {
            Ok((ws, _)) => ws,
            Err(refusal) => panic!("WebSocket over HTTP/2 refused: {refusal:?}"),
        }
    }

    /// Waits for the connection to end; returns how it ended, and the error a new
    /// request then gets.
    pub async fn ended(mut self, timeout: Duration) -> (Result<(), h2::Error>, Option<h2::Error>) {
        let ended = tokio::time::timeout(timeout, &mut self.driver)
            .await
            .expect("connection ended in time")
            .expect("connection task");
        let request = Request::get(self.uri("/")).body(()).unwrap();
        let refused = match self.send.clone().ready().await {
            Err(err) => Some(err),
            Ok(mut send) => send.send_request(request, true).err(),
        };
        (ended, refused)
    }
}
