//! Broadcast mode (`--broadcast`): one program per route, shared by every client of it.
//! The hub runs the program and publishes its output to a bus; each client reads its own
//! bounded queue of frames that were framed once for everyone.

pub mod bus;
pub mod client;
pub mod cluster;
pub mod hub;
pub mod local;
pub mod queue;

use crate::config::{BroadcastSettings, Config, Launch};
use crate::environment::{self, EnvSettings, ServerFacts};
use crate::forks::{ForkLimiter, ForkSlot};
use crate::http::response::{plain, Body};
use crate::logging::{self, Level, Scope};
use crate::state::{SessionGuard, SessionTracker};
use crate::ws::{handshake, transport};
use client::ClientSettings;
use hub::{Hub, HubSettings, JoinError, ProgramSpec};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The hubs of a daemon in broadcast mode, one per route (the command, or each script of
/// `--dir`), created when first needed and kept for the daemon's lifetime.
pub struct Hubs {
    hub_settings: HubSettings,
    client_settings: ClientSettings,
    settings: BroadcastSettings,
    launch: Launch,
    passenv: Vec<(String, OsString)>,
    tls: bool,
    close_ms: u64,
    server_name: String,
    server_port: String,
    forks: ForkLimiter,
    sessions: SessionTracker,
    shutdown: watch::Receiver<bool>,
    hubs: Mutex<HashMap<Vec<u8>, Arc<Hub>>>,
}

impl std::fmt::Debug for Hubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hubs").finish_non_exhaustive()
    }
}

/// What a route runs: the program, its arguments and its `SCRIPT_NAME`.
#[derive(Debug)]
pub struct Route {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// `SCRIPT_NAME`, which also tells routes apart.
    pub script_name: Vec<u8>,
}

/// A client's upgrade request, checked and ready to be answered (101, or 200 over HTTP/2).
pub struct Joining {
    /// The request (its upgrade future is taken from it).
    pub request: Request<Incoming>,
    /// The accepted handshake, which makes the answer.
    pub accept: handshake::Accepted,
    /// The connection id (also the client's id in tagged input).
    pub id: String,
    /// The client's address (or name), for the tagged join event.
    pub remote: String,
    /// The `--maxclients` slot the client holds while connected.
    pub client_slot: ForkSlot,
    /// Keeps graceful shutdown waiting for this client.
    pub guard: SessionGuard,
}

