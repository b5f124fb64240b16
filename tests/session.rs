//! Black-box tests of the WebSocket ⇄ program relay.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn count_example_counts_to_ten_then_closes_normally() {
    let server = Server::start(&["examples/bash/count.sh"]);
    let started = Instant::now();
    let mut ws = connect(&server.url("/")).await;
    let first = next_text(&mut ws).await;
    let first_latency = started.elapsed();
    let mut transcript = read_all(&mut ws, DEADLINE).await;
    transcript.texts.insert(0, first);
    let expected: Vec<String> = (1..=10).map(|n| n.to_string()).collect();
    assert_eq!(transcript.texts, expected);
    assert_eq!(transcript.close, Some((1000, String::new())));
    assert!(first_latency < Duration::from_secs(2), "{first_latency:?}");
}

#[tokio::test]
async fn non_zero_exit_closes_with_1011_and_status() {
    let server = Server::start(&["sh", "-c", "echo before; exit 3"]);
    let mut ws = connect(&server.url("/")).await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts, ["before"]);
    assert_eq!(transcript.close, Some((1011, "exit status 3".to_string())));
}

#[tokio::test]
async fn killed_program_closes_with_1011_and_signal() {
    let server = Server::start(&["sh", "-c", "echo x; kill -9 $$"]);
    let mut ws = connect(&server.url("/")).await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts, ["x"]);
    assert_eq!(transcript.close, Some((1011, "signal 9".to_string())));
}

#[tokio::test]
async fn last_line_without_newline_is_delivered() {
    let server = Server::start(&["printf", "one\\ntwo\\r\\nlast"]);
    let mut ws = connect(&server.url("/")).await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts, ["one", "two", "last"]);
    assert_eq!(transcript.close, Some((1000, String::new())));
}

#[tokio::test]
async fn output_written_just_before_exit_is_not_lost() {
    let server = Server::start(&["seq", "1", "20000"]);
    let mut ws = connect(&server.url("/")).await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts.len(), 20000);
    assert_eq!(transcript.texts.last().map(String::as_str), Some("20000"));
    assert_eq!(transcript.close, Some((1000, String::new())));
}

#[tokio::test]
async fn text_echo_keeps_lines_exact() {
    let server = Server::start(&["cat"]);
    let mut ws = connect(&server.url("/")).await;
    send_text(&mut ws, "hello").await;
    assert_eq!(next_text(&mut ws).await, "hello");
    // Embedded newlines become several lines, hence several messages.
    send_text(&mut ws, "a\nb").await;
    assert_eq!(next_text(&mut ws).await, "a");
    assert_eq!(next_text(&mut ws).await, "b");
    // A trailing \r\n: the \r\n is one line end, the added \n another.
    send_text(&mut ws, "crlf\r\n").await;
    assert_eq!(next_text(&mut ws).await, "crlf");
    assert_eq!(next_text(&mut ws).await, "");
    send_text(&mut ws, "").await;
    assert_eq!(next_text(&mut ws).await, "");
    send_text(&mut ws, "inner\rcr").await;
    assert_eq!(next_text(&mut ws).await, "inner\rcr");
    let big = "x".repeat(900 * 1024);
    send_text(&mut ws, &big).await;
    assert_eq!(next_text(&mut ws).await, big);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn invalid_utf8_text_fails_with_1007() {
    let server = Server::start(&["cat"]);
    let mut stream = raw_upgrade(server.port);
    // A masked text frame holding 0xff 0xfe.
    send_frame(&mut stream, 0x81, &[0xff, 0xfe]);
    let frames = read_frames(&mut stream);
    let close = frames
        .iter()
        .find(|(op, _)| *op == 0x8)
        .expect("close frame");
    assert_eq!(u16::from_be_bytes([close.1[0], close.1[1]]), 1007);
}

#[tokio::test]
async fn protocol_violations_fail_with_1002() {
    let server = Server::start(&["cat"]);
    for (first_byte, mask) in [(0x81u8, false), (0xC1, true), (0x83, true)] {
        let mut stream = raw_upgrade(server.port);
        let mut frame = vec![first_byte, if mask { 0x82 } else { 0x02 }];
        if mask {
            frame.extend_from_slice(&[0, 0, 0, 0]);
        }
        frame.extend_from_slice(b"hi");
        std::io::Write::write_all(&mut stream, &frame).unwrap();
        let frames = read_frames(&mut stream);
        let close = frames
            .iter()
            .find(|(op, _)| *op == 0x8)
            .expect("close frame");
        assert_eq!(
            u16::from_be_bytes([close.1[0], close.1[1]]),
            1002,
            "first byte {first_byte:#x}"
        );
    }
    // The daemon keeps serving.
    let mut ws = connect(&server.url("/")).await;
    send_text(&mut ws, "still here").await;
    assert_eq!(next_text(&mut ws).await, "still here");
}

#[tokio::test]
async fn invalid_utf8_output_is_sent_unchanged() {
    let server = Server::start(&["printf", "ok\\n\\377\\376\\n"]);
    let mut stream = raw_upgrade(server.port);
    let frames = read_frames(&mut stream);
    let texts: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|(op, _)| *op == 1)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(texts, [&b"ok".to_vec(), &vec![0xff, 0xfe]]);
}

