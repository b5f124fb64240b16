//! Answers every line it reads with "Hello, LINE!" until end of input.
//! Build and run: rustc --edition=2021 greeter.rs && websocketd --port=8080 ./greeter

use std::io::{BufRead, Write};

fn main() {
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    // Raw bytes, so that any input, valid UTF-8 or not, goes through unchanged.
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
        let sent = out
            .write_all(b"Hello, ")
            .and_then(|()| out.write_all(&line))
            .and_then(|()| out.write_all(b"!\n"));
        if sent.is_err() {
            return;
        }
    }
}
