//! Telling HTTP/2 from HTTP/1 on a fresh connection by its first bytes: an HTTP/2 client
//! with prior knowledge (h2c, or TLS without ALPN) opens with the fixed connection preface
//! (RFC 9113 §3.4), which no HTTP/1 request line starts with. The bytes read to decide are
//! handed back in front of the stream, so the chosen protocol sees the connection whole.

use crate::prefixed::Prefixed;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The HTTP/2 client connection preface.
const PREFACE: &[u8; crate::prefixed::MAX_PREFIX] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which protocol a connection opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The HTTP/2 preface.
    Http2,
    /// Anything else: HTTP/1 (whose parser answers what is not HTTP at all).
    Http1,
    /// The client closed (or failed) before sending a byte.
    Closed,
}

/// Reads just enough of `stream` to tell the protocol: until the bytes stop matching the
/// preface, or all of it has arrived. Returns the verdict and the stream with those bytes
/// put back.
pub async fn sniff<S>(mut stream: S) -> (Opening, Prefixed<S>)
where
    S: AsyncRead + Unpin,
{
    let mut seen = [0u8; PREFACE.len()];
    let mut filled = 0;
    let opening = loop {
        match stream.read(&mut seen[filled..]).await {
            Ok(0) | Err(_) if filled == 0 => break Opening::Closed,
            Ok(0) | Err(_) => break Opening::Http1,
            Ok(n) => filled += n,
        }
        if seen[..filled] != PREFACE[..filled] {
            break Opening::Http1;
        }
        if filled == PREFACE.len() {
            break Opening::Http2;
        }
    };
    (opening, Prefixed::new(&seen[..filled], stream))
}

/// `stream` as it is, for a server that does not look at the first bytes.
pub fn untouched<S>(stream: S) -> Prefixed<S> {
    Prefixed::new(&[], stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn sniffed(chunks: &[&[u8]]) -> (Opening, Vec<u8>) {
        let (opening, mut stream) = sniff(reads(chunks)).await;
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all).await;
        (opening, all)
    }

    /// A reader that yields each of `chunks` in a read of its own, then end of stream.
    fn reads(chunks: &[&[u8]]) -> impl AsyncRead + Unpin {
        let mut reader: Box<dyn AsyncRead + Unpin> = Box::new(&b""[..]);
        for chunk in chunks.iter().rev() {
            reader = Box::new(AsyncReadExt::chain(
                std::io::Cursor::new(chunk.to_vec()),
                reader,
            ));
        }
        reader
    }

    #[tokio::test]
    async fn preface_in_pieces_is_http2_and_kept() {
        let (opening, bytes) = sniffed(&[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n\r\n", b"rest"]).await;
        assert_eq!(opening, Opening::Http2);
        assert_eq!(bytes, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nrest");
    }

    #[tokio::test]
    async fn request_line_is_http1_and_kept() {
        let (opening, bytes) = sniffed(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]).await;
        assert_eq!(opening, Opening::Http1);
        assert_eq!(bytes, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let (opening, bytes) = sniffed(&[b"PRI * HTTP/1.1\r\n"]).await;
        assert_eq!(opening, Opening::Http1);
        assert_eq!(bytes, b"PRI * HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn early_close() {
        assert_eq!(sniffed(&[]).await.0, Opening::Closed);
        assert_eq!(sniffed(&[b"PRI"]).await, (Opening::Http1, b"PRI".to_vec()));
    }
}
