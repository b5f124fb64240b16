//! Opening listeners: TCP addresses resolved and bound as Go would, and the Unix socket with
//! its stale-file check.

use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};

/// Pending connections the kernel may queue per listener.
const BACKLOG: i32 = 4096;
/// How long to try a socket file that already exists before calling it stale.
const STALE_PROBE: Duration = Duration::from_secs(1);

/// Every listener the server accepts on.
#[derive(Debug, Default)]
pub struct Listeners {
    /// TCP listeners serving WebSockets and HTTP.
    pub tcp: Vec<TcpListener>,
    /// Unix-socket listeners serving WebSockets and HTTP.
    pub unix: Vec<UnixListener>,
    /// TCP listeners answering with redirects to the main port (`--redirport`).
    pub redirects: Vec<TcpListener>,
    /// A passed socket for `/metrics` and `/healthz`, used instead of binding `--metrics`.
    pub metrics: Option<TcpListener>,
    /// The Unix socket file this process created, removed at shutdown.
    pub created_socket: Option<std::path::PathBuf>,
}

/// Adopts the sockets systemd passed: a TCP socket named `redirect` serves redirects, one
/// named `metrics` serves `--metrics`, every other one serves WebSockets and HTTP.
pub fn adopt(passed: Vec<super::systemd::Passed>) -> Result<Listeners, String> {
    use super::systemd::{Passed, METRICS_NAME, REDIRECT_NAME};
    let mut listeners = Listeners::default();
    for socket in passed {
        let failed = |name: &str, err: std::io::Error| {
            format!("socket {name} passed by systemd: {}", go_error_text(&err))
        };
        match socket {
            Passed::Tcp { listener, name } => {
                let listener = TcpListener::from_std(listener).map_err(|e| failed(&name, e))?;
                if name == REDIRECT_NAME {
                    listeners.redirects.push(listener);
                } else if name == METRICS_NAME && listeners.metrics.is_none() {
                    listeners.metrics = Some(listener);
                } else {
                    listeners.tcp.push(listener);
                }
            }
            Passed::Unix { listener, name } => {
                let listener = UnixListener::from_std(listener).map_err(|e| failed(&name, e))?;
                listeners.unix.push(listener);
            }
        }
    }
    Ok(listeners)
}

/// Binds `address:port` (every interface when `address` is empty), as Go would resolve it.
pub async fn bind_tcp(address: &str, port: i64) -> Result<TcpListener, String> {
    let Ok(port) = u16::try_from(port) else {
        return Err(format!("listen tcp: address {port}: invalid port"));
    };
    let joined = format!("{address}:{port}");
    if let Err(err) = crate::hostport::split(&joined) {
        return Err(format!("listen tcp: {}", err.message(&joined)));
    }
    let candidates: Vec<SocketAddr> = if address.is_empty() {
        vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]
    } else {
        match tokio::net::lookup_host(joined.as_str()).await {
            Ok(found) => found.take(1).collect(),
            Err(err) => {
                return Err(format!(
                    "listen tcp: address {joined}: {}",
                    go_error_text(&err)
                ))
            }
        }
    };
    let mut last_error = format!("listen tcp {joined}: no address");
    for candidate in candidates {
        match listen(candidate) {
            Ok(listener) => return Ok(listener),
            Err(err) => {
                last_error = format!("listen tcp {joined}: bind: {}", go_error_text(&err));
            }
        }
    }
    Err(last_error)
}

fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() && address.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// An I/O error in Go's style: lower-case, without the `(os error N)` suffix.
pub fn go_error_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Binds the Unix socket at `path`. An existing socket file is probed: if a server answers,
/// refuse; otherwise it is stale and removed. Any other kind of file is left alone (and the
/// bind fails).
pub async fn bind_unix(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let probe =
                tokio::time::timeout(STALE_PROBE, tokio::net::UnixStream::connect(path)).await;
            if matches!(probe, Ok(Ok(_))) {
                return Err(format!(
                    "socket {} is already in use by a running server",
                    path.display()
                ));
            }
            std::fs::remove_file(path).map_err(|err| {
                format!(
                    "failed to remove stale socket {}: {}",
                    path.display(),
                    go_error_text(&err)
                )
            })?;
        }
    }
    UnixListener::bind(path).map_err(|err| {
        format!(
            "listen unix {}: bind: {}",
            path.display(),
            go_error_text(&err)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_errors() {
        let err = std::io::Error::from_raw_os_error(98);
        assert_eq!(go_error_text(&err), "address already in use");
    }

    #[tokio::test]
    async fn unix_socket_stale_and_live() {
        let dir = std::env::temp_dir().join(format!("wsd-listen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let live = bind_unix(&path).await.unwrap();
        let refused = bind_unix(&path).await.unwrap_err();
        assert!(
            refused.contains("already in use by a running server"),
            "{refused}"
        );
        drop(live);
        // The file stays behind but nobody answers: it is replaced.
        assert!(path.exists());
        let again = bind_unix(&path).await;
        assert!(again.is_ok());
        drop(again);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "regular file").unwrap();
        assert!(bind_unix(&path).await.is_err());
        assert!(path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
