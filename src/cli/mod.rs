//! The command line: Go-style flag parsing, then the validation checks in upstream's order,
//! producing either a [`Config`] or the exact output and exit code to finish with.

mod completions;
pub mod file;
pub mod flags;
pub mod generate;
pub mod goflag;
pub mod help;
mod manpage;

use crate::broadcast::cluster::target::{ClusterTarget, PASSWORD_ENV};
use crate::config::{
    AuthCommand, BroadcastInput, BroadcastSettings, ClusterRole, ClusterSettings, Config,
    CustomHeader, CustomHeaders, Launch, Linger, TlsFiles,
};
use crate::environment::snapshot_passenv;
use crate::hints;
use crate::logging::{self, Format, Level};
use crate::ws::deflate::CompressSettings;
use crate::ws::origin::OriginPolicy;
use crate::ws::subprotocol;
use hyper::header::{HeaderName, HeaderValue};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Default `--passenv` on Linux.
const DEFAULT_PASSENV: &str = "PATH,LD_LIBRARY_PATH";
/// Default `--authms`.
const DEFAULT_AUTH_MS: u64 = 5000;
/// Default `--maxforks`.
const DEFAULT_MAX_FORKS: i64 = 1024;
/// Default `--maxframesize`.
const DEFAULT_MAX_MESSAGE: i64 = 1 << 20;
/// Default `--compresslevel`: the fastest, which keeps most of the gain on text.
const DEFAULT_COMPRESS_LEVEL: i64 = 1;
/// Default `--compressmin`.
const DEFAULT_COMPRESS_MIN: i64 = 32;
/// Exit code for flags that cannot be combined (`--devconsole` with content directories).
const EXIT_INVALID_PARAMETERS: i32 = 4;

/// The command line asked to stop before serving: what to print and the exit code.
#[derive(Debug, PartialEq, Eq)]
pub struct Exit {
    /// Process exit code.
    pub code: i32,
    /// Text for stdout.
    pub stdout: String,
    /// Text for stderr.
    pub stderr: String,
}

