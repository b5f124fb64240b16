//! The one list of command-line flags. Parsing, validation and the help text all read it,
//! so a flag is defined in exactly one place.

/// How a flag's value is written and parsed (Go `flag` package semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--flag`, `--flag=true|false`; never takes the next argument.
    Bool,
    /// Signed integer with Go literal syntax (`0x1F`, `0o17`, `017`, `1_000`).
    Int,
    /// Unsigned integer with Go literal syntax; negatives are a parse error.
    Uint,
    /// Free text; the last occurrence wins.
    Text,
    /// A comma separated list given as one text (last occurrence wins); a configuration
    /// file may also write it as an array of strings.
    List,
    /// Free text; every occurrence is kept, in order.
    Repeated,
}

/// One command-line flag: its name, value kind, and the help text shown by `--help`.
#[derive(Debug)]
pub struct Flag {
    /// Name without dashes, as typed after `-` or `--`.
    pub name: &'static str,
    /// How the value is parsed.
    pub kind: Kind,
    /// Placeholder for the value in the help text (empty for booleans).
    pub value_name: &'static str,
    /// Help text; may span several lines.
    pub help: &'static str,
}

const fn flag(
    name: &'static str,
    kind: Kind,
    value_name: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        name,
        kind,
        value_name,
        help,
    }
}

