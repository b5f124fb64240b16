//! Black-box tests of broadcast mode (`--broadcast`): one program per route shared by every
//! client, its start and stop (`--lingerms`, `--prestart`), replay, client input, slow
//! clients, program exit and shutdown, and `--maxclients`.

mod common;

use common::*;
use futures_util::SinkExt;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// A script that waits for the file `go` in `dir`, then runs `body`.
fn gated(dir: &Path, name: &str, body: &str) -> String {
    let gate = dir.join("go");
    script(
        dir,
        name,
        &format!(
            "echo \"pid $$\"\nwhile [ ! -e {} ]; do sleep 0.01; done\n{body}",
            gate.display()
        ),
    )
    .display()
    .to_string()
}

fn open_gate(dir: &Path) {
    std::fs::write(dir.join("go"), b"").unwrap();
}

/// Waits until the daemon runs exactly `count` programs (bounded).
fn wait_programs(server: &Server, count: usize) -> Vec<u32> {
    let pid = server.pid();
    assert!(
        wait_until(DEADLINE, || programs(pid).len() == count),
        "expected {count} programs, have {:?}",
        programs(pid)
    );
    programs(pid)
}

/// Texts until the connection ends, and the close.
async fn transcript(ws: &mut Ws) -> Transcript {
    read_all(ws, DEADLINE).await
}

#[tokio::test]
async fn clients_see_the_same_lines_in_order_and_the_exit_status() {
    let dir = temp_dir("bc-same");
    let program = gated(&dir, "count.sh", "seq 1 3000\nexit 3");
    let server = Server::start(&["--broadcast", &program]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&server.url("/")).await);
    }
    wait_programs(&server, 1);
    open_gate(&dir);
    let expected: Vec<String> = (1..=3000).map(|i| i.to_string()).collect();
    let mut pid_lines = Vec::new();
    for ws in &mut clients {
        let seen = transcript(ws).await;
        assert!(
            seen.texts.len() >= 3000,
            "{:?} {:?}",
            seen.close,
            server.stdout.all()
        );
        // Clients that joined before the program's first line also saw it.
        let (head, rest) = seen
            .texts
            .split_at(usize::from(seen.texts[0].starts_with("pid ")));
        pid_lines.extend(head.to_vec());
        assert_eq!(rest, &expected[..]);
        assert_eq!(seen.close, Some((1011, "exit status 3".to_string())));
    }
    assert!(!pid_lines.is_empty() && pid_lines.iter().all(|l| *l == pid_lines[0]));
    wait_programs(&server, 0);

    // The next client starts a fresh copy.
    std::fs::remove_file(dir.join("go")).unwrap();
    let mut again = connect(&server.url("/")).await;
    let pid_line = next_text(&mut again).await;
    assert!(
        pid_line.starts_with("pid ") && pid_line != pid_lines[0],
        "{pid_line}"
    );
}

#[tokio::test]
async fn a_late_client_sees_only_what_follows_or_the_replay() {
    for (replay, expect) in [("0", vec!["4"]), ("2", vec!["2", "3", "4"])] {
        let server = Server::start(&[
            "--broadcast",
            "--broadcastinput=lines",
            &format!("--replay={replay}"),
            "cat",
        ]);
        let mut first = connect(&server.url("/")).await;
        for line in ["1", "2", "3"] {
            send_text(&mut first, line).await;
            assert_eq!(next_text(&mut first).await, line);
        }
        let mut late = connect(&server.url("/")).await;
        send_text(&mut first, "4").await;
        assert_eq!(next_text(&mut first).await, "4");
        let mut got = Vec::new();
        while got.last().map(String::as_str) != Some("4") {
            got.push(next_text(&mut late).await);
        }
        assert_eq!(got, expect, "--replay={replay}");
    }
}

