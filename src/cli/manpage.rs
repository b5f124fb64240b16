//! The man page, in roff with the `man` macros. OPTIONS come from the flag table and
//! ENVIRONMENT from the environment builder run on a sample request, so neither can fall
//! behind the code: a variable without a description here fails a test.

use super::flags::{Kind, FLAGS};
use super::generate::paragraph;
use crate::environment::{self, EntryOrigin, EnvSettings, Peer, RequestFacts};
use crate::ws::subprotocol;
use hyper::header::{HeaderMap, HeaderValue};
use std::ffi::OsString;

/// What each variable of a program's environment means. Every name the builder produces
/// (the sample request below sets every header it needs) must be here.
const VARIABLES: &[(&str, &str)] = &[
    ("SERVER_SOFTWARE", "This daemon and its version."),
    ("REMOTE_ADDR", "The client's IP address (IPv6 without brackets), as a trusted proxy reports it with --trustproxy; unix-socket for clients of --unixsocket."),
    ("REMOTE_HOST", "The client's host name with --reverselookup, otherwise its address."),
    ("SERVER_NAME", "The host part of the request's Host header."),
    ("SERVER_PORT", "The port of the Host header; when it names none, 443 with --ssl and 80 without."),
    ("SERVER_PROTOCOL", "The request's protocol: HTTP/1.1, or HTTP/2 for a WebSocket opened over an HTTP/2 connection (RFC 8441, see --http2)."),
    ("GATEWAY_INTERFACE", "Always CGI/1.1."),
    ("REQUEST_METHOD", "Always GET: every WebSocket starts with a GET request."),
    ("SCRIPT_NAME", "With --dir, the URL path naming the program; with a single COMMAND, /."),
    ("PATH_INFO", "With --dir, the rest of the URL path after the program's name; with a single COMMAND, the whole URL path."),
    ("PATH_TRANSLATED", "The whole URL path, decoded."),
    ("QUERY_STRING", "The query string as the client sent it (still percent-encoded), without the ?."),
    ("AUTH_TYPE", "Always empty."),
    ("CONTENT_LENGTH", "Always empty."),
    ("CONTENT_TYPE", "Always empty."),
    ("REMOTE_IDENT", "Always empty."),
    ("REMOTE_USER", "Always empty."),
    ("UNIQUE_ID", "An identifier of the request, also printed as id in the log lines about it."),
    ("REMOTE_PORT", "The client's source port; empty for Unix socket clients and when a trusted proxy (--trustproxy) gave the address without it."),
    ("REQUEST_URI", "The path and query string of the request, as sent."),
    ("HTTPS", "on when the daemon speaks TLS (--ssl), or a trusted proxy (--trustproxy) says the client used https; absent otherwise."),
    ("TERM", "dumb with --unbuffered, whose terminal understands no control sequences; absent otherwise."),
    ("WEBSOCKET_PROTOCOL", "The subprotocol chosen from the client's offer with --subprotocol; absent when none was."),
];

/// The sample request whose environment the page shows.
fn sample_environment() -> Vec<(String, String, EntryOrigin)> {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.com"));
    headers.insert("origin", HeaderValue::from_static("https://example.com"));
    headers.insert("user-agent", HeaderValue::from_static("Mozilla/5.0"));
    let peer = Peer::Tcp {
        ip: "192.0.2.10".into(),
        port: Some(51234),
    };
    let facts = RequestFacts {
        peer: &peer,
        remote_host: "192.0.2.10",
        host: "example.com",
        protocol: "HTTP/1.1",
        path: b"/chat/lobby",
        query: "name=ada",
        request_uri: "/chat/lobby?name=ada",
        script_name: b"/chat",
        path_info: b"/lobby",
        unique_id: "1764590400123456789",
        headers: &headers,
    };
    let passenv = [
        (
            "PATH".to_string(),
            OsString::from("/usr/local/bin:/usr/bin:/bin"),
        ),
        ("LD_LIBRARY_PATH".to_string(), OsString::from("/opt/lib")),
    ];
    let settings = EnvSettings {
        passenv: &passenv,
        tls: true,
    };
    let mut env = environment::build(&facts, &settings);
    let mut response = crate::http::response::plain(hyper::StatusCode::SWITCHING_PROTOCOLS, "");
    subprotocol::apply("chat.v1", &mut response, &mut env);
    environment::set(&mut env, "TERM", crate::process::pty::TERM);
    env.into_iter()
        .map(|entry| {
            let value = entry.value.to_string_lossy().into_owned();
            (entry.name, value, entry.origin)
        })
        .collect()
}

