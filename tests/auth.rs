//! `--authcmd`: a program accepts or refuses each connection before the 101 (and each plain
//! HTTP request with `--authall`), bounded by `--authms` and `--maxforks`; and the shipped
//! examples (bearer token, signed cookie).

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn upgrade_request(port: u16, path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// Sends an upgrade request by hand; returns the response head (and body when refused).
fn upgrade(port: u16, path: &str, extra: &str) -> HttpResponse {
    HttpResponse::parse(&raw_request(port, &upgrade_request(port, path, extra)))
}

fn arg(flag: &str, path: &Path) -> String {
    format!("--{flag}={}", path.display())
}

#[tokio::test]
async fn accepting_adds_auth_variables_to_the_same_environment() {
    let dir = temp_dir("auth-accept");
    let auth = script(
        &dir,
        "auth.sh",
        &format!(
            "env | sort > {}/auth-env\necho USER=ada\necho 'not a variable'\necho 'ROLE=admin=yes'\necho '1BAD=x'",
            dir.display()
        ),
    );
    let server = Server::start(&[
        &arg("authcmd", &auth),
        "sh",
        "-c",
        "echo \"$AUTH_USER $AUTH_ROLE ${AUTH_1BAD-unset}\"; env | grep -v -e ^AUTH_USER= -e ^AUTH_ROLE= | sort",
    ]);
    let mut ws = connect_with(&server.url("/room?x=1"), &[("Cookie", "k=v")])
        .await
        .unwrap();
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1000));
    assert_eq!(transcript.texts[0], "ada admin=yes unset");
    let auth_env = std::fs::read_to_string(dir.join("auth-env")).unwrap();
    let program_env: Vec<&str> = transcript.texts[1..].iter().map(String::as_str).collect();
    assert_eq!(auth_env.lines().collect::<Vec<_>>(), program_env);
    assert!(auth_env.contains("HTTP_COOKIE=k=v\n"), "{auth_env}");
    assert!(auth_env.contains("QUERY_STRING=x=1\n"), "{auth_env}");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("not NAME=value")
            && l.contains("1BAD=x"))
        .is_some());
}

#[test]
fn refusing_answers_the_status_headers_and_body_it_printed() {
    let dir = temp_dir("auth-refuse");
    let auth = script(
        &dir,
        "auth.sh",
        "printf 'Status: 401 Unauthorized\\nWWW-Authenticate: Bearer realm=\"chat\"\\nContent-Type: text/plain\\n\\nlog in first\\n'; exit 1",
    );
    let started = dir.join("program-started");
    let server = Server::start(&[
        &arg("authcmd", &auth),
        "sh",
        "-c",
        &format!("touch {}", started.display()),
    ]);
    let response = upgrade(server.port, "/", "");
    assert_eq!(response.status, 401);
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"chat\"")
    );
    assert_eq!(response.body, b"log in first\n");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l
            .contains("Refused by authorization program (exit status 1): 401"))
        .is_some());
    assert!(!started.exists(), "the session's program must not run");
}

#[test]
fn a_silent_refusal_is_403() {
    let dir = temp_dir("auth-silent");
    let auth = script(&dir, "auth.sh", "exit 3");
    let server = Server::start(&[&arg("authcmd", &auth), "cat"]);
    let response = upgrade(server.port, "/", "");
    assert_eq!(response.status, 403);
    assert_eq!(response.body, b"403 Forbidden\n");
}

#[test]
fn a_slow_program_times_out_with_503_and_its_group_is_killed() {
    let dir = temp_dir("auth-slow");
    let pids = dir.join("pids");
    let auth = script(
        &dir,
        "auth.sh",
        &format!("sleep 60 & echo $$ $! > {}; wait", pids.display()),
    );
    let server = Server::start(&[&arg("authcmd", &auth), "--authms=300", "cat"]);
    let asked = Instant::now();
    let response = upgrade(server.port, "/", "");
    assert_eq!(response.status, 503);
    assert!(asked.elapsed() >= Duration::from_millis(300));
    let pids: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(wait_until(DEADLINE, || pids.iter().all(|&p| !alive(p))));
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("did not finish within 300 ms"))
        .is_some());
}

