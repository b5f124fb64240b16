//! Starting programs from a small helper process launched at start-up. Creating a process
//! copies its creator's descriptor table and `exec` then walks it, so spawning from a
//! daemon that holds thousands of sockets and pipes gets slower with every connection; the
//! helper's table stays a handful of entries. The helper starts and reaps the programs,
//! passes their pipe ends back over a Unix socket, and reports every exit status.
//!
//! Requests (daemon → helper, on the helper's stdin): a length-prefixed record of the
//! launch. Replies: `0` + PID with the pipe descriptors attached, or `1` + errno. Exit
//! reports (helper → daemon, on the helper's stdout): PID and raw wait status.

use super::reaper;
use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Condvar, Mutex, OnceLock};

/// Set in the helper's environment: the process serves spawn requests instead of running
/// as the daemon.
const HELPER_MARKER: &str = "WEBSOCKETD_SPAWNER_HELPER";

/// Longest wait for the helper to accept a request or answer it.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The daemon's end of the request socket, when the helper runs.
static HELPER: OnceLock<Mutex<UnixStream>> = OnceLock::new();

/// A program to start, as the helper receives it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The executable.
    pub program: OsString,
    /// `argv[0]`, if different from `program`.
    pub arg0: Option<OsString>,
    /// Arguments.
    pub args: Vec<OsString>,
    /// The whole environment.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory; `None` keeps the helper's (the daemon's).
    pub cwd: Option<OsString>,
    /// Whether stderr is piped back (else shared with the daemon).
    pub capture_stderr: bool,
    /// Which output streams are terminals (`--unbuffered`).
    pub ptys: super::pty::Streams,
    /// The cgroup the program starts in, when cgroups hold programs.
    pub cgroup: Option<OsString>,
}

/// Pipe ends of a started program.
#[derive(Debug)]
pub struct Pipes {
    /// PID.
    pub pid: u32,
    /// stdin, stdout and (when captured) stderr.
    pub fds: Vec<OwnedFd>,
}

/// If this process is the helper, serves requests until the daemon goes away, then exits.
/// Called first thing in `main`.
pub fn run_if_helper() {
    if std::env::var_os(HELPER_MARKER).is_none() {
        return;
    }
    std::env::remove_var(HELPER_MARKER);
    serve_requests();
    std::process::exit(0);
}

/// Starts the helper. Without it, programs are started by the daemon itself.
pub fn start() -> io::Result<()> {
    let (requests, helper_requests) = UnixStream::pair()?;
    let (reports, helper_reports) = UnixStream::pair()?;
    let mut command = std::process::Command::new("/proc/self/exe");
    command
        .arg0("websocketd-spawner")
        .env(HELPER_MARKER, "1")
        .stdin(Stdio::from(OwnedFd::from(helper_requests)))
        .stdout(Stdio::from(OwnedFd::from(helper_reports)))
        .stderr(Stdio::inherit())
        // Out of the terminal's process group: Ctrl+C is for the daemon, which then stops
        // its programs in order.
        .process_group(0);
    command.spawn()?;
    // A helper that stopped answering must not stall the daemon for good.
    requests.set_read_timeout(Some(HELPER_TIMEOUT))?;
    requests.set_write_timeout(Some(HELPER_TIMEOUT))?;
    HELPER
        .set(Mutex::new(requests))
        .map_err(|_| io::Error::other("spawner already started"))?;
    std::thread::Builder::new()
        .name("exit-reports".into())
        .spawn(move || read_reports(reports))?;
    Ok(())
}

/// Whether programs are started through the helper.
pub fn available() -> bool {
    HELPER.get().is_some() && !BROKEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set when a request or reply failed half-way: the conversation with the helper can no
/// longer be trusted, so programs are started directly from then on.
static BROKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks the helper to start a program; registers it for its exit status.
pub fn spawn(request: &Request) -> io::Result<(Pipes, reaper::Child)> {
    let helper = HELPER.get().ok_or_else(|| io::Error::other("no spawner"))?;
    let encoded = encode(request);
    reaper::register(|| {
        let socket = helper
            .lock()
            .map_err(|_| io::Error::other("spawner lock poisoned"))?;
        let exchanged = (&*socket)
            .write_all(&encoded)
            .and_then(|()| receive_reply(&socket));
        match exchanged {
            Ok(Ok(pipes)) => {
                started_here().insert(pipes.pid);
                Ok((pipes.pid, pipes))
            }
            // The helper answered: the program could not be started.
            Ok(Err(refused)) => Err(refused),
            Err(broken) => {
                BROKEN.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(broken)
            }
        }
    })
}

/// Reads the helper's answer: the outer error is a broken conversation, the inner one the
/// helper's report that the program could not be started.
fn receive_reply(socket: &UnixStream) -> io::Result<io::Result<Pipes>> {
    let mut head = [0u8; 5];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut head)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )?;
    if received.bytes != head.len() {
        return Err(io::Error::other("spawner closed"));
    }
    let mut fds = Vec::new();
    for message in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    let value = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    Ok(match head[0] {
        0 => Ok(Pipes { pid: value, fds }),
        _ => Err(io::Error::from_raw_os_error(value as i32)),
    })
}