impl Exit {
    fn new(code: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> Exit {
        Exit {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }
}

/// Parses and validates the full argument list (argv[0] first).
pub fn parse(argv: &[OsString]) -> Result<Config, Exit> {
    let name = help::program_name(argv.first().map(OsString::as_os_str));
    let usage = help::short_usage(&name);
    let args = argv.get(1..).unwrap_or_default();
    if let Some(output) = generate::requested(args) {
        return Err(match output {
            Ok(output) => Exit::new(0, generate::render(output, &name), ""),
            Err(message) => Exit::new(2, "", format!("{message}\n{usage}")),
        });
    }
    let mut parsed = goflag::parse(args).map_err(|message| {
        Exit::new(2, "", format!("{message}\n{}{usage}", flag_hint(&message)))
    })?;
    if parsed.help {
        return Err(Exit::new(0, "", help::full_help(&name)));
    }
    if args.is_empty() {
        return Err(Exit::new(1, "Command line arguments are missing.\n", usage));
    }
    if let Some(path) = parsed.text("config").map(str::to_owned) {
        let settings =
            file::load(&path).map_err(|err| Exit::new(1, "", format!("{}\n{usage}", err.0)))?;
        file::merge(&mut parsed, settings);
    }
    if parsed.flag("version") {
        return Err(Exit::new(0, help::version_line(&name), ""));
    }
    if parsed.flag("license") {
        return Err(Exit::new(0, help::license_text(&name), ""));
    }
    let log_level = match parsed.text("loglevel") {
        None => Level::Access,
        Some(text) => Level::parse(text).ok_or_else(|| {
            Exit::new(
                1,
                format!("Incorrect loglevel flag '{text}'. Use --help to see allowed values.\n"),
                usage.clone(),
            )
        })?,
    };
    let log_format = match parsed.text("logformat") {
        None => Format::Text,
        Some(text) => Format::parse(text).ok_or_else(|| {
            Exit::new(
                1,
                format!("Incorrect logformat flag '{text}'. Use --help to see allowed values.\n"),
                usage.clone(),
            )
        })?,
    };
    let fail = |message: String| Exit::new(1, "", format!("{message}\n{usage}"));
    let metrics = parsed
        .text("metrics")
        .map(|address| metrics_address(address).map_err(&fail))
        .transpose()?;
    let tls = tls_files(&parsed)?;
    if parsed.flag("binary") && parsed.flag("passstderr") {
        return Err(Exit::new(
            1,
            "",
            "please only specify one of --binary and --passstderr\n",
        ));
    }
    let dir = parsed.text("dir").filter(|d| !d.is_empty());
    let static_dir = parsed.text("staticdir").filter(|d| !d.is_empty());
    let cgi_dir = parsed.text("cgidir").filter(|d| !d.is_empty());
    if parsed.command.is_empty() && dir.is_none() && static_dir.is_none() && cgi_dir.is_none() {
        return Err(fail(
            "Please specify COMMAND or provide --dir, --staticdir or --cgidir argument.".into(),
        ));
    }
    if !parsed.command.is_empty() && dir.is_some() {
        return Err(fail(
            "ambiguous: provided COMMAND and --dir argument, please only specify one".into(),
        ));
    }
    let launch = if let Some((command, args)) = parsed.command.split_first() {
        let program = look_path(command).ok_or_else(|| {
            fail(format!(
                "unable to locate specified COMMAND '{}' in OS path\n{}",
                command.to_string_lossy(),
                hints::command_not_found(command)
            ))
        })?;
        if let Some(problem) = hints::interpreter_problem(&program) {
            return Err(fail(problem));
        }
        Some(Launch::Command {
            program,
            args: args.to_vec(),
        })
    } else if let Some(dir) = dir {
        match std::fs::metadata(dir) {
            Err(_) => {
                return Err(fail(format!(
                    "could not find your script dir '{dir}'\n{}",
                    hints::missing_dir("--dir", dir)
                )))
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(fail(format!(
                    "did you mean to specify COMMAND instead of --dir '{dir}'?"
                )))
            }
            Ok(_) => Some(Launch::Dir(absolute(Path::new(dir)))),
        }
    } else {
        None
    };
    let is_dir = |dir: &str| std::fs::metadata(dir).is_ok_and(|meta| meta.is_dir());
    if let Some(cgi) = cgi_dir.filter(|d| !is_dir(d)) {
        return Err(fail(format!(
            "your CGI dir '{cgi}' is not pointing to an accessible directory\n{}",
            hints::missing_dir("--cgidir", cgi)
        )));
    }
    if let Some(statics) = static_dir.filter(|d| !is_dir(d)) {
        return Err(fail(format!(
            "your static dir '{statics}' is not pointing to an accessible directory\n{}",
            hints::missing_dir("--staticdir", statics)
        )));
    }
    let broadcast = broadcast_settings(&parsed, launch.is_some())?;
    let dev_console = parsed.flag("devconsole");
    for (conflict, flag) in [(static_dir, "--staticdir"), (cgi_dir, "--cgidir")] {
        if dev_console && conflict.is_some() {
            let line = logging::format_line(
                log_format,
                Level::Fatal,
                "server",
                &format!("Invalid parameters: --devconsole cannot be used with {flag}. Pick one."),
            );
            let stdout = if log_level <= Level::Fatal {
                line
            } else {
                String::new()
            };
            return Err(Exit::new(EXIT_INVALID_PARAMETERS, stdout, ""));
        }
    }

    let subprotocols = subprotocol_policy(&parsed, launch.as_ref()).map_err(fail)?;
    let auth = auth_command(&parsed).map_err(fail)?;
    if parsed.flag("once") && launch.is_none() {
        return Err(fail(
            "--once needs a WebSocket program: COMMAND or --dir".into(),
        ));
    }
    let headers = CustomHeaders {
        all: parse_headers(parsed.list("header")),
        ws: parse_headers(parsed.list("header-ws")),
        http: parse_headers(parsed.list("header-http")),
    };
    let trust_proxy =
        crate::forwarded::TrustedProxies::parse(parsed.text("trustproxy").unwrap_or_default())
            .map_err(fail)?;
    let max_forks = parsed.int("maxforks").unwrap_or(DEFAULT_MAX_FORKS);
    let max_message = parsed.int("maxframesize").unwrap_or(DEFAULT_MAX_MESSAGE);
    let compress = compress_settings(&parsed).map_err(fail)?;
    Ok(Config {
        port: parsed.int("port").unwrap_or(0),
        addresses: parsed.list("address").to_vec(),
        launch,
        origin: OriginPolicy::new(parsed.flag("sameorigin"), parsed.text("origin")),
        passenv: snapshot_passenv(parsed.text("passenv").unwrap_or(DEFAULT_PASSENV)),
        binary: parsed.flag("binary"),
        pass_stderr: parsed.flag("passstderr"),
        once: parsed.flag("once"),
        auth,
        unbuffered: parsed.flag("unbuffered"),
        subprotocols,
        reverse_lookup: parsed.flag("reverselookup"),
        max_forks: usize::try_from(max_forks).ok().filter(|&n| n > 0),
        max_clients: parsed
            .int("maxclients")
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0),
        broadcast,
        close_ms: parsed.uint("closems").unwrap_or(0),
        ping_ms: parsed.uint("pingms").unwrap_or(0),
        max_message: usize::try_from(max_message).ok().filter(|&n| n > 0),
        compress,
        headers,
        log_level,
        log_format,
        metrics,
        tls,
        unix_socket: parsed
            .text("unixsocket")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        static_dir: static_dir.map(PathBuf::from),
        cgi_dir: cgi_dir.map(PathBuf::from),
        dev_console,
        redirect_port: parsed.int("redirport").unwrap_or(0),
        trust_proxy,
        http2: parsed.flag_or("http2", true),
    })
}

/// `--authcmd` names an executable (found like COMMAND); `--authms` must be positive;
/// `--authms` and `--authall` need `--authcmd`.
fn auth_command(parsed: &goflag::Parsed) -> Result<Option<AuthCommand>, String> {
    let timeout_ms = parsed.uint("authms");
    let all = parsed.flag("authall");
    let Some(program) = parsed.text("authcmd").filter(|p| !p.is_empty()) else {
        if timeout_ms.is_some() || all {
            return Err("--authms and --authall need --authcmd".into());
        }
        return Ok(None);
    };
    let resolved = look_path(OsStr::new(program))
        .ok_or_else(|| format!("unable to locate --authcmd program '{program}'"))?;
    let timeout_ms = timeout_ms.unwrap_or(DEFAULT_AUTH_MS);
    if timeout_ms == 0 {
        return Err("--authms must be more than 0".into());
    }
    Ok(Some(AuthCommand {
        program: absolute(&resolved),
        timeout: std::time::Duration::from_millis(timeout_ms),
        all,
    }))
}

/// `--subprotocol` must list valid protocol names; `--subprotocolrequired` needs a list
/// to require (the flag, or `--dir` scripts' sidecar files).
fn subprotocol_policy(
    parsed: &goflag::Parsed,
    launch: Option<&Launch>,
) -> Result<subprotocol::Policy, String> {
    let allowed = subprotocol::parse_list(parsed.text("subprotocol").unwrap_or(""));
    if let Some(bad) = allowed.iter().find(|name| !subprotocol::is_token(name)) {
        return Err(format!(
            "--subprotocol: '{bad}' is not a valid protocol name"
        ));
    }
    let required = parsed.flag("subprotocolrequired");
    if required && allowed.is_empty() && !matches!(launch, Some(Launch::Dir(_))) {
        return Err(
            "--subprotocolrequired needs --subprotocol (or --dir with SCRIPT.protocols files)"
                .into(),
        );
    }
    Ok(subprotocol::Policy { allowed, required })
}

/// `--metrics=HOST:PORT`: a host (an IPv6 address in brackets) and a port number are both
/// required, so the metrics listener never lands on every interface by accident.
fn metrics_address(address: &str) -> Result<String, String> {
    let (host, port) = crate::hostport::split(address)
        .map_err(|err| format!("invalid --metrics address: {}", err.message(address)))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!(
            "invalid --metrics address '{address}': expected HOST:PORT, e.g. 127.0.0.1:9100"
        ));
    }
    Ok(address.to_string())
}

