//! Hardening regressions: programs start with clean signal state whatever the daemon
//! inherited, nothing a program starts outlives its session (not even a detached
//! grandchild that ignores SIGTERM), and running out of descriptors leaves no program
//! behind and logs once per episode.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Starts the daemon the way `websocketd … &` in a script does: SIGINT and SIGQUIT
/// ignored. SIGUSR1 is blocked as well, which `exec` would also hand on.
fn start_with_signals_ignored(cwd: &Path, args: &[&str]) -> Server {
    Server::start_configured(cwd, args, &|command| {
        // SAFETY: only sigaction/sigprocmask (async-signal-safe) on stack values, between
        // fork and exec.
        unsafe {
            command.pre_exec(|| {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_IGN;
                libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
                libc::sigaction(libc::SIGQUIT, &action, std::ptr::null_mut());
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
    })
}

/// The `SigIgn`/`SigBlk` lines a script prints from its own `/proc/PID/status`.
const PRINT_SIGNALS: &str =
    r#"grep -E '^Sig(Ign|Blk):' /proc/$$/status | tr -d '\t' | tr '\n' ' '"#;

#[tokio::test]
async fn programs_start_with_default_signals_when_the_daemon_ignores_sigint() {
    let body = format!("{PRINT_SIGNALS}; echo; exec 0<&-; echo ready; exec sleep 30");
    let server = start_with_signals_ignored(&root(), &["sh", "-c", &body]);
    // The daemon itself does ignore SIGINT, so the test is meaningful.
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    assert!(status.contains("SigBlk:\t0000000000000200"), "{status}");
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(
        next_text(&mut ws).await.trim(),
        "SigBlk:0000000000000000 SigIgn:0000000000000000"
    );
    assert_eq!(next_text(&mut ws).await, "ready");
    let sent = Instant::now();
    send_text(&mut ws, "nobody reads this").await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    // The ladder's first signal, SIGINT, ends the program: it does not ignore it.
    assert_eq!(transcript.close, Some((1011, "signal 2".to_string())));
    assert!(sent.elapsed() < Duration::from_secs(2));
}

#[test]
fn cgi_scripts_start_with_default_signals_when_the_daemon_ignores_sigint() {
    let dir = temp_dir("cgi-signals");
    script(
        &dir,
        "signals.cgi",
        &format!("echo 'Content-Type: text/plain'; echo; {PRINT_SIGNALS}"),
    );
    let cgi = format!("--cgidir={}", dir.display());
    let server = start_with_signals_ignored(&root(), &[&cgi]);
    let response = server.get("/signals.cgi");
    assert_eq!(response.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&response.body).trim(),
        "SigBlk:0000000000000000 SigIgn:0000000000000000"
    );
}

// ---- Detached grandchildren ----

/// A program whose child starts a new session, ignores SIGTERM and SIGINT, and writes its
/// PID to `pid_file`; the program itself waits for a line.
fn detaching_program(dir: &Path, pid_file: &Path) -> PathBuf {
    script(
        dir,
        "detach.sh",
        &format!(
            "setsid sh -c 'trap \"\" TERM INT HUP; echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; \
             exec sleep 1000' &\necho started\nread line\n",
            pid = pid_file.display()
        ),
    )
}

/// Connects, waits until the detached grandchild exists, disconnects; returns its PID.
async fn run_detaching_session(server: &Server, pid_file: &Path) -> u32 {
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(next_text(&mut ws).await, "started");
    let mut grandchild = 0;
    assert!(wait_until(DEADLINE, || {
        grandchild = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        grandchild != 0
    }));
    assert!(alive(grandchild));
    drop(ws);
    grandchild
}

fn cgroup_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("0::").map(str::to_string))
        .unwrap_or_default()
}

/// The cgroup v2 mount point, from the mount table.
fn cgroup2_mount() -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .find(|line| {
            line.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("cgroup2 "))
        })
        .and_then(|line| line.split_whitespace().nth(4).map(str::to_string))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn a_detached_grandchild_ignoring_sigterm_ends_with_its_session() {
    let dir = temp_dir("detach");
    let pid_file = dir.join("grandchild.pid");
    let program = detaching_program(&dir, &pid_file);
    let server = Server::start(&["--loglevel=debug", program.to_str().unwrap()]);
    let grandchild = run_detaching_session(&server, &pid_file).await;
    // Whatever the machine allows, the grandchild is gone once the session ends.
    assert!(
        wait_until(DEADLINE, || !alive(grandchild)),
        "grandchild {grandchild} outlived its session"
    );
    let cgroup_mode = server
        .stdout
        .all()
        .iter()
        .any(|line| line.contains("Each program runs in its own cgroup"));
    let writable = is_root()
        && cgroup2_mount().is_some_and(|mount| {
            let own = cgroup_of(std::process::id());
            let probe = PathBuf::from(mount)
                .join(own.trim_start_matches('/'))
                .join(format!("wsd-probe-{}", std::process::id()));
            let made = std::fs::create_dir(&probe).is_ok();
            let _ = std::fs::remove_dir(&probe);
            made
        });
    // Where cgroups can be created, they are used.
    assert_eq!(cgroup_mode, writable, "{:?}", server.stdout.all());
}

