//! `--unbuffered`: the program's output is a terminal, so programs that buffer a pipe
//! (C stdio, Python, grep, awk) deliver each line as it is printed. Each program prints the
//! wall-clock time (ms) at which it prints a line; the client compares it with the time the
//! message arrives.

mod common;

use common::*;
use futures_util::StreamExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

/// The most a line may take from being printed to arriving at the client.
const PROMPT_MS: i64 = 100;
/// Lines each timing program prints, and the pause after each.
const LINES: usize = 5;
const PAUSE: &str = "0.2";

/// Timed runs go one at a time, so they do not compete with each other for the CPU.
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A C program that prints a timestamp with plain `printf` (no `fflush`) and pauses.
fn c_program() -> PathBuf {
    let dir = temp_dir("unbuffered-c");
    let source = dir.join("stamps.c");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n#include <time.h>\n\
             int main(void) {{\n\
               for (int i = 0; i < {LINES}; i++) {{\n\
                 struct timespec now, pause = {{0, 200000000}};\n\
                 clock_gettime(CLOCK_REALTIME, &now);\n\
                 printf(\"%lld\\n\", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);\n\
                 nanosleep(&pause, NULL);\n\
               }}\n\
               return 0;\n\
             }}\n"
        ),
    )
    .unwrap();
    let binary = dir.join("stamps");
    let status = std::process::Command::new("cc")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("cc is missing: run scripts/install-test-deps.sh");
    assert!(status.success());
    binary
}

const PYTHON: &str =
    "import time\nfor i in range(5):\n    print(int(time.time() * 1000))\n    time.sleep(0.2)";

fn shell_pipeline(last_stage: &str) -> String {
    format!("for i in $(seq {LINES}); do date +%s%3N; sleep {PAUSE}; done | {last_stage}")
}

/// The programs of the issue, as (name, command line).
fn programs() -> Vec<(&'static str, Vec<String>)> {
    let c = c_program().to_string_lossy().into_owned();
    vec![
        ("C printf", vec![c]),
        ("python", vec!["python3".into(), "-c".into(), PYTHON.into()]),
        (
            "grep",
            vec!["sh".into(), "-c".into(), shell_pipeline("grep .")],
        ),
        (
            "gawk",
            vec!["sh".into(), "-c".into(), shell_pipeline("gawk '{ print }'")],
        ),
    ]
}

/// Runs `command` under websocketd with `flags`; returns, per message, the text and how
/// long after its printed timestamp it arrived.
async fn delays(flags: &[&str], command: &[String]) -> Vec<(String, i64)> {
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(command.iter().map(String::as_str));
    let server = Server::start(&args);
    let mut ws = connect(&server.url("/")).await;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let arrived = now_ms();
                let printed: i64 = text
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("not a timestamp: {text:?}"));
                seen.push((text.to_string(), arrived - printed));
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("no end of session: {seen:?}"),
        }
    }
    seen
}

#[tokio::test]
async fn each_line_arrives_within_100ms_of_being_printed() {
    for (name, command) in programs() {
        let measured = {
            let _one_at_a_time = TIMING.lock().await;
            delays(&["--unbuffered"], &command).await
        };
        eprintln!("--unbuffered {name}: delays in ms {measured:?}");
        assert_eq!(measured.len(), LINES, "{name}: {measured:?}");
        let worst = measured.iter().map(|(_, delay)| *delay).max().unwrap_or(0);
        assert!(
            worst < PROMPT_MS,
            "{name}: a line took {worst} ms to arrive: {measured:?}"
        );
    }
}

/// Documents the problem `--unbuffered` solves: without it these programs' output sits in
/// their buffers until they exit, so the first line arrives about a second late.
#[tokio::test]
async fn without_the_flag_lines_wait_in_the_programs_buffer() {
    for (name, command) in programs() {
        let measured = {
            let _one_at_a_time = TIMING.lock().await;
            delays(&[], &command).await
        };
        eprintln!("without --unbuffered {name}: delays in ms {measured:?}");
        assert_eq!(measured.len(), LINES, "{name}: {measured:?}");
        let first = measured[0].1;
        assert!(
            first >= 500,
            "{name}: the first line arrived after {first} ms: {measured:?}"
        );
    }
}