/// "did you mean --port?" after Go's message for an unknown flag, when one is close.
fn flag_hint(message: &str) -> String {
    message
        .strip_prefix("flag provided but not defined: -")
        .and_then(|typed| hints::closest(typed, flags::FLAGS.iter().map(|flag| flag.name)))
        .map(|name| format!("did you mean --{name}?\n"))
        .unwrap_or_default()
}

/// Default `--maxqueue`.
const DEFAULT_MAX_QUEUE: u64 = 1024;

/// `--broadcast` and the flags that only mean something with it.
fn broadcast_settings(
    parsed: &goflag::Parsed,
    has_program: bool,
) -> Result<Option<BroadcastSettings>, Exit> {
    let refuse = |message: &str| Exit::new(1, "", format!("{message}\n"));
    let linger = parsed.int("lingerms");
    let input = parsed.text("broadcastinput");
    if !parsed.flag("broadcast") {
        if parsed.text("cluster").is_some()
            || parsed.text("clusterrole").is_some()
            || parsed.uint("leasems").is_some()
        {
            return Err(refuse(
                "--cluster, --clusterrole and --leasems need --broadcast",
            ));
        }
        let dependent = linger.is_some()
            || parsed.flag("prestart")
            || parsed.uint("replay").is_some()
            || input.is_some()
            || parsed.uint("maxqueue").is_some();
        if dependent {
            return Err(refuse(
                "--lingerms, --prestart, --replay, --broadcastinput and --maxqueue need --broadcast",
            ));
        }
        return Ok(None);
    }
    if !has_program {
        return Err(refuse("--broadcast needs COMMAND or --dir"));
    }
    if parsed.flag("once") {
        return Err(refuse(
            "--once serves a single connection; it cannot be combined with --broadcast",
        ));
    }
    let input = match input.unwrap_or("none") {
        "none" => BroadcastInput::None,
        "lines" => BroadcastInput::Lines,
        "tagged" => BroadcastInput::Tagged,
        other => {
            return Err(refuse(&format!(
                "Incorrect broadcastinput flag '{other}'. Use none, lines or tagged."
            )))
        }
    };
    if input == BroadcastInput::Tagged && parsed.flag("binary") {
        return Err(refuse(
            "--broadcastinput=tagged sends text lines; it cannot be combined with --binary",
        ));
    }
    let prestart = parsed.flag("prestart");
    let linger = match linger.unwrap_or(0) {
        _ if prestart => Linger::Forever,
        -1 => Linger::Forever,
        ms => Linger::For(u64::try_from(ms).map_err(|_| {
            refuse("--lingerms must be -1 (until the daemon stops), 0 or a number of milliseconds")
        })?),
    };
    let max_queue = parsed.uint("maxqueue").unwrap_or(DEFAULT_MAX_QUEUE);
    let cluster = cluster_settings(parsed).map_err(|message| refuse(&message))?;
    if cluster.is_some() && parsed.int("lingerms").is_some() {
        return Err(refuse(
            "--lingerms cannot be combined with --cluster: the cluster keeps its program running",
        ));
    }
    let linger = if cluster.is_some() {
        Linger::Forever
    } else {
        linger
    };
    Ok(Some(BroadcastSettings {
        linger,
        prestart,
        replay: usize::try_from(parsed.uint("replay").unwrap_or(0)).unwrap_or(usize::MAX),
        input,
        max_queue: usize::try_from(max_queue).ok().filter(|&n| n > 0),
        cluster,
    }))
}

