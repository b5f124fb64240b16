//! Sends "tick N" every second and, at the same time, answers every line it reads with
//! "echo: LINE": a second thread does the ticking.
//! Build and run: rustc --edition=2021 send-receive.rs && websocketd --port=8080 ./send-receive

use std::io::{BufRead, Write};
use std::thread;
use std::time::Duration;

/// Sends one line; standard output's lock keeps the two threads' lines apart.
fn send(line: &[u8]) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(line)
        .and_then(|()| out.write_all(b"\n"))
        .is_ok()
}

fn main() {
    thread::spawn(|| {
        for n in 1.. {
            thread::sleep(Duration::from_secs(1));
            if !send(format!("tick {n}").as_bytes()) {
                return;
            }
        }
    });
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return, // end of input: the client is gone
            Ok(_) => {}
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if !send(&[b"echo: ", line.as_slice()].concat()) {
            return;
        }
    }
}
