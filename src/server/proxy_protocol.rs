//! The PROXY protocol (versions 1 and 2, as HAProxy's `send-proxy` and `send-proxy-v2` write
//! it): a header a trusted proxy sends before any TLS or HTTP byte, naming the client. Only
//! connections from `--trustproxy` peers are examined; there the header is optional, so the
//! same listener serves proxies that send it and proxies that forward HTTP headers instead.

use crate::environment::Peer;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The twelve bytes that open a version 2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// What opens a version 1 header.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// Longest version 1 header, CRLF included.
const V1_MAX: usize = 107;
/// Fixed part of a version 2 header.
const V2_FIXED: usize = 16;

/// What the first bytes of a connection are.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes yet to tell.
    Incomplete,
    /// No PROXY header: the bytes belong to TLS or HTTP.
    Absent,
    /// A complete header of `length` bytes; `source` is the client, or `None` when the proxy
    /// speaks for itself (v2 LOCAL, v1 UNKNOWN, or an address family other than TCP/UDP over IP).
    Header {
        /// Bytes the header takes.
        length: usize,
        /// The client's address.
        source: Option<SocketAddr>,
    },
    /// A header that breaks the protocol.
    Invalid(&'static str),
}

/// Examines the start of a connection.
pub fn parse(bytes: &[u8]) -> Parsed {
    let v2_prefix = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..v2_prefix] == V2_SIGNATURE[..v2_prefix] {
        return if bytes.len() < V2_FIXED {
            Parsed::Incomplete
        } else {
            parse_v2(bytes)
        };
    }
    let v1_prefix = bytes.len().min(V1_SIGNATURE.len());
    if bytes[..v1_prefix] == V1_SIGNATURE[..v1_prefix] {
        return if bytes.len() < V1_SIGNATURE.len() {
            Parsed::Incomplete
        } else {
            parse_v1(bytes)
        };
    }
    Parsed::Absent
}

fn parse_v1(bytes: &[u8]) -> Parsed {
    let searched = &bytes[..bytes.len().min(V1_MAX)];
    let Some(end) = searched.windows(2).position(|w| w == b"\r\n") else {
        return if bytes.len() >= V1_MAX {
            Parsed::Invalid("version 1 header longer than 107 bytes")
        } else {
            Parsed::Incomplete
        };
    };
    let length = end + 2;
    let Ok(line) = std::str::from_utf8(&bytes[V1_SIGNATURE.len()..end]) else {
        return Parsed::Invalid("version 1 header is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.first().copied() {
        Some("UNKNOWN") => Parsed::Header {
            length,
            source: None,
        },
        Some(family @ ("TCP4" | "TCP6")) => {
            let [_, source, destination, source_port, destination_port] = fields[..] else {
                return Parsed::Invalid("version 1 header needs four address fields");
            };
            let ip = |text: &str| -> Option<IpAddr> {
                match family {
                    "TCP4" => text.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
                    _ => text.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
                }
            };
            let port = |text: &str| -> Option<u16> {
                let canonical = !text.is_empty()
                    && text.bytes().all(|b| b.is_ascii_digit())
                    && (text == "0" || !text.starts_with('0'));
                canonical.then(|| text.parse().ok()).flatten()
            };
            match (
                ip(source),
                ip(destination),
                port(source_port),
                port(destination_port),
            ) {
                (Some(ip), Some(_), Some(port), Some(_)) => Parsed::Header {
                    length,
                    source: Some(SocketAddr::new(ip, port)),
                },
                _ => Parsed::Invalid("version 1 header has a malformed address or port"),
            }
        }
        _ => Parsed::Invalid("version 1 header names an unknown protocol"),
    }
}

fn parse_v2(bytes: &[u8]) -> Parsed {
    let version_command = bytes[12];
    if version_command >> 4 != 2 {
        return Parsed::Invalid("version 2 signature with another version");
    }
    let family = bytes[13];
    let length = V2_FIXED + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if bytes.len() < length {
        return Parsed::Incomplete;
    }
    let body = &bytes[V2_FIXED..length];
    match version_command & 0x0f {
        0 => Parsed::Header {
            length,
            source: None,
        },
        1 => {
            let source = match family >> 4 {
                1 if body.len() >= 12 => {
                    let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
                    Some(SocketAddr::new(
                        IpAddr::V4(ip),
                        u16::from_be_bytes([body[8], body[9]]),
                    ))
                }
                2 if body.len() >= 36 => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(&body[..16]);
                    Some(SocketAddr::new(
                        IpAddr::V6(Ipv6Addr::from(octets)),
                        u16::from_be_bytes([body[32], body[33]]),
                    ))
                }
                1 | 2 => return Parsed::Invalid("version 2 address block too short"),
                _ => None,
            };
            Parsed::Header { length, source }
        }
        _ => Parsed::Invalid("version 2 header with an unknown command"),
    }
}

