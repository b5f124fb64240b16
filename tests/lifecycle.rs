//! Black-box tests of how sessions and the daemon end: pings, the termination ladder,
//! graceful shutdown, backpressure, and leaks over many connections.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn pid_from_log(server: &Server) -> u32 {
    let line = server
        .stdout
        .wait_for(DEADLINE, |l| l.contains(" pid:'"))
        .expect("a line with the program's pid");
    let start = line.find(" pid:'").unwrap() + 6;
    line[start..].split('\'').next().unwrap().parse().unwrap()
}

#[test]
fn a_client_that_stops_answering_pings_is_dropped() {
    let server = Server::start(&["--pingms=200", "--loglevel=debug", "cat"]);
    let connected = Instant::now();
    // A raw client that never reads, so it never answers the pings.
    let _silent = raw_upgrade(server.port);
    let pid = pid_from_log(&server);
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| DISCONNECT"))
        .is_some());
    let elapsed = connected.elapsed();
    assert!(elapsed >= Duration::from_millis(390), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    assert!(wait_until(DEADLINE, || !alive(pid)));
}

#[tokio::test]
async fn a_client_that_answers_pings_stays() {
    // 150 ms: a pong must come back within 300 ms, which a loaded 2-core machine can
    // take for a round trip through the test's own runtime.
    let server = Server::start(&["--pingms=150", "cat"]);
    let mut ws = connect(&server.url("/")).await;
    // Reading lets the client library answer pings; several intervals pass meanwhile.
    let until = tokio::time::Instant::now() + Duration::from_millis(1000);
    while tokio::time::Instant::now() < until {
        use futures_util::StreamExt;
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(message))) => assert!(message.is_ping(), "{message:?}"),
            Ok(other) => panic!("connection ended: {other:?}"),
        }
    }
    send_text(&mut ws, "alive").await;
    assert_eq!(next_text(&mut ws).await, "alive");
}

/// Runs the ladder against a program that ignores SIGINT and SIGTERM; returns how long
/// the session took to end after the client closed, the program's and its child's PIDs,
/// and the ladder's step that ended it (from the daemon's DEBUG line).
async fn ladder_duration(close_ms: &str) -> (Duration, u32, u32, String) {
    let server = Server::start(&["--loglevel=debug", close_ms, "sh", "-c", STUBBORN]);
    let mut ws = connect(&server.url("/")).await;
    let pids = next_text(&mut ws).await;
    let mut pids = pids.split(' ').map(|p| p.parse::<u32>().unwrap());
    let (program, grandchild) = (pids.next().unwrap(), pids.next().unwrap());
    assert!(alive(program) && alive(grandchild));
    let closed = Instant::now();
    ws.close(None).await.unwrap();
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| DISCONNECT"))
        .is_some());
    let elapsed = closed.elapsed();
    let ended = server
        .stdout
        .wait_for(DEADLINE, |l| {
            l.contains(&format!("Process {program} terminated after "))
        })
        .expect("the ladder says which step ended the program");
    let step = ended
        .rsplit("terminated after ")
        .next()
        .unwrap_or("")
        .to_string();
    (elapsed, program, grandchild, step)
}

/// Slack above the ladder's own waits for the close handshake, the log line's trip to the
/// test and scheduling on a loaded 2-core machine; well under the shortest wait a broken
/// ladder could add (the 1,000 ms wait after SIGKILL for a program that does not die).
const LADDER_SLACK: Duration = Duration::from_millis(900);

#[tokio::test]
async fn the_ladder_kills_a_stubborn_program_and_its_group() {
    let (elapsed, program, grandchild, step) = ladder_duration("--closems=0").await;
    // Every wait was taken: 100 + 250 + 500 ms before SIGKILL, which ended it.
    assert_eq!(step, "SIGKILL");
    assert!(elapsed >= Duration::from_millis(840), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(850) + LADDER_SLACK,
        "{elapsed:?}"
    );
    assert!(!alive(program));
    assert!(!alive(grandchild), "grandchild {grandchild} survived");
}

