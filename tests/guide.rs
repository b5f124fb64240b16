//! Runs docs/guide.md: every program is written out, every command run, every daemon
//! started and every WebSocket conversation replayed against it, so the guide cannot drift.
//! Block kinds (the fence's info string): `file=NAME` a program; `sh run` commands (`$ `
//! lines) with their expected output below them; `sh serve` one websocketd command;
//! `text session PATH [origin=URL]` a conversation; `text log` a line the daemon printed.
//! Any other fenced block fails the test, so nothing in the guide goes unchecked.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::path::Path;
use std::process::Command;
use tokio_tungstenite::tungstenite::Message;

/// The port the guide writes; the test uses a free one instead.
const GUIDE_PORT: &str = "8080";

struct Block {
    info: String,
    body: Vec<String>,
    line: usize,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => {
                current = Some(Block {
                    info: info.trim().to_string(),
                    body: Vec::new(),
                    line: index + 1,
                })
            }
            (Some(_), Some("")) => out.extend(current.take()),
            (Some(block), _) => block.body.push(line.to_string()),
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "an unclosed code block");
    out
}

/// Runs `$ ` commands with `sh`; the lines after a command are its expected output.
fn run_commands(dir: &Path, block: &Block, port: u16) {
    let mut i = 0;
    while i < block.body.len() {
        let command = block.body[i]
            .strip_prefix("$ ")
            .unwrap_or_else(|| panic!("line {}: expected a `$ ` command", block.line + i + 1))
            .replace(GUIDE_PORT, &port.to_string());
        let mut expected = Vec::new();
        i += 1;
        while i < block.body.len() && !block.body[i].starts_with("$ ") {
            expected.push(block.body[i].as_str());
            i += 1;
        }
        let output = run_bounded(
            Command::new("sh").args(["-c", &command]).current_dir(dir),
            DEADLINE,
        );
        assert!(
            output.status.success(),
            "guide line {}: `{command}` failed: {}",
            block.line,
            String::from_utf8_lossy(&output.stderr)
        );
        let got = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            got.lines().collect::<Vec<_>>(),
            expected,
            "guide line {}: output of `{command}`",
            block.line
        );
    }
}

fn serve(dir: &Path, block: &Block) -> Server {
    assert_eq!(
        block.body.len(),
        1,
        "guide line {}: one command",
        block.line
    );
    let command = block.body[0]
        .strip_prefix("$ websocketd ")
        .unwrap_or_else(|| panic!("guide line {}: not a websocketd command", block.line));
    let port_flag = format!("--port={GUIDE_PORT}");
    let args: Vec<&str> = command
        .split_whitespace()
        .filter(|arg| *arg != port_flag)
        .collect();
    Server::start_in(dir, &args)
}

async fn session(server: &Server, block: &Block) {
    let mut words = block.info.split_whitespace().skip(2);
    let path = words.next().expect("session PATH");
    let headers: Vec<(&str, &str)> = words
        .filter_map(|word| word.strip_prefix("origin="))
        .map(|origin| ("Origin", origin))
        .collect();
    let scheme_url = server.url(path);
    let mut lines = block.body.iter().map(String::as_str).peekable();
    if let Some(refused) = lines.peek().and_then(|l| l.strip_prefix("refused ")) {
        let error = connect_with(&scheme_url, &headers)
            .await
            .expect_err("the connection should be refused");
        assert!(
            error.contains(refused),
            "guide line {}: {error}",
            block.line
        );
        return;
    }
    let mut ws = connect_with(&scheme_url, &headers)
        .await
        .unwrap_or_else(|err| panic!("guide line {}: {err}", block.line));
    for line in lines {
        if let Some(text) = line.strip_prefix("> ") {
            let message = match text.strip_prefix("hex:") {
                Some(hex) => Message::Binary(decode_hex(hex).into()),
                None => Message::Text(text.to_string().into()),
            };
            ws.send(message).await.expect("send");
        } else if let Some(want) = line.strip_prefix("< ") {
            let got = match tokio::time::timeout(DEADLINE, ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => text.to_string(),
                Ok(Some(Ok(Message::Binary(data)))) => format!("hex:{}", encode_hex(&data)),
                other => panic!(
                    "guide line {}: expected {want:?}, got {other:?}",
                    block.line
                ),
            };
            assert_eq!(got, want, "guide line {}", block.line);
        } else if let Some(want) = line.strip_prefix("closed ") {
            let transcript = read_all(&mut ws, DEADLINE).await;
            let (code, reason) = transcript.close.clone().expect("a close frame");
            let got = format!("{code} {reason}");
            assert_eq!(got.trim_end(), want, "guide line {}", block.line);
            assert!(transcript.texts.is_empty(), "{transcript:?}");
            return;
        } else {
            panic!("guide line {}: unknown session line {line:?}", block.line);
        }
    }
    let _ = ws.close(None).await;
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn encode_hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// The log line must contain the pieces between the `…` in order.
fn log_line(server: &Server, block: &Block) {
    for expected in &block.body {
        let expected = expected.replace(
            &format!("localhost:{GUIDE_PORT}"),
            &format!("127.0.0.1:{}", server.port),
        );
        let pieces: Vec<&str> = expected.split('…').collect();
        let matches = |line: &str| {
            let mut rest = line;
            pieces.iter().all(|piece| match rest.find(piece) {
                Some(at) => {
                    rest = &rest[at + piece.len()..];
                    true
                }
                None => false,
            })
        };
        assert!(
            server.stdout.wait_for(DEADLINE, matches).is_some(),
            "guide line {}: no log line like {expected:?} in {:?}",
            block.line,
            server.stdout.all()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_program_and_command_in_the_guide_runs() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).expect("docs/guide.md");
    let dir = temp_dir("guide");
    let mut server: Option<Server> = None;
    let mut counted = 0;
    for block in blocks(&guide) {
        let info: Vec<&str> = block.info.split_whitespace().collect();
        if let Some(name) = info.iter().find_map(|word| word.strip_prefix("file=")) {
            let mut text = block.body.join("\n");
            text.push('\n');
            std::fs::write(dir.join(name), text).unwrap();
        } else if info.get(1) == Some(&"run") {
            let port = server.as_ref().map_or(0, |s| s.port);
            run_commands(&dir, &block, port);
        } else if info.get(1) == Some(&"serve") {
            drop(server.take());
            server = Some(serve(&dir, &block));
        } else if info.get(1) == Some(&"session") {
            session(server.as_ref().expect("a server to talk to"), &block).await;
        } else if info.get(1) == Some(&"log") {
            log_line(server.as_ref().expect("a server"), &block);
        } else {
            panic!(
                "guide line {}: a code block the test cannot run: ```{}",
                block.line, block.info
            );
        }
        counted += 1;
    }
    assert!(counted >= 30, "only {counted} blocks found");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
