//! Requests the HTTP parser refuses before any handler sees them (a malformed request
//! line or header, a target with characters such as `<`, `>` or `` ` ``, a head over the
//! size limit). The parser answers them itself (400, 414 or 431); this puts each one in the
//! access log, as every other refused request is.

use crate::environment::Peer;
use crate::logging::Scope;

/// Logs the connection's end at ACCESS level when the parser refused a request.
pub fn log_if_refused(peer: &Peer, err: &hyper::Error) {
    let Some(status) = status_sent(err) else {
        return;
    };
    let mut scope = Scope::new();
    scope.associate(
        "remote",
        match peer {
            Peer::Tcp { ip, .. } => ip.clone(),
            Peer::Unix => "unix-socket".to_string(),
        },
    );
    scope.access(
        "http",
        &format!("Refused unparsable request ({status}): {err}"),
    );
}

/// The status the parser answered with, if the error is a refused request.
fn status_sent(err: &hyper::Error) -> Option<u16> {
    if err.is_parse_too_large() {
        Some(if err.to_string().contains("URI") {
            414
        } else {
            431
        })
    } else if err.is_parse() {
        Some(400)
    } else {
        None
    }
}