#[tokio::test]
async fn closems_lengthens_each_wait() {
    let (elapsed, _, grandchild, step) = ladder_duration("--closems=150").await;
    assert_eq!(step, "SIGKILL");
    // 850 ms + 3 × 150 ms.
    assert!(elapsed >= Duration::from_millis(1290), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1300) + LADDER_SLACK,
        "{elapsed:?}"
    );
    assert!(!alive(grandchild));
}

#[tokio::test]
async fn sigterm_closes_every_session_with_1001_and_exits_zero() {
    let mut server = Server::start(&["cat"]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = connect(&server.url("/")).await;
        send_text(&mut ws, "up").await;
        assert_eq!(next_text(&mut ws).await, "up");
        clients.push(ws);
    }
    let daemon = server.pid();
    assert_eq!(programs(daemon).len(), 3);
    server.signal("TERM");
    for ws in &mut clients {
        let transcript = read_all(ws, DEADLINE).await;
        assert_eq!(transcript.close.map(|c| c.0), Some(1001));
    }
    let status = server.wait_exit(DEADLINE).expect("daemon exits");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn sigterm_stops_stubborn_programs_too() {
    let mut server = Server::start(&["sh", "-c", STUBBORN]);
    let mut ws = connect(&server.url("/")).await;
    let pids = next_text(&mut ws).await;
    let pids: Vec<u32> = pids.split(' ').map(|p| p.parse().unwrap()).collect();
    server.signal("INT");
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1001));
    assert_eq!(server.wait_exit(DEADLINE).and_then(|s| s.code()), Some(0));
    for pid in pids {
        assert!(!alive(pid), "{pid} survived shutdown");
    }
}

#[test]
fn a_flooding_program_and_a_client_that_never_reads_keep_memory_bounded() {
    flood_keeps_memory_bounded(&["yes", "flood"]);
}

/// The same in binary mode, whose pipes are widened and read in larger chunks.
#[test]
fn binary_flood_to_a_client_that_never_reads_keeps_memory_bounded() {
    flood_keeps_memory_bounded(&["--binary", "yes", "flood"]);
}

fn flood_keeps_memory_bounded(args: &[&str]) {
    let server = Server::start(args);
    let daemon = server.pid();
    // A first session creates what the daemon keeps for later ones (timers, signal pipes).
    let first = raw_upgrade(server.port);
    assert!(wait_until(DEADLINE, || programs(daemon).len() == 1));
    drop(first);
    assert!(wait_until(DEADLINE, || programs(daemon).is_empty()));
    let descriptors = fd_count(daemon);
    let stream = raw_upgrade(server.port);
    assert!(wait_until(DEADLINE, || programs(daemon).len() == 1));
    let program = programs(daemon)[0];
    // Let the socket and pipe buffers fill, then watch the daemon's memory.
    let start = Instant::now();
    let mut peak = 0;
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(2) {
        let rss = rss_kib(daemon);
        peak = peak.max(rss);
        samples.push(rss);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(peak < 64 * 1024, "daemon grew to {peak} KiB: {samples:?}");
    let late = samples[samples.len() / 2..]
        .iter()
        .max()
        .copied()
        .unwrap_or(0);
    let early = samples[samples.len() / 2];
    assert!(late <= early + 4096, "still growing: {samples:?}");
    assert!(alive(program));
    drop(stream);
    assert!(wait_until(DEADLINE, || !alive(program)));
    assert!(
        wait_until(DEADLINE, || fd_count(daemon) <= descriptors),
        "descriptors: {descriptors} before, {} after",
        fd_count(daemon)
    );
}

#[tokio::test]
async fn a_thousand_sessions_leave_nothing_behind() {
    let server = Server::start(&["cat"]);
    let daemon = server.pid();
    // Warm up so lazily created descriptors (timers, signal pipes) exist before counting.
    for _ in 0..5 {
        let mut ws = connect(&server.url("/")).await;
        ws.close(None).await.unwrap();
        let _ = read_all(&mut ws, DEADLINE).await;
    }
    assert!(wait_until(DEADLINE, || programs(daemon).is_empty()));
    let baseline = fd_count(daemon);
    let started = Instant::now();
    for i in 0..1000 {
        let mut ws = connect(&server.url("/")).await;
        if i % 2 == 0 {
            ws.close(None).await.unwrap();
            let _ = read_all(&mut ws, DEADLINE).await;
        } else {
            drop(ws);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "too slow at {i}"
        );
    }
    assert!(server
        .stdout
        .wait_count(DEADLINE, 1005, |l| l.ends_with("| DISCONNECT")));
    assert!(wait_until(DEADLINE, || programs(daemon).is_empty()));
    assert!(wait_until(DEADLINE, || zombie_programs(daemon) == 0));
    assert!(
        wait_until(DEADLINE, || fd_count(daemon) <= baseline),
        "descriptors: {} before, {} after",
        baseline,
        fd_count(daemon)
    );
}

#[tokio::test]
async fn a_flooding_program_is_stopped_when_the_client_closes() {
    let server = Server::start(&["yes", "flood"]);
    let daemon = server.pid();
    let mut ws = connect(&server.url("/")).await;
    for _ in 0..100 {
        assert_eq!(next_text(&mut ws).await, "flood");
    }
    assert!(wait_until(DEADLINE, || programs(daemon).len() == 1));
    let program = programs(daemon)[0];
    ws.close(None).await.unwrap();
    let closed = Instant::now();
    drop(ws);
    assert!(
        wait_until(DEADLINE, || !alive(program)),
        "flooding program survived"
    );
    // The ladder needs at most 850 ms here; a relay that starves it took over 9 s.
    assert!(
        closed.elapsed() < Duration::from_secs(5),
        "{:?}",
        closed.elapsed()
    );
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| DISCONNECT"))
        .is_some());
}

