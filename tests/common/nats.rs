//! A real `nats-server -js` for the cluster tests: on a free port of 127.0.0.1, with a
//! fresh store directory that is removed afterwards, stopped by its PID. It can be stopped
//! and started again on the same port with the same store (an engine outage), optionally
//! with a user and password and TLS. Used through `#[path]`; `nats-server` comes from
//! Debian's package, installed by scripts/install-test-deps.sh.
#![allow(dead_code)]

use crate::common::{free_port, temp_dir, Lines, DEADLINE};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a test's nats-server is set up.
#[derive(Debug, Default, Clone)]
pub struct NatsOptions {
    /// `--user` and `--pass`: clients must authenticate.
    pub credentials: Option<(String, String)>,
    /// `--tls` with this certificate and key (PEM files).
    pub tls: Option<(String, String)>,
}

/// A running (or stopped, between [`NatsServer::stop`] and [`NatsServer::restart`])
/// nats-server with JetStream.
pub struct NatsServer {
    child: Option<Child>,
    /// Its client port on 127.0.0.1 (kept across restarts).
    pub port: u16,
    /// Its JetStream store and log directory (kept across restarts, removed on drop).
    pub dir: PathBuf,
    options: NatsOptions,
    /// What the running server printed on stderr (its log).
    pub log: Lines,
}

/// The nats-server executable: on PATH, or where Debian puts it (`/usr/sbin`, which an
/// unprivileged PATH may lack).
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("/usr/sbin/nats-server")
}

impl NatsServer {
    /// Starts a JetStream server with default options.
    pub fn start() -> NatsServer {
        NatsServer::start_with(NatsOptions::default())
    }

    /// Starts a JetStream server set up as `options` and waits until it is ready.
    pub fn start_with(options: NatsOptions) -> NatsServer {
        let dir = temp_dir("nats");
        for _ in 0..5 {
            let mut server = NatsServer {
                child: None,
                port: free_port(),
                dir: dir.clone(),
                options: options.clone(),
                log: Lines::default(),
            };
            if server.launch() {
                return server;
            }
        }
        panic!("nats-server did not start; is it installed (scripts/install-test-deps.sh)?");
    }

    /// The URL of the server with `path` (the stream name), e.g. `nats://127.0.0.1:PORT/chat`.
    /// With credentials they are put in the URL; with TLS the scheme is `tls://`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.options.tls.is_some() {
            "tls"
        } else {
            "nats"
        };
        let auth = match &self.options.credentials {
            Some((user, pass)) => format!("{user}:{pass}@"),
            None => String::new(),
        };
        format!("{scheme}://{auth}127.0.0.1:{}/{path}", self.port)
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (SIGTERM, then SIGKILL past the deadline) and waits for it to exit.
    /// Its store stays for [`NatsServer::restart`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same port with the same store, waiting until it is
    /// ready (the port may take a moment to be free again).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if self.launch() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nats-server did not restart on port {}", self.port);
    }

    /// Starts the server again on the same port with an empty store, as a server that lost
    /// its data (a fresh machine, or a store on a lost disk).
    pub fn restart_empty(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(self.dir.join("store"));
        self.restart();
    }

    /// Spawns the server and waits for "Server is ready" (or its exit).
    fn launch(&mut self) -> bool {
        let store = self.dir.join("store");
        let mut command = Command::new(nats_server_binary());
        command
            .arg("-js")
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((user, pass)) = &self.options.credentials {
            command.arg("--user").arg(user).arg("--pass").arg(pass);
        }
        if let Some((cert, key)) = &self.options.tls {
            command
                .arg("--tls")
                .arg("--tlscert")
                .arg(cert)
                .arg("--tlskey")
                .arg(key);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => panic!(
                "cannot run {} ({err}); scripts/install-test-deps.sh installs it",
                nats_server_binary().display()
            ),
        };
        let log = Lines::default();
        if let Some(stderr) = child.stderr.take() {
            log.clone().collect(stderr);
        }
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            let ready = log.wait_for(Duration::from_millis(50), |line| {
                line.contains("Server is ready")
            });
            if ready.is_some() {
                self.child = Some(child);
                self.log = log;
                return true;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// The store directory (for tests that look at what the server keeps).
    pub fn store(&self) -> &Path {
        &self.dir
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