#[tokio::test]
async fn binary_echo_up_to_four_mebibytes() {
    let server = Server::start(&["--binary", "--maxframesize=8388608", "cat"]);
    let mut ws = connect(&server.url("/")).await;
    for size in [1usize, 100, 65536, 1 << 20, 4 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        ws.send(Message::binary(payload.clone())).await.unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < size {
            echoed.extend(next_binary(&mut ws).await);
        }
        assert_eq!(echoed.len(), size);
        assert!(echoed == payload, "payload of {size} bytes differs");
    }
}

#[tokio::test]
async fn binary_echo_with_eight_in_flight_does_not_stall() {
    let server = Server::start(&["--binary", "cat"]);
    let ws = connect(&server.url("/")).await;
    let (mut sink, mut stream) = ws.split();
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let expected: Vec<u8> = payload.repeat(8);
    let sender = tokio::spawn(async move {
        for _ in 0..8 {
            sink.send(Message::binary(payload.clone())).await.unwrap();
        }
        sink
    });
    let received = binary_echoes(&mut stream, expected.len()).await;
    assert!(received == expected);
    let _sink = sender.await.unwrap();
}

/// A burst of binary messages of every size, sent without waiting: several arrive in one
/// socket read and reach the program in one write, short ones copied together, long ones
/// from where they arrived; every byte comes back, in order.
#[tokio::test]
async fn binary_burst_of_mixed_sizes_comes_back_whole_and_in_order() {
    let server = Server::start(&["--binary", "cat"]);
    let ws = connect(&server.url("/")).await;
    let (mut sink, mut stream) = ws.split();
    let sizes: Vec<usize> = (0..96)
        .map(|i| [1, 700, 8191, 8192, 65536, 200_000][i % 6] + i)
        .collect();
    let messages: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(n, &size)| (0..size).map(|i| (i * 31 + n * 7) as u8).collect())
        .collect();
    let expected = messages.concat();
    let sender = tokio::spawn(async move {
        for message in messages {
            sink.send(Message::binary(message)).await.unwrap();
        }
        sink
    });
    let received = binary_echoes(&mut stream, expected.len()).await;
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "the echo differs from what was sent");
    let _sink = sender.await.unwrap();
}

/// The same in line mode: each message, short or long, is one line on stdin and comes
/// back as one message.
#[tokio::test]
async fn text_burst_of_mixed_sizes_comes_back_line_by_line() {
    let server = Server::start(&["cat"]);
    let ws = connect(&server.url("/")).await;
    let (mut sink, mut stream) = ws.split();
    let lines: Vec<String> = (0..300)
        .map(|i| {
            let letter = char::from(b'a' + (i % 26) as u8);
            letter.to_string().repeat([1, 50, 9000, 70_000][i % 4] + i)
        })
        .collect();
    let expected = lines.clone();
    let sender = tokio::spawn(async move {
        for line in lines {
            sink.send(Message::text(line)).await.unwrap();
        }
        sink
    });
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for (n, want) in expected.iter().enumerate() {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Text(got)))) => {
                assert_eq!(got.len(), want.len(), "message {n}");
                assert!(got.as_str() == want.as_str(), "message {n} differs");
            }
            other => panic!("message {n} did not come back: {other:?}"),
        }
    }
    let _sink = sender.await.unwrap();
}

/// Binary output in bursts of every size (one message per read of the pipe): every byte
/// arrives in order, pings sent meanwhile are answered between whole frames, and the
/// program's exit closes with 1000.
#[tokio::test]
async fn binary_output_of_every_size_arrives_whole_with_pongs_between_frames() {
    let program = "for n in 1 2 3 50 2000 9000 40000 300000 5 120000; do seq $n; done";
    let server = Server::start(&["--binary", "sh", "-c", program]);
    let mut expected = Vec::new();
    for n in [1, 2, 3, 50, 2000, 9000, 40000, 300000, 5, 120000] {
        for i in 1..=n {
            expected.extend_from_slice(format!("{i}\n").as_bytes());
        }
    }
    let mut ws = connect(&server.url("/")).await;
    let mut received = Vec::new();
    let (mut pings, mut pongs) = (0, 0);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => {
                received.extend_from_slice(&data);
                if pings < 20 {
                    ws.send(Message::Ping(vec![pings].into())).await.unwrap();
                    pings += 1;
                }
            }
            Ok(Some(Ok(Message::Pong(_)))) => pongs += 1,
            Ok(Some(Ok(Message::Close(frame)))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
                break;
            }
            other => panic!("after {} bytes: {other:?}", received.len()),
        }
    }
    assert_eq!(received.len(), expected.len());
    assert!(
        received == expected,
        "the output differs from what the program wrote"
    );
    assert!(pongs > 0, "no pong among {pings} pings");
}

