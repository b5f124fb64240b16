//! The environment programs receive, seen through the dump-env example.

mod common;

use common::*;
use std::collections::BTreeMap;

async fn environment_of(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut ws = connect_with(&server.url(path), headers)
        .await
        .expect("connect");
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1000));
    transcript
        .texts
        .iter()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const STANDARD: &[&str] = &[
    "AUTH_TYPE",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "GATEWAY_INTERFACE",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "QUERY_STRING",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_IDENT",
    "REMOTE_PORT",
    "REMOTE_USER",
    "REQUEST_METHOD",
    "REQUEST_URI",
    "SCRIPT_NAME",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "UNIQUE_ID",
];

#[tokio::test]
async fn single_command_environment_is_exact() {
    let server = Server::start_with(
        &root(),
        &[("WSD_SECRET", "must not leak"), ("WSD_PASSED", " a\r\nb ")],
        &[
            "--passenv=PATH,WSD_PASSED,WSD_MISSING",
            "examples/bash/dump-env.sh",
        ],
    );
    let env = environment_of(
        &server,
        "/some/p%20ath?x=1&y=%20z",
        &[
            ("X-Multi", "one"),
            ("x-multi", "two"),
            ("Cookie", "a=1"),
            ("X-Evil", "line1\tline2"),
        ],
    )
    .await;
    let mut expected: Vec<&str> = STANDARD.to_vec();
    expected.extend([
        "PATH",
        "WSD_PASSED",
        "HTTP_CONNECTION",
        "HTTP_UPGRADE",
        "HTTP_SEC_WEBSOCKET_KEY",
        "HTTP_SEC_WEBSOCKET_VERSION",
        "HTTP_X_MULTI",
        "HTTP_COOKIE",
        "HTTP_X_EVIL",
        // Set by the shell running dump-env.sh, not by websocketd.
        "PWD",
    ]);
    expected.sort();
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(keys, expected);
    let port = server.port.to_string();
    let version = String::from_utf8(
        std::process::Command::new(binary())
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let checks = [
        (
            "SERVER_SOFTWARE",
            format!(
                "websocketd/{}",
                version.trim().trim_start_matches("websocketd ")
            ),
        ),
        ("GATEWAY_INTERFACE", "CGI/1.1".into()),
        ("REQUEST_METHOD", "GET".into()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        ("SERVER_NAME", "127.0.0.1".into()),
        ("SERVER_PORT", port.clone()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
        ("REMOTE_HOST", "127.0.0.1".into()),
        ("SCRIPT_NAME", "/".into()),
        ("PATH_INFO", "/some/p ath".into()),
        ("PATH_TRANSLATED", "/some/p ath".into()),
        ("QUERY_STRING", "x=1&y=%20z".into()),
        ("REQUEST_URI", "/some/p%20ath?x=1&y=%20z".into()),
        ("AUTH_TYPE", String::new()),
        ("CONTENT_LENGTH", String::new()),
        ("HTTP_X_MULTI", "one, two".into()),
        ("HTTP_COOKIE", "a=1".into()),
        ("HTTP_X_EVIL", "line1\tline2".into()),
        ("WSD_PASSED", "a  b".into()),
        ("PATH", std::env::var("PATH").unwrap()),
    ];
    for (name, value) in checks {
        assert_eq!(env.get(name), Some(&value), "{name}");
    }
    assert!(env["REMOTE_PORT"].parse::<u16>().is_ok());
    assert!(env["UNIQUE_ID"].parse::<u64>().is_ok());
}

#[tokio::test]
async fn unique_ids_differ_per_connection() {
    let server = Server::start(&["examples/bash/dump-env.sh"]);
    let a = environment_of(&server, "/", &[]).await;
    let b = environment_of(&server, "/", &[]).await;
    assert_ne!(a["UNIQUE_ID"], b["UNIQUE_ID"]);
}

#[tokio::test]
async fn empty_passenv_passes_nothing() {
    let server = Server::start(&["--passenv=", "examples/bash/dump-env.sh"]);
    let env = environment_of(&server, "/", &[]).await;
    assert!(!env.contains_key("PATH"));
    assert!(!env.contains_key("HOME"));
}

#[tokio::test]
async fn dir_mode_splits_script_name_and_path_info() {
    let dir = temp_dir("envdir");
    std::fs::create_dir(dir.join("sub")).unwrap();
    for name in ["env.sh", "sub/e.sh"] {
        std::fs::copy(root().join("examples/bash/dump-env.sh"), dir.join(name)).unwrap();
    }
    let dir_arg = format!("--dir={}", dir.display());
    let server = Server::start(&[&dir_arg]);
    let env = environment_of(&server, "/env.sh/extra/p%20ath?q=1", &[]).await;
    assert_eq!(env["SCRIPT_NAME"], "/env.sh");
    assert_eq!(env["PATH_INFO"], "/extra/p ath");
    assert_eq!(env["PATH_TRANSLATED"], "/env.sh/extra/p ath");
    assert_eq!(env["QUERY_STRING"], "q=1");
    assert_eq!(env["REQUEST_URI"], "/env.sh/extra/p%20ath?q=1");
    let env = environment_of(&server, "/sub/e.sh", &[]).await;
    assert_eq!(env["SCRIPT_NAME"], "/sub/e.sh");
    assert_eq!(env["PATH_INFO"], "");
    // Programs run in the daemon's working directory, not the script directory.
    assert_eq!(env["PWD"], root().display().to_string());
    for missing in ["/nope.sh", "/sub", "/"] {
        let err = connect_with(&server.url(missing), &[]).await.unwrap_err();
        assert!(err.contains("404"), "{missing}: {err}");
    }
    assert!(server
        .stdout
        .wait_count(DEADLINE, 3, |l| l.contains("| NOT FOUND: script not found")));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn dir_mode_refuses_symlinks_leading_out() {
    let dir = temp_dir("envlink");
    std::fs::create_dir(dir.join("scripts")).unwrap();
    std::fs::copy(
        root().join("examples/bash/dump-env.sh"),
        dir.join("outside.sh"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.join("outside.sh"), dir.join("scripts/link.sh")).unwrap();
    let dir_arg = format!("--dir={}", dir.join("scripts").display());
    let server = Server::start(&[&dir_arg]);
    let err = connect_with(&server.url("/link.sh"), &[])
        .await
        .unwrap_err();
    assert!(err.contains("404"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