/// Every flag websocketd accepts, in the order the help text lists them.
pub static FLAGS: &[Flag] = &[
    flag(
        "port",
        Kind::Int,
        "PORT",
        "HTTP port to listen on, for every --address.\nDefault: 80, or 443 with --ssl.",
    ),
    flag(
        "address",
        Kind::Repeated,
        "ADDRESS",
        "Interface to bind to (e.g. 127.0.0.1 or [::1]). May be given\nseveral times. Default: all interfaces.",
    ),
    flag(
        "unixsocket",
        Kind::Text,
        "PATH",
        "Also listen on this Unix socket; when it is the only listen\noption (no --port, --address), listen on it alone.",
    ),
    flag(
        "ssl",
        Kind::Bool,
        "",
        "Speak TLS on every listener (wss:// and https://). Default port\nbecomes 443. Needs --sslcert and --sslkey.",
    ),
    flag(
        "sslcert",
        Kind::Text,
        "FILE",
        "PEM certificate (chain) for --ssl.",
    ),
    flag("sslkey", Kind::Text, "FILE", "PEM private key for --ssl."),
    flag(
        "sslca",
        Kind::Text,
        "FILE",
        "PEM CA certificates: with --ssl, clients must present a\ncertificate these CAs signed (mutual TLS).",
    ),
    flag(
        "http2",
        Kind::Bool,
        "",
        "Serve HTTP/2 too: offered by ALPN with --ssl, and as plain-text\nHTTP/2 (prior knowledge) on the same port otherwise; WebSockets\nrun over it as extended CONNECT streams (RFC 8441).\n--http2=false serves HTTP/1.1 only. Default: true.",
    ),
    flag(
        "origin",
        Kind::List,
        "LIST",
        "Comma separated list of origins allowed to open WebSockets:\nhost, host:port or scheme://host:port. Default: any origin.",
    ),
    flag(
        "sameorigin",
        Kind::Bool,
        "",
        "Only allow WebSockets whose Origin matches the requested Host.",
    ),
    flag(
        "passenv",
        Kind::List,
        "LIST",
        "Comma separated names of this daemon's environment variables\nto hand to every program. Default: PATH,LD_LIBRARY_PATH.",
    ),
    flag(
        "binary",
        Kind::Bool,
        "",
        "Binary mode: relay raw bytes as binary messages instead of\nlines as text messages.",
    ),
    flag(
        "passstderr",
        Kind::Bool,
        "",
        "Send the program's stderr to the client too; every line becomes\na JSON object {\"stream\":\"stdout|stderr\",\"data\":\"...\"}.\nCannot be combined with --binary.",
    ),
    flag(
        "authcmd",
        Kind::Text,
        "PROGRAM",
        "Run PROGRAM before answering each upgrade, with the environment\nthe session's program would get and no input. Exit 0 accepts;\nits NAME=value output lines become AUTH_NAME variables. Other\nexits refuse with the Status (default 403), headers and body it\nprints, CGI-style.",
    ),
    flag(
        "authms",
        Kind::Uint,
        "MS",
        "Longest an --authcmd run may take; then its process group is\nkilled and the client gets 503. Default: 5000.",
    ),
    flag(
        "authall",
        Kind::Bool,
        "",
        "Also run --authcmd for plain HTTP requests (CGI scripts,\nstatic files, developer console).",
    ),
    flag(
        "once",
        Kind::Bool,
        "",
        "Serve one WebSocket session, then shut down and exit with its\nprogram's exit status (128+N after signal N). Further upgrades\nget 503 while it runs; plain HTTP content is still served.",
    ),
    flag(
        "unbuffered",
        Kind::Bool,
        "",
        "Give the program a terminal (raw mode, 80x24, TERM=dumb) as\nstdout, and as stderr with --passstderr, so it prints line by\nline instead of buffering; stdin stays a pipe.",
    ),
    flag(
        "subprotocol",
        Kind::List,
        "LIST",
        "Comma separated WebSocket subprotocols the program speaks. The\nfirst one the client offers (in its order) is answered in the\nupgrade and given to the program as WEBSOCKET_PROTOCOL. With\n--dir, a SCRIPT.protocols file (one per line) replaces LIST\nfor that script.",
    ),
    flag(
        "subprotocolrequired",
        Kind::Bool,
        "",
        "Answer 400 to upgrades that offer none of the --subprotocol\nprotocols, instead of proceeding without a protocol.",
    ),
    flag(
        "reverselookup",
        Kind::Bool,
        "",
        "Resolve client addresses to host names for REMOTE_HOST and logs.",
    ),
    flag(
        "dir",
        Kind::Text,
        "DIR",
        "Serve every program in DIR, each under its own URL path,\ninstead of a single COMMAND.",
    ),
    flag(
        "staticdir",
        Kind::Text,
        "DIR",
        "Serve the files in DIR to plain HTTP requests (GET and HEAD).",
    ),
    flag(
        "cgidir",
        Kind::Text,
        "DIR",
        "Run the CGI scripts in DIR for plain HTTP requests naming them.",
    ),
    flag(
        "devconsole",
        Kind::Bool,
        "",
        "Answer every plain HTTP request with a developer console page\nfor trying the WebSocket program by hand. Cannot be combined\nwith --staticdir or --cgidir.",
    ),
    flag(
        "redirport",
        Kind::Int,
        "PORT",
        "Also listen on PORT (plain HTTP) and redirect every request\nthere to --port, keeping the path and query.",
    ),
    flag(
        "trustproxy",
        Kind::List,
        "LIST",
        "Comma separated addresses or CIDR networks of reverse proxies\n(and unix for --unixsocket clients). Only from those, the client\naddress and scheme come from Forwarded, X-Forwarded-For and\nX-Forwarded-Proto (rightmost untrusted hop), and a PROXY protocol\nv1/v2 header is read before TLS and HTTP. Default: none.",
    ),
    flag(
        "maxforks",
        Kind::Int,
        "N",
        "Most programs running at once; further upgrades get 429.\n0 or less: no limit. Default: 1024.",
    ),
    flag(
        "maxclients",
        Kind::Int,
        "N",
        "Most WebSocket clients connected at once; further upgrades get\n429. 0 or less: no limit. Default: 0.",
    ),
    flag(
        "broadcast",
        Kind::Bool,
        "",
        "Run the program (with --dir, each script) once, shared by every\nclient of its URL: every line it prints goes to every client\nconnected at that moment.",
    ),
    flag(
        "lingerms",
        Kind::Int,
        "MS",
        "With --broadcast: keep the program running MS milliseconds after\nthe last client leaves; -1: until the daemon stops. Default: 0.",
    ),
    flag(
        "prestart",
        Kind::Bool,
        "",
        "With --broadcast: start the program (with --dir, every program\nat the top of DIR) when the daemon starts, and keep it running.",
    ),
    flag(
        "replay",
        Kind::Uint,
        "N",
        "With --broadcast: a client that joins first receives the last N\nmessages. Default: 0.",
    ),
    flag(
        "broadcastinput",
        Kind::Text,
        "MODE",
        "With --broadcast, what client messages do: none (dropped),\nlines (each one whole line on the program's stdin) or tagged\n(one JSON object per line with the client's id, plus join and\nleave events). Default: none.",
    ),
    flag(
        "maxqueue",
        Kind::Uint,
        "N",
        "With --broadcast: messages that may wait for one client; a\nclient further behind is closed with 1013. 0: lossless, the\nprogram waits for the slowest client. Default: 1024.",
    ),
    flag(
        "cluster",
        Kind::Text,
        "URL",
        "With --broadcast: share each route's stream with every instance\ngiven the same URL, through Redis (redis://HOST:PORT/NAME,\nrediss:// for TLS) or NATS JetStream (nats://HOST:PORT/NAME,\ntls:// or nats+tls:// for TLS). One instance runs the program,\nall fan it out. USER:PASSWORD@ in the URL, or the password in\n$WEBSOCKETD_CLUSTER_PASSWORD.",
    ),
    flag(
        "clusterrole",
        Kind::Text,
        "ROLE",
        "With --cluster: any (may run the program), runner (runs it\nwhen it can claim it) or relay (never runs it, only fans out).\nDefault: any.",
    ),
    flag(
        "leasems",
        Kind::Uint,
        "MS",
        "With --cluster: how long the runner's claim lasts without\nrenewal; another instance takes over within MS + 1000 ms of\nlosing it. At least 2000 plus six times --closems.\nDefault: 2000.",
    ),
    flag(
        "closems",
        Kind::Uint,
        "MS",
        "Extra milliseconds added to each wait of the termination\nsequence (stdin closed, SIGINT, SIGTERM, then SIGKILL after\n100ms, 250ms and 500ms). Default: 0.",
    ),
    flag(
        "pingms",
        Kind::Uint,
        "MS",
        "Ping clients every MS milliseconds and drop those that do not\nanswer within twice that. Default: 0 (off).",
    ),
    flag(
        "maxframesize",
        Kind::Int,
        "BYTES",
        "Largest message accepted from a client; larger ones close the\nconnection with 1009. 0 or less: no limit. Default: 1048576.",
    ),
    flag(
        "compress",
        Kind::Bool,
        "",
        "Offer permessage-deflate compression (RFC 7692) to clients that\nask for it. Costs CPU and memory per connection. Default: off.",
    ),
    flag(
        "compresslevel",
        Kind::Int,
        "LEVEL",
        "With --compress: 1 (fastest) to 9 (smallest). Default: 1.",
    ),
    flag(
        "compressmin",
        Kind::Int,
        "BYTES",
        "With --compress: messages shorter than this are sent\nuncompressed. Default: 32.",
    ),
    flag(
        "header",
        Kind::Repeated,
        "\"NAME: VALUE\"",
        "Add a header to every response (may be repeated).",
    ),
    flag(
        "header-ws",
        Kind::Repeated,
        "\"NAME: VALUE\"",
        "Add a header to WebSocket upgrade responses only.",
    ),
    flag(
        "header-http",
        Kind::Repeated,
        "\"NAME: VALUE\"",
        "Add a header to plain HTTP responses only.",
    ),
    flag(
        "loglevel",
        Kind::Text,
        "LEVEL",
        "Least important log level printed: debug, trace, access, info,\nerror, fatal. Default: access.",
    ),
    flag(
        "logformat",
        Kind::Text,
        "FORMAT",
        "How log lines are written: text (the classic lines), json (one\nobject per line) or journal (syslog priority prefixes and no\ntimestamp, for systemd's journal). Default: text.",
    ),
    flag(
        "metrics",
        Kind::Text,
        "HOST:PORT",
        "Also listen on HOST:PORT (plain HTTP) for /metrics (Prometheus\ntext format) and /healthz (200 while serving, 503 while\nshutting down).",
    ),
    flag(
        "config",
        Kind::Text,
        "FILE",
        "Read settings from a TOML file: every option under its own name\n(port = 8080, origin = [\"a.example\"]), the program as\ncommand = [\"COMMAND\", \"arg\"]. The command line overrides it.",
    ),
    flag("version", Kind::Bool, "", "Print the version and exit."),
    flag("license", Kind::Bool, "", "Print the license and exit."),
    flag("help", Kind::Bool, "", "Print this help and exit."),
];

/// Looks a flag up by the name typed on the command line (`h` is `help`).
pub fn find(name: &str) -> Option<&'static Flag> {
    let name = if name == "h" { "help" } else { name };
    FLAGS.iter().find(|flag| flag.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in FLAGS.iter().enumerate() {
            for b in &FLAGS[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
    }

    #[test]
    fn comma_lists_are_list_flags() {
        // So a configuration file may write them as arrays.
        for flag in FLAGS {
            assert_eq!(
                flag.value_name == "LIST",
                flag.kind == Kind::List,
                "{}",
                flag.name
            );
        }
    }

    #[test]
    fn short_help_alias() {
        assert_eq!(find("h").map(|f| f.name), Some("help"));
        assert!(find("bogus").is_none());
    }
}
