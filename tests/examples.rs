//! Every example of `examples/`, in every language, served by the real daemon on 127.0.0.1
//! and checked with a real WebSocket (or HTTP) client: count, greeter, dump-env, the chat
//! room, send-receive, the CGI script and the `--dir` layout. The compiled languages are
//! built once per test run by `examples/build.sh`, the script users run too. A missing
//! toolchain fails the tests (never skips them) and says how to install it.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One language's examples.
struct Language {
    /// Its directory under `examples/` (and under the build directory when compiled).
    dir: &'static str,
    /// The scripts' extension (with the dot); empty for compiled programs.
    ext: &'static str,
    /// Commands that must be on PATH to build or run it.
    tools: &'static [&'static str],
    /// Built by `examples/build.sh` (the programs live in the build directory).
    compiled: bool,
    /// Its name as the CGI example prints it.
    title: &'static str,
}

const LANGUAGES: &[Language] = &[
    Language {
        dir: "bash",
        ext: ".sh",
        tools: &["sh"],
        compiled: false,
        title: "shell",
    },
    Language {
        dir: "python",
        ext: ".py",
        tools: &["python3"],
        compiled: false,
        title: "Python",
    },
    Language {
        dir: "perl",
        ext: ".pl",
        tools: &["perl"],
        compiled: false,
        title: "Perl",
    },
    Language {
        dir: "ruby",
        ext: ".rb",
        tools: &["ruby"],
        compiled: false,
        title: "Ruby",
    },
    Language {
        dir: "php",
        ext: ".php",
        tools: &["php"],
        compiled: false,
        title: "PHP",
    },
    Language {
        dir: "nodejs",
        ext: ".js",
        tools: &["node"],
        compiled: false,
        title: "Node.js",
    },
    Language {
        dir: "lua",
        ext: ".lua",
        tools: &["lua"],
        compiled: false,
        title: "Lua",
    },
    Language {
        dir: "c",
        ext: "",
        tools: &["cc"],
        compiled: true,
        title: "C",
    },
    Language {
        dir: "java",
        ext: "",
        tools: &["javac", "java"],
        compiled: true,
        title: "Java",
    },
    Language {
        dir: "go",
        ext: "",
        tools: &["go"],
        compiled: true,
        title: "Go",
    },
    Language {
        dir: "rust",
        ext: "",
        tools: &["rustc"],
        compiled: true,
        title: "Rust",
    },
];

impl Language {
    /// The directory holding its runnable programs: a ready `--dir`.
    fn programs(&self) -> PathBuf {
        if self.compiled {
            built().join(self.dir)
        } else {
            root().join("examples").join(self.dir)
        }
    }

    /// The file name of example `name` (`count.py`, or `count` when compiled).
    fn file(&self, name: &str) -> String {
        format!("{name}{}", self.ext)
    }

    /// The full path of example `name`, for the daemon's COMMAND.
    fn program(&self, name: &str) -> String {
        self.programs().join(self.file(name)).display().to_string()
    }
}

/// Whether `tool` is an executable on PATH.
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Fails (never skips) when a language's toolchain is missing.
fn require_toolchains() {
    let missing: Vec<String> = LANGUAGES
        .iter()
        .flat_map(|lang| lang.tools.iter().map(move |tool| (lang.dir, *tool)))
        .filter(|(_, tool)| !on_path(tool))
        .map(|(dir, tool)| format!("{tool} (for the {dir} examples)"))
        .collect();
    assert!(
        missing.is_empty(),
        "missing toolchains: {}; run scripts/install-test-deps.sh",
        missing.join(", ")
    );
}