/// Programs the helper started whose exit has not been reported yet.
fn started_here() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    static PIDS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
    PIDS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The daemon side of exit reports: delivers each to its waiter. If the helper goes away,
/// later programs are started directly and waits for the helper's programs fail rather
/// than hang (the termination ladder then checks their process groups itself).
fn read_reports(mut reports: UnixStream) {
    let mut record = [0u8; 8];
    while reports.read_exact(&mut record).is_ok() {
        let pid = u32::from_le_bytes([record[0], record[1], record[2], record[3]]);
        let status = i32::from_le_bytes([record[4], record[5], record[6], record[7]]);
        started_here().remove(&pid);
        reaper::deliver(pid, status);
    }
    BROKEN.store(true, std::sync::atomic::Ordering::Relaxed);
    let orphans = std::mem::take(&mut *started_here());
    for pid in orphans {
        reaper::abandon(pid);
    }
}

// ---- The helper process ----

/// Children started and not yet reaped: the reaping thread sleeps while there are none,
/// and whatever is left when the daemon goes away is stopped.
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
static STARTED: Condvar = Condvar::new();
/// How long leftover programs get between SIGTERM and SIGKILL when the daemon is gone.
const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn live() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn serve_requests() {
    super::contain::become_subreaper();
    super::signals::reset_for_children();
    let stdin = io::stdin();
    let socket = match stdin.as_fd().try_clone_to_owned() {
        Ok(fd) => UnixStream::from(fd),
        Err(_) => return,
    };
    let reports = match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => UnixStream::from(fd),
        Err(_) => return,
    };
    if std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || reap_and_report(reports))
        .is_err()
    {
        return;
    }
    while let Ok(request) = read_request(&socket) {
        if let Some(dir) = &request.cgroup {
            let _ = CGROUP_PARENT.set(std::path::Path::new(dir).parent().map(Into::into));
        }
        let reply = start_program(&request);
        let pid = reply.as_ref().map(|(child, _)| child.id()).ok();
        if send_reply(&socket, reply).is_err() {
            // The daemon never got the program's pipes: nobody may be left running.
            if let Some(group) = pid.and_then(|pid| i32::try_from(pid).ok()) {
                if let Some(group) = rustix::process::Pid::from_raw(group) {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
            }
            break;
        }
    }
    stop_leftovers();
}

/// The directory holding the programs' cgroups, learnt from the first request with one.
static CGROUP_PARENT: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();

/// The daemon is gone (it stops its own programs first when it can): nothing it started
/// may outlive it. Every remaining program's group, and every orphan this helper adopted as
/// subreaper, gets SIGTERM, then SIGKILL; the programs' cgroups are emptied and removed.
fn stop_leftovers() {
    use rustix::process::{kill_process, kill_process_group, Pid, Signal};
    let signal_all = |signal: Signal| {
        let programs = live().clone();
        for pid in super::contain::adopted(&programs) {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = kill_process(pid, signal);
            }
        }
        for pid in programs {
            if let Some(group) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = kill_process_group(group, signal);
            }
        }
    };
    signal_all(Signal::TERM);
    let deadline = std::time::Instant::now() + LEFTOVER_GRACE;
    while !(live().is_empty() && super::contain::adopted(&BTreeSet::new()).is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    signal_all(Signal::KILL);
    if let Some(Some(parent)) = CGROUP_PARENT.get() {
        super::contain::remove_parent(parent);
    }
}