/// Default `--leasems`.
const DEFAULT_LEASE_MS: u64 = 2000;

/// The shortest `--leasems` for a `--closems`: twice the time a runner needs to stop its
/// program (the termination sequence plus a margin), so it can stop it between a renewal
/// that failed and the claim's expiry while still renewing often enough.
fn min_lease_ms(close_ms: u64) -> u64 {
    2 * (1000 + 3 * close_ms)
}

/// `--cluster`, `--clusterrole` and `--leasems` (the caller has checked `--broadcast`).
fn cluster_settings(parsed: &goflag::Parsed) -> Result<Option<ClusterSettings>, String> {
    let role = parsed.text("clusterrole");
    let lease = parsed.uint("leasems");
    let Some(url) = parsed.text("cluster") else {
        if role.is_some() || lease.is_some() {
            return Err("--clusterrole and --leasems need --cluster".into());
        }
        return Ok(None);
    };
    let password = std::env::var(PASSWORD_ENV).ok();
    let target = ClusterTarget::parse(url, password)?;
    let role = match role.unwrap_or("any") {
        "any" => ClusterRole::Any,
        "runner" => ClusterRole::Runner,
        "relay" => ClusterRole::Relay,
        other => {
            return Err(format!(
                "Incorrect clusterrole flag '{other}'. Use any, runner or relay."
            ))
        }
    };
    let lease = lease.unwrap_or(DEFAULT_LEASE_MS);
    let min = min_lease_ms(parsed.uint("closems").unwrap_or(0));
    if lease < min {
        return Err(format!(
            "--leasems must be at least {min} (twice the time to stop the program with this --closems), not {lease}"
        ));
    }
    if lease > 3_600_000 {
        return Err(format!(
            "--leasems must be at most 3600000 (an hour), not {lease}"
        ));
    }
    Ok(Some(ClusterSettings {
        target,
        role,
        lease: std::time::Duration::from_millis(lease),
    }))
}

