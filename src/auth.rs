//! `--authcmd`: a program that accepts or refuses a connection before the WebSocket
//! upgrade is answered (and, with `--authall`, before any plain HTTP request is served).
//!
//! The program gets exactly the environment the session's program would get and no input.
//! Exit 0 accepts: each `NAME=value` line it prints adds `AUTH_NAME` to the session
//! program's environment. Any other exit refuses: what it printed is read CGI-style, a
//! header block (`Status: 401 Unauthorized`, `WWW-Authenticate: …`; 403 when it names no
//! status), an empty line, then the body. It runs in its own process group, bounded by
//! `--authms` (then its group is killed and the client gets 503) and by `--maxforks`.

use crate::cgi::headers;
use crate::config::AuthCommand;
use crate::environment::{self, Entry, EntryOrigin, EnvSettings, Peer, RequestFacts};
use crate::http::response::{full, plain, Body};
use crate::logging::Scope;
use crate::process::{self, ladder};
use crate::state::AppState;
use hyper::body::Incoming;
use hyper::header::{HeaderName, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitStatus;
use tokio::io::AsyncReadExt;

/// Most output read from the program; the rest is read and dropped.
const MAX_OUTPUT: usize = 64 * 1024;
/// The prefix of every variable the program adds to the session's environment.
const PREFIX: &str = "AUTH_";
/// The refusal when the program names no status of its own.
const DEFAULT_REFUSAL: &[u8] = b"Status: 403 Forbidden";

/// How a run of the program ended.
#[derive(Debug)]
enum Outcome {
    /// Exit 0, with what it printed.
    Accepted(Vec<u8>),
    /// Any other exit (or a signal), with what it printed.
    Refused(ExitStatus, Vec<u8>),
    /// `--authms` passed first; its process group was killed.
    TimedOut,
    /// It could not be started, or its status was lost.
    Failed(std::io::Error),
}

/// Decides a WebSocket upgrade: runs the program (in the fork slot the session already
/// holds) and, when it accepts, adds its `AUTH_` variables to `env`. `Err` is the refusal.
pub async fn admit(
    auth: Option<&AuthCommand>,
    env: &mut Vec<Entry>,
    scope: &Scope,
) -> Result<(), Response<Body>> {
    let Some(auth) = auth else {
        return Ok(());
    };
    let output = decide(auth, env, scope).await?;
    for (name, value) in variables(&output, scope) {
        env.retain(|entry| entry.name != name);
        env.push(Entry {
            name,
            value,
            origin: EntryOrigin::Standard,
        });
    }
    Ok(())
}

/// The request and connection facts a plain HTTP request's check needs.
#[derive(Debug)]
pub struct HttpRequest<'a> {
    /// The request.
    pub request: &'a Request<Incoming>,
    /// The client.
    pub peer: &'a Peer,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// The Host header.
    pub host: &'a str,
    /// The decoded, canonical URL path.
    pub path: &'a [u8],
}

/// Decides a plain HTTP request with `--authall`: the program gets the environment a
/// WebSocket program would get for this URL, with the request's own `REQUEST_METHOD`.
/// It needs a fork slot of its own (429 without one). `Err` is the refusal.
pub async fn admit_request(
    state: &AppState,
    http: &HttpRequest<'_>,
    scope: &Scope,
) -> Result<(), Response<Body>> {
    let config = &state.config;
    let Some(auth) = config.auth.as_ref().filter(|auth| auth.all) else {
        return Ok(());
    };
    let Some(_slot) = state.forks.try_take() else {
        scope.error("http", "Fork not allowed since maxforks amount has been reached. Authorization program was not run.");
        return Err(plain(
            StatusCode::TOO_MANY_REQUESTS,
            "429 Too Many Requests",
        ));
    };
    let remote_host = environment::remote_host(http.peer, config.reverse_lookup).await;
    let id = state.next_id().to_string();
    let request_uri = http
        .request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str());
    let facts = RequestFacts {
        peer: http.peer,
        remote_host: &remote_host,
        host: http.host,
        protocol: if http.request.version() == hyper::Version::HTTP_10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        },
        path: http.path,
        query: http.request.uri().query().unwrap_or(""),
        request_uri,
        script_name: b"/",
        path_info: http.path,
        unique_id: &id,
        headers: http.request.headers(),
    };
    let settings = EnvSettings {
        passenv: &config.passenv,
        tls: http.tls,
    };
    let mut env = environment::build(&facts, &settings);
    environment::set(&mut env, "REQUEST_METHOD", http.request.method().as_str());
    decide(auth, &env, scope).await.map(|_| ())
}