/// The compiled examples, built once per test run by `examples/build.sh` into a directory
/// of the target's temporary area (Go's build cache stays there between runs).
fn built() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let out = tmp.join("examples-built");
        let _ = std::fs::remove_dir_all(&out);
        let started = Instant::now();
        let output = run_bounded(
            std::process::Command::new(root().join("examples/build.sh"))
                .arg(&out)
                .env("GOCACHE", tmp.join("examples-go-cache"))
                .env("GOPROXY", "off")
                .env("GOFLAGS", ""),
            Duration::from_secs(300),
        );
        if !output.status.success() {
            return Err(format!(
                "examples/build.sh failed (run scripts/install-test-deps.sh if a toolchain is missing):\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        eprintln!(
            "examples/build.sh built the C, Java, Go and Rust examples in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(out)
    });
    match result {
        Ok(dir) => dir.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// The text of a panic payload.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

/// Runs `check` for every language at once (each in a thread of its own, so that the
/// examples' own delays overlap), then fails with every language that failed.
fn in_every_language<F, Fut>(check: F)
where
    F: Fn(&'static Language) -> Fut + Sync,
    Fut: Future<Output = ()>,
{
    require_toolchains();
    built();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let running: Vec<_> = LANGUAGES
            .iter()
            .map(|lang| {
                let check = &check;
                let handle = scope.spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime")
                        .block_on(check(lang));
                });
                (lang, handle)
            })
            .collect();
        running
            .into_iter()
            .filter_map(|(lang, handle)| {
                handle
                    .join()
                    .err()
                    .map(|payload| format!("{}: {}", lang.dir, panic_text(payload)))
            })
            .collect()
    });
    assert!(
        failures.is_empty(),
        "examples failed:\n{}",
        failures.join("\n")
    );
}

/// Starts a daemon. The languages' threads take turns: between `free_port` choosing a port
/// and the daemon binding it, another thread's daemon could take the same port, and its
/// harness would then find a server listening there (not its own).
fn start(args: &[&str]) -> Server {
    static STARTING: Mutex<()> = Mutex::new(());
    let _turn = STARTING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Server::start(args)
}

