//! Launching a program for a connection or a CGI request, in its own process group, with
//! pipes, and ending it with the termination ladder.

pub mod contain;
pub mod ladder;
pub mod lines;
pub mod pty;
pub mod reaper;
pub mod signals;
pub mod spawner;

pub use reaper::Child;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use tokio::net::unix::pipe;

/// What to start and how.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The executable.
    pub program: &'a Path,
    /// `argv[0]`, when it should differ from `program`.
    pub arg0: Option<&'a OsStr>,
    /// The arguments after `argv[0]`.
    pub args: &'a [OsString],
    /// The whole environment.
    pub env: Vec<(&'a str, &'a OsStr)>,
    /// Working directory; `None` keeps the daemon's.
    pub cwd: Option<&'a Path>,
    /// Pipe stderr to the daemon (true) or let it share the daemon's stderr (false).
    pub capture_stderr: bool,
    /// Which output streams are terminals instead of pipes (`--unbuffered`).
    pub ptys: pty::Streams,
}

/// A running program and the daemon's ends of its pipes.
#[derive(Debug)]
pub struct Program {
    /// The process (its PID is also its process group ID); waited for by the ladder.
    pub child: Child,
    /// Write end of its stdin; dropping it closes stdin.
    pub stdin: Option<pipe::Sender>,
    /// Read end of its stdout (the daemon's side of its terminal with `--unbuffered`).
    pub stdout: pipe::Receiver,
    /// Read end of its stderr, when captured (or the daemon's side of its terminal).
    pub stderr: Option<pipe::Receiver>,
}

/// Starts a program in a new process group (and its own cgroup where cgroups are the
/// containment) with exactly the given environment, through the spawner helper when it
/// runs. If anything fails once the program exists, its process group is killed.
pub fn spawn(launch: Launch<'_>) -> io::Result<Program> {
    start(launch).inspect_err(|_| crate::metrics::spawn_failed())
}

fn start(launch: Launch<'_>) -> io::Result<Program> {
    let cgroup = contain::SessionCgroup::create().and_then(Result::ok);
    let cgroup_dir = cgroup.as_ref().map(contain::SessionCgroup::dir);
    let (fds, mut child) = if spawner::available() {
        let request = spawner::Request {
            program: launch.program.as_os_str().to_owned(),
            arg0: launch.arg0.map(OsStr::to_owned),
            args: launch.args.to_vec(),
            env: launch
                .env
                .iter()
                .map(|(name, value)| (OsString::from(name), value.to_os_string()))
                .collect(),
            cwd: launch.cwd.map(|cwd| cwd.as_os_str().to_owned()),
            capture_stderr: launch.capture_stderr,
            ptys: launch.ptys,
            cgroup: cgroup_dir.map(|dir| dir.as_os_str().to_owned()),
        };
        match spawner::spawn(&request) {
            Ok((pipes, child)) => (pipes.fds, child),
            // The helper is gone or out of step: start this program (and later ones) here.
            Err(_) if !spawner::available() => spawn_here_fds(&launch, cgroup_dir)?,
            Err(refused) => return Err(refused),
        }
    } else {
        spawn_here_fds(&launch, cgroup_dir)?
    };
    child.contain(contain::Containment::new(cgroup));
    match wrap_pipes(fds, launch.capture_stderr) {
        Ok((stdin, stdout, stderr)) => Ok(Program {
            child,
            stdin: Some(stdin),
            stdout,
            stderr,
        }),
        Err(err) => {
            // The program runs but cannot be talked to: it must not be left behind.
            ladder::kill_group_now(child.id());
            Err(err)
        }
    }
}

type Pipes = (pipe::Sender, pipe::Receiver, Option<pipe::Receiver>);