#[tokio::test]
async fn a_detached_grandchild_ends_with_its_session_without_cgroups() {
    let dir = temp_dir("detach-nocg");
    let pid_file = dir.join("grandchild.pid");
    let program = detaching_program(&dir, &pid_file);
    // As root, hide the cgroup hierarchy behind a read-only mount in a private mount
    // namespace; otherwise cgroups are out of reach anyway (or delegated, in which case the
    // first test covers them).
    let hide = is_root()
        && Command::new("unshare").arg("--version").output().is_ok()
        && cgroup2_mount().is_some();
    let server = if hide {
        let mount = cgroup2_mount().unwrap();
        let wrapper = script(
            &dir,
            "no-cgroups.sh",
            &format!("mount -o remount,bind,ro {mount} && exec \"$@\""),
        );
        Server::start_configured(
            &root(),
            &["--loglevel=debug", program.to_str().unwrap()],
            &|c| {
                let daemon_args: Vec<String> =
                    c.get_args().map(|a| a.to_string_lossy().into()).collect();
                let mut wrapped = Command::new("unshare");
                wrapped
                    .args(["--mount", "--propagation", "private"])
                    .arg(&wrapper)
                    .arg(binary())
                    .args(&daemon_args);
                std::mem::swap(c, &mut wrapped);
                c.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
            },
        )
    } else {
        Server::start(&["--loglevel=debug", program.to_str().unwrap()])
    };
    if hide {
        assert!(
            server
                .stdout
                .wait_for(DEADLINE, |l| l.contains("tracked as a child subreaper"))
                .is_some(),
            "{:?}",
            server.stdout.all()
        );
    }
    let grandchild = run_detaching_session(&server, &pid_file).await;
    assert!(
        wait_until(DEADLINE, || !alive(grandchild)),
        "grandchild {grandchild} outlived its session"
    );
}

#[tokio::test]
async fn a_detached_grandchild_does_not_outlive_a_killed_daemon() {
    let dir = temp_dir("detach-kill");
    let pid_file = dir.join("grandchild.pid");
    let program = detaching_program(&dir, &pid_file);
    let mut server = Server::start(&[program.to_str().unwrap()]);
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(next_text(&mut ws).await, "started");
    assert!(wait_until(DEADLINE, || pid_file.exists()));
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    server.signal("KILL");
    assert!(server.wait_exit(DEADLINE).is_some());
    assert!(
        wait_until(DEADLINE, || !alive(grandchild)),
        "grandchild {grandchild} outlived the daemon"
    );
}

// ---- The daemon's own cgroup ----

/// The directory below which the daemon's programs get their cgroups, from its DEBUG
/// start-up line; `None` when cgroups are not the containment on this machine.
fn programs_cgroup(server: &Server) -> Option<PathBuf> {
    let line = server
        .stdout
        .wait_for(DEADLINE, |l| {
            l.contains("Each program runs in its own cgroup below")
                || l.contains("tracked as a child subreaper")
        })
        .expect("the daemon says how programs are contained");
    let (_, path) = line.split_once("own cgroup below ")?;
    Some(PathBuf::from(
        path.split(" |").next().unwrap_or(path).trim(),
    ))
}

#[test]
fn a_daemon_that_starts_no_program_leaves_no_cgroup_behind() {
    for signal in ["TERM", "INT", "KILL"] {
        let mut server = Server::start(&["--loglevel=debug", "cat"]);
        let Some(dir) = programs_cgroup(&server) else {
            return; // No cgroups here: nothing to leave behind.
        };
        assert!(dir.starts_with("/"), "{}", dir.display());
        // Serving requests that start no program creates nothing either.
        assert_eq!(server.get("/nothing").status, 404);
        assert!(!dir.exists(), "{} exists before any program", dir.display());
        server.signal(signal);
        assert!(server.wait_exit(DEADLINE).is_some());
        assert!(!dir.exists(), "{} left after SIG{signal}", dir.display());
    }
}