#[tokio::test]
async fn message_size_limit_allows_n_and_refuses_n_plus_one() {
    let server = Server::start(&["--maxframesize=1000", "cat"]);
    let mut ws = connect(&server.url("/")).await;
    let exact = "y".repeat(1000);
    send_text(&mut ws, &exact).await;
    assert_eq!(next_text(&mut ws).await, exact);
    send_text(&mut ws, &"z".repeat(1001)).await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1009));
}

#[tokio::test]
async fn messages_of_the_other_type_are_ignored() {
    let server = Server::start(&["cat"]);
    let mut ws = connect(&server.url("/")).await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    send_text(&mut ws, "text").await;
    assert_eq!(next_text(&mut ws).await, "text");
}

#[tokio::test]
async fn passstderr_wraps_both_streams_in_json() {
    let server = Server::start(&[
        "--passstderr",
        "sh",
        "-c",
        "echo '<out>'; echo 'err \"q\"' >&2; printf tail >&2",
    ]);
    let mut ws = connect(&server.url("/")).await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    let mut texts = transcript.texts.clone();
    texts.sort();
    assert_eq!(
        texts,
        [
            r#"{"stream":"stderr","data":"err \"q\""}"#,
            r#"{"stream":"stderr","data":"tail"}"#,
            r#"{"stream":"stdout","data":"\u003cout\u003e"}"#,
        ]
    );
    assert_eq!(transcript.close, Some((1000, String::new())));
}

#[tokio::test]
async fn client_close_is_answered_and_program_stopped() {
    let server = Server::start(&["cat"]);
    let mut ws = connect(&server.url("/")).await;
    send_text(&mut ws, "ping").await;
    assert_eq!(next_text(&mut ws).await, "ping");
    ws.close(None).await.unwrap();
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert!(transcript.close.is_some());
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("| DISCONNECT"))
        .is_some());
    assert!(wait_until(DEADLINE, || programs(server.pid()).is_empty()));
}

#[tokio::test]
async fn stdin_closed_by_program_ends_session_at_next_message() {
    let server = Server::start(&["sh", "-c", "exec 0<&-; echo ready; exec sleep 30"]);
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(next_text(&mut ws).await, "ready");
    let sent = Instant::now();
    send_text(&mut ws, "nobody reads this").await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert!(transcript.texts.is_empty());
    // The program kept running, so the ladder stopped it with SIGINT after 100 ms.
    assert_eq!(transcript.close, Some((1011, "signal 2".to_string())));
    assert!(sent.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_program_that_cannot_start_closes_with_1011() {
    let dir = temp_dir("nolaunch");
    std::fs::write(dir.join("plain.txt"), "not a program").unwrap();
    let dir_arg = format!("--dir={}", dir.display());
    let server = Server::start(&[&dir_arg]);
    let mut ws = connect(&server.url("/plain.txt")).await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1011));
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("| ERROR  |")
            && l.contains("Could not launch process"))
        .is_some());
}

// Raw protocol helpers for cases a well-behaved client library will not produce.

fn send_frame(stream: &mut std::net::TcpStream, first: u8, payload: &[u8]) {
    use std::io::Write;
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).unwrap();
}

/// Reads server frames until the connection closes: (opcode, payload).
fn read_frames(stream: &mut std::net::TcpStream) -> Vec<(u8, Vec<u8>)> {
    use std::io::Read;
    let mut data = Vec::new();
    let _ = stream.read_to_end(&mut data);
    let mut frames = Vec::new();
    let mut rest = data.as_slice();
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let (len, header) = match rest[1] & 0x7f {
            126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if rest.len() < header + len {
            break;
        }
        frames.push((opcode, rest[header..header + len].to_vec()));
        rest = &rest[header + len..];
    }
    frames
}

/// The binary messages' bytes until `len` have arrived, within [`DEADLINE`].
async fn binary_echoes<S>(stream: &mut S, len: usize) -> Vec<u8>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while received.len() < len {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => received.extend_from_slice(&data),
            other => panic!("stalled after {} bytes: {other:?}", received.len()),
        }
    }
    received
}