/// Runs the program; `Ok` is its output when it accepted, `Err` the response refusing.
async fn decide(
    auth: &AuthCommand,
    env: &[Entry],
    scope: &Scope,
) -> Result<Vec<u8>, Response<Body>> {
    match run(auth, env).await {
        Outcome::Accepted(output) => {
            scope.debug("auth", "Authorization program accepted");
            Ok(output)
        }
        Outcome::Refused(status, output) => {
            let response = refusal(&output, scope);
            scope.access(
                "auth",
                &format!(
                    "Refused by authorization program ({}): {}",
                    process::describe(&status),
                    response.status().as_u16()
                ),
            );
            Err(response)
        }
        Outcome::TimedOut => {
            scope.error(
                "auth",
                &format!(
                    "Authorization program did not finish within {} ms; its process group was killed",
                    auth.timeout.as_millis()
                ),
            );
            Err(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable",
            ))
        }
        Outcome::Failed(err) => {
            scope.error(
                "auth",
                &format!(
                    "Could not run authorization program {} ({err})",
                    auth.program.display()
                ),
            );
            Err(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error",
            ))
        }
    }
}

/// Kills a program's process group when dropped while armed: a run abandoned half-way
/// (the client went away, the time ran out) leaves nothing behind.
struct GroupKiller(Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            ladder::kill_group_now(pid);
        }
    }
}

/// Starts the program with `env` and no input, reads its output and waits for it, within
/// `--authms`.
async fn run(auth: &AuthCommand, env: &[Entry]) -> Outcome {
    let spawned = process::spawn(process::Launch {
        program: &auth.program,
        arg0: None,
        args: &[],
        env: env
            .iter()
            .map(|entry| (entry.name.as_str(), entry.value.as_os_str()))
            .collect(),
        cwd: None,
        capture_stderr: false,
        ptys: process::pty::Streams::None,
    });
    let mut program = match spawned {
        Ok(program) => program,
        Err(err) => return Outcome::Failed(err),
    };
    drop(program.stdin.take());
    let mut killer = GroupKiller(Some(program.child.id()));
    let finished = tokio::time::timeout(auth.timeout, async {
        let mut output = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match program.stdout.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(output.len());
                    output.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        (output, program.child.wait().await)
    })
    .await;
    match finished {
        Err(_) => Outcome::TimedOut,
        Ok((output, Ok(status))) => {
            killer.0 = None;
            if status.success() {
                Outcome::Accepted(output)
            } else {
                Outcome::Refused(status, output)
            }
        }
        Ok((_, Err(err))) => Outcome::Failed(err),
    }
}

