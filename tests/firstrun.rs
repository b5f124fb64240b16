//! A first run, tried as a new user would: each mistake gets upstream's message (where a
//! test pins it) followed by a line saying what to do, and a daemon that starts names a URL
//! to open.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn run_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = run_bounded(Command::new(binary()).args(args).current_dir(dir), DEADLINE);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn second_line(text: &str) -> &str {
    text.lines().nth(1).unwrap_or("")
}

#[test]
fn mistyped_flag_suggests_the_closest() {
    let dir = temp_dir("typo");
    let (code, _, stderr) = run_in(&dir, &["--prot=8080", "cat"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("flag provided but not defined: -prot\ndid you mean --port?\n\nUsage:"),
        "{stderr}"
    );
    let (_, _, stderr) = run_in(&dir, &["-statcidir", "x", "cat"]);
    assert_eq!(second_line(&stderr), "did you mean --staticdir?");
    let (_, _, stderr) = run_in(&dir, &["--bogus", "cat"]);
    assert!(
        stderr.starts_with("flag provided but not defined: -bogus\n\nUsage:"),
        "{stderr}"
    );
}

#[test]
fn programs_that_cannot_run_say_why() {
    let dir = temp_dir("programs");
    let plain = dir.join("count.sh");
    std::fs::write(&plain, "#!/bin/sh\necho 1\n").unwrap();
    let (code, _, stderr) = run_in(&dir, &["./count.sh"]);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("unable to locate specified COMMAND './count.sh' in OS path\n"));
    assert_eq!(
        second_line(&stderr),
        "'./count.sh' exists but is not executable: make it so with `chmod +x ./count.sh`"
    );
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, stderr) = run_in(&dir, &["count.sh"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        second_line(&stderr),
        "'count.sh' is in the current directory, which is not searched: write ./count.sh"
    );
    let (_, _, stderr) = run_in(&dir, &["no-such-program-xyz"]);
    assert!(second_line(&stderr).starts_with("No program 'no-such-program-xyz' in PATH"));
    std::fs::create_dir(dir.join("scripts")).unwrap();
    let (_, _, stderr) = run_in(&dir, &["./scripts"]);
    assert!(
        second_line(&stderr).ends_with("use --dir=./scripts"),
        "{stderr}"
    );
}

#[test]
fn a_broken_interpreter_line_is_refused_at_start_up() {
    let dir = temp_dir("shebang");
    let cases = [
        (
            "typo.py",
            "#!/usr/bin/pyhton3\nprint(1)\n",
            "/usr/bin/pyhton3 is not an executable program here",
        ),
        (
            "env.py",
            "#!/usr/bin/env pyhton3\nprint(1)\n",
            "there is no 'pyhton3' in PATH",
        ),
        (
            "crlf.sh",
            "#!/bin/sh\r\necho 1\r\n",
            "the line ends with CRLF",
        ),
    ];
    for (name, body, says) in cases {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (code, stdout, stderr) = run_in(&dir, &[&format!("./{name}")]);
        assert_eq!(code, Some(1), "{name}: {stdout}");
        assert!(
            stderr.starts_with(&format!("./{name} starts with #!")),
            "{stderr}"
        );
        assert!(
            stderr.lines().next().unwrap_or("").contains(says),
            "{stderr}"
        );
    }
}

#[test]
fn missing_directories_say_how_to_make_them() {
    let dir = temp_dir("dirs");
    for (flag, go) in [
        (
            "--staticdir",
            "your static dir 'public' is not pointing to an accessible directory",
        ),
        (
            "--cgidir",
            "your CGI dir 'public' is not pointing to an accessible directory",
        ),
        ("--dir", "could not find your script dir 'public'"),
    ] {
        let (code, _, stderr) = run_in(&dir, &[&format!("{flag}=public")]);
        assert_eq!(code, Some(1));
        assert!(stderr.starts_with(&format!("{go}\n")), "{stderr}");
        let hint = second_line(&stderr);
        assert!(
            hint.contains("mkdir -p public") && hint.contains(flag),
            "{hint}"
        );
    }
}

#[test]
fn a_busy_port_says_how_to_find_the_holder() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (code, stdout, _) = run_in(
        &root(),
        &[&format!("--port={port}"), "--address=127.0.0.1", "cat"],
    );
    assert_eq!(code, Some(3));
    let lines: Vec<&str> = stdout.lines().collect();
    let fatal = lines
        .iter()
        .position(|l| l.contains("Can't start server: "))
        .expect("fatal line");
    assert!(
        lines[fatal + 1].ends_with(&format!("| Another program is using port {port}: stop it (`ss -ltnp 'sport = :{port}'` shows which), or pick a free port with --port=PORT.")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("Connect a WebSocket client"),
        "no URL when nothing listens"
    );
}

/// The default port as an ordinary user: run a copy of the binary as `nobody`.
#[test]
fn port_80_as_a_user_suggests_a_higher_port() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let has_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !is_root || !has_setpriv {
        eprintln!("skipped: needs root and setpriv to become another user");
        return;
    }
    let dir = temp_dir("port80");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("websocketd");
    std::fs::copy(binary(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = run_bounded(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&copy)
            .args(["--address=127.0.0.1", "cat"])
            .current_dir(&dir),
        DEADLINE,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("Can't start server: listen tcp 127.0.0.1:80: bind: permission denied\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "| Only root may listen on port 80 (below 1024): use a higher port, e.g. --port=8080"
        ),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn start_up_names_the_page_to_open() {
    let site = temp_dir("site");
    std::fs::write(site.join("count.html"), "<p>count</p>").unwrap();
    let statics = format!("--staticdir={}", site.display());
    let server = Server::start(&[&statics, "cat"]);
    let wanted = format!(
        "| Open in a browser           : http://127.0.0.1:{}/count.html",
        server.port
    );
    assert!(
        server
            .stdout
            .wait_for(DEADLINE, |l| l.ends_with(&wanted))
            .is_some(),
        "{:?}",
        server.stdout.all()
    );
    let plain = Server::start(&["cat"]);
    let wanted = format!(
        "| Connect a WebSocket client  : ws://127.0.0.1:{}/ (add --devconsole to try it in a browser)",
        plain.port
    );
    assert!(
        plain
            .stdout
            .wait_for(DEADLINE, |l| l.ends_with(&wanted))
            .is_some(),
        "{:?}",
        plain.stdout.all()
    );
}

#[test]
fn a_browser_asking_for_a_page_learns_about_staticdir() {
    let server = Server::start(&["cat"]);
    let browser = server.raw(
        format!(
            "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/html,*/*\r\nConnection: close\r\n\r\n",
            server.port
        )
        .as_bytes(),
    );
    let response = HttpResponse::parse(&browser);
    assert_eq!(response.status, 404);
    let body = String::from_utf8_lossy(&response.body);
    assert!(body.starts_with("404 page not found\n\n"), "{body}");
    assert!(
        body.contains("--staticdir=DIR") && body.contains("--devconsole"),
        "{body}"
    );
    assert_eq!(server.get("/index.html").body, b"404 page not found\n");
}
