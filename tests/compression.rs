//! permessage-deflate (`--compress`): negotiation as RFC 7692 describes it, compressed
//! messages both ways, and the limits a compressed message is held to.

mod common;

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Upgrades with `extensions` offered; returns the socket and the response head.
fn upgrade(port: u16, extensions: Option<&str>) -> (TcpStream, String) {
    let offer = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    let (stream, head) = raw_upgrade_with(port, &offer);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (stream, head)
}

fn extension_answer(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("Sec-Websocket-Extensions: "))
        .or_else(|| {
            head.lines()
                .find(|l| {
                    l.to_ascii_lowercase()
                        .starts_with("sec-websocket-extensions:")
                })
                .map(|l| l.split_once(':').unwrap().1.trim())
        })
        .map(str::to_string)
}

/// A masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// One server frame: (first byte, payload).
fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

fn deflate(compressor: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut input = data;
    loop {
        out.reserve(64 * 1024);
        let before = compressor.total_in();
        compressor
            .compress_vec(input, &mut out, FlushCompress::Sync)
            .unwrap();
        input = &input[(compressor.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xFF, 0xFF]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(decompressor: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut out = Vec::new();
    let mut rest = &input[..];
    loop {
        out.reserve(64 * 1024);
        let before = decompressor.total_in();
        decompressor
            .decompress_vec(rest, &mut out, FlushDecompress::Sync)
            .unwrap();
        rest = &rest[(decompressor.total_in() - before) as usize..];
        if rest.is_empty() && out.len() < out.capacity() {
            return out;
        }
    }
}

#[test]
fn negotiation_parameters_are_accepted_or_declined_as_rfc_7692_says() {
    let server = Server::start(&["--compress", "cat"]);
    let cases: &[(&str, Option<&str>)] = &[
        ("permessage-deflate", Some("permessage-deflate")),
        (
            "permessage-deflate; client_max_window_bits",
            Some("permessage-deflate"),
        ),
        (
            "permessage-deflate; server_no_context_takeover",
            Some("permessage-deflate; server_no_context_takeover"),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            Some("permessage-deflate; server_max_window_bits=10"),
        ),
        (
            "permessage-deflate; client_max_window_bits=9",
            Some("permessage-deflate"),
        ),
        // A window we cannot keep to, then a fallback offer.
        ("permessage-deflate; server_max_window_bits=8", None),
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            Some("permessage-deflate"),
        ),
        // Malformed or unknown parameters decline the offer.
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; client_max_window_bits=7", None),
        ("permessage-deflate; client_no_context_takeover=yes", None),
        ("permessage-deflate; unknown_parameter", None),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            None,
        ),
        ("x-webkit-deflate-frame", None),
    ];
    for (offer, expected) in cases {
        let (_stream, head) = upgrade(server.port, Some(offer));
        assert_eq!(
            extension_answer(&head).as_deref(),
            *expected,
            "offer {offer:?}"
        );
    }
    let plain = Server::start(&["cat"]);
    let (_stream, head) = upgrade(plain.port, Some("permessage-deflate"));
    assert_eq!(extension_answer(&head), None, "without --compress");
}

#[test]
fn compressed_messages_echo_both_ways() {
    let server = Server::start(&["--compress", "--compressmin=20", "cat"]);
    let (mut stream, head) = upgrade(server.port, Some("permessage-deflate"));
    assert_eq!(
        extension_answer(&head).as_deref(),
        Some("permessage-deflate")
    );
    let mut ours = Compress::new(Compression::default(), false);
    let mut theirs = Decompress::new(false);
    for round in 0..3 {
        let line = format!(
            "round {round}: {}",
            "the same words again and again ".repeat(40)
        );
        // Compressed, in two fragments (RSV1 on the first only).
        let compressed = deflate(&mut ours, line.as_bytes());
        let (a, b) = compressed.split_at(compressed.len() / 2);
        stream.write_all(&frame(0x41, a)).unwrap();
        stream.write_all(&frame(0x80, b)).unwrap();
        let (first, payload) = read_frame(&mut stream);
        assert_eq!(first, 0xC1, "FIN, RSV1, text");
        assert!(payload.len() * 4 < line.len(), "{} bytes", payload.len());
        assert_eq!(inflate(&mut theirs, &payload), line.as_bytes());
    }
    // Uncompressed messages are still accepted; short replies go uncompressed.
    stream.write_all(&frame(0x81, b"short")).unwrap();
    assert_eq!(read_frame(&mut stream), (0x81, b"short".to_vec()));
}

#[test]
fn no_context_takeover_makes_every_message_stand_alone() {
    let server = Server::start(&["--compress", "cat"]);
    let (mut stream, head) = upgrade(
        server.port,
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    );
    assert!(extension_answer(&head)
        .unwrap()
        .contains("server_no_context_takeover"));
    let line = "a log line that compresses well, a log line that compresses well".repeat(4);
    for _ in 0..3 {
        let mut fresh = Compress::new(Compression::fast(), false);
        stream
            .write_all(&frame(0xC1, &deflate(&mut fresh, line.as_bytes())))
            .unwrap();
        let (first, payload) = read_frame(&mut stream);
        assert_eq!(first, 0xC1);
        // A fresh decompressor each time: nothing may refer to earlier messages.
        assert_eq!(
            inflate(&mut Decompress::new(false), &payload),
            line.as_bytes()
        );
    }
}

#[test]
fn rsv1_without_negotiation_is_a_protocol_error() {
    let server = Server::start(&["--compress", "cat"]);
    let (mut stream, _) = upgrade(server.port, None);
    let mut c = Compress::new(Compression::fast(), false);
    stream
        .write_all(&frame(0xC1, &deflate(&mut c, b"hello hello hello")))
        .unwrap();
    let (first, payload) = read_frame(&mut stream);
    assert_eq!(first, 0x88);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
}

#[test]
fn decompression_bomb_is_refused_with_1009_without_inflating_it() {
    let server = Server::start(&["--compress", "--maxframesize=1048576", "cat"]);
    let daemon = server.pid();
    let (mut stream, _) = upgrade(server.port, Some("permessage-deflate"));
    // 256 MiB of zeros in about 256 KiB: inflating it all would show in the daemon's peak RSS.
    // Once the window is all zeros, every further MiB compresses to the same bytes.
    let mut c = Compress::new(Compression::best(), false);
    let chunk = vec![0u8; 1 << 20];
    let mut pieces = Vec::new();
    for _ in 0..3 {
        let mut piece = Vec::new();
        let mut input = &chunk[..];
        loop {
            piece.reserve(64 * 1024);
            let before = c.total_in();
            c.compress_vec(input, &mut piece, FlushCompress::Sync)
                .unwrap();
            input = &input[(c.total_in() - before) as usize..];
            if input.is_empty() && piece.len() < piece.capacity() {
                break;
            }
        }
        pieces.push(piece);
    }
    assert_eq!(pieces[1], pieces[2], "steady state");
    let mut bomb = pieces[0].clone();
    for _ in 1..256 {
        bomb.extend_from_slice(&pieces[1]);
    }
    bomb.truncate(bomb.len() - 4);
    assert!(bomb.len() < 1 << 20, "bomb of {} bytes", bomb.len());
    let started = Instant::now();
    let _ = stream.write_all(&frame(0xC2, &bomb));
    let (first, payload) = read_frame(&mut stream);
    assert_eq!(first, 0x88);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1009);
    assert!(started.elapsed() < Duration::from_secs(10));
    let peak = status_kib(daemon, "VmHWM:");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn compression_settings_need_compress_and_a_valid_level() {
    for (args, message) in [
        (&["--compresslevel=3", "cat"][..], "need --compress"),
        (&["--compress", "--compresslevel=10", "cat"][..], "1 to 9"),
        (&["--compress", "--compressmin=-1", "cat"][..], "negative"),
    ] {
        let out = std::process::Command::new(binary())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
