//! `--unbuffered`: the program's stdout (and, with `--passstderr`, its stderr) is the user
//! side of a pseudo-terminal instead of a pipe. C runtimes, Python and most tools buffer a
//! pipe fully but a terminal only by line, so output then arrives as it is printed.
//!
//! The terminal is in raw mode (no echo, no CR/LF translation, no special characters, no
//! signals), fixed at 80×24, and it is not the program's controlling terminal: the program
//! stays in its own process group without a session of its own, so nothing on this
//! terminal can stop, interrupt or hang it up. Its stdin stays a pipe, so end of input
//! still means the connection closed.
//!
//! One difference from a pipe matters to the reader: once every copy of the user side is
//! closed (the program and everything it started exited), reading the daemon's side gives
//! `EIO` after the last buffered byte instead of end of file; [`is_hangup`] recognises it.

use rustix::pty::OpenptFlags;
use rustix::termios::{self, OptionalActions, Winsize};
use std::io;
use std::os::fd::OwnedFd;

/// Columns of every program's terminal. Nothing in the WebSocket protocol carries a
/// window size, so it is fixed.
pub const COLUMNS: u16 = 80;
/// Rows of every program's terminal.
pub const ROWS: u16 = 24;

/// `TERM` for a program with a terminal: one that understands no control sequences, so
/// programs print plain lines (no colours, no cursor movement).
pub const TERM: &str = "dumb";

/// Which of the program's output streams are terminals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Streams {
    /// Both are pipes (the default).
    #[default]
    None,
    /// stdout is a terminal; stderr (when captured) stays a pipe.
    Stdout,
    /// stdout and stderr each have a terminal of their own, so the streams stay apart.
    StdoutAndStderr,
}

impl Streams {
    /// Whether stdout is a terminal.
    pub fn stdout(self) -> bool {
        self != Streams::None
    }

    /// Whether stderr is a terminal.
    pub fn stderr(self) -> bool {
        self == Streams::StdoutAndStderr
    }

    /// One byte for the spawner's request record.
    pub fn encode(self) -> u8 {
        match self {
            Streams::None => 0,
            Streams::Stdout => 1,
            Streams::StdoutAndStderr => 2,
        }
    }

    /// The value [`Streams::encode`] wrote.
    pub fn decode(byte: u8) -> Option<Streams> {
        match byte {
            0 => Some(Streams::None),
            1 => Some(Streams::Stdout),
            2 => Some(Streams::StdoutAndStderr),
            _ => None,
        }
    }
}

/// A pseudo-terminal: the daemon reads `controller`; `user` becomes the program's output.
#[derive(Debug)]
pub struct Pty {
    /// The daemon's side (read like the read end of a pipe).
    pub controller: OwnedFd,
    /// The program's side; every copy must be closed for the daemon to see the end.
    pub user: OwnedFd,
}

/// Opens a pseudo-terminal in raw mode with an 80×24 window. Neither side can become
/// anyone's controlling terminal by being opened, and both close on `exec` (the program
/// receives the user side as a duplicated stdout/stderr).
pub fn open() -> io::Result<Pty> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let controller = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&controller)?;
    rustix::pty::unlockpt(&controller)?;
    let user = match rustix::pty::ioctl_tiocgptpeer(&controller, flags) {
        Ok(user) => user,
        // Kernels before 4.13: open the user side by name.
        Err(_) => {
            let name = rustix::pty::ptsname(&controller, Vec::new())?;
            rustix::fs::open(
                name.as_c_str(),
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?
        }
    };
    let mut settings = termios::tcgetattr(&user)?;
    settings.make_raw();
    termios::tcsetattr(&user, OptionalActions::Now, &settings)?;
    termios::tcsetwinsize(
        &user,
        Winsize {
            ws_row: ROWS,
            ws_col: COLUMNS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(Pty { controller, user })
}

/// Whether a read error on the daemon's side means the program's side is closed for good
/// (every buffered byte has been read by then): the terminal's end of file.
pub fn is_hangup(err: &io::Error) -> bool {
    err.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn raw_terminal_passes_bytes_unchanged_then_hangs_up() {
        let pty = open().unwrap();
        assert!(termios::isatty(&pty.user));
        let size = termios::tcgetwinsize(&pty.user).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (COLUMNS, ROWS));
        let settings = termios::tcgetattr(&pty.user).unwrap();
        assert!(!settings
            .local_modes
            .intersects(termios::LocalModes::ECHO | termios::LocalModes::ISIG));
        assert!(!settings.output_modes.contains(termios::OutputModes::OPOST));

        let mut user = std::fs::File::from(pty.user);
        user.write_all(b"a\nb\r\n\x03").unwrap();
        drop(user);
        let mut controller = std::fs::File::from(pty.controller);
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match controller.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(err) => {
                    assert!(is_hangup(&err), "{err}");
                    break;
                }
            }
        }
        assert_eq!(got, b"a\nb\r\n\x03");
    }

    #[test]
    fn streams_round_trip() {
        for streams in [Streams::None, Streams::Stdout, Streams::StdoutAndStderr] {
            assert_eq!(Streams::decode(streams.encode()), Some(streams));
        }
        assert_eq!(Streams::decode(9), None);
    }
}
