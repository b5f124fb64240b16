//! Launching a program for a connection or a CGI request, in its own process group, with
//! pipes, and ending it with the termination ladder.

pub mod ladder;
pub mod lines;
pub mod reaper;

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
}

/// A running program and the daemon's ends of its pipes.
#[derive(Debug)]
pub struct Program {
    /// The process; waited for by the ladder.
    pub child: Child,
    /// Its PID, which is also its process group ID.
    pub pid: u32,
    /// Write end of its stdin; dropping it closes stdin.
    pub stdin: Option<pipe::Sender>,
    /// Read end of its stdout.
    pub stdout: pipe::Receiver,
    /// Read end of its stderr, when captured.
    pub stderr: Option<pipe::Receiver>,
}

/// Starts a program in a new process group with exactly the given environment.
pub fn spawn(launch: Launch<'_>) -> io::Result<Program> {
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
        .envs(launch.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if launch.capture_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .process_group(0);
    let (mut started, child) = reaper::spawn(&mut command)?;
    let missing = || io::Error::other("pipe not created");
    let stdin = OwnedFd::from(started.stdin.take().ok_or_else(missing)?);
    let stdout = OwnedFd::from(started.stdout.take().ok_or_else(missing)?);
    let stderr = started.stderr.take().map(OwnedFd::from);
    Ok(Program {
        pid: child.id(),
        child,
        stdin: Some(pipe::Sender::from_owned_fd_unchecked(nonblocking(stdin)?)?),
        stdout: pipe::Receiver::from_owned_fd_unchecked(nonblocking(stdout)?)?,
        stderr: match stderr {
            Some(fd) => Some(pipe::Receiver::from_owned_fd_unchecked(nonblocking(fd)?)?),
            None => None,
        },
    })
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