/// A hanging auth program holds only its own connection: others are decided meanwhile,
/// and a crashing one refuses only its own.
#[tokio::test]
async fn hanging_or_crashing_programs_never_block_other_clients() {
    let dir = temp_dir("auth-hang");
    let auth = script(
        &dir,
        "auth.sh",
        &format!(
            "case \"$QUERY_STRING\" in hang) touch {}/hanging.$$; sleep 60 ;; crash) kill -SEGV $$ ;; esac; echo USER=ok",
            dir.display()
        ),
    );
    let server = Server::start(&[
        &arg("authcmd", &auth),
        "--authms=4000",
        "sh",
        "-c",
        "echo $AUTH_USER",
    ]);
    let port = server.port;
    let hanging: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || upgrade(port, "/?hang", "").status))
        .collect();
    let hanging_count = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("hanging.")
            })
            .count()
    };
    assert!(wait_until(DEADLINE, || hanging_count() == 3));
    for _ in 0..5 {
        let mut ws = connect(&server.url("/")).await;
        assert_eq!(next_text(&mut ws).await, "ok");
    }
    assert_eq!(upgrade(port, "/?crash", "").status, 403);
    // All of that was decided while the hanging checks were still waiting.
    assert!(hanging.iter().all(|waiting| !waiting.is_finished()));
    for waiting in hanging {
        assert_eq!(waiting.join().unwrap(), 503);
    }
}

#[test]
fn the_program_takes_a_fork_slot() {
    let dir = temp_dir("auth-forks");
    let marker = dir.join("hanging");
    let auth = script(
        &dir,
        "auth.sh",
        &format!(
            "case \"$QUERY_STRING\" in hang) touch {}; sleep 60 ;; esac",
            marker.display()
        ),
    );
    let server = Server::start(&[
        &arg("authcmd", &auth),
        "--authms=2000",
        "--maxforks=1",
        &arg("staticdir", &dir),
        "--authall",
        "cat",
    ]);
    let port = server.port;
    let hanging = std::thread::spawn(move || upgrade(port, "/?hang", "").status);
    assert!(wait_until(DEADLINE, || marker.exists()));
    assert_eq!(upgrade(port, "/", "").status, 429);
    assert_eq!(server.get("/auth.sh").status, 429);
    assert_eq!(hanging.join().unwrap(), 503);
    assert_eq!(server.get("/auth.sh").status, 200);
}

#[test]
fn authall_guards_static_files_and_cgi() {
    let dir = temp_dir("auth-all");
    let auth = script(
        &dir,
        "auth.sh",
        "[ \"$HTTP_X_KEY\" = open ] && [ \"$REQUEST_METHOD\" = GET ] || { printf 'Status: 401 Unauthorized\\nWWW-Authenticate: Key\\n\\n'; exit 1; }",
    );
    let cgi = temp_dir("auth-all-cgi");
    script(
        &cgi,
        "hello.cgi",
        "printf 'Content-Type: text/plain\\n\\nhello %s\\n' \"$AUTH_USER\"",
    );
    std::fs::write(dir.join("page.txt"), "page").unwrap();
    let server = Server::start(&[
        &arg("authcmd", &auth),
        "--authall",
        &arg("staticdir", &dir),
        &arg("cgidir", &cgi),
    ]);
    let get =
        |path: &str, key: &str| {
            HttpResponse::parse(&server.raw(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Key: {key}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        ))
        };
    let refused = get("/page.txt", "wrong");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some("Key"));
    assert_eq!(get("/page.txt", "open").body, b"page");
    assert_eq!(get("/hello.cgi", "wrong").status, 401);
    assert_eq!(get("/hello.cgi", "open").status, 200);
    // Without --authall plain HTTP is not checked.
    let open = Server::start(&[&arg("authcmd", &auth), &arg("staticdir", &dir), "cat"]);
    assert_eq!(open.get("/page.txt").status, 200);
}

