//! The frame layer against hostile or broken clients: control-frame floods from a client that
//! never reads, and malformed frame lengths.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [9u8, 8, 7, 6];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[test]
fn ping_flood_from_a_client_that_never_reads_is_bounded_then_dropped() {
    let server = Server::start(&["cat"]);
    let daemon = server.pid();
    // A small receive buffer, so that what the client does not read fills up soon.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address: std::net::SocketAddr = ([127, 0, 0, 1], server.port).into();
    socket.connect(&address.into()).unwrap();
    let (mut stream, _) = raw_upgrade_on(socket.into(), server.port, "");
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| CONNECT"))
        .is_some());
    let baseline = rss_kib(daemon);
    let batch: Vec<u8> = (0..500).flat_map(|_| frame(0x89, &[b'p'; 125])).collect();
    let started = Instant::now();
    let mut pings = 0u64;
    let mut peak = baseline;
    // Pings keep coming and nothing is read; the daemon must neither grow nor keep the
    // connection forever (it gives up 10 s after an owed pong could not be written).
    let dropped = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still connected after {pings} pings"
        );
        match stream.write_all(&batch) {
            Ok(()) => pings += 500,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
            Err(err) => break err.to_string(),
        }
        peak = peak.max(rss_kib(daemon));
        if server
            .stdout
            .all()
            .iter()
            .any(|l| l.ends_with("| DISCONNECT"))
        {
            break "DISCONNECT logged".to_string();
        }
    };
    assert!(
        pings > 100_000,
        "only {pings} pings were accepted before: {dropped}"
    );
    assert!(
        peak < baseline + 16 * 1024,
        "RSS grew from {baseline} KiB to {peak} KiB over {pings} pings"
    );
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| DISCONNECT"))
        .is_some());
    // The daemon still serves others.
    let mut other = raw_upgrade(server.port);
    other.write_all(&frame(0x81, b"fine")).unwrap();
    let mut reply = [0u8; 6];
    other.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\x81\x04fine");
    assert!(status_kib(daemon, "VmHWM:") < baseline + 32 * 1024);
}

#[test]
fn close_reply_to_a_client_that_never_reads_does_not_hold_the_session() {
    let server = Server::start(&["cat"]);
    let mut stream = raw_upgrade(server.port);
    stream
        .write_all(&frame(0x88, &1000u16.to_be_bytes()))
        .unwrap();
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| DISCONNECT"))
        .is_some());
}

#[test]
fn frame_length_with_the_top_bit_set_closes_with_1002() {
    let server = Server::start(&["--binary", "cat"]);
    let mut stream = raw_upgrade(server.port);
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(0x8000_0000_0000_0010u64).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    stream.write_all(&header).unwrap();
    let mut data = Vec::new();
    let _ = stream.read_to_end(&mut data);
    assert!(data.len() >= 4, "{data:?}");
    assert_eq!(data[0], 0x88, "{data:?}");
    assert_eq!(u16::from_be_bytes([data[2], data[3]]), 1002);
}

#[test]
fn a_huge_but_legal_length_is_refused_with_1009_before_its_payload() {
    let server = Server::start(&["--binary", "cat"]);
    let mut stream = raw_upgrade(server.port);
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    stream.write_all(&header).unwrap();
    let mut data = Vec::new();
    let _ = stream.read_to_end(&mut data);
    assert!(data.len() >= 4, "{data:?}");
    assert_eq!(u16::from_be_bytes([data[2], data[3]]), 1009);
}

#[test]
fn fragmented_text_split_inside_a_character_is_reassembled() {
    let server = Server::start(&["cat"]);
    let mut stream = raw_upgrade(server.port);
    let text = "señal ∑ 𝄞".as_bytes();
    // Fragments cut inside multi-byte characters, with a ping between them.
    stream.write_all(&frame(0x01, &text[..3])).unwrap();
    stream.write_all(&frame(0x89, b"mid")).unwrap();
    stream.write_all(&frame(0x00, &text[3..9])).unwrap();
    stream.write_all(&frame(0x80, &text[9..])).unwrap();
    let mut got = Vec::new();
    let want_pong = b"\x8a\x03mid".to_vec();
    let mut want_text = vec![0x81, text.len() as u8];
    want_text.extend_from_slice(text);
    let mut byte = [0u8; 1];
    while got.len() < want_pong.len() + want_text.len() {
        stream.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
    }
    assert_eq!(&got[..want_pong.len()], &want_pong[..]);
    assert_eq!(&got[want_pong.len()..], &want_text[..]);
}