/// `--compress` and its two settings, which make no sense without it.
fn compress_settings(parsed: &goflag::Parsed) -> Result<Option<CompressSettings>, String> {
    let level = parsed.int("compresslevel");
    let min_size = parsed.int("compressmin");
    if !parsed.flag("compress") {
        return match (level, min_size) {
            (None, None) => Ok(None),
            _ => Err("--compresslevel and --compressmin need --compress".into()),
        };
    }
    if parsed.flag("broadcast") {
        // Broadcast frames each message once for every client; compressed frames would
        // depend on each connection's compression state.
        return Err("--compress cannot be combined with --broadcast".into());
    }
    let level = level.unwrap_or(DEFAULT_COMPRESS_LEVEL);
    if !(1..=9).contains(&level) {
        return Err(format!("--compresslevel must be 1 to 9, not {level}"));
    }
    let min_size = min_size.unwrap_or(DEFAULT_COMPRESS_MIN);
    let Ok(min_size) = usize::try_from(min_size) else {
        return Err(format!(
            "--compressmin must not be negative, not {min_size}"
        ));
    };
    Ok(Some(CompressSettings {
        level: level as u32,
        min_size,
    }))
}

/// `--ssl` needs both `--sslcert` and `--sslkey`; those and `--sslca` need `--ssl` (a user
/// who asked for mutual TLS must never silently run without it).
fn tls_files(parsed: &goflag::Parsed) -> Result<Option<TlsFiles>, Exit> {
    let file = |name: &str| {
        parsed
            .text(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let (cert, key, ca) = (file("sslcert"), file("sslkey"), file("sslca"));
    if !parsed.flag("ssl") {
        if cert.is_some() || key.is_some() || ca.is_some() {
            return Err(Exit::new(
                1,
                "",
                "you should not be using --ssl* flags when there is no --ssl option\n",
            ));
        }
        return Ok(None);
    }
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key, ca })),
        _ => Err(Exit::new(
            1,
            "",
            "please specify both --sslcert and --sslkey when requesting --ssl\n",
        )),
    }
}

