//! A chat room: every line a client sends goes to every client, stamped with the time (UTC).
//! One copy serves the whole room:
//!   rustc --edition=2021 chat.rs && websocketd --port=8080 --broadcast --broadcastinput=lines ./chat

use std::io::{BufRead, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// The time of day in UTC as HH:MM:SS (the standard library has no calendar, but a day
/// is always 86,400 seconds of Unix time).
fn time_of_day() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn main() {
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        let message = [time_of_day().as_bytes(), b" ", &line, b"\n"].concat();
        if out.write_all(&message).is_err() {
            return;
        }
    }
}