/// The `AUTH_` variables of an accepting program's output: `NAME=value` lines whose NAME
/// is a shell variable name. Other non-empty lines are logged and skipped.
fn variables(output: &[u8], scope: &Scope) -> Vec<(String, OsString)> {
    let mut out = Vec::new();
    for line in output.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let parsed = memchr::memchr(b'=', line)
            .map(|eq| (&line[..eq], &line[eq + 1..]))
            .filter(|(name, _)| is_variable_name(name));
        match parsed {
            Some((name, value)) => out.push((
                format!("{PREFIX}{}", String::from_utf8_lossy(name)),
                OsString::from_vec(environment::sanitize(value)),
            )),
            None => scope.error(
                "auth",
                &format!(
                    "Ignoring authorization program output line (not NAME=value): {}",
                    String::from_utf8_lossy(line)
                ),
            ),
        }
    }
    out
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(name: &[u8]) -> bool {
    name.first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// The response a refusing program asked for: its header block read as a CGI script's
/// (403 unless it names a status of 300 or more), then its body.
fn refusal(output: &[u8], scope: &Scope) -> Response<Body> {
    let mut lines: Vec<&[u8]> = vec![DEFAULT_REFUSAL];
    let mut body_start = output.len();
    let mut position = 0;
    while position < output.len() {
        let (end, next) = match memchr::memchr(b'\n', &output[position..]) {
            Some(offset) => (position + offset, position + offset + 1),
            None => (output.len(), output.len()),
        };
        let line = &output[position..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            body_start = next;
            break;
        }
        lines.push(line);
        position = next;
    }
    let head = match headers::interpret(lines) {
        Ok(head) => head,
        Err(err) => {
            scope.error("auth", &err.message());
            return plain(StatusCode::FORBIDDEN, "403 Forbidden");
        }
    };
    for note in &head.notes {
        scope.error("auth", note);
    }
    let status = if head.status.as_u16() < 300 {
        StatusCode::FORBIDDEN
    } else {
        head.status
    };
    let body = &output[body_start..];
    let mut response = if body.is_empty() {
        let reason = status.canonical_reason().unwrap_or("");
        plain(status, &format!("{} {reason}", status.as_u16()))
    } else {
        let mut response = Response::new(full(body.to_vec()));
        *response.status_mut() = status;
        response
    };
    let hop_by_hop: [HeaderName; 4] = [
        CONNECTION,
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        HeaderName::from_static("upgrade"),
    ];
    let mut replaced_type = false;
    for (name, value) in head.headers {
        if hop_by_hop.contains(&name) {
            continue;
        }
        if name == CONTENT_TYPE && !replaced_type {
            response.headers_mut().remove(CONTENT_TYPE);
            replaced_type = true;
        }
        response.headers_mut().append(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(response: Response<Body>) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(response.into_body().collect())
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn accepted_lines_become_auth_variables() {
        let vars = variables(
            b"USER=ada\r\n\nbad line\n9X=1\nROLE=admin=yes\nE=\n-X=1\n",
            &Scope::new(),
        );
        let names: Vec<(&str, &str)> = vars
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("AUTH_USER", "ada"),
                ("AUTH_ROLE", "admin=yes"),
                ("AUTH_E", "")
            ]
        );
    }

    #[test]
    fn refusals_read_like_cgi_output() {
        let response = refusal(
            b"Status: 401 Unauthorized\nWWW-Authenticate: Bearer realm=\"x\"\nContent-Type: text/plain\n\nno token\n",
            &Scope::new(),
        );
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"x\"");
        assert_eq!(response.headers().get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(body(response), b"no token\n");
    }

    #[test]
    fn refusals_default_to_403() {
        for output in [
            &b""[..],
            b"X-Why: nope\n",
            b"Status: 200 OK\n\n",
            b"just text",
        ] {
            let response = refusal(output, &Scope::new());
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{output:?}");
        }
        let response = refusal(b"X-Why: nope\n", &Scope::new());
        assert_eq!(response.headers()["x-why"], "nope");
        assert_eq!(body(response), b"403 Forbidden\n");
        let redirect = refusal(b"Location: /login\nStatus: 302 Found\n\n", &Scope::new());
        assert_eq!(redirect.status(), StatusCode::FOUND);
    }

    #[test]
    fn names() {
        assert!(is_variable_name(b"_A1"));
        assert!(!is_variable_name(b""));
        assert!(!is_variable_name(b"1A"));
        assert!(!is_variable_name(b"A-B"));
    }
}
