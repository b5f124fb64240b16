//! Counts from 1 to 10, one number every half second.
//! Build and run: rustc --edition=2021 count.rs && websocketd --port=8080 ./count

use std::io::Write;
use std::thread::sleep;
use std::time::Duration;

fn main() {
    // Rust's standard output flushes at every newline: nothing more to do.
    let mut out = std::io::stdout();
    for i in 1..=10 {
        if i > 1 {
            sleep(Duration::from_millis(500));
        }
        if writeln!(out, "{i}").is_err() {
            return; // websocketd is gone
        }
    }
}
