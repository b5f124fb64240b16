//! A CGI script: headers, an empty line, then the body.
//! Build and run: rustc --edition=2021 hello.rs && websocketd --port=8080 --cgidir=. and
//! open http://localhost:8080/hello?name=you

use std::env::var;

fn main() {
    print!("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    println!("Hello from a CGI script in Rust!");
    println!(
        "REQUEST_METHOD={}",
        var("REQUEST_METHOD").unwrap_or_default()
    );
    println!("QUERY_STRING={}", var("QUERY_STRING").unwrap_or_default());
}