/// The daemon's ends of a program's streams (stdin, stdout, stderr when captured), made
/// non-blocking and registered with the runtime.
fn wrap_pipes(fds: Vec<OwnedFd>, capture_stderr: bool) -> io::Result<Pipes> {
    let missing = || io::Error::other("pipe not created");
    let mut fds = fds.into_iter();
    let stdin = fds.next().ok_or_else(missing)?;
    let stdout = fds.next().ok_or_else(missing)?;
    let stderr = if capture_stderr {
        Some(fds.next().ok_or_else(missing)?)
    } else {
        None
    };
    Ok((
        pipe::Sender::from_owned_fd_unchecked(nonblocking(stdin)?)?,
        pipe::Receiver::from_owned_fd_unchecked(nonblocking(stdout)?)?,
        match stderr {
            Some(fd) => Some(pipe::Receiver::from_owned_fd_unchecked(nonblocking(fd)?)?),
            None => None,
        },
    ))
}

/// Starts the program here and returns its pipe ends in order (stdin, stdout, stderr).
fn spawn_here_fds(launch: &Launch<'_>, cgroup: Option<&Path>) -> io::Result<(Vec<OwnedFd>, Child)> {
    let mut command = std::process::Command::new(launch.program);
    if let Some(arg0) = launch.arg0 {
        command.arg0(arg0);
    }
    if let Some(cwd) = launch.cwd {
        command.current_dir(cwd);
    }
    command
        .args(launch.args)
        .env_clear()
        .envs(launch.env.iter().copied())
        .process_group(0);
    signals::reset_in_child(&mut command);
    let _procs = match cgroup {
        Some(dir) => Some(contain::join_in_child(&mut command, dir)?),
        None => None,
    };
    let terminals = wire(&mut command, launch.capture_stderr, launch.ptys)?;
    let (mut started, child) = reaper::spawn_local(&mut command)?;
    // The command holds the program's side of any terminal: close it here, so the
    // program's exit is seen as the end of its output.
    drop(command);
    Ok((daemon_ends(&mut started, terminals), child))
}

/// The daemon's sides of a program's terminals, opened before it starts.
struct Terminals {
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

/// Wires a command's standard streams: stdin a pipe; stdout a pipe or a terminal; stderr a
/// pipe, a terminal, or the daemon's own when not captured. Used by the daemon and by the
/// spawner helper alike.
fn wire(
    command: &mut std::process::Command,
    capture_stderr: bool,
    ptys: pty::Streams,
) -> io::Result<Terminals> {
    command.stdin(Stdio::piped());
    let mut terminals = Terminals {
        stdout: None,
        stderr: None,
    };
    if ptys.stdout() {
        let opened = pty::open()?;
        command.stdout(Stdio::from(opened.user));
        terminals.stdout = Some(opened.controller);
    } else {
        command.stdout(Stdio::piped());
    }
    if !capture_stderr {
        command.stderr(Stdio::inherit());
    } else if ptys.stderr() {
        let opened = pty::open()?;
        command.stderr(Stdio::from(opened.user));
        terminals.stderr = Some(opened.controller);
    } else {
        command.stderr(Stdio::piped());
    }
    Ok(terminals)
}

/// The daemon's ends of a started program's streams, in order: stdin, stdout, and stderr
/// when captured.
fn daemon_ends(started: &mut std::process::Child, terminals: Terminals) -> Vec<OwnedFd> {
    let stdout = terminals
        .stdout
        .or_else(|| started.stdout.take().map(OwnedFd::from));
    let stderr = terminals
        .stderr
        .or_else(|| started.stderr.take().map(OwnedFd::from));
    [started.stdin.take().map(OwnedFd::from), stdout, stderr]
        .into_iter()
        .flatten()
        .collect()
}

/// Our ends of fresh pipes only need O_NONBLOCK added (access mode is fixed by the pipe).
fn nonblocking(fd: OwnedFd) -> io::Result<OwnedFd> {
    rustix::fs::fcntl_setfl(fd.as_fd(), rustix::fs::OFlags::NONBLOCK)?;
    Ok(fd)
}

/// How a program ended, in the words of the close reason (`exit status 3`, `signal 9`).
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => "unknown exit".to_string(),
    }
}
