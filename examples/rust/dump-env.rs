//! Prints its environment as NAME=value lines sorted by name.
//! Build and run: rustc --edition=2021 dump-env.rs && websocketd --port=8080 ./dump-env

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

fn main() {
    let mut environ: Vec<_> = std::env::vars_os().collect();
    environ.sort();
    let mut out = std::io::stdout().lock();
    for (name, value) in environ {
        let line = [name.as_bytes(), b"=", value.as_bytes(), b"\n"].concat();
        if out.write_all(&line).is_err() {
            return;
        }
    }
}