#[tokio::test]
async fn the_terminal_is_raw_80x24_and_stdin_stays_a_pipe() {
    let probe = "exec 3>&1; stty size <&3; \
        stty -a <&3 | tr ' ;' '\\n\\n' | grep -x -e -echo -e -opost -e -isig -e -icanon -e -icrnl; \
        [ -t 0 ] && echo stdin-terminal || echo stdin-pipe; \
        [ -t 2 ] && echo stderr-terminal || echo stderr-pipe; \
        echo TERM=$TERM; \
        cat";
    let server = Server::start(&["--unbuffered", "sh", "-c", probe]);
    let mut ws = connect(&server.url("/")).await;
    let mut lines = Vec::new();
    for _ in 0..9 {
        lines.push(next_text(&mut ws).await);
    }
    let mut flags = lines[1..6].to_vec();
    flags.sort();
    assert_eq!(lines[0], "24 80", "{lines:?}");
    assert_eq!(
        flags,
        ["-echo", "-icanon", "-icrnl", "-isig", "-opost"],
        "{lines:?}"
    );
    assert_eq!(
        lines[6..],
        ["stdin-pipe", "stderr-pipe", "TERM=dumb"],
        "{lines:?}"
    );
    // Input still reaches the program as lines on a pipe, and its echo comes back.
    send_text(&mut ws, "hello").await;
    assert_eq!(next_text(&mut ws).await, "hello");
    ws.close(None).await.unwrap();
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert!(transcript.texts.is_empty(), "{transcript:?}");
}

#[tokio::test]
async fn output_written_just_before_exit_is_not_lost() {
    let server = Server::start(&["--unbuffered", "sh", "-c", "seq 1 20000; printf end"]);
    for _ in 0..3 {
        let mut ws = connect(&server.url("/")).await;
        let transcript = read_all(&mut ws, DEADLINE).await;
        assert_eq!(transcript.close.as_ref().map(|c| c.0), Some(1000));
        assert_eq!(transcript.texts.len(), 20001);
        assert_eq!(transcript.texts[0], "1");
        assert_eq!(transcript.texts[19999], "20000");
        assert_eq!(transcript.texts[20000], "end");
    }
}

#[tokio::test]
async fn binary_mode_relays_the_bytes_unchanged_as_they_come() {
    let program = "import time, sys\n\
        sys.stdout.write('a\\r\\nb\\n')\n\
        for i in range(5):\n    print(int(time.time() * 1000))\n    time.sleep(0.2)";
    let _one_at_a_time = TIMING.lock().await;
    let server = Server::start(&["--unbuffered", "--binary", "python3", "-c", program]);
    let mut ws = connect(&server.url("/")).await;
    let mut all = Vec::new();
    let mut worst = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => {
                let arrived = now_ms();
                all.extend_from_slice(&data);
                // The newest complete timestamp line in this chunk.
                let text = String::from_utf8_lossy(&data).into_owned();
                if let Some(printed) = text
                    .lines()
                    .filter_map(|l| l.parse::<i64>().ok())
                    .next_back()
                {
                    worst = worst.max(arrived - printed);
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("no end of session"),
        }
    }
    let text = String::from_utf8(all).unwrap();
    assert!(text.starts_with("a\r\nb\n"), "{text:?}");
    assert_eq!(text.matches('\n').count(), 2 + LINES, "{text:?}");
    assert!(!text[5..].contains('\r'), "{text:?}");
    assert!(worst < PROMPT_MS, "a line took {worst} ms: {text:?}");
}

#[tokio::test]
async fn passstderr_gives_stderr_a_terminal_of_its_own() {
    let program = "import os, sys, time\n\
        print('separate' if os.ttyname(1) != os.ttyname(2) else 'shared', file=sys.stderr)\n\
        for i in range(5):\n    print(int(time.time() * 1000))\n    time.sleep(0.2)";
    let _one_at_a_time = TIMING.lock().await;
    let server = Server::start(&["--unbuffered", "--passstderr", "python3", "-c", program]);
    let mut ws = connect(&server.url("/")).await;
    let mut stdout_delays = Vec::new();
    let mut stderr = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let arrived = now_ms();
                let message: serde_json::Value = serde_json::from_str(&text).unwrap();
                let data = message["data"].as_str().unwrap().to_string();
                match message["stream"].as_str() {
                    Some("stdout") => stdout_delays.push(arrived - data.parse::<i64>().unwrap()),
                    _ => stderr.push(data),
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("no end of session"),
        }
    }
    assert_eq!(stderr, ["separate"]);
    assert_eq!(stdout_delays.len(), LINES);
    assert!(
        stdout_delays.iter().all(|&d| d < PROMPT_MS),
        "{stdout_delays:?}"
    );
}
