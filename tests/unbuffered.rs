//! `--unbuffered`: the program's output is a terminal, so programs that buffer a pipe
//! (C stdio, Python, grep, awk) deliver each line as it is printed.
//!
//! Each timing program prints the wall-clock time (ms) at which it prints a line, then waits
//! (up to a limit) for the client to answer that line before printing the next, and at the
//! end prints how many answers came in time. A line held in a buffer cannot be answered, so
//! all answers arriving proves every line was delivered while the program was still running,
//! however loaded the machine; the printed times add how promptly.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

/// The most a line may take, in the median, from being printed to arriving at the client.
const PROMPT_MS: i64 = 100;
/// Lines each timing program prints.
const LINES: usize = 5;
/// How long a program waits for the client's answer to a line with `--unbuffered` (only
/// reached if the line is not delivered), and the most any one line may take.
const ANSWER_WAIT_S: &str = "2";
const WORST_MS: i64 = 1000;
/// The same wait without the flag, where the answer never comes before the program exits.
const BUFFERED_WAIT_S: &str = "0.2";

/// Timed runs go one at a time, so they do not compete with each other for the CPU.
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A C program that prints a timestamp with plain `printf` (no `fflush`), waits up to
/// `wait_s` seconds for a line on stdin, and finally prints `acks N`.
fn c_program(wait_s: &str) -> PathBuf {
    let dir = temp_dir("unbuffered-c");
    let source = dir.join("stamps.c");
    let wait_ms = (wait_s.parse::<f64>().unwrap() * 1000.0) as i64;
    std::fs::write(
        &source,
        format!(
            "#include <poll.h>\n#include <stdio.h>\n#include <time.h>\n\
             int main(void) {{\n\
               int acks = 0; char line[64];\n\
               for (int i = 0; i < {LINES}; i++) {{\n\
                 struct timespec now;\n\
                 clock_gettime(CLOCK_REALTIME, &now);\n\
                 printf(\"%lld\\n\", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);\n\
                 struct pollfd in = {{0, POLLIN, 0}};\n\
                 if (poll(&in, 1, {wait_ms}) == 1 && fgets(line, sizeof line, stdin)) acks++;\n\
               }}\n\
               printf(\"acks %d\\n\", acks);\n\
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

/// The Python version of the C program; `before` runs first.
fn python_program(wait_s: &str, before: &str) -> String {
    format!(
        "import select, sys, time\n{before}\nacks = 0\n\
         for i in range({LINES}):\n\
         \x20   print(int(time.time() * 1000))\n\
         \x20   if select.select([sys.stdin], [], [], {wait_s})[0] and sys.stdin.readline():\n\
         \x20       acks += 1\n\
         print('acks', acks)"
    )
}

/// The same in bash, its output piped through `last_stage`.
fn shell_pipeline(wait_s: &str, last_stage: &str) -> String {
    format!(
        "(n=0; for i in $(seq {LINES}); do date +%s%3N; read -r -t {wait_s} x && n=$((n+1)); \
         done; echo acks $n) | {last_stage}"
    )
}

/// The programs of the issue, as (name, command line), waiting `wait_s` for answers.
fn programs(wait_s: &str) -> Vec<(&'static str, Vec<String>)> {
    let c = c_program(wait_s).to_string_lossy().into_owned();
    vec![
        ("C printf", vec![c]),
        (
            "python",
            vec!["python3".into(), "-c".into(), python_program(wait_s, "")],
        ),
        (
            "grep",
            vec!["bash".into(), "-c".into(), shell_pipeline(wait_s, "grep .")],
        ),
        (
            "gawk",
            vec![
                "bash".into(),
                "-c".into(),
                shell_pipeline(wait_s, "gawk '{ print }'"),
            ],
        ),
    ]
}

/// What a timing run saw: how long after its printed time each line arrived, and how many
/// answers the program says came while it waited.
#[derive(Debug)]
struct Timed {
    delays: Vec<i64>,
    acks: Option<usize>,
}

impl Timed {
    fn median(&self) -> i64 {
        let mut sorted = self.delays.clone();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or(i64::MAX)
    }

    fn worst(&self) -> i64 {
        self.delays.iter().copied().max().unwrap_or(i64::MAX)
    }

    /// Takes one line of output: a timestamp (answered at once) or the final count.
    async fn take<S>(&mut self, line: &str, ws: &mut S, answer: Message)
    where
        S: futures_util::Sink<Message> + Unpin,
    {
        let arrived = now_ms();
        if let Some(count) = line.strip_prefix("acks ") {
            self.acks = count.trim().parse().ok();
        } else {
            let printed: i64 = line
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("not a timestamp: {line:?}"));
            self.delays.push(arrived - printed);
            let _ = ws.send(answer).await;
        }
    }
}

/// Runs `command` under websocketd with `flags`, answering each line.
async fn delays(flags: &[&str], command: &[String]) -> Timed {
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(command.iter().map(String::as_str));
    let server = Server::start(&args);
    let mut ws = connect(&server.url("/")).await;
    let mut seen = Timed {
        delays: Vec::new(),
        acks: None,
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                seen.take(&text, &mut ws, Message::text("next")).await;
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
    for (name, command) in programs(ANSWER_WAIT_S) {
        let measured = {
            let _one_at_a_time = TIMING.lock().await;
            delays(&["--unbuffered"], &command).await
        };
        eprintln!("--unbuffered {name}: {measured:?}");
        assert_eq!(measured.delays.len(), LINES, "{name}: {measured:?}");
        // Every line reached the client while the program was waiting for its answer.
        assert_eq!(measured.acks, Some(LINES), "{name}: {measured:?}");
        assert!(
            measured.median() < PROMPT_MS && measured.worst() < WORST_MS,
            "{name}: lines took too long to arrive: {measured:?}"
        );
    }
}

/// Documents the problem `--unbuffered` solves: without it these programs' output sits in
/// their buffers until they exit, so no line can be answered and the first arrives late.
#[tokio::test]
async fn without_the_flag_lines_wait_in_the_programs_buffer() {
    for (name, command) in programs(BUFFERED_WAIT_S) {
        let measured = {
            let _one_at_a_time = TIMING.lock().await;
            delays(&[], &command).await
        };
        eprintln!("without --unbuffered {name}: {measured:?}");
        assert_eq!(measured.delays.len(), LINES, "{name}: {measured:?}");
        assert_eq!(measured.acks, Some(0), "{name}: {measured:?}");
        let first = measured.delays[0];
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
    let program = python_program(ANSWER_WAIT_S, "sys.stdout.write('a\\r\\nb\\n')");
    let _one_at_a_time = TIMING.lock().await;
    let server = Server::start(&["--unbuffered", "--binary", "python3", "-c", &program]);
    let mut ws = connect(&server.url("/")).await;
    let mut all = Vec::new();
    let mut seen = Timed {
        delays: Vec::new(),
        acks: None,
    };
    let mut pending = String::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => {
                all.extend_from_slice(&data);
                // Chunks need not end at line ends: take the complete lines.
                pending.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    let line = line.trim_end();
                    if line.starts_with("acks") || line.parse::<i64>().is_ok() {
                        let answer = Message::binary(b"next\n".to_vec());
                        seen.take(line, &mut ws, answer).await;
                    }
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("no end of session"),
        }
    }
    let text = String::from_utf8(all).unwrap();
    assert!(text.starts_with("a\r\nb\n"), "{text:?}");
    assert_eq!(text.matches('\n').count(), 3 + LINES, "{text:?}");
    assert!(!text[5..].contains('\r'), "{text:?}");
    assert_eq!(seen.acks, Some(LINES), "{seen:?}: {text:?}");
    assert!(
        seen.median() < PROMPT_MS && seen.worst() < WORST_MS,
        "{seen:?}: {text:?}"
    );
}

#[tokio::test]
async fn passstderr_gives_stderr_a_terminal_of_its_own() {
    let program = python_program(
        ANSWER_WAIT_S,
        "import os\nprint('separate' if os.ttyname(1) != os.ttyname(2) else 'shared', \
         file=sys.stderr)",
    );
    let _one_at_a_time = TIMING.lock().await;
    let server = Server::start(&["--unbuffered", "--passstderr", "python3", "-c", &program]);
    let mut ws = connect(&server.url("/")).await;
    let mut seen = Timed {
        delays: Vec::new(),
        acks: None,
    };
    let mut stderr = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let message: serde_json::Value = serde_json::from_str(&text).unwrap();
                let data = message["data"].as_str().unwrap().to_string();
                match message["stream"].as_str() {
                    Some("stdout") => seen.take(&data, &mut ws, Message::text("next")).await,
                    _ => stderr.push(data),
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("no end of session"),
        }
    }
    assert_eq!(stderr, ["separate"]);
    assert_eq!(seen.delays.len(), LINES, "{seen:?}");
    assert_eq!(seen.acks, Some(LINES), "{seen:?}");
    assert!(
        seen.median() < PROMPT_MS && seen.worst() < WORST_MS,
        "{seen:?}"
    );
}