/// Escapes text for a roff text line: backslashes, minus signs (so options copy as typed)
/// and a leading control character.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// An empty-value variable is shown as set but empty.
fn example(value: &str) -> String {
    if value.is_empty() {
        "(empty)".to_string()
    } else {
        format!("\\fI{}\\fR", escape(value))
    }
}

fn options() -> String {
    let mut out = String::new();
    for flag in FLAGS {
        out.push_str(".TP\n");
        let name = escape(flag.name);
        if flag.kind == Kind::Bool {
            out.push_str(&format!("\\fB\\-\\-{name}\\fR\n"));
        } else {
            out.push_str(&format!(
                "\\fB\\-\\-{name}\\fR=\\fI{}\\fR\n",
                escape(flag.value_name)
            ));
        }
        let text = paragraph(flag);
        out.push_str(&escape(&text));
        let says_so = ["repeat", "several times", "more than once"]
            .iter()
            .any(|words| text.contains(words));
        if flag.kind == Kind::Repeated && !says_so {
            out.push_str(" May be given more than once.");
        }
        out.push('\n');
    }
    out
}

fn environment_section() -> String {
    let mut out = String::from(
        "Each program gets these variables and no others from the daemon's own environment \
         (except those named by \\-\\-passenv). The examples are for a client at 192.0.2.10 \
         opening wss://example.com/chat/lobby?name=ada on a daemon started with \
         \\-\\-ssl \\-\\-subprotocol=chat.v1 \\-\\-dir, whose directory holds a program \
         named chat.\n",
    );
    let entries = sample_environment();
    for (name, value, origin) in &entries {
        if *origin != EntryOrigin::Standard {
            continue;
        }
        let meaning = VARIABLES
            .iter()
            .find(|(known, _)| known == name)
            .map_or("", |(_, meaning)| meaning);
        out.push_str(&format!(
            ".TP\n.B {name}\n{}\n.br\nExample: {}\n",
            escape(meaning),
            example(value)
        ));
    }
    out.push_str(
        ".TP\n.B HTTP_*\nOne variable per request header: the name upper-cased with \\- \
         turned into _, several values joined with a comma and a space. There is no HTTP_HOST \
         (see SERVER_NAME and SERVER_PORT).\n",
    );
    for (name, value, origin) in &entries {
        if *origin == EntryOrigin::Header {
            out.push_str(&format!(".br\nExample: {}={}\n", name, example(value)));
        }
    }
    out.push_str(
        ".TP\n.B AUTH_*\nWith \\-\\-authcmd: one variable per NAME=value line the \
         authorization program printed when it accepted the connection (NAME a shell variable \
         name), named AUTH_NAME; absent otherwise.\n.br\nExample: AUTH_USER=\\fIada\\fR\n",
    );
    out.push_str(
        ".TP\n.B PATH\\fR, \\fBLD_LIBRARY_PATH\nThe daemon's own values, passed on by the default \
         \\-\\-passenv; any variable \\-\\-passenv names is passed the same way when it is set and \
         not empty.\n",
    );
    for (name, value, origin) in &entries {
        if *origin == EntryOrigin::Parent {
            out.push_str(&format!(".br\nExample: {}={}\n", name, example(value)));
        }
    }
    out.push_str(
        ".PP\nEvery value has carriage returns and line feeds replaced by spaces and surrounding \
         white space removed. CGI scripts run for \\-\\-cgidir get the usual CGI/1.1 variables \
         instead (RFC 3875), including HTTP_HOST, SCRIPT_FILENAME, CONTENT_LENGTH and \
         CONTENT_TYPE.\n",
    );
    out.push_str(&format!(
        ".PP\nThe daemon itself reads LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES (sockets passed \
         by systemd), NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (readiness and watchdog \
         notifications to systemd) and {} (the \\-\\-cluster password when the URL has \
         none); programs do not get them unless \\-\\-passenv names them.\n",
        crate::broadcast::cluster::target::PASSWORD_ENV
    ));
    out
}