#[tokio::test]
async fn example_bearer_token() {
    let dir = temp_dir("auth-bearer");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "# token user\ns3cr3t-t0ken alice\nother bob\n").unwrap();
    let tokens_env = tokens.to_string_lossy().into_owned();
    let server = Server::start_with(
        &root(),
        &[("TOKENS_FILE", &tokens_env)],
        &[
            "--authcmd=examples/auth/bearer-token.sh",
            "--passenv=PATH,TOKENS_FILE",
            "sh",
            "-c",
            "echo \"hello $AUTH_USER\"",
        ],
    );
    let mut ws = connect_with(
        &server.url("/"),
        &[("Authorization", "Bearer s3cr3t-t0ken")],
    )
    .await
    .unwrap();
    assert_eq!(next_text(&mut ws).await, "hello alice");
    for (header, error) in [
        ("", false),
        ("Authorization: Bearer wrong\r\n", true),
        ("Authorization: Bearer a'b\r\n", true),
        ("Authorization: Basic YTpi\r\n", false),
    ] {
        let response = upgrade(server.port, "/", header);
        assert_eq!(response.status, 401, "{header}");
        let challenge = response.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"websocketd\""),
            "{challenge}"
        );
        assert_eq!(challenge.contains("invalid_token"), error, "{challenge}");
    }
}

#[tokio::test]
async fn example_signed_cookie() {
    let dir = temp_dir("auth-cookie");
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        &private.to_string_lossy(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        &private.to_string_lossy(),
        "-pubout",
        "-out",
        &public.to_string_lossy(),
    ]);
    let sign = |user: &str, seconds: &str| {
        let output = std::process::Command::new(root().join("examples/auth/sign-cookie.sh"))
            .args([private.to_str().unwrap(), user, seconds])
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    let public_env = public.to_string_lossy().into_owned();
    let server = Server::start_with(
        &root(),
        &[("SESSION_PUBLIC_KEY", &public_env)],
        &[
            "--authcmd=examples/auth/signed-cookie.sh",
            "--passenv=PATH,SESSION_PUBLIC_KEY",
            "sh",
            "-c",
            "echo \"hello $AUTH_USER\"",
        ],
    );
    let cookie = format!("theme=dark; session={}", sign("carol", "600"));
    let mut ws = connect_with(&server.url("/"), &[("Cookie", &cookie)])
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "hello carol");

    let good = sign("carol", "600");
    let (payload, signature) = good.split_once('.').unwrap();
    let forged_payload = sign("mallory", "600");
    let forged = format!("{}.{signature}", forged_payload.split_once('.').unwrap().0);
    for (cookie, reason) in [
        (String::new(), "no session cookie"),
        (format!("session={payload}"), "malformed session cookie"),
        (format!("session={forged}"), "invalid session cookie"),
        (
            format!("session={}", sign("carol", "-10")),
            "session expired",
        ),
    ] {
        let header = if cookie.is_empty() {
            String::new()
        } else {
            format!("Cookie: {cookie}\r\n")
        };
        let response = upgrade(server.port, "/", &header);
        assert_eq!(response.status, 403, "{cookie}");
        assert_eq!(
            String::from_utf8_lossy(&response.body).trim(),
            reason,
            "{cookie}"
        );
    }
}

#[test]
fn flags_are_checked_at_start() {
    for (args, says) in [
        (
            &["--authcmd=/nonexistent/auth", "cat"][..],
            "unable to locate --authcmd",
        ),
        (&["--authall", "cat"][..], "need --authcmd"),
        (
            &["--authcmd=true", "--authms=0", "cat"][..],
            "--authms must be",
        ),
    ] {
        let output = std::process::Command::new(binary())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(says),
            "{args:?}"
        );
    }
}
