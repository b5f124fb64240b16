//! The WebSocket route: find the program, check the handshake, take a fork slot, answer
//! 101 (200 to an HTTP/2 extended CONNECT), then run the session with the program in a task of its own.

pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod origin;
pub mod output;
pub mod prepared;
pub mod session;
mod stdin;
pub mod subprotocol;
pub mod transport;
pub mod utf8;

use crate::config::Launch;
use crate::environment::{self, EntryOrigin, EnvSettings, Peer, RequestFacts};
use crate::forks::ForkSlot;
use crate::http::response::{plain, Body};
use crate::logging::{self, Level, Scope};
use crate::state::AppState;
use crate::{process, scriptdir};
use hyper::body::Incoming as IncomingBody;
use hyper::{Request, Response, StatusCode};
use session::SessionSettings;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

/// Facts about the connection a request arrived on.
#[derive(Debug)]
pub struct Connection {
    /// The client.
    pub peer: Peer,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// When it was accepted (the upgrade-time histogram starts there).
    pub accepted: std::time::Instant,
}

/// The parts of a request the upgrade needs, already read by the router.
#[derive(Debug)]
pub struct UpgradeRequest {
    /// The request itself (its upgrade future is taken from it).
    pub request: Request<IncomingBody>,
    /// The Host header.
    pub host: String,
    /// The decoded, canonical URL path.
    pub path: Vec<u8>,
}