#[tokio::test]
async fn fifty_simultaneous_first_clients_start_exactly_one_program() {
    let server = Server::start(&["--broadcast", "sh", "-c", "echo started; exec sleep 1000"]);
    let url = server.url("/");
    let connects = (0..50).map(|_| connect(&url));
    let clients = futures_util::future::join_all(connects).await;
    assert_eq!(clients.len(), 50);
    let pids = wait_programs(&server, 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(programs(server.pid()), pids, "still exactly one program");
    drop(clients);
    wait_programs(&server, 0);
}

#[tokio::test]
async fn maxforks_counts_the_shared_program_once() {
    let dir = temp_dir("bc-forks");
    script(&dir, "a.sh", "echo a; exec sleep 1000");
    script(&dir, "b.sh", "echo b; exec sleep 1000");
    let server = Server::start(&[
        "--broadcast",
        "--maxforks=1",
        &format!("--dir={}", dir.display()),
    ]);
    // Five clients of one script share its one program: one fork slot.
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connect(&server.url("/a.sh")).await);
    }
    wait_programs(&server, 1);
    // Another script needs a program of its own, and no slot is left for it.
    let refused = connect_with(&server.url("/b.sh"), &[])
        .await
        .err()
        .unwrap_or_default();
    assert!(refused.contains("429"), "{refused}");
    // Once the first program is gone (no client left, no linger), its slot is free again.
    drop(clients);
    wait_programs(&server, 0);
    let deadline = Instant::now() + DEADLINE;
    let mut b = loop {
        if let Ok(ws) = connect_with(&server.url("/b.sh"), &[]).await {
            break ws;
        }
        assert!(
            Instant::now() < deadline,
            "the shared program's slot is freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(next_text(&mut b).await, "b");
}

#[tokio::test]
async fn dir_mode_runs_one_program_per_script() {
    let dir = temp_dir("bc-dir");
    script(&dir, "a.sh", "echo \"a $$\"; exec sleep 1000");
    script(&dir, "b.sh", "echo \"b $$\"; exec sleep 1000");
    let server = Server::start(&[
        "--broadcast",
        "--replay=1",
        &format!("--dir={}", dir.display()),
    ]);
    let mut seen = Vec::new();
    let mut clients = Vec::new();
    for path in ["/a.sh", "/b.sh", "/a.sh", "/b.sh/extra", "/a.sh"] {
        let mut ws = connect(&server.url(path)).await;
        seen.push((path, next_text(&mut ws).await));
        clients.push(ws);
    }
    wait_programs(&server, 2);
    let a: Vec<&String> = seen
        .iter()
        .filter(|(p, _)| p.starts_with("/a"))
        .map(|(_, t)| t)
        .collect();
    let b: Vec<&String> = seen
        .iter()
        .filter(|(p, _)| p.starts_with("/b"))
        .map(|(_, t)| t)
        .collect();
    assert!(a.iter().all(|t| *t == a[0] && t.starts_with("a ")), "{a:?}");
    assert!(b.iter().all(|t| *t == b[0] && t.starts_with("b ")), "{b:?}");
}

#[tokio::test]
async fn lingerms_zero_stops_the_program_when_the_last_client_leaves() {
    let server = Server::start(&["--broadcast", "sleep", "1000"]);
    let first = connect(&server.url("/")).await;
    let second = connect(&server.url("/")).await;
    let pids = wait_programs(&server, 1);
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(programs(server.pid()), pids, "one client is still there");
    drop(second);
    wait_programs(&server, 0);
}

#[tokio::test]
async fn lingerms_keeps_the_program_for_a_while_and_minus_one_for_ever() {
    let server = Server::start(&["--broadcast", "--lingerms=3000", "sleep", "1000"]);
    let ws = connect(&server.url("/")).await;
    let pids = wait_programs(&server, 1);
    drop(ws);
    let left = Instant::now();
    // A client that comes back within the linger time finds the same program.
    std::thread::sleep(Duration::from_millis(500));
    let ws = connect(&server.url("/")).await;
    assert_eq!(programs(server.pid()), pids);
    drop(ws);
    let left_again = Instant::now();
    wait_programs(&server, 0);
    assert!(
        left_again.elapsed() >= Duration::from_millis(2900),
        "{:?}",
        left.elapsed()
    );

    let server = Server::start(&["--broadcast", "--lingerms=-1", "sleep", "1000"]);
    let ws = connect(&server.url("/")).await;
    let pids = wait_programs(&server, 1);
    drop(ws);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(programs(server.pid()), pids, "kept until the daemon stops");
}

#[tokio::test]
async fn prestart_starts_the_program_before_any_client_and_keeps_it() {
    let server = Server::start(&[
        "--broadcast",
        "--prestart",
        "--replay=1",
        "sh",
        "-c",
        "echo \"pid $$\"; exec sleep 1000",
    ]);
    let pids = wait_programs(&server, 1);
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(next_text(&mut ws).await, format!("pid {}", pids[0]));
    drop(ws);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(programs(server.pid()), pids);
}

#[tokio::test]
async fn input_none_drops_client_messages() {
    let server = Server::start(&[
        "--broadcast",
        "--loglevel=debug",
        "sh",
        "-c",
        "while read l; do echo \"got $l\"; done",
    ]);
    let mut ws = connect(&server.url("/")).await;
    send_text(&mut ws, "hello").await;
    send_text(&mut ws, "again").await;
    ws.close(None).await.unwrap();
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("Dropped 2 client messages"))
        .is_some());
    let log = server.stdout.all();
    assert!(!log.iter().any(|l| l.contains("got hello")), "{log:?}");
}