impl Hubs {
    /// The hubs for `config`, or `None` outside broadcast mode.
    pub fn new(
        config: &Config,
        forks: ForkLimiter,
        sessions: SessionTracker,
        shutdown: watch::Receiver<bool>,
    ) -> Option<Hubs> {
        let settings = config.broadcast.clone()?;
        let launch = config.launch.clone()?;
        let server_name = config.addresses.first().cloned().unwrap_or_else(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        });
        let server_port = if config.unix_only() {
            String::new()
        } else {
            config.listen_port().to_string()
        };
        Some(Hubs {
            hub_settings: HubSettings {
                binary: config.binary,
                pass_stderr: config.pass_stderr,
                max_line: config.max_message,
                close_ms: config.close_ms,
                linger: settings.linger,
                replay: settings.replay,
                input: settings.input,
                ptys: config.output_terminals(),
                max_batch: (settings.max_queue.unwrap_or(1024) / 2).max(1),
                clustered: settings.cluster.is_some(),
            },
            client_settings: ClientSettings {
                binary: config.binary,
                ping_ms: config.ping_ms,
                max_message: config.max_message,
                input: settings.input,
                max_queue: settings.max_queue,
            },
            settings,
            launch,
            passenv: config.passenv.clone(),
            tls: config.tls.is_some(),
            close_ms: config.close_ms,
            server_name: server_name.trim_matches(['[', ']']).to_string(),
            server_port,
            forks,
            sessions,
            shutdown,
            hubs: Mutex::new(HashMap::new()),
        })
    }

    /// The hub of `route`, created on first use.
    fn hub(&self, route: Route) -> Arc<Hub> {
        let mut hubs = self
            .hubs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hubs.entry(route.script_name.clone())
            .or_insert_with(|| {
                let env = environment::build_shared(
                    &ServerFacts {
                        server_name: &self.server_name,
                        server_port: &self.server_port,
                        script_name: &route.script_name,
                    },
                    &EnvSettings {
                        passenv: &self.passenv,
                        tls: self.tls,
                    },
                );
                let spec = ProgramSpec {
                    program: route.program,
                    args: route.args,
                    env,
                };
                self.new_hub(spec, &route.script_name)
            })
            .clone()
    }

    /// A hub with its bus: local, or shared through the cluster's engine.
    fn new_hub(&self, spec: ProgramSpec, script_name: &[u8]) -> Arc<Hub> {
        let hub = |bus: Arc<dyn bus::Bus>| {
            Arc::new(Hub::new(
                spec.clone(),
                self.hub_settings.clone(),
                bus,
                self.forks.clone(),
                self.sessions.clone(),
                self.shutdown.clone(),
            ))
        };
        let local = || {
            Arc::new(local::LocalBus::new(
                self.settings.max_queue,
                self.settings.replay,
            ))
        };
        let Some(settings) = &self.settings.cluster else {
            return hub(local());
        };
        let bus = cluster::bus(settings, &self.settings, script_name, self.shutdown.clone());
        let shared = hub(bus.clone());
        cluster::start(
            shared.clone(),
            bus,
            settings,
            &self.settings,
            self.close_ms,
            self.shutdown.clone(),
        );
        shared
    }

    /// `--prestart`: starts the command, or every program at the top of `--dir`.
    pub fn prestart(&self) {
        // A cluster keeps its program running somewhere from the start.
        if !self.settings.prestart && self.settings.cluster.is_none() {
            return;
        }
        for route in self.prestart_routes() {
            let hub = self.hub(route);
            match hub.prestart() {
                Ok(()) => {}
                Err(JoinError::Launch(message)) => logging::server(Level::Error, &message),
                Err(JoinError::NoForkSlot) => logging::server(
                    Level::Error,
                    "Max of possible forks already active, program not prestarted",
                ),
                Err(JoinError::ShuttingDown) => {}
            }
        }
    }

    fn prestart_routes(&self) -> Vec<Route> {
        match &self.launch {
            Launch::Command { program, args } => vec![Route {
                program: program.clone(),
                args: args.clone(),
                script_name: b"/".to_vec(),
            }],
            Launch::Dir(dir) => {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    return Vec::new();
                };
                let mut routes: Vec<Route> = entries
                    .flatten()
                    .filter(|entry| {
                        std::fs::metadata(entry.path()).is_ok_and(|meta| {
                            meta.is_file() && meta.permissions().mode() & 0o111 != 0
                        })
                    })
                    .map(|entry| {
                        let mut script_name = b"/".to_vec();
                        script_name.extend_from_slice(entry.file_name().as_bytes());
                        Route {
                            program: entry.path(),
                            args: Vec::new(),
                            script_name,
                        }
                    })
                    .collect();
                routes.sort_by(|a, b| a.script_name.cmp(&b.script_name));
                routes
            }
        }
    }
}

/// Answers a checked upgrade request in broadcast mode: the client joins its route's hub
/// (starting the program if it is the first) once the hub's bus is ready for it (in a
/// cluster: once the instance knows where the shared stream stands, so the client misses
/// nothing appended after it joined), then is served in a task of its own.
pub async fn join(
    hubs: &Hubs,
    route: Route,
    joining: Joining,
    headers: &crate::config::CustomHeaders,
    scope: Scope,
) -> Response<Body> {
    let hub = hubs.hub(route);
    hub.bus().ready_for_clients().await;
    let (member, launch_error) = match hub.join() {
        Ok(member) => (Some(member), None),
        Err(JoinError::NoForkSlot) => {
            scope.error(
                "http",
                "Max of possible forks already active, upgrade rejected",
            );
            return plain(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests");
        }
        Err(JoinError::ShuttingDown) => {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable");
        }
        Err(JoinError::Launch(message)) => (None, Some(message)),
    };
    let Joining {
        request,
        accept,
        id,
        remote,
        client_slot,
        guard,
    } = joining;
    let response = accept.response(headers);
    let (on_upgrade, stream_held) = crate::http::open_streams::upgrade_on(request);
    let settings = hubs.client_settings;
    tokio::spawn(async move {
        let _stream_held = stream_held;
        match (on_upgrade.await, member) {
            (Ok(upgraded), Some(member)) => {
                client::serve(upgraded, member, id, remote, settings, scope).await;
            }
            (Ok(upgraded), None) => {
                let (mut tx, _rx) = transport::accept_prepared(upgraded, None).await;
                scope.access("session", "CONNECT");
                if let Some(message) = launch_error {
                    scope.error("process", &message);
                }
                let _ = tokio::time::timeout(
                    crate::ws::session::CLOSE_WAIT,
                    tx.close(1011, "could not launch program"),
                )
                .await;
                scope.access("session", "DISCONNECT");
            }
            (Err(err), _) => scope.debug("websocket", &format!("Upgrade failed: {err}")),
        }
        drop(client_slot);
        drop(guard);
    });
    response
}