/// Finds COMMAND as a shell would: a bare name is searched in PATH; a name with `/` must
/// exist, not be a directory, and be executable.
fn look_path(command: &OsStr) -> Option<PathBuf> {
    let as_path = Path::new(command);
    if command.as_encoded_bytes().contains(&b'/') {
        return is_executable(as_path).then(|| as_path.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".").join(command)
            } else {
                dir.join(command)
            }
        })
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| !meta.is_dir() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `"Name: value"` → canonical name and value (leading spaces stripped); no colon means a
/// name with an empty value. Entries that cannot be sent as a header are skipped.
fn parse_headers(values: &[String]) -> Vec<CustomHeader> {
    values
        .iter()
        .filter_map(|raw| {
            let (name, value) = raw.split_once(':').unwrap_or((raw.as_str(), ""));
            let value = value.trim_start_matches(' ');
            let name = HeaderName::from_bytes(canonical_header_name(name).as_bytes()).ok()?;
            let value_bytes: Vec<u8> = value.bytes().collect();
            let upgrade_bytes: Vec<u8> = value_bytes
                .iter()
                .map(|&b| if b <= 0x1f { b' ' } else { b })
                .collect();
            Some(CustomHeader {
                name,
                value: HeaderValue::from_bytes(&value_bytes)
                    .or_else(|_| HeaderValue::from_bytes(&upgrade_bytes))
                    .ok()?,
                upgrade_value: HeaderValue::from_bytes(&upgrade_bytes).ok()?,
            })
        })
        .collect()
}

