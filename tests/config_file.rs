//! Black-box tests of `--config=FILE`: every key from the flag table, the command line
//! winning over the file, and every way a file can be refused (exit 1, file, line, key,
//! usage), plus the example file shipped in examples/.

mod common;

use common::*;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn file_settings_apply_and_the_command_line_wins() {
    let dir = temp_dir("config-precedence");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/hello.txt"), "from the static dir\n").unwrap();
    let file_port = free_port();
    let config = write(
        &dir,
        "ws.toml",
        &format!(
            "port = {file_port}\n\
             staticdir = \"{www}\"\n\
             header = [\"X-From: file\", \"X-Only-File: yes\"]\n\
             header-http = \"X-Http: file\"\n\
             devconsole = true\n\
             command = [\"sh\", \"-c\", \"echo from-file-command\"]\n",
            www = dir.join("www").display()
        ),
    );
    // The harness puts --port and --address on the command line: they must win.
    let arg = format!("--config={config}");
    let server = Server::start(&[&arg, "--header=X-From: cli", "--devconsole=false"]);
    assert_ne!(server.port, file_port);
    assert!(std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err());
    // staticdir and header-http come from the file; --header from the command line
    // replaces the file's list; --devconsole=false beats devconsole = true.
    let response = server.get("/hello.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"from the static dir\n");
    assert_eq!(response.headers_named("x-from"), ["cli"]);
    assert!(response.header("x-only-file").is_none());
    assert_eq!(response.header("x-http"), Some("file"));
    // COMMAND comes from the file.
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(
        read_all(&mut ws, DEADLINE).await.texts,
        ["from-file-command"]
    );
    drop(server);

    // A COMMAND on the command line replaces the file's command.
    let server = Server::start(&[
        &arg,
        "--devconsole=false",
        "sh",
        "-c",
        "echo from-cli-command",
    ]);
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(
        read_all(&mut ws, DEADLINE).await.texts,
        ["from-cli-command"]
    );
}

#[test]
fn bad_files_exit_1_naming_file_line_and_key() {
    let dir = temp_dir("config-errors");
    // (file contents, expected first line of stderr after the file name)
    let rows: &[(&str, &str)] = &[
        ("port = 8080\n\nprot = 1\n", ":3: prot: no such option"),
        (
            "port = \"8080\"\n",
            ":1: port: expected an integer, found the string \"8080\"",
        ),
        (
            "\n\npingms = -5\n",
            ":3: pingms: expected an integer of 0 or more, found the integer -5",
        ),
        (
            "binary = \"yes\"\n",
            ":1: binary: expected true or false, found the string \"yes\"",
        ),
        (
            "origin = [1, 2]\n",
            ":1: origin: expected an array of strings or a string, found an array",
        ),
        (
            "command = \"cat\"\n",
            ":1: command: expected an array of strings (the program and its arguments), found the string \"cat\"",
        ),
        (
            "\nconfig = \"other.toml\"\n",
            ":2: config: can only be given on the command line",
        ),
        ("version = true\n", ":1: version: can only be given on the command line"),
        ("port = 1\nport = 2\n", ":2: not valid TOML: "),
        ("port = 80\nstaticdir = \"x\n", ":2: not valid TOML: "),
    ];
    for (i, (contents, expected)) in rows.iter().enumerate() {
        let path = write(&dir, &format!("bad{i}.toml"), contents);
        let output = run_to_exit(&root(), &[&format!("--config={path}"), "cat"]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{contents:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("{path}{expected}")),
            "{contents:?}: {stderr}"
        );
        assert!(
            stderr.contains("\nUsage:\n  websocketd [options] COMMAND"),
            "{stderr}"
        );
        assert_eq!(text(&output.stdout), "");
    }
    let missing = dir.join("missing.toml").to_string_lossy().into_owned();
    let output = run_to_exit(&root(), &[&format!("--config={missing}"), "cat"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{missing}: cannot read the configuration file: ")),
        "{stderr}"
    );
    assert!(stderr.contains("\nUsage:\n"), "{stderr}");
    // Values from the file go through the same checks as flags.
    let path = write(&dir, "conflict.toml", "binary = true\npassstderr = true\n");
    let output = run_to_exit(&root(), &[&format!("--config={path}"), "cat"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "please only specify one of --binary and --passstderr\n"
    );
    let path = write(&dir, "level.toml", "loglevel = \"loud\"\n");
    let output = run_to_exit(&root(), &[&format!("--config={path}"), "cat"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stdout),
        "Incorrect loglevel flag 'loud'. Use --help to see allowed values.\n"
    );
    // A file without a command, and none on the command line.
    let path = write(&dir, "nocommand.toml", "port = 8080\n");
    let output = run_to_exit(&root(), &[&format!("--config={path}")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr)
        .starts_with("Please specify COMMAND or provide --dir, --staticdir or --cgidir argument."));
}

#[tokio::test]
async fn the_example_file_serves_the_greeter() {
    let examples = root().join("examples");
    let metrics_port = free_port();
    let metrics = format!("--metrics=127.0.0.1:{metrics_port}");
    // The harness's --port and --address override the example's; so does --metrics.
    let server = Server::start_in(&examples, &["--config=websocketd.toml", &metrics]);
    let mut ws = connect_with(
        &server.url("/"),
        &[("Origin", &format!("http://localhost:{}", 8080))],
    )
    .await
    .unwrap();
    send_text(&mut ws, "config").await;
    assert_eq!(next_text(&mut ws).await, "Hello, config!");
    let page = server.get("/count.html");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    // The example asks for JSON log lines.
    let line = server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("\"message\":\"CONNECT\""))
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["category"], "session");
    let health = raw_request(
        metrics_port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(HttpResponse::parse(&health).status, 200);
}