/// Reads what a trusted proxy sends first. On a PROXY header, the peer becomes the client it
/// names (unless the proxy speaks for itself); the bytes read past the header are replayed to
/// TLS or HTTP. The caller bounds the time this may take.
pub async fn accept<S>(mut stream: S, peer: Peer) -> Result<(Replay<S>, Peer), String>
where
    S: AsyncRead + Unpin,
{
    let mut buffer = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        match parse(&buffer) {
            Parsed::Incomplete => {}
            Parsed::Absent => return Ok((Replay::new(stream, buffer, 0), peer)),
            Parsed::Header { length, source } => {
                let peer = match source {
                    Some(address) => Peer::Tcp {
                        ip: address.ip().to_canonical().to_string(),
                        port: Some(address.port()),
                    },
                    None => peer,
                };
                return Ok((Replay::new(stream, buffer, length), peer));
            }
            Parsed::Invalid(why) => return Err(why.to_string()),
        }
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|err| err.to_string())?;
        if read == 0 {
            // Closed before saying anything decisive: let HTTP see what there is.
            return Ok((Replay::new(stream, buffer, 0), peer));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// A stream that first yields bytes already read from it, then reads on.
pub struct Replay<S> {
    inner: S,
    pending: Vec<u8>,
    position: usize,
}

impl<S> Replay<S> {
    fn new(inner: S, pending: Vec<u8>, position: usize) -> Replay<S> {
        Replay {
            inner,
            pending,
            position,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.position < this.pending.len() {
            let rest = &this.pending[this.position..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.position += n;
            if this.position == this.pending.len() {
                this.pending = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.push(0x20 | command);
        bytes.push(family);
        bytes.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn version_1() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        assert_eq!(
            parse(line),
            Parsed::Header {
                length: 45,
                source: Some("192.0.2.1:56324".parse().unwrap())
            }
        );
        let line = b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n";
        assert_eq!(
            parse(line),
            Parsed::Header {
                length: line.len(),
                source: Some("[2001:db8::1]:1".parse().unwrap())
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Header {
                length: 15,
                source: None
            }
        );
        assert_eq!(parse(b"PRO"), Parsed::Incomplete);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Parsed::Incomplete);
        assert_eq!(parse(b""), Parsed::Incomplete);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Absent);
        assert_eq!(parse(b"\x16\x03\x01"), Parsed::Absent);
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        ] {
            assert!(matches!(parse(bad), Parsed::Invalid(_)), "{bad:?}");
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    #[test]
    fn version_2() {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb];
        body.extend_from_slice(&[0x03, 0x00, 0x04, 1, 2, 3, 4]); // a TLV, skipped
        let header = v2(1, 0x11, &body);
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"GET");
        assert_eq!(
            parse(&bytes),
            Parsed::Header {
                length: header.len(),
                source: Some("192.0.2.1:56324".parse().unwrap())
            }
        );
        let mut body6 = vec![0u8; 36];
        body6[15] = 1;
        body6[32] = 0x12;
        body6[33] = 0x34;
        assert_eq!(
            parse(&v2(1, 0x21, &body6)),
            Parsed::Header {
                length: 52,
                source: Some("[::1]:4660".parse().unwrap())
            }
        );
        assert_eq!(
            parse(&v2(0, 0x00, &[])),
            Parsed::Header {
                length: 16,
                source: None
            }
        );
        assert_eq!(
            parse(&v2(1, 0x31, &[0u8; 216])),
            Parsed::Header {
                length: 232,
                source: None
            }
        );
        assert_eq!(parse(&header[..20]), Parsed::Incomplete);
        assert_eq!(parse(&header[..5]), Parsed::Incomplete);
        assert!(matches!(
            parse(&v2(1, 0x11, &[1, 2, 3])),
            Parsed::Invalid(_)
        ));
        assert!(matches!(parse(&v2(5, 0x11, &body)), Parsed::Invalid(_)));
        let mut other_version = v2(1, 0x11, &body);
        other_version[12] = 0x11;
        assert!(matches!(parse(&other_version), Parsed::Invalid(_)));
    }

    #[tokio::test]
    async fn accept_replays_what_follows() {
        let trusted = Peer::Tcp {
            ip: "127.0.0.1".into(),
            port: Some(9),
        };
        let input: &[u8] = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
        let (mut stream, peer) = accept(input, trusted.clone()).await.unwrap();
        assert_eq!(
            peer,
            Peer::Tcp {
                ip: "192.0.2.1".into(),
                port: Some(56324)
            }
        );
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");

        let input: &[u8] = b"GET / HTTP/1.1\r\n";
        let (mut stream, peer) = accept(input, trusted.clone()).await.unwrap();
        assert_eq!(peer, trusted);
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, input);

        let input: &[u8] = b"PROXY TCP4 nonsense\r\n";
        assert!(accept(input, trusted).await.is_err());
    }
}