#[tokio::test]
async fn the_programs_cgroup_is_removed_however_the_daemon_ends() {
    for signal in ["TERM", "KILL"] {
        let mut server = Server::start(&["--loglevel=debug", "sh", "-c", "echo up; exec cat"]);
        let Some(dir) = programs_cgroup(&server) else {
            return;
        };
        let mut ws = connect(&server.url("/")).await;
        assert_eq!(next_text(&mut ws).await, "up");
        assert!(
            dir.is_dir(),
            "{} missing while a program runs",
            dir.display()
        );
        server.signal(signal);
        assert!(server.wait_exit(DEADLINE).is_some());
        // After SIGKILL the spawner helper removes it once it sees the daemon gone.
        assert!(
            wait_until(DEADLINE, || !dir.exists()),
            "{} left after SIG{signal}",
            dir.display()
        );
    }
}

// ---- Out of descriptors ----

/// Opens a WebSocket without insisting on success: under descriptor exhaustion the
/// daemon may accept late, answer 101 and close at once, or not answer in time.
fn try_upgrade(port: u16) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .ok()?;
    let mut first = [0u8; 12];
    let _ = stream.read(&mut first);
    Some(stream)
}

#[test]
fn running_out_of_descriptors_leaves_no_program_behind_and_logs_once_per_episode() {
    const LIMIT: u64 = 64;
    let server = Server::start_configured(&root(), &["sleep", "100"], &|command| {
        // SAFETY: setrlimit is async-signal-safe; the value lives on the stack.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: LIMIT,
                    rlim_max: LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let daemon = server.pid();
    // Far more sessions than descriptors: each needs a socket and three pipes.
    let clients: Vec<TcpStream> = (0..40).filter_map(|_| try_upgrade(server.port)).collect();
    assert!(
        server
            .stdout
            .wait_for(DEADLINE, |l| l.contains("Accept failed")
                || l.contains("Could not launch"))
            .is_some(),
        "the daemon never ran out of descriptors: {:?}",
        server.stdout.all()
    );
    // Let the accept loop retry for a while (every 50 ms) while still out of descriptors.
    std::thread::sleep(Duration::from_millis(500));
    let running = programs(daemon).len();
    assert!(running > 0 && running < 40, "{running} programs");
    drop(clients);
    // Every program ends with its session, whether it was fully launched or not.
    assert!(
        wait_until(DEADLINE, || programs(daemon).is_empty()),
        "programs left: {:?}",
        programs(daemon)
    );
    // And the daemon serves again.
    let again = raw_upgrade(server.port);
    assert!(wait_until(DEADLINE, || programs(daemon).len() == 1));
    drop(again);
    let lines = server.stdout.all();
    let failures = lines.iter().filter(|l| l.contains("Accept failed")).count();
    let recoveries = lines
        .iter()
        .filter(|l| l.contains("Accepting again after"))
        .count();
    assert!(
        failures <= 3,
        "one line per episode, got {failures}: {lines:?}"
    );
    assert!(recoveries >= failures.saturating_sub(1), "{lines:?}");
}

// ---- Requests the HTTP parser refuses ----

#[test]
fn a_target_with_angle_brackets_or_backquote_is_refused_and_logged() {
    let server = Server::start(&["cat"]);
    for target in ["/a<b", "/a>b", "/a`b"] {
        let raw = server.raw(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let response = HttpResponse::parse(&raw);
        assert_eq!(response.status, 400, "{target}");
    }
    assert!(server
        .stdout
        .wait_count(DEADLINE, 3, |l| l.contains("| ACCESS |")
            && l.contains("remote:'127.0.0.1'")
            && l.contains("Refused unparsable request (400): invalid URI")));
}

fn request_with_headers(count: usize) -> Vec<u8> {
    let mut request = b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..count {
        request.extend_from_slice(format!("h{i}:\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request
}

#[test]
fn thousands_of_header_lines_are_accepted_and_too_many_refused_with_a_log_line() {
    let server = Server::start(&["cat"]);
    // Go's limit is only the 1 MiB size: 20,000 short lines are far below it.
    let response = HttpResponse::parse(&server.raw(&request_with_headers(20_000)));
    assert_eq!(response.status, 404);
    let response = HttpResponse::parse(&server.raw(&request_with_headers(24_577)));
    assert_eq!(response.status, 431);
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("Refused unparsable request (431)"))
        .is_some());
}
