//! CGI scripts under `--cgidir` (RFC 3875, with Go's CGI host conventions): finds the
//! script a request names, runs it in its own process group with the CGI environment,
//! streams the request body to its stdin and its output back as the response.
//!
//! Each run has a supervisor task that owns the process and the fork slot: it reads the
//! script's header block, hands the response head to [`serve`], then forwards the body
//! one pipe read at a time. When the client goes away first (the response, or the request
//! future, is dropped), the supervisor ends the script's process group and reaps it. The
//! fork slot is held until the script has exited.

mod env;
pub mod headers;
mod run;
#[cfg(test)]
mod tests;

use crate::environment::Peer;
use crate::forks::ForkLimiter;
use crate::http::response::{empty, plain, Body};
use crate::logging::Scope;
use crate::process::{self, Child};
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{Method, Request, Response, StatusCode};
use std::ffi::{OsStr, OsString};
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use tokio::net::unix::pipe;

/// Facts about the request's connection and the server that the CGI environment needs.
#[derive(Debug, Clone, Copy)]
pub struct CgiContext<'a> {
    /// The client (`REMOTE_ADDR`, `REMOTE_HOST`, `REMOTE_PORT`).
    pub peer: &'a Peer,
    /// Whether the connection uses TLS (`HTTPS=on`, default `SERVER_PORT` 443).
    pub tls: bool,
    /// The `--passenv` snapshot, added to every script's environment.
    pub passenv: &'a [(String, OsString)],
    /// `--maxforks`: a running script holds one slot.
    pub forks: &'a ForkLimiter,
}

/// What CGI made of a request.
#[derive(Debug)]
pub enum CgiOutcome {
    /// The path names no CGI script: routing continues with the request given back.
    NotCgi(Request<Incoming>),
    /// The script ran (or was refused): send this.
    Response(Response<Body>),
}

/// Runs the CGI script that the decoded, canonical URL `path` names under `root`, if any.
///
/// Logs ACCESS `CGI` (with `cgiscript` attached to `scope`) when a script runs, and
/// `CGI: <reason>` when a path is refused for a reason worth telling. Custom headers are
/// left to the caller.
pub async fn serve(
    root: &Path,
    request: Request<Incoming>,
    path: &[u8],
    context: &CgiContext<'_>,
    scope: &mut Scope,
) -> CgiOutcome {
    let script = match resolve(root, path).await {
        Ok(script) => script,
        Err(reason) => {
            if let Some(reason) = reason {
                scope.access("http", &reason);
            }
            return CgiOutcome::NotCgi(request);
        }
    };
    scope.associate("cgiscript", script.to_string_lossy());
    let Some(slot) = context.forks.try_take() else {
        scope.error(
            "http",
            "Fork not allowed since maxforks amount has been reached. CGI was not run.",
        );
        return CgiOutcome::Response(plain(
            StatusCode::TOO_MANY_REQUESTS,
            "429 Too Many Requests",
        ));
    };
    scope.access("http", "CGI");

    let (parts, body) = request.into_parts();
    let host = match parts.headers.get(HOST) {
        Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        None => parts
            .uri
            .authority()
            .map_or_else(String::new, |a| a.to_string()),
    };
    let vars = env::build(&env::CgiRequest {
        method: parts.method.as_str(),
        host: &host,
        query: parts.uri.query().unwrap_or(""),
        request_uri: parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        path,
        script: &script,
        headers: &parts.headers,
        peer: context.peer,
        tls: context.tls,
        passenv: context.passenv,
    });
    let (child, stdin, stdout) = match spawn(&script, &vars) {
        Ok(spawned) => spawned,
        Err(err) => {
            note(&format!(
                "CGI error: fork/exec {}: {}",
                script.display(),
                os_error_text(&err)
            ));
            return CgiOutcome::Response(server_error());
        }
    };
    let head = run::start(run::Launch {
        child,
        stdin,
        stdout,
        body,
        slot,
        scope: scope.clone(),
        head_only: parts.method == Method::HEAD,
    });
    let response = match head.await {
        Ok(Some(reply)) => reply.into_response(),
        Ok(None) | Err(_) => server_error(),
    };
    CgiOutcome::Response(response)
}

/// Finds the script `path` names under `root`. `Err` means "not CGI", with the ACCESS
/// message to log when the refusal deserves one.
async fn resolve(root: &Path, path: &[u8]) -> Result<PathBuf, Option<String>> {
    let segments: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|segment| !segment.is_empty())
        .collect();
    if segments.is_empty() {
        return Err(Some("CGI: no CGI script named in path \"/\"".to_string()));
    }
    // Hidden files and directories are never run (this also refuses `..`).
    if segments.iter().any(|segment| segment.starts_with(b".")) {
        return Err(None);
    }
    // Joined as Go's filepath.Join would: `./cgi` + `/a` is `cgi/a`.
    let mut script: PathBuf = root
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    for segment in segments {
        script.push(OsStr::from_bytes(segment));
    }
    match tokio::fs::metadata(&script).await {
        Ok(meta) if !meta.is_dir() => {}
        _ => return Err(None),
    }
    let (Ok(real_root), Ok(real)) = (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(&script).await,
    ) else {
        return Err(None);
    };
    if !real.starts_with(&real_root) {
        return Err(Some(format!("CGI: path {script:?} escapes {root:?}")));
    }
    Ok(script)
}

/// Starts the script directly (no shell) in its own process group, with `argv[0]` the
/// joined path, its directory as working directory and exactly `vars` as environment.
/// Its stderr is the daemon's stderr.
fn spawn(
    script: &Path,
    vars: &[(String, OsString)],
) -> io::Result<(Child, pipe::Sender, pipe::Receiver)> {
    // Absolute, so that changing directory cannot change which file is run.
    let program = std::path::absolute(script)?;
    let dir = program.parent().unwrap_or(Path::new("/"));
    let launched = process::spawn(process::Launch {
        program: &program,
        arg0: Some(script.as_os_str()),
        args: &[],
        env: vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_os_str()))
            .collect(),
        cwd: Some(dir),
        capture_stderr: false,
        ptys: process::pty::Streams::None,
    })?;
    let stdin = launched
        .stdin
        .ok_or_else(|| io::Error::other("pipe not created"))?;
    Ok((launched.child, stdin, launched.stdout))
}

/// `500 Internal Server Error` with an empty body, as Go's CGI host answers failures.
fn server_error() -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Writes a line to the daemon's stderr the way Go's default logger does
/// (`2026/11/21 04:20:28 cgi: no headers`).
fn note(message: &str) {
    let line = format!(
        "{} {message}\n",
        chrono::Local::now().format("%Y/%m/%d %H:%M:%S")
    );
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// The system's text for an error, in Go's style: `permission denied`.
fn os_error_text(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error ") {
        Some(end) => &text[..end],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