/// `NAME=value` lines as a map, checking that they come sorted by name.
fn environment(lines: &[String]) -> BTreeMap<String, String> {
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once('=').map_or(l.as_str(), |(name, _)| name))
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "not sorted by name");
    lines
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Whether `line` is "HH:MM:SS TEXT".
fn stamped(line: &str, text: &str) -> bool {
    let Some((time, rest)) = line.split_once(' ') else {
        return false;
    };
    let digits: Vec<&str> = time.split(':').collect();
    rest == text
        && digits.len() == 3
        && digits
            .iter()
            .all(|d| d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn count_sends_one_to_ten_then_closes_normally() {
    in_every_language(|lang| async move {
        let server = start(&[&lang.program("count")]);
        let mut ws = connect(&server.url("/")).await;
        let transcript = read_all(&mut ws, DEADLINE).await;
        let expected: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        assert_eq!(transcript.texts, expected);
        assert_eq!(transcript.close.map(|(code, _)| code), Some(1000));
    });
}

#[test]
fn greeter_answers_every_message() {
    in_every_language(|lang| async move {
        let server = start(&[&lang.program("greeter")]);
        let mut ws = connect(&server.url("/")).await;
        for name in ["Ada", "", "café ☕ 世界"] {
            send_text(&mut ws, name).await;
            assert_eq!(next_text(&mut ws).await, format!("Hello, {name}!"));
        }
        // The client leaves: the program reads end of input and the session ends.
        futures_util::SinkExt::close(&mut ws).await.expect("close");
        let rest = read_all(&mut ws, DEADLINE).await;
        assert!(rest.texts.is_empty(), "{rest:?}");
        assert!(server
            .stdout
            .wait_for(DEADLINE, |l| l.contains("DISCONNECT"))
            .is_some());
    });
}

#[test]
fn dump_env_shows_the_cgi_variables() {
    in_every_language(|lang| async move {
        let server = start(&[&lang.program("dump-env")]);
        let mut ws = connect_with(
            &server.url("/some/path?x=1&y=two"),
            &[("X-Example", "examples test")],
        )
        .await
        .expect("connect");
        let transcript = read_all(&mut ws, DEADLINE).await;
        assert_eq!(transcript.close.map(|(code, _)| code), Some(1000));
        let env = environment(&transcript.texts);
        let port = server.port.to_string();
        for (name, value) in [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", "GET"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "127.0.0.1"),
            ("SERVER_PORT", port.as_str()),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("SCRIPT_NAME", "/"),
            ("PATH_INFO", "/some/path"),
            ("QUERY_STRING", "x=1&y=two"),
            ("REQUEST_URI", "/some/path?x=1&y=two"),
            ("HTTP_X_EXAMPLE", "examples test"),
        ] {
            assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
        }
        assert!(env["REMOTE_PORT"].parse::<u16>().is_ok(), "{env:?}");
    });
}

#[test]
fn chat_clients_see_each_others_lines() {
    in_every_language(|lang| async move {
        let server = start(&[
            "--broadcast",
            "--broadcastinput=lines",
            &lang.program("chat"),
        ]);
        let url = server.url("/");
        let mut clients = vec![
            connect(&url).await,
            connect(&url).await,
            connect(&url).await,
        ];
        for sender in 0..clients.len() {
            let text = format!("client {sender} says héllo");
            send_text(&mut clients[sender], &text).await;
            for (reader, ws) in clients.iter_mut().enumerate() {
                let line = next_text(ws).await;
                assert!(
                    stamped(&line, &text),
                    "client {reader} got {line:?}, expected \"HH:MM:SS {text}\""
                );
            }
        }
        // An empty message is not a chat line: the next one arrives alone.
        send_text(&mut clients[0], "").await;
        send_text(&mut clients[1], "last").await;
        for ws in &mut clients {
            let line = next_text(ws).await;
            assert!(stamped(&line, "last"), "{line:?}");
        }
    });
}

#[test]
fn send_receive_ticks_while_echoing() {
    in_every_language(|lang| async move {
        let server = start(&[&lang.program("send-receive")]);
        let mut ws = connect(&server.url("/")).await;
        send_text(&mut ws, "first").await;
        let mut ticks = 0;
        let mut echoes: Vec<String> = Vec::new();
        let mut sent_second = false;
        let deadline = Instant::now() + DEADLINE;
        // Ticks 1 and 2 come while nothing more is sent; "second", sent after them, is
        // echoed while ticks go on.
        while !(ticks >= 3 && echoes.len() == 2) {
            assert!(
                Instant::now() < deadline,
                "ticks {ticks}, echoes {echoes:?}"
            );
            let message = next_text(&mut ws).await;
            if let Some(n) = message.strip_prefix("tick ") {
                assert_eq!(n, (ticks + 1).to_string(), "ticks out of order");
                ticks += 1;
            } else if let Some(text) = message.strip_prefix("echo: ") {
                echoes.push(text.to_string());
            } else {
                panic!("unexpected message {message:?}");
            }
            if ticks >= 2 && !sent_second && echoes.len() == 1 {
                send_text(&mut ws, "second").await;
                sent_second = true;
            }
        }
        assert_eq!(echoes, ["first", "second"]);
        futures_util::SinkExt::close(&mut ws).await.expect("close");
        let _ = read_all(&mut ws, DEADLINE).await;
        assert!(server
            .stdout
            .wait_for(DEADLINE, |l| l.contains("DISCONNECT"))
            .is_some());
    });
}

#[test]
fn cgi_script_answers_http() {
    in_every_language(|lang| async move {
        let cgi = lang.programs().join("cgi");
        let server = start(&[&format!("--cgidir={}", cgi.display())]);
        let response = server.get(&format!("/{}?name=Ada", lang.file("hello")));
        let body = String::from_utf8_lossy(&response.body);
        assert_eq!(response.status, 200, "{body}");
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            body,
            format!(
                "Hello from a CGI script in {}!\nREQUEST_METHOD=GET\nQUERY_STRING=name=Ada\n",
                lang.title
            )
        );
    });
}

#[test]
fn dir_layout_routes_each_program_by_url() {
    in_every_language(|lang| async move {
        let dir = lang.programs();
        let server = start(&[&format!("--dir={}", dir.display())]);
        let greeter = lang.file("greeter");
        let mut ws = connect(&server.url(&format!("/{greeter}"))).await;
        send_text(&mut ws, "dir").await;
        assert_eq!(next_text(&mut ws).await, "Hello, dir!");
        let dump_env = lang.file("dump-env");
        let mut ws = connect(&server.url(&format!("/{dump_env}/extra?y=2"))).await;
        let env = environment(&read_all(&mut ws, DEADLINE).await.texts);
        let script_name = format!("/{dump_env}");
        for (name, value) in [
            ("SCRIPT_NAME", script_name.as_str()),
            ("PATH_INFO", "/extra"),
            ("QUERY_STRING", "y=2"),
        ] {
            assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
        }
    });
}
