//! Running under systemd: listening sockets passed by socket activation (`LISTEN_PID`,
//! `LISTEN_FDS`, `LISTEN_FDNAMES`), and the `sd_notify` messages (`READY=1`, `RELOADING=1`,
//! `STOPPING=1`, `WATCHDOG=1`) sent as datagrams to `NOTIFY_SOCKET`. Both are plain
//! protocols over environment variables and sockets, so no systemd library is involved.

use socket2::{Domain, Socket, Type};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The first descriptor systemd passes.
const FIRST_FD: RawFd = 3;
/// The name of a passed socket that serves `--redirport`'s redirects.
pub const REDIRECT_NAME: &str = "redirect";
/// The name of a passed socket that serves `/metrics` and `/healthz`.
pub const METRICS_NAME: &str = "metrics";

/// A listening socket systemd passed.
#[derive(Debug)]
pub enum Passed {
    /// A TCP listener.
    Tcp {
        /// The socket, close-on-exec and non-blocking.
        listener: std::net::TcpListener,
        /// Its `FileDescriptorName=` (`unknown` when unnamed).
        name: String,
    },
    /// A Unix stream listener.
    Unix {
        /// The socket, close-on-exec and non-blocking.
        listener: std::os::unix::net::UnixListener,
        /// Its `FileDescriptorName=` (`unknown` when unnamed).
        name: String,
    },
}

impl Passed {
    /// The `FileDescriptorName=` systemd gave the socket.
    pub fn name(&self) -> &str {
        match self {
            Passed::Tcp { name, .. } | Passed::Unix { name, .. } => name,
        }
    }
}

/// Takes the sockets systemd passed to this process, if any, and removes the `LISTEN_*`
/// variables so nothing started later mistakes them for its own. Must run before any other
/// descriptor is opened or any thread started (first thing in `main`). An error names the
/// descriptor that is not a listening stream socket.
pub fn take_listeners() -> Result<Vec<Passed>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    let for_us = pid
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    let Some(count) = count.filter(|_| for_us) else {
        return Ok(Vec::new());
    };
    let count: RawFd = count
        .trim()
        .parse()
        .ok()
        .filter(|&n| (0..=4096).contains(&n))
        .ok_or_else(|| format!("LISTEN_FDS={count} is not a descriptor count"))?;
    let names: Vec<&str> = names
        .as_deref()
        .map_or(Vec::new(), |n| n.split(':').collect());
    let mut passed = Vec::new();
    for (index, fd) in (FIRST_FD..FIRST_FD + count).enumerate() {
        let name = names
            .get(index)
            .filter(|n| !n.is_empty())
            .map_or("unknown", |n| *n)
            .to_string();
        let describe = || format!("socket {fd} ({name}) passed by systemd");
        if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
            return Err(format!("{} is not open", describe()));
        }
        // SAFETY: the descriptor is open (checked just above) and, by the socket-activation
        // protocol, handed to this process for it to own. It is taken exactly once: the
        // variables that name it were removed above, and this runs before the process has
        // opened any descriptor of its own that could have reused the number.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)
            .map_err(|err| format!("{}: {err}", describe()))?;
        let socket = Socket::from(owned);
        let kind = socket
            .r#type()
            .map_err(|err| format!("{}: {err}", describe()))?;
        if kind != Type::STREAM {
            return Err(format!("{} is not a stream socket", describe()));
        }
        // Accept=yes passes one connected socket per connection instead of the listener.
        if !rustix::net::sockopt::socket_acceptconn(&socket).unwrap_or(false) {
            return Err(format!(
                "{} is not listening (use Accept=no in the socket unit)",
                describe()
            ));
        }
        socket
            .set_nonblocking(true)
            .map_err(|err| format!("{}: {err}", describe()))?;
        let domain = socket
            .local_addr()
            .map(|address| address.domain())
            .map_err(|err| format!("{}: {err}", describe()))?;
        if domain == Domain::UNIX {
            passed.push(Passed::Unix {
                listener: OwnedFd::from(socket).into(),
                name,
            });
        } else if domain == Domain::IPV4 || domain == Domain::IPV6 {
            passed.push(Passed::Tcp {
                listener: socket.into(),
                name,
            });
        } else {
            return Err(format!("{} is neither TCP nor a Unix socket", describe()));
        }
    }
    Ok(passed)
}

/// Where `sd_notify` messages go: the `NOTIFY_SOCKET` datagram socket (a path, or an
/// abstract name written with a leading `@`).
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// The notifier systemd asked for, if it asked for one.
    pub fn from_environment() -> Option<Notifier> {
        let target = std::env::var_os("NOTIFY_SOCKET")?;
        let target = target.as_encoded_bytes();
        let address = match target.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name).ok()?
            }
            None if target.starts_with(b"/") => std::os::unix::net::SocketAddr::from_pathname(
                std::path::Path::new(std::ffi::OsStr::from_bytes(target)),
            )
            .ok()?,
            None => return None,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, address })
    }

    /// Sends one message (newline separated `NAME=value` assignments). A failure is not
    /// the server's concern: systemd then times out or restarts it as configured.
    pub fn send(&self, message: &str) {
        let _ = self.socket.send_to_addr(message.as_bytes(), &self.address);
    }

    /// `READY=1`: the listeners are up.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=Accepting connections");
    }

    /// `RELOADING=1` with the monotonic time systemd asks for; `ready()` ends the reload.
    pub fn reloading(&self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let micros = u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000
            + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000;
        self.send(&format!(
            "RELOADING=1\nSTATUS=Reloading TLS certificates\nMONOTONIC_USEC={micros}"
        ));
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=Shutting down");
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set for this
    /// process.
    pub fn watchdog_interval() -> Option<Duration> {
        if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
            let ours = pid
                .to_str()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(|p| p == std::process::id());
            if !ours {
                return None;
            }
        }
        let micros: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
        (micros > 0).then(|| Duration::from_micros(micros / 2))
    }

    /// Sends `WATCHDOG=1` every `interval` for as long as the runtime runs it.
    pub async fn keep_alive(self: std::sync::Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.send("WATCHDOG=1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifier_sends_datagrams_to_a_path() {
        let dir = std::env::temp_dir().join(format!("wsd-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            address: std::os::unix::net::SocketAddr::from_pathname(&path).unwrap(),
        };
        notifier.ready();
        notifier.stopping();
        let mut buffer = [0u8; 256];
        let n = receiver.recv(&mut buffer).unwrap();
        assert!(buffer[..n].starts_with(b"READY=1\n"));
        let n = receiver.recv(&mut buffer).unwrap();
        assert!(buffer[..n].starts_with(b"STOPPING=1\n"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
