//! The `log-stream` scenario: a client that offers permessage-deflate (tokio-tungstenite has
//! no compression, so this client frames by hand), counts the lines a program prints and the
//! bytes that crossed the wire, and decompresses what arrives compressed, as a browser would.

use crate::args::Args;
use crate::report::Report;
use crate::util::Error;
use flate2::{Decompress, FlushDecompress};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TRAILER: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Counts `expect-lines` messages; `--deflate 1` offers permessage-deflate.
pub async fn log_stream(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let expect = args.u64("expect-lines", 0)?;
    let offer = args.u64("deflate", 0)? == 1;
    args.finish()?;
    if expect == 0 {
        return Err(Error::new("--expect-lines is required"));
    }
    if url.secure {
        return Err(Error::new("log-stream speaks ws:// only"));
    }
    let mut tcp = TcpStream::connect(url.authority.as_str()).await?;
    tcp.set_nodelay(true)?;
    let extension = if offer {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extension}\r\n",
        url.authority
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        read_more(&mut tcp, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") {
        return Err(Error::new(format!("handshake refused: {head}")));
    }
    let negotiated = head.contains("permessage-deflate");
    if offer && !negotiated {
        return Err(Error::new("permessage-deflate was not negotiated"));
    }
    let mut wire = (buf.len() - head_end) as u64;
    buf.drain(..head_end);

    let mut inflater = Decompress::new(false);
    let mut inflated = Vec::with_capacity(64 * 1024);
    let (mut lines, mut payload_bytes, mut compressed) = (0u64, 0u64, 0u64);
    let mut start = 0usize;
    let t0 = Instant::now();
    let mut last = t0;
    while lines < expect {
        let Some((first, header, len)) = parse(&buf[start..]) else {
            if start > 0 {
                buf.drain(..start);
                start = 0;
            }
            let n = tokio::time::timeout(Duration::from_secs(10), read_more(&mut tcp, &mut buf))
                .await
                .map_err(|_| Error::new(format!("stalled after {lines} lines")))??;
            wire += n as u64;
            continue;
        };
        let payload = &buf[start + header..start + header + len];
        start += header + len;
        match first & 0x0F {
            0x1 | 0x2 if first & 0x40 != 0 => {
                inflated.clear();
                inflate(&mut inflater, payload, &mut inflated)?;
                payload_bytes += inflated.len() as u64;
                compressed += 1;
            }
            0x1 | 0x2 => payload_bytes += len as u64,
            0x8 => break,
            _ => continue,
        }
        lines += 1;
        last = Instant::now();
    }
    if lines < expect {
        return Err(Error::new(format!(
            "connection ended after {lines} of {expect} lines"
        )));
    }
    let secs = (last - t0).as_secs_f64();
    let mut r = Report::new("log-stream");
    r.int("lines", lines);
    r.int("compressed_messages", compressed);
    r.int("payload_bytes", payload_bytes);
    r.int("wire_bytes", wire);
    r.num("seconds", secs);
    r.num("msgs_per_s", lines as f64 / secs);
    r.num("wire_mb", wire as f64 / 1e6);
    r.num("wire_bytes_per_msg", wire as f64 / lines as f64);
    r.boolean("negotiated", negotiated);
    Ok(r)
}

async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, Error> {
    buf.reserve(128 * 1024);
    let n = tcp.read_buf(buf).await?;
    if n == 0 {
        return Err(Error::new("connection closed"));
    }
    Ok(n)
}

/// An unmasked server frame: (first byte, header length, payload length), if complete.
fn parse(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let (first, second) = (*buf.first()?, *buf.get(1)?);
    let (len, header) = match second & 0x7F {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let raw: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(raw)).ok()?, 10)
        }
        n => (n as usize, 2),
    };
    (buf.len() >= header + len).then_some((first, header, len))
}

fn inflate(inflater: &mut Decompress, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    for mut input in [payload, &TRAILER[..]] {
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(64 * 1024);
            }
            let before = inflater.total_in();
            inflater
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|e| Error::new(format!("inflate: {e}")))?;
            input = &input[(inflater.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
    }
    Ok(())
}