#[tokio::test]
async fn pings_continue_while_the_program_streams() {
    let server = Server::start(&[
        "--pingms=100",
        "sh",
        "-c",
        "while :; do echo stream; sleep 0.005; done",
    ]);
    let mut ws = connect(&server.url("/")).await;
    // Reading answers the pings; the stream goes on well past twice the interval.
    let until = Instant::now() + Duration::from_millis(800);
    let mut pings = 0;
    while Instant::now() < until {
        use futures_util::StreamExt;
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(message))) if message.is_ping() => pings += 1,
            Ok(Some(Ok(message))) => assert!(message.is_text()),
            other => panic!("connection ended early: {other:?}"),
        }
    }
    assert!(pings >= 4, "only {pings} pings");
    assert_eq!(next_text(&mut ws).await, "stream");
}

#[tokio::test]
async fn programs_do_not_outlive_a_killed_daemon() {
    let mut server = Server::start(&["sh", "-c", "echo $$; exec sleep 1000"]);
    let mut ws = connect(&server.url("/")).await;
    let program: u32 = next_text(&mut ws).await.parse().unwrap();
    assert!(alive(program));
    server.signal("KILL");
    assert!(server.wait_exit(DEADLINE).is_some());
    assert!(
        wait_until(DEADLINE, || !alive(program)),
        "program {program} outlived its daemon"
    );
}

#[tokio::test]
async fn programs_still_start_when_the_spawner_helper_is_gone() {
    let server = Server::start(&["echo", "started"]);
    let daemon = server.pid();
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(next_text(&mut ws).await, "started");
    let helper = live_children(daemon)
        .into_iter()
        .find(|&pid| is_spawner(pid))
        .expect("a spawner helper");
    let killed = std::process::Command::new("kill")
        .args(["-9", &helper.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(wait_until(DEADLINE, || !alive(helper)));
    for _ in 0..3 {
        let mut ws = connect(&server.url("/")).await;
        let transcript = read_all(&mut ws, DEADLINE).await;
        assert_eq!(transcript.texts, ["started"]);
        assert_eq!(transcript.close, Some((1000, String::new())));
    }
}
