//! Launching a program for a connection, in its own process group, with three pipes, and
//! ending it with the termination ladder.

pub mod ladder;
pub mod lines;

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use tokio::net::unix::pipe;

/// A running program and the daemon's ends of its pipes.
#[derive(Debug)]
pub struct Program {
    /// The process; waited for by the ladder.
    pub child: tokio::process::Child,
    /// Its PID, which is also its process group ID.
    pub pid: u32,
    /// Write end of its stdin; dropping it closes stdin.
    pub stdin: Option<pipe::Sender>,
    /// Read end of its stdout.
    pub stdout: pipe::Receiver,
    /// Read end of its stderr.
    pub stderr: pipe::Receiver,
}

/// Starts `program` with exactly `env` as its environment, in a new process group, with
/// the daemon's working directory.
pub fn spawn<'a>(
    program: &Path,
    args: &[OsString],
    env: impl IntoIterator<Item = (&'a str, &'a std::ffi::OsStr)>,
) -> io::Result<Program> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = command.spawn()?;
    let missing = || io::Error::other("pipe not created");
    let pid = child.id().ok_or_else(missing)?;
    let stdin = child.stdin.take().ok_or_else(missing)?.into_owned_fd()?;
    let stdout = child.stdout.take().ok_or_else(missing)?.into_owned_fd()?;
    let stderr = child.stderr.take().ok_or_else(missing)?.into_owned_fd()?;
    Ok(Program {
        child,
        pid,
        stdin: Some(pipe::Sender::from_owned_fd(stdin)?),
        stdout: pipe::Receiver::from_owned_fd(stdout)?,
        stderr: pipe::Receiver::from_owned_fd(stderr)?,
    })
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