#[tokio::test]
async fn input_lines_are_whole_and_in_order_per_client() {
    let server = Server::start(&["--broadcast", "--broadcastinput=lines", "cat"]);
    let mut watcher = connect(&server.url("/")).await;
    let mut writers = Vec::new();
    for name in ["a", "b"] {
        let mut ws = connect(&server.url("/")).await;
        writers.push(tokio::spawn(async move {
            let long = name.repeat(5000);
            for i in 0..200 {
                ws.send(Message::text(format!("{name}{i}:{long}")))
                    .await
                    .unwrap();
            }
            ws
        }));
    }
    let mut next = [0usize; 2];
    for _ in 0..400 {
        let line = next_text(&mut watcher).await;
        let (head, body) = line.split_once(':').expect("a whole line");
        let index = usize::from(head.starts_with('b'));
        let name = if index == 0 { "a" } else { "b" };
        assert_eq!(head, format!("{name}{}", next[index]), "order per client");
        assert_eq!(body, name.repeat(5000), "never interleaved");
        next[index] += 1;
    }
    for writer in writers {
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn input_tagged_carries_ids_joins_and_leaves() {
    let server = Server::start(&["--broadcast", "--broadcastinput=tagged", "cat"]);
    let mut watcher = connect(&server.url("/")).await;
    let event = |text: String| -> serde_json::Value { serde_json::from_str(&text).unwrap() };
    let own = event(next_text(&mut watcher).await);
    assert_eq!(own["event"], "join");
    assert_eq!(own["remote"], "127.0.0.1");
    let mut ids = vec![own["id"].as_str().unwrap().to_string()];
    for round in 0..2 {
        let mut ws = connect(&server.url("/")).await;
        let join = event(next_text(&mut watcher).await);
        assert_eq!(join["event"], "join", "{join}");
        let id = join["id"].as_str().unwrap().to_string();
        assert!(!ids.contains(&id), "ids are never reused");
        send_text(&mut ws, &format!("hi \"{round}\"")).await;
        let data = event(next_text(&mut watcher).await);
        assert_eq!(data["id"], id.as_str());
        assert_eq!(data["data"], format!("hi \"{round}\""));
        ws.close(None).await.unwrap();
        let leave = event(next_text(&mut watcher).await);
        assert_eq!(
            (leave["id"].as_str(), leave["event"].as_str()),
            (Some(id.as_str()), Some("leave"))
        );
        ids.push(id);
    }
}

/// About 4 MB/s of numbered 1000-byte lines, for ever.
const PRODUCER: &str = "pad=$(printf '%0990d' 0); i=0; \
    while :; do i=$((i+1)); echo \"$i $pad\"; [ $((i % 40)) -eq 0 ] && sleep 0.01; done";

#[tokio::test]
async fn a_client_that_stops_reading_gets_1013_and_the_others_keep_up() {
    let server = Server::start(&["--broadcast", "--maxqueue=1000", "sh", "-c", PRODUCER]);
    let mut slow = connect_small_buffers(server.port).await;
    let mut fast = connect(&server.url("/")).await;
    let rss_before = rss_kib(server.pid());
    let mut last = 0u64;
    let mut received = 0;
    let mut found_slow = false;
    let started = Instant::now();
    while received < 5_000 || !found_slow {
        assert!(
            started.elapsed() < DEADLINE * 2,
            "received {received}, slow found: {found_slow}"
        );
        let line = next_text(&mut fast).await;
        let n: u64 = line.split(' ').next().unwrap().parse().unwrap();
        assert!(
            last == 0 || n == last + 1,
            "the fast client misses nothing: {last} then {n}"
        );
        last = n;
        received += 1;
        if received % 100 == 0 {
            found_slow = server.stdout.all().iter().any(|l| l.contains("TOO SLOW"));
        }
    }
    assert!(
        rss_kib(server.pid()) < rss_before + 64 * 1024,
        "daemon memory stays bounded"
    );
    // The slow client, reading again, gets what was already on its way, then 1013.
    let seen = transcript(&mut slow).await;
    assert_eq!(seen.close, Some((1013, "too slow".to_string())));
    assert!(!seen.texts.is_empty());
}

#[tokio::test]
async fn maxqueue_zero_is_lossless() {
    let dir = temp_dir("bc-lossless");
    let program = gated(&dir, "flood.sh", "seq 1 50000");
    let server = Server::start(&["--broadcast", "--maxqueue=0", &program]);
    let mut slow = connect_small_buffers(server.port).await;
    let mut fast = connect(&server.url("/")).await;
    wait_programs(&server, 1);
    open_gate(&dir);
    let fast_reader = tokio::spawn(async move { transcript(&mut fast).await });
    // The slow client starts reading late; the program waits for it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let slow_seen = transcript(&mut slow).await;
    let fast_seen = fast_reader.await.unwrap();
    let expected: Vec<String> = (1..=50000).map(|i| i.to_string()).collect();
    for seen in [slow_seen, fast_seen] {
        let lines: Vec<&String> = seen
            .texts
            .iter()
            .filter(|t| !t.starts_with("pid "))
            .collect();
        assert_eq!(lines.len(), expected.len());
        assert!(lines.iter().zip(&expected).all(|(a, b)| *a == b));
        assert_eq!(seen.close, Some((1000, String::new())));
    }
}

#[test]
fn sigterm_closes_every_client_with_1001_after_the_programs_last_words() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut server = Server::start(&[
        "--broadcast",
        "sh",
        "-c",
        "echo ready; while read l; do :; done; echo 'last words'",
    ]);
    let (mut a, mut b) = runtime.block_on(async {
        let mut a = connect(&server.url("/")).await;
        assert_eq!(next_text(&mut a).await, "ready");
        let b = connect(&server.url("/")).await;
        (a, b)
    });
    let program = wait_programs(&server, 1)[0];
    server.signal("TERM");
    runtime.block_on(async {
        for ws in [&mut a, &mut b] {
            let seen = transcript(ws).await;
            assert_eq!(seen.texts, vec!["last words".to_string()]);
            assert_eq!(seen.close, Some((1001, String::new())));
        }
    });
    let status = server.wait_exit(DEADLINE).expect("the daemon exits");
    assert_eq!(status.code(), Some(0));
    assert!(!alive(program));
}

#[tokio::test]
async fn the_program_gets_only_the_servers_environment() {
    let server = Server::start(&["--broadcast", "--replay=100", "env"]);
    let mut ws = connect(&server.url("/path?q=1")).await;
    let seen = transcript(&mut ws).await;
    let has = |name: &str| {
        seen.texts
            .iter()
            .any(|l| l.starts_with(&format!("{name}=")))
    };
    for name in [
        "SERVER_SOFTWARE",
        "SERVER_NAME",
        "SERVER_PORT",
        "SCRIPT_NAME",
        "GATEWAY_INTERFACE",
    ] {
        assert!(has(name), "{name} in {:?}", seen.texts);
    }
    for name in [
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "QUERY_STRING",
        "UNIQUE_ID",
        "HTTP_HOST",
        "PATH_INFO",
    ] {
        assert!(!has(name), "{name} in {:?}", seen.texts);
    }
    assert!(seen.texts.contains(&format!("SERVER_PORT={}", server.port)));
    assert!(seen.texts.contains(&"SERVER_NAME=127.0.0.1".to_string()));
}

#[tokio::test]
async fn maxclients_refuses_upgrades_past_the_limit_in_both_modes() {
    for mode in [&["--maxclients=2"][..], &["--maxclients=2", "--broadcast"]] {
        let mut args = mode.to_vec();
        args.extend(["sleep", "1000"]);
        let server = Server::start(&args);
        let first = connect(&server.url("/")).await;
        let _second = connect(&server.url("/")).await;
        let refused = connect_with(&server.url("/"), &[])
            .await
            .err()
            .unwrap_or_default();
        assert!(refused.contains("429"), "{mode:?}: {refused}");
        drop(first);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if connect_with(&server.url("/"), &[]).await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "{mode:?}: the slot is freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn authcmd_decides_every_client_of_the_shared_program() {
    let dir = temp_dir("bc-auth");
    let auth = script(&dir, "auth.sh", "[ \"$HTTP_X_TOKEN\" = good ]");
    let server = Server::start(&[
        &format!("--authcmd={}", auth.display()),
        "--maxforks=1",
        "--broadcast",
        "--replay=1",
        "sh",
        "-c",
        "echo \"pid $$\"; exec sleep 1000",
    ]);
    let mut first = connect_with(&server.url("/"), &[("X-Token", "good")])
        .await
        .unwrap();
    let pid_line = next_text(&mut first).await;
    // The shared program holds the only fork slot: the check of a second client still
    // runs (in a slot of its own), so it is refused with 429 rather than let through.
    let refused = connect_with(&server.url("/"), &[("X-Token", "bad")])
        .await
        .err()
        .unwrap_or_default();
    assert!(refused.contains("429"), "{refused}");
    drop(first);
    wait_programs(&server, 0);
    let bad = connect_with(&server.url("/"), &[("X-Token", "bad")])
        .await
        .err()
        .unwrap_or_default();
    assert!(bad.contains("403"), "{bad}");
    assert_eq!(
        programs(server.pid()).len(),
        0,
        "a refused client starts nothing"
    );
    let mut good = connect_with(&server.url("/"), &[("X-Token", "good")])
        .await
        .unwrap();
    assert_ne!(next_text(&mut good).await, pid_line, "a fresh copy");
}