/// Starts a program; returns it with the daemon's ends of its streams.
fn start_program(request: &Request) -> io::Result<(std::process::Child, Vec<OwnedFd>)> {
    let mut command = std::process::Command::new(&request.program);
    if let Some(arg0) = &request.arg0 {
        command.arg0(arg0);
    }
    if let Some(cwd) = &request.cwd {
        command.current_dir(cwd);
    }
    command
        .args(&request.args)
        .env_clear()
        .envs(request.env.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    let terminals = super::wire(&mut command, request.capture_stderr, request.ptys)?;
    let _procs = match &request.cgroup {
        Some(dir) => Some(super::contain::join_in_child(
            &mut command,
            std::path::Path::new(dir),
        )?),
        None => None,
    };
    let mut live = live();
    let mut child = command.spawn()?;
    live.insert(child.id());
    STARTED.notify_one();
    drop(live);
    // Our copies of the program's terminal sides close with the command.
    drop(command);
    let fds = super::daemon_ends(&mut child, terminals);
    Ok((child, fds))
}

fn send_reply(
    socket: &UnixStream,
    reply: io::Result<(std::process::Child, Vec<OwnedFd>)>,
) -> io::Result<()> {
    match reply {
        Err(err) => {
            let mut record = [1u8; 5];
            let errno = err.raw_os_error().unwrap_or(5) as u32;
            record[1..].copy_from_slice(&errno.to_le_bytes());
            (&*socket).write_all(&record)
        }
        Ok((child, fds)) => {
            let mut record = [0u8; 5];
            record[1..].copy_from_slice(&child.id().to_le_bytes());
            let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
            let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
            control.push(rustix::net::SendAncillaryMessage::ScmRights(&borrowed));
            rustix::net::sendmsg(
                socket,
                &[IoSlice::new(&record)],
                &mut control,
                rustix::net::SendFlags::NOSIGNAL,
            )?;
            // Our copies close here; the daemon holds the only ends now.
            Ok(())
        }
    }
}

fn reap_and_report(mut reports: UnixStream) {
    loop {
        match reaper::exited_child() {
            Ok(pid) => {
                // A start in progress holds `live` (and reaps a child whose exec failed
                // itself): reap only once it is done.
                let mut live = live();
                let Some(status) = reaper::reap(pid) else {
                    continue;
                };
                live.remove(&pid);
                drop(live);
                let mut record = [0u8; 8];
                record[..4].copy_from_slice(&pid.to_le_bytes());
                record[4..].copy_from_slice(&status.to_le_bytes());
                // Once the daemon is gone there is nobody to tell; keep reaping.
                let _ = reports.write_all(&record);
            }
            Err(_) => {
                let live = live();
                if live.is_empty() {
                    let _unused = STARTED
                        .wait(live)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }
}

// ---- The request record ----

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Encodes a request: total length, then its fields.
pub fn encode(request: &Request) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    put(&mut body, request.program.as_bytes());
    body.push(u8::from(request.arg0.is_some()));
    put(
        &mut body,
        request.arg0.as_deref().map_or(b"", OsStr::as_bytes),
    );
    body.extend_from_slice(&(request.args.len() as u32).to_le_bytes());
    for arg in &request.args {
        put(&mut body, arg.as_bytes());
    }
    body.extend_from_slice(&(request.env.len() as u32).to_le_bytes());
    for (name, value) in &request.env {
        put(&mut body, name.as_bytes());
        put(&mut body, value.as_bytes());
    }
    body.push(u8::from(request.cwd.is_some()));
    put(
        &mut body,
        request.cwd.as_deref().map_or(b"", OsStr::as_bytes),
    );
    body.push(u8::from(request.capture_stderr));
    body.push(request.ptys.encode());
    body.push(u8::from(request.cgroup.is_some()));
    put(
        &mut body,
        request.cgroup.as_deref().map_or(b"", OsStr::as_bytes),
    );
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn read_request(mut socket: &UnixStream) -> io::Result<Request> {
    let mut length = [0u8; 4];
    socket.read_exact(&mut length)?;
    let mut body = vec![0u8; u32::from_le_bytes(length) as usize];
    socket.read_exact(&mut body)?;
    decode(&body).ok_or_else(|| io::Error::other("malformed spawn request"))
}

/// Reads fields off the front of a request body.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        Some(head)
    }

    fn flag(&mut self) -> Option<bool> {
        Some(self.take(1)?[0] == 1)
    }

    fn count(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn string(&mut self) -> Option<OsString> {
        let n = self.count()?;
        Some(OsString::from_vec(self.take(n)?.to_vec()))
    }
}

/// Decodes a request body (without its length prefix).
pub fn decode(body: &[u8]) -> Option<Request> {
    let mut cursor = Cursor { rest: body };
    let program = cursor.string()?;
    let has_arg0 = cursor.flag()?;
    let arg0 = cursor.string()?;
    let args_len = cursor.count()?;
    let mut args = Vec::with_capacity(args_len.min(1024));
    for _ in 0..args_len {
        args.push(cursor.string()?);
    }
    let env_len = cursor.count()?;
    let mut env = Vec::with_capacity(env_len.min(1024));
    for _ in 0..env_len {
        let name = cursor.string()?;
        env.push((name, cursor.string()?));
    }
    let has_cwd = cursor.flag()?;
    let cwd = cursor.string()?;
    let capture_stderr = cursor.flag()?;
    let ptys = super::pty::Streams::decode(cursor.take(1)?[0])?;
    let has_cgroup = cursor.flag()?;
    let cgroup = cursor.string()?;
    Some(Request {
        program,
        arg0: has_arg0.then_some(arg0),
        args,
        env,
        cwd: has_cwd.then_some(cwd),
        capture_stderr,
        ptys,
        cgroup: has_cgroup.then_some(cgroup),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let request = Request {
            program: "/bin/sh".into(),
            arg0: Some("x.cgi".into()),
            args: vec!["-c".into(), OsString::from_vec(vec![0xff, b'a'])],
            env: vec![("A".into(), "1".into()), ("EMPTY".into(), "".into())],
            cwd: Some("/tmp".into()),
            capture_stderr: true,
            ptys: super::super::pty::Streams::StdoutAndStderr,
            cgroup: Some("/sys/fs/cgroup/websocketd.1/7".into()),
        };
        let encoded = encode(&request);
        assert_eq!(decode(&encoded[4..]), Some(request));
        assert_eq!(decode(&encoded[4..encoded.len() - 1]), None);
        assert_eq!(decode(b""), None);
    }
}