/// Handles an upgrade request; the log `scope` already carries the `url`.
pub async fn upgrade(
    upgrade: UpgradeRequest,
    state: &Arc<AppState>,
    connection: &Connection,
    mut scope: Scope,
) -> Response<Body> {
    let config = &state.config;
    let Some(launch) = &config.launch else {
        return plain(StatusCode::NOT_FOUND, "404 page not found");
    };
    let UpgradeRequest {
        request,
        host,
        path,
    } = upgrade;
    let id = state.next_id().to_string();
    scope.associate("id", id.clone());
    let remote_host = environment::remote_host(&connection.peer, config.reverse_lookup).await;
    scope.associate("remote", remote_host.clone());

    let (program, args, script_name, path_info): (PathBuf, Vec<OsString>, Vec<u8>, Vec<u8>) =
        match launch {
            Launch::Command { program, args } => {
                (program.clone(), args.clone(), b"/".to_vec(), path.clone())
            }
            Launch::Dir(dir) => match scriptdir::resolve(dir, &path) {
                Some(script) => (
                    script.file,
                    Vec::new(),
                    script.script_name,
                    script.path_info,
                ),
                None => {
                    scope.access("session", "NOT FOUND: script not found");
                    return plain(StatusCode::NOT_FOUND, "404 Not Found");
                }
            },
        };
    scope.associate("command", program.to_string_lossy().into_owned());
    let origin_header = request
        .headers()
        .get(hyper::header::ORIGIN)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    scope.associate(
        "origin",
        config
            .origin
            .effective_origin(origin_header.as_deref())
            .to_string(),
    );

    let checks = handshake::HandshakeRequest {
        method: request.method(),
        headers: request.headers(),
        host: &host,
        tls: connection.tls,
        extended_connect: handshake::is_extended_connect(&request),
    };
    let accept = match handshake::validate(&checks, &config.origin, &config.headers) {
        Ok(accept) => accept,
        Err(refusal) => {
            if let Some(why) = &refusal.origin_reason {
                scope.access("session", why);
            }
            scope.access("session", &format!("Unable to Upgrade: {}", refusal.reason));
            return refusal.response();
        }
    };
    let script = matches!(launch, Launch::Dir(_)).then_some(program.as_path());
    let chosen_protocol =
        match subprotocol::negotiate(&config.subprotocols, request.headers(), script) {
            subprotocol::Choice::Chosen(chosen) => Some(chosen),
            subprotocol::Choice::None => None,
            subprotocol::Choice::Refused => {
                scope.access(
                    "session",
                    "Unable to Upgrade: no offered subprotocol is served",
                );
                return subprotocol::refusal();
            }
        };
    if state.once.taken() {
        return once_refusal(&scope);
    }
    let Some(client_slot) = state.clients.try_take() else {
        scope.error(
            "http",
            "Max of possible clients already connected, upgrade rejected",
        );
        return plain(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests");
    };
    // In broadcast mode no program is started per connection: a fork slot is needed only
    // for the --authcmd program.
    let slot = if state.hubs.is_none() || config.auth.is_some() {
        let Some(slot) = state.forks.try_take() else {
            scope.error(
                "http",
                "Max of possible forks already active, upgrade rejected",
            );
            return plain(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests");
        };
        Some(slot)
    } else {
        None
    };

    let query = request.uri().query().unwrap_or("");
    let request_uri = request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let protocol = match request.version() {
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    };
    let facts = RequestFacts {
        peer: &connection.peer,
        remote_host: &remote_host,
        host: &host,
        protocol,
        path: &path,
        query,
        request_uri: &request_uri,
        script_name: &script_name,
        path_info: &path_info,
        unique_id: &id,
        headers: request.headers(),
    };
    let mut env = environment::build(
        &facts,
        &EnvSettings {
            passenv: &config.passenv,
            tls: connection.tls,
        },
    );
    if config.unbuffered {
        environment::set(&mut env, "TERM", process::pty::TERM);
    }
    let mut response = accept.response(&config.headers);
    if let Some(chosen) = &chosen_protocol {
        subprotocol::apply(chosen, &mut response, &mut env);
    }
    if let Err(refusal) = crate::auth::admit(config.auth.as_ref(), &mut env, &scope).await {
        return refusal;
    }
    if let Some(hubs) = &state.hubs {
        drop(slot);
        let joining = crate::broadcast::Joining {
            request,
            accept,
            id,
            remote: remote_host,
            client_slot,
            guard: state.sessions.enter(),
        };
        let route = crate::broadcast::Route {
            program,
            args,
            script_name,
        };
        let mut response =
            crate::broadcast::join(hubs, route, joining, &config.headers, scope).await;
        if let Some(chosen) = chosen_protocol.filter(|_| {
            matches!(
                response.status(),
                StatusCode::SWITCHING_PROTOCOLS | StatusCode::OK
            )
        }) {
            // The shared program's environment belongs to no one client.
            subprotocol::apply(&chosen, &mut response, &mut Vec::new());
        }
        return response;
    }
    if logging::threshold() == Level::Debug {
        log_environment(&scope, &env);
    }

    let compression = config.compress.and_then(|settings| {
        let offers = request.headers().get_all("sec-websocket-extensions");
        let (agreement, answer) = deflate::negotiate(offers.iter().map(|v| v.as_bytes()))?;
        let answer = hyper::header::HeaderValue::from_str(&answer).ok()?;
        response
            .headers_mut()
            .insert("sec-websocket-extensions", answer);
        Some((settings, agreement))
    });
    let launch = Launched {
        program,
        args,
        env,
        slot,
        compression,
    };
    if !state.once.claim() {
        return once_refusal(&scope);
    }
    let (on_upgrade, stream_held) = crate::http::open_streams::upgrade_on(request);
    let state = state.clone();
    let guard = state.sessions.enter();
    tokio::spawn(async move {
        let _stream_held = stream_held;
        match on_upgrade.await {
            Ok(upgraded) => {
                let status = run_session(upgraded, launch, &state, scope).await;
                state.once.finish(status);
            }
            Err(err) => {
                state.once.release();
                scope.debug("websocket", &format!("Upgrade failed: {err}"));
            }
        }
        drop(client_slot);
        drop(guard);
    });
    response
}

/// What a session will run, with the fork slot it holds until the program is gone.
struct Launched {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<environment::Entry>,
    slot: Option<ForkSlot>,
    compression: Option<(deflate::CompressSettings, deflate::Agreement)>,
}

/// Runs the session; returns its program's exit status when it was reaped.
async fn run_session(
    upgraded: hyper::upgrade::Upgraded,
    launch: Launched,
    state: &Arc<AppState>,
    mut scope: Scope,
) -> Option<std::process::ExitStatus> {
    let config = &state.config;
    let options = transport::Options {
        max_message: config.max_message,
        compression: launch.compression,
    };
    let (mut tx, rx) = transport::accept(upgraded, options);
    scope.access("session", "CONNECT");
    let spawned = process::spawn(process::Launch {
        program: &launch.program,
        arg0: None,
        args: &launch.args,
        env: launch
            .env
            .iter()
            .map(|entry| (entry.name.as_str(), entry.value.as_os_str()))
            .collect(),
        cwd: None,
        capture_stderr: true,
        ptys: config.output_terminals(),
    });
    let status = match spawned {
        Err(err) => {
            let mut command = launch.program.to_string_lossy().into_owned();
            for arg in &launch.args {
                command.push(' ');
                command.push_str(&arg.to_string_lossy());
            }
            scope.error(
                "process",
                &format!("Could not launch process {command} ({err})"),
            );
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                tx.close(1011, "could not launch program"),
            )
            .await;
            None
        }
        Ok(program) => {
            scope.associate("pid", program.child.id().to_string());
            let settings = SessionSettings {
                binary: config.binary,
                pass_stderr: config.pass_stderr,
                max_line: config.max_message,
                ping_ms: config.ping_ms,
                close_ms: config.close_ms,
            };
            session::run(tx, rx, program, settings, &scope, state.shutdown.clone()).await
        }
    };
    scope.access("session", "DISCONNECT");
    drop(launch.slot);
    status
}

/// The answer to upgrades while the `--once` session runs (or after it ended).
fn once_refusal(scope: &Scope) -> Response<Body> {
    scope.access(
        "session",
        "Unable to Upgrade: the --once session is running",
    );
    plain(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable")
}

/// The DEBUG dump of a program's environment.
fn log_environment(scope: &Scope, env: &[environment::Entry]) {
    for entry in env {
        let value = entry.value.to_string_lossy();
        let line = match entry.origin {
            EntryOrigin::Standard => format!("Std. variable: {}={value}", entry.name),
            EntryOrigin::Parent => format!("Parent envvar: {}={value}", entry.name),
            EntryOrigin::Header => format!("Header variable {}={value}", entry.name),
        };
        scope.debug("session", &line);
    }
}