/// MIME header canonical case: `x-foo-bar` → `X-Foo-Bar`.
pub fn canonical_header_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, Exit> {
        let mut argv = vec![OsString::from("websocketd")];
        argv.extend(args.iter().map(OsString::from));
        parse(&argv)
    }

    fn exit(args: &[&str]) -> Exit {
        run(args).expect_err("expected an exit")
    }

    #[test]
    fn validation_rows() {
        let e = exit(&["--bogus"]);
        assert_eq!(e.code, 2);
        assert!(e
            .stderr
            .starts_with("flag provided but not defined: -bogus\n\nUsage:"));
        assert_eq!(exit(&["--help"]).code, 0);
        let e = exit(&[]);
        assert_eq!(
            (e.code, e.stdout.as_str()),
            (1, "Command line arguments are missing.\n")
        );
        let e = exit(&["--version", "--loglevel=bad"]);
        assert_eq!(e.code, 0);
        assert!(e.stdout.starts_with("websocketd "));
        let e = exit(&["--license"]);
        assert_eq!(e.code, 0);
        assert!(e.stdout.contains("\n\n"));
        let e = exit(&["--loglevel=bad", "cat"]);
        assert_eq!(e.code, 1);
        assert_eq!(
            e.stdout,
            "Incorrect loglevel flag 'bad'. Use --help to see allowed values.\n"
        );
        let e = exit(&["--ssl", "--sslcert=c.pem", "cat"]);
        assert_eq!(
            (e.code, e.stderr.as_str()),
            (
                1,
                "please specify both --sslcert and --sslkey when requesting --ssl\n"
            )
        );
        for flag in ["--sslcert=c", "--sslkey=k", "--sslca=ca"] {
            let e = exit(&[flag, "cat"]);
            assert_eq!(
                (e.code, e.stderr.as_str()),
                (
                    1,
                    "you should not be using --ssl* flags when there is no --ssl option\n"
                )
            );
        }
        let e = exit(&["--binary", "--passstderr", "cat"]);
        assert_eq!(
            (e.code, e.stderr.as_str()),
            (1, "please only specify one of --binary and --passstderr\n")
        );
        let e = exit(&["--port=8080"]);
        assert_eq!(e.code, 1);
        assert!(e.stderr.starts_with(
            "Please specify COMMAND or provide --dir, --staticdir or --cgidir argument.\n"
        ));
        let e = exit(&["--dir=/tmp", "cat"]);
        assert!(e
            .stderr
            .starts_with("ambiguous: provided COMMAND and --dir argument"));
        let e = exit(&["no-such-command-here"]);
        assert!(e
            .stderr
            .starts_with("unable to locate specified COMMAND 'no-such-command-here' in OS path"));
        let e = exit(&["--dir=/no/such/dir"]);
        assert!(e
            .stderr
            .starts_with("could not find your script dir '/no/such/dir'"));
        let e = exit(&["--cgidir=/no/such"]);
        assert!(e
            .stderr
            .starts_with("your CGI dir '/no/such' is not pointing to an accessible directory\n"));
        let e = exit(&["--staticdir=/etc/hostname"]);
        assert!(e.stderr.starts_with(
            "your static dir '/etc/hostname' is not pointing to an accessible directory\n"
        ));
        let e = exit(&["--devconsole", "--staticdir=/tmp", "cat"]);
        assert_eq!(e.code, 4);
        assert!(e.stdout.ends_with(
            "| FATAL  | server     |  | Invalid parameters: --devconsole cannot be used with --staticdir. Pick one.\n"
        ));
        let e = exit(&["--devconsole", "--cgidir=/tmp", "--loglevel=none", "cat"]);
        assert_eq!((e.code, e.stdout.as_str()), (4, ""));
        assert!(run(&["--staticdir=/tmp"]).unwrap().launch.is_none());
        let e = exit(&["--dir=/etc/hostname"]);
        assert!(e
            .stderr
            .starts_with("did you mean to specify COMMAND instead of --dir '/etc/hostname'?"));
    }

    #[test]
    fn defaults() {
        let config = run(&["cat"]).unwrap();
        assert_eq!(config.port, 0);
        assert_eq!(config.listen_port(), 80);
        assert_eq!(config.max_forks, Some(1024));
        assert_eq!(config.max_message, Some(1 << 20));
        assert_eq!(config.log_level, Level::Access);
        assert!(
            matches!(config.launch, Some(Launch::Command { ref program, .. }) if program.ends_with("cat"))
        );
        let config = run(&["--ssl", "--sslcert=c", "--sslkey=k", "cat"]).unwrap();
        assert_eq!(config.listen_port(), 443);
        let config = run(&["--unixsocket=/tmp/s", "cat"]).unwrap();
        assert!(config.unix_only());
        let config = run(&["--unixsocket=/tmp/s", "--port=9", "cat"]).unwrap();
        assert!(!config.unix_only());
        let config = run(&["--maxforks=0", "--maxframesize=-1", "cat"]).unwrap();
        assert_eq!(config.max_forks, None);
        assert_eq!(config.max_message, None);
    }

    #[test]
    fn cluster_flags() {
        let settings = run(&["--broadcast", "--cluster=redis://127.0.0.1:7/feed", "cat"])
            .unwrap()
            .broadcast
            .unwrap();
        assert_eq!(settings.linger, Linger::Forever);
        let cluster = settings.cluster.unwrap();
        assert_eq!(cluster.role, ClusterRole::Any);
        assert_eq!(cluster.lease, std::time::Duration::from_millis(2000));
        assert_eq!(cluster.target.name, "feed");
        let cluster = run(&[
            "--broadcast",
            "--cluster=rediss://u:p@h/x",
            "--clusterrole=relay",
            "--leasems=5000",
            "cat",
        ])
        .unwrap()
        .broadcast
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(cluster.role, ClusterRole::Relay);
        assert_eq!(cluster.lease, std::time::Duration::from_millis(5000));
        assert!(cluster.target.tls);
        assert!(run(&["--broadcast", "cat"])
            .unwrap()
            .broadcast
            .unwrap()
            .cluster
            .is_none());
        for (args, message) in [
            (&["--cluster=redis://h/n", "cat"][..], "need --broadcast"),
            (&["--leasems=3000", "cat"], "need --broadcast"),
            (
                &["--broadcast", "--clusterrole=relay", "cat"],
                "need --cluster",
            ),
            (&["--broadcast", "--leasems=3000", "cat"], "need --cluster"),
            (
                &[
                    "--broadcast",
                    "--cluster=redis://h/n",
                    "--clusterrole=boss",
                    "cat",
                ],
                "Incorrect clusterrole flag 'boss'",
            ),
            (
                &[
                    "--broadcast",
                    "--cluster=redis://h/n",
                    "--leasems=1999",
                    "cat",
                ],
                "at least 2000",
            ),
            (
                &[
                    "--broadcast",
                    "--cluster=redis://h/n",
                    "--closems=100",
                    "--leasems=2000",
                    "cat",
                ],
                "at least 2600",
            ),
            (
                &[
                    "--broadcast",
                    "--cluster=redis://h/n",
                    "--lingerms=5",
                    "cat",
                ],
                "--lingerms cannot be combined with --cluster",
            ),
            (
                &["--broadcast", "--cluster=http://h/n", "cat"],
                "Incorrect --cluster URL",
            ),
            (
                &["--broadcast", "--cluster=redis://u:sekrit@h", "cat"],
                "redis://u:***@h",
            ),
        ] {
            let e = exit(args);
            assert_eq!(e.code, 1, "{args:?}");
            assert!(e.stderr.contains(message), "{args:?}: {}", e.stderr);
            assert!(!e.stderr.contains("sekrit"), "{}", e.stderr);
        }
    }

    #[test]
    fn broadcast_flags() {
        let config = run(&["--broadcast", "cat"]).unwrap();
        let settings = config.broadcast.unwrap();
        assert_eq!(settings.linger, Linger::For(0));
        assert_eq!(settings.max_queue, Some(1024));
        assert_eq!(settings.input, BroadcastInput::None);
        assert_eq!(settings.replay, 0);
        assert!(run(&["cat"]).unwrap().broadcast.is_none());
        let settings = run(&[
            "--broadcast",
            "--prestart",
            "--lingerms=5",
            "--maxqueue=0",
            "cat",
        ])
        .unwrap()
        .broadcast
        .unwrap();
        assert_eq!(settings.linger, Linger::Forever);
        assert_eq!(settings.max_queue, None);
        let settings = run(&[
            "--broadcast",
            "--lingerms=-1",
            "--broadcastinput=tagged",
            "cat",
        ])
        .unwrap()
        .broadcast
        .unwrap();
        assert_eq!(settings.linger, Linger::Forever);
        assert_eq!(settings.input, BroadcastInput::Tagged);
        for args in [
            &["--replay=3", "cat"][..],
            &["--lingerms=10", "cat"],
            &["--prestart", "cat"],
            &["--maxqueue=5", "cat"],
            &["--broadcastinput=lines", "cat"],
        ] {
            let e = exit(args);
            assert_eq!(e.code, 1, "{args:?}");
            assert!(e.stderr.contains("need --broadcast"), "{args:?}");
        }
        let e = exit(&["--broadcast", "--broadcastinput=all", "cat"]);
        assert!(e.stderr.starts_with("Incorrect broadcastinput flag 'all'"));
        let e = exit(&["--broadcast", "--lingerms=-2", "cat"]);
        assert!(e.stderr.starts_with("--lingerms must be -1"));
        let e = exit(&["--broadcast", "--broadcastinput=tagged", "--binary", "cat"]);
        assert!(e.stderr.contains("cannot be combined with --binary"));
        let e = exit(&["--broadcast", "--once", "cat"]);
        assert!(e.stderr.contains("cannot be combined with --broadcast"));
        let e = exit(&["--broadcast", "--staticdir=/tmp"]);
        assert_eq!(e.stderr, "--broadcast needs COMMAND or --dir\n");
        assert_eq!(
            run(&["--maxclients=7", "cat"]).unwrap().max_clients,
            Some(7)
        );
        assert_eq!(run(&["--maxclients=-1", "cat"]).unwrap().max_clients, None);
    }

    #[test]
    fn go_style_forms_parse() {
        for args in [
            &["-port", "8080", "cat"][..],
            &["--port=8080", "cat"],
            &["--port", "8080", "--binary=false", "cat"],
        ] {
            assert_eq!(run(args).unwrap().port, 8080, "{args:?}");
        }
    }

    #[test]
    fn header_flags() {
        let h = parse_headers(&["x-foo:  bar".into(), "X-EMPTY".into(), "x-tab:\tv".into()]);
        assert_eq!(h[0].name.as_str(), "x-foo");
        assert_eq!(h[0].value, "bar");
        assert_eq!(h[1].value, "");
        assert_eq!(h[2].upgrade_value, " v");
        assert_eq!(canonical_header_name("x-foo-BAR"), "X-Foo-Bar");
    }
}