/// The whole page for a program called `name`.
pub fn render(name: &str) -> String {
    let upper = name.to_uppercase();
    let version = env!("CARGO_PKG_VERSION");
    let name = escape(name);
    format!(
        r#".TH {upper} 1 "" "websocketd {version}" "User Commands"
.nh
.ad l
.SH NAME
{name} \- turn any program that reads STDIN and writes STDOUT into a WebSocket server
.SH SYNOPSIS
.B {name}
[\fIoptions\fR] \fICOMMAND\fR [\fIcommand args\fR]
.br
.B {name}
[\fIoptions\fR] \fB\-\-dir\fR=\fIDIR\fR
.br
.B {name}
[\fIoptions\fR] \fB\-\-staticdir\fR=\fIDIR\fR | \fB\-\-cgidir\fR=\fIDIR\fR
.br
.B {name}
\fB\-\-help\fR | \fB\-\-version\fR | \fB\-\-license\fR
.SH DESCRIPTION
.B {name}
is a small web server. Every WebSocket connection a client opens starts its own copy of
.IR COMMAND ;
each text message from the client becomes a line on the program's standard input, and each
line the program writes to its standard output becomes a message to the client. The
program learns who connected from CGI\-style environment variables (see
.BR ENVIRONMENT ).
When the program exits the connection is closed, and when the client goes away the
program is stopped.
.PP
With \fB\-\-binary\fR, bytes are relayed as they come, in binary messages, instead of
lines. With \fB\-\-dir\fR, every program in a directory is served under its own URL path.
Plain HTTP requests can be answered with static files (\fB\-\-staticdir\fR), CGI scripts
(\fB\-\-cgidir\fR) or a developer console for trying a program by hand
(\fB\-\-devconsole\fR), on the same port as the WebSockets.
.PP
Output is sent when the program writes it: a program must flush its standard output after
each line (many languages buffer it when it is not a terminal), or messages arrive late.
.PP
When a connection ends, the program's standard input is closed; if it is still running
after 100 ms (plus \fB\-\-closems\fR) its process group gets SIGINT, 250 ms later SIGTERM
and 500 ms later SIGKILL. When the program exits by itself the client gets close code 1000
for exit status 0, otherwise 1011 with the reason "exit status N" or "signal N".
.PP
Options take one or two dashes and their value as \fB\-\-flag\fR=\fIvalue\fR or
\fB\-\-flag\fR \fIvalue\fR; booleans are \fB\-\-flag\fR or \fB\-\-flag\fR=false.
Everything after
.I COMMAND
is handed to the program untouched.
.SH OPTIONS
{options}.SH ENVIRONMENT
{environment}.SH EXIT STATUS
.TP
.B 0
\-\-help, \-\-version or \-\-license was given, or the daemon was stopped with SIGTERM or
SIGINT and every program has been stopped.
.TP
.B 1
The command line is incomplete or inconsistent: no arguments, no COMMAND nor directory,
a COMMAND that is not an executable program or whose #! interpreter does not exist, a
directory that does not exist, an unknown log level, TLS files without \-\-ssl, or a
\-\-config file that cannot be read or parsed.
.TP
.B 2
An option is not known or its value cannot be parsed.
.TP
.B 3
A listener could not be opened (the port is in use, needs privileges, or the address
does not belong to this machine); the log says which.
.TP
.B 4
Options that cannot be combined were given (\-\-devconsole with \-\-staticdir or
\-\-cgidir).
.PP
With \-\-once the daemon exits with the status of the session's program instead: its
exit code, 128+N when signal N ended it, 1 when it could not be started.
.SH SIGNALS
.TP
.BR SIGTERM ", " SIGINT
Stop accepting connections, close every WebSocket with code 1001 (going away), stop every
program with the sequence described above, remove the \-\-unixsocket file and exit 0. A
second signal exits at once.
.TP
.B SIGHUP
Read \-\-sslcert, \-\-sslkey and \-\-sslca again: new connections get the new certificate,
open ones keep theirs. When a file is unusable the error is logged and the current
certificate stays. Without \-\-ssl it is logged and ignored.
.PP
Programs run in their own process group: the signals of the termination sequence reach
everything a program started.
.SH FILES
.TP
.I /usr/share/doc/websocketd/examples/
Example programs (count, greeter, dump\-env, a chat room, send\-receive, a CGI script) in
eleven languages, one directory each, and a page to try them with; README.md says how to run each.
.TP
.I /usr/share/doc/websocketd/guide.md
The user guide: tutorial, environment, buffering, deployment and troubleshooting.
.TP
.I FILE \fRgiven to \fB\-\-config\fR
Settings in TOML, every option under its own name; the command line overrides them. The
daemon reads no configuration file unless \-\-config names one.
.SH EXAMPLES
Send 1 to 10 to every client, and serve the page that shows them (from the examples directory):
.PP
.RS
.nf
{name} \-\-port=8080 \-\-staticdir=. ./bash/count.sh
.fi
.RE
.PP
Then open http://localhost:8080/count.html.
.PP
Try any program by hand in a browser, at http://localhost:8080/:
.PP
.RS
.nf
{name} \-\-port=8080 \-\-devconsole ./greeter.py
.fi
.RE
.PP
Serve every program in a directory (ws://host:8080/count.sh, ws://host:8080/chat.py, ...),
to pages of one site only:
.PP
.RS
.nf
{name} \-\-port=8080 \-\-dir=/srv/ws \-\-origin=https://example.com
.fi
.RE
.PP
Speak TLS on port 443 (wss://):
.PP
.RS
.nf
{name} \-\-ssl \-\-sslcert=cert.pem \-\-sslkey=key.pem ./count.sh
.fi
.RE
.PP
Listen on a Unix socket only, behind a reverse proxy:
.PP
.RS
.nf
{name} \-\-unixsocket=/run/websocketd.sock ./count.sh
.fi
.RE
.SH SEE ALSO
The user guide in /usr/share/doc/websocketd/guide.md (docs/guide.md in the source).
.PP
RFC 6455 (the WebSocket protocol), RFC 3875 (CGI/1.1).
"#,
        options = options(),
        environment = environment_section(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_described() {
        for (name, _, origin) in sample_environment() {
            if origin == EntryOrigin::Standard {
                assert!(
                    VARIABLES.iter().any(|(known, _)| *known == name),
                    "{name} has no description in the man page"
                );
            }
        }
        for (known, _) in VARIABLES {
            assert!(
                sample_environment().iter().any(|(name, ..)| name == known),
                "{known} is described but never set"
            );
        }
    }

    #[test]
    fn escapes_roff() {
        assert_eq!(escape("a-b\\c"), "a\\-b\\ec");
        assert_eq!(escape(".x"), "\\&.x");
    }

    #[test]
    fn page_shape() {
        let page = render("websocketd");
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "ENVIRONMENT",
            "EXIT STATUS",
            "SIGNALS",
            "FILES",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(page.contains(&format!("\n.SH {section}\n")), "{section}");
        }
        assert!(page.contains("Example: \\fI192.0.2.10\\fR"));
        assert!(page.contains("HTTP_ORIGIN=\\fIhttps://example.com\\fR"));
        assert!(page.contains("\n.B AUTH_*\n"));
        assert!(page.contains("Example: AUTH_USER=\\fIada\\fR"));
        assert!(page.contains("or HTTP/2 for a WebSocket"));
    }
}
